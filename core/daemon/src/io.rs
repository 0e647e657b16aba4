//! The daemon's I/O thread: ingress rings → engine → journal → events out, heartbeats, peers,
//! drain.
//!
//! Every event the engine emits goes, in order: to the counters, to the log (the legacy
//! `[PERMIT_WAIT]` / `Result published` lines for results), into the **journal**, then onto
//! the `results` broadcast ring (which never waits for a reader; its sequence numbers are the
//! journal's), and, for an order intent, onto the `orders` ring. So an intent is journaled
//! before it can leave, and a producer learns that a plan was accepted (from `results`, or from
//! the ring's head) only once the plan is journaled. With `journal.fsync` the batch is
//! `msync`ed first. An intent is never dropped: while `orders` is full the daemon holds it and
//! stops taking events from the engine, which then back-pressures its own input.
//!
//! Ingress records are read ahead but **released** (the ring's `head` moves) only once the
//! engine has handled them and their events are journaled ([`Runner::inputs_done`]): a daemon
//! killed in between leaves them in the ring, and the next one reads them again (the engine's
//! dedupe and cumulative reports make a second reading harmless).
//!
//! When a consumer (re)attaches to `orders` (a Binance bridge starting, or restarting after a
//! crash), the engine offers it every order without a final outcome again, marked "look it up
//! by client order id before sending anything". After a restart the recovery does the same for
//! every order the journal holds in flight.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use quantum_core::book::Book;
use quantum_core::event::{Event, RefusedEvent};
use quantum_core::types::Symbols;
use quantum_core::{Clock, Engine, Input, PlanId, Runner, RunnerConfig, SymbolId};
use quantum_ipc::broadcast::{self, Broadcast};
use quantum_ipc::codes::RefuseReason;
use quantum_ipc::contract::{self, RingDef};
use quantum_ipc::journal::{Journal, JournalError};
use quantum_ipc::liveness::{clock_ms, unix_ms};
use quantum_ipc::wire::{Limits, Message, Record, RECORD_SIZE};
use quantum_ipc::{Consumer, Error as IpcError, PeerStatus, Producer, Ring, RingSpec};

use super::config::DaemonConfig;
use super::instance;
use super::journal::{self as djournal, Compactor};
use super::stats::{self, Counters};
use super::trust;
use crate::latency::probe::Live;

/// An intent's latency stamps so far (`None`: not timed, e.g. offered again after a restart).
type IntentStamps = Option<crate::latency::Stamps>;

/// Records taken from one ingress ring before looking at the others and at egress.
const BATCH: usize = 256;

/// How often an event the journal had no room for is tried again.
const NO_SPACE_RETRY: Duration = Duration::from_millis(500);
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
    /// Records read and not yet released, oldest first: `(inputs, position)`: once the engine
    /// has handled `inputs` inputs (and their events are journaled), the ring may be released
    /// up to `position`.
    unacked: VecDeque<(u64, u64)>,
}

/// Takes over the ingress ring `def` of `instance` if a predecessor left it (with whatever it
/// holds), else creates it; either way it outlives this process.
fn ingress_ring(instance: &str, def: &RingDef, cap: usize) -> Result<Ring> {
    let spec = RingSpec::new(instance, def.name, cap);
    match Ring::open(&spec) {
        Ok(ring) => {
            tracing::info!(
                ring = def.name,
                waiting = ring.len(),
                "took over the ingress ring a previous daemon left; its records are read now"
            );
            Ok(ring)
        }
        Err(IpcError::NotFound { .. }) => Ring::create_kept(&spec)
            .with_context(|| format!("cannot create ring {}", def.name)),
        Err(IpcError::Mismatch {
            what: "capacity",
            found,
            ..
        }) => {
            let old = Ring::open(&RingSpec::new(instance, def.name, 0))?;
            if !old.is_empty() {
                bail!(
                    "ring {} holds {} record(s) at capacity {found}, but rings.capacity is {cap}: start once with the old capacity so they are taken, then change it",
                    def.name,
                    old.len()
                );
            }
            drop(old);
            quantum_ipc::shm::remove_segment(&spec.os_id()?)?;
            Ring::create_kept(&spec).with_context(|| format!("cannot create ring {}", def.name))
        }
        Err(e) => Err(anyhow!(
            "cannot take over ring {}: {e}. If its records do not matter, remove it with `rm /dev/shm/{}`",
            def.name,
            spec.os_id().unwrap_or_default()
        )),
    }
}

