//! The engine and its runners: waits without blocking other plans, externally issued permits,
//! missing permits, back-pressure, and the same answers from both thread layouts.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use quantum_core::engine::ExternalPermit;
use quantum_core::event::{Event, Switch};
use quantum_core::governor::GovReason;
use quantum_core::permit::P33Context;
use quantum_core::result::Block;
use quantum_core::{
    Action, Clock, Command, Decision, Engine, EngineConfig, Input, Mode, OrderIntent, Outcome,
    PermitSource, Plan, PlanId, PlanResult, Price, Qty, Runner, RunnerConfig, Side, StageMarks,
};
use quantum_ipc::codes::RefuseReason;
use support::{intents, q, results, stocked, sym, RING};

fn external() -> EngineConfig {
    EngineConfig {
        permits: PermitSource::External,
        ..EngineConfig::default()
    }
}

fn permit(e: &mut Engine, p: ExternalPermit) -> Vec<Event> {
    let mut out = Vec::new();
    e.handle(Input::Permit(p), RING, &mut |ev| out.push(ev))
        .unwrap();
    out
}

fn gov_ok(plan: u64) -> ExternalPermit {
    ExternalPermit::Gov {
        plan: PlanId(plan),
        allow: true,
        reason: None,
        ttl_ms: 15_000,
    }
}

fn p33_ok(plan: u64, qty: &str) -> ExternalPermit {
    ExternalPermit::P33 {
        plan: PlanId(plan),
        allow: true,
        reason: None,
        safe_qty: q(qty),
        side: Some(Side::Sell),
        context: P33Context::default(),
        ttl_ms: 15_000,
    }
}

#[test]
fn a_plan_waiting_for_a_permit_never_delays_another() {
    // Legacy issuers' permits: a plan whose permits have not come waits in the pending set; a
    // plan behind it whose permits are there is answered at once.
    let (clock, mock) = Clock::mock();
    let mut e = stocked(external(), clock);
    mock.increment(1_000);
    let eth = sym(&e, "ETHUSDT");
    let mut out = Vec::new();
    let waiting = Plan::exit(PlanId(0xa), eth, Decision::Execute, Action::Partial25);
    e.process_plan(waiting, &mut |ev| out.push(ev)).unwrap();
    assert!(matches!(out.as_slice(), [Event::PlanAccepted { .. }]));
    assert_eq!(e.front.apply.pending(), 1);

    let other = Plan::exit(PlanId(0xb), eth, Decision::Execute, Action::Partial25);
    e.process_plan(other, &mut |ev| out.push(ev)).unwrap();
    out.extend(permit(&mut e, gov_ok(0xb)));
    out.extend(permit(&mut e, p33_ok(0xb, "0.5")));
    e.poll(&mut |ev| out.push(ev));
    assert_eq!(results(&out).len(), 1);
    assert!(results(&out)[0].executed());

    // The first plan's permits arrive 300 ms later; the next poll consumes them.
    mock.increment(300_000_000);
    out.extend(permit(&mut e, gov_ok(0xa)));
    assert_eq!(e.poll(&mut |ev| out.push(ev)), 0);
    out.extend(permit(&mut e, p33_ok(0xa, "0.5")));
    assert_eq!(e.poll(&mut |ev| out.push(ev)), 1);
    let r = results(&out)[1];
    assert_eq!((r.plan, r.safe_qty()), (PlanId(0xa), Some(q("0.5"))));
    assert_eq!(r.wait_ns, 300_000_000);
    // A permit for a plan that is not waiting is refused, with its reason, as an event.
    let refused = permit(&mut e, gov_ok(0xa));
    assert!(
        matches!(refused.as_slice(), [Event::Refused(r)] if r.reason == RefuseReason::NotWaiting && r.ring == RING),
        "{refused:?}"
    );
}

#[test]
fn outside_permits_are_refused_while_the_core_issues_its_own() {
    let mut e = stocked(EngineConfig::default(), Clock::new());
    let refused = permit(&mut e, gov_ok(1));
    assert!(
        matches!(refused.as_slice(), [Event::Refused(r)] if r.reason == RefuseReason::PermitSource)
    );
}

