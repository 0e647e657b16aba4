//! `journal`: what the journal costs on the chain, measured in the same run as the chain
//! without it.
//!
//! Each row does on one pinned thread what the daemon's engine and I/O threads do for a plan:
//! the engine's chain, then for each event its wire record, the journal append (when on) and
//! the publish on a `results` broadcast ring; the exchange's answer to the order (a reject, so
//! the position is free again) goes through the same path. The latency runs from the plan's
//! due time to its result being published.
//!
//! - `journal.off`: no journal (the baseline of this scenario);
//! - `journal.on`: every event appended before it is published (`quantum run`'s default);
//! - `journal.fsync`: and the journal synced (`msync`) before the result is published, as
//!   `journal.fsync = true` does for a batch of one plan.
//!
//! Each row keeps its journal under the run's output directory and removes the segments a
//! block or throughput run filled (as the daemon's compactor does once a snapshot covers them).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use hdrhistogram::Histogram;
use quantum_core::event::Event;
use quantum_core::{Action, Clock, Decision, Engine, Input, Plan, PlanId, SymbolId};
use quantum_ipc::broadcast::{Broadcast, Writer};
use quantum_ipc::journal::{self, Journal, Options};

use super::chain::{self, ids};
use super::Ctx;
use crate::suite::openloop::{self, Schedule};
use crate::suite::variant::{Throughput, Variant};

/// The rows of `journal`.
pub fn build(ctx: &Ctx) -> Result<super::Rows> {
    Ok(vec![
        Box::new(Row::new(ctx, Mode::Off)?),
        Box::new(Row::new(ctx, Mode::On)?),
        Box::new(Row::new(ctx, Mode::Fsync)?),
    ])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Off,
    On,
    Fsync,
}

struct Row {
    mode: Mode,
    engine: Engine,
    syms: Vec<SymbolId>,
    clock: Clock,
    _results: Broadcast,
    writer: Writer,
    journal: Option<Journal>,
    dir: PathBuf,
    seq: u64,
    core: Option<core_affinity::CoreId>,
}

impl Row {
    fn new(ctx: &Ctx, mode: Mode) -> Result<Row> {
        let (engine, syms) = chain::engine(true)?;
        let clock = engine.front.clock().clone();
        let results = Broadcast::heap(1 << 16, journal::FIRST_SEQ)?;
        let writer = results.writer()?;
        let dir = ctx.out.join(format!("journal-{}", mode_name(mode)));
        let _ = std::fs::remove_dir_all(&dir);
        let journal = match mode {
            Mode::Off => None,
            Mode::On | Mode::Fsync => Some(
                Journal::open(
                    &dir,
                    Options {
                        segment_bytes: 64 << 20,
                        fsync: mode == Mode::Fsync,
                    },
                    0,
                )
                .map_err(|e| anyhow!("journal in {}: {e}", dir.display()))?
                .0,
            ),
        };
        Ok(Row {
            mode,
            engine,
            syms,
            clock,
            _results: results,
            writer,
            journal,
            dir,
            seq: 0,
            core: ctx.single(),
        })
    }

    /// One plan and its order's reject through the chain, journaled and published; the time
    /// its result was published.
    fn one(&mut self) -> Result<u64> {
        self.seq += 1;
        let s = self.syms[(self.seq % self.syms.len() as u64) as usize];
        let plan = Plan::exit(
            PlanId(ids::of(self.seq)),
            s,
            Decision::Execute,
            Action::Partial25,
        );
        let mut intent = None;
        let mut done = 0;
        let mut failed = None;
        let (journal, writer, clock) = (&mut self.journal, &mut self.writer, &self.clock);
        // With `fsync` the journal is synced before a plan's result leaves (`sync` does nothing
        // for a journal opened without it).
        let mut sink = |ev: &Event| {
            let rec = ev.to_message().encode();
            if let Some(j) = journal.as_mut() {
                if let Err(e) = j.append(&rec) {
                    failed.get_or_insert(e);
                }
                if matches!(ev, Event::PlanResult(_)) {
                    if let Err(e) = j.sync() {
                        failed.get_or_insert(e);
                    }
                }
            }
            writer.publish(&rec);
            if done == 0 && matches!(ev, Event::PlanResult(_)) {
                done = clock.now_ns();
            }
        };
        self.engine
            .process_plan(plan, &mut |ev| {
                if let Event::OrderIntent(o) = ev {
                    intent = Some(o);
                }
                sink(&ev);
            })
            .map_err(|_| anyhow!("permit table full"))?;
        let Some(o) = intent else {
            bail!("plan {} was not executed", plan.id);
        };
        let _ = self
            .engine
            .handle(chain::reject(o.plan, o.symbol), 0, &mut |ev| sink(&ev));
        if let Some(e) = failed {
            bail!("journal: {e}");
        }
        Ok(done)
    }

