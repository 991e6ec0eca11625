//! Ground truth: a scripted program runs in a VE while `strace -f` traces `jcs run` from
//! outside (strace cannot run inside a VE: seccomp denies ptrace there). Every interaction
//! system call strace saw in the VE's processes must be exactly one atomic transaction of that
//! VE, with the same file or endpoint, offset and length, and no transaction may be left over;
//! reads of template files, pipe traffic and the VE init's own calls must not appear. The
//! script writes a persistent file in three chunks, reads template files, appends to a file
//! in the dirties and copies it, exchanges bytes with a TCP server in a namespace the test
//! created, and forks and execs. It runs in the very VE that is recorded, so strace's pids
//! are the recorded pids.

mod common;

use common::{Env, NetNs};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::rc::Rc;

/// One system call as strace printed it: `PID name(args) = ret[<fd target>]`.
#[derive(Debug, Clone)]
struct Call {
    pid: u32,
    name: String,
    args: String,
    ret: i64,
    /// The `<...>` strace (`-yy`) printed after a returned descriptor.
    ret_target: Option<String>,
}

/// Parses strace -f output, joining `<unfinished ...>` with its `<... resumed>`.
fn parse(trace: &str) -> Vec<Call> {
    let mut pending: HashMap<u32, String> = HashMap::new();
    let mut calls = vec![];
    for line in trace.lines() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let rest = rest.trim_start();
        let full = if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
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
            .and_then(|t| t.rfind('>').map(|e| strip_dev(&t[..e])));
        calls.push(Call {
            pid,
            name,
            args,
            ret,
            ret_target,
        });
    }
    calls
}

