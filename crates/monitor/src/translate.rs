//! Turns decoded kernel records into atomic transactions on variables (docs/design.md §3): a
//! push-based state machine (one [`Event`] in, [`Output`]s out), pure, so it is unit-tested
//! and fuzzed alone.
//!
//! Variables get dictionary ids the first time they are used; the definition is emitted
//! before the first transaction that uses it, so a journal that holds both is
//! self-describing. The translator tracks each process's descriptor table (from `openat`,
//! `close` and `fork`) to name the files behind descriptors, and its working directory (from
//! `chdir`/`fchdir`, inherited across `fork`) to make relative paths absolute.
//!
//! Paths are the paths inside the VE, made absolute and lexically clean (`.` and `..` removed,
//! symbolic links not followed: the file's identity, device and inode, is what is exact). A
//! relative path under a descriptor the translator has not seen opened is kept as given.

use crate::decode::{flag, Event, Kind};
use crate::syscalls::{cap, Sem, Sys, Xfer};
use analysis::integrity::Hold;
use analysis::summary::Summary;
use model::at::{At, Name, Op, Status, VarDef, VarId};
use rustc_hash::FxHashMap as HashMap;
use rustc_hash::FxHashSet as HashSet;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    File(u64, u64, u32),
    Flow(bool, std::net::SocketAddr, std::net::SocketAddr),
    Path(Vec<u8>),
    Endpoint(IpAddr, u16),
    Unix(Vec<u8>),
    Memory(u64),
}

/// A UDP flow seen: its variable, source and destination addresses, and when it was last
/// used (the kernel's clock).
type UdpFlow = (VarId, IpAddr, IpAddr, u64);

/// What the translator produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A new variable: emitted once, before its first use.
    Var(VarId, VarDef),
    /// A file got or lost a name: emitted before the transactions after it.
    Name(Name),
    /// What an exec ran (its arguments, ids, parent): emitted before its transaction.
    Exec(model::at::ExecInfo),
    At(At),
    /// What a VE wrote into one of its dirties, taken together (DESIGN: dirties as integrity
    /// records): from the VE's memory into the file, over a time window, with the bytes and
    /// the number of calls. The journal keeps it as a summary of tier `I`.
    Integrity(Summary),
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
    /// A bound socket: its local endpoint's variable.
    Local(VarId),
    /// A connection: the flows it sends and receives on (for the calls whose record lacks
    /// the local end: a connection that closed before the call lost its port).
    Conn { send: VarId, recv: VarId },
}

/// How a variable an earlier recorder defined is found: its definition → its id.
type FindKnown = dyn FnMut(&VarDef) -> Option<VarId>;

/// Finds a variable an earlier recorder defined (see [`Translator::set_known`]).
pub struct Known(Box<FindKnown>);

impl std::fmt::Debug for Known {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Known(..)")
    }
}

/// A watched cgroup: its VE and what the translator needs of it at every event.
#[derive(Debug, Clone, Copy)]
struct Watched {
    ve: u64,
    /// The tid of the VE's init (its calls are JCS's own, dropped).
    init: Option<u32>,
    /// Records received while it was watched.
    received: u64,
    /// The VE's memory variable (0 until its first event).
    mem: VarId,
}

impl Watched {
    fn new(ve: u64, init: Option<u32>) -> Watched {
        Watched {
            ve,
            init,
            received: 0,
            mem: 0,
        }
    }
}

/// Every process's descriptor table, one per process: a fork copies its parent's, an exit
/// drops its own (neither looks at another process's).
#[derive(Debug, Default)]
struct FdTables(HashMap<u32, FdTable>);

/// One process's descriptors: the low ones by index (a lookup without a hash), the rest in a
/// map.
#[derive(Debug, Default, Clone)]
struct FdTable {
    low: Vec<Option<FdTarget>>,
    high: HashMap<i32, FdTarget>,
}

impl FdTable {
    /// Descriptors below this are kept by index.
    const LOW: usize = 1024;

    fn is_empty(&self) -> bool {
        self.high.is_empty() && self.low.iter().all(Option::is_none)
    }
}

impl FdTables {
    fn get(&self, pid: u32, fd: i32) -> Option<&FdTarget> {
        let t = self.0.get(&pid)?;
        match usize::try_from(fd) {
            Ok(i) if i < FdTable::LOW => t.low.get(i)?.as_ref(),
            _ => t.high.get(&fd),
        }
    }

    fn insert(&mut self, pid: u32, fd: i32, target: FdTarget) {
        let t = self.0.entry(pid).or_default();
        match usize::try_from(fd) {
            Ok(i) if i < FdTable::LOW => {
                if t.low.len() <= i {
                    t.low.resize(i + 1, None);
                }
                t.low[i] = Some(target);
            }
            _ => {
                t.high.insert(fd, target);
            }
        }
    }

    fn remove(&mut self, pid: u32, fd: i32) -> Option<FdTarget> {
        let t = self.0.get_mut(&pid)?;
        match usize::try_from(fd) {
            Ok(i) if i < FdTable::LOW => t.low.get_mut(i)?.take(),
            _ => t.high.remove(&fd),
        }
    }

    fn fork(&mut self, parent: u32, child: u32) {
        match self.0.get(&parent) {
            Some(t) if !t.is_empty() => {
                let t = t.clone();
                self.0.insert(child, t);
            }
            _ => {
                self.0.remove(&child);
            }
        }
    }

    fn exit(&mut self, pid: u32) {
        self.0.remove(&pid);
    }
}

#[derive(Debug)]
pub struct Translator {
    known: Option<Known>,
    /// (device, inode) → the label of a host object the VEs got as stdio (`host:stdout`).
    host_names: HashMap<(u64, u64), String>,
    /// The ptys the user's terminal is proxied through (`host:pty`, whatever path opens them).
    ttys: HashSet<(u64, u64)>,
    /// cgroup id → the VE's translation state (one lookup per event).
    watched: HashMap<u64, Watched>,
    vars: HashMap<Key, VarId>,
    next_var: VarId,
    /// The latest kernel timestamp seen ([`Translator::forget_vars`]).
    last_ns: u64,
    /// pid → its descriptors (fd → what it was opened as).
    fds: FdTables,
    /// cgroup id → the processes its VE forked that have not exited: their descriptor tables,
    /// working directories and mappings go with the VE if their exits were lost.
    forked: HashMap<u64, HashSet<u32>>,
    /// (source port, destination port) → the UDP flows seen, with their addresses: an
    /// unconnected socket's sends name no source address (it is chosen when the datagram is
    /// routed), and a receiver bound to every address names none for itself; such a flow is
    /// the one whose ports match and whose addresses match where both are known.
    udp: HashMap<(u16, u16), Vec<UdpFlow>>,
    /// pid → its writable shared file mappings (variable, offset, length): memory and file
    /// are linked both ways while one lasts, so its end (munmap, exec, exit) is recorded too.
    maps: HashMap<u32, Vec<(VarId, u64, u64)>>,
    /// Every live mapping of a file outside the VEs' own file systems: the flows it carries
    /// while it lasts, between VEs ([`crate::mappings`]).
    mapped: crate::mappings::Mappings,
    /// pid → working directory, when not `/`.
    cwd: HashMap<u32, Vec<u8>>,
    /// cgroup id → the directories where the VE's file system reaches outside it (its
    /// persistent and shared directories), when the watch named them.
    outside: HashMap<u64, Vec<Vec<u8>>>,
    /// cgroup id → the VE's policy and its storage mount points ([`Translator::set_policy`]).
    policies: HashMap<u64, (model::policy::Policy, Vec<model::InnerPath>)>,
    /// cgroup id → (directory inside the VE, its store-level name) of each persistent and
    /// shared directory: a file under one is named `store name + the rest of its path`.
    store_names: HashMap<u64, Vec<(Vec<u8>, String)>>,
    /// A name → the file that has it now, as far as the VEs' calls said: VE → path inside
    /// it → file (looked up by a borrowed path: no allocation per call), and the store-level
    /// name (the same file in every VE that mounts it). How path calls (rename, link, unlink,
    /// chmod, …: the kernel names no file for them) find their file.
    names: HashMap<u64, HashMap<Vec<u8>, VarId>>,
    store_level: HashMap<String, VarId>,
    /// cgroup id → system call number → calls classification dropped here, not in the kernel.
    dropped: HashMap<u64, HashMap<u32, u64>>,
    /// The recorded system calls, indexed by number.
    table: Vec<Option<Sys>>,
    /// Added to the kernel's monotonic timestamps to get wall-clock nanoseconds.
    clock_offset_ns: i64,
    /// (VE, file) → what the VE wrote into that file of its dirties since it was last emitted.
    integrity: Hold,
    /// Files of a VE's dirties that it maps shared and writable: the mappings' ends (munmap,
    /// mremap, exit) are integrity too. A file leaves the set when a call on it comes without
    /// `JCS_F_OWN` (its descriptor left the VE).
    own_maps: HashSet<VarId>,
    /// cgroup id → what the VE changed in files outside its own file system, for a VE with
    /// storage ([`Translator::take_changes`]).
    changes: HashMap<u64, Changes>,
    /// (cgroup id, device, inode) of the file last added to a VE's [`Changes`] (a loop of
    /// writes to it is looked up once).
    last_change: (u64, u64, u64),
}

/// What one VE changed in files outside its own file system: the files by identity; the
/// paths calls by name changed (attributes or size: wherever they are, since a symbolic link
/// can lead from anywhere into storage), whether each call followed a final symbolic link;
/// the symbolic links it made (link, target as given), renames applied.
#[derive(Debug, Default)]
struct Changes {
    files: HashSet<(u64, u64)>,
    paths: HashSet<(Vec<u8>, bool)>,
    links: Vec<(Vec<u8>, Vec<u8>)>,
    /// A change by a name the translator could not make absolute (a path cut in the kernel's
    /// buffer, a directory descriptor it never saw opened), or more than [`Changes::MAX`].
    incomplete: bool,
}

impl Changes {
    /// Files, paths and links kept per VE at most.
    const MAX: usize = 1 << 16;
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
            // A dual-stack socket's IPv4 peer (::ffff:a.b.c.d) is that IPv4 endpoint.
            Some(VarDef::Endpoint {
                addr: IpAddr::from(a).to_canonical(),
                port,
            })
        }
        libc::AF_UNIX => {
            let p = b.get(2..)?;
            // An abstract name starts with a NUL and may hold more: shown as `@name`.
            if let Some(rest) = p.strip_prefix(&[0]) {
                let end = rest.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1);
                return Some(VarDef::Unix {
                    path: format!("@{}", lossy(rest[..end].to_vec())),
                });
            }
            let end = p.iter().position(|&c| c == 0).unwrap_or(p.len());
            if end == 0 {
                return None; // unnamed
            }
            Some(VarDef::Unix {
                path: lossy(p[..end].to_vec()),
            })
        }
        _ => None,
    }
}

/// A process's end as a shell reports it: its exit code, or 128 + the signal that killed it
/// (from the kernel's wait status).
pub fn exit_result(status: i64) -> i64 {
    let sig = status & 0x7f;
    if sig == 0 {
        (status >> 8) & 0xff
    } else {
        128 + sig
    }
}

/// `path` made lexically clean: no `.`, no empty components, `..` applied (never above `/`
/// for an absolute path).
/// Whether [`clean`] would return `path` unchanged: absolute, no empty, `.` or `..`
/// component, no trailing slash (what programs open nearly always: no allocation for it).
fn is_clean(path: &[u8]) -> bool {
    path.len() > 1
        && path[0] == b'/'
        && path[1..]
            .split(|&b| b == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b"..")
}

pub fn clean(path: &[u8]) -> Vec<u8> {
    let absolute = path.first() == Some(&b'/');
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if matches!(parts.last(), Some(p) if *p != b"..") {
                    parts.pop();
                } else if !absolute {
                    parts.push(c);
                }
            }
            _ => parts.push(c),
        }
    }
    let mut out = Vec::with_capacity(path.len() + 1);
    for (i, p) in parts.iter().enumerate() {
        if absolute || i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(if absolute { b'/' } else { b'.' });
    }
    out
}

impl Translator {
    /// `first_var` is the first dictionary id to hand out (ids are never reused: continue
    /// after the journal's highest); `clock_offset_ns` = realtime − monotonic.
    pub fn new(first_var: VarId, clock_offset_ns: i64) -> Translator {
        Translator {
            known: None,
            host_names: HashMap::default(),
            ttys: HashSet::default(),
            watched: HashMap::default(),
            vars: HashMap::default(),
            next_var: first_var.max(1),
            fds: FdTables::default(),
            forked: HashMap::default(),
            cwd: HashMap::default(),
            maps: HashMap::default(),
            mapped: Default::default(),
            udp: HashMap::default(),
            last_ns: 0,
            outside: HashMap::default(),
            policies: HashMap::default(),
            store_names: HashMap::default(),
            names: HashMap::default(),
            store_level: HashMap::default(),
            dropped: HashMap::default(),
            table: {
                let mut t = vec![None; 512];
                for s in crate::syscalls::table() {
                    t[s.nr as usize] = Some(s);
                }
                t
            },
            clock_offset_ns,
            integrity: Hold::default(),
            own_maps: HashSet::default(),
            changes: HashMap::default(),
            last_change: (0, 0, 0),
        }
    }

    pub fn watch(&mut self, cgroup_id: u64, ve: u64) {
        self.watch_as(cgroup_id, ve, None);
    }

    /// Like [`Translator::watch`], and the system calls of the VE's init (`init_tid`, JCS's
    /// own code that builds the VE before the app starts, and then only reaps) are not the
    /// app's interactions: they are dropped. Its fork of the app and its exit are kept.
    pub fn watch_with_init(&mut self, cgroup_id: u64, ve: u64, init_tid: u32) {
        self.watch_as(cgroup_id, ve, Some(init_tid));
    }

    /// Watches `cgroup_id` as VE `ve` (again: what it received so far is kept).
    fn watch_as(&mut self, cgroup_id: u64, ve: u64, init: Option<u32>) {
        let w = self
            .watched
            .entry(cgroup_id)
            .or_insert_with(|| Watched::new(ve, init));
        if w.ve != ve {
            w.mem = 0;
        }
        w.ve = ve;
        if init.is_some() {
            w.init = init;
        }
    }

    /// Names the directories (absolute paths inside the VE) where the VE's file system reaches
    /// outside it: its persistent and shared directories. Everything else in it is the VE's
    /// own (read-only branches and its dirties), so a call that failed there because of what
    /// that file system holds (ENOENT, ENOTDIR, EEXIST, ENXIO: an open of a missing name, a mkdir of
    /// an existing one) depends on nothing outside the VE and changed nothing: it is counted,
    /// not recorded. Without this call every failed call is recorded.
    pub fn set_outside(&mut self, cgroup_id: u64, dirs: &[String]) {
        let dirs = dirs
            .iter()
            .map(|d| clean(d.as_bytes()))
            .filter(|d| d.first() == Some(&b'/'))
            .collect();
        self.outside.insert(cgroup_id, dirs);
    }

    /// Gives the VE's persistent and shared directories their store-level names: `(inner
    /// directory, name)`, e.g. `("/data", "persist:notes:/data")`,
    /// `("/root/Downloads", "shared:downloads")`. A file below one is named by the store name
    /// followed by the rest of its path, the same in every VE that mounts it.
    /// The host objects a VE got as its stdin, stdout, stderr: (device, inode, label). A file
    /// variable first defined for one is labelled so (`host:stdout`) instead of its numbers.
    pub fn set_host_names(&mut self, objects: &[(u64, u64, String)]) {
        // (Bounded: a label only names a variable when it is defined.)
        if self.host_names.len() > 4096 {
            self.host_names.clear();
        }
        for (dev, ino, label) in objects {
            self.host_names
                .entry((*dev, *ino))
                .or_insert_with(|| label.clone());
        }
    }

    pub fn set_store_names(&mut self, cgroup_id: u64, dirs: &[(String, String)]) {
        let dirs_empty = dirs.is_empty();
        let dirs = dirs
            .iter()
            .map(|(d, n)| (clean(d.as_bytes()), n.clone()))
            .filter(|(d, _)| d.first() == Some(&b'/'))
            .collect();
        self.store_names.insert(cgroup_id, dirs);
        // (A VE with storage: what it changes there is kept for its storage report.)
        if !dirs_empty {
            self.changes.entry(cgroup_id).or_default();
        }
    }

