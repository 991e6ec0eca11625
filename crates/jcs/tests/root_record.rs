//! Recording: a VE's interactions reach the journal through the daemon's eBPF monitor, and
//! `jcs log` shows them as transactions on variables.

mod common;

use common::{wait_for, Env};

/// Calls of VE `ve` that classification dropped, by system call name (`jcs stats`).
fn dropped(env: &Env, ve: u64) -> serde_json::Value {
    let st = env.json(&["stats", "--ve", &ve.to_string(), "--json"]);
    st["ves"][0]["dropped_by_name"].clone()
}

/// Their sum over `names` (0 for a call not dropped).
fn sum(dropped: &serde_json::Value, names: &[&str]) -> u64 {
    names
        .iter()
        .map(|n| dropped[*n].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn root_writes_in_three_chunks_are_three_transactions() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.sh_ok("dd if=/dev/zero of=/data/chunks bs=100 count=3 2>/dev/null");
    let ats = env.log(1);
    let writes: Vec<&serde_json::Value> = ats
        .iter()
        .filter(|a| a["op"] == "write" && a["dst"] == "file:/data/chunks")
        .collect();
    let ranges: Vec<(u64, u64)> = writes
        .iter()
        .map(|a| (a["off"].as_u64().unwrap(), a["len"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        ranges,
        vec![(0, 100), (100, 100), (200, 100)],
        "{writes:#?}"
    );
    assert!(writes
        .iter()
        .all(|a| a["src"] == "ve:1" && a["status"] == "committed"));
    // The app's exec is recorded: the monitor watched the cgroup before the first exec.
    assert!(
        ats.iter()
            .any(|a| a["op"] == "exec" && a["src"] == "file:/bin/sh"),
        "{ats:#?}"
    );
    // Every transaction belongs to VE 1's processes; the daemon and this test are not in it.
    let daemon = u64::try_from(env.daemon_pid().unwrap()).unwrap();
    assert!(ats
        .iter()
        .all(|a| a["ve"] == 1 && a["pid"] != daemon && a["pid"] != u64::from(std::process::id())));
    // A second VE is recorded under its own id; the journal verifies.
    // (md5sum reads with read(2); busybox cat would use sendfile.)
    env.sh_ok("md5sum /data/chunks > /dev/null");
    let reads: Vec<serde_json::Value> = env
        .log(2)
        .into_iter()
        .filter(|a| a["op"] == "read" && a["src"] == "file:/data/chunks")
        .collect();
    assert_eq!(
        reads
            .iter()
            .map(|a| a["result"].as_i64().unwrap())
            .sum::<i64>(),
        300
    );
    // The kernel's counters reached the journal: VE 1 entered many more system calls than
    // were recorded, lost none; the journal reports its bytes per transaction.
    let st = env.json(&["stats", "--ve", "1", "--json"]);
    let s1 = &st["ves"][0];
    assert_eq!(s1["ve"], 1);
    assert!(s1["by_op"]["write"].as_u64().unwrap() >= 3, "{st}");
    assert!(
        s1["syscalls_seen"].as_u64().unwrap() > s1["transactions"].as_u64().unwrap(),
        "{st}"
    );
    assert!(
        s1["syscalls_by_name"]["write"].as_u64().unwrap() >= 3,
        "{st}"
    );
    assert_eq!(s1["records_lost"], 0);
    assert!(st["journal_bytes_per_transaction"].as_f64().unwrap() > 0.0);
    let v = env.json(&["verify", "--json"]);
    assert!(
        v["first_problem"].is_null() && v["records"].as_u64().unwrap() >= 2,
        "{v}"
    );
    env.assert_clean();
}

/// The daemon's bpf links (`anon_inode:bpf_link` descriptors).
fn bpf_links(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
        .filter(|t| t.to_string_lossy() == "anon_inode:bpf_link")
        .count()
}

/// The tracing programs are attached only while a VE is watched (and for a second after the
/// last one, so that VEs started back to back do not pay the attach each): an idle daemon
/// costs the host's system calls nothing. (Control: while a VE runs, its five links are
/// there, and the VE is recorded.)
#[test]
fn root_an_idle_daemon_has_no_programs_attached() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.sh_ok("true");
    let pid = env.daemon_pid().expect("a daemon");
    let detached = || common::wait_for(5, || bpf_links(pid) == 0);
    assert!(
        detached(),
        "idle: nothing attached ({} links)",
        bpf_links(pid)
    );
    let child = env.spawn_until_go("echo up > /data/up-file", "echo done > /data/after");
    assert!(bpf_links(pid) >= 5, "a VE runs: {} links", bpf_links(pid));
    // While VEs are watched, the datagram program also sits on the empty `jcs/monitor`
    // cgroup (so that each VE's attach and detach does not make the kernel patch its code).
    let keep = common::cgroup2_root().join("jcs/monitor");
    let ingress = || ve::bpf::attached_names(std::fs::File::open(&keep).unwrap(), 0).unwrap();
    // (Other tests' daemons may have theirs there too: each test has a host daemon.)
    assert!(
        ingress().contains(&"jcs_ingress".to_string()),
        "{:?}",
        ingress()
    );
    assert_eq!(
        bpf_links(pid),
        7,
        "tracing 5, the VE's ingress, the kept ingress"
    );
    assert_eq!(
        std::fs::read_to_string(keep.join("cgroup.procs")).unwrap(),
        ""
    );
    env.go();
    assert!(child.wait_with_output().unwrap().status.success());
    // Still attached right after (the linger), then detached.
    let t = std::time::Instant::now();
    assert!(detached(), "idle again ({} links)", bpf_links(pid));
    // (Idle, the daemon holds no link at all: the kept ingress went with the tracing ones.)
    eprintln!("detached {} ms after the VE ended", t.elapsed().as_millis());
    // The VE that ran while they were attached is recorded.
    let log = env.log(2);
    assert!(
        log.iter()
            .any(|e| e["op"] == "write" && e["dst"].as_str().unwrap_or("").contains("/data/after")),
        "{log:?}"
    );
    // Idle, its monitor thread wakes about once a second, not every 10 ms as while a VE
    // runs (the control: the same count over a VE's run).
    let idle = monitor_wakeups(pid, || {
        std::thread::sleep(std::time::Duration::from_secs(3))
    });
    assert!(idle <= 10, "{idle} wake-ups in 3 s idle");
    let busy = monitor_wakeups(pid, || {
        env.sh_ok("sleep 1");
    });
    assert!(busy >= 50, "{busy} wake-ups over a VE's second");
    env.assert_clean();
}

/// How many times the daemon's monitor thread was switched out (it waits for work) while
/// `during` ran.
fn monitor_wakeups(pid: i32, during: impl FnOnce()) -> u64 {
    let status = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .find(|t| {
            std::fs::read_to_string(t.path().join("comm")).unwrap_or_default() == "jcs-monitor\n"
        })
        .expect("the daemon's monitor thread")
        .path()
        .join("status");
    let switches = || {
        std::fs::read_to_string(&status)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .map(|n| n.trim().parse::<u64>().unwrap())
            .unwrap()
    };
    let before = switches();
    during();
    switches() - before
}

/// The nice value of each of process `pid`'s threads, by thread name.
fn thread_nice(pid: i32) -> Vec<(String, i64)> {
    let mut v = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // comm is in parentheses and may hold spaces: the fields after its ')' are 3, 4, ...
        let Some((head, tail)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map(|x| x.1).unwrap_or("").to_string();
        let nice = tail.split_whitespace().nth(16).and_then(|n| n.parse().ok());
        if let Some(n) = nice {
            v.push((comm, n));
        }
    }
    v
}

#[test]
fn root_the_recorder_drains_ahead_of_the_ves() {
    // The monitor and journal threads run at nice -10: with more busy VEs than CPUs, the
    // recorder at the VEs' priority could not drain what they sent (bench/monitor.sh).
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.sh_ok("true");
    let pid = env.daemon_pid().expect("a daemon");
    let nice = thread_nice(pid);
    for name in ["jcs-monitor", "jcs-journal"] {
        let n = nice.iter().find(|(c, _)| c == name).map(|x| x.1);
        assert_eq!(n, Some(-10), "{name}: {nice:?}");
    }
    // The VEs keep the default (field 19 of a process's stat is its nice value).
    env.sh_ok("awk '{print $19}' /proc/self/stat > /data/nice");
    let ve = std::fs::read_to_string(env.home().join("persist/web/data/nice")).unwrap();
    assert_eq!(ve.trim(), "0", "a VE's process");
    env.assert_clean();
}

#[test]
fn root_monitor_can_be_turned_off() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let o = env
        .cmd(&["run", "web", "--", "true"])
        .env("JCS_MONITOR", "off")
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(
        !env.home().join("daemon.pid").exists(),
        "no daemon was started"
    );
    assert_eq!(env.ok(&["log"]), "");
    env.assert_clean();
}

#[test]
fn root_killed_daemon_loses_nothing_acknowledged() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    // VE 1 completes: everything it did was acknowledged before jcs run returned.
    env.sh_ok("dd if=/dev/zero of=/data/one bs=100 count=5 2>/dev/null");
    let before = env.log(1);
    assert!(
        before
            .iter()
            .filter(|a| a["op"] == "write" && a["dst"] == "file:/data/one")
            .count()
            == 5
    );
    // VE 2 writes as fast as it can; the daemon is killed -9 in the middle.
    let c = env
        .cmd(&[
            "run",
            "web",
            "--",
            "/bin/sh",
            "-c",
            "touch /data/up; while [ ! -e /data/stop ]; do echo x >> /data/fast; done",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let up = env.home().join("persist/web/data/up");
    assert!(common::wait_for(10, || up.exists()));
    std::thread::sleep(std::time::Duration::from_millis(100));
    env.kill_daemon();
    std::fs::write(env.home().join("persist/web/data/stop"), "").unwrap();
    let o = c.wait_with_output().unwrap();
    // jcs run says the recording of VE 2 is incomplete (its final flush could not happen),
    // with its own exit code.
    assert_eq!(o.status.code(), Some(122));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("recording is incomplete"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A new VE starts a new daemon, which recovers the journal.
    env.sh_ok("echo three > /data/three");
    let v = env.json(&["verify", "--json"]);
    assert!(v["first_problem"].is_null(), "{v}");
    // Everything acknowledged before the kill is still there, unchanged.
    assert_eq!(env.log(1), before);
    assert!(env
        .log(3)
        .iter()
        .any(|a| a["op"] == "write" && a["dst"] == "file:/data/three"));
    env.assert_clean();
}

#[test]
fn root_file_changes_and_connections_are_transactions() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    // Changes to files by path (some relative to the working directory), and a TCP
    // connection to a listener in the VE itself, over its own loopback: that never leaves
    // the VE, so it is counted, not recorded. (The listener's stdin stays open a while: at
    // its end busybox nc would close the connection, maybe before "hi" arrived.)
    env.sh_ok(
        "cd /data && mkdir d && echo x > /data/d/f && mv d/f /data/d/g && chmod 600 /data/d/g && \
         truncate -s 0 /data/d/g && ln -s /etc/hostname d/l && rm d/l && rm /data/d/g && rmdir /data/d && \
         (sleep 1 | nc -l -p 9000 127.0.0.1 > /data/got) & l=$!; \
         for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do \
           sleep 0.1; echo hi | nc 127.0.0.1 9000 && break; done; wait $l",
    );
    let ats = env.log(1);
    let has = |op: &str, var: &str| {
        ats.iter()
            .any(|a| a["op"] == op && (a["dst"] == var || a["src"] == var))
    };
    assert!(has("mkdir", "file:/data/d"), "{ats:#?}");
    // One file, one variable: the rename changes its name (the log prints each transaction
    // with the name the file had then), and what is done to it by its new name lands on the
    // same variable.
    assert!(
        ats.iter()
            .any(|a| a["op"] == "rename" && a["src"] == "ve:1" && a["dst"] == "file:/data/d/g"),
        "{ats:#?}"
    );
    assert!(has("symlink", "file:/data/d/l"), "{ats:#?}");
    assert!(has("unlink", "file:/data/d/l"), "{ats:#?}");
    for op in ["chmod", "truncate", "unlink"] {
        assert!(has(op, "file:/data/d/g"), "{op}: {ats:#?}");
    }
    let ids: std::collections::HashSet<&str> = ats
        .iter()
        .filter(|a| a["dst"] == "file:/data/d/f" || a["dst"] == "file:/data/d/g")
        .filter_map(|a| a["dst_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 1, "one variable for both names: {ats:#?}");
    assert!(has("write", "file:/data/d/f"), "{ats:#?}");
    assert!(has("rmdir", "file:/data/d"));
    assert_eq!(
        std::fs::read_to_string(env.home().join("persist/web/data/got")).unwrap(),
        "hi\n"
    );
    assert!(
        !ats.iter()
            .any(|a| ["connect", "accept", "send", "recv", "bind", "listen"]
                .contains(&a["op"].as_str().unwrap())),
        "loopback traffic stays inside the VE: {ats:#?}"
    );
    let d = dropped(&env, 1);
    for call in ["connect", "bind", "accept", "listen"] {
        assert!(sum(&d, &[call]) >= 1, "{call}: {d}");
    }
    env.assert_clean();
}

#[test]
fn root_template_reads_are_counted_not_recorded() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.sh_ok("md5sum /etc/passwd > /dev/null; echo x > /tmp/t; md5sum /tmp/t > /dev/null; echo y > /data/p; md5sum /data/p > /dev/null; echo z | md5sum > /data/sum");
    let ats = env.log(1);
    let reads = |path: &str| {
        ats.iter()
            .filter(|a| a["op"] == "read" && a["src"] == path)
            .count()
    };
    // /etc/passwd exists only in the template: pristine, its reads are dropped in the kernel.
    assert_eq!(reads("file:/etc/passwd"), 0, "{ats:#?}");
    // So are the reads back of a file the VE wrote into its dirties (what it reads came from
    // its own memory; its writes are an integrity record); a persistent file's are recorded.
    assert_eq!(reads("file:/tmp/t"), 0, "{ats:#?}");
    assert!(
        ats.iter()
            .any(|a| a["summary"] == "integrity" && a["dst"] == "file:/tmp/t"),
        "{ats:#?}"
    );
    assert!(reads("file:/data/p") >= 1, "{ats:#?}");
    // A pipe between processes of the VE never crosses its boundary: no read of it recorded.
    let other_reads: Vec<&serde_json::Value> = ats
        .iter()
        .filter(|a| a["op"] == "read" && a["src"] != "file:/tmp/t" && a["src"] != "file:/data/p")
        .collect();
    assert!(other_reads.is_empty(), "{other_reads:#?}");
    assert!(ats
        .iter()
        .any(|a| a["op"] == "write" && a["dst"] == "file:/data/sum"));
    // ... and the dropped reads are counted, by system call.
    let st = env.json(&["stats", "--ve", "1", "--json"]);
    let s1 = &st["ves"][0];
    assert!(
        s1["dropped_by_classification"].as_u64().unwrap() >= 1,
        "{st}"
    );
    assert!(s1["dropped_by_name"]["read"].as_u64().unwrap() >= 1, "{st}");
    env.assert_clean();
}

/// A process's own procfs entries are the VE's: writing /proc/PID/oom_score_adj (every
/// Chromium process does, four transactions each before) or /proc/self/comm is counted, not
/// recorded; a write to a persistent file in the same VE is (the control).
#[test]
fn root_a_processs_own_procfs_entries_are_inside() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.sh_ok(
        "echo 100 > /proc/self/oom_score_adj; echo 200 > /proc/$$/oom_score_adj; \
         printf jcs > /proc/self/comm; cat /proc/$$/oom_score_adj > /data/adj",
    );
    assert_eq!(
        std::fs::read_to_string(env.home().join("persist/web/data/adj")).unwrap(),
        "200\n",
        "the control: the writes reached the kernel"
    );
    let ats = env.log(1);
    let proc = common::with_an_end(&ats, "file:/proc/");
    assert!(proc.is_empty(), "{proc:#?}");
    assert!(
        ats.iter()
            .any(|a| a["op"] == "write" && a["dst"] == "file:/data/adj"),
        "{ats:#?}"
    );
    let st = env.json(&["stats", "--ve", "1", "--json"]);
    assert!(
        st["ves"][0]["dropped_by_name"]["write"].as_u64().unwrap() >= 3,
        "{st}"
    );
    env.assert_clean();
}

#[test]
fn root_log_filters() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.sh_ok("echo one > /data/one");
    env.sh_ok("echo two > /data/two");
    let lines = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut a = vec!["log", "--json"];
        a.extend_from_slice(args);
        env.ok(&a)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let all = lines(&[]);
    assert!(all.iter().any(|a| a["ve"] == 1) && all.iter().any(|a| a["ve"] == 2));
    let two = lines(&["--var", "file:/data/two"]);
    assert!(
        !two.is_empty()
            && two
                .iter()
                .all(|a| a["ve"] == 2
                    && (a["src"] == "file:/data/two" || a["dst"] == "file:/data/two")),
        "{two:#?}"
    );
    assert_eq!(lines(&["--app", "web"]).len(), all.len());
    assert!(lines(&["--app", "web", "--ve", "1"])
        .iter()
        .all(|a| a["ve"] == 1));
    // Time windows: everything is within the last hour, nothing is in the future.
    assert_eq!(lines(&["--since", "1h"]).len(), all.len());
    let later = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600)
        .to_string();
    assert!(lines(&["--since", &later]).is_empty());
    let e = env.fails(&["log", "--var", "disk:/x"]);
    assert!(e.contains("expected file:PATH"), "{e}");
    // By operation and by process.
    let writes = lines(&["--op", "write,open"]);
    assert!(
        !writes.is_empty()
            && writes
                .iter()
                .all(|a| a["op"] == "write" || a["op"] == "open"),
        "{writes:#?}"
    );
    assert!(writes.iter().any(|a| a["op"] == "write") && writes.iter().any(|a| a["op"] == "open"));
    let pid = writes[0]["pid"].as_u64().unwrap();
    let of_pid = lines(&["--pid", &pid.to_string()]);
    assert!(
        !of_pid.is_empty() && of_pid.iter().all(|a| a["pid"] == pid),
        "{of_pid:#?}"
    );
    assert!(of_pid.len() < all.len());
    let e = env.fails(&["log", "--op", "teleport"]);
    assert!(e.contains("not an operation") && e.contains("write"), "{e}");
    env.assert_clean();
}

/// The running daemon's indexes (made from the keys the journal's writer reports, reading
/// back only what it did not write) are, for every segment, sealed or open, the index a
/// whole read of the segment makes.
#[test]
fn root_the_running_daemons_indexes_equal_a_whole_read() {
    use journal::index::{self, SegmentIndex};
    use journal::Storage;
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let run = |script: &str| env.sh_ok_with(&[("JCS_SEGMENT_BYTES", "4096")], script);
    // Files made, written, read, renamed and removed, a pipe to the caller, names: records
    // of every kind the translator writes, over several segments.
    run("echo one > /data/a; i=0; while [ $i -lt 60 ]; do echo $i > /data/f$i; cat /data/a >> /data/f$i; usleep 10000; i=$((i+1)); done; mv /data/f1 /data/g1; rm /data/f2; cat /data/f3");
    run("cat /data/a > /data/b; echo x > /tmp/t");
    let dir = env.home().join("journal");
    let storage = journal::DirStorage::new(&dir).unwrap();
    let segs = journal::segment_numbers(&storage).unwrap();
    assert!(segs.len() >= 3, "{segs:?}");
    // The indexer runs every 5 s: until every segment has an index.
    assert!(
        common::wait_for(20, || segs
            .iter()
            .all(|&s| index::load_prefix(&storage, s).is_some())),
        "not every segment got an index: {:?}",
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    );
    let mut blocks = 0;
    for &seg in &segs {
        let idx = index::load_prefix(&storage, seg).unwrap();
        let bytes = storage.read(&journal::journal::segment_name(seg)).unwrap();
        let whole =
            SegmentIndex::build_prefix(seg, &bytes[..idx.seg_len as usize], record::keys_of)
                .unwrap();
        blocks += idx.blocks.len();
        assert_eq!(idx, whole, "segment {seg}");
    }
    // (The last segment may hold a block or two: the others are full.)
    assert!(
        blocks >= 2 * (segs.len() - 1),
        "{blocks} blocks in {segs:?}"
    );
    env.assert_clean();
}

#[test]
fn root_sealed_segments_are_indexed_and_queries_read_only_their_blocks() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    // Small segments, so that a few VEs fill several.
    let run = |script: &str| env.sh_ok_with(&[("JCS_SEGMENT_BYTES", "4096")], script);
    run("echo one > /data/a");
    // VE 2 alone fills whole segments (distinct files, paced so that they make many blocks).
    run("i=0; while [ $i -lt 100 ]; do echo $i > /tmp/f$i; usleep 20000; i=$((i+1)); done");
    run("cat /data/a > /data/b");
    let full: Vec<serde_json::Value> = env
        .ok(&["log", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // A restarted daemon indexes every sealed segment before it records anything.
    let segs_before = std::fs::read_dir(env.home().join("journal"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".seg")
        })
        .count();
    env.stop_daemon();
    run("true");
    let dir = env.home().join("journal");
    let count = |ext: &str| {
        std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(ext)
            })
            .count()
    };
    let (segs, idxs) = (count(".seg"), count(".idx"));
    assert!(segs >= 4, "{segs} segments");
    // Every segment sealed before the restart has an index, the open one too (what `true`
    // itself filled since may not, yet: the indexer runs every few seconds).
    assert!(
        idxs >= segs_before - 1 && idxs <= segs,
        "{idxs} indexes, {segs_before} → {segs} segments"
    );
    // Answers through the indexes equal the full listing, filtered.
    let by = |args: &[&str]| -> Vec<serde_json::Value> {
        env.ok(&[&["log", "--json"], args].concat())
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let of_ve = |ve: u64| -> Vec<serde_json::Value> {
        full.iter().filter(|a| a["ve"] == ve).cloned().collect()
    };
    assert_eq!(by(&["--ve", "1"]), of_ve(1));
    assert_eq!(by(&["--ve", "3"]), of_ve(3));
    let on_a: Vec<serde_json::Value> = full
        .iter()
        .filter(|a| a["src"] == "file:/data/a" || a["dst"] == "file:/data/a")
        .cloned()
        .collect();
    assert!(on_a.len() >= 3, "{on_a:#?}");
    assert_eq!(by(&["--var", "file:/data/a"]), on_a);
    // The dictionary is in the catalog.
    let c = rusqlite::Connection::open(env.home().join("catalog.db")).unwrap();
    let n: i64 = c
        .query_row(
            "SELECT count(*) FROM vars WHERE name = 'file:/data/a'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(n >= 1);
    // Proof that an indexed query skips blocks: damage a block of a segment that holds only
    // VE 2's records. The full listing reads around the damage and warns (with --strict, it
    // fails); verify fails there; VE 1 and VE 3 still answer, from their blocks only.
    let seg = dir.join("0000000000000001.seg");
    let mut b = std::fs::read(&seg).unwrap();
    b[80 + 76 + 4] ^= 0xff; // the first block's payload
    std::fs::write(&seg, &b).unwrap();
    let o = env.jcs(&["log"]);
    assert!(o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("0000000000000001.seg skipped")
            || String::from_utf8_lossy(&o.stderr).contains("0000000000000001.seg bytes")
    );
    assert!(env
        .fails(&["log", "--strict"])
        .contains("0000000000000001.seg"));
    let o = env.jcs(&["verify", "--json"]);
    assert!(!o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["first_problem"]["segment"], "0000000000000001.seg", "{v}");
    assert_eq!(by(&["--ve", "1"]), of_ve(1));
    assert_eq!(by(&["--var", "file:/data/a"]), on_a);
    env.assert_clean();
}

/// VE `ve`'s transactions and where its gap of unknown length (a time no recorder recorded
/// it) is, checked to come before its write of `file` (made after the recorder came back).
fn gap_before_write(env: &Env, ve: u64, file: &str) -> (Vec<serde_json::Value>, usize) {
    let ats = env.log(ve);
    let gap = ats
        .iter()
        .position(|a| a["op"] == "gap" && a["result"] == -1)
        .unwrap_or_else(|| panic!("no gap: {ats:#?}"));
    let after = ats
        .iter()
        .position(|a| a["op"] == "write" && a["dst"] == file)
        .unwrap_or_else(|| panic!("the write after the restart is missing: {ats:#?}"));
    assert!(gap < after);
    (ats, gap)
}

#[test]
fn root_a_restarted_daemon_records_running_ves_again_after_a_gap() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    // VE 1 idles; its daemon is killed; VE 2 starts a new daemon while VE 1 still runs.
    let c = env.spawn_until_go("echo before > /data/before", "echo after > /data/after");
    // Its first write is durable (within the writer's linger time) before the kill.
    assert!(common::wait_for(5, || env
        .log(1)
        .iter()
        .any(|a| a["op"] == "write" && a["dst"] == "file:/data/before")));
    env.kill_daemon();
    env.sh_ok("true");
    env.go();
    let o = c.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(122), "{err}");
    assert!(err.contains("recording is incomplete"), "{err}");
    assert!(err.contains("recorded it again after a gap"), "{err}");
    let (ats, gap) = gap_before_write(&env, 1, "file:/data/after");
    // The gap's window: from VE 1's last record before the kill (its offset), less the second
    // for which the killed recorder may have held integrity records, to the restart.
    let before = ats
        .iter()
        .filter(|a| a["op"] != "gap")
        .take_while(|a| a["time_ns"].as_u64() <= ats[gap]["time_ns"].as_u64())
        .filter_map(|a| a["time_ns"].as_u64())
        .max()
        .unwrap()
        - 1_000_000_000;
    assert_eq!(ats[gap]["off"].as_u64(), Some(before), "{:#?}", ats[gap]);
    let answer = env.json(&["track", "back", "ve:1", "--json"]);
    assert!(
        answer["gaps"][0]["since_ns"].as_u64() == Some(before),
        "the answer says the window: {answer}"
    );
    assert!(ats
        .iter()
        .any(|a| a["op"] == "write" && a["dst"] == "file:/data/before"));
    // The VE's init (JCS's own code) is still excluded after the restart: no transaction but
    // its fork of the app and its exit comes from it. (Not "every pid was forked on record":
    // the shell's `sleep` children forked during the gap are unrecorded forks by design.)
    let init = &ats
        .iter()
        .find(|a| a["op"] == "fork")
        .unwrap_or_else(|| panic!("the init's fork of the app: {ats:#?}"))["pid"];
    for a in ats
        .iter()
        .filter(|a| !["fork", "exit", "gap"].contains(&a["op"].as_str().unwrap()))
    {
        assert_ne!(&a["pid"], init, "{a}");
    }
    env.assert_clean();
}

