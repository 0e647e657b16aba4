//! The daemon's I/O thread: [`Ingress`] (rings → engine), [`Egress`] (engine → journal →
//! `results` and `orders`) and [`Housekeeping`] (heartbeats, peers, gauges) around the
//! engine's [`Runner`], and the drain at the stop signal.
//!
//! After a restart the journal's state is restored into the engine first: what the recovery
//! answered goes out before anything new is read, and every order the journal holds in flight
//! is offered again, look-up first, once the Binance bridge's reports from while the daemon
//! was down are read.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use quantum_core::event::Event;
use quantum_core::{Clock, Engine, Input, Runner, RunnerConfig};
use quantum_ipc::contract;
use quantum_ipc::failpoint::{self, Point};
use quantum_ipc::idle::{Idle, IdlePolicy, Step};
use quantum_ipc::journal::Journal;

use crate::config::DaemonConfig;
use crate::egress::Egress;
use crate::failover::{self, Failover};
use crate::housekeeping::Housekeeping;
use crate::ingress::{self, Ingress, JournalAt, BATCH};
use crate::instance;
use crate::journal::{self as djournal, Compactor, Identity};
use crate::latency::probe::Live;
use crate::stats::{self, Counters};
use crate::trust;

/// Longest idle step of the I/O thread when not spinning. Its sleeps end at once when a ring it
/// reads is pushed to or the engine hands over an event (doorbells); this bound is the safety
/// net (a producer of an older binary never rings) and the pace of housekeeping while idle.
const MAX_IDLE: Duration = Duration::from_millis(1);

/// The running daemon: the I/O thread's parts and the engine's runner.
pub struct Daemon {
    instance: String,
    /// `spin`: busy-wait instead of sleeping when idle.
    spin: bool,
    /// `rings.drain_timeout_ms`.
    drain_timeout: Duration,
    counters: Counters,
    ingress: Ingress,
    egress: Egress,
    house: Housekeeping,
    /// Live latency of each plan's stages.
    live: Live,
    /// The engine's threads; taken at drain.
    runner: Option<Runner>,
    /// Failover (`[failover] enabled`): the lease as this host sees it.
    failover: Option<Failover>,
    /// An epoch whose lead waits to be handed to the engine (plans wait until it is).
    lead: Option<u64>,
}

/// The journal, opened and recovered into the engine.
struct Opened {
    journal: Journal,
    compactor: Compactor,
    identity: Identity,
    /// The journal's directory and what chose it.
    dir: std::path::PathBuf,
    source: String,
    /// The journal holds orders in flight.
    in_flight: bool,
    /// What the recovery answered and offered again, to go out first.
    recovered: Vec<Event>,
    /// The epoch of the journal's last lead (failover; 0: never led).
    led_epoch: u64,
}

impl Daemon {
    /// Takes the instance, creates the counters and rings, starts the engine.
    pub fn start(instance: &str, cfg: DaemonConfig) -> Result<Daemon> {
        Daemon::start_from(instance, cfg, None)
    }

