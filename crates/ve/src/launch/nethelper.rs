//! The VE's network namespace, made beside its init: a new network namespace costs ≈ 0.5 ms
//! (the loopback device, its sysctl tables), which a helper process spends while the init
//! builds the VE's file system. The parent starts the helper just before it clones the init
//! (outside the VE's pid namespace: the app stays pid 2); the init enters the helper's
//! namespace through its pidfd before the first step that needs it (`Step::needs_net`); the
//! parent ends the helper once the init said it is in, or when the start fails.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

#[derive(Debug)]
pub(super) struct NetHelper {
    pidfd: OwnedFd,
    pid: libc::pid_t,
    /// The helper's byte: 'n' once its namespace exists, else the errno of its `unshare`
    /// (EOF: it ended).
    made: OwnedFd,
    /// The helper's stack: it shares the parent's address space until it is gone.
    _stack: Vec<u8>,
}

extern "C" fn entry(arg: *mut libc::c_void) -> libc::c_int {
    // (The parent's pid in the high half, the pipe's descriptor in the low one.)
    let (parent, fd) = (
        (arg as usize >> 32) as libc::pid_t,
        arg as usize as u32 as libc::c_int,
    );
    // SAFETY: system calls on integers and on the helper's own descriptor; the only memory
    // written is the helper's own stack (errno's is read).
    unsafe {
        // It holds no descriptor but its own: a copy of one of the parent's pipes (the init's
        // network pipe, its error pipe) would keep the parent from ever seeing its EOF.
        if fd > 0 {
            libc::syscall(libc::SYS_close_range, 0u32, fd as u32 - 1, 0u32);
        }
        libc::syscall(libc::SYS_close_range, fd as u32 + 1, u32::MAX, 0u32);
        // Never outlives `jcs run` (nor starts after it ended).
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        if libc::getppid() != parent {
            libc::_exit(1);
        }
        let b = if libc::unshare(libc::CLONE_NEWNET) == 0 {
            b'n'
        } else {
            *libc::__errno_location() as u8
        };
        libc::write(fd, (&b as *const u8).cast(), 1);
        // Kept until the init is in the namespace and the parent kills this process.
        loop {
            libc::pause();
        }
    }
}

impl NetHelper {
    /// Starts the helper. The caller stays single-threaded (the helper is a process of its
    /// own, sharing only memory it never touches).
    pub(super) fn start() -> io::Result<NetHelper> {
        const STACK: usize = 64 << 10;
        let mut stack = vec![0u8; STACK];
        let (made, theirs) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let mut pidfd: libc::c_int = -1;
        // SAFETY: the helper runs `entry` on its own stack (16-byte aligned top of `stack`,
        // which outlives it: `end` kills and reaps it before the stack is dropped) and makes
        // only system calls. CLONE_VM: no copy of the address space; CLONE_PIDFD: `pidfd`.
        let pid = unsafe {
            let top = stack.as_mut_ptr().add(STACK) as usize & !15;
            libc::clone(
                entry,
                top as *mut libc::c_void,
                libc::CLONE_VM | libc::CLONE_PIDFD | libc::SIGCHLD,
                ((std::process::id() as usize) << 32 | theirs.as_raw_fd() as usize)
                    as *mut libc::c_void,
                &mut pidfd as *mut libc::c_int,
            )
        };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the pidfd the kernel just gave us (CLONE_PIDFD).
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        Ok(NetHelper {
            pidfd,
            pid,
            made,
            _stack: stack,
        })
    }

    /// The descriptors the init keeps to enter the namespace.
    pub(super) fn fds(&self) -> [RawFd; 2] {
        [self.made.as_raw_fd(), self.pidfd.as_raw_fd()]
    }

    /// In the init: waits for the helper's namespace and enters it.
    pub(super) fn enter(&self) -> io::Result<()> {
        let mut b = [0u8; 1];
        loop {
            match rustix::io::read(&self.made, &mut b) {
                Ok(1) if b[0] == b'n' => break,
                Ok(1) => return Err(io::Error::from_raw_os_error(b[0].into())),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
                Ok(_) => return Err(io::Error::other("its helper ended")),
            }
        }
        // SAFETY: setns with the helper's pidfd (integers only).
        if unsafe { libc::setns(self.pidfd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// In the parent: ends and reaps the helper.
    pub(super) fn end(self) {
        // SAFETY: kill and reap the parent's own child (its stack is dropped after).
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}
