//! Atomic transactions (ATs) on variables, as docs/design.md §2–3 defines them, and their compact
//! binary encoding for the journal.
//!
//! A variable is referenced by a dictionary id ([`VarId`]); the dictionary (file identity and
//! path, endpoint) lives in the catalog. An AT moves data from its source variable to its
//! target variable: a read moves file → the VE's memory, a write memory → file, `recv`
//! endpoint → memory, `send` memory → endpoint, `execve` of a file is a read.
//!
//! Encoding: a batch of ATs (what the daemon drains from the ring buffer at once, one journal
//! record) is a count followed by each AT as LEB128 varints, every field delta-coded against
//! the previous AT of the batch (zigzag for signed deltas). Repeated fields cost one byte; a
//! typical AT is 8–12 bytes before the journal's zstd compression.

use serde::{Deserialize, Serialize};

/// A variable's dictionary id. 0 is "no variable".
pub type VarId = u32;

/// What a variable is (its dictionary entry).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum VarDef {
    /// A file known by identity (device as `st_dev`, inode), with the path (inside the VE)
    /// it was opened by, when known.
    File {
        dev: u64,
        ino: u64,
        path: Option<String>,
    },
    /// A file known only by path (journals of version 1: the file an `execve` ran, the names
    /// of a rename or link).
    Path { path: String },
    /// A file by identity: device (`st_dev`), inode and generation (the kernel's
    /// `i_generation`, so that an inode number reused after a delete is a new file; 0 where
    /// the file system keeps none). One variable per file whatever its names: `name` is only
    /// the path inside the VE it was first seen by (a label); every name it had, where and
    /// when, store-level names too, is in [`Name`] records.
    Inode {
        dev: u64,
        ino: u64,
        gen: u32,
        name: Option<String>,
    },
    /// A network endpoint: the remote end of a socket whose local end is unknown (journals of
    /// version 1; an IP socket call whose local end the kernel could not give).
    Endpoint { addr: std::net::IpAddr, port: u16 },
    /// One direction of a connection or datagram exchange: what `from` sends to `to` (TCP or
    /// UDP). Both ends of a connection between two VEs of this host name the same flows, so
    /// tracking passes from the sender's VE to the receiver's.
    Flow {
        udp: bool,
        from: std::net::SocketAddr,
        to: std::net::SocketAddr,
    },
    /// A local socket endpoint (AF_UNIX) by path.
    Unix { path: String },
    /// The combined memory of all processes of a VE.
    Memory { ve: u64 },
}

impl VarDef {
    /// A file has bytes: its transactions touch byte intervals.
    pub fn is_file(&self) -> bool {
        matches!(
            self,
            VarDef::File { .. } | VarDef::Path { .. } | VarDef::Inode { .. }
        )
    }

    /// A volatile variable (a network endpoint): what is sent to it does not come back out of
    /// it (it is somewhere else, and answers what it likes). A Unix socket's name is not
    /// volatile: it is a rendezvous on this host, and what one VE sends through it another
    /// receives.
    pub fn is_volatile(&self) -> bool {
        matches!(self, VarDef::Endpoint { .. })
    }
}

impl std::fmt::Display for VarDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VarDef::File { path: Some(p), .. } => write!(f, "file:{p}"),
            VarDef::File {
                dev,
                ino,
                path: None,
            } => write!(f, "file:[{dev}:{ino}]"),
            VarDef::Path { path } => write!(f, "file:{path}"),
            // A host object a VE got as its stdio: `host:stdout`.
            VarDef::Inode { name: Some(n), .. } if n.starts_with("host:") => write!(f, "{n}"),
            VarDef::Inode { name: Some(n), .. } => write!(f, "file:{n}"),
            VarDef::Inode {
                dev,
                ino,
                gen,
                name: None,
            } => write!(f, "file:[{dev}:{ino}:{gen}]"),
            VarDef::Endpoint { addr, port } => write!(f, "endpoint:{addr}:{port}"),
            VarDef::Flow { udp, from, to } => {
                write!(f, "{}:{from}->{to}", if *udp { "udp" } else { "tcp" })
            }
            VarDef::Unix { path } => write!(f, "unix:{path}"),
            VarDef::Memory { ve } => write!(f, "ve:{ve}"),
        }
    }
}

