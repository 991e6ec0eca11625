//! A hostile application in a VE (issue 11): a static probe (`tests/data/hostile.c`) tries
//! each way out, inside a VE of the default `jcs run`, where it must be DENIED; and the same
//! attempt on the host, under the same conditions, where it must have ESCAPED (the negative
//! control: a probe that silently does nothing cannot pass).

mod common;

use common::Env;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// The probe's verdict line for ATTEMPT ARGS, run in a VE of `web`.
fn in_ve(env: &Env, args: &[&str]) -> String {
    let mut a = vec!["run", "web", "--", "/data/hostile"];
    a.extend(args);
    env.ok(&a).trim().to_string()
}

/// The same attempt on the host (the control).
fn on_host(probe: &Path, args: &[&str]) -> String {
    let o = Command::new(probe).args(args).output().unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

fn assert_escapes_only_on_the_host(env: &Env, probe: &Path, args: &[&str], host_args: &[&str]) {
    let host = on_host(probe, host_args);
    assert!(host.starts_with("ESCAPED"), "control {host_args:?}: {host}");
    let ve = in_ve(env, args);
    assert!(ve.starts_with("DENIED"), "{args:?} in a VE: {ve}");
}

#[test]
fn root_devices_raw_sockets_personality_and_pidfd_getfd_are_denied() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let probe = common::static_helper(&env, "hostile");
    let scratch = tempfile::tempdir().unwrap();
    let kvm = scratch.path().join("kvm");
    assert_escapes_only_on_the_host(
        &env,
        &probe,
        &["mknod", "/tmp/kvm"],
        &["mknod", kvm.to_str().unwrap()],
    );
    // Device nodes the VE finds (made by the host in its persistent storage): the numbers of
    // /dev/kmsg, the first console, net/tun and a loop device. nodev makes them dead in the
    // VE; the host opens them.
    let data = env.home().join("persist/web/data");
    let mut tried = 0;
    for (name, kind, major, minor) in [
        ("kmsg", libc::S_IFCHR, 1, 11),
        ("tty0", libc::S_IFCHR, 4, 0),
        ("tun", libc::S_IFCHR, 10, 200),
        ("loop0", libc::S_IFBLK, 7, 0),
    ] {
        let p = data.join(name);
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: mknod with a valid path, as root, in the test's own store.
        let r = unsafe { libc::mknod(c.as_ptr(), kind | 0o600, libc::makedev(major, minor)) };
        assert_eq!(r, 0, "mknod {name}");
        // A device whose driver this host lacks cannot be a control: skipped, and said so.
        let host = on_host(&probe, &["open", p.to_str().unwrap()]);
        if host.contains("No such device") {
            eprintln!("no driver for {name} on this host: not a usable control");
            continue;
        }
        assert_escapes_only_on_the_host(
            &env,
            &probe,
            &["open", &format!("/data/{name}")],
            &["open", p.to_str().unwrap()],
        );
        tried += 1;
    }
    assert!(
        tried >= 2,
        "fewer than two device controls opened on this host"
    );
    for attempt in [
        "raw",
        "packet",
        "audit",
        "personality",
        "pidfd_getfd",
        "aio",
    ] {
        assert_escapes_only_on_the_host(&env, &probe, &[attempt], &[attempt]);
    }
    // Packet and audit sockets are refused as by a kernel without them (EAFNOSUPPORT), which
    // programs that probe for audit (groupadd, useradd: every Debian package that adds a
    // user) take in their stride; EPERM made them abort.
    for attempt in ["packet", "audit"] {
        let ve = in_ve(&env, &[attempt]);
        assert!(
            ve.contains(&std::io::Error::from_raw_os_error(libc::EAFNOSUPPORT).to_string()[..20]),
            "{attempt}: {ve}"
        );
    }
    // The devices a VE does get still work.
    env.sh_ok(
        "echo x > /dev/null && head -c 4 /dev/urandom > /tmp/r && head -c 1 /dev/zero >/tmp/z",
    );
    // The allow list is the device program on the parent of every VE cgroup (one program,
    // however many VEs ran).
    let jcs_cg = common::cgroup2_root().join("jcs");
    assert_eq!(
        ve::bpf::attached_names(std::fs::File::open(jcs_cg).unwrap(), 6).unwrap(),
        vec![ve::devices::name()]
    );
}

