//! Summarized transactions (STs) and the tiers that make them (docs/design.md §4, docs/summarization.md).
//!
//! An ST stands for flows from one variable to another somewhere in a time window, touching
//! some bytes. Queries over STs are conservative: a window is assumed to carry data at any time
//! in it, so an answer over STs is always a superset of the oracle's over the flows they came
//! from (the property tests check this on random logs). Tiers here:
//! - **T2 structural**: one ST per (source, target) pair — per VE lifetime, since a VE's memory
//!   is one variable — with the union of the bytes and the window from the first flow to the
//!   last. May add false dependencies, never loses one.
//! - **T3 sources**: per variable, only the external sources it depends on (endpoints, and the
//!   memories of VEs). Answers "where did this come from, at the source level" exactly as the
//!   oracle does.
//! - **T1 causal**: a flow joins the open ST of its (source, target) pair only when it moves
//!   the same bytes and nothing has flowed into the source or out of the target since that ST
//!   opened (nor at the same instant). Such a flow adds no dependency: answered by
//!   [`T1::backward`] / [`T1::forward`], reachability between every pair of variables at every
//!   time is identical to the oracle's (checked on random logs). Note what it does not merge:
//!   the paper's "three contiguous writes become one write [0, 300)" changes the answer to a
//!   question that starts at the writer between the first and the last write (the first
//!   write's bytes would be reached too), so it is T2's, not T1's.

use crate::{Answer, Flow, Graph, Part, Range};
use model::at::VarId;
use model::leb::{get, put};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::{BTreeMap, HashMap, HashSet};

/// A summarized transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub src: VarId,
    pub dst: VarId,
    pub first: u64,
    pub last: u64,
    /// The bytes of `src` read (Whole for non-files).
    pub src_part: Part,
    /// The bytes of `dst` written.
    pub dst_part: Part,
    /// How many flows it stands for.
    pub count: u64,
    /// The bytes they moved, together.
    pub bytes: u64,
}

impl Summary {
    /// The summary of one flow: its instant, its bytes.
    pub fn of(f: &Flow) -> Summary {
        Summary {
            src: f.src,
            dst: f.dst,
            first: f.time,
            last: f.time,
            src_part: Part::of(f.src_range),
            dst_part: Part::of(f.dst_range),
            count: 1,
            bytes: f.len,
        }
    }
}

/// T2: one ST per (source, target) pair.
pub fn t2(flows: &[Flow]) -> Vec<Summary> {
    let mut m: BTreeMap<(VarId, VarId), Summary> = BTreeMap::new();
    for f in flows {
        let s = m.entry((f.src, f.dst)).or_insert_with(|| Summary {
            src: f.src,
            dst: f.dst,
            first: f.time,
            last: f.time,
            src_part: Part::Bytes(vec![]),
            dst_part: Part::Bytes(vec![]),
            count: 0,
            bytes: 0,
        });
        s.first = s.first.min(f.time);
        s.last = s.last.max(f.time);
        s.src_part.add(f.src_range);
        s.dst_part.add(f.dst_range);
        s.count += 1;
        s.bytes += f.len;
    }
    m.into_values().collect()
}

/// The flows at file granularity: every byte range widened to the whole file. T1 of these is
/// the tier between T1 and T2 (`T1F`): exact at file granularity — its answers are the oracle's
/// over whole files, so they name the same files, VEs and endpoints as the byte-exact oracle
/// except where a read touched other bytes of a file than the writes that reached it (those
/// it adds; it never loses one) — and it merges the writes of one source into one file however
/// they are laid out.
pub fn whole_files(flows: &[Flow]) -> Vec<Flow> {
    flows
        .iter()
        .map(|f| Flow {
            src_range: None,
            dst_range: None,
            ..*f
        })
        .collect()
}

/// T1F of a graph: T1 of its flows at file granularity ([`whole_files`]).
pub fn t1f(g: &Graph) -> Vec<Summary> {
    T1::new(&Graph::new(whole_files(&g.flows), g.volatile.clone())).sts
}

/// T1F of summaries (a T1 summary file made coarser): their byte ranges widened to whole files,
/// which only adds dependencies.
pub fn t1f_of_summaries(sts: &[Summary]) -> Vec<Summary> {
    sts.iter()
        .map(|s| Summary {
            src_part: Part::Whole,
            dst_part: Part::Whole,
            ..s.clone()
        })
        .collect()
}

/// T2 of summaries (a summary file of T1 made coarser by `jcs daemon --retain`): one per
/// (source, target), its window and parts the union of theirs. Queried with windows, like T2
/// of flows: never loses a dependency.
pub fn t2_of_summaries(sts: &[Summary]) -> Vec<Summary> {
    let mut m: BTreeMap<(VarId, VarId), Summary> = BTreeMap::new();
    for st in sts {
        match m.get_mut(&(st.src, st.dst)) {
            None => {
                m.insert((st.src, st.dst), st.clone());
            }
            Some(s) => widen(s, st),
        }
    }
    m.into_values().collect()
}

/// T4 of summaries (a summary file of T1 or T2 made coarser by `jcs daemon --retain`): what
/// ended before `now` − `network` to or from an endpoint becomes one summary per (source,
/// target); what ended before `now` − `files` loses its byte ranges. Never loses a dependency.
pub fn t4_of_summaries(
    sts: &[Summary],
    volatile: &HashSet<VarId>,
    now: u64,
    policy: &FadePolicy,
) -> Vec<Faded> {
    let old = |age: Option<u64>, t: u64| age.is_some_and(|a| now.saturating_sub(t) > a);
    let mut net: BTreeMap<(VarId, VarId), Summary> = BTreeMap::new();
    let mut out = Vec::new();
    for st in sts {
        let endpoint = volatile.contains(&st.src) || volatile.contains(&st.dst);
        if endpoint && old(policy.network_ns, st.last) {
            let whole = Summary {
                src_part: Part::Whole,
                dst_part: Part::Whole,
                ..st.clone()
            };
            match net.get_mut(&(st.src, st.dst)) {
                None => {
                    net.insert((st.src, st.dst), whole);
                }
                Some(s) => widen(s, &whole),
            }
            continue;
        }
        let mut st = st.clone();
        if old(policy.files_ns, st.last) {
            (st.src_part, st.dst_part) = (Part::Whole, Part::Whole);
        }
        out.push(Faded {
            exact_window: st.count == 1,
            st,
        });
    }
    out.extend(net.into_values().map(|st| Faded {
        exact_window: st.count == 1,
        st,
    }));
    out
}

