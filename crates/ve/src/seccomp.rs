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
/// (a command into the caller's shell), TIOCLINUX reaches the console's selection. And
/// FS_IOC_SETVERSION, ext4's own number for it, and their 32-bit forms: they set a file's
/// inode generation, part of its identity in the journal (device, inode, generation) — on ext4
/// without metadata checksums the owner may, and the file would look like a new one with no
/// past (a write before it unreachable from a read after it).
pub const DENIED_IOCTLS: &[(&str, u64)] = &[
    ("TIOCSTI", 0x5412),
    ("TIOCLINUX", 0x541C),
    ("FS_IOC_SETVERSION", 0x4008_7602),
    ("FS_IOC32_SETVERSION", 0x4004_7602),
    ("EXT4_IOC_SETVERSION", 0x4008_6604),
    ("EXT4_IOC32_SETVERSION", 0x4004_6604),
];

/// File ioctls that move data between files without a read or a write: FICLONE and
/// FICLONERANGE share one file's blocks with another (a reflink copy: on XFS, btrfs, and an
/// overlay over them), FIDEDUPERANGE compares two files' bytes (an oracle for the contents of a
/// file the VE could only open) and shares them. The monitor would see neither data move; they
/// fail with EOPNOTSUPP, as on a file system without them (ext4), and programs copy with
/// copy_file_range or read and write instead (cp --reflink=auto does), which are recorded.
pub const UNSUPPORTED_IOCTLS: &[(&str, u64)] = &[
    ("FICLONE", 0x4004_9409),
    ("FICLONERANGE", 0x4020_940d),
    ("FIDEDUPERANGE", 0xc018_9436),
];

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

/// The rules of the VE's filter, by the verdict a matching call gets.
struct Rules {
    /// Calls that always fail with EPERM ([`DENIED`]).
    eperm: Vec<u32>,
    /// Calls that fail with EPERM when their arguments match (clone with a namespace flag, a
    /// personality not on the list).
    eperm_if: BTreeMap<i64, Vec<SeccompRule>>,
    /// ioctl requests that fail, with their errno ([`DENIED_IOCTLS`]: EPERM,
    /// [`UNSUPPORTED_IOCTLS`]: EOPNOTSUPP).
    ioctls: Vec<(u32, i32)>,
    /// Calls that always fail with ENOSYS (clone3).
    enosys: Vec<u32>,
    /// Calls that fail with EAFNOSUPPORT when their arguments match (packet and audit
    /// sockets).
    eafnosupport_if: BTreeMap<i64, Vec<SeccompRule>>,
}

impl Rules {
    fn new() -> Result<Rules, SeccompError> {
        let cond = |arg, len, op, v| SeccompCondition::new(arg, len, op, v);
        use SeccompCmpArgLen::{Dword, Qword};
        use SeccompCmpOp::{Eq, MaskedEq, Ne};
        let clone = CLONE_NS_FLAGS
            .iter()
            .map(|f| Ok(SeccompRule::new(vec![cond(0, Qword, MaskedEq(*f), *f)?])?))
            .collect::<Result<Vec<_>, SeccompError>>()?;
        let personality = vec![SeccompRule::new(
            PERSONALITIES
                .iter()
                .map(|p| cond(0, Dword, Ne, *p))
                .collect::<Result<Vec<_>, _>>()?,
        )?];
        let socket = vec![
            SeccompRule::new(vec![cond(0, Dword, Eq, AF_PACKET)?])?,
            SeccompRule::new(vec![
                cond(0, Dword, Eq, AF_NETLINK)?,
                cond(2, Dword, Eq, NETLINK_AUDIT)?,
            ])?,
        ];
        Ok(Rules {
            eperm: DENIED.iter().map(|(_, nr)| *nr as u32).collect(),
            eperm_if: [
                (libc::SYS_clone, clone),
                (libc::SYS_personality, personality),
            ]
            .into_iter()
            .collect(),
            // (The kernel takes an ioctl's request as 32 bits: the upper half is not compared.)
            ioctls: DENIED_IOCTLS
                .iter()
                .map(|(_, r)| (*r as u32, libc::EPERM))
                .chain(
                    UNSUPPORTED_IOCTLS
                        .iter()
                        .map(|(_, r)| (*r as u32, libc::EOPNOTSUPP)),
                )
                .collect(),
            enosys: vec![libc::SYS_clone3 as u32],
            eafnosupport_if: [(libc::SYS_socket, socket)].into_iter().collect(),
        })
    }
}

