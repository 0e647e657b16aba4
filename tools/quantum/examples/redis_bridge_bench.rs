//! Benchmark of the Redis bridge with real processes: a local `redis-server`, `quantum run` and
//! `quantum bridge redis`, driven through Redis as the legacy exit brain would.
//!
//! ```text
//! cargo build --release -p quantum
//! cargo run --release -p quantum --example redis_bridge_bench -- [--latency N] [--throughput M] [--spin]
//! ```
//!
//! - **XADD → result entry**, closed loop (one plan at a time, so no queueing hides in the
//!   numbers and there is no coordinated omission to correct): the time from sending the XADD
//!   of a plan to a second connection, blocked in `XREAD` on `quantum:stream:apply.result`,
//!   receiving its result entry. Two kinds of plans: `HOLD` (answered at once by the core) and
//!   `EXECUTE` denied by P3.3 (the whole permit chain: accepted, both permits issued, judged,
//!   both permit keys SET with their TTL, result written). Every sample goes into an
//!   HdrHistogram (µs).
//! - **Sustained plans/s**: M `HOLD` plans XADDed in pipelines of 100, timed from the first XADD
//!   until the M-th result entry is in the stream.
//!
//! The `quantum` binary is taken from next to this example (`target/release/quantum`), or from
//! `--quantum PATH`.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use quantum_core::{Action, Plan, PlanId, SymbolId};
use quantum_local_redis::RedisServer;
use quantum_redis::legacy;
use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::Commands;

const PLANS: &str = legacy::PLAN_STREAM;
const RESULTS: &str = legacy::RESULT_STREAM;

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn quantum() -> PathBuf {
    if let Some(p) = arg("--quantum") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>");
    let q = dir.join("quantum");
    assert!(
        q.exists(),
        "{} not found: `cargo build --release -p quantum` first, or pass --quantum PATH",
        q.display()
    );
    q
}

/// Spawns `quantum <args>`, echoing its stderr and sending each line to the returned channel.
fn spawn(bin: &PathBuf, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut c = Command::new(bin)
        .args(args)
        .env("RUST_LOG", "info,quantum::apply=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn quantum");
    let (tx, rx) = mpsc::channel();
    let err = c.stderr.take().expect("stderr");
    let tag = args[..2].join(" ");
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if line.contains("WARN") || line.contains("ERROR") || line.contains("attached") {
                eprintln!("[{tag}] {line}");
            }
            let _ = tx.send(line);
        }
    });
    (c, rx)
}

fn wait_line(rx: &mpsc::Receiver<String>, needle: &str) {
    let end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < end {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            if l.contains(needle) {
                return;
            }
        }
    }
    panic!("timed out waiting for {needle:?}");
}

/// The legacy plan entry of BTCUSDT plan `id`.
fn plan_fields(id: u64, decision: &str) -> Vec<(&'static str, String)> {
    let decision = decision.parse().expect("a decision");
    let mut p = Plan::exit(PlanId(id), SymbolId(0), decision, Action::Partial75);
    p.kill_score = "0.539".parse().expect("a score");
    legacy::plan_entry_fields(&p, "BTCUSDT")
}

/// Closed-loop XADD → result entry latency of `n` plans of `decision`, in µs.
fn latency(
    redis: &RedisServer,
    n: u64,
    first_id: u64,
    decision: &str,
    last: &mut String,
) -> Histogram<u64> {
    let mut w = redis.conn();
    let mut r = redis.conn();
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let opts = StreamReadOptions::default().block(10_000).count(1);
    for i in 0..n {
        let id = first_id + i;
        let t0 = Instant::now();
        let _: String = w
            .xadd(PLANS, "*", &plan_fields(id, decision))
            .expect("XADD");
        let reply: StreamReadReply = r
            .xread_options(&[RESULTS], &[last.as_str()], &opts)
            .expect("XREAD");
        let e = reply
            .keys
            .first()
            .and_then(|k| k.ids.first())
            .unwrap_or_else(|| panic!("no result for plan {id:016x} within 10 s"));
        let us = t0.elapsed().as_micros() as u64;
        let got: String = e.get("plan_id").expect("plan_id");
        assert_eq!(got, format!("{id:016x}"), "results out of order");
        *last = e.id.clone();
        h.record(us.max(1)).expect("record");
    }
    h
}

fn report(name: &str, h: &Histogram<u64>) {
    println!(
        "{name:<34} n={:<6} p50={:>6} µs  p90={:>6} µs  p99={:>6} µs  p99.9={:>6} µs  max={:>6} µs",
        h.len(),
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.90),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
}

