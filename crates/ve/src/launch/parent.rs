//! The parent's side of a VE start: the cgroup, `clone` into new namespaces, the two-phase
//! release (hooks before the app's first instruction), waiting, teardown, and the signals
//! that end a VE early.

use super::child::{child_main, ExecSpec};
use super::plan::{clone_flags, own_net, plan_mounts};
use super::{Exit, Hooks, LaunchError, Phases, VeConfig};
use crate::cgroup::{CgroupLayout, VeCgroup};
use crate::fsops::Fs;
use model::NetMode;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::time::Duration;

/// A started VE whose app is running.
#[derive(Debug)]
pub struct Running {
    pub pid: i32,
    pub cgroup: VeCgroup,
    /// Time spent in each phase of the start.
    pub phases: Phases,
    /// `-t`: the master of the VE's pty (see `crate::pty::proxy`).
    pub tty_master: Option<OwnedFd>,
    err_rd: Option<OwnedFd>,
    /// Until the init is in its network namespace.
    net_helper: Option<super::nethelper::NetHelper>,
    /// After the first SIGINT, SIGTERM or SIGHUP (passed to the app), how long the app has to
    /// end before the VE is killed (a second signal kills it at once). Default 10 s.
    pub stop_timeout: Duration,
}

/// Exit codes the child uses for its own failures.
pub(super) const EXIT_SETUP: i32 = 125;
pub(super) const EXIT_EXEC: i32 = 127;
/// The app's process could not execute a command it found (EACCES, ENOEXEC, …).
pub(super) const EXIT_CANNOT_EXEC: i32 = 126;

static LAST_SIGNAL: AtomicI32 = AtomicI32::new(0);
/// How many of them came.
static SIGNALS: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    LAST_SIGNAL.store(sig, Ordering::SeqCst);
    SIGNALS.fetch_add(1, Ordering::SeqCst);
}

/// The signals `jcs run` and `jcs exec` pass on to what they run.
pub(crate) const FORWARDED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Which of [`FORWARDED`] `catch_signals` caught (bit i for the i-th).
static CAUGHT: AtomicU32 = AtomicU32::new(0);
/// Whoever ran jcs ignores SIGCHLD: its children would be reaped by the kernel, their status
/// lost (and no SIGCHLD would wake the VE's init). jcs and the init use the default; the app
/// gets the caller's disposition back.
static CHLD_IGNORED: AtomicBool = AtomicBool::new(false);

/// SIGCHLD's default in jcs, when whoever ran it ignored it (remembered for the VE's app):
/// called first thing by every jcs command (std's `Command::wait` gets ECHILD otherwise), and
/// again before a VE starts.
pub fn take_caller_sigchld() {
    if default_sigchld() {
        CHLD_IGNORED.store(true, Ordering::SeqCst);
    }
}

/// Whether whoever ran jcs ignores SIGCHLD (see `CHLD_IGNORED`).
pub(crate) fn caller_ignores_sigchld() -> bool {
    CHLD_IGNORED.load(Ordering::SeqCst)
}

/// SIGCHLD's default in this process, when it was ignored; says whether it was.
fn default_sigchld() -> bool {
    // SAFETY: reads, and maybe sets, one disposition.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut old);
        if old.sa_sigaction == libc::SIG_IGN {
            libc::signal(libc::SIGCHLD, libc::SIG_DFL);
            return true;
        }
    }
    false
}

/// Catches SIGINT, SIGTERM and SIGHUP without SA_RESTART, so that a blocked wait returns: the
/// first is passed to the app, a second one (or the stop timeout) tears the VE down. One this
/// process was started ignoring (`nohup`'s SIGHUP, SIGINT in a script's background job) stays
/// ignored, and the VE's app inherits that. Called when `jcs run` begins to make a VE (before
/// its catalog row, directories and cgroup: a signal then never leaves them half made) and
/// again by [`start`].
pub fn catch_signals() {
    take_caller_sigchld();
    for (i, s) in FORWARDED.into_iter().enumerate() {
        // SAFETY: reads the disposition, then installs a handler that only stores to atomics
        // (async-signal-safe).
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(s, std::ptr::null(), &mut old);
            if old.sa_sigaction == libc::SIG_IGN {
                continue;
            }
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = 0;
            libc::sigaction(s, &sa, std::ptr::null_mut());
        }
        CAUGHT.fetch_or(1 << i, Ordering::SeqCst);
    }
}

