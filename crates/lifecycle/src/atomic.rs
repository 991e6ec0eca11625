//! Building a directory of the store all at once (templates, app layers).

use crate::{Context, Result};
use std::path::Path;

/// Builds a directory under a temporary name next to `dest` and renames it into place only
/// when `build` succeeded; on failure the temporary directory is removed, so nothing
/// half-created is left behind.
pub fn build_dir_atomically(dest: &Path, build: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let parent = dest.parent().ctx(|| "destination has no parent")?;
    // (A parent made here goes again when the build fails: a failed `template create NAME`
    // leaves no empty `templates/NAME` behind.)
    let made_parent = !parent.exists();
    std::fs::create_dir_all(parent).ctx(|| format!("create {}", parent.display()))?;
    let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("x");
    let tmp = parent.join(format!(".{name}.partial-{}", std::process::id()));
    if tmp.exists() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    std::fs::create_dir(&tmp).ctx(|| format!("create {}", tmp.display()))?;
    let r = build(&tmp).and_then(|_| {
        std::fs::rename(&tmp, dest)
            .ctx(|| format!("rename {} to {}", tmp.display(), dest.display()))
    });
    if r.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
        if made_parent {
            let _ = std::fs::remove_dir(parent); // only when empty
        }
    }
    r
}

/// Writes a file all at once: a temporary file beside it, synced, renamed into place.
pub fn write_file(dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("x");
    let tmp = dest.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let r = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dest)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_build_leaves_nothing_not_even_the_parent_it_made() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("templates/img/1");
        let r = build_dir_atomically(&dest, |dir| {
            std::fs::write(dir.join("half"), "x").unwrap();
            Err(std::io::Error::other("the image is damaged")).ctx(|| "import")
        });
        assert!(r.is_err());
        assert!(!root.path().join("templates/img").exists());
        // A parent that existed (another version) stays.
        let other = root.path().join("templates/base/1");
        build_dir_atomically(&other, |_| Ok(())).unwrap();
        let second = root.path().join("templates/base/2");
        assert!(
            build_dir_atomically(&second, |_| Err(std::io::Error::other("no")).ctx(|| "x"))
                .is_err()
        );
        assert!(other.exists() && !second.exists());
    }
}
