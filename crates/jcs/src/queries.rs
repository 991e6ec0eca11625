//! Printing what the `query` crate answers: `jcs log`, `stats`, `track`, `summarize`,
//! `verify`. Nothing here reads the journal itself.

use crate::json;
use crate::output::Table;
use anyhow::Result;
use query::log::{Entry, Filter, Log};
use query::time::{now_ns, time_us};
use query::track::{Direction, Source};
use std::io::Write;
use store::Store;

/// Says on stderr what could not be read; whether anything was.
fn warn_skipped(skipped: &[journal::Skipped]) -> bool {
    for s in skipped {
        eprintln!(
            "jcs: warning: unreadable journal: {}",
            query::skipped_line(s)
        );
    }
    !skipped.is_empty()
}

/// The exit code of a query that printed what it could: 1 with `strict` when part of the
/// journal could not be read.
fn strict_code(strict: bool, skipped: bool) -> i32 {
    if strict && skipped {
        1
    } else {
        0
    }
}

/// `jcs log`: the transactions, oldest first; `follow` goes on printing new ones. A closed
/// pipe (`| head`) ends the listing quietly. Damaged stretches are skipped with a warning.
/// How `jcs log` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
    Csv,
}

/// The CSV columns of `jcs log --format csv` (one row per transaction or summary).
const CSV_HEADER: &str =
    "time,time_ns,ve,pid,tid,op,src,dst,off,len,result,status,error,rule,src_id,dst_id";

/// A CSV field: quoted when it holds a comma, a quote or a line break.
fn csv(f: &str) -> String {
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_string()
    }
}

pub fn log(
    store: &Store,
    filter: Filter,
    format: LogFormat,
    follow: bool,
    strict: bool,
) -> Result<i32> {
    log_to(
        store,
        filter,
        format,
        follow,
        strict,
        &mut std::io::stdout().lock(),
    )
}

