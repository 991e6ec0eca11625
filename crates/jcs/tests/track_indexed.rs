//! Tracking through the segment indexes gives the answer of a full read, on random journals:
//! many small segments (sealed ones indexed, the open one indexed as a prefix and then grown),
//! files named by definition and by name records (renames included), endpoints, gaps, and
//! questions back and forward, with and without a time. No privileges: a store in a temporary
//! directory, indexed as the daemon indexes it.

use model::at::{At, Name, Op, Status, VarDef};
use query::track::{track, track_store, Direction, Source};
use record::{Record, VarQuery};
use std::net::{Ipv4Addr, SocketAddr};

struct Rng(u64);

impl Rng {
    fn next(&mut self, m: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % m
    }
}

const VES: u32 = 12;
const FILES: u32 = 30;
const EPS: u32 = 4;

fn mem(v: u32) -> u32 {
    v
}
fn file(f: u32) -> u32 {
    100 + f
}
fn ep(e: u32) -> u32 {
    200 + e
}
fn flow(e: u32, v: u32) -> u32 {
    300 + e * 100 + v
}

fn addr(e: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 7, 0, e as u8 + 1)
}

/// A journal of `n` transactions in `home`/journal, in segments of `seg` bytes; returns the
/// instants the transactions span.
fn write_journal(home: &std::path::Path, seed: u64, n: usize, seg: u64, start: u64) -> u64 {
    let opts = journal::Options {
        segment_max_bytes: seg,
        ..journal::Options::default()
    };
    let (j, _) = journal::Journal::open(
        journal::DirStorage::new(home.join("journal")).unwrap(),
        opts,
    )
    .unwrap();
    let w = journal::writer::Writer::spawn(j, 64, 1);
    let mut r = Rng(seed | 1);
    let mut t = start;
    let mut last = 0;
    if start == 1_000_000 {
        let mut defs: Vec<(u32, VarDef)> = (1..=VES)
            .map(|v| (mem(v), VarDef::Memory { ve: u64::from(v) }))
            .collect();
        for f in 0..FILES {
            // Every third file is known by identity only (its names are name records).
            let d = if f % 3 == 0 {
                VarDef::Inode {
                    dev: 9,
                    ino: u64::from(f),
                    gen: 1,
                    name: None,
                }
            } else {
                VarDef::File {
                    dev: 9,
                    ino: u64::from(f),
                    path: Some(format!("/data/f{f}")),
                }
            };
            defs.push((file(f), d));
        }
        for e in 0..EPS {
            defs.push((
                ep(e),
                VarDef::Endpoint {
                    addr: addr(e).into(),
                    port: 80,
                },
            ));
            for v in 1..=VES {
                defs.push((
                    flow(e, v),
                    VarDef::Flow {
                        from: SocketAddr::new(addr(e).into(), 80),
                        to: SocketAddr::new(Ipv4Addr::new(10, 8, 0, v as u8).into(), 4000),
                        udp: false,
                    },
                ));
            }
        }
        w.submit(Record::Vars(defs).encode()).unwrap();
    }
    let mut batch = Vec::new();
    let mut names = Vec::new();
    for i in 0..n {
        t += 1 + r.next(1000);
        // VEs run one after the other (as they do: each for a while), now and then two at
        // once.
        let v = if r.next(50) == 0 {
            1 + r.next(u64::from(VES)) as u32
        } else {
            1 + ((i / 250) as u32 + (seed as u32)) % VES
        };
        // VEs keep mostly to a few files each: the graph has parts a question never reaches.
        let f = if r.next(200) == 0 {
            r.next(u64::from(FILES)) as u32
        } else {
            (v * 2 + r.next(2) as u32) % FILES
        };
        let e = r.next(u64::from(EPS)) as u32;
        let (op, src, dst, off, len) = match r.next(1000) {
            0..=349 => (Op::Read, file(f), mem(v), r.next(4) * 100, 100),
            350..=699 => (Op::Write, mem(v), file(f), r.next(4) * 100, 100),
            700..=799 => (Op::Recv, flow(e, v), mem(v), 0, 50),
            800..=899 => (Op::Send, mem(v), flow(e, v), 0, 50),
            900..=939 => (Op::Recv, ep(e), mem(v), 0, 20),
            940..=997 => {
                // A name given to a file known by identity (or taken from it).
                let g = 3 * ((v + r.next(2) as u32) % (FILES / 3));
                names.push(Name {
                    time_ns: t,
                    ve: u64::from(v),
                    var: file(g),
                    path: format!("/data/n{}", r.next(4)),
                    store: None,
                    bound: r.next(3) != 0,
                });
                (Op::Open, file(g), mem(v), 0, 0)
            }
            _ => (Op::Gap, 0, 0, t.saturating_sub(5_000), 3),
        };
        batch.push(At {
            time_ns: t,
            ve: u64::from(v),
            pid: v,
            tid: v,
            op,
            status: if op == Op::Gap {
                Status::Failed
            } else {
                Status::Committed
            },
            src,
            dst,
            off,
            len,
            result: len as i64,
        });
        if batch.len() == 40 || i + 1 == n {
            if !names.is_empty() {
                w.submit(Record::Names(std::mem::take(&mut names)).encode())
                    .unwrap();
            }
            last = w
                .submit(Record::Ats(std::mem::take(&mut batch)).encode())
                .unwrap();
        }
    }
    w.wait(last).unwrap();
    w.close().unwrap();
    t
}