#[test]
fn root_a_daemon_of_another_jcs_build_is_replaced_when_idle_a_copy_is_not() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let run_with = |bin: &std::path::Path, script: &str| {
        let o = std::process::Command::new(bin)
            .args(["run", "web", "--", "/bin/sh", "-c", script])
            .env("JCS_HOME", env.home())
            .env("JCS_RUN_DIR", env.run_dir())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    // A copy of jcs at another path is the same build: its daemon is kept, both ways (the
    // two copies used to replace each other's daemon on every run).
    let copy = env.home().join("jcs-copy");
    std::fs::copy(common::jcs_bin(), &copy).unwrap();
    run_with(&copy, "true");
    let first = env.daemon_pid().unwrap();
    let err = run_with(std::path::Path::new(common::jcs_bin()), "true");
    assert!(!err.contains("restarting"), "{err}");
    assert_eq!(env.daemon_pid().unwrap(), first);
    // Another build (a rebuild or an upgrade: here, the copy with its build id changed).
    let bin = std::fs::read(common::jcs_bin()).unwrap();
    // The note: namesz 4, descsz 20, type 3 (NT_GNU_BUILD_ID), "GNU\0", then the id.
    let head = b"\x04\0\0\0\x14\0\0\0\x03\0\0\0GNU\0";
    let note = bin
        .windows(head.len())
        .position(|w| w == head)
        .expect("a GNU build id note");
    let mut other = bin.clone();
    other[note + head.len()] ^= 0xff;
    let old = env.home().join("jcs-old");
    std::fs::write(&old, &other).unwrap();
    std::fs::set_permissions(&old, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    env.stop_daemon();
    run_with(&old, "true");
    let first = env.daemon_pid().unwrap();
    let exe = std::fs::read_link(format!("/proc/{first}/exe")).unwrap();
    assert_eq!(exe, old);
    let err = run_with(std::path::Path::new(common::jcs_bin()), "echo x > /data/x");
    assert!(
        err.contains("runs another jcs build; restarting it"),
        "{err}"
    );
    assert_ne!(env.daemon_pid().unwrap(), first);
    assert!(env
        .log(4)
        .iter()
        .any(|a| a["op"] == "write" && a["dst"] == "file:/data/x"));
    env.assert_clean();
}

#[test]
fn root_online_summarization_writes_t1_summaries_with_the_same_answers() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let run = |script: &str| env.sh_ok_with(&[("JCS_SUMMARIZE", "online")], script);
    // Four reads of the same bytes with nothing written in between (cat sends into a pipe,
    // which stays inside the VE): merged into T1 summaries.
    run("echo data > /data/x; cat /data/x /data/x /data/x /data/x | wc -c > /data/sums");
    let lines: Vec<serde_json::Value> = env
        .ok(&["log", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // One summary, though the recorder's batches may fall between the reads: a summary stays
    // open from batch to batch (for up to a second).
    let reads: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["summary"] == "T1" && l["src"] == "file:/data/x" && l["dst"] == "ve:1")
        .collect();
    assert_eq!(reads.len(), 1, "{lines:#?}");
    assert_eq!(
        (reads[0]["count"].as_u64(), reads[0]["bytes"].as_u64()),
        (Some(4), Some(20)),
        "{reads:?}"
    );
    // A flow alone stays a transaction (its summary would only be larger): the one write.
    assert!(lines
        .iter()
        .any(|l| l["op"] == "write" && l["dst"] == "file:/data/x" && l["len"] == 5));
    assert!(
        !lines
            .iter()
            .any(|l| l["summary"] == "T1" && l["count"] == 1),
        "{lines:#?}"
    );
    // Transactions that move no data are still listed as transactions.
    assert!(lines
        .iter()
        .any(|l| l["op"] == "open" && l["src"] == "file:/data/x"));
    // (and reads that moved no bytes: they are no flow).
    assert!(!lines
        .iter()
        .any(|l| l["op"] == "read" && l["src"] == "file:/data/x" && l["len"] != 0));
    // Tracking answers from the summaries.
    let j = env.json(&["track", "back", "file:/data/sums", "--json"]);
    let reached: Vec<&str> = j["reached"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        reached.contains(&"file:/data/x") && reached.contains(&"ve:1"),
        "{j}"
    );
    // Stats count the summaries and the flows they stand for, and do not call those calls
    // "not recorded" (they were: summarized).
    let st = env.json(&["stats", "--ve", "1", "--json"]);
    let v = &st["ves"][0];
    let summaries: usize = lines
        .iter()
        .filter(|l| l["summary"] == "T1" && l["ve"] == 1)
        .count();
    assert!(summaries >= 1);
    assert_eq!(v["summaries"], summaries, "{st}");
    assert!(v["summarized_flows"].as_u64().unwrap() >= 4, "{st}");
    let table = env.ok(&["stats", "--ve", "1"]);
    assert!(table.contains("T1 SUMMARIES"), "{table}");
    assert!(env.json(&["verify", "--json"])["first_problem"].is_null());
    env.assert_clean();
}

/// `jcs exec` returns once what its command did is in the journal: with online T1 too, whose
/// open summaries (held up to a second) its Flush writes out. (Negative control, by hand: with
/// a Flush that does not force online T1, the reads were not in the journal when it
/// returned.)
#[test]
fn root_jcs_exec_returns_with_its_summaries_written_under_online_t1() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.sh_ok_with(&[("JCS_SUMMARIZE", "online")], "echo 0123456789 > /data/x");
    let c = env.spawn_until_go("cat /data/x /data/x /data/x > /dev/null", "true");
    let reads = |env: &Env| -> u64 {
        env.log(2)
            .iter()
            .filter(|l| l["src"] == "file:/data/x" && l["dst"] == "ve:2")
            .map(|l| match &l["summary"] {
                serde_json::Value::String(_) => l["count"].as_u64().unwrap(),
                _ => u64::from(l["op"] == "read" && l["len"].as_u64() > Some(0)),
            })
            .sum()
    };
    // The VE's own reads, made before it said it was up: held in an open summary (the
    // control), unless this machine took over a second to get here and they aged out.
    let before = reads(&env);
    assert!(before == 0 || before == 3, "{before}");
    env.ok(&[
        "exec",
        "2",
        "--",
        "/bin/sh",
        "-c",
        "cat /data/x /data/x > /dev/null",
    ]);
    assert_eq!(reads(&env), 5, "{:#?}", env.log(2));
    env.go();
    assert!(c.wait_with_output().unwrap().status.success());
    env.assert_clean();
}

