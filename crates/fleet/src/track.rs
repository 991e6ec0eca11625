//! `jcs track back|forward VAR --fleet clickhouse://…`: tracking across hosts, with ClickHouse
//! doing the scans and the local tracker's engine (`query::track::answer_from`) the answer.
//!
//! Variables are read from `jcs_vars` as the question reaches them (the question's own through
//! a filter on their key or name), never the whole dictionary. Each gets a fleet-wide id; a
//! flow (`tcp|udp:FROM->TO`) that two hosts
//! recorded under the same key — the two ends of one connection between VEs of two hosts
//! whose addresses are routed, not translated — is one variable, so an answer passes from the
//! sender's VE on one host to the receiver's on another. Starting from the question's
//! variables, the transactions into them (back) or out of them (forward) are fetched from
//! `jcs_tx_var`, in any time, and their other variables are followed the same way until
//! nothing new is reached: a superset of what the time-respecting answer uses, as the local
//! indexed tracker reads, so the answer is the one the engine gives over everything. Hosts'
//! clocks are taken as one clock (NTP-synchronized hosts: skews below the gaps between a send
//! and its receive).

use crate::clickhouse::{parse_part, ClickHouse};
use crate::{FleetError, Result};
use model::at::{At, Name, Op, Status, VarDef, VarId};
use query::track::{answer_from, Answer, Direction, Loaded, Source};
use record::{Tier, VarKey, VarQuery};
use std::collections::{HashMap, HashSet};

/// Rows of a TabSeparated answer, unescaped.
fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').map(unescape).collect())
        .collect()
}

fn unescape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            o.push(c);
            continue;
        }
        match it.next() {
            Some('t') => o.push('\t'),
            Some('n') => o.push('\n'),
            Some('r') => o.push('\r'),
            Some('0') => o.push('\0'),
            Some(c) => o.push(c),
            None => o.push('\\'),
        }
    }
    o
}

