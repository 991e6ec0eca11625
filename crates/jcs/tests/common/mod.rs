//! Harness for privileged tests: each test gets its own store (`JCS_HOME` in a temporary
//! directory) and a guard that removes whatever a failing test left behind — cgroups of the
//! store's VEs and their processes — and can assert that nothing was left.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub struct Env {
    pub home: tempfile::TempDir,
    /// Where its daemons meet when not in its own `run` directory.
    run: Option<PathBuf>,
}

/// The schema (docs/schema/NAME.json) of what `jcs ARGS` prints with --json.
pub fn schema_name(args: &[&str]) -> String {
    // (The global --home takes a value.)
    let mut words: Vec<&str> = vec![];
    let mut skip = false;
    for &a in args {
        if std::mem::take(&mut skip) {
            continue;
        }
        if a == "--home" {
            skip = true;
        } else if !a.starts_with('-') {
            words.push(a);
        }
    }
    let w0 = words.first().copied().unwrap_or("");
    let w1 = words.get(1).copied().unwrap_or("");
    match (w0, w1) {
        ("template", "create" | "import") => "template-create".into(),
        ("template" | "app" | "versions" | "policy", sub) => format!("{w0}-{sub}"),
        ("summarize", _) if args.contains(&"--dry-run") => "summarize-dry-run".into(),
        _ => w0.into(),
    }
}

/// Checks `out` (what `jcs ARGS --json` printed) against its schema; panics with what is
/// wrong.
pub fn validate_json(args: &[&str], out: &str) {
    if let Err(e) = follows_schema(args, out) {
        panic!("{e}");
    }
}

/// Whether `out` follows the schema of `jcs ARGS --json` (tests/data/validate-json.py, with
/// Debian's python3-jsonschema); Err says where it does not.
pub fn follows_schema(args: &[&str], out: &str) -> Result<(), String> {
    let name = schema_name(args);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let schema = root.join(format!("../../docs/schema/{name}.json"));
    assert!(
        schema.exists(),
        "jcs {args:?} --json: no schema {}",
        schema.display()
    );
    let mut c = Command::new("/usr/bin/python3");
    c.arg(root.join("tests/data/validate-json.py")).arg(&schema);
    if name == "log" {
        c.arg("--lines");
    }
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 (scripts/install-deps.sh installs it)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(out.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    if o.status.success() {
        return Ok(());
    }
    Err(format!(
        "jcs {args:?}: the output does not follow {}:\n{}\n{}",
        schema.display(),
        String::from_utf8_lossy(&o.stderr),
        out.chars().take(4000).collect::<String>()
    ))
}

/// The jcs binary the tests run: this tree's, or `JCS_TEST_BIN` (another build, to see a
/// test fail against the code before a fix: a negative control).
pub fn jcs_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("JCS_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_jcs").to_string())
    })
}

/// Starts `c` with signal `sig` ignored (as `nohup`, or a shell script's background job, would
/// start it).
pub fn ignoring(c: &mut Command, sig: i32) {
    // SAFETY: in the child before exec; signal() is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(c, move || {
            libc::signal(sig, libc::SIG_IGN);
            Ok(())
        });
    }
}

/// The host's processes whose command line contains `marker`, as "PID: CMDLINE".
pub fn processes_with(marker: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok().map(|c| (e, c)))
        .filter(|(_, c)| String::from_utf8_lossy(c).contains(marker))
        .map(|(e, c)| {
            format!(
                "{}: {}",
                e.file_name().to_string_lossy(),
                String::from_utf8_lossy(&c)
            )
        })
        .collect()
}

/// Whether this privileged test can run. As root it does; otherwise it prints a visible SKIP
/// line and does not, unless `JCS_REQUIRE_ROOT` is set (`./test.sh` sets it), where not being
/// root fails the test: CI can never pass by skipping.
pub fn privileged() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    let test = std::thread::current().name().unwrap_or("?").to_string();
    assert!(
        std::env::var_os("JCS_REQUIRE_ROOT").is_none(),
        "{test}: JCS_REQUIRE_ROOT is set, but this test does not run as root"
    );
    // Straight to stderr, past the test harness's capture, so that the skip is seen.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIP {test}: privileged (namespaces, mounts, cgroups, BPF); run ./test.sh as root"
    );
    false
}

