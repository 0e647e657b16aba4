//! `quantum bench chain`: the permit chain on one pinned thread, per plan, against baselines
//! measured in the same run.
//!
//! Rows, each a histogram of ns per sample:
//! - (a) two consecutive reads of the engine clock: what measuring itself costs (the floor);
//! - (b) one crossbeam `ArrayQueue` push and pop on the same thread: the cheapest hand-off a
//!   plan could take to reach any engine at all (the baseline);
//! - (c) the chain: ingest (dedupe, slot), governor, P3.3, the one-CAS consume and the order
//!   intent, from the engine's own `t_in`/`t_out` stamps (what `quantum demo` reports as
//!   `chain_ns`), on a hot thread with no other work.
//!
//! The demo's `chain_ns` is the same span measured inside a running system (feeder, exchange
//! adapter and simulator sharing the machine); this isolates the chain's own cost.

use std::hint::black_box;
use std::path::PathBuf;

use crossbeam::queue::ArrayQueue;
use quantum_core::event::Event;
use quantum_core::orders::{Failure, OrderInput};
use quantum_core::{
    Action, Clock, Command, Decision, Engine, EngineConfig, Input, Plan, PlanId, Qty,
};
use quantum_ipc::codes::FailKind;

use crate::report::{self, Row};

/// Options of `quantum bench chain`.
#[derive(Debug, clap::Args)]
pub struct ChainArgs {
    /// Measured plans (after as many warm-up plans).
    #[arg(long, default_value_t = 200_000)]
    pub plans: u64,
    /// Output directory for summary.json and the .hgrm files (relative: under the current
    /// directory).
    #[arg(long, default_value = "quantum-bench-chain")]
    pub out: PathBuf,
    /// Do not pin the benchmark thread.
    #[arg(long)]
    pub no_pin: bool,
}

fn clock_pairs(clock: &Clock, n: u64) -> Row {
    let mut hist = report::new_histogram();
    for _ in 0..n {
        let t0 = clock.now_ns();
        let t1 = black_box(clock.now_ns());
        hist.saturating_record((t1 - t0).max(1));
    }
    Row {
        key: "clock_pair",
        name: "(a) engine clock, two reads",
        hist,
    }
}

fn queue_hops(clock: &Clock, n: u64) -> Row {
    let q = ArrayQueue::new(1024);
    let mut hist = report::new_histogram();
    for i in 0..n {
        let t0 = clock.now_ns();
        let _ = q.push(black_box(i));
        let v = black_box(q.pop());
        let t1 = clock.now_ns();
        debug_assert_eq!(v, Some(i));
        hist.saturating_record((t1 - t0).max(1));
    }
    Row {
        key: "array_queue_hop",
        name: "(b) ArrayQueue push+pop, 1 thread",
        hist,
    }
}

fn chain(n: u64) -> anyhow::Result<Row> {
    // Every plan id is distinct and remembered for the dedupe horizon: room for all of them.
    let cfg = EngineConfig {
        dedupe_capacity: (2 * n as usize).next_power_of_two().clamp(1 << 12, 1 << 26),
        ..EngineConfig::default()
    };
    let mut e = Engine::new(cfg, Clock::new())?;
    let syms: Vec<_> = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
        .iter()
        .map(|s| e.symbols().id(s).expect("default symbol"))
        .collect();
    let big: Qty = "1000".parse()?;
    for s in &syms {
        for c in [
            Command::Position {
                symbol: *s,
                amount: big,
                mark: "100".parse()?,
            },
            Command::SetLedger {
                symbol: *s,
                amount: big,
            },
        ] {
            let _ = e.handle(Input::Command(c), 0, &mut |_| {});
        }
    }
    let mut hist = report::new_histogram();
    let mut id = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..2 * n {
        // Random-looking distinct ids, as the legacy 16-hex-digit ids are.
        id = id
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let s = syms[(i % 3) as usize];
        let plan = Plan::exit(PlanId(id), s, Decision::Execute, Action::Partial25);
        let measure = i >= n;
        let mut intent = None;
        e.process_plan(plan, &mut |ev| {
            if let Event::OrderIntent(o) = ev {
                intent = Some(o);
                if measure {
                    hist.saturating_record(o.t_out_ns.saturating_sub(o.t_in_ns).max(1));
                }
            }
        })
        .map_err(|_| anyhow::anyhow!("permit table full"))?;
        // The exchange's answer: a reject releases the order so every plan keeps executing.
        if let Some(o) = intent {
            let reject = OrderInput::Failed(Failure {
                plan: o.plan,
                symbol: o.symbol,
                kind: FailKind::Rejected,
                reason: 0,
                exchange_code: 0,
                at_ms: 0,
            });
            let _ = e.handle(Input::Order(reject), 0, &mut |_| {});
        }
    }
    Ok(Row {
        key: "chain_single",
        name: "(c) permit chain, 1 thread",
        hist,
    })
}

/// Runs the benchmark, prints the table, writes the reports.
pub fn run(args: &ChainArgs) -> anyhow::Result<Vec<Row>> {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let pinned = match (args.no_pin, cores.last()) {
        (false, Some(c)) => core_affinity::set_for_current(*c).then_some(c.id),
        _ => None,
    };
    let clock = Clock::new();
    let n = args.plans.max(1);
    // Warm the code paths of the baselines as well.
    let _ = (clock_pairs(&clock, n / 10), queue_hops(&clock, n / 10));
    let rows = vec![clock_pairs(&clock, n), queue_hops(&clock, n), chain(n)?];
    println!(
        "{}",
        report::table_titled(
            &rows,
            "per sample (ns)",
            "clock_pair",
            "/queue",
            "array_queue_hop"
        )
    );
    let run = serde_json::json!({
        "plans": n,
        "pinned_core": pinned,
        "cores": cores.len(),
    });
    let summary = report::summary(&rows, "clock_pair", "array_queue_hop", run);
    report::write(&args.out, &rows, &summary)?;
    println!("wrote {}", args.out.display());
    Ok(rows)
}
