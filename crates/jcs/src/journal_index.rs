//! What makes the journal searchable without reading all of it: the per-segment indexes
//! (`journal::index`, keyed by variable and by VE) and the variable dictionary in the catalog.
//!
//! The journal stays the source of truth: it holds every variable definition (`V` records)
//! before the first transaction that uses it, so both the indexes and the dictionary can be
//! rebuilt from it. The daemon adds definitions to the catalog before it writes them to the
//! journal; a definition the catalog lost (a power failure with SQLite's synchronous=NORMAL)
//! is added back when its segment is indexed, or, for the open segment, when the daemon starts.

use crate::catalog::Catalog;
use crate::daemon::{VeStats, REC_ATS, REC_STATS, REC_VARS};
use anyhow::{Context, Result};
use journal::index::{self, SegmentIndex};
use journal::{DirStorage, Storage};
use model::at::{VarDef, VarId};
use std::path::Path;

/// Index keys: a variable (its id), a VE (its id).
const KEY_VAR: u64 = 1 << 56;
const KEY_VE: u64 = 2 << 56;

pub fn var_key(id: VarId) -> u64 {
    KEY_VAR | u64::from(id)
}

pub fn ve_key(ve: u64) -> u64 {
    KEY_VE | (ve & (KEY_VAR - 1))
}

/// The variable definitions of a `V` record.
pub fn record_vars(r: &[u8]) -> Option<Vec<(VarId, VarDef)>> {
    match r.split_first() {
        Some((&REC_VARS, body)) => serde_json::from_slice(body).ok(),
        _ => None,
    }
}

/// The index keys of one journal record: the variables it defines or uses, and its VEs.
pub fn record_keys(r: &[u8], out: &mut Vec<u64>) {
    match r.split_first() {
        Some((&REC_VARS, _)) => {
            if let Some(defs) = record_vars(r) {
                out.extend(defs.iter().map(|(id, _)| var_key(*id)));
            }
        }
        Some((&REC_ATS, body)) => {
            if let Ok(ats) = model::at::decode_batch(body) {
                for a in ats {
                    out.push(ve_key(a.ve));
                    out.extend([a.src, a.dst].into_iter().filter(|&v| v != 0).map(var_key));
                }
            }
        }
        Some((&REC_STATS, body)) => {
            if let Ok(s) = serde_json::from_slice::<VeStats>(body) {
                out.push(ve_key(s.ve));
            }
        }
        _ => {}
    }
}

/// Indexes every sealed segment of the journal in `dir` that has no valid index, adding its
/// variable definitions to the catalog first. Returns how many segments were indexed. A
/// damaged segment is skipped (and reported by `jcs verify`).
pub fn index_sealed(dir: &Path, cat: &Catalog) -> Result<usize> {
    let mut storage = DirStorage::new(dir)?;
    let segs = journal::segment_numbers(&storage)?;
    let mut n = 0;
    for &seg in segs.iter().rev().skip(1).rev() {
        if index::load(&storage, seg).is_some() {
            continue;
        }
        let bytes = storage.read(&journal::journal::segment_name(seg))?;
        let mut defs = Vec::new();
        let idx = match SegmentIndex::build(seg, &bytes, |r, out| {
            if let Some(d) = record_vars(r) {
                defs.extend(d);
            }
            record_keys(r, out);
        }) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("jcs: segment {seg:016x} not indexed: {e}");
                continue;
            }
        };
        cat.add_vars(&defs)?;
        index::write(&mut storage, &idx)
            .with_context(|| format!("write the index of segment {seg:016x}"))?;
        n += 1;
    }
    Ok(n)
}

/// The next variable id to hand out: after every id in the catalog, in the indexes of the
/// sealed segments, and in the open segment (whose definitions are added to the catalog).
/// Reads the open segment only, however long the journal is.
pub fn next_var_id(dir: &Path, cat: &Catalog) -> Result<VarId> {
    index_sealed(dir, cat)?;
    let storage = DirStorage::new(dir)?;
    let segs = journal::segment_numbers(&storage)?;
    let mut max = cat.max_var_id()?;
    for &seg in &segs {
        if let Some(idx) = index::load(&storage, seg) {
            if let Some(k) = idx.max_key_in(KEY_VAR, KEY_VE) {
                max = max.max((k - KEY_VAR) as VarId);
            }
        }
    }
    if let Some(&last) = segs.last() {
        let (records, _) = journal::read_segment_from(&storage, last, 0)?;
        let defs: Vec<(VarId, VarDef)> = records
            .iter()
            .filter_map(|(_, r)| record_vars(r))
            .flatten()
            .collect();
        cat.add_vars(&defs)?;
        max = max.max(defs.iter().map(|(id, _)| *id).max().unwrap_or(0));
    }
    Ok(max + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::at::{encode_batch, At, Op, Status};

    #[test]
    fn keys_of_records() {
        let mut v = vec![REC_VARS];
        v.extend(serde_json::to_vec(&vec![(7 as VarId, VarDef::Memory { ve: 3 })]).unwrap());
        let at = At {
            time_ns: 1,
            ve: 3,
            pid: 1,
            tid: 1,
            op: Op::Write,
            status: Status::Committed,
            src: 7,
            dst: 9,
            off: 0,
            len: 1,
            result: 1,
        };
        let mut a = vec![REC_ATS];
        a.extend(encode_batch(&[at]));
        let mut out = vec![];
        record_keys(&v, &mut out);
        record_keys(&a, &mut out);
        record_keys(b"Zjunk", &mut out);
        record_keys(&[REC_ATS, 0xff, 0xff], &mut out);
        assert_eq!(out, vec![var_key(7), ve_key(3), var_key(7), var_key(9)]);
        assert_ne!(var_key(3), ve_key(3));
    }
}
