//! The translator's CPU per record on one core, for an open+close loop of one file of
//! persistent storage (what `bench/event-cost.sh`'s openclose loop sends, without the kernel
//! and the journal), or with `write` a loop of 1-byte writes to it (its write loop):
//! `cargo run --release -p monitor --example translate_rate -- [N] [openclose|write]`.
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
    let close = Event {
        nr: libc::SYS_close as u32,
        ret: 0,
        args: [3, 0, 0, 0, 0, 0],
        data: Vec::new(),
        data2: Vec::new(),
        ..open.clone()
    };
    let mut out = Vec::with_capacity(4096);
    if std::env::args().nth(2).as_deref() == Some("write") {
        t.push(&open, &mut out);
        let write = Event {
            nr: libc::SYS_write as u32,
            ret: 1,
            args: [3, 0, 1, 0, 0, 0],
            data: Vec::new(),
            data2: Vec::new(),
            ..open.clone()
        };
        let t0 = std::time::Instant::now();
        for i in 0..2 * n {
            let mut w = write.clone();
            w.time_ns = 1 + i as u64;
            w.enter_ns = w.time_ns;
            w.pos = Some(i as i64);
            t.push(&w, &mut out);
            if out.len() > 4000 {
                out.clear();
            }
        }
        let el = t0.elapsed();
        println!("{:.1} ns per event", el.as_nanos() as f64 / (2 * n) as f64);
        return;
    }
    let t0 = std::time::Instant::now();
    for i in 0..n {
        let mut o = open.clone();
        o.time_ns = 2 * i as u64;
        o.enter_ns = o.time_ns;
        t.push(&o, &mut out);
        let mut c = close.clone();
        c.time_ns = 2 * i as u64 + 1;
        c.enter_ns = c.time_ns;
        t.push(&c, &mut out);
        if out.len() > 4000 {
            out.clear();
        }
    }
    let el = t0.elapsed();
    println!("{:.1} ns per event", el.as_nanos() as f64 / (2 * n) as f64);
}
