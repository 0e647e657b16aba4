//! Rings in one process: heap and shared memory, threads, full/empty, claims, headers,
//! permissions, counters and segment listing.

mod common;

use std::time::Duration;

use common::{instance, n, Cleanup};
use quantum_ipc::wire::{Raw, RECORD_SIZE};
use quantum_ipc::{
    CountersReader, CountersWriter, Error, Full, Limits, Message, PeerStatus, Ring, RingSpec,
};

fn stream(ring: &Ring, count: u64) {
    let mut producer = ring.producer::<RECORD_SIZE>().unwrap();
    let mut consumer = ring.consumer::<RECORD_SIZE>().unwrap();
    let t = std::thread::spawn(move || {
        let mut batch = Vec::new();
        let mut seq = 0;
        while seq < count {
            if seq % 3 == 0 {
                batch.clear();
                for s in seq..(seq + 5).min(count) {
                    batch.push(Raw::for_seq(s, 0).encode());
                }
                seq += producer.push_batch(&batch) as u64;
            } else {
                producer
                    .push(&Raw::for_seq(seq, 0).encode(), Duration::from_secs(10))
                    .unwrap();
                seq += 1;
            }
        }
    });
    let limits = Limits::default();
    let mut next = 0;
    let mut buf = [[0u8; RECORD_SIZE]; 7];
    while next < count {
        let k = consumer.pop_batch(&mut buf);
        for r in &buf[..k] {
            let Message::Raw(raw) = Message::decode(r, &limits).unwrap() else {
                panic!("not a Raw record")
            };
            assert_eq!(raw.seq, next);
            assert!(raw.is_consistent());
            next += 1;
        }
        if k == 0 {
            std::thread::yield_now();
        }
    }
    t.join().unwrap();
    assert!(consumer.try_pop().is_none());
    assert_eq!(ring.stats().pushed, count);
    assert_eq!(ring.stats().popped, count);
}

#[test]
fn heap_ring_streams_in_order_between_threads() {
    stream(&Ring::heap(16, 64).unwrap(), n(100_000));
}

#[test]
fn shm_ring_streams_in_order_between_threads() {
    let inst = instance("threads");
    let _c = Cleanup(inst.clone());
    let ring = Ring::create(&RingSpec::new(&inst, "plans", 64)).unwrap();
    stream(&ring, n(100_000));
}

#[test]
fn full_ring_refuses_and_counts() {
    let ring = Ring::heap(4, 64).unwrap();
    let mut p = ring.producer::<64>().unwrap();
    let mut c = ring.consumer::<64>().unwrap();
    for i in 0..4 {
        p.try_push(&Raw::for_seq(i, 0).encode()).unwrap();
    }
    assert_eq!(p.try_push(&Raw::for_seq(4, 0).encode()), Err(Full));
    assert_eq!(
        p.push(&Raw::for_seq(4, 0).encode(), Duration::from_millis(5)),
        Err(Full)
    );
    let s = ring.stats();
    assert_eq!((s.depth, s.full_events), (4, 2));
    assert!(s.producer_backoffs > 0);
    assert_eq!(p.push_batch(&[Raw::for_seq(4, 0).encode()]), 0);
    assert!(c.try_pop().is_some());
    assert_eq!(p.push_batch(&[[0; 64], [0; 64]]), 1);
    assert_eq!(ring.len(), 4);
    assert_eq!(c.pop(Duration::from_millis(1)).map(|r| r[8]), Some(1));
}

#[test]
fn roles_are_claimed_once_and_released_on_drop() {
    let ring = Ring::heap(4, 64).unwrap();
    assert_eq!(ring.producer_status(1000), PeerStatus::NeverAttached);
    let p = ring.producer::<64>().unwrap();
    assert!(matches!(ring.producer::<64>(), Err(Error::Claimed { .. })));
    assert!(ring.producer_status(1000).is_alive());
    drop(p);
    assert!(matches!(
        ring.producer_status(1000),
        PeerStatus::Detached { .. }
    ));
    let _p = ring.producer::<64>().unwrap();
    assert!(matches!(
        ring.consumer::<128>(),
        Err(Error::Mismatch { .. })
    ));
}

