//! The JCS data model: identifiers, app and VE specifications, path rules, resource limits and
//! the integrity report types.
//!
//! This crate is pure: it never touches the file system, processes or the network. Everything
//! here is a value that the `ve` crate and the `jcs` binary turn into system calls.

pub mod at;
pub mod btf;
pub mod errno;
pub mod leb;
pub mod limits;
pub mod names;
pub mod policy;
pub mod report;
pub mod spec;

pub use limits::Limits;
pub use names::{InnerPath, Name, NameError, PathError, Share};
pub use report::{DirtyEntry, DirtyKind, EntryFlags, FileType, IntegrityReport, StorageChange};
pub use spec::{AppSpec, NetMode, VeId};
