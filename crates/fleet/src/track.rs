//! `jcs track back|forward VAR --fleet clickhouse://…`: tracking across hosts, with ClickHouse
//! doing the scans and the local tracker's engine (`query::track::answer_from`) the answer.
//!
//! Each host's variables get fleet-wide ids; a flow (`tcp|udp:FROM->TO`) that two hosts
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

/// The fleet's variables with fleet-wide ids.
#[derive(Debug, Default)]
struct Fleet {
    /// (host, the host's id) → fleet id.
    ids: HashMap<(String, i64), VarId>,
    /// Fleet id → the (host, id) pairs it stands for (several for a flow both ends recorded).
    members: HashMap<VarId, Vec<(String, i64)>>,
    defs: HashMap<VarId, VarDef>,
    /// The host a fleet id belongs to (none for a flow shared by hosts).
    host_of: HashMap<VarId, String>,
}

impl Fleet {
    fn load(ch: &ClickHouse) -> Result<Fleet> {
        let text = ch.query(
            b"SELECT host, id, def FROM jcs_vars FINAL ORDER BY host, id FORMAT TabSeparated",
        )?;
        let mut f = Fleet::default();
        let mut by_key: HashMap<String, VarId> = HashMap::new();
        for r in rows(&text) {
            let [host, id, def] = &r[..] else { continue };
            let id = num(id)?;
            let def: VarDef = serde_json::from_str(def).map_err(|e| {
                FleetError::Usage(format!("host {host}: variable {id}'s definition: {e}"))
            })?;
            // One connection's flow is one variable whichever host recorded it.
            let shared = matches!(def, VarDef::Flow { .. });
            let key = VarKey::of(&def).as_str().to_string();
            let gid = match by_key.get(&key) {
                Some(&g) if shared => {
                    f.host_of.remove(&g);
                    g
                }
                _ => {
                    let g = VarId::try_from(f.defs.len() + 1).map_err(|_| {
                        FleetError::Usage("more variables than a fleet answer can hold".into())
                    })?;
                    f.defs.insert(g, def);
                    f.host_of.insert(g, host.clone());
                    if shared {
                        by_key.insert(key, g);
                    }
                    g
                }
            };
            f.ids.insert((host.clone(), id), gid);
            f.members.entry(gid).or_default().push((host.clone(), id));
        }
        Ok(f)
    }

    fn gid(&self, host: &str, id: i64) -> Option<VarId> {
        if id == 0 {
            return Some(0);
        }
        self.ids.get(&(host.to_string(), id)).copied()
    }
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
    let fleet = Fleet::load(ch)?;
    if let Some(h) = host {
        if !fleet.ids.keys().any(|(x, _)| x == h) {
            return Err(FleetError::Usage(format!(
                "host {h:?} has no variables in ClickHouse database {} (jcs collect --to clickhouse://…)",
                ch.database()
            )));
        }
    }
    // The names, with fleet ids.
    let host_filter = host
        .map(|h| format!(" WHERE host = {}", quote(h)))
        .unwrap_or_default();
    let text = ch.query(
        format!(
            "SELECT host, time_ns, ve, var, path, store, bound FROM jcs_names FINAL{host_filter} \
             ORDER BY time_ns, seq, k FORMAT TabSeparated"
        )
        .as_bytes(),
    )?;
    let mut names = Vec::new();
    for r in rows(&text) {
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
    // The question's variables: among one host's (and the flows), or every host's.
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
        vars: fleet.defs.clone(),
        names,
        ..Loaded::default()
    };
    fetch(ch, &fleet, direction, &starts, time_ns, &mut loaded)?;
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
    fleet: &Fleet,
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
        let mut per_host: HashMap<&str, Vec<i64>> = HashMap::new();
        for g in &frontier {
            for (h, id) in fleet.members.get(g).into_iter().flatten() {
                per_host.entry(h.as_str()).or_default().push(*id);
            }
        }
        let mut next = Vec::new();
        for (h, ids) in per_host {
            let list = ids
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",");
            let text = ch.query(
                format!(
                    "SELECT seq, k, time_ns, ve, op, status, src, dst, off, len FROM jcs_tx_var \
                     WHERE host = {} AND role = '{role}' AND var IN ({list}){tx_time} FORMAT TabSeparated",
                    quote(h)
                )
                .as_bytes(),
            )?;
            for r in rows(&text) {
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
            for r in rows(&text) {
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
        b"SELECT host, seq, k, time_ns, ve, off, len, result FROM jcs_tx WHERE op = 'gap' FORMAT TabSeparated",
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
