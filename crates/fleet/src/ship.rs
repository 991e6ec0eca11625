//! `jcs ship`: a host's journal, published piece by piece to a JetStream stream.
//!
//! Exactly once: each piece has a message id (host, file, offset, part) and the stream drops
//! a re-sent id within its duplicate window; what is re-sent is only what was in flight when
//! a connection or a server failed (acks are awaited in order, and the cursor moves only over
//! acknowledged pieces). The cursor and the chain followed so far are kept durably in the
//! journal directory (`ship-STREAM.state`), and on start they are reconciled with what the
//! stream holds of this host above the state's floor (a failed pass can leave pieces stored
//! behind one that was not: the last piece held does not mean all before it is): a state
//! written late never re-sends what the stream has, a piece the stream lacks is sent even if
//! later ones are there, and a stream that lost what this host shipped is an error, not a
//! silent re-send.
//! Every piece is checked against the chain before it leaves (`journal::ship::Follower`), and
//! the shipper's mark (`ship-STREAM.mark`) keeps the segments it has not sent from being
//! summarized.

use crate::nats::{self, nats_err};
use crate::{check_host, io_err, runtime, token_of_file, FleetError, Result};
use async_nats::jetstream;
use async_nats::HeaderMap;
use journal::ship::{cursor_segment, pieces_from, write_mark, Cursor, Follower, Piece};
use journal::{DirStorage, Storage as _};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What to ship where.
#[derive(Debug, Clone)]
pub struct ShipOptions {
    /// `nats://HOST:PORT[,…]`.
    pub servers: String,
    pub stream: String,
    /// This host's name in subjects and message ids.
    pub host: String,
    /// Copies the stream keeps when this creates it.
    pub replicas: usize,
    /// Keep shipping what the journal gains, until the stop flag is set.
    pub follow: bool,
    /// Forget where shipping to this stream stopped; ship the journal from its start.
    pub from_start: bool,
    /// Messages published before the first of their acks is awaited.
    pub window: usize,
    /// How long to keep retrying without progress before giving up (not with `follow`).
    pub give_up_after: Duration,
    /// About how many bytes are read, sent and acknowledged between two saves of the state.
    pub batch_bytes: usize,
}

impl ShipOptions {
    pub fn new(servers: &str, host: &str) -> ShipOptions {
        ShipOptions {
            servers: servers.to_string(),
            stream: crate::DEFAULT_STREAM.into(),
            host: host.to_string(),
            replicas: 3,
            follow: false,
            from_start: false,
            window: 256,
            give_up_after: Duration::from_secs(60),
            batch_bytes: 8 << 20,
        }
    }
}

