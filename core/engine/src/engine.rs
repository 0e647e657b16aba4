//! The stages wired together: ingest (dedupe, slot hand-out), governor, P3.3 and apply, the
//! command path (ledger, positions, filters, switches) and the order lifecycle.
//!
//! [`Engine::process_plan`] runs the whole chain for one plan on the calling thread (the
//! `single` mode). [`Engine::into_parts`] hands the stages out for the `pipelined` runner: the
//! [`Front`] (ingest, apply, commands, orders: everything that writes the book, the dedupe set
//! and the orders) stays on one thread; the governor and P3.3 only issue permits.
//! Every state change is an [`Event`] handed to the caller's `out`, in order.
//! After construction nothing here allocates.

use std::sync::Arc;

use quantum_ipc::codes::{
    ContractStatus, DoneCode, RefuseReason, ReportSource, UnknownReason, UnsentReason,
};

use crate::apply::{Apply, Effects};
use crate::book::{Book, BookWriter, Overflow};
use crate::clock::{ms_to_ns, Clock};
use crate::config::{ConfigError, EngineConfig, PermitSource, SymbolSpec};
use crate::dedupe::{Dedupe, BACKLOG};
use crate::event::{Event, RefusedEvent, Switch};
use crate::fixed::Qty;
use crate::governor::{GovMode, GovReason, Governor, GovernorState, Throttle};
use crate::orders::{EndedOrder, OrderInput, OrderState, Orders, Report};
use crate::p33::{P33Reason, P33};
use crate::permit::{GovPermit, Issue, P33Permit, PermitTable, SlotRef};
use crate::recovery::{RestoreError, Restored, State, SymbolState};
use crate::result::{Block, Outcome, PlanResult};
use crate::types::{Decision, Plan, PlanId, StageMarks, SymbolId, Symbols};

pub use crate::input::{Command, ExternalPermit, History, Input};

/// What admitting a plan found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Seen within the dedupe horizon.
    Duplicate,
    /// Not EXECUTE: no permits needed, not remembered.
    NonExecute,
    /// Remembered, and its slot is open.
    Open(SlotRef),
    /// No free slot right now: try again after apply resolves plans (nothing remembered).
    Full,
    /// Dedupe is full of ids younger than its horizon: refused, nothing remembered.
    DedupeFull,
    /// An EXECUTE plan older than the maximum plan age: refused, nothing remembered.
    Stale,
}

/// The ingest stage: dedupe and slot hand-out. Single-threaded by design: it is the only
/// opener of permit slots, and its dedupe set is its own.
#[derive(Debug)]
pub struct Ingest {
    table: Arc<PermitTable>,
    dedupe: Dedupe,
    seq: u64,
    /// `max_plan_age_ms`.
    max_age_ms: u64,
}

impl Ingest {
    /// Dedupe, then open a slot for an EXECUTE plan accepted at wall time `now_ms`.
    pub fn admit(&mut self, plan: &Plan, now_ms: u64) -> Admit {
        let id = plan.id.0;
        if self.dedupe.contains(id, now_ms) {
            return Admit::Duplicate;
        }
        if plan.decision != Decision::Execute {
            return Admit::NonExecute;
        }
        // The planner's time is the only age a plan carries (0: unknown, taken as now). A
        // plan from the future is not stale: clock skew between hosts is not the plan's age.
        if plan.created_at_ms != 0 && now_ms.saturating_sub(plan.created_at_ms) > self.max_age_ms {
            return Admit::Stale;
        }
        if self.dedupe.is_full(now_ms) {
            return Admit::DedupeFull;
        }
        // Take the slot the previous plan had if it is free again, so a plan that resolves at
        // once (single mode) leaves the next one a slot already in cache; otherwise walk on to
        // the next free slot.
        for _ in 0..self.table.capacity() {
            match self.table.open(self.seq, plan.id) {
                Ok(r) => {
                    // Cannot fail: checked for room above, nothing expired in between; and
                    // not remembered, checked first.
                    let _ = self.dedupe.insert_new(id, now_ms);
                    return Admit::Open(r);
                }
                Err(_) => self.seq = self.seq.wrapping_add(1),
            }
        }
        Admit::Full
    }

    /// Housekeeping after a plan's events have left: forgets a few expired ids (two per plan
    /// keep pace with the intake; a backlog goes [`BACKLOG`] at a time; a full set forgets all
    /// of them when it needs room).
    #[inline]
    pub fn tidy(&mut self, now_ms: u64) {
        let most = if self.dedupe.backlog(now_ms) {
            BACKLOG
        } else {
            2
        };
        self.dedupe.tidy(now_ms, most);
    }

    /// The dedupe set.
    pub fn dedupe(&self) -> &Dedupe {
        &self.dedupe
    }

