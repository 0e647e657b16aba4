//! When an executed plan's result entry is written.
//!
//! The legacy `order_id` is the exchange's, known only once the exchange has answered. So the
//! result of an executed plan is held until the first event about its order's outcome
//! (`OrderAccepted` brings the id; a fill, the order's end, an unknown outcome or a lookup end
//! the wait too), or until `--order-id-wait-ms` has passed, and then written with an empty
//! `order_id`. Either way each plan gets one result entry. Results of plans not executed are
//! written at once.
//!
//! Every held result waits the same time, so they time out in the order they came: the oldest
//! held result's sequence number is the bridge's `low_seq` ([`crate::state`]).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use quantum_core::event::Event;
use quantum_core::{PlanId, PlanResult};

/// An executed plan's result waiting for its order id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    /// The result.
    pub result: PlanResult,
    /// Sequence number of the result event.
    pub seq: u64,
    /// When the wait ends.
    pub until: Instant,
}

/// A result ready to be written, with the order id if known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ready {
    /// The result.
    pub result: PlanResult,
    /// The exchange's order id.
    pub order_id: Option<u64>,
}

/// Results held for their order id, bounded.
#[derive(Debug)]
pub struct HeldResults {
    wait: Duration,
    max: usize,
    by_seq: BTreeMap<u64, Held>,
    by_plan: HashMap<PlanId, u64>,
}

impl HeldResults {
    /// Holds at most `max` results, each at most `wait`.
    pub fn new(wait: Duration, max: usize) -> HeldResults {
        HeldResults {
            wait,
            max,
            by_seq: BTreeMap::new(),
            by_plan: HashMap::new(),
        }
    }

    /// Sequence number of the oldest held result.
    pub fn low_seq(&self) -> Option<u64> {
        self.by_seq.keys().next().copied()
    }

    /// Whether `plan`'s result is held (a `duplicate` answer for it must not take its place).
    pub fn holds(&self, plan: PlanId) -> bool {
        self.by_plan.contains_key(&plan)
    }

    /// Results held.
    pub fn len(&self) -> usize {
        self.by_seq.len()
    }

    /// None held.
    pub fn is_empty(&self) -> bool {
        self.by_seq.is_empty()
    }

    /// A plan result event at `seq`: ready now, or held (`None`). A full hold writes it at
    /// once without the order id.
    pub fn result(&mut self, r: PlanResult, seq: u64, now: Instant) -> Option<Ready> {
        if !r.executed() {
            return Some(Ready {
                result: r,
                order_id: None,
            });
        }
        if self.by_seq.len() >= self.max || self.by_plan.contains_key(&r.plan) {
            return Some(Ready {
                result: r,
                order_id: None,
            });
        }
        self.by_plan.insert(r.plan, seq);
        self.by_seq.insert(
            seq,
            Held {
                result: r,
                seq,
                until: now + self.wait,
            },
        );
        None
    }

    /// An event about an order: ready if it ends the wait of a held result.
    pub fn order_event(&mut self, e: &Event) -> Option<Ready> {
        let (plan, order_id) = match *e {
            Event::OrderAccepted { plan, order_id, .. } => (plan, Some(order_id)),
            Event::Fill(f) => (f.plan, Some(f.order_id).filter(|id| *id != 0)),
            Event::OrderResolved {
                plan,
                found,
                order_id,
                ..
            } => (plan, Some(order_id).filter(|id| found && *id != 0)),
            Event::OrderDone(d) => (d.plan, None),
            Event::OrderUnknown { plan, .. } => (plan, None),
            _ => return None,
        };
        let seq = self.by_plan.remove(&plan)?;
        let held = self.by_seq.remove(&seq)?;
        Some(Ready {
            result: held.result,
            order_id,
        })
    }

    /// Results whose wait has passed at `now`, oldest first.
    pub fn expired(&mut self, now: Instant) -> Vec<Ready> {
        let mut out = Vec::new();
        while let Some(entry) = self.by_seq.first_entry() {
            if entry.get().until > now {
                break;
            }
            let h = entry.remove();
            self.by_plan.remove(&h.result.plan);
            out.push(Ready {
                result: h.result,
                order_id: None,
            });
        }
        out
    }

    /// When the next wait ends.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.by_seq.values().next().map(|h| h.until)
    }

    /// Forgets everything (a new session rebuilds what it needs from the events).
    pub fn clear(&mut self) {
        self.by_seq.clear();
        self.by_plan.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantum_core::{Decision, Outcome, Qty, SymbolId};

    fn result(plan: u64, executed: bool) -> PlanResult {
        PlanResult {
            plan: PlanId(plan),
            symbol: SymbolId(0),
            decision: if executed {
                Decision::Execute
            } else {
                Decision::Hold
            },
            outcome: if executed {
                Outcome::Executed {
                    qty: "0.046".parse::<Qty>().unwrap(),
                }
            } else {
                Outcome::NonExecute
            },
            wait_ns: 0,
            at_ms: 0,
        }
    }

    fn accepted(plan: u64, order_id: u64) -> Event {
        Event::OrderAccepted {
            plan: PlanId(plan),
            symbol: SymbolId(0),
            order_id,
            at_ms: 0,
        }
    }

    #[test]
    fn executed_results_wait_for_the_order_id_others_do_not() {
        let now = Instant::now();
        let mut h = HeldResults::new(Duration::from_secs(1), 10);
        assert_eq!(h.result(result(1, false), 5, now).unwrap().order_id, None);
        assert!(h.result(result(2, true), 6, now).is_none());
        assert!(h.result(result(3, true), 8, now).is_none());
        assert_eq!(h.low_seq(), Some(6));
        assert!(h.order_event(&accepted(9, 1)).is_none());
        let r = h.order_event(&accepted(3, 10_001)).unwrap();
        assert_eq!((r.result.plan, r.order_id), (PlanId(3), Some(10_001)));
        assert_eq!(h.low_seq(), Some(6));
        assert!(h.expired(now).is_empty());
        let late = h.expired(now + Duration::from_secs(1));
        assert_eq!(late.len(), 1);
        assert_eq!((late[0].result.plan, late[0].order_id), (PlanId(2), None));
        assert!(h.is_empty() && h.low_seq().is_none());
    }

    #[test]
    fn a_full_hold_writes_at_once() {
        let now = Instant::now();
        let mut h = HeldResults::new(Duration::from_secs(1), 1);
        assert!(h.result(result(1, true), 1, now).is_none());
        assert_eq!(h.result(result(2, true), 2, now).unwrap().order_id, None);
        assert_eq!(h.len(), 1);
    }
}