/// What a shipment did.
#[derive(Debug, Clone, Default, serde::Serialize, schemars::JsonSchema)]
pub struct ShipReport {
    pub host: String,
    pub stream: String,
    /// Pieces (headers and blocks) acknowledged by the stream in this run.
    pub pieces: u64,
    /// Messages acknowledged (a piece larger than a message is several).
    pub messages: u64,
    pub bytes: u64,
    /// Acks that said the stream had the message already (re-sent after a failure).
    pub duplicates: u64,
    /// Failures (connection, server, ack timeout) that were retried.
    pub retries: u64,
    /// Blocks of the journal's chain shipped so far (all runs).
    pub blocks_total: u64,
    /// The chain head after the last shipped block: what `jcs verify` prints once all is shipped.
    pub head: String,
    /// Where this run started.
    pub resumed_from: Cursor,
    /// Where the next piece starts.
    pub cursor: Cursor,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct State {
    host: String,
    stream: String,
    /// Part of every message id: a new one for each shipment from the start, so that a
    /// journal shipped again into a purged stream is not taken for re-sent pieces (the
    /// stream remembers ids across a purge).
    #[serde(default)]
    epoch: u64,
    follower: Follower,
    /// Every message of this host the stream may hold after the cursor has a higher stream
    /// sequence (raised once everything published so far is acknowledged): where a restart
    /// looks for what the stream holds. A failed publishing pass can leave pieces stored
    /// behind one that was not, so the stream's last piece does not say that all before it is
    /// there.
    #[serde(default)]
    floor: u64,
}

/// The shipping state's file in the journal directory.
fn state_name(stream: &str) -> String {
    format!("ship-{stream}.state")
}

/// Checks a stream name as JetStream takes it.
pub fn check_stream(name: &str) -> Result<()> {
    crate::check_name("stream name", name, "")
}

/// Ships the journal in `dir` (see the module docs). `progress` is called after each batch.
pub fn ship(
    dir: &Path,
    opts: &ShipOptions,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(&ShipReport),
) -> Result<ShipReport> {
    check_host(&opts.host)?;
    check_stream(&opts.stream)?;
    let storage = DirStorage::new(dir).map_err(io_err(format!("open {}", dir.display())))?;
    if journal::ship::is_empty(&storage)? {
        return Err(FleetError::Usage(format!(
            "{} holds no journal",
            dir.display()
        )));
    }
    let lock_path = dir.join(format!("ship-{}.lock", opts.stream));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err(format!("open {}", lock_path.display())))?;
    if lock.try_lock().is_err() {
        return Err(FleetError::Usage(format!(
            "another jcs ship is sending this journal to stream {} ({} is locked)",
            opts.stream,
            lock_path.display()
        )));
    }
    let path = dir.join(state_name(&opts.stream));
    let mut state = match std::fs::read(&path) {
        Ok(b) if !opts.from_start => serde_json::from_slice::<State>(&b).map_err(|e| {
            FleetError::Usage(format!(
                "{} is not a shipping state ({e}); remove it and ship with --from-start",
                path.display()
            ))
        })?,
        Ok(_) => fresh(opts),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fresh(opts),
        Err(e) => return Err(io_err(format!("read {}", path.display()))(e)),
    };
    if state.host != opts.host {
        return Err(FleetError::Usage(format!(
            "this journal was shipped to stream {} as host {:?}: ship as --host {} (or --from-start \
             to ship it all again under the new name)",
            opts.stream, state.host, state.host
        )));
    }
    let mut storage = DirStorage::new(dir).map_err(io_err(format!("open {}", dir.display())))?;
    write_mark(
        &mut storage,
        &opts.stream,
        cursor_segment(&state.follower.cursor()),
    )?;
    let rt = runtime()?;
    let r = rt.block_on(run(&mut storage, &mut state, opts, stop, progress));
    drop(lock);
    r
}

fn fresh(opts: &ShipOptions) -> State {
    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    State {
        host: opts.host.clone(),
        stream: opts.stream.clone(),
        epoch,
        follower: Follower::default(),
        floor: 0,
    }
}

fn save(storage: &mut DirStorage, state: &State, stream: &str) -> Result<()> {
    let name = state_name(stream);
    let json = serde_json::to_vec_pretty(state).expect("state serializes");
    storage
        .replace(&name, &json)
        .map_err(io_err(format!("write {name}")))?;
    write_mark(storage, stream, cursor_segment(&state.follower.cursor()))?;
    Ok(())
}