/// A command run with a fresh pty as its controlling terminal (stdin, stdout and stderr on
/// the pty's slave), as a shell in a terminal runs it.
fn on_a_terminal(mut cmd: Command) -> (std::process::Output, OwnedFd) {
    let (master, slave) = common::openpty(None);
    let s = slave.as_raw_fd();
    cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec: a new session whose
    // controlling terminal is the pty (as a login shell's is).
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let _ = s;
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    drop(slave);
    (out, master)
}

#[test]
fn root_the_callers_terminal_cannot_be_pushed_into() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let probe = common::static_helper(&env, "hostile");
    // Control: a process of the terminal's session pushes a byte into it.
    let mut host = Command::new(&probe);
    host.arg("tiocsti");
    let (out, _m) = on_a_terminal(host);
    let host = String::from_utf8_lossy(&out.stdout);
    assert!(host.starts_with("ESCAPED"), "control: {host}");
    // In a VE started from that terminal: the VE has a session of its own, and TIOCSTI is
    // denied in any case.
    let mut ve = env.cmd(&["run", "web", "--", "/data/hostile", "tiocsti"]);
    ve.stdin(Stdio::null());
    let (out, _m) = on_a_terminal(ve);
    let ve = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ve.starts_with("DENIED"), "in a VE: {ve}");
}

#[test]
fn root_only_descriptors_0_to_2_pass_into_the_ve() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let probe = common::static_helper(&env, "hostile");
    // Descriptors 3 (a file) and 7 (the host's root directory), without FD_CLOEXEC.
    let file = std::fs::File::open(&probe).unwrap();
    let root = std::fs::File::open("/").unwrap();
    let (f, r) = (file.as_raw_fd(), root.as_raw_fd());
    let with_fds = |mut c: Command| {
        // SAFETY: dup2 between fork and exec (async-signal-safe).
        unsafe {
            c.pre_exec(move || {
                for (from, to) in [(f, 3), (r, 7)] {
                    // dup2 onto itself keeps FD_CLOEXEC: clear it either way.
                    if libc::dup2(from, to) < 0 || libc::fcntl(to, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        c.output().unwrap()
    };
    let mut host = Command::new(&probe);
    host.arg("fds");
    let out = String::from_utf8(with_fds(host).stdout).unwrap();
    assert!(
        out.starts_with("ESCAPED 3 ") && out.contains(" 7 "),
        "control: {out}"
    );
    let out = with_fds(env.cmd(&["run", "web", "--", "/data/hostile", "fds"]));
    let ve = String::from_utf8(out.stdout).unwrap();
    assert!(ve.starts_with("DENIED"), "in a VE: {ve}");
    // --preserve-fds 1 passes exactly descriptor 3.
    let out = with_fds(env.cmd(&[
        "run",
        "web",
        "--preserve-fds",
        "1",
        "--",
        "/data/hostile",
        "fds",
    ]));
    let ve = String::from_utf8(out.stdout).unwrap();
    assert_eq!(ve.trim(), "ESCAPED 3", "with --preserve-fds 1");
}

#[test]
fn root_a_symlink_at_a_mount_point_fails_the_start_and_touches_nothing_on_the_host() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let scratch = tempfile::tempdir().unwrap();
    let target = scratch.path().join("escape");
    // Maintenance mode publishes an app layer whose /data (a storage mount point) is a link
    // to a host directory that does not exist.
    env.ok(&[
        "app",
        "update",
        "web",
        "--net",
        "none",
        "--",
        "/bin/sh",
        "-c",
        &format!("rmdir /data && ln -s {} /data", target.display()),
    ]);
    // Control: the link is in the published layer and names the host path.
    let layer = env.home().join("apps/web/2/data");
    assert_eq!(std::fs::read_link(&layer).unwrap(), target);
    let err = env.fails(&["run", "web", "--", "/bin/true"]);
    assert!(
        err.contains("mount point /data is a symbolic link"),
        "unexpected error: {err}"
    );
    assert!(!target.exists(), "the host path was created");
}

#[test]
fn root_links_fifos_and_devices_a_ve_leaves_are_never_followed_by_jcs() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "host secret").unwrap();
    let s = secret.path().display();
    // In persistent storage (hashed by jcs run after the VE) and in the dirties (hashed by
    // jcs inspect): links to a host file and to /dev/zero, a FIFO, and one real file.
    let script = format!(
        "ln -s {s} /data/secret; ln -s /dev/zero /data/zero; mkfifo /data/fifo; \
         echo real > /data/real; ln -s {s} /root/secret; ln -s /dev/zero /root/zero; \
         mkfifo /root/fifo"
    );
    let started = std::time::Instant::now();
    env.sh_ok(&script);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "jcs run hung"
    );
    // Control: on the host, the links resolve to the secret (a follower would read it).
    let data = env.home().join("persist/web/data");
    assert_eq!(
        std::fs::read_to_string(data.join("secret")).unwrap(),
        "host secret"
    );
    let r = env.json(&["inspect", "1", "--json"]);
    let sha_of = |list: &str, path: &str| {
        r[list]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == path)
            .unwrap_or_else(|| panic!("{path} not in {list}: {r}"))["sha256"]
            .clone()
    };
    for p in ["/data/secret", "/data/zero", "/data/fifo"] {
        assert!(sha_of("storage", p).is_null(), "{p} was read: {r}");
    }
    assert!(sha_of("storage", "/data/real").is_string());
    for p in ["/root/secret", "/root/zero", "/root/fifo"] {
        assert!(sha_of("dirties", p).is_null(), "{p} was read: {r}");
    }
}

