//! Journal behaviour: round trips, the chain across segments, tamper detection, recovery of
//! torn tails and damaged segments, crash consistency under random failures, the writer.

use journal::format::{Codec, SEGMENT_HEADER_LEN};
use journal::writer::Writer;
use journal::{read_all, verify, DirStorage, Journal, MemStorage, Options, Storage};

fn rec(i: u64) -> Vec<u8> {
    format!("record-{i}-{}", "z".repeat((i % 37) as usize)).into_bytes()
}

fn small_segments() -> Options {
    Options {
        segment_max_bytes: 600,
        codec: Codec::Zstd,
        zstd_level: 3,
    }
}

/// Appends `blocks` blocks of `per` records; returns the storage and the head.
fn filled(blocks: u64, per: u64, opts: Options) -> (MemStorage, [u8; 32]) {
    let (mut j, _) = Journal::open(MemStorage::default(), opts).unwrap();
    for b in 0..blocks {
        let recs: Vec<Vec<u8>> = (0..per).map(|i| rec(b * per + i)).collect();
        j.append(&recs).unwrap();
    }
    let head = j.head();
    (j.storage().clone(), head)
}

#[test]
fn round_trip_across_segments() {
    let (s, head) = filled(40, 5, small_segments());
    let segs = s.list().unwrap();
    assert!(segs.len() > 3, "rotation made several segments: {segs:?}");
    let all = read_all(&s).unwrap();
    assert_eq!(all.len(), 200);
    for (i, (seq, r)) in all.iter().enumerate() {
        assert_eq!(*seq, i as u64);
        assert_eq!(r, &rec(i as u64));
    }
    let v = verify(&s).unwrap();
    assert!(v.ok(), "{v:?}");
    assert_eq!((v.blocks, v.records), (40, 200));
    assert_eq!(v.head, journal::format::hex(&head));
    // Reopening continues the same chain and numbering.
    let (mut j, rec0) = Journal::open(s, small_segments()).unwrap();
    assert!(rec0.truncated.is_none() && rec0.quarantined.is_empty());
    assert_eq!(j.next_seq(), 200);
    assert_eq!(j.append(&[b"more".to_vec()]).unwrap().first_seq, 200);
    assert!(verify(j.storage()).unwrap().ok());
}

#[test]
fn any_flipped_byte_is_reported_with_its_segment() {
    let (s, _) = filled(12, 4, small_segments());
    let names = s.list().unwrap();
    for (k, name) in names.iter().enumerate() {
        let len = s.written[name].len();
        for pos in [
            0,
            SEGMENT_HEADER_LEN - 1,
            SEGMENT_HEADER_LEN + 5,
            len / 2,
            len - 1,
        ] {
            let mut t = s.clone();
            t.written.get_mut(name).unwrap()[pos] ^= 0x20;
            let v = verify(&t).unwrap();
            let p = v
                .first_problem
                .unwrap_or_else(|| panic!("flip at {name}:{pos} undetected"));
            assert_eq!(&p.segment, name, "problem reported in the wrong segment");
            // Segments before the damaged one verify fully.
            assert!(v.segments as usize == k + 1);
        }
    }
}

#[test]
fn removed_or_replaced_segments_break_the_chain() {
    let (s, _) = filled(12, 4, small_segments());
    let names = s.list().unwrap();
    let mut t = s.clone();
    t.remove(&names[1]).unwrap();
    let v = verify(&t).unwrap();
    assert!(v
        .first_problem
        .unwrap()
        .what
        .contains("does not continue the chain"));
    // A segment rebuilt by someone else (valid blocks, different content) is caught too.
    let (other, _) = filled(
        12,
        4,
        Options {
            codec: Codec::None,
            ..small_segments()
        },
    );
    let mut t = s.clone();
    let n = &names[2];
    t.written.insert(n.clone(), other.written[n].clone());
    assert!(verify(&t).unwrap().first_problem.is_some());
}

