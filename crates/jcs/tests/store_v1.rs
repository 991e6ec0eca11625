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

/// JSON lines without what this version's convention adds beside each `K_ns` instant: its
/// RFC 3339 string `K` (checked to be that instant).
fn without_time_strings(lines: &str) -> String {
    lines
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            drop_time_strings(&mut v);
            format!("{v}\n")
        })
        .collect()
}

fn drop_time_strings(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Array(a) => a.iter_mut().for_each(drop_time_strings),
        serde_json::Value::Object(m) => {
            let keys: Vec<String> = m.keys().filter(|k| k.ends_with("_ns")).cloned().collect();
            for k in keys {
                let base = k.trim_end_matches("_ns");
                let s = m
                    .remove(base)
                    .unwrap_or_else(|| panic!("no {base} beside {k}"));
                match m[&k].as_u64() {
                    Some(ns) => {
                        let t = s.as_str().unwrap();
                        assert!(
                            t.ends_with(&format!(".{:09}Z", ns % 1_000_000_000)),
                            "{t} {ns}"
                        );
                    }
                    None => assert!(s.is_null(), "{base}: {s} beside a null {k}"),
                }
            }
            m.values_mut().for_each(drop_time_strings);
        }
        _ => {}
    }
}

#[test]
fn version_1_store_logs_as_it_did() {
    let d = store();
    let out = jcs(d.path(), &["log", "--json"]);
    assert_eq!(out.lines().count(), 37);
    assert_eq!(without_time_strings(&out), expected("log.jsonl"));
    // A filter by variable goes through the upgraded catalog's keys.
    let one = jcs(d.path(), &["log", "--json", "--var", "file:/dl/out.txt"]);
    let all = expected("log.jsonl");
    let want: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("\"file:/dl/out.txt\""))
        .collect();
    assert!(want.len() >= 4, "{want:?}");
    assert_eq!(without_time_strings(&one).lines().collect::<Vec<_>>(), want);
}

#[test]
fn version_1_store_has_the_same_stats() {
    let d = store();
    let mut got: serde_json::Value =
        serde_json::from_str(&jcs(d.path(), &["stats", "--json"])).unwrap();
    // What this version adds: nothing was skipped.
    assert_eq!(
        got.as_object_mut().unwrap().remove("skipped"),
        Some(serde_json::json!([]))
    );
    // ... no pre-images ...
    assert_eq!(
        got.as_object_mut().unwrap().remove("version_store"),
        Some(serde_json::json!({"objects": 0, "bytes": 0}))
    );
    // ... and no policy: nothing aborted, denied or enforced.
    for v in got["ves"].as_array_mut().unwrap() {
        let v = v.as_object_mut().unwrap();
        assert_eq!(v.remove("aborted_transactions"), Some(serde_json::json!(0)));
        assert_eq!(v.remove("denials"), Some(serde_json::json!([])));
        assert_eq!(v.remove("enforced"), Some(serde_json::json!([])));
        // ... and no integrity records (version 1 recorded every write).
        assert_eq!(v.remove("integrity_records"), Some(serde_json::json!(0)));
        assert_eq!(v.remove("integrity_writes"), Some(serde_json::json!(0)));
        // ... and no online T1 summaries.
        assert_eq!(v.remove("summaries"), Some(serde_json::json!(0)));
        assert_eq!(v.remove("summarized_flows"), Some(serde_json::json!(0)));
    }
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
    // Fields this version adds: the answer is complete (the store has no gap), the roots,
    // the instants' strings.
    drop_time_strings(&mut got);
    let obj = got.as_object_mut().unwrap();
    assert_eq!(
        obj.remove("roots"),
        Some(serde_json::json!(["file:/data/copy.txt"]))
    );
    assert_eq!(obj.remove("complete"), Some(serde_json::json!(true)));
    assert_eq!(obj.remove("gaps"), Some(serde_json::json!([])));
    assert_eq!(obj.remove("skipped"), Some(serde_json::json!([])));
    let want: serde_json::Value = serde_json::from_str(&expected("track-back-copy.json")).unwrap();
    assert_eq!(got, want);
    assert_eq!(
        jcs(d.path(), &["track", "forward", "file:/data/in.txt"]),
        expected("track-forward-in.txt")
    );
}

/// One damaged block in the middle of the journal: `log`, `stats` and `track` read around it,
/// say what they skipped (stderr; JSON fields), and fail only with `--strict`.
#[test]
fn a_damaged_block_is_skipped_with_a_warning_not_a_silent_or_empty_answer() {
    let d = store();
    let seg = d.path().join("journal/0000000000000000.seg");
    let mut b = std::fs::read(&seg).unwrap();
    let scan = journal::journal::scan_segment(&b).unwrap();
    assert!(scan.blocks.len() >= 3, "{} blocks", scan.blocks.len());
    // A byte inside the payload of the largest block (transactions).
    let ends: Vec<usize> = scan
        .blocks
        .iter()
        .skip(1)
        .map(|(o, _)| *o)
        .chain([scan.valid_end])
        .collect();
    let (i, _) = scan
        .blocks
        .iter()
        .enumerate()
        .max_by_key(|(i, (o, _))| ends[*i] - o)
        .unwrap();
    let off = scan.blocks[i].0;
    b[off + 90] ^= 0x20;
    std::fs::write(&seg, &b).unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_jcs"))
            .arg("--home")
            .arg(d.path())
            .args(args)
            .output()
            .unwrap()
    };
    let o = run(&["log", "--json"]);
    assert!(o.status.success());
    let lines = String::from_utf8(o.stdout).unwrap().lines().count();
    assert!(lines > 0 && lines < 37, "{lines} transactions listed");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("unreadable journal") && err.contains("skipped"),
        "{err}"
    );
    assert_eq!(run(&["log", "--json", "--strict"]).status.code(), Some(1));
    let o = run(&["stats", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["skipped"].as_array().unwrap().len(), 1, "{st}");
    assert_eq!(run(&["stats", "--strict"]).status.code(), Some(1));
    // Tracking answers, marked incomplete; or, when the variable's definition was in the
    // damaged block, says that it may be there.
    let mut answered = 0;
    for var in ["file:/data/copy.txt", "file:/data/in.txt", "ve:1", "ve:2"] {
        let o = run(&["track", "back", var, "--json"]);
        if o.status.success() {
            let t: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(t["complete"], false, "{t}");
            assert_eq!(t["skipped"].as_array().unwrap().len(), 1, "{t}");
            answered += 1;
        } else {
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains("could not be read"), "{var}: {err}");
        }
    }
    assert!(answered > 0, "no variable could be tracked");
}
