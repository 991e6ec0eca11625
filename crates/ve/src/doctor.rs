//! `jcs doctor`: which kernel features JCS needs are present on this host. Every probe is
//! side-effect free (nothing is mounted, attached or left behind); host locations are
//! parameters so the probes are testable against fake trees.

use crate::cgroup::CgroupLayout;
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    /// Whether `jcs run` needs it (the others are for later features: monitor, enforcement).
    pub required: bool,
    pub detail: String,
}

fn check(name: &str, required: bool, r: Result<String, String>) -> Check {
    let (ok, detail) = match r {
        Ok(d) => (true, d),
        Err(d) => (false, d),
    };
    Check {
        name: name.into(),
        ok,
        required,
        detail,
    }
}

/// Runs every probe. `proc_root` and `sys_root` are normally `/proc` and `/sys`.
pub fn run(proc_root: &Path, sys_root: &Path) -> Vec<Check> {
    let mut v = Vec::new();
    v.push(check(
        "kernel",
        true,
        Ok(String::from_utf8_lossy(rustix::system::uname().release().to_bytes()).into_owned()),
    ));
    v.push(check("overlayfs lowerdir+", true, probe_overlay()));
    for ns in ["mnt", "pid", "uts", "ipc", "net", "cgroup", "user"] {
        let p = proc_root.join("self/ns").join(ns);
        let r = if std::fs::symlink_metadata(&p).is_ok() {
            Ok(format!("{} present", p.display()))
        } else {
            Err(format!("{} missing", p.display()))
        };
        v.push(check(&format!("{ns} namespace"), ns != "user", r));
    }
    let layout = CgroupLayout::detect_host(proc_root);
    v.push(check(
        "cgroup v2",
        true,
        layout
            .as_ref()
            .map(|l| {
                format!(
                    "{} ({})",
                    l.v2_root().display(),
                    match l {
                        CgroupLayout::Unified { .. } => "pure cgroup2",
                        CgroupLayout::Hybrid { .. } => "hybrid: tracking only",
                    }
                )
            })
            .map_err(|e| e.to_string()),
    ));
    v.push(check(
        "memory and pids limits",
        true,
        match &layout {
            Ok(CgroupLayout::Hybrid { memory, pids, .. }) => Ok(format!(
                "cgroup v1 at {} and {}",
                memory.display(),
                pids.display()
            )),
            Ok(CgroupLayout::Unified { root }) => {
                let c =
                    std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
                let have = |x: &str| c.split_whitespace().any(|w| w == x);
                if have("memory") && have("pids") {
                    Ok("cgroup2 controllers".into())
                } else {
                    Err(format!(
                        "cgroup2 controllers are {c:?}; memory and pids are needed"
                    ))
                }
            }
            Err(e) => Err(e.to_string()),
        },
    ));
    v.push(check(
        "cgroup.kill",
        false,
        match &layout {
            Ok(l) if has_kill_below(l.v2_root()) => Ok("present".into()),
            Ok(_) if kernel_at_least(5, 14) => Ok("present (Linux 5.14 or later)".into()),
            Ok(_) => Err("absent: VEs are killed pid by pid".into()),
            Err(e) => Err(e.to_string()),
        },
    ));
    v.push(check("seccomp filter", true, probe_seccomp(proc_root)));
    v.push(check("seccomp user notification (pre-images)", false, {
        let a = std::fs::read_to_string(proc_root.join("sys/kernel/seccomp/actions_avail"))
            .unwrap_or_default();
        if a.split_whitespace().any(|w| w == "user_notif") {
            Ok("available".into())
        } else {
            Err(format!("actions_avail: {:?}", a.trim()))
        }
    }));
    v.push(check(
        "landlock (policy exec.allow)",
        false,
        probe_landlock(),
    ));
    let btf = sys_root.join("kernel/btf/vmlinux");
    v.push(check(
        "BTF",
        false,
        if btf.exists() {
            Ok(btf.display().to_string())
        } else {
            Err(format!("{} missing", btf.display()))
        },
    ));
    for (name, ty, attach) in [
        ("bpf tracepoint", 5u32, 0u32),
        ("bpf raw_tp", 17, 0),
        ("bpf kprobe", 2, 0),
        ("bpf cgroup/connect4 (policy network)", 18, 10),
    ] {
        v.push(check(name, false, probe_bpf(ty, attach, 0)));
    }
    // --net bridge filters each VE's port with nftables.
    v.push(check(
        "nftables (--net bridge)",
        false,
        match std::process::Command::new("nft").arg("--version").output() {
            Ok(o) if o.status.success() => {
                Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
            }
            Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
            Err(e) => Err(format!("nft not found ({e}): apt-get install nftables")),
        },
    ));
    // The VE's device allow-list is a cgroup device program: required.
    v.push(check(
        "bpf cgroup/dev (device allow-list)",
        true,
        crate::bpf::load(15, 6, 0, &crate::devices::program())
            .map(|_| format!("loads ({} allowed devices)", crate::devices::ALLOWED.len()))
            .map_err(|e| format!("load refused: {e}")),
    ));
    // Programs that attach to a BTF id: they need the kernel's BTF, and fentry/lsm need BPF
    // trampolines, which some kernels lack (the monitor must work without them).
    let vmlinux = std::fs::read(&btf).unwrap_or_default();
    for (name, ty, attach, kind, target) in [
        (
            "bpf tp_btf",
            26u32,
            23u32,
            model::btf::KIND_TYPEDEF,
            "btf_trace_sys_enter",
        ),
        ("bpf fentry", 26, 24, model::btf::KIND_FUNC, "vfs_read"),
        (
            "bpf lsm",
            29,
            27,
            model::btf::KIND_FUNC,
            "bpf_lsm_file_open",
        ),
    ] {
        let r = match model::btf::find_type_id(&vmlinux, kind, target) {
            None => Err(format!("{target} not found in the kernel's BTF")),
            Some(id) => probe_bpf(ty, attach, id).map(|ok| format!("{ok} (on {target})")),
        };
        v.push(check(name, false, r));
    }
    // The monitor's programs read kernel structures through pointers cast with this kfunc
    // (Linux 6.2 and later); without it they do not load.
    v.push(check(
        "bpf kfunc bpf_rdonly_cast (the monitor)",
        false,
        match model::btf::find_type_id(&vmlinux, model::btf::KIND_FUNC, "bpf_rdonly_cast") {
            Some(id) => Ok(format!("BTF id {id}")),
            None => Err("not in the kernel's BTF (Linux 6.2 or later has it)".into()),
        },
    ));
    v
}

