//! Causality over atomic transactions (docs/design.md §5): which variables' data could
//! have flowed into a variable before a time (backward), and where a variable's data could have
//! gone after a time (forward). This is the *oracle*: a brute-force sweep, slow and obviously
//! correct, that every summarization tier is checked against.
//!
//! The model, precisely:
//! - A transaction that moves data is a *flow* from its source variable to its target variable
//!   at its time: read, recv, exec and a private mmap move file or endpoint → the VE's memory;
//!   write, send, truncate, symlink and a shared writable mmap move memory → file or endpoint;
//!   rename and link move the old name's data to the new name. Other operations (open, close,
//!   fork, connect, ...) move no data.
//! - File variables have bytes: a read or write of `len` bytes at `off` touches `[off, off+len)`
//!   of the file; a read depends only on writes that overlapped the bytes it read. Other flows
//!   touch the whole file. Memory variables (one per VE) are one unit: everything read into a
//!   VE may flow into everything it writes later.
//! - Endpoint variables are *volatile*: what a VE sends to an endpoint does not come back out of
//!   it, so a later receive from the endpoint does not depend on the earlier send. An endpoint
//!   is a source (backward) or a sink (forward), never a relay.
//! - Reachability is time-respecting: `u` at `t` reaches `v` if a chain of flows with
//!   non-decreasing times, the first at or after `t`, carries data from `u` to `v`. Flows with
//!   equal times may chain in any order.

pub mod integrity;
pub mod summary;

use model::at::{At, Op, VarId};
use std::collections::{BTreeMap, HashMap, HashSet};

/// A half-open byte interval `[start, end)` of a file.
pub type Range = (u64, u64);

/// One transaction that moves data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub time: u64,
    pub src: VarId,
    pub dst: VarId,
    /// The bytes of `src` it read (None: all of it).
    pub src_range: Option<Range>,
    /// The bytes of `dst` it wrote (None: all of it).
    pub dst_range: Option<Range>,
    /// How many bytes it moved (0 where the transaction does not say: exec, rename, ...).
    pub len: u64,
    /// Index of the transaction in the slice it came from.
    pub at: usize,
}

/// Whether a committed transaction of operation `op` (with both ends, and bytes where it
/// counts them) moves data: the operations [`flows`] takes.
pub fn moves_data(op: Op) -> bool {
    matches!(
        op,
        Op::Read
            | Op::Recv
            | Op::Write
            | Op::Send
            | Op::Mmap
            | Op::Exec
            | Op::Truncate
            | Op::Symlink
            | Op::Rename
            | Op::Link
            | Op::SetXattr
            | Op::GetXattr
            | Op::Utime
    )
}

/// The flows among `ats` (in their order), given which variables are files (they have bytes).
pub fn flows(ats: &[At], is_file: impl Fn(VarId) -> bool) -> Vec<Flow> {
    ats.iter()
        .enumerate()
        .filter(|(_, a)| {
            a.src != 0 && a.dst != 0 && a.status == model::at::Status::Committed && moves_data(a.op)
        })
        .filter_map(|(i, a)| {
            let bytes = (a.off, a.off.saturating_add(a.len));
            let (src_range, dst_range) = match a.op {
                Op::Read | Op::Recv => (is_file(a.src).then_some(bytes), None),
                Op::Write | Op::Send => (None, is_file(a.dst).then_some(bytes)),
                Op::Mmap => (
                    is_file(a.src).then_some(bytes),
                    is_file(a.dst).then_some(bytes),
                ),
                // Exec, truncate, symlink, rename, link, xattrs, times: the whole file.
                _ => (None, None),
            };
            // A zero-byte read or write moves nothing.
            if matches!(a.op, Op::Read | Op::Recv | Op::Write | Op::Send | Op::Mmap) && a.len == 0 {
                return None;
            }
            Some(Flow {
                time: a.time_ns,
                src: a.src,
                dst: a.dst,
                src_range,
                dst_range,
                len: a.len,
                at: i,
            })
        })
        .collect()
}

/// The parts of a variable involved: all of it, or some bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Whole,
    Bytes(Vec<Range>),
}

impl Part {
    pub fn of(r: Option<Range>) -> Part {
        match r {
            None => Part::Whole,
            Some(r) => Part::Bytes(vec![r]),
        }
    }

