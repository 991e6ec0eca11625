//! `jcs daemon`: the one monitor of the host. It owns the BPF programs (one set for all VEs)
//! and the journal writer; `jcs run` asks it to watch a VE's cgroup before the app's first
//! instruction and to flush once the VE has exited. The whole API is [`Request`] /
//! [`Response`], one JSON object per line over a Unix socket that only root can open.
//!
//! Threads: the accept loop (one short thread per connection), the monitor thread (BPF maps,
//! ring buffer, translator; woken by an eventfd for commands and by the ring buffer's epoll
//! fd, with a 10 ms timeout because the kernel side batches wake-ups), the journal writer.
//!
//! Journal records written by the daemon: `V` + JSON `[[id, VarDef], ...]` (variable
//! definitions, always before their first use) and `A` + `model::at::encode_batch`.

use crate::store::Store;
use anyhow::{bail, Context, Result};
use model::at::{encode_batch, VarId};
use monitor::decode::{decode, Event};
use monitor::loader::Monitor;
use monitor::translate::{Output, Translator};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    Ping,
    /// Start recording cgroup `cgroup_id` as VE `ve`.
    Watch {
        cgroup_id: u64,
        ve: u64,
        /// The host tid of the VE's init, whose own system calls are not recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        init: Option<u32>,
        /// The directories inside the VE that reach outside it (persistent, shared); with
        /// them, failed lookups elsewhere in its file system are counted, not recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outside: Option<Vec<String>>,
    },
    /// Stop recording it, after everything it did is durable in the journal.
    Unwatch {
        cgroup_id: u64,
    },
    Stats,
    /// Who the daemon is: its pid, its binary, how many VEs it watches.
    Status,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    Ok,
    Status {
        pid: u32,
        /// (device, inode) of the daemon's executable: a rebuilt or upgraded jcs differs.
        exe: (u64, u64),
        watched: u64,
    },
    Stats {
        seen: u64,
        skipped: u64,
        emitted: u64,
        lost: u64,
    },
    Error {
        message: String,
    },
}

pub fn socket_path(home: &Path) -> PathBuf {
    home.join("daemon.sock")
}

/// Journal record tags.
pub const REC_VARS: u8 = b'V';
pub const REC_ATS: u8 = b'A';
pub const REC_STATS: u8 = b'S';
/// Written by `jcs summarize` into summary files: a tier byte (1, 2, 4), then
/// `analysis::summary::encode`d summaries.
pub const REC_SUMMARIES: u8 = b'T';

/// The tiers a `T` record can hold, by their byte.
const TIERS: [(u8, &str); 3] = [(1, "T1"), (2, "T2"), (4, "T4")];

/// The name of a `T` record's tier byte.
pub fn tier_name(code: u8) -> &'static str {
    TIERS
        .iter()
        .find(|t| t.0 == code)
        .map_or("summary", |t| t.1)
}

/// The tier byte of a tier's name.
pub fn tier_code(name: &str) -> Option<u8> {
    TIERS.iter().find(|t| t.1 == name).map(|t| t.0)
}

/// What the kernel counted for one VE, written when it is unwatched (`S` records).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct VeStats {
    pub ve: u64,
    /// System calls its tasks entered.
    pub seen: u64,
    /// Records the kernel emitted (system calls of interest, forks, execs, exits).
    pub emitted: u64,
    /// Records lost because the ring buffer was full (also written as a gap transaction).
    pub lost: u64,
    /// System calls entered, by number (of `arch`).
    pub calls: Vec<(u32, u64)>,
    /// Calls not recorded by classification (in the kernel: what stays inside the VE or moves
    /// no data, e.g. reads of files only in read-only branches, pipes; in the daemon: failed
    /// lookups in the VE's own file system).
    #[serde(default)]
    pub dropped: u64,
    /// The same, by number.
    #[serde(default)]
    pub dropped_calls: Vec<(u32, u64)>,
    pub arch: String,
}

struct Cmd {
    req: Request,
    reply: mpsc::Sender<Response>,
}

fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the timespec we pass.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// Realtime minus monotonic: turns the kernel's timestamps into wall-clock time.
fn clock_offset_ns() -> i64 {
    clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC)
}

