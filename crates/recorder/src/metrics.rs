//! The daemon's Prometheus endpoint (`jcs daemon --metrics 127.0.0.1:9464`): `GET /metrics`
//! answers the text exposition format (version 0.0.4). The monitor loop counts into
//! [`Metrics`] (atomics: nothing on its path waits for a scrape); what is on disk (journal
//! size, shipping lag) is read when scraped. Names and meanings: docs/metrics.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// Operations counted by their `model::at::Op` code.
const OPS: usize = 32;

/// What the recorder counts for the endpoint.
#[derive(Debug)]
pub struct Metrics {
    /// Records decoded from the ring buffer.
    pub events: AtomicU64,
    /// Transactions written, by operation code.
    pub transactions: [AtomicU64; OPS],
    /// Integrity records and T1 summaries written.
    pub integrity_records: AtomicU64,
    pub summaries: AtomicU64,
    /// VEs watched since the start, and now.
    pub ve_starts: AtomicU64,
    pub watched: AtomicU64,
    /// The kernel's counters (all VEs): calls seen, skipped (not recorded), records emitted
    /// and lost (the ring buffer was full).
    pub kernel_seen: AtomicU64,
    pub kernel_skipped: AtomicU64,
    pub kernel_emitted: AtomicU64,
    pub kernel_lost: AtomicU64,
    /// The ring buffer: bytes waiting to be read, and its size.
    pub ring_used: AtomicU64,
    pub ring_size: AtomicU64,
    /// Gap transactions written (a VE's record lost something).
    pub gaps: AtomicU64,
    /// Transactions dropped on a full disk.
    pub dropped_disk_full: AtomicU64,
    /// Records the kernel could not deliver, by VE (only VEs that lost any).
    pub lost_by_ve: Mutex<BTreeMap<u64, u64>>,
    /// Gaps written, by VE.
    pub gaps_by_ve: Mutex<BTreeMap<u64, u64>>,
    /// When the daemon started (seconds since the epoch).
    pub start_time: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            events: AtomicU64::new(0),
            transactions: std::array::from_fn(|_| AtomicU64::new(0)),
            integrity_records: AtomicU64::new(0),
            summaries: AtomicU64::new(0),
            ve_starts: AtomicU64::new(0),
            watched: AtomicU64::new(0),
            kernel_seen: AtomicU64::new(0),
            kernel_skipped: AtomicU64::new(0),
            kernel_emitted: AtomicU64::new(0),
            kernel_lost: AtomicU64::new(0),
            ring_used: AtomicU64::new(0),
            ring_size: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            dropped_disk_full: AtomicU64::new(0),
            lost_by_ve: Mutex::new(BTreeMap::new()),
            gaps_by_ve: Mutex::new(BTreeMap::new()),
            start_time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}

impl Metrics {
    /// Counts the transactions of a batch.
    /// Counts the transactions of a batch: per operation in a local array, then one atomic
    /// add per operation present (not one per transaction: this is the daemon's hot path).
    pub fn count_ats(&self, ats: &[model::at::At]) {
        let mut by_op = [0u64; OPS];
        for a in ats {
            by_op[(a.op as usize).min(OPS - 1)] += 1;
        }
        for (n, counter) in by_op.iter().zip(&self.transactions) {
            if *n > 0 {
                counter.fetch_add(*n, Relaxed);
            }
        }
        if by_op[model::at::Op::Gap as usize] == 0 {
            return;
        }
        for a in ats {
            if a.op == model::at::Op::Gap {
                self.gaps.fetch_add(1, Relaxed);
                *self
                    .gaps_by_ve
                    .lock()
                    .expect("not poisoned")
                    .entry(a.ve)
                    .or_default() += 1;
            }
        }
    }

    /// Records what one VE lost (at its end).
    pub fn lost(&self, ve: u64, n: u64) {
        if n > 0 {
            *self
                .lost_by_ve
                .lock()
                .expect("not poisoned")
                .entry(ve)
                .or_default() += n;
        }
    }

