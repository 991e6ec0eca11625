//! Turns decoded kernel records into atomic transactions on variables (DESIGN.md §1): a
//! push-based state machine (one [`Event`] in, [`Output`]s out), pure, so it is unit-tested
//! and fuzzed alone.
//!
//! Variables get dictionary ids the first time they are used; the definition is emitted
//! before the first transaction that uses it, so a journal that holds both is
//! self-describing. The translator tracks each process's descriptor table (from `openat`,
//! `close` and `fork`) to name the files behind descriptors.

use crate::decode::{Event, Kind};
use crate::syscalls::{Sem, Sys};
use model::at::{At, Op, Status, VarDef, VarId};
use std::collections::HashMap;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    File(u64, u64),
    Path(Vec<u8>),
    Endpoint(IpAddr, u16),
    Unix(Vec<u8>),
    Memory(u64),
}

/// What the translator produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A new variable: emitted once, before its first use.
    Var(VarId, VarDef),
    At(At),
}

/// What a descriptor refers to, as far as the translator saw it being made.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FdTarget {
    /// A file opened by this path.
    Path(Vec<u8>),
    /// A connected or accepted socket: its remote endpoint's variable.
    Endpoint(VarId),
    /// A socket without a known endpoint.
    Socket,
}

#[derive(Debug)]
pub struct Translator {
    /// cgroup id → VE id.
    ves: HashMap<u64, u64>,
    /// cgroup id → the tid of the VE's init.
    inits: HashMap<u64, u32>,
    vars: HashMap<Key, VarId>,
    next_var: VarId,
    /// (pid, fd) → the path it was opened by.
    fds: HashMap<(u32, i32), FdTarget>,
    /// The recorded system calls, by number.
    table: HashMap<u32, Sys>,
    /// Added to the kernel's monotonic timestamps to get wall-clock nanoseconds.
    clock_offset_ns: i64,
}