async fn run(
    storage: &mut DirStorage,
    state: &mut State,
    opts: &ShipOptions,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(&ShipReport),
) -> Result<ShipReport> {
    let (client, js) = nats::connect(&opts.servers, Duration::from_secs(5)).await?;
    let stream = nats::stream(&js, &opts.servers, &opts.stream, opts.replicas, true).await?;
    // From the start: whatever the stream holds, everything is sent again.
    let held = if opts.from_start {
        Held::default()
    } else {
        reconcile(&stream, storage, state, opts).await?
    };
    // Past the end of everything published so far (what the stream may hold included), and
    // the highest sequence acknowledged: the floor rises to it once the cursor is there.
    let mut published_to = place(&held.end.clone().unwrap_or(state.follower.cursor()));
    let mut max_ack = state.floor;
    save(storage, state, &opts.stream)?;
    let part_max = nats::max_part(&client);
    let mut report = ShipReport {
        host: opts.host.clone(),
        stream: opts.stream.clone(),
        resumed_from: state.follower.cursor(),
        ..Default::default()
    };
    let mut last_progress = Instant::now();
    let mut saved = Instant::now();
    // Whether the cursor moved since the state was last saved (an idle shipper writes nothing).
    let mut dirty = false;
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let (pieces, _) = pieces_from(storage, &state.follower.cursor(), opts.batch_bytes)?;
        if pieces.is_empty() {
            if dirty {
                save(storage, state, &opts.stream)?;
                (saved, dirty) = (Instant::now(), false);
            }
            if !opts.follow {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let mut check = state.follower.clone();
        for p in &pieces {
            check.accept(p).map_err(|e| {
                FleetError::Usage(format!(
                    "the journal does not verify here: {e}; nothing after it is shipped (run jcs verify)"
                ))
            })?;
        }
        let id = format!("{}/{:x}", opts.host, state.epoch);
        let last = Cursor::after(pieces.last().expect("not empty"));
        published_to = published_to.max(place(&last));
        let sent = publish(&js, &opts.host, &id, &pieces, &held, part_max, opts.window).await;
        max_ack = max_ack.max(sent.max_seq);
        for p in &pieces[..sent.pieces] {
            state.follower.accept(p).expect("checked above");
            report.bytes += p.bytes.len() as u64;
        }
        if sent.error.is_none() && place(&state.follower.cursor()) >= published_to {
            state.floor = max_ack;
        }
        if sent.pieces > 0 {
            last_progress = Instant::now();
            dirty = true;
        }
        report.pieces += sent.pieces as u64;
        report.messages += sent.messages;
        report.duplicates += sent.duplicates;
        if let Some(e) = sent.error {
            report.retries += 1;
            save(storage, state, &opts.stream)?;
            (saved, dirty) = (Instant::now(), false);
            if !opts.follow && last_progress.elapsed() > opts.give_up_after {
                return Err(FleetError::Nats {
                    servers: opts.servers.clone(),
                    what: format!("no progress for {:?}: {e}", opts.give_up_after),
                });
            }
            tracing::warn!(error = %e, "ship: retrying from the first unacknowledged piece");
            tokio::time::sleep(Duration::from_millis(500)).await;
        } else if dirty && saved.elapsed() > Duration::from_millis(200) {
            save(storage, state, &opts.stream)?;
            (saved, dirty) = (Instant::now(), false);
        }
        report.blocks_total = state.follower.blocks;
        report.head = journal::format::hex(&state.follower.head());
        report.cursor = state.follower.cursor();
        progress(&report);
    }
    save(storage, state, &opts.stream)?;
    report.blocks_total = state.follower.blocks;
    report.head = journal::format::hex(&state.follower.head());
    report.cursor = state.follower.cursor();
    client
        .flush()
        .await
        .map_err(|e| nats_err(&opts.servers)(&e))?;
    Ok(report)
}

/// What one publishing pass got acknowledged.
struct Sent {
    /// Leading pieces whose every message was acknowledged.
    pieces: usize,
    messages: u64,
    duplicates: u64,
    /// The highest stream sequence acknowledged.
    max_seq: u64,
    /// Why it stopped early.
    error: Option<String>,
}

/// The parts one piece is sent as.
fn parts(piece: &Piece, part_max: usize) -> Vec<&[u8]> {
    if piece.bytes.is_empty() {
        return vec![&piece.bytes[..]];
    }
    piece.bytes.chunks(part_max).collect()
}

/// One message's subject and headers (`id`: the message ids' prefix, host and epoch).
fn message(host: &str, id: &str, piece: &Piece, part: usize, parts: usize) -> (String, HeaderMap) {
    let mut h = HeaderMap::new();
    let id = if parts > 1 {
        format!("{id}/{}/{}/{}", piece.file, piece.offset, part + 1)
    } else {
        format!("{id}/{}/{}", piece.file, piece.offset)
    };
    h.insert("Nats-Msg-Id", id.as_str());
    h.insert("Jcs-File", piece.file.as_str());
    h.insert("Jcs-Offset", piece.offset.to_string().as_str());
    if parts > 1 {
        h.insert("Jcs-Part", format!("{}/{parts}", part + 1).as_str());
    }
    (
        format!(
            "{}.{host}.{}",
            crate::SUBJECT_PREFIX,
            token_of_file(&piece.file)
        ),
        h,
    )
}

async fn publish(
    js: &jetstream::Context,
    host: &str,
    id: &str,
    pieces: &[Piece],
    held: &Held,
    part_max: usize,
    window: usize,
) -> Sent {
    let mut s = Sent {
        pieces: 0,
        messages: 0,
        duplicates: 0,
        max_seq: 0,
        error: None,
    };
    // A message the stream holds already is not sent (None: settled as acknowledged).
    let mut inflight: VecDeque<(usize, bool, Option<jetstream::context::PublishAckFuture>)> =
        VecDeque::new();
    async fn settle(
        s: &mut Sent,
        i: usize,
        last: bool,
        f: Option<jetstream::context::PublishAckFuture>,
    ) -> bool {
        if let Some(f) = f {
            match f.await {
                Ok(ack) => {
                    s.messages += 1;
                    s.duplicates += u64::from(ack.duplicate);
                    s.max_seq = s.max_seq.max(ack.sequence);
                }
                Err(e) => {
                    s.error = Some(e.to_string());
                    return false;
                }
            }
        }
        if last {
            s.pieces = i + 1;
        }
        true
    }
    for (i, p) in pieces.iter().enumerate() {
        let ps = parts(p, part_max);
        let n = ps.len();
        for (k, part) in ps.into_iter().enumerate() {
            if held.has(&p.file, p.offset, k + 1) {
                inflight.push_back((i, k + 1 == n, None));
            } else {
                let (subject, headers) = message(host, id, p, k, n);
                match js
                    .publish_with_headers(subject, headers, bytes::Bytes::copy_from_slice(part))
                    .await
                {
                    Ok(f) => inflight.push_back((i, k + 1 == n, Some(f))),
                    Err(e) => {
                        s.error = Some(e.to_string());
                        break;
                    }
                }
            }
            while inflight.len() >= window.max(1) {
                let (i, last, f) = inflight.pop_front().expect("not empty");
                if !settle(&mut s, i, last, f).await {
                    return s;
                }
            }
        }
        if s.error.is_some() {
            break;
        }
    }
    while let Some((i, last, f)) = inflight.pop_front() {
        if !settle(&mut s, i, last, f).await {
            return s;
        }
    }
    s
}

/// Where a cursor is, for comparing: (file order, offset).
fn place(c: &Cursor) -> (u64, u64) {
    (cursor_segment(c), c.offset)
}

/// Where a message sits: its file, offset, and part (1-based) of how many.
pub(crate) fn position(headers: &HeaderMap) -> Option<(String, u64, usize, usize)> {
    let file = headers.get("Jcs-File")?.as_str().to_string();
    let offset = headers.get("Jcs-Offset")?.as_str().parse().ok()?;
    let (k, n) = match headers.get("Jcs-Part") {
        None => (1, 1),
        Some(v) => {
            let (k, n) = v.as_str().split_once('/')?;
            (k.parse().ok()?, n.parse().ok()?)
        }
    };
    Some((file, offset, k, n))
}

/// What the stream holds of this host after the shipping state's cursor: messages by
/// (file, offset, part), found on start (a restart after a failed pass). Not sent again.
#[derive(Debug, Default)]
struct Held {
    /// By file: (offset, part).
    parts: std::collections::HashMap<String, std::collections::HashSet<(u64, usize)>>,
    /// Past the last of them.
    end: Option<Cursor>,
}

impl Held {
    fn has(&self, file: &str, offset: u64, part: usize) -> bool {
        self.parts
            .get(file)
            .is_some_and(|p| p.contains(&(offset, part)))
    }
}

/// The positions of the messages of `subject` the stream holds from sequence `from` to `to`
/// (headers only): (file, offset) → (parts of the piece, the parts held).
async fn held_between(
    stream: &jetstream::stream::Stream,
    subject: &str,
    from: u64,
    to: u64,
    servers: &str,
) -> Result<std::collections::HashMap<(String, u64), (usize, Vec<usize>)>> {
    use futures_util::StreamExt;
    let mut out: std::collections::HashMap<(String, u64), (usize, Vec<usize>)> = Default::default();
    if from > to {
        return Ok(out);
    }
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: subject.to_string(),
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            headers_only: true,
            ..Default::default()
        })
        .await
        .map_err(|e| nats_err(servers)(&e))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| nats_err(servers)(&e))?;
    loop {
        let m = match tokio::time::timeout(Duration::from_secs(10), messages.next()).await {
            Ok(Some(m)) => m.map_err(|e| nats_err(servers)(&e))?,
            Ok(None) => break,
            Err(_) => {
                return Err(FleetError::Nats {
                    servers: servers.to_string(),
                    what: format!("reading what stream holds of {subject} up to {to}: timed out"),
                })
            }
        };
        let seq = m.info().map_err(|e| nats_err(servers)(&e))?.stream_sequence;
        let Some((file, offset, k, n)) = m.headers.as_ref().and_then(position) else {
            return Err(FleetError::Usage(format!(
                "message {seq} of {subject} was not sent by jcs ship (no Jcs-File/Jcs-Offset)"
            )));
        };
        let e = out.entry((file, offset)).or_insert((n, Vec::new()));
        if !e.1.contains(&k) {
            e.1.push(k);
        }
        if seq >= to {
            break;
        }
    }
    Ok(out)
}

