//! Writes into a VE's dirties as integrity records (DESIGN: "writes to the dirties as
//! integrity records"). The dirties belong to one VE that is never reused: what it writes there
//! and reads back stays in its memory variable, so a per-write transaction adds no dependency
//! between VEs. The recorder keeps, per (VE, file), one summary of what the VE wrote into the
//! file over a window — first and last time, byte ranges, calls, bytes — instead of each write;
//! the VE's reads of its own dirties are not recorded at all (the monitor drops them).
//!
//! Why every answer between the other variables stays the same (tested against the oracle in
//! `tests`): a file of the dirties has exactly one writer and one reader, the VE's memory
//! (the monitor only calls a file "own" while its descriptor never left the VE; one that did is
//! recorded write by write). A chain of flows through it, memory → file → memory, starts and
//! ends at the same variable, so it reaches nothing the memory does not reach by itself; only
//! questions that start at the file itself see the window (conservatively: a summary whose
//! window starts before the question's time counts, like T2).

use crate::summary::Summary;
use crate::{Flow, Part};
use model::at::{At, Op, VarId};
use std::collections::HashMap;

/// The most byte ranges a record keeps of a file; more are widened to one covering range.
pub const MAX_RANGES: usize = 64;

/// What the VEs wrote into their dirties and was not emitted yet: (VE, file) → its summary.
#[derive(Debug)]
pub struct Hold {
    held: HashMap<(u64, VarId), Summary>,
    /// The earliest window start held (u64::MAX: none): a take with nothing due costs nothing
    /// (the recorder asks at every batch).
    oldest: u64,
}

impl Default for Hold {
    fn default() -> Hold {
        Hold {
            held: HashMap::new(),
            oldest: u64::MAX,
        }
    }
}

impl Hold {
    /// Whether `at` is a write that an integrity record stands for: data or attributes from
    /// the VE's memory `mem` into a file (write, truncate, xattr, times, a shared writable
    /// mapping), committed.
    pub fn takes(at: &At, mem: VarId) -> bool {
        matches!(
            at.op,
            Op::Write | Op::Truncate | Op::SetXattr | Op::Utime | Op::Mmap
        ) && at.src == mem
            && mem != 0
            && at.dst != 0
            && at.status == model::at::Status::Committed
    }

    /// Adds a write ([`Hold::takes`]) to its file's record.
    pub fn absorb(&mut self, at: &At) {
        let Some(f) = crate::flows(std::slice::from_ref(at), |_| true).pop() else {
            return; // 0 bytes: moved nothing
        };
        self.oldest = self.oldest.min(f.time);
        match self.held.entry((at.ve, at.dst)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Summary::of(&f));
            }
            std::collections::hash_map::Entry::Occupied(mut o) => add(o.get_mut(), &f),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The records whose window began before `before_ns`, and all of VE `ending`'s, oldest
    /// first; they are no longer held.
    pub fn take(&mut self, before_ns: u64, ending: Option<u64>) -> Vec<Summary> {
        if ending.is_none() && before_ns <= self.oldest {
            return Vec::new();
        }
        let mut due: Vec<(u64, VarId)> = self
            .held
            .iter()
            .filter(|((ve, _), s)| s.first < before_ns || Some(*ve) == ending)
            .map(|(k, _)| *k)
            .collect();
        due.sort_unstable_by_key(|k| (self.held[k].first, *k));
        let out = due
            .into_iter()
            .filter_map(|k| self.held.remove(&k))
            .collect();
        self.oldest = self
            .held
            .values()
            .map(|s| s.first)
            .min()
            .unwrap_or(u64::MAX);
        out
    }
}

/// An integrity record as the flows a question at `q` sees, each of one instant and one byte
/// range (what the exact engines take; `back`: a backward question). The record's file is
/// written only by its VE's memory and read only by it, so:
/// - forward, the writes carry the memory to the file at the last of them (a memory reached
///   by then reached the file; after it, nothing more was written);
/// - backward from `q`, the file holds the memory as of the last write not after `q`: at most
///   `q` (conservative inside the window: it may add, never lose, a dependency); nothing if
///   the window begins after `q`;
/// - forward from the file itself (`start`): the VE may have read it back at any time from
///   `q` on (those reads are not recorded), so it flows into the memory then.
pub fn points(s: &Summary, back: bool, q: u64, start: bool) -> Vec<Summary> {
    let at = if back {
        if s.first > q {
            return Vec::new();
        }
        s.last.min(q)
    } else {
        s.last
    };
    let ranges: Vec<Option<crate::Range>> = match &s.dst_part {
        Part::Whole => vec![None],
        Part::Bytes(v) => v.iter().copied().map(Some).collect(),
    };
    let mut out: Vec<Summary> = ranges
        .into_iter()
        .map(|r| Summary {
            first: at,
            last: at,
            dst_part: Part::of(r),
            ..s.clone()
        })
        .collect();
    if start && !back {
        out.push(Summary {
            src: s.dst,
            dst: s.src,
            first: q,
            last: q,
            src_part: Part::Whole,
            dst_part: Part::Whole,
            ..s.clone()
        });
    }
    out
}

