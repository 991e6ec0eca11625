//! `jcs daemon`: the one daemon of the host, recorder of every store (or, when that daemon
//! already runs, a store's companion that hands its store to it: [`run`]). Threads: an accept
//! loop per store and one for the host's socket (one short thread per connection), the
//! monitor thread (BPF maps, ring buffer, a translator per store; woken by an eventfd for
//! commands and by the ring buffer's epoll fd, with a 10 ms timeout because the kernel side
//! batches wake-ups — 1 s while idle), a journal writer and an indexer per store.
//!
//! Records written: `record::Record::Vars` (always before the first use of a variable),
//! `Ats`, `Stats` when a VE is unwatched (with a gap transaction when records were lost), and
//! with online summarization, T1 `Summaries`.

use crate::protocol::{own_exe, socket_path, Request, Response};
use crate::{io_err, os_err, RecorderError, Result};
use model::at::{At, VarId};
use monitor::decode::Batch;
use monitor::loader::Monitor;
use monitor::translate::{Output, Translator};
use record::{Record, Tier, VeStats};
use rustix::event::epoll;
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use store::Store;

/// What `jcs daemon` was asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Summarize (T1) before records reach the journal.
    pub online_t1: bool,
    /// Serve Prometheus metrics (`GET /metrics`) on this address.
    pub metrics: Option<std::net::SocketAddr>,
    /// The journal's segment size (else `JCS_SEGMENT_BYTES` of the host's daemon, else the
    /// default).
    pub segment_bytes: Option<u64>,
}

struct Cmd {
    /// Which served store it is for (`usize::MAX`: the host's socket, no store).
    store: usize,
    req: Request,
    reply: mpsc::Sender<Response>,
}

fn clock_ns(clock: rustix::time::ClockId) -> i64 {
    let ts = rustix::time::clock_gettime(clock);
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

fn now_ns() -> u64 {
    clock_ns(rustix::time::ClockId::Realtime) as u64
}

/// Realtime minus monotonic: turns the kernel's timestamps into wall-clock time.
fn clock_offset_ns() -> i64 {
    clock_ns(rustix::time::ClockId::Realtime) - clock_ns(rustix::time::ClockId::Monotonic)
}

/// The journal's options: defaults, and `JCS_SEGMENT_BYTES` (the segment size).
fn journal_options() -> Result<journal::Options> {
    let mut o = journal::Options::default();
    if let Ok(v) = std::env::var("JCS_SEGMENT_BYTES") {
        o.segment_max_bytes = model::limits::parse_size(&v)
            .ok()
            .filter(|&n| n >= 1024)
            .ok_or(RecorderError::SegmentBytes(v))?;
    }
    Ok(o)
}

/// Sets up the daemon's log: `tracing` events with a timestamp and a level on stderr (which
/// `jcs run` points at `$JCS_HOME/daemon.log`). `RUST_LOG`-style filtering is not needed:
/// the recorder logs only what an operator acts on, never per system call.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .with_max_level(tracing::Level::INFO)
        .try_init();
}

/// Where the daemons of one host meet: `JCS_RUN_DIR`, else `/run/jcs`. The daemon that holds
/// `host.lock` there serves every store on `host.sock`; each test of the suite has its own.
pub fn run_dir() -> PathBuf {
    std::env::var_os("JCS_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/jcs"))
}

/// The host daemon's socket (in [`run_dir`]).
pub fn host_socket() -> PathBuf {
    run_dir().join("host.sock")
}

/// Runs the recorder of `store` in the foreground until it is killed. One daemon serves every
/// store of the host, with one set of BPF programs: when a daemon of this build already
/// serves the host, it takes this store too, and this process stays as its companion (it
/// returns when that daemon ends); otherwise this one becomes the host's daemon.
pub fn run(store: &Store, opts: Options) -> Result<()> {
    // Before any thread starts: it edits the environment.
    let activated = activated_listener();
    let home = store.layout.root().to_path_buf();
    let run = run_dir();
    // A run directory that cannot be made or locked (a read-only /run) leaves each store a
    // daemon of its own, not a store unrecorded.
    let host_lock = std::fs::create_dir_all(&run)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(run.join("host.lock"))
        })
        .map_err(|e| {
            tracing::warn!(
                run = %run.display(),
                error = %e,
                "no run directory for the host's daemon: this one serves its store alone"
            )
        })
        .ok();
    // The host's daemon is whoever holds host.lock; one that is starting holds it before its
    // socket answers, so a loser waits for the socket (5 s at most).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let host_lock = loop {
        let Some(lock) = host_lock.as_ref() else {
            break None;
        };
        if activated.is_none() {
            match host_client() {
                HostDaemon::Ours(host) => return companion(host, &home, &opts),
                // It will not take this store: serve it alone now, not after the deadline
                // (a `jcs run` waits 5 s for its daemon).
                HostDaemon::OtherBuild(pid) => {
                    tracing::warn!(
                        pid,
                        "the host's daemon runs another jcs build; this store gets a daemon of its own (a second set of BPF programs)"
                    );
                    break None;
                }
                HostDaemon::None => {}
            }
        }
        if rustix::fs::flock(lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok() {
            break host_lock;
        }
        // Socket activation (systemd passed this store's socket) with another daemon serving
        // the host: this one serves its store alone.
        if activated.is_some() || std::time::Instant::now() > deadline {
            tracing::warn!(
                run = %run.display(),
                "another daemon holds the host's lock but does not answer: this one serves its store alone (a second set of BPF programs)"
            );
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    // The threads that drain the ring buffer and write the journal run ahead of the VEs they
    // record (nice -10, as auditd boosts itself): with more busy VEs than CPUs, a recorder at
    // the VEs' priority got too little of the CPUs to drain what they sent, and the ring lost
    // records (bench/monitor.sh, 8 VEs on 2 CPUs). Threads inherit it from this one (the
    // indexers go back to 0); where it is refused (no CAP_SYS_NICE), the recorder runs at
    // its given priority.
    // SAFETY: setpriority on the calling thread (who 0) takes no pointer.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, DAEMON_NICE) } != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "cannot raise the recorder's priority; it runs at the VEs' own"
        );
    }
    let (tx, rx) = mpsc::channel::<Cmd>();
    let (add_tx, add_rx) = mpsc::channel::<Add>();
    let efd = rustix::event::eventfd(
        0,
        rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
    )
    .map_err(|e| RecorderError::Os {
        what: "eventfd",
        source: e.into(),
    })?;
    let wake = efd.try_clone().map_err(os_err("dup the eventfd"))?;
    let (ready_tx, ready_rx) = mpsc::channel::<std::result::Result<(), String>>();
    std::thread::Builder::new()
        .name("jcs-monitor".into())
        .spawn(move || {
            // A panic ends the daemon too (its message is in the log): a daemon whose monitor
            // thread is gone would answer every request "the monitor stopped" for good, where
            // the next jcs run starts one that records its VEs again after a gap.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                monitor_loop(rx, add_rx, efd, &ready_tx)
            }));
            let e = match r {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e.to_string(),
                Err(p) => format!(
                    "it panicked: {}",
                    p.downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| p.downcast_ref::<&str>().copied())
                        .unwrap_or("?")
                ),
            };
            let _ = ready_tx.send(Err(e.clone()));
            tracing::error!(error = %e, "monitor stopped");
            eprintln!("jcs: monitor stopped: {e}");
            std::process::exit(1);
        })
        .map_err(os_err("start the monitor thread"))?;
    ready_rx
        .recv()
        .map_err(|_| RecorderError::MonitorStopped("it ended before it was ready".into()))?
        .map_err(RecorderError::MonitorStopped)?;
    let host = std::sync::Arc::new(Host {
        tx,
        adds: std::sync::Mutex::new(add_tx),
        wake,
    });
    serve_store(&host, store, &opts, activated)?;
    let Some(_host_lock) = host_lock else {
        // Serving this store alone: the store's accept thread runs until the process ends.
        loop {
            std::thread::park();
        }
    };
    let sock = host_socket();
    let _ = std::fs::remove_file(&sock);
    let listener = match UnixListener::bind(&sock).and_then(|l| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600)).map(|()| l)
    }) {
        Ok(l) => l,
        Err(e) => {
            // The store is served already: it stays so, alone.
            tracing::warn!(socket = %sock.display(), error = %e, "cannot serve the host's socket: this daemon serves its store alone");
            loop {
                std::thread::park();
            }
        }
    };
    tracing::info!(socket = %sock.display(), "serving the host's stores");
    let host = host.clone();
    accept(&listener, move |conn| serve_host(conn, &host));
    Ok(())
}

/// Serves each connection of `listener` on a thread of its own. The thread is made before
/// the connection comes (a spare waits for it): a `jcs run` that connects does not wait for a
/// thread to be made and first scheduled — a few hundred microseconds of every VE start on a
/// busy host, whose two CPUs are building the VE meanwhile.
fn accept(listener: &UnixListener, serve: impl Fn(UnixStream) + Send + Sync + 'static) {
    type Serve = std::sync::Arc<dyn Fn(UnixStream) + Send + Sync>;
    let serve: Serve = std::sync::Arc::new(serve);
    let spare = |serve: &Serve| -> Option<mpsc::Sender<UnixStream>> {
        let (tx, rx) = mpsc::channel::<UnixStream>();
        let serve = serve.clone();
        std::thread::Builder::new()
            .name("jcs-conn".into())
            .spawn(move || {
                if let Ok(conn) = rx.recv() {
                    serve(conn)
                }
            })
            .ok()
            .map(|_| tx)
    };
    let mut next = spare(&serve);
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let sent = match next.take() {
            Some(tx) => tx.send(conn).map_err(|mpsc::SendError(c)| c),
            None => Err(conn),
        };
        // No spare (it could not be made): a thread made now.
        if let Err(conn) = sent {
            let serve = serve.clone();
            let _ = std::thread::Builder::new()
                .name("jcs-conn".into())
                .spawn(move || serve(conn));
        }
        next = spare(&serve);
    }
}

