//! Per-symbol book: ledger amount, latest exchange position snapshot, mark price, quantity in
//! flight, lot filters and reconcile tolerance.
//!
//! Each field is its own atomic. Writers are the engine's command path (operator "set ledger",
//! position snapshots, fills, filter updates) and the apply stage (reserving in-flight quantity);
//! readers are P3.3 and the governor, possibly on other threads. A reader may see one field
//! updated and another not yet (e.g. a new exchange amount with the previous timestamp); every
//! such mix is a state the book really passed through or a slightly staler one, which P3.3
//! treats conservatively. All accesses are Relaxed for that reason: no field publishes another.

use crossbeam_utils::CachePadded;

use crate::fixed::{Price, Qty};
use crate::sync::{AtomicI64, AtomicU64, Ordering};
use crate::types::{Side, SymbolId};

/// A LOT_SIZE or MARKET_LOT_SIZE filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LotFilter {
    /// minQty.
    pub min: Qty,
    /// maxQty.
    pub max: Qty,
    /// stepSize (zero: no step).
    pub step: Qty,
}

/// What P3.3 needs to know of a symbol's exchange rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Filters {
    /// LOT_SIZE.
    pub lot: LotFilter,
    /// MARKET_LOT_SIZE (MARKET orders must satisfy it too).
    pub market_lot: LotFilter,
    /// MIN_NOTIONAL (informational: reduce-only orders are exempt on Binance).
    pub min_notional: Price,
}

/// A consistent-enough copy of one symbol's book.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BookView {
    /// Ledger amount (signed).
    pub ledger: Qty,
    /// Exchange amount and its engine-clock time, if any snapshot arrived.
    pub exchange: Option<(Qty, u64)>,
    /// Latest mark price (zero when unknown).
    pub mark: Price,
    /// Quantity of our orders sent and not yet filled or rejected.
    pub in_flight: Qty,
    /// Reconcile tolerance.
    pub tolerance: Qty,
    /// Exchange filters.
    pub filters: Filters,
}

#[derive(Debug)]
struct SymbolBook {
    ledger: AtomicI64,
    exchange: AtomicI64,
    /// Engine-clock ns of the last snapshot; 0 = none yet.
    exchange_at: AtomicU64,
    mark: AtomicI64,
    in_flight: AtomicI64,
    tolerance: AtomicI64,
    lot: [AtomicI64; 3],
    market_lot: [AtomicI64; 3],
    min_notional: AtomicI64,
}

fn load_lot(a: &[AtomicI64; 3]) -> LotFilter {
    LotFilter {
        min: Qty::from_units(a[0].load(Ordering::Relaxed)),
        max: Qty::from_units(a[1].load(Ordering::Relaxed)),
        step: Qty::from_units(a[2].load(Ordering::Relaxed)),
    }
}

fn store_lot(a: &[AtomicI64; 3], f: LotFilter) {
    a[0].store(f.min.units(), Ordering::Relaxed);
    a[1].store(f.max.units(), Ordering::Relaxed);
    a[2].store(f.step.units(), Ordering::Relaxed);
}

/// The book of every interned symbol, indexed by [`SymbolId`].
#[derive(Debug)]
pub struct Ledger {
    books: Box<[CachePadded<SymbolBook>]>,
}

impl Ledger {
    /// A book per symbol, with the given tolerance and filters, no ledger amount and no
    /// exchange snapshot.
    pub fn new(specs: &[(Qty, Filters)]) -> Self {
        let books = specs
            .iter()
            .map(|(tol, f)| {
                let b = SymbolBook {
                    ledger: AtomicI64::new(0),
                    exchange: AtomicI64::new(0),
                    exchange_at: AtomicU64::new(0),
                    mark: AtomicI64::new(0),
                    in_flight: AtomicI64::new(0),
                    tolerance: AtomicI64::new(tol.units()),
                    lot: [AtomicI64::new(0), AtomicI64::new(0), AtomicI64::new(0)],
                    market_lot: [AtomicI64::new(0), AtomicI64::new(0), AtomicI64::new(0)],
                    min_notional: AtomicI64::new(0),
                };
                store_lot(&b.lot, f.lot);
                store_lot(&b.market_lot, f.market_lot);
                b.min_notional
                    .store(f.min_notional.units(), Ordering::Relaxed);
                CachePadded::new(b)
            })
            .collect();
        Ledger { books }
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.books.len()
    }

