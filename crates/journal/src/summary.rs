//! Summary files: sealed segments `a..=b` replaced by a file of (fewer) records that stand for
//! theirs, e.g. summarized transactions. The journal does not know what the records mean.
//!
//! `{a:016x}-{b:016x}.sum`: a 132-byte header — magic `JCSJSUM1`, version, the segments it
//! replaces, the block and sequence numbers they spanned, the chain hash before segment `a`
//! and after segment `b` — and ordinary blocks (format.rs), numbered from 0, whose chain starts
//! at blake3(header). `verify` checks the header against the chain so far and the file's own
//! chain, then continues from the recorded head after `b`: a journal with summaries still
//! verifies end to end, and its head is unchanged by summarizing. What the replaced segments
//! held is gone; the head they ended in stays recorded.
//!
//! Crash safety of [`replace_segments`]: the file is written as `.sum.tmp`, synced, read back
//! and verified, renamed to `.sum` (directory synced), and only then are the segments (and
//! their indexes) deleted. A `.sum.tmp` is never read (and removed by the next replace); a
//! `.sum` whose segments still exist wins over them (they are deleted by the next replace or
//! `Journal::open`).

use crate::format::{block_records, decode_block_at, encode_block, Codec, FormatError, Hash};
use crate::journal::{scan_segment, segment_name, JournalError};
use crate::storage::Storage;

pub const SUMMARY_MAGIC: &[u8; 8] = b"JCSJSUM1";
pub const SUMMARY_HEADER_LEN: usize = 132;

pub fn summary_name(first: u64, last: u64) -> String {
    format!("{first:016x}-{last:016x}.sum")
}

