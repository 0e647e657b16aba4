//! Hedge-mode accounts in the engine: a hedge-mode symbol is two legs (symbol ids), each with
//! its own exchange position, ledger, in-flight quantity and P3.3 verdict; the account's
//! position mode and a symbol's contract status gate every order.

mod support;

use quantum_core::engine::ExternalPermit;
use quantum_core::event::Event;
use quantum_core::p33::P33Reason;
use quantum_core::permit::P33Context;
use quantum_core::{
    Action, Block, Clock, Command, Decision, Engine, EngineConfig, Input, Outcome, PermitSource,
    Plan, PlanId, PositionSide, Side, SymbolId, SymbolSpec,
};
use quantum_ipc::codes::{ContractStatus, OrderStatus};
use support::{cmd, intents, order, p, q, report, result, RING};

/// BTCUSDT in hedge mode (its LONG and SHORT legs), ETHUSDT one-way.
fn config() -> EngineConfig {
    let d = SymbolSpec::defaults();
    EngineConfig {
        symbols: vec![
            d[0].on_side(PositionSide::Long),
            d[0].on_side(PositionSide::Short),
            d[1].clone(),
        ],
        ..EngineConfig::default()
    }
}

struct Legs {
    long: SymbolId,
    short: SymbolId,
    eth: SymbolId,
}

fn legs(e: &Engine) -> Legs {
    let s = e.symbols();
    Legs {
        long: s.id("BTCUSDT:LONG").unwrap(),
        short: s.id("BTCUSDT:SHORT").unwrap(),
        eth: s.id("ETHUSDT").unwrap(),
    }
}

/// Sets a leg's exchange position and ledger.
fn stock(e: &mut Engine, s: SymbolId, exchange: &str, ledger: &str) {
    cmd(
        e,
        Command::Position {
            symbol: s,
            amount: q(exchange),
            mark: p("100000"),
        },
    );
    cmd(
        e,
        Command::SetLedger {
            symbol: s,
            amount: q(ledger),
        },
    );
}

/// A hedge-mode account holding 0.2 long and 0.1 short BTCUSDT, and 2.5 ETHUSDT.
fn hedged(cfg: EngineConfig) -> (Engine, Legs) {
    let (clock, _) = Clock::mock();
    let mut e = Engine::new(cfg, clock).unwrap();
    let l = legs(&e);
    cmd(&mut e, Command::AccountMode { hedge: true });
    stock(&mut e, l.long, "0.2", "0.2");
    stock(&mut e, l.short, "-0.1", "-0.1");
    stock(&mut e, l.eth, "2.5", "2.5");
    (e, l)
}

fn plan(id: u64, symbol: SymbolId, side: Option<PositionSide>, action: Action) -> Plan {
    Plan {
        position_side: side,
        ..Plan::exit(PlanId(id), symbol, Decision::Execute, action)
    }
}

/// A legacy governor's and a legacy P3.3's allows for plan `id` (`qty` on `side`), then a
/// poll: apply consumes them or says why not.
fn outside_permits(e: &mut Engine, id: u64, qty: &str, side: Side, ev: &mut Vec<Event>) {
    for permit in [
        ExternalPermit::Gov {
            plan: PlanId(id),
            allow: true,
            reason: None,
            ttl_ms: 10_000,
        },
        ExternalPermit::P33 {
            plan: PlanId(id),
            allow: true,
            reason: None,
            safe_qty: q(qty),
            side: Some(side),
            context: P33Context::default(),
            ttl_ms: 10_000,
        },
    ] {
        e.handle(Input::Permit(permit), RING, &mut |x| ev.push(x))
            .unwrap();
    }
    e.poll(&mut |x| ev.push(x));
}

fn run(e: &mut Engine, p: Plan) -> (Outcome, Vec<Event>) {
    let ev = support::run(e, p);
    (result(&ev).outcome, ev)
}

fn denied(o: Outcome) -> Option<P33Reason> {
    match o {
        Outcome::Blocked(Block::P33Denied(r, _)) => Some(r),
        _ => None,
    }
}