    /// The exposition text; `journal`: the journal directory (its size and the shippers' lag
    /// are read now).
    pub fn render(&self, journal: &Path) -> String {
        let mut o = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in samples {
                let _ = writeln!(o, "{name}{labels} {v}");
            }
        };
        let one = |v: &AtomicU64| vec![(String::new(), v.load(Relaxed))];
        metric(
            "jcs_events_total",
            "counter",
            "Records decoded from the kernel's ring buffer.",
            &one(&self.events),
        );
        let by_op: Vec<(String, u64)> = model::at::Op::names()
            .iter()
            .filter_map(|n| model::at::Op::from_name(n))
            .map(|op| {
                (
                    format!("{{op=\"{}\"}}", op.name()),
                    self.transactions[(op as usize).min(OPS - 1)].load(Relaxed),
                )
            })
            .collect();
        metric(
            "jcs_transactions_total",
            "counter",
            "Transactions written to the journal, by operation.",
            &by_op,
        );
        metric(
            "jcs_integrity_records_total",
            "counter",
            "Integrity records (writes into VEs' dirties) written.",
            &one(&self.integrity_records),
        );
        metric(
            "jcs_summaries_total",
            "counter",
            "T1 summaries written by online summarization.",
            &one(&self.summaries),
        );
        metric(
            "jcs_ve_starts_total",
            "counter",
            "VEs the daemon started recording.",
            &one(&self.ve_starts),
        );
        metric(
            "jcs_ves_watched",
            "gauge",
            "VEs being recorded now.",
            &one(&self.watched),
        );
        metric(
            "jcs_kernel_calls_seen_total",
            "counter",
            "System calls of watched VEs the kernel saw.",
            &one(&self.kernel_seen),
        );
        metric(
            "jcs_kernel_calls_skipped_total",
            "counter",
            "Calls the kernel counted but did not send (nothing crossed the boundary).",
            &one(&self.kernel_skipped),
        );
        metric(
            "jcs_kernel_records_emitted_total",
            "counter",
            "Records the kernel put into the ring buffer.",
            &one(&self.kernel_emitted),
        );
        metric("jcs_kernel_records_lost_total", "counter", "Records the kernel could not put into the full ring buffer (each VE's loss is a gap in its record).", &one(&self.kernel_lost));
        metric(
            "jcs_ring_buffer_used_bytes",
            "gauge",
            "Bytes waiting in the ring buffer when last polled.",
            &one(&self.ring_used),
        );
        metric(
            "jcs_ring_buffer_size_bytes",
            "gauge",
            "The ring buffer's size.",
            &one(&self.ring_size),
        );
        metric(
            "jcs_gaps_total",
            "counter",
            "Gap transactions written (a VE's record lost something).",
            &one(&self.gaps),
        );
        metric(
            "jcs_disk_full_dropped_total",
            "counter",
            "Transactions dropped while the store's disk was full (each VE's loss is a gap).",
            &one(&self.dropped_disk_full),
        );
        let per_ve = |m: &Mutex<BTreeMap<u64, u64>>| -> Vec<(String, u64)> {
            m.lock()
                .expect("not poisoned")
                .iter()
                .map(|(ve, n)| (format!("{{ve=\"{ve}\"}}"), *n))
                .collect()
        };
        metric(
            "jcs_ve_records_lost_total",
            "counter",
            "Records lost by VE (only VEs that lost any).",
            &per_ve(&self.lost_by_ve),
        );
        metric(
            "jcs_ve_gaps_total",
            "counter",
            "Gaps written by VE (only VEs with any).",
            &per_ve(&self.gaps_by_ve),
        );
        let listing = Listing::read(journal);
        let bytes = listing.files.iter().map(|f| f.1).sum();
        metric(
            "jcs_journal_bytes",
            "gauge",
            "Bytes of the journal's segments and summary files.",
            &[(String::new(), bytes)],
        );
        let segs = listing
            .files
            .iter()
            .filter(|f| f.0.ends_with(".seg"))
            .count() as u64;
        metric(
            "jcs_journal_segments",
            "gauge",
            "Segments in the journal.",
            &[(String::new(), segs)],
        );
        metric("jcs_ship_lag_bytes", "gauge", "Bytes of the journal a shipper (jcs ship, --ship) has not had acknowledged, by stream.", &listing.ship_lag());
        metric(
            "jcs_start_time_seconds",
            "gauge",
            "When the daemon started, in seconds since the epoch.",
            &[(String::new(), self.start_time)],
        );
        o
    }
}

/// The journal directory as a scrape sees it: its segments and summary files (name, length) in
/// chain order, and the shippers' states.
struct Listing {
    files: Vec<(String, u64)>,
    states: Vec<(String, std::path::PathBuf)>,
}