#[test]
fn torn_tail_is_cut_and_acknowledged_data_kept() {
    let (mut j, _) = Journal::open(MemStorage::default(), Options::default()).unwrap();
    for b in 0..5u64 {
        j.append(&[rec(b)]).unwrap();
    }
    let mut s = j.storage().clone();
    // An append that was written but not synced when the machine died: half of it landed.
    let name = s.list().unwrap()[0].clone();
    let good_len = s.written[&name].len();
    s.append(&name, &[0x4a, 0x42, 0x4c, 0x4b, 1, 2, 3]).unwrap();
    let crashed = s.crash(5);
    assert_eq!(crashed.written[&name].len(), good_len + 5);
    let (j, r) = Journal::open(crashed, Options::default()).unwrap();
    let (seg, off, cut) = r.truncated.clone().expect("a torn tail is reported");
    assert_eq!((seg, off, cut), (name.clone(), good_len as u64, 5));
    assert!(r.quarantined.is_empty());
    assert_eq!(read_all(j.storage()).unwrap().len(), 5);
    assert!(verify(j.storage()).unwrap().ok());
}

#[test]
fn damage_in_the_middle_quarantines_and_keeps_the_prefix() {
    let (mut s, name, ends) = six_blocks();
    // Corrupt block 2 (between the ends of blocks 1 and 2): blocks 3.. are intact behind it.
    s.written.get_mut(&name).unwrap()[ends[1] + 80] ^= 0xff;
    s.synced = s.written.clone();
    let (mut j, r) = Journal::open(s, Options::default()).unwrap();
    assert!(
        r.truncated.is_none(),
        "damage with intact data behind it must not be cut"
    );
    assert_eq!(r.quarantined.len(), 1);
    assert!(
        r.quarantined[0].1.contains("intact block follows"),
        "{:?}",
        r.quarantined
    );
    // The damaged rest is kept aside, byte for byte; the live segment holds the valid prefix.
    let original = j.storage().written[&name].clone();
    let aside = &j.storage().written[&format!("{name}.at-{}.quarantined", ends[1])];
    assert_eq!(aside.len(), ends[5] - ends[1]);
    assert_eq!(original.len(), ends[1]);
    assert_eq!(read_all(j.storage()).unwrap().len(), 2);
    j.append(&[b"after".to_vec()]).unwrap();
    let v = verify(j.storage()).unwrap();
    assert!(v.first_problem.is_none(), "{v:?}");
    assert_eq!(
        v.quarantined.len(),
        1,
        "verify keeps reporting the quarantined segment"
    );
    assert!(!v.ok());
}

/// Six blocks in one segment; returns the storage and each block's end offset.
fn six_blocks() -> (MemStorage, String, Vec<usize>) {
    let (mut j, _) = Journal::open(MemStorage::default(), Options::default()).unwrap();
    let mut ends = vec![];
    for b in 0..6u64 {
        j.append(&[rec(b)]).unwrap();
        let n = j.storage().list().unwrap()[0].clone();
        ends.push(j.storage().written[&n].len());
    }
    let s = j.storage().clone();
    let name = s.list().unwrap()[0].clone();
    (s, name, ends)
}

#[test]
fn a_bad_byte_in_the_last_full_block_is_damage_not_a_torn_tail() {
    let (mut s, name, ends) = six_blocks();
    let before = s.written[&name].clone();
    // A flipped byte inside the last block's payload: the block is whole, its CRC is wrong.
    s.written.get_mut(&name).unwrap()[ends[4] + 90] ^= 0x01;
    s.synced = s.written.clone();
    let (j, r) = Journal::open(s, Options::default()).unwrap();
    assert!(
        r.truncated.is_none(),
        "acknowledged data cut as a torn tail: {r:?}"
    );
    assert_eq!(r.quarantined.len(), 1, "{r:?}");
    // Nothing destroyed: the last block's bytes (as they are now) are kept aside.
    let aside = &j.storage().written[&r.quarantined[0].0];
    assert_eq!(aside.len(), ends[5] - ends[4]);
    assert_eq!(aside[..89], before[ends[4]..ends[4] + 89]);
    assert!(
        !verify(j.storage()).unwrap().ok(),
        "verify reports the damage"
    );
}

