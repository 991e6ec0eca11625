//! The VE's side, after `clone`: its init runs the mount plan, drops into the new root and
//! starts the app (capabilities, no_new_privs, seccomp, `execve`). Every path ends in `-> !`:
//! the init exits with the app's status, a failure is written to the error pipe first.

use super::parent::{default_signals, EXIT_CANNOT_EXEC, EXIT_SETUP};
use super::plan::Step;
use super::sys::{last_err, run_step};
use super::{LaunchError, VeConfig};
use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

/// A command, pre-converted so that the process that runs it allocates nothing: its argument
/// and environment strings, the candidate paths of argv[0] (PATH order) and the
/// NULL-terminated pointer arrays `execve` takes. The VE's start and `jcs exec` share it.
#[derive(Debug)]
pub(crate) struct Program {
    pub(crate) argv: Vec<CString>,
    /// Owns the strings `envp_ptrs` points into.
    #[allow(dead_code)]
    envp: Vec<CString>,
    /// Candidate paths for argv[0], in PATH order.
    pub(crate) candidates: Vec<CString>,
    /// Pointers into `argv` and `envp` (the CStrings' heap buffers do not move).
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
}

impl Program {
    pub(crate) fn new(argv: &[String], env: &[(String, String)]) -> Result<Program, LaunchError> {
        let bad = |s: &str| LaunchError::Exec(format!("argument {s:?} contains a NUL byte"));
        if argv.is_empty() {
            return Err(LaunchError::Exec(
                "no command to run (give one after --, or set the app's --cmd)".into(),
            ));
        }
        let c_argv = argv
            .iter()
            .map(|a| CString::new(a.as_str()).map_err(|_| bad(a)))
            .collect::<Result<Vec<_>, _>>()?;
        let envp = env
            .iter()
            .map(|(k, v)| CString::new(format!("{k}={v}")).map_err(|_| bad(v)))
            .collect::<Result<Vec<_>, _>>()?;
        let path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
            .unwrap_or(DEFAULT_PATH);
        let a0 = &argv[0];
        let candidates = if a0.contains('/') {
            vec![c_argv[0].clone()]
        } else {
            path.split(':')
                .filter(|d| !d.is_empty())
                .map(|d| CString::new(format!("{d}/{a0}")).map_err(|_| bad(a0)))
                .collect::<Result<Vec<_>, _>>()?
        };
        let ptrs = |v: &[CString]| {
            v.iter()
                .map(|c| c.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect::<Vec<_>>()
        };
        let (argv_ptrs, envp_ptrs) = (ptrs(&c_argv), ptrs(&envp));
        Ok(Program {
            argv: c_argv,
            envp,
            candidates,
            argv_ptrs,
            envp_ptrs,
        })
    }

    /// Executes the first candidate that exists; returns only when none could be, with the
    /// exit status and message to report (127 not found, else 126 or `cannot` as given).
    pub(crate) fn exec(&self, cannot: i32) -> (i32, String) {
        let mut last = libc::ENOENT;
        for cand in &self.candidates {
            // SAFETY: NULL-terminated arrays of valid C strings that outlive the call.
            unsafe {
                libc::execve(
                    cand.as_ptr(),
                    self.argv_ptrs.as_ptr(),
                    self.envp_ptrs.as_ptr(),
                )
            };
            let e = io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::ENOENT);
            if e != libc::ENOENT && e != libc::ENOTDIR {
                last = e;
                if e != libc::EACCES {
                    break;
                }
            }
        }
        let a0 = self.argv[0].to_string_lossy();
        if last == libc::ENOENT {
            (EXIT_NOT_FOUND, format!("command not found in the VE: {a0}"))
        } else {
            (
                cannot,
                format!(
                    "cannot execute {a0} in the VE: {}",
                    io::Error::from_raw_os_error(last)
                ),
            )
        }
    }
}