/// `jcs run` on a terminal gives the VE a terminal of its own: `tty` names the VE's pty,
/// the window size is the caller's, typed input reaches the app, and the caller's terminal
/// is in its own mode again afterwards.
#[test]
fn root_a_ve_on_a_terminal_gets_its_own_pty() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let cmd = env.cmd(&[
        "run",
        "web",
        "--",
        "/bin/sh",
        "-c",
        "tty; stty size; read x; echo got:$x",
    ]);
    let (status, text, restored) =
        common::drive_on_pty(cmd, (33, 111), "33 111", b"hello\r", "got:hello");
    assert!(status.success(), "{status}: {text:?}");
    assert!(
        text.contains("/dev/pts/0"),
        "no pty of the VE's own: {text:?}"
    );
    assert!(
        text.contains("33 111"),
        "the window size did not pass: {text:?}"
    );
    assert!(
        text.contains("got:hello"),
        "typed input did not arrive: {text:?}"
    );
    // The caller's terminal is back in the mode it had.
    assert!(restored, "the caller's terminal is left in raw mode");
    // What crossed the terminal is recorded, as the user's terminal: the prompt the VE wrote
    // to it and the line typed into it.
    let log = env.log(1);
    let on_pty = |op: &str, field: &str| -> u64 {
        log.iter()
            .filter(|t| t["op"] == op && t[field] == "host:pty")
            .map(|t| t["len"].as_u64().unwrap())
            .sum()
    };
    assert!(
        on_pty("write", "dst") >= "got:hello\n".len() as u64,
        "{log:#?}"
    );
    assert!(on_pty("read", "src") >= "hello\n".len() as u64, "{log:#?}");
}

/// A VE that leaves huge sparse files (in storage and in its dirties) cannot make JCS hash
/// for long: files over the hashing limit are reported without a hash, and the report says
/// why; smaller files are still hashed.
#[test]
fn root_huge_files_a_ve_leaves_are_not_hashed_for_long() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let started = std::time::Instant::now();
    env.sh_ok("truncate -s 8G /data/big; truncate -s 8G /root/big; echo small > /data/small");
    let r = env.json(&["inspect", "1", "--json"]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let find = |list: &str, path: &str| {
        r[list]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == path)
            .unwrap_or_else(|| panic!("{path}: {r}"))
            .clone()
    };
    assert!(find("storage", "/data/big")["sha256"].is_null());
    assert_eq!(find("storage", "/data/big")["size"], 8u64 << 30);
    assert!(find("dirties", "/root/big")["sha256"].is_null());
    assert!(find("storage", "/data/small")["sha256"].is_string());
    let notes = r["notes"].to_string();
    assert!(notes.contains("2 file(s) not hashed"), "{notes}");
}

