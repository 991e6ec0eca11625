//! A policy enforced in real time: the calls it denies fail, each denial is an aborted
//! transaction naming its rule, and the kernel's count is exact. Every denial sits next to a
//! control: the same attempt that the policy allows succeeds (so the probe really tries), and
//! without the policy the denied one succeeds too.

mod common;

use common::{Env, NetNs};
use std::process::Stdio;

const NET_POLICY: &str = r#"
[[network.rule]]
name = "no-smtp"
action = "deny"
proto = "tcp"
ports = [25]
[[network.rule]]
name = "no-dns"
action = "deny"
proto = "udp"
to = ["127.0.0.0/8"]
ports = ["53"]
"#;

fn with_policy(env: &Env, text: &str) {
    let f = env.home().join("policy.toml");
    std::fs::write(&f, text).unwrap();
    env.ok(&["app", "policy", "web", f.to_str().unwrap()]);
}

fn aborted(env: &Env, ve: u64) -> Vec<serde_json::Value> {
    env.log(ve)
        .into_iter()
        .filter(|e| e["status"] == "aborted")
        .collect()
}

#[test]
fn root_network_rules_deny_and_journal_aborted_transactions() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "policy");
    // Control: without a policy both connects and both datagrams get through.
    let out = env.ok(&["run", "web", "--", "/data/policy", "tcp", "25", "26"]);
    assert_eq!(out.trim(), "denied=ok allowed=ok");
    let out = env.ok(&["run", "web", "--", "/data/policy", "udp", "53", "54"]);
    assert_eq!(out.trim(), "denied=ok allowed=ok");
    assert!(aborted(&env, 1).is_empty() && aborted(&env, 2).is_empty());

    with_policy(&env, NET_POLICY);
    let out = env.ok(&["run", "web", "--", "/data/policy", "tcp", "25", "26"]);
    assert_eq!(out.trim(), "denied=EPERM allowed=ok");
    let out = env.ok(&["run", "web", "--", "/data/policy", "udp", "53", "54"]);
    assert_eq!(out.trim(), "denied=EPERM allowed=ok");

    let a = aborted(&env, 3);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["op"], "connect");
    assert_eq!(a[0]["rule"], 1);
    assert_eq!(a[0]["error"], serde_json::Value::Null);
    assert!(
        a[0]["rule_name"].as_str().unwrap().starts_with("no-smtp"),
        "{a:?}"
    );
    assert!(a[0]["dst"].as_str().unwrap().contains(":25"), "{a:?}");
    let a = aborted(&env, 4);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(
        (a[0]["op"].as_str(), a[0]["rule"].as_u64()),
        (Some("send"), Some(2))
    );

    // `--status aborted` lists exactly those; the text names the rule.
    let text = env.ok(&["log", "--status", "aborted"]);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.contains("aborted by rule no-smtp (deny tcp connect,send ports 25)"),
        "{text}"
    );
    // The kernel counted each denial once.
    let s = env.json(&["stats", "--ve", "3", "--json"]);
    let d = &s["ves"][0]["denials"];
    assert_eq!(d[0]["rule"], 1, "{s}");
    assert_eq!(d[0]["counted"], 1, "{s}");
    assert_eq!(d[0]["recorded"], 1, "{s}");
    assert!(s["ves"][0]["enforced"][0][1]
        .as_str()
        .unwrap()
        .contains("sock_addr"));
    // VE 1 ran without a policy: nothing enforced.
    let s = env.json(&["stats", "--ve", "1", "--json"]);
    assert_eq!(s["ves"][0]["enforced"], serde_json::json!([]));
    env.assert_clean();
}

#[test]
fn root_a_flood_of_denials_is_counted_exactly() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "policy");
    with_policy(&env, NET_POLICY);
    let out = env.ok(&["run", "web", "--", "/data/policy", "flood", "25", "200000"]);
    assert_eq!(out.trim(), "eperm=200000");
    let s = env.json(&["stats", "--ve", "1", "--json"]);
    let v = &s["ves"][0];
    let d = &v["denials"][0];
    assert_eq!(d["counted"], 200000, "{s}");
    // What the journal lists individually may be fewer only if a gap says records were lost.
    let recorded = d["recorded"].as_u64().unwrap();
    assert!(recorded <= 200000);
    if recorded < 200000 {
        assert!(v["records_lost"].as_u64().unwrap() > 0, "{s}");
    }
    env.assert_clean();
}