/// Kills the store's daemon while the VE of `c` (from `spawn_until_go`) waits, lets it end,
/// and checks that `jcs run` says its recording is incomplete (exit 122).
fn kill_daemon_then_end(env: &Env, c: std::process::Child) -> std::process::Output {
    env.kill_daemon();
    env.go();
    let o = c.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(122),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Online T1 holds flows in memory (a summary stays open up to a second): a daemon killed then
/// loses them, and the gap its VE gets must reach back before the first of them.
#[test]
fn root_what_a_killed_online_daemon_held_falls_inside_the_gap() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    // The daemon summarizes online (and stays up for the next runs).
    env.sh_ok_with(&[("JCS_SUMMARIZE", "online")], "echo 0123456789 > /data/x");
    // VE 2 reads /data/x again and again (one cat after another) until told to stop: the
    // reads join open summaries.
    let c = env.spawn_until_go(
        "(while [ ! -e /data/go ]; do cat /data/x > /dev/null; done) & true",
        "wait",
    );
    let summarized = |env: &Env| {
        env.log(2)
            .iter()
            .any(|l| l["summary"] == "T1" && l["src"] == "file:/data/x")
    };
    assert!(wait_for(10, || summarized(&env)), "{:#?}", env.log(2));
    kill_daemon_then_end(&env, c);
    env.sh_ok("true");
    let lines = env.log(2);
    // Each cat opened /data/x (a transaction, written at once), then read it: the reads in
    // the journal are the first ones, the rest were held when the daemon died.
    let mut opens: Vec<u64> = lines
        .iter()
        .filter(|l| l["op"] == "open" && l["src"] == "file:/data/x")
        .map(|l| l["time_ns"].as_u64().unwrap())
        .collect();
    opens.sort_unstable();
    let recorded: u64 = lines
        .iter()
        .filter(|l| l["src"] == "file:/data/x")
        .map(|l| match (&l["summary"], &l["op"]) {
            (serde_json::Value::String(_), _) => l["count"].as_u64().unwrap(),
            (_, op) if op == "read" && l["len"].as_u64() > Some(0) => 1,
            _ => 0,
        })
        .sum();
    let missing = opens.len() as u64 - recorded;
    // Control: the kill did take reads the daemon held (more than the last one).
    assert!(missing >= 2, "{} opens, {recorded} reads", opens.len());
    let first_lost = opens[recorded as usize];
    let gap = lines
        .iter()
        .find(|l| l["op"] == "gap")
        .unwrap_or_else(|| panic!("no gap: {lines:#?}"));
    assert!(
        gap["off"].as_u64().unwrap() <= first_lost,
        "the gap begins at {} after the first read lost ({first_lost}; {missing} lost): {gap}",
        gap["off"]
    );
    env.assert_clean();
}