/// What the accept threads share: the monitor thread's queues and its eventfd.
struct Host {
    tx: mpsc::Sender<Cmd>,
    adds: std::sync::Mutex<mpsc::Sender<Add>>,
    wake: OwnedFd,
}

/// A store for the monitor thread to serve, and where to say under which number.
struct Add {
    setup: Box<Setup>,
    reply: mpsc::Sender<std::result::Result<usize, String>>,
}

/// Opens `store` for recording (its lock, journal, writer, indexer, metrics), hands it to the
/// monitor thread, and serves its socket in a thread of its own.
fn serve_store(
    host: &std::sync::Arc<Host>,
    store: &Store,
    opts: &Options,
    activated: Option<UnixListener>,
) -> Result<()> {
    let home = store.layout.root().to_path_buf();
    let setup = open_store(store, opts)?;
    let (rtx, rrx) = mpsc::channel();
    host.adds
        .lock()
        .map_err(|_| RecorderError::MonitorStopped("a thread panicked".into()))?
        .send(Add {
            setup: Box::new(setup),
            reply: rtx,
        })
        .map_err(|_| RecorderError::MonitorStopped("it ended".into()))?;
    let _ = rustix::io::write(&host.wake, &1u64.to_ne_bytes());
    let index = rrx
        .recv()
        .map_err(|_| RecorderError::MonitorStopped("it ended".into()))?
        .map_err(RecorderError::MonitorStopped)?;
    let sock = socket_path(&home);
    let listener = match activated {
        // Socket activation (systemd's LISTEN_FDS): the socket is already bound and listening.
        Some(l) => {
            tracing::info!("listening on the socket systemd passed (socket activation)");
            l
        }
        None => {
            let _ = std::fs::remove_file(&sock);
            let l = UnixListener::bind(&sock).map_err(io_err("listen on", &sock))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600))
                .map_err(io_err("set the mode of", &sock))?;
            l
        }
    };
    let pid_path = home.join("daemon.pid");
    std::fs::write(&pid_path, std::process::id().to_string())
        .map_err(io_err("write", &pid_path))?;
    tracing::info!(journal = %store.journal_dir().display(), socket = %sock.display(), "monitoring");
    let host = host.clone();
    std::thread::Builder::new()
        .name("jcs-accept".into())
        .spawn(move || {
            accept(&listener, move |conn| {
                if let Ok(wake) = host.wake.try_clone() {
                    serve(conn, index, host.tx.clone(), wake)
                }
            })
        })
        .map_err(os_err("start the accept thread"))?;
    Ok(())
}

/// Everything of a store the monitor thread needs, opened here (outside it): the store's
/// lock, its journal (recovered), the writer and indexer threads, the metrics endpoint.
fn open_store(store: &Store, opts: &Options) -> Result<Setup> {
    let home = store.layout.root();
    let lock_path = home.join("daemon.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&lock_path)
        .map_err(io_err("open", &lock_path))?;
    if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        return Err(RecorderError::AlreadyRunning(home.to_path_buf()));
    }
    let dir = store.journal_dir();
    let storage = journal::DirStorage::new(&dir).map_err(io_err("open the journal at", &dir))?;
    let mut jopts = journal_options()?;
    if let Some(b) = opts.segment_bytes {
        jopts.segment_max_bytes = b;
    }
    let (journal, recovery) =
        journal::Journal::open(storage, jopts).map_err(|source| RecorderError::OpenJournal {
            path: dir.clone(),
            source,
        })?;
    if let Some((seg, off, cut)) = &recovery.truncated {
        tracing::warn!(segment = %seg, offset = off, bytes = cut, "journal recovery cut a torn tail");
    }
    for (q, why) in &recovery.quarantined {
        tracing::warn!(quarantined = %q, reason = %why, "journal segment quarantined");
    }
    let repairs: Vec<record::Repair> = recovery
        .truncated
        .iter()
        .map(|(seg, off, cut)| record::Repair {
            time_ns: now_ns(),
            kind: "torn".into(),
            file: recovery.torn_tail_copy.clone().unwrap_or_default(),
            reason: format!(
                "an unfinished last append: {cut} bytes of {seg} after offset {off} cut"
            ),
        })
        .chain(recovery.quarantined.iter().map(|(q, why)| record::Repair {
            time_ns: now_ns(),
            kind: "quarantined".into(),
            file: q.clone(),
            reason: why.clone(),
        }))
        .collect();
    // Indexes sealed segments, brings the catalog's variable dictionary up to date, and finds
    // the next variable id, reading only the open segment.
    let start = crate::index::open_segment(&dir, &store.catalog)?;
    let first_var = start.next_var;
    // The open segment too (so far), so that a question reads only its newest bytes whole.
    if let Err(e) = crate::index::index_open(&dir, &store.catalog, &|| true, &[]) {
        tracing::warn!(error = %e, "index of the open segment");
    }
    let running = running_ves(store);
    let unfinished = unfinished_ves(store, &running);
    // Where the gaps of VEs that ran unrecorded start: their last records.
    let last_seen = start.last_seen;
    let catalog_path = store.layout.catalog();
    let missed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The writer tells the indexer each block's keys (see `index::index_open`).
    let (blocks_tx, blocks) = mpsc::channel();
    {
        let (dir, catalog_path, missed) = (dir.clone(), catalog_path.clone(), missed.clone());
        std::thread::Builder::new()
            .name("jcs-indexer".into())
            .spawn(move || indexer(&dir, &catalog_path, &missed, &blocks))
            .map_err(os_err("start the indexer thread"))?;
    }
    // A block (one fdatasync) at most every 10 ms under a steady stream; a VE that ends (an
    // Unwatch waits for its last records) is written at once.
    let writer = journal::writer::Writer::spawn_indexed(
        journal,
        1024,
        256,
        std::time::Duration::from_millis(10),
        Some(journal::writer::Indexing {
            keys_of: Box::new(record::keys_of),
            tx: blocks_tx,
        }),
    );
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::default());
    if let Some(addr) = opts.metrics {
        let at = crate::metrics::serve(addr, metrics.clone(), dir.clone()).map_err(|e| {
            RecorderError::Os {
                what: "serve metrics",
                source: e,
            }
        })?;
        tracing::info!(address = %at, "metrics: GET /metrics");
    }
    Ok(Setup {
        lock,
        writer,
        first_var,
        repairs,
        last_seen,
        journal: dir,
        catalog: catalog_path,
        running,
        unfinished,
        online: opts.online_t1.then(Online::new),
        metrics,
        missed,
    })
}

/// Who answers on the host's socket.
enum HostDaemon {
    /// A daemon of this build: it takes this store.
    Ours(crate::Client),
    /// A daemon of another build (its pid), left alone: this daemon serves its store itself.
    OtherBuild(u32),
    /// Nobody (yet).
    None,
}

fn host_client() -> HostDaemon {
    let sock = host_socket();
    let Ok(mut c) = crate::Client::connect_to(&sock) else {
        return HostDaemon::None;
    };
    match c.call(&Request::Status) {
        Ok(Response::Status { build, .. }) if build == crate::protocol::build_id() => {
            HostDaemon::Ours(c)
        }
        Ok(Response::Status { pid, .. }) => HostDaemon::OtherBuild(pid),
        _ => HostDaemon::None,
    }
}

/// Hands the store at `home` to the host's daemon, then waits as long as that daemon runs
/// (this process keeps the store's shipping and retention threads, which need no monitor).
fn companion(mut host: crate::Client, home: &Path, opts: &Options) -> Result<()> {
    // This process's settings, not the host daemon's environment.
    let segment_bytes = match std::env::var_os("JCS_SEGMENT_BYTES") {
        Some(_) => Some(journal_options()?.segment_max_bytes),
        None => opts.segment_bytes,
    };
    let r = host.call(&Request::Serve {
        home: home.to_path_buf(),
        online_t1: opts.online_t1,
        metrics: opts.metrics.map(|a| a.to_string()),
        segment_bytes,
    })?;
    match r {
        Response::Serving { pid } => {
            tracing::info!(
                pid,
                store = %home.display(),
                "the host's daemon records this store (one set of BPF programs for the host)"
            );
        }
        Response::Error { message } => return Err(RecorderError::Refused(message)),
        r => return Err(RecorderError::Protocol(format!("serve: {r:?}"))),
    }
    // Until the host's daemon closes the connection (it ended).
    host.wait_closed();
    Err(RecorderError::MonitorStopped(
        "the host's daemon that recorded this store ended".into(),
    ))
}

/// One connection to the host's socket: Serve here, Status and the like by the monitor
/// thread (no store named).
fn serve_host(conn: UnixStream, host: &std::sync::Arc<Host>) {
    serve_lines(conn, |req| match req {
        Request::Serve {
            home,
            online_t1,
            metrics,
            segment_bytes,
        } => Some(
            match adopt(host, &home, online_t1, metrics, segment_bytes) {
                Ok(()) => Response::Serving {
                    pid: std::process::id(),
                },
                Err(message) => Response::Error { message },
            },
        ),
        req => ask(&host.tx, &host.wake, usize::MAX, req),
    })
}

/// Serves the store at `home` too (a companion's Serve).
fn adopt(
    host: &std::sync::Arc<Host>,
    home: &Path,
    online_t1: bool,
    metrics: Option<String>,
    segment_bytes: Option<u64>,
) -> std::result::Result<(), String> {
    let metrics = match metrics.map(|m| m.parse()) {
        Some(Err(e)) => return Err(format!("metrics address: {e}")),
        Some(Ok(a)) => Some(a),
        None => None,
    };
    let opts = Options {
        online_t1,
        metrics,
        segment_bytes,
    };
    // Only a store that exists (Store::open would make one anywhere it is told).
    if !ve::Layout::new(home).catalog().exists() {
        return Err(format!("no JCS store at {}", home.display()));
    }
    Store::open(home)
        .map_err(RecorderError::from)
        .and_then(|s| serve_store(host, &s, &opts, None))
        .map_err(|e| e.to_string())
}

