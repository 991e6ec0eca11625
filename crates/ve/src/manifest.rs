//! Snapshots of storage trees (persistent and shared directories) before and after a VE, so
//! that its integrity report can say what it changed there: names only ([`scan_names`]: the
//! directories' own listing, no `lstat` per entry) when the recorder says which files the VE
//! changed, stamps of every entry ([`scan`]) when nothing records the VE. A concurrent VE that
//! maps the same shared directory can make a name it added or removed appear in both reports.

use model::report::{name_change, Change, DirNames, FileType, Manifest, NameEntry, Names, Stamp};
use rustix::fs::Stat;
use std::io;
use std::path::{Path, PathBuf};

/// The report's type of an `lstat` result.
pub fn file_type(st: &Stat) -> FileType {
    kind(rustix::fs::FileType::from_raw_mode(st.st_mode))
}

/// The report's type of a file type (from a mode, or from a directory's listing).
fn kind(t: rustix::fs::FileType) -> FileType {
    match t {
        rustix::fs::FileType::RegularFile => FileType::File,
        rustix::fs::FileType::Directory => FileType::Dir,
        rustix::fs::FileType::Symlink => FileType::Symlink,
        _ => FileType::Other,
    }
}

/// An `lstat` result's change time, in ns since the epoch.
pub fn ctime_ns(st: &Stat) -> i128 {
    i128::from(st.st_ctime) * 1_000_000_000 + i128::from(st.st_ctime_nsec)
}

