//! The daemon's retention (`jcs daemon --retain`, `JCS_RETAIN`): the journal older than each
//! age is summarized into that tier while the daemon runs, so it does not grow without bound,
//! and the answers keep the tier's guarantee; the chain still verifies.

mod common;

use common::{wait_for, Env};

fn journal_files(env: &Env, ext: &str) -> usize {
    std::fs::read_dir(env.home().join("journal"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(ext))
        .count()
}

/// `T1 after 1s, T4 after 4s`, checked every second, with small segments: sealed segments
/// become T1 summary files, and those become T4 later; tracking still goes from the input to
/// the output, and `jcs verify` verifies the chain end to end.
#[test]
fn root_the_daemon_summarizes_what_is_older_than_its_retention() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let data = env.home().join("persist/web/data");
    std::fs::write(data.join("in"), "secret\n").unwrap();
    let vars = [
        ("JCS_RETAIN", "T1 after 1s, T4 after 4s"),
        ("JCS_RETAIN_EVERY", "1s"),
        ("JCS_SEGMENT_BYTES", "1024"),
    ];
    env.sh_ok_with(
        &vars,
        "cat /data/in > /data/mid; i=0; while [ $i -lt 300 ]; do echo $i >> /data/mid; \
         i=$((i+1)); done",
    );
    for _ in 0..4 {
        env.sh_ok_with(
            &vars,
            "cat /data/mid > /data/mid2; cat /data/mid2 > /data/mid",
        );
    }
    env.sh_ok_with(&vars, "cat /data/mid > /data/out");
    let segments = journal_files(&env, ".seg");
    assert!(segments > 3, "small segments: {segments}");
    let back = env.reached(&["back", "persist:web:/data/out"]);
    assert!(back.contains(&"file:/data/in".to_string()), "{back:?}");
    // T1 first, then T4: the answer's edges say which tier they come from.
    let tiers = |env: &Env| -> Vec<String> {
        let j = env.json(&["track", "back", "persist:web:/data/out", "--json"]);
        j["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["op"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        wait_for(30, || journal_files(&env, ".sum") > 0),
        "no summary file: {:?}",
        std::fs::read_to_string(env.home().join("daemon.log")).unwrap_or_default()
    );
    assert!(
        wait_for(30, || tiers(&env).iter().any(|t| t == "T4")),
        "never T4: {:?}\n{}",
        tiers(&env),
        std::fs::read_to_string(env.home().join("daemon.log")).unwrap_or_default()
    );
    assert!(
        journal_files(&env, ".seg") < segments,
        "segments were replaced"
    );
    // T4 never loses a dependency; the chain verifies with its head unchanged.
    let back = env.reached(&["back", "persist:web:/data/out"]);
    assert!(back.contains(&"file:/data/in".to_string()), "{back:?}");
    assert!(back.contains(&"ve:6".to_string()), "{back:?}");
    let v = env.json(&["verify", "--json"]);
    assert!(
        v["first_problem"].is_null() && v["quarantined"] == serde_json::json!([]),
        "{v}"
    );
    assert!(v["summaries"].as_u64().unwrap() > 0, "{v}");
    let log = std::fs::read_to_string(env.home().join("daemon.log")).unwrap();
    assert!(log.contains("retain:"), "{log}");
    // A malformed policy is refused with the reason, before anything starts.
    let o = env
        .cmd(&["daemon", "--retain", "T9 after 1d"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("the tier is T1, T1F, T2 or T4"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    env.assert_clean();
}
