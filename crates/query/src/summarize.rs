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

/// The largest record a summary file gets: half of what a journal record may be (a run of
/// segments summarized at once can keep millions of transactions).
const RECORD_BYTES: usize = journal::format::MAX_RECORD / 2;

/// The tiers `--dry-run` can show besides the journal and T0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    T1,
    T1F,
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
            View::T1F => {
                let g = analysis::Graph::new(flows.clone(), volatile.clone());
                let sts = analysis::summary::t1f(&g);
                TierSize {
                    tier: "T1F",
                    what: "causal at file granularity: T1 with byte ranges widened to whole files; the same files, VEs and endpoints except where only byte ranges told them apart",
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
    /// Sealed segments left as they are because a shipper (`jcs ship`) has not sent them yet:
    /// the shipper's name and the first segment it has not sent whole.
    pub unshipped: Option<(String, u64)>,
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
    let _lock = lock(dir)?;
    let mut storage = open(dir)?;
    let (sealed, unshipped) = shipped_sealed_segments(&storage, dir)?;
    let mut r = Rewritten {
        tier: tier.name().into(),
        unshipped,
        ..Default::default()
    };
    // Every variable's kind, from the whole journal (definitions may be in earlier files).
    let l = Loaded::read(dir)?;
    let runs = runs_of(&sealed);
    for (k, &(a, b)) in runs.iter().enumerate() {
        progress(k + 1, runs.len(), a, b);
        summarize_run(&mut storage, dir, &l, (a, b), tier, policy, now_ns, &mut r)?;
    }
    Ok(r)
}

/// A shipper that holds segments back, and the first it holds.
type Unshipped = Option<(String, u64)>;

/// The sealed segments that every shipper has sent (`journal::ship` marks): only those may be
/// replaced, or a shipper would find its next segment gone. Also the shipper that holds the
/// rest back, and from which segment.
fn shipped_sealed_segments(
    storage: &journal::DirStorage,
    dir: &Path,
) -> Result<(Vec<u64>, Unshipped)> {
    let sealed = journal::sealed_segments(storage).map_err(journal_err(dir))?;
    let marks = journal::ship::marks(storage).map_err(journal_err(dir))?;
    let held = marks.into_iter().min_by_key(|m| m.segment);
    Ok(match held {
        Some(m) if sealed.iter().any(|&n| n >= m.segment) => (
            sealed.into_iter().filter(|&n| n < m.segment).collect(),
            Some((m.name, m.segment)),
        ),
        _ => (sealed, None),
    })
}

/// Runs of consecutive segment numbers (earlier summaries leave gaps).
fn runs_of(segments: &[u64]) -> Vec<(u64, u64)> {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &n in segments {
        match runs.last_mut() {
            Some((_, b)) if *b + 1 == n => *b = n,
            _ => runs.push((n, n)),
        }
    }
    runs
}

/// Holds the journal's summarizing lock (`jcs summarize` and the daemon's retention never
/// rewrite the same files at once); an error when another holds it.
fn lock(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join(".summarize.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| QueryError::Open {
            dir: path.clone(),
            source,
        })?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(_) => Err(QueryError::Usage(format!(
            "the journal is being summarized already ({} is locked: jcs summarize, or the daemon's --retain)",
            path.display()
        ))),
    }
}

