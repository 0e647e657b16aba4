//! The core's types to and from the process contract's records ([`quantum_ipc::wire`]): one
//! place for every conversion, used by the daemon, the bridges, `quantum ctl` and recovery.
//!
//! Decoding (`Message::decode` with the reader's `Limits`) has already checked tags, codes,
//! symbol ranges and quantity ranges; what is left here is meaning. Whatever cannot be given a
//! meaning is an `Err` with one sentence, and the caller counts the record as invalid.

use quantum_ipc::codes::{ControlCommand, TradingState};
use quantum_ipc::wire::{
    self, Message, ALL_SYMBOLS, INTENT_FLAG_LOOKUP_FIRST, PLAN_FLAG_REDUCE_ONLY,
};

use crate::book::{Filters, LotFilter};
use crate::event::{
    DoneEvent, Event, FillEvent, GovPermitEvent, P33PermitEvent, RefusedEvent, Switch,
};
use crate::fixed::{Price, Qty, Score};
use crate::input::{Command, ExternalPermit, History, Input};
use crate::orders::{Failure, OrderInput, Report};
use crate::permit::P33Context;
use crate::result::{Block, Outcome, PlanResult};
use crate::types::{OrderIntent, Plan, PlanId, SymbolId};

/// A wire plan as the core's plan.
pub fn plan_in(p: &wire::Plan) -> Plan {
    Plan {
        id: PlanId(p.plan_id),
        symbol: SymbolId(p.symbol),
        decision: p.decision,
        action: p.action,
        kill_score: Score::from_units(p.kill_score),
        created_at_ms: p.created_at_ms,
        reduce_only: p.flags & PLAN_FLAG_REDUCE_ONLY != 0,
        qty: Qty::from_units(p.qty),
        position_side: wire::plan_side(p.flags),
    }
}

fn plan_flags(p: &Plan) -> u8 {
    let reduce_only = if p.reduce_only {
        PLAN_FLAG_REDUCE_ONLY
    } else {
        0
    };
    wire::with_plan_side(reduce_only, p.position_side)
}

/// The core's plan as a wire plan.
pub fn plan_out(p: &Plan) -> wire::Plan {
    wire::Plan {
        decision: p.decision,
        symbol: p.symbol.0,
        action: p.action,
        flags: plan_flags(p),
        plan_id: p.id.0,
        kill_score: p.kill_score.units(),
        created_at_ms: p.created_at_ms,
        qty: p.qty.units(),
    }
}

/// A record carrying a plan (`PlanAccepted`, `PlanSeen`): the plan's fields as [`plan_out`]
/// writes them, then the record's own.
macro_rules! plan_record {
    ($ty:path, $plan:expr, { $($f:ident $(: $v:expr)?),* }) => {{
        let p = plan_out($plan);
        $ty {
            decision: p.decision,
            symbol: p.symbol,
            action: p.action,
            flags: p.flags,
            plan_id: p.plan_id,
            kill_score: p.kill_score,
            created_at_ms: p.created_at_ms,
            qty: p.qty,
            $($f $(: $v)?),*
        }
    }};
}

/// The plan fields of a record carrying a plan, as a [`wire::Plan`] for [`plan_in`].
macro_rules! wire_plan {
    ($r:expr) => {
        wire::Plan {
            decision: $r.decision,
            symbol: $r.symbol,
            action: $r.action,
            flags: $r.flags,
            plan_id: $r.plan_id,
            kill_score: $r.kill_score,
            created_at_ms: $r.created_at_ms,
            qty: $r.qty,
        }
    };
}

/// An order intent as its wire record.
pub fn intent_out(o: &OrderIntent) -> wire::OrderIntent {
    wire::OrderIntent {
        side: o.side,
        symbol: o.symbol.0,
        reduce_only: o.reduce_only,
        order_type: wire::OrderType::Market,
        flags: if o.lookup_first {
            INTENT_FLAG_LOOKUP_FIRST
        } else {
            0
        },
        plan_id: o.plan.0,
        qty: o.qty.units(),
        t_in_ns: o.t_in_ns,
        t_out_ns: o.t_out_ns,
        at_ms: o.at_ms,
    }
}

