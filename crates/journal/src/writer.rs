//! A writer thread with a bounded queue and group commit: producers submit records and get a
//! ticket; the thread packs whatever is queued into one block, makes it durable, and then
//! acknowledges every ticket in it. While one block is being synced, the next one fills.
//!
//! With a linger time the thread also waits that long after the first record of a block for
//! more (at most one fdatasync per linger period under a steady stream), unless someone waits
//! for a ticket: [`Writer::wait`] asks for the block to be written at once.

use crate::journal::{Journal, JournalError};
use crate::storage::Storage;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Why a record was not (or will not be) acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriterError {
    #[error("nothing to submit")]
    Empty,
    #[error("journal writer stopped")]
    Stopped,
    #[error("journal writer poisoned")]
    Poisoned,
    /// A block could not be written or synced; nothing after it is acknowledged. `io` is
    /// the kind of the storage error, when there was one (`StorageFull`: the disk is full).
    #[error("{message}")]
    Failed {
        message: String,
        io: Option<std::io::ErrorKind>,
    },
}

impl WriterError {
    fn of(e: &JournalError) -> WriterError {
        WriterError::Failed {
            message: e.to_string(),
            io: match e {
                JournalError::Io { source, .. } => Some(source.kind()),
                _ => None,
            },
        }
    }

    /// The storage is full (ENOSPC): nothing more can be written until space is freed.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, WriterError::Failed { io: Some(k), .. } if *k == std::io::ErrorKind::StorageFull)
    }
}

#[derive(Debug, Default)]
struct Durable {
    /// The journal's next sequence number once the last block is durable: every ticket
    /// below it is acknowledged.
    count: u64,
    /// The first error; every later wait fails with it.
    error: Option<WriterError>,
    /// The storage is full: the block in hand is retried until it fits; meanwhile nothing
    /// is queued and waits fail at once with this error.
    full: Option<WriterError>,
    stopped: bool,
}

/// How often a block is retried while the storage is full.
const FULL_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// Records that go into one block, with their index keys when the producer knows them. An
/// empty batch asks the thread to write what it holds now.
struct Batch {
    records: Vec<Vec<u8>>,
    keys: Option<Vec<u64>>,
}

impl Batch {
    fn flush() -> Batch {
        Batch {
            records: Vec::new(),
            keys: None,
        }
    }
}

/// What the writer tells an indexer about each block it made durable: where it is, and the
/// keys of its records (sorted, each once) — what reading the block back would give
/// (`index::SegmentIndex::extend`), without reading, decompressing and decoding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockKeys {
    pub segment: u64,
    pub block: crate::index::BlockRef,
    /// The chain hash before the block and after it.
    pub prev_chain: crate::format::Hash,
    pub chain: crate::format::Hash,
    pub keys: Vec<u64>,
}

/// What gives the index keys of an encoded record (pushed onto the vector).
pub type KeysOf = dyn Fn(&[u8], &mut Vec<u64>) + Send;

/// How the writer feeds an indexer: `keys_of(record, out)` gives the keys of a record queued
/// without them (decoding it; producers that know their records' keys hand them over with
/// [`Writer::offer_keyed`]), and each block's [`BlockKeys`] go to `tx`.
pub struct Indexing {
    pub keys_of: Box<KeysOf>,
    pub tx: std::sync::mpsc::Sender<BlockKeys>,
}

impl std::fmt::Debug for Indexing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Indexing")
    }
}

/// Handle to the writer thread. Dropping it stops the thread after the queue is written.
#[derive(Debug)]
pub struct Writer {
    /// Sends and hands out tickets in one critical section, so ticket order is queue order.
    tx: Mutex<(u64, Option<SyncSender<Batch>>)>,
    durable: Arc<(Mutex<Durable>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

/// Acknowledgement that a record is durable: its sequence number in the journal.
pub type Ticket = u64;

impl Writer {
    /// Starts the writer on `journal`. `queue` bounds the records in flight (producers block
    /// when it is full); a block holds at most `max_batch` records.
    pub fn spawn<S: Storage + 'static>(
        journal: Journal<S>,
        queue: usize,
        max_batch: usize,
    ) -> Writer {
        Writer::spawn_lingering(journal, queue, max_batch, std::time::Duration::ZERO)
    }

    /// Like [`Writer::spawn`], and a block is written `linger` after its first record (or
    /// when it is full, or when someone waits), so that a steady stream costs at most one
    /// fdatasync per `linger`.
    pub fn spawn_lingering<S: Storage + 'static>(
        journal: Journal<S>,
        queue: usize,
        max_batch: usize,
        linger: std::time::Duration,
    ) -> Writer {
        Writer::spawn_indexed(journal, queue, max_batch, linger, None)
    }

