//! Opening (with recovery), appending and verifying a journal over a [`Storage`].

use crate::format::{
    block_records, decode_block_at, encode_block, hex, BlockHeader, Codec, FormatError, Hash,
    SegmentHeader, BLOCK_MAGIC, SEGMENT_HEADER_LEN,
};
use crate::storage::Storage;
use serde::Serialize;
use std::io;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal storage: {what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("journal format: {0}")]
    Format(#[from] FormatError),
    #[error("journal segment {segment}: {error}")]
    Segment { segment: String, error: FormatError },
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> JournalError {
    let what = what.into();
    move |source| JournalError::Io { what, source }
}

/// How the journal writes.
#[derive(Debug, Clone)]
pub struct Options {
    /// A segment is sealed once it is at least this long.
    pub segment_max_bytes: u64,
    pub codec: Codec,
    pub zstd_level: i32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_max_bytes: 64 << 20,
            codec: Codec::Zstd,
            zstd_level: 3,
        }
    }
}

pub fn segment_name(number: u64) -> String {
    format!("{number:016x}.seg")
}

fn segment_number(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".seg")?;
    if stem.len() != 16 {
        return None;
    }
    u64::from_str_radix(stem, 16).ok()
}

/// The journal's segment files, in number order (quarantined files are not segments).
fn segments<S: Storage>(storage: &S) -> Result<Vec<(u64, String)>, JournalError> {
    let mut v: Vec<(u64, String)> = storage
        .list()
        .map_err(io_err("list segments"))?
        .into_iter()
        .filter_map(|n| segment_number(&n).map(|k| (k, n)))
        .collect();
    v.sort();
    Ok(v)
}

/// A file of the journal in chain order: a segment, or a summary file replacing segments.
pub(crate) enum Unit {
    Segment(String),
    Summary(String),
}

/// The journal's segments and summary files in chain order; segments that a summary file
/// replaces (an interrupted replacement) are left out.
pub(crate) fn units<S: Storage>(storage: &S) -> Result<Vec<Unit>, JournalError> {
    let names = storage.list().map_err(io_err("list the journal"))?;
    let sums: Vec<(u64, u64, String)> = names
        .iter()
        .filter_map(|n| crate::summary::summary_range(n).map(|(a, b)| (a, b, n.clone())))
        .collect();
    let mut v: Vec<(u64, Unit)> = segments(storage)?
        .into_iter()
        .filter(|(n, _)| !sums.iter().any(|(a, b, _)| a <= n && n <= b))
        .map(|(n, name)| (n, Unit::Segment(name)))
        .collect();
    v.extend(sums.into_iter().map(|(a, _, n)| (a, Unit::Summary(n))));
    v.sort_by_key(|(n, _)| *n);
    Ok(v.into_iter().map(|(_, u)| u).collect())
}

/// A block's records with their sequence numbers, the first being `first_seq`.
fn numbered(first_seq: u64, recs: Vec<Vec<u8>>) -> impl Iterator<Item = (u64, Vec<u8>)> {
    recs.into_iter()
        .enumerate()
        .map(move |(i, r)| (first_seq + i as u64, r))
}

/// Records with their sequence numbers.
pub type Records = Vec<(u64, Vec<u8>)>;

/// The numbers of the journal's segments, ascending. All but the last are sealed: a new
/// segment is only started once the one before it is full.
pub fn segment_numbers<S: Storage>(storage: &S) -> Result<Vec<u64>, JournalError> {
    Ok(segments(storage)?.into_iter().map(|(n, _)| n).collect())
}

/// The numbers of the sealed segments: all but the last (the open one, which the writer may
/// still append to). The one statement of that rule.
pub fn sealed_segments<S: Storage>(storage: &S) -> Result<Vec<u64>, JournalError> {
    let mut v = segment_numbers(storage)?;
    v.pop();
    Ok(v)
}

/// The bytes of the journal's segments on disk (headers included; not their indexes).
pub fn segments_bytes<S: Storage>(storage: &S) -> Result<u64, JournalError> {
    let mut bytes = 0;
    for seg in segment_numbers(storage)? {
        let name = segment_name(seg);
        bytes += storage.len(&name).map_err(io_err(name))?;
    }
    Ok(bytes)
}

