//! What makes the journal searchable without reading all of it: the per-segment indexes
//! (`journal::index`, keyed by `record::key`) and the variable dictionary in the catalog.
//!
//! The journal stays the source of truth: it holds every variable definition before the
//! first transaction that uses it, and every name files got, so the indexes, the dictionary
//! and the names table can be rebuilt from it. The recorder hands definitions to the
//! catalog's dictionary thread and writes them to the journal once it has committed them; a
//! definition the catalog lost (a recorder killed before its
//! dictionary thread wrote it, a power failure with SQLite's synchronous=NORMAL) is added back
//! when its segment is indexed, or, for the open segment, when the recorder starts.

use crate::{io_err, Result};
use journal::index::{self, SegmentIndex};
use journal::writer::BlockKeys;
use journal::{DirStorage, Storage};
use model::at::{VarDef, VarId};
use record::{key, Record};
use std::path::Path;
use store::Catalog;

/// The keys of a record for the indexes; its variable definitions and names into `defs` and
/// `names` (for the catalog).
fn keys_into<'a>(
    defs: &'a mut Vec<(VarId, VarDef)>,
    names: &'a mut Vec<model::at::Name>,
) -> impl FnMut(&[u8], &mut Vec<u64>) + 'a {
    |r, out| {
        if let Ok(rec) = Record::decode(r) {
            rec.keys(out);
            match rec {
                Record::Vars(d) => defs.extend(d),
                Record::Names(n) => names.extend(n),
                _ => {}
            }
        }
    }
}

/// Indexes every sealed segment of the journal in `dir` that has no valid index, adding its
/// variable definitions to the catalog first. Returns how many segments were indexed. A
/// damaged segment is skipped (and reported by `jcs verify`). Reads each segment whole: what
/// a recorder that starts runs, so that definitions the catalog lost come back.
pub fn index_sealed(dir: &Path, cat: &Catalog) -> Result<usize> {
    index_sealed_with(dir, cat, None)
}

/// [`index_sealed`], extending the index a segment got while it was the open one (only the
/// bytes written after it are read and decoded): what the running recorder's indexer does.
/// The definitions and names of that prefix reached the catalog when it was indexed (the
/// prefix is written only after they did), by this recorder or, for a segment that was open
/// when it started, by the whole read of the open segment at its start. Those of the bytes
/// after it are added when `missed()` says the recorder's dictionary failed to write some
/// (asked after the bytes are read: a block holds a definition the catalog may lack only if it
/// was written after such a failure); otherwise the dictionary wrote them before the journal
/// got them, and adding them again cost the indexer 1.5-2 µs per file a VE created.
///
/// `known`: the blocks the journal's writer reported with their keys ([`BlockKeys`]), taken
/// where they continue an index instead of being read back; empty once `missed()` (their
/// definitions are then needed, and only a read gives them).
pub fn index_sealed_from_prefixes(
    dir: &Path,
    cat: &Catalog,
    missed: &dyn Fn() -> bool,
    known: &[BlockKeys],
) -> Result<usize> {
    index_sealed_with(dir, cat, Some((missed, known)))
}

/// Extends `idx` (of segment `name`) to `len`: with the `known` blocks where they continue
/// it, reading and decoding only the bytes between. Stops short at a block that is not whole
/// or does not continue the chain.
fn extend_to<S: Storage>(
    storage: &S,
    name: &str,
    idx: &mut SegmentIndex,
    len: u64,
    known: &[BlockKeys],
    keys: &mut impl FnMut(&[u8], &mut Vec<u64>),
) -> std::io::Result<()> {
    let seg = idx.segment;
    let known: Vec<&BlockKeys> = known.iter().filter(|b| b.segment == seg).collect();
    let mut i = known.partition_point(|b| b.block.offset < idx.seg_len);
    while idx.seg_len < len {
        // (All at once: each call rebuilds the flat postings.)
        i += idx.extend_known(known[i..].iter().copied());
        if idx.seg_len >= len {
            break;
        }
        // Up to the next reported block, or the end; everything to the end when the next one
        // does not continue what is read.
        let upto = match known.get(i) {
            Some(b) if b.block.offset > idx.seg_len && b.block.offset <= len => b.block.offset,
            _ => {
                i = known.len();
                len
            }
        };
        let tail = storage.read_range(name, idx.seg_len, upto - idx.seg_len)?;
        if idx.extend(&tail, &mut *keys).is_err() || idx.seg_len != upto {
            // Not whole yet, or damaged: indexed up to there.
            break;
        }
    }
    Ok(())
}

