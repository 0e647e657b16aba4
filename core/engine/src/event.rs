//! Every state change of the engine is an [`Event`], emitted in the order it happens.
//!
//! The same events go to three places: the `results` ring (for the Redis bridge, `quantum ctl
//! tail`, metrics), the journal, and the tests. They are designed so that replaying them in
//! order rebuilds what the engine must not lose ([`crate::recovery`]): the ledger and the
//! exchange side of the book, the dedupe set (each accepted plan with its time), orders in
//! flight with their fills, the operator's switches and the execution history the governor's
//! throttles need. Their wire form is [`crate::wire`].
//!
//! One plan, start to end:
//!
//! ```text
//! PlanAccepted ─> GovPermit ─> P33Permit ─> OrderIntent ─> PlanResult (executed)
//!      │          (as the table held them       │
//!      │           when apply finished)         └─> OrderSent ─> OrderAccepted ─> Fill* ─> OrderDone
//!      │                                              │                  ▲
//!      │                                              └─> OrderUnknown ──┴─> OrderResolved ─> ...
//!      └─> GovPermit? P33Permit? ─> PlanResult (blocked)
//! a re-delivered plan: PlanResult (duplicate), after the original's own result
//! ```
//!
//! An [`Event::OrderIntent`] is the "permits consumed" event: both permits were taken by the one
//! CAS and this order is to go out; the same record is what the adapter receives.

use quantum_ipc::codes::{ContractStatus, DoneCode, RefuseReason, UnknownReason};

use crate::book::Filters;
use crate::fixed::{Price, Qty};
use crate::governor::{GovReason, TradingState};
use crate::input::History;
use crate::orders::Report;
use crate::p33::P33Reason;
use crate::permit::P33Context;
use crate::result::PlanResult;
use crate::types::{OrderIntent, Plan, PlanId, Side, SymbolId};

/// A governor permit as issued for a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GovPermitEvent {
    /// Plan.
    pub plan: PlanId,
    /// Symbol.
    pub symbol: SymbolId,
    /// Allow or deny.
    pub allow: bool,
    /// Why it denied.
    pub reason: Option<GovReason>,
    /// When it was issued (ms since the Unix epoch).
    pub issued_at_ms: u64,
    /// Its time to live.
    pub ttl_ms: u32,
}

/// A P3.3 permit as issued for a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct P33PermitEvent {
    /// Plan.
    pub plan: PlanId,
    /// Symbol.
    pub symbol: SymbolId,
    /// Allow or deny.
    pub allow: bool,
    /// Why it denied.
    pub reason: Option<P33Reason>,
    /// The closing side when allowed.
    pub side: Option<Side>,
    /// The allowed quantity (zero when denied).
    pub safe_qty: Qty,
    /// The amounts it judged.
    pub context: P33Context,
    /// When it was issued (ms since the Unix epoch).
    pub issued_at_ms: u64,
    /// Its time to live.
    pub ttl_ms: u32,
}

/// A fill of one of our orders, applied to the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FillEvent {
    /// Plan.
    pub plan: PlanId,
    /// Symbol.
    pub symbol: SymbolId,
    /// The order's side.
    pub side: Side,
    /// Quantity filled by this fill.
    pub qty: Qty,
    /// Price (last fill's or average; zero when unknown).
    pub price: Price,
    /// Exchange order id.
    pub order_id: u64,
    /// Exchange time (ms since the Unix epoch).
    pub time_ms: u64,
    /// Filled so far, this fill included.
    pub cum_qty: Qty,
    /// The ledger after this fill.
    pub ledger_after: Qty,
}

/// The end of one of our orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DoneEvent {
    /// Plan.
    pub plan: PlanId,
    /// Symbol.
    pub symbol: SymbolId,
    /// How it ended.
    pub code: DoneCode,
    /// The adapter's reason code (for `rejected` and `unsent`), else 0.
    pub reason: u16,
    /// Filled in all.
    pub filled: Qty,
    /// Released from in flight by this end.
    pub released: Qty,
    /// The exchange's error code, 0 = none.
    pub exchange_code: i32,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
}

/// An operator switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    /// Global kill switch.
    KillSwitch(bool),
    /// A symbol's kill switch.
    SymbolKillSwitch(SymbolId, bool),
    /// Trading state.
    TradingState(TradingState),
}

/// An input record the engine refused (counted as invalid on its ring).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefusedEvent {
    /// The ring it came from (`quantum_ipc::contract` index).
    pub ring: u8,
    /// The refused record's tag.
    pub kind: u8,
    /// The symbol it named.
    pub symbol: SymbolId,
    /// The plan it named (0 when none).
    pub plan: PlanId,
    /// Why.
    pub reason: RefuseReason,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
}

