//! The client side: a connection to the store's recorder (started on demand), and the hooks
//! `jcs run` gives a VE so that it is watched before its app starts and flushed after it ends.

use crate::protocol::{build_id, socket_path, Request, Response};
use crate::{io_err, RecorderError, Result};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;
use ve::launch::HookError;

/// A connection to the recorder.
#[derive(Debug)]
pub struct Client {
    r: BufReader<UnixStream>,
    w: UnixStream,
}

impl Client {
    pub fn connect(home: &Path) -> std::io::Result<Client> {
        Client::connect_to(&socket_path(home))
    }

    /// A connection to the daemon's socket at `path` (a store's, or the host's).
    pub fn connect_to(path: &Path) -> std::io::Result<Client> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Client {
            r: BufReader::new(s.try_clone()?),
            w: s,
        })
    }

    /// Connects, starting a recorder for this store when none answers. Starting is an
    /// election: whoever holds `daemon.start` (flock) checks again and starts one, the others
    /// wait for the lock and then find it running. A recorder of a different jcs build (jcs
    /// was rebuilt or upgraded: its BPF programs and record format may differ) is replaced
    /// when it records no VE, and kept with a warning otherwise; a copy of the same binary at
    /// another path is the same build.
    pub fn connect_or_start(home: &Path) -> Result<Client> {
        if let Some(c) = Client::running(home)? {
            return Ok(c);
        }
        let lock_path = home.join("daemon.start");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&lock_path)
            .map_err(io_err("open", &lock_path))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).map_err(|e| {
            RecorderError::Io {
                what: "lock",
                path: lock_path.clone(),
                source: e.into(),
            }
        })?;
        // Another run may have won the election while this one waited.
        if let Some(c) = Client::running(home)? {
            return Ok(c);
        }
        spawn_daemon(home)
    }

    /// A connection to the running recorder of this build, if there is one (a recorder of
    /// another build that records nothing is stopped, and None returned).
    fn running(home: &Path) -> Result<Option<Client>> {
        let Ok(mut c) = Client::connect(home) else {
            return Ok(None);
        };
        let status = c.call(&Request::Status);
        Client::judge(c, status, home)
    }

    /// Connects to the running daemon of the store at `home` and asks its Status without
    /// waiting for the answer ([`Client::connect_or_start_after`] takes it): the daemon answers
    /// while the caller does other work. None when no daemon answers the socket.
    pub fn ask_status(home: &Path) -> Option<Client> {
        let mut c = Client::connect(home).ok()?;
        c.send(&Request::Status).ok()?;
        Some(c)
    }

    /// [`Client::connect_or_start`], with the Status an [`Client::ask_status`] sent earlier
    /// (if any) read first: the same daemon is kept when its build is this one's.
    pub fn connect_or_start_after(early: Option<Client>, home: &Path) -> Result<Client> {
        if let Some(mut c) = early {
            let status = c.receive();
            if let Ok(Some(c)) = Client::judge(c, status, home) {
                return Ok(c);
            }
        }
        Client::connect_or_start(home)
    }

    /// What a Status answer says of the daemon behind `c`: keep it (this build, or another
    /// build that records VEs now), or None when it was another build, idle, and is stopped.
    fn judge(c: Client, status: Result<Response>, home: &Path) -> Result<Option<Client>> {
        match status {
            Ok(Response::Status { build, .. }) if build == build_id() => Ok(Some(c)),
            Ok(Response::Status {
                pid, watched: 0, ..
            }) => {
                tracing::info!("the daemon (pid {pid}) runs another jcs build; restarting it");
                drop(c);
                stop_and_wait(pid);
                Ok(None)
            }
            Ok(Response::Status { pid, watched, .. }) => {
                tracing::warn!(
                    "the daemon (pid {pid}) runs another jcs build and records \
                     {watched} VE(s); restart it once they end"
                );
                Ok(Some(c))
            }
            // An older daemon without Status.
            _ => Client::connect(home)
                .map(Some)
                .map_err(io_err("connect to", &socket_path(home))),
        }
    }

    /// Blocks until the daemon closes the connection (it ended).
    pub fn wait_closed(&mut self) {
        let _ = self.r.get_ref().set_read_timeout(None);
        let mut line = String::new();
        while matches!(self.r.read_line(&mut line), Ok(n) if n > 0) {
            line.clear();
        }
    }

    pub fn call(&mut self, req: &Request) -> Result<Response> {
        self.send(req)?;
        self.receive()
    }

    fn send(&mut self, req: &Request) -> Result<()> {
        let mut s =
            serde_json::to_string(req).map_err(|e| RecorderError::Protocol(e.to_string()))?;
        s.push('\n');
        self.w
            .write_all(s.as_bytes())
            .map_err(|e| RecorderError::Protocol(format!("send: {e}")))
    }

    fn receive(&mut self) -> Result<Response> {
        let mut line = String::new();
        self.r
            .read_line(&mut line)
            .map_err(|e| RecorderError::Protocol(format!("read: {e}")))?;
        if line.is_empty() {
            return Err(RecorderError::Protocol("closed the connection".into()));
        }
        serde_json::from_str(&line)
            .map_err(|e| RecorderError::Protocol(format!("decode the response: {e}")))
    }
}

