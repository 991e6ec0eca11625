//! Reading the journal back: `jcs log` (transactions, with filters and `--follow`) and
//! `jcs stats` (per VE counts). The record tags are the daemon's (`V`, `A`, `S`).

use crate::daemon::{VeStats, REC_ATS, REC_STATS, REC_VARS};
use crate::store::Store;
use anyhow::{bail, Context, Result};
use model::at::{VarDef, VarId};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::io::Write;

/// Which transactions `jcs log` prints.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub ves: Option<HashSet<u64>>,
    /// A variable as `jcs log` names it (`file:/data/x`, `endpoint:10.0.0.1:80`, `ve:3`).
    pub var: Option<String>,
    pub since_ns: Option<u64>,
    pub until_ns: Option<u64>,
}

/// Parses `file:PATH`, `endpoint:tcp/ADDR:PORT` (or `endpoint:ADDR:PORT`) or `ve:N` into the
/// name `jcs log` prints for that variable.
pub fn parse_var_spec(spec: &str) -> Result<String> {
    let (kind, rest) = spec.split_once(':').with_context(|| {
        format!("variable {spec:?}: expected file:PATH, endpoint:tcp/ADDR:PORT or ve:N")
    })?;
    match kind {
        "file" if rest.starts_with('/') => Ok(format!("file:{rest}")),
        "file" => bail!("variable {spec:?}: the path must be absolute (the path inside the VE)"),
        "endpoint" => {
            let r = rest
                .strip_prefix("tcp/")
                .or_else(|| rest.strip_prefix("udp/"))
                .unwrap_or(rest);
            let (addr, port) = r
                .rsplit_once(':')
                .with_context(|| format!("variable {spec:?}: expected ADDR:PORT"))?;
            let addr = addr.trim_start_matches('[').trim_end_matches(']');
            let ip: std::net::IpAddr = addr
                .parse()
                .with_context(|| format!("variable {spec:?}: {addr:?} is not an IP address"))?;
            let port: u16 = port
                .parse()
                .with_context(|| format!("variable {spec:?}: {port:?} is not a port"))?;
            Ok(format!("endpoint:{ip}:{port}"))
        }
        "ve" => Ok(format!(
            "ve:{}",
            rest.parse::<u64>()
                .with_context(|| format!("variable {spec:?}: {rest:?} is not a VE id"))?
        )),
        _ => bail!("variable {spec:?}: expected file:PATH, endpoint:tcp/ADDR:PORT or ve:N"),
    }
}

/// Parses a time: RFC 3339 in UTC (`2026-11-28T05:00:00Z`, fractions allowed), seconds since
/// the epoch (fractions allowed), or an age (`90s`, `10m`, `2h`, `7d` ago). Returns nanoseconds since the epoch.
pub fn parse_time(s: &str, now_ns: u64) -> Result<u64> {
    let t = s.trim();
    if let Some(unit) = t.chars().last().filter(|c| "smhd".contains(*c)) {
        if let Ok(n) = t[..t.len() - 1].parse::<u64>() {
            let secs = n * match unit {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                _ => 86400,
            };
            return Ok(now_ns.saturating_sub(secs * 1_000_000_000));
        }
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(secs * 1_000_000_000);
    }
    // Seconds since the epoch with a fraction (as `date +%s.%N` prints).
    if let Some((secs, frac)) = t.split_once('.') {
        if let (Ok(secs), true) = (
            secs.parse::<u64>(),
            !frac.is_empty() && frac.len() <= 9 && frac.bytes().all(|b| b.is_ascii_digit()),
        ) {
            let frac_ns: u64 = format!("{frac:0<9}").parse().unwrap_or(0);
            return Ok(secs * 1_000_000_000 + frac_ns);
        }
    }
    let bad = || {
        anyhow::anyhow!(
            "time {s:?}: use 2026-11-28T05:00:00Z, seconds since the epoch, or an age such as 10m"
        )
    };
    let t = t.strip_suffix('Z').ok_or_else(bad)?;
    let (date, time) = t.split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let h: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    if d.len() != 3
        || h.len() != 3
        || !(1..=12).contains(&d[1])
        || !(1..=31).contains(&d[2])
        || h[0] > 23
        || h[1] > 59
        || h[2] > 60
    {
        return Err(bad());
    }
    // Days from civil (H. Hinnant).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86400 + h[0] * 3600 + h[1] * 60 + h[2];
    let mut ns = frac.chars().take(9).collect::<String>();
    while ns.len() < 9 {
        ns.push('0');
    }
    let frac_ns: u64 = if frac.is_empty() {
        0
    } else {
        ns.parse().map_err(|_| bad())?
    };
    if secs < 0 {
        return Err(bad());
    }
    Ok(secs as u64 * 1_000_000_000 + frac_ns)
}

