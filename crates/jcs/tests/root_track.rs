//! `jcs track` end to end, with real VEs: an HTTP server in a namespace the test creates
//! serves a page; a VE of app "browser" downloads it into a shared directory; a VE of app
//! "office" reads it and writes a report into its persistent storage. Tracking the report back
//! names the office VE, the shared file, the browser VE and the server's endpoint; tracking
//! the endpoint forward names the shared file, the office VE and the report.

mod common;

use common::{Env, NetNs};
use std::process::Stdio;

#[test]
fn root_track_back_and_forward_across_ves_and_the_network() {
    let Some(env) = Env::new() else { return };
    let ns = NetNs::new();
    env.ok(&["template", "create", "bb", "--busybox"]);
    for (app, extra) in [
        ("browser", &["--net", "bridge"][..]),
        ("office", &["--persist", "/docs"][..]),
        ("other", &["--persist", "/docs"][..]),
    ] {
        env.ok(&[
            &[
                "app",
                "create",
                app,
                "--template",
                "bb",
                "--share",
                "/dl=downloads",
            ],
            extra,
        ]
        .concat());
    }
    let run = |app: &str, script: &str| {
        let o = ns
            .cmd(
                common::jcs_bin(),
                &["run", app, "--", "/bin/sh", "-c", script],
            )
            .env("JCS_HOME", env.home())
            .env("JCS_RUN_DIR", env.run_dir())
            .env("JCS_BRIDGE_CIDR", "10.80.0.0/24")
            // Small segments: the VEs' transactions end up in sealed ones, to summarize.
            .env("JCS_SEGMENT_BYTES", "1024")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{app}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    // VE 1 makes the bridge (and starts the daemon); then the server comes up on its host side.
    run("browser", "true");
    let site = env.home().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("page.html"), "<html>the page</html>\n").unwrap();
    let mut server = ns
        .cmd(
            "busybox",
            &["httpd", "-f", "-p", "8000", "-h", site.to_str().unwrap()],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // VE 2 downloads the page into the shared directory.
    run(
        "browser",
        "wget -q -O /dl/page.html http://10.80.0.1:8000/page.html",
    );
    let between = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    std::thread::sleep(std::time::Duration::from_millis(20));
    // VE 3 reads it and writes a report; VE 4 writes a report of its own.
    run(
        "office",
        "(echo report; cat /dl/page.html) > /docs/report.txt",
    );
    run("other", "echo unrelated > /docs/other.txt");
    // SAFETY: SIGKILL to the server this test started, by its pid.
    unsafe { libc::kill(server.id() as i32, libc::SIGKILL) };
    let _ = server.wait();
    assert_eq!(
        std::fs::read_to_string(env.home().join("persist/office/docs/report.txt")).unwrap(),
        "report\n<html>the page</html>\n"
    );

    let back = env.reached(&["back", "file:/docs/report.txt"]);
    for want in [
        "file:/docs/report.txt",
        "ve:3",
        "file:/dl/page.html",
        "ve:2",
    ] {
        assert!(back.contains(&want.to_string()), "{want} not in {back:?}");
    }
    // The connection's flow from the server to the browser VE (both ends recorded).
    assert!(
        back.iter()
            .any(|v| v.starts_with("tcp:10.80.0.1:8000->10.80.0.")),
        "{back:?}"
    );
    assert!(!back.iter().any(|v| v == "ve:4" || v == "ve:1"), "{back:?}");
    let fwd = env.reached(&["forward", "endpoint:tcp/10.80.0.1:8000"]);
    for want in [
        "file:/dl/page.html",
        "ve:3",
        "file:/docs/report.txt",
        "ve:2",
    ] {
        assert!(fwd.contains(&want.to_string()), "{want} not in {fwd:?}");
    }
    assert!(
        !fwd.contains(&"file:/docs/other.txt".to_string()),
        "{fwd:?}"
    );
    // VE 4's report depends on nothing from the network.
    let other = env.reached(&["back", "file:/docs/other.txt"]);
    assert!(
        !other
            .iter()
            .any(|v| v.starts_with("endpoint:") || v.starts_with("tcp:")),
        "{other:?}"
    );
    // Time-respecting: before the office VE ran, nothing had flowed into the report.
    let before = env.reached(&[
        "back",
        "file:/docs/report.txt",
        "--at",
        &format!("{between}"),
    ]);
    assert_eq!(before, vec!["file:/docs/report.txt".to_string()]);
    // Each edge names the VE, the operation, the count, the time window and the bytes.
    let j = env.json(&["track", "back", "file:/docs/report.txt", "--json"]);
    let recv = j["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["op"] == "recv")
        .unwrap_or_else(|| panic!("{j}"));
    assert_eq!(recv["ve"], 2);
    assert!(recv["bytes"].as_u64().unwrap() >= 22, "{recv}");
    // The tree and DOT forms.
    let tree = env.ok(&["track", "back", "file:/docs/report.txt"]);
    assert!(tree.starts_with("file:/docs/report.txt\n"), "{tree}");
    assert!(
        tree.contains("tcp:10.80.0.1:8000->") && tree.contains("[VE 2 recv"),
        "{tree}"
    );
    let dot = env.ok(&["track", "forward", "endpoint:tcp/10.80.0.1:8000", "--dot"]);
    assert!(
        dot.starts_with("digraph") && dot.contains("file:/docs/report.txt"),
        "{dot}"
    );
    // The answers read through the segment indexes (only the blocks a question can reach)
    // are the answers of a full read, to the byte. (A daemon indexes the sealed segments
    // when it starts: one more VE under a new one.)
    env.stop_daemon();
    run("other", "true");
    // A daemon that starts with no VE to record indexes the open segment (so far) too.
    env.stop_daemon();
    let mut daemon = env.cmd(&["daemon"]).spawn().unwrap();
    let pid = daemon.id() as i32;
    // Up once it has written its pid (after indexing); then ended, by its pid.
    assert!(common::wait_for(20, || env.daemon_pid() == Some(pid)));
    // SAFETY: SIGTERM to the daemon this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let _ = daemon.wait();
    let count = |ext: &str| {
        std::fs::read_dir(env.home().join("journal"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == ext))
            .count()
    };
    let idx = count("idx");
    // Every segment has one, the open one too (an index of what it held when the daemon
    // started; what the VE after that added is read whole).
    assert_eq!(idx, count("seg"), "the open segment has no index");
    assert!(
        idx >= 1,
        "{idx} indexed segments: the indexed path is not exercised"
    );
    for (dir, var) in [
        ("back", "file:/docs/report.txt"),
        ("back", "persist:office:/docs/report.txt"),
        ("forward", "endpoint:tcp/10.80.0.1:8000"),
        ("back", "ve:3"),
        ("forward", "ve:2"),
        ("forward", "shared:downloads/page.html"),
        ("back", "shared:downloads/page.html"),
    ] {
        let args = ["track", dir, var, "--json"];
        let indexed = env.ok(&args);
        let full = env
            .cmd(&args)
            .env("JCS_TRACK_SCAN", "full")
            .output()
            .unwrap();
        assert!(full.status.success());
        assert_eq!(
            indexed,
            String::from_utf8_lossy(&full.stdout),
            "{dir} {var}"
        );
    }
    // An SVG, drawn by jcs itself (no Graphviz), with every variable the answer reached.
    let svg = env.home().join("t.svg");
    let o = env.jcs(&[
        "track",
        "back",
        "file:/docs/report.txt",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(picture.starts_with("<svg"), "{picture}");
    // (By its box, or in a group's list; `->` escaped as XML has it.)
    for v in env.reached(&["back", "file:/docs/report.txt"]) {
        let xml = v
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        assert!(picture.contains(&xml), "{v} is not drawn");
    }
    // Over T1 summaries the answers are the exact ones; over T2 they contain them.
    for (dir, var) in [
        ("back", "file:/docs/report.txt"),
        ("forward", "endpoint:tcp/10.80.0.1:8000"),
    ] {
        let exact = env.reached(&[dir, var]);
        assert_eq!(
            env.reached(&[dir, var, "--tier", "T1"]),
            exact,
            "{dir} {var}"
        );
        let t2 = env.reached(&[dir, var, "--tier", "T2"]);
        assert!(
            exact.iter().all(|v| t2.contains(v)),
            "{dir} {var}: {exact:?} ⊄ {t2:?}"
        );
        let t1f = env.reached(&[dir, var, "--tier", "T1F"]);
        assert!(
            exact.iter().all(|v| t1f.contains(v)) && t1f.iter().all(|v| t2.contains(v)),
            "{dir} {var}: {exact:?} ⊄ {t1f:?} ⊄ {t2:?}"
        );
    }
    // What summarizing would keep: T2 and T3 are smaller than the transactions they stand for.
    let s = env.json(&["summarize", "--dry-run", "--json"])["tiers"].clone();
    let row = |tier: &str| {
        s.as_array()
            .unwrap()
            .iter()
            .find(|r| r["tier"] == tier)
            .unwrap_or_else(|| panic!("{s}"))
            .clone()
    };
    let (t0, t1, t1f, t2) = (row("T0"), row("T1"), row("T1F"), row("T2"));
    let n = |r: &serde_json::Value| r["records"].as_u64().unwrap();
    assert!(n(&t0) > 0, "{s}");
    assert!(
        n(&t2) <= n(&t1f) && n(&t1f) <= n(&t1) && n(&t1) <= n(&t0) && n(&t2) < n(&t0),
        "{s}"
    );
    assert!(row("T3")["records"].as_u64().unwrap() > 0, "{s}");
    assert!(env.fails(&["summarize"]).contains("--dry-run"));
    // T4 with a policy that fades everything older than a second.
    let policy = env.home().join("fade.policy");
    std::fs::write(&policy, "# everything old\nnetwork 1s\nfiles 1s\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let p = policy.to_str().unwrap();
    let s4 = env.json(&[
        "summarize",
        "--dry-run",
        "--tier",
        "T4",
        "--policy",
        p,
        "--json",
    ]);
    let t4 = s4["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["tier"] == "T4")
        .unwrap();
    assert!(t4["records"].as_u64().unwrap() <= n(&t0), "{s4}");
    std::fs::write(&policy, "network soon\n").unwrap();
    let e = env.fails(&["summarize", "--dry-run", "--tier", "T4", "--policy", p]);
    assert!(e.contains("line 1") && e.contains("AGE"), "{e}");
    assert!(env
        .fails(&["summarize", "--dry-run", "--tier", "T4"])
        .contains("--policy"));
    // Rewriting the journal: T1 into one copy of the store, T2 into another.
    env.stop_daemon();
    let exact_back = env.reached(&["back", "file:/docs/report.txt"]);
    let exact_fwd = env.reached(&["forward", "endpoint:tcp/10.80.0.1:8000"]);
    let copy = env.home().with_extension("t2");
    // (Removed however the test ends.)
    struct Gone(std::path::PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _gone = Gone(copy.clone());
    let st = std::process::Command::new("cp")
        .args(["-a", env.home().to_str().unwrap(), copy.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    let verify_ok = |home: &std::path::Path| {
        let o = env
            .cmd(&["--home", home.to_str().unwrap(), "verify", "--json"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(
            o.status.success() && v["summaries"].as_u64().unwrap() >= 1,
            "{v}"
        );
        v["head"].clone()
    };
    let head = env.json(&["verify", "--json"])["head"].clone();
    let w = env.json(&["summarize", "--tier", "T1", "--json"]);
    assert!(w["segments"].as_u64().unwrap() >= 1, "{w}");
    assert!(w["summaries_after"].as_u64().unwrap() <= w["transactions_before"].as_u64().unwrap());
    assert_eq!(
        verify_ok(env.home()),
        head,
        "summarizing keeps the chain head"
    );
    assert_eq!(env.reached(&["back", "file:/docs/report.txt"]), exact_back);
    assert_eq!(
        env.reached(&["forward", "endpoint:tcp/10.80.0.1:8000"]),
        exact_fwd
    );
    let h2 = ["--home", copy.to_str().unwrap()];
    let w = env.json(&[&h2[..], &["summarize", "--tier", "T2", "--json"]].concat());
    assert!(
        w["bytes_after"].as_u64().unwrap() < w["bytes_before"].as_u64().unwrap(),
        "{w}"
    );
    assert_eq!(verify_ok(&copy), head);
    let t2b = env.reached(&[&h2[..], &["back", "file:/docs/report.txt"]].concat());
    assert!(
        exact_back.iter().all(|v| t2b.contains(v)),
        "{exact_back:?} ⊄ {t2b:?}"
    );
    let t2f = env.reached(&[&h2[..], &["forward", "endpoint:tcp/10.80.0.1:8000"]].concat());
    assert!(
        exact_fwd.iter().all(|v| t2f.contains(v)),
        "{exact_fwd:?} ⊄ {t2f:?}"
    );
    let _ = std::fs::remove_dir_all(&copy);
    // An unknown variable is a clear error.
    assert!(env
        .fails(&["track", "back", "file:/nowhere"])
        .contains("no variable file:/nowhere in the journal"));
    env.assert_clean();
}
