//! Dedupe by time: every EXECUTE plan id is remembered for a horizon (default 24 h), never
//! forgotten earlier, whatever the traffic.
//!
//! Three parts, so that a new id (the common case) is answered from the cache:
//! - a fingerprint [`Filter`] that says "certainly new" for a new id without touching the large
//!   tables. It is sized to the ids held (4 KiB at first, at most 2.7 MiB for 1 Mi ids), so it
//!   stays in the cache;
//! - the exact table, a fixed-capacity [`IdMap`] (id → expiry), read only when the filter says
//!   "perhaps" (a re-delivery, or about one new id in 1,400);
//! - a ring of `(id, word)` in acceptance order, the word holding the expiry and how that
//!   acceptance's fingerprint is kept. Acceptance times only grow (wall-clock ms derived from
//!   the engine's monotonic clock, and the journal's order on replay), so the ring is also
//!   ordered by expiry: forgetting is popping its front while the front has expired.
//!
//! Each ring entry has one fingerprint copy in the filter, taken out when the entry leaves the
//! ring, so every id held (its newest acceptance is in the ring) answers "perhaps". An id
//! forgotten early, or accepted again, leaves a copy until its old entry expires: a false
//! "perhaps" at worst, which the exact table corrects.
//!
//! A new id goes into the filter and the ring at once and into the exact table a few ids later
//! ([`PENDING`]): its bucket is prefetched at acceptance, so the write finds it in the cache
//! instead of stalling the plan (and the permit CAS after it) on a memory access. Until then
//! the newest ring entries are looked at directly. Removing expired ids is housekeeping that
//! may wait, done after a plan's events have left ([`Dedupe::tidy`], a few ids per plan, their
//! lines prefetched a few removals ahead). Whether an id is remembered is decided by its
//! expiry, not by its presence. Nothing allocates after construction.
//!
//! The filter changes size without a pause: there are two, the one in use and an empty one.
//! To resize, the empty one takes the new size and becomes the one new ids go into, and
//! housekeeping moves the older entries' copies over, [`MIGRATE`] per plan, newest first;
//! meanwhile a look-up asks both. Each word says which filter holds its copy.
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
/// How far ahead of its removal an expiring id's lines are prefetched, in removals.
const EXPIRY_AHEAD: usize = 4;
/// Expired ids past which housekeeping removes this many at a time ([`Dedupe::backlog`]).
pub const BACKLOG: usize = 64;
/// Ring entries whose fingerprint copies one housekeeping call moves to a resized filter.
pub const MIGRATE: usize = 32;

/// A ring entry's word: the expiry in ms (below 2^62), whether its fingerprint copy is stored
/// in a filter (else it was counted in an overflow word), and which of the two filters.
const STORED: u64 = 1 << 63;
/// See [`STORED`]: set for the second filter.
const SECOND: u64 = 1 << 62;

#[inline]
fn expiry(word: u64) -> u64 {
    word & !(STORED | SECOND)
}

/// Every remembered id is younger than the horizon and the capacity is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DedupeFull;

/// Plan ids remembered for a time horizon.
#[derive(Debug)]
pub struct Dedupe {
    /// The filter in use (`filters[cur]`) and the other: empty, or being drained into it.
    filters: [Filter; 2],
    cur: usize,
    /// Ring entries (the oldest ones) whose copies are still in the other filter.
    unmoved: usize,
    /// Id → its expiry (the newest, if it was accepted again after expiring). Holds every ring
    /// entry's id but the `pending` newest ones'.
    ids: IdMap<u64>,
    /// `(id, word)` in acceptance order; `len` entries from `head`, wrapping.
    ring: BigSlice<(u64, u64)>,
    head: usize,
    len: usize,
    /// The newest ring entries whose ids are not in `ids` yet.
    pending: usize,
    horizon_ms: u64,
}