/// seccompiler's filter: the architecture check, the load of the call's number, one
/// comparison per call it has rules for (in a row), each followed by its rules.
fn row(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    errno: i32,
    arch: TargetArch,
) -> Result<BpfProgram, SeccompError> {
    let f = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        arch,
    )?;
    BpfProgram::try_from(f).map_err(|e| SeccompError::Compile(e.to_string()))
}

/// Compiles the VE's filter: one program, a binary search over the numbers of the calls it
/// has rules for (an unlisted call is allowed after ~8 comparisons; a denied one gets its
/// errno at the leaf), and seccompiler's rows for the calls whose arguments decide. One
/// filter, and short: when a filter is installed the kernel JIT-compiles it and runs it for
/// every call number to find those always allowed (its action cache) — three filters with
/// seccompiler's rows of ~90 comparisons cost 211 µs at each VE start and `jcs exec`, this
/// one (`cargo run --release -p ve --example seccomp_cost`): see docs/benchmarks.md.
pub fn compile() -> Result<Vec<BpfProgram>, SeccompError> {
    Ok(vec![one_filter(Rules::new()?, arch()?)?])
}

/// The x32 ABI's bit in a system call number: x32 calls carry the x86_64 architecture value,
/// so a filter that compares numbers only would let `mount | X32_BIT` through on a kernel with
/// x32. They fail with ENOSYS, as on a kernel without it (this one: `CONFIG_X86_X32_ABI` off).
const X32_BIT: u32 = 0x4000_0000;

const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const RET_K: u16 = 0x06;

