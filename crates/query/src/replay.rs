//! `jcs policy replay`: a policy run over the journal's past transactions, to test a rule on
//! history before it is enforced. Which committed transactions would it have aborted?
//!
//! Network transactions (connect, send, bind) are decided from their flow or endpoint; file
//! transactions from the path the file had in that VE at that time (its `N` records; a file
//! known by path alone — made by mkdir, symlink or mknod, or never seen named — by that path):
//! a change (a write, a creation, a removal, a rename) of a file of persistent or shared
//! storage outside the writable trees, a read of a hidden path, an exec outside the allow-list.
//! Transactions that were already aborted or failed are left out; so are summaries (their
//! transactions are gone).

use crate::{read_all, Result};
use model::at::{Op, Status, VarDef, VarId};
use model::policy::{NetOp, Policy};
use model::InnerPath;
use record::Record;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// One transaction the policy would have aborted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Hit {
    pub time_ns: u64,
    pub ve: u64,
    pub pid: u32,
    pub op: &'static str,
    /// The variable it touched, as `jcs log` names it.
    pub var: String,
    /// The path in the VE (files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub rule: u32,
    pub rule_name: String,
}

/// The answer: the transactions, and how many were examined.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Replay {
    pub examined: u64,
    pub hits: Vec<Hit>,
    /// The VEs with at least one hit.
    pub ves: Vec<u64>,
    pub skipped: Vec<journal::Skipped>,
}

/// Runs `policy` over the journal in `dir`: transactions at or after `since_ns`, of the VEs in
/// `ves` (None: all).
pub fn replay(
    dir: &Path,
    policy: &Policy,
    since_ns: Option<u64>,
    ves: Option<&HashSet<u64>>,
) -> Result<Replay> {
    let (records, skipped) = read_all(dir)?;
    let names: HashMap<u32, String> = policy.rules().into_iter().map(|r| (r.id, r.name)).collect();
    let mut defs: HashMap<VarId, VarDef> = HashMap::new();
    // (VE, file) → its names in that VE in the order given (a batch's names may come before
    // its transactions: a file's name is the one it had at the transaction's time).
    let mut paths: HashMap<(u64, VarId), Vec<model::at::Name>> = HashMap::new();
    // VE → where its storage is mounted (its `W` record).
    let mut storage: HashMap<u64, Vec<InnerPath>> = HashMap::new();
    let mut out = Replay {
        examined: 0,
        hits: vec![],
        ves: vec![],
        skipped,
    };
    for rec in records {
        match rec {
            Record::Vars(d) => defs.extend(d),
            Record::Ve(v) => {
                let points = v
                    .storage
                    .iter()
                    .filter_map(|p| InnerPath::parse(p).ok())
                    .collect();
                storage.insert(v.ve, points);
            }
            Record::Names(ns) => {
                for n in ns {
                    paths.entry((n.ve, n.var)).or_default().push(n);
                }
            }
            Record::Ats(ats) => {
                for a in ats {
                    if a.status != Status::Committed
                        || since_ns.is_some_and(|t| a.time_ns < t)
                        || ves.is_some_and(|v| !v.contains(&a.ve))
                    {
                        continue;
                    }
                    out.examined += 1;
                    let hit = |var: VarId, rule: u32, path: Option<String>| Hit {
                        time_ns: a.time_ns,
                        ve: a.ve,
                        pid: a.pid,
                        op: a.op.name(),
                        var: defs
                            .get(&var)
                            .map(|d| d.to_string())
                            .unwrap_or_else(|| format!("var:{var}")),
                        path,
                        rule,
                        rule_name: names.get(&rule).cloned().unwrap_or_default(),
                    };
                    let net = match a.op {
                        Op::Connect => Some((NetOp::Connect, a.dst)),
                        Op::Send => Some((NetOp::Send, a.dst)),
                        Op::Bind => Some((NetOp::Bind, a.dst)),
                        _ => None,
                    };
                    if let Some((op, var)) = net {
                        let remote = match defs.get(&var) {
                            Some(VarDef::Flow { udp, to, from }) => {
                                let end = if op == NetOp::Bind { from } else { to };
                                Some((*udp, end.ip(), end.port()))
                            }
                            // A version-1 endpoint or a datagram's: TCP unless it says otherwise.
                            Some(VarDef::Endpoint { addr, port }) => Some((false, *addr, *port)),
                            _ => None,
                        };
                        if let Some((udp, addr, port)) = remote {
                            if let Some((rule, true)) = policy.decide_net(op, udp, addr, port) {
                                out.hits.push(hit(var, rule, None));
                            }
                        }
                        // (A Unix socket bound to a path made a file: a creation, below.)
                        let made_a_file = op == NetOp::Bind
                            && matches!(defs.get(&var), Some(VarDef::Inode { .. }));
                        if !made_a_file {
                            continue;
                        }
                    }
                    let (var, writes) = match a.op {
                        Op::Bind => (a.dst, true),
                        Op::Write
                        | Op::Truncate
                        | Op::SetXattr
                        | Op::Utime
                        | Op::Chmod
                        | Op::Chown
                        | Op::Unlink
                        | Op::Rename
                        | Op::Link
                        | Op::Mkdir
                        | Op::Rmdir
                        | Op::Symlink
                        | Op::Mknod => (a.dst, true),
                        Op::Read | Op::Open | Op::GetXattr | Op::Mmap | Op::Exec => (a.src, false),
                        _ => continue,
                    };
                    // Its name in the VE then; a file known by path, that path. A rename
                    // changes the name it leaves too (a read-only source refuses it): the name
                    // before the call is judged first, then the one it gives.
                    let names = paths.get(&(a.ve, var));
                    let before = match a.op {
                        Op::Rename => names
                            .and_then(|ns| name_at(ns, a.time_ns.saturating_sub(1)))
                            .filter(|(p, in_storage)| {
                                *in_storage
                                    && InnerPath::parse(p)
                                        .is_ok_and(|i| policy.storage_write_denied(&i).is_some())
                            }),
                        _ => None,
                    };
                    let named = before
                        .or_else(|| names.and_then(|ns| name_at(ns, a.time_ns)))
                        .or_else(|| {
                            let Some(VarDef::Path { path }) = defs.get(&var) else {
                                return None;
                            };
                            let inner = InnerPath::parse(path).ok()?;
                            let within = storage
                                .get(&a.ve)
                                .is_some_and(|s| s.iter().any(|p| inner.is_within(p)));
                            Some((path.clone(), within))
                        });
                    let Some((path, in_storage)) = named else {
                        continue;
                    };
                    let Ok(inner) = InnerPath::parse(&path) else {
                        continue;
                    };
                    let rule = if a.op == Op::Exec {
                        policy.exec_denied(&inner)
                    } else if writes {
                        // In storage: the store-level name says so; the writable trees decide.
                        in_storage
                            .then(|| policy.storage_write_denied(&inner))
                            .flatten()
                    } else {
                        policy.read_denied(&inner)
                    };
                    if let Some(rule) = rule {
                        out.hits.push(hit(var, rule, Some(path)));
                    }
                }
            }
            Record::Stats(_)
            | Record::Summaries { .. }
            | Record::Repairs(_)
            | Record::Policy(_)
            | Record::Restores(_)
            | Record::Execs(_) => {}
        }
    }
    let mut ves: Vec<u64> = out.hits.iter().map(|h| h.ve).collect();
    ves.sort();
    ves.dedup();
    out.ves = ves;
    Ok(out)
}