/// A connection to one of the daemon's sockets: refused unless the peer may talk to it
/// ([`peer_allowed`]); else each request line answered by `handle` (None: the daemon is
/// going away, the connection is closed).
fn serve_lines(conn: UnixStream, mut handle: impl FnMut(Request) -> Option<Response>) {
    let Ok(mut w) = conn.try_clone() else { return };
    if let Err(why) = peer_allowed(&conn) {
        tracing::warn!(reason = %why, "connection refused");
        let resp = Response::Error {
            message: format!("refused: {why}"),
        };
        answer(&mut w, &resp);
        // Take the request it sent (a second at most) before closing: a client that writes
        // after the close would fail on the write and never read the refusal.
        let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(1)));
        let _ = BufReader::new(&conn).read_line(&mut String::new());
        return;
    }
    for line in BufReader::new(conn).lines() {
        let Ok(line) = line else { return };
        let resp = match serde_json::from_str::<Request>(&line) {
            Err(e) => Response::Error {
                message: format!("bad request: {e}"),
            },
            Ok(req) => match handle(req) {
                Some(r) => r,
                None => return,
            },
        };
        if !answer(&mut w, &resp) {
            return;
        }
    }
}

/// Hands a request to the monitor thread and waits for its answer (None: it is gone).
fn ask(tx: &mpsc::Sender<Cmd>, wake: &OwnedFd, store: usize, req: Request) -> Option<Response> {
    let (rtx, rrx) = mpsc::channel();
    tx.send(Cmd {
        store,
        req,
        reply: rtx,
    })
    .ok()?;
    // Wakes the monitor thread (an eventfd counter cannot overflow here).
    let _ = rustix::io::write(wake, &1u64.to_ne_bytes());
    Some(rrx.recv().unwrap_or(Response::Error {
        message: "the monitor stopped".into(),
    }))
}

/// Writes one response line; whether the client is still there.
fn answer(w: &mut UnixStream, resp: &Response) -> bool {
    let mut s = serde_json::to_string(resp).unwrap_or_default();
    s.push('\n');
    w.write_all(s.as_bytes()).is_ok()
}

/// The listening socket systemd passed (socket activation: `LISTEN_PID` is this process,
/// `LISTEN_FDS` is 1, the socket is descriptor 3), if any. The variables are removed so that
/// nothing this process starts takes them for its own.
fn activated_listener() -> Option<UnixListener> {
    use std::os::fd::FromRawFd;
    let pid = std::env::var("LISTEN_PID").ok()?.parse::<u32>().ok()?;
    let fds = std::env::var("LISTEN_FDS").ok()?.parse::<u32>().ok()?;
    // SAFETY: called first in `run`, before the daemon starts any thread (the caller, `jcs
    // daemon`, has none), and the variables belong to this process.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    if pid != std::process::id() || fds != 1 {
        return None;
    }
    // A listening Unix stream socket at descriptor 3, or nothing.
    // SAFETY: descriptor 3 is open (systemd passed it), borrowed only for the checks below.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(3) };
    let kind = rustix::net::sockopt::socket_type(fd);
    let listening = rustix::net::sockopt::socket_acceptconn(fd);
    if !(kind.is_ok_and(|t| t == rustix::net::SocketType::STREAM) && listening == Ok(true)) {
        tracing::warn!(
            ?kind,
            ?listening,
            "LISTEN_FDS names descriptor 3, which is no listening stream socket"
        );
        return None;
    }
    // SAFETY: descriptor 3 is this process's (passed by systemd), owned from here on.
    let l = unsafe { UnixListener::from_raw_fd(3) };
    let _ = rustix::io::fcntl_setfd(&l, rustix::io::FdFlags::CLOEXEC);
    Some(l)
}

/// Whether a `/proc/PID/cgroup` text places the process in a VE's cgroup (`…/jcs/STORE-N`
/// in any hierarchy).
fn in_ve_cgroup(cgroup: &str) -> bool {
    cgroup.lines().any(|l| {
        l.splitn(3, ':')
            .nth(2)
            .is_some_and(|path| path.split('/').any(|c| c == ve::cgroup::PARENT))
    })
}

/// Who may talk to the recorder: root of the host (the socket is mode 0600 too), never a
/// process of a VE (a VE's root is uid 0 as well; a store shared into a VE, or a descriptor
/// passed to one, must not let it watch, unwatch or stop anything).
fn peer_allowed(conn: &UnixStream) -> Result<(), String> {
    let cred = rustix::net::sockopt::socket_peercred(conn)
        .map_err(|e| format!("cannot read the peer's credentials: {e}"))?;
    if cred.uid.as_raw() != 0 {
        return Err(format!("uid {} is not root", cred.uid.as_raw()));
    }
    let pid = cred.pid.as_raw_nonzero();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(|e| format!("cannot read the cgroups of pid {pid}: {e}"))?;
    if in_ve_cgroup(&cg) {
        return Err(format!("pid {pid} runs inside a VE"));
    }
    Ok(())
}

/// One connection to store `store`'s socket: each request to the monitor thread.
fn serve(conn: UnixStream, store: usize, tx: mpsc::Sender<Cmd>, wake: OwnedFd) {
    serve_lines(conn, |req| ask(&tx, &wake, store, req))
}

/// How many VEs the recorder finished itself keep what they changed for their late Unwatch.
const FINISHED_CHANGES: usize = 64;

/// A VE that was running when this recorder started: recorded again from now on.
#[derive(Debug, Clone)]
struct Rewatch {
    cgroup_id: u64,
    ve: u64,
    init: Option<u32>,
    cgroup_path: Option<PathBuf>,
}

/// The VEs whose `jcs run` is alive: a recorder that starts while they run (the previous one
/// was killed or restarted) watches them again, after a gap.
fn running_ves(store: &Store) -> Vec<Rewatch> {
    let rows = match store.catalog.ves() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot list running VEs");
            return vec![];
        }
    };
    let v2_root = ve::CgroupLayout::detect_host(&store.host.proc_root)
        .ok()
        .map(|l| l.v2_root().join(ve::cgroup::PARENT));
    rows.iter()
        .filter(|r| r.state == "running" && store::meta::owner_alive(r))
        .filter_map(|r| {
            let meta = store.ve_meta(model::VeId(r.id))?;
            Some(Rewatch {
                cgroup_id: r.cgroup_id.or(meta.cgroup_id)?,
                ve: r.id,
                init: meta.init_pid.map(|p| p as u32),
                cgroup_path: v2_root
                    .as_ref()
                    .map(|root| root.join(store.cgroup_name(model::VeId(r.id)))),
            })
        })
        .collect()
}

/// VEs whose record the previous recorder started and never finished, and that no longer
/// run (so nobody will watch them again): (VE, when it ended, in ns).
fn unfinished_ves(store: &Store, running: &[Rewatch]) -> Vec<(u64, u64)> {
    let rows = match store.catalog.ves_watching() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot list watched VEs");
            return vec![];
        }
    };
    let now = now_ns();
    rows.iter()
        .filter(|r| !running.iter().any(|w| w.ve == r.id))
        .map(|r| {
            let ended = r.ended_ms.map_or(now, |ms| ms as u64 * 1_000_000);
            (r.id, ended)
        })
        .collect()
}

/// Indexes each segment once it is sealed (they never change after that), and the open one
/// as it grows, every 5 s: with the keys the journal's writer reported for each block
/// (`blocks`), reading back only what it did not report (what was written before this
/// recorder started). Ends after a last pass once the writer is gone.
fn indexer(
    dir: &Path,
    catalog: &Path,
    missed: &std::sync::atomic::AtomicBool,
    blocks: &mpsc::Receiver<journal::writer::BlockKeys>,
) {
    // Background work: back to the default priority (the thread that starts it may run at
    // the recorder's).
    // SAFETY: setpriority on the calling thread (who 0) takes no pointer.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 0) };
    let cat = match store::Catalog::open(catalog) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "indexer stopped");
            return;
        }
    };
    let mut known = Vec::new();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(5));
        let gone = loop {
            match blocks.try_recv() {
                Ok(b) => known.push(b),
                Err(mpsc::TryRecvError::Empty) => break false,
                Err(mpsc::TryRecvError::Disconnected) => break true,
            }
        };
        let missed = || missed.load(std::sync::atomic::Ordering::Acquire);
        // Asked after the blocks were taken: a reported block holds a definition the catalog
        // lacks only if the dictionary failed before it was written. Then every block is read
        // (its definitions go to the catalog).
        if missed() {
            known.clear();
        }
        if let Err(e) = crate::index::index_sealed_from_prefixes(dir, &cat, &missed, &known) {
            tracing::warn!(error = %e, "indexer");
        }
        if let Err(e) = crate::index::index_open(dir, &cat, &missed, &known) {
            tracing::warn!(error = %e, "indexer (open segment)");
        }
        // Every reported block was on disk when taken: the indexes now cover it, or stop
        // before it (damage), and the next pass reads from there.
        known.clear();
        if gone {
            return;
        }
    }
}

