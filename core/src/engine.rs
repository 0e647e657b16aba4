//! The stages wired together: ingest (dedupe, slot hand-out), governor, P3.3 and apply, plus
//! the command path (ledger, positions, fills, switches).
//!
//! [`Engine::process_plan`] runs the whole chain for one plan on the calling thread (the
//! `single` mode). [`Engine::into_parts`] hands the stages out for the `pipelined` runner.
//! After construction nothing here allocates.

use std::sync::Arc;

use crate::apply::Apply;
use crate::clock::{ms_to_ns, Clock};
use crate::config::{ConfigError, EngineConfig};
use crate::fixed::{Price, Qty};
use crate::governor::{GovReason, Governor, GovernorState, TradingState};
use crate::idmap::RecentMap;
use crate::ledger::{Filters, Ledger};
use crate::p33::{self, P33Reason, P33};
use crate::permit::{GovPermit, Issue, P33Context, P33Permit, PermitTable, SlotRef};
use crate::result::{Outcome, PlanResult};
use crate::types::{Decision, Plan, PlanId, Side, SymbolId, Symbols};

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
    /// A fill. `plan` names our order it belongs to (releasing its in-flight reservation);
    /// `None` for fills of orders made elsewhere.
    Fill {
        /// Symbol.
        symbol: SymbolId,
        /// Side of the fill.
        side: Side,
        /// Filled quantity.
        qty: Qty,
        /// Our plan, if ours.
        plan: Option<PlanId>,
    },
    /// An order of ours was rejected, or its unfilled remainder expired.
    OrderDone {
        /// Symbol.
        symbol: SymbolId,
        /// Quantity that will never fill.
        unfilled: Qty,
    },
    /// New exchange filters.
    SetFilters {
        /// Symbol.
        symbol: SymbolId,
        /// Filters.
        filters: Filters,
    },
    /// Global kill switch.
    KillSwitch(bool),
    /// A symbol's kill switch.
    SymbolKillSwitch(SymbolId, bool),
    /// Trading state.
    TradingState(TradingState),
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
        /// Reason code when denied.
        reason: GovReason,
        /// TTL.
        ttl_ms: u64,
    },
    /// Legacy P3.3 permit.
    P33 {
        /// Plan.
        plan: PlanId,
        /// Allowed or not.
        allow: bool,
        /// Reason when denied.
        reason: P33Reason,
        /// Safe quantity when allowed.
        safe_qty: Qty,
        /// Closing side when allowed.
        side: Option<Side>,
        /// Amounts behind the decision.
        context: P33Context,
        /// TTL.
        ttl_ms: u64,
    },
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
}

/// What admitting a plan found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Seen before.
    Duplicate,
    /// Not EXECUTE: no permits needed.
    NonExecute,
    /// Slot opened.
    Open(SlotRef),
    /// No free slot right now: try again after apply resolves plans.
    Full,
}

/// The ingest stage: dedupe and slot hand-out. Single-threaded by design: it is the only
/// opener of permit slots, and its set of recent plan ids is its own.
#[derive(Debug)]
pub struct Ingest {
    table: Arc<PermitTable>,
    /// Recent plan ids.
    seen: RecentMap<()>,
    seq: u64,
}

impl Ingest {
    fn new(table: Arc<PermitTable>, dedupe: usize) -> Self {
        Ingest {
            seen: RecentMap::new(dedupe),
            table,
            seq: 0,
        }
    }

    /// Dedupe, then open a slot for an EXECUTE plan.
    pub fn admit(&mut self, plan: &Plan) -> Admit {
        let id = plan.id.0;
        if self.seen.contains(id) {
            return Admit::Duplicate;
        }
        if plan.decision != Decision::Execute {
            self.seen.insert(id, ());
            return Admit::NonExecute;
        }
        // Take the slot the previous plan had if it is free again, so a plan that resolves at
        // once (single mode) leaves the next one a slot already in cache; otherwise walk on to
        // the next free slot.
        for _ in 0..self.table.capacity() {
            match self.table.open(self.seq, plan.id) {
                Ok(r) => {
                    self.seen.insert(id, ());
                    return Admit::Open(r);
                }
                Err(_) => self.seq = self.seq.wrapping_add(1),
            }
        }
        // Not remembered: the caller offers the plan again once a slot frees up.
        Admit::Full
    }