fn answers(
    store: &store::Store,
    q: &VarQuery,
    dir: Direction,
    at: Option<u64>,
) -> (String, String) {
    let show = |a: query::Result<query::track::Answer>| match a {
        Ok(a) => serde_json::to_string(&a.to_json()).unwrap(),
        Err(e) => format!("error: {e}"),
    };
    let indexed = show(track_store(store, dir, q, at, None, Source::Transactions));
    let full = show(track(
        &store.journal_dir(),
        dir,
        q,
        at,
        None,
        Source::Transactions,
    ));
    (indexed, full)
}

#[test]
fn indexed_tracking_equals_a_full_read_on_random_journals() {
    let mut compared = 0;
    let mut reached_some = 0;
    let (mut through_indexes, mut fewer) = (0, 0);
    for seed in [7u64, 1234, 99_991] {
        let home = tempfile::tempdir().unwrap();
        let end = write_journal(home.path(), seed, 3000, 4 << 10, 1_000_000);
        let store = store::Store::open(home.path()).unwrap();
        let dir = store.journal_dir();
        recorder::index::index_sealed(&dir, &store.catalog).unwrap();
        assert!(recorder::index::index_open(&dir, &store.catalog, &|| true, &[]).unwrap());
        // The open segment grows after its index was written: its newest bytes are read whole.
        write_journal(home.path(), seed ^ 0x55, 200, 1 << 30, end);
        let segs = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
            .count();
        assert!(segs >= 5, "{segs} segments");
        let mut r = Rng(seed * 31 + 7);
        let mut questions: Vec<String> = vec!["file:/data/n1".into(), "file:/nowhere".into()];
        for _ in 0..12 {
            questions.push(match r.next(5) {
                0 => format!("ve:{}", 1 + r.next(u64::from(VES))),
                1 | 2 => format!("file:/data/f{}", 1 + 3 * r.next(9)),
                3 => format!("endpoint:tcp/{}:80", addr(r.next(u64::from(EPS)) as u32)),
                _ => format!("file:/data/n{}", r.next(4)),
            });
        }
        let total = query::track::Loaded::read(&dir).unwrap().ats.len();
        for q in &questions {
            let q = VarQuery::parse(q).unwrap();
            // The indexed path is taken (not the fallback), and reads less than everything.
            let scope = query::resolve::Scope::default();
            if let Some(l) =
                query::track::Loaded::read_reachable(&store, &q, Direction::Back, &scope).unwrap()
            {
                through_indexes += 1;
                if l.ats.len() < total {
                    fewer += 1;
                }
            }
            for dir in [Direction::Back, Direction::Forward] {
                for at in [None, Some(1_000_000 + r.next(end - 1_000_000))] {
                    let (indexed, full) = answers(&store, &q, dir, at);
                    assert_eq!(indexed, full, "{q} {dir:?} at {at:?}");
                    compared += 1;
                    if indexed.contains("\"edges\":[{") {
                        reached_some += 1;
                    }
                }
            }
        }
    }
    assert!(compared >= 150, "{compared}");
    assert!(
        through_indexes >= 30,
        "{through_indexes} questions through the indexes"
    );
    assert!(
        fewer >= 5,
        "{fewer} questions read less than the whole journal"
    );
    // The questions were not all empty ones.
    assert!(reached_some >= compared / 3, "{reached_some} of {compared}");
}
