//! Apply: waits for both permits of each plan without blocking any other plan, consumes them
//! with the table's one CAS, and turns an OK into an order.
//!
//! A plan whose permits are not there yet goes into a fixed-capacity pending set with its own
//! deadline (`APPLY_PERMIT_WAIT_MS`, default 1200 ms) and is re-checked by [`Apply::poll`]
//! between other work. Nothing here sleeps; the runner decides how to idle.
//!
//! Finishing a plan, every path:
//! - **consume** (only before the plan's deadline, however late the poll): the governor's
//!   execution throttles ([`Throttle::admit`]) judge P3.3's quantity between reading the
//!   permits and the CAS, then the order is opened in [`Orders`], which holds its quantity in
//!   flight (taking over P3.3's allowance);
//! - **block**: the slot is closed first, and only then are its permits read: after the close
//!   nobody can issue into the slot, so the reason is exact and an allowance P3.3 published a
//!   moment before is seen and dropped, never leaked.
//!
//! Events, per plan, at its end: the permits it was judged with, the intent if consumed, its
//! result, then a `duplicate` result for each re-delivery that arrived while it waited (so a
//! duplicate's result never precedes the original's).

use std::sync::Arc;

use crate::book::BookWriter;
use crate::clock::{ms_to_ns, Clock};
use crate::event::{Event, GovPermitEvent, P33PermitEvent};
use crate::governor::{GovReason, Throttle};
use crate::idmap::IdMap;
use crate::orders::Orders;
use crate::permit::{Close, Consume, GovPermit, P33Permit, PermitTable, SlotRef, Status};
use crate::result::{Block, Outcome, PlanResult};
use crate::types::{OrderIntent, Plan, PlanId, StageMarks, SymbolId};

#[derive(Clone, Copy, Debug)]
struct Pending {
    slot: SlotRef,
    plan: Plan,
    t_in_ns: u64,
    deadline_ns: u64,
    /// Re-deliveries of this plan seen while it waited; each gets a `duplicate` result after
    /// this plan's own.
    duplicates: u32,
    /// Latency sample: `Some` for a sampled plan, with the verdict moments when the engine's
    /// thread made them (zero when separate permit threads did: their issue times are used).
    marks: Option<StageMarks>,
}

/// What finishing a plan changes outside apply: the book, the orders, the throttles.
#[derive(Debug)]
pub struct Effects<'a> {
    /// The book's one writer.
    pub book: &'a mut BookWriter,
    /// Orders in flight.
    pub orders: &'a mut Orders,
    /// The governor's consume-time checks.
    pub throttle: &'a Throttle,
    /// P3.3's permits are the core's own (their allowances are counted in its reservations).
    pub internal_p33: bool,
}

/// The apply stage.
#[derive(Debug)]
pub struct Apply {
    table: Arc<PermitTable>,
    clock: Clock,
    wait_ns: u64,
    /// Plans waiting for permits; never longer than the table's capacity, allocated once.
    pending: Vec<Pending>,
    /// Plan id → slot and symbol of every pending plan, for duplicates and outside permits.
    waiting: IdMap<(SlotRef, SymbolId)>,
}

impl Apply {
    /// An apply stage waiting `wait_ms` at most per plan.
    pub fn new(table: Arc<PermitTable>, clock: Clock, wait_ms: u64) -> Self {
        let pending = Vec::with_capacity(table.capacity());
        let waiting = IdMap::with_max_len(table.capacity());
        Apply {
            waiting,
            table,
            clock,
            wait_ns: ms_to_ns(wait_ms),
            pending,
        }
    }

    /// The deadline of a plan entering at `t_in_ns`.
    pub fn deadline_of(&self, t_in_ns: u64) -> u64 {
        t_in_ns.saturating_add(self.wait_ns)
    }

    /// Takes a plan whose slot is open: resolves it now if it can, else keeps it pending.
    /// `marks` is `Some` for a plan sampled for live latency (see [`StageMarks`]).
    pub fn submit(
        &mut self,
        slot: SlotRef,
        plan: Plan,
        t_in_ns: u64,
        marks: Option<StageMarks>,
        fx: &mut Effects<'_>,
        out: &mut impl FnMut(Event),
    ) {
        let p = Pending {
            slot,
            plan,
            t_in_ns,
            deadline_ns: self.deadline_of(t_in_ns),
            duplicates: 0,
            marks,
        };
        // The plan entered at `t_in_ns` a few ns ago: that is "now" for its first look.
        if !self.resolve(&p, t_in_ns, fx, out) {
            // One pending entry per open slot, so neither exceeds the capacity reserved.
            self.pending.push(p);
            let _ = self.waiting.insert(plan.id.0, (slot, plan.symbol));
        }
    }

