//! Reads a VE's dirties (the overlay upper directory) back as integrity-report entries: added
//! and modified files (and which branch they shadow), whiteouts, opaque directories, with
//! size, mode, sha256 and flags.

use crate::manifest::file_type;
use crate::safefs;
use model::report::{DirtyEntry, DirtyKind, EntryFlags, FileType};
use rustix::fs::Stat;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// A read-only branch below the dirties: a label (`template debian 1`) and its directory.
#[derive(Debug, Clone)]
pub struct Lower {
    pub label: String,
    pub dir: PathBuf,
}

/// An overlay whiteout: a character device 0:0.
fn is_whiteout(st: &Stat) -> bool {
    rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::CharacterDevice
        && st.st_rdev == 0
}

/// Whether directory `dir` carries overlay's opaque mark.
fn is_opaque(dir: &OwnedFd) -> bool {
    let mut buf = [0u8; 4];
    matches!(
        rustix::fs::fgetxattr(dir, "trusted.overlay.opaque", &mut buf[..]),
        Ok(n) if n >= 1 && buf[0] == b'y'
    )
}

/// The highest lower branch in which `rel` exists (and is not itself a whiteout); nothing on
/// its path is followed.
fn shadowed(lowers: &[Lower], rel: &Path) -> Option<String> {
    lowers
        .iter()
        .find_map(|l| match safefs::lstat(&l.dir, rel) {
            Some(st) if !is_whiteout(&st) => Some(l.label.clone()),
            _ => None,
        })
}

/// Walks the dirties in path order and classifies every entry. Directories that exist in a
/// lower branch and only hold changed files (overlay copy-up parents) are not entries. The
/// walk goes through `safefs` (the dirties are the VE's: nothing there is followed, only
/// regular files are read).
pub fn scan_dirties(dirties: &Path, lowers: &[Lower]) -> io::Result<Vec<DirtyEntry>> {
    let mut out = Vec::new();
    walk(
        dirties,
        Path::new(""),
        lowers,
        &mut out,
        crate::safefs::hash_deadline(),
    )?;
    Ok(out)
}

fn walk(
    root: &Path,
    rel: &Path,
    lowers: &[Lower],
    out: &mut Vec<DirtyEntry>,
    deadline: std::time::Instant,
) -> io::Result<()> {
    let dir = safefs::open_dir(root, rel)?;
    for (name, st) in safefs::entries(&dir)? {
        let r = rel.join(&name);
        let inner = format!("/{}", r.display());
        let ft = file_type(&st);
        let mode = st.st_mode & 0o7777;
        let entry = |kind: DirtyKind, sha: Option<String>, target: Option<String>| DirtyEntry {
            path: inner.clone(),
            kind,
            file_type: ft,
            size: if ft == FileType::Dir {
                0
            } else {
                st.st_size as u64
            },
            mode,
            sha256: sha,
            link_target: target,
            flags: EntryFlags::classify(&inner, ft, mode),
        };
        if is_whiteout(&st) {
            let mut e = entry(
                DirtyKind::Deleted {
                    shadows: shadowed(lowers, &r).unwrap_or_else(|| "no lower branch".into()),
                },
                None,
                None,
            );
            e.file_type = FileType::Other;
            e.flags = EntryFlags::classify(&inner, FileType::Other, 0);
            out.push(e);
            continue;
        }
        match ft {
            FileType::Dir => {
                // An opaque directory with nothing below it is simply new.
                let opaque = safefs::open_dir(root, &r).is_ok_and(|d| is_opaque(&d));
                match (shadowed(lowers, &r), opaque) {
                    (None, _) => out.push(entry(DirtyKind::Added, None, None)),
                    (Some(b), true) => {
                        out.push(entry(DirtyKind::Opaque { shadows: Some(b) }, None, None))
                    }
                    (Some(_), false) => {}
                }
                walk(root, &r, lowers, out, deadline)?;
            }
            _ => {
                let sha = if ft == FileType::File {
                    // None past the hashing limit (the report says so).
                    safefs::sha256(root, &r, deadline).ok()
                } else {
                    None
                };
                let target = if ft == FileType::Symlink {
                    Some(safefs::read_link(&dir, &name)?)
                } else {
                    None
                };
                let kind = match shadowed(lowers, &r) {
                    Some(b) => DirtyKind::Modified { shadows: b },
                    None => DirtyKind::Added,
                };
                out.push(entry(kind, sha, target));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_added_and_modified() {
        let up = tempfile::tempdir().unwrap();
        let low = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(low.path().join("etc")).unwrap();
        std::fs::write(low.path().join("etc/passwd"), "root").unwrap();
        std::fs::create_dir_all(up.path().join("etc")).unwrap();
        std::fs::write(up.path().join("etc/passwd"), "evil").unwrap();
        std::fs::create_dir_all(up.path().join("bin")).unwrap();
        std::fs::write(up.path().join("bin/ps"), "x").unwrap();
        std::fs::set_permissions(
            up.path().join("bin/ps"),
            std::os::unix::fs::PermissionsExt::from_mode(0o4755),
        )
        .unwrap();
        let lowers = vec![Lower {
            label: "template t v1".into(),
            dir: low.path().into(),
        }];
        let e = scan_dirties(up.path(), &lowers).unwrap();
        let paths: Vec<_> = e.iter().map(|e| (e.path.as_str(), &e.kind)).collect();
        assert_eq!(
            paths,
            vec![
                ("/bin", &DirtyKind::Added),
                ("/bin/ps", &DirtyKind::Added),
                (
                    "/etc/passwd",
                    &DirtyKind::Modified {
                        shadows: "template t v1".into()
                    }
                ),
            ]
        );
        let ps = &e[1];
        assert!(ps.flags.executable && ps.flags.setuid && ps.flags.system_path);
        assert_eq!(ps.size, 1);
        assert_eq!(ps.sha256.as_deref().unwrap().len(), 64);
    }
}