    /// What VE `cgroup_id` changed in files outside its own file system since its storage
    /// was named ([`Translator::set_store_names`]), taken (None: not kept for it). Complete
    /// unless a change could not be named or there were too many; the recorder also knows
    /// whether records were lost.
    pub fn take_changes(&mut self, cgroup_id: u64) -> Option<model::report::Touched> {
        let c = self.changes.remove(&cgroup_id)?;
        if self.last_change.0 == cgroup_id {
            self.last_change = (0, 0, 0);
        }
        let mut files: Vec<(u64, u64)> = c.files.into_iter().collect();
        files.sort_unstable();
        let mut paths: Vec<(String, bool)> =
            c.paths.into_iter().map(|(p, n)| (lossy(p), n)).collect();
        paths.sort_unstable();
        let links = c
            .links
            .into_iter()
            .map(|(l, t)| (lossy(l), lossy(t)))
            .collect();
        Some(model::report::Touched {
            files,
            paths,
            links,
            complete: !c.incomplete,
        })
    }

    /// Notes what `e`'s transaction `at` (from the VE's memory) changed outside the VE's own
    /// file system ([`Changes`]): a call by name that changed a file's attributes or size, by
    /// its path (resolved at the VE's end, when the storage report is made); a symbolic link
    /// it made, or renamed; a file written, truncated, mapped for writing or given new
    /// attributes through a descriptor (`file`: its identity). Names made and removed are not
    /// noted: the storage report compares the names before and after.
    fn note_change(&mut self, e: &Event, sys: &Sys, at: &At, file: Option<(u64, u64, u32)>) {
        if e.ret < 0 || e.rule != 0 || at.status != Status::Committed {
            return;
        }
        if let Sem::Meta(op) = sys.sem {
            if sys.cap & (cap::PATH0 | cap::PATH1) != 0 && e.path().is_some_and(|p| !p.is_empty()) {
                self.note_by_name(e, sys, op);
                return;
            }
        }
        let changes = match at.op {
            Op::Write => at.len > 0,
            Op::Truncate | Op::Chmod | Op::Chown | Op::SetXattr | Op::Utime | Op::Mmap => true,
            _ => false,
        };
        let Some((dev, ino, _)) = file.filter(|_| changes) else {
            return;
        };
        // (A loop of writes to one file: noted once.)
        if self.last_change == (e.cgroup_id, dev, ino) {
            return;
        }
        let Some(c) = self.changes.get_mut(&e.cgroup_id) else {
            return;
        };
        if c.files.len() < Changes::MAX {
            c.files.insert((dev, ino));
            self.last_change = (e.cgroup_id, dev, ino);
        } else if !c.files.contains(&(dev, ino)) {
            c.incomplete = true;
        }
    }

    /// [`Translator::note_change`] of a successful call by name.
    fn note_by_name(&mut self, e: &Event, sys: &Sys, op: Op) {
        const NOFOLLOW: u64 = libc::AT_SYMLINK_NOFOLLOW as u64;
        let whole = |p: &Vec<u8>| p.first() == Some(&b'/') && !p.ends_with("…".as_bytes());
        match op {
            Op::Chmod | Op::Chown | Op::Truncate | Op::Utime | Op::SetXattr => {
                let nofollow = match sys.name {
                    "lchown" | "lsetxattr" | "lremovexattr" => true,
                    "fchownat" => e.args[4] & NOFOLLOW != 0,
                    "utimensat" | "fchmodat2" => e.args[3] & NOFOLLOW != 0,
                    "setxattrat" | "removexattrat" => e.args[2] & NOFOLLOW != 0,
                    _ => false,
                };
                let path = self.path_of(e, sys, false);
                let Some(c) = self.changes.get_mut(&e.cgroup_id) else {
                    return;
                };
                match path {
                    Some(p) if whole(&p) && c.paths.len() < Changes::MAX => {
                        c.paths.insert((p, nofollow));
                    }
                    // Cut, relative to a directory it never saw opened, or too many: it may
                    // have been in storage.
                    _ => c.incomplete = true,
                }
            }
            Op::Symlink => {
                let link = self.path_of(e, sys, true);
                let target = e.path().map(<[u8]>::to_vec);
                let Some(c) = self.changes.get_mut(&e.cgroup_id) else {
                    return;
                };
                match (link, target) {
                    (Some(l), Some(t))
                        if whole(&l) && t.len() < 127 && c.links.len() < Changes::MAX =>
                    {
                        c.links.push((l, t))
                    }
                    _ => c.incomplete = true,
                }
            }
            Op::Rename => {
                let (Some(from), Some(to)) =
                    (self.path_of(e, sys, false), self.path_of(e, sys, true))
                else {
                    return;
                };
                let Some(c) = self.changes.get_mut(&e.cgroup_id) else {
                    return;
                };
                // A link made here, or in a directory renamed: it goes on under the new name.
                for (l, _) in &mut c.links {
                    if l.starts_with(&from)
                        && (l.len() == from.len() || l.get(from.len()) == Some(&b'/'))
                    {
                        let rest = l.split_off(from.len());
                        *l = [to.as_slice(), &rest].concat();
                    }
                }
            }
            _ => {}
        }
    }

    /// The store-level name of `path` (absolute, inside the VE of `cgroup_id`), if it is in
    /// persistent or shared storage.
    fn store_name(&self, cgroup_id: u64, path: &[u8]) -> Option<String> {
        let (d, n) = self.store_names.get(&cgroup_id)?.iter().find(|(d, _)| {
            path == d.as_slice() || (path.starts_with(d) && path.get(d.len()) == Some(&b'/'))
        })?;
        Some(format!("{n}{}", String::from_utf8_lossy(&path[d.len()..])))
    }

    /// Calls of a watched cgroup that classification dropped here, by system call number.
    pub fn dropped_calls(&self, cgroup_id: u64) -> Vec<(u32, u64)> {
        let mut v: Vec<(u32, u64)> = self
            .dropped
            .get(&cgroup_id)
            .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default();
        v.sort_unstable();
        v
    }

    /// Whether `path` is in the VE's own file system, not under one of the directories that
    /// reach outside it (false when the watch did not name them, or the path is not absolute).
    fn in_own_fs(&self, cgroup_id: u64, path: &[u8]) -> bool {
        let Some(outside) = self.outside.get(&cgroup_id) else {
            return false;
        };
        path.first() == Some(&b'/')
            && !outside.iter().any(|d| {
                d.as_slice() == b"/"
                    || path == d.as_slice()
                    || (path.starts_with(d) && path.get(d.len()) == Some(&b'/'))
            })
    }

    /// Whether `e` is a call that failed on names of the VE's own file system only, with an
    /// error that says no more than what that file system holds (ENOENT, ENOTDIR, EEXIST;
    /// ENXIO: `/dev/tty` of a VE without a controlling terminal, a FIFO of its own with no
    /// reader): it changed nothing and depended on nothing outside the VE. Such a call is
    /// counted as dropped (and true returned), not recorded.
    fn failed_in_own_fs(&mut self, e: &Event, paths: &[Option<&Vec<u8>>]) -> bool {
        const ENOENT: i64 = 2;
        const ENXIO: i64 = 6;
        const EEXIST: i64 = 17;
        const ENOTDIR: i64 = 20;
        if ![ENOENT, ENXIO, ENOTDIR, EEXIST].contains(&-e.ret)
            || paths.is_empty()
            || !paths
                .iter()
                .all(|p| p.is_some_and(|p| self.in_own_fs(e.cgroup_id, p)))
        {
            return false;
        }
        self.count_dropped(e);
        true
    }

    /// The VE a watched cgroup belongs to.
    pub fn ve_of(&self, cgroup_id: u64) -> Option<u64> {
        self.watched.get(&cgroup_id).map(|w| w.ve)
    }

    /// The VE's policy and its storage mount points: a call that failed because the policy's
    /// mounts denied it (EROFS on storage outside the writable trees; a hidden path) is an
    /// aborted transaction naming the rule, not a failed one.
    pub fn set_policy(
        &mut self,
        cgroup_id: u64,
        policy: model::policy::Policy,
        storage: Vec<model::InnerPath>,
    ) {
        self.policies.insert(cgroup_id, (policy, storage));
    }

    /// The rule of the VE's policy that made `e` fail (0: none).
    fn denied_by(&self, e: &Event) -> u32 {
        const ENOENT: i64 = 2;
        const EACCES: i64 = 13;
        const EROFS: i64 = 30;
        const EDQUOT: i64 = libc::EDQUOT as i64;
        let Some((p, storage)) = self.policies.get(&e.cgroup_id) else {
            return 0;
        };
        // The paths made absolute (against the working directory or the call's dirfd).
        let sys = self.table.get(e.nr as usize).copied().flatten();
        let paths: Vec<Vec<u8>> = match sys {
            Some(sys) => [false, true]
                .into_iter()
                .filter_map(|second| self.path_of(e, &sys, second))
                .collect(),
            None => [e.path(), e.path2()]
                .into_iter()
                .flatten()
                .map(<[u8]>::to_vec)
                .collect(),
        };
        for path in &paths {
            let Some(inner) = std::str::from_utf8(path)
                .ok()
                .filter(|s| s.starts_with('/'))
                .and_then(|s| model::InnerPath::parse(s).ok())
            else {
                continue;
            };
            if e.ret == -EROFS {
                if let Some(r) = p.write_denied(&inner, storage) {
                    return r;
                }
            }
            // The supervisor's answer to a change of one storage file more than the budget.
            if e.ret == -EDQUOT
                && p.files_written.is_some()
                && storage.iter().any(|s| inner.is_within(s))
            {
                return p.files_written_rule();
            }
            if e.ret == -ENOENT || e.ret == -EACCES || e.ret == -EROFS {
                if let Some(r) = p.read_denied(&inner) {
                    return r;
                }
            }
            if e.ret == -EACCES && matches!(e.nr as i64, libc::SYS_execve | libc::SYS_execveat) {
                if let Some(r) = p.exec_denied(&inner) {
                    return r;
                }
            }
        }
        0
    }

    pub fn unwatch(&mut self, cgroup_id: u64) {
        self.policies.remove(&cgroup_id);
        for pid in self.forked.remove(&cgroup_id).unwrap_or_default() {
            self.fds.exit(pid);
            self.cwd.remove(&pid);
            self.maps.remove(&pid);
        }
        if let Some(w) = self.watched.remove(&cgroup_id) {
            self.names.remove(&w.ve);
            // (Its processes' exits ended their mappings, unless the exits were lost.)
            self.mapped.forget_ve(w.ve);
        }
        self.outside.remove(&cgroup_id);
        self.store_names.remove(&cgroup_id);
        self.dropped.remove(&cgroup_id);
        self.changes.remove(&cgroup_id);
        if self.last_change.0 == cgroup_id {
            self.last_change = (0, 0, 0);
        }
    }

    /// Emits the integrity records that began before `before_ns`, and all of VE `ending`'s
    /// (its end). Called at every batch with a cut-off a second back, a file written without
    /// pause gets one record per second: what is held here is at most that old.
    pub fn take_integrity(&mut self, before_ns: u64, ending: Option<u64>, out: &mut Vec<Output>) {
        if !self.integrity.is_empty() {
            out.extend(
                self.integrity
                    .take(before_ns, ending)
                    .into_iter()
                    .map(Output::Integrity),
            );
        }
    }

    /// A call on one of the VE's dirties (`JCS_F_OWN`): a write goes into the file's integrity
    /// record, a read (open, read, close, getxattr: what the VE reads back came from a pristine
    /// branch or from its own memory) is counted as dropped; what changes a file without data
    /// (chmod, chown by descriptor), an exec, a mapping, a failed or aborted call is kept as
    /// a transaction. Whether it was taken.
    fn own(&mut self, e: &Event, mem: VarId, at: &At) -> bool {
        if e.ret < 0 || e.rule != 0 || at.status != Status::Committed || mem == 0 {
            return false;
        }
        if Hold::takes(at, mem) {
            self.integrity.absorb(at);
            return true;
        }
        match at.op {
            Op::Open | Op::Read | Op::GetXattr | Op::Close
                if at.dst == mem || at.op == Op::Close =>
            {
                self.count_dropped(e);
                true
            }
            _ => false,
        }
    }

    /// Counts `e` as dropped by classification (`jcs stats`: dropped_by_name).
    fn count_dropped(&mut self, e: &Event) {
        *self
            .dropped
            .entry(e.cgroup_id)
            .or_default()
            .entry(e.nr)
            .or_default() += 1;
    }

    /// How many variables the translator knows by identity ([`Translator::forget_vars`]).
    pub fn vars_held(&self) -> usize {
        self.vars.len() + self.udp.len()
    }

    /// Forgets the variables it knows by identity — files by device, inode and generation,
    /// endpoints, flows, memories — so that what it holds does not grow with every file and
    /// connection a long-running VE ever touched: the next use of one finds its variable
    /// through [`Translator::set_known`] (the catalog), the same one. Only once the catalog has
    /// every definition emitted so far (else a file would get a second variable). Files known
    /// only by path are kept (they are never looked up: a path may be another file by now),
    /// and so are the UDP flows used in the last minute (ends with a wildcard address are
    /// joined through them, not through a definition).
    pub fn forget_vars(&mut self) {
        if self.known.is_none() {
            return;
        }
        self.vars.retain(|k, _| matches!(k, Key::Path(_)));
        const RECENT_NS: u64 = 60_000_000_000;
        let since = self.last_ns.saturating_sub(RECENT_NS);
        self.udp.retain(|_, seen| {
            seen.retain(|f| f.3 >= since);
            !seen.is_empty()
        });
        self.vars.shrink_to_fit();
        self.udp.shrink_to_fit();
    }

    /// The records of a watched cgroup received so far (the kernel emitted them).
    pub fn received(&self, cgroup_id: u64) -> u64 {
        self.watched.get(&cgroup_id).map_or(0, |w| w.received)
    }

    /// `path` of process `pid` made absolute: relative to descriptor `dirfd` (`AT_FDCWD` or
    /// None: the working directory). Kept as given when the directory is unknown.
    fn resolve(&self, pid: u32, dirfd: Option<i32>, path: Vec<u8>) -> Vec<u8> {
        if path.first() == Some(&b'/') {
            return if is_clean(&path) { path } else { clean(&path) };
        }
        let base: &[u8] = match dirfd {
            None | Some(libc::AT_FDCWD) => self.cwd.get(&pid).map(Vec::as_slice).unwrap_or(b"/"),
            Some(fd) => match self.fds.get(pid, fd) {
                Some(FdTarget::Path(p)) => p,
                _ => return path,
            },
        };
        let mut joined = base.to_vec();
        joined.push(b'/');
        joined.extend_from_slice(&path);
        clean(&joined)
    }

    /// The record's path (`second`: its second path), absolute, for system call `sys`.
    /// A path that filled the kernel's buffer (255 bytes; 127 for each path of a two-path
    /// call) was cut: it ends in `…`, so that it never passes for a whole path (a name query
    /// by the whole path does not find it; the label shows it).
    fn path_of(&self, e: &Event, sys: &Sys, second: bool) -> Option<Vec<u8>> {
        let mut p = if second { e.path2() } else { e.path() }?.to_vec();
        let two = sys.cap & (cap::PATHB1 | cap::PATHB2 | cap::PATHB3) != 0;
        let room = if two || second { 127 } else { 255 };
        let cut = p.len() >= room;
        let dirfd = sys.dirfd[usize::from(second)].map(|i| e.args[i] as i32);
        if cut {
            p.extend_from_slice("…".as_bytes());
        }
        Some(self.resolve(e.pid, dirfd, p))
    }

    fn var(&mut self, key: Key, def: impl FnOnce() -> VarDef, out: &mut Vec<Output>) -> VarId {
        self.var_of(key, def, out, true)
    }

    /// [`Translator::var`]; `earlier`: whether an earlier recorder may have defined it (not a
    /// file this call created: the catalog lookup is skipped).
    fn var_of(
        &mut self,
        key: Key,
        def: impl FnOnce() -> VarDef,
        out: &mut Vec<Output>,
        earlier: bool,
    ) -> VarId {
        if let Some(id) = self.vars.get(&key) {
            return *id;
        }
        let def = def();
        // A variable an earlier recorder defined (a file by identity, an endpoint, a VE's
        // memory): the same variable, not a new one (files by path are never reused: a path
        // may be another file by now).
        // Its definition is written again (once per recorder): the journal stays self-
        // contained even where the one that defined it is gone (a store copied without its
        // journal, a segment summarized or damaged); a reader keeps either copy, they agree.
        if earlier && !matches!(key, Key::Path(_)) {
            if let Some(id) = self.known.as_mut().and_then(|k| (k.0)(&def)) {
                self.vars.insert(key, id);
                out.push(Output::Var(id, def));
                return id;
            }
        }
        let id = self.next_var;
        self.next_var += 1;
        self.vars.insert(key, id);
        out.push(Output::Var(id, def));
        id
    }

    /// Says that the file `var` has the store-level name `name` now (what an earlier recorder
    /// saw; the catalog keeps it).
    pub fn restore_store_name(&mut self, name: String, var: VarId) {
        self.store_level.insert(name, var);
    }