fn add(s: &mut Summary, f: &Flow) {
    s.first = s.first.min(f.time);
    s.last = s.last.max(f.time);
    s.count += 1;
    s.bytes += f.len;
    s.dst_part.add(f.dst_range);
    if let Part::Bytes(v) = &s.dst_part {
        if v.len() > MAX_RANGES {
            let (lo, hi) = (v[0].0, v[v.len() - 1].1);
            s.dst_part = Part::Bytes(vec![(lo, hi)]);
        }
    }
}

/// The journal as the recorder writes it with integrity records, from the transactions of
/// the same run recorded write by write: the writes into the dirties `own` (file → its VE)
/// become integrity records (held `hold_ns`), the VE's reads of them are gone. What the oracle
/// test compares; also the model of what the recorder does.
pub fn from_transactions(
    ats: &[At],
    own: &HashMap<VarId, u64>,
    mem_of: impl Fn(u64) -> VarId,
    hold_ns: u64,
) -> (Vec<At>, Vec<Summary>) {
    let mut hold = Hold::default();
    let mut kept = Vec::new();
    let mut sums = Vec::new();
    for a in ats {
        sums.extend(hold.take(a.time_ns.saturating_sub(hold_ns), None));
        let mine = |v: VarId| own.get(&v) == Some(&a.ve);
        if mine(a.dst) && Hold::takes(a, mem_of(a.ve)) {
            hold.absorb(a);
        } else if mine(a.src) && a.dst == mem_of(a.ve) {
            // read back: dropped
        } else {
            kept.push(*a);
        }
    }
    sums.extend(hold.take(u64::MAX, None));
    (kept, sums)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::{SummaryGraph, T1};
    use crate::Graph;
    use std::collections::{BTreeSet, HashSet};

    use crate::testing::{at, Rng};

    #[test]
    fn one_record_per_file_per_window() {
        let mut h = Hold::default();
        for (i, off) in [0u64, 6, 12, 100].into_iter().enumerate() {
            h.absorb(&at(10 + i as u64, 1, Op::Write, 1, 7, off, 6));
        }
        h.absorb(&at(20, 2, Op::Write, 2, 8, 0, 3));
        h.absorb(&at(30, 1, Op::Truncate, 1, 9, 0, 0));
        assert!(h.take(10, None).is_empty(), "nothing began before 10");
        let s = h.take(11, None);
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].src, s[0].dst, s[0].first, s[0].last, s[0].count, s[0].bytes),
            (1, 7, 10, 13, 4, 24)
        );
        assert_eq!(s[0].dst_part, Part::Bytes(vec![(0, 18), (100, 106)]));
        // VE 1 ends: its truncate goes, VE 2's stays.
        let s = h.take(0, Some(1));
        assert_eq!(
            (s.len(), s[0].dst, s[0].dst_part.clone()),
            (1, 9, Part::Whole)
        );
        assert_eq!(h.take(u64::MAX, None).len(), 1);
        assert!(h.is_empty());
    }

    #[test]
    fn scattered_writes_widen_to_one_range() {
        let mut h = Hold::default();
        for i in 0..=MAX_RANGES as u64 {
            h.absorb(&at(i, 1, Op::Write, 1, 7, i * 10, 1));
        }
        let s = h.take(u64::MAX, None);
        assert_eq!(
            s[0].dst_part,
            Part::Bytes(vec![(0, MAX_RANGES as u64 * 10 + 1)])
        );
        assert_eq!(s[0].count, MAX_RANGES as u64 + 1);
    }

    /// The proof against the oracle: random runs of three VEs that read and write shared
    /// files, endpoints and their own dirties (some passed through their dirties: read from
    /// outside, written into the dirties, read back, written out). Every backward and forward
    /// question from every variable that is not a dirties file, at every time, reaches the
    /// same variables (the dirties files left out) whether the run is recorded write by write
    /// (the oracle over every transaction) or with integrity records.
    #[test]
    fn answers_between_the_other_variables_are_unchanged() {
        // Variables: memories 1..=3 (VE = id); shared files 10..14; endpoints 20..22
        // (volatile); VE v's dirties files 30 + 3v .. 30 + 3v + 2.
        let mem = |ve: u64| ve as VarId;
        let volatile: HashSet<VarId> = (20..23).collect();
        let is_file = |v: VarId| (10..15).contains(&v) || v >= 30;
        let own: HashMap<VarId, u64> = (1..=3u64)
            .flat_map(|ve| (0..3).map(move |k| ((30 + 3 * ve + k) as VarId, ve)))
            .collect();
        let mut questions = 0;
        for seed in 1..=300u64 {
            let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let n = 5 + r.next(40);
            let mut ats = Vec::new();
            let mut t = 0;
            for _ in 0..n {
                t += r.next(3); // equal times happen
                let ve = 1 + r.next(3);
                let m = mem(ve);
                let dirt = (30 + 3 * ve + r.next(3)) as VarId;
                let shared = (10 + r.next(5)) as VarId;
                let ep = (20 + r.next(3)) as VarId;
                let (off, len) = (r.next(4) * 8, 1 + r.next(12));
                ats.push(match r.next(10) {
                    0 => at(t, ve, Op::Read, shared, m, off, len),
                    1 => at(t, ve, Op::Write, m, shared, off, len),
                    2 => at(t, ve, Op::Recv, ep, m, 0, len),
                    3 => at(t, ve, Op::Send, m, ep, 0, len),
                    4 | 5 => at(t, ve, Op::Write, m, dirt, off, len),
                    6 => at(t, ve, Op::Read, dirt, m, off, len),
                    7 => at(t, ve, Op::Mmap, m, dirt, off, len),
                    8 => at(t, ve, Op::Mmap, dirt, m, off, len),
                    _ => at(t, ve, Op::Truncate, m, dirt, 0, 0),
                });
            }
            let oracle = Graph::new(crate::flows(&ats, is_file), volatile.clone());
            let (kept, sums) = from_transactions(&ats, &own, mem, 2);
            assert!(kept.len() + sums.len() <= ats.len());
            // As the tracker answers: the transactions as they are, the integrity records as
            // the flows the question sees, with the exact engine.
            let recorded = |back: bool, q: u64, start: VarId| {
                let mut sts: Vec<Summary> = crate::flows(&kept, is_file)
                    .iter()
                    .map(Summary::of)
                    .collect();
                sts.extend(sums.iter().flat_map(|s| points(s, back, q, s.dst == start)));
                T1::from_summaries(sts, volatile.clone()).expect("one range each")
            };
            let set = |a: crate::Answer, all: bool| -> BTreeSet<VarId> {
                a.reached
                    .into_keys()
                    .filter(|v| all || !own.contains_key(v))
                    .collect()
            };
            for v in (1..=3).chain(10..15).chain(20..23) {
                for q in 0..=t + 1 {
                    let a = set(oracle.backward(v, None, q), false);
                    let b = set(recorded(true, q, v).backward(v, None, q), false);
                    assert_eq!(a, b, "seed {seed}: back from {v} at {q}\n{ats:#?}");
                    // Forward, the dirties files reached are the same too (written after
                    // the memory was reached); backward they are not named (read back).
                    let a = set(oracle.forward(v, None, q), true);
                    let b = set(recorded(false, q, v).forward(v, None, q), true);
                    assert_eq!(a, b, "seed {seed}: forward from {v} at {q}\n{ats:#?}");
                    questions += 2;
                }
            }
            // From a dirties file the VE wrote: conservative, never less than the oracle (the
            // other dirties files it passed through the memory aside: reads back are not
            // recorded). One it never wrote holds what JCS or a pristine branch put there, like
            // a read-only branch's files, whose reads are not recorded either.
            for v in own
                .keys()
                .copied()
                .filter(|v| sums.iter().any(|s| s.dst == *v))
            {
                for q in 0..=t + 1 {
                    let a = set(oracle.backward(v, None, q), false);
                    let b = set(recorded(true, q, v).backward(v, None, q), false);
                    assert!(
                        a.is_subset(&b),
                        "seed {seed}: back from {v} at {q}: {a:?} ⊄ {b:?}"
                    );
                    let a = set(oracle.forward(v, None, q), false);
                    let b = set(recorded(false, q, v).forward(v, None, q), false);
                    assert!(
                        a.is_subset(&b),
                        "seed {seed}: forward from {v} at {q}: {a:?} ⊄ {b:?}"
                    );
                    questions += 2;
                }
            }
        }
        assert!(questions > 100_000, "{questions}");
    }

    /// The negative control: a dirties file that another VE also wrote (its descriptor was
    /// passed out) is not the VE's own — treating it so would lose that VE's data, which is why
    /// the monitor records such a file write by write.
    #[test]
    fn a_file_another_ve_writes_is_not_own() {
        let volatile = HashSet::new();
        let is_file = |v: VarId| v >= 30;
        // VE 2 writes VE 1's dirties file 33; VE 1 reads it back and writes shared file 40.
        let ats = vec![
            at(1, 2, Op::Write, 2, 33, 0, 5),
            at(2, 1, Op::Read, 33, 1, 0, 5),
            at(3, 1, Op::Write, 1, 40, 0, 5),
        ];
        let oracle = Graph::new(crate::flows(&ats, is_file), volatile.clone());
        assert!(oracle.backward(40, None, 9).reached.contains_key(&2));
        let own: HashMap<VarId, u64> = HashMap::from([(33, 1)]);
        let (kept, sums) = from_transactions(&ats, &own, |ve| ve as VarId, 2);
        let mut sts: Vec<Summary> = crate::flows(&kept, is_file)
            .iter()
            .map(Summary::of)
            .collect();
        sts.extend(sums);
        let g = SummaryGraph { sts, volatile };
        assert!(
            !g.backward(40, 9).reached.contains_key(&2),
            "dropping the read back loses VE 2"
        );
    }
}
