//! The daemon's counters in `quantum.<instance>.counters` (read by `quantum ctl stats`).
//!
//! Labels (all totals since start unless marked gauge):
//! - `records_in.<ring>`, `invalid_records.<ring>` per ingress ring;
//! - `plans_in`, `commands_in`, `permits_in`, `rejects_in`;
//! - `results`, `results.executed`, `results.blocked`, `results.duplicate`,
//!   `results.non_execute`; deny reasons `deny.missing_gov`, `deny.missing_p33`,
//!   `deny.expired`, `deny.gov.<reason>`, `deny.p33.<reason>`;
//! - `orders_out`, `orders_ring_full`, `orders_undelivered` (left at exit);
//! - `results_out`, `results_ring_full` (once per record of any kind that found `results`
//!   full), `results_unobserved` (plan results not published: `results` full and no live
//!   consumer); the permits and position records mirrored on `results`
//!   ([`super::convert::permits_out`], [`super::positions`]): `results_permits_out`,
//!   `results_positions_out`, and, not published under the same policy,
//!   `results_permits_unobserved`, `results_positions_unobserved`;
//! - `engine_input_full` (the engine's input queue refused a record, which was held);
//! - `peers_alive` (gauge: live peers over all rings), `peer_deaths.<ring>`;
//! - `rejects.remainder_expired` (of `rejects_in`: a partly filled order whose rest expired),
//!   `fills_untracked` (fills naming a plan with nothing in flight: the ledger moves, no
//!   reservation is released);
//! - per symbol, gauges of the engine's book in signed 1e-8 units (two's complement in the
//!   `u64`; [`amount`] reads them back): `ledger.<SYMBOL>`, `exchange.<SYMBOL>` (0 until the
//!   first snapshot) and `in_flight.<SYMBOL>`, refreshed by the I/O thread every few ms.
//!
//! Every update on the record path is one relaxed `fetch_add` ([`CountersWriter::add`]).

use anyhow::{Context, Result};
use quantum_core::governor::GovReason;
use quantum_core::ledger::BookView;
use quantum_core::p33::P33Reason;
use quantum_core::types::Symbols;
use quantum_core::{Block, Outcome, PlanResult, Qty};
use quantum_ipc::{CounterId, CountersWriter};

use super::rings;

/// Counter ids of one ring.
#[derive(Debug, Clone, Copy)]
pub struct RingCounters {
    /// Records read.
    pub records_in: CounterId,
    /// Records refused as invalid.
    pub invalid: CounterId,
}

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

/// Every counter the daemon writes.
pub struct Counters {
    w: CountersWriter,
    /// Per ingress ring, in [`rings::INGRESS`] order.
    pub ingress: Vec<RingCounters>,
    /// Per ring ([`rings::INGRESS`] then [`rings::EGRESS`]): peers seen dying.
    pub peer_deaths: Vec<CounterId>,
    pub plans_in: CounterId,
    pub commands_in: CounterId,
    pub permits_in: CounterId,
    pub rejects_in: CounterId,
    results: CounterId,
    executed: CounterId,
    blocked: CounterId,
    duplicate: CounterId,
    non_execute: CounterId,
    missing_gov: CounterId,
    missing_p33: CounterId,
    expired: CounterId,
    gov_deny: Vec<(GovReason, CounterId)>,
    p33_deny: Vec<(P33Reason, CounterId)>,
    pub orders_out: CounterId,
    pub orders_ring_full: CounterId,
    pub orders_undelivered: CounterId,
    pub results_out: CounterId,
    pub results_ring_full: CounterId,
    pub results_unobserved: CounterId,
    pub results_permits_out: CounterId,
    pub results_positions_out: CounterId,
    pub results_permits_unobserved: CounterId,
    pub results_positions_unobserved: CounterId,
    pub engine_input_full: CounterId,
    pub peers_alive: CounterId,
    pub remainders_expired: CounterId,
    pub fills_untracked: CounterId,
    books: Vec<BookGauges>,
}

