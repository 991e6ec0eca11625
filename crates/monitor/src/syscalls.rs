//! The system calls the monitor records: what the kernel side captures for each (the flags of
//! `enum jcs_capture` in `bpf/monitor.h`) and what the translator makes of it. Numbers come
//! from libc, so the table is right for the architecture it is built for.

/// `enum jcs_capture` (bpf/monitor.h), through the skeleton's generated type.
pub mod cap {
    use crate::skel::types::jcs_capture as C;
    pub const RECORD: u32 = C::JCS_CAP_RECORD.0;
    pub const FD0: u32 = C::JCS_CAP_FD0.0;
    pub const FD4: u32 = C::JCS_CAP_FD4.0;
    pub const PATH0: u32 = C::JCS_CAP_PATH0.0;
    pub const PATH1: u32 = C::JCS_CAP_PATH1.0;
    pub const ADDR1: u32 = C::JCS_CAP_ADDR1.0;
    pub const NEWFD: u32 = C::JCS_CAP_NEWFD.0;
    pub const ADDR4: u32 = C::JCS_CAP_ADDR4.0;
    pub const ADDRLENP: u32 = C::JCS_CAP_ADDRLENP.0;
    pub const READ: u32 = C::JCS_CAP_READ.0;
    pub const XFER1: u32 = C::JCS_CAP_XFER1.0;
    pub const XFER2: u32 = C::JCS_CAP_XFER2.0;
    pub const PATHB1: u32 = C::JCS_CAP_PATHB1.0;
    pub const PATHB2: u32 = C::JCS_CAP_PATHB2.0;
    pub const PATHB3: u32 = C::JCS_CAP_PATHB3.0;
    pub const MSGHDR: u32 = C::JCS_CAP_MSGHDR.0;
    pub const MMSG: u32 = C::JCS_CAP_MMSG.0;
    pub const PIPE: u32 = C::JCS_CAP_PIPE.0;
    pub const SCM: u32 = C::JCS_CAP_SCM.0;
    pub const VMA: u32 = C::JCS_CAP_VMA.0;
    pub const UNMAP: u32 = C::JCS_CAP_UNMAP.0;
    pub const FAILED: u32 = C::JCS_CAP_FAILED.0;
    pub const NOTIFIED: u32 = C::JCS_CAP_NOTIFIED.0;
    pub const OUT: u32 = C::JCS_CAP_OUT.0;
    pub const XFER3: u32 = C::JCS_CAP_XFER3.0;
    pub const FMODE: u32 = C::JCS_CAP_FMODE.0;
    pub const BIND: u32 = C::JCS_CAP_BIND.0;
}

/// What a recorded system call means for the transaction model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sem {
    /// Opens a file by path (path from the record, identity of the new fd).
    Open,
    /// Moves data from the fd's variable into the VE's memory; `Some(i)`: the offset is args[i].
    ReadFd(Option<usize>),
    /// Moves data from memory to the fd's variable; `Some(i)`: the offset is args[i].
    WriteFd(Option<usize>),
    /// Moves data from one descriptor to another (sendfile, copy_file_range, splice, tee): a
    /// read of the input and a write of the output.
    Transfer(Xfer),
    /// vmsplice: memory into a pipe's write end (a write), or a read end's contents into
    /// memory (a read); the kernel says which end the descriptor is.
    Vmsplice,
    Close,
    /// Changes a file named by the record's path (or by the fd in args[0] when there is none).
    /// With a second path (rename, link): from the first to the second; symlink: the second
    /// (the link) is the variable, the first (the target) is its content. `Read`, `GetXattr`:
    /// the other way, file → memory (readlink reads a link's content).
    Meta(model::at::Op),
    Mmap,
    Socket,
    Connect,
    Bind,
    Listen,
    Accept,
    /// An exec that failed (a successful one is the kernel's exec record): a transaction only
    /// when the VE's policy denied it.
    ExecFailed,
    /// Changes the working directory (the path or fd resolves later relative paths); no
    /// transaction.
    Chdir,
    /// fallocate: changes a byte range of the fd's file (offset args[2], length args[3]).
    Fallocate,
    /// pipe, pipe2: the kernel side remembers the pipe as the VE's; never emitted.
    Pipe,
    /// mprotect making a shared file mapping writable: a write of [pos, pos + args[1]) of
    /// the mapped file (the kernel found it).
    Mprotect,
    /// munmap of a writable shared file mapping: its end (memory and file were linked both
    /// ways while it lasted).
    Munmap,
    /// mremap of a writable shared file mapping: it covers [pos, pos + args[2]) from now on
    /// (a grown part is linked both ways like a new mapping).
    Mremap,
}