    /// True when there are no symbols.
    pub fn is_empty(&self) -> bool {
        self.books.is_empty()
    }

    fn book(&self, s: SymbolId) -> Option<&SymbolBook> {
        self.books.get(s.index()).map(|b| &**b)
    }

    /// A copy of `s`'s book, or `None` for an unknown symbol.
    pub fn view(&self, s: SymbolId) -> Option<BookView> {
        let b = self.book(s)?;
        let at = b.exchange_at.load(Ordering::Relaxed);
        Some(BookView {
            ledger: Qty::from_units(b.ledger.load(Ordering::Relaxed)),
            exchange: (at != 0).then(|| (Qty::from_units(b.exchange.load(Ordering::Relaxed)), at)),
            mark: Price::from_units(b.mark.load(Ordering::Relaxed)),
            in_flight: Qty::from_units(b.in_flight.load(Ordering::Relaxed)),
            tolerance: Qty::from_units(b.tolerance.load(Ordering::Relaxed)),
            filters: Filters {
                lot: load_lot(&b.lot),
                market_lot: load_lot(&b.market_lot),
                min_notional: Price::from_units(b.min_notional.load(Ordering::Relaxed)),
            },
        })
    }

    /// The latest mark price of `s` (zero when unknown).
    pub fn mark(&self, s: SymbolId) -> Price {
        self.book(s).map_or(Price::ZERO, |b| {
            Price::from_units(b.mark.load(Ordering::Relaxed))
        })
    }

    /// Operator command: set the ledger amount (legacy `HSET quantum:position:<S> ledger_amount`).
    pub fn set_ledger(&self, s: SymbolId, amount: Qty) -> bool {
        self.book(s)
            .map(|b| b.ledger.store(amount.units(), Ordering::Relaxed))
            .is_some()
    }

    /// A position snapshot from the exchange at engine time `at_ns` (0 is bumped to 1, since 0
    /// means "never"). A zero mark leaves the last mark in place.
    pub fn set_exchange(&self, s: SymbolId, amount: Qty, mark: Price, at_ns: u64) -> bool {
        let Some(b) = self.book(s) else { return false };
        b.exchange.store(amount.units(), Ordering::Relaxed);
        if !mark.is_zero() {
            b.mark.store(mark.units(), Ordering::Relaxed);
        }
        b.exchange_at.store(at_ns.max(1), Ordering::Relaxed);
        true
    }

    /// A fill: the ledger moves by the signed quantity; a fill of one of our orders also
    /// releases that much of the in-flight reservation.
    pub fn apply_fill(&self, s: SymbolId, side: Side, qty: Qty, ours: bool) -> bool {
        let Some(b) = self.book(s) else { return false };
        b.ledger
            .fetch_add(side.sign() * qty.units(), Ordering::Relaxed);
        if ours {
            self.release(b, qty);
        }
        true
    }

    /// An order of ours was rejected, or its remainder expired: release `qty`.
    pub fn release_in_flight(&self, s: SymbolId, qty: Qty) -> bool {
        self.book(s).map(|b| self.release(b, qty)).is_some()
    }

    fn release(&self, b: &SymbolBook, qty: Qty) {
        // Never below zero, even if the adapter reports more than we reserved.
        let _ = b
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some((v - qty.units()).max(0))
            });
    }

    /// Apply made an order: reserve its quantity until the fill or reject comes back.
    pub fn reserve_in_flight(&self, s: SymbolId, qty: Qty) {
        if let Some(b) = self.book(s) {
            b.in_flight.fetch_add(qty.units(), Ordering::Relaxed);
        }
    }

    /// New exchange filters (from exchangeInfo).
    pub fn set_filters(&self, s: SymbolId, f: Filters) -> bool {
        let Some(b) = self.book(s) else { return false };
        store_lot(&b.lot, f.lot);
        store_lot(&b.market_lot, f.market_lot);
        b.min_notional
            .store(f.min_notional.units(), Ordering::Relaxed);
        true
    }

    /// New reconcile tolerance.
    pub fn set_tolerance(&self, s: SymbolId, tol: Qty) -> bool {
        self.book(s)
            .map(|b| b.tolerance.store(tol.units(), Ordering::Relaxed))
            .is_some()
    }
}