/// Switches to `--user`'s ids: groups, then group, then user (which leaves a non-root user no
/// capabilities). Raw system calls: libc's wrappers would signal the threads of the VE's init,
/// whose memory the app's process shares until its exec.
pub(crate) fn switch_user(ids: &super::user::Ids) -> io::Result<()> {
    // SAFETY: credential calls with integer arguments and a valid array.
    let ok = unsafe {
        libc::syscall(libc::SYS_setgroups, ids.groups.len(), ids.groups.as_ptr()) == 0
            && libc::syscall(libc::SYS_setresgid, ids.gid, ids.gid, ids.gid) == 0
            && libc::syscall(libc::SYS_setresuid, ids.uid, ids.uid, ids.uid) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Exit status when argv[0] is nowhere on PATH.
const EXIT_NOT_FOUND: i32 = 127;

/// The command of a VE's app, with what its process applies before the exec.
#[derive(Debug)]
pub(super) struct ExecSpec {
    program: Program,
    /// Descriptors after 0-2 that pass into the VE.
    preserve_fds: u32,
    /// `--cap-add`: capabilities kept beyond the default set, as a mask.
    extra_caps: u64,
    /// `--workdir`: each directory from the root down to it (made when missing), the last
    /// the working directory of the app.
    workdir: Vec<CString>,
    /// The policy's exec allow-list (paths inside the VE), enforced with Landlock.
    exec_allow: Option<Vec<CString>>,
    /// Pre-images: the supervisor's configuration and the app's notify filter (built before
    /// the clone: the app's process does not allocate).
    preimages: Option<(super::Preimages, Vec<libc::sock_filter>)>,
    /// `--user USER[:GROUP]`, resolved by the init in the VE's own /etc/passwd and /etc/group.
    user: Option<String>,
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl ExecSpec {
    pub(super) fn new(cfg: &VeConfig) -> Result<ExecSpec, LaunchError> {
        let bad = |s: &str| LaunchError::Exec(format!("argument {s:?} contains a NUL byte"));
        let program = Program::new(&cfg.argv, &cfg.env)?;
        let mut workdir = Vec::new();
        if let Some(dir) = &cfg.workdir {
            let mut at = String::new();
            for part in dir.split('/').filter(|p| !p.is_empty()) {
                at.push('/');
                at.push_str(part);
                workdir.push(CString::new(at.as_str()).map_err(|_| bad(dir))?);
            }
        }
        Ok(ExecSpec {
            program,
            preserve_fds: cfg.preserve_fds,
            extra_caps: cfg.extra_caps,
            user: cfg.user.clone(),
            workdir,
            preimages: cfg.preimages.clone().map(|p| {
                let closes = p.abort_on_close;
                (p, crate::supervise::filter(closes))
            }),
            exec_allow: match &cfg.guard.exec_allow {
                None => None,
                Some(l) => Some(
                    l.iter()
                        .map(|p| CString::new(p.as_str()).map_err(|_| bad(p.as_str())))
                        .collect::<Result<Vec<_>, _>>()?,
                ),
            },
        })
    }
}

/// Reports a failure to the parent through the error pipe and exits.
pub(super) fn fail(err: &OwnedFd, code: i32, msg: &str) -> ! {
    let _ = rustix::io::write(err, msg.as_bytes());
    // SAFETY: _exit never returns and skips atexit handlers that belong to the parent's copy
    // of the process.
    unsafe { libc::_exit(code) }
}

/// [`fail`] for the app's process once its notify filter is in place: it ends with `exit`,
/// not `exit_group` (which an app that aborts on close sends to the supervisor — who cannot
/// answer before this process execs: the init waits in vfork). The process is
/// single-threaded: its one thread's exit ends it.
fn fail_app(err: &OwnedFd, code: i32, msg: &str) -> ! {
    let _ = rustix::io::write(err, msg.as_bytes());
    // SAFETY: exit(2) of the only thread; never returns.
    unsafe {
        libc::syscall(libc::SYS_exit, code);
    }
    unreachable!("exit returned")
}

/// The child's ends of its channels to the parent.
pub(super) struct Channels<'a> {
    /// Phase one ends when a byte arrives here.
    pub sync_rd: OwnedFd,
    /// Why the VE could not start (CLOEXEC: EOF once the app has exec'd).
    pub err_wr: OwnedFd,
    /// `-t`: where the master of the VE's pty goes.
    pub tty: Option<OwnedFd>,
    /// A network namespace of its own: a byte goes here once the init has entered it (the
    /// parent's hooks that need it wait for the byte).
    pub net_ready: Option<OwnedFd>,
    /// The helper that makes that namespace.
    pub net_helper: Option<&'a super::nethelper::NetHelper>,
}

/// Closes every descriptor from `first` on except those in `keep` (close_range over the gaps).
fn close_inherited(first: u32, keep: &[i32]) {
    let mut keep: Vec<u32> = keep
        .iter()
        .map(|&k| k as u32)
        .filter(|&k| k >= first)
        .collect();
    keep.sort_unstable();
    let mut from = first;
    for k in keep.into_iter().chain(std::iter::once(u32::MAX)) {
        if k > from {
            // SAFETY: closes descriptors of this process's own (copied) table that nothing
            // in it uses: the caller's leftovers.
            unsafe { libc::syscall(libc::SYS_close_range, from, k - 1, 0u32) };
        }
        from = k.saturating_add(1);
    }
}

pub(super) fn child_main(
    plan: &[Step],
    exec: &ExecSpec,
    filters: &[seccompiler::BpfProgram],
    v1_tasks: &[PathBuf],
    channels: Channels,
    cloned_at: std::time::Instant,
) -> ! {
    let Channels {
        sync_rd,
        err_wr,
        tty: tty_sock,
        net_ready,
        net_helper,
    } = channels;
    // JCS_TIMING=1: where the init's time goes, from the parent's clone on (CLOCK_MONOTONIC
    // is shared by parent and child).
    let timing = std::env::var_os("JCS_TIMING").is_some();
    let mut t = cloned_at;
    let mut times = String::new();
    let mut lap = |what: &str| {
        if timing {
            let now = std::time::Instant::now();
            times.push_str(&format!("{what} {}us, ", (now - t).as_micros()));
            t = now;
        }
    };
    lap("child running");
    // Die with the parent, so that no VE outlives `jcs run`.
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    // The VE's network namespace (see `plan::clone_flags`): made by a helper process while
    // this init builds the VE's file system, entered before the first step that needs it.
    let mut net = net_ready.zip(net_helper);
    default_signals();
    // A session of its own: the VE never shares the caller's controlling terminal (TIOCSTI
    // on it, its job-control signals), whatever descriptors 0-2 are.
    let _ = rustix::process::setsid();
    // Only descriptors 0-2 (and the `preserve_fds` after them) pass into the VE: whatever
    // else the caller left open (a directory of the host, a socket) is closed here, before
    // any code of the VE runs; the two pipes to the parent close at the app's exec.
    let mut keep = vec![sync_rd.as_raw_fd(), err_wr.as_raw_fd()];
    keep.extend(tty_sock.as_ref().map(|s| s.as_raw_fd()));
    if let Some((ready, h)) = &net {
        keep.push(ready.as_raw_fd());
        keep.extend(h.fds());
    }
    close_inherited(3 + exec.preserve_fds, &keep);
    // Join the cgroup v1 hierarchies (memory, pids on hybrid hosts) by writing "0" to their
    // `tasks` files: moving only the calling thread of a single-threaded process skips the
    // global threadgroup lock, whose write side waits for an RCU grace period (10-20 ms on
    // an idle host) when the parent writes our pid into `cgroup.procs`.
    for t in v1_tasks {
        if let Err(e) = std::fs::OpenOptions::new()
            .write(true)
            .open(t)
            .and_then(|mut f| f.write_all(b"0"))
        {
            fail(
                &err_wr,
                EXIT_SETUP,
                &format!("join cgroup {}: {e}", t.display()),
            );
        }
    }
    lap("join v1");
    // Pre-images: the version store and the undo log, opened while the host's paths are
    // still visible (close-on-exec: the app never gets them).
    let supervisor_files = exec.preimages.as_ref().map(|(p, _)| {
        let keep = p.keep.then(|| {
            let objects = std::fs::create_dir_all(&p.objects)
                .and_then(|()| {
                    rustix::fs::open(
                        &p.objects,
                        rustix::fs::OFlags::DIRECTORY
                            | rustix::fs::OFlags::RDONLY
                            | rustix::fs::OFlags::CLOEXEC,
                        rustix::fs::Mode::empty(),
                    )
                    .map_err(io::Error::from)
                })
                .unwrap_or_else(|e| {
                    fail(
                        &err_wr,
                        EXIT_SETUP,
                        &format!("open {}: {e}", p.objects.display()),
                    )
                });
            let log = p
                .undo_log
                .parent()
                .map(std::fs::create_dir_all)
                .unwrap_or(Ok(()))
                .and_then(|()| {
                    std::fs::OpenOptions::new()
                        .append(true)
                        .create(true)
                        .open(&p.undo_log)
                })
                .unwrap_or_else(|e| {
                    fail(
                        &err_wr,
                        EXIT_SETUP,
                        &format!("open {}: {e}", p.undo_log.display()),
                    )
                });
            crate::supervise::Keep { objects, log }
        });
        let (ours, theirs) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::DGRAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap_or_else(|e| fail(&err_wr, EXIT_SETUP, &format!("socketpair: {e}")));
        (keep, ours, theirs, p.storage.clone(), p.files_written)
    });
    // The VE's file system (mounts, pivot_root), built while the parent runs its hooks (the
    // recorder's watch): nothing of the app runs before the release, and this init's own
    // calls are never the VE's transactions. Only the network's steps wait for the release.
    let run = |step: &Step, lap: &mut dyn FnMut(&str)| {
        if let Err(e) = run_step(step) {
            fail(&err_wr, EXIT_SETUP, &format!("{}: {e}", step.name()));
        }
        lap(step.kind());
    };
    let (fs_steps, net_steps) =
        plan.split_at(plan.iter().position(Step::is_net).unwrap_or(plan.len()));
    let mut enter_net = |lap: &mut dyn FnMut(&str)| {
        if let Some((ready, helper)) = net.take() {
            if let Err(e) = helper.enter() {
                fail(
                    &err_wr,
                    EXIT_SETUP,
                    &format!("make the network namespace: {e}"),
                );
            }
            let _ = rustix::io::write(&ready, b"n");
            lap("net");
        }
    };
    // On the bridge, the parent's hooks wait for the namespace (they move the VE's link into
    // it): entered first. Otherwise at the first step that needs it.
    if net_steps.iter().any(|s| matches!(s, Step::Eth(_))) {
        enter_net(&mut lap);
    }
    for step in fs_steps {
        if step.needs_net() {
            enter_net(&mut lap);
        }
        run(step, &mut lap);
    }
    enter_net(&mut lap);
    // Phase one ends when the parent has placed us in the VE's cgroup and run its hooks.
    let mut b = [0u8; 1];
    let mut f = std::fs::File::from(sync_rd);
    if !matches!(f.read(&mut b), Ok(1)) {
        // SAFETY: exit without running the parent's destructors.
        unsafe { libc::_exit(EXIT_SETUP) };
    }
    // abort_on_close: the release carries the id of the kernel's map of denied VEs; the
    // view of it is made before this process drops anything (BPF_MAP_GET_FD_BY_ID needs
    // CAP_SYS_ADMIN).
    let tainted = exec
        .preimages
        .as_ref()
        .filter(|(p, _)| p.abort_on_close)
        .map(|(p, _)| {
            let mut id = [0u8; 4];
            if f.read_exact(&mut id).is_err() {
                fail(
                    &err_wr,
                    EXIT_SETUP,
                    "abort_on_close needs the recorder's kernel map of denials, and the \
                     recorder gave none (is JCS_MONITOR=off?)",
                );
            }
            // The kernel's number of the VE (its VE id unless another store's VE has it).
            let mut kernel_ve = [0u8; 8];
            let kernel_ve = match f.read_exact(&mut kernel_ve) {
                Ok(()) => u64::from_le_bytes(kernel_ve),
                Err(_) => p.ve,
            };
            crate::supervise::Tainted::open(u32::from_le_bytes(id), kernel_ve).unwrap_or_else(|e| {
                fail(
                    &err_wr,
                    EXIT_SETUP,
                    &format!("map the kernel's map of denied VEs: {e}"),
                )
            })
        });
    drop(f);
    lap("released");
    // SAFETY: single-threaded process; a new cgroup namespace rooted at the VE's cgroup.
    if unsafe { libc::unshare(libc::CLONE_NEWCGROUP) } != 0 {
        fail(&err_wr, EXIT_SETUP, &last_err("unshare cgroup namespace"));
    }
    lap("cgroupns");
    // The network's steps: on the bridge, the parent's hook moved the VE's link in.
    for step in net_steps {
        run(step, &mut lap);
    }
    // `-t`: the VE's own pty, from its devpts; the master goes to `jcs run`.
    let tty = tty_sock.map(|sock| {
        let (master, slave) = crate::pty::open_pair()
            .unwrap_or_else(|e| fail(&err_wr, EXIT_SETUP, &format!("open the VE's pty: {e}")));
        if let Err(e) = crate::pty::send_fd(&sock, std::os::fd::AsFd::as_fd(&master)) {
            fail(
                &err_wr,
                EXIT_SETUP,
                &format!("hand the pty to jcs run: {e}"),
            );
        }
        slave
    });
    lap("pty");
    // The exec allow-list: a Landlock ruleset built here, in the VE's own file system, and
    // applied by the app's process before its exec.
    let landlock = exec.exec_allow.as_ref().map(|allowed| {
        crate::landlock::exec_ruleset(allowed).unwrap_or_else(|e| {
            fail(
                &err_wr,
                EXIT_SETUP,
                &format!("the exec allow-list needs Landlock: {e}"),
            )
        })
    });
    lap("landlock");
    // `--user`: the ids, from the VE's own /etc/passwd and /etc/group.
    let ids = exec.user.as_ref().map(|spec| {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        super::user::resolve(spec, &read("/etc/passwd"), &read("/etc/group"))
            .unwrap_or_else(|e| fail(&err_wr, EXIT_SETUP, &e))
    });
    // From here on the signals `jcs run` passes on, and SIGCHLD, are blocked in the init (and
    // in the supervisor's thread, made below): its loop takes them with sigwaitinfo. Blocked,
    // they reach this pid-namespace init from the host although it has no handler; the app's
    // process unblocks them before its exec.
    let waited = waited_signals();
    // SAFETY: changing this thread's signal mask.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &waited, std::ptr::null_mut()) };
    let app = spawn_app(
        exec,
        filters,
        &err_wr,
        tty.as_ref(),
        landlock.as_ref(),
        supervisor_files.as_ref().map(|f| &f.2),
        ids.as_ref(),
    );
    drop(tty);
    if app < 0 {
        fail(&err_wr, EXIT_SETUP, &last_err("start the app"));
    }
    // The app sent the listener of its notify filter before its exec: the supervisor answers
    // it from a thread of this init (in the VE's mount and pid namespaces).
    // abort_on_close: the supervisor's final pass ends before the init does.
    let mut supervisor_done = None;
    if let Some((keep, ours, theirs, storage, files_budget)) = supervisor_files {
        drop(theirs);
        // None: the app failed before installing the filter (its error is on the pipe).
        if let Ok(Some(listener)) = crate::pty::recv_fd(&ours) {
            let waits = tainted.is_some();
            let s =
                crate::supervise::Supervisor::new(listener, keep, storage, files_budget, tainted)
                    .acting_within(crate::caps::keep_mask() | exec.extra_caps)
                    .unwrap_or_else(|e| {
                        fail(
                            &err_wr,
                            EXIT_SETUP,
                            &format!("the supervisor's capabilities: {e}"),
                        )
                    });
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let _ = std::thread::Builder::new()
                .name("jcs-supervisor".into())
                .spawn(move || {
                    s.run();
                    let _ = tx.send(());
                });
            if waits {
                supervisor_done = Some(rx);
            }
        }
    }
    lap("app exec'd");
    if timing {
        eprintln!("jcs: VE init steps: {times}");
    }
    drop(err_wr);
    // The VE's init: reap everything, pass SIGINT, SIGTERM and SIGHUP from `jcs run` on to the
    // app, end with the app's status. When we exit, the kernel kills whatever is left in the
    // pid namespace.
    loop {
        match rustix::process::wait(rustix::process::WaitOptions::NOHANG) {
            Ok(None) => {
                // Nothing to reap: the next child's end (SIGCHLD) or a signal to pass on.
                // SAFETY: sigwaitinfo on a set this init blocks; the siginfo is ours.
                let sig = unsafe {
                    let mut info: libc::siginfo_t = std::mem::zeroed();
                    libc::sigwaitinfo(&waited, &mut info)
                };
                if sig > 0 && sig != libc::SIGCHLD {
                    // SAFETY: a signal to the app, our child (not reaped yet).
                    unsafe { libc::kill(app, sig) };
                }
            }
            Ok(Some((pid, st))) if pid.as_raw_nonzero().get() == app => {
                // The app's status; a signal maps to 128 + n.
                let code = match st.terminating_signal() {
                    Some(sig) => 128 + sig,
                    None => st.exit_status().unwrap_or(0),
                };
                // (It ends once no process of the app is left; those still running end with
                // this init, so the wait is bounded.)
                if let Some(rx) = &supervisor_done {
                    let _ = rx.recv_timeout(std::time::Duration::from_secs(5));
                }
                // SAFETY: _exit ends the VE's init at once, without the atexit handlers of
                // the parent's copy of the process.
                unsafe { libc::_exit(code) };
            }
            Err(rustix::io::Errno::CHILD) => {
                // SAFETY: nothing left to wait for; as above.
                unsafe { libc::_exit(EXIT_SETUP) };
            }
            _ => {}
        }
    }
}

/// The signals the VE's init waits for once the app runs: a child's end, and those `jcs run`
/// passes on to the app.
fn waited_signals() -> libc::sigset_t {
    // SAFETY: building a sigset owned here.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        for s in super::FORWARDED {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// What the app's process needs; it lives on the VE init's stack while the app runs on its
/// own (see [`spawn_app`]).
pub(super) struct AppArgs<'a> {
    exec: &'a ExecSpec,
    filters: &'a [seccompiler::BpfProgram],
    err: &'a OwnedFd,
    /// `-t`: the slave of the VE's pty, the app's controlling terminal.
    tty: Option<&'a OwnedFd>,
    /// The exec allow-list's Landlock ruleset.
    landlock: Option<&'a OwnedFd>,
    /// Pre-images: where the app sends its notify filter's listener.
    notify: Option<&'a OwnedFd>,
    /// `--user`: the ids the app runs with.
    ids: Option<&'a super::user::Ids>,
}

extern "C" fn app_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points to the AppArgs of `spawn_app`, which stays alive (and unmoved)
    // because the caller is suspended until this process execs or exits (CLONE_VFORK).
    let a = unsafe { &*(arg as *const AppArgs<'_>) };
    exec_app(a.exec, a.filters, a.err, a.tty, a.landlock, a.notify, a.ids)
}

/// Starts the app as a child of the VE's init, posix_spawn-style: `CLONE_VM | CLONE_VFORK`
/// shares the init's memory until `execve`, so there is no copy-on-write fork of the whole
/// address space. Returns the pid, or -1.
pub(super) fn spawn_app(
    exec: &ExecSpec,
    filters: &[seccompiler::BpfProgram],
    err: &OwnedFd,
    tty: Option<&OwnedFd>,
    landlock: Option<&OwnedFd>,
    notify: Option<&OwnedFd>,
    ids: Option<&super::user::Ids>,
) -> libc::pid_t {
    const STACK: usize = 1 << 20;
    let mut stack = vec![0u8; STACK];
    let args = AppArgs {
        exec,
        filters,
        err,
        tty,
        landlock,
        notify,
        ids,
    };
    // SAFETY: the child runs `app_entry` on its own stack (16-byte aligned top of `stack`);
    // the parent is suspended until the child execs or exits, so `stack` and `args` outlive
    // every use. The child only makes system calls, and allocates only on its error path,
    // while the parent cannot be inside the allocator.
    unsafe {
        let top = stack.as_mut_ptr().add(STACK) as usize & !15;
        libc::clone(
            app_entry,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &args as *const AppArgs<'_> as *mut libc::c_void,
        )
    }
}

pub(super) fn exec_app(
    exec: &ExecSpec,
    filters: &[seccompiler::BpfProgram],
    err: &OwnedFd,
    tty: Option<&OwnedFd>,
    landlock: Option<&OwnedFd>,
    notify: Option<&OwnedFd>,
    ids: Option<&super::user::Ids>,
) -> ! {
    // The init blocks these for its loop; the app gets them unblocked. SIGPIPE, which Rust's
    // runtime makes jcs ignore, is the default again (as std's `Command` gives its children):
    // `yes | head` in a VE ends `yes` by the signal, not by an EPIPE it reports.
    let waited = waited_signals();
    // SAFETY: changing this process's signal mask and one disposition (this process has its
    // own copy of the handlers: no CLONE_SIGHAND).
    unsafe {
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &waited, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        if super::caller_ignores_sigchld() {
            libc::signal(libc::SIGCHLD, libc::SIG_IGN);
        }
    }
    if let Some(slave) = tty {
        if let Err(e) = crate::pty::become_terminal_session(slave) {
            fail(err, EXIT_SETUP, &format!("the VE's terminal: {e}"));
        }
    }
    // `--workdir`: made when missing (as docker does), then entered.
    for (i, d) in exec.workdir.iter().enumerate() {
        // SAFETY: valid NUL-terminated paths prepared before the clone.
        unsafe { libc::mkdir(d.as_ptr(), 0o755) };
        let last = i + 1 == exec.workdir.len();
        // SAFETY: as above.
        if last && unsafe { libc::chdir(d.as_ptr()) } != 0 {
            fail(
                err,
                EXIT_SETUP,
                &format!("--workdir {d:?}: {}", io::Error::last_os_error()),
            );
        }
    }
    if let Err(e) = crate::caps::drop_to_default(exec.extra_caps) {
        fail(err, EXIT_SETUP, &format!("drop capabilities: {e}"));
    }
    if let Some(ids) = ids {
        if let Err(e) = switch_user(ids) {
            fail(
                err,
                EXIT_SETUP,
                &format!("--user: switch to uid {} gid {}: {e}", ids.uid, ids.gid),
            );
        }
    }
    // SAFETY: prctl with integer arguments.
    if let Err(e) = rustix::thread::set_no_new_privs(true) {
        fail(err, EXIT_SETUP, &format!("set no_new_privs: {e}"));
    }
    if let Some(r) = landlock {
        if let Err(e) = crate::landlock::restrict_self(r) {
            fail(
                err,
                EXIT_SETUP,
                &format!("apply the exec allow-list (Landlock): {e}"),
            );
        }
    }
    if let Err(e) = crate::seccomp::install(filters) {
        fail(err, EXIT_SETUP, &e.to_string());
    }
    // Pre-images: write-intent calls go to the init's supervisor from here on.
    if let (Some(sock), Some((_, prog))) = (notify, &exec.preimages) {
        match crate::supervise::install(prog) {
            Ok(listener) => {
                if let Err(e) = crate::pty::send_fd(sock, std::os::fd::AsFd::as_fd(&listener)) {
                    fail_app(
                        err,
                        EXIT_SETUP,
                        &format!("hand the notify listener to the supervisor: {e}"),
                    );
                }
                // Not closed here: a close may be one the supervisor answers, and it runs only
                // once this process has exec'd. The listener is close-on-exec.
                std::mem::forget(listener);
            }
            Err(e) => fail(
                err,
                EXIT_SETUP,
                &format!("install the pre-image filter: {e}"),
            ),
        }
    }
    let (code, msg) = exec.program.exec(EXIT_CANNOT_EXEC);
    fail_app(err, code, &msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::test_cfg::cfg;
    use model::NetMode;
    #[test]
    fn exec_candidates_follow_path() {
        let e = ExecSpec::new(&cfg(NetMode::None)).unwrap();
        let c: Vec<_> = e
            .program
            .candidates
            .iter()
            .map(|c| c.to_str().unwrap().to_string())
            .collect();
        assert_eq!(c, vec!["/bin/sh", "/usr/bin/sh"]);
        let mut abs = cfg(NetMode::None);
        abs.argv = vec!["/opt/x".into()];
        assert_eq!(ExecSpec::new(&abs).unwrap().program.candidates.len(), 1);
        abs.argv = vec![];
        assert!(ExecSpec::new(&abs).is_err());
    }
}