/// `jcs log` into `out`.
fn log_to(
    store: &Store,
    filter: Filter,
    format: LogFormat,
    follow: bool,
    strict: bool,
    mut out: &mut dyn Write,
) -> Result<i32> {
    let mut log = Log::open(store, filter)?;
    let mut skipped = false;
    let r = (|| -> Result<()> {
        if format == LogFormat::Csv {
            writeln!(out, "{CSV_HEADER}")?;
        }
        loop {
            log.read_new(&mut |e| print_entry(&mut out, format, e))?;
            out.flush()?;
            skipped |= warn_skipped(&log.take_skipped());
            if !follow {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    })();
    match r {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(0)
        }
        r => r.map(|_| strict_code(strict, skipped)),
    }
}

/// A transaction's status as printed, and a failed call's error by name (its result is
/// -errno).
fn status_and_error(a: &model::at::At) -> (String, Option<&'static str>) {
    let status = a.status.name().to_string();
    let error = (a.status == model::at::Status::Failed && a.op != model::at::Op::Gap)
        .then(|| model::errno::name(-a.result))
        .flatten();
    (status, error)
}

fn print_entry(out: &mut impl Write, format: LogFormat, e: Entry) -> Result<()> {
    if format == LogFormat::Csv {
        return print_csv(out, e);
    }
    let json = format == LogFormat::Json;
    match e {
        Entry::At {
            at: a,
            src,
            dst,
            src_id,
            dst_id,
            exec,
            rule,
        } => {
            let (status, error) = status_and_error(a);
            if json {
                let aborted = a.status == model::at::Status::Aborted;
                json::line(
                    out,
                    &json::LogLine::Transaction(json::Transaction {
                        time_ns: a.time_ns,
                        ve: a.ve,
                        pid: a.pid,
                        tid: a.tid,
                        op: a.op.name().to_string(),
                        src: src.to_string(),
                        dst: dst.to_string(),
                        src_id: src_id.map(String::from),
                        dst_id: dst_id.map(String::from),
                        off: if aborted { 0 } else { a.off },
                        len: a.len,
                        result: a.result,
                        status,
                        error: error.map(String::from),
                        rule: aborted.then_some(a.off),
                        rule_name: rule.filter(|_| aborted).map(String::from),
                        argv: exec.map(|x| x.argv.clone()),
                        argv_cut: exec.is_some_and(|x| x.argv_cut),
                        ppid: exec.map(|x| x.ppid),
                        uid: exec.map(|x| x.uid),
                        euid: exec.map(|x| x.euid),
                        gid: exec.map(|x| x.gid),
                        cwd: exec.and_then(|x| x.cwd.clone()),
                    }),
                )?;
            } else if a.status == model::at::Status::Aborted {
                writeln!(
                    out,
                    "{} ve {} pid {} {:<7} {src} -> {dst} = {} aborted by rule {}",
                    time_us(a.time_ns),
                    a.ve,
                    a.pid,
                    a.op.name(),
                    a.result,
                    rule.map(String::from).unwrap_or_else(|| a.off.to_string())
                )?;
            } else {
                // An exec: its command line, and who ran it (uid, or uid/euid when they differ).
                let ran = exec
                    .map(|x| {
                        let who = if x.uid == x.euid {
                            format!("uid {}", x.uid)
                        } else {
                            format!("uid {} euid {}", x.uid, x.euid)
                        };
                        format!(
                            " argv [{}{}] {who} ppid {}{}",
                            x.argv.join(" "),
                            if x.argv_cut { " …" } else { "" },
                            x.ppid,
                            x.cwd
                                .as_deref()
                                .map(|c| format!(" cwd {c}"))
                                .unwrap_or_default()
                        )
                    })
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{} ve {} pid {} {:<7} {src} -> {dst} [{}+{}] = {}{} {status}{ran}",
                    time_us(a.time_ns),
                    a.ve,
                    a.pid,
                    a.op.name(),
                    a.off,
                    a.len,
                    a.result,
                    error.map(|e| format!(" {e}")).unwrap_or_default()
                )?;
            }
        }
        Entry::Summary {
            tier,
            st: s,
            src,
            dst,
            ve,
        } => {
            if json {
                json::line(
                    out,
                    &json::LogLine::Summary(json::SummaryLine {
                        summary: tier.name().to_string(),
                        ve,
                        first_ns: s.first,
                        last_ns: s.last,
                        src: src.to_string(),
                        dst: dst.to_string(),
                        ranges: match &s.dst_part {
                            analysis::Part::Whole => None,
                            analysis::Part::Bytes(v) => {
                                Some(v.iter().map(|&(a, b)| [a, b]).collect())
                            }
                        },
                        count: s.count,
                        bytes: s.bytes,
                    }),
                )?;
            } else {
                writeln!(
                    out,
                    "{} – {} {tier} summary {src} -> {dst} ×{} {} B",
                    time_us(s.first),
                    time_us(s.last),
                    s.count,
                    s.bytes
                )?;
            }
        }
        Entry::Repair(r) => {
            if json {
                json::line(
                    out,
                    &json::LogLine::Repair(json::RepairLine {
                        repair: r.kind.clone(),
                        time_ns: r.time_ns,
                        file: r.file.clone(),
                        reason: r.reason.clone(),
                    }),
                )?;
            } else {
                writeln!(
                    out,
                    "{} journal repair ({}): {} (set aside in {})",
                    time_us(r.time_ns),
                    r.kind,
                    r.reason,
                    r.file
                )?;
            }
        }
        Entry::Restore(r) => {
            if json {
                json::line(
                    out,
                    &json::LogLine::Restore(json::RestoreLine { restore: r.clone() }),
                )?;
            } else {
                writeln!(
                    out,
                    "{} ve {} {} {} (by {})",
                    time_us(r.time_ns),
                    r.ve,
                    r.action,
                    r.file,
                    r.by
                )?;
            }
        }
    }
    Ok(())
}