/// The records of segment `segment` in the blocks that start at or after `offset` (0: the
/// first block), and the offset after the last whole block read. Stops quietly at the end of
/// what is written so far (a block being appended is read next time); checks each block's
/// checksums, not the chain (that is [`verify`]'s job).
pub fn read_segment_from<S: Storage>(
    storage: &S,
    segment: u64,
    offset: u64,
) -> Result<(Records, u64), JournalError> {
    let name = segment_name(segment);
    let start = offset.max(SEGMENT_HEADER_LEN as u64);
    let bytes = storage
        .read_range(&name, start, u64::MAX)
        .map_err(io_err(format!("read {name}")))?;
    let mut out = Vec::new();
    let mut off = 0usize;
    while off < bytes.len() {
        let (h, len) = match decode_block_at(&bytes, off, None) {
            Ok(x) => x,
            Err(FormatError::Truncated { .. }) => break,
            Err(error) => {
                return Err(JournalError::Segment {
                    segment: name,
                    error,
                })
            }
        };
        let recs = block_records(&bytes, off, &h).map_err(|error| JournalError::Segment {
            segment: name.clone(),
            error,
        })?;
        out.extend(numbered(h.first_seq, recs));
        off += len;
    }
    Ok((out, start + off as u64))
}

/// A damaged stretch a tolerant reader skipped: in `file`, from `offset` to the next intact
/// block (`resumed_at`; None: nothing intact after it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Skipped {
    pub file: String,
    pub offset: u64,
    pub resumed_at: Option<u64>,
    pub what: String,
}

/// The blocks of `bytes` (file `name`, whose byte 0 is at `base` in the file) from `off` on,
/// each checked by its CRCs (not the chain: that is `verify`'s), skipping damaged stretches to
/// the next intact block. A block that runs past the end stops the reading quietly when
/// `open` (a block being appended), and is a skipped stretch otherwise. Returns the records,
/// where reading stopped (in the file), and what was skipped.
fn read_blocks_tolerant(
    name: &str,
    bytes: &[u8],
    mut off: usize,
    base: u64,
    open: bool,
) -> (Records, u64, Vec<Skipped>) {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    while off < bytes.len() {
        let damage = match decode_block_at(bytes, off, None) {
            Ok((h, len)) => match block_records(bytes, off, &h) {
                Ok(recs) => {
                    out.extend(numbered(h.first_seq, recs));
                    off += len;
                    continue;
                }
                Err(e) => e,
            },
            Err(FormatError::Truncated { .. }) if open => break,
            Err(e) => e,
        };
        let next = intact_block_after(bytes, off);
        skipped.push(Skipped {
            file: name.to_string(),
            offset: base + off as u64,
            resumed_at: next.map(|n| base + n as u64),
            what: damage.to_string(),
        });
        match next {
            Some(n) => off = n,
            None => {
                off = bytes.len();
                break;
            }
        }
    }
    (out, base + off as u64, skipped)
}

/// Like [`read_segment_from`], but a damaged block does not stop the reading: it is skipped
/// (and reported) up to the next intact block. For readers that must say what they could not
/// read rather than fail (`jcs log`).
pub fn read_segment_tolerant<S: Storage>(
    storage: &S,
    segment: u64,
    offset: u64,
) -> Result<(Records, u64, Vec<Skipped>), JournalError> {
    let name = segment_name(segment);
    let start = offset.max(SEGMENT_HEADER_LEN as u64);
    let bytes = storage
        .read_range(&name, start, u64::MAX)
        .map_err(io_err(format!("read {name}")))?;
    Ok(read_blocks_tolerant(&name, &bytes, 0, start, true))
}

