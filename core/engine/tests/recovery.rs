//! Recovery from the journal's events, at every moment a process could die.
//!
//! A crash leaves the journal holding a prefix of the events the engine emitted (an event is
//! appended before anything else leaves the process with it). These tests run a session,
//! then for every prefix fold it into a `State`, restore it into a fresh engine and check the
//! promise: every accepted plan ends with exactly one result, every order that may exist is
//! offered again "look up first" and nothing else is, the book comes back, re-delivered plans
//! create nothing, and no plan executes on a symbol before it has reconciled.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use quantum_core::event::Event;
use quantum_core::orders::OrderInput;
use quantum_core::p33::P33Reason;
use quantum_core::recovery::State;
use quantum_core::result::Block;
use quantum_core::{
    Action, Clock, Command, Decision, Engine, EngineConfig, Outcome, Plan, PlanId, Qty,
};
use quantum_ipc::codes::{FailKind, OrderStatus, UnknownReason};
use support::{cmd, failed, intents, ledger, order, p, q, report, results, stocked, sym};

fn plan(e: &Engine, id: u64, name: &str, action: Action) -> Plan {
    Plan::exit(PlanId(id), sym(e, name), Decision::Execute, action)
}

/// A session with every kind of order history: filled, partly filled, sent and unanswered,
/// unknown, rejected, never sent; plus blocked and non-EXECUTE plans. Returns the events.
fn session(e: &mut Engine) -> Vec<Event> {
    let mut ev = Vec::new();
    let run = |e: &mut Engine, p: Plan, ev: &mut Vec<Event>| {
        e.process_plan(p, &mut |x| ev.push(x)).unwrap();
        intents(ev).last().copied()
    };
    let i1 = run(e, plan(e, 1, "BTCUSDT", Action::Partial25), &mut ev).unwrap();
    let i2 = run(e, plan(e, 2, "ETHUSDT", Action::Partial50), &mut ev).unwrap();
    ev.extend(order(
        e,
        OrderInput::Sent {
            plan: i1.plan,
            symbol: i1.symbol,
            at_ms: 1,
        },
    ));
    ev.extend(order(
        e,
        report(&i1, OrderStatus::Filled, &i1.qty.to_string()),
    ));
    ev.extend(order(
        e,
        OrderInput::Sent {
            plan: i2.plan,
            symbol: i2.symbol,
            at_ms: 1,
        },
    ));
    ev.extend(order(e, report(&i2, OrderStatus::PartiallyFilled, "0.1")));
    let i3 = run(e, plan(e, 3, "SOLUSDT", Action::Partial25), &mut ev).unwrap();
    ev.extend(order(
        e,
        OrderInput::Sent {
            plan: i3.plan,
            symbol: i3.symbol,
            at_ms: 1,
        },
    ));
    ev.extend(order(
        e,
        failed(&i3, FailKind::Unknown, UnknownReason::Timeout.code()),
    ));
    let i4 = run(e, plan(e, 4, "BTCUSDT", Action::Partial25), &mut ev).unwrap();
    ev.extend(order(e, failed(&i4, FailKind::Rejected, 1)));
    // Non-EXECUTE, and a re-delivery.
    let hold = Plan::exit(
        PlanId(5),
        sym(e, "ETHUSDT"),
        Decision::Hold,
        Action::Partial25,
    );
    run(e, hold, &mut ev);
    run(e, plan(e, 1, "BTCUSDT", Action::Partial25), &mut ev);
    // An intent never reported sent.
    run(e, plan(e, 6, "ETHUSDT", Action::Partial25), &mut ev).unwrap();
    ev.extend(cmd(
        e,
        Command::SetLedger {
            symbol: sym(e, "SOLUSDT"),
            amount: q("-119"),
        },
    ));
    ev
}

fn config() -> EngineConfig {
    EngineConfig {
        table_capacity: 64,
        dedupe_capacity: 4096,
        ..EngineConfig::default()
    }
}

