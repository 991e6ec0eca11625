//! Ground truth: scripted programs run in a VE while `strace -f` traces `jcs run` from outside
//! (strace cannot run inside a VE: seccomp denies ptrace there). Every system call strace saw
//! in the VE's processes that crosses the VE's boundary must be exactly one transaction of that
//! VE, with the same operation, file (by the name it had at that moment) or endpoint, offset
//! and length or result, and no transaction may be left over; reads of template files, pipe
//! traffic inside the VE and the VE init's own calls must not appear.
//!
//! Two VEs: a busybox script (a persistent file in three chunks, template reads, appends to a
//! file of the dirties, a TCP exchange, fork and exec), and real Debian programs in a
//! debootstrap template — python3, sqlite3, git, tar with gzip, curl — which rename, link,
//! unlink, mmap, pread/pwrite, chmod, connect without blocking and fail lookups. Both run in
//! the very VE that is recorded, so strace's pids are the recorded pids.

mod common;

use common::{Env, NetNs};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Stdio;
use std::rc::Rc;

/// One system call as strace printed it: `PID name(args) = ret[<fd target>]`; a process's
/// end (`+++ exited with N +++`) as the call `exit` with result N.
#[derive(Debug, Clone)]
struct Call {
    pid: u32,
    name: String,
    args: String,
    /// The result; a failure as -errno (strace prints `-1 ENOENT`).
    ret: i64,
    /// The `<...>` strace (`-yy`) printed after a returned descriptor.
    ret_target: Option<String>,
}

/// errno names as strace prints them → numbers.
fn errnos() -> HashMap<&'static str, i64> {
    (1..200)
        .filter_map(|n| model::errno::name(n).map(|s| (s, n)))
        .collect()
}

/// Parses strace -f output, joining `<unfinished ...>` with its `<... resumed>`.
fn parse(trace: &str) -> Vec<Call> {
    let errnos = errnos();
    let mut pending: HashMap<u32, String> = HashMap::new();
    // A process made by a call that strace printed unfinished can run (and be printed)
    // before that call's return is: the call takes the place where it began, so that the
    // child's calls come after it (and find the descriptors it inherited).
    let mut forks: HashMap<u32, usize> = HashMap::new();
    let mut calls: Vec<Option<Call>> = vec![];
    for line in trace.lines() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let rest = rest.trim_start();
        let full = if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
            if ["clone(", "clone3(", "fork(", "vfork("]
                .iter()
                .any(|c| head.starts_with(c))
            {
                forks.insert(pid, calls.len());
                calls.push(None);
            }
            pending.insert(pid, head.to_string());
            continue;
        } else if rest.starts_with("<... ") {
            let Some(tail) = rest.split_once(" resumed>").map(|(_, t)| t) else {
                continue;
            };
            format!("{}{}", pending.remove(&pid).unwrap_or_default(), tail)
        } else {
            rest.to_string()
        };
        let slot = if rest.starts_with("<... ") {
            forks.remove(&pid)
        } else {
            None
        };
        let mut push = |c: Call| match slot {
            Some(i) => calls[i] = Some(c),
            None => calls.push(Some(c)),
        };
        if let Some(code) = full
            .strip_prefix("+++ exited with ")
            .and_then(|r| r.strip_suffix(" +++"))
        {
            push(Call {
                pid,
                name: "exit".into(),
                args: String::new(),
                ret: code.parse().unwrap_or(-1),
                ret_target: None,
            });
            continue;
        }
        if full.starts_with("---") || full.starts_with("+++") {
            continue;
        }
        let Some(open) = full.find('(') else { continue };
        // `) = ret`, strace pads with spaces before the `=`.
        let Some(eq) = full.rfind(" = ") else {
            continue;
        };
        let Some(close) = full[..eq].trim_end().strip_suffix(')') else {
            continue;
        };
        let name = full[..open].to_string();
        let args = full[open + 1..close.len()].to_string();
        let r = &full[eq + 3..];
        let num_end = r
            .find(|c: char| !(c.is_ascii_digit() || c == '-' || c == 'x'))
            .unwrap_or(r.len());
        let mut ret = if let Some(h) = r[..num_end].strip_prefix("0x") {
            i64::from_str_radix(h, 16).unwrap_or(0)
        } else {
            r[..num_end].parse().unwrap_or(0)
        };
        // `-1 ENOENT (No such file or directory)`
        if ret == -1 {
            if let Some(n) = r[num_end..]
                .split_whitespace()
                .next()
                .and_then(|e| errnos.get(e))
            {
                ret = -n;
            }
        }
        // A pid of the VE's namespace, translated (--decode-pids=pidns).
        if let Some(host) = r
            .split("/* ")
            .nth(1)
            .and_then(|t| t.strip_suffix(" in strace's PID NS */"))
        {
            ret = host.parse().unwrap_or(ret);
        }
        let ret_target = r[num_end..]
            .strip_prefix('<')
            .and_then(|t| matching_gt(&format!("<{t}")).map(|e| strip_dev(&t[..e - 1])));
        push(Call {
            pid,
            name,
            args,
            ret,
            ret_target,
        });
    }
    calls.into_iter().flatten().collect()
}

/// The top-level arguments of a call.
fn split_args(args: &str) -> Vec<&str> {
    let mut out = vec![];
    let mut depth = 0;
    let mut start = 0;
    for (k, c) in args.char_indices() {
        match c {
            '<' | '{' | '[' | '(' => depth += 1,
            '>' | '}' | ']' | ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(args[start..k].trim());
                start = k + 1;
            }
            _ => {}
        }
    }
    out.push(args[start..].trim());
    out
}

