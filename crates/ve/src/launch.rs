//! Starting a VE: the parent side (cgroup, clone into new namespaces, two-phase release, wait,
//! teardown) and the child side (a pure mount plan executed step by step, then the app).
//!
//! ```text
//! parent (jcs run)                          child I (pid 1 of the VE)          app C
//! create cgroup jcs/NAME (limits)
//! clone(NEWNS|NEWPID|NEWUTS|NEWIPC|NEWNET) ─→ wait on the sync pipe
//! move I into the cgroup (every hierarchy)
//! hooks.before_release (monitor, network)
//! write the sync byte ──────────────────────→ unshare(NEWCGROUP)
//!                                            mount plan, pivot_root, lo up
//!                                            fork ─────────────────────────→ caps, no_new_privs,
//! read the error pipe until EOF ←──(CLOEXEC closes on exec)────────────────── seccomp, execve
//! wait for I                                 reap; exit with C's status
//! kill + remove the cgroup, remove scratch
//! ```
//!
//! Every process of the VE is in its cgroup before it runs a single instruction of the app.
//! The mounts exist only in the VE's mount namespace, so they vanish with its last process.

use crate::cgroup::{CgroupError, CgroupLayout, VeCgroup};
use crate::fsops::Fs;
use model::{InnerPath, Limits, NetMode, VeId};
use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// A read-write bind mount of a host directory into the VE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub source: PathBuf,
    pub target: InnerPath,
}

/// Everything needed to start one VE.
#[derive(Debug, Clone)]
pub struct VeConfig {
    pub id: VeId,
    /// Host directory the merged root is mounted on (inside the VE's mount namespace only).
    pub rootfs: PathBuf,
    /// Read-only branches, highest precedence first.
    pub lowers: Vec<PathBuf>,
    /// The writable branch: the VE's dirties, or the new app layer in maintenance mode.
    pub upper: PathBuf,
    pub work: PathBuf,
    pub binds: Vec<Bind>,
    pub net: NetMode,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cgroup_name: String,
    pub limits: Limits,
    /// `--net bridge`: the VE side of its veth (address, prefix, gateway).
    pub eth: Option<EthConfig>,
}

/// Address of a bridged VE's `eth0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthConfig {
    pub addr: std::net::Ipv4Addr,
    pub prefix: u8,
    pub gateway: std::net::Ipv4Addr,
}

/// One step of the child's mount plan. Paths are host paths before `pivot_root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `mount --make-rprivate /`: nothing the VE mounts propagates to the host.
    MakePrivate,
    Overlay {
        target: PathBuf,
        lowers: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
    },
    Bind {
        source: PathBuf,
        target: PathBuf,
    },
    Proc {
        target: PathBuf,
    },
    /// Make the host-wide parts of /proc read-only and hide the sensitive ones (the VE's
    /// root is the host's uid 0: /proc/sys/vm, /proc/sysrq-trigger... act on the host).
    ProcMask {
        proc: PathBuf,
    },
    Sysfs {
        target: PathBuf,
    },
    /// tmpfs on /dev with the standard character devices and symlinks.
    Dev {
        target: PathBuf,
    },
    Devpts {
        target: PathBuf,
    },
    Shm {
        target: PathBuf,
    },
    Hostname(String),
    PivotRoot {
        new_root: PathBuf,
    },
    LoopbackUp,
    /// `--net bridge`: address, link and default route of eth0 inside the VE.
    Eth(EthConfig),
}

