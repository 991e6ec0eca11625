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
///
/// Looked up in /etc/group first (where `groupadd` puts it), then through NSS (LDAP, sssd,
/// systemd's userdb) — whose answer `cache` (the store's `analyst-group`) keeps for a minute,
/// unless /etc/nsswitch.conf changed since: NSS loads its modules and looks in a dozen places
/// for a group that is usually not there (0.5-0.7 ms, in every command run as root). A group
/// made or removed elsewhere than /etc/group is therefore seen within a minute.
pub fn analyst_gid(cache: &Path) -> Option<u32> {
    let g = std::env::var("JCS_ANALYST_GROUP").unwrap_or_else(|_| ANALYST_GROUP.into());
    if let Ok(n) = g.parse::<u32>() {
        return Some(n);
    }
    let system = GroupSources {
        group: Path::new("/etc/group"),
        nsswitch: Path::new("/etc/nsswitch.conf"),
        nss: &getgrnam,
    };
    system.gid(&g, cache)
}

/// Where a group is looked up: a group(5) file, then NSS (`nss`, asked only when the answer
/// `cache` holds is older than [`NSS_CACHE_FOR`] or than the `nsswitch` configuration).
struct GroupSources<'a> {
    group: &'a Path,
    nsswitch: &'a Path,
    nss: &'a dyn Fn(&str) -> Option<u32>,
}

impl GroupSources<'_> {
    fn gid(&self, name: &str, cache: &Path) -> Option<u32> {
        if let Some(gid) = std::fs::read_to_string(self.group)
            .ok()
            .and_then(|t| group_in_file(&t, name))
        {
            return Some(gid);
        }
        let now = std::time::SystemTime::now();
        let nss_changed = std::fs::metadata(self.nsswitch)
            .and_then(|m| m.modified())
            .ok();
        if let Some(answer) = std::fs::metadata(cache)
            .and_then(|m| m.modified())
            .ok()
            .filter(|&made| nss_changed.is_none_or(|c| c <= made))
            .filter(|&made| {
                now.duration_since(made)
                    .is_ok_and(|age| age < NSS_CACHE_FOR)
            })
            .and_then(|_| std::fs::read_to_string(cache).ok())
            .and_then(|t| cached_answer(&t, name))
        {
            return answer;
        }
        let answer = (self.nss)(name);
        // A cache that cannot be written is looked up again next time.
        let text = format!(
            "{name}\t{}\n",
            answer.map_or("none".into(), |n| n.to_string())
        );
        let tmp = cache.with_extension("tmp");
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, cache);
        }
        answer
    }
}

/// How long an NSS answer about the analysts' group is kept.
const NSS_CACHE_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// The gid of group `name` in the text of a group(5) file.
fn group_in_file(text: &str, name: &str) -> Option<u32> {
    text.lines()
        .map(|l| l.split(':'))
        .find_map(|mut f| (f.next() == Some(name)).then(|| f.nth(1)?.parse().ok())?)
}

/// The cached answer for group `name` (`Some(None)`: it did not exist), if the cache is of it.
fn cached_answer(text: &str, name: &str) -> Option<Option<u32>> {
    let (n, gid) = text.trim_end().split_once('\t')?;
    if n != name {
        return None;
    }
    match gid {
        "none" => Some(None),
        g => g.parse().ok().map(Some),
    }
}

