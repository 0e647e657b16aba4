//! Recovery: what the journal's events add up to, and putting it back into a new engine.
//!
//! The engine's events ([`crate::event`]) are appended to the journal before anything else
//! leaves the process with them. [`State`] folds them, in journal order, into what a restarted
//! engine must not lose:
//!
//! | kept | from |
//! |------|------|
//! | ledger, exchange amount, mark, filters per symbol | `LedgerSet`, `Fill::ledger_after`, `Position`, `Filters` |
//! | switches (kill, symbol kill, trading state) | `Switch` |
//! | whether a symbol reconciles (for audits; a restart reconciles every symbol anyway) | `Reconciling` |
//! | the governor's execution history (rate limit, cooldown, day notional) | `OrderIntent` |
//! | the dedupe set, for its horizon | `PlanAccepted` |
//! | plans accepted and not yet answered | `PlanAccepted` − `PlanResult` |
//! | orders in flight, their state and fills | `OrderIntent` … `OrderDone` |
//! | orders that ended lately, with what they filled (a late report of more fill is booked) | `OrderDone` |
//!
//! [`Engine::restore`](crate::engine::Engine::restore) puts a state back and then, because the
//! process died at an unknown moment:
//! - every plan accepted but not answered gets its one result: `executed` when its order
//!   intent was journaled (the order may have left), otherwise `BLOCK interrupted` (its permits
//!   were never consumed, so no order exists);
//! - every order in flight becomes `unknown` (reason `restart`) and is offered again marked
//!   "look it up by client order id before sending anything";
//! - every symbol **reconciles**: its EXECUTE plans are denied `reconciling` until a position
//!   snapshot newer than the restart has arrived and no order on it has an unknown outcome.
//!
//! The permits of a plan that was waiting are not put back: such a plan is answered at once
//! (above), so no permit of the dead process is ever consumed.
//!
//! A state also has a compact binary form ([`State::encode`]) for journal snapshots.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use quantum_ipc::wire::{Limits, Message, Record, RECORD_SIZE};

use crate::book::Filters;
use crate::event::{Event, Switch};
use crate::fixed::{Price, Qty};
use crate::governor::{TradingState, MAX_RATE_LIMIT};
use crate::orders::{EndedOrder, Order, OrderState};
use crate::types::{OrderIntent, Plan};

/// A plan accepted and not yet answered when the journal ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingPlan {
    /// The plan.
    pub plan: Plan,
    /// When it was accepted (ms since the Unix epoch).
    pub at_ms: u64,
    /// Apply's deadline (ms since the Unix epoch).
    pub deadline_ms: u64,
    /// Its order intent, when the permits were consumed before the process died.
    pub intent: Option<OrderIntent>,
}

/// One symbol's part of a [`State`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SymbolState {
    /// Ledger amount.
    pub ledger: Qty,
    /// The last exchange position and when it was applied (ms since the Unix epoch).
    pub exchange: Option<(Qty, u64)>,
    /// The last mark price (zero when none).
    pub mark: Price,
    /// The last exchange filters.
    pub filters: Option<Filters>,
    /// The symbol's kill switch.
    pub kill: bool,
    /// Reconciling (its EXECUTE plans denied `reconciling`), as the last `Reconciling` event
    /// said. [`Engine::restore`](crate::engine::Engine::restore) does not read it: every
    /// symbol of a restarted engine reconciles.
    pub reconciling: bool,
    /// Times of its last executions (ms since the Unix epoch), oldest first, at most
    /// [`MAX_RATE_LIMIT`].
    pub executions: VecDeque<u64>,
    /// The UTC day `day_notional` belongs to.
    pub day: u64,
    /// Notional of opening orders executed that day (quote units).
    pub day_notional: i64,
}

/// What the journal's events add up to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    /// Sequence number of the last event folded in (0: none).
    pub seq: u64,
    /// Per symbol, by id.
    pub symbols: Vec<SymbolState>,
    /// Global kill switch.
    pub kill: bool,
    /// Trading state.
    pub trading: TradingState,
    /// Plan ids accepted within the dedupe horizon, with their acceptance time (ms), oldest
    /// first.
    pub dedupe: VecDeque<(u64, u64)>,
    /// Plans accepted and not yet answered, by plan id.
    pub pending: BTreeMap<u64, PendingPlan>,
    /// Orders in flight, by plan id.
    pub orders: BTreeMap<u64, Order>,
    /// The orders that ended last, oldest first.
    pub ended: VecDeque<(u64, EndedOrder)>,
    /// The dedupe horizon (ids older than this before the newest event are dropped).
    pub horizon_ms: u64,
    /// How many ended orders are remembered.
    pub ended_capacity: usize,
    /// Failover: the epoch of the last lead this core took (0: never led under a lease).
    pub epoch: u64,
    /// Failover: what the last lead still waits for; `None` when this core never led.
    pub lead: Option<LeadWait>,
    /// Failover: plans forgotten as never sent for want of the lead, with when they were
    /// accepted, in case the exchange shows an order for one after all (not in snapshots:
    /// a fill after one then counts from its own time).
    pub forgotten: BTreeMap<u64, u64>,
    /// A start that could not trust its journal (`Started` with `history`) waits, per symbol,
    /// for the exchange's history of our orders; `None` once every symbol's arrived (or when
    /// no start required it). A restart before then keeps waiting.
    pub history_wait: Option<HistoryWait>,
}

/// What a start that could not trust its journal still waits for: per symbol, the exchange's
/// order history reaching back to `since_ms`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryWait {
    /// Start of the history awaited (ms since the Unix epoch).
    pub since_ms: u64,
    /// Symbols whose history has arrived.
    pub done: BTreeSet<u16>,
}

/// After a lead (failover), what each symbol has received of what it waits for before it
/// trades: the exchange's history of our orders, then its ledger from the shared ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeadWait {
    /// Start of the exchange history awaited (ms since the Unix epoch).
    pub since_ms: u64,
    /// Symbols whose history has arrived.
    pub history: BTreeSet<u16>,
    /// Symbols whose ledger was asked for (`LedgerWanted`).
    pub wanted: BTreeSet<u16>,
    /// Symbols whose ledger was set after it was asked for.
    pub ledger: BTreeSet<u16>,
}