/// A wire order intent as the core's.
pub fn intent_in(o: &wire::OrderIntent) -> OrderIntent {
    OrderIntent {
        plan: PlanId(o.plan_id),
        symbol: SymbolId(o.symbol),
        side: o.side,
        qty: Qty::from_units(o.qty),
        reduce_only: o.reduce_only,
        t_in_ns: o.t_in_ns,
        t_out_ns: o.t_out_ns,
        at_ms: o.at_ms,
        lookup_first: o.flags & INTENT_FLAG_LOOKUP_FIRST != 0,
        marks: crate::types::StageMarks::default(),
    }
}

/// Wire filters as the core's.
pub fn filters_in(f: &wire::SymbolFilters) -> Filters {
    let q = Qty::from_units;
    Filters {
        lot: LotFilter {
            min: q(f.min_qty),
            max: q(f.max_qty),
            step: q(f.step),
        },
        market_lot: LotFilter {
            min: q(f.market_min_qty),
            max: q(f.market_max_qty),
            step: q(f.market_step),
        },
        min_notional: Price::from_units(f.min_notional),
    }
}

/// The core's filters of `symbol` as a wire record.
pub fn filters_out(symbol: SymbolId, f: &Filters) -> wire::SymbolFilters {
    wire::SymbolFilters {
        symbol: symbol.0,
        min_qty: f.lot.min.units(),
        max_qty: f.lot.max.units(),
        step: f.lot.step.units(),
        market_min_qty: f.market_lot.min.units(),
        market_max_qty: f.market_lot.max.units(),
        market_step: f.market_lot.step.units(),
        min_notional: f.min_notional.units(),
    }
}

/// A wire control as an operator switch.
pub fn switch_in(c: &wire::Control) -> Result<Switch, String> {
    match (c.command, c.arg) {
        (ControlCommand::KillSwitch, arg @ (0 | 1)) if c.symbol == ALL_SYMBOLS => {
            Ok(Switch::KillSwitch(arg == 1))
        }
        (ControlCommand::KillSwitch, arg @ (0 | 1)) => {
            Ok(Switch::SymbolKillSwitch(SymbolId(c.symbol), arg == 1))
        }
        (ControlCommand::KillSwitch, a) => Err(format!("kill switch arg {a} is not 0 or 1")),
        (ControlCommand::TradingState, a) => u8::try_from(a)
            .ok()
            .and_then(TradingState::from_code)
            .map(Switch::TradingState)
            .ok_or_else(|| {
                format!("trading state {a} is not 1 (ACTIVE), 2 (REDUCING) or 3 (HALTED)")
            }),
    }
}

/// An operator switch as a wire control.
pub fn switch_out(s: &Switch) -> wire::Control {
    let (symbol, command, arg) = match *s {
        Switch::KillSwitch(on) => (ALL_SYMBOLS, ControlCommand::KillSwitch, i64::from(on)),
        Switch::SymbolKillSwitch(sym, on) => (sym.0, ControlCommand::KillSwitch, i64::from(on)),
        Switch::TradingState(t) => (
            ALL_SYMBOLS,
            ControlCommand::TradingState,
            i64::from(t.code()),
        ),
    };
    wire::Control {
        symbol,
        command,
        arg,
    }
}

/// Time a permit issued at `issued_at_ms` (0: just now) with `ttl_ms` has left at `now_ms`.
fn ttl_left(ttl_ms: u64, issued_at_ms: u64, now_ms: u64) -> u64 {
    if issued_at_ms == 0 {
        return ttl_ms;
    }
    ttl_ms.saturating_sub(now_ms.saturating_sub(issued_at_ms))
}

