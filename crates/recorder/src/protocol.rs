//! The recorder's whole API: [`Request`] and [`Response`], one JSON object per line over a
//! Unix socket that only root can open.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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
        /// The store-level name of each of those directories (`("/data",
        /// "persist:APP:/data")`, `("/root/Downloads", "shared:downloads")`): files below them
        /// are named the same in every VE that mounts them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        store_names: Option<Vec<(String, String)>>,
        /// The identity (device, inode) of the caller's stdin, stdout and stderr, which the
        /// VE's processes get: files of the host, named `host:stdin` … when first seen.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host_stdio: Option<Vec<(u64, u64, String)>>,
        /// The VE's cgroup2 directory: when it has no process left and nobody unwatched it
        /// (its `jcs run` was killed), the recorder finishes the VE's record itself.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cgroup_path: Option<PathBuf>,
        /// The VE's policy: the recorder enforces its network part (cgroup sock_addr programs
        /// on `cgroup_path`, before the reply) and journals it with how each part is enforced.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy: Option<Box<WatchPolicy>>,
        /// Which VE it is (app, version, name): journaled before its first transaction.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        info: Option<record::VeInfo>,
    },
    /// Pseudo-terminal `index` of the watched VE's devpts is a user's terminal: its master is
    /// held by `jcs run -t` or `jcs exec -t` on the host side; what crosses it is recorded.
    Tty {
        cgroup_id: u64,
        index: u32,
    },
    /// Stop recording it, after everything it did is durable in the journal.
    Unwatch {
        cgroup_id: u64,
        /// Answer [`Response::Unwatched`], with what the VE changed in files outside its own
        /// file system (its storage report), instead of `Ok` or `Finished`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        changes: bool,
    },
    /// Answered once everything the VE did so far is durable in the journal (`jcs exec`
    /// asks when its command has ended; the VE goes on being recorded).
    Flush {
        cgroup_id: u64,
    },
    Stats,
    /// Journal files put back by `jcs abort` or `jcs recover`; answered once durable.
    Restored {
        restores: Vec<record::Restore>,
    },
    /// Who the daemon is: its pid, its binary, how many VEs it watches.
    Status,
    /// To the host's socket: record the store at `home` too (its own journal, catalog and
    /// socket; the host's one set of BPF programs). Answered `Serving` once its socket
    /// answers; the connection then stays open as long as the daemon serves it.
    Serve {
        home: PathBuf,
        #[serde(default)]
        online_t1: bool,
        /// Prometheus metrics of this store on this address.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metrics: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        segment_bytes: Option<u64>,
    },
}

/// A VE's policy as `jcs run` hands it to the recorder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WatchPolicy {
    pub policy: model::policy::Policy,
    /// The parts the VE's start enforces itself, and how: (`files.writable`, `read-only
    /// mounts`), (`exec.allow`, `Landlock ABI 7`)...
    pub enforced: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    Ok,
    /// A Watch of a VE whose policy aborts on close: the id of the kernel's map of denied
    /// VEs, which its init maps read-only.
    Watched {
        tainted_map: u32,
        /// The kernel's number of the VE (its slot in that map is this modulo its size):
        /// the VE id unless a VE of another store has it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kernel_ve: Option<u64>,
    },
    /// A store handed to the host's daemon (pid) is recorded by it.
    Serving {
        pid: u32,
    },
    Status {
        pid: u32,
        /// (device, inode) of the daemon's executable (kept for older clients).
        exe: (u64, u64),
        /// The GNU build id of the daemon's executable: a rebuilt or upgraded jcs differs, a
        /// copy of the same binary at another path does not.
        #[serde(default)]
        build: String,
        /// VEs watched, of every store the daemon serves.
        watched: u64,
        /// The stores it serves.
        #[serde(default)]
        stores: u64,
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
    /// An Unwatch whose VE lost records in the kernel (its buffer share was used up): the
    /// record is durable, with a gap counting them.
    Finished {
        lost: u64,
    },
    /// An Unwatch that asked for `changes`: the record is durable (with a gap counting the
    /// `lost` records, if any); what the VE changed outside its own file system, when the
    /// recorder kept it (a VE with storage, watched by this recorder from its start).
    Unwatched {
        lost: u64,
        changes: Option<model::report::Touched>,
    },
}

/// The recorder's socket in the store at `home`.
pub fn socket_path(home: &Path) -> PathBuf {
    home.join("daemon.sock")
}

/// The GNU build id (`NT_GNU_BUILD_ID`) of this process's executable, in hex; empty when it
/// has none. Read once from the ELF notes of `/proc/self/exe`.
pub fn build_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        std::fs::File::open("/proc/self/exe")
            .ok()
            .and_then(|f| elf_build_id(&f))
            .unwrap_or_default()
    })
}

/// The build id in the PT_NOTE segments of a 64-bit little-endian ELF file, reading only its
/// header, program headers and notes (the binary is tens of MB: `jcs run` must not read it).
fn elf_build_id(f: &impl std::os::unix::fs::FileExt) -> Option<String> {
    let read = |off: u64, len: usize| {
        let mut b = vec![0u8; len];
        f.read_exact_at(&mut b, off).ok().map(|_| b)
    };
    let h = read(0, 64)?;
    let u16_at = |b: &[u8], o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |b: &[u8], o: usize| Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |b: &[u8], o: usize| Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?));
    if h.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let (phoff, phentsize, phnum) = (u64_at(&h, 32)?, u16_at(&h, 54)? as usize, u16_at(&h, 56)?);
    let phs = read(phoff, phentsize * phnum as usize)?;
    for i in 0..phnum as usize {
        let ph = i * phentsize;
        if u32_at(&phs, ph)? != 4 {
            continue; // not PT_NOTE
        }
        let (off, size) = (u64_at(&phs, ph + 8)?, u64_at(&phs, ph + 32)? as usize);
        if size > 1 << 16 {
            continue;
        }
        let b = read(off, size)?;
        let mut o = 0;
        while o + 12 <= b.len() {
            let (namesz, descsz, ty) = (
                u32_at(&b, o)? as usize,
                u32_at(&b, o + 4)? as usize,
                u32_at(&b, o + 8)?,
            );
            let name = o + 12;
            let desc = name + namesz.div_ceil(4) * 4;
            if ty == 3 && b.get(name..name + namesz)? == b"GNU\0" {
                let id = b.get(desc..desc + descsz)?;
                return Some(id.iter().map(|x| format!("{x:02x}")).collect());
            }
            o = desc + descsz.div_ceil(4) * 4;
        }
    }
    None
}

/// (device, inode) of this process's executable.
pub fn own_exe() -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/exe")
        .map(|m| (m.dev(), m.ino()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_binary_has_a_build_id() {
        // The test binary is linked like jcs: with a GNU build id (20 bytes of SHA-1).
        let id = build_id();
        assert_eq!(id.len(), 40, "{id:?}");
        assert!(id.bytes().all(|c| c.is_ascii_hexdigit()));
        let t = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(t.path(), b"not an ELF file at all, really").unwrap();
        assert_eq!(elf_build_id(&std::fs::File::open(t.path()).unwrap()), None);
    }

    #[test]
    fn protocol_is_one_json_object_per_message() {
        let r = Request::Watch {
            cgroup_id: 9,
            ve: 3,
            init: None,
            outside: None,
            store_names: None,
            host_stdio: None,
            cgroup_path: None,
            policy: None,
            info: None,
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
