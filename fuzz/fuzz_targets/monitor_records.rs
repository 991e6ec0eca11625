//! Any bytes as a kernel record, and any sequence of records into the translator: no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::decode::{decode, EVENT_SIZE};
use monitor::translate::Translator;

fuzz_target!(|data: &[u8]| {
    let mut t = Translator::new(1, 0);
    let mut out = Vec::new();
    for chunk in data.chunks(EVENT_SIZE) {
        if let Ok(e) = decode(chunk) {
            t.watch(e.cgroup_id, 1);
            t.push(&e, &mut out);
        }
    }
});