/// Where folding found something it cannot use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateError(pub String);

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StateError {}

impl State {
    /// The state of an empty journal, for `symbols` symbols, remembering plan ids for
    /// `horizon_ms` and the last `ended_capacity` ended orders.
    pub fn new(symbols: usize, horizon_ms: u64, ended_capacity: usize) -> State {
        State {
            seq: 0,
            symbols: vec![SymbolState::default(); symbols],
            kill: false,
            trading: TradingState::Active,
            dedupe: VecDeque::new(),
            pending: BTreeMap::new(),
            orders: BTreeMap::new(),
            ended: VecDeque::new(),
            horizon_ms,
            ended_capacity: ended_capacity.max(1),
            epoch: 0,
            lead: None,
            forgotten: BTreeMap::new(),
            history_wait: None,
        }
    }

    /// True when no event was folded in (a first start: nothing to recover).
    pub fn is_empty(&self) -> bool {
        self.seq == 0
    }

    fn symbol(&mut self, id: u16) -> &mut SymbolState {
        let i = usize::from(id);
        if i >= self.symbols.len() {
            self.symbols.resize(i + 1, SymbolState::default());
        }
        &mut self.symbols[i]
    }

    /// Remembers plan `id` from `at_ms` (event times only grow), forgetting the ids whose
    /// horizon ended by then.
    fn remember(&mut self, id: u64, at_ms: u64) {
        while self
            .dedupe
            .front()
            .is_some_and(|(_, t)| t.saturating_add(self.horizon_ms) <= at_ms)
        {
            self.dedupe.pop_front();
        }
        self.dedupe.push_back((id, at_ms));
    }

    /// Keeps `plan`'s order as ended, forgetting the oldest beyond the capacity.
    fn end(&mut self, plan: u64, o: EndedOrder) {
        if self.ended.len() == self.ended_capacity {
            self.ended.pop_front();
        }
        self.ended.push_back((plan, o));
    }

    /// Folds a journal record (`seq`, its bytes) in.
    pub fn apply_record(&mut self, seq: u64, record: &Record) -> Result<(), StateError> {
        let m = Message::decode(record, &Limits::default())
            .map_err(|e| StateError(format!("event {seq}: {e}")))?;
        let e = Event::from_message(&m).map_err(|e| StateError(format!("event {seq}: {e}")))?;
        self.apply(seq, &e);
        Ok(())
    }

