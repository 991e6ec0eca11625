//! `jcs exec VE -- CMD`: a new process in a running VE, with what the VE's own processes
//! have: its namespaces (mount, PID, network, UTS, IPC, cgroup), its cgroups (so its limits,
//! its device allow-list, its network policy and its recording), a session of its own, only
//! descriptors 0-2, the default capabilities, no_new_privs, the exec allow-list (Landlock)
//! and the seccomp filter. What it does is recorded as the VE's.
//!
//! The calling process forks a helper that opens the VE's namespaces and cgroup files, enters
//! the namespaces and forks the command's process (the first one in the VE's PID namespace
//! it makes); that process joins the cgroups by writing 0 into their `cgroup.procs` (the
//! cgroup2 one last: from then on the recorder sees it), applies the restrictions and
//! executes the command. The helper waits for it and passes its exit status on.
//!
//! Signals: the command runs in a session of its own, so the caller's terminal never signals
//! it. SIGINT, SIGTERM and SIGHUP that `jcs exec` receives are passed to the helper, which
//! passes them to the command (the helper has a process group of its own, so a Ctrl-C on the
//! terminal reaches the command once); the helper gets SIGHUP when `jcs exec` dies
//! (`PR_SET_PDEATHSIG`) and passes it on too. `jcs exec` then returns the command's status
//! (128+N when the signal ended it).

use crate::launch::{LaunchError, FORWARDED};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};

/// What to run, and where.
#[derive(Debug, Clone)]
pub struct EnterSpec {
    /// The VE's init (its namespaces are entered through /proc/PID/ns).
    pub init_pid: i32,
    /// The VE's cgroup directories: cgroup v1 hierarchies first, the cgroup2 one last.
    pub cgroup_dirs: Vec<PathBuf>,
    /// Whether the VE has a network namespace of its own (not maintenance mode's host net).
    pub own_net: bool,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    /// `USER[:GROUP]`, resolved in the VE's /etc/passwd and /etc/group.
    pub user: Option<String>,
    /// The app's exec allow-list (Landlock), when its policy has one.
    pub exec_allow: Option<Vec<String>>,
    /// `-t`: a pty of the VE's devpts, the command's controlling terminal in a session of its
    /// own, proxied to this process's terminal (as `jcs run -t`).
    pub tty: bool,
}

const EXIT_SETUP: i32 = 125;
const EXIT_CANNOT_EXEC: i32 = 126;

fn cstr(s: &str) -> Result<CString, LaunchError> {
    CString::new(s).map_err(|_| LaunchError::Exec(format!("{s:?} contains a NUL byte")))
}

