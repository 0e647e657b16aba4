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
//! The symbol is also denied `reconciling` (after `unknown_symbol`) while the core reconciles
//! it after a start.
//!
//! After `reconciling` and before the checks 2 to 5, the account's state
//! ([`BookView::account_gate`]): `symbol_not_trading`, `position_mode_unknown`,
//! `position_mode_mismatch`, `position_side_required`, `position_side_mismatch`. Each symbol id
//! is one leg: a one-way symbol's net position, or the `LONG` or `SHORT` position of a
//! hedge-mode symbol, so everything below compares, sizes and reserves per side.
//!
//! Sizing: `available = min(|exchange|, |ledger|) - committed`, where `committed` is what our
//! orders still hold in flight plus what P3.3 allowed for plans not yet consumed or closed;
//! `safe_qty = floor_to_step(fraction(action) * available)` on the coarser of LOT_SIZE and
//! MARKET_LOT_SIZE, capped at their smaller maxQty; side opposite to the exchange position. So
//! a PARTIAL_75 closes 75 % of what will be left once the orders already under way are done.
//! With nothing committed this is the legacy formula.
//!
//! **Reservations.** An allowance is counted in P3.3's own [`Reservations`] once it is issued
//! into the table, before the next evaluation (P3.3 evaluates in order on one thread), so the
//! next plan already sees it; the front takes it over at consume (it becomes the order's
//! in-flight quantity) or drops it when the plan is closed ([`crate::book`]). A permit that
//! lost the first-write race, or found the plan already closed, is not counted at all.

use crate::book::{BookView, Reservations};
use crate::clock::ms_to_ns;
use crate::fixed::Qty;
use crate::permit::{Issue, P33Context, P33Permit, PermitTable, SlotRef};
use crate::types::{Plan, Side};

pub use quantum_ipc::codes::P33Reason;
use quantum_ipc::codes::PositionSide;

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

/// The decision as a pure function of a book, the plan's named position side, the action's
/// percent and the time.
pub fn decide(
    book: Option<&BookView>,
    plan_side: Option<PositionSide>,
    percent: u32,
    now_ns: u64,
    max_age_ns: u64,
) -> (Result<Sized, P33Reason>, P33Context) {
    let Some(b) = book else {
        return (Err(P33Reason::UnknownSymbol), P33Context::default());
    };
    let gate = if b.reconciling {
        Err(P33Reason::Reconciling)
    } else {
        b.account_gate(plan_side)
    };
    let ctx = b.context();
    if let Err(r) = gate {
        return (Err(r), ctx);
    }
    let Some((exchange, at)) = b.exchange else {
        return (Err(P33Reason::ExchangeStateStale), ctx);
    };
    if now_ns.saturating_sub(at) > max_age_ns {
        return (Err(P33Reason::ExchangeStateStale), ctx);
    }
    if ctx.diff() > b.tolerance {
        return (Err(P33Reason::ReconcileRequiredQtyMismatch), ctx);
    }
    let Some(side) = Side::closing(exchange.units()) else {
        return (Err(P33Reason::NoPosition), ctx);
    };
    let held = exchange.abs().min(b.ledger.abs());
    let available = Qty::from_units(held.units().saturating_sub(b.committed().units()).max(0));
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
    // Zero when below the minimum: the lot grid starts at `min`.
    let qty = wanted.floor_to_step(step, min);
    if qty.is_zero() {
        return (Err(P33Reason::SafeQtyBelowMin), ctx);
    }
    (Ok(Sized { qty, side }), ctx)
}

/// The P3.3 stage. It owns P3.3's [`Reservations`], so exactly one exists per engine.
#[derive(Debug)]
pub struct P33 {
    reservations: Reservations,
    ttl_ns: u64,
    max_age_ns: u64,
}

impl P33 {
    /// A P3.3 stage reading the book of `reservations`.
    pub fn new(cfg: P33Config, reservations: Reservations) -> Self {
        P33 {
            reservations,
            ttl_ns: ms_to_ns(cfg.permit_ttl_ms),
            max_age_ns: ms_to_ns(cfg.exchange_max_age_ms),
        }
    }

    /// Decides on `plan`, issues the permit into `slot`, and counts an allowance that was
    /// issued.
    pub fn issue(&mut self, table: &PermitTable, slot: SlotRef, plan: &Plan, now_ns: u64) -> Issue {
        let permit = self.evaluate(plan, now_ns);
        self.issue_evaluated(table, slot, plan, permit)
    }

    /// Issues `permit`, judged by [`P33::evaluate`] with nothing changed in the book since,
    /// into `slot`, reserving its allowance.
    pub fn issue_evaluated(
        &mut self,
        table: &PermitTable,
        slot: SlotRef,
        plan: &Plan,
        permit: P33Permit,
    ) -> Issue {
        let done = table.issue_p33(slot, permit);
        if done == Issue::Issued && permit.allow {
            self.reservations.reserve(plan.symbol, permit.safe_qty);
        }
        done
    }

    /// Decides on `plan` at engine time `now_ns`.
    pub fn evaluate(&self, plan: &Plan, now_ns: u64) -> P33Permit {
        let book = self.reservations.view(plan.symbol);
        let (verdict, context) = decide(
            book.as_ref(),
            plan.position_side,
            plan.action.percent(),
            now_ns,
            self.max_age_ns,
        );
        let deadline_ns = now_ns.saturating_add(self.ttl_ns);
        match verdict {
            Ok(s) => P33Permit {
                allow: true,
                reason: None,
                issued_ns: now_ns,
                deadline_ns,
                safe_qty: s.qty,
                side: Some(s.side),
                context,
            },
            Err(r) => P33Permit {
                allow: false,
                reason: Some(r),
                issued_ns: now_ns,
                deadline_ns,
                safe_qty: Qty::ZERO,
                side: None,
                context,
            },
        }
    }
}