/// Who ran what, beyond an exec's transaction (same VE, pid and time): the command line the
/// new program got, its parent, and its ids. `jcs log` shows it with the exec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExecInfo {
    pub time_ns: u64,
    pub ve: u64,
    pub pid: u32,
    /// The parent process (host pid).
    pub ppid: u32,
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    /// The arguments, as the program got them (at most 127 bytes of them: `argv_cut` says
    /// when there were more).
    pub argv: Vec<String>,
    #[serde(default)]
    pub argv_cut: bool,
    /// The working directory it started in (the path the recorder knows it by; absent when
    /// it cannot name it, and in journals written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
}

/// A name a file variable got or lost: one binding of a path to a file, in one VE, from one
/// moment on. Names are an attribute of a file in time, not its identity: an open, a
/// rename's new name and a link give one (`bound`); a rename's old name, an unlink, and a
/// rename over it take one away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Name {
    pub time_ns: u64,
    pub ve: u64,
    pub var: VarId,
    /// The path inside the VE.
    pub path: String,
    /// The store-level name, for a file of persistent or shared storage:
    /// `persist:APP:/inner/path`, `shared:NAME/relative/path`; None for a file of the VE's own
    /// file system.
    pub store: Option<String>,
    pub bound: bool,
}

/// What an AT did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[repr(u8)]
pub enum Op {
    Open = 0,
    Read = 1,
    Write = 2,
    Truncate = 3,
    Rename = 4,
    Link = 5,
    Unlink = 6,
    Mkdir = 7,
    Rmdir = 8,
    Symlink = 9,
    Chmod = 10,
    Chown = 11,
    Mmap = 12,
    Exec = 13,
    Fork = 14,
    Exit = 15,
    Socket = 16,
    Connect = 17,
    Accept = 18,
    Bind = 19,
    Listen = 20,
    Send = 21,
    Recv = 22,
    Close = 23,
    /// Events were lost (ring buffer full): `len` says how many.
    Gap = 24,
    /// Set or removed an extended attribute (memory → file).
    SetXattr = 25,
    /// Read an extended attribute (file → memory).
    GetXattr = 26,
    /// Set a file's timestamps (memory → file).
    Utime = 27,
    /// Made a file by mknod (a FIFO, a regular file, a socket or device node): a creation.
    Mknod = 28,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Open => "open",
            Op::Read => "read",
            Op::Write => "write",
            Op::Truncate => "truncate",
            Op::Rename => "rename",
            Op::Link => "link",
            Op::Unlink => "unlink",
            Op::Mkdir => "mkdir",
            Op::Rmdir => "rmdir",
            Op::Symlink => "symlink",
            Op::Chmod => "chmod",
            Op::Chown => "chown",
            Op::Mmap => "mmap",
            Op::Exec => "exec",
            Op::Fork => "fork",
            Op::Exit => "exit",
            Op::Socket => "socket",
            Op::Connect => "connect",
            Op::Accept => "accept",
            Op::Bind => "bind",
            Op::Listen => "listen",
            Op::Send => "send",
            Op::Recv => "recv",
            Op::Close => "close",
            Op::Gap => "gap",
            Op::SetXattr => "setxattr",
            Op::GetXattr => "getxattr",
            Op::Utime => "utime",
            Op::Mknod => "mknod",
        }
    }

    const ALL: [Op; 29] = [
        Op::Open,
        Op::Read,
        Op::Write,
        Op::Truncate,
        Op::Rename,
        Op::Link,
        Op::Unlink,
        Op::Mkdir,
        Op::Rmdir,
        Op::Symlink,
        Op::Chmod,
        Op::Chown,
        Op::Mmap,
        Op::Exec,
        Op::Fork,
        Op::Exit,
        Op::Socket,
        Op::Connect,
        Op::Accept,
        Op::Bind,
        Op::Listen,
        Op::Send,
        Op::Recv,
        Op::Close,
        Op::Gap,
        Op::SetXattr,
        Op::GetXattr,
        Op::Utime,
        Op::Mknod,
    ];

    /// The operation named `name` (as [`Op::name`] prints it).
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.iter().copied().find(|o| o.name() == name)
    }

    /// Every operation's name.
    pub fn names() -> Vec<&'static str> {
        Op::ALL.iter().map(|o| o.name()).collect()
    }

    pub fn from_u8(v: u8) -> Option<Op> {
        Op::ALL.get(usize::from(v)).copied()
    }
}

