//! Per-segment indexes: for a sealed segment, which blocks hold records with a given key, so
//! that "everything about variable X" or "everything of VE N" reads only those blocks. The
//! journal does not know what records mean: the caller says which keys (u64) a record has.
//!
//! An index is a sidecar file `NNNNNNNNNNNNNNNN.idx` next to its segment, written once the
//! segment is sealed (it never changes after that). It is bound to the segment it describes
//! by the segment's length and the chain hash after its last block: an index that does not
//! match (a segment rewritten by recovery, a truncated file) is ignored and rebuilt, never
//! trusted. It is derived data — deleting every `.idx` loses nothing. Format:
//! `docs/journal-format.md`, "Indexes".

use crate::format::{decode_block_at, FormatError, Hash};
use crate::journal::{scan_segment, segment_name};
use crate::storage::Storage;
use std::io;

/// Version 3: blocks with gaps have their own key, and a variable has keys for the blocks
/// where data moves into it and out of it (older indexes are rebuilt).
pub const INDEX_MAGIC: &[u8; 8] = b"JCSJIDX3";

pub fn index_name(segment: u64) -> String {
    format!("{segment:016x}.idx")
}

/// One block of the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRef {
    pub offset: u64,
    /// Header plus stored payload.
    pub len: u64,
    pub first_seq: u64,
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentIndex {
    pub segment: u64,
    /// Length of the segment file when it was indexed.
    pub seg_len: u64,
    /// Chain hash after the segment's last block.
    pub head: Hash,
    pub blocks: Vec<BlockRef>,
    /// key → ordinals (into `blocks`) of the blocks holding a record with that key, ascending.
    pub postings: Postings,
}

/// The postings of an index, flat (three vectors, however many keys: decoding an index costs
/// no allocation per key): the keys ascending, and for each its ordinals.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Postings {
    keys: Vec<u64>,
    /// Where each key's ordinals end in `ords`.
    ends: Vec<u32>,
    ords: Vec<u32>,
}

impl Postings {
    /// Adds `(key, ordinal)` pairs (each once) whose ordinals are all above every ordinal
    /// already here (blocks appended): one merge of the sorted pairs into the flat vectors,
    /// no map of the whole index (the indexer extends the open segment's index every 5 s).
    fn append(&mut self, mut new: Vec<(u64, u32)>) {
        if new.is_empty() {
            return;
        }
        new.sort_unstable();
        let mut p = Postings {
            keys: Vec::with_capacity(self.keys.len() + new.len()),
            ends: Vec::with_capacity(self.keys.len() + new.len()),
            ords: Vec::with_capacity(self.ords.len() + new.len()),
        };
        let (mut i, mut j, mut start) = (0, 0, 0);
        while i < self.keys.len() || j < new.len() {
            let k = match (self.keys.get(i), new.get(j)) {
                (Some(&a), Some(&(b, _))) => a.min(b),
                (Some(&a), None) => a,
                (None, Some(&(b, _))) => b,
                (None, None) => unreachable!("the loop's condition"),
            };
            if self.keys.get(i) == Some(&k) {
                let end = self.ends[i] as usize;
                p.ords.extend_from_slice(&self.ords[start..end]);
                start = end;
                i += 1;
            }
            while let Some(&(_, o)) = new.get(j).filter(|(nk, _)| *nk == k) {
                p.ords.push(o);
                j += 1;
            }
            p.keys.push(k);
            p.ends.push(p.ords.len() as u32);
        }
        *self = p;
    }

    /// The ordinals of the blocks holding `key`.
    pub fn get(&self, key: u64) -> Option<&[u32]> {
        let i = self.keys.binary_search(&key).ok()?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        Some(&self.ords[start..self.ends[i] as usize])
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Each key, ascending, with its ordinals.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &[u32])> {
        self.keys.iter().enumerate().map(|(i, &k)| {
            let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
            (k, &self.ords[start..self.ends[i] as usize])
        })
    }
}

use crate::format::put_leb as put;

fn get(b: &[u8], o: &mut usize) -> Result<u64, FormatError> {
    crate::format::get_leb(b, o, 64).ok_or(FormatError::Limit("index field runs past its end"))
}

