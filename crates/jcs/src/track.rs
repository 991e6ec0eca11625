//! `jcs track back|forward`: time-respecting reachability over the journal's transactions
//! (the `analysis` oracle), printed as a tree, JSON, Graphviz DOT, or an SVG picture.
//!
//! A variable named on the command line may have several ids: a file known by its identity
//! (device, inode) and by its name alone (a rename names paths). Each is a starting point; the
//! answers are united. Not yet: summarized journals (every transaction is read).

use crate::daemon::{REC_ATS, REC_VARS};
use crate::store::Store;
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

/// Every variable definition and transaction in the journal.
pub fn load(store: &Store) -> Result<(HashMap<VarId, VarDef>, Vec<At>)> {
    let dir = store.layout.root().join("journal");
    let records = journal::read_all(&journal::DirStorage::new(&dir)?)
        .with_context(|| format!("read the journal at {}", dir.display()))?;
    let mut vars = HashMap::new();
    let mut ats = Vec::new();
    for (seq, r) in records {
        match r.first() {
            Some(&REC_VARS) => {
                let defs: Vec<(VarId, VarDef)> = serde_json::from_slice(&r[1..])
                    .with_context(|| format!("journal record {seq}: variable definitions"))?;
                vars.extend(defs);
            }
            Some(&REC_ATS) => ats.extend(
                model::at::decode_batch(&r[1..])
                    .with_context(|| format!("journal record {seq}: transactions"))?,
            ),
            _ => {}
        }
    }
    Ok((vars, ats))
}

fn time(ns: u64) -> String {
    let t = crate::output::time_ms((ns / 1_000_000) as i64);
    format!("{}.{:06}", t.trim_end_matches('Z'), (ns / 1000) % 1_000_000)
}

