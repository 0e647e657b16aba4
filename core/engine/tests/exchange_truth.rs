//! The exchange as the journal of last resort, and the plan age.
//!
//! A core that lost its journal knows nothing of the plans it ordered; the exchange does (the
//! client order id is derived from the plan id). These tests start engines with an empty
//! journal, require the exchange's order history, and check that no plan the history holds is
//! ordered again, that nothing trades before the history arrived, that a history too short to
//! cover the dedupe horizon is refused, and that what was recovered survives the next restart
//! through the journal. And: a plan older than the maximum plan age is never ordered.

mod support;

use std::time::Duration;

use quantum_core::engine::History;
use quantum_core::event::Event;
use quantum_core::orders::{OrderInput, Report};
use quantum_core::p33::P33Reason;
use quantum_core::recovery::State;
use quantum_core::result::Block;
use quantum_core::{
    Action, Clock, Command, Decision, Engine, EngineConfig, Input, Outcome, Plan, PlanId, Side,
    SymbolId,
};
use quantum_ipc::codes::{FailKind, OrderStatus, RefuseReason, ReportSource, UnsentReason};
use support::{failed, intents, p, q, results, stock, stocked, sym, RING};

const HOUR_MS: u64 = 3_600_000;

fn config() -> EngineConfig {
    EngineConfig {
        table_capacity: 64,
        dedupe_capacity: 4096,
        ..EngineConfig::default()
    }
}

fn plan(id: u64, symbol: SymbolId) -> Plan {
    Plan::exit(PlanId(id), symbol, Decision::Execute, Action::Partial25)
}

fn feed(e: &mut Engine, input: Input) -> Vec<Event> {
    let mut out = Vec::new();
    e.handle(input, RING, &mut |ev| out.push(ev)).unwrap();
    out
}

fn outcome(e: &mut Engine, p: Plan) -> (Outcome, Vec<Event>) {
    let mut ev = Vec::new();
    e.process_plan(p, &mut |x| ev.push(x)).unwrap();
    (results(&ev)[0].outcome, ev)
}

/// The exchange's report of an order of ours for `plan`, filled, from the history.
fn history_report(symbol: SymbolId, plan: u64, status: OrderStatus, filled: &str) -> Input {
    Input::Order(OrderInput::Report(Report {
        plan: PlanId(plan),
        symbol,
        side: Side::Sell,
        status,
        cum_qty: q(filled),
        price: p("100"),
        order_id: 40 + plan,
        time_ms: 1,
        orig_qty: q("0.015"),
        source: ReportSource::History,
    }))
}

fn history(symbol: SymbolId, since_ms: u64, orders: u32) -> Input {
    Input::History(History {
        symbol,
        orders,
        since_ms,
        through_ms: since_ms + 25 * HOUR_MS,
    })
}

/// An engine as a daemon with an empty journal starts it: restored from nothing, then told to
/// wait for the exchange's history.
fn empty_start(clock: Clock) -> (Engine, Vec<Event>) {
    let mut e = Engine::new(config(), clock).unwrap();
    let mut ev = Vec::new();
    e.restore(&State::new(3, config().dedupe_horizon_ms, 1024), &mut |x| {
        ev.push(x)
    })
    .unwrap();
    e.require_history(&mut |x| ev.push(x));
    (e, ev)
}

