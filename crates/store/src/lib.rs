//! The store (`/var/lib/jcs` or `$JCS_HOME`): its directory layout (`ve::Layout`), its
//! catalog ([`catalog`], SQLite), each VE's metadata ([`meta`]), and the host locations this
//! process uses. Shared by the CLI, the recorder and the queries; it builds no VE and reads
//! no journal.

pub mod catalog;
pub mod meta;

pub use catalog::{Catalog, VeRow};
pub use meta::VeMeta;
use std::io;
use std::path::{Path, PathBuf};
use ve::Layout;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store path {0} must be absolute")]
    NotAbsolute(PathBuf),
    #[error("the name {name} is in use by VE {ve} (jcs rm {ve} frees it)")]
    VeNameInUse { name: String, ve: u64 },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("open catalog {path}: {source}")]
    OpenCatalog {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("upgrade catalog {path} from schema version {from}: {source}")]
    UpgradeCatalog {
        path: PathBuf,
        from: i64,
        source: Box<StoreError>,
    },
    #[error("catalog {path} has schema version {found}; this jcs knows version {known}")]
    CatalogSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("{what}: {source}")]
    Sql {
        what: &'static str,
        source: rusqlite::Error,
    },
    #[error("catalog: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{what}: {source}")]
    Json {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("getrandom: {0}")]
    Random(io::Error),
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { what, path, source }
}

/// Host locations, overridable for tests of missing kernel features (`JCS_PROC_ROOT`,
/// `JCS_SYS_ROOT`).
#[derive(Debug, Clone)]
pub struct Host {
    pub proc_root: PathBuf,
    pub sys_root: PathBuf,
}

impl Host {
    pub fn from_env() -> Host {
        let get = |k: &str, d: &str| {
            std::env::var_os(k)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(d))
        };
        Host {
            proc_root: get("JCS_PROC_ROOT", "/proc"),
            sys_root: get("JCS_SYS_ROOT", "/sys"),
        }
    }
}

#[derive(Debug)]
pub struct Store {
    pub layout: Layout,
    pub catalog: Catalog,
    /// A random id of this store, part of every VE cgroup name so that two stores on one host
    /// never collide.
    pub id: String,
    pub host: Host,
}

/// The group whose members may read the journal and the catalog (`JCS_ANALYST_GROUP`, or
/// `analyst_group` in /etc/jcs/config.toml: a name or a number; default `jcs-analyst`), when it
/// exists.
pub fn analyst_gid() -> Option<u32> {
    let g = std::env::var("JCS_ANALYST_GROUP").unwrap_or_else(|_| ANALYST_GROUP.into());
    if let Ok(n) = g.parse::<u32>() {
        return Some(n);
    }
    let name = std::ffi::CString::new(g).ok()?;
    // SAFETY: a valid C string; the entry is read at once, before any other getgr* call.
    let gr = unsafe { libc::getgrnam(name.as_ptr()) };
    // SAFETY: a non-null pointer getgrnam returned.
    (!gr.is_null()).then(|| unsafe { (*gr).gr_gid })
}

/// The analysts' group by default.
pub const ANALYST_GROUP: &str = "jcs-analyst";

/// Who may reach what in the store: its root is root's, and the analysts' group's to enter
/// (0750; without that group, 0700); the journal and the catalog (`journal/`, `catalog.db*`)
/// are readable to whoever enters, so analysts read them; everything that holds data of the
/// VEs or the host's processes — templates, apps, persistent and shared storage, the VEs'
/// dirties, the version store — is root's alone (0700). Only mode and group bits that differ
/// are changed: a store opened again costs a few stats.
fn secure(layout: &ve::Layout) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let set = |p: &Path, mode: u32, gid: u32| -> Result<()> {
        let m = std::fs::symlink_metadata(p).map_err(io_err("stat", p))?;
        if !m.is_dir() {
            return Ok(());
        }
        if m.gid() != gid {
            std::os::unix::fs::chown(p, None, Some(gid)).map_err(io_err("chown", p))?;
        }
        if m.mode() & 0o7777 != mode {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
                .map_err(io_err("chmod", p))?;
        }
        Ok(())
    };
    let root = layout.root();
    match analyst_gid() {
        Some(g) => set(root, 0o750, g)?,
        None => set(root, 0o700, 0)?,
    }
    for d in ["templates", "apps", "persist", "shared", "ve", "versions"] {
        let p = root.join(d);
        if p.exists() {
            set(&p, 0o700, 0)?;
        }
    }
    Ok(())
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut b = vec![0u8; bytes];
    rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty())
        .map_err(|e| StoreError::Random(e.into()))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl Store {
    /// Opens the store at `root`, creating it when missing.
    pub fn open(root: &Path) -> Result<Store> {
        if !root.is_absolute() {
            return Err(StoreError::NotAbsolute(root.to_path_buf()));
        }
        let layout = Layout::new(root);
        let fresh = !layout.catalog().exists();
        if fresh {
            for d in layout.skeleton() {
                std::fs::create_dir_all(&d).map_err(io_err("create store directory", &d))?;
            }
        }
        let catalog = Catalog::open(&layout.catalog())?;
        let id = match catalog.meta("store_id")? {
            Some(id) => id,
            None => {
                let id = random_hex(4)?;
                catalog.set_meta("store_id", &id)?;
                id
            }
        };
        if fresh {
            // A catalog made anew next to old VE directories must not hand out their ids again.
            let max = std::fs::read_dir(layout.ves())
                .map_err(io_err("read", &layout.ves()))?
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()))
                .max()
                .unwrap_or(0);
            if max > 0 {
                catalog.raise_ve_sequence(max)?;
            }
        }
        if rustix::process::geteuid().is_root() {
            secure(&layout)?;
        }
        Ok(Store {
            layout,
            catalog,
            id,
            host: Host::from_env(),
        })
    }

    pub fn cgroup_name(&self, ve: model::VeId) -> String {
        format!("{}-{}", self.id, ve)
    }

    /// The journal's directory.
    pub fn journal_dir(&self) -> PathBuf {
        self.layout.root().join("journal")
    }

    /// A VE's metadata (`meta/ve.json`), when it has any.
    pub fn ve_meta(&self, ve: model::VeId) -> Option<VeMeta> {
        let b = std::fs::read(self.layout.meta(ve).join("ve.json")).ok()?;
        serde_json::from_slice(&b).ok()
    }
}
