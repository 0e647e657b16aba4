//! Orders in flight: the one owner of what happens to a consumed plan's order.
//!
//! ```text
//!            open (consume)
//!                 │
//!              Intent ──sent──> Sent ──report──> Accepted ──report (fills)──> done
//!                 │               │                 │
//!                 │            failed:unknown       │
//!                 │               ▼                 │
//!                 └──────────> Unknown ──report (found)──> Accepted / done
//!                                 │
//!                                 └──failed:not_found──> Intent (the adapter may send now)
//! any state ──failed:rejected / unsent, or a final report──> done (released exactly once)
//! ```
//!
//! Each order remembers its quantity and what has filled, so every path releases exactly the
//! part that will never fill, once: a fill releases its own quantity, the end releases the rest,
//! and an order that has ended is gone, so a second report of its end finds nothing (a late
//! report of more fill than was booked is booked too: see `late`). Reports are
//! cumulative (`cum_qty`), so the order answer and the user data stream may both report the same
//! fills: only the increase moves the ledger. The per-symbol in-flight figure in the [`Book`]
//! is changed only here (and at consume, by [`Orders::open`]), so it is always the sum over the
//! orders of what they may still fill.
//!
//! Nothing here allocates: the orders live in fixed-capacity maps.

use quantum_ipc::codes::{
    DoneCode, FailKind, OrderStatus, RefuseReason, ReportSource, UnknownReason,
};

use crate::book::BookWriter;
use crate::event::{DoneEvent, Event, FillEvent};
use crate::fixed::{Price, Qty};
use crate::idmap::{IdMap, IdSlab};
use crate::types::{OrderIntent, PlanId, Side, StageMarks, SymbolId};
use quantum_ipc::bigmem::BigSlice;

/// Where an order stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OrderState {
    /// Consumed; not reported sent (or found never placed, and may be sent).
    #[default]
    Intent,
    /// The adapter sent it.
    Sent,
    /// The exchange has it.
    Accepted,
    /// Sent, outcome not known until a lookup by client id resolves it.
    Unknown,
}

/// One order in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Order {
    /// Symbol.
    pub symbol: SymbolId,
    /// Side.
    pub side: Side,
    /// Quantity of the intent.
    pub qty: Qty,
    /// Filled so far (`0 ..= qty`).
    pub filled: Qty,
    /// State.
    pub state: OrderState,
    /// Exchange order id, 0 until known.
    pub order_id: u64,
    /// The intent as made at consume (re-offered from it).
    pub intent: OrderIntent,
}

impl Default for Order {
    fn default() -> Self {
        Order {
            symbol: SymbolId(0),
            side: Side::Sell,
            qty: Qty::ZERO,
            filled: Qty::ZERO,
            state: OrderState::Intent,
            order_id: 0,
            intent: OrderIntent {
                plan: PlanId(0),
                symbol: SymbolId(0),
                side: Side::Sell,
                qty: Qty::ZERO,
                reduce_only: true,
                t_in_ns: 0,
                t_out_ns: 0,
                at_ms: 0,
                lookup_first: false,
                marks: StageMarks::default(),
            },
        }
    }
}

impl OrderState {
    /// Its name as operators read it: `intent`, `sent`, `accepted`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Intent => "intent",
            OrderState::Sent => "sent",
            OrderState::Accepted => "accepted",
            OrderState::Unknown => "unknown",
        }
    }
}

impl Order {
    /// What it may still fill.
    pub fn remaining(&self) -> Qty {
        Qty::from_units(self.qty.units() - self.filled.units())
    }
}

/// The map of orders is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrdersFull;