impl Dedupe {
    /// Remembers up to `capacity` ids (at least 1) for `horizon_ms` each.
    pub fn new(capacity: usize, horizon_ms: u64) -> Self {
        let capacity = capacity.max(1);
        Dedupe {
            filters: [Filter::new(capacity), Filter::new(capacity)],
            cur: 0,
            unmoved: 0,
            ids: IdMap::with_max_len(capacity),
            ring: BigSlice::new(capacity, (0, 0)),
            head: 0,
            len: 0,
            pending: 0,
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

    /// Bytes taken by the tables (two filters, exact table, ring), all allocated at start.
    pub fn bytes(&self) -> usize {
        self.filters.iter().map(Filter::bytes).sum::<usize>()
            + self.ids.bytes()
            + self.ring.len() * std::mem::size_of::<(u64, u64)>()
    }

    /// Bytes of the filter in use: what a new id's look-up touches at random. It follows the
    /// ids held, up to one filter's share of [`Dedupe::bytes`].
    pub fn filter_bytes_in_use(&self) -> usize {
        self.filters[self.cur].bytes_in_use()
    }

    /// Acceptances the filters could not store (both their lines full): each makes look-ups in
    /// its line go to the exact table. Zero unless the ids are adversarial or the set is full.
    pub fn overflowed(&self) -> usize {
        self.filters.iter().map(Filter::overflowed).sum()
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

    /// The filter that holds the copy of a ring entry with this word.
    #[inline]
    fn filter_of(word: u64) -> usize {
        usize::from(word & SECOND != 0)
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
        let _ = self.ids.insert(id, expiry(word));
        self.pending -= 1;
    }

    fn flush_all(&mut self) {
        while self.pending > 0 {
            self.flush_one();
        }
    }

    /// Housekeeping: moves pending ids accepted [`PENDING`] or more ids ago into the exact
    /// table, forgets at most `most` of the ids whose horizon ended at or before `now_ms`,
    /// oldest first, and moves up to [`MIGRATE`] fingerprint copies to a resized filter;
    /// returns how many ids were forgotten. Per plan, a small `most` keeps pace with the
    /// intake.
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
            self.prefetch_expiring(now_ms);
            // An id accepted again has a newer expiry in the map (and a newer entry further
            // on in the ring): only its last entry removes it. Every entry takes its own
            // fingerprint copy out.
            if self.ids.get(id) == Some(expiry(word)) {
                self.ids.remove(id);
            }
            self.filters[Self::filter_of(word)].remove(id, word & STORED != 0);
            self.head = self.at(1);
            self.len -= 1;
            self.unmoved = self.unmoved.saturating_sub(1);
            n += 1;
        }
        if self.unmoved > 0 {
            self.migrate(MIGRATE);
        } else if let Some(lines) = self.filters[self.cur].resize() {
            self.start_resize(lines);
        }
        n
    }

    /// Starts loading the lines of the entry [`EXPIRY_AHEAD`] places after the oldest, if it
    /// expires within the next millisecond: under load ids expire as fast as they come, and
    /// each is then removed a few removals after its lines were asked for; when none is due
    /// soon, nothing is loaded for nothing.
    #[inline]
    fn prefetch_expiring(&self, now_ms: u64) {
        if EXPIRY_AHEAD < self.len - self.pending {
            let (id, word) = self.ring[self.at(EXPIRY_AHEAD)];
            if expiry(word) <= now_ms.saturating_add(1) {
                self.ids.prefetch(id);
                self.filters[Self::filter_of(word)].prefetch(id);
            }
        }
    }

    /// True when at least [`BACKLOG`] held ids have expired: a burst that has ended, or a
    /// pause in housekeeping. The engine then tidies [`BACKLOG`] at a time instead of a few, so
    /// the filter shrinks back to the ids really remembered (each one is removed once either
    /// way; this only does it sooner, its lines prefetched a few removals ahead).
    #[inline]
    pub fn backlog(&self, now_ms: u64) -> bool {
        self.len - self.pending >= BACKLOG && expiry(self.ring[self.at(BACKLOG - 1)].1) <= now_ms
    }

    /// The other filter, empty, takes `lines` lines and becomes the one in use; every entry
    /// held is left to move.
    #[cold]
    fn start_resize(&mut self, lines: usize) {
        let next = 1 - self.cur;
        self.filters[next].set_lines(lines);
        self.cur = next;
        self.unmoved = self.len;
    }

    /// Moves the copies of up to `most` entries, newest unmoved first, into the filter in use.
    fn migrate(&mut self, most: usize) {
        let (cur, old) = (self.cur, 1 - self.cur);
        let second = if cur == 1 { SECOND } else { 0 };
        for _ in 0..most.min(self.unmoved) {
            self.unmoved -= 1;
            let i = self.at(self.unmoved);
            let (id, word) = self.ring[i];
            if Self::filter_of(word) == old {
                self.filters[old].remove(id, word & STORED != 0);
                let stored = if self.filters[cur].insert(id) {
                    STORED
                } else {
                    0
                };
                self.ring[i] = (id, expiry(word) | stored | second);
            }
        }
    }

    /// Starts loading what [`Dedupe::contains`] reads for `id` (the filter's two lines), so the
    /// look-up can overlap with work that does not depend on it.
    #[inline]
    pub fn prefetch(&self, id: u64) {
        self.filters[self.cur].prefetch(id);
    }

    /// The newest expiry held for `id`, passed or not.
    #[inline]
    fn held(&self, id: u64) -> Option<u64> {
        let perhaps = self.filters[self.cur].perhaps(id)
            || (self.unmoved > 0 && self.filters[1 - self.cur].perhaps(id));
        if !perhaps {
            return None;
        }
        (0..self.pending)
            .map(|k| self.ring[self.at(self.len - 1 - k)])
            .find(|(i, _)| *i == id)
            .map(|(_, w)| expiry(w))
            .or_else(|| self.ids.get(id))
    }

    /// Whether `id` is remembered at `now_ms`: accepted less than the horizon before.
    #[inline]
    pub fn contains(&self, id: u64, now_ms: u64) -> bool {
        self.held(id).is_some_and(|e| e > now_ms)
    }

    /// Forgets `id` before its horizon: only for a plan the core knows was never ordered and
    /// is not its to decide any more (failover: its order was not sent because this host did
    /// not lead; the leader decides it). Its ring entry stays until it expires (tidying then only
    /// takes its fingerprint copy out), so the room comes back only then.
    pub fn forget(&mut self, id: u64) {
        self.flush_all();
        self.ids.remove(id);
    }

    /// Remembers `id`, accepted at `at_ms`, until `at_ms + horizon`. Forgets expired ids
    /// when it needs their room; refuses when the rest fill the capacity. An id remembered at
    /// `at_ms` is kept as is.
    pub fn insert(&mut self, id: u64, at_ms: u64) -> Result<(), DedupeFull> {
        if self.contains(id, at_ms) {
            return Ok(());
        }
        self.insert_new(id, at_ms)
    }

    /// [`Dedupe::insert`] for an id the caller just found not remembered at `at_ms` (the
    /// plan path looks before it opens a slot): one look-up less.
    #[inline]
    pub fn insert_new(&mut self, id: u64, at_ms: u64) -> Result<(), DedupeFull> {
        debug_assert!(!self.contains(id, at_ms), "insert_new of a remembered id");
        if self.is_full(at_ms) {
            return Err(DedupeFull);
        }
        if self.pending == MAX_PENDING {
            self.flush_one();
        }
        let expires = at_ms.saturating_add(self.horizon_ms).min(SECOND - 1);
        let stored = if self.filters[self.cur].insert(id) {
            STORED
        } else {
            0
        };
        let second = if self.cur == 1 { SECOND } else { 0 };
        let tail = self.at(self.len);
        self.ring[tail] = (id, expires | stored | second);
        self.ids.prefetch(id);
        self.pending += 1;
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
                filters: [
                    Filter::with_blocks(blocks, 1),
                    Filter::with_blocks(blocks, 1),
                ],
                ..Dedupe::new(capacity, horizon_ms)
            }
        }