/// Runs the command in the VE and returns its exit status (128+N for a signal; 125 when the
/// process could not be set up, 126/127 when the command could not be executed).
///
/// With `-t`, `on_tty` is told the index of the command's pty in the VE's devpts before the
/// command starts (the recorder records what crosses it); an error there stops the command.
pub fn exec_in(
    spec: &EnterSpec,
    on_tty: &mut dyn FnMut(u32) -> Result<(), String>,
) -> Result<i32, LaunchError> {
    let open = |p: String, flags: libc::c_int| -> Result<OwnedFd, LaunchError> {
        let c = cstr(&p)?;
        // SAFETY: a valid NUL-terminated path.
        let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(LaunchError::Exec(format!(
                "open {p}: {}",
                io::Error::last_os_error()
            )));
        }
        // SAFETY: a descriptor just returned by open.
        Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
    };
    // Everything that allocates is prepared here, before the forks.
    let mut kinds = vec!["ipc", "uts", "cgroup"];
    if spec.own_net {
        kinds.push("net");
    }
    kinds.push("pid");
    kinds.push("mnt");
    let ns: Vec<OwnedFd> = kinds
        .iter()
        .map(|k| open(format!("/proc/{}/ns/{k}", spec.init_pid), libc::O_RDONLY))
        .collect::<Result<_, _>>()?;
    let procs: Vec<OwnedFd> = spec
        .cgroup_dirs
        .iter()
        .map(|d| open(format!("{}/cgroup.procs", d.display()), libc::O_WRONLY))
        .collect::<Result<_, _>>()?;
    let filters = crate::seccomp::compile().map_err(|e| LaunchError::Exec(e.to_string()))?;
    let program = crate::launch::Program::new(&spec.argv, &spec.env)?;
    let workdir = spec.workdir.as_deref().map(cstr).transpose()?;
    let exec_allow: Option<Vec<CString>> = spec
        .exec_allow
        .as_ref()
        .map(|l| l.iter().map(|p| cstr(p)).collect::<Result<_, _>>())
        .transpose()?;
    let tty = spec
        .tty
        .then(crate::pty::channel)
        .transpose()
        .map_err(LaunchError::Pipe)?;
    // From here until the command has ended, the signals to pass on are blocked in this
    // thread (and in the pty's proxy thread, made below) except while it waits.
    let forwarding = Forwarding::start();
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: fork; the child only makes the calls below and ends in _exit or execve.
    let helper = unsafe { libc::fork() };
    if helper < 0 {
        let e = io::Error::last_os_error();
        forwarding.end();
        return Err(LaunchError::Exec(format!("fork: {e}")));
    }
    if helper == 0 {
        helper_main(
            &ns,
            &procs,
            &filters,
            &program,
            Settings {
                workdir: workdir.as_ref(),
                user: spec.user.as_deref(),
                exec_allow: exec_allow.as_deref(),
                tty: tty.as_ref().map(|(_, child)| child),
                parent,
                forwarding: &forwarding,
            },
        );
    }
    // `-t`: the master of the command's pty, proxied until the command has exited; the
    // command starts once the recorder knows its pty (the byte `g`).
    let proxy = match tty {
        Some((ours, theirs)) => {
            drop(theirs);
            let master = crate::pty::recv_fd(&ours).ok().flatten();
            let told = master.as_ref().map(|m| {
                let index = rustix::pty::ptsname(m, Vec::new())
                    .ok()
                    .and_then(|n| {
                        n.to_str()
                            .ok()
                            .and_then(|n| n.rsplit('/').next())
                            .and_then(|i| i.parse::<u32>().ok())
                    })
                    .ok_or_else(|| "the pty's number".to_string());
                index.and_then(on_tty)
            });
            let go: &[u8] = match &told {
                Some(Ok(())) => b"g",
                Some(Err(e)) => {
                    eprintln!("jcs: exec: {e}");
                    b"n"
                }
                None => b"n",
            };
            let _ = rustix::io::write(&ours, go);
            master
                .filter(|_| told.is_some_and(|t| t.is_ok()))
                .map(|master| {
                    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                    let s = stop.clone();
                    (
                        stop,
                        std::thread::spawn(move || crate::pty::proxy_until(master, Some(&s))),
                    )
                })
        }
        None => None,
    };
    let code = wait_forwarding(helper, &forwarding.old_mask)
        .map_err(|e| LaunchError::Exec(format!("wait for the command: {e}")));
    if let Some((stop, t)) = proxy {
        stop.store(true, std::sync::atomic::Ordering::Release);
        let _ = t.join();
    }
    forwarding.end();
    code
}

/// The last forwarded signal received and not yet passed on (0: none).
static PENDING: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_forwarded(sig: libc::c_int) {
    PENDING.store(sig, Ordering::SeqCst);
}

/// The forwarded signals blocked in the calling thread and caught into `PENDING`; `end` puts
/// back the mask and the dispositions there were.
struct Forwarding {
    old_mask: libc::sigset_t,
    old: [libc::sigaction; 3],
    /// The caller ignored SIGCHLD (its default meanwhile: the helper and this process wait
    /// for their children; the command gets it back).
    chld_ignored: bool,
}

