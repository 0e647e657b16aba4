//! The daemon's I/O thread: ingress rings → engine → events out, heartbeats, peers, drain.
//!
//! Every event the engine emits goes, in order: to the counters, to the log (the legacy
//! `[PERMIT_WAIT]` / `Result published` lines for results), onto the `results` broadcast ring
//! (which never waits for a reader), and, for an order intent, onto the `orders` ring. An
//! intent is never dropped: while `orders` is full the daemon holds it and stops taking events
//! from the engine, which then back-pressures its own input.
//!
//! When a consumer (re)attaches to `orders` (a Binance bridge starting, or restarting after a
//! crash), the engine offers it every order without a final outcome again, marked "look it up
//! by client order id before sending anything".

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use quantum_core::book::Book;
use quantum_core::event::Event;
use quantum_core::types::Symbols;
use quantum_core::{Clock, Engine, Input, Runner, RunnerConfig, SymbolId};
use quantum_ipc::broadcast::{self, Broadcast};
use quantum_ipc::contract::{self, RingDef};
use quantum_ipc::liveness::{clock_ms, unix_ms};
use quantum_ipc::wire::{Limits, Message, Record, RECORD_SIZE};
use quantum_ipc::{Consumer, PeerStatus, Producer, Ring, RingSpec};

use super::config::DaemonConfig;
use super::instance;
use super::stats::{self, Counters};

/// Records taken from one ingress ring before looking at the others and at egress.
const BATCH: usize = 256;
/// Invalid records logged one by one; after that one in every `INVALID_LOG_EVERY`.
const INVALID_LOG_FIRST: u64 = 20;
const INVALID_LOG_EVERY: u64 = 10_000;
/// Longest idle step of the I/O thread when not spinning: bounds how late it notices ingress.
const MAX_IDLE: Duration = Duration::from_millis(1);
/// How often the book gauges (`ledger.<S>` ...) are refreshed: the engine applies commands on
/// its own thread, so the I/O thread samples the book instead of tracking each command.
const GAUGES_EVERY_MS: u64 = 5;

struct IngressRing {
    def: &'static RingDef,
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
    results: Broadcast,
    results_w: broadcast::Writer,
    /// Peers per SPSC ring, in [`contract::RINGS`] order (the `results` entry counts readers).
    seen: [Seen; 4],
    /// The `orders` consumer the engine last offered its unresolved orders to.
    offered_to: Option<u64>,
    held_input: Option<(u8, Input)>,
    /// Intents waiting for room on `orders`, oldest first.
    held_orders: VecDeque<Record>,
    /// The first held intent was counted as a full event already.
    order_counted: bool,
    /// The engine's book (read only here, for the gauges).
    book: Arc<Book>,
    runner: Option<Runner>,
    gov_ttl_ms: u64,
    log_buf: String,
    refusals_logged: u64,
    next_tick: u64,
    next_gauges: u64,
}

