//! VE construction: the store layout, cgroups, the overlay root, namespaces, `pivot_root`,
//! `/proc` and `/dev`, capabilities, seccomp, and reading a VE's dirties back as an integrity
//! report.
//!
//! This is the only library crate that calls the OS. Host locations (`/sys/fs/cgroup`, the
//! store root, `/proc/self/mountinfo`) are always parameters. The child side of a VE start is
//! a pure plan ([`launch::plan_mounts`]) executed step by step, so the order of operations is
//! unit-tested without root. It is not the CLI, and it keeps no catalog.

pub mod bpf;

pub mod caps;
pub mod cgroup;
pub mod devices;
pub mod disk;
pub mod doctor;
pub mod enter;
pub mod fsops;
pub mod inspect;
pub mod landlock;
pub mod launch;
pub mod layout;
pub mod manifest;
pub mod net;
pub mod netfilter;
pub mod pty;
pub mod safefs;
pub mod seccomp;
pub mod supervise;
pub mod vepath;

pub use cgroup::{CgroupLayout, VeCgroup};
pub use layout::Layout;