#[test]
fn invalid_records_are_counted_and_skipped() {
    let ring = Ring::heap(4, 64).unwrap();
    let mut p = ring.producer::<64>().unwrap();
    let mut c = ring.consumer::<64>().unwrap();
    p.try_push(&[0xAB; 64]).unwrap();
    p.try_push_message(&Message::Raw(Raw::for_seq(1, 0)))
        .unwrap();
    let limits = Limits::default();
    assert!(c.try_pop_message(&limits).unwrap().is_err());
    assert!(c.try_pop_message(&limits).unwrap().is_ok());
    assert!(c.try_pop_message(&limits).is_none());
    assert_eq!(ring.stats().invalid, 1);
}

#[test]
fn open_checks_the_spec_and_the_header() {
    let inst = instance("hdr");
    let _c = Cleanup(inst.clone());
    let spec = RingSpec::new(&inst, "results", 8);
    assert!(matches!(Ring::open(&spec), Err(Error::NotFound { .. })));
    let _owner = Ring::create(&spec).unwrap();
    assert!(matches!(
        Ring::create(&spec),
        Err(Error::AlreadyExists { .. })
    ));
    let any_capacity = RingSpec {
        capacity: 0,
        ..spec.clone()
    };
    assert_eq!(Ring::open(&any_capacity).unwrap().capacity(), 8);
    let wrong = RingSpec {
        capacity: 16,
        ..spec.clone()
    };
    assert!(matches!(Ring::open(&wrong), Err(Error::Mismatch { .. })));
    assert!(matches!(
        Ring::create(&RingSpec::new(&inst, "bad.name", 8)),
        Err(Error::InvalidName { .. })
    ));
    assert!(matches!(
        Ring::create(&RingSpec::new(&inst, "odd", 6)),
        Err(Error::InvalidSpec { .. })
    ));

    // Corrupt the capacity in the segment file: an error, not a panic.
    let path = quantum_ipc::shm::path_of(&spec.os_id().unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[40..48].copy_from_slice(&(1u64 << 40).to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let e = Ring::open(&any_capacity).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    bytes[0] = b'X';
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        Ring::open(&any_capacity),
        Err(Error::BadMagic { .. })
    ));
}

#[test]
fn segments_are_created_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let inst = instance("mode");
    let _c = Cleanup(inst.clone());
    // SAFETY: umask only changes the calling process's file-creation mask.
    let old = unsafe { libc::umask(0) };
    let ring = Ring::create(&RingSpec::new(&inst, "plans", 8));
    let counters = CountersWriter::create(&inst, 4);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let (ring, counters) = (ring.unwrap(), counters.unwrap());
    for id in [ring.os_id(), counters.os_id()] {
        let mode = std::fs::metadata(quantum_ipc::shm::path_of(id))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{id}");
    }
}

#[test]
fn counters_and_symbols_are_readable_by_another_handle() {
    let inst = instance("ctr");
    let _c = Cleanup(inst.clone());
    let w = CountersWriter::create(&inst, 3).unwrap();
    let plans = w.register("plans.accepted").unwrap();
    let depth = w.register("ring.plans.depth").unwrap();
    w.add(plans, 5);
    w.add(plans, 2);
    w.set(depth, 9);
    w.set_symbol(0, "BTCUSDT").unwrap();
    w.set_symbol(7, "1000PEPEUSDT").unwrap();
    w.set_symbol(7, "ETHUSDT").unwrap();
    assert!(matches!(
        w.register(&"x".repeat(49)),
        Err(Error::TooLong { .. })
    ));
    w.register("third").unwrap();
    assert!(matches!(
        w.register("fourth"),
        Err(Error::CountersFull { .. })
    ));

    let r = CountersReader::open(&inst).unwrap();
    assert_eq!(
        r.counters(),
        vec![
            ("plans.accepted".to_owned(), 7),
            ("ring.plans.depth".to_owned(), 9),
            ("third".to_owned(), 0)
        ]
    );
    assert_eq!(r.get("plans.accepted"), Some(7));
    assert_eq!(
        r.symbols(),
        vec![(0, "BTCUSDT".to_owned()), (7, "ETHUSDT".to_owned())]
    );
    assert_eq!(r.symbol_id("ETHUSDT"), Some(7));
    assert_eq!(r.owner_pid(), u64::from(std::process::id()));
    assert!(r.owner_alive());
    assert!(r.start_time_ms() > 0);
}