    /// Whether the flow's bytes `r` (None: all) touch this part.
    fn touches(&self, r: Option<Range>) -> bool {
        match (self, r) {
            (Part::Whole, _) | (_, None) => true,
            (Part::Bytes(v), Some((a, b))) => v.iter().any(|&(x, y)| x < b && a < y),
        }
    }

    /// Adds `r`; whether anything was new.
    pub fn add(&mut self, r: Option<Range>) -> bool {
        match (&mut *self, r) {
            (Part::Whole, _) => false,
            (_, None) => {
                *self = Part::Whole;
                true
            }
            (Part::Bytes(v), Some((a, b))) => {
                if a >= b || v.iter().any(|&(x, y)| x <= a && b <= y) {
                    return false;
                }
                v.push((a, b));
                v.sort_unstable();
                let mut merged: Vec<Range> = Vec::with_capacity(v.len());
                for &(x, y) in v.iter() {
                    match merged.last_mut() {
                        Some(last) if x <= last.1 => last.1 = last.1.max(y),
                        _ => merged.push((x, y)),
                    }
                }
                *v = merged;
                true
            }
        }
    }
}

/// What a query reached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// Every variable reached (the start included), with the parts involved.
    pub reached: BTreeMap<VarId, Part>,
    /// The flows that carried the data, as indexes into the graph's flows, ascending.
    pub flows: Vec<usize>,
}

/// Flows sorted by time, and which variables are volatile (endpoints).
#[derive(Debug, Clone)]
pub struct Graph {
    pub flows: Vec<Flow>,
    pub volatile: HashSet<VarId>,
}

impl Graph {
    pub fn new(mut flows: Vec<Flow>, volatile: HashSet<VarId>) -> Graph {
        flows.sort_by_key(|f| (f.time, f.at));
        Graph { flows, volatile }
    }

    /// Groups of flows with equal times, as index ranges, in time order.
    fn groups(&self) -> Vec<std::ops::Range<usize>> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.flows.len() {
            let mut j = i + 1;
            while j < self.flows.len() && self.flows[j].time == self.flows[i].time {
                j += 1;
            }
            out.push(i..j);
            i = j;
        }
        out
    }

    /// Everything whose data could have flowed into `var` (its bytes `part`, None: all) by time
    /// `at` (inclusive).
    pub fn backward(&self, var: VarId, part: Option<Range>, at: u64) -> Answer {
        let mut need: HashMap<VarId, Part> = HashMap::from([(var, Part::of(part))]);
        let mut used = HashSet::new();
        for g in self.groups().into_iter().rev() {
            if self.flows[g.start].time > at {
                continue;
            }
            // Equal times chain in any order: repeat until nothing changes.
            loop {
                let mut changed = false;
                for i in g.clone() {
                    let f = &self.flows[i];
                    let hit = need.get(&f.dst).is_some_and(|p| p.touches(f.dst_range));
                    // A volatile variable is only ever a source: what was sent to it does not
                    // flow out of it (unless it is where the question starts).
                    if !hit || (self.volatile.contains(&f.dst) && f.dst != var) {
                        continue;
                    }
                    changed |= used.insert(i);
                    changed |= match need.get_mut(&f.src) {
                        Some(p) => p.add(f.src_range),
                        None => {
                            need.insert(f.src, Part::of(f.src_range));
                            true
                        }
                    };
                }
                if !changed {
                    break;
                }
            }
        }
        answer(need, used)
    }

    /// Everything the data of `var` (its bytes `part`, None: all) could have reached from time
    /// `from` (inclusive) on.
    pub fn forward(&self, var: VarId, part: Option<Range>, from: u64) -> Answer {
        let mut taint: HashMap<VarId, Part> = HashMap::from([(var, Part::of(part))]);
        let mut used = HashSet::new();
        for g in self.groups() {
            if self.flows[g.start].time < from {
                continue;
            }
            loop {
                let mut changed = false;
                for i in g.clone() {
                    let f = &self.flows[i];
                    let hit = taint.get(&f.src).is_some_and(|p| p.touches(f.src_range));
                    // Data sent to a volatile variable does not come back out of it.
                    if !hit || (self.volatile.contains(&f.src) && f.src != var) {
                        continue;
                    }
                    changed |= used.insert(i);
                    changed |= match taint.get_mut(&f.dst) {
                        Some(p) => p.add(f.dst_range),
                        None => {
                            taint.insert(f.dst, Part::of(f.dst_range));
                            true
                        }
                    };
                }
                if !changed {
                    break;
                }
            }
        }
        answer(taint, used)
    }
}