/// What the exchange says of an order (an adapter's report; cumulative).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    /// Plan (from the client order id).
    pub plan: PlanId,
    /// Symbol.
    pub symbol: SymbolId,
    /// Side.
    pub side: Side,
    /// The exchange's status.
    pub status: OrderStatus,
    /// Filled so far.
    pub cum_qty: Qty,
    /// Last fill price or average; zero when none.
    pub price: Price,
    /// Exchange order id.
    pub order_id: u64,
    /// Exchange time (ms since the Unix epoch).
    pub time_ms: u64,
    /// The order's quantity at the exchange.
    pub orig_qty: Qty,
    /// Where the report comes from.
    pub source: ReportSource,
}

/// An adapter could not place an order, or cannot tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Plan.
    pub plan: PlanId,
    /// Symbol.
    pub symbol: SymbolId,
    /// What happened.
    pub kind: FailKind,
    /// The reason's code (see [`FailKind`]).
    pub reason: u16,
    /// The exchange's code, 0 = none.
    pub exchange_code: i32,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
}

/// What an exchange adapter reports about one of our orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderInput {
    /// It sent the order at `at_ms`.
    Sent {
        /// Plan.
        plan: PlanId,
        /// Symbol.
        symbol: SymbolId,
        /// When (ms since the Unix epoch).
        at_ms: u64,
    },
    /// The exchange's view of the order.
    Report(Report),
    /// It could not place it, or cannot tell.
    Failed(Failure),
}

impl OrderInput {
    /// The plan named.
    pub fn plan(&self) -> PlanId {
        match self {
            OrderInput::Sent { plan, .. } => *plan,
            OrderInput::Report(r) => r.plan,
            OrderInput::Failed(f) => f.plan,
        }
    }

    /// The symbol named.
    pub fn symbol(&self) -> SymbolId {
        match self {
            OrderInput::Sent { symbol, .. } => *symbol,
            OrderInput::Report(r) => r.symbol,
            OrderInput::Failed(f) => f.symbol,
        }
    }

    /// Whether this ends the order it names: a report of a final status (nothing more fills),
    /// or a failure proving nothing was placed (rejected, unsent). [`Orders::apply`] ends an
    /// order exactly on these; adapters ask here too rather than keep a list of their own.
    pub fn ends_order(&self) -> bool {
        match self {
            OrderInput::Sent { .. } => false,
            OrderInput::Report(r) => r.status.is_final(),
            OrderInput::Failed(f) => f.ends_order(),
        }
    }
}

impl Failure {
    /// Whether this failure ends the order: rejected or unsent (nothing placed). Unknown and
    /// not-found leave it in flight, to be looked up or sent again.
    pub fn ends_order(&self) -> bool {
        matches!(self.kind, FailKind::Rejected | FailKind::Unsent)
    }
}

/// What is kept of an order after it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndedOrder {
    /// Symbol.
    pub symbol: SymbolId,
    /// Side.
    pub side: Side,
    /// Quantity of the intent.
    pub qty: Qty,
    /// Filled when it ended (and by late reports since).
    pub filled: Qty,
    /// It ended unfilled as rejected or unsent: a later try of the same client id may still
    /// have reached the exchange, so a late report of fills is booked. An order that ended on
    /// the exchange's own final status (filled, expired, canceled) fills no more.
    pub may_fill_late: bool,
}

impl EndedOrder {
    /// What is kept of an order that ended with `code` having filled `filled`.
    pub fn new(symbol: SymbolId, side: Side, qty: Qty, filled: Qty, code: DoneCode) -> Self {
        EndedOrder {
            symbol,
            side,
            qty,
            filled,
            may_fill_late: filled.is_zero()
                && matches!(code, DoneCode::Rejected | DoneCode::Unsent),
        }
    }
}

impl EndedOrder {
    /// What is kept of an order of ours that the exchange's history reported and the core did
    /// not know: what it filled by then counts as booked (see the engine's recovery of
    /// orders), so only a later report of more fill moves the ledger, and only while it may
    /// still fill (its status is not final).
    pub fn recovered(r: &Report) -> Self {
        EndedOrder {
            symbol: r.symbol,
            side: r.side,
            qty: r.orig_qty.max(r.cum_qty),
            filled: r.cum_qty,
            may_fill_late: !r.status.is_final(),
        }
    }
}

