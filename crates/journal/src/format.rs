//! The bytes on disk (see `docs/journal-format.md`): segment headers, block headers, record
//! framing, the CRC32C checks and the blake3 chain. Pure functions over byte slices.

/// 32-byte blake3 chain hash.
pub type Hash = [u8; 32];

pub const SEGMENT_MAGIC: &[u8; 8] = b"JCSJSEG1";
pub const SEGMENT_HEADER_LEN: usize = 80;
pub const BLOCK_MAGIC: &[u8; 4] = b"JBLK";
pub const BLOCK_HEADER_LEN: usize = 76;
pub const VERSION: u32 = 1;
/// Limits a reader enforces before it allocates anything.
pub const MAX_RECORD: usize = 16 << 20;
pub const MAX_PAYLOAD: usize = 64 << 20;
pub const MAX_RECORDS_PER_BLOCK: u32 = 1 << 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Codec {
    None = 0,
    Zstd = 1,
}

/// Why bytes are not a valid header or block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("truncated: need {need} bytes at offset {offset}, have {have}")]
    Truncated {
        offset: usize,
        need: usize,
        have: usize,
    },
    #[error("bad magic at offset {offset}")]
    Magic { offset: usize },
    #[error("unsupported version {0}")]
    Version(u32),
    #[error("header checksum mismatch at offset {offset}")]
    HeaderCrc { offset: usize },
    #[error("payload checksum mismatch in block {block}")]
    PayloadCrc { block: u64 },
    #[error("block {block} does not continue the hash chain")]
    Chain { block: u64 },
    #[error("block {block} is out of order (expected block {expected})")]
    Order { block: u64, expected: u64 },
    #[error("limit exceeded: {0}")]
    Limit(&'static str),
    #[error("payload of block {block} does not decode: {what}")]
    Payload { block: u64, what: String },
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

fn need(b: &[u8], offset: usize, n: usize) -> Result<(), FormatError> {
    if b.len() < offset + n {
        return Err(FormatError::Truncated {
            offset,
            need: n,
            have: b.len().saturating_sub(offset),
        });
    }
    Ok(())
}

/// A segment's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub number: u64,
    /// Number of this segment's first block (blocks are numbered across segments).
    pub first_block: u64,
    /// Sequence number of this segment's first record.
    pub first_seq: u64,
    /// The chain hash before this segment's first block.
    pub start_chain: Hash,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut h = [0u8; SEGMENT_HEADER_LEN];
        h[0..8].copy_from_slice(SEGMENT_MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&(SEGMENT_HEADER_LEN as u32).to_le_bytes());
        h[16..24].copy_from_slice(&self.number.to_le_bytes());
        h[24..32].copy_from_slice(&self.first_block.to_le_bytes());
        h[32..40].copy_from_slice(&self.first_seq.to_le_bytes());
        h[40..72].copy_from_slice(&self.start_chain);
        let crc = crc32c::crc32c(&h[0..76]);
        h[76..80].copy_from_slice(&crc.to_le_bytes());
        h
    }

    pub fn decode(b: &[u8]) -> Result<SegmentHeader, FormatError> {
        need(b, 0, SEGMENT_HEADER_LEN)?;
        if &b[0..8] != SEGMENT_MAGIC {
            return Err(FormatError::Magic { offset: 0 });
        }
        if crc32c::crc32c(&b[0..76]) != u32_at(b, 76) {
            return Err(FormatError::HeaderCrc { offset: 0 });
        }
        let v = u32_at(b, 8);
        if v != VERSION {
            return Err(FormatError::Version(v));
        }
        let mut start_chain = [0u8; 32];
        start_chain.copy_from_slice(&b[40..72]);
        Ok(SegmentHeader {
            number: u64_at(b, 16),
            first_block: u64_at(b, 24),
            first_seq: u64_at(b, 32),
            start_chain,
        })
    }
}

/// A block's header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    pub codec: Codec,
    pub number: u64,
    pub first_seq: u64,
    pub count: u32,
    pub raw_len: u32,
    pub stored_len: u32,
    pub payload_crc: u32,
    /// blake3(previous chain hash ‖ header bytes 0..40 ‖ stored payload).
    pub chain: Hash,
}

/// Appends an unsigned LEB128 number (record lengths, index fields).
pub(crate) fn put_leb(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads an unsigned LEB128 number of at most `max_bits` at `*o`; None when the bytes end
/// first or it is longer.
pub(crate) fn get_leb(b: &[u8], o: &mut usize, max_bits: u32) -> Option<u64> {
    let mut n = 0u64;
    let mut shift = 0;
    loop {
        let byte = *b.get(*o)?;
        *o += 1;
        if shift >= max_bits {
            return None;
        }
        n |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(n);
        }
        shift += 7;
    }
}

