//! The integrity report of a VE: what it wrote into its dirties and what it changed in its
//! persistent and shared storage. The types and the classification rules are pure; walking the
//! directories is the `ve` crate's job.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    File,
    Dir,
    Symlink,
    Other,
}

/// What an entry of the dirties means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DirtyKind {
    /// A path that exists in no lower branch.
    Added,
    /// A path that hides a file of a lower branch; `shadows` names that branch
    /// (`template NAME vN` or `app NAME vN`).
    Modified { shadows: String },
    /// A whiteout: the VE deleted a file of a lower branch.
    Deleted { shadows: String },
    /// An opaque directory: the VE replaced a lower directory wholesale.
    Opaque { shadows: Option<String> },
}

/// Why an entry deserves attention.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct EntryFlags {
    /// Any execute bit is set on a regular file.
    pub executable: bool,
    pub setuid: bool,
    pub setgid: bool,
    /// Under /bin, /sbin, /usr, /lib, /lib64, /lib32 or /etc.
    pub system_path: bool,
}

impl EntryFlags {
    /// Classifies a path inside the VE and its mode bits (`st_mode`).
    pub fn classify(path: &str, file_type: FileType, mode: u32) -> EntryFlags {
        const SYSTEM: &[&str] = &["/bin", "/sbin", "/usr", "/lib", "/lib64", "/lib32", "/etc"];
        let is_file = file_type == FileType::File;
        EntryFlags {
            executable: is_file && mode & 0o111 != 0,
            setuid: is_file && mode & 0o4000 != 0,
            setgid: is_file && mode & 0o2000 != 0,
            system_path: SYSTEM
                .iter()
                .any(|s| path == *s || path.starts_with(&format!("{s}/"))),
        }
    }

    /// Short labels for display: `exec`, `setuid`, `setgid`, `system`.
    pub fn labels(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.executable {
            v.push("exec");
        }
        if self.setuid {
            v.push("setuid");
        }
        if self.setgid {
            v.push("setgid");
        }
        if self.system_path {
            v.push("system");
        }
        v
    }
}

/// One entry of the dirties.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DirtyEntry {
    /// The path inside the VE.
    pub path: String,
    #[serde(flatten)]
    pub kind: DirtyKind,
    pub file_type: FileType,
    pub size: u64,
    /// Permission bits and setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Hex sha256 of a regular file's content.
    pub sha256: Option<String>,
    /// Target of a symbolic link.
    pub link_target: Option<String>,
    pub flags: EntryFlags,
}

/// How a persistent or shared file changed during the VE's life.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Modified,
    Deleted,
}

/// A change in persistent or shared storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StorageChange {
    /// `persist` or `shared`.
    pub storage: String,
    /// The path inside the VE.
    pub path: String,
    pub change: Change,
    pub file_type: FileType,
    pub size: u64,
    pub sha256: Option<String>,
}

/// The whole report of `jcs inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IntegrityReport {
    pub ve: u64,
    pub app: String,
    pub app_version: u32,
    pub dirties: Vec<DirtyEntry>,
    pub storage: Vec<StorageChange>,
    /// Caveats the reader must know (for example: shared storage may also have been changed by
    /// another VE that ran at the same time).
    pub notes: Vec<String>,
}

/// What identifies a version of a file cheaply: enough to tell that it changed, without
/// reading its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Stamp {
    pub file_type: FileType,
    pub size: u64,
    pub mode: u32,
    pub ino: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

/// A snapshot of a storage tree: relative path → stamp.
pub type Manifest = BTreeMap<String, Stamp>;

/// Compares two snapshots of the same tree; directories count only when added or deleted.
pub fn diff_manifests(before: &Manifest, after: &Manifest) -> Vec<(String, Change)> {
    let mut out = Vec::new();
    for (path, b) in before {
        match after.get(path) {
            None => out.push((path.clone(), Change::Deleted)),
            Some(a)
                if a != b && !(a.file_type == FileType::Dir && b.file_type == FileType::Dir) =>
            {
                out.push((path.clone(), Change::Modified))
            }
            Some(_) => {}
        }
    }
    for path in after.keys() {
        if !before.contains_key(path) {
            out.push((path.clone(), Change::Added));
        }
    }
    out.sort();
    out
}

/// What a names-only walk of a storage tree knows of one entry (from the directory itself:
/// no `lstat` per entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameEntry {
    pub file_type: FileType,
    pub ino: u64,
}

/// One directory of a names-only snapshot: its identity and change time when it was listed,
/// and its entries (name → type and inode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirNames {
    pub ino: u64,
    pub ctime_ns: i128,
    /// Listed so soon after its last change that a change in the same clock tick could leave
    /// its change time as it was: it is listed again instead of trusted.
    pub racy: bool,
    pub entries: Vec<(String, NameEntry)>,
}

