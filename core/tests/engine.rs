//! The engine and its runners: waits without blocking other plans, externally issued permits,
//! missing permits, back-pressure, and the same answers from both thread layouts.

use std::collections::HashMap;
use std::time::Duration;

use quantum_core::engine::ExternalPermit;
use quantum_core::governor::GovReason;
use quantum_core::p33::P33Reason;
use quantum_core::permit::P33Context;
use quantum_core::result::Block;
use quantum_core::{
    Action, Clock, Command, Decision, Engine, EngineConfig, Input, Mode, Outcome, Plan, PlanId,
    PlanResult, Qty, Runner, RunnerConfig, Side,
};

fn q(s: &str) -> Qty {
    s.parse().unwrap()
}

fn stocked(cfg: EngineConfig, clock: Clock) -> Engine {
    let mut e = Engine::new(cfg, clock).unwrap();
    for (name, amt) in [
        ("BTCUSDT", "0.062"),
        ("ETHUSDT", "2.5"),
        ("SOLUSDT", "-120"),
    ] {
        let s = e.symbols().id(name).unwrap();
        e.front.command(Command::Position {
            symbol: s,
            amount: q(amt),
            mark: "100".parse().unwrap(),
        });
        e.front.command(Command::SetLedger {
            symbol: s,
            amount: q(amt),
        });
    }
    e
}

#[test]
fn a_plan_waiting_for_a_permit_never_delays_another() {
    // Plans whose permits come from legacy issuers wait in the pending set; an in-core plan
    // behind them is answered at once.
    let (clock, mock) = Clock::mock();
    let mut e = stocked(EngineConfig::default(), clock);
    mock.increment(1_000);
    let eth = e.symbols().id("ETHUSDT").unwrap();
    let mut out = Vec::new();
    let waiting = Plan::exit(PlanId(0xa), eth, Decision::Execute, Action::Partial25);
    // Admit without in-core issuers: the front alone, as the Redis-bridge mode does.
    let t_in = e.front.clock().now_ns();
    let r = e
        .front
        .admit(waiting, t_in, &mut |r| out.push(r))
        .unwrap()
        .unwrap();
    e.front.apply.submit(r, waiting, t_in, &mut |r| out.push(r));
    assert!(out.is_empty());
    assert_eq!(e.front.apply.pending(), 1);

    let other = Plan::exit(PlanId(0xb), eth, Decision::Execute, Action::Partial25);
    e.process_plan(other, &mut |r| out.push(r)).unwrap();
    assert_eq!(out.len(), 1);
    assert!(out[0].executed());

    // The legacy permits arrive 300 ms later; the next poll consumes them.
    mock.increment(300_000_000);
    e.front.external_permit(ExternalPermit::Gov {
        plan: PlanId(0xa),
        allow: true,
        reason: GovReason::Denied,
        ttl_ms: 15_000,
    });
    assert_eq!(e.poll(&mut |r| out.push(r)), 0);
    e.front.external_permit(ExternalPermit::P33 {
        plan: PlanId(0xa),
        allow: true,
        reason: P33Reason::Denied,
        safe_qty: q("0.5"),
        side: Some(Side::Sell),
        context: P33Context::default(),
        ttl_ms: 15_000,
    });
    assert_eq!(e.poll(&mut |r| out.push(r)), 1);
    let r = out[1];
    assert_eq!(r.order().unwrap().qty, q("0.5"));
    assert_eq!(r.wait_ns, 300_000_000);
    // A permit for a plan that is not waiting is refused and counted.
    assert!(e
        .front
        .external_permit(ExternalPermit::Gov {
            plan: PlanId(0xa),
            allow: true,
            reason: GovReason::Denied,
            ttl_ms: 1
        })
        .is_none());
    assert_eq!(e.front.rejected_inputs, 1);
}

#[test]
fn missing_permits_block_at_the_deadline() {
    let (clock, mock) = Clock::mock();
    let mut e = stocked(
        EngineConfig {
            apply_wait_ms: 1200,
            ..EngineConfig::default()
        },
        clock,
    );
    let eth = e.symbols().id("ETHUSDT").unwrap();
    let mut out: Vec<PlanResult> = Vec::new();
    for (id, gov) in [(1u64, false), (2, true)] {
        let p = Plan::exit(PlanId(id), eth, Decision::Execute, Action::Partial50);
        let t = e.front.clock().now_ns();
        let r = e.front.admit(p, t, &mut |r| out.push(r)).unwrap().unwrap();
        e.front.apply.submit(r, p, t, &mut |r| out.push(r));
        if gov {
            let g = ExternalPermit::Gov {
                plan: p.id,
                allow: true,
                reason: GovReason::Denied,
                ttl_ms: 15_000,
            };
            assert!(e.front.external_permit(g).is_some());
        }
    }
    mock.increment(1_199_999_999);
    assert_eq!(e.poll(&mut |r| out.push(r)), 0);
    mock.increment(1);
    assert_eq!(e.poll(&mut |r| out.push(r)), 2);
    let by_id: HashMap<u64, Outcome> = out.iter().map(|r| (r.plan.0, r.outcome)).collect();
    assert_eq!(by_id[&1], Outcome::Blocked(Block::MissingGov));
    assert_eq!(by_id[&2], Outcome::Blocked(Block::MissingP33));
}