/// Frames records as (LEB128 length, bytes)*.
pub fn frame_records<R: AsRef<[u8]>>(records: &[R]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.iter().map(|r| r.as_ref().len() + 3).sum());
    for r in records {
        put_leb(&mut out, r.as_ref().len() as u64);
        out.extend_from_slice(r.as_ref());
    }
    out
}

/// Splits framed records; `count` must match exactly.
pub fn unframe_records(b: &[u8], count: u32, block: u64) -> Result<Vec<Vec<u8>>, FormatError> {
    let bad = |what: &str| FormatError::Payload {
        block,
        what: what.to_string(),
    };
    let mut out = Vec::with_capacity(count.min(1 << 16) as usize);
    let mut o = 0usize;
    while o < b.len() {
        // A record is at most 16 MiB: its length fits in 5 bytes.
        let start = o;
        let len = get_leb(b, &mut o, 35).ok_or_else(|| {
            if o >= b.len() && o - start < 5 {
                bad("record length runs past the payload")
            } else {
                bad("record length too long")
            }
        })? as usize;
        if len > MAX_RECORD || o + len > b.len() {
            return Err(bad("record runs past the payload"));
        }
        out.push(b[o..o + len].to_vec());
        o += len;
    }
    if out.len() != count as usize {
        return Err(bad(&format!("{} records, header says {count}", out.len())));
    }
    Ok(out)
}

thread_local! {
    /// One zstd context per thread and level, reused: making one per block cost as much as
    /// compressing a small block.
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn compress(raw: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().map(|(l, _)| *l) != Some(level) {
            *c = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        c.as_mut().expect("just made").1.compress(raw)
    })
}

fn decompress(stored: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new()?);
        }
        d.as_mut().expect("just made").decompress(stored, capacity)
    })
}

/// Encodes one block (header + stored payload) that follows chain hash `prev`.
pub fn encode_block<R: AsRef<[u8]>>(
    prev: &Hash,
    number: u64,
    first_seq: u64,
    records: &[R],
    codec: Codec,
    zstd_level: i32,
) -> Result<(BlockHeader, Vec<u8>), FormatError> {
    if records.len() as u64 > u64::from(MAX_RECORDS_PER_BLOCK) {
        return Err(FormatError::Limit("records per block"));
    }
    if records.iter().any(|r| r.as_ref().len() > MAX_RECORD) {
        return Err(FormatError::Limit("record size"));
    }
    let raw = frame_records(records);
    if raw.len() > MAX_PAYLOAD {
        return Err(FormatError::Limit("block payload"));
    }
    let (codec, stored) = match codec {
        Codec::None => (Codec::None, raw.clone()),
        Codec::Zstd => match compress(&raw, zstd_level) {
            Ok(c) if c.len() < raw.len() => (Codec::Zstd, c),
            _ => (Codec::None, raw.clone()),
        },
    };
    let mut h = [0u8; BLOCK_HEADER_LEN];
    h[0..4].copy_from_slice(BLOCK_MAGIC);
    h[4] = codec as u8;
    h[8..16].copy_from_slice(&number.to_le_bytes());
    h[16..24].copy_from_slice(&first_seq.to_le_bytes());
    h[24..28].copy_from_slice(&(records.len() as u32).to_le_bytes());
    h[28..32].copy_from_slice(&(raw.len() as u32).to_le_bytes());
    h[32..36].copy_from_slice(&(stored.len() as u32).to_le_bytes());
    let payload_crc = crc32c::crc32c(&stored);
    h[36..40].copy_from_slice(&payload_crc.to_le_bytes());
    let chain = chain_hash(prev, &h[0..40], &stored);
    h[40..72].copy_from_slice(&chain);
    let crc = crc32c::crc32c(&h[0..72]);
    h[72..76].copy_from_slice(&crc.to_le_bytes());
    let header = BlockHeader {
        codec,
        number,
        first_seq,
        count: records.len() as u32,
        raw_len: raw.len() as u32,
        stored_len: stored.len() as u32,
        payload_crc,
        chain,
    };
    let mut out = Vec::with_capacity(BLOCK_HEADER_LEN + stored.len());
    out.extend_from_slice(&h);
    out.extend_from_slice(&stored);
    Ok((header, out))
}

pub fn chain_hash(prev: &Hash, header40: &[u8], stored: &[u8]) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(prev);
    hasher.update(header40);
    hasher.update(stored);
    *hasher.finalize().as_bytes()
}

