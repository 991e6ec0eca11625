//! The store: its directory layout, its catalog, and the host locations this process uses.

use crate::catalog::Catalog;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use ve::Layout;

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

fn random_hex(bytes: usize) -> Result<String> {
    let mut b = vec![0u8; bytes];
    rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).context("getrandom")?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl Store {
    /// Opens the store at `root`, creating it when missing.
    pub fn open(root: &Path) -> Result<Store> {
        if !root.is_absolute() {
            bail!("store path {} must be absolute", root.display());
        }
        let layout = Layout::new(root);
        let fresh = !layout.catalog().exists();
        if fresh {
            for d in layout.skeleton() {
                std::fs::create_dir_all(&d)
                    .with_context(|| format!("create store directory {}", d.display()))?;
            }
        }
        let catalog = Catalog::open(&layout.catalog())?;
        crate::mark("catalog open");
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
            let max = std::fs::read_dir(layout.ves())?
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()))
                .max()
                .unwrap_or(0);
            if max > 0 {
                catalog.raise_ve_sequence(max)?;
            }
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
}

/// Builds a directory under a temporary name next to `dest` and renames it into place only
/// when `build` succeeded; on failure the temporary directory is removed, so nothing
/// half-created is left behind.
pub fn build_dir_atomically(dest: &Path, build: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let parent = dest.parent().context("destination has no parent")?;
    std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("x");
    let tmp = parent.join(format!(".{name}.partial-{}", std::process::id()));
    if tmp.exists() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    std::fs::create_dir(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    let r = build(&tmp).and_then(|_| {
        std::fs::rename(&tmp, dest)
            .with_context(|| format!("rename {} to {}", tmp.display(), dest.display()))
    });
    if r.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    r
}
