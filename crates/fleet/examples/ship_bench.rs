//! The shipping benchmark's driver (bench/ship.sh): one measurement, printed as a JSON line.
//!
//!   ship_bench blocks JOURNAL_DIR NATS_URLS      ship the journal's blocks (jcs ship)
//!   ship_bench jsonl  JOURNAL_DIR NATS_URLS      the same transactions, one JSON message each
//!                                               (as event exporters ship them), same client,
//!                                               same pipelining (256 acks in flight)
//!   ship_bench collect OUT_DIR NATS_URLS CLICKHOUSE_URL   collect every host into ClickHouse
//!
//! CPU is this process's (user + system), from getrusage.

use std::time::Instant;

fn cpu_s() -> f64 {
    // SAFETY: a plain C struct of numbers, for which all zeroes is a value.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given, which lives through the call.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let (mode, dir, urls) = (a[0].as_str(), std::path::Path::new(&a[1]), a[2].as_str());
    static NEVER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    match mode {
        "blocks" => {
            let events = fleet::export::Contents::read(dir).unwrap().ats.len();
            let (t, c) = (Instant::now(), cpu_s());
            let mut o =
                fleet::ship::ShipOptions::new(urls, &format!("bench-{}", std::process::id()));
            o.replicas = 3;
            let r = fleet::ship::ship(dir, &o, &NEVER, &mut |_| {}).unwrap();
            let (secs, cpu) = (t.elapsed().as_secs_f64(), cpu_s() - c);
            println!(
                "{}",
                serde_json::json!({"mode": "blocks", "events": events, "messages": r.messages, "bytes": r.bytes,
                    "seconds": secs, "cpu_seconds": cpu})
            );
        }
        "jsonl" => {
            let c0 = fleet::export::Contents::read(dir).unwrap();
            let lines: Vec<Vec<u8>> = c0
                .ats
                .iter()
                .map(|a| {
                    serde_json::to_vec(&serde_json::json!({"time_ns": a.time_ns, "ve": a.ve, "pid": a.pid, "tid": a.tid,
                        "op": a.op.name(), "status": a.status.name(), "src": a.src, "dst": a.dst, "off": a.off, "len": a.len,
                        "result": a.result}))
                    .unwrap()
                })
                .collect();
            let (t, c) = (Instant::now(), cpu_s());
            let bytes: usize = lines.iter().map(|l| l.len()).sum();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let client = async_nats::connect(urls.split(',').collect::<Vec<_>>())
                    .await
                    .unwrap();
                let js = async_nats::jetstream::new(client);
                let _ = js
                    .get_or_create_stream(async_nats::jetstream::stream::Config {
                        name: "EVENTS".into(),
                        subjects: vec!["events.>".into()],
                        num_replicas: 3,
                        storage: async_nats::jetstream::stream::StorageType::File,
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                let mut inflight = std::collections::VecDeque::new();
                for l in lines {
                    inflight.push_back(js.publish("events.bench", l.into()).await.unwrap());
                    if inflight.len() >= 256 {
                        inflight.pop_front().unwrap().await.unwrap();
                    }
                }
                for f in inflight {
                    f.await.unwrap();
                }
            });
            let (secs, cpu) = (t.elapsed().as_secs_f64(), cpu_s() - c);
            println!(
                "{}",
                serde_json::json!({"mode": "jsonl", "events": c0.ats.len(), "messages": c0.ats.len(), "bytes": bytes,
                    "seconds": secs, "cpu_seconds": cpu})
            );
        }
        "collect" => {
            let ch = fleet::clickhouse::ClickHouse::parse(&a[3]).unwrap();
            let mut sink = fleet::clickhouse::ClickHouseSink::new(ch).unwrap();
            let opts = fleet::collect::CollectOptions {
                servers: urls.to_string(),
                stream: fleet::DEFAULT_STREAM.into(),
                hosts: vec![],
                out: dir.to_path_buf(),
                follow: false,
                wait_at_end: fleet::collect::WAIT_AT_END,
            };
            let (t, c) = (Instant::now(), cpu_s());
            let r = fleet::collect::collect(&opts, &NEVER, &mut sink, &mut |_| {}).unwrap();
            let (secs, cpu) = (t.elapsed().as_secs_f64(), cpu_s() - c);
            println!(
                "{}",
                serde_json::json!({"mode": "collect", "events": sink.loaded, "blocks": r.iter().map(|h| h.blocks).sum::<u64>(),
                    "seconds": secs, "cpu_seconds": cpu})
            );
        }
        m => panic!("mode {m}: blocks, jsonl or collect"),
    }
}
