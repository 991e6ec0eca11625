//! Writes a synthetic journal of many VEs that mostly keep to themselves, for the tracking
//! scale benchmark (bench/track-scale.sh): VE v (2,000 transactions each, one after the
//! other) receives from its own endpoint, writes and reads its own eight files
//! `/data/vV/fK` and sends back; every 100th VE also reads `/data/shared`, which VE 1 wrote.
//! A question about one VE's file reaches a few thousand transactions, however long the
//! journal. Deterministic; 1 MiB segments (a journal of 10^8 in 64 MiB segments has about as many) (sealed ones get indexed when a daemon starts).
//!
//!   cargo run --release --example sparse_journal -- EVENTS STORE_DIR

use model::at::{At, Op, Status, VarDef};
use record::Record;
use std::net::Ipv4Addr;

const PER_VE: usize = 2000;
const FILES: u32 = 8;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir =
        std::path::PathBuf::from(args.next().expect("usage: sparse_journal EVENTS STORE_DIR"));
    // (JCS_SEGMENT_BYTES: another size, e.g. the daemon's 64 MiB: one open segment.)
    let seg = std::env::var("JCS_SEGMENT_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 20);
    let opts = journal::Options {
        segment_max_bytes: seg,
        ..journal::Options::default()
    };
    let (j, _) = journal::Journal::open(
        journal::DirStorage::new(dir.join("journal")).expect("journal dir"),
        opts,
    )
    .expect("open journal");
    // A block per 1,000 transactions: what the daemon writes in 10 ms (its linger) at
    // 100,000 events a second.
    let w = journal::writer::Writer::spawn(j, 64, 1);
    let ves = n.div_ceil(PER_VE) as u32;
    let mem = |ve: u32| ve;
    let file = |ve: u32, k: u32| 10_000_000 + ve * FILES + k;
    let ep = |ve: u32| 5_000_000 + ve;
    const SHARED: u32 = 4_999_999;
    // Definitions as the daemon writes them: each VE's just before its first transactions.
    let defs_of = |v: u32| -> Vec<(u32, VarDef)> {
        let mut d = vec![
            (mem(v), VarDef::Memory { ve: u64::from(v) }),
            (
                ep(v),
                VarDef::Endpoint {
                    addr: Ipv4Addr::from(0x0a00_0000 + v).into(),
                    port: 443,
                },
            ),
        ];
        d.extend((0..FILES).map(|k| {
            (
                file(v, k),
                VarDef::File {
                    dev: 1,
                    ino: 1000 + u64::from(file(v, k)),
                    path: Some(format!("/data/v{v}/f{k}")),
                },
            )
        }));
        d
    };
    let mut defs: Vec<(u32, VarDef)> = vec![(
        SHARED,
        VarDef::File {
            dev: 1,
            ino: 1,
            path: Some("/data/shared".into()),
        },
    )];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let mut t = 1_795_000_000_000_000_000u64;
    let mut sizes = vec![0u64; (ves * FILES) as usize + FILES as usize * 2];
    let mut batch = Vec::with_capacity(1000);
    let mut last = 0;
    for i in 0..n {
        t += 500 + rnd(1000);
        let ve = 1 + (i / PER_VE) as u32;
        if i % PER_VE == 0 {
            defs.extend(defs_of(ve));
        }
        let k = rnd(u64::from(FILES)) as u32;
        let f = file(ve, k);
        let slot = (ve * FILES + k) as usize % sizes.len();
        let (op, src, dst, off, len) = match (i % PER_VE, rnd(100)) {
            (0, _) => (Op::Recv, ep(ve), mem(ve), 0, 1 + rnd(1500)),
            (1, _) if ve == 1 => (Op::Write, mem(ve), SHARED, 0, 4096),
            (1, _) if ve.is_multiple_of(100) => (Op::Read, SHARED, mem(ve), 0, 4096),
            (_, 0..=44) => (Op::Read, f, mem(ve), 0, 4096),
            (_, 45..=89) => {
                let o = sizes[slot];
                let l = 100 + rnd(400);
                sizes[slot] += l;
                (Op::Write, mem(ve), f, o, l)
            }
            _ => (Op::Send, mem(ve), ep(ve), 0, 1 + rnd(1500)),
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
        if batch.len() == 1000 || i + 1 == n {
            if !defs.is_empty() {
                w.submit(Record::Vars(std::mem::take(&mut defs)).encode())
                    .unwrap();
            }
            last = w
                .submit(Record::Ats(std::mem::take(&mut batch)).encode())
                .unwrap();
        }
    }
    w.wait(last).unwrap();
    w.close().unwrap();
    eprintln!("wrote {n} transactions of {ves} VEs to {}", dir.display());
}