/// One CSV row: a transaction, or a summary (op `summary:TIER`, `len` its bytes, `result` its
/// count, `time` its first instant); repairs and restores are left out (`jcs log` text or JSON
/// lists them).
fn print_csv(out: &mut impl Write, e: Entry) -> Result<()> {
    match e {
        Entry::At {
            at: a,
            src,
            dst,
            src_id,
            dst_id,
            rule,
            ..
        } => {
            let (status, error) = status_and_error(a);
            let error = error.unwrap_or("");
            let aborted = a.status == model::at::Status::Aborted;
            let rule = if aborted {
                rule.map(String::from).unwrap_or_else(|| a.off.to_string())
            } else {
                String::new()
            };
            let fields = [
                time_us(a.time_ns),
                a.time_ns.to_string(),
                a.ve.to_string(),
                a.pid.to_string(),
                a.tid.to_string(),
                a.op.name().to_string(),
                src.to_string(),
                dst.to_string(),
                if aborted { 0 } else { a.off }.to_string(),
                a.len.to_string(),
                a.result.to_string(),
                status,
                error.to_string(),
                rule,
                src_id.unwrap_or("").to_string(),
                dst_id.unwrap_or("").to_string(),
            ];
            let row: Vec<String> = fields.iter().map(|f| csv(f)).collect();
            writeln!(out, "{}", row.join(","))?;
        }
        Entry::Summary {
            tier,
            st: s,
            src,
            dst,
            ..
        } => {
            let fields = [
                time_us(s.first),
                s.first.to_string(),
                String::new(),
                String::new(),
                String::new(),
                format!("summary:{}", tier.name()),
                src.to_string(),
                dst.to_string(),
                "0".into(),
                s.bytes.to_string(),
                s.count.to_string(),
                "committed".into(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ];
            let row: Vec<String> = fields.iter().map(|f| csv(f)).collect();
            writeln!(out, "{}", row.join(","))?;
        }
        Entry::Repair(_) | Entry::Restore(_) => {}
    }
    Ok(())
}

/// `jcs stats`.
pub fn stats(store: &Store, ve: Option<u64>, json: bool, strict: bool) -> Result<i32> {
    let s = query::stats::stats(&store.journal_dir(), ve)?;
    let skipped = warn_skipped(&s.skipped);
    // The version store: the pre-images apps with `[recovery] preimages = true` keep.
    let (objects, object_bytes) = std::fs::read_dir(store.layout.versions().join("objects"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .fold((0u64, 0u64), |(n, b), m| (n + 1, b + m.len()))
        })
        .unwrap_or((0, 0));
    if json {
        json::print(&json::Stats {
            stats: s,
            version_store: json::VersionStore {
                objects,
                bytes: object_bytes,
            },
        })?;
        return Ok(strict_code(strict, skipped));
    }
    // The summaries column only when a daemon summarized online.
    let summarized = s.ves.iter().any(|v| v.summaries > 0);
    let mut head = vec!["VE", "TRANSACTIONS", "INTEGRITY"];
    if summarized {
        head.push("T1 SUMMARIES");
    }
    head.extend([
        "SYSCALLS SEEN",
        "NOT RECORDED",
        "DROPPED",
        "LOST",
        "BY OPERATION",
    ]);
    let mut t = Table::new(&head);
    for v in &s.ves {
        let mut row = vec![
            v.ve.to_string(),
            v.transactions.to_string(),
            // Integrity records (the writes they stand for).
            format!("{} ({})", v.integrity_records, v.integrity_writes),
        ];
        if summarized {
            // Summaries (the flows they stand for).
            row.push(format!("{} ({})", v.summaries, v.summarized_flows));
        }
        t.row(
            [
                row,
                vec![
                    v.syscalls_seen.to_string(),
                    v.not_recorded().to_string(),
                    v.dropped_by_classification.to_string(),
                    v.records_lost.to_string(),
                    v.by_op
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                ],
            ]
            .concat(),
        );
    }
    t.print();
    let denied: Vec<_> = s.ves.iter().filter(|v| !v.denials.is_empty()).collect();
    if !denied.is_empty() {
        println!();
        let mut t = Table::new(&[
            "VE",
            "RULE",
            "DENIED (KERNEL)",
            "ABORTED (JOURNAL)",
            "MEANING",
        ]);
        for v in denied {
            for r in &v.denials {
                t.row(vec![
                    v.ve.to_string(),
                    format!("{} {}", r.rule, r.name),
                    r.counted
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "-".into()),
                    r.recorded.to_string(),
                    r.text.clone(),
                ]);
            }
        }
        t.print();
    }
    println!(
        "journal: {} bytes, {} transactions, {:.1} bytes per transaction (segment and block headers included)",
        s.journal_bytes, s.transactions, s.journal_bytes_per_transaction
    );
    println!("version store (pre-images): {objects} objects, {object_bytes} bytes");
    Ok(strict_code(strict, skipped))
}

