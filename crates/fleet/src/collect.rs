//! `jcs collect`: a host's shipped journal, received, verified and rebuilt on another machine.
//!
//! One ordered consumer per host reads `journal.HOST.>` from the stream sequence after the
//! last one taken in. Each piece is checked by a `journal::ship::Follower` — checksums, block
//! and record numbers, the hash chain across files and summary headers — and appended to the
//! host's copy of its journal files (`OUT/HOST/journal/`), which `jcs verify --dir` checks like
//! the host's own. A piece that does not continue the chain stops the collector with an alarm
//! ([`FleetError::Alarm`]): the host's journal was rewritten, or something was lost upstream.
//! The stream's order need not be the journal's (a shipper's retried piece is stored after
//! those it had sent behind it): a piece that belongs after one not received yet waits for it
//! (bounded in time and bytes; then the alarm says which piece is missing).
//! A redelivered piece (one taken in before a restart) is skipped. State (`OUT/HOST/collect.state`:
//! the follower and the stream sequence) is saved after the copy is synced, and on start the
//! copy is cut back to it, so a crash of the collector neither loses nor doubles a byte.

use crate::nats::{self, nats_err};
use crate::ship::position;
use crate::{check_host, io_err, runtime, FleetError, Result};
use async_nats::jetstream;
use futures_util::StreamExt;
use journal::ship::{file_order, Accepted, FollowError, Follower, Piece};
use journal::{DirStorage, Storage};
use std::collections::{BTreeMap, HashMap};
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
    /// Without `follow`: how long to wait at the stream's end for a piece it holds pieces
    /// after (a shipper sending it again after a failure) before the alarm
    /// ([`WAIT_AT_END`]).
    pub wait_at_end: Duration,
}

/// How long a collector waits at the stream's end for a missing piece, unless told.
pub const WAIT_AT_END: Duration = Duration::from_secs(10);