impl Step {
    /// A one-word label (for timings).
    pub fn kind(&self) -> &'static str {
        match self {
            Step::MakePrivate => "private",
            Step::Overlay { .. } => "overlay",
            Step::Bind { .. } => "bind",
            Step::Proc { .. } => "proc",
            Step::ProcMask { .. } => "proc mask",
            Step::Sysfs { .. } => "sysfs",
            Step::Dev { .. } => "dev",
            Step::Devpts { .. } => "devpts",
            Step::Shm { .. } => "shm",
            Step::Hostname(_) => "hostname",
            Step::PivotRoot { .. } => "pivot_root",
            Step::LoopbackUp => "lo",
            Step::Eth(_) => "eth0",
        }
    }

    fn name(&self) -> String {
        match self {
            Step::MakePrivate => "make / private".into(),
            Step::Overlay { target, .. } => format!("mount overlay on {}", target.display()),
            Step::Bind { source, target } => {
                format!("bind {} on {}", source.display(), target.display())
            }
            Step::Proc { target } => format!("mount proc on {}", target.display()),
            Step::ProcMask { proc } => format!("mask parts of {}", proc.display()),
            Step::Sysfs { target } => format!("mount sysfs on {}", target.display()),
            Step::Dev { target } => format!("populate {}", target.display()),
            Step::Devpts { target } => format!("mount devpts on {}", target.display()),
            Step::Shm { target } => format!("mount tmpfs on {}", target.display()),
            Step::Hostname(h) => format!("set hostname {h}"),
            Step::PivotRoot { new_root } => format!("pivot_root to {}", new_root.display()),
            Step::LoopbackUp => "bring up lo".into(),
            Step::Eth(e) => format!("configure eth0 {}/{}", e.addr, e.prefix),
        }
    }
}

/// The child's setup, in order. Pure: unit tests check it without root.
pub fn plan_mounts(cfg: &VeConfig) -> Vec<Step> {
    let r = &cfg.rootfs;
    let mut steps = vec![
        Step::MakePrivate,
        Step::Overlay {
            target: r.clone(),
            lowers: cfg.lowers.clone(),
            upper: cfg.upper.clone(),
            work: cfg.work.clone(),
        },
    ];
    for b in &cfg.binds {
        steps.push(Step::Bind {
            source: b.source.clone(),
            target: r.join(b.target.relative()),
        });
    }
    steps.push(Step::Proc {
        target: r.join("proc"),
    });
    steps.push(Step::ProcMask {
        proc: r.join("proc"),
    });
    if cfg.net != NetMode::Host {
        // sysfs may only be mounted by a process that owns its network namespace.
        steps.push(Step::Sysfs {
            target: r.join("sys"),
        });
    }
    steps.push(Step::Dev {
        target: r.join("dev"),
    });
    steps.push(Step::Devpts {
        target: r.join("dev/pts"),
    });
    steps.push(Step::Shm {
        target: r.join("dev/shm"),
    });
    steps.push(Step::Hostname(cfg.id.hostname()));
    steps.push(Step::PivotRoot {
        new_root: r.clone(),
    });
    if cfg.net != NetMode::Host {
        steps.push(Step::LoopbackUp);
    }
    if let (NetMode::Bridge, Some(e)) = (cfg.net, cfg.eth) {
        steps.push(Step::Eth(e));
    }
    steps
}

/// Clone flags of a VE.
pub fn clone_flags(net: NetMode) -> libc::c_ulong {
    let mut f = libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    if net != NetMode::Host {
        f |= libc::CLONE_NEWNET;
    }
    f as libc::c_ulong
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("create a pipe: {0}")]
    Pipe(io::Error),
    #[error("clone the VE's init with new namespaces: {0}")]
    Clone(io::Error),
    #[error("prepare the VE: {0}")]
    Hook(HookError),
    #[error("set up the VE: {0}")]
    Setup(String),
    #[error("{0}")]
    Exec(String),
    #[error("wait for the VE: {0}")]
    Wait(io::Error),
    #[error("compile the seccomp filter: {0}")]
    Seccomp(#[from] crate::seccomp::SeccompError),
}

/// What a hook failed with: the hook's own error type, kept whole (its chain is printed).
pub type HookError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Called between "the VE's init is in its cgroup" and "the app starts".
pub trait Hooks {
    fn before_release(&mut self, pid: i32, cgroup: &VeCgroup) -> Result<(), HookError>;
    /// Called once the VE is gone (or failed to start): undo what `before_release` did.
    /// An error means something the VE did may not have been recorded.
    fn after_exit(&mut self) -> Result<(), HookError> {
        Ok(())
    }
}