/// How `jcs track` prints its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Tree,
    Json,
    Dot,
}

/// `jcs track back|forward`.
/// How `jcs track` prints: the format, or an SVG file; `strict`: exit 1 when part of the
/// journal could not be read.
#[derive(Debug)]
pub struct TrackPrint<'a> {
    pub format: Format,
    pub svg: Option<&'a std::path::Path>,
    pub strict: bool,
}

pub fn track(
    store: &Store,
    dir: Direction,
    q: &record::VarQuery,
    at_ns: Option<u64>,
    ves: Option<std::collections::HashSet<u64>>,
    source: Source,
    print: TrackPrint,
) -> Result<i32> {
    let a = query::track::track_store(store, dir, q, at_ns, ves, source)?;
    print_answer(a, print)
}

/// Prints a tracking answer (a host's or a fleet's); the exit code `--strict` asks for.
pub fn print_answer(a: query::track::Answer, print: TrackPrint) -> Result<i32> {
    let TrackPrint {
        format,
        svg,
        strict,
    } = print;
    let code = strict_code(strict, !a.skipped.is_empty());
    if !a.complete() && format != Format::Tree {
        // The tree says it in its first lines; JSON has `complete` and `gaps`; DOT and SVG
        // have no room for it: stderr.
        for l in a.gap_lines() {
            eprintln!("jcs: warning: incomplete answer: {l}");
        }
    }
    if let Some(path) = svg {
        std::fs::write(path, crate::svg::graph_svg(&a.to_json()))
            .map_err(|e| anyhow::anyhow!("write {}: {e}", path.display()))?;
        eprintln!("jcs: wrote {}", path.display());
        return Ok(code);
    }
    let mut out = std::io::stdout().lock();
    match format {
        Format::Dot => out.write_all(a.to_dot().as_bytes())?,
        Format::Json => {
            drop(out);
            json::print(&a.to_json())?
        }
        Format::Tree => a.write_tree(&mut out)?,
    }
    Ok(code)
}

/// `jcs summarize --dry-run`.
pub fn summarize_dry_run(
    store: &Store,
    views: &[query::summarize::View],
    policy: Option<&analysis::summary::FadePolicy>,
    json: bool,
) -> Result<()> {
    let rows = query::summarize::dry_run(&store.journal_dir(), views, policy, now_ns())?;
    if json {
        return json::print(&json::Tiers { tiers: rows });
    }
    let journal_bytes = rows.first().map_or(1, |r| r.bytes.max(1));
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
            r.bytes as f64 / journal_bytes as f64,
            r.what
        )?;
    }
    writeln!(out, "(dry run: nothing was rewritten)")?;
    Ok(())
}

/// `jcs summarize --tier T`.
pub fn summarize(
    store: &Store,
    tier: record::Tier,
    policy: Option<&analysis::summary::FadePolicy>,
    json: bool,
) -> Result<()> {
    let r = query::summarize::rewrite(
        &store.journal_dir(),
        tier,
        policy,
        now_ns(),
        &mut |k, n, a, b| {
            eprintln!("jcs: summarizing segments {a:016x}..{b:016x} ({k}/{n}) into {tier}")
        },
    )?;
    if let Some((name, seg)) = &r.unshipped {
        eprintln!(
            "jcs: segments from {seg:016x} on kept as they are: shipper {name} has not sent them yet \
             (journal/ship-{name}.mark; remove it to stop holding them for that shipper)"
        );
    } else if r.segments == 0 && r.kept.is_empty() {
        eprintln!("jcs: nothing to summarize: the only segment is the open one");
    }
    if json {
        return json::print(&r);
    }
    for k in &r.kept {
        eprintln!(
            "jcs: segments {:016x}..{:016x} kept as they are: their {tier} summary would take {} bytes, they take {}",
            k.first, k.last, k.summary_bytes, k.segment_bytes
        );
    }
    println!(
        "{tier}: {} segment(s) into {} summary file(s): {} transactions → {} summaries, {} → {} bytes",
        r.segments,
        r.files.len(),
        r.transactions_before,
        r.summaries_after,
        r.bytes_before,
        r.bytes_after
    );
    Ok(())
}

