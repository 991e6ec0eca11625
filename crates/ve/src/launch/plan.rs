//! The child's setup as data: the mount plan (pure; unit-tested without root) and the clone
//! flags of a VE.

use super::{EthConfig, VeConfig};
use model::NetMode;
use std::path::PathBuf;

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
        /// Files in a tmpfs branch above the lowers (`VeConfig::generated`).
        generated: Vec<(PathBuf, Vec<u8>)>,
    },
    /// A storage directory bound at `inner` below the VE's root `root`. The mount point is
    /// resolved beneath `root` without following a symlink: whatever the VE's branches hold
    /// there can fail the start, never reach the host.
    Bind {
        source: PathBuf,
        root: PathBuf,
        inner: PathBuf,
    },
    /// Policy: a writable tree inside a storage mount that becomes read-only, bound onto
    /// itself (made when missing) so that it stays writable.
    Writable {
        root: PathBuf,
        inner: PathBuf,
    },
    /// Policy: a storage mount made read-only (not its writable trees).
    ReadOnly {
        root: PathBuf,
        inner: PathBuf,
    },
    /// Policy: a path hidden from the VE: a directory (made when missing) gets an empty
    /// read-only tmpfs, a file the host's /dev/null on a nodev mount (opening it fails).
    Hide {
        root: PathBuf,
        inner: PathBuf,
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
            Step::Writable { .. } => "writable",
            Step::ReadOnly { .. } => "read-only",
            Step::Hide { .. } => "hide",
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

    pub(super) fn name(&self) -> String {
        match self {
            Step::MakePrivate => "make / private".into(),
            Step::Overlay { target, .. } => format!("mount overlay on {}", target.display()),
            Step::Bind { source, inner, .. } => {
                format!("bind {} on /{}", source.display(), inner.display())
            }
            Step::Writable { inner, .. } => format!("keep /{} writable", inner.display()),
            Step::ReadOnly { inner, .. } => format!("make /{} read-only", inner.display()),
            Step::Hide { inner, .. } => format!("hide /{}", inner.display()),
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

impl Step {
    /// A step that must run in the VE's own network namespace (sysfs shows the namespace's
    /// devices, and only its owner may mount it).
    pub fn needs_net(&self) -> bool {
        matches!(self, Step::Sysfs { .. }) || self.is_net()
    }

    /// A step of the VE's network (the last of a plan: they run after the release, once the
    /// parent's hooks placed the VE's link).
    pub fn is_net(&self) -> bool {
        matches!(self, Step::LoopbackUp | Step::Eth(_))
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
            generated: cfg.generated.clone(),
        },
    ];
    for b in &cfg.binds {
        steps.push(Step::Bind {
            source: b.source.clone(),
            root: r.clone(),
            inner: b.target.relative().into(),
        });
    }
    for t in &cfg.guard.writable {
        steps.push(Step::Writable {
            root: r.clone(),
            inner: t.relative().into(),
        });
    }
    for b in &cfg.guard.read_only {
        steps.push(Step::ReadOnly {
            root: r.clone(),
            inner: b.relative().into(),
        });
    }
    for h in &cfg.guard.hide {
        steps.push(Step::Hide {
            root: r.clone(),
            inner: h.relative().into(),
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

/// Clone flags of a VE's init. Its network namespace is not among them: a helper process
/// makes it (`launch::nethelper`) while the init builds the VE's file system, and the init
/// enters it ([`own_net`]) — a new network namespace is most of what `clone` costs (≈ 0.7 ms
/// of 1 here: the loopback device, its sysctl tables).
pub fn clone_flags() -> libc::c_ulong {
    (libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC)
        as libc::c_ulong
}

/// Whether the VE has a network namespace of its own (every mode but the maintenance mode's
/// `host`), which its init enters before the first step that needs it (`Step::needs_net`; on
/// the bridge, first thing).
pub fn own_net(net: NetMode) -> bool {
    net != NetMode::Host
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::test_cfg::cfg;
    use model::InnerPath;
    use model::NetMode;
    use std::path::Path;
    /// The init runs a plan's steps up to its first network step before the release and the
    /// rest after it: every step after the first network step must be one too.
    #[test]
    fn network_steps_come_last() {
        for net in [NetMode::None, NetMode::Host, NetMode::Bridge] {
            let mut c = cfg(net);
            c.eth = Some(crate::launch::EthConfig {
                addr: "10.0.0.2".parse().unwrap(),
                prefix: 24,
                gateway: "10.0.0.1".parse().unwrap(),
            });
            let plan = plan_mounts(&c);
            let first = plan.iter().position(Step::is_net).unwrap_or(plan.len());
            assert!(plan[first..].iter().all(Step::is_net), "{net:?}: {plan:?}");
            assert_eq!(
                plan.iter().filter(|s| s.is_net()).count(),
                match net {
                    NetMode::Host => 0,
                    NetMode::None => 1,
                    _ => 2,
                },
                "{net:?}"
            );
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
                "bind /s/persist/a/data on /data",
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
    fn a_policy_adds_its_mounts_after_the_binds() {
        let mut c = cfg(NetMode::None);
        let p = model::policy::Policy::parse(
            "[files]\nwritable = [\"/data/out\"]\ndeny_read = [\"/root/.ssh\"]\n",
        )
        .unwrap();
        c.guard = crate::launch::Guard::of(&p, &[InnerPath::parse("/data").unwrap()]).unwrap();
        let names: Vec<String> = plan_mounts(&c).iter().map(Step::name).collect();
        assert_eq!(
            names[2..6],
            [
                "bind /s/persist/a/data on /data",
                "keep /data/out writable",
                "make /data read-only",
                "hide /root/.ssh"
            ]
        );
        // A writable tree outside storage cannot be enforced: refused.
        let p = model::policy::Policy::parse("[files]\nwritable = [\"/etc\"]\n").unwrap();
        let e = crate::launch::Guard::of(&p, &[InnerPath::parse("/data").unwrap()]).unwrap_err();
        assert!(
            e.contains("/etc is not in the app's persistent or shared storage"),
            "{e}"
        );
        // A storage mount inside a writable tree stays writable.
        let p = model::policy::Policy::parse("[files]\nwritable = [\"/data\"]\n").unwrap();
        let g = crate::launch::Guard::of(&p, &[InnerPath::parse("/data").unwrap()]).unwrap();
        assert!(g.read_only.is_empty() && g.writable.is_empty());
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
        assert!(!own_net(NetMode::Host));
        assert!(own_net(NetMode::None) && own_net(NetMode::Bridge));
        // The init unshares it: never the clone's (the parent's) work.
        assert_eq!(clone_flags() & libc::CLONE_NEWNET as libc::c_ulong, 0);
    }
}