/// Refuses to go on when an ingress ring of `instance` left by a predecessor belongs to
/// another journal than the one in `dir` (`ours`: its identity, `None` for no journal yet).
fn check_rings_journal(
    instance: &str,
    dir: &std::path::Path,
    source: &str,
    ours: Option<&djournal::Identity>,
) -> Result<()> {
    for def in contract::INGRESS {
        // A ring that cannot be opened is judged (and reported) when it is taken over.
        if let Ok(ring) = Ring::open(&RingSpec::new(instance, def.name, 0)) {
            check_stamp(instance, &ring, dir, source, ours)?;
        }
    }
    Ok(())
}

/// One ring of [`check_rings_journal`].
fn check_stamp(
    instance: &str,
    ring: &Ring,
    dir: &std::path::Path,
    source: &str,
    ours: Option<&djournal::Identity>,
) -> Result<()> {
    let Some((id, their_dir)) = ring.journal_stamp() else {
        return Ok(());
    };
    if ours.is_some_and(|i| i.id == id) {
        return Ok(());
    }
    let opened = match ours {
        Some(i) => format!("the journal {i} in {}", dir.display()),
        None => format!("{}, where there is no journal yet", dir.display()),
    };
    let rings: Vec<String> = contract::INGRESS
        .iter()
        .filter_map(|d| RingSpec::new(instance, d.name, 0).os_id().ok())
        .map(|id| quantum_ipc::shm::path_of(&id))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    bail!(
        "ring {} ({} record(s) waiting) belongs to the journal {id:016x} in {their_dir}, but this daemon would use {opened} ({source}): start it with --journal-dir {their_dir} (or set journal.dir); only if that journal is lost for good, stop the instance's bridges and remove its ingress rings (rm {}; their waiting records are lost) before starting it on another journal",
        ring.os_id(),
        ring.len(),
        rings.join(" ")
    )
}

/// What a ring's peer was at the last look.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Seen {
    Nobody,
    Alive(u64),
    Stale(u64),
    Gone(u64),
}