/// Replaces sealed segments `a..=b` by a summary file of `tier` — unless it would not be
/// smaller (then they are kept, in `r.kept`).
#[allow(clippy::too_many_arguments)]
fn summarize_run(
    storage: &mut journal::DirStorage,
    dir: &Path,
    l: &Loaded,
    (a, b): (u64, u64),
    tier: Tier,
    policy: Option<&FadePolicy>,
    now_ns: u64,
    r: &mut Rewritten,
) -> Result<()> {
    let volatile = l.volatile();
    // Everything but the transactions stays as it is (definitions, counters, summaries);
    // of the transactions, the gaps (a record that says it is incomplete stays so) and the
    // aborted ones (the policy's denials) stay too.
    let mut keep = Vec::new();
    let mut ats = Vec::new();
    let mut kept_ats = Vec::new();
    for n in a..=b {
        let (recs, _) = journal::read_segment_from(&*storage, n, 0).map_err(journal_err(dir))?;
        for (seq, raw) in recs {
            match decode(seq, &raw)? {
                Some(Record::Ats(v)) => {
                    for at in v {
                        if at.op == model::at::Op::Gap || at.status == model::at::Status::Aborted {
                            kept_ats.push(at);
                        } else {
                            ats.push(at);
                        }
                    }
                }
                _ => keep.push(raw),
            }
        }
    }
    let flows = analysis::flows(&ats, |v| l.is_file(v));
    let sts = match tier {
        Tier::T1 => analysis::summary::T1::new(&analysis::Graph::new(flows, volatile.clone())).sts,
        Tier::T1F => analysis::summary::t1f(&analysis::Graph::new(flows, volatile.clone())),
        Tier::T2 => analysis::summary::t2(&flows),
        Tier::T4 => {
            let p = policy.ok_or_else(|| QueryError::Usage("T4 needs a fading policy".into()))?;
            analysis::summary::t4(&flows, &volatile, now_ns, p)
                .into_iter()
                .map(|f| f.st)
                .collect()
        }
        Tier::Integrity => {
            return Err(QueryError::Usage(
                "integrity records are written by the recorder, not by summarizing".into(),
            ))
        }
    };
    let n_sts = sts.len() as u64;
    if !kept_ats.is_empty() {
        keep.extend(Record::Ats(kept_ats).encode_bounded(RECORD_BYTES));
    }
    keep.extend(Record::Summaries { tier, sts }.encode_bounded(RECORD_BYTES));
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
        return Ok(());
    }
    let done = journal::summary::replace_segments(storage, a, b, &keep).map_err(|source| {
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
    Ok(())
}

/// A retention policy (`jcs daemon --retain 'T1 after 1d, T4 after 30d'`): the journal older
/// than each age is kept in that tier, so it does not grow without bound. Tiers only coarsen
/// with age (T1, then T2, then T4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// (tier, age in ns), ages ascending.
    pub rules: Vec<(Tier, u64)>,
}

impl Retention {
    /// `TIER after AGE[, TIER after AGE…]`: TIER is T1, T1F, T2 or T4; AGE as everywhere (`90s`,
    /// `12h`, `30d`).
    pub fn parse(spec: &str) -> std::result::Result<Retention, String> {
        let mut rules = Vec::new();
        for part in spec.split(',').map(str::trim) {
            let bad = |why: &str| {
                format!("--retain {spec:?}: {part:?}: {why} (expected e.g. 'T1 after 1d, T4 after 30d')")
            };
            let words: Vec<&str> = part.split_whitespace().collect();
            let [tier, "after", age] = words[..] else {
                return Err(bad("not `TIER after AGE`"));
            };
            let tier = match tier {
                "T1" => Tier::T1,
                "T1F" => Tier::T1F,
                "T2" => Tier::T2,
                "T4" => Tier::T4,
                _ => return Err(bad("the tier is T1, T1F, T2 or T4")),
            };
            let age = model::limits::parse_age(age)
                .ok_or_else(|| bad("the age is a number with s, m, h or d"))?;
            rules.push((tier, age));
        }
        rules.sort_by_key(|&(t, age)| (age, t.coarseness()));
        for w in rules.windows(2) {
            if w[1].0.coarseness() <= w[0].0.coarseness() {
                return Err(format!(
                    "--retain {spec:?}: {} after an older age than {}: a tier only coarsens with age (T1, T1F, T2, T4)",
                    w[1].0, w[0].0
                ));
            }
        }
        Ok(Retention { rules })
    }

