//! Queries over a store's journal and catalog: [`log`] (the transactions, filtered, followed),
//! [`stats`] (per VE), [`track`] (where data came from and went), [`summarize`] (what each
//! tier keeps; rewriting sealed segments). Each returns values; printing them is the
//! caller's job (the `jcs` CLI today, an HTTP or fleet front end later).
//!
//! Records are read as `record::Record`s of any version; variables are named by
//! `record::VarQuery`, looked up by their stable key or, for files named by a name, resolved
//! through the names they had ([`resolve`]).

pub mod log;
pub mod replay;
pub mod resolve;
pub mod stats;
pub mod summarize;
pub mod time;
pub mod track;

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("read the journal at {dir}: {source}")]
    Journal {
        dir: PathBuf,
        source: journal::JournalError,
    },
    #[error("open the journal at {dir}: {source}")]
    Open {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("journal record {seq}: {source}")]
    Record {
        seq: u64,
        source: record::RecordError,
    },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("no variable {0} in the journal (see jcs log)")]
    NoVariable(record::VarQuery),
    #[error("no variable {0} in the readable part of the journal: {1} damaged stretch(es) could not be read (see jcs verify)")]
    NoVariableReadable(record::VarQuery, usize),
    #[error("{query} names {} different files; say which with --ve/--app, --at, a store-level name or the file's identity:\n  {}", candidates.len(), candidates.join("\n  "))]
    Ambiguous {
        query: record::VarQuery,
        candidates: Vec<String>,
    },
    #[error("summarize segments {first:016x}..{last:016x}: {source}")]
    Summarize {
        first: u64,
        last: u64,
        source: journal::JournalError,
    },
    #[error("{0}")]
    Usage(String),
}

pub type Result<T, E = QueryError> = std::result::Result<T, E>;

/// The journal in `dir`, for reading.
fn open(dir: &Path) -> Result<journal::DirStorage> {
    journal::DirStorage::new(dir).map_err(|source| QueryError::Open {
        dir: dir.to_path_buf(),
        source,
    })
}

fn journal_err(dir: &Path) -> impl FnOnce(journal::JournalError) -> QueryError {
    let dir = dir.to_path_buf();
    move |source| QueryError::Journal { dir, source }
}

/// Decodes a journal record; an unknown tag (a newer writer's kind) is skipped as `None`.
fn decode(seq: u64, r: &[u8]) -> Result<Option<record::Record>> {
    match record::Record::decode(r) {
        Ok(rec) => Ok(Some(rec)),
        Err(record::RecordError::UnknownTag(_)) => Ok(None),
        Err(source) => Err(QueryError::Record { seq, source }),
    }
}

/// Every record of the journal in `dir` that can be read, decoded, in order, and the damaged
/// stretches skipped (a query says it could not read them; it does not fail or go silent).
fn read_all(dir: &Path) -> Result<(Vec<record::Record>, Vec<journal::Skipped>)> {
    let (raw, skipped) = journal::read_all_tolerant(&open(dir)?).map_err(journal_err(dir))?;
    let mut out = Vec::with_capacity(raw.len());
    for (seq, r) in raw {
        out.extend(decode(seq, &r)?);
    }
    Ok((out, skipped))
}

/// One line for people about a skipped stretch.
pub fn skipped_line(s: &journal::Skipped) -> String {
    match s.resumed_at {
        Some(n) => format!("{} bytes {}..{} skipped ({})", s.file, s.offset, n, s.what),
        None => format!("{} from byte {} on skipped ({})", s.file, s.offset, s.what),
    }
}
