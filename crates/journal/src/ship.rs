//! The journal as a sequence of *pieces* for another host (`docs/journal-format.md`,
//! "Shipping"): each file in chain order — a segment, or a summary file that replaced
//! segments — is its header, then its blocks, byte for byte. [`pieces_from`] reads them from a
//! [`Cursor`]; [`Follower`] checks a sequence of pieces the way `verify` checks the files (header
//! continuity, block checksums, numbers and the chain), so the receiving side computes the same
//! head as `jcs verify` on the host, and can rebuild the files exactly.
//!
//! Only what is durable is handed out: the open segment is synced after its bytes are read,
//! so a piece can never be one that a crash would take back (a block written but not yet
//! synced when the host fails would otherwise be shipped and then cut on recovery).
//!
//! [`ShipMark`]s keep segments from being summarized before they are shipped.

use crate::format::{decode_block_at, hex, BlockHeader, FormatError, Hash, SegmentHeader};
use crate::format::{SEGMENT_HEADER_LEN, SEGMENT_MAGIC};
use crate::journal::{io_err, units, JournalError, Unit};
use crate::storage::Storage;
use crate::summary::{SummaryHeader, SUMMARY_HEADER_LEN, SUMMARY_MAGIC};

/// One piece: the file it is from (its name in the journal directory), where it starts in
/// that file, and its bytes (a segment or summary header, or one whole block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub file: String,
    pub offset: u64,
    pub bytes: Vec<u8>,
}

/// Where the next piece starts: a file of the journal and an offset in it. `file: None` is
/// the start of the journal.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Cursor {
    pub file: Option<String>,
    pub offset: u64,
}

impl Cursor {
    /// The cursor just after `piece`.
    pub fn after(piece: &Piece) -> Cursor {
        Cursor {
            file: Some(piece.file.clone()),
            offset: piece.offset + piece.bytes.len() as u64,
        }
    }
}

/// Why pieces could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(
        "{file} is no longer in the journal (summarized or removed before it was shipped); \
         the journal cannot be shipped on from {offset} of it"
    )]
    Gone { file: String, offset: u64 },
    #[error("{file} is damaged at byte {offset}: {error} (run `jcs verify`)")]
    Damaged {
        file: String,
        offset: u64,
        error: FormatError,
    },
}

fn unit_name(u: &Unit) -> &str {
    match u {
        Unit::Segment(n) | Unit::Summary(n) => n,
    }
}

/// Whether the journal has no file yet (no segment, no summary file): nothing to ship.
pub fn is_empty<S: Storage>(storage: &S) -> Result<bool, JournalError> {
    Ok(units(storage)?.is_empty())
}

/// The pieces from `cursor` on, up to about `max_bytes` (at least one piece when there is
/// one), and the cursor after them. A block still being appended is not handed out; nor is
/// anything of the open segment before it has been synced.
pub fn pieces_from<S: Storage>(
    storage: &mut S,
    cursor: &Cursor,
    max_bytes: usize,
) -> Result<(Vec<Piece>, Cursor), ShipError> {
    let all = units(storage)?;
    let mut i = match &cursor.file {
        None => 0,
        Some(f) => match all.iter().position(|u| unit_name(u) == f) {
            Some(i) => i,
            None => {
                return Err(ShipError::Gone {
                    file: f.clone(),
                    offset: cursor.offset,
                })
            }
        },
    };
    let mut offset = if cursor.file.is_some() {
        cursor.offset
    } else {
        0
    };
    let mut out = Vec::new();
    let mut size = 0usize;
    while let Some(unit) = all.get(i) {
        let name = unit_name(unit).to_string();
        let last = i + 1 == all.len();
        let bytes = storage
            .read_range(&name, offset, u64::MAX)
            .map_err(io_err(format!("read {name}")))?;
        if last && matches!(unit, Unit::Segment(_)) && !bytes.is_empty() {
            // What was read was written before this sync began: durable once it returns.
            storage
                .sync(&name)
                .map_err(io_err(format!("sync {name}")))?;
        }
        let mut off = 0usize;
        if offset == 0 {
            let len = match unit {
                Unit::Segment(_) => SEGMENT_HEADER_LEN,
                Unit::Summary(_) => SUMMARY_HEADER_LEN,
            };
            if bytes.len() < len {
                if last {
                    break;
                }
                return Err(damaged(
                    &name,
                    0,
                    FormatError::Truncated {
                        offset: 0,
                        need: len,
                        have: bytes.len(),
                    },
                ));
            }
            out.push(Piece {
                file: name.clone(),
                offset: 0,
                bytes: bytes[..len].to_vec(),
            });
            size += len;
            off = len;
        }
        while off < bytes.len() && size < max_bytes {
            match decode_block_at(&bytes, off, None) {
                Ok((_, len)) => {
                    out.push(Piece {
                        file: name.clone(),
                        offset: offset + off as u64,
                        bytes: bytes[off..off + len].to_vec(),
                    });
                    size += len;
                    off += len;
                }
                Err(FormatError::Truncated { .. }) if last => break,
                Err(e) => return Err(damaged(&name, offset + off as u64, e)),
            }
        }
        let here = Cursor {
            file: Some(name),
            offset: offset + off as u64,
        };
        if off < bytes.len() || last || size >= max_bytes {
            return Ok((out, here));
        }
        i += 1;
        offset = 0;
    }
    let here = match out.last() {
        Some(p) => Cursor::after(p),
        None => cursor.clone(),
    };
    Ok((out, here))
}