#[test]
fn every_crash_point_recovers_exactly_once() {
    let (clock, _mock) = Clock::mock();
    let mut a = stocked(config(), clock.clone());
    // The stocking commands are events too: replay them first.
    let mut all = Vec::new();
    for name in ["BTCUSDT", "ETHUSDT", "SOLUSDT"] {
        let s = sym(&a, name);
        let v = a.shared().book.view(s).unwrap();
        all.push(Event::Position {
            symbol: s,
            amount: v.exchange.unwrap().0,
            mark: v.mark,
            time_ms: 1,
        });
        all.push(Event::LedgerSet {
            symbol: s,
            amount: v.ledger,
            at_ms: 1,
        });
    }
    all.extend(session(&mut a));
    assert!(all.len() > 30, "{}", all.len());

    for k in 0..=all.len() {
        let prefix = &all[..k];
        let mut state = State::new(3, 86_400_000, 1024);
        for (n, e) in prefix.iter().enumerate() {
            state.apply(n as u64 + 1, e);
        }
        let mut b = Engine::new(config(), clock.clone()).unwrap();
        let mut after = Vec::new();
        let restored = b.restore(&state, &mut |e| after.push(e)).unwrap();
        b.handle(quantum_core::Input::Reoffer, 3, &mut |e| after.push(e))
            .unwrap();

        // Every accepted plan has exactly one result (duplicates answer re-deliveries).
        let accepted: BTreeSet<u64> = prefix
            .iter()
            .filter_map(|e| match e {
                Event::PlanAccepted { plan, .. } => Some(plan.id.0),
                _ => None,
            })
            .collect();
        let mut answered: BTreeMap<u64, usize> = BTreeMap::new();
        for r in results(prefix).iter().chain(results(&after).iter()) {
            if !r.outcome.is_duplicate() && r.decision == Decision::Execute {
                *answered.entry(r.plan.0).or_default() += 1;
            }
        }
        for id in &accepted {
            assert_eq!(
                answered.get(id),
                Some(&1),
                "crash after {k} events: plan {id}"
            );
        }
        // A plan whose intent was journaled is answered executed, never interrupted.
        for r in results(&after) {
            let had_intent = intents(prefix).iter().any(|i| i.plan == r.plan);
            match r.outcome {
                Outcome::Executed { .. } => assert!(had_intent, "k={k}"),
                Outcome::Blocked(Block::Interrupted) => assert!(!had_intent, "k={k}"),
                o => panic!("k={k}: unexpected restore outcome {o:?}"),
            }
        }
        // What the restore says it did is what it did.
        let count = |o: Outcome| results(&after).iter().filter(|r| r.outcome == o).count();
        assert_eq!(
            restored.interrupted,
            count(Outcome::Blocked(Block::Interrupted)),
            "k={k}"
        );
        assert_eq!(
            restored.executed,
            results(&after).len() - restored.interrupted,
            "k={k}"
        );
        assert_eq!(restored.dedupe, accepted.len(), "k={k}");
        assert_eq!(restored.reconciling, if k > 0 { 3 } else { 0 }, "k={k}");
        // Offered again: exactly the orders with an intent and no end, each once, look-up first.
        let open: BTreeSet<u64> = intents(prefix)
            .iter()
            .filter(|i| !i.lookup_first)
            .map(|i| i.plan.0)
            .filter(|p| {
                !prefix
                    .iter()
                    .any(|e| matches!(e, Event::OrderDone(d) if d.plan.0 == *p))
            })
            .collect();
        let again = intents(&after);
        assert!(again.iter().all(|i| i.lookup_first), "k={k}");
        let again_ids: Vec<u64> = again.iter().map(|i| i.plan.0).collect();
        assert_eq!(again_ids, open.iter().copied().collect::<Vec<_>>(), "k={k}");
        assert_eq!(restored.orders, open.len());
        // Each of them is now unknown, so it is resolved before its symbol trades again.
        for id in &open {
            assert_eq!(
                b.front.orders().get(PlanId(*id)).unwrap().state,
                quantum_core::orders::OrderState::Unknown,
                "k={k}"
            );
        }
        // The book: the ledger as journaled, in flight = what open orders may still fill.
        for name in ["BTCUSDT", "ETHUSDT", "SOLUSDT"] {
            let s = sym(&b, name);
            let want = prefix.iter().rev().find_map(|e| match e {
                Event::LedgerSet { symbol, amount, .. } if *symbol == s => Some(*amount),
                Event::Fill(f) if f.symbol == s => Some(f.ledger_after),
                _ => None,
            });
            assert_eq!(ledger(&b, name), want.unwrap_or(Qty::ZERO), "k={k} {name}");
            let in_flight: i64 = b
                .front
                .orders()
                .iter()
                .filter(|o| o.symbol == s)
                .map(|o| o.remaining().units())
                .sum();
            let v = b.shared().book.view(s).unwrap();
            assert_eq!(v.in_flight.units(), in_flight, "k={k} {name}");
            assert_eq!(v.reconciling, k > 0, "k={k} {name}");
        }
        // Re-delivering every accepted plan creates nothing.
        for id in &accepted {
            let p = prefix
                .iter()
                .find_map(|e| match e {
                    Event::PlanAccepted { plan, .. } if plan.id.0 == *id => Some(*plan),
                    _ => None,
                })
                .unwrap();
            let mut ev = Vec::new();
            b.process_plan(p, &mut |e| ev.push(e)).unwrap();
            assert!(intents(&ev).is_empty(), "k={k} plan {id}");
            assert!(results(&ev)[0].outcome.is_duplicate(), "k={k}");
        }
    }
}