/// What was collected of one host.
#[derive(Debug, Clone, Default, serde::Serialize, schemars::JsonSchema)]
pub struct HostReport {
    pub host: String,
    /// Pieces taken in by this run, and redelivered ones skipped.
    pub pieces: u64,
    pub skipped: u64,
    /// Pieces of this run that arrived before one they follow and waited for it (the stream
    /// holds a shipper's retried piece after those it had sent behind it).
    pub waited: u64,
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
    let mut waiting = Waiting::default();
    let mut saved = Instant::now();
    let mut dirty = false;
    // The last stream sequence received, and when the stream's end (without --follow) was
    // passed with pieces still waiting for one before them.
    let mut last_seq: u64;
    let mut past_end: Option<Instant> = None;
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
                let overdue = match (past_end, waiting.since) {
                    (_, None) => false,
                    (Some(t), _) => t.elapsed() > opts.wait_at_end,
                    (None, Some(t)) => t.elapsed() > GAP_PATIENCE,
                };
                if overdue {
                    return Err(waiting.missing(&state.follower, host));
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
        last_seq = seq;
        let headers = msg.headers.clone().unwrap_or_default();
        let Some((file, offset, k, n)) = position(&headers) else {
            return Err(FleetError::Usage(format!(
                "message {seq} on {} was not sent by jcs ship (no Jcs-File/Jcs-Offset)",
                msg.subject
            )));
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
        // A piece in parts: gathered in whatever order the stream holds them.
        let whole = if n > 1 {
            waiting
                .part(file, offset, k, n, seq, &msg.payload)
                .map_err(alarm)?
        } else {
            Some((
                Piece {
                    file,
                    offset,
                    bytes: msg.payload.to_vec(),
                },
                seq,
            ))
        };
        if let Some((piece, first_seq)) = whole {
            if state.follower.seen(&piece) {
                // Taken in before (a redelivery, or shipped again): it must be the same bytes,
                // or the host's journal was rewritten after it was shipped.
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
                match next_or_ahead(&state.follower, &piece) {
                    Place::Next => {
                        take_in(&mut state.follower, &mut storage, sink, host, piece)?;
                        report.pieces += 1;
                        // What waited for it, in order.
                        while let Some(p) = waiting.next_for(&state.follower).map_err(alarm)? {
                            take_in(&mut state.follower, &mut storage, sink, host, p)?;
                            report.pieces += 1;
                        }
                        dirty = true;
                    }
                    Place::Ahead => {
                        if waiting.ahead(piece, first_seq).map_err(alarm)? {
                            report.skipped += 1;
                        } else {
                            report.waited += 1;
                        }
                        if let Some(e) = waiting.too_much(&state.follower, host) {
                            return Err(e);
                        }
                    }
                }
            }
        }
        // On a restart, everything still waiting is received again.
        state.stream_sequence = waiting
            .first_seq()
            .map_or(last_seq, |s| s.saturating_sub(1).min(last_seq));
        fill(&mut report, &state);
        if dirty && saved.elapsed() > Duration::from_millis(200) {
            save(&mut storage, &mut host_dir, &state, sink, &report)?;
            saved = Instant::now();
            dirty = false;
            progress(&report);
        }
        if !opts.follow && seq >= end {
            if waiting.is_empty() {
                break;
            }
            // A piece the shipper is re-sending may still come (it retries every 500 ms).
            past_end.get_or_insert_with(Instant::now);
        }
    }
    save(&mut storage, &mut host_dir, &state, sink, &report)?;
    fill(&mut report, &state);
    report.loaded = sink.loaded() - loaded_before;
    progress(&report);
    Ok(report)
}

/// Checks `piece` as the next one, hands its records to the sink and appends it to the copy.
fn take_in(
    follower: &mut Follower,
    storage: &mut DirStorage,
    sink: &mut dyn Sink,
    host: &str,
    piece: Piece,
) -> Result<()> {
    let alarm = |error| FleetError::Alarm {
        host: host.to_string(),
        error: Box::new(error),
    };
    if let Accepted::Block { header, summary } = follower.accept(&piece).map_err(alarm)? {
        let recs = journal::format::block_records(&piece.bytes, 0, &header).map_err(|e| {
            alarm(FollowError::Format {
                file: piece.file.clone(),
                offset: piece.offset,
                error: e,
            })
        })?;
        sink.block(host, &header, summary, recs)?;
    }
    storage
        .append(&piece.file, &piece.bytes)
        .map_err(io_err(format!("write {}", piece.file)))
}

/// How long pieces may wait for one before them that the stream does not hold. A shipper
/// whose server failed re-sends from its first unacknowledged piece within a second or two, and
/// the stream then holds that piece after the ones sent behind it; waiting longer means it was
/// lost upstream, or the shipper stopped in between and has not run again.
const GAP_PATIENCE: Duration = Duration::from_secs(120);
/// More bytes than this waiting is an alarm at once (a shipper has at most a window of
/// messages in flight: a few hundred).
const MAX_WAITING: usize = 512 << 20;

/// Where a piece not taken in yet belongs.
enum Place {
    /// It continues the chain now (or is checked as if it did: an alarm if it does not).
    Next,
    /// After a piece not received yet.
    Ahead,
}

fn next_or_ahead(f: &Follower, piece: &Piece) -> Place {
    let c = f.cursor();
    if c.file.as_deref() == Some(piece.file.as_str()) {
        return if piece.offset == c.offset {
            Place::Next
        } else {
            Place::Ahead
        };
    }
    if piece.offset != 0 {
        return Place::Ahead;
    }
    // Another file's header: next if the file before it is complete, which only the chain can
    // tell (a header that does not continue it waits for the rest of the file before it).
    match f.clone().accept(piece) {
        Err(FollowError::Discontinuous { .. } | FollowError::Out { .. }) => Place::Ahead,
        _ => Place::Next,
    }
}

/// A piece's parts so far: how many it has, those received, the lowest stream sequence.
type Parts = (usize, Vec<Option<Vec<u8>>>, u64);

/// Pieces received before one they follow, and parts of pieces not all received yet. A
/// shipper re-sends from its first unacknowledged piece after a failure, and what it had sent
/// behind that piece may already be in the stream: the stream's order is not the journal's.
#[derive(Default)]
struct Waiting {
    /// Whole pieces by (file order, offset), with the stream sequence of their first message.
    ahead: BTreeMap<(u64, u64), (u64, Piece)>,
    /// Parts by (file, offset).
    parts: HashMap<(String, u64), Parts>,
    bytes: usize,
    /// When something started waiting.
    since: Option<Instant>,
}

impl Waiting {
    fn is_empty(&self) -> bool {
        self.ahead.is_empty() && self.parts.is_empty()
    }