#[test]
fn root_a_ves_own_pty_stays_inside_the_hosts_terminal_is_recorded() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    // The VE's own pseudo-terminals (its devpts instance): their traffic never leaves it.
    env.sh_ok("ls /dev/pts > /dev/null; exec 3<>/dev/ptmx; echo hi >&3");
    let ats = env.log(1);
    assert!(
        !ats.iter()
            .any(|a| a["src"].as_str().unwrap().starts_with("file:/dev/pt")
                || a["dst"].as_str().unwrap().starts_with("file:/dev/pt")),
        "{ats:#?}"
    );
    let d = dropped(&env, 1);
    assert!(sum(&d, &["write"]) >= 1, "{d}");
    assert!(sum(&d, &["openat"]) >= 1, "{d}");
    // A terminal of the host, inherited by jcs run, is outside the VE: recorded.
    let (master, slave) = common::openpty(None);
    let o = env
        .sh_cmd("echo to-the-terminal")
        .stdout(std::process::Stdio::from(slave))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    drop(master);
    let ats = env.log(2);
    assert!(
        ats.iter().any(|a| a["op"] == "write" && a["len"] == 16),
        "the write to the host's terminal: {ats:#?}"
    );
    env.assert_clean();
}

#[test]
fn root_unix_sockets_within_the_ve_stay_inside() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    // A static helper: a socketpair between a parent and its child.
    common::static_helper(&env, "socketpair");
    assert_eq!(env.sh_ok("/data/socketpair"), "5\n");
    let ats = env.log(1);
    assert!(
        !ats.iter().any(|a| a["op"] == "send" || a["op"] == "recv"),
        "{ats:#?}"
    );
    let d = dropped(&env, 1);
    assert!(sum(&d, &["write"]) >= 1, "{d}");
    assert!(sum(&d, &["read"]) >= 1, "{d}");
    env.assert_clean();
}

#[test]
fn root_inert_files_and_kernel_views_are_counted_not_recorded() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    // A static helper: eventfd, /dev/null, /dev/zero, /dev/urandom, /proc and /sys reads.
    common::static_helper(&env, "inert");
    // The control: a write to persistent storage in the same VE stays recorded.
    assert_eq!(env.sh_ok("/data/inert && echo kept > /data/out"), "7\n");
    let ats = env.log(1);
    let quiet = ["/dev/null", "/dev/zero", "/dev/urandom", "/proc/", "/sys/"];
    for a in &ats {
        let var = format!("{} {}", a["src"], a["dst"]);
        assert!(!quiet.iter().any(|q| var.contains(q)), "recorded: {a}");
        // The eventfd has no path: an 8-byte read or write of a pathless file.
        assert!(
            !((a["op"] == "read" || a["op"] == "write") && a["len"] == 8 && var.contains("file:[")),
            "the eventfd was recorded: {a}"
        );
    }
    assert!(
        ats.iter()
            .any(|a| a["op"] == "write" && a["dst"] == "file:/data/out" && a["len"] == 5),
        "the control write: {ats:#?}"
    );
    let d = dropped(&env, 1);
    // eventfd + /dev/zero + /dev/urandom + 3 kernel views: at least 6 reads; eventfd and
    // /dev/null: 2 writes; and the opens of the 6 files.
    assert!(sum(&d, &["read"]) >= 6, "{d}");
    assert!(sum(&d, &["write"]) >= 2, "{d}");
    assert!(sum(&d, &["openat", "open"]) >= 6, "{d}");
    env.assert_clean();
}