#[test]
fn a_symbol_trades_again_only_after_a_fresh_position_and_every_lookup() {
    let (clock, _mock) = Clock::mock();
    let mut a = stocked(config(), clock.clone());
    let mut events = Vec::new();
    for name in ["BTCUSDT", "ETHUSDT", "SOLUSDT"] {
        let s = sym(&a, name);
        let v = a.shared().book.view(s).unwrap();
        events.push(Event::Position {
            symbol: s,
            amount: v.exchange.unwrap().0,
            mark: v.mark,
            time_ms: 1,
        });
        events.push(Event::LedgerSet {
            symbol: s,
            amount: v.ledger,
            at_ms: 1,
        });
    }
    // An order sent and never answered before the crash.
    a.process_plan(plan(&a, 1, "BTCUSDT", Action::Partial50), &mut |e| {
        events.push(e)
    })
    .unwrap();
    let i1 = intents(&events)[0];
    events.extend(order(
        &mut a,
        OrderInput::Sent {
            plan: i1.plan,
            symbol: i1.symbol,
            at_ms: 1,
        },
    ));
    let mut state = State::new(3, 86_400_000, 1024);
    for (n, e) in events.iter().enumerate() {
        state.apply(n as u64 + 1, e);
    }
    let mut b = Engine::new(config(), clock.clone()).unwrap();
    let mut after = Vec::new();
    b.restore(&state, &mut |e| after.push(e)).unwrap();
    let btc = sym(&b, "BTCUSDT");
    assert!(after.iter().any(|e| matches!(e, Event::Reconciling { symbol, on: true, unknown_orders: 1, .. } if *symbol == btc)));
    // The exchange bridge tells the account's mode at every start (a restart assumes none).
    support::one_way(&mut b);

    let denied = |b: &mut Engine, id: u64| {
        let mut ev = Vec::new();
        b.process_plan(plan(b, id, "BTCUSDT", Action::Partial25), &mut |e| {
            ev.push(e)
        })
        .unwrap();
        assert!(intents(&ev).is_empty());
        results(&ev)[0].outcome
    };
    assert!(matches!(
        denied(&mut b, 10),
        Outcome::Blocked(Block::P33Denied(P33Reason::Reconciling, _))
    ));
    // A fresh position alone is not enough: the order's outcome is still unknown.
    let ev = cmd(
        &mut b,
        Command::Position {
            symbol: btc,
            amount: q("0.031"),
            mark: p("100"),
        },
    );
    assert!(!ev.iter().any(|e| matches!(e, Event::Reconciling { .. })));
    assert!(matches!(
        denied(&mut b, 11),
        Outcome::Blocked(Block::P33Denied(P33Reason::Reconciling, _))
    ));
    // The lookup finds it filled while the core was down: the ledger catches up, and the
    // symbol has reconciled.
    let ev = order(
        &mut b,
        report(&i1, OrderStatus::Filled, &i1.qty.to_string()),
    );
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::OrderResolved { found: true, .. })));
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::Reconciling { on: false, .. })));
    assert_eq!(ledger(&b, "BTCUSDT"), q("0.031"));
    let mut ev = Vec::new();
    b.process_plan(plan(&b, 12, "BTCUSDT", Action::Partial25), &mut |e| {
        ev.push(e)
    })
    .unwrap();
    assert_eq!(intents(&ev).len(), 1, "{ev:?}");
    // Another symbol with nothing unknown reconciles on its first fresh position.
    let eth = sym(&b, "ETHUSDT");
    let ev = cmd(
        &mut b,
        Command::Position {
            symbol: eth,
            amount: q("2.5"),
            mark: p("100"),
        },
    );
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::Reconciling { symbol, on: false, .. } if *symbol == eth)));
}

