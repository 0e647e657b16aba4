//! `chain`: the in-process permit chain, plan in → order intent out.
//!
//! - `chain.single`: [`Engine::process_plan`] on one pinned thread, one plan at a time; the
//!   latency runs from the plan's due time to the intent's own `t_out_ns` stamp, both on the
//!   engine's clock (the due time is when the plan "arrives"; a plan that finds the thread
//!   still busy waits, and that wait is in its sample).
//! - `chain.pipelined`: the core's `pipelined` [`Runner`] (front, governor and P3.3 threads,
//!   idling as deployed, unpinned when the machine has fewer than four cores); this thread
//!   offers plans at their due times and takes the events, several plans in flight; the
//!   latency runs from the due time to the moment the intent reaches this thread.
//!
//! Every intent is answered by an exchange reject, as an adapter would, so the position is
//! free again and every plan executes. Dedupe remembers ids for a horizon sized for each
//! row's closed-loop rate (1.5 s; 200 ms for `chain.single`, whose apply never waits), and the
//! exchange position is refreshed at each block (P3.3 refuses a snapshot older than 30 s).

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use hdrhistogram::Histogram;
use quantum_core::event::Event;
use quantum_core::orders::{Failure, OrderInput};
use quantum_core::{
    Action, Clock, Command, Decision, Engine, EngineConfig, Input, Mode, Plan, PlanId, Qty, Runner,
    RunnerConfig, SymbolId,
};
use quantum_ipc::codes::FailKind;

use super::Ctx;
use crate::suite::openloop::{self, Schedule};
use crate::suite::variant::{Throughput, Variant};

/// How long dedupe remembers a plan id: longer than apply's wait (the default 1200 ms), short
/// enough that the plans of the closed-loop runs fit in [`DEDUPE_CAPACITY`].
pub const HORIZON_MS: u64 = 1_500;
/// Ids remembered at once: the horizon at 1.4 M plans/s (the pipelined runner and the daemon
/// stay well below).
pub const DEDUPE_CAPACITY: usize = 1 << 21;
/// `chain.single` runs millions of plans a second; it issues both permits itself, so nothing
/// ever waits and apply's wait can be short, and so the horizon.
const SINGLE_APPLY_WAIT_MS: u64 = 100;
const SINGLE_HORIZON_MS: u64 = 200;
/// Plans in flight in the pipelined closed loop (each holds part of the position until its
/// reject comes back, so P3.3 would run out of quantity with many more).
const WINDOW: u64 = 16;

/// The rows of `chain`.
pub fn build(ctx: &Ctx) -> Result<super::Rows> {
    Ok(vec![
        Box::new(Single::new(ctx)?),
        Box::new(Pipelined::new(ctx)?),
    ])
}

/// An engine whose every EXECUTE plan on the three default symbols goes through (`single`:
/// sized for `chain.single`'s rate).
pub fn engine(single: bool) -> Result<(Engine, Vec<SymbolId>)> {
    let cfg = if single {
        EngineConfig {
            dedupe_capacity: DEDUPE_CAPACITY,
            dedupe_horizon_ms: SINGLE_HORIZON_MS,
            max_plan_age_ms: SINGLE_HORIZON_MS,
            apply_wait_ms: SINGLE_APPLY_WAIT_MS,
            ..EngineConfig::default()
        }
    } else {
        EngineConfig {
            dedupe_capacity: DEDUPE_CAPACITY,
            dedupe_horizon_ms: HORIZON_MS,
            max_plan_age_ms: HORIZON_MS,
            ..EngineConfig::default()
        }
    };
    let mut e = Engine::new(cfg, Clock::new())?;
    let syms: Vec<_> = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
        .iter()
        .map(|s| e.symbols().id(s).expect("default symbol"))
        .collect();
    for c in book_commands(&syms)? {
        let _ = e.handle(Input::Command(c), 0, &mut |_| {});
    }
    Ok((e, syms))
}

/// The account's mode (one-way, as the default symbols are: the exchange bridge tells it
/// first), then the position and the ledger that let every exit execute: 10,000,000 on each
/// symbol, mark 100. Each order is capped at the symbol's maxQty (120 BTC, 2000 ETH, 5000 SOL), so
/// thousands of orders can be in flight (a stall of the open loop) before P3.3 runs out of
/// quantity.
pub fn book_commands(syms: &[SymbolId]) -> Result<Vec<Command>> {
    let big: Qty = "10000000".parse()?;
    let mut out = vec![Command::AccountMode { hedge: false }];
    for s in syms {
        out.push(Command::Position {
            symbol: *s,
            amount: big,
            mark: "100".parse()?,
        });
        out.push(Command::SetLedger {
            symbol: *s,
            amount: big,
        });
    }
    Ok(out)
}