/// Where a transfer's two descriptors are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Xfer {
    /// sendfile: out = args[0], in = args[1].
    Sendfile,
    /// copy_file_range, splice: in = args[0], out = args[2].
    Splice,
    /// tee: in = args[0], out = args[1].
    Tee,
}

#[derive(Debug, Clone, Copy)]
pub struct Sys {
    pub nr: i64,
    pub name: &'static str,
    pub cap: u32,
    pub sem: Sem,
    /// Where the directory of each captured path (first, second) comes from: `Some(i)`: the
    /// descriptor in args[i] (an `*at` call; AT_FDCWD = the working directory); `None`: the
    /// working directory.
    pub dirfd: [Option<usize>; 2],
}

/// The flags a call's meaning implies: a write through a descriptor moves data out.
const fn implied(sem: Sem) -> u32 {
    match sem {
        Sem::WriteFd(_) => cap::RECORD | cap::OUT,
        _ => cap::RECORD,
    }
}

const fn sys(nr: i64, name: &'static str, cap: u32, sem: Sem) -> Sys {
    Sys {
        nr,
        name,
        cap: cap | implied(sem),
        sem,
        dirfd: [None, None],
    }
}

const fn at(nr: i64, name: &'static str, cap: u32, sem: Sem, dirfd: [Option<usize>; 2]) -> Sys {
    Sys {
        nr,
        name,
        cap: cap | implied(sem),
        sem,
        dirfd,
    }
}

