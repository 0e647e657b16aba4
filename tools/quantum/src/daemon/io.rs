//! The daemon's I/O thread: ingress rings → engine → egress rings, heartbeats, peers, drain.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use quantum_core::ledger::Ledger;
use quantum_core::types::Symbols;
use quantum_core::{Clock, Command, Engine, Input, PlanResult, Runner, RunnerConfig, SymbolId};
use quantum_ipc::liveness::{clock_ms, unix_ms};
use quantum_ipc::wire::{Limits, Message, Record, RECORD_SIZE};
use quantum_ipc::{Consumer, PeerStatus, Producer, Ring, RingSpec};

use super::config::DaemonConfig;
use super::convert::{self, Ingress};
use super::inflight::InFlight;
use super::instance;
use super::positions::Positions;
use super::rings;
use super::stats::{self, Counters};

/// Records taken from one ingress ring before looking at the others and at egress.
const BATCH: usize = 256;
/// Invalid records logged one by one; after that one in every `INVALID_LOG_EVERY`.
const INVALID_LOG_FIRST: u64 = 20;
const INVALID_LOG_EVERY: u64 = 10_000;
/// Records waiting for room on `results` above which ingress pauses (position records are made
/// on ingress; results stop being taken from the engine as soon as anything waits).
const RESULTS_BACKLOG: usize = 4096;
/// Longest idle step of the I/O thread when not spinning: bounds how late it notices ingress.
const MAX_IDLE: Duration = Duration::from_millis(1);
/// How often the book gauges (`ledger.<S>` ...) are refreshed: the engine applies commands on
/// its own thread, so the I/O thread samples the book instead of tracking each command.
const GAUGES_EVERY_MS: u64 = 5;

fn log(instance: &str, msg: std::fmt::Arguments) {
    eprintln!("quantum run[{instance}]: {msg}");
}

macro_rules! say {
    ($d:expr, $($t:tt)*) => { log(&$d.instance, format_args!($($t)*)) };
}

struct IngressRing {
    name: &'static str,
    /// Keeps the segment handle for depth and stats.
    _ring: Ring,
    consumer: Consumer<RECORD_SIZE>,
    invalid_seen: u64,
}

/// What a ring's peer was at the last look.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Seen {
    Nobody,
    Alive(u64),
    Stale(u64),
    Gone(u64),
}

/// What a record on `results` is, for its counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Out {
    /// A `PlanResult` (`results_out`, `results_unobserved`).
    Result,
    /// A `GovPermit` or `P33Permit` (`results_permits_out`, `results_permits_unobserved`).
    Permit,
    /// A `PositionSnapshot` or `LedgerSet` (`results_positions_out`,
    /// `results_positions_unobserved`).
    Position,
}

/// Records waiting for room on the egress rings, oldest first. Orders go first: nothing goes
/// out on `results` while an order waits (a plan's result never precedes its order).
#[derive(Default)]
struct Egress {
    orders: VecDeque<Record>,
    results: VecDeque<(Out, Record)>,
    /// The first waiting record was counted as a full event already (once per record that had
    /// to wait).
    order_counted: bool,
    result_counted: bool,
}

impl Egress {
    fn is_empty(&self) -> bool {
        self.orders.is_empty() && self.results.is_empty()
    }
}

/// The running daemon, minus the engine's runner.
pub struct Daemon {
    instance: String,
    cfg: DaemonConfig,
    limits: Limits,
    symbols: Symbols,
    counters: Counters,
    ingress: Vec<IngressRing>,
    orders_ring: Ring,
    orders: Producer<RECORD_SIZE>,
    results_ring: Ring,
    results: Producer<RECORD_SIZE>,
    /// Peers per ring: ingress then egress.
    seen: [Seen; 5],
    results_observed: bool,
    held_input: Option<Input>,
    held: Egress,
    /// The amounts the `results` ring mirrors (see [`super::positions`]).
    positions: Positions,
    /// The governor's permit TTL, written into the permits mirrored on `results`.
    gov_ttl_ms: u64,
    /// Orders sent and not yet ended, so a `Reject` releases exactly their unfilled rest.
    in_flight: InFlight,
    /// The engine's book (read only here, for the gauges).
    book: Arc<Ledger>,
    runner: Option<Runner>,
    log_buf: String,
    next_tick: u64,
    next_gauges: u64,
}