    /// How to find a variable the journal already defines (the recorder: its key in the
    /// catalog), so that a restarted recorder gives a file, an endpoint or a VE the variable
    /// it had.
    pub fn set_known(&mut self, find: impl FnMut(&VarDef) -> Option<VarId> + 'static) {
        self.known = Some(Known(Box::new(find)));
    }

    /// The variable of a file: by identity when the kernel gave it (labelled, when new, by its
    /// path in the VE: its names, store-level ones too, are `Name` outputs), else (a call that
    /// failed before the kernel found a file) by the path alone.
    fn file_var(
        &mut self,
        file: Option<(u64, u64, u32)>,
        path: Option<Vec<u8>>,
        out: &mut Vec<Output>,
    ) -> VarId {
        self.file_var_of(file, path, out, false)
    }

    /// [`Translator::file_var`]; `created`: the call made the file (an open with O_CREAT and
    /// O_EXCL that succeeded), so no earlier recorder knew it.
    fn file_var_of(
        &mut self,
        file: Option<(u64, u64, u32)>,
        path: Option<Vec<u8>>,
        out: &mut Vec<Output>,
        created: bool,
    ) -> VarId {
        match (file, path) {
            (Some((dev, ino, gen)), path) => {
                if let Some(id) = self.vars.get(&Key::File(dev, ino, gen)) {
                    return *id;
                }
                let name = path
                    .filter(|p| p.first() == Some(&b'/') && !self.ttys.contains(&(dev, ino)))
                    .map(lossy)
                    .or_else(|| self.host_names.get(&(dev, ino)).cloned());
                self.var_of(
                    Key::File(dev, ino, gen),
                    || VarDef::Inode {
                        dev,
                        ino,
                        gen,
                        name,
                    },
                    out,
                    !created,
                )
            }
            (None, Some(p)) => self.var(
                Key::Path(p.clone()),
                || VarDef::Path { path: lossy(p) },
                out,
            ),
            (None, None) => 0,
        }
    }

    /// The variable a socket call's address stands for. A Unix socket bound to a path is the
    /// file it made: the kernel's identity of the rendezvous socket's file (`UNIXFILE`), or,
    /// for a path the call names (a datagram sent to a name; a connect that failed), the file
    /// the translator saw get that name — in this VE, or by its store-level name in any —, so
    /// both ends meet whatever name each used (relative, through another mount point). Else
    /// the endpoint, or the Unix name (made absolute against the working directory).
    /// (`by_call`: the address is the call's own, a bind's or a connect's: a relative name is
    /// this process's.)
    fn sock_var(&mut self, e: &Event, by_call: bool, out: &mut Vec<Output>) -> VarId {
        // (Every socket call's record goes through here: one parse of its address.)
        let path = match parse_sockaddr(&e.data) {
            Some(VarDef::Endpoint { addr, port }) => {
                return self.var(
                    Key::Endpoint(addr, port),
                    || VarDef::Endpoint { addr, port },
                    out,
                )
            }
            Some(VarDef::Unix { path }) if path.starts_with('@') => {
                return self.var(
                    Key::Unix(path.clone().into_bytes()),
                    || VarDef::Unix { path },
                    out,
                )
            }
            Some(VarDef::Unix { path }) => path.into_bytes(),
            _ => return 0,
        };
        if let (true, Some(id)) = (e.flags & flag::UNIXFILE != 0, e.file2) {
            // (A relative name the kernel kept is the binder's: no label of ours.)
            let label = match path.first() {
                Some(b'/') => Some(path),
                _ if by_call => Some(self.resolve(e.pid, None, path)),
                _ => None,
            };
            return self.file_var_of(Some(id), label, out, false);
        }
        let path = self.resolve(e.pid, None, path);
        let ve = self.watched.get(&e.cgroup_id).map(|w| w.ve);
        if let Some(v) = ve.and_then(|ve| self.named(e, ve, &path)) {
            return v;
        }
        let path = lossy(path);
        self.var(
            Key::Unix(path.clone().into_bytes()),
            || VarDef::Unix { path },
            out,
        )
    }

    /// When what a call writes became visible: its entry, but no more than 10 ms before its
    /// exit (the online summarizer takes records as complete 50 ms after they are stamped; a
    /// write that blocked longer is stamped 10 ms before it returned).
    fn write_time(&self, e: &Event) -> u64 {
        const MAX_EARLY_NS: u64 = 10_000_000;
        let t = e.enter_ns.max(e.time_ns.saturating_sub(MAX_EARLY_NS));
        (t as i64).wrapping_add(self.clock_offset_ns) as u64
    }

    /// The end of process `pid`'s writable shared mappings (exit, exec): both ways, now; and
    /// of all its mappings as channels between VEs.
    fn end_mappings(&mut self, pid: u32, mem: VarId, at: At, out: &mut Vec<Output>) {
        for (var, off, len) in self.maps.remove(&pid).unwrap_or_default() {
            let m = At {
                op: Op::Mmap,
                status: Status::Committed,
                off,
                len,
                result: 0,
                ..at
            };
            self.mapping(
                At {
                    src: var,
                    dst: mem,
                    ..m
                },
                mem,
                out,
            );
            self.mapping(
                At {
                    src: mem,
                    dst: var,
                    ..m
                },
                mem,
                out,
            );
        }
        self.mapped.end(pid);
    }

    /// A mapping's link between memory and file: a transaction, or — a file of the VE's
    /// dirties ([`Translator::own_maps`]) — part of its integrity record (memory → file) or
    /// nothing (file → memory: what the VE reads back).
    fn mapping(&mut self, at: At, mem: VarId, out: &mut Vec<Output>) {
        let file = if at.src == mem { at.dst } else { at.src };
        if at.status == Status::Committed && self.own_maps.contains(&file) {
            if at.src == mem {
                self.integrity.absorb(&at);
            }
            return;
        }
        self.emit(at, out);
    }

    /// Emits a transaction, with the flows live mappings of other VEs carry around it.
    #[inline]
    fn emit(&mut self, at: At, out: &mut Vec<Output>) {
        if self.mapped.is_empty() {
            out.push(Output::At(at));
        } else {
            self.emit_mapped(at, out);
        }
    }

    #[inline(never)]
    fn emit_mapped(&mut self, at: At, out: &mut Vec<Output>) {
        let (before, after) = self.mapped.around(&at);
        out.extend(before.into_iter().map(Output::At));
        out.push(Output::At(at));
        out.extend(after.into_iter().map(Output::At));
    }

    /// The flow an IP socket's call sends on (`recv`: receives from) when the kernel gave both
    /// ends: from the local end to the remote one, or back. 0 when it did not.
    fn flow_var(&mut self, e: &Event, recv: bool, out: &mut Vec<Output>) -> VarId {
        if e.flags & flag::LOCAL == 0 {
            return 0;
        }
        let ip = |d: &[u8]| match parse_sockaddr(d) {
            Some(VarDef::Endpoint { addr, port }) => Some(std::net::SocketAddr::new(addr, port)),
            _ => None,
        };
        let (Some(remote), Some(local)) = (ip(&e.data), ip(&e.data2)) else {
            return 0;
        };
        let udp = e.flags & flag::UDP != 0;
        let (from, to) = if recv {
            (remote, local)
        } else {
            (local, remote)
        };
        let key = Key::Flow(udp, from, to);
        if let Some(v) = self.vars.get(&key) {
            return *v;
        }
        let fits = |a: IpAddr, b: IpAddr| a == b || a.is_unspecified() || b.is_unspecified();
        if udp {
            let found = self
                .udp
                .get_mut(&(from.port(), to.port()))
                .and_then(|seen| {
                    seen.iter_mut()
                        .find(|(_, f, t, _)| fits(*f, from.ip()) && fits(*t, to.ip()))
                        .map(|(v, _, _, used)| {
                            *used = e.time_ns;
                            *v
                        })
                });
            if let Some(v) = found {
                self.vars.insert(key, v);
                return v;
            }
        }
        let v = self.var(key, || VarDef::Flow { udp, from, to }, out);
        if udp {
            self.udp.entry((from.port(), to.port())).or_default().push((
                v,
                from.ip(),
                to.ip(),
                e.time_ns,
            ));
        }
        v
    }

    /// The variable behind descriptor `fd` (identity `file`) of the record's process, and
    /// whether it is a socket (`socket`: the kernel says so). The hot path (every read and
    /// write): a known file costs two hash lookups and no allocation; the path is copied only
    /// when the variable is defined.
    fn fd_var(
        &mut self,
        e: &Event,
        fd: i32,
        file: Option<(u64, u64, u32)>,
        socket: bool,
        out: &mut Vec<Output>,
    ) -> (VarId, bool) {
        // A socket's remote end as the kernel named it (its peer, or the call's address).
        if socket && !e.data.is_empty() {
            let v = self.sock_var(e, false, out);
            if v != 0 {
                return (v, true);
            }
        }
        match self.fds.get(e.pid, fd) {
            Some(FdTarget::Endpoint(id) | FdTarget::Conn { send: id, .. }) => return (*id, true),
            Some(FdTarget::Socket | FdTarget::Local(_)) => return (0, true),
            _ if socket => return (0, true),
            _ => {}
        }
        if let Some(id) = file.and_then(|(dev, ino, gen)| self.vars.get(&Key::File(dev, ino, gen)))
        {
            return (*id, false);
        }
        let path = match self.fds.get(e.pid, fd) {
            Some(FdTarget::Path(p)) => Some(p.clone()),
            _ => None,
        };
        (self.file_var(file, path, out), false)
    }

    /// The file that has the name `path` (absolute) in VE `ve` now, if the translator saw
    /// it get the name: in this VE, or by its store-level name in any VE.
    fn named(&self, e: &Event, ve: u64, path: &[u8]) -> Option<VarId> {
        if let Some(v) = self.names.get(&ve).and_then(|m| m.get(path)) {
            return Some(*v);
        }
        let store = self.store_name(e.cgroup_id, path)?;
        self.store_level.get(&store).copied()
    }

    /// Records that `var` has the name `path` (absolute) in VE `ve` from `time_ns` on; the
    /// file that had it before (as far as the translator saw) loses it. Nothing when the name
    /// is already the file's in this VE.
    fn bind(
        &mut self,
        e: &Event,
        ve: u64,
        time_ns: u64,
        path: &[u8],
        var: VarId,
        out: &mut Vec<Output>,
    ) {
        if var == 0 || path.first() != Some(&b'/') {
            return;
        }
        match self.names.get(&ve).and_then(|m| m.get(path)) {
            Some(&v) if v == var => return,
            Some(&old) => out.push(Output::Name(self.name(e, ve, time_ns, path, old, false))),
            None => {}
        }
        self.names.entry(ve).or_default().insert(path.to_vec(), var);
        if let Some(s) = self.store_name(e.cgroup_id, path) {
            self.store_level.insert(s, var);
        }
        out.push(Output::Name(self.name(e, ve, time_ns, path, var, true)));
    }

    /// Records that `var` no longer has the name `path` in VE `ve`.
    fn unbind(
        &mut self,
        e: &Event,
        ve: u64,
        time_ns: u64,
        path: &[u8],
        var: VarId,
        out: &mut Vec<Output>,
    ) {
        if var == 0 || path.first() != Some(&b'/') {
            return;
        }
        if let Some(m) = self.names.get_mut(&ve) {
            if m.get(path).is_some_and(|&v| v == var) {
                m.remove(path);
            }
        }
        if let Some(s) = self.store_name(e.cgroup_id, path) {
            if self.store_level.get(&s).is_some_and(|&v| v == var) {
                self.store_level.remove(&s);
            }
        }
        out.push(Output::Name(self.name(e, ve, time_ns, path, var, false)));
    }

    fn name(&self, e: &Event, ve: u64, time_ns: u64, path: &[u8], var: VarId, bound: bool) -> Name {
        Name {
            time_ns,
            ve,
            var,
            path: lossy(path.to_vec()),
            store: self.store_name(e.cgroup_id, path),
            bound,
        }
    }

