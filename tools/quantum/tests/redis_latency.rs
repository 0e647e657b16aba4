//! The legacy path timed live, with real processes: a real `redis-server`, `quantum run` (no
//! exchange: every `EXECUTE` plan gets both permits and is denied by P3.3) and `quantum bridge
//! redis --hdr-log`. Plans are XADDed one at a time, as the legacy exit brain writes them;
//! the bridge's interval log (read back with HdrHistogram's reader) has one sample per plan
//! answered in each series that plan has a start for, its gauges are in its own segment, and
//! `quantum ctl latency` shows them beside the core's while the bridge runs, and no longer once
//! it has stopped.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{wait_for, Instance};
use quantum_core::event::Event;
use quantum_ipc::broadcast::{Broadcast, Next, Start};
use quantum_ipc::latency::{self, gauges, read::intervals, REDIS_SEGMENT};
use quantum_ipc::wire::{Limits, Message};
use quantum_ipc::{CountersReader, RingSpec};
use quantum_local_redis::RedisServer;
use quantum_redis::legacy::{PLAN_STREAM, RESULT_STREAM};
use quantum_redis::legs::{self, Leg};
use redis::Commands;
use serde_json::Value;

/// Plans of each kind: HOLD and EXECUTE, each with and without a `timestamp`.
const PER_KIND: usize = 25;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The plan ids the core gave permits for (a `GovPermit` or `P33Permit` event).
fn permitted_plans(instance: &str) -> HashSet<String> {
    let ring = Broadcast::open(&RingSpec::new(instance, "results", 0)).expect("open results");
    let mut r = ring.reader(Start::Oldest);
    let mut out = HashSet::new();
    loop {
        match r.read() {
            Next::Record { record, .. } => {
                let m = Message::decode(&record, &Limits::default()).expect("a valid record");
                match Event::from_message(&m).expect("an event") {
                    Event::GovPermit(g) => out.insert(g.plan.to_string()),
                    Event::P33Permit(p) => out.insert(p.plan.to_string()),
                    _ => false,
                };
            }
            Next::Empty => return out,
            Next::Missed { from_seq, to_seq } => panic!("the ring lost {from_seq}..{to_seq}"),
        }
    }
}

/// `quantum ctl latency --instance NAME --json`.
fn ctl_latency(inst: &Instance) -> Value {
    let out = inst
        .command(&["ctl", "latency", "--instance", &inst.name, "--json"], &[])
        .output()
        .expect("ctl latency");
    assert!(
        out.status.success(),
        "ctl latency: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ctl latency --json is JSON")
}

