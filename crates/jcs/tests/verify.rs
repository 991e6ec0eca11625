//! `jcs verify` over a store's journal: intact, tampered, quarantined. (Not privileged: the
//! journal is plain files; the records are written here with the journal crate, as the
//! daemon will.)

use std::process::Command;

fn jcs(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_jcs"))
        .args(args)
        .env("JCS_HOME", home)
        .output()
        .unwrap()
}

/// A journal in `dir`, opened for appending, with segments of `segment_max_bytes`.
fn journal_in(
    dir: &std::path::Path,
    segment_max_bytes: u64,
) -> journal::Journal<journal::DirStorage> {
    let opts = journal::Options {
        segment_max_bytes,
        ..Default::default()
    };
    journal::Journal::open(journal::DirStorage::new(dir).unwrap(), opts)
        .unwrap()
        .0
}

#[test]
fn verify_reports_the_head_and_the_first_bad_block() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("journal");
    let mut j = journal_in(&dir, 300);
    for b in 0..10u32 {
        j.append(&[format!("at {b}").into_bytes(), vec![b as u8; 50]])
            .unwrap();
    }
    let head = journal::format::hex(&j.head());
    drop(j);
    let o = jcs(home.path(), &["verify", "--json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["head"], head.as_str());
    assert_eq!(r["records"], 20);
    assert!(r["first_problem"].is_null());
    // Flip one byte in the middle of the third segment.
    let mut segs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    let victim = &segs[2];
    let mut b = std::fs::read(victim).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x01;
    std::fs::write(victim, b).unwrap();
    let o = jcs(home.path(), &["verify"]);
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8_lossy(&o.stdout);
    let name = victim.file_name().unwrap().to_string_lossy();
    assert!(text.contains(&format!("PROBLEM in {name}")), "{text}");
    assert!(!text.contains("\nok"), "{text}");
}

/// A journal of one segment with ten blocks of two records each; the blocks' offsets.
fn ten_blocks(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u64>) {
    let mut j = journal_in(dir, journal::Options::default().segment_max_bytes);
    for b in 0..10u32 {
        j.append(&[format!("block {b}").into_bytes(), vec![b as u8; 40]])
            .unwrap();
    }
    drop(j);
    let seg = dir.join("0000000000000000.seg");
    let scan = journal::journal::scan_segment(&std::fs::read(&seg).unwrap()).unwrap();
    let offs = scan.blocks.iter().map(|(o, _)| *o as u64).collect();
    (seg, offs)
}

#[test]
fn each_kind_of_damage_is_reported_at_its_place_and_nothing_before_it_is_lost() {
    type Damage = fn(&mut Vec<u8>, &[u64]);
    let cases: [(&str, Damage, u64); 4] = [
        ("flip one byte", |b, o| b[o[5] as usize + 80] ^= 0x04, 5),
        (
            "truncate mid-block",
            |b, o| b.truncate(o[7] as usize + 30),
            7,
        ),
        (
            "append garbage",
            |b, _| b.extend_from_slice(b"garbage, not a block"),
            10,
        ),
        (
            "delete a block",
            |b, o| {
                b.drain(o[4] as usize..o[5] as usize);
            },
            4,
        ),
    ];
    for (what, damage, block) in cases {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join("journal");
        let (seg, offs) = ten_blocks(&dir);
        let mut b = std::fs::read(&seg).unwrap();
        let end = b.len() as u64;
        damage(&mut b, &offs);
        std::fs::write(&seg, &b).unwrap();
        let o = jcs(home.path(), &["verify", "--json"]);
        assert_eq!(o.status.code(), Some(1), "{what}");
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let p = &r["first_problem"];
        assert_eq!(p["segment"], "0000000000000000.seg", "{what}: {r}");
        assert_eq!(p["block"], block, "{what}: {r}");
        let at = offs.get(block as usize).copied().unwrap_or(end);
        assert_eq!(p["offset"], at, "{what}: {r}");
        // Everything before the damage verifies and reads back.
        assert_eq!(r["records"], 2 * block, "{what}: {r}");
        // Opening the journal (as the daemon does) keeps every block before the damage, and
        // destroys nothing: a torn tail (the last append unfinished) is cut after a copy is
        // made; anything else (a bad byte, a missing block) is damage, whose bytes are set
        // aside and reported.
        let (j, rec) = journal::Journal::open(
            journal::DirStorage::new(&dir).unwrap(),
            journal::Options::default(),
        )
        .unwrap();
        drop(j);
        let all = journal::read_all(&journal::DirStorage::new(&dir).unwrap()).unwrap();
        assert_eq!(all.len() as u64, 2 * block, "{what}: {rec:?}");
        for (i, (_, r)) in all.iter().enumerate().step_by(2) {
            assert_eq!(r, format!("block {}", i / 2).as_bytes(), "{what}");
        }
        // (Garbage shorter than a block header is a torn tail too: no block can be there.)
        let tail = matches!(what, "truncate mid-block" | "append garbage");
        assert_eq!(rec.truncated.is_some(), tail, "{what}: {rec:?}");
        assert_eq!(rec.quarantined.len(), usize::from(!tail), "{what}: {rec:?}");
        let aside = dir.join(format!(
            "0000000000000000.seg.at-{at}.{}",
            if tail { "torn" } else { "quarantined" }
        ));
        assert_eq!(
            std::fs::read(&aside).unwrap(),
            b[at as usize..],
            "{what}: the bytes after the damage are kept"
        );
    }
}

/// A segment index is not part of the chain: one rewritten without a variable's keys (its CRC
/// made anew) hides that variable's records from `jcs log --var` while every block verifies. `jcs verify`
/// rebuilds each index a query would use and reports the wrong one (exit 1); once it is
/// removed and rebuilt, the answer is whole again.
#[test]
fn verify_finds_an_index_that_hides_records() {
    use model::at::{At, Op, Status, VarDef};
    use record::Record;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("journal");
    let mut j = journal_in(&dir, 2048);
    j.append(&[Record::Vars(vec![
        (1, VarDef::Memory { ve: 1 }),
        (2, VarDef::Memory { ve: 2 }),
    ])
    .encode()])
        .unwrap();
    for i in 0..60u64 {
        let ve = 1 + i % 2;
        let at = At {
            time_ns: 1_000_000 + i,
            ve,
            pid: 10,
            tid: 10,
            op: Op::Write,
            status: Status::Committed,
            src: ve as u32,
            dst: 0,
            off: 0,
            len: 1,
            result: 1,
        };
        j.append(&[Record::Ats(vec![at]).encode()]).unwrap();
    }
    drop(j);
    let store = store::Store::open(home.path()).unwrap();
    recorder::index::index_sealed(&dir, &store.catalog).unwrap();
    recorder::index::index_open(&dir, &store.catalog, &|| true, &[]).unwrap();
    let lines = |args: &[&str]| {
        let o = jcs(home.path(), args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).lines().count()
    };
    assert_eq!(lines(&["log", "--var", "ve:2", "--json"]), 30);
    let o = jcs(home.path(), &["verify", "--json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let checked = r["indexes"]["checked"].as_u64().unwrap();
    let segs = journal::segment_numbers(&journal::DirStorage::new(&dir).unwrap()).unwrap();
    assert_eq!(checked, segs.len() as u64, "{r}");
    assert!(segs.len() >= 3);
    // Segment 1's index, made anew without the keys of VE 2's memory.
    let storage = journal::DirStorage::new(&dir).unwrap();
    let bytes = journal::Storage::read(&storage, "0000000000000001.seg").unwrap();
    let hiding = journal::index::SegmentIndex::build(1, &bytes, |r, out| {
        record::keys_of(r, out);
        out.retain(|&k| k != record::key::var(2) && k != record::key::out_of(2));
    })
    .unwrap();
    let mut storage = storage;
    journal::index::write(&mut storage, &hiding).unwrap();
    // The attack works: fewer of VE 2's records, and every block still verifies.
    let hidden = lines(&["log", "--var", "ve:2", "--json"]);
    assert!(hidden < 30, "{hidden}");
    let o = jcs(home.path(), &["verify", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r["first_problem"].is_null(), "{r}");
    assert_eq!(
        r["indexes"]["wrong"],
        serde_json::json!(["0000000000000001.idx"]),
        "{r}"
    );
    let o = jcs(home.path(), &["verify"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("PROBLEM index 0000000000000001.idx does not match")
            && !text.contains("\nok"),
        "{text}"
    );
    // Removed, rebuilt (as the daemon does): whole again, and verified.
    std::fs::remove_file(dir.join("0000000000000001.idx")).unwrap();
    recorder::index::index_sealed(&dir, &store.catalog).unwrap();
    assert_eq!(lines(&["log", "--var", "ve:2", "--json"]), 30);
    assert_eq!(jcs(home.path(), &["verify"]).status.code(), Some(0));
}

/// Queries resolve names and definitions through the catalog: a name row pointed at another
/// file (by hand, in SQLite) makes `jcs log --var file:/data/secret` answer about that file
/// while the chain verifies. `jcs verify` compares the catalog with the journal's definitions
/// and names: a name bound to another variable, or a variable defined as another thing, is a
/// problem (exit 1); rows the journal lacks are counted (a recorder writes them just before
/// its journal gets them).
#[test]
fn verify_finds_a_catalog_the_journal_contradicts() {
    use model::at::{At, Name, Op, Status, VarDef};
    use record::Record;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("journal");
    let mut j = journal_in(&dir, 1 << 20);
    let file = |ino: u64, name: &str| VarDef::Inode {
        dev: 9,
        ino,
        gen: 1,
        name: Some(name.into()),
    };
    let name = |time_ns: u64, var: u32, path: &str| Name {
        time_ns,
        ve: 1,
        var,
        path: path.into(),
        store: None,
        bound: true,
    };
    let write = |time_ns: u64, dst: u32| At {
        time_ns,
        ve: 1,
        pid: 10,
        tid: 10,
        op: Op::Write,
        status: Status::Committed,
        src: 1,
        dst,
        off: 0,
        len: 5,
        result: 5,
    };
    j.append(&[
        Record::Vars(vec![
            (1, VarDef::Memory { ve: 1 }),
            (2, file(100, "/data/secret")),
            (3, file(200, "/data/other")),
        ])
        .encode(),
        Record::Names(vec![
            name(1_000, 2, "/data/secret"),
            name(1_001, 3, "/data/other"),
        ])
        .encode(),
        Record::Ats(vec![write(2_000, 2), write(2_001, 3), write(2_002, 3)]).encode(),
    ])
    .unwrap();
    drop(j);
    let store = store::Store::open(home.path()).unwrap();
    recorder::index::index_open(&dir, &store.catalog, &|| true, &[]).unwrap();
    let lines = |args: &[&str]| {
        let o = jcs(home.path(), args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).lines().count()
    };
    assert_eq!(lines(&["log", "--var", "file:/data/secret", "--json"]), 1);
    let verified = || {
        let o = jcs(home.path(), &["verify", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (o.status.code(), v["catalog"].clone())
    };
    let (code, c) = verified();
    assert_eq!(code, Some(0), "{c}");
    assert_eq!(
        (c["definitions"].as_u64(), c["names"].as_u64()),
        (Some(3), Some(2)),
        "{c}"
    );
    assert_eq!(c["differs"], serde_json::json!([]), "{c}");
    let db = rusqlite::Connection::open(home.path().join("catalog.db")).unwrap();
    // A forged later binding: counted, not a contradiction (it may be a recorder's newest).
    db.execute(
        "INSERT INTO names (time_ns, ve, var, path, store, bound) VALUES (5000, 1, 3, '/data/x', NULL, 1)",
        [],
    )
    .unwrap();
    let (code, c) = verified();
    assert_eq!((code, c["extra_names"].as_u64()), (Some(0), Some(1)), "{c}");
    // The secret's name pointed at the other file: the attack works...
    db.execute("UPDATE names SET var = 3 WHERE path = '/data/secret'", [])
        .unwrap();
    assert_eq!(lines(&["log", "--var", "file:/data/secret", "--json"]), 2);
    // ... and verify says so.
    let (code, c) = verified();
    assert_eq!(code, Some(1), "{c}");
    let differs = c["differs"].to_string();
    assert!(differs.contains("name /data/secret in VE 1"), "{c}");
    let o = jcs(home.path(), &["verify"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("PROBLEM catalog: name /data/secret") && !text.contains("\nok"),
        "{text}"
    );
    // Put back; then the variable's definition changed instead.
    db.execute("UPDATE names SET var = 2 WHERE path = '/data/secret'", [])
        .unwrap();
    assert_eq!(verified().0, Some(0));
    let forged = serde_json::to_string(&file(200, "/data/secret")).unwrap();
    db.execute("UPDATE vars SET def = ?1 WHERE id = 2", [forged])
        .unwrap();
    let (code, c) = verified();
    assert_eq!(code, Some(1), "{c}");
    assert!(c["differs"].to_string().contains("variable 2"), "{c}");
    // A journal without its store (--dir) has no catalog to compare.
    let o = jcs(
        home.path(),
        &["verify", "--json", "--dir", dir.to_str().unwrap()],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["catalog"].is_null(), "{v}");
}
