//! The daemon ships the journal as it grows (`jcs daemon --ship`, `JCS_SHIP`), and
//! `jcs collect` on "another machine" rebuilds it: the same files, the same head as the
//! host's `jcs verify`, while VEs run and after.

mod common;

use common::{wait_for, Env, NetNs};
use fleet::testing::{nats_server, ClickHouseServer, Cluster};
use std::process::Stdio;

#[test]
fn root_the_daemon_ships_the_journal_and_a_collector_rebuilds_it_with_the_same_head() {
    let Some(env) = Env::new() else { return };
    let Some(bin) = nats_server() else { return };
    let nats = Cluster::start(&bin, 1);
    env.standard_app();
    let url = nats.urls();
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

/// The variables a `jcs track --json` answer reached.
fn reached_of(answer: &serde_json::Value) -> Vec<&str> {
    answer["reached"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

/// Two hosts on one machine: two stores and daemons in two network namespaces this test
/// makes, joined by a veth pair, each host routing the other's VE subnet (routed addresses,
/// no translation). A VE on host A sends a file to a VE on host B, which writes a report.
/// Both daemons ship to one NATS server; a collector loads ClickHouse; `jcs track --fleet`
/// forward from A's source names B's report, and back from B's report names A's source.
#[test]
fn root_a_file_sent_from_a_ve_on_one_host_to_a_ve_on_another_is_tracked_across_them() {
    let Some(a) = Env::new() else { return };
    let Some(bin) = nats_server() else { return };
    let Some(ch) = ClickHouseServer::start() else {
        return;
    };
    let b = Env::new().unwrap();
    let nats = Cluster::start(&bin, 1);
    let (na, nb) = (NetNs::new(), NetNs::new());
    let run = |ns: &NetNs, args: &[&str]| {
        let o = ns.cmd("sh", &["-c", &args.join(" ")]).output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    // The wire between the hosts.
    let (va, vb) = (
        format!("jcsfa{}", std::process::id() % 10000),
        format!("jcsfb{}", std::process::id() % 10000),
    );
    run(
        &na,
        &[
            "ip link add",
            &va,
            "type veth peer name",
            &vb,
            "netns",
            &nb.path(),
        ],
    );
    run(
        &na,
        &[
            "ip addr add 192.168.77.1/24 dev",
            &va,
            "&& ip link set",
            &va,
            "up",
        ],
    );
    run(
        &nb,
        &[
            "ip addr add 192.168.77.2/24 dev",
            &vb,
            "&& ip link set",
            &vb,
            "up",
        ],
    );
    run(
        &na,
        &["sysctl -qw net.ipv4.ip_forward=1 && ip route add 10.78.2.0/24 via 192.168.77.2"],
    );
    run(
        &nb,
        &["sysctl -qw net.ipv4.ip_forward=1 && ip route add 10.78.1.0/24 via 192.168.77.1"],
    );
    let url = nats.urls();
    let host_env = |ns: &NetNs, env: &Env, cidr: &str, args: &[&str]| {
        let mut c = ns.cmd(common::jcs_bin(), args);
        c.env("JCS_HOME", env.home())
            .env("JCS_RUN_DIR", env.run_dir())
            .env("JCS_BRIDGE_CIDR", cidr)
            .stdin(Stdio::null());
        c
    };
    for (ns, env, cidr) in [(&na, &a, "10.78.1.0/24"), (&nb, &b, "10.78.2.0/24")] {
        let o = host_env(ns, env, cidr, &["template", "create", "bb", "--busybox"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = host_env(
            ns,
            env,
            cidr,
            &[
                "app",
                "create",
                "web",
                "--template",
                "bb",
                "--net",
                "bridge",
                "--persist",
                "/data",
            ],
        )
        .output()
        .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // Each host's daemon, in this machine's own namespace (where the NATS server listens);
    // the VEs' jcs run in the host's namespace reaches it by its socket in the store.
    let mut daemons = Vec::new();
    for (env, name) in [(&a, "host-a"), (&b, "host-b")] {
        let d = env
            .cmd(&["daemon"])
            .env("JCS_SHIP", &url)
            .env("JCS_SHIP_HOST", name)
            .env("JCS_SHIP_REPLICAS", "1")
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = d.id() as i32;
        assert!(
            wait_for(20, || env.daemon_pid() == Some(pid)),
            "{name}'s daemon did not start"
        );
        daemons.push(d);
    }
    std::fs::write(a.home().join("persist/web/data/secret"), "the plans\n").unwrap();
    // B's VE (10.78.2.2) receives one connection into /data/got, then writes its report.
    let server = host_env(&nb, &b, "10.78.2.0/24", &[
        "run", "web", "--", "/bin/sh", "-c",
        "(nc -l -p 8080 > /data/got) & sleep 0.3; touch /data/ready; wait; (echo report; cat /data/got) > /data/report",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let ready = b.home().join("persist/web/data/ready");
    assert!(wait_for(15, || ready.exists()), "B's VE did not come up");
    // A's VE sends its secret to B's VE, across the two hosts' routers.
    let o = host_env(
        &na,
        &a,
        "10.78.1.0/24",
        &[
            "run",
            "web",
            "--",
            "/bin/sh",
            "-c",
            "nc 10.78.2.2 8080 < /data/secret",
        ],
    )
    .output()
    .unwrap();
    assert!(
        o.status.success(),
        "A's VE: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = server.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "B's VE: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(b.home().join("persist/web/data/report")).unwrap(),
        "report\nthe plans\n"
    );
    // Each host's own tracker ends at the connection.
    let local = b.reached(&["back", "persist:web:/data/report"]);
    assert!(!local.iter().any(|v| v.contains("secret")), "{local:?}");
    // Both daemons ship; the collector loads ClickHouse once both journals are in.
    let collected = tempfile::tempdir().unwrap();
    let dest = collected.path().to_str().unwrap().to_string();
    let chu = ch.url("fleet");
    let heads = |e: &Env| {
        e.json(&["verify", "--json"])["head"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let mut last = String::new();
    let both = wait_for(30, || {
        let o = a.jcs(&[
            "collect", "--from", &url, "--to", &dest, "--to", &chu, "--json",
        ]);
        if !o.status.success() {
            last = String::from_utf8_lossy(&o.stderr).into();
            return false;
        }
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        last = j.to_string();
        let head_of = |h: &str| {
            j.as_array()
                .unwrap()
                .iter()
                .find(|r| r["host"] == h)
                .map(|r| r["head"].as_str().unwrap().to_string())
        };
        head_of("host-a") == Some(heads(&a)) && head_of("host-b") == Some(heads(&b))
    });
    assert!(both, "collected: {last}");
    // The dimensions: each host's VEs with their app, each host's chain as collected.
    let ves = ch
        .sql("SELECT host, ve, app FROM fleet.jcs_ves FINAL ORDER BY host, ve")
        .unwrap();
    assert_eq!(ves, "host-a\t1\tweb\nhost-b\t1\tweb\n");
    let hosts = ch
        .sql("SELECT host, head FROM fleet.jcs_hosts FINAL ORDER BY host")
        .unwrap();
    assert_eq!(
        hosts,
        format!("host-a\t{}\nhost-b\t{}\n", heads(&a), heads(&b))
    );
    let stats = ch
        .sql("SELECT count() FROM fleet.jcs_ve_stats FINAL WHERE lost = 0 AND seen > 0")
        .unwrap();
    assert_eq!(stats.trim(), "2");
    let fwd = a.json(&[
        "track",
        "forward",
        "persist:web:/data/secret",
        "--fleet",
        &chu,
        "--host",
        "host-a",
        "--json",
    ]);
    let reached = reached_of(&fwd);
    assert!(
        reached
            .iter()
            .any(|v| v.starts_with("host-b:") && v.contains("/data/report")),
        "{fwd}"
    );
    assert!(reached.contains(&"host-b:ve:1"), "{fwd}");
    let back = a.json(&[
        "track",
        "back",
        "persist:web:/data/report",
        "--fleet",
        &chu,
        "--host",
        "host-b",
        "--json",
    ]);
    let reached = reached_of(&back);
    assert!(
        reached
            .iter()
            .any(|v| v.starts_with("host-a:") && v.contains("/data/secret")),
        "{back}"
    );
    for e in [&a, &b] {
        e.stop_daemon();
        e.assert_clean();
    }
    for mut d in daemons {
        let _ = d.wait();
    }
}

/// `jcs export` in its four formats, from a real VE's journal: JSON lines and CSV are the
/// log's own; Parquet read back by DuckDB (PyPI) has the log's transactions, signed 64-bit
/// columns and the same bytes; CDM is one JSON datum per line whose every event names a
/// subject and objects defined before it. `--ve` selects one VE.
#[test]
fn root_export_writes_jsonl_csv_parquet_and_cdm_that_other_tools_read() {
    let Some(env) = Env::new() else { return };
    let duckdb = std::process::Command::new("python3")
        .args(["-c", "import duckdb"])
        .status()
        .is_ok_and(|s| s.success());
    if !duckdb {
        assert!(
            std::env::var_os("JCS_REQUIRE_ROOT").is_none(),
            "python3 -c 'import duckdb' failed (scripts/install-deps.sh installs it)"
        );
        eprintln!("skipped: no duckdb");
        return;
    }
    env.standard_app();
    std::fs::write(env.home().join("persist/web/data/in"), "0123456789\n").unwrap();
    env.sh_ok("cat /data/in > /data/out; cat /data/in /data/out > /data/both");
    env.sh_ok("cat /data/both > /data/again");
    let log: Vec<serde_json::Value> = env
        .ok(&["log", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let txs: Vec<&serde_json::Value> = log.iter().filter(|l| l.get("op").is_some()).collect();
    assert!(txs.len() > 10, "{}", txs.len());
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    // JSON lines: the log's lines; CSV: a header and a row each.
    let jsonl = env.ok(&["export", "--format", "jsonl"]);
    assert_eq!(jsonl.lines().count(), log.len());
    common::validate_json(&["log", "--json"], &jsonl);
    env.ok(&["export", "--format", "csv", "-o", &p("t.csv")]);
    let csv = std::fs::read_to_string(p("t.csv")).unwrap();
    assert_eq!(csv.lines().count(), log.len() + 1);
    // Parquet, read by DuckDB.
    env.ok(&["export", "--format", "parquet", "-o", &p("t.parquet")]);
    let q = |sql: &str| -> String {
        let o = std::process::Command::new("python3")
            .args([
                "-c",
                &format!("import duckdb; print(duckdb.sql({sql:?}).fetchall())"),
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    };
    let file = p("t.parquet");
    let bytes: u64 = txs.iter().map(|t| t["len"].as_u64().unwrap()).sum();
    assert_eq!(
        q(&format!(
            "select count(*), sum(len) from '{file}' where kind = 'transaction'"
        )),
        format!("[({}, {bytes})]", txs.len())
    );
    assert_eq!(
        q(&format!("select distinct column_type from (describe select time_ns, ve, src, len, count from '{file}')")),
        "[('BIGINT',)]"
    );
    let reads = txs
        .iter()
        .filter(|t| t["op"] == "read" && t["src"].as_str().unwrap().ends_with("/data/in"))
        .count();
    assert_eq!(
        q(&format!(
            "select count(*) from '{file}' where op = 'read' and src_label like '%/data/in'"
        )),
        format!("[({reads},)]")
    );
    assert!(reads >= 2);
    // CDM: every line a datum; events' subjects and objects defined before them.
    env.ok(&[
        "export",
        "--format",
        "cdm",
        "-o",
        &p("t.cdm"),
        "--host",
        "h1",
    ]);
    let mut defined = std::collections::HashSet::new();
    let mut events = 0;
    for line in std::fs::read_to_string(p("t.cdm")).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["CDMVersion"], "18");
        let (kind, d) = v["datum"].as_object().unwrap().iter().next().unwrap();
        let kind = kind.strip_prefix("com.bbn.tc.schema.avro.cdm18.").unwrap();
        if kind == "Event" {
            events += 1;
            let uuid = |f: &str| {
                d[f]["com.bbn.tc.schema.avro.cdm18.UUID"]
                    .as_str()
                    .map(String::from)
            };
            assert!(defined.contains(&uuid("subject").unwrap()), "{line}");
            if let Some(o) = uuid("predicateObject") {
                assert!(defined.contains(&o), "{line}");
            }
            assert!(d["type"].as_str().unwrap().starts_with("EVENT_"), "{line}");
            assert!(d["size"]["long"].is_i64(), "{line}");
        } else {
            defined.insert(d["uuid"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(events, txs.len());
    // One VE only.
    let ve2 = env.ok(&["export", "--format", "jsonl", "--ve", "2"]);
    assert!(ve2.lines().all(|l| l.contains("\"ve\":2")), "{ve2}");
    assert!(ve2.lines().count() > 0 && ve2.lines().count() < log.len());
    assert!(env
        .fails(&["export", "--format", "parquet"])
        .contains("-o FILE"));
    env.stop_daemon();
    env.assert_clean();
}

/// `GET /metrics` of the scrape at `port`: (name{labels} → value).
fn scrape(port: u16) -> std::collections::BTreeMap<String, u64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("Content-Type: text/plain; version=0.0.4"),
        "{text}"
    );
    let body = text.split("\r\n\r\n").nth(1).unwrap();
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

/// The daemon's Prometheus endpoint counts what the journal holds: the transactions by
/// operation add up to the journal's, VE starts, the journal's bytes, a shipper's lag.
#[test]
fn root_the_daemons_metrics_add_up_to_the_journal() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let port = fleet::testing::free_port();
    let mut daemon = env
        .cmd(&["daemon", "--metrics", &format!("127.0.0.1:{port}")])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = daemon.id() as i32;
    assert!(wait_for(20, || env.daemon_pid() == Some(pid)));
    env.sh_ok("echo a > /data/a; cat /data/a > /data/b; i=0; while [ $i -lt 20 ]; do echo $i >> /data/c; i=$((i+1)); done");
    env.sh_ok("cat /data/c > /data/d");
    let m = scrape(port);
    let txs = env
        .ok(&["log", "--json"])
        .lines()
        .filter(|l| l.contains("\"op\":"))
        .count() as u64;
    let counted: u64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("jcs_transactions_total{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(counted, txs, "{m:?}");
    assert_eq!(m["jcs_ve_starts_total"], 2);
    assert_eq!(m["jcs_ves_watched"], 0);
    assert!(m["jcs_events_total"] > 0);
    assert!(m["jcs_transactions_total{op=\"write\"}"] >= 21);
    assert_eq!(m["jcs_kernel_records_lost_total"], 0);
    assert!(m["jcs_ring_buffer_size_bytes"] > 0);
    let seg_bytes: u64 = std::fs::read_dir(env.home().join("journal"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert_eq!(m["jcs_journal_bytes"], seg_bytes);
    // A shipper that has sent nothing lags by the whole journal.
    std::fs::write(
        env.home().join("journal/ship-X.state"),
        r#"{"follower":{"file":null,"offset":0}}"#,
    )
    .unwrap();
    assert_eq!(scrape(port)["jcs_ship_lag_bytes{stream=\"X\"}"], seg_bytes);
    // Anything but GET /metrics: 404.
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut t = String::new();
        s.read_to_string(&mut t).unwrap();
        assert!(t.starts_with("HTTP/1.1 404"), "{t}");
    }
    // SAFETY: SIGTERM to the daemon this test started, by its pid.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let _ = daemon.wait();
    // A bad address is refused before the daemon starts.
    let o = env
        .cmd(&["daemon", "--metrics", "nowhere"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    env.assert_clean();
}