/// The VE's mountinfo does not show where the store is: the overlay's layers are named by
/// descriptors (the control: the store's path is a real, long, distinctive path).
#[test]
fn root_the_ves_overlay_does_not_show_the_stores_paths() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let home = env.home().to_str().unwrap().to_string();
    assert!(home.len() > 8);
    let mi = env.sh_ok("cat /proc/self/mountinfo");
    let root = mi
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap_or_else(|| panic!("{mi}"));
    assert!(root.contains("overlay"), "{root}");
    assert!(!root.contains(&home), "the overlay shows the store: {root}");
    assert!(root.contains("lowerdir+=/proc/self/fd/"), "{root}");
}

/// `--cap-add NET_RAW` gives raw IP sockets back (ping), not packet sockets; capabilities
/// beyond the two Docker grants are refused.
#[test]
fn root_cap_add_gives_back_raw_sockets_only() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "hostile");
    let with = |args: &[&str]| {
        let mut a = vec!["run", "web", "--cap-add", "NET_RAW", "--", "/data/hostile"];
        a.extend(args);
        env.ok(&a).trim().to_string()
    };
    assert!(in_ve(&env, &["raw"]).starts_with("DENIED"));
    assert!(with(&["raw"]).starts_with("ESCAPED"), "--cap-add NET_RAW");
    assert!(with(&["packet"]).starts_with("DENIED"));
    let err = env.fails(&["run", "web", "--cap-add", "SYS_ADMIN", "--", "true"]);
    assert!(err.contains("only NET_RAW and AUDIT_WRITE"), "{err}");
}

/// The device program alone (no nodev, no missing capability): attached to a cgroup of the
/// test's, it makes the kernel refuse /dev/kmsg to a process in a cgroup below it, while null
/// stays open to it; the same probe outside the cgroup opens /dev/kmsg (the control). It
/// replaces a device program of another list there; a second `restrict` loads nothing, and
/// the cgroup below cannot attach a device program of its own (as a VE's cgroup below `jcs/`
/// cannot).
#[test]
fn root_the_device_program_is_enforced_by_the_kernel() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let probe = common::static_helper(&env, "hostile");
    let top = common::TestCgroup::top("devtest");
    let tcg = top.child("inner");

    let attached = || ve::bpf::attached_names(std::fs::File::open(&top.0).unwrap(), 6).unwrap();
    assert_eq!(attached(), Vec::<String>::new());
    let run = |inside: bool, dev: &str| {
        let mut c = Command::new(&probe);
        c.args(["open", dev]);
        if inside {
            tcg.join_at_exec(&mut c);
        }
        String::from_utf8(c.output().unwrap().stdout).unwrap()
    };
    // A device program of another list (here: everything allowed) on the parent is replaced,
    // not kept beside ours. Control: while it is there, kmsg opens below it.
    let allow_all = [
        ve::bpf::insn(ve::bpf::op::MOV_K, 0, 0, 0, 1),
        ve::bpf::insn(ve::bpf::op::EXIT, 0, 0, 0, 0),
    ];
    let old = ve::bpf::load_named(15, 6, 0, &allow_all, "jcsdev_older").unwrap();
    ve::bpf::attach(&old, std::fs::File::open(&top.0).unwrap(), 6).unwrap();
    drop(old);
    assert_eq!(attached(), vec!["jcsdev_older".to_string()]);
    assert!(
        run(true, "/dev/kmsg").starts_with("ESCAPED"),
        "control: the old program"
    );
    ve::devices::restrict(&top.0).unwrap();
    ve::devices::restrict(&top.0).unwrap();
    assert_eq!(
        attached(),
        vec![ve::devices::name()],
        "replaced, attached once"
    );
    let other = ve::bpf::load(15, 6, 0, &allow_all).unwrap();
    let e = ve::bpf::attach(&other, std::fs::File::open(&tcg.0).unwrap(), 6).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
    assert!(run(false, "/dev/kmsg").starts_with("ESCAPED"), "control");
    let inside = run(true, "/dev/kmsg");
    assert!(
        inside.starts_with("DENIED Operation not permitted"),
        "{inside}"
    );
    assert!(
        run(true, "/dev/null").starts_with("ESCAPED"),
        "null is allowed"
    );
}
