//! What the journal costs, and how long a restart takes to replay it.
//!
//! ```text
//! cargo run --release -p quantum-bench --example journal [-- --dir DIR] [--quick]
//! ```
//!
//! 1. **Chain latency, journal on and off, same run.** One pinned thread does what the
//!    daemon's engine and I/O threads do for a plan: the engine's chain, then for each event
//!    its wire record, the journal append (when on) and the publish on a `results` broadcast
//!    ring. Measured per plan: from taking the plan to its result being published. Blocks of
//!    plans alternate between the modes, so both see the same machine; the exchange's answer
//!    to each order (a reject, so every plan keeps executing) goes through the same path.
//!    A third row syncs the journal (`msync`) after each plan: `journal.fsync = true` with a
//!    batch of one.
//! 2. **Appends per second on one core:** 10^7 appends of event records (64 MiB segments,
//!    roll-over included), no sync.
//! 3. **Replay:** journals of 10^6 and 10^7 events from the engine (unique plans), read back
//!    and folded into the recovery state as `quantum run` does at start without a snapshot;
//!    then that state written as a snapshot and read back.
//!
//! Benchmarks measure; nothing here asserts a speed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use hdrhistogram::Histogram;
use quantum_core::event::Event;
use quantum_core::recovery::State;
use quantum_core::{
    Action, Clock, Command, Decision, Engine, EngineConfig, Input, Plan, PlanId, Qty,
};
use quantum_ipc::broadcast::Broadcast;
use quantum_ipc::journal::{snapshot, Journal, Options, Reader};
use quantum_ipc::wire::Record;

fn engine(plans: u64) -> anyhow::Result<Engine> {
    let cfg = EngineConfig {
        dedupe_capacity: (2 * plans as usize)
            .next_power_of_two()
            .clamp(1 << 12, 1 << 26),
        ..EngineConfig::default()
    };
    let mut e = Engine::new(cfg, Clock::new())?;
    let big: Qty = "1000000".parse()?;
    let _ = e.handle(
        Input::Command(Command::AccountMode { hedge: false }),
        0,
        &mut |_| {},
    );
    for name in ["BTCUSDT", "ETHUSDT", "SOLUSDT"] {
        let s = e.symbols().id(name).expect("default symbol");
        for c in [
            Command::Position {
                symbol: s,
                amount: big,
                mark: "100".parse()?,
            },
            Command::SetLedger {
                symbol: s,
                amount: big,
            },
        ] {
            let _ = e.handle(Input::Command(c), 0, &mut |_| {});
        }
    }
    Ok(e)
}

/// Distinct, random-looking plan ids.
struct Ids(u64);

impl Ids {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0
    }
}

/// One plan through the chain, and the exchange's reject of its order; `sink` gets every
/// event in order.
fn one_plan(e: &mut Engine, id: u64, i: u64, sink: &mut impl FnMut(&Event)) {
    let syms = [0u16, 1, 2];
    let plan = Plan::exit(
        PlanId(id),
        quantum_core::SymbolId(syms[(i % 3) as usize]),
        Decision::Execute,
        Action::Partial25,
    );
    quantum_bench::feed::plan_then_reject(e, plan, 0, &mut |ev| sink(&ev));
}

fn pct(h: &Histogram<u64>) -> String {
    format!(
        "p50={} p90={} p99={} p99.9={} p99.99={} max={}",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.value_at_quantile(0.9999),
        h.max()
    )
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Off,
    On,
    Fsync,
}