/// In the VE's init: the dispositions `jcs run` was started with for the signals it caught.
pub(super) fn default_signals() {
    let caught = CAUGHT.load(Ordering::SeqCst);
    for (i, s) in FORWARDED.into_iter().enumerate() {
        if caught & (1 << i) != 0 {
            // SAFETY: restores the default disposition.
            unsafe { libc::signal(s, libc::SIG_DFL) };
        }
    }
}

/// The signal that interrupted `jcs run`, if any.
pub fn interrupted() -> Option<i32> {
    match LAST_SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), LaunchError> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| LaunchError::Pipe(e.into()))
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// How many threads this process has (debug builds check it before `clone`).
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// Forks the VE's init into new namespaces. Where the kernel allows, the child is born in the
/// VE's cgroup2 directory (`clone3` with `CLONE_INTO_CGROUP`), which is atomic and avoids a
/// cgroup migration; otherwise a plain `clone`, and the caller moves it. Returns the pid (0
/// in the child) and whether the child was born in the cgroup.
fn clone_into(v2_dir: &Path) -> io::Result<(libc::c_long, bool)> {
    use rustix::fs::{open, Mode, OFlags};
    let flags = clone_flags() as u64;
    if let Ok(dirfd) = open(
        v2_dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        let args = CloneArgs {
            flags: flags | CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: dirfd.as_raw_fd() as u64,
            ..Default::default()
        };
        // SAFETY: a fork-like clone3 (no stack, no CLONE_VM) with a correctly sized argument
        // struct. The process is single-threaded, so the child owns a consistent copy of the
        // address space; it only runs `child_main`, which never returns.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        if pid >= 0 {
            return Ok((pid, true));
        }
        let e = io::Error::last_os_error();
        if !matches!(
            e.raw_os_error(),
            Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL | libc::EOPNOTSUPP)
        ) {
            return Err(e);
        }
    }
    // SAFETY: as above, with the classic clone(2) and SIGCHLD as the exit signal.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags | libc::SIGCHLD as u64,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((pid, false))
}

