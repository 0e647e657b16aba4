//! P3.3, the position state brain: compares the exchange position with the ledger and allows a
//! plan with a safe quantity, or denies it with a reason.
//!
//! Checks, in order; the first failing one is the reason:
//! 1. `unknown_symbol`: the symbol is not configured.
//! 2. `exchange_state_stale`: no exchange snapshot yet, or it is older than the max age.
//! 3. `reconcile_required_qty_mismatch`: `|exchange - ledger| > tolerance` (context: both
//!    amounts, the diff and the tolerance).
//! 4. `no_position`: the exchange is flat, or our in-flight orders already cover the position.
//! 5. `safe_qty_below_min`: the sized order is below the MARKET/LOT minimum.
//!
//! Sizing: `available = min(|exchange|, |ledger|) - in_flight`,
//! `safe_qty = floor_to_step(fraction(action) * available)` on the coarser of LOT_SIZE and
//! MARKET_LOT_SIZE, capped at their smaller maxQty; side opposite to the exchange position.
//! With nothing in flight this is the legacy formula; the in-flight term stops two plans that
//! arrive before the first fill from closing the same quantity twice.
//!
//! **Reservations.** [`P33::issue`] reserves an allowed quantity in the book *before* publishing
//! the permit, so the next evaluation (on the same P3.3 thread, in order) already sees it. The
//! reservation is released by the fill of the order, by the exchange's reject or expiry of it,
//! or by apply when the plan ends blocked; and at once if the permit lost the first-write race.

use std::sync::Arc;

use crate::clock::ms_to_ns;
use crate::fixed::Qty;
use crate::ledger::{BookView, Ledger};
use crate::permit::{Issue, P33Context, P33Permit, PermitTable, SlotRef};
use crate::types::{Plan, Side, SymbolId};

/// Why P3.3 denied. Codes are stable: they travel in permits and over the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum P33Reason {
    /// `|exchange - ledger| > tolerance`.
    ReconcileRequiredQtyMismatch = 1,
    /// No exchange snapshot, or too old.
    ExchangeStateStale = 2,
    /// Nothing to reduce.
    NoPosition = 3,
    /// The sized quantity is below the minimum.
    SafeQtyBelowMin = 4,
    /// Symbol not configured.
    UnknownSymbol = 5,
    /// A legacy P3.3 denied with a reason we do not know.
    Denied = 6,
}

impl P33Reason {
    /// Every reason.
    pub const ALL: &'static [P33Reason] = &[
        P33Reason::ReconcileRequiredQtyMismatch,
        P33Reason::ExchangeStateStale,
        P33Reason::NoPosition,
        P33Reason::SafeQtyBelowMin,
        P33Reason::UnknownSymbol,
        P33Reason::Denied,
    ];

    /// The legacy spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            P33Reason::ReconcileRequiredQtyMismatch => "reconcile_required_qty_mismatch",
            P33Reason::ExchangeStateStale => "exchange_state_stale",
            P33Reason::NoPosition => "no_position",
            P33Reason::SafeQtyBelowMin => "safe_qty_below_min",
            P33Reason::UnknownSymbol => "unknown_symbol",
            P33Reason::Denied => "denied",
        }
    }

    /// From a permit's code; unknown codes read as [`P33Reason::Denied`].
    pub fn from_code(c: u16) -> P33Reason {
        P33Reason::ALL
            .iter()
            .copied()
            .find(|r| *r as u16 == c)
            .unwrap_or(P33Reason::Denied)
    }

    /// From the legacy spelling.
    pub fn parse(s: &str) -> Option<P33Reason> {
        P33Reason::ALL.iter().copied().find(|r| r.as_str() == s)
    }
}

/// P3.3 configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct P33Config {
    /// Permit TTL.
    pub permit_ttl_ms: u64,
    /// An exchange snapshot older than this is stale.
    pub exchange_max_age_ms: u64,
}

impl Default for P33Config {
    fn default() -> Self {
        P33Config {
            permit_ttl_ms: 15_000,
            exchange_max_age_ms: 30_000,
        }
    }
}

/// An allow: how much, which side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sized {
    /// Quantity on the lot grid.
    pub qty: Qty,
    /// Closing side.
    pub side: Side,
}

