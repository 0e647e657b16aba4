//! Egress: every event the engine emits goes, in order, to the counters, to the log (the
//! legacy `[PERMIT_WAIT]` / `Result published` lines for results), into the **journal**, then
//! onto the `results` broadcast ring (which never waits for a reader; its sequence numbers are
//! the journal's), and, for an order intent, onto the `orders` ring. So an intent is journaled
//! before it can leave, and a producer learns that a plan was accepted (from `results`, or from
//! the ring's head) only once the plan is journaled. With `journal.fsync` the batch is
//! `msync`ed first. An intent is never dropped: while `orders` is full the daemon holds it and
//! stops taking events from the engine, which then back-pressures its own input. When the
//! journal's disk is full, the event waits here and intake pauses until it can be journaled.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use quantum_core::event::Event;
use quantum_core::types::Symbols;
use quantum_ipc::broadcast::{self, Broadcast};
use quantum_ipc::codes::RefuseReason;
use quantum_ipc::contract;
use quantum_ipc::failpoint::{self, Point};
use quantum_ipc::journal::{Journal, JournalError};
use quantum_ipc::wire::{Record, RECORD_SIZE};
use quantum_ipc::{CursorFault, PeerStatus, Producer, Ring, RingSpec};

use crate::config::DaemonConfig;
use crate::ingress::{INVALID_LOG_EVERY, INVALID_LOG_FIRST};
use crate::journal::Compactor;
use crate::latency::probe::Live;
use crate::latency::Stamps;
use crate::stats::Counters;
use quantum_core::result::OutcomeClass;

/// An intent's latency stamps so far (`None`: not timed, e.g. offered again after a restart).
type IntentStamps = Option<Stamps>;

/// What the I/O thread times when an event goes out: an intent's stamps, a result's plan and
/// outcome class.
#[derive(Clone, Copy)]
struct Timed {
    intent: Option<IntentStamps>,
    decision: Option<(u64, OutcomeClass)>,
}

/// How often an event the journal had no room for is tried again.
pub(crate) const NO_SPACE_RETRY: Duration = Duration::from_millis(500);

/// The journal and the producer side of the egress rings.
pub(crate) struct Egress {
    journal: Journal,
    compactor: Compactor,
    /// `journal.fsync`: a batch is synced before any of it is published.
    fsync: bool,
    /// With `fsync`: events appended but not yet synced, and for an intent its stamps.
    unsynced: Vec<(Record, Timed)>,
    /// An event the journal had no room for, and when to try again (intake is paused).
    no_space: Option<(Event, Instant)>,
    results: Broadcast,
    results_w: broadcast::Writer,
    orders_ring: Ring,
    orders: Producer<RECORD_SIZE>,
    /// Intents waiting for room on `orders`, oldest first, with their stamps.
    held_orders: VecDeque<(Record, IntentStamps)>,
    /// The first held intent was counted (and logged) as a full ring already.
    order_counted: bool,
    log: EventLog,
}

impl Egress {
    /// Creates the `orders` ring and the `results` broadcast ring (numbered as `journal`).
    pub fn open(
        instance: &str,
        cfg: &DaemonConfig,
        journal: Journal,
        compactor: Compactor,
        symbols: Symbols,
    ) -> Result<Egress> {
        let orders_ring = Ring::create(&RingSpec::new(
            instance,
            contract::ORDERS.name,
            cfg.rings.capacity,
        ))
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
        Ok(Egress {
            journal,
            compactor,
            fsync: cfg.journal.fsync,
            unsynced: Vec::new(),
            no_space: None,
            results,
            results_w,
            orders_ring,
            orders,
            held_orders: VecDeque::new(),
            order_counted: false,
            log: EventLog::new(cfg.legacy_log, symbols),
        })
    }

    /// An event waits for room in the journal: nothing new may be taken meanwhile.
    pub fn is_stalled(&self) -> bool {
        self.no_space.is_some()
    }

    /// Intents wait for room on `orders`.
    pub fn holds_orders(&self) -> bool {
        !self.held_orders.is_empty()
    }

    /// Intents that never got onto `orders`.
    pub fn held_orders(&self) -> usize {
        self.held_orders.len()
    }

    /// The last sequence number journaled.
    pub fn last_seq(&self) -> u64 {
        self.journal.next_seq() - 1
    }