impl Forwarding {
    fn start() -> Forwarding {
        // SAFETY: signal-mask and sigaction calls on values owned here; the handler only
        // stores to an atomic (async-signal-safe).
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in FORWARDED {
                libc::sigaddset(&mut set, s);
            }
            let mut old_mask: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old_mask);
            let mut old: [libc::sigaction; 3] = std::mem::zeroed();
            for (i, s) in FORWARDED.into_iter().enumerate() {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_forwarded as *const () as usize;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(s, &sa, &mut old[i]);
                // One this process was started ignoring (SIGINT in a shell script's
                // background job) stays ignored: not this process's to pass on.
                if old[i].sa_sigaction == libc::SIG_IGN {
                    libc::sigaction(s, &old[i], std::ptr::null_mut());
                }
            }
            crate::launch::take_caller_sigchld();
            let chld_ignored = crate::launch::caller_ignores_sigchld();
            Forwarding {
                old_mask,
                old,
                chld_ignored,
            }
        }
    }

    /// In the command's process: the dispositions the caller had, the handler replaced by
    /// the default (a signal already sent to it is delivered when its mask is put back),
    /// SIGPIPE's default (Rust's runtime makes jcs ignore it), and SIGCHLD ignored again when
    /// the caller ignored it.
    fn for_the_command(&self) {
        // SAFETY: plain signal calls on values owned here.
        unsafe {
            for (i, s) in FORWARDED.into_iter().enumerate() {
                if self.old[i].sa_sigaction != libc::SIG_IGN {
                    libc::signal(s, libc::SIG_DFL);
                }
            }
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            if self.chld_ignored {
                libc::signal(libc::SIGCHLD, libc::SIG_IGN);
            }
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old_mask, std::ptr::null_mut());
        }
    }

    fn end(self) {
        // SAFETY: as in `start`, putting back what it saved.
        unsafe {
            for (i, s) in FORWARDED.into_iter().enumerate() {
                libc::sigaction(s, &self.old[i], std::ptr::null_mut());
            }
            if self.chld_ignored {
                libc::signal(libc::SIGCHLD, libc::SIG_IGN);
            }
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old_mask, std::ptr::null_mut());
        }
    }
}

/// Waits for child `pid`, passing on to it every forwarded signal this process receives
/// meanwhile; its exit status as [`wait_status`] gives it. The signals are blocked except
/// inside `ppoll` on the child's pidfd (which unblocks them atomically), so none can arrive
/// between the check of `PENDING` and the wait; `PENDING` is also read every 100 ms (a thread
/// that did not block them may have taken one). Async-signal-safe (used after `fork`).
fn wait_forwarding(pid: libc::pid_t, unblocked: &libc::sigset_t) -> io::Result<i32> {
    // SAFETY: pidfd_open of a child of this process (not reaped yet). (Pidfds came with
    // Linux 5.3; JCS needs 6.8 for its overlay's lowerdir+.)
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as libc::c_int;
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    loop {
        pass_on(pid);
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let tick = libc::timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        // SAFETY: ppoll of one valid pollfd, with a saved signal mask.
        let r = unsafe { libc::ppoll(&mut p, 1, &tick, unblocked) };
        if r > 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if r < 0 && e.raw_os_error() != Some(libc::EINTR) {
            // SAFETY: closing the pidfd opened above.
            unsafe { libc::close(fd) };
            return Err(e);
        }
    }
    // SAFETY: closing the pidfd opened above.
    unsafe { libc::close(fd) };
    wait_status(pid)
}

/// Sends `pid` the signal received since the last call, if any.
fn pass_on(pid: libc::pid_t) {
    let sig = PENDING.swap(0, Ordering::SeqCst);
    if sig != 0 {
        // SAFETY: a signal to a child of this process, not reaped yet.
        unsafe { libc::kill(pid, sig) };
    }
}

/// What the command's process applies in the VE.
struct Settings<'a> {
    workdir: Option<&'a CString>,
    user: Option<&'a str>,
    exec_allow: Option<&'a [CString]>,
    /// `jcs exec`'s pid (the helper checks it is still its parent).
    parent: libc::pid_t,
    /// The signals `jcs exec` passes on, and the mask and dispositions it had before.
    forwarding: &'a Forwarding,
    /// `-t`: where the master of its pty goes.
    tty: Option<&'a OwnedFd>,
}

/// Waits for child `pid`; its exit status, or 128+N when signal N ended it.
fn wait_status(pid: libc::pid_t) -> io::Result<i32> {
    let mut status = 0;
    // SAFETY: waiting for a child of this process.
    while unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
    Ok(decode_status(status))
}

fn decode_status(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    }
}

/// Says why the setup failed (on the caller's stderr) and exits.
fn die(code: i32, what: &str) -> ! {
    let msg = format!("jcs: exec: {what}: {}\n", io::Error::last_os_error());
    // SAFETY: writing a buffer we own to stderr, then exiting without unwinding.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::_exit(code)
    }
}

