//! `jcs summarize`: what each tier would keep of the journal (`--dry-run`), and rewriting the
//! sealed segments into summary files of one tier (crash-safe: `journal::summary`). The
//! transactions they held are gone afterwards; `jcs track` answers from the summaries within
//! the tier's guarantee (docs/summarization.md), `jcs verify` still verifies the chain.

use crate::daemon::{REC_ATS, REC_STATS, REC_SUMMARIES, REC_VARS};
use crate::store::Store;
use crate::track::{load, Loaded};
use anyhow::{bail, Context, Result};
use model::at::{VarDef, VarId};
use std::collections::HashSet;
use std::io::Write;

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
    let Loaded { vars, ats, .. } = load(store)?;
    let dir = store.layout.root().join("journal");
    let storage = journal::DirStorage::new(&dir)?;
    let mut journal_bytes = 0;
    {
        use journal::Storage;
        for seg in journal::segment_numbers(&storage)? {
            journal_bytes += storage.len(&journal::journal::segment_name(seg))?;
        }
    }
    let is_file = |v: VarId| vars.get(&v).is_some_and(VarDef::is_file);
    let volatile = crate::track::volatile(&vars);
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
                    .map(analysis::summary::Summary::of)
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
        let volatile = crate::track::volatile(&vars);
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

/// What `jcs summarize` did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Rewritten {
    pub tier: String,
    /// Summary files written, each replacing a run of sealed segments.
    pub files: Vec<String>,
    pub segments: u64,
    pub transactions_before: u64,
    pub summaries_after: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Rewrites every sealed segment (all but the open one) into summary files of `tier`.
pub fn summarize(
    store: &Store,
    tier: &str,
    policy: Option<&analysis::summary::FadePolicy>,
    json: bool,
) -> Result<()> {
    let code = match crate::daemon::tier_code(tier) {
        Some(c) => c,
        None => bail!(
            "--tier {tier}: the journal can be rewritten into T1, T2 or T4 (T3 is a view: --dry-run)"
        ),
    };
    if code == 4 && policy.is_none() {
        bail!("--tier T4 needs --policy FILE (lines `network 7d`, `files 30d`)");
    }
    let dir = store.layout.root().join("journal");
    let mut storage = journal::DirStorage::new(&dir)?;
    let segs = journal::segment_numbers(&storage)?;
    let sealed: Vec<u64> = segs.iter().rev().skip(1).rev().copied().collect();
    let mut r = Rewritten {
        tier: tier.into(),
        ..Default::default()
    };
    if sealed.is_empty() {
        eprintln!("jcs: nothing to summarize: the only segment is the open one");
    }
    // Every variable's kind, from the whole journal (definitions may be in earlier files).
    let Loaded { vars, .. } = load(store)?;
    let is_file = |v: VarId| vars.get(&v).is_some_and(VarDef::is_file);
    let volatile = crate::track::volatile(&vars);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    // Runs of consecutive segment numbers (earlier summaries leave gaps).
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &n in &sealed {
        match runs.last_mut() {
            Some((_, b)) if *b + 1 == n => *b = n,
            _ => runs.push((n, n)),
        }
    }
    for (k, &(a, b)) in runs.iter().enumerate() {
        eprintln!(
            "jcs: summarizing segments {a:016x}..{b:016x} ({}/{}) into {tier}",
            k + 1,
            runs.len()
        );
        let mut keep = Vec::new();
        let mut ats = Vec::new();
        for n in a..=b {
            let (recs, _) = journal::read_segment_from(&storage, n, 0)
                .with_context(|| format!("read segment {n:016x}"))?;
            for (seq, rec) in recs {
                match rec.first() {
                    Some(&REC_ATS) => ats.extend(
                        model::at::decode_batch(&rec[1..])
                            .with_context(|| format!("journal record {seq}: transactions"))?,
                    ),
                    Some(&REC_VARS | &REC_STATS | &REC_SUMMARIES) => keep.push(rec),
                    _ => keep.push(rec),
                }
            }
        }
        let flows = analysis::flows(&ats, is_file);
        let sts = match code {
            1 => analysis::summary::T1::new(&analysis::Graph::new(flows, volatile.clone())).sts,
            2 => analysis::summary::t2(&flows),
            _ => analysis::summary::t4(&flows, &volatile, now, policy.expect("checked"))
                .into_iter()
                .map(|f| f.st)
                .collect(),
        };
        let mut rec = vec![REC_SUMMARIES, code];
        rec.extend(analysis::summary::encode(&sts));
        keep.push(rec);
        let done = journal::summary::replace_segments(&mut storage, a, b, &keep)
            .with_context(|| format!("summarize segments {a:016x}..{b:016x}"))?;
        r.files.push(done.name);
        r.segments += b - a + 1;
        r.transactions_before += ats.len() as u64;
        r.summaries_after += sts.len() as u64;
        r.bytes_before += done.bytes_before;
        r.bytes_after += done.bytes_after;
    }
    if json {
        return crate::output::print_json(&r);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{tier}: {} segment(s) into {} summary file(s): {} transactions → {} summaries, {} → {} bytes",
        r.segments,
        r.files.len(),
        r.transactions_before,
        r.summaries_after,
        r.bytes_before,
        r.bytes_after
    )?;
    Ok(())
}