#[test]
fn a_second_quarantine_never_overwrites_the_first() {
    let (mut s, name, ends) = six_blocks();
    s.written.get_mut(&name).unwrap()[ends[3] + 90] ^= 0x01;
    s.synced = s.written.clone();
    let (j, r1) = Journal::open(s, Options::default()).unwrap();
    let mut s = j.storage().clone();
    // The same offset is damaged again after a repair (the segment was cut at block 4).
    let mut j2 = Journal::open(s.clone(), Options::default()).unwrap().0;
    for b in 0..2u64 {
        j2.append(&[rec(b)]).unwrap();
    }
    s = j2.storage().clone();
    s.written.get_mut(&name).unwrap()[ends[3] + 90] ^= 0x01;
    s.synced = s.written.clone();
    let (j, r2) = Journal::open(s, Options::default()).unwrap();
    assert_eq!((r1.quarantined.len(), r2.quarantined.len()), (1, 1));
    assert_ne!(r1.quarantined[0].0, r2.quarantined[0].0);
    for q in [&r1.quarantined[0].0, &r2.quarantined[0].0] {
        assert!(j.storage().written.contains_key(q), "{q} is gone");
    }
    assert_eq!(verify(j.storage()).unwrap().quarantined.len(), 2);
}

#[test]
fn a_segment_cut_inside_its_header_is_set_aside_not_removed() {
    let (mut s, name, _) = six_blocks();
    s.written.get_mut(&name).unwrap().truncate(20);
    s.synced = s.written.clone();
    let (j, r) = Journal::open(s, Options::default()).unwrap();
    assert_eq!(r.quarantined.len(), 1, "{r:?}");
    assert_eq!(j.storage().written[&r.quarantined[0].0].len(), 20);
    let v = verify(j.storage()).unwrap();
    assert!(!v.ok(), "verify must not say ok: {v:?}");
}

#[test]
fn full_disk_fails_the_append_and_loses_nothing_acknowledged() {
    let s = MemStorage {
        space_left: Some(700),
        ..MemStorage::default()
    };
    let (mut j, _) = Journal::open(
        s,
        Options {
            codec: Codec::None,
            ..Options::default()
        },
    )
    .unwrap();
    let mut acked = 0;
    let err = loop {
        match j.append(&[vec![7u8; 100]]) {
            Ok(_) => acked += 1,
            Err(e) => break e,
        }
    };
    assert!(
        err.to_string().contains("No space left") || err.to_string().contains("os error 28"),
        "{err}"
    );
    let mut s = j.storage().clone();
    s.space_left = None;
    let (j2, _) = Journal::open(s, Options::default()).unwrap();
    assert_eq!(read_all(j2.storage()).unwrap().len(), acked);
    assert!(verify(j2.storage()).unwrap().ok());
}

/// A writer on a full disk stays up: waits fail at once with the disk-full error, nothing new
/// is taken, the block in hand is retried; when space returns it is written (acknowledged
/// once durable) and new records are taken again. Nothing is lost or written twice.
#[test]
fn a_writer_on_a_full_disk_waits_for_space_and_goes_on() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let space = std::sync::Arc::new(AtomicUsize::new(400));
    let s = MemStorage {
        shared_space: Some(space.clone()),
        ..MemStorage::default()
    };
    let (j, _) = Journal::open(
        s,
        Options {
            codec: Codec::None,
            ..Options::default()
        },
    )
    .unwrap();
    let w = journal::writer::Writer::spawn(j, 16, 1);
    let first = w.append(vec![1u8; 100]).unwrap();
    // The next block does not fit.
    let t = w.submit(vec![2u8; 300]).unwrap();
    let e = w.wait(t).unwrap_err();
    assert!(e.is_disk_full(), "{e}");
    assert!(w.full().is_some());
    assert!(
        w.submit(vec![3u8; 10]).unwrap_err().is_disk_full(),
        "nothing new is taken"
    );
    // Space returns: the block in hand is written, and the writer takes records again.
    space.store(1 << 20, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while w.wait(t).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the block was not retried"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(w.full().is_none());
    let last = w.append(vec![4u8; 10]).unwrap();
    assert_eq!((first, t, last), (0, 1, 2));
    w.close().unwrap();
}

