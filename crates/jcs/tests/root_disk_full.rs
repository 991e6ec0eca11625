//! A store whose disk fills up while a VE runs: the recorder stays up, the run says in JCS's
//! own words that its record is incomplete (exit 122), a new run is refused with the store and
//! its free space named, and once there is room again the journal goes on with a gap that
//! counts what was dropped; nothing acknowledged is lost.

mod common;

use common::{wait_for, Env};
use std::process::Command;

/// A small tmpfs mounted over the test's store for the test's life.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn over(dir: &std::path::Path, size: &str) -> SmallDisk {
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "jcs-test-disk",
            ])
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success(), "mount a tmpfs over {}", dir.display());
        SmallDisk(dir.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` with one file; returns it.
fn fill(dir: &std::path::Path) -> std::path::PathBuf {
    let f = dir.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", f.display()))
        .stderr(std::process::Stdio::null())
        .status();
    f
}

#[test]
fn root_a_full_disk_is_reported_recorded_as_a_gap_and_survived() {
    let Some(env) = Env::new() else { return };
    let _disk = SmallDisk::over(env.home(), "48m");
    env.standard_app();
    // A 48 MiB disk is below the default low-space threshold: jcs run warns.
    let o = env.sh("echo before > /data/a");
    assert!(o.status.success());
    let warned = String::from_utf8_lossy(&o.stderr);
    assert!(
        warned.contains("MiB free") && warned.contains("JCS_LOW_SPACE_MB"),
        "{warned}"
    );
    let daemon = env.daemon_pid().expect("a daemon");
    let acked = env.ok(&["log", "--json"]).lines().count();
    // Two VEs come up and wait; the disk fills; VE 2 writes (the journal cannot take its
    // records: the recorder learns the disk is full); then VE 3 writes, while it is known to
    // be full: its records are dropped and counted.
    let waiting = |go: &str, after: &str| {
        let script =
            format!("touch /data/up-{go}; while [ ! -e /data/{go} ]; do sleep 0.05; done; {after}");
        let c = env
            .sh_cmd(&script)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let up = env.home().join(format!("persist/web/data/up-{go}"));
        assert!(wait_for(20, || up.exists()), "the VE did not come up");
        c
    };
    let writes = "for i in $(seq 300); do echo $i >> /data/a; done 2>/dev/null; true";
    let ve2 = waiting("go2", writes);
    let ve3 = waiting("go3", writes);
    let filler = fill(env.home());
    let data = env.home().join("persist/web/data");
    let go = |f: &str| drop(std::fs::File::create(data.join(f)));
    go("go2");
    let out2 = ve2.wait_with_output().unwrap();
    go("go3");
    let out3 = ve3.wait_with_output().unwrap();
    for (ve, out) in [(2, &out2), (3, &out3)] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(122), "VE {ve}: {stderr}");
        assert!(
            stderr.contains("is full")
                && stderr.contains("bytes free")
                && stderr.contains("journal"),
            "VE {ve}: {stderr}"
        );
    }
    assert_eq!(env.daemon_pid(), Some(daemon), "the recorder stayed up");
    // A new run while the disk is full: refused before the VE starts, in JCS's words.
    let o = env.sh("true");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(e.contains("is full") && e.contains("bytes free"), "{e}");
    // Room again: the journal goes on, with a gap counting what was dropped.
    std::fs::remove_file(&filler).unwrap();
    assert!(
        wait_for(20, || env.sh("echo after >> /data/a").status.success()),
        "runs work again"
    );
    let log: Vec<serde_json::Value> = env
        .ok(&["log", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(log.len() > acked, "the journal goes on");
    // What was queued before the recorder knew the disk was full (VE 2's) was written when
    // room came back; VE 3 wrote while it was known to be full: its records were dropped, and
    // a gap counts them. No VE's record is silently short: each has its counters or a gap.
    let gap = log
        .iter()
        .find(|a| a["op"] == "gap" && a["ve"] == 3)
        .unwrap_or_else(|| panic!("no gap for VE 3: {log:#?}"));
    assert!(gap["len"].as_u64().unwrap() > 0, "{gap}");
    for ve in [2, 3] {
        let st = env.json(&["stats", "--ve", &ve.to_string(), "--json"]);
        let counted = st["ves"][0]["syscalls_seen"].as_u64().unwrap_or(0) > 0;
        let gapped = log.iter().any(|a| a["op"] == "gap" && a["ve"] == ve);
        assert!(counted || gapped, "VE {ve}: {st}");
    }
    let v = env.json(&["verify", "--json"]);
    assert!(v["first_problem"].is_null(), "{v}");
    assert_eq!(env.daemon_pid(), Some(daemon));
    env.stop_daemon();
}
