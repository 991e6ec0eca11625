//! Snapshots of storage trees (persistent and shared directories) before and after a VE, so
//! that its integrity report can say what it changed there: names only ([`scan_names`]: the
//! directories' own listing, no `lstat` per entry) when the recorder says which files the VE
//! changed, stamps of every entry ([`scan`]) when nothing records the VE. A concurrent VE that
//! maps the same shared directory can make a name it added or removed appear in both reports.

use model::report::{name_change, Change, FileType, Manifest, NameEntry, Names, Stamp};
use rustix::fs::Stat;
use std::io;
use std::path::{Path, PathBuf};

/// The report's type of an `lstat` result.
pub fn file_type(st: &Stat) -> FileType {
    match rustix::fs::FileType::from_raw_mode(st.st_mode) {
        rustix::fs::FileType::RegularFile => FileType::File,
        rustix::fs::FileType::Directory => FileType::Dir,
        rustix::fs::FileType::Symlink => FileType::Symlink,
        _ => FileType::Other,
    }
}

pub fn stamp(st: &Stat) -> Stamp {
    Stamp {
        file_type: file_type(st),
        size: st.st_size as u64,
        mode: st.st_mode & 0o7777,
        ino: st.st_ino,
        mtime_ns: i128::from(st.st_mtime) * 1_000_000_000 + i128::from(st.st_mtime_nsec),
        ctime_ns: i128::from(st.st_ctime) * 1_000_000_000 + i128::from(st.st_ctime_nsec),
    }
}

/// Walks `root` and stamps every entry below it, through `safefs`: no symlink is followed
/// (not even one swapped in for a directory during the walk), nothing is opened but
/// directories.
pub fn scan(root: &Path) -> io::Result<Manifest> {
    let mut out = Manifest::new();
    let mut stack = vec![PathBuf::new()];
    // The root must open; a directory below it that no longer does (replaced by a link while
    // the walk ran) is listed by its own entry and not entered.
    crate::safefs::open_dir(root, Path::new(""))?;
    while let Some(rel) = stack.pop() {
        let Ok(dir) = crate::safefs::open_dir(root, &rel) else {
            continue;
        };
        for (name, st) in crate::safefs::entries(&dir)? {
            let r = rel.join(&name);
            if file_type(&st) == FileType::Dir {
                stack.push(r.clone());
            }
            out.insert(r.to_string_lossy().into_owned(), stamp(&st));
        }
    }
    Ok(out)
}

/// Walks `root` like [`scan`], keeping each entry's type and inode as its directory lists
/// them (no `lstat` per entry).
pub fn scan_names(root: &Path) -> io::Result<Names> {
    let mut out = Names::default();
    walk_names(root, |rel, entry| {
        out.insert(rel.to_string(), entry);
    })?;
    Ok(out)
}

/// The names of `root` that changed since `before` ([`scan_names`] of it), walking it once
/// more: [`model::report::name_change`] of each, `changed(path, inode)` saying whether the
/// VE changed the file a name kept. Sorted by path.
pub fn names_changed(
    root: &Path,
    mut before: Names,
    changed: impl Fn(&str, u64) -> bool,
) -> io::Result<Vec<(String, Change, Option<FileType>)>> {
    let mut out = Vec::new();
    walk_names(root, |rel, a| {
        let b = before.remove(rel);
        let c = name_change(b.as_ref(), Some(&a), changed(rel, a.ino));
        if let Some(c) = c {
            out.push((rel.to_string(), c, b.map(|b| b.file_type)));
        }
    })?;
    out.extend(
        before
            .into_iter()
            .map(|(rel, b)| (rel, Change::Deleted, Some(b.file_type))),
    );
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Every entry below `root` (relative path, type and inode), through `safefs` like [`scan`].
fn walk_names(root: &Path, mut f: impl FnMut(&str, NameEntry)) -> io::Result<()> {
    let mut stack = vec![String::new()];
    crate::safefs::open_dir(root, Path::new(""))?;
    let mut rel = String::new();
    while let Some(dir_rel) = stack.pop() {
        let Ok(dir) = crate::safefs::open_dir(root, Path::new(&dir_rel)) else {
            continue;
        };
        crate::safefs::each_name(&dir, |name, t, ino| {
            rel.clear();
            if !dir_rel.is_empty() {
                rel.push_str(&dir_rel);
                rel.push('/');
            }
            rel.push_str(&name.to_string_lossy());
            let file_type = match t {
                rustix::fs::FileType::RegularFile => FileType::File,
                rustix::fs::FileType::Directory => FileType::Dir,
                rustix::fs::FileType::Symlink => FileType::Symlink,
                _ => FileType::Other,
            };
            if file_type == FileType::Dir {
                stack.push(rel.clone());
            }
            f(&rel, NameEntry { file_type, ino });
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::report::{diff_manifests, Change};

    /// The names-only walk lists what the stamping walk lists, with the same types and
    /// inodes; a symbolic link to a directory is listed, not followed.
    #[test]
    fn names_are_what_the_stamps_say() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::fs::write(d.path().join("a/b/f"), "1").unwrap();
        std::fs::write(d.path().join("g"), "2").unwrap();
        std::os::unix::fs::symlink("/etc", d.path().join("a/l")).unwrap();
        let stamps = scan(d.path()).unwrap();
        let names = scan_names(d.path()).unwrap();
        assert_eq!(names.len(), 5);
        let mut listed: Vec<(String, FileType, u64)> = names
            .iter()
            .map(|(p, n)| (p.clone(), n.file_type, n.ino))
            .collect();
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            listed,
            stamps
                .iter()
                .map(|(p, s)| (p.clone(), s.file_type, s.ino))
                .collect::<Vec<_>>()
        );
        assert_eq!(names["a/l"].file_type, FileType::Symlink);
        // Changed since: a file added, one removed, one the caller says it changed.
        std::fs::write(d.path().join("a/new"), "3").unwrap();
        std::fs::remove_file(d.path().join("g")).unwrap();
        let f_ino = names["a/b/f"].ino;
        let got = names_changed(d.path(), names, |p, ino| p == "a/b/f" && ino == f_ino).unwrap();
        assert_eq!(
            got,
            vec![
                ("a/b/f".into(), Change::Modified, Some(FileType::File)),
                ("a/new".into(), Change::Added, None),
                ("g".into(), Change::Deleted, Some(FileType::File)),
            ]
        );
    }

    #[test]
    fn scan_and_diff() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/a"), "1").unwrap();
        std::fs::write(d.path().join("b"), "2").unwrap();
        let before = scan(d.path()).unwrap();
        assert_eq!(before.len(), 3);
        std::fs::write(d.path().join("sub/a"), "11").unwrap();
        std::fs::remove_file(d.path().join("b")).unwrap();
        std::fs::write(d.path().join("c"), "3").unwrap();
        let after = scan(d.path()).unwrap();
        assert_eq!(
            diff_manifests(&before, &after),
            vec![
                ("b".into(), Change::Deleted),
                ("c".into(), Change::Added),
                ("sub/a".into(), Change::Modified)
            ]
        );
        assert_eq!(
            crate::safefs::sha256(d.path(), Path::new("c"), crate::safefs::hash_deadline())
                .unwrap(),
            "4e07408562bedb8b60ce05c1decfe3ad16b72230967de01f640b7e4729b49fce"
        );
    }
}