/// `jcs verify`: 0 when the journal is intact, 1 when a problem was found.
pub fn verify(store: &Store, json: bool) -> Result<i32> {
    verify_journal(&store.journal_dir(), Some(&store.catalog), json)
}

/// `jcs verify --dir DIR`: any journal directory (a copy `jcs collect` rebuilt).
pub fn verify_dir(dir: &std::path::Path, json: bool) -> Result<i32> {
    verify_journal(dir, None, json)
}

/// The variable definitions and names of a journal, as `jcs verify` reads them.
#[derive(Default)]
struct Dictionary {
    /// Variable → the identities the journal defines it as (a recorder writes a definition
    /// again, with the path the file had then: the identity is what must agree).
    defs: std::collections::HashMap<model::at::VarId, Vec<record::VarKey>>,
    /// (VE, path, time, bound) → the variables named so.
    names: std::collections::HashMap<(u64, String, u64, bool), Vec<model::at::VarId>>,
    name_records: u64,
}

impl Dictionary {
    fn visit(&mut self, r: &[u8]) {
        use record::tag;
        if !matches!(r.first(), Some(&(tag::VARS | tag::VARS_JSON | tag::NAMES))) {
            return;
        }
        match record::Record::decode(r) {
            Ok(record::Record::Vars(d)) => {
                for (id, def) in d {
                    let k = record::VarKey::of(&def);
                    let ks = self.defs.entry(id).or_default();
                    if !ks.contains(&k) {
                        ks.push(k);
                    }
                }
            }
            Ok(record::Record::Names(n)) => {
                for n in n {
                    self.name_records += 1;
                    let vs = self
                        .names
                        .entry((n.ve, n.path, n.time_ns, n.bound))
                        .or_default();
                    if !vs.contains(&n.var) {
                        vs.push(n.var);
                    }
                }
            }
            _ => {}
        }
    }

    /// The catalog against the journal's dictionary.
    fn check(&self, cat: &store::Catalog) -> Result<json::CatalogCheck> {
        let mut c = json::CatalogCheck {
            definitions: self.defs.len() as u64,
            names: self.name_records,
            ..Default::default()
        };
        let mut seen = std::collections::HashSet::new();
        for (id, def) in cat.all_vars()? {
            seen.insert(id);
            let k = record::VarKey::of(&def);
            match self.defs.get(&id) {
                None => c.extra_definitions += 1,
                Some(ks) if !ks.contains(&k) => c.differs.push(format!(
                    "variable {id}: the catalog defines it as {}, the journal as {}",
                    k.as_str(),
                    ks.iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(" or ")
                )),
                Some(_) => {}
            }
        }
        c.missing_definitions = self.defs.keys().filter(|id| !seen.contains(id)).count() as u64;
        let mut named = std::collections::HashSet::new();
        for n in cat.all_names()? {
            let key = (n.ve, n.path, n.time_ns, n.bound);
            match self.names.get(&key) {
                None => c.extra_names += 1,
                Some(vs) if !vs.contains(&n.var) => c.differs.push(format!(
                    "name {} in VE {} at {} ns: the catalog binds it to variable {}, the journal to {}",
                    key.1,
                    key.0,
                    key.2,
                    n.var,
                    vs.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(" or ")
                )),
                Some(_) => {
                    named.insert(key);
                }
            }
        }
        c.missing_names = self.names.keys().filter(|k| !named.contains(*k)).count() as u64;
        Ok(c)
    }
}

