//! Host-side access to trees a VE controls (its dirties, persistent and shared storage, app
//! layers built in maintenance mode): never follow a symlink, never open anything but a
//! regular file or a directory, never block. Every path is resolved beneath its tree's root
//! with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`, so a link
//! the VE planted anywhere on the path (even one swapped in while JCS walks the tree) makes
//! the access fail, never reach the host; files open `O_NONBLOCK`, and are checked to be
//! regular with `fstat` before a byte is read (a FIFO or a device cannot hang JCS).

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

fn beneath(root: &Path, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let top = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    // openat2 refuses O_PATH with anything but O_DIRECTORY, O_NOFOLLOW and O_CLOEXEC.
    let flags = flags
        | OFlags::NOFOLLOW
        | OFlags::CLOEXEC
        | if flags.contains(OFlags::PATH) {
            OFlags::empty()
        } else {
            OFlags::NOCTTY
        };
    Ok(rustix::fs::openat2(
        &top,
        rel,
        flags,
        Mode::empty(),
        RESOLVE,
    )?)
}

/// The directory `rel` beneath `root` (`""`: the root itself), readable.
pub fn open_dir(root: &Path, rel: &Path) -> io::Result<OwnedFd> {
    beneath(
        root,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NONBLOCK,
    )
}

/// The regular file `rel` beneath `root`, for reading; anything else is refused.
pub fn open_file(root: &Path, rel: &Path) -> io::Result<std::fs::File> {
    let fd = beneath(root, rel, OFlags::RDONLY | OFlags::NONBLOCK)?;
    if FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode) != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", rel.display()),
        ));
    }
    Ok(std::fs::File::from(fd))
}

/// The largest file JCS hashes (`JCS_HASH_MAX`, a size such as `64M`; default 64 MiB): a VE
/// that leaves a huge (or sparse) file must not make `jcs run` or `jcs inspect` hash for
/// seconds. Larger files are reported without a hash, and the report says why.
pub fn hash_limit() -> u64 {
    std::env::var("JCS_HASH_MAX")
        .ok()
        .and_then(|v| model::limits::parse_size(&v).ok())
        .unwrap_or(64 << 20)
}

