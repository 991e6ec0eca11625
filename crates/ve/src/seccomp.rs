//! The VE's default seccomp deny list, modelled on container runtimes' default profiles:
//! everything is allowed except calls that reach past the container (kernel keyrings, BPF,
//! perf, the mount API, module loading, kexec, ptrace and cross-process memory access, clock
//! and host administration, io_uring — whose submissions would bypass this filter — and Linux
//! AIO (whose writes happen outside the call the monitor sees), and new
//! namespaces). Denied calls fail with EPERM; `clone3` fails with ENOSYS so that libc falls
//! back to `clone`, whose namespace flags this filter can inspect.

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp: unsupported architecture {0}")]
    Arch(String),
    #[error("seccomp: build filter: {0}")]
    Build(#[from] seccompiler::BackendError),
    #[error("seccomp: compile filter: {0}")]
    Compile(String),
    #[error("seccomp: install filter: {0}")]
    Install(String),
}

/// System calls that fail with EPERM inside a VE, by name (for documentation and tests).
pub const DENIED: &[(&str, i64)] = &[
    ("acct", libc::SYS_acct),
    ("add_key", libc::SYS_add_key),
    ("bpf", libc::SYS_bpf),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("clock_settime", libc::SYS_clock_settime),
    ("delete_module", libc::SYS_delete_module),
    ("finit_module", libc::SYS_finit_module),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fsopen", libc::SYS_fsopen),
    ("fspick", libc::SYS_fspick),
    ("init_module", libc::SYS_init_module),
    // Linux AIO: the kernel does the writes of io_submit later, outside the system call the
    // monitor sees; programs fall back to ordinary I/O (docs/design.md, "What crosses").
    ("io_cancel", libc::SYS_io_cancel),
    ("io_destroy", libc::SYS_io_destroy),
    ("io_getevents", libc::SYS_io_getevents),
    ("io_setup", libc::SYS_io_setup),
    ("io_submit", libc::SYS_io_submit),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("kcmp", libc::SYS_kcmp),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("kexec_load", libc::SYS_kexec_load),
    ("keyctl", libc::SYS_keyctl),
    ("mount", libc::SYS_mount),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("move_mount", libc::SYS_move_mount),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("open_tree", libc::SYS_open_tree),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("pivot_root", libc::SYS_pivot_root),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("ptrace", libc::SYS_ptrace),
    ("quotactl", libc::SYS_quotactl),
    ("reboot", libc::SYS_reboot),
    ("request_key", libc::SYS_request_key),
    ("setns", libc::SYS_setns),
    ("settimeofday", libc::SYS_settimeofday),
    ("swapoff", libc::SYS_swapoff),
    ("swapon", libc::SYS_swapon),
    ("syslog", libc::SYS_syslog),
    ("umount2", libc::SYS_umount2),
    ("unshare", libc::SYS_unshare),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("adjtimex", libc::SYS_adjtimex),
    ("vhangup", libc::SYS_vhangup),
    // Beyond the first list, after docs/security.md's comparison with Docker's profile:
    // another process's descriptors, obsolete or host-wide interfaces (create_module,
    // get_kernel_syms and query_module are gone from the kernel: ENOSYS already), NUMA placement (Docker
    // allows these only with CAP_SYS_NICE, which a VE does not have), fanotify (host-wide
    // file events; Docker: CAP_SYS_ADMIN only).
    ("pidfd_getfd", libc::SYS_pidfd_getfd),
    ("lookup_dcookie", libc::SYS_lookup_dcookie),
    ("uselib", libc::SYS_uselib),
    ("ustat", libc::SYS_ustat),
    ("sysfs", libc::SYS_sysfs),
    ("_sysctl", libc::SYS__sysctl),
    ("nfsservctl", libc::SYS_nfsservctl),
    ("fanotify_init", libc::SYS_fanotify_init),
    ("mbind", libc::SYS_mbind),
    ("set_mempolicy", libc::SYS_set_mempolicy),
    ("migrate_pages", libc::SYS_migrate_pages),
    ("move_pages", libc::SYS_move_pages),
    #[cfg(target_arch = "x86_64")]
    ("iopl", libc::SYS_iopl),
    #[cfg(target_arch = "x86_64")]
    ("ioperm", libc::SYS_ioperm),
];

/// Terminal ioctls that act on a terminal the VE does not own: TIOCSTI pushes input into it
/// (a command into the caller's shell), TIOCLINUX reaches the console's selection.
pub const DENIED_IOCTLS: &[(&str, u64)] = &[("TIOCSTI", 0x5412), ("TIOCLINUX", 0x541C)];