    /// [`Daemon::start`], with where `journal.dir` was set (`--journal-dir`, ...) for the log.
    pub fn start_from(
        instance: &str,
        cfg: DaemonConfig,
        dir_source: Option<String>,
    ) -> Result<Daemon> {
        let (writer, removed) = instance::claim(instance, stats::capacity(cfg.symbols.len()))?;
        failover::publish_settings(&writer, &cfg.failover)?;
        if !removed.is_empty() {
            tracing::warn!(instance, segments = %removed.join(" "), "removed segments of a dead predecessor");
        }
        let engine_cfg = cfg.engine_config()?;
        let gov_ttl_ms = engine_cfg.governor.permit_ttl_ms;
        let horizon = (engine_cfg.dedupe_horizon_ms, engine_cfg.max_orders);
        let (mode, why) = cfg.mode_choice()?;
        let mut engine =
            Engine::new(engine_cfg, Clock::new()).context("invalid engine configuration")?;
        let symbols = engine.symbols().clone();
        // Registered before the journal is recovered, with `ready` 0: until the rings exist,
        // `ctl stats` says "starting" and `ctl inject` waits.
        let counters = Counters::new(writer, &symbols)?;
        failpoint::hit(Point::DaemonStarting);
        let opened = open_journal(instance, &cfg, dir_source, &mut engine, &counters, horizon)?;
        let failover = Failover::start(instance, &cfg.failover, &counters, opened.led_epoch)?;
        let book = engine.shared().book.clone();
        let engine_clock = engine.front.clock().clone();
        let ingress = Ingress::open(
            instance,
            cfg.rings.capacity,
            &opened.dir,
            &opened.source,
            &opened.identity,
            opened.in_flight,
            symbols.len(),
            gov_ttl_ms,
        )?;
        let egress = Egress::open(
            instance,
            &cfg,
            opened.journal,
            opened.compactor,
            symbols.clone(),
        )?;
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
        if let Some(why) = &why {
            tracing::info!(mode = mode.name(), "thread layout {why}");
        }
        if !quantum_ipc::doorbell::waitv_available() {
            tracing::warn!("this kernel has no FUTEX_WAITV (Linux 5.16+): an idle daemon notices new records within 1 ms instead of at once");
        }
        tracing::info!(
            instance,
            mode = mode.name(),
            rings = cfg.rings.capacity,
            symbols = symbols.len(),
            placement = %runner.placement().note,
            "started"
        );
        let live = Live::start(
            &cfg.latency,
            engine_clock,
            counters.writer(),
            cfg.engine.table_capacity,
        )?;
        let mut d = Daemon {
            instance: instance.to_owned(),
            spin: cfg.spin,
            drain_timeout: Duration::from_millis(cfg.rings.drain_timeout_ms),
            counters,
            ingress,
            egress,
            house: Housekeeping::new(
                cfg.rings.heartbeat_ms,
                cfg.rings.peer_timeout_ms,
                book,
                symbols.len(),
            ),
            live,
            runner: Some(runner),
            failover,
            lead: None,
        };
        for e in opened.recovered {
            d.emit(e)?;
        }
        d.settle()?;
        d.counters.set(d.counters.ready, 1);
        Ok(d)
    }

    /// Runs until `stop` is set, then drains. Idle, the loop takes the shared idle steps
    /// (`quantum_ipc::idle`); its parks wait on the engine's events, so an event ends them.
    pub fn run(mut self, stop: &AtomicBool) -> Result<()> {
        let mut idle = Idle::new(IdlePolicy {
            spin: self.spin,
            max_park: MAX_IDLE,
        });
        while !stop.load(Ordering::Relaxed) {
            self.tick_if_due();
            self.house.gauges_if_due(&mut self.counters);
            self.live.tick();
            self.follow_lease();
            let worked = self.pump_egress()? | self.pump_ingress()?;
            if worked {
                idle.reset();
                continue;
            }
            match idle.next_step(None) {
                Step::Spin(n) => (0..n).for_each(|_| std::hint::spin_loop()),
                Step::Yield => std::thread::yield_now(),
                // Events wait in the engine's queue until the stalled one is journaled.
                Step::Park(d) if self.egress.is_stalled() => std::thread::sleep(d),
                Step::Park(d) => {
                    self.sleep(d);
                    let runner = self.runner.as_ref().expect("runner runs until drain");
                    if let Some(e) = runner.try_recv() {
                        self.emit(e)?;
                        idle.reset();
                    }
                    self.settle()?;
                }
            }
        }
        self.drain()
    }

