use super::*;

fn allow_gov(deadline_ns: u64) -> GovPermit {
    GovPermit {
        allow: true,
        reason: None,
        issued_ns: 0,
        deadline_ns,
    }
}

fn allow_p33(deadline_ns: u64, qty: i64) -> P33Permit {
    P33Permit {
        allow: true,
        reason: None,
        issued_ns: 0,
        deadline_ns,
        safe_qty: Qty::from_units(qty),
        side: Some(Side::Sell),
        context: P33Context::default(),
    }
}

fn yes(_: Qty, _: Side) -> bool {
    true
}

fn closed_with(gov: Status, p33: Status) -> Close {
    Close::Closed(SlotView {
        gov,
        p33,
        consumed: false,
        closed: true,
    })
}

#[test]
fn consumes_both_permits_once() {
    let t = PermitTable::new(4);
    let r = t.open(0, PlanId(1)).unwrap();
    assert_eq!(
        t.try_consume(r, 0, yes),
        Consume::NotReady {
            gov: Status::None,
            p33: Status::None
        }
    );
    assert_eq!(t.issue_gov(r, allow_gov(100)), Issue::Issued);
    assert_eq!(
        t.try_consume(r, 0, yes),
        Consume::NotReady {
            gov: Status::Allow,
            p33: Status::None
        }
    );
    assert_eq!(t.issue_p33(r, allow_p33(100, 42)), Issue::Issued);
    let mut seen = None;
    let c = t.try_consume(r, 5, |q, s| {
        seen = Some((q, s));
        true
    });
    assert_eq!(
        c,
        Consume::Consumed {
            safe_qty: Qty::from_units(42),
            side: Side::Sell
        }
    );
    assert_eq!(seen, Some((Qty::from_units(42), Side::Sell)));
    assert_eq!(t.try_consume(r, 5, yes), Consume::AlreadyConsumed);
    assert_eq!(t.close(r), Close::AlreadyConsumed);
    assert_eq!(t.issue_gov(r, allow_gov(100)), Issue::Closed);
    // The permits stay readable, exactly as issued, until the slot is reopened.
    let (g, p) = t.permits(r).unwrap();
    assert_eq!(g, Some(allow_gov(100)));
    assert_eq!(p, Some(allow_p33(100, 42)));
}

#[test]
fn a_refused_consume_consumes_nothing() {
    let t = PermitTable::new(1);
    let r = t.open(0, PlanId(1)).unwrap();
    t.issue_gov(r, allow_gov(100));
    t.issue_p33(r, allow_p33(100, 7));
    assert_eq!(t.try_consume(r, 0, |_, _| false), Consume::Refused);
    assert!(!t.view(r).unwrap().consumed);
    assert_eq!(t.close(r), closed_with(Status::Allow, Status::Allow));
}

#[test]
fn first_write_wins() {
    let t = PermitTable::new(1);
    let r = t.open(0, PlanId(1)).unwrap();
    let deny = GovPermit {
        allow: false,
        reason: Some(GovReason::Cooldown),
        issued_ns: 3,
        deadline_ns: 100,
    };
    assert_eq!(t.issue_gov(r, deny), Issue::Issued);
    assert_eq!(t.issue_gov(r, allow_gov(100)), Issue::AlreadyIssued);
    assert_eq!(t.issue_p33(r, allow_p33(100, 1)), Issue::Issued);
    assert_eq!(t.try_consume(r, 0, yes), Consume::GovDenied);
    assert_eq!(t.permits(r).unwrap().0, Some(deny));
}

#[test]
fn denied_and_expired_permits_never_pass() {
    let t = PermitTable::new(2);
    let r = t.open(0, PlanId(1)).unwrap();
    t.issue_gov(r, allow_gov(100));
    let ctx = P33Context {
        exchange: Qty::from_units(6_200_000),
        ledger: Qty::from_units(200_000),
        tolerance: Qty::from_units(100_000),
    };
    let deny = P33Permit {
        allow: false,
        reason: Some(P33Reason::ReconcileRequiredQtyMismatch),
        issued_ns: 0,
        deadline_ns: 100,
        safe_qty: Qty::ZERO,
        side: None,
        context: ctx,
    };
    t.issue_p33(r, deny);
    assert_eq!(t.try_consume(r, 0, yes), Consume::P33Denied);
    assert_eq!(t.permits(r).unwrap().1, Some(deny));
    assert_eq!(ctx.diff(), Qty::from_units(6_000_000));

    let r2 = t.open(1, PlanId(2)).unwrap();
    t.issue_gov(r2, allow_gov(100));
    t.issue_p33(r2, allow_p33(50, 1));
    assert_eq!(
        t.try_consume(r2, 50, yes),
        Consume::Expired { which: Which::P33 }
    );
    assert_eq!(
        t.try_consume(r2, 100, yes),
        Consume::Expired { which: Which::Gov }
    );
    assert_eq!(t.close(r2), closed_with(Status::Allow, Status::Allow));
    assert_eq!(t.try_consume(r2, 0, yes), Consume::Closed);
}

