//! Dedupe by time: every EXECUTE plan id is remembered for a horizon (default 24 h), never
//! forgotten earlier, whatever the traffic.
//!
//! Ids live in a fixed-capacity [`IdMap`] and in a ring of `(id, expires_ms)` in acceptance
//! order. Acceptance times only grow (wall-clock ms derived from the engine's monotonic clock,
//! and the journal's order on replay), so the ring is also ordered by expiry: forgetting is
//! popping its front while the front has expired. Nothing allocates after construction.
//!
//! When the capacity is taken by ids younger than the horizon, a new plan is refused
//! ([`DedupeFull`]: the engine blocks it `dedupe_full`, counted and logged) instead of an id
//! being forgotten early. The configuration sizes the capacity from the horizon and the
//! expected rate and checks it against the permit table at start.

use crate::idmap::IdMap;

/// Every remembered id is younger than the horizon and the capacity is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DedupeFull;

/// Plan ids remembered for a time horizon.
#[derive(Debug)]
pub struct Dedupe {
    ids: IdMap<()>,
    /// `(id, expires_ms)` in acceptance order; `len` entries from `head`, wrapping.
    ring: Box<[(u64, u64)]>,
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
            ring: vec![(0, 0); capacity].into_boxed_slice(),
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

    /// Ids remembered now.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets every id whose horizon ended at or before `now_ms`.
    #[inline]
    pub fn expire(&mut self, now_ms: u64) {
        while self.len > 0 {
            let (id, expires) = self.ring[self.head];
            if expires > now_ms {
                return;
            }
            self.ids.remove(id);
            self.head = (self.head + 1) % self.ring.len();
            self.len -= 1;
        }
    }

    /// Whether `id` is remembered (call [`Dedupe::expire`] first for an exact answer; an id
    /// not yet expired out is still remembered, which only ever errs on the safe side).
    #[inline]
    pub fn contains(&self, id: u64) -> bool {
        self.ids.contains(id)
    }

    /// Remembers `id`, accepted at `at_ms`, until `at_ms + horizon`. Forgets expired ids
    /// first; refuses when the rest fill the capacity. An id already remembered is kept as is.
    pub fn insert(&mut self, id: u64, at_ms: u64) -> Result<(), DedupeFull> {
        if self.ids.contains(id) {
            return Ok(());
        }
        if self.len == self.ring.len() {
            self.expire(at_ms);
            if self.len == self.ring.len() {
                return Err(DedupeFull);
            }
        }
        let tail = (self.head + self.len) % self.ring.len();
        self.ring[tail] = (id, at_ms.saturating_add(self.horizon_ms));
        // Cannot fail: the map holds exactly the ring's ids and the ring has room.
        let _ = self.ids.insert(id, ());
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
        assert!(d.contains(1) && d.contains(2) && !d.contains(3));
        // Id 1 expires at 1000: room again, and 1 is forgotten, 2 is not.
        assert_eq!(d.insert(3, 1_000), Ok(()));
        assert!(!d.contains(1) && d.contains(2) && d.contains(3));
        d.expire(1_010);
        assert!(!d.contains(2) && d.contains(3));
        assert_eq!((d.len(), d.is_empty(), d.horizon_ms()), (1, false, 1_000));
        d.expire(2_000);
        assert!(d.is_empty());
    }

    proptest! {
        /// Against a plain reference: an id is remembered exactly while younger than the
        /// horizon, unless it was refused for lack of room; nothing younger is ever forgotten.
        #[test]
        fn matches_a_reference(ops in prop::collection::vec((0u64..40, 0u64..50), 0..300), cap in 1usize..12) {
            let horizon = 100;
            let mut d = Dedupe::new(cap, horizon);
            let mut reference: VecDeque<(u64, u64)> = VecDeque::new();
            let mut now = 0;
            for (id, step) in ops {
                now += step;
                d.expire(now);
                while reference.front().is_some_and(|(_, e)| *e <= now) {
                    reference.pop_front();
                }
                let known = reference.iter().any(|(i, _)| *i == id);
                prop_assert_eq!(d.contains(id), known);
                let got = d.insert(id, now);
                if !known {
                    if reference.len() == cap {
                        prop_assert_eq!(got, Err(DedupeFull));
                    } else {
                        prop_assert_eq!(got, Ok(()));
                        reference.push_back((id, now + horizon));
                    }
                }
                prop_assert_eq!(d.len(), reference.len());
            }
        }
    }
}