    /// Retries the event the journal had no room for, once its retry time has come; true
    /// when no event waits any more.
    pub fn retry_stalled(&mut self, counters: &Counters, live: &mut Live) -> Result<bool> {
        if let Some((e, due)) = self.no_space.take() {
            if Instant::now() < due {
                self.no_space = Some((e, due));
                return Ok(false);
            }
            self.append(e, counters, live)?;
        }
        Ok(self.no_space.is_none())
    }

    /// Counts, logs and journals one event; then (at once, or after the batch's sync with
    /// `journal.fsync`) publishes it, and an intent also goes on `orders`.
    pub fn emit(&mut self, e: Event, counters: &Counters, live: &mut Live) -> Result<()> {
        counters.event(&e);
        self.log.event(&e);
        self.append(e, counters, live)
    }

    /// Journals `e`, then publishes it. When the journal's disk is full the event waits in
    /// `no_space` (nothing of it left the process) and intake pauses until a retry appends it.
    fn append(&mut self, e: Event, counters: &Counters, live: &mut Live) -> Result<()> {
        let rec = e.to_message().encode();
        let (seq, sealed) = match self.journal.append(&rec) {
            Ok(done) => done,
            Err(JournalError::NoSpace { path, source }) => {
                debug_assert!(self.no_space.is_none(), "one event stalls at a time");
                if counters.get(counters.journal_no_space) == 0 {
                    tracing::error!(
                        file = %path.display(),
                        "journal: the disk is full ({source}): intake paused, every accepted plan kept; the daemon goes on once there is room (retried every {} ms)",
                        NO_SPACE_RETRY.as_millis()
                    );
                    counters.set(counters.journal_no_space, 1);
                }
                self.no_space = Some((e, Instant::now() + NO_SPACE_RETRY));
                return Ok(());
            }
            Err(err) => bail!("cannot append to the journal: {err}"),
        };
        if counters.get(counters.journal_no_space) != 0 {
            tracing::warn!("journal: there is room again; intake resumed");
            counters.set(counters.journal_no_space, 0);
        }
        if sealed.is_some() {
            self.compactor.snapshot(seq - 1);
        }
        counters.inc(counters.journal_events);
        // What also goes on `orders`: an intent (with its latency stamps), and the history
        // request a lead makes.
        let intent = match &e {
            Event::OrderIntent(o) => Some(live.intent(o)),
            Event::Leading { .. } => Some(None),
            _ => None,
        };
        let decision = match &e {
            Event::PlanResult(r) => Some((r.plan.0, r.outcome.class())),
            _ => None,
        };
        failpoint::hit(Point::EventJournaled);
        if intent.is_some() {
            failpoint::hit(Point::IntentJournaled);
        }
        let timed = Timed { intent, decision };
        if self.fsync {
            self.unsynced.push((rec, timed));
        } else {
            self.publish(&rec, timed, counters, live);
        }
        Ok(())
    }

    /// Puts a journaled event on `results` (and an intent on `orders`).
    fn publish(&mut self, rec: &Record, timed: Timed, counters: &Counters, live: &mut Live) {
        self.results_w.publish(rec);
        counters.inc(counters.events_out);
        if let Some((plan, class)) = timed.decision {
            live.decided(plan, class);
        }
        if let Some(stamps) = timed.intent {
            if rec[1] & quantum_ipc::wire::INTENT_FLAG_LOOKUP_FIRST != 0 {
                counters.inc(counters.orders_reoffered);
            }
            self.held_orders.push_back((*rec, stamps));
            self.flush_orders(counters, live);
            failpoint::hit(Point::IntentPushed);
        }
    }

    /// After a batch: syncs the journal (with `journal.fsync`) and publishes what waited for
    /// it.
    pub fn sync(&mut self, counters: &Counters, live: &mut Live) -> Result<()> {
        if self.fsync && !self.unsynced.is_empty() {
            self.journal
                .sync()
                .map_err(|e| anyhow!("cannot sync the journal: {e}"))?;
            counters.inc(counters.journal_syncs);
            for (rec, timed) in std::mem::take(&mut self.unsynced) {
                self.publish(&rec, timed, counters, live);
            }
        }
        counters.set(counters.journal_seq, self.last_seq());
        Ok(())
    }

    /// Tries to put the held intents on `orders`; true when none is held any more.
    pub fn flush_orders(&mut self, counters: &Counters, live: &mut Live) -> bool {
        while let Some((rec, stamps)) = self.held_orders.front() {
            let stamps = *stamps;
            if self.orders.try_push(rec).is_err() {
                if !self.order_counted {
                    self.order_counted = true;
                    counters.inc(counters.orders_ring_full);
                    tracing::warn!(
                        held = self.held_orders.len(),
                        "orders ring full: holding intents until the Binance bridge takes them"
                    );
                }
                return false;
            }
            self.held_orders.pop_front();
            if let Some(s) = stamps {
                live.sent(s);
            }
            self.order_counted = false;
            counters.inc(counters.orders_out);
        }
        true
    }