pub fn stamp(st: &Stat) -> Stamp {
    Stamp {
        file_type: file_type(st),
        size: st.st_size as u64,
        mode: st.st_mode & 0o7777,
        ino: st.st_ino,
        mtime_ns: i128::from(st.st_mtime) * 1_000_000_000 + i128::from(st.st_mtime_nsec),
        ctime_ns: ctime_ns(st),
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

/// A directory listed within this long of its last change is racy ([`DirNames::racy`]):
/// change times may be as coarse as the kernel's tick, or whole seconds (ext4 with 128-byte
/// inodes, and other file systems a storage directory may be on).
const RACY_NS: i128 = 2_000_000_000;

/// Walks `root` like [`scan`], keeping each directory's identity and change time and its
/// entries' types and inodes as it lists them (no `lstat` per entry).
pub fn scan_names(root: &Path) -> io::Result<Names> {
    scan_names_reusing(root, Names::default()).map(|(n, _)| n)
}

/// [`scan_names`], taking a directory's listing from `known` (an earlier snapshot: the one
/// the previous VE's report left) when its identity and change time are as they were then
/// and it was not racy: one `fstat` instead of a listing for each directory nothing changed.
/// Also says whether it listed any directory (`known` was not all of it, as it is now).
pub fn scan_names_reusing(root: &Path, mut known: Names) -> io::Result<(Names, bool)> {
    let mut out = Names::default();
    let mut listed = false;
    let mut stack = vec![String::new()];
    crate::safefs::open_dir(root, Path::new(""))?;
    while let Some(dir_rel) = stack.pop() {
        let names = match known.remove(&dir_rel) {
            Some(k) if trusted(root, &dir_rel, &k) => k,
            _ => {
                listed = true;
                match list(root, &dir_rel) {
                    Ok(n) => n,
                    Err(_) => continue,
                }
            }
        };
        for (name, e) in &names.entries {
            if e.file_type == FileType::Dir {
                stack.push(join(&dir_rel, name));
            }
        }
        out.insert(dir_rel, names);
    }
    // (A directory it knew and no longer reached: gone.)
    Ok((out, listed || !known.is_empty()))
}

/// Whether `k`, an earlier listing of directory `rel` of `root`, is still its listing: it was
/// not racy, and the directory has the same inode and ctime (adding, removing or renaming an
/// entry changes its directory's ctime).
fn trusted(root: &Path, rel: &str, k: &DirNames) -> bool {
    !k.racy
        && crate::safefs::open_dir(root, Path::new(rel))
            .and_then(|fd| Ok(rustix::fs::fstat(&fd)?))
            .is_ok_and(|st| st.st_ino == k.ino && ctime_ns(&st) == k.ctime_ns)
}

/// A names-only snapshot as bytes (`decode_names` reads it back): what a store keeps of a
/// storage tree between VEs.
pub fn encode_names(names: &Names) -> Vec<u8> {
    let mut b = b"JCSNAMES1\n".to_vec();
    let put_str = |b: &mut Vec<u8>, s: &str| {
        b.extend_from_slice(&(s.len() as u32).to_le_bytes());
        b.extend_from_slice(s.as_bytes());
    };
    for (rel, d) in names {
        put_str(&mut b, rel);
        b.extend_from_slice(&d.ino.to_le_bytes());
        b.extend_from_slice(&d.ctime_ns.to_le_bytes());
        b.push(u8::from(d.racy));
        b.extend_from_slice(&(d.entries.len() as u32).to_le_bytes());
        for (name, e) in &d.entries {
            put_str(&mut b, name);
            b.push(match e.file_type {
                FileType::File => 0,
                FileType::Dir => 1,
                FileType::Symlink => 2,
                FileType::Other => 3,
            });
            b.extend_from_slice(&e.ino.to_le_bytes());
        }
    }
    b
}

/// [`encode_names`] read back; None for anything else (a damaged or older file: listed anew).
pub fn decode_names(mut b: &[u8]) -> Option<Names> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (h, t) = (b.get(..n)?, b.get(n..)?);
        *b = t;
        Some(h)
    }
    fn u32_(b: &mut &[u8]) -> Option<u32> {
        Some(u32::from_le_bytes(take(b, 4)?.try_into().ok()?))
    }
    fn u64_(b: &mut &[u8]) -> Option<u64> {
        Some(u64::from_le_bytes(take(b, 8)?.try_into().ok()?))
    }
    fn str_(b: &mut &[u8]) -> Option<String> {
        let n = u32_(b)? as usize;
        String::from_utf8(take(b, n)?.to_vec()).ok()
    }
    if take(&mut b, 10)? != b"JCSNAMES1\n" {
        return None;
    }
    let mut out = Names::default();
    while !b.is_empty() {
        let rel = str_(&mut b)?;
        let ino = u64_(&mut b)?;
        let ctime_ns = i128::from_le_bytes(take(&mut b, 16)?.try_into().ok()?);
        let racy = take(&mut b, 1)?[0] != 0;
        let n = u32_(&mut b)? as usize;
        let mut entries = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let name = str_(&mut b)?;
            let file_type = match take(&mut b, 1)?[0] {
                0 => FileType::File,
                1 => FileType::Dir,
                2 => FileType::Symlink,
                3 => FileType::Other,
                _ => return None,
            };
            let ino = u64_(&mut b)?;
            entries.push((name, NameEntry { file_type, ino }));
        }
        out.insert(
            rel,
            DirNames {
                ino,
                ctime_ns,
                racy,
                entries,
            },
        );
    }
    Some(out)
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// Directory `rel` of `root`, listed.
fn list(root: &Path, rel: &str) -> io::Result<DirNames> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    let dir = crate::safefs::open_dir(root, Path::new(rel))?;
    let st = rustix::fs::fstat(&dir)?;
    let mut entries = Vec::new();
    crate::safefs::each_name(&dir, |name, t, ino| {
        let e = NameEntry {
            file_type: kind(t),
            ino,
        };
        entries.push((name.to_string_lossy().into_owned(), e));
    })?;
    Ok(DirNames {
        ino: st.st_ino,
        ctime_ns: ctime_ns(&st),
        racy: now - ctime_ns(&st) < RACY_NS,
        entries,
    })
}

/// What [`names_changed`] finds: each changed name (relative path, change, its type before),
/// the snapshot after, and whether that differs from the one before.
pub type NamesChanged = (Vec<(String, Change, Option<FileType>)>, Names, bool);