#[test]
fn missing_permits_block_at_the_deadline() {
    let (clock, mock) = Clock::mock();
    let mut e = stocked(
        EngineConfig {
            apply_wait_ms: 1200,
            ..external()
        },
        clock,
    );
    let eth = sym(&e, "ETHUSDT");
    let mut out = Vec::new();
    for (id, gov) in [(1u64, false), (2, true)] {
        let p = Plan::exit(PlanId(id), eth, Decision::Execute, Action::Partial50);
        e.process_plan(p, &mut |ev| out.push(ev)).unwrap();
        if gov {
            out.extend(permit(&mut e, gov_ok(id)));
        }
    }
    mock.increment(1_199_999_999);
    assert_eq!(e.poll(&mut |ev| out.push(ev)), 0);
    mock.increment(1);
    assert_eq!(e.poll(&mut |ev| out.push(ev)), 2);
    let by_id: HashMap<u64, Outcome> = results(&out)
        .iter()
        .map(|r| (r.plan.0, r.outcome))
        .collect();
    assert_eq!(by_id[&1], Outcome::Blocked(Block::MissingGov));
    assert_eq!(by_id[&2], Outcome::Blocked(Block::MissingP33));
    // The governor's permit of plan 2 is published with its result, as the table held it.
    assert!(out
        .iter()
        .any(|ev| matches!(ev, Event::GovPermit(g) if g.plan == PlanId(2) && g.allow)));
}

#[test]
fn a_full_table_hands_the_plan_back() {
    let mut e = stocked(
        EngineConfig {
            table_capacity: 1,
            dedupe_capacity: 16,
            ..external()
        },
        Clock::new(),
    );
    let eth = sym(&e, "ETHUSDT");
    let p1 = Plan::exit(PlanId(1), eth, Decision::Execute, Action::Partial50);
    e.process_plan(p1, &mut |_| {}).unwrap();
    let p2 = Plan::exit(PlanId(2), eth, Decision::Execute, Action::Partial50);
    assert_eq!(e.process_plan(p2, &mut |_| {}), Err(p2));
    // Not remembered as seen: offered again later, it is processed, not a duplicate.
    permit(
        &mut e,
        ExternalPermit::Gov {
            plan: PlanId(1),
            allow: false,
            reason: Some(GovReason::KillSwitch),
            ttl_ms: 1,
        },
    );
    let mut out = Vec::new();
    e.poll(&mut |ev| out.push(ev));
    assert_eq!(
        results(&out)[0].outcome,
        Outcome::Blocked(Block::GovDenied(GovReason::KillSwitch))
    );
    e.process_plan(p2, &mut |ev| out.push(ev)).unwrap();
    assert!(matches!(out.last(), Some(Event::PlanAccepted { .. })));
}

/// Feeds the same plans through a runner; returns each plan's result and the total executed.
fn through_runner(mode: Mode, n: u64) -> (HashMap<u64, PlanResult>, Vec<OrderIntent>) {
    let e = stocked(EngineConfig::default(), Clock::new());
    let sol = sym(&e, "SOLUSDT");
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
    let mut made = Vec::new();
    let mut take = |ev: Event, results: &mut HashMap<u64, PlanResult>| match ev {
        Event::PlanResult(r) => {
            assert!(
                results.insert(r.plan.0, r).is_none(),
                "two results for one plan"
            );
        }
        Event::OrderIntent(o) => {
            assert_eq!(o.side, Side::Buy, "a short closes with buys");
            made.push(o);
        }
        _ => {}
    };
    for i in 0..n {
        let decision = if i % 3 == 0 {
            Decision::Hold
        } else {
            Decision::Execute
        };
        let mut input = Input::Plan(Plan::exit(PlanId(i + 1), sol, decision, Action::Partial25));
        loop {
            match runner.try_send(input, RING) {
                Ok(()) => break,
                Err(back) => {
                    input = back;
                    runner.wait_for_room(Duration::from_millis(5));
                }
            }
            while let Some(ev) = runner.try_recv() {
                take(ev, &mut results);
            }
        }
    }
    runner.shutdown(&mut |ev| take(ev, &mut results));
    (results, made)
}

#[test]
fn both_runner_modes_answer_every_plan_and_never_over_close() {
    for mode in [Mode::Single, Mode::Pipelined, Mode::Inline] {
        let (results, made) = through_runner(mode, 3_000);
        let executed = made
            .iter()
            .try_fold(Qty::ZERO, |sum, o| sum.checked_add(o.qty))
            .unwrap();
        assert_eq!(
            results.len(),
            3_000,
            "{mode:?}: every plan has exactly one result"
        );
        // No fills come back, so every allowed quantity stays in flight: the orders together
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
        // Live latency samples: some intents carry the moments inside the chain, in order and
        // inside the chain's own span; the others carry none.
        let sampled: Vec<_> = made.iter().filter(|o| o.marks.is_sampled()).collect();
        assert!(
            !sampled.is_empty() && sampled.len() * 4 <= made.len(),
            "{mode:?}: {} of {} sampled",
            sampled.len(),
            made.len()
        );
        for o in &sampled {
            let m = o.marks;
            let span = o.t_out_ns.saturating_sub(o.t_in_ns).max(1);
            assert!(m.gov_ns >= 1 && m.p33_ns >= 1, "{mode:?}: {m:?}");
            assert!(m.gov_ns.max(m.p33_ns) <= m.ready_ns, "{mode:?}: {m:?}");
            assert!(
                u64::from(m.ready_ns) <= span,
                "{mode:?}: {m:?} in {span} ns"
            );
            if mode == Mode::Single {
                assert!(
                    m.gov_ns <= m.p33_ns,
                    "single: P3.3 judges after the governor"
                );
            }
        }
        assert!(made
            .iter()
            .filter(|o| !o.marks.is_sampled())
            .all(|o| o.marks == StageMarks::default()));
    }
}