/// What the monitor thread starts a store from.
struct Setup {
    /// The store's `daemon.lock`, held as long as the store is served.
    lock: std::fs::File,
    writer: journal::writer::Writer,
    /// The next variable id.
    first_var: VarId,
    /// What opening the journal repaired: the first record this recorder writes.
    repairs: Vec<record::Repair>,
    /// VE → the time of its last transaction in the journal's open segment.
    last_seen: std::collections::HashMap<u64, u64>,
    /// The journal's directory (what a full disk is reported about).
    journal: PathBuf,
    catalog: PathBuf,
    /// VEs running unrecorded, to watch again.
    running: Vec<Rewatch>,
    /// VEs that ended while no recorder could finish their record: (VE, when it ended).
    unfinished: Vec<(u64, u64)>,
    online: Option<Online>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// Set (for good) once the dictionary thread failed to write definitions or names: the
    /// indexer then adds those of what it reads (see `index::index_open`).
    missed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// A store the monitor thread records: its journal writer, catalog and translator (variable
/// ids, names and VEs are the store's own), and what its VEs' records still need.
struct Served {
    _lock: std::fs::File,
    writer: journal::writer::Writer,
    cat: store::Catalog,
    /// The catalog's dictionary and names, written by a thread of their own ([`Dictionary`]).
    dict: Dictionary,
    /// The connection the translator looks variables of earlier recorders up on.
    known: std::rc::Rc<store::Catalog>,
    t: Translator,
    online: Option<Online>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    journal_dir: PathBuf,
    last_ticket: Option<u64>,
    /// What the translator kept when it last forgot variables ([`Translator::forget_vars`]).
    vars_kept: usize,
    /// Set when the dictionary failed to write some definitions (a full disk): the catalog
    /// may then lack one, and the translator forgets nothing (a file would get a second
    /// variable).
    dict_missed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    full: Full,
    /// cgroup → when it was watched (where a gap for its lost records starts).
    watched_since: std::collections::HashMap<u64, u64>,
    /// VEs the recorder finished itself: their late Unwatch is answered as if it had come in
    /// time (with what the VE changed, for the last [`FINISHED_CHANGES`] of them).
    finished: HashSet<u64>,
    finished_changes: std::collections::HashMap<u64, model::report::Touched>,
    watched: usize,
    /// The ring buffer's events of this store's VEs, not yet translated.
    events: std::cell::RefCell<Batch>,
    /// What translating a batch gives, and its transactions: kept (empty) from batch to
    /// batch, so each is filled in memory that is already there and warm.
    scratch: Scratch,
    /// Batches of records waiting for the dictionary to commit what was sent before them
    /// (how much had been sent, the records), in order.
    held: std::collections::VecDeque<(u64, Keyed)>,
}

/// Journal records with their index keys: the writer hands the keys to the indexer, which
/// then need not read the records back (`index::index_open`).
#[derive(Debug, Default)]
struct Keyed {
    records: Vec<Vec<u8>>,
    keys: Vec<u64>,
}

impl Keyed {
    fn push(&mut self, rec: Record) {
        rec.keys(&mut self.keys);
        self.records.push(rec.encode());
    }

    /// The record, split into records of at most [`record_bytes`] each.
    fn push_bounded(&mut self, rec: Record) {
        rec.keys(&mut self.keys);
        self.records.extend(rec.encode_bounded(record_bytes()));
    }

    fn push_ats(&mut self, ats: &[At]) {
        record::ats_keys(ats, &mut self.keys);
        self.records
            .extend(Record::encode_ats_bounded(ats, record_bytes()));
    }
}

impl Served {
    /// Queues records for its journal once the catalog has every variable and name sent
    /// before them (at once when it has).
    fn offer(&mut self, records: Keyed) -> Result<()> {
        if !records.records.is_empty() {
            self.held.push_back((self.dict.sent.get(), records));
        }
        self.release()
    }

    /// Hands the journal writer the batches the dictionary has caught up with.
    fn release(&mut self) -> Result<()> {
        while let Some((need, _)) = self.held.front() {
            if !self.dict.has(*need) {
                break;
            }
            let (_, records) = self.held.pop_front().expect("just seen");
            self.last_ticket = submit_keyed(
                &self.writer,
                records.records,
                Some(records.keys),
                &mut self.full,
            )?
            .or(self.last_ticket);
        }
        Ok(())
    }

    /// Waits until everything handed to the journal writer is durable; the refusal to answer
    /// when it is not (a full disk, a journal error).
    fn wait_durable(&self) -> Option<Response> {
        match self.last_ticket.map(|tk| self.writer.wait(tk)) {
            Some(Err(e)) if e.is_disk_full() => Some(Response::Error {
                message: disk_full_message(&self.journal_dir),
            }),
            Some(Err(e)) => Some(Response::Error {
                message: format!("journal: {e}"),
            }),
            _ => None,
        }
    }

    /// Its events drained so far, as journal records ([`translate`]; `force`: a VE ended
    /// (`ending`) or asked for everything so far, so nothing may stay held).
    fn translate(&mut self, force: bool, ending: Option<u64>) -> Result<Keyed> {
        translate(
            (&self.events, &mut self.scratch),
            &mut self.t,
            (&self.dict, &self.known),
            self.online.as_mut(),
            force,
            ending,
            &self.metrics,
        )
    }
}

/// What the dictionary thread writes into the catalog.
enum Dict {
    Vars(Vec<(VarId, model::at::VarDef)>),
    Names(Vec<model::at::Name>),
    /// Answered once everything sent before it is written.
    Flush(mpsc::Sender<()>),
}

/// The catalog's variable dictionary and names table, written by a thread of their own: a
/// SQLite commit (and now and then a WAL checkpoint with its fsync) per batch with new
/// variables was two thirds of the monitor thread's time when a VE created files (3.7 µs per
/// event, against 0.35 for writes to a file it had), on the path that drains the ring buffer.
/// What arrived meanwhile is written in one transaction. The journal never gets ahead of it:
/// a batch of records waits ([`Served::offer`]) until the dictionary has committed everything
/// sent before it (a question asked while a VE runs finds every variable the journal has),
/// and a recorder that starts adds back what the journal has and a killed one's dictionary
/// had not written (`index::next_var_id`, the indexes).
struct Dictionary {
    tx: mpsc::Sender<Dict>,
    /// Definitions and names sent, and committed by the thread (counted in messages).
    sent: std::cell::Cell<u64>,
    committed: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Dictionary {
    /// `wake`: the monitor thread's eventfd, written after each commit (the records waiting
    /// for it go to the journal at once, not at the next tick).
    /// `missed`: set when a write failed (the indexer then adds what it reads).
    fn spawn(
        cat: store::Catalog,
        wake: OwnedFd,
        missed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Result<Dictionary> {
        let (tx, rx) = mpsc::channel::<Dict>();
        let committed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let done = committed.clone();
        std::thread::Builder::new()
            .name("jcs-dictionary".into())
            .spawn(move || {
                let mut count = 0;
                while let Ok(first) = rx.recv() {
                    let (mut vars, mut names, mut flushes) = (Vec::new(), Vec::new(), Vec::new());
                    for d in std::iter::once(first).chain(rx.try_iter()) {
                        match d {
                            Dict::Vars(v) => vars.extend(v),
                            Dict::Names(n) => names.extend(n),
                            Dict::Flush(reply) => {
                                flushes.push(reply);
                                continue;
                            }
                        }
                        count += 1;
                    }
                    if let Err(e) = cat.add_vars_and_names(&vars, &names) {
                        tracing::warn!(error = %e, "catalog: variable definitions and names (the indexer adds them from the journal)");
                        // Before the records that need them are released (`done` below).
                        missed.store(true, std::sync::atomic::Ordering::Release);
                    }
                    done.store(count, std::sync::atomic::Ordering::Release);
                    let _ = rustix::io::write(&wake, &1u64.to_ne_bytes());
                    for f in flushes {
                        let _ = f.send(());
                    }
                }
            })
            .map_err(os_err("start the dictionary thread"))?;
        Ok(Dictionary {
            tx,
            sent: std::cell::Cell::new(0),
            committed,
        })
    }

    fn send(&self, d: Dict) {
        if self.tx.send(d).is_ok() {
            self.sent.set(self.sent.get() + 1);
        }
    }

    /// Whether everything sent up to `sent` is committed.
    fn has(&self, sent: u64) -> bool {
        self.committed.load(std::sync::atomic::Ordering::Acquire) >= sent
    }

    /// Waits until everything sent so far is in the catalog.
    fn flush(&self) {
        // (Nothing sent that is not committed: no round trip to the thread.)
        if self.has(self.sent.get()) {
            return;
        }
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Dict::Flush(tx)).is_ok() {
            let _ = rx.recv();
        }
    }
}

/// The kernel's number for each watched VE: its VE id where no other watched VE (of another
/// store) has that number, else one from 2^31 up. The kernel keys a VE's policy, denials and
/// tainted slot by it, so two stores' VE 5 never share them.
#[derive(Debug, Default)]
struct KernelIds {
    of: std::collections::HashMap<u64, u64>,
    used: HashSet<u64>,
}

impl KernelIds {
    fn take(&mut self, cgroup_id: u64, ve: u64) -> u64 {
        if let Some(&k) = self.of.get(&cgroup_id) {
            return k;
        }
        let mut k = ve;
        if k == 0 || k > u64::from(u32::MAX) || self.used.contains(&k) {
            k = 1 << 31;
            while self.used.contains(&k) {
                k += 1;
            }
        }
        if k != ve {
            tracing::info!(
                ve,
                kernel_ve = k,
                "a VE of another store has this VE's number: the kernel knows it by another"
            );
        }
        self.used.insert(k);
        self.of.insert(cgroup_id, k);
        k
    }

    fn get(&self, cgroup_id: u64) -> Option<u64> {
        self.of.get(&cgroup_id).copied()
    }

