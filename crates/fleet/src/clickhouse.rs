//! Loading collected journals into ClickHouse, through its HTTP interface (`jcs collect --to
//! clickhouse://HOST:PORT[/DATABASE]`).
//!
//! Tables (docs/fleet.md), all `ReplacingMergeTree`, so a block loaded twice (a collector that
//! died between its insert and its state) collapses into one on merge — queries that must not
//! count twice use `FINAL`:
//! - `jcs_tx`: every transaction, ordered by (host, ve, time): what a VE did.
//! - `jcs_tx_var`: every transaction twice, once per variable it touches (`var`, `role`
//!   src/dst), ordered by (host, var, time): what reached a variable and what it reached, the
//!   scans of backward and forward tracking.
//! - `jcs_gaps`: the gap transactions again (few): what every tracking answer must know of.
//! - `jcs_vars`: each host's variable dictionary (id → kind, key, label, and the definition as
//!   JSON); `jcs_names`: the names files got and lost (path inside a VE, store-level name).
//! - `jcs_ves`: each host's VEs (app, version, name, when recording started); `jcs_ve_stats`
//!   their kernel counters at the end; `jcs_hosts`: each host's chain as collected (blocks,
//!   records, head; the row with the most blocks stays).
//! - `jcs_summaries`: summaries (integrity records, T1 online, summary files), by (host, dst, first).
//!
//! Columns are signed (`Int64`): what Spark, DuckDB and ClickHouse all read the same way.
//! The HTTP client is a few lines over `std::net` (one POST per statement, `Connection: close`).

use crate::{FleetError, Result};
use model::at::{VarDef, VarId};
use record::{Record, VarKey};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A ClickHouse server's HTTP interface and the database to use.
#[derive(Debug, Clone)]
pub struct ClickHouse {
    addr: String,
    database: String,
}

impl ClickHouse {
    /// `clickhouse://HOST:PORT[/DATABASE]` or `http://HOST:PORT[/DATABASE]` (the HTTP port,
    /// 8123 by default; database `jcs` by default).
    pub fn parse(url: &str) -> Result<ClickHouse> {
        let rest = url
            .strip_prefix("clickhouse://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| {
                FleetError::Usage(format!(
                    "{url:?}: a ClickHouse HTTP address, clickhouse://HOST:PORT[/DATABASE]"
                ))
            })?;
        let (hostport, db) = rest.split_once('/').unwrap_or((rest, ""));
        let addr = if hostport.contains(':') {
            hostport.to_string()
        } else {
            format!("{hostport}:8123")
        };
        let database = if db.is_empty() { "jcs" } else { db }.to_string();
        if !database
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(FleetError::Usage(format!(
                "database name {database:?}: letters, digits and '_'"
            )));
        }
        Ok(ClickHouse { addr, database })
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    /// Runs one statement (`body`: the statement, then any data) and returns the response.
    pub fn query(&self, body: &[u8]) -> Result<String> {
        let stmt: String = String::from_utf8_lossy(&body[..body.len().min(120)])
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        let err = |what: String| FleetError::Nats {
            servers: format!("clickhouse {}", self.addr),
            what,
        };
        let mut s = TcpStream::connect(&self.addr).map_err(|e| err(format!("connect: {e}")))?;
        s.set_read_timeout(Some(Duration::from_secs(60))).ok();
        let head = format!(
            "POST /?database={} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.database,
            self.addr,
            body.len()
        );
        s.write_all(head.as_bytes())
            .and_then(|()| s.write_all(body))
            .map_err(|e| err(format!("send: {e}")))?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp)
            .map_err(|e| err(format!("read: {e}")))?;
        let split = resp
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| err("a response without headers".into()))?;
        let headers = String::from_utf8_lossy(&resp[..split]).to_string();
        let mut body = resp[split + 4..].to_vec();
        if headers
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            body = dechunk(&body).ok_or_else(|| err("a malformed chunked response".into()))?;
        }
        let text = String::from_utf8_lossy(&body).to_string();
        let status = headers.split(' ').nth(1).unwrap_or("");
        if status != "200" {
            return Err(err(format!("HTTP {status}: {} (in: {stmt})", text.trim())));
        }
        Ok(text)
    }

    /// Creates the database and the tables when missing.
    pub fn create_tables(&self) -> Result<()> {
        let db = ClickHouse {
            database: "default".into(),
            ..self.clone()
        };
        db.query(format!("CREATE DATABASE IF NOT EXISTS {}", self.database).as_bytes())?;
        for t in TABLES {
            self.query(t.as_bytes())?;
        }
        Ok(())
    }
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line = b.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&b[..line]).ok()?.trim(), 16).ok()?;
        b = &b[line + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

const TABLES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS jcs_tx (host String, seq Int64, k Int64, time_ns Int64, ve Int64, \
     pid Int64, tid Int64, op String, status String, src Int64, dst Int64, off Int64, len Int64, \
     result Int64) ENGINE = ReplacingMergeTree() ORDER BY (host, ve, time_ns, seq, k)",
    "CREATE TABLE IF NOT EXISTS jcs_tx_var (host String, var Int64, role String, time_ns Int64, \
     seq Int64, k Int64, ve Int64, op String, status String, src Int64, dst Int64, off Int64, \
     len Int64) ENGINE = ReplacingMergeTree() ORDER BY (host, var, time_ns, role, seq, k)",
    "CREATE TABLE IF NOT EXISTS jcs_gaps (host String, seq Int64, k Int64, time_ns Int64, ve Int64, \
     off Int64, len Int64, result Int64) ENGINE = ReplacingMergeTree() ORDER BY (host, time_ns, seq, k)",
    "CREATE TABLE IF NOT EXISTS jcs_vars (host String, id Int64, kind String, key String, \
     label String, def String) ENGINE = ReplacingMergeTree() ORDER BY (host, id)",
    "CREATE TABLE IF NOT EXISTS jcs_names (host String, seq Int64, k Int64, time_ns Int64, \
     ve Int64, var Int64, path String, store String, bound Int64) \
     ENGINE = ReplacingMergeTree() ORDER BY (host, var, time_ns, seq, k)",
    "CREATE TABLE IF NOT EXISTS jcs_ves (host String, ve Int64, app String, app_version Int64, \
     name String, started_ns Int64) ENGINE = ReplacingMergeTree() ORDER BY (host, ve)",
    "CREATE TABLE IF NOT EXISTS jcs_ve_stats (host String, ve Int64, seen Int64, emitted Int64, \
     lost Int64, dropped Int64) ENGINE = ReplacingMergeTree() ORDER BY (host, ve)",
    "CREATE TABLE IF NOT EXISTS jcs_hosts (host String, blocks Int64, records Int64, head String, \
     collected_ns Int64) ENGINE = ReplacingMergeTree(blocks) ORDER BY host",
    "CREATE TABLE IF NOT EXISTS jcs_summaries (host String, seq Int64, k Int64, tier String, \
     src Int64, dst Int64, first_ns Int64, last_ns Int64, count Int64, bytes Int64, \
     src_part String, dst_part String) \
     ENGINE = ReplacingMergeTree() ORDER BY (host, dst, first_ns, seq, k)",
];