/// An index of no block yet of segment `seg` (its header only), to extend with `known`: None
/// when the writer reported none of its blocks (a whole read is as good then).
fn header_index<S: Storage>(
    storage: &S,
    name: &str,
    seg: u64,
    known: &[BlockKeys],
) -> Option<SegmentIndex> {
    if !known.iter().any(|b| b.segment == seg) {
        return None;
    }
    let header = storage
        .read_range(name, 0, journal::format::SEGMENT_HEADER_LEN as u64)
        .ok()?;
    SegmentIndex::build_prefix(seg, &header, |_, _| {}).ok()
}

/// `from_prefix`: extend an open segment's index (`Some((missed, known))`, see above), else
/// build each index from the whole segment and add every definition and name.
fn index_sealed_with(
    dir: &Path,
    cat: &Catalog,
    from_prefix: Option<(&dyn Fn() -> bool, &[BlockKeys])>,
) -> Result<usize> {
    let mut storage = DirStorage::new(dir).map_err(io_err("open the journal at", dir))?;
    let mut n = 0;
    for seg in journal::sealed_segments(&storage)? {
        if index::load(&storage, seg).is_some() {
            continue;
        }
        let name = journal::journal::segment_name(seg);
        let mut defs = Vec::new();
        let mut names = Vec::new();
        // The open segment's index, extended to the end: the same index as a whole build
        // (`journal::index` tests it), when it reaches the end undamaged.
        let extended = from_prefix.and_then(|(_, known)| {
            let mut idx = index::load_prefix(&storage, seg)
                .or_else(|| header_index(&storage, &name, seg, known))?;
            let len = storage.len(&name).ok()?;
            let mut keys = keys_into(&mut defs, &mut names);
            extend_to(&storage, &name, &mut idx, len, known, &mut keys).ok()?;
            (idx.seg_len == len).then_some(idx)
        });
        let add = match (&extended, from_prefix) {
            (Some(_), Some((missed, _))) => missed(),
            _ => true,
        };
        let idx = match extended {
            Some(idx) => idx,
            None => {
                defs.clear();
                names.clear();
                let bytes = storage
                    .read(&name)
                    .map_err(io_err("read", &dir.join(&name)))?;
                match SegmentIndex::build(seg, &bytes, keys_into(&mut defs, &mut names)) {
                    Ok(i) => i,
                    Err(e) => {
                        tracing::warn!(segment = %name, error = %e, "segment not indexed");
                        continue;
                    }
                }
            }
        };
        if add {
            cat.add_vars(&defs)?;
            cat.add_names(&names)?;
        }
        index::write(&mut storage, &idx).map_err(io_err("write the index of", &dir.join(&name)))?;
        n += 1;
    }
    Ok(n)
}

/// Indexes the open segment up to its last whole block, extending the index it had (only
/// the bytes written since are read), and adds the variable definitions and names of those
/// blocks to the catalog when `missed()` (see [`index_sealed_from_prefixes`]): a question
/// reads the open segment through it too, and only its newest bytes whole. Returns whether
/// the index grew.
/// `known`: as for [`index_sealed_from_prefixes`].
pub fn index_open(
    dir: &Path,
    cat: &Catalog,
    missed: &dyn Fn() -> bool,
    known: &[BlockKeys],
) -> Result<bool> {
    let mut storage = DirStorage::new(dir).map_err(io_err("open the journal at", dir))?;
    let Some(&seg) = journal::segment_numbers(&storage)?.last() else {
        return Ok(false);
    };
    let name = journal::journal::segment_name(seg);
    let mut defs = Vec::new();
    let mut names = Vec::new();
    let mut keys = keys_into(&mut defs, &mut names);
    let len = storage
        .len(&name)
        .map_err(io_err("stat", &dir.join(&name)))?;
    let idx = match index::load_prefix(&storage, seg) {
        Some(idx) if idx.seg_len == len => return Ok(false),
        Some(mut idx) => {
            let before = idx.seg_len;
            extend_to(&storage, &name, &mut idx, len, known, &mut keys)
                .map_err(io_err("read", &dir.join(&name)))?;
            if idx.seg_len == before {
                return Ok(false);
            }
            idx
        }
        None => match header_index(&storage, &name, seg, known) {
            Some(mut idx) => {
                extend_to(&storage, &name, &mut idx, len, known, &mut keys)
                    .map_err(io_err("read", &dir.join(&name)))?;
                idx
            }
            None => {
                let bytes = storage
                    .read(&name)
                    .map_err(io_err("read", &dir.join(&name)))?;
                match SegmentIndex::build_prefix(seg, &bytes, &mut keys) {
                    Ok(i) => i,
                    Err(_) => return Ok(false),
                }
            }
        },
    };
    drop(keys);
    if missed() {
        cat.add_vars(&defs)?;
        cat.add_names(&names)?;
    }
    index::write(&mut storage, &idx).map_err(io_err("write the index of", &dir.join(&name)))?;
    Ok(true)
}