fn one_filter(rules: Rules, arch: TargetArch) -> Result<BpfProgram, SeccompError> {
    use seccompiler::sock_filter;
    let ins = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    let Rules {
        eperm,
        eperm_if,
        ioctls,
        enosys,
        eafnosupport_if,
    } = rules;
    // What each listed number leads to.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum To {
        Next,
        At(usize),
        Allow,
        Enosys,
        Eperm,
        EpermRow,
        EafnoRow,
        Ioctl,
    }
    let mut leaves: Vec<(u32, To)> = eperm.iter().map(|&n| (n, To::Eperm)).collect();
    leaves.extend(enosys.iter().map(|&n| (n, To::Enosys)));
    leaves.push((libc::SYS_ioctl as u32, To::Ioctl));
    leaves.extend(eperm_if.keys().map(|&n| (n as u32, To::EpermRow)));
    leaves.extend(eafnosupport_if.keys().map(|&n| (n as u32, To::EafnoRow)));
    leaves.sort_unstable_by_key(|l| l.0);
    if leaves.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(SeccompError::Compile("a call has two rules".into()));
    }
    let eperm_row = row(eperm_if, libc::EPERM, arch)?;
    let eafno_row = row(eafnosupport_if, libc::EAFNOSUPPORT, arch)?;
    // seccompiler's layout: load arch; jeq arch, 1, 0; ret kill; load nr; the row.
    for r in [&eperm_row, &eafno_row] {
        let ok = r.len() > 4
            && r[0].code == LD_W_ABS
            && r[0].k == 4
            && r[1].code == JEQ_K
            && r[1].jt == 1
            && r[2].code == RET_K
            && r[3].code == LD_W_ABS
            && r[3].k == 0;
        if !ok {
            return Err(SeccompError::Compile(
                "seccompiler's filter does not start with the architecture check".into(),
            ));
        }
    }
    // The search: (code, k, jump if true, jump if false), indexes relative to its start.
    let mut tree: Vec<(u16, u32, To, To)> = vec![(JGE_K, X32_BIT, To::Enosys, To::Next)];
    fn build(leaves: &[(u32, To)], tree: &mut Vec<(u16, u32, To, To)>) {
        if let [(nr, to)] = leaves {
            tree.push((JEQ_K, *nr, *to, To::Allow));
            return;
        }
        let mid = leaves.len() / 2;
        let at = tree.len();
        tree.push((JGE_K, leaves[mid].0, To::Next, To::Next));
        build(&leaves[..mid], tree);
        tree[at].2 = To::At(tree.len());
        build(&leaves[mid..], tree);
    }
    build(&leaves, &mut tree);
    // ioctl's requests: load the request (the low half of the second argument), compare it
    // with each listed one (a match jumps to its errno's return), else allow.
    let mut errnos: Vec<i32> = ioctls.iter().map(|i| i.1).collect();
    errnos.sort_unstable();
    errnos.dedup();
    let arg1_low = if cfg!(target_endian = "little") {
        24
    } else {
        28
    };
    let mut ioctl = vec![ins(LD_W_ABS, 0, 0, arg1_low)];
    for (i, &(req, e)) in ioctls.iter().enumerate() {
        // After this instruction: the rest of the comparisons, the allow, then the returns.
        let to_ret = ioctls.len() - i - 1 + 1 + errnos.iter().position(|&x| x == e).unwrap_or(0);
        let jt = u8::try_from(to_ret)
            .map_err(|_| SeccompError::Compile("too many ioctl rules".into()))?;
        ioctl.push(ins(JEQ_K, jt, 0, req));
    }
    let errno = |e: i32| libc::SECCOMP_RET_ERRNO | e as u32;
    ioctl.push(ins(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW));
    ioctl.extend(errnos.iter().map(|&e| ins(RET_K, 0, 0, errno(e))));
    // Then: allow; ENOSYS; EPERM; ioctl's block; the two rows (each from its load of the
    // number on).
    let allow = tree.len();
    let (enosys_at, eperm_at, ioctl_at) = (allow + 1, allow + 2, allow + 3);
    let eperm_row_at = ioctl_at + ioctl.len();
    let eafno_row_at = eperm_row_at + eperm_row.len() - 3;
    let mut out: BpfProgram = eperm_row[..4].to_vec();
    for (i, &(code, k, jt, jf)) in tree.iter().enumerate() {
        let off = |to: To| -> Result<u8, SeccompError> {
            let target = match to {
                To::Next => i + 1,
                To::At(t) => t,
                To::Allow => allow,
                To::Enosys => enosys_at,
                To::Eperm => eperm_at,
                To::EpermRow => eperm_row_at,
                To::EafnoRow => eafno_row_at,
                To::Ioctl => ioctl_at,
            };
            u8::try_from(target - (i + 1))
                .map_err(|_| SeccompError::Compile("a jump of the search is too long".into()))
        };
        out.push(ins(code, off(jt)?, off(jf)?, k));
    }
    out.push(ins(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW));
    out.push(ins(RET_K, 0, 0, errno(libc::ENOSYS)));
    out.push(ins(RET_K, 0, 0, errno(libc::EPERM)));
    out.extend_from_slice(&ioctl);
    out.extend_from_slice(&eperm_row[3..]);
    out.extend_from_slice(&eafno_row[3..]);
    Ok(out)
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
        assert_eq!(progs.len(), 1);
        // One check per denied call at least, plus the clone flag tests.
        assert!(progs[0].len() > DENIED.len() + CLONE_NS_FLAGS.len());
    }

    /// A classic BPF interpreter for what seccompiler and [`searched`] emit, over a
    /// `seccomp_data` (nr, arch, instruction pointer, six arguments): the verdict, and how
    /// many instructions ran.
    fn run(prog: &[seccompiler::sock_filter], nr: u32, args: [u64; 6]) -> (u32, usize) {
        let mut data = Vec::new();
        data.extend_from_slice(&nr.to_ne_bytes());
        // (The architecture the filter checks for: the value its second instruction wants.)
        data.extend_from_slice(&prog[1].k.to_ne_bytes());
        data.extend_from_slice(&0u64.to_ne_bytes());
        for a in args {
            data.extend_from_slice(&a.to_ne_bytes());
        }
        let (mut pc, mut acc, mut steps) = (0usize, 0u32, 0);
        loop {
            let i = &prog[pc];
            pc += 1;
            steps += 1;
            let jump = |cond: bool| usize::from(if cond { i.jt } else { i.jf });
            match i.code {
                0x20 => {
                    let k = i.k as usize;
                    acc = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
                }
                0x54 => acc &= i.k,
                0x05 => pc += i.k as usize,
                0x15 => pc += jump(acc == i.k),
                0x25 => pc += jump(acc > i.k),
                0x35 => pc += jump(acc >= i.k),
                0x45 => pc += jump(acc & i.k != 0),
                0x06 => return (i.k, steps),
                c => panic!("instruction {c:#x} at {}", pc - 1),
            }
        }
    }

    /// The filters as seccompiler alone made them (until 2026-12-05): one per errno, each a
    /// row of comparisons. The kernel ran all three; their calls are disjoint, so the verdict
    /// was the one that was not "allow".
    /// And since FICLONE and its kin were refused, a fourth row for them (EOPNOTSUPP).
    fn three_filters() -> Vec<BpfProgram> {
        let r = Rules::new().unwrap();
        let arch = arch().unwrap();
        let ioctl = |list: &[(&str, u64)]| {
            let rules = list
                .iter()
                .map(|(_, req)| {
                    let c =
                        SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, *req);
                    SeccompRule::new(vec![c.unwrap()]).unwrap()
                })
                .collect();
            [(libc::SYS_ioctl, rules)].into_iter().collect()
        };
        let mut eperm = r.eperm_if;
        eperm.extend(ioctl(DENIED_IOCTLS));
        eperm.extend(r.eperm.iter().map(|&n| (i64::from(n), vec![])));
        let enosys = r.enosys.iter().map(|&n| (i64::from(n), vec![])).collect();
        vec![
            row(eperm, libc::EPERM, arch).unwrap(),
            row(enosys, libc::ENOSYS, arch).unwrap(),
            row(r.eafnosupport_if, libc::EAFNOSUPPORT, arch).unwrap(),
            row(ioctl(UNSUPPORTED_IOCTLS), libc::EOPNOTSUPP, arch).unwrap(),
        ]
    }

    /// The one filter gives every call the verdict the three gave: every system call
    /// number, with arguments that each rule tests (namespace flags of clone, terminal
    /// ioctls, personalities, packet and audit sockets) and others; an x32 call fails with
    /// ENOSYS (the three let it through). And it is shorter, and an unlisted call is decided
    /// in a few steps, not after a row of ~90 comparisons (what makes the kernel's pass over
    /// every number at install short).
    #[test]
    fn the_one_filter_gives_the_three_filters_verdicts() {
        let progs = compile().unwrap();
        assert_eq!(progs.len(), 1);
        let one = &progs[0];
        let three = three_filters();
        let old = |nr: u32, a: [u64; 6]| {
            three
                .iter()
                .map(|p| run(p, nr, a).0)
                .find(|&v| v != libc::SECCOMP_RET_ALLOW)
                .unwrap_or(libc::SECCOMP_RET_ALLOW)
        };
        let mut argsets: Vec<[u64; 6]> = vec![[0; 6], [u64::MAX; 6]];
        for f in CLONE_NS_FLAGS {
            argsets.push([*f | libc::SIGCHLD as u64, 0, 0, 0, 0, 0]);
        }
        argsets.push([libc::SIGCHLD as u64 | libc::CLONE_VM as u64, 0, 0, 0, 0, 0]);
        for (_, req) in DENIED_IOCTLS.iter().chain(UNSUPPORTED_IOCTLS) {
            argsets.push([1, *req, 0, 0, 0, 0]);
            argsets.push([1, *req + 1, 0, 0, 0, 0]);
            // The upper half of the request is not the kernel's.
            argsets.push([1, *req | 0xffff_ffff_0000_0000, 0, 0, 0, 0]);
        }
        for p in PERSONALITIES {
            argsets.push([*p, 0, 0, 0, 0, 0]);
            argsets.push([*p + 1, 0, 0, 0, 0, 0]);
        }
        argsets.push([AF_PACKET, 3, 0, 0, 0, 0]);
        argsets.push([AF_NETLINK, 3, NETLINK_AUDIT, 0, 0, 0]);
        argsets.push([AF_NETLINK, 3, 0, 0, 0, 0]);
        argsets.push([libc::AF_INET as u64, 1, 0, 0, 0, 0]);
        let errno = |e: i32| libc::SECCOMP_RET_ERRNO | e as u32;
        let mut verdicts = std::collections::BTreeSet::new();
        for nr in 0..1024u32 {
            for a in &argsets {
                let v = run(one, nr, *a).0;
                assert_eq!(v, old(nr, *a), "call {nr} with {a:?}");
                verdicts.insert(v);
            }
            if DENIED.iter().any(|(_, d)| *d as u32 == nr) {
                assert_eq!(run(one, nr, [0; 6]).0, errno(libc::EPERM), "call {nr}");
            }
            assert_eq!(
                run(one, nr | X32_BIT, [0; 6]).0,
                errno(libc::ENOSYS),
                "x32 {nr}"
            );
        }
        // Every verdict was met (the argument sets reach each rule).
        let want = [
            libc::SECCOMP_RET_ALLOW,
            errno(libc::EPERM),
            errno(libc::ENOSYS),
            errno(libc::EAFNOSUPPORT),
            errno(libc::EOPNOTSUPP),
        ];
        assert_eq!(verdicts, want.into_iter().collect(), "{verdicts:x?}");
        let getppid = libc::SYS_getppid as u32;
        let (fast, slow) = (
            run(one, getppid, [0; 6]).1,
            run(&three[0], getppid, [0; 6]).1,
        );
        assert!(
            fast <= 14 && slow > 100,
            "getppid: {fast} instructions, {slow} before"
        );
        let before: usize = three.iter().map(Vec::len).sum();
        assert!(
            one.len() * 3 < before * 2,
            "{} instructions, {before} before",
            one.len()
        );
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