/// Whether the running kernel's release is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let rel = String::from_utf8_lossy(rustix::system::uname().release().to_bytes()).into_owned();
    let mut it = rel
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|x| x.parse::<u32>().ok());
    (it.next().unwrap_or(0), it.next().unwrap_or(0)) >= (major, minor)
}

fn has_kill_below(root: &Path) -> bool {
    // The root cgroup has no cgroup.kill; any child does when the kernel supports it.
    std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.path().join("cgroup.kill").exists())
}

fn probe_overlay() -> Result<String, String> {
    use rustix::mount::*;
    let fd = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| format!("fsopen overlay: {e}"))?;
    fsconfig_set_string(&fd, "lowerdir+", "/")
        .map_err(|e| format!("lowerdir+ refused: {e} (needs Linux 6.8+)"))?;
    Ok("new mount API with lowerdir+".into())
}

fn probe_seccomp(proc_root: &Path) -> Result<String, String> {
    // SAFETY: prctl with integer arguments; reads our own seccomp mode.
    let r = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
    if r < 0 {
        return Err("PR_GET_SECCOMP failed: kernel without CONFIG_SECCOMP".into());
    }
    let a = std::fs::read_to_string(proc_root.join("sys/kernel/seccomp/actions_avail"))
        .unwrap_or_default();
    if a.split_whitespace().any(|w| w == "errno") {
        Ok(format!("actions: {}", a.trim()))
    } else {
        Err(format!(
            "seccomp errno action missing (actions_avail: {:?})",
            a.trim()
        ))
    }
}

fn probe_landlock() -> Result<String, String> {
    const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
    // SAFETY: landlock_create_ruleset(NULL, 0, VERSION) only returns the ABI version.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            0usize,
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if r > 0 {
        Ok(format!("ABI {r}"))
    } else {
        Err(format!(
            "not available: {}",
            std::io::Error::last_os_error()
        ))
    }
}

/// Loads `r0 = 0; exit` as program type `ty` and closes it.
fn probe_bpf(ty: u32, expected_attach: u32, attach_btf_id: u32) -> Result<String, String> {
    use crate::bpf::{insn, op};
    let insns = [insn(op::MOV_K, 0, 0, 0, 0), insn(op::EXIT, 0, 0, 0, 0)];
    crate::bpf::load(ty, expected_attach, attach_btf_id, &insns)
        .map(|_| "loads (attaching is not tried)".into())
        .map_err(|e| format!("load refused: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_features_are_reported() {
        let proc = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(proc.path().join("self")).unwrap();
        std::fs::write(proc.path().join("self/mountinfo"), "").unwrap();
        let sys = tempfile::tempdir().unwrap();
        let checks = run(proc.path(), sys.path());
        let get = |n: &str| {
            checks
                .iter()
                .find(|c| c.name == n)
                .unwrap_or_else(|| panic!("{n}"))
        };
        assert!(!get("cgroup v2").ok);
        assert!(get("cgroup v2").detail.contains("no cgroup2"));
        assert!(!get("BTF").ok);
        assert!(!get("pid namespace").ok && get("pid namespace").required);
        // Without BTF, programs that attach to BTF ids cannot even be tried.
        assert!(get("bpf tp_btf")
            .detail
            .contains("not found in the kernel's BTF"));
    }
}
