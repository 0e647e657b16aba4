//! Shared helpers for the core's integration tests: stocked engines, feeding inputs, picking
//! results and intents out of the events.
#![allow(dead_code)]

use quantum_core::event::Event;
use quantum_core::orders::{Failure, OrderInput, Report};
use quantum_core::{
    Command, Engine, EngineConfig, Input, OrderIntent, Plan, PlanResult, Price, Qty, SymbolId,
};
use quantum_ipc::codes::{FailKind, OrderStatus, ReportSource};

/// Ring index used by tests for inputs (any value; refusals echo it).
pub const RING: u8 = 1;

pub fn q(s: &str) -> Qty {
    s.parse().unwrap()
}

pub fn p(s: &str) -> Price {
    s.parse().unwrap()
}

pub fn sym(e: &Engine, name: &str) -> SymbolId {
    e.symbols().id(name).unwrap()
}

/// Applies a command; returns its events.
pub fn cmd(e: &mut Engine, c: Command) -> Vec<Event> {
    let mut out = Vec::new();
    e.handle(Input::Command(c), RING, &mut |ev| out.push(ev))
        .unwrap();
    out
}

/// Sets both the exchange position (mark 100) and the ledger of `name` to `amount`, as the
/// exchange bridge tells them, after the account's mode (one-way).
pub fn stock(e: &mut Engine, name: &str, amount: &str) {
    one_way(e);
    let s = sym(e, name);
    cmd(
        e,
        Command::Position {
            symbol: s,
            amount: q(amount),
            mark: p("100"),
        },
    );
    cmd(
        e,
        Command::SetLedger {
            symbol: s,
            amount: q(amount),
        },
    );
}

/// The exchange says the account is in one-way mode (what the Binance bridge tells first at
/// every start; until then nothing trades).
pub fn one_way(e: &mut Engine) {
    cmd(e, Command::AccountMode { hedge: false });
}

/// An engine with BTCUSDT 0.062, ETHUSDT 2.5 and SOLUSDT -120 on both sides, in a one-way
/// account.
pub fn stocked(cfg: EngineConfig, clock: quantum_core::Clock) -> Engine {
    let mut e = Engine::new(cfg, clock).unwrap();
    stock(&mut e, "BTCUSDT", "0.062");
    stock(&mut e, "ETHUSDT", "2.5");
    stock(&mut e, "SOLUSDT", "-120");
    e
}

/// Runs one plan through the whole chain; returns its events.
pub fn run(e: &mut Engine, plan: Plan) -> Vec<Event> {
    let mut out = Vec::new();
    e.process_plan(plan, &mut |ev| out.push(ev)).unwrap();
    out
}

/// The plan results among `events`.
pub fn results(events: &[Event]) -> Vec<PlanResult> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::PlanResult(r) => Some(*r),
            _ => None,
        })
        .collect()
}

/// The one result among `events`.
pub fn result(events: &[Event]) -> PlanResult {
    let r = results(events);
    assert_eq!(r.len(), 1, "one result expected in {events:?}");
    r[0]
}

/// The order intents among `events`.
pub fn intents(events: &[Event]) -> Vec<OrderIntent> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::OrderIntent(i) => Some(*i),
            _ => None,
        })
        .collect()
}

/// Feeds what an adapter reports; returns the events.
pub fn order(e: &mut Engine, input: OrderInput) -> Vec<Event> {
    let mut out = Vec::new();
    e.handle(Input::Order(input), RING, &mut |ev| out.push(ev))
        .unwrap();
    out
}

/// A report of `intent` with `status` and cumulative `cum`.
pub fn report(intent: &OrderIntent, status: OrderStatus, cum: &str) -> OrderInput {
    OrderInput::Report(Report {
        plan: intent.plan,
        symbol: intent.symbol,
        side: intent.side,
        status,
        cum_qty: q(cum),
        price: p("100"),
        order_id: 7,
        time_ms: 1,
        orig_qty: intent.qty,
        source: ReportSource::Answer,
    })
}

/// A failure of `intent`.
pub fn failed(intent: &OrderIntent, kind: FailKind, reason: u16) -> OrderInput {
    OrderInput::Failed(Failure {
        plan: intent.plan,
        symbol: intent.symbol,
        kind,
        reason,
        exchange_code: 0,
        at_ms: 1,
    })
}

/// The book's in-flight plus pending quantity of `name`.
pub fn committed(e: &Engine, name: &str) -> Qty {
    e.shared().book.view(sym(e, name)).unwrap().committed()
}

/// The ledger of `name`.
pub fn ledger(e: &Engine, name: &str) -> Qty {
    e.shared().book.view(sym(e, name)).unwrap().ledger
}