/// How the operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[repr(u8)]
pub enum Status {
    Committed = 0,
    /// Denied by policy.
    Aborted = 1,
    /// The system call returned an error (`result` is -errno).
    Failed = 2,
}

impl Status {
    /// The status as exports and tables name it.
    pub fn name(self) -> &'static str {
        match self {
            Status::Committed => "committed",
            Status::Aborted => "aborted",
            Status::Failed => "failed",
        }
    }
}

/// One atomic transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct At {
    pub time_ns: u64,
    pub ve: u64,
    pub pid: u32,
    pub tid: u32,
    pub op: Op,
    pub status: Status,
    /// Where the data came from and where it went (0 = none).
    pub src: VarId,
    pub dst: VarId,
    /// Byte interval [off, off + len) on the file variable involved (or bytes sent/received).
    pub off: u64,
    pub len: u64,
    /// The system call's return value.
    pub result: i64,
}

impl At {
    /// All fields zero: what the first transaction of a batch is delta-coded against.
    pub const ZERO: At = At {
        time_ns: 0,
        ve: 0,
        pid: 0,
        tid: 0,
        op: Op::Open,
        status: Status::Committed,
        src: 0,
        dst: 0,
        off: 0,
        len: 0,
        result: 0,
    };
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("batch truncated")]
    Truncated,
    #[error("varint too long")]
    Varint,
    #[error("unknown operation {0}")]
    Op(u8),
    #[error("unknown status {0}")]
    Status(u8),
    #[error("batch claims {0} transactions, more than its bytes can hold")]
    Count(u64),
    #[error("{0} trailing bytes after the batch")]
    Trailing(usize),
}

use crate::leb::put;

fn zig(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzig(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

struct Reader<'a> {
    b: &'a [u8],
    o: usize,
}

impl Reader<'_> {
    fn get(&mut self) -> Result<u64, DecodeError> {
        let start = self.o;
        crate::leb::get(self.b, &mut self.o).ok_or(if self.b.len() - start < 10 {
            DecodeError::Truncated
        } else {
            DecodeError::Varint
        })
    }
}

/// Encodes a batch of ATs (see the module documentation).
pub fn encode_batch(ats: &[At]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_batch_into(ats, &mut out);
    out
}

/// [`encode_batch`], appended to `out`.
pub fn encode_batch_into(ats: &[At], out: &mut Vec<u8>) {
    out.reserve(ats.len() * 12 + 4);
    put(out, ats.len() as u64);
    let mut p = At::ZERO;
    for a in ats {
        put(out, zig(a.time_ns.wrapping_sub(p.time_ns) as i64));
        put(out, zig(a.ve.wrapping_sub(p.ve) as i64));
        put(out, zig(i64::from(a.pid) - i64::from(p.pid)));
        put(out, zig(i64::from(a.tid) - i64::from(a.pid)));
        out.push((a.op as u8) | ((a.status as u8) << 5));
        put(out, zig(i64::from(a.src) - i64::from(p.src)));
        put(out, zig(i64::from(a.dst) - i64::from(p.dst)));
        // Sequential I/O: the next offset usually is the previous end.
        put(
            out,
            zig(a.off.wrapping_sub(p.off.wrapping_add(p.len)) as i64),
        );
        put(out, a.len);
        put(out, zig(a.result.wrapping_sub(a.len as i64)));
        p = *a;
    }
}

