//! `jcs track back|forward`: time-respecting reachability over the journal's transactions
//! (the `analysis` oracle), or over summaries (those in the journal, or T1/T2 made now).
//!
//! A variable named by a query may have several ids: a file known by its identity (device,
//! inode) and by its name alone (a rename names paths). Each is a starting point; the answers
//! are united. The answer renders as a tree, JSON or Graphviz DOT.

use crate::{read_all, QueryError, Result};
use analysis::summary::Summary;
use model::at::{At, VarDef, VarId};
use record::{Record, Tier, VarQuery};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Back,
    Forward,
}

/// Answers from the transactions themselves (the oracle), or from their T1, T1F or T2
/// summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Transactions,
    T1,
    T1F,
    T2,
}

/// Everything the journal holds that tracking and summarizing use.
#[derive(Debug, Default)]
pub struct Loaded {
    pub vars: HashMap<VarId, VarDef>,
    pub ats: Vec<At>,
    /// Summaries written by `jcs summarize` or the recorder's online T1.
    pub sums: Vec<(Tier, Summary)>,
    /// The names files got and lost.
    pub names: Vec<model::at::Name>,
    /// Damaged stretches of the journal that could not be read.
    pub skipped: Vec<journal::Skipped>,
}

impl Loaded {
    /// Every variable definition, transaction and summary of the journal in `dir`.
    pub fn read(dir: &Path) -> Result<Loaded> {
        let (records, skipped) = read_all(dir)?;
        let mut l = Loaded {
            skipped,
            ..Loaded::default()
        };
        for rec in records {
            match rec {
                Record::Vars(defs) => l.vars.extend(defs),
                Record::Ats(ats) => l.ats.extend(ats),
                Record::Summaries { tier, sts } => {
                    l.sums.extend(sts.into_iter().map(|s| (tier, s)))
                }
                Record::Names(n) => l.names.extend(n),
                Record::Stats(_)
                | Record::Repairs(_)
                | Record::Policy(_)
                | Record::Restores(_)
                | Record::Execs(_)
                | Record::Ve(_) => {}
            }
        }
        Ok(l)
    }