/// Every recorded system call.
pub fn table() -> Vec<Sys> {
    use cap::*;
    use libc::*;
    use model::at::Op;
    use Sem::*;
    #[allow(unused_mut)]
    let mut t = vec![
        at(SYS_openat, "openat", PATH1 | NEWFD, Open, [Some(0), None]),
        at(SYS_openat2, "openat2", PATH1 | NEWFD, Open, [Some(0), None]),
        sys(SYS_read, "read", READ | FD0, ReadFd(None)),
        sys(SYS_readv, "readv", READ | FD0, ReadFd(None)),
        sys(SYS_pread64, "pread64", READ | FD0, ReadFd(Some(3))),
        sys(SYS_preadv, "preadv", READ | FD0, ReadFd(Some(3))),
        sys(SYS_preadv2, "preadv2", READ | FD0, ReadFd(Some(3))),
        sys(SYS_write, "write", FD0, WriteFd(None)),
        sys(SYS_writev, "writev", FD0, WriteFd(None)),
        sys(SYS_pwrite64, "pwrite64", FD0, WriteFd(Some(3))),
        sys(SYS_pwritev, "pwritev", FD0, WriteFd(Some(3))),
        sys(SYS_pwritev2, "pwritev2", FD0, WriteFd(Some(3))),
        sys(SYS_sendfile, "sendfile", XFER1, Transfer(Xfer::Sendfile)),
        sys(
            SYS_copy_file_range,
            "copy_file_range",
            XFER2,
            Transfer(Xfer::Splice),
        ),
        sys(SYS_splice, "splice", XFER2, Transfer(Xfer::Splice)),
        sys(SYS_tee, "tee", XFER3, Transfer(Xfer::Tee)),
        sys(SYS_vmsplice, "vmsplice", FD0 | FMODE, Vmsplice),
        // READ: closing a file of a read-only branch is dropped like its reads.
        sys(SYS_close, "close", READ | FD0, Close),
        sys(SYS_ftruncate, "ftruncate", FD0, Meta(Op::Truncate)),
        sys(SYS_truncate, "truncate", PATH0, Meta(Op::Truncate)),
        sys(SYS_fchmod, "fchmod", FD0, Meta(Op::Chmod)),
        at(
            SYS_fchmodat,
            "fchmodat",
            PATH1,
            Meta(Op::Chmod),
            [Some(0), None],
        ),
        at(
            SYS_fchmodat2,
            "fchmodat2",
            PATH1,
            Meta(Op::Chmod),
            [Some(0), None],
        ),
        sys(SYS_fchown, "fchown", FD0, Meta(Op::Chown)),
        at(
            SYS_fchownat,
            "fchownat",
            PATH1,
            Meta(Op::Chown),
            [Some(0), None],
        ),
        at(
            SYS_unlinkat,
            "unlinkat",
            PATH1,
            Meta(Op::Unlink),
            [Some(0), None],
        ),
        at(
            SYS_mkdirat,
            "mkdirat",
            PATH1,
            Meta(Op::Mkdir),
            [Some(0), None],
        ),
        at(
            SYS_mknodat,
            "mknodat",
            PATH1,
            Meta(Op::Mknod),
            [Some(0), None],
        ),
        // A symbolic link's content is data a VE wrote (symlink): reading it is a read of the
        // link (file → memory), like a file's.
        at(
            SYS_readlinkat,
            "readlinkat",
            PATH1,
            Meta(Op::Read),
            [Some(0), None],
        ),
        at(
            SYS_renameat,
            "renameat",
            PATH1 | PATHB3,
            Meta(Op::Rename),
            [Some(0), Some(2)],
        ),
        at(
            SYS_renameat2,
            "renameat2",
            PATH1 | PATHB3,
            Meta(Op::Rename),
            [Some(0), Some(2)],
        ),
        at(
            SYS_linkat,
            "linkat",
            PATH1 | PATHB3,
            Meta(Op::Link),
            [Some(0), Some(2)],
        ),
        at(
            SYS_symlinkat,
            "symlinkat",
            PATH0 | PATHB2,
            Meta(Op::Symlink),
            [None, Some(1)],
        ),
        sys(SYS_mmap, "mmap", READ | FD4, Mmap),
        sys(SYS_mprotect, "mprotect", VMA, Mprotect),
        sys(SYS_pkey_mprotect, "pkey_mprotect", VMA, Mprotect),
        sys(SYS_munmap, "munmap", UNMAP, Munmap),
        sys(SYS_mremap, "mremap", UNMAP, Mremap),
        sys(SYS_socket, "socket", NEWFD, Socket),
        sys(SYS_connect, "connect", FD0 | ADDR1, Connect),
        sys(SYS_bind, "bind", FD0 | ADDR1 | BIND, Bind),
        sys(SYS_listen, "listen", FD0, Listen),
        sys(SYS_accept4, "accept4", ADDR1 | ADDRLENP | NEWFD, Accept),
        sys(SYS_accept, "accept", ADDR1 | ADDRLENP | NEWFD, Accept),
        sys(SYS_sendto, "sendto", FD0 | ADDR4, WriteFd(None)),
        sys(
            SYS_recvfrom,
            "recvfrom",
            FD0 | ADDR4 | ADDRLENP,
            ReadFd(None),
        ),
        sys(SYS_sendmsg, "sendmsg", FD0 | MSGHDR | SCM, WriteFd(None)),
        sys(SYS_recvmsg, "recvmsg", FD0 | MSGHDR, ReadFd(None)),
        sys(SYS_sendmmsg, "sendmmsg", FD0 | MMSG, WriteFd(None)),
        sys(SYS_recvmmsg, "recvmmsg", FD0 | MMSG, ReadFd(None)),
        sys(SYS_chdir, "chdir", PATH0, Chdir),
        sys(SYS_execve, "execve", PATH0 | FAILED, ExecFailed),
        at(
            SYS_execveat,
            "execveat",
            PATH1 | FAILED,
            ExecFailed,
            [Some(0), None],
        ),
        sys(SYS_fchdir, "fchdir", FD0, Chdir),
        sys(SYS_fallocate, "fallocate", FD0, Fallocate),
        sys(SYS_pipe2, "pipe2", PIPE, Pipe),
        // Metadata as a channel: extended attributes and timestamps (docs/design.md, "What
        // crosses"). The kernel names the file of the path calls (kprobes on vfs_*xattr and
        // notify_change), so they land on the file's own variable.
        sys(SYS_setxattr, "setxattr", PATH0, Meta(Op::SetXattr)),
        sys(SYS_lsetxattr, "lsetxattr", PATH0, Meta(Op::SetXattr)),
        sys(SYS_fsetxattr, "fsetxattr", FD0, Meta(Op::SetXattr)),
        sys(SYS_removexattr, "removexattr", PATH0, Meta(Op::SetXattr)),
        sys(SYS_lremovexattr, "lremovexattr", PATH0, Meta(Op::SetXattr)),
        sys(SYS_fremovexattr, "fremovexattr", FD0, Meta(Op::SetXattr)),
        sys(SYS_getxattr, "getxattr", PATH0, Meta(Op::GetXattr)),
        sys(SYS_lgetxattr, "lgetxattr", PATH0, Meta(Op::GetXattr)),
        sys(SYS_fgetxattr, "fgetxattr", READ | FD0, Meta(Op::GetXattr)),
        sys(SYS_listxattr, "listxattr", PATH0, Meta(Op::GetXattr)),
        sys(SYS_llistxattr, "llistxattr", PATH0, Meta(Op::GetXattr)),
        sys(SYS_flistxattr, "flistxattr", READ | FD0, Meta(Op::GetXattr)),
        // Linux 6.13's *xattrat calls (the same number on every architecture; libc does not
        // name them yet): path at args[1] under the descriptor args[0].
        at(
            463,
            "setxattrat",
            PATH1,
            Meta(Op::SetXattr),
            [Some(0), None],
        ),
        at(
            464,
            "getxattrat",
            PATH1,
            Meta(Op::GetXattr),
            [Some(0), None],
        ),
        at(
            465,
            "listxattrat",
            PATH1,
            Meta(Op::GetXattr),
            [Some(0), None],
        ),
        at(
            466,
            "removexattrat",
            PATH1,
            Meta(Op::SetXattr),
            [Some(0), None],
        ),
        at(
            SYS_utimensat,
            "utimensat",
            PATH1,
            Meta(Op::Utime),
            [Some(0), None],
        ),
    ];
    // The legacy path-based calls exist on x86_64 only (aarch64 has just the *at forms).
    #[cfg(target_arch = "x86_64")]
    t.extend([
        sys(SYS_open, "open", PATH0 | NEWFD, Open),
        sys(SYS_creat, "creat", PATH0 | NEWFD, Open),
        sys(SYS_unlink, "unlink", PATH0, Meta(Op::Unlink)),
        sys(SYS_mkdir, "mkdir", PATH0, Meta(Op::Mkdir)),
        sys(SYS_mknod, "mknod", PATH0, Meta(Op::Mknod)),
        sys(SYS_readlink, "readlink", PATH0, Meta(Op::Read)),
        sys(SYS_rmdir, "rmdir", PATH0, Meta(Op::Rmdir)),
        sys(SYS_rename, "rename", PATH0 | PATHB1, Meta(Op::Rename)),
        sys(SYS_link, "link", PATH0 | PATHB1, Meta(Op::Link)),
        sys(SYS_symlink, "symlink", PATH0 | PATHB1, Meta(Op::Symlink)),
        sys(SYS_chmod, "chmod", PATH0, Meta(Op::Chmod)),
        sys(SYS_chown, "chown", PATH0, Meta(Op::Chown)),
        sys(SYS_lchown, "lchown", PATH0, Meta(Op::Chown)),
        at(
            SYS_futimesat,
            "futimesat",
            PATH1,
            Meta(Op::Utime),
            [Some(0), None],
        ),
        sys(SYS_utimes, "utimes", PATH0, Meta(Op::Utime)),
        sys(SYS_utime, "utime", PATH0, Meta(Op::Utime)),
        sys(SYS_pipe, "pipe", PIPE, Pipe),
    ]);
    // The calls the VE's pre-image supervisor may answer (ve::supervise): recorded at exit
    // when it did (the kernel skips their sys_enter).
    let notified = notified_calls();
    for s in t.iter_mut() {
        if notified.contains(&s.nr) {
            s.cap |= NOTIFIED;
        }
    }
    t
}

