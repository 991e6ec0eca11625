//! The daemon ships the journal as it grows (`jcs daemon --ship`, `JCS_SHIP`), and
//! `jcs collect` on "another machine" rebuilds it: the same files, the same head as the
//! host's `jcs verify`, while VEs run and after.

mod common;

use common::{wait_for, Env, NatsServer};

#[test]
fn root_the_daemon_ships_the_journal_and_a_collector_rebuilds_it_with_the_same_head() {
    let Some(env) = Env::new() else { return };
    let Some(nats) = NatsServer::start() else {
        return;
    };
    env.standard_app();
    let url = nats.url();
    let vars = [
        ("JCS_SHIP", url.as_str()),
        ("JCS_SHIP_HOST", "web-host"),
        ("JCS_SHIP_REPLICAS", "1"),
        ("JCS_SEGMENT_BYTES", "1024"),
    ];
    std::fs::write(env.home().join("persist/web/data/in"), "secret\n").unwrap();
    for i in 0..3 {
        env.sh_ok_with(
            &vars,
            &format!("cat /data/in > /data/out{i}; i=0; while [ $i -lt 50 ]; do echo $i >> /data/out{i}; i=$((i+1)); done"),
        );
    }
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().to_str().unwrap().to_string();
    let head = || {
        let v = env.json(&["verify", "--json"]);
        v["head"].as_str().unwrap().to_string()
    };
    // The daemon ships within a fraction of a second of each block.
    let mut last = serde_json::Value::Null;
    let same = wait_for(30, || {
        let h = head();
        let args = ["collect", "--from", &url, "--to", &dest, "--json"];
        let o = env.jcs(&args);
        if !o.status.success() {
            // The stream is made by the daemon's first shipment.
            last = String::from_utf8_lossy(&o.stderr).into();
            return false;
        }
        last = env.json(&args);
        last[0]["head"] == h.as_str()
    });
    assert!(
        same,
        "collected {last} vs head {}\n{}",
        head(),
        std::fs::read_to_string(env.home().join("daemon.log")).unwrap_or_default()
    );
    assert_eq!(last[0]["host"], "web-host");
    // The copy is the host's journal, file for file, and verifies on its own.
    let copy = out.path().join("web-host/journal");
    let journal = env.home().join("journal");
    let mut n = 0;
    for e in std::fs::read_dir(&journal).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".seg") {
            assert!(
                std::fs::read(e.path()).unwrap() == std::fs::read(copy.join(&name)).unwrap(),
                "{name} differs"
            );
            n += 1;
        }
    }
    assert!(n > 1, "several segments: {n}");
    let v = env.json(&["verify", "--json", "--dir", copy.to_str().unwrap()]);
    assert_eq!(v["head"].as_str().unwrap(), head());
    // The shipper's mark holds the open segment back from summarizing.
    let mark = std::fs::read_to_string(journal.join("ship-JOURNAL.mark")).unwrap();
    assert!(mark.trim().parse::<u64>().is_ok(), "{mark:?}");
    let log = std::fs::read_to_string(env.home().join("daemon.log")).unwrap();
    assert!(log.contains("ship: shipping the journal"), "{log}");
    env.stop_daemon();
    env.assert_clean();
}

#[test]
fn root_ship_and_collect_refuse_bad_input_with_the_reason() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.sh_ok("true");
    for (args, want) in [
        (
            vec!["ship", "--to", "nats://127.0.0.1:1", "--host", "a.b"],
            "host name",
        ),
        (
            vec!["ship", "--to", "nats://127.0.0.1:1", "--stream", "A.B"],
            "stream name",
        ),
        (vec!["ship", "--to", ""], "at least one NATS server"),
        (
            vec![
                "collect",
                "--from",
                "nats://127.0.0.1:1",
                "--to",
                "/tmp/x",
                "--follow",
            ],
            "one --host",
        ),
        (
            vec!["verify", "--dir", "/nonexistent/jcs"],
            "not a directory",
        ),
    ] {
        let err = env.fails(&args);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // A daemon told to ship somewhere wrong says so before it starts.
    let o = env
        .cmd(&["daemon", "--ship", "nats://127.0.0.1:4222"])
        .env("JCS_SHIP_REPLICAS", "0")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("JCS_SHIP_REPLICAS"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    env.stop_daemon();
    env.assert_clean();
}