/// `jcs log`: the atomic transactions in the journal, oldest first. A closed pipe (`| head`)
/// ends the listing quietly.
pub fn log(store: &Store, filter: &Filter, json: bool, follow: bool) -> Result<()> {
    match log_inner(store, filter, json, follow) {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        r => r,
    }
}

fn log_inner(store: &Store, filter: &Filter, json: bool, follow: bool) -> Result<()> {
    let dir = store.layout.root().join("journal");
    let storage = journal::DirStorage::new(&dir)?;
    // Sealed segments with an index are read only where the filter's variables or VEs are.
    let keys: Option<Vec<u64>> = match (&filter.var, &filter.ves) {
        (Some(v), _) => Some(
            store
                .catalog
                .var_ids(v)?
                .into_iter()
                .map(crate::journal_index::var_key)
                .collect(),
        ),
        (None, Some(ves)) => Some(
            ves.iter()
                .map(|&v| crate::journal_index::ve_key(v))
                .collect(),
        ),
        (None, None) => None,
    };
    let mut names = Names {
        known: HashMap::new(),
        catalog: &store.catalog,
    };
    // Where reading goes on: (segment, offset in it).
    let mut at = (0u64, 0u64);
    loop {
        let segs = journal::segment_numbers(&storage)
            .with_context(|| format!("read the journal at {}", dir.display()))?;
        let mut out = std::io::stdout().lock();
        let from = at.0;
        for (i, &seg) in segs.iter().enumerate().filter(|(_, &s)| s >= from) {
            let sealed = i + 1 < segs.len();
            let offset = if seg == at.0 { at.1 } else { 0 };
            let indexed = match (&keys, sealed && offset == 0) {
                (Some(k), true) => journal::index::load(&storage, seg).map(|idx| {
                    let blocks: Vec<_> = idx
                        .blocks_for(k)
                        .into_iter()
                        .map(|b| idx.blocks[b])
                        .collect();
                    journal::index::read_blocks(&storage, seg, &blocks)
                }),
                _ => None,
            };
            let records = match indexed {
                Some(r) => {
                    at = (seg + 1, 0);
                    r
                }
                None => {
                    let (r, end) = journal::read_segment_from(&storage, seg, offset)
                        .with_context(|| format!("read the journal at {}", dir.display()))?;
                    at = if sealed { (seg + 1, 0) } else { (seg, end) };
                    Ok(r)
                }
            }
            .with_context(|| format!("read the journal at {}", dir.display()))?;
            for (seq, r) in records {
                print_record(&mut out, &mut names, filter, json, seq, &r)?;
            }
        }
        out.flush()?;
        if !follow {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// Names of variables: from the journal's `V` records as they are read, else the catalog.
struct Names<'a> {
    known: HashMap<VarId, String>,
    catalog: &'a crate::catalog::Catalog,
}

impl Names<'_> {
    fn get(&mut self, id: VarId) -> String {
        if id == 0 {
            return "-".into();
        }
        if let Some(n) = self.known.get(&id) {
            return n.clone();
        }
        let n = match self.catalog.var(id) {
            Ok(Some(d)) => d.to_string(),
            _ => format!("var:{id}"),
        };
        self.known.insert(id, n.clone());
        n
    }
}

fn print_record(
    out: &mut impl Write,
    names: &mut Names,
    filter: &Filter,
    json: bool,
    seq: u64,
    r: &[u8],
) -> Result<()> {
    match r.first() {
        Some(&REC_VARS) => {
            let defs: Vec<(VarId, VarDef)> = serde_json::from_slice(&r[1..])
                .with_context(|| format!("journal record {seq}: variable definitions"))?;
            names
                .known
                .extend(defs.into_iter().map(|(id, d)| (id, d.to_string())));
        }
        Some(&crate::daemon::REC_SUMMARIES) if r.len() >= 2 => {
            let tier = crate::daemon::tier_name(r[1]);
            let sts = analysis::summary::decode(&r[2..])
                .with_context(|| format!("journal record {seq}: summaries do not decode"))?;
            for s in sts.iter().filter(|s| {
                filter.since_ns.is_none_or(|t| s.last >= t)
                    && filter.until_ns.is_none_or(|t| s.first <= t)
            }) {
                let (src, dst) = (names.get(s.src), names.get(s.dst));
                if filter.var.as_ref().is_some_and(|v| *v != src && *v != dst) {
                    continue;
                }
                if let Some(ves) = &filter.ves {
                    let of_ve = |n: &str| {
                        n.strip_prefix("ve:")
                            .and_then(|v| v.parse::<u64>().ok())
                            .is_some_and(|v| ves.contains(&v))
                    };
                    if !of_ve(&src) && !of_ve(&dst) {
                        continue;
                    }
                }
                if json {
                    let v = serde_json::json!({
                        "summary": tier, "first_ns": s.first, "last_ns": s.last, "src": src,
                        "dst": dst, "count": s.count, "bytes": s.bytes,
                    });
                    writeln!(out, "{v}")?;
                } else {
                    let t = |ns: u64| {
                        let t = crate::output::time_ms((ns / 1_000_000) as i64);
                        format!("{}.{:06}", t.trim_end_matches('Z'), (ns / 1000) % 1_000_000)
                    };
                    writeln!(
                        out,
                        "{} – {} {tier} summary {src} -> {dst} ×{} {} B",
                        t(s.first),
                        t(s.last),
                        s.count,
                        s.bytes
                    )?;
                }
            }
        }
        Some(&REC_ATS) => {
            let ats = model::at::decode_batch(&r[1..])
                .with_context(|| format!("journal record {seq}: transactions"))?;
            for a in ats.iter().filter(|a| {
                filter.ves.as_ref().is_none_or(|v| v.contains(&a.ve))
                    && filter.since_ns.is_none_or(|t| a.time_ns >= t)
                    && filter.until_ns.is_none_or(|t| a.time_ns <= t)
            }) {
                let (src, dst) = (names.get(a.src), names.get(a.dst));
                if filter.var.as_ref().is_some_and(|v| *v != src && *v != dst) {
                    continue;
                }
                let status = format!("{:?}", a.status).to_lowercase();
                if json {
                    let v = serde_json::json!({
                        "time_ns": a.time_ns, "ve": a.ve, "pid": a.pid, "tid": a.tid, "op": a.op.name(),
                        "src": src, "dst": dst, "off": a.off, "len": a.len, "result": a.result, "status": status,
                    });
                    writeln!(out, "{v}")?;
                } else {
                    let t = crate::output::time_ms((a.time_ns / 1_000_000) as i64);
                    let micros = (a.time_ns / 1000) % 1_000_000;
                    writeln!(
                        out,
                        "{}.{micros:06} ve {} pid {} {:<7} {src} -> {dst} [{}+{}] = {} {status}",
                        t.trim_end_matches('Z'),
                        a.ve,
                        a.pid,
                        a.op.name(),
                        a.off,
                        a.len,
                        a.result
                    )?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Names of common system calls of this architecture, for `jcs stats`.
fn syscall_name(nr: u32) -> String {
    monitor::syscalls::name(nr)
}

/// Per VE: transactions by operation, system calls seen (by name), records lost.
#[derive(Debug, Default, Serialize)]
struct VeSummary {
    ve: u64,
    transactions: u64,
    by_op: std::collections::BTreeMap<String, u64>,
    syscalls_seen: u64,
    syscalls_by_name: std::collections::BTreeMap<String, u64>,
    records_emitted: u64,
    records_lost: u64,
    gap_transactions: u64,
    /// Calls dropped by classification (counted, not recorded): what crossed nothing, e.g.
    /// reads of files that exist only in read-only branches, pipes (`jcs stats --help` lists
    /// them all).
    dropped_by_classification: u64,
    dropped_by_name: std::collections::BTreeMap<String, u64>,
}

/// `jcs stats`: per VE, from the journal (transactions, and the kernel's counters the daemon
/// wrote when the VE ended), plus the journal's bytes per transaction.
pub fn stats(store: &Store, ve: Option<u64>, json: bool) -> Result<()> {
    let dir = store.layout.root().join("journal");
    let storage = journal::DirStorage::new(&dir)?;
    let records = journal::read_all(&storage)
        .with_context(|| format!("read the journal at {}", dir.display()))?;
    use journal::Storage;
    // The journal's size on disk (segments, not their indexes), without reading it twice.
    let mut bytes = 0;
    for seg in journal::segment_numbers(&storage)? {
        bytes += storage.len(&journal::journal::segment_name(seg))?;
    }
    let mut ves: std::collections::BTreeMap<u64, VeSummary> = std::collections::BTreeMap::new();
    let mut total = 0u64;
    for (seq, r) in &records {
        match r.first() {
            Some(&REC_ATS) => {
                for a in model::at::decode_batch(&r[1..])
                    .with_context(|| format!("journal record {seq}"))?
                {
                    total += 1;
                    let s = ves.entry(a.ve).or_insert_with(|| VeSummary {
                        ve: a.ve,
                        ..Default::default()
                    });
                    s.transactions += 1;
                    *s.by_op.entry(a.op.name().into()).or_default() += 1;
                    if a.op == model::at::Op::Gap {
                        s.gap_transactions += 1;
                    }
                }
            }
            Some(&REC_STATS) => {
                let st: VeStats = serde_json::from_slice(&r[1..])
                    .with_context(|| format!("journal record {seq}"))?;
                let s = ves.entry(st.ve).or_insert_with(|| VeSummary {
                    ve: st.ve,
                    ..Default::default()
                });
                s.syscalls_seen += st.seen;
                s.records_emitted += st.emitted;
                s.records_lost += st.lost;
                s.dropped_by_classification += st.dropped;
                for (nr, n) in st.calls {
                    *s.syscalls_by_name.entry(syscall_name(nr)).or_default() += n;
                }
                for (nr, n) in st.dropped_calls {
                    *s.dropped_by_name.entry(syscall_name(nr)).or_default() += n;
                }
            }
            _ => {}
        }
    }
    let list: Vec<VeSummary> = ves
        .into_values()
        .filter(|s| ve.is_none_or(|v| s.ve == v))
        .collect();
    let per_at = if total > 0 {
        bytes as f64 / total as f64
    } else {
        0.0
    };
    if json {
        return crate::output::print_json(
            &serde_json::json!({ "ves": list, "journal_bytes": bytes, "transactions": total, "journal_bytes_per_transaction": per_at }),
        );
    }
    let mut t = crate::output::Table::new(&[
        "VE",
        "TRANSACTIONS",
        "SYSCALLS SEEN",
        "NOT RECORDED",
        "DROPPED",
        "LOST",
        "BY OPERATION",
    ]);
    for s in &list {
        let recorded_calls: u64 = s
            .by_op
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "fork" | "exec" | "exit" | "gap"))
            .map(|(_, v)| v)
            .sum();
        t.row(vec![
            s.ve.to_string(),
            s.transactions.to_string(),
            s.syscalls_seen.to_string(),
            s.syscalls_seen.saturating_sub(recorded_calls).to_string(),
            s.dropped_by_classification.to_string(),
            s.records_lost.to_string(),
            s.by_op
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
        ]);
    }
    t.print();
    println!("journal: {bytes} bytes, {total} transactions, {per_at:.1} bytes per transaction (segment and block headers included)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_specs() {
        assert_eq!(parse_var_spec("file:/data/x").unwrap(), "file:/data/x");
        assert_eq!(
            parse_var_spec("endpoint:tcp/10.0.0.1:80").unwrap(),
            "endpoint:10.0.0.1:80"
        );
        assert_eq!(
            parse_var_spec("endpoint:[::1]:443").unwrap(),
            "endpoint:::1:443"
        );
        assert_eq!(parse_var_spec("ve:7").unwrap(), "ve:7");
        for bad in [
            "file:rel",
            "endpoint:tcp/x:80",
            "endpoint:1.2.3.4",
            "ve:x",
            "nope",
            "disk:/x",
        ] {
            assert!(parse_var_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z", 0).unwrap(), 0);
        assert_eq!(
            parse_time("2026-11-28T03:38:31Z", 0).unwrap(),
            1_795_837_111 * 1_000_000_000
        );
        assert_eq!(
            parse_time("2026-11-28T03:38:31.5Z", 0).unwrap(),
            1_795_837_111_500_000_000
        );
        assert_eq!(
            parse_time("1795837111", 0).unwrap(),
            1_795_837_111 * 1_000_000_000
        );
        assert_eq!(
            parse_time("1795837111.25", 0).unwrap(),
            1_795_837_111_250_000_000
        );
        assert_eq!(
            parse_time("10m", 3_600_000_000_000).unwrap(),
            3_000_000_000_000
        );
        assert_eq!(
            parse_time("2d", 0).unwrap(),
            0,
            "an age before the epoch clamps"
        );
        for bad in [
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-11-28 03:38:31",
            "5y",
            "1.",
            "1.1234567890",
        ] {
            assert!(parse_time(bad, 0).is_err(), "{bad}");
        }
    }
}