fn main() {
    let n_lat: u64 = arg("--latency").map_or(5_000, |v| v.parse().expect("--latency N"));
    let n_tp: u64 = arg("--throughput").map_or(50_000, |v| v.parse().expect("--throughput M"));
    let bin = quantum();
    let redis = RedisServer::start();
    let instance = format!("bench-redis-{}", std::process::id());
    let mut procs = Procs(Vec::new());
    // `--spin`: the daemon busy-polls instead of idling up to 1 ms between looks at its rings.
    let mut run = vec!["run", "--instance", instance.as_str()];
    if std::env::args().any(|a| a == "--spin") {
        run.push("--spin");
    }
    let (d, drx) = spawn(&bin, &run);
    procs.0.push(d);
    wait_line(&drx, "started");
    let (b, brx) = spawn(
        &bin,
        &[
            "bridge",
            "redis",
            "--instance",
            &instance,
            "--redis",
            &redis.url(),
            "--max-in-flight",
            "8192",
            "--stats-ms",
            "200",
        ],
    );
    procs.0.push(b);
    wait_line(&brx, "redis bridge attached");
    // The exchange position by `ctl inject` (no exchange here), and an operator ledger that
    // disagrees with it: EXECUTE plans go through the whole chain and P3.3 denies them.
    let mut inject = Command::new(&bin)
        .args(["ctl", "inject", "--instance", &instance, "--file", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ctl inject");
    inject
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"cmd":"position","symbol":"BTCUSDT","amount":"0.062","mark":"104000"}"#)
        .unwrap();
    assert!(inject.wait().unwrap().success());
    let mut c = redis.conn();
    let _: () = c
        .hset("quantum:position:BTCUSDT", "ledger_amount", "0.002")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let mut last = "0-0".to_string();
    // Warm-up, not recorded.
    latency(&redis, 500, 0x1_0000_0000, "HOLD", &mut last);
    let hold = latency(&redis, n_lat, 0x2_0000_0000, "HOLD", &mut last);
    let deny = latency(&redis, n_lat, 0x3_0000_0000, "EXECUTE", &mut last);
    let sample: String = c
        .get(format!("quantum:permit:p33:{:016x}", 0x3_0000_0000u64))
        .unwrap_or_default();
    assert!(
        sample.contains("reconcile_required_qty_mismatch"),
        "the EXECUTE plans were not denied by P3.3 as intended: {sample}"
    );

    // The bridge's own view: entry read → the core's answer seen on `results` (µs).
    std::thread::sleep(Duration::from_millis(400));
    let stats: std::collections::HashMap<String, String> = c
        .hgetall(format!("quantum:bridge:{instance}:stats"))
        .unwrap();
    let answer = |k: &str| stats.get(k).cloned().unwrap_or_else(|| "?".into());
    let answer_line = format!(
        "bridge: entry read -> core's answer seen (both latency runs and warm-up): p50={} µs p99={} µs max={} µs",
        answer("answer_us_p50"),
        answer("answer_us_p99"),
        answer("answer_us_max")
    );

    let before: usize = c.xlen(RESULTS).unwrap();
    let t0 = Instant::now();
    let mut id = 0x4_0000_0000u64;
    let mut sent = 0;
    while sent < n_tp {
        let mut p = redis::pipe();
        for _ in 0..100.min(n_tp - sent) {
            p.xadd(PLANS, "*", &plan_fields(id, "HOLD")).ignore();
            id += 1;
            sent += 1;
        }
        let () = p.query(&mut c).expect("XADD pipeline");
    }
    let sent_in = t0.elapsed();
    loop {
        let n: usize = c.xlen(RESULTS).unwrap();
        if n >= before + n_tp as usize {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "results stalled at {n}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let all_in = t0.elapsed();

    println!(
        "\nRedis bridge benchmark ({} CPUs; redis-server {}; debug={})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        redis::cmd("INFO")
            .arg("server")
            .query::<String>(&mut c)
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("?")
            .trim(),
        cfg!(debug_assertions)
    );
    report("XADD -> result entry, HOLD", &hold);
    report("XADD -> result entry, EXECUTE denied", &deny);
    println!("{answer_line}");
    println!(
        "sustained: {n_tp} HOLD plans in {:.3} s = {:.0} plans/s (written in {:.3} s)",
        all_in.as_secs_f64(),
        n_tp as f64 / all_in.as_secs_f64(),
        sent_in.as_secs_f64()
    );
}
