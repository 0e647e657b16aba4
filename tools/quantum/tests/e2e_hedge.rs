//! Hedge-mode accounts end to end, as separate processes: `quantum sim binance --hedge-mode`
//! (a real HTTP/WebSocket server), `quantum run` with BTCUSDT configured in hedge mode,
//! `quantum bridge binance`, and `quantum ctl inject / tail / stats`. The LONG and SHORT
//! positions of one symbol are closed by separate plans, each order on its own side and never
//! larger than that side's position; P3.3 compares each side on its own; a symbol configured in
//! the other mode is refused with its reason; a symbol the exchange stops trading (SETTLING)
//! stops executing.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{sim_http as http, sim_url, wait_for, Instance};
use quantum_core::event::Event;
use quantum_core::p33::P33Reason;
use quantum_core::{Block, Outcome, PlanResult, Qty};
use serde_json::Value;

fn q(s: &str) -> Qty {
    s.parse()
        .unwrap_or_else(|_| panic!("{s:?} is not a quantity"))
}

/// A daemon configuration: BTCUSDT in `btc_mode`, ETHUSDT one-way.
fn config(btc_mode: &str) -> String {
    format!(
        r#"[[symbols]]
name = "BTCUSDT"
position_mode = "{btc_mode}"
tolerance = "0.001"
min_qty = "0.001"
max_qty = "1000"
step = "0.001"
min_notional = "100"

[[symbols]]
name = "ETHUSDT"
tolerance = "0.001"
min_qty = "0.001"
max_qty = "10000"
step = "0.001"
min_notional = "20"
"#
    )
}

struct Stack {
    inst: Instance,
    rest: String,
    _config: tempfile::NamedTempFile,
}