/// The journal's options: defaults, and `JCS_SEGMENT_BYTES` (the segment size).
fn journal_options() -> Result<journal::Options> {
    let mut o = journal::Options::default();
    if let Ok(v) = std::env::var("JCS_SEGMENT_BYTES") {
        o.segment_max_bytes = model::limits::parse_size(&v)
            .ok()
            .filter(|&n| n >= 1024)
            .with_context(|| {
                format!("JCS_SEGMENT_BYTES={v:?}: expected a size of at least 1024 bytes")
            })?;
    }
    Ok(o)
}

/// Runs the daemon in the foreground until it is killed.
pub fn run(store: &Store, online: bool) -> Result<()> {
    let home = store.layout.root();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.join("daemon.lock"))
        .context("open daemon.lock")?;
    if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        bail!("a jcs daemon is already running for {}", home.display());
    }
    let dir = home.join("journal");
    let (journal, recovery) =
        journal::Journal::open(journal::DirStorage::new(&dir)?, journal_options()?)
            .with_context(|| format!("open the journal at {}", dir.display()))?;
    if let Some((seg, off, cut)) = &recovery.truncated {
        eprintln!("jcs daemon: journal recovery cut a torn tail of {cut} bytes at {seg}:{off}");
    }
    for (q, why) in &recovery.quarantined {
        eprintln!("jcs daemon: journal segment quarantined as {q}: {why}");
    }
    // Indexes sealed segments, brings the catalog's variable dictionary up to date, and finds
    // the next variable id, reading only the open segment.
    let first_var = crate::journal_index::next_var_id(&dir, &store.catalog)?;
    let running = running_ves(store);
    let catalog_path = store.layout.catalog();
    {
        let (dir, catalog_path) = (dir.clone(), catalog_path.clone());
        std::thread::Builder::new()
            .name("jcs-indexer".into())
            .spawn(move || indexer(&dir, &catalog_path))?;
    }
    // A block (one fdatasync) at most every 10 ms under a steady stream; a VE that ends (an
    // Unwatch waits for its last records) is written at once.
    let writer = journal::writer::Writer::spawn_lingering(
        journal,
        1024,
        256,
        std::time::Duration::from_millis(10),
    );
    let (tx, rx) = mpsc::channel::<Cmd>();
    // SAFETY: eventfd(2) with constant flags; the fd is owned right away.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if efd < 0 {
        bail!("eventfd: {}", std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd that nothing else owns.
    let efd = unsafe { OwnedFd::from_raw_fd(efd) };
    let wake = efd.try_clone()?;
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    std::thread::Builder::new()
        .name("jcs-monitor".into())
        .spawn(move || {
            let setup = Setup {
                first_var,
                catalog: catalog_path,
                running,
                online: online.then(Online::new),
            };
            if let Err(e) = monitor_loop(rx, efd, writer, setup, &ready_tx) {
                let _ = ready_tx.send(Err(format!("{e:#}")));
                eprintln!("jcs daemon: monitor stopped: {e:#}");
                std::process::exit(1);
            }
        })?;
    ready_rx
        .recv()
        .context("the monitor thread ended")?
        .map_err(|e| anyhow::anyhow!(e))?;
    let sock = socket_path(home);
    let _ = std::fs::remove_file(&sock);
    let listener =
        UnixListener::bind(&sock).with_context(|| format!("listen on {}", sock.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600))?;
    std::fs::write(home.join("daemon.pid"), std::process::id().to_string())?;
    eprintln!(
        "jcs daemon: monitoring, journal {}, socket {}",
        dir.display(),
        sock.display()
    );
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let tx = tx.clone();
        let wake = wake.try_clone()?;
        std::thread::spawn(move || serve(conn, tx, wake));
    }
    Ok(())
}

