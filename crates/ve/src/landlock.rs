//! Landlock (the kernel's unprivileged sandboxing LSM) for a policy's exec allow-list: the
//! app may execute only the files below the allowed paths. Three system calls, no crate.
//!
//! What it stops is `execve` (and the kernel's opening of an ELF interpreter) of any other
//! file, with EACCES. What it cannot stop: a program that maps code itself (a dynamic loader
//! given a file, an interpreter reading a script); the reads are still recorded.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `LANDLOCK_ACCESS_FS_EXECUTE`.
const ACCESS_FS_EXECUTE: u64 = 1;
/// `LANDLOCK_RULE_PATH_BENEATH`.
const RULE_PATH_BENEATH: u32 = 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The kernel's Landlock ABI version (Err: Landlock is not available).
pub fn abi() -> io::Result<u32> {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) only returns
    // the version.
    let r = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, 0usize, 0usize, 1u32) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as u32)
    }
}

/// A ruleset that lets only the files below `allowed` (paths as the calling process sees
/// them; missing ones allow nothing) and their ELF interpreters be executed. Apply it with
/// [`restrict_self`] after `no_new_privs`.
pub fn exec_ruleset(allowed: &[CString]) -> io::Result<OwnedFd> {
    let attr = RulesetAttr {
        handled_access_fs: ACCESS_FS_EXECUTE,
    };
    // SAFETY: a valid attribute struct of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            std::mem::size_of::<RulesetAttr>(),
            0u32,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor we own.
    let ruleset = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut paths: Vec<CString> = allowed.to_vec();
    let mut interps = vec![];
    for p in allowed {
        use std::os::unix::ffi::OsStrExt;
        let path = std::path::Path::new(std::ffi::OsStr::from_bytes(p.as_bytes()));
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => interps.extend(elf_interpreter(path)),
            Ok(m) if m.is_dir() => {
                // The interpreters of the programs directly in an allowed directory.
                if let Ok(rd) = std::fs::read_dir(path) {
                    for e in rd.flatten() {
                        if e.file_type().is_ok_and(|t| t.is_file()) {
                            interps.extend(elf_interpreter(&e.path()));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    interps.sort();
    interps.dedup();
    paths.extend(interps);
    for p in &paths {
        // SAFETY: a NUL-terminated path.
        let fd = unsafe { libc::open(p.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        if fd < 0 {
            continue; // nothing there: nothing to allow
        }
        // SAFETY: as above.
        let f = unsafe { OwnedFd::from_raw_fd(fd) };
        let rule = PathBeneathAttr {
            allowed_access: ACCESS_FS_EXECUTE,
            parent_fd: f.as_raw_fd(),
        };
        // SAFETY: valid descriptors and a rule struct that outlives the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                ruleset.as_raw_fd(),
                RULE_PATH_BENEATH,
                &rule as *const PathBeneathAttr,
                0u32,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("allow {p:?}: {e}")));
        }
    }
    Ok(ruleset)
}

/// Restricts the calling thread (and what it executes) to `ruleset`. Allocation-free: it runs
/// in the app's process between the clone and `execve`.
pub fn restrict_self(ruleset: &OwnedFd) -> io::Result<()> {
    // SAFETY: a valid ruleset descriptor, no flags.
    let r = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The PT_INTERP of an ELF file (64-bit little-endian), if it has one.
fn elf_interpreter(path: &std::path::Path) -> Option<CString> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let mut h = [0u8; 64];
    f.read_exact(&mut h).ok()?;
    if &h[0..4] != b"\x7fELF" || h[4] != 2 || h[5] != 1 {
        return None;
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u64_at =
        |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or_default());
    let (phoff, phentsize, phnum) = (u64_at(&h, 32), u16_at(&h, 54), u16_at(&h, 56));
    for i in 0..u64::from(phnum.min(64)) {
        let mut ph = [0u8; 56];
        f.seek(SeekFrom::Start(phoff + i * u64::from(phentsize)))
            .ok()?;
        f.read_exact(&mut ph).ok()?;
        if u32::from_le_bytes(ph[0..4].try_into().unwrap_or_default()) == 3 {
            let (off, size) = (u64_at(&ph, 8), u64_at(&ph, 32).min(4096));
            let mut s = vec![0u8; size as usize];
            f.seek(SeekFrom::Start(off)).ok()?;
            f.read_exact(&mut s).ok()?;
            let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
            s.truncate(end);
            return CString::new(s).ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_interpreter_of_a_dynamic_program() {
        // /bin/sh of the build host is a dynamic ELF program on Debian.
        let i = elf_interpreter(std::path::Path::new("/bin/sh"));
        assert!(
            i.as_ref()
                .is_some_and(|p| p.to_bytes().starts_with(b"/lib")),
            "{i:?}"
        );
        assert_eq!(elf_interpreter(std::path::Path::new("/etc/passwd")), None);
    }
}