    /// Remembers `plan`, which the exchange says was ordered, from `now_ms` for the horizon
    /// (longer than needed for an order placed earlier, never shorter).
    fn remember(&mut self, plan: PlanId, now_ms: u64) -> Result<(), RefuseReason> {
        self.dedupe
            .insert(plan.0, now_ms)
            .map_err(|_| RefuseReason::DedupeFull)
    }

    /// The dedupe set, to restore it from the journal.
    pub fn dedupe_mut(&mut self) -> &mut Dedupe {
        &mut self.dedupe
    }
}

/// Everything but the governor and P3.3: ingest, apply, the command path and the orders. The
/// book's only writer. In the pipelined runner this is the front thread.
#[derive(Debug)]
pub struct Front {
    /// Ingest.
    pub ingest: Ingest,
    /// Apply.
    pub apply: Apply,
    book: BookWriter,
    orders: Orders,
    throttle: Throttle,
    table: Arc<PermitTable>,
    gov_state: Arc<GovernorState>,
    clock: Clock,
    permits: PermitSource,
    /// Per symbol: reconciling after a restore and no position snapshot seen since.
    awaiting_position: Vec<bool>,
    /// Per symbol: reconciling until the exchange's order history reaching back to
    /// `history_since_ms` has arrived ([`Front::require_history`]).
    awaiting_history: Vec<bool>,
    /// The oldest start an order history must have to end a symbol's wait for it.
    history_since_ms: u64,
    /// Failover: the epoch of the last lead (0: never led).
    lead_epoch: u64,
    /// Failover, per symbol: where it is in waiting for its ledger after a lead.
    ledger_wait: Vec<LedgerWait>,
    /// Failover, per symbol: plans whose order the exchange's history reported open since the
    /// lead (it may still fill); the ledger is asked for once none is left.
    lead_open: Vec<Vec<PlanId>>,
    /// Plans offered for sampling so far ([`Front::sample`]).
    sampled: u32,
}

/// The plan of an order that ended unsent, unfilled, because this host did not lead
/// (failover): it was never ordered, and the host that leads decides it, so dedupe forgets it
/// (a later delivery here is decided again). The journal's recovery does the same.
pub fn not_led(e: &Event) -> Option<PlanId> {
    match e {
        Event::OrderDone(d)
            if d.code == DoneCode::Unsent
                && d.filled.is_zero()
                && d.reason == UnsentReason::NotLeader.code() =>
        {
            Some(d.plan)
        }
        _ => None,
    }
}

/// After a lead (failover), where a symbol is in getting its ledger: the shared ledger in
/// Redis books every fill of ours once, whichever host saw it, so a new leader starts from it
/// once no order of ours on the symbol can fill any more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LedgerWait {
    /// Not waiting.
    No,
    /// Waiting for the history and for every order of ours on it to be final.
    Quiet,
    /// `LedgerWanted` emitted; waiting for the `LedgerBase`.
    Base,
}

/// One plan in this many carries [`StageMarks`] (the first one does).
pub const STAGE_SAMPLE_EVERY: u32 = 8;

impl Front {
    fn effects(&mut self) -> (&mut Apply, Effects<'_>) {
        (
            &mut self.apply,
            Effects {
                book: &mut self.book,
                orders: &mut self.orders,
                throttle: &self.throttle,
                internal_p33: self.permits == PermitSource::Core,
            },
        )
    }

    /// Admits `plan` (entered at `t_in`): dedupe, non-EXECUTE and refused plans are answered
    /// at once; `Ok(Some(slot))` means it was accepted and its permits are now awaited;
    /// `Err(plan)` means the table is full (nothing happened: offer it again later).
    pub fn admit(
        &mut self,
        plan: Plan,
        t_in: u64,
        out: &mut impl FnMut(Event),
    ) -> Result<Option<SlotRef>, Plan> {
        let now_ms = self.clock.wall_ms(t_in);
        let admit = self.ingest.admit(&plan, now_ms);
        if plan.decision == Decision::Execute && !matches!(admit, Admit::Open(_) | Admit::Full) {
            // Answered without being accepted: the plan itself is journaled, for replay.
            out(Event::PlanSeen {
                plan,
                at_ms: now_ms,
            });
        }
        let outcome = match admit {
            Admit::Open(r) => {
                let deadline = self.apply.deadline_of(t_in);
                out(Event::PlanAccepted {
                    plan,
                    at_ms: now_ms,
                    deadline_ms: self.clock.wall_ms(deadline),
                });
                return Ok(Some(r));
            }
            Admit::Full => return Err(plan),
            Admit::Duplicate if self.apply.hold_duplicate(plan.id) => return Ok(None),
            Admit::Duplicate => Outcome::Duplicate {
                ordered: self.orders.ordered_qty(plan.id),
            },
            Admit::NonExecute => Outcome::NonExecute,
            Admit::DedupeFull => Outcome::Blocked(Block::DedupeFull),
            Admit::Stale => Outcome::Blocked(Block::Stale),
        };
        let now = self.clock.now_ns();
        out(Event::PlanResult(PlanResult {
            plan: plan.id,
            symbol: plan.symbol,
            decision: plan.decision,
            outcome,
            wait_ns: now.saturating_sub(t_in),
            at_ms: self.clock.wall_ms(now),
        }));
        Ok(None)
    }