fn chain_rows(dir: &Path, blocks: u64, per_block: u64) -> anyhow::Result<()> {
    let total = blocks * per_block * 3;
    let mut e = engine(total)?;
    let clock = Clock::new();
    let results = Broadcast::heap(1 << 16, 1)?;
    let mut w = results.writer()?;
    let jdir = dir.join("chain");
    let _ = std::fs::remove_dir_all(&jdir);
    let (mut j, _) = Journal::open(
        &jdir,
        Options {
            segment_bytes: 64 << 20,
            fsync: true,
        },
        0,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut hist = [
        Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?,
        Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?,
        Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?,
    ];
    let mut ids = Ids(0x1234_5678);
    let mut i = 0u64;
    for b in 0..blocks * 3 {
        let mode = [Mode::Off, Mode::On, Mode::Fsync][(b % 3) as usize];
        // fsync is ~1000x slower: fewer plans keep the run short; the histogram says how many.
        let n = if mode == Mode::Fsync {
            per_block / 50
        } else {
            per_block
        };
        for _ in 0..n {
            i += 1;
            let t0 = clock.now_ns();
            let mut done = 0;
            let mut failed = None;
            one_plan(&mut e, ids.next(), i, &mut |ev| {
                let rec = ev.to_message().encode();
                if mode != Mode::Off {
                    if let Err(err) = j.append(&rec) {
                        failed = Some(err);
                    }
                }
                if mode == Mode::Fsync && matches!(ev, Event::PlanResult(_)) {
                    if let Err(err) = j.sync() {
                        failed = Some(err);
                    }
                }
                w.publish(&rec);
                if matches!(ev, Event::PlanResult(_)) && done == 0 {
                    done = clock.now_ns();
                }
            });
            if let Some(err) = failed {
                anyhow::bail!("journal: {err}");
            }
            if i > per_block {
                // The first block warms up.
                hist[mode as usize].saturating_record(done.saturating_sub(t0).max(1));
            }
        }
    }
    drop(j);
    let _ = std::fs::remove_dir_all(&jdir);
    println!("chain latency, plan taken -> its result published (ns), one pinned thread:");
    println!(
        "  journal off          n={:>8} {}",
        hist[0].len(),
        pct(&hist[0])
    );
    println!(
        "  journal on           n={:>8} {}",
        hist[1].len(),
        pct(&hist[1])
    );
    println!(
        "  journal on, msync    n={:>8} {}",
        hist[2].len(),
        pct(&hist[2])
    );
    Ok(())
}

/// Engine events of `n` unique plans (about 6 per plan: accepted, two permits, intent,
/// result, the order's end).
fn events(n_events: u64) -> anyhow::Result<Vec<Record>> {
    let mut out = Vec::with_capacity(n_events as usize + 16);
    let mut e = engine(n_events / 4)?;
    let mut ids = Ids(0xabcd_ef01);
    let mut i = 0;
    while (out.len() as u64) < n_events {
        i += 1;
        one_plan(&mut e, ids.next(), i, &mut |ev| {
            out.push(ev.to_message().encode())
        });
    }
    out.truncate(n_events as usize);
    Ok(out)
}

fn appends(dir: &Path, recs: &[Record], times: u32) -> anyhow::Result<()> {
    let jdir = dir.join("appends");
    let _ = std::fs::remove_dir_all(&jdir);
    let (mut j, _) =
        Journal::open(&jdir, Options::default(), 0).map_err(|e| anyhow::anyhow!("{e}"))?;
    let t0 = Instant::now();
    let mut n = 0u64;
    for _ in 0..times {
        for r in recs {
            j.append(r).map_err(|e| anyhow::anyhow!("{e}"))?;
            n += 1;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    drop(j);
    let _ = std::fs::remove_dir_all(&jdir);
    println!(
        "appends: {n} events in {secs:.2} s on one core: {:.1} M events/s, {:.0} ns per append (64 MiB segments, no sync)",
        n as f64 / secs / 1e6,
        secs * 1e9 / n as f64
    );
    Ok(())
}

fn replay(dir: &Path, n_events: u64) -> anyhow::Result<()> {
    let recs = events(n_events)?;
    let jdir = dir.join(format!("replay-{n_events}"));
    let _ = std::fs::remove_dir_all(&jdir);
    {
        let (mut j, _) =
            Journal::open(&jdir, Options::default(), 0).map_err(|e| anyhow::anyhow!("{e}"))?;
        for r in &recs {
            j.append(r).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
    }
    drop(recs);
    // What `quantum run` does at start without a snapshot: open (every record checked, the
    // tail scanned), then read and fold.
    let t0 = Instant::now();
    let (j, _) = Journal::open(&jdir, Options::default(), 1).map_err(|e| anyhow::anyhow!("{e}"))?;
    let opened = t0.elapsed().as_secs_f64();
    let mut state = State::new(3, 86_400_000, 1 << 14);
    let mut bad = None;
    Reader::open(&jdir)
        .and_then(|r| {
            r.read_from(1, |seq, rec| {
                if let Err(e) = state.apply_record(seq, rec) {
                    bad.get_or_insert(e);
                }
                Ok(())
            })
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(e) = bad {
        anyhow::bail!("{e}");
    }
    let total = t0.elapsed().as_secs_f64();
    drop(j);
    let t1 = Instant::now();
    let bytes = state.encode();
    snapshot::write(&jdir, state.seq, &bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let written = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let (snap, _) = snapshot::latest(&jdir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let back = State::decode(&snap.expect("snapshot").1).map_err(|e| anyhow::anyhow!("{e}"))?;
    let read = t2.elapsed().as_secs_f64();
    assert_eq!(back.seq, state.seq);
    println!(
        "replay of {n_events} events: {total:.2} s ({opened:.2} s opening and checking, {:.2} M events/s folding); state: {} plan ids, snapshot {:.1} MB written in {:.0} ms, read back in {:.0} ms",
        n_events as f64 / (total - opened) / 1e6,
        state.dedupe.len(),
        bytes.len() as f64 / 1e6,
        written * 1e3,
        read * 1e3
    );
    let _ = std::fs::remove_dir_all(&jdir);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let dir = args
        .iter()
        .position(|a| a == "--dir")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/bench-journal"));
    std::fs::create_dir_all(&dir)?;
    if let Some(c) = core_affinity::get_core_ids().unwrap_or_default().last() {
        core_affinity::set_for_current(*c);
    }
    println!(
        "journal benchmark in {} (disk: the file system under it)",
        dir.display()
    );
    let (blocks, per) = if quick { (4, 5_000) } else { (20, 10_000) };
    chain_rows(&dir, blocks, per)?;
    let recs = events(if quick { 100_000 } else { 1_000_000 })?;
    appends(&dir, &recs, if quick { 1 } else { 10 })?;
    drop(recs);
    replay(&dir, if quick { 100_000 } else { 1_000_000 })?;
    if !quick {
        replay(&dir, 10_000_000)?;
    }
    Ok(())
}
