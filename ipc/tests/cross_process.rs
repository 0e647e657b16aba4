//! Real processes over real shared memory. The parent spawns this test binary again
//! (`current_exe() --exact <child test>`), with `QIPC_CHILD_*` variables saying what to do; the
//! child tests return at once when those are not set.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{instance, Cleanup};
use quantum_ipc::wire::{Raw, RECORD_SIZE};
use quantum_ipc::{Error, Limits, Message, PeerStatus, Ring, RingSpec};

const CAPACITY: usize = 256;

fn spawn_child(test: &str, envs: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

fn finish(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "child failed: {stdout}");
    stdout
}

fn spec(inst: &str) -> RingSpec {
    RingSpec::new(inst, "stream", CAPACITY)
}

fn decode_raw(r: &[u8; RECORD_SIZE]) -> Raw {
    match Message::decode(r, &Limits::default()) {
        Ok(Message::Raw(raw)) => {
            assert!(raw.is_consistent(), "torn record {raw:?}");
            raw
        }
        other => panic!("invalid record: {other:?}"),
    }
}

/// Child: attach as producer and push `Raw` records until `QIPC_CHILD_UNTIL` (exclusive),
/// starting where the ring stands.
#[test]
fn child_producer() {
    let Ok(inst) = std::env::var("QIPC_CHILD_PRODUCER") else {
        return;
    };
    let until: u64 = std::env::var("QIPC_CHILD_UNTIL").unwrap().parse().unwrap();
    let ring = Ring::open(&spec(&inst)).unwrap();
    let mut producer = ring.producer::<RECORD_SIZE>().unwrap();
    let start = producer.position();
    println!("start {start}");
    for seq in start..until {
        if seq % 1024 == 0 {
            producer.heartbeat();
        }
        producer
            .push(&Raw::for_seq(seq, 0).encode(), Duration::from_secs(30))
            .unwrap();
    }
}

/// Child: attach as consumer and check `QIPC_CHILD_COUNT` records arrive in order, valid.
#[test]
fn child_consumer() {
    let Ok(inst) = std::env::var("QIPC_CHILD_CONSUMER") else {
        return;
    };
    let count: u64 = std::env::var("QIPC_CHILD_COUNT").unwrap().parse().unwrap();
    let ring = Ring::open(&spec(&inst)).unwrap();
    let mut consumer = ring.consumer::<RECORD_SIZE>().unwrap();
    let mut buf = [[0u8; RECORD_SIZE]; 32];
    let mut next = 0;
    while next < count {
        let n = consumer.pop_batch(&mut buf);
        for r in &buf[..n] {
            assert_eq!(decode_raw(r).seq, next);
            next += 1;
        }
        if n == 0 {
            let r = consumer
                .pop(Duration::from_secs(30))
                .expect("producer stalled");
            assert_eq!(decode_raw(&r).seq, next);
            next += 1;
        }
    }
    println!("received {next}");
}

/// Child: try to open a ring and print the error.
#[test]
fn child_open() {
    let Ok(inst) = std::env::var("QIPC_CHILD_OPEN") else {
        return;
    };
    match Ring::open(&spec(&inst)) {
        Ok(_) => println!("opened"),
        Err(e) => println!("error: {e}"),
    }
}

/// Child: create a ring and die without cleaning up.
#[test]
fn child_abandon() {
    let Ok(inst) = std::env::var("QIPC_CHILD_ABANDON") else {
        return;
    };
    let ring = Ring::create(&spec(&inst)).unwrap();
    // Also an ingress ring holding a record, and an empty one nobody writes to.
    let plans = Ring::create_kept(&RingSpec::new(&inst, "plans", 8)).unwrap();
    plans
        .producer::<RECORD_SIZE>()
        .unwrap()
        .try_push(&[0; RECORD_SIZE])
        .unwrap();
    let ctl = Ring::create_kept(&RingSpec::new(&inst, "ctl", 8)).unwrap();
    drop(ctl.producer::<RECORD_SIZE>().unwrap());
    std::mem::forget(ring);
    std::mem::forget(plans);
    std::process::exit(0);
}

#[test]
fn a_million_records_cross_processes_in_order() {
    let count: u64 = if cfg!(miri) { 50 } else { 1_000_000 };
    let inst = instance("million");
    let _c = Cleanup(inst.clone());
    let ring = Ring::create(&spec(&inst)).unwrap();
    let consumer = spawn_child(
        "child_consumer",
        &[
            ("QIPC_CHILD_CONSUMER", inst.clone()),
            ("QIPC_CHILD_COUNT", count.to_string()),
        ],
    );
    let producer = spawn_child(
        "child_producer",
        &[
            ("QIPC_CHILD_PRODUCER", inst.clone()),
            ("QIPC_CHILD_UNTIL", count.to_string()),
        ],
    );
    finish(producer);
    let out = finish(consumer);
    assert!(out.contains(&format!("received {count}")), "{out}");
    let s = ring.stats();
    assert_eq!((s.pushed, s.popped, s.depth), (count, count, 0));
    assert!(matches!(
        ring.producer_status(60_000),
        PeerStatus::Detached { .. }
    ));
}