/// What a name lookup does before it reaches the network (getaddrinfo, `ip addr`): a route
/// netlink socket asked for the addresses (the kernel's view of the VE's own namespace),
/// sockets made and closed without naming anything, a connection to the unspecified address
/// (this host: the VE's own loopback): counted, not recorded (a connect to a missing nscd socket of
/// the VE's own files too: unit test in `translate`). Control: busybox `ip` did talk netlink
/// (it printed the address; the calls are counted).
#[test]
fn root_name_lookups_and_route_netlink_are_counted_not_recorded() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let out = env.sh_ok(
        "ip addr show lo | grep -c 127.0.0.1; nslookup localhost 127.0.0.1 >/dev/null 2>&1; \
         nc -l -p 9 >/dev/null & sleep 0.3; echo x | nc -w2 0.0.0.0 9; wait; true",
    );
    assert_eq!(
        out.trim().lines().next(),
        Some("1"),
        "ip talked netlink: {out}"
    );
    let ats = env.log(1);
    // A connection to the unspecified address goes to this host: the VE's own loopback.
    assert!(
        !ats.iter()
            .any(|a| ["connect", "send"].contains(&a["op"].as_str().unwrap_or(""))),
        "{ats:#?}"
    );
    for a in &ats {
        let op = a["op"].as_str().unwrap_or("");
        // Nothing that names no variable but the VE's memory, besides processes.
        if ["socket", "bind", "listen", "close", "send", "recv"].contains(&op) {
            assert!(
                a["src"] != "-" || a["dst"] != "-" && a["dst"] != "ve:1",
                "recorded: {a}"
            );
            assert!(!(a["src"] == "ve:1" && a["dst"] == "-"), "recorded: {a}");
            assert!(!(a["src"] == "-" && a["dst"] == "ve:1"), "recorded: {a}");
        }
    }
    let d = dropped(&env, 1);
    assert!(sum(&d, &["socket"]) >= 1, "{d}");
    assert!(
        sum(&d, &["sendmsg", "sendto", "recvmsg", "recvfrom", "bind"]) >= 2,
        "{d}"
    );
    env.assert_clean();
}

#[test]
fn root_failed_lookups_in_the_ves_own_files_are_counted_persistent_ones_recorded() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    // Names that do not exist: in the VE's own file system, in its persistent directory, in
    // its shared one.
    // (And /dev/tty: the VE has no controlling terminal, the open fails with ENXIO.)
    env.sh_ok("cat /etc/nothing-here 2>/dev/null; cat /data/nothing-here 2>/dev/null; cat /dl/nothing-here 2>/dev/null; cat /dev/tty 2>/dev/null; true");
    // Names that exist: mkdir fails with EEXIST, in the VE's own file system and in /data.
    env.sh_ok("mkdir /etc 2>/dev/null; mkdir /data 2>/dev/null; true");
    let ats = env.log(1);
    let ats2 = env.log(2);
    let mkdirs: Vec<&str> = ats2
        .iter()
        .filter(|a| a["op"] == "mkdir" && a["status"] == "failed")
        .filter_map(|a| a["dst"].as_str())
        .collect();
    assert_eq!(mkdirs, ["file:/data"], "{ats2:#?}");
    let failed: Vec<&str> = ats
        .iter()
        .filter(|a| a["op"] == "open" && a["status"] == "failed")
        .filter_map(|a| a["src"].as_str())
        .collect();
    assert!(failed.contains(&"file:/data/nothing-here"), "{ats:#?}");
    assert!(failed.contains(&"file:/dl/nothing-here"), "{ats:#?}");
    assert!(!failed.contains(&"file:/etc/nothing-here"), "{ats:#?}");
    assert!(
        !ats.iter()
            .any(|a| a["src"].as_str().is_some_and(|s| s.ends_with("/dev/tty"))),
        "{ats:#?}"
    );
    // A failed call says its error by name.
    assert!(
        ats.iter()
            .any(|a| a["op"] == "open" && a["result"] == -2 && a["error"] == "ENOENT"),
        "{ats:#?}"
    );
    assert!(ats2
        .iter()
        .any(|a| a["op"] == "mkdir" && a["error"] == "EEXIST"));
    assert!(env.ok(&["log", "--ve", "1"]).contains("= -2 ENOENT failed"));
    let d = dropped(&env, 1);
    assert!(sum(&d, &["openat", "open"]) >= 1, "{d}");
    env.assert_clean();
}

#[test]
fn root_calls_that_would_have_waited_are_counted_not_recorded() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "eagain");
    assert_eq!(env.sh_ok("/data/eagain"), "2\n");
    let ats = env.log(1);
    // The sockets themselves are recorded (their binds and listen), the EAGAINs are not.
    assert!(ats.iter().any(|a| a["op"] == "listen"), "{ats:#?}");
    assert!(
        !ats.iter()
            .any(|a| (a["op"] == "accept" || a["op"] == "recv") && a["result"] == -11),
        "{ats:#?}"
    );
    let d = dropped(&env, 1);
    assert!(sum(&d, &["accept", "accept4"]) >= 1, "{d}");
    assert!(sum(&d, &["recvfrom"]) >= 1, "{d}");
    env.assert_clean();
}

#[test]
fn root_threads_are_not_processes_their_calls_are_recorded() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "threads");
    assert_eq!(env.sh_ok("/data/threads"), "3\n");
    let ats = env.log(1);
    // Each thread's write is recorded, with the process's pid and the thread's own tid.
    let writes: Vec<&serde_json::Value> = ats
        .iter()
        .filter(|a| a["op"] == "write" && a["dst"] == "file:/data/threads.out")
        .collect();
    assert_eq!(writes.len(), 3, "{ats:#?}");
    let tids: Vec<i64> = writes.iter().map(|a| a["tid"].as_i64().unwrap()).collect();
    assert!(writes.iter().all(|a| a["pid"] != a["tid"]), "{writes:#?}");
    // Their creations and ends are not transactions; the helper's own fork and exit are.
    for a in &ats {
        if a["op"] == "fork" {
            assert!(
                !tids.contains(&a["result"].as_i64().unwrap()),
                "a thread's creation: {a}"
            );
        }
        if a["op"] == "exit" {
            assert!(
                !tids.contains(&a["tid"].as_i64().unwrap()),
                "a thread's end: {a}"
            );
        }
    }
    let pid = writes[0]["pid"].as_i64().unwrap();
    assert!(
        ats.iter().any(|a| a["op"] == "fork" && a["result"] == pid),
        "{ats:#?}"
    );
    assert!(
        ats.iter().any(|a| a["op"] == "exit" && a["tid"] == pid),
        "{ats:#?}"
    );
    env.assert_clean();
}

/// The recorder writes records of the current version only: binary definitions (`D`) and
/// counters (`C`), not the version-1 JSON ones (`V`, `S` are read for version-1 stores, never
/// written); an exec's command line (`E`); which VE it is (`W`: app web, version 1); every
/// record decodes, and the definitions name the file the VE wrote.
#[test]
fn root_the_recorder_writes_current_binary_records() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.sh_ok("echo hi > /data/new.txt; cat /data/new.txt > /dev/null");
    let dir = env.home().join("journal");
    let records = journal::read_all(&journal::DirStorage::new(&dir).unwrap()).unwrap();
    let tags: std::collections::BTreeSet<u8> = records.iter().map(|(_, r)| r[0]).collect();
    assert!(
        tags.iter().all(|t| b"DACTNEW".contains(t)),
        "tags {:?}",
        tags.iter().map(|&t| t as char).collect::<Vec<_>>()
    );
    assert!(tags.contains(&b'D') && tags.contains(&b'A') && tags.contains(&b'C'));
    assert!(tags.contains(&b'N'), "the names files got");
    assert!(tags.contains(&b'E'), "the execs' command lines");
    assert!(tags.contains(&b'W'), "which VE it is");
    let mut named = false;
    for (_, r) in &records {
        match record::Record::decode(r).unwrap() {
            record::Record::Vars(defs) => {
                named |= defs.iter().any(|(_, d)| {
                    matches!(d, model::at::VarDef::Inode { name: Some(n), .. } if n == "/data/new.txt")
                })
            }
            record::Record::Stats(s) => assert!(s.seen > 0, "{s:?}"),
            record::Record::Ve(v) => {
                assert_eq!((v.ve, v.app.as_str(), v.app_version), (1, "web", 1), "{v:?}");
                assert!(v.time_ns > 0);
            }
            _ => {}
        }
    }
    assert!(named, "no definition of /data/new.txt");
}