/// The segments a summary file replaces, from its name.
pub fn summary_range(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".sum")?;
    let (a, b) = stem.split_once('-')?;
    if a.len() != 16 || b.len() != 16 {
        return None;
    }
    Some((
        u64::from_str_radix(a, 16).ok()?,
        u64::from_str_radix(b, 16).ok()?,
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SummaryHeader {
    pub first_segment: u64,
    pub last_segment: u64,
    /// The first block and sequence numbers of segment `first_segment`.
    pub first_block: u64,
    pub first_seq: u64,
    /// The block and sequence numbers after segment `last_segment`.
    pub next_block: u64,
    pub next_seq: u64,
    /// The chain hash before the first replaced block, and after the last.
    pub start_chain: Hash,
    pub end_chain: Hash,
}

impl SummaryHeader {
    pub fn encode(&self) -> [u8; SUMMARY_HEADER_LEN] {
        let mut b = [0u8; SUMMARY_HEADER_LEN];
        b[0..8].copy_from_slice(SUMMARY_MAGIC);
        b[8..12].copy_from_slice(&1u32.to_le_bytes());
        let nums = [
            self.first_segment,
            self.last_segment,
            self.first_block,
            self.first_seq,
            self.next_block,
            self.next_seq,
        ];
        for (i, n) in nums.iter().enumerate() {
            b[16 + 8 * i..24 + 8 * i].copy_from_slice(&n.to_le_bytes());
        }
        b[64..96].copy_from_slice(&self.start_chain);
        b[96..128].copy_from_slice(&self.end_chain);
        let crc = crc32c::crc32c(&b[0..128]);
        b[128..132].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<SummaryHeader, FormatError> {
        if b.len() < SUMMARY_HEADER_LEN {
            return Err(FormatError::Truncated {
                offset: 0,
                need: SUMMARY_HEADER_LEN,
                have: b.len(),
            });
        }
        if &b[0..8] != SUMMARY_MAGIC {
            return Err(FormatError::Magic { offset: 0 });
        }
        if crc32c::crc32c(&b[0..128]) != u32::from_le_bytes(b[128..132].try_into().expect("4")) {
            return Err(FormatError::HeaderCrc { offset: 0 });
        }
        let v = u32::from_le_bytes(b[8..12].try_into().expect("4"));
        if v != 1 {
            return Err(FormatError::Version(v));
        }
        let n = |i: usize| u64::from_le_bytes(b[16 + 8 * i..24 + 8 * i].try_into().expect("8"));
        let mut start_chain = [0u8; 32];
        start_chain.copy_from_slice(&b[64..96]);
        let mut end_chain = [0u8; 32];
        end_chain.copy_from_slice(&b[96..128]);
        Ok(SummaryHeader {
            first_segment: n(0),
            last_segment: n(1),
            first_block: n(2),
            first_seq: n(3),
            next_block: n(4),
            next_seq: n(5),
            start_chain,
            end_chain,
        })
    }

    /// Where the file's own chain starts.
    fn chain0(&self) -> Hash {
        *blake3::hash(&self.encode()).as_bytes()
    }
}

/// Reads a whole summary file: its header and records, every block and the file's own chain
/// checked.
pub fn read_summary(bytes: &[u8]) -> Result<(SummaryHeader, Vec<Vec<u8>>), FormatError> {
    let h = SummaryHeader::decode(bytes)?;
    let mut prev = h.chain0();
    let mut off = SUMMARY_HEADER_LEN;
    let mut out = Vec::new();
    let mut expected = 0u64;
    while off < bytes.len() {
        let (bh, len) = decode_block_at(bytes, off, Some(&prev))?;
        if bh.number != expected {
            return Err(FormatError::Order {
                block: bh.number,
                expected,
            });
        }
        out.extend(block_records(bytes, off, &bh)?);
        prev = bh.chain;
        expected += 1;
        off += len;
    }
    Ok((h, out))
}

/// What a replacement did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    pub name: String,
    /// Bytes of the segments replaced, and of the summary file.
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Replaces sealed segments `first..=last` (intact, contiguous) by a summary file holding
/// `records`, crash-safely (module docs). The caller must not replace the open segment.
pub fn replace_segments<S: Storage>(
    storage: &mut S,
    first: u64,
    last: u64,
    records: &[Vec<u8>],
) -> Result<Replaced, JournalError> {
    let io = |what: String| move |source| JournalError::Io { what, source };
    let mut bytes_before = 0;
    let mut header: Option<SummaryHeader> = None;
    for n in first..=last {
        let name = segment_name(n);
        let b = storage.read(&name).map_err(io(format!("read {name}")))?;
        bytes_before += b.len() as u64;
        let scan = scan_segment(&b).map_err(|error| JournalError::Segment {
            segment: name.clone(),
            error,
        })?;
        if let Some(error) = scan.error.clone() {
            return Err(JournalError::Segment {
                segment: name,
                error,
            });
        }
        let (next_block, next_seq) = scan.next();
        header = Some(match header {
            None => SummaryHeader {
                first_segment: first,
                last_segment: last,
                first_block: scan.header.first_block,
                first_seq: scan.header.first_seq,
                next_block,
                next_seq,
                start_chain: scan.header.start_chain,
                end_chain: scan.head,
            },
            Some(h)
                if h.end_chain == scan.header.start_chain
                    && h.next_block == scan.header.first_block =>
            {
                SummaryHeader {
                    next_block,
                    next_seq,
                    end_chain: scan.head,
                    ..h
                }
            }
            Some(_) => {
                return Err(JournalError::Segment {
                    segment: name,
                    error: FormatError::Chain {
                        block: scan.header.first_block,
                    },
                })
            }
        });
    }
    let h = header.ok_or_else(|| {
        io("nothing to replace".into())(std::io::Error::from(std::io::ErrorKind::InvalidInput))
    })?;
    let (name, bytes_after) = write_summary(storage, &h, records)?;
    for n in first..=last {
        storage
            .remove(&segment_name(n))
            .map_err(io(format!("remove {}", segment_name(n))))?;
        let _ = storage.remove(&crate::index::index_name(n));
    }
    Ok(Replaced {
        name,
        bytes_before,
        bytes_after,
    })
}

/// Replaces the records of the summary file of segments `first..=last` (a coarser tier of
/// what it holds: `jcs daemon --retain`), crash-safely: the new file is written as `.sum.tmp`,
/// verified, and renamed over the old one. Its header — the segments, blocks and chain hashes
/// it stands for — stays as it was, so the journal verifies as before.
pub fn replace_summary<S: Storage>(
    storage: &mut S,
    first: u64,
    last: u64,
    records: &[Vec<u8>],
) -> Result<Replaced, JournalError> {
    let name = summary_name(first, last);
    let old = storage.read(&name).map_err(|source| JournalError::Io {
        what: format!("read {name}"),
        source,
    })?;
    let (h, _) = read_summary(&old).map_err(|error| JournalError::Segment {
        segment: name.clone(),
        error,
    })?;
    let (name, bytes_after) = write_summary(storage, &h, records)?;
    Ok(Replaced {
        name,
        bytes_before: old.len() as u64,
        bytes_after,
    })
}

/// Writes the summary file of header `h` holding `records` (`.sum.tmp`, synced, read back and
/// checked, renamed into place); its name and length.
fn write_summary<S: Storage>(
    storage: &mut S,
    h: &SummaryHeader,
    records: &[Vec<u8>],
) -> Result<(String, u64), JournalError> {
    let io = |what: String| move |source| JournalError::Io { what, source };
    let (first, last) = (h.first_segment, h.last_segment);
    // Blocks of at most 4096 records or 8 MiB.
    let mut file = h.encode().to_vec();
    let mut prev = h.chain0();
    let mut number = 0u64;
    let mut seq = h.first_seq;
    let mut i = 0;
    while i < records.len() {
        let mut j = i;
        let mut size = 0;
        while j < records.len() && j - i < 4096 && size + records[j].len() < 8 << 20 {
            size += records[j].len();
            j += 1;
        }
        let j = j.max(i + 1);
        let (bh, bytes) = encode_block(&prev, number, seq, &records[i..j], Codec::Zstd, 9)?;
        file.extend_from_slice(&bytes);
        prev = bh.chain;
        number += 1;
        seq += (j - i) as u64;
        i = j;
    }
    let name = summary_name(first, last);
    let tmp = format!("{name}.tmp");
    let _ = storage.remove(&tmp);
    storage
        .append(&tmp, &file)
        .map_err(io(format!("write {tmp}")))?;
    storage.sync(&tmp).map_err(io(format!("sync {tmp}")))?;
    // Read back what is on disk before anything is deleted.
    let back = storage.read(&tmp).map_err(io(format!("read {tmp}")))?;
    let (h2, recs) = read_summary(&back).map_err(|error| JournalError::Segment {
        segment: tmp.clone(),
        error,
    })?;
    if h2 != *h || recs.len() != records.len() {
        return Err(io(format!("{tmp} does not read back as written"))(
            std::io::Error::from(std::io::ErrorKind::InvalidData),
        ));
    }
    storage
        .rename(&tmp, &name)
        .map_err(io(format!("rename {tmp}")))?;
    Ok((name, file.len() as u64))
}

/// Removes what an interrupted replacement left: `.sum.tmp` files, and segments that a
/// complete `.sum` already replaces.
pub fn clean_up<S: Storage>(storage: &mut S) -> Result<Vec<String>, JournalError> {
    let names = storage.list().map_err(|source| JournalError::Io {
        what: "list the journal".into(),
        source,
    })?;
    let mut removed = Vec::new();
    for n in &names {
        if n.ends_with(".sum.tmp") {
            removed.push(n.clone());
        }
        if let Some((a, b)) = summary_range(n) {
            for s in a..=b {
                for f in [segment_name(s), crate::index::index_name(s)] {
                    if names.contains(&f) {
                        removed.push(f);
                    }
                }
            }
        }
    }
    for n in &removed {
        storage.remove(n).map_err(|source| JournalError::Io {
            what: format!("remove {n}"),
            source,
        })?;
    }
    Ok(removed)
}