/// A names-only snapshot of a storage tree: each directory (relative path, `""` for the
/// root) → its entries. A directory whose identity and change time are the same later has
/// the same entries (adding, removing or renaming one changes its directory's ctime).
pub type Names = rustc_hash::FxHashMap<String, DirNames>;

/// What a VE's recorded calls changed in files outside its own file system, as the recorder
/// saw them: the storage report takes the modifications of files that kept their names from
/// it (a names-only comparison sees added, removed and replaced names, not changed content).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Touched {
    /// Files (device as `st_dev`, inode) whose content or attributes the VE changed through
    /// a descriptor, a shared mapping or a transfer.
    pub files: Vec<(u64, u64)>,
    /// Paths (absolute, inside the VE, as the calls named them) whose file's attributes or size
    /// a call by name changed (chmod, chown, truncate, utime, setxattr by path), each with
    /// whether the call left a final symbolic link alone (lchown, AT_SYMLINK_NOFOLLOW): the
    /// report resolves them in the VE's file system, where a link may lead into storage.
    pub paths: Vec<(String, bool)>,
    /// The symbolic links the VE made (link path, target as given), under their last name:
    /// what resolves those paths where the link is gone by the VE's end.
    #[serde(default)]
    pub links: Vec<(String, String)>,
    /// Whether these are all of them: the recorder watched the VE from its start, lost none
    /// of its records, and could name every change by path.
    pub complete: bool,
}

/// How one name of a storage tree changed, from what names-only snapshots before and after
/// say of it: one that appeared is added, one that went is deleted, one that names another
/// file (or another type) now is modified (directories count only when added or deleted),
/// and one that names the same file is modified when the VE `changed` that file.
pub fn name_change(
    before: Option<&NameEntry>,
    after: Option<&NameEntry>,
    changed: bool,
) -> Option<Change> {
    match (before, after) {
        (None, None) => None,
        (None, Some(_)) => Some(Change::Added),
        (Some(_), None) => Some(Change::Deleted),
        (Some(b), Some(a)) if a.file_type == FileType::Dir && b.file_type == FileType::Dir => None,
        (Some(b), Some(a)) if a.ino != b.ino || a.file_type != b.file_type => {
            Some(Change::Modified)
        }
        (Some(_), Some(_)) if changed => Some(Change::Modified),
        (Some(_), Some(_)) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let f = EntryFlags::classify("/bin/ps", FileType::File, 0o755);
        assert!(f.executable && f.system_path && !f.setuid);
        assert_eq!(f.labels(), vec!["exec", "system"]);
        let f = EntryFlags::classify("/tmp/x", FileType::File, 0o4644);
        assert!(f.setuid && !f.executable && !f.system_path);
        let f = EntryFlags::classify("/binary", FileType::Dir, 0o755);
        assert!(!f.executable && !f.system_path);
        assert!(EntryFlags::classify("/etc", FileType::Dir, 0o755).system_path);
    }

    fn stamp(size: u64, mtime: i128, t: FileType) -> Stamp {
        Stamp {
            file_type: t,
            size,
            mode: 0o644,
            ino: 1,
            mtime_ns: mtime,
            ctime_ns: mtime,
        }
    }

    #[test]
    fn name_changes() {
        use FileType::{Dir, File};
        let e = |file_type, ino| Some(NameEntry { file_type, ino });
        let (f1, f2, d1, d2) = (e(File, 1), e(File, 2), e(Dir, 1), e(Dir, 3));
        let c = |b: Option<NameEntry>, a: Option<NameEntry>, changed| {
            name_change(b.as_ref(), a.as_ref(), changed)
        };
        assert_eq!(c(None, f1, false), Some(Change::Added));
        assert_eq!(c(f1, None, true), Some(Change::Deleted));
        assert_eq!(c(f1, f2, false), Some(Change::Modified), "another file");
        assert_eq!(c(f1, d1, false), Some(Change::Modified), "another type");
        assert_eq!(c(f1, f1, true), Some(Change::Modified));
        assert_eq!(c(f1, f1, false), None);
        assert_eq!(c(d1, d2, true), None, "directories: added or deleted only");
        assert_eq!(c(None, None, true), None);
    }

    #[test]
    fn manifest_diff() {
        let mut b = Manifest::new();
        b.insert("keep".into(), stamp(1, 1, FileType::File));
        b.insert("gone".into(), stamp(1, 1, FileType::File));
        b.insert("edit".into(), stamp(1, 1, FileType::File));
        b.insert("d".into(), stamp(0, 1, FileType::Dir));
        let mut a = b.clone();
        a.remove("gone");
        a.insert("edit".into(), stamp(2, 5, FileType::File));
        a.insert("d".into(), stamp(0, 9, FileType::Dir));
        a.insert("new".into(), stamp(3, 3, FileType::File));
        assert_eq!(
            diff_manifests(&b, &a),
            vec![
                ("edit".into(), Change::Modified),
                ("gone".into(), Change::Deleted),
                ("new".into(), Change::Added),
            ]
        );
    }
}
