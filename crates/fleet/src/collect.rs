//! `jcs collect`: a host's shipped journal, received, verified and rebuilt on another machine.
//!
//! One ordered consumer per host reads `journal.HOST.>` from the stream sequence after the
//! last one taken in. Each piece is checked by a `journal::ship::Follower` — checksums, block
//! and record numbers, the hash chain across files and summary headers — and appended to the
//! host's copy of its journal files (`OUT/HOST/journal/`), which `jcs verify --dir` checks like
//! the host's own. A piece that does not continue the chain stops the collector with an alarm
//! ([`FleetError::Alarm`]): the host's journal was rewritten, or something was lost upstream.
//! A redelivered piece (one taken in before a restart) is skipped. State (`OUT/HOST/collect.state`:
//! the follower and the stream sequence) is saved after the copy is synced, and on start the
//! copy is cut back to it, so a crash of the collector neither loses nor doubles a byte.

use crate::nats::{self, nats_err};
use crate::ship::position;
use crate::{check_host, io_err, runtime, FleetError, Result};
use async_nats::jetstream;
use futures_util::StreamExt;
use journal::ship::{file_order, Accepted, Follower, Piece};
use journal::{DirStorage, Storage};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct CollectOptions {
    pub servers: String,
    pub stream: String,
    /// The hosts to collect (empty: every host the stream holds pieces of).
    pub hosts: Vec<String>,
    /// Where each host's copy and state go: `OUT/HOST/`.
    pub out: PathBuf,
    /// Keep collecting until the stop flag is set (else stop once caught up).
    pub follow: bool,
}

/// What was collected of one host.
#[derive(Debug, Clone, Default, serde::Serialize, schemars::JsonSchema)]
pub struct HostReport {
    pub host: String,
    /// Pieces taken in by this run, and redelivered ones skipped.
    pub pieces: u64,
    pub skipped: u64,
    /// Blocks and records of the host's chain received so far (all runs).
    pub blocks: u64,
    pub records: u64,
    /// The chain head computed from what was received: equal to the host's `jcs verify` head
    /// once everything is shipped.
    pub head: String,
    /// The host's journal, rebuilt.
    pub journal: PathBuf,
    /// The last stream sequence taken in.
    pub stream_sequence: u64,
    /// Transactions this run loaded into the sink (ClickHouse).
    pub loaded: u64,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct State {
    follower: Follower,
    stream_sequence: u64,
}

/// Receives one block's records, decoded (for loading into a database). Called after the
/// block is verified and before its state is saved.
pub trait Sink {
    /// `summary`: a block of a summary file (its records replace segments' transactions).
    fn block(
        &mut self,
        host: &str,
        header: &journal::format::BlockHeader,
        summary: bool,
        records: Vec<Vec<u8>>,
    ) -> Result<()>;

    /// Makes what `block` took durable: called before the collector saves its state
    /// (`host`: the chain as collected so far).
    fn commit(&mut self, _host: &HostReport) -> Result<()> {
        Ok(())
    }

    /// Forgets what `block` took since the last commit (the collector goes back to its
    /// saved state and takes those blocks in again).
    fn discard(&mut self) {}

