//! Per-symbol book: ledger amount, the exchange's position snapshot, mark price, lot filters,
//! reconcile tolerance, and what our orders hold in flight.
//!
//! **One writer, consistent readers.** Every field of a symbol is published together through a
//! [`SeqLock`], and only the [`BookWriter`] writes them: the engine's front (commands, fills,
//! order ends, consumes), which owns it. P3.3, the governor and monitors read a [`BookView`]
//! that is always a state the book really held, never a mix of two (a reader can never see the
//! ledger from before a fill with the in-flight quantity from after it).
//!
//! **In flight** has two parts, each with one writer:
//! - `in_flight`: what the orders of consumed plans may still fill, per symbol. The front's
//!   order lifecycle ([`crate::orders`]) adds an order's quantity at consume and takes off each
//!   fill and the unfilled rest at the order's end, exactly once.
//! - `pending`: what P3.3 allowed for plans not consumed or closed yet. P3.3 counts what it
//!   allowed in its own [`Reservations`] (`reserved`, only it writes it); the front counts in
//!   the book what it took over from those allowances (`absorbed`: at consume the allowance
//!   becomes an order's `in_flight`, at a close it is dropped). `pending = reserved - absorbed`
//!   needs no shared read-modify-write, and a P3.3 that reads its own `reserved` with the book's
//!   `absorbed` from one snapshot can never count an allowance twice or lose one.
//!
//! Every quantity written here is checked: a change that would leave `±MAX_QTY` is refused and
//! the book is unchanged ([`Overflow`]).

use std::sync::Arc;

use crossbeam_utils::CachePadded;
use quantum_ipc::wire::MAX_QTY;

use crate::fixed::{Price, Qty};
use crate::seqlock::SeqLock;
use crate::sync::{AtomicI64, Ordering};
use crate::types::{Side, SymbolId};
use quantum_ipc::codes::{P33Reason, PositionSide};

/// A LOT_SIZE or MARKET_LOT_SIZE filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LotFilter {
    /// minQty.
    pub min: Qty,
    /// maxQty.
    pub max: Qty,
    /// stepSize (zero: no step).
    pub step: Qty,
}

/// What P3.3 needs to know of a symbol's exchange rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Filters {
    /// LOT_SIZE.
    pub lot: LotFilter,
    /// MARKET_LOT_SIZE (MARKET orders must satisfy it too).
    pub market_lot: LotFilter,
    /// MIN_NOTIONAL (informational: reduce-only orders are exempt on Binance).
    pub min_notional: Price,
}

/// A consistent copy of one symbol's book.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BookView {
    /// Ledger amount (signed).
    pub ledger: Qty,
    /// Exchange amount and its engine-clock time, if any snapshot arrived.
    pub exchange: Option<(Qty, u64)>,
    /// Latest mark price (zero when unknown).
    pub mark: Price,
    /// What the orders of consumed plans may still fill.
    pub in_flight: Qty,
    /// What P3.3 allowed for plans not yet consumed or closed (see the module docs).
    pub pending: Qty,
    /// Reconcile tolerance.
    pub tolerance: Qty,
    /// Exchange filters.
    pub filters: Filters,
    /// The symbol is reconciling after a start: EXECUTE plans are denied `reconciling`.
    pub reconciling: bool,
    /// The position this book entry (leg) holds: `BOTH` for a one-way symbol, `LONG` or
    /// `SHORT` for a leg of a hedge-mode one (configured, never changes).
    pub side: PositionSide,
    /// The account's position mode as the exchange last told it since the start: `Some(true)`
    /// hedge, `Some(false)` one-way, `None` not told yet.
    pub account_hedge: Option<bool>,
    /// The exchange trades the symbol (its contract status is `TRADING`, or was never said
    /// to be anything else).
    pub trading: bool,
}

impl BookView {
    /// Everything held back from new plans: `in_flight + pending`.
    pub fn committed(&self) -> Qty {
        Qty::from_units(self.in_flight.units().saturating_add(self.pending.units()))
    }

