//! Snapshots of storage trees (persistent and shared directories) before and after a VE, so
//! that its integrity report can say what it changed there. Until the monitor records each
//! write, this is how a VE's storage changes are found; a concurrent VE that maps the same
//! shared directory can make a change appear in both reports.

use model::report::{FileType, Manifest, Stamp};
use sha2::{Digest, Sha256};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

pub fn file_type(m: &std::fs::Metadata) -> FileType {
    let t = m.file_type();
    if t.is_file() {
        FileType::File
    } else if t.is_dir() {
        FileType::Dir
    } else if t.is_symlink() {
        FileType::Symlink
    } else {
        FileType::Other
    }
}

pub fn stamp(m: &std::fs::Metadata) -> Stamp {
    Stamp {
        file_type: file_type(m),
        size: m.len(),
        mode: m.mode() & 0o7777,
        ino: m.ino(),
        mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        ctime_ns: m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
    }
}

/// Walks `root` (without following symlinks) and stamps every entry below it.
pub fn scan(root: &Path) -> io::Result<Manifest> {
    let mut out = Manifest::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            let p = e.path();
            let m = std::fs::symlink_metadata(&p)?;
            let rel = p
                .strip_prefix(root)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            if m.is_dir() {
                stack.push(p);
            }
            out.insert(rel, stamp(&m));
        }
    }
    Ok(out)
}

/// Hex sha256 of a file's content.
pub fn sha256_file(p: &Path) -> io::Result<String> {
    let mut f = std::fs::File::open(p)?;
    let mut h = Sha256::new();
    io::copy(&mut f, &mut h)?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::report::{diff_manifests, Change};

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
            sha256_file(&d.path().join("c")).unwrap(),
            "4e07408562bedb8b60ce05c1decfe3ad16b72230967de01f640b7e4729b49fce"
        );
    }
}
