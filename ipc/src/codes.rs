//! Every code that crosses a process boundary, with its wire number and its text.
//!
//! One owner: the daemon, the bridges, `quantum ctl` and the core import these; none defines its
//! own copy. A code's number is what the wire records carry (`0` always means "none", so an
//! `Option<Code>` field needs no extra byte); its text is what logs, counters, the legacy Redis
//! JSON and operators see. Numbers and texts are stable: a new code gets a new number.
//!
//! | code | carried in | meaning |
//! |---|---|---|
//! | [`Decision`], [`Action`] | `Plan`, `PlanAccepted`, `PlanResult` | the exit brain's plan |
//! | [`Side`], [`OrderType`] | `OrderIntent`, `Fill`, `OrderReport`, `P33Permit` | orders |
//! | [`GovReason`], [`P33Reason`] | `GovPermit`, `P33Permit`, `PlanResult::detail` | why a permit denied |
//! | [`ResultError`] | `PlanResult::error` | why a plan was not executed (legacy `error`) |
//! | [`ControlCommand`], [`TradingState`] | `Control` | operator switches |
//! | [`OrderStatus`], [`ReportSource`] | `OrderReport` | what the exchange says of one of our orders |
//! | [`FailKind`], [`UnknownReason`], [`UnsentReason`] | `OrderFailed` | an order the adapter could not place or cannot tell |
//! | [`DoneCode`] | `OrderDone` | how an order of ours ended |
//! | [`RefuseReason`] | `InputRefused` | why the core refused an input record |
//! | [`PositionSide`] | `Plan::flags`, the symbol directory | which position a plan closes |
//! | [`ContractStatus`] | `SymbolStatus` | whether the exchange trades a symbol |

use crate::wire::field::wire_enum;

wire_enum! {
    /// What the exit brain decided for a plan. Only `EXECUTE` reaches the permit chain.
    Decision: u8 {
        /// Act on the plan now.
        Execute = 1 => "EXECUTE",
        /// Keep the position.
        Hold = 2 => "HOLD",
        /// Advisory reduce signal; published as not executed, as in the legacy system.
        Reduce = 3 => "REDUCE",
        /// Nothing to do.
        Skip = 4 => "SKIP",
    }
}

wire_enum! {
    /// What an EXECUTE plan does to the position.
    Action: u8 {
        /// Close 25 % of the position.
        Partial25 = 1 => "PARTIAL_25",
        /// Close 50 %.
        Partial50 = 2 => "PARTIAL_50",
        /// Close 75 %.
        Partial75 = 3 => "PARTIAL_75",
        /// Close all of it.
        FullClose = 4 => "FULL_CLOSE",
        /// No order (e.g. a HOLD plan's action).
        None = 5 => "NONE",
    }
}

impl Action {
    /// The fraction of the position this action closes, in percent.
    pub const fn percent(self) -> u32 {
        match self {
            Action::Partial25 => 25,
            Action::Partial50 => 50,
            Action::Partial75 => 75,
            Action::FullClose => 100,
            Action::None => 0,
        }
    }
}

wire_enum! {
    /// Order side, in Binance's spelling.
    Side: u8 {
        /// Buy (closes a short).
        Buy = 1 => "BUY",
        /// Sell (closes a long).
        Sell = 2 => "SELL",
    }
}

impl Side {
    /// `+1` for buy, `-1` for sell: the sign a fill of this side adds to a position.
    pub const fn sign(self) -> i64 {
        match self {
            Side::Buy => 1,
            Side::Sell => -1,
        }
    }

    /// The side that reduces a position of this signed amount; `None` when flat.
    pub const fn closing(amount: i64) -> Option<Side> {
        if amount > 0 {
            Some(Side::Sell)
        } else if amount < 0 {
            Some(Side::Buy)
        } else {
            None
        }
    }
}

wire_enum! {
    /// Order type.
    OrderType: u8 {
        /// Market order.
        Market = 1 => "MARKET",
    }
}