/// The time one report (`jcs run`'s storage changes, `jcs inspect`) may spend hashing
/// (`JCS_HASH_SECONDS`, default 10): the files it has not reached by then are reported without
/// a hash, and the report says why.
pub fn hash_deadline() -> std::time::Instant {
    let secs = std::env::var("JCS_HASH_SECONDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(10);
    std::time::Instant::now() + std::time::Duration::from_secs(secs)
}

/// Hex sha256 of the regular file `rel` beneath `root`; an error for a file over
/// [`hash_limit`] (`FileTooLarge`), or when `deadline` passes first (`TimedOut`). A sparse
/// file's holes are hashed as the zeros they read as, without reading them.
pub fn sha256(root: &Path, rel: &Path, deadline: std::time::Instant) -> io::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = open_file(root, rel)?;
    let size = f.metadata()?.len();
    if size > hash_limit() {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("{} bytes: over the hashing limit", size),
        ));
    }
    let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "the hashing time ran out");
    let mut h = Sha256::new();
    let zeros = [0u8; 65536];
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < size {
        if std::time::Instant::now() > deadline {
            return Err(timed_out());
        }
        // The next data at or after `at` (ENXIO: only a hole is left).
        let data = match rustix::fs::seek(&f, rustix::fs::SeekFrom::Data(at)) {
            Ok(d) => d.min(size),
            Err(rustix::io::Errno::NXIO) => size,
            Err(_) => at, // no SEEK_DATA here: read everything
        };
        let mut hole = data - at;
        while hole > 0 {
            let n = hole.min(zeros.len() as u64) as usize;
            h.update(&zeros[..n]);
            hole -= n as u64;
        }
        at = data;
        if at >= size {
            break;
        }
        let end = match rustix::fs::seek(&f, rustix::fs::SeekFrom::Hole(at)) {
            Ok(e) => e.min(size),
            Err(_) => size,
        };
        f.seek(SeekFrom::Start(at))?;
        while at < end {
            if std::time::Instant::now() > deadline {
                return Err(timed_out());
            }
            let want = ((end - at) as usize).min(buf.len());
            let n = f.read(&mut buf[..want])?;
            if n == 0 {
                // Shorter than it said (it shrank meanwhile): what is there is what is hashed.
                at = size;
                break;
            }
            h.update(&buf[..n]);
            at += n as u64;
        }
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The SHA-256 of `bytes`, in hex (as [`sha256`] gives a file's).
pub fn sha256_of(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The entries of directory `dir` (an fd from [`open_dir`]): name and `lstat`.
pub fn entries(dir: &OwnedFd) -> io::Result<Vec<(OsString, Stat)>> {
    let mut out = Vec::new();
    for e in rustix::fs::Dir::read_from(dir)? {
        let e = e?;
        let name = e.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let st = rustix::fs::statat(dir, e.file_name(), AtFlags::SYMLINK_NOFOLLOW)?;
        out.push((OsString::from_vec(name.to_vec()), st));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Calls `f` with each entry of `dir` as the directory itself gives it: name, type and inode,
/// without an `lstat` per entry (one when the file system leaves the type unknown).
pub fn each_name(
    dir: &OwnedFd,
    mut f: impl FnMut(&std::ffi::CStr, FileType, u64),
) -> io::Result<()> {
    for e in rustix::fs::Dir::read_from(dir)? {
        let e = e?;
        let name = e.file_name();
        if matches!(name.to_bytes(), b"." | b"..") {
            continue;
        }
        match e.file_type() {
            FileType::Unknown => {
                let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
                f(name, FileType::from_raw_mode(st.st_mode), st.st_ino)
            }
            t => f(name, t, e.ino()),
        }
    }
    Ok(())
}

/// `lstat` of `rel` beneath `root`; None when it (or a directory on its path) is missing or a
/// symlink is on its path.
pub fn lstat(root: &Path, rel: &Path) -> Option<Stat> {
    let parent = rel.parent().unwrap_or(Path::new(""));
    let name = rel.file_name()?;
    let dir = beneath(root, parent, OFlags::PATH | OFlags::DIRECTORY).ok()?;
    rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW).ok()
}

/// The target of the symlink `name` in directory `dir`.
pub fn read_link(dir: &OwnedFd, name: &std::ffi::OsStr) -> io::Result<String> {
    let t = rustix::fs::readlinkat(dir, name, Vec::new())?;
    Ok(t.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sparse file hashes like its bytes (holes as zeros; checked against a dense copy),
    /// and a passed deadline stops the hashing.
    #[test]
    fn sparse_files_hash_like_their_bytes_and_the_deadline_holds() {
        use std::io::{Seek, SeekFrom, Write};
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let mut f = std::fs::File::create(r.join("sparse")).unwrap();
        f.write_all(b"head").unwrap();
        f.seek(SeekFrom::Start(3 << 20)).unwrap();
        f.write_all(b"middle").unwrap();
        f.set_len(7 << 20).unwrap(); // a hole at the end too
        drop(f);
        let dense = std::fs::read(r.join("sparse")).unwrap();
        std::fs::write(r.join("dense"), &dense).unwrap();
        let later = hash_deadline();
        let a = sha256(r, Path::new("sparse"), later).unwrap();
        assert_eq!(a, sha256(r, Path::new("dense"), later).unwrap());
        let mut h = Sha256::new();
        h.update(&dense);
        let want: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(a, want);
        let past = std::time::Instant::now() - std::time::Duration::from_secs(1);
        let e = sha256(r, Path::new("dense"), past).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn never_follows_never_blocks() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir(r.join("sub")).unwrap();
        std::fs::write(r.join("sub/f"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", r.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", r.join("pw")).unwrap();
        std::os::unix::fs::symlink("sub", r.join("rel")).unwrap();
        rustix::fs::mkfifoat(rustix::fs::CWD, r.join("fifo"), Mode::from_raw_mode(0o600)).unwrap();
        assert_eq!(
            sha256(r, Path::new("sub/f"), hash_deadline()).unwrap(),
            "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
        );
        // The negative control: std follows these links.
        assert!(std::fs::read(r.join("pw")).is_ok() && std::fs::read(r.join("etc/passwd")).is_ok());
        for bad in [
            "pw",
            "etc/passwd",
            "rel/f",
            "../x",
            "/etc/passwd",
            "fifo",
            "sub",
        ] {
            assert!(
                sha256(r, Path::new(bad), hash_deadline()).is_err(),
                "{bad} was read"
            );
        }
        assert!(open_dir(r, Path::new("etc")).is_err());
        assert!(open_dir(r, Path::new("rel")).is_err());
        let names: Vec<_> = entries(&open_dir(r, Path::new("")).unwrap())
            .unwrap()
            .into_iter()
            .map(|(n, st)| {
                (
                    n.into_string().unwrap(),
                    FileType::from_raw_mode(st.st_mode),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("etc".into(), FileType::Symlink),
                ("fifo".into(), FileType::Fifo),
                ("pw".into(), FileType::Symlink),
                ("rel".into(), FileType::Symlink),
                ("sub".into(), FileType::Directory),
            ]
        );
        assert!(lstat(r, Path::new("sub/f")).is_some());
        assert!(lstat(r, Path::new("rel/f")).is_none());
        assert!(lstat(r, Path::new("etc/passwd")).is_none());
    }
}
