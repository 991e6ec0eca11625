//! One JSON: every command's `--json` output, on a store with real history, follows its
//! schema in docs/schema/ (Env::json checks each against it), and every schema there is
//! exercised here: a new output cannot land unchecked.

mod common;
use common::Env;
use std::collections::BTreeSet;

/// `jcs ARGS`'s JSON, checked by its schema; notes the schema as exercised.
fn j(env: &Env, seen: &mut BTreeSet<String>, args: &[&str]) -> serde_json::Value {
    seen.insert(common::schema_name(args));
    env.json(args)
}

#[test]
fn root_every_json_output_follows_its_schema() {
    let Some(env) = Env::new() else { return };
    let mut seen = BTreeSet::new();
    let created = j(
        &env,
        &mut seen,
        &["template", "create", "bb", "--busybox", "--json"],
    );
    assert_eq!(created["template"], "bb");
    j(
        &env,
        &mut seen,
        &[
            "app",
            "create",
            "web",
            "--template",
            "bb",
            "--persist",
            "/data",
            "--share",
            "/dl=downloads",
            "--json",
        ],
    );
    let policy = env.home().join("p.toml");
    std::fs::write(
        &policy,
        "[recovery]\npreimages = true\n[files]\nwritable = [\"/data/out\"]\n",
    )
    .unwrap();
    let p = policy.to_str().unwrap();
    env.ok(&["app", "policy", "web", p]);
    // History: a file written, read and renamed in persistent storage, one in shared storage,
    // a setuid file in the dirties (a flag for inspect and gc), a failed open.
    env.sh_ok(
        "mkdir -p /data/out; echo hi > /data/out/f; cat /data/out/f >/dev/null; \
         mv /data/out/f /data/out/g; echo x > /dl/y; cp /bin/busybox /tmp/s; chmod 4755 /tmp/s; \
         cat /data/nonexistent 2>/dev/null; true",
    );

    let doctor = j(&env, &mut seen, &["doctor", "--json"]);
    assert_eq!(doctor["ok"], true, "{doctor}");
    // The kfunc the monitor's programs need is found in this kernel's BTF (they load here:
    // every recording test says so), by the doctor's own BTF reader.
    let kfunc = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "bpf kfunc bpf_rdonly_cast (the monitor)")
        .unwrap_or_else(|| panic!("no kfunc check: {doctor}"));
    assert_eq!(kfunc["ok"], true, "{kfunc}");
    j(&env, &mut seen, &["template", "list", "--json"]);
    j(&env, &mut seen, &["app", "list", "--json"]);
    j(&env, &mut seen, &["app", "show", "web", "--json"]);

    let ps = j(&env, &mut seen, &["ps", "--all", "--json"]);
    let row = &ps["ves"][0];
    assert_eq!(row["ve"], 1, "{ps}");
    let started_ns = row["started_ns"].as_u64().unwrap();
    let started = row["started"].as_str().unwrap();
    assert!(started.starts_with("20") && started.ends_with('Z'), "{ps}");
    // The string is the integer, to the nanosecond.
    let whole = started_ns / 1_000_000_000;
    assert!(
        started.ends_with(&format!(".{:09}Z", started_ns % 1_000_000_000)),
        "{ps}"
    );
    assert!(whole > 1_700_000_000, "{ps}");

    let inspect = j(&env, &mut seen, &["inspect", "1", "--json"]);
    let s = inspect["dirties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "/tmp/s")
        .unwrap_or_else(|| panic!("{inspect}"));
    assert_eq!(s["mode"], "4755", "{inspect}");
    // Control: the same report with the mode as a number fails the check.
    let mut bad = inspect.clone();
    for e in bad["dirties"].as_array_mut().unwrap() {
        e["mode"] = 2541.into();
    }
    assert!(common::follows_schema(&["inspect", "--json"], &bad.to_string()).is_err());

    seen.insert("log".into());
    let log = env.log(1);
    assert!(log.iter().any(|t| t["op"] == "rename"), "{log:?}");
    assert!(log.iter().any(|t| t["error"] == "ENOENT"), "{log:?}");
    for t in &log {
        if t["summary"].is_string() {
            // An integrity record (the script writes /tmp/s): its window and its VE.
            assert!(
                t["first"].is_string() && t["last_ns"].is_u64() && t["ve"] == 1,
                "{t}"
            );
        } else {
            assert!(t["time"].is_string() && t["time_ns"].is_u64(), "{t}");
        }
    }
    assert!(
        log.iter()
            .any(|t| t["summary"] == "integrity" && t["dst"] == "file:/tmp/s"),
        "{log:?}"
    );

    j(&env, &mut seen, &["stats", "--json"]);
    let back = j(
        &env,
        &mut seen,
        &["track", "back", "persist:web:/data/out/g", "--json"],
    );
    assert!(
        back["edges"].as_array().is_some_and(|e| !e.is_empty()),
        "{back}"
    );
    j(&env, &mut seen, &["track", "forward", "ve:1", "--json"]);
    j(&env, &mut seen, &["verify", "--json"]);
    j(&env, &mut seen, &["summarize", "--dry-run", "--json"]);
    let gc = j(&env, &mut seen, &["gc", "--dry-run", "--json"]);
    assert!(
        gc["flagged"].as_array().is_some_and(|f| !f.is_empty()),
        "{gc}"
    );
    j(
        &env,
        &mut seen,
        &["versions", "gc", "--keep", "1s", "--dry-run", "--json"],
    );
    let abort = j(&env, &mut seen, &["abort", "1", "--dry-run", "--json"]);
    assert!(
        abort["steps"].as_array().is_some_and(|s| !s.is_empty()),
        "{abort}"
    );
    j(
        &env,
        &mut seen,
        &["recover", "--from", "ve:1", "--plan", "--json"],
    );
    j(&env, &mut seen, &["policy", "check", p, "--json"]);
    let replay = j(&env, &mut seen, &["policy", "replay", p, "--json"]);
    assert!(
        replay["hits"].as_array().is_some_and(|h| h.is_empty()),
        "{replay}"
    );
    j(&env, &mut seen, &["summarize", "--tier", "T1", "--json"]);
    // Shipping and collecting, with a NATS server of the test's own.
    if let Some(bin) = fleet::testing::nats_server() {
        let nats = fleet::testing::Cluster::start(&bin, 1);
        let url = nats.urls();
        let shipped = j(
            &env,
            &mut seen,
            &[
                "ship",
                "--to",
                &url,
                "--replicas",
                "1",
                "--host",
                "h",
                "--json",
            ],
        );
        assert!(shipped["blocks_total"].as_u64().unwrap() > 0, "{shipped}");
        let out = tempfile::tempdir().unwrap();
        let got = j(
            &env,
            &mut seen,
            &[
                "collect",
                "--from",
                &url,
                "--to",
                out.path().to_str().unwrap(),
                "--json",
            ],
        );
        assert_eq!(got[0]["head"], shipped["head"], "{got}");
    }

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schema");
    let all: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".json")
                .to_string()
        })
        .collect();
    assert_eq!(
        seen,
        all,
        "outputs not exercised: {:?}",
        all.difference(&seen)
    );
    env.assert_clean();
}