    fn give_back(&mut self, cgroup_id: u64) {
        if let Some(k) = self.of.remove(&cgroup_id) {
            self.used.remove(&k);
        }
    }
}

/// Starts serving a store: its translator (restored from the catalog), its VEs that ran
/// unrecorded watched again after a gap, the gaps of those that ended meanwhile.
fn start_store(
    setup: Setup,
    m: &Monitor,
    kids: &mut KernelIds,
    owner: &mut std::collections::HashMap<u64, usize>,
    paths: &mut std::collections::HashMap<u64, PathBuf>,
    index: usize,
    wake: OwnedFd,
) -> Result<Served> {
    let Setup {
        lock,
        writer,
        first_var,
        repairs,
        last_seen,
        journal: journal_dir,
        catalog,
        running,
        unfinished,
        online,
        metrics,
        missed,
    } = setup;
    let cat = store::Catalog::open(&catalog)?;
    // (Its commits are a VE's start and end; a WAL checkpoint is the dictionary's to run.)
    cat.no_autocheckpoint();
    let dict = Dictionary::spawn(store::Catalog::open(&catalog)?, wake, missed.clone())?;
    let mut t = Translator::new(first_var, clock_offset_ns());
    // A restarted recorder keeps the variables of files, endpoints and VEs it had: the
    // catalog holds every definition the journal has, by key.
    let known = std::rc::Rc::new(store::Catalog::open(&catalog)?);
    {
        let known = known.clone();
        // ... and the store-level names files have now, so that a path call (rename, unlink)
        // on a file named before the restart finds it.
        for (name, var) in known.current_store_names()? {
            t.restore_store_name(name, var);
        }
        t.set_known(move |d| {
            // (In the batch's read transaction: see `translate`.)
            known.begin_read();
            known
                .var_ids(&record::VarKey::of(d))
                .ok()
                .and_then(|ids| ids.into_iter().max())
        });
    }
    let mut s = Served {
        _lock: lock,
        writer,
        cat,
        dict,
        known,
        t,
        online,
        metrics,
        journal_dir,
        last_ticket: None,
        vars_kept: 0,
        dict_missed: missed,
        full: Full::default(),
        watched_since: Default::default(),
        finished: HashSet::new(),
        finished_changes: Default::default(),
        watched: 0,
        events: Default::default(),
        scratch: Scratch::default(),
        held: Default::default(),
    };
    // VEs that ran on while no recorder recorded them: watched again, after a gap
    // transaction that says so (its count is unknown: length 0, result -1).
    let mut gaps = Vec::new();
    for r in &running {
        if let Some(p) = &r.cgroup_path {
            paths.insert(r.cgroup_id, p.clone());
        }
        owner.insert(r.cgroup_id, index);
        match r.init {
            Some(tid) => s.t.watch_with_init(r.cgroup_id, r.ve, tid),
            None => s.t.watch(r.cgroup_id, r.ve),
        }
        let k = kids.take(r.cgroup_id, r.ve);
        match m.watch(r.cgroup_id, k, r.init) {
            Ok(()) => {
                s.watched += 1;
                s.watched_since.insert(r.cgroup_id, now_ns());
                tracing::warn!(ve = r.ve, "VE was running unrecorded; recording it again");
                gaps.push(gap_at(r.ve, 0, -1, lost_since(&last_seen, r.ve)));
            }
            Err(e) => {
                kids.give_back(r.cgroup_id);
                tracing::error!(ve = r.ve, error = %e, "cannot watch VE again")
            }
        }
    }
    // VEs that ended while no recorder ran (or could write): a gap at their end says their
    // record stops short, with no count (length 0, result -1).
    for &(ve, ended_ns) in &unfinished {
        tracing::warn!(
            ve,
            "VE ended while no recorder could finish its record; writing its gap"
        );
        let mut g = gap_at(ve, 0, -1, lost_since(&last_seen, ve));
        g.time_ns = ended_ns;
        gaps.push(g);
    }
    // What opening the journal repaired goes into the chain, first.
    if !repairs.is_empty() {
        s.last_ticket = submit(
            &s.writer,
            vec![Record::Repairs(repairs).encode()],
            &mut s.full,
        )?;
    }
    if !gaps.is_empty() {
        s.metrics.count_ats(&gaps);
        s.last_ticket = submit(&s.writer, vec![Record::Ats(gaps).encode()], &mut s.full)?;
        if let Some(t) = s.last_ticket {
            s.writer.wait(t)?;
        }
        for &(ve, _) in &unfinished {
            if let Err(e) = s.cat.set_ve_record(ve, "gap") {
                tracing::error!(ve, error = %e, "catalog");
            }
        }
    }
    Ok(s)
}

/// The ring buffer's events, each to the store whose VE it is (those of no watched VE to the
/// first store's translator, which has no VE for them either).
fn route(
    pending: &std::cell::RefCell<Batch>,
    owner: &std::collections::HashMap<u64, usize>,
    stores: &[Served],
) {
    let mut pending = pending.borrow_mut();
    if stores.len() == 1 {
        // The batch changes hands, not place (an append copied every event once more; the
        // store's translated batch, empty, comes back with its slots).
        stores[0].events.borrow_mut().append(&mut pending);
        return;
    }
    for e in pending.events() {
        let i = owner.get(&e.cgroup_id).copied().unwrap_or(0);
        if let Some(s) = stores.get(i) {
            s.events.borrow_mut().push(e);
        }
    }
    pending.clear();
}

fn monitor_loop(
    rx: mpsc::Receiver<Cmd>,
    adds: mpsc::Receiver<Add>,
    efd: OwnedFd,
    ready: &mpsc::Sender<std::result::Result<(), String>>,
) -> Result<()> {
    let m = Monitor::start()?;
    let pending = std::cell::RefCell::new(Batch::default());
    let ring = m.ring(|b| {
        let _ = pending.borrow_mut().push_raw(b);
    })?;
    let epoll_err = |source: rustix::io::Errno| RecorderError::Os {
        what: "epoll",
        source: source.into(),
    };
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(epoll_err)?;
    // SAFETY: the ring buffer owns its epoll fd and outlives this loop, which only polls it.
    let ring_fd = unsafe { BorrowedFd::borrow_raw(ring.epoll_fd()) };
    // The ring buffer edge-triggered: its poll says "readable" while any record is queued, so
    // level-triggered, a steady stream woke this loop again at once after every drain (about
    // 30 records a turn, two thread wake-ups each: most of the daemon's CPU per event). Now
    // it wakes when the kernel wakes it (the queued bytes crossed the programs'
    // `wakeup_bytes`), on a command, or at the 10 ms tick, and drains everything then.
    let edge = [
        epoll::EventFlags::IN,
        epoll::EventFlags::IN | epoll::EventFlags::ET,
    ];
    for (i, (fd, flags)) in [efd.as_fd(), ring_fd].into_iter().zip(edge).enumerate() {
        epoll::add(&ep, fd, epoll::EventData::new_u64(i as u64), flags).map_err(epoll_err)?;
    }
    let mut stores: Vec<Served> = Vec::new();
    // Host-wide: which store each watched cgroup is of, the kernel's number of its VE, and
    // its cgroup2 directory, checked every second: a VE with no process left that nobody
    // unwatched (its `jcs run` was killed) is finished by the recorder.
    let mut owner: std::collections::HashMap<u64, usize> = Default::default();
    let mut kids = KernelIds::default();
    let mut paths: std::collections::HashMap<u64, PathBuf> = Default::default();
    let mut last_check = std::time::Instant::now();
    let _ = ready.send(Ok(()));
    let mut evs = [epoll::Event {
        flags: epoll::EventFlags::empty(),
        data: epoll::EventData::new_u64(0),
    }; 4];
    // While anything is recorded, a turn every 10 ms at least (the kernel wakes the ring's
    // reader only past `wakeup_bytes`); idle — no VE watched, the tracing programs detached,
    // no full disk to retry — one a second: commands and new stores wake the loop themselves.
    let busy_tick = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 10_000_000,
    };
    let idle_tick = rustix::time::Timespec {
        tv_sec: 1,
        tv_nsec: 0,
    };
    loop {
        let idle = !m.attached()
            && stores
                .iter()
                .all(|s| s.watched == 0 && s.full.since_ns.is_none());
        let tick = if idle { &idle_tick } else { &busy_tick };
        match epoll::wait(&ep, &mut evs, Some(tick)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(epoll_err(e)),
        }
        // Drains the (non-blocking) eventfd counter; EAGAIN when nobody woke us.
        let _ = rustix::io::read(&efd, &mut [0u8; 8]);
        // Stores to serve from now on.
        for add in adds.try_iter() {
            let index = stores.len();
            let wake = efd.try_clone().map_err(os_err("dup the eventfd"))?;
            let r = start_store(
                *add.setup, &m, &mut kids, &mut owner, &mut paths, index, wake,
            )
            .map(|s| {
                stores.push(s);
                index
            })
            .map_err(|e| e.to_string());
            let _ = add.reply.send(r);
        }
        // No VE for a while: the tracing programs go (the host's calls pay nothing).
        m.detach_if_idle(monitor::loader::Monitor::LINGER);
        // (How full the ring buffer is before it is drained.)
        let (ring_used, ring_size) = monitor::loader::ring_fill(&ring);
        // VEs that ended without an Unwatch: finished as if their run had asked.
        let mut ended = Vec::new();
        if last_check.elapsed() >= std::time::Duration::from_secs(1) {
            last_check = std::time::Instant::now();
            if let Ok(k) = m.stats() {
                use std::sync::atomic::Ordering::Relaxed;
                for s in &stores {
                    s.metrics.kernel_seen.store(k.seen, Relaxed);
                    s.metrics.kernel_skipped.store(k.skipped, Relaxed);
                    s.metrics.kernel_emitted.store(k.emitted, Relaxed);
                    s.metrics.kernel_lost.store(k.lost, Relaxed);
                }
            }
            for (&cg, path) in &paths {
                let procs = std::fs::read_to_string(path.join("cgroup.procs"));
                if procs.is_ok_and(|p| p.trim().is_empty()) || !path.exists() {
                    ended.push(cg);
                }
            }
        }
        let synthetic = ended.into_iter().map(|cgroup_id| {
            tracing::warn!(
                cgroup = cgroup_id,
                "VE ended without an unwatch; finishing its record"
            );
            let (reply, _) = mpsc::channel();
            (
                Cmd {
                    store: owner.get(&cgroup_id).copied().unwrap_or(0),
                    req: Request::Unwatch {
                        cgroup_id,
                        changes: true,
                    },
                    reply,
                },
                true,
            )
        });
        // Commands first: a Watch must reach the translator before the cgroup's first record.
        let mut replies = Vec::new();
        let cmds: Vec<(Cmd, bool)> = rx.try_iter().map(|c| (c, false)).chain(synthetic).collect();
        for (cmd, by_recorder) in cmds {
            // Requests to the host's socket name no store.
            let r = match (cmd.req, stores.get_mut(cmd.store)) {
                (Request::Ping, _) => Response::Ok,
                (Request::Status, _) => Response::Status {
                    pid: std::process::id(),
                    exe: own_exe(),
                    build: crate::protocol::build_id().to_string(),
                    watched: stores.iter().map(|s| s.watched as u64).sum(),
                    stores: stores.len() as u64,
                },
                (Request::Stats, _) => match m.stats() {
                    Ok(s) => Response::Stats {
                        seen: s.seen,
                        skipped: s.skipped,
                        emitted: s.emitted,
                        lost: s.lost,
                    },
                    Err(e) => Response::Error {
                        message: e.to_string(),
                    },
                },
                (Request::Tty { cgroup_id, index }, _) => match m.set_tty(cgroup_id, index) {
                    Ok(()) => Response::Ok,
                    Err(e) => Response::Error {
                        message: e.to_string(),
                    },
                },
                (_, None) => Response::Error {
                    message: "this request names a store: send it to the store's daemon.sock"
                        .into(),
                },
                (Request::Serve { .. }, Some(_)) => Response::Error {
                    message: "serve: send it to the host's socket".into(),
                },
                (
                    Request::Watch {
                        cgroup_id,
                        ve,
                        init,
                        outside,
                        store_names,
                        host_stdio,
                        cgroup_path,
                        policy,
                        info,
                    },
                    Some(s),
                ) => {
                    // Records dropped on a full disk: their gaps are durable before a new VE
                    // starts, when there is room again (a reader never sees the loss unsaid).
                    if s.full.since_ns.is_some() {
                        if let Some(tk) = s.last_ticket {
                            // (Waiting asks the writer to retry its block now.)
                            let _ = s.writer.wait(tk);
                        }
                        if let Some(tk) = write_full_gaps(&s.writer, &mut s.full, &s.cat)? {
                            s.last_ticket = Some(tk);
                            let _ = s.writer.wait(tk);
                        }
                    }
                    if let Some(p) = &cgroup_path {
                        paths.insert(cgroup_id, p.clone());
                    }
                    owner.insert(cgroup_id, cmd.store);
                    s.finished.remove(&cgroup_id);
                    if let Err(e) = s.cat.set_ve_record(ve, "watching") {
                        tracing::error!(ve, error = %e, "catalog");
                    }
                    match init {
                        Some(tid) => s.t.watch_with_init(cgroup_id, ve, tid),
                        None => s.t.watch(cgroup_id, ve),
                    }
                    if let Some(p) = &policy {
                        let storage = outside
                            .iter()
                            .flatten()
                            .filter_map(|d| model::InnerPath::parse(d).ok())
                            .collect();
                        s.t.set_policy(cgroup_id, p.policy.clone(), storage);
                    }
                    if let Some(dirs) = outside {
                        s.t.set_outside(cgroup_id, &dirs);
                    }
                    if let Some(names) = store_names {
                        s.t.set_store_names(cgroup_id, &names);
                    }
                    if let Some(stdio) = host_stdio {
                        s.t.set_host_names(&stdio);
                    }
                    let k = kids.take(cgroup_id, ve);
                    let watched_ok = m
                        .watch(cgroup_id, k, init)
                        .map(|()| {
                            // The sources of the datagrams its sockets receive (without it, a
                            // recv that waited and names no address has no source: recorded
                            // as such, not a reason to refuse the VE).
                            if let Some(dir) = &cgroup_path {
                                if let Err(e) = m.track_datagrams(cgroup_id, dir) {
                                    tracing::warn!(ve, error = %e, "datagram sources");
                                }
                            }
                        })
                        .and_then(|()| {
                            // Its policy is enforced before any of its tasks runs, or it does not
                            // start: a policy is never silently weakened.
                            match &policy {
                                Some(p) => enforce(&m, cgroup_id, cgroup_path.as_deref(), k, ve, p)
                                    .map(Some),
                                None => Ok(None),
                            }
                        });
                    let watched_ok = match watched_ok {
                        Ok(policy_rec) => {
                            // Which VE it is, then its policy: before its first transaction.
                            let mut recs = Keyed::default();
                            if let Some(mut i) = info {
                                i.ve = ve;
                                i.time_ns = now_ns();
                                recs.push(Record::Ve(i));
                            }
                            if let Some(rec) = policy_rec {
                                recs.push(Record::Policy(rec));
                            }
                            s.offer(recs)?;
                            Ok(())
                        }
                        Err(e) => {
                            let _ = m.unwatch(cgroup_id);
                            Err(e)
                        }
                    };
                    let forget = |s: &mut Served, kids: &mut KernelIds| {
                        s.t.unwatch(cgroup_id);
                        kids.give_back(cgroup_id);
                    };
                    match watched_ok {
                        // A VE that would not be recorded is not started.
                        Ok(()) if s.writer.full().is_some() => {
                            let _ = m.unwatch(cgroup_id);
                            forget(s, &mut kids);
                            paths.remove(&cgroup_id);
                            owner.remove(&cgroup_id);
                            Response::Error {
                                message: disk_full_message(&s.journal_dir),
                            }
                        }
                        Ok(()) => {
                            s.watched += 1;
                            s.metrics
                                .ve_starts
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            s.watched_since.insert(cgroup_id, now_ns());
                            match policy.as_ref().filter(|p| p.policy.abort_on_close) {
                                None => Response::Ok,
                                Some(_) => match m.tainted_map_id() {
                                    Ok(tainted_map) => Response::Watched {
                                        tainted_map,
                                        kernel_ve: Some(k),
                                    },
                                    Err(e) => Response::Error {
                                        message: e.to_string(),
                                    },
                                },
                            }
                        }
                        Err(e) => {
                            forget(s, &mut kids);
                            paths.remove(&cgroup_id);
                            owner.remove(&cgroup_id);
                            Response::Error {
                                message: e.to_string(),
                            }
                        }
                    }
                }
                (Request::Unwatch { cgroup_id, changes }, Some(s))
                    if s.finished.contains(&cgroup_id) =>
                {
                    s.finished.remove(&cgroup_id);
                    let touched = s.finished_changes.remove(&cgroup_id);
                    if changes {
                        Response::Unwatched {
                            lost: 0,
                            changes: touched,
                        }
                    } else {
                        Response::Ok
                    }
                }
                (Request::Unwatch { cgroup_id, changes }, Some(_)) => {
                    paths.remove(&cgroup_id);
                    // Everything the VE did is in the ring buffer by now (it has exited):
                    // drain it, write it, wait until it is durable, then forget the cgroup.
                    ring.consume()
                        .map_err(monitor::loader::MonitorError::Ring)?;
                    route(&pending, &owner, &stores);
                    let s = &mut stores[cmd.store];
                    if by_recorder {
                        s.finished.insert(cgroup_id);
                    }
                    // The VE's last transactions, a gap if records were lost, and its
                    // counters, in one block: one fdatasync.
                    let ending = s.t.ve_of(cgroup_id);
                    let mut records = s.translate(true, ending)?;
                    let mut touched = s.t.take_changes(cgroup_id);
                    let mut lost = 0;
                    let since = s.watched_since.remove(&cgroup_id).unwrap_or(0);
                    match ve_stats(&m, cgroup_id, kids.get(cgroup_id), &s.t, since) {
                        Ok(Some((stats, gap))) => {
                            lost = stats.lost;
                            s.metrics.lost(stats.ve, stats.lost);
                            if let Some(g) = gap {
                                s.metrics.count_ats(std::slice::from_ref(&g));
                                records.push(Record::Ats(vec![g]));
                            }
                            records.push(Record::Stats(stats));
                        }
                        Ok(None) => {}
                        Err(e) => tracing::error!(cgroup = cgroup_id, error = %e, "VE counters"),
                    }
                    // Its variables and names in the catalog, then everything of it in the
                    // journal, at once (its run waits for both).
                    s.dict.flush();
                    s.offer(records)?;
                    let lost_some =
                        s.t.ve_of(cgroup_id)
                            .is_some_and(|ve| s.full.lost.contains_key(&ve));
                    let r = match s.wait_durable() {
                        Some(refused) => refused,
                        None if lost_some => Response::Error {
                            message: disk_full_message(&s.journal_dir),
                        },
                        None => {
                            if let Some(ve) = s.t.ve_of(cgroup_id) {
                                if let Err(e) = s.cat.set_ve_record(ve, "complete") {
                                    tracing::error!(ve, error = %e, "catalog");
                                }
                            }
                            if let Some(t) = touched.as_mut() {
                                t.complete &= lost == 0;
                            }
                            match m.unwatch(cgroup_id) {
                                Ok(()) if by_recorder => {
                                    if let Some(t) = touched {
                                        if s.finished_changes.len() >= FINISHED_CHANGES {
                                            s.finished_changes.clear();
                                        }
                                        s.finished_changes.insert(cgroup_id, t);
                                    }
                                    Response::Ok
                                }
                                Ok(()) if changes => Response::Unwatched {
                                    lost,
                                    changes: touched,
                                },
                                Ok(()) if lost > 0 => Response::Finished { lost },
                                Ok(()) => Response::Ok,
                                Err(e) => Response::Error {
                                    message: e.to_string(),
                                },
                            }
                        }
                    };
                    if s.t.ve_of(cgroup_id).is_some() {
                        s.watched = s.watched.saturating_sub(1);
                    }
                    s.t.unwatch(cgroup_id);
                    kids.give_back(cgroup_id);
                    owner.remove(&cgroup_id);
                    r
                }
                (Request::Flush { cgroup_id }, Some(s)) if s.t.ve_of(cgroup_id).is_none() => {
                    Response::Error {
                        message: format!("no VE of this store is in cgroup {cgroup_id}"),
                    }
                }
                (Request::Flush { .. }, Some(_)) => {
                    // What the VE did up to now is in the ring buffer: drained, written and
                    // made durable like an Unwatch's (online T1's open summaries too: forced),
                    // and the VE stays watched.
                    ring.consume()
                        .map_err(monitor::loader::MonitorError::Ring)?;
                    route(&pending, &owner, &stores);
                    let s = &mut stores[cmd.store];
                    let records = s.translate(true, None)?;
                    s.dict.flush();
                    s.offer(records)?;
                    s.wait_durable().unwrap_or(Response::Ok)
                }
                (Request::Restored { restores }, Some(s)) => {
                    match submit(
                        &s.writer,
                        vec![Record::Restores(restores).encode()],
                        &mut s.full,
                    )? {
                        Some(tk) => match s.writer.wait(tk) {
                            Ok(()) => Response::Ok,
                            Err(e) => Response::Error {
                                message: format!("journal: {e}"),
                            },
                        },
                        None => Response::Error {
                            message: disk_full_message(&s.journal_dir),
                        },
                    }
                }
            };
            replies.push((cmd.reply, r));
        }
        ring.consume()
            .map_err(monitor::loader::MonitorError::Ring)?;
        route(&pending, &owner, &stores);
        for s in &mut stores {
            let records = s.translate(false, None)?;
            s.offer(records)?;
            // What the translator knows by identity grows with every file and connection the
            // VEs touch: past a bound it forgets it, once the catalog has every definition.
            // (Not again before it holds twice what it kept: recent UDP flows are kept, and a
            // flood of them would make it forget at every batch.)
            let held = s.t.vars_held();
            if held > vars_held_max().max(2 * s.vars_kept)
                && !s.dict_missed.load(std::sync::atomic::Ordering::Acquire)
            {
                s.dict.flush();
                s.t.forget_vars();
                s.vars_kept = s.t.vars_held();
                tracing::info!(
                    held,
                    kept = s.vars_kept,
                    "forgot the variables known by identity (the catalog has them)"
                );
            }
            s.last_ticket = write_full_gaps(&s.writer, &mut s.full, &s.cat)?.or(s.last_ticket);
            // Before the replies: a client that was answered sees the gauges moved.
            use std::sync::atomic::Ordering::Relaxed;
            s.metrics.ring_used.store(ring_used, Relaxed);
            s.metrics.ring_size.store(ring_size, Relaxed);
            s.metrics
                .dropped_disk_full
                .store(s.full.dropped_total, Relaxed);
            s.metrics
                .count_ats(&std::mem::take(&mut s.full.gaps_written));
            s.metrics.watched.store(s.watched as u64, Relaxed);
        }
        for (reply, r) in replies {
            let _ = reply.send(r);
        }
    }
}

/// Enforces the network part of a VE's policy and returns the record that journals the policy
/// and how each part of it is enforced.
fn enforce(
    m: &Monitor,
    cgroup_id: u64,
    cgroup_dir: Option<&Path>,
    kernel_ve: u64,
    ve: u64,
    p: &crate::protocol::WatchPolicy,
) -> std::result::Result<record::VePolicy, monitor::loader::MonitorError> {
    let mut enforced = vec![];
    let entries = p
        .policy
        .compile_net()
        .map_err(|why| monitor::loader::MonitorError::Enforce {
            cgroup: cgroup_id.to_string(),
            why,
        })?;
    let budget = p.policy.bytes_sent.map(|b| (b, p.policy.bytes_sent_rule()));
    if !entries.is_empty() || budget.is_some() {
        let dir = cgroup_dir.ok_or_else(|| monitor::loader::MonitorError::Enforce {
            cgroup: cgroup_id.to_string(),
            why: "no cgroup2 directory given".into(),
        })?;
        m.enforce_net(cgroup_id, dir, kernel_ve, &entries, budget)?;
        if !entries.is_empty() {
            enforced.push((
                "network".to_string(),
                format!(
                    "cgroup sock_addr programs (connect4/6, sendmsg4/6, bind4/6) on {}, {} \
                     prefixes",
                    dir.display(),
                    entries.len()
                ),
            ));
        }
        if let Some((b, _)) = budget {
            enforced.push((
                "budget.bytes_sent".to_string(),
                format!(
                    "cgroup_skb egress program on {}: {b} bytes, then every packet dropped",
                    dir.display()
                ),
            ));
        }
    }
    enforced.extend(p.enforced.iter().cloned());
    Ok(record::VePolicy {
        ve,
        time_ns: now_ns(),
        rules: p.policy.rules(),
        enforced,
    })
}

/// What `jcs run` is told when the journal cannot be written: which store, how much room.
fn disk_full_message(journal: &Path) -> String {
    let free = rustix::fs::statvfs(journal)
        .map(|s| s.f_bavail * s.f_frsize)
        .unwrap_or(0);
    format!(
        "the disk of the store's journal ({}) is full: {free} bytes free; records are dropped \
         (and counted as a gap) until there is room (free space, or jcs gc / jcs summarize)",
        journal.display()
    )
}

/// A gap in a VE's recording: `lost` records the kernel could not deliver (`result` the
/// same), or, with `result` -1, a time when no recorder was recording it (count unknown).
/// The recorder's nice value: its monitor and journal threads, and the thread that serves
/// clients (the indexer, started before, is background work and keeps the default).
const DAEMON_NICE: i32 = -10;

/// How long the translator holds writes into a VE's dirties before their integrity record
/// is written (`Translator::take_integrity`).
const INTEGRITY_HOLD_NS: u64 = 1_000_000_000;

/// Where the record of VE `ve` may stop short after a recorder that did not finish: its last
/// record in the journal, less the integrity records (and online T1 summaries,
/// [`ONLINE_HOLD_NS`]) the recorder may have held by then.
fn lost_since(last_seen: &std::collections::HashMap<u64, u64>, ve: u64) -> u64 {
    match last_seen.get(&ve) {
        Some(&t) => t.saturating_sub(HELD_AT_MOST_NS).max(1),
        None => 0,
    }
}

fn gap_at(ve: u64, lost: u64, result: i64, since_ns: u64) -> At {
    At {
        time_ns: now_ns(),
        ve,
        pid: 0,
        tid: 0,
        op: model::at::Op::Gap,
        status: model::at::Status::Failed,
        src: 0,
        dst: 0,
        // The window of the loss: from `off` (0: unknown) to `time_ns`.
        off: since_ns,
        len: lost,
        result,
    }
}

/// The kernel's counters of a VE, and a gap transaction when records were lost.
/// `since`: when the VE was watched (where a gap for its lost records starts).
fn ve_stats(
    m: &Monitor,
    cgroup_id: u64,
    kernel_ve: Option<u64>,
    t: &Translator,
    since: u64,
) -> Result<Option<(VeStats, Option<At>)>> {
    let Some(ve) = t.ve_of(cgroup_id) else {
        return Ok(None);
    };
    let c = m.ve_counters(cgroup_id)?.unwrap_or_default();
    let counts = m.take_counts(cgroup_id)?;
    let calls: Vec<(u32, u64)> = counts.iter().filter(|c| !c.1).map(|c| (c.0, c.2)).collect();
    // Dropped in the kernel, and by the translator (failed lookups in the VE's own files).
    let mut dropped: BTreeMap<u32, u64> = BTreeMap::new();
    for (nr, n) in counts
        .iter()
        .filter(|c| c.1)
        .map(|c| (c.0, c.2))
        .chain(t.dropped_calls(cgroup_id))
    {
        *dropped.entry(nr).or_default() += n;
    }
    let dropped_calls: Vec<(u32, u64)> = dropped.into_iter().collect();
    let gap = (c.lost > 0).then(|| gap_at(ve, c.lost, c.lost as i64, since));
    let stats = VeStats {
        ve,
        seen: calls.iter().map(|c| c.1).sum(),
        emitted: t.received(cgroup_id) + c.lost,
        lost: c.lost,
        dropped: dropped_calls.iter().map(|c| c.1).sum(),
        calls,
        dropped_calls,
        arch: std::env::consts::ARCH.into(),
        denied: m.take_denials(kernel_ve.unwrap_or(ve))?,
    };
    Ok(Some((stats, gap)))
}

/// T1 summarization online (`jcs daemon --summarize online`): the transactions that move data
/// reach the journal as T1 summaries (a summary of one flow as its transaction), the others
/// as transactions. A summary stays open in memory for at most [`ONLINE_HOLD_NS`] (and until
/// a VE ends).
#[derive(Debug)]
struct Online {
    t1: analysis::summary::OnlineT1<At>,
    /// Variables that are not files (memories, endpoints, sockets).
    not_files: HashSet<VarId>,
}

/// How many variables the translator keeps by identity before it forgets them
/// (`Translator::forget_vars`): a long-running server's connections and files each add one (a
/// few hundred bytes each with the map's share).
const VARS_HELD_MAX: usize = 1 << 18;

/// [`VARS_HELD_MAX`], or `JCS_VARS_HELD_MAX` (the tests make it small).
fn vars_held_max() -> usize {
    static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| {
        std::env::var("JCS_VARS_HELD_MAX")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(VARS_HELD_MAX)
    })
}