/// Counters the daemon registers besides the per-symbol gauges (with room to spare): sizes the
/// segment with [`capacity`].
const FIXED_COUNTERS: usize = 128;

/// Counters segment capacity for `symbols` symbols.
pub fn capacity(symbols: usize) -> usize {
    FIXED_COUNTERS + AMOUNT_GAUGES.len() * symbols
}

impl Counters {
    /// Registers every counter and writes the symbol directory.
    pub fn new(w: CountersWriter, symbols: &Symbols) -> Result<Counters> {
        let reg = |l: &str| w.register(l).with_context(|| format!("counter {l}"));
        let ingress = rings::INGRESS
            .iter()
            .map(|r| {
                Ok(RingCounters {
                    records_in: reg(&format!("records_in.{r}"))?,
                    invalid: reg(&format!("invalid_records.{r}"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let peer_deaths = rings::INGRESS
            .iter()
            .chain(rings::EGRESS.iter())
            .map(|r| reg(&format!("peer_deaths.{r}")))
            .collect::<Result<Vec<_>>>()?;
        let gov_deny = GovReason::ALL
            .iter()
            .map(|r| Ok((*r, reg(&format!("deny.gov.{}", r.as_str()))?)))
            .collect::<Result<Vec<_>>>()?;
        let p33_deny = P33Reason::ALL
            .iter()
            .map(|r| Ok((*r, reg(&format!("deny.p33.{}", r.as_str()))?)))
            .collect::<Result<Vec<_>>>()?;
        let c = Counters {
            ingress,
            peer_deaths,
            plans_in: reg("plans_in")?,
            commands_in: reg("commands_in")?,
            permits_in: reg("permits_in")?,
            rejects_in: reg("rejects_in")?,
            results: reg("results")?,
            executed: reg("results.executed")?,
            blocked: reg("results.blocked")?,
            duplicate: reg("results.duplicate")?,
            non_execute: reg("results.non_execute")?,
            missing_gov: reg("deny.missing_gov")?,
            missing_p33: reg("deny.missing_p33")?,
            expired: reg("deny.expired")?,
            gov_deny,
            p33_deny,
            orders_out: reg("orders_out")?,
            orders_ring_full: reg("orders_ring_full")?,
            orders_undelivered: reg("orders_undelivered")?,
            results_out: reg("results_out")?,
            results_ring_full: reg("results_ring_full")?,
            results_unobserved: reg("results_unobserved")?,
            results_permits_out: reg("results_permits_out")?,
            results_positions_out: reg("results_positions_out")?,
            results_permits_unobserved: reg("results_permits_unobserved")?,
            results_positions_unobserved: reg("results_positions_unobserved")?,
            engine_input_full: reg("engine_input_full")?,
            peers_alive: reg("peers_alive")?,
            remainders_expired: reg("rejects.remainder_expired")?,
            fills_untracked: reg("fills_untracked")?,
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
            w,
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
            view.in_flight.units(),
        ];
        for ((last, id), v) in g.last.iter_mut().zip(g.ids).zip(now) {
            if *last != v {
                *last = v;
                // Two's complement: `amount` reads it back as i64.
                self.w.set(id, v as u64);
            }
        }
    }

    /// Counts a result by outcome and deny reason.
    pub fn result(&self, r: &PlanResult) {
        self.inc(self.results);
        let id = match &r.outcome {
            Outcome::Executed(_) => self.executed,
            Outcome::Duplicate => self.duplicate,
            Outcome::NonExecute => self.non_execute,
            Outcome::Blocked(b) => {
                self.inc(self.blocked);
                match b {
                    Block::MissingGov => self.missing_gov,
                    Block::MissingP33 => self.missing_p33,
                    Block::Expired => self.expired,
                    Block::GovDenied(g) => match self.gov_deny.iter().find(|(r, _)| r == g) {
                        Some((_, id)) => *id,
                        None => return,
                    },
                    Block::P33Denied(p, _) => match self.p33_deny.iter().find(|(r, _)| r == p) {
                        Some((_, id)) => *id,
                        None => return,
                    },
                }
            }
        };
        self.inc(id);
    }
}