fn serve(conn: UnixStream, tx: mpsc::Sender<Cmd>, wake: OwnedFd) {
    let mut w = match conn.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    for line in BufReader::new(conn).lines() {
        let Ok(line) = line else { return };
        let resp = match serde_json::from_str::<Request>(&line) {
            Err(e) => Response::Error {
                message: format!("bad request: {e}"),
            },
            Ok(req) => {
                let (rtx, rrx) = mpsc::channel();
                if tx.send(Cmd { req, reply: rtx }).is_err() {
                    return;
                }
                let one = 1u64.to_ne_bytes();
                // SAFETY: writes 8 bytes to our eventfd to wake the monitor thread.
                unsafe { libc::write(wake.as_raw_fd(), one.as_ptr().cast(), 8) };
                rrx.recv().unwrap_or(Response::Error {
                    message: "the monitor stopped".into(),
                })
            }
        };
        let mut s = serde_json::to_string(&resp).unwrap_or_default();
        s.push('\n');
        if w.write_all(s.as_bytes()).is_err() {
            return;
        }
    }
}

/// A VE that was running when this daemon started: recorded again from now on.
#[derive(Debug, Clone, Copy)]
struct Rewatch {
    cgroup_id: u64,
    ve: u64,
    init: Option<u32>,
}

/// The VEs whose `jcs run` is alive: a daemon that starts while they run (the previous one
/// was killed or restarted) watches them again, after a gap.
fn running_ves(store: &Store) -> Vec<Rewatch> {
    let rows = match store.catalog.ves() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("jcs daemon: cannot list running VEs: {e:#}");
            return vec![];
        }
    };
    rows.iter()
        .filter(|r| r.state == "running" && crate::ves::owner_alive(r))
        .filter_map(|r| {
            let meta: crate::ves::VeMeta = serde_json::from_slice(
                &std::fs::read(store.layout.meta(model::VeId(r.id)).join("ve.json")).ok()?,
            )
            .ok()?;
            Some(Rewatch {
                cgroup_id: r.cgroup_id.or(meta.cgroup_id)?,
                ve: r.id,
                init: meta.init_pid.map(|p| p as u32),
            })
        })
        .collect()
}

/// Indexes each segment once it is sealed (they never change after that).
fn indexer(dir: &Path, catalog: &Path) {
    let cat = match crate::catalog::Catalog::open(catalog) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("jcs daemon: indexer: {e:#}");
            return;
        }
    };
    loop {
        std::thread::sleep(std::time::Duration::from_secs(5));
        if let Err(e) = crate::journal_index::index_sealed(dir, &cat) {
            eprintln!("jcs daemon: indexer: {e:#}");
        }
    }
}

/// What the monitor thread starts from.
struct Setup {
    /// The next variable id.
    first_var: VarId,
    catalog: PathBuf,
    /// VEs running unrecorded, to watch again.
    running: Vec<Rewatch>,
    online: Option<Online>,
}