impl Daemon {
    /// Takes the instance, creates the counters and rings, starts the engine.
    pub fn start(instance: &str, cfg: DaemonConfig) -> Result<Daemon> {
        let (writer, removed) = instance::claim(instance, stats::capacity(cfg.symbols.len()))?;
        if !removed.is_empty() {
            log(
                instance,
                format_args!(
                    "removed segments of a dead predecessor: {}",
                    removed.join(" ")
                ),
            );
        }
        let clock = Clock::new();
        let engine_cfg = cfg.engine_config(unix_ms())?;
        let gov_ttl_ms = engine_cfg.governor.permit_ttl_ms;
        let mode = cfg.mode()?;
        let engine = Engine::new(engine_cfg, clock).context("invalid engine configuration")?;
        let symbols = engine.symbols().clone();
        let positions = Positions::from_book(&engine.shared().ledger);
        let limits = Limits::new(symbols.len() as u16);
        let counters = Counters::new(writer, &symbols)?;
        let cap = cfg.rings.capacity;
        let create = |name: &str| {
            Ring::create(&RingSpec::new(instance, name, cap))
                .with_context(|| format!("cannot create ring {name}"))
        };
        let mut ingress = Vec::new();
        for name in rings::INGRESS {
            let ring = create(name)?;
            let consumer = ring.consumer()?;
            ingress.push(IngressRing {
                name,
                _ring: ring,
                consumer,
                invalid_seen: 0,
            });
        }
        let orders_ring = create(rings::ORDERS)?;
        let orders = orders_ring.producer()?;
        let results_ring = create(rings::RESULTS)?;
        let results = results_ring.producer()?;
        let runner = Runner::start(
            engine,
            RunnerConfig {
                mode,
                spin: cfg.spin,
                pin: cfg.pin,
                max_park: cfg.max_park(),
                ..RunnerConfig::default()
            },
        );
        runner.register_caller();
        let d = Daemon {
            instance: instance.to_string(),
            limits,
            symbols,
            counters,
            ingress,
            orders_ring,
            orders,
            results_ring,
            results,
            seen: [Seen::Nobody; 5],
            results_observed: false,
            held_input: None,
            held: Egress::default(),
            positions,
            gov_ttl_ms,
            in_flight: InFlight::with_capacity(1024),
            book: runner.shared().ledger.clone(),
            runner: Some(runner),
            log_buf: String::with_capacity(512),
            next_tick: 0,
            next_gauges: 0,
            cfg,
        };
        let r = d.runner.as_ref().expect("runner");
        say!(
            d,
            "pid {} mode={} spin={} {}",
            std::process::id(),
            d.cfg.mode,
            d.cfg.spin,
            r.placement().note
        );
        say!(
            d,
            "rings created: quantum.{0}.{{plans,ctl,exchange}} (in) quantum.{0}.{{orders,results}} (out), {1} slots of 64 bytes; counters quantum.{0}.counters; {2} symbols",
            d.instance,
            cap,
            d.symbols.len(),
        );
        Ok(d)
    }

    fn runner(&self) -> &Runner {
        self.runner.as_ref().expect("runner runs until drain")
    }