/// A group of counters written under a sequence counter is read whole: a reader racing a
/// writer that sets eight gauges to the same value, again every few microseconds (the daemon
/// does it once per interval), never sees two values.
#[test]
fn a_group_of_counters_is_read_whole_while_its_writer_rewrites_it() {
    let inst = instance("group");
    let _c = Cleanup(inst.clone());
    let w = std::sync::Arc::new(CountersWriter::create(&inst, 16).unwrap());
    let seq = w.register("group.seq").unwrap();
    let ids: Vec<_> = (0..8)
        .map(|i| w.register(&format!("group.{i}")).unwrap())
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (w, stop) = (w.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut k = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                k += 1;
                w.write_group(seq, || {
                    for id in &ids {
                        w.set(*id, k);
                        // As the daemon computes a percentile between two gauges.
                        (0..200).for_each(|_| std::hint::spin_loop());
                    }
                });
                std::thread::sleep(Duration::from_micros(20));
            }
            k
        })
    };
    let r = CountersReader::open(&inst).unwrap();
    let mut moved = std::collections::BTreeSet::new();
    for _ in 0..20_000 {
        let all = r.counters_consistent("group.seq");
        let values: std::collections::BTreeSet<u64> = all
            .iter()
            .filter(|(l, _)| l.starts_with("group.") && l != "group.seq")
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(values.len(), 1, "a mixed group: {all:?}");
        moved.extend(values);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(
        written > 1 && moved.len() > 1,
        "the writer never raced the reader"
    );
    assert_eq!(r.get("group.seq"), Some(2 * written));
}

#[test]
fn segments_are_listed_with_their_owner() {
    let inst = instance("list");
    let _c = Cleanup(inst.clone());
    let _r = Ring::create(&RingSpec::new(&inst, "plans", 8)).unwrap();
    let _w = CountersWriter::create(&inst, 2).unwrap();
    let segs = quantum_ipc::list_segments(Some(&inst)).unwrap();
    let names: Vec<_> = segs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["counters", "plans"]);
    assert!(segs
        .iter()
        .all(|s| s.owner_alive && s.owner_pid == u64::from(std::process::id())));
    // Owners alive: nothing is stale.
    assert!(quantum_ipc::remove_stale_segments(Some(&inst))
        .unwrap()
        .removed
        .is_empty());
}

/// Writes `value` over a cursor of the segment through the file, as a stray write would.
fn poke(os_id: &str, cursor: &str, value: u64) {
    use std::os::unix::fs::FileExt;
    // The header: meta, producer, consumer lines, then `tail` and `head`, 128 bytes each.
    let at = match cursor {
        "tail" => 3 * 128,
        "head" => 4 * 128,
        _ => unreachable!(),
    };
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(quantum_ipc::shm::path_of(os_id))
        .unwrap();
    f.write_all_at(&value.to_le_bytes(), at).unwrap();
}