fn verify_journal(
    dir: &std::path::Path,
    catalog: Option<&store::Catalog>,
    json: bool,
) -> Result<i32> {
    if !dir.is_dir() {
        anyhow::bail!("{} is not a directory", dir.display());
    }
    let storage = journal::DirStorage::new(dir)
        .map_err(|e| anyhow::anyhow!("open the journal at {}: {e}", dir.display()))?;
    // On a terminal, a status line while it reads (a large journal takes a while).
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let started = std::time::Instant::now();
    let mut shown = false;
    let mut last = std::time::Duration::ZERO;
    let mut progress = |p: journal::VerifyProgress| {
        let now = started.elapsed();
        if !tty
            || now < std::time::Duration::from_millis(500)
            || now - last < std::time::Duration::from_millis(100)
        {
            return;
        }
        last = now;
        let line = match p {
            journal::VerifyProgress::Bytes { done, of } => {
                let done = done.min(of);
                format!(
                    "blocks: {} of {} MB ({}%)",
                    done >> 20,
                    of >> 20,
                    done * 100 / of.max(1)
                )
            }
            journal::VerifyProgress::Indexes { done, of } => {
                format!("indexes: {done} of {of} rebuilt and compared")
            }
        };
        eprint!("\r\x1b[2Kverify: {line}, {:.0}s", now.as_secs_f64());
        let _ = std::io::stderr().flush();
        shown = true;
    };
    let mut dict = Dictionary::default();
    let r = journal::verify_indexed(
        &storage,
        record::keys_of,
        &mut |rec| {
            if catalog.is_some() {
                dict.visit(rec)
            }
        },
        &mut progress,
    );
    if shown {
        eprint!("\r\x1b[2K");
    }
    let r = r?;
    let catalog = catalog.map(|c| dict.check(c)).transpose()?;
    let ok = r.ok() && catalog.as_ref().is_none_or(|c| c.differs.is_empty());
    if json {
        json::print(&json::Verified {
            journal: r,
            catalog,
        })?;
    } else {
        println!(
            "journal {}: {} segment(s), {} summary file(s), {} block(s), {} record(s), {} bytes",
            dir.display(),
            r.segments,
            r.summaries,
            r.blocks,
            r.records,
            r.bytes
        );
        println!("head {}", r.head);
        if let Some(p) = &r.first_problem {
            let block = p.block.map(|b| format!(" block {b}")).unwrap_or_default();
            println!(
                "PROBLEM in {}{block} at offset {}: {}",
                p.segment, p.offset, p.what
            );
        }
        for q in &r.quarantined {
            println!("QUARANTINED {q} (set aside by recovery; inspect it, JCS never deletes it)");
        }
        println!(
            "indexes: {} rebuilt from their segments and compared{}",
            r.indexes.checked,
            if r.indexes.unused.is_empty() {
                String::new()
            } else {
                format!(
                    ", {} not used by queries (the daemon rebuilds them)",
                    r.indexes.unused.len()
                )
            }
        );
        for w in &r.indexes.wrong {
            println!(
                "PROBLEM index {w} does not match its segment's records (a query through it could miss some): remove {}; the daemon rebuilds it",
                dir.join(w).display()
            );
        }
        if let Some(c) = &catalog {
            println!(
                "catalog: {} definitions and {} names of the journal compared{}",
                c.definitions,
                c.names,
                match (
                    c.missing_definitions + c.missing_names,
                    c.extra_definitions + c.extra_names
                ) {
                    (0, 0) => String::new(),
                    (m, e) => format!(
                        "; {m} not in the catalog (a failed catalog write: the daemon adds them back), {e} not in the journal (written just before the journal got them, left by a killed recorder, or added by hand)"
                    ),
                }
            );
            for d in &c.differs {
                println!("PROBLEM catalog: {d} (queries resolve through the catalog)");
            }
        }
        if ok {
            println!("ok");
        }
    }
    Ok(if ok { 0 } else { 1 })
}