fn damaged(file: &str, offset: u64, error: FormatError) -> ShipError {
    ShipError::Damaged {
        file: file.to_string(),
        offset,
        error,
    }
}

/// What a piece was, once accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// A segment's or a summary file's header.
    Header,
    /// A block of the journal's chain (`summary`: a block of a summary file, whose numbers
    /// and chain are the file's own).
    Block { header: BlockHeader, summary: bool },
}

/// Why a piece does not continue what came before: tampering, loss or reordering upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FollowError {
    #[error("{file} at byte {offset}: expected a piece at byte {expected} of {expected_file}")]
    Out {
        file: String,
        offset: u64,
        expected_file: String,
        expected: u64,
    },
    #[error("{file} at byte {offset}: {error}")]
    Format {
        file: String,
        offset: u64,
        error: FormatError,
    },
    #[error(
        "{file} at byte {offset}: sent again with other bytes than the first time (the journal \
         was rewritten after it was shipped)"
    )]
    Rewritten { file: String, offset: u64 },
    #[error(
        "{file}: its header does not continue the chain (block {block}, record {seq}, hash {hash}; \
         expected block {next_block}, record {next_seq}, hash {head})"
    )]
    Discontinuous {
        file: String,
        block: u64,
        seq: u64,
        hash: String,
        next_block: u64,
        next_seq: u64,
        head: String,
    },
    #[error(
        "the stream holds {waiting} piece(s) after {file} at byte {offset}, but not the piece \
         there: lost upstream, or its shipper stopped before sending it again (nothing after it \
         is taken in; collecting again once the host's jcs ship has run goes on from here)"
    )]
    Missing {
        file: String,
        offset: u64,
        waiting: usize,
    },
}

/// A summary file being followed: its own chain, and where the journal's chain stands after it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Inner {
    #[serde(with = "hex_hash")]
    head: Hash,
    next_block: u64,
    next_seq: u64,
}

/// Follows the journal's chain over pieces in order. Serializable: a shipper or collector
/// keeps it with its cursor and goes on after a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Follower {
    /// The chain hash after the last block (inside a summary file: after the segments it
    /// replaced, as its header says).
    #[serde(with = "hex_hash")]
    head: Hash,
    next_block: u64,
    next_seq: u64,
    /// The file being followed and where its next piece must start.
    file: Option<String>,
    offset: u64,
    inner: Option<Inner>,
    /// Blocks and records accepted so far.
    pub blocks: u64,
    pub records: u64,
}

impl Follower {
    /// The journal's head so far (what `jcs verify` prints for the same files).
    pub fn head(&self) -> Hash {
        self.head
    }

    /// The number of the journal's next block (after a summary file: after what it replaced).
    pub fn next_block(&self) -> u64 {
        self.next_block
    }