/// The names of `root` that changed since `before` ([`scan_names`] of it):
/// [`model::report::name_change`] of each, `changed(path, inode)` saying whether the VE
/// changed the file a name kept. A directory whose identity and change time are as they were
/// (and were not racy) is not listed again. Sorted by path; with the snapshot of `root` now
/// (for [`scan_names_reusing`] before the next VE), and whether it differs from `before` in
/// anything but racy directories trusted (a directory was listed again, or is gone).
pub fn names_changed(
    root: &Path,
    mut before: Names,
    changed: impl Fn(&str, u64) -> bool,
) -> io::Result<NamesChanged> {
    let mut out = Vec::new();
    let mut after = Names::default();
    let mut relisted = false;
    let mut stack = vec![String::new()];
    crate::safefs::open_dir(root, Path::new(""))?;
    while let Some(dir_rel) = stack.pop() {
        let b = before.remove(&dir_rel);
        let same = b.as_ref().is_some_and(|b| trusted(root, &dir_rel, b));
        let b = match b {
            Some(b) if same => {
                // Its entries are as they were: a file it names changed only if the VE
                // changed it. (One path buffer for all: this loop sees every unchanged file.)
                let mut p = String::new();
                for (name, e) in &b.entries {
                    p.clear();
                    if !dir_rel.is_empty() {
                        p.push_str(&dir_rel);
                        p.push('/');
                    }
                    p.push_str(name);
                    if e.file_type == FileType::Dir {
                        stack.push(p.clone());
                    } else if changed(&p, e.ino) {
                        out.push((p.clone(), Change::Modified, Some(e.file_type)));
                    }
                }
                after.insert(dir_rel, b);
                continue;
            }
            b => b,
        };
        relisted = true;
        let Ok(now) = list(root, &dir_rel) else {
            // Gone (or no longer a directory): its entries are deleted, below.
            if let Some(b) = b {
                before.insert(dir_rel, b);
            }
            continue;
        };
        let mut was: std::collections::HashMap<String, NameEntry> = b
            .map(|b| b.entries.into_iter().collect())
            .unwrap_or_default();
        for (name, a) in &now.entries {
            let p = join(&dir_rel, name);
            let b = was.remove(name);
            if a.file_type == FileType::Dir {
                stack.push(p.clone());
            }
            let c = name_change(b.as_ref(), Some(a), changed(&p, a.ino));
            if let Some(c) = c {
                out.push((p, c, b.map(|b| b.file_type)));
            }
        }
        for (name, b) in was {
            out.push((join(&dir_rel, &name), Change::Deleted, Some(b.file_type)));
        }
        after.insert(dir_rel, now);
    }
    // Directories not reached again (removed, renamed away, replaced): their entries are
    // deleted.
    for (dir_rel, b) in before {
        relisted = true;
        for (name, e) in b.entries {
            out.push((join(&dir_rel, &name), Change::Deleted, Some(e.file_type)));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((out, after, relisted))
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
        let mut listed: Vec<(String, FileType, u64)> = names
            .iter()
            .flat_map(|(dir, n)| {
                n.entries
                    .iter()
                    .map(move |(name, e)| (join(dir, name), e.file_type, e.ino))
            })
            .collect();
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            listed,
            stamps
                .iter()
                .map(|(p, s)| (p.clone(), s.file_type, s.ino))
                .collect::<Vec<_>>()
        );
        assert_eq!(names.len(), 3, "the root, a and a/b");
        assert!(names.values().all(|n| n.racy), "just made");
    }

    /// What changed since a names-only snapshot: names added, removed, replaced, whole
    /// directories renamed, and the files the caller says changed; a directory whose identity
    /// and change time are as they were is trusted (a name only the snapshot has there is not
    /// reported), unless it was racy.
    #[test]
    fn names_changed_lists_every_kind_of_change_and_trusts_unchanged_directories() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for dir in ["a/b", "c/e"] {
            std::fs::create_dir_all(r.join(dir)).unwrap();
        }
        for f in ["a/b/f", "a/x", "c/e/h", "g", "kept"] {
            std::fs::write(r.join(f), "1").unwrap();
        }
        let snapshot = || {
            let mut n = scan_names(r).unwrap();
            for v in n.values_mut() {
                v.racy = false; // (as if listed long after their last change)
            }
            // A name the snapshot alone has, in a directory the VE leaves alone.
            n.get_mut("a/b").unwrap().entries.push((
                "ghost".into(),
                NameEntry {
                    file_type: FileType::File,
                    ino: 1,
                },
            ));
            n
        };
        let before = snapshot();
        let f_ino = before["a/b"]
            .entries
            .iter()
            .find(|(n, _)| n == "f")
            .unwrap()
            .1
            .ino;
        std::fs::write(r.join("a/new"), "2").unwrap();
        std::fs::remove_file(r.join("g")).unwrap();
        std::fs::write(r.join("a/tmp"), "3").unwrap();
        std::fs::rename(r.join("a/tmp"), r.join("a/x")).unwrap();
        std::fs::rename(r.join("c"), r.join("c2")).unwrap();
        std::fs::write(r.join("a/b/f"), "changed in place").unwrap();
        let changed = |p: &str, ino: u64| p == "a/b/f" && ino == f_ino;
        let (got, after, relisted) = names_changed(r, before, changed).unwrap();
        assert!(relisted);
        // What it saw after is the tree now (the ghost, in a trusted directory, stays: it
        // was trusted).
        let mut now = scan_names(r).unwrap();
        now.get_mut("a/b").unwrap().entries.push((
            "ghost".into(),
            NameEntry {
                file_type: FileType::File,
                ino: 1,
            },
        ));
        let entries = |n: &Names| {
            let mut v: Vec<(String, String, u64)> = n
                .iter()
                .flat_map(|(d, x)| {
                    x.entries
                        .iter()
                        .map(move |(e, y)| (d.clone(), e.clone(), y.ino))
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(entries(&after), entries(&now));
        let file = Some(FileType::File);
        let dir = Some(FileType::Dir);
        assert_eq!(
            got,
            vec![
                ("a/b/f".into(), Change::Modified, file),
                ("a/new".into(), Change::Added, None),
                ("a/x".into(), Change::Modified, file),
                ("c".into(), Change::Deleted, dir),
                ("c/e".into(), Change::Deleted, dir),
                ("c/e/h".into(), Change::Deleted, file),
                ("c2".into(), Change::Added, None),
                ("c2/e".into(), Change::Added, None),
                ("c2/e/h".into(), Change::Added, None),
                ("g".into(), Change::Deleted, file),
            ]
        );
        // The same directory, racy: listed again, the ghost is found gone.
        let mut before = snapshot();
        before.get_mut("a/b").unwrap().racy = true;
        let (got, _, _) = names_changed(r, before, |_, _| false).unwrap();
        assert_eq!(got, vec![("a/b/ghost".into(), Change::Deleted, file)]);
    }

    /// A snapshot kept as bytes reads back the same, and a walk reusing it takes a directory's
    /// listing from it only while the directory is as it was and was not racy; damaged bytes
    /// are refused.
    #[test]
    fn a_kept_snapshot_is_reused_only_where_nothing_changed() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        std::fs::write(r.join("a/b/f"), "1").unwrap();
        let mut kept = scan_names(r).unwrap();
        for v in kept.values_mut() {
            v.racy = false;
        }
        let ghost = (
            "ghost".to_string(),
            NameEntry {
                file_type: FileType::File,
                ino: 1,
            },
        );
        kept.get_mut("a/b").unwrap().entries.push(ghost.clone());
        let bytes = encode_names(&kept);
        assert_eq!(decode_names(&bytes).as_ref(), Some(&kept));
        assert_eq!(decode_names(&bytes[..bytes.len() - 3]), None, "truncated");
        assert_eq!(decode_names(b"JCSNAMES0\n"), None, "another format");
        std::fs::write(r.join("a/new"), "2").unwrap();
        let (now, listed) = scan_names_reusing(r, decode_names(&bytes).unwrap()).unwrap();
        assert!(listed, "a changed");
        assert!(now["a/b"].entries.contains(&ghost), "a/b trusted");
        assert!(
            now["a"].entries.iter().any(|(n, _)| n == "new"),
            "a listed anew"
        );
        let mut racy = decode_names(&bytes).unwrap();
        racy.get_mut("a/b").unwrap().racy = true;
        let (now, _) = scan_names_reusing(r, racy).unwrap();
        assert!(
            !now["a/b"].entries.contains(&ghost),
            "a racy a/b is listed anew"
        );
        // All of it as it is now: nothing listed.
        let mut all = now.clone();
        for v in all.values_mut() {
            v.racy = false;
        }
        let (again, listed) = scan_names_reusing(r, all.clone()).unwrap();
        assert!(!listed);
        assert_eq!(again, all);
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