    /// The tier a file whose newest record is `age_ns` old belongs in, and that rule's age.
    pub fn tier_for(&self, age_ns: u64) -> Option<(Tier, u64)> {
        self.rules.iter().rev().find(|(_, a)| age_ns > *a).copied()
    }
}

/// What [`retain`] did: segments summarized (per tier) and summary files made coarser.
#[derive(Debug, Default, serde::Serialize, schemars::JsonSchema)]
pub struct Retained {
    pub rewritten: Vec<Rewritten>,
    /// Summary files rewritten into a coarser tier: (file, tier).
    pub coarsened: Vec<(String, String)>,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Applies `policy` to the journal in `dir` as of `now_ns`: each sealed segment whose last
/// write is older than a rule's age is summarized into that rule's tier (the coarsest that
/// applies), and each summary file whose newest record is older than a coarser rule's age is
/// made coarser (T2, T4 of its summaries). T4 fades with the rule's age for both network and
/// files. `progress` gets a line per step. An error when `jcs summarize` holds the journal.
pub fn retain(
    dir: &Path,
    policy: &Retention,
    now_ns: u64,
    progress: &mut dyn FnMut(&str),
) -> Result<Retained> {
    let _lock = lock(dir)?;
    let mut storage = open(dir)?;
    let mut out = Retained::default();
    let age_of = |name: &str| -> Option<u64> {
        let m = std::fs::metadata(dir.join(name)).ok()?.modified().ok()?;
        let t = m.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos() as u64;
        Some(now_ns.saturating_sub(t))
    };
    let (sealed, _) = shipped_sealed_segments(&storage, dir)?;
    // (segment, its tier) for the segments old enough, in runs of one tier.
    let due: Vec<(u64, (Tier, u64))> = sealed
        .iter()
        .filter_map(|&n| {
            Some((
                n,
                policy.tier_for(age_of(&journal::journal::segment_name(n))?)?,
            ))
        })
        .collect();
    let names = storage.list().map_err(|source| QueryError::Open {
        dir: dir.to_path_buf(),
        source,
    })?;
    let summaries: Vec<(u64, u64)> = names
        .iter()
        .filter_map(|n| journal::summary::summary_range(n))
        .collect();
    if due.is_empty() && summaries.is_empty() {
        return Ok(out);
    }
    let l = Loaded::read(dir)?;
    let fade = |age: u64| FadePolicy {
        network_ns: Some(age),
        files_ns: Some(age),
    };
    let mut i = 0;
    while i < due.len() {
        let (a, rule) = due[i];
        let mut b = a;
        while i + 1 < due.len() && due[i + 1].0 == b + 1 && due[i + 1].1 == rule {
            i += 1;
            b = due[i].0;
        }
        i += 1;
        progress(&format!(
            "summarizing segments {a:016x}..{b:016x} into {} (older than {}s)",
            rule.0,
            rule.1 / 1_000_000_000
        ));
        let mut r = Rewritten {
            tier: rule.0.name().into(),
            ..Default::default()
        };
        let p = fade(rule.1);
        summarize_run(
            &mut storage,
            dir,
            &l,
            (a, b),
            rule.0,
            Some(&p),
            now_ns,
            &mut r,
        )?;
        out.bytes_before += r.bytes_before;
        out.bytes_after += r.bytes_after;
        out.rewritten.push(r);
    }
    // Summary files (those written before this pass too) that a coarser rule now covers —
    // except those a shipper is still sending (`journal::ship` marks): its cursor is an offset
    // into the file's bytes as they are.
    let volatile = l.volatile();
    let sending = journal::ship::marks(&storage)
        .map_err(journal_err(dir))?
        .into_iter()
        .map(|m| m.segment)
        .min();
    for (a, b) in summaries {
        if sending.is_some_and(|m| a >= m) {
            continue;
        }
        let name = journal::summary::summary_name(a, b);
        let Ok(bytes) = storage.read(&name) else {
            continue;
        };
        let Ok((_, raws)) = journal::summary::read_summary(&bytes) else {
            continue; // damaged: verify reports it; it is not rewritten
        };
        let mut recs = Vec::new();
        let mut newest = 0u64;
        let mut current = 0u8;
        for (k, raw) in raws.iter().enumerate() {
            let rec = decode(k as u64, raw)?;
            match &rec {
                Some(Record::Summaries { tier, sts }) if *tier != Tier::Integrity => {
                    current = current.max(tier.coarseness());
                    newest = newest.max(sts.iter().map(|s| s.last).max().unwrap_or(0));
                }
                Some(Record::Ats(v)) => {
                    newest = newest.max(v.iter().map(|a| a.time_ns).max().unwrap_or(0));
                }
                _ => {}
            }
            recs.push((rec, raw));
        }
        let Some((tier, age)) = policy.tier_for(now_ns.saturating_sub(newest)) else {
            continue;
        };
        if current == 0 || tier.coarseness() <= current {
            continue;
        }
        let mut sts = Vec::new();
        let mut keep = Vec::new();
        for (rec, raw) in recs {
            match rec {
                Some(Record::Summaries { tier: t, sts: v }) if t != Tier::Integrity => {
                    sts.extend(v)
                }
                _ => keep.push(raw.clone()),
            }
        }
        let coarser = match tier {
            Tier::T1F => analysis::summary::t1f_of_summaries(&sts),
            Tier::T2 => analysis::summary::t2_of_summaries(&sts),
            _ => analysis::summary::t4_of_summaries(&sts, &volatile, now_ns, &fade(age))
                .into_iter()
                .map(|f| f.st)
                .collect(),
        };
        keep.extend(Record::Summaries { tier, sts: coarser }.encode_bounded(RECORD_BYTES));
        let after = journal::summary::SUMMARY_HEADER_LEN as u64
            + zstd::bulk::compress(&keep.concat(), 9)
                .map(|c| c.len() as u64)
                .unwrap_or(u64::MAX);
        if after >= bytes.len() as u64 {
            continue; // not smaller: kept as it is
        }
        progress(&format!("making {name} coarser: {tier}"));
        let done =
            journal::summary::replace_summary(&mut storage, a, b, &keep).map_err(|source| {
                QueryError::Summarize {
                    first: a,
                    last: b,
                    source,
                }
            })?;
        out.bytes_before += done.bytes_before;
        out.bytes_after += done.bytes_after;
        out.coarsened.push((done.name, tier.name().into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `jcs summarize` and the daemon's retention never rewrite at once: the second to take
    /// the journal's lock gets an error that says why; once the first is done, it can.
    #[test]
    fn one_summarizer_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock(dir.path()).unwrap();
        let e = lock(dir.path()).unwrap_err().to_string();
        assert!(e.contains("being summarized already"), "{e}");
        let policy = Retention::parse("T1 after 1s").unwrap();
        assert!(retain(dir.path(), &policy, 0, &mut |_| {}).is_err());
        drop(first);
        assert!(lock(dir.path()).is_ok());
    }

    #[test]
    fn retention_policies_parse_and_pick_the_coarsest_tier_that_applies() {
        let r = Retention::parse("T4 after 30d, T1 after 1d").unwrap();
        let day = 86_400 * 1_000_000_000u64;
        assert_eq!(r.rules, vec![(Tier::T1, day), (Tier::T4, 30 * day)]);
        assert_eq!(r.tier_for(day / 2), None);
        assert_eq!(r.tier_for(2 * day), Some((Tier::T1, day)));
        assert_eq!(r.tier_for(31 * day), Some((Tier::T4, 30 * day)));
        for (bad, why) in [
            ("T3 after 1d", "T1, T1F, T2 or T4"),
            ("T1 after soon", "number with"),
            ("T1 1d", "TIER after AGE"),
            ("T4 after 1d, T1 after 30d", "only coarsens"),
            ("T1 after 1d, T1 after 2d", "only coarsens"),
            ("", "TIER after AGE"),
        ] {
            let e = Retention::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
