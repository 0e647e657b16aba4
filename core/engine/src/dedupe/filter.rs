//! A fingerprint filter in front of dedupe's exact table: answers "certainly not remembered"
//! for a new plan id from a table small enough to stay in the cache.
//!
//! Each id hashes to a 16-bit fingerprint and to two blocks of one cache line each; the
//! fingerprint is kept in whichever of the two has more room. A look-up reads both lines and
//! compares all their fingerprints at once: no match means the id was never put in (no false
//! negative, by construction); a match means "perhaps" (about one new id in 1,400 when the
//! table is full, 48 of 65,535 fingerprints) and the exact table decides.
//!
//! The second block is derived from the first and the fingerprint alone (`alt = g(fp) - b`
//! modulo the block count, its own inverse), so every id with the same fingerprint and one block
//! in common has the same two blocks: removing any copy of that fingerprint from either block
//! leaves one copy per remaining id. This is the partial-key trick of cuckoo filters, without
//! the kicking: when both blocks are full the id is not stored, and its first block counts it
//! in an overflow word instead, which makes every look-up there answer "perhaps". The owner
//! keeps [`Filter::insert`]'s answer for each id put in (dedupe: in the ring entry's word), so
//! the right thing is undone on removal. An overflow count that reaches its maximum stays there (the block is then always
//! "perhaps"): slower, never wrong.
//!
//! Sized to the ids held, not to the capacity: a filter line touched once a second is not in
//! the cache when the next plan needs it, whatever its size, so the filter starts with
//! [`MIN_BLOCKS`] lines in use and the owner moves its ids into a filter of twice the lines
//! ([`Filter::resize`], [`Filter::set_lines`]) when it holds more than [`GROW_LOAD`] ids per
//! line, up to the lines allocated for the capacity, and into one of half the lines when few
//! are left. The memory is allocated at construction for the capacity; only its use changes.

use quantum_ipc::bigmem::BigSlice;

/// Fingerprint slots per block; slot 0 of each block holds its overflow count.
const SLOTS: usize = 32;
/// Ids per block at full capacity: about 77 % of a block's fingerprint slots, where the
/// fuller of two random blocks seldom overflows.
const IDS_PER_BLOCK: usize = 24;
/// Lines in use at first: 4 KiB, for about a thousand ids.
pub const MIN_BLOCKS: usize = 64;
/// Ids per line in use past which the owner should rebuild the filter on twice the lines (half
/// the fingerprint slots: two random lines then almost never both fill).
pub const GROW_LOAD: usize = 16;
/// An overflow count that reached this stays.
const STICKY: u16 = u16::MAX;

/// One cache line: the overflow count, then 31 fingerprints (0 is an empty slot).
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Block([u16; SLOTS]);

impl Block {
    /// True when `fp` is in the block (slot 0 compared too: an overflow count equal to `fp`
    /// is only a harmless "perhaps") or anything overflowed here.
    #[inline]
    fn perhaps(&self, fp: u16) -> bool {
        // A fixed-length OR of compares, which the compiler turns into vector compares.
        let mut hit = false;
        for s in self.0 {
            hit |= s == fp;
        }
        hit | (self.0[0] != 0)
    }

    /// Empty fingerprint slots.
    #[inline]
    fn room(&self) -> usize {
        self.0[1..].iter().filter(|s| **s == 0).count()
    }

    /// Puts `fp` in the first empty slot; false when there is none.
    fn put(&mut self, fp: u16) -> bool {
        match self.0[1..].iter().position(|s| *s == 0) {
            Some(i) => {
                self.0[1 + i] = fp;
                true
            }
            None => false,
        }
    }

    /// Takes one copy of `fp` out; false when there is none.
    fn take(&mut self, fp: u16) -> bool {
        match self.0[1..].iter().position(|s| *s == fp) {
            Some(i) => {
                self.0[1 + i] = 0;
                true
            }
            None => false,
        }
    }
}

/// Where an id lives in the filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Place {
    first: usize,
    second: usize,
    fp: u16,
}