    /// Sleeps at most `d` (and, inline, not past the earliest waiting plan's deadline) until
    /// a producer pushes on a ring this thread reads or the engine hands over an event: the
    /// rings' and the engine's doorbells, all at once (`quantum_ipc::doorbell::wait_any`).
    fn sleep(&self, d: Duration) {
        let runner = self.runner.as_ref().expect("runner runs until drain");
        let limit = runner.due_in().map_or(d, |due| due.min(d));
        if limit.is_zero() {
            return;
        }
        let plans = self.plans_open();
        // While the engine refuses an input, only the engine can make room: the rings wait.
        let rings = !self.ingress.is_holding();
        let mut bells = if rings {
            self.ingress.bells(plans)
        } else {
            Vec::new()
        };
        bells.extend(runner.caller_bell());
        if bells.is_empty() {
            std::thread::sleep(limit);
            return;
        }
        quantum_ipc::doorbell::wait_any(&bells, limit, || {
            runner.has_output() || (rings && self.ingress.ready(plans))
        });
    }

    /// Plans may be read: always without failover; with it, while this host may send and no
    /// lead waits to be handed to the engine.
    fn plans_open(&self) -> bool {
        match &self.failover {
            Some(f) => f.plans_open() && self.lead.is_none(),
            None => true,
        }
    }

    fn tick_if_due(&mut self) {
        self.house
            .tick_if_due(&mut self.ingress, &mut self.egress, &self.counters);
    }

    fn emit(&mut self, e: Event) -> Result<()> {
        self.egress.emit(e, &self.counters, &mut self.live)
    }

    /// Publishes held intents and new events; false when there was nothing to do.
    fn pump_egress(&mut self) -> Result<bool> {
        if !self.egress.retry_stalled(&self.counters, &mut self.live)? {
            return Ok(false);
        }
        let mut worked = self.egress.holds_orders();
        if !self.egress.flush_orders(&self.counters, &mut self.live) {
            return Ok(worked);
        }
        let runner = self.runner.as_ref().expect("runner runs until drain");
        for _ in 0..BATCH {
            let Some(e) = runner.try_recv() else {
                break;
            };
            worked = true;
            self.egress.emit(e, &self.counters, &mut self.live)?;
            if self.egress.holds_orders() || self.egress.is_stalled() {
                break;
            }
        }
        self.settle()?;
        Ok(worked)
    }

    /// Moves ingress records into the engine; false when there was nothing to do.
    fn pump_ingress(&mut self) -> Result<bool> {
        // Plans are read only once the lead, if one is to be taken, is in the engine's queue
        // before them.
        let plans = self.plans_open();
        let runner = self.runner.as_ref().expect("runner runs until drain");
        self.ingress.pump(
            runner,
            &self.counters,
            &mut self.live,
            &mut self.egress,
            plans,
        )
    }

    /// Failover: reads the lease when due and hands the engine the lead when this host takes
    /// it (after anything the ingress holds, before any plan).
    fn follow_lease(&mut self) {
        let Some(f) = &mut self.failover else {
            return;
        };
        if let failover::Step::Lead(epoch) = f.poll(&self.counters) {
            self.lead = Some(epoch);
        }
        if let Some(epoch) = self.lead {
            if self.ingress.is_holding() {
                return;
            }
            let runner = self.runner.as_ref().expect("runner runs until drain");
            if let Err(back) = self.ingress.send(
                runner,
                (contract::ORDERS.index, Input::Lead { epoch }, None),
            ) {
                self.ingress.hold(back);
            }
            self.lead = None;
        }
    }

    /// After a batch: syncs the journal (with `journal.fsync`), publishes what waited for it,
    /// and releases the ingress records whose events are all journaled.
    fn settle(&mut self) -> Result<()> {
        self.egress.sync(&self.counters, &mut self.live)?;
        let done = match &self.runner {
            Some(r) => r.inputs_done(),
            None => return Ok(()),
        };
        self.ingress.release(done);
        Ok(())
    }

