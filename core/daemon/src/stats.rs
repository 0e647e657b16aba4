//! The daemon's counters in `quantum.<instance>.counters` (read by `quantum ctl stats`,
//! `ctl metrics`, `ctl top`).
//!
//! Labels (totals since start unless marked gauge):
//! - `ready` (gauge): 0 while the daemon starts (recovering its journal, creating its rings),
//!   1 once its rings exist and it reads them: `ctl stats` says "starting" and `ctl inject`
//!   waits until then;
//! - per ingress ring: `records_in.<ring>`, `invalid_records.<ring>` (failed validation, a
//!   kind the ring does not carry, or refused by the engine: see `refused.<reason>`);
//! - inputs: `plans_in`, `commands_in`, `permits_in`, `order_reports_in`;
//! - results: `results`, `results.executed`, `results.blocked`, `results.duplicate`,
//!   `results.non_execute`; why blocked: `deny.<error>` (`missing_gov`, `missing_p33`,
//!   `expired`, `dedupe_full`, `orders_full`, `interrupted`, `plan_stale`), `deny.gov.<reason>`,
//!   `deny.p33.<reason>`;
//! - orders: `orders_out` (intents on the `orders` ring), `orders_reoffered` (offered again to
//!   a re-attached adapter), `orders_ring_full` (once per intent that had to wait),
//!   `orders_undelivered` (left at exit), and from the lifecycle `orders.sent`,
//!   `orders.accepted`, `orders.fills`, `orders.unknown`, `orders.resolved`,
//!   `orders.done.<code>`;
//! - `refused.<reason>`: inputs the engine refused (each also counts in `invalid_records`);
//! - `events_out`: events published on `results`;
//! - `engine_input_full` (the engine's input queue refused a record, which was held);
//! - journal: `journal.events` (appended), `journal.seq` (gauge: the last event's number),
//!   `journal.syncs` (msync batches with `journal.fsync`), `journal.snapshot_seq` (gauge: the
//!   newest snapshot's last event), `journal.snapshot_failures` (snapshots that failed, each
//!   retried: an alarm, since replay and disk grow until one succeeds), `journal.no_space`
//!   (gauge: 1 while the journal's disk is full and intake is paused); recovery at start: `recovery.replayed`, `recovery.orders` (offered again, look-up
//!   first), `recovery.interrupted`, `recovery.executed`; `reconciling` (gauge: symbols
//!   reconciling now);
//! - `cursor_faults`: ring cursors found changed from outside (each also logged in one
//!   sentence; see `quantum_ipc::CursorFault`);
//! - `peers_alive` (gauge: live peers over all rings), `peer_deaths.<ring>`;
//! - per symbol, gauges of the engine's book in signed 1e-8 units (two's complement in the
//!   `u64`; [`amount`] reads them back): `ledger.<SYMBOL>`, `exchange.<SYMBOL>` (0 until the
//!   first snapshot) and `in_flight.<SYMBOL>` (orders in flight plus P3.3's allowances not yet
//!   consumed), refreshed by the I/O thread every few ms.
//!
//! Every update on the record path is one relaxed `fetch_add` ([`CountersWriter::add`]).

use anyhow::{Context, Result};
use quantum_core::book::BookView;
use quantum_core::event::Event;
use quantum_core::types::Symbols;
use quantum_core::{Block, Outcome, PlanResult, Qty};
use quantum_ipc::codes::{DoneCode, GovReason, P33Reason, RefuseReason, ResultError};
use quantum_ipc::contract;
use quantum_ipc::{CounterId, CountersWriter};

/// Counter ids of one ingress ring.
#[derive(Debug, Clone, Copy)]
pub struct RingCounters {
    /// Records read.
    pub records_in: CounterId,
    /// Records refused as invalid.
    pub invalid: CounterId,
}

/// The gauge that says whether the daemon is up (1) or still starting (0).
pub const READY: &str = "ready";

/// Label prefixes of the per-symbol amount gauges, in the order [`BookGauges`] holds them.
pub const AMOUNT_GAUGES: [&str; 3] = ["ledger", "exchange", "in_flight"];

/// The quantity an amount gauge holds (its `u64` is the two's complement of 1e-8 units), or
/// `None` for a label that is not an amount gauge.
pub fn amount(label: &str, raw: u64) -> Option<Qty> {
    let (prefix, _symbol) = label.split_once('.')?;
    AMOUNT_GAUGES
        .contains(&prefix)
        .then(|| Qty::from_units(raw as i64))
}

/// One symbol's book gauges and the values last written to them.
struct BookGauges {
    ids: [CounterId; 3],
    last: [i64; 3],
}

/// A code enum's counters, indexed by the code's position in its `ALL`.
struct ByCode<T: 'static> {
    all: &'static [T],
    ids: Vec<CounterId>,
}