        /// Nothing left in any table (once everything has expired).
        fn is_clear(&self) -> bool {
            self.is_empty()
                && self.ids.is_empty()
                && self.overflowed() == 0
                && self.filters.iter().all(|f| f.is_empty() && f.is_clear())
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
            assert_eq!(d.pending, PENDING.min(id as usize));
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
        // Two filters of 43,691 lines (2.67 MiB each) + exact table 2 Mi buckets of 16 bytes
        // (32 MiB) + ring 1 Mi entries of 16 bytes (16 MiB).
        assert_eq!(d.bytes(), 2 * 43_691 * 64 + (32 << 20) + (16 << 20));
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
        // Past the horizon everything goes, whatever the resizes did to the words, and the
        // filter shrinks at each housekeeping until it is back to its first size.
        d.expire(2_000_000);
        assert!(d.is_clear());
        for _ in 0..5 {
            d.tidy(2_000_000, 2);
        }
        assert_eq!(d.filter_bytes_in_use(), 4096);
    }

    #[test]
    fn an_expiry_past_the_words_range_is_clamped_not_mixed_with_its_flags() {
        let mut d = Dedupe::new(16, 1_000);
        d.insert(7, u64::MAX - 5).unwrap();
        assert!(d.contains(7, 1 << 61));
        assert_eq!(expiry(d.ring[d.head].1), SECOND - 1);
    }