/// A descriptor argument as strace (`-yy`) prints it: `3</data/out>` → (3, "/data/out").
fn fd_target(a: &str) -> Option<(i32, String)> {
    let lt = a.find('<')?;
    let fd = a[..lt].parse().ok()?;
    let gt = matching_gt(&a[lt..])?;
    Some((fd, strip_dev(&a[lt + 1..lt + gt])))
}

/// `/dev/null<char 1:3>` → `/dev/null`.
fn strip_dev(t: &str) -> String {
    match t.find("<char ").or(t.find("<block ")) {
        Some(i) => t[..i].to_string(),
        None => t.to_string(),
    }
}

fn matching_gt(s: &str) -> Option<usize> {
    let mut depth = 0;
    for (k, c) in s.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

/// A quoted string argument.
fn quoted(a: &str) -> Option<String> {
    let a = a.strip_prefix('"')?;
    Some(a[..a.find('"')?].to_string())
}

/// `/a/./b/../c` → `/a/c`.
fn normal(p: &str) -> String {
    let mut parts: Vec<&str> = vec![];
    for x in p.split('/') {
        match x {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            x => parts.push(x),
        }
    }
    format!("/{}", parts.join("/"))
}

/// An open file description, shared by dup'd descriptors and across fork.
#[derive(Debug)]
struct Desc {
    /// None: opened before the trace (the inherited stdio), or no position (a pipe).
    pos: Option<u64>,
    append: bool,
    /// Opened for writing: its reads and closes are recorded wherever the file is.
    writing: bool,
}

/// Whether a descriptor was opened for writing.
fn writing(d: &Option<Rc<RefCell<Desc>>>) -> bool {
    d.as_ref().is_some_and(|d| d.borrow().writing)
}

type Fds = Rc<RefCell<HashMap<i32, Rc<RefCell<Desc>>>>>;

/// A transaction both sides can name: (pid, op, variable, offset (None = not checked), length
/// (reads, writes, mappings) or result).
type Key = (u32, String, String, Option<u64>, i64);

/// What the VE's processes' calls must have produced, by the classification of
/// docs/design.md: a file is recorded when it is in persistent storage (`/data`), when the
/// VE changed it (its dirties) or through a descriptor opened for writing; a failed lookup
/// only in persistent storage; devices without data, kernel views, pipes the VE made and its
/// socketpairs never; sockets by their connection's remote end.
struct Model<'a> {
    /// The pipes that cross (the caller's stdout); every other pipe is the VE's own.
    outside: &'a HashSet<String>,
    /// Paths the VE created, wrote or renamed to: in its dirties.
    changed: HashSet<String>,
    sizes: HashMap<String, u64>,
    /// Descriptor tables by process (threads share their process's).
    tables: HashMap<u32, Fds>,
    /// A thread → its process.
    process: HashMap<u32, u32>,
    cwd: HashMap<u32, String>,
    /// Socket (strace's `TCP:[inode]`) → the variable its transactions name.
    conn: HashMap<String, String>,
    /// Sockets made by socket(): closed as `-` when never connected.
    sockets: HashSet<String>,
    want: Vec<Key>,
    /// Calls on template files and inert objects: counted, not recorded.
    left_out: usize,
    /// Files of the VE's dirties → (writes, bytes): one integrity record each (or one a
    /// second), not a transaction per write (docs/design.md).
    integrity: BTreeMap<String, (u64, u64)>,
}

fn storage(p: &str) -> bool {
    p == "/data" || p.starts_with("/data/")
}

/// A file of the VE's dirties: neither storage nor a device.
fn own(var: &str) -> bool {
    var.strip_prefix("file:")
        .is_some_and(|p| p.starts_with('/') && !storage(p) && !p.starts_with("/dev/"))
}

/// Devices without data and the kernel's views: nothing crosses the VE's boundary (the
/// scripts open /proc and /sys only for reading).
fn inert(t: &str) -> bool {
    [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
    ]
    .contains(&t)
        || t.starts_with("/proc/")
        || t.starts_with("/sys/")
}