/// A small deterministic PRNG (xorshift) for the crash property test.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn crash_anywhere_keeps_every_acknowledged_record() {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for round in 0..300 {
        let mut storage = MemStorage::default();
        let mut acked: Vec<Vec<u8>> = Vec::new();
        for _life in 0..4 {
            let (mut j, _) = Journal::open(storage.clone(), small_segments()).unwrap();
            assert_eq!(
                j.next_seq(),
                acked.len() as u64,
                "round {round}: a reopened journal lost records"
            );
            let n = rng.next() % 6;
            for _ in 0..n {
                let k = 1 + rng.next() % 4;
                let recs: Vec<Vec<u8>> = (0..k).map(|_| rec(rng.next() % 1000)).collect();
                j.append(&recs).unwrap();
                acked.extend(recs);
            }
            // Then a write that never got synced, and a crash tearing it anywhere.
            let mut s = j.storage().clone();
            if let Some(last) = s.list().unwrap().last().cloned() {
                let junk: Vec<u8> = (0..(rng.next() % 200)).map(|_| rng.next() as u8).collect();
                s.append(&last, &junk).unwrap();
            }
            storage = s.crash((rng.next() % 250) as usize);
        }
        let (j, _) = Journal::open(storage, small_segments()).unwrap();
        let got: Vec<Vec<u8>> = read_all(j.storage())
            .unwrap()
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        assert_eq!(got, acked, "round {round}");
        assert!(
            verify(j.storage()).unwrap().first_problem.is_none(),
            "round {round}"
        );
    }
}

#[test]
fn writer_group_commits_concurrent_producers_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(DirStorage::new(dir.path()).unwrap(), Options::default()).unwrap();
    let w = std::sync::Arc::new(Writer::spawn(j, 1024, 4096));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let w = w.clone();
            std::thread::spawn(move || {
                let mut tickets = vec![];
                for i in 0..2000u64 {
                    tickets.push(w.submit(format!("t{t}-{i}").into_bytes()).unwrap());
                }
                for tk in &tickets {
                    w.wait(*tk).unwrap();
                }
                tickets
            })
        })
        .collect();
    let mut all: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort();
    assert_eq!(
        all,
        (0..8000).collect::<Vec<_>>(),
        "tickets are the sequence numbers 0..n"
    );
    std::sync::Arc::try_unwrap(w).unwrap().close().unwrap();
    let s = DirStorage::new(dir.path()).unwrap();
    let v = verify(&s).unwrap();
    assert!(v.ok(), "{v:?}");
    assert_eq!(v.records, 8000);
    assert!(
        v.blocks < 8000,
        "no group commit: {} blocks for 8000 records",
        v.blocks
    );
    // Each producer's records are in its submission order.
    let recs = read_all(&s).unwrap();
    for t in 0..4 {
        let mine: Vec<String> = recs
            .iter()
            .map(|(_, r)| String::from_utf8(r.clone()).unwrap())
            .filter(|r| r.starts_with(&format!("t{t}-")))
            .collect();
        let expect: Vec<String> = (0..2000).map(|i| format!("t{t}-{i}")).collect();
        assert_eq!(mine, expect);
    }
}

#[test]
fn mutated_segments_never_panic_and_recovery_keeps_a_readable_prefix() {
    // The fuzz target (fuzz/fuzz_targets/journal_segment.rs) in miniature, deterministic.
    let (s, _) = filled(6, 3, Options::default());
    let name = s.list().unwrap()[0].clone();
    let orig = s.written[&name].clone();
    let mut rng = Rng(42);
    for _ in 0..3000 {
        let mut b = orig.clone();
        for _ in 0..1 + rng.next() % 4 {
            let i = (rng.next() as usize) % b.len();
            b[i] = rng.next() as u8;
        }
        if rng.next().is_multiple_of(3) {
            b.truncate((rng.next() as usize) % b.len());
        }
        let mut t = MemStorage::default();
        t.append(&name, &b).unwrap();
        t.sync(&name).unwrap();
        let _ = verify(&t).unwrap();
        let (j, _) = Journal::open(t, Options::default()).unwrap();
        let kept = read_all(j.storage()).unwrap();
        // What survives is a prefix of what was written.
        let all = read_all(&s).unwrap();
        assert_eq!(&all[..kept.len()], &kept[..]);
    }
}