    /// Folds event number `seq` in.
    pub fn apply(&mut self, seq: u64, e: &Event) {
        self.seq = seq;
        match *e {
            Event::PlanAccepted {
                plan,
                at_ms,
                deadline_ms,
            } => {
                self.remember(plan.id.0, at_ms);
                self.pending.insert(
                    plan.id.0,
                    PendingPlan {
                        plan,
                        at_ms,
                        deadline_ms,
                        intent: None,
                    },
                );
            }
            // The account's mode and a symbol's status are told again by the exchange bridge
            // at every start (a restarted core assumes neither: see `BookView::account_gate`).
            Event::GovPermit(_)
            | Event::P33Permit(_)
            | Event::Refused(_)
            | Event::PlanSeen { .. }
            | Event::AccountMode { .. }
            | Event::SymbolStatus { .. } => {}
            Event::Started {
                history: true,
                since_ms,
                ..
            } => {
                self.history_wait = Some(HistoryWait {
                    since_ms,
                    done: BTreeSet::new(),
                });
            }
            // A trusted start keeps what an earlier one still waits for.
            Event::Started { history: false, .. } => {}
            Event::Reconciling { symbol, on, .. } => self.symbol(symbol.0).reconciling = on,
            Event::OrderHistory(h) => {
                if let Some(l) = &mut self.lead {
                    if h.since_ms <= l.since_ms {
                        l.history.insert(h.symbol.0);
                    }
                }
                let symbols = self.symbols.len();
                if let Some(w) = &mut self.history_wait {
                    if h.since_ms <= w.since_ms {
                        w.done.insert(h.symbol.0);
                    }
                    if (0..symbols).all(|i| w.done.contains(&(i as u16))) {
                        self.history_wait = None;
                    }
                }
            }
            Event::Leading {
                epoch, since_ms, ..
            } => {
                self.epoch = epoch;
                self.lead = Some(LeadWait {
                    since_ms,
                    ..LeadWait::default()
                });
            }
            Event::LedgerWanted { symbol, .. } => {
                if let Some(l) = &mut self.lead {
                    l.wanted.insert(symbol.0);
                }
            }
            Event::OrderRecovered { report: r, at_ms } => {
                self.remember(r.plan.0, at_ms);
                if !self.orders.contains_key(&r.plan.0)
                    && !self.ended.iter().any(|(p, _)| *p == r.plan.0)
                {
                    self.end(r.plan.0, EndedOrder::recovered(&r));
                }
            }
            Event::OrderIntent(i) if !i.lookup_first => {
                let i = i.kept();
                self.orders.insert(
                    i.plan.0,
                    Order {
                        symbol: i.symbol,
                        side: i.side,
                        qty: i.qty,
                        filled: Qty::ZERO,
                        state: OrderState::Intent,
                        order_id: 0,
                        intent: i,
                    },
                );
                if let Some(p) = self.pending.get_mut(&i.plan.0) {
                    p.intent = Some(i);
                }
                let s = self.symbol(i.symbol.0);
                if s.executions.len() == MAX_RATE_LIMIT as usize {
                    s.executions.pop_front();
                }
                s.executions.push_back(i.at_ms);
                if !i.reduce_only {
                    let day = i.at_ms / 86_400_000;
                    if s.day != day {
                        s.day = day;
                        s.day_notional = 0;
                    }
                    let n = i64::try_from(i.qty.notional(s.mark)).unwrap_or(i64::MAX);
                    s.day_notional = s.day_notional.saturating_add(n);
                }
            }
            Event::OrderIntent(_) => {}
            Event::PlanResult(r) => {
                if !r.outcome.is_duplicate() {
                    self.pending.remove(&r.plan.0);
                }
            }
            Event::OrderSent { plan, .. } => {
                if let Some(o) = self.orders.get_mut(&plan.0) {
                    if matches!(o.state, OrderState::Intent | OrderState::Unknown) {
                        o.state = OrderState::Sent;
                    }
                }
            }
            Event::OrderAccepted { plan, order_id, .. } => {
                if let Some(o) = self.orders.get_mut(&plan.0) {
                    o.state = OrderState::Accepted;
                    o.order_id = order_id;
                }
            }
            Event::Fill(f) => {
                if let Some(o) = self.orders.get_mut(&f.plan.0) {
                    o.filled = f.cum_qty;
                } else if let Some((_, e)) =
                    self.ended.iter_mut().rev().find(|(p, _)| *p == f.plan.0)
                {
                    // A late fill of an order that had ended: the exchange holds the order,
                    // so its plan is remembered, even one forgotten as never sent (as the
                    // engine remembers the plan of any report of ours).
                    e.filled = f.cum_qty;
                    if !self.dedupe.iter().any(|(id, _)| *id == f.plan.0) {
                        // From when it was first accepted if that is known, else from the
                        // fill's time or the newest time remembered, whichever is later.
                        let newest = self.dedupe.back().map_or(0, |(_, t)| *t);
                        let at = self
                            .forgotten
                            .remove(&f.plan.0)
                            .unwrap_or(f.time_ms.max(newest));
                        self.dedupe.push_back((f.plan.0, at));
                    }
                }
                self.symbol(f.symbol.0).ledger = f.ledger_after;
            }
            Event::OrderDone(d) => {
                if crate::engine::not_led(e).is_some() {
                    // Never sent, the leader's to decide: forgotten, as the engine does.
                    if let Some(at) = self.dedupe.iter().find(|(id, _)| *id == d.plan.0) {
                        self.forgotten.insert(d.plan.0, at.1);
                    }
                    self.dedupe.retain(|(id, _)| *id != d.plan.0);
                }
                let Some(o) = self.orders.remove(&d.plan.0) else {
                    return;
                };
                self.end(
                    d.plan.0,
                    EndedOrder::new(o.symbol, o.side, o.qty, d.filled, d.code),
                );
            }
            Event::OrderUnknown { plan, .. } => {
                if let Some(o) = self.orders.get_mut(&plan.0) {
                    o.state = OrderState::Unknown;
                }
            }
            Event::OrderResolved { plan, found, .. } => {
                if let (false, Some(o)) = (found, self.orders.get_mut(&plan.0)) {
                    o.state = OrderState::Intent;
                }
            }
            Event::LedgerSet { symbol, amount, .. } => {
                self.symbol(symbol.0).ledger = amount;
                if let Some(l) = &mut self.lead {
                    if l.wanted.contains(&symbol.0) {
                        l.ledger.insert(symbol.0);
                    }
                }
            }
            Event::Position {
                symbol,
                amount,
                mark,
                time_ms,
            } => {
                let s = self.symbol(symbol.0);
                s.exchange = Some((amount, time_ms));
                if !mark.is_zero() {
                    s.mark = mark;
                }
            }
            Event::Filters { symbol, filters } => self.symbol(symbol.0).filters = Some(filters),
            Event::Switch(Switch::KillSwitch(on)) => self.kill = on,
            Event::Switch(Switch::SymbolKillSwitch(s, on)) => self.symbol(s.0).kill = on,
            Event::Switch(Switch::TradingState(t)) => self.trading = t,
        }
    }