/// A fresh exchange snapshot of every symbol (P3.3 refuses stale ones), with the account's
/// mode, as the exchange bridge tells them.
pub fn refresh(syms: &[SymbolId]) -> Result<Vec<Command>> {
    Ok(book_commands(syms)?
        .into_iter()
        .filter(|c| matches!(c, Command::Position { .. } | Command::AccountMode { .. }))
        .collect())
}

/// Plan ids: sequence numbers spread over 64 bits (like the legacy random 16-hex ids) and
/// mapped back exactly.
pub mod ids {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    /// `K`'s inverse modulo 2^64 (Newton's iteration doubles the correct bits each step).
    const K_INV: u64 = {
        let mut x = K;
        let mut i = 0;
        while i < 6 {
            x = x.wrapping_mul(2u64.wrapping_sub(K.wrapping_mul(x)));
            i += 1;
        }
        x
    };

    /// The plan id of sequence number `seq` (never 0 for `seq > 0`).
    pub fn of(seq: u64) -> u64 {
        seq.wrapping_mul(K)
    }

    /// The sequence number of a plan id made by [`of`].
    pub fn seq(id: u64) -> u64 {
        id.wrapping_mul(K_INV)
    }
}

fn plan(seq: u64, syms: &[SymbolId]) -> Plan {
    let s = syms[(seq % syms.len() as u64) as usize];
    Plan::exit(
        PlanId(ids::of(seq)),
        s,
        Decision::Execute,
        Action::Partial25,
    )
}

/// The exchange's answer to an intent: a reject, which releases the position.
pub fn reject(plan: PlanId, symbol: SymbolId) -> Input {
    Input::Order(OrderInput::Failed(Failure {
        plan,
        symbol,
        kind: FailKind::Rejected,
        reason: 0,
        exchange_code: 0,
        at_ms: 0,
    }))
}

/// `chain.single`.
struct Single {
    engine: Engine,
    syms: Vec<SymbolId>,
    clock: Clock,
    seq: u64,
    core: Option<core_affinity::CoreId>,
}

impl Single {
    fn new(ctx: &Ctx) -> Result<Single> {
        let (engine, syms) = engine(true)?;
        let clock = engine.front.clock().clone();
        Ok(Single {
            engine,
            syms,
            clock,
            seq: 0,
            core: ctx.single(),
        })
    }

    /// One plan through the chain and its reject; the intent's `t_out_ns`.
    #[inline]
    fn one(&mut self) -> Result<u64> {
        self.seq += 1;
        let p = plan(self.seq, &self.syms);
        let mut intent = None;
        self.engine
            .process_plan(p, &mut |ev| {
                if let Event::OrderIntent(o) = ev {
                    intent = Some(o);
                }
            })
            .map_err(|_| anyhow::anyhow!("permit table full"))?;
        let Some(o) = intent else {
            bail!("plan {} was not executed", p.id);
        };
        let _ = self.engine.handle(reject(o.plan, o.symbol), 0, &mut |_| {});
        Ok(o.t_out_ns)
    }

    fn refresh(&mut self) -> Result<()> {
        for c in refresh(&self.syms)? {
            let _ = self.engine.handle(Input::Command(c), 0, &mut |_| {});
        }
        Ok(())
    }

    /// Runs `f` on a thread pinned to the row's core.
    fn pinned<R: Send>(&mut self, f: impl FnOnce(&mut Single) -> R + Send) -> R {
        super::on_core(self.core, self, f)
    }
}

impl Variant for Single {
    fn key(&self) -> &'static str {
        "chain.single"
    }
    fn name(&self) -> &'static str {
        "permit chain, 1 thread"
    }
    fn op(&self) -> &'static str {
        "plan"
    }

    fn block(&mut self, schedule: &Schedule, hist: &mut Histogram<u64>) -> Result<()> {
        self.refresh()?;
        let schedule = *schedule;
        self.pinned(move |me| {
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
        })
    }

    fn throughput(&mut self, duration: Duration) -> Result<Throughput> {
        self.refresh()?;
        self.pinned(move |me| {
            let start = Instant::now();
            let mut ops = 0u64;
            loop {
                for _ in 0..1024 {
                    me.one()?;
                }
                ops += 1024;
                let elapsed = start.elapsed();
                if elapsed >= duration {
                    return Ok(Throughput { ops, elapsed });
                }
            }
        })
    }

    fn notes(&self) -> Vec<String> {
        vec![format!(
            "one thread{}; each plan answered by an exchange reject (not timed)",
            self.core
                .map_or(String::new(), |c| format!(" pinned to core {}", c.id))
        )]
    }
}

