//! `jcs run --disk SIZE`: the VE's writable branch (its dirties and the overlay's work
//! directory) on a file system of that size of its own — an ext4 image in the VE's directory,
//! loop-mounted `nodev,nosuid` while the VE runs — so that the kernel refuses its writes past
//! the limit (ENOSPC) instead of the store's disk filling up. The image stays after the VE
//! (the dirties are in it); `jcs inspect` mounts it read-only to read them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("create the VE's disk image {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {detail}")]
    Tool { what: String, detail: String },
}

/// Smallest image JCS makes (ext4 needs room for its own metadata).
pub const MIN_BYTES: u64 = 8 << 20;

fn run(what: String, cmd: &mut Command) -> Result<(), DiskError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| DiskError::Tool {
            what: what.clone(),
            detail: format!("cannot start it: {e}"),
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(DiskError::Tool {
            what,
            detail: err.lines().last().unwrap_or("failed").to_string(),
        });
    }
    Ok(())
}

/// Makes a sparse image of `bytes` at `image` with an empty ext4 file system (root-owned,
/// no journal: it is scratch space, kept for inspection, not for crash safety).
pub fn create(image: &Path, bytes: u64) -> Result<(), DiskError> {
    let create = |source| DiskError::Create {
        path: image.to_path_buf(),
        source,
    };
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(image)
        .map_err(create)?;
    f.set_len(bytes.max(MIN_BYTES)).map_err(create)?;
    drop(f);
    run(
        format!("make a file system on {}", image.display()),
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-O", "^has_journal", "-E"])
            .arg("root_owner=0:0,lazy_itable_init=1")
            .arg(image),
    )
}

/// Loop-mounts `image` on `at` (`nodev,nosuid`; read-only when `read_only`).
pub fn mount(image: &Path, at: &Path, read_only: bool) -> Result<(), DiskError> {
    let opts = if read_only {
        "loop,nodev,nosuid,noexec,ro"
    } else {
        "loop,nodev,nosuid"
    };
    run(
        format!("mount {} on {}", image.display(), at.display()),
        Command::new("mount").args(["-o", opts]).arg(image).arg(at),
    )
}

/// Unmounts what is mounted on `at` (its loop device goes with it).
pub fn unmount(at: &Path) -> Result<(), DiskError> {
    run(
        format!("unmount {}", at.display()),
        Command::new("umount").arg(at),
    )
}