/// The descriptor target strace (`-yy`) printed in argument `i`: `3</data/out>`.
fn fd_arg(args: &str, i: usize) -> Option<(i32, String)> {
    let mut depth = 0;
    let mut start = 0;
    let mut n = 0;
    for (k, c) in args.char_indices() {
        match c {
            '<' | '{' | '[' | '(' => depth += 1,
            '>' | '}' | ']' | ')' => depth -= 1,
            ',' if depth == 0 => {
                if n == i {
                    break;
                }
                n += 1;
                start = k + 1;
            }
            _ => {}
        }
    }
    if n != i {
        return None;
    }
    let a = args[start..].trim_start();
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

/// The first quoted string of the arguments.
fn quoted(args: &str) -> Option<String> {
    let a = args.find('"')?;
    let b = args[a + 1..].find('"')?;
    Some(args[a + 1..a + 1 + b].to_string())
}

/// The variable a descriptor target names, as `jcs log --json` spells it (a pipe as
/// `pipe:[INODE]`, see `recorded`); None for what never crosses the VE's boundary (a pipe
/// other than the caller's, `outside`: the VE made it). strace cannot name the ends of a socket in another network namespace
/// (`TCP:[inode]`): `sockets` maps those to the endpoint they connected to.
fn var_of(
    target: &str,
    sockets: &HashMap<String, String>,
    outside: &HashSet<String>,
) -> Option<String> {
    if target.starts_with("pipe:") {
        return outside.contains(target).then(|| target.to_string());
    }
    if let Some(t) = target
        .strip_prefix("TCP:[")
        .or(target.strip_prefix("UDP:["))
    {
        if let Some(ep) = sockets.get(target) {
            return Some(ep.clone());
        }
        let remote = t.trim_end_matches(']').split("->").nth(1)?;
        return Some(format!("endpoint:{remote}"));
    }
    Some(format!("file:{target}"))
}

/// An open file description, shared by dup'd descriptors and across fork.
#[derive(Debug)]
struct Desc {
    /// None: opened before the trace (the inherited stdio): offset unknown.
    pos: Option<u64>,
    append: bool,
}

/// The offset to compare: sockets have none (0); devices do not move their position.
fn checked(target: &str, off: Option<u64>, socket: bool) -> Option<u64> {
    if socket {
        Some(0)
    } else if target.starts_with("/dev/") {
        None
    } else {
        off
    }
}

type Fds = HashMap<i32, Rc<RefCell<Desc>>>;

/// A transaction both sides can name: (pid, op, variable, offset (None = not checked), length
/// or result).
type Key = (u32, String, String, Option<u64>, i64);

/// What strace's calls of processes `pids` must have produced, and the template reads that
/// must not appear.
fn expected(calls: &[Call], pids: &[u32], outside: &HashSet<String>) -> (Vec<Key>, usize) {
    let mut tables: HashMap<u32, Fds> = HashMap::new();
    let mut sizes: HashMap<String, u64> = HashMap::new();
    let mut want = vec![];
    let mut sockets: HashMap<String, String> = HashMap::new();
    let mut left_out = 0;
    let template = |t: &str| t.starts_with("/etc/") || t.starts_with("/bin/");
    // Devices without data and the kernel's views: nothing crosses the VE's boundary (the
    // script opens /proc and /sys only for reading, so every call on them is left out).
    let inert = |t: &str| {
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
    };
    for c in calls {
        if !pids.contains(&c.pid) {
            continue;
        }
        let fds = tables.entry(c.pid).or_default();
        // The data moved at the description's offset (or the end of an O_APPEND file).
        let mut move_bytes = |fds: &mut Fds, fd: i32, target: &str, n: i64, write: bool| {
            let d = fds.get(&fd).cloned();
            let mut off = None;
            if let Some(d) = &d {
                let mut d = d.borrow_mut();
                if write && d.append {
                    d.pos = sizes.get(target).copied();
                }
                off = d.pos;
                if let Some(p) = &mut d.pos {
                    *p += n.max(0) as u64;
                    if write {
                        let s = sizes.entry(target.to_string()).or_default();
                        *s = (*s).max(*p);
                    }
                }
            }
            off
        };
        match c.name.as_str() {
            "openat" | "open" => {
                let path = quoted(&c.args).unwrap_or_default();
                let path = c.ret_target.clone().filter(|_| c.ret >= 0).unwrap_or(path);
                if c.ret >= 0 && (template(&path) || inert(&path)) {
                    // Opening a template file moves no data: counted, not recorded.
                    left_out += 1;
                    fds.remove(&(c.ret as i32));
                    continue;
                }
                want.push((c.pid, "open".into(), format!("file:{path}"), None, c.ret));
                if c.ret >= 0 {
                    if c.args.contains("O_TRUNC") {
                        sizes.insert(path.clone(), 0);
                    }
                    fds.insert(
                        c.ret as i32,
                        Rc::new(RefCell::new(Desc {
                            pos: Some(0),
                            append: c.args.contains("O_APPEND"),
                        })),
                    );
                }
            }
            "dup2" | "dup3" | "fcntl" if c.ret >= 0 => {
                let dup = c.name != "fcntl" || c.args.contains("F_DUPFD");
                if let (true, Some((old, _))) = (dup, fd_arg(&c.args, 0)) {
                    if let Some(d) = fds.get(&old).cloned() {
                        fds.insert(c.ret as i32, d);
                    } else {
                        fds.remove(&(c.ret as i32));
                    }
                }
            }
            "close" => {
                if let Some((fd, t)) = fd_arg(&c.args, 0) {
                    fds.remove(&fd);
                    if template(&t) || inert(&t) {
                        left_out += 1;
                        continue;
                    }
                    if let Some(v) = var_of(&t, &sockets, outside) {
                        want.push((c.pid, "close".into(), v, None, c.ret));
                    }
                }
            }
            "read" | "write" | "recvfrom" | "sendto" | "recvmsg" | "sendmsg" => {
                let Some((fd, t)) = fd_arg(&c.args, 0) else {
                    continue;
                };
                let write = matches!(c.name.as_str(), "write" | "sendto" | "sendmsg");
                let off = move_bytes(fds, fd, &t, c.ret, write);
                let Some(v) = var_of(&t, &sockets, outside) else {
                    continue;
                };
                if (!write && template(&t)) || inert(&t) {
                    left_out += 1;
                    continue;
                }
                let socket = v.starts_with("endpoint:");
                let op = match (write, socket) {
                    (true, true) => "send",
                    (true, false) => "write",
                    (false, true) => "recv",
                    (false, false) => "read",
                };
                want.push((c.pid, op.into(), v, checked(&t, off, socket), c.ret.max(0)));
            }
            "sendfile" => {
                let (Some((ofd, ot)), Some((ifd, it))) = (fd_arg(&c.args, 0), fd_arg(&c.args, 1))
                else {
                    continue;
                };
                let ioff = move_bytes(fds, ifd, &it, c.ret, false);
                let ooff = move_bytes(fds, ofd, &ot, c.ret, true);
                if template(&it) || inert(&it) {
                    left_out += 1;
                } else if let Some(v) = var_of(&it, &sockets, outside) {
                    want.push((
                        c.pid,
                        "read".into(),
                        v,
                        checked(&it, ioff, false),
                        c.ret.max(0),
                    ));
                }
                if inert(&ot) {
                    left_out += 1;
                } else if let Some(v) = var_of(&ot, &sockets, outside) {
                    want.push((
                        c.pid,
                        "write".into(),
                        v,
                        checked(&ot, ooff, false),
                        c.ret.max(0),
                    ));
                }
            }
            "connect" => {
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
                let ep = format!("endpoint:{addr}:{port}");
                if let Some((_, t)) = fd_arg(&c.args, 0) {
                    sockets.insert(t, ep.clone());
                }
                want.push((c.pid, "connect".into(), ep, None, c.ret));
            }
            "execve" if c.ret == 0 => {
                let path = quoted(&c.args).unwrap_or_default();
                want.push((c.pid, "exec".into(), format!("file:{path}"), None, 0));
            }
            "clone" | "clone3" | "fork" | "vfork" if c.ret > 0 => {
                // The child starts with the parent's descriptions.
                let t: Fds = fds.iter().map(|(k, v)| (*k, v.clone())).collect();
                tables.insert(c.ret as u32, t);
            }
            _ => {}
        }
    }
    (want, left_out)
}

/// The VE's transactions of the kinds strace can name, as [`Key`]s.
fn recorded(ats: &[serde_json::Value]) -> Vec<Key> {
    ats.iter()
        .filter_map(|a| {
            let op = a["op"].as_str()?.to_string();
            let var = match op.as_str() {
                "open" | "read" | "recv" | "close" | "exec" => a["src"].as_str()?,
                "write" | "send" | "connect" => a["dst"].as_str()?,
                _ => return None,
            }
            .to_string();
            // A file known only by identity, in this script a pipe: file:[DEV:INO:GEN], which
            // strace names pipe:[INO].
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
            let pid = a["pid"].as_u64()? as u32;
            let off = a["off"].as_u64();
            let n = match op.as_str() {
                "read" | "write" | "send" | "recv" => a["len"].as_i64()?,
                _ => a["result"].as_i64()?,
            };
            Some((pid, op, var, off, n))
        })
        .collect()
}

#[test]
fn root_every_interaction_strace_sees_is_one_transaction() {
    let Some(env) = Env::new() else { return };
    let ns = NetNs::new();
    env.bridge_app("gt");
    let in_ns = |prog: &str, args: &[&str]| {
        let mut c = ns.cmd(prog, args);
        c.env("JCS_HOME", env.home())
            .env("JCS_BRIDGE_CIDR", "10.78.0.0/24")
            .stdin(Stdio::null());
        c
    };
    // Start the daemon and the bridge first: neither may be a child of the traced command.
    let o = in_ns(common::jcs_bin(), &["run", "gt", "--", "true"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A TCP server on the host side of the bridge, in the test's namespace.
    let server = in_ns(
        "sh",
        &["-c", "echo from-server | busybox nc -l -p 9000 > /dev/null"],
    )
    .spawn()
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let script = "dd if=/dev/zero of=/data/out bs=100 count=3 2>/dev/null; \
                  md5sum /etc/passwd > /dev/null; cat /etc/group > /dev/null; \
                  echo one > /tmp/f; echo two >> /tmp/f; echo three >> /tmp/f; cat /tmp/f > /data/copy; \
                  echo hello | nc 10.78.0.1 9000 > /data/reply; \
                  sh -c 'exec cat /data/reply' > /dev/null";
    let trace = env.home().join("strace.out");
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
    let traced = [
        "openat,open,read,write,close,dup2,dup3,fcntl,sendfile,connect,sendto,recvfrom,",
        "sendmsg,recvmsg,execve,clone,clone3,fork,vfork",
    ]
    .concat();
    let o = in_ns(
        "timeout",
        &[
            "60",
            "strace",
            "-f",
            "-qq",
            "-yy",
            "--decode-pids=pidns",
            "-s",
            "0",
            "-e",
            &format!("trace={traced}"),
            "-e",
            "signal=none",
            "-o",
            trace.to_str().unwrap(),
            common::jcs_bin(),
            "run",
            "gt",
            "--",
            "/bin/sh",
            "-c",
            script,
        ],
    )
    // stdout and stderr: one pipe the test made, whose inode it knows: the caller's pipe,
    // which the VE's writes to its stdout cross into.
    .stdout(out_w.try_clone().unwrap())
    .stderr(out_w)
    .output()
    .unwrap();
    let mut printed = String::new();
    std::io::Read::read_to_string(&mut out_r, &mut printed).unwrap();
    assert!(o.status.success(), "{printed}");
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

    let log = env.ok(&["log", "--ve", "2", "--json"]);
    let ats: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The VE's processes: the children of its forks (the init, JCS's own code, is excluded).
    let pids: Vec<u32> = ats
        .iter()
        .filter(|a| a["op"] == "fork")
        .map(|a| a["result"].as_u64().unwrap() as u32)
        .collect();
    assert!(pids.len() >= 6, "{pids:?}");
    let calls = parse(&std::fs::read_to_string(&trace).unwrap());
    let (want, left_out) = expected(&calls, &pids, &outside);
    let mut have = recorded(&ats);
    eprintln!(
        "ground truth: {} system calls of {} processes compared, {} calls on template files, \
         devices without data and kernel views left out",
        want.len(),
        pids.len(),
        left_out
    );

    let mut missing = vec![];
    for w in &want {
        let i = have.iter().position(|h| {
            // An exec is of the file the kernel ran, labelled by the first path it was seen
            // by: /bin/sh, /proc/self/exe and /bin/busybox are one file (busybox).
            let same_var = h.2 == w.2 || (w.1 == "exec" && h.2.starts_with("file:"));
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
    // What the script is made of, so that the comparison above compared something.
    let has = |op: &str, var: &str, off: Option<u64>, n: i64| {
        want.iter()
            .any(|w| w.1 == op && w.2 == var && w.4 == n && (off.is_none() || w.3 == off))
    };
    for off in [0, 100, 200] {
        assert!(has("write", "file:/data/out", Some(off), 100), "{want:#?}");
    }
    assert!(has("write", "file:/tmp/f", Some(4), 4), "{want:#?}");
    assert!(has("write", "file:/tmp/f", Some(8), 6), "{want:#?}");
    assert!(has("read", "file:/tmp/f", Some(0), 14), "{want:#?}");
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
    // Template opens, reads and closes are absent from the journal, and counted.
    assert!(left_out >= 2, "{calls:#?}");
    assert!(!ats.iter().any(
        |a| ["read", "open", "close"].contains(&a["op"].as_str().unwrap())
            && a["src"].as_str().unwrap().starts_with("file:/etc/")
    ));
    let st = env.json(&["stats", "--ve", "2", "--json"]);
    let dropped = st["ves"][0]["dropped_by_name"].clone();
    let n: u64 = ["read", "sendfile", "openat", "open", "close"]
        .iter()
        .map(|c| dropped[c].as_u64().unwrap_or(0))
        .sum();
    assert!(n >= left_out as u64, "{st}");
    env.assert_clean();
}