#[test]
fn a_first_start_has_nothing_to_reconcile() {
    let (clock, _mock) = Clock::mock();
    let mut b = stocked(config(), clock);
    let mut after = Vec::new();
    let r = b
        .restore(&State::new(3, 1_000, 16), &mut |e| after.push(e))
        .unwrap();
    assert!(after.is_empty());
    assert_eq!(r.reconciling, 0);
    let mut ev = Vec::new();
    b.process_plan(plan(&b, 1, "BTCUSDT", Action::Partial25), &mut |e| {
        ev.push(e)
    })
    .unwrap();
    assert_eq!(intents(&ev).len(), 1);
}

#[test]
fn a_journal_naming_a_symbol_the_configuration_lacks_is_refused() {
    let (clock, _mock) = Clock::mock();
    let mut state = State::new(3, 1_000, 16);
    state.apply(
        1,
        &Event::LedgerSet {
            symbol: quantum_core::SymbolId(7),
            amount: q("1"),
            at_ms: 1,
        },
    );
    let mut b = Engine::new(config(), clock).unwrap();
    let err = b.restore(&state, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("symbol id 7"), "{err}");
}

/// An order ended on one report (rejected: Binance refused the first try) can still fill on
/// a later try of the same client id that the adapter made before it heard of the end: the
/// fill moves the ledger instead of being dropped as late, once, and survives a restart.
#[test]
fn a_fill_reported_after_its_order_ended_is_booked_once() {
    let (clock, _mock) = Clock::mock();
    let mut e = stocked(config(), clock.clone());
    let mut ev = Vec::new();
    e.process_plan(plan(&e, 1, "ETHUSDT", Action::Partial50), &mut |x| {
        ev.push(x)
    })
    .unwrap();
    let i = intents(&ev)[0];
    let before = ledger(&e, "ETHUSDT");
    let done = order(&mut e, failed(&i, FailKind::Rejected, 3));
    assert!(done.iter().any(|x| matches!(x, Event::OrderDone(_))));
    let late = order(&mut e, report(&i, OrderStatus::Filled, &i.qty.to_string()));
    let fills: Vec<_> = late
        .iter()
        .filter_map(|x| match x {
            Event::Fill(f) => Some(*f),
            _ => None,
        })
        .collect();
    assert_eq!(fills.len(), 1, "{late:?}");
    assert_eq!(fills[0].qty, i.qty);
    let after = ledger(&e, "ETHUSDT");
    assert_eq!(after.units(), before.units() - i.qty.units());
    let eth = sym(&e, "ETHUSDT");
    assert_eq!(e.shared().book.view(eth).unwrap().in_flight, Qty::ZERO);
    // The same report again: nothing.
    assert!(order(&mut e, report(&i, OrderStatus::Filled, &i.qty.to_string())).is_empty());
    // Folded and restored: the end, and the late fill, are remembered.
    let mut state = State::new(3, 86_400_000, 16);
    let mut all = vec![Event::LedgerSet {
        symbol: eth,
        amount: before,
        at_ms: 1,
    }];
    all.extend(ev.iter().copied());
    all.extend(done);
    all.extend(late);
    for (n, x) in all.iter().enumerate() {
        state.apply(n as u64 + 1, x);
    }
    let state = State::decode(&state.encode()).unwrap();
    assert_eq!(state.ended[0].1.filled, i.qty);
    assert_eq!(state.symbols[eth.index()].ledger, after);
    let mut b = Engine::new(config(), clock).unwrap();
    b.restore(&state, &mut |_| {}).unwrap();
    assert!(order(&mut b, report(&i, OrderStatus::Filled, &i.qty.to_string())).is_empty());
    assert_eq!(ledger(&b, "ETHUSDT"), after);
}

/// A plan id is remembered across a restart for the whole horizon from its acceptance, and
/// forgotten after it: the restored engine answers a re-delivery `duplicate` one millisecond
/// before the horizon ends, and takes the plan as new once it has.
#[test]
fn plan_ids_are_remembered_across_a_restart_for_their_whole_horizon() {
    let (clock, mock) = Clock::mock();
    let horizon_ms = 60_000;
    let cfg = EngineConfig {
        dedupe_horizon_ms: horizon_ms,
        max_plan_age_ms: horizon_ms,
        ..config()
    };
    let mut a = stocked(cfg.clone(), clock.clone());
    let mut ev = Vec::new();
    a.process_plan(plan(&a, 77, "BTCUSDT", Action::Partial25), &mut |x| {
        ev.push(x)
    })
    .unwrap();
    let i = intents(&ev)[0];
    ev.extend(order(&mut a, failed(&i, FailKind::Rejected, 1)));
    let mut state = State::new(3, horizon_ms, 16);
    for (n, x) in ev.iter().enumerate() {
        state.apply(n as u64 + 1, x);
    }
    let restart = |ms: u64| {
        mock.increment(std::time::Duration::from_millis(ms));
        let mut b = stocked(cfg.clone(), clock.clone());
        b.restore(&state, &mut |_| {}).unwrap();
        let mut out = Vec::new();
        b.process_plan(plan(&b, 77, "BTCUSDT", Action::Partial25), &mut |x| {
            out.push(x)
        })
        .unwrap();
        results(&out)[0].outcome
    };
    assert!(restart(horizon_ms - 1).is_duplicate());
    assert!(!restart(1).is_duplicate());
}