/// Hooks that do nothing.
#[derive(Debug, Default)]
pub struct NoHooks;

impl Hooks for NoHooks {
    fn before_release(&mut self, _pid: i32, _cgroup: &VeCgroup) -> Result<(), HookError> {
        Ok(())
    }
}

/// How the VE's command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// The shell convention: the code, or 128 + the signal.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// Where the time of a VE start went: (phase, microseconds), in order.
#[derive(Debug, Clone)]
pub struct Phases {
    last: std::time::Instant,
    pub marks: Vec<(&'static str, u64)>,
}

impl Phases {
    fn new() -> Phases {
        Phases {
            last: std::time::Instant::now(),
            marks: vec![],
        }
    }
    fn mark(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        self.marks
            .push((name, (now - self.last).as_micros() as u64));
        self.last = now;
    }
}

/// A started VE whose app is running.
#[derive(Debug)]
pub struct Running {
    pub pid: i32,
    pub cgroup: VeCgroup,
    /// Time spent in each phase of the start.
    pub phases: Phases,
    err_rd: Option<OwnedFd>,
}

/// Exit codes the child uses for its own failures.
const EXIT_SETUP: i32 = 125;
const EXIT_EXEC: i32 = 127;

static LAST_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    LAST_SIGNAL.store(sig, Ordering::SeqCst);
}

const FORWARDED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Catches SIGINT, SIGTERM and SIGHUP without SA_RESTART, so that a blocked wait returns and
/// the VE is torn down.
fn catch_signals() {
    for s in FORWARDED {
        // SAFETY: installs a handler that only stores to an atomic (async-signal-safe).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = 0;
            libc::sigaction(s, &sa, std::ptr::null_mut());
        }
    }
}