/// Every record of the journal, in order, skipping damaged stretches (each reported) instead
/// of stopping at them: what `jcs log`, `stats` and `track` read.
pub fn read_all_tolerant<S: Storage>(storage: &S) -> Result<(Records, Vec<Skipped>), JournalError> {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let units = units(storage)?;
    let last = units.len().saturating_sub(1);
    for (i, unit) in units.into_iter().enumerate() {
        let name = match unit {
            Unit::Segment(n) => n,
            Unit::Summary(name) => {
                let bytes = storage
                    .read(&name)
                    .map_err(io_err(format!("read {name}")))?;
                match crate::summary::read_summary(&bytes) {
                    Ok((h, recs)) => out.extend(numbered(h.first_seq, recs)),
                    Err(e) => skipped.push(Skipped {
                        file: name,
                        offset: 0,
                        resumed_at: None,
                        what: e.to_string(),
                    }),
                }
                continue;
            }
        };
        let bytes = storage
            .read(&name)
            .map_err(io_err(format!("read {name}")))?;
        if let Err(e) = SegmentHeader::decode(&bytes) {
            // Without its header the blocks can still be found by their magic.
            skipped.push(Skipped {
                file: name.clone(),
                offset: 0,
                resumed_at: intact_block_after(&bytes, 0).map(|n| n as u64),
                what: format!("segment header: {e}"),
            });
            if let Some(n) = intact_block_after(&bytes, 0) {
                let (r, _, s) = read_blocks_tolerant(&name, &bytes, n, 0, i == last);
                out.extend(r);
                skipped.extend(s);
            }
            continue;
        }
        let (r, _, s) = read_blocks_tolerant(&name, &bytes, SEGMENT_HEADER_LEN, 0, i == last);
        out.extend(r);
        skipped.extend(s);
    }
    Ok((out, skipped))
}

/// The result of reading one segment front to back.
#[derive(Debug)]
pub struct Scan {
    pub header: SegmentHeader,
    /// (offset, header) of each valid block, in order.
    pub blocks: Vec<(usize, BlockHeader)>,
    /// Where the valid prefix ends.
    pub valid_end: usize,
    /// The first problem after the valid prefix, if the segment does not end there.
    pub error: Option<FormatError>,
    /// The chain hash after the last valid block.
    pub head: Hash,
}

impl Scan {
    /// The block number and record sequence number that follow the valid prefix.
    pub fn next(&self) -> (u64, u64) {
        match self.blocks.last() {
            Some((_, h)) => (h.number + 1, h.first_seq + u64::from(h.count)),
            None => (self.header.first_block, self.header.first_seq),
        }
    }
}

