//! 10^6 plans through the permit table, each with two racing issuers per permit and two racing
//! consumers: exactly one consumption per plan whose winning permits both allow, none otherwise.

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::thread;

use quantum_core::fixed::Qty;
use quantum_core::permit::{
    Close, Consume, GovPermit, Issue, P33Context, P33Permit, PermitTable, SlotRef,
};
use quantum_core::types::{PlanId, Side};
use quantum_ipc::codes::{GovReason, P33Reason};

const BATCH: usize = 1024;

fn plans() -> usize {
    if cfg!(miri) {
        200
    } else {
        1_000_000
    }
}

/// Issuer `who`'s verdict for plan `i`: the two issuers of a permit disagree on some plans, so
/// which verdict stands depends on who wins the race.
fn verdict(i: usize, who: usize, salt: usize) -> bool {
    (i.wrapping_mul(2654435761) >> (who * 3 + salt)) % 5 != 0
}

#[test]
fn exactly_one_consumption_per_fully_allowed_plan() {
    let table = PermitTable::new(BATCH);
    let total = plans();
    let mut consumed_total = 0u64;
    let mut allowed_total = 0u64;
    for start in (0..total).step_by(BATCH) {
        let n = BATCH.min(total - start);
        let refs: Vec<SlotRef> = (0..n)
            .map(|i| {
                table
                    .open((start + i) as u64, PlanId((start + i) as u64))
                    .expect("free slot")
            })
            .collect();
        // Winning verdict per plan and permit: 0 none yet, 1 allow, 2 deny.
        let gov_won: Vec<AtomicU8> = (0..n).map(|_| AtomicU8::new(0)).collect();
        let p33_won: Vec<AtomicU8> = (0..n).map(|_| AtomicU8::new(0)).collect();
        let wins: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
        thread::scope(|s| {
            for who in 0..2 {
                let (table, refs, gov_won, p33_won) = (&table, &refs, &gov_won, &p33_won);
                s.spawn(move || {
                    for k in 0..n {
                        // The two issuers walk in opposite directions to meet in the middle.
                        let i = if who == 0 { k } else { n - 1 - k };
                        let plan = start + i;
                        let g = verdict(plan, who, 0);
                        let gp = GovPermit {
                            allow: g,
                            reason: (!g).then_some(GovReason::Denied),
                            issued_ns: 0,
                            deadline_ns: u64::MAX,
                        };
                        if table.issue_gov(refs[i], gp) == Issue::Issued {
                            gov_won[i].store(if g { 1 } else { 2 }, Ordering::Relaxed);
                        }
                        let p = verdict(plan, who, 1);
                        let pp = P33Permit {
                            allow: p,
                            reason: (!p).then_some(P33Reason::Denied),
                            issued_ns: 0,
                            deadline_ns: u64::MAX,
                            safe_qty: Qty::from_units(plan as i64 + 1),
                            side: p.then_some(Side::Buy),
                            context: P33Context::default(),
                        };
                        if table.issue_p33(refs[i], pp) == Issue::Issued {
                            p33_won[i].store(if p { 1 } else { 2 }, Ordering::Relaxed);
                        }
                    }
                });
            }
            for who in 0..2 {
                let (table, refs, wins) = (&table, &refs, &wins);
                s.spawn(move || {
                    let mut open: Vec<usize> = (0..n).collect();
                    if who == 1 {
                        open.reverse();
                    }
                    while !open.is_empty() {
                        let before = open.len();
                        open.retain(|&i| match table.try_consume(refs[i], 0, |_, _| true) {
                            Consume::Consumed { safe_qty, side } => {
                                assert_eq!(safe_qty.units(), (start + i) as i64 + 1);
                                assert_eq!(side, Side::Buy);
                                wins[i].fetch_add(1, Ordering::Relaxed);
                                false
                            }
                            Consume::NotReady { .. } => true,
                            Consume::AlreadyConsumed | Consume::GovDenied | Consume::P33Denied => {
                                false
                            }
                            other => panic!("plan {i}: unexpected {other:?}"),
                        });
                        if open.len() == before {
                            thread::yield_now();
                        }
                    }
                });
            }
        });
        for i in 0..n {
            let both =
                gov_won[i].load(Ordering::Relaxed) == 1 && p33_won[i].load(Ordering::Relaxed) == 1;
            let w = wins[i].load(Ordering::Relaxed);
            assert_eq!(
                w,
                u32::from(both),
                "plan {}: {w} consumptions, allowed={both}",
                start + i
            );
            consumed_total += u64::from(w);
            allowed_total += u64::from(both);
            if !both {
                assert!(matches!(table.close(refs[i]), Close::Closed(_)));
            }
        }
    }
    assert_eq!(consumed_total, allowed_total);
    // The verdicts make both outcomes common.
    assert!(allowed_total > total as u64 / 3 && allowed_total < total as u64);
}
