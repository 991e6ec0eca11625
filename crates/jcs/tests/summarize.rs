//! `jcs summarize` (no root needed: journals written through the journal's own API): T1 is
//! never larger than what it replaces — segments whose transfers do not repeat stay as they
//! are — and a journal whose transfers repeat shrinks.

use model::at::{At, Op, Status, VarDef};
use record::Record;

/// A journal in `home/journal` with small segments: VE 1 writes `n` times to one file, each
/// write at a new offset (scattered) (`repeat`: the same 4 KiB read again and again instead).
fn journal(home: &std::path::Path, n: u64, repeat: bool) {
    let (mut j, _) = journal::Journal::open(
        journal::DirStorage::new(home.join("journal")).unwrap(),
        journal::Options {
            segment_max_bytes: 4 << 10,
            ..journal::Options::default()
        },
    )
    .unwrap();
    j.append(&[Record::Vars(vec![
        (1, VarDef::Memory { ve: 1 }),
        (
            2,
            VarDef::File {
                dev: 1,
                ino: 2,
                path: Some("/data/f".into()),
            },
        ),
    ])
    .encode()])
        .unwrap();
    let mut t = 1_795_000_000_000_000_000u64;
    for chunk in 0..n / 1000 {
        let ats: Vec<At> = (0..1000u64)
            .map(|i| {
                t += 1000;
                let k = chunk * 1000 + i;
                let (op, src, dst, off) = if repeat {
                    (Op::Read, 2, 1, 0)
                } else {
                    (Op::Write, 1, 2, (k * 7919 % 1_000_003) * 7)
                };
                At {
                    time_ns: t,
                    ve: 1,
                    pid: 10,
                    tid: 10,
                    op,
                    status: Status::Committed,
                    src,
                    dst,
                    off,
                    len: if repeat { 4096 } else { 7 },
                    result: 7,
                }
            })
            .collect();
        j.append(&[Record::Ats(ats).encode()]).unwrap();
    }
}

fn summarize(home: &std::path::Path) -> serde_json::Value {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_jcs"))
        .args([
            "--home",
            home.to_str().unwrap(),
            "summarize",
            "--tier",
            "T1",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn bytes(home: &std::path::Path) -> u64 {
    std::fs::read_dir(home.join("journal"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn t1_never_grows_the_journal_and_shrinks_repeats() {
    // Writes at new offsets do not merge: the summaries would be larger; kept as they are.
    let h = tempfile::tempdir().unwrap();
    journal(h.path(), 200_000, false);
    let before = bytes(h.path());
    let names: Vec<String> = std::fs::read_dir(h.path().join("journal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.len() >= 3, "sealed segments: {names:?}");
    let r = summarize(h.path());
    assert!(!r["kept"].as_array().unwrap().is_empty(), "{r}");
    assert!(
        r["kept"][0]["summary_bytes"].as_u64() >= r["kept"][0]["segment_bytes"].as_u64(),
        "{r}"
    );
    assert_eq!(r["segments"], 0, "{r}");
    assert_eq!(bytes(h.path()), before, "nothing rewritten");
    // The same number of reads of one block: they merge, the journal shrinks.
    let h = tempfile::tempdir().unwrap();
    journal(h.path(), 200_000, true);
    let before = bytes(h.path());
    let r = summarize(h.path());
    assert!(r["segments"].as_u64().unwrap() >= 1, "{r}");
    assert!(
        r["bytes_after"].as_u64().unwrap() < r["bytes_before"].as_u64().unwrap(),
        "{r}"
    );
    assert!(bytes(h.path()) < before);
}

/// A shipper's mark (`journal::ship`): the segments it has not sent whole are not summarized
/// (and the summary says which shipper holds them), and a summary file it is still sending is
/// not made coarser by retention; without the mark both happen (the negative control).
#[test]
fn what_a_shipper_has_not_sent_is_neither_summarized_nor_made_coarser() {
    let h = tempfile::tempdir().unwrap();
    journal(h.path(), 200_000, true);
    let dir = h.path().join("journal");
    let mut storage = journal::DirStorage::new(&dir).unwrap();
    let sealed = journal::sealed_segments(&storage).unwrap();
    assert!(sealed.len() >= 4, "{sealed:?}");
    let held = sealed[2];
    journal::ship::write_mark(&mut storage, "X", held).unwrap();
    let r = summarize(h.path());
    assert_eq!(r["unshipped"], serde_json::json!(["X", held]), "{r}");
    let segs = journal::segment_numbers(&storage).unwrap();
    assert!(
        sealed
            .iter()
            .filter(|&&s| s >= held)
            .all(|s| segs.contains(s)),
        "kept: {segs:?}"
    );
    assert!(!segs.contains(&sealed[0]), "summarized: {segs:?}");
    // The shipper is back in the first summary file: retention leaves it as it is.
    let first = journal::summary::summary_name(sealed[0], held - 1);
    assert!(dir.join(&first).exists());
    journal::ship::write_mark(&mut storage, "X", sealed[0]).unwrap();
    let policy = query::summarize::Retention::parse("T4 after 1s").unwrap();
    let far = 4_000_000_000_000_000_000u64;
    let r = query::summarize::retain(&dir, &policy, far, &mut |_| {}).unwrap();
    assert!(r.coarsened.is_empty(), "{:?}", r.coarsened);
    assert!(
        r.rewritten.iter().all(|w| w.files.is_empty()),
        "{:?}",
        r.rewritten
    );
    // Without the mark: both happen.
    std::fs::remove_file(dir.join("ship-X.mark")).unwrap();
    let r = query::summarize::retain(&dir, &policy, far, &mut |_| {}).unwrap();
    assert!(!r.coarsened.is_empty(), "{r:?}");
    assert!(r.rewritten.iter().any(|w| !w.files.is_empty()), "{r:?}");
}