/// How long online T1 holds a summary open: as long as the dirties' integrity records.
const ONLINE_HOLD_NS: u64 = INTEGRITY_HOLD_NS;

/// The longest the recorder holds anything it was given before writing it ([`lost_since`]).
const HELD_AT_MOST_NS: u64 = if INTEGRITY_HOLD_NS > ONLINE_HOLD_NS {
    INTEGRITY_HOLD_NS
} else {
    ONLINE_HOLD_NS
};

impl Online {
    fn new() -> Online {
        Online {
            t1: analysis::summary::OnlineT1::new(),
            not_files: Default::default(),
        }
    }
}

/// Buffers [`translate`] fills and empties at every batch.
#[derive(Default)]
struct Scratch {
    out: Vec<Output>,
    ats: Vec<At>,
}

impl Scratch {
    /// Gives back what a large batch (a backlog) made them hold beyond an ordinary one's.
    fn trim(&mut self) {
        const KEPT: usize = Batch::KEPT * 2;
        self.out.shrink_to(KEPT);
        self.ats.shrink_to(KEPT);
    }
}

/// Translates what the ring buffer delivered into journal records: variable definitions
/// first, then the names files got and lost, then the transactions. New variables and names
/// go to the catalog through the dictionary thread ([`Dictionary`]); the records reach the
/// journal after it committed them ([`Served::offer`]), and a recorder that starts adds back
/// what the journal has and the catalog lost (`index::next_var_id`, the indexes).
fn translate(
    (pending, scratch): (&std::cell::RefCell<Batch>, &mut Scratch),
    t: &mut Translator,
    (dict, known): (&Dictionary, &store::Catalog),
    online: Option<&mut Online>,
    force: bool,
    ending: Option<u64>,
    metrics: &crate::metrics::Metrics,
) -> Result<Keyed> {
    use std::sync::atomic::Ordering::Relaxed;
    // The batch is translated in place and the buffer kept (cleared, not reallocated): a
    // steady stream grows it once, not at every batch.
    let mut events = pending.borrow_mut();
    metrics.events.fetch_add(events.len() as u64, Relaxed);
    let out = &mut scratch.out;
    for e in events.events() {
        t.push(e, out);
    }
    // The batch's lookups of variables earlier recorders defined were one read transaction
    // (begun by the first of them, if any).
    known.end_read();
    events.clear();
    drop(events);
    // Writes into the dirties, held as integrity records for at most a second (and until
    // the VE's end).
    t.take_integrity(now_ns().saturating_sub(INTEGRITY_HOLD_NS), ending, out);
    let mut vars = Vec::new();
    let mut names = Vec::new();
    let mut execs = Vec::new();
    let mut integrity = Vec::new();
    let ats = &mut scratch.ats;
    ats.clear();
    for o in out.drain(..) {
        match o {
            Output::Var(id, d) => vars.push((id, d)),
            Output::Name(n) => names.push(n),
            Output::Exec(x) => execs.push(x),
            Output::At(a) => ats.push(a),
            Output::Integrity(s) => integrity.push(s),
        }
    }
    let mut records = Keyed::default();
    let mut online = online;
    if !vars.is_empty() {
        // The journal is the source of truth: a definition the catalog could not take (a
        // full disk, a recorder killed before its dictionary thread wrote it) is added back
        // when its segment is indexed, or read whole at the next recorder's start.
        dict.send(Dict::Vars(vars.clone()));
        if let Some(o) = online.as_deref_mut() {
            for (id, d) in &vars {
                if !d.is_file() {
                    o.not_files.insert(*id);
                }
            }
        }
        records.push_bounded(Record::Vars(vars));
    }
    if !names.is_empty() {
        dict.send(Dict::Names(names.clone()));
        records.push_bounded(Record::Names(names));
    }
    if !execs.is_empty() {
        records.push_bounded(Record::Execs(execs));
    }

    if let Some(o) = online {
        let flows = analysis::flows(ats, |v| !o.not_files.contains(&v));
        let mut moved = vec![false; ats.len()];
        for f in &flows {
            moved[f.at] = true;
        }
        o.t1.push(flows.into_iter().map(|f| (f, ats[f.at])));
        let mut i = 0;
        ats.retain(|_| {
            i += 1;
            !moved[i - 1]
        });
        // Arrival order across CPUs differs from time order by microseconds (a record is
        // stamped right after it is reserved): what is older than "now" minus a margin is
        // complete — 50 ms while VEs run, 1 ms when a VE has ended and its records were drained.
        let now = now_ns();
        let margin = if force { 1_000_000 } else { 50_000_000 };
        let mut sts = Vec::new();
        for (st, at) in o.t1.take(
            now.saturating_sub(margin),
            now.saturating_sub(ONLINE_HOLD_NS),
            force,
        ) {
            // A summary of one flow would only be larger than its transaction.
            if st.count == 1 {
                ats.push(at);
            } else {
                sts.push(st);
            }
        }
        if !sts.is_empty() {
            metrics.summaries.fetch_add(sts.len() as u64, Relaxed);
            records.push_bounded(Record::Summaries {
                tier: Tier::T1,
                sts,
            });
        }
    }
    if !ats.is_empty() {
        metrics.count_ats(ats);
        records.push_ats(ats);
    }
    // After the batch's transactions: a record's window ended before them or with them (the
    // VE's end), so `jcs log` lists it where it closed.
    if !integrity.is_empty() {
        metrics
            .integrity_records
            .fetch_add(integrity.len() as u64, Relaxed);
        records.push_bounded(Record::Summaries {
            tier: Tier::Integrity,
            sts: integrity,
        });
    }
    scratch.ats.clear();
    scratch.trim();
    Ok(records)
}