fn default_signals() {
    for s in FORWARDED {
        // SAFETY: restores the default disposition.
        unsafe { libc::signal(s, libc::SIG_DFL) };
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

/// Forks the VE's init into new namespaces. Where the kernel allows, the child is born in the
/// VE's cgroup2 directory (`clone3` with `CLONE_INTO_CGROUP`), which is atomic and avoids a
/// cgroup migration; otherwise a plain `clone`, and the caller moves it. Returns the pid (0
/// in the child) and whether the child was born in the cgroup.
fn clone_into(net: NetMode, v2_dir: &Path) -> io::Result<(libc::c_long, bool)> {
    use rustix::fs::{open, Mode, OFlags};
    let flags = clone_flags(net) as u64;
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
    catch_signals();
    let v1_tasks: Vec<PathBuf> = cgroup.v1.iter().map(|d| d.join("tasks")).collect();
    let cloned_at = std::time::Instant::now();
    let (pid, born_in_v2) = match clone_into(cfg.net, &cgroup.v2) {
        Ok(x) => x,
        Err(e) => {
            cleanup_cgroup(&cgroup);
            return Err(LaunchError::Clone(e));
        }
    };
    if pid == 0 {
        drop(sync_wr);
        drop(err_rd);
        child_main(
            &plan, &exec, &filters, &v1_tasks, sync_rd, err_wr, cloned_at,
        );
    }
    let pid = pid as i32;
    phases.mark("clone");
    drop(sync_rd);
    drop(err_wr);
    let mut running = Running {
        pid,
        cgroup,
        err_rd: Some(err_rd),
        phases: Phases::new(),
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
    if let Err(e) = hooks.before_release(pid, &running.cgroup) {
        return Err(abort(&mut running, LaunchError::Hook(e)));
    }
    phases.mark("hooks");
    let mut w = std::fs::File::from(sync_wr);
    if let Err(e) = w.write_all(b"g") {
        return Err(abort(&mut running, LaunchError::Pipe(e)));
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
            _ => LaunchError::Setup(msg),
        });
    }
    Ok(running)
}

impl Running {
    fn wait_pid(&mut self, fs: &dyn Fs) -> Result<Exit, io::Error> {
        loop {
            let mut status = 0;
            // SAFETY: waits for our own child.
            let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if r == self.pid {
                return Ok(if libc::WIFSIGNALED(status) {
                    Exit::Signal(libc::WTERMSIG(status))
                } else {
                    Exit::Code(libc::WEXITSTATUS(status))
                });
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
            if interrupted().is_some() {
                // Ctrl-C, SIGTERM or SIGHUP: end the whole VE, then collect its init.
                let _ = self.cgroup.kill(fs);
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
        let _ = self.cgroup.kill(fs);
        self.phases.mark("kill");
        let _ = self.cgroup.remove(fs, Duration::from_secs(10));
        self.phases.mark("remove cgroup");
        // The mount point is the VE's directory and the overlay work directory stays with the
        // dirties (it holds nothing once unmounted); both go with `jcs rm`/`jcs gc`.
    }
}

/// The command, pre-converted so the child allocates as little as possible.
#[derive(Debug)]
struct ExecSpec {
    argv: Vec<CString>,
    /// Owns the strings `envp_ptrs` points into.
    #[allow(dead_code)]
    envp: Vec<CString>,
    /// Candidate paths for argv[0], in PATH order.
    candidates: Vec<CString>,
    /// NULL-terminated pointer arrays into `argv` and `envp` (the CStrings' heap buffers do
    /// not move), built before the app's process exists.
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl ExecSpec {
    fn new(cfg: &VeConfig) -> Result<ExecSpec, LaunchError> {
        let bad = |s: &str| LaunchError::Exec(format!("argument {s:?} contains a NUL byte"));
        if cfg.argv.is_empty() {
            return Err(LaunchError::Exec(
                "no command to run (give one after --, or set the app's --cmd)".into(),
            ));
        }
        let argv = cfg
            .argv
            .iter()
            .map(|a| CString::new(a.as_str()).map_err(|_| bad(a)))
            .collect::<Result<Vec<_>, _>>()?;
        let envp = cfg
            .env
            .iter()
            .map(|(k, v)| CString::new(format!("{k}={v}")).map_err(|_| bad(v)))
            .collect::<Result<Vec<_>, _>>()?;
        let path = cfg
            .env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
            .unwrap_or(DEFAULT_PATH);
        let a0 = &cfg.argv[0];
        let candidates = if a0.contains('/') {
            vec![argv[0].clone()]
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
        let (argv_ptrs, envp_ptrs) = (ptrs(&argv), ptrs(&envp));
        Ok(ExecSpec {
            argv,
            envp,
            candidates,
            argv_ptrs,
            envp_ptrs,
        })
    }
}

fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

fn last_err(what: &str) -> String {
    format!("{what}: {}", io::Error::last_os_error())
}

fn sys_mount(
    src: &str,
    target: &Path,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> Result<(), String> {
    let (s, t, f, d) = (
        CString::new(src).unwrap_or_default(),
        c(target),
        CString::new(fstype).unwrap_or_default(),
        CString::new(data).unwrap_or_default(),
    );
    // SAFETY: all pointers are valid NUL-terminated strings for the duration of the call.
    let r = unsafe {
        libc::mount(
            s.as_ptr(),
            t.as_ptr(),
            f.as_ptr(),
            flags,
            if data.is_empty() {
                std::ptr::null()
            } else {
                d.as_ptr().cast()
            },
        )
    };
    if r != 0 {
        return Err(last_err("mount"));
    }
    Ok(())
}

/// Creates a mount point inside the merged tree if the branches lack it (it then shows up in
/// the dirties, as every write does).
fn ensure_dir(p: &Path) -> Result<(), String> {
    if p.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(p).map_err(|e| format!("create mount point: {e}"))
}

fn mount_overlay(
    target: &Path,
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
) -> Result<(), String> {
    use rustix::mount::*;
    let fd = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| format!("fsopen overlay: {e}"))?;
    for l in lowers {
        fsconfig_set_string(&fd, "lowerdir+", l.as_os_str()).map_err(|e| {
            format!(
                "overlay lowerdir+ {}: {e} (overlayfs with lowerdir+ needs Linux 6.8 or later)",
                l.display()
            )
        })?;
    }
    fsconfig_set_string(&fd, "upperdir", upper.as_os_str())
        .map_err(|e| format!("overlay upperdir {}: {e}", upper.display()))?;
    fsconfig_set_string(&fd, "workdir", work.as_os_str())
        .map_err(|e| format!("overlay workdir {}: {e}", work.display()))?;
    for (k, v) in [
        ("redirect_dir", "off"),
        ("metacopy", "off"),
        ("index", "off"),
    ] {
        fsconfig_set_string(&fd, k, v).map_err(|e| format!("overlay {k}={v}: {e}"))?;
    }
    fsconfig_create(&fd).map_err(|e| format!("create overlay: {e}"))?;
    let mnt = fsmount(&fd, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .map_err(|e| format!("fsmount overlay: {e}"))?;
    move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| format!("move_mount overlay to {}: {e}", target.display()))
}

/// Parts of /proc that act on the whole host: read-only in a VE (as container runtimes do).
pub const PROC_READONLY: &[&str] = &["sys", "sysrq-trigger", "irq", "bus", "fs"];
/// Parts of /proc that expose host memory or secrets: hidden in a VE.
pub const PROC_MASKED: &[&str] = &[
    "kcore",
    "keys",
    "timer_list",
    "sched_debug",
    "latency_stats",
    "acpi",
    "scsi",
];

fn mask_proc(proc: &Path) -> Result<(), String> {
    let bind = (libc::MS_BIND | libc::MS_REC) as libc::c_ulong;
    let ro = (libc::MS_BIND
        | libc::MS_REMOUNT
        | libc::MS_RDONLY
        | libc::MS_NOSUID
        | libc::MS_NODEV
        | libc::MS_NOEXEC) as libc::c_ulong;
    for name in PROC_READONLY {
        let p = proc.join(name);
        if std::fs::symlink_metadata(&p).is_err() {
            continue;
        }
        sys_mount(&p.to_string_lossy(), &p, "", bind, "").map_err(|e| format!("{name}: {e}"))?;
        sys_mount("", &p, "", ro, "").map_err(|e| format!("{name} read-only: {e}"))?;
    }
    let empty_ro =
        (libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC) as libc::c_ulong;
    for name in PROC_MASKED {
        let p = proc.join(name);
        match std::fs::symlink_metadata(&p) {
            Err(_) => continue,
            Ok(m) if m.is_dir() => sys_mount("tmpfs", &p, "tmpfs", empty_ro, "size=0,mode=555"),
            // The host's /dev/null: the VE's /dev is not populated yet.
            Ok(_) => sys_mount("/dev/null", &p, "", libc::MS_BIND as libc::c_ulong, ""),
        }
        .map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

fn populate_dev(dev: &Path) -> Result<(), String> {
    ensure_dir(dev)?;
    sys_mount(
        "tmpfs",
        dev,
        "tmpfs",
        (libc::MS_NOSUID | libc::MS_NOEXEC) as libc::c_ulong,
        "mode=755,size=65536k",
    )?;
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let p = c(&dev.join(name));
        // SAFETY: mknod with a valid path; the VE's init holds CAP_MKNOD at this point.
        let r = unsafe {
            libc::mknod(
                p.as_ptr(),
                libc::S_IFCHR | 0o666,
                libc::makedev(major, minor),
            )
        };
        if r != 0 {
            return Err(last_err(&format!("mknod /dev/{name}")));
        }
        // mknod is subject to the umask; make the mode exact.
        // SAFETY: chmod with a valid path.
        unsafe { libc::chmod(p.as_ptr(), 0o666) };
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        std::os::unix::fs::symlink(to, dev.join(link))
            .map_err(|e| format!("symlink /dev/{link}: {e}"))?;
    }
    for d in ["pts", "shm"] {
        std::fs::create_dir(dev.join(d)).map_err(|e| format!("mkdir /dev/{d}: {e}"))?;
    }
    Ok(())
}

fn loopback_up() -> Result<(), String> {
    // SAFETY: socket/ioctl on a fresh datagram socket with a zeroed, NUL-terminated ifreq. The
    // interface is "lo" of the network namespace this process just created.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(last_err("socket"));
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        let r = libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr);
        if r == 0 {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            let r2 = libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr);
            libc::close(s);
            if r2 != 0 {
                return Err(last_err("SIOCSIFFLAGS lo"));
            }
            return Ok(());
        }
        libc::close(s);
        Err(last_err("SIOCGIFFLAGS lo"))
    }
}

fn run_step(step: &Step) -> Result<(), String> {
    let nodev_nosuid_noexec = (libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC) as libc::c_ulong;
    match step {
        Step::MakePrivate => sys_mount(
            "",
            Path::new("/"),
            "",
            (libc::MS_REC | libc::MS_PRIVATE) as libc::c_ulong,
            "",
        ),
        Step::Overlay {
            target,
            lowers,
            upper,
            work,
        } => mount_overlay(target, lowers, upper, work),
        Step::Bind { source, target } => {
            ensure_dir(target)?;
            sys_mount(
                &source.to_string_lossy(),
                target,
                "",
                (libc::MS_BIND | libc::MS_REC) as libc::c_ulong,
                "",
            )?;
            sys_mount(
                "",
                target,
                "",
                (libc::MS_BIND | libc::MS_REMOUNT | libc::MS_NOSUID | libc::MS_NODEV)
                    as libc::c_ulong,
                "",
            )
        }
        Step::Proc { target } => {
            ensure_dir(target)?;
            sys_mount("proc", target, "proc", nodev_nosuid_noexec, "")
        }
        Step::ProcMask { proc } => mask_proc(proc),
        Step::Sysfs { target } => {
            ensure_dir(target)?;
            sys_mount(
                "sysfs",
                target,
                "sysfs",
                nodev_nosuid_noexec | libc::MS_RDONLY as libc::c_ulong,
                "",
            )
        }
        Step::Dev { target } => populate_dev(target),
        Step::Devpts { target } => sys_mount(
            "devpts",
            target,
            "devpts",
            (libc::MS_NOSUID | libc::MS_NOEXEC) as libc::c_ulong,
            "newinstance,ptmxmode=0666,mode=0620",
        ),
        Step::Shm { target } => sys_mount(
            "shm",
            target,
            "tmpfs",
            nodev_nosuid_noexec,
            "mode=1777,size=65536k",
        ),
        Step::Hostname(h) => {
            rustix::system::sethostname(h.as_bytes()).map_err(|e| format!("sethostname: {e}"))
        }
        Step::PivotRoot { new_root } => {
            std::env::set_current_dir(new_root).map_err(|e| format!("chdir: {e}"))?;
            rustix::process::pivot_root(".", ".").map_err(|e| format!("pivot_root: {e}"))?;
            // The old root is now stacked under the new one: detach it.
            let dot = CString::new(".").unwrap_or_default();
            // SAFETY: umount2 with a valid path.
            if unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) } != 0 {
                return Err(last_err("detach the old root"));
            }
            std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))
        }
        Step::LoopbackUp => loopback_up(),
        Step::Eth(e) => {
            crate::net::configure_ve_side(e.addr, e.prefix, e.gateway).map_err(|e| e.to_string())
        }
    }
}