/// First use under concurrency: many `jcs run` at once on a store with no daemon all succeed
/// with complete recordings (one wins the election and starts the daemon, the others connect
/// to it); the same after the daemon is killed with SIGKILL.
#[test]
fn root_concurrent_first_runs_all_succeed() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let wave = |n: usize| {
        let kids: Vec<_> = (0..n)
            .map(|_| {
                env.cmd(&[
                    "run",
                    "web",
                    "--",
                    "/bin/sh",
                    "-c",
                    "echo $JCS_VE > /data/ve-$JCS_VE",
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
            })
            .collect();
        for k in kids {
            let o = k.wait_with_output().unwrap();
            assert!(
                o.status.success(),
                "{:?}: {}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            );
        }
    };
    wave(24);
    env.kill_daemon();
    wave(24);
    // Every VE's record is complete: its counters (written when its watch ended) are there.
    let st = env.json(&["stats", "--json"]);
    let ves = st["ves"].as_array().unwrap();
    assert_eq!(ves.len(), 48, "{st}");
    assert!(
        ves.iter().all(|v| v["syscalls_seen"].as_u64().unwrap() > 0),
        "{st}"
    );
    env.stop_daemon();
}

/// The recorder's status over its socket (what `jcs run` asks it).
fn daemon_status(env: &Env) -> serde_json::Value {
    use std::io::{BufRead, Write};
    let mut s = std::os::unix::net::UnixStream::connect(env.home().join("daemon.sock")).unwrap();
    s.write_all(b"{\"request\":\"status\"}\n").unwrap();
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap()
}

/// A VE whose `jcs run` is killed (SIGKILL: no Unwatch) ends with it (the init dies with its
/// parent); the recorder notices the empty cgroup, finishes the VE's record (its counters)
/// and stops watching it, instead of watching it forever.
#[test]
fn root_a_watch_ends_with_its_ve_when_its_run_is_killed() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let mut run = env.spawn_until_go("echo before > /data/before", "true");
    assert_eq!(daemon_status(&env)["watched"], 1);
    // SAFETY: SIGKILL to the jcs run this test started, by its pid.
    unsafe { libc::kill(run.id() as i32, libc::SIGKILL) };
    let _ = run.wait();
    assert!(
        wait_for(10, || daemon_status(&env)["watched"] == 0),
        "still watched: {}",
        daemon_status(&env)
    );
    let st = env.json(&["stats", "--ve", "1", "--json"]);
    assert!(st["ves"][0]["syscalls_seen"].as_u64().unwrap() > 0, "{st}");
    assert!(env
        .log(1)
        .iter()
        .any(|a| a["op"] == "write" && a["dst"] == "file:/data/before"));
    // The next run is recorded as usual.
    env.sh_ok("echo after > /data/after");
    assert_eq!(daemon_status(&env)["watched"], 0);
}

/// A VE that ends while no recorder runs (its recorder was killed) cannot be finished by
/// anyone then; the next recorder writes its gap (no count, at the VE's end), so its history
/// does not simply stop.
#[test]
fn root_a_ve_that_ended_without_a_recorder_gets_its_gap() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    // A file of its storage from before it, which it changes; one it leaves alone.
    let data = env.home().join("persist/web/data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("old"), "1\n").unwrap();
    std::fs::write(data.join("kept"), "1\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let c = env.spawn_until_go("echo before > /data/before; echo 2 >> /data/old", "true");
    assert!(wait_for(5, || env
        .log(1)
        .iter()
        .any(|a| a["op"] == "write" && a["dst"] == "file:/data/before")));
    kill_daemon_then_end(&env, c);
    // Its storage report lists the names it added and, no recorder having said which files
    // it changed, those whose status changed while it ran (ctime), and says so.
    let r = env.json(&["inspect", "1", "--json"]);
    let listed = |path: &str, change: &str| {
        r["storage"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["path"] == path && c["change"] == change)
    };
    assert!(listed("/data/before", "added"), "{r:#}");
    assert!(listed("/data/old", "modified"), "{r:#}");
    assert!(!listed("/data/kept", "modified"), "{r:#}");
    assert!(
        r["notes"].as_array().unwrap().iter().any(|n| n
            .as_str()
            .unwrap()
            .contains("did not say which files VE 1 changed")),
        "{r:#}"
    );
    // Control: no gap yet (nobody could write one).
    assert!(!env.log(1).iter().any(|a| a["op"] == "gap"));
    // The next run starts a recorder, which finds VE 1 unfinished.
    env.sh_ok("true");
    let gaps: Vec<_> = env
        .log(1)
        .into_iter()
        .filter(|a| a["op"] == "gap")
        .collect();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0]["result"], -1);
    // A tracking answer over that window says it is incomplete, and why.
    let t = env.json(&["track", "back", "file:/data/before", "--json"]);
    assert_eq!(t["complete"], false, "{t}");
    assert_eq!(t["gaps"][0]["ve"], 1, "{t}");
    assert!(t["gaps"][0]["lost"].is_null(), "{t}");
    let tree = env.ok(&["track", "back", "file:/data/before"]);
    assert!(tree.starts_with("INCOMPLETE"), "{tree}");
    // Only once: a later recorder does not write it again.
    env.stop_daemon();
    env.sh_ok("true");
    assert_eq!(env.log(1).iter().filter(|a| a["op"] == "gap").count(), 1);
    assert!(
        !env.log(2).iter().any(|a| a["op"] == "gap"),
        "VE 2 was complete"
    );
}

/// The recorder answers root of the host only, not a process in a VE's cgroup (a VE's root
/// is uid 0 too): the same client, moved into a cgroup under `jcs/`, is refused.
#[test]
fn root_the_recorder_refuses_a_client_inside_a_ve_cgroup() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.sh_ok("true");
    let tcg = common::TestCgroup::new("peer-test");
    // The store's socket and the host's (where a Serve would hand the daemon any store).
    for sock in [
        env.home().join("daemon.sock"),
        env.run_dir().join("host.sock"),
    ] {
        let client = |inside: bool| {
            let mut c = std::process::Command::new("python3");
            c.args([
                "-c",
                "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\n\
                 s.sendall(b'{\"request\":\"status\"}\\n')\nprint(s.makefile().readline())",
                sock.to_str().unwrap(),
            ]);
            if inside {
                tcg.join_at_exec(&mut c);
            }
            String::from_utf8(c.output().unwrap().stdout).unwrap()
        };
        let outside = client(false);
        assert!(outside.contains("\"status\""), "control: {outside}");
        let inside = client(true);
        assert!(
            inside.contains("refused") && inside.contains("inside a VE"),
            "{}: {inside}",
            sock.display()
        );
    }
}

/// What a recorder's opening of the journal repaired is itself in the journal (in the hash
/// chain) and listed by `jcs log`: a damaged last block, set aside, shows as a repair.
#[test]
fn root_journal_repairs_are_recorded_and_listed() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.sh_ok("echo one > /data/one");
    env.stop_daemon();
    let mut segs: Vec<_> = std::fs::read_dir(env.home().join("journal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    let seg = segs.last().unwrap();
    let mut b = std::fs::read(seg).unwrap();
    let n = b.len();
    b[n - 10] ^= 0xff; // inside the last block: its checksum fails
    std::fs::write(seg, &b).unwrap();
    env.sh_ok("echo two > /data/two"); // a new recorder opens the journal
    let repairs: Vec<serde_json::Value> = env
        .ok(&["log", "--json"])
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("repair").is_some())
        .collect();
    assert_eq!(repairs.len(), 1, "{repairs:?}");
    assert_eq!(repairs[0]["repair"], "quarantined");
    assert!(
        env.home()
            .join("journal")
            .join(repairs[0]["file"].as_str().unwrap())
            .exists(),
        "{repairs:?}"
    );
    let text = env.ok(&["log"]);
    assert!(text.contains("journal repair (quarantined)"), "{text}");
    env.assert_clean();
}

/// A process's end is logged as a shell reports it: its exit code, or 128 + the signal that
/// killed it (a SIGKILLed process used to show exit 0).
#[test]
fn root_exits_are_codes_or_128_plus_the_signal() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let o = env.sh("sleep 10 & p=$!; kill -9 $p; wait $p; exit 3");
    assert_eq!(o.status.code(), Some(3));
    let exits: Vec<i64> = env
        .log(1)
        .iter()
        .filter(|a| a["op"] == "exit")
        .map(|a| a["result"].as_i64().unwrap())
        .collect();
    assert!(exits.contains(&137), "the killed sleep: {exits:?}");
    assert!(exits.contains(&3), "the shell: {exits:?}");
    env.assert_clean();
}

/// The VE's init (JCS's own code that mounts, pivots and drops privileges before the app
/// starts) is not the VE: its system calls are not counted in the VE's statistics.
#[test]
fn root_the_inits_own_calls_are_not_the_ves() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.sh_ok("true");
    let st = env.json(&["stats", "--ve", "1", "--json"]);
    let calls = &st["ves"][0]["syscalls_by_name"];
    for setup in ["mount", "pivot_root", "umount2", "sethostname"] {
        assert!(calls.get(setup).is_none(), "{setup} counted: {calls}");
    }
    assert!(
        calls.get("execve").is_some(),
        "the app's own calls are: {calls}"
    );
    env.assert_clean();
}