/// An input waiting for room in the engine's queue: `(ring index, input, (ingress slot,
/// position after its record))`.
type Held = (u8, Input, Option<(usize, u64)>);

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
    fsync: bool,
    /// An input the engine's queue refused, with the ingress ring and position it came from.
    held_input: Option<Held>,
    /// Inputs handed to the engine so far.
    inputs_sent: u64,
    /// After a restart with orders in flight: once the `exchange` ring has been read up to this
    /// position (what the bridge reported while the daemon was down), the restored orders are
    /// offered again, look-up first.
    reoffer_after: Option<u64>,
    journal: Journal,
    compactor: Compactor,
    /// `journal.fsync`: events appended but not yet synced, and for an intent its stamps.
    unsynced: Vec<(Record, Option<IntentStamps>)>,
    /// An event the journal had no room for, and when to try again (intake is paused).
    no_space: Option<(Event, Instant)>,
    /// Intents waiting for room on `orders`, oldest first, with their stamps.
    held_orders: VecDeque<(Record, IntentStamps)>,
    /// Live latency of each plan's stages.
    live: Live,
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
        Daemon::start_from(instance, cfg, None)
    }

    /// [`Daemon::start`], with where `journal.dir` was set (`--journal-dir`, ...) for the log.
    pub fn start_from(
        instance: &str,
        cfg: DaemonConfig,
        dir_source: Option<String>,
    ) -> Result<Daemon> {
        let (writer, removed) = instance::claim(instance, stats::capacity(cfg.symbols.len()))?;
        if !removed.is_empty() {
            tracing::warn!(instance, segments = %removed.join(" "), "removed segments of a dead predecessor");
        }
        let engine_cfg = cfg.engine_config()?;
        let gov_ttl_ms = engine_cfg.governor.permit_ttl_ms;
        let (horizon_ms, max_orders) = (engine_cfg.dedupe_horizon_ms, engine_cfg.max_orders);
        let mode = cfg.mode()?;
        let mut engine =
            Engine::new(engine_cfg, Clock::new()).context("invalid engine configuration")?;
        let symbols = engine.symbols().clone();
        // Registered before the journal is recovered, with `ready` 0: until the rings exist,
        // `ctl stats` says "starting" and `ctl inject` waits.
        let counters = Counters::new(writer, &symbols)?;
        quantum_ipc::failpoint::hit("daemon_starting");
        let names: Vec<String> = symbols.names().map(str::to_owned).collect();
        let (jdir, default_source) = cfg.journal.dir_and_source(instance);
        let source = dir_source.unwrap_or(default_source);
        // Before the journal is opened (or created): rings of another journal are refused
        // without leaving an empty journal behind.
        let existing = djournal::read_identity(&jdir)?;
        check_rings_journal(instance, &jdir, &source, existing.as_ref())?;
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
        if let Some(why) = trust::untrusted(
            recovery_mode,
            rec.state.is_empty(),
            cfg.journal.fsync,
            &jdir,
        )? {
            engine.require_history(&mut |e| recovered.push(e));
            tracing::warn!(
                symbols = names.len(),
                "recovering from the exchange: {why}; every symbol reconciles until the Binance bridge has reported the account's orders of the last {} h",
                horizon_ms.div_ceil(3_600_000)
            );
        }
        let replayed_many = rec.replayed > cfg.journal.snapshot_after_replay;
        let state_seq = rec.state.seq;
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
        let journal = rec.journal;
        let book = engine.shared().book.clone();
        let engine_clock = engine.front.clock().clone();
        let table_capacity = cfg.engine.table_capacity;
        let limits = Limits::new(symbols.len() as u16);
        counters.set(counters.recovery_replayed, rec.replayed);
        counters.set(counters.recovery_orders, restored.orders as u64);
        counters.set(counters.recovery_interrupted, restored.interrupted as u64);
        counters.set(counters.recovery_executed, restored.executed as u64);
        let cap = cfg.rings.capacity;
        let mut ingress = Vec::new();
        // Absolute, so that the refusal of another daemon names a directory it can use.
        let jdir_text = std::fs::canonicalize(&jdir)
            .unwrap_or_else(|_| jdir.clone())
            .display()
            .to_string();
        for def in contract::INGRESS {
            let ring = ingress_ring(instance, def, cap)?;
            // Checked before recovery; again here, for a ring that appeared meanwhile.
            check_stamp(instance, &ring, &jdir, &source, Some(&rec.identity))?;
            ring.stamp_journal(rec.identity.id, &jdir_text);
            let consumer = ring.consumer()?;
            ingress.push(IngressRing {
                def,
                _ring: ring,
                consumer,
                invalid_seen: 0,
                unacked: VecDeque::new(),
            });
        }
        let reoffer_after = (restored.orders > 0).then(|| {
            let ex = ingress
                .iter()
                .find(|r| r.def.name == contract::EXCHANGE.name)
                .map(|r| r.consumer.position() + r.consumer.len() as u64);
            ex.unwrap_or(0)
        });
        let orders_ring = Ring::create(&RingSpec::new(instance, contract::ORDERS.name, cap))
            .with_context(|| format!("cannot create ring {}", contract::ORDERS.name))?;
        let orders = orders_ring.producer()?;
        // The results ring numbers its records as the journal does, so a reader that fell
        // behind can catch up from the journal by sequence number.
        let results = Broadcast::create(
            &RingSpec::new(instance, contract::RESULTS.name, cfg.rings.results_capacity),
            journal.next_seq(),
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
        let live = Live::start(
            &cfg.latency,
            engine_clock,
            counters.writer(),
            table_capacity,
        )?;
        let mut d = Daemon {
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
            inputs_sent: 0,
            reoffer_after,
            fsync: cfg.journal.fsync,
            journal,
            compactor,
            unsynced: Vec::new(),
            held_orders: VecDeque::new(),
            no_space: None,
            live,
            order_counted: false,
            book,
            runner: Some(runner),
            gov_ttl_ms,
            log_buf: String::new(),
            refusals_logged: 0,
            next_tick: 0,
            next_gauges: 0,
            cfg,
        };
        // What the recovery answered and offered again goes out first.
        for e in recovered {
            d.emit(e)?;
        }
        d.settle()?;
        d.counters.set(d.counters.ready, 1);
        Ok(d)
    }

    fn runner(&self) -> &Runner {
        self.runner.as_ref().expect("runner runs until drain")
    }

    /// `journal.fsync` is on.
    fn fsync(&self) -> bool {
        self.fsync
    }

    /// Runs until `stop` is set, then drains.
    pub fn run(mut self, stop: &AtomicBool) -> Result<()> {
        let mut idle_step = Duration::from_micros(20);
        let mut spins = 0u32;
        while !stop.load(Ordering::Relaxed) {
            self.tick_if_due();
            self.gauges_if_due();
            self.live.tick();
            let worked = self.pump_egress()? | self.pump_ingress()?;
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
            if self.no_space.is_some() {
                // Events wait in the engine's queue until the stalled one is journaled.
                std::thread::sleep(idle_step);
                idle_step = (idle_step * 2).min(MAX_IDLE);
                continue;
            }
            if let Some(e) = self.runner().recv_timeout(idle_step) {
                self.emit(e)?;
                idle_step = Duration::from_micros(20);
            } else {
                idle_step = (idle_step * 2).min(MAX_IDLE);
            }
            self.settle()?;
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
        let mut faults: Vec<_> = self
            .ingress
            .iter_mut()
            .filter_map(|r| r.consumer.check())
            .collect();
        faults.extend(self.orders.check());
        for f in faults {
            self.counters.inc(self.counters.cursor_faults);
            tracing::error!("{f}");
        }
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
                    self.held_input = Some((contract::ORDERS.index, Input::Reoffer, None));
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
    fn pump_egress(&mut self) -> Result<bool> {
        if let Some((e, due)) = self.no_space.take() {
            if Instant::now() < due {
                self.no_space = Some((e, due));
                return Ok(false);
            }
            self.append(e)?;
            if self.no_space.is_some() {
                return Ok(false);
            }
        }
        let mut worked = !self.held_orders.is_empty();
        if !self.flush_orders() {
            return Ok(worked);
        }
        for _ in 0..BATCH {
            let Some(e) = self.runner().try_recv() else {
                break;
            };
            worked = true;
            self.emit(e)?;
            if !self.held_orders.is_empty() || self.no_space.is_some() {
                break;
            }
        }
        self.settle()?;
        Ok(worked)
    }

    /// Counts, logs and journals one event; then (at once, or after the batch's sync with
    /// `journal.fsync`) publishes it, and an intent also goes on `orders`.
    fn emit(&mut self, e: Event) -> Result<()> {
        self.counters.event(&e);
        self.log(&e);
        self.append(e)
    }

    /// Journals `e`, then publishes it. When the journal's disk is full the event waits in
    /// `no_space` (nothing of it left the process) and intake pauses until a retry appends it.
    fn append(&mut self, e: Event) -> Result<()> {
        let rec = e.to_message().encode();
        let (seq, sealed) = match self.journal.append(&rec) {
            Ok(done) => done,
            Err(JournalError::NoSpace { path, source }) => {
                debug_assert!(self.no_space.is_none(), "one event stalls at a time");
                if self.counters.get(self.counters.journal_no_space) == 0 {
                    tracing::error!(
                        file = %path.display(),
                        "journal: the disk is full ({source}): intake paused, every accepted plan kept; the daemon goes on once there is room (retried every {} ms)",
                        NO_SPACE_RETRY.as_millis()
                    );
                    self.counters.set(self.counters.journal_no_space, 1);
                }
                self.no_space = Some((e, Instant::now() + NO_SPACE_RETRY));
                return Ok(());
            }
            Err(err) => bail!("cannot append to the journal: {err}"),
        };
        if self.counters.get(self.counters.journal_no_space) != 0 {
            tracing::warn!("journal: there is room again; intake resumed");
            self.counters.set(self.counters.journal_no_space, 0);
        }
        if sealed.is_some() {
            self.compactor.snapshot(seq - 1);
        }
        self.counters.inc(self.counters.journal_events);
        let intent = match &e {
            Event::OrderIntent(o) => Some(self.live.intent(o)),
            _ => None,
        };
        quantum_ipc::failpoint::hit("event_journaled");
        if intent.is_some() {
            quantum_ipc::failpoint::hit("intent_journaled");
        }
        if self.fsync() {
            self.unsynced.push((rec, intent));
        } else {
            self.publish(&rec, intent);
        }
        Ok(())
    }

    /// Puts a journaled event on `results` (and an intent on `orders`).
    fn publish(&mut self, rec: &Record, intent: Option<IntentStamps>) {
        self.results_w.publish(rec);
        self.counters.inc(self.counters.events_out);
        if let Some(stamps) = intent {
            if rec[1] & quantum_ipc::wire::INTENT_FLAG_LOOKUP_FIRST != 0 {
                self.counters.inc(self.counters.orders_reoffered);
            }
            self.held_orders.push_back((*rec, stamps));
            self.flush_orders();
            quantum_ipc::failpoint::hit("intent_pushed");
        }
    }

    /// After a batch: syncs the journal (with `journal.fsync`), publishes what waited for it,
    /// and releases the ingress records whose events are all journaled.
    fn settle(&mut self) -> Result<()> {
        if self.fsync() && !self.unsynced.is_empty() {
            self.journal
                .sync()
                .map_err(|e| anyhow!("cannot sync the journal: {e}"))?;
            self.counters.inc(self.counters.journal_syncs);
            for (rec, intent) in std::mem::take(&mut self.unsynced) {
                self.publish(&rec, intent);
            }
        }
        self.counters
            .set(self.counters.journal_seq, self.journal.next_seq() - 1);
        let done = match &self.runner {
            Some(r) => r.inputs_done(),
            None => return Ok(()),
        };
        self.release(done);
        Ok(())
    }

    /// Releases every ingress record whose input is among the first `done` handled.
    fn release(&mut self, done: u64) {
        for r in &mut self.ingress {
            let mut upto = None;
            while let Some(&(need, pos)) = r.unacked.front() {
                if need > done {
                    break;
                }
                upto = Some(pos);
                r.unacked.pop_front();
            }
            if let Some(pos) = upto {
                r.consumer.commit_to(pos);
            }
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
            // Logged with what was wrong with it when it was read.
            Event::Refused(r) if r.reason == RefuseReason::InvalidRecord => {}
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
        while let Some((rec, stamps)) = self.held_orders.front() {
            let stamps = *stamps;
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
            if let Some(s) = stamps {
                self.live.sent(s);
            }
            self.order_counted = false;
            self.counters.inc(self.counters.orders_out);
        }
        true
    }

    /// Hands `input` to the engine; gives it back when the engine's queue is full. A record
    /// from an ingress ring (`from`: slot and position after it) is released once handled.
    fn send(&mut self, held: Held) -> Result<(), Held> {
        let (ring, input, from) = held;
        match self.runner().try_send(input, ring) {
            Ok(()) => {
                self.inputs_sent += 1;
                if let Some((i, pos)) = from {
                    self.ingress[i].unacked.push_back((self.inputs_sent, pos));
                }
                Ok(())
            }
            Err(input) => Err((ring, input, from)),
        }
    }

    /// Moves ingress records into the engine; false when there was nothing to do.
    fn pump_ingress(&mut self) -> Result<bool> {
        if self.no_space.is_some() {
            // Nothing new is taken while an event cannot be journaled: what producers write
            // waits in the rings.
            return Ok(false);
        }
        let mut worked = false;
        if let Some(held) = self.held_input.take() {
            if let Err(back) = self.send(held) {
                self.held_input = Some(back);
                return Ok(true);
            }
            worked = true;
        }
        if let Some(at) = self.reoffer_after {
            let read = self
                .ingress
                .iter()
                .find(|r| r.def.name == contract::EXCHANGE.name)
                .map_or(u64::MAX, |r| r.consumer.position());
            if read >= at {
                self.reoffer_after = None;
                tracing::info!("the bridge's reports from while the daemon was down are read: offering the orders still in flight again, to look up first");
                if let Err(back) = self.send((contract::ORDERS.index, Input::Reoffer, None)) {
                    self.held_input = Some(back);
                    return Ok(true);
                }
                worked = true;
            }
        }
        let now_ms = unix_ms();
        for i in 0..self.ingress.len() {
            for _ in 0..BATCH {
                let Some(rec) = self.ingress[i].consumer.try_pop_held() else {
                    break;
                };
                worked = true;
                let pos = self.ingress[i].consumer.position();
                self.counters.inc(self.counters.ingress[i].records_in);
                let popped_ns = self.live.now_ns();
                let input = match self.decode(i, &rec, now_ms) {
                    Ok(input) => input,
                    Err(refused) => {
                        // The producer's answer: journaled and published before the record
                        // is released (nothing to wait for but the inputs before it).
                        self.emit(Event::Refused(refused))?;
                        let sent = self.inputs_sent;
                        self.ingress[i].unacked.push_back((sent, pos));
                        continue;
                    }
                };
                if let Input::Plan(p) = &input {
                    self.live.popped(p.id.0, popped_ns);
                }
                let ring = self.ingress[i].def.index;
                if let Err(back) = self.send((ring, input, Some((i, pos)))) {
                    self.counters.inc(self.counters.engine_input_full);
                    self.held_input = Some(back);
                    return Ok(true);
                }
            }
        }
        Ok(worked)
    }

    /// Validates and converts one ingress record; a refused one is logged and reported to
    /// the ring, and its `InputRefused` event (`invalid_record`) is returned for the caller to
    /// emit (which counts it), so that its producer learns of the refusal as of any other.
    fn decode(&mut self, i: usize, rec: &Record, now_ms: u64) -> Result<Input, RefusedEvent> {
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
                    Input::Order(_) | Input::Reoffer | Input::History(_) => c.order_reports_in,
                });
                Ok(input)
            }
            Err(why) => {
                let r = &mut self.ingress[i];
                r.consumer.report_invalid();
                r.invalid_seen += 1;
                let n = r.invalid_seen;
                if n <= INVALID_LOG_FIRST || n % INVALID_LOG_EVERY == 0 {
                    tracing::warn!(ring = def.name, count = n, "invalid record skipped: {why}");
                }
                // Every record kind has its symbol at bytes 2..4: named when it is one of
                // ours, so that a producer can tell which of its records this was.
                let raw = u16::from_le_bytes([rec[2], rec[3]]);
                let symbol = if usize::from(raw) < self.symbols.len() {
                    SymbolId(raw)
                } else {
                    SymbolId(0)
                };
                Err(RefusedEvent {
                    ring: def.index,
                    kind: rec[0],
                    symbol,
                    plan: PlanId(0),
                    reason: RefuseReason::InvalidRecord,
                    at_ms: now_ms,
                })
            }
        }
    }

    /// After the stop signal: hand the engine what was already read, let it resolve every
    /// pending plan, publish everything, and give a live `orders` consumer time to take the
    /// intents.
    fn drain(mut self) -> Result<()> {
        tracing::info!("stopping: no more ingress; draining pending plans");
        let deadline = Instant::now() + Duration::from_millis(self.cfg.rings.drain_timeout_ms);
        while let Some(held) = self.held_input.take() {
            if Instant::now() >= deadline {
                tracing::warn!("drain timeout: one record read from a ring was not processed; it stays in its ring for the next start");
                break;
            }
            self.tick_if_due();
            self.pump_egress()?;
            if let Err(back) = self.send(held) {
                self.held_input = Some(back);
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        let runner = self.runner.take().expect("runner");
        self.flush_until(deadline);
        let mut failed = None;
        let no_space = || {
            anyhow!("the journal's disk is full: stopping without releasing what could not be journaled; the next start takes it over from the rings")
        };
        if self.no_space.is_some() {
            failed = Some(no_space());
        }
        let done = runner.shutdown(&mut |e| {
            self.tick_if_due();
            if failed.is_none() {
                failed = self.emit(e).err();
                if failed.is_none() && self.no_space.is_some() {
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
        self.release(done);
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
            journal_seq = self.journal.next_seq() - 1,
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
        while !self.flush_orders() && Instant::now() < deadline {
            self.tick_if_due();
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}