    /// Where the next piece must start.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            file: self.file.clone(),
            offset: self.offset,
        }
    }

    /// Whether `piece` was accepted already (a redelivery): it lies before the cursor.
    pub fn seen(&self, piece: &Piece) -> bool {
        match &self.file {
            None => false,
            Some(f) if *f == piece.file => piece.offset < self.offset,
            Some(f) => file_order(&piece.file) < file_order(f),
        }
    }

    /// Checks `piece` as the next one and takes it in.
    pub fn accept(&mut self, piece: &Piece) -> Result<Accepted, FollowError> {
        let same_file = self.file.as_deref() == Some(piece.file.as_str());
        let fmt = |error| FollowError::Format {
            file: piece.file.clone(),
            offset: piece.offset,
            error,
        };
        if piece.offset == 0 && !same_file {
            return self.header(piece).map_err(|e| match e {
                Ok(error) => fmt(error),
                Err(e) => e,
            });
        }
        if !same_file || piece.offset != self.offset {
            return Err(FollowError::Out {
                file: piece.file.clone(),
                offset: piece.offset,
                expected_file: self
                    .file
                    .clone()
                    .unwrap_or_else(|| "(the first file)".into()),
                expected: self.offset,
            });
        }
        let (prev, want_block, want_seq) = match &self.inner {
            Some(i) => (i.head, i.next_block, i.next_seq),
            None => (self.head, self.next_block, self.next_seq),
        };
        let (h, len) = decode_block_at(&piece.bytes, 0, Some(&prev)).map_err(fmt)?;
        if len != piece.bytes.len() {
            return Err(fmt(FormatError::Payload {
                block: h.number,
                what: format!("{} bytes after the block", piece.bytes.len() - len),
            }));
        }
        if h.number != want_block || h.first_seq != want_seq {
            return Err(fmt(FormatError::Order {
                block: h.number,
                expected: want_block,
            }));
        }
        let next = (h.chain, h.number + 1, h.first_seq + u64::from(h.count));
        match &mut self.inner {
            Some(i) => (i.head, i.next_block, i.next_seq) = next,
            None => (self.head, self.next_block, self.next_seq) = next,
        }
        self.offset += len as u64;
        self.blocks += 1;
        self.records += u64::from(h.count);
        Ok(Accepted::Block {
            header: h,
            summary: self.inner.is_some(),
        })
    }

    /// A new file's header: it must continue the chain where the last file ended.
    fn header(&mut self, piece: &Piece) -> Result<Accepted, Result<FormatError, FollowError>> {
        let b = &piece.bytes;
        let (block, seq, start, inner, after) = if b.starts_with(SEGMENT_MAGIC) {
            let h = SegmentHeader::decode(b).map_err(Ok)?;
            if b.len() != SEGMENT_HEADER_LEN {
                return Err(Ok(FormatError::Truncated {
                    offset: 0,
                    need: SEGMENT_HEADER_LEN,
                    have: b.len(),
                }));
            }
            (h.first_block, h.first_seq, h.start_chain, None, None)
        } else if b.starts_with(SUMMARY_MAGIC) {
            let h = SummaryHeader::decode(b).map_err(Ok)?;
            if b.len() != SUMMARY_HEADER_LEN {
                return Err(Ok(FormatError::Truncated {
                    offset: 0,
                    need: SUMMARY_HEADER_LEN,
                    have: b.len(),
                }));
            }
            let inner = Inner {
                head: *blake3::hash(b).as_bytes(),
                next_block: 0,
                next_seq: h.first_seq,
            };
            (
                h.first_block,
                h.first_seq,
                h.start_chain,
                Some(inner),
                Some((h.end_chain, h.next_block, h.next_seq)),
            )
        } else {
            return Err(Ok(FormatError::Magic { offset: 0 }));
        };
        if (block, seq, start) != (self.next_block, self.next_seq, self.head) {
            return Err(Err(FollowError::Discontinuous {
                file: piece.file.clone(),
                block,
                seq,
                hash: hex(&start),
                next_block: self.next_block,
                next_seq: self.next_seq,
                head: hex(&self.head),
            }));
        }
        if let Some((end, nb, ns)) = after {
            (self.head, self.next_block, self.next_seq) = (end, nb, ns);
        }
        self.inner = inner;
        self.file = Some(piece.file.clone());
        self.offset = b.len() as u64;
        Ok(Accepted::Header)
    }
}

/// A journal file's place in chain order: its first segment number (of a segment, a summary
/// file or a name derived from one).
pub fn file_order(name: &str) -> u64 {
    let stem = name.split(['.', '-']).next().unwrap_or("");
    u64::from_str_radix(stem, 16).unwrap_or(u64::MAX)
}

mod hex_hash {
    use crate::format::{hex, Hash};
    pub fn serialize<S: serde::Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex(h))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        let mut h = [0u8; 32];
        if s.len() != 64 {
            return Err(serde::de::Error::custom("a hash is 64 hex digits"));
        }
        for (i, b) in h.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(serde::de::Error::custom)?;
        }
        Ok(h)
    }
}

/// A shipper's mark in the journal directory (`ship-NAME.mark`): the first segment it has not
/// shipped whole. Summarizing leaves that segment and every later one alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipMark {
    pub name: String,
    pub segment: u64,
}

fn mark_file(name: &str) -> String {
    format!("ship-{name}.mark")
}

