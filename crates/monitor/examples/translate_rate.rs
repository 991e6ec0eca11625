//! The translator's CPU per record on one core, for an open+close loop of one file of
//! persistent storage (what `bench/event-cost.sh`'s openclose loop sends, without the kernel
//! and the journal), or with `write` a loop of 1-byte writes to it (its write loop):
//! `cargo run --release -p monitor --example translate_rate -- [N] [openclose|write]`.
//! With `fork P F`: P processes each hold F descriptors, and one of them forks and its child
//! exits N times (a server's workers beside a shell that runs commands).
//! (Each record is cloned before it is pushed, as decoding makes a new one: that is counted.)
use monitor::decode::{Event, Kind};
use monitor::translate::Translator;
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut t = Translator::new(1, 0);
    t.watch(77, 1);
    // A VE with persistent storage at /data, as the bench's (what it changes there is kept).
    t.set_outside(77, &["/data".to_string()]);
    t.set_store_names(77, &[("/data".into(), "persist:bench:/data".into())]);
    let path = b"/data/f\0".to_vec();
    let open = Event {
        time_ns: 0,
        cgroup_id: 77,
        pid: 10,
        tid: 10,
        kind: Kind::Syscall,
        nr: libc::SYS_openat as u32,
        ret: 3,
        args: [(-100i64) as u64, 0, 0o1, 0, 0, 0],
        file: Some((1, 5, 0)),
        pos: Some(0),
        file2: None,
        pos2: None,
        size: 0,
        enter_ns: 0,
        flags: 0,
        rule: 0,
        data: path.clone(),
        data2: b"f\0".to_vec(),
    };
    // An event of the same file, descriptor 3, without paths.
    let on_fd = |nr: i64, ret: i64, args: [u64; 6]| Event {
        nr: nr as u32,
        ret,
        args,
        data: Vec::new(),
        data2: Vec::new(),
        ..open.clone()
    };
    let close = on_fd(libc::SYS_close, 0, [3, 0, 0, 0, 0, 0]);
    if std::env::args().nth(2).as_deref() == Some("fork") {
        let arg = |i: usize, d: u32| {
            std::env::args()
                .nth(i)
                .and_then(|a| a.parse().ok())
                .unwrap_or(d)
        };
        let (procs, per) = (arg(3, 1000), arg(4, 100));
        let mut out = Vec::new();
        for p in 0..procs {
            for fd in 0..per {
                let e = Event {
                    pid: 1000 + p,
                    tid: 1000 + p,
                    ret: 3 + fd as i64,
                    ..open.clone()
                };
                t.push(&e, &mut out);
                out.clear();
            }
        }
        let life = |kind: Kind, ret: i64, pid: u32| Event {
            kind,
            ret,
            pid,
            tid: pid,
            nr: 0,
            data: Vec::new(),
            data2: Vec::new(),
            file: None,
            ..open.clone()
        };
        let t0 = std::time::Instant::now();
        for i in 0..n {
            let child = 1_000_000 + i as u32;
            t.push(&life(Kind::Fork, i64::from(child), 10), &mut out);
            t.push(&life(Kind::Exit, 0, child), &mut out);
            out.clear();
        }
        let el = t0.elapsed();
        println!(
            "{:.1} ns per fork and exit ({procs} processes of {per} descriptors beside)",
            el.as_nanos() as f64 / n as f64
        );
        return;
    }
    let write = on_fd(libc::SYS_write, 1, [3, 0, 1, 0, 0, 0]);
    let writes = std::env::args().nth(2).as_deref() == Some("write");
    let mut out = Vec::with_capacity(4096);
    if writes {
        t.push(&open, &mut out);
    }
    // Event i of the loop (2n events): each cloned first, as decoding makes a new one.
    let event = |i: usize| {
        let mut e = match (writes, i % 2) {
            (true, _) => Event {
                pos: Some(i as i64),
                ..write.clone()
            },
            (false, 0) => open.clone(),
            (false, _) => close.clone(),
        };
        e.time_ns = 1 + i as u64;
        e.enter_ns = e.time_ns;
        e
    };
    let t0 = std::time::Instant::now();
    for i in 0..2 * n {
        t.push(&event(i), &mut out);
        if out.len() > 4000 {
            out.clear();
        }
    }
    let el = t0.elapsed();
    println!("{:.1} ns per event", el.as_nanos() as f64 / (2 * n) as f64);
}
