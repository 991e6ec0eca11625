//! `jcs track back|forward`: time-respecting reachability over the journal's transactions
//! (the `analysis` oracle), printed as a tree, JSON, Graphviz DOT, or an SVG picture.
//!
//! A variable named on the command line may have several ids: a file known by its identity
//! (device, inode) and by its name alone (a rename names paths). Each is a starting point; the
//! answers are united. Not yet: summarized journals (every transaction is read).

use crate::daemon::{REC_ATS, REC_SUMMARIES, REC_VARS};
use crate::store::Store;
use analysis::summary::Summary;
use anyhow::{bail, Context, Result};
use model::at::{At, VarDef, VarId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Back,
    Forward,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Tree,
    Json,
    Dot,
}

/// The transactions between two variables of one VE and one kind, taken together.
#[derive(Debug, Clone)]
struct Edge {
    src: VarId,
    dst: VarId,
    ve: u64,
    op: &'static str,
    count: u64,
    first_ns: u64,
    last_ns: u64,
    bytes: u64,
}

/// Everything the journal holds that tracking uses.
pub struct Loaded {
    pub vars: HashMap<VarId, VarDef>,
    pub ats: Vec<At>,
    /// Summaries written by `jcs summarize`: (tier, summary).
    pub sums: Vec<(u8, analysis::summary::Summary)>,
}

/// Every variable definition, transaction and summary in the journal.
pub fn load(store: &Store) -> Result<Loaded> {
    let dir = store.layout.root().join("journal");
    let records = journal::read_all(&journal::DirStorage::new(&dir)?)
        .with_context(|| format!("read the journal at {}", dir.display()))?;
    let mut l = Loaded {
        vars: HashMap::new(),
        ats: Vec::new(),
        sums: Vec::new(),
    };
    for (seq, r) in records {
        match r.first() {
            Some(&REC_VARS) => {
                let defs: Vec<(VarId, VarDef)> = serde_json::from_slice(&r[1..])
                    .with_context(|| format!("journal record {seq}: variable definitions"))?;
                l.vars.extend(defs);
            }
            Some(&REC_ATS) => l.ats.extend(
                model::at::decode_batch(&r[1..])
                    .with_context(|| format!("journal record {seq}: transactions"))?,
            ),
            Some(&REC_SUMMARIES) if r.len() >= 2 => {
                let sts = analysis::summary::decode(&r[2..])
                    .with_context(|| format!("journal record {seq}: summaries do not decode"))?;
                l.sums.extend(sts.into_iter().map(|s| (r[1], s)));
            }
            _ => {}
        }
    }
    Ok(l)
}

/// The volatile variables (endpoints, socket paths) among `vars`.
pub fn volatile(vars: &HashMap<VarId, VarDef>) -> HashSet<VarId> {
    vars.iter()
        .filter(|(_, d)| d.is_volatile())
        .map(|(id, _)| *id)
        .collect()
}

fn time(ns: u64) -> String {
    let t = crate::output::time_ms((ns / 1_000_000) as i64);
    format!("{}.{:06}", t.trim_end_matches('Z'), (ns / 1000) % 1_000_000)
}

/// Answers from the transactions themselves (the oracle), or from their T1 or T2 summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Transactions,
    T1,
    T2,
}