/// Socket families (and netlink protocols) a VE may not open: packet sockets (raw frames,
/// sniffing and spoofing on the link) and the audit netlink (the host's audit log). Refused
/// with EAFNOSUPPORT, as by a kernel built without them: programs that probe for audit
/// (shadow's groupadd and useradd, so every Debian package that adds a user, sudo, sshd) carry
/// on without it, where EPERM makes them abort ("Cannot open audit interface - aborting").
const AF_PACKET: u64 = libc::AF_PACKET as u64;
const AF_NETLINK: u64 = libc::AF_NETLINK as u64;
const NETLINK_AUDIT: u64 = 9;

/// The personalities a VE may set (Docker's list): Linux, with UNAME26, PER_LINUX32, both,
/// and the query 0xffffffff. READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE and the rest are denied.
pub const PERSONALITIES: &[u64] = &[0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff];

/// Namespace flags `clone` may not carry inside a VE.
const CLONE_NS_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWCGROUP as u64,
];

fn arch() -> Result<TargetArch, SeccompError> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|_| SeccompError::Arch(std::env::consts::ARCH.to_string()))
}

/// Compiles the VE's filters. All must be installed; the kernel applies the strictest result.
pub fn compile() -> Result<Vec<BpfProgram>, SeccompError> {
    let arch = arch()?;
    let mut eperm: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|(_, nr)| (*nr, vec![])).collect();
    let clone_rules = CLONE_NS_FLAGS
        .iter()
        .map(|f| {
            SeccompRule::new(vec![SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(*f),
                *f,
            )?])
        })
        .collect::<Result<Vec<_>, _>>()?;
    eperm.insert(libc::SYS_clone, clone_rules);
    let cond = |arg, len, op, v| SeccompCondition::new(arg, len, op, v);
    use SeccompCmpArgLen::Dword;
    use SeccompCmpOp::{Eq, Ne};
    eperm.insert(
        libc::SYS_ioctl,
        DENIED_IOCTLS
            .iter()
            .map(|(_, req)| Ok(SeccompRule::new(vec![cond(1, Dword, Eq, *req)?])?))
            .collect::<Result<Vec<_>, SeccompError>>()?,
    );
    eperm.insert(
        libc::SYS_personality,
        vec![SeccompRule::new(
            PERSONALITIES
                .iter()
                .map(|p| cond(0, Dword, Ne, *p))
                .collect::<Result<Vec<_>, _>>()?,
        )?],
    );

    let f1 = SeccompFilter::new(
        eperm,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )?;
    let enosys: BTreeMap<i64, Vec<SeccompRule>> =
        [(libc::SYS_clone3, vec![])].into_iter().collect();
    let f2 = SeccompFilter::new(
        enosys,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )?;
    let sockets: BTreeMap<i64, Vec<SeccompRule>> = [(
        libc::SYS_socket,
        vec![
            SeccompRule::new(vec![cond(0, Dword, Eq, AF_PACKET)?])?,
            SeccompRule::new(vec![
                cond(0, Dword, Eq, AF_NETLINK)?,
                cond(2, Dword, Eq, NETLINK_AUDIT)?,
            ])?,
        ],
    )]
    .into_iter()
    .collect();
    let f3 = SeccompFilter::new(
        sockets,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EAFNOSUPPORT as u32),
        arch,
    )?;
    [f1, f2, f3]
        .into_iter()
        .map(|f| BpfProgram::try_from(f).map_err(|e| SeccompError::Compile(e.to_string())))
        .collect()
}

/// Installs compiled filters on the calling thread. `no_new_privs` must already be set.
pub fn install(progs: &[BpfProgram]) -> Result<(), SeccompError> {
    for p in progs {
        seccompiler::apply_filter(p).map_err(|e| SeccompError::Install(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_for_this_arch() {
        let progs = compile().unwrap();
        assert_eq!(progs.len(), 3);
        // One check per denied call at least, plus the clone flag tests.
        assert!(progs[0].len() > DENIED.len() + CLONE_NS_FLAGS.len());
    }

    #[test]
    fn deny_list_has_the_dangerous_calls() {
        for must in [
            "keyctl",
            "add_key",
            "request_key",
            "bpf",
            "perf_event_open",
            "mount",
            "kexec_load",
            "init_module",
            "ptrace",
            "io_uring_setup",
            "io_setup",
            "io_submit",
            "unshare",
        ] {
            assert!(DENIED.iter().any(|(n, _)| *n == must), "{must} not denied");
        }
    }
}
