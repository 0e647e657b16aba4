//! Dedupe by time: every EXECUTE plan id is remembered for a horizon (default 24 h), never
//! forgotten earlier, whatever the traffic.
//!
//! Three parts, so that a new id (the common case) is answered from the cache:
//! - a fingerprint [`Filter`] (about 2.7 MiB for 1 Mi ids) that says "certainly new" for a new
//!   id without touching the large tables;
//! - the exact table, a fixed-capacity [`IdMap`] (id → expiry), consulted only when the filter
//!   says "perhaps" (a re-delivery, or about one new id in 1,400);
//! - a ring of `(id, expiry)` in acceptance order. Acceptance times only grow (wall-clock ms
//!   derived from the engine's monotonic clock, and the journal's order on replay), so the
//!   ring is also ordered by expiry: forgetting is popping its front while the front has
//!   expired.
//!
//! A new id goes into the filter and the ring at once and into the exact table a few plans
//! later ([`PENDING`]): its bucket is prefetched at acceptance, so the write finds it in the
//! cache instead of stalling the plan (and the permit CAS after it) on a memory access. Until
//! then the newest ring entries are looked at directly. Removing expired ids is housekeeping
//! that may wait, done after a plan's events have left ([`Dedupe::tidy`], a few ids per plan,
//! their buckets prefetched a few ids ahead). Whether an id is remembered is decided by its
//! expiry, not by its presence. Nothing allocates after construction.
//!
//! Invariants: every id held (in the exact table or pending) has one filter copy; a pending id
//! is in neither the exact table nor another pending entry; an id held in the exact table is
//! never also pending (a re-acceptance of a held id flushes the pending entries first).
//!
//! One exception (failover): a plan whose order was not sent because this host did not lead
//! is forgotten ([`Dedupe::forget`]), so that a later delivery is decided again.
//!
//! When the capacity is taken by ids younger than the horizon, a new plan is refused
//! ([`DedupeFull`]: the engine blocks it `dedupe_full`, counted and logged) instead of an id
//! being forgotten early. The configuration sizes the capacity from the horizon and the
//! expected rate and checks it against the permit table at start.

mod filter;

use crate::idmap::IdMap;
pub use filter::Filter;
use quantum_ipc::bigmem::BigSlice;

/// New ids kept out of the exact table, newest first, until this many younger ones came
/// (their buckets have been prefetched since).
pub const PENDING: usize = 8;
/// The most pending ids at once, whoever calls: past it, acceptance itself moves the oldest.
const MAX_PENDING: usize = 2 * PENDING;
/// Expired ids whose buckets are prefetched ahead of their removal.
const EXPIRY_AHEAD: usize = 4;

/// A ring entry's and a map value's word: the expiry in ms (below 2^62), whether the id's
/// fingerprint is stored in the filter (else it was counted in an overflow word), and the
/// parity of the filter's rebuilds when it was put in (so a rebuild puts each id in once).
const STORED: u64 = 1 << 63;
/// See [`STORED`].
const EPOCH: u64 = 1 << 62;

#[inline]
fn expiry(word: u64) -> u64 {
    word & !(STORED | EPOCH)
}

/// Every remembered id is younger than the horizon and the capacity is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DedupeFull;

/// Plan ids remembered for a time horizon.
#[derive(Debug)]
pub struct Dedupe {
    filter: Filter,
    /// Id → its word (the newest, if it was accepted again after expiring). Holds every ring
    /// entry's id but the `pending` newest ones.
    ids: IdMap<u64>,
    /// `(id, word)` in acceptance order; `len` entries from `head`, wrapping.
    ring: BigSlice<(u64, u64)>,
    head: usize,
    len: usize,
    /// The newest ring entries whose ids are not in `ids` yet.
    pending: usize,
    horizon_ms: u64,
    /// [`EPOCH`] or 0, flipped by each rebuild of the filter; every word written carries it.
    epoch: u64,
}