/// Socket activation: a recorder started with the store's socket already listening on
/// descriptor 3 (systemd's LISTEN_FDS/LISTEN_PID, as contrib/jcs-daemon.socket sets it up)
/// serves on it; `jcs run` connects to it and is recorded.
#[test]
fn root_a_socket_activated_recorder_serves_on_the_passed_socket() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let sock = env.home().join("daemon.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let fd = listener.as_raw_fd();
    let mut cmd = std::process::Command::new("sh");
    cmd.args([
        "-c",
        "export LISTEN_PID=$$; exec \"$0\" daemon",
        common::jcs_bin(),
    ])
    .env("JCS_HOME", env.home())
    .env("JCS_RUN_DIR", env.run_dir())
    .env("LISTEN_FDS", "1")
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::fs::File::create(env.home().join("activated.log")).unwrap());
    // SAFETY: dup2 is async-signal-safe; the listener outlives the spawn.
    unsafe {
        cmd.pre_exec(move || {
            // (dup2 onto itself keeps close-on-exec: cleared explicitly.)
            if libc::dup2(fd, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut daemon = cmd.spawn().unwrap();
    drop(listener);
    assert!(
        common::wait_for(20, || env.daemon_pid() == Some(daemon.id() as i32)),
        "the activated recorder did not come up"
    );
    env.sh_ok("echo activated > /data/a");
    assert!(env
        .log(1)
        .iter()
        .any(|a| a["op"] == "write" && a["dst"] == "file:/data/a"));
    assert_eq!(
        env.daemon_pid(),
        Some(daemon.id() as i32),
        "no other recorder started"
    );
    let log = std::fs::read_to_string(env.home().join("activated.log")).unwrap();
    assert!(log.contains("socket activation"), "{log}");
    // (Our own child: signalled and reaped here, not left a zombie for stop_daemon to wait on.)
    // SAFETY: SIGTERM to the recorder this test started, by its pid.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let _ = daemon.wait();
    env.assert_clean();
}

/// Loopback is internal only in the VE's own network namespace: a maintenance-mode VE on the
/// host's network that talks to a service on the host's 127.0.0.1 crosses the boundary, and is
/// recorded. (The control: the service received the bytes.)
#[test]
fn root_loopback_of_the_hosts_network_is_a_crossing() {
    use std::io::Read;
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        s
    });
    let o = env.jcs(&[
        "app",
        "update",
        "web",
        "--net",
        "host",
        "--",
        "/bin/sh",
        "-c",
        &format!("echo to-host-loopback | nc 127.0.0.1 {port}"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        got.join().unwrap(),
        "to-host-loopback\n",
        "the bytes reached the host"
    );
    let sends: Vec<serde_json::Value> = env
        .log(1)
        .into_iter()
        .filter(|a| a["op"] == "send")
        .collect();
    assert!(
        sends.iter().any(|a| a["dst"]
            .as_str()
            .is_some_and(|d| d.ends_with(&format!("->127.0.0.1:{port}")))
            && a["len"] == 17),
        "{sends:#?}"
    );
    env.assert_clean();
}

/// `jcs log --format csv`: a header, then one row per transaction, the same ones as the JSON
/// lines; a field with a comma or a quote is quoted.
#[test]
fn root_log_as_csv() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.sh_ok("echo x > '/data/a,\"b'");
    let json = env.ok(&["log", "--ve", "1", "--json"]);
    let csv = env.ok(&["log", "--ve", "1", "--format", "csv"]);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "time,time_ns,ve,pid,tid,op,src,dst,off,len,result,status,error,rule,src_id,dst_id"
    );
    assert_eq!(lines.count(), json.lines().count(), "{csv}");
    assert!(
        csv.contains(",write,ve:1,\"file:/data/a,\"\"b\",0,2,2,committed,"),
        "{csv}"
    );
    env.assert_clean();
}

/// `jcs log --var file:/data/sub/*` (and store-level names with a final `*`): every file that
/// had a name under the prefix, and nothing else; a failed lookup there too.
#[test]
fn root_log_by_a_name_prefix() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.sh_ok("mkdir -p /data/sub && echo a > /data/sub/a && echo b > /data/sub/b && echo c > /data/c; cat /data/sub/none 2>/dev/null; true");
    let vars = |spec: &str| -> std::collections::BTreeSet<String> {
        env.ok(&["log", "--var", spec, "--json"])
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .flat_map(|a| [a["src"].to_string(), a["dst"].to_string()])
            .filter(|v| v.contains("/data/"))
            .collect()
    };
    let sub = vars("file:/data/sub/*");
    for want in ["/data/sub/a", "/data/sub/b", "/data/sub/none"] {
        assert!(sub.iter().any(|v| v.contains(want)), "{want}: {sub:?}");
    }
    assert!(!sub.iter().any(|v| v.contains("/data/c")), "{sub:?}");
    let store = vars("persist:web:/data/sub/*");
    assert!(store.iter().any(|v| v.contains("/data/sub/a")), "{store:?}");
    assert!(!store.iter().any(|v| v.contains("/data/c")), "{store:?}");
    env.assert_clean();
}

/// An exec says who ran what: its argument strings (the applet busybox runs, not only
/// /bin/busybox), its uid/euid/gid, its parent and its working directory; a long command line
/// is cut, and says so.
#[test]
fn root_an_exec_records_its_command_line_and_ids() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let long = "x".repeat(300);
    env.ok(&[
        "run",
        "-u",
        "nobody",
        "-w",
        "/tmp",
        "web",
        "--",
        "sh",
        "-c",
        &format!(
            "echo {long} > /dev/null; cat /dev/null; cd /proc && cat self/stat >/dev/null; true"
        ),
    ]);
    let execs: Vec<serde_json::Value> = env
        .log(1)
        .into_iter()
        .filter(|a| a["op"] == "exec")
        .collect();
    let sh = &execs[0];
    assert_eq!(sh["argv"][0], "sh", "{execs:#?}");
    assert_eq!(sh["argv"][1], "-c", "{execs:#?}");
    assert_eq!(sh["argv_cut"], true, "300 bytes do not fit: {sh}");
    assert_eq!(
        (sh["uid"].as_u64(), sh["euid"].as_u64()),
        (Some(65534), Some(65534)),
        "{sh}"
    );
    let cat = execs
        .iter()
        .find(|a| a["argv"][0] == "cat")
        .unwrap_or_else(|| panic!("{execs:#?}"));
    assert_eq!(cat["argv"][1], "/dev/null");
    assert_eq!(cat["ppid"], sh["pid"], "cat's parent is the shell");
    assert_eq!(
        (sh["cwd"].as_str(), cat["cwd"].as_str()),
        (Some("/tmp"), Some("/tmp"))
    );
    let cat2 = execs.iter().find(|a| a["argv"][1] == "self/stat").unwrap();
    assert_eq!(cat2["cwd"], "/proc", "after the shell's cd: {cat2}");
    let text = env.ok(&["log", "--ve", "1", "--op", "exec"]);
    assert!(text.contains("argv [cat /dev/null] uid 65534"), "{text}");
    assert!(text.contains("cwd /tmp"), "{text}");
    env.assert_clean();
}

/// `jcs log --exe PROGRAM`: the transactions of the processes running it (by argv[0], the
/// executed file's name or path), including what they did before a later exec of another
/// program is left out; a child keeps its parent's program until it execs.
#[test]
fn root_log_by_program() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.sh_ok("echo by-shell > /data/s; cat /data/s > /data/c; true");
    let writes = |exe: &str| -> Vec<String> {
        env.ok(&["log", "--ve", "1", "--exe", exe, "--op", "write", "--json"])
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["dst"].to_string())
            .collect()
    };
    // (busybox cat copies with sendfile until it returns 0: more than one write record.)
    let cat = writes("cat");
    assert!(
        !cat.is_empty() && cat.iter().all(|d| d == "\"file:/data/c\""),
        "cat wrote /data/c only: {cat:?}"
    );
    let sh = writes("sh");
    assert!(sh.contains(&"\"file:/data/s\"".to_string()), "{sh:?}");
    assert!(!sh.contains(&"\"file:/data/c\"".to_string()), "{sh:?}");
    assert!(writes("nosuchprogram").is_empty());
    env.assert_clean();
}

/// The processes whose environment has `JCS_RUN_DIR=run` and that hold loaded BPF
/// programs (descriptors of `anon_inode:bpf-prog`): pid → how many.
fn bpf_holders(run: &std::path::Path) -> std::collections::BTreeMap<i32, usize> {
    let want = format!("JCS_RUN_DIR={}", run.display()).into_bytes();
    let mut out = std::collections::BTreeMap::new();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(environ) = std::fs::read(p.path().join("environ")) else {
            continue;
        };
        if !environ.split(|&b| b == 0).any(|v| v == want.as_slice()) {
            continue;
        }
        let progs = std::fs::read_dir(p.path().join("fd"))
            .map(|d| {
                d.flatten()
                    .filter(|f| {
                        std::fs::read_link(f.path())
                            .is_ok_and(|l| l.to_string_lossy() == "anon_inode:bpf-prog")
                    })
                    .count()
            })
            .unwrap_or(0);
        if progs > 0 {
            out.insert(pid, progs);
        }
    }
    out
}

/// One monitor per host: the daemon of a second store hands its store to the daemon that
/// already serves the host — one process holds BPF programs, both stores' daemon.pid name it
/// — and each store's journal has its own VEs' transactions only. Two stores' VEs that run
/// at once with the same VE id get different kernel numbers (the kernel keys policies and
/// denials by it). Negative control: a store whose daemons meet elsewhere gets a daemon,
/// and a set of programs, of its own.
#[test]
fn root_one_daemon_serves_every_store_of_the_host() {
    let (Some(a), Some(b), Some(c)) = (Env::new(), Env::new(), Env::new()) else {
        return;
    };
    // B's daemons meet where A's do.
    let run = a.run_dir();
    let b = b.meeting_in(&run);
    for e in [&a, &b, &c] {
        e.standard_app();
    }
    // A's VE 1 runs on while B's VE 1 starts and ends.
    let mut long = a
        .cmd(&[
            "run",
            "web",
            "--",
            "/bin/sh",
            "-c",
            "echo a > /data/a; sleep 3; echo done > /data/a2",
        ])
        .spawn()
        .unwrap();
    assert!(wait_for(20, || a.daemon_pid().is_some()));
    b.sh_ok("echo b > /data/b");
    assert_eq!(a.daemon_pid(), b.daemon_pid(), "one daemon for both stores");
    let holders = bpf_holders(&run);
    assert_eq!(
        holders.keys().copied().collect::<Vec<_>>(),
        vec![a.daemon_pid().unwrap()],
        "only the host's daemon holds BPF programs: {holders:?}"
    );
    assert!(long.wait().unwrap().success());
    let log = |e: &Env| e.ok(&["log", "--json"]);
    let (la, lb) = (log(&a), log(&b));
    assert!(la.contains("/data/a2") && la.contains("/data/a\""), "{la}");
    assert!(!la.contains("/data/b"), "A's journal has B's VE: {la}");
    assert!(lb.contains("/data/b") && !lb.contains("/data/a"), "{lb}");
    // B's VE 1 ran while A's VE 1 was watched: the kernel knew it by another number (the
    // host's daemon logs to the log of the store it started for).
    let daemon_log = std::fs::read_to_string(a.home().join("daemon.log")).unwrap_or_default();
    assert!(
        daemon_log.contains("ve=1 kernel_ve=2147483648"),
        "{daemon_log}"
    );
    let companion = std::fs::read_to_string(b.home().join("daemon.log")).unwrap_or_default();
    assert!(
        companion.contains("the host's daemon records this store"),
        "{companion}"
    );
    // The host's socket serves only stores that exist: it does not make one where it is told.
    let nowhere = run.join("no-store");
    let mut sock = std::os::unix::net::UnixStream::connect(run.join("host.sock")).unwrap();
    use std::io::{BufRead, Write};
    writeln!(
        sock,
        "{}",
        serde_json::json!({"request": "serve", "home": nowhere})
    )
    .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(&sock).read_line(&mut line).unwrap();
    assert!(line.contains("no JCS store at"), "{line}");
    assert!(!nowhere.exists());
    // The negative control: C's daemons meet in C's own run directory.
    c.sh_ok("true");
    assert_ne!(c.daemon_pid(), a.daemon_pid());
    assert_eq!(bpf_holders(&c.run_dir()).len(), 1);
    assert_eq!(bpf_holders(&run).len(), 1);
}

