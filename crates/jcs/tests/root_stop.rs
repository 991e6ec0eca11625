//! `jcs stop` and `jcs kill`: a running VE is ended from another shell, its `jcs run` tears
//! it down and exits with the signal's status; a VE that is not running is an error.

mod common;

use common::{wait_for, Env};

fn start(env: &Env, script: &str) -> std::process::Child {
    let _ = std::fs::remove_file(env.home().join("persist/web/data/ready"));
    let c = env.sh_cmd(script).spawn().unwrap();
    assert!(wait_for(20, || env
        .home()
        .join("persist/web/data/ready")
        .exists()));
    c
}

#[test]
fn root_stop_terminates_and_kill_kills() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    // stop: the app's SIGTERM handler runs (it writes a file), and it exits 143.
    let mut run = start(
        &env,
        "trap 'echo bye > /data/termed; exit 143' TERM; touch /data/ready; while true; do sleep 1; done",
    );
    let t = std::time::Instant::now();
    assert_eq!(env.ok(&["stop", "1", "--timeout", "5"]).trim(), "1");
    assert_eq!(run.wait().unwrap().code(), Some(143));
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "SIGTERM sufficed"
    );
    assert_eq!(
        std::fs::read_to_string(env.home().join("persist/web/data/termed")).unwrap(),
        "bye\n"
    );
    // stop of an app that ignores SIGTERM: SIGKILL after the timeout.
    let mut run = start(
        &env,
        "trap '' TERM; touch /data/ready; while true; do sleep 1; done",
    );
    env.ok(&["stop", "2", "--timeout", "1"]);
    assert_eq!(run.wait().unwrap().code(), Some(137));
    // kill: at once.
    let mut run = start(&env, "touch /data/ready; sleep 100");
    env.ok(&["kill", "3"]);
    assert_eq!(run.wait().unwrap().code(), Some(137));
    let ps = env.json(&["ps", "--all", "--json"])["ves"].clone();
    assert!(
        ps.as_array()
            .unwrap()
            .iter()
            .all(|v| v["state"] != "running"),
        "{ps}"
    );
    // Not running, unknown: errors.
    let o = env.jcs(&["kill", "3"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("VE 3 is not running"));
    let e = env.fails(&["stop", "99"]);
    assert!(e.contains("99"), "{e}");
    env.assert_clean();
}