impl Listing {
    fn read(journal: &Path) -> Listing {
        let mut l = Listing {
            files: Vec::new(),
            states: Vec::new(),
        };
        for e in std::fs::read_dir(journal).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.ends_with(".seg") || n.ends_with(".sum") {
                l.files.push((n, e.metadata().map_or(0, |m| m.len())));
            } else if let Some(stream) = n
                .strip_prefix("ship-")
                .and_then(|s| s.strip_suffix(".state"))
            {
                l.states.push((stream.to_string(), e.path()));
            }
        }
        l.files.sort_by_key(|f| journal::ship::file_order(&f.0));
        l
    }

    /// Per shipper: the journal's bytes after its cursor.
    fn ship_lag(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for (stream, path) in &self.states {
            let Some(state) = std::fs::read(path)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            else {
                continue;
            };
            let cursor = state["follower"]["file"]
                .as_str()
                .map(journal::ship::file_order);
            let offset = state["follower"]["offset"].as_u64().unwrap_or(0);
            let lag: u64 = self
                .files
                .iter()
                .map(
                    |(name, len)| match cursor.map(|c| journal::ship::file_order(name).cmp(&c)) {
                        None | Some(std::cmp::Ordering::Greater) => *len,
                        Some(std::cmp::Ordering::Equal) => len.saturating_sub(offset),
                        Some(std::cmp::Ordering::Less) => 0,
                    },
                )
                .sum();
            out.push((format!("{{stream=\"{stream}\"}}"), lag));
        }
        out
    }
}

/// Serves `GET /metrics` on `addr` in a thread of its own, for as long as the daemon lives.
pub fn serve(addr: SocketAddr, m: Arc<Metrics>, journal: PathBuf) -> std::io::Result<SocketAddr> {
    let l = TcpListener::bind(addr)?;
    let local = l.local_addr()?;
    std::thread::Builder::new().name("jcs-metrics".into()).spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let mut line = String::new();
            // (A request's head is short: a client that sends more is cut off.)
            let mut r = BufReader::new(match conn.try_clone() {
                Ok(c) => std::io::Read::take(c, 16 << 10),
                Err(_) => continue,
            });
            if r.read_line(&mut line).is_err() {
                continue;
            }
            // The rest of the request's head.
            let mut h = String::new();
            while r.read_line(&mut h).is_ok_and(|n| n > 2) {
                h.clear();
            }
            let path = line.split_whitespace().nth(1).unwrap_or("");
            let (status, ctype, body) = if line.starts_with("GET ") && (path == "/metrics" || path.starts_with("/metrics?")) {
                ("200 OK", "text/plain; version=0.0.4; charset=utf-8", m.render(&journal))
            } else {
                ("404 Not Found", "text/plain; charset=utf-8", "GET /metrics\n".to_string())
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    })?;
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_metric_with_help_and_type() {
        let m = Metrics::default();
        m.events.fetch_add(5, Relaxed);
        m.count_ats(&[
            model::at::At {
                op: model::at::Op::Write,
                ..model::at::At::ZERO
            },
            model::at::At {
                op: model::at::Op::Gap,
                ve: 4,
                ..model::at::At::ZERO
            },
        ]);
        m.lost(4, 7);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("0000000000000000.seg"), vec![0u8; 1000]).unwrap();
        std::fs::write(dir.path().join("0000000000000001.seg"), vec![0u8; 500]).unwrap();
        std::fs::write(
            dir.path().join("ship-JOURNAL.state"),
            r#"{"follower":{"file":"0000000000000000.seg","offset":600}}"#,
        )
        .unwrap();
        let t = m.render(dir.path());
        for line in [
            "jcs_events_total 5",
            "jcs_transactions_total{op=\"write\"} 1",
            "jcs_transactions_total{op=\"gap\"} 1",
            "jcs_gaps_total 1",
            "jcs_ve_gaps_total{ve=\"4\"} 1",
            "jcs_ve_records_lost_total{ve=\"4\"} 7",
            "jcs_journal_bytes 1500",
            "jcs_journal_segments 2",
            "jcs_ship_lag_bytes{stream=\"JOURNAL\"} 900",
        ] {
            assert!(t.lines().any(|l| l == line), "{line} in\n{t}");
        }
        // Every sample's metric has HELP and TYPE before it.
        let mut typed = std::collections::HashSet::new();
        for l in t.lines() {
            if let Some(r) = l.strip_prefix("# TYPE ") {
                typed.insert(r.split(' ').next().unwrap().to_string());
            } else if !l.starts_with('#') {
                let name = l.split(['{', ' ']).next().unwrap();
                assert!(typed.contains(name), "{l}");
            }
        }
    }
}