#[test]
fn a_full_table_hands_the_plan_back() {
    let mut e = stocked(
        EngineConfig {
            table_capacity: 1,
            ..EngineConfig::default()
        },
        Clock::new(),
    );
    let eth = e.symbols().id("ETHUSDT").unwrap();
    let p1 = Plan::exit(PlanId(1), eth, Decision::Execute, Action::Partial50);
    let t = e.front.clock().now_ns();
    let r = e.front.admit(p1, t, &mut |_| {}).unwrap().unwrap();
    e.front.apply.submit(r, p1, t, &mut |_| {});
    let p2 = Plan::exit(PlanId(2), eth, Decision::Execute, Action::Partial50);
    assert_eq!(e.process_plan(p2, &mut |_| {}), Err(p2));
    // Not remembered as seen: offered again later, it is processed, not a duplicate.
    e.front.external_permit(ExternalPermit::Gov {
        plan: PlanId(1),
        allow: false,
        reason: GovReason::KillSwitch,
        ttl_ms: 1,
    });
    let mut out = Vec::new();
    e.poll(&mut |r| out.push(r));
    assert_eq!(
        out[0].outcome,
        Outcome::Blocked(Block::GovDenied(GovReason::KillSwitch))
    );
    e.process_plan(p2, &mut |r| out.push(r)).unwrap();
    assert!(out[1].executed());
}

/// Feeds the same plans through a runner; returns each plan's result and the total executed.
fn through_runner(mode: Mode, n: u64) -> (HashMap<u64, PlanResult>, Qty) {
    let e = stocked(EngineConfig::default(), Clock::new());
    let sol = e.symbols().id("SOLUSDT").unwrap();
    let runner = Runner::start(
        e,
        RunnerConfig {
            mode,
            pin: false,
            input_capacity: 64,
            ..RunnerConfig::default()
        },
    );
    runner.register_caller();
    let mut results = HashMap::new();
    let take = |r: PlanResult, results: &mut HashMap<u64, PlanResult>| {
        assert!(
            results.insert(r.plan.0, r).is_none(),
            "two results for one plan"
        );
    };
    for i in 0..n {
        let decision = if i % 3 == 0 {
            Decision::Hold
        } else {
            Decision::Execute
        };
        let mut input = Input::Plan(Plan::exit(PlanId(i + 1), sol, decision, Action::Partial25));
        loop {
            match runner.try_send(input) {
                Ok(()) => break,
                Err(back) => {
                    input = back;
                    runner.wait_for_room(Duration::from_millis(5));
                }
            }
            while let Some(r) = runner.try_recv() {
                take(r, &mut results);
            }
        }
    }
    runner.shutdown(&mut |r| take(r, &mut results));
    let executed = results
        .values()
        .filter_map(|r| r.order())
        .fold(Qty::ZERO, |a, o| a.checked_add(o.qty).unwrap());
    (results, executed)
}

#[test]
fn both_runner_modes_answer_every_plan_and_never_over_close() {
    for mode in [Mode::Single, Mode::Pipelined] {
        let (results, executed) = through_runner(mode, 3_000);
        assert_eq!(
            results.len(),
            3_000,
            "{mode:?}: every plan has exactly one result"
        );
        // No fills come back, so every allowed quantity stays reserved: the orders together
        // never exceed the 120 SOL short, however the threads interleave.
        assert!(executed <= q("120"), "{mode:?}: executed {executed:?}");
        assert!(executed >= q("100"), "{mode:?}: executed {executed:?}");
        let blocked = results
            .values()
            .filter(|r| matches!(r.outcome, Outcome::Blocked(_)))
            .count();
        let orders = results.values().filter(|r| r.executed()).count();
        assert_eq!(
            results
                .values()
                .filter(|r| r.outcome == Outcome::NonExecute)
                .count(),
            1_000
        );
        assert_eq!(blocked + orders, 2_000, "{mode:?}");
        for r in results.values().filter_map(|r| r.order()) {
            assert_eq!(r.side, Side::Buy, "a short closes with buys");
        }
    }
}