/// Reads a segment, checking every block and the chain from its header's start hash.
pub fn scan_segment(bytes: &[u8]) -> Result<Scan, FormatError> {
    let header = SegmentHeader::decode(bytes)?;
    let mut off = SEGMENT_HEADER_LEN;
    let mut head = header.start_chain;
    let mut blocks = Vec::new();
    let mut error = None;
    let mut expected = header.first_block;
    let mut seq = header.first_seq;
    while off < bytes.len() {
        match decode_block_at(bytes, off, Some(&head)) {
            Ok((h, len)) if h.number != expected || h.first_seq != seq => {
                error = Some(FormatError::Order {
                    block: h.number,
                    expected,
                });
                let _ = len;
                break;
            }
            Ok((h, len)) => {
                head = h.chain;
                expected += 1;
                seq += u64::from(h.count);
                blocks.push((off, h));
                off += len;
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    Ok(Scan {
        header,
        blocks,
        valid_end: off,
        error,
        head,
    })
}

/// A name for bytes of segment `name` set aside (the whole segment, or its bytes from
/// `offset`), unused so far: nothing set aside is ever overwritten. Damage ends in
/// `.quarantined` (what `verify` reports), a torn tail's copy in `.torn`.
fn unique_name<S: Storage>(
    storage: &S,
    name: &str,
    offset: Option<usize>,
    suffix: &str,
) -> Result<String, JournalError> {
    let existing = storage.list().map_err(io_err("list the journal's files"))?;
    let base = match offset {
        None => name.to_string(),
        Some(o) => format!("{name}.at-{o}"),
    };
    for n in 0.. {
        let q = if n == 0 {
            format!("{base}.{suffix}")
        } else {
            format!("{base}.{n}.{suffix}")
        };
        if !existing.contains(&q) {
            return Ok(q);
        }
    }
    unreachable!("some number is unused")
}

/// Whether any intact block starts after `from` (so the damage is not just a torn tail).
fn intact_block_after(bytes: &[u8], from: usize) -> Option<usize> {
    (from + 1..bytes.len().saturating_sub(3))
        .filter(|&o| &bytes[o..o + 4] == BLOCK_MAGIC)
        .find(|&o| decode_block_at(bytes, o, None).is_ok())
}

/// What opening the journal had to repair. Nothing is ever dropped silently.
#[derive(Debug, Default, Clone, Serialize, schemars::JsonSchema)]
pub struct Recovery {
    /// A torn tail was cut: (segment, offset, bytes cut).
    pub truncated: Option<(String, u64, u64)>,
    /// Damage set aside (a whole segment whose header is damaged, or the bytes of a segment
    /// after its last good block, each under a name of its own ending in `.quarantined`):
    /// (name, reason). They are never deleted or overwritten; `verify` keeps reporting them.
    pub quarantined: Vec<(String, String)>,
    /// The copy of a torn tail's bytes (an unfinished last append, nothing acknowledged),
    /// kept under a name ending in `.torn` for inspection.
    pub torn_tail_copy: Option<String>,
    /// Files an interrupted summarization left, removed: `.sum.tmp` files, and segments a
    /// complete summary file already replaces.
    pub summary_leftovers: Vec<String>,
}

/// Where the next block goes.
#[derive(Debug, Clone, Copy)]
struct Tail {
    segment: Option<(u64, u64)>, // (number, length) of the open segment
    next_segment: u64,
    next_block: u64,
    next_seq: u64,
    head: Hash,
}

/// An open journal.
#[derive(Debug)]
pub struct Journal<S: Storage> {
    storage: S,
    opts: Options,
    tail: Tail,
}

/// Where an appended block went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub block: u64,
    pub first_seq: u64,
    pub count: u32,
    pub bytes: u64,
    /// The segment it went into, and its offset there.
    pub segment: u64,
    pub offset: u64,
    /// The chain hash before it (the previous block's) and after it.
    pub prev_chain: Hash,
    pub chain: Hash,
}

impl<S: Storage> Journal<S> {
    /// Opens the journal for appending, repairing the last segment when needed.
    pub fn open(mut storage: S, opts: Options) -> Result<(Journal<S>, Recovery), JournalError> {
        // Finish what an interrupted summarization left (its summary file is complete).
        let mut rec = Recovery {
            summary_leftovers: crate::summary::clean_up(&mut storage)?,
            ..Recovery::default()
        };
        let mut names = segments(&storage)?;
        let mut tail = Tail {
            segment: None,
            next_segment: 0,
            next_block: 0,
            next_seq: 0,
            head: [0; 32],
        };
        // Walk back from the newest segment until one yields a usable tail.
        while let Some((number, name)) = names.pop() {
            let bytes = storage
                .read(&name)
                .map_err(io_err(format!("read {name}")))?;
            let scan = match scan_segment(&bytes) {
                Ok(s) => s,
                Err(e) => {
                    // Not even a header. An empty file (a segment whose creation was cut
                    // short) holds nothing; anything else is set aside whole, never removed.
                    if bytes.is_empty() {
                        storage
                            .remove(&name)
                            .map_err(io_err(format!("remove {name}")))?;
                    } else {
                        let q = unique_name(&storage, &name, None, "quarantined")?;
                        storage
                            .rename(&name, &q)
                            .map_err(io_err(format!("quarantine {name}")))?;
                        rec.quarantined.push((
                            q,
                            format!("segment header: {e} ({} bytes set aside)", bytes.len()),
                        ));
                    }
                    tail.next_segment = tail.next_segment.max(number + 1);
                    continue;
                }
            };
            let mut valid_end = scan.valid_end;
            if let Some(err) = &scan.error {
                let rest = &bytes[scan.valid_end..];
                // A torn tail: the last append did not finish (the block runs past the end of
                // the file, or what follows the valid prefix is zeros). Anything else — a
                // full-length block with a bad checksum, garbage, an intact block further on —
                // is damage. Either way the bytes after the valid prefix are copied aside
                // under a name of their own before the segment is cut there: nothing is
                // destroyed, and `verify` reports what was set aside.
                let torn = matches!(err, FormatError::Truncated { .. })
                    && intact_block_after(&bytes, scan.valid_end).is_none()
                    || rest.iter().all(|&b| b == 0);
                let aside = unique_name(
                    &storage,
                    &name,
                    Some(scan.valid_end),
                    if torn { "torn" } else { "quarantined" },
                )?;
                storage
                    .append(&aside, rest)
                    .and_then(|_| storage.sync(&aside))
                    .map_err(io_err(format!("set aside the end of {name}")))?;
                storage
                    .truncate(&name, scan.valid_end as u64)
                    .map_err(io_err(format!("truncate {name}")))?;
                if torn {
                    rec.truncated = Some((name.clone(), scan.valid_end as u64, rest.len() as u64));
                    rec.torn_tail_copy = Some(aside);
                } else {
                    let follows = intact_block_after(&bytes, scan.valid_end)
                        .map(|at| format!("; an intact block follows at offset {at}"))
                        .unwrap_or_default();
                    rec.quarantined.push((
                        aside,
                        format!(
                            "damage at offset {} ({err}){follows}: bytes {}..{} of {name} set aside; the journal continues after the last good block {}",
                            scan.valid_end,
                            scan.valid_end,
                            bytes.len(),
                            scan.blocks.last().map(|(_, h)| h.number.to_string()).unwrap_or_else(|| "(none)".into())
                        ),
                    ));
                }
                valid_end = scan.valid_end;
            }
            tail = Tail {
                // A segment that reached its size stays sealed across a reopen.
                segment: if (valid_end as u64) < opts.segment_max_bytes {
                    Some((number, valid_end as u64))
                } else {
                    None
                },
                next_segment: tail.next_segment.max(number + 1),
                next_block: scan.next().0,
                next_seq: scan.next().1,
                head: scan.head,
            };
            break;
        }
        Ok((
            Journal {
                storage,
                opts,
                tail,
            },
            rec,
        ))
    }

    /// The chain hash after the last block: keep it elsewhere to detect a rewritten journal.
    pub fn head(&self) -> Hash {
        self.tail.head
    }

    /// The sequence number the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.tail.next_seq
    }

    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Appends one block holding `records` and makes it durable before returning.
    pub fn append<R: AsRef<[u8]>>(&mut self, records: &[R]) -> Result<Appended, JournalError> {
        let t = self.tail;
        let (number, len) = match t.segment {
            Some(s) => s,
            None => {
                let number = t.next_segment;
                let h = SegmentHeader {
                    number,
                    first_block: t.next_block,
                    first_seq: t.next_seq,
                    start_chain: t.head,
                };
                let name = segment_name(number);
                self.storage
                    .append(&name, &h.encode())
                    .map_err(io_err(format!("create {name}")))?;
                (number, SEGMENT_HEADER_LEN as u64)
            }
        };
        let name = segment_name(number);
        let (h, bytes) = encode_block(
            &t.head,
            t.next_block,
            t.next_seq,
            records,
            self.opts.codec,
            self.opts.zstd_level,
        )?;
        if let Err(e) = self.storage.append(&name, &bytes) {
            // Leave no partial block behind for the next append to build on.
            let _ = self.storage.truncate(&name, len);
            self.tail.segment = Some((number, len));
            self.tail.next_segment = number + 1;
            return Err(io_err(format!("append to {name}"))(e));
        }
        self.storage
            .sync(&name)
            .map_err(io_err(format!("sync {name}")))?;
        let new_len = len + bytes.len() as u64;
        self.tail = Tail {
            segment: if new_len >= self.opts.segment_max_bytes {
                None
            } else {
                Some((number, new_len))
            },
            next_segment: number + 1,
            next_block: t.next_block + 1,
            next_seq: t.next_seq + u64::from(h.count),
            head: h.chain,
        };
        Ok(Appended {
            block: h.number,
            first_seq: h.first_seq,
            count: h.count,
            bytes: bytes.len() as u64,
            segment: number,
            offset: len,
            prev_chain: t.head,
            chain: h.chain,
        })
    }
}

/// The first problem `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Problem {
    pub segment: String,
    /// The block number the problem is in (or the one expected there).
    pub block: Option<u64>,
    pub offset: u64,
    pub what: String,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct VerifyReport {
    pub segments: u64,
    /// Summary files (each replacing sealed segments; their head is recorded).
    pub summaries: u64,
    pub blocks: u64,
    pub records: u64,
    pub bytes: u64,
    /// Hex chain hash after the last verified block.
    pub head: String,
    pub first_problem: Option<Problem>,
    pub quarantined: Vec<String>,
    /// The indexes, rebuilt and compared ([`verify_indexed`]; none checked by [`verify`]).
    pub indexes: crate::index::IndexCheck,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.first_problem.is_none() && self.quarantined.is_empty() && self.indexes.wrong.is_empty()
    }
}