impl Model<'_> {
    fn new(outside: &HashSet<String>) -> Model<'_> {
        Model {
            outside,
            changed: HashSet::new(),
            sizes: HashMap::new(),
            tables: HashMap::new(),
            process: HashMap::new(),
            cwd: HashMap::new(),
            conn: HashMap::new(),
            sockets: HashSet::new(),
            want: vec![],
            left_out: 0,
            integrity: BTreeMap::new(),
        }
    }

    fn file_recorded(&self, p: &str, writing: bool) -> bool {
        !inert(p) && (storage(p) || self.changed.contains(p) || writing)
    }

    /// The variable a descriptor target names, as `jcs log --json` spells it; None for what
    /// does not cross (and is counted as left out).
    fn var(&mut self, t: &str, writing: bool) -> Option<String> {
        if t.starts_with("pipe:") {
            return self.outside.contains(t).then(|| t.to_string());
        }
        if t.starts_with("TCP") || t.starts_with("UDP") {
            return Some(self.conn.get(t).cloned().unwrap_or_else(|| "-".into()));
        }
        if t.starts_with("UNIX") || t.starts_with("NETLINK") {
            return self.conn.get(t).cloned();
        }
        if self.file_recorded(t, writing) {
            Some(format!("file:{t}"))
        } else {
            self.left_out += 1;
            None
        }
    }

    /// `path` of the call, relative to `dir` (`AT_FDCWD<cwd>`, `3</dir>`, or None: the
    /// process's working directory).
    fn path(&self, pid: u32, dir: Option<&str>, path: Option<String>) -> Option<String> {
        let p = path?;
        if p.starts_with('/') {
            return Some(normal(&p));
        }
        let d = match dir {
            Some(a) if a.starts_with("AT_FDCWD<") => a["AT_FDCWD<".len()..a.len() - 1].to_string(),
            Some(a) => fd_target(a)?.1,
            None => self.cwd.get(&pid).cloned().unwrap_or_else(|| "/".into()),
        };
        Some(normal(&format!("{d}/{p}")))
    }

    /// A transaction on the descriptor's variable, or — a file of the VE's dirties — a part
    /// of its integrity record (a write that moved bytes, a truncate) or nothing (an open,
    /// read or close of it: dropped in the kernel); other calls on it stay transactions.
    fn push(&mut self, pid: u32, op: &str, var: String, off: Option<u64>, n: i64) {
        // A socket made, bound, listened on or closed without naming anything: not recorded.
        if var == "-" && ["socket", "bind", "listen", "close"].contains(&op) {
            return;
        }
        if own(&var) && n >= 0 {
            match op {
                "write" | "truncate" | "setxattr" | "utime" => {
                    let e = self.integrity.entry(var).or_default();
                    if op != "write" || n > 0 {
                        e.0 += 1;
                    }
                    if op == "write" {
                        e.1 += n as u64;
                    }
                    return;
                }
                "open" | "read" | "close" | "getxattr" => {
                    self.left_out += 1;
                    return;
                }
                _ => {}
            }
        }
        self.push_path(pid, op, var, off, n);
    }

    /// A transaction as it is: a call by path (mkdir, rename, unlink, chmod…) stays one on
    /// the dirties too.
    fn push_path(&mut self, pid: u32, op: &str, var: String, off: Option<u64>, n: i64) {
        self.want.push((pid, op.into(), var, off, n));
    }

    fn call(&mut self, c: &Call) {
        let pid = self.process.get(&c.pid).copied().unwrap_or(c.pid);
        let fds = self.tables.entry(pid).or_default().clone();
        let a = split_args(&c.args);
        // strace prints the working directory with every AT_FDCWD.
        if let Some(i) = c.args.find("AT_FDCWD<") {
            if let Some(e) = c.args[i..].find('>') {
                self.cwd.insert(pid, c.args[i + 9..i + e].to_string());
            }
        }
        let fd = |i: usize| {
            let (fd, t) = a.get(i).and_then(|x| fd_target(x))?;
            let d = fds.borrow().get(&fd).cloned();
            Some((fd, t, d))
        };
        let arg_u64 = |i: usize| -> Option<u64> {
            let s = a.get(i)?;
            match s.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16).ok(),
                None => s.parse().ok(),
            }
        };
        let name = c.name.as_str();
        match name {
            "openat" | "open" | "creat" => {
                let (p, flags) = match name {
                    "openat" => (
                        self.path(pid, a.first().copied(), a.get(1).and_then(|x| quoted(x))),
                        a.get(2).copied().unwrap_or(""),
                    ),
                    "open" => (
                        self.path(pid, None, a.first().and_then(|x| quoted(x))),
                        a.get(1).copied().unwrap_or(""),
                    ),
                    _ => (
                        self.path(pid, None, a.first().and_then(|x| quoted(x))),
                        "O_CREAT|O_WRONLY|O_TRUNC",
                    ),
                };
                let Some(mut p) = p else { return };
                if c.ret >= 0 {
                    if let Some(t) = &c.ret_target {
                        p = t.clone();
                    }
                }
                let writing = ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"]
                    .iter()
                    .any(|f| flags.contains(f));
                if c.ret >= 0 {
                    fds.borrow_mut().insert(
                        c.ret as i32,
                        Rc::new(RefCell::new(Desc {
                            pos: Some(0),
                            append: flags.contains("O_APPEND"),
                            writing,
                        })),
                    );
                    if flags.contains("O_TRUNC") {
                        self.sizes.insert(p.clone(), 0);
                    }
                    if writing {
                        self.changed.insert(p.clone());
                    }
                }
                if inert(&p)
                    || (c.ret >= 0 && !self.file_recorded(&p, false))
                    || (c.ret < 0 && !storage(&p))
                {
                    // Opening a template file moves no data; a failed lookup in the VE's own
                    // file system changed nothing.
                    self.left_out += 1;
                    return;
                }
                self.push(pid, "open", format!("file:{p}"), None, c.ret);
                if c.ret >= 0 && flags.contains("O_TRUNC") {
                    self.push(pid, "truncate", format!("file:{p}"), Some(0), c.ret);
                }
            }
            "dup" | "dup2" | "dup3" | "fcntl" if c.ret >= 0 => {
                if name == "fcntl" && !c.args.contains("F_DUPFD") {
                    return;
                }
                let d = fd(0).and_then(|x| x.2);
                let mut t = fds.borrow_mut();
                match d {
                    Some(d) => t.insert(c.ret as i32, d),
                    None => t.remove(&(c.ret as i32)),
                };
            }
            "lseek" if c.ret >= 0 => {
                if let Some((_, _, Some(d))) = fd(0) {
                    d.borrow_mut().pos = Some(c.ret as u64);
                }
            }
            "chdir" if c.ret == 0 => {
                if let Some(p) = self.path(pid, None, a.first().and_then(|x| quoted(x))) {
                    self.cwd.insert(pid, p);
                }
            }
            "fchdir" if c.ret == 0 => {
                if let Some((_, t, _)) = fd(0) {
                    self.cwd.insert(pid, t);
                }
            }
            "close" => {
                let Some((n, t, d)) = fd(0) else { return };
                fds.borrow_mut().remove(&n);
                let v = match self.var(&t, writing(&d)) {
                    Some(v) => v,
                    None if self.sockets.contains(&t) => "-".into(),
                    None => return,
                };
                self.push(pid, "close", v, None, c.ret);
            }
            "read" | "readv" | "pread64" | "preadv" | "preadv2" | "write" | "writev"
            | "pwrite64" | "pwritev" | "pwritev2" | "recvfrom" | "sendto" | "recvmsg"
            | "sendmsg" => {
                let Some((_, t, d)) = fd(0) else { return };
                let write = name.contains("write") || name.starts_with("send");
                // An explicit offset (pread, pwrite; -1 for the p*v2 calls: the position).
                let explicit = match name {
                    "pread64" | "pwrite64" | "preadv" | "pwritev" | "preadv2" | "pwritev2" => {
                        arg_u64(3).filter(|&o| o as i64 >= 0)
                    }
                    _ => None,
                };
                let n = c.ret.max(0) as u64;
                let off = match (&d, explicit) {
                    (_, Some(o)) => {
                        if write {
                            let s = self.sizes.entry(t.clone()).or_default();
                            *s = (*s).max(o + n);
                        }
                        Some(o)
                    }
                    (Some(d), None) => {
                        let mut d = d.borrow_mut();
                        if write && d.append && d.pos.is_some() {
                            d.pos = Some(self.sizes.get(&t).copied().unwrap_or(0));
                        }
                        let off = d.pos;
                        if let Some(p) = &mut d.pos {
                            *p += n;
                            if write {
                                let s = self.sizes.entry(t.clone()).or_default();
                                *s = (*s).max(*p);
                            }
                        }
                        off
                    }
                    (None, None) => None,
                };
                let Some(v) = self.var(&t, writing(&d)) else {
                    return;
                };
                let socket = v.starts_with("endpoint:") || v.starts_with("unix:") || v == "-";
                let op = match (write, socket) {
                    (true, true) => "send",
                    (true, false) => "write",
                    (false, true) => "recv",
                    (false, false) => "read",
                };
                // Sockets have no offset (0); devices and pipes do not move a position.
                let off = if socket {
                    Some(0)
                } else if t.starts_with("/dev/") || t.starts_with("pipe:") {
                    None
                } else {
                    off
                };
                self.push(pid, op, v, off, n as i64);
            }
            "sendfile" => {
                let (Some((_, ot, od)), Some((_, it, id))) = (fd(0), fd(1)) else {
                    return;
                };
                let n = c.ret.max(0) as u64;
                let mut at = |d: &Option<Rc<RefCell<Desc>>>, t: &str, write: bool| {
                    let d = d.as_ref()?;
                    let mut d = d.borrow_mut();
                    let off = d.pos;
                    if let Some(p) = &mut d.pos {
                        *p += n;
                        if write {
                            let s = self.sizes.entry(t.to_string()).or_default();
                            *s = (*s).max(*p);
                        }
                    }
                    off
                };
                let (ioff, ooff) = (at(&id, &it, false), at(&od, &ot, true));
                // (Its read of a file of the dirties is not recorded; the call is, by its
                // write: not a call left out.)
                if let Some(v) = self.var(&it, writing(&id)).filter(|v| !own(v)) {
                    self.push(pid, "read", v, ioff, n as i64);
                }
                if let Some(v) = self.var(&ot, writing(&od)) {
                    let off = if ot.starts_with("/dev/") || ot.starts_with("pipe:") {
                        None
                    } else {
                        ooff
                    };
                    self.push(pid, "write", v, off, n as i64);
                }
            }
            "ftruncate" | "fchmod" | "fchown" => {
                let Some((_, t, d)) = fd(0) else { return };
                if let Some(v) = self.var(&t, writing(&d)) {
                    match name {
                        "ftruncate" => self.push(pid, "truncate", v, arg_u64(1), c.ret),
                        _ => self.push(pid, &name[1..], v, None, c.ret),
                    }
                }
            }
            // A link's content read: recorded in storage when it was one (a failed readlink
            // says no more than a stat).
            "readlink" | "readlinkat" => {
                let q = |i: usize| a.get(i).and_then(|x| quoted(x));
                let p = match name {
                    "readlink" => self.path(pid, None, q(0)),
                    _ => self.path(pid, a.first().copied(), q(1)),
                };
                let Some(p) = p else { return };
                if c.ret < 0 || !storage(&p) {
                    self.left_out += 1;
                    return;
                }
                self.push_path(pid, "read", format!("file:{p}"), Some(0), c.ret);
            }
            "rename" | "renameat" | "renameat2" | "link" | "linkat" | "symlink" | "symlinkat"
            | "unlink" | "unlinkat" | "mkdir" | "mkdirat" | "mknod" | "mknodat" | "rmdir"
            | "chmod" | "fchmodat" | "chown" | "lchown" | "fchownat" | "utimensat" | "truncate" => {
                let q = |i: usize| a.get(i).and_then(|x| quoted(x));
                // The file the call names (for a rename or link: the name it gives).
                let p = match name {
                    "rename" | "link" | "symlink" => self.path(pid, None, q(1)),
                    "renameat" | "renameat2" | "linkat" => self.path(pid, a.get(2).copied(), q(3)),
                    "symlinkat" => self.path(pid, a.get(1).copied(), q(2)),
                    "unlink" | "mkdir" | "mknod" | "rmdir" | "chmod" | "chown" | "lchown"
                    | "truncate" => self.path(pid, None, q(0)),
                    // utimensat(fd, NULL, …): the descriptor's file.
                    "utimensat" if a.get(1) == Some(&"NULL") => fd(0).map(|x| x.1),
                    _ => self.path(pid, a.first().copied(), q(1)),
                };
                let Some(p) = p else { return };
                let op = match name {
                    "renameat" | "renameat2" => "rename",
                    "linkat" => "link",
                    "symlinkat" => "symlink",
                    "unlinkat" if c.args.contains("AT_REMOVEDIR") => "rmdir",
                    "unlinkat" => "unlink",
                    "mkdirat" => "mkdir",
                    "mknodat" => "mknod",
                    "fchmodat" => "chmod",
                    "lchown" | "fchownat" => "chown",
                    "utimensat" => "utime",
                    n => n,
                };
                if c.ret >= 0 {
                    self.changed.insert(p.clone());
                }
                if inert(&p) || (c.ret < 0 && !storage(&p)) {
                    self.left_out += 1;
                    return;
                }
                let off = (op == "truncate").then(|| arg_u64(1)).flatten();
                self.push_path(pid, op, format!("file:{p}"), off, c.ret);
            }
            "mmap" => {
                let Some((_, t, d)) = fd(4) else { return };
                if let Some(v) = self.var(&t, writing(&d)) {
                    let len = arg_u64(1).unwrap_or(0) as i64;
                    self.push(pid, "mmap", v, arg_u64(5), len);
                }
            }
            "socket" if !c.args.starts_with("AF_NETLINK") => {
                if let Some(t) = &c.ret_target {
                    self.sockets.insert(t.clone());
                }
                self.push(pid, "socket", "-".into(), None, c.ret);
            }
            "connect" => {
                let v = if let Some(i) = c.args.find("sun_path=\"") {
                    let r = &c.args[i + 10..];
                    format!("unix:{}", &r[..r.find('"').unwrap_or(r.len())])
                } else {
                    // {sa_family=AF_INET, sin_port=htons(9000), sin_addr=inet_addr("10.77.0.1")}
                    let port: String = c
                        .args
                        .split("htons(")
                        .nth(1)
                        .map(|s| s.chars().take_while(char::is_ascii_digit).collect())
                        .unwrap_or_default();
                    let addr = c
                        .args
                        .split("inet_addr(\"")
                        .nth(1)
                        .and_then(|s| s.split('"').next())
                        .unwrap_or_default();
                    format!("endpoint:{addr}:{port}")
                };
                // A connection: its later calls name it (a non-blocking one goes on
                // connecting after EINPROGRESS).
                if c.ret == 0 || c.ret == -i64::from(libc::EINPROGRESS) {
                    if let Some((_, t, _)) = fd(0) {
                        self.conn.insert(t, v.clone());
                    }
                }
                // A Unix name of the VE's own files that does not exist (nscd's socket):
                // like a failed lookup there, counted, not recorded.
                let missing =
                    c.ret == -i64::from(libc::ENOENT) || c.ret == -i64::from(libc::ENOTDIR);
                if missing && v.strip_prefix("unix:").is_some_and(|p| !storage(p)) {
                    return;
                }
                self.push(pid, "connect", v, None, c.ret);
            }
            "execve" if c.ret == 0 => {
                let p = self.path(pid, None, a.first().and_then(|x| quoted(x)));
                self.push(
                    pid,
                    "exec",
                    format!("file:{}", p.unwrap_or_default()),
                    None,
                    0,
                );
            }
            "clone" | "clone3" | "fork" | "vfork" if c.ret > 0 => {
                let child = c.ret as u32;
                if c.args.contains("CLONE_THREAD") {
                    self.process.insert(child, pid);
                    return;
                }
                // The child starts with copies of the parent's descriptors and directory.
                let copy: HashMap<_, _> = fds.borrow().clone();
                self.tables.insert(child, Rc::new(RefCell::new(copy)));
                if let Some(d) = self.cwd.get(&pid).cloned() {
                    self.cwd.insert(child, d);
                }
                self.push(pid, "fork", "-".into(), None, c.ret);
            }
            "exit" if !self.process.contains_key(&c.pid) => {
                self.push(pid, "exit", "-".into(), None, c.ret);
            }
            _ => {}
        }
    }
}