fn monitor_loop(
    rx: mpsc::Receiver<Cmd>,
    efd: OwnedFd,
    writer: journal::writer::Writer,
    setup: Setup,
    ready: &mpsc::Sender<Result<(), String>>,
) -> Result<()> {
    let Setup {
        first_var,
        catalog,
        running,
        mut online,
    } = setup;
    let cat = crate::catalog::Catalog::open(&catalog)?;
    let m = Monitor::start()?;
    let pending = std::cell::RefCell::new(Vec::<Event>::new());
    let ring = m.ring(|b| {
        if let Ok(e) = decode(b) {
            pending.borrow_mut().push(e);
        }
    })?;
    // SAFETY: epoll_create1 with a constant flag; owned right away.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        bail!("epoll_create1: {}", std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd.
    let ep = unsafe { OwnedFd::from_raw_fd(ep) };
    for fd in [efd.as_raw_fd(), ring.epoll_fd()] {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: fd as u64,
        };
        // SAFETY: registers a valid fd with our epoll instance.
        if unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) } != 0 {
            bail!("epoll_ctl: {}", std::io::Error::last_os_error());
        }
    }
    let mut t = Translator::new(first_var, clock_offset_ns());
    let mut last_ticket: Option<u64> = None;
    // VEs that ran on while no daemon recorded them: watched again, after a gap transaction
    // that says so (its count is unknown: length 0, result -1).
    let mut gaps = Vec::new();
    let mut watched = 0usize;
    for r in &running {
        match r.init {
            Some(tid) => t.watch_with_init(r.cgroup_id, r.ve, tid),
            None => t.watch(r.cgroup_id, r.ve),
        }
        match m.watch(r.cgroup_id, r.ve) {
            Ok(()) => {
                watched += 1;
                eprintln!(
                    "jcs daemon: VE {} was running unrecorded; recording it again",
                    r.ve
                );
                gaps.push(gap_at(r.ve, 0, -1));
            }
            Err(e) => eprintln!("jcs daemon: cannot watch VE {} again: {e}", r.ve),
        }
    }
    if !gaps.is_empty() {
        let mut rec = vec![REC_ATS];
        rec.extend(encode_batch(&gaps));
        last_ticket = submit(&writer, vec![rec])?;
    }
    let _ = ready.send(Ok(()));
    let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 4];
    loop {
        // SAFETY: waits on our epoll instance into a stack array of the stated length.
        unsafe { libc::epoll_wait(ep.as_raw_fd(), evs.as_mut_ptr(), evs.len() as i32, 10) };
        let mut buf = [0u8; 8];
        // SAFETY: drains the (non-blocking) eventfd counter.
        unsafe { libc::read(efd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
        // Commands first: a Watch must reach the translator before the cgroup's first record.
        let mut replies = Vec::new();
        while let Ok(cmd) = rx.try_recv() {
            match cmd.req {
                Request::Ping => replies.push((cmd.reply, Response::Ok)),
                Request::Status => replies.push((
                    cmd.reply,
                    Response::Status {
                        pid: std::process::id(),
                        exe: own_exe(),
                        watched: watched as u64,
                    },
                )),
                Request::Watch {
                    cgroup_id,
                    ve,
                    init,
                    outside,
                } => {
                    match init {
                        Some(tid) => t.watch_with_init(cgroup_id, ve, tid),
                        None => t.watch(cgroup_id, ve),
                    }
                    if let Some(dirs) = outside {
                        t.set_outside(cgroup_id, &dirs);
                    }
                    let r = match m.watch(cgroup_id, ve) {
                        Ok(()) => {
                            watched += 1;
                            Response::Ok
                        }
                        Err(e) => Response::Error {
                            message: e.to_string(),
                        },
                    };
                    replies.push((cmd.reply, r));
                }
                Request::Unwatch { cgroup_id } => {
                    // Everything the VE did is in the ring buffer by now (it has exited):
                    // drain it, write it, wait until it is durable, then forget the cgroup.
                    ring.consume()?;
                    // The VE's last transactions, a gap if records were lost, and its
                    // counters, in one block: one fdatasync.
                    let mut records = translate(&pending, &mut t, &cat, online.as_mut(), true)?;
                    match ve_stats(&m, cgroup_id, &t) {
                        Ok(Some((stats, gap))) => {
                            if let Some(g) = gap {
                                let mut r = vec![REC_ATS];
                                r.extend(encode_batch(&[g]));
                                records.push(r);
                            }
                            let mut r = vec![REC_STATS];
                            r.extend(serde_json::to_vec(&stats)?);
                            records.push(r);
                        }
                        Ok(None) => {}
                        Err(e) => eprintln!("jcs daemon: counters of cgroup {cgroup_id}: {e:#}"),
                    }
                    last_ticket = submit(&writer, records)?.or(last_ticket);
                    let r = match last_ticket.map(|tk| writer.wait(tk)) {
                        Some(Err(e)) => Response::Error {
                            message: format!("journal: {e}"),
                        },
                        _ => match m.unwatch(cgroup_id) {
                            Ok(()) => Response::Ok,
                            Err(e) => Response::Error {
                                message: e.to_string(),
                            },
                        },
                    };
                    if t.ve_of(cgroup_id).is_some() {
                        watched = watched.saturating_sub(1);
                    }
                    t.unwatch(cgroup_id);
                    replies.push((cmd.reply, r));
                }
                Request::Stats => {
                    let r = match m.stats() {
                        Ok(s) => Response::Stats {
                            seen: s.seen,
                            skipped: s.skipped,
                            emitted: s.emitted,
                            lost: s.lost,
                        },
                        Err(e) => Response::Error {
                            message: e.to_string(),
                        },
                    };
                    replies.push((cmd.reply, r));
                }
            }
        }
        ring.consume()?;
        let records = translate(&pending, &mut t, &cat, online.as_mut(), false)?;
        last_ticket = submit(&writer, records)?.or(last_ticket);
        for (reply, r) in replies {
            let _ = reply.send(r);
        }
    }
}

/// (device, inode) of this process's executable.
fn own_exe() -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/exe")
        .map(|m| (m.dev(), m.ino()))
        .unwrap_or_default()
}

