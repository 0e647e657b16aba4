//! Apply: waits for both permits of each plan without blocking any other plan, consumes them
//! with the table's one CAS, and turns an OK into an [`OrderIntent`].
//!
//! A plan whose permits are not there yet goes into a fixed-capacity pending set with its own
//! deadline (`APPLY_PERMIT_WAIT_MS`, default 1200 ms) and is re-checked by [`Apply::poll`]
//! between other work. Nothing here sleeps; the runner decides how to idle.

use std::sync::Arc;

use crate::clock::{ms_to_ns, Clock};
use crate::governor::{GovReason, Governor};
use crate::idmap::IdMap;
use crate::ledger::Ledger;
use crate::p33::P33Reason;
use crate::permit::{Close, Consume, PermitTable, SlotRef, Status};
use crate::result::{Block, Outcome, PlanResult};
use crate::types::{OrderIntent, Plan, PlanId, SymbolId};

#[derive(Clone, Copy, Debug)]
struct Pending {
    slot: SlotRef,
    plan: Plan,
    t_in_ns: u64,
    deadline_ns: u64,
}

/// The apply stage.
#[derive(Debug)]
pub struct Apply {
    table: Arc<PermitTable>,
    ledger: Arc<Ledger>,
    governor: Governor,
    clock: Clock,
    wait_ns: u64,
    /// Plans waiting for permits; never longer than the table's capacity, allocated once.
    pending: Vec<Pending>,
    /// Plan id → slot and symbol of every pending plan, for permits issued outside the core.
    waiting: IdMap<(SlotRef, SymbolId)>,
}

impl Apply {
    /// An apply stage waiting `wait_ms` at most per plan.
    pub fn new(
        table: Arc<PermitTable>,
        ledger: Arc<Ledger>,
        governor: Governor,
        clock: Clock,
        wait_ms: u64,
    ) -> Self {
        let pending = Vec::with_capacity(table.capacity());
        let waiting = IdMap::with_max_len(table.capacity());
        Apply {
            waiting,
            table,
            ledger,
            governor,
            clock,
            wait_ns: ms_to_ns(wait_ms),
            pending,
        }
    }

    /// Takes a plan whose slot is open: resolves it now if it can, else keeps it pending.
    pub fn submit(
        &mut self,
        slot: SlotRef,
        plan: Plan,
        t_in_ns: u64,
        out: &mut impl FnMut(PlanResult),
    ) {
        let p = Pending {
            slot,
            plan,
            t_in_ns,
            deadline_ns: t_in_ns.saturating_add(self.wait_ns),
        };
        // The plan entered at `t_in_ns` a few ns ago: that is "now" for its first look.
        match self.resolve(&p, t_in_ns) {
            Some(r) => out(r),
            // One pending entry per open slot, so neither exceeds the capacity reserved.
            None => {
                self.pending.push(p);
                let _ = self.waiting.insert(plan.id.0, (slot, plan.symbol));
            }
        }
    }

    /// Re-checks every pending plan; returns how many were resolved.
    pub fn poll(&mut self, out: &mut impl FnMut(PlanResult)) -> usize {
        if self.pending.is_empty() {
            return 0;
        }
        let now = self.clock.now_ns();
        let mut done = 0;
        let mut i = 0;
        while i < self.pending.len() {
            let p = self.pending[i];
            match self.resolve(&p, now) {
                Some(r) => {
                    self.pending.swap_remove(i);
                    self.waiting.remove(p.plan.id.0);
                    out(r);
                    done += 1;
                }
                None => i += 1,
            }
        }
        done
    }

    /// The slot and symbol of a plan waiting for its permits.
    pub fn waiting(&self, plan: PlanId) -> Option<(SlotRef, SymbolId)> {
        self.waiting.get(plan.0)
    }

    /// Number of plans waiting.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The earliest pending deadline (engine ns), to bound how long the runner may idle.
    pub fn next_deadline(&self) -> Option<u64> {
        self.pending.iter().map(|p| p.deadline_ns).min()
    }

    fn resolve(&self, p: &Pending, now: u64) -> Option<PlanResult> {
        let block = match self.table.try_consume(p.slot, now) {
            Consume::Consumed { safe_qty, side } => {
                // P3.3 reserved `safe_qty` when it allowed; the fill or reject releases it.
                self.governor.record(&p.plan, safe_qty, now);
                let order = OrderIntent {
                    plan: p.plan.id,
                    symbol: p.plan.symbol,
                    side,
                    qty: safe_qty,
                    reduce_only: p.plan.reduce_only,
                    t_in_ns: p.t_in_ns,
                    t_out_ns: self.clock.now_ns(),
                };
                return Some(self.result(p, Outcome::Executed(order), now));
            }
            Consume::NotReady { gov, .. } => {
                if now < p.deadline_ns {
                    return None;
                }
                if gov != Status::Allow {
                    Block::MissingGov
                } else {
                    Block::MissingP33
                }
            }
            Consume::GovDenied { reason } => Block::GovDenied(GovReason::from_code(reason)),
            Consume::P33Denied { reason, context } => {
                Block::P33Denied(P33Reason::from_code(reason), context)
            }
            Consume::Expired { .. } | Consume::Closed | Consume::Stale => Block::Expired,
            Consume::AlreadyConsumed => {
                return Some(self.result(p, Outcome::Duplicate, now));
            }
        };
        // P3.3's quantity, if it allowed: reserved in flight, to release once the plan is
        // closed without an order. Read before the close, while the slot is surely this plan's.
        let allowed = self.table.p33_allowance(p.slot);
        match self.table.close(p.slot) {
            // A permit is mid-write: come back on the next poll.
            Close::Busy => None,
            // A consumer elsewhere won between our look and the close.
            Close::AlreadyConsumed => Some(self.result(p, Outcome::Duplicate, now)),
            Close::Closed => {
                if let Some(q) = allowed {
                    self.ledger.release_in_flight(p.plan.symbol, q);
                }
                Some(self.result(p, Outcome::Blocked(block), now))
            }
            Close::AlreadyClosed | Close::Stale => {
                Some(self.result(p, Outcome::Blocked(block), now))
            }
        }
    }

    fn result(&self, p: &Pending, outcome: Outcome, now: u64) -> PlanResult {
        PlanResult {
            plan: p.plan.id,
            symbol: p.plan.symbol,
            decision: p.plan.decision,
            outcome,
            wait_ns: now.saturating_sub(p.t_in_ns),
        }
    }
}