#[test]
fn a_lingering_writer_batches_a_stream_and_still_answers_a_waiter_at_once() {
    use journal::writer::Writer;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(DirStorage::new(dir.path()).unwrap(), Options::default()).unwrap();
    let w = Writer::spawn_lingering(j, 64, 1024, Duration::from_millis(300));
    // Records submitted within the linger time share one block.
    let t0 = Instant::now();
    for i in 0..5u64 {
        w.submit(rec(i)).unwrap();
    }
    // A waiter does not wait for the linger time to pass.
    let last = w.submit(rec(5)).unwrap();
    w.wait(last).unwrap();
    assert!(
        t0.elapsed() < Duration::from_millis(250),
        "{:?}",
        t0.elapsed()
    );
    let t1 = w.submit(rec(6)).unwrap();
    w.wait(t1).unwrap();
    w.close().unwrap();
    let s = DirStorage::new(dir.path()).unwrap();
    let scan = journal::journal::scan_segment(&s.read(&s.list().unwrap()[0]).unwrap()).unwrap();
    let counts: Vec<u32> = scan.blocks.iter().map(|(_, h)| h.count).collect();
    assert_eq!(
        counts,
        vec![6, 1],
        "one block for the stream, one for the last record"
    );
    assert_eq!(read_all(&s).unwrap().len(), 7);
}

/// A summary file rewritten into a coarser tier keeps its header: the journal verifies with
/// the same head, and readers see the new records.
#[test]
fn a_summary_file_rewritten_keeps_its_place_in_the_chain() {
    use journal::summary::{replace_segments, replace_summary, summary_name};
    let (mut s, head, _) = summarized();
    replace_segments(&mut s, 0, 2, &[b"T1 of 0..=2".to_vec(), vec![1; 500]]).unwrap();
    let before = verify(&s).unwrap();
    let r = replace_summary(&mut s, 0, 2, &[b"T4 of 0..=2".to_vec()]).unwrap();
    assert_eq!(r.name, summary_name(0, 2));
    assert!(r.bytes_after < r.bytes_before);
    let v = verify(&s).unwrap();
    assert!(v.ok(), "{v:?}");
    assert_eq!(v.head, before.head);
    assert_eq!(v.head, journal::format::hex(&head));
    assert_eq!(read_all(&s).unwrap()[0].1, b"T4 of 0..=2");
    assert!(!s.list().unwrap().iter().any(|n| n.ends_with(".tmp")));
    // A summary file that does not exist is an error, not a new file.
    assert!(replace_summary(&mut s, 7, 9, &[b"x".to_vec()]).is_err());
}

/// Segments 0..=2 of a journal with small segments replaced by a summary file.
fn summarized() -> (MemStorage, [u8; 32], u64) {
    let (s, head) = filled(30, 4, small_segments());
    let n = s.list().unwrap().len() as u64;
    assert!(n >= 5, "{n} segments");
    (s, head, n)
}

#[test]
fn a_summary_replaces_sealed_segments_and_the_chain_still_verifies() {
    use journal::summary::{replace_segments, summary_name};
    let (mut s, head, n) = summarized();
    let before = verify(&s).unwrap();
    let r = replace_segments(&mut s, 0, 2, &[b"summary of 0..=2".to_vec()]).unwrap();
    assert_eq!(r.name, summary_name(0, 2));
    assert!(r.bytes_after < r.bytes_before);
    let names = s.list().unwrap();
    assert_eq!(names.len() as u64, n - 3 + 1, "{names:?}");
    let v = verify(&s).unwrap();
    assert!(v.ok(), "{v:?}");
    assert_eq!((v.summaries, v.segments), (1, n - 3));
    assert_eq!(v.head, before.head, "summarizing does not change the head");
    assert_eq!(v.head, journal::format::hex(&head));
    // Readers see the summary's records, then the segments after it.
    let all = read_all(&s).unwrap();
    assert_eq!(all[0].1, b"summary of 0..=2");
    assert!(all.len() < before.records as usize);
    // The journal opens and goes on appending after it.
    let (mut j, rec) = Journal::open(s.clone(), small_segments()).unwrap();
    assert!(rec.summary_leftovers.is_empty());
    j.append(&[b"after".to_vec()]).unwrap();
    let s2 = j.storage().clone();
    assert!(verify(&s2).unwrap().ok());
    // A single segment can be replaced too.
    let mut t = s.clone();
    assert!(replace_segments(&mut t, 3, 3, &[]).is_ok());
    assert!(verify(&t).unwrap().ok());
}