/// The name a file had at `t` (and whether it is in storage), from its names in order: those
/// given before `t`, and one given at `t` (the call that named it: an open, a rename); a name
/// taken away at `t` (an unlink, a rename) was still its name for the call that took it.
fn name_at(names: &[model::at::Name], t: u64) -> Option<(String, bool)> {
    let mut now: Option<&model::at::Name> = None;
    for n in names {
        if n.time_ns > t || (n.time_ns == t && !n.bound) {
            continue;
        }
        if n.bound {
            now = Some(n);
        } else if now.is_some_and(|c| c.path == n.path) {
            now = None;
        }
    }
    now.map(|n| (n.path.clone(), n.store.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(time_ns: u64, path: &str, bound: bool) -> model::at::Name {
        model::at::Name {
            time_ns,
            ve: 1,
            var: 7,
            path: path.into(),
            store: Some(format!("persist:web:{path}")),
            bound,
        }
    }

    /// A file's name at a transaction's time, whatever came after it in the journal: the
    /// unlink at 30 still acts on /data/a; the rename at 40 names the file /data/b.
    #[test]
    fn a_files_name_is_the_one_it_had_at_the_time() {
        let ns = [
            name(10, "/data/a", true),
            name(30, "/data/a", false),
            name(35, "/data/a", true),
            name(40, "/data/a", false),
            name(40, "/data/b", true),
        ];
        let at = |t| name_at(&ns, t);
        assert_eq!(at(5), None);
        assert_eq!(at(10), Some(("/data/a".into(), true)));
        assert_eq!(at(30), Some(("/data/a".into(), true)));
        assert_eq!(at(31), None);
        assert_eq!(at(40), Some(("/data/b".into(), true)));
        assert_eq!(at(99), Some(("/data/b".into(), true)));
    }
}