/// The system calls the pre-image supervisor is notified of (`ve::supervise`; a test in
/// `lifecycle` keeps the two lists equal): the `*at` forms, and on x86_64 the legacy ones.
pub fn notified_calls() -> Vec<i64> {
    let mut v = vec![
        libc::SYS_openat,
        libc::SYS_openat2,
        libc::SYS_truncate,
        libc::SYS_unlinkat,
        libc::SYS_renameat,
        libc::SYS_renameat2,
        libc::SYS_mkdirat,
        libc::SYS_fchmodat,
        libc::SYS_fchmodat2,
        libc::SYS_fchownat,
        libc::SYS_utimensat,
        libc::SYS_linkat,
        libc::SYS_symlinkat,
        libc::SYS_fchmod,
        libc::SYS_fchown,
        libc::SYS_mknodat,
        libc::SYS_setxattr,
        libc::SYS_lsetxattr,
        libc::SYS_fsetxattr,
        libc::SYS_removexattr,
        libc::SYS_lremovexattr,
        libc::SYS_fremovexattr,
        463, // setxattrat
        466, // removexattrat
        libc::SYS_bind,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([
        libc::SYS_mknod,
        libc::SYS_utime,
        libc::SYS_utimes,
        libc::SYS_futimesat,
        libc::SYS_open,
        libc::SYS_creat,
        libc::SYS_unlink,
        libc::SYS_rmdir,
        libc::SYS_rename,
        libc::SYS_mkdir,
        libc::SYS_chmod,
        libc::SYS_chown,
        libc::SYS_lchown,
        libc::SYS_link,
        libc::SYS_symlink,
    ]);
    v
}

/// The name of system call `nr` of this architecture ("nrN" when unknown).
pub fn name(nr: u32) -> String {
    #[cfg(target_arch = "x86_64")]
    if let Some(n) = crate::syscall_names::X86_64
        .get(nr as usize)
        .filter(|n| !n.is_empty())
    {
        return (*n).to_string();
    }
    table()
        .iter()
        .find(|s| s.nr == i64::from(nr))
        .map(|s| s.name.to_string())
        .unwrap_or_else(|| format!("nr{nr}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(name(libc::SYS_openat as u32), "openat");
        assert_eq!(name(libc::SYS_getpid as u32), "getpid");
        assert_eq!(name(100_000), "nr100000");
        for s in table() {
            assert_eq!(name(s.nr as u32), s.name);
        }
    }

    #[test]
    fn numbers_are_unique_and_recorded() {
        let t = table();
        let mut nrs: Vec<i64> = t.iter().map(|s| s.nr).collect();
        nrs.sort();
        nrs.dedup();
        assert_eq!(nrs.len(), t.len());
        assert!(t.iter().all(|s| s.cap & cap::RECORD != 0
            && s.nr >= 0
            && (s.nr as u32) < crate::skel::types::jcs_limit::JCS_MAX_SYSCALL.0));
        // A path is taken from one argument only; a second path needs a first.
        let second = cap::PATHB1 | cap::PATHB2 | cap::PATHB3;
        for s in &t {
            assert_ne!(
                s.cap & (cap::PATH0 | cap::PATH1),
                cap::PATH0 | cap::PATH1,
                "{}",
                s.name
            );
            assert!(
                s.cap & second == 0 || s.cap & (cap::PATH0 | cap::PATH1) != 0,
                "{}",
                s.name
            );
            assert!((s.cap & second).count_ones() <= 1, "{}", s.name);
        }
    }
}