/// [`verify`], and every index a query would use rebuilt from its segment with `keys` (the
/// records' index keys) and compared ([`crate::index::check`]).
/// `progress` as for [`verify_with_progress`]; `visit` gets every record of every good block
/// and summary file, in chain order.
pub fn verify_indexed<S: Storage>(
    storage: &S,
    keys: impl FnMut(&[u8], &mut Vec<u64>),
    visit: &mut dyn FnMut(&[u8]),
    progress: &mut dyn FnMut(VerifyProgress),
) -> Result<VerifyReport, JournalError> {
    let mut r = verify_walk(storage, progress, visit)?;
    r.indexes = crate::index::check(storage, keys, &mut |done, of| {
        progress(VerifyProgress::Indexes { done, of })
    })
    .map_err(io_err("check the indexes"))?;
    Ok(r)
}

/// Checks every block and the chain across all segments; stops at the first problem.
pub fn verify<S: Storage>(storage: &S) -> Result<VerifyReport, JournalError> {
    verify_with_progress(storage, &mut |_| {})
}

/// What a long `verify` has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyProgress {
    /// Bytes of segments and summary files checked, of how many.
    Bytes { done: u64, of: u64 },
    /// Indexes rebuilt and compared, of how many index files.
    Indexes { done: usize, of: usize },
}