#[test]
fn the_legacy_path_is_timed_once_per_plan_answered() {
    let redis = RedisServer::start();
    let mut inst = Instance::new("redis-legs");
    inst.start_daemon_fed_by_hand(&[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("redis.hlog");
    let mut bridge = inst
        .command(
            &[
                "bridge",
                "redis",
                "--instance",
                &inst.name,
                "--redis",
                &redis.url(),
                "--stats-ms",
                "200",
                "--hdr-log",
                log_path.to_str().unwrap(),
                "--latency-interval-ms",
                "1000",
            ],
            &[],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn quantum bridge redis");
    let bridge_pid = bridge.id();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let err = bridge.stderr.take().unwrap();
    let l2 = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("[redis-bridge] {line}");
            l2.lock().unwrap().push(line);
        }
    });
    wait_for(30, "the bridge attached", || {
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("redis bridge attached"))
    });
    let mut c = redis.conn();

    // The gauges are there from the start, in the bridge's own segment, owned by it.
    let seg = CountersReader::open_named(&inst.name, REDIS_SEGMENT).expect("the bridge's segment");
    assert_eq!(seg.owner_pid(), u64::from(bridge_pid));
    let names: Vec<String> = gauges::read(&seg).into_iter().map(|s| s.series).collect();
    assert_eq!(names, legs::series());

    // Plans as the exit brain writes them, one at a time; half of each decision carries the
    // plan's own `timestamp` (milliseconds, and Python's float seconds).
    let mut plans: Vec<(String, bool)> = Vec::new();
    let mut stamped = HashSet::new();
    for (k, decision) in ["HOLD", "EXECUTE"].into_iter().enumerate() {
        for i in 0..2 * PER_KIND {
            let id = format!("{:x}{:015x}", 0xa + k, i);
            let mut fields = vec![
                ("plan_id", id.clone()),
                ("symbol", "BTCUSDT".to_string()),
                ("decision", decision.to_string()),
                ("action", "PARTIAL_75".to_string()),
                ("kill_score", "0.539".to_string()),
            ];
            if i % 2 == 1 {
                let ms = now_ms();
                let ts = if i % 4 == 1 {
                    ms.to_string()
                } else {
                    format!("{}.{:03}0101", ms / 1000, ms % 1000)
                };
                fields.push(("timestamp", ts));
                stamped.insert(id.clone());
            }
            let _: String = c.xadd(PLAN_STREAM, "*", &fields).expect("XADD");
            plans.push((id, decision == "EXECUTE"));
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // An entry that cannot be read gets no result entry, and no sample.
    let _: String = c
        .xadd(
            PLAN_STREAM,
            "*",
            &[("plan_id", "nope"), ("decision", "HOLD")],
        )
        .unwrap();

    // While the bridge runs, its gauges and `ctl latency` show the interval the plans were in
    // (1 s intervals: each interval's figures stay up for one).
    let mut seen_gauges = false;
    let mut seen_ctl = false;
    wait_for(20, "the redis.* figures of an interval with plans", || {
        if !seen_gauges {
            seen_gauges = gauges::read(&seg).iter().any(|s| {
                s.series == Leg::ReadResult.name() && s.values.iter().all(|(_, v)| *v > 0)
            });
        }
        if !seen_ctl {
            let j = ctl_latency(&inst);
            let series = &j["series"];
            seen_ctl = legs::series().iter().all(|n| series.get(n).is_some())
                && !series[Leg::EntryResult.name()]["p50"].is_null()
                && j["sources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s == REDIS_SEGMENT);
        }
        seen_gauges && seen_ctl
    });

    // Every plan answered, once.
    wait_for(20, "a result entry per plan", || {
        c.xlen::<_, usize>(RESULT_STREAM).unwrap() == plans.len()
    });
    // Repeats of two answered plans: answered again by the core, no second result entry.
    for (id, execute) in [&plans[0], &plans[plans.len() - 1]] {
        let decision = if *execute { "EXECUTE" } else { "HOLD" };
        let _: String = c
            .xadd(
                PLAN_STREAM,
                "*",
                &[
                    ("plan_id", id.as_str()),
                    ("symbol", "BTCUSDT"),
                    ("decision", decision),
                ],
            )
            .unwrap();
    }
    let stats_key = format!("quantum:bridge:{}:stats", inst.name);
    let stat = |c: &mut redis::Connection, k: &str| -> u64 {
        let h: HashMap<String, String> = c.hgetall(&stats_key).unwrap();
        h.get(k).map_or(0, |v| v.parse().unwrap())
    };
    wait_for(20, "both repeats answered and not written", || {
        stat(&mut c, "results_repeated") == 2 && stat(&mut c, "plans_dlq") == 1
    });
    assert_eq!(c.xlen::<_, usize>(RESULT_STREAM).unwrap(), plans.len());
    assert_eq!(stat(&mut c, "latency_negative_spans"), 0);
    let permitted = permitted_plans(&inst.name);

    // A clean stop writes the last interval.
    common::signal(bridge_pid, "-TERM");
    assert!(bridge.wait().unwrap().success());
    let logged = intervals(&std::fs::read(&log_path).unwrap()).expect("an interval log");
    let mut merged: HashMap<String, hdrhistogram::Histogram<u64>> = HashMap::new();
    for i in &logged {
        let h = merged
            .entry(i.tag.clone())
            .or_insert_with(latency::report::new_histogram);
        h.add(&i.hist).unwrap();
    }
    let count = |l: Leg| merged.get(l.name()).map_or(0, |h| h.len());
    let n = plans.len() as u64;
    let executes: HashSet<&String> = plans.iter().filter(|p| p.1).map(|p| &p.0).collect();
    assert_eq!(
        permitted.iter().filter(|p| executes.contains(p)).count(),
        executes.len(),
        "every EXECUTE plan went through the permits"
    );
    assert_eq!(permitted.len(), executes.len(), "{permitted:?}");
    assert_eq!(count(Leg::EntryResult), n);
    assert_eq!(count(Leg::ReadResult), n);
    assert_eq!(count(Leg::EntryPermits), permitted.len() as u64);
    assert_eq!(count(Leg::PlanResult), stamped.len() as u64);
    assert!(logged.iter().all(|i| legs::series().contains(&i.tag)));
    // Per plan, XADD → result entry holds entry read → result entry: so do their quantiles
    // (within the histograms' 0.1 %).
    let (entry, read) = (
        &merged[Leg::EntryResult.name()],
        &merged[Leg::ReadResult.name()],
    );
    for q in [0.0, 0.5, 0.99, 1.0] {
        let (e, r) = (entry.value_at_quantile(q), read.value_at_quantile(q));
        assert!(e as f64 >= r as f64 * 0.999, "q{q}: entry {e} < read {r}");
    }
    for l in Leg::ALL {
        let h = &merged[l.name()];
        eprintln!(
            "{:<20} n={:<4} p50={:>9} ns p99={:>9} ns max={:>9} ns",
            l.name(),
            h.len(),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.max()
        );
    }

    // A stopped bridge's segment is not shown as live.
    let j = ctl_latency(&inst);
    assert!(
        !j["sources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == REDIS_SEGMENT),
        "{j}"
    );
    assert!(j["series"].get(Leg::EntryResult.name()).is_none(), "{j}");
}
