//! Journal write benchmark: the same synthetic stream of atomic transactions into the JCS
//! journal (delta-coded batches, zstd blocks, CRC32C + blake3 chain, group commit with
//! fdatasync) and into SQLite (one row per transaction, WAL, batched transactions), in one
//! run. Prints events per wall second, per CPU second, and bytes per event at rest.
//!
//!   cargo run --release --example journal_bench -- [EVENTS] [DIR]

use model::at::{encode_batch, At, Op, Status};
use std::time::Instant;

/// A deterministic, realistic-looking stream: a few VEs, each with a few processes doing
/// mostly sequential reads and writes on a handful of files, with sockets now and then.
fn workload(n: usize) -> Vec<At> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut t = 1_795_000_000_000_000_000u64;
    let mut offs = [0u64; 64];
    (0..n)
        .map(|_| {
            t += 200 + rnd() % 800;
            let ve = 100 + rnd() % 4;
            let pid = (ve as u32) * 10 + (rnd() % 3) as u32;
            let file = (rnd() % 16) as u32 + (ve as u32 % 4) * 16;
            let r = rnd() % 100;
            let (op, src, dst, len) = match r {
                0..=54 => (Op::Read, 1000 + file, ve as u32, 4096),
                55..=89 => (Op::Write, ve as u32, 1000 + file, 100 + rnd() % 400),
                90..=94 => (
                    Op::Send,
                    ve as u32,
                    5000 + (rnd() % 4) as u32,
                    1 + rnd() % 1500,
                ),
                95..=98 => (
                    Op::Recv,
                    5000 + (rnd() % 4) as u32,
                    ve as u32,
                    1 + rnd() % 1500,
                ),
                _ => (Op::Open, 1000 + file, ve as u32, 0),
            };
            let slot = (file % 64) as usize;
            let off = offs[slot];
            offs[slot] += len;
            At {
                time_ns: t,
                ve,
                pid,
                tid: pid,
                op,
                status: Status::Committed,
                src,
                dst,
                off,
                len,
                result: len as i64,
            }
        })
        .collect()
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn dir_bytes(d: &std::path::Path) -> u64 {
    std::fs::read_dir(d)
        .unwrap()
        .flatten()
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum()
}

struct Result {
    name: &'static str,
    wall: f64,
    cpu: f64,
    bytes: u64,
}

fn jcs_journal(ats: &[At], dir: &std::path::Path, batch: usize) -> Result {
    let storage = journal::DirStorage::new(dir).unwrap();
    let (j, _) = journal::Journal::open(storage, journal::Options::default()).unwrap();
    let (c0, w0) = (cpu_seconds(), Instant::now());
    let w = journal::writer::Writer::spawn(j, 64, 64);
    let mut last = 0;
    for chunk in ats.chunks(batch) {
        last = w.submit(encode_batch(chunk)).unwrap();
    }
    w.wait(last).unwrap();
    w.close().unwrap();
    let r = Result {
        name: "JCS journal",
        wall: w0.elapsed().as_secs_f64(),
        cpu: cpu_seconds() - c0,
        bytes: dir_bytes(dir),
    };
    let v = journal::verify(&journal::DirStorage::new(dir).unwrap()).unwrap();
    assert!(v.ok());
    r
}

fn sqlite(
    ats: &[At],
    dir: &std::path::Path,
    batch: usize,
    sync: &str,
    name: &'static str,
) -> Result {
    let path = dir.join("at.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.pragma_update(None, "synchronous", sync).unwrap();
    c.execute_batch(
        "CREATE TABLE at(time INTEGER, ve INTEGER, pid INTEGER, tid INTEGER, op INTEGER, status INTEGER, \
         src INTEGER, dst INTEGER, off INTEGER, len INTEGER, result INTEGER)",
    )
    .unwrap();
    let (c0, w0) = (cpu_seconds(), Instant::now());
    for chunk in ats.chunks(batch) {
        let tx = c.unchecked_transaction().unwrap();
        {
            let mut st = tx
                .prepare_cached("INSERT INTO at VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)")
                .unwrap();
            for a in chunk {
                st.execute(rusqlite::params![
                    a.time_ns as i64,
                    a.ve as i64,
                    a.pid,
                    a.tid,
                    a.op as u8,
                    a.status as u8,
                    a.src,
                    a.dst,
                    a.off as i64,
                    a.len as i64,
                    a.result
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let r = Result {
        name,
        wall: w0.elapsed().as_secs_f64(),
        cpu: cpu_seconds() - c0,
        bytes: 0,
    };
    drop(c);
    Result {
        bytes: dir_bytes(dir),
        ..r
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|s| s.parse().expect("EVENTS is a number"))
        .unwrap_or(2_000_000);
    let base = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let batch = 4096;
    let ats = workload(n);
    let runs: Vec<Result> = vec![
        {
            let d = base.join("jcs-journal");
            let _ = std::fs::remove_dir_all(&d);
            jcs_journal(&ats, &d, batch)
        },
        {
            let d = base.join("sqlite-normal");
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            sqlite(&ats, &d, batch, "NORMAL", "SQLite WAL, synchronous=NORMAL")
        },
        {
            let d = base.join("sqlite-full");
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            sqlite(&ats, &d, batch, "FULL", "SQLite WAL, synchronous=FULL")
        },
    ];
    println!("{n} transactions, batches of {batch}\n");
    println!(
        "| store | events/s (wall) | events per CPU-second | bytes/event at rest | CPU ×JCS |"
    );
    println!("|---|---|---|---|---|");
    let jcpu = runs[0].cpu;
    for r in &runs {
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.1} |",
            r.name,
            n as f64 / r.wall,
            n as f64 / r.cpu,
            r.bytes as f64 / n as f64,
            r.cpu / jcpu
        );
    }
}