    /// The compact binary form (for snapshots).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(
            64 + self.symbols.len() * 200
                + self.dedupe.len() * 16
                + self.pending.len() * 130
                + self.orders.len() * 90
                + self.ended.len() * 28,
        ));
        w.u32(STATE_VERSION);
        w.u64(self.seq);
        w.u64(self.horizon_ms);
        w.u64(self.ended_capacity as u64);
        w.u8(u8::from(self.kill));
        w.u8(self.trading.code());
        w.u64(self.symbols.len() as u64);
        for s in &self.symbols {
            w.i64(s.ledger.units());
            match s.exchange {
                Some((q, t)) => {
                    w.u8(1);
                    w.i64(q.units());
                    w.u64(t);
                }
                None => w.u8(0),
            }
            w.i64(s.mark.units());
            match &s.filters {
                Some(f) => {
                    w.u8(1);
                    w.record(
                        &Message::SymbolFilters(crate::wire::filters_out(
                            crate::types::SymbolId(0),
                            f,
                        ))
                        .encode(),
                    );
                }
                None => w.u8(0),
            }
            w.u8(u8::from(s.kill));
            w.u8(u8::from(s.reconciling));
            w.u64(s.executions.len() as u64);
            for t in &s.executions {
                w.u64(*t);
            }
            w.u64(s.day);
            w.i64(s.day_notional);
        }
        w.u64(self.dedupe.len() as u64);
        for (id, t) in &self.dedupe {
            w.u64(*id);
            w.u64(*t);
        }
        w.u64(self.pending.len() as u64);
        for p in self.pending.values() {
            let accepted = Event::PlanAccepted {
                plan: p.plan,
                at_ms: p.at_ms,
                deadline_ms: p.deadline_ms,
            };
            w.record(&accepted.to_message().encode());
            match &p.intent {
                Some(i) => {
                    w.u8(1);
                    w.record(&Message::OrderIntent(crate::wire::intent_out(i)).encode());
                }
                None => w.u8(0),
            }
        }
        w.u64(self.orders.len() as u64);
        for o in self.orders.values() {
            w.record(&Message::OrderIntent(crate::wire::intent_out(&o.intent)).encode());
            w.u8(state_code(o.state));
            w.i64(o.filled.units());
            w.u64(o.order_id);
        }
        w.u64(self.ended.len() as u64);
        for (id, e) in &self.ended {
            w.u64(*id);
            w.u16(e.symbol.0);
            w.u8(e.side.code());
            w.i64(e.qty.units());
            w.i64(e.filled.units());
            w.u8(u8::from(e.may_fill_late));
        }
        // The failover trailer (a snapshot without it reads as never led).
        w.u64(self.epoch);
        match &self.lead {
            Some(l) => {
                w.u8(1);
                w.u64(l.since_ms);
                for set in [&l.history, &l.wanted, &l.ledger] {
                    w.u64(set.len() as u64);
                    for id in set {
                        w.u16(*id);
                    }
                }
            }
            None => w.u8(0),
        }
        // The history trailer (a snapshot without it reads as waiting for no history).
        match &self.history_wait {
            Some(h) => {
                w.u8(1);
                w.u64(h.since_ms);
                w.u64(h.done.len() as u64);
                for id in &h.done {
                    w.u16(*id);
                }
            }
            None => w.u8(0),
        }
        w.0
    }

    /// Reads [`State::encode`]'s form back.
    pub fn decode(b: &[u8]) -> Result<State, StateError> {
        let mut r = Reader { b, at: 0 };
        let version = r.u32()?;
        if !(1..=STATE_VERSION).contains(&version) {
            return Err(StateError(format!(
                "snapshot state version {version}, this binary reads 1 to {STATE_VERSION}"
            )));
        }
        let seq = r.u64()?;
        let horizon_ms = r.u64()?;
        // A capacity, not a count of what follows: bounded like `max_orders`, not by the file.
        let ended_capacity = r.u64()?;
        if ended_capacity > MAX_ENDED_CAPACITY {
            return Err(StateError(format!(
                "snapshot: ended-order capacity {ended_capacity} exceeds {MAX_ENDED_CAPACITY}"
            )));
        }
        let ended_capacity = (ended_capacity as usize).max(1);
        let kill = r.u8()? != 0;
        let trading = TradingState::from_code(r.u8()?)
            .ok_or_else(|| StateError("snapshot: bad trading state".into()))?;
        let n = r.len()?;
        let mut symbols = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let ledger = Qty::from_units(r.i64()?);
            let exchange = match r.u8()? {
                0 => None,
                _ => Some((Qty::from_units(r.i64()?), r.u64()?)),
            };
            let mark = Price::from_units(r.i64()?);
            let filters = match r.u8()? {
                0 => None,
                _ => match r.message()? {
                    Message::SymbolFilters(f) => Some(crate::wire::filters_in(&f)),
                    m => {
                        return Err(StateError(format!(
                            "snapshot: {:?} where filters belong",
                            m.kind()
                        )))
                    }
                },
            };
            let kill = r.u8()? != 0;
            // Version 1 did not keep it (its symbols read as not reconciling).
            let reconciling = version >= 2 && r.u8()? != 0;
            let ne = r.len()?;
            let mut executions = VecDeque::with_capacity(ne.min(MAX_RATE_LIMIT as usize));
            for _ in 0..ne {
                executions.push_back(r.u64()?);
            }
            let day = r.u64()?;
            let day_notional = r.i64()?;
            symbols.push(SymbolState {
                ledger,
                exchange,
                mark,
                filters,
                kill,
                reconciling,
                executions,
                day,
                day_notional,
            });
        }
        let n = r.len()?;
        let mut dedupe = VecDeque::with_capacity(n.min(1 << 24));
        for _ in 0..n {
            dedupe.push_back((r.u64()?, r.u64()?));
        }
        let n = r.len()?;
        let mut pending = BTreeMap::new();
        for _ in 0..n {
            let Event::PlanAccepted {
                plan,
                at_ms,
                deadline_ms,
            } = r.event()?
            else {
                return Err(StateError(
                    "snapshot: a pending plan is not a PlanAccepted record".into(),
                ));
            };
            let intent = match r.u8()? {
                0 => None,
                _ => Some(r.intent()?),
            };
            pending.insert(
                plan.id.0,
                PendingPlan {
                    plan,
                    at_ms,
                    deadline_ms,
                    intent,
                },
            );
        }
        let n = r.len()?;
        let mut orders = BTreeMap::new();
        for _ in 0..n {
            let intent = r.intent()?;
            let state = state_from(r.u8()?)?;
            let filled = Qty::from_units(r.i64()?);
            let order_id = r.u64()?;
            orders.insert(
                intent.plan.0,
                Order {
                    symbol: intent.symbol,
                    side: intent.side,
                    qty: intent.qty,
                    filled,
                    state,
                    order_id,
                    intent,
                },
            );
        }
        let n = r.len()?;
        let mut ended = VecDeque::with_capacity(n.min(1 << 24));
        for _ in 0..n {
            let id = r.u64()?;
            let symbol = crate::types::SymbolId(r.u16()?);
            let side = crate::types::Side::from_code(r.u8()?)
                .ok_or_else(|| StateError("snapshot: bad side of an ended order".into()))?;
            let qty = Qty::from_units(r.i64()?);
            let filled = Qty::from_units(r.i64()?);
            let may_fill_late = r.u8()? != 0;
            ended.push_back((
                id,
                EndedOrder {
                    symbol,
                    side,
                    qty,
                    filled,
                    may_fill_late,
                },
            ));
        }
        let mut epoch = 0;
        let mut lead = None;
        if r.at < b.len() {
            epoch = r.u64()?;
            if r.u8()? != 0 {
                let since_ms = r.u64()?;
                let mut sets = [BTreeSet::new(), BTreeSet::new(), BTreeSet::new()];
                for set in &mut sets {
                    let n = r.len()?;
                    for _ in 0..n {
                        set.insert(r.u16()?);
                    }
                }
                let [history, wanted, ledger] = sets;
                lead = Some(LeadWait {
                    since_ms,
                    history,
                    wanted,
                    ledger,
                });
            }
        }
        let mut history_wait = None;
        if r.at < b.len() && r.u8()? != 0 {
            let since_ms = r.u64()?;
            let mut done = BTreeSet::new();
            for _ in 0..r.len()? {
                done.insert(r.u16()?);
            }
            history_wait = Some(HistoryWait { since_ms, done });
        }
        if r.at != b.len() {
            return Err(StateError(format!(
                "snapshot: {} bytes left over after the state",
                b.len() - r.at
            )));
        }
        Ok(State {
            seq,
            symbols,
            kill,
            trading,
            dedupe,
            pending,
            orders,
            ended,
            horizon_ms,
            ended_capacity,
            epoch,
            lead,
            forgotten: BTreeMap::new(),
            history_wait,
        })
    }
}