/// What the journal should hold: the transactions, the calls left out, and the integrity
/// records' (writes, bytes) by file.
fn expected(
    calls: &[Call],
    pids: &[u32],
    outside: &HashSet<String>,
) -> (Vec<Key>, usize, BTreeMap<String, (u64, u64)>) {
    let mut m = Model::new(outside);
    for c in calls {
        let p = m.process.get(&c.pid).copied().unwrap_or(c.pid);
        if pids.contains(&p) {
            m.call(c);
        }
    }
    (m.want, m.left_out, m.integrity)
}

/// The VE's integrity records, (writes, bytes) by file, as `jcs log --json` prints them.
fn integrity_records(ats: &[serde_json::Value]) -> BTreeMap<String, (u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for s in ats.iter().filter(|a| a["summary"] == "integrity") {
        let e = out
            .entry(s["dst"].as_str().unwrap().to_string())
            .or_default();
        e.0 += s["count"].as_u64().unwrap();
        e.1 += s["bytes"].as_u64().unwrap();
    }
    out
}

/// The VE's transactions of the kinds strace can name, as [`Key`]s.
fn recorded(ats: &[serde_json::Value], pids: &[u32]) -> Vec<Key> {
    ats.iter()
        .filter_map(|a| {
            let pid = a["pid"].as_u64()? as u32;
            if !pids.contains(&pid) {
                return None;
            }
            let op = a["op"].as_str()?.to_string();
            let me = format!("ve:{}", a["ve"]);
            let var = match op.as_str() {
                "fork" | "exit" => "-",
                _ if a["src"] != me.as_str() => a["src"].as_str()?,
                _ => a["dst"].as_str()?,
            }
            .to_string();
            // The caller's stdio (`host:stdout`) by its identity; a file known only by
            // identity, in these scripts a pipe: file:[DEV:INO:GEN], which strace names
            // pipe:[INO].
            let var = if var.starts_with("host:") {
                let id = if a["src"] == var.as_str() {
                    &a["src_id"]
                } else {
                    &a["dst_id"]
                };
                id.as_str()?.to_string()
            } else {
                var
            };
            let var = match var.strip_prefix("file:[").and_then(|r| r.strip_suffix(']')) {
                Some(id) => format!("pipe:[{}]", id.split(':').nth(1)?),
                None => var,
            };
            // A flow (`tcp:FROM->TO`) as strace names the socket: by its remote end, the
            // flow's `to` for what the VE sends (and connects, closes), its `from` for what
            // it receives.
            let var = match var
                .strip_prefix("tcp:")
                .or(var.strip_prefix("udp:"))
                .and_then(|f| f.split_once("->"))
            {
                Some((from, to)) => {
                    format!("endpoint:{}", if op == "recv" { from } else { to })
                }
                None => var,
            };
            let off = a["off"].as_u64();
            let n = match op.as_str() {
                "read" | "write" | "send" | "recv" | "mmap" => a["len"].as_i64()?,
                _ => a["result"].as_i64()?,
            };
            Some((pid, op, var, off, n))
        })
        .collect()
}

