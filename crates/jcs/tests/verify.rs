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

#[test]
fn verify_reports_the_head_and_the_first_bad_block() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("journal");
    let opts = journal::Options {
        segment_max_bytes: 300,
        ..Default::default()
    };
    let (mut j, _) = journal::Journal::open(journal::DirStorage::new(&dir).unwrap(), opts).unwrap();
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