impl Default for EndedOrder {
    fn default() -> Self {
        EndedOrder::new(
            SymbolId(0),
            Side::Sell,
            Qty::ZERO,
            Qty::ZERO,
            DoneCode::Filled,
        )
    }
}

/// The last orders that ended, so a report that arrives after the end (the order answer and
/// the user stream both report a fill; a lookup finds an order already booked) is recognised
/// as late: it changes nothing, unless the order ended unfilled as rejected or unsent and the
/// report shows fills (a retry reached the exchange): those are booked (a fill is never
/// dropped).
#[derive(Debug)]
struct Ended {
    /// Plan id → its place in `ring`.
    index: IdMap<u32>,
    /// Orders in the order they ended; `len` of them from `head`, wrapping. A new one is
    /// written where the oldest was, so pushing touches the ring in sequence.
    ring: BigSlice<(u64, EndedOrder)>,
    head: usize,
    len: usize,
}

impl Ended {
    fn new(capacity: usize) -> Ended {
        let capacity = capacity.clamp(1, u32::MAX as usize);
        Ended {
            index: IdMap::with_max_len(capacity),
            ring: BigSlice::new(capacity, (0, EndedOrder::default())),
            head: 0,
            len: 0,
        }
    }

    fn get(&self, plan: u64) -> Option<EndedOrder> {
        self.index.get(plan).map(|i| self.ring[i as usize].1)
    }

    /// Remembers `plan`, forgetting the oldest when full.
    fn push(&mut self, plan: u64, o: EndedOrder) {
        if let Some(i) = self.index.get(plan) {
            self.ring[i as usize].1 = o;
            return;
        }
        if self.len == self.ring.len() {
            self.index.remove(self.ring[self.head].0);
            self.head = (self.head + 1) % self.ring.len();
            self.len -= 1;
        }
        let tail = (self.head + self.len) % self.ring.len();
        self.ring[tail] = (plan, o);
        // Cannot fail: the index holds the ring's ids, and the ring had room.
        let _ = self.index.insert(plan, tail as u32);
        self.len += 1;
        if self.len == self.ring.len() {
            // The next push forgets the oldest: its bucket starts loading now.
            self.index.prefetch(self.ring[self.head].0);
        }
    }
}

/// Every order of ours not yet ended, by plan id.
#[derive(Debug)]
pub struct Orders {
    map: IdSlab<Order>,
    ended: Ended,
}

impl Orders {
    /// Room for `capacity` orders in flight (and as many recently ended ones remembered).
    pub fn new(capacity: usize) -> Orders {
        Orders {
            map: IdSlab::with_max_len(capacity),
            ended: Ended::new(capacity),
        }
    }

    /// Starts loading the buckets an order of `plan` will use: where it is opened, and where
    /// it is remembered once it ended. Plan ids are random, so each is a random line of its
    /// table; the engine calls this as a plan arrives, so the lines come while it decides.
    #[inline]
    pub fn prefetch(&self, plan: PlanId) {
        self.map.prefetch(plan.0);
        self.ended.index.prefetch(plan.0);
    }

    /// Whether `plan` has an order in flight or one that ended recently.
    pub fn knows(&self, plan: PlanId) -> bool {
        self.map.get(plan.0).is_some() || self.ended.get(plan.0).is_some()
    }

    /// Keeps an order the exchange's history reported as ended (see [`EndedOrder::recovered`]).
    pub fn recovered(&mut self, plan: PlanId, o: EndedOrder) {
        self.ended.push(plan.0, o);
    }

    /// The quantity of `plan`'s order when it has one that may have executed: in flight, or
    /// ended having filled (an order that ended unfilled made nothing).
    pub fn ordered_qty(&self, plan: PlanId) -> Option<Qty> {
        if let Some(o) = self.map.get(plan.0) {
            return Some(o.qty);
        }
        self.ended
            .get(plan.0)
            .filter(|e| !e.filled.is_zero())
            .map(|e| e.qty)
    }

