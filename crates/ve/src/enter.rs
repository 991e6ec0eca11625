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

use crate::launch::LaunchError;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

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
}

const EXIT_SETUP: i32 = 125;
const EXIT_NOT_FOUND: i32 = 127;
const EXIT_CANNOT_EXEC: i32 = 126;

fn cstr(s: &str) -> Result<CString, LaunchError> {
    CString::new(s).map_err(|_| LaunchError::Exec(format!("{s:?} contains a NUL byte")))
}

/// Runs the command in the VE and returns its exit status (128+N for a signal; 125 when the
/// process could not be set up, 126/127 when the command could not be executed).
pub fn exec_in(spec: &EnterSpec) -> Result<i32, LaunchError> {
    if spec.argv.is_empty() {
        return Err(LaunchError::Exec(
            "no command to run (give one after --)".into(),
        ));
    }
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
    let argv: Vec<CString> = spec
        .argv
        .iter()
        .map(|a| cstr(a))
        .collect::<Result<_, _>>()?;
    let envp: Vec<CString> = spec
        .env
        .iter()
        .map(|(k, v)| cstr(&format!("{k}={v}")))
        .collect::<Result<_, _>>()?;
    let path = spec
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    let a0 = &spec.argv[0];
    let candidates: Vec<CString> = if a0.contains('/') {
        vec![argv[0].clone()]
    } else {
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| cstr(&format!("{d}/{a0}")))
            .collect::<Result<_, _>>()?
    };
    let ptrs = |v: &[CString]| -> Vec<*const libc::c_char> {
        v.iter()
            .map(|c| c.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    };
    let (argv_p, envp_p) = (ptrs(&argv), ptrs(&envp));
    let workdir = spec.workdir.as_deref().map(cstr).transpose()?;
    let exec_allow: Option<Vec<CString>> = spec
        .exec_allow
        .as_ref()
        .map(|l| l.iter().map(|p| cstr(p)).collect::<Result<_, _>>())
        .transpose()?;
    // SAFETY: fork; the child only makes the calls below and ends in _exit or execve.
    let helper = unsafe { libc::fork() };
    if helper < 0 {
        return Err(LaunchError::Exec(format!(
            "fork: {}",
            io::Error::last_os_error()
        )));
    }
    if helper == 0 {
        helper_main(
            &ns,
            &procs,
            &filters,
            &candidates,
            &argv_p,
            &envp_p,
            workdir.as_ref(),
            spec.user.as_deref(),
            exec_allow.as_deref(),
        );
    }
    let mut status = 0;
    loop {
        // SAFETY: waiting for the helper this process forked.
        let r = unsafe { libc::waitpid(helper, &mut status, 0) };
        if r == helper {
            break;
        }
        if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(LaunchError::Exec(format!(
                "wait for the command: {}",
                io::Error::last_os_error()
            )));
        }
    }
    Ok(if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    })
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

#[allow(clippy::too_many_arguments)]
fn helper_main(
    ns: &[OwnedFd],
    procs: &[OwnedFd],
    filters: &[seccompiler::BpfProgram],
    candidates: &[CString],
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    workdir: Option<&CString>,
    user: Option<&str>,
    exec_allow: Option<&[CString]>,
) -> ! {
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
        let mut status = 0;
        // SAFETY: waiting for our child.
        while unsafe { libc::waitpid(child, &mut status, 0) } < 0 {
            if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                die(EXIT_SETUP, "wait in the VE");
            }
        }
        let code = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        };
        // SAFETY: exiting the helper with the command's status.
        unsafe { libc::_exit(code) }
    }
    // Into the VE's cgroups: the v1 hierarchies first, cgroup2 (what the recorder watches)
    // last; "0" is the writing process.
    for fd in procs {
        // SAFETY: writing two bytes to a descriptor opened above.
        if unsafe { libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1) } != 1 {
            die(EXIT_SETUP, "join the VE's cgroup");
        }
    }
    // A session of its own (never the caller's terminal), and only descriptors 0-2.
    // SAFETY: plain system calls with integer arguments.
    unsafe {
        libc::setsid();
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
        // SAFETY: credential calls with integer arguments and a valid array.
        let ok = unsafe {
            libc::setgroups(ids.groups.len(), ids.groups.as_ptr()) == 0
                && libc::setresgid(ids.gid, ids.gid, ids.gid) == 0
                && libc::setresuid(ids.uid, ids.uid, ids.uid) == 0
        };
        if !ok {
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
    let mut last = libc::ENOENT;
    for c in candidates {
        // SAFETY: NULL-terminated arrays of valid C strings that outlive the call.
        unsafe { libc::execve(c.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        let e = io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::ENOENT);
        if e != libc::ENOENT && e != libc::ENOTDIR {
            last = e;
        }
    }
    let msg = if last == libc::ENOENT {
        "jcs: exec: command not found in the VE\n".to_string()
    } else {
        format!(
            "jcs: exec: cannot execute the command in the VE: {}\n",
            io::Error::from_raw_os_error(last)
        )
    };
    // SAFETY: as in `die`.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::_exit(if last == libc::ENOENT {
            EXIT_NOT_FOUND
        } else {
            EXIT_CANNOT_EXEC
        })
    }
}