impl SegmentIndex {
    /// Indexes a whole, undamaged segment: `keys(record, &mut out)` pushes the keys of one
    /// record. A damaged segment is not indexed.
    pub fn build(
        segment: u64,
        bytes: &[u8],
        mut keys: impl FnMut(&[u8], &mut Vec<u64>),
    ) -> Result<SegmentIndex, FormatError> {
        let scan = scan_segment(bytes)?;
        if let Some(e) = scan.error {
            return Err(e);
        }
        let mut blocks = Vec::with_capacity(scan.blocks.len());
        let mut pairs = Vec::new();
        let mut ks = Vec::new();
        for (i, (off, h)) in scan.blocks.iter().enumerate() {
            blocks.push(BlockRef {
                offset: *off as u64,
                len: (crate::format::BLOCK_HEADER_LEN + h.stored_len as usize) as u64,
                first_seq: h.first_seq,
                count: h.count,
            });
            for r in crate::format::block_records(bytes, *off, h)? {
                keys(&r, &mut ks);
            }
            ks.sort_unstable();
            ks.dedup();
            pairs.extend(ks.drain(..).map(|k| (k, i as u32)));
        }
        let mut postings = Postings::default();
        postings.append(pairs);
        Ok(SegmentIndex {
            segment,
            seg_len: bytes.len() as u64,
            head: scan.head,
            blocks,
            postings,
        })
    }

    /// Indexes the whole blocks at the start of a segment that is still being written (its
    /// open segment): up to the first block that is not whole yet, or damaged.
    pub fn build_prefix(
        segment: u64,
        bytes: &[u8],
        keys: impl FnMut(&[u8], &mut Vec<u64>),
    ) -> Result<SegmentIndex, FormatError> {
        let header = crate::format::SegmentHeader::decode(bytes)?;
        let mut idx = SegmentIndex {
            segment,
            seg_len: crate::format::SEGMENT_HEADER_LEN as u64,
            head: header.start_chain,
            blocks: Vec::new(),
            postings: Postings::default(),
        };
        idx.extend(&bytes[crate::format::SEGMENT_HEADER_LEN..], keys)?;
        Ok(idx)
    }

    /// Adds the blocks that follow what this index covers: `tail` is the segment's bytes from
    /// `seg_len` on. Each block must continue the chain; indexing stops before the first that
    /// is not whole (one being appended) or does not.
    pub fn extend(
        &mut self,
        tail: &[u8],
        mut keys: impl FnMut(&[u8], &mut Vec<u64>),
    ) -> Result<(), FormatError> {
        let mut off = 0usize;
        let mut ks = Vec::new();
        let mut pairs = Vec::new();
        while off < tail.len() {
            let Ok((h, len)) = decode_block_at(tail, off, Some(&self.head)) else {
                break;
            };
            let ordinal = self.blocks.len() as u32;
            self.blocks.push(BlockRef {
                offset: self.seg_len + off as u64,
                len: len as u64,
                first_seq: h.first_seq,
                count: h.count,
            });
            for r in crate::format::block_records(tail, off, &h)? {
                keys(&r, &mut ks);
            }
            ks.sort_unstable();
            ks.dedup();
            pairs.extend(ks.drain(..).map(|k| (k, ordinal)));
            self.head = h.chain;
            off += len;
        }
        self.postings.append(pairs);
        self.seg_len += off as u64;
        Ok(())
    }