/// `[budget] bytes_sent`: the datagram that would pass the budget and everything after it
/// fail (EPERM), a TCP connect too, the VE's own loopback still works; each is an aborted
/// transaction of the budget's rule, and the kernel's count equals the journal's.
#[test]
fn root_a_byte_budget_stops_what_the_ve_sends_out() {
    let Some(env) = Env::new() else { return };
    let ns = NetNs::new();
    env.bridge_app("web");
    common::static_helper(&env, "policy");
    let run = |args: &[&str]| -> String {
        let mut c = ns.cmd(common::jcs_bin(), &[&["run", "web", "--"], args].concat());
        c.env("JCS_HOME", env.home())
            .env("JCS_RUN_DIR", env.run_dir())
            .env("JCS_BRIDGE_CIDR", "10.77.0.0/24")
            .stdin(Stdio::null());
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    // 20 datagrams of 1000 bytes to the host side of the bridge: 1028-byte IP packets.
    let probe = ["/data/policy", "budget", "10.77.0.1", "9999", "20", "1000"];
    // Control: without a budget all of them go.
    let out = run(&probe);
    assert!(
        out.starts_with("sent=20 first_eperm=-1 write=ok connect="),
        "{out}"
    );
    assert!(!out.contains("connect=EPERM"), "{out}");
    with_policy(&env, "[budget]\nbytes_sent = \"10 kB\"\n");
    let out = run(&probe);
    // 9 × 1028 = 9252 bytes fit in 10,000; the 10th would not.
    assert_eq!(
        out.trim(),
        "sent=9 first_eperm=9 write=EPERM connect=EPERM loopback=ok"
    );
    let rule = 5; // no network rules: budget.bytes_sent is the fifth
    let a = aborted(&env, 2);
    assert!(
        a.iter().all(|e| e["rule"] == rule),
        "only the budget aborted: {a:?}"
    );
    let ops = |op: &str| a.iter().filter(|e| e["op"] == op).count();
    // The 11 datagrams and the write are sends; the connect is a connect.
    assert_eq!((ops("send"), ops("connect")), (12, 1), "{a:?}");
    assert!(a[0]["rule_name"]
        .as_str()
        .unwrap()
        .starts_with("budget.bytes_sent"));
    let s = env.json(&["stats", "--ve", "2", "--json"]);
    let d = &s["ves"][0]["denials"][0];
    assert_eq!(d["rule"], rule, "{s}");
    assert_eq!(d["counted"], 13, "{s}");
    assert_eq!(d["recorded"], 13, "{s}");
    assert!(
        s["ves"][0]["enforced"].to_string().contains("egress"),
        "{s}"
    );
    env.assert_clean();
}

/// A stream connected before the byte budget ran out: what the VE writes to it after is taken
/// by the kernel (write says ok) but never leaves; its record is aborted by the budget's rule,
/// the write before it committed, and the peer got only that.
#[test]
fn root_a_stream_write_after_the_byte_budget_never_leaves() {
    let Some(env) = Env::new() else { return };
    let ns = NetNs::new();
    env.bridge_app("web");
    common::static_helper(&env, "policy");
    // The peer, on the host side of the bridge, gets what arrives; it waits a bounded time
    // (after the budget, not even the VE's FIN reaches it).
    let exchange = || -> String {
        // (Its stdin stays open until the VE is done: at its stdin's end busybox nc
        // half-closes the connection.)
        let mut peer = ns
            .cmd("timeout", &["6", "busybox", "nc", "-l", "-p", "9001"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let peer_stdin = peer.stdin.take();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let mut c = ns.cmd(
            common::jcs_bin(),
            &[
                "run",
                "web",
                "--",
                "/data/policy",
                "stream",
                "10.77.0.1",
                "9001",
                "20",
                "1000",
            ],
        );
        c.env("JCS_HOME", env.home())
            .env("JCS_RUN_DIR", env.run_dir())
            .env("JCS_BRIDGE_CIDR", "10.77.0.0/24")
            .stdin(Stdio::null());
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            "before=ok after=ok"
        );
        drop(peer_stdin);
        let got = peer.wait_with_output().unwrap();
        String::from_utf8_lossy(&got.stdout).into_owned()
    };
    // Control: without a budget both lines arrive.
    assert_eq!(exchange(), "before\nafter\n");
    with_policy(&env, "[budget]\nbytes_sent = 10000\n");
    assert_eq!(exchange(), "before\n");
    let log = env.log(2);
    let sends: Vec<&serde_json::Value> = log
        .iter()
        .filter(|e| e["op"] == "send" && e["dst"].as_str().unwrap_or("").contains(":9001"))
        .collect();
    assert_eq!(sends.len(), 2, "{sends:?}");
    assert_eq!(sends[0]["status"], "committed", "{sends:?}");
    assert_eq!(sends[0]["len"], 7, "{sends:?}");
    assert_eq!(sends[1]["status"], "aborted", "{sends:?}");
    assert_eq!(sends[1]["rule"], 5, "{sends:?}");
    env.assert_clean();
}

/// `[budget] files_written`: the supervisor lets the VE change that many files of storage and
/// refuses the next one (EDQUOT), journaled as aborted by the budget's rule; rewriting a file
/// it already changed is free; without `preimages` nothing is kept.
#[test]
fn root_a_files_budget_refuses_one_file_more() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let data = env.home().join("persist/web/data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("old"), "old\n").unwrap();
    let script = "for f in old n1 n2 n3; do echo x > /data/$f; echo \"$f=$?\"; done; \
                  echo y >> /data/old; echo \"again=$?\"; mkdir /data/d; echo \"d=$?\"; \
                  rm /data/n1; echo \"rm=$?\"";
    // Control: without the budget every change is made.
    let out = env.sh_ok(script);
    assert_eq!(out, "old=0\nn1=0\nn2=0\nn3=0\nagain=0\nd=0\nrm=0\n");
    for f in ["n2", "n3", "d"] {
        let p = data.join(f);
        if p.is_dir() {
            std::fs::remove_dir(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
    std::fs::write(data.join("old"), "old\n").unwrap();
    with_policy(&env, "[budget]\nfiles_written = 3\n");
    let o = env.sh(script);
    let out = String::from_utf8_lossy(&o.stdout);
    // old, n1, n2 use the budget; n3, the directory and removing n1... n1 was changed by
    // this VE already: removing it is free.
    assert_eq!(
        out,
        "old=0\nn1=0\nn2=0\nn3=1\nagain=0\nd=1\nrm=0\n",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("quota"),
        "EDQUOT: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!data.join("n3").exists() && !data.join("d").exists());
    assert_eq!(std::fs::read_to_string(data.join("old")).unwrap(), "x\ny\n");
    let rule = 6; // budget.files_written
    let a = aborted(&env, 2);
    assert_eq!(a.len(), 2, "{a:?}");
    assert!(a.iter().all(|e| e["rule"] == rule), "{a:?}");
    assert!(
        a.iter()
            .any(|e| e["dst"].as_str().unwrap_or("").contains("/data/n3")
                || e["src"].as_str().unwrap_or("").contains("/data/n3")),
        "{a:?}"
    );
    // No pre-images were asked for: none kept.
    assert!(!env.home().join("versions/undo/2.jsonl").exists());
    env.assert_clean();
}

/// A unix socket bound in storage makes a file: it counts against `files_written` like any
/// creation (the supervisor binds it), and the bind over the budget is aborted by its rule.
#[test]
fn root_a_files_budget_counts_unix_sockets_bound_in_storage() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "preimage");
    let data = env.home().join("persist/web/data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    let run = || env.jcs(&["run", "web", "--", "/data/preimage", "sockets", "/data"]);
    // Control: without the budget both sockets are made.
    let o = run();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hi 140750 tcp=1\n");
    std::fs::remove_file(data.join("s1")).unwrap();
    std::fs::remove_file(data.join("sub/s2")).unwrap();
    with_policy(&env, "[budget]\nfiles_written = 1\n");
    let o = run();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("s2: Disk quota exceeded"),
        "{err}"
    );
    assert!(data.join("s1").exists() && !data.join("sub/s2").exists());
    let a = aborted(&env, 2);
    assert!(
        a.iter().any(|e| e["op"] == "bind" && e["rule"] == 6),
        "the bind over the budget is aborted by budget.files_written: {a:?}"
    );
    env.assert_clean();
}

/// A bind a network rule denies, in a VE whose binds go to the supervisor (pre-images: it
/// binds for the app, so the kernel's sock_addr program sees the supervisor's thread): EPERM,
/// and the app's bind is journaled as aborted by the rule, as it is without the supervisor.
#[test]
fn root_a_denied_bind_names_its_rule_when_the_supervisor_binds() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "policy");
    let rule = "[[network.rule]]\nname = \"no-8080\"\naction = \"deny\"\nports = [8080]\non = [\"bind\"]\n";
    for (ve, extra) in [(1, ""), (2, "[recovery]\npreimages = true\n")] {
        with_policy(&env, &format!("{rule}{extra}"));
        let o = env.jcs(&["run", "web", "--", "/data/policy", "tcp", "8080", "8081"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("listen: Operation not permitted"),
            "VE {ve}: {err}"
        );
        let a = aborted(&env, ve);
        assert!(
            a.iter().any(|e| e["op"] == "bind" && e["rule"] == 1),
            "VE {ve}: the bind is aborted by rule 1: {a:?} {:?}",
            env.log(ve)
                .iter()
                .filter(|e| e["op"] == "bind")
                .collect::<Vec<_>>()
        );
    }
    env.assert_clean();
}

#[test]
fn root_storage_writes_outside_writable_trees_and_hidden_paths_are_denied() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let dl = env.home().join("shared/downloads");
    std::fs::create_dir_all(dl.join("secret")).unwrap();
    std::fs::write(dl.join("secret/key"), "k3y").unwrap();
    // Control: without a policy the VE reads the key and writes anywhere in /data.
    let out = env.sh_ok("cat /dl/secret/key; echo a > /data/a && echo wrote");
    assert_eq!(out, "k3ywrote\n");
    with_policy(
        &env,
        "[files]\nwritable = [\"/data/out\"]\ndeny_read = [\"/dl/secret\"]\n",
    );
    let o = env.sh(
        "echo b > /data/b; echo \"b=$?\"; mkdir -p /data/out; echo c > /data/out/c; echo \"c=$?\"; \
         cat /dl/secret/key; echo \"key=$?\"; ls -A /dl/secret | wc -l; echo d > /dl/d; echo \"d=$?\"",
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("b=1"), "{out}");
    assert!(out.contains("c=0"), "{out}");
    assert!(out.contains("key=1"), "{out}");
    assert!(
        out.contains("\n0\n"),
        "the hidden directory looks empty: {out}"
    );
    // /dl is outside the writable trees too.
    assert!(out.contains("d=1"), "{out}");
    let data = env.home().join("persist/web/data");
    assert!(!data.join("b").exists());
    assert_eq!(std::fs::read_to_string(data.join("out/c")).unwrap(), "c\n");
    assert!(!dl.join("d").exists());
    // The host's files are untouched.
    assert_eq!(
        std::fs::read_to_string(dl.join("secret/key")).unwrap(),
        "k3y"
    );
    // The denied write and read are aborted transactions naming their rules.
    let a = aborted(&env, 2);
    let rules: Vec<u64> = a.iter().filter_map(|e| e["rule"].as_u64()).collect();
    assert!(rules.contains(&2), "files.writable: {a:?}");
    assert!(rules.contains(&3), "files.deny_read: {a:?}");
    env.assert_clean();
}

#[test]
fn root_the_exec_allow_list_is_enforced_by_landlock() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "policy");
    // Control: the probe runs without a policy (usage message, exit 1).
    let o = env.jcs(&["run", "web", "--", "/data/policy"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    with_policy(&env, "[exec]\nallow = [\"/bin\"]\n");
    let o = env.jcs(&[
        "run",
        "web",
        "--",
        "/bin/sh",
        "-c",
        "/data/policy; echo \"rc=$?\"; /bin/busybox echo allowed",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("rc=126"),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("allowed"), "{out}");
    // A process `jcs exec` adds to a running VE of that app gets the allow-list too.
    let child = env.spawn_until_go("true", "true");
    let o = env
        .cmd(&[
            "exec",
            "3",
            "--",
            "/bin/sh",
            "-c",
            "/data/policy; echo \"rc=$?\"; /bin/busybox echo allowed",
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("rc=126") && out.contains("allowed"),
        "jcs exec: {out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    env.go();
    assert!(child.wait_with_output().unwrap().status.success());
    env.assert_clean();
}

#[test]
fn root_a_policy_that_cannot_be_enforced_stops_the_start() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let f = env.home().join("bad.toml");
    // A writable tree outside storage: refused when the VE starts, never weakened.
    std::fs::write(&f, "[files]\nwritable = [\"/etc\"]\n").unwrap();
    env.ok(&["app", "policy", "web", f.to_str().unwrap()]);
    let e = env.fails(&["run", "web", "--", "/bin/true"]);
    assert!(
        e.contains("/etc is not in the app's persistent or shared storage"),
        "{e}"
    );
    // A malformed policy is refused with its line and column, and changes nothing.
    std::fs::write(&f, "[network]\ndefault = \"maybe\"\n").unwrap();
    let e = env.fails(&["app", "policy", "web", f.to_str().unwrap()]);
    assert!(e.contains("line 2, column 11"), "{e}");
    let e = env.fails(&["policy", "check", f.to_str().unwrap()]);
    assert!(e.contains("line 2, column 11"), "{e}");
    let v = env.json(&["app", "show", "web", "--json"]);
    assert_eq!(v["versions"].as_array().map(|a| a.len()), Some(2), "{v}");
    // Without the recorder, a network policy cannot be enforced: refused.
    with_policy(&env, NET_POLICY);
    let o = env
        .cmd(&["run", "web", "--", "/bin/true"])
        .env("JCS_MONITOR", "off")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("JCS_MONITOR=off"));
    // A refused start leaves no VE behind, not even a catalog row.
    assert_eq!(
        env.json(&["ps", "--all", "--json"])["ves"],
        serde_json::json!([])
    );
    env.assert_clean();
}

#[test]
fn root_a_policy_replayed_over_history_lists_what_it_would_have_aborted() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "policy");
    // History without a policy: a connect to port 25 on the VE's own loopback (it stays inside
    // the VE: not in the journal, so not replayed), a write outside /data/out, one inside.
    env.ok(&["run", "web", "--", "/data/policy", "tcp", "25", "26"]);
    env.sh_ok(
        "echo x > /data/outside; mkdir /data/newdir; ln -s x /data/lnk; mkfifo /data/ff; \
         rm /data/outside; mkdir -p /data/out; echo y > /data/out/inside; mkdir /data/out/d; \
         echo z > /data/out/moved; mv /data/out/moved /data/gone; \
         echo w > /data/into; mv /data/into /data/out/into",
    );
    // Unix sockets bound to paths make files there (one by a relative name).
    common::static_helper(&env, "preimage");
    std::fs::create_dir_all(env.home().join("persist/web/data/sub")).unwrap();
    env.ok(&["run", "web", "--", "/data/preimage", "sockets", "/data"]);
    let f = env.home().join("strict.toml");
    std::fs::write(
        &f,
        format!("{NET_POLICY}\n[files]\nwritable = [\"/data/out\"]\n"),
    )
    .unwrap();
    let r = env.json(&["policy", "replay", f.to_str().unwrap(), "--json"]);
    let hits = r["hits"].as_array().unwrap();
    assert!(!hits.iter().any(|h| h["op"] == "connect"), "{r}");
    let writes: Vec<_> = hits.iter().filter(|h| h["ve"] != 1).collect();
    assert!(!writes.is_empty(), "{r}");
    assert!(
        writes.iter().all(|h| h["rule_name"] == "files.writable"
            && !h["path"].as_str().unwrap().starts_with("/data/out/")),
        "{r}"
    );
    // Every change outside the writable tree: the write and the removal of a file, and the
    // creations by path (mkdir, symlink, mknod).
    for (op, path) in [
        ("write", "/data/outside"),
        ("unlink", "/data/outside"),
        ("mkdir", "/data/newdir"),
        ("symlink", "/data/lnk"),
        ("mknod", "/data/ff"),
        // A rename out of the writable tree, and one into it from outside (the source's
        // read-only mount refuses it too).
        ("rename", "/data/gone"),
        ("rename", "/data/into"),
        ("bind", "/data/s1"),
        ("bind", "/data/sub/s2"),
    ] {
        assert!(
            writes.iter().any(|h| h["op"] == op && h["path"] == path),
            "{op} {path}: {r}"
        );
    }
    assert_eq!(r["ves"], serde_json::json!([2, 3]));
    // A policy that allows all of it finds nothing.
    std::fs::write(&f, "").unwrap();
    let r = env.json(&["policy", "replay", f.to_str().unwrap(), "--json"]);
    assert_eq!(r["hits"], serde_json::json!([]));
    assert!(r["examined"].as_u64().unwrap() > 0);
    env.assert_clean();
}

/// Two stores served by one daemon (one host, one set of BPF programs), each with its VE 1
/// running at once under a policy of its own: each VE gets its own store's rules. The kernel
/// keys policies by the VE's number, and two stores' VE 1 would share one entry — B's rules
/// replacing A's, and B's end removing them — if the daemon did not number them apart (the
/// negative control was run by hand: with the VE id as the kernel's number, A's second
/// connect to port 25 got through).
#[test]
fn root_two_stores_ves_of_one_id_keep_their_own_policies() {
    let (Some(a), Some(b)) = (Env::new(), Env::new()) else {
        return;
    };
    // B's daemons meet where A's do.
    let b = b.meeting_in(&a.run_dir());
    for (e, port) in [(&a, 25), (&b, 27)] {
        e.standard_app();
        common::static_helper(e, "policy");
        with_policy(
            e,
            &format!(
                "[[network.rule]]\nname = \"no-{port}\"\naction = \"deny\"\nproto = \"tcp\"\nports = [{port}]\n"
            ),
        );
    }
    // A's VE 1: denied 25 at its start, and again after B's VE 1 came and went.
    let long = a
        .cmd(&[
            "run",
            "web",
            "--",
            "/bin/sh",
            "-c",
            "/data/policy tcp 25 26; while [ ! -e /data/go ]; do sleep 0.05; done; /data/policy tcp 25 26",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(common::wait_for(20, || a.daemon_pid().is_some()));
    assert!(common::wait_for(20, || a.ok(&["ps"]).contains("running")));
    let o = b
        .cmd(&["run", "web", "--", "/data/policy", "tcp", "27", "25"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "denied=EPERM allowed=ok",
        "B's VE 1: its own rules (27 denied, 25 allowed)"
    );
    assert_eq!(a.daemon_pid(), b.daemon_pid(), "one daemon for both stores");
    // (Through the store's persistent directory: the VE sees it as /data.)
    std::fs::write(a.home().join("persist/web/data/go"), "").unwrap();
    let out = long.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "denied=EPERM allowed=ok\ndenied=EPERM allowed=ok",
        "A's VE 1 kept its rules while B's VE 1 ran and after it ended"
    );
    // Each store's journal: its own VE's denial, by its own rule.
    for (e, rule) in [(&a, "no-25"), (&b, "no-27")] {
        let text = e.ok(&["log", "--status", "aborted"]);
        assert!(text.contains(rule), "{text}");
    }
}
