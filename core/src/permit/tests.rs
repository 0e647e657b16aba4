use super::*;

fn allow_gov(deadline_ns: u64) -> GovPermit {
    GovPermit {
        allow: true,
        reason: 0,
        deadline_ns,
    }
}

fn allow_p33(deadline_ns: u64, qty: i64) -> P33Permit {
    P33Permit {
        allow: true,
        reason: 0,
        deadline_ns,
        safe_qty: Qty::from_units(qty),
        side: Some(Side::Sell),
        context: P33Context::default(),
    }
}

#[test]
fn consumes_both_permits_once() {
    let t = PermitTable::new(4);
    let r = t.open(0, PlanId(1)).unwrap();
    assert_eq!(
        t.try_consume(r, 0),
        Consume::NotReady {
            gov: Status::None,
            p33: Status::None
        }
    );
    assert_eq!(t.issue_gov(r, allow_gov(100)), Issue::Issued);
    assert_eq!(
        t.try_consume(r, 0),
        Consume::NotReady {
            gov: Status::Allow,
            p33: Status::None
        }
    );
    assert_eq!(t.issue_p33(r, allow_p33(100, 42)), Issue::Issued);
    assert_eq!(
        t.try_consume(r, 5),
        Consume::Consumed {
            safe_qty: Qty::from_units(42),
            side: Side::Sell
        }
    );
    assert_eq!(t.try_consume(r, 5), Consume::AlreadyConsumed);
    assert_eq!(t.close(r), Close::AlreadyConsumed);
    assert_eq!(t.issue_gov(r, allow_gov(100)), Issue::Closed);
}

#[test]
fn first_write_wins() {
    let t = PermitTable::new(1);
    let r = t.open(0, PlanId(1)).unwrap();
    let deny = GovPermit {
        allow: false,
        reason: 7,
        deadline_ns: 100,
    };
    assert_eq!(t.issue_gov(r, deny), Issue::Issued);
    assert_eq!(t.issue_gov(r, allow_gov(100)), Issue::AlreadyIssued);
    assert_eq!(t.issue_p33(r, allow_p33(100, 1)), Issue::Issued);
    assert_eq!(t.try_consume(r, 0), Consume::GovDenied { reason: 7 });
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
    t.issue_p33(
        r,
        P33Permit {
            allow: false,
            reason: 3,
            deadline_ns: 100,
            safe_qty: Qty::ZERO,
            side: None,
            context: ctx,
        },
    );
    assert_eq!(
        t.try_consume(r, 0),
        Consume::P33Denied {
            reason: 3,
            context: ctx
        }
    );
    assert_eq!(ctx.diff(), Qty::from_units(6_000_000));

    let r2 = t.open(1, PlanId(2)).unwrap();
    t.issue_gov(r2, allow_gov(100));
    t.issue_p33(r2, allow_p33(50, 1));
    assert_eq!(
        t.try_consume(r2, 50),
        Consume::Expired { which: Which::P33 }
    );
    assert_eq!(
        t.try_consume(r2, 100),
        Consume::Expired { which: Which::Gov }
    );
    assert_eq!(t.close(r2), Close::Closed);
    assert_eq!(t.try_consume(r2, 0), Consume::Closed);
}

#[test]
fn a_full_table_is_an_error_and_slots_are_reused_with_a_new_generation() {
    let t = PermitTable::new(2);
    let a = t.open(0, PlanId(1)).unwrap();
    let _b = t.open(1, PlanId(2)).unwrap();
    assert_eq!(t.open(2, PlanId(3)), Err(TableFull { index: 0 }));
    assert_eq!(t.close(a), Close::Closed);
    let c = t.open(2, PlanId(3)).unwrap();
    assert_eq!(c.index, a.index);
    assert_ne!(c.gen, a.gen);
    // A late permit for the old plan fails instead of landing on the new one.
    assert_eq!(t.issue_gov(a, allow_gov(100)), Issue::Stale);
    assert_eq!(t.try_consume(a, 0), Consume::Stale);
    assert_eq!(t.close(a), Close::Stale);
    assert_eq!(t.plan_of(c), Some(PlanId(3)));
    assert_eq!(t.view(c).unwrap().gov, Status::None);
}

#[test]
fn close_waits_out_a_writer() {
    let t = PermitTable::new(1);
    let r = t.open(0, PlanId(1)).unwrap();
    t.claim(r, Which::Gov).unwrap();
    assert_eq!(t.close(r), Close::Busy);
    assert_eq!(
        t.try_consume(r, 0),
        Consume::NotReady {
            gov: Status::Writing,
            p33: Status::None
        }
    );
    t.publish(r, Which::Gov, true);
    assert_eq!(t.close(r), Close::Closed);
}