/// Decodes a batch produced by [`encode_batch`]; rejects anything else without panicking.
pub fn decode_batch(b: &[u8]) -> Result<Vec<At>, DecodeError> {
    let mut r = Reader { b, o: 0 };
    let n = r.get()?;
    // Every AT takes at least 10 bytes.
    if n > (b.len() as u64) / 10 + 1 {
        return Err(DecodeError::Count(n));
    }
    let mut out = Vec::with_capacity(n as usize);
    let mut p = At::ZERO;
    for _ in 0..n {
        let time_ns = p.time_ns.wrapping_add(unzig(r.get()?) as u64);
        let ve = p.ve.wrapping_add(unzig(r.get()?) as u64);
        let pid = (i64::from(p.pid) + unzig(r.get()?)) as u32;
        let tid = (i64::from(pid) + unzig(r.get()?)) as u32;
        let code = *r.b.get(r.o).ok_or(DecodeError::Truncated)?;
        r.o += 1;
        let op = Op::from_u8(code & 0x1f).ok_or(DecodeError::Op(code & 0x1f))?;
        let status = match code >> 5 {
            0 => Status::Committed,
            1 => Status::Aborted,
            2 => Status::Failed,
            s => return Err(DecodeError::Status(s)),
        };
        let src = (i64::from(p.src) + unzig(r.get()?)) as u32;
        let dst = (i64::from(p.dst) + unzig(r.get()?)) as u32;
        let off = p
            .off
            .wrapping_add(p.len)
            .wrapping_add(unzig(r.get()?) as u64);
        let len = r.get()?;
        let result = (len as i64).wrapping_add(unzig(r.get()?));
        p = At {
            time_ns,
            ve,
            pid,
            tid,
            op,
            status,
            src,
            dst,
            off,
            len,
            result,
        };
        out.push(p);
    }
    if r.o != b.len() {
        return Err(DecodeError::Trailing(b.len() - r.o));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(i: u64) -> At {
        At {
            time_ns: 1_700_000_000_000_000_000 + i * 850,
            ve: 101,
            pid: 4242,
            tid: 4242 + (i % 2) as u32,
            op: if i.is_multiple_of(3) {
                Op::Read
            } else {
                Op::Write
            },
            status: if i.is_multiple_of(7) {
                Status::Failed
            } else {
                Status::Committed
            },
            src: 7,
            dst: 9 + (i % 2) as u32,
            off: i * 100,
            len: 100,
            result: if i.is_multiple_of(7) { -13 } else { 100 },
        }
    }

    #[test]
    fn round_trip_and_size() {
        let ats: Vec<At> = (0..1000).map(at).collect();
        let b = encode_batch(&ats);
        assert_eq!(decode_batch(&b).unwrap(), ats);
        // Sequential writes of one process: about 12 bytes per AT before compression.
        assert!(
            b.len() < 13 * ats.len(),
            "{} bytes for {} ATs",
            b.len(),
            ats.len()
        );
    }

    #[test]
    fn extremes_round_trip() {
        let mut a = at(1);
        a.time_ns = u64::MAX;
        a.ve = u64::MAX;
        a.pid = u32::MAX;
        a.tid = 0;
        a.off = u64::MAX;
        a.len = u64::MAX;
        a.result = i64::MIN;
        a.src = u32::MAX;
        a.op = Op::Gap;
        a.status = Status::Aborted;
        let ats = vec![a, at(0), a];
        assert_eq!(decode_batch(&encode_batch(&ats)).unwrap(), ats);
        assert_eq!(decode_batch(&encode_batch(&[])).unwrap(), vec![]);
    }

    #[test]
    fn golden_bytes() {
        // The encoding is part of the journal format: these bytes must never change meaning.
        let b = encode_batch(&[at(1)]);
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        assert_eq!(hex, "01a48dd0e2c6bfce972fca01a44202020e14c8016400");
    }

    #[test]
    fn garbage_is_rejected_not_panicked_on() {
        assert_eq!(decode_batch(&[]), Err(DecodeError::Truncated));
        assert!(matches!(
            decode_batch(&[0xff, 0xff, 0xff, 0x0f]),
            Err(DecodeError::Count(_))
        ));
        let mut b = encode_batch(&[at(1), at(2)]);
        b.push(0);
        assert_eq!(decode_batch(&b), Err(DecodeError::Trailing(1)));
        let good = encode_batch(&(0..20).map(at).collect::<Vec<_>>());
        let mut x = 0x1234_5678u32;
        for i in 0..good.len() {
            for _ in 0..8 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let mut m = good.clone();
                m[i] = x as u8;
                let _ = decode_batch(&m);
                let _ = decode_batch(&m[..i]);
            }
        }
    }
}