    /// Adds the blocks the journal's writer reported ([`crate::writer::BlockKeys`]) as long
    /// as each continues this index — its segment, at `seg_len`, after `head` — and returns
    /// how many it took: the index [`SegmentIndex::extend`] makes from their bytes, without
    /// reading them.
    pub fn extend_known<'a>(
        &mut self,
        blocks: impl IntoIterator<Item = &'a crate::writer::BlockKeys>,
    ) -> usize {
        let mut pairs = Vec::new();
        let mut n = 0;
        for b in blocks {
            if b.segment != self.segment
                || b.block.offset != self.seg_len
                || b.prev_chain != self.head
            {
                break;
            }
            let ordinal = self.blocks.len() as u32;
            self.blocks.push(b.block);
            pairs.extend(b.keys.iter().map(|&k| (k, ordinal)));
            self.head = b.chain;
            self.seg_len += b.block.len;
            n += 1;
        }
        self.postings.append(pairs);
        n
    }

    /// The ordinals of the blocks that hold any of `keys`, ascending.
    pub fn blocks_for(&self, keys: &[u64]) -> Vec<usize> {
        let mut v: Vec<usize> = keys
            .iter()
            .filter_map(|k| self.postings.get(*k))
            .flatten()
            .map(|&i| i as usize)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The largest key in `[lo, hi)`, if any.
    pub fn max_key_in(&self, lo: u64, hi: u64) -> Option<u64> {
        let keys = &self.postings.keys;
        let end = keys.partition_point(|k| *k < hi);
        keys[..end].last().copied().filter(|k| *k >= lo)
    }

    /// `MAGIC ‖ crc32c(the rest) ‖ body length (u64) ‖ zstd(body)`, little-endian; the body is
    /// LEB128 numbers, delta-coded.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        put(&mut b, self.segment);
        put(&mut b, self.seg_len);
        b.extend_from_slice(&self.head);
        put(&mut b, self.blocks.len() as u64);
        let mut prev = 0;
        for r in &self.blocks {
            put(&mut b, r.offset - prev);
            put(&mut b, r.len);
            put(&mut b, r.first_seq);
            put(&mut b, u64::from(r.count));
            prev = r.offset;
        }
        put(&mut b, self.postings.len() as u64);
        let mut pk = 0;
        for (k, v) in self.postings.iter() {
            put(&mut b, k - pk);
            pk = k;
            put(&mut b, v.len() as u64);
            let mut p = 0;
            for &i in v {
                put(&mut b, u64::from(i - p));
                p = i;
            }
        }
        let z = zstd::bulk::compress(&b, 3).expect("zstd compresses a buffer");
        let mut out = INDEX_MAGIC.to_vec();
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(b.len() as u64).to_le_bytes());
        out.extend_from_slice(&z);
        let crc = crc32c::crc32c(&out[12..]);
        out[8..12].copy_from_slice(&crc.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<SegmentIndex, FormatError> {
        if bytes.len() < 20 || &bytes[..8] != INDEX_MAGIC {
            return Err(FormatError::Magic { offset: 0 });
        }
        let crc = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        let raw_len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
        let z = &bytes[20..];
        if crc32c::crc32c(&bytes[12..]) != crc {
            return Err(FormatError::HeaderCrc { offset: 8 });
        }
        if raw_len > crate::format::MAX_PAYLOAD as u64 * 4 {
            return Err(FormatError::Limit("index size"));
        }
        let b = zstd::bulk::decompress(z, raw_len as usize).map_err(|e| FormatError::Payload {
            block: 0,
            what: e.to_string(),
        })?;
        let o = &mut 0usize;
        let segment = get(&b, o)?;
        let seg_len = get(&b, o)?;
        let head: Hash = b
            .get(*o..*o + 32)
            .ok_or(FormatError::Limit("index runs past its end"))?
            .try_into()
            .expect("32 bytes");
        *o += 32;
        let n = get(&b, o)?;
        if n > b.len() as u64 {
            return Err(FormatError::Limit("index block count"));
        }
        let mut blocks = Vec::with_capacity(n as usize);
        let mut prev = 0u64;
        for _ in 0..n {
            let offset = prev
                .checked_add(get(&b, o)?)
                .ok_or(FormatError::Limit("index offset"))?;
            let len = get(&b, o)?;
            let first_seq = get(&b, o)?;
            let count = u32::try_from(get(&b, o)?).map_err(|_| FormatError::Limit("count"))?;
            blocks.push(BlockRef {
                offset,
                len,
                first_seq,
                count,
            });
            prev = offset;
        }
        let nk = get(&b, o)?;
        if nk > b.len() as u64 {
            return Err(FormatError::Limit("index key count"));
        }
        let mut postings = Postings::default();
        let mut k = 0u64;
        for i in 0..nk {
            k = k
                .checked_add(get(&b, o)?)
                .ok_or(FormatError::Limit("index key"))?;
            let m = get(&b, o)?;
            if m > n {
                return Err(FormatError::Limit("index postings"));
            }
            if i > 0 && postings.keys.last() == Some(&k) {
                return Err(FormatError::Limit("index key repeated"));
            }
            let mut p = 0u64;
            for _ in 0..m {
                p += get(&b, o)?;
                if p >= n {
                    return Err(FormatError::Limit("index posting past the blocks"));
                }
                postings.ords.push(p as u32);
            }
            postings.keys.push(k);
            postings.ends.push(postings.ords.len() as u32);
        }
        Ok(SegmentIndex {
            segment,
            seg_len,
            head,
            blocks,
            postings,
        })
    }
}