/// Every cursor corruption the protocol can meet is found by the side that checks it, said
/// in one sentence, counted, and repaired by the cursor's owner; nothing waits on it.
#[test]
fn corrupt_cursors_are_found_counted_and_never_hang() {
    let inst = instance("cursor");
    let _c = Cleanup(inst.clone());
    let ring = Ring::create(&RingSpec::new(&inst, "plans", 8)).unwrap();
    let os = ring.os_id().to_owned();
    let mut p = ring.producer::<64>().unwrap();
    let mut c = ring.consumer::<64>().unwrap();
    let rec = |i| Raw::for_seq(i, 0).encode();
    for i in 0..3 {
        p.try_push(&rec(i)).unwrap();
    }
    assert!(c.try_pop().is_some());
    assert!(p.check().is_none() && c.check().is_none());

    // Head past tail: the producer refuses to trust it; a blocking push gives up at once
    // instead of waiting out its timeout.
    poke(&os, "head", 100);
    for i in 3..9 {
        p.try_push(&rec(i)).unwrap();
    }
    let t = std::time::Instant::now();
    assert_eq!(p.push(&rec(9), Duration::from_secs(60)), Err(Full));
    assert!(t.elapsed() < Duration::from_secs(30));
    let f = p.check().unwrap().to_string();
    assert!(
        f.contains("head cursor holds 100, which is past the producer's tail"),
        "{f}"
    );
    assert!(!f.contains('\n'));
    // The consumer owns `head`: it puts its own value back, and all is well again.
    let f = c.check().unwrap().to_string();
    assert!(
        f.contains("head cursor was changed from outside to 100; restored to 1"),
        "{f}"
    );
    assert!(p.check().is_none());
    let got: Vec<u64> = std::iter::from_fn(|| c.try_pop())
        .map(|r| Raw::decode(&r, &Limits::default()).unwrap().seq)
        .collect();
    assert_eq!(got, (1..9).collect::<Vec<_>>());
    p.try_push(&rec(9)).unwrap();

    // Tail moved: the producer owns it and restores it.
    poke(&os, "tail", 3);
    let f = p.check().unwrap().to_string();
    assert!(
        f.contains("tail cursor was changed from outside to 3; restored to 10"),
        "{f}"
    );

    // Head moving backwards, more than a capacity behind: refused, then restored.
    poke(&os, "head", 0);
    let f = p.check().unwrap().to_string();
    assert!(f.contains("more than a capacity behind"), "{f}");
    assert!(c.check().is_some());
    assert!(p.check().is_none());

    // A head moved forward but still plausible lets the producer overwrite unread records:
    // the consumer finds a later lap's record in its slot, says which records were lost, and
    // reads on from the oldest one still there.
    assert_eq!(
        c.try_pop()
            .map(|r| Raw::decode(&r, &Limits::default()).unwrap().seq),
        Some(9)
    );
    for i in 10..13 {
        p.try_push(&rec(i)).unwrap();
    }
    poke(&os, "head", 13);
    for i in 13..21 {
        p.try_push(&rec(i)).unwrap();
    }
    assert!(c.try_pop().is_none());
    let f = c.check().unwrap().to_string();
    assert!(f.contains("records 10..18 were overwritten"), "{f}");
    let got: Vec<u64> = std::iter::from_fn(|| c.try_pop())
        .map(|r| Raw::decode(&r, &Limits::default()).unwrap().seq)
        .collect();
    assert_eq!(got, (18..21).collect::<Vec<_>>());
    assert_eq!(ring.stats().cursor_faults, 6);
}

