//! The permit chain's own span per plan (`t_out_ns - t_in_ns` of each order intent, the
//! engine's stamps), on one pinned thread, with two baselines from the same run: two reads of
//! the engine clock, and one crossbeam `ArrayQueue` push and pop on the same thread.
//!
//! ```text
//! cargo run --release -p quantum-bench --example chain_span [-- --plans N]
//! ```
//!
//! It measures what the earlier `quantum bench chain` measured, the same way (closed loop,
//! warm-up as long as the measurement, the exchange's reject answering each order), so the
//! chain's cost can be compared across versions by its ratio to the baselines. `quantum bench
//! chain` measures the chain open loop, from each plan's due time.
//!
//! `CHAIN_SPAN_SMALL_DEDUPE=1` runs the chain with a dedupe table that fits in the cache (16 Ki
//! ids, 3 ms horizon) instead of the benchmark's 2 Mi ids: the difference is what one cache
//! and TLB miss per plan into a table sized for a long horizon costs.

use std::hint::black_box;

use crossbeam::queue::ArrayQueue;
use hdrhistogram::Histogram;
use quantum_bench::scenarios::chain::{engine, reject};
use quantum_core::event::Event;
use quantum_core::{Action, Clock, Decision, Plan, PlanId};

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds")
}

fn row(name: &str, h: &Histogram<u64>, floor: u64, queue: u64) {
    let p50 = h.value_at_quantile(0.5);
    println!(
        "{name:<34} {:>8} {:>6} {:>6} {:>6} {:>7} {:>8} {:>9} {:>6.2}x {:>6.2}x",
        h.len(),
        p50,
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.value_at_quantile(0.9999),
        h.max(),
        p50 as f64 / floor.max(1) as f64,
        p50 as f64 / queue.max(1) as f64
    );
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args
        .iter()
        .position(|a| a == "--plans")
        .and_then(|i| args.get(i + 1))
        .map_or(Ok(200_000), |v| v.parse())?;
    // Nanoseconds from one plan's start to the next (0: back to back), as an open loop offers.
    let gap: u64 = args
        .iter()
        .position(|a| a == "--gap-ns")
        .and_then(|i| args.get(i + 1))
        .map_or(Ok(0), |v| v.parse())?;
    if let Some(c) = core_affinity::get_core_ids().unwrap_or_default().last() {
        core_affinity::set_for_current(*c);
    }
    let clock = Clock::new();
    let (mut clocks, mut queues) = (hist(), hist());
    let q = ArrayQueue::new(1024);
    for pass in 0..2 {
        for i in 0..n {
            let t0 = clock.now_ns();
            let t1 = black_box(clock.now_ns());
            let t2 = clock.now_ns();
            let _ = q.push(black_box(i));
            let v = black_box(q.pop());
            let t3 = clock.now_ns();
            debug_assert_eq!(v, Some(i));
            if pass == 1 {
                clocks.saturating_record((t1 - t0).max(1));
                queues.saturating_record((t3 - t2).max(1));
            }
        }
    }
    let (mut e, syms) = if std::env::var_os("CHAIN_SPAN_SMALL_DEDUPE").is_some() {
        small()?
    } else {
        engine(true)?
    };
    let mut chain = hist();
    let mut id = 0x9e37_79b9_7f4a_7c15u64;
    let pause = std::env::var_os("CHAIN_SPAN_NO_PAUSE").is_none();
    let mut next = clock.now_ns();
    let mut measured_from = None;
    for i in 0..2 * n {
        while gap > 0 && clock.now_ns() < next {
            if pause {
                std::hint::spin_loop();
            }
        }
        next = clock.now_ns() + gap;
        id = id
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let s = syms[(i % 3) as usize];
        let plan = Plan::exit(PlanId(id), s, Decision::Execute, Action::Partial25);
        let mut intent = None;
        e.process_plan(plan, &mut |ev| {
            if let Event::OrderIntent(o) = ev {
                intent = Some(o);
            }
        })
        .map_err(|_| anyhow::anyhow!("permit table full"))?;
        let o = intent.ok_or_else(|| anyhow::anyhow!("plan {i} was not executed"))?;
        if i == n {
            measured_from = Some(std::time::Instant::now());
        }
        if i >= n {
            chain.saturating_record(o.t_out_ns.saturating_sub(o.t_in_ns).max(1));
        }
        let _ = e.handle(reject(o.plan, o.symbol), 0, &mut |_| {});
    }
    let per_sec = measured_from.map_or(0.0, |t| n as f64 / t.elapsed().as_secs_f64());
    let (floor, queue) = (clocks.value_at_quantile(0.5), queues.value_at_quantile(0.5));
    println!(
        "{:<34} {:>8} {:>6} {:>6} {:>6} {:>7} {:>8} {:>9} {:>7} {:>7}",
        "per sample (ns)",
        "samples",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "p99.99",
        "max",
        "/floor",
        "/queue"
    );
    row("(a) engine clock, two reads", &clocks, floor, queue);
    row("(b) ArrayQueue push+pop, 1 thread", &queues, floor, queue);
    row("(c) permit chain, 1 thread", &chain, floor, queue);
    println!(
        "(c) with each plan's reject: {:.2} M plans/s",
        per_sec / 1e6
    );
    Ok(())
}

/// Experiment: the same engine with a dedupe table that fits in cache (3 ms horizon).
fn small() -> anyhow::Result<(quantum_core::Engine, Vec<quantum_core::SymbolId>)> {
    let cfg = quantum_core::EngineConfig {
        dedupe_capacity: 1 << 14,
        dedupe_horizon_ms: 3,
        max_plan_age_ms: 3,
        apply_wait_ms: 1,
        ..quantum_core::EngineConfig::default()
    };
    let mut e = quantum_core::Engine::new(cfg, Clock::new())?;
    let syms: Vec<_> = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
        .iter()
        .map(|s| e.symbols().id(s).expect("default symbol"))
        .collect();
    for c in quantum_bench::scenarios::chain::book_commands(&syms)? {
        let _ = e.handle(quantum_core::Input::Command(c), 0, &mut |_| {});
    }
    Ok((e, syms))
}
