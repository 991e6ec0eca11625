//! `jcs summarize`: what each tier would keep of the journal ([`dry_run`]), and rewriting
//! the sealed segments into summary files of one tier ([`rewrite`], crash-safe:
//! `journal::summary`). The transactions they held are gone afterwards; tracking answers
//! from the summaries within the tier's guarantee (docs/summarization.md), `jcs verify` still
//! verifies the chain.

use crate::track::Loaded;
use crate::{decode, journal_err, open, QueryError, Result};
use analysis::summary::{FadePolicy, Summary};
use journal::Storage as _;
use model::at::{VarDef, VarId};
use record::{Record, Tier};
use std::collections::HashSet;
use std::path::Path;

/// The tiers `--dry-run` can show besides the journal and T0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    T1,
    T2,
    T3,
    T4,
}

/// One tier's size.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct TierSize {
    pub tier: &'static str,
    pub what: &'static str,
    pub records: u64,
    /// zstd-compressed size of the tier's encoding (the journal's: its segments on disk).
    pub bytes: u64,
}

fn zstd_len(b: Vec<u8>) -> u64 {
    zstd::bulk::compress(&b, 3)
        .map(|c| c.len() as u64)
        .unwrap_or(0)
}

/// What each tier would keep of the journal in `dir`, in records and bytes; the first row is
/// the journal itself. `policy`: T4's, needed for [`View::T4`].
pub fn dry_run(
    dir: &Path,
    views: &[View],
    policy: Option<&FadePolicy>,
    now_ns: u64,
) -> Result<Vec<TierSize>> {
    let l = Loaded::read(dir)?;
    let journal_bytes = journal::segments_bytes(&open(dir)?).map_err(journal_err(dir))?;
    let flows = l.flows();
    let mut rows = vec![
        TierSize {
            tier: "journal",
            what: "every atomic transaction, as recorded (segments on disk)",
            records: l.ats.len() as u64,
            bytes: journal_bytes,
        },
        TierSize {
            tier: "T0",
            what: "lossless: the transactions that move data, every field, delta-coded",
            records: flows.len() as u64,
            bytes: zstd_len(model::at::encode_batch(
                &flows.iter().map(|f| l.ats[f.at]).collect::<Vec<_>>(),
            )),
        },
        TierSize {
            tier: "flows",
            what: "T0's causal content (source, target, time, bytes) in the summaries' encoding",
            records: flows.len() as u64,
            bytes: zstd_len(analysis::summary::encode(
                &flows.iter().map(Summary::of).collect::<Vec<_>>(),
            )),
        },
    ];
    let volatile = l.volatile();
    for v in views {
        rows.push(match v {
            View::T1 => {
                let g = analysis::Graph::new(flows.clone(), volatile.clone());
                let sts = analysis::summary::T1::new(&g).sts;
                TierSize {
                    tier: "T1",
                    what: "causal: repeated transfers with nothing in between merged; identical reachability",
                    records: sts.len() as u64,
                    bytes: zstd_len(analysis::summary::encode(&sts)),
                }
            }
            View::T2 => {
                let sts = analysis::summary::t2(&flows);
                TierSize {
                    tier: "T2",
                    what: "structural: one summary per (source, target) pair; may add false dependencies",
                    records: sts.len() as u64,
                    bytes: zstd_len(analysis::summary::encode(&sts)),
                }
            }
            View::T3 => {
                let g = analysis::Graph::new(flows.clone(), volatile.clone());
                let memories: HashSet<VarId> = l
                    .vars
                    .iter()
                    .filter(|(_, d)| matches!(d, VarDef::Memory { .. }))
                    .map(|(id, _)| *id)
                    .collect();
                let t3 = analysis::summary::t3(&g, |v| memories.contains(&v));
                TierSize {
                    tier: "T3",
                    what: "sources: per variable, the endpoints and VEs its data came from",
                    records: t3.values().map(|s| s.len() as u64).sum(),
                    bytes: zstd_len(analysis::summary::encode_sources(&t3)),
                }
            }
            View::T4 => {
                let p = policy.ok_or_else(|| {
                    QueryError::Usage("T4 needs a fading policy (lines `network 7d`, `files 30d`)".into())
                })?;
                let sts: Vec<Summary> = analysis::summary::t4(&flows, &volatile, now_ns, p)
                    .into_iter()
                    .map(|f| f.st)
                    .collect();
                TierSize {
                    tier: "T4",
                    what: "fading: old exchanges one record per (VE, endpoint), old file bytes whole; never loses a dependency",
                    records: sts.len() as u64,
                    bytes: zstd_len(analysis::summary::encode(&sts)),
                }
            }
        });
    }
    Ok(rows)
}