impl Dedupe {
    /// Remembers up to `capacity` ids (at least 1) for `horizon_ms` each.
    pub fn new(capacity: usize, horizon_ms: u64) -> Self {
        let capacity = capacity.max(1);
        Dedupe {
            filter: Filter::new(capacity),
            ids: IdMap::with_max_len(capacity),
            ring: BigSlice::new(capacity, (0, 0)),
            head: 0,
            len: 0,
            pending: 0,
            horizon_ms,
            epoch: 0,
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

    /// Bytes taken by the three tables (filter, exact table, ring), all allocated at start.
    pub fn bytes(&self) -> usize {
        self.filter.bytes() + self.ids.bytes() + self.ring.len() * std::mem::size_of::<(u64, u64)>()
    }

    /// Bytes of the filter in use: what a new id's look-up touches at random. It grows with
    /// the ids held, up to the filter's share of [`Dedupe::bytes`].
    pub fn filter_bytes_in_use(&self) -> usize {
        self.filter.bytes_in_use()
    }

    /// Ids the filter could not store (both their blocks full): each makes look-ups in its
    /// block go to the exact table. Zero unless the ids are adversarial or the set is full.
    pub fn overflowed(&self) -> usize {
        self.filter.overflowed()
    }

    /// The ring index of the entry `k` places after the oldest.
    #[inline]
    fn at(&self, k: usize) -> usize {
        let i = self.head + k;
        if i >= self.ring.len() {
            i - self.ring.len()
        } else {
            i
        }
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
        self.flush_all();
        self.tidy(now_ms, usize::MAX);
    }

    /// Moves the oldest pending id into the exact table.
    #[inline]
    fn flush_one(&mut self) {
        let (id, word) = self.ring[self.at(self.len - self.pending)];
        // Cannot fail: the table takes as many ids as the ring, and holds fewer than it.
        let _ = self.ids.insert(id, word);
        self.pending -= 1;
    }

    fn flush_all(&mut self) {
        while self.pending > 0 {
            self.flush_one();
        }
    }

    /// Housekeeping: moves pending ids accepted [`PENDING`] or more ids ago into the exact
    /// table, then forgets at most `most` of the ids whose horizon ended at or before
    /// `now_ms`, oldest first; returns how many were forgotten. Per plan, a small `most`
    /// keeps pace with the intake.
    #[inline]
    pub fn tidy(&mut self, now_ms: u64, most: usize) -> usize {
        while self.pending > PENDING {
            self.flush_one();
        }
        let mut n = 0;
        while n < most && self.len > 0 {
            let (id, word) = self.ring[self.head];
            if expiry(word) > now_ms {
                break;
            }
            if self.pending == self.len {
                // The oldest entry is still pending (a horizon shorter than a few plans).
                self.flush_one();
            }
            // An id accepted again after it expired has a newer expiry in the map (and a newer
            // entry further on in the ring): only its last entry removes it. The map's word
            // says how its fingerprint is kept (a rebuild of the filter may have changed it).
            if let Some(current) = self.current(id, word) {
                self.ids.remove(id);
                self.filter.remove(id, current & STORED != 0);
            }
            self.head = self.at(1);
            self.len -= 1;
            n += 1;
        }
        // The buckets of the next expired ids start loading now, for the next calls.
        let flushed = self.len - self.pending;
        for k in EXPIRY_AHEAD..(EXPIRY_AHEAD + most.min(2)).min(flushed) {
            let (id, word) = self.ring[self.at(k)];
            if expiry(word) > now_ms {
                break;
            }
            self.ids.prefetch(id);
            self.filter.prefetch(id);
        }
        if let Some(lines) = self.filter.resize() {
            self.rebuild_filter(lines);
        }
        n
    }

    /// The map's word for `id` when the ring entry `word` is its newest acceptance.
    #[inline]
    fn current(&self, id: u64, word: u64) -> Option<u64> {
        self.ids.get(id).filter(|w| expiry(*w) == expiry(word))
    }

    /// Rebuilds the filter on `lines` lines: every held id put in again, oldest first, and its
    /// map word told how its fingerprint is kept now. Runs each time the ids held double or
    /// fall to a sixteenth, after a plan's events have left; its cost is the ids held times a
    /// look-up in the exact table, whose buckets are prefetched a few entries ahead.
    #[cold]
    fn rebuild_filter(&mut self, lines: usize) {
        const AHEAD: usize = 16;
        self.flush_all();
        self.filter.reset(lines);
        self.epoch ^= EPOCH;
        for k in 0..self.len.min(AHEAD) {
            self.ids.prefetch(self.ring[self.at(k)].0);
        }
        for k in 0..self.len {
            if k + AHEAD < self.len {
                self.ids.prefetch(self.ring[self.at(k + AHEAD)].0);
            }
            let (id, word) = self.ring[self.at(k)];
            // Not put in yet in this rebuild: an id forgotten and accepted again within the
            // same millisecond has two ring entries that both match.
            if let Some(current) = self.current(id, word).filter(|w| w & EPOCH != self.epoch) {
                let stored = if self.filter.insert(id) { STORED } else { 0 };
                let _ = self.ids.insert(id, expiry(current) | stored | self.epoch);
            }
        }
    }

    /// Starts loading what [`Dedupe::contains`] reads for `id` (the filter's two lines), so the
    /// look-up can overlap with work that does not depend on it.
    #[inline]
    pub fn prefetch(&self, id: u64) {
        self.filter.prefetch(id);
    }

    /// The newest word held for `id`, expired or not.
    #[inline]
    fn held(&self, id: u64) -> Option<u64> {
        if !self.filter.perhaps(id) {
            return None;
        }
        (0..self.pending)
            .map(|k| self.ring[self.at(self.len - 1 - k)])
            .find(|(i, _)| *i == id)
            .map(|(_, w)| w)
            .or_else(|| self.ids.get(id))
    }

    /// Whether `id` is remembered at `now_ms`: accepted less than the horizon before.
    #[inline]
    pub fn contains(&self, id: u64, now_ms: u64) -> bool {
        self.held(id).is_some_and(|w| expiry(w) > now_ms)
    }

    /// Forgets `id` before its horizon: only for a plan the core knows was never ordered and
    /// is not its to decide any more (failover: its order was not sent because this host did
    /// not lead; the leader decides it). Its ring entry stays until it expires (tidying skips
    /// it), so the room comes back only then.
    pub fn forget(&mut self, id: u64) {
        self.flush_all();
        if let Some(word) = self.ids.remove(id) {
            self.filter.remove(id, word & STORED != 0);
        }
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
        let expires = at_ms.saturating_add(self.horizon_ms).min(EPOCH - 1);
        let tail = self.at(self.len);
        match self.held(id) {
            Some(old) => {
                // Held but expired (not tidied yet): the exact table gets the newer word now,
                // keeping the filter's copy; pending entries go first, so none is older.
                self.flush_all();
                let word = expires | (old & STORED) | self.epoch;
                let _ = self.ids.insert(id, word);
                self.ring[tail] = (id, word);
            }
            None => {
                if self.pending == MAX_PENDING {
                    self.flush_one();
                }
                let stored = if self.filter.insert(id) { STORED } else { 0 };
                self.ring[tail] = (id, expires | stored | self.epoch);
                self.ids.prefetch(id);
                self.pending += 1;
            }
        }
        self.len += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{HashSet, VecDeque};

    impl Dedupe {
        /// A set whose filter has `blocks` lines, one in use at first: it grows, and with few
        /// lines ids collide and overflow.
        fn with_filter_blocks(capacity: usize, horizon_ms: u64, blocks: usize) -> Self {
            Dedupe {
                filter: Filter::with_blocks(blocks, 1),
                ..Dedupe::new(capacity, horizon_ms)
            }
        }
    }

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

    #[test]
    fn new_ids_reach_the_exact_table_a_few_ids_later_and_are_found_meanwhile() {
        let mut d = Dedupe::new(1 << 10, 1_000);
        for id in 1..=100u64 {
            d.insert(id << 20, id).unwrap();
            d.tidy(id, 2);
            assert!(d.pending <= PENDING);
            assert_eq!(d.ids.len() + d.pending, d.len());
        }
        // Without tidying, acceptance itself bounds what is pending.
        for id in 101..=200u64 {
            d.insert(id << 20, 100).unwrap();
            assert!(d.pending <= MAX_PENDING);
        }
        assert!((1..=200u64).all(|id| d.contains(id << 20, 500)));
        assert!(!d.contains(7, 500));
    }

    #[test]
    fn memory_for_one_mi_ids_is_stated() {
        let d = Dedupe::new(1 << 20, 86_400_000);
        // Filter 43,691 lines (2.67 MiB) + exact table 2 Mi buckets of 16 bytes (32 MiB) + ring
        // 1 Mi entries of 16 bytes (16 MiB).
        assert_eq!(d.bytes(), 43_691 * 64 + (32 << 20) + (16 << 20));
        assert_eq!(d.overflowed(), 0);
    }

    #[test]
    fn the_filter_grows_with_the_ids_held_and_finds_every_one_after() {
        let mut d = Dedupe::new(1 << 16, 1_000_000);
        assert_eq!(d.filter_bytes_in_use(), 4096);
        let id = |i: u64| i.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
        for i in 0..20_000u64 {
            d.insert(id(i), i / 100).unwrap();
            d.tidy(i / 100, 2);
        }
        // 20,000 ids at most 16 a line: 2,048 lines of the 2,731 allocated.
        assert_eq!(d.filter_bytes_in_use(), 2048 * 64);
        assert!((0..20_000).all(|i| d.contains(id(i), 300)));
        assert_eq!(
            (0..20_000).filter(|i| d.contains(id(*i) ^ 2, 300)).count(),
            0
        );
        // Past the horizon everything goes, whatever the rebuilds did to the words, and the
        // filter shrinks at each housekeeping until it is back to its first size.
        d.expire(2_000_000);
        assert!(d.is_empty() && d.ids.is_empty() && d.filter.count == 0);
        for _ in 0..5 {
            d.tidy(2_000_000, 2);
        }
        assert_eq!(d.filter_bytes_in_use(), 4096);
    }

    /// One step of the property tests below.
    #[derive(Clone, Debug)]
    enum Op {
        Insert(u64),
        /// Time passes.
        Wait(u64),
        Tidy(usize),
        Forget(u64),
        /// A new process: the set rebuilt from the ids still remembered, oldest first, as the
        /// engine restores it from the journal.
        Restart,
    }

    fn op(ids: impl Strategy<Value = u64> + Clone) -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => ids.clone().prop_map(Op::Insert),
            3 => (0u64..40).prop_map(Op::Wait),
            2 => (0usize..3).prop_map(Op::Tidy),
            1 => ids.prop_map(Op::Forget),
            1 => Just(Op::Restart),
        ]
    }

    /// Runs `ops` on a set of capacity `cap` (its filter with `blocks` blocks, or sized from
    /// the capacity) and on a plain reference: acceptances in order, each `(id, at, forgotten)`.
    fn against_a_reference(
        ops: Vec<Op>,
        cap: usize,
        blocks: Option<usize>,
    ) -> Result<(), TestCaseError> {
        const HORIZON: u64 = 100;
        let make = || match blocks {
            Some(b) => Dedupe::with_filter_blocks(cap, HORIZON, b),
            None => Dedupe::new(cap, HORIZON),
        };
        let mut d = make();
        let mut reference: VecDeque<(u64, u64, bool)> = VecDeque::new();
        let mut now = 0u64;
        for op in ops {
            reference.retain(|(_, at, _)| at + HORIZON > now);
            let remembered: HashSet<u64> = reference
                .iter()
                .filter(|(_, _, forgotten)| !forgotten)
                .map(|(id, _, _)| *id)
                .collect();
            match op {
                Op::Insert(id) => {
                    prop_assert_eq!(d.contains(id, now), remembered.contains(&id), "{}", id);
                    let got = d.insert(id, now);
                    if !remembered.contains(&id) {
                        if reference.len() == cap {
                            prop_assert_eq!(got, Err(DedupeFull));
                        } else {
                            prop_assert_eq!(got, Ok(()));
                            reference.push_back((id, now, false));
                        }
                    } else {
                        prop_assert_eq!(got, Ok(()));
                    }
                }
                Op::Wait(dt) => now += dt,
                Op::Tidy(most) => {
                    let held = d.len();
                    let tidied = d.tidy(now, most);
                    prop_assert!(tidied <= most && d.len() == held - tidied);
                }
                Op::Forget(id) => {
                    d.forget(id);
                    for e in reference.iter_mut().filter(|e| e.0 == id) {
                        e.2 = true;
                    }
                }
                Op::Restart => {
                    d = make();
                    reference.retain(|(_, _, forgotten)| !forgotten);
                    for (id, at, _) in &reference {
                        prop_assert_eq!(d.insert(*id, *at), Ok(()));
                    }
                }
            }
            prop_assert!(d.len() >= reference.len());
            prop_assert!(d.pending <= MAX_PENDING);
            for id in &remembered {
                // Checked again after the step: nothing younger than the horizon is lost.
                let still = reference
                    .iter()
                    .any(|(i, at, f)| i == id && !f && at + HORIZON > now);
                prop_assert_eq!(d.contains(*id, now), still, "{} after the step", id);
            }
        }
        d.expire(now);
        reference.retain(|(_, at, _)| at + HORIZON > now);
        prop_assert_eq!(d.len(), reference.len());
        // Once everything expired, nothing is left anywhere: no fingerprint, overflow count or
        // map entry leaked by re-acceptance, forgetting, overflow or rebuilds.
        d.expire(now + HORIZON);
        prop_assert!(d.is_empty() && d.ids.is_empty());
        prop_assert_eq!((d.filter.count, d.overflowed()), (0, 0));
        prop_assert!(d.filter.is_clear());
        Ok(())
    }

    proptest! {
        /// Few ids, so re-deliveries, re-acceptance after expiry and forgetting are frequent;
        /// tiny capacities, so refusals are too; however little is tidied (0 to 2 ids per
        /// step), which only delays the room.
        #[test]
        fn matches_a_reference(ops in prop::collection::vec(op(0u64..40), 0..300), cap in 1usize..12) {
            against_a_reference(ops, cap, None)?;
        }

        /// Random 64-bit ids (the legacy's) with their re-deliveries, on a set large enough to
        /// hold them all, across restarts.
        #[test]
        fn random_ids_and_their_redeliveries(
            ops in prop::collection::vec(op(prop_oneof![any::<u64>(), 0u64..8, Just(u64::MAX)]), 0..400),
        ) {
            against_a_reference(ops, 512, Some(22))?;
        }

        /// Adversarial for the filter: one to three blocks for up to 200 ids, so every block
        /// overflows and fingerprints collide; exactness must not depend on the filter.
        #[test]
        fn a_filter_that_overflows_changes_nothing(
            ops in prop::collection::vec(op(0u64..120), 0..400),
            blocks in 1usize..4,
        ) {
            against_a_reference(ops, 200, Some(blocks))?;
        }
    }
}