/// An ingress record as an engine input. `now_ms` (Unix ms) turns a permit's issue time into
/// the time it has left; `default_ttl_ms` is the TTL of a permit that carries none.
pub fn input(m: &Message, now_ms: u64, default_ttl_ms: u64) -> Result<Input, String> {
    let cmd = |c| Ok(Input::Command(c));
    match m {
        Message::Plan(p) => Ok(Input::Plan(plan_in(p))),
        Message::GovPermit(g) => {
            let ttl = if g.ttl_ms == 0 {
                default_ttl_ms
            } else {
                u64::from(g.ttl_ms)
            };
            Ok(Input::Permit(ExternalPermit::Gov {
                plan: PlanId(g.plan_id),
                allow: g.allow,
                reason: g.reason,
                ttl_ms: ttl_left(ttl, g.issued_at_ms, now_ms),
            }))
        }
        Message::P33Permit(p) => {
            let exchange = Qty::from_units(p.exchange_amt);
            let ttl = if p.ttl_ms == 0 {
                default_ttl_ms
            } else {
                u64::from(p.ttl_ms)
            };
            Ok(Input::Permit(ExternalPermit::P33 {
                plan: PlanId(p.plan_id),
                allow: p.allow,
                reason: p.reason,
                safe_qty: Qty::from_units(p.safe_qty),
                // No side given: the close is opposite to the exchange position judged.
                side: p.side.or(crate::types::Side::closing(exchange.units())),
                context: P33Context {
                    exchange,
                    ledger: Qty::from_units(p.ledger_amt),
                    tolerance: Qty::from_units(p.tolerance),
                },
                ttl_ms: ttl_left(ttl, p.issued_at_ms, now_ms),
            }))
        }
        Message::LedgerSet(l) => cmd(Command::SetLedger {
            symbol: SymbolId(l.symbol),
            amount: Qty::from_units(l.amount),
        }),
        Message::Control(c) => switch_in(c).map(|s| Input::Command(Command::Switch(s))),
        Message::PositionSnapshot(p) => cmd(Command::Position {
            symbol: SymbolId(p.symbol),
            amount: Qty::from_units(p.amount),
            mark: Price::from_units(p.mark_price),
        }),
        Message::SymbolFilters(f) => cmd(Command::SetFilters {
            symbol: SymbolId(f.symbol),
            filters: filters_in(f),
        }),
        Message::OrderHistory(h) => Ok(Input::History(history_in(h))),
        Message::AccountMode(m) => cmd(Command::AccountMode { hedge: m.hedge }),
        Message::SymbolStatus(st) => cmd(Command::SymbolStatus {
            symbol: SymbolId(st.symbol),
            status: st.status,
        }),
        Message::LedgerBase(l) => cmd(Command::LedgerBase {
            symbol: SymbolId(l.symbol),
            amount: Qty::from_units(l.amount),
            epoch: l.epoch,
        }),
        other => order_input(other)
            .map(Input::Order)
            .ok_or_else(|| format!("{:?} is not an input record", other.kind())),
    }
}

/// An exchange adapter's record about one of our orders (`OrderSent`, `OrderReport`,
/// `OrderFailed`) as the engine's [`OrderInput`]; `None` for any other record.
pub fn order_input(m: &Message) -> Option<OrderInput> {
    match m {
        Message::OrderSent(s) => Some(OrderInput::Sent {
            plan: PlanId(s.plan_id),
            symbol: SymbolId(s.symbol),
            at_ms: s.at_ms,
        }),
        Message::OrderReport(r) => Some(OrderInput::Report(Report {
            plan: PlanId(r.plan_id),
            symbol: SymbolId(r.symbol),
            side: r.side,
            status: r.status,
            cum_qty: Qty::from_units(r.cum_qty),
            price: Price::from_units(r.price),
            order_id: r.order_id,
            time_ms: r.time_ms,
            orig_qty: Qty::from_units(r.orig_qty),
            source: r.source,
        })),
        Message::OrderFailed(f) => Some(OrderInput::Failed(Failure {
            plan: PlanId(f.plan_id),
            symbol: SymbolId(f.symbol),
            kind: f.kind,
            reason: f.reason,
            exchange_code: f.exchange_code,
            at_ms: f.at_ms,
        })),
        _ => None,
    }
}