wire_enum! {
    /// Why the governor denied. Carried in governor permits and in `PlanResult::detail`.
    GovReason: u16 {
        /// Global kill switch on.
        KillSwitch = 1 => "kill_switch",
        /// The symbol's kill switch on.
        SymbolKillSwitch = 2 => "symbol_kill_switch",
        /// Trading state HALTED.
        TradingHalted = 3 => "trading_halted",
        /// Trading state REDUCING and the plan opens exposure.
        TradingReducing = 4 => "trading_reducing",
        /// Too many executions on the symbol within the window.
        RateLimited = 5 => "rate_limited",
        /// The symbol executed too recently.
        Cooldown = 6 => "cooldown",
        /// The order's notional is over the cap.
        MaxNotionalOrder = 7 => "max_notional_order",
        /// The day's notional would go over the cap.
        MaxNotionalDay = 8 => "max_notional_day",
        /// Kill score under the minimum.
        KillScoreBelowMin = 9 => "kill_score_below_min",
        /// Symbol not configured.
        UnknownSymbol = 10 => "unknown_symbol",
        /// An opening plan's notional cannot be computed: no mark price yet.
        NoMarkPrice = 11 => "no_mark_price",
        /// A legacy governor denied without a reason we know.
        Denied = 12 => "denied",
    }
}

wire_enum! {
    /// Why P3.3 denied. Carried in P3.3 permits and in `PlanResult::detail`.
    P33Reason: u16 {
        /// `|exchange - ledger| > tolerance`.
        ReconcileRequiredQtyMismatch = 1 => "reconcile_required_qty_mismatch",
        /// No exchange snapshot, or too old.
        ExchangeStateStale = 2 => "exchange_state_stale",
        /// Nothing to reduce.
        NoPosition = 3 => "no_position",
        /// The sized quantity is below the minimum.
        SafeQtyBelowMin = 4 => "safe_qty_below_min",
        /// Symbol not configured.
        UnknownSymbol = 5 => "unknown_symbol",
        /// A legacy P3.3 denied with a reason we do not know.
        Denied = 6 => "denied",
        /// The symbol is reconciling after a start: orders of unknown outcome are being
        /// resolved, or no fresh exchange position has arrived yet.
        Reconciling = 7 => "reconciling",
        /// The symbol is configured in hedge mode and the plan names no `position_side`.
        PositionSideRequired = 8 => "position_side_required",
        /// The plan's `position_side` is not one the symbol is configured with (a `LONG` or
        /// `SHORT` plan on a one-way symbol, or `BOTH` on a hedge-mode one).
        PositionSideMismatch = 9 => "position_side_mismatch",
        /// The exchange bridge has not told the account's position mode since the core
        /// started: an order could be refused by the exchange, so none is made.
        PositionModeUnknown = 10 => "position_mode_unknown",
        /// The account's position mode is not the one the symbol is configured with.
        PositionModeMismatch = 11 => "position_mode_mismatch",
        /// The exchange does not trade the symbol now (its contract status is not `TRADING`).
        SymbolNotTrading = 12 => "symbol_not_trading",
    }
}

wire_enum! {
    /// The position a leg of a symbol holds, in Binance's spelling (`positionSide`): `BOTH` in
    /// one-way mode, `LONG` or `SHORT` in hedge (dual-side) mode. In a `Plan`'s flags it is
    /// the side the plan names; each of the core's symbol ids is one leg.
    PositionSide: u8 {
        /// One-way mode: the symbol's one net position.
        Both = 1 => "BOTH",
        /// Hedge mode: the long position.
        Long = 2 => "LONG",
        /// Hedge mode: the short position.
        Short = 3 => "SHORT",
    }
}

impl PositionSide {
    /// Whether this side exists in hedge mode (`LONG`, `SHORT`) rather than one-way (`BOTH`).
    pub const fn is_hedge(self) -> bool {
        !matches!(self, PositionSide::Both)
    }

    /// The label of `symbol`'s leg on this side, as the symbol directory, the journal's
    /// symbols file, `ctl stats` and the metrics name it: `BTCUSDT` for `BOTH`,
    /// `BTCUSDT:LONG` and `BTCUSDT:SHORT` for the legs of a hedge-mode symbol.
    pub fn label(self, symbol: &str) -> String {
        match self {
            PositionSide::Both => symbol.to_owned(),
            s => format!("{symbol}:{}", s.as_str()),
        }
    }

