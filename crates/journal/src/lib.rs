//! The JCS journal: an append-only store of records in segments of blocks. Each block is
//! zstd-compressed, carries CRC32C checksums, and extends one blake3 hash chain that runs
//! across all blocks and segments, so any change to committed data is detected. Appends are
//! durable (fdatasync) before they are acknowledged; [`writer::Writer`] adds a writer thread
//! with a bounded queue and group commit.
//!
//! The format is specified in `docs/journal-format.md`. All I/O goes through
//! [`storage::Storage`]; this crate does not know what the records mean (the model's
//! transactions are encoded by their producer). It does not call the OS except through
//! [`storage::DirStorage`].

pub mod format;
pub mod index;
pub mod journal;
pub mod ship;
pub mod storage;
pub mod summary;
pub mod writer;

pub use journal::{
    read_all, read_all_tolerant, read_segment_from, read_segment_tolerant, sealed_segments,
    segment_numbers, segments_bytes, verify, verify_indexed, verify_with_progress, Appended,
    Journal, JournalError, Options, Recovery, Skipped, VerifyProgress, VerifyReport,
};
pub use storage::{DirStorage, MemStorage, Storage};
