//! The two bridge-shaped processes of the `ipc` scenario (hidden `quantum bench ipc-peer`):
//!
//! - the **producer** takes the Redis bridge's side: it writes plans (and the ledger) on the
//!   instance's `plans` ring;
//! - the **consumer** takes the Binance bridge's side: it reads order intents from `orders`,
//!   answers each with an exchange reject on `exchange` (which frees the position), and keeps
//!   the exchange position fresh.
//!
//! They take orders from `quantum bench` one line at a time on stdin and answer on stdout:
//!
//! ```text
//! open FIRST COUNT START INTERVAL   producer: plan FIRST+i at raw time START + i*INTERVAL, then "ok"
//!                                   consumer: "ready", then every intent's latency from its
//!                                   plan's due time; "hist HEX MISSING" (V2-serialised)
//! flood FIRST COUNT WINDOW          producer: plans as fast as the window of unfinished ones allows, "ok"
//! flood FIRST COUNT                 consumer: "ready", COUNT intents, "done LAST_RAW"
//! quit
//! ```
//!
//! Times are raw `quanta` counter values (the TSC, or CLOCK_MONOTONIC where the TSC is not
//! usable): the same counter in every process, so a due time written by `quantum bench` means
//! the same instant in both peers.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::serialization::{Serializer, V2Serializer};
use quantum_core::wire::input_out;
use quantum_core::{Command, Input, SymbolId};
use quantum_ipc::broadcast::{self, Broadcast, Start};
use quantum_ipc::contract;
use quantum_ipc::wire::{Limits, Message, RECORD_SIZE};
use quantum_ipc::{Consumer, CountersReader, Producer, Ring, RingSpec};

use crate::scenarios::chain::{book_commands, ids, reject};
use quantum_daemon::latency::report::new_histogram;

/// Which bridge a peer stands in for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Plans in (the Redis bridge's side).
    Producer,
    /// Intents out, rejects back (the Binance bridge's side).
    Consumer,
}

/// Arguments of the hidden `quantum bench ipc-peer`.
#[derive(Debug, Clone, clap::Args)]
pub struct IpcPeerArgs {
    /// Which side.
    #[arg(long, value_enum)]
    pub role: Role,
    /// The instance of the `quantum run` to attach to.
    #[arg(long)]
    pub instance: String,
    /// Core to pin to.
    #[arg(long)]
    pub core: Option<usize>,
}

/// How long the consumer waits for an intent after its plan's due time before it counts the
/// plan as missing.
const GRACE: Duration = Duration::from_secs(5);

/// Runs one peer until `quit` or the end of stdin.
pub fn run(args: &IpcPeerArgs) -> Result<()> {
    if let Some(id) = args.core {
        core_affinity::set_for_current(core_affinity::CoreId { id });
    }
    let counters = CountersReader::open(&args.instance)
        .with_context(|| format!("instance {:?} is not running", args.instance))?;
    let syms: Vec<SymbolId> = counters
        .symbols()
        .into_iter()
        .map(|(id, _)| SymbolId(id))
        .collect();
    let clock = quanta::Clock::new();
    let mut out = std::io::stdout().lock();
    match args.role {
        Role::Producer => {
            let mut p = PlanSide::attach(&args.instance, syms)?;
            p.send_ledger()?;
            writeln!(out, "ready")?;
            out.flush()?;
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                let w: Vec<u64> = numbers(&line);
                match line.split_whitespace().next() {
                    Some("open") if w.len() == 4 => p.open(&clock, w[0], w[1], w[2], w[3]),
                    Some("flood") if w.len() == 3 => p.flood(w[0], w[1], w[2])?,
                    Some("quit") | None => return Ok(()),
                    _ => bail!("producer: cannot read {line:?}"),
                }
                writeln!(out, "ok")?;
                out.flush()?;
            }
        }
        Role::Consumer => {
            let mut c = OrderSide::attach(&args.instance, syms)?;
            c.refresh()?;
            writeln!(out, "ready")?;
            out.flush()?;
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                let w: Vec<u64> = numbers(&line);
                match line.split_whitespace().next() {
                    Some("open") if w.len() == 4 => {
                        c.refresh()?;
                        writeln!(out, "ready")?;
                        out.flush()?;
                        let (hist, missing) = c.open(&clock, w[0], w[1], w[2], w[3])?;
                        writeln!(out, "hist {hist} {missing}")?;
                    }
                    Some("flood") if w.len() == 2 => {
                        c.refresh()?;
                        writeln!(out, "ready")?;
                        out.flush()?;
                        let last = c.flood(&clock, w[0], w[1])?;
                        writeln!(out, "done {last}")?;
                    }
                    Some("quit") | None => return Ok(()),
                    _ => bail!("consumer: cannot read {line:?}"),
                }
                out.flush()?;
            }
        }
    }
    Ok(())
}