/// The daemon's `--retain`: a thread that applies the retention policy to the journal every
/// `every_ns` (the first time a minute after the start, or sooner when `every_ns` is), and
/// logs what it did into the daemon's log.
pub fn retain_in_background(
    dir: std::path::PathBuf,
    policy: query::summarize::Retention,
    every_ns: u64,
) -> Result<()> {
    let every = std::time::Duration::from_nanos(every_ns.max(1_000_000));
    let first = every.min(std::time::Duration::from_secs(60));
    std::thread::Builder::new()
        .name("retain".into())
        .spawn(move || {
            std::thread::sleep(first);
            loop {
                let r = query::summarize::retain(&dir, &policy, now_ns(), &mut |line| {
                    tracing::info!("retain: {line}")
                });
                match r {
                    Ok(r)
                        if r.rewritten.iter().any(|w| !w.files.is_empty())
                            || !r.coarsened.is_empty() =>
                    {
                        tracing::info!(
                            bytes_before = r.bytes_before,
                            bytes_after = r.bytes_after,
                            "retain: journal summarized"
                        )
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "retain: the journal was not summarized"),
                }
                std::thread::sleep(every);
            }
        })?;
    Ok(())
}

/// The daemon's `--ship`: a thread that ships the journal as it grows, for as long as the
/// daemon lives; after a failure (the servers unreachable, the stream refusing) it logs and
/// tries again after a pause that grows to a minute.
pub fn ship_in_background(dir: std::path::PathBuf, opts: fleet::ship::ShipOptions) -> Result<()> {
    std::thread::Builder::new()
        .name("ship".into())
        .spawn(move || {
            static NEVER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            let mut pause = std::time::Duration::from_secs(1);
            loop {
                tracing::info!(to = %opts.servers, stream = %opts.stream, host = %opts.host, "ship: shipping the journal");
                match fleet::ship::ship(&dir, &opts, &NEVER, &mut |_| {}) {
                    Ok(_) => pause = std::time::Duration::from_secs(1),
                    Err(e) => tracing::warn!(error = %e, "ship: stopped; trying again in {pause:?}"),
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_secs(60));
            }
        })
        .map_err(|e| anyhow::anyhow!("start the shipping thread: {e}"))?;
    Ok(())
}

/// `jcs ship`.
pub fn ship(store: &Store, opts: &fleet::ship::ShipOptions, json: bool) -> Result<i32> {
    let stop = stop_on_interrupt();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut last = std::time::Instant::now();
    let r = fleet::ship::ship(&store.journal_dir(), opts, stop, &mut |r| {
        if tty && last.elapsed() > std::time::Duration::from_millis(500) {
            last = std::time::Instant::now();
            eprint!(
                "\rjcs: shipped {} pieces, {} bytes, {} blocks in all   ",
                r.pieces, r.bytes, r.blocks_total
            );
        }
    })?;
    if tty {
        eprintln!();
    }
    if json {
        json::print(&r)?;
        return Ok(0);
    }
    println!(
        "host {} → stream {}: {} piece(s) ({} message(s), {} bytes) shipped{}{}",
        r.host,
        r.stream,
        r.pieces,
        r.messages,
        r.bytes,
        if r.duplicates > 0 {
            format!(", {} re-sent piece(s) dropped by the stream", r.duplicates)
        } else {
            String::new()
        },
        if r.retries > 0 {
            format!(", {} retried failure(s)", r.retries)
        } else {
            String::new()
        },
    );
    println!(
        "{} block(s) shipped in all; head {}",
        r.blocks_total, r.head
    );
    Ok(0)
}