/// Version of [`State::encode`]'s form. 2: each symbol's `reconciling` (a byte after its kill
/// switch). [`State::decode`] reads version 1 too (a daemon upgraded in place reads its last
/// snapshot), its symbols as not reconciling.
const STATE_VERSION: u32 = 2;

fn state_code(s: OrderState) -> u8 {
    match s {
        OrderState::Intent => 0,
        OrderState::Sent => 1,
        OrderState::Accepted => 2,
        OrderState::Unknown => 3,
    }
}

fn state_from(c: u8) -> Result<OrderState, StateError> {
    Ok(match c {
        0 => OrderState::Intent,
        1 => OrderState::Sent,
        2 => OrderState::Accepted,
        3 => OrderState::Unknown,
        _ => {
            return Err(StateError(format!(
                "snapshot: order state {c} is not defined"
            )))
        }
    })
}

/// The most ended orders a snapshot may ask to remember (`max_orders`' own limit).
const MAX_ENDED_CAPACITY: u64 = 1 << 24;

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn record(&mut self, r: &Record) {
        self.0.extend_from_slice(r);
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], StateError> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.b.len());
        let Some(end) = end else {
            return Err(StateError(format!(
                "snapshot: state cut short at byte {}",
                self.at
            )));
        };
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, StateError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, StateError> {
        let mut a = [0; 2];
        a.copy_from_slice(self.take(2)?);
        Ok(u16::from_le_bytes(a))
    }
    fn u32(&mut self) -> Result<u32, StateError> {
        let mut a = [0; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn u64(&mut self) -> Result<u64, StateError> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn i64(&mut self) -> Result<i64, StateError> {
        Ok(self.u64()? as i64)
    }
    /// A count of items that follow, refused when they could not fit in what is left (a
    /// damaged length): every item takes at least one byte.
    fn len(&mut self) -> Result<usize, StateError> {
        let n = self.u64()?;
        if n > (self.b.len() - self.at) as u64 {
            return Err(StateError(format!("snapshot: count {n} exceeds the file")));
        }
        Ok(n as usize)
    }
    fn message(&mut self) -> Result<Message, StateError> {
        let mut rec = [0u8; RECORD_SIZE];
        rec.copy_from_slice(self.take(RECORD_SIZE)?);
        Message::decode(&rec, &Limits::default()).map_err(|e| StateError(format!("snapshot: {e}")))
    }
    fn event(&mut self) -> Result<Event, StateError> {
        let m = self.message()?;
        Event::from_message(&m).map_err(|e| StateError(format!("snapshot: {e}")))
    }
    fn intent(&mut self) -> Result<OrderIntent, StateError> {
        match self.message()? {
            Message::OrderIntent(i) => Ok(crate::wire::intent_in(&i)),
            m => Err(StateError(format!(
                "snapshot: {:?} where an order intent belongs",
                m.kind()
            ))),
        }
    }
}

/// What [`Engine::restore`](crate::engine::Engine::restore) put back and answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Plan ids remembered by dedupe.
    pub dedupe: usize,
    /// Orders in flight put back (each now unknown and offered again, look-up first).
    pub orders: usize,
    /// Plans answered `BLOCK interrupted`.
    pub interrupted: usize,
    /// Plans answered `executed` (their intent was journaled before the process died).
    pub executed: usize,
    /// Symbols reconciling.
    pub reconciling: usize,
}

/// A state the engine cannot take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestoreError {
    /// The journal names a symbol id the configuration does not have.
    UnknownSymbol(usize),
    /// More plan ids within the horizon than the dedupe set can hold.
    DedupeTooSmall {
        /// Ids to remember.
        needed: usize,
        /// The configured capacity.
        capacity: usize,
    },
    /// More orders in flight than the engine can track.
    TooManyOrders {
        /// Orders to restore.
        needed: usize,
    },
    /// A restored amount is out of range.
    Overflow,
}

impl std::fmt::Display for RestoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestoreError::UnknownSymbol(i) => write!(f, "the journal names symbol id {i}, which the configuration does not have (symbols may be added at the end, never removed or reordered)"),
            RestoreError::DedupeTooSmall { needed, capacity } => write!(f, "the journal remembers {needed} plan ids within the dedupe horizon, but dedupe_capacity is {capacity}: raise it"),
            RestoreError::TooManyOrders { needed } => write!(f, "the journal has {needed} orders in flight, more than max_orders: raise it"),
            RestoreError::Overflow => f.write_str("a restored amount is out of range"),
        }
    }
}

