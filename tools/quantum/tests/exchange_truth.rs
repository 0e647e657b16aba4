//! `quantum run` when its memory cannot be trusted, and the plan age, with real processes: a
//! daemon with an empty journal trades nothing until the exchange's history of our orders has
//! arrived (here from `ctl inject`, as the Binance bridge sends it), and then remembers every
//! plan the history holds; a plan older than the maximum age is blocked `plan_stale`; a dedupe
//! horizon shorter than the maximum age is refused at start.

mod common;

use common::Instance;
use quantum_core::p33::P33Reason;
use quantum_core::result::Block;
use quantum_core::{Outcome, PlanId};
use quantum_ipc::liveness::unix_ms;

const POSITION: &str = r#"{"cmd":"position_mode","hedge":false}
{"cmd":"position","symbol":"BTCUSDT","amount":"0.062","mark":"104000"}
{"cmd":"set_ledger","symbol":"BTCUSDT","amount":"0.062"}
"#;

fn plan(id: &str, extra: &str) -> String {
    format!(
        "{{\"plan_id\":\"{id}\",\"symbol\":\"BTCUSDT\",\"decision\":\"EXECUTE\",\"action\":\"PARTIAL_25\"{extra}}}\n"
    )
}

#[test]
fn an_empty_journal_trades_only_after_the_exchange_history() {
    let mut inst = Instance::new("xtruth");
    inst.start_daemon(&[], &[]);
    common::wait_for(10, "the start to say why it waits", || {
        inst.log_has("recovering from the exchange: the journal holds no event")
    });
    let mut events = inst.events();
    inst.inject_ok(POSITION);
    inst.inject_ok(&plan("00000000000000a1", ""));
    let r = events.results(1, 30)[0];
    assert!(
        matches!(
            r.outcome,
            Outcome::Blocked(Block::P33Denied(P33Reason::Reconciling, _))
        ),
        "{r:?}"
    );
    // The history, as the bridge sends it: one order of ours, filled, then the end.
    let now = unix_ms();
    let since = now - 25 * 3_600_000;
    let ctl = format!(
        "{{\"cmd\":\"order_history\",\"symbol\":\"BTCUSDT\",\"since_ms\":{},\"orders\":0}}\n",
        now - 3_600_000
    );
    // Too short: refused with its reason, and nothing trades yet.
    let (ok, err) = inst.inject_lines(&ctl);
    assert!(ok || err.contains("history_too_short"), "{err}");
    inst.inject_ok(&plan("00000000000000a2", ""));
    let r = events.results(1, 30)[0];
    assert!(
        matches!(
            r.outcome,
            Outcome::Blocked(Block::P33Denied(P33Reason::Reconciling, _))
        ),
        "{r:?}"
    );
    inst.inject_ok(&format!(
        "{{\"cmd\":\"order_history\",\"symbol\":\"BTCUSDT\",\"since_ms\":{since},\"orders\":0}}\n"
    ));
    inst.inject_ok(&plan("00000000000000a3", ""));
    let r = events.results(1, 30)[0];
    assert_eq!(r.plan, PlanId(0xa3));
    assert!(matches!(r.outcome, Outcome::Executed { .. }), "{r:?}");
}

#[test]
fn a_stale_plan_is_blocked_plan_stale_and_never_ordered() {
    let mut inst = Instance::new("stale");
    inst.start_daemon_fed_by_hand(&[], &[]);
    let mut events = inst.events();
    let mut orders = inst.consumer("orders");
    inst.inject_ok(POSITION);
    let two_days_ago = unix_ms() - 2 * 86_400_000;
    inst.inject_ok(&plan(
        "00000000000000b1",
        &format!(",\"timestamp\":{two_days_ago}"),
    ));
    inst.inject_ok(&plan("00000000000000b2", ",\"timestamp\":1"));
    let rs = events.results(2, 30);
    for r in &rs {
        assert_eq!(r.outcome, Outcome::Blocked(Block::Stale), "{r:?}");
    }
    assert!(inst.log_has("[PERMIT_WAIT] BLOCK plan=00000000000000b1 reason=plan_stale"));
    assert_eq!(inst.counter("deny.plan_stale"), 2);
    // A fresh plan with its timestamp executes; neither stale one left an order.
    inst.inject_ok(&plan(
        "00000000000000b3",
        &format!(",\"timestamp\":{}", unix_ms()),
    ));
    let r = events.results(1, 30)[0];
    assert!(matches!(r.outcome, Outcome::Executed { .. }), "{r:?}");
    let intents = common::read_n(&mut orders, 1, 10);
    assert_eq!(intents.len(), 1);
    assert!(
        format!("{:?}", intents[0]).contains("plan_id: 179"),
        "{intents:?}"
    );
}

#[test]
fn a_dedupe_horizon_shorter_than_the_plan_age_is_refused_at_start() {
    let inst = Instance::new("horizon");
    let out = inst
        .command(
            &["run", "--instance", &inst.name],
            &[
                ("QUANTUM_ENGINE_DEDUPE_HORIZON_MS", "3000"),
                ("QUANTUM_ENGINE_MAX_PLAN_AGE_MS", "60000"),
            ],
        )
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("dedupe_horizon_ms 3000 is shorter than max_plan_age_ms (60000)"),
        "{err}"
    );
}