fn numbers(line: &str) -> Vec<u64> {
    line.split_whitespace()
        .skip(1)
        .filter_map(|w| w.parse().ok())
        .collect()
}

fn record(input: &Input) -> Result<[u8; RECORD_SIZE]> {
    Ok(input_out(input)
        .context("an input without a wire form")?
        .encode())
}

/// Pushes `rec`, spinning while the ring is full (the core is behind: that wait is part of the
/// latency).
fn push(p: &mut Producer<RECORD_SIZE>, rec: &[u8; RECORD_SIZE]) {
    while p.try_push(rec).is_err() {
        std::hint::spin_loop();
    }
}

/// The producer: `plans`, and `results` to see plans finish in a flood.
struct PlanSide {
    _ring: Ring,
    plans: Producer<RECORD_SIZE>,
    results: Broadcast,
    syms: Vec<SymbolId>,
}

impl PlanSide {
    fn attach(instance: &str, syms: Vec<SymbolId>) -> Result<PlanSide> {
        let ring = Ring::open(&RingSpec::new(instance, contract::PLANS.name, 0))?;
        let plans = ring.producer()?;
        let results = Broadcast::open(&RingSpec::new(instance, contract::RESULTS.name, 0))?;
        Ok(PlanSide {
            _ring: ring,
            plans,
            results,
            syms,
        })
    }

    fn send_ledger(&mut self) -> Result<()> {
        for c in book_commands(&self.syms)? {
            if let Command::SetLedger { .. } = c {
                push(&mut self.plans, &record(&Input::Command(c))?);
            }
        }
        Ok(())
    }

    fn plan(&self, seq: u64) -> Result<[u8; RECORD_SIZE]> {
        let s = self.syms[(seq % self.syms.len() as u64) as usize];
        let p = quantum_core::Plan::exit(
            quantum_core::PlanId(ids::of(seq)),
            s,
            quantum_core::Decision::Execute,
            quantum_core::Action::Partial25,
        );
        record(&Input::Plan(p))
    }

    /// Plan `first + i` at raw time `start + i * interval`, sleeping while the next one is
    /// far off and spinning for the last stretch.
    fn open(&mut self, clock: &quanta::Clock, first: u64, count: u64, start: u64, interval: u64) {
        // Build every record before the first due time: encoding is not what is measured.
        let recs: Vec<_> = (0..count)
            .filter_map(|i| self.plan(first + i).ok())
            .collect();
        for (i, rec) in recs.iter().enumerate() {
            let due = start + i as u64 * interval;
            loop {
                let now = clock.raw();
                if now >= due {
                    break;
                }
                if clock.delta_as_nanos(now, due) > 200_000 {
                    std::thread::sleep(Duration::from_micros(100));
                } else {
                    std::hint::spin_loop();
                }
            }
            self.plans.heartbeat();
            push(&mut self.plans, rec);
        }
    }

    /// Plans as fast as at most `window` unfinished ones allow: a plan is finished when its
    /// order ended (the consumer's reject) or it was not executed.
    fn flood(&mut self, first: u64, count: u64, window: u64) -> Result<()> {
        let mut reader = self.results.reader(Start::Live);
        let limits = Limits::default();
        let (mut sent, mut finished) = (0u64, 0u64);
        let deadline = Instant::now() + Duration::from_secs(120);
        while finished < count {
            if sent < count && sent - finished < window {
                let rec = self.plan(first + sent)?;
                push(&mut self.plans, &rec);
                sent += 1;
                continue;
            }
            match reader.read() {
                broadcast::Next::Record { record, .. } => match Message::decode(&record, &limits) {
                    Ok(Message::OrderDone(_)) => finished += 1,
                    Ok(Message::PlanResult(r)) if !r.executed => finished += 1,
                    _ => {}
                },
                broadcast::Next::Missed { .. } => bail!("the results ring lapped the producer"),
                broadcast::Next::Empty => {
                    if Instant::now() > deadline {
                        bail!("flood: {finished} of {count} plans finished after 120 s");
                    }
                    std::hint::spin_loop();
                }
            }
        }
        Ok(())
    }
}