impl<T: PartialEq + Copy> ByCode<T> {
    fn new(
        all: &'static [T],
        label: impl Fn(T) -> String,
        reg: &impl Fn(&str) -> Result<CounterId>,
    ) -> Result<Self> {
        let ids = all
            .iter()
            .map(|c| reg(&label(*c)))
            .collect::<Result<Vec<_>>>()?;
        Ok(ByCode { all, ids })
    }

    fn get(&self, c: T) -> Option<CounterId> {
        self.all.iter().position(|x| *x == c).map(|i| self.ids[i])
    }
}

/// Every counter the daemon writes.
pub struct Counters {
    w: std::sync::Arc<CountersWriter>,
    /// Per ingress ring, in [`contract::INGRESS`] order.
    pub ingress: Vec<RingCounters>,
    /// Per ring ([`contract::RINGS`] order): peers seen dying.
    pub peer_deaths: Vec<CounterId>,
    pub plans_in: CounterId,
    pub commands_in: CounterId,
    pub permits_in: CounterId,
    pub order_reports_in: CounterId,
    results: CounterId,
    executed: CounterId,
    blocked: CounterId,
    duplicate: CounterId,
    non_execute: CounterId,
    deny: ByCode<ResultError>,
    gov_deny: ByCode<GovReason>,
    p33_deny: ByCode<P33Reason>,
    refused: ByCode<RefuseReason>,
    done: ByCode<DoneCode>,
    pub orders_out: CounterId,
    pub orders_reoffered: CounterId,
    pub orders_ring_full: CounterId,
    pub orders_undelivered: CounterId,
    sent: CounterId,
    accepted: CounterId,
    fills: CounterId,
    unknown: CounterId,
    resolved: CounterId,
    pub events_out: CounterId,
    pub engine_input_full: CounterId,
    pub peers_alive: CounterId,
    pub journal_events: CounterId,
    pub journal_seq: CounterId,
    pub journal_syncs: CounterId,
    pub snapshot_seq: CounterId,
    pub snapshot_failures: CounterId,
    pub journal_no_space: CounterId,
    pub recovery_replayed: CounterId,
    pub recovery_orders: CounterId,
    pub recovery_interrupted: CounterId,
    pub recovery_executed: CounterId,
    pub reconciling: CounterId,
    pub cursor_faults: CounterId,
    pub ready: CounterId,
    books: Vec<BookGauges>,
}

/// Counters the daemon registers besides the per-symbol gauges (with room to spare): sizes the
/// segment with [`capacity`].
const FIXED_COUNTERS: usize = 256;

/// Counters segment capacity for `symbols` symbols.
pub fn capacity(symbols: usize) -> usize {
    FIXED_COUNTERS + AMOUNT_GAUGES.len() * symbols
}

impl Counters {
    /// The segment's writer, shared with the latency writer thread (its gauges).
    pub fn writer(&self) -> std::sync::Arc<CountersWriter> {
        self.w.clone()
    }