    /// Housekeeping once a plan entered at `t_in` has been answered or handed to apply (its
    /// intent, if any, has left): forgets a few expired dedupe ids.
    #[inline]
    pub fn tidy(&mut self, t_in: u64) {
        let now_ms = self.clock.wall_ms(t_in);
        self.ingest.tidy(now_ms);
    }

    /// Hands an accepted plan to apply (after its permits were issued, or not); `marks` is
    /// `Some` for a plan sampled for live latency ([`Front::sample`]).
    pub fn submit(
        &mut self,
        slot: SlotRef,
        plan: Plan,
        t_in: u64,
        marks: Option<StageMarks>,
        out: &mut impl FnMut(Event),
    ) {
        let (apply, mut fx) = self.effects();
        apply.submit(slot, plan, t_in, marks, &mut fx, out);
    }

    /// Whether the next plan is sampled for live latency per stage: one in
    /// [`STAGE_SAMPLE_EVERY`], so the clock reads a sample costs stay off most plans.
    #[inline]
    pub fn sample(&mut self) -> bool {
        self.sampled = self.sampled.wrapping_add(1);
        self.sampled % STAGE_SAMPLE_EVERY == 1
    }

    /// Re-checks plans waiting for permits; returns how many ended.
    pub fn poll(&mut self, out: &mut impl FnMut(Event)) -> usize {
        let (apply, mut fx) = self.effects();
        apply.poll(&mut fx, out)
    }

    /// Handles any input but a plan, which came on ring `ring` (reported with a refusal).
    pub fn handle(&mut self, input: Input, ring: u8, out: &mut impl FnMut(Event)) {
        let refused = match input {
            Input::Plan(_) => Ok(()),
            Input::Command(c) => self.command(c, out),
            Input::Permit(p) => self.external_permit(p),
            Input::Order(OrderInput::Report(r))
                if r.source == ReportSource::History && !self.orders.knows(r.plan) =>
            {
                let done = self.recover_order(r, out);
                let now_ms = self.clock.wall_ms(self.clock.now_ns());
                self.track_open(&OrderInput::Report(r), now_ms, out);
                done
            }
            Input::Order(o) => {
                let now_ms = self.clock.wall_ms(self.clock.now_ns());
                let dedupe = self.ingest.dedupe_mut();
                let r = self.orders.apply(&o, now_ms, &mut self.book, &mut |e| {
                    if let Some(plan) = not_led(&e) {
                        // Never sent: the leader decides this plan (failover).
                        dedupe.forget(plan.0);
                    }
                    out(e)
                });
                if let (OrderInput::Report(rep), Ok(())) = (&o, &r) {
                    // The exchange holds this order of a plan the core knows: its plan is
                    // remembered, even one forgotten as never sent.
                    let _ = self.ingest.remember(rep.plan, now_ms);
                }
                self.track_open(&o, now_ms, out);
                self.settle_reconcile(o.symbol(), now_ms, out);
                r
            }
            Input::Reoffer => {
                self.reoffer(out);
                Ok(())
            }
            Input::History(h) => self.history(h, out),
            Input::Lead { epoch } => {
                self.lead(epoch, out);
                Ok(())
            }
        };
        if let Err(reason) = refused {
            let (symbol, plan) = match input {
                Input::Command(
                    Command::SetLedger { symbol, .. }
                    | Command::LedgerBase { symbol, .. }
                    | Command::Position { symbol, .. }
                    | Command::SymbolStatus { symbol, .. }
                    | Command::SetFilters { symbol, .. },
                ) => (symbol, PlanId(0)),
                Input::Order(o) => (o.symbol(), o.plan()),
                Input::History(h) => (h.symbol, PlanId(0)),
                Input::Permit(p) => (SymbolId(0), p.plan()),
                _ => (SymbolId(0), PlanId(0)),
            };
            out(Event::Refused(RefusedEvent {
                ring,
                kind: input.kind().tag(),
                symbol,
                plan,
                reason,
                at_ms: self.clock.wall_ms(self.clock.now_ns()),
            }));
        }
    }