impl Daemon {
    /// Takes the instance, creates the counters and rings, starts the engine.
    pub fn start(instance: &str, cfg: DaemonConfig) -> Result<Daemon> {
        let (writer, removed) = instance::claim(instance, stats::capacity(cfg.symbols.len()))?;
        if !removed.is_empty() {
            tracing::warn!(instance, segments = %removed.join(" "), "removed segments of a dead predecessor");
        }
        let engine_cfg = cfg.engine_config()?;
        let gov_ttl_ms = engine_cfg.governor.permit_ttl_ms;
        let mode = cfg.mode()?;
        let engine =
            Engine::new(engine_cfg, Clock::new()).context("invalid engine configuration")?;
        let symbols = engine.symbols().clone();
        let book = engine.shared().book.clone();
        let limits = Limits::new(symbols.len() as u16);
        let counters = Counters::new(writer, &symbols)?;
        let cap = cfg.rings.capacity;
        let create = |def: &RingDef| {
            Ring::create(&RingSpec::new(instance, def.name, cap))
                .with_context(|| format!("cannot create ring {}", def.name))
        };
        let mut ingress = Vec::new();
        for def in contract::INGRESS {
            let ring = create(def)?;
            let consumer = ring.consumer()?;
            ingress.push(IngressRing {
                def,
                _ring: ring,
                consumer,
                invalid_seen: 0,
            });
        }
        let orders_ring = create(&contract::ORDERS)?;
        let orders = orders_ring.producer()?;
        let results = Broadcast::create(
            &RingSpec::new(instance, contract::RESULTS.name, cfg.rings.results_capacity),
            0,
        )
        .context("cannot create ring results")?;
        let results_w = results.writer()?;
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
        tracing::info!(
            instance,
            mode = cfg.mode,
            rings = cap,
            symbols = symbols.len(),
            placement = %runner.placement().note,
            "started"
        );
        Ok(Daemon {
            instance: instance.to_owned(),
            limits,
            symbols,
            counters,
            ingress,
            orders_ring,
            orders,
            results,
            results_w,
            seen: [Seen::Nobody; 4],
            offered_to: None,
            held_input: None,
            held_orders: VecDeque::new(),
            order_counted: false,
            book,
            runner: Some(runner),
            gov_ttl_ms,
            log_buf: String::new(),
            refusals_logged: 0,
            next_tick: 0,
            next_gauges: 0,
            cfg,
        })
    }

    fn runner(&self) -> &Runner {
        self.runner.as_ref().expect("runner runs until drain")
    }