#[test]
fn a_lost_journal_never_orders_again_a_plan_the_exchange_holds() {
    let (clock, mock) = Clock::mock();
    mock.increment(Duration::from_secs(48 * 3600));
    let now_ms = clock.wall_ms(clock.now_ns());
    let (mut e, start) = empty_start(clock);
    assert_eq!(
        start
            .iter()
            .filter(|x| matches!(x, Event::Reconciling { on: true, .. }))
            .count(),
        3,
        "every symbol reconciles: {start:?}"
    );
    for name in ["BTCUSDT", "ETHUSDT", "SOLUSDT"] {
        stock(
            &mut e,
            name,
            if name == "SOLUSDT" { "-120" } else { "0.062" },
        );
    }
    let btc = sym(&e, "BTCUSDT");
    // A position alone does not end the wait: the history has not come.
    let (o, ev) = outcome(&mut e, plan(100, btc));
    assert!(
        matches!(
            o,
            Outcome::Blocked(Block::P33Denied(P33Reason::Reconciling, _))
        ),
        "{o:?}"
    );
    assert!(intents(&ev).is_empty());

    // The history: plan 1 filled, plan 2 still open at the exchange.
    let ev = feed(&mut e, history_report(btc, 1, OrderStatus::Filled, "0.015"));
    assert!(
        ev.iter()
            .any(|x| matches!(x, Event::OrderRecovered { report, .. } if report.plan == PlanId(1))),
        "{ev:?}"
    );
    feed(&mut e, history_report(btc, 2, OrderStatus::New, "0"));
    // A history that does not reach back one horizon is refused; the symbol still waits.
    let horizon = config().dedupe_horizon_ms;
    let short = feed(&mut e, history(btc, now_ms - horizon + 60_000, 2));
    assert!(
        short
            .iter()
            .any(|x| matches!(x, Event::Refused(r) if r.reason == RefuseReason::HistoryTooShort)),
        "{short:?}"
    );
    let (o, _) = outcome(&mut e, plan(101, btc));
    assert!(matches!(
        o,
        Outcome::Blocked(Block::P33Denied(P33Reason::Reconciling, _))
    ));
    let ev = feed(&mut e, history(btc, now_ms - horizon - 3_600_000, 2));
    assert!(
        ev.iter()
            .any(|x| matches!(x, Event::Reconciling { symbol, on: false, .. } if *symbol == btc)),
        "{ev:?}"
    );
    // The re-delivered plans are duplicates: nothing is ordered again. A duplicate names the
    // order the plan has when it filled (plan 1), so a reader whose record of the first answer
    // was lost can say it executed; plan 2's order has filled nothing yet.
    for (id, ordered) in [(1, Some(q("0.015"))), (2, None)] {
        let (o, ev) = outcome(&mut e, plan(id, btc));
        assert_eq!(o, Outcome::Duplicate { ordered }, "plan {id}");
        assert!(intents(&ev).is_empty());
        let back = Event::from_message(&ev[0].to_message()).unwrap();
        assert_eq!(back, ev[0], "the ordered quantity crosses the wire");
    }
    // A new plan trades.
    let (o, ev) = outcome(&mut e, plan(3, btc));
    assert!(matches!(o, Outcome::Executed { .. }), "{o:?}");
    assert_eq!(intents(&ev).len(), 1);
    // Another symbol still waits for its own history.
    let eth = sym(&e, "ETHUSDT");
    let (o, _) = outcome(&mut e, plan(4, eth));
    assert!(matches!(
        o,
        Outcome::Blocked(Block::P33Denied(P33Reason::Reconciling, _))
    ));
}

#[test]
fn recovered_orders_survive_the_next_restart_through_the_journal() {
    let (clock, mock) = Clock::mock();
    mock.increment(Duration::from_secs(48 * 3600));
    let now_ms = clock.wall_ms(clock.now_ns());
    let (mut a, mut journal) = empty_start(clock.clone());
    let btc = sym(&a, "BTCUSDT");
    for input in [
        history_report(btc, 7, OrderStatus::Filled, "0.015"),
        history(btc, now_ms - 25 * HOUR_MS, 1),
    ] {
        journal.extend(feed(&mut a, input));
    }
    // The next start replays the journal: the plan is still remembered, with no history asked.
    let mut state = State::new(3, config().dedupe_horizon_ms, 1024);
    for (n, x) in journal.iter().enumerate() {
        let record = x.to_message().encode();
        state.apply_record(n as u64 + 1, &record).unwrap();
    }
    let mut b = stocked(config(), clock);
    b.restore(&state, &mut |_| {}).unwrap();
    let (o, ev) = outcome(&mut b, plan(7, btc));
    assert!(o.is_duplicate(), "{o:?}");
    assert!(intents(&ev).is_empty());
}