    fn command(&mut self, cmd: Command, out: &mut impl FnMut(Event)) -> Result<(), RefuseReason> {
        let now = self.clock.now_ns();
        let at_ms = self.clock.wall_ms(now);
        let done = |r: Option<Result<(), Overflow>>| match r {
            Some(Ok(())) => Ok(()),
            Some(Err(Overflow)) => Err(RefuseReason::Overflow),
            None => Err(RefuseReason::UnknownSymbol),
        };
        match cmd {
            Command::LedgerBase {
                symbol,
                amount,
                epoch,
            } => {
                if self.ledger_wait.get(symbol.index()) != Some(&LedgerWait::Base)
                    || epoch != self.lead_epoch
                {
                    return Err(RefuseReason::UnwantedBase);
                }
                done(self.book.set_ledger(symbol, amount))?;
                self.ledger_wait[symbol.index()] = LedgerWait::No;
                out(Event::LedgerSet {
                    symbol,
                    amount,
                    at_ms,
                });
                self.settle_reconcile(symbol, at_ms, out);
            }
            Command::SetLedger { symbol, amount } => {
                done(self.book.set_ledger(symbol, amount))?;
                // Failover: once the symbol's ledger is quiet and asked for, an operator's
                // sync is as good an answer as the shared ledger's.
                if let Some(w) = self.ledger_wait.get_mut(symbol.index()) {
                    if *w == LedgerWait::Base {
                        *w = LedgerWait::No;
                    }
                }
                out(Event::LedgerSet {
                    symbol,
                    amount,
                    at_ms,
                });
                self.settle_reconcile(symbol, at_ms, out);
            }
            Command::Position {
                symbol,
                amount,
                mark,
            } => {
                done(self.book.set_exchange(symbol, amount, mark, now))?;
                let mark = self.book.view(symbol).map_or(mark, |v| v.mark);
                out(Event::Position {
                    symbol,
                    amount,
                    mark,
                    time_ms: at_ms,
                });
                if let Some(w) = self.awaiting_position.get_mut(symbol.index()) {
                    *w = false;
                }
                self.settle_reconcile(symbol, at_ms, out);
            }
            Command::SetFilters { symbol, filters } => {
                done(self.book.set_filters(symbol, filters))?;
                out(Event::Filters { symbol, filters });
            }
            Command::AccountMode { hedge } => {
                self.book.set_account_mode(hedge);
                out(Event::AccountMode { hedge, at_ms });
            }
            Command::SymbolStatus { symbol, status } => {
                let trading = status == ContractStatus::Trading;
                done(self.book.set_trading(symbol, trading))?;
                out(Event::SymbolStatus {
                    symbol,
                    status,
                    at_ms,
                });
            }
            Command::Switch(s) => {
                self.switch(s)?;
                out(Event::Switch(s));
            }
        }
        Ok(())
    }

    fn switch(&mut self, s: Switch) -> Result<(), RefuseReason> {
        match s {
            Switch::KillSwitch(on) => self.gov_state.set_kill_switch(on),
            Switch::SymbolKillSwitch(sym, on) => {
                if !self.gov_state.set_symbol_kill_switch(sym, on) {
                    return Err(RefuseReason::UnknownSymbol);
                }
            }
            Switch::TradingState(t) => self.gov_state.set_trading_state(t),
        }
        Ok(())
    }

    /// Issues an externally made permit into the table of a plan waiting for it.
    fn external_permit(&mut self, p: ExternalPermit) -> Result<(), RefuseReason> {
        if self.permits != PermitSource::External {
            return Err(RefuseReason::PermitSource);
        }
        let now = self.clock.now_ns();
        let Some((r, _symbol)) = self.apply.waiting(p.plan()) else {
            return Err(RefuseReason::NotWaiting);
        };
        let issued = match p {
            ExternalPermit::Gov {
                allow,
                reason,
                ttl_ms,
                ..
            } => self.table.issue_gov(
                r,
                GovPermit {
                    allow,
                    reason: if allow {
                        None
                    } else {
                        Some(reason.unwrap_or(GovReason::Denied))
                    },
                    issued_ns: now,
                    deadline_ns: now.saturating_add(ms_to_ns(ttl_ms)),
                },
            ),
            ExternalPermit::P33 {
                allow,
                reason,
                safe_qty,
                side,
                context,
                ttl_ms,
                ..
            } => {
                // An allow must say what to send: a side and a quantity; otherwise it denies.
                let allow = allow && side.is_some() && safe_qty.units() > 0;
                self.table.issue_p33(
                    r,
                    P33Permit {
                        allow,
                        reason: if allow {
                            None
                        } else {
                            Some(reason.unwrap_or(P33Reason::Denied))
                        },
                        issued_ns: now,
                        deadline_ns: now.saturating_add(ms_to_ns(ttl_ms)),
                        safe_qty: if allow { safe_qty } else { Qty::ZERO },
                        side: if allow { side } else { None },
                        context,
                    },
                )
            }
        };
        match issued {
            // A second permit of the same kind for the same plan changes nothing: first write
            // wins, as the legacy keys' SET NX did.
            Issue::Issued | Issue::AlreadyIssued => Ok(()),
            Issue::Stale | Issue::Closed => Err(RefuseReason::NotWaiting),
        }
    }