/// The largest record the recorder writes: half what a journal record may be
/// (`journal::format::MAX_RECORD`), so that a batch drained after a long stall (a stopped
/// recorder, a flood) is several records, not one the journal refuses. `JCS_RECORD_BYTES`
/// lowers it (at least 256; the tests make ordinary batches split with it).
fn record_bytes() -> usize {
    static BYTES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BYTES.get_or_init(|| {
        let most = journal::format::MAX_RECORD / 2;
        std::env::var("JCS_RECORD_BYTES")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .map_or(most, |b| b.clamp(256, most))
    })
}

/// What a full disk cost: the transactions dropped per VE while the journal could not be
/// written (the writer retries; gaps say what was lost once it writes again).
#[derive(Debug, Default)]
struct Full {
    lost: BTreeMap<u64, u64>,
    /// VEs whose final counters (their S record) were dropped: their record ends short by
    /// an unknown amount.
    unfinished: std::collections::BTreeSet<u64>,
    since_ns: Option<u64>,
    /// Transactions dropped since the daemon started (for the metrics).
    dropped_total: u64,
    /// Gaps written since the metrics last took them.
    gaps_written: Vec<At>,
}

/// Queues records as one block; the ticket of the last, if any. While the store's disk is
/// full the records are dropped and their transactions counted per VE in `full` (the daemon
/// stays up; `write_full_gaps` records the loss when the journal writes again).
fn submit(
    w: &journal::writer::Writer,
    records: Vec<Vec<u8>>,
    full: &mut Full,
) -> Result<Option<u64>> {
    submit_keyed(w, records, None, full)
}

