//! What the engine consumes: plans, commands, externally issued permits and what exchange
//! adapters report, in the order they arrive ([`Input`]). The wire form of each is
//! [`crate::wire`]'s; the engine that applies them is [`crate::engine`].

use quantum_ipc::codes::ContractStatus;
use quantum_ipc::wire::Kind;

use crate::book::Filters;
use crate::event::Switch;
use crate::fixed::{Price, Qty};
use crate::governor::GovReason;
use crate::orders::OrderInput;
use crate::p33::P33Reason;
use crate::permit::P33Context;
use crate::types::{Plan, PlanId, Side, SymbolId};

/// Operator and exchange commands, applied in order with plans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Operator ledger sync (`HSET quantum:position:<S> ledger_amount <x>`).
    SetLedger {
        /// Symbol.
        symbol: SymbolId,
        /// New ledger amount.
        amount: Qty,
    },
    /// Exchange position snapshot.
    Position {
        /// Symbol.
        symbol: SymbolId,
        /// Signed position amount.
        amount: Qty,
        /// Mark price (zero: unchanged).
        mark: Price,
    },
    /// New exchange filters.
    SetFilters {
        /// Symbol.
        symbol: SymbolId,
        /// Filters.
        filters: Filters,
    },
    /// An operator switch.
    Switch(Switch),
    /// The account's position mode, as the exchange told it (hedge: true).
    AccountMode {
        /// Hedge (dual-side) mode.
        hedge: bool,
    },
    /// A leg's contract status on the exchange.
    SymbolStatus {
        /// Symbol (the leg).
        symbol: SymbolId,
        /// The status.
        status: ContractStatus,
    },
    /// Failover: the ledger a new leader starts from (the shared ledger, answering its
    /// `LedgerWanted`).
    LedgerBase {
        /// Symbol.
        symbol: SymbolId,
        /// Ledger amount.
        amount: Qty,
        /// The lead it answers.
        epoch: u64,
    },
}

/// A permit issued outside the core (legacy governor or P3.3 via the Redis bridge).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExternalPermit {
    /// Legacy governor permit.
    Gov {
        /// Plan.
        plan: PlanId,
        /// Granted or not.
        allow: bool,
        /// Reason when denied.
        reason: Option<GovReason>,
        /// Time it has left.
        ttl_ms: u64,
    },
    /// Legacy P3.3 permit.
    P33 {
        /// Plan.
        plan: PlanId,
        /// Allowed or not.
        allow: bool,
        /// Reason when denied.
        reason: Option<P33Reason>,
        /// Safe quantity when allowed.
        safe_qty: Qty,
        /// Closing side when allowed.
        side: Option<Side>,
        /// Amounts behind the decision.
        context: P33Context,
        /// Time it has left.
        ttl_ms: u64,
    },
}

impl ExternalPermit {
    pub(crate) fn plan(&self) -> PlanId {
        match self {
            ExternalPermit::Gov { plan, .. } | ExternalPermit::P33 { plan, .. } => *plan,
        }
    }
}

/// What the engine consumes, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// A plan.
    Plan(Plan),
    /// A command.
    Command(Command),
    /// An externally issued permit.
    Permit(ExternalPermit),
    /// What an exchange adapter reports about one of our orders.
    Order(OrderInput),
    /// An exchange adapter (re)attached: every order without a final outcome is offered to it
    /// again, marked "look it up before sending anything".
    Reoffer,
    /// The exchange's order history of a symbol was all reported (each order of ours as an
    /// [`OrderInput::Report`] with source `history` before this).
    History(History),
    /// Failover: this host takes the lead under `epoch`. What the other host did while this
    /// one did not lead is known only to the exchange, so every symbol waits for its order
    /// history again ([`crate::Engine::require_history`]).
    Lead {
        /// The lease's epoch.
        epoch: u64,
    },
}

/// The account's orders of one symbol from `since_ms` through `through_ms` were all reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct History {
    /// Symbol.
    pub symbol: SymbolId,
    /// How many of our orders it held.
    pub orders: u32,
    /// Start of the history (ms since the Unix epoch).
    pub since_ms: u64,
    /// End of the history (ms since the Unix epoch).
    pub through_ms: u64,
}

impl Input {
    /// The wire kind this input arrived as (for refusals).
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Input::Plan(_) => Kind::Plan,
            Input::Command(Command::SetLedger { .. }) => Kind::LedgerSet,
            Input::Command(Command::Position { .. }) => Kind::PositionSnapshot,
            Input::Command(Command::SetFilters { .. }) => Kind::SymbolFilters,
            Input::Command(Command::Switch(_)) => Kind::Control,
            Input::Command(Command::LedgerBase { .. }) => Kind::LedgerBase,
            Input::Command(Command::AccountMode { .. }) => Kind::AccountMode,
            Input::Command(Command::SymbolStatus { .. }) => Kind::SymbolStatus,
            Input::Permit(ExternalPermit::Gov { .. }) => Kind::GovPermit,
            Input::Permit(ExternalPermit::P33 { .. }) => Kind::P33Permit,
            Input::Order(OrderInput::Sent { .. }) => Kind::OrderSent,
            Input::Order(OrderInput::Report(_)) => Kind::OrderReport,
            Input::Order(OrderInput::Failed(_)) => Kind::OrderFailed,
            Input::Reoffer => Kind::OrderIntent,
            Input::History(_) => Kind::OrderHistory,
            Input::Lead { .. } => Kind::Leading,
        }
    }
}
