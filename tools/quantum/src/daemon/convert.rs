//! Conversions between the wire records of `quantum-ipc` and the core's types.
//!
//! Decoding (`Message::decode` with the daemon's `Limits`) has already checked tags, enum bytes,
//! symbol ranges and quantity ranges; what is left here is meaning: control codes, permit TTLs
//! and the result error codes below. Whatever cannot be given a meaning is an error and the
//! caller counts the record as invalid.

use quantum_core::governor::{GovReason, TradingState};
use quantum_core::ledger::{Filters, LotFilter};
use quantum_core::p33::P33Reason;
use quantum_core::permit::P33Context;
use quantum_core::{
    Action, Block, Command, Decision, Input, OrderIntent, Outcome, Plan, PlanId, PlanResult, Price,
    Qty, Score, Side, SymbolId,
};
use quantum_ipc::wire::{self, Message, ALL_SYMBOLS, PLAN_FLAG_REDUCE_ONLY};

/// `Control::command`: kill switch; `arg` 1 = on, 0 = off; `symbol` one symbol or
/// [`ALL_SYMBOLS`] for the global switch.
pub const CONTROL_KILL_SWITCH: u16 = 1;
/// `Control::command`: trading state; `arg` 0 = ACTIVE, 1 = REDUCING, 2 = HALTED.
pub const CONTROL_TRADING_STATE: u16 = 2;

/// `Reject::reason` of an order that filled in part and whose remainder the exchange ended
/// (expired or cancelled): it follows the order's `Fill`s, and the daemon releases only the
/// unfilled rest ([`super::inflight`]). Outside the range of the Binance bridge's
/// `RejectReason` codes, which mean "refused, nothing placed"; the bridge sends the same number
/// (`quantum_binance::bridge::REJECT_REMAINDER_EXPIRED`).
pub const REJECT_REMAINDER_EXPIRED: u16 = 1000;

/// `PlanResult::error` codes. `detail` holds the governor's or P3.3's reason code
/// (`GovReason` / `P33Reason` as `u16`) for the two `*_DENIED` codes, 0 otherwise.
pub mod result_error {
    /// Executed, or not an EXECUTE plan.
    pub const NONE: u16 = 0;
    /// The governor's permit did not arrive within the wait.
    pub const MISSING_GOV: u16 = 1;
    /// P3.3's permit did not arrive within the wait.
    pub const MISSING_P33: u16 = 2;
    /// The governor denied (`detail`: reason code).
    pub const GOV_DENIED: u16 = 3;
    /// P3.3 denied (`detail`: reason code).
    pub const P33_DENIED: u16 = 4;
    /// A permit expired before it could be consumed.
    pub const EXPIRED: u16 = 5;
    /// The plan id was seen before.
    pub const DUPLICATE: u16 = 6;
}

/// What an ingress record asks of the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ingress {
    /// Hand this to the engine.
    Input(Input),
    /// The exchange refused the order of `plan`, or ended its unfilled remainder: the daemon
    /// releases what is still in flight of it (it remembers each intent's quantity and fills;
    /// the wire `Reject` carries no quantity).
    Reject {
        /// Plan.
        plan: PlanId,
        /// Symbol.
        symbol: SymbolId,
        /// The adapter's reason code ([`REJECT_REMAINDER_EXPIRED`] after partial fills).
        reason: u16,
    },
}

fn decision_in(d: wire::Decision) -> Decision {
    match d {
        wire::Decision::Execute => Decision::Execute,
        wire::Decision::Hold => Decision::Hold,
        wire::Decision::Reduce => Decision::Reduce,
        wire::Decision::Skip => Decision::Skip,
    }
}

fn decision_out(d: Decision) -> wire::Decision {
    match d {
        Decision::Execute => wire::Decision::Execute,
        Decision::Hold => wire::Decision::Hold,
        Decision::Reduce => wire::Decision::Reduce,
        Decision::Skip => wire::Decision::Skip,
    }
}

fn action_in(a: wire::Action) -> Action {
    match a {
        wire::Action::Partial25 => Action::Partial25,
        wire::Action::Partial50 => Action::Partial50,
        wire::Action::Partial75 => Action::Partial75,
        wire::Action::FullClose => Action::FullClose,
        wire::Action::None => Action::None,
    }
}