    /// The exchange symbol and side a [`PositionSide::label`] names (a label without a known
    /// `:SIDE` suffix is a `BOTH` leg).
    pub fn split_label(label: &str) -> (&str, PositionSide) {
        if let Some((symbol, side)) = label.rsplit_once(':') {
            match PositionSide::parse(side) {
                Some(s) if s.is_hedge() => return (symbol, s),
                _ => {}
            }
        }
        (label, PositionSide::Both)
    }

    /// The symbol id of `symbol`'s leg on exactly `side`, in a directory of `(id, label)`.
    pub fn leg_id<'a>(
        directory: impl IntoIterator<Item = (u16, &'a str)>,
        symbol: &str,
        side: PositionSide,
    ) -> Option<u16> {
        directory
            .into_iter()
            .find(|(_, label)| PositionSide::split_label(label) == (symbol, side))
            .map(|(id, _)| id)
    }

    /// The symbol id a plan for `symbol` that names `side` (or none) goes to, in a directory
    /// of `(id, label)`: its leg on that side (`BOTH` when none is named); when the symbol
    /// has no such leg, its first leg, where the core denies the plan with the reason
    /// (`position_side_required`, `position_side_mismatch`) rather than the bridge losing
    /// it; `None` when the symbol is not in the directory at all.
    pub fn plan_leg<'a>(
        directory: impl IntoIterator<Item = (u16, &'a str)> + Clone,
        symbol: &str,
        side: Option<PositionSide>,
    ) -> Option<u16> {
        let want = side.unwrap_or(PositionSide::Both);
        PositionSide::leg_id(directory.clone(), symbol, want).or_else(|| {
            directory
                .into_iter()
                .find(|(_, label)| PositionSide::split_label(label).0 == symbol)
                .map(|(id, _)| id)
        })
    }

    /// A `position_side` as legacy producers may write it: Binance's names in any case, with
    /// spaces around; an empty text names none.
    pub fn parse_liberal(text: &str) -> Result<Option<PositionSide>, String> {
        let t = text.trim();
        if t.is_empty() {
            return Ok(None);
        }
        PositionSide::parse(&t.to_ascii_uppercase())
            .map(Some)
            .ok_or_else(|| format!("position_side {t:?} is not LONG, SHORT or BOTH"))
    }

    /// The order side that closes (reduces) this leg's position; `None` for `BOTH`, where it
    /// depends on the position's sign ([`Side::closing`]).
    pub const fn closing_side(self) -> Option<Side> {
        match self {
            PositionSide::Both => None,
            PositionSide::Long => Some(Side::Sell),
            PositionSide::Short => Some(Side::Buy),
        }
    }
}

wire_enum! {
    /// A symbol's contract status in Binance's `exchangeInfo` (and its contract info stream).
    /// Only `TRADING` trades.
    ContractStatus: u8 {
        /// Listed, not trading yet.
        PendingTrading = 1 => "PENDING_TRADING",
        /// Trading.
        Trading = 2 => "TRADING",
        /// About to deliver.
        PreDelivering = 3 => "PRE_DELIVERING",
        /// Delivering.
        Delivering = 4 => "DELIVERING",
        /// Delivered.
        Delivered = 5 => "DELIVERED",
        /// About to settle.
        PreSettle = 6 => "PRE_SETTLE",
        /// Settling.
        Settling = 7 => "SETTLING",
        /// Closed (delisted).
        Close = 8 => "CLOSE",
        /// A status text the exchange gave that is none of the documented ones (not
        /// trading: only `TRADING` trades).
        Undocumented = 9 => "UNDOCUMENTED",
    }
}