#[test]
fn a_history_report_of_an_order_the_core_knows_is_an_ordinary_report() {
    let (clock, _mock) = Clock::mock();
    let mut e = stocked(config(), clock);
    let btc = sym(&e, "BTCUSDT");
    let (o, ev) = outcome(&mut e, plan(9, btc));
    assert!(matches!(o, Outcome::Executed { .. }));
    let i = intents(&ev)[0];
    let mut r = Report {
        plan: i.plan,
        symbol: i.symbol,
        side: i.side,
        status: OrderStatus::Filled,
        cum_qty: i.qty,
        price: p("100"),
        order_id: 5,
        time_ms: 1,
        orig_qty: i.qty,
        source: ReportSource::History,
    };
    let ev = feed(&mut e, Input::Order(OrderInput::Report(r)));
    assert!(ev.iter().any(|x| matches!(x, Event::Fill(_))), "{ev:?}");
    assert!(!ev.iter().any(|x| matches!(x, Event::OrderRecovered { .. })));
    // Reported again: late and booked once.
    r.order_id = 5;
    let ev = feed(&mut e, Input::Order(OrderInput::Report(r)));
    assert!(!ev.iter().any(|x| matches!(x, Event::Fill(_))), "{ev:?}");
}

#[test]
fn a_history_for_an_unknown_symbol_is_refused() {
    let (clock, _mock) = Clock::mock();
    let (mut e, _) = empty_start(clock);
    let ev = feed(&mut e, history(SymbolId(9), 0, 0));
    assert!(ev
        .iter()
        .any(|x| matches!(x, Event::Refused(r) if r.reason == RefuseReason::UnknownSymbol)));
    let ev = feed(
        &mut e,
        history_report(SymbolId(9), 1, OrderStatus::Filled, "1"),
    );
    assert!(ev
        .iter()
        .any(|x| matches!(x, Event::Refused(r) if r.reason == RefuseReason::UnknownSymbol)));
}

#[test]
fn a_plan_older_than_the_maximum_age_is_never_ordered() {
    let (clock, mock) = Clock::mock();
    mock.increment(Duration::from_secs(48 * 3600));
    let now_ms = clock.wall_ms(clock.now_ns());
    let mut e = stocked(config(), clock);
    let max = config().max_plan_age_ms;
    let btc = sym(&e, "BTCUSDT");
    let aged = |id: u64, created_at_ms: u64| Plan {
        created_at_ms,
        ..plan(id, btc)
    };
    let (o, ev) = outcome(&mut e, aged(1, now_ms - max - 1));
    assert_eq!(o, Outcome::Blocked(Block::Stale));
    assert!(o.at_admission(), "answered without a PlanAccepted");
    assert!(!ev.iter().any(|x| matches!(x, Event::PlanAccepted { .. })));
    assert!(intents(&ev).is_empty());
    assert_eq!(Block::Stale.to_string(), "plan_stale");
    // A stale plan is not remembered: the same id, fresh, is not a duplicate.
    let (o, _) = outcome(&mut e, aged(1, now_ms - max));
    assert!(matches!(o, Outcome::Executed { .. }), "{o:?}");
    // Two days old, and `timestamp: 1`: stale.
    for (id, t) in [(2, now_ms - 48 * HOUR_MS), (3, 1)] {
        let (o, _) = outcome(&mut e, aged(id, t));
        assert_eq!(o, Outcome::Blocked(Block::Stale), "created {t}");
    }
    // Unknown age (0) is the time the core took it; the future is clock skew, not age.
    for (id, t) in [(4, 0), (5, now_ms + 60_000)] {
        let (o, _) = outcome(&mut e, aged(id, t));
        assert!(matches!(o, Outcome::Executed { .. }), "created {t}: {o:?}");
    }
    // A non-EXECUTE plan is answered as such whatever its age.
    let hold = Plan {
        decision: Decision::Hold,
        ..aged(6, 1)
    };
    assert_eq!(outcome(&mut e, hold).0, Outcome::NonExecute);
}

