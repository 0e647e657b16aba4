//! Dedupe by time: every EXECUTE plan id is remembered for a horizon (default 24 h), never
//! forgotten earlier, whatever the traffic.
//!
//! Ids live in a fixed-capacity [`IdMap`] (id → expiry) and in a ring of `(id, expires_ms)` in
//! acceptance order. Acceptance times only grow (wall-clock ms derived from the engine's
//! monotonic clock, and the journal's order on replay), so the ring is also ordered by expiry:
//! forgetting is popping its front while the front has expired. Nothing allocates after
//! construction.
//!
//! Whether an id is remembered is decided by its expiry, not by its presence, so removing
//! expired ids is housekeeping that may wait: the engine does it after a plan's events have
//! left ([`Dedupe::tidy`], a few ids per plan), which takes a random access into a table of
//! millions of ids off the path from plan to order.
//!
//! One exception (failover): a plan whose order was not sent because this host did not lead
//! is forgotten ([`Dedupe::forget`]), so that a later delivery is decided again.
//!
//! When the capacity is taken by ids younger than the horizon, a new plan is refused
//! ([`DedupeFull`]: the engine blocks it `dedupe_full`, counted and logged) instead of an id
//! being forgotten early. The configuration sizes the capacity from the horizon and the
//! expected rate and checks it against the permit table at start.

use crate::idmap::IdMap;
use quantum_ipc::bigmem::BigSlice;

/// Every remembered id is younger than the horizon and the capacity is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DedupeFull;

/// Plan ids remembered for a time horizon.
#[derive(Debug)]
pub struct Dedupe {
    /// Id → its expiry (the newest, if it was accepted again after expiring).
    ids: IdMap<u64>,
    /// `(id, expires_ms)` in acceptance order; `len` entries from `head`, wrapping.
    ring: BigSlice<(u64, u64)>,
    head: usize,
    len: usize,
    horizon_ms: u64,
}

impl Dedupe {
    /// Remembers up to `capacity` ids (at least 1) for `horizon_ms` each.
    pub fn new(capacity: usize, horizon_ms: u64) -> Self {
        let capacity = capacity.max(1);
        Dedupe {
            ids: IdMap::with_max_len(capacity),
            ring: BigSlice::new(capacity, (0, 0)),
            head: 0,
            len: 0,
            horizon_ms,
        }
    }

    /// How long an id is remembered.
    pub fn horizon_ms(&self) -> u64 {
        self.horizon_ms
    }

    /// Most ids remembered at once.
    pub fn capacity(&self) -> usize {
        self.ring.len()
    }

    /// Ids held: those remembered now and any expired ones not yet tidied away.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when no id can be added at `now_ms`, even after forgetting the expired ones.
    #[inline]
    pub fn is_full(&mut self, now_ms: u64) -> bool {
        if self.len < self.ring.len() {
            return false;
        }
        self.expire(now_ms);
        self.len == self.ring.len()
    }

    /// Forgets every id whose horizon ended at or before `now_ms`.
    pub fn expire(&mut self, now_ms: u64) {
        self.tidy(now_ms, usize::MAX);
    }

    /// Forgets at most `most` of the ids whose horizon ended at or before `now_ms`, oldest
    /// first; returns how many. Per plan, a small `most` keeps pace with the intake.
    #[inline]
    pub fn tidy(&mut self, now_ms: u64, most: usize) -> usize {
        let mut n = 0;
        while n < most && self.len > 0 {
            let (id, expires) = self.ring[self.head];
            if expires > now_ms {
                break;
            }
            // An id accepted again after it expired has a newer expiry in the map (and a newer
            // entry further on in the ring): only its last entry removes it.
            if self.ids.get(id) == Some(expires) {
                self.ids.remove(id);
            }
            self.head = (self.head + 1) % self.ring.len();
            self.len -= 1;
            n += 1;
        }
        n
    }

    /// Starts loading where [`Dedupe::contains`] will look for `id`: with millions of ids the
    /// look-up is a memory access, which can overlap with work that does not depend on it.
    #[inline]
    pub fn prefetch(&self, id: u64) {
        self.ids.prefetch(id);
    }