/// What a starting recorder needs of the journal ([`open_segment`]).
#[derive(Debug, Default)]
pub struct Start {
    /// The next variable id to hand out.
    pub next_var: VarId,
    /// The time of each VE's last transaction in the open segment (where a VE that a killed
    /// recorder was recording has its last records): where the gap a new recorder writes for
    /// it starts.
    pub last_seen: std::collections::HashMap<u64, u64>,
}

/// Indexes the sealed segments, brings the catalog up to date with the open segment's
/// definitions and names (only what it lacks), and finds the next variable id — after every
/// id in the catalog, in the sealed segments' indexes and in the open segment — and each VE's
/// last transaction there. Reads the open segment only, however long the journal is, and once
/// (each record decoded once).
pub fn open_segment(dir: &Path, cat: &Catalog) -> Result<Start> {
    index_sealed(dir, cat)?;
    let storage = DirStorage::new(dir).map_err(io_err("open the journal at", dir))?;
    let segs = journal::segment_numbers(&storage)?;
    let mut max = cat.max_var_id()?;
    for &seg in &segs {
        if let Some(idx) = index::load(&storage, seg) {
            if let Some(k) = idx.max_key_in(key::VAR, key::VE) {
                max = max.max((k - key::VAR) as VarId);
            }
        }
    }
    let mut last_seen = std::collections::HashMap::new();
    if let Some(&last) = segs.last() {
        let (records, _) = journal::read_segment_from(&storage, last, 0)?;
        let (mut defs, mut names) = (Vec::new(), Vec::new());
        for (_, r) in &records {
            match Record::decode(r) {
                Ok(Record::Vars(d)) => defs.extend(d),
                Ok(Record::Names(n)) => names.extend(n),
                Ok(Record::Ats(ats)) => {
                    for a in ats {
                        let t = last_seen.entry(a.ve).or_insert(0);
                        *t = (*t).max(a.time_ns);
                    }
                }
                _ => {}
            }
        }
        // Only what the catalog lacks (a definition its dictionary thread could not write):
        // the dictionary writes each before the journal gets it, so usually nothing — and
        // adding a long segment's definitions again took seconds, longer than `jcs run` waited
        // for a daemon to come up.
        let missing: Vec<(VarId, VarDef)> = cat.missing_vars(&defs)?.into_iter().cloned().collect();
        cat.add_vars(&missing)?;
        let missing: Vec<model::at::Name> =
            cat.missing_names(&names)?.into_iter().cloned().collect();
        cat.add_names(&missing)?;
        max = max.max(defs.iter().map(|(id, _)| *id).max().unwrap_or(0));
    }
    Ok(Start {
        next_var: max + 1,
        last_seen,
    })
}

/// The next variable id to hand out ([`open_segment`]).
pub fn next_var_id(dir: &Path, cat: &Catalog) -> Result<VarId> {
    open_segment(dir, cat).map(|s| s.next_var)
}

#[cfg(test)]
mod tests {
    use super::*;
    use journal::{Journal, Options};

    /// A journal in `dir`, opened for appending, with segments of `segment_max_bytes`.
    fn journal_in(dir: &Path, segment_max_bytes: u64) -> Journal<DirStorage> {
        let opts = Options {
            segment_max_bytes,
            ..Options::default()
        };
        Journal::open(DirStorage::new(dir).unwrap(), opts)
            .unwrap()
            .0
    }

