//! Resource limits under load, alone in their test binary (the harness runs one binary at a
//! time), and one test at a time here (a fork bomb next to a CPU measurement would skew it).

mod common;

use common::Env;

/// Held by each test for its whole run.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn root_a_cpu_hog_gets_no_more_than_cpus() {
    let _serial = serial();
    let Some(env) = Env::new() else { return };
    env.standard_app();
    // 3 s of a busy loop (each `date` a child); prints the CPU time it used, in ticks of
    // 1/100 s: utime, stime, cutime, cstime of the shell.
    let hog = "end=$(( $(date +%s) + 3 )); while [ $(date +%s) -lt $end ]; do :; done; \
               cut -d' ' -f14-17 /proc/$$/stat";
    let cpu_s = |extra: &[&str]| -> f64 {
        let mut a = vec!["run", "web"];
        a.extend(extra);
        a.extend(["--", "/bin/sh", "-c", hog]);
        let out = env.ok(&a);
        let ticks: u64 = out
            .split_whitespace()
            .map(|t| t.parse::<u64>().unwrap())
            .sum();
        ticks as f64 / 100.0
    };
    let free = cpu_s(&[]);
    let limited = cpu_s(&["--cpus", "0.25"]);
    // 0.25 CPU for about 3 s is 0.75 s; some slack for the period boundaries.
    assert!(limited < 1.1, "--cpus 0.25 used {limited} s of CPU in 3 s");
    // The control: without a limit the same loop uses much more.
    assert!(
        free > 1.5 * limited,
        "unlimited used {free} s, limited {limited} s"
    );
    let err = env.fails(&["run", "web", "--cpus", "0", "--", "/bin/true"]);
    assert!(err.contains("--cpus"), "{err}");
}

#[test]
fn root_a_ve_cannot_write_more_than_disk_into_its_dirties() {
    let _serial = serial();
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let fill = "dd if=/dev/zero of=/root/big bs=1M count=64 2>/dev/null; echo rc=$?";
    // Control: without a limit, 64 MiB land in the dirties.
    assert!(env.sh_ok(fill).contains("rc=0"));
    let size = |ve: &str| -> u64 {
        let r = env.json(&["inspect", ve, "--json"]);
        r["dirties"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == "/root/big")
            .unwrap_or_else(|| panic!("{r}"))["size"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(size("1"), 64 << 20);
    // With --disk 16M the kernel refuses the writes past it (ENOSPC).
    let out = env.ok(&["run", "web", "--disk", "16M", "--", "/bin/sh", "-c", fill]);
    assert!(out.contains("rc=1"), "{out}");
    let big = size("2");
    assert!(big > 0 && big <= 16 << 20, "{big} bytes written");
    // The image stays (the dirties are in it), unmounted; inspect read it above.
    assert!(env.home().join("ve/2/disk.img").exists());
    env.assert_clean();
    env.ok(&["rm", "2"]);
    assert!(!env.home().join("ve/2").exists());
    assert!(env
        .fails(&["run", "web", "--disk", "1M", "--", "true"])
        .contains("--disk"));
}

/// A fork bomb stays inside its VE's `--pids`, and the VE ends; the host keeps forking.
#[test]
fn root_a_fork_bomb_is_contained() {
    let _serial = serial();
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let started = std::time::Instant::now();
    let bomb = env
        .cmd(&[
            "run",
            "web",
            "--pids",
            "32",
            "--",
            "/bin/sh",
            "-c",
            "timeout 3 /bin/sh -c 'b(){ b | b & }; b; sleep 5'; echo survived",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // The host still forks while the bomb runs.
    assert!(std::process::Command::new("true")
        .status()
        .unwrap()
        .success());
    let o = bomb.wait_with_output().unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("survived"),
        "the VE's shell did not outlive the bomb: {o:?}"
    );
    env.assert_clean();
}

/// A memory hog is stopped at `--memory`; with enough memory the same command succeeds.
#[test]
fn root_a_memory_hog_is_stopped_at_memory() {
    let _serial = serial();
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let hog = "dd if=/dev/zero of=/dev/null bs=200M count=1 2>/dev/null; echo rc=$?";
    let ok = env.ok(&["run", "web", "--memory", "1G", "--", "/bin/sh", "-c", hog]);
    assert!(ok.contains("rc=0"), "control: {ok}");
    let o = env.jcs(&["run", "web", "--memory", "32M", "--", "/bin/sh", "-c", hog]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        !out.contains("rc=0"),
        "200 MB allocated under --memory 32M: {out}"
    );
}