/// A gap in a VE's recording: `lost` records the kernel could not deliver (`result` the
/// same), or, with `result` -1, a time when no daemon was recording it (count unknown).
fn gap_at(ve: u64, lost: u64, result: i64) -> model::at::At {
    model::at::At {
        time_ns: clock_ns(libc::CLOCK_REALTIME) as u64,
        ve,
        pid: 0,
        tid: 0,
        op: model::at::Op::Gap,
        status: model::at::Status::Failed,
        src: 0,
        dst: 0,
        off: 0,
        len: lost,
        result,
    }
}

/// The kernel's counters of a VE, and a gap transaction when records were lost.
fn ve_stats(
    m: &Monitor,
    cgroup_id: u64,
    t: &Translator,
) -> Result<Option<(VeStats, Option<model::at::At>)>> {
    let Some(ve) = t.ve_of(cgroup_id) else {
        return Ok(None);
    };
    let c = m.ve_counters(cgroup_id)?.unwrap_or_default();
    let counts = m.take_counts(cgroup_id)?;
    let calls: Vec<(u32, u64)> = counts.iter().filter(|c| !c.1).map(|c| (c.0, c.2)).collect();
    // Dropped in the kernel, and by the translator (failed lookups in the VE's own files).
    let mut dropped: std::collections::BTreeMap<u32, u64> = Default::default();
    for (nr, n) in counts
        .iter()
        .filter(|c| c.1)
        .map(|c| (c.0, c.2))
        .chain(t.dropped_calls(cgroup_id))
    {
        *dropped.entry(nr).or_default() += n;
    }
    let dropped_calls: Vec<(u32, u64)> = dropped.into_iter().collect();
    let gap = (c.lost > 0).then(|| gap_at(ve, c.lost, c.lost as i64));
    let stats = VeStats {
        ve,
        seen: calls.iter().map(|c| c.1).sum(),
        emitted: t.received(cgroup_id) + c.lost,
        lost: c.lost,
        dropped: dropped_calls.iter().map(|c| c.1).sum(),
        calls,
        dropped_calls,
        arch: std::env::consts::ARCH.into(),
    };
    Ok(Some((stats, gap)))
}

/// Translates what the ring buffer delivered into journal records: variable definitions
/// first, then the transactions. New variables go into the catalog's dictionary before they
/// reach the journal (so the dictionary never lacks a variable the journal has, barring a
/// power failure, which `journal_index::next_var_id` repairs).
/// T1 summarization online (`jcs daemon --summarize online`): the transactions that move data
/// reach the journal as T1 summaries (`T` records), the others as transactions.
#[derive(Debug)]
pub struct Online {
    t1: analysis::summary::OnlineT1,
    /// Variables that are not files (memories, endpoints, sockets), and the volatile ones.
    not_files: std::collections::HashSet<VarId>,
    volatile: std::collections::HashSet<VarId>,
}

impl Online {
    fn new() -> Online {
        Online {
            t1: analysis::summary::OnlineT1::new(),
            not_files: Default::default(),
            volatile: Default::default(),
        }
    }
}