/// Starts the VE: cgroup, namespaces, release, and returns once the app has been exec'd (or
/// failed to start).
pub fn start(
    cfg: &VeConfig,
    layout: &CgroupLayout,
    fs: &dyn Fs,
    hooks: &mut dyn Hooks,
) -> Result<Running, LaunchError> {
    let mut phases = Phases::new();
    let plan = plan_mounts(cfg);
    let filters = crate::seccomp::compile()?;
    let exec = ExecSpec::new(cfg)?;
    phases.mark("prepare");
    let cgroup = VeCgroup::create(fs, layout, &cfg.cgroup_name, &cfg.limits)?;
    phases.mark("create cgroup");
    let cleanup_cgroup = |cg: &VeCgroup| {
        let _ = cg.kill(fs);
        let _ = cg.remove(fs, Duration::from_secs(5));
    };
    let (sync_rd, sync_wr) = pipe().inspect_err(|_| cleanup_cgroup(&cgroup))?;
    let (err_rd, err_wr) = pipe().inspect_err(|_| cleanup_cgroup(&cgroup))?;
    let (net_rd, net_wr) = if own_net(cfg.net) {
        let (r, w) = pipe().inspect_err(|_| cleanup_cgroup(&cgroup))?;
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    let (tty_parent, tty_child) = if cfg.tty {
        let (p, c) = crate::pty::channel()
            .map_err(LaunchError::Pipe)
            .inspect_err(|_| cleanup_cgroup(&cgroup))?;
        (Some(p), Some(c))
    } else {
        (None, None)
    };
    // (Before the helper and the init are made: they are children this process reaps.)
    catch_signals();
    // The VE's network namespace is made by a helper while the init builds its file system.
    let net_helper = if own_net(cfg.net) {
        Some(
            super::nethelper::NetHelper::start()
                .map_err(LaunchError::Clone)
                .inspect_err(|_| cleanup_cgroup(&cgroup))?,
        )
    } else {
        None
    };
    let v1_tasks: Vec<PathBuf> = cgroup.v1.iter().map(|d| d.join("tasks")).collect();
    let cloned_at = std::time::Instant::now();
    // The child runs on a copy of this address space without the other threads: a lock one
    // of them held (the allocator's) would stay held forever in the child.
    debug_assert_eq!(
        threads(),
        1,
        "ve::launch::start clones: the calling process must be single-threaded"
    );
    let (pid, born_in_v2) = match clone_into(&cgroup.v2) {
        Ok(x) => x,
        Err(e) => {
            if let Some(h) = net_helper {
                h.end();
            }
            cleanup_cgroup(&cgroup);
            return Err(LaunchError::Clone(e));
        }
    };
    if pid == 0 {
        drop(sync_wr);
        drop(err_rd);
        drop(net_rd);
        child_main(
            &plan,
            &exec,
            &filters,
            &v1_tasks,
            super::child::Channels {
                sync_rd,
                err_wr,
                tty: tty_child,
                net_ready: net_wr,
                net_helper: net_helper.as_ref(),
            },
            cloned_at,
        );
    }
    let pid = pid as i32;
    phases.mark("clone");
    // The child's ends: closed here, so that the error pipe ends (EOF) with the app's exec.
    drop(sync_rd);
    drop(err_wr);
    drop(tty_child);
    drop(net_wr);
    let mut net_rd = net_rd.map(std::fs::File::from);
    let mut running = Running {
        pid,
        cgroup,
        tty_master: None,
        err_rd: Some(err_rd),
        phases: Phases::new(),
        net_helper,
        stop_timeout: Duration::from_secs(10),
    };
    let abort = |running: &mut Running, e: LaunchError| {
        let _ = running.cgroup.kill(fs);
        let _ = running.wait_pid(fs);
        running.teardown(fs);
        e
    };
    // The child joins the v1 hierarchies itself (see `child_main`); only when it could not be
    // born in its cgroup2 directory does the parent move it there.
    if !born_in_v2 {
        if let Err(e) = running.cgroup.join_v2(fs, pid) {
            return Err(abort(&mut running, e.into()));
        }
    }
    phases.mark("join cgroup");
    // Before the release (nothing of the app runs before it; the init only builds the VE):
    // the kernel allows the VE only the devices on the list. The program is attached to the
    // parent of every VE cgroup (`jcs/`), in force in each and not overridable by any: loaded
    // by the first VE only (a check of what is attached after that).
    let every_ve = running.cgroup.v2.parent().unwrap_or(&running.cgroup.v2);
    if let Err(e) = crate::devices::restrict(every_ve) {
        return Err(abort(&mut running, e.into()));
    }
    phases.mark("device program");
    // The bridge's hook moves a link into the VE's network namespace: it waits for the init
    // to have made it. Every other hook runs meanwhile.
    if cfg.net == NetMode::Bridge {
        if let Err(e) = net_made(&mut net_rd, &mut running) {
            return Err(abort(&mut running, e));
        }
    }
    if let Err(e) = hooks.before_release(pid, &running.cgroup) {
        return Err(abort(&mut running, LaunchError::Hook(e)));
    }
    if let Err(e) = net_made(&mut net_rd, &mut running) {
        return Err(abort(&mut running, e));
    }
    phases.mark("hooks");
    let mut w = std::fs::File::from(sync_wr);
    let mut release = b"g".to_vec();
    release.extend(hooks.release_data());
    if let Err(e) = w.write_all(&release) {
        // The init ended before its release: it built the VE's file system meanwhile, and
        // said on its error pipe why that failed.
        let mut msg = String::new();
        if let Some(err) = running.err_rd.take() {
            let _ = std::fs::File::from(err).read_to_string(&mut msg);
        }
        let e = if msg.is_empty() {
            LaunchError::Pipe(e)
        } else {
            LaunchError::Setup(msg)
        };
        return Err(abort(&mut running, e));
    }
    drop(w);
    // Wait until the app was exec'd (EOF) or the child reported why it could not start.
    let mut msg = String::new();
    let mut r = std::fs::File::from(running.err_rd.take().expect("error pipe"));
    loop {
        match r.read_to_string(&mut msg) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                let _ = running.cgroup.kill(fs);
            }
            Err(e) => return Err(abort(&mut running, LaunchError::Pipe(e))),
        }
    }
    phases.mark("mounts + exec");
    running.phases = phases;
    if !msg.is_empty() {
        let exit = running.wait_pid(fs);
        running.teardown(fs);
        return Err(match exit {
            Ok(Exit::Code(EXIT_EXEC)) => LaunchError::Exec(msg),
            Ok(Exit::Code(EXIT_CANNOT_EXEC)) => LaunchError::CannotExec(msg),
            _ => LaunchError::Setup(msg),
        });
    }
    if let Some(sock) = tty_parent {
        // Sent before the app started, so it is waiting in the socket.
        running.tty_master = crate::pty::recv_fd(&sock).map_err(LaunchError::Pipe)?;
    }
    Ok(running)
}