/// The decision as a pure function of a book, the action's percent and the time.
pub fn decide(
    book: Option<&BookView>,
    percent: u32,
    now_ns: u64,
    max_age_ns: u64,
) -> (Result<Sized, P33Reason>, P33Context) {
    let Some(b) = book else {
        return (Err(P33Reason::UnknownSymbol), P33Context::default());
    };
    let Some((exchange, at)) = b.exchange else {
        let ctx = P33Context {
            exchange: Qty::ZERO,
            ledger: b.ledger,
            tolerance: b.tolerance,
        };
        return (Err(P33Reason::ExchangeStateStale), ctx);
    };
    let ctx = P33Context {
        exchange,
        ledger: b.ledger,
        tolerance: b.tolerance,
    };
    if now_ns.saturating_sub(at) > max_age_ns {
        return (Err(P33Reason::ExchangeStateStale), ctx);
    }
    if ctx.diff() > b.tolerance {
        return (Err(P33Reason::ReconcileRequiredQtyMismatch), ctx);
    }
    let Some(side) = Side::closing(exchange) else {
        return (Err(P33Reason::NoPosition), ctx);
    };
    let held = exchange.abs().min(b.ledger.abs());
    let available = Qty::from_units((held.units() - b.in_flight.units()).max(0));
    if available.is_zero() {
        return (Err(P33Reason::NoPosition), ctx);
    }
    let (lot, mkt) = (b.filters.lot, b.filters.market_lot);
    let step = lot.step.max(mkt.step);
    let min = lot.min.max(mkt.min);
    let max = match (lot.max.is_zero(), mkt.max.is_zero()) {
        (true, true) => Qty::from_units(i64::MAX),
        (false, true) => lot.max,
        (true, false) => mkt.max,
        (false, false) => lot.max.min(mkt.max),
    };
    let wanted = available.mul_pct(percent).min(max);
    let qty = wanted.floor_to_step(step, min);
    if qty.is_zero() || qty < min {
        return (Err(P33Reason::SafeQtyBelowMin), ctx);
    }
    (Ok(Sized { qty, side }), ctx)
}

/// The P3.3 stage.
#[derive(Clone, Debug)]
pub struct P33 {
    ledger: Arc<Ledger>,
    ttl_ns: u64,
    max_age_ns: u64,
}

impl P33 {
    /// A P3.3 stage reading `ledger`.
    pub fn new(cfg: P33Config, ledger: Arc<Ledger>) -> Self {
        P33 {
            ledger,
            ttl_ns: ms_to_ns(cfg.permit_ttl_ms),
            max_age_ns: ms_to_ns(cfg.exchange_max_age_ms),
        }
    }

    /// Decides on `plan`, reserves an allowed quantity and issues the permit into `slot`.
    pub fn issue(&self, table: &PermitTable, slot: SlotRef, plan: &Plan, now_ns: u64) -> Issue {
        let permit = self.evaluate(plan, now_ns);
        issue_reserving(table, &self.ledger, slot, plan.symbol, permit)
    }

    /// Decides on `plan` at engine time `now_ns`.
    pub fn evaluate(&self, plan: &Plan, now_ns: u64) -> P33Permit {
        let book = self.ledger.view(plan.symbol);
        let (verdict, context) = decide(
            book.as_ref(),
            plan.action.percent(),
            now_ns,
            self.max_age_ns,
        );
        let deadline_ns = now_ns.saturating_add(self.ttl_ns);
        match verdict {
            Ok(s) => P33Permit {
                allow: true,
                reason: 0,
                deadline_ns,
                safe_qty: s.qty,
                side: Some(s.side),
                context,
            },
            Err(r) => P33Permit {
                allow: false,
                reason: r as u16,
                deadline_ns,
                safe_qty: Qty::ZERO,
                side: None,
                context,
            },
        }
    }
}

/// Issues a P3.3 permit, holding its quantity in flight while it is allowed: reserved before the
/// permit is published, released again if another issuer was first.
pub fn issue_reserving(
    table: &PermitTable,
    ledger: &Ledger,
    slot: SlotRef,
    symbol: SymbolId,
    permit: P33Permit,
) -> Issue {
    let reserve = permit.allow && !permit.safe_qty.is_zero();
    if reserve {
        ledger.reserve_in_flight(symbol, permit.safe_qty);
    }
    let done = table.issue_p33(slot, permit);
    if reserve && done != Issue::Issued {
        ledger.release_in_flight(symbol, permit.safe_qty);
    }
    done
}