fn action_out(a: Action) -> wire::Action {
    match a {
        Action::Partial25 => wire::Action::Partial25,
        Action::Partial50 => wire::Action::Partial50,
        Action::Partial75 => wire::Action::Partial75,
        Action::FullClose => wire::Action::FullClose,
        Action::None => wire::Action::None,
    }
}

/// Wire side to core side.
pub fn side_in(s: wire::Side) -> Side {
    match s {
        wire::Side::Buy => Side::Buy,
        wire::Side::Sell => Side::Sell,
    }
}

/// Core side to wire side.
pub fn side_out(s: Side) -> wire::Side {
    match s {
        Side::Buy => wire::Side::Buy,
        Side::Sell => wire::Side::Sell,
    }
}

/// Time a permit issued at `issued_at_ms` (0: unknown) with `ttl_ms` has left at `now_ms`.
fn ttl_left(ttl_ms: u64, issued_at_ms: u64, now_ms: u64) -> u64 {
    if issued_at_ms == 0 {
        return ttl_ms;
    }
    ttl_ms.saturating_sub(now_ms.saturating_sub(issued_at_ms))
}

/// A wire plan as the core's plan.
pub fn plan_in(p: &wire::Plan) -> Plan {
    Plan {
        id: PlanId(p.plan_id),
        symbol: SymbolId(p.symbol),
        decision: decision_in(p.decision),
        action: action_in(p.action),
        kill_score: Score::from_units(p.kill_score),
        created_at_ms: p.created_at_ms,
        reduce_only: p.flags & PLAN_FLAG_REDUCE_ONLY != 0,
        qty: Qty::from_units(p.qty),
    }
}

/// The core's plan as a wire plan.
pub fn plan_out(p: &Plan) -> wire::Plan {
    wire::Plan {
        decision: decision_out(p.decision),
        symbol: p.symbol.0,
        action: action_out(p.action),
        flags: if p.reduce_only {
            PLAN_FLAG_REDUCE_ONLY
        } else {
            0
        },
        plan_id: p.id.0,
        kill_score: p.kill_score.units(),
        created_at_ms: p.created_at_ms,
        qty: p.qty.units(),
    }
}

/// Gives a decoded ingress record its meaning. `now_ms` (Unix ms) turns permits' issue times
/// into the TTL they have left.
pub fn ingress(m: &Message, now_ms: u64) -> Result<Ingress, String> {
    use quantum_core::engine::ExternalPermit as Ext;
    let cmd = |c| Ok(Ingress::Input(Input::Command(c)));
    match m {
        Message::Plan(p) => Ok(Ingress::Input(Input::Plan(plan_in(p)))),
        Message::GovPermit(g) => Ok(Ingress::Input(Input::Permit(Ext::Gov {
            plan: PlanId(g.plan_id),
            allow: g.allow,
            reason: GovReason::from_code(g.reason),
            ttl_ms: ttl_left(u64::from(g.ttl_ms), g.issued_at_ms, now_ms),
        }))),
        Message::P33Permit(p) => {
            let exchange = Qty::from_units(p.exchange_amt);
            Ok(Ingress::Input(Input::Permit(Ext::P33 {
                plan: PlanId(p.plan_id),
                allow: p.allow,
                reason: P33Reason::from_code(p.reason),
                safe_qty: Qty::from_units(p.safe_qty),
                // The close is opposite to the exchange position the permit was judged on.
                side: Side::closing(exchange),
                context: P33Context {
                    exchange,
                    ledger: Qty::from_units(p.ledger_amt),
                    tolerance: Qty::from_units(p.tolerance),
                },
                // The wire permit carries no TTL: the legacy P3.3 permits live as long as the
                // governor's (15 s); the apply wait bounds the use of any permit anyway.
                ttl_ms: ttl_left(15_000, p.issued_at_ms, now_ms),
            })))
        }
        Message::LedgerSet(l) => cmd(Command::SetLedger {
            symbol: SymbolId(l.symbol),
            amount: Qty::from_units(l.amount),
        }),
        Message::Control(c) => control_in(c).map(|c| Ingress::Input(Input::Command(c))),
        Message::PositionSnapshot(p) => cmd(Command::Position {
            symbol: SymbolId(p.symbol),
            amount: Qty::from_units(p.amount),
            mark: Price::from_units(p.mark_price),
        }),
        Message::Fill(f) => cmd(Command::Fill {
            symbol: SymbolId(f.symbol),
            side: side_in(f.side),
            qty: Qty::from_units(f.qty),
            plan: (f.plan_id != 0).then_some(PlanId(f.plan_id)),
        }),
        Message::Reject(r) => Ok(Ingress::Reject {
            plan: PlanId(r.plan_id),
            symbol: SymbolId(r.symbol),
            reason: r.reason,
        }),
        Message::SymbolFilters(f) => cmd(Command::SetFilters {
            symbol: SymbolId(f.symbol),
            filters: filters_in(f),
        }),
        Message::OrderIntent(_) | Message::PlanResult(_) | Message::Raw(_) => {
            Err(format!("{:?} is not an ingress record", m.kind()))
        }
    }
}