/// Reports a failure to the parent through the error pipe and exits.
fn fail(err: &OwnedFd, code: i32, msg: &str) -> ! {
    // SAFETY: write to our own pipe; _exit never returns and skips atexit handlers that
    // belong to the parent's copy of the process.
    unsafe {
        libc::write(err.as_raw_fd(), msg.as_ptr().cast(), msg.len());
        libc::_exit(code);
    }
}

fn child_main(
    plan: &[Step],
    exec: &ExecSpec,
    filters: &[seccompiler::BpfProgram],
    v1_tasks: &[PathBuf],
    sync_rd: OwnedFd,
    err_wr: OwnedFd,
    cloned_at: std::time::Instant,
) -> ! {
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
    // SAFETY: prctl with integer arguments: die with the parent, so no VE outlives `jcs run`.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    default_signals();
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
    // Phase one ends when the parent has placed us in the VE's cgroup and run its hooks.
    let mut b = [0u8; 1];
    let mut f = std::fs::File::from(sync_rd);
    if !matches!(f.read(&mut b), Ok(1)) {
        // SAFETY: exit without running the parent's destructors.
        unsafe { libc::_exit(EXIT_SETUP) };
    }
    drop(f);
    lap("released");
    // SAFETY: single-threaded process; a new cgroup namespace rooted at the VE's cgroup.
    if unsafe { libc::unshare(libc::CLONE_NEWCGROUP) } != 0 {
        fail(&err_wr, EXIT_SETUP, &last_err("unshare cgroup namespace"));
    }
    lap("cgroupns");
    for step in plan {
        if let Err(e) = run_step(step) {
            fail(&err_wr, EXIT_SETUP, &format!("{}: {e}", step.name()));
        }
        lap(step.kind());
    }
    let app = spawn_app(exec, filters, &err_wr);
    if app < 0 {
        fail(&err_wr, EXIT_SETUP, &last_err("start the app"));
    }
    lap("app exec'd");
    if timing {
        eprintln!("jcs: VE init steps: {times}");
    }
    drop(err_wr);
    // The VE's init: reap everything, end with the app's status. When we exit, the kernel
    // kills whatever is left in the pid namespace.
    loop {
        let mut status = 0;
        // SAFETY: waits for any child of the init.
        let r = unsafe { libc::waitpid(-1, &mut status, 0) };
        if r == app {
            // SAFETY: exit with the app's status; signals map to 128 + n.
            unsafe {
                if libc::WIFSIGNALED(status) {
                    libc::_exit(128 + libc::WTERMSIG(status));
                }
                libc::_exit(libc::WEXITSTATUS(status));
            }
        }
        if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
            // SAFETY: nothing left to wait for.
            unsafe { libc::_exit(EXIT_SETUP) };
        }
    }
}