/// [`verify`], calling `progress` as it goes (before each block).
pub fn verify_with_progress<S: Storage>(
    storage: &S,
    progress: &mut dyn FnMut(VerifyProgress),
) -> Result<VerifyReport, JournalError> {
    verify_walk(storage, progress, &mut |_| {})
}

/// [`verify_with_progress`], handing `visit` every record of every good block and summary
/// file, in chain order.
fn verify_walk<S: Storage>(
    storage: &S,
    progress: &mut dyn FnMut(VerifyProgress),
    visit: &mut dyn FnMut(&[u8]),
) -> Result<VerifyReport, JournalError> {
    let all = storage.list().map_err(io_err("list segments"))?;
    let quarantined: Vec<String> = all
        .iter()
        .filter(|n| n.ends_with(".quarantined"))
        .cloned()
        .collect();
    let mut r = VerifyReport {
        segments: 0,
        summaries: 0,
        blocks: 0,
        records: 0,
        bytes: 0,
        head: hex(&[0; 32]),
        first_problem: None,
        quarantined,
        indexes: Default::default(),
    };
    let mut head: Hash = [0; 32];
    let (mut next_block, mut next_seq) = (0u64, 0u64);
    let units = units(storage)?;
    let len = |u: &Unit| match u {
        Unit::Segment(n) | Unit::Summary(n) => storage.len(n).unwrap_or(0),
    };
    let of: u64 = units.iter().map(len).sum();
    let mut done = 0;
    for unit in units {
        // (Where this unit starts in the count; a segment that grows meanwhile — the open
        // one, while a recorder writes — only makes the count pass its total.)
        let base = done;
        progress(VerifyProgress::Bytes { done, of });
        done += len(&unit);
        let name = match unit {
            Unit::Segment(n) => n,
            Unit::Summary(name) => {
                let bytes = storage
                    .read(&name)
                    .map_err(io_err(format!("read {name}")))?;
                r.summaries += 1;
                r.bytes += bytes.len() as u64;
                let problem = |what: String| Problem {
                    segment: name.clone(),
                    block: None,
                    offset: 0,
                    what,
                };
                match crate::summary::read_summary(&bytes) {
                    Err(e) => {
                        r.first_problem = Some(problem(format!("summary file: {e}")));
                        break;
                    }
                    Ok((h, _))
                        if h.start_chain != head
                            || h.first_block != next_block
                            || h.first_seq != next_seq =>
                    {
                        r.first_problem = Some(problem(
                            "summary does not continue the chain of what precedes it".into(),
                        ));
                        break;
                    }
                    Ok((h, recs)) => {
                        r.records += recs.len() as u64;
                        recs.iter().for_each(|rec| visit(rec));
                        head = h.end_chain;
                        (next_block, next_seq) = (h.next_block, h.next_seq);
                    }
                }
                continue;
            }
        };
        let bytes = storage
            .read(&name)
            .map_err(io_err(format!("read {name}")))?;
        r.segments += 1;
        r.bytes += bytes.len() as u64;
        let problem = |block: Option<u64>, offset: usize, what: String| Problem {
            segment: name.clone(),
            block,
            offset: offset as u64,
            what,
        };
        let scan = match scan_segment(&bytes) {
            Ok(s) => s,
            Err(e) => {
                r.first_problem = Some(problem(None, 0, format!("segment header: {e}")));
                break;
            }
        };
        if scan.header.start_chain != head
            || scan.header.first_block != next_block
            || scan.header.first_seq != next_seq
        {
            r.first_problem = Some(problem(
                Some(scan.header.first_block),
                0,
                "segment does not continue the chain of the previous one (missing, reordered or replaced segment)".into(),
            ));
            break;
        }
        for (off, h) in &scan.blocks {
            progress(VerifyProgress::Bytes {
                done: base + *off as u64,
                of,
            });
            // Decompress and unframe, too: a block is only good if its records come out.
            match block_records(&bytes, *off, h) {
                Ok(recs) => recs.iter().for_each(|rec| visit(rec)),
                Err(e) => {
                    r.first_problem = Some(problem(Some(h.number), *off, e.to_string()));
                    r.head = hex(&head);
                    return Ok(r);
                }
            }
            head = h.chain;
            r.blocks += 1;
            r.records += u64::from(h.count);
        }
        (next_block, next_seq) = scan.next();
        if let Some(e) = scan.error {
            r.first_problem = Some(problem(Some(next_block), scan.valid_end, e.to_string()));
            break;
        }
    }
    r.head = hex(&head);
    Ok(r)
}

