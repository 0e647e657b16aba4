//! Table-driven tests of every governor policy (at issue and at consume) and every P3.3 reason.

use std::sync::Arc;

use quantum_core::book::{Book, BookWriter, Reservations};
use quantum_core::fixed::{Price, Qty, Score};
use quantum_core::governor::{
    GovMode, GovReason, Governor, GovernorConfig, GovernorState, Throttle, TradingState,
};
use quantum_core::p33::{P33Config, P33Reason, P33};
use quantum_core::types::{Action, Decision, Plan, PlanId, Side, SymbolId};
use quantum_core::{Clock, SymbolSpec};

const S: SymbolId = SymbolId(0);
const MS: u64 = 1_000_000;
const DAY_MS: u64 = 86_400_000;
/// Engine ms from the mock clock's origin to the next UTC midnight.
const MS_TO_NEXT_UTC_DAY: u64 = DAY_MS - quantum_core::clock::MOCK_WALL_ORIGIN_MS % DAY_MS;

/// The UTC day of the mock clock's origin.
fn mock_day() -> u64 {
    quantum_core::clock::MOCK_WALL_ORIGIN_MS / DAY_MS
}

fn q(s: &str) -> Qty {
    s.parse().unwrap()
}

fn book() -> (Arc<Book>, BookWriter, Reservations) {
    let specs: Vec<_> = SymbolSpec::defaults()
        .iter()
        .map(|s| (s.tolerance, s.filters))
        .collect();
    let (book, mut writer, reservations) = Book::new(&specs);
    // The exchange told the account's mode: one-way, as these symbols are.
    writer.set_account_mode(false);
    (book, writer, reservations)
}

fn exit_plan() -> Plan {
    let mut p = Plan::exit(PlanId(1), S, Decision::Execute, Action::Partial50);
    p.kill_score = Score::from_units(50_000_000);
    p
}

fn opening_plan(qty: &str) -> Plan {
    Plan {
        reduce_only: false,
        qty: q(qty),
        ..exit_plan()
    }
}