/// Writes the index durably: to a temporary name, synced, then renamed into place.
pub fn write<S: Storage>(storage: &mut S, idx: &SegmentIndex) -> io::Result<()> {
    storage.replace(&index_name(idx.segment), &idx.encode())
}

/// The index of `segment`, if it exists, decodes, and matches the segment as it is now (its
/// length, and the chain hash at the end of its last block). Anything else: None.
pub fn load<S: Storage>(storage: &S, segment: u64) -> Option<SegmentIndex> {
    let idx = SegmentIndex::decode(&storage.read(&index_name(segment)).ok()?).ok()?;
    let seg = segment_name(segment);
    let len = storage.len(&seg).ok()?;
    if idx.segment != segment || idx.seg_len != len {
        return None;
    }
    if let Some(last) = idx.blocks.last() {
        let b = storage.read_range(&seg, last.offset, last.len).ok()?;
        let (h, _) = decode_block_at(&b, 0, None).ok()?;
        if h.chain != idx.head {
            return None;
        }
    }
    Some(idx)
}

/// An index of the first `seg_len` bytes of `segment` (the open one, indexed while it grew):
/// usable for those bytes if it decodes and the block it ends with is still there, whole, with
/// the same chain hash (a segment only grows; recovery that cut it changes that block).
pub fn load_prefix<S: Storage>(storage: &S, segment: u64) -> Option<SegmentIndex> {
    let idx = SegmentIndex::decode(&storage.read(&index_name(segment)).ok()?).ok()?;
    let seg = segment_name(segment);
    let len = storage.len(&seg).ok()?;
    if idx.segment != segment || idx.seg_len > len {
        return None;
    }
    if let Some(last) = idx.blocks.last() {
        let b = storage.read_range(&seg, last.offset, last.len).ok()?;
        let (h, _) = decode_block_at(&b, 0, None).ok()?;
        if h.chain != idx.head {
            return None;
        }
    }
    Some(idx)
}

/// What `jcs verify` finds of the indexes (`verify_indexed`): each index a query would use
/// (it matches its segment's length and last chain hash) is rebuilt from the segment's records
/// and compared. An index is bound to its segment's bytes but not part of the chain: a wrong
/// one — a bug, or a file rewritten to hide blocks — would make an indexed query skip records
/// while the chain verifies.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct IndexCheck {
    /// Indexes rebuilt and compared.
    pub checked: u64,
    /// Index files no query uses (stale, damaged, or of no segment); the daemon rebuilds them.
    pub unused: Vec<String>,
    /// Index files that queries use and that do not match their segment's records: remove
    /// them (the daemon rebuilds them).
    pub wrong: Vec<String>,
}

/// Rebuilds and compares every index file of the journal in `storage` (see [`IndexCheck`]).
/// An index whose segment is damaged before its end is not compared: the damage is
/// `verify`'s to report.
/// `progress(done, of)` before each index file.
pub fn check<S: Storage>(
    storage: &S,
    mut keys: impl FnMut(&[u8], &mut Vec<u64>),
    progress: &mut dyn FnMut(usize, usize),
) -> io::Result<IndexCheck> {
    let mut c = IndexCheck::default();
    let mut names: Vec<String> = storage
        .list()?
        .into_iter()
        .filter(|n| n.ends_with(".idx"))
        .collect();
    names.sort();
    let of = names.len();
    for (done, name) in names.into_iter().enumerate() {
        progress(done, of);
        let Some(seg) = name
            .strip_suffix(".idx")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
        else {
            continue;
        };
        let Some(idx) = load_prefix(storage, seg) else {
            c.unused.push(name);
            continue;
        };
        let bytes = storage.read(&segment_name(seg))?;
        let Ok(rebuilt) =
            SegmentIndex::build_prefix(seg, &bytes[..idx.seg_len as usize], &mut keys)
        else {
            continue;
        };
        if rebuilt.seg_len < idx.seg_len {
            continue;
        }
        c.checked += 1;
        if rebuilt != idx {
            c.wrong.push(name);
        }
    }
    Ok(c)
}