    /// Re-checks every pending plan; returns how many were resolved.
    pub fn poll(&mut self, fx: &mut Effects<'_>, out: &mut impl FnMut(Event)) -> usize {
        if self.pending.is_empty() {
            return 0;
        }
        let now = self.clock.now_ns();
        let mut done = 0;
        let mut i = 0;
        while i < self.pending.len() {
            let p = self.pending[i];
            if self.resolve(&p, now, fx, out) {
                self.pending.swap_remove(i);
                self.waiting.remove(p.plan.id.0);
                done += 1;
            } else {
                i += 1;
            }
        }
        done
    }

    /// The slot and symbol of a plan waiting for its permits.
    pub fn waiting(&self, plan: PlanId) -> Option<(SlotRef, SymbolId)> {
        self.waiting.get(plan.0)
    }

    /// A re-delivery of `plan` arrived: if the plan is still waiting, its `duplicate` result is
    /// held until the plan's own result has left, and this returns true.
    pub fn hold_duplicate(&mut self, plan: PlanId) -> bool {
        if self.waiting.get(plan.0).is_none() {
            return false;
        }
        match self.pending.iter_mut().find(|p| p.plan.id == plan) {
            Some(p) => {
                p.duplicates = p.duplicates.saturating_add(1);
                true
            }
            None => false,
        }
    }

    /// Number of plans waiting.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The earliest pending deadline (engine ns), to bound how long the runner may idle.
    pub fn next_deadline(&self) -> Option<u64> {
        self.pending.iter().map(|p| p.deadline_ns).min()
    }

    /// Tries to finish `p` at engine time `now`; false when it must keep waiting.
    fn resolve(
        &self,
        p: &Pending,
        now: u64,
        fx: &mut Effects<'_>,
        out: &mut impl FnMut(Event),
    ) -> bool {
        if now >= p.deadline_ns {
            return self.finish(p, None, now, fx, out);
        }
        let mut refused: Option<Block> = None;
        // A sampled plan's consume starts now (one clock read, for the sample only).
        let ready_ns = p.marks.map(|_| self.clock.now_ns());
        let consumed = self.table.try_consume(p.slot, now, |qty, side| {
            if fx.orders.is_full() {
                refused = Some(Block::OrdersFull);
                return false;
            }
            // The account's state again, as it is now (P3.3 judged it earlier, or a legacy
            // P3.3 knew nothing of it): never an order the exchange would refuse, and on a
            // hedge leg never more than the leg's position.
            let gate = fx
                .book
                .consume_gate(p.plan.symbol, p.plan.position_side, side, qty);
            if let Some(Err(r)) = gate {
                let context = fx.book.view(p.plan.symbol).map(|v| v.context());
                refused = Some(Block::P33Denied(r, context.unwrap_or_default()));
                return false;
            }
            match fx.throttle.admit(&p.plan, qty, now) {
                Ok(()) => true,
                Err(r) => {
                    refused = Some(Block::GovDenied(r));
                    false
                }
            }
        });
        match consumed {
            Consume::Consumed { safe_qty, side } => {
                let intent = OrderIntent {
                    plan: p.plan.id,
                    symbol: p.plan.symbol,
                    side,
                    qty: safe_qty,
                    reduce_only: p.plan.reduce_only,
                    t_in_ns: p.t_in_ns,
                    t_out_ns: self.clock.now_ns(),
                    at_ms: self.clock.wall_ms(now),
                    lookup_first: false,
                    marks: StageMarks::default(),
                };
                let absorb = if fx.internal_p33 {
                    safe_qty
                } else {
                    crate::Qty::ZERO
                };
                // Consumed: nobody writes the slot until this thread reopens it.
                let (gov, p33) = self.table.permits(p.slot).unwrap_or((None, None));
                let intent = match (p.marks, ready_ns) {
                    (Some(m), Some(ready)) => OrderIntent {
                        marks: Self::sample(m, p.t_in_ns, gov, p33, ready),
                        ..intent
                    },
                    _ => intent,
                };
                self.emit_permit_events(p.plan.id, p.plan.symbol, gov, p33, out);
                let outcome = match fx.orders.open(&intent, absorb, fx.book) {
                    Ok(()) => {
                        out(Event::OrderIntent(intent));
                        Outcome::Executed { qty: safe_qty }
                    }
                    // Checked in `accept` above; only an impossible book overflow lands here.
                    // Nothing will be sent: drop the allowance.
                    Err(_) => {
                        let _ = fx.book.in_flight(p.plan.symbol, crate::Qty::ZERO, absorb);
                        Outcome::Blocked(Block::OrdersFull)
                    }
                };
                self.emit_result(p, outcome, now, out);
                true
            }
            Consume::NotReady { .. } => false,
            Consume::Refused => self.finish(p, refused, now, fx, out),
            Consume::Expired { .. } => self.finish(p, Some(Block::Expired), now, fx, out),
            Consume::GovDenied
            | Consume::P33Denied
            | Consume::AlreadyConsumed
            | Consume::Closed
            | Consume::Stale => self.finish(p, None, now, fx, out),
        }
    }