/// Where a policy is judged: when the governor issues its permit, or when apply consumes the
/// permits with the quantity really sent.
#[derive(Clone, Copy, Debug)]
enum At {
    Issue,
    Consume(&'static str),
}

struct GovCase {
    name: &'static str,
    cfg: fn(&mut GovernorConfig),
    setup: fn(&GovernorState, &Throttle),
    plan: Plan,
    now_ms: u64,
    at: At,
    want: Option<GovReason>,
}

/// An execution recorded at `ms` by the throttle (as apply does at consume).
fn executed(t: &Throttle, plan: &Plan, qty: &str, ms: u64) {
    t.admit(plan, q(qty), ms * MS).unwrap();
}

#[test]
fn every_governor_policy() {
    let none = |_: &mut GovernorConfig| {};
    let nothing = |_: &GovernorState, _: &Throttle| {};
    let cases = [
        GovCase {
            name: "testnet approves",
            cfg: |c| c.mode = GovMode::Testnet,
            setup: |s, _| s.set_kill_switch(true),
            plan: exit_plan(),
            now_ms: 0,
            at: At::Issue,
            want: None,
        },
        GovCase {
            name: "production approves a plain exit",
            cfg: none,
            setup: nothing,
            plan: exit_plan(),
            now_ms: 0,
            at: At::Issue,
            want: None,
        },
        GovCase {
            name: "global kill switch",
            cfg: none,
            setup: |s, _| s.set_kill_switch(true),
            plan: exit_plan(),
            now_ms: 0,
            at: At::Issue,
            want: Some(GovReason::KillSwitch),
        },
        GovCase {
            name: "symbol kill switch",
            cfg: none,
            setup: |s, _| {
                s.set_symbol_kill_switch(S, true);
            },
            plan: exit_plan(),
            now_ms: 0,
            at: At::Issue,
            want: Some(GovReason::SymbolKillSwitch),
        },
        GovCase {
            name: "other symbol's kill switch",
            cfg: none,
            setup: |s, _| {
                s.set_symbol_kill_switch(SymbolId(1), true);
            },
            plan: exit_plan(),
            now_ms: 0,
            at: At::Issue,
            want: None,
        },
        GovCase {
            name: "halted stops exits",
            cfg: none,
            setup: |s, _| s.set_trading_state(TradingState::Halted),
            plan: exit_plan(),
            now_ms: 0,
            at: At::Issue,
            want: Some(GovReason::TradingHalted),
        },
        GovCase {
            name: "reducing lets exits through",
            cfg: none,
            setup: |s, _| s.set_trading_state(TradingState::Reducing),
            plan: exit_plan(),
            now_ms: 0,
            at: At::Issue,
            want: None,
        },
        GovCase {
            name: "reducing stops opening",
            cfg: none,
            setup: |s, _| s.set_trading_state(TradingState::Reducing),
            plan: opening_plan("0.01"),
            now_ms: 0,
            at: At::Issue,
            want: Some(GovReason::TradingReducing),
        },
        GovCase {
            name: "kill score below min",
            cfg: |c| c.min_kill_score = Some(Score::from_units(60_000_000)),
            setup: nothing,
            plan: exit_plan(),
            now_ms: 0,
            at: At::Issue,
            want: Some(GovReason::KillScoreBelowMin),
        },
        GovCase {
            name: "kill score at min",
            cfg: |c| c.min_kill_score = Some(Score::from_units(50_000_000)),
            setup: nothing,
            plan: exit_plan(),
            now_ms: 0,
            at: At::Issue,
            want: None,
        },
        GovCase {
            name: "cooldown after an execution",
            cfg: |c| c.cooldown_ms = 500,
            setup: |_, t| executed(t, &exit_plan(), "0.01", 100),
            plan: exit_plan(),
            now_ms: 599,
            at: At::Issue,
            want: Some(GovReason::Cooldown),
        },
        GovCase {
            name: "cooldown over",
            cfg: |c| c.cooldown_ms = 500,
            setup: |_, t| executed(t, &exit_plan(), "0.01", 100),
            plan: exit_plan(),
            now_ms: 600,
            at: At::Issue,
            want: None,
        },
        GovCase {
            name: "rate limit reached",
            cfg: |c| {
                c.rate_limit = 3;
                c.rate_window_ms = 1_000
            },
            setup: |_, t| {
                for ms in [10, 20, 30] {
                    executed(t, &exit_plan(), "0.01", ms)
                }
            },
            plan: exit_plan(),
            now_ms: 1_009,
            at: At::Issue,
            want: Some(GovReason::RateLimited),
        },
        GovCase {
            name: "rate window moved on",
            cfg: |c| {
                c.rate_limit = 3;
                c.rate_window_ms = 1_000
            },
            setup: |_, t| {
                for ms in [10, 20, 30] {
                    executed(t, &exit_plan(), "0.01", ms)
                }
            },
            plan: exit_plan(),
            now_ms: 1_010,
            at: At::Issue,
            want: None,
        },
        GovCase {
            name: "max notional per order stops opening",
            cfg: |c| c.max_notional_order = Some(Price::from_int(1_000)),
            setup: nothing,
            plan: opening_plan("0.02"),
            now_ms: 0,
            at: At::Consume("0.02"),
            want: Some(GovReason::MaxNotionalOrder),
        },
        GovCase {
            name: "max notional per order admits exactly the cap",
            cfg: |c| c.max_notional_order = Some(Price::from_int(2_000)),
            setup: nothing,
            plan: opening_plan("0.02"),
            now_ms: 0,
            at: At::Consume("0.02"),
            want: None,
        },
        GovCase {
            name: "max notional per day admits exactly the cap",
            cfg: |c| c.max_notional_day = Some(Price::from_int(4_000)),
            setup: |_, t| executed(t, &opening_plan("0.02"), "0.02", 1),
            plan: opening_plan("0.02"),
            now_ms: 2,
            at: At::Consume("0.02"),
            want: None,
        },
        GovCase {
            name: "max notional per day: the last ms of the UTC day still counts the day",
            cfg: |c| c.max_notional_day = Some(Price::from_int(3_000)),
            setup: |_, t| executed(t, &opening_plan("0.02"), "0.02", 1),
            plan: opening_plan("0.02"),
            now_ms: MS_TO_NEXT_UTC_DAY - 1,
            at: At::Consume("0.02"),
            want: Some(GovReason::MaxNotionalDay),
        },
        GovCase {
            name: "max notional per day starts again with the next UTC day",
            cfg: |c| c.max_notional_day = Some(Price::from_int(3_000)),
            setup: |_, t| executed(t, &opening_plan("0.02"), "0.02", 1),
            plan: opening_plan("0.02"),
            now_ms: MS_TO_NEXT_UTC_DAY,
            at: At::Consume("0.02"),
            want: None,
        },
        GovCase {
            name: "rate limit counts the limit-th most recent execution, not the first",
            cfg: |c| {
                c.rate_limit = 3;
                c.rate_window_ms = 1_000
            },
            setup: |_, t| {
                for ms in [10, 410, 810, 1_210] {
                    executed(t, &exit_plan(), "0.01", ms)
                }
            },
            plan: exit_plan(),
            // The third most recent is at 410 ms: 999 ms ago.
            now_ms: 1_409,
            at: At::Issue,
            want: Some(GovReason::RateLimited),
        },
        GovCase {
            name: "rate limit after more executions than the history holds",
            cfg: |c| {
                c.rate_limit = 3;
                c.rate_window_ms = 1_000
            },
            setup: |_, t| {
                for ms in (1..=70).map(|i| i * 400) {
                    executed(t, &exit_plan(), "0.01", ms)
                }
            },
            plan: exit_plan(),
            // The third most recent of 70 (the history keeps 64) is at 27,200 ms.
            now_ms: 28_199,
            at: At::Issue,
            want: Some(GovReason::RateLimited),
        },
        GovCase {
            name: "rate limit from a restored history: window moved on",
            cfg: |c| {
                c.rate_limit = 3;
                c.rate_window_ms = 1_000
            },
            setup: |s, _| s.restore_history(S, &[10 * MS, 20 * MS, 30 * MS], mock_day(), 0),
            plan: exit_plan(),
            now_ms: 1_010,
            at: At::Issue,
            want: None,
        },
        GovCase {
            name: "rate limit from a restored history: inside the window",
            cfg: |c| {
                c.rate_limit = 3;
                c.rate_window_ms = 1_000
            },
            setup: |s, _| s.restore_history(S, &[10 * MS, 20 * MS, 30 * MS], mock_day(), 0),
            plan: exit_plan(),
            now_ms: 1_009,
            at: At::Issue,
            want: Some(GovReason::RateLimited),
        },
        GovCase {
            name: "a restored history longer than the history holds keeps the newest",
            cfg: |c| {
                c.rate_limit = 64;
                c.rate_window_ms = 1_000
            },
            setup: |s, _| {
                let times: Vec<u64> = (1..=100).map(|ms| ms * MS).collect();
                s.restore_history(S, &times, mock_day(), 0)
            },
            plan: exit_plan(),
            // The 64th most recent of 1..=100 ms is at 37 ms.
            now_ms: 1_036,
            at: At::Issue,
            want: Some(GovReason::RateLimited),
        },
        GovCase {
            name: "a restored history longer than the history holds: oldest kept is out",
            cfg: |c| {
                c.rate_limit = 64;
                c.rate_window_ms = 1_000
            },
            setup: |s, _| {
                let times: Vec<u64> = (1..=100).map(|ms| ms * MS).collect();
                s.restore_history(S, &times, mock_day(), 0)
            },
            plan: exit_plan(),
            now_ms: 1_037,
            at: At::Issue,
            want: None,
        },
        GovCase {
            name: "max notional per order never stops an exit",
            cfg: |c| c.max_notional_order = Some(Price::from_int(1)),
            setup: nothing,
            plan: exit_plan(),
            now_ms: 0,
            at: At::Consume("0.02"),
            want: None,
        },
        GovCase {
            name: "max notional per day stops opening",
            cfg: |c| c.max_notional_day = Some(Price::from_int(3_000)),
            setup: |_, t| executed(t, &opening_plan("0.02"), "0.02", 1),
            plan: opening_plan("0.02"),
            now_ms: 2,
            at: At::Consume("0.02"),
            want: Some(GovReason::MaxNotionalDay),
        },
        GovCase {
            name: "max notional per day never stops an exit",
            cfg: |c| c.max_notional_day = Some(Price::from_int(1)),
            // A whole day's cap used by an opening order of 1 BTC at 100,000.
            setup: |s, _| {
                let day = (quantum_core::clock::MOCK_WALL_ORIGIN_MS + 1) / DAY_MS;
                s.record_execution(S, MS, Price::from_int(100_000).units(), true, day)
            },
            plan: exit_plan(),
            now_ms: 2,
            at: At::Consume("1"),
            want: None,
        },
        GovCase {
            name: "the per-order cap judges the quantity sent, not the plan's (qty 0 here)",
            cfg: |c| c.max_notional_order = Some(Price::from_int(1)),
            setup: nothing,
            plan: opening_plan("0"),
            now_ms: 0,
            at: At::Consume("0.0025"),
            want: Some(GovReason::MaxNotionalOrder),
        },
        GovCase {
            name: "cooldown at consume, whatever the permit said",
            cfg: |c| c.cooldown_ms = 60_000,
            setup: |_, t| executed(t, &exit_plan(), "0.01", 100),
            plan: exit_plan(),
            now_ms: 200,
            at: At::Consume("0.01"),
            want: Some(GovReason::Cooldown),
        },
        GovCase {
            name: "rate limit at consume",
            cfg: |c| {
                c.rate_limit = 1;
                c.rate_window_ms = 1_000
            },
            setup: |_, t| executed(t, &exit_plan(), "0.01", 100),
            plan: exit_plan(),
            now_ms: 200,
            at: At::Consume("0.01"),
            want: Some(GovReason::RateLimited),
        },
        GovCase {
            name: "no mark price for an opening order's notional",
            cfg: |c| c.max_notional_order = Some(Price::from_int(1)),
            setup: nothing,
            plan: Plan {
                symbol: SymbolId(1),
                ..opening_plan("0.01")
            },
            now_ms: 0,
            at: At::Consume("0.01"),
            want: Some(GovReason::NoMarkPrice),
        },
        GovCase {
            name: "unknown symbol",
            cfg: none,
            setup: nothing,
            plan: Plan {
                symbol: SymbolId(77),
                ..exit_plan()
            },
            now_ms: 0,
            at: At::Issue,
            want: Some(GovReason::UnknownSymbol),
        },
    ];
    for c in cases {
        let mut cfg = GovernorConfig {
            mode: GovMode::Production,
            ..GovernorConfig::default()
        };
        (c.cfg)(&mut cfg);
        let (book, mut writer, _) = book();
        writer
            .set_exchange(S, q("0.062"), Price::from_int(100_000), 1)
            .unwrap()
            .unwrap();
        let state = Arc::new(GovernorState::new(3));
        let (clock, _mock) = Clock::mock();
        let throttle = Throttle::new(cfg.clone(), state.clone(), book, clock);
        let g = Governor::new(cfg, state.clone());
        (c.setup)(&state, &throttle);
        let now = c.now_ms * MS;
        match c.at {
            At::Issue => {
                let p = g.evaluate(&c.plan, now);
                assert_eq!(p.allow, c.want.is_none(), "{}", c.name);
                assert_eq!(p.reason, c.want, "{}", c.name);
                assert_eq!(p.issued_ns, now, "{}", c.name);
                assert_eq!(p.deadline_ns, now + 15_000 * MS, "{}: TTL 15 s", c.name);
            }
            At::Consume(qty) => {
                assert_eq!(
                    throttle.admit(&c.plan, q(qty), now).err(),
                    c.want,
                    "{}",
                    c.name
                );
            }
        }
    }
}

/// At consume a refused plan records nothing; an admitted one is what the next check sees.
#[test]
fn the_throttle_records_only_what_it_admits() {
    let cfg = GovernorConfig {
        mode: GovMode::Production,
        cooldown_ms: 1_000,
        ..GovernorConfig::default()
    };
    let (book, _, _) = book();
    let state = Arc::new(GovernorState::new(3));
    let (clock, _mock) = Clock::mock();
    let t = Throttle::new(cfg, state, book, clock);
    assert_eq!(t.admit(&exit_plan(), q("0.01"), 10 * MS), Ok(()));
    assert_eq!(
        t.admit(&exit_plan(), q("0.01"), 20 * MS),
        Err(GovReason::Cooldown)
    );
    // The refused one did not restart the cooldown: 1 s after the first, a plan passes.
    assert_eq!(t.admit(&exit_plan(), q("0.01"), 1_010 * MS), Ok(()));
}

#[test]
fn every_p33_reason() {
    struct Case {
        name: &'static str,
        exchange: Option<(&'static str, u64)>,
        ledger: &'static str,
        symbol: SymbolId,
        action: Action,
        now_ms: u64,
        want: Result<(&'static str, Side), P33Reason>,
    }
    let c = |name, exchange, ledger, action, now_ms, want| Case {
        name,
        exchange,
        ledger,
        symbol: S,
        action,
        now_ms,
        want,
    };
    let cases = [
        c(
            "seeds: mismatch",
            Some(("0.062", 1)),
            "0.002",
            Action::Partial75,
            1,
            Err(P33Reason::ReconcileRequiredQtyMismatch),
        ),
        c(
            "seeds: synced",
            Some(("0.062", 1)),
            "0.062",
            Action::Partial75,
            1,
            Ok(("0.046", Side::Sell)),
        ),
        c(
            "within tolerance",
            Some(("0.062", 1)),
            "0.061",
            Action::FullClose,
            1,
            Ok(("0.061", Side::Sell)),
        ),
        c(
            "just over tolerance",
            Some(("0.062", 1)),
            "0.06",
            Action::FullClose,
            1,
            Err(P33Reason::ReconcileRequiredQtyMismatch),
        ),
        c(
            "short closes with a buy",
            Some(("-0.5", 1)),
            "-0.5",
            Action::Partial25,
            1,
            Ok(("0.125", Side::Buy)),
        ),
        c(
            "no snapshot",
            None,
            "0.062",
            Action::Partial75,
            1,
            Err(P33Reason::ExchangeStateStale),
        ),
        c(
            "a snapshot exactly as old as allowed is fresh",
            Some(("0.062", 1)),
            "0.062",
            Action::Partial75,
            30_001,
            Ok(("0.046", Side::Sell)),
        ),
        c(
            "old snapshot",
            Some(("0.062", 1)),
            "0.062",
            Action::Partial75,
            30_002,
            Err(P33Reason::ExchangeStateStale),
        ),
        c(
            "flat",
            Some(("0", 1)),
            "0",
            Action::FullClose,
            1,
            Err(P33Reason::NoPosition),
        ),
        c(
            "below min",
            Some(("0.002", 1)),
            "0.002",
            Action::Partial25,
            1,
            Err(P33Reason::SafeQtyBelowMin),
        ),
        c(
            "capped at MARKET_LOT_SIZE max",
            Some(("500", 1)),
            "500",
            Action::FullClose,
            1,
            Ok(("120", Side::Sell)),
        ),
        Case {
            name: "reconciling after a start",
            ..c(
                "",
                Some(("0.062", 1)),
                "0.062",
                Action::Partial75,
                1,
                Err(P33Reason::Reconciling),
            )
        },
        Case {
            symbol: SymbolId(9),
            ..c(
                "unknown symbol",
                Some(("1", 1)),
                "1",
                Action::FullClose,
                1,
                Err(P33Reason::UnknownSymbol),
            )
        },
    ];
    for case in cases {
        let (_, mut led, reservations) = book();
        if let Some((amt, at_ms)) = case.exchange {
            led.set_exchange(S, q(amt), Price::from_int(100_000), at_ms * MS)
                .unwrap()
                .unwrap();
        }
        led.set_ledger(S, q(case.ledger)).unwrap().unwrap();
        if case.name.starts_with("reconciling") {
            led.set_reconciling(S, true).unwrap().unwrap();
        }
        let p33 = P33::new(P33Config::default(), reservations);
        let plan = Plan {
            symbol: case.symbol,
            ..Plan::exit(PlanId(2), S, Decision::Execute, case.action)
        };
        let got = p33.evaluate(&plan, case.now_ms * MS);
        match case.want {
            Ok((qty, side)) => {
                assert!(got.allow, "{}: {got:?}", case.name);
                assert_eq!(
                    (got.safe_qty, got.side),
                    (q(qty), Some(side)),
                    "{}",
                    case.name
                );
            }
            Err(r) => {
                assert!(!got.allow, "{}: {got:?}", case.name);
                assert_eq!(got.reason, Some(r), "{}", case.name);
            }
        }
    }
}

#[test]
fn mismatch_carries_its_context() {
    let (_, mut led, reservations) = book();
    led.set_exchange(S, q("0.062"), Price::ZERO, 1)
        .unwrap()
        .unwrap();
    led.set_ledger(S, q("0.002")).unwrap().unwrap();
    let got = P33::new(P33Config::default(), reservations).evaluate(&exit_plan(), 2);
    assert_eq!(got.context.exchange, q("0.062"));
    assert_eq!(got.context.ledger, q("0.002"));
    assert_eq!(got.context.diff(), q("0.06"));
    assert_eq!(got.context.tolerance, q("0.001"));
}

/// A `SetFilters` command moves P3.3's rounding: the same plan is sized on the new lot grid,
/// and a quantity below the new minimum is refused.
#[test]
fn new_filters_change_what_p33_allows() {
    let (_, mut led, reservations) = book();
    led.set_exchange(S, q("0.062"), Price::from_int(100_000), MS)
        .unwrap()
        .unwrap();
    led.set_ledger(S, q("0.062")).unwrap().unwrap();
    let p33 = P33::new(P33Config::default(), reservations);
    let plan = Plan::exit(PlanId(3), S, Decision::Execute, Action::Partial75);
    // 75% of 0.062 = 0.0465, on BTCUSDT's default 0.001 grid.
    assert_eq!(p33.evaluate(&plan, 2 * MS).safe_qty, q("0.046"));
    let lot = |step: &str, min: &str| quantum_core::book::LotFilter {
        min: q(min),
        max: q("1000"),
        step: q(step),
    };
    let filters = |step: &str, min: &str| quantum_core::book::Filters {
        lot: lot(step, min),
        market_lot: lot(step, min),
        min_notional: Price::from_int(100),
    };
    led.set_filters(S, filters("0.01", "0.01"))
        .unwrap()
        .unwrap();
    assert_eq!(p33.evaluate(&plan, 2 * MS).safe_qty, q("0.04"));
    led.set_filters(S, filters("0.1", "0.1")).unwrap().unwrap();
    let got = p33.evaluate(&plan, 2 * MS);
    assert!(!got.allow);
    assert_eq!(got.reason, Some(P33Reason::SafeQtyBelowMin));
    // An unknown symbol is not changed, and says so.
    assert!(led.set_filters(SymbolId(9), filters("1", "1")).is_none());
}