fn answer(reached: HashMap<VarId, Part>, used: HashSet<usize>) -> Answer {
    let mut flows: Vec<usize> = used.into_iter().collect();
    flows.sort_unstable();
    Answer {
        reached: reached.into_iter().collect(),
        flows,
    }
}

/// What the tests of this crate share: a transaction and a small deterministic generator.
#[cfg(test)]
pub(crate) mod testing {
    use model::at::{At, Op, Status, VarId};

    /// A committed transaction of VE `ve` (pid 1) moving `len` bytes at `off`.
    pub fn at(time_ns: u64, ve: u64, op: Op, src: VarId, dst: VarId, off: u64, len: u64) -> At {
        At {
            time_ns,
            ve,
            pid: 1,
            tid: 1,
            op,
            status: Status::Committed,
            src,
            dst,
            off,
            len,
            result: len as i64,
        }
    }

    /// xorshift64: no dependency for a test.
    pub struct Rng(pub u64);

    impl Rng {
        /// A number below `n`.
        pub fn next(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flow without byte ranges (shared with the tiers' tests).
    pub(crate) fn f(time: u64, src: VarId, dst: VarId) -> Flow {
        Flow {
            time,
            src,
            dst,
            src_range: None,
            dst_range: None,
            len: 0,
            at: 0,
        }
    }

    fn graph(flows: Vec<Flow>) -> Graph {
        Graph::new(flows, HashSet::new())
    }

    fn vars(a: &Answer) -> Vec<VarId> {
        a.reached.keys().copied().collect()
    }

    #[test]
    fn a_to_b_at_5_b_to_c_at_1_and_9_keeps_a_as_an_ancestor_of_c() {
        // A published reducer merged the two b→c flows into one at time 1 and lost a.
        let (a, b, c) = (1, 2, 3);
        let g = graph(vec![f(5, a, b), f(1, b, c), f(9, b, c)]);
        assert_eq!(vars(&g.backward(c, None, 10)), vec![a, b, c]);
        // Before the second b→c, a could not have reached c.
        assert_eq!(vars(&g.backward(c, None, 8)), vec![b, c]);
        assert_eq!(vars(&g.forward(a, None, 0)), vec![a, b, c]);
    }

    #[test]
    fn p_reads_f_q_writes_f_p_reads_f_again_keeps_q_in_ps_ancestry() {
        // P and Q are VEs (their memories); F a file.
        let (p, q, file) = (1, 2, 3);
        let g = graph(vec![f(1, file, p), f(2, q, file), f(3, file, p)]);
        assert_eq!(vars(&g.backward(p, None, 3)), vec![p, q, file]);
        assert_eq!(vars(&g.backward(p, None, 2)), vec![p, file]);
    }

    #[test]
    fn a_read_depends_only_on_writes_that_overlapped_its_bytes() {
        let (w1, w2, file, r) = (1, 2, 3, 4);
        let mut a = f(1, w1, file);
        a.dst_range = Some((0, 100));
        let mut b = f(2, w2, file);
        b.dst_range = Some((100, 200));
        let mut read = f(3, file, r);
        read.src_range = Some((150, 160));
        let g = graph(vec![a, b, read]);
        assert_eq!(vars(&g.backward(r, None, 3)), vec![w2, file, r]);
        // Forward from w1: the file's first 100 bytes, not the reader.
        let fw = g.forward(w1, None, 0);
        assert_eq!(vars(&fw), vec![w1, file]);
        assert_eq!(fw.reached[&file], Part::Bytes(vec![(0, 100)]));
    }

    #[test]
    fn endpoints_are_volatile() {
        let (ve1, ve2, ep) = (1, 2, 3);
        let mut g = graph(vec![f(1, ve1, ep), f(2, ep, ve2)]);
        g.volatile.insert(ep);
        // VE 1 sent to the endpoint, VE 2 received from it later: no flow from VE 1 to VE 2.
        assert_eq!(vars(&g.forward(ve1, None, 0)), vec![ve1, ep]);
        assert_eq!(vars(&g.backward(ve2, None, 5)), vec![ve2, ep]);
        // But the endpoint's own data goes on, and a question about it starts there.
        assert_eq!(vars(&g.forward(ep, None, 0)), vec![ve2, ep]);
        assert_eq!(vars(&g.backward(ep, None, 5)), vec![ve1, ep]);
    }

    #[test]
    fn equal_times_chain_in_any_order() {
        let g = graph(vec![f(4, 2, 3), f(4, 1, 2)]);
        assert_eq!(vars(&g.forward(1, None, 0)), vec![1, 2, 3]);
        assert_eq!(vars(&g.backward(3, None, 4)), vec![1, 2, 3]);
    }

    #[test]
    fn transactions_become_flows() {
        let at = |op, src, dst, off, len| crate::testing::at(1, 1, op, src, dst, off, len);
        let ats = [
            at(Op::Read, 10, 1, 5, 10),
            at(Op::Write, 1, 10, 0, 3),
            at(Op::Send, 1, 20, 0, 3),
            at(Op::Open, 10, 1, 0, 0),
            at(Op::Write, 1, 10, 0, 0),
            at(Op::Rename, 10, 11, 0, 0),
        ];
        let fl = flows(&ats, |v| v == 10 || v == 11);
        assert_eq!(fl.len(), 4);
        assert_eq!((fl[0].src_range, fl[0].dst_range), (Some((5, 15)), None));
        assert_eq!((fl[1].src_range, fl[1].dst_range), (None, Some((0, 3))));
        assert_eq!((fl[2].dst_range, fl[3].at), (None, 5));
        let mut failed = ats[0];
        failed.status = model::at::Status::Failed;
        assert!(flows(&[failed], |_| true).is_empty());
    }

    /// A small deterministic generator for the property tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    fn random_graph(r: &mut Rng, vars: u64, len: usize, bytes: bool) -> Graph {
        let mut fl = Vec::new();
        for i in 0..len {
            let (s, d) = (1 + r.next(vars) as VarId, 1 + r.next(vars) as VarId);
            let range = |r: &mut Rng| {
                let a = r.next(8);
                Some((a, a + 1 + r.next(4)))
            };
            fl.push(Flow {
                time: r.next(len as u64 / 2 + 1),
                src: s,
                dst: d,
                src_range: if bytes && s % 2 == 0 { range(r) } else { None },
                dst_range: if bytes && d % 2 == 0 { range(r) } else { None },
                len: 0,
                at: i,
            });
        }
        let volatile = (1..=vars as VarId).filter(|v| v % 5 == 0).collect();
        Graph::new(fl, volatile)
    }

    #[test]
    fn forward_and_backward_agree_on_whole_variables() {
        // u at t reaches v (forward) iff v at the end is reached back from u (backward), for
        // every pair, on 20,000 random logs: two different sweeps that must agree.
        let mut r = Rng(0x9e3779b97f4a7c15);
        for _ in 0..20_000 {
            let vars = 2 + r.next(6);
            let len = 1 + r.next(9) as usize;
            let g = random_graph(&mut r, vars, len, false);
            let t = r.next(6);
            for u in 1..=vars as VarId {
                let fw = g.forward(u, None, t);
                for v in 1..=vars as VarId {
                    if u != v && (g.volatile.contains(&v) || g.volatile.contains(&u)) {
                        continue; // volatility is asymmetric by definition
                    }
                    // Backward from v over the flows at or after t only.
                    let later = Graph::new(
                        g.flows.iter().filter(|f| f.time >= t).copied().collect(),
                        g.volatile.clone(),
                    );
                    let bw = later.backward(v, None, u64::MAX);
                    assert_eq!(
                        fw.reached.contains_key(&v),
                        bw.reached.contains_key(&u),
                        "u {u} v {v} t {t}: {g:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn byte_intervals_only_narrow_the_answer() {
        // With bytes, every answer is a subset of the answer without them.
        let mut r = Rng(0x1234_5678_9abc_def1);
        for _ in 0..20_000 {
            let vars = 2 + r.next(6);
            let len = 1 + r.next(9) as usize;
            let g = random_graph(&mut r, vars, len, true);
            let whole = Graph::new(
                g.flows
                    .iter()
                    .map(|f| Flow {
                        src_range: None,
                        dst_range: None,
                        ..*f
                    })
                    .collect(),
                g.volatile.clone(),
            );
            let u = 1 + r.next(vars) as VarId;
            let t = r.next(6);
            let a = vars_of(&g.forward(u, None, t));
            let b = vars_of(&whole.forward(u, None, t));
            assert!(a.is_subset(&b));
            let a = vars_of(&g.backward(u, None, t));
            let b = vars_of(&whole.backward(u, None, t));
            assert!(a.is_subset(&b));
        }
    }

    fn vars_of(a: &Answer) -> HashSet<VarId> {
        a.reached.keys().copied().collect()
    }
}
