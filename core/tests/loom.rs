//! Loom models of the permit table's protocol.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p quantum-core --test loom --release`.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use quantum_core::fixed::Qty;
use quantum_core::permit::{
    Close, Consume, GovPermit, Issue, P33Context, P33Permit, PermitTable, SlotRef,
};
use quantum_core::types::{PlanId, Side};

fn gov(allow: bool, reason: u16) -> GovPermit {
    GovPermit {
        allow,
        reason,
        deadline_ns: 1_000,
    }
}

fn p33(allow: bool, qty: i64) -> P33Permit {
    P33Permit {
        allow,
        reason: if allow { 0 } else { 3 },
        deadline_ns: 1_000,
        safe_qty: Qty::from_units(if allow { qty } else { 0 }),
        side: allow.then_some(Side::Sell),
        context: P33Context::default(),
    }
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

fn opened(cap: usize) -> (Arc<PermitTable>, SlotRef) {
    let t = Arc::new(PermitTable::new(cap));
    let r = t.open(0, PlanId(7)).unwrap();
    (t, r)
}

/// issue ‖ issue ‖ consume: a consumer never wins with one permit, and when it wins it reads
/// exactly the quantity P3.3 published.
#[test]
fn issue_issue_consume_never_consumes_with_one_permit() {
    for p33_allows in [true, false] {
        model(move || {
            let (t, r) = opened(1);
            let t1 = t.clone();
            let g = thread::spawn(move || t1.issue_gov(r, gov(true, 0)));
            let t2 = t.clone();
            let p = thread::spawn(move || t2.issue_p33(r, p33(p33_allows, 42)));
            let seen = t.try_consume(r, 0);
            assert_eq!(g.join().unwrap(), Issue::Issued);
            assert_eq!(p.join().unwrap(), Issue::Issued);
            match seen {
                Consume::Consumed { safe_qty, side } => {
                    assert!(p33_allows, "consumed with a denying P3.3 permit");
                    assert_eq!(safe_qty, Qty::from_units(42));
                    assert_eq!(side, Side::Sell);
                }
                Consume::NotReady { .. } => {}
                Consume::P33Denied { reason, .. } => {
                    assert!(!p33_allows);
                    assert_eq!(reason, 3);
                }
                other => panic!("unexpected {other:?}"),
            }
        });
    }
}

/// Two consumers racing each other and the issuers: at most one ever wins, and once both
/// permits allow, exactly one consumption happens in total.
#[test]
fn two_consumers_never_both_win() {
    model(|| {
        let (t, r) = opened(1);
        let t1 = t.clone();
        let issuer = thread::spawn(move || {
            t1.issue_gov(r, gov(true, 0));
            t1.issue_p33(r, p33(true, 5));
        });
        let t2 = t.clone();
        let a = thread::spawn(move || t2.try_consume(r, 0));
        let b = t.try_consume(r, 0);
        issuer.join().unwrap();
        let a = a.join().unwrap();
        let last = t.try_consume(r, 0);
        let wins = [a, b, last]
            .iter()
            .filter(|c| matches!(c, Consume::Consumed { .. }))
            .count();
        assert_eq!(wins, 1, "a={a:?} b={b:?} last={last:?}");
    });
}

/// Expiry (apply closing the slot) against a consumer: exactly one of them wins.
#[test]
fn expiry_vs_consume_exactly_one_wins() {
    model(|| {
        let (t, r) = opened(1);
        t.issue_gov(r, gov(true, 0));
        t.issue_p33(r, p33(true, 9));
        let t1 = t.clone();
        let c = thread::spawn(move || t1.try_consume(r, 0));
        let closed = t.close(r);
        let consumed = c.join().unwrap();
        match (consumed, closed) {
            (Consume::Consumed { .. }, Close::AlreadyConsumed) => {}
            (Consume::Closed, Close::Closed) => {}
            other => panic!("both or neither won: {other:?}"),
        }
    });
}

/// Racing issuers of one permit: the first write wins, whole: the reason that can be read is the
/// winner's, and the loser changed nothing.
#[test]
fn racing_issuers_first_write_wins() {
    model(|| {
        let (t, r) = opened(1);
        t.issue_p33(r, p33(true, 1));
        let t1 = t.clone();
        let deny = thread::spawn(move || t1.issue_gov(r, gov(false, 7)));
        let allow = t.issue_gov(r, gov(true, 0));
        let deny = deny.join().unwrap();
        let after = t.try_consume(r, 0);
        match (allow, deny) {
            (Issue::Issued, Issue::AlreadyIssued) => {
                assert!(matches!(after, Consume::Consumed { .. }), "{after:?}")
            }
            (Issue::AlreadyIssued, Issue::Issued) => {
                assert_eq!(after, Consume::GovDenied { reason: 7 })
            }
            other => panic!("not exactly one issuer won: {other:?}"),
        }
    });
}

/// A late issuer holding a recycled slot's old generation never lands on the new plan, and the
/// new plan's fields are the ones it reads.
#[test]
fn reopen_vs_late_issuer() {
    model(|| {
        let (t, old) = opened(1);
        assert_eq!(t.close(old), Close::Closed);
        let t1 = t.clone();
        let late = thread::spawn(move || t1.issue_p33(old, p33(true, 999)));
        let new = t.open(1, PlanId(8)).unwrap();
        let late = late.join().unwrap();
        assert!(matches!(late, Issue::Stale | Issue::Closed), "{late:?}");
        t.issue_gov(new, gov(true, 0));
        t.issue_p33(new, p33(true, 11));
        assert_eq!(
            t.try_consume(new, 0),
            Consume::Consumed {
                safe_qty: Qty::from_units(11),
                side: Side::Sell
            }
        );
    });
}