    /// Whether `id` is remembered at `now_ms`: accepted less than the horizon before.
    #[inline]
    pub fn contains(&self, id: u64, now_ms: u64) -> bool {
        self.ids.get(id).is_some_and(|expires| expires > now_ms)
    }

    /// Forgets `id` before its horizon: only for a plan the core knows was never ordered and
    /// is not its to decide any more (failover: its order was not sent because this host did
    /// not lead; the leader decides it). Its ring entry stays until it expires (tidying skips
    /// it), so the room comes back only then.
    pub fn forget(&mut self, id: u64) {
        self.ids.remove(id);
    }

    /// Remembers `id`, accepted at `at_ms`, until `at_ms + horizon`. Forgets expired ids
    /// when it needs their room; refuses when the rest fill the capacity. An id remembered at
    /// `at_ms` is kept as is.
    pub fn insert(&mut self, id: u64, at_ms: u64) -> Result<(), DedupeFull> {
        if self.contains(id, at_ms) {
            return Ok(());
        }
        if self.is_full(at_ms) {
            return Err(DedupeFull);
        }
        let expires = at_ms.saturating_add(self.horizon_ms);
        let tail = (self.head + self.len) % self.ring.len();
        self.ring[tail] = (id, expires);
        // Cannot fail: every id in the map has an entry in the ring, which has room.
        let _ = self.ids.insert(id, expires);
        self.len += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[test]
    fn remembers_for_the_horizon_and_refuses_rather_than_forgets() {
        let mut d = Dedupe::new(2, 1_000);
        assert_eq!(d.insert(1, 0), Ok(()));
        assert_eq!(d.insert(2, 10), Ok(()));
        // Full of young ids: refused, and both still remembered.
        assert_eq!(d.insert(3, 500), Err(DedupeFull));
        assert!(d.contains(1, 500) && d.contains(2, 500) && !d.contains(3, 500));
        // Id 1 expires at 1000: room again, and 1 is forgotten, 2 is not.
        assert_eq!(d.insert(3, 1_000), Ok(()));
        assert!(!d.contains(1, 1_000) && d.contains(2, 1_000) && d.contains(3, 1_000));
        // Expired but not yet tidied: no longer remembered, still held.
        assert!(!d.contains(2, 1_010) && d.len() == 2);
        assert_eq!(d.tidy(1_010, 5), 1);
        assert!(!d.contains(2, 1_010) && d.contains(3, 1_010));
        assert_eq!((d.len(), d.is_empty(), d.horizon_ms()), (1, false, 1_000));
        d.expire(2_000);
        assert!(d.is_empty());
    }

    proptest! {
        /// Against a plain reference: an id is remembered exactly while younger than the
        /// horizon, unless it was refused for lack of room; nothing younger is ever forgotten;
        /// however little is tidied (0 to 2 ids per step), which only delays the room.
        #[test]
        fn matches_a_reference(ops in prop::collection::vec((0u64..40, 0u64..50, 0usize..3), 0..300), cap in 1usize..12) {
            let horizon = 100;
            let mut d = Dedupe::new(cap, horizon);
            let mut reference: VecDeque<(u64, u64)> = VecDeque::new();
            let mut now = 0;
            for (id, step, tidy) in ops {
                now += step;
                let held = d.len();
                let tidied = d.tidy(now, tidy);
                prop_assert!(tidied <= tidy && d.len() == held - tidied);
                while reference.front().is_some_and(|(_, e)| *e <= now) {
                    reference.pop_front();
                }
                let known = reference.iter().any(|(i, _)| *i == id);
                prop_assert_eq!(d.contains(id, now), known);
                let got = d.insert(id, now);
                if !known {
                    if reference.len() == cap {
                        prop_assert_eq!(got, Err(DedupeFull));
                    } else {
                        prop_assert_eq!(got, Ok(()));
                        reference.push_back((id, now + horizon));
                    }
                }
                prop_assert!(d.len() >= reference.len());
            }
            d.expire(now);
            prop_assert_eq!(d.len(), reference.len());
        }
    }
}