    /// The amounts a P3.3 verdict on this book is judged with (the exchange's zero when no
    /// snapshot arrived): what a deny carries, whichever check made it.
    pub fn context(&self) -> crate::permit::P33Context {
        crate::permit::P33Context {
            exchange: self.exchange.map_or(Qty::ZERO, |(q, _)| q),
            ledger: self.ledger,
            tolerance: self.tolerance,
        }
    }

    /// Whether the account lets this leg trade a plan that names `plan_side`: the one owner of
    /// the checks P3.3 makes before sizing and apply makes again at consume, so an order the
    /// exchange would refuse for the account's state is never made. In order:
    /// `symbol_not_trading`, `position_mode_unknown`, `position_mode_mismatch`, then the
    /// plan's side against the leg's (`position_side_required` for a hedge leg and a plan
    /// naming none, `position_side_mismatch` for any other difference).
    pub fn account_gate(&self, plan_side: Option<PositionSide>) -> Result<(), P33Reason> {
        account_gate(self.side, self.account_hedge, self.trading, plan_side)
    }
}

/// [`BookView::account_gate`] on the facts it reads.
fn account_gate(
    leg: PositionSide,
    account_hedge: Option<bool>,
    trading: bool,
    plan_side: Option<PositionSide>,
) -> Result<(), P33Reason> {
    if !trading {
        return Err(P33Reason::SymbolNotTrading);
    }
    match account_hedge {
        None => return Err(P33Reason::PositionModeUnknown),
        Some(hedge) if hedge != leg.is_hedge() => return Err(P33Reason::PositionModeMismatch),
        Some(_) => {}
    }
    match plan_side {
        None if leg.is_hedge() => Err(P33Reason::PositionSideRequired),
        Some(s) if s != leg => Err(P33Reason::PositionSideMismatch),
        _ => Ok(()),
    }
}

/// What an order of ours of `qty` on `side` may do to a leg at consume, beyond
/// [`BookView::account_gate`]: on a hedge leg, where the exchange takes no `reduceOnly`, it
/// must be the leg's closing side and no larger than the position the orders already in
/// flight leave (`no_position` otherwise); a one-way leg's orders are reduce-only at the
/// exchange (`exchange`, `in_flight`: units).
fn order_gate(
    leg: PositionSide,
    exchange: i64,
    in_flight: i64,
    side: Side,
    qty: Qty,
) -> Result<(), P33Reason> {
    let Some(closing) = leg.closing_side() else {
        return Ok(());
    };
    if side != closing {
        return Err(P33Reason::PositionSideMismatch);
    }
    let left = exchange.saturating_abs().saturating_sub(in_flight.max(0));
    if qty.units() > left {
        return Err(P33Reason::NoPosition);
    }
    Ok(())
}

/// A change refused because a quantity would leave `-MAX_QTY ..= MAX_QTY`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overflow;

const LEDGER: usize = 0;
const EXCHANGE: usize = 1;
/// Engine ns of the last snapshot; 0 = none yet.
const EXCHANGE_AT: usize = 2;
const MARK: usize = 3;
const IN_FLIGHT: usize = 4;
const ABSORBED: usize = 5;
const TOLERANCE: usize = 6;
const LOT: usize = 7;
const MARKET_LOT: usize = 10;
const MIN_NOTIONAL: usize = 13;
const FLAGS: usize = 14;
/// The leg's [`PositionSide`] code (configured at start).
const SIDE: usize = 15;
const WORDS: usize = 16;
const FLAG_RECONCILING: i64 = 1;
/// The account's position mode was told since the start.
const FLAG_MODE_KNOWN: i64 = 2;
/// ... and it is hedge mode.
const FLAG_ACCOUNT_HEDGE: i64 = 4;
/// The exchange said the symbol does not trade.
const FLAG_NOT_TRADING: i64 = 8;

type Words = [i64; WORDS];

fn checked(v: Option<i64>) -> Result<i64, Overflow> {
    v.filter(|v| (-MAX_QTY..=MAX_QTY).contains(v))
        .ok_or(Overflow)
}

fn put_lot(w: &mut Words, at: usize, f: LotFilter) {
    w[at] = f.min.units();
    w[at + 1] = f.max.units();
    w[at + 2] = f.step.units();
}