/// Matches every expected transaction with one recorded one; fails with what is missing and
/// what is left over. `exec_any_file`: an exec may name its file by any path (busybox: /bin/sh,
/// /proc/self/exe and /bin/busybox are one file).
fn compare(want: &[Key], mut have: Vec<Key>, exec_any_file: bool) {
    let mut missing = vec![];
    for w in want {
        let i = have.iter().position(|h| {
            let same_var =
                h.2 == w.2 || (exec_any_file && w.1 == "exec" && h.2.starts_with("file:"));
            h.0 == w.0 && h.1 == w.1 && same_var && h.4 == w.4 && (w.3.is_none() || h.3 == w.3)
        });
        match i {
            Some(i) => {
                have.swap_remove(i);
            }
            None => missing.push(w.clone()),
        }
    }
    assert!(
        missing.is_empty(),
        "strace saw these, the journal does not have them: {missing:#?}\nleft over: {have:#?}"
    );
    assert!(
        have.is_empty(),
        "transactions strace did not see: {have:#?}"
    );
}

/// The calls strace traces: every call the model knows.
const TRACED: &str = "openat,open,creat,read,readv,pread64,preadv,preadv2,write,writev,\
pwrite64,pwritev,pwritev2,close,lseek,dup,dup2,dup3,fcntl,chdir,fchdir,sendfile,ftruncate,\
truncate,rename,renameat,renameat2,link,linkat,symlink,symlinkat,unlink,unlinkat,mkdir,\
mkdirat,mknod,mknodat,readlink,readlinkat,rmdir,chmod,fchmod,fchmodat,chown,fchown,lchown,\
fchownat,utimensat,mmap,socket,\
connect,sendto,recvfrom,sendmsg,recvmsg,execve,clone,clone3,fork,vfork";

