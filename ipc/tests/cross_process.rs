//! Real processes over real shared memory. A test spawns this binary again with a
//! `QIPC_CHILD_*` variable naming the child's job (producer, consumer, open, abandon) and its
//! instance; `main` then does that job instead of running the tests. The binary has its own
//! small harness (`harness = false` in Cargo.toml) for that: under libtest a child's job could
//! only be reached as a `#[test]`, one that passes whenever the variable is not set.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use common::{instance, Cleanup};
use quantum_ipc::doorbell::Wait;
use quantum_ipc::liveness::clock_ms;
use quantum_ipc::wire::{Raw, RECORD_SIZE};
use quantum_ipc::{Error, Limits, Message, PeerStatus, Ring, RingSpec};

const CAPACITY: usize = 256;

/// The tests, by name, in the order they run.
const TESTS: &[(&str, fn())] = &[
    (
        "a_million_records_cross_processes_in_order",
        a_million_records_cross_processes_in_order,
    ),
    (
        "killed_producer_leaves_no_torn_record_and_a_new_one_carries_on",
        killed_producer_leaves_no_torn_record_and_a_new_one_carries_on,
    ),
    (
        "another_layout_is_refused_with_one_clear_sentence",
        another_layout_is_refused_with_one_clear_sentence,
    ),
    (
        "segments_of_dead_owners_are_removed",
        segments_of_dead_owners_are_removed,
    ),
    (
        "an_ingress_ring_of_another_layout_holding_records_is_kept",
        an_ingress_ring_of_another_layout_holding_records_is_kept,
    ),
    (
        "the_doorbell_wakes_a_consumer_in_another_process_every_time",
        the_doorbell_wakes_a_consumer_in_another_process_every_time,
    ),
];

/// What a child process does, given the instance.
type ChildJob = fn(&str);

/// The child jobs: the variable that asks for one (its value is the instance) and the job.
const CHILD_JOBS: &[(&str, ChildJob)] = &[
    ("QIPC_CHILD_PRODUCER", child_producer),
    ("QIPC_CHILD_CONSUMER", child_consumer),
    ("QIPC_CHILD_OPEN", child_open),
    ("QIPC_CHILD_ABANDON", child_abandon),
    ("QIPC_CHILD_PACED", child_paced),
];

fn main() -> ExitCode {
    for (var, job) in CHILD_JOBS {
        if let Ok(inst) = std::env::var(var) {
            // A failing job panics, and the process exits with 101 for the test to see.
            job(&inst);
            return ExitCode::SUCCESS;
        }
    }
    run_tests(std::env::args().skip(1).collect())
}

