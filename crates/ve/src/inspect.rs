//! Reads a VE's dirties (the overlay upper directory) back as integrity-report entries: added
//! and modified files (and which branch they shadow), whiteouts, opaque directories, with
//! size, mode, sha256 and flags.

use crate::manifest::{file_type, sha256_file};
use model::report::{DirtyEntry, DirtyKind, EntryFlags, FileType};
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A read-only branch below the dirties: a label (`template debian 1`) and its directory.
#[derive(Debug, Clone)]
pub struct Lower {
    pub label: String,
    pub dir: PathBuf,
}

fn is_whiteout(m: &std::fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    let Ok(cp) = CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    let name = c"trusted.overlay.opaque";
    let mut buf = [0u8; 4];
    // SAFETY: valid C strings and a buffer of the stated length.
    let n = unsafe {
        libc::lgetxattr(
            cp.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n >= 1 && buf[0] == b'y'
}

/// The highest lower branch in which `rel` exists (and is not itself a whiteout).
fn shadowed(lowers: &[Lower], rel: &Path) -> Option<String> {
    lowers
        .iter()
        .find_map(|l| match std::fs::symlink_metadata(l.dir.join(rel)) {
            Ok(m) if !is_whiteout(&m) => Some(l.label.clone()),
            _ => None,
        })
}

/// Walks the dirties in path order and classifies every entry. Directories that exist in a
/// lower branch and only hold changed files (overlay copy-up parents) are not entries.
pub fn scan_dirties(dirties: &Path, lowers: &[Lower]) -> io::Result<Vec<DirtyEntry>> {
    let mut out = Vec::new();
    walk(dirties, Path::new(""), lowers, &mut out)?;
    Ok(out)
}

fn walk(root: &Path, rel: &Path, lowers: &[Lower], out: &mut Vec<DirtyEntry>) -> io::Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(root.join(rel))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for name in names {
        let r = rel.join(&name);
        let p = root.join(&r);
        let m = std::fs::symlink_metadata(&p)?;
        let inner = format!("/{}", r.display());
        let ft = file_type(&m);
        let mode = m.mode() & 0o7777;
        let entry = |kind: DirtyKind, sha: Option<String>, target: Option<String>| DirtyEntry {
            path: inner.clone(),
            kind,
            file_type: ft,
            size: if ft == FileType::Dir { 0 } else { m.len() },
            mode,
            sha256: sha,
            link_target: target,
            flags: EntryFlags::classify(&inner, ft, mode),
        };
        if is_whiteout(&m) {
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
                match (shadowed(lowers, &r), is_opaque(&p)) {
                    (None, _) => out.push(entry(DirtyKind::Added, None, None)),
                    (Some(b), true) => {
                        out.push(entry(DirtyKind::Opaque { shadows: Some(b) }, None, None))
                    }
                    (Some(_), false) => {}
                }
                walk(root, &r, lowers, out)?;
            }
            _ => {
                let sha = if ft == FileType::File {
                    Some(sha256_file(&p)?)
                } else {
                    None
                };
                let target = if ft == FileType::Symlink {
                    Some(std::fs::read_link(&p)?.to_string_lossy().into_owned())
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