fn filters_in(f: &wire::SymbolFilters) -> Filters {
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

fn control_in(c: &wire::Control) -> Result<Command, String> {
    match (c.command, c.arg) {
        (CONTROL_KILL_SWITCH, arg @ (0 | 1)) if c.symbol == ALL_SYMBOLS => {
            Ok(Command::KillSwitch(arg == 1))
        }
        (CONTROL_KILL_SWITCH, arg @ (0 | 1)) => {
            Ok(Command::SymbolKillSwitch(SymbolId(c.symbol), arg == 1))
        }
        (CONTROL_KILL_SWITCH, a) => Err(format!("kill switch arg {a} is not 0 or 1")),
        (CONTROL_TRADING_STATE, 0) => Ok(Command::TradingState(TradingState::Active)),
        (CONTROL_TRADING_STATE, 1) => Ok(Command::TradingState(TradingState::Reducing)),
        (CONTROL_TRADING_STATE, 2) => Ok(Command::TradingState(TradingState::Halted)),
        (CONTROL_TRADING_STATE, a) => Err(format!("trading state {a} is not 0, 1 or 2")),
        (code, _) => Err(format!("unknown control command {code}")),
    }
}

/// The wire record for an operator command (`None` for commands only the exchange makes that
/// have no wire form of their own: `OrderDone`).
pub fn command_out(c: &Command, now_ms: u64) -> Option<Message> {
    let control = |symbol: u16, command: u16, arg: i64| {
        Message::Control(wire::Control {
            symbol,
            command,
            arg,
        })
    };
    Some(match *c {
        Command::SetLedger { symbol, amount } => Message::LedgerSet(wire::LedgerSet {
            symbol: symbol.0,
            amount: amount.units(),
        }),
        Command::Position {
            symbol,
            amount,
            mark,
        } => Message::PositionSnapshot(wire::PositionSnapshot {
            symbol: symbol.0,
            amount: amount.units(),
            mark_price: mark.units(),
            exchange_time_ms: now_ms,
        }),
        Command::Fill { .. } | Command::OrderDone { .. } => return None,
        Command::SetFilters { symbol, filters } => Message::SymbolFilters(wire::SymbolFilters {
            symbol: symbol.0,
            min_qty: filters.lot.min.units(),
            max_qty: filters.lot.max.units(),
            step: filters.lot.step.units(),
            market_min_qty: filters.market_lot.min.units(),
            market_max_qty: filters.market_lot.max.units(),
            market_step: filters.market_lot.step.units(),
            min_notional: filters.min_notional.units(),
        }),
        Command::KillSwitch(on) => control(ALL_SYMBOLS, CONTROL_KILL_SWITCH, i64::from(on)),
        Command::SymbolKillSwitch(s, on) => control(s.0, CONTROL_KILL_SWITCH, i64::from(on)),
        Command::TradingState(t) => control(ALL_SYMBOLS, CONTROL_TRADING_STATE, t as u8 as i64),
    })
}

/// An order intent as its wire record.
pub fn order_out(o: &OrderIntent) -> wire::OrderIntent {
    wire::OrderIntent {
        side: side_out(o.side),
        symbol: o.symbol.0,
        reduce_only: o.reduce_only,
        order_type: wire::OrderType::Market,
        plan_id: o.plan.0,
        qty: o.qty.units(),
        t_in_ns: o.t_in_ns,
        t_out_ns: o.t_out_ns,
    }
}

/// A wire order intent as the core's (the client order id is derived from the plan id).
#[cfg_attr(not(test), allow(dead_code))] // for the orders consumer (Binance bridge) and tests
pub fn order_in(o: &wire::OrderIntent) -> OrderIntent {
    OrderIntent {
        plan: PlanId(o.plan_id),
        symbol: SymbolId(o.symbol),
        side: side_in(o.side),
        qty: Qty::from_units(o.qty),
        reduce_only: o.reduce_only,
        t_in_ns: o.t_in_ns,
        t_out_ns: o.t_out_ns,
    }
}

/// `(error, detail)` codes of an outcome.
fn error_codes(o: &Outcome) -> (u16, u16) {
    use result_error as e;
    match o {
        Outcome::Executed(_) | Outcome::NonExecute => (e::NONE, 0),
        Outcome::Duplicate => (e::DUPLICATE, 0),
        Outcome::Blocked(b) => match b {
            Block::MissingGov => (e::MISSING_GOV, 0),
            Block::MissingP33 => (e::MISSING_P33, 0),
            Block::GovDenied(r) => (e::GOV_DENIED, *r as u16),
            Block::P33Denied(r, _) => (e::P33_DENIED, *r as u16),
            Block::Expired => (e::EXPIRED, 0),
        },
    }
}

/// A plan result as its wire record.
pub fn result_out(r: &PlanResult) -> wire::PlanResult {
    let (error, detail) = error_codes(&r.outcome);
    wire::PlanResult {
        decision: decision_out(r.decision),
        symbol: r.symbol.0,
        executed: r.executed(),
        error,
        plan_id: r.plan.0,
        detail,
        wait_us: u32::try_from(r.wait_ns / 1_000).unwrap_or(u32::MAX),
        safe_qty: r.safe_qty().map_or(0, Qty::units),
        order_id: 0,
    }
}

/// The permits of one plan as its result shows them, for the `results` ring: written before
/// the plan's [`wire::PlanResult`]. `None` where the result does not say what that permit was.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Permits {
    /// The governor's permit.
    pub gov: Option<wire::GovPermit>,
    /// P3.3's permit.
    pub p33: Option<wire::P33Permit>,
}