/// What [`rewrite`] did.
#[derive(Debug, Default, serde::Serialize, schemars::JsonSchema)]
pub struct Rewritten {
    pub tier: String,
    /// Summary files written, each replacing a run of sealed segments.
    pub files: Vec<String>,
    pub segments: u64,
    pub transactions_before: u64,
    pub summaries_after: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Runs of segments left as they are: their summary would not have been smaller.
    pub kept: Vec<KeptRun>,
}

/// A run of segments [`rewrite`] left alone, and why.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct KeptRun {
    pub first: u64,
    pub last: u64,
    pub segment_bytes: u64,
    /// What the summary file would have taken (the summary records compressed as its blocks
    /// are).
    pub summary_bytes: u64,
}

/// Rewrites every sealed segment of the journal in `dir` into summary files of `tier`, one
/// per run of consecutive segments. `progress(k, runs, first, last)` is called before each.
pub fn rewrite(
    dir: &Path,
    tier: Tier,
    policy: Option<&FadePolicy>,
    now_ns: u64,
    progress: &mut dyn FnMut(usize, usize, u64, u64),
) -> Result<Rewritten> {
    if tier == Tier::T4 && policy.is_none() {
        return Err(QueryError::Usage(
            "--tier T4 needs --policy FILE (lines `network 7d`, `files 30d`)".into(),
        ));
    }
    if tier == Tier::Integrity {
        return Err(QueryError::Usage(
            "integrity records are written by the recorder, not by summarizing".into(),
        ));
    }
    let mut storage = open(dir)?;
    let sealed = journal::sealed_segments(&storage).map_err(journal_err(dir))?;
    let mut r = Rewritten {
        tier: tier.name().into(),
        ..Default::default()
    };
    // Every variable's kind, from the whole journal (definitions may be in earlier files).
    let l = Loaded::read(dir)?;
    let volatile = l.volatile();
    // Runs of consecutive segment numbers (earlier summaries leave gaps).
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &n in &sealed {
        match runs.last_mut() {
            Some((_, b)) if *b + 1 == n => *b = n,
            _ => runs.push((n, n)),
        }
    }
    for (k, &(a, b)) in runs.iter().enumerate() {
        progress(k + 1, runs.len(), a, b);
        // Everything but the transactions stays as it is (definitions, counters, summaries).
        let mut keep = Vec::new();
        let mut ats = Vec::new();
        for n in a..=b {
            let (recs, _) = journal::read_segment_from(&storage, n, 0).map_err(journal_err(dir))?;
            for (seq, raw) in recs {
                match decode(seq, &raw)? {
                    Some(Record::Ats(a)) => ats.extend(a),
                    _ => keep.push(raw),
                }
            }
        }
        let flows = analysis::flows(&ats, |v| l.is_file(v));
        let sts = match tier {
            Tier::T1 => {
                analysis::summary::T1::new(&analysis::Graph::new(flows, volatile.clone())).sts
            }
            Tier::T2 => analysis::summary::t2(&flows),
            Tier::T4 => analysis::summary::t4(&flows, &volatile, now_ns, policy.expect("checked"))
                .into_iter()
                .map(|f| f.st)
                .collect(),
            Tier::Integrity => Vec::new(), // refused above
        };
        let n_sts = sts.len() as u64;
        keep.push(Record::Summaries { tier, sts }.encode());
        // Never larger than what it replaces: where summarizing does not pay (transfers that
        // do not repeat), the segments stay as they are.
        let segment_bytes: u64 = (a..=b)
            .map(|n| storage.len(&journal::journal::segment_name(n)).unwrap_or(0))
            .sum();
        let summary_bytes = journal::summary::SUMMARY_HEADER_LEN as u64
            + zstd::bulk::compress(&keep.concat(), 9)
                .map(|c| c.len() as u64)
                .unwrap_or(u64::MAX);
        if summary_bytes >= segment_bytes {
            r.kept.push(KeptRun {
                first: a,
                last: b,
                segment_bytes,
                summary_bytes,
            });
            continue;
        }
        let done =
            journal::summary::replace_segments(&mut storage, a, b, &keep).map_err(|source| {
                QueryError::Summarize {
                    first: a,
                    last: b,
                    source,
                }
            })?;
        r.files.push(done.name);
        r.segments += b - a + 1;
        r.transactions_before += ats.len() as u64;
        r.summaries_after += n_sts;
        r.bytes_before += done.bytes_before;
        r.bytes_after += done.bytes_after;
    }
    Ok(r)
}