fn get_lot(w: &Words, at: usize) -> LotFilter {
    LotFilter {
        min: Qty::from_units(w[at]),
        max: Qty::from_units(w[at + 1]),
        step: Qty::from_units(w[at + 2]),
    }
}

fn view_of(w: &Words, reserved: i64) -> BookView {
    let at = w[EXCHANGE_AT] as u64;
    BookView {
        ledger: Qty::from_units(w[LEDGER]),
        exchange: (at != 0).then(|| (Qty::from_units(w[EXCHANGE]), at)),
        mark: Price::from_units(w[MARK]),
        in_flight: Qty::from_units(w[IN_FLIGHT]),
        pending: Qty::from_units(reserved.saturating_sub(w[ABSORBED]).max(0)),
        tolerance: Qty::from_units(w[TOLERANCE]),
        filters: Filters {
            lot: get_lot(w, LOT),
            market_lot: get_lot(w, MARKET_LOT),
            min_notional: Price::from_units(w[MIN_NOTIONAL]),
        },
        reconciling: w[FLAGS] & FLAG_RECONCILING != 0,
        side: leg_of(w),
        account_hedge: account_hedge_of(w),
        trading: trading_of(w),
    }
}

/// The leg's configured position side.
fn leg_of(w: &Words) -> PositionSide {
    PositionSide::from_code(w[SIDE] as u8).unwrap_or(PositionSide::Both)
}

/// The account's mode as told since the start (`None`: not told).
fn account_hedge_of(w: &Words) -> Option<bool> {
    (w[FLAGS] & FLAG_MODE_KNOWN != 0).then_some(w[FLAGS] & FLAG_ACCOUNT_HEDGE != 0)
}

/// Whether the exchange trades the symbol (never said otherwise).
fn trading_of(w: &Words) -> bool {
    w[FLAGS] & FLAG_NOT_TRADING == 0
}

fn set_flag(w: &mut Words, flag: i64, on: bool) {
    w[FLAGS] = if on {
        w[FLAGS] | flag
    } else {
        w[FLAGS] & !flag
    };
}

#[derive(Debug)]
struct SymbolBook {
    lock: SeqLock<WORDS>,
    /// P3.3's running total of allowances; written only through [`Reservations`].
    reserved: AtomicI64,
}

/// The book of every interned symbol, indexed by [`SymbolId`]: the readers' side.
#[derive(Debug)]
pub struct Book {
    books: Box<[CachePadded<SymbolBook>]>,
}

impl Book {
    /// A book per one-way symbol ([`PositionSide::Both`]): see [`Book::with_sides`].
    pub fn new(specs: &[(Qty, Filters)]) -> (Arc<Book>, BookWriter, Reservations) {
        let legs: Vec<_> = specs
            .iter()
            .map(|&(t, f)| (t, f, PositionSide::Both))
            .collect();
        Book::with_sides(&legs)
    }

    /// A book per leg with the given tolerance, filters and position side, no ledger amount,
    /// no exchange snapshot and the account's mode not known; the one writer and P3.3's
    /// reservations.
    pub fn with_sides(
        specs: &[(Qty, Filters, PositionSide)],
    ) -> (Arc<Book>, BookWriter, Reservations) {
        let init: Vec<Words> = specs
            .iter()
            .map(|(tol, f, side)| {
                let mut w = [0i64; WORDS];
                w[SIDE] = i64::from(side.code());
                w[TOLERANCE] = tol.units();
                put_lot(&mut w, LOT, f.lot);
                put_lot(&mut w, MARKET_LOT, f.market_lot);
                w[MIN_NOTIONAL] = f.min_notional.units();
                w
            })
            .collect();
        let books = init
            .iter()
            .map(|w| {
                CachePadded::new(SymbolBook {
                    lock: SeqLock::new(*w),
                    reserved: AtomicI64::new(0),
                })
            })
            .collect();
        let book = Arc::new(Book { books });
        let writer = BookWriter {
            book: book.clone(),
            cur: init,
        };
        let reservations = Reservations {
            book: book.clone(),
            mine: vec![0; specs.len()],
        };
        (book, writer, reservations)
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.books.len()
    }