/// `s` made to stand for `t` as well: the union of windows and parts, counts and bytes added.
fn widen(s: &mut Summary, t: &Summary) {
    s.first = s.first.min(t.first);
    s.last = s.last.max(t.last);
    merge(&mut s.src_part, &t.src_part);
    merge(&mut s.dst_part, &t.dst_part);
    s.count += t.count;
    s.bytes += t.bytes;
}

fn touches(p: &Part, q: &Part) -> bool {
    match (p, q) {
        (Part::Whole, _) | (_, Part::Whole) => true,
        (Part::Bytes(a), Part::Bytes(b)) => a
            .iter()
            .any(|&(x, y)| b.iter().any(|&(u, v)| x < v && u < y)),
    }
}

fn merge(p: &mut Part, q: &Part) -> bool {
    match q {
        Part::Whole => p.add(None),
        Part::Bytes(v) => v.iter().fold(false, |c, r| p.add(Some(*r)) | c),
    }
}

/// STs with the same volatility rules as [`Graph`].
#[derive(Debug, Clone)]
pub struct SummaryGraph {
    pub sts: Vec<Summary>,
    pub volatile: HashSet<VarId>,
}

impl SummaryGraph {
    /// Backward over STs: `var` needed by `at`; an ST whose window starts by then makes its
    /// source needed by the earlier of that time and the window's end.
    pub fn backward(&self, var: VarId, at: u64) -> Answer {
        let mut need: HashMap<VarId, (u64, Part)> = HashMap::from([(var, (at, Part::Whole))]);
        let mut used = HashSet::new();
        loop {
            let mut changed = false;
            for (i, s) in self.sts.iter().enumerate() {
                let Some((by, part)) = need.get(&s.dst) else {
                    continue;
                };
                if s.first > *by || !touches(part, &s.dst_part) {
                    continue;
                }
                if self.volatile.contains(&s.dst) && s.dst != var {
                    continue;
                }
                let t = (*by).min(s.last);
                changed |= used.insert(i);
                match need.get_mut(&s.src) {
                    Some((b, p)) => {
                        if t > *b {
                            *b = t;
                            changed = true;
                        }
                        changed |= merge(p, &s.src_part);
                    }
                    None => {
                        need.insert(s.src, (t, s.src_part.clone()));
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        done(need.into_iter().map(|(k, (_, p))| (k, p)), used)
    }

    /// Forward over STs: `var` tainted from `from`; an ST whose window ends at or after that
    /// taints its target from the later of that time and the window's start.
    pub fn forward(&self, var: VarId, from: u64) -> Answer {
        let mut taint: HashMap<VarId, (u64, Part)> = HashMap::from([(var, (from, Part::Whole))]);
        let mut used = HashSet::new();
        loop {
            let mut changed = false;
            for (i, s) in self.sts.iter().enumerate() {
                let Some((since, part)) = taint.get(&s.src) else {
                    continue;
                };
                if s.last < *since || !touches(part, &s.src_part) {
                    continue;
                }
                if self.volatile.contains(&s.src) && s.src != var {
                    continue;
                }
                let t = (*since).max(s.first);
                changed |= used.insert(i);
                match taint.get_mut(&s.dst) {
                    Some((b, p)) => {
                        if t < *b {
                            *b = t;
                            changed = true;
                        }
                        changed |= merge(p, &s.dst_part);
                    }
                    None => {
                        taint.insert(s.dst, (t, s.dst_part.clone()));
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        done(taint.into_iter().map(|(k, (_, p))| (k, p)), used)
    }
}

fn done(reached: impl Iterator<Item = (VarId, Part)>, used: HashSet<usize>) -> Answer {
    let mut flows: Vec<usize> = used.into_iter().collect();
    flows.sort_unstable();
    Answer {
        reached: reached.collect(),
        flows,
    }
}

/// T3: for every variable that any flow reaches, the external sources (volatile variables, and
/// the variables `is_source` names: VE memories) whose data reached it by the end of the log.
pub fn t3(g: &Graph, is_source: impl Fn(VarId) -> bool) -> BTreeMap<VarId, Vec<VarId>> {
    let mut targets: Vec<VarId> = g.flows.iter().map(|f| f.dst).collect();
    targets.sort_unstable();
    targets.dedup();
    targets
        .into_iter()
        .map(|v| {
            let srcs = g
                .backward(v, None, u64::MAX)
                .reached
                .into_keys()
                .filter(|&s| s != v && (g.volatile.contains(&s) || is_source(s)))
                .collect();
            (v, srcs)
        })
        .collect()
}

/// T1 summaries: each stands for flows of one (source, target) pair moving the same bytes.
#[derive(Debug, Clone)]
pub struct T1 {
    pub sts: Vec<Summary>,
    /// The bytes of each ST (one range or all), as its flows had them.
    ranges: Vec<(Option<Range>, Option<Range>)>,
    pub volatile: HashSet<VarId>,
}

impl T1 {
    /// Summarizes a graph's flows (in time order): what [`OnlineT1`] makes of them all at
    /// once (no cut-off, nothing held too long, no bound on the open summaries), in the order
    /// the summaries opened.
    pub fn new(g: &Graph) -> T1 {
        let mut o = OnlineT1::with_cap(usize::MAX);
        o.push(g.flows.iter().enumerate().map(|(i, f)| (*f, i)));
        let mut sts = o.take(u64::MAX, 0, true);
        // (By the position of each summary's first flow.)
        sts.sort_unstable_by_key(|&(_, i)| i);
        let ranges = sts
            .iter()
            .map(|&(_, i)| (g.flows[i].src_range, g.flows[i].dst_range))
            .collect();
        T1 {
            sts: sts.into_iter().map(|(s, _)| s).collect(),
            ranges,
            volatile: g.volatile.clone(),
        }
    }

    /// T1 summaries read back (with any flows not summarized, as summaries of one flow). Each
    /// must move one byte range (or all) on each side, as T1 makes them; None otherwise.
    pub fn from_summaries(sts: Vec<Summary>, volatile: HashSet<VarId>) -> Option<T1> {
        let one = |p: &Part| match p {
            Part::Whole => Some(None),
            Part::Bytes(v) if v.len() == 1 => Some(Some(v[0])),
            Part::Bytes(_) => None,
        };
        let ranges = sts
            .iter()
            .map(|s| Some((one(&s.src_part)?, one(&s.dst_part)?)))
            .collect::<Option<Vec<_>>>()?;
        Some(T1 {
            sts,
            ranges,
            volatile,
        })
    }

    /// The STs as flows at the instant a query starting at `t` sees them: the latest instant
    /// not after `t` (backward) or the earliest not before `t` (forward) that the window allows.
    fn as_flows(&self, t: u64, back: bool) -> Graph {
        let flows = self
            .sts
            .iter()
            .zip(&self.ranges)
            .enumerate()
            .filter(|(_, (s, _))| if back { s.first <= t } else { s.last >= t })
            .map(|(i, (s, r))| Flow {
                time: if back { s.last.min(t) } else { s.first.max(t) },
                src: s.src,
                dst: s.dst,
                src_range: r.0,
                dst_range: r.1,
                len: 0,
                at: i,
            })
            .collect();
        Graph::new(flows, self.volatile.clone())
    }

    /// Like [`Graph::backward`]; `flows` in the answer index [`T1::sts`].
    pub fn backward(&self, var: VarId, part: Option<Range>, at: u64) -> Answer {
        let g = self.as_flows(at, true);
        let mut a = g.backward(var, part, at);
        a.flows = a.flows.iter().map(|&i| g.flows[i].at).collect();
        a.flows.sort_unstable();
        a
    }

    /// Like [`Graph::forward`]; `flows` in the answer index [`T1::sts`].
    pub fn forward(&self, var: VarId, part: Option<Range>, from: u64) -> Answer {
        let g = self.as_flows(from, false);
        let mut a = g.forward(var, part, from);
        a.flows = a.flows.iter().map(|&i| g.flows[i].at).collect();
        a.flows.sort_unstable();
        a
    }
}

/// T1 as the daemon applies it, online, to transactions as they arrive: the flows before a
/// cut-off time the caller chooses (a little before "now": arrival order across CPUs differs
/// from time order by far less) are summarized as [`T1::new`] does, and the summaries stay
/// open from take to take — until a flow closes them as it would in [`T1::new`], or until
/// they began before the caller's `old` (a bound on how long a flow is held in memory). Later
/// flows wait. With `force` (a VE ended: its records must be written now) every open summary
/// is emitted, and the later flows too, unmerged, so that a flow arriving late cannot fall
/// inside a merged window.
///
/// Each flow comes with a payload `P` (the daemon's: its transaction); a summary that stands
/// for one flow is emitted with that flow's payload, so that the caller can write the
/// transaction itself (a summary of one flow would only be larger).
#[derive(Debug, Clone)]
pub struct OnlineT1<P> {
    /// The flows waiting for the cut, in time order (then arrival order). They arrive nearly
    /// in time order (CPUs differ by microseconds), so each is placed a few steps from the
    /// back and leaves from the front once — re-partitioning them at every take cost a tenth
    /// of the daemon's time on a loop of writes, a heap of them a fifth.
    pending: std::collections::VecDeque<(Flow, P)>,
    /// The open summaries by serial number, with the payload of their first flow. (Fx
    /// hashing: SipHash was a third of the daemon's time on a loop of writes.)
    sts: FxHashMap<u64, (Summary, P)>,
    /// Which open summary takes a key's next flow.
    open: FxHashMap<OnlineKey, u64>,
    /// The open summaries' keys by source and by target (what closes them).
    by_src: FxHashMap<VarId, FxHashSet<OnlineKey>>,
    by_dst: FxHashMap<VarId, FxHashSet<OnlineKey>>,
    /// Summaries in the order they opened (time order), with their first instant: the oldest
    /// are emitted when they began before `old`.
    opened: std::collections::VecDeque<(u64, u64)>,
    serial: u64,
    /// At most this many summaries open at once: beyond, the oldest is emitted (a loop of
    /// appends opens one per write, each its own byte range).
    cap: usize,
    /// The latest instant already processed: flows at it may not open a summary (their
    /// instant's other flows were summarized without them).
    emitted: Option<u64>,
    /// Per flow of the instant being processed, whether nothing at that instant flows into
    /// its source or out of its target (kept: no allocation per instant).
    quiet: Vec<bool>,
}

type OnlineKey = (VarId, VarId, Option<Range>, Option<Range>);

impl<P> Default for OnlineT1<P> {
    fn default() -> Self {
        OnlineT1 {
            pending: Default::default(),
            sts: FxHashMap::default(),
            open: FxHashMap::default(),
            by_src: FxHashMap::default(),
            by_dst: FxHashMap::default(),
            opened: Default::default(),
            serial: 0,
            cap: Self::CAP,
            emitted: None,
            quiet: Vec::new(),
        }
    }
}

impl<P> OnlineT1<P> {
    /// How many summaries may be open at once by default: 4,096 (on a loop of appends, where
    /// each write opens a summary of its own, 65,536 made the daemon spend 1.6 s instead of
    /// 0.75 on 10^6 writes, in cache misses, and drop records).
    pub const CAP: usize = 1 << 12;

    pub fn new() -> OnlineT1<P> {
        OnlineT1::default()
    }

    /// At most `cap` (≥ 1) summaries open at once.
    pub fn with_cap(cap: usize) -> OnlineT1<P> {
        OnlineT1 {
            cap: cap.max(1),
            ..OnlineT1::default()
        }
    }

    pub fn push(&mut self, flows: impl IntoIterator<Item = (Flow, P)>) {
        for (f, p) in flows {
            let mut i = self.pending.len();
            while i > 0 && self.pending[i - 1].0.time > f.time {
                i -= 1;
            }
            self.pending.insert(i, (f, p));
        }
    }

    /// Flows waiting for the cut, and summaries open (what a killed daemon would lose).
    pub fn held(&self) -> (usize, usize) {
        (self.pending.len(), self.sts.len())
    }

    /// Closes the open summary of `key`, if any, into `out`.
    fn close(&mut self, key: &OnlineKey, out: &mut Vec<(Summary, P)>) {
        if let Some(n) = self.open.remove(key) {
            for (m, v) in [(&mut self.by_src, key.0), (&mut self.by_dst, key.1)] {
                if let Some(l) = m.get_mut(&v) {
                    l.remove(key);
                    if l.is_empty() {
                        m.remove(&v);
                    }
                }
            }
            out.extend(self.sts.remove(&n));
        }
    }

    /// Emits the summary that opened first, if it is still open (a summary may always end
    /// early: the next flow of its key opens another).
    fn emit_oldest(&mut self, out: &mut Vec<(Summary, P)>) {
        while let Some((_, n)) = self.opened.pop_front() {
            if let Some((s, _)) = self.sts.get(&n) {
                let key = (s.src, s.dst, one_range(&s.src_part), one_range(&s.dst_part));
                self.close(&key, out);
                return;
            }
        }
    }

    /// Closes the open summaries a flow into `dst` and out of `src` would break.
    fn close_touching(&mut self, f: &Flow, out: &mut Vec<(Summary, P)>) {
        let keys: Vec<OnlineKey> = (self.by_src.get(&f.dst).into_iter().flatten())
            .chain(self.by_dst.get(&f.src).into_iter().flatten())
            .copied()
            .collect();
        for k in keys {
            self.close(&k, out);
        }
    }

    /// The summaries closed by the flows before `cut`, or begun before `old` (all of them,
    /// and the flows from `cut` on unmerged, with `force`).
    pub fn take(&mut self, cut: u64, old: u64, force: bool) -> Vec<(Summary, P)> {
        let mut out = Vec::new();
        let mut group: Vec<(Flow, P)> = Vec::new();
        // The flows before the cut, an instant at a time, from the front.
        while self.pending.front().is_some_and(|(f, _)| f.time < cut) {
            let t = self.pending.front().map_or(0, |(f, _)| f.time);
            group.clear();
            while self.pending.front().is_some_and(|(f, _)| f.time == t) {
                group.extend(self.pending.pop_front());
            }
            // Flows at an instant already (partly) processed go out alone, and close what
            // they would have closed.
            if self.emitted.is_some_and(|e| t <= e) {
                for (f, p) in group.drain(..) {
                    self.close_touching(&f, &mut out);
                    out.push((Summary::of(&f), p));
                }
                continue;
            }
            // A flow into an ST's source, or out of its target, closes it (same instant too).
            for (f, _) in &group {
                self.close_touching(f, &mut out);
            }
            self.quiet.clear();
            self.quiet.extend(
                group
                    .iter()
                    .map(|(f, _)| !group.iter().any(|(g, _)| g.dst == f.src || g.src == f.dst)),
            );
            for (i, (f, p)) in group.drain(..).enumerate() {
                let quiet = self.quiet[i];
                let key = (f.src, f.dst, f.src_range, f.dst_range);
                match self.open.get(&key) {
                    Some(n) if f.src != f.dst => {
                        let (s, _) = self.sts.get_mut(n).expect("an open key has its summary");
                        s.last = f.time;
                        s.count += 1;
                        s.bytes += f.len;
                    }
                    _ => {
                        // Only an ST with nothing into its source or out of its target at its
                        // first instant may take later flows.
                        if f.src != f.dst && quiet {
                            self.serial += 1;
                            let n = self.serial;
                            self.sts.insert(n, (Summary::of(&f), p));
                            self.open.insert(key, n);
                            self.by_src.entry(f.src).or_default().insert(key);
                            self.by_dst.entry(f.dst).or_default().insert(key);
                            self.opened.push_back((f.time, n));
                            if self.sts.len() > self.cap {
                                self.emit_oldest(&mut out);
                            }
                        } else {
                            out.push((Summary::of(&f), p));
                        }
                    }
                }
            }
            self.emitted = self.emitted.max(Some(t));
        }
        // Summaries open too long are emitted (the next flow of their key opens another).
        while let Some(&(first, n)) = self.opened.front() {
            // (An entry whose summary a flow closed already is only dropped: emitting the
            // oldest open one in its place would end a summary that is not old.)
            if !self.sts.contains_key(&n) {
                self.opened.pop_front();
                continue;
            }
            if !force && first >= old {
                break;
            }
            self.emit_oldest(&mut out);
        }
        if force {
            let late = self.pending.back().map(|(f, _)| f.time);
            out.extend(self.pending.drain(..).map(|(f, p)| (Summary::of(&f), p)));
            self.emitted = self.emitted.max(late);
        }
        out
    }
}

/// The one byte range of an ST's side that T1 made (None: the whole variable).
fn one_range(p: &Part) -> Option<Range> {
    match p {
        Part::Bytes(v) => v.first().copied(),
        Part::Whole => None,
    }
}

/// T4's age-based policy: after how long network exchanges and file byte intervals fade.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FadePolicy {
    /// Flows to or from an endpoint older than this become one record per (source, target):
    /// first and last instant, count, no bytes.
    pub network_ns: Option<u64>,
    /// Flows older than this lose their byte intervals (whole files).
    pub files_ns: Option<u64>,
}

/// A line of a fading policy that does not parse: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// 1-based.
    pub line: usize,
    pub why: &'static str,
    pub text: String,
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}: {:?}", self.line, self.why, self.text)
    }
}

impl std::error::Error for PolicyError {}

impl FadePolicy {
    /// Parses a policy file: lines `network AGE` and `files AGE` (AGE like `90s`, `10m`, `2h`,
    /// `7d`), `#` comments, blank lines.
    pub fn parse(text: &str) -> Result<FadePolicy, PolicyError> {
        let mut p = FadePolicy::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |why: &'static str| PolicyError {
                line: i + 1,
                why,
                text: line.to_string(),
            };
            let mut w = line.split_whitespace();
            let (key, age) = (w.next(), w.next());
            if w.next().is_some() {
                return Err(bad("expected `network AGE` or `files AGE`"));
            }
            let age = age
                .and_then(model::limits::parse_age)
                .ok_or_else(|| bad("AGE must be a number with s, m, h or d (7d)"))?;
            match key {
                Some("network") => p.network_ns = Some(age),
                Some("files") => p.files_ns = Some(age),
                _ => return Err(bad("unknown setting (network, files)")),
            }
        }
        Ok(p)
    }
}

/// A T4 record: an ST, and whether its window still gives the exact instant (one flow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Faded {
    pub st: Summary,
    pub exact_window: bool,
}

/// T4: the flows as of `now`, faded by `policy`. Never loses a dependency (query the STs with
/// [`SummaryGraph`]).
pub fn t4(flows: &[Flow], volatile: &HashSet<VarId>, now: u64, policy: &FadePolicy) -> Vec<Faded> {
    let old = |age: Option<u64>, t: u64| age.is_some_and(|a| now.saturating_sub(t) > a);
    let mut net: BTreeMap<(VarId, VarId), Summary> = BTreeMap::new();
    let mut out = Vec::new();
    for f in flows {
        let endpoint = volatile.contains(&f.src) || volatile.contains(&f.dst);
        if endpoint && old(policy.network_ns, f.time) {
            let s = net.entry((f.src, f.dst)).or_insert_with(|| Summary {
                src: f.src,
                dst: f.dst,
                first: f.time,
                last: f.time,
                src_part: Part::Whole,
                dst_part: Part::Whole,
                count: 0,
                bytes: 0,
            });
            s.first = s.first.min(f.time);
            s.last = s.last.max(f.time);
            s.count += 1;
            s.bytes += f.len;
            continue;
        }
        let mut st = Summary::of(f);
        if old(policy.files_ns, f.time) {
            (st.src_part, st.dst_part) = (Part::Whole, Part::Whole);
        }
        out.push(Faded {
            st,
            exact_window: true,
        });
    }
    out.extend(net.into_values().map(|st| Faded {
        exact_window: st.count == 1,
        st,
    }));
    out
}

fn put_part(out: &mut Vec<u8>, p: &Part) {
    match p {
        Part::Whole => put(out, 0),
        Part::Bytes(v) => {
            put(out, v.len() as u64 + 1);
            let mut prev = 0;
            for &(a, b) in v {
                put(out, a - prev);
                put(out, b - a);
                prev = b;
            }
        }
    }
}

/// A compact encoding of STs (sorted by first time; times delta-coded; LEB128), the form in
/// which their size is measured.
pub fn encode(sts: &[Summary]) -> Vec<u8> {
    let mut v: Vec<&Summary> = sts.iter().collect();
    v.sort_by_key(|s| s.first);
    let mut out = Vec::new();
    put(&mut out, v.len() as u64);
    let mut prev = 0;
    for s in v {
        put(&mut out, u64::from(s.src));
        put(&mut out, u64::from(s.dst));
        put(&mut out, s.first - prev);
        put(&mut out, s.last - s.first);
        put(&mut out, s.count);
        put(&mut out, s.bytes);
        put_part(&mut out, &s.src_part);
        put_part(&mut out, &s.dst_part);
        prev = s.first;
    }
    out
}

fn get_part(b: &[u8], o: &mut usize) -> Option<Part> {
    match get(b, o)? {
        0 => Some(Part::Whole),
        n => {
            let n = n - 1;
            if n > b.len() as u64 {
                return None;
            }
            let mut v = Vec::with_capacity(n as usize);
            let mut prev = 0u64;
            for _ in 0..n {
                let a = prev.checked_add(get(b, o)?)?;
                let e = a.checked_add(get(b, o)?)?;
                v.push((a, e));
                prev = e;
            }
            Some(Part::Bytes(v))
        }
    }
}

/// Reads [`encode`]'s output back; None for anything malformed.
pub fn decode(b: &[u8]) -> Option<Vec<Summary>> {
    let o = &mut 0usize;
    let n = get(b, o)?;
    if n > b.len() as u64 {
        return None;
    }
    let mut out = Vec::with_capacity(n as usize);
    let mut prev = 0u64;
    for _ in 0..n {
        let src = VarId::try_from(get(b, o)?).ok()?;
        let dst = VarId::try_from(get(b, o)?).ok()?;
        let first = prev.checked_add(get(b, o)?)?;
        let last = first.checked_add(get(b, o)?)?;
        let count = get(b, o)?;
        let bytes = get(b, o)?;
        let src_part = get_part(b, o)?;
        let dst_part = get_part(b, o)?;
        prev = first;
        out.push(Summary {
            src,
            dst,
            first,
            last,
            src_part,
            dst_part,
            count,
            bytes,
        });
    }
    (*o == b.len()).then_some(out)
}

/// A compact encoding of a T3 table (variable → its sources).
pub fn encode_sources(t: &BTreeMap<VarId, Vec<VarId>>) -> Vec<u8> {
    let mut out = Vec::new();
    put(&mut out, t.len() as u64);
    for (v, srcs) in t {
        put(&mut out, u64::from(*v));
        put(&mut out, srcs.len() as u64);
        for s in srcs {
            put(&mut out, u64::from(*s));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::Rng;

    fn random(r: &mut Rng) -> Graph {
        let vars = 2 + r.next(7);
        let len = 1 + r.next(12) as usize;
        let fl = (0..len)
            .map(|i| {
                let (s, d) = (1 + r.next(vars) as VarId, 1 + r.next(vars) as VarId);
                let range = |r: &mut Rng| {
                    let a = r.next(8);
                    Some((a, a + 1 + r.next(4)))
                };
                Flow {
                    time: r.next(len as u64 + 1),
                    src: s,
                    dst: d,
                    src_range: if s % 2 == 0 { range(r) } else { None },
                    dst_range: if d % 2 == 0 { range(r) } else { None },
                    len: 0,
                    at: i,
                }
            })
            .collect();
        Graph::new(fl, (1..=vars as VarId).filter(|v| v % 5 == 0).collect())
    }

    fn keys(a: &Answer) -> HashSet<VarId> {
        a.reached.keys().copied().collect()
    }

    #[test]
    fn t2_never_loses_a_dependency() {
        // 100,000 random logs, every variable, a random time: T2's answers contain the oracle's.
        let mut r = Rng(0x2545_f491_4f6c_dd1d);
        let mut strict = 0;
        for _ in 0..100_000 {
            let g = random(&mut r);
            let s = SummaryGraph {
                sts: t2(&g.flows),
                volatile: g.volatile.clone(),
            };
            let vars: HashSet<VarId> = g.flows.iter().flat_map(|f| [f.src, f.dst]).collect();
            let t = r.next(14);
            for &v in &vars {
                let (o, m) = (keys(&g.backward(v, None, t)), keys(&s.backward(v, t)));
                assert!(
                    o.is_subset(&m),
                    "back {v} at {t}: oracle {o:?} T2 {m:?}\n{g:?}"
                );
                strict += usize::from(o != m);
                let (o, m) = (keys(&g.forward(v, None, t)), keys(&s.forward(v, t)));
                assert!(
                    o.is_subset(&m),
                    "forward {v} from {t}: oracle {o:?} T2 {m:?}\n{g:?}"
                );
            }
        }
        // T2 does add false dependencies (else it would be T1).
        assert!(strict > 0);
    }

    #[test]
    fn t2_keeps_the_published_counterexample() {
        let f = crate::tests::f;
        let g = Graph::new(vec![f(5, 1, 2), f(1, 2, 3), f(9, 2, 3)], HashSet::new());
        let s = SummaryGraph {
            sts: t2(&g.flows),
            volatile: HashSet::new(),
        };
        assert_eq!(s.sts.len(), 2);
        assert!(keys(&s.backward(3, 10)).contains(&1));
    }

    #[test]
    fn t1_answers_exactly_as_the_oracle() {
        // 100,000 random logs, every variable, three times each, bytes compared too.
        let mut r = Rng(0xdead_beef_cafe_f00d);
        let (mut flows, mut sts) = (0, 0);
        for _ in 0..100_000 {
            let g = random(&mut r);
            let t1 = T1::new(&g);
            flows += g.flows.len();
            sts += t1.sts.len();
            let vars: HashSet<VarId> = g.flows.iter().flat_map(|f| [f.src, f.dst]).collect();
            for _ in 0..3 {
                let t = r.next(14);
                for &v in &vars {
                    let (o, m) = (g.backward(v, None, t), t1.backward(v, None, t));
                    assert_eq!(o.reached, m.reached, "back {v} at {t}\n{g:?}\n{t1:?}");
                    let (o, m) = (g.forward(v, None, t), t1.forward(v, None, t));
                    assert_eq!(o.reached, m.reached, "forward {v} from {t}\n{g:?}\n{t1:?}");
                }
            }
        }
        // It does merge (repeated transfers with nothing in between).
        assert!(sts < flows, "{sts} of {flows}");
    }

    /// T1F: exact against the oracle over whole files, never less than the byte-exact oracle,
    /// and it merges at least as much as T1.
    #[test]
    fn t1f_is_exact_at_file_granularity() {
        let mut r = Rng(0x71f0_0000_5eed_0003);
        let (mut t1_sts, mut t1f_sts, mut wider) = (0, 0, 0);
        for _ in 0..100_000 {
            let g = random(&mut r);
            let sts = t1f(&g);
            let files = Graph::new(whole_files(&g.flows), g.volatile.clone());
            let m = T1::from_summaries(sts.clone(), g.volatile.clone()).expect("whole parts");
            t1_sts += T1::new(&g).sts.len();
            t1f_sts += sts.len();
            let vars: HashSet<VarId> = g.flows.iter().flat_map(|f| [f.src, f.dst]).collect();
            let t = r.next(14);
            for &v in &vars {
                let (o, m_) = (files.backward(v, None, t), m.backward(v, None, t));
                assert_eq!(keys(&o), keys(&m_), "back {v} at {t}\n{g:?}");
                let exact = keys(&g.backward(v, None, t));
                assert!(exact.is_subset(&keys(&m_)));
                wider += usize::from(exact != keys(&m_));
                let (o, m_) = (files.forward(v, None, t), m.forward(v, None, t));
                assert_eq!(keys(&o), keys(&m_), "forward {v} from {t}\n{g:?}");
                assert!(keys(&g.forward(v, None, t)).is_subset(&keys(&m_)));
            }
        }
        assert!(t1f_sts <= t1_sts, "{t1f_sts} > {t1_sts}");
        assert!(wider > 0, "byte ranges made a difference somewhere");
    }

    #[test]
    fn t1_does_not_merge_contiguous_writes_t2_does() {
        // A VE (1) writes a file (2) in three contiguous chunks; a reader (3) reads the first.
        let w = |time, a| Flow {
            time,
            src: 1,
            dst: 2,
            src_range: None,
            dst_range: Some((a, a + 100)),
            len: 0,
            at: 0,
        };
        let read = Flow {
            time: 9,
            src: 2,
            dst: 3,
            src_range: Some((0, 100)),
            dst_range: None,
            len: 0,
            at: 3,
        };
        let g = Graph::new(vec![w(1, 0), w(2, 100), w(3, 200), read], HashSet::new());
        assert_eq!(T1::new(&g).sts.len(), 4);
        // From the writer after its first write, the reader is not reached...
        assert!(!keys(&g.forward(1, None, 2)).contains(&3));
        // ...but T2's single write [0, 300) over [1, 3] says it is: a false dependency.
        let s = SummaryGraph {
            sts: t2(&g.flows),
            volatile: HashSet::new(),
        };
        assert_eq!(s.sts.len(), 2);
        assert!(keys(&s.forward(1, 2)).contains(&3));
    }

    /// Every log of up to `max` flows over variables 1..=3 (2 is a file with bytes, 3 is
    /// volatile), times 0..3, byte ranges from a small set: calls `f` with each.
    fn all_small_logs(max: usize, f: &mut impl FnMut(&Graph)) {
        let ranges = [(0, 2), (1, 3), (2, 4)];
        let mut choices = Vec::new();
        for src in 1..=3u32 {
            for dst in 1..=3u32 {
                for time in 0..3u64 {
                    let sr: Vec<Option<Range>> = if src == 2 {
                        ranges.iter().map(|r| Some(*r)).collect()
                    } else {
                        vec![None]
                    };
                    let dr: Vec<Option<Range>> = if dst == 2 {
                        ranges.iter().map(|r| Some(*r)).collect()
                    } else {
                        vec![None]
                    };
                    for a in &sr {
                        for b in &dr {
                            choices.push((src, dst, time, *a, *b));
                        }
                    }
                }
            }
        }
        type Choice = (VarId, VarId, u64, Option<Range>, Option<Range>);
        fn rec(choices: &[Choice], log: &mut Vec<Flow>, max: usize, f: &mut impl FnMut(&Graph)) {
            if !log.is_empty() {
                f(&Graph::new(log.clone(), HashSet::from([3])));
            }
            if log.len() == max {
                return;
            }
            for &(src, dst, time, sr, dr) in choices {
                log.push(Flow {
                    time,
                    src,
                    dst,
                    src_range: sr,
                    dst_range: dr,
                    len: 0,
                    at: log.len(),
                });
                rec(choices, log, max, f);
                log.pop();
            }
        }
        rec(&choices, &mut Vec::new(), max, f);
    }

    #[test]
    fn every_small_log_t1_exact_t2_superset_t3_exact() {
        let mut n = 0u64;
        all_small_logs(3, &mut |g| {
            n += 1;
            let t1 = T1::new(g);
            let t2 = SummaryGraph {
                sts: t2(&g.flows),
                volatile: g.volatile.clone(),
            };
            for v in 1..=3 {
                for t in 0..4 {
                    let (o, m) = (g.backward(v, None, t), t1.backward(v, None, t));
                    assert_eq!(o.reached, m.reached, "T1 back {v} at {t}: {g:?}");
                    let (of, mf) = (g.forward(v, None, t), t1.forward(v, None, t));
                    assert_eq!(of.reached, mf.reached, "T1 forward {v} from {t}: {g:?}");
                    assert!(
                        keys(&o).is_subset(&keys(&t2.backward(v, t))),
                        "T2 back {v} {t}: {g:?}"
                    );
                    assert!(
                        keys(&of).is_subset(&keys(&t2.forward(v, t))),
                        "T2 fwd {v} {t}: {g:?}"
                    );
                }
            }
            for (v, srcs) in t3(g, |v| v == 1) {
                let oracle: HashSet<VarId> = g
                    .backward(v, None, u64::MAX)
                    .reached
                    .into_keys()
                    .filter(|&s| s != v && (s == 3 || s == 1))
                    .collect();
                assert_eq!(
                    srcs.into_iter().collect::<HashSet<_>>(),
                    oracle,
                    "T3 {v}: {g:?}"
                );
            }
        });
        // 75 choices of a flow (3 × 3 pairs, 3 ranges on the file's side, 3 times): every log
        // of 1, 2 and 3 flows.
        assert_eq!(n, 75 + 75 * 75 + 75 * 75 * 75);
    }

    #[test]
    fn t4_never_loses_a_dependency() {
        let mut r = Rng(0x0bad_5eed_1234_5678);
        for _ in 0..100_000 {
            let g = random(&mut r);
            let policy = FadePolicy {
                network_ns: (r.next(3) > 0).then(|| r.next(10)),
                files_ns: (r.next(3) > 0).then(|| r.next(10)),
            };
            let now = r.next(20);
            let faded = t4(&g.flows, &g.volatile, now, &policy);
            assert!(faded.iter().all(|f| f.exact_window == (f.st.count == 1)));
            let s = SummaryGraph {
                sts: faded.into_iter().map(|f| f.st).collect(),
                volatile: g.volatile.clone(),
            };
            let t = r.next(14);
            let vars: HashSet<VarId> = g.flows.iter().flat_map(|f| [f.src, f.dst]).collect();
            for &v in &vars {
                assert!(keys(&g.backward(v, None, t)).is_subset(&keys(&s.backward(v, t))));
                assert!(keys(&g.forward(v, None, t)).is_subset(&keys(&s.forward(v, t))));
            }
        }
    }

    /// A T1 summary file made coarser later (`jcs daemon --retain`): T2 or T4 of its
    /// summaries never loses a dependency the oracle finds in the flows.
    #[test]
    fn coarser_tiers_of_t1_summaries_never_lose_a_dependency() {
        let mut r = Rng(0x7e71_0ce5_0000_0002);
        for _ in 0..20_000 {
            let g = random(&mut r);
            let t1 = T1::new(&g).sts;
            let policy = FadePolicy {
                network_ns: (r.next(3) > 0).then(|| r.next(10)),
                files_ns: (r.next(3) > 0).then(|| r.next(10)),
            };
            let now = r.next(20);
            let t2 = t2_of_summaries(&t1);
            assert!(t2.len() <= t1.len());
            let t4: Vec<Summary> = t4_of_summaries(&t1, &g.volatile, now, &policy)
                .into_iter()
                .map(|f| f.st)
                .collect();
            assert!(t4.len() <= t1.len());
            let t = r.next(14);
            let vars: HashSet<VarId> = g.flows.iter().flat_map(|f| [f.src, f.dst]).collect();
            for sts in [t2, t4] {
                let s = SummaryGraph {
                    sts,
                    volatile: g.volatile.clone(),
                };
                for &v in &vars {
                    assert!(keys(&g.backward(v, None, t)).is_subset(&keys(&s.backward(v, t))));
                    assert!(keys(&g.forward(v, None, t)).is_subset(&keys(&s.forward(v, t))));
                }
            }
        }
    }

    #[test]
    fn summaries_encode_and_decode() {
        let mut r = Rng(0x5eed);
        for _ in 0..2000 {
            let g = random(&mut r);
            let mut sts = t2(&g.flows);
            sts.sort_by_key(|s| s.first);
            let b = encode(&sts);
            assert_eq!(decode(&b).as_ref(), Some(&sts));
            for cut in 0..b.len() {
                let _ = decode(&b[..cut]);
            }
            let t1 = T1::new(&g);
            let back = T1::from_summaries(decode(&encode(&t1.sts)).unwrap(), g.volatile.clone());
            assert!(back.is_some());
        }
        assert_eq!(decode(&[0xff; 12]), None);
    }

    #[test]
    fn online_t1_in_chunks_is_exact() {
        // Flows arriving in time order, in random chunks, taken now and then, with summaries
        // open too long (or too many) emitted at random ages and everything forced at random points: the
        // summaries answer exactly as the oracle over all the flows, and a summary of one flow
        // carries that flow's payload.
        let mut r = Rng(0x0b5e_55ed_0000_0001);
        let mut merged = 0;
        for _ in 0..50_000 {
            let g = random(&mut r);
            // Sometimes with few summaries allowed open at once.
            let mut o = match r.next(3) {
                0 => OnlineT1::with_cap(1 + r.next(4) as usize),
                _ => OnlineT1::new(),
            };
            let hold = r.next(3);
            let age = r.next(8);
            let mut sts = Vec::new();
            let mut i = 0;
            while i < g.flows.len() {
                let n = 1 + r.next(4) as usize;
                let end = (i + n).min(g.flows.len());
                // A chunk may arrive out of time order (CPUs differ): sometimes reversed.
                let mut chunk: Vec<(Flow, Flow)> =
                    g.flows[i..end].iter().map(|f| (*f, *f)).collect();
                if r.next(2) == 0 {
                    chunk.reverse();
                }
                o.push(chunk);
                // Everything before the cut has arrived: it is at most the next flow's time.
                let next = g
                    .flows
                    .get(end)
                    .map_or(g.flows[end - 1].time + 1, |f| f.time);
                let cut = next.saturating_sub(hold);
                i = end;
                sts.extend(o.take(cut, cut.saturating_sub(age), r.next(4) == 0));
            }
            sts.extend(o.take(u64::MAX, u64::MAX, true));
            assert_eq!(o.held(), (0, 0));
            for (s, f) in &sts {
                assert_eq!((s.src, s.dst, s.first), (f.src, f.dst, f.time));
                if s.count == 1 {
                    assert_eq!(s, &Summary::of(f));
                } else {
                    merged += 1;
                }
            }
            let sts: Vec<Summary> = sts.into_iter().map(|(s, _)| s).collect();
            assert_eq!(
                sts.iter().map(|s| s.count).sum::<u64>(),
                g.flows.len() as u64
            );
            let t1 = T1::from_summaries(sts, g.volatile.clone()).unwrap();
            let vars: HashSet<VarId> = g.flows.iter().flat_map(|f| [f.src, f.dst]).collect();
            let t = r.next(14);
            for &v in &vars {
                assert_eq!(
                    g.backward(v, None, t).reached,
                    t1.backward(v, None, t).reached,
                    "back {v} {t}\n{g:?}\n{:?}",
                    t1.sts
                );
                assert_eq!(
                    g.forward(v, None, t).reached,
                    t1.forward(v, None, t).reached,
                    "fwd {v} {t}\n{g:?}\n{:?}",
                    t1.sts
                );
            }
        }
        assert!(merged > 1000, "{merged}");
    }

    #[test]
    fn online_t1_merges_across_takes_as_t1_does() {
        // Taken one flow at a time, with nothing held too long, online T1 makes what T1 makes
        // over all the flows at once.
        let mut r = Rng(0x0b5e_55ed_0000_0002);
        for _ in 0..20_000 {
            let g = random(&mut r);
            let mut o = OnlineT1::new();
            let mut sts = Vec::new();
            for (i, f) in g.flows.iter().enumerate() {
                o.push([(*f, ())]);
                let next = g.flows.get(i + 1).map_or(u64::MAX, |n| n.time);
                sts.extend(o.take(next, 0, false).into_iter().map(|(s, _)| s));
            }
            sts.extend(o.take(u64::MAX, 0, true).into_iter().map(|(s, _)| s));
            let mut want = T1::new(&g).sts;
            let order = |s: &Summary| format!("{s:?}");
            sts.sort_by_key(order);
            want.sort_by_key(order);
            assert_eq!(sts, want, "{g:?}");
        }
    }

    #[test]
    fn fading_policies_parse_or_say_why_not() {
        let p = FadePolicy::parse("# fade\nnetwork 7d\n\nfiles 30d # whole files\n").unwrap();
        assert_eq!(p.network_ns, Some(7 * 86_400 * 1_000_000_000));
        assert_eq!(p.files_ns, Some(30 * 86_400 * 1_000_000_000));
        for (bad, why) in [
            ("network", "line 1"),
            ("network 7 days", "line 1"),
            ("disk 7d", "unknown setting"),
            ("\nfiles 3w", "line 2"),
        ] {
            let e = FadePolicy::parse(bad).unwrap_err();
            assert!(e.to_string().contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn t3_names_exactly_the_oracles_sources() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..100_000 {
            let g = random(&mut r);
            // Odd variables stand for VE memories here.
            let src = |v: VarId| v % 2 == 1;
            for (v, srcs) in t3(&g, src) {
                let oracle: HashSet<VarId> = g
                    .backward(v, None, u64::MAX)
                    .reached
                    .into_keys()
                    .filter(|&s| s != v && (g.volatile.contains(&s) || src(s)))
                    .collect();
                assert_eq!(srcs.into_iter().collect::<HashSet<_>>(), oracle);
            }
        }
    }
}