/// What the app's process needs; it lives on the VE init's stack while the app runs on its
/// own (see [`spawn_app`]).
struct AppArgs<'a> {
    exec: &'a ExecSpec,
    filters: &'a [seccompiler::BpfProgram],
    err: &'a OwnedFd,
}

extern "C" fn app_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points to the AppArgs of `spawn_app`, which stays alive (and unmoved)
    // because the caller is suspended until this process execs or exits (CLONE_VFORK).
    let a = unsafe { &*(arg as *const AppArgs<'_>) };
    exec_app(a.exec, a.filters, a.err)
}

/// Starts the app as a child of the VE's init, posix_spawn-style: `CLONE_VM | CLONE_VFORK`
/// shares the init's memory until `execve`, so there is no copy-on-write fork of the whole
/// address space. Returns the pid, or -1.
fn spawn_app(exec: &ExecSpec, filters: &[seccompiler::BpfProgram], err: &OwnedFd) -> libc::pid_t {
    const STACK: usize = 1 << 20;
    let mut stack = vec![0u8; STACK];
    let args = AppArgs { exec, filters, err };
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

fn exec_app(exec: &ExecSpec, filters: &[seccompiler::BpfProgram], err: &OwnedFd) -> ! {
    if let Err(e) = crate::caps::drop_to_default() {
        fail(err, EXIT_SETUP, &format!("drop capabilities: {e}"));
    }
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        fail(err, EXIT_SETUP, &last_err("set no_new_privs"));
    }
    if let Err(e) = crate::seccomp::install(filters) {
        fail(err, EXIT_SETUP, &e.to_string());
    }
    let mut last = libc::ENOENT;
    for cand in &exec.candidates {
        // SAFETY: NULL-terminated arrays of valid C strings that outlive the call.
        unsafe {
            libc::execve(
                cand.as_ptr(),
                exec.argv_ptrs.as_ptr(),
                exec.envp_ptrs.as_ptr(),
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
    let a0 = exec.argv[0].to_string_lossy();
    let msg = if last == libc::ENOENT {
        format!("command not found in the VE: {a0}")
    } else {
        format!(
            "cannot execute {a0} in the VE: {}",
            io::Error::from_raw_os_error(last)
        )
    };
    fail(err, EXIT_EXEC, &msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(net: NetMode) -> VeConfig {
        VeConfig {
            id: VeId(7),
            rootfs: "/s/ve/7".into(),
            lowers: vec!["/s/apps/a/1".into(), "/s/templates/t/1".into()],
            upper: "/s/ve/7/dirties".into(),
            work: "/s/ve/7/work".into(),
            binds: vec![Bind {
                source: "/s/persist/a/data".into(),
                target: InnerPath::parse("/data").unwrap(),
            }],
            net,
            argv: vec!["sh".into(), "-c".into(), "true".into()],
            env: vec![("PATH".into(), "/bin:/usr/bin".into())],
            cgroup_name: "x-7".into(),
            limits: Limits::default(),
            eth: None,
        }
    }

    #[test]
    fn plan_order() {
        let plan = plan_mounts(&cfg(NetMode::None));
        let names: Vec<String> = plan.iter().map(Step::name).collect();
        assert_eq!(
            names,
            vec![
                "make / private",
                "mount overlay on /s/ve/7",
                "bind /s/persist/a/data on /s/ve/7/data",
                "mount proc on /s/ve/7/proc",
                "mask parts of /s/ve/7/proc",
                "mount sysfs on /s/ve/7/sys",
                "populate /s/ve/7/dev",
                "mount devpts on /s/ve/7/dev/pts",
                "mount tmpfs on /s/ve/7/dev/shm",
                "set hostname ve-7",
                "pivot_root to /s/ve/7",
                "bring up lo",
            ]
        );
        match &plan[1] {
            Step::Overlay { lowers, .. } => assert_eq!(lowers[0], Path::new("/s/apps/a/1")),
            s => panic!("unexpected {s:?}"),
        }
    }

    #[test]
    fn bridge_configures_eth_last() {
        let mut c = cfg(NetMode::Bridge);
        c.eth = Some(EthConfig {
            addr: [10, 0, 0, 2].into(),
            prefix: 16,
            gateway: [10, 0, 0, 1].into(),
        });
        let plan = plan_mounts(&c);
        assert_eq!(
            plan.last().map(Step::name).as_deref(),
            Some("configure eth0 10.0.0.2/16")
        );
    }

    #[test]
    fn host_net_skips_sysfs_and_lo() {
        let plan = plan_mounts(&cfg(NetMode::Host));
        assert!(!plan
            .iter()
            .any(|s| matches!(s, Step::Sysfs { .. } | Step::LoopbackUp)));
        assert_eq!(
            clone_flags(NetMode::Host) & libc::CLONE_NEWNET as libc::c_ulong,
            0
        );
        assert_ne!(
            clone_flags(NetMode::None) & libc::CLONE_NEWNET as libc::c_ulong,
            0
        );
    }

    #[test]
    fn exec_candidates_follow_path() {
        let e = ExecSpec::new(&cfg(NetMode::None)).unwrap();
        let c: Vec<_> = e
            .candidates
            .iter()
            .map(|c| c.to_str().unwrap().to_string())
            .collect();
        assert_eq!(c, vec!["/bin/sh", "/usr/bin/sh"]);
        let mut abs = cfg(NetMode::None);
        abs.argv = vec!["/opt/x".into()];
        assert_eq!(ExecSpec::new(&abs).unwrap().candidates.len(), 1);
        abs.argv = vec![];
        assert!(ExecSpec::new(&abs).is_err());
    }

    #[test]
    fn exit_codes() {
        assert_eq!(Exit::Code(3).code(), 3);
        assert_eq!(Exit::Signal(libc::SIGINT).code(), 130);
    }
}
