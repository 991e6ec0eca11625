//! Pictures drawn in-process, as SVG (no Graphviz): a tracking answer as a layered graph, and a
//! VE's timeline.
//!
//! The graph: data flows left to right; the variables the question names (the roots) are at
//! the left of a forward answer and at the right of a backward one. Each variable's column is
//! its distance from the roots; within a column, variables follow the mean position of their
//! neighbours in the column before (one barycentric sweep, the usual way to keep crossings
//! few). Leaves that hang off one variable and share a directory (files) or an address
//! (endpoints) are drawn as one box — "23 files in /data/cache" — with the edges to them summed,
//! so a 100-edge answer stays readable; every box and edge has a tooltip with the details.

use query::track::{EdgeJson, TrackJson};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::Write;

/// A group is made of at least this many leaves of one parent and one directory or address.
const GROUP_MIN: usize = 4;
const ROW: f64 = 46.0;
const BOX_H: f64 = 28.0;
const GAP_X: f64 = 150.0;
const MARGIN: f64 = 20.0;
const CHAR_W: f64 = 7.2;
const MAX_CHARS: usize = 44;

/// What a variable is, by its name; it gives the box its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Ve,
    File,
    Net,
    Unix,
    Host,
    Group,
    Other,
}

impl Kind {
    fn of(label: &str) -> Kind {
        let p = label.split(':').next().unwrap_or("");
        match p {
            "ve" => Kind::Ve,
            "file" | "persist" | "shared" | "volume" => Kind::File,
            "endpoint" | "tcp" | "udp" => Kind::Net,
            "unix" => Kind::Unix,
            "host" => Kind::Host,
            _ => Kind::Other,
        }
    }

    fn class(self) -> &'static str {
        match self {
            Kind::Ve => "ve",
            Kind::File => "file",
            Kind::Net => "net",
            Kind::Unix => "unix",
            Kind::Host => "host",
            Kind::Group => "group",
            Kind::Other => "other",
        }
    }

    fn colours(self) -> (&'static str, &'static str) {
        match self {
            Kind::Ve => ("#e3f4e1", "#2e7d32"),
            Kind::File => ("#e3edf9", "#1f5fa8"),
            Kind::Net => ("#fdebd9", "#c25e00"),
            Kind::Unix => ("#efe5f7", "#6a3d9a"),
            Kind::Host => ("#f4f4f4", "#555555"),
            Kind::Group => ("#f1f1e6", "#7a7a3a"),
            Kind::Other => ("#f4f4f4", "#777777"),
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::File => "files",
            Kind::Net => "endpoints",
            Kind::Ve => "VEs",
            Kind::Unix => "sockets",
            _ => "variables",
        }
    }
}

/// What leaves are grouped by: a file's directory, an endpoint's address, else its kind.
fn group_key(label: &str) -> (Kind, String) {
    let kind = Kind::of(label);
    let key = match kind {
        Kind::File if label.contains('/') && !label.contains('[') => {
            let cut = label.rfind('/').unwrap_or(0);
            let dir = &label[..cut];
            let dir = dir.split_once(':').map_or(dir, |(_, d)| d);
            let dir = if dir.ends_with(':') || dir.is_empty() {
                format!("{dir}/")
            } else {
                dir.to_string()
            };
            format!("in {dir}")
        }
        Kind::Net => {
            // endpoint:tcp/10.0.0.1:80 → tcp/10.0.0.1; tcp:A:P->B:Q → tcp ->B
            let rest = label.split_once(':').map_or("", |(_, r)| r);
            match rest.rsplit_once(':') {
                Some((addr, _port)) if !rest.contains("->") => format!("at {addr}"),
                _ => match label.rsplit_once("->") {
                    Some((_, to)) => format!("to {}", to.rsplit_once(':').map_or(to, |(a, _)| a)),
                    None => String::new(),
                },
            }
        }
        _ => String::new(),
    };
    (kind, key)
}

#[derive(Debug)]
struct Node {
    label: String,
    kind: Kind,
    root: bool,
    /// Members of a group (empty for a variable).
    members: Vec<String>,
}

/// Edges between two boxes, summed.
#[derive(Debug, Default)]
struct Drawn {
    ops: BTreeMap<String, u64>,
    ves: BTreeSet<u64>,
    bytes: u64,
    first_ns: u64,
    last_ns: u64,
}