wire_enum! {
    /// The legacy `error` of a plan that was not executed (`PlanResult::error`; `0` = none).
    ResultError: u16 {
        /// The governor's permit did not arrive within the wait.
        MissingGov = 1 => "missing_gov",
        /// P3.3's permit did not arrive within the wait.
        MissingP33 = 2 => "missing_p33",
        /// The governor denied (`detail`: the [`GovReason`]).
        GovDenied = 3 => "gov_denied",
        /// P3.3 denied (`detail`: the [`P33Reason`]).
        P33Denied = 4 => "p33_denied",
        /// A permit's TTL or the apply deadline passed before the permits could be consumed.
        Expired = 5 => "expired",
        /// The plan id was seen before.
        Duplicate = 6 => "duplicate",
        /// Dedupe is full of ids younger than its horizon: the plan was refused, not forgotten.
        DedupeFull = 7 => "dedupe_full",
        /// Too many orders of unknown or open outcome to track another one.
        OrdersFull = 8 => "orders_full",
        /// The core stopped or crashed while the plan waited for its permits; a restarted core
        /// ends it with this result.
        Interrupted = 9 => "interrupted",
        /// The plan is older than the core's maximum plan age: a re-delivery or replay of an old
        /// decision is never ordered.
        PlanStale = 10 => "plan_stale",
    }
}

wire_enum! {
    /// `Control::command`.
    ControlCommand: u16 {
        /// Kill switch: `arg` 1 on, 0 off; `symbol` one symbol or `ALL_SYMBOLS` (global).
        KillSwitch = 1 => "kill_switch",
        /// Trading state: `arg` is a [`TradingState`] code.
        TradingState = 2 => "trading_state",
    }
}

wire_enum! {
    /// Trading state set by operators (`Control` with [`ControlCommand::TradingState`]).
    TradingState: u8 {
        /// Everything allowed.
        Active = 1 => "ACTIVE",
        /// Only exits.
        Reducing = 2 => "REDUCING",
        /// Nothing.
        Halted = 3 => "HALTED",
    }
}

wire_enum! {
    /// The exchange's status of one of our orders (Binance's spelling).
    OrderStatus: u8 {
        /// Accepted, nothing filled yet.
        New = 1 => "NEW",
        /// Part filled, the rest still open.
        PartiallyFilled = 2 => "PARTIALLY_FILLED",
        /// Completely filled.
        Filled = 3 => "FILLED",
        /// Cancelled; the unfilled rest never fills.
        Canceled = 4 => "CANCELED",
        /// Expired (e.g. a reduce-only order larger than the position); the rest never fills.
        Expired = 5 => "EXPIRED",
        /// Rejected by the matching engine.
        Rejected = 6 => "REJECTED",
        /// Expired in match (self-trade prevention).
        ExpiredInMatch = 7 => "EXPIRED_IN_MATCH",
    }
}

impl OrderStatus {
    /// After this status nothing more fills.
    pub const fn is_final(self) -> bool {
        !matches!(self, OrderStatus::New | OrderStatus::PartiallyFilled)
    }
}

wire_enum! {
    /// Where an `OrderReport` comes from.
    ReportSource: u8 {
        /// The answer to the order request.
        Answer = 1 => "answer",
        /// The user data stream.
        Stream = 2 => "stream",
        /// A lookup by client order id.
        Lookup = 3 => "lookup",
        /// The account's order history, read when the core asked to recover from the exchange.
        History = 4 => "history",
    }
}

wire_enum! {
    /// What kind of failure an `OrderFailed` reports.
    FailKind: u8 {
        /// The exchange refused the order: nothing was placed (`reason`: the adapter's reject
        /// reason code, `exchange_code`: the exchange's code).
        Rejected = 1 => "rejected",
        /// The outcome is not known: the order may exist (`reason`: an [`UnknownReason`]).
        Unknown = 2 => "unknown",
        /// A lookup by client order id found no order, after the request could no longer be
        /// accepted: it was never placed.
        NotFound = 3 => "not_found",
        /// The adapter did not send it (`reason`: an [`UnsentReason`]).
        Unsent = 4 => "unsent",
    }
}

wire_enum! {
    /// Why an order's outcome is not known.
    UnknownReason: u16 {
        /// No answer in time.
        Timeout = 1 => "timeout",
        /// The connection dropped after the request may have left.
        Disconnected = 2 => "disconnected",
        /// An answer that does not prove a refusal: a 5xx (503 "Unknown error", a gateway's
        /// 502 / 504), an answer without a Binance code, a redirect. The order may exist.
        Ambiguous = 3 => "ambiguous_503",
        /// -1006 / -1007: the exchange says the execution status is unknown.
        ExecutionUnknown = 4 => "execution_status_unknown",
        /// -4116: the client id is in use, so the order (or an earlier send of it) exists.
        DuplicateClientId = 5 => "duplicate_client_order_id",
        /// The core restarted (or the adapter re-attached) with the order's outcome not known.
        Restart = 6 => "restart",
    }
}

