//! Writes a synthetic journal into a store, for the summarization and tracking benchmarks:
//! VEs that receive from endpoints, write and read files (some shared between VEs, some read
//! again and again at the same place), and send. Deterministic.
//!
//!   cargo run --release --example synth_journal -- EVENTS STORE_DIR

use model::at::{At, Op, Status, VarDef};
use record::Record;
use std::net::Ipv4Addr;

const VES: u32 = 8;
const FILES: u32 = 64;
const ENDPOINTS: u32 = 8;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::path::PathBuf::from(args.next().expect("usage: synth_journal EVENTS STORE_DIR"));
    let (j, _) = journal::Journal::open(
        journal::DirStorage::new(dir.join("journal")).expect("journal dir"),
        journal::Options::default(),
    )
    .expect("open journal");
    let w = journal::writer::Writer::spawn(j, 64, 64);
    // Variables: memories 1..=VES, files, endpoints.
    let mem = |ve: u32| ve;
    let file = |f: u32| 100 + f;
    let ep = |e: u32| 1000 + e;
    let mut defs: Vec<(u32, VarDef)> = (1..=VES)
        .map(|v| (mem(v), VarDef::Memory { ve: u64::from(v) }))
        .collect();
    defs.extend((0..FILES).map(|f| {
        (
            file(f),
            VarDef::File {
                dev: 1,
                ino: u64::from(f),
                path: Some(format!("/data/f{f}")),
            },
        )
    }));
    defs.extend((0..ENDPOINTS).map(|e| {
        (
            ep(e),
            VarDef::Endpoint {
                addr: Ipv4Addr::new(10, 9, 0, e as u8 + 1).into(),
                port: 443,
            },
        )
    }));
    w.submit(Record::Vars(defs).encode()).unwrap();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let mut t = 1_795_000_000_000_000_000u64;
    let mut sizes = [0u64; FILES as usize];
    let mut batch = Vec::with_capacity(4096);
    let mut last = 0;
    for i in 0..n {
        t += 500 + rnd(1000);
        let ve = 1 + rnd(u64::from(VES)) as u32;
        // Each VE mostly uses "its" files; every fourth file is shared by all.
        let f = if rnd(4) == 0 {
            4 * rnd(16) as u32
        } else {
            (ve * 8 + rnd(8) as u32) % FILES
        };
        let (op, src, dst, off, len) = match rnd(100) {
            // A hot block read again and again (a config, an index page).
            0..=29 => (Op::Read, file(f), mem(ve), 0, 4096),
            30..=54 => (Op::Read, file(f), mem(ve), 4096 * rnd(16), 4096),
            55..=84 => {
                let o = sizes[f as usize];
                let l = 100 + rnd(400);
                sizes[f as usize] += l;
                (Op::Write, mem(ve), file(f), o, l)
            }
            85..=94 => (
                Op::Send,
                mem(ve),
                ep(rnd(u64::from(ENDPOINTS)) as u32),
                0,
                1 + rnd(1500),
            ),
            _ => (
                Op::Recv,
                ep(rnd(u64::from(ENDPOINTS)) as u32),
                mem(ve),
                0,
                1 + rnd(1500),
            ),
        };
        batch.push(At {
            time_ns: t,
            ve: u64::from(ve),
            pid: ve * 10,
            tid: ve * 10,
            op,
            status: Status::Committed,
            src,
            dst,
            off,
            len,
            result: len as i64,
        });
        if batch.len() == 4096 || i + 1 == n {
            last = w
                .submit(Record::Ats(std::mem::take(&mut batch)).encode())
                .unwrap();
        }
    }
    w.wait(last).unwrap();
    w.close().unwrap();
    eprintln!("wrote {n} transactions to {}", dir.display());
}
