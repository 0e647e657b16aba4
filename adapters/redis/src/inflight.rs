//! Plan entries pushed into the core and not yet answered, and how the core's answers find
//! them.
//!
//! The core answers every plan it takes exactly once, in the order it took them: with
//! `PlanAccepted` (an EXECUTE plan it will judge), or at once with a `PlanResult` (not EXECUTE,
//! a duplicate, dedupe full). The bridge keeps one queue per plan id of the stream entries it
//! pushed; an answer for a plan takes the oldest entry of its queue, which is then XACKed (the
//! core has made the plan durable before it answered).
//!
//! An answer with no entry waiting is an *orphan*: the answer to an entry pushed by an earlier
//! bridge process (killed before it acknowledged) or an earlier session (the daemon
//! restarted). That entry is still in the pending list and will be claimed again, so the
//! orphan is remembered ([`InFlight::answered_before`]) and the claimed entry is then
//! acknowledged without being pushed a second time. The session makes sure every orphan has
//! come before it claims: it pushes a probe first and claims only once the probe's answer is
//! back, and the core answers in the order it took records.
//!
//! An answer that still finds no entry pushes nothing twice but may answer a plan a second time
//! (a plan delivered twice while it waits for its permits gets its second answer only with its
//! result; a daemon restarted meanwhile answers a redelivered entry again): its result entry is
//! still written once, since [`crate::batch::RESULT_SCRIPT`] writes one per plan id.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use quantum_core::bounded::{FifoMap, FifoSet};
use quantum_core::PlanId;
use tokio::sync::OwnedSemaphorePermit;

/// One stream entry pushed into the core.
#[derive(Debug)]
pub struct Pushed {
    /// Its stream entry id.
    pub entry: String,
    /// It came from the pending list (read before, by this or another consumer).
    pub redelivered: bool,
    /// When it was read from the stream.
    pub read_at: Instant,
    /// Holds one unit of the in-flight bound until the entry is answered.
    _slot: Option<OwnedSemaphorePermit>,
}

impl Pushed {
    /// An entry read at `read_at`, holding `slot` of the in-flight bound.
    pub fn new(
        entry: String,
        redelivered: bool,
        read_at: Instant,
        slot: Option<OwnedSemaphorePermit>,
    ) -> Pushed {
        Pushed {
            entry,
            redelivered,
            read_at,
            _slot: slot,
        }
    }
}

/// Orphan answers remembered at most (oldest forgotten first).
const ANSWERED_BEFORE_MAX: usize = 100_000;
/// Entries acknowledged by this process remembered at most (oldest forgotten first).
const ACKED_MAX: usize = 65_536;

/// Entries pushed and not yet answered.
#[derive(Debug)]
pub struct InFlight {
    by_plan: HashMap<PlanId, VecDeque<Pushed>>,
    len: usize,
    /// Orphan answers not used up, per plan; the plan answered longest ago forgotten first.
    answered: FifoMap<PlanId, u32>,
    acked: FifoSet<String>,
}

impl Default for InFlight {
    fn default() -> Self {
        InFlight {
            by_plan: HashMap::new(),
            len: 0,
            answered: FifoMap::new(ANSWERED_BEFORE_MAX),
            acked: FifoSet::new(ACKED_MAX),
        }
    }
}

impl InFlight {
    /// Entries waiting for an answer.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No entry waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether stream entry `entry` is waiting (a claim must not push it twice).
    pub fn contains_entry(&self, entry: &str) -> bool {
        self.by_plan
            .values()
            .any(|q| q.iter().any(|p| p.entry == entry))
    }

    /// Records that `p` was pushed for `plan`.
    pub fn push(&mut self, plan: PlanId, p: Pushed) {
        self.by_plan.entry(plan).or_default().push_back(p);
        self.len += 1;
    }

    /// The core answered `plan`: the entry it answers, or `None` for an orphan (remembered
    /// for the claim).
    pub fn answer(&mut self, plan: PlanId) -> Option<Pushed> {
        if let Some(q) = self.by_plan.get_mut(&plan) {
            let p = q.pop_front();
            if q.is_empty() {
                self.by_plan.remove(&plan);
            }
            if p.is_some() {
                self.len -= 1;
                return p;
            }
        }
        // The plan's latest orphan answer is the youngest: it is remembered from now on.
        let before = self.answered.remove(&plan).unwrap_or(0);
        self.answered.insert(plan, before + 1);
        None
    }

    /// Whether a claimed entry of `plan` was answered already (an orphan answer is used up).
    pub fn answered_before(&mut self, plan: PlanId) -> bool {
        self.take_answered(plan)
    }

    fn take_answered(&mut self, plan: PlanId) -> bool {
        match self.answered.get_mut(&plan) {
            Some(n) => {
                *n -= 1;
                if *n == 0 {
                    self.answered.remove(&plan);
                }
                true
            }
            None => false,
        }
    }

    /// Entry `id` is being acknowledged by this process (answered, dead-lettered, trimmed).
    pub fn acked(&mut self, id: &str) {
        if !self.acked.contains(id) {
            self.acked.insert(id.to_owned());
        }
    }

    /// Whether this process acknowledged entry `id` (a copy claimed again before or while its
    /// XACK was written is not handled twice).
    pub fn was_acked(&self, id: &str) -> bool {
        self.acked.contains(id)
    }

    /// Forgets every entry (their slots are released): the daemon went away, and the entries,
    /// still pending in Redis, are claimed again by the next session.
    pub fn clear(&mut self) {
        self.by_plan.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pushed(entry: &str) -> Pushed {
        Pushed::new(entry.into(), false, Instant::now(), None)
    }

    #[test]
    fn answers_take_entries_in_push_order() {
        let mut f = InFlight::default();
        let x = PlanId(7);
        f.push(x, pushed("1-0"));
        f.push(x, pushed("2-0"));
        assert_eq!(f.len(), 2);
        assert!(f.contains_entry("2-0"));
        assert_eq!(f.answer(x).unwrap().entry, "1-0");
        assert_eq!(f.answer(x).unwrap().entry, "2-0");
        assert!(f.is_empty());
    }

    #[test]
    fn an_orphan_answer_covers_one_claimed_entry() {
        let mut f = InFlight::default();
        let x = PlanId(7);
        assert!(f.answer(x).is_none());
        assert!(f.answer(x).is_none());
        assert!(f.answered_before(x));
        assert!(f.answered_before(x));
        assert!(!f.answered_before(x));
        assert!(!f.answered_before(PlanId(8)));
    }

    #[test]
    fn acknowledged_entries_are_remembered() {
        let mut f = InFlight::default();
        f.acked("1-0");
        assert!(f.was_acked("1-0") && !f.was_acked("2-0"));
    }

    #[test]
    fn clear_forgets_entries_but_not_orphans() {
        let mut f = InFlight::default();
        f.push(PlanId(1), pushed("1-0"));
        assert!(f.answer(PlanId(2)).is_none());
        f.clear();
        assert!(f.is_empty());
        assert!(!f.contains_entry("1-0"));
        assert!(f.answered_before(PlanId(2)));
    }
}