/// A store whose host's daemon runs another jcs build (an upgrade while VEs run) gets a daemon
/// of its own at once, and its VEs are recorded: the other build's daemon is left alone. (The
/// first version waited for the host's lock until its 5 s deadline, and `jcs run`, which waits
/// 5 s for its daemon, failed: "jcs daemon did not come up within 5 s".) The other build is
/// this binary with another GNU build id.
#[test]
fn root_a_store_whose_hosts_daemon_is_of_another_build_gets_a_daemon_of_its_own_at_once() {
    let (Some(a), Some(b)) = (Env::new(), Env::new()) else {
        return;
    };
    let b = b.meeting_in(&a.run_dir());
    a.standard_app();
    b.standard_app();
    let mut bin = std::fs::read(common::jcs_bin()).unwrap();
    // The note: namesz 4, descsz 20, NT_GNU_BUILD_ID, "GNU\0", then the id.
    let head = [4, 0, 0, 0, 20, 0, 0, 0, 3, 0, 0, 0, b'G', b'N', b'U', 0];
    let at = bin
        .windows(head.len())
        .position(|w| w == head)
        .expect("a GNU build id note")
        + head.len();
    bin[at] ^= 0xff;
    let other = a.home().join("jcs-other-build");
    std::fs::write(&other, &bin).unwrap();
    std::fs::set_permissions(&other, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = a
        .cmd_of(
            &other,
            &["run", "web", "--", "/bin/sh", "-c", "echo a > /data/a"],
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let host = a.daemon_pid().expect("the other build's daemon");
    let started = std::time::Instant::now();
    b.sh_ok("echo b > /data/b");
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(4),
        "B's first run took {took:?}"
    );
    assert_ne!(b.daemon_pid(), Some(host), "B's store joined another build");
    let lb = b.ok(&["log", "--json"]);
    assert!(lb.contains("/data/b"), "{lb}");
    let log = std::fs::read_to_string(b.home().join("daemon.log")).unwrap_or_default();
    assert!(log.contains("runs another jcs build"), "{log}");
    a.assert_clean();
    b.assert_clean();
}

/// A batch of transactions larger than the recorder's record limit is written as several
/// records, each within it, and nothing of it is lost: every write is in the journal, which
/// verifies. (`JCS_RECORD_BYTES` lowers the limit — 8 MiB, half of what the journal takes —
/// so that an ordinary batch splits; a batch drained after a stalled recorder under four
/// flooders was one record over 16 MiB, which the journal refused, and the monitor stopped.)
/// Negative control: without the variable, the same run writes transaction records larger
/// than 4 KiB.
#[test]
fn root_a_batch_over_the_record_limit_is_written_as_several_records() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let script = "exec 3>>/data/f; i=0; while [ $i -lt 2000 ]; do echo x >&3; i=$((i+1)); done";
    let ats_record_sizes = |env: &Env| {
        let storage = journal::DirStorage::new(env.home().join("journal")).unwrap();
        journal::read_all(&storage)
            .unwrap()
            .iter()
            .filter(|(_, r)| matches!(record::Record::decode(r), Ok(record::Record::Ats(_))))
            .map(|(_, r)| r.len())
            .collect::<Vec<_>>()
    };
    let o = env
        .sh_cmd(script)
        .env("JCS_RECORD_BYTES", "4096")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let writes = env
        .log(1)
        .iter()
        .filter(|t| t["op"] == "write" && t["dst"] == "file:/data/f")
        .count();
    assert_eq!(writes, 2000);
    env.ok(&["verify"]);
    let sizes = ats_record_sizes(&env);
    assert!(
        sizes.iter().all(|&n| n <= 4096) && sizes.len() > 4,
        "transaction records: {sizes:?}"
    );
    // The negative control: a store whose daemon has the default limit.
    let Some(other) = Env::new() else { return };
    other.standard_app();
    other.sh_ok(script);
    assert!(
        ats_record_sizes(&other).iter().any(|&n| n > 4096),
        "no batch over 4 KiB: {:?}",
        ats_record_sizes(&other)
    );
    env.assert_clean();
    other.assert_clean();
}

/// Killing the one daemon that serves two stores stops the recording of both, and loses
/// nothing either acknowledged: its companion goes with it, the next run of either store
/// starts a daemon that serves both again, and each store's running VE is recorded again after
/// a gap in its own journal.
#[test]
fn root_killing_the_hosts_daemon_finishes_both_stores_records_after_a_gap() {
    let Some(a) = Env::new() else { return };
    let Some(b) = Env::new() else { return };
    let b = b.meeting_in(&a.run_dir());
    a.standard_app();
    b.standard_app();
    let ca = a.spawn_until_go("echo before > /data/before", "echo after > /data/after");
    let cb = b.spawn_until_go("echo before > /data/before", "echo after > /data/after");
    let first = a.daemon_pid().expect("a daemon");
    assert_eq!(b.daemon_pid(), Some(first), "one daemon for both stores");
    for e in [&a, &b] {
        assert!(wait_for(5, || e
            .log(1)
            .iter()
            .any(|x| x["op"] == "write" && x["dst"] == "file:/data/before")));
    }
    a.kill_daemon();
    // B's companion ends with the daemon it handed its store to.
    assert!(
        wait_for(10, || bpf_holders(&a.run_dir()).is_empty()
            && !std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
                std::fs::read(p.path().join("cmdline")).is_ok_and(|c| {
                    c.split(|&x| x == 0).any(|w| w == b"daemon")
                        && std::fs::read(p.path().join("environ")).is_ok_and(|e| {
                            e.split(|&x| x == 0)
                                .any(|v| v == format!("JCS_HOME={}", b.home().display()).as_bytes())
                        })
                })
            })),
        "a daemon of B's is left"
    );
    // B's next run starts the host's daemon again; A's joins it.
    b.sh_ok("true");
    a.sh_ok("true");
    let second = b.daemon_pid().expect("a daemon");
    assert_ne!(second, first);
    assert_eq!(
        a.daemon_pid(),
        Some(second),
        "one daemon for both stores again"
    );
    for (e, c) in [(&a, ca), (&b, cb)] {
        e.go();
        let o = c.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(122), "{err}");
        assert!(err.contains("recorded it again after a gap"), "{err}");
        let (ats, _) = gap_before_write(e, 1, "file:/data/after");
        assert!(ats
            .iter()
            .any(|x| x["op"] == "write" && x["dst"] == "file:/data/before"));
    }
    a.assert_clean();
    b.assert_clean();
}

/// A run directory that cannot be made (here under /proc) leaves the store a daemon of its
/// own: its VEs are recorded all the same, and the daemon's log says why. (Before, the
/// daemon stopped at the directory, and the VE did not start.)
#[test]
fn root_a_store_whose_run_directory_cannot_be_made_is_recorded_by_a_daemon_of_its_own() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let o = env
        .sh_cmd("echo x > /data/x")
        .env("JCS_RUN_DIR", "/proc/jcs-no-run-dir")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(env
        .log(1)
        .iter()
        .any(|a| a["op"] == "write" && a["dst"] == "file:/data/x"));
    let log = std::fs::read_to_string(env.home().join("daemon.log")).unwrap();
    assert!(
        log.contains("no run directory for the host's daemon"),
        "{log}"
    );
    env.assert_clean();
}

/// The thread that drains the ring buffer writes nothing: a VE that creates files makes new
/// variables and names, and the catalog gets them from the recorder's dictionary thread
/// (before, each batch's SQLite commit, and now and then a WAL checkpoint with its fsync, ran
/// on the draining thread: two thirds of its time in such a VE). Checked by the bytes each
/// thread wrote (`/proc/PID/task/TID/io`, wchar); and the catalog has the VE's files by the
/// time its run returns (a question by name finds them).
#[test]
fn root_the_draining_thread_writes_no_catalog() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.sh_ok("true");
    let pid = env.daemon_pid().unwrap();
    let wrote = |name: &str| -> u64 {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .flatten()
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name)
            })
            .map(|t| {
                let io = std::fs::read_to_string(t.path().join("io")).unwrap();
                io.lines()
                    .find_map(|l| l.strip_prefix("wchar: "))
                    .unwrap()
                    .trim()
                    .parse::<u64>()
                    .unwrap()
            })
            .sum()
    };
    // A VE's start and end are written by the draining thread (its record `watching`, then
    // `complete`: the catalog says whether a record is finished), whatever it does.
    let m0 = wrote("jcs-monitor");
    env.sh_ok("true");
    let per_ve = wrote("jcs-monitor") - m0;
    let (m0, d0) = (wrote("jcs-monitor"), wrote("jcs-dictionary"));
    env.sh_ok("mkdir /data/many; for i in $(seq 300); do echo $i > /data/many/f$i; done");
    let (m1, d1) = (wrote("jcs-monitor"), wrote("jcs-dictionary"));
    assert_eq!(
        m1 - m0,
        per_ve,
        "the draining thread wrote more for a VE that made 300 files than for one that made none"
    );
    assert!(d1 > d0, "the dictionary thread wrote the new variables");
    let answer = env.json(&["track", "forward", "file:/data/many/f300", "--json"]);
    assert!(
        answer.to_string().contains("/data/many/f300"),
        "found by name once the run returned: {answer}"
    );
}