/// A cursor changed while no process held its role (the consumer's `head` pushed past the
/// producer's `tail` across a daemon restart, or a producer's `tail` moved while no producer
/// was attached) would wedge the ring: the producer refuses to write and the consumer waits
/// for positions never published. The side that owns the cursor resets it when it attaches,
/// from what the slots hold; its first check reports it and it is counted; the ring carries on.
#[test]
fn cursors_changed_while_their_owner_was_away_are_reset_at_attach() {
    let seq = |r: [u8; 64]| Raw::decode(&r, &Limits::default()).unwrap().seq;
    for ahead in [1_000u64, 1_000_000] {
        let inst = instance(&format!("away{ahead}"));
        let _c = Cleanup(inst.clone());
        let ring = Ring::create(&RingSpec::new(&inst, "ctl", 64)).unwrap();
        let os = ring.os_id().to_owned();
        let mut p = ring.producer::<64>().unwrap();
        let rec = |i| Raw::for_seq(i, 0).encode();
        {
            let mut c = ring.consumer::<64>().unwrap();
            for i in 0..3 {
                p.try_push(&rec(i)).unwrap();
            }
            assert_eq!(c.try_pop().map(seq), Some(0));
        }
        // The consumer (the daemon) is gone; its cursor is pushed past the producer's.
        poke(&os, "head", 3 + ahead);
        let f = p.check().unwrap().to_string();
        assert!(
            f.contains(&format!(
                "head cursor holds {}, which is past the producer's tail",
                3 + ahead
            )) && f.contains("the consumer owns that cursor"),
            "{f}"
        );
        let faults = ring.stats().cursor_faults;
        // The consumer that attaches next owns the cursor: it sets it to the producer's tail.
        let mut c = ring.consumer::<64>().unwrap();
        let f = c.check().unwrap().to_string();
        assert!(
            f.contains(&format!(
                "head cursor held {}, which is past every record ever published; set to 3",
                3 + ahead
            )),
            "{f}"
        );
        assert_eq!(ring.stats().cursor_faults, faults + 1);
        assert!(c.check().is_none() && p.check().is_none());
        for i in 3..70 {
            p.push(&rec(i), Duration::from_secs(5)).unwrap();
            assert_eq!(c.try_pop().map(seq), Some(i));
        }
        drop(p);

        // The producer's cursor, changed while no producer was attached: past every record,
        // then a lap behind them. The next producer takes the end from the slots' markers.
        for (bad, why, end) in [
            (70 + ahead, "is past every record ever published", 70),
            (2, "is behind records the slots hold", 71),
        ] {
            poke(&os, "tail", bad);
            let mut p = ring.producer::<64>().unwrap();
            let f = p.check().unwrap().to_string();
            assert!(
                f.contains(&format!(
                    "tail cursor held {bad}, which {why}; set to {end}"
                )),
                "{f}"
            );
            assert!(p.check().is_none() && c.check().is_none());
            p.try_push(&rec(end)).unwrap();
            assert_eq!(c.try_pop().map(seq), Some(end));
        }
    }
}

/// A consumer that reads ahead and releases later: a record is not released before
/// `commit_to`, and a consumer that dies before it reads the record again.
#[test]
fn held_records_are_released_only_when_committed() {
    let ring = Ring::heap(4, 64).unwrap();
    let mut p = ring.producer::<64>().unwrap();
    let mut c = ring.consumer::<64>().unwrap();
    for i in 0..4 {
        p.try_push(&Raw::for_seq(i, 0).encode()).unwrap();
    }
    assert!(c.try_pop_held().is_some() && c.try_pop_held().is_some());
    assert_eq!((c.position(), c.committed()), (2, 0));
    assert_eq!(p.try_push(&Raw::for_seq(4, 0).encode()), Err(Full));
    c.commit_to(1);
    p.try_push(&Raw::for_seq(4, 0).encode()).unwrap();
    // Never past what was read.
    c.commit_to(99);
    assert_eq!(c.committed(), 2);
    drop(c);
    let mut c = ring.consumer::<64>().unwrap();
    let first = c.try_pop_held().unwrap();
    assert_eq!(Raw::decode(&first, &Limits::default()).unwrap().seq, 2);
}