    /// The lowest stream sequence of what waits (a restart must receive it again).
    fn first_seq(&self) -> Option<u64> {
        let a = self.ahead.values().map(|(s, _)| *s);
        let p = self.parts.values().map(|(_, _, s)| *s);
        a.chain(p).min()
    }

    fn started(&mut self) {
        self.since.get_or_insert_with(Instant::now);
    }

    fn settled(&mut self) {
        if self.is_empty() {
            self.since = None;
        }
    }

    /// Takes part `k` of `n` of a piece; the whole piece once every part is in.
    fn part(
        &mut self,
        file: String,
        offset: u64,
        k: usize,
        n: usize,
        seq: u64,
        payload: &[u8],
    ) -> Result<Option<(Piece, u64)>, FollowError> {
        let format = |error| FollowError::Format {
            file: file.clone(),
            offset,
            error,
        };
        // No piece is larger than a block may be: parts beyond that are not a journal's.
        let limit = journal::format::MAX_PAYLOAD + journal::format::BLOCK_HEADER_LEN;
        if k == 0 || k > n || n > limit {
            return Err(format(journal::format::FormatError::Limit("parts")));
        }
        self.started();
        let key = (file.clone(), offset);
        let (count, got, first) = self
            .parts
            .entry(key.clone())
            .or_insert_with(|| (n, vec![None; n], seq));
        if *count != n {
            return Err(format(journal::format::FormatError::Limit("parts")));
        }
        *first = (*first).min(seq);
        match &got[k - 1] {
            Some(b) if b[..] != *payload => return Err(FollowError::Rewritten { file, offset }),
            Some(_) => return Ok(None),
            None => {}
        }
        got[k - 1] = Some(payload.to_vec());
        self.bytes += payload.len();
        let size: usize = got.iter().flatten().map(Vec::len).sum();
        if size > limit {
            return Err(format(journal::format::FormatError::Limit("block payload")));
        }
        if got.iter().any(Option::is_none) {
            return Ok(None);
        }
        let (_, got, first) = self.parts.remove(&key).expect("just found");
        self.bytes -= size;
        self.settled();
        let bytes = got.into_iter().flatten().flatten().collect();
        Ok(Some((
            Piece {
                file,
                offset,
                bytes,
            },
            first,
        )))
    }

    /// Keeps a piece that belongs after one not received yet. True if it was there already.
    fn ahead(&mut self, piece: Piece, seq: u64) -> Result<bool, FollowError> {
        let key = (file_order(&piece.file), piece.offset);
        if let Some((_, have)) = self.ahead.get(&key) {
            if have.bytes != piece.bytes {
                return Err(FollowError::Rewritten {
                    file: piece.file,
                    offset: piece.offset,
                });
            }
            return Ok(true);
        }
        self.started();
        self.bytes += piece.bytes.len();
        self.ahead.insert(key, (seq, piece));
        Ok(false)
    }

    /// The waiting piece that continues the chain now, if any (one that sits where the chain
    /// goes on but does not continue it is taken out all the same: accepting it is the alarm).
    fn next_for(&mut self, f: &Follower) -> Result<Option<Piece>, FollowError> {
        let Some((_, (_, p))) = self.ahead.first_key_value() else {
            return Ok(None);
        };
        if f.seen(p) {
            // (Cannot be: what waits lies after the cursor.)
            return Ok(None);
        }
        if !matches!(next_or_ahead(f, p), Place::Next) {
            return Ok(None);
        }
        let (_, (_, p)) = self.ahead.pop_first().expect("just found");
        self.bytes -= p.bytes.len();
        self.settled();
        Ok(Some(p))
    }