    /// True when there are no symbols.
    pub fn is_empty(&self) -> bool {
        self.books.is_empty()
    }

    /// A consistent copy of `s`'s book, or `None` for an unknown symbol. `pending` is computed
    /// with P3.3's total as last published: exact for P3.3 itself (which uses
    /// [`Reservations::view`]), a moment old for anyone else.
    pub fn view(&self, s: SymbolId) -> Option<BookView> {
        let b = self.books.get(s.index())?;
        let w = b.lock.read();
        // Relaxed: a monitoring read of a counter only P3.3 writes.
        Some(view_of(&w, b.reserved.load(Ordering::Relaxed)))
    }

    /// The latest mark price of `s` (zero when unknown).
    pub fn mark(&self, s: SymbolId) -> Price {
        self.view(s).map_or(Price::ZERO, |v| v.mark)
    }
}

/// The only writer of a [`Book`]: the engine's front. Keeps its own copy of every symbol's
/// words, changes it, and publishes the whole symbol at once.
#[derive(Debug)]
pub struct BookWriter {
    book: Arc<Book>,
    cur: Vec<Words>,
}

impl BookWriter {
    /// The shared book.
    pub fn book(&self) -> &Arc<Book> {
        &self.book
    }

    /// The writer's own view of `s` (no synchronisation needed: it wrote it).
    pub fn view(&self, s: SymbolId) -> Option<BookView> {
        let w = self.cur.get(s.index())?;
        let reserved = self.book.books[s.index()].reserved.load(Ordering::Relaxed);
        Some(view_of(w, reserved))
    }

    /// [`BookView::account_gate`], then the order's own check (on a hedge leg: the closing
    /// side, and no more than the leg holds beyond what is in flight), of `s` as this writer
    /// holds it, for apply's consume: reads only the words they need (`None` for an unknown
    /// symbol).
    pub fn consume_gate(
        &self,
        s: SymbolId,
        plan_side: Option<PositionSide>,
        side: Side,
        qty: Qty,
    ) -> Option<Result<(), P33Reason>> {
        let w = self.cur.get(s.index())?;
        let leg = leg_of(w);
        Some(
            account_gate(leg, account_hedge_of(w), trading_of(w), plan_side)
                .and_then(|()| order_gate(leg, w[EXCHANGE], w[IN_FLIGHT], side, qty)),
        )
    }

    /// Applies `f` to `s`'s words and publishes them; nothing changes when `f` fails.
    fn change<T>(
        &mut self,
        s: SymbolId,
        f: impl FnOnce(&mut Words) -> Result<T, Overflow>,
    ) -> Option<Result<T, Overflow>> {
        let w = self.cur.get_mut(s.index())?;
        let mut next = *w;
        let r = f(&mut next);
        if r.is_ok() {
            *w = next;
            self.book.books[s.index()].lock.write(w);
        }
        Some(r)
    }

    /// Operator ledger sync. `None` for an unknown symbol.
    pub fn set_ledger(&mut self, s: SymbolId, amount: Qty) -> Option<Result<(), Overflow>> {
        self.change(s, |w| {
            w[LEDGER] = checked(Some(amount.units()))?;
            Ok(())
        })
    }

    /// A position snapshot at engine time `at_ns` (0 is bumped to 1: 0 means "never"). A zero
    /// mark keeps the last mark.
    pub fn set_exchange(
        &mut self,
        s: SymbolId,
        amount: Qty,
        mark: Price,
        at_ns: u64,
    ) -> Option<Result<(), Overflow>> {
        self.change(s, |w| {
            w[EXCHANGE] = checked(Some(amount.units()))?;
            if !mark.is_zero() {
                w[MARK] = mark.units();
            }
            w[EXCHANGE_AT] = at_ns.max(1) as i64;
            Ok(())
        })
    }

