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
//!
//! The files: [`plan`] (the pure mount plan and clone flags), [`parent`] (clone, release,
//! wait, teardown, signals), `child` (the VE's init and the app's start: code after `clone`,
//! every path ending in `-> !`), `sys` (the raw mount and device calls the child makes).

mod child;
mod nethelper;
mod parent;
pub mod plan;
mod sys;
pub mod user;

pub(crate) use child::{switch_user, Program};
pub(crate) use parent::{caller_ignores_sigchld, FORWARDED};
pub use parent::{catch_signals, interrupted, start, take_caller_sigchld, Running};
pub use plan::{clone_flags, own_net, plan_mounts, Step};

use crate::cgroup::{CgroupError, VeCgroup};
use model::{InnerPath, Limits, NetMode, VeId};
use std::io;
use std::path::PathBuf;

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
    /// Files JCS makes for the VE (its /etc/hosts): (path relative to the root, content). They
    /// are a branch of their own above the lowers, a tmpfs the init makes: nothing is written
    /// on the store's disk unless the VE changes them (then the overlay copies them up into
    /// its dirties, as any file).
    pub generated: Vec<(PathBuf, Vec<u8>)>,
    pub binds: Vec<Bind>,
    pub net: NetMode,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The app's working directory (absolute, inside the VE; made when missing); None: `/`.
    pub workdir: Option<String>,
    /// `--user USER[:GROUP]`: resolved by the VE's init in the VE's /etc/passwd and
    /// /etc/group; None: root.
    pub user: Option<String>,
    pub cgroup_name: String,
    pub limits: Limits,
    /// `--net bridge`: the VE side of its veth (address, prefix, gateway).
    pub eth: Option<EthConfig>,
    /// Descriptors after 0-2 that pass into the VE (`--preserve-fds N`: 3..3+N); every other
    /// descriptor of the caller is closed before the VE runs.
    pub preserve_fds: u32,
    /// `-t`: the VE gets its own pty, the app a new session with it as controlling terminal.
    pub tty: bool,
    /// `--cap-add`: capabilities kept beyond the default set (a mask of `caps::ADDABLE`).
    pub extra_caps: u64,
    /// The file and exec parts of the app's policy, enforced by the VE's start.
    pub guard: Guard,
    /// The app's write-intent calls go to a supervisor: to keep pre-images of what it changes
    /// in persistent and shared storage, and/or to hold it to a files budget.
    pub preimages: Option<Preimages>,
}

/// What the supervisor does ([`crate::supervise`]); host paths, opened by the VE's init before
/// it leaves the host's file system.
#[derive(Debug, Clone)]
pub struct Preimages {
    /// Keep pre-images (`[recovery] preimages`): otherwise the paths below are not used.
    pub keep: bool,
    /// The store's `versions/objects` directory.
    pub objects: PathBuf,
    /// The VE's undo log (`versions/undo/VE.jsonl`).
    pub undo_log: PathBuf,
    pub storage: Vec<crate::supervise::Storage>,
    /// `[budget] files_written`.
    pub files_written: Option<u64>,
    /// `[recovery] abort_on_close`: closes go to the supervisor too, which reads the kernel's
    /// word on VE `ve` (the map whose id comes with the release, `Hooks::release_data`).
    pub abort_on_close: bool,
    pub ve: u64,
}

/// What the VE's start enforces of its policy (model::policy).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guard {
    /// Storage mounts (of `binds`) made read-only: no writable tree holds them.
    pub read_only: Vec<InnerPath>,
    /// Writable trees inside read-only storage mounts: bound onto themselves, writable.
    pub writable: Vec<InnerPath>,
    /// Paths hidden from the VE: an empty read-only directory, or a file no one can open.
    pub hide: Vec<InnerPath>,
    /// The only files the app may execute (Landlock); None: any.
    pub exec_allow: Option<Vec<InnerPath>>,
}

impl Guard {
    /// The guard of `policy` for a VE whose storage mounts are `storage`. A writable tree
    /// outside all storage cannot be enforced (everything else is the VE's own dirties): an
    /// error, never a weaker policy.
    pub fn of(policy: &model::policy::Policy, storage: &[InnerPath]) -> Result<Guard, String> {
        let mut g = Guard {
            hide: policy.deny_read.clone(),
            exec_allow: policy.exec_allow.clone(),
            ..Default::default()
        };
        if let Some(w) = &policy.writable {
            for t in w {
                if !storage.iter().any(|s| t.is_within(s)) {
                    return Err(format!(
                        "files.writable {t} is not in the app's persistent or shared storage ({});                          everything else a VE writes goes to its own dirties",
                        storage.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            for s in storage {
                if w.iter().any(|t| s.is_within(t)) {
                    continue;
                }
                g.read_only.push(s.clone());
                g.writable
                    .extend(w.iter().filter(|t| t.is_within(s)).cloned());
            }
        }
        Ok(g)
    }

    pub fn is_empty(&self) -> bool {
        self == &Guard::default()
    }
}

/// Address of a bridged VE's `eth0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthConfig {
    pub addr: std::net::Ipv4Addr,
    pub prefix: u8,
    pub gateway: std::net::Ipv4Addr,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Devices(#[from] crate::devices::DeviceError),
    #[error("create a pipe: {0}")]
    Pipe(io::Error),
    #[error("clone the VE's init with new namespaces: {0}")]
    Clone(io::Error),
    #[error("prepare the VE: {0}")]
    Hook(HookError),
    #[error("set up the VE: {0}")]
    Setup(String),
    /// The command is nowhere (exit 127, like a shell).
    #[error("{0}")]
    Exec(String),
    /// The command exists but cannot be executed: not executable, a bad format (exit 126).
    #[error("{0}")]
    CannotExec(String),
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
    /// What the VE's init is sent with its release, after `before_release`: the id (u32,
    /// little-endian) of the kernel's map of denied VEs when the app aborts on close.
    fn release_data(&self) -> Vec<u8> {
        Vec::new()
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn exit_codes() {
        assert_eq!(Exit::Code(3).code(), 3);
        assert_eq!(Exit::Signal(libc::SIGINT).code(), 130);
    }
}

/// A VE configuration for the unit tests of the plan and the child.
#[cfg(test)]
pub(crate) mod test_cfg {
    use super::*;

    pub fn cfg(net: NetMode) -> VeConfig {
        VeConfig {
            id: VeId(7),
            rootfs: "/s/ve/7".into(),
            lowers: vec!["/s/apps/a/1".into(), "/s/templates/t/1".into()],
            upper: "/s/ve/7/dirties".into(),
            work: "/s/ve/7/work".into(),
            generated: vec![],
            binds: vec![Bind {
                source: "/s/persist/a/data".into(),
                target: InnerPath::parse("/data").unwrap(),
            }],
            net,
            argv: vec!["sh".into(), "-c".into(), "true".into()],
            env: vec![("PATH".into(), "/bin:/usr/bin".into())],
            workdir: None,
            user: None,
            cgroup_name: "x-7".into(),
            limits: Limits::default(),
            eth: None,
            preserve_fds: 0,
            tty: false,
            extra_caps: 0,
            guard: Guard::default(),
            preimages: None,
        }
    }
}
