//! Loom model of the ring protocol: publish/consume, wrap-around, full and empty.
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