/// The governor's memory survives a restart: an execution journaled before the crash still
/// holds its symbol's cooldown in the restored engine, and the cooldown ends when it would
/// have without the crash.
#[test]
fn a_cooldown_holds_across_a_restart() {
    let (clock, mock) = Clock::mock();
    let mut cfg = config();
    cfg.governor.mode = quantum_core::governor::GovMode::Production;
    cfg.governor.cooldown_ms = 60_000;
    let mut a = stocked(cfg.clone(), clock.clone());
    let mut ev = Vec::new();
    a.process_plan(plan(&a, 1, "BTCUSDT", Action::Partial25), &mut |x| {
        ev.push(x)
    })
    .unwrap();
    let i = intents(&ev)[0];
    ev.extend(order(&mut a, failed(&i, FailKind::Rejected, 1)));
    let mut state = State::new(3, 86_400_000, 16);
    for (n, x) in ev.iter().enumerate() {
        state.apply(n as u64 + 1, x);
    }
    let after = |ms: u64, id: u64| {
        mock.increment(std::time::Duration::from_millis(ms));
        let mut b = stocked(cfg.clone(), clock.clone());
        b.restore(&state, &mut |_| {}).unwrap();
        // The journal above holds no book; a ledger and a fresh position (which also ends
        // the symbol's reconciliation) let an exit through P3.3.
        let btc = sym(&b, "BTCUSDT");
        cmd(
            &mut b,
            Command::SetLedger {
                symbol: btc,
                amount: q("1"),
            },
        );
        cmd(
            &mut b,
            Command::Position {
                symbol: btc,
                amount: q("1"),
                mark: p("100"),
            },
        );
        let mut out = Vec::new();
        b.process_plan(plan(&b, id, "BTCUSDT", Action::Partial25), &mut |x| {
            out.push(x)
        })
        .unwrap();
        results(&out)[0].outcome
    };
    assert_eq!(
        after(10_000, 2),
        Outcome::Blocked(Block::GovDenied(
            quantum_core::governor::GovReason::Cooldown
        ))
    );
    let later = after(60_000, 3);
    assert!(matches!(later, Outcome::Executed { .. }), "{later:?}");
}

/// The dedupe set restored from the journal: exactly the ids younger than the horizon, and a
/// set that fills the capacity exactly is taken while one more id is refused.
#[test]
fn the_dedupe_set_is_restored_to_its_capacity_and_no_further() {
    let (clock, _mock) = Clock::mock();
    let horizon_ms = 60_000;
    let now_ms = quantum_core::clock::MOCK_WALL_ORIGIN_MS;
    let cfg = EngineConfig {
        table_capacity: 64,
        dedupe_capacity: 64,
        dedupe_horizon_ms: horizon_ms,
        max_plan_age_ms: horizon_ms,
        ..EngineConfig::default()
    };
    let state_with = |young: u64| {
        let mut state = State::new(3, horizon_ms, 16);
        // One journaled event, so the state is not a first start's.
        state.apply(
            1,
            &Event::LedgerSet {
                symbol: quantum_core::SymbolId(0),
                amount: Qty::ZERO,
                at_ms: now_ms,
            },
        );
        // Accepted exactly one horizon ago: expired now, not restored.
        state.dedupe.push_back((1_000, now_ms - horizon_ms));
        for id in 0..young {
            state.dedupe.push_back((id + 1, now_ms - horizon_ms + 1));
        }
        state
    };
    let mut b = Engine::new(cfg.clone(), clock.clone()).unwrap();
    let done = b.restore(&state_with(64), &mut |_| {}).unwrap();
    assert_eq!(done.dedupe, 64);
    let mut b = Engine::new(cfg, clock).unwrap();
    assert_eq!(
        b.restore(&state_with(65), &mut |_| {}).unwrap_err(),
        quantum_core::recovery::RestoreError::DedupeTooSmall {
            needed: 65,
            capacity: 64
        }
    );
}