/// Runs `script` in a VE of `app` under strace (in namespace `ns`, with the store's bridge in
/// 10.78.0.0/24); stdout and stderr go to one pipe the test made, whose inode it knows: the
/// caller's pipe, which the VE's writes to its stdout cross into. Returns the VE's
/// transactions (JSON), strace's calls, what the VE printed, and that pipe.
fn traced_run(
    env: &Env,
    ns: &NetNs,
    app: &str,
    ve: u64,
    script: &str,
) -> (Vec<serde_json::Value>, Vec<Call>, String, HashSet<String>) {
    let trace = env.home().join(format!("strace-{ve}.out"));
    let (mut out_r, out_w) = std::io::pipe().unwrap();
    let outside: HashSet<String> = {
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::metadata(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&out_r)
        ))
        .unwrap()
        .ino();
        HashSet::from([format!("pipe:[{ino}]")])
    };
    let o = ns
        .cmd(
            "timeout",
            &[
                "120",
                "strace",
                "-f",
                "-q",
                "-yy",
                "--decode-pids=pidns",
                "-s",
                "0",
                "-e",
                &format!("trace={TRACED}"),
                "-e",
                "signal=none",
                "-o",
                trace.to_str().unwrap(),
                common::jcs_bin(),
                "run",
                app,
                "--",
                "/bin/sh",
                "-c",
                script,
            ],
        )
        .env("JCS_HOME", env.home())
        .env("JCS_RUN_DIR", env.run_dir())
        .env("JCS_BRIDGE_CIDR", "10.78.0.0/24")
        .stdin(Stdio::null())
        .stdout(out_w.try_clone().unwrap())
        .stderr(out_w)
        .output()
        .unwrap();
    let mut printed = String::new();
    std::io::Read::read_to_string(&mut out_r, &mut printed).unwrap();
    assert!(o.status.success(), "{printed}");
    let log = env.ok(&["log", "--ve", &ve.to_string(), "--json"]);
    let ats: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let calls = parse(&std::fs::read_to_string(&trace).unwrap());
    (ats, calls, printed, outside)
}

/// The VE's processes: the children of its forks (the init, JCS's own code, is excluded).
fn ve_pids(ats: &[serde_json::Value]) -> Vec<u32> {
    ats.iter()
        .filter(|a| a["op"] == "fork")
        .map(|a| a["result"].as_u64().unwrap() as u32)
        .collect()
}