/// `chain.pipelined`.
struct Pipelined {
    runner: Option<Runner>,
    syms: Vec<SymbolId>,
    clock: Clock,
    seq: u64,
    note: String,
}

impl Pipelined {
    fn new(_ctx: &Ctx) -> Result<Pipelined> {
        let (engine, syms) = engine(false)?;
        let clock = engine.front.clock().clone();
        let runner = Runner::start(
            engine,
            RunnerConfig {
                mode: Mode::Pipelined,
                ..RunnerConfig::default()
            },
        );
        runner.register_caller();
        let note = runner.placement().note.clone();
        Ok(Pipelined {
            runner: Some(runner),
            syms,
            clock,
            seq: 0,
            note,
        })
    }

    fn runner(&self) -> &Runner {
        self.runner.as_ref().expect("runner lives until drop")
    }

    fn send(&self, input: Input) {
        let mut input = input;
        while let Err(back) = self.runner().try_send(input, 0) {
            input = back;
            std::hint::spin_loop();
        }
    }

    fn refresh(&self) -> Result<()> {
        for c in refresh(&self.syms)? {
            self.send(Input::Command(c));
        }
        Ok(())
    }

    /// Offers plans `first..first + count` (at `due(i)` when given, else as soon as fewer than
    /// [`WINDOW`] are in flight) and takes events until each has its intent; `on_intent(i)` for
    /// each.
    fn drive(
        &mut self,
        count: u64,
        due: Option<&dyn Fn(u64) -> u64>,
        on_intent: &mut dyn FnMut(u64, u64),
    ) -> Result<()> {
        let first = self.seq + 1;
        self.seq += count;
        let (mut sent, mut done) = (0u64, 0u64);
        let deadline = Instant::now() + Duration::from_secs(60);
        while done < count {
            let can_send = sent < count
                && match due {
                    Some(d) => self.clock.now_ns() >= d(sent),
                    None => sent - done < WINDOW,
                };
            if can_send {
                self.send(Input::Plan(plan(first + sent, &self.syms)));
                sent += 1;
            }
            while let Some(ev) = self.runner().try_recv() {
                match ev {
                    Event::OrderIntent(o) => {
                        let i = ids::seq(o.plan.0).wrapping_sub(first);
                        on_intent(i, self.clock.now_ns());
                        self.send(reject(o.plan, o.symbol));
                        done += 1;
                    }
                    Event::PlanResult(r) if !r.executed() => {
                        bail!("plan {} was not executed: {:?}", r.plan, r.outcome)
                    }
                    _ => {}
                }
            }
            if Instant::now() > deadline {
                bail!("{} of {count} intents after 60 s", done);
            }
        }
        Ok(())
    }
}

impl Variant for Pipelined {
    fn key(&self) -> &'static str {
        "chain.pipelined"
    }
    fn name(&self) -> &'static str {
        "permit chain, pipelined threads"
    }
    fn op(&self) -> &'static str {
        "plan"
    }

    fn block(&mut self, schedule: &Schedule, hist: &mut Histogram<u64>) -> Result<()> {
        self.refresh()?;
        let start = self.clock.now_ns() + schedule.interval_ns();
        let sched = *schedule;
        let due = move |i: u64| sched.due(start, i);
        self.drive(schedule.count, Some(&due), &mut |i, now| {
            hist.saturating_record(now.saturating_sub(due(i)).max(1));
        })
    }

    fn throughput(&mut self, duration: Duration) -> Result<Throughput> {
        self.refresh()?;
        let start = Instant::now();
        let mut ops = 0u64;
        loop {
            self.drive(4096, None, &mut |_, _| {})?;
            ops += 4096;
            let elapsed = start.elapsed();
            if elapsed >= duration {
                return Ok(Throughput { ops, elapsed });
            }
        }
    }

    fn notes(&self) -> Vec<String> {
        vec![
            format!("engine threads idle as deployed (no spin); {}", self.note),
            format!("closed loop keeps {WINDOW} plans in flight"),
        ]
    }
}

impl Drop for Pipelined {
    fn drop(&mut self) {
        if let Some(r) = self.runner.take() {
            r.shutdown(&mut |_| {});
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ids;

    #[test]
    fn plan_ids_map_back_to_their_sequence_numbers() {
        for seq in [1u64, 2, 3, 1 << 20, u64::MAX / 3] {
            assert_eq!(ids::seq(ids::of(seq)), seq);
            assert_ne!(ids::of(seq), 0);
        }
    }
}
