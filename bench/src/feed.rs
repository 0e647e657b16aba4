//! Feeding an engine for the journal examples (`journal`, `audit_journal`): one plan through
//! the chain, then the exchange's reject of its order, every event handed on in order.

use quantum_core::event::Event;
use quantum_core::orders::{Failure, OrderInput};
use quantum_core::{Engine, Input, Plan};
use quantum_ipc::codes::FailKind;

/// Runs `plan` through the chain on the calling thread and, when it made an order, rejects
/// that order at wall-clock `at_ms`; `sink` gets every event in order.
pub fn plan_then_reject(e: &mut Engine, plan: Plan, at_ms: u64, sink: &mut impl FnMut(Event)) {
    let mut intent = None;
    let _ = e.process_plan(plan, &mut |ev| {
        if let Event::OrderIntent(o) = ev {
            intent = Some(o);
        }
        sink(ev);
    });
    if let Some(o) = intent {
        let reject = OrderInput::Failed(Failure {
            plan: o.plan,
            symbol: o.symbol,
            kind: FailKind::Rejected,
            reason: 0,
            exchange_code: 0,
            at_ms,
        });
        let _ = e.handle(Input::Order(reject), 0, sink);
    }
}