    /// What a tracking question from `query` can reach, read through the segment indexes: the
    /// open and unindexed segments whole; from each indexed one the blocks with gaps, then,
    /// starting from the question's variables, for every variable reached in `direction` the
    /// blocks where data moved into it (back) or out of it (forward), in any time: a superset
    /// of what the time-respecting answer uses, so the answer is the one a full read gives. Variable
    /// definitions and names come from the catalog (the indexer put those of every sealed
    /// segment there). None where this cannot be done exactly — summary files (`jcs
    /// summarize`), no index, a damaged block, a variable the catalog does not define — and
    /// the caller reads the journal whole.
    pub fn read_reachable(
        store: &store::Store,
        query: &VarQuery,
        direction: Direction,
        scope: &crate::resolve::Scope,
    ) -> Result<Option<Loaded>> {
        let dir = store.journal_dir();
        let storage = crate::open(&dir)?;
        let summary_files = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.flatten().any(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(journal::summary::summary_range)
                        .is_some()
                })
            })
            .unwrap_or(true);
        if summary_files {
            return Ok(None);
        }
        let segs = journal::segment_numbers(&storage).map_err(crate::journal_err(&dir))?;
        // (seg, index, where the part it covers ends: after it, the segment is read whole).
        let mut indexed = Vec::new();
        let mut whole = Vec::new();
        for (i, &seg) in segs.iter().enumerate() {
            let idx = if i + 1 < segs.len() {
                journal::index::load(&storage, seg)
            } else {
                journal::index::load_prefix(&storage, seg)
            };
            match idx {
                Some(idx) => {
                    whole.push((seg, idx.seg_len));
                    indexed.push((seg, idx));
                }
                None => whole.push((seg, 0)),
            }
        }
        if indexed.is_empty() {
            return Ok(None);
        }
        let mut r = Reach {
            back: direction == Direction::Back,
            ..Reach::default()
        };
        // The dictionary: only what the question names, where the catalog can say it by a
        // key or a name (the definitions of what is reached are looked up at the end);
        // otherwise — an endpoint (its flows), a file by inode alone, a path prefix — all.
        let whole_dictionary = match query {
            VarQuery::File(p) => p.ends_with('*'),
            VarQuery::Store(_) | VarQuery::Endpoint { .. } => false,
            q => q.key().is_none(),
        };
        if whole_dictionary {
            r.l.vars = store.catalog.all_vars()?.into_iter().collect();
            for n in store.catalog.all_names()? {
                r.name(n);
            }
        } else {
            // An endpoint: itself and every flow to or from it.
            if let VarQuery::Endpoint { addr, port } = query {
                let end = std::net::SocketAddr::new(*addr, *port);
                r.l.vars.extend(store.catalog.vars_at(end)?);
            }
            if let Some(k) = query.key() {
                for id in store.catalog.var_ids(&k)? {
                    if let Some(d) = store.catalog.var(id)? {
                        r.l.vars.insert(id, d);
                    }
                }
            }
            let names = match query {
                VarQuery::File(p) => store.catalog.names(Some(p), None)?,
                VarQuery::Unix(p) if query.socket_file().is_some() => {
                    store.catalog.names(Some(p), None)?
                }
                VarQuery::Store(st) => match st.strip_suffix('*') {
                    Some(prefix) => store.catalog.names_with_prefix(None, Some(prefix))?,
                    None => store.catalog.names(None, Some(st))?,
                },
                _ => Vec::new(),
            };
            for n in names {
                if let Some(d) = store.catalog.var(n.var)? {
                    r.l.vars.insert(n.var, d);
                }
                r.name(n);
            }
        }
        for (seg, from) in whole {
            let (records, _, skipped) = journal::read_segment_tolerant(&storage, seg, from)
                .map_err(crate::journal_err(&dir))?;
            r.l.skipped.extend(skipped);
            for (seq, rec) in records {
                if let Some(rec) = crate::decode(seq, &rec)? {
                    r.add(seq, rec);
                }
            }
        }
        let mut fetched: HashSet<(u64, usize)> = HashSet::new();
        // Reads the blocks of `key` not read yet; false when one cannot be read.
        let mut fetch = |r: &mut Reach, key: u64| -> Result<bool> {
            for (seg, idx) in &indexed {
                let blocks: Vec<_> = idx
                    .blocks_for(&[key])
                    .into_iter()
                    .filter(|b| fetched.insert((*seg, *b)))
                    .map(|b| idx.blocks[b])
                    .collect();
                if blocks.is_empty() {
                    continue;
                }
                let Ok(records) = journal::index::read_blocks(&storage, *seg, &blocks) else {
                    return Ok(false);
                };
                for (seq, rec) in records {
                    if let Some(rec) = crate::decode(seq, &rec)? {
                        r.add(seq, rec);
                    }
                }
            }
            Ok(true)
        };
        if !fetch(&mut r, record::key::GAP)? {
            return Ok(None);
        }
        // (A question the catalog cannot answer: the full read says why, or answers it.)
        let Ok(starts) = crate::resolve::resolve(query, &r.l.vars, &r.l.names, scope) else {
            return Ok(None);
        };
        if starts.is_empty() {
            return Ok(None);
        }
        let mut expanded: HashSet<VarId> = HashSet::new();
        let start_set: HashSet<VarId> = starts.iter().copied().collect();
        let mut queue: Vec<VarId> = starts;
        while let Some(v) = queue.pop() {
            if !expanded.insert(v) {
                continue;
            }
            // A volatile variable reached (an endpoint known by its address) is only ever a
            // source, or a sink: nothing passes through it (`analysis`), so its other
            // transactions are not needed — unless the question starts there.
            if !start_set.contains(&v) {
                if let std::collections::hash_map::Entry::Vacant(e) = r.l.vars.entry(v) {
                    if let Some(d) = store.catalog.var(v)? {
                        e.insert(d);
                    }
                }
                if r.l.vars.get(&v).is_some_and(VarDef::is_volatile) {
                    continue;
                }
            }
            // Back: the blocks where data moved into it; forward: out of it.
            let key = match direction {
                Direction::Back => record::key::into(v),
                Direction::Forward => record::key::out_of(v),
            };
            if !fetch(&mut r, key)? {
                return Ok(None);
            }
            // Forward from a file of a VE's dirties: its integrity records, which say which
            // memory may have read it back (analysis::integrity::points).
            if direction == Direction::Forward
                && start_set.contains(&v)
                && !fetch(&mut r, record::key::into(v))?
            {
                return Ok(None);
            }
            queue.extend(
                r.next
                    .get(&v)
                    .into_iter()
                    .flatten()
                    .filter(|n| !expanded.contains(n)),
            );
        }
        let mut l = r.finish();
        // The definitions of everything reached that the question did not name.
        let used: HashSet<VarId> = l
            .ats
            .iter()
            .flat_map(|a| [a.src, a.dst])
            .chain(l.sums.iter().flat_map(|(_, s)| [s.src, s.dst]))
            .filter(|v| *v != 0 && !l.vars.contains_key(v))
            .collect();
        for v in used {
            if let Some(d) = store.catalog.var(v)? {
                l.vars.insert(v, d);
            }
        }
        let defined = |v: &VarId| *v == 0 || l.vars.contains_key(v);
        let all_defined = l.ats.iter().all(|a| defined(&a.src) && defined(&a.dst))
            && l.sums
                .iter()
                .all(|(_, s)| defined(&s.src) && defined(&s.dst));
        if !all_defined {
            return Ok(None);
        }
        l.skipped
            .sort_by(|a, b| (&a.file, a.offset).cmp(&(&b.file, b.offset)));
        Ok(Some(l))
    }

    pub fn is_file(&self, v: VarId) -> bool {
        self.vars.get(&v).is_some_and(VarDef::is_file)
    }

    /// The volatile variables (endpoints, socket paths).
    pub fn volatile(&self) -> HashSet<VarId> {
        self.vars
            .iter()
            .filter(|(_, d)| d.is_volatile())
            .map(|(id, _)| *id)
            .collect()
    }

    /// The flows: the transactions that move data.
    pub fn flows(&self) -> Vec<analysis::Flow> {
        analysis::flows(&self.ats, |v| self.is_file(v))
    }
}