/// An input as its ingress record (`quantum ctl inject`, tests); `None` for [`Input::Reoffer`]
/// and [`Input::Lead`], which the daemon makes itself.
pub fn input_out(i: &Input) -> Option<Message> {
    Some(match *i {
        Input::Plan(p) => Message::Plan(plan_out(&p)),
        Input::Command(Command::SetLedger { symbol, amount }) => {
            Message::LedgerSet(wire::LedgerSet {
                symbol: symbol.0,
                amount: amount.units(),
                at_ms: 0,
            })
        }
        Input::Command(Command::Position {
            symbol,
            amount,
            mark,
        }) => Message::PositionSnapshot(wire::PositionSnapshot {
            symbol: symbol.0,
            amount: amount.units(),
            mark_price: mark.units(),
            exchange_time_ms: 0,
        }),
        Input::Command(Command::SetFilters { symbol, filters }) => {
            Message::SymbolFilters(filters_out(symbol, &filters))
        }
        Input::Command(Command::Switch(s)) => Message::Control(switch_out(&s)),
        Input::Command(Command::AccountMode { hedge }) => {
            Message::AccountMode(wire::AccountMode { hedge, at_ms: 0 })
        }
        Input::Command(Command::SymbolStatus { symbol, status }) => {
            Message::SymbolStatus(wire::SymbolStatus {
                status,
                symbol: symbol.0,
                at_ms: 0,
            })
        }
        Input::Command(Command::LedgerBase {
            symbol,
            amount,
            epoch,
        }) => Message::LedgerBase(wire::LedgerBase {
            symbol: symbol.0,
            amount: amount.units(),
            epoch,
        }),
        Input::Permit(ExternalPermit::Gov {
            plan,
            allow,
            reason,
            ttl_ms,
        }) => Message::GovPermit(wire::GovPermit {
            allow,
            symbol: 0,
            reason,
            plan_id: plan.0,
            ttl_ms: u32::try_from(ttl_ms).unwrap_or(u32::MAX),
            issued_at_ms: 0,
        }),
        Input::Permit(ExternalPermit::P33 {
            plan,
            allow,
            reason,
            safe_qty,
            side,
            context,
            ttl_ms,
        }) => Message::P33Permit(wire::P33Permit {
            allow,
            symbol: 0,
            reason,
            side,
            plan_id: plan.0,
            safe_qty: safe_qty.units(),
            exchange_amt: context.exchange.units(),
            ledger_amt: context.ledger.units(),
            tolerance: context.tolerance.units(),
            issued_at_ms: 0,
            ttl_ms: u32::try_from(ttl_ms).unwrap_or(u32::MAX),
        }),
        Input::Order(OrderInput::Sent {
            plan,
            symbol,
            at_ms,
        }) => Message::OrderSent(wire::OrderSent {
            symbol: symbol.0,
            plan_id: plan.0,
            at_ms,
        }),
        Input::Order(OrderInput::Report(r)) => Message::OrderReport(wire::OrderReport {
            status: r.status,
            symbol: r.symbol.0,
            side: r.side,
            source: r.source,
            plan_id: r.plan.0,
            cum_qty: r.cum_qty.units(),
            price: r.price.units(),
            order_id: r.order_id,
            time_ms: r.time_ms,
            orig_qty: r.orig_qty.units(),
        }),
        Input::Order(OrderInput::Failed(f)) => Message::OrderFailed(wire::OrderFailed {
            kind: f.kind,
            symbol: f.symbol.0,
            reason: f.reason,
            plan_id: f.plan.0,
            exchange_code: f.exchange_code,
            at_ms: f.at_ms,
        }),
        Input::History(h) => Message::OrderHistory(history_out(&h)),
        Input::Reoffer | Input::Lead { .. } => return None,
    })
}

