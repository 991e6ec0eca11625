//! Fair capture: VEs flooding the monitor's ring buffer lose their own records, not a quiet
//! VE's. Four flooders write as fast as they can; the recorder is stopped (SIGSTOP) so that
//! the ring buffer fills; a quiet VE writes ten bytes meanwhile; then the recorder goes on.
//! The control: the flooders lost records (their runs say so: the ring was full for them);
//! the claim: the quiet VE lost none, in every trial. Without the per-VE share the quiet VE's
//! writes find a full ring and are all lost (checked when this test was written, by turning
//! the share off in monitor.bpf.c).

mod common;

use common::{wait_for, Env};

#[test]
fn root_flooders_lose_their_own_records_not_a_quiet_ves() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "boundary");
    env.sh_ok("true"); // the recorder is up before the flood
    let daemon = env.daemon_pid().expect("a recorder");
    let data = env.home().join("persist/web/data");
    let mut last_ve = 1;
    for trial in 0..3 {
        let _ = std::fs::remove_file(data.join("go"));
        let quiet = env.spawn_until_go("true", "/data/boundary quiet 10 /data/q");
        let flooders: Vec<_> = (0..4)
            .map(|i| {
                env.cmd(&[
                    "run",
                    "web",
                    "--strict-recording",
                    "--",
                    "/data/boundary",
                    "flood",
                    "3",
                    &format!("/data/f{i}"),
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(500));
        // SAFETY: SIGSTOP/SIGCONT to the recorder of this test's own store, by its pid.
        unsafe { libc::kill(daemon, libc::SIGSTOP) };
        std::thread::sleep(std::time::Duration::from_millis(700));
        env.go();
        let q = data.join("q");
        let wrote = wait_for(10, || std::fs::metadata(&q).is_ok_and(|m| m.len() >= 10));
        std::thread::sleep(std::time::Duration::from_millis(200));
        // SAFETY: as above: the recorder goes on.
        unsafe { libc::kill(daemon, libc::SIGCONT) };
        assert!(wrote, "trial {trial}: the quiet VE did not write");
        let quiet = quiet.wait_with_output().unwrap();
        let quiet_err = String::from_utf8_lossy(&quiet.stderr);
        assert!(quiet.status.success(), "trial {trial}: {quiet_err}");
        // (With --strict-recording, a flooder that lost records exits 122 and says why.)
        let warned = flooders
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .filter(|o| {
                let e = String::from_utf8_lossy(&o.stderr);
                o.status.code() == Some(122) && e.contains("dropped") && e.contains("gap")
            })
            .count();
        // The quiet VE (found by its file: an indexed query): its ten writes all there.
        let qlog: Vec<serde_json::Value> = env
            .ok(&["log", "--var", "file:/data/q", "--json"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|a: &serde_json::Value| a["ve"].as_u64() > Some(last_ve))
            .collect();
        last_ve += 5;
        let writes = qlog.iter().filter(|a| a["op"] == "write").count();
        assert_eq!(writes, 10, "trial {trial}: {qlog:#?}\n{quiet_err}");
        assert!(
            !quiet_err.contains("dropped"),
            "trial {trial}: the quiet VE lost records: {quiet_err}"
        );
        // The control: the flood used up the flooders' shares (their runs say so).
        assert!(
            warned > 0,
            "trial {trial}: no flooder lost records: the ring was never under pressure"
        );
        std::fs::remove_file(&q).unwrap();
    }
    assert_eq!(env.daemon_pid(), Some(daemon));
}
