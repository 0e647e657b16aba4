//! Failover as the daemon sees it, with a real `quantum run` and the test as the lease holder
//! (it writes the lease segment the Redis bridge writes in production): a standby refuses
//! plans, the host that takes the lead asks the exchange adapter for the order history on
//! `orders` and journals the lead, a restart under the same lease does not lead again, and a
//! lost lease closes plan intake.

mod common;

use common::{read_n, wait_for, Instance};
use quantum_core::Event;
use quantum_ipc::lease::{boot_ns, settings, Lease, LeaseRole, LeaseWriter};
use quantum_ipc::wire::Message;

const FAILOVER: [(&str, &str); 1] = [("QUANTUM_FAILOVER_ENABLED", "true")];

fn lease(role: LeaseRole, epoch: u64) -> Lease {
    let now = boot_ns();
    Lease {
        role,
        epoch,
        deadline_ns: now + 600_000_000_000,
        trade_after_ns: now,
        acquired_ns: now,
        renewed_ns: now,
        ttl_ms: 3000,
        recv_window_ms: 1000,
        host: "host-a".into(),
        other: String::new(),
        takeover_ms: 0,
        updated_ns: now,
    }
}

const PLAN: &str = r#"{"plan_id":"f1a8d7f48713d5cf","symbol":"BTCUSDT","decision":"EXECUTE","action":"PARTIAL_75","kill_score":"0.539"}"#;

#[test]
fn a_standby_refuses_plans_and_a_new_leader_asks_for_the_history_once() {
    let mut inst = Instance::new("failover");
    let lw = LeaseWriter::create(&inst.name).unwrap();
    lw.publish(&lease(LeaseRole::Standby, 0));
    inst.start_daemon_fed_by_hand(&[], &FAILOVER);
    let c = inst.counters();
    assert_eq!(c.get(settings::ENABLED), Some(1));
    assert_eq!(c.get(settings::TTL_MS), Some(3000));
    assert_eq!(c.get(settings::RECV_WINDOW_MS), Some(1000));

    // Standby: a plan is refused `standby`, nothing is decided.
    let (ok, err) = inst.inject_lines(&format!("{PLAN}\n"));
    assert!(!ok, "a standby applied a plan: {err}");
    assert!(err.contains("standby"), "{err}");
    assert_eq!(inst.counter("refused.standby"), 1);
    assert_eq!(inst.counter("results"), 0);

    // The lead: the engine requires the history and says so on `orders` and `results`.
    let mut orders = inst.consumer("orders");
    lw.publish(&lease(LeaseRole::Leader, 7));
    let got = read_n(&mut orders, 1, 10);
    match &got[0] {
        Message::Leading(l) => assert_eq!(l.epoch, 7),
        other => panic!("expected the history request, got {other:?}"),
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut leading = 0;
    let mut ev = inst.events();
    while let Some(e) = ev.try_next() {
        if matches!(e, Event::Leading { epoch: 7, .. }) {
            leading += 1;
        }
    }
    assert_eq!(leading, 1, "one Leading event");
    wait_for(5, "failover.role 1", || inst.counter("failover.role") == 1);
    assert_eq!(inst.counter("failover.epoch"), 7);
    // A plan now is decided (reconciling until the history comes: denied, but answered).
    inst.inject_ok(&format!(
        "{}\n",
        PLAN.replace("f1a8d7f48713d5cf", "0000000000000002")
    ));
    wait_for(5, "a result", || inst.counter("results") == 1);
    drop(orders);

    // A restart under the same lease: no second lead (the journal says epoch 7 was taken).
    let pid = inst.children[0].id();
    common::signal(pid, "-KILL");
    let _ = inst.children[0].wait();
    inst.start_daemon_fed_by_hand(&[], &FAILOVER);
    assert_eq!(inst.counter("failover.epoch"), 7);
    wait_for(5, "failover.role 1", || inst.counter("failover.role") == 1);
    let mut ev = inst.events();
    std::thread::sleep(std::time::Duration::from_millis(300));
    while let Some(e) = ev.try_next() {
        assert!(
            !matches!(e, Event::Leading { .. }),
            "led again under the same epoch: {e:?}"
        );
    }

    // The lease lost: plans are refused again.
    lw.publish(&Lease {
        deadline_ns: boot_ns(),
        ..lease(LeaseRole::Leader, 7)
    });
    wait_for(5, "failover.role 0", || inst.counter("failover.role") == 0);
    let (ok, err) = inst.inject_lines(&format!(
        "{}\n",
        PLAN.replace("f1a8d7f48713d5cf", "0000000000000003")
    ));
    assert!(!ok && err.contains("standby"), "{err}");
}