#[test]
fn long_and_short_of_one_symbol_close_by_separate_plans() {
    let (mut e, l) = hedged(config());
    let (o, ev) = run(
        &mut e,
        plan(1, l.long, Some(PositionSide::Long), Action::FullClose),
    );
    assert!(matches!(o, Outcome::Executed { .. }), "{o:?}");
    let long = intents(&ev)[0];
    assert_eq!(
        (long.symbol, long.side, long.qty, long.reduce_only),
        (l.long, Side::Sell, q("0.2"), true)
    );
    let (o, ev) = run(
        &mut e,
        plan(2, l.short, Some(PositionSide::Short), Action::Partial50),
    );
    assert!(matches!(o, Outcome::Executed { .. }), "{o:?}");
    let short = intents(&ev)[0];
    assert_eq!(
        (short.symbol, short.side, short.qty),
        (l.short, Side::Buy, q("0.05"))
    );
    // Each fill moves its own leg's ledger toward zero; the other leg is untouched.
    order(&mut e, report(&long, OrderStatus::Filled, "0.2"));
    order(&mut e, report(&short, OrderStatus::Filled, "0.05"));
    assert_eq!(support::ledger(&e, "BTCUSDT:LONG"), q("0"));
    assert_eq!(support::ledger(&e, "BTCUSDT:SHORT"), q("-0.05"));
    // The long leg is closed in the ledger: nothing is left to close there.
    stock(&mut e, l.long, "0", "0");
    let (o, _) = run(
        &mut e,
        plan(3, l.long, Some(PositionSide::Long), Action::FullClose),
    );
    assert_eq!(denied(o), Some(P33Reason::NoPosition));
}

#[test]
fn p33_compares_each_side_on_its_own() {
    let (mut e, l) = hedged(config());
    // The long leg's ledger drifts from the exchange: only the long side is denied.
    cmd(
        &mut e,
        Command::SetLedger {
            symbol: l.long,
            amount: q("0.15"),
        },
    );
    let (o, ev) = run(
        &mut e,
        plan(1, l.long, Some(PositionSide::Long), Action::FullClose),
    );
    assert_eq!(denied(o), Some(P33Reason::ReconcileRequiredQtyMismatch));
    assert!(intents(&ev).is_empty());
    let Outcome::Blocked(Block::P33Denied(_, ctx)) = o else {
        unreachable!()
    };
    assert_eq!((ctx.exchange, ctx.ledger), (q("0.2"), q("0.15")));
    let (o, ev) = run(
        &mut e,
        plan(2, l.short, Some(PositionSide::Short), Action::FullClose),
    );
    assert!(matches!(o, Outcome::Executed { .. }), "{o:?}");
    assert_eq!(intents(&ev)[0].qty, q("0.1"));
}

#[test]
fn a_hedge_plan_must_name_its_side() {
    let (mut e, l) = hedged(config());
    let cases = [
        (l.long, None, P33Reason::PositionSideRequired),
        (
            l.long,
            Some(PositionSide::Both),
            P33Reason::PositionSideMismatch,
        ),
        (
            l.short,
            Some(PositionSide::Long),
            P33Reason::PositionSideMismatch,
        ),
        // In a hedge-mode account a one-way symbol is refused for its mode first.
        (
            l.eth,
            Some(PositionSide::Long),
            P33Reason::PositionModeMismatch,
        ),
    ];
    for (i, (s, side, want)) in cases.into_iter().enumerate() {
        let (o, ev) = run(&mut e, plan(10 + i as u64, s, side, Action::FullClose));
        assert_eq!(denied(o), Some(want), "{s:?} {side:?}");
        assert!(intents(&ev).is_empty());
    }
}

#[test]
fn the_account_mode_is_known_before_anything_trades_and_must_match() {
    let (clock, _) = Clock::mock();
    let mut e = Engine::new(config(), clock).unwrap();
    let l = legs(&e);
    stock(&mut e, l.long, "0.2", "0.2");
    stock(&mut e, l.eth, "2.5", "2.5");
    // Not told yet: nothing trades, whatever its mode.
    for (id, s, side) in [(1, l.long, Some(PositionSide::Long)), (2, l.eth, None)] {
        let (o, _) = run(&mut e, plan(id, s, side, Action::FullClose));
        assert_eq!(denied(o), Some(P33Reason::PositionModeUnknown));
    }
    // One-way: the one-way symbol trades, the hedge-mode legs are refused.
    let ev = cmd(&mut e, Command::AccountMode { hedge: false });
    assert!(matches!(ev[..], [Event::AccountMode { hedge: false, .. }]));
    let (o, _) = run(
        &mut e,
        plan(3, l.long, Some(PositionSide::Long), Action::FullClose),
    );
    assert_eq!(denied(o), Some(P33Reason::PositionModeMismatch));
    let (o, _) = run(&mut e, plan(4, l.eth, None, Action::Partial25));
    assert!(matches!(o, Outcome::Executed { .. }), "{o:?}");
    // Hedge: the other way round.
    cmd(&mut e, Command::AccountMode { hedge: true });
    let (o, _) = run(&mut e, plan(5, l.eth, None, Action::Partial25));
    assert_eq!(denied(o), Some(P33Reason::PositionModeMismatch));
    let (o, _) = run(
        &mut e,
        plan(6, l.long, Some(PositionSide::Long), Action::FullClose),
    );
    assert!(matches!(o, Outcome::Executed { .. }), "{o:?}");
}

