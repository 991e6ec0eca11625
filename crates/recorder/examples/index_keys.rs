//! How fast a segment's index is built from its records' keys, as the recorder's indexer does
//! it (each record decoded whole, `Record::keys`), on segment SEG of journal DIR. The time is
//! the zstd decompression of the blocks and the transactions' decoding (`model::at::
//! decode_batch`, half of it on a journal of writes).
//!   cargo run --release -p recorder --example index_keys -- DIR [SEG] [ROUNDS]
use journal::index::SegmentIndex;
use journal::{DirStorage, Storage};

fn main() {
    let mut a = std::env::args().skip(1);
    let dir = a.next().expect("usage: index_keys DIR [SEG] [ROUNDS]");
    let seg: u64 = a.next().map_or(0, |s| s.parse().expect("SEG: a number"));
    let rounds: usize = a.next().map_or(5, |s| s.parse().expect("ROUNDS: a number"));
    let storage = DirStorage::new(std::path::Path::new(&dir)).expect("open the journal");
    let bytes = storage
        .read(&journal::journal::segment_name(seg))
        .expect("read the segment");
    let mut records = 0u64;
    SegmentIndex::build_prefix(seg, &bytes, |_, _| records += 1).expect("a segment");
    for round in 1..=rounds {
        let t = std::time::Instant::now();
        let whole = SegmentIndex::build_prefix(seg, &bytes, record::keys_of).unwrap();
        let decoded = t.elapsed();
        println!(
            "round {round}: {records} records, {} bytes, {} blocks: decode + keys {:.2} ms",
            bytes.len(),
            whole.blocks.len(),
            decoded.as_secs_f64() * 1e3,
        );
    }
}