fn translate(
    pending: &std::cell::RefCell<Vec<Event>>,
    t: &mut Translator,
    cat: &crate::catalog::Catalog,
    online: Option<&mut Online>,
    force: bool,
) -> Result<Vec<Vec<u8>>> {
    let events = std::mem::take(&mut *pending.borrow_mut());
    let mut out = Vec::new();
    for e in &events {
        t.push(e, &mut out);
    }
    let mut vars = Vec::new();
    let mut ats = Vec::new();
    for o in out {
        match o {
            Output::Var(id, d) => vars.push((id, d)),
            Output::At(a) => ats.push(a),
        }
    }
    let mut records = Vec::new();
    if !vars.is_empty() {
        cat.add_vars(&vars)?;
        let mut r = vec![REC_VARS];
        r.extend(serde_json::to_vec(&vars)?);
        records.push(r);
    }
    if let Some(o) = online {
        for (id, d) in &vars {
            if !d.is_file() {
                o.not_files.insert(*id);
            }
            if d.is_volatile() {
                o.volatile.insert(*id);
            }
        }
        let flows = analysis::flows(&ats, |v| !o.not_files.contains(&v));
        let moved: std::collections::HashSet<usize> = flows.iter().map(|f| f.at).collect();
        o.t1.push(flows);
        ats = ats
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !moved.contains(i))
            .map(|(_, a)| a)
            .collect();
        // Arrival order across CPUs differs from time order by microseconds (a record is
        // stamped right after it is reserved): what is older than "now" minus a margin is
        // complete — 50 ms while VEs run, 1 ms when a VE has ended and its records were drained.
        let now = clock_ns(libc::CLOCK_REALTIME) as u64;
        let margin = if force { 1_000_000 } else { 50_000_000 };
        let sts = o.t1.take(&o.volatile, now.saturating_sub(margin), force);
        if !sts.is_empty() {
            let mut r = vec![REC_SUMMARIES, 1];
            r.extend(analysis::summary::encode(&sts));
            records.push(r);
        }
    }
    if !ats.is_empty() {
        let mut r = vec![REC_ATS];
        r.extend(encode_batch(&ats));
        records.push(r);
    }
    Ok(records)
}

/// Queues records as one block; the ticket of the last, if any.
fn submit(w: &journal::writer::Writer, records: Vec<Vec<u8>>) -> Result<Option<u64>> {
    if records.is_empty() {
        return Ok(None);
    }
    Ok(Some(w.submit_all(records).map_err(|e| anyhow::anyhow!(e))?))
}

/// `jcs run`'s side: watch the VE's cgroup before the app starts, flush after it exits.
/// `JCS_MONITOR=off` runs VEs unrecorded (for kernels without the BPF features JCS needs).
/// `outside`: the VE's directories that reach outside it (persistent and shared).
pub fn monitor_hooks(store: &Store, ve: model::VeId, outside: Vec<String>) -> Option<MonitorHooks> {
    if std::env::var("JCS_MONITOR").is_ok_and(|v| v == "off") {
        return None;
    }
    Some(MonitorHooks {
        home: store.layout.root().to_path_buf(),
        ve: ve.0,
        outside,
        client: None,
        cgroup_id: 0,
    })
}

#[derive(Debug)]
pub struct MonitorHooks {
    home: PathBuf,
    ve: u64,
    outside: Vec<String>,
    client: Option<Client>,
    cgroup_id: u64,
}

impl ve::launch::Hooks for MonitorHooks {
    fn before_release(&mut self, pid: i32, cgroup: &ve::VeCgroup) -> Result<(), String> {
        let mut c = Client::connect_or_start(&self.home).map_err(|e| format!("{e:#}"))?;
        match c
            .call(&Request::Watch {
                cgroup_id: cgroup.id,
                ve: self.ve,
                init: Some(pid as u32),
                outside: Some(self.outside.clone()),
            })
            .map_err(|e| format!("{e:#}"))?
        {
            Response::Ok => {}
            r => return Err(format!("jcs daemon refused to watch the VE: {r:?}")),
        }
        self.cgroup_id = cgroup.id;
        self.client = Some(c);
        Ok(())
    }

    fn after_exit(&mut self) -> Result<(), String> {
        let Some(mut c) = self.client.take() else {
            return Ok(());
        };
        let unwatch = Request::Unwatch {
            cgroup_id: self.cgroup_id,
        };
        match c.call(&unwatch) {
            Ok(Response::Ok) => Ok(()),
            Ok(r) => Err(format!("jcs daemon: {r:?}")),
            Err(e) => {
                // The daemon that watched this VE is gone. A daemon started since then
                // watches it again (after a gap): flush what it recorded.
                let again = Client::connect(&self.home)
                    .map_err(anyhow::Error::from)
                    .and_then(|mut c| c.call(&unwatch));
                let after = match again {
                    Ok(Response::Ok) => "; a restarted daemon recorded it again after a gap",
                    _ => "",
                };
                Err(format!("{e:#}{after}"))
            }
        }
    }
}