impl Env {
    /// A fresh store for a privileged test; None (after a SKIP line) when not root.
    pub fn new() -> Option<Env> {
        privileged().then(|| Env {
            home: tempfile::Builder::new()
                .prefix("jcs-test-")
                .tempdir()
                .unwrap(),
            run: None,
        })
    }

    /// This store's daemons meet in `run` (another test store's run directory: one daemon
    /// serves both).
    pub fn meeting_in(mut self, run: &Path) -> Env {
        self.run = Some(run.to_path_buf());
        self
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_of(Path::new(jcs_bin()), args)
    }

    /// [`Env::cmd`] with another jcs binary (a copy of another build).
    pub fn cmd_of(&self, bin: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(bin);
        c.args(args)
            .env("JCS_HOME", self.home())
            .env("JCS_RUN_DIR", self.run_dir())
            .stdin(Stdio::null());
        c
    }

    /// Where this test's daemons meet (`JCS_RUN_DIR`): each test has its own host daemon, so
    /// that a test that kills its daemon kills no other test's.
    pub fn run_dir(&self) -> std::path::PathBuf {
        self.run.clone().unwrap_or_else(|| self.home().join("run"))
    }

    /// Runs `jcs ARGS` to its end. One that has not ended after `JCS_TEST_TIMEOUT` seconds
    /// (default 300) is killed and fails the test: a hang is a bug, and must not hold the
    /// whole suite.
    pub fn jcs(&self, args: &[&str]) -> Output {
        let limit = std::env::var("JCS_TEST_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(300);
        let child = self
            .cmd(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(std::time::Duration::from_secs(limit)) {
            Ok(o) => o.unwrap(),
            Err(_) => {
                // SAFETY: kill of our own child by its pid (not yet reaped: its waiter is
                // still waiting).
                unsafe { libc::kill(pid, libc::SIGKILL) };
                let o = rx.recv().unwrap().unwrap();
                panic!(
                    "jcs {args:?} did not end within {limit} s (killed):\nstdout: {}\nstderr: {}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
    }

    /// Runs jcs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.jcs(args);
        assert!(
            o.status.success(),
            "jcs {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Runs jcs and expects failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.jcs(args);
        assert!(
            !o.status.success(),
            "jcs {args:?} succeeded unexpectedly: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8(o.stderr).unwrap()
    }

    /// Runs `jcs ARGS` (with --json) and returns its JSON, after checking it against the
    /// output's schema in docs/schema/: every test that reads JSON checks the contract too.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.ok(args);
        validate_json(args, &out);
        serde_json::from_str(&out).unwrap()
    }

    /// `jcs log --ve VE --json`: the VE's transactions (each line checked by the schema).
    pub fn log(&self, ve: u64) -> Vec<serde_json::Value> {
        let args = ["log", "--ve", &ve.to_string(), "--json"];
        let out = self.ok(&args);
        validate_json(&args, &out);
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// `jcs track ARGS --json`: the variables the answer reached.
    pub fn reached(&self, args: &[&str]) -> Vec<String> {
        let j = self.json(&[&["track"], args, &["--json"]].concat());
        j["reached"]
            .as_array()
            .unwrap_or_else(|| panic!("{j}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    /// `jcs run web -- /bin/sh -c SCRIPT`.
    pub fn sh(&self, script: &str) -> Output {
        self.jcs(&["run", "web", "--", "/bin/sh", "-c", script])
    }

    /// The command `jcs run web -- /bin/sh -c SCRIPT`, to spawn.
    pub fn sh_cmd(&self, script: &str) -> Command {
        self.cmd(&["run", "web", "--", "/bin/sh", "-c", script])
    }

    /// `jcs run web -- /bin/sh -c SCRIPT`, expected to succeed; returns stdout.
    pub fn sh_ok(&self, script: &str) -> String {
        self.ok(&["run", "web", "--", "/bin/sh", "-c", script])
    }

    /// Like [`Env::sh_ok`], with `vars` in jcs run's environment (and so in the daemon's it
    /// starts).
    pub fn sh_ok_with(&self, vars: &[(&str, &str)], script: &str) -> String {
        let o = self
            .cmd(&["run", "web", "--", "/bin/sh", "-c", script])
            .envs(vars.iter().copied())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// A busybox template `bb` and an app `web` with /data persistent and /dl shared.
    pub fn standard_app(&self) {
        self.ok(&["template", "create", "bb", "--busybox"]);
        self.ok(&[
            "app",
            "create",
            "web",
            "--template",
            "bb",
            "--persist",
            "/data",
            "--share",
            "/dl=downloads",
        ]);
    }

    /// A busybox template `bb` (made once) and an app `name` on the bridge, with /data
    /// persistent.
    pub fn bridge_app(&self, name: &str) {
        if !self.home().join("templates/bb").exists() {
            self.ok(&["template", "create", "bb", "--busybox"]);
        }
        self.ok(&[
            "app",
            "create",
            name,
            "--template",
            "bb",
            "--net",
            "bridge",
            "--persist",
            "/data",
        ]);
    }

    /// Starts `jcs run web` (see [`Env::standard_app`]) with a VE that runs `prelude`, idles
    /// until [`Env::go`], then runs `after`; returns once the VE idles. Its stdout and stderr are
    /// piped.
    pub fn spawn_until_go(&self, prelude: &str, after: &str) -> std::process::Child {
        let script = format!(
            "{prelude}; touch /data/up; while [ ! -e /data/go ]; do sleep 0.05; done; {after}"
        );
        let c = self
            .cmd(&["run", "web", "--", "/bin/sh", "-c", &script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let up = self.home().join("persist/web/data/up");
        assert!(wait_for(10, || up.exists()), "the VE did not come up");
        std::fs::remove_file(up).unwrap();
        c
    }

    /// Lets the VEs started by [`Env::spawn_until_go`] finish.
    pub fn go(&self) {
        std::fs::write(self.home().join("persist/web/data/go"), "").unwrap();
    }

    pub fn store_id(&self) -> String {
        let c = rusqlite::Connection::open(self.home().join("catalog.db")).unwrap();
        c.query_row("SELECT value FROM meta WHERE key='store_id'", [], |r| {
            r.get(0)
        })
        .unwrap()
    }

    /// Every cgroup directory of this store's VEs that exists now.
    pub fn cgroups(&self) -> Vec<PathBuf> {
        if !self.home().join("catalog.db").exists() {
            return vec![];
        }
        let prefix = format!("{}-", self.store_id());
        let mut out = vec![];
        for h in [
            "/sys/fs/cgroup/unified",
            "/sys/fs/cgroup/memory",
            "/sys/fs/cgroup/pids",
            "/sys/fs/cgroup",
        ] {
            let dir = Path::new(h).join("jcs");
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    out.push(e.path());
                }
            }
        }
        out
    }

    /// Mounts on the host that involve this store.
    pub fn mounts(&self) -> Vec<String> {
        let home = self.home().to_string_lossy().to_string();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&home))
            .map(str::to_string)
            .collect()
    }

    /// Asserts that no VE of this store left a cgroup (hence no process) or a mount.
    pub fn assert_clean(&self) {
        assert_eq!(self.cgroups(), Vec::<PathBuf>::new(), "cgroups left behind");
        assert_eq!(self.mounts(), Vec::<String>::new(), "mounts left behind");
        for e in std::fs::read_dir(self.home().join("ve"))
            .into_iter()
            .flatten()
            .flatten()
        {
            assert!(
                !e.path().join("root").exists(),
                "{} still has its mount point",
                e.path().display()
            );
        }
    }
}

impl Env {
    /// The pid of this store's monitor daemon, if one was started.
    pub fn daemon_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.home().join("daemon.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Sends `sig` to this store's daemon and waits until it is gone; whether it was gone.
    fn signal_daemon(&self, sig: i32) -> bool {
        let Some(pid) = self.daemon_pid() else {
            return true;
        };
        // SAFETY: a signal to the daemon of this test's own store, by its recorded pid.
        unsafe { libc::kill(pid, sig) };
        wait_for(10, || !Path::new(&format!("/proc/{pid}")).exists())
    }

    /// Stops this store's monitor daemon (started on demand by jcs run) and waits until it
    /// is gone: its BPF programs are detached when it exits.
    pub fn stop_daemon(&self) {
        self.signal_daemon(libc::SIGTERM);
    }

    /// Kills this store's daemon (SIGKILL: nothing unacknowledged is flushed) and waits for
    /// it to be gone.
    pub fn kill_daemon(&self) {
        assert!(self.signal_daemon(libc::SIGKILL), "the daemon did not die");
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // A failed test shows what its daemon logged (its store goes with it).
        if std::thread::panicking() {
            if let Ok(log) = std::fs::read_to_string(self.home().join("daemon.log")) {
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- the daemon's log (last 40 lines) ---");
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
        self.stop_daemon();
        // Kill and remove whatever a failed test left, deepest first.
        for cg in self.cgroups() {
            for _ in 0..50 {
                let procs = std::fs::read_to_string(cg.join("cgroup.procs")).unwrap_or_default();
                if procs.trim().is_empty() {
                    break;
                }
                for p in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    // SAFETY: SIGKILL to a process in this test's own VE cgroup.
                    unsafe { libc::kill(p, libc::SIGKILL) };
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = std::fs::remove_dir(&cg);
        }
        for m in self.mounts() {
            if let Some(mp) = m.split(' ').nth(4) {
                let _ = Command::new("umount").arg("-l").arg(mp).status();
            }
        }
    }
}

/// Polls `f` until it returns true or `secs` pass.
/// The entries of a log (`Env::log`) with an end (source or target) whose name starts with
/// `prefix`.
pub fn with_an_end<'a>(log: &'a [serde_json::Value], prefix: &str) -> Vec<&'a serde_json::Value> {
    log.iter()
        .filter(|a| {
            [&a["src"], &a["dst"]]
                .iter()
                .any(|v| v.as_str().is_some_and(|s| s.starts_with(prefix)))
        })
        .collect()
}

pub fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

/// Hashes every file of a tree (path → (mode, content)), to show it is untouched.
pub fn tree_digest(root: &Path) -> Vec<(String, u32, Vec<u8>)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let content = if m.is_file() {
                std::fs::read(&p).unwrap()
            } else if m.file_type().is_symlink() {
                std::fs::read_link(&p)
                    .unwrap()
                    .to_string_lossy()
                    .as_bytes()
                    .to_vec()
            } else {
                vec![]
            };
            if m.is_dir() {
                stack.push(p.clone());
            }
            out.push((
                p.strip_prefix(root).unwrap().to_string_lossy().into(),
                m.mode(),
                content,
            ));
        }
    }
    out.sort();
    out
}

/// A network namespace of this test, deleted on drop.
pub struct NetNs(String);

impl NetNs {
    pub fn new() -> NetNs {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("jcs-t-{}-{n}", std::process::id());
        let st = std::process::Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(st.success(), "ip netns add {name}");
        let ns = NetNs(name);
        assert!(ns
            .cmd("ip", &["link", "set", "lo", "up"])
            .status()
            .unwrap()
            .success());
        ns
    }
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }
    /// A command in this namespace. nsenter switches only the network namespace (`ip netns
    /// exec` would also remount /sys, hiding the cgroup hierarchies).
    pub fn cmd(&self, prog: &str, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new("nsenter");
        c.arg(format!("--net={}", self.path())).arg(prog).args(args);
        c
    }
    pub fn links(&self) -> String {
        String::from_utf8(self.cmd("ip", &["-br", "link"]).output().unwrap().stdout).unwrap()
    }
    /// Waits (up to 10 s) until a TCP socket of this namespace listens on `port`: a server
    /// just spawned may not have bound yet, and a client that came first would be refused.
    pub fn wait_listening(&self, port: u16) {
        let want = format!(":{port:04X}");
        for _ in 0..1000 {
            let o = self
                .cmd("cat", &["/proc/net/tcp", "/proc/net/tcp6"])
                .output()
                .unwrap();
            // Columns: sl, local address (ADDR:PORT in hex), remote address, st (0A: LISTEN).
            let listening = String::from_utf8_lossy(&o.stdout).lines().any(|l| {
                let c: Vec<&str> = l.split_whitespace().collect();
                c.len() > 3 && c[1].ends_with(&want) && c[3] == "0A"
            });
            if listening {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("nothing listens on port {port} in {}", self.0);
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

/// Builds `tests/data/NAME.c` static (with -pthread) into the `web` app's persistent storage,
/// where a VE runs it as `/data/NAME`; returns its host path.
pub fn static_helper(env: &Env, name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/{name}.c"));
    let dir = env.home().join("persist/web/data");
    std::fs::create_dir_all(&dir).unwrap();
    let st = Command::new("cc")
        .args(["-static", "-O2", "-pthread", "-o"])
        .arg(dir.join(name))
        .arg(&src)
        .status()
        .expect("a C compiler (cc)");
    assert!(st.success(), "cc {}", src.display());
    dir.join(name)
}

/// A fresh pty pair (master, slave), with a window size when given as (rows, columns).
pub fn openpty(size: Option<(u16, u16)>) -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let ws = size.map(|(r, c)| libc::winsize {
        ws_row: r,
        ws_col: c,
        ws_xpixel: 0,
        ws_ypixel: 0,
    });
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills two fds; the window size, when given, is read through a pointer
    // that outlives the call.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            ws.as_ref()
                .map_or(std::ptr::null(), |w| w as *const libc::winsize),
        )
    };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: fresh fds from openpty, owned from here on.
    unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(master),
            std::os::fd::OwnedFd::from_raw_fd(slave),
        )
    }
}

/// A cgroup2 directory of the test's own under `jcs/` (where VE cgroups are), removed on drop.
pub struct TestCgroup(pub PathBuf);

/// The host's cgroup2 hierarchy (`/sys/fs/cgroup/unified` on hybrid hosts).
pub fn cgroup2_root() -> PathBuf {
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.join("cgroup.procs").exists())
        .expect("a cgroup2 mount")
}

impl TestCgroup {
    fn v2() -> PathBuf {
        cgroup2_root()
    }

    /// `jcs/NAME-PID`, beside the VEs' cgroups.
    pub fn new(name: &str) -> TestCgroup {
        let dir = Self::v2().join(format!("jcs/{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TestCgroup(dir)
    }

    /// `jcs-test-NAME-PID`, at the top of the hierarchy (nothing of JCS's above it).
    pub fn top(name: &str) -> TestCgroup {
        let dir = Self::v2().join(format!("jcs-test-{name}-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        TestCgroup(dir)
    }

    /// A cgroup below this one (to be dropped before it).
    pub fn child(&self, name: &str) -> TestCgroup {
        let dir = self.0.join(name);
        std::fs::create_dir(&dir).unwrap();
        TestCgroup(dir)
    }

    /// Makes `cmd`'s process join this cgroup between fork and exec.
    pub fn join_at_exec(&self, cmd: &mut Command) {
        let procs = std::ffi::CString::new(self.0.join("cgroup.procs").to_str().unwrap()).unwrap();
        // SAFETY: open/write/close between fork and exec (async-signal-safe): the child moves
        // itself into the cgroup.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(cmd, move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
                Ok(())
            });
        }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Runs `cmd` as the leader of a session whose controlling terminal is a new pty of `size`
/// (its stdin, stdout and stderr), as a user at a terminal would: once the output holds
/// `prompt`, types `typed`; stops at `until` (or after 10 s). Returns the exit status, all
/// output, and whether the terminal's modes are as before.
pub fn drive_on_pty(
    mut cmd: Command,
    size: (u16, u16),
    prompt: &str,
    typed: &[u8],
    until: &str,
) -> (std::process::ExitStatus, String, bool) {
    use std::os::unix::process::CommandExt;
    let (master, slave) = openpty(Some(size));
    let mode_before = rustix::termios::tcgetattr(&slave).unwrap();
    cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()));
    // SAFETY: async-signal-safe calls only: a session whose controlling terminal is the pty.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let mut out = Vec::new();
    let mut sent = false;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let m = std::fs::File::from(master.try_clone().unwrap());
    rustix::fs::fcntl_setfl(&m, rustix::fs::OFlags::NONBLOCK).unwrap();
    loop {
        let mut buf = [0u8; 4096];
        match std::io::Read::read(&mut &m, &mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(_) => break,
        }
        let text = String::from_utf8_lossy(&out);
        if !sent && text.contains(prompt) {
            std::io::Write::write_all(&mut &m, typed).unwrap();
            sent = true;
        }
        if text.contains(until) || std::time::Instant::now() > deadline {
            break;
        }
    }
    if !String::from_utf8_lossy(&out).contains(until) {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    let mode_after = rustix::termios::tcgetattr(&slave).unwrap();
    let restored = mode_after.local_modes == mode_before.local_modes
        && mode_after.input_modes == mode_before.input_modes;
    (status, String::from_utf8_lossy(&out).into_owned(), restored)
}