impl Stack {
    /// A simulator (`sim_args`), a daemon with `config`, and a Binance bridge attached to
    /// both.
    fn start(test: &str, sim_args: &[&str], config: &str) -> Stack {
        let mut inst = Instance::new(test);
        let mut args = vec!["sim", "binance", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(sim_args);
        let sim = inst.spawn(&args, Stdio::piped());
        let rest = sim_url(sim.stdout.take().expect("sim stdout"));
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), config).unwrap();
        inst.start_daemon(&["--config", file.path().to_str().unwrap()], &[]);
        inst.spawn_binance_bridge(&rest, &[]);
        Stack {
            inst,
            rest,
            _config: file,
        }
    }

    /// An amount gauge of the daemon (`ledger.BTCUSDT:LONG` ...).
    fn gauge(&self, label: &str) -> Qty {
        Qty::from_units(self.inst.counter(label) as i64)
    }

    fn wait_gauge(&self, label: &str, want: &str) {
        let want = q(want);
        let end = Instant::now() + Duration::from_secs(20);
        while self
            .inst
            .counters()
            .get(label)
            .map(|v| Qty::from_units(v as i64))
            != Some(want)
        {
            assert!(
                Instant::now() < end,
                "timed out waiting for {label} = {want} (it is {:?}); /sim/orders {:?}",
                self.inst.counters().get(label),
                self.sim_orders()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn inject(&self, lines: &str) {
        let (ok, err) = self.inst.inject_lines(lines);
        assert!(ok, "ctl inject failed: {err}");
    }

    fn sim_orders(&self) -> Vec<Value> {
        match http(&self.rest, "GET", "/sim/orders", None) {
            Value::Array(v) => v,
            v => panic!("/sim/orders: {v}"),
        }
    }

    /// The simulator's position of `symbol` on `side` (flat legs are left out of the list).
    fn sim_position(&self, symbol: &str, side: &str) -> Qty {
        let ps = http(&self.rest, "GET", "/sim/positions", None);
        ps.as_array()
            .unwrap_or_else(|| panic!("/sim/positions: {ps}"))
            .iter()
            .find(|p| p["symbol"] == symbol && p["positionSide"] == side)
            .map_or(Qty::ZERO, |p| {
                q(p["positionAmt"].as_str().expect("positionAmt"))
            })
    }
}

fn plan(id: &str, symbol: &str, side: Option<&str>, action: &str) -> String {
    let side = side.map_or(String::new(), |s| format!(r#","position_side":"{s}""#));
    format!(
        r#"{{"plan_id":"{id}","symbol":"{symbol}","decision":"EXECUTE","action":"{action}","kill_score":"0.5"{side}}}"#
    )
}

fn ledger(symbol: &str, side: &str, amount: &str) -> String {
    format!(
        r#"{{"cmd":"set_ledger","symbol":"{symbol}","position_side":"{side}","amount":"{amount}"}}"#
    )
}

/// ETHUSDT switched to `status` on the simulator; once the core has it, an ETHUSDT exit plan
/// `id`; its result.
fn status_then_plan(s: &Stack, events: &mut common::Events, status: &str, id: &str) -> PlanResult {
    let body = format!(r#"{{"symbol":"ETHUSDT","status":"{status}"}}"#);
    http(&s.rest, "POST", "/sim/symbol-status", Some(&body));
    wait_status(events, status);
    s.inject(&format!("{}\n", plan(id, "ETHUSDT", None, "PARTIAL_50")));
    events.results(1, 30)[0]
}

/// Waits (at most 90 s: the bridge's periodic read covers a lost stream) for the core's
/// `SymbolStatus` event with `status`.
fn wait_status(events: &mut common::Events, status: &str) {
    let end = Instant::now() + Duration::from_secs(90);
    loop {
        assert!(Instant::now() < end, "no SymbolStatus {status} event");
        if let Event::SymbolStatus { status: s, .. } = events.next(90) {
            if s.as_str() == status {
                return;
            }
        }
    }
}

fn p33_denied(r: &PlanResult) -> Option<P33Reason> {
    match r.outcome {
        Outcome::Blocked(Block::P33Denied(reason, _)) => Some(reason),
        _ => None,
    }
}

/// Every order the simulator holds names a hedge side, carries no reduceOnly, and was no larger
/// than that side's position when it was placed (`long`/`short`: the legs' sizes before any
/// order, decreased by each order in turn).
fn check_orders(orders: &[Value], mut long: Qty, mut short: Qty) {
    for o in orders {
        assert_ne!(o["reduceOnly"], true, "reduceOnly in hedge mode: {o}");
        let qty = q(o["qty"].as_str().expect("qty"));
        let left = match (o["positionSide"].as_str(), o["side"].as_str()) {
            (Some("LONG"), Some("SELL")) => &mut long,
            (Some("SHORT"), Some("BUY")) => &mut short,
            _ => panic!("an order that does not close a hedge side: {o}"),
        };
        assert!(
            qty <= *left,
            "an order larger than its side: {o} (left {left})"
        );
        *left = Qty::from_units(left.units() - qty.units());
    }
}

#[test]
fn long_and_short_of_one_symbol_close_by_separate_plans_each_on_its_side() {
    let s = Stack::start(
        "hedge-legs",
        &[
            "--hedge-mode",
            "--position",
            "BTCUSDT=0.200",
            "--position",
            "BTCUSDT=-0.100",
            "--mark",
            "BTCUSDT=104000",
            "--mark",
            "ETHUSDT=3000",
        ],
        &config("hedge"),
    );
    let mut events = s.inst.events();
    // The bridge told the account's mode and each leg's position.
    s.wait_gauge("exchange.BTCUSDT:LONG", "0.2");
    s.wait_gauge("exchange.BTCUSDT:SHORT", "-0.1");
    // The long side's ledger agrees, the short side's does not.
    s.inject(&format!(
        "{}\n{}\n{}\n{}\n",
        ledger("BTCUSDT", "LONG", "0.2"),
        ledger("BTCUSDT", "SHORT", "-0.15"),
        plan("1000000000000001", "BTCUSDT", Some("SHORT"), "FULL_CLOSE"),
        plan("1000000000000002", "BTCUSDT", Some("LONG"), "PARTIAL_75"),
    ));
    let rs = events.results(2, 30);
    assert_eq!(
        p33_denied(&rs[0]),
        Some(P33Reason::ReconcileRequiredQtyMismatch),
        "{rs:?}"
    );
    assert!(rs[1].executed(), "{rs:?}");
    // A plan that names no side, and a one-way symbol in a hedge-mode account.
    s.inject(&format!(
        "{}\n{}\n",
        plan("1000000000000003", "BTCUSDT", None, "FULL_CLOSE"),
        plan("1000000000000004", "ETHUSDT", None, "FULL_CLOSE"),
    ));
    let rs = events.results(2, 30);
    assert_eq!(p33_denied(&rs[0]), Some(P33Reason::PositionSideRequired));
    assert_eq!(p33_denied(&rs[1]), Some(P33Reason::PositionModeMismatch));
    wait_for(10, "the daemon's position-mode line", || {
        s.inst.log_has("position_mode_mismatch")
    });
    // Synced, the short side closes too, by its own plan.
    s.inject(&format!(
        "{}\n{}\n",
        ledger("BTCUSDT", "SHORT", "-0.1"),
        plan("1000000000000005", "BTCUSDT", Some("SHORT"), "FULL_CLOSE"),
    ));
    let rs = events.results(1, 30);
    assert!(rs[0].executed(), "{rs:?}");
    let mut orders = Vec::new();
    wait_for(20, "two orders on the simulator", || {
        orders = s.sim_orders();
        orders.len() >= 2
    });
    assert_eq!(orders.len(), 2, "{orders:?}");
    check_orders(&orders, q("0.2"), q("0.1"));
    // Each fill reached its own side's ledger: the ledger per side is the exchange's.
    s.wait_gauge("ledger.BTCUSDT:LONG", "0.05");
    s.wait_gauge("ledger.BTCUSDT:SHORT", "0");
    assert_eq!(s.sim_position("BTCUSDT", "LONG"), q("0.05"));
    assert_eq!(s.sim_position("BTCUSDT", "SHORT"), Qty::ZERO);
    s.wait_gauge("exchange.BTCUSDT:LONG", "0.05");
    assert_eq!(s.gauge("exchange.BTCUSDT:SHORT"), Qty::ZERO);
    // `ctl stats` shows each side on its own line and key.
    let st: Value = serde_json::from_str(&s.inst.ctl_stats(true)).expect("stats JSON");
    assert_eq!(st["amounts"]["ledger.BTCUSDT:LONG"], "0.05", "{st}");
    assert_eq!(st["amounts"]["ledger.BTCUSDT:SHORT"], "0", "{st}");
    let text = s.inst.ctl_stats(false);
    assert!(
        text.contains("book BTCUSDT:LONG") && text.contains("book BTCUSDT:SHORT"),
        "{text}"
    );
    // Nothing is ordered twice, nothing for the refused plans.
    let mut ids: Vec<&str> = orders
        .iter()
        .map(|o| o["clientOrderId"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 2);
    drop(events);
}

#[test]
fn a_one_way_configuration_against_a_hedge_account_is_refused_with_its_reason() {
    let s = Stack::start(
        "hedge-oneway",
        &[
            "--hedge-mode",
            "--position",
            "BTCUSDT=0.100",
            "--mark",
            "BTCUSDT=104000",
        ],
        &config("one_way"),
    );
    let mut events = s.inst.events();
    // The account's mode arrives from the bridge, then the symbol's (empty) history and its
    // position, which end its reconciling after the empty start.
    let (mut mode, mut reconciled) = (None, false);
    while mode.is_none() || !reconciled {
        match events.next(30) {
            Event::AccountMode { hedge, .. } => mode = Some(hedge),
            Event::Reconciling { on: false, .. } => reconciled = true,
            _ => {}
        }
    }
    assert_eq!(mode, Some(true));
    s.inject(&format!(
        "{}\n",
        plan("2000000000000001", "BTCUSDT", None, "FULL_CLOSE")
    ));
    let rs = events.results(1, 30);
    assert_eq!(p33_denied(&rs[0]), Some(P33Reason::PositionModeMismatch));
    wait_for(10, "the daemon's position-mode line", || {
        s.inst.log_has("position_mode_mismatch") && s.inst.log_has("BTCUSDT")
    });
    assert!(s.sim_orders().is_empty());
}

#[test]
fn a_symbol_switched_to_settling_stops_executing() {
    let s = Stack::start(
        "hedge-settling",
        &["--position", "ETHUSDT=2.000", "--mark", "ETHUSDT=3000"],
        &config("one_way"),
    );
    let mut events = s.inst.events();
    s.wait_gauge("exchange.ETHUSDT", "2");
    s.inject(r#"{"cmd":"set_ledger","symbol":"ETHUSDT","amount":"2"}"#);
    // The bridge tells the core (contract info stream, or its periodic exchangeInfo read).
    let r = status_then_plan(&s, &mut events, "SETTLING", "3000000000000001");
    assert_eq!(p33_denied(&r), Some(P33Reason::SymbolNotTrading));
    assert!(s.sim_orders().is_empty());
    // Trading again: the next plan executes.
    let r = status_then_plan(&s, &mut events, "TRADING", "3000000000000002");
    assert!(r.executed(), "{r:?}");
    wait_for(20, "one order", || s.sim_orders().len() == 1);
}