/// The transactions between two variables of one VE and one kind, taken together.
#[derive(Debug, Clone)]
pub struct Edge {
    pub src: VarId,
    pub dst: VarId,
    pub ve: u64,
    /// The operation (`read`, `write`, …) or the tier of the summaries (`T1`, …).
    pub op: &'static str,
    pub count: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    pub bytes: u64,
}

/// A loss in the record: records of VE `ve` were lost between `since_ns` (None: unknown)
/// and `time_ns` (`lost`: how many; None: unknown, no recorder ran). (`jcs track --json`
/// prints it as it is.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Gap {
    pub ve: u64,
    pub since_ns: Option<u64>,
    pub time_ns: u64,
    pub lost: Option<u64>,
}

/// `jcs track --json`: the answer as one object.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct TrackJson {
    /// `back` or `forward`.
    pub direction: &'static str,
    /// The question's variable, as given.
    pub variable: String,
    /// The variables it names (a file by its names at the time, an endpoint by its flows).
    pub roots: Vec<String>,
    /// The instant the question is asked at (back: up to it; forward: from it); null: the
    /// whole journal.
    pub time_ns: Option<u64>,
    /// False when a gap or an unreadable stretch may have hidden a flow.
    pub complete: bool,
    pub skipped: Vec<journal::Skipped>,
    pub gaps: Vec<Gap>,
    /// Every variable the answer reached, the roots included.
    pub reached: Vec<String>,
    pub edges: Vec<EdgeJson>,
}

/// An edge of `jcs track --json`: `count` transactions of VE `ve` from `src` to `dst`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct EdgeJson {
    pub src: String,
    pub dst: String,
    pub ve: u64,
    /// The operation (`read`, `write`, …) or the tier of summaries (`T1`, …).
    pub op: &'static str,
    pub count: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    /// The bytes that flowed.
    pub bytes: u64,
}

/// What a tracking question reached.
#[derive(Debug)]
pub struct Answer {
    pub direction: Direction,
    pub query: VarQuery,
    pub time_ns: Option<u64>,
    /// The ids the query names (the roots).
    pub starts: Vec<VarId>,
    pub edges: Vec<Edge>,
    /// Losses in the window the question looks at (back: up to its time; forward: from its
    /// time on): any of them may have hidden a flow, so the answer is complete only without.
    pub gaps: Vec<Gap>,
    /// Damaged stretches of the journal that could not be read: what they held is missing.
    pub skipped: Vec<journal::Skipped>,
    labels: HashMap<VarId, String>,
}