#[test]
fn intents_carry_what_the_adapter_needs() {
    let (clock, mock) = Clock::mock();
    let mut e = stocked(EngineConfig::default(), clock);
    mock.increment(5_000_000);
    let btc = sym(&e, "BTCUSDT");
    let ev = support::run(
        &mut e,
        Plan::exit(PlanId(9), btc, Decision::Execute, Action::Partial75),
    );
    let i = intents(&ev)[0];
    assert_eq!(
        (i.side, i.qty, i.reduce_only),
        (Side::Sell, q("0.046"), true)
    );
    assert_eq!(i.at_ms, quantum_core::clock::MOCK_WALL_ORIGIN_MS + 5);
    assert!(!i.lookup_first);
}

/// A refused input is reported with the symbol and plan it named, whatever its kind; a switch
/// for a symbol the engine does not trade is refused and one for a traded symbol is not.
#[test]
fn refusals_name_what_they_refused() {
    let production = EngineConfig {
        governor: quantum_core::governor::GovernorConfig {
            mode: quantum_core::governor::GovMode::Production,
            ..Default::default()
        },
        ..EngineConfig::default()
    };
    let mut e = stocked(production, Clock::new());
    let nine = quantum_core::SymbolId(9);
    let refused = |events: &[Event]| match events {
        [Event::Refused(r)] => Some((r.symbol, r.plan, r.reason)),
        _ => None,
    };
    let filters = quantum_core::book::Filters::default();
    for c in [
        Command::SetLedger {
            symbol: nine,
            amount: q("1"),
        },
        Command::Position {
            symbol: nine,
            amount: q("1"),
            mark: Price::ZERO,
        },
        Command::SetFilters {
            symbol: nine,
            filters,
        },
        Command::Switch(Switch::SymbolKillSwitch(nine, true)),
    ] {
        let got = support::cmd(&mut e, c);
        assert_eq!(
            refused(&got),
            Some((
                if matches!(c, Command::Switch(_)) {
                    quantum_core::SymbolId(0)
                } else {
                    nine
                },
                PlanId(0),
                RefuseReason::UnknownSymbol
            )),
            "{c:?}: {got:?}"
        );
    }
    // A traded symbol's switch is taken (no refusal) and holds: its exits are denied.
    let btc = sym(&e, "BTCUSDT");
    let got = support::cmd(&mut e, Command::Switch(Switch::SymbolKillSwitch(btc, true)));
    assert!(matches!(got.as_slice(), [Event::Switch(_)]), "{got:?}");
    let ev = support::run(
        &mut e,
        Plan::exit(PlanId(5), btc, Decision::Execute, Action::Partial25),
    );
    assert_eq!(
        results(&ev)[0].outcome,
        Outcome::Blocked(Block::GovDenied(GovReason::SymbolKillSwitch))
    );
    // A permit names its plan.
    let mut x = stocked(external(), Clock::new());
    let got = permit(&mut x, gov_ok(0x77));
    assert_eq!(
        refused(&got),
        Some((
            quantum_core::SymbolId(0),
            PlanId(0x77),
            RefuseReason::NotWaiting
        ))
    );
}

/// An outside P3.3 permit that allows must say what to send: without a side, or with a zero
/// quantity, it denies.
#[test]
fn an_outside_p33_allow_must_name_a_side_and_a_quantity() {
    let mut e = stocked(external(), Clock::new());
    let eth = sym(&e, "ETHUSDT");
    let mut out = Vec::new();
    let no_side = ExternalPermit::P33 {
        plan: PlanId(1),
        allow: true,
        reason: None,
        safe_qty: q("0.5"),
        side: None,
        context: P33Context::default(),
        ttl_ms: 15_000,
    };
    for (id, p33) in [(1u64, no_side), (2, p33_ok(2, "0")), (3, p33_ok(3, "0.5"))] {
        let plan = Plan::exit(PlanId(id), eth, Decision::Execute, Action::Partial25);
        e.process_plan(plan, &mut |ev| out.push(ev)).unwrap();
        out.extend(permit(&mut e, gov_ok(id)));
        out.extend(permit(&mut e, p33));
        e.poll(&mut |ev| out.push(ev));
    }
    let by_id: HashMap<u64, Outcome> = results(&out)
        .iter()
        .map(|r| (r.plan.0, r.outcome))
        .collect();
    for id in [1, 2] {
        assert!(
            matches!(
                by_id[&id],
                Outcome::Blocked(Block::P33Denied(quantum_core::p33::P33Reason::Denied, _))
            ),
            "plan {id}: {:?}",
            by_id[&id]
        );
    }
    assert!(
        matches!(by_id[&3], Outcome::Executed { .. }),
        "{:?}",
        by_id[&3]
    );
}