/// A summary's part of a variable as a column holds it: `whole`, or byte ranges `A-B,C-D`.
pub fn part_text(p: &analysis::Part) -> String {
    match p {
        analysis::Part::Whole => "whole".into(),
        analysis::Part::Bytes(rs) => rs
            .iter()
            .map(|(a, b)| format!("{a}-{b}"))
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// The part [`part_text`] wrote (anything else: the whole variable, which never loses a
/// dependency).
pub fn parse_part(s: &str) -> analysis::Part {
    let ranges: Option<Vec<(u64, u64)>> = s
        .split(',')
        .map(|r| {
            let (a, b) = r.split_once('-')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect();
    match ranges {
        Some(rs) if s != "whole" && !s.is_empty() => analysis::Part::Bytes(rs),
        _ => analysis::Part::Whole,
    }
}

/// A variable's kind, as the tables name it.
pub fn kind(d: &VarDef) -> &'static str {
    match d {
        VarDef::File { .. } | VarDef::Path { .. } | VarDef::Inode { .. } => "file",
        VarDef::Endpoint { .. } => "endpoint",
        VarDef::Flow { .. } => "flow",
        VarDef::Unix { .. } => "unix",
        VarDef::Memory { .. } => "ve",
    }
}

/// Rows waiting to be inserted, as TabSeparated text per table.
#[derive(Debug, Default)]
pub struct Rows {
    tx: String,
    tx_var: String,
    vars: String,
    names: String,
    gaps: String,
    ves: String,
    ve_stats: String,
    summaries: String,
    pub transactions: u64,
}

/// A value for TabSeparated: tabs, newlines and backslashes escaped.
fn tsv(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '\t' => o.push_str("\\t"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\0' => o.push_str("\\0"),
            c => o.push(c),
        }
    }
    o
}

fn i(v: impl Into<u64>) -> i64 {
    v.into() as i64
}

impl Rows {
    /// Adds one block's records (the record at index `j` has sequence number `first_seq + j`).
    /// A record that does not decode is an error: the block verified, so it is not damage in
    /// transit but a format this collector does not know.
    pub fn add_block(&mut self, host: &str, first_seq: u64, records: &[Vec<u8>]) -> Result<()> {
        use std::fmt::Write as _;
        let h = tsv(host);
        for (j, r) in records.iter().enumerate() {
            let seq = i(first_seq + j as u64);
            let rec = Record::decode(r).map_err(|e| {
                FleetError::Usage(format!("host {host}: record {seq} does not decode: {e}"))
            })?;
            match rec {
                Record::Vars(defs) => {
                    for (id, d) in defs {
                        self.var(&h, id, &d);
                    }
                }
                Record::Ats(ats) => {
                    for (k, a) in ats.iter().enumerate() {
                        let (op, st) = (a.op.name(), a.status.name());
                        let _ = writeln!(
                            self.tx,
                            "{h}\t{seq}\t{k}\t{}\t{}\t{}\t{}\t{op}\t{st}\t{}\t{}\t{}\t{}\t{}",
                            i(a.time_ns),
                            i(a.ve),
                            a.pid,
                            a.tid,
                            i(a.src),
                            i(a.dst),
                            i(a.off),
                            i(a.len),
                            a.result
                        );
                        for (var, role) in [(a.src, "src"), (a.dst, "dst")] {
                            if var == 0 {
                                continue;
                            }
                            let _ = writeln!(
                                self.tx_var,
                                "{h}\t{}\t{role}\t{}\t{seq}\t{k}\t{}\t{op}\t{st}\t{}\t{}\t{}\t{}",
                                i(var),
                                i(a.time_ns),
                                i(a.ve),
                                i(a.src),
                                i(a.dst),
                                i(a.off),
                                i(a.len)
                            );
                        }
                        if a.op == model::at::Op::Gap {
                            let _ = writeln!(
                                self.gaps,
                                "{h}\t{seq}\t{k}\t{}\t{}\t{}\t{}\t{}",
                                i(a.time_ns),
                                i(a.ve),
                                i(a.off),
                                i(a.len),
                                a.result
                            );
                        }
                        self.transactions += 1;
                    }
                }
                Record::Summaries { tier, sts } => {
                    for (k, s) in sts.iter().enumerate() {
                        let _ = writeln!(
                            self.summaries,
                            "{h}\t{seq}\t{k}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                            tier.name(),
                            i(s.src),
                            i(s.dst),
                            i(s.first),
                            i(s.last),
                            i(s.count),
                            i(s.bytes),
                            part_text(&s.src_part),
                            part_text(&s.dst_part)
                        );
                    }
                }
                Record::Ve(v) => {
                    let _ = writeln!(
                        self.ves,
                        "{h}\t{}\t{}\t{}\t{}\t{}",
                        i(v.ve),
                        tsv(&v.app),
                        i(v.app_version),
                        tsv(v.name.as_deref().unwrap_or("")),
                        i(v.time_ns)
                    );
                }
                Record::Stats(s) => {
                    let _ = writeln!(
                        self.ve_stats,
                        "{h}\t{}\t{}\t{}\t{}\t{}",
                        i(s.ve),
                        i(s.seen),
                        i(s.emitted),
                        i(s.lost),
                        i(s.dropped)
                    );
                }
                Record::Names(names) => {
                    for (k, n) in names.iter().enumerate() {
                        let _ = writeln!(
                            self.names,
                            "{h}\t{seq}\t{k}\t{}\t{}\t{}\t{}\t{}\t{}",
                            i(n.time_ns),
                            i(n.ve),
                            i(n.var),
                            tsv(&n.path),
                            tsv(n.store.as_deref().unwrap_or("")),
                            i(n.bound)
                        );
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn var(&mut self, h: &str, id: VarId, d: &VarDef) {
        use std::fmt::Write as _;
        let _ = writeln!(
            self.vars,
            "{h}\t{}\t{}\t{}\t{}\t{}",
            i(id),
            kind(d),
            tsv(VarKey::of(d).as_str()),
            tsv(&d.to_string()),
            tsv(&serde_json::to_string(d).expect("a definition serializes"))
        );
    }

    pub fn is_empty(&self) -> bool {
        [
            &self.tx,
            &self.vars,
            &self.summaries,
            &self.names,
            &self.gaps,
            &self.ves,
            &self.ve_stats,
        ]
        .iter()
        .all(|t| t.is_empty())
    }

    /// Inserts everything held and empties it.
    pub fn flush(&mut self, ch: &ClickHouse) -> Result<()> {
        for (table, data) in [
            ("jcs_vars", &mut self.vars),
            ("jcs_names", &mut self.names),
            ("jcs_gaps", &mut self.gaps),
            ("jcs_ves", &mut self.ves),
            ("jcs_ve_stats", &mut self.ve_stats),
            ("jcs_tx", &mut self.tx),
            ("jcs_tx_var", &mut self.tx_var),
            ("jcs_summaries", &mut self.summaries),
        ] {
            if data.is_empty() {
                continue;
            }
            let mut body = format!("INSERT INTO {table} FORMAT TabSeparated\n").into_bytes();
            body.extend_from_slice(data.as_bytes());
            ch.query(&body)?;
            data.clear();
        }
        Ok(())
    }
}

/// The collector's sink that loads ClickHouse: rows are held until [`crate::collect::Sink::commit`]
/// (before the collector saves its state), so a crash re-inserts at most what the state had
/// not recorded, which the tables' replacing merge collapses.
#[derive(Debug)]
pub struct ClickHouseSink {
    pub ch: ClickHouse,
    pub rows: Rows,
    pub loaded: u64,
}

impl ClickHouseSink {
    pub fn new(ch: ClickHouse) -> Result<ClickHouseSink> {
        ch.create_tables()?;
        Ok(ClickHouseSink {
            ch,
            rows: Rows::default(),
            loaded: 0,
        })
    }
}

impl crate::collect::Sink for ClickHouseSink {
    fn block(
        &mut self,
        host: &str,
        header: &journal::format::BlockHeader,
        _summary: bool,
        records: Vec<Vec<u8>>,
    ) -> Result<()> {
        self.rows.add_block(host, header.first_seq, &records)
    }

    fn commit(&mut self, host: &crate::collect::HostReport) -> Result<()> {
        self.loaded += self.rows.transactions;
        self.rows.transactions = 0;
        self.rows.flush(&self.ch)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        let row = format!(
            "INSERT INTO jcs_hosts FORMAT TabSeparated\n{}\t{}\t{}\t{}\t{now}\n",
            tsv(&host.host),
            i(host.blocks),
            i(host.records),
            host.head
        );
        self.ch.query(row.as_bytes()).map(|_| ())
    }

    fn discard(&mut self) {
        self.rows = Rows::default();
    }

    fn loaded(&self) -> u64 {
        self.loaded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_escaping() {
        let c = ClickHouse::parse("clickhouse://127.0.0.1:9123/fleet").unwrap();
        assert_eq!((c.addr.as_str(), c.database()), ("127.0.0.1:9123", "fleet"));
        let c = ClickHouse::parse("http://ch").unwrap();
        assert_eq!((c.addr.as_str(), c.database()), ("ch:8123", "jcs"));
        assert!(ClickHouse::parse("nats://x").is_err());
        assert!(ClickHouse::parse("clickhouse://x/a;b").is_err());
        assert_eq!(tsv("a\tb\nc\\"), "a\\tb\\nc\\\\");
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
        for p in [
            analysis::Part::Whole,
            analysis::Part::Bytes(vec![(0, 5), (9, 12)]),
        ] {
            assert_eq!(parse_part(&part_text(&p)), p);
        }
    }

    #[test]
    fn rows_of_a_block() {
        let defs = vec![
            (1, VarDef::Memory { ve: 7 }),
            (
                2,
                VarDef::Inode {
                    dev: 1,
                    ino: 2,
                    gen: 3,
                    name: Some("/data/a\tb".into()),
                },
            ),
        ];
        let at = model::at::At {
            time_ns: 5,
            ve: 7,
            src: 2,
            dst: 1,
            op: model::at::Op::Read,
            len: 10,
            ..model::at::At::ZERO
        };
        let recs = vec![Record::Vars(defs).encode(), Record::Ats(vec![at]).encode()];
        let mut r = Rows::default();
        r.add_block("h", 100, &recs).unwrap();
        assert_eq!(r.transactions, 1);
        assert_eq!(r.vars.lines().count(), 2);
        assert!(r.vars.contains("/data/a\\tb"), "{}", r.vars);
        assert_eq!(
            r.tx.trim(),
            "h\t101\t0\t5\t7\t0\t0\tread\tcommitted\t2\t1\t0\t10\t0"
        );
        assert_eq!(r.tx_var.lines().count(), 2);
        assert!(r.add_block("h", 0, &[vec![0xff]]).is_err());
    }
}