    /// After the stop signal: hand the engine what was already read, let it resolve every
    /// pending plan, publish everything, and give a live `orders` consumer time to take the
    /// intents.
    fn drain(mut self) -> Result<()> {
        tracing::info!("stopping: no more ingress; draining pending plans");
        let deadline = Instant::now() + self.drain_timeout;
        while let Some(held) = self.ingress.take_held() {
            if Instant::now() >= deadline {
                tracing::warn!("drain timeout: one record read from a ring was not processed; it stays in its ring for the next start");
                break;
            }
            self.tick_if_due();
            self.pump_egress()?;
            let runner = self.runner.as_ref().expect("runner runs until drain");
            if let Err(back) = self.ingress.send(runner, held) {
                self.ingress.hold(back);
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        let runner = self.runner.take().expect("runner");
        self.flush_until(deadline);
        let mut failed = None;
        let no_space = || {
            anyhow!("the journal's disk is full: stopping without releasing what could not be journaled; the next start takes it over from the rings")
        };
        if self.egress.is_stalled() {
            failed = Some(no_space());
        }
        let done = runner.shutdown(&mut |e| {
            self.tick_if_due();
            if failed.is_none() {
                failed = self.emit(e).err();
                if failed.is_none() && self.egress.is_stalled() {
                    failed = Some(no_space());
                }
            }
            self.flush_until(deadline);
        });
        if let Some(e) = failed {
            return Err(e);
        }
        self.settle()?;
        // Every input read was handled and journaled: release the ingress records.
        self.ingress.release(done);
        self.flush_until(deadline);
        for _ in 0..self.egress.held_orders() {
            self.counters.inc(self.counters.orders_undelivered);
        }
        // Give a live orders consumer time to take what is in the ring.
        while Instant::now() < deadline
            && self.egress.orders_waiting() > 0
            && self.house.orders_consumer_alive()
        {
            self.tick_if_due();
            std::thread::sleep(Duration::from_millis(1));
        }
        self.house.refresh_gauges(&mut self.counters);
        let c = &self.counters;
        let undelivered = c.get(c.orders_undelivered) + self.egress.orders_waiting() as u64;
        tracing::info!(
            instance = self.instance,
            plans_in = c.get(c.plans_in),
            orders_out = c.get(c.orders_out),
            events_out = c.get(c.events_out),
            journal_seq = self.egress.last_seq(),
            undelivered,
            "stopped; ingress rings stay for the next start, the others are removed"
        );
        if undelivered > 0 {
            tracing::warn!(
                undelivered,
                "order intent(s) were not taken by any orders consumer; the journal holds them, and the next start offers them again to look up first"
            );
        }
        Ok(())
    }

    /// Retries the held intents until they are out or `deadline` passes.
    fn flush_until(&mut self, deadline: Instant) {
        while !self.egress.flush_orders(&self.counters, &mut self.live) && Instant::now() < deadline
        {
            self.tick_if_due();
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

/// Opens (or creates) the instance's journal after checking that the ingress rings a
/// predecessor left belong to it, restores its state into `engine`, decides whether the
/// exchange must be asked for the account's orders first ([`trust`]), and starts the
/// compactor. `(horizon_ms, max_orders)`: the engine's dedupe horizon and order table size.
fn open_journal(
    instance: &str,
    cfg: &DaemonConfig,
    dir_source: Option<String>,
    engine: &mut Engine,
    counters: &Counters,
    (horizon_ms, max_orders): (u64, usize),
) -> Result<Opened> {
    let symbols = engine.symbols().clone();
    let names: Vec<String> = symbols.names().map(str::to_owned).collect();
    let (jdir, default_source) = cfg.journal.dir_and_source(instance);
    let source = dir_source.unwrap_or(default_source);
    // Before the journal is opened (or created): rings of another journal are refused
    // without leaving an empty journal behind.
    let existing = djournal::read_identity(&jdir)?;
    ingress::check_rings_journal(
        instance,
        &JournalAt {
            dir: &jdir,
            source: &source,
            identity: existing.as_ref(),
        },
    )?;
    let rec = djournal::recover(
        instance,
        &jdir,
        &cfg.journal,
        &names,
        horizon_ms,
        max_orders,
    )?;
    if rec.identity_created && rec.journal.next_seq() > 1 {
        tracing::warn!(dir = %jdir.display(), identity = %rec.identity, "the journal had no identity file (written by an older version): it has one now");
    }
    if let Some((path, offset)) = &rec.torn_tail {
        let (records, bytes) = rec.torn_cut;
        tracing::warn!(segment = %path.display(), offset, records, bytes, "journal: cut a torn tail (a write cut short by a crash, or with fsync writes after the last sync a power cut lost)");
    }
    tracing::info!(
        dir = %jdir.display(),
        because = %source,
        identity = %rec.identity,
        new = rec.identity_created && rec.journal.next_seq() == 1,
        snapshot = rec.snapshot.unwrap_or(0),
        replayed = rec.replayed,
        ms = rec.elapsed.as_millis() as u64,
        next_seq = rec.journal.next_seq(),
        fsync = cfg.journal.fsync,
        "journal opened"
    );
    let mut recovered = Vec::new();
    let restored = engine
        .restore(&rec.state, &mut |e| recovered.push(e))
        .map_err(|e| anyhow!("cannot recover from the journal in {}: {e}", jdir.display()))?;
    if !rec.state.is_empty() {
        tracing::info!(
            plan_ids = restored.dedupe,
            orders = restored.orders,
            interrupted = restored.interrupted,
            executed = restored.executed,
            reconciling = restored.reconciling,
            "recovered: orders in flight are offered again to look up first; every symbol reconciles before it trades"
        );
    }
    let recovery_mode = cfg.journal.exchange_recovery()?;
    let untrusted = trust::untrusted(
        recovery_mode,
        rec.state.is_empty(),
        cfg.journal.fsync,
        &jdir,
    )?;
    let clock = engine.front.clock().clone();
    let at_ms = clock.wall_ms(clock.now_ns());
    if untrusted.is_some() {
        engine.require_history(&mut |e| recovered.push(e));
    }
    // The start itself is journaled first, so a replay restarts where this process did, and
    // a restart before the history arrived keeps waiting for it.
    recovered.insert(
        0,
        Event::Started {
            history: untrusted.is_some(),
            at_ms,
            since_ms: engine.front.history_since_ms(),
        },
    );
    if let Some(why) = untrusted {
        tracing::warn!(
            symbols = names.len(),
            "recovering from the exchange: {why}; every symbol reconciles until the Binance bridge has reported the account's orders of the last {} h",
            horizon_ms.div_ceil(3_600_000)
        );
    }
    let replayed_many = rec.replayed > cfg.journal.snapshot_after_replay;
    let state_seq = rec.state.seq;
    let led_epoch = rec.state.epoch;
    let compactor = Compactor::start(
        jdir.clone(),
        rec.state,
        rec.snapshot.unwrap_or(0),
        cfg.journal.keep_segments,
        djournal::CompactorGauges {
            writer: counters.writer(),
            failures: counters.snapshot_failures,
            snapshot_seq: counters.snapshot_seq,
        },
    );
    if replayed_many {
        // A long replay this time: snapshot now so the next start is short.
        compactor.snapshot(state_seq);
    }
    counters.set(counters.recovery_replayed, rec.replayed);
    counters.set(counters.recovery_orders, restored.orders as u64);
    counters.set(counters.recovery_interrupted, restored.interrupted as u64);
    counters.set(counters.recovery_executed, restored.executed as u64);
    Ok(Opened {
        led_epoch,
        journal: rec.journal,
        compactor,
        identity: rec.identity,
        dir: jdir,
        source,
        in_flight: restored.orders > 0,
        recovered,
    })
}