    /// Emits the transactions of one recorded system call.
    fn syscall(&mut self, e: &Event, sys: Sys, mem: VarId, mut at: At, out: &mut Vec<Output>) {
        let fd = e.args[0] as i32;
        let socket = e.flags & flag::SOCKET != 0;
        let own = e.flags & flag::OWN != 0;
        // The second file a call changes (a RENAME_EXCHANGE's other file): the same transaction
        // on it, after the first.
        let mut also: Option<VarId> = None;
        // A call the kernel classified that reaches a mapped file of the dirties without
        // `JCS_F_OWN`: its descriptor left the VE (or another VE reached it); its mappings are
        // recorded from now on.
        if !own
            && !self.own_maps.is_empty()
            && matches!(sys.sem, Sem::ReadFd(_) | Sem::WriteFd(_) | Sem::Mmap)
        {
            if let Some(id) = e
                .file
                .and_then(|(d, i, g)| self.vars.get(&Key::File(d, i, g)))
            {
                let id = *id;
                self.own_maps.remove(&id);
            }
        }
        match sys.sem {
            Sem::Pipe => return,
            Sem::Mprotect => {
                // The mapping can be written from now on: like a shared writable mmap.
                let (var, _) = self.fd_var(e, -1, e.file, false, out);
                at.op = Op::Mmap;
                (at.src, at.dst) = (mem, var);
                at.off = e.pos.unwrap_or(0) as u64;
                at.len = e.args[1];
                if e.ret == 0 && var != 0 {
                    self.maps
                        .entry(e.pid)
                        .or_default()
                        .push((var, at.off, at.len));
                }
            }
            Sem::ExecFailed => {
                // The file it tried to run (it moved nothing: failed, or aborted by policy).
                at.op = Op::Exec;
                let path = self.path_of(e, &sys, false);
                let known = path.as_ref().and_then(|p| self.named(e, at.ve, p));
                at.src = match known {
                    Some(v) => v,
                    None => self.file_var(None, path, out),
                };
                at.dst = mem;
            }
            Sem::Chdir => {
                if e.ret == 0 {
                    let dir = match self.path_of(e, &sys, false) {
                        Some(p) => p,
                        None => match self.fds.get(e.pid, fd) {
                            Some(FdTarget::Path(p)) => p.clone(),
                            _ => Vec::new(),
                        },
                    };
                    // Empty: a directory the translator cannot name.
                    let dir = if dir.first() == Some(&b'/') {
                        dir
                    } else {
                        Vec::new()
                    };
                    self.cwd.insert(e.pid, dir);
                }
                return;
            }
            Sem::Open => {
                at.op = Op::Open;
                let path = self.path_of(e, &sys, false);
                if self.failed_in_own_fs(e, &[path.as_ref()]) {
                    return;
                }
                if let (true, Some(p)) = (e.ret >= 0, &path) {
                    self.fds
                        .insert(e.pid, e.ret as i32, FdTarget::Path(p.clone()));
                }
                // (openat2: the monitor put its open_how's flags in args[2].)
                let flags = match sys.nr {
                    n if n == libc::SYS_openat || n == libc::SYS_openat2 => e.args[2],
                    #[cfg(target_arch = "x86_64")]
                    n if n == libc::SYS_open => e.args[1],
                    #[cfg(target_arch = "x86_64")]
                    n if n == libc::SYS_creat => (libc::O_TRUNC | libc::O_WRONLY) as u64,
                    _ => 0,
                };
                let excl = (libc::O_CREAT | libc::O_EXCL) as u64;
                let created = e.ret >= 0 && flags & excl == excl;
                at.src = self.file_var_of(e.file, path.clone(), out, created);
                at.dst = mem;
                if let (true, Some(p)) = (e.ret >= 0 && e.file.is_some(), &path) {
                    // The path is the file's name unless a symbolic link led elsewhere: the
                    // kernel says which name it opened.
                    let last = p.rsplit(|&b| b == b'/').next().unwrap_or(p);
                    let via_link =
                        e.flags & flag::DNAME != 0 && e.path2().is_some_and(|d| d != last);
                    if !via_link {
                        self.bind(e, at.ve, at.time_ns, p, at.src, out);
                    }
                }
                // O_TRUNC on a file opened for writing (creat: always) empties it: the open
                // changed the file.
                let truncs = flags & libc::O_TRUNC as u64 != 0
                    && flags & libc::O_ACCMODE as u64 != libc::O_RDONLY as u64;
                if truncs && e.ret >= 0 && at.src != 0 {
                    if !(own && self.own(e, mem, &at)) {
                        out.push(Output::At(at));
                    }
                    at.op = Op::Truncate;
                    (at.src, at.dst, at.off) = (mem, at.src, 0);
                }
            }
            Sem::ReadFd(_) | Sem::WriteFd(_) | Sem::Vmsplice => {
                let (reading, off_arg) = match sys.sem {
                    Sem::ReadFd(a) => (true, a),
                    Sem::WriteFd(a) => (false, a),
                    _ => (e.flags & flag::WRITE_END == 0, None),
                };
                let flow = if !socket {
                    0
                } else {
                    match (self.flow_var(e, reading, out), self.fds.get(e.pid, fd)) {
                        (0, Some(FdTarget::Conn { send, recv })) => {
                            if reading {
                                *recv
                            } else {
                                *send
                            }
                        }
                        (f, _) => f,
                    }
                };
                let (var, socket) = if flow != 0 {
                    (flow, true)
                } else {
                    self.fd_var(e, fd, e.file, socket, out)
                };
                at.op = match (reading, socket) {
                    (true, false) => Op::Read,
                    (true, true) => Op::Recv,
                    (false, false) => Op::Write,
                    (false, true) => Op::Send,
                };
                (at.src, at.dst) = if reading { (var, mem) } else { (mem, var) };
                // Where the bytes were: the call's offset, except that a write to a file opened
                // O_APPEND (whatever offset pwrite names) or with RWF_APPEND lands at its end,
                // and an offset of -1 (preadv2, pwritev2) means the file position.
                const RWF_APPEND: u64 = 0x10;
                let appends = !reading
                    && (e.flags & flag::APPEND != 0
                        || (sys.nr == libc::SYS_pwritev2 && e.args[4] & RWF_APPEND != 0));
                at.off = match off_arg {
                    _ if socket => 0,
                    _ if appends => e.size,
                    Some(i) if e.args[i] as i64 != -1 => e.args[i],
                    _ => e.pos.unwrap_or(0) as u64,
                };
                // One datagram of sendmmsg/recvmmsg carries its own length in `ret`; the
                // record after the itemized ones counts the rest (bytes unknown).
                at.len = if e.flags & flag::MORE != 0 {
                    0
                } else {
                    e.ret.max(0) as u64
                };
            }
            Sem::Transfer(x) => {
                let first = (fd, e.file, e.pos, socket);
                let other = if x == Xfer::Splice {
                    e.args[2]
                } else {
                    e.args[1]
                } as i32;
                let second = (other, e.file2, e.pos2, e.flags & flag::SOCKET2 != 0);
                let (input, output) = if x == Xfer::Sendfile {
                    (second, first)
                } else {
                    (first, second)
                };
                let len = e.ret.max(0) as u64;
                // The record holds the peer (and local end) of the first descriptor when it
                // is a socket, else of the second: that side is a flow.
                let flow_side_is_input = (socket && x != Xfer::Sendfile)
                    || (!socket && x == Xfer::Sendfile && e.flags & flag::SOCKET2 != 0);
                let flow_side_is_output = (socket && x == Xfer::Sendfile)
                    || (!socket && x != Xfer::Sendfile && e.flags & flag::SOCKET2 != 0);
                // Both halves at one time, so the read chains to the write. What the call
                // writes is visible from its entry (a receiver in another VE can return
                // before the sender does), so when the input is a file, whose bytes are there
                // at the entry (sendfile, copy_file_range), both are stamped when the write
                // became visible; an input that may block (a pipe or socket given to splice
                // or tee) is read by the exit, and both are stamped there.
                let file_input = (x == Xfer::Sendfile || sys.name == "copy_file_range")
                    && !input.3
                    && !flow_side_is_input;
                if file_input && e.flags & flag::NO_OUT == 0 {
                    at.time_ns = self.write_time(e);
                }
                if e.flags & flag::NO_IN == 0 {
                    let flow = if flow_side_is_input {
                        self.flow_var(e, true, out)
                    } else {
                        0
                    };
                    let (var, sock) = match flow {
                        0 => self.fd_var(e, input.0, input.1, input.3, out),
                        f => (f, true),
                    };
                    let mut r = at;
                    r.op = if sock { Op::Recv } else { Op::Read };
                    (r.src, r.dst, r.len) = (var, mem, len);
                    r.off = if sock { 0 } else { input.2.unwrap_or(0) as u64 };
                    self.emit(r, out);
                }
                if e.flags & flag::NO_OUT == 0 {
                    let flow = if flow_side_is_output {
                        self.flow_var(e, false, out)
                    } else {
                        0
                    };
                    let (var, sock) = match flow {
                        0 => self.fd_var(e, output.0, output.1, output.3, out),
                        f => (f, true),
                    };
                    let mut w = at;
                    w.op = if sock { Op::Send } else { Op::Write };
                    (w.src, w.dst, w.len) = (mem, var, len);
                    w.off = if sock {
                        0
                    } else {
                        output.2.unwrap_or(0) as u64
                    };
                    if !(e.flags & flag::OWN_OUT != 0 && self.own(e, mem, &w)) {
                        if !sock && !self.changes.is_empty() {
                            self.note_change(e, &sys, &w, output.1);
                        }
                        self.emit(w, out);
                    }
                }
                return;
            }
            Sem::Close => {
                at.op = Op::Close;
                at.src = match self.fds.remove(e.pid, fd) {
                    Some(
                        FdTarget::Endpoint(id)
                        | FdTarget::Local(id)
                        | FdTarget::Conn { send: id, .. },
                    ) => id,
                    Some(FdTarget::Socket) => 0,
                    Some(FdTarget::Path(p)) => self.file_var(e.file, Some(p), out),
                    None => self.fd_var(e, fd, e.file, socket, out).0,
                };
            }
            Sem::Meta(op) => {
                at.op = op;
                at.src = mem;
                if sys.cap & (cap::PATH0 | cap::PATH1) == 0
                    || (e.path().is_none() && e.file.is_some())
                {
                    // By descriptor (fchmod, ftruncate, fsetxattr; utimensat with no path).
                    at.dst = self.fd_var(e, fd, e.file, socket, out).0;
                } else {
                    let first = self.path_of(e, &sys, false);
                    let second = self.path_of(e, &sys, true);
                    // (Only a failed call needs the list: no allocation for the others.)
                    if e.ret < 0 {
                        let named = match op {
                            Op::Rename | Op::Link => vec![first.as_ref(), second.as_ref()],
                            Op::Symlink => vec![second.as_ref()], // the first is the content
                            _ => vec![first.as_ref()],
                        };
                        if self.failed_in_own_fs(e, &named) {
                            return;
                        }
                    }
                    // Reading the attributes or a link's content of a file of the VE's own
                    // file system (its layers or its dirties) moves nothing across; a
                    // readlink that failed (not a link, no such name) says no more than a
                    // stat, which is not recorded either.
                    if matches!(op, Op::GetXattr | Op::Read)
                        && (first
                            .as_ref()
                            .is_some_and(|p| self.in_own_fs(e.cgroup_id, p))
                            || op == Op::Read && e.ret < 0 && e.rule == 0)
                    {
                        self.count_dropped(e);
                        return;
                    }
                    // The names a change gives and takes are its transaction's time (its
                    // entry: below); a read's, its exit.
                    let t = match op {
                        Op::GetXattr | Op::Read => at.time_ns,
                        _ => self.write_time(e),
                    };
                    let ve = at.ve;
                    // The file the call acts on, when the translator saw it get its name
                    // (a symlink's is the link, its second path: the first is its content).
                    let acted_on = if op == Op::Symlink { &second } else { &first };
                    let known = acted_on.as_ref().and_then(|p| self.named(e, ve, p));
                    match (op, first, second, known) {
                        // A rename or link changes the file's names, not the file.
                        (Op::Rename | Op::Link, Some(from), Some(to), Some(var)) => {
                            // renameat2 with RENAME_EXCHANGE: the two names swap files, so the
                            // file named `to` changes too and is named `from` from now on.
                            const RENAME_EXCHANGE: u64 = 2;
                            let other = (sys.nr == libc::SYS_renameat2
                                && e.args[4] & RENAME_EXCHANGE != 0)
                                .then(|| self.named(e, ve, &to))
                                .flatten()
                                .filter(|&o| o != var);
                            if e.ret == 0 {
                                if op == Op::Rename {
                                    self.unbind(e, ve, t, &from, var, out);
                                }
                                if let Some(o) = other {
                                    self.unbind(e, ve, t, &to, o, out);
                                }
                                self.bind(e, ve, t, &to, var, out);
                                if let Some(o) = other {
                                    self.bind(e, ve, t, &from, o, out);
                                }
                            }
                            at.dst = var;
                            also = other;
                        }
                        (Op::Unlink, Some(path), _, Some(var)) => {
                            if e.ret == 0 {
                                self.unbind(e, ve, t, &path, var, out);
                            }
                            at.dst = var;
                        }
                        (_, _, _, Some(var)) => at.dst = var,
                        // A file the translator never saw named (made before the recorder
                        // started, or by a call it does not see): by path, as version 1 did;
                        // the data moves from the old name to the new one.
                        (Op::Rename | Op::Link, Some(from), Some(to), None) => {
                            at.src = self.file_var(None, Some(from), out);
                            at.dst = self.file_var(None, Some(to), out);
                        }
                        // The link is the variable; the target is its content.
                        (Op::Symlink, _, Some(link), _) => {
                            at.dst = self.file_var(None, Some(link), out);
                        }
                        (_, first, _, None) => at.dst = self.file_var(None, first, out),
                    }
                }
                if matches!(op, Op::GetXattr | Op::Read) {
                    (at.src, at.dst) = (at.dst, at.src);
                }
                if op == Op::Read {
                    at.len = e.ret.max(0) as u64; // the bytes of the link's content read
                }
                if op == Op::Truncate {
                    at.off = e.args[1]; // the new size
                }
            }
            Sem::Fallocate => {
                // Changes the bytes of [offset, offset + len); collapsing or inserting a range
                // moves every byte after it.
                const SHIFTS: u64 = 0x08 | 0x20; // FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE
                let (var, _) = self.fd_var(e, fd, e.file, socket, out);
                at.op = Op::Write;
                (at.src, at.dst, at.off) = (mem, var, e.args[2]);
                at.len = if e.args[1] & SHIFTS != 0 {
                    u64::MAX - e.args[2]
                } else {
                    e.args[3]
                };
            }
            Sem::Mmap => {
                // A shared writable mapping writes the file; any other mapping reads it.
                let shared_write = e.args[3] & libc::MAP_SHARED as u64 != 0
                    && e.args[2] & libc::PROT_WRITE as u64 != 0;
                let (var, _) = self.fd_var(e, e.args[4] as i32, e.file, false, out);
                at.op = Op::Mmap;
                (at.src, at.dst) = if shared_write { (mem, var) } else { (var, mem) };
                at.off = e.args[5];
                at.len = e.args[1];
                if own && e.ret >= 0 && e.rule == 0 && var != 0 {
                    self.own_maps.insert(var);
                }
                if !own && e.ret >= 0 && e.rule == 0 && var != 0 {
                    // (Its own transaction gets no link from it: the mapper's memory is one
                    // end of it.)
                    self.mapped.add(
                        var,
                        crate::mappings::Mapper {
                            pid: e.pid,
                            ve: at.ve,
                            mem,
                            off: at.off,
                            len: at.len,
                            writable: shared_write,
                            count: 1,
                        },
                    );
                }
                if shared_write && e.ret >= 0 && var != 0 {
                    // Both ways: the VE reads the file through it too.
                    self.mapping(
                        At {
                            src: var,
                            dst: mem,
                            ..at
                        },
                        mem,
                        out,
                    );
                    self.maps
                        .entry(e.pid)
                        .or_default()
                        .push((var, at.off, at.len));
                }
            }
            Sem::Munmap => {
                let (var, _) = self.fd_var(e, -1, e.file, false, out);
                let (off, len) = (e.pos.unwrap_or(0) as u64, e.args[1]);
                if let Some(m) = self.maps.get_mut(&e.pid) {
                    m.retain(|(v, o, _)| !(*v == var && *o >= off && *o < off.saturating_add(len)));
                }
                self.mapped.unmap(e.pid, var);
                at.op = Op::Mmap;
                (at.src, at.dst, at.off, at.len) = (var, mem, off, len);
                self.mapping(at, mem, out);
                (at.src, at.dst) = (mem, var);
            }
            Sem::Mremap => {
                let (var, _) = self.fd_var(e, -1, e.file, false, out);
                let (off, old_len, new_len) = (e.pos.unwrap_or(0) as u64, e.args[1], e.args[2]);
                // Failed (MAP_FAILED is -errno), or not grown: nothing new is linked.
                if e.ret < 0 && e.ret > -4096 || new_len <= old_len || var == 0 {
                    return;
                }
                if let Some(m) = self.maps.get_mut(&e.pid) {
                    for (_, _, len) in m.iter_mut().filter(|(v, o, _)| *v == var && *o == off) {
                        *len = (*len).max(new_len);
                    }
                }
                self.mapped.grow(e.pid, var, off, new_len);
                at.op = Op::Mmap;
                (at.off, at.len) = (off + old_len, new_len - old_len);
                (at.src, at.dst) = (var, mem);
                self.mapping(at, mem, out);
                (at.src, at.dst) = (mem, var);
            }
            Sem::Socket => {
                at.op = Op::Socket;
                if e.ret >= 0 {
                    self.fds.insert(e.pid, e.ret as i32, FdTarget::Socket);
                }
            }
            Sem::Connect | Sem::Bind => {
                // A Unix socket name of the VE's own file system that does not exist (nscd's
                // socket, probed by every name lookup): like a failed open there, it reached
                // nothing outside the VE.
                if let Some(VarDef::Unix { path }) = parse_sockaddr(&e.data) {
                    let p = path.into_bytes();
                    if self.failed_in_own_fs(e, &[Some(&p)]) {
                        return;
                    }
                }
                // A connect to AF_UNSPEC, or to the unspecified address and port 0, dissolves
                // a datagram socket's association (getaddrinfo does it between the candidate
                // addresses it sorts): it names nothing and moves nothing.
                let family = e.data.get(..2).map(|b| u16::from_ne_bytes([b[0], b[1]]));
                let dissolves = sys.sem == Sem::Connect
                    && (family == Some(libc::AF_UNSPEC as u16)
                        || matches!(parse_sockaddr(&e.data),
                            Some(VarDef::Endpoint { addr, port: 0 }) if addr.is_unspecified()));
                if dissolves && e.rule == 0 {
                    self.count_dropped(e);
                    return;
                }
                // A connection: the flow it sends on (its local end is bound by now).
                let flow = if sys.sem == Sem::Connect {
                    self.flow_var(e, false, out)
                } else {
                    0
                };
                let ep = if flow != 0 {
                    flow
                } else {
                    self.sock_var(e, true, out)
                };
                // A Unix socket bound to a path: the file it made has that name (another VE
                // sending to it by name finds it, by its store-level name).
                if sys.sem == Sem::Bind && e.ret == 0 && e.flags & flag::UNIXFILE != 0 {
                    if let Some(VarDef::Unix { path }) = parse_sockaddr(&e.data) {
                        let path = self.resolve(e.pid, None, path.into_bytes());
                        // (From the bind's own time: its transaction is stamped at its entry.)
                        let t = self.write_time(e);
                        self.bind(e, at.ve, t, &path, ep, out);
                    }
                }
                at.src = mem;
                at.dst = ep;
                let target = if sys.sem == Sem::Connect {
                    at.op = Op::Connect;
                    match flow {
                        0 => FdTarget::Endpoint(ep),
                        send => FdTarget::Conn {
                            send,
                            recv: self.flow_var(e, true, out),
                        },
                    }
                } else {
                    at.op = Op::Bind;
                    FdTarget::Local(ep)
                };
                // A non-blocking connect returns EINPROGRESS and goes on connecting.
                if ep != 0 && (e.ret == 0 || e.ret == -i64::from(libc::EINPROGRESS)) {
                    self.fds.insert(e.pid, fd, target);
                }
            }
            Sem::Listen => {
                at.op = Op::Listen;
                at.src = match self.fds.get(e.pid, fd) {
                    Some(FdTarget::Local(id)) => *id,
                    _ => 0,
                };
            }
            Sem::Accept => {
                // The flow the accepted connection receives on.
                let recv = self.flow_var(e, true, out);
                let ep = match recv {
                    0 => self.sock_var(e, false, out),
                    f => f,
                };
                at.op = Op::Accept;
                at.src = ep;
                at.dst = mem;
                if e.ret >= 0 {
                    let target = match (recv, ep) {
                        (0, 0) => FdTarget::Socket,
                        (0, ep) => FdTarget::Endpoint(ep),
                        (recv, _) => FdTarget::Conn {
                            send: self.flow_var(e, false, out),
                            recv,
                        },
                    };
                    self.fds.insert(e.pid, e.ret as i32, target);
                }
            }
        }
        // What the VE writes is visible to others from the call's entry; what it reads, by
        // its exit: stamped so, a read that saw a write is never before it.
        if at.src == mem && mem != 0 {
            at.time_ns = self.write_time(e);
        }
        // An aborted transaction moved nothing: its interval holds the rule that denied it.
        if e.rule != 0 {
            at.status = Status::Aborted;
            (at.off, at.len) = (u64::from(e.rule), 0);
        }
        if own && self.own(e, mem, &at) {
            return;
        }
        if (at.src == mem || at.op == Op::Rename) && mem != 0 && !self.changes.is_empty() {
            self.note_change(e, &sys, &at, e.file);
        }
        if at.op == Op::Mmap && !self.own_maps.is_empty() {
            self.mapping(at, mem, out);
            return;
        }
        // A socket made, bound without a name, listened on or closed without ever naming an
        // endpoint or a flow names nothing but the VE: nothing crossed (counted, not recorded).
        if matches!(at.op, Op::Socket | Op::Bind | Op::Listen | Op::Close)
            && e.rule == 0
            && [at.src, at.dst].iter().all(|&v| v == 0 || v == mem)
        {
            self.count_dropped(e);
            return;
        }
        self.emit(at, out);
        if let Some(other) = also {
            self.emit(At { dst: other, ..at }, out);
        }
    }

