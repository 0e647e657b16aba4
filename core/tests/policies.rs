//! Table-driven tests of every governor policy and every P3.3 reason.

use std::sync::Arc;

use quantum_core::fixed::{Price, Qty, Score};
use quantum_core::governor::{
    GovMode, GovReason, Governor, GovernorConfig, GovernorState, TradingState,
};
use quantum_core::ledger::Ledger;
use quantum_core::p33::{P33Config, P33Reason, P33};
use quantum_core::types::{Action, Decision, Plan, PlanId, Side, SymbolId};
use quantum_core::SymbolSpec;

const S: SymbolId = SymbolId(0);
const MS: u64 = 1_000_000;

fn q(s: &str) -> Qty {
    s.parse().unwrap()
}

fn ledger() -> Arc<Ledger> {
    let specs: Vec<_> = SymbolSpec::defaults()
        .iter()
        .map(|s| (s.tolerance, s.filters))
        .collect();
    Arc::new(Ledger::new(&specs))
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

struct GovCase {
    name: &'static str,
    cfg: fn(&mut GovernorConfig),
    setup: fn(&GovernorState, &Governor),
    plan: Plan,
    now_ms: u64,
    want: Option<GovReason>,
}

#[test]
fn every_governor_policy() {
    let none = |_: &mut GovernorConfig| {};
    let nothing = |_: &GovernorState, _: &Governor| {};
    let cases = [
        GovCase {
            name: "testnet approves",
            cfg: |c| c.mode = GovMode::Testnet,
            setup: |s, _| s.set_kill_switch(true),
            plan: exit_plan(),
            now_ms: 0,
            want: None,
        },
        GovCase {
            name: "production approves a plain exit",
            cfg: none,
            setup: nothing,
            plan: exit_plan(),
            now_ms: 0,
            want: None,
        },
        GovCase {
            name: "global kill switch",
            cfg: none,
            setup: |s, _| s.set_kill_switch(true),
            plan: exit_plan(),
            now_ms: 0,
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
            want: None,
        },
        GovCase {
            name: "halted stops exits",
            cfg: none,
            setup: |s, _| s.set_trading_state(TradingState::Halted),
            plan: exit_plan(),
            now_ms: 0,
            want: Some(GovReason::TradingHalted),
        },
        GovCase {
            name: "reducing lets exits through",
            cfg: none,
            setup: |s, _| s.set_trading_state(TradingState::Reducing),
            plan: exit_plan(),
            now_ms: 0,
            want: None,
        },
        GovCase {
            name: "reducing stops opening",
            cfg: none,
            setup: |s, _| s.set_trading_state(TradingState::Reducing),
            plan: opening_plan("0.01"),
            now_ms: 0,
            want: Some(GovReason::TradingReducing),
        },
        GovCase {
            name: "kill score below min",
            cfg: |c| c.min_kill_score = Some(Score::from_units(60_000_000)),
            setup: nothing,
            plan: exit_plan(),
            now_ms: 0,
            want: Some(GovReason::KillScoreBelowMin),
        },
        GovCase {
            name: "kill score at min",
            cfg: |c| c.min_kill_score = Some(Score::from_units(50_000_000)),
            setup: nothing,
            plan: exit_plan(),
            now_ms: 0,
            want: None,
        },
        GovCase {
            name: "cooldown after an execution",
            cfg: |c| c.cooldown_ms = 500,
            setup: |_, g| g.record(&exit_plan(), q("0.01"), 100 * MS),
            plan: exit_plan(),
            now_ms: 599,
            want: Some(GovReason::Cooldown),
        },
        GovCase {
            name: "cooldown over",
            cfg: |c| c.cooldown_ms = 500,
            setup: |_, g| g.record(&exit_plan(), q("0.01"), 100 * MS),
            plan: exit_plan(),
            now_ms: 600,
            want: None,
        },
        GovCase {
            name: "rate limit reached",
            cfg: |c| {
                c.rate_limit = 3;
                c.rate_window_ms = 1_000
            },
            setup: |_, g| {
                for t in [10, 20, 30] {
                    g.record(&exit_plan(), q("0.01"), t * MS)
                }
            },
            plan: exit_plan(),
            now_ms: 1_009,
            want: Some(GovReason::RateLimited),
        },
        GovCase {
            name: "rate window moved on",
            cfg: |c| {
                c.rate_limit = 3;
                c.rate_window_ms = 1_000
            },
            setup: |_, g| {
                for t in [10, 20, 30] {
                    g.record(&exit_plan(), q("0.01"), t * MS)
                }
            },
            plan: exit_plan(),
            now_ms: 1_010,
            want: None,
        },
        GovCase {
            name: "max notional per order stops opening",
            cfg: |c| c.max_notional_order = Some(Price::from_int(1_000)),
            setup: nothing,
            plan: opening_plan("0.02"),
            now_ms: 0,
            want: Some(GovReason::MaxNotionalOrder),
        },
        GovCase {
            name: "max notional per order never stops an exit",
            cfg: |c| c.max_notional_order = Some(Price::from_int(1)),
            setup: nothing,
            plan: exit_plan(),
            now_ms: 0,
            want: None,
        },
        GovCase {
            name: "max notional per day stops opening",
            cfg: |c| c.max_notional_day = Some(Price::from_int(3_000)),
            setup: |_, g| g.record(&opening_plan("0.02"), q("0.02"), MS),
            plan: opening_plan("0.02"),
            now_ms: 2,
            want: Some(GovReason::MaxNotionalDay),
        },
        GovCase {
            name: "max notional per day never stops an exit",
            cfg: |c| c.max_notional_day = Some(Price::from_int(1)),
            setup: |_, g| g.record(&opening_plan("1"), q("1"), MS),
            plan: exit_plan(),
            now_ms: 2,
            want: None,
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
            want: Some(GovReason::UnknownSymbol),
        },
    ];
    for c in cases {
        let mut cfg = GovernorConfig {
            mode: GovMode::Production,
            ..GovernorConfig::default()
        };
        (c.cfg)(&mut cfg);
        let led = ledger();
        led.set_exchange(S, q("0.062"), Price::from_int(100_000), 1);
        let state = Arc::new(GovernorState::new(3));
        let g = Governor::new(cfg, state.clone(), led);
        (c.setup)(&state, &g);
        let p = g.evaluate(&c.plan, c.now_ms * MS);
        assert_eq!(p.allow, c.want.is_none(), "{}", c.name);
        assert_eq!(p.reason, c.want.map_or(0, |r| r as u16), "{}", c.name);
        assert_eq!(
            p.deadline_ns,
            c.now_ms * MS + 15_000 * MS,
            "{}: TTL 15 s",
            c.name
        );
    }
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
        let led = ledger();
        if let Some((amt, at_ms)) = case.exchange {
            led.set_exchange(S, q(amt), Price::from_int(100_000), at_ms * MS);
        }
        led.set_ledger(S, q(case.ledger));
        let p33 = P33::new(P33Config::default(), led);
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
                assert_eq!(P33Reason::from_code(got.reason), r, "{}", case.name);
            }
        }
    }
}

#[test]
fn mismatch_carries_its_context() {
    let led = ledger();
    led.set_exchange(S, q("0.062"), Price::ZERO, 1);
    led.set_ledger(S, q("0.002"));
    let got = P33::new(P33Config::default(), led).evaluate(&exit_plan(), 2);
    assert_eq!(got.context.exchange, q("0.062"));
    assert_eq!(got.context.ledger, q("0.002"));
    assert_eq!(got.context.diff(), q("0.06"));
    assert_eq!(got.context.tolerance, q("0.001"));
}
