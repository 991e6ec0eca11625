//! Any bytes as kernel records, and any sequence of records into the translator: no panic.
//! Records are variable-length (the whole struct, or its head alone): a selector byte before
//! each picks the head, the whole struct, or any length in between or around them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::decode::{decode, EVENT_SIZE, HEAD_SIZE};
use monitor::translate::Translator;

fuzz_target!(|data: &[u8]| {
    let mut t = Translator::new(1, 0);
    let mut out = Vec::new();
    let mut rest = data;
    while let Some((&sel, tail)) = rest.split_first() {
        let len = match sel % 4 {
            0 => HEAD_SIZE,
            1 | 2 => EVENT_SIZE,
            _ => usize::from(sel) * 2,
        }
        .min(tail.len());
        let (chunk, next) = tail.split_at(len);
        if let Ok(e) = decode(chunk) {
            t.watch(e.cgroup_id, 1);
            t.push(&e, &mut out);
        }
        rest = next;
    }
});