#[test]
fn a_tampered_summary_or_a_wrong_one_is_reported() {
    use journal::summary::{replace_segments, summary_name};
    let (mut s, _, _) = summarized();
    replace_segments(&mut s, 0, 2, &[b"summary".to_vec(), vec![7; 300]]).unwrap();
    let name = summary_name(0, 2);
    let good = s.written[&name].clone();
    for pos in [3, 70, 100, 140, good.len() - 5] {
        let mut t = s.clone();
        t.written.get_mut(&name).unwrap()[pos] ^= 0x10;
        let v = verify(&t).unwrap();
        assert_eq!(
            v.first_problem.as_ref().map(|p| p.segment.as_str()),
            Some(name.as_str()),
            "byte {pos}: {v:?}"
        );
    }
    // A summary of other segments' range put in its place does not continue the chain.
    let (mut other, _, _) = summarized();
    replace_segments(&mut other, 1, 2, &[b"x".to_vec()]).unwrap();
    let mut t = s.clone();
    t.written.remove(&name);
    t.written.insert(
        summary_name(0, 2),
        other.written[&summary_name(1, 2)].clone(),
    );
    assert!(!verify(&t).unwrap().ok());
}

#[test]
fn an_interrupted_summarization_loses_nothing() {
    use journal::summary::{replace_segments, summary_name};
    let (s, _, _) = summarized();
    let before = read_all(&s).unwrap();
    // Crash before the rename: only a .sum.tmp exists beside the segments.
    let mut t = s.clone();
    t.append(&format!("{}.tmp", summary_name(0, 2)), b"half a summary")
        .unwrap();
    assert_eq!(read_all(&t).unwrap(), before);
    assert!(verify(&t).unwrap().ok());
    let (_, rec) = Journal::open(t.clone(), small_segments()).unwrap();
    assert_eq!(
        rec.summary_leftovers,
        vec![format!("{}.tmp", summary_name(0, 2))]
    );
    // Crash after the rename, before the segments were deleted: the summary wins, and
    // opening the journal finishes the deletion.
    let mut u = s.clone();
    replace_segments(&mut u, 0, 2, &[b"sum".to_vec()]).unwrap();
    let sum = u.written[&summary_name(0, 2)].clone();
    let mut w = s.clone();
    w.append(&summary_name(0, 2), &sum).unwrap();
    assert_eq!(read_all(&w).unwrap(), read_all(&u).unwrap());
    assert!(verify(&w).unwrap().ok());
    let (j, rec) = Journal::open(w, small_segments()).unwrap();
    assert_eq!(rec.summary_leftovers.len(), 3, "{rec:?}");
    assert_eq!(j.storage().list().unwrap(), u.list().unwrap());
}

/// Every damage position: a byte flipped anywhere in any segment (headers, block headers,
/// payloads; the sealed segments and the open one) is found by `verify`; opening the journal
/// afterwards destroys nothing (every byte of every segment is still in the segment or in a
/// file set aside); and the tolerant reader returns records only from intact blocks, every
/// one of them it can reach, saying what it skipped.
#[test]
fn a_flipped_byte_anywhere_is_found_and_nothing_is_destroyed() {
    let (storage, _) = filled(16, 3, small_segments());
    let original: Vec<(String, Vec<u8>)> = storage
        .list()
        .unwrap()
        .into_iter()
        .map(|n| {
            let b = storage.read(&n).unwrap();
            (n, b)
        })
        .collect();
    assert!(original.len() >= 3, "sealed segments and an open one");
    let all_records: Vec<Vec<u8>> = read_all(&storage)
        .unwrap()
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    let mut positions = 0;
    for (name, bytes) in &original {
        for at in 0..bytes.len() {
            let mut s = storage.clone();
            let mut b = bytes.clone();
            b[at] ^= 0x5a;
            s.written.insert(name.clone(), b.clone());
            s.synced.insert(name.clone(), b);
            let v = verify(&s).unwrap();
            assert!(
                v.first_problem.is_some(),
                "{name} byte {at}: not found by verify"
            );
            // The tolerant reader: intact records only, and a report of what it skipped.
            let (recs, skipped) = journal::read_all_tolerant(&s).unwrap();
            let got: Vec<&Vec<u8>> = recs.iter().map(|(_, r)| r).collect();
            assert!(
                got.iter().all(|r| all_records.contains(r)),
                "{name} byte {at}: a record that was never written"
            );
            assert!(
                got.len() == all_records.len() || !skipped.is_empty(),
                "{name} byte {at}: records missing and nothing skipped"
            );
            // Opening (what a recorder does) keeps every byte somewhere.
            let (j, _) = match Journal::open(s, small_segments()) {
                Ok(x) => x,
                Err(e) => panic!("{name} byte {at}: the journal does not open: {e}"),
            };
            let after = j.storage();
            let kept: usize = after
                .list()
                .unwrap()
                .iter()
                .map(|n| after.read(n).unwrap().len())
                .sum();
            let before: usize = original.iter().map(|(_, b)| b.len()).sum();
            assert!(
                kept >= before,
                "{name} byte {at}: {kept} bytes kept of {before}"
            );
            positions += 1;
        }
    }
    eprintln!("{positions} positions in {} files", original.len());
}