fn history_in(h: &wire::OrderHistory) -> History {
    History {
        symbol: SymbolId(h.symbol),
        orders: h.orders,
        since_ms: h.since_ms,
        through_ms: h.through_ms,
    }
}

fn history_out(h: &History) -> wire::OrderHistory {
    wire::OrderHistory {
        symbol: h.symbol.0,
        orders: h.orders,
        since_ms: h.since_ms,
        through_ms: h.through_ms,
    }
}

fn result_out(r: &PlanResult) -> wire::PlanResult {
    let (error, detail) = match r.outcome {
        Outcome::Blocked(b) => {
            let (e, d) = b.codes();
            (Some(e), d)
        }
        Outcome::Duplicate { .. } => (Some(quantum_ipc::codes::ResultError::Duplicate), 0),
        Outcome::Executed { .. } | Outcome::NonExecute => (None, 0),
    };
    let ctx = match r.outcome {
        Outcome::Blocked(Block::P33Denied(_, c)) => c,
        _ => P33Context::default(),
    };
    wire::PlanResult {
        decision: r.decision,
        symbol: r.symbol.0,
        executed: r.executed(),
        error,
        plan_id: r.plan.0,
        detail,
        wait_us: u32::try_from(r.wait_ns / 1_000).unwrap_or(u32::MAX),
        // An executed plan's order; a duplicate's, when the plan has one the core knows.
        safe_qty: match r.outcome {
            Outcome::Executed { qty } | Outcome::Duplicate { ordered: Some(qty) } => qty.units(),
            _ => 0,
        },
        at_ms: r.at_ms,
        exchange_amt: ctx.exchange.units(),
        ledger_amt: ctx.ledger.units(),
        tolerance: ctx.tolerance.units(),
    }
}

fn result_in(r: &wire::PlanResult) -> Result<PlanResult, String> {
    let ctx = P33Context {
        exchange: Qty::from_units(r.exchange_amt),
        ledger: Qty::from_units(r.ledger_amt),
        tolerance: Qty::from_units(r.tolerance),
    };
    let outcome = match (r.executed, r.error) {
        (true, None) => Outcome::Executed {
            qty: Qty::from_units(r.safe_qty),
        },
        (false, None) if r.decision == crate::types::Decision::Execute => {
            return Err("an EXECUTE plan's result with neither an order nor an error".into())
        }
        (false, None) => Outcome::NonExecute,
        (false, Some(quantum_ipc::codes::ResultError::Duplicate)) => Outcome::Duplicate {
            ordered: (r.safe_qty > 0).then(|| Qty::from_units(r.safe_qty)),
        },
        (false, Some(e)) => Outcome::Blocked(
            Block::from_codes(e, r.detail, ctx)
                .ok_or_else(|| format!("result error {e} with unknown detail {}", r.detail))?,
        ),
        (true, Some(e)) => return Err(format!("an executed result with error {e}")),
    };
    Ok(PlanResult {
        plan: PlanId(r.plan_id),
        symbol: SymbolId(r.symbol),
        decision: r.decision,
        outcome,
        wait_ns: u64::from(r.wait_us) * 1_000,
        at_ms: r.at_ms,
    })
}