    /// Like [`Writer::spawn_lingering`], and each block's keys go to an indexer.
    pub fn spawn_indexed<S: Storage + 'static>(
        journal: Journal<S>,
        queue: usize,
        max_batch: usize,
        linger: std::time::Duration,
        indexing: Option<Indexing>,
    ) -> Writer {
        let (tx, rx) = sync_channel::<Batch>(queue.max(1));
        let first = journal.next_seq();
        let durable = Arc::new((
            Mutex::new(Durable {
                count: first,
                ..Durable::default()
            }),
            Condvar::new(),
        ));
        let d = durable.clone();
        let thread = std::thread::Builder::new()
            .name("jcs-journal".into())
            .spawn(move || run(journal, rx, d, max_batch.max(1), linger, indexing))
            .expect("spawn the journal writer thread");
        Writer {
            tx: Mutex::new((first, Some(tx))),
            durable,
            thread: Some(thread),
        }
    }

    /// Queues a record; returns its ticket (= its sequence number). Blocks while the queue
    /// is full.
    pub fn submit(&self, record: Vec<u8>) -> Result<Ticket, WriterError> {
        self.submit_all(vec![record])
    }

    /// Queues records that go into the same block (one fdatasync); returns the ticket of the
    /// last one. `records` must not be empty.
    pub fn submit_all(&self, records: Vec<Vec<u8>>) -> Result<Ticket, WriterError> {
        self.offer(records).map_err(|(e, _)| e)
    }

    /// Like [`Writer::submit_all`], and while the storage is full the records are handed
    /// back with the error (the caller decides what their loss means).
    pub fn offer(&self, records: Vec<Vec<u8>>) -> Result<Ticket, (WriterError, Vec<Vec<u8>>)> {
        self.offer_keyed(records, None)
    }

    /// Like [`Writer::offer`], with the records' index keys (any order, repeats allowed)
    /// when the producer knows them: the writer then decodes nothing for its indexer.
    pub fn offer_keyed(
        &self,
        records: Vec<Vec<u8>>,
        keys: Option<Vec<u64>>,
    ) -> Result<Ticket, (WriterError, Vec<Vec<u8>>)> {
        if records.is_empty() {
            return Err((WriterError::Empty, records));
        }
        if let Some(e) = self.full() {
            return Err((e, records));
        }
        self.queue(Batch { records, keys })
            .map_err(|e| (e, Vec::new()))
    }

    fn queue(&self, batch: Batch) -> Result<Ticket, WriterError> {
        let mut g = self.tx.lock().map_err(|_| WriterError::Poisoned)?;
        let n = batch.records.len() as u64;
        let ticket = g.0 + n - 1;
        let tx = g.1.as_ref().ok_or(WriterError::Stopped)?;
        tx.send(batch)
            .map_err(|_| self.error().unwrap_or(WriterError::Stopped))?;
        g.0 += n;
        Ok(ticket)
    }

    fn error(&self) -> Option<WriterError> {
        self.durable.0.lock().ok().and_then(|d| d.error.clone())
    }

    /// The disk-full error while the storage is full (the writer retries its block every
    /// 500 ms and takes nothing new); None when it writes.
    pub fn full(&self) -> Option<WriterError> {
        self.durable.0.lock().ok().and_then(|d| d.full.clone())
    }

    /// Blocks until the record with `ticket` is durable (asking a lingering thread to write
    /// its block now).
    pub fn wait(&self, ticket: Ticket) -> Result<(), WriterError> {
        if let Ok(g) = self.tx.lock() {
            if let Some(tx) = &g.1 {
                // Full: the thread is busy writing anyway.
                let _ = tx.try_send(Batch::flush());
            }
        }
        let (m, cv) = &*self.durable;
        let mut d = m.lock().map_err(|_| WriterError::Poisoned)?;
        loop {
            if d.count > ticket {
                return Ok(());
            }
            if let Some(e) = d.error.as_ref().or(d.full.as_ref()) {
                return Err(e.clone());
            }
            if d.stopped {
                return Err(WriterError::Stopped);
            }
            d = cv.wait(d).map_err(|_| WriterError::Poisoned)?;
        }
    }

    /// Submits and waits: the record is durable when this returns.
    pub fn append(&self, record: Vec<u8>) -> Result<Ticket, WriterError> {
        let t = self.submit(record)?;
        self.wait(t)?;
        Ok(t)
    }

    /// Writes what is queued and stops the thread.
    pub fn close(mut self) -> Result<(), WriterError> {
        self.stop();
        match self.error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn stop(&mut self) {
        if let Ok(mut g) = self.tx.lock() {
            g.1 = None;
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run<S: Storage>(
    mut journal: Journal<S>,
    rx: Receiver<Batch>,
    durable: Arc<(Mutex<Durable>, Condvar)>,
    max_batch: usize,
    linger: std::time::Duration,
    mut indexing: Option<Indexing>,
) {
    let (m, cv) = &*durable;
    let finish = |error: Option<WriterError>| {
        if let Ok(mut d) = m.lock() {
            if d.error.is_none() {
                d.error = error;
            }
            d.stopped = true;
        }
        cv.notify_all();
    };
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(max_batch);
    // The keys of the records in `batch` (when an indexer is fed).
    let mut keys: Vec<u64> = Vec::new();
    fn take(ix: &Option<Indexing>, b: Batch, batch: &mut Vec<Vec<u8>>, keys: &mut Vec<u64>) {
        if let Some(ix) = ix {
            match b.keys {
                Some(k) => keys.extend(k),
                None => b.records.iter().for_each(|r| (ix.keys_of)(r, keys)),
            }
        }
        batch.extend(b.records);
    }
    loop {
        // Wait for the first record, then take whatever else is already queued (or arrives
        // within the linger time).
        let mut now = match rx.recv() {
            Ok(b) => {
                let flush = b.records.is_empty();
                take(&indexing, b, &mut batch, &mut keys);
                flush
            }
            Err(_) => return finish(None),
        };
        let deadline = std::time::Instant::now() + linger;
        while batch.len() < max_batch && !now {
            let next = if linger.is_zero() {
                rx.try_recv().map_err(|e| e == TryRecvError::Disconnected)
            } else {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                rx.recv_timeout(left)
                    .map_err(|e| e == RecvTimeoutError::Disconnected)
            };
            match next {
                Ok(b) if b.records.is_empty() => now = true,
                Ok(b) => take(&indexing, b, &mut batch, &mut keys),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        loop {
            match journal.append(&batch) {
                Ok(a) => {
                    if let Ok(mut d) = m.lock() {
                        d.count = journal.next_seq();
                        d.full = None;
                    }
                    cv.notify_all();
                    batch.clear();
                    if let Some(ix) = &indexing {
                        keys.sort_unstable();
                        keys.dedup();
                        let b = BlockKeys {
                            segment: a.segment,
                            block: crate::index::BlockRef {
                                offset: a.offset,
                                len: a.bytes,
                                first_seq: a.first_seq,
                                count: a.count,
                            },
                            prev_chain: a.prev_chain,
                            chain: a.chain,
                            keys: std::mem::take(&mut keys),
                        };
                        if ix.tx.send(b).is_err() {
                            // The indexer is gone (it reads the blocks back if it comes again).
                            indexing = None;
                        }
                    }
                    break;
                }
                Err(e) => {
                    let e = WriterError::of(&e);
                    if !e.is_disk_full() {
                        // Nothing after a failed block is acknowledged: stop here.
                        return finish(Some(e));
                    }
                    // A full disk: the journal left no partial block; the same block is
                    // tried again once there is room (nothing after it is acknowledged).
                    if let Ok(mut d) = m.lock() {
                        d.full = Some(e);
                    }
                    cv.notify_all();
                    match rx.recv_timeout(FULL_RETRY) {
                        // (Nothing is queued while full; a flush request is harmless.)
                        Ok(b) => take(&indexing, b, &mut batch, &mut keys),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => {
                            let e = m.lock().ok().and_then(|d| d.full.clone());
                            return finish(e);
                        }
                    }
                }
            }
        }
    }
}
