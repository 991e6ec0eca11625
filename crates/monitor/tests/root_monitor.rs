//! The monitor on the running kernel: programs load through the verifier and attach; a
//! program run in a watched cgroup produces the records the test expects; processes outside
//! the cgroup produce none. Runs as root; cleans up its cgroup and detaches on drop.

use model::at::Op;
use model::at::VarDef;
use monitor::decode::{decode, Event, Kind};
use monitor::loader::Monitor;
use monitor::translate::{Output, Translator};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A cgroup2 directory of this test, removed on drop.
struct TestCgroup(PathBuf);

impl TestCgroup {
    fn new() -> TestCgroup {
        let root = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.join("cgroup.procs").exists() && p.join("cgroup.subtree_control").exists())
            .expect("a cgroup2 mount");
        let dir = root.join(format!("jcs-monitor-test-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        TestCgroup(dir)
    }
    fn id(&self) -> u64 {
        std::fs::metadata(&self.0).unwrap().ino()
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for _ in 0..100 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn root_records_a_program_in_a_watched_cgroup_and_nothing_else() {
    if !rustix::process::geteuid().is_root() {
        // Like the jcs crate's privileged tests (tests/common): skipped visibly, never when
        // JCS_REQUIRE_ROOT is set (./test.sh).
        assert!(std::env::var_os("JCS_REQUIRE_ROOT").is_none(), "not root");
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr().lock(),
            "SKIP root_records_a_program_in_a_watched_cgroup_and_nothing_else: needs root"
        );
        return;
    }
    let m = Monitor::start().expect("the monitor loads and attaches on this kernel");
    let cg = TestCgroup::new();
    m.watch(cg.id(), 7, None).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.txt");
    let procs = cg.0.join("cgroup.procs");
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c").arg(format!(
        "echo hello > {0}; cat {0} > /dev/null",
        out.display()
    ));
    // Join the cgroup between fork and exec, so the monitor sees the child from its exec on.
    let procs_c = std::ffi::CString::new(procs.to_str().unwrap()).unwrap();
    // SAFETY: the closure runs between fork and exec and only makes system calls (open,
    // write, close) on a path built before the fork: no allocation, no locks.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs_c.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(fd);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    // Meanwhile this process (outside the cgroup) writes files too.
    for i in 0..50 {
        std::fs::write(tmp.path().join(format!("noise{i}")), b"noise").unwrap();
    }
    assert!(child.wait().unwrap().success());
    let child_pid = child.id();
    let got = std::cell::RefCell::new(Vec::<Event>::new());
    // Each record's length as the ring buffer gave it, by kind and system call.
    let sizes = std::cell::RefCell::new(Vec::<(Kind, u32, usize)>::new());
    {
        let ring = m
            .ring(|b| {
                let e = decode(b).expect("the kernel's records decode");
                sizes.borrow_mut().push((e.kind, e.nr, b.len()));
                got.borrow_mut().push(e)
            })
            .unwrap();
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            ring.poll(Duration::from_millis(20)).unwrap();
            if got.borrow().iter().filter(|e| e.kind == Kind::Exit).count() >= 2 {
                break;
            }
        }
    }
    let events = got.into_inner();
    // Variable-length records: what carries no path data (a file's write and read, a fork,
    // an exit) is the head alone; an open or an exec the whole struct.
    let sizes = sizes.into_inner();
    let size_of = |kind: Kind, nr: Option<i64>| -> Vec<usize> {
        let mut v: Vec<usize> = sizes
            .iter()
            .filter(|(k, n, _)| *k == kind && nr.is_none_or(|nr| i64::from(*n) == nr))
            .map(|s| s.2)
            .collect();
        v.dedup();
        v
    };
    use monitor::decode::{EVENT_SIZE, HEAD_SIZE};
    assert_eq!(
        size_of(Kind::Syscall, Some(libc::SYS_write)),
        [HEAD_SIZE],
        "{sizes:?}"
    );
    assert_eq!(size_of(Kind::Fork, None), [HEAD_SIZE], "{sizes:?}");
    assert_eq!(size_of(Kind::Exit, None), [HEAD_SIZE], "{sizes:?}");
    assert_eq!(
        size_of(Kind::Syscall, Some(libc::SYS_openat)),
        [EVENT_SIZE],
        "{sizes:?}"
    );
    assert_eq!(size_of(Kind::Exec, None), [EVENT_SIZE], "{sizes:?}");
    let me = std::process::id();
    assert!(!events.is_empty(), "no records");
    assert!(
        events.iter().all(|e| e.cgroup_id == cg.id()),
        "a record from outside the cgroup"
    );
    assert!(
        events.iter().all(|e| e.pid != me),
        "the test's own system calls were recorded"
    );
    // exec of the shell by the child, then of cat by the shell's child.
    let execs: Vec<String> = events
        .iter()
        .filter(|e| e.kind == Kind::Exec)
        .map(|e| String::from_utf8_lossy(e.path().unwrap()).into_owned())
        .collect();
    assert!(execs.iter().any(|p| p == "/bin/sh"), "{execs:?}");
    assert!(execs.iter().any(|p| p.ends_with("cat")), "{execs:?}");
    assert!(
        events
            .iter()
            .any(|e| e.kind == Kind::Fork && e.pid == child_pid),
        "the shell's fork"
    );
    // openat of out.txt returned an fd; the write of "hello\n" went to that file.
    let opens: Vec<&Event> = events
        .iter()
        .filter(|e| {
            e.kind == Kind::Syscall
                && e.nr == libc::SYS_openat as u32
                && e.path() == Some(out.to_str().unwrap().as_bytes())
        })
        .collect();
    assert!(
        opens.len() >= 2,
        "the shell's and cat's openat of out.txt: {opens:?}"
    );
    assert!(opens.iter().all(|e| e.ret >= 0));
    // The opened file's identity is taken at the exit of openat.
    let ino = std::fs::metadata(&out).unwrap().ino();
    assert!(
        opens.iter().all(|e| e.file.map(|f| f.1) == Some(ino)),
        "{opens:?}"
    );
    let meta = std::fs::metadata(&out).unwrap();
    let out_path = out.to_str().unwrap().to_string();
    let writes: Vec<&Event> = events
        .iter()
        .filter(|e| {
            e.kind == Kind::Syscall
                && e.nr == libc::SYS_write as u32
                && e.file.map(|f| f.1) == Some(meta.ino())
        })
        .collect();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].ret, 6);
    // The generation as the file system reports it (FS_IOC_GETVERSION; 0 where it has none).
    let generation = {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(&out).unwrap();
        let mut g: libc::c_long = 0;
        const FS_IOC_GETVERSION: libc::c_ulong = 0x8008_7601;
        // SAFETY: FS_IOC_GETVERSION writes one long into `g`, which outlives the call.
        match unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_GETVERSION, &mut g) } {
            0 => g as u32,
            _ => writes[0].file.map(|f| f.2).unwrap(),
        }
    };
    assert_eq!(
        writes[0].file,
        Some((meta.dev(), meta.ino(), generation)),
        "file identity (dev, ino, generation) as stat and the file system see it"
    );
    assert_eq!(writes[0].pos, Some(0));
    let reads: Vec<&Event> = events
        .iter()
        .filter(|e| {
            e.kind == Kind::Syscall
                && e.nr == libc::SYS_read as u32
                && e.file.map(|f| f.1) == Some(meta.ino())
                && e.ret > 0
        })
        .collect();
    assert_eq!(reads.len(), 1, "cat read the 6 bytes once: {reads:?}");
    assert_eq!(reads[0].ret, 6);
    // The same records as transactions on variables.
    let mut t = Translator::new(1, 0);
    t.watch(cg.id(), 7);
    let mut out = Vec::new();
    for e in &events {
        t.push(e, &mut out);
    }
    let file_var = out
        .iter()
        .find_map(|o| match o {
            Output::Var(id, VarDef::Inode { ino, name, .. }) if *ino == meta.ino() => {
                assert_eq!(name.as_deref(), Some(out_path.as_str()));
                Some(*id)
            }
            _ => None,
        })
        .expect("out.txt is a file variable");
    let writes: Vec<model::at::At> = out
        .iter()
        .filter_map(|o| match o {
            Output::At(a) if a.op == Op::Write && a.dst == file_var => Some(*a),
            _ => None,
        })
        .collect();
    assert_eq!(writes.len(), 1);
    assert_eq!((writes[0].ve, writes[0].off, writes[0].len), (7, 0, 6));
    let s = m.stats().unwrap();
    assert!(
        s.seen > s.emitted && s.skipped > 0,
        "uninteresting calls are counted, not recorded: {s:?}"
    );
    assert_eq!(s.lost, 0);
    m.unwatch(cg.id()).unwrap();
}