/// The records of some blocks of a segment, read by offset (each block's checksums are
/// checked; the chain is `verify`'s job): (sequence number, record).
pub fn read_blocks<S: Storage>(
    storage: &S,
    segment: u64,
    blocks: &[BlockRef],
) -> Result<Vec<(u64, Vec<u8>)>, crate::JournalError> {
    let seg = segment_name(segment);
    let mut out = Vec::new();
    for r in blocks {
        let b = storage
            .read_range(&seg, r.offset, r.len)
            .map_err(|source| crate::JournalError::Io {
                what: format!("read {seg} at {}", r.offset),
                source,
            })?;
        let err = |error| crate::JournalError::Segment {
            segment: seg.clone(),
            error,
        };
        let (h, _) = decode_block_at(&b, 0, None).map_err(err)?;
        let recs = crate::format::block_records(&b, 0, &h).map_err(err)?;
        out.extend(
            recs.into_iter()
                .enumerate()
                .map(|(i, r)| (h.first_seq + i as u64, r)),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Journal, MemStorage, Options};

    fn journal(blocks: &[&[&[u8]]]) -> MemStorage {
        let opts = Options {
            segment_max_bytes: 1 << 20,
            ..Options::default()
        };
        let (mut j, _) = Journal::open(MemStorage::default(), opts).unwrap();
        for b in blocks {
            j.append(b).unwrap();
        }
        j.storage().clone()
    }

    /// Keys of a test record: its bytes.
    fn keys(r: &[u8], out: &mut Vec<u64>) {
        out.extend(r.iter().map(|&b| u64::from(b)));
    }

    /// Postings appended block by block, in steps, are a map from each key to its blocks
    /// (checked against a BTreeMap of the same pairs).
    #[test]
    fn appended_postings_are_the_map_of_their_pairs() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        let mut want: std::collections::BTreeMap<u64, Vec<u32>> = Default::default();
        let mut p = Postings::default();
        let mut block = 0u32;
        for step in 0..40 {
            let mut pairs = Vec::new();
            for _ in 0..rnd(6) {
                let mut keys: Vec<u64> = (0..rnd(8)).map(|_| rnd(50) << (step % 3 * 20)).collect();
                keys.sort_unstable();
                keys.dedup();
                for &k in &keys {
                    want.entry(k).or_default().push(block);
                }
                // (In any order: append sorts.)
                pairs.extend(keys.into_iter().rev().map(|k| (k, block)));
                block += 1;
            }
            p.append(pairs);
            let have: Vec<(u64, Vec<u32>)> = p.iter().map(|(k, v)| (k, v.to_vec())).collect();
            let want_v: Vec<(u64, Vec<u32>)> = want.clone().into_iter().collect();
            assert_eq!(have, want_v, "step {step}");
        }
        assert!(p.len() > 50);
        for (k, v) in &want {
            assert_eq!(p.get(*k), Some(v.as_slice()));
        }
        assert_eq!(p.get(7), want.get(&7).map(Vec::as_slice));
    }

    #[test]
    fn postings_name_the_blocks_that_hold_a_key() {
        let mut s = journal(&[&[b"ab", b"c"], &[b"x"], &[b"a", b"y"]]);
        let seg = s.read(&segment_name(0)).unwrap();
        let idx = SegmentIndex::build(0, &seg, keys).unwrap();
        assert_eq!(idx.blocks_for(&[u64::from(b'a')]), vec![0, 2]);
        assert_eq!(
            idx.blocks_for(&[u64::from(b'x'), u64::from(b'c')]),
            vec![0, 1]
        );
        assert!(idx.blocks_for(&[7]).is_empty());
        assert_eq!(idx.max_key_in(0, 256), Some(u64::from(b'y')));
        assert_eq!(SegmentIndex::decode(&idx.encode()).unwrap(), idx);
        write(&mut s, &idx).unwrap();
        let loaded = load(&s, 0).unwrap();
        let recs = read_blocks(&s, 0, &[loaded.blocks[2]]).unwrap();
        assert_eq!(recs, vec![(3, b"a".to_vec()), (4, b"y".to_vec())]);
    }

    /// The open segment's index, built on a prefix and extended as blocks are appended (a
    /// torn last block left out until it is whole), is the index of the whole segment.
    #[test]
    fn a_prefix_index_extended_equals_the_full_one() {
        let blocks: &[&[&[u8]]] = &[&[b"ab", b"c"], &[b"x"], &[b"a", b"y"], &[b"zz"]];
        let s = journal(blocks);
        let full = s.read(&segment_name(0)).unwrap();
        let whole = SegmentIndex::build(0, &full, keys).unwrap();
        let ends: Vec<u64> = whole.blocks.iter().map(|b| b.offset + b.len).collect();
        // Cut after the second block, and again in the middle of the third.
        let cut = ends[1] as usize;
        let mut idx = SegmentIndex::build_prefix(0, &full[..cut + 10], keys).unwrap();
        assert_eq!(idx.seg_len, ends[1], "the torn third block is left out");
        assert_eq!(idx.blocks.len(), 2);
        idx.extend(&full[idx.seg_len as usize..], keys).unwrap();
        assert_eq!(idx, whole);
        // load_prefix: usable while the segment only grew; not once its end block changed.
        let mut s2 = s.clone();
        let mut p = SegmentIndex::build_prefix(0, &full[..cut], keys).unwrap();
        write(&mut s2, &p).unwrap();
        assert!(load_prefix(&s2, 0).is_some());
        assert!(
            load(&s2, 0).is_none(),
            "a prefix is not a sealed segment's index"
        );
        let mut bad = full.clone();
        bad[cut - 5] ^= 1;
        s2.written.insert(segment_name(0), bad);
        assert!(load_prefix(&s2, 0).is_none());
        p.head = [0; 32];
        write(&mut s2, &p).unwrap();
        s2.written.insert(segment_name(0), full);
        assert!(load_prefix(&s2, 0).is_none(), "a head that does not match");
    }

    #[test]
    fn a_stale_or_damaged_index_is_not_used() {
        let mut s = journal(&[&[b"ab"], &[b"c"]]);
        let seg = s.read(&segment_name(0)).unwrap();
        let idx = SegmentIndex::build(0, &seg, keys).unwrap();
        write(&mut s, &idx).unwrap();
        assert!(load(&s, 0).is_some());
        // Every single-byte change of the index file is refused.
        let good = s.read(&index_name(0)).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            s.written.insert(index_name(0), bad);
            assert!(load(&s, 0).is_none(), "byte {i}");
        }
        s.written.insert(index_name(0), good);
        // The segment grew (or was rewritten) after indexing: stale.
        s.append(&segment_name(0), b"more").unwrap();
        assert!(load(&s, 0).is_none());
        // A damaged segment is not indexed.
        let mut seg = seg.clone();
        let n = seg.len();
        seg[n - 3] ^= 1;
        assert!(SegmentIndex::build(0, &seg, keys).is_err());
    }

    #[test]
    fn decode_never_panics() {
        let s = journal(&[&[b"ab", b"c"], &[b"x"]]);
        let idx = SegmentIndex::build(0, &s.read(&segment_name(0)).unwrap(), keys).unwrap();
        let good = idx.encode();
        for cut in 0..good.len() {
            let _ = SegmentIndex::decode(&good[..cut]);
        }
        // A body with valid checksum but hostile numbers.
        for body in [vec![0xffu8; 40], vec![0x80; 12], vec![1, 2, 3]] {
            let z = zstd::bulk::compress(&body, 1).unwrap();
            let mut rest = (body.len() as u64).to_le_bytes().to_vec();
            rest.extend_from_slice(&z);
            let mut b = INDEX_MAGIC.to_vec();
            b.extend_from_slice(&crc32c::crc32c(&rest).to_le_bytes());
            b.extend_from_slice(&rest);
            let _ = SegmentIndex::decode(&b);
        }
    }
}