    /// Offers every order in flight to a (re)attached adapter again, marked "look up first".
    /// Orders the adapter had not been seen to send, or had not answered, become unknown.
    fn reoffer(&mut self, out: &mut impl FnMut(Event)) {
        let at_ms = self.clock.wall_ms(self.clock.now_ns());
        // An order the adapter was not seen to answer may or may not have gone out.
        self.orders.mark_unknown(
            |s| matches!(s, OrderState::Intent | OrderState::Sent),
            UnknownReason::Restart,
            at_ms,
            out,
        );
        let mut offered: Vec<_> = self.orders.iter().map(|o| o.intent).collect();
        offered.sort_unstable_by_key(|i| i.plan.0);
        for mut intent in offered {
            intent.lookup_first = true;
            out(Event::OrderIntent(intent));
        }
    }

    /// An order of ours that the exchange's history holds and this core does not know (its
    /// journal was lost, or is another's): its plan is remembered by dedupe, so a re-delivery
    /// is a duplicate, and it is kept as ended with what it filled. Its fills are not booked:
    /// a core that did not know the order cannot know whether its ledger already holds them
    /// (the operator's ledger sync and P3.3's comparison with the exchange settle that).
    fn recover_order(
        &mut self,
        r: Report,
        out: &mut impl FnMut(Event),
    ) -> Result<(), RefuseReason> {
        if self.book.view(r.symbol).is_none() {
            return Err(RefuseReason::UnknownSymbol);
        }
        let at_ms = self.clock.wall_ms(self.clock.now_ns());
        self.ingest.remember(r.plan, at_ms)?;
        self.orders.recovered(r.plan, EndedOrder::recovered(&r));
        out(Event::OrderRecovered { report: r, at_ms });
        Ok(())
    }

    /// The exchange's order history of a symbol has all arrived: the symbol no longer waits
    /// for it, if it reaches back far enough ([`Front::require_history`]).
    fn history(&mut self, h: History, out: &mut impl FnMut(Event)) -> Result<(), RefuseReason> {
        let Some(waiting) = self.awaiting_history.get_mut(h.symbol.index()) else {
            return Err(RefuseReason::UnknownSymbol);
        };
        if *waiting && h.since_ms > self.history_since_ms {
            return Err(RefuseReason::HistoryTooShort);
        }
        *waiting = false;
        let at_ms = self.clock.wall_ms(self.clock.now_ns());
        out(Event::OrderHistory(h));
        self.want_ledger(h.symbol, at_ms, out);
        self.settle_reconcile(h.symbol, at_ms, out);
        Ok(())
    }

    /// Every symbol stays reconciling until the exchange's history of our orders on it has
    /// arrived, reaching back one dedupe horizon from now: for a start that cannot trust its
    /// own memory (an empty or lost journal, another instance's, a tail lost to a power cut).
    /// Call after [`Front::restore`].
    /// A fresh position snapshot is awaited too: what the exchange holds now is the only
    /// position such a start can trust.
    pub fn require_history(&mut self, out: &mut impl FnMut(Event)) {
        let now_ms = self.clock.wall_ms(self.clock.now_ns());
        self.history_since_ms = now_ms.saturating_sub(self.ingest.dedupe.horizon_ms());
        for i in 0..self.awaiting_history.len() {
            let id = SymbolId(i as u16);
            self.awaiting_history[i] = true;
            self.awaiting_position[i] = true;
            let was = self.book.view(id).is_some_and(|v| v.reconciling);
            let _ = self.book.set_reconciling(id, true);
            if !was {
                out(Event::Reconciling {
                    symbol: id,
                    on: true,
                    unknown_orders: self.orders.unknown_count(id),
                    at_ms: now_ms,
                });
            }
        }
    }

    /// Failover: this host takes the lead under `epoch`. Every symbol waits for the exchange's
    /// history of our orders again ([`Front::require_history`]): the other host may have
    /// ordered any plan while this one did not lead, and only the exchange knows. The
    /// `Leading` event is journaled (a restart before the history arrived keeps waiting) and
    /// asks the exchange adapter for that history.
    fn lead(&mut self, epoch: u64, out: &mut impl FnMut(Event)) {
        self.require_history(out);
        self.lead_epoch = epoch;
        self.ledger_wait.fill(LedgerWait::Quiet);
        self.lead_open.iter_mut().for_each(Vec::clear);
        out(Event::Leading {
            epoch,
            since_ms: self.history_since_ms,
            at_ms: self.clock.wall_ms(self.clock.now_ns()),
        });
    }

    /// After a lead: keeps the plans whose order the exchange's history reported open, drops
    /// those reported final, and asks for the symbol's ledger once it is quiet.
    fn track_open(&mut self, o: &OrderInput, at_ms: u64, out: &mut impl FnMut(Event)) {
        let symbol = o.symbol();
        let Some(open) = self.lead_open.get_mut(symbol.index()) else {
            return;
        };
        if self.ledger_wait[symbol.index()] == LedgerWait::No {
            return;
        }
        if let OrderInput::Report(r) = o {
            if r.status.is_final() {
                open.retain(|p| *p != r.plan);
            } else if r.source == ReportSource::History && !open.contains(&r.plan) {
                open.push(r.plan);
            }
        }
        self.want_ledger(symbol, at_ms, out);
    }

