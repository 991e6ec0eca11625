//! Any bytes as a journal record: decoded without panicking, and what decodes re-encodes to
//! a record that decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use record::Record;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Record::decode(data) {
        assert_eq!(Record::decode(&r.encode()).as_ref(), Ok(&r));
    }
});