    /// Deferred dedupe eviction: call when a result has left.
    #[inline]
    pub fn tidy(&mut self) {
        self.seen.trim(2);
    }
}

/// Everything but the governor and P3.3: ingest, apply and the command path. In the pipelined
/// runner this is the front thread.
#[derive(Debug)]
pub struct Front {
    /// Ingest.
    pub ingest: Ingest,
    /// Apply.
    pub apply: Apply,
    table: Arc<PermitTable>,
    ledger: Arc<Ledger>,
    gov_state: Arc<GovernorState>,
    clock: Clock,
    /// Inputs refused as invalid (unknown symbol, permit for an unknown plan), counted.
    pub rejected_inputs: u64,
}

impl Front {
    /// Admits `plan` (entered at `t_in`): dedupe and non-EXECUTE plans are answered at once;
    /// `Ok(Some(slot))` means its permits are now awaited; `Err(plan)` means the table is full.
    pub fn admit(
        &mut self,
        plan: Plan,
        t_in: u64,
        out: &mut impl FnMut(PlanResult),
    ) -> Result<Option<SlotRef>, Plan> {
        let outcome = match self.ingest.admit(&plan) {
            Admit::Open(r) => return Ok(Some(r)),
            Admit::Full => return Err(plan),
            Admit::Duplicate => Outcome::Duplicate,
            Admit::NonExecute => Outcome::NonExecute,
        };
        out(PlanResult {
            plan: plan.id,
            symbol: plan.symbol,
            decision: plan.decision,
            outcome,
            wait_ns: self.clock.now_ns().saturating_sub(t_in),
        });
        Ok(None)
    }

    /// Applies a command; false (and counted) when it names an unknown symbol.
    pub fn command(&mut self, cmd: Command) -> bool {
        let now = self.clock.now_ns();
        let ok = match cmd {
            Command::SetLedger { symbol, amount } => self.ledger.set_ledger(symbol, amount),
            Command::Position {
                symbol,
                amount,
                mark,
            } => self.ledger.set_exchange(symbol, amount, mark, now),
            Command::Fill {
                symbol,
                side,
                qty,
                plan,
            } => self.ledger.apply_fill(symbol, side, qty, plan.is_some()),
            Command::OrderDone { symbol, unfilled } => {
                self.ledger.release_in_flight(symbol, unfilled)
            }
            Command::SetFilters { symbol, filters } => self.ledger.set_filters(symbol, filters),
            Command::KillSwitch(on) => {
                self.gov_state.set_kill_switch(on);
                true
            }
            Command::SymbolKillSwitch(s, on) => self.gov_state.set_symbol_kill_switch(s, on),
            Command::TradingState(t) => {
                self.gov_state.set_trading_state(t);
                true
            }
        };
        if !ok {
            self.rejected_inputs += 1;
        }
        ok
    }