/// [`submit`], with the records' index keys when they are known.
fn submit_keyed(
    w: &journal::writer::Writer,
    records: Vec<Vec<u8>>,
    keys: Option<Vec<u64>>,
    full: &mut Full,
) -> Result<Option<u64>> {
    if records.is_empty() {
        return Ok(None);
    }
    match w.offer_keyed(records, keys) {
        Ok(t) => Ok(Some(t)),
        Err((e, records)) if e.is_disk_full() => {
            if full.since_ns.is_none() {
                full.since_ns = Some(now_ns());
                tracing::error!(error = %e, "the store's disk is full: records are dropped (counted per VE) until there is room");
            }
            for r in records {
                match Record::decode(&r) {
                    Ok(Record::Ats(ats)) => {
                        for a in ats {
                            *full.lost.entry(a.ve).or_default() += 1;
                            full.dropped_total += 1;
                        }
                    }
                    Ok(Record::Stats(st)) => {
                        full.unfinished.insert(st.ve);
                    }
                    _ => {}
                }
            }
            Ok(None)
        }
        Err((e, _)) => Err(e.into()),
    }
}

/// Once the journal writes again after a full disk: one gap per VE that lost records
/// meanwhile (the transactions' count; result -1 when its final counters were among them),
/// and those VEs' records marked `gap` in the catalog.
fn write_full_gaps(
    w: &journal::writer::Writer,
    full: &mut Full,
    cat: &store::Catalog,
) -> Result<Option<u64>> {
    if full.since_ns.is_none() || w.full().is_some() {
        return Ok(None);
    }
    let since = full.since_ns.take().unwrap_or_default();
    let mut lost = std::mem::take(&mut full.lost);
    let unfinished = std::mem::take(&mut full.unfinished);
    for &ve in &unfinished {
        lost.entry(ve).or_default();
    }
    tracing::warn!(
        ves = lost.len(),
        since_ns = since,
        "the store's disk has room again: writing the gaps of the records dropped meanwhile"
    );
    if lost.is_empty() {
        return Ok(None);
    }
    // A VE whose final counters were dropped lost an unknown amount (result -1).
    let gaps: Vec<At> = lost
        .iter()
        .map(|(&ve, &n)| {
            let known = if unfinished.contains(&ve) {
                -1
            } else {
                n as i64
            };
            gap_at(ve, n, known, since)
        })
        .collect();
    for &ve in lost.keys() {
        if let Err(e) = cat.set_ve_record(ve, "gap") {
            tracing::error!(ve, error = %e, "catalog");
        }
    }
    full.gaps_written.extend(gaps.iter().copied());
    submit(w, vec![Record::Ats(gaps).encode()], full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_stores_ves_of_one_id_get_two_kernel_numbers() {
        let mut k = KernelIds::default();
        assert_eq!(k.take(100, 5), 5);
        assert_eq!(k.take(100, 5), 5, "the same cgroup keeps its number");
        let other = k.take(200, 5);
        assert_ne!(other, 5);
        assert!(other >= 1 << 31 && other <= u64::from(u32::MAX));
        assert_eq!(k.take(300, 5), other + 1);
        // A VE id the kernel cannot take as it is (0, beyond 32 bits) gets a number too.
        assert!(k.take(400, 0) >= 1 << 31);
        assert!(k.take(500, 1 << 40) <= u64::from(u32::MAX));
        k.give_back(100);
        assert_eq!(k.get(100), None);
        assert_eq!(k.take(600, 5), 5, "given back, taken again");
    }

    #[test]
    fn processes_of_ves_are_told_apart() {
        let host = "0::/user.slice/session-1.scope\n4:memory:/process_api/x\n";
        let hybrid_ve = "0::/jcs/ab12cd34-7\n4:memory:/jcs/ab12cd34-7\n8:pids:/jcs/ab12cd34-7\n";
        let unified_ve = "0::/jcs/ab12cd34-9\n";
        assert!(!in_ve_cgroup(host));
        assert!(in_ve_cgroup(hybrid_ve));
        assert!(in_ve_cgroup(unified_ve));
        assert!(!in_ve_cgroup("0::/jcsx/1\n1:name=systemd:/jcs.slice\n"));
    }
}