wire_enum! {
    /// Why the adapter did not send an intent.
    UnsentReason: u16 {
        /// The symbol is not known to the exchange or the adapter.
        UnknownSymbol = 1 => "unknown_symbol",
        /// The quantity cannot be put on the symbol's step grid within its limits.
        Quantity = 2 => "quantity",
        /// The intent is older than the adapter's limit for sending (after a restart).
        TooOld = 3 => "too_old",
        /// Rate limited or banned for longer than the adapter may wait.
        RateLimited = 4 => "rate_limited",
        /// The adapter is stopping.
        ShuttingDown = 5 => "shutting_down",
        /// Sent, proven never placed, as many times as the adapter may send one order.
        GaveUp = 6 => "gave_up",
        /// Failover: this host does not lead (a standby, or a leader past its lease deadline).
        NotLeader = 7 => "not_leader",
    }
}

wire_enum! {
    /// How an order of ours ended (`OrderDone::code`).
    DoneCode: u8 {
        /// Completely filled.
        Filled = 1 => "filled",
        /// The exchange refused it; nothing filled.
        Rejected = 2 => "rejected",
        /// Part of it filled and the exchange ended the rest (expired or cancelled); the
        /// unfilled rest is released.
        RemainderExpired = 3 => "remainder_expired",
        /// It was never placed (a lookup found nothing after the request could no longer be
        /// accepted, or the exchange ended it unfilled).
        NotPlaced = 4 => "not_placed",
        /// The adapter did not send it.
        Unsent = 5 => "unsent",
    }
}

wire_enum! {
    /// Why the core refused an input record (`InputRefused::reason`); the record is counted as
    /// invalid on its ring and nothing changes.
    RefuseReason: u16 {
        /// A quantity would leave the range the core keeps (`±MAX_QTY`): e.g. a fill that would
        /// push the ledger past it.
        Overflow = 1 => "overflow",
        /// The record names a plan with no order in flight.
        UnknownOrder = 2 => "unknown_order",
        /// The record names a symbol the core does not have.
        UnknownSymbol = 3 => "unknown_symbol",
        /// A permit for a plan that is not waiting for permits.
        NotWaiting = 4 => "not_waiting",
        /// A permit from outside while the core issues its own (or the reverse).
        PermitSource = 5 => "permit_source",
        /// The record contradicts what the core knows of the order (another symbol or side).
        Mismatch = 6 => "mismatch",
        /// The record failed validation before it reached the engine (a bad tag, a value out
        /// of range, a kind its ring does not carry); `kind` is its raw tag.
        InvalidRecord = 7 => "invalid_record",
        /// An order history that does not reach back over the dedupe horizon: the symbol stays
        /// reconciling.
        HistoryTooShort = 8 => "history_too_short",
        /// Dedupe is full of ids younger than its horizon: an order the exchange reported
        /// could not be remembered (the symbol stays reconciling).
        DedupeFull = 9 => "dedupe_full",
        /// Failover: a plan reached a daemon whose host does not lead; the leader handles it.
        Standby = 10 => "standby",
        /// Failover: a `LedgerBase` for a symbol that does not wait for one under that epoch.
        UnwantedBase = 11 => "ledger_base_unwanted",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_by_number_and_text() {
        for &r in GovReason::ALL {
            assert_eq!(GovReason::from_code(r.code()), Some(r));
            assert_eq!(r.as_str().parse::<GovReason>(), Ok(r));
        }
        for &r in P33Reason::ALL {
            assert_eq!(P33Reason::parse(r.as_str()), Some(r));
        }
        assert_eq!(GovReason::from_code(0), None);
        assert!("nope".parse::<Decision>().unwrap_err().contains("EXECUTE"));
        assert_eq!(Side::closing(5), Some(Side::Sell));
        assert_eq!(Side::closing(-5), Some(Side::Buy));
        assert_eq!(Side::closing(0), None);
        assert!(OrderStatus::Expired.is_final() && !OrderStatus::New.is_final());
    }
}