    /// Issues an externally made permit into the table. Returns what issuing did, or `None`
    /// (counted) for a plan that is not waiting for permits (unknown, or already resolved).
    pub fn external_permit(&mut self, p: ExternalPermit) -> Option<Issue> {
        let now = self.clock.now_ns();
        let plan = match p {
            ExternalPermit::Gov { plan, .. } | ExternalPermit::P33 { plan, .. } => plan,
        };
        let Some((r, symbol)) = self.apply.waiting(plan) else {
            self.rejected_inputs += 1;
            return None;
        };
        Some(match p {
            ExternalPermit::Gov {
                allow,
                reason,
                ttl_ms,
                ..
            } => self.table.issue_gov(
                r,
                GovPermit {
                    allow,
                    reason: if allow { 0 } else { reason as u16 },
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
                let allow = allow && side.is_some() && safe_qty.units() > 0;
                let permit = P33Permit {
                    allow,
                    reason: if allow { 0 } else { reason as u16 },
                    deadline_ns: now.saturating_add(ms_to_ns(ttl_ms)),
                    safe_qty: if allow { safe_qty } else { Qty::ZERO },
                    side,
                    context,
                };
                p33::issue_reserving(&self.table, &self.ledger, r, symbol, permit)
            }
        })
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
    /// Book.
    pub ledger: Arc<Ledger>,
    /// Governor switches and history.
    pub gov_state: Arc<GovernorState>,
    /// Symbols.
    pub symbols: Arc<Symbols>,
}

/// The whole chain on one thread, or split into parts for the pipelined runner.
#[derive(Debug)]
pub struct Engine {
    /// Ingest, apply, commands.
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
            Symbols::new(cfg.symbols.iter().map(|s| s.name.clone())).map_err(ConfigError)?;
        let specs: Vec<_> = cfg
            .symbols
            .iter()
            .map(|s| (s.tolerance, s.filters))
            .collect();
        let ledger = Arc::new(Ledger::new(&specs));
        let table = Arc::new(PermitTable::new(cfg.table_capacity));
        let gov_state = Arc::new(GovernorState::new(symbols.len()));
        let governor = Governor::new(cfg.governor.clone(), gov_state.clone(), ledger.clone());
        let p33 = P33::new(cfg.p33, ledger.clone());
        let apply = Apply::new(
            table.clone(),
            ledger.clone(),
            governor.clone(),
            clock.clone(),
            cfg.apply_wait_ms,
        );
        let front = Front {
            ingest: Ingest::new(table.clone(), cfg.dedupe_capacity),
            apply,
            table: table.clone(),
            ledger: ledger.clone(),
            gov_state: gov_state.clone(),
            clock,
            rejected_inputs: 0,
        };
        Ok(Engine {
            front,
            governor,
            p33,
            shared: Shared {
                table,
                ledger,
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

    /// The whole chain for one plan: ingest → governor → P3.3 → apply. Results go to `out`
    /// (at once for everything but plans that must wait for an external permit).
    /// `Err(plan)` hands the plan back when the permit table is full.
    pub fn process_plan(
        &mut self,
        plan: Plan,
        out: &mut impl FnMut(PlanResult),
    ) -> Result<(), Plan> {
        let t_in = self.front.clock.now_ns();
        self.process_plan_at(plan, t_in, out)
    }

    /// [`Engine::process_plan`] for a plan that entered the engine at `t_in`.
    pub fn process_plan_at(
        &mut self,
        plan: Plan,
        t_in: u64,
        out: &mut impl FnMut(PlanResult),
    ) -> Result<(), Plan> {
        if let Some(r) = self.front.admit(plan, t_in, out)? {
            let table = &self.shared.table;
            table.issue_gov(r, self.governor.evaluate(&plan, t_in));
            self.p33.issue(table, r, &plan, t_in);
            self.front.apply.submit(r, plan, t_in, out);
        }
        self.front.ingest.tidy();
        Ok(())
    }

    /// Handles any input on the calling thread. `Err` hands a plan back when the table is full.
    pub fn handle(&mut self, input: Input, out: &mut impl FnMut(PlanResult)) -> Result<(), Plan> {
        match input {
            Input::Plan(p) => self.process_plan(p, out),
            Input::Command(c) => {
                self.front.command(c);
                Ok(())
            }
            Input::Permit(p) => {
                self.front.external_permit(p);
                Ok(())
            }
        }
    }

    /// Re-checks plans waiting for permits.
    pub fn poll(&mut self, out: &mut impl FnMut(PlanResult)) -> usize {
        self.front.apply.poll(out)
    }

    /// Splits into the stages for separate threads.
    pub fn into_parts(self) -> (Front, Governor, P33, Shared) {
        (self.front, self.governor, self.p33, self.shared)
    }
}
