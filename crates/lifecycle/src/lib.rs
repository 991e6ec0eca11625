//! Templates, apps and VEs over the store (`crates/store`): building template and app
//! branches ([`template`], [`app`], maintenance mode included), running a VE with the hooks
//! that get it recorded and networked ([`ves`], [`net`]), its integrity report, removing and
//! collecting finished VEs. Every function returns values; the CLI prints them. What it has
//! to say on the way (a teardown that failed) goes out as `tracing` events, which the binary
//! shows.

pub mod abort;
pub mod app;
mod atomic;
pub mod image;
pub mod net;
pub mod publish;
pub mod recover;
pub mod template;
pub mod timing;
pub mod versions;
pub mod ves;

use std::io;

/// What a lifecycle operation failed at.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// What was asked cannot be done as asked (an unknown name, something in use, a missing
    /// branch); the message says what to do instead.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Launch(#[from] ve::launch::LaunchError),
    #[error(transparent)]
    Cgroup(#[from] ve::cgroup::CgroupError),
    #[error(transparent)]
    Net(#[from] ve::net::NetError),
    #[error(transparent)]
    Disk(#[from] ve::disk::DiskError),
    #[error(transparent)]
    Spec(#[from] model::spec::SpecError),
    #[error(transparent)]
    Name(#[from] model::NameError),
    #[error(transparent)]
    Query(#[from] query::QueryError),
    #[error("{0}")]
    Arg(String),
    #[error("{what} failed: {line}")]
    Tool { what: String, line: String },
    /// The VE exited, but the recorder could not confirm that all it did is in the journal.
    #[error("VE {ve} exited with {code}, but its recording is incomplete: {why}")]
    Unrecorded { ve: u64, code: i32, why: String },
    /// The step that failed, around what it failed with (its source; see [`describe`]).
    #[error("{what}")]
    Context {
        what: String,
        source: Box<LifecycleError>,
    },
}

impl LifecycleError {
    /// The VE launch error inside, if that is what this is (the CLI's exit code depends on it).
    pub fn launch(&self) -> Option<&ve::launch::LaunchError> {
        match self {
            LifecycleError::Launch(e) => Some(e),
            LifecycleError::Context { source, .. } => source.launch(),
            _ => None,
        }
    }
}

pub type Result<T, E = LifecycleError> = std::result::Result<T, E>;

/// An error and its sources as one line, `step: cause: cause`, each cause once (an error
/// whose message already ends with its source's is not repeated).
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut next = e.source();
    while let Some(c) = next {
        let s = c.to_string();
        if !msg.ends_with(&s) {
            msg.push_str(": ");
            msg.push_str(&s);
        }
        next = c.source();
    }
    msg
}

impl From<rustix::io::Errno> for LifecycleError {
    fn from(e: rustix::io::Errno) -> Self {
        LifecycleError::Io(e.into())
    }
}

/// Names the step around an error: `.ctx(|| format!("create {}", p.display()))`.
pub(crate) trait Context<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: Into<LifecycleError>> Context<T> for std::result::Result<T, E> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| LifecycleError::Context {
            what: what().into(),
            source: Box::new(e.into()),
        })
    }
}

/// A missing value is a refusal with this message: `.ctx(|| "unknown app x")`.
impl<T> Context<T> for Option<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.ok_or_else(|| LifecycleError::Refused(what().into()))
    }
}

/// Returns a [`LifecycleError::Refused`] with a formatted message.
macro_rules! refuse {
    ($($t:tt)*) => {
        return Err($crate::LifecycleError::Refused(format!($($t)*)))
    };
}
pub(crate) use refuse;