/// The journal stamp: written once (a second stamp does not replace it), seen by another
/// handle on the same segment, kept when the creator's handle is gone; a directory longer
/// than the stamp holds keeps its end.
#[test]
fn the_journal_stamp_is_written_once_and_read_by_another_handle() {
    let inst = instance("stamp");
    let _c = Cleanup(inst.clone());
    let spec = RingSpec::new(&inst, "plans", 16);
    let ring = Ring::create_kept(&spec).unwrap();
    assert_eq!(ring.journal_stamp(), None);
    assert!(!ring.stamp_journal(0, "/nowhere"), "0 is no identity");
    assert!(ring.stamp_journal(0xfeed, "/var/lib/quantum/prod1"));
    assert!(!ring.stamp_journal(0xbeef, "/elsewhere"));
    drop(ring);
    let other = Ring::open(&RingSpec::new(&inst, "plans", 0)).unwrap();
    assert_eq!(
        other.journal_stamp(),
        Some((0xfeed, "/var/lib/quantum/prod1".to_string()))
    );

    let heap = Ring::heap(16, 64).unwrap();
    let long = format!("/{}/journal", "d".repeat(300));
    assert!(heap.stamp_journal(7, &long));
    let (id, dir) = heap.journal_stamp().unwrap();
    assert_eq!(id, 7);
    assert!(
        dir.starts_with('…') && dir.ends_with("ddd/journal"),
        "{dir}"
    );
    assert!(dir.len() <= 240, "{}", dir.len());
}

/// One consumer of three shared-memory rings sleeps on all three doorbells at once
/// (`wait_any`: FUTEX_WAITV where the kernel has it) while a producer thread per ring pushes
/// records one at a time with pauses (at most a millisecond). No wake-up is lost: a wait never
/// runs into its 30 s timeout; every record arrives in order per ring.
#[test]
fn wait_any_on_three_rings_misses_no_push() {
    use quantum_ipc::doorbell::{wait_any, Wait};
    use quantum_ipc::liveness::clock_ms;

    let per_ring = n(1_000);
    let inst = instance("waitany");
    let _c = Cleanup(inst.clone());
    let rings: Vec<Ring> = (0..3)
        .map(|i| Ring::create(&RingSpec::new(&inst, &format!("r{i}"), 64)).unwrap())
        .collect();
    let mut consumers: Vec<_> = rings
        .iter()
        .map(|r| r.consumer::<RECORD_SIZE>().unwrap())
        .collect();
    let producers: Vec<_> = rings
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut p = r.producer::<RECORD_SIZE>().unwrap();
            std::thread::spawn(move || {
                for seq in 0..per_ring {
                    if (seq + i as u64) % 3 != 0 {
                        std::thread::sleep(Duration::from_micros(
                            100 + (seq * 7919 + i as u64 * 104_729) % 900,
                        ));
                    }
                    p.push(
                        &Raw::for_seq(seq, clock_ms()).encode(),
                        Duration::from_secs(30),
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    let limits = Limits::default();
    let mut next = [0u64; 3];
    let (mut rung, mut lost) = (0u64, 0u64);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while next.iter().any(|n| *n < per_ring) {
        assert!(std::time::Instant::now() < deadline, "stalled at {next:?}");
        let mut took = false;
        for (i, c) in consumers.iter_mut().enumerate() {
            while let Some(m) = c.try_pop_message(&limits) {
                let Ok(Message::Raw(raw)) = m else {
                    panic!("invalid record {m:?}")
                };
                assert_eq!(raw.seq, next[i], "ring {i} out of sequence");
                next[i] += 1;
                took = true;
            }
        }
        if took {
            continue;
        }
        let bells: Vec<_> = consumers.iter().map(|c| c.bell()).collect();
        match wait_any(&bells, Duration::from_secs(30), || {
            consumers.iter().any(|c| c.ready())
        }) {
            Wait::Rung => rung += 1,
            Wait::Ready => {}
            // 30 s without a ring while each producer pauses at most a millisecond: a push
            // was slept through.
            Wait::TimedOut => lost += 1,
        }
    }
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(lost, 0, "wake-ups lost while asleep on three rings");
    assert!(rung > 0, "the consumer never slept");
    for c in &consumers {
        assert!(!c.ready());
    }
}