    /// Emits `LedgerWanted` for `symbol` once, after a lead, when its history is complete and
    /// no order of ours on it can still fill: from then on its ledger moves no more until the
    /// base arrives, so the shared ledger read for it is exact.
    fn want_ledger(&mut self, symbol: SymbolId, at_ms: u64, out: &mut impl FnMut(Event)) {
        let i = symbol.index();
        if self.ledger_wait.get(i) != Some(&LedgerWait::Quiet)
            || self.awaiting_history[i]
            || !self.lead_open[i].is_empty()
            || self.orders.iter().any(|o| o.symbol == symbol)
        {
            return;
        }
        self.ledger_wait[i] = LedgerWait::Base;
        out(Event::LedgerWanted {
            symbol,
            epoch: self.lead_epoch,
            at_ms,
        });
    }

    /// The oldest start an order history must have to end a symbol's wait for it (0 when
    /// none was ever required).
    pub fn history_since_ms(&self) -> u64 {
        self.history_since_ms
    }

    /// Symbols still waiting for the exchange's order history.
    pub fn awaiting_history(&self) -> usize {
        self.awaiting_history.iter().filter(|w| **w).count()
    }

    /// Ends `symbol`'s reconciling once a position snapshot arrived after the restore and no
    /// order on it has an unknown outcome. Nothing when it is not reconciling.
    fn settle_reconcile(&mut self, symbol: SymbolId, at_ms: u64, out: &mut impl FnMut(Event)) {
        if !self.book.view(symbol).is_some_and(|v| v.reconciling)
            || self.awaiting_position.get(symbol.index()) != Some(&false)
            || self.awaiting_history.get(symbol.index()) != Some(&false)
            || self.ledger_wait.get(symbol.index()) != Some(&LedgerWait::No)
            || self.orders.unknown_on(symbol)
        {
            return;
        }
        let _ = self.book.set_reconciling(symbol, false);
        out(Event::Reconciling {
            symbol,
            on: false,
            unknown_orders: 0,
            at_ms,
        });
    }

    /// Puts back what the journal's events add up to (before any input), then answers what
    /// the dead process left open: see [`crate::recovery`]. Emits the events that makes. The
    /// restored orders are offered to the adapter again by the [`Input::Reoffer`] the caller
    /// sends next, once it has handed the engine what the adapter reported while the process
    /// was down (so an order whose end is already reported is not offered again).
    pub fn restore(
        &mut self,
        state: &State,
        out: &mut impl FnMut(Event),
    ) -> Result<Restored, RestoreError> {
        let mut done = Restored::default();
        if state.is_empty() {
            return Ok(done);
        }
        let now_ns = self.clock.now_ns();
        let now_ms = self.clock.wall_ms(now_ns);
        for (i, s) in state.symbols.iter().enumerate() {
            let id = SymbolId(i as u16);
            if i >= self.awaiting_position.len() {
                if *s == SymbolState::default() {
                    continue;
                }
                return Err(RestoreError::UnknownSymbol(i));
            }
            let ok = |r: Option<Result<(), Overflow>>| match r {
                Some(Ok(())) => Ok(()),
                _ => Err(RestoreError::Overflow),
            };
            ok(self.book.set_ledger(id, s.ledger))?;
            if let Some((amount, at_ms)) = s.exchange {
                ok(self
                    .book
                    .set_exchange(id, amount, s.mark, self.clock.engine_ns(at_ms)))?;
            }
            if let Some(f) = s.filters {
                ok(self.book.set_filters(id, f))?;
            }
            self.gov_state.set_symbol_kill_switch(id, s.kill);
            let times: Vec<u64> = s
                .executions
                .iter()
                .map(|ms| self.clock.engine_ns(*ms))
                .collect();
            self.gov_state
                .restore_history(id, &times, s.day, s.day_notional);
        }
        self.gov_state.set_kill_switch(state.kill);
        self.gov_state.set_trading_state(state.trading);
        let dedupe = self.ingest.dedupe_mut();
        let live: Vec<(u64, u64)> = state
            .dedupe
            .iter()
            .copied()
            .filter(|(_, at)| at.saturating_add(dedupe.horizon_ms()) > now_ms)
            .collect();
        if live.len() > dedupe.capacity() {
            return Err(RestoreError::DedupeTooSmall {
                needed: live.len(),
                capacity: dedupe.capacity(),
            });
        }
        for (id, at) in &live {
            // Cannot fail: checked for room above.
            let _ = dedupe.insert(*id, *at);
        }
        done.dedupe = live.len();
        for o in state.orders.values() {
            if (o.symbol.index()) >= self.awaiting_position.len() {
                return Err(RestoreError::UnknownSymbol(o.symbol.index()));
            }
            self.orders
                .restore(*o, &mut self.book)
                .map_err(|_| RestoreError::TooManyOrders {
                    needed: state.orders.len(),
                })?;
        }
        done.orders = state.orders.len();
        self.orders.restore_ended(state.ended.iter().copied());
        // Whatever was under way may or may not have reached the exchange.
        self.orders.mark_unknown(
            |s| s != OrderState::Unknown,
            UnknownReason::Restart,
            now_ms,
            out,
        );
        for p in state.pending.values() {
            let outcome = match p.intent {
                Some(i) => {
                    done.executed += 1;
                    Outcome::Executed { qty: i.qty }
                }
                None => {
                    done.interrupted += 1;
                    Outcome::Blocked(Block::Interrupted)
                }
            };
            out(Event::PlanResult(PlanResult {
                plan: p.plan.id,
                symbol: p.plan.symbol,
                decision: p.plan.decision,
                outcome,
                wait_ns: 0,
                at_ms: now_ms,
            }));
        }
        // A lead whose exchange history had not all arrived keeps waiting for it.
        // A lead whose ledger has not all come keeps waiting for it; such a symbol reads the
        // history again (the exchange adapter sends it to a restarted daemon), which says
        // again which of our orders on it are open.
        if let Some(lead) = &state.lead {
            self.history_since_ms = lead.since_ms;
            self.lead_epoch = state.epoch;
            for i in 0..self.awaiting_history.len() {
                let id = i as u16;
                if !lead.ledger.contains(&id) {
                    self.ledger_wait[i] = LedgerWait::Quiet;
                    self.awaiting_history[i] = true;
                } else if !lead.history.contains(&id) {
                    self.awaiting_history[i] = true;
                }
            }
        }
        // A start that could not trust its journal still waits for the history it asked for.
        if let Some(w) = &state.history_wait {
            self.history_since_ms = if state.lead.is_some() {
                self.history_since_ms.min(w.since_ms)
            } else {
                w.since_ms
            };
            for i in 0..self.awaiting_history.len() {
                if !w.done.contains(&(i as u16)) {
                    self.awaiting_history[i] = true;
                }
            }
        }
        for i in 0..self.awaiting_position.len() {
            let id = SymbolId(i as u16);
            let _ = self.book.set_reconciling(id, true);
            self.awaiting_position[i] = true;
            done.reconciling += 1;
            out(Event::Reconciling {
                symbol: id,
                on: true,
                unknown_orders: self.orders.unknown_count(id),
                at_ms: now_ms,
            });
        }
        Ok(done)
    }