    /// Tells the `orders` consumer and the `results` readers this producer is alive.
    pub fn heartbeat(&self) {
        self.orders.heartbeat();
        self.results_w.heartbeat();
    }

    /// A cursor fault found on `orders` since the last look.
    pub fn orders_fault(&mut self) -> Option<CursorFault> {
        self.orders.check()
    }

    /// The `orders` consumer as seen now.
    pub fn orders_consumer(&self, timeout: u64) -> PeerStatus {
        self.orders.peer_status(timeout)
    }

    /// How many consumers have attached to `orders` since it was created.
    pub fn orders_attaches(&self) -> u64 {
        self.orders_ring.stats().consumer_attaches
    }

    /// Intents on the `orders` ring not taken yet.
    pub fn orders_waiting(&self) -> usize {
        self.orders_ring.len()
    }

    /// Live readers of `results`.
    pub fn results_readers(&self, timeout: u64) -> usize {
        self.results
            .readers(timeout)
            .iter()
            .filter(|r| r.status.is_alive())
            .count()
    }
}

/// What of the events goes to the log.
struct EventLog {
    /// The legacy `[PERMIT_WAIT]` / `Result published` lines (`legacy_log`).
    legacy: bool,
    /// Reused for the legacy lines.
    buf: String,
    /// Refusals logged so far (for the rate limit).
    refusals: u64,
    symbols: Symbols,
    /// The account's position mode last logged (told again at every bridge reconnect: one
    /// line per change, not per telling).
    account_hedge: Option<bool>,
    /// Legs last logged as not trading.
    not_trading: std::collections::BTreeSet<u16>,
}

impl EventLog {
    fn new(legacy: bool, symbols: Symbols) -> EventLog {
        EventLog {
            legacy,
            buf: String::new(),
            refusals: 0,
            symbols,
            account_hedge: None,
            not_trading: Default::default(),
        }
    }

    /// One line for the account's mode: which symbols it stops, if any.
    fn account_mode(&self, hedge: bool) {
        let mode = if hedge { "hedge" } else { "one_way" };
        let other: Vec<&str> = self
            .symbols
            .names()
            .enumerate()
            .filter(|&(i, _)| {
                self.symbols
                    .leg(quantum_core::SymbolId(i as u16))
                    .is_some_and(|(_, side)| side.is_hedge() != hedge)
            })
            .map(|(_, n)| n)
            .collect();
        if other.is_empty() {
            tracing::info!(mode, "the exchange says the account's position mode is {mode}, as every symbol is configured");
        } else {
            tracing::error!(mode, symbols = %other.join(","), "the exchange says the account's position mode is {mode}, but these symbols are configured in the other mode: their EXECUTE plans are denied position_mode_mismatch (set symbols.position_mode to match the account, or change the account's mode while it holds no position)");
        }
    }

    fn event(&mut self, e: &Event) {
        match e {
            Event::PlanResult(r) if self.legacy => {
                self.buf.clear();
                if r.write_legacy_log(&mut self.buf, &self.symbols).is_ok() {
                    for line in self.buf.lines() {
                        tracing::info!(target: "quantum::apply", "{line}");
                    }
                }
            }
            // Logged with what was wrong with it when it was read.
            Event::Refused(r) if r.reason == RefuseReason::InvalidRecord => {}
            Event::Refused(r) => {
                self.refusals += 1;
                let n = self.refusals;
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
            Event::AccountMode { hedge, .. } if self.account_hedge != Some(*hedge) => {
                self.account_hedge = Some(*hedge);
                self.account_mode(*hedge);
            }
            Event::SymbolStatus { symbol, status, .. } => {
                let trading = *status == quantum_ipc::codes::ContractStatus::Trading;
                let changed = if trading {
                    self.not_trading.remove(&symbol.0)
                } else {
                    self.not_trading.insert(symbol.0)
                };
                if changed && trading {
                    tracing::info!(symbol = self.symbols.name(*symbol), %status, "the exchange trades the symbol again");
                } else if changed {
                    tracing::warn!(symbol = self.symbols.name(*symbol), %status, "the exchange does not trade the symbol: its EXECUTE plans are denied symbol_not_trading");
                }
            }
            _ => {}
        }
    }
}