impl std::error::Error for RestoreError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::FillEvent;
    use crate::types::{Action, Decision, PlanId, Side, SymbolId};
    use quantum_ipc::codes::DoneCode;

    fn plan(id: u64) -> Plan {
        Plan::exit(
            PlanId(id),
            SymbolId(1),
            Decision::Execute,
            Action::Partial50,
        )
    }

    fn intent(id: u64, at_ms: u64) -> OrderIntent {
        OrderIntent {
            plan: PlanId(id),
            symbol: SymbolId(1),
            side: Side::Sell,
            qty: Qty::from_units(300),
            reduce_only: true,
            t_in_ns: 1,
            t_out_ns: 2,
            at_ms,
            lookup_first: false,
            // A latency sample, which the state must not keep.
            marks: crate::types::StageMarks {
                gov_ns: 1,
                p33_ns: 2,
                ready_ns: 3,
            },
        }
    }

    #[test]
    fn folds_plans_orders_and_the_book_and_survives_encoding() {
        let mut s = State::new(2, 1_000, 2);
        let mut seq = 0;
        let mut ev = |s: &mut State, e: Event| {
            seq += 1;
            s.apply(seq, &e);
        };
        ev(
            &mut s,
            Event::LedgerSet {
                symbol: SymbolId(1),
                amount: Qty::from_units(1_000),
                at_ms: 1,
            },
        );
        ev(
            &mut s,
            Event::Position {
                symbol: SymbolId(1),
                amount: Qty::from_units(1_000),
                mark: Price::from_units(7),
                time_ms: 2,
            },
        );
        for id in 1..=3 {
            ev(
                &mut s,
                Event::PlanAccepted {
                    plan: plan(id),
                    at_ms: 10 * id,
                    deadline_ms: 10 * id + 5,
                },
            );
        }
        ev(&mut s, Event::OrderIntent(intent(1, 11)));
        // The order is kept without the intent's latency sample (the journal has none either).
        assert_eq!(
            s.orders[&1].intent.marks,
            crate::types::StageMarks::default()
        );
        ev(
            &mut s,
            Event::PlanResult(crate::result::PlanResult {
                plan: PlanId(1),
                symbol: SymbolId(1),
                decision: Decision::Execute,
                outcome: crate::result::Outcome::Executed {
                    qty: Qty::from_units(300),
                },
                wait_ns: 0,
                at_ms: 12,
            }),
        );
        ev(&mut s, Event::OrderIntent(intent(2, 21)));
        ev(
            &mut s,
            Event::OrderSent {
                plan: PlanId(1),
                symbol: SymbolId(1),
                at_ms: 13,
            },
        );
        ev(
            &mut s,
            Event::OrderAccepted {
                plan: PlanId(1),
                symbol: SymbolId(1),
                order_id: 77,
                at_ms: 14,
            },
        );
        ev(
            &mut s,
            Event::Fill(FillEvent {
                plan: PlanId(1),
                symbol: SymbolId(1),
                side: Side::Sell,
                qty: Qty::from_units(100),
                price: Price::from_units(7),
                order_id: 77,
                time_ms: 15,
                cum_qty: Qty::from_units(100),
                ledger_after: Qty::from_units(900),
            }),
        );
        // Plan 1: accepted, partly filled. Plan 2: intent journaled, no result. Plan 3: waiting.
        assert_eq!(s.symbols[1].ledger, Qty::from_units(900));
        assert_eq!(s.orders[&1].state, OrderState::Accepted);
        assert_eq!(s.orders[&1].filled, Qty::from_units(100));
        assert_eq!(s.orders[&2].state, OrderState::Intent);
        assert_eq!(s.pending.keys().copied().collect::<Vec<_>>(), vec![2, 3]);
        assert!(s.pending[&2].intent.is_some() && s.pending[&3].intent.is_none());
        assert_eq!(s.symbols[1].executions, VecDeque::from(vec![11, 21]));
        ev(
            &mut s,
            Event::OrderDone(crate::event::DoneEvent {
                plan: PlanId(1),
                symbol: SymbolId(1),
                code: DoneCode::Filled,
                reason: 0,
                filled: Qty::from_units(100),
                released: Qty::from_units(200),
                exchange_code: 0,
                at_ms: 16,
            }),
        );
        assert!(!s.orders.contains_key(&1));
        assert_eq!(s.ended.iter().map(|e| e.0).collect::<Vec<_>>(), vec![1]);
        assert_eq!(s.ended[0].1.filled, Qty::from_units(100));
        // A plan accepted a horizon later pushes the old ids out of dedupe.
        ev(
            &mut s,
            Event::PlanAccepted {
                plan: plan(9),
                at_ms: 1_025,
                deadline_ms: 1_030,
            },
        );
        assert_eq!(s.dedupe.iter().map(|d| d.0).collect::<Vec<_>>(), vec![3, 9]);
        let back = State::decode(&s.encode()).unwrap();
        assert_eq!(back, s);
        // A damaged length or a cut is an error, never a panic; only a cut exactly before the
        // failover trailer (epoch, no lead: 9 bytes, then no history wait: 1 byte) or before
        // the history trailer reads, as a snapshot written without them.
        let b = s.encode();
        for cut in 0..b.len() {
            if cut == b.len() - 10 || cut == b.len() - 1 {
                assert_eq!(State::decode(&b[..cut]).unwrap(), s);
                continue;
            }
            assert!(State::decode(&b[..cut]).is_err());
        }
    }

    fn fill(id: u64, cum: i64, ledger: i64) -> Event {
        Event::Fill(FillEvent {
            plan: PlanId(id),
            symbol: SymbolId(1),
            side: Side::Sell,
            qty: Qty::from_units(cum),
            price: Price::from_units(7),
            order_id: 77,
            time_ms: 15,
            cum_qty: Qty::from_units(cum),
            ledger_after: Qty::from_units(ledger),
        })
    }

    fn done(id: u64, code: DoneCode) -> Event {
        Event::OrderDone(crate::event::DoneEvent {
            plan: PlanId(id),
            symbol: SymbolId(1),
            code,
            reason: 0,
            filled: Qty::ZERO,
            released: Qty::from_units(300),
            exchange_code: 0,
            at_ms: 16,
        })
    }

    /// A state touching every part of the snapshot form (symbols with and without an
    /// exchange position and filters, a switch, executions and day notional, dedupe, pending
    /// plans with and without an intent, orders in flight, ended orders, a lead).
    fn every_part() -> State {
        let mut s = State::new(3, 1_000, 4);
        let events = [
            Event::LedgerSet {
                symbol: SymbolId(1),
                amount: Qty::from_units(1_000),
                at_ms: 1,
            },
            Event::Position {
                symbol: SymbolId(1),
                amount: Qty::from_units(1_000),
                mark: Price::from_units(7 * crate::fixed::SCALE),
                time_ms: 2,
            },
            Event::Filters {
                symbol: SymbolId(1),
                filters: Filters {
                    lot: crate::book::LotFilter {
                        min: Qty::from_units(10),
                        max: Qty::from_units(1_000_000),
                        step: Qty::from_units(10),
                    },
                    market_lot: crate::book::LotFilter::default(),
                    min_notional: Price::from_units(5),
                },
            },
            Event::Switch(Switch::SymbolKillSwitch(SymbolId(2), true)),
            Event::Switch(Switch::TradingState(TradingState::Reducing)),
            Event::PlanAccepted {
                plan: plan(1),
                at_ms: 10,
                deadline_ms: 15,
            },
            Event::PlanAccepted {
                plan: plan(2),
                at_ms: 11,
                deadline_ms: 16,
            },
            Event::OrderIntent(intent(1, 12)),
            Event::OrderIntent(OrderIntent {
                reduce_only: false,
                ..intent(3, 13)
            }),
            Event::OrderSent {
                plan: PlanId(3),
                symbol: SymbolId(1),
                at_ms: 14,
            },
            fill(3, 100, 900),
            Event::OrderIntent(intent(4, 14)),
            done(4, DoneCode::Rejected),
            Event::Leading {
                epoch: 3,
                since_ms: 5,
                at_ms: 20,
            },
            Event::LedgerWanted {
                symbol: SymbolId(1),
                epoch: 3,
                at_ms: 21,
            },
        ];
        for (n, e) in events.iter().enumerate() {
            s.apply(n as u64 + 1, e);
        }
        s
    }

    /// [`every_part`] as version 1 encoded it (the code before `reconciling` was kept).
    const EVERY_PART_V1: &[&str] = &[
        "010000000f00000000000000e80300000000000004000000000000000002030000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000840300000000000001e80300000000",
        "000002000000000000000027b92900000000010b000000000000000a0000000000000040420f00000000000a00000000",
        "00000000000000000000000000000000000000000000000000000005000000000000000003000000000000000c000000",
        "000000000d000000000000000e0000000000000000000000000000003408000000000000000000000000000000000000",
        "00000000000001000000000000000000000000000000000000000000000000020000000000000001000000000000000a",
        "0000000000000002000000000000000b0000000000000002000000000000000d01010002010000010000000000000000",
        "00000000000000000000000000000000000000000000000a000000000000000f00000000000000000000000000000001",
        "070201000101000001000000000000002c01000000000000010000000000000002000000000000000c00000000000000",
        "000000000000000000000000000000000d01010002010000020000000000000000000000000000000000000000000000",
        "00000000000000000b000000000000001000000000000000000000000000000000020000000000000007020100010100",
        "0001000000000000002c01000000000000010000000000000002000000000000000c0000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000070201000001000003000000000000002c0100000000",
        "0000010000000000000002000000000000000d0000000000000000000000000000000000000000000000016400000000",
        "0000000000000000000000010000000000000004000000000000000100022c0100000000000000000000000000000103",
        "000000000000000105000000000000000000000000000000010000000000000001000000000000000000",
    ];

    fn unhex(parts: &[&str]) -> Vec<u8> {
        let hex: String = parts.concat();
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    /// A version 1 snapshot (a daemon upgraded in place) still reads, as the same state with
    /// no symbol reconciling; written again, it is version 2 and reads back equal.
    #[test]
    fn a_version_1_snapshot_still_reads() {
        let v1 = unhex(EVERY_PART_V1);
        assert_eq!(v1[..4], 1u32.to_le_bytes());
        let want = every_part();
        assert!(!want.pending.is_empty() && !want.orders.is_empty() && !want.ended.is_empty());
        assert!(want.lead.is_some() && want.symbols[1].filters.is_some());
        let got = State::decode(&v1).unwrap();
        assert_eq!(got, want);
        assert!(got.symbols.iter().all(|s| !s.reconciling));
        let v2 = got.encode();
        assert_eq!(v2[..4], STATE_VERSION.to_le_bytes());
        assert_eq!(
            v2.len(),
            v1.len() + got.symbols.len() + 1,
            "one byte per symbol, and the history trailer's (no wait)"
        );
        assert_eq!(State::decode(&v2).unwrap(), got);
        let mut v3 = v2.clone();
        v3[..4].copy_from_slice(&3u32.to_le_bytes());
        let e = State::decode(&v3).unwrap_err().to_string();
        assert!(e.contains("version 3"), "{e}");
    }

    /// A symbol's reconciling follows its `Reconciling` events and survives a snapshot.
    #[test]
    fn reconciling_is_folded_and_kept() {
        let mut s = State::new(3, 1_000, 4);
        let rec = |symbol, on| Event::Reconciling {
            symbol: SymbolId(symbol),
            on,
            unknown_orders: 0,
            at_ms: 5,
        };
        s.apply(1, &rec(0, true));
        s.apply(2, &rec(2, true));
        s.apply(3, &rec(0, false));
        let on: Vec<bool> = s.symbols.iter().map(|x| x.reconciling).collect();
        assert_eq!(on, [false, false, true]);
        assert_eq!(State::decode(&s.encode()).unwrap(), s);
    }

    /// Journal records fold exactly like the events they encode; a record that is not an
    /// event is an error naming its number.
    #[test]
    fn records_fold_like_their_events_and_bad_ones_are_named() {
        let events = [
            Event::PlanAccepted {
                plan: plan(1),
                at_ms: 10,
                deadline_ms: 15,
            },
            Event::OrderIntent(intent(1, 11)),
            fill(1, 100, 900),
        ];
        let (mut a, mut b) = (State::new(2, 1_000, 2), State::new(2, 1_000, 2));
        for (n, e) in events.iter().enumerate() {
            a.apply(n as u64 + 1, e);
            b.apply_record(n as u64 + 1, &e.to_message().encode())
                .unwrap();
        }
        assert_eq!(a, b);
        assert_eq!(b.orders[&1].filled, Qty::from_units(100));
        let err = b.apply_record(9, &[0xee; 64]).unwrap_err();
        assert!(err.to_string().starts_with("event 9: "), "{err}");
    }

    /// An intent offered again (look up first) changes nothing of the order it repeats.
    #[test]
    fn an_intent_offered_again_is_not_a_new_order() {
        let mut s = State::new(2, 1_000, 2);
        s.apply(1, &Event::OrderIntent(intent(1, 11)));
        s.apply(2, &fill(1, 100, 900));
        s.apply(
            3,
            &Event::OrderUnknown {
                plan: PlanId(1),
                symbol: SymbolId(1),
                reason: quantum_ipc::codes::UnknownReason::Timeout,
                at_ms: 12,
            },
        );
        let again = OrderIntent {
            lookup_first: true,
            ..intent(1, 50)
        };
        s.apply(4, &Event::OrderIntent(again));
        assert_eq!(s.orders[&1].filled, Qty::from_units(100));
        assert_eq!(s.orders[&1].state, OrderState::Unknown);
        assert_eq!(s.symbols[1].executions, VecDeque::from(vec![11]));
    }

    /// Opening orders count toward the day's notional (reset on a new UTC day); exits do not.
    #[test]
    fn only_opening_orders_count_toward_the_day_notional() {
        let day = 86_400_000;
        let mut s = State::new(2, 1_000, 2);
        s.apply(
            1,
            &Event::Position {
                symbol: SymbolId(1),
                amount: Qty::from_units(1_000),
                mark: Price::from_units(7 * crate::fixed::SCALE),
                time_ms: 2,
            },
        );
        s.apply(2, &Event::OrderIntent(intent(1, 3 * day + 5)));
        assert_eq!(s.symbols[1].day_notional, 0);
        let open = |id, at| OrderIntent {
            reduce_only: false,
            ..intent(id, at)
        };
        let one = i64::try_from(
            Qty::from_units(300).notional(Price::from_units(7 * crate::fixed::SCALE)),
        )
        .unwrap();
        assert!(one > 0);
        s.apply(3, &Event::OrderIntent(open(2, 3 * day + 6)));
        s.apply(4, &Event::OrderIntent(open(3, 3 * day + 7)));
        assert_eq!((s.symbols[1].day, s.symbols[1].day_notional), (3, 2 * one));
        s.apply(5, &Event::OrderIntent(open(4, 4 * day)));
        assert_eq!((s.symbols[1].day, s.symbols[1].day_notional), (4, one));
    }

    /// A late fill updates the ended order it belongs to, and no other; a position without a
    /// mark keeps the mark known.
    #[test]
    fn late_fills_find_their_ended_order_and_marks_are_kept() {
        let mut s = State::new(2, 1_000, 4);
        s.apply(1, &Event::OrderIntent(intent(1, 11)));
        s.apply(2, &Event::OrderIntent(intent(2, 12)));
        s.apply(3, &done(1, DoneCode::Rejected));
        s.apply(4, &done(2, DoneCode::Rejected));
        s.apply(5, &fill(1, 120, 880));
        let filled: Vec<_> = s
            .ended
            .iter()
            .map(|(p, e)| (*p, e.filled.units()))
            .collect();
        assert_eq!(filled, vec![(1, 120), (2, 0)]);
        assert_eq!(s.symbols[1].ledger, Qty::from_units(880));
        let pos = |mark| Event::Position {
            symbol: SymbolId(1),
            amount: Qty::from_units(5),
            mark,
            time_ms: 3,
        };
        s.apply(6, &pos(Price::from_units(9)));
        s.apply(7, &pos(Price::ZERO));
        assert_eq!(s.symbols[1].mark, Price::from_units(9));
        assert_eq!(s.symbols[1].exchange, Some((Qty::from_units(5), 3)));
    }

    /// Orders in every state survive a snapshot as they were; an undefined state is an error.
    #[test]
    fn every_order_state_survives_a_snapshot() {
        let mut s = State::new(2, 1_000, 4);
        for id in 1..=4 {
            s.apply(id, &Event::OrderIntent(intent(id, 10 + id)));
        }
        let sent = |id| Event::OrderSent {
            plan: PlanId(id),
            symbol: SymbolId(1),
            at_ms: 20,
        };
        s.apply(5, &sent(2));
        s.apply(6, &sent(3));
        s.apply(
            7,
            &Event::OrderAccepted {
                plan: PlanId(3),
                symbol: SymbolId(1),
                order_id: 5,
                at_ms: 21,
            },
        );
        s.apply(
            8,
            &Event::OrderUnknown {
                plan: PlanId(4),
                symbol: SymbolId(1),
                reason: quantum_ipc::codes::UnknownReason::Timeout,
                at_ms: 22,
            },
        );
        let states: Vec<_> = s.orders.values().map(|o| o.state).collect();
        assert_eq!(
            states,
            [
                OrderState::Intent,
                OrderState::Sent,
                OrderState::Accepted,
                OrderState::Unknown
            ]
        );
        assert_eq!(State::decode(&s.encode()).unwrap(), s);
        assert!(state_from(4)
            .unwrap_err()
            .to_string()
            .contains("order state 4"));
    }

    /// A small state remembering many ended orders reads back (its capacity is not a count
    /// of what follows); a count larger than the bytes left is an error, one that fits is not.
    #[test]
    fn capacities_and_counts_are_checked_for_what_they_are() {
        let s = State::new(1, 1_000, 1 << 14);
        assert_eq!(State::decode(&s.encode()).unwrap(), s);
        let mut big = s.encode();
        // Layout: version u32, seq u64, horizon u64, ended capacity u64 (offset 20).
        big[20..28].copy_from_slice(&(MAX_ENDED_CAPACITY + 1).to_le_bytes());
        assert!(State::decode(&big)
            .unwrap_err()
            .to_string()
            .contains("capacity"));
        let mut r = Reader {
            b: &[3, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3],
            at: 0,
        };
        assert_eq!(r.len(), Ok(3));
        let mut r = Reader {
            b: &[4, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3],
            at: 0,
        };
        assert!(r
            .len()
            .unwrap_err()
            .to_string()
            .contains("exceeds the file"));
    }
}