/// The same for a summary file: a byte flipped anywhere in it (its header, a block header, a
/// payload) is found by `verify` and named; the journal still opens (a recorder starts) and
/// neither the summary file nor any segment loses a byte; the tolerant reader returns only
/// records that were written, and says what it skipped when it returns fewer. Truncating it
/// anywhere too.
#[test]
fn a_damaged_summary_file_is_found_skipped_and_kept() {
    use journal::summary::{replace_segments, summary_name};
    let (mut s, _, _) = summarized();
    replace_segments(
        &mut s,
        0,
        2,
        &[b"summary".to_vec(), vec![7; 300], b"end".to_vec()],
    )
    .unwrap();
    let name = summary_name(0, 2);
    let good = s.written[&name].clone();
    let all_records: Vec<Vec<u8>> = read_all(&s).unwrap().into_iter().map(|(_, r)| r).collect();
    let total = |st: &MemStorage| -> usize {
        st.list()
            .unwrap()
            .iter()
            .map(|n| st.read(n).unwrap().len())
            .sum()
    };
    let before = total(&s);
    let mut damaged: Vec<(String, Vec<u8>)> = (0..good.len())
        .map(|at| {
            let mut b = good.clone();
            b[at] ^= 0x5a;
            (format!("byte {at}"), b)
        })
        .collect();
    for cut in [1, 60, 131, 140, good.len() / 2, good.len() - 1] {
        damaged.push((format!("cut at {cut}"), good[..cut].to_vec()));
    }
    for (what, b) in damaged {
        let mut t = s.clone();
        t.written.insert(name.clone(), b.clone());
        t.synced.insert(name.clone(), b.clone());
        let v = verify(&t).unwrap();
        assert_eq!(
            v.first_problem.as_ref().map(|p| p.segment.as_str()),
            Some(name.as_str()),
            "{what}: {v:?}"
        );
        let (recs, skipped) = journal::read_all_tolerant(&t).unwrap();
        assert!(
            recs.iter().all(|(_, r)| all_records.contains(r)),
            "{what}: a record that was never written"
        );
        assert!(
            recs.len() == all_records.len() || !skipped.is_empty(),
            "{what}: records missing and nothing skipped"
        );
        let (j, _) = match Journal::open(t, small_segments()) {
            Ok(x) => x,
            Err(e) => panic!("{what}: the journal does not open: {e}"),
        };
        let after = j.storage();
        assert_eq!(
            after.read(&name).unwrap(),
            b,
            "{what}: the summary file was changed"
        );
        assert!(
            total(after) >= before - good.len() + b.len(),
            "{what}: bytes lost"
        );
    }
}