/// SIGTERM to this store's recorder, by the pid it reported, and waits until it is gone, not
/// only its socket: it holds the store's daemon lock until its last file is closed (detaching
/// BPF programs takes a while).
fn stop_and_wait(pid: u32) {
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
    }
    for _ in 0..1000 {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The size past which `daemon.log` is rotated when a daemon starts.
const DAEMON_LOG_MAX: u64 = 16 << 20;

/// Starts `jcs daemon` for the store at `home` (this same binary), nobody's child, logging
/// to `daemon.log`; waits until it answers or says why it could not start.
fn spawn_daemon(home: &Path) -> Result<Client> {
    let exe = std::env::current_exe().map_err(crate::os_err("find the jcs binary"))?;
    let log_path = home.join("daemon.log");
    // Kept bounded: a log past 16 MiB becomes daemon.log.1 (replacing the one before) when a
    // daemon starts.
    if std::fs::metadata(&log_path).is_ok_and(|m| m.len() > DAEMON_LOG_MAX) {
        let _ = std::fs::rename(&log_path, home.join("daemon.log.1"));
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io_err("open", &log_path))?;
    let log_start = log.metadata().map_err(io_err("stat", &log_path))?.len();
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--home")
        .arg(home)
        .arg("daemon")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().map_err(io_err("open", &log_path))?)
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
        .and_then(|mut c| c.wait())
        .map_err(crate::os_err("start jcs daemon"))?;
    // Up to 5 s; longer while a daemon holds the store's lock (it is opening the store:
    // recovering the journal, reading its open segment — seconds for a long one), up to
    // `DAEMON_START_MAX`, saying so once (after the 5 s it used to give up at).
    let started = std::time::Instant::now();
    let mut said = false;
    loop {
        let waited = started.elapsed();
        if waited > Duration::from_secs(5) && (waited > DAEMON_START_MAX || !store_locked(home)) {
            break;
        }
        if waited > Duration::from_secs(5) && !said {
            said = true;
            eprintln!(
                "jcs: waiting for jcs daemon to open the store (see {})",
                log_path.display()
            );
        }
        if let Ok(c) = Client::connect(home) {
            return Ok(c);
        }
        // A daemon that fails says why in its log, as its last line, and exits.
        let log = std::fs::read(&log_path).unwrap_or_default();
        let new = String::from_utf8_lossy(log.get(log_start as usize..).unwrap_or_default());
        // (A daemon that lost to one started outside this election says "already
        // running": that one will answer.)
        if let Some(l) = new
            .lines()
            .rev()
            .find(|l| l.starts_with("jcs: ") && !l.contains("already running"))
        {
            return Err(RecorderError::DaemonExited(
                l.trim_start_matches("jcs: ").into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(RecorderError::DaemonTimeout(log_path))
}

/// How long `jcs run` waits for a daemon that is still opening the store.
const DAEMON_START_MAX: Duration = Duration::from_secs(120);

/// Whether a daemon holds the store's lock (it runs, or is starting), as /proc/locks says
/// (asked, not tried: a lock taken to try it could make a daemon starting at that moment
/// believe another one runs).
fn store_locked(home: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::metadata(home.join("daemon.lock")) else {
        return false;
    };
    // "1: FLOCK  ADVISORY  WRITE 4242 fe:00:10749445 0 EOF": the device in hex, the inode.
    let (major, minor) = (rustix::fs::major(m.dev()), rustix::fs::minor(m.dev()));
    let file = format!("{major:02x}:{minor:02x}:{}", m.ino());
    std::fs::read_to_string("/proc/locks").is_ok_and(|locks| {
        locks
            .lines()
            .any(|l| l.contains("FLOCK") && l.split_whitespace().any(|f| f == file))
    })
}

/// `jcs run`'s side: watch the VE's cgroup before the app starts, flush after it exits.
#[derive(Debug)]
pub struct MonitorHooks {
    home: PathBuf,
    ve: u64,
    outside: Vec<(String, String)>,
    client: Option<Client>,
    cgroup_id: u64,
    /// Records the kernel dropped make the run fail (`--strict-recording`), not only warn.
    pub strict: bool,
    /// The VE's policy (its network part is enforced by the recorder).
    pub policy: Option<Box<crate::protocol::WatchPolicy>>,
    /// The kernel's map of denied VEs (`Response::Watched`), for `abort_on_close`.
    tainted_map: Option<(u32, u64)>,
    /// `jcs run -t`: the VE's first pty (/dev/pts/0 of its devpts, which its init opens before
    /// the app starts) is the user's terminal, recorded as `host:pty`.
    pub tty: bool,
    /// Which VE it is, for the journal (its app and version, its name).
    pub info: Option<record::VeInfo>,
    /// The daemon asked for its Status early ([`MonitorHooks::ask_early`]).
    early: Option<Client>,
    /// What the VE changed outside its own file system, as the recorder answered its
    /// Unwatch ([`MonitorHooks::changes`]).
    changes: Option<model::report::Touched>,
}

impl MonitorHooks {
    /// The hooks of VE `ve` of the store at `home`; `outside`: the VE's directories that
    /// reach outside it (persistent and shared), each with its store-level name
    /// (`("/data", "persist:APP:/data")`). None with `JCS_MONITOR=off`, which runs VEs
    /// unrecorded (for kernels without the BPF features JCS needs).
    pub fn new(home: &Path, ve: u64, outside: Vec<(String, String)>) -> Option<MonitorHooks> {
        if monitor_off() {
            return None;
        }
        Some(MonitorHooks {
            home: home.to_path_buf(),
            ve,
            outside,
            client: None,
            cgroup_id: 0,
            strict: false,
            policy: None,
            tainted_map: None,
            tty: false,
            info: None,
            changes: None,
            early: None,
        })
    }

    /// What the VE changed in files outside its own file system, once its recording ended
    /// (after `after_exit`): None when the recorder did not keep it (no storage, an older
    /// daemon, a daemon that watched the VE only after a restart).
    pub fn changes(&self) -> Option<&model::report::Touched> {
        self.changes.as_ref()
    }

    /// Asks the store's daemon for its Status now, so that the answer waits in the socket
    /// when the VE's cgroup exists and is watched (≈ 0.3–1 ms of `jcs run` on a loaded host:
    /// the daemon's connection thread and monitor thread answer while the VE is built).
    pub fn ask_early(&mut self) {
        self.early = Client::ask_status(&self.home);
    }
}

/// Tells the recorder of the store at `home` that pseudo-terminal `index` of the VE in cgroup
/// `cgroup_id` is a user's terminal (`jcs exec -t`): what crosses it is recorded from the
/// answer on.
pub fn register_tty(home: &Path, cgroup_id: u64, index: u32) -> Result<(), RecorderError> {
    if monitor_off() {
        return Ok(());
    }
    let mut c = Client::connect_or_start(home)?;
    match c.call(&Request::Tty { cgroup_id, index })? {
        Response::Ok => Ok(()),
        Response::Error { message } => Err(RecorderError::Refused(format!(
            "record the terminal: {message}"
        ))),
        r => Err(RecorderError::Refused(format!(
            "record the terminal: {r:?}"
        ))),
    }
}

/// Returns once everything the VE in cgroup `cgroup_id` did so far is durable in the journal
/// of the store at `home` (`jcs exec`, when its command has ended: the journal read right
/// after it has what the command did).
pub fn flush(home: &Path, cgroup_id: u64) -> Result<(), RecorderError> {
    if monitor_off() {
        return Ok(());
    }
    let mut c = Client::connect(home).map_err(io_err("connect to", &socket_path(home)))?;
    match c.call(&Request::Flush { cgroup_id })? {
        Response::Ok => Ok(()),
        Response::Error { message } => Err(RecorderError::Refused(message)),
        r => Err(RecorderError::Refused(format!("{r:?}"))),
    }
}

/// `JCS_MONITOR=off`: VEs run unrecorded (for kernels without the BPF features JCS needs).
pub fn monitor_off() -> bool {
    std::env::var("JCS_MONITOR").is_ok_and(|v| v == "off")
}

/// This process's stdin, stdout and stderr (the VE's, unless it has a terminal of its own):
/// (device, inode, `host:stdin` …); one object on several of them is named by the first.
fn host_stdio() -> Vec<(u64, u64, String)> {
    let mut out: Vec<(u64, u64, String)> = Vec::new();
    for (fd, label) in [(0, "host:stdin"), (1, "host:stdout"), (2, "host:stderr")] {
        // SAFETY: fstat of a descriptor number this process may or may not have open.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        if let Ok(st) = rustix::fs::fstat(fd) {
            let (dev, ino) = (st.st_dev, st.st_ino);
            if !out.iter().any(|(d, i, _)| *d == dev && *i == ino) {
                out.push((dev, ino, label.to_string()));
            }
        }
    }
    out
}

impl ve::launch::Hooks for MonitorHooks {
    fn before_release(&mut self, pid: i32, cgroup: &ve::VeCgroup) -> Result<(), HookError> {
        let mut c = Client::connect_or_start_after(self.early.take(), &self.home)?;
        match c.call(&Request::Watch {
            cgroup_id: cgroup.id,
            ve: self.ve,
            init: Some(pid as u32),
            outside: Some(self.outside.iter().map(|(d, _)| d.clone()).collect()),
            store_names: Some(self.outside.clone()),
            host_stdio: Some(host_stdio()),
            cgroup_path: Some(cgroup.v2.clone()),
            policy: self.policy.clone(),
            info: self.info.clone(),
        })? {
            Response::Ok => {}
            Response::Watched {
                tainted_map,
                kernel_ve,
            } => self.tainted_map = Some((tainted_map, kernel_ve.unwrap_or(self.ve))),
            Response::Error { message } => {
                return Err(Box::new(RecorderError::Refused(format!(
                    "watch the VE: {message}"
                ))))
            }
            r => {
                return Err(Box::new(RecorderError::Refused(format!(
                    "watch the VE: {r:?}"
                ))))
            }
        }
        if self.tty {
            match c.call(&Request::Tty {
                cgroup_id: cgroup.id,
                index: 0,
            })? {
                Response::Ok => {}
                r => {
                    return Err(Box::new(RecorderError::Refused(format!(
                        "record the VE's terminal: {r:?}"
                    ))))
                }
            }
        }
        self.cgroup_id = cgroup.id;
        self.client = Some(c);
        Ok(())
    }

    fn release_data(&self) -> Vec<u8> {
        // The map's id, and the kernel's number of the VE (its slot and what it holds).
        self.tainted_map
            .map(|(id, k)| [&id.to_le_bytes()[..], &k.to_le_bytes()].concat())
            .unwrap_or_default()
    }

    fn after_exit(&mut self) -> Result<(), HookError> {
        let Some(mut c) = self.client.take() else {
            return Ok(());
        };
        let unwatch = Request::Unwatch {
            cgroup_id: self.cgroup_id,
            changes: true,
        };
        let reply = match c.call(&unwatch) {
            Ok(Response::Unwatched { lost, changes }) => {
                self.changes = changes;
                Ok(if lost > 0 {
                    Response::Finished { lost }
                } else {
                    Response::Ok
                })
            }
            r => r,
        };
        match reply {
            Ok(Response::Ok) => Ok(()),
            Ok(Response::Finished { lost }) if self.strict => {
                Err(Box::new(RecorderError::Refused(format!(
                    "the monitor dropped {lost} of the VE's records (the kernel's buffer was full, \
                     or the VE had used up its share of it); the journal has a gap that counts them"
                ))))
            }
            Ok(Response::Finished { lost }) => {
                tracing::warn!(
                    "VE {}: the monitor dropped {lost} of its records (the kernel's buffer was \
                     full, or the VE had used up its share of it); the journal has a gap that \
                     counts them",
                    self.ve
                );
                Ok(())
            }
            Ok(Response::Error { message }) => Err(Box::new(RecorderError::Refused(message))),
            Ok(r) => Err(Box::new(RecorderError::Refused(format!("{r:?}")))),
            Err(e) => {
                // The daemon that watched this VE is gone. A daemon started since then
                // watches it again (after a gap): flush what it recorded.
                let again = Client::connect(&self.home)
                    .map_err(|e| RecorderError::Protocol(e.to_string()))
                    .and_then(|mut c| c.call(&unwatch));
                let after = match again {
                    Ok(Response::Ok | Response::Finished { .. } | Response::Unwatched { .. }) => {
                        "; a restarted daemon recorded it again after a gap"
                    }
                    _ => "",
                };
                Err(format!("{e}{after}").into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// /proc/locks says whether a process holds the store's lock: one held by a descriptor
    /// of this process (as a starting daemon holds it), then released.
    #[test]
    fn a_held_store_lock_is_seen_and_a_released_one_is_not() {
        let home = tempfile::tempdir().unwrap();
        assert!(!store_locked(home.path()), "no lock file");
        let f = std::fs::File::create(home.path().join("daemon.lock")).unwrap();
        assert!(!store_locked(home.path()));
        rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
        assert!(store_locked(home.path()));
        // Another file's lock is not this one's.
        let other = tempfile::tempdir().unwrap();
        std::fs::File::create(other.path().join("daemon.lock")).unwrap();
        assert!(!store_locked(other.path()));
        rustix::fs::flock(&f, rustix::fs::FlockOperation::Unlock).unwrap();
        assert!(!store_locked(home.path()));
    }
}