/// The permits of an EXECUTE plan that reached the permit stage, derived from its result (the
/// engine does not hand the issued permits out; the permit table's slot is closed, and may be
/// reused, by the time the result leaves it).
///
/// `gov_ttl_ms` is the governor's configured permit TTL; `now_ms` (Unix ms) the time the result
/// is published: the permits' `issued_at_ms` is the plan's entry into the engine, `now_ms`
/// minus the plan's wait, which is when the core's governor and P3.3 judge it.
///
/// | outcome | `GovPermit` | `P33Permit` |
/// |---|---|---|
/// | `Executed` | granted, `ttl_ms` = the TTL | allowed, `safe_qty` = the order's quantity |
/// | `Blocked(GovDenied(r))` | denied, reason `r` | none |
/// | `Blocked(P33Denied(r, ctx))` | granted | denied, reason `r`, `ctx`'s amounts |
/// | `Blocked(MissingGov)` | none | none |
/// | `Blocked(MissingP33)` | granted | none |
/// | `Blocked(Expired)` | granted, `ttl_ms` 0 | allowed, `safe_qty` 0 |
/// | `Duplicate`, `NonExecute` | none | none |
///
/// What deriving loses, exactly:
/// - an allowed P3.3 permit's context (`exchange_amt`, `ledger_amt`, `tolerance`): written as
///   0; only a denial carries its context in the result;
/// - P3.3's decision when the governor denied (apply stops at the governor's deny), and either
///   permit's decision when it was missing: those permits are not written at all;
/// - after `P33Denied` the governor's permit is only known not to be a deny: it is written as
///   granted, which is what the core's governor issued in `single` mode (it decides before
///   P3.3); in `pipelined` mode, or with a legacy governor's permit, it may not have been issued
///   yet when apply read P3.3's deny;
/// - after `Expired`, which permit expired and P3.3's `safe_qty` (written as `ttl_ms` 0 and
///   `safe_qty` 0); the rare `Closed`/`Stale` consumes that the core also reports as `Expired`
///   are written the same way;
/// - the TTL and issue time of a permit a legacy issuer sent on the `plans` ring (the
///   configured TTL and the plan's entry time are written instead), and P3.3's TTL (the wire
///   record has no field for it; the core's is `p33.permit_ttl_ms`, 15 s like the governor's).
pub fn permits_out(r: &PlanResult, gov_ttl_ms: u64, now_ms: u64) -> Permits {
    let issued_at_ms = now_ms.saturating_sub(r.wait_ns / 1_000_000);
    let ttl = u32::try_from(gov_ttl_ms).unwrap_or(u32::MAX);
    let gov = |allow: bool, reason: u16, ttl_ms: u32| wire::GovPermit {
        allow,
        symbol: r.symbol.0,
        reason,
        plan_id: r.plan.0,
        ttl_ms,
        issued_at_ms,
    };
    let p33 = |allow: bool, reason: u16, safe_qty: Qty, ctx: P33Context| wire::P33Permit {
        allow,
        symbol: r.symbol.0,
        reason,
        plan_id: r.plan.0,
        safe_qty: safe_qty.units(),
        exchange_amt: ctx.exchange.units(),
        ledger_amt: ctx.ledger.units(),
        tolerance: ctx.tolerance.units(),
        issued_at_ms,
    };
    let none = P33Context::default();
    let (g, p) = match &r.outcome {
        Outcome::Executed(o) => (Some(gov(true, 0, ttl)), Some(p33(true, 0, o.qty, none))),
        Outcome::Blocked(Block::GovDenied(reason)) => (Some(gov(false, *reason as u16, ttl)), None),
        Outcome::Blocked(Block::P33Denied(reason, ctx)) => (
            Some(gov(true, 0, ttl)),
            Some(p33(false, *reason as u16, Qty::ZERO, *ctx)),
        ),
        Outcome::Blocked(Block::MissingP33) => (Some(gov(true, 0, ttl)), None),
        Outcome::Blocked(Block::Expired) => {
            (Some(gov(true, 0, 0)), Some(p33(true, 0, Qty::ZERO, none)))
        }
        Outcome::Blocked(Block::MissingGov) | Outcome::Duplicate | Outcome::NonExecute => {
            (None, None)
        }
    };
    Permits { gov: g, p33: p }
}