    /// Translates one record. Records of cgroups that are not watched produce nothing.
    pub fn push(&mut self, e: &Event, out: &mut Vec<Output>) {
        let Some(w) = self.watched.get_mut(&e.cgroup_id) else {
            return;
        };
        w.received += 1;
        self.last_ns = self.last_ns.max(e.time_ns);
        if e.kind == Kind::Syscall && w.init == Some(e.pid) {
            return;
        }
        let (ve, mem) = (w.ve, w.mem);
        // A call the policy's mounts denied: aborted, with its rule.
        let denied;
        let e = if e.kind == Kind::Syscall && e.ret < 0 && e.rule == 0 && !self.policies.is_empty()
        {
            match self.denied_by(e) {
                0 => e,
                rule => {
                    denied = Event { rule, ..e.clone() };
                    &denied
                }
            }
        } else {
            e
        };
        // A pty whose master JCS holds on the host side: the user's terminal, by that name
        // (not by a path the VE opened it by).
        if e.flags & flag::TTY != 0 {
            if let Some((dev, ino, _)) = e.file {
                self.host_names.insert((dev, ino), "host:pty".into());
                self.ttys.insert((dev, ino));
            }
        }
        let mem = match mem {
            0 => {
                let mem = self.var(Key::Memory(ve), || VarDef::Memory { ve }, out);
                if let Some(w) = self.watched.get_mut(&e.cgroup_id) {
                    w.mem = mem;
                }
                mem
            }
            mem => mem,
        };
        let mut at = At {
            time_ns: (e.time_ns as i64).wrapping_add(self.clock_offset_ns) as u64,
            ve,
            pid: e.pid,
            tid: e.tid,
            op: Op::Open,
            status: if e.kind == Kind::Syscall && e.rule != 0 {
                Status::Aborted
            } else if e.kind == Kind::Syscall && e.ret < 0 {
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
                self.fds.fork(e.pid, child);
                self.forked.entry(e.cgroup_id).or_default().insert(child);
                if let Some(dir) = self.cwd.get(&e.pid).cloned() {
                    self.cwd.insert(child, dir);
                }
                // Shared mappings stay shared in the child.
                if let Some(m) = self.maps.get(&e.pid).cloned() {
                    self.maps.insert(child, m);
                }
                if !self.mapped.is_empty() {
                    self.mapped.fork(e.pid, child);
                }
                at.op = Op::Fork;
            }
            Kind::Exit => {
                if e.pid == e.tid {
                    self.fds.exit(e.pid);
                    self.cwd.remove(&e.pid);
                    if let Some(p) = self.forked.get_mut(&e.cgroup_id) {
                        p.remove(&e.pid);
                    }
                    self.end_mappings(e.pid, mem, at, out);
                }
                at.op = Op::Exit;
                at.result = exit_result(e.ret);
            }
            Kind::Exec => {
                // The old memory and its mappings are gone.
                self.end_mappings(e.pid, mem, at, out);
                at.op = Op::Exec;
                // The file the kernel ran (bprm->file), named by the path given when new; the
                // path is not bound as a name: it may be a symbolic link (/bin/sh).
                let path = e.path().map(|p| self.resolve(e.pid, None, p.to_vec()));
                at.src = self.file_var(e.file, path, out);
                at.dst = mem;
                if e.flags & flag::ARGV != 0 {
                    let raw = e.data2.as_slice();
                    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
                    out.push(Output::Exec(model::at::ExecInfo {
                        time_ns: at.time_ns,
                        ve: at.ve,
                        pid: e.pid,
                        ppid: e.args[3] as u32,
                        uid: e.args[0] as u32,
                        euid: e.args[1] as u32,
                        gid: e.args[2] as u32,
                        argv: raw
                            .split(|&b| b == 0)
                            .map(|a| String::from_utf8_lossy(a).into_owned())
                            .collect(),
                        argv_cut: e.flags & flag::ARGV_CUT != 0,
                        cwd: match self.cwd.get(&e.pid) {
                            None => Some("/".into()),
                            Some(d) if d.is_empty() => None,
                            Some(d) => Some(String::from_utf8_lossy(d).into_owned()),
                        },
                    }));
                }
            }
            Kind::Syscall => {
                let Some(sys) = self.table.get(e.nr as usize).copied().flatten() else {
                    return;
                };
                self.syscall(e, sys, mem, at, out);
                return;
            }
        }
        self.emit(at, out);
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
        pub const BIND: u32 = libc::SYS_bind as u32;
    }

    /// A Unix socket bound to a path is the file its bind made: VE 1 binds `dsock` relative
    /// to /dl/sub (the kernel gives the file's identity); VE 2, with the same shared storage at
    /// /mnt/dl, sends a datagram to /mnt/dl/sub/dsock (no identity: the socket is unconnected)
    /// and VE 1 receives it (identity again, under the relative name the kernel kept): one
    /// variable, labelled by the binder's absolute name.
    #[test]
    fn a_unix_socket_is_its_file_whatever_name_each_end_uses() {
        let mut t = Translator::new(100, 0);
        t.watch(55, 1);
        t.watch(66, 2);
        t.set_store_names(55, &[("/dl".into(), "shared:downloads".into())]);
        t.set_store_names(66, &[("/mnt/dl".into(), "shared:downloads".into())]);
        t.cwd.insert(10, b"/dl/sub".to_vec());
        let unix = |path: &str| {
            let mut b = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
            b.extend_from_slice(path.as_bytes());
            b.push(0);
            b
        };
        // A call on socket 5 of VE 1's process, naming `path`, with the kernel's identity of
        // the rendezvous file when `identity`.
        let call = |nr: u32, ret: i64, path: &str, identity: bool| {
            let mut e = ev(Kind::Syscall, nr, ret);
            e.args[0] = 5;
            e.data = unix(path);
            e.flags = flag::SOCKET | if identity { flag::UNIXFILE } else { 0 };
            e.file2 = identity.then_some((8, 77, 3));
            e
        };
        let mut out = vec![];
        t.push(&call(nr::BIND, 0, "dsock", true), &mut out);
        let mut send = call(nr::SENDTO, 6, "/mnt/dl/sub/dsock", false);
        (send.cgroup_id, send.pid, send.tid) = (66, 20, 20);
        t.push(&send, &mut out);
        t.push(&call(nr::RECVFROM, 6, "dsock", true), &mut out);
        let a = ats(&out);
        let var = a[0].dst;
        let (m1, m2) = (mem_of(&out, 1), mem_of(&out, 2));
        assert!(var != 0 && m1 != 0 && m2 != 0);
        assert_eq!(
            a.iter().map(|a| (a.op, a.src, a.dst)).collect::<Vec<_>>(),
            [
                (Op::Bind, m1, var),
                (Op::Send, m2, var),
                (Op::Recv, var, m1)
            ],
        );
        let label = out.iter().find_map(|o| match o {
            Output::Var(v, VarDef::Inode { name, .. }) if *v == var => Some(name.clone()),
            _ => None,
        });
        assert_eq!(label, Some(Some("/dl/sub/dsock".to_string())));
        // The bind named the file: VE 1's name, with its store-level one.
        assert!(out.iter().any(|o| matches!(o, Output::Name(n)
            if n.var == var && n.path == "/dl/sub/dsock" && n.bound
                && n.store.as_deref() == Some("shared:downloads/sub/dsock"))));
    }

    /// The memory variable of VE `ve` among the outputs.
    fn mem_of(out: &[Output], ve: u64) -> VarId {
        out.iter()
            .find_map(|o| match o {
                Output::Var(v, VarDef::Memory { ve: x }) if *x == ve => Some(*v),
                _ => None,
            })
            .unwrap_or(0)
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
        // (The socket call names nothing: counted, not recorded.)
        let a = ats(&out);
        assert_eq!(a[0].op, Op::Connect);
        assert_eq!(t.dropped_calls(55), vec![(nr::SOCKET, 1)]);
        let ep = a[0].dst;
        assert_ne!(ep, 0);
        assert_eq!(
            (a[1].op, a[1].src, a[1].dst, a[1].len),
            (Op::Send, 1, ep, 12)
        );
        assert_eq!(
            (a[2].op, a[2].src, a[2].dst, a[2].len),
            (Op::Recv, ep, 1, 40)
        );
        assert_eq!((a[3].op, a[3].src, a[3].dst), (Op::Accept, ep, 1));
    }

    /// A descriptor is what it was last made: one closed and made a connected socket sends
    /// to the endpoint, even when an event still carries the file's identity.
    #[test]
    fn a_descriptor_reused_after_a_close_is_not_the_file() {
        let mut t = Translator::new(1, 0);
        t.watch(55, 1);
        let mut out = vec![];
        let write = |fd: u64| {
            let mut w = ev(Kind::Syscall, nr::WRITE, 1);
            w.args[0] = fd;
            w.file = Some((1, 2, 0));
            w.pos = Some(0);
            w
        };
        t.push(&write(3), &mut out);
        t.push(&write(3), &mut out);
        let a = ats(&out);
        let file = a[0].dst;
        assert_ne!(file, 0);
        assert_eq!((a[1].op, a[1].dst), (Op::Write, file));
        let mut close = ev(Kind::Syscall, nr::CLOSE, 0);
        close.args[0] = 3;
        close.file = Some((1, 2, 0));
        t.push(&close, &mut out);
        t.push(&ev(Kind::Syscall, nr::SOCKET, 3), &mut out);
        let mut c = ev(Kind::Syscall, nr::CONNECT, 0);
        c.args[0] = 3;
        c.data = sockaddr4([10, 0, 0, 9], 80);
        t.push(&c, &mut out);
        t.push(&write(3), &mut out);
        let a = ats(&out);
        let ep = a.iter().find(|a| a.op == Op::Connect).unwrap().dst;
        let last = a.last().unwrap();
        assert_eq!((last.op, last.src, last.dst), (Op::Send, 1, ep), "{a:#?}");
        assert_ne!(ep, file);
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
        m.file = Some((1, 2, 0));
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
        // A shared writable mapping links memory and file both ways; a private one reads it.
        assert_eq!(
            (a[1].op, a[1].src, a[1].dst, a[1].len),
            (Op::Mmap, 3, 1, 4096)
        );
        assert_eq!(
            (a[2].op, a[2].src, a[2].dst, a[2].len),
            (Op::Mmap, 1, 3, 4096)
        );
        assert_eq!((a[3].src, a[3].dst), (3, 1));
        // ... until its end: the process's exit records the link again, both ways.
        let n = a.len();
        t.push(&ev(Kind::Exit, 0, 0), &mut out);
        let a = ats(&out);
        assert_eq!(
            a[n..]
                .iter()
                .map(|a| (a.op, a.src, a.dst))
                .collect::<Vec<_>>(),
            [(Op::Mmap, 3, 1), (Op::Mmap, 1, 3), (Op::Exit, 0, 0)]
        );
    }

    /// A translator watching VE 1 (cgroup 55), whose storage is /data.
    fn watching_data() -> Translator {
        let mut t = Translator::new(1, 0);
        t.watch(55, 1);
        t.set_outside(55, &["/data".into()]);
        t
    }