#[test]
fn a_horizon_shorter_than_the_maximum_age_is_refused() {
    let cfg = EngineConfig {
        dedupe_horizon_ms: 3_000,
        max_plan_age_ms: 60_000,
        ..config()
    };
    let err = Engine::new(cfg, Clock::new()).unwrap_err().to_string();
    assert!(
        err.contains("dedupe_horizon_ms 3000 is shorter than max_plan_age_ms (60000)"),
        "{err}"
    );
    let cfg = EngineConfig {
        dedupe_horizon_ms: 60_000,
        max_plan_age_ms: 60_000,
        ..config()
    };
    assert!(Engine::new(cfg, Clock::new()).is_ok());
}

fn base(symbol: SymbolId, amount: &str, epoch: u64) -> Input {
    Input::Command(Command::LedgerBase {
        symbol,
        amount: q(amount),
        epoch,
    })
}

fn wanted(ev: &[Event]) -> Vec<(SymbolId, u64)> {
    ev.iter()
        .filter_map(|x| match x {
            Event::LedgerWanted { symbol, epoch, .. } => Some((*symbol, *epoch)),
            _ => None,
        })
        .collect()
}

/// Failover: a core that takes the lead trades nothing until, per symbol, the exchange's
/// history arrived (the other host may have ordered any plan meanwhile) and then its ledger
/// from the shared ledger, asked for only once no order of ours on it can still fill. The
/// `Leading` event asks for the history; a restart before all of it arrived keeps waiting for
/// the rest, through the journal and through a snapshot.
#[test]
fn taking_the_lead_waits_for_the_history_and_the_ledger_across_a_restart() {
    let (clock, mock) = Clock::mock();
    mock.increment(Duration::from_secs(48 * 3600));
    let now_ms = clock.wall_ms(clock.now_ns());
    let horizon = config().dedupe_horizon_ms;
    let mut a = stocked(config(), clock.clone());
    let (btc, eth, sol) = (sym(&a, "BTCUSDT"), sym(&a, "ETHUSDT"), sym(&a, "SOLUSDT"));
    // Trading before the lead: plan 1's order is still in flight when the lead is taken.
    let (o, ev) = outcome(&mut a, plan(1, btc));
    assert!(matches!(o, Outcome::Executed { .. }), "{o:?}");
    let one = intents(&ev)[0];

    let mut journal = feed(&mut a, Input::Lead { epoch: 9 });
    let leading: Vec<_> = journal
        .iter()
        .filter_map(|x| match x {
            Event::Leading {
                epoch, since_ms, ..
            } => Some((*epoch, *since_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(leading, vec![(9, now_ms - horizon)], "{journal:?}");
    assert_eq!(a.front.awaiting_history(), 3);
    let (o, ev) = outcome(&mut a, plan(2, btc));
    assert!(
        matches!(
            o,
            Outcome::Blocked(Block::P33Denied(P33Reason::Reconciling, _))
        ),
        "{o:?}"
    );
    assert!(intents(&ev).is_empty());
    // A base before it is asked for is refused.
    let early = feed(&mut a, base(eth, "0.062", 9));
    assert!(
        early.iter().any(|x| matches!(x, Event::Refused(r)
            if r.reason == RefuseReason::UnwantedBase && r.symbol == eth)),
        "refused, naming its symbol: {early:?}"
    );
    // The other host ordered plan 3 on BTCUSDT (filled) and plan 8 on SOLUSDT (still open).
    journal.extend(feed(
        &mut a,
        history_report(btc, 3, OrderStatus::Filled, "0.015"),
    ));
    let ev = feed(&mut a, history(btc, now_ms - horizon, 1));
    assert_eq!(
        wanted(&ev),
        vec![],
        "plan 1's order is in flight: BTCUSDT may still fill"
    );
    journal.extend(ev);
    // The bridge did not send it (this host did not lead when it came).
    journal.extend(feed(
        &mut a,
        Input::Order(failed(
            &one,
            FailKind::Unsent,
            UnsentReason::NotLeader.code(),
        )),
    ));
    journal.extend(feed(&mut a, history_report(sol, 8, OrderStatus::New, "0")));
    let ev = feed(&mut a, history(sol, now_ms - horizon, 1));
    assert_eq!(
        wanted(&ev),
        vec![],
        "SOLUSDT has an order that may still fill"
    );
    journal.extend(ev);
    assert_eq!(
        wanted(&journal),
        vec![(btc, 9)],
        "BTCUSDT is quiet: its ledger is asked for"
    );

    // A restart here: BTCUSDT asked for its ledger, SOLUSDT waits for an open order, ETHUSDT
    // for its history.
    let mut state = State::new(3, horizon, 1024);
    for (n, x) in journal.iter().enumerate() {
        state
            .apply_record(n as u64 + 1, &x.to_message().encode())
            .unwrap();
    }
    assert_eq!(state.epoch, 9);
    let through_snapshot = State::decode(&state.encode()).unwrap();
    assert_eq!(through_snapshot, state, "the lead survives a snapshot");
    for st in [state, through_snapshot] {
        let mut b = stocked(config(), clock.clone());
        b.restore(&st, &mut |_| {}).unwrap();
        assert_eq!(
            b.front.awaiting_history(),
            3,
            "no symbol has its ledger: each reads the history again"
        );
        for name in ["BTCUSDT", "ETHUSDT", "SOLUSDT"] {
            stock(&mut b, name, "0.062");
        }
        feed(&mut b, history_report(btc, 3, OrderStatus::Filled, "0.015"));
        let ev = feed(&mut b, history(btc, now_ms - horizon, 1));
        assert_eq!(wanted(&ev), vec![(btc, 9)]);
        let (o, _) = outcome(&mut b, plan(4, btc));
        assert!(
            matches!(
                o,
                Outcome::Blocked(Block::P33Denied(P33Reason::Reconciling, _))
            ),
            "no trade before the ledger: {o:?}"
        );
        let ev = feed(&mut b, base(btc, "0.047", 9));
        assert!(
            ev.iter().any(|x| matches!(x, Event::LedgerSet { symbol, amount, .. } if *symbol == btc && *amount == q("0.047"))),
            "{ev:?}"
        );
        let (o, ev) = outcome(&mut b, plan(3, btc));
        assert!(o.is_duplicate(), "the other host's order is known: {o:?}");
        assert!(intents(&ev).is_empty());
        // The ledger the base set is the one P3.3 judges with: 0.047 against 0.062 exceeds
        // the tolerance, so it is stocked again to match before trading.
        stock(&mut b, "BTCUSDT", "0.047");
        let (o, _) = outcome(&mut b, plan(5, btc));
        assert!(matches!(o, Outcome::Executed { .. }), "{o:?}");
        // SOLUSDT: its open order ends, then it is quiet.
        feed(&mut b, history_report(sol, 8, OrderStatus::New, "0"));
        let ev = feed(&mut b, history(sol, now_ms - horizon, 1));
        assert_eq!(wanted(&ev), vec![]);
        let ev = feed(&mut b, history_report(sol, 8, OrderStatus::Filled, "0.5"));
        assert_eq!(wanted(&ev), vec![(sol, 9)], "{ev:?}");
        // ETHUSDT: history, then an operator's sync answers as well as the base.
        let ev = feed(&mut b, history(eth, now_ms - horizon, 0));
        assert_eq!(wanted(&ev), vec![(eth, 9)]);
        feed(
            &mut b,
            Input::Command(Command::SetLedger {
                symbol: eth,
                amount: q("0.062"),
            }),
        );
        let (o, _) = outcome(&mut b, plan(6, eth));
        assert!(matches!(o, Outcome::Executed { .. }), "{o:?}");
    }
}

/// A snapshot written before failover existed (no trailer) reads as never led.
#[test]
fn a_snapshot_without_the_failover_trailer_reads_as_never_led() {
    let st = State::new(3, config().dedupe_horizon_ms, 16);
    let mut bytes = st.encode();
    // epoch (8 bytes) + "no lead" (1 byte), then the history trailer ("no wait": 1 byte).
    bytes.truncate(bytes.len() - 10);
    let back = State::decode(&bytes).unwrap();
    assert_eq!((back.epoch, back.lead), (0, None));
}

/// Failover: an order not sent because this host did not lead leaves its plan to the leader:
/// dedupe forgets it, so a later delivery here is decided again (and ordered once), unless
/// the exchange has since shown an order for it (the other host placed it), which makes the
/// plan remembered again. The journal's recovery does the same.
#[test]
fn a_plan_whose_order_was_not_sent_for_want_of_the_lead_is_decided_again() {
    let (clock, _mock) = Clock::mock();
    let mut e = stocked(config(), clock.clone());
    let btc = sym(&e, "BTCUSDT");
    let not_led = |i| Input::Order(failed(i, FailKind::Unsent, UnsentReason::NotLeader.code()));
    let mut journal = Vec::new();
    // Plan 1: decided, its order not sent (this host lost the lead), delivered again.
    let (o, ev) = outcome(&mut e, plan(1, btc));
    assert!(matches!(o, Outcome::Executed { .. }), "{o:?}");
    let first = intents(&ev)[0];
    journal.extend(ev);
    journal.extend(feed(&mut e, not_led(&first)));
    // Plan 2: the same, but then the exchange reports an order for it (the other host's).
    let (_, ev) = outcome(&mut e, plan(2, btc));
    let second = intents(&ev)[0];
    journal.extend(ev);
    journal.extend(feed(&mut e, not_led(&second)));
    journal.extend(feed(
        &mut e,
        history_report(btc, 2, OrderStatus::Filled, "0.015"),
    ));
    // Its fill moved the ledger: the exchange is synced to it.
    stock(&mut e, "BTCUSDT", "0.047");
    // An order that ended any other way keeps its plan remembered.
    let (_, ev) = outcome(&mut e, plan(3, btc));
    let third = intents(&ev)[0];
    journal.extend(ev);
    // (Rejected with the same reason number as `not_leader`: only an unsent end forgets.)
    journal.extend(feed(
        &mut e,
        Input::Order(failed(
            &third,
            FailKind::Rejected,
            UnsentReason::NotLeader.code(),
        )),
    ));

    let mut state = State::new(3, config().dedupe_horizon_ms, 1024);
    for (n, x) in journal.iter().enumerate() {
        state
            .apply_record(n as u64 + 1, &x.to_message().encode())
            .unwrap();
    }
    let mut restored = stocked(config(), clock);
    restored.restore(&state, &mut |_| {}).unwrap();
    for name in ["BTCUSDT", "ETHUSDT", "SOLUSDT"] {
        stock(
            &mut restored,
            name,
            if name == "BTCUSDT" { "0.047" } else { "0.062" },
        );
    }
    for (which, engine) in [("live", &mut e), ("restored", &mut restored)] {
        let (o, ev) = outcome(engine, plan(1, btc));
        assert!(
            matches!(o, Outcome::Executed { .. }),
            "{which}: plan 1 is decided again: {o:?}"
        );
        assert_eq!(intents(&ev).len(), 1);
        let (o, ev) = outcome(engine, plan(2, btc));
        assert!(o.is_duplicate(), "{which}: plan 2's order exists: {o:?}");
        assert!(intents(&ev).is_empty());
        let (o, _) = outcome(engine, plan(3, btc));
        assert!(o.is_duplicate(), "{which}: plan 3 stays remembered: {o:?}");
    }
}

/// A start that could not trust its journal waits for the exchange's history; a restart
/// before all of it arrived keeps waiting for the rest (the journaled `Started` says what it
/// waits for), through the journal and through a snapshot, even though the journal is no
/// longer empty and the restart trusts it.
#[test]
fn an_untrusted_start_keeps_waiting_for_its_history_across_a_restart() {
    let (clock, mock) = Clock::mock();
    mock.increment(Duration::from_secs(48 * 3600));
    let now_ms = clock.wall_ms(clock.now_ns());
    let horizon = config().dedupe_horizon_ms;
    let (mut a, mut journal) = empty_start(clock.clone());
    // As the daemon journals it: the start first, with the history it asked for.
    journal.insert(
        0,
        Event::Started {
            history: true,
            at_ms: now_ms,
            since_ms: a.front.history_since_ms(),
        },
    );
    assert_eq!(a.front.history_since_ms(), now_ms - horizon);
    let btc = sym(&a, "BTCUSDT");
    journal.extend(feed(
        &mut a,
        history_report(btc, 1, OrderStatus::Filled, "0.015"),
    ));
    journal.extend(feed(&mut a, history(btc, now_ms - horizon, 1)));
    assert_eq!(a.front.awaiting_history(), 2);

    let fold = |events: &[Event]| {
        let mut state = State::new(3, horizon, 1024);
        for (n, x) in events.iter().enumerate() {
            state
                .apply_record(n as u64 + 1, &x.to_message().encode())
                .unwrap();
        }
        state
    };
    let state = fold(&journal);
    let through_snapshot = State::decode(&state.encode()).unwrap();
    assert_eq!(through_snapshot, state, "the wait survives a snapshot");
    for st in [&state, &through_snapshot] {
        let mut b = stocked(config(), clock.clone());
        b.restore(st, &mut |_| {}).unwrap();
        assert_eq!(
            b.front.awaiting_history(),
            2,
            "ETHUSDT and SOLUSDT still wait"
        );
        let eth = sym(&b, "ETHUSDT");
        let (o, ev) = outcome(&mut b, plan(7, eth));
        assert!(
            matches!(
                o,
                Outcome::Blocked(Block::P33Denied(P33Reason::Reconciling, _))
            ),
            "{o:?}"
        );
        assert!(intents(&ev).is_empty());
        // Plan 1's re-delivery is a duplicate: its order was recovered from the history.
        let (o, _) = outcome(&mut b, plan(1, btc));
        assert!(o.is_duplicate(), "{o:?}");
    }

    // The rest arrives after the restart: nothing is waited for any more.
    let mut b = stocked(config(), clock.clone());
    let mut after = journal.clone();
    after.push(Event::Started {
        history: false,
        at_ms: now_ms,
        since_ms: 0,
    });
    b.restore(&fold(&after), &mut |x| after.push(x)).unwrap();
    for name in ["ETHUSDT", "SOLUSDT"] {
        let s = sym(&b, name);
        after.extend(feed(&mut b, history(s, now_ms - horizon, 0)));
    }
    assert_eq!(b.front.awaiting_history(), 0);
    assert_eq!(
        fold(&after).history_wait,
        None,
        "the wait is over once all arrived"
    );
    // A snapshot written before the history trailer existed reads as waiting for nothing.
    let mut before = state.clone();
    before.history_wait = None;
    let mut bytes = before.encode();
    assert_eq!(bytes.pop(), Some(0), "the trailer's last byte: no wait");
    assert_eq!(State::decode(&bytes).unwrap(), before);
}