/// The filter: see the module documentation.
#[derive(Debug)]
pub struct Filter {
    /// Allocated for the capacity; the first `active` are in use.
    blocks: BigSlice<Block>,
    active: usize,
    /// Ids put in and not taken out.
    count: usize,
    /// An overflow count saturated since the last [`Filter::set_lines`].
    sticky: bool,
    /// Ids counted in overflow words, for statistics.
    overflowed: usize,
}

/// Mixes a plan id into 64 well-spread bits (a bijection: MurmurHash3's finaliser), so ids
/// that differ in a few bits, or share their low bits, land in unrelated blocks.
#[inline]
fn mix(id: u64) -> u64 {
    let mut h = id;
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// `x` scaled into `0..n` (Lemire's multiply-shift: no division).
#[inline]
fn scale(x: u64, n: usize) -> usize {
    ((u128::from(x) * n as u128) >> 64) as usize
}

impl Filter {
    /// A filter for up to `capacity` ids, [`MIN_BLOCKS`] lines in use at first.
    pub fn new(capacity: usize) -> Self {
        let blocks = capacity.div_ceil(IDS_PER_BLOCK).max(1);
        Self::with_blocks(blocks, MIN_BLOCKS.min(blocks))
    }

    /// A filter of `blocks` lines (at least 1), `active` of them in use at first (tests use
    /// few, to force overflow and growth).
    pub fn with_blocks(blocks: usize, active: usize) -> Self {
        let blocks = blocks.max(1);
        Filter {
            blocks: BigSlice::new(blocks, Block([0; SLOTS])),
            active: active.clamp(1, blocks),
            count: 0,
            sticky: false,
            overflowed: 0,
        }
    }

    /// Bytes allocated.
    pub fn bytes(&self) -> usize {
        self.blocks.len() * std::mem::size_of::<Block>()
    }

    /// Bytes in use: what a look-up touches at random.
    pub fn bytes_in_use(&self) -> usize {
        self.active * std::mem::size_of::<Block>()
    }

    /// True when every line allocated is empty (tests: nothing leaked).
    #[cfg(test)]
    pub fn is_clear(&self) -> bool {
        self.blocks.iter().all(|b| b.0 == [0; SLOTS])
    }

    /// The lines the filter should be rebuilt on (ids moved into an empty filter of that
    /// size), if another size suits the ids it holds: twice as many (at most as many as
    /// allocated) past [`GROW_LOAD`] ids per line; half as many (at least [`MIN_BLOCKS`]) below
    /// an eighth of that, so a burst that has expired leaves no large, cold filter behind.
    #[inline]
    pub fn resize(&self) -> Option<usize> {
        let per_line = GROW_LOAD * self.active;
        if self.count > per_line && self.active < self.blocks.len() {
            Some((self.active * 2).min(self.blocks.len()))
        } else if self.count < per_line / 8 && self.active > MIN_BLOCKS {
            Some((self.active / 2).max(MIN_BLOCKS))
        } else {
            None
        }
    }

    /// True when nothing is in the filter.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Puts `active` lines in use (clamped to 1..=allocated), for an empty filter: every id
    /// was taken out, which left every line zero, so nothing needs clearing (unless an
    /// overflow count saturated, which is cleared here).
    pub fn set_lines(&mut self, active: usize) {
        debug_assert!(self.is_empty(), "only an empty filter changes size");
        if self.sticky {
            for b in self.blocks.iter_mut() {
                *b = Block([0; SLOTS]);
            }
            self.sticky = false;
        }
        self.active = active.clamp(1, self.blocks.len());
        self.overflowed = 0;
    }

    /// Ids counted in overflow words rather than stored (each makes its block answer "perhaps").
    pub fn overflowed(&self) -> usize {
        self.overflowed
    }

    #[inline]
    fn place(&self, id: u64) -> Place {
        let h = mix(id);
        let n = self.active;
        // Low 16 bits: the fingerprint (0 marks an empty slot, so it becomes 1); high bits:
        // the first block. They overlap in no bit the scaling depends on for n < 2^48.
        let fp = (h as u16).max(1);
        let first = scale(h, n);
        // The second block depends on the first and the fingerprint only, and maps back:
        // second(second(b)) = b.
        let g = scale(u64::from(fp).wrapping_mul(0x9e37_79b9_7f4a_7c15), n);
        let second = (g + n - first) % n;
        Place { first, second, fp }
    }

    /// Starts loading both blocks of `id` (a hint; see [`BigSlice::prefetch`]).
    #[inline]
    pub fn prefetch(&self, id: u64) {
        let p = self.place(id);
        self.blocks.prefetch(p.first);
        self.blocks.prefetch(p.second);
    }

    /// False when `id` was certainly never put in (or was taken out again); true when it
    /// perhaps was.
    #[inline]
    pub fn perhaps(&self, id: u64) -> bool {
        let p = self.place(id);
        // Both lines are read whatever the first says, so their loads overlap.
        self.blocks[p.first].perhaps(p.fp) | self.blocks[p.second].perhaps(p.fp)
    }

    /// Puts `id` in; returns whether its fingerprint was stored (false: it was counted in its
    /// first block's overflow word). Remember the answer for [`Filter::remove`].
    pub fn insert(&mut self, id: u64) -> bool {
        let p = self.place(id);
        let (a, b) = (self.blocks[p.first].room(), self.blocks[p.second].room());
        let target = if b > a { p.second } else { p.first };
        self.count += 1;
        if self.blocks[target].put(p.fp) {
            return true;
        }
        let count = &mut self.blocks[p.first].0[0];
        if *count != STICKY {
            *count += 1;
        }
        self.sticky |= *count == STICKY;
        self.overflowed += 1;
        false
    }

    /// Takes `id` out; `stored` is what [`Filter::insert`] answered for it.
    pub fn remove(&mut self, id: u64, stored: bool) {
        let p = self.place(id);
        self.count = self.count.saturating_sub(1);
        if stored {
            let taken = self.blocks[p.first].take(p.fp) || self.blocks[p.second].take(p.fp);
            debug_assert!(taken, "a stored fingerprint is in one of its two blocks");
        } else {
            let count = &mut self.blocks[p.first].0[0];
            if *count != STICKY {
                *count = count.saturating_sub(1);
            }
            self.overflowed = self.overflowed.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn the_second_block_maps_back_to_the_first() {
        for blocks in [1, 2, 3, 7, 1000, 43_691] {
            let f = Filter::with_blocks(blocks, blocks);
            for id in (0..2000u64).map(|i| i.wrapping_mul(0x1234_5678_9abc_def1)) {
                let p = f.place(id);
                assert!(p.first < blocks && p.second < blocks && p.fp != 0);
                // Same fingerprint, starting from the second block: the first comes back.
                let g = scale(u64::from(p.fp).wrapping_mul(0x9e37_79b9_7f4a_7c15), blocks);
                assert_eq!((g + blocks - p.second) % blocks, p.first);
            }
        }
    }

    #[test]
    fn a_block_is_one_cache_line_and_sizes_are_stated() {
        assert_eq!(std::mem::size_of::<Block>(), 64);
        assert_eq!(std::mem::align_of::<Block>(), 64);
        // 1 Mi ids: 43,691 blocks, 2.67 MiB, of which 4 KiB in use at first.
        let f = Filter::new(1 << 20);
        assert_eq!((f.bytes(), f.bytes_in_use()), (43_691 * 64, 4096));
        assert_eq!(Filter::new(100).bytes_in_use(), 5 * 64);
    }

    #[test]
    fn grows_past_its_load_up_to_what_is_allocated() {
        let mut f = Filter::with_blocks(3, 1);
        let mut held: Vec<(u64, bool)> =
            (0..GROW_LOAD as u64).map(|id| (id, f.insert(id))).collect();
        assert_eq!(f.resize(), None);
        held.push((99, f.insert(99)));
        assert_eq!(f.resize(), Some(2));
        for (id, stored) in held.drain(..) {
            f.remove(id, stored);
        }
        f.set_lines(2);
        assert!(f.resize().is_none() && !f.perhaps(99) && f.overflowed() == 0);
        f.set_lines(10);
        assert_eq!(f.active, 3);
        for id in 0..100 {
            f.insert(id);
        }
        // All lines in use: nothing more to ask for.
        assert_eq!(f.resize(), None);
    }

    #[test]
    fn shrinks_when_few_ids_are_left_down_to_its_first_size() {
        let mut f = Filter::with_blocks(1024, 4 * MIN_BLOCKS);
        // An eighth of the grow load: kept.
        let keep = (GROW_LOAD * 4 * MIN_BLOCKS / 8) as u64;
        let stored: Vec<bool> = (0..keep).map(|id| f.insert(id)).collect();
        assert_eq!(f.resize(), None);
        f.remove(0, stored[0]);
        assert_eq!(f.resize(), Some(2 * MIN_BLOCKS));
        for (id, s) in stored.iter().enumerate().skip(1) {
            f.remove(id as u64, *s);
        }
        f.set_lines(2 * MIN_BLOCKS);
        assert_eq!(f.resize(), Some(MIN_BLOCKS));
        f.set_lines(MIN_BLOCKS);
        assert_eq!(f.resize(), None);
    }

    #[test]
    fn two_choices_keep_lines_from_overflowing_at_the_load_of_a_full_capacity() {
        // 24 ids per line on average, as at full capacity: with one choice per id, several
        // of 64 lines would pass their 31 slots; the emptier of two keeps every one below.
        let mut f = Filter::with_blocks(64, 64);
        for i in 0..64 * IDS_PER_BLOCK as u64 {
            f.insert(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
        assert_eq!(f.overflowed(), 0);
    }

    #[test]
    fn a_full_pair_of_blocks_overflows_and_still_answers_perhaps() {
        let mut f = Filter::with_blocks(1, 1);
        let ids: Vec<u64> = (1..=100u64).collect();
        let stored: Vec<bool> = ids.iter().map(|i| f.insert(*i)).collect();
        assert_eq!(stored.iter().filter(|s| **s).count(), (SLOTS - 1));
        assert_eq!(f.overflowed(), 100 - (SLOTS - 1));
        assert!(!f.sticky, "69 overflows are far from saturating a count");
        assert!(ids.iter().all(|i| f.perhaps(*i)));
        for (i, s) in ids.iter().zip(&stored) {
            f.remove(*i, *s);
        }
        assert_eq!(f.overflowed(), 0);
        assert!(ids.iter().all(|i| !f.perhaps(*i)));
    }

    #[test]
    fn a_saturated_overflow_count_stays_and_answers_perhaps_for_ever() {
        let mut f = Filter::with_blocks(1, 1);
        let n = u64::from(STICKY) + 100;
        let stored: Vec<bool> = (0..n).map(|i| f.insert(i)).collect();
        for (i, s) in stored.iter().enumerate() {
            f.remove(i as u64, *s);
        }
        assert_eq!(f.blocks[0].0[0], STICKY);
        assert!(f.perhaps(u64::MAX - 7));
        // Emptied and given a size again, it forgets the saturated count.
        f.set_lines(1);
        assert!(f.is_clear() && !f.perhaps(u64::MAX - 7));
    }

    proptest! {
        /// Against a multiset: every id put in and not taken out answers "perhaps", whatever
        /// the order, repeats of one id, or blocks (1 block: every id collides).
        #[test]
        fn never_a_false_negative(
            ops in prop::collection::vec((any::<bool>(), 0u64..300), 0..600),
            blocks in 1usize..6,
        ) {
            let mut f = Filter::with_blocks(blocks, blocks);
            // id → how each of its copies was stored
            let mut held: HashMap<u64, Vec<bool>> = HashMap::new();
            for (put, id) in ops {
                if put {
                    held.entry(id).or_default().push(f.insert(id));
                } else if let Some(s) = held.get_mut(&id).and_then(|v| v.pop()) {
                    f.remove(id, s);
                }
                for (id, copies) in &held {
                    if !copies.is_empty() {
                        prop_assert!(f.perhaps(*id), "{} lost", id);
                    }
                }
            }
            for (id, copies) in held {
                for s in copies {
                    f.remove(id, s);
                }
            }
            prop_assert_eq!(f.overflowed(), 0);
            prop_assert!(f.blocks.iter().all(|b| b.0 == [0; SLOTS]));
        }
    }
}