    /// The book's writer (recovery).
    pub fn book_mut(&mut self) -> &mut BookWriter {
        &mut self.book
    }

    /// The book as its writer sees it.
    pub fn book(&self) -> &BookWriter {
        &self.book
    }

    /// Orders in flight.
    pub fn orders(&self) -> &Orders {
        &self.orders
    }

    /// Orders in flight and the book, to restore them from the journal.
    pub fn orders_and_book_mut(&mut self) -> (&mut Orders, &mut BookWriter) {
        (&mut self.orders, &mut self.book)
    }

    /// The governor's switches and execution history.
    pub fn gov_state(&self) -> &GovernorState {
        &self.gov_state
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }
}

/// Shared handles to the engine's state, for inspection from other threads.
#[derive(Clone, Debug)]
pub struct Shared {
    /// Permit table.
    pub table: Arc<PermitTable>,
    /// Book (read side).
    pub book: Arc<Book>,
    /// Governor switches and history.
    pub gov_state: Arc<GovernorState>,
    /// Symbols.
    pub symbols: Arc<Symbols>,
}

/// The whole chain on one thread, or split into parts for the pipelined runner.
#[derive(Debug)]
pub struct Engine {
    /// Ingest, apply, commands, orders.
    pub front: Front,
    /// Governor.
    pub governor: Governor,
    /// P3.3.
    pub p33: P33,
    shared: Shared,
    cfg: EngineConfig,
}