#[test]
fn an_allow_without_a_side_is_never_consumed() {
    let t = PermitTable::new(1);
    let r = t.open(0, PlanId(1)).unwrap();
    t.issue_gov(r, allow_gov(100));
    let mut p = allow_p33(100, 5);
    p.side = None;
    t.issue_p33(r, p);
    assert_eq!(t.try_consume(r, 0, yes), Consume::P33Denied);
}

#[test]
fn a_full_table_is_an_error_and_slots_are_reused_with_a_new_generation() {
    let t = PermitTable::new(2);
    let a = t.open(0, PlanId(1)).unwrap();
    let _b = t.open(1, PlanId(2)).unwrap();
    assert_eq!(t.open(2, PlanId(3)), Err(TableFull { index: 0 }));
    assert_eq!(t.close(a), closed_with(Status::None, Status::None));
    let c = t.open(2, PlanId(3)).unwrap();
    assert_eq!(c.index, a.index);
    assert_ne!(c.gen, a.gen);
    // A late permit for the old plan fails instead of landing on the new one.
    assert_eq!(t.issue_gov(a, allow_gov(100)), Issue::Stale);
    assert_eq!(t.try_consume(a, 0, yes), Consume::Stale);
    assert_eq!(t.close(a), Close::Stale);
    assert_eq!(t.permits(a), None);
    assert_eq!(t.plan_of(c), Some(PlanId(3)));
    assert_eq!(t.view(c).unwrap().gov, Status::None);
}

#[test]
fn a_losing_consumer_after_a_reopen_is_told_stale_not_expired() {
    let t = PermitTable::new(1);
    let r = t.open(0, PlanId(1)).unwrap();
    t.issue_gov(r, allow_gov(100));
    t.issue_p33(r, allow_p33(100, 1));
    assert!(matches!(t.try_consume(r, 0, yes), Consume::Consumed { .. }));
    // The slot is reopened for another plan whose permits have already expired at time 500.
    let r2 = t.open(1, PlanId(2)).unwrap();
    t.issue_gov(r2, allow_gov(10));
    t.issue_p33(r2, allow_p33(10, 1));
    // A second consumer still holding the first plan's reference must not report the new
    // plan's expiry as its own.
    assert_eq!(t.try_consume(r, 500, yes), Consume::Stale);
}

#[test]
fn close_waits_out_a_writer() {
    let t = PermitTable::new(1);
    let r = t.open(0, PlanId(1)).unwrap();
    t.claim(r, Which::Gov).unwrap();
    assert_eq!(t.close(r), Close::Busy);
    assert_eq!(
        t.try_consume(r, 0, yes),
        Consume::NotReady {
            gov: Status::Writing,
            p33: Status::None
        }
    );
    // A permit still being written reads as not issued.
    assert_eq!(t.permits(r), Some((None, None)));
    t.publish(r, Which::Gov, true);
    assert_eq!(t.close(r), closed_with(Status::Allow, Status::None));
}

/// Unit tests build the table with a 3-bit generation (`word::GEN_BITS`), so eight reuses of
/// one slot wrap it: the wrap is seamless, a reference one reuse old is always stale, and one
/// exactly `GEN_MAX + 1` reuses old aliases — which is why the engine never keeps a reference
/// that long (module docs).
#[test]
fn the_generation_wraps_and_only_a_full_lap_aliases() {
    let t = PermitTable::new(1);
    let laps = word::GEN_MAX as u64 + 1;
    let first = t.open(0, PlanId(100)).unwrap();
    assert_eq!(t.close(first), closed_with(Status::None, Status::None));
    let mut prev = first;
    for i in 1..=laps {
        let r = t.open(i, PlanId(100 + i)).unwrap();
        assert_eq!(r.gen, ((first.gen as u64 + i) % laps) as u32);
        assert_eq!(t.issue_gov(prev, allow_gov(100)), Issue::Stale, "lap {i}");
        assert_eq!(t.try_consume(prev, 0, yes), Consume::Stale);
        t.issue_gov(r, allow_gov(100));
        t.issue_p33(r, allow_p33(100, 1));
        if i < laps {
            assert!(matches!(t.try_consume(r, 0, yes), Consume::Consumed { .. }));
        }
        prev = r;
    }
    // `prev` was opened exactly one lap after `first`: the same generation.
    assert_eq!(prev.gen, first.gen);
    assert_eq!(t.plan_of(first), Some(PlanId(100 + laps)));
}