/// Answers `query` from the journal in `dir`; a name is resolved in the VEs `ves` (None:
/// any) at `time_ns` (crate::resolve).
pub fn track(
    dir: &Path,
    direction: Direction,
    query: &VarQuery,
    time_ns: Option<u64>,
    ves: Option<HashSet<u64>>,
    source: Source,
) -> Result<Answer> {
    let scope = crate::resolve::Scope {
        ves,
        at_ns: time_ns,
    };
    answer(Loaded::read(dir)?, direction, query, &scope, source)
}

/// [`track`] over a store: from the transactions, only the blocks the answer can reach are
/// read through the segment indexes ([`Loaded::read_reachable`]); the same answer as reading
/// the whole journal (`JCS_TRACK_SCAN=full` makes it do that instead, to compare).
pub fn track_store(
    store: &store::Store,
    direction: Direction,
    query: &VarQuery,
    time_ns: Option<u64>,
    ves: Option<HashSet<u64>>,
    source: Source,
) -> Result<Answer> {
    let full = std::env::var("JCS_TRACK_SCAN").is_ok_and(|v| v == "full");
    if source == Source::Transactions && !full {
        let scope = crate::resolve::Scope {
            ves: ves.clone(),
            at_ns: time_ns,
        };
        if let Some(l) = Loaded::read_reachable(store, query, direction, &scope)? {
            return answer(l, direction, query, &scope, source);
        }
    }
    // Where the indexes cannot answer exactly: the whole journal.
    track(&store.journal_dir(), direction, query, time_ns, ves, source)
}

fn answer(
    l: Loaded,
    direction: Direction,
    query: &VarQuery,
    scope: &crate::resolve::Scope,
    source: Source,
) -> Result<Answer> {
    let starts = crate::resolve::resolve(query, &l.vars, &l.names, scope)?;
    if starts.is_empty() {
        return Err(match l.skipped.len() {
            0 => QueryError::NoVariable(query.clone()),
            n => QueryError::NoVariableReadable(query.clone(), n),
        });
    }
    answer_from(l, direction, query, starts, scope.at_ns, source)
}