/// Brings the state up to what the stream holds of this host: the pieces it holds right
/// after the cursor are taken as shipped; those it holds after one it lacks (a publishing
/// pass that failed, then a stop) are returned, not to be sent again. Anything held that is
/// no piece of this journal is an error (another journal was shipped under this host name).
async fn reconcile(
    stream: &jetstream::stream::Stream,
    storage: &mut DirStorage,
    state: &mut State,
    opts: &ShipOptions,
) -> Result<Held> {
    let subject = format!("{}.{}.>", crate::SUBJECT_PREFIX, opts.host);
    let last = match stream.get_last_raw_message_by_subject(&subject).await {
        Ok(m) => m.sequence,
        Err(e) if e.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound => {
            if state.follower.blocks > 0 || state.follower.cursor() != Cursor::default() {
                return Err(FleetError::Usage(format!(
                    "stream {} holds nothing of host {}, but this journal shipped {} blocks to it: \
                     the stream was purged or made again; --from-start ships the whole journal again",
                    opts.stream, opts.host, state.follower.blocks
                )));
            }
            return Ok(Held::default());
        }
        Err(e) => return Err(nats_err(&opts.servers)(&e)),
    };
    let mut held = held_between(stream, &subject, state.floor + 1, last, &opts.servers).await?;
    held.retain(|(file, offset), _| {
        !state.follower.seen(&Piece {
            file: file.clone(),
            offset: *offset,
            bytes: Vec::new(),
        })
    });
    let mut out = Held::default();
    let mut cur = state.follower.cursor();
    // Taking pieces in while the stream holds every part of each.
    let mut contiguous = true;
    while !held.is_empty() {
        let (pieces, _) = pieces_from(storage, &cur, 8 << 20)?;
        if pieces.is_empty() {
            let ((file, offset), _) = held.iter().next().expect("not empty");
            return Err(FleetError::Usage(format!(
                "stream {} holds {file} at byte {offset} of host {}, which is not a piece of this \
                 journal (it ends at {cur:?}): another journal was shipped under this host name",
                opts.stream, opts.host
            )));
        }
        for p in &pieces {
            cur = Cursor::after(p);
            let Some((n, parts)) = held.remove(&(p.file.clone(), p.offset)) else {
                contiguous = false;
                continue;
            };
            if contiguous && parts.len() == n {
                state.follower.accept(p).map_err(|e| {
                    FleetError::Usage(format!(
                        "the journal does not verify here: {e} (run jcs verify)"
                    ))
                })?;
                continue;
            }
            contiguous = false;
            for k in parts {
                out.parts
                    .entry(p.file.clone())
                    .or_default()
                    .insert((p.offset, k));
            }
            out.end = Some(cur.clone());
        }
    }
    Ok(out)
}
