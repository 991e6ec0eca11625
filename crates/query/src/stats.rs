//! `jcs stats`: per VE, from the journal: transactions by operation, and the kernel's
//! counters the recorder wrote when the VE ended; the journal's bytes per transaction.

use crate::{journal_err, open, read_all, Result};
use record::Record;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Per VE: transactions by operation, system calls seen (by name), records lost.
#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub struct VeSummary {
    pub ve: u64,
    pub transactions: u64,
    pub by_op: BTreeMap<String, u64>,
    pub syscalls_seen: u64,
    pub syscalls_by_name: BTreeMap<String, u64>,
    pub records_emitted: u64,
    pub records_lost: u64,
    pub gap_transactions: u64,
    /// Calls dropped by classification (counted, not recorded): what crossed nothing, e.g.
    /// reads of files that exist only in read-only branches, pipes (`jcs stats --help` lists
    /// them all).
    pub dropped_by_classification: u64,
    pub dropped_by_name: BTreeMap<String, u64>,
    /// Integrity records: what the VE wrote into a file of its dirties, one record per file
    /// (per second while it is written), instead of a transaction per write.
    pub integrity_records: u64,
    /// The calls (writes, truncates) those records stand for.
    pub integrity_writes: u64,
    /// Summaries the recorder wrote instead of transactions (`jcs daemon --summarize online`:
    /// T1, exact), between the VE's memory and what it read or wrote.
    pub summaries: u64,
    /// The flows those summaries stand for (about one per call; a shared mapping's two).
    pub summarized_flows: u64,
    /// Transactions the VE's policy aborted.
    pub aborted_transactions: u64,
    /// Per rule of its policy that denied something: the kernel's exact count (network rules)
    /// and the aborted transactions in the journal.
    pub denials: Vec<RuleDenials>,
    /// How each part of its policy was enforced (absent: the VE had no policy).
    pub enforced: Vec<(String, String)>,
}

/// The denials of one rule of a VE's policy.
#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub struct RuleDenials {
    pub rule: u32,
    pub name: String,
    pub text: String,
    /// Counted in the kernel (the network rules; None for the others).
    pub counted: Option<u64>,
    /// Aborted transactions in the journal that name it (fewer than `counted` when the ring
    /// buffer lost records: the gap says so).
    pub recorded: u64,
}

impl VeSummary {
    /// The system calls seen that are not in the journal as transactions.
    pub fn not_recorded(&self) -> u64 {
        let recorded_calls: u64 = self
            .by_op
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "fork" | "exec" | "exit" | "gap"))
            .map(|(_, v)| v)
            .sum();
        self.syscalls_seen
            .saturating_sub(recorded_calls + self.integrity_writes + self.summarized_flows)
    }
}

/// The whole answer (`jcs stats --json` prints it as it is).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Stats {
    pub ves: Vec<VeSummary>,
    /// The journal's segments on disk, headers included.
    pub journal_bytes: u64,
    pub transactions: u64,
    pub journal_bytes_per_transaction: f64,
    /// Damaged stretches of the journal that could not be read (the counts leave them out).
    pub skipped: Vec<journal::Skipped>,
}

/// The statistics of the journal in `dir`, of every VE or only `ve`.
pub fn stats(dir: &Path, ve: Option<u64>) -> Result<Stats> {
    let bytes = journal::segments_bytes(&open(dir)?).map_err(journal_err(dir))?;
    let mut total = 0u64;
    let mut by_ve: BTreeMap<u64, VeSummary> = BTreeMap::new();
    // Memory variables → their VE (an integrity record goes from one).
    let mut memories: std::collections::HashMap<model::at::VarId, u64> = Default::default();
    let (records, skipped) = read_all(dir)?;
    let mut rules: BTreeMap<(u64, u32), RuleDenials> = BTreeMap::new();
    for rec in records {
        match rec {
            Record::Ats(ats) => {
                for a in ats {
                    total += 1;
                    let s = summary_of(&mut by_ve, a.ve);
                    s.transactions += 1;
                    if a.status == model::at::Status::Aborted {
                        s.aborted_transactions += 1;
                        let r = rules.entry((a.ve, a.off as u32)).or_default();
                        r.rule = a.off as u32;
                        r.recorded += 1;
                    }
                    *s.by_op.entry(a.op.name().into()).or_default() += 1;
                    if a.op == model::at::Op::Gap {
                        s.gap_transactions += 1;
                    }
                }
            }
            Record::Stats(st) => {
                let s = summary_of(&mut by_ve, st.ve);
                s.syscalls_seen += st.seen;
                s.records_emitted += st.emitted;
                s.records_lost += st.lost;
                s.dropped_by_classification += st.dropped;
                for (nr, n) in st.calls {
                    *s.syscalls_by_name
                        .entry(monitor::syscalls::name(nr))
                        .or_default() += n;
                }
                for (nr, n) in st.dropped_calls {
                    *s.dropped_by_name
                        .entry(monitor::syscalls::name(nr))
                        .or_default() += n;
                }
                for (rule, n) in st.denied {
                    let r = rules.entry((st.ve, rule)).or_default();
                    r.rule = rule;
                    *r.counted.get_or_insert(0) += n;
                }
            }
            Record::Policy(p) => {
                let s = summary_of(&mut by_ve, p.ve);
                s.enforced = p.enforced;
                for info in p.rules {
                    let r = rules.entry((p.ve, info.id)).or_default();
                    r.rule = info.id;
                    r.name = info.name;
                    r.text = info.text;
                }
            }
            Record::Vars(defs) => {
                for (id, d) in defs {
                    if let model::at::VarDef::Memory { ve } = d {
                        memories.insert(id, ve);
                    }
                }
            }
            Record::Summaries {
                tier: record::Tier::Integrity,
                sts,
            } => {
                for st in sts {
                    if let Some(&ve) = memories.get(&st.src) {
                        let s = summary_of(&mut by_ve, ve);
                        s.integrity_records += 1;
                        s.integrity_writes += st.count;
                    }
                }
            }
            Record::Summaries { sts, .. } => {
                // (Online T1: one end of every flow is a VE's memory.)
                for st in sts {
                    let ve = memories.get(&st.src).or_else(|| memories.get(&st.dst));
                    if let Some(&ve) = ve {
                        let s = summary_of(&mut by_ve, ve);
                        s.summaries += 1;
                        s.summarized_flows += st.count;
                    }
                }
            }
            Record::Names(_)
            | Record::Repairs(_)
            | Record::Restores(_)
            | Record::Execs(_)
            | Record::Ve(_) => {}
        }
    }
    for ((ve, _), r) in rules {
        if r.recorded > 0 || r.counted.is_some_and(|n| n > 0) {
            summary_of(&mut by_ve, ve).denials.push(r);
        }
    }
    Ok(Stats {
        ves: by_ve
            .into_values()
            .filter(|s| ve.is_none_or(|v| s.ve == v))
            .collect(),
        journal_bytes: bytes,
        transactions: total,
        journal_bytes_per_transaction: if total > 0 {
            bytes as f64 / total as f64
        } else {
            0.0
        },
        skipped,
    })
}

fn summary_of(m: &mut BTreeMap<u64, VeSummary>, ve: u64) -> &mut VeSummary {
    m.entry(ve).or_insert_with(|| VeSummary {
        ve,
        ..Default::default()
    })
}