    /// The alarm of a piece that has not come (for whoever asks: after its patience).
    fn missing(&self, f: &Follower, host: &str) -> FleetError {
        let c = f.cursor();
        FleetError::Alarm {
            host: host.to_string(),
            error: Box::new(FollowError::Missing {
                file: c.file.unwrap_or_else(|| "(the first file)".into()),
                offset: c.offset,
                waiting: self.ahead.len() + self.parts.len(),
            }),
        }
    }

    /// The alarm when more waits than a shipper's re-sending can explain.
    fn too_much(&self, f: &Follower, host: &str) -> Option<FleetError> {
        (self.bytes > MAX_WAITING).then(|| self.missing(f, host))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_come_whole_in_any_order_once_each() {
        let mut w = Waiting::default();
        let f = "0000000000000000.seg".to_string();
        assert!(w.part(f.clone(), 80, 3, 3, 12, b"ef").unwrap().is_none());
        assert!(w.part(f.clone(), 80, 1, 3, 10, b"ab").unwrap().is_none());
        // Again, same bytes: nothing new.
        assert!(w.part(f.clone(), 80, 1, 3, 15, b"ab").unwrap().is_none());
        assert_eq!(w.first_seq(), Some(10));
        assert!(w.since.is_some());
        let (p, seq) = w.part(f.clone(), 80, 2, 3, 11, b"cd").unwrap().unwrap();
        assert_eq!(
            (p.bytes.as_slice(), p.offset, seq),
            (&b"abcdef"[..], 80, 10)
        );
        assert!(w.is_empty() && w.since.is_none() && w.bytes == 0);
        // Other bytes for a part already in, another count, a part beyond the count: refused.
        w.part(f.clone(), 90, 1, 2, 20, b"x").unwrap();
        assert!(matches!(
            w.part(f.clone(), 90, 1, 2, 21, b"y"),
            Err(FollowError::Rewritten { .. })
        ));
        assert!(w.part(f.clone(), 90, 2, 3, 22, b"z").is_err());
        assert!(w.part(f, 95, 3, 2, 23, b"z").is_err());
    }

    #[test]
    fn waiting_pieces_come_out_in_the_journals_order() {
        use journal::{Journal, MemStorage, Options};
        let (mut j, _) = Journal::open(MemStorage::default(), Options::default()).unwrap();
        for b in 0..4u8 {
            j.append(&[vec![b; 40]]).unwrap();
        }
        let mut storage = j.storage().clone();
        let (pieces, _) =
            journal::ship::pieces_from(&mut storage, &Default::default(), 1 << 20).unwrap();
        assert_eq!(pieces.len(), 5, "a header and four blocks");
        let mut f = Follower::default();
        let mut w = Waiting::default();
        // 3, 4 and 2 arrive before 0 and 1.
        for (i, seq) in [(3, 1), (4, 2), (2, 3)] {
            assert!(matches!(next_or_ahead(&f, &pieces[i]), Place::Ahead));
            assert!(!w.ahead(pieces[i].clone(), seq).unwrap());
        }
        assert!(w.ahead(pieces[2].clone(), 9).unwrap(), "already waiting");
        assert_eq!(w.first_seq(), Some(1));
        assert!(w.next_for(&f).unwrap().is_none());
        for p in &pieces[..2] {
            assert!(matches!(next_or_ahead(&f, p), Place::Next));
            f.accept(p).unwrap();
        }
        let mut order = Vec::new();
        while let Some(p) = w.next_for(&f).unwrap() {
            f.accept(&p).unwrap();
            order.push(p.offset);
        }
        let want: Vec<u64> = pieces[2..].iter().map(|p| p.offset).collect();
        assert_eq!(order, want);
        assert!(w.is_empty() && w.since.is_none());
    }
}