pub fn track(
    store: &Store,
    dir: Direction,
    spec: &str,
    at_ns: Option<u64>,
    format: Format,
    svg: Option<&std::path::Path>,
    source: Source,
) -> Result<()> {
    let name = crate::history::parse_var_spec(spec)?;
    let Loaded { vars, ats, sums } = load(store)?;
    let starts: Vec<VarId> = vars
        .iter()
        .filter(|(_, d)| d.to_string() == name)
        .map(|(id, _)| *id)
        .collect();
    if starts.is_empty() {
        bail!("no variable {name} in the journal (see jcs log)");
    }
    let is_file = |v: VarId| vars.get(&v).is_some_and(VarDef::is_file);
    let volatile = volatile(&vars);
    let ve_of = |s: &Summary| match (vars.get(&s.src), vars.get(&s.dst)) {
        (Some(VarDef::Memory { ve }), _) | (_, Some(VarDef::Memory { ve })) => *ve,
        _ => 0,
    };
    // What the answer is built from: summaries in the journal, and the transactions that move
    // data — as they are, or summarized now (--tier).
    let mut items: Vec<(Summary, u64, &'static str)> = sums
        .into_iter()
        .map(|(tier, s)| {
            let ve = ve_of(&s);
            (s, ve, crate::daemon::tier_name(tier))
        })
        .collect();
    let flows = analysis::flows(&ats, is_file);
    match source {
        Source::Transactions => items.extend(flows.iter().map(|f| {
            let a = &ats[f.at];
            (Summary::of(f), a.ve, a.op.name())
        })),
        Source::T1 => {
            let g = analysis::Graph::new(flows, volatile.clone());
            items.extend(analysis::summary::T1::new(&g).sts.into_iter().map(|s| {
                let ve = ve_of(&s);
                (s, ve, "T1")
            }));
        }
        Source::T2 => items.extend(analysis::summary::t2(&flows).into_iter().map(|s| {
            let ve = ve_of(&s);
            (s, ve, "T2")
        })),
    }
    let sts: Vec<Summary> = items.iter().map(|i| i.0.clone()).collect();
    let (back, t) = (dir == Direction::Back, at_ns);
    let mut used = HashSet::new();
    // Exact unless a summary with windows (T2, T4) is involved: transactions are summaries of
    // one flow to T1's query.
    let windowed = items.iter().any(|i| i.2 == "T2" || i.2 == "T4");
    match analysis::summary::T1::from_summaries(sts.clone(), volatile.clone()) {
        Some(t1) if !windowed => {
            for &s in &starts {
                let a = if back {
                    t1.backward(s, None, t.unwrap_or(u64::MAX))
                } else {
                    t1.forward(s, None, t.unwrap_or(0))
                };
                used.extend(a.flows);
            }
        }
        _ => {
            let sg = analysis::summary::SummaryGraph { sts, volatile };
            for &s in &starts {
                let a = if back {
                    sg.backward(s, t.unwrap_or(u64::MAX))
                } else {
                    sg.forward(s, t.unwrap_or(0))
                };
                used.extend(a.flows);
            }
        }
    }
    // Items between the same two variables, of the same VE and kind, are one edge.
    let mut edges: BTreeMap<(VarId, VarId, u64, &'static str), Edge> = BTreeMap::new();
    for i in used {
        let (s, ve, op) = &items[i];
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
    let label = |v: VarId| {
        vars.get(&v)
            .map(|d| d.to_string())
            .unwrap_or_else(|| format!("var:{v}"))
    };
    let mut out = std::io::stdout().lock();
    let dot = || {
        let mut s = String::from(
            "digraph jcs {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n",
        );
        let mut nodes: Vec<VarId> = edges.iter().flat_map(|e| [e.src, e.dst]).collect();
        nodes.extend(&starts);
        nodes.sort_unstable();
        nodes.dedup();
        for n in &nodes {
            let style = if starts.contains(n) {
                ", style=bold"
            } else {
                ""
            };
            s += &format!("  v{n} [label={:?}{style}];\n", label(*n));
        }
        for e in &edges {
            s += &format!(
                "  v{} -> v{} [label={:?}];\n",
                e.src,
                e.dst,
                format!("VE {} {} ×{}, {} B", e.ve, e.op, e.count, e.bytes)
            );
        }
        s + "}\n"
    };
    if let Some(path) = svg {
        let mut child = std::process::Command::new("dot")
            .args(["-Tsvg", "-o"])
            .arg(path)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => anyhow::anyhow!(
                    "--svg needs Graphviz's dot, which is not installed (apt-get install graphviz)"
                ),
                _ => anyhow::anyhow!("run dot: {e}"),
            })?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(dot().as_bytes())?;
        let st = child.wait()?;
        if !st.success() {
            bail!("dot failed ({st})");
        }
        eprintln!("jcs: wrote {}", path.display());
        return Ok(());
    }
    match format {
        Format::Dot => out.write_all(dot().as_bytes())?,
        Format::Json => {
            let mut reached: Vec<String> = edges
                .iter()
                .flat_map(|e| [label(e.src), label(e.dst)])
                .collect();
            reached.extend(starts.iter().map(|s| label(*s)));
            reached.sort();
            reached.dedup();
            let j = serde_json::json!({
                "direction": match dir { Direction::Back => "back", Direction::Forward => "forward" },
                "variable": name,
                "time_ns": at_ns,
                "reached": reached,
                "edges": edges.iter().map(|e| serde_json::json!({
                    "src": label(e.src), "dst": label(e.dst), "ve": e.ve, "op": e.op,
                    "count": e.count, "first_ns": e.first_ns, "last_ns": e.last_ns, "bytes": e.bytes,
                })).collect::<Vec<_>>(),
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&j)?)?;
        }
        Format::Tree => {
            // Back: a node's children are what flowed into it; forward: where it flowed.
            let mut children: HashMap<VarId, Vec<&Edge>> = HashMap::new();
            for e in &edges {
                let parent = if dir == Direction::Back { e.dst } else { e.src };
                children.entry(parent).or_default().push(e);
            }
            let mut seen = HashSet::new();
            for &s in &starts {
                writeln!(out, "{}", label(s))?;
                seen.insert(s);
                print_tree(&mut out, &children, dir, s, "", &mut seen, &label)?;
            }
        }
    }
    Ok(())
}

fn print_tree(
    out: &mut impl Write,
    children: &HashMap<VarId, Vec<&Edge>>,
    dir: Direction,
    node: VarId,
    prefix: &str,
    seen: &mut HashSet<VarId>,
    label: &dyn Fn(VarId) -> String,
) -> Result<()> {
    let kids = children.get(&node).cloned().unwrap_or_default();
    for (i, e) in kids.iter().enumerate() {
        let last = i + 1 == kids.len();
        let next = if dir == Direction::Back { e.src } else { e.dst };
        let window = if e.first_ns == e.last_ns {
            time(e.first_ns)
        } else {
            format!("{} – {}", time(e.first_ns), time(e.last_ns))
        };
        let again = !seen.insert(next);
        writeln!(
            out,
            "{prefix}{} {}   [VE {} {} ×{}, {window}, {} B]{}",
            if last { "└─" } else { "├─" },
            label(next),
            e.ve,
            e.op,
            e.count,
            e.bytes,
            if again { " (see above)" } else { "" }
        )?;
        if !again {
            let p = format!("{prefix}{}", if last { "   " } else { "│  " });
            print_tree(out, children, dir, next, &p, seen, label)?;
        }
    }
    Ok(())
}