    /// Whether `plan`'s order ended recently (a report about it now is late, not unknown).
    pub fn ended_recently(&self, plan: PlanId) -> bool {
        self.ended.get(plan.0).is_some()
    }

    /// Orders in flight.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when none is in flight.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// True when another order cannot be tracked.
    pub fn is_full(&self) -> bool {
        self.map.len() >= self.map.max_len()
    }

    /// The order of `plan`.
    pub fn get(&self, plan: PlanId) -> Option<Order> {
        self.map.get(plan.0)
    }

    /// Every order in flight (no particular order).
    pub fn iter(&self) -> impl Iterator<Item = Order> + '_ {
        self.map.iter().map(|(_, o)| o)
    }

    /// Whether `symbol` has an order whose outcome is not known.
    pub fn unknown_on(&self, symbol: SymbolId) -> bool {
        self.iter()
            .any(|o| o.symbol == symbol && o.state == OrderState::Unknown)
    }

    /// Starts tracking the order of a consumed plan and holds its quantity in flight; `absorb`
    /// is the part of a P3.3 allowance this takes over (see [`crate::book`]).
    pub fn open(
        &mut self,
        intent: &OrderIntent,
        absorb: Qty,
        book: &mut BookWriter,
    ) -> Result<(), OrdersFull> {
        if self.is_full() || self.map.contains(intent.plan.0) {
            return Err(OrdersFull);
        }
        match book.in_flight(intent.symbol, intent.qty, absorb) {
            Some(Ok(())) => {}
            _ => return Err(OrdersFull),
        }
        let o = Order {
            symbol: intent.symbol,
            side: intent.side,
            qty: intent.qty,
            filled: Qty::ZERO,
            state: OrderState::Intent,
            order_id: 0,
            // Re-offered from it after a restart or a re-attach.
            intent: intent.kept(),
        };
        self.map.insert(intent.plan.0, o).map_err(|_| OrdersFull)?;
        Ok(())
    }

    /// Puts back an order from the journal (recovery), holding its remaining quantity.
    pub fn restore(&mut self, o: Order, book: &mut BookWriter) -> Result<(), OrdersFull> {
        if self.is_full() {
            return Err(OrdersFull);
        }
        if !matches!(
            book.in_flight(o.symbol, o.remaining(), Qty::ZERO),
            Some(Ok(()))
        ) {
            return Err(OrdersFull);
        }
        self.map
            .insert(o.intent.plan.0, o)
            .map_err(|_| OrdersFull)?;
        Ok(())
    }

    /// Puts back the orders that ended lately, oldest first (recovery).
    pub fn restore_ended(&mut self, ended: impl IntoIterator<Item = (u64, EndedOrder)>) {
        for (p, o) in ended {
            self.ended.push(p, o);
        }
    }

    /// Orders on `symbol` whose outcome is not known.
    pub fn unknown_count(&self, symbol: SymbolId) -> u32 {
        self.iter()
            .filter(|o| o.symbol == symbol && o.state == OrderState::Unknown)
            .count() as u32
    }

    /// Applies what an adapter reports, emitting the events it causes. A report about an order
    /// that ended recently changes nothing and is not refused (it is late); one about an order
    /// not known at all, one that contradicts the order, and one that would overflow the
    /// ledger are refused, changing nothing.
    pub fn apply(
        &mut self,
        input: &OrderInput,
        now_ms: u64,
        book: &mut BookWriter,
        out: &mut impl FnMut(Event),
    ) -> Result<(), RefuseReason> {
        let plan = input.plan();
        let Some(mut o) = self.map.get(plan.0) else {
            if let Some(e) = self.ended.get(plan.0) {
                return self.late(plan, e, input, book, out);
            }
            return Err(RefuseReason::UnknownOrder);
        };
        if o.symbol != input.symbol() {
            return Err(RefuseReason::Mismatch);
        }
        match *input {
            OrderInput::Sent { symbol, at_ms, .. } => {
                if matches!(o.state, OrderState::Intent | OrderState::Unknown) {
                    o.state = OrderState::Sent;
                    self.put(plan, o);
                    out(Event::OrderSent {
                        plan,
                        symbol,
                        at_ms,
                    });
                }
                Ok(())
            }
            OrderInput::Report(r) => self.report(o, &r, now_ms, book, out),
            OrderInput::Failed(f) => self.failed(o, &f, book, out),
        }
    }

    /// A report about an order that already ended: nothing, unless it says more was filled
    /// than was booked (e.g. the order ended as rejected on one report while a retry of the
    /// same client id filled): that part moves the ledger now. It was released from in
    /// flight when the order ended, so only the ledger moves.
    fn late(
        &mut self,
        plan: PlanId,
        mut e: EndedOrder,
        input: &OrderInput,
        book: &mut BookWriter,
        out: &mut impl FnMut(Event),
    ) -> Result<(), RefuseReason> {
        let OrderInput::Report(r) = input else {
            return Ok(());
        };
        if r.symbol != e.symbol || r.side != e.side {
            return Err(RefuseReason::Mismatch);
        }
        let cum = r.cum_qty.min(e.qty);
        if !e.may_fill_late || cum <= e.filled {
            return Ok(());
        }
        let delta = Qty::from_units(cum.units() - e.filled.units());
        let ledger_after = match book.late_fill(e.symbol, e.side, delta) {
            Some(Ok(l)) => l,
            Some(Err(_)) => return Err(RefuseReason::Overflow),
            None => return Err(RefuseReason::UnknownSymbol),
        };
        e.filled = cum;
        self.ended.push(plan.0, e);
        out(Event::Fill(FillEvent {
            plan,
            symbol: e.symbol,
            side: e.side,
            qty: delta,
            price: r.price,
            order_id: r.order_id,
            time_ms: r.time_ms,
            cum_qty: cum,
            ledger_after,
        }));
        Ok(())
    }

    fn put(&mut self, plan: PlanId, o: Order) {
        // Replaces an existing entry: never fails.
        let _ = self.map.insert(plan.0, o);
    }

    fn report(
        &mut self,
        mut o: Order,
        r: &Report,
        now_ms: u64,
        book: &mut BookWriter,
        out: &mut impl FnMut(Event),
    ) -> Result<(), RefuseReason> {
        if r.side != o.side {
            return Err(RefuseReason::Mismatch);
        }
        // The exchange never fills more than the order it holds, which is at most the intent
        // (the adapter may round down onto the step grid): anything beyond is not ours to book.
        let cum = r.cum_qty.min(o.qty);
        let delta = Qty::from_units((cum.units() - o.filled.units()).max(0));
        let ledger_after = if delta.units() > 0 {
            match book.fill(o.symbol, o.side, delta) {
                Some(Ok(l)) => Some(l),
                Some(Err(_)) => return Err(RefuseReason::Overflow),
                None => return Err(RefuseReason::UnknownSymbol),
            }
        } else {
            None
        };
        let plan = r.plan;
        if o.state == OrderState::Unknown {
            out(Event::OrderResolved {
                plan,
                symbol: o.symbol,
                found: true,
                order_id: r.order_id,
                at_ms: now_ms,
            });
        }
        if o.state != OrderState::Accepted && r.status != OrderStatus::Rejected {
            o.state = OrderState::Accepted;
            o.order_id = r.order_id;
            out(Event::OrderAccepted {
                plan,
                symbol: o.symbol,
                order_id: r.order_id,
                at_ms: now_ms,
            });
        }
        if let Some(ledger_after) = ledger_after {
            o.filled = cum;
            out(Event::Fill(FillEvent {
                plan,
                symbol: o.symbol,
                side: o.side,
                qty: delta,
                price: r.price,
                order_id: r.order_id,
                time_ms: r.time_ms,
                cum_qty: cum,
                ledger_after,
            }));
        }
        if OrderInput::Report(*r).ends_order() {
            let code = match r.status {
                OrderStatus::Filled => DoneCode::Filled,
                OrderStatus::Rejected => DoneCode::Rejected,
                _ => DoneCode::RemainderExpired,
            };
            self.end(o, code, 0, 0, now_ms, book, out);
        } else {
            self.put(plan, o);
        }
        Ok(())
    }

    fn failed(
        &mut self,
        mut o: Order,
        f: &Failure,
        book: &mut BookWriter,
        out: &mut impl FnMut(Event),
    ) -> Result<(), RefuseReason> {
        let plan = f.plan;
        match f.kind {
            FailKind::Rejected => self.end(
                o,
                DoneCode::Rejected,
                f.reason,
                f.exchange_code,
                f.at_ms,
                book,
                out,
            ),
            FailKind::Unsent => self.end(
                o,
                DoneCode::Unsent,
                f.reason,
                f.exchange_code,
                f.at_ms,
                book,
                out,
            ),
            FailKind::Unknown => {
                if o.state != OrderState::Unknown {
                    o.state = OrderState::Unknown;
                    self.put(plan, o);
                    out(Event::OrderUnknown {
                        plan,
                        symbol: o.symbol,
                        reason: UnknownReason::from_code(f.reason)
                            .unwrap_or(UnknownReason::Timeout),
                        at_ms: f.at_ms,
                    });
                }
            }
            FailKind::NotFound => {
                // The exchange has had the order, or filled part of it: "not found" then is a
                // purged record, not a never-placed order; sending again would be a second one.
                if o.state == OrderState::Accepted || o.filled.units() > 0 {
                    return Err(RefuseReason::Mismatch);
                }
                o.state = OrderState::Intent;
                self.put(plan, o);
                out(Event::OrderResolved {
                    plan,
                    symbol: o.symbol,
                    found: false,
                    order_id: 0,
                    at_ms: f.at_ms,
                });
            }
        }
        Ok(())
    }

    /// Ends `o`: releases what it will never fill and forgets it.
    #[allow(clippy::too_many_arguments)]
    fn end(
        &mut self,
        o: Order,
        code: DoneCode,
        reason: u16,
        exchange_code: i32,
        at_ms: u64,
        book: &mut BookWriter,
        out: &mut impl FnMut(Event),
    ) {
        let released = o.remaining();
        // Cannot overflow: `released` is part of what `open` added to this symbol.
        let _ = book.in_flight(o.symbol, Qty::from_units(-released.units()), Qty::ZERO);
        self.map.remove(o.intent.plan.0);
        self.ended.push(
            o.intent.plan.0,
            EndedOrder::new(o.symbol, o.side, o.qty, o.filled, code),
        );
        out(Event::OrderDone(DoneEvent {
            plan: o.intent.plan,
            symbol: o.symbol,
            code,
            reason,
            filled: o.filled,
            released,
            exchange_code,
            at_ms,
        }));
    }

    /// Marks the orders whose state matches `which` unknown for `reason`, emitting
    /// `OrderUnknown` for each (restarts and re-attaches; allocates, off the hot path).
    pub fn mark_unknown(
        &mut self,
        which: impl Fn(OrderState) -> bool,
        reason: UnknownReason,
        at_ms: u64,
        out: &mut impl FnMut(Event),
    ) {
        let hits: Vec<(u64, Order)> = self.map.iter().filter(|(_, o)| which(o.state)).collect();
        for (plan, mut o) in hits {
            o.state = OrderState::Unknown;
            let _ = self.map.insert(plan, o);
            out(Event::OrderUnknown {
                plan: PlanId(plan),
                symbol: o.symbol,
                reason,
                at_ms,
            });
        }
    }
}
