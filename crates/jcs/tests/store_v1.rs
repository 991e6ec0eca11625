//! A store written by the first round's jcs (journal records of version 1: JSON variable
//! definitions and counters; catalog schema 2), frozen in `tests/fixtures/store-v1` with what
//! that jcs printed for it. This jcs must read it and print the same: `log`, `stats`, `track`.
//! Unprivileged: reading a store needs no root.

use std::path::Path;
use std::process::Command;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/store-v1");

/// A copy of the fixture store (opening it upgrades its catalog in place).
fn store() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("journal")).unwrap();
    for f in ["catalog.db", "journal/0000000000000000.seg"] {
        std::fs::copy(Path::new(FIXTURE).join(f), d.path().join(f)).unwrap();
    }
    d
}

fn jcs(home: &Path, args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_jcs"))
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "jcs {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn expected(name: &str) -> String {
    std::fs::read_to_string(Path::new(FIXTURE).join(name)).unwrap()
}

#[test]
fn version_1_store_logs_as_it_did() {
    let d = store();
    let out = jcs(d.path(), &["log", "--json"]);
    assert_eq!(out.lines().count(), 37);
    assert_eq!(out, expected("log.jsonl"));
    // A filter by variable goes through the upgraded catalog's keys.
    let one = jcs(d.path(), &["log", "--json", "--var", "file:/dl/out.txt"]);
    let all = expected("log.jsonl");
    let want: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("\"file:/dl/out.txt\""))
        .collect();
    assert!(want.len() >= 4, "{want:?}");
    assert_eq!(one.lines().collect::<Vec<_>>(), want);
}

#[test]
fn version_1_store_has_the_same_stats() {
    let d = store();
    let got: serde_json::Value =
        serde_json::from_str(&jcs(d.path(), &["stats", "--json"])).unwrap();
    let want: serde_json::Value = serde_json::from_str(&expected("stats.json")).unwrap();
    assert_eq!(got, want);
}

#[test]
fn version_1_store_tracks_the_same() {
    let d = store();
    let mut got: serde_json::Value = serde_json::from_str(&jcs(
        d.path(),
        &["track", "back", "file:/data/copy.txt", "--json"],
    ))
    .unwrap();
    // Fields this version adds: the answer is complete (the store has no gap).
    let obj = got.as_object_mut().unwrap();
    assert_eq!(obj.remove("complete"), Some(serde_json::json!(true)));
    assert_eq!(obj.remove("gaps"), Some(serde_json::json!([])));
    let want: serde_json::Value = serde_json::from_str(&expected("track-back-copy.json")).unwrap();
    assert_eq!(got, want);
    assert_eq!(
        jcs(d.path(), &["track", "forward", "file:/data/in.txt"]),
        expected("track-forward-in.txt")
    );
}