    /// Runs until `stop` is set, then drains.
    pub fn run(mut self, stop: &AtomicBool) -> Result<()> {
        let mut idle_step = Duration::from_micros(20);
        let mut spins = 0u32;
        while !stop.load(Ordering::Relaxed) {
            self.tick_if_due();
            self.gauges_if_due();
            let worked = self.pump_egress() | self.pump_ingress();
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
            if let Some(e) = self.runner().recv_timeout(idle_step) {
                self.emit(e);
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
        self.results_w.heartbeat();
        let timeout = self.cfg.rings.peer_timeout_ms;
        let mut statuses = Vec::with_capacity(4);
        for r in &self.ingress {
            statuses.push((r.def, "producer", r.consumer.peer_status(timeout)));
        }
        statuses.push((
            &contract::ORDERS,
            "consumer",
            self.orders.peer_status(timeout),
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
            let ring = ring.name;
            match st {
                PeerStatus::Alive { pid, .. } => {
                    tracing::info!(ring, role, pid, "peer attached")
                }
                PeerStatus::Stale { pid, age_ms } => {
                    tracing::warn!(ring, role, pid, age_ms, "peer stale: no heartbeat")
                }
                PeerStatus::Dead { pid } => {
                    self.counters.inc(self.counters.peer_deaths[i]);
                    tracing::warn!(
                        ring,
                        role,
                        pid,
                        "peer died without detaching; a new {role} may attach"
                    )
                }
                PeerStatus::Detached { pid } => tracing::info!(ring, role, pid, "peer detached"),
                PeerStatus::NeverAttached => {}
            }
            self.seen[i] = now_seen;
        }
        let readers = self
            .results
            .readers(timeout)
            .iter()
            .filter(|r| r.status.is_alive())
            .count();
        self.counters
            .set(self.counters.peers_alive, alive + readers as u64);
        // A consumer that replaces an earlier one gets every order without a final outcome
        // again: the earlier one may have taken intents off the ring and died before sending
        // or answering them. The first consumer ever finds every intent still in the ring.
        if let Seen::Alive(pid) = self.seen[contract::ORDERS.index as usize] {
            if self.offered_to != Some(pid) && self.held_input.is_none() {
                self.offered_to = Some(pid);
                if self.orders_ring.stats().consumer_attaches > 1 {
                    tracing::info!(pid, "a new orders consumer replaced an earlier one: offering it every order without a final outcome, to look up first");
                    self.held_input = Some((contract::ORDERS.index, Input::Reoffer));
                }
            }
        }
    }

    /// Copies the engine's book into the gauges, every [`GAUGES_EVERY_MS`].
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

    /// Publishes held intents and new events; false when there was nothing to do.
    fn pump_egress(&mut self) -> bool {
        let mut worked = !self.held_orders.is_empty();
        if !self.flush_orders() {
            return worked;
        }
        for _ in 0..BATCH {
            let Some(e) = self.runner().try_recv() else {
                break;
            };
            worked = true;
            self.emit(e);
            if !self.held_orders.is_empty() {
                break;
            }
        }
        worked
    }

    /// Counts, logs and publishes one event; an intent also goes on `orders`.
    fn emit(&mut self, e: Event) {
        self.counters.event(&e);
        self.log(&e);
        let msg = e.to_message();
        self.results_w.publish(&msg.encode());
        self.counters.inc(self.counters.events_out);
        if let (Event::OrderIntent(i), Message::OrderIntent(_)) = (&e, &msg) {
            if i.lookup_first {
                self.counters.inc(self.counters.orders_reoffered);
            }
            self.held_orders.push_back(msg.encode());
            self.flush_orders();
        }
    }

    fn log(&mut self, e: &Event) {
        match e {
            Event::PlanResult(r) if self.cfg.legacy_log => {
                self.log_buf.clear();
                if r.write_legacy_log(&mut self.log_buf, &self.symbols).is_ok() {
                    for line in self.log_buf.lines() {
                        tracing::info!(target: "quantum::apply", "{line}");
                    }
                }
            }
            Event::Refused(r) => {
                self.refusals_logged += 1;
                let n = self.refusals_logged;
                if n <= INVALID_LOG_FIRST || n % INVALID_LOG_EVERY == 0 {
                    let ring = contract::by_index(r.ring).map_or("?", |d| d.name);
                    tracing::warn!(ring, plan = %r.plan, symbol = self.symbols.name(r.symbol), reason = %r.reason, kind = r.kind, count = n, "input refused by the engine");
                }
            }
            Event::OrderUnknown { plan, reason, .. } => {
                tracing::warn!(%plan, %reason, "order outcome unknown; it stays in flight until resolved by client order id")
            }
            Event::OrderDone(d) if d.released.units() > 0 => {
                tracing::info!(plan = %d.plan, code = %d.code, released = %d.released, "order ended; unfilled quantity released")
            }
            _ => {}
        }
    }

    /// Tries to put the held intents on `orders`; true when none is held any more.
    fn flush_orders(&mut self) -> bool {
        while let Some(rec) = self.held_orders.front() {
            if self.orders.try_push(rec).is_err() {
                if !self.order_counted {
                    self.order_counted = true;
                    self.counters.inc(self.counters.orders_ring_full);
                    tracing::warn!(
                        held = self.held_orders.len(),
                        "orders ring full: holding intents until the Binance bridge takes them"
                    );
                }
                return false;
            }
            self.held_orders.pop_front();
            self.order_counted = false;
            self.counters.inc(self.counters.orders_out);
        }
        true
    }

    /// Hands `input` to the engine; gives it back when the engine's queue is full.
    fn send(&mut self, ring: u8, input: Input) -> Result<(), (u8, Input)> {
        self.runner().try_send(input, ring).map_err(|i| (ring, i))
    }

    /// Moves ingress records into the engine; false when there was nothing to do.
    fn pump_ingress(&mut self) -> bool {
        let mut worked = false;
        if let Some((ring, input)) = self.held_input.take() {
            if let Err(back) = self.send(ring, input) {
                self.held_input = Some(back);
                return true;
            }
            worked = true;
        }
        let now_ms = unix_ms();
        for i in 0..self.ingress.len() {
            for _ in 0..BATCH {
                let Some(rec) = self.ingress[i].consumer.try_pop() else {
                    break;
                };
                worked = true;
                self.counters.inc(self.counters.ingress[i].records_in);
                let Some(input) = self.decode(i, &rec, now_ms) else {
                    continue;
                };
                let ring = self.ingress[i].def.index;
                if let Err(back) = self.send(ring, input) {
                    self.counters.inc(self.counters.engine_input_full);
                    self.held_input = Some(back);
                    return true;
                }
            }
        }
        worked
    }

    /// Validates and converts one ingress record; `None` (counted) when it is refused.
    fn decode(&mut self, i: usize, rec: &Record, now_ms: u64) -> Option<Input> {
        let def = self.ingress[i].def;
        let meaning = Message::decode(rec, &self.limits)
            .map_err(|e| e.to_string())
            .and_then(|m| {
                if def.carries(m.kind()) {
                    quantum_core::wire::input(&m, now_ms, self.gov_ttl_ms)
                } else {
                    Err(format!(
                        "ring {} does not carry {:?} records",
                        def.name,
                        m.kind()
                    ))
                }
            });
        let c = &self.counters;
        match meaning {
            Ok(input) => {
                c.inc(match input {
                    Input::Plan(_) => c.plans_in,
                    Input::Command(_) => c.commands_in,
                    Input::Permit(_) => c.permits_in,
                    Input::Order(_) | Input::Reoffer => c.order_reports_in,
                });
                Some(input)
            }
            Err(why) => {
                c.inc(c.ingress[i].invalid);
                let r = &mut self.ingress[i];
                r.consumer.report_invalid();
                r.invalid_seen += 1;
                let n = r.invalid_seen;
                if n <= INVALID_LOG_FIRST || n % INVALID_LOG_EVERY == 0 {
                    tracing::warn!(ring = def.name, count = n, "invalid record skipped: {why}");
                }
                None
            }
        }
    }

    /// After the stop signal: hand the engine what was already read, let it resolve every
    /// pending plan, publish everything, and give a live `orders` consumer time to take the
    /// intents.
    fn drain(mut self) -> Result<()> {
        tracing::info!("stopping: no more ingress; draining pending plans");
        let deadline = Instant::now() + Duration::from_millis(self.cfg.rings.drain_timeout_ms);
        while let Some((ring, input)) = self.held_input.take() {
            if Instant::now() >= deadline {
                tracing::warn!("drain timeout: one record read from a ring was not processed");
                break;
            }
            self.tick_if_due();
            self.pump_egress();
            if let Err(back) = self.send(ring, input) {
                self.held_input = Some(back);
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        let runner = self.runner.take().expect("runner");
        self.flush_until(deadline);
        runner.shutdown(&mut |e| {
            self.tick_if_due();
            self.emit(e);
            self.flush_until(deadline);
        });
        self.flush_until(deadline);
        for _ in &self.held_orders {
            self.counters.inc(self.counters.orders_undelivered);
        }
        // Give a live orders consumer time to take what is in the ring.
        while Instant::now() < deadline
            && !self.orders_ring.is_empty()
            && matches!(self.seen[contract::ORDERS.index as usize], Seen::Alive(_))
        {
            self.tick_if_due();
            std::thread::sleep(Duration::from_millis(1));
        }
        self.refresh_gauges();
        let c = &self.counters;
        let undelivered = c.get(c.orders_undelivered) + self.orders_ring.len() as u64;
        tracing::info!(
            instance = self.instance,
            plans_in = c.get(c.plans_in),
            orders_out = c.get(c.orders_out),
            events_out = c.get(c.events_out),
            undelivered,
            "stopped; removing segments"
        );
        if undelivered > 0 {
            tracing::warn!(
                undelivered,
                "order intent(s) were not taken by any orders consumer"
            );
        }
        Ok(())
    }

    /// Retries the held intents until they are out or `deadline` passes.
    fn flush_until(&mut self, deadline: Instant) {
        while !self.flush_orders() && Instant::now() < deadline {
            self.tick_if_due();
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}