    /// Transactions loaded so far (committed).
    fn loaded(&self) -> u64 {
        0
    }
}

/// Collects every host in `opts` in turn (with `follow`, one host only).
pub fn collect(
    opts: &CollectOptions,
    stop: &AtomicBool,
    sink: &mut dyn Sink,
    progress: &mut dyn FnMut(&HostReport),
) -> Result<Vec<HostReport>> {
    if opts.follow && opts.hosts.len() != 1 {
        return Err(FleetError::Usage(
            "following several hosts takes a sink per host: follow_every_host".into(),
        ));
    }
    prepare(opts)?;
    runtime()?.block_on(async {
        let stream = open_stream(opts).await?;
        let hosts = hosts_of(&stream, opts).await?;
        let mut out = Vec::new();
        for host in hosts {
            out.push(collect_host_retrying(&stream, opts, &host, stop, sink, progress).await?);
        }
        Ok(out)
    })
}

/// `jcs collect --follow` of several hosts (every host the stream holds, or `opts.hosts`): a
/// consumer per host, concurrently, each with a sink of its own (`make_sink`); a host that
/// starts shipping later is joined within 5 s. Until `stop` is set; an alarm or an error of
/// one host ends them all (each goes on from its saved state next time).
pub fn follow_every_host(
    opts: &CollectOptions,
    stop: &AtomicBool,
    make_sink: &dyn Fn() -> Result<Box<dyn Sink>>,
    progress: &mut dyn FnMut(&HostReport),
) -> Result<Vec<HostReport>> {
    use futures_util::stream::FuturesUnordered;
    use std::future::Future;
    use std::pin::Pin;
    prepare(opts)?;
    let opts = &CollectOptions {
        follow: true,
        ..opts.clone()
    };
    runtime()?.block_on(async {
        let stream = &open_stream(opts).await?;
        let progress = std::cell::RefCell::new(progress);
        let progress = &progress;
        type Task<'a> = Pin<Box<dyn Future<Output = Result<HostReport>> + 'a>>;
        let mut running: FuturesUnordered<Task<'_>> = FuturesUnordered::new();
        let mut started = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        loop {
            if !stop.load(Ordering::Relaxed) {
                for host in hosts_of(stream, opts).await? {
                    if !started.insert(host.clone()) {
                        continue;
                    }
                    let mut sink = make_sink()?;
                    running.push(Box::pin(async move {
                        let mut p = |r: &HostReport| (*progress.borrow_mut())(r);
                        collect_host_retrying(stream, opts, &host, stop, sink.as_mut(), &mut p)
                            .await
                    }));
                }
            }
            if running.is_empty() {
                if stop.load(Ordering::Relaxed) {
                    return Ok(out);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            let tick = Box::pin(tokio::time::sleep(Duration::from_secs(5)));
            if let futures_util::future::Either::Left((Some(r), _)) =
                futures_util::future::select(running.next(), tick).await
            {
                out.push(r?);
            }
        }
    })
}

/// [`collect_host`], waiting out a server or the stream's leader failing (a cluster electing
/// a new one): collecting goes on from the saved state, with what was not saved cut back and
/// taken in again.
async fn collect_host_retrying(
    stream: &jetstream::stream::Stream,
    opts: &CollectOptions,
    host: &str,
    stop: &AtomicBool,
    sink: &mut dyn Sink,
    progress: &mut dyn FnMut(&HostReport),
) -> Result<HostReport> {
    let mut tries = 0;
    loop {
        match collect_host(stream, opts, host, stop, sink, progress).await {
            Err(e @ FleetError::Nats { .. }) if tries < 30 && !stop.load(Ordering::Relaxed) => {
                tries += 1;
                sink.discard();
                tracing::warn!(host = %host, error = %e, "collect: retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            r => return r,
        }
    }
}

/// Checks the names `opts` gives and makes the output directory.
fn prepare(opts: &CollectOptions) -> Result<()> {
    crate::ship::check_stream(&opts.stream)?;
    for h in &opts.hosts {
        check_host(h)?;
    }
    std::fs::create_dir_all(&opts.out).map_err(io_err(format!("create {}", opts.out.display())))
}

/// The stream `opts` names, on its servers.
async fn open_stream(opts: &CollectOptions) -> Result<jetstream::stream::Stream> {
    let (_client, js) = nats::connect(&opts.servers, Duration::from_secs(10)).await?;
    nats::stream(&js, &opts.servers, &opts.stream, 1, false).await
}

/// The hosts `opts` names, or else every host the stream holds pieces of.
async fn hosts_of(
    stream: &jetstream::stream::Stream,
    opts: &CollectOptions,
) -> Result<Vec<String>> {
    if opts.hosts.is_empty() {
        hosts_in(stream, &opts.servers).await
    } else {
        Ok(opts.hosts.clone())
    }
}

/// The hosts whose pieces the stream holds.
async fn hosts_in(stream: &jetstream::stream::Stream, servers: &str) -> Result<Vec<String>> {
    let mut info = stream
        .info_with_subjects(format!("{}.>", crate::SUBJECT_PREFIX))
        .await
        .map_err(|e| nats_err(servers)(&e))?;
    let mut hosts = std::collections::BTreeSet::new();
    while let Some(s) = info.next().await {
        let (subject, _) = s.map_err(|e| nats_err(servers)(&e))?;
        if let Some(h) = subject.split('.').nth(1) {
            // A host name is a directory of the collector's: one jcs ship would not send
            // (`/etc`, `a/b`) is left alone, never joined to a path.
            match check_host(h) {
                Ok(()) => {
                    hosts.insert(h.to_string());
                }
                Err(_) => {
                    tracing::warn!(subject = %subject, "collect: not a host name jcs ship sends; ignored")
                }
            }
        }
    }
    Ok(hosts.into_iter().collect())
}

/// Cuts the copy back to what `state` took in: the cursor's file to its offset, later files
/// removed.
fn cut_back(storage: &mut DirStorage, state: &State) -> Result<()> {
    let cursor = state.follower.cursor();
    for name in storage.list().map_err(io_err("list the copy"))? {
        if !(name.ends_with(".seg") || name.ends_with(".sum")) {
            continue;
        }
        match &cursor.file {
            Some(f) if *f == name => {
                if storage.len(&name).map_err(io_err(format!("stat {name}")))? > cursor.offset {
                    storage
                        .truncate(&name, cursor.offset)
                        .map_err(io_err(format!("cut {name}")))?;
                }
            }
            Some(f) if file_order(&name) < file_order(f) => {}
            _ => storage
                .remove(&name)
                .map_err(io_err(format!("remove {name}")))?,
        }
    }
    Ok(())
}

async fn collect_host(
    stream: &jetstream::stream::Stream,
    opts: &CollectOptions,
    host: &str,
    stop: &AtomicBool,
    sink: &mut dyn Sink,
    progress: &mut dyn FnMut(&HostReport),
) -> Result<HostReport> {
    // (The host becomes a directory here: only a name jcs ship sends, never a path.)
    check_host(host)?;
    let dir = opts.out.join(host);
    let jdir = dir.join("journal");
    let mut storage =
        DirStorage::new(&jdir).map_err(io_err(format!("create {}", jdir.display())))?;
    let mut host_dir =
        DirStorage::new(&dir).map_err(io_err(format!("create {}", dir.display())))?;
    let state_path = dir.join(STATE);
    let mut state: State = match std::fs::read(&state_path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            FleetError::Usage(format!(
                "{} is not a collector's state: {e}",
                state_path.display()
            ))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
        Err(e) => return Err(io_err(format!("read {}", state_path.display()))(e)),
    };
    cut_back(&mut storage, &state)?;
    let subject = format!("{}.{host}.>", crate::SUBJECT_PREFIX);
    let mut report = HostReport {
        host: host.to_string(),
        journal: jdir.clone(),
        ..Default::default()
    };
    let loaded_before = sink.loaded();
    let fill = |r: &mut HostReport, s: &State| {
        r.blocks = s.follower.blocks;
        r.records = s.follower.records;
        r.head = journal::format::hex(&s.follower.head());
        r.stream_sequence = s.stream_sequence;
    };
    fill(&mut report, &state);
    // Where the stream ends for this host now (without --follow: where to stop).
    let end = match stream.get_last_raw_message_by_subject(&subject).await {
        Ok(m) => m.sequence,
        Err(e) if e.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound => 0,
        Err(e) => return Err(nats_err(&opts.servers)(&e)),
    };
    if !opts.follow && end <= state.stream_sequence {
        return Ok(report);
    }
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: subject.clone(),
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: state.stream_sequence + 1,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| nats_err(&opts.servers)(&e))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| nats_err(&opts.servers)(&e))?;
    let mut parts: Option<(String, u64, usize, Vec<u8>)> = None;
    let mut saved = Instant::now();
    let mut dirty = false;
    let alarm = |error| FleetError::Alarm {
        host: host.to_string(),
        error: Box::new(error),
    };
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let next = tokio::time::timeout(Duration::from_millis(500), messages.next()).await;
        let msg = match next {
            Err(_) => {
                if dirty {
                    save(&mut storage, &mut host_dir, &state, sink, &report)?;
                    dirty = false;
                }
                continue;
            }
            Ok(None) => break,
            Ok(Some(m)) => m.map_err(|e| nats_err(&opts.servers)(&e))?,
        };
        let seq = msg
            .info()
            .map_err(|e| nats_err(&opts.servers)(&e))?
            .stream_sequence;
        let headers = msg.headers.clone().unwrap_or_default();
        let Some((file, offset, k, n)) = position(&headers) else {
            return Err(FleetError::Usage(format!(
                "message {seq} on {} was not sent by jcs ship (no Jcs-File/Jcs-Offset)",
                msg.subject
            )));
        };
        // A piece in parts: gather them in order.
        let bytes = if n > 1 {
            let buf = match parts.take() {
                Some((f, o, have, buf)) if f == file && o == offset && have + 1 == k => buf,
                _ if k == 1 => Vec::new(),
                _ => {
                    return Err(alarm(journal::ship::FollowError::Out {
                        file: file.clone(),
                        offset,
                        expected_file: format!("part {k}/{n} without the parts before it"),
                        expected: offset,
                    }))
                }
            };
            let mut buf = buf;
            buf.extend_from_slice(&msg.payload);
            // No piece is larger than a block may be: parts beyond that are not a journal's.
            if buf.len() > journal::format::MAX_PAYLOAD + journal::format::BLOCK_HEADER_LEN {
                return Err(alarm(journal::ship::FollowError::Format {
                    file: file.clone(),
                    offset,
                    error: journal::format::FormatError::Limit("block payload"),
                }));
            }
            if k < n {
                parts = Some((file, offset, k, buf));
                continue;
            }
            buf
        } else {
            msg.payload.to_vec()
        };
        if msg
            .subject
            .split('.')
            .nth(2)
            .and_then(crate::file_of_token)
            .as_deref()
            != Some(file.as_str())
        {
            return Err(FleetError::Usage(format!(
                "message {seq} on {} says it is of {file}: subject and header disagree",
                msg.subject
            )));
        }
        let piece = Piece {
            file,
            offset,
            bytes,
        };
        if state.follower.seen(&piece) {
            // Taken in before (a redelivery, or shipped again): it must be the same bytes, or
            // the host's journal was rewritten after it was shipped.
            let have = storage
                .read_range(&piece.file, piece.offset, piece.bytes.len() as u64)
                .map_err(io_err(format!("read {} of the copy", piece.file)))?;
            if have != piece.bytes {
                return Err(alarm(journal::ship::FollowError::Rewritten {
                    file: piece.file.clone(),
                    offset: piece.offset,
                }));
            }
            report.skipped += 1;
        } else {
            let accepted = state.follower.accept(&piece).map_err(alarm)?;
            if let Accepted::Block { header, summary } = &accepted {
                let recs =
                    journal::format::block_records(&piece.bytes, 0, header).map_err(|e| {
                        alarm(journal::ship::FollowError::Format {
                            file: piece.file.clone(),
                            offset: piece.offset,
                            error: e,
                        })
                    })?;
                sink.block(host, header, *summary, recs)?;
            }
            storage
                .append(&piece.file, &piece.bytes)
                .map_err(io_err(format!("write {}", piece.file)))?;
            report.pieces += 1;
            dirty = true;
        }
        state.stream_sequence = seq;
        fill(&mut report, &state);
        if dirty && saved.elapsed() > Duration::from_millis(200) {
            save(&mut storage, &mut host_dir, &state, sink, &report)?;
            saved = Instant::now();
            dirty = false;
            progress(&report);
        }
        if !opts.follow && seq >= end {
            break;
        }
    }
    save(&mut storage, &mut host_dir, &state, sink, &report)?;
    fill(&mut report, &state);
    report.loaded = sink.loaded() - loaded_before;
    progress(&report);
    Ok(report)
}

/// Commits the sink, syncs the copy, then replaces the state (in the host's directory).
fn save(
    storage: &mut DirStorage,
    host_dir: &mut DirStorage,
    state: &State,
    sink: &mut dyn Sink,
    report: &HostReport,
) -> Result<()> {
    sink.commit(report)?;
    if let Some(f) = state.follower.cursor().file {
        storage.sync(&f).map_err(io_err(format!("sync {f}")))?;
    }
    let json = serde_json::to_vec_pretty(state).expect("state serializes");
    host_dir
        .replace(STATE, &json)
        .map_err(io_err(format!("write {STATE}")))
}

/// The collecting state's file in `DIR/HOST/`.
const STATE: &str = "collect.state";

/// A sink that keeps nothing (the copy and the chain check only).
#[derive(Debug, Default)]
pub struct NoSink;

impl Sink for NoSink {
    fn block(
        &mut self,
        _: &str,
        _: &journal::format::BlockHeader,
        _: bool,
        _: Vec<Vec<u8>>,
    ) -> Result<()> {
        Ok(())
    }
}