    /// Sealed segments are indexed and their definitions reach the catalog; the next id is
    /// past every definition, the open segment's included; version-1 JSON definitions count.
    #[test]
    fn indexes_sealed_segments_and_finds_the_next_id() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("journal");
        let cat = Catalog::open(&d.path().join("catalog.db")).unwrap();
        let mut j = journal_in(&dir, 1024);
        let legacy = br#"V[[3,{"kind":"memory","ve":1}]]"#.to_vec();
        j.append(&[legacy]).unwrap();
        for i in 0..40u32 {
            let rec = Record::Vars(vec![(10 + i, VarDef::Memory { ve: u64::from(i) })]);
            j.append(&[rec.encode()]).unwrap();
        }
        drop(j);
        let storage = DirStorage::new(&dir).unwrap();
        assert!(journal::segment_numbers(&storage).unwrap().len() > 2);
        assert_eq!(next_var_id(&dir, &cat).unwrap(), 50);
        let sealed = journal::sealed_segments(&storage).unwrap();
        assert!(sealed.iter().all(|&s| index::load(&storage, s).is_some()));
        assert_eq!(cat.max_var_id().unwrap(), 49);
        assert_eq!(cat.var(3).unwrap(), Some(VarDef::Memory { ve: 1 }));
        assert_eq!(index_sealed(&dir, &cat).unwrap(), 0, "indexed once");
    }

    /// The running indexer seals a segment by extending the index it had while open (only
    /// the tail is read): the same index as a whole read, with the tail's definitions added.
    /// The prefix's definitions are not read again — here they were given to another catalog,
    /// so this one lacks them, which shows the prefix was reused — and the whole read a
    /// starting recorder does adds them (the repair of a catalog that lost some).
    #[test]
    fn a_sealed_segment_extends_its_open_index_and_a_start_reads_it_whole() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("journal");
        let cat = Catalog::open(&d.path().join("catalog.db")).unwrap();
        let other = Catalog::open(&d.path().join("other.db")).unwrap();
        let mut j = journal_in(&dir, 2048);
        let def = |i: u32| Record::Vars(vec![(i, VarDef::Memory { ve: u64::from(i) })]).encode();
        for i in 1..=5 {
            j.append(&[def(i)]).unwrap();
        }
        let storage = DirStorage::new(&dir).unwrap();
        assert_eq!(journal::segment_numbers(&storage).unwrap(), vec![0]);
        assert!(
            index_open(&dir, &other, &|| true, &[]).unwrap(),
            "the open segment's prefix"
        );
        for i in 6..=60 {
            j.append(&[def(i)]).unwrap();
        }
        drop(j);
        assert!(journal::sealed_segments(&storage).unwrap().contains(&0));
        // (The dictionary failed to write some: the tail's definitions are added.)
        assert!(index_sealed_from_prefixes(&dir, &cat, &|| true, &[]).unwrap() >= 1);
        let extended = index::load(&storage, 0).expect("a sealed segment's index");
        let bytes = storage.read(&journal::journal::segment_name(0)).unwrap();
        let whole = SegmentIndex::build(0, &bytes, record::keys_of).unwrap();
        assert_eq!(extended, whole);
        let in_cat = |c: &Catalog, i: u32| c.var(i).unwrap().is_some();
        assert!(
            (1..=5).all(|i| !in_cat(&cat, i)),
            "the prefix was read again"
        );
        assert!(in_cat(&cat, 6), "the tail's definitions");
        // A starting recorder reads sealed segments without an index whole.
        std::fs::remove_file(dir.join(index::index_name(0))).unwrap();
        assert!(index_sealed(&dir, &cat).unwrap() >= 1);
        assert!((1..=5).all(|i| in_cat(&cat, i)));
    }

    /// The running indexer takes the blocks the writer reported with their keys and reads
    /// only the others (here: those written before the writer started, as by a recorder
    /// before a restart): the index equals a whole read's, across a sealed segment and the
    /// open one. A reported key that no read would give ends up in the index — what shows
    /// the reported blocks were not read back.
    #[test]
    fn the_indexer_takes_the_writers_keys_and_reads_only_the_rest() {
        use journal::writer::{Indexing, Writer};
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("journal");
        let cat = Catalog::open(&d.path().join("catalog.db")).unwrap();
        let mut j = journal_in(&dir, 1500);
        let def = |i: u32| Record::Vars(vec![(i, VarDef::Memory { ve: u64::from(i) })]);
        for i in 1..=3 {
            j.append(&[def(i).encode()]).unwrap();
        }
        assert!(index_open(&dir, &cat, &|| false, &[]).unwrap());
        // Unreported: a recorder before this one wrote them.
        for i in 4..=6 {
            j.append(&[def(i).encode()]).unwrap();
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let w = Writer::spawn_indexed(
            j,
            16,
            4,
            std::time::Duration::ZERO,
            Some(Indexing {
                keys_of: Box::new(record::keys_of),
                tx,
            }),
        );
        for i in 7..=120u32 {
            if i % 2 == 0 {
                let mut keys = Vec::new();
                def(i).keys(&mut keys);
                w.offer_keyed(vec![def(i).encode()], Some(keys)).unwrap();
            } else {
                w.append(def(i).encode()).unwrap();
            }
        }
        w.close().unwrap();
        let known: Vec<BlockKeys> = rx.try_iter().collect();
        assert!(!known.is_empty());
        let storage = DirStorage::new(&dir).unwrap();
        let segs = journal::segment_numbers(&storage).unwrap();
        assert!(segs.len() >= 3, "{segs:?}");
        // A copy, indexed with a key no record has added to the reports.
        let copy = d.path().join("copy");
        std::fs::create_dir(&copy).unwrap();
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
        }
        let marked: Vec<BlockKeys> = known
            .iter()
            .cloned()
            .map(|mut b| {
                b.keys.push(u64::MAX);
                b
            })
            .collect();
        index_sealed_from_prefixes(&copy, &cat, &|| false, &marked).unwrap();
        index_open(&copy, &cat, &|| false, &marked).unwrap();
        let copied = DirStorage::new(&copy).unwrap();
        for &seg in &segs {
            let idx = index::load_prefix(&copied, seg).unwrap();
            assert_eq!(
                idx.postings.get(u64::MAX).map(<[u32]>::len),
                Some(known.iter().filter(|b| b.segment == seg).count()),
                "segment {seg}: the reported blocks were read back"
            );
        }
        // The journal itself, with the honest reports: the index of a whole read.
        assert!(index_sealed_from_prefixes(&dir, &cat, &|| false, &known).unwrap() >= 1);
        assert!(index_open(&dir, &cat, &|| false, &known).unwrap());
        for &seg in &segs {
            let bytes = storage.read(&journal::journal::segment_name(seg)).unwrap();
            let whole = SegmentIndex::build(seg, &bytes, record::keys_of).unwrap();
            assert_eq!(
                index::load_prefix(&storage, seg).unwrap(),
                whole,
                "segment {seg}"
            );
        }
    }

    /// While the recorder's dictionary wrote every definition (`missed()` false), the running
    /// indexer indexes without adding them again; once it missed some, it adds what it reads.
    #[test]
    fn the_running_indexer_adds_definitions_only_after_the_dictionary_missed_some() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("journal");
        let cat = Catalog::open(&d.path().join("catalog.db")).unwrap();
        let mut j = journal_in(&dir, Options::default().segment_max_bytes);
        let def = |i: u32| Record::Vars(vec![(i, VarDef::Memory { ve: u64::from(i) })]).encode();
        j.append(&[def(1)]).unwrap();
        assert!(index_open(&dir, &cat, &|| false, &[]).unwrap());
        assert_eq!(
            cat.var(1).unwrap(),
            None,
            "added though the dictionary had it"
        );
        j.append(&[def(2)]).unwrap();
        assert!(index_open(&dir, &cat, &|| true, &[]).unwrap());
        assert_eq!(cat.var(2).unwrap(), Some(VarDef::Memory { ve: 2 }));
        // (1 was indexed before: the whole read at the next start adds it.)
        assert_eq!(cat.var(1).unwrap(), None);
        drop(j);
        assert_eq!(next_var_id(&dir, &cat).unwrap(), 3);
        assert_eq!(cat.var(1).unwrap(), Some(VarDef::Memory { ve: 1 }));
    }

    /// One read of the open segment gives the next id and each VE's last transaction time.
    #[test]
    fn the_open_segment_gives_the_next_id_and_each_ves_last_transaction() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("journal");
        let cat = Catalog::open(&d.path().join("catalog.db")).unwrap();
        let mut j = journal_in(&dir, Options::default().segment_max_bytes);
        let at = |ve: u64, time_ns: u64| model::at::At {
            time_ns,
            ve,
            pid: 1,
            tid: 1,
            op: model::at::Op::Exit,
            status: model::at::Status::Committed,
            src: 0,
            dst: 0,
            off: 0,
            len: 0,
            result: 0,
        };
        let def = Record::Vars(vec![(6, VarDef::Memory { ve: 7 })]).encode();
        j.append(&[
            def,
            Record::Ats(vec![at(7, 5), at(8, 3), at(7, 9)]).encode(),
        ])
        .unwrap();
        drop(j);
        let s = open_segment(&dir, &cat).unwrap();
        assert_eq!(s.next_var, 7);
        assert_eq!(s.last_seen, [(7, 9), (8, 3)].into_iter().collect());
        assert_eq!(cat.var(6).unwrap(), Some(VarDef::Memory { ve: 7 }));
    }
}
