//! A journal of engine events left on disk, to time `quantum ctl journal state|plan` on it.
//!
//! ```text
//! cargo run --release -p quantum-bench --example audit_journal -- --dir DIR [--events N] [--snapshots none|segments]
//! ```
//!
//! Unique exit plans go through a real engine whose clock (mocked) moves 1 ms per plan, so the
//! journal spans real time (10^7 events: about 28 minutes); each plan's order is rejected by
//! the exchange (about 6 events per plan), and the exchange's positions are refreshed every
//! 10,000 plans. Segments are 64 MiB, as `quantum run` writes them. With `--snapshots
//! segments` (the default) a snapshot is written at every sealed segment, as the daemon's
//! compactor does (it keeps the last two; these are all kept, so any point has one before it
//! within a segment); `none` writes none. It prints the journal's first and last times and the
//! time in the middle, for `--at`. Nothing is timed here: time the `quantum` commands.

use std::path::PathBuf;
use std::time::Duration;

use quantum_core::event::Event;
use quantum_core::recovery::State;
use quantum_core::{
    Action, Clock, Command, Decision, Engine, EngineConfig, Input, Plan, PlanId, Qty, SymbolId,
};
use quantum_ipc::journal::{snapshot, Journal, Options};
use quantum_redis::legacy::iso_ms;

/// Appends events to the journal, folding them into the state its snapshots are made of.
struct Sink {
    journal: Journal,
    state: State,
    dir: PathBuf,
    snapshots: bool,
    written: u64,
    /// The first and last event times.
    times: (Option<u64>, Option<u64>),
    failed: Option<String>,
}

impl Sink {
    fn push(&mut self, e: Event) {
        if self.failed.is_some() {
            return;
        }
        match self.journal.append(&e.to_message().encode()) {
            Ok((seq, sealed)) => {
                // A sealed segment: the state of its last event, as the daemon snapshots it.
                if sealed.is_some() && self.snapshots {
                    let bytes = self.state.encode();
                    if let Err(err) = snapshot::write(&self.dir, self.state.seq, &bytes) {
                        self.failed = Some(err.to_string());
                    }
                }
                self.state.apply(seq, &e);
                self.written += 1;
                if let Some(t) = e.at_ms() {
                    self.times.0.get_or_insert(t);
                    self.times.1 = Some(t);
                }
            }
            Err(err) => self.failed = Some(err.to_string()),
        }
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(arg(&args, "--dir").ok_or_else(|| {
        anyhow::anyhow!("say where with --dir DIR (it must not hold a journal yet)")
    })?);
    let events: u64 = arg(&args, "--events").map_or(Ok(10_000_000), |s| s.parse())?;
    let snapshots = match arg(&args, "--snapshots").as_deref() {
        None | Some("segments") => true,
        Some("none") => false,
        Some(other) => anyhow::bail!("--snapshots {other}: expected none or segments"),
    };
    if quantum_ipc::journal::segments(&dir).is_ok_and(|s| !s.is_empty()) {
        anyhow::bail!("{} already holds a journal", dir.display());
    }
    let cfg = EngineConfig {
        dedupe_capacity: (events as usize / 2)
            .next_power_of_two()
            .clamp(1 << 12, 1 << 26),
        ..EngineConfig::default()
    };
    let (clock, mock) = Clock::mock();
    let mut engine = Engine::new(cfg.clone(), clock.clone())?;
    let names: Vec<String> = engine.symbols().names().map(str::to_owned).collect();
    std::fs::create_dir_all(&dir)?;
    quantum_daemon::write_journal_symbols(&dir, &names)?;
    let (journal, _) =
        Journal::open(&dir, Options::default(), 1).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut sink = Sink {
        journal,
        state: State::new(names.len(), cfg.dedupe_horizon_ms, cfg.max_orders),
        dir: dir.clone(),
        snapshots,
        written: 0,
        times: (None, None),
        failed: None,
    };
    let big: Qty = "1000000".parse()?;
    let mut i = 0u64;
    while sink.written < events {
        if let Some(e) = sink.failed.take() {
            anyhow::bail!("{e}");
        }
        if i % 10_000 == 0 {
            let mode = Command::AccountMode { hedge: false };
            let _ = engine.handle(Input::Command(mode), 0, &mut |e| sink.push(e));
            for s in 0..names.len() as u16 {
                for c in [
                    Command::Position {
                        symbol: SymbolId(s),
                        amount: big,
                        mark: "100".parse()?,
                    },
                    Command::SetLedger {
                        symbol: SymbolId(s),
                        amount: big,
                    },
                ] {
                    let _ = engine.handle(Input::Command(c), 0, &mut |e| sink.push(e));
                }
            }
        }
        i += 1;
        mock.increment(Duration::from_millis(1));
        let plan = Plan::exit(
            PlanId(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            SymbolId((i % names.len() as u64) as u16),
            Decision::Execute,
            Action::Partial25,
        );
        let at_ms = clock.wall_ms(clock.now_ns());
        quantum_bench::feed::plan_then_reject(&mut engine, plan, at_ms, &mut |e| sink.push(e));
    }
    let Sink {
        written,
        times,
        journal,
        ..
    } = sink;
    drop(journal);
    let (first, last) = (times.0.unwrap_or(0), times.1.unwrap_or(0));
    let mid = first + (last - first) / 2;
    println!(
        "{}: {written} events of {i} plans, {} snapshot(s); times {} .. {}; middle {} ({mid} ms)",
        dir.display(),
        snapshot::list(&dir)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .len(),
        iso_ms(first),
        iso_ms(last),
        iso_ms(mid)
    );
    Ok(())
}