    /// An openat of `path` (NUL-terminated) that gave descriptor 3 on file (1, `ino`, gen).
    fn opened(path: &[u8], ino: u64, gen: u32) -> Event {
        let mut open = ev(Kind::Syscall, nr::OPENAT, 3);
        open.data = path.to_vec();
        open.file = Some((1, ino, gen));
        open
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
            file2: None,
            pos2: None,
            size: 0,
            enter_ns: 1000,
            flags: 0,
            rule: 0,
            data: vec![],
            data2: vec![],
        }
    }

    #[test]
    fn a_denied_call_is_an_aborted_transaction_naming_its_rule() {
        let mut t = Translator::new(1, 0);
        t.watch(55, 1);
        let mut out = vec![];
        let mut s = ev(Kind::Syscall, nr::SOCKET, 5);
        s.args = [libc::AF_INET as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0];
        t.push(&s, &mut out);
        let mut c = ev(Kind::Syscall, nr::CONNECT, -i64::from(libc::EPERM));
        c.args[0] = 5;
        c.data = sockaddr4([10, 9, 9, 9], 25);
        c.flags = flag::SOCKET;
        c.rule = 3;
        t.push(&c, &mut out);
        let a = ats(&out);
        let last = a.last().unwrap();
        assert_eq!((last.op, last.status), (Op::Connect, Status::Aborted));
        assert_eq!((last.off, last.len, last.result), (3, 0, -1));
        assert!(out.iter().any(
            |o| matches!(o, Output::Var(id, VarDef::Endpoint { port: 25, .. }) if *id == last.dst)
        ));
        // The same call failing on its own is a failed one.
        c.rule = 0;
        t.push(&c, &mut out);
        assert_eq!(ats(&out).last().unwrap().status, Status::Failed);
    }

    fn sockaddr4(a: [u8; 4], port: u16) -> Vec<u8> {
        let mut sa = vec![0u8; 16];
        sa[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        sa[2..4].copy_from_slice(&port.to_be_bytes());
        sa[4..8].copy_from_slice(&a);
        sa
    }

    fn var_path(out: &[Output], id: VarId) -> String {
        out.iter()
            .find_map(|o| match o {
                Output::Var(i, VarDef::File { path: Some(p), .. } | VarDef::Path { path: p })
                    if *i == id =>
                {
                    Some(p.clone())
                }
                _ => None,
            })
            .unwrap_or_default()
    }

    #[test]
    fn failed_lookups_in_the_ves_own_file_system_are_counted_not_recorded() {
        let open = |path: &str, ret: i64| {
            let mut o = ev(Kind::Syscall, nr::OPENAT, ret);
            o.args[0] = libc::AT_FDCWD as u64;
            o.data = format!("{path}\0").into_bytes();
            o
        };
        let cases = [
            ("/usr/lib/tls/libx.so", -2), // ENOENT in the VE's own file system: dropped
            ("/etc/missing/x", -20),      // ENOTDIR: dropped
            ("/dev/tty", -6),             // ENXIO (no controlling terminal): dropped
            ("/database", -2),            // a sibling of /data with its prefix: dropped
            ("/data/profile/x", -2),      // ENOENT in persistent storage: recorded
            ("/usr/lib/secret", -13),     // EACCES, an attempt: recorded
            ("/data", -2),                // the persistent directory itself: recorded
        ];
        let recorded = |outside: Option<&[String]>| {
            let mut t = Translator::new(1, 0);
            t.watch(55, 1);
            if let Some(o) = outside {
                t.set_outside(55, o);
            }
            let mut out = vec![];
            for (p, r) in cases {
                t.push(&open(p, r), &mut out);
            }
            let names: HashMap<VarId, String> = out
                .iter()
                .filter_map(|o| match o {
                    Output::Var(id, VarDef::Path { path }) => Some((*id, path.clone())),
                    _ => None,
                })
                .collect();
            let got: Vec<String> = ats(&out).iter().map(|a| names[&a.src].clone()).collect();
            (got, t.dropped_calls(55))
        };
        let (got, dropped) = recorded(Some(&["/data/".to_string()]));
        assert_eq!(got, ["/data/profile/x", "/usr/lib/secret", "/data"]);
        assert_eq!(dropped, [(nr::OPENAT, 4)]);
        // mkdir of an existing name: dropped in the VE's own file system, recorded in /data.
        let mut t = Translator::new(1, 0);
        t.watch(55, 1);
        t.set_outside(55, &["/data".to_string()]);
        let mut out = vec![];
        for (p, r) in [
            ("/root/.config", -17),
            ("/data/.config", -17),
            ("/root/new", 0),
        ] {
            let mut m = ev(Kind::Syscall, libc::SYS_mkdir as u32, r);
            m.data = format!("{p}\0").into_bytes();
            t.push(&m, &mut out);
        }
        assert_eq!(ats(&out).len(), 2, "{out:?}");
        assert_eq!(t.dropped_calls(55), [(libc::SYS_mkdir as u32, 1)]);
        // A watch that does not name the VE's outside directories records every failed open.
        let (got, dropped) = recorded(None);
        assert_eq!(got, cases.iter().map(|c| c.0).collect::<Vec<_>>());
        assert!(dropped.is_empty());
    }

    #[test]
    fn relative_paths_resolve_against_cwd_and_dirfd() {
        let mut t = Translator::new(1, 0);
        t.watch(55, 1);
        let mut out = vec![];
        let mut cd = ev(Kind::Syscall, libc::SYS_chdir as u32, 0);
        cd.data = b"/data/./sub/\0".to_vec();
        t.push(&cd, &mut out);
        let mut o = ev(Kind::Syscall, nr::OPENAT, 3);
        o.args[0] = libc::AT_FDCWD as u64;
        o.data = b"../x\0".to_vec();
        t.push(&o, &mut out);
        // A directory opened by path, then a file under it.
        let mut d = ev(Kind::Syscall, nr::OPENAT, 4);
        d.args[0] = libc::AT_FDCWD as u64;
        d.data = b"/etc\0".to_vec();
        t.push(&d, &mut out);
        let mut f = ev(Kind::Syscall, nr::OPENAT, 5);
        f.args[0] = 4;
        f.data = b"hosts\0".to_vec();
        t.push(&f, &mut out);
        // The child inherits the working directory; fchdir moves it.
        t.push(&ev(Kind::Fork, 0, 11), &mut out);
        let mut o2 = o.clone();
        o2.pid = 11;
        o2.data = b"y\0".to_vec();
        t.push(&o2, &mut out);
        let mut fcd = ev(Kind::Syscall, libc::SYS_fchdir as u32, 0);
        fcd.args[0] = 4;
        t.push(&fcd, &mut out);
        let mut o3 = o.clone();
        o3.data = b"passwd\0".to_vec();
        t.push(&o3, &mut out);
        // Under a descriptor never seen opened: kept as given.
        let mut o4 = o.clone();
        o4.args[0] = 9;
        o4.data = b"z\0".to_vec();
        t.push(&o4, &mut out);
        let a = ats(&out);
        assert_eq!(a.len(), 7, "chdir and fchdir make no transaction");
        let paths: Vec<String> = a
            .iter()
            .filter(|a| a.op == Op::Open)
            .map(|a| var_path(&out, a.src))
            .collect();
        assert_eq!(
            paths,
            [
                "/data/x",
                "/etc",
                "/etc/hosts",
                "/data/sub/y",
                "/etc/passwd",
                "z"
            ]
        );
    }

    #[test]
    fn clean_paths() {
        for (i, o) in [
            ("/a/./b//c/", "/a/b/c"),
            ("/../a/../../b", "/b"),
            ("a/../../b", "../b"),
            ("/", "/"),
            (".", "."),
            ("a/./", "a"),
        ] {
            assert_eq!(clean(i.as_bytes()), o.as_bytes(), "{i}");
        }
    }

    #[test]
    fn a_path_is_clean_exactly_when_clean_leaves_it_as_it_is() {
        // Every path of up to four components from these (and a leading or trailing slash or
        // none): is_clean (which lets resolve skip the copy) agrees with clean.
        let parts: [&[u8]; 6] = [b"", b".", b"..", b"a", b"bc", b"..."];
        let mut paths: Vec<Vec<u8>> = vec![b"/".to_vec(), Vec::new()];
        for n in 1..=4u32 {
            for mut k in 0..6usize.pow(n) {
                let mut p = Vec::new();
                for _ in 0..n {
                    p.push(b'/');
                    p.extend_from_slice(parts[k % 6]);
                    k /= 6;
                }
                paths.push(p[1..].to_vec());
                paths.push(p.clone());
                p.push(b'/');
                paths.push(p);
            }
        }
        let mut clean_ones = 0;
        for p in &paths {
            // (Only absolute paths are asked: resolve makes the others absolute first.)
            let absolute = p.first() == Some(&b'/');
            let same = clean(p) == *p;
            let name = String::from_utf8_lossy(p);
            assert_eq!(is_clean(p), absolute && same && p.len() > 1, "{name}");
            clean_ones += usize::from(is_clean(p));
        }
        assert!(
            clean_ones > 100,
            "the test reaches clean paths: {clean_ones}"
        );
    }

    #[test]
    fn transfers_read_one_side_and_write_the_other() {
        let mut t = Translator::new(1, 0);
        t.watch(55, 1);
        let mut out = vec![];
        // copy_file_range(in=3 at 100, out=4 at 0) of 50 bytes.
        let mut c = ev(Kind::Syscall, libc::SYS_copy_file_range as u32, 50);
        c.args = [3, 0, 4, 0, 50, 0];
        (c.file, c.pos, c.file2, c.pos2) = (Some((1, 10, 0)), Some(100), Some((1, 20, 0)), Some(0));
        t.push(&c, &mut out);
        // sendfile(out=socket 5, in=3) with the input in a read-only branch: only the send.
        let mut s = ev(Kind::Syscall, libc::SYS_sendfile as u32, 70);
        s.args = [5, 3, 0, 70, 0, 0];
        s.flags = flag::SOCKET | flag::NO_IN;
        s.file2 = Some((1, 10, 0));
        s.data = sockaddr4([10, 1, 2, 3], 80);
        t.push(&s, &mut out);
        // splice from a pipe into the file: only the write.
        let mut sp = ev(Kind::Syscall, libc::SYS_splice as u32, 9);
        sp.args = [6, 0, 4, 0, 9, 0];
        sp.flags = flag::NO_IN;
        (sp.file2, sp.pos2) = (Some((1, 20, 0)), Some(50));
        t.push(&sp, &mut out);
        let a = ats(&out);
        let f_in = a[0].src;
        let f_out = a[1].dst;
        assert_eq!(
            a.iter().map(|a| (a.op, a.off, a.len)).collect::<Vec<_>>(),
            vec![
                (Op::Read, 100, 50),
                (Op::Write, 0, 50),
                (Op::Send, 0, 70),
                (Op::Write, 50, 9)
            ]
        );
        assert_ne!(f_in, f_out);
        assert_eq!((a[0].dst, a[1].src), (1, 1), "through the VE's memory");
        assert!(out.contains(&Output::Var(
            a[2].dst,
            VarDef::Endpoint {
                addr: "10.1.2.3".parse().unwrap(),
                port: 80
            }
        )));
        assert_eq!(a[3].dst, f_out);
    }

    /// A transfer's write is visible from the call's entry: a receiver in another VE can
    /// return before the sender does. With a file as input both halves are stamped when the
    /// write became visible, so the read chains to the write and the write precedes the
    /// receiver's read; a pipe given to splice is read by the exit, so both are stamped there.
    #[test]
    fn a_transfers_halves_share_one_time_when_its_write_became_visible() {
        let mut t = Translator::new(1, 0);
        t.watch(55, 1);
        let mut out = vec![];
        let mut c = ev(Kind::Syscall, libc::SYS_copy_file_range as u32, 50);
        c.args = [3, 0, 4, 0, 50, 0];
        (c.file, c.pos, c.file2, c.pos2) = (Some((1, 10, 0)), Some(0), Some((1, 20, 0)), Some(0));
        (c.enter_ns, c.time_ns) = (1000, 3000);
        t.push(&c, &mut out);
        let mut s = ev(Kind::Syscall, libc::SYS_sendfile as u32, 70);
        s.args = [5, 3, 0, 70, 0, 0];
        s.flags = flag::SOCKET;
        s.file2 = Some((1, 10, 0));
        s.data = sockaddr4([10, 1, 2, 3], 80);
        (s.enter_ns, s.time_ns) = (4000, 9000);
        t.push(&s, &mut out);
        let mut sp = ev(Kind::Syscall, libc::SYS_splice as u32, 9);
        sp.args = [6, 0, 4, 0, 9, 0];
        (sp.file, sp.file2, sp.pos2) = (Some((9, 30, 0)), Some((1, 20, 0)), Some(50));
        (sp.enter_ns, sp.time_ns) = (10_000, 20_000);
        t.push(&sp, &mut out);
        let a = ats(&out);
        assert_eq!(
            a.iter().map(|a| (a.op, a.time_ns)).collect::<Vec<_>>(),
            vec![
                (Op::Read, 1000),
                (Op::Write, 1000),
                (Op::Read, 4000),
                (Op::Send, 4000),
                (Op::Read, 20_000),
                (Op::Write, 20_000)
            ]
        );
    }

    #[test]
    fn rename_and_link_go_from_the_old_name_to_the_new_symlink_names_the_link() {
        let mut t = Translator::new(1, 0);
        t.watch(55, 1);
        let mut out = vec![];
        let mut r = ev(Kind::Syscall, nr::RENAMEAT2, 0);
        r.args = [libc::AT_FDCWD as u64, 0, libc::AT_FDCWD as u64, 0, 0, 0];
        r.data = b"/data/a.tmp\0".to_vec();
        r.data2 = b"a\0".to_vec();
        t.push(&r, &mut out);
        let mut s = ev(Kind::Syscall, libc::SYS_symlinkat as u32, 0);
        s.args = [0, libc::AT_FDCWD as u64, 0, 0, 0, 0];
        s.data = b"/etc/target\0".to_vec();
        s.data2 = b"/data/l\0".to_vec();
        t.push(&s, &mut out);
        let a = ats(&out);
        assert_eq!(
            (var_path(&out, a[0].src), var_path(&out, a[0].dst)),
            ("/data/a.tmp".into(), "/a".into())
        );
        assert_eq!((a[1].op, a[1].src), (Op::Symlink, 1));
        assert_eq!(var_path(&out, a[1].dst), "/data/l");
    }

    #[test]
    fn sockets_named_by_the_kernel_and_datagrams() {
        let mut t = Translator::new(1, 0);
        t.watch(55, 1);
        let mut out = vec![];
        // A socket inherited from before the watch: the kernel names its peer.
        let mut w = ev(Kind::Syscall, nr::WRITE, 5);
        w.args[0] = 7;
        w.flags = flag::SOCKET;
        w.file = Some((9, 999, 0));
        w.data = sockaddr4([192, 0, 2, 1], 443);
        t.push(&w, &mut out);
        // Two datagrams of one recvmmsg, from two senders, then the rest not itemized.
        let mut d = ev(Kind::Syscall, libc::SYS_recvmmsg as u32, 100);
        d.args[0] = 8;
        d.flags = flag::SOCKET | flag::DGRAM;
        d.data = sockaddr4([192, 0, 2, 2], 53);
        t.push(&d, &mut out);
        d.ret = 60;
        d.data = sockaddr4([192, 0, 2, 3], 53);
        t.push(&d, &mut out);
        d.flags = flag::SOCKET | flag::MORE;
        d.ret = 4;
        d.data = vec![];
        t.push(&d, &mut out);
        // A dual-stack socket's IPv4 peer is that IPv4 endpoint.
        let mut six = vec![0u8; 28];
        six[0..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        six[2..4].copy_from_slice(&443u16.to_be_bytes());
        six[18..20].copy_from_slice(&[0xff, 0xff]);
        six[20..24].copy_from_slice(&[192, 0, 2, 1]);
        w.data = six;
        t.push(&w, &mut out);
        let a = ats(&out);
        assert_eq!(
            a.iter().map(|a| (a.op, a.len)).collect::<Vec<_>>(),
            vec![
                (Op::Send, 5),
                (Op::Recv, 100),
                (Op::Recv, 60),
                (Op::Recv, 0),
                (Op::Send, 5)
            ]
        );
        assert_eq!(a[4].dst, a[0].dst);
        assert_ne!(a[1].src, a[2].src);
        assert_eq!((a[3].src, a[3].result), (0, 4));
        assert!(
            !out.iter()
                .any(|o| matches!(o, Output::Var(_, VarDef::File { .. }))),
            "a socket is no file"
        );
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

    /// A file of the VE's dirties (`JCS_F_OWN`): its writes become one integrity record
    /// (held until a second has passed or the VE ends), its open, reads and close nothing;
    /// a chmod by descriptor, a failed write and a write of another file stay transactions.
    #[test]
    fn writes_into_the_dirties_are_one_integrity_record() {
        let mut t = Translator::new(1, 0);
        t.watch(55, 7);
        let mut out = vec![];
        let own = |mut e: Event| {
            e.flags |= flag::OWN;
            e.file = Some((64, 12, 3));
            e
        };
        let mut open = own(ev(Kind::Syscall, nr::OPENAT, 3));
        open.data = b"/tmp/log\0".to_vec();
        open.args[2] = (libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC) as u64;
        t.push(&open, &mut out);
        for (i, off) in [0u64, 6, 12].into_iter().enumerate() {
            let mut w = own(ev(Kind::Syscall, nr::WRITE, 6));
            w.args[0] = 3;
            w.pos = Some(off as i64);
            (w.enter_ns, w.time_ns) = (2000 + i as u64, 2001 + i as u64);
            t.push(&w, &mut out);
        }
        let mut r = own(ev(Kind::Syscall, nr::PREAD64, 18));
        r.args = [3, 0, 18, 0, 0, 0];
        t.push(&r, &mut out);
        let mut chmod = own(ev(Kind::Syscall, libc::SYS_fchmod as u32, 0));
        chmod.args[0] = 3;
        t.push(&chmod, &mut out);
        let mut failed = own(ev(Kind::Syscall, nr::WRITE, -28));
        failed.args[0] = 3;
        failed.pos = Some(18);
        t.push(&failed, &mut out);
        let mut c = own(ev(Kind::Syscall, nr::CLOSE, 0));
        c.args[0] = 3;
        t.push(&c, &mut out);
        // Another file, not the VE's own.
        let mut w = ev(Kind::Syscall, nr::WRITE, 4);
        (w.args[0], w.file, w.pos) = (4, Some((2049, 5, 0)), Some(0));
        t.push(&w, &mut out);
        assert_eq!(
            ats(&out)
                .iter()
                .map(|a| (a.op, a.status))
                .collect::<Vec<_>>(),
            [
                (Op::Chmod, Status::Committed),
                (Op::Write, Status::Failed),
                (Op::Write, Status::Committed)
            ]
        );
        let held = |out: &[Output]| -> Vec<Summary> {
            out.iter()
                .filter_map(|o| match o {
                    Output::Integrity(s) => Some(s.clone()),
                    _ => None,
                })
                .collect()
        };
        assert!(held(&out).is_empty(), "held until taken");
        t.take_integrity(1000, None, &mut out);
        assert!(held(&out).is_empty(), "nothing began before 1000");
        t.take_integrity(0, Some(7), &mut out);
        let s = held(&out);
        assert_eq!(s.len(), 1, "{out:#?}");
        let file = ats(&out)[0].dst;
        // The O_TRUNC open (at 1000) and the three writes, stamped at their entries.
        assert_eq!(
            (s[0].src, s[0].dst, s[0].first, s[0].last, s[0].count, s[0].bytes),
            (1, file, 1000, 2002, 4, 18)
        );
        assert_eq!(
            s[0].dst_part,
            analysis::Part::Whole,
            "a truncate touches it whole"
        );
        assert_eq!(
            t.dropped_calls(55).iter().map(|(_, n)| n).sum::<u64>(),
            3,
            "open, pread, close"
        );
    }

    /// A shared writable mapping of a file of the dirties (Chromium's scratch files in /tmp):
    /// the mapping and its end (the process's exit) are part of the file's integrity record.
    /// Once a call reaches the file without `JCS_F_OWN` (its descriptor left the VE), its
    /// mappings are transactions again.
    #[test]
    fn a_shared_mapping_of_the_dirties_is_integrity() {
        let mut t = Translator::new(1, 0);
        t.watch(55, 1);
        let mut out = vec![];
        let mut m = ev(Kind::Syscall, nr::MMAP, 0x7000);
        m.args = [
            0,
            4096,
            (libc::PROT_READ | libc::PROT_WRITE) as u64,
            libc::MAP_SHARED as u64,
            3,
            0,
        ];
        (m.file, m.flags) = (Some((64, 2, 1)), flag::OWN);
        t.push(&m, &mut out);
        t.push(&ev(Kind::Exit, 0, 0), &mut out);
        assert_eq!(
            ats(&out).iter().map(|a| a.op).collect::<Vec<_>>(),
            [Op::Exit]
        );
        t.take_integrity(u64::MAX, None, &mut out);
        let counts: Vec<u64> = out
            .iter()
            .filter_map(|o| match o {
                Output::Integrity(s) => Some(s.count),
                _ => None,
            })
            .collect();
        assert_eq!(counts, [2], "the mapping and its end");
        // The file's descriptor left the VE: a write comes without JCS_F_OWN.
        let n = ats(&out).len();
        t.push(&m, &mut out);
        let mut w = ev(Kind::Syscall, nr::WRITE, 1);
        (w.args[0], w.file, w.pos) = (3, Some((64, 2, 1)), Some(0));
        t.push(&w, &mut out);
        t.push(&ev(Kind::Exit, 0, 0), &mut out);
        assert_eq!(
            ats(&out)[n..].iter().map(|a| a.op).collect::<Vec<_>>(),
            [Op::Write, Op::Mmap, Op::Mmap, Op::Exit]
        );
    }

    /// A transfer into the dirties (`cp /data/x /tmp/y`: copy_file_range): its read of the
    /// other file stays a transaction, its write is part of the integrity record.
    #[test]
    fn a_transfer_into_the_dirties_keeps_its_read() {
        let mut t = Translator::new(1, 0);
        t.watch(55, 1);
        let mut out = vec![];
        let mut c = ev(Kind::Syscall, libc::SYS_copy_file_range as u32, 50);
        c.args = [3, 0, 4, 0, 50, 0];
        (c.file, c.pos, c.file2, c.pos2) = (Some((1, 10, 0)), Some(0), Some((64, 20, 1)), Some(0));
        c.flags = flag::OWN_OUT;
        t.push(&c, &mut out);
        t.take_integrity(u64::MAX, None, &mut out);
        let a = ats(&out);
        assert_eq!(a.iter().map(|a| a.op).collect::<Vec<_>>(), [Op::Read]);
        assert!(out
            .iter()
            .any(|o| matches!(o, Output::Integrity(s) if s.bytes == 50 && s.src == 1)));
    }

    /// A file an open made (O_CREAT with O_EXCL, and it succeeded) is new: no earlier
    /// recorder can have defined it, and the catalog is not asked (a lookup per file was most
    /// of the draining thread's work in a VE that creates files). An open that may have found
    /// the file (O_CREAT alone, or a failed O_EXCL) still asks.
    #[test]
    fn a_file_an_exclusive_open_created_is_not_looked_up() {
        let asked = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let mut t = Translator::new(100, 0);
        let log = asked.clone();
        t.set_known(move |d| {
            if let VarDef::Inode { ino, .. } = d {
                log.borrow_mut().push(*ino);
            }
            None
        });
        t.watch(55, 7);
        let mut out = vec![];
        for (ino, flags, ret) in [
            (1, libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY, 3),
            (2, libc::O_CREAT | libc::O_WRONLY, 3),
            (3, libc::O_WRONLY, 3),
            (
                4,
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
                -libc::EEXIST as i64,
            ),
        ] {
            let mut o = ev(Kind::Syscall, nr::OPENAT, ret);
            o.args[0] = libc::AT_FDCWD as u64;
            o.args[2] = flags as u64;
            o.data = format!("/data/f{ino}\0").into_bytes();
            o.file = Some((2049, ino, 0));
            t.push(&o, &mut out);
        }
        assert_eq!(*asked.borrow(), vec![2, 3, 4]);
    }

    /// A variable an earlier recorder defined keeps its id, and its definition is written
    /// again once, so the journal holds every definition it uses.
    #[test]
    fn a_known_variable_keeps_its_id_and_is_defined_again_once() {
        let mut t = Translator::new(100, 0);
        t.set_known(|d| matches!(d, VarDef::Memory { ve: 7 }).then_some(42));
        t.watch(55, 7);
        let mut out = vec![];
        for _ in 0..2 {
            let mut w = ev(Kind::Syscall, nr::WRITE, 4);
            (w.args[0], w.file, w.pos) = (4, Some((2049, 5, 0)), Some(0));
            t.push(&w, &mut out);
        }
        let defs: Vec<&Output> = out
            .iter()
            .filter(|o| matches!(o, Output::Var(..)))
            .collect();
        assert_eq!(
            defs.len(),
            2,
            "the memory (known) and the file (new): {out:#?}"
        );
        assert!(out.contains(&Output::Var(42, VarDef::Memory { ve: 7 })));
        assert!(ats(&out).iter().all(|a| a.src == 42));
    }

    #[test]
    fn open_write_read_close_on_one_file() {
        let mut t = Translator::new(1, 5);
        t.watch(55, 101);
        let mut out = vec![];
        let mut open = ev(Kind::Syscall, nr::OPENAT, 3);
        open.data = b"/data/x\0".to_vec();
        open.file = Some((2049, 77, 0));
        t.push(&open, &mut out);
        let mut w = ev(Kind::Syscall, nr::WRITE, 6);
        w.args[0] = 3;
        w.file = Some((2049, 77, 0));
        w.pos = Some(0);
        t.push(&w, &mut out);
        let mut r = ev(Kind::Syscall, nr::PREAD64, -9);
        r.args = [3, 0, 100, 40, 0, 0];
        r.file = Some((2049, 77, 0));
        t.push(&r, &mut out);
        let mut c = ev(Kind::Syscall, nr::CLOSE, 0);
        c.args[0] = 3;
        c.file = Some((2049, 77, 0));
        t.push(&c, &mut out);
        assert_eq!(
            out[..2],
            [
                Output::Var(1, VarDef::Memory { ve: 101 }),
                Output::Var(
                    2,
                    VarDef::Inode {
                        dev: 2049,
                        ino: 77,
                        gen: 0,
                        name: Some("/data/x".into())
                    }
                ),
            ]
        );
        // The open gave the file its name in the VE.
        assert_eq!(
            out[2],
            Output::Name(Name {
                time_ns: 1005,
                ve: 101,
                var: 2,
                path: "/data/x".into(),
                store: None,
                bound: true
            })
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
        assert_eq!(
            out.len(),
            7,
            "no variable defined twice, no name given twice"
        );
    }

    #[test]
    fn appending_writes_land_at_the_end_and_minus_one_is_the_position() {
        let mut t = Translator::new(1, 0);
        t.watch(55, 1);
        let mut out = vec![];
        let write = |nr: i64, off: u64, flags: u64, append: bool| {
            let mut w = ev(Kind::Syscall, nr as u32, 10);
            w.args = [3, 0, 1, off, flags, 0];
            w.file = Some((1, 2, 3));
            w.pos = Some(7);
            w.size = 500;
            if append {
                w.flags |= flag::APPEND;
            }
            w
        };
        t.push(&write(libc::SYS_pwrite64, 40, 0, false), &mut out);
        t.push(&write(libc::SYS_pwrite64, 40, 0, true), &mut out); // O_APPEND: at the end
        t.push(&write(libc::SYS_pwritev2, u64::MAX, 0, false), &mut out); // -1: the position
        t.push(&write(libc::SYS_pwritev2, 40, 0x10, false), &mut out); // RWF_APPEND
        t.push(&write(libc::SYS_write, 0, 0, false), &mut out);
        let offs: Vec<u64> = ats(&out).iter().map(|a| a.off).collect();
        assert_eq!(offs, [40, 500, 7, 500, 7]);
    }

    #[test]
    fn the_callers_stdio_is_named_as_such() {
        let mut t = Translator::new(1, 0);
        t.watch(55, 1);
        t.set_host_names(&[(9, 77, "host:stdout".into())]);
        let mut out = vec![];
        let mut w = ev(Kind::Syscall, nr::WRITE, 3);
        w.args = [1, 0, 3, 0, 0, 0];
        w.file = Some((9, 77, 0));
        t.push(&w, &mut out);
        let defs: Vec<String> = out
            .iter()
            .filter_map(|o| match o {
                Output::Var(_, d) => Some(d.to_string()),
                _ => None,
            })
            .collect();
        assert!(defs.contains(&"host:stdout".to_string()), "{defs:?}");
    }

    #[test]
    fn tee_vmsplice_openat2_and_mremap_move_what_they_move() {
        let mut t = Translator::new(1, 0);
        t.watch(55, 1);
        let mut out = vec![];
        // tee from pipe 3 (the VE's own: no input side) into pipe 4: a write of 4.
        let mut tee = ev(Kind::Syscall, libc::SYS_tee as u32, 10);
        tee.args = [3, 4, 10, 0, 0, 0];
        tee.flags |= flag::NO_IN;
        tee.file = Some((1, 30, 0));
        tee.file2 = Some((1, 40, 0));
        t.push(&tee, &mut out);
        // vmsplice into a write end, and out of a read end.
        let mut vw = ev(Kind::Syscall, libc::SYS_vmsplice as u32, 5);
        vw.args = [4, 0, 1, 0, 0, 0];
        vw.file = Some((1, 40, 0));
        vw.flags |= flag::WRITE_END;
        t.push(&vw, &mut out);
        let mut vr = ev(Kind::Syscall, libc::SYS_vmsplice as u32, 6);
        vr.args = [5, 0, 1, 0, 0, 0];
        vr.file = Some((1, 50, 0));
        t.push(&vr, &mut out);
        // openat2 with O_TRUNC (the monitor puts open_how.flags in args[2]).
        let mut o2 = ev(Kind::Syscall, libc::SYS_openat2 as u32, 6);
        o2.args = [
            libc::AT_FDCWD as u64,
            0,
            (libc::O_WRONLY | libc::O_TRUNC) as u64,
            24,
            0,
            0,
        ];
        o2.data = b"/data/f\0".to_vec();
        o2.file = Some((1, 60, 0));
        t.push(&o2, &mut out);
        // A shared writable mapping of pages 0-1 grown to 0-3.
        let mut mr = ev(Kind::Syscall, libc::SYS_mremap as u32, 0x7000_0000);
        mr.args = [0x6000_0000, 8192, 16384, 1, 0, 0];
        mr.file = Some((1, 60, 0));
        mr.pos = Some(0);
        t.push(&mr, &mut out);
        let a = ats(&out);
        let ops: Vec<(Op, u64, u64)> = a.iter().map(|a| (a.op, a.off, a.len)).collect();
        assert_eq!(
            ops,
            [
                (Op::Write, 0, 10),
                (Op::Write, 0, 5),
                (Op::Read, 0, 6),
                (Op::Open, 0, 0),
                (Op::Truncate, 0, 0),
                (Op::Mmap, 8192, 8192),
                (Op::Mmap, 8192, 8192),
            ]
        );
        let mem = a[0].src;
        assert_eq!((a[1].src, a[2].dst), (mem, mem));
        assert_eq!(a[0].dst, a[1].dst, "tee and vmsplice wrote the same pipe");
        assert_eq!((a[5].dst, a[6].src), (mem, mem), "both ways");
    }

    #[test]
    fn a_rename_moves_the_name_and_path_calls_find_the_file() {
        let mut t = Translator::new(1, 0);
        t.watch(55, 1);
        t.set_store_names(55, &[("/data".into(), "persist:web:/data".into())]);
        let mut out = vec![];
        let mut open = ev(Kind::Syscall, nr::OPENAT, 3);
        open.args[2] = (libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC) as u64;
        open.data = b"/data/a\0".to_vec();
        open.file = Some((1, 2, 3));
        t.push(&open, &mut out);
        let mut r = ev(Kind::Syscall, nr::RENAMEAT2, 0);
        r.args = [libc::AT_FDCWD as u64, 0, libc::AT_FDCWD as u64, 0, 0, 0];
        r.data = b"/data/a\0".to_vec();
        r.data2 = b"/data/b\0".to_vec();
        t.push(&r, &mut out);
        let mut ch = ev(Kind::Syscall, libc::SYS_fchmodat as u32, 0);
        ch.args[0] = libc::AT_FDCWD as u64;
        ch.data = b"/data/b\0".to_vec();
        t.push(&ch, &mut out);
        let a = ats(&out);
        let file = a[0].src;
        // open, the O_TRUNC truncate, rename, chmod: all on the one file.
        assert_eq!(
            a.iter().map(|a| (a.op, a.src, a.dst)).collect::<Vec<_>>(),
            [
                (Op::Open, file, 1),
                (Op::Truncate, 1, file),
                (Op::Rename, 1, file),
                (Op::Chmod, 1, file)
            ]
        );
        let names: Vec<(String, Option<String>, bool)> = out
            .iter()
            .filter_map(|o| match o {
                Output::Name(n) => Some((n.path.clone(), n.store.clone(), n.bound)),
                _ => None,
            })
            .collect();
        assert_eq!(
            names,
            [
                ("/data/a".into(), Some("persist:web:/data/a".into()), true),
                ("/data/a".into(), Some("persist:web:/data/a".into()), false),
                ("/data/b".into(), Some("persist:web:/data/b".into()), true),
            ]
        );
        assert!(!out
            .iter()
            .any(|o| matches!(o, Output::Var(_, VarDef::Path { .. }))));
    }

    /// What a VE with storage changes is kept for its storage report: files written through
    /// descriptors by identity (also a copy's output side), changes by name by path wherever
    /// they are (a link may lead into storage; lchown leaves a final link alone), symbolic
    /// links it made under their last name; reads, failed and empty writes and writes into
    /// its dirties are not changes there.
    #[test]
    fn a_ves_changes_outside_its_file_system_are_kept_for_its_report() {
        let mut t = Translator::new(1, 0);
        t.watch(55, 1);
        t.watch(66, 2);
        t.set_outside(55, &["/data".into()]);
        t.set_store_names(55, &[("/data".into(), "persist:web:/data".into())]);
        let mut out = vec![];
        let write = |fd: u64, file: (u64, u64, u32), ret: i64, flags: u32| {
            let mut w = ev(Kind::Syscall, nr::WRITE, ret);
            (w.args[0], w.args[2], w.file, w.flags) = (fd, 10, Some(file), flags);
            w
        };
        t.push(&write(3, (1, 20, 0), 10, 0), &mut out);
        t.push(&write(3, (1, 20, 0), 10, 0), &mut out);
        t.push(&write(4, (1, 21, 0), -i64::from(libc::ENOSPC), 0), &mut out);
        t.push(&write(5, (1, 22, 0), 0, 0), &mut out);
        t.push(&write(6, (9, 23, 0), 10, flag::OWN), &mut out);
        let mut r = ev(Kind::Syscall, nr::PREAD64, 10);
        (r.args[0], r.file) = (7, Some((1, 24, 0)));
        t.push(&r, &mut out);
        // copy_file_range: in = args[0] (the first file), out = args[2] (the second).
        let mut cp = ev(Kind::Syscall, libc::SYS_copy_file_range as u32, 5);
        (cp.args[0], cp.args[2]) = (7, 8);
        (cp.file, cp.file2) = (Some((1, 24, 0)), Some((1, 25, 0)));
        (cp.pos, cp.pos2) = (Some(0), Some(0));
        t.push(&cp, &mut out);
        let chmod = |path: &[u8], ret: i64| {
            let mut c = ev(Kind::Syscall, libc::SYS_fchmodat as u32, ret);
            c.args[0] = libc::AT_FDCWD as u64;
            c.data = [path, b"\0"].concat();
            c
        };
        t.push(&chmod(b"/data/sub/../m", 0), &mut out);
        t.push(&chmod(b"/data/failed", -i64::from(libc::EPERM)), &mut out);
        t.push(&chmod(b"/etc/own", 0), &mut out);
        let mut lchown = ev(Kind::Syscall, libc::SYS_lchown as u32, 0);
        lchown.data = b"/tmp/l\0".to_vec();
        t.push(&lchown, &mut out);
        // A link made in /tmp, then its directory renamed.
        let mut ln = ev(Kind::Syscall, libc::SYS_symlinkat as u32, 0);
        ln.args[1] = libc::AT_FDCWD as u64;
        (ln.data, ln.data2) = (b"/data\0".to_vec(), b"/tmp/d/l\0".to_vec());
        t.push(&ln, &mut out);
        let mut mv = ev(Kind::Syscall, nr::RENAMEAT2, 0);
        mv.args = [libc::AT_FDCWD as u64, 0, libc::AT_FDCWD as u64, 0, 0, 0];
        (mv.data, mv.data2) = (b"/tmp/d\0".to_vec(), b"/tmp/e\0".to_vec());
        t.push(&mv, &mut out);
        // Another VE's (without storage: nothing kept) and an unwatched one's.
        let mut other = write(3, (1, 30, 0), 10, 0);
        other.cgroup_id = 66;
        t.push(&other, &mut out);
        let c = t.take_changes(55).expect("kept for a VE with storage");
        assert_eq!(c.files, vec![(1, 20), (1, 25)]);
        assert_eq!(
            c.paths,
            vec![
                ("/data/m".to_string(), false),
                ("/etc/own".to_string(), false),
                ("/tmp/l".to_string(), true)
            ]
        );
        assert_eq!(c.links, vec![("/tmp/e/l".to_string(), "/data".to_string())]);
        assert!(c.complete);
        assert!(t.take_changes(55).is_none(), "taken");
        assert!(t.take_changes(66).is_none(), "no storage, nothing kept");
        // A change by a name that is not absolute may have been in storage: not complete.
        t.set_store_names(55, &[("/data".into(), "persist:web:/data".into())]);
        let mut rel = chmod(b"x", 0);
        rel.args[0] = 99; // a directory descriptor never seen opened
        t.push(&rel, &mut out);
        let c = t.take_changes(55).unwrap();
        assert!(!c.complete && c.paths.is_empty());
    }

    #[test]
    fn xattrs_and_timestamps_are_metadata_writes_and_reads() {
        let mut t = watching_data();
        let mut out = vec![];
        t.push(&opened(b"/data/f\0", 2, 3), &mut out);
        let call = |nr: i64, path: &[u8]| {
            let mut c = ev(Kind::Syscall, nr as u32, 0);
            c.args[0] = libc::AT_FDCWD as u64;
            c.data = path.to_vec();
            c
        };
        t.push(&call(libc::SYS_setxattr, b"/data/f\0"), &mut out);
        t.push(&call(libc::SYS_getxattr, b"/data/f\0"), &mut out);
        t.push(&call(libc::SYS_utimensat, b"/data/f\0"), &mut out);
        // The attributes of the VE's own files stay inside.
        t.push(&call(libc::SYS_getxattr, b"/etc/passwd\0"), &mut out);
        let a = ats(&out);
        let file = a[0].src;
        assert_eq!(
            a.iter().map(|a| (a.op, a.src, a.dst)).collect::<Vec<_>>(),
            [
                (Op::Open, file, 1),
                (Op::SetXattr, 1, file),
                (Op::GetXattr, file, 1),
                (Op::Utime, 1, file)
            ]
        );
        assert_eq!(t.dropped_calls(55), [(libc::SYS_getxattr as u32, 1)]);
    }

    /// Forgetting the variables known by identity keeps every variable's id: the next use of
    /// a file, an endpoint or a memory finds it again through the catalog (here a map of
    /// what was emitted); a file known only by path keeps its variable without a lookup.
    #[test]
    fn forgotten_variables_are_found_again_with_the_same_ids() {
        use std::cell::RefCell;
        use std::rc::Rc;
        let mut t = Translator::new(1, 0);
        t.watch(55, 1);
        let catalog: Rc<RefCell<Vec<(VarDef, VarId)>>> = Rc::default();
        let c = catalog.clone();
        t.set_known(move |d| c.borrow().iter().find(|(x, _)| x == d).map(|(_, id)| *id));
        let mut out = vec![];
        let open = |ino: u64| opened(format!("/data/f{ino}\0").as_bytes(), ino, 0);
        let mut chmod = ev(Kind::Syscall, libc::SYS_chmod as u32, 0);
        chmod.data = b"/data/never-opened\0".to_vec();
        let run = |t: &mut Translator, out: &mut Vec<Output>| {
            for ino in 1..=50 {
                t.push(&open(ino), out);
            }
            t.push(&chmod, out);
            let ids: Vec<VarId> = ats(out).iter().map(|a| a.src.max(a.dst)).collect();
            for o in out.drain(..) {
                if let Output::Var(id, d) = o {
                    catalog.borrow_mut().push((d, id));
                }
            }
            ids
        };
        let before = run(&mut t, &mut out);
        let held = t.vars_held();
        assert!(held > 50, "{held}");
        t.forget_vars();
        assert_eq!(t.vars_held(), 1, "the file known by path stays");
        let after = run(&mut t, &mut out);
        assert_eq!(before, after);
        let defined = catalog.borrow().len();
        // (The VE's memory and the path once: the VE keeps its memory's id.)
        assert_eq!(defined, 2 * 50 + 2, "the 50 files again, defined again");
    }

    #[test]
    fn an_exchange_swaps_the_names_and_changes_both_files() {
        let mut t = watching_data();
        let mut out = vec![];
        t.push(&opened(b"/data/a\0", 2, 0), &mut out);
        t.push(&opened(b"/data/b\0", 3, 0), &mut out);
        let mut x = ev(Kind::Syscall, libc::SYS_renameat2 as u32, 0);
        x.args = [libc::AT_FDCWD as u64, 0, libc::AT_FDCWD as u64, 0, 2, 0];
        (x.data, x.data2) = (b"/data/a\0".to_vec(), b"/data/b\0".to_vec());
        t.push(&x, &mut out);
        let mut chmod = ev(Kind::Syscall, libc::SYS_chmod as u32, 0);
        chmod.data = b"/data/a\0".to_vec();
        t.push(&chmod, &mut out);
        let a = ats(&out);
        let (one, two) = (a[0].src, a[1].src);
        assert_eq!(
            a[2..].iter().map(|a| (a.op, a.dst)).collect::<Vec<_>>(),
            [(Op::Rename, one), (Op::Rename, two), (Op::Chmod, two)]
        );
        // Without the flag, a plain rename: the file named b loses its name.
        let mut plain = x.clone();
        plain.args[4] = 0;
        (plain.data, plain.data2) = (b"/data/b\0".to_vec(), b"/data/a\0".to_vec());
        out.clear();
        t.push(&plain, &mut out);
        assert_eq!(ats(&out).len(), 1);
    }

    #[test]
    fn a_links_content_is_written_by_symlink_and_read_by_readlink() {
        let mut t = watching_data();
        let mut out = vec![];
        // /data/f: a file the translator knows by its name.
        t.push(&opened(b"/data/f\0", 2, 3), &mut out);
        // symlink("/data/f", "/data/l"): the link is written, not the file it names.
        let mut link = ev(Kind::Syscall, libc::SYS_symlink as u32, 0);
        (link.data, link.data2) = (b"/data/f\0".to_vec(), b"/data/l\0".to_vec());
        t.push(&link, &mut out);
        let readlink = |path: &[u8], ret: i64| {
            let mut c = ev(Kind::Syscall, libc::SYS_readlink as u32, ret);
            c.data = path.to_vec();
            c
        };
        t.push(&readlink(b"/data/l\0", 7), &mut out);
        // Not a link (EINVAL): no more than a stat says. A link of the VE's own files: inside.
        t.push(&readlink(b"/data/f\0", -22), &mut out);
        t.push(&readlink(b"/proc/self/exe\0", 12), &mut out);
        // mknod: a creation, memory → the new file.
        let mut mknod = ev(Kind::Syscall, libc::SYS_mknod as u32, 0);
        mknod.data = b"/data/fifo\0".to_vec();
        t.push(&mknod, &mut out);
        let a = ats(&out);
        let (file, link) = (a[0].src, a[1].dst);
        assert_ne!(file, link);
        assert_eq!(
            a.iter()
                .map(|a| (a.op, a.src, a.dst, a.len))
                .collect::<Vec<_>>()[..3],
            [
                (Op::Open, file, 1, 0),
                (Op::Symlink, 1, link, 0),
                (Op::Read, link, 1, 7)
            ]
        );
        assert_eq!((a[3].op, a[3].src), (Op::Mknod, 1));
        assert!(![0, 1, file, link].contains(&a[3].dst));
        assert_eq!(a.len(), 4);
        assert_eq!(t.dropped_calls(55), [(libc::SYS_readlink as u32, 2)]);
    }

    #[test]
    fn both_ends_of_a_connection_name_the_same_flows() {
        let mut t = Translator::new(1, 0);
        t.watch(55, 1);
        t.watch(66, 2);
        let mut out = vec![];
        let (a, b) = (
            sockaddr4([10, 0, 0, 2], 40000),
            sockaddr4([10, 0, 0, 3], 8000),
        );
        // VE 1 sends from a to b; VE 2 (local b, remote a) receives, then answers.
        let mut snd = ev(Kind::Syscall, nr::SENDTO, 5);
        snd.flags = flag::SOCKET | flag::LOCAL;
        (snd.data, snd.data2) = (b.clone(), a.clone());
        t.push(&snd, &mut out);
        let mut rcv = snd.clone();
        (rcv.cgroup_id, rcv.nr, rcv.data, rcv.data2) = (66, nr::RECVFROM, a.clone(), b.clone());
        t.push(&rcv, &mut out);
        let mut ans = rcv.clone();
        ans.nr = nr::SENDTO;
        t.push(&ans, &mut out);
        let x = ats(&out);
        assert_eq!((x[0].op, x[1].op), (Op::Send, Op::Recv));
        assert_eq!(x[0].dst, x[1].src, "what VE 1 sent is what VE 2 received");
        assert_ne!(x[2].dst, x[0].dst, "the answer is the other direction");
        assert!(out.contains(&Output::Var(
            x[0].dst,
            VarDef::Flow {
                udp: false,
                from: "10.0.0.2:40000".parse().unwrap(),
                to: "10.0.0.3:8000".parse().unwrap()
            }
        )));
    }

    #[test]
    fn udp_ends_with_wildcard_addresses_are_one_flow() {
        let mut t = Translator::new(1, 0);
        t.watch(55, 1);
        t.watch(66, 2);
        let mut out = vec![];
        // VE 1 sends from an unbound socket (0.0.0.0:40000) to 10.0.0.3:7000; VE 2, bound to
        // 0.0.0.0:7000, receives it from 10.0.0.2:40000.
        let mut snd = ev(Kind::Syscall, nr::SENDTO, 5);
        snd.flags = flag::SOCKET | flag::LOCAL | flag::UDP;
        (snd.data, snd.data2) = (
            sockaddr4([10, 0, 0, 3], 7000),
            sockaddr4([0, 0, 0, 0], 40000),
        );
        t.push(&snd, &mut out);
        let mut rcv = snd.clone();
        rcv.cgroup_id = 66;
        rcv.nr = nr::RECVFROM;
        (rcv.data, rcv.data2) = (
            sockaddr4([10, 0, 0, 2], 40000),
            sockaddr4([0, 0, 0, 0], 7000),
        );
        t.push(&rcv, &mut out);
        // Another sender's port is another flow.
        let mut other = rcv.clone();
        other.data = sockaddr4([10, 0, 0, 9], 40001);
        t.push(&other, &mut out);
        let a = ats(&out);
        assert_eq!(a[0].dst, a[1].src);
        assert_ne!(a[2].src, a[0].dst);
    }

    #[test]
    fn a_path_the_kernel_cut_says_so() {
        let mut t = Translator::new(1, 0);
        t.watch(55, 1);
        let mut out = vec![];
        let long = format!("/data/{}", "d".repeat(249)); // 255 bytes: the buffer was full
        let mut open = ev(Kind::Syscall, nr::OPENAT, 3);
        open.data = format!("{long}\0").into_bytes();
        open.file = Some((1, 2, 3));
        t.push(&open, &mut out);
        let short = "/data/x";
        open.data = format!("{short}\0").into_bytes();
        open.file = Some((1, 3, 3));
        t.push(&open, &mut out);
        let labels: Vec<String> = out
            .iter()
            .filter_map(|o| match o {
                Output::Var(_, VarDef::Inode { name: Some(n), .. }) => Some(n.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(labels, [format!("{long}…"), short.to_string()]);
    }

    #[test]
    fn exits_are_codes_or_128_plus_the_signal() {
        assert_eq!(exit_result(0), 0);
        assert_eq!(exit_result(3 << 8), 3);
        assert_eq!(exit_result(9), 137, "SIGKILL");
        assert_eq!(exit_result(0x80 | 11), 139, "SIGSEGV with a core dump");
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

    /// Descriptor tables per process: a fork copies its parent's (and no stale table of a
    /// reused pid survives it), an exit drops its own, high descriptors too; against a plain
    /// map of (pid, fd) as the reference, over random operations.
    #[test]
    fn descriptor_tables_follow_forks_and_exits() {
        let mut t = FdTables::default();
        let mut reference: std::collections::BTreeMap<(u32, i32), FdTarget> = Default::default();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..20_000 {
            let pid = rnd(6) as u32;
            let fd = match rnd(3) {
                0 => rnd(5_000) as i32,
                _ => rnd(8) as i32,
            };
            match rnd(10) {
                0..=3 => {
                    let target = FdTarget::Path(vec![b'a' + rnd(26) as u8]);
                    t.insert(pid, fd, target.clone());
                    reference.insert((pid, fd), target);
                }
                4..=6 => assert_eq!(t.remove(pid, fd), reference.remove(&(pid, fd))),
                7 => {
                    let child = rnd(6) as u32;
                    if child != pid {
                        t.fork(pid, child);
                        reference.retain(|(p, _), _| *p != child);
                        let copied: Vec<_> = reference
                            .iter()
                            .filter(|((p, _), _)| *p == pid)
                            .map(|((_, f), v)| ((child, *f), v.clone()))
                            .collect();
                        reference.extend(copied);
                    }
                }
                8 => {
                    t.exit(pid);
                    reference.retain(|(p, _), _| *p != pid);
                }
                _ => {}
            }
            for probe in [fd, 0, 1, 4_999] {
                for p in 0..6 {
                    assert_eq!(t.get(p, probe), reference.get(&(p, probe)), "{p} {probe}");
                }
            }
        }
    }

    /// A VE's processes whose exits were lost leave nothing behind once it is unwatched.
    #[test]
    fn an_unwatched_ves_processes_are_forgotten() {
        let mut t = Translator::new(100, 0);
        t.watch(55, 7);
        let mut out = vec![];
        t.push(&ev(Kind::Fork, 0, 11), &mut out);
        let mut open = ev(Kind::Syscall, nr::OPENAT, 4);
        open.pid = 11;
        open.tid = 11;
        open.data = b"/log\0".to_vec();
        t.push(&open, &mut out);
        assert!(t.fds.get(11, 4).is_some());
        t.unwatch(55);
        assert!(t.fds.get(11, 4).is_none() && t.forked.is_empty());
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
        // A close of a file the init had opened (by path): a transaction, were it the app's.
        let mut c = ev(Kind::Syscall, nr::CLOSE, 0);
        c.args[0] = 5;
        c.file = Some((2049, 9, 0));
        t.push(&c, &mut out);
        t.push(&ev(Kind::Fork, 0, 11), &mut out);
        let a = ats(&out);
        assert_eq!(a.iter().map(|a| a.op).collect::<Vec<_>>(), vec![Op::Fork]);
        t.unwatch(55);
        t.watch(55, 3);
        t.push(&c, &mut out);
        assert_eq!(ats(&out).len(), 2, "without an init, every call counts");
    }

    /// A connect to a Unix name of the VE's own file system that does not exist (nscd's
    /// socket) is counted, not recorded; one in persistent storage, or refused, is recorded.
    #[test]
    fn a_missing_unix_socket_of_the_ves_own_files_is_counted() {
        let mut t = Translator::new(1, 0);
        t.watch(55, 1);
        t.set_outside(55, &["/data".into()]);
        let mut out = vec![];
        let unix = |path: &str| {
            let mut b = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
            b.extend_from_slice(path.as_bytes());
            b.push(0);
            b
        };
        for (path, ret) in [
            ("/var/run/nscd/socket", -2),
            ("/data/sock", -2),
            ("/var/run/nscd/socket", -111),
        ] {
            let mut c = ev(Kind::Syscall, nr::CONNECT, ret);
            c.args[0] = 3;
            c.data = unix(path);
            t.push(&c, &mut out);
        }
        assert_eq!(
            ats(&out).iter().map(|a| a.result).collect::<Vec<_>>(),
            [-2, -111],
            "{out:#?}"
        );
        assert_eq!(t.dropped_calls(55), vec![(nr::CONNECT, 1)]);
    }

    /// getaddrinfo's sorting connects a UDP socket to each candidate, then to AF_UNSPEC (or
    /// the unspecified address, port 0) to dissolve it: that connect names nothing.
    #[test]
    fn a_connect_that_dissolves_an_association_names_nothing() {
        let mut t = Translator::new(1, 0);
        t.watch(55, 1);
        let mut out = vec![];
        let unspec = (libc::AF_UNSPEC as u16).to_ne_bytes().to_vec();
        let mut any4 = vec![0u8; 16];
        any4[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        let mut real = any4.clone();
        real[2..4].copy_from_slice(&53u16.to_be_bytes());
        real[4..8].copy_from_slice(&[10, 0, 0, 9]);
        for data in [unspec, any4, real] {
            let mut c = ev(Kind::Syscall, nr::CONNECT, 0);
            c.args[0] = 3;
            c.data = data;
            t.push(&c, &mut out);
        }
        assert_eq!(
            ats(&out).len(),
            1,
            "only the connect to 10.0.0.9:53: {out:#?}"
        );
        assert_eq!(t.dropped_calls(55), vec![(nr::CONNECT, 2)]);
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
