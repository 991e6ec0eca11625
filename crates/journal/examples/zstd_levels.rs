//! How fast each zstd level compresses a real journal's blocks, and how small: the records of
//! segment SEG of journal DIR, in blocks of about 64 KiB as the writer makes them.
//!   cargo run --release -p journal --example zstd_levels -- DIR [SEG]
fn main() {
    let mut a = std::env::args().skip(1);
    let dir = a.next().expect("DIR");
    let seg: u64 = a.next().map_or(0, |s| s.parse().expect("SEG"));
    let storage = journal::DirStorage::new(std::path::Path::new(&dir)).expect("journal");
    let (records, _) = journal::read_segment_from(&storage, seg, 0).expect("segment");
    let mut blocks: Vec<Vec<u8>> = vec![Vec::new()];
    for (_, r) in &records {
        let b = blocks.last_mut().unwrap();
        b.extend_from_slice(&(r.len() as u32).to_le_bytes());
        b.extend_from_slice(r);
        if b.len() >= 64 << 10 {
            blocks.push(Vec::new());
        }
    }
    let raw: usize = blocks.iter().map(Vec::len).sum();
    println!(
        "{} records, {} blocks, {raw} bytes raw",
        records.len(),
        blocks.len()
    );
    for level in [-1, 1, 2, 3] {
        let mut c = zstd::bulk::Compressor::new(level).unwrap();
        let t = std::time::Instant::now();
        let mut out = 0;
        for b in &blocks {
            out += c.compress(b).unwrap().len();
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "level {level:>2}: {:>6.1} MB/s, {:>5.1} ns per record, ratio {:.2}",
            raw as f64 / s / 1e6,
            s * 1e9 / records.len() as f64,
            raw as f64 / out as f64
        );
    }
}