/// Runs the selected tests one after the other and reports like libtest. Understood: name
/// filters, `--exact`, `--skip NAME`, `--list`, `--ignored` (there are none); libtest's other
/// options are accepted and change nothing.
fn run_tests(args: Vec<String>) -> ExitCode {
    let mut filters = Vec::new();
    let mut skips = Vec::new();
    let (mut exact, mut list, mut ignored_only) = (false, false, false);
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--exact" => exact = true,
            "--list" => list = true,
            "--ignored" => ignored_only = true,
            "--skip" => skips.extend(args.next()),
            "--test-threads" | "--format" | "--color" | "--logfile" | "--shuffle-seed" | "-Z" => {
                args.next();
            }
            _ if a.starts_with('-') => {}
            _ => filters.push(a),
        }
    }
    let matches = |name: &str, pattern: &String| {
        if exact {
            name == pattern
        } else {
            name.contains(pattern.as_str())
        }
    };
    let selected: Vec<_> = TESTS
        .iter()
        .filter(|_| !ignored_only)
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| matches(name, f)))
        .filter(|(name, _)| !skips.iter().any(|s| matches(name, s)))
        .collect();
    if list {
        for (name, _) in &selected {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    let plural = if selected.len() == 1 { "" } else { "s" };
    println!("\nrunning {} test{plural}", selected.len());
    let mut failed = Vec::new();
    for (name, test) in &selected {
        let ok = catch_unwind(AssertUnwindSafe(test)).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if !ok {
            failed.push(*name);
        }
    }
    let passed = selected.len() - failed.len();
    let filtered = TESTS.len() - selected.len();
    if failed.is_empty() {
        println!("\ntest result: ok. {passed} passed; 0 failed; {filtered} filtered out\n");
        ExitCode::SUCCESS
    } else {
        println!("\nfailures:");
        for name in &failed {
            println!("    {name}");
        }
        println!(
            "\ntest result: FAILED. {passed} passed; {} failed; {filtered} filtered out\n",
            failed.len()
        );
        ExitCode::from(101)
    }
}

fn spawn_child(envs: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
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
fn child_producer(inst: &str) {
    let until: u64 = std::env::var("QIPC_CHILD_UNTIL").unwrap().parse().unwrap();
    let ring = Ring::open(&spec(inst)).unwrap();
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
fn child_consumer(inst: &str) {
    let count: u64 = std::env::var("QIPC_CHILD_COUNT").unwrap().parse().unwrap();
    let ring = Ring::open(&spec(inst)).unwrap();
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

/// Child: attach as producer and push `QIPC_CHILD_COUNT` records one at a time, each stamped
/// with the coarse clock at its push, pausing between them (none, or 50 µs to 0.75 ms) so the
/// consumer falls asleep before most of them and races the push for some.
fn child_paced(inst: &str) {
    let count: u64 = std::env::var("QIPC_CHILD_COUNT").unwrap().parse().unwrap();
    let ring = Ring::open(&spec(inst)).unwrap();
    let mut producer = ring.producer::<RECORD_SIZE>().unwrap();
    for seq in 0..count {
        if seq % 4 != 0 {
            std::thread::sleep(Duration::from_micros(50 + (seq * 7919) % 700));
        }
        producer
            .push(
                &Raw::for_seq(seq, clock_ms()).encode(),
                Duration::from_secs(30),
            )
            .unwrap();
    }
}

/// Child: try to open a ring and print the error.
fn child_open(inst: &str) {
    match Ring::open(&spec(inst)) {
        Ok(_) => println!("opened"),
        Err(e) => println!("error: {e}"),
    }
}

/// Child: create a ring and die without cleaning up.
fn child_abandon(inst: &str) {
    let ring = Ring::create(&spec(inst)).unwrap();
    // Also an ingress ring holding a record, and an empty one nobody writes to.
    let plans = Ring::create_kept(&RingSpec::new(inst, "plans", 8)).unwrap();
    plans
        .producer::<RECORD_SIZE>()
        .unwrap()
        .try_push(&[0; RECORD_SIZE])
        .unwrap();
    let ctl = Ring::create_kept(&RingSpec::new(inst, "ctl", 8)).unwrap();
    drop(ctl.producer::<RECORD_SIZE>().unwrap());
    std::mem::forget(ring);
    std::mem::forget(plans);
    std::process::exit(0);
}

fn a_million_records_cross_processes_in_order() {
    let count: u64 = if cfg!(miri) { 50 } else { 1_000_000 };
    let inst = instance("million");
    let _c = Cleanup(inst.clone());
    let ring = Ring::create(&spec(&inst)).unwrap();
    let consumer = spawn_child(&[
        ("QIPC_CHILD_CONSUMER", inst.clone()),
        ("QIPC_CHILD_COUNT", count.to_string()),
    ]);
    let producer = spawn_child(&[
        ("QIPC_CHILD_PRODUCER", inst.clone()),
        ("QIPC_CHILD_UNTIL", count.to_string()),
    ]);
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
        let mut child = spawn_child(&[
            ("QIPC_CHILD_PRODUCER", inst.clone()),
            ("QIPC_CHILD_UNTIL", TOTAL.to_string()),
        ]);
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

    let out = finish(spawn_child(&[("QIPC_CHILD_OPEN", inst.clone())]));
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

fn segments_of_dead_owners_are_removed() {
    let inst = instance("stale");
    let _c = Cleanup(inst.clone());
    finish(spawn_child(&[("QIPC_CHILD_ABANDON", inst.clone())]));
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

/// After an upgrade that changed the record layout, the old binary's ingress rings cannot be
/// opened: an empty one is removed as before, but one holding records is kept (they were
/// promised to a daemon), with the reason.
fn an_ingress_ring_of_another_layout_holding_records_is_kept() {
    let inst = instance("oldlayout");
    let _c = Cleanup(inst.clone());
    finish(spawn_child(&[("QIPC_CHILD_ABANDON", inst.clone())]));
    for ring in ["plans", "ctl"] {
        let path = quantum_ipc::shm::path_of(&format!("quantum.{inst}.{ring}"));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[16..24].copy_from_slice(&0x0bad_1a70_0bad_1a70u64.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
    }
    assert!(matches!(
        Ring::open(&RingSpec::new(&inst, "plans", 8)),
        Err(Error::LayoutMismatch { .. })
    ));
    let done = quantum_ipc::remove_stale_segments(Some(&inst)).unwrap();
    assert_eq!(
        done.removed,
        vec![
            format!("quantum.{inst}.ctl"),
            format!("quantum.{inst}.stream")
        ]
    );
    assert_eq!(done.kept.len(), 1, "{:?}", done.kept);
    assert_eq!(done.kept[0].0, format!("quantum.{inst}.plans"));
    assert!(
        done.kept[0]
            .1
            .contains("1 record(s) written under another record layout (0x0bad1a700bad1a70) wait"),
        "{:?}",
        done.kept
    );
}

/// The doorbell across processes: a consumer that sleeps on it (`Consumer::wait`, with a 2 s
/// safety-net timeout) whenever the ring is empty, and a producer process pushing records one
/// at a time with pauses. A lost wake-up is a wait that timed out although the record it waited
/// for had been pushed well before the timeout ended: there must be none, and most records must
/// have been waited for by a real sleep that a push ended.
fn the_doorbell_wakes_a_consumer_in_another_process_every_time() {
    const TIMEOUT: Duration = Duration::from_secs(2);
    let count = common::n(3_000);
    let inst = instance("bell");
    let _c = Cleanup(inst.clone());
    let ring = Ring::create(&spec(&inst)).unwrap();
    let mut consumer = ring.consumer::<RECORD_SIZE>().unwrap();
    let producer = spawn_child(&[
        ("QIPC_CHILD_PACED", inst.clone()),
        ("QIPC_CHILD_COUNT", count.to_string()),
    ]);
    let (mut next, mut rung, mut ready, mut timed_out, mut lost) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(120);
    while next < count {
        assert!(Instant::now() < deadline, "stream stalled at {next}");
        if let Some(r) = consumer.try_pop() {
            let raw = decode_raw(&r);
            assert_eq!(raw.seq, next, "out of sequence");
            next += 1;
            continue;
        }
        match consumer.wait(TIMEOUT) {
            Wait::Rung => rung += 1,
            Wait::Ready => ready += 1,
            Wait::TimedOut => {
                timed_out += 1;
                let ended_ms = clock_ms();
                // The record waited for, if it is there: pushed long before the timeout ended
                // means its ring did not wake us.
                if let Some(r) = consumer.try_pop() {
                    let raw = decode_raw(&r);
                    assert_eq!(raw.seq, next, "out of sequence");
                    next += 1;
                    if raw.stamp + 500 < ended_ms {
                        lost += 1;
                    }
                }
            }
        }
    }
    finish(producer);
    println!("  {count} records: {rung} waits woken by a push, {ready} pushes seen at the re-check, {timed_out} timeouts, {lost} lost wake-ups");
    assert_eq!(lost, 0, "wake-ups lost: {lost} of {rung} sleeps");
    assert!(
        rung >= count / 4,
        "too few real sleeps to say anything: {rung} woken waits for {count} records"
    );
    assert_eq!(ring.stats().popped, count);
}
