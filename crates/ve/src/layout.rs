//! Where everything lives in the store (`/var/lib/jcs` or `$JCS_HOME`).
//!
//! ```text
//! templates/NAME/V/          read-only template branch, version V
//! apps/NAME/V/               app layer V (an app version's stack is layers V..1 over its template)
//! persist/APP/FLAT/          persistent directory of APP (FLAT = inner path with '/' → '_')
//! shared/NAME/               shared directory, mountable by several apps
//! ve/N/{dirties,work,meta}    (ve/N itself is the VE's root mount point, in its namespace)
//! versions/                  content-addressed pre-images (recovery, later)
//! journal/                   journal segments (monitor, later)
//! catalog.db                 SQLite catalog
//! ```

use model::{InnerPath, Name, VeId};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn catalog(&self) -> PathBuf {
        self.root.join("catalog.db")
    }

    pub fn templates(&self) -> PathBuf {
        self.root.join("templates")
    }

    pub fn template(&self, name: &Name, version: u32) -> PathBuf {
        self.templates()
            .join(name.as_str())
            .join(version.to_string())
    }

    pub fn apps(&self) -> PathBuf {
        self.root.join("apps")
    }

    pub fn app_dir(&self, name: &Name) -> PathBuf {
        self.apps().join(name.as_str())
    }

    pub fn app_layer(&self, name: &Name, version: u32) -> PathBuf {
        self.app_dir(name).join(version.to_string())
    }

    /// The policy an app version introduced (beside its layer, never inside it: a VE cannot
    /// read or change it). A version without one keeps the previous version's; an empty file
    /// removes it.
    pub fn app_policy(&self, name: &Name, version: u32) -> PathBuf {
        self.app_dir(name).join(format!("policy.{version}.toml"))
    }

    pub fn persist_app(&self, app: &Name) -> PathBuf {
        self.root.join("persist").join(app.as_str())
    }

    pub fn persist(&self, app: &Name, inner: &InnerPath) -> PathBuf {
        self.persist_app(app).join(inner.flat_name())
    }

    pub fn shared(&self, name: &Name) -> PathBuf {
        self.root.join("shared").join(name.as_str())
    }

    /// The version store: `objects/` (content by blake3) and `undo/VE.jsonl` (what each VE
    /// changed in persistent and shared storage, with its pre-images).
    pub fn versions(&self) -> PathBuf {
        self.root().join("versions")
    }

    pub fn ves(&self) -> PathBuf {
        self.root.join("ve")
    }

    pub fn ve(&self, id: VeId) -> PathBuf {
        self.ves().join(id.to_string())
    }

    pub fn dirties(&self, id: VeId) -> PathBuf {
        self.ve(id).join("dirties")
    }

    pub fn work(&self, id: VeId) -> PathBuf {
        self.ve(id).join("work")
    }

    /// The mount point of the VE's merged root: the VE's own directory. The overlay is
    /// mounted over it only inside the VE's mount namespace (its branches were resolved
    /// before), so on the host `ve/N` keeps showing the dirties and metadata.
    pub fn rootfs(&self, id: VeId) -> PathBuf {
        self.ve(id)
    }

    pub fn meta(&self, id: VeId) -> PathBuf {
        self.ve(id).join("meta")
    }

    /// What the store keeps of storage directory `dir` (a host path) between VEs: its
    /// names-only snapshot after the last recorded VE that had it
    /// (`manifest::encode_names`), reused where nothing changed since. Only a cache: a
    /// missing or damaged one is listed anew.
    pub fn names_cache(&self, dir: &Path) -> PathBuf {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        dir.hash(&mut h);
        self.root
            .join("cache/names")
            .join(format!("{:016x}", h.finish()))
    }

    /// The directories every store has.
    pub fn skeleton(&self) -> Vec<PathBuf> {
        [
            "templates",
            "apps",
            "persist",
            "shared",
            "ve",
            "versions",
            "journal",
        ]
        .iter()
        .map(|d| self.root.join(d))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let l = Layout::new("/s");
        let app = Name::parse("ff").unwrap();
        assert_eq!(l.app_layer(&app, 3), Path::new("/s/apps/ff/3"));
        assert_eq!(
            l.persist(&app, &InnerPath::parse("/root/.mozilla").unwrap()),
            Path::new("/s/persist/ff/root_.mozilla")
        );
        assert_eq!(l.dirties(VeId(101)), Path::new("/s/ve/101/dirties"));
    }
}