/// Waits (once) for the init's byte saying it is in the VE's network namespace, then ends the
/// helper that made it; a child that could not enter it said why on its error pipe and exited.
fn net_made(ready: &mut Option<std::fs::File>, running: &mut Running) -> Result<(), LaunchError> {
    let Some(mut r) = ready.take() else {
        return Ok(());
    };
    let mut b = [0u8; 1];
    let made = loop {
        match r.read(&mut b) {
            Ok(1) => break true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            _ => break false,
        }
    };
    // The init is in the namespace (or gone): its helper's work is done.
    if let Some(h) = running.net_helper.take() {
        h.end();
    }
    if made {
        return Ok(());
    }
    let mut msg = String::new();
    if let Some(err) = running.err_rd.take() {
        let _ = std::fs::File::from(err).read_to_string(&mut msg);
    }
    Err(LaunchError::Setup(if msg.is_empty() {
        "the VE's init ended before it made its network namespace".into()
    } else {
        msg
    }))
}

impl Running {
    fn wait_pid(&mut self, fs: &dyn Fs) -> Result<Exit, io::Error> {
        use rustix::process::{pidfd_open, waitpid, PidfdFlags, WaitOptions};
        let pid = rustix::process::Pid::from_raw(self.pid);
        // Ctrl-C, SIGTERM or SIGHUP: the first is passed to the VE's init, which passes it to
        // the app (as a terminal's Ctrl-C reaches the program in the foreground); when the app
        // has not ended within the stop timeout, or at a second signal, the whole VE is
        // killed. Then its init is collected. A signal whose handler ran before this wait
        // blocked (while the VE started, or its catalog row was written) interrupted no call:
        // the count is read again at least every 100 ms while the init's pidfd is polled (a
        // blocking waitpid alone would wait for the app).
        let pidfd = pid.and_then(|p| pidfd_open(p, PidfdFlags::empty()).ok());
        let mut killed = false;
        let mut passed: Option<(std::time::Instant, u32)> = None;
        loop {
            let n = SIGNALS.load(Ordering::SeqCst);
            if !killed && n > 0 {
                match passed {
                    None => {
                        if let Some(sig) = interrupted() {
                            // SAFETY: a signal to the VE's init, our child (not reaped yet).
                            unsafe { libc::kill(self.pid, sig) };
                        }
                        passed = Some((std::time::Instant::now(), n));
                    }
                    Some((at, seen)) if n > seen || at.elapsed() >= self.stop_timeout => {
                        let _ = self.cgroup.kill(fs);
                        killed = true;
                    }
                    Some(_) => {}
                }
            }
            let opts = match pidfd {
                Some(_) => WaitOptions::NOHANG,
                None => WaitOptions::empty(),
            };
            match waitpid(pid, opts) {
                Ok(Some((_, st))) => {
                    return Ok(match st.terminating_signal() {
                        Some(sig) => Exit::Signal(sig),
                        None => Exit::Code(st.exit_status().unwrap_or(0)),
                    })
                }
                Ok(None) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
            if let Some(fd) = &pidfd {
                let mut p = libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: poll of one valid pollfd (EINTR: the loop reads the flag again).
                unsafe { libc::poll(&mut p, 1, 100) };
            }
        }
    }

    /// Waits for the app to end, then tears the VE down: kills what is left in its cgroup,
    /// removes the cgroup and the scratch directories. The dirties stay.
    pub fn wait(&mut self, fs: &dyn Fs) -> Result<Exit, LaunchError> {
        self.phases.last = std::time::Instant::now();
        let exit = self.wait_pid(fs).map_err(LaunchError::Wait);
        self.phases.mark("app ran");
        self.teardown(fs);
        let exit = exit?;
        Ok(match (exit, interrupted()) {
            (Exit::Signal(libc::SIGKILL), Some(sig)) => Exit::Signal(sig),
            (e, _) => e,
        })
    }

    fn teardown(&mut self, fs: &dyn Fs) {
        if let Some(h) = self.net_helper.take() {
            h.end();
        }
        let _ = self.cgroup.kill(fs);
        self.phases.mark("kill");
        let _ = self.cgroup.remove(fs, Duration::from_secs(10));
        self.phases.mark("remove cgroup");
        // The mount point is the VE's directory and the overlay work directory stays with the
        // dirties (it holds nothing once unmounted); both go with `jcs rm`/`jcs gc`.
    }
}