/// One state change of the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// An EXECUTE plan was accepted, remembered by dedupe, and waits for its permits until
    /// `deadline_ms`.
    PlanAccepted {
        /// The plan.
        plan: Plan,
        /// When (ms since the Unix epoch).
        at_ms: u64,
        /// Apply's deadline (ms since the Unix epoch).
        deadline_ms: u64,
    },
    /// The governor's permit the plan was judged with.
    GovPermit(GovPermitEvent),
    /// P3.3's permit the plan was judged with.
    P33Permit(P33PermitEvent),
    /// Both permits consumed: this order is to go out (also offered again, marked
    /// `lookup_first`, when an adapter re-attaches with its outcome unknown).
    OrderIntent(OrderIntent),
    /// The plan's one result.
    PlanResult(PlanResult),
    /// The adapter sent the order.
    OrderSent {
        /// Plan.
        plan: PlanId,
        /// Symbol.
        symbol: SymbolId,
        /// When (ms since the Unix epoch).
        at_ms: u64,
    },
    /// The exchange accepted the order.
    OrderAccepted {
        /// Plan.
        plan: PlanId,
        /// Symbol.
        symbol: SymbolId,
        /// Exchange order id.
        order_id: u64,
        /// When (ms since the Unix epoch).
        at_ms: u64,
    },
    /// Part of the order filled.
    Fill(FillEvent),
    /// The order ended.
    OrderDone(DoneEvent),
    /// The order's outcome is not known; it stays in flight until resolved by client id.
    OrderUnknown {
        /// Plan.
        plan: PlanId,
        /// Symbol.
        symbol: SymbolId,
        /// Why.
        reason: UnknownReason,
        /// When (ms since the Unix epoch).
        at_ms: u64,
    },
    /// An order of unknown outcome was looked up: it exists (its state follows), or it was
    /// never placed.
    OrderResolved {
        /// Plan.
        plan: PlanId,
        /// Symbol.
        symbol: SymbolId,
        /// Found.
        found: bool,
        /// Exchange order id (0 when not found).
        order_id: u64,
        /// When (ms since the Unix epoch).
        at_ms: u64,
    },
    /// An operator set the ledger.
    LedgerSet {
        /// Symbol.
        symbol: SymbolId,
        /// New amount.
        amount: Qty,
        /// When (ms since the Unix epoch).
        at_ms: u64,
    },
    /// The exchange's position changed (a snapshot was applied).
    Position {
        /// Symbol.
        symbol: SymbolId,
        /// Signed amount.
        amount: Qty,
        /// Mark price.
        mark: Price,
        /// When the book changed (ms since the Unix epoch).
        time_ms: u64,
    },
    /// New exchange filters.
    Filters {
        /// Symbol.
        symbol: SymbolId,
        /// Filters.
        filters: Filters,
    },
    /// An operator switch changed.
    Switch(Switch),
    /// An input record was refused.
    Refused(RefusedEvent),
    /// A symbol started (`on`) or finished reconciling after a restart: while it reconciles
    /// its EXECUTE plans are denied `reconciling` (see [`crate::recovery`]).
    Reconciling {
        /// Symbol.
        symbol: SymbolId,
        /// Started or finished.
        on: bool,
        /// Orders on it whose outcome is not known yet.
        unknown_orders: u32,
        /// When (ms since the Unix epoch).
        at_ms: u64,
    },
    /// An order of ours that the exchange's history holds and the core did not know: its plan
    /// is remembered by dedupe from `at_ms` and the order kept as ended.
    OrderRecovered {
        /// The exchange's report of it.
        report: Report,
        /// When the core took it (ms since the Unix epoch).
        at_ms: u64,
    },
    /// The exchange's order history of a symbol was taken.
    OrderHistory(History),
    /// Failover: `symbol`'s history is complete and no order of ours on it can fill any more;
    /// it waits for its ledger from the shared ledger (an [`crate::Command::LedgerBase`]).
    LedgerWanted {
        /// Symbol.
        symbol: SymbolId,
        /// The lead's epoch.
        epoch: u64,
        /// When (ms since the Unix epoch).
        at_ms: u64,
    },
    /// An EXECUTE plan answered at admission without being accepted (duplicate, stale, dedupe
    /// full), as it arrived; its [`Event::PlanResult`] follows (for a duplicate of a plan still
    /// waiting, after the original's). With [`Event::PlanAccepted`] it puts every EXECUTE plan
    /// into the journal, for replay ([`crate::replay`]).
    PlanSeen {
        /// The plan.
        plan: Plan,
        /// When (ms since the Unix epoch).
        at_ms: u64,
    },
    /// The daemon started: it restored what the journal held before this event (see
    /// [`crate::recovery`]) and, with `history`, made every symbol wait for the exchange's
    /// order history since `since_ms` ([`crate::Engine::require_history`]); a restart before
    /// that history arrived keeps waiting for it. The first event of every start.
    Started {
        /// Every symbol waits for the exchange's order history.
        history: bool,
        /// When (ms since the Unix epoch).
        at_ms: u64,
        /// With `history`: the start of the history awaited (ms since the Unix epoch).
        since_ms: u64,
    },
    /// The account's position mode, as the exchange told it: every leg configured in the
    /// other mode is denied `position_mode_mismatch` from now on (see
    /// [`crate::book::BookView::account_gate`]).
    AccountMode {
        /// Hedge mode; false: one-way.
        hedge: bool,
        /// When (ms since the Unix epoch).
        at_ms: u64,
    },
    /// A leg's contract status on the exchange: a leg not `TRADING` is denied
    /// `symbol_not_trading`.
    SymbolStatus {
        /// Symbol (the leg).
        symbol: SymbolId,
        /// The status.
        status: ContractStatus,
        /// When (ms since the Unix epoch).
        at_ms: u64,
    },
    /// Failover: this host took the lead under `epoch`; every symbol waits for the exchange's
    /// history of our orders since `since_ms` (also the request to the exchange adapter).
    Leading {
        /// The lease's epoch.
        epoch: u64,
        /// Start of the history awaited (ms since the Unix epoch).
        since_ms: u64,
        /// When (ms since the Unix epoch).
        at_ms: u64,
    },
}