/// Starts the daemon and the bridge (a VE of `app` running `true`) before the traced run:
/// neither may be a child of the traced command.
fn start_bridge(env: &Env, ns: &NetNs, app: &str) {
    let o = ns
        .cmd(common::jcs_bin(), &["run", app, "--", "true"])
        .env("JCS_HOME", env.home())
        .env("JCS_RUN_DIR", env.run_dir())
        .env("JCS_BRIDGE_CIDR", "10.78.0.0/24")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A one-shot HTTP-ish server on the host side of the bridge: sends `reply` to the first
/// client on port 9000 and exits.
fn serve_once(ns: &NetNs, reply: &str) -> std::process::Child {
    let s = ns
        .cmd(
            "sh",
            &[
                "-c",
                &format!("printf '{reply}' | busybox nc -l -p 9000 > /dev/null"),
            ],
        )
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    s
}

/// The parser of strace's log: a fork printed unfinished whose child ran (and was printed)
/// before its return was takes the place where it began, so that the child's calls follow
/// it (and find the descriptors it inherited; the suite once failed on a log so ordered).
#[test]
fn a_fork_comes_before_its_childs_calls() {
    let trace = "100 clone(child_stack=NULL, flags=SIGCHLD <unfinished ...>\n\
                 101 openat(AT_FDCWD</>, \"/data/x\", O_WRONLY) = 3</data/x>\n\
                 100 <... clone resumed>) = 101\n\
                 100 close(1) = 0\n";
    let calls = parse(trace);
    let order: Vec<(u32, &str, i64)> = calls
        .iter()
        .map(|c| (c.pid, c.name.as_str(), c.ret))
        .collect();
    assert_eq!(
        order,
        vec![(100, "clone", 101), (101, "openat", 3), (100, "close", 0)]
    );
}

#[test]
fn root_every_interaction_strace_sees_is_one_transaction() {
    let Some(env) = Env::new() else { return };
    let ns = NetNs::new();
    env.bridge_app("gt");
    start_bridge(&env, &ns, "gt");
    let server = serve_once(&ns, "from-server\\n");
    let script = "dd if=/dev/zero of=/data/out bs=100 count=3 2>/dev/null; \
                  md5sum /etc/passwd > /dev/null; cat /etc/group > /dev/null; \
                  echo one > /tmp/f; echo two >> /tmp/f; echo three >> /tmp/f; cat /tmp/f > /data/copy; \
                  echo hello | nc 10.78.0.1 9000 > /data/reply; \
                  sh -c 'exec cat /data/reply' > /dev/null; \
                  ln -s /data/copy /data/lnk; readlink /data/lnk > /dev/null; \
                  readlink /data/copy; mkfifo /data/fifo";
    let (ats, calls, _, outside) = traced_run(&env, &ns, "gt", 2, script);
    assert!(server.wait_with_output().unwrap().status.success());
    let data = env.home().join("persist/gt/data");
    assert_eq!(std::fs::read(data.join("out")).unwrap(), vec![0u8; 300]);
    assert_eq!(
        std::fs::read_to_string(data.join("copy")).unwrap(),
        "one\ntwo\nthree\n"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("reply")).unwrap(),
        "from-server\n"
    );

    let pids = ve_pids(&ats);
    assert!(pids.len() >= 6, "{pids:?}");
    let (want, left_out, integrity) = expected(&calls, &pids, &outside);
    eprintln!(
        "ground truth (busybox): {} transactions of {} processes compared, {} calls on \
         template files, devices without data, kernel views and the dirties left out, \
         integrity records {integrity:?}",
        want.len(),
        pids.len(),
        left_out
    );
    compare(&want, recorded(&ats, &pids), true);
    // The writes into /tmp/f (its dirties): one integrity record of all of them.
    assert_eq!(integrity_records(&ats), integrity);
    assert_eq!(
        integrity.get("file:/tmp/f"),
        Some(&(4, 14)),
        "O_TRUNC, then 4 + 4 + 6 bytes"
    );
    // What the script is made of, so that the comparison above compared something.
    let has = |op: &str, var: &str, off: Option<u64>, n: i64| {
        want.iter()
            .any(|w| w.1 == op && w.2 == var && w.4 == n && (off.is_none() || w.3 == off))
    };
    for off in [0, 100, 200] {
        assert!(has("write", "file:/data/out", Some(off), 100), "{want:#?}");
    }
    assert!(
        !want.iter().any(|w| w.2 == "file:/tmp/f"),
        "no transaction on the dirties' file: {want:#?}"
    );
    assert!(
        has("connect", "endpoint:10.78.0.1:9000", None, 0),
        "{want:#?}"
    );
    assert!(has("send", "endpoint:10.78.0.1:9000", None, 6), "{want:#?}");
    assert!(
        has("recv", "endpoint:10.78.0.1:9000", None, 12),
        "{want:#?}"
    );
    assert!(want.iter().any(|w| w.1 == "exec"), "{want:#?}");
    assert!(want.iter().any(|w| w.1 == "exit"), "{want:#?}");
    // A link made and read (its content, "/data/copy"), a readlink of a file that is no link
    // (failed: left out), a FIFO made by mknod.
    assert!(has("symlink", "file:/data/lnk", None, 0), "{want:#?}");
    assert!(has("read", "file:/data/lnk", Some(0), 10), "{want:#?}");
    assert!(!want
        .iter()
        .any(|w| w.1 == "read" && w.2 == "file:/data/copy" && w.4 < 0));
    assert!(has("mknod", "file:/data/fifo", None, 0), "{want:#?}");
    // Template opens, reads and closes are absent from the journal, and counted.
    assert!(left_out >= 2, "{calls:#?}");
    assert!(!ats.iter().any(|a| a["op"]
        .as_str()
        .is_some_and(|op| ["read", "open", "close"].contains(&op))
        && a["src"].as_str().unwrap().starts_with("file:/etc/")));
    let st = env.json(&["stats", "--ve", "2", "--json"]);
    let dropped = st["ves"][0]["dropped_by_name"].clone();
    let n: u64 = ["read", "sendfile", "openat", "open", "close", "readlink"]
        .iter()
        .map(|c| dropped[c].as_u64().unwrap_or(0))
        .sum();
    assert!(n >= left_out as u64, "{st}");
    env.assert_clean();
}