/// `s` as XML and HTML text or attribute value.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn short(s: &str) -> String {
    if s.chars().count() <= MAX_CHARS {
        s.to_string()
    } else {
        let tail: String = s
            .chars()
            .rev()
            .take(MAX_CHARS - 1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
}

/// Bytes as people read them.
pub fn bytes(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < U.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

/// The tracking answer `a` as an SVG picture.
pub fn graph_svg(a: &TrackJson) -> String {
    let back = a.direction == "back";
    // Boxes: one per variable, then groups in place of grouped leaves.
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut nodes: Vec<Node> = vec![];
    for l in a.roots.iter().map(String::as_str).chain(
        a.edges
            .iter()
            .flat_map(|e| [e.src.as_str(), e.dst.as_str()]),
    ) {
        if !index.contains_key(l) {
            index.insert(l, nodes.len());
            nodes.push(Node {
                label: l.to_string(),
                kind: Kind::of(l),
                root: a.roots.iter().any(|r| r == l),
                members: vec![],
            });
        }
    }
    let ends = |e: &EdgeJson| (index[e.src.as_str()], index[e.dst.as_str()]);
    // The walk from the roots: forward along edges, back against them.
    let mut next: Vec<Vec<usize>> = vec![vec![]; nodes.len()];
    let mut pairs: BTreeSet<(usize, usize)> = BTreeSet::new();
    for e in &a.edges {
        let (s, d) = ends(e);
        let (from, to) = if back { (d, s) } else { (s, d) };
        if pairs.insert((from, to)) {
            next[from].push(to);
        }
    }
    // Neighbours, whatever the direction and however many edges join them.
    let mut degree = vec![0usize; nodes.len()];
    let undirected: BTreeSet<(usize, usize)> = pairs
        .iter()
        .filter(|(a, b)| a != b)
        .map(|&(a, b)| (a.min(b), a.max(b)))
        .collect();
    for (a, b) in undirected {
        degree[a] += 1;
        degree[b] += 1;
    }
    let dist = distances(&nodes, &next);
    // Groups: leaves (one neighbour, one step further than it) by parent and key.
    let mut parent_of: HashMap<usize, usize> = HashMap::new();
    for (p, ns) in next.iter().enumerate() {
        for &c in ns {
            if degree[c] == 1 && !nodes[c].root && dist[c] == dist[p] + 1 {
                parent_of.insert(c, p);
            }
        }
    }
    let mut buckets: BTreeMap<(usize, Kind, String), Vec<usize>> = BTreeMap::new();
    for (&c, &p) in &parent_of {
        let (k, key) = group_key(&nodes[c].label);
        buckets.entry((p, k, key)).or_default().push(c);
    }
    // Each box a node stands in (itself, or its group).
    let mut shown: Vec<usize> = (0..nodes.len()).collect();
    let mut dist = dist;
    for ((p, kind, key), mut members) in buckets {
        if members.len() < GROUP_MIN {
            continue;
        }
        members.sort_by(|x, y| nodes[*x].label.cmp(&nodes[*y].label));
        let g = nodes.len();
        let label = if key.is_empty() {
            format!("{} {}", members.len(), kind.noun())
        } else {
            format!("{} {} {key}", members.len(), kind.noun())
        };
        nodes.push(Node {
            label,
            kind: Kind::Group,
            root: false,
            members: members.iter().map(|m| nodes[*m].label.clone()).collect(),
        });
        dist.push(dist[p] + 1);
        for m in members {
            shown[m] = g;
        }
    }
    shown.resize(nodes.len(), 0);
    for (i, s) in shown.iter_mut().enumerate().skip(index.len()) {
        *s = i;
    }
    // The drawn edges, summed per pair of boxes.
    let mut drawn: BTreeMap<(usize, usize), Drawn> = BTreeMap::new();
    for e in &a.edges {
        let (s, d) = ends(e);
        let k = (shown[s], shown[d]);
        let x = drawn.entry(k).or_default();
        *x.ops.entry(e.op.to_string()).or_default() += e.count;
        x.ves.insert(e.ve);
        x.bytes += e.bytes;
        x.first_ns = if x.first_ns == 0 {
            e.first_ns
        } else {
            x.first_ns.min(e.first_ns)
        };
        x.last_ns = x.last_ns.max(e.last_ns);
    }
    let visible: Vec<usize> = (0..nodes.len()).filter(|&i| shown[i] == i).collect();
    // Columns: data flows left to right.
    let maxd = visible.iter().map(|&i| dist[i]).max().unwrap_or(0);
    let col = |i: usize| if back { maxd - dist[i] } else { dist[i] };
    let ncols = maxd + 1;
    let mut cols: Vec<Vec<usize>> = vec![vec![]; ncols];
    for &i in &visible {
        cols[col(i)].push(i);
    }
    order_columns(&mut cols, &nodes, &drawn);
    // Geometry.
    let width = |i: usize| -> f64 {
        (short(&nodes[i].label).chars().count() as f64 * CHAR_W + 18.0).max(70.0)
    };
    let mut xs = vec![0.0; nodes.len()];
    let mut ys = vec![0.0; nodes.len()];
    let rows = cols.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let top = MARGIN + 30.0;
    let mut x = MARGIN;
    let mut col_w = vec![0.0; ncols];
    for (c, members) in cols.iter().enumerate() {
        col_w[c] = members.iter().map(|&i| width(i)).fold(0.0, f64::max);
        let off = (rows - members.len()) as f64 * ROW / 2.0;
        for (r, &i) in members.iter().enumerate() {
            xs[i] = x;
            ys[i] = top + off + r as f64 * ROW;
        }
        x += col_w[c] + GAP_X;
    }
    let w = (x - GAP_X + MARGIN).max(420.0);
    let h = top + rows as f64 * ROW + 40.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="jcs-graph" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="DejaVu Sans Mono, monospace" font-size="12">"#
    );
    // (Ids unique per picture: a page may hold several.)
    static PICTURES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let arrow = format!(
        "arrow{}",
        PICTURES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let _ = write!(
        svg,
        r##"<defs><marker id="{arrow}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#666"/></marker></defs>"##
    );
    let title = format!(
        "{} {}: {} variables, {} edges{}",
        a.direction,
        a.variable,
        a.reached.len(),
        a.edges.len(),
        if a.complete { "" } else { " — INCOMPLETE" }
    );
    let _ = write!(
        svg,
        r#"<text class="title" x="{MARGIN}" y="{}" font-size="14" font-weight="bold"{}>{}</text>"#,
        MARGIN + 8.0,
        if a.complete {
            ""
        } else {
            r##" fill="#b00020""##
        },
        esc(&title)
    );
    for (&(s, d), e) in &drawn {
        let ops: Vec<String> = e.ops.iter().map(|(o, n)| format!("{o}×{n}")).collect();
        let label = format!("{} · {}", ops.join(" "), bytes(e.bytes));
        let ves: Vec<String> = e.ves.iter().map(u64::to_string).collect();
        let tip = format!(
            "{} → {}: {} by VE {}, {} – {}, {}",
            nodes[s].label,
            nodes[d].label,
            ops.join(", "),
            ves.join(", "),
            query::time::time_us(e.first_ns),
            query::time::time_us(e.last_ns),
            bytes(e.bytes)
        );
        let (x1, y1) = (xs[s] + width(s), ys[s] + BOX_H / 2.0);
        let (x2, y2) = (xs[d], ys[d] + BOX_H / 2.0);
        if col(s) < col(d) {
            let dx = (x2 - x1) / 2.0;
            let _ = write!(
                svg,
                r##"<g class="edge"><title>{}</title><path d="M{x1:.1},{y1:.1} C{:.1},{y1:.1} {:.1},{y2:.1} {x2:.1},{y2:.1}" fill="none" stroke="#888" stroke-width="1.3" marker-end="url(#{arrow})"/><text x="{:.1}" y="{:.1}" font-size="10" fill="#555" text-anchor="end">{}</text></g>"##,
                esc(&tip),
                x1 + dx,
                x2 - dx,
                // By its target, whose row is its own: labels of a fan-out do not overlap.
                x2 - 12.0,
                y2 - 6.0,
                esc(&short(&label))
            );
        } else {
            // Against the flow of the picture (a cycle, or within one column): an arc below.
            let (ax, ay) = (xs[s] + width(s) / 2.0, ys[s] + BOX_H);
            let (bx, by) = (xs[d] + width(d) / 2.0, ys[d] + BOX_H);
            let low = ay.max(by) + ROW * 0.6;
            let _ = write!(
                svg,
                r##"<g class="edge back"><title>{}</title><path d="M{ax:.1},{ay:.1} C{ax:.1},{low:.1} {bx:.1},{low:.1} {bx:.1},{by:.1}" fill="none" stroke="#aaa" stroke-dasharray="4 3" marker-end="url(#{arrow})"/></g>"##,
                esc(&tip)
            );
        }
    }
    for &i in &visible {
        let n = &nodes[i];
        let (fill, stroke) = n.kind.colours();
        let tip = if n.members.is_empty() {
            n.label.clone()
        } else {
            let mut t = n.label.clone();
            for m in n.members.iter().take(50) {
                t.push('\n');
                t.push_str(m);
            }
            if n.members.len() > 50 {
                let _ = write!(t, "\n… and {} more", n.members.len() - 50);
            }
            t
        };
        let _ = write!(
            svg,
            r#"<g class="node {}{}" data-var="{}"><title>{}</title><rect x="{:.1}" y="{:.1}" width="{:.1}" height="{BOX_H}" rx="5" fill="{fill}" stroke="{stroke}" stroke-width="{}"/><text x="{:.1}" y="{:.1}" fill="{stroke}">{}</text></g>"#,
            n.kind.class(),
            if n.root { " root" } else { "" },
            esc(&n.label),
            esc(&tip),
            xs[i],
            ys[i],
            width(i),
            if n.root { 2.5 } else { 1.2 },
            xs[i] + 9.0,
            ys[i] + BOX_H / 2.0 + 4.0,
            esc(&short(&n.label))
        );
    }
    if visible.is_empty() {
        let _ = write!(
            svg,
            r##"<text x="{MARGIN}" y="{}" fill="#555">nothing reached</text>"##,
            top + 14.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Each variable's distance from the roots along `next` (unreached: one past the farthest).
fn distances(nodes: &[Node], next: &[Vec<usize>]) -> Vec<usize> {
    let mut dist = vec![usize::MAX; nodes.len()];
    let mut q = VecDeque::new();
    for (i, n) in nodes.iter().enumerate() {
        if n.root {
            dist[i] = 0;
            q.push_back(i);
        }
    }
    while let Some(i) = q.pop_front() {
        for &j in &next[i] {
            if dist[j] == usize::MAX {
                dist[j] = dist[i] + 1;
                q.push_back(j);
            }
        }
    }
    let far = dist
        .iter()
        .filter(|d| **d != usize::MAX)
        .max()
        .map_or(0, |d| d + 1);
    dist.iter()
        .map(|&d| if d == usize::MAX { far } else { d })
        .collect()
}

/// Orders each column by the mean row of its neighbours in the column before (the first by
/// name), then once back from the right: fewer crossings.
fn order_columns(cols: &mut [Vec<usize>], nodes: &[Node], drawn: &BTreeMap<(usize, usize), Drawn>) {
    let mut nb: HashMap<usize, Vec<usize>> = HashMap::new();
    for &(s, d) in drawn.keys() {
        nb.entry(s).or_default().push(d);
        nb.entry(d).or_default().push(s);
    }
    if let Some(c) = cols.first_mut() {
        c.sort_by(|a, b| nodes[*a].label.cmp(&nodes[*b].label));
    }
    let sweep = |cols: &mut [Vec<usize>], from: usize, to: usize| {
        let pos: HashMap<usize, usize> = cols[from]
            .iter()
            .enumerate()
            .map(|(r, &i)| (i, r))
            .collect();
        let key = |i: usize| -> f64 {
            let ps: Vec<f64> = nb
                .get(&i)
                .into_iter()
                .flatten()
                .filter_map(|j| pos.get(j).map(|&r| r as f64))
                .collect();
            if ps.is_empty() {
                f64::MAX
            } else {
                ps.iter().sum::<f64>() / ps.len() as f64
            }
        };
        cols[to].sort_by(|a, b| {
            key(*a)
                .total_cmp(&key(*b))
                .then_with(|| nodes[*a].label.cmp(&nodes[*b].label))
        });
    };
    for c in 1..cols.len() {
        sweep(cols, c - 1, c);
    }
    for c in (0..cols.len().saturating_sub(1)).rev() {
        sweep(cols, c + 1, c);
    }
}

/// One transaction on a VE's timeline.
#[derive(Debug, Clone)]
pub struct Tick {
    pub time_ns: u64,
    pub pid: u32,
    pub op: String,
    pub what: String,
    pub status: String,
}

/// The colour class of an operation.
fn op_class(op: &str) -> &'static str {
    match op {
        "write" | "truncate" | "mmap" | "rename" | "unlink" | "link" | "mkdir" | "rmdir"
        | "chmod" | "chown" | "setxattr" | "removexattr" | "symlink" => "w",
        "read" | "open" | "readlink" => "r",
        "exec" | "fork" | "exit" | "kill" => "p",
        "connect" | "accept" | "send" | "recv" | "bind" | "listen" => "n",
        _ => "o",
    }
}

const OP_COLOURS: [(&str, &str, &str); 5] = [
    ("w", "#c0392b", "writes and changes"),
    ("r", "#1f5fa8", "reads and opens"),
    ("p", "#2e7d32", "processes"),
    ("n", "#c25e00", "network"),
    ("o", "#888888", "other"),
];

/// A VE's transactions over its life: a lane per process (the first 24; the rest share one),
/// a mark per transaction coloured by what it did (failed ones hollow, aborted ones with a
/// red frame), or, past 3000 transactions, bins whose darkness counts them.
pub fn timeline_svg(ticks: &[Tick], start_ns: u64, end_ns: u64) -> String {
    const LANES: usize = 24;
    const LEFT: f64 = 120.0;
    const PLOT: f64 = 820.0;
    const LANE_H: f64 = 18.0;
    let end_ns = end_ns.max(start_ns + 1);
    let mut pids: Vec<u32> = vec![];
    for t in ticks {
        if !pids.contains(&t.pid) {
            pids.push(t.pid);
        }
    }
    let lane_of = |pid: u32| pids.iter().position(|p| *p == pid).unwrap_or(0).min(LANES);
    let lanes = pids.len().clamp(1, LANES + 1);
    let top = 36.0;
    let h = top + lanes as f64 * LANE_H + 60.0;
    let w = LEFT + PLOT + 20.0;
    let xof =
        |t: u64| LEFT + (t.saturating_sub(start_ns)) as f64 / (end_ns - start_ns) as f64 * PLOT;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="jcs-timeline" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="DejaVu Sans, sans-serif" font-size="11">"#
    );
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{} transactions, {} processes, {}</text>"#,
        ticks.len(),
        pids.len(),
        esc(&duration(end_ns - start_ns))
    );
    for l in 0..lanes {
        let y = top + l as f64 * LANE_H;
        let name = if l == LANES {
            format!("{} more pids", pids.len() - LANES)
        } else {
            pids.get(l).map_or("-".into(), |p| format!("pid {p}"))
        };
        let _ = write!(
            svg,
            r##"<rect x="{LEFT}" y="{y:.1}" width="{PLOT}" height="{:.1}" fill="{}"/><text x="6" y="{:.1}" fill="#444">{}</text>"##,
            LANE_H - 2.0,
            if l % 2 == 0 { "#f6f6f6" } else { "#fbfbfb" },
            y + LANE_H - 6.0,
            esc(&name)
        );
    }
    if ticks.len() <= 3000 {
        // Processes first, data last: a write is never hidden under its process's exit.
        let rank = |t: &Tick| match op_class(&t.op) {
            "o" => 0,
            "p" => 1,
            "r" => 2,
            "n" => 3,
            _ => 4,
        };
        let mut order: Vec<&Tick> = ticks.iter().collect();
        order.sort_by_key(|t| rank(t));
        for t in order {
            let class = op_class(&t.op);
            let colour = OP_COLOURS
                .iter()
                .find(|c| c.0 == class)
                .map_or("#888", |c| c.1);
            let y = top + lane_of(t.pid) as f64 * LANE_H + 2.0;
            let (fill, stroke) = match t.status.as_str() {
                "failed" => ("none", colour),
                "aborted" => (colour, "#ff0000"),
                _ => (colour, "none"),
            };
            let _ = write!(
                svg,
                r#"<rect class="tick {class} {}" x="{:.1}" y="{y:.1}" width="3" height="{:.1}" fill="{fill}" stroke="{stroke}"><title>{} pid {} {} {} ({})</title></rect>"#,
                t.status,
                xof(t.time_ns),
                LANE_H - 6.0,
                query::time::time_us(t.time_ns),
                t.pid,
                esc(&t.op),
                esc(&t.what),
                t.status
            );
        }
    } else {
        const BINS: usize = 400;
        let mut bins: HashMap<(usize, usize), BTreeMap<&str, u64>> = HashMap::new();
        for t in ticks {
            let b = (((t.time_ns.saturating_sub(start_ns)) as f64 / (end_ns - start_ns) as f64
                * BINS as f64) as usize)
                .min(BINS - 1);
            *bins
                .entry((lane_of(t.pid), b))
                .or_default()
                .entry(t.op.as_str())
                .or_default() += 1;
        }
        let max = bins
            .values()
            .map(|m| m.values().sum::<u64>())
            .max()
            .unwrap_or(1);
        let mut keys: Vec<_> = bins.keys().copied().collect();
        keys.sort();
        for k in keys {
            let m = &bins[&k];
            let n: u64 = m.values().sum();
            let top_op = m.iter().max_by_key(|(_, c)| **c).map_or("", |(o, _)| *o);
            let class = op_class(top_op);
            let colour = OP_COLOURS
                .iter()
                .find(|c| c.0 == class)
                .map_or("#888", |c| c.1);
            let detail: Vec<String> = m.iter().map(|(o, c)| format!("{o} {c}")).collect();
            let _ = write!(
                svg,
                r#"<rect class="bin {class}" x="{:.1}" y="{:.1}" width="{:.2}" height="{:.1}" fill="{colour}" fill-opacity="{:.2}"><title>{n} transactions: {}</title></rect>"#,
                LEFT + k.1 as f64 * PLOT / BINS as f64,
                top + k.0 as f64 * LANE_H + 2.0,
                PLOT / BINS as f64,
                LANE_H - 6.0,
                0.25 + 0.75 * (n as f64 / max as f64).sqrt(),
                esc(&detail.join(", "))
            );
        }
    }
    let axis = top + lanes as f64 * LANE_H + 14.0;
    let _ = write!(
        svg,
        r##"<text x="{LEFT}" y="{axis:.1}" fill="#444">{}</text><text x="{:.1}" y="{axis:.1}" fill="#444" text-anchor="end">{}</text>"##,
        query::time::time_us(start_ns),
        LEFT + PLOT,
        query::time::time_us(end_ns)
    );
    let mut lx = LEFT;
    for (_, colour, what) in OP_COLOURS {
        let _ = write!(
            svg,
            r##"<rect x="{lx:.1}" y="{:.1}" width="10" height="10" fill="{colour}"/><text x="{:.1}" y="{:.1}" fill="#444">{what}</text>"##,
            axis + 14.0,
            lx + 14.0,
            axis + 23.0
        );
        lx += 150.0;
    }
    svg.push_str("</svg>");
    svg
}

/// `1.25 s`, `3 min 4 s`, `12 ms`.
fn duration(ns: u64) -> String {
    let s = ns as f64 / 1e9;
    if s < 1.0 {
        format!("{:.1} ms", s * 1e3)
    } else if s < 120.0 {
        format!("{s:.2} s")
    } else {
        format!("{} min {} s", (s / 60.0) as u64, (s % 60.0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(src: &str, dst: &str, op: &'static str, bytes: u64) -> EdgeJson {
        EdgeJson {
            src: src.into(),
            dst: dst.into(),
            ve: 1,
            op,
            count: 1,
            first_ns: 1_000,
            last_ns: 2_000,
            bytes,
        }
    }

    fn answer(direction: &'static str, roots: &[&str], edges: Vec<EdgeJson>) -> TrackJson {
        let mut reached: Vec<String> = edges
            .iter()
            .flat_map(|e| [e.src.clone(), e.dst.clone()])
            .collect();
        reached.sort();
        reached.dedup();
        TrackJson {
            direction,
            variable: roots[0].into(),
            roots: roots.iter().map(|r| r.to_string()).collect(),
            time_ns: None,
            complete: true,
            skipped: vec![],
            gaps: vec![],
            reached,
            edges,
        }
    }

    fn count(svg: &str, what: &str) -> usize {
        svg.matches(what).count()
    }

    #[test]
    fn a_small_answer_shows_every_variable_left_to_right() {
        let a = answer(
            "forward",
            &["endpoint:tcp/10.0.0.9:80"],
            vec![
                edge("endpoint:tcp/10.0.0.9:80", "ve:1", "recv", 10),
                edge("ve:1", "persist:web:/data/a", "write", 5),
            ],
        );
        let svg = graph_svg(&a);
        assert_eq!(count(&svg, r#"<g class="node"#), 3, "{svg}");
        assert_eq!(count(&svg, r#"<g class="edge""#), 2);
        assert!(svg.contains(r#"class="node net root""#));
        // The root is at the left, the file at the right.
        let x = |v: &str| -> f64 {
            let i = svg.find(&format!(r#"data-var="{v}""#)).unwrap();
            let r = &svg[i..];
            let x = r.split(r#"<rect x=""#).nth(1).unwrap();
            x[..x.find('"').unwrap()].parse().unwrap()
        };
        assert!(x("endpoint:tcp/10.0.0.9:80") < x("ve:1"));
        assert!(x("ve:1") < x("persist:web:/data/a"));
        // Back: the root is at the right.
        let mut b = a;
        b.direction = "back";
        b.roots = vec!["persist:web:/data/a".into()];
        let svg = graph_svg(&b);
        let x = |v: &str| -> f64 {
            let i = svg.find(&format!(r#"data-var="{v}""#)).unwrap();
            let x = svg[i..].split(r#"<rect x=""#).nth(1).unwrap();
            x[..x.find('"').unwrap()].parse().unwrap()
        };
        assert!(x("ve:1") < x("persist:web:/data/a"));
    }

    /// A 100-edge fan-out reads at a glance: the leaves of one directory are one box.
    #[test]
    fn a_large_fan_out_is_grouped() {
        let mut edges = vec![edge("endpoint:tcp/10.0.0.9:80", "ve:1", "recv", 1)];
        for i in 0..100 {
            // (Two edges to each: a truncate and a write.)
            edges.push(edge(
                "ve:1",
                &format!("file:/data/cache/f{i}"),
                "truncate",
                0,
            ));
            edges.push(edge("ve:1", &format!("file:/data/cache/f{i}"), "write", 10));
        }
        for i in 0..3 {
            edges.push(edge("ve:1", &format!("file:/etc/x{i}"), "write", 1));
        }
        let svg = graph_svg(&answer("forward", &["endpoint:tcp/10.0.0.9:80"], edges));
        assert!(svg.contains(">100 files in /data/cache<"), "{svg}");
        // Three files of /etc are too few to group: shown each.
        assert_eq!(count(&svg, r#"<g class="node"#), 2 + 1 + 3, "{svg}");
        assert!(
            svg.contains("write×100 · 1000 B"),
            "the group's edge sums them"
        );
        // The tooltip names the members.
        assert!(svg.contains("file:/data/cache/f42"));
    }

    #[test]
    fn cycles_and_incomplete_answers_are_drawn() {
        let mut a = answer(
            "forward",
            &["ve:1"],
            vec![
                edge("ve:1", "file:/data/a", "write", 1),
                edge("file:/data/a", "ve:1", "read", 1),
            ],
        );
        a.complete = false;
        let svg = graph_svg(&a);
        assert!(svg.contains(r#"class="edge back""#), "{svg}");
        assert!(svg.contains("INCOMPLETE"));
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn labels_are_escaped() {
        let a = answer(
            "forward",
            &["ve:1"],
            vec![edge("ve:1", "file:/a<b>&\"c", "write", 1)],
        );
        let svg = graph_svg(&a);
        assert!(svg.contains("file:/a&lt;b&gt;&amp;&quot;c"));
        assert!(!svg.contains("/a<b>"));
    }

    #[test]
    fn a_timeline_marks_each_transaction_or_bins_them() {
        let t = |i: u64, op: &str, status: &str| Tick {
            time_ns: 1_000_000_000 + i * 1_000_000,
            pid: 100 + (i % 3) as u32,
            op: op.into(),
            what: "ve:1 -> file:/data/a".into(),
            status: status.into(),
        };
        let ticks = vec![
            t(0, "exec", "committed"),
            t(1, "write", "committed"),
            t(2, "open", "failed"),
        ];
        let svg = timeline_svg(&ticks, 1_000_000_000, 1_010_000_000);
        assert_eq!(count(&svg, r#"class="tick "#), 3, "{svg}");
        assert!(svg.contains(r#"class="tick r failed""#));
        assert!(svg.contains(">pid 102<"));
        let many: Vec<Tick> = (0..10_000)
            .map(|i| t(i % 1000, "write", "committed"))
            .collect();
        let svg = timeline_svg(&many, 1_000_000_000, 2_000_000_000);
        assert_eq!(count(&svg, r#"class="tick "#), 0);
        assert!(count(&svg, r#"class="bin w""#) > 100, "binned");
    }
}