/// The answer from `starts` (the variables `query` named, resolved by the caller: a fleet's
/// tracker resolves them among its hosts') over what `l` holds: the same engine as
/// [`track`], whoever gathered the transactions.
pub fn answer_from(
    l: Loaded,
    direction: Direction,
    query: &VarQuery,
    starts: Vec<VarId>,
    time_ns: Option<u64>,
    source: Source,
) -> Result<Answer> {
    let volatile = l.volatile();
    let ve_of = |s: &Summary| match (l.vars.get(&s.src), l.vars.get(&s.dst)) {
        (Some(VarDef::Memory { ve }), _) | (_, Some(VarDef::Memory { ve })) => *ve,
        _ => 0,
    };
    let back = direction == Direction::Back;
    // What the answer is built from: summaries in the journal, and the transactions that move
    // data — as they are, or summarized now (`source`). An integrity record is the flows this
    // question sees of it (`shown`: the record an edge reports instead, counted once).
    let mut items: Vec<(Summary, u64, &'static str)> = Vec::with_capacity(l.sums.len());
    let mut shown: HashMap<usize, Option<Summary>> = HashMap::new();
    for (tier, s) in &l.sums {
        if *tier == Tier::Integrity {
            let q = time_ns.unwrap_or(if back { u64::MAX } else { 0 });
            let points = analysis::integrity::points(s, back, q, starts.contains(&s.dst));
            for (k, p) in points.into_iter().enumerate() {
                // (The way back into the memory, forward from the file, is an edge of its own.)
                let record = if p.src == s.src {
                    (k == 0).then(|| s.clone())
                } else {
                    Some(Summary {
                        first: p.first.max(s.first),
                        last: s.last.max(p.first),
                        count: 0,
                        bytes: 0,
                        ..p.clone()
                    })
                };
                shown.insert(items.len(), record);
                items.push((p, ve_of(s), tier.name()));
            }
        } else {
            items.push((s.clone(), ve_of(s), tier.name()));
        }
    }
    let windowed = l.sums.iter().any(|(t, _)| t.windowed()) || source == Source::T2;
    let flows = l.flows();
    match source {
        Source::Transactions => items.extend(flows.iter().map(|f| {
            let a = &l.ats[f.at];
            (Summary::of(f), a.ve, a.op.name())
        })),
        Source::T1 => {
            let g = analysis::Graph::new(flows, volatile.clone());
            items.extend(
                analysis::summary::T1::new(&g)
                    .sts
                    .into_iter()
                    .map(|s| (s.clone(), ve_of(&s), "T1")),
            );
        }
        Source::T1F => {
            let g = analysis::Graph::new(flows, volatile.clone());
            items.extend(
                analysis::summary::t1f(&g)
                    .into_iter()
                    .map(|s| (s.clone(), ve_of(&s), "T1F")),
            );
        }
        Source::T2 => items.extend(
            analysis::summary::t2(&flows)
                .into_iter()
                .map(|s| (s.clone(), ve_of(&s), "T2")),
        ),
    }
    let sts: Vec<Summary> = items.iter().map(|i| i.0.clone()).collect();
    let mut used = HashSet::new();
    // Exact unless a summary with windows (T2, T4) is involved: transactions are summaries of
    // one flow to T1's query.
    match analysis::summary::T1::from_summaries(sts.clone(), volatile.clone()) {
        Some(t1) if !windowed => {
            for &s in &starts {
                let a = if back {
                    t1.backward(s, None, time_ns.unwrap_or(u64::MAX))
                } else {
                    t1.forward(s, None, time_ns.unwrap_or(0))
                };
                used.extend(a.flows);
            }
        }
        _ => {
            let sg = analysis::summary::SummaryGraph { sts, volatile };
            for &s in &starts {
                let a = if back {
                    sg.backward(s, time_ns.unwrap_or(u64::MAX))
                } else {
                    sg.forward(s, time_ns.unwrap_or(0))
                };
                used.extend(a.flows);
            }
        }
    }
    // Items between the same two variables, of the same VE and kind, are one edge.
    let mut edges: BTreeMap<(VarId, VarId, u64, &'static str), Edge> = BTreeMap::new();
    for i in used {
        let (s, ve, op) = &items[i];
        let s = match shown.get(&i) {
            Some(Some(record)) => record,
            Some(None) => continue, // another piece of a record already counted
            None => s,
        };
        let e = edges.entry((s.src, s.dst, *ve, op)).or_insert(Edge {
            src: s.src,
            dst: s.dst,
            ve: *ve,
            op,
            count: 0,
            first_ns: s.first,
            last_ns: s.last,
            bytes: 0,
        });
        e.count += s.count;
        e.first_ns = e.first_ns.min(s.first);
        e.last_ns = e.last_ns.max(s.last);
        e.bytes += s.bytes;
    }
    let edges: Vec<Edge> = edges.into_values().collect();
    let labels = edges
        .iter()
        .flat_map(|e| [e.src, e.dst])
        .chain(starts.iter().copied())
        .map(|v| {
            let name = l
                .vars
                .get(&v)
                .map_or_else(|| format!("var:{v}"), |d| d.to_string());
            (v, name)
        })
        .collect();
    let gaps = l
        .ats
        .iter()
        .filter(|a| a.op == model::at::Op::Gap)
        .filter(|a| match direction {
            Direction::Back => time_ns.is_none_or(|t| a.time_ns <= t),
            Direction::Forward => time_ns.is_none_or(|t| a.time_ns >= t),
        })
        .map(|a| Gap {
            ve: a.ve,
            since_ns: (a.off > 0 && a.off <= a.time_ns).then_some(a.off),
            time_ns: a.time_ns,
            lost: (a.result >= 0).then_some(a.len),
        })
        .collect();
    Ok(Answer {
        direction,
        query: query.clone(),
        time_ns,
        starts,
        edges,
        gaps,
        skipped: l.skipped.clone(),
        labels,
    })
}

impl Answer {
    /// Puts `prefix(v)` (a fleet's host name) before the label of each variable that has one.
    pub fn qualify(&mut self, prefix: impl Fn(VarId) -> Option<String>) {
        for (v, label) in self.labels.iter_mut() {
            if let Some(p) = prefix(*v) {
                *label = format!("{p}:{label}");
            }
        }
    }

    /// Whether no loss in the record could have hidden a flow from this answer.
    pub fn complete(&self) -> bool {
        self.gaps.is_empty() && self.skipped.is_empty()
    }

    /// One line per gap, for people.
    pub fn gap_lines(&self) -> Vec<String> {
        self.gaps
            .iter()
            .map(|g| {
                let what = match g.lost {
                    Some(n) => format!("{n} record(s) lost"),
                    None => "not recorded for a while (no recorder ran)".into(),
                };
                match g.since_ns {
                    Some(s) => format!(
                        "VE {} between {} and {}: {what}",
                        g.ve,
                        crate::time::time_us(s),
                        crate::time::time_us(g.time_ns)
                    ),
                    None => format!("VE {} at {}: {what}", g.ve, crate::time::time_us(g.time_ns)),
                }
            })
            .chain(self.skipped.iter().map(crate::skipped_line))
            .collect()
    }

    /// How variable `v` prints.
    pub fn label(&self, v: VarId) -> &str {
        self.labels.get(&v).map_or("?", String::as_str)
    }

    /// Graphviz DOT: one box per variable (the roots bold), one labelled arrow per edge.
    pub fn to_dot(&self) -> String {
        let mut s = String::from(
            "digraph jcs {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n",
        );
        let mut nodes: Vec<VarId> = self.edges.iter().flat_map(|e| [e.src, e.dst]).collect();
        nodes.extend(&self.starts);
        nodes.sort_unstable();
        nodes.dedup();
        for n in &nodes {
            let style = if self.starts.contains(n) {
                ", style=bold"
            } else {
                ""
            };
            s += &format!("  v{n} [label={:?}{style}];\n", self.label(*n));
        }
        for e in &self.edges {
            s += &format!(
                "  v{} -> v{} [label={:?}];\n",
                e.src,
                e.dst,
                format!("VE {} {} ×{}, {} B", e.ve, e.op, e.count, e.bytes)
            );
        }
        s + "}\n"
    }

    /// The answer as `jcs track --json` prints it.
    pub fn to_json(&self) -> TrackJson {
        let mut reached: Vec<String> = self
            .edges
            .iter()
            .flat_map(|e| [self.label(e.src), self.label(e.dst)])
            .chain(self.starts.iter().map(|s| self.label(*s)))
            .map(str::to_string)
            .collect();
        reached.sort();
        reached.dedup();
        TrackJson {
            direction: match self.direction {
                Direction::Back => "back",
                Direction::Forward => "forward",
            },
            variable: self.query.to_string(),
            roots: self
                .starts
                .iter()
                .map(|s| self.label(*s).to_string())
                .collect(),
            time_ns: self.time_ns,
            complete: self.complete(),
            skipped: self.skipped.clone(),
            gaps: self.gaps.clone(),
            reached,
            edges: self
                .edges
                .iter()
                .map(|e| EdgeJson {
                    src: self.label(e.src).to_string(),
                    dst: self.label(e.dst).to_string(),
                    ve: e.ve,
                    op: e.op,
                    count: e.count,
                    first_ns: e.first_ns,
                    last_ns: e.last_ns,
                    bytes: e.bytes,
                })
                .collect(),
        }
    }

    /// A tree per root: back, a node's children are what flowed into it; forward, where it
    /// flowed. A node reached twice is printed once, then "(see above)".
    pub fn write_tree(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let mut children: HashMap<VarId, Vec<&Edge>> = HashMap::new();
        for e in &self.edges {
            let parent = if self.direction == Direction::Back {
                e.dst
            } else {
                e.src
            };
            children.entry(parent).or_default().push(e);
        }
        if !self.complete() {
            writeln!(
                out,
                "INCOMPLETE: the record has {} gap(s) in this window and {} unreadable stretch(es); what is missing may hide a flow:",
                self.gaps.len(),
                self.skipped.len()
            )?;
            for l in self.gap_lines() {
                writeln!(out, "  {l}")?;
            }
        }
        let mut seen = HashSet::new();
        for &s in &self.starts {
            writeln!(out, "{}", self.label(s))?;
            seen.insert(s);
            self.subtree(out, &children, s, "", &mut seen)?;
        }
        Ok(())
    }

    fn subtree(
        &self,
        out: &mut dyn Write,
        children: &HashMap<VarId, Vec<&Edge>>,
        node: VarId,
        prefix: &str,
        seen: &mut HashSet<VarId>,
    ) -> std::io::Result<()> {
        let kids = children.get(&node).cloned().unwrap_or_default();
        for (i, e) in kids.iter().enumerate() {
            let last = i + 1 == kids.len();
            let next = if self.direction == Direction::Back {
                e.src
            } else {
                e.dst
            };
            let window = if e.first_ns == e.last_ns {
                crate::time::time_us(e.first_ns)
            } else {
                format!(
                    "{} – {}",
                    crate::time::time_us(e.first_ns),
                    crate::time::time_us(e.last_ns)
                )
            };
            let again = !seen.insert(next);
            writeln!(
                out,
                "{prefix}{} {}   [VE {} {} ×{}, {window}, {} B]{}",
                if last { "└─" } else { "├─" },
                self.label(next),
                e.ve,
                e.op,
                e.count,
                e.bytes,
                if again { " (see above)" } else { "" }
            )?;
            if !again {
                let p = format!("{prefix}{}", if last { "   " } else { "│  " });
                self.subtree(out, children, next, &p, seen)?;
            }
        }
        Ok(())
    }
}

/// What [`Loaded::read_reachable`] has read so far: records in journal order (by sequence
/// number), and for each variable the ones one step further in the question's direction.
#[derive(Debug, Default)]
struct Reach {
    back: bool,
    l: Loaded,
    ats: Vec<(u64, usize, At)>,
    sums: Vec<(u64, usize, Tier, Summary)>,
    names: HashSet<(u64, u64, VarId, String, bool)>,
    next: HashMap<VarId, Vec<VarId>>,
}

impl Reach {
    fn step(&mut self, src: VarId, dst: VarId) {
        let (from, to) = if self.back { (dst, src) } else { (src, dst) };
        if from != 0 && to != 0 {
            self.next.entry(from).or_default().push(to);
        }
    }

    fn name(&mut self, n: model::at::Name) {
        if self
            .names
            .insert((n.time_ns, n.ve, n.var, n.path.clone(), n.bound))
        {
            self.l.names.push(n);
        }
    }

    fn add(&mut self, seq: u64, rec: Record) {
        match rec {
            Record::Vars(defs) => self.l.vars.extend(defs),
            Record::Ats(ats) => {
                for (k, a) in ats.into_iter().enumerate() {
                    self.step(a.src, a.dst);
                    self.ats.push((seq, k, a));
                }
            }
            Record::Summaries { tier, sts } => {
                for (k, s) in sts.into_iter().enumerate() {
                    self.step(s.src, s.dst);
                    // Forward, a dirties file leads back to the memory that wrote it.
                    if tier == Tier::Integrity && !self.back {
                        self.next.entry(s.dst).or_default().push(s.src);
                    }
                    self.sums.push((seq, k, tier, s));
                }
            }
            Record::Names(names) => names.into_iter().for_each(|n| self.name(n)),
            Record::Stats(_)
            | Record::Repairs(_)
            | Record::Policy(_)
            | Record::Restores(_)
            | Record::Execs(_)
            | Record::Ve(_) => {}
        }
    }

    /// The records in journal order (a block read twice by two keys is read once).
    fn finish(mut self) -> Loaded {
        self.ats.sort_by_key(|(seq, k, _)| (*seq, *k));
        self.ats.dedup_by_key(|(seq, k, _)| (*seq, *k));
        self.sums.sort_by_key(|(seq, k, _, _)| (*seq, *k));
        self.sums.dedup_by_key(|(seq, k, _, _)| (*seq, *k));
        self.l.ats = self.ats.into_iter().map(|(_, _, a)| a).collect();
        self.l.sums = self.sums.into_iter().map(|(_, _, t, s)| (t, s)).collect();
        self.l.names.sort_by_key(|n| n.time_ns);
        self.l
    }
}