fn lossy(b: Vec<u8>) -> String {
    String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The remote endpoint of a `struct sockaddr`.
pub fn parse_sockaddr(b: &[u8]) -> Option<VarDef> {
    let family = u16::from_ne_bytes(b.get(0..2)?.try_into().ok()?);
    match i32::from(family) {
        libc::AF_INET => {
            let port = u16::from_be_bytes(b.get(2..4)?.try_into().ok()?);
            let a: [u8; 4] = b.get(4..8)?.try_into().ok()?;
            Some(VarDef::Endpoint {
                addr: IpAddr::from(a),
                port,
            })
        }
        libc::AF_INET6 => {
            let port = u16::from_be_bytes(b.get(2..4)?.try_into().ok()?);
            let a: [u8; 16] = b.get(8..24)?.try_into().ok()?;
            Some(VarDef::Endpoint {
                addr: IpAddr::from(a),
                port,
            })
        }
        libc::AF_UNIX => {
            let p = b.get(2..)?;
            let end = p.iter().position(|&c| c == 0).unwrap_or(p.len());
            Some(VarDef::Unix {
                path: lossy(p[..end].to_vec()),
            })
        }
        _ => None,
    }
}

impl Translator {
    /// `first_var` is the first dictionary id to hand out (ids are never reused: continue
    /// after the journal's highest); `clock_offset_ns` = realtime − monotonic.
    pub fn new(first_var: VarId, clock_offset_ns: i64) -> Translator {
        Translator {
            ves: HashMap::new(),
            inits: HashMap::new(),
            vars: HashMap::new(),
            next_var: first_var.max(1),
            fds: HashMap::new(),
            table: crate::syscalls::table()
                .into_iter()
                .map(|s| (s.nr as u32, s))
                .collect(),
            clock_offset_ns,
        }
    }

    pub fn watch(&mut self, cgroup_id: u64, ve: u64) {
        self.ves.insert(cgroup_id, ve);
    }

    /// Like [`Translator::watch`], and the system calls of the VE's init (`init_tid`, JCS's
    /// own code that builds the VE before the app starts, and then only reaps) are not the
    /// app's interactions: they are dropped. Its fork of the app and its exit are kept.
    pub fn watch_with_init(&mut self, cgroup_id: u64, ve: u64, init_tid: u32) {
        self.ves.insert(cgroup_id, ve);
        self.inits.insert(cgroup_id, init_tid);
    }

    /// The VE a watched cgroup belongs to.
    pub fn ve_of(&self, cgroup_id: u64) -> Option<u64> {
        self.ves.get(&cgroup_id).copied()
    }

    pub fn unwatch(&mut self, cgroup_id: u64) {
        self.ves.remove(&cgroup_id);
        self.inits.remove(&cgroup_id);
    }

    fn var(&mut self, key: Key, def: impl FnOnce() -> VarDef, out: &mut Vec<Output>) -> VarId {
        if let Some(id) = self.vars.get(&key) {
            return *id;
        }
        let id = self.next_var;
        self.next_var += 1;
        self.vars.insert(key, id);
        out.push(Output::Var(id, def()));
        id
    }

    fn file_var(&mut self, e: &Event, path: Option<Vec<u8>>, out: &mut Vec<Output>) -> VarId {
        match (e.file, path) {
            (Some((dev, ino)), path) => self.var(
                Key::File(dev, ino),
                || VarDef::File {
                    dev,
                    ino,
                    path: path.map(lossy),
                },
                out,
            ),
            (None, Some(p)) => self.var(
                Key::Path(p.clone()),
                || VarDef::Path { path: lossy(p) },
                out,
            ),
            (None, None) => 0,
        }
    }

    fn endpoint_var(&mut self, data: &[u8], out: &mut Vec<Output>) -> VarId {
        match parse_sockaddr(data) {
            Some(VarDef::Endpoint { addr, port }) => self.var(
                Key::Endpoint(addr, port),
                || VarDef::Endpoint { addr, port },
                out,
            ),
            Some(VarDef::Unix { path }) => self.var(
                Key::Unix(path.clone().into_bytes()),
                || VarDef::Unix { path },
                out,
            ),
            _ => 0,
        }
    }

    /// The variable behind descriptor `fd` of the record's process, and whether it is a socket.
    /// The hot path (every read and write): a known file costs two hash lookups and no
    /// allocation; the path is copied only when the variable is defined.
    fn fd_var(&mut self, e: &Event, fd: i32, out: &mut Vec<Output>) -> (VarId, bool) {
        match self.fds.get(&(e.pid, fd)) {
            Some(FdTarget::Endpoint(id)) => return (*id, true),
            Some(FdTarget::Socket) => return (0, true),
            _ => {}
        }
        if let Some(id) = e
            .file
            .and_then(|(dev, ino)| self.vars.get(&Key::File(dev, ino)))
        {
            return (*id, false);
        }
        let path = match self.fds.get(&(e.pid, fd)) {
            Some(FdTarget::Path(p)) => Some(p.clone()),
            _ => None,
        };
        (self.file_var(e, path, out), false)
    }

    fn syscall(&mut self, e: &Event, sys: Sys, mem: VarId, at: &mut At, out: &mut Vec<Output>) {
        let fd = e.args[0] as i32;
        let path = e.path().map(<[u8]>::to_vec);
        match sys.sem {
            Sem::Open => {
                at.op = Op::Open;
                if let (true, Some(p)) = (e.ret >= 0, &path) {
                    self.fds
                        .insert((e.pid, e.ret as i32), FdTarget::Path(p.clone()));
                }
                at.src = self.file_var(e, path, out);
                at.dst = mem;
            }
            Sem::ReadFd(off_arg) | Sem::WriteFd(off_arg) => {
                let reading = matches!(sys.sem, Sem::ReadFd(_));
                let (mut var, socket) = self.fd_var(e, fd, out);
                if !reading && socket && !e.data.is_empty() {
                    // sendto with an explicit destination.
                    var = self.endpoint_var(&e.data, out);
                }
                at.op = match (reading, socket) {
                    (true, false) => Op::Read,
                    (true, true) => Op::Recv,
                    (false, false) => Op::Write,
                    (false, true) => Op::Send,
                };
                (at.src, at.dst) = if reading { (var, mem) } else { (mem, var) };
                at.off = match off_arg {
                    Some(i) => e.args[i],
                    None if socket => 0,
                    None => e.pos.unwrap_or(0) as u64,
                };
                at.len = e.ret.max(0) as u64;
            }
            Sem::Close => {
                at.op = Op::Close;
                at.src = match self.fds.remove(&(e.pid, fd)) {
                    Some(FdTarget::Endpoint(id)) => id,
                    Some(FdTarget::Socket) => 0,
                    Some(FdTarget::Path(p)) => self.file_var(e, Some(p), out),
                    None => self.file_var(e, None, out),
                };
            }
            Sem::Meta(op) => {
                // Named by path (relative paths are kept as the process gave them), or by fd.
                at.op = op;
                at.src = mem;
                at.dst = if path.is_some() {
                    self.file_var(
                        &Event {
                            file: None,
                            ..e.clone()
                        },
                        path,
                        out,
                    )
                } else {
                    self.fd_var(e, fd, out).0
                };
            }
            Sem::Mmap => {
                // A shared writable mapping writes the file; any other mapping reads it.
                let shared_write = e.args[3] & libc::MAP_SHARED as u64 != 0
                    && e.args[2] & libc::PROT_WRITE as u64 != 0;
                let (var, _) = self.fd_var(e, e.args[4] as i32, out);
                at.op = Op::Mmap;
                (at.src, at.dst) = if shared_write { (mem, var) } else { (var, mem) };
                at.off = e.args[5];
                at.len = e.args[1];
            }
            Sem::Socket => {
                at.op = Op::Socket;
                if e.ret >= 0 {
                    self.fds.insert((e.pid, e.ret as i32), FdTarget::Socket);
                }
            }
            Sem::Connect | Sem::Bind => {
                let ep = self.endpoint_var(&e.data, out);
                at.op = if sys.sem == Sem::Connect {
                    Op::Connect
                } else {
                    Op::Bind
                };
                at.src = mem;
                at.dst = ep;
                if sys.sem == Sem::Connect && ep != 0 {
                    self.fds.insert((e.pid, fd), FdTarget::Endpoint(ep));
                }
            }
            Sem::Listen => {
                at.op = Op::Listen;
                at.src = self.fd_var(e, fd, out).0;
            }
            Sem::Accept => {
                let ep = self.endpoint_var(&e.data, out);
                at.op = Op::Accept;
                at.src = ep;
                at.dst = mem;
                if e.ret >= 0 {
                    self.fds.insert(
                        (e.pid, e.ret as i32),
                        if ep != 0 {
                            FdTarget::Endpoint(ep)
                        } else {
                            FdTarget::Socket
                        },
                    );
                }
            }
        }
    }

    /// Translates one record. Records of cgroups that are not watched produce nothing.
    pub fn push(&mut self, e: &Event, out: &mut Vec<Output>) {
        let Some(&ve) = self.ves.get(&e.cgroup_id) else {
            return;
        };
        if e.kind == Kind::Syscall && self.inits.get(&e.cgroup_id) == Some(&e.tid) {
            return;
        }
        let mem = self.var(Key::Memory(ve), || VarDef::Memory { ve }, out);
        let mut at = At {
            time_ns: (e.time_ns as i64).wrapping_add(self.clock_offset_ns) as u64,
            ve,
            pid: e.pid,
            tid: e.tid,
            op: Op::Open,
            status: if e.kind == Kind::Syscall && e.ret < 0 {
                Status::Failed
            } else {
                Status::Committed
            },
            src: 0,
            dst: 0,
            off: 0,
            len: 0,
            result: e.ret,
        };
        match e.kind {
            Kind::Fork => {
                // The child inherits the descriptor table.
                let child = e.ret as u32;
                let inherited: Vec<((u32, i32), FdTarget)> = self
                    .fds
                    .iter()
                    .filter(|((p, _), _)| *p == e.pid)
                    .map(|((_, f), path)| ((child, *f), path.clone()))
                    .collect();
                self.fds.extend(inherited);
                at.op = Op::Fork;
            }
            Kind::Exit => {
                if e.pid == e.tid {
                    self.fds.retain(|(p, _), _| *p != e.pid);
                }
                at.op = Op::Exit;
            }
            Kind::Exec => {
                at.op = Op::Exec;
                let path = e.path().map(<[u8]>::to_vec);
                at.src = path
                    .map(|p| {
                        self.var(
                            Key::Path(p.clone()),
                            || VarDef::Path { path: lossy(p) },
                            out,
                        )
                    })
                    .unwrap_or(0);
                at.dst = mem;
            }
            Kind::Syscall => {
                let Some(sys) = self.table.get(&e.nr).copied() else {
                    return;
                };
                self.syscall(e, sys, mem, &mut at, out);
            }
        }
        out.push(Output::At(at));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// System call numbers of the host (from libc), for the tests.
    mod nr {
        pub const OPENAT: u32 = libc::SYS_openat as u32;
        pub const WRITE: u32 = libc::SYS_write as u32;
        pub const PREAD64: u32 = libc::SYS_pread64 as u32;
        pub const CLOSE: u32 = libc::SYS_close as u32;
        pub const CONNECT: u32 = libc::SYS_connect as u32;
        pub const SOCKET: u32 = libc::SYS_socket as u32;
        pub const SENDTO: u32 = libc::SYS_sendto as u32;
        pub const RECVFROM: u32 = libc::SYS_recvfrom as u32;
        pub const ACCEPT4: u32 = libc::SYS_accept4 as u32;
        pub const RENAMEAT2: u32 = libc::SYS_renameat2 as u32;
        pub const MMAP: u32 = libc::SYS_mmap as u32;
    }

    #[test]
    fn sockets_send_and_receive_through_their_endpoints() {
        let mut t = Translator::new(1, 0);
        t.watch(55, 1);
        let mut out = vec![];
        t.push(&ev(Kind::Syscall, nr::SOCKET, 5), &mut out);
        let mut sa = vec![0u8; 16];
        sa[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        sa[2..4].copy_from_slice(&80u16.to_be_bytes());
        sa[4..8].copy_from_slice(&[10, 0, 0, 9]);
        let mut c = ev(Kind::Syscall, nr::CONNECT, 0);
        c.args[0] = 5;
        c.data = sa.clone();
        t.push(&c, &mut out);
        let mut snd = ev(Kind::Syscall, nr::SENDTO, 12);
        snd.args[0] = 5;
        t.push(&snd, &mut out);
        let mut rcv = ev(Kind::Syscall, nr::RECVFROM, 40);
        rcv.args[0] = 5;
        t.push(&rcv, &mut out);
        let mut acc = ev(Kind::Syscall, nr::ACCEPT4, 6);
        acc.data = sa;
        t.push(&acc, &mut out);
        let a = ats(&out);
        let ep = a[1].dst;
        assert_ne!(ep, 0);
        assert_eq!(
            (a[2].op, a[2].src, a[2].dst, a[2].len),
            (Op::Send, 1, ep, 12)
        );
        assert_eq!(
            (a[3].op, a[3].src, a[3].dst, a[3].len),
            (Op::Recv, ep, 1, 40)
        );
        assert_eq!((a[4].op, a[4].src, a[4].dst), (Op::Accept, ep, 1));
    }

    #[test]
    fn metadata_changes_and_mappings() {
        let mut t = Translator::new(1, 0);
        t.watch(55, 1);
        let mut out = vec![];
        let mut r = ev(Kind::Syscall, nr::RENAMEAT2, 0);
        r.data = b"/data/old\0".to_vec();
        t.push(&r, &mut out);
        let mut m = ev(Kind::Syscall, nr::MMAP, 0x7000);
        m.args = [
            0,
            4096,
            libc::PROT_READ as u64 | libc::PROT_WRITE as u64,
            libc::MAP_SHARED as u64,
            3,
            0,
        ];
        m.file = Some((1, 2));
        t.push(&m, &mut out);
        m.args[3] = libc::MAP_PRIVATE as u64;
        t.push(&m, &mut out);
        let a = ats(&out);
        assert_eq!((a[0].op, a[0].src), (Op::Rename, 1));
        assert!(out.contains(&Output::Var(
            2,
            VarDef::Path {
                path: "/data/old".into()
            }
        )));
        // A shared writable mapping writes the file; a private one reads it.
        assert_eq!(
            (a[1].op, a[1].src, a[1].dst, a[1].len),
            (Op::Mmap, 1, 3, 4096)
        );
        assert_eq!((a[2].src, a[2].dst), (3, 1));
    }

    fn ev(kind: Kind, nr: u32, ret: i64) -> Event {
        Event {
            time_ns: 1000,
            cgroup_id: 55,
            pid: 10,
            tid: 10,
            kind,
            nr,
            ret,
            args: [0; 6],
            file: None,
            pos: None,
            data: vec![],
        }
    }

    fn ats(out: &[Output]) -> Vec<At> {
        out.iter()
            .filter_map(|o| {
                if let Output::At(a) = o {
                    Some(*a)
                } else {
                    None
                }
            })
            .collect()
    }

    #[test]
    fn open_write_read_close_on_one_file() {
        let mut t = Translator::new(1, 5);
        t.watch(55, 101);
        let mut out = vec![];
        let mut open = ev(Kind::Syscall, nr::OPENAT, 3);
        open.data = b"/data/x\0".to_vec();
        open.file = Some((2049, 77));
        t.push(&open, &mut out);
        let mut w = ev(Kind::Syscall, nr::WRITE, 6);
        w.args[0] = 3;
        w.file = Some((2049, 77));
        w.pos = Some(0);
        t.push(&w, &mut out);
        let mut r = ev(Kind::Syscall, nr::PREAD64, -9);
        r.args = [3, 0, 100, 40, 0, 0];
        r.file = Some((2049, 77));
        t.push(&r, &mut out);
        let mut c = ev(Kind::Syscall, nr::CLOSE, 0);
        c.args[0] = 3;
        c.file = Some((2049, 77));
        t.push(&c, &mut out);
        assert_eq!(
            out[..2],
            [
                Output::Var(1, VarDef::Memory { ve: 101 }),
                Output::Var(
                    2,
                    VarDef::File {
                        dev: 2049,
                        ino: 77,
                        path: Some("/data/x".into())
                    }
                ),
            ]
        );
        let a = ats(&out);
        assert_eq!(
            a.iter().map(|a| a.op).collect::<Vec<_>>(),
            vec![Op::Open, Op::Write, Op::Read, Op::Close]
        );
        assert_eq!(
            (a[1].src, a[1].dst, a[1].off, a[1].len, a[1].time_ns),
            (1, 2, 0, 6, 1005)
        );
        // A failed pread: the file → memory direction, its offset argument, no bytes moved.
        assert_eq!(
            (
                a[2].src,
                a[2].dst,
                a[2].off,
                a[2].len,
                a[2].status,
                a[2].result
            ),
            (2, 1, 40, 0, Status::Failed, -9)
        );
        assert_eq!(out.len(), 6, "no variable defined twice");
    }

    #[test]
    fn unwatched_cgroups_produce_nothing() {
        let mut t = Translator::new(1, 0);
        let mut out = vec![];
        t.push(&ev(Kind::Exit, 0, 0), &mut out);
        assert!(out.is_empty());
        t.watch(55, 1);
        t.unwatch(55);
        t.push(&ev(Kind::Exit, 0, 0), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn fork_inherits_descriptors_and_exec_reads_the_file() {
        let mut t = Translator::new(100, 0);
        t.watch(55, 7);
        let mut out = vec![];
        let mut open = ev(Kind::Syscall, nr::OPENAT, 4);
        open.data = b"/log\0".to_vec();
        t.push(&open, &mut out);
        t.push(&ev(Kind::Fork, 0, 11), &mut out);
        let mut w = ev(Kind::Syscall, nr::WRITE, 1);
        w.pid = 11;
        w.tid = 11;
        w.args[0] = 4;
        t.push(&w, &mut out);
        let a = ats(&out);
        // The child's write lands on the file the parent opened (known by path here).
        assert_eq!(a[2].dst, a[0].src);
        assert!(out.contains(&Output::Var(
            101,
            VarDef::Path {
                path: "/log".into()
            }
        )));
        let mut x = ev(Kind::Exec, 0, 0);
        x.data = b"/bin/sh\0".to_vec();
        t.push(&x, &mut out);
        let e = *ats(&out).last().unwrap();
        assert_eq!((e.op, e.dst), (Op::Exec, 100));
    }

    #[test]
    fn the_inits_own_calls_are_dropped_its_fork_kept() {
        let mut t = Translator::new(1, 0);
        t.watch_with_init(55, 3, 10);
        let mut out = vec![];
        let mut c = ev(Kind::Syscall, nr::CLOSE, 0);
        c.args[0] = 5;
        t.push(&c, &mut out);
        t.push(&ev(Kind::Fork, 0, 11), &mut out);
        let a = ats(&out);
        assert_eq!(a.iter().map(|a| a.op).collect::<Vec<_>>(), vec![Op::Fork]);
        t.unwatch(55);
        t.watch(55, 3);
        t.push(&c, &mut out);
        assert_eq!(ats(&out).len(), 2, "without an init, every call counts");
    }

    #[test]
    fn connect_endpoints() {
        let mut b4 = vec![0u8; 16];
        b4[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        b4[2..4].copy_from_slice(&8080u16.to_be_bytes());
        b4[4..8].copy_from_slice(&[10, 231, 0, 2]);
        assert_eq!(
            parse_sockaddr(&b4),
            Some(VarDef::Endpoint {
                addr: "10.231.0.2".parse().unwrap(),
                port: 8080
            })
        );
        let mut b6 = vec![0u8; 28];
        b6[0..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        b6[2..4].copy_from_slice(&443u16.to_be_bytes());
        b6[23] = 1;
        assert_eq!(
            parse_sockaddr(&b6),
            Some(VarDef::Endpoint {
                addr: "::1".parse().unwrap(),
                port: 443
            })
        );
        let mut u = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        u.extend_from_slice(b"/run/x.sock\0");
        assert_eq!(
            parse_sockaddr(&u),
            Some(VarDef::Unix {
                path: "/run/x.sock".into()
            })
        );
        assert_eq!(parse_sockaddr(&[1]), None);
        let mut t = Translator::new(1, 0);
        t.watch(55, 1);
        let mut out = vec![];
        let mut c = ev(Kind::Syscall, nr::CONNECT, 0);
        c.data = b4;
        t.push(&c, &mut out);
        assert_eq!(ats(&out)[0].dst, 2);
    }
}