/// A connection to the daemon.
#[derive(Debug)]
pub struct Client {
    r: BufReader<UnixStream>,
    w: UnixStream,
}

impl Client {
    pub fn connect(home: &Path) -> std::io::Result<Client> {
        let s = UnixStream::connect(socket_path(home))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Client {
            r: BufReader::new(s.try_clone()?),
            w: s,
        })
    }

    /// Connects, starting a daemon for this store when none answers. A daemon that runs a
    /// different jcs binary (jcs was rebuilt or upgraded: its BPF programs and record format
    /// may differ) is replaced when it records no VE, and kept with a warning otherwise.
    pub fn connect_or_start(home: &Path) -> Result<Client> {
        if let Ok(mut c) = Client::connect(home) {
            match c.call(&Request::Status) {
                Ok(Response::Status { exe, .. }) if exe == own_exe() => return Ok(c),
                Ok(Response::Status {
                    pid, watched: 0, ..
                }) => {
                    eprintln!("jcs: the daemon (pid {pid}) runs another jcs binary; restarting it");
                    drop(c);
                    // SAFETY: SIGTERM to this store's daemon, by the pid it reported.
                    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
                    // Wait until it is gone, not only its socket: it holds the store's daemon
                    // lock until its last file is closed (detaching BPF programs takes a while).
                    for _ in 0..1000 {
                        if !Path::new(&format!("/proc/{pid}")).exists() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                Ok(Response::Status { pid, watched, .. }) => {
                    eprintln!(
                        "jcs: warning: the daemon (pid {pid}) runs another jcs binary and records \
                         {watched} VE(s); restart it once they end"
                    );
                    return Ok(c);
                }
                // An older daemon without Status.
                _ => return Ok(Client::connect(home)?),
            }
        }
        let exe = std::env::current_exe().context("find the jcs binary")?;
        let log_path = home.join("daemon.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let log_start = log.metadata()?.len();
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("--home")
            .arg(home)
            .arg("daemon")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        use std::os::unix::process::CommandExt;
        // SAFETY: between fork and exec only async-signal-safe calls: a new session, and a
        // second fork whose parent exits at once, so that the daemon is nobody's child (it
        // is not left a zombie of this jcs run when it dies, and outlives it cleanly).
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                match libc::fork() {
                    -1 => Err(std::io::Error::last_os_error()),
                    0 => Ok(()),
                    _ => libc::_exit(0),
                }
            });
        }
        cmd.spawn()
            .context("start jcs daemon")?
            .wait()
            .context("start jcs daemon")?;
        for _ in 0..500 {
            if let Ok(c) = Client::connect(home) {
                return Ok(c);
            }
            // A daemon that fails says why in its log, as its last line, and exits.
            let log = std::fs::read(&log_path).unwrap_or_default();
            let new = String::from_utf8_lossy(log.get(log_start as usize..).unwrap_or_default());
            if let Some(l) = new.lines().rev().find(|l| l.starts_with("jcs: ")) {
                bail!("jcs daemon exited: {}", l.trim_start_matches("jcs: "));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        bail!(
            "jcs daemon did not come up within 5 s (see {})",
            log_path.display()
        )
    }

    pub fn call(&mut self, req: &Request) -> Result<Response> {
        let mut s = serde_json::to_string(req)?;
        s.push('\n');
        self.w
            .write_all(s.as_bytes())
            .context("send to jcs daemon")?;
        let mut line = String::new();
        self.r
            .read_line(&mut line)
            .context("read from jcs daemon")?;
        if line.is_empty() {
            bail!("jcs daemon closed the connection");
        }
        serde_json::from_str(&line).context("decode the daemon's response")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_is_one_json_object_per_message() {
        let r = Request::Watch {
            cgroup_id: 9,
            ve: 3,
            init: None,
            outside: None,
        };
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(j, r#"{"request":"watch","cgroup_id":9,"ve":3}"#);
        assert_eq!(serde_json::from_str::<Request>(&j).unwrap(), r);
        let e = Response::Error {
            message: "x".into(),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"response":"error","message":"x"}"#
        );
    }
}