    #[test]
    fn overflowed_acceptances_are_undone_as_they_expire() {
        // One line of 31 slots for 50 ids: 19 overflow.
        let mut d = Dedupe::with_filter_blocks(200, 100, 1);
        for id in 1..=50u64 {
            d.insert(id << 32, 0).unwrap();
        }
        d.tidy(0, 0);
        assert_eq!(d.overflowed(), 50 - 31);
        assert!((1..=50u64).all(|id| d.contains(id << 32, 50)));
        d.tidy(100, 2);
        assert_eq!(d.len(), 48);
        d.expire(100);
        assert!(d.is_clear());
    }

    #[test]
    fn a_backlog_is_exactly_a_batch_of_expired_ids_in_the_table() {
        // 60 held, all expired: fewer than a batch, however many are pending.
        let mut d = Dedupe::new(1 << 12, 100);
        for id in 1..=60u64 {
            d.insert(id, 0).unwrap();
        }
        d.tidy(0, 0);
        assert!(d.pending > 0 && !d.backlog(1_000));
        // 64 expiring at 100, then younger ones: a backlog at 100 exactly, not before.
        let mut d = Dedupe::new(1 << 12, 100);
        for id in 1..=BACKLOG as u64 {
            d.insert(id, 0).unwrap();
        }
        for id in 1..=20u64 {
            d.insert(1_000 + id, 50).unwrap();
        }
        d.tidy(0, 0);
        assert!(!d.backlog(99) && d.backlog(100));
    }

    #[test]
    fn an_expired_burst_is_a_backlog_until_fewer_than_a_batch_are_left() {
        let mut d = Dedupe::new(1 << 12, 100);
        for id in 1..=(BACKLOG as u64 + 10) {
            d.insert(id, 0).unwrap();
        }
        d.tidy(0, 0);
        assert!(!d.backlog(99));
        assert!(d.backlog(100));
        assert_eq!(d.tidy(100, BACKLOG), BACKLOG);
        assert!(!d.backlog(100));
        assert_eq!(d.tidy(100, BACKLOG), 10);
        assert!(d.is_empty() && d.ids.is_empty());
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

    /// Steps with ids from `ids` and waits shorter than `wait` ms.
    fn op(ids: impl Strategy<Value = u64> + Clone, wait: u64) -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => ids.clone().prop_map(Op::Insert),
            3 => (0u64..wait).prop_map(Op::Wait),
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
        prop_assert!(d.is_clear());
        Ok(())
    }

    proptest! {
        /// Few ids, so re-deliveries, re-acceptance after expiry and forgetting are frequent;
        /// tiny capacities, so refusals are too; however little is tidied (0 to 2 ids per
        /// step), which only delays the room.
        #[test]
        fn matches_a_reference(ops in prop::collection::vec(op(0u64..40, 40), 0..300), cap in 1usize..12) {
            against_a_reference(ops, cap, None)?;
        }

        /// Random 64-bit ids (the legacy's) with their re-deliveries, on a set large enough to
        /// hold them all, across restarts.
        #[test]
        fn random_ids_and_their_redeliveries(
            ops in prop::collection::vec(op(prop_oneof![any::<u64>(), 0u64..8, Just(u64::MAX)], 40), 0..400),
        ) {
            against_a_reference(ops, 512, Some(22))?;
        }

        /// Adversarial for the filter: one to three lines for up to 200 ids, time moving
        /// slowly so that most ids stay held, so lines overflow and fingerprints collide;
        /// exactness must not depend on the filter.
        #[test]
        fn a_filter_that_overflows_changes_nothing(
            ops in prop::collection::vec(op(0u64..120, 3), 0..400),
            blocks in 1usize..4,
        ) {
            against_a_reference(ops, 200, Some(blocks))?;
        }
    }
}