/// Expired ids are forgotten a few per plan after each plan, not all at once on a plan's path;
/// an id past its horizon counts as new even before it is forgotten.
#[test]
fn expired_ids_are_tidied_as_plans_go() {
    let (clock, mock) = Clock::mock();
    let mut e = stocked(
        EngineConfig {
            apply_wait_ms: 100,
            dedupe_horizon_ms: 1_000,
            max_plan_age_ms: 1_000,
            ..EngineConfig::default()
        },
        clock,
    );
    let sol = sym(&e, "SOLUSDT");
    let plan = |id, d| Plan::exit(PlanId(id), sol, d, Action::Partial25);
    for id in 1..=5 {
        support::run(&mut e, plan(id, Decision::Execute));
    }
    assert_eq!(e.front.ingest.dedupe().len(), 5);
    mock.increment(1_000_000_000);
    // Each plan after the horizon forgets two expired ids once it is answered.
    support::run(&mut e, plan(100, Decision::Hold));
    assert_eq!(e.front.ingest.dedupe().len(), 3);
    // Plan 5 is past its horizon and still held: offered again, it is a new plan.
    let ev = support::run(&mut e, plan(5, Decision::Execute));
    assert!(
        !results(&ev)[0].outcome.is_duplicate(),
        "{:?}",
        results(&ev)[0]
    );
    assert_eq!(e.front.ingest.dedupe().len(), 2);
}

/// The inline layout runs the chain on the caller's thread: an input's events are there as
/// soon as `try_send` returns, `inputs_done` counts an input only once its events are taken,
/// waiting plans resolve when the caller looks for events (nobody else runs the engine), and
/// shutdown resolves what still waits.
#[test]
fn the_inline_runner_answers_on_the_callers_thread() {
    let cfg = EngineConfig {
        permits: PermitSource::External,
        apply_wait_ms: 300,
        ..EngineConfig::default()
    };
    let e = stocked(cfg, Clock::new());
    let sol = sym(&e, "SOLUSDT");
    let runner = Runner::start(
        e,
        RunnerConfig {
            mode: Mode::Inline,
            pin: false,
            ..RunnerConfig::default()
        },
    );
    assert_eq!(runner.mode(), Mode::Inline);
    assert!(runner.caller_bell().is_none(), "the caller is the engine");
    assert_eq!(runner.inputs_done(), 0);
    assert!(!runner.has_output());
    assert_eq!(runner.due_in(), None, "nothing waits");
    let hold = Plan::exit(PlanId(1), sol, Decision::Hold, Action::Partial25);
    runner.try_send(Input::Plan(hold), RING).unwrap();
    // Answered at once, but not done until its result is taken.
    assert!(runner.has_output());
    assert_eq!(runner.inputs_done(), 0);
    let r = match runner.try_recv() {
        Some(Event::PlanResult(r)) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(r.outcome, Outcome::NonExecute);
    assert!(!runner.has_output());
    assert_eq!(runner.inputs_done(), 1);
    // Two EXECUTE plans wait for permits from outside that never come: their apply wait ends
    // while the caller waits for events, on this thread.
    for id in [2, 3] {
        let p = Plan::exit(PlanId(id), sol, Decision::Execute, Action::Partial25);
        runner.try_send(Input::Plan(p), RING).unwrap();
    }
    let mut out = Vec::new();
    while let Some(ev) = runner.try_recv() {
        out.push(ev);
    }
    assert!(results(&out).is_empty(), "{out:?}");
    assert_eq!(runner.inputs_done(), 3);
    // The caller's sleep is bounded by the earliest waiting plan's deadline (the 300 ms wait).
    let due = runner.due_in().expect("plans wait");
    assert!(
        due > Duration::ZERO && due <= Duration::from_millis(300),
        "{due:?}"
    );
    while results(&out).is_empty() {
        let ev = runner
            .recv_timeout(Duration::from_secs(5))
            .expect("the apply wait ends");
        out.push(ev);
    }
    let third = Plan::exit(PlanId(4), sol, Decision::Execute, Action::Partial25);
    runner.try_send(Input::Plan(third), RING).unwrap();
    let done = runner.shutdown(&mut |ev| out.push(ev));
    assert_eq!(done, 4);
    let r = results(&out);
    assert_eq!(r.len(), 3, "{r:?}");
    assert!(r.iter().all(|r| matches!(
        r.outcome,
        Outcome::Blocked(Block::MissingGov | Block::MissingP33)
    )));
}