impl Event {
    /// This event as its wire record (what `results` and the journal carry).
    pub fn to_message(&self) -> Message {
        match *self {
            Event::PlanAccepted {
                plan,
                at_ms,
                deadline_ms,
            } => Message::PlanAccepted(plan_record!(wire::PlanAccepted, &plan, {
                at_ms,
                deadline_ms
            })),
            Event::GovPermit(g) => Message::GovPermit(wire::GovPermit {
                allow: g.allow,
                symbol: g.symbol.0,
                reason: g.reason,
                plan_id: g.plan.0,
                ttl_ms: g.ttl_ms,
                issued_at_ms: g.issued_at_ms,
            }),
            Event::P33Permit(p) => Message::P33Permit(wire::P33Permit {
                allow: p.allow,
                symbol: p.symbol.0,
                reason: p.reason,
                side: p.side,
                plan_id: p.plan.0,
                safe_qty: p.safe_qty.units(),
                exchange_amt: p.context.exchange.units(),
                ledger_amt: p.context.ledger.units(),
                tolerance: p.context.tolerance.units(),
                issued_at_ms: p.issued_at_ms,
                ttl_ms: p.ttl_ms,
            }),
            Event::OrderIntent(i) => Message::OrderIntent(intent_out(&i)),
            Event::PlanResult(r) => Message::PlanResult(result_out(&r)),
            Event::OrderSent {
                plan,
                symbol,
                at_ms,
            } => Message::OrderSent(wire::OrderSent {
                symbol: symbol.0,
                plan_id: plan.0,
                at_ms,
            }),
            Event::OrderAccepted {
                plan,
                symbol,
                order_id,
                at_ms,
            } => Message::OrderAccepted(wire::OrderAccepted {
                symbol: symbol.0,
                plan_id: plan.0,
                order_id,
                at_ms,
            }),
            Event::Fill(f) => Message::Fill(wire::Fill {
                side: f.side,
                symbol: f.symbol.0,
                plan_id: f.plan.0,
                qty: f.qty.units(),
                price: f.price.units(),
                order_id: f.order_id,
                time_ms: f.time_ms,
                cum_qty: f.cum_qty.units(),
                ledger_after: f.ledger_after.units(),
            }),
            Event::OrderDone(d) => Message::OrderDone(wire::OrderDone {
                code: d.code,
                symbol: d.symbol.0,
                reason: d.reason,
                plan_id: d.plan.0,
                filled: d.filled.units(),
                released: d.released.units(),
                exchange_code: d.exchange_code,
                at_ms: d.at_ms,
            }),
            Event::OrderUnknown {
                plan,
                symbol,
                reason,
                at_ms,
            } => Message::OrderUnknown(wire::OrderUnknown {
                symbol: symbol.0,
                reason: reason.code(),
                plan_id: plan.0,
                at_ms,
            }),
            Event::OrderResolved {
                plan,
                symbol,
                found,
                order_id,
                at_ms,
            } => Message::OrderResolved(wire::OrderResolved {
                found,
                symbol: symbol.0,
                plan_id: plan.0,
                order_id,
                at_ms,
            }),
            Event::LedgerSet {
                symbol,
                amount,
                at_ms,
            } => Message::LedgerSet(wire::LedgerSet {
                symbol: symbol.0,
                amount: amount.units(),
                at_ms,
            }),
            Event::Position {
                symbol,
                amount,
                mark,
                time_ms,
            } => Message::PositionSnapshot(wire::PositionSnapshot {
                symbol: symbol.0,
                amount: amount.units(),
                mark_price: mark.units(),
                exchange_time_ms: time_ms,
            }),
            Event::Filters { symbol, filters } => {
                Message::SymbolFilters(filters_out(symbol, &filters))
            }
            Event::Switch(s) => Message::Control(switch_out(&s)),
            Event::Refused(r) => Message::InputRefused(wire::InputRefused {
                ring: r.ring,
                symbol: r.symbol.0,
                reason: r.reason,
                kind: r.kind,
                plan_id: r.plan.0,
                at_ms: r.at_ms,
            }),
            Event::Reconciling {
                symbol,
                on,
                unknown_orders,
                at_ms,
            } => Message::Reconciling(wire::Reconciling {
                on,
                symbol: symbol.0,
                unknown_orders,
                at_ms,
            }),
            Event::OrderRecovered { report: r, at_ms } => {
                Message::OrderRecovered(wire::OrderRecovered {
                    status: r.status,
                    symbol: r.symbol.0,
                    side: r.side,
                    plan_id: r.plan.0,
                    cum_qty: r.cum_qty.units(),
                    price: r.price.units(),
                    order_id: r.order_id,
                    time_ms: r.time_ms,
                    orig_qty: r.orig_qty.units(),
                    at_ms,
                })
            }
            Event::OrderHistory(h) => Message::OrderHistory(history_out(&h)),
            Event::LedgerWanted {
                symbol,
                epoch,
                at_ms,
            } => Message::LedgerWanted(wire::LedgerWanted {
                symbol: symbol.0,
                epoch,
                at_ms,
            }),
            Event::Leading {
                epoch,
                since_ms,
                at_ms,
            } => Message::Leading(wire::Leading {
                epoch,
                since_ms,
                at_ms,
            }),
            Event::PlanSeen { plan, at_ms } => {
                Message::PlanSeen(plan_record!(wire::PlanSeen, &plan, { at_ms }))
            }
            Event::Started {
                history,
                at_ms,
                since_ms,
            } => Message::Started(wire::Started {
                history,
                at_ms,
                since_ms,
            }),
            Event::AccountMode { hedge, at_ms } => {
                Message::AccountMode(wire::AccountMode { hedge, at_ms })
            }
            Event::SymbolStatus {
                symbol,
                status,
                at_ms,
            } => Message::SymbolStatus(wire::SymbolStatus {
                status,
                symbol: symbol.0,
                at_ms,
            }),
        }
    }