/// The keys a writer reports with each block (`Writer::spawn_indexed`) make, through
/// `SegmentIndex::extend_known`, the index a whole read of each segment makes — for batches
/// queued with their keys and without (the writer then asks `keys_of`), across segments —
/// and a reported block that does not continue an index (another segment, another place,
/// another chain) is not taken.
#[test]
fn the_writers_block_keys_make_the_index_a_read_makes() {
    use journal::index::SegmentIndex;
    use journal::writer::{BlockKeys, Indexing};
    fn keys_of(r: &[u8], out: &mut Vec<u64>) {
        out.extend(r.iter().map(|&b| u64::from(b % 13)));
    }
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(DirStorage::new(dir.path()).unwrap(), small_segments()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let w = Writer::spawn_indexed(
        j,
        64,
        3,
        std::time::Duration::ZERO,
        Some(Indexing {
            keys_of: Box::new(keys_of),
            tx,
        }),
    );
    for i in 0..60u64 {
        let recs: Vec<Vec<u8>> = (0..=i % 4).map(|k| rec(i * 7 + k)).collect();
        if i % 3 == 0 {
            w.offer(recs).unwrap();
        } else {
            // Keys in any order, with repeats: the writer sorts them.
            let mut keys = Vec::new();
            recs.iter().rev().for_each(|r| keys_of(r, &mut keys));
            keys.extend(keys.clone());
            w.offer_keyed(recs, Some(keys)).unwrap();
        }
        if i % 5 == 0 {
            w.append(rec(1000 + i)).unwrap();
        }
    }
    w.close().unwrap();
    let reported: Vec<BlockKeys> = rx.try_iter().collect();
    let s = DirStorage::new(dir.path()).unwrap();
    let segs = journal::segment_numbers(&s).unwrap();
    assert!(segs.len() > 3, "{segs:?}");
    let total: usize = reported.len();
    let mut taken = 0;
    for seg in segs {
        let bytes = s.read(&journal::journal::segment_name(seg)).unwrap();
        let whole = SegmentIndex::build(seg, &bytes, keys_of).unwrap();
        let mut idx =
            SegmentIndex::build_prefix(seg, &bytes[..SEGMENT_HEADER_LEN], keys_of).unwrap();
        let mine: Vec<BlockKeys> = reported
            .iter()
            .filter(|b| b.segment == seg)
            .cloned()
            .collect();
        // Not this index's next block: refused, nothing changed.
        if let Some(b) = mine.get(1) {
            assert_eq!(idx.extend_known(std::slice::from_ref(b)), 0);
            let mut wrong = mine[0].clone();
            wrong.prev_chain[0] ^= 1;
            assert_eq!(idx.extend_known(&[wrong]), 0);
            let mut other = mine[0].clone();
            other.segment += 1;
            assert_eq!(idx.extend_known(&[other]), 0);
        }
        taken += idx.extend_known(&mine);
        assert_eq!(idx, whole, "segment {seg}");
    }
    assert_eq!(taken, total, "every reported block was taken");
}

/// `verify_with_progress` counts bytes up to its total, in order; a segment that grows
/// between the count and its read (the open one, while a recorder writes) makes the count pass
/// the total, never wrap (a storage that reports shorter lengths than it reads stands in).
#[test]
fn verify_progress_counts_up_even_when_a_segment_grew() {
    #[derive(Clone)]
    struct Growing(MemStorage);
    impl Storage for Growing {
        fn list(&self) -> std::io::Result<Vec<String>> {
            self.0.list()
        }
        fn read(&self, name: &str) -> std::io::Result<Vec<u8>> {
            self.0.read(name)
        }
        fn append(&mut self, name: &str, data: &[u8]) -> std::io::Result<()> {
            self.0.append(name, data)
        }
        fn sync(&mut self, name: &str) -> std::io::Result<()> {
            self.0.sync(name)
        }
        fn truncate(&mut self, name: &str, len: u64) -> std::io::Result<()> {
            self.0.truncate(name, len)
        }
        fn rename(&mut self, from: &str, to: &str) -> std::io::Result<()> {
            self.0.rename(from, to)
        }
        fn remove(&mut self, name: &str) -> std::io::Result<()> {
            self.0.remove(name)
        }
        fn len(&self, name: &str) -> std::io::Result<u64> {
            Ok(self.0.len(name)?.saturating_sub(100))
        }
    }
    let (s, _) = filled(40, 5, small_segments());
    let mut seen = Vec::new();
    let r = journal::verify_with_progress(&Growing(s), &mut |p| seen.push(p)).unwrap();
    assert!(r.ok(), "{r:?}");
    let bytes: Vec<u64> = seen
        .iter()
        .map(|p| match p {
            journal::VerifyProgress::Bytes { done, .. } => *done,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(bytes.len() > 40, "{}", bytes.len());
    assert!(bytes.windows(2).all(|w| w[0] <= w[1]), "{bytes:?}");
    assert!(bytes.iter().all(|&b| b < 1 << 40), "wrapped: {bytes:?}");
}