impl Event {
    /// The plan this event is about, if any.
    pub fn plan(&self) -> Option<PlanId> {
        Some(match self {
            Event::PlanAccepted { plan, .. } | Event::PlanSeen { plan, .. } => plan.id,
            Event::GovPermit(p) => p.plan,
            Event::P33Permit(p) => p.plan,
            Event::OrderIntent(i) => i.plan,
            Event::PlanResult(r) => r.plan,
            Event::OrderSent { plan, .. }
            | Event::OrderAccepted { plan, .. }
            | Event::OrderUnknown { plan, .. }
            | Event::OrderResolved { plan, .. } => *plan,
            Event::Fill(f) => f.plan,
            Event::OrderRecovered { report, .. } => report.plan,
            Event::OrderDone(d) => d.plan,
            Event::Refused(r) if r.plan.0 != 0 => r.plan,
            _ => return None,
        })
    }

    /// When the engine emitted this event (ms since the Unix epoch, on its clock), for the
    /// events that carry that time. `None` for those that carry no time (`Filters`, `Switch`)
    /// and for those whose time is another's: a fill's and an order history's are the
    /// exchange's, a permit's is when it was issued, before apply finished its plan and
    /// journaled it, and an intent offered again carries its first offer's. In journal order
    /// these times do not decrease within one run of the engine; an event without one happened
    /// at the time of the event before it (audits read the journal's time so: `quantum ctl
    /// journal state --at`, and a replay sets its clock so: [`crate::replay`]).
    pub fn at_ms(&self) -> Option<u64> {
        Some(match self {
            Event::PlanAccepted { at_ms, .. }
            | Event::OrderSent { at_ms, .. }
            | Event::OrderAccepted { at_ms, .. }
            | Event::OrderUnknown { at_ms, .. }
            | Event::OrderResolved { at_ms, .. }
            | Event::LedgerSet { at_ms, .. }
            | Event::Reconciling { at_ms, .. }
            | Event::OrderRecovered { at_ms, .. }
            | Event::LedgerWanted { at_ms, .. }
            | Event::Leading { at_ms, .. }
            | Event::PlanSeen { at_ms, .. }
            | Event::AccountMode { at_ms, .. }
            | Event::SymbolStatus { at_ms, .. }
            | Event::Started { at_ms, .. } => *at_ms,
            // An order offered again carries its first offer's time.
            Event::OrderIntent(i) if !i.lookup_first => i.at_ms,
            Event::PlanResult(r) => r.at_ms,
            Event::OrderDone(d) => d.at_ms,
            Event::Refused(r) => r.at_ms,
            // The engine's time of the snapshot it applied.
            Event::Position { time_ms, .. } => *time_ms,
            Event::OrderIntent(_)
            | Event::GovPermit(_)
            | Event::P33Permit(_)
            | Event::Fill(_)
            | Event::OrderHistory(_)
            | Event::Filters { .. }
            | Event::Switch(_) => return None,
        })
    }
}