#[test]
fn a_symbol_the_exchange_does_not_trade_is_denied_until_it_trades_again() {
    let (mut e, l) = hedged(config());
    let long = Some(PositionSide::Long);
    for (i, status) in [ContractStatus::Settling, ContractStatus::Close]
        .into_iter()
        .enumerate()
    {
        let ev = cmd(
            &mut e,
            Command::SymbolStatus {
                symbol: l.long,
                status,
            },
        );
        assert!(matches!(ev[..], [Event::SymbolStatus { status: s, .. }] if s == status));
        let (o, ev) = run(&mut e, plan(1 + i as u64, l.long, long, Action::FullClose));
        assert_eq!(denied(o), Some(P33Reason::SymbolNotTrading));
        assert!(intents(&ev).is_empty());
    }
    // Other legs trade meanwhile.
    let (o, _) = run(
        &mut e,
        plan(20, l.short, Some(PositionSide::Short), Action::FullClose),
    );
    assert!(matches!(o, Outcome::Executed { .. }), "{o:?}");
    cmd(
        &mut e,
        Command::SymbolStatus {
            symbol: l.long,
            status: ContractStatus::Trading,
        },
    );
    let (o, _) = run(&mut e, plan(21, l.long, long, Action::FullClose));
    assert!(matches!(o, Outcome::Executed { .. }), "{o:?}");
}

/// A legacy P3.3 knows nothing of sides: on a hedge leg, where the exchange takes no
/// `reduceOnly`, apply refuses at consume an order on the wrong side or larger than what the
/// leg holds beyond the orders already in flight.
#[test]
fn outside_permits_never_order_more_than_the_leg_holds() {
    let cfg = EngineConfig {
        permits: PermitSource::External,
        ..config()
    };
    let (mut e, l) = hedged(cfg);
    let permit = |e: &mut Engine, id: u64, s: SymbolId, qty: &str, side: Side| {
        let p = plan(id, s, Some(PositionSide::Long), Action::FullClose);
        let mut ev = Vec::new();
        e.handle(Input::Plan(p), RING, &mut |x| ev.push(x)).unwrap();
        outside_permits(e, id, qty, side, &mut ev);
        (result(&ev).outcome, intents(&ev))
    };
    let (o, i) = permit(&mut e, 1, l.long, "0.3", Side::Sell);
    assert_eq!(denied(o), Some(P33Reason::NoPosition), "above the leg");
    assert!(i.is_empty());
    let (o, i) = permit(&mut e, 2, l.long, "0.1", Side::Buy);
    assert_eq!(
        denied(o),
        Some(P33Reason::PositionSideMismatch),
        "wrong side"
    );
    assert!(i.is_empty());
    let (o, i) = permit(&mut e, 3, l.long, "0.15", Side::Sell);
    assert!(matches!(o, Outcome::Executed { .. }), "{o:?}");
    assert_eq!(i[0].qty, q("0.15"));
    // 0.15 is in flight: only 0.05 is left on the leg.
    let (o, _) = permit(&mut e, 4, l.long, "0.1", Side::Sell);
    assert_eq!(denied(o), Some(P33Reason::NoPosition), "in flight counts");
    let (o, _) = permit(&mut e, 5, l.long, "0.05", Side::Sell);
    assert!(matches!(o, Outcome::Executed { .. }), "{o:?}");
}