    /// Ends `p` without an order: closes its slot, then reads why from what the slot holds.
    /// False while a permit is being written (the close waits it out; next poll).
    fn finish(
        &self,
        p: &Pending,
        hint: Option<Block>,
        now: u64,
        fx: &mut Effects<'_>,
        out: &mut impl FnMut(Event),
    ) -> bool {
        let view = match self.table.close(p.slot) {
            Close::Busy => return false,
            Close::Closed(view) => view,
            // Only apply consumes or closes a slot, on this thread: these are a misuse of the
            // table by someone else, reported as the legacy system would see them.
            Close::AlreadyConsumed => {
                self.emit_result(p, Outcome::Duplicate { ordered: None }, now, out);
                return true;
            }
            Close::AlreadyClosed | Close::Stale => {
                let b = hint.unwrap_or(Block::Expired);
                self.emit_result(p, Outcome::Blocked(b), now, out);
                return true;
            }
        };
        let (gov, p33) = self.table.permits(p.slot).unwrap_or((None, None));
        let block = match (gov, p33) {
            (Some(g), _) if !g.allow => Block::GovDenied(g.reason.unwrap_or(GovReason::Denied)),
            (_, Some(q)) if !q.allow => {
                Block::P33Denied(q.reason.unwrap_or(crate::p33::P33Reason::Denied), q.context)
            }
            _ => match hint {
                Some(b) => b,
                None if view.gov != Status::Allow => Block::MissingGov,
                None if view.p33 != Status::Allow => Block::MissingP33,
                None => Block::Expired,
            },
        };
        if let Some(q) = p33.filter(|q| q.allow && fx.internal_p33) {
            // The allowance will never become an order: P3.3's reservation is dropped.
            let _ = fx
                .book
                .in_flight(p.plan.symbol, crate::Qty::ZERO, q.safe_qty);
        }
        self.emit_permit_events(p.plan.id, p.plan.symbol, gov, p33, out);
        self.emit_result(p, Outcome::Blocked(block), now, out);
        true
    }

    /// The stage marks of a sampled plan that was consumed: the verdict moments the engine
    /// stamped, or else the permits' issue times (made on the permit threads).
    fn sample(
        m: StageMarks,
        t_in: u64,
        gov: Option<GovPermit>,
        p33: Option<P33Permit>,
        ready: u64,
    ) -> StageMarks {
        let issued = |at: Option<u64>| at.map_or(0, |t| StageMarks::offset(t_in, t));
        StageMarks {
            gov_ns: if m.gov_ns != 0 {
                m.gov_ns
            } else {
                issued(gov.map(|g| g.issued_ns))
            },
            p33_ns: if m.p33_ns != 0 {
                m.p33_ns
            } else {
                issued(p33.map(|q| q.issued_ns))
            },
            ready_ns: StageMarks::offset(t_in, ready),
        }
    }

    fn emit_permit_events(
        &self,
        plan: PlanId,
        symbol: SymbolId,
        gov: Option<GovPermit>,
        p33: Option<P33Permit>,
        out: &mut impl FnMut(Event),
    ) {
        let ttl_ms = |issued: u64, deadline: u64| {
            u32::try_from(deadline.saturating_sub(issued) / 1_000_000).unwrap_or(u32::MAX)
        };
        if let Some(g) = gov {
            out(Event::GovPermit(GovPermitEvent {
                plan,
                symbol,
                allow: g.allow,
                reason: g.reason,
                issued_at_ms: self.clock.wall_ms(g.issued_ns),
                ttl_ms: ttl_ms(g.issued_ns, g.deadline_ns),
            }));
        }
        if let Some(q) = p33 {
            out(Event::P33Permit(P33PermitEvent {
                plan,
                symbol,
                allow: q.allow,
                reason: q.reason,
                side: q.side,
                safe_qty: q.safe_qty,
                context: q.context,
                issued_at_ms: self.clock.wall_ms(q.issued_ns),
                ttl_ms: ttl_ms(q.issued_ns, q.deadline_ns),
            }));
        }
    }

    fn emit_result(&self, p: &Pending, outcome: Outcome, now: u64, out: &mut impl FnMut(Event)) {
        let result = |outcome| PlanResult {
            plan: p.plan.id,
            symbol: p.plan.symbol,
            decision: p.plan.decision,
            outcome,
            wait_ns: now.saturating_sub(p.t_in_ns),
            at_ms: self.clock.wall_ms(now),
        };
        out(Event::PlanResult(result(outcome)));
        for _ in 0..p.duplicates {
            out(Event::PlanResult(result(Outcome::Duplicate {
                ordered: None,
            })));
        }
    }
}