/// Control for the check itself: output that breaks the convention fails it — a VE as `id`,
/// a bare array, a time that is not RFC 3339 with nanoseconds.
#[test]
fn the_schema_check_rejects_what_breaks_the_convention() {
    let check = |args: &[&str], doc: &str| common::follows_schema(args, doc).is_ok();
    let row = |extra: &str| {
        format!(
            r#"{{"ves": [{{"ve": 1, "name": null, "app": "web", "app_version": 1, "kind": "app",
              "cmd": ["sh"], "state": "exited", "cgroup_id": null, "started_ns": 1,
              "started": "1970-01-01T00:00:00.000000001Z", "ended_ns": null, "ended": null,
              "exit_code": 0, "error": null, "removed": false{extra}}}]}}"#
        )
    };
    assert!(
        check(&["ps", "--json"], &row("")),
        "the control row must pass"
    );
    assert!(!check(&["ps", "--json"], &row(r#", "id": 1"#)));
    assert!(!check(&["ps", "--json"], "[]"));
    let bad_time = row("").replace("00.000000001Z", "00Z");
    assert!(!check(&["ps", "--json"], &bad_time));
    let no_time = row("").replace(r#""started": "1970-01-01T00:00:00.000000001Z","#, "");
    assert!(!check(&["ps", "--json"], &no_time));
}