fn helper_main(
    ns: &[OwnedFd],
    procs: &[OwnedFd],
    filters: &[seccompiler::BpfProgram],
    program: &crate::launch::Program,
    set: Settings<'_>,
) -> ! {
    let Settings {
        workdir,
        user,
        exec_allow,
        tty,
        parent,
        forwarding,
    } = set;
    // Its own process group: a Ctrl-C on the terminal reaches `jcs exec`, which passes it on
    // (not this helper as well: the command would get it twice). SIGHUP when `jcs exec` dies.
    // SAFETY: plain system calls with integer arguments.
    unsafe {
        libc::setpgid(0, 0);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGHUP as libc::c_ulong);
        if libc::getppid() != parent {
            PENDING.store(libc::SIGHUP, Ordering::SeqCst);
        }
    }
    for fd in ns {
        // SAFETY: a namespace descriptor opened above; 0: any kind.
        if unsafe { libc::setns(fd.as_raw_fd(), 0) } != 0 {
            die(EXIT_SETUP, "enter the VE's namespaces");
        }
    }
    // SAFETY: fork again: the child is the first process of the VE's PID namespace made here.
    let child = unsafe { libc::fork() };
    if child < 0 {
        die(EXIT_SETUP, "fork in the VE");
    }
    if child > 0 {
        let code = wait_forwarding(child, &forwarding.old_mask)
            .unwrap_or_else(|_| die(EXIT_SETUP, "wait in the VE"));
        // SAFETY: exiting the helper with the command's status.
        unsafe { libc::_exit(code) }
    }
    forwarding.for_the_command();
    // Into the VE's cgroups: the v1 hierarchies first, cgroup2 (what the recorder watches)
    // last; "0" is the writing process.
    for fd in procs {
        // SAFETY: writing two bytes to a descriptor opened above.
        if unsafe { libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1) } != 1 {
            die(EXIT_SETUP, "join the VE's cgroup");
        }
    }
    // A session of its own (never the caller's terminal) — with `-t`, one whose controlling
    // terminal is a pty of the VE's devpts, its master sent to `jcs exec` — and only
    // descriptors 0-2.
    match tty {
        Some(sock) => {
            let (master, slave) =
                crate::pty::open_pair().unwrap_or_else(|_| die(EXIT_SETUP, "open a pty in the VE"));
            if crate::pty::send_fd(sock, master.as_fd()).is_err() {
                die(EXIT_SETUP, "hand the pty to jcs exec");
            }
            drop(master);
            // Not before the recorder records what crosses it.
            let mut go = [0u8; 1];
            if !matches!(rustix::io::read(sock, &mut go), Ok(1)) || go[0] != b'g' {
                // SAFETY: exiting without unwinding (jcs exec said why).
                unsafe { libc::_exit(EXIT_SETUP) }
            }
            if crate::pty::become_terminal_session(&slave).is_err() {
                die(EXIT_SETUP, "make the pty the command's terminal");
            }
        }
        None => {
            // SAFETY: a plain system call.
            unsafe { libc::setsid() };
        }
    }
    // SAFETY: a plain system call with integer arguments.
    unsafe {
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
    }
    let ids = user.map(|spec| {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        crate::launch::user::resolve(spec, &read("/etc/passwd"), &read("/etc/group"))
            .unwrap_or_else(|e| {
                let msg = format!("jcs: exec: {e}\n");
                // SAFETY: as in `die`.
                unsafe {
                    libc::write(2, msg.as_ptr().cast(), msg.len());
                    libc::_exit(EXIT_SETUP)
                }
            })
    });
    if let Some(d) = workdir {
        // SAFETY: a valid NUL-terminated path.
        if unsafe { libc::chdir(d.as_ptr()) } != 0 {
            die(EXIT_SETUP, "--workdir");
        }
    }
    let landlock = exec_allow.map(|a| {
        crate::landlock::exec_ruleset(a).unwrap_or_else(|_| die(EXIT_SETUP, "the exec allow-list"))
    });
    if crate::caps::drop_to_default(0).is_err() {
        die(EXIT_SETUP, "drop capabilities");
    }
    if let Some(ids) = ids {
        if crate::launch::switch_user(&ids).is_err() {
            die(EXIT_SETUP, "--user");
        }
    }
    if rustix::thread::set_no_new_privs(true).is_err() {
        die(EXIT_SETUP, "set no_new_privs");
    }
    if let Some(r) = &landlock {
        if crate::landlock::restrict_self(r).is_err() {
            die(EXIT_SETUP, "apply the exec allow-list");
        }
    }
    if crate::seccomp::install(filters).is_err() {
        die(EXIT_SETUP, "install the VE's seccomp filter");
    }
    let (code, msg) = program.exec(EXIT_CANNOT_EXEC);
    let msg = format!("jcs: exec: {msg}\n");
    // SAFETY: as in `die`.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::_exit(code)
    }
}