impl Engine {
    /// Builds an engine; all memory is allocated here.
    pub fn new(cfg: EngineConfig, clock: Clock) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let symbols =
            Symbols::new(cfg.symbols.iter().map(SymbolSpec::label)).map_err(ConfigError)?;
        let specs: Vec<_> = cfg
            .symbols
            .iter()
            .map(|s| (s.tolerance, s.filters, s.side))
            .collect();
        let (book, writer, reservations) = Book::with_sides(&specs);
        let table = Arc::new(PermitTable::new(cfg.table_capacity));
        let gov_state = Arc::new(GovernorState::new(symbols.len()));
        let governor = Governor::new(cfg.governor.clone(), gov_state.clone());
        let mut throttle_cfg = cfg.governor.clone();
        if cfg.permits == PermitSource::External {
            // The legacy governor decides; the core only records executions.
            throttle_cfg.mode = GovMode::Testnet;
        }
        let throttle = Throttle::new(throttle_cfg, gov_state.clone(), book.clone(), clock.clone());
        let p33 = P33::new(cfg.p33, reservations);
        let apply = Apply::new(table.clone(), clock.clone(), cfg.apply_wait_ms);
        let front = Front {
            ingest: Ingest {
                table: table.clone(),
                dedupe: Dedupe::new(cfg.dedupe_capacity, cfg.dedupe_horizon_ms),
                seq: 0,
                max_age_ms: cfg.max_plan_age_ms,
            },
            apply,
            book: writer,
            orders: Orders::new(cfg.max_orders),
            throttle,
            table: table.clone(),
            gov_state: gov_state.clone(),
            clock,
            permits: cfg.permits,
            awaiting_position: vec![false; symbols.len()],
            awaiting_history: vec![false; symbols.len()],
            history_since_ms: 0,
            lead_epoch: 0,
            ledger_wait: vec![LedgerWait::No; symbols.len()],
            lead_open: vec![Vec::new(); symbols.len()],
            sampled: 0,
        };
        Ok(Engine {
            front,
            governor,
            p33,
            shared: Shared {
                table,
                book,
                gov_state,
                symbols: Arc::new(symbols),
            },
            cfg,
        })
    }

    /// Handles to shared state.
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Symbols.
    pub fn symbols(&self) -> &Symbols {
        &self.shared.symbols
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Puts back a state folded from the journal: see [`Front::restore`].
    pub fn restore(
        &mut self,
        state: &State,
        out: &mut impl FnMut(Event),
    ) -> Result<Restored, RestoreError> {
        self.front.restore(state, out)
    }

    /// Every symbol waits for the exchange's order history: see [`Front::require_history`].
    pub fn require_history(&mut self, out: &mut impl FnMut(Event)) {
        self.front.require_history(out)
    }

    /// The whole chain for one plan: ingest → governor → P3.3 → apply. Events go to `out`.
    /// `Err(plan)` hands the plan back when the permit table is full.
    pub fn process_plan(&mut self, plan: Plan, out: &mut impl FnMut(Event)) -> Result<(), Plan> {
        let t_in = self.front.clock.now_ns();
        self.process_plan_at(plan, t_in, out)
    }

    /// [`Engine::process_plan`] for a plan that entered the engine at `t_in`.
    pub fn process_plan_at(
        &mut self,
        plan: Plan,
        t_in: u64,
        out: &mut impl FnMut(Event),
    ) -> Result<(), Plan> {
        // A new plan id lands at a random line of the dedupe filter and of the orders' tables,
        // which may have left the cache since the last plan: start loading them, and judge the
        // plan meanwhile (both verdicts read state that admitting leaves as is), so the loads
        // overlap with work instead of the slot's CAS waiting for them.
        self.front.ingest.dedupe().prefetch(plan.id.0);
        let execute = plan.decision == Decision::Execute;
        if execute {
            self.front.orders.prefetch(plan.id);
        }
        let mut marks = (execute && self.front.sample()).then(StageMarks::default);
        let verdicts = (self.cfg.permits == PermitSource::Core && execute).then(|| {
            let gov = self.governor.evaluate(&plan, t_in);
            if let Some(m) = &mut marks {
                m.gov_ns = StageMarks::offset(t_in, self.front.clock.now_ns());
            }
            let p33 = self.p33.evaluate(&plan, t_in);
            if let Some(m) = &mut marks {
                m.p33_ns = StageMarks::offset(t_in, self.front.clock.now_ns());
            }
            (gov, p33)
        });
        if let Some(r) = self.front.admit(plan, t_in, out)? {
            if let Some((gov, p33)) = verdicts {
                let table = &self.shared.table;
                table.issue_gov(r, gov);
                self.p33.issue_evaluated(table, r, &plan, p33);
            }
            self.front.submit(r, plan, t_in, marks, out);
        }
        self.front.tidy(t_in);
        Ok(())
    }

    /// Handles any input on the calling thread; `ring` names where it came from (reported with
    /// a refusal). `Err` hands a plan back when the table is full.
    pub fn handle(
        &mut self,
        input: Input,
        ring: u8,
        out: &mut impl FnMut(Event),
    ) -> Result<(), Plan> {
        match input {
            Input::Plan(p) => self.process_plan(p, out),
            other => {
                self.front.handle(other, ring, out);
                Ok(())
            }
        }
    }

    /// Re-checks plans waiting for permits.
    pub fn poll(&mut self, out: &mut impl FnMut(Event)) -> usize {
        self.front.poll(out)
    }

    /// Splits into the stages for separate threads.
    pub fn into_parts(self) -> (Front, Governor, P33, Shared, PermitSource) {
        (
            self.front,
            self.governor,
            self.p33,
            self.shared,
            self.cfg.permits,
        )
    }
}