/// The consumer: `orders` in, `exchange` out.
struct OrderSide {
    _orders_ring: Ring,
    _exchange_ring: Ring,
    orders: Consumer<RECORD_SIZE>,
    exchange: Producer<RECORD_SIZE>,
    syms: Vec<SymbolId>,
    last_heartbeat: Instant,
}

impl OrderSide {
    fn attach(instance: &str, syms: Vec<SymbolId>) -> Result<OrderSide> {
        let orders_ring = Ring::open(&RingSpec::new(instance, contract::ORDERS.name, 0))?;
        let exchange_ring = Ring::open(&RingSpec::new(instance, contract::EXCHANGE.name, 0))?;
        Ok(OrderSide {
            orders: orders_ring.consumer()?,
            exchange: exchange_ring.producer()?,
            _orders_ring: orders_ring,
            _exchange_ring: exchange_ring,
            syms,
            last_heartbeat: Instant::now(),
        })
    }

    /// A fresh exchange position for every symbol (P3.3 refuses snapshots older than 30 s).
    fn refresh(&mut self) -> Result<()> {
        for c in book_commands(&self.syms)? {
            if let Command::Position { .. } | Command::AccountMode { .. } = c {
                push(&mut self.exchange, &record(&Input::Command(c))?);
            }
        }
        Ok(())
    }

    fn heartbeat(&mut self) {
        if self.last_heartbeat.elapsed() > Duration::from_millis(50) {
            self.orders.heartbeat();
            self.exchange.heartbeat();
            self.last_heartbeat = Instant::now();
        }
    }

    /// The next intent (plan id and the raw time it was seen), answered with a reject; `None`
    /// after `wait` without one.
    fn next_intent(&mut self, clock: &quanta::Clock, wait: Duration) -> Result<Option<(u64, u64)>> {
        // As the Binance bridge waits: spin, yield, then sleep in short steps.
        let Some(rec) = self.orders.pop(wait) else {
            self.heartbeat();
            return Ok(None);
        };
        let seen = clock.raw();
        let Ok(Message::OrderIntent(o)) = Message::decode(&rec, &Limits::default()) else {
            bail!("the orders ring held something other than an order intent");
        };
        let back = reject(quantum_core::PlanId(o.plan_id), SymbolId(o.symbol));
        push(&mut self.exchange, &record(&back)?);
        self.heartbeat();
        Ok(Some((o.plan_id, seen)))
    }

    fn open(
        &mut self,
        clock: &quanta::Clock,
        first: u64,
        count: u64,
        start: u64,
        interval: u64,
    ) -> Result<(String, u64)> {
        let mut hist = new_histogram();
        let last_due = start + count.saturating_sub(1) * interval;
        let mut got = 0;
        while got < count {
            let late = clock.raw() > last_due
                && clock.delta_as_nanos(last_due, clock.raw()) > GRACE.as_nanos() as u64;
            if late {
                break;
            }
            let Some((id, seen)) = self.next_intent(clock, Duration::from_millis(20))? else {
                continue;
            };
            let i = ids::seq(id).wrapping_sub(first);
            if i >= count {
                continue;
            }
            let due = start + i * interval;
            let ns = if seen > due {
                clock.delta_as_nanos(due, seen)
            } else {
                1
            };
            hist.saturating_record(ns.max(1));
            got += 1;
        }
        let mut buf = Vec::new();
        V2Serializer::new()
            .serialize(&hist, &mut buf)
            .map_err(|e| anyhow::anyhow!("serialising a histogram: {e:?}"))?;
        Ok((hex::encode(buf), count - got))
    }

    fn flood(&mut self, clock: &quanta::Clock, first: u64, count: u64) -> Result<u64> {
        let mut got = 0;
        let mut last = clock.raw();
        let deadline = Instant::now() + Duration::from_secs(120);
        while got < count {
            if Instant::now() > deadline {
                bail!("flood: {got} of {count} intents after 120 s");
            }
            if let Some((id, seen)) = self.next_intent(clock, Duration::from_millis(20))? {
                if ids::seq(id).wrapping_sub(first) < count {
                    got += 1;
                    last = seen;
                }
            }
        }
        Ok(last)
    }
}