/// Debian's python3, sqlite3, git, tar with gzip and curl, against strace: 1:1 on every
/// interaction that crosses the VE's boundary, each file by the name it had when it was
/// touched (git's `.git/config` after its `config.lock` was renamed to it; the sqlite journal
/// and a later file that may reuse its inode number), and a renamed file one variable.
#[test]
fn root_debian_programs_match_strace_one_to_one() {
    let Some(env) = Env::new() else { return };
    let ns = NetNs::new();
    // debootstrap minbase with the programs (~35 s and ~70 MB from the Debian mirror).
    let o = env.jcs(&[
        "template",
        "create",
        "deb",
        "--debootstrap",
        "bookworm",
        "--include",
        "python3-minimal,sqlite3,git,curl",
    ]);
    assert!(
        o.status.success(),
        "debootstrap (needs the Debian mirror): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    env.ok(&[
        "app",
        "create",
        "deb",
        "--template",
        "deb",
        "--net",
        "bridge",
        "--persist",
        "/data",
    ]);
    start_bridge(&env, &ns, "deb");
    let server = serve_once(
        &ns,
        "HTTP/1.0 200 OK\\r\\nContent-Length: 12\\r\\n\\r\\nfrom-server\\n",
    );
    let script = r#"set -e
export PYTHONDONTWRITEBYTECODE=1 HOME=/data
cd /data
python3 -c 'import os
with open("/data/py.txt", "w") as f: f.write("hello from python\n")
os.rename("/data/py.txt", "/data/py2.txt")
with open("/data/py2.txt", "r+b") as f:
    f.seek(6); f.write(b"FROM")
    os.pwrite(f.fileno(), b"!", 17); f.flush(); os.ftruncate(f.fileno(), 18)
print(open("/data/py2.txt").read())'
sqlite3 /data/db.sqlite 'create table t(x); insert into t values (1),(2); select count(*) from t;'
git init -q /data/repo
cd /data/repo
git config user.email gt@example.org && git config user.name gt
echo hi > f && git add f && git commit -qm one && git log --oneline | wc -l
cd /data
tar czf /data/r.tgz -C /data repo py2.txt
curl -s -o /data/dl http://10.78.0.1:9000/x
cat /data/dl"#;
    let (ats, calls, printed, outside) = traced_run(&env, &ns, "deb", 2, script);
    assert!(server.wait_with_output().unwrap().status.success());
    assert_eq!(
        printed, "hello FROM python!\n2\n1\nfrom-server\n",
        "what the programs printed"
    );
    let data = env.home().join("persist/deb/data");
    assert!(data.join("repo/.git/config").exists());
    assert!(std::fs::metadata(data.join("r.tgz")).unwrap().len() > 1000);

    let pids = ve_pids(&ats);
    assert!(pids.len() >= 10, "{pids:?}");
    let (want, left_out, integrity) = expected(&calls, &pids, &outside);
    assert_eq!(integrity_records(&ats), integrity);
    let mut by_op: std::collections::BTreeMap<&str, usize> = Default::default();
    for w in &want {
        *by_op.entry(w.1.as_str()).or_default() += 1;
    }
    eprintln!(
        "ground truth (Debian): {} transactions of {} processes compared ({by_op:?}), {} \
         calls on template files, devices without data and kernel views left out",
        want.len(),
        pids.len(),
        left_out
    );
    compare(&want, recorded(&ats, &pids), false);
    // What the programs did, so that the comparison above compared something.
    let has = |op: &str, var: &str| want.iter().any(|w| w.1 == op && w.2 == var);
    for (op, var) in [
        ("rename", "file:/data/py2.txt"),
        ("write", "file:/data/py2.txt"),
        ("truncate", "file:/data/py2.txt"),
        ("rename", "file:/data/repo/.git/config"),
        ("mmap", "file:/data/repo/.git/config"),
        ("unlink", "file:/data/db.sqlite-journal"),
        ("write", "file:/data/r.tgz"),
        ("connect", "endpoint:10.78.0.1:9000"),
        ("recv", "endpoint:10.78.0.1:9000"),
        ("write", "file:/data/dl"),
        ("exec", "file:/usr/bin/git"),
    ] {
        assert!(has(op, var), "{op} {var}: {want:#?}");
    }
    assert!(
        want.iter()
            .any(|w| w.1 == "link" && w.2.starts_with("file:/data/repo/.git/objects/")),
        "git's objects, linked from their temporary names"
    );
    assert!(
        want.iter()
            .any(|w| w.1 == "write" && w.2 == "file:/data/py2.txt" && w.3 == Some(17) && w.4 == 1),
        "the pwrite at 17"
    );
    assert!(
        want.iter().any(|w| w.1 == "open" && w.4 < 0),
        "failed lookups in persistent storage"
    );
    assert!(
        want.iter()
            .any(|w| w.1 == "connect" && w.4 == -i64::from(libc::EINPROGRESS)),
        "curl's non-blocking connect"
    );
    // One variable per file: what python wrote as py.txt is the file it renamed and wrote
    // again; git's config written as config.lock is the config read later; two files that
    // never shared a name are two variables.
    let id = |op: &str, name: &str| -> Vec<String> {
        ats.iter()
            .filter(|a| a["op"] == op)
            .filter_map(|a| {
                if a["src"] == name {
                    a["src_id"].as_str()
                } else if a["dst"] == name {
                    a["dst_id"].as_str()
                } else {
                    None
                }
            })
            .map(String::from)
            .collect()
    };
    let py = id("write", "file:/data/py.txt");
    assert_eq!(py.len(), 1, "{py:?}");
    assert!(id("write", "file:/data/py2.txt")
        .iter()
        .all(|i| *i == py[0]));
    assert!(id("rename", "file:/data/py2.txt").contains(&py[0]));
    let configs = id("mmap", "file:/data/repo/.git/config");
    assert!(!configs.is_empty());
    let lock_writes = id("write", "file:/data/repo/.git/config.lock");
    assert!(
        configs.iter().all(|c| lock_writes.contains(c)),
        "config {configs:?} was written as config.lock {lock_writes:?}"
    );
    let dl = id("write", "file:/data/dl");
    assert_eq!(dl.len(), 1);
    assert!(!id("write", "file:/data/db.sqlite-journal").contains(&dl[0]));
    assert!(left_out > 50, "the programs' libraries");
    env.assert_clean();
}