/// A plan waiting for its permits is denied at consume when the account changes under it.
#[test]
fn a_status_change_while_a_plan_waits_stops_its_order() {
    let cfg = EngineConfig {
        permits: PermitSource::External,
        ..config()
    };
    let (mut e, l) = hedged(cfg);
    let mut ev = Vec::new();
    let p = plan(1, l.short, Some(PositionSide::Short), Action::FullClose);
    e.handle(Input::Plan(p), RING, &mut |x| ev.push(x)).unwrap();
    e.handle(
        Input::Command(Command::SymbolStatus {
            symbol: l.short,
            status: ContractStatus::Delivering,
        }),
        RING,
        &mut |x| ev.push(x),
    )
    .unwrap();
    outside_permits(&mut e, 1, "0.1", Side::Buy, &mut ev);
    assert_eq!(
        denied(result(&ev).outcome),
        Some(P33Reason::SymbolNotTrading)
    );
    assert!(intents(&ev).is_empty());
}

/// The wire carries what hedge mode added: a plan's named side, the account's mode and a
/// symbol's status, as inputs and as events.
#[test]
fn hedge_records_cross_the_wire() {
    use quantum_core::wire::{input, input_out, plan_in, plan_out};
    for side in [
        None,
        Some(PositionSide::Both),
        Some(PositionSide::Long),
        Some(PositionSide::Short),
    ] {
        let mut pl = plan(7, SymbolId(1), side, Action::Partial50);
        for reduce_only in [true, false] {
            pl.reduce_only = reduce_only;
            assert_eq!(plan_in(&plan_out(&pl)), pl);
        }
    }
    for c in [
        Command::AccountMode { hedge: true },
        Command::AccountMode { hedge: false },
        Command::SymbolStatus {
            symbol: SymbolId(2),
            status: ContractStatus::PreSettle,
        },
    ] {
        let m = input_out(&Input::Command(c)).unwrap();
        let m =
            quantum_ipc::wire::Message::decode(&m.encode(), &quantum_ipc::wire::Limits::default())
                .unwrap();
        assert_eq!(input(&m, 0, 0).unwrap(), Input::Command(c));
    }
    for ev in [
        Event::AccountMode {
            hedge: true,
            at_ms: 5,
        },
        Event::SymbolStatus {
            symbol: SymbolId(1),
            status: ContractStatus::Settling,
            at_ms: 6,
        },
    ] {
        assert_eq!(Event::from_message(&ev.to_message()).unwrap(), ev);
    }
}

/// With a legacy P3.3 (which knows nothing of the account) apply's consume is the only check:
/// an account not told yet, or told the other mode, orders nothing.
#[test]
fn outside_permits_in_an_account_not_told_or_of_the_other_mode_order_nothing() {
    let cfg = EngineConfig {
        permits: PermitSource::External,
        ..config()
    };
    let (clock, _) = Clock::mock();
    let mut e = Engine::new(cfg, clock).unwrap();
    let l = legs(&e);
    stock(&mut e, l.long, "0.2", "0.2");
    stock(&mut e, l.eth, "2.5", "2.5");
    let consume = |e: &mut Engine, id: u64, s: SymbolId, side_named, side| {
        let mut ev = Vec::new();
        let p = plan(id, s, side_named, Action::FullClose);
        e.handle(Input::Plan(p), RING, &mut |x| ev.push(x)).unwrap();
        outside_permits(e, id, "0.1", side, &mut ev);
        assert!(intents(&ev).is_empty(), "{ev:?}");
        denied(result(&ev).outcome)
    };
    let long = Some(PositionSide::Long);
    assert_eq!(
        consume(&mut e, 1, l.long, long, Side::Sell),
        Some(P33Reason::PositionModeUnknown)
    );
    assert_eq!(
        consume(&mut e, 2, l.eth, None, Side::Sell),
        Some(P33Reason::PositionModeUnknown)
    );
    cmd(&mut e, Command::AccountMode { hedge: false });
    assert_eq!(
        consume(&mut e, 3, l.long, long, Side::Sell),
        Some(P33Reason::PositionModeMismatch)
    );
    cmd(&mut e, Command::AccountMode { hedge: true });
    assert_eq!(
        consume(&mut e, 4, l.eth, None, Side::Sell),
        Some(P33Reason::PositionModeMismatch)
    );
    assert_eq!(
        consume(&mut e, 5, l.long, None, Side::Sell),
        Some(P33Reason::PositionSideRequired)
    );
}
