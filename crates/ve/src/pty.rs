//! `jcs run -t`: the VE's own terminal. The VE's init opens a pty pair on the VE's own devpts
//! (so `ttyname()` works inside and the slave is `/dev/pts/N` of the VE), hands the master to
//! `jcs run` over a socket (SCM_RIGHTS), and the app starts as the leader of a new session
//! with the slave as its controlling terminal (TIOCSTI, job control and hang-ups stay in the
//! VE). `jcs run` proxies between its own terminal (raw mode, restored after) and the master,
//! window size included.

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use rustix::pty::OpenptFlags;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// The parent's and the child's ends of the socket the master travels on.
pub fn channel() -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
    Ok(socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// In the VE's init, after its mounts: a pty pair of the VE's devpts. Returns (master, slave).
pub fn open_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::unlockpt(&master)?;
    let slave = rustix::pty::ioctl_tiocgptpeer(&master, OpenptFlags::RDWR | OpenptFlags::NOCTTY)?;
    // The caller's window size from the start (the proxy follows changes later): the app may
    // ask before the proxy runs.
    if let Ok(w) = rustix::termios::tcgetwinsize(rustix::stdio::stdin()) {
        let _ = rustix::termios::tcsetwinsize(&master, w);
    }
    Ok((master, slave))
}

/// Sends `fd` over `sock`.
pub fn send_fd(sock: &OwnedFd, fd: BorrowedFd<'_>) -> io::Result<()> {
    let fds = [fd];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = SendAncillaryBuffer::new(&mut space);
    anc.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(sock, &[IoSlice::new(b"m")], &mut anc, SendFlags::empty())?;
    Ok(())
}

/// Receives a descriptor sent by [`send_fd`] (None when the other end closed without one).
pub fn recv_fd(sock: &OwnedFd) -> io::Result<Option<OwnedFd>> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = RecvAncillaryBuffer::new(&mut space);
    let mut b = [0u8; 1];
    rustix::net::recvmsg(
        sock,
        &mut [IoSliceMut::new(&mut b)],
        &mut anc,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    for m in anc.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = m {
            return Ok(fds.next());
        }
    }
    Ok(None)
}

/// In the app's process, before exec: a new session whose controlling terminal is `slave`,
/// on descriptors 0, 1 and 2.
pub fn become_terminal_session(slave: &OwnedFd) -> io::Result<()> {
    rustix::process::setsid()?;
    rustix::process::ioctl_tiocsctty(slave)?;
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors of this (about to exec) process.
        if unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(slave), fd) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `jcs run`'s side: copies its stdin to the master and the master to its stdout until the
/// VE's last process closes the slave (EIO), keeping the VE's window size that of its own
/// terminal. When stdin is a terminal it is put in raw mode for the duration and restored.
pub fn proxy(master: OwnedFd) -> io::Result<()> {
    proxy_until(master, None)
}

/// [`proxy`], which also ends (after copying what the master has ready) once `stop` is set:
/// `jcs exec -t` sets it when its command has exited, though a process it left in the
/// background may still hold the terminal.
pub fn proxy_until(
    master: OwnedFd,
    stop: Option<&std::sync::atomic::AtomicBool>,
) -> io::Result<()> {
    use rustix::event::{poll, PollFd, PollFlags};
    use rustix::termios::{tcgetattr, tcgetwinsize, tcsetattr, tcsetwinsize, OptionalActions};
    let stdin = rustix::stdio::stdin();
    let stdout = rustix::stdio::stdout();
    let saved = rustix::termios::isatty(stdin)
        .then(|| tcgetattr(stdin).ok())
        .flatten();
    if let Some(t) = &saved {
        let mut raw = t.clone();
        raw.make_raw();
        let _ = tcsetattr(stdin, OptionalActions::Now, &raw);
    }
    let mut size = tcgetwinsize(stdin).ok();
    if let Some(w) = size {
        let _ = tcsetwinsize(&master, w);
    }
    let mut stdin_open = true;
    let mut buf = [0u8; 8192];
    let r = (|| -> io::Result<()> {
        loop {
            let stopping = stop.is_some_and(|s| s.load(std::sync::atomic::Ordering::Acquire));
            // The window: checked at every wake-up (and every 200 ms), no signal handler.
            if let Ok(w) = tcgetwinsize(stdin) {
                if size.is_none_or(|s| (s.ws_row, s.ws_col) != (w.ws_row, w.ws_col)) {
                    let _ = tcsetwinsize(&master, w);
                    size = Some(w);
                }
            }
            let mut fds = vec![PollFd::new(&master, PollFlags::IN)];
            if stdin_open {
                fds.push(PollFd::new(&stdin, PollFlags::IN));
            }
            let wait = if stopping { 0 } else { 200_000_000 };
            let ready = match poll(
                &mut fds,
                Some(&rustix::time::Timespec {
                    tv_sec: 0,
                    tv_nsec: wait,
                }),
            ) {
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => 0,
                Err(e) => return Err(e.into()),
            };
            let (m, i) = (fds[0].revents(), fds.get(1).map(|f| f.revents()));
            if stopping && (ready == 0 || m.is_empty()) {
                return Ok(());
            }
            if !m.is_empty() {
                match rustix::io::read(&master, &mut buf) {
                    Ok(0) | Err(rustix::io::Errno::IO) => return Ok(()),
                    Ok(n) => write_all(stdout, &buf[..n])?,
                    Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if i.is_some_and(|i| !i.is_empty()) {
                match rustix::io::read(stdin, &mut buf) {
                    Ok(0) => stdin_open = false,
                    Ok(n) => write_all(master.as_fd(), &buf[..n])?,
                    Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => {}
                    Err(_) => stdin_open = false,
                }
            }
        }
    })();
    if let Some(t) = &saved {
        let _ = tcsetattr(stdin, OptionalActions::Now, t);
    }
    r
}

fn write_all(fd: BorrowedFd<'_>, mut b: &[u8]) -> io::Result<()> {
    while !b.is_empty() {
        match rustix::io::write(fd, b) {
            Ok(n) => b = &b[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_descriptor_travels_over_the_channel() {
        let (p, c) = channel().unwrap();
        let f = std::fs::File::open("/proc/self/exe").unwrap();
        send_fd(&c, f.as_fd()).unwrap();
        let got = recv_fd(&p).unwrap().expect("a descriptor");
        let a = rustix::fs::fstat(&f).unwrap();
        let b = rustix::fs::fstat(&got).unwrap();
        assert_eq!((a.st_dev, a.st_ino), (b.st_dev, b.st_ino));
        drop(c);
        assert!(recv_fd(&p).unwrap().is_none());
    }
}