fn num(s: &str) -> Result<i64> {
    s.parse()
        .map_err(|_| FleetError::Usage(format!("ClickHouse answered {s:?} where a number belongs")))
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The variables reached so far, with fleet-wide ids.
#[derive(Debug, Default)]
struct Fleet {
    /// (host, the host's id) → fleet id.
    ids: HashMap<(String, i64), VarId>,
    /// Fleet id → the (host, id) pairs it stands for (several for a flow both ends recorded).
    members: HashMap<VarId, Vec<(String, i64)>>,
    defs: HashMap<VarId, VarDef>,
    /// The host a fleet id belongs to (none for a flow shared by hosts).
    host_of: HashMap<VarId, String>,
    /// A flow's key → its fleet id.
    flows: HashMap<String, VarId>,
}

/// The (host, id) of the variables in columns `cols` of `rows`.
fn named(host: &str, rows: &[Vec<String>], cols: [usize; 2]) -> Vec<(String, i64)> {
    rows.iter()
        .flat_map(|r| cols.map(|c| r.get(c)))
        .flatten()
        .filter_map(|v| v.parse().ok())
        .map(|v| (host.to_string(), v))
        .collect()
}

/// A SQL list of ids.
fn id_list(ids: &[i64]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

impl Fleet {
    /// Takes in rows (host, id, definition) of `jcs_vars`; returns the fleet ids of flows new
    /// to it (whose other ends, on other hosts, are still to be looked up).
    fn take(&mut self, text: &str) -> Result<Vec<VarId>> {
        let mut new_flows = Vec::new();
        for r in rows(text) {
            let [host, id, def] = &r[..] else { continue };
            let id = num(id)?;
            if self.ids.contains_key(&(host.clone(), id)) {
                continue; // (a row not merged yet, or asked for twice)
            }
            let def: VarDef = serde_json::from_str(def).map_err(|e| {
                FleetError::Usage(format!("host {host}: variable {id}'s definition: {e}"))
            })?;
            // One connection's flow is one variable whichever host recorded it.
            let key =
                matches!(def, VarDef::Flow { .. }).then(|| VarKey::of(&def).as_str().to_string());
            let gid = match key.as_ref().and_then(|k| self.flows.get(k)) {
                Some(&g) => {
                    if self.host_of.get(&g) != Some(host) {
                        self.host_of.remove(&g);
                    }
                    g
                }
                None => {
                    let g = VarId::try_from(self.defs.len() + 1).map_err(|_| {
                        FleetError::Usage("more variables than a fleet answer can hold".into())
                    })?;
                    self.defs.insert(g, def);
                    self.host_of.insert(g, host.clone());
                    if let Some(k) = key {
                        self.flows.insert(k, g);
                        new_flows.push(g);
                    }
                    g
                }
            };
            self.ids.insert((host.clone(), id), gid);
            self.members
                .entry(gid)
                .or_default()
                .push((host.clone(), id));
        }
        Ok(new_flows)
    }

    /// Reads the definitions of `wanted` (host, id) not known yet, and the other hosts' ends
    /// of the flows among them.
    fn read(&mut self, ch: &ClickHouse, wanted: &[(String, i64)]) -> Result<()> {
        let mut per_host: HashMap<&str, Vec<i64>> = HashMap::new();
        for (h, id) in wanted {
            if *id != 0 && !self.ids.contains_key(&(h.clone(), *id)) {
                per_host.entry(h.as_str()).or_default().push(*id);
            }
        }
        let mut flows = Vec::new();
        for (h, mut ids) in per_host {
            ids.sort_unstable();
            ids.dedup();
            for chunk in ids.chunks(10_000) {
                let text = ch.query(
                    format!(
                        "SELECT host, id, def FROM jcs_vars WHERE host = {} AND id IN ({}) FORMAT TabSeparated",
                        quote(h),
                        id_list(chunk)
                    )
                    .as_bytes(),
                )?;
                flows.extend(self.take(&text)?);
            }
        }
        self.other_ends(ch, &flows)
    }

    /// The same flows as recorded by other hosts (the same key).
    fn other_ends(&mut self, ch: &ClickHouse, flows: &[VarId]) -> Result<()> {
        let keys: Vec<String> = flows
            .iter()
            .filter_map(|g| self.defs.get(g))
            .map(|d| quote(VarKey::of(d).as_str()))
            .collect();
        for chunk in keys.chunks(5_000) {
            let text = ch.query(
                format!(
                    "SELECT host, id, def FROM jcs_vars WHERE kind = 'flow' AND key IN ({}) FORMAT TabSeparated",
                    chunk.join(",")
                )
                .as_bytes(),
            )?;
            self.take(&text)?;
        }
        Ok(())
    }

    fn gid(&self, host: &str, id: i64) -> Option<VarId> {
        if id == 0 {
            return Some(0);
        }
        self.ids.get(&(host.to_string(), id)).copied()
    }
}

/// A filter on `jcs_vars` that every variable `q` names by its definition passes (a superset:
/// the definition decides), and one on `jcs_names` for the names it asks about.
fn filters(q: &VarQuery) -> (Option<String>, Option<String>) {
    let like_prefix = |p: &str| format!("startsWith(path, {})", quote(p));
    let vars = match q {
        VarQuery::File(p) => Some(match p.strip_suffix('*') {
            Some(prefix) => format!("startsWith(key, {})", quote(&format!("f:{prefix}"))),
            None => format!("key = {}", quote(&format!("f:{p}"))),
        }),
        VarQuery::Store(_) => None,
        VarQuery::Inode { dev, ino, gen } => Some(match gen {
            Some(g) => format!(
                "key IN ({}, {})",
                quote(&format!("n:{dev}:{ino}:{g}")),
                quote(&format!("i:{dev}:{ino}"))
            ),
            None => format!(
                "(startsWith(key, {}) OR key = {})",
                quote(&format!("n:{dev}:{ino}:")),
                quote(&format!("i:{dev}:{ino}"))
            ),
        }),
        VarQuery::Endpoint { addr, port } => Some(format!(
            "kind IN ('flow', 'endpoint') AND position(key, {}) > 0",
            quote(&format!("{addr}:{port}"))
        )),
        VarQuery::Unix(p) => Some(format!("key = {}", quote(&format!("u:{p}")))),
        VarQuery::Memory(ve) => Some(format!("key = 'm:{ve}'")),
    };
    let names = match q {
        VarQuery::File(p) => Some(match p.strip_suffix('*') {
            Some(prefix) => like_prefix(prefix),
            None => format!("path = {}", quote(p)),
        }),
        VarQuery::Store(st) => Some(match st.strip_suffix('*') {
            Some(prefix) => format!("startsWith(store, {})", quote(prefix)),
            None => format!("store = {}", quote(st)),
        }),
        q => q.socket_file().map(|p| format!("path = {}", quote(p))),
    };
    (vars, names)
}

/// Answers `query` over the fleet in `ch`: a name is resolved among `host`'s variables (all
/// hosts' when None) in its VEs `ves`, at `time_ns`.
pub fn track(
    ch: &ClickHouse,
    direction: Direction,
    query: &VarQuery,
    host: Option<&str>,
    ves: Option<HashSet<u64>>,
    time_ns: Option<u64>,
    source: Source,
) -> Result<Answer> {
    let mut fleet = Fleet::default();
    let host_sql = host
        .map(|h| format!(" AND host = {}", quote(h)))
        .unwrap_or_default();
    if let Some(h) = host {
        let n = ch.query(
            format!(
                "SELECT count() FROM jcs_vars WHERE host = {} FORMAT TabSeparated",
                quote(h)
            )
            .as_bytes(),
        )?;
        if n.trim() == "0" {
            return Err(FleetError::Usage(format!(
                "host {h:?} has no variables in ClickHouse database {} (jcs collect --to clickhouse://…)",
                ch.database()
            )));
        }
    }
    // The question's candidates: by definition, and by the names it asks about.
    let (var_filter, name_filter) = filters(query);
    if let Some(f) = var_filter {
        let text = ch.query(
            format!("SELECT host, id, def FROM jcs_vars WHERE {f}{host_sql} FORMAT TabSeparated")
                .as_bytes(),
        )?;
        let flows = fleet.take(&text)?;
        fleet.other_ends(ch, &flows)?;
    }
    let mut names = Vec::new();
    if let Some(f) = name_filter {
        let text = ch.query(
            format!(
                "SELECT host, time_ns, ve, var, path, store, bound FROM jcs_names FINAL WHERE {f}{host_sql} \
                 ORDER BY time_ns, seq, k FORMAT TabSeparated"
            )
            .as_bytes(),
        )?;
        let rows = rows(&text);
        let wanted: Vec<(String, i64)> = rows
            .iter()
            .filter_map(|r| Some((r.first()?.clone(), r.get(3)?.parse().ok()?)))
            .collect();
        fleet.read(ch, &wanted)?;
        for r in rows {
            let [h, t, ve, var, path, store, bound] = &r[..] else {
                continue;
            };
            let Some(var) = fleet.gid(h, num(var)?) else {
                continue;
            };
            names.push(Name {
                time_ns: num(t)? as u64,
                ve: num(ve)? as u64,
                var,
                path: path.clone(),
                store: (!store.is_empty()).then(|| store.clone()),
                bound: bound == "1",
            });
        }
    }
    let candidates: HashMap<VarId, VarDef> = fleet
        .defs
        .iter()
        .filter(|(g, _)| match (host, fleet.host_of.get(g)) {
            (None, _) | (_, None) => true,
            (Some(h), Some(x)) => h == x,
        })
        .map(|(g, d)| (*g, d.clone()))
        .collect();
    let scope = query::resolve::Scope {
        ves,
        at_ns: time_ns,
    };
    let starts = query::resolve::resolve(query, &candidates, &names, &scope)
        .map_err(|e| FleetError::Usage(e.to_string()))?;
    if starts.is_empty() {
        return Err(FleetError::Usage(format!(
            "no variable of the fleet{} is {query}",
            host.map(|h| format!(" on host {h}")).unwrap_or_default()
        )));
    }
    let mut loaded = Loaded {
        names,
        ..Loaded::default()
    };
    fetch(ch, &mut fleet, direction, &starts, time_ns, &mut loaded)?;
    loaded.vars = fleet.defs.clone();
    let mut a = answer_from(loaded, direction, query, starts, time_ns, source)
        .map_err(|e| FleetError::Usage(e.to_string()))?;
    a.qualify(|v| fleet.host_of.get(&v).cloned());
    Ok(a)
}

/// Follows the question from `starts` through `jcs_tx_var` and `jcs_summaries` (module docs),
/// and takes every host's gaps. Only what lies on the question's side of its time is fetched
/// (back: up to it; forward: from it): no answer uses a flow on the other side.
fn fetch(
    ch: &ClickHouse,
    fleet: &mut Fleet,
    direction: Direction,
    starts: &[VarId],
    time_ns: Option<u64>,
    l: &mut Loaded,
) -> Result<()> {
    let (role, other) = match direction {
        Direction::Back => ("dst", "src"),
        Direction::Forward => ("src", "dst"),
    };
    // (A time past what Int64 holds bounds nothing: a cast would wrap to a negative bound.)
    let time_ns = time_ns.filter(|&t| i64::try_from(t).is_ok());
    let (tx_time, sum_time) = match (direction, time_ns) {
        (_, None) => (String::new(), String::new()),
        (Direction::Back, Some(t)) => (
            format!(" AND time_ns <= {}", t as i64),
            format!(" AND first_ns <= {}", t as i64),
        ),
        (Direction::Forward, Some(t)) => (
            format!(" AND time_ns >= {}", t as i64),
            format!(" AND last_ns >= {}", t as i64),
        ),
    };
    let mut reached: HashSet<VarId> = starts.iter().copied().collect();
    let mut frontier: Vec<VarId> = starts.to_vec();
    let mut seen_tx: HashSet<(String, i64, i64)> = HashSet::new();
    let mut seen_sum: HashSet<(String, i64, i64)> = HashSet::new();
    while !frontier.is_empty() {
        // Per host, the host's ids of the frontier.
        let mut per_host: HashMap<String, Vec<i64>> = HashMap::new();
        for g in &frontier {
            for (h, id) in fleet.members.get(g).into_iter().flatten() {
                per_host.entry(h.clone()).or_default().push(*id);
            }
        }
        let mut next = Vec::new();
        for (h, ids) in per_host {
            let h = h.as_str();
            let list = id_list(&ids);
            let text = ch.query(
                format!(
                    "SELECT seq, k, time_ns, ve, op, status, src, dst, off, len FROM jcs_tx_var \
                     WHERE host = {} AND role = '{role}' AND var IN ({list}){tx_time} FORMAT TabSeparated",
                    quote(h)
                )
                .as_bytes(),
            )?;
            let tx_rows = rows(&text);
            // The definitions of the variables they name (and the flows' other ends).
            fleet.read(ch, &named(h, &tx_rows, [6, 7]))?;
            for r in tx_rows {
                let [seq, k, t, ve, op, st, src, dst, off, len] = &r[..] else {
                    continue;
                };
                if !seen_tx.insert((h.to_string(), num(seq)?, num(k)?)) {
                    continue;
                }
                let (Some(src), Some(dst)) = (fleet.gid(h, num(src)?), fleet.gid(h, num(dst)?))
                else {
                    continue;
                };
                let at = At {
                    time_ns: num(t)? as u64,
                    ve: num(ve)? as u64,
                    op: Op::from_name(op).unwrap_or(Op::Open),
                    status: match st.as_str() {
                        "committed" => Status::Committed,
                        "aborted" => Status::Aborted,
                        _ => Status::Failed,
                    },
                    src,
                    dst,
                    off: num(off)? as u64,
                    len: num(len)? as u64,
                    ..At::ZERO
                };
                let o = if other == "src" { src } else { dst };
                if o != 0 && reached.insert(o) {
                    next.push(o);
                }
                l.ats.push(at);
            }
            // Summaries (integrity records among them) that touch the frontier either way.
            let text = ch.query(
                format!(
                    "SELECT seq, k, tier, src, dst, first_ns, last_ns, count, bytes, src_part, dst_part \
                     FROM jcs_summaries WHERE host = {} AND (src IN ({list}) OR dst IN ({list})){sum_time} \
                     FORMAT TabSeparated",
                    quote(h)
                )
                .as_bytes(),
            )?;
            let sum_rows = rows(&text);
            fleet.read(ch, &named(h, &sum_rows, [3, 4]))?;
            for r in sum_rows {
                let [seq, k, tier, src, dst, first, last, count, bytes, sp, dp] = &r[..] else {
                    continue;
                };
                if !seen_sum.insert((h.to_string(), num(seq)?, num(k)?)) {
                    continue;
                }
                let (Some(src), Some(dst)) = (fleet.gid(h, num(src)?), fleet.gid(h, num(dst)?))
                else {
                    continue;
                };
                let Some(tier) = Tier::from_name(tier) else {
                    continue;
                };
                for o in [src, dst] {
                    if o != 0 && reached.insert(o) {
                        next.push(o);
                    }
                }
                l.sums.push((
                    tier,
                    analysis::summary::Summary {
                        src,
                        dst,
                        first: num(first)? as u64,
                        last: num(last)? as u64,
                        src_part: parse_part(sp),
                        dst_part: parse_part(dp),
                        count: num(count)? as u64,
                        bytes: num(bytes)? as u64,
                    },
                ));
            }
        }
        frontier = next;
    }
    // Gaps, every host's: any may have hidden a flow of the answer.
    let text = ch.query(
        b"SELECT host, seq, k, time_ns, ve, off, len, result FROM jcs_gaps FORMAT TabSeparated",
    )?;
    let mut gaps = HashSet::new();
    for r in rows(&text) {
        let [h, seq, k, t, ve, off, len, result] = &r[..] else {
            continue;
        };
        if gaps.insert((h.clone(), num(seq)?, num(k)?)) {
            l.ats.push(At {
                time_ns: num(t)? as u64,
                ve: num(ve)? as u64,
                op: Op::Gap,
                off: num(off)? as u64,
                len: num(len)? as u64,
                result: num(result)?,
                ..At::ZERO
            });
        }
    }
    l.ats.sort_by_key(|a| a.time_ns);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tab_separated_values_unescape() {
        assert_eq!(
            rows("a\\tb\tc\\\\d\n\n1\t2\n"),
            vec![
                vec!["a\tb".to_string(), "c\\d".into()],
                vec!["1".into(), "2".into()]
            ]
        );
        assert_eq!(quote("it's"), "'it\\'s'");
    }
}