    /// An event record (from `results` or the journal) as the event.
    pub fn from_message(m: &Message) -> Result<Event, String> {
        Ok(match m {
            Message::PlanAccepted(a) => Event::PlanAccepted {
                plan: plan_in(&wire_plan!(a)),
                at_ms: a.at_ms,
                deadline_ms: a.deadline_ms,
            },
            Message::GovPermit(g) => Event::GovPermit(GovPermitEvent {
                plan: PlanId(g.plan_id),
                symbol: SymbolId(g.symbol),
                allow: g.allow,
                reason: g.reason,
                issued_at_ms: g.issued_at_ms,
                ttl_ms: g.ttl_ms,
            }),
            Message::P33Permit(p) => Event::P33Permit(P33PermitEvent {
                plan: PlanId(p.plan_id),
                symbol: SymbolId(p.symbol),
                allow: p.allow,
                reason: p.reason,
                side: p.side,
                safe_qty: Qty::from_units(p.safe_qty),
                context: P33Context {
                    exchange: Qty::from_units(p.exchange_amt),
                    ledger: Qty::from_units(p.ledger_amt),
                    tolerance: Qty::from_units(p.tolerance),
                },
                issued_at_ms: p.issued_at_ms,
                ttl_ms: p.ttl_ms,
            }),
            Message::OrderIntent(i) => Event::OrderIntent(intent_in(i)),
            Message::PlanResult(r) => Event::PlanResult(result_in(r)?),
            Message::OrderSent(s) => Event::OrderSent {
                plan: PlanId(s.plan_id),
                symbol: SymbolId(s.symbol),
                at_ms: s.at_ms,
            },
            Message::OrderAccepted(a) => Event::OrderAccepted {
                plan: PlanId(a.plan_id),
                symbol: SymbolId(a.symbol),
                order_id: a.order_id,
                at_ms: a.at_ms,
            },
            Message::Fill(f) => Event::Fill(FillEvent {
                plan: PlanId(f.plan_id),
                symbol: SymbolId(f.symbol),
                side: f.side,
                qty: Qty::from_units(f.qty),
                price: Price::from_units(f.price),
                order_id: f.order_id,
                time_ms: f.time_ms,
                cum_qty: Qty::from_units(f.cum_qty),
                ledger_after: Qty::from_units(f.ledger_after),
            }),
            Message::OrderDone(d) => Event::OrderDone(DoneEvent {
                plan: PlanId(d.plan_id),
                symbol: SymbolId(d.symbol),
                code: d.code,
                reason: d.reason,
                filled: Qty::from_units(d.filled),
                released: Qty::from_units(d.released),
                exchange_code: d.exchange_code,
                at_ms: d.at_ms,
            }),
            Message::OrderUnknown(u) => Event::OrderUnknown {
                plan: PlanId(u.plan_id),
                symbol: SymbolId(u.symbol),
                reason: quantum_ipc::codes::UnknownReason::from_code(u.reason)
                    .ok_or_else(|| format!("unknown-outcome reason {} is not defined", u.reason))?,
                at_ms: u.at_ms,
            },
            Message::OrderResolved(r) => Event::OrderResolved {
                plan: PlanId(r.plan_id),
                symbol: SymbolId(r.symbol),
                found: r.found,
                order_id: r.order_id,
                at_ms: r.at_ms,
            },
            Message::LedgerSet(l) => Event::LedgerSet {
                symbol: SymbolId(l.symbol),
                amount: Qty::from_units(l.amount),
                at_ms: l.at_ms,
            },
            Message::PositionSnapshot(p) => Event::Position {
                symbol: SymbolId(p.symbol),
                amount: Qty::from_units(p.amount),
                mark: Price::from_units(p.mark_price),
                time_ms: p.exchange_time_ms,
            },
            Message::SymbolFilters(f) => Event::Filters {
                symbol: SymbolId(f.symbol),
                filters: filters_in(f),
            },
            Message::Control(c) => Event::Switch(switch_in(c)?),
            Message::InputRefused(r) => Event::Refused(RefusedEvent {
                ring: r.ring,
                kind: r.kind,
                symbol: SymbolId(r.symbol),
                plan: PlanId(r.plan_id),
                reason: r.reason,
                at_ms: r.at_ms,
            }),
            Message::Reconciling(r) => Event::Reconciling {
                symbol: SymbolId(r.symbol),
                on: r.on,
                unknown_orders: r.unknown_orders,
                at_ms: r.at_ms,
            },
            Message::OrderRecovered(r) => Event::OrderRecovered {
                report: Report {
                    plan: PlanId(r.plan_id),
                    symbol: SymbolId(r.symbol),
                    side: r.side,
                    status: r.status,
                    cum_qty: Qty::from_units(r.cum_qty),
                    price: Price::from_units(r.price),
                    order_id: r.order_id,
                    time_ms: r.time_ms,
                    orig_qty: Qty::from_units(r.orig_qty),
                    source: quantum_ipc::codes::ReportSource::History,
                },
                at_ms: r.at_ms,
            },
            Message::OrderHistory(h) => Event::OrderHistory(history_in(h)),
            Message::LedgerWanted(l) => Event::LedgerWanted {
                symbol: SymbolId(l.symbol),
                epoch: l.epoch,
                at_ms: l.at_ms,
            },
            Message::Leading(l) => Event::Leading {
                epoch: l.epoch,
                since_ms: l.since_ms,
                at_ms: l.at_ms,
            },
            Message::PlanSeen(a) => Event::PlanSeen {
                plan: plan_in(&wire_plan!(a)),
                at_ms: a.at_ms,
            },
            Message::Started(s) => Event::Started {
                history: s.history,
                at_ms: s.at_ms,
                since_ms: s.since_ms,
            },
            Message::AccountMode(m) => Event::AccountMode {
                hedge: m.hedge,
                at_ms: m.at_ms,
            },
            Message::SymbolStatus(st) => Event::SymbolStatus {
                symbol: SymbolId(st.symbol),
                status: st.status,
                at_ms: st.at_ms,
            },
            other => return Err(format!("{:?} is not an event record", other.kind())),
        })
    }
}
