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
use quantum_core::permit::{SlotView, Status};
use quantum_core::types::{PlanId, Side};
use quantum_ipc::codes::{GovReason, P33Reason};

fn gov(allow: bool, reason: Option<GovReason>) -> GovPermit {
    GovPermit {
        allow,
        reason,
        issued_ns: 0,
        deadline_ns: 1_000,
    }
}

fn p33(allow: bool, qty: i64) -> P33Permit {
    P33Permit {
        allow,
        reason: (!allow).then_some(P33Reason::NoPosition),
        issued_ns: 0,
        deadline_ns: 1_000,
        safe_qty: Qty::from_units(if allow { qty } else { 0 }),
        side: allow.then_some(Side::Sell),
        context: P33Context::default(),
    }
}

fn yes(_: Qty, _: Side) -> bool {
    true
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
            let g = thread::spawn(move || t1.issue_gov(r, gov(true, None)));
            let t2 = t.clone();
            let p = thread::spawn(move || t2.issue_p33(r, p33(p33_allows, 42)));
            let seen = t.try_consume(r, 0, yes);
            assert_eq!(g.join().unwrap(), Issue::Issued);
            assert_eq!(p.join().unwrap(), Issue::Issued);
            match seen {
                Consume::Consumed { safe_qty, side } => {
                    assert!(p33_allows, "consumed with a denying P3.3 permit");
                    assert_eq!(safe_qty, Qty::from_units(42));
                    assert_eq!(side, Side::Sell);
                }
                Consume::NotReady { .. } => {}
                Consume::P33Denied => {
                    assert!(!p33_allows);
                    assert_eq!(
                        t.permits(r).unwrap().1.unwrap().reason,
                        Some(P33Reason::NoPosition)
                    );
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
            t1.issue_gov(r, gov(true, None));
            t1.issue_p33(r, p33(true, 5));
        });
        let t2 = t.clone();
        let a = thread::spawn(move || t2.try_consume(r, 0, yes));
        let b = t.try_consume(r, 0, yes);
        issuer.join().unwrap();
        let a = a.join().unwrap();
        let last = t.try_consume(r, 0, yes);
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
        t.issue_gov(r, gov(true, None));
        t.issue_p33(r, p33(true, 9));
        let t1 = t.clone();
        let c = thread::spawn(move || t1.try_consume(r, 0, yes));
        let closed = t.close(r);
        let consumed = c.join().unwrap();
        match (consumed, closed) {
            (Consume::Consumed { .. }, Close::AlreadyConsumed) => {}
            (Consume::Closed, Close::Closed(_)) => {}
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
        let deny = thread::spawn(move || t1.issue_gov(r, gov(false, Some(GovReason::Cooldown))));
        let allow = t.issue_gov(r, gov(true, None));
        let deny = deny.join().unwrap();
        let after = t.try_consume(r, 0, yes);
        match (allow, deny) {
            (Issue::Issued, Issue::AlreadyIssued) => {
                assert!(matches!(after, Consume::Consumed { .. }), "{after:?}")
            }
            (Issue::AlreadyIssued, Issue::Issued) => {
                assert_eq!(after, Consume::GovDenied);
                assert_eq!(
                    t.permits(r).unwrap().0.unwrap().reason,
                    Some(GovReason::Cooldown)
                );
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
        assert!(matches!(t.close(old), Close::Closed(_)));
        let t1 = t.clone();
        let late = thread::spawn(move || t1.issue_p33(old, p33(true, 999)));
        let new = t.open(1, PlanId(8)).unwrap();
        let late = late.join().unwrap();
        assert!(matches!(late, Issue::Stale | Issue::Closed), "{late:?}");
        t.issue_gov(new, gov(true, None));
        t.issue_p33(new, p33(true, 11));
        assert_eq!(
            t.try_consume(new, 0, yes),
            Consume::Consumed {
                safe_qty: Qty::from_units(11),
                side: Side::Sell
            }
        );
    });
}

/// Close racing a writer: the close either waits it out (`Busy`) or wins before the claim; a
/// successful close's statuses are final, the permits read after it are exactly those, and an
/// issuer that lost to the close wrote nothing.
#[test]
fn close_racing_a_writer() {
    model(|| {
        let (t, r) = opened(1);
        let t1 = t.clone();
        let w = thread::spawn(move || t1.issue_p33(r, p33(true, 5)));
        let closed = loop {
            match t.close(r) {
                Close::Busy => thread::yield_now(),
                other => break other,
            }
        };
        let issued = w.join().unwrap();
        let Close::Closed(view) = closed else {
            panic!("unexpected {closed:?}");
        };
        let (g, p) = t.permits(r).unwrap();
        assert!(g.is_none());
        match issued {
            Issue::Issued => {
                assert_eq!(view.p33, Status::Allow);
                assert_eq!(p.unwrap().safe_qty, Qty::from_units(5));
            }
            Issue::Closed => {
                assert_eq!(view.p33, Status::None);
                assert!(p.is_none(), "a write landed after the close");
            }
            other => panic!("unexpected {other:?}"),
        }
    });
}

/// A reader racing a reopen: it sees the old plan's permits exactly, or learns the slot moved
/// on; it never reports the new plan's fields as the old plan's.
#[test]
fn a_reader_racing_a_reopen() {
    // The reopen alone rewrites every field, which is the race that matters; two preemptions
    // keep the model's state space within minutes.
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        let (t, old) = opened(1);
        t.issue_gov(old, gov(true, None));
        t.issue_p33(old, p33(true, 5));
        assert!(matches!(
            t.try_consume(old, 0, yes),
            Consume::Consumed { .. }
        ));
        let t1 = t.clone();
        let reader = thread::spawn(move || t1.permits(old));
        let _new = t.open(1, PlanId(8)).unwrap();
        match reader.join().unwrap() {
            None => {}
            Some((_, p)) => assert_eq!(p.unwrap().safe_qty, Qty::from_units(5)),
        }
    });
}

/// A consumer that lost to another, then saw the slot reopened for a plan whose permits have
/// expired, is told `Stale` (or `AlreadyConsumed`), never `Expired` or `Consumed`.
#[test]
fn a_loser_after_a_reopen() {
    model(|| {
        let (t, r) = opened(1);
        t.issue_gov(r, gov(true, None));
        t.issue_p33(r, p33(true, 5));
        assert!(matches!(t.try_consume(r, 0, yes), Consume::Consumed { .. }));
        let t1 = t.clone();
        let loser = thread::spawn(move || t1.try_consume(r, 2_000, yes));
        let new = t.open(1, PlanId(8)).unwrap();
        t.issue_gov(new, gov(true, None));
        t.issue_p33(new, p33(true, 6));
        let seen = loser.join().unwrap();
        assert!(
            matches!(seen, Consume::Stale | Consume::AlreadyConsumed),
            "{seen:?}"
        );
    });
}

/// The book's seqlock: a reader's copy is always one the single writer published.
#[test]
fn the_book_seqlock_never_mixes_two_writes() {
    model(|| {
        let l = Arc::new(quantum_core::model::SeqLock2::new());
        let w = l.clone();
        let writer = thread::spawn(move || {
            w.write([1, -1]);
            w.write([2, -2]);
        });
        let [a, b] = l.read();
        assert_eq!(a, -b, "mixed copy {a} {b}");
        writer.join().unwrap();
        assert_eq!(l.read(), [2, -2]);
    });
}

#[allow(dead_code)]
fn _slot_view_is_public(v: SlotView) -> bool {
    v.closed
}
