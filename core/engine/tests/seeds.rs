//! The seeds' story, through the engine: BTCUSDT exchange 0.062 against ledger 0.002 is denied
//! `reconcile_required_qty_mismatch`; the re-delivered plan is a duplicate; the operator syncs
//! the ledger; the next EXECUTE plan becomes a reduce-only order for 75 % of the position.

mod support;

use quantum_core::event::Event;
use quantum_core::p33::P33Reason;
use quantum_core::result::Block;
use quantum_core::{
    Action, Clock, Command, Decision, Engine, EngineConfig, Outcome, Plan, PlanResult, Side,
};
use support::{cmd, intents, q, result};

fn run(e: &mut Engine, plan: Plan) -> PlanResult {
    result(&support::run(e, plan))
}

fn log(e: &Engine, r: &PlanResult) -> String {
    let mut s = String::new();
    r.write_legacy_log(&mut s, e.symbols()).unwrap();
    s
}

#[test]
fn seeds_scenario() {
    let (clock, mock) = Clock::mock();
    let mut e = Engine::new(EngineConfig::default(), clock).unwrap();
    mock.increment(1_000_000);
    let btc = e.symbols().id("BTCUSDT").unwrap();
    let eth = e.symbols().id("ETHUSDT").unwrap();
    support::one_way(&mut e);
    cmd(
        &mut e,
        Command::Position {
            symbol: btc,
            amount: q("0.062"),
            mark: "104000".parse().unwrap(),
        },
    );
    cmd(
        &mut e,
        Command::SetLedger {
            symbol: btc,
            amount: q("0.002"),
        },
    );

    // f1a8d7f48713d5cf: BTCUSDT PARTIAL_75, kill score 0.5390.
    let mut plan = Plan::exit(
        "f1a8d7f48713d5cf".parse().unwrap(),
        btc,
        Decision::Execute,
        Action::Partial75,
    );
    plan.kill_score = "0.5390".parse().unwrap();
    let r = run(&mut e, plan);
    let Outcome::Blocked(Block::P33Denied(P33Reason::ReconcileRequiredQtyMismatch, ctx)) =
        r.outcome
    else {
        panic!("expected the mismatch deny, got {:?}", r.outcome);
    };
    assert_eq!(
        (ctx.exchange, ctx.ledger, ctx.diff(), ctx.tolerance),
        (q("0.062"), q("0.002"), q("0.06"), q("0.001"))
    );
    let text = log(&e, &r);
    assert!(text.contains("[PERMIT_WAIT] BLOCK plan=f1a8d7f48713d5cf reason=p33_denied:reconcile_required_qty_mismatch exchange_amt=0.062 ledger_amt=0.002 diff=0.06 tolerance=0.001"), "{text}");
    assert!(text.contains("BTCUSDT: Result published (executed=False, error=p33_denied:reconcile_required_qty_mismatch)"), "{text}");

    // The legacy apply re-processes the plan every 5 s: a duplicate, never executed.
    mock.increment(5_000_000_000);
    let r = run(&mut e, plan);
    assert!(r.outcome.is_duplicate(), "{:?}", r.outcome);
    assert!(log(&e, &r).contains("BTCUSDT: Plan f1a8d7f48713d5cf already executed (duplicate)"));

    // HOLD plans are published as not executed, without error.
    let hold = Plan::exit(
        "0e7d2f78aa000001".parse().unwrap(),
        eth,
        Decision::Hold,
        Action::None,
    );
    let r = run(&mut e, hold);
    assert_eq!(r.outcome, Outcome::NonExecute);
    assert_eq!(
        log(&e, &r),
        "ETHUSDT: Result published (executed=False, error=None)\n"
    );

    // redis-cli HSET quantum:position:BTCUSDT ledger_amount 0.062
    cmd(
        &mut e,
        Command::SetLedger {
            symbol: btc,
            amount: q("0.062"),
        },
    );
    let next = Plan::exit(
        "f33effa0343becc4".parse().unwrap(),
        btc,
        Decision::Execute,
        Action::Partial75,
    );
    let events = support::run(&mut e, next);
    let r = result(&events);
    let o = intents(&events)[0];
    assert_eq!(r.safe_qty(), Some(o.qty));
    // The events of an executed plan, in order: accepted, both permits, the intent, the result.
    assert!(
        matches!(
            events.as_slice(),
            [
                Event::PlanAccepted { .. },
                Event::GovPermit(g),
                Event::P33Permit(p),
                Event::OrderIntent(_),
                Event::PlanResult(_)
            ] if g.allow && p.allow && p.safe_qty == o.qty && g.ttl_ms == 15_000
        ),
        "{events:?}"
    );
    assert_eq!(
        (o.side, o.qty, o.reduce_only),
        (Side::Sell, q("0.046"), true)
    );
    assert_eq!(o.client_order_id().as_str(), "qpc-f33effa0343becc4");
    let text = log(&e, &r);
    assert!(
        text.starts_with(
            "[PERMIT_WAIT] OK plan=f33effa0343becc4 wait_ms=0 wait_us=0 safe_qty=0.046\n"
        ),
        "{text}"
    );
    assert!(text.contains("BTCUSDT: Result published (executed=True, error=None)"));

    // The order is in flight: the next plan sizes on what is left until the fill arrives.
    let again = Plan::exit(
        "f33effa0343becc5".parse().unwrap(),
        btc,
        Decision::Execute,
        Action::FullClose,
    );
    assert_eq!(run(&mut e, again).safe_qty(), Some(q("0.016")));
}