    /// Registers every counter and writes the symbol directory.
    pub fn new(w: CountersWriter, symbols: &Symbols) -> Result<Counters> {
        let reg = |l: &str| w.register(l).with_context(|| format!("counter {l}"));
        let ingress = contract::INGRESS
            .iter()
            .map(|r| {
                Ok(RingCounters {
                    records_in: reg(&format!("records_in.{}", r.name))?,
                    invalid: reg(&format!("invalid_records.{}", r.name))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let peer_deaths = contract::RINGS
            .iter()
            .map(|r| reg(&format!("peer_deaths.{}", r.name)))
            .collect::<Result<Vec<_>>>()?;
        let deny_codes: &'static [ResultError] = &[
            ResultError::MissingGov,
            ResultError::MissingP33,
            ResultError::Expired,
            ResultError::DedupeFull,
            ResultError::OrdersFull,
            ResultError::Interrupted,
            ResultError::PlanStale,
        ];
        let c = Counters {
            ingress,
            peer_deaths,
            plans_in: reg("plans_in")?,
            commands_in: reg("commands_in")?,
            permits_in: reg("permits_in")?,
            order_reports_in: reg("order_reports_in")?,
            results: reg("results")?,
            executed: reg("results.executed")?,
            blocked: reg("results.blocked")?,
            duplicate: reg("results.duplicate")?,
            non_execute: reg("results.non_execute")?,
            deny: ByCode::new(deny_codes, |e| format!("deny.{e}"), &reg)?,
            gov_deny: ByCode::new(GovReason::ALL, |r| format!("deny.gov.{r}"), &reg)?,
            p33_deny: ByCode::new(P33Reason::ALL, |r| format!("deny.p33.{r}"), &reg)?,
            refused: ByCode::new(RefuseReason::ALL, |r| format!("refused.{r}"), &reg)?,
            done: ByCode::new(DoneCode::ALL, |d| format!("orders.done.{d}"), &reg)?,
            orders_out: reg("orders_out")?,
            orders_reoffered: reg("orders_reoffered")?,
            orders_ring_full: reg("orders_ring_full")?,
            orders_undelivered: reg("orders_undelivered")?,
            sent: reg("orders.sent")?,
            accepted: reg("orders.accepted")?,
            fills: reg("orders.fills")?,
            unknown: reg("orders.unknown")?,
            resolved: reg("orders.resolved")?,
            events_out: reg("events_out")?,
            engine_input_full: reg("engine_input_full")?,
            peers_alive: reg("peers_alive")?,
            journal_events: reg("journal.events")?,
            journal_seq: reg("journal.seq")?,
            journal_syncs: reg("journal.syncs")?,
            snapshot_seq: reg("journal.snapshot_seq")?,
            snapshot_failures: reg("journal.snapshot_failures")?,
            journal_no_space: reg("journal.no_space")?,
            recovery_replayed: reg("recovery.replayed")?,
            recovery_orders: reg("recovery.orders")?,
            recovery_interrupted: reg("recovery.interrupted")?,
            recovery_executed: reg("recovery.executed")?,
            reconciling: reg("reconciling")?,
            cursor_faults: reg("cursor_faults")?,
            ready: reg(READY)?,
            books: symbols
                .names()
                .map(|name| {
                    let id = |g: &str| reg(&format!("{g}.{name}"));
                    Ok(BookGauges {
                        ids: [
                            id(AMOUNT_GAUGES[0])?,
                            id(AMOUNT_GAUGES[1])?,
                            id(AMOUNT_GAUGES[2])?,
                        ],
                        last: [0; 3],
                    })
                })
                .collect::<Result<Vec<_>>>()?,
            w: std::sync::Arc::new(w),
        };
        for (i, name) in symbols.names().enumerate() {
            c.w.set_symbol(i as u16, name)
                .with_context(|| format!("symbol directory entry {name}"))?;
        }
        Ok(c)
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self, id: CounterId) {
        self.w.add(id, 1);
    }

    /// Reads a counter back.
    pub fn get(&self, id: CounterId) -> u64 {
        self.w.get(id)
    }

    /// Sets a gauge.
    #[inline]
    pub fn set(&self, id: CounterId, v: u64) {
        self.w.set(id, v);
    }

    /// Sets the book gauges of symbol `index` from `view`, writing only values that changed.
    pub fn book(&mut self, index: usize, view: &BookView) {
        let Some(g) = self.books.get_mut(index) else {
            return;
        };
        let now = [
            view.ledger.units(),
            view.exchange.map_or(0, |(q, _)| q.units()),
            view.committed().units(),
        ];
        for ((last, id), v) in g.last.iter_mut().zip(g.ids).zip(now) {
            if *last != v {
                *last = v;
                // Two's complement: `amount` reads it back as i64.
                self.w.set(id, v as u64);
            }
        }
    }

    /// Counts an event of the engine.
    pub fn event(&self, e: &Event) {
        match e {
            Event::PlanResult(r) => self.result(r),
            Event::OrderSent { .. } => self.inc(self.sent),
            Event::OrderAccepted { .. } => self.inc(self.accepted),
            Event::Fill(_) => self.inc(self.fills),
            Event::OrderUnknown { .. } => self.inc(self.unknown),
            Event::OrderResolved { .. } => self.inc(self.resolved),
            Event::OrderDone(d) => {
                if let Some(id) = self.done.get(d.code) {
                    self.inc(id);
                }
            }
            Event::Reconciling { on, .. } => {
                let now = self.get(self.reconciling);
                self.set(
                    self.reconciling,
                    if *on { now + 1 } else { now.saturating_sub(1) },
                );
            }
            Event::Refused(r) => {
                if let Some(id) = self.refused.get(r.reason) {
                    self.inc(id);
                }
                if let Some(c) = self.ingress.get(usize::from(r.ring)) {
                    self.inc(c.invalid);
                }
            }
            _ => {}
        }
    }

    /// Counts a result by outcome and deny reason.
    fn result(&self, r: &PlanResult) {
        self.inc(self.results);
        let id = match &r.outcome {
            Outcome::Executed { .. } => Some(self.executed),
            Outcome::Duplicate { .. } => Some(self.duplicate),
            Outcome::NonExecute => Some(self.non_execute),
            Outcome::Blocked(b) => {
                self.inc(self.blocked);
                match b {
                    Block::GovDenied(g) => self.gov_deny.get(*g),
                    Block::P33Denied(p, _) => self.p33_deny.get(*p),
                    other => self.deny.get(other.codes().0),
                }
            }
        };
        if let Some(id) = id {
            self.inc(id);
        }
    }
}