/// The legacy `error` text of a wire result (`None` when there is no error), spelled as
/// [`PlanResult::error`] displays it.
pub fn result_error_text(r: &wire::PlanResult) -> Option<String> {
    use result_error as e;
    Some(match r.error {
        e::NONE => return None,
        e::MISSING_GOV => "missing_gov".into(),
        e::MISSING_P33 => "missing_p33".into(),
        e::GOV_DENIED => format!("gov_denied:{}", GovReason::from_code(r.detail).as_str()),
        e::P33_DENIED => format!("p33_denied:{}", P33Reason::from_code(r.detail).as_str()),
        e::EXPIRED => "expired".into(),
        e::DUPLICATE => "duplicate".into(),
        other => format!("error_{other}"),
    })
}

/// The decision of a wire result, spelled as the legacy system does.
pub fn decision_text(d: wire::Decision) -> &'static str {
    decision_in(d).as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantum_ipc::wire::Limits;

    fn q(s: &str) -> Qty {
        s.parse().unwrap()
    }

    fn through_wire(m: Message) -> Message {
        Message::decode(&m.encode(), &Limits::new(3)).expect("valid record")
    }

    #[test]
    fn the_bridge_and_the_daemon_agree_on_the_remainder_code() {
        assert_eq!(
            REJECT_REMAINDER_EXPIRED,
            quantum_binance::bridge::REJECT_REMAINDER_EXPIRED
        );
        let m = Message::Reject(wire::Reject {
            symbol: 1,
            exchange_code: 0,
            plan_id: 7,
            reason: REJECT_REMAINDER_EXPIRED,
        });
        assert_eq!(
            ingress(&through_wire(m), 0),
            Ok(Ingress::Reject {
                plan: PlanId(7),
                symbol: SymbolId(1),
                reason: REJECT_REMAINDER_EXPIRED
            })
        );
    }

    #[test]
    fn plans_round_trip() {
        let mut p = Plan::exit(
            "f1a8d7f48713d5cf".parse().unwrap(),
            SymbolId(2),
            Decision::Execute,
            Action::Partial75,
        );
        p.kill_score = "0.539".parse().unwrap();
        p.created_at_ms = 1_769_301_008_976;
        let back = match through_wire(Message::Plan(plan_out(&p))) {
            Message::Plan(w) => plan_in(&w),
            m => panic!("{m:?}"),
        };
        assert_eq!(back, p);
        for d in Decision::ALL {
            for a in Action::ALL {
                let p = Plan {
                    decision: *d,
                    action: *a,
                    reduce_only: false,
                    qty: q("1.5"),
                    ..p
                };
                assert_eq!(plan_in(&plan_out(&p)), p);
            }
        }
    }

    #[test]
    fn commands_round_trip() {
        let s = SymbolId(0);
        let cmds = [
            Command::SetLedger {
                symbol: s,
                amount: q("-0.062"),
            },
            Command::Position {
                symbol: s,
                amount: q("0.062"),
                mark: "104000".parse().unwrap(),
            },
            Command::SetFilters {
                symbol: s,
                filters: quantum_core::SymbolSpec::defaults()[0].filters,
            },
            Command::KillSwitch(true),
            Command::KillSwitch(false),
            Command::SymbolKillSwitch(SymbolId(1), true),
            Command::TradingState(TradingState::Active),
            Command::TradingState(TradingState::Reducing),
            Command::TradingState(TradingState::Halted),
        ];
        for c in cmds {
            let m = through_wire(command_out(&c, 5).unwrap());
            assert_eq!(
                ingress(&m, 5),
                Ok(Ingress::Input(Input::Command(c))),
                "{c:?}"
            );
        }
    }

    #[test]
    fn bad_controls_are_errors() {
        let c = |command, arg| {
            ingress(
                &Message::Control(wire::Control {
                    symbol: ALL_SYMBOLS,
                    command,
                    arg,
                }),
                0,
            )
        };
        assert!(c(9, 0).unwrap_err().contains("unknown control"));
        assert!(c(CONTROL_KILL_SWITCH, 2).is_err());
        assert!(c(CONTROL_TRADING_STATE, 3).is_err());
    }

    #[test]
    fn permits_keep_the_ttl_they_have_left() {
        let g = Message::GovPermit(wire::GovPermit {
            allow: true,
            symbol: 0,
            reason: 0,
            plan_id: 7,
            ttl_ms: 15_000,
            issued_at_ms: 1_000,
        });
        let Ok(Ingress::Input(Input::Permit(quantum_core::engine::ExternalPermit::Gov {
            ttl_ms,
            ..
        }))) = ingress(&through_wire(g), 5_000)
        else {
            panic!()
        };
        assert_eq!(ttl_ms, 11_000);
        let p = Message::P33Permit(wire::P33Permit {
            allow: true,
            symbol: 0,
            reason: 0,
            plan_id: 7,
            safe_qty: q("0.046").units(),
            exchange_amt: q("0.062").units(),
            ledger_amt: q("0.062").units(),
            tolerance: q("0.001").units(),
            issued_at_ms: 0,
        });
        let Ok(Ingress::Input(Input::Permit(quantum_core::engine::ExternalPermit::P33 {
            side,
            safe_qty,
            ttl_ms,
            ..
        }))) = ingress(&through_wire(p), 5_000)
        else {
            panic!()
        };
        assert_eq!(
            (side, safe_qty, ttl_ms),
            (Some(Side::Sell), q("0.046"), 15_000)
        );
    }

    #[test]
    fn orders_round_trip() {
        let o = OrderIntent {
            plan: PlanId(0xf1a8_d7f4_8713_d5cf),
            symbol: SymbolId(1),
            side: Side::Sell,
            qty: q("0.046"),
            reduce_only: true,
            t_in_ns: 10,
            t_out_ns: 20,
        };
        let Message::OrderIntent(w) = through_wire(Message::OrderIntent(order_out(&o))) else {
            panic!()
        };
        assert_eq!(order_in(&w), o);
    }

    fn result(outcome: Outcome, wait_ms: u64) -> PlanResult {
        PlanResult {
            plan: PlanId(0xf1a8_d7f4_8713_d5cf),
            symbol: SymbolId(0),
            decision: Decision::Execute,
            outcome,
            wait_ns: wait_ms * 1_000_000 + 999,
        }
    }

    #[test]
    fn permits_are_derived_from_the_result_as_far_as_it_tells() {
        let now = 1_769_301_010_000;
        let ctx = P33Context {
            exchange: q("0.062"),
            ledger: q("0.002"),
            tolerance: q("0.001"),
        };
        let gov = |allow, reason: u16, ttl_ms| wire::GovPermit {
            allow,
            symbol: 0,
            reason,
            plan_id: 0xf1a8_d7f4_8713_d5cf,
            ttl_ms,
            issued_at_ms: now - 3,
        };
        let p33 = |allow, reason: u16, safe: &str, c: P33Context| wire::P33Permit {
            allow,
            symbol: 0,
            reason,
            plan_id: 0xf1a8_d7f4_8713_d5cf,
            safe_qty: q(safe).units(),
            exchange_amt: c.exchange.units(),
            ledger_amt: c.ledger.units(),
            tolerance: c.tolerance.units(),
            issued_at_ms: now - 3,
        };
        let none = P33Context::default();
        let order = OrderIntent {
            plan: PlanId(0xf1a8_d7f4_8713_d5cf),
            symbol: SymbolId(0),
            side: Side::Sell,
            qty: q("0.046"),
            reduce_only: true,
            t_in_ns: 0,
            t_out_ns: 0,
        };
        let cases = [
            (
                Outcome::Executed(order),
                Some(gov(true, 0, 15_000)),
                Some(p33(true, 0, "0.046", none)),
            ),
            (
                Outcome::Blocked(Block::P33Denied(
                    P33Reason::ReconcileRequiredQtyMismatch,
                    ctx,
                )),
                Some(gov(true, 0, 15_000)),
                Some(p33(false, 1, "0", ctx)),
            ),
            (
                Outcome::Blocked(Block::GovDenied(GovReason::KillSwitch)),
                Some(gov(false, GovReason::KillSwitch as u16, 15_000)),
                None,
            ),
            (Outcome::Blocked(Block::MissingGov), None, None),
            (
                Outcome::Blocked(Block::MissingP33),
                Some(gov(true, 0, 15_000)),
                None,
            ),
            (
                Outcome::Blocked(Block::Expired),
                Some(gov(true, 0, 0)),
                Some(p33(true, 0, "0", none)),
            ),
            (Outcome::Duplicate, None, None),
            (Outcome::NonExecute, None, None),
        ];
        for (outcome, g, p) in cases {
            let got = permits_out(&result(outcome, 3), 15_000, now);
            assert_eq!(got, Permits { gov: g, p33: p }, "{outcome:?}");
            // Every derived permit is a valid wire record.
            for m in [
                got.gov.map(Message::GovPermit),
                got.p33.map(Message::P33Permit),
            ]
            .into_iter()
            .flatten()
            {
                assert_eq!(through_wire(m), m);
            }
        }
        // A TTL beyond the wire's u32 saturates rather than wraps.
        let g = permits_out(
            &result(Outcome::Blocked(Block::MissingP33), 0),
            u64::MAX,
            now,
        );
        assert_eq!(g.gov.unwrap().ttl_ms, u32::MAX);
        assert_eq!(g.gov.unwrap().issued_at_ms, now);
    }

    #[test]
    fn results_keep_their_legacy_error() {
        let order = OrderIntent {
            plan: PlanId(1),
            symbol: SymbolId(0),
            side: Side::Buy,
            qty: q("0.046"),
            reduce_only: true,
            t_in_ns: 0,
            t_out_ns: 0,
        };
        let ctx = P33Context::default();
        let mut outcomes = vec![
            Outcome::Executed(order),
            Outcome::NonExecute,
            Outcome::Duplicate,
            Outcome::Blocked(Block::MissingGov),
            Outcome::Blocked(Block::MissingP33),
            Outcome::Blocked(Block::Expired),
        ];
        outcomes.extend(
            GovReason::ALL
                .iter()
                .map(|r| Outcome::Blocked(Block::GovDenied(*r))),
        );
        outcomes.extend(
            P33Reason::ALL
                .iter()
                .map(|r| Outcome::Blocked(Block::P33Denied(*r, ctx))),
        );
        for outcome in outcomes {
            let r = PlanResult {
                plan: PlanId(1),
                symbol: SymbolId(0),
                decision: Decision::Execute,
                outcome,
                wait_ns: 12_345_678,
            };
            let Message::PlanResult(w) = through_wire(Message::PlanResult(result_out(&r))) else {
                panic!()
            };
            assert_eq!(w.executed, r.executed());
            assert_eq!(result_error_text(&w), r.error().map(|e| e.to_string()));
            assert_eq!(w.safe_qty, r.safe_qty().map_or(0, Qty::units));
            assert_eq!(w.wait_us, 12_345);
        }
    }
}
