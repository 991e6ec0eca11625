//! Frozen version-1 journal files: every later version must still read them. Regenerate (only
//! on purpose, reviewing the diff) with `UPDATE_EXPECT=1 cargo test -p journal --test fixtures_v1`.

use journal::format::{hex, Codec};
use journal::{read_all, verify, DirStorage, Journal, Options};
use std::path::Path;

const HEAD: &str = "see fixtures/v1/HEAD";

fn records() -> Vec<Vec<Vec<u8>>> {
    vec![
        vec![b"first".to_vec(), Vec::new(), vec![0xff; 40]],
        vec!["ü-utf8".as_bytes().to_vec()],
        (0..50u8).map(|i| vec![i; usize::from(i)]).collect(),
    ]
}

#[test]
fn v1_fixture_still_reads_and_verifies() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1");
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        let _ = std::fs::remove_dir_all(&dir);
        let opts = Options {
            segment_max_bytes: 400,
            codec: Codec::Zstd,
            zstd_level: 3,
        };
        let (mut j, _) = Journal::open(DirStorage::new(&dir).unwrap(), opts).unwrap();
        for block in records() {
            j.append(&block).unwrap();
        }
        drop(j);
        // Reopened with another codec: the last block is stored uncompressed, in a new
        // segment because the first one is full.
        let opts = Options {
            segment_max_bytes: 400,
            codec: Codec::None,
            zstd_level: 3,
        };
        let (mut raw, _) = Journal::open(DirStorage::new(&dir).unwrap(), opts).unwrap();
        raw.append(&[b"uncompressed".repeat(3)]).unwrap();
        std::fs::write(dir.join("HEAD"), hex(&raw.head())).unwrap();
    }
    let s = DirStorage::new(&dir).unwrap();
    let v = verify(&s).unwrap();
    assert!(v.ok(), "{v:?}");
    let head = std::fs::read_to_string(dir.join("HEAD")).expect(HEAD);
    assert_eq!(
        v.head,
        head.trim(),
        "the chain head of the frozen journal changed"
    );
    let mut expect: Vec<Vec<u8>> = records().into_iter().flatten().collect();
    expect.push(b"uncompressed".repeat(3));
    let got: Vec<Vec<u8>> = read_all(&s).unwrap().into_iter().map(|(_, r)| r).collect();
    assert_eq!(got, expect);
    assert!(v.segments >= 2, "the fixture spans segments");
}