    /// Serves until `stop` is set, then drains.
    pub fn run(mut self, stop: &AtomicBool) -> Result<()> {
        let mut idle_step = Duration::from_micros(20);
        let mut spins = 0u32;
        while !stop.load(Ordering::Relaxed) {
            self.tick_if_due();
            self.gauges_if_due();
            let mut worked = self.pump_egress();
            worked |= self.pump_ingress();
            if worked {
                idle_step = Duration::from_micros(20);
                spins = 0;
                continue;
            }
            if self.cfg.spin && spins < 1 << 14 {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            if let Some(r) = self.runner().recv_timeout(idle_step) {
                self.emit(r);
                idle_step = Duration::from_micros(20);
            } else {
                idle_step = (idle_step * 2).min(MAX_IDLE);
            }
        }
        self.drain()
    }

    /// Heartbeats and peer checks, every `rings.heartbeat_ms`.
    fn tick_if_due(&mut self) {
        let now = clock_ms();
        if now < self.next_tick {
            return;
        }
        self.next_tick = now + self.cfg.rings.heartbeat_ms;
        for r in &self.ingress {
            r.consumer.heartbeat();
        }
        self.orders.heartbeat();
        self.results.heartbeat();
        let timeout = self.cfg.rings.peer_timeout_ms;
        let mut statuses = Vec::with_capacity(5);
        for r in &self.ingress {
            statuses.push((r.name, "producer", r.consumer.peer_status(timeout)));
        }
        statuses.push((rings::ORDERS, "consumer", self.orders.peer_status(timeout)));
        statuses.push((
            rings::RESULTS,
            "consumer",
            self.results.peer_status(timeout),
        ));
        let mut alive = 0;
        for (i, (ring, role, st)) in statuses.into_iter().enumerate() {
            let now_seen = match st {
                PeerStatus::NeverAttached => Seen::Nobody,
                PeerStatus::Alive { pid, .. } => Seen::Alive(pid),
                PeerStatus::Stale { pid, .. } => Seen::Stale(pid),
                PeerStatus::Dead { pid } | PeerStatus::Detached { pid } => Seen::Gone(pid),
            };
            if matches!(now_seen, Seen::Alive(_)) {
                alive += 1;
            }
            if now_seen == self.seen[i] {
                continue;
            }
            match st {
                PeerStatus::Alive { pid, .. } => {
                    say!(self, "peer attached: ring {ring} {role} pid {pid}")
                }
                PeerStatus::Stale { pid, age_ms } => say!(
                    self,
                    "peer stale: ring {ring} {role} pid {pid} silent for {age_ms} ms"
                ),
                PeerStatus::Dead { pid } => {
                    self.counters.inc(self.counters.peer_deaths[i]);
                    say!(self, "peer died: ring {ring} {role} pid {pid} is gone without detaching; a new {role} may attach")
                }
                PeerStatus::Detached { pid } => {
                    say!(self, "peer detached: ring {ring} {role} pid {pid}")
                }
                PeerStatus::NeverAttached => {}
            }
            self.seen[i] = now_seen;
        }
        self.results_observed = matches!(self.seen[4], Seen::Alive(_));
        self.counters.set(self.counters.peers_alive, alive);
    }

    /// Copies the engine's book (ledger, exchange, in flight per symbol) into the gauges, every
    /// [`GAUGES_EVERY_MS`].
    fn gauges_if_due(&mut self) {
        let now = clock_ms();
        if now < self.next_gauges {
            return;
        }
        self.next_gauges = now + GAUGES_EVERY_MS;
        self.refresh_gauges();
    }

    fn refresh_gauges(&mut self) {
        for i in 0..self.symbols.len() {
            if let Some(view) = self.book.view(SymbolId(i as u16)) {
                self.counters.book(i, &view);
            }
        }
    }

    /// Publishes held and new results; false when there was nothing to do.
    fn pump_egress(&mut self) -> bool {
        let mut worked = !self.held.is_empty();
        if !self.flush_held() {
            return worked;
        }
        for _ in 0..BATCH {
            let Some(r) = self.runner().try_recv() else {
                break;
            };
            worked = true;
            self.emit(r);
            if !self.held.is_empty() {
                break;
            }
        }
        worked
    }

    /// Counts, logs and publishes one result: its order on `orders`; the permits it shows
    /// ([`convert::permits_out`]) then the result itself on `results` (holding what does not
    /// fit).
    fn emit(&mut self, r: PlanResult) {
        self.counters.result(&r);
        if self.cfg.legacy_log {
            self.log_buf.clear();
            if r.write_legacy_log(&mut self.log_buf, &self.symbols).is_ok() {
                let _ = std::io::stderr().lock().write_all(self.log_buf.as_bytes());
            }
        }
        if let Some(o) = r.order() {
            self.in_flight.sent(o.plan, o.symbol, o.qty);
            let rec = Message::OrderIntent(convert::order_out(o)).encode();
            self.held.orders.push_back(rec);
        }
        let permits = convert::permits_out(&r, self.gov_ttl_ms, unix_ms());
        if let Some(g) = permits.gov {
            let rec = Message::GovPermit(g).encode();
            self.held.results.push_back((Out::Permit, rec));
        }
        if let Some(p) = permits.p33 {
            let rec = Message::P33Permit(p).encode();
            self.held.results.push_back((Out::Permit, rec));
        }
        let result = Message::PlanResult(convert::result_out(&r)).encode();
        self.held.results.push_back((Out::Result, result));
        self.flush_held();
    }

    /// Tries to publish what is held; true when nothing is held any more.
    fn flush_held(&mut self) -> bool {
        let h = &mut self.held;
        while let Some(rec) = h.orders.front() {
            if self.orders.try_push(rec).is_err() {
                if !h.order_counted {
                    h.order_counted = true;
                    self.counters.inc(self.counters.orders_ring_full);
                }
                return false;
            }
            h.orders.pop_front();
            h.order_counted = false;
            self.counters.inc(self.counters.orders_out);
        }
        let c = &self.counters;
        while let Some((out, rec)) = h.results.front() {
            let published = self.results.try_push(rec).is_ok();
            if !published {
                if !h.result_counted {
                    h.result_counted = true;
                    c.inc(c.results_ring_full);
                }
                if self.results_observed {
                    return false;
                }
                // Nobody alive reads the results: do not stall the engine for them.
            }
            let id = match (out, published) {
                (Out::Result, true) => c.results_out,
                (Out::Result, false) => c.results_unobserved,
                (Out::Permit, true) => c.results_permits_out,
                (Out::Permit, false) => c.results_permits_unobserved,
                (Out::Position, true) => c.results_positions_out,
                (Out::Position, false) => c.results_positions_unobserved,
            };
            c.inc(id);
            h.results.pop_front();
            h.result_counted = false;
        }
        true
    }

    /// Hands `input` to the engine; gives it back when the engine's queue is full. A command
    /// that moves the mirrored amounts queues its position records on `results`.
    fn send(&mut self, input: Input) -> Result<(), Input> {
        self.runner().try_send(input)?;
        if let Input::Command(c) = &input {
            for m in self.positions.apply(c, unix_ms()) {
                self.held.results.push_back((Out::Position, m.encode()));
            }
        }
        Ok(())
    }

    /// Moves ingress records into the engine; false when there was nothing to do.
    fn pump_ingress(&mut self) -> bool {
        let mut worked = false;
        if let Some(input) = self.held_input.take() {
            if let Err(back) = self.send(input) {
                self.held_input = Some(back);
                return true;
            }
            worked = true;
        }
        let now_ms = unix_ms();
        for i in 0..self.ingress.len() {
            for _ in 0..BATCH {
                if self.held.results.len() >= RESULTS_BACKLOG {
                    // A live `results` consumer is behind: let it catch up first.
                    return worked;
                }
                let Some(rec) = self.ingress[i].consumer.try_pop() else {
                    break;
                };
                worked = true;
                self.counters.inc(self.counters.ingress[i].records_in);
                let Some(input) = self.decode(i, &rec, now_ms) else {
                    continue;
                };
                if let Err(back) = self.send(input) {
                    self.counters.inc(self.counters.engine_input_full);
                    self.held_input = Some(back);
                    return true;
                }
            }
        }
        worked
    }

    /// Validates and converts one ingress record; `None` (counted) when it is refused or is
    /// handled here.
    fn decode(&mut self, i: usize, rec: &Record, now_ms: u64) -> Option<Input> {
        let name = self.ingress[i].name;
        let meaning = Message::decode(rec, &self.limits)
            .map_err(|e| e.to_string())
            .and_then(|m| {
                if rings::accepts(name, m.kind()) {
                    convert::ingress(&m, now_ms)
                } else {
                    Err(format!("ring {name} does not carry {:?} records", m.kind()))
                }
            });
        let c = &self.counters;
        match meaning {
            Ok(m) => {
                match m {
                    Ingress::Input(Input::Plan(_)) => c.inc(c.plans_in),
                    Ingress::Input(Input::Command(_)) => c.inc(c.commands_in),
                    Ingress::Input(Input::Permit(_)) => c.inc(c.permits_in),
                    Ingress::Reject { reason, .. } => {
                        c.inc(c.rejects_in);
                        if reason == convert::REJECT_REMAINDER_EXPIRED {
                            c.inc(c.remainders_expired);
                        }
                    }
                }
                let input = self.in_flight.input(m);
                if let (
                    Ingress::Input(Input::Command(Command::Fill { plan: Some(_), .. })),
                    Some(Input::Command(Command::Fill { plan: None, .. })),
                ) = (m, input)
                {
                    c.inc(c.fills_untracked);
                }
                input
            }
            Err(why) => {
                c.inc(c.ingress[i].invalid);
                let r = &mut self.ingress[i];
                r.consumer.report_invalid();
                r.invalid_seen += 1;
                let n = r.invalid_seen;
                if n <= INVALID_LOG_FIRST || n % INVALID_LOG_EVERY == 0 {
                    say!(self, "invalid record #{n} on ring {name} skipped: {why}");
                }
                None
            }
        }
    }

    /// After the stop signal: hand the engine what was already read, let it resolve every
    /// pending plan, publish everything, and give live consumers time to take it.
    fn drain(mut self) -> Result<()> {
        say!(self, "stopping: no more ingress; draining pending plans");
        let deadline = Instant::now() + Duration::from_millis(self.cfg.rings.drain_timeout_ms);
        while self.held_input.is_some() {
            if Instant::now() >= deadline {
                // The engine cannot take it (its results are stuck behind a full orders ring
                // nobody reads): say so rather than hang.
                say!(
                    self,
                    "drain timeout: one record read from a ring was not processed"
                );
                self.held_input = None;
                break;
            }
            self.tick_if_due();
            self.pump_egress();
            if let Some(input) = self.held_input.take() {
                if let Err(back) = self.send(input) {
                    self.held_input = Some(back);
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
        }
        let runner = self.runner.take().expect("runner");
        self.flush_until(deadline);
        runner.shutdown(&mut |r| {
            // Results of the last plans: publish while there is time, else count below.
            self.tick_if_due();
            self.emit(r);
            self.flush_until(deadline);
        });
        self.flush_until(deadline);
        let held = std::mem::take(&mut self.held);
        let c = &self.counters;
        for _ in &held.orders {
            c.inc(c.orders_undelivered);
        }
        for (out, _) in &held.results {
            c.inc(match out {
                Out::Result => c.results_unobserved,
                Out::Permit => c.results_permits_unobserved,
                Out::Position => c.results_positions_unobserved,
            });
        }
        // Consumers keep their mapping after we unlink, but give live ones time to catch up so
        // the log's summary is the truth.
        while Instant::now() < deadline {
            self.tick_if_due();
            let waiting = [
                (&self.orders_ring, self.seen[3]),
                (&self.results_ring, self.seen[4]),
            ]
            .iter()
            .any(|(ring, seen)| !ring.is_empty() && matches!(seen, Seen::Alive(_)));
            if !waiting {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.refresh_gauges();
        let get = |id| self.counters_value(id);
        let undelivered = get(self.counters.orders_undelivered) + self.orders_ring.len() as u64;
        say!(
            self,
            "stopped: plans_in={} orders_out={} results_out={} results_unobserved={} results_permits_out={} results_positions_out={}{}; removing segments",
            get(self.counters.plans_in),
            get(self.counters.orders_out),
            get(self.counters.results_out),
            get(self.counters.results_unobserved),
            get(self.counters.results_permits_out),
            get(self.counters.results_positions_out),
            if undelivered > 0 {
                format!("; {undelivered} order intent(s) were not taken by any orders consumer")
            } else {
                String::new()
            }
        );
        Ok(())
    }

    /// Retries the held records until they are out or `deadline` passes.
    fn flush_until(&mut self, deadline: Instant) {
        while !self.flush_held() && Instant::now() < deadline {
            self.tick_if_due();
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    fn counters_value(&self, id: quantum_ipc::CounterId) -> u64 {
        self.counters.get(id)
    }
}
