//! The JCS monitor: eBPF programs (`src/bpf/`) that record the system calls and process
//! events of the tasks in watched VE cgroups, the loader that owns them ([`loader`], the only
//! file that uses libbpf-rs), and the pure decoder of their records ([`decode`]).

pub mod decode;
pub mod loader;
pub mod mappings;
mod syscall_names;
pub mod syscalls;
pub mod translate;

#[allow(
    clippy::all,
    unused_imports,
    unsafe_op_in_unsafe_fn,
    missing_debug_implementations,
    clippy::undocumented_unsafe_blocks
)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/monitor.skel.rs"));
}
