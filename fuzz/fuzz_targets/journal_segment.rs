//! Any bytes as a journal segment: scanning, decoding and recovery must never panic or
//! allocate beyond the format's limits, and what recovery keeps must read back whole.
#![no_main]

use journal::{format, Journal, MemStorage, Options, Storage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(scan) = journal::journal::scan_segment(data) {
        for (off, h) in &scan.blocks {
            let _ = format::block_records(data, *off, h);
        }
    }
    let mut s = MemStorage::default();
    s.append("0000000000000000.seg", data).unwrap();
    s.sync("0000000000000000.seg").unwrap();
    if let Ok((j, _)) = Journal::open(s, Options::default()) {
        // The kept prefix is a valid segment: every block in it reads back.
        let _ = journal::verify(j.storage()).unwrap();
        journal::read_all(j.storage()).expect("recovery kept a segment that does not read back");
    }
});