/// `jcs collect`: 0, or 3 on an alarm (a chain that does not verify).
pub fn collect(
    opts: &fleet::collect::CollectOptions,
    clickhouse: Option<fleet::clickhouse::ClickHouse>,
    json: bool,
) -> Result<i32> {
    let stop = stop_on_interrupt();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut progress = |h: &fleet::collect::HostReport| {
        if tty {
            eprint!(
                "\rjcs: {}: {} blocks, {} records   ",
                h.host, h.blocks, h.records
            );
        }
    };
    // A sink per host: ClickHouse's, or none (the copy only).
    let make_sink = || -> fleet::Result<Box<dyn fleet::collect::Sink>> {
        Ok(match &clickhouse {
            Some(c) => Box::new(fleet::clickhouse::ClickHouseSink::new(c.clone())?),
            None => Box::new(fleet::collect::NoSink),
        })
    };
    let r = if opts.follow && opts.hosts.len() != 1 {
        // Every host (or those named), each with a consumer of its own, until Ctrl-C.
        fleet::collect::follow_every_host(opts, stop, &make_sink, &mut progress)
    } else {
        make_sink()
            .and_then(|mut sink| fleet::collect::collect(opts, stop, sink.as_mut(), &mut progress))
    };
    if tty {
        eprintln!();
    }
    let r = match r {
        Ok(r) => r,
        Err(e @ fleet::FleetError::Alarm { .. }) => {
            eprintln!("jcs: {e}");
            return Ok(3);
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        json::print(&r)?;
        return Ok(0);
    }
    if r.is_empty() {
        println!("stream {}: no host has shipped to it", opts.stream);
    }
    for h in &r {
        println!(
            "host {}: {} piece(s) taken in{}{} — {} block(s), {} record(s) in all; head {}; copy in {}",
            h.host,
            h.pieces,
            if h.skipped > 0 { format!(" ({} redelivered, skipped)", h.skipped) } else { String::new() },
            if h.waited > 0 { format!(" ({} out of the stream's order, put back in the journal's)", h.waited) } else { String::new() },
            h.blocks,
            h.records,
            h.head,
            h.journal.display()
        );
    }
    if let Some(c) = &clickhouse {
        println!(
            "{} transaction(s) loaded into ClickHouse database {}",
            r.iter().map(|h| h.loaded).sum::<u64>(),
            c.database()
        );
    }
    Ok(0)
}

/// A flag set by the first Ctrl-C or SIGTERM (a second one ends the process as usual).
fn stop_on_interrupt() -> &'static std::sync::atomic::AtomicBool {
    static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    extern "C" fn on_signal(_: libc::c_int) {
        STOP.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    // SAFETY: the handler only stores to an atomic (async-signal-safe); SA_RESETHAND restores
    // the default action for a second signal.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        sa.sa_flags = libc::SA_RESETHAND;
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
    }
    &STOP
}

/// `jcs export`: jsonl and csv are the log's own; parquet and cdm come from `fleet::export`.
pub fn export(
    store: &Store,
    format: &str,
    output: Option<&std::path::Path>,
    since_ns: Option<u64>,
    until_ns: Option<u64>,
    ves: Option<std::collections::HashSet<u64>>,
    host: &str,
) -> Result<i32> {
    let create = |p: &std::path::Path| {
        std::fs::File::create(p).map_err(|e| anyhow::anyhow!("create {}: {e}", p.display()))
    };
    let mut out: Box<dyn Write> = match (format, output) {
        ("parquet", _) => Box::new(std::io::sink()),
        (_, Some(p)) => Box::new(std::io::BufWriter::new(create(p)?)),
        (_, None) => Box::new(std::io::stdout().lock()),
    };
    let filter = fleet::export::Filter {
        since_ns,
        until_ns,
        ves: ves.clone(),
    };
    let (what, n) = match format {
        "jsonl" | "csv" => {
            let f = Filter {
                since_ns,
                until_ns,
                ves,
                ..Default::default()
            };
            let fmt = if format == "csv" {
                LogFormat::Csv
            } else {
                LogFormat::Json
            };
            let code = log_to(store, f, fmt, false, false, &mut out)?;
            out.flush()?;
            return Ok(code);
        }
        "parquet" => {
            let path = output.expect("checked by the caller");
            let c = fleet::export::Contents::read(&store.journal_dir())?;
            ("rows", fleet::export::parquet(&c, &filter, create(path)?)?)
        }
        _ => {
            let c = fleet::export::Contents::read(&store.journal_dir())?;
            (
                "CDM records",
                fleet::export::cdm(&c, &filter, host, &mut out)?,
            )
        }
    };
    out.flush()?;
    if let Some(p) = output {
        eprintln!("jcs: {n} {what} written to {}", p.display());
    }
    Ok(0)
}
