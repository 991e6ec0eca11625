//! The system calls the monitor records: what the kernel side captures for each (the flags of
//! `enum jcs_capture` in `bpf/monitor.h`) and what the translator makes of it. Numbers come
//! from libc, so the table is right for the architecture it is built for.

/// `enum jcs_capture` (bpf/monitor.h).
pub mod cap {
    pub const RECORD: u16 = 1;
    pub const FD0: u16 = 2;
    pub const FD4: u16 = 4;
    pub const PATH0: u16 = 8;
    pub const PATH1: u16 = 16;
    pub const ADDR1: u16 = 32;
    pub const NEWFD: u16 = 64;
    pub const ADDR4: u16 = 128;
    pub const ADDRLENP: u16 = 256;
    pub const READ: u16 = 512;
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
    Close,
    /// Changes a file named by the record's path (or by the fd in args[0] when there is none).
    Meta(model::at::Op),
    Mmap,
    Socket,
    Connect,
    Bind,
    Listen,
    Accept,
}

#[derive(Debug, Clone, Copy)]
pub struct Sys {
    pub nr: i64,
    pub name: &'static str,
    pub cap: u16,
    pub sem: Sem,
}

/// Every recorded system call.
pub fn table() -> Vec<Sys> {
    use cap::*;
    use model::at::Op;
    use Sem::*;
    let r = RECORD;
    #[allow(unused_mut)]
    let mut t = vec![
        Sys {
            nr: libc::SYS_openat,
            name: "openat",
            cap: r | PATH1 | NEWFD,
            sem: Open,
        },
        Sys {
            nr: libc::SYS_read,
            name: "read",
            cap: r | READ | FD0,
            sem: ReadFd(None),
        },
        Sys {
            nr: libc::SYS_readv,
            name: "readv",
            cap: r | READ | FD0,
            sem: ReadFd(None),
        },
        Sys {
            nr: libc::SYS_pread64,
            name: "pread64",
            cap: r | READ | FD0,
            sem: ReadFd(Some(3)),
        },
        Sys {
            nr: libc::SYS_preadv,
            name: "preadv",
            cap: r | READ | FD0,
            sem: ReadFd(Some(3)),
        },
        Sys {
            nr: libc::SYS_preadv2,
            name: "preadv2",
            cap: r | READ | FD0,
            sem: ReadFd(Some(3)),
        },
        Sys {
            nr: libc::SYS_write,
            name: "write",
            cap: r | FD0,
            sem: WriteFd(None),
        },
        Sys {
            nr: libc::SYS_writev,
            name: "writev",
            cap: r | FD0,
            sem: WriteFd(None),
        },
        Sys {
            nr: libc::SYS_pwrite64,
            name: "pwrite64",
            cap: r | FD0,
            sem: WriteFd(Some(3)),
        },
        Sys {
            nr: libc::SYS_pwritev,
            name: "pwritev",
            cap: r | FD0,
            sem: WriteFd(Some(3)),
        },
        Sys {
            nr: libc::SYS_pwritev2,
            name: "pwritev2",
            cap: r | FD0,
            sem: WriteFd(Some(3)),
        },
        Sys {
            nr: libc::SYS_sendfile,
            name: "sendfile",
            cap: r | FD0,
            sem: WriteFd(None),
        },
        Sys {
            nr: libc::SYS_close,
            name: "close",
            cap: r | FD0,
            sem: Close,
        },
        Sys {
            nr: libc::SYS_ftruncate,
            name: "ftruncate",
            cap: r | FD0,
            sem: Meta(Op::Truncate),
        },
        Sys {
            nr: libc::SYS_truncate,
            name: "truncate",
            cap: r | PATH0,
            sem: Meta(Op::Truncate),
        },
        Sys {
            nr: libc::SYS_fchmod,
            name: "fchmod",
            cap: r | FD0,
            sem: Meta(Op::Chmod),
        },
        Sys {
            nr: libc::SYS_fchmodat,
            name: "fchmodat",
            cap: r | PATH1,
            sem: Meta(Op::Chmod),
        },
        Sys {
            nr: libc::SYS_fchown,
            name: "fchown",
            cap: r | FD0,
            sem: Meta(Op::Chown),
        },
        Sys {
            nr: libc::SYS_fchownat,
            name: "fchownat",
            cap: r | PATH1,
            sem: Meta(Op::Chown),
        },
        Sys {
            nr: libc::SYS_unlinkat,
            name: "unlinkat",
            cap: r | PATH1,
            sem: Meta(Op::Unlink),
        },
        Sys {
            nr: libc::SYS_mkdirat,
            name: "mkdirat",
            cap: r | PATH1,
            sem: Meta(Op::Mkdir),
        },
        Sys {
            nr: libc::SYS_renameat,
            name: "renameat",
            cap: r | PATH1,
            sem: Meta(Op::Rename),
        },
        Sys {
            nr: libc::SYS_renameat2,
            name: "renameat2",
            cap: r | PATH1,
            sem: Meta(Op::Rename),
        },
        Sys {
            nr: libc::SYS_linkat,
            name: "linkat",
            cap: r | PATH1,
            sem: Meta(Op::Link),
        },
        Sys {
            nr: libc::SYS_symlinkat,
            name: "symlinkat",
            cap: r | PATH0,
            sem: Meta(Op::Symlink),
        },
        Sys {
            nr: libc::SYS_mmap,
            name: "mmap",
            cap: r | READ | FD4,
            sem: Mmap,
        },
        Sys {
            nr: libc::SYS_socket,
            name: "socket",
            cap: r | NEWFD,
            sem: Socket,
        },
        Sys {
            nr: libc::SYS_connect,
            name: "connect",
            cap: r | FD0 | ADDR1,
            sem: Connect,
        },
        Sys {
            nr: libc::SYS_bind,
            name: "bind",
            cap: r | FD0 | ADDR1,
            sem: Bind,
        },
        Sys {
            nr: libc::SYS_listen,
            name: "listen",
            cap: r | FD0,
            sem: Listen,
        },
        Sys {
            nr: libc::SYS_accept4,
            name: "accept4",
            cap: r | ADDR1 | ADDRLENP | NEWFD,
            sem: Accept,
        },
        Sys {
            nr: libc::SYS_accept,
            name: "accept",
            cap: r | ADDR1 | ADDRLENP | NEWFD,
            sem: Accept,
        },
        Sys {
            nr: libc::SYS_sendto,
            name: "sendto",
            cap: r | FD0 | ADDR4,
            sem: WriteFd(None),
        },
        Sys {
            nr: libc::SYS_sendmsg,
            name: "sendmsg",
            cap: r | FD0,
            sem: WriteFd(None),
        },
        Sys {
            nr: libc::SYS_sendmmsg,
            name: "sendmmsg",
            cap: r | FD0,
            sem: WriteFd(None),
        },
        Sys {
            nr: libc::SYS_recvfrom,
            name: "recvfrom",
            cap: r | FD0,
            sem: ReadFd(None),
        },
        Sys {
            nr: libc::SYS_recvmsg,
            name: "recvmsg",
            cap: r | FD0,
            sem: ReadFd(None),
        },
        Sys {
            nr: libc::SYS_recvmmsg,
            name: "recvmmsg",
            cap: r | FD0,
            sem: ReadFd(None),
        },
    ];
    // The legacy path-based calls exist on x86_64 only (aarch64 has just the *at forms).
    #[cfg(target_arch = "x86_64")]
    t.extend([
        Sys {
            nr: libc::SYS_open,
            name: "open",
            cap: r | PATH0 | NEWFD,
            sem: Open,
        },
        Sys {
            nr: libc::SYS_creat,
            name: "creat",
            cap: r | PATH0 | NEWFD,
            sem: Open,
        },
        Sys {
            nr: libc::SYS_unlink,
            name: "unlink",
            cap: r | PATH0,
            sem: Meta(Op::Unlink),
        },
        Sys {
            nr: libc::SYS_mkdir,
            name: "mkdir",
            cap: r | PATH0,
            sem: Meta(Op::Mkdir),
        },
        Sys {
            nr: libc::SYS_rmdir,
            name: "rmdir",
            cap: r | PATH0,
            sem: Meta(Op::Rmdir),
        },
        Sys {
            nr: libc::SYS_rename,
            name: "rename",
            cap: r | PATH0,
            sem: Meta(Op::Rename),
        },
        Sys {
            nr: libc::SYS_link,
            name: "link",
            cap: r | PATH0,
            sem: Meta(Op::Link),
        },
        Sys {
            nr: libc::SYS_symlink,
            name: "symlink",
            cap: r | PATH0,
            sem: Meta(Op::Symlink),
        },
        Sys {
            nr: libc::SYS_chmod,
            name: "chmod",
            cap: r | PATH0,
            sem: Meta(Op::Chmod),
        },
        Sys {
            nr: libc::SYS_chown,
            name: "chown",
            cap: r | PATH0,
            sem: Meta(Op::Chown),
        },
        Sys {
            nr: libc::SYS_lchown,
            name: "lchown",
            cap: r | PATH0,
            sem: Meta(Op::Chown),
        },
    ]);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_unique_and_recorded() {
        let t = table();
        let mut nrs: Vec<i64> = t.iter().map(|s| s.nr).collect();
        nrs.sort();
        nrs.dedup();
        assert_eq!(nrs.len(), t.len());
        assert!(t
            .iter()
            .all(|s| s.cap & cap::RECORD != 0 && s.nr >= 0 && s.nr < 512));
        // A path is taken from one argument only.
        assert!(t
            .iter()
            .all(|s| s.cap & (cap::PATH0 | cap::PATH1) != (cap::PATH0 | cap::PATH1)));
    }
}