fn getgrnam(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
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
    match analyst_gid(&root.join("analyst-group")) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_is_found_in_a_group_file_by_its_whole_name() {
        let t = "root:x:0:\njcs-analyst-old:x:998:\njcs-analyst:x:999:alice,bob\nbad\n";
        assert_eq!(group_in_file(t, "jcs-analyst"), Some(999));
        assert_eq!(group_in_file(t, "root"), Some(0));
        assert_eq!(group_in_file(t, "jcs"), None);
        assert_eq!(group_in_file(t, "bad"), None);
        assert_eq!(group_in_file("", "root"), None);
    }

    /// NSS is asked once a minute at most: a fresh cached answer (a gid, or "none") is used;
    /// an old one, one older than the NSS configuration, or one of another group is not; a
    /// group of the group file needs no NSS at all.
    #[test]
    fn nss_is_asked_only_when_the_cached_answer_is_old() {
        let d = tempfile::tempdir().unwrap();
        let (group, nsswitch, cache) = (
            d.path().join("group"),
            d.path().join("nsswitch.conf"),
            d.path().join("analyst-group"),
        );
        std::fs::write(&group, "root:x:0:\nfiles-group:x:77:\n").unwrap();
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::write(&nsswitch, "group: files ldap\n").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&nsswitch)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        let asked = std::cell::Cell::new(0);
        let answer = std::cell::Cell::new(Some(4242));
        let nss = |_: &str| {
            asked.set(asked.get() + 1);
            answer.get()
        };
        let s = GroupSources {
            group: &group,
            nsswitch: &nsswitch,
            nss: &nss,
        };
        let age = |t: std::time::SystemTime| {
            std::fs::File::options()
                .write(true)
                .open(&cache)
                .unwrap()
                .set_modified(t)
                .unwrap()
        };
        assert_eq!(s.gid("jcs-analyst", &cache), Some(4242));
        assert_eq!(asked.get(), 1);
        // Fresh: NSS is not asked again (the control for every case below).
        assert_eq!(s.gid("jcs-analyst", &cache), Some(4242));
        assert_eq!(asked.get(), 1);
        // A minute old: asked again (the group went away meanwhile).
        age(std::time::SystemTime::now() - NSS_CACHE_FOR - std::time::Duration::from_secs(1));
        answer.set(None);
        assert_eq!(s.gid("jcs-analyst", &cache), None);
        assert_eq!(asked.get(), 2);
        // "None" is an answer too, while fresh.
        assert_eq!(s.gid("jcs-analyst", &cache), None);
        assert_eq!(asked.get(), 2);
        // NSS configured anew after a fresh answer: asked again.
        let now = std::time::SystemTime::now();
        age(now - std::time::Duration::from_secs(10));
        std::fs::File::options()
            .write(true)
            .open(&nsswitch)
            .unwrap()
            .set_modified(now - std::time::Duration::from_secs(5))
            .unwrap();
        answer.set(Some(4343));
        assert_eq!(s.gid("jcs-analyst", &cache), Some(4343));
        assert_eq!(asked.get(), 3);
        // Another group's answer is no answer; the group file's group needs no NSS.
        assert_eq!(s.gid("other", &cache), Some(4343));
        assert_eq!(asked.get(), 4);
        assert_eq!(s.gid("files-group", &cache), Some(77));
        assert_eq!(asked.get(), 4);
    }

    #[test]
    fn a_cached_answer_is_of_one_group_and_says_whether_it_exists() {
        assert_eq!(
            cached_answer("jcs-analyst\t999\n", "jcs-analyst"),
            Some(Some(999))
        );
        assert_eq!(
            cached_answer("jcs-analyst\tnone\n", "jcs-analyst"),
            Some(None)
        );
        // Another group's answer, or a damaged cache, is no answer: NSS is asked.
        assert_eq!(cached_answer("other\t999\n", "jcs-analyst"), None);
        assert_eq!(cached_answer("jcs-analyst\tx\n", "jcs-analyst"), None);
        assert_eq!(cached_answer("", "jcs-analyst"), None);
    }

    /// Through NSS, cached: a group that is in no file is looked up once, then answered from
    /// the cache (what the cache says is what comes back, even when it is not NSS's answer);
    /// a cache older than a minute is looked up again.
    #[test]
    fn an_nss_answer_is_kept_a_minute() {
        let d = std::env::temp_dir().join(format!("jcs-analyst-cache-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let cache = d.join("analyst-group");
        let name = "jcs-no-such-group-for-a-test";
        std::env::set_var("JCS_ANALYST_GROUP", name);
        assert_eq!(analyst_gid(&cache), None);
        assert_eq!(
            std::fs::read_to_string(&cache).unwrap(),
            format!("{name}\tnone\n")
        );
        // The cache is what answers now.
        std::fs::write(&cache, format!("{name}\t4242\n")).unwrap();
        assert_eq!(analyst_gid(&cache), Some(4242));
        // ... until it is older than a minute.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(61);
        std::fs::File::options()
            .write(true)
            .open(&cache)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(analyst_gid(&cache), None);
        std::env::remove_var("JCS_ANALYST_GROUP");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