/// Decodes the block at `offset` of a segment: header checks, payload CRC, and — when `prev`
/// is given — the chain. Returns the header and the block's total length. The payload is
/// not decompressed here.
pub fn decode_block_at(
    b: &[u8],
    offset: usize,
    prev: Option<&Hash>,
) -> Result<(BlockHeader, usize), FormatError> {
    need(b, offset, BLOCK_HEADER_LEN)?;
    let h = &b[offset..offset + BLOCK_HEADER_LEN];
    if &h[0..4] != BLOCK_MAGIC {
        return Err(FormatError::Magic { offset });
    }
    if crc32c::crc32c(&h[0..72]) != u32_at(h, 72) {
        return Err(FormatError::HeaderCrc { offset });
    }
    let codec = match h[4] {
        0 => Codec::None,
        1 => Codec::Zstd,
        _ => return Err(FormatError::HeaderCrc { offset }),
    };
    let number = u64_at(h, 8);
    let (raw_len, stored_len) = (u32_at(h, 28), u32_at(h, 32));
    if raw_len as usize > MAX_PAYLOAD || stored_len as usize > MAX_PAYLOAD {
        return Err(FormatError::Limit("block payload"));
    }
    let count = u32_at(h, 24);
    if count > MAX_RECORDS_PER_BLOCK {
        return Err(FormatError::Limit("records per block"));
    }
    need(b, offset + BLOCK_HEADER_LEN, stored_len as usize)?;
    let stored = &b[offset + BLOCK_HEADER_LEN..offset + BLOCK_HEADER_LEN + stored_len as usize];
    let payload_crc = u32_at(h, 36);
    if crc32c::crc32c(stored) != payload_crc {
        return Err(FormatError::PayloadCrc { block: number });
    }
    let mut chain = [0u8; 32];
    chain.copy_from_slice(&h[40..72]);
    if let Some(p) = prev {
        if chain_hash(p, &h[0..40], stored) != chain {
            return Err(FormatError::Chain { block: number });
        }
    }
    let header = BlockHeader {
        codec,
        number,
        first_seq: u64_at(h, 16),
        count,
        raw_len,
        stored_len,
        payload_crc,
        chain,
    };
    Ok((header, BLOCK_HEADER_LEN + stored_len as usize))
}

/// The records of a decoded block.
pub fn block_records(
    b: &[u8],
    offset: usize,
    h: &BlockHeader,
) -> Result<Vec<Vec<u8>>, FormatError> {
    let stored = &b[offset + BLOCK_HEADER_LEN..offset + BLOCK_HEADER_LEN + h.stored_len as usize];
    let raw = match h.codec {
        Codec::None => stored.to_vec(),
        Codec::Zstd => {
            decompress(stored, h.raw_len as usize).map_err(|e| FormatError::Payload {
                block: h.number,
                what: e.to_string(),
            })?
        }
    };
    if raw.len() != h.raw_len as usize {
        return Err(FormatError::Payload {
            block: h.number,
            what: "length differs from the header".into(),
        });
    }
    unframe_records(&raw, h.count, h.number)
}

pub fn hex(h: &Hash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_header_round_trip_and_crc() {
        let h = SegmentHeader {
            number: 7,
            first_block: 3,
            first_seq: 99,
            start_chain: [9; 32],
        };
        let b = h.encode();
        assert_eq!(SegmentHeader::decode(&b), Ok(h));
        let mut bad = b;
        bad[20] ^= 1;
        assert_eq!(
            SegmentHeader::decode(&bad),
            Err(FormatError::HeaderCrc { offset: 0 })
        );
        assert!(matches!(
            SegmentHeader::decode(&b[..10]),
            Err(FormatError::Truncated { .. })
        ));
    }

    #[test]
    fn block_round_trip_compressed_and_not() {
        let recs: Vec<Vec<u8>> = (0..200u32)
            .map(|i| format!("record {i} {}", "x".repeat(i as usize % 50)).into_bytes())
            .collect();
        for codec in [Codec::None, Codec::Zstd] {
            let (h, bytes) = encode_block(&[0; 32], 3, 100, &recs, codec, 3).unwrap();
            assert_eq!(h.codec, codec, "zstd shrinks this payload");
            let (d, len) = decode_block_at(&bytes, 0, Some(&[0; 32])).unwrap();
            assert_eq!(d, h);
            assert_eq!(len, bytes.len());
            assert_eq!(block_records(&bytes, 0, &d).unwrap(), recs);
        }
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let recs = vec![b"alpha".to_vec(), b"".to_vec(), vec![7u8; 300]];
        let (_, bytes) = encode_block(&[1; 32], 0, 0, &recs, Codec::Zstd, 3).unwrap();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                assert!(
                    decode_block_at(&b, 0, Some(&[1; 32])).is_err(),
                    "flip of bit {bit} in byte {i} undetected"
                );
            }
        }
        // The wrong predecessor breaks the chain even though the block itself is intact.
        assert_eq!(
            decode_block_at(&bytes, 0, Some(&[2; 32])).unwrap_err(),
            FormatError::Chain { block: 0 }
        );
    }

    #[test]
    fn framing_rejects_lies() {
        let f = frame_records(&[b"ab".to_vec(), vec![0; 200]]);
        assert_eq!(unframe_records(&f, 2, 0).unwrap().len(), 2);
        assert!(unframe_records(&f, 3, 0).is_err());
        assert!(unframe_records(&f[..f.len() - 1], 2, 0).is_err());
        assert!(unframe_records(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01], 1, 0).is_err());
    }
}
