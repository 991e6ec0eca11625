//! JCS beyond one host. [`ship`] publishes a host's journal to a NATS JetStream stream,
//! piece by piece and unchanged (each segment or summary header and each block, as
//! `journal::ship` hands them out); [`collect`] consumes a host's pieces on another machine,
//! checks every block's checksums and the hash chain as `jcs verify` does (the head it computes
//! is the host's head: the off-host anchor — a break is an alarm), and rebuilds the host's
//! journal files byte for byte.
//!
//! On the wire (docs/fleet.md): subject `journal.HOST.FILE` (the journal file's name without
//! its extension), headers `Nats-Msg-Id: HOST/EPOCH/FILE/OFFSET[/PART]` (JetStream drops a
//! re-sent piece within the stream's duplicate window), `Jcs-File`, `Jcs-Offset`, and
//! `Jcs-Part: I/N` when a piece is larger than what one message may carry.
//!
//! Does not know what records mean; prints nothing (progress goes to a callback).

pub mod clickhouse;
pub mod collect;
pub mod export;
mod nats;
pub mod ship;
#[doc(hidden)]
pub mod testing;
pub mod track;

pub use nats::{DEFAULT_STREAM, SUBJECT_PREFIX};

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("{0}")]
    Usage(String),
    #[error("NATS {servers}: {what}")]
    Nats { servers: String, what: String },
    #[error(transparent)]
    Ship(#[from] journal::ship::ShipError),
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// What a collector received does not continue the host's chain: tampering, or loss
    /// upstream. Never a log line: the collector stops.
    #[error("ALARM: host {host}: the journal received does not verify: {error}")]
    Alarm {
        host: String,
        error: Box<journal::ship::FollowError>,
    },
}

pub type Result<T, E = FleetError> = std::result::Result<T, E>;

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> FleetError {
    let what = what.into();
    move |source| FleetError::Io { what, source }
}

/// Checks a host name for use in subjects: letters, digits, `-` and `_`.
pub fn check_host(host: &str) -> Result<()> {
    check_name("host name", host, " (it is part of NATS subjects)")
}

/// A name of 1 to 64 letters, digits, `-` and `_` (what subjects and JetStream names take).
pub(crate) fn check_name(what: &str, name: &str, why: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(FleetError::Usage(format!(
            "{what} {name:?}: use 1 to 64 letters, digits, '-' or '_'{why}"
        )));
    }
    Ok(())
}

/// This machine's host name made fit for subjects (other characters become '-').
pub fn default_host() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let h: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if h.is_empty() {
        "host".into()
    } else {
        h
    }
}

/// The journal file a subject's last token names (`0000000000000003` → `…3.seg`,
/// `…0-…2` → `…0-…2.sum`).
fn file_of_token(token: &str) -> Option<String> {
    let hex16 = |s: &str| s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit());
    match token.split_once('-') {
        None if hex16(token) => Some(format!("{token}.seg")),
        Some((a, b)) if hex16(a) && hex16(b) => Some(format!("{token}.sum")),
        _ => None,
    }
}

/// The subject token of a journal file (its name without `.seg`/`.sum`).
fn token_of_file(file: &str) -> &str {
    file.strip_suffix(".seg")
        .or_else(|| file.strip_suffix(".sum"))
        .unwrap_or(file)
}

/// A tokio runtime on the calling thread (shipping and collecting are I/O bound and
/// sequential).
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_err("start the I/O runtime"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_and_subject_tokens_round_trip() {
        for f in [
            "0000000000000003.seg",
            "0000000000000000-0000000000000002.sum",
        ] {
            assert_eq!(file_of_token(token_of_file(f)).as_deref(), Some(f));
        }
        assert_eq!(file_of_token("x.seg"), None);
        assert_eq!(file_of_token("ship-JOURNAL"), None);
    }

    #[test]
    fn host_names_must_fit_in_a_subject() {
        check_host("web-1_a").unwrap();
        for bad in ["", "a.b", "a b", "*", ">", &"x".repeat(65)] {
            assert!(check_host(bad).is_err(), "{bad:?}");
        }
        check_host(&default_host()).unwrap();
    }
}
