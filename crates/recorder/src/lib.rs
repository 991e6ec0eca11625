//! The JCS recorder: the daemon as a library. One daemon per host holds the BPF programs (one
//! set for all VEs of all stores) and serves every store with its own journal writer; `jcs
//! run` asks it, through [`Client`], to watch a VE's cgroup before the app's first
//! instruction and to flush once the VE has exited. `jcs daemon` is one call:
//! [`service::run`] (which hands the store to the host's daemon when one runs).
//!
//! - [`protocol`]: the whole API, [`Request`] / [`Response`], one JSON object per line over
//!   `$JCS_HOME/daemon.sock` and `$JCS_RUN_DIR/host.sock` (mode 0600);
//! - [`client`]: connecting (starting a recorder when none answers) and `jcs run`'s hooks;
//! - [`service`]: the threads — the accept loop (one short thread per connection), the
//!   monitor thread (BPF maps, ring buffer, translator), the journal writer, the indexer;
//! - [`index`]: what makes the journal searchable (per-segment indexes, the catalog's
//!   variable dictionary, the next variable id).
//!
//! It never imports the CLI; the records it writes are `record::Record`s.

pub mod client;
pub mod index;
pub mod metrics;
pub mod protocol;
pub mod service;

pub use client::{Client, MonitorHooks};
pub use protocol::{Request, Response};

use std::path::PathBuf;

/// What the recorder or its client failed at.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error("a jcs daemon is already running for {0}")]
    AlreadyRunning(PathBuf),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Os {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("JCS_SEGMENT_BYTES={0:?}: expected a size of at least 1024 bytes")]
    SegmentBytes(String),
    #[error("open the journal at {path}: {source}")]
    OpenJournal {
        path: PathBuf,
        source: journal::JournalError,
    },
    #[error("journal: {0}")]
    Journal(#[from] journal::JournalError),
    #[error("journal writer: {0}")]
    Writer(#[from] journal::writer::WriterError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("monitor: {0}")]
    Monitor(#[from] monitor::loader::MonitorError),
    #[error("the monitor thread ended: {0}")]
    MonitorStopped(String),
    #[error("jcs daemon: {0}")]
    Protocol(String),
    #[error("jcs daemon refused: {0}")]
    Refused(String),
    #[error("jcs daemon exited: {0}")]
    DaemonExited(String),
    #[error("jcs daemon did not come up (see {0})")]
    DaemonTimeout(PathBuf),
}

pub type Result<T, E = RecorderError> = std::result::Result<T, E>;

fn io_err(
    what: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> RecorderError {
    let path = path.to_path_buf();
    move |source| RecorderError::Io { what, path, source }
}

fn os_err(what: &'static str) -> impl FnOnce(std::io::Error) -> RecorderError {
    move |source| RecorderError::Os { what, source }
}