    fn refresh(&mut self) -> Result<()> {
        for c in chain::refresh(&self.syms)? {
            let _ = self.engine.handle(Input::Command(c), 0, &mut |_| {});
        }
        Ok(())
    }

    /// Removes the segments filled so far (the journal keeps the one it appends to).
    fn prune(&mut self) -> Result<()> {
        if let Some(j) = &self.journal {
            journal::prune(&self.dir, j.next_seq().saturating_sub(1), 0)
                .map_err(|e| anyhow!("{e}"))?;
        }
        Ok(())
    }

    fn pinned<R: Send>(&mut self, f: impl FnOnce(&mut Row) -> R + Send) -> R {
        super::on_core(self.core, self, f)
    }
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Off => "off",
        Mode::On => "on",
        Mode::Fsync => "fsync",
    }
}

impl Variant for Row {
    fn key(&self) -> &'static str {
        match self.mode {
            Mode::Off => "journal.off",
            Mode::On => "journal.on",
            Mode::Fsync => "journal.fsync",
        }
    }
    fn name(&self) -> &'static str {
        match self.mode {
            Mode::Off => "chain + publish, no journal",
            Mode::On => "chain + journal + publish",
            Mode::Fsync => "chain + journal + msync + publish",
        }
    }
    fn op(&self) -> &'static str {
        "plan"
    }

    fn block(&mut self, schedule: &Schedule, hist: &mut Histogram<u64>) -> Result<()> {
        self.refresh()?;
        let schedule = *schedule;
        let r = self.pinned(move |me| {
            let clock = me.clock.clone();
            let mut failed = None;
            openloop::run_block(
                &schedule,
                hist,
                &mut || clock.now_ns(),
                &mut |_| match me.one() {
                    Ok(t) => t,
                    Err(e) => {
                        failed.get_or_insert(e);
                        clock.now_ns()
                    }
                },
            );
            failed.map_or(Ok(()), Err)
        });
        self.prune()?;
        r
    }

    fn throughput(&mut self, duration: Duration) -> Result<Throughput> {
        self.refresh()?;
        let r = self.pinned(move |me| {
            let start = Instant::now();
            let mut ops = 0u64;
            loop {
                let batch = if me.mode == Mode::Fsync { 16 } else { 1024 };
                for _ in 0..batch {
                    me.one()?;
                }
                ops += batch;
                let elapsed = start.elapsed();
                if elapsed >= duration {
                    return Ok(Throughput { ops, elapsed });
                }
            }
        });
        self.prune()?;
        r
    }

    fn notes(&self) -> Vec<String> {
        let what = match self.mode {
            Mode::Off => "both published, no journal".to_string(),
            Mode::On => format!(
                "both journaled, then published (journal in {})",
                self.dir.display()
            ),
            Mode::Fsync => format!(
                "both journaled, the journal synced, then published (journal in {})",
                self.dir.display()
            ),
        };
        vec![format!(
            "one thread{}; each plan answered by an exchange reject, {what}",
            self.core
                .map_or(String::new(), |c| format!(" pinned to core {}", c.id))
        )]
    }
}

impl Drop for Row {
    fn drop(&mut self) {
        self.journal = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
