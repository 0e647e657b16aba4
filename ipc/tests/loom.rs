//! Loom models of the ring protocol (publish/consume, wrap-around, full and empty), the
//! broadcast protocol, role claims, and the doorbell (announce, re-check, sleep / publish, ring).
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=/work/target-ipc-loom cargo test -p quantum-ipc --release --test loom`
//!
//! Under `cfg(loom)` the ring lives in a heap buffer and its payload in loom's `UnsafeCell`, so
//! loom checks both the atomics' orderings and that no payload byte is read while written.
#![cfg(loom)]

use quantum_ipc::Ring;

fn record(i: u8) -> [u8; 64] {
    let mut r = [i; 64];
    r[63] = i.wrapping_mul(31);
    r
}

/// Three records through a two-slot ring: the producer must wait for the consumer (full), the
/// consumer for the producer (empty), and slot 0 is reused (wrap-around).
#[test]
fn publish_consume_wrap_full_empty() {
    loom::model(|| {
        let ring = Ring::heap(2, 64).unwrap();
        let mut producer = ring.producer::<64>().unwrap();
        let mut consumer = ring.consumer::<64>().unwrap();
        let t = loom::thread::spawn(move || {
            for i in 0..3u8 {
                while producer.try_push(&record(i)).is_err() {
                    loom::thread::yield_now();
                }
            }
        });
        let mut next = 0u8;
        while next < 3 {
            match consumer.try_pop() {
                Some(r) => {
                    assert_eq!(r, record(next), "torn or out-of-order record");
                    next += 1;
                }
                None => loom::thread::yield_now(),
            }
        }
        t.join().unwrap();
        assert!(consumer.try_pop().is_none());
        assert_eq!(ring.len(), 0);
    });
}

/// Batches: the producer publishes a batch while the consumer drains with `pop_batch`.
#[test]
fn batches_cross_the_wrap() {
    loom::model(|| {
        let ring = Ring::heap(2, 64).unwrap();
        let mut producer = ring.producer::<64>().unwrap();
        let mut consumer = ring.consumer::<64>().unwrap();
        let t = loom::thread::spawn(move || {
            let batch = [record(0), record(1), record(2)];
            let mut sent = 0;
            while sent < batch.len() {
                sent += producer.push_batch(&batch[sent..]);
                if sent < batch.len() {
                    loom::thread::yield_now();
                }
            }
        });
        let mut got = Vec::new();
        let mut buf = [[0u8; 64]; 2];
        while got.len() < 3 {
            let n = consumer.pop_batch(&mut buf);
            got.extend_from_slice(&buf[..n]);
            if n == 0 {
                loom::thread::yield_now();
            }
        }
        t.join().unwrap();
        assert_eq!(got, vec![record(0), record(1), record(2)]);
    });
}

/// Without a consumer the ring refuses the record past capacity; an empty ring pops nothing.
#[test]
fn full_and_empty_single_thread() {
    loom::model(|| {
        let ring = Ring::heap(1, 64).unwrap();
        let mut producer = ring.producer::<64>().unwrap();
        let mut consumer = ring.consumer::<64>().unwrap();
        assert!(consumer.try_pop().is_none());
        producer.try_push(&record(1)).unwrap();
        assert!(producer.try_push(&record(2)).is_err());
        assert_eq!(ring.stats().full_events, 1);
        assert_eq!(consumer.try_pop(), Some(record(1)));
        producer.try_push(&record(2)).unwrap();
        assert_eq!(consumer.try_pop(), Some(record(2)));
        assert!(consumer.try_pop().is_none());
    });
}

/// The `results` broadcast protocol: a writer publishes three records into two slots while a
/// reader reads. Every record the reader accepts is intact and in order, and what it read plus
/// what it was told it missed is exactly what was published (the writer never waits).
#[test]
fn broadcast_reader_never_sees_a_torn_record_and_counts_what_it_missed() {
    use quantum_ipc::broadcast::model::{Model, Next, WORDS};
    use std::sync::Arc;

    fn words(p: u64) -> [u64; WORDS] {
        std::array::from_fn(|i| p.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i as u64)
    }

    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let ring = Arc::new(Model::new(2));
        let w = ring.clone();
        let t = loom::thread::spawn(move || {
            for p in 0..3 {
                w.write(p, &words(p));
            }
        });
        let mut cursor = (0u64, 0u64);
        let mut read = Vec::new();
        let mut seen_end = false;
        for _ in 0..6 {
            match ring.next(&mut cursor) {
                Next::Record(p, got) => {
                    assert_eq!(got, words(p), "torn record at position {p}");
                    assert!(read.last().map_or(true, |l| *l < p), "out of order");
                    read.push(p);
                }
                Next::Missed(from, to) => assert!(from < to),
                Next::Empty => loom::thread::yield_now(),
            }
            if cursor.0 == 3 {
                seen_end = true;
                break;
            }
        }
        t.join().unwrap();
        // Drain what is left once the writer is done.
        while cursor.0 < 3 {
            match ring.next(&mut cursor) {
                Next::Record(p, got) => {
                    assert_eq!(got, words(p));
                    read.push(p);
                }
                Next::Missed(from, to) => assert!(from < to),
                Next::Empty => panic!("published record not readable after the writer finished"),
            }
        }
        let _ = seen_end;
        assert_eq!(
            read.len() as u64 + cursor.1,
            3,
            "read {read:?} missed {}",
            cursor.1
        );
    });
}

/// Two would-be owners race for one role of a ring: exactly one wins, whether the role was
/// never claimed, let go by its holder, or held by a dead process (taken over exactly once),
/// and also when both claimants are threads of one process (same pid). The holder is then the
/// winner.
#[test]
fn two_claimants_never_both_own_a_role() {
    use quantum_ipc::liveness::model::RoleModel;
    use std::sync::Arc;
    const A: u64 = 101;
    const B: u64 = 102;
    const DEAD: u64 = 7;
    for (start, other) in [
        ("never claimed", B),
        ("let go", B),
        ("held by a dead process", B),
        ("let go, same pid", A),
    ] {
        loom::model(move || {
            let role = Arc::new(match start {
                "never claimed" => RoleModel::default(),
                "held by a dead process" => RoleModel::held_by(DEAD),
                _ => {
                    let r = RoleModel::held_by(DEAD);
                    r.release(DEAD);
                    r
                }
            });
            let alive = |p: u64| p == A || p == B;
            let r2 = role.clone();
            let t = loom::thread::spawn(move || r2.claim(other, alive).is_ok());
            let a = role.claim(A, alive).is_ok();
            let b = t.join().unwrap();
            assert!(a ^ b, "{start}: first claimant won: {a}, second won: {b}");
            assert_eq!(role.holder(), (if a { A } else { other }, true), "{start}");
        });
    }
}

/// The doorbell: a consumer that found the ring empty sleeps on it (`Consumer::wait`) while the
/// producer pushes. Under loom a futex wait never times out, so a push whose wake-up is lost
/// (the producer missing the announcement while the consumer's re-check misses the record)
/// leaves the consumer asleep for ever: loom reports the deadlock.
#[test]
fn a_consumer_asleep_on_the_doorbell_is_woken_by_the_push() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(|| {
        let ring = Ring::heap(2, 64).unwrap();
        let mut producer = ring.producer::<64>().unwrap();
        let mut consumer = ring.consumer::<64>().unwrap();
        let t = loom::thread::spawn(move || {
            for i in 0..2u8 {
                producer.try_push(&record(i)).unwrap();
            }
        });
        let mut next = 0u8;
        while next < 2 {
            match consumer.try_pop() {
                Some(r) => {
                    assert_eq!(r, record(next));
                    next += 1;
                }
                None => {
                    consumer.wait(std::time::Duration::from_secs(1));
                }
            }
        }
        t.join().unwrap();
        assert_eq!(ring.len(), 0);
    });
}

/// One consumer of two rings sleeps on both doorbells at once (`wait_any`, FUTEX_WAITV in
/// production) while each ring's producer pushes one record: neither push is slept through.
#[test]
fn wait_any_on_two_rings_sleeps_through_neither_push() {
    use quantum_ipc::doorbell::wait_any;

    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(|| {
        let a = Ring::heap(1, 64).unwrap();
        let b = Ring::heap(1, 64).unwrap();
        let mut pa = a.producer::<64>().unwrap();
        let mut pb = b.producer::<64>().unwrap();
        let mut ca = a.consumer::<64>().unwrap();
        let mut cb = b.consumer::<64>().unwrap();
        let ta = loom::thread::spawn(move || pa.try_push(&record(1)).unwrap());
        let tb = loom::thread::spawn(move || pb.try_push(&record(2)).unwrap());
        let (mut got_a, mut got_b) = (false, false);
        while !(got_a && got_b) {
            if let Some(r) = ca.try_pop() {
                assert_eq!(r, record(1));
                got_a = true;
            }
            if let Some(r) = cb.try_pop() {
                assert_eq!(r, record(2));
                got_b = true;
            }
            if !(got_a && got_b) {
                wait_any(
                    &[ca.bell(), cb.bell()],
                    std::time::Duration::from_secs(1),
                    || ca.ready() || cb.ready(),
                );
            }
        }
        ta.join().unwrap();
        tb.join().unwrap();
    });
}

/// The `results` doorbell: two readers (one with an entry of its own, one unlisted) sleep on
/// the broadcast ring's doorbell while the writer publishes; each is woken and reads both
/// records.
#[test]
fn broadcast_readers_asleep_on_the_doorbell_are_woken_by_the_writer() {
    use quantum_ipc::broadcast::model::{Model, Next, WORDS};
    use std::sync::Arc;

    fn words(p: u64) -> [u64; WORDS] {
        std::array::from_fn(|i| p * 10 + i as u64)
    }
    fn read_all(ring: &Model, slot: Option<usize>) {
        let mut cursor = (0u64, 0u64);
        while cursor.0 < 2 {
            match ring.next(&mut cursor) {
                Next::Record(p, got) => assert_eq!(got, words(p)),
                Next::Missed(..) => panic!("a four-slot ring lapped by two records"),
                Next::Empty => {
                    ring.wait(&cursor, slot);
                }
            }
        }
    }

    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let ring = Arc::new(Model::new(4));
        let w = ring.clone();
        let t = loom::thread::spawn(move || {
            for p in 0..2 {
                w.write(p, &words(p));
            }
        });
        let r = ring.clone();
        let unlisted = loom::thread::spawn(move || read_all(&r, None));
        read_all(&ring, Some(0));
        t.join().unwrap();
        unlisted.join().unwrap();
    });
}