/// Every record in order with its sequence number: of each segment, the blocks before its
/// first damage, without saying so. For tests and tools over journals known to be intact;
/// whatever reads a journal for a user uses [`read_all_tolerant`], which reports what it skips.
pub fn read_all<S: Storage>(storage: &S) -> Result<Vec<(u64, Vec<u8>)>, JournalError> {
    let mut out = Vec::new();
    for unit in units(storage)? {
        let name = match unit {
            Unit::Segment(n) => n,
            Unit::Summary(name) => {
                let bytes = storage
                    .read(&name)
                    .map_err(io_err(format!("read {name}")))?;
                let (h, recs) = crate::summary::read_summary(&bytes).map_err(|error| {
                    JournalError::Segment {
                        segment: name.clone(),
                        error,
                    }
                })?;
                out.extend(numbered(h.first_seq, recs));
                continue;
            }
        };
        let bytes = storage
            .read(&name)
            .map_err(io_err(format!("read {name}")))?;
        let scan = scan_segment(&bytes).map_err(|error| JournalError::Segment {
            segment: name.clone(),
            error,
        })?;
        for (off, h) in &scan.blocks {
            let recs = block_records(&bytes, *off, h).map_err(|error| JournalError::Segment {
                segment: name.clone(),
                error,
            })?;
            out.extend(numbered(h.first_seq, recs));
        }
    }
    Ok(out)
}