/// Answers from the transactions themselves (the oracle), or from their T2 summaries.
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
    let (vars, ats) = load(store)?;
    let starts: Vec<VarId> = vars
        .iter()
        .filter(|(_, d)| d.to_string() == name)
        .map(|(id, _)| *id)
        .collect();
    if starts.is_empty() {
        bail!("no variable {name} in the journal (see jcs log)");
    }
    let is_file = |v: VarId| {
        matches!(
            vars.get(&v),
            Some(VarDef::File { .. } | VarDef::Path { .. })
        )
    };
    let volatile: HashSet<VarId> = vars
        .iter()
        .filter(|(_, d)| matches!(d, VarDef::Endpoint { .. } | VarDef::Unix { .. }))
        .map(|(id, _)| *id)
        .collect();
    let graph = analysis::Graph::new(analysis::flows(&ats, is_file), volatile);
    let mut used = HashSet::new();
    if source == Source::T1 {
        // T1 is exact: the same answers; each used summary stands for the flows it merged.
        let t1 = analysis::summary::T1::new(&graph);
        let mut keys = HashSet::new();
        for &s in &starts {
            let a = match dir {
                Direction::Back => t1.backward(s, None, at_ns.unwrap_or(u64::MAX)),
                Direction::Forward => t1.forward(s, None, at_ns.unwrap_or(0)),
            };
            keys.extend(a.flows.into_iter().map(|i| (t1.sts[i].src, t1.sts[i].dst)));
        }
        used.extend(
            graph
                .flows
                .iter()
                .enumerate()
                .filter(|(_, f)| keys.contains(&(f.src, f.dst)))
                .map(|(i, _)| i),
        );
    } else if source == Source::T2 {
        // Over T2 summaries: each used summary stands for all the flows it merged.
        let sg = analysis::summary::SummaryGraph {
            sts: analysis::summary::t2(&graph.flows),
            volatile: graph.volatile.clone(),
        };
        let mut pairs = HashSet::new();
        for &s in &starts {
            let a = match dir {
                Direction::Back => sg.backward(s, at_ns.unwrap_or(u64::MAX)),
                Direction::Forward => sg.forward(s, at_ns.unwrap_or(0)),
            };
            pairs.extend(a.flows.into_iter().map(|i| (sg.sts[i].src, sg.sts[i].dst)));
        }
        used.extend(
            graph
                .flows
                .iter()
                .enumerate()
                .filter(|(_, f)| pairs.contains(&(f.src, f.dst)))
                .map(|(i, _)| i),
        );
    } else {
        for &s in &starts {
            let a = match dir {
                Direction::Back => graph.backward(s, None, at_ns.unwrap_or(u64::MAX)),
                Direction::Forward => graph.forward(s, None, at_ns.unwrap_or(0)),
            };
            used.extend(a.flows);
        }
    }
    // Transactions between the same two variables, of the same VE and kind, are one edge.
    let mut edges: BTreeMap<(VarId, VarId, u64, &'static str), Edge> = BTreeMap::new();
    let mut used: Vec<usize> = used.into_iter().collect();
    used.sort_unstable();
    for i in used {
        let f = graph.flows[i];
        let a = &ats[f.at];
        let e = edges
            .entry((f.src, f.dst, a.ve, a.op.name()))
            .or_insert(Edge {
                src: f.src,
                dst: f.dst,
                ve: a.ve,
                op: a.op.name(),
                count: 0,
                first_ns: a.time_ns,
                last_ns: a.time_ns,
                bytes: 0,
            });
        e.count += 1;
        e.first_ns = e.first_ns.min(a.time_ns);
        e.last_ns = e.last_ns.max(a.time_ns);
        e.bytes += a.len;
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

/// One tier's size.
#[derive(Debug, serde::Serialize)]
pub struct TierSize {
    pub tier: &'static str,
    pub what: &'static str,
    pub records: u64,
    /// zstd-compressed size of the tier's encoding.
    pub bytes: u64,
}

/// `jcs summarize --dry-run`: what each tier would keep of the journal, in records and bytes.
pub fn summarize_dry_run(
    store: &Store,
    tiers: &[&str],
    policy: Option<&analysis::summary::FadePolicy>,
    json: bool,
) -> Result<()> {
    let (vars, ats) = load(store)?;
    let dir = store.layout.root().join("journal");
    let storage = journal::DirStorage::new(&dir)?;
    let mut journal_bytes = 0;
    {
        use journal::Storage;
        for seg in journal::segment_numbers(&storage)? {
            journal_bytes += storage.len(&journal::journal::segment_name(seg))?;
        }
    }
    let is_file = |v: VarId| {
        matches!(
            vars.get(&v),
            Some(VarDef::File { .. } | VarDef::Path { .. })
        )
    };
    let volatile: HashSet<VarId> = vars
        .iter()
        .filter(|(_, d)| matches!(d, VarDef::Endpoint { .. } | VarDef::Unix { .. }))
        .map(|(id, _)| *id)
        .collect();
    let flows = analysis::flows(&ats, is_file);
    let z = |b: Vec<u8>| {
        zstd::bulk::compress(&b, 3)
            .map(|c| c.len() as u64)
            .unwrap_or(0)
    };
    let mut rows = vec![
        TierSize {
            tier: "journal",
            what: "every atomic transaction, as recorded (segments on disk)",
            records: ats.len() as u64,
            bytes: journal_bytes,
        },
        TierSize {
            tier: "T0",
            what: "lossless: the transactions that move data, every field, delta-coded",
            records: flows.len() as u64,
            bytes: z(model::at::encode_batch(
                &flows.iter().map(|f| ats[f.at]).collect::<Vec<_>>(),
            )),
        },
        TierSize {
            tier: "flows",
            what: "T0's causal content (source, target, time, bytes) in the summaries' encoding",
            records: flows.len() as u64,
            bytes: z(analysis::summary::encode(
                &flows
                    .iter()
                    .map(|f| analysis::summary::Summary {
                        src: f.src,
                        dst: f.dst,
                        first: f.time,
                        last: f.time,
                        src_part: analysis::Part::of(f.src_range),
                        dst_part: analysis::Part::of(f.dst_range),
                        count: 1,
                        bytes: f.len,
                    })
                    .collect::<Vec<_>>(),
            )),
        },
    ];
    if tiers.contains(&"T1") {
        let g = analysis::Graph::new(flows.clone(), volatile.clone());
        let t1 = analysis::summary::T1::new(&g);
        rows.push(TierSize {
            tier: "T1",
            what:
                "causal: repeated transfers with nothing in between merged; identical reachability",
            records: t1.sts.len() as u64,
            bytes: z(analysis::summary::encode(&t1.sts)),
        });
    }
    if tiers.contains(&"T2") {
        let sts = analysis::summary::t2(&flows);
        rows.push(TierSize {
            tier: "T2",
            what: "structural: one summary per (source, target) pair; may add false dependencies",
            records: sts.len() as u64,
            bytes: z(analysis::summary::encode(&sts)),
        });
    }
    if tiers.contains(&"T3") {
        let g = analysis::Graph::new(flows.clone(), volatile);
        let memories: HashSet<VarId> = vars
            .iter()
            .filter(|(_, d)| matches!(d, VarDef::Memory { .. }))
            .map(|(id, _)| *id)
            .collect();
        let t3 = analysis::summary::t3(&g, |v| memories.contains(&v));
        rows.push(TierSize {
            tier: "T3",
            what: "sources: per variable, the endpoints and VEs its data came from",
            records: t3.values().map(|s| s.len() as u64).sum(),
            bytes: z(analysis::summary::encode_sources(&t3)),
        });
    }
    if let Some(p) = policy {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let volatile: HashSet<VarId> = vars
            .iter()
            .filter(|(_, d)| matches!(d, VarDef::Endpoint { .. } | VarDef::Unix { .. }))
            .map(|(id, _)| *id)
            .collect();
        let faded = analysis::summary::t4(&flows, &volatile, now, p);
        let sts: Vec<analysis::summary::Summary> = faded.iter().map(|f| f.st.clone()).collect();
        rows.push(TierSize {
            tier: "T4",
            what: "fading: old exchanges one record per (VE, endpoint), old file bytes whole; never loses a dependency",
            records: sts.len() as u64,
            bytes: z(analysis::summary::encode(&sts)),
        });
    }
    if json {
        return crate::output::print_json(&rows);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<8} {:>12} {:>12} {:>9}  what",
        "tier", "records", "bytes", "× journal"
    )?;
    for r in &rows {
        writeln!(
            out,
            "{:<8} {:>12} {:>12} {:>9.3}  {}",
            r.tier,
            r.records,
            r.bytes,
            r.bytes as f64 / journal_bytes.max(1) as f64,
            r.what
        )?;
    }
    writeln!(
        out,
        "(dry run: nothing was rewritten; rewriting sealed segments is not implemented yet)"
    )?;
    Ok(())
}