/// Writes (replacing) shipper `name`'s mark: segments from `segment` on are not shipped yet.
pub fn write_mark<S: Storage>(
    storage: &mut S,
    name: &str,
    segment: u64,
) -> Result<(), JournalError> {
    let file = mark_file(name);
    storage
        .replace(&file, format!("{segment}\n").as_bytes())
        .map_err(io_err(format!("write {file}")))
}

/// Every shipper's mark.
pub fn marks<S: Storage>(storage: &S) -> Result<Vec<ShipMark>, JournalError> {
    let mut out = Vec::new();
    for n in storage.list().map_err(io_err("list the journal"))? {
        let Some(name) = n
            .strip_prefix("ship-")
            .and_then(|s| s.strip_suffix(".mark"))
        else {
            continue;
        };
        let text = storage.read(&n).map_err(io_err(format!("read {n}")))?;
        let segment =
            String::from_utf8_lossy(&text)
                .trim()
                .parse()
                .map_err(|_| JournalError::Io {
                    what: format!("read {n}"),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "not a segment number",
                    ),
                })?;
        out.push(ShipMark {
            name: name.to_string(),
            segment,
        });
    }
    Ok(out)
}

/// The first segment of the file a cursor is in (what a mark records).
pub fn cursor_segment(cursor: &Cursor) -> u64 {
    cursor.file.as_deref().map(file_order).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{scan_segment, verify, Journal, Options};
    use crate::storage::MemStorage;

    fn journal(blocks: usize, seg_bytes: u64) -> MemStorage {
        let opts = Options {
            segment_max_bytes: seg_bytes,
            ..Options::default()
        };
        let (mut j, _) = Journal::open(MemStorage::default(), opts).unwrap();
        for i in 0..blocks {
            let recs: Vec<Vec<u8>> = (0..3)
                .map(|k| format!("record {i}.{k}").into_bytes())
                .collect();
            j.append(&recs).unwrap();
        }
        j.storage().clone()
    }

    fn all_pieces(s: &mut MemStorage, max: usize) -> Vec<Piece> {
        let mut cur = Cursor::default();
        let mut out = Vec::new();
        loop {
            let (p, next) = pieces_from(s, &cur, max).unwrap();
            if p.is_empty() {
                assert_eq!(next, cur, "no pieces, no move");
                return out;
            }
            assert_eq!(next, Cursor::after(p.last().unwrap()));
            out.extend(p);
            cur = next;
        }
    }

    #[test]
    fn the_pieces_are_the_files_byte_for_byte_and_follow_to_verifys_head() {
        let mut s = journal(40, 600);
        let files: Vec<String> = units(&s)
            .unwrap()
            .iter()
            .map(|u| unit_name(u).to_string())
            .collect();
        assert!(files.len() > 3, "several segments: {files:?}");
        for max in [1, 500, 1 << 20] {
            let pieces = all_pieces(&mut s, max);
            for f in &files {
                let joined: Vec<u8> = pieces
                    .iter()
                    .filter(|p| &p.file == f)
                    .flat_map(|p| p.bytes.clone())
                    .collect();
                assert_eq!(joined, s.read(f).unwrap(), "{f}");
            }
            let mut fol = Follower::default();
            for p in &pieces {
                fol.accept(p).unwrap();
            }
            assert_eq!(fol.blocks, 40);
            assert_eq!(fol.records, 120);
            assert_eq!(hex(&fol.head()), verify(&s).unwrap().head);
        }
    }

    #[test]
    fn a_summary_file_is_shipped_and_followed_as_verify_follows_it() {
        let mut s = journal(30, 600);
        let sealed = crate::sealed_segments(&s).unwrap();
        let (a, b) = (sealed[0], sealed[2]);
        crate::summary::replace_segments(&mut s, a, b, &[b"summary".to_vec()]).unwrap();
        let pieces = all_pieces(&mut s, 1 << 20);
        assert!(pieces[0].bytes.starts_with(SUMMARY_MAGIC));
        let mut fol = Follower::default();
        for p in &pieces {
            fol.accept(p).unwrap();
        }
        let report = verify(&s).unwrap();
        assert!(report.ok(), "{report:?}");
        assert_eq!(hex(&fol.head()), report.head);
    }

    #[test]
    fn tampering_loss_and_reordering_are_refused() {
        let mut s = journal(12, 600);
        let pieces = all_pieces(&mut s, 1 << 20);
        let accept_all = |ps: &[Piece]| {
            let mut f = Follower::default();
            ps.iter().try_for_each(|p| f.accept(p).map(|_| ()))
        };
        accept_all(&pieces).unwrap();
        // A changed byte of a payload, with its CRCs recomputed, breaks the chain.
        let mut t = pieces.clone();
        let k = 3;
        assert!(t[k].bytes.starts_with(b"JBLK"));
        let b = &mut t[k].bytes;
        let n = b.len();
        b[n - 1] ^= 1;
        let crc = crc32c::crc32c(&b[76..]);
        b[36..40].copy_from_slice(&crc.to_le_bytes());
        let hcrc = crc32c::crc32c(&b[0..72]);
        b[72..76].copy_from_slice(&hcrc.to_le_bytes());
        assert!(
            matches!(
                accept_all(&t),
                Err(FollowError::Format {
                    error: FormatError::Chain { .. },
                    ..
                })
            ),
            "{:?}",
            accept_all(&t)
        );
        // A lost block.
        let mut t = pieces.clone();
        t.remove(3);
        assert!(matches!(accept_all(&t), Err(FollowError::Out { .. })));
        // A lost segment: the next header does not continue the chain.
        let second = pieces
            .iter()
            .position(|p| p.offset == 0 && p.file != pieces[0].file)
            .unwrap();
        let third = pieces
            .iter()
            .position(|p| {
                p.offset == 0 && p.file != pieces[0].file && p.file != pieces[second].file
            })
            .unwrap();
        let mut t = pieces.clone();
        t.drain(second..third);
        assert!(
            matches!(accept_all(&t), Err(FollowError::Discontinuous { .. })),
            "{:?}",
            accept_all(&t)
        );
        // Two blocks swapped.
        let mut t = pieces.clone();
        t.swap(2, 3);
        assert!(accept_all(&t).is_err());
    }

    #[test]
    fn a_follower_goes_on_after_a_restart_and_knows_redeliveries() {
        let mut s = journal(10, 600);
        let pieces = all_pieces(&mut s, 1 << 20);
        let mut f = Follower::default();
        for p in &pieces[..5] {
            f.accept(p).unwrap();
        }
        let mut f: Follower = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        for p in &pieces[..5] {
            assert!(f.seen(p), "{p:?}");
        }
        for p in &pieces[5..] {
            assert!(!f.seen(p));
            f.accept(p).unwrap();
        }
        assert_eq!(hex(&f.head()), verify(&s).unwrap().head);
    }

    #[test]
    fn a_block_being_appended_is_not_handed_out_and_a_summarized_cursor_is_an_error() {
        let mut s = journal(6, 1 << 20);
        let name = crate::journal::segment_name(0);
        let full = s.read(&name).unwrap();
        let pieces = all_pieces(&mut s, 1 << 20);
        // Half a block more.
        s.append(&name, &full[SEGMENT_HEADER_LEN..SEGMENT_HEADER_LEN + 40])
            .unwrap();
        let (more, _) =
            pieces_from(&mut s, &Cursor::after(pieces.last().unwrap()), 1 << 20).unwrap();
        assert!(more.is_empty());
        let err = pieces_from(
            &mut s,
            &Cursor {
                file: Some("0000000000000007.seg".into()),
                offset: 80,
            },
            10,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("no longer in the journal"),
            "{err}"
        );
    }

    /// A block written but not yet synced is handed out only once it is durable: reading the
    /// pieces syncs the open segment. Negative control: a crash before that loses the block.
    #[test]
    fn only_durable_bytes_are_handed_out() {
        let mut s = journal(5, 1 << 20);
        let name = crate::journal::segment_name(0);
        let full = s.read(&name).unwrap();
        let last = scan_segment(&full).unwrap().blocks.last().unwrap().0;
        // The last block written, not synced.
        s.synced.insert(name.clone(), full[..last].to_vec());
        assert_eq!(
            s.crash(0).read(&name).unwrap().len(),
            last,
            "a crash would lose it"
        );
        let pieces = all_pieces(&mut s, 1 << 20);
        assert_eq!(
            pieces.last().unwrap().offset,
            last as u64,
            "it is handed out"
        );
        assert_eq!(s.crash(0).read(&name).unwrap(), full, "and durable first");
    }

    #[test]
    fn marks_round_trip() {
        let mut s = MemStorage::default();
        write_mark(&mut s, "JOURNAL", 7).unwrap();
        write_mark(&mut s, "JOURNAL", 9).unwrap();
        write_mark(&mut s, "b", 2).unwrap();
        let mut m = marks(&s).unwrap();
        m.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(
            m,
            vec![
                ShipMark {
                    name: "JOURNAL".into(),
                    segment: 9
                },
                ShipMark {
                    name: "b".into(),
                    segment: 2
                }
            ]
        );
    }
}