    /// A fill of one of our orders: the ledger moves by the signed quantity and the order's
    /// in-flight quantity shrinks by it. Returns the ledger after the fill.
    pub fn fill(&mut self, s: SymbolId, side: Side, qty: Qty) -> Option<Result<Qty, Overflow>> {
        self.change(s, |w| {
            let delta = qty.units().checked_mul(side.sign());
            w[LEDGER] = checked(delta.and_then(|d| w[LEDGER].checked_add(d)))?;
            w[IN_FLIGHT] = checked(w[IN_FLIGHT].checked_sub(qty.units()))?;
            Ok(Qty::from_units(w[LEDGER]))
        })
    }

    /// A fill reported after its order ended (its quantity was already released from in
    /// flight): only the ledger moves. Returns the ledger after the fill.
    pub fn late_fill(
        &mut self,
        s: SymbolId,
        side: Side,
        qty: Qty,
    ) -> Option<Result<Qty, Overflow>> {
        self.change(s, |w| {
            let delta = qty.units().checked_mul(side.sign());
            w[LEDGER] = checked(delta.and_then(|d| w[LEDGER].checked_add(d)))?;
            Ok(Qty::from_units(w[LEDGER]))
        })
    }

    /// Adds `delta` (negative: releases) to the symbol's in-flight quantity; `absorb` is the
    /// part of a P3.3 allowance this change takes over (see the module docs).
    pub fn in_flight(
        &mut self,
        s: SymbolId,
        delta: Qty,
        absorb: Qty,
    ) -> Option<Result<(), Overflow>> {
        self.change(s, |w| {
            w[IN_FLIGHT] = checked(w[IN_FLIGHT].checked_add(delta.units()))?;
            w[ABSORBED] = w[ABSORBED].checked_add(absorb.units()).ok_or(Overflow)?;
            Ok(())
        })
    }

    /// New exchange filters (from exchangeInfo).
    pub fn set_filters(&mut self, s: SymbolId, f: Filters) -> Option<Result<(), Overflow>> {
        self.change(s, |w| {
            put_lot(w, LOT, f.lot);
            put_lot(w, MARKET_LOT, f.market_lot);
            w[MIN_NOTIONAL] = f.min_notional.units();
            Ok(())
        })
    }

    /// Marks `s` reconciling or not.
    pub fn set_reconciling(&mut self, s: SymbolId, on: bool) -> Option<Result<(), Overflow>> {
        self.change(s, |w| {
            set_flag(w, FLAG_RECONCILING, on);
            Ok(())
        })
    }

    /// The account's position mode, as the exchange told it: every leg learns it.
    pub fn set_account_mode(&mut self, hedge: bool) {
        for i in 0..self.cur.len() {
            let _ = self.change(SymbolId(i as u16), |w| {
                set_flag(w, FLAG_MODE_KNOWN, true);
                set_flag(w, FLAG_ACCOUNT_HEDGE, hedge);
                Ok(())
            });
        }
    }

    /// Whether the exchange trades `s`.
    pub fn set_trading(&mut self, s: SymbolId, trading: bool) -> Option<Result<(), Overflow>> {
        self.change(s, |w| {
            set_flag(w, FLAG_NOT_TRADING, !trading);
            Ok(())
        })
    }
}

/// P3.3's running total of allowances per symbol. One owner: the P3.3 stage.
#[derive(Debug)]
pub struct Reservations {
    book: Arc<Book>,
    mine: Vec<i64>,
}

impl Reservations {
    /// The book these reservations belong to.
    pub fn book(&self) -> &Arc<Book> {
        &self.book
    }

    /// A consistent view of `s` whose `pending` is exact: this stage's own total minus the
    /// front's absorbed total from the same snapshot.
    pub fn view(&self, s: SymbolId) -> Option<BookView> {
        let b = self.book.books.get(s.index())?;
        let w = b.lock.read();
        Some(view_of(&w, self.mine[s.index()]))
    }

    /// Counts an allowance of `qty` on `s` that was issued into the table.
    pub fn reserve(&mut self, s: SymbolId, qty: Qty) {
        if let Some(m) = self.mine.get_mut(s.index()) {
            *m = m.saturating_add(qty.units());
            // Relaxed: monitors read it for display; P3.3 itself uses `mine`.
            self.book.books[s.index()]
                .reserved
                .store(*m, Ordering::Relaxed);
        }
    }
}