#[test]
fn killed_producer_leaves_no_torn_record_and_a_new_one_carries_on() {
    const TOTAL: u64 = 400_000;
    let inst = instance("kill");
    let _c = Cleanup(inst.clone());
    let ring = Ring::create(&spec(&inst)).unwrap();
    let mut consumer = ring.consumer::<RECORD_SIZE>().unwrap();
    let mut next = 0u64;
    let take = |consumer: &mut quantum_ipc::Consumer<RECORD_SIZE>, next: &mut u64| {
        let r = consumer.try_pop()?;
        assert_eq!(decode_raw(&r).seq, *next, "out of sequence");
        *next += 1;
        Some(())
    };

    // Three producers killed with SIGKILL mid-stream, then one that finishes.
    for round in 0..4 {
        let mut child = spawn_child(
            "child_producer",
            &[
                ("QIPC_CHILD_PRODUCER", inst.clone()),
                ("QIPC_CHILD_UNTIL", TOTAL.to_string()),
            ],
        );
        let pid = u64::from(child.id());
        if round == 3 {
            let deadline = Instant::now() + Duration::from_secs(120);
            while next < TOTAL {
                if take(&mut consumer, &mut next).is_none() {
                    assert!(Instant::now() < deadline, "stream stalled at {next}");
                    std::thread::yield_now();
                }
            }
            finish(child);
            break;
        }
        // Let it stream a while (it blocks on the full ring in between), then kill it.
        let stop_at = next + 20_000 + round * 7_919;
        let deadline = Instant::now() + Duration::from_secs(60);
        while next < stop_at {
            if take(&mut consumer, &mut next).is_none() {
                assert!(Instant::now() < deadline, "stream stalled at {next}");
                std::hint::spin_loop();
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert_eq!(consumer.peer_status(60_000), PeerStatus::Dead { pid });
        // Whatever it published before dying is whole and in sequence.
        while take(&mut consumer, &mut next).is_some() {}
    }
    assert_eq!(next, TOTAL);
    assert!(consumer.try_pop().is_none());
}

#[test]
fn another_layout_is_refused_with_one_clear_sentence() {
    let inst = instance("layout");
    let _c = Cleanup(inst.clone());
    let ring = Ring::create(&spec(&inst)).unwrap();
    // Pretend the segment was written by a binary with another layout and format version.
    let path = quantum_ipc::shm::path_of(ring.os_id());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
    bytes[16..24].copy_from_slice(&0x1234_5678_9abc_def0u64.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();

    let out = finish(spawn_child(
        "child_open",
        &[("QIPC_CHILD_OPEN", inst.clone())],
    ));
    let expected = format!(
        "error: segment quantum.{inst}.stream has layout 0x123456789abcdef0 format v7 but this \
         binary expects layout {:#018x} format v{}",
        quantum_ipc::LAYOUT_HASH,
        quantum_ipc::wire::FORMAT_VERSION
    );
    assert!(out.contains(&expected), "{out}");
    assert!(matches!(
        Ring::open(&spec(&inst)),
        Err(Error::LayoutMismatch { .. })
    ));
}

#[test]
fn segments_of_dead_owners_are_removed() {
    let inst = instance("stale");
    let _c = Cleanup(inst.clone());
    finish(spawn_child(
        "child_abandon",
        &[("QIPC_CHILD_ABANDON", inst.clone())],
    ));
    let segs = quantum_ipc::list_segments(Some(&inst)).unwrap();
    assert_eq!(segs.len(), 3);
    assert!(segs.iter().all(|s| !s.owner_alive));
    // The ingress ring that still holds a record stays for the next daemon to take over.
    let done = quantum_ipc::remove_stale_segments(Some(&inst)).unwrap();
    assert_eq!(
        done.removed,
        vec![
            format!("quantum.{inst}.ctl"),
            format!("quantum.{inst}.stream")
        ]
    );
    assert_eq!(done.kept.len(), 1);
    assert_eq!(done.kept[0].0, format!("quantum.{inst}.plans"));
    assert!(
        done.kept[0].1.contains("1 record(s) not yet taken"),
        "{:?}",
        done.kept
    );
    let left = quantum_ipc::list_segments(Some(&inst)).unwrap();
    assert_eq!(left.len(), 1);
}
