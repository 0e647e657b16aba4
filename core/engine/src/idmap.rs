//! Fixed-capacity hash maps from `u64` ids to `Copy` values, owned by one thread: [`IdMap`]
//! for small values, [`IdSlab`] for larger ones.
//!
//! Open addressing with linear probing and backward-shift deletion (no tombstones), sized at
//! construction to a power of two at least twice the number of entries it may hold, so a probe
//! run stays short and inserting never allocates. Plan ids are random 64-bit values, so a
//! Fibonacci multiply is enough of a hash.

use quantum_ipc::bigmem::BigSlice;

/// Fixed-capacity `u64 → V` map.
///
/// Buckets hold key and value side by side (one cache line touch per probe); an empty bucket
/// holds [`EMPTY`] as its key, and the one real key equal to [`EMPTY`] lives outside the array.
#[derive(Debug, Clone)]
pub struct IdMap<V: Copy + Default> {
    buckets: BigSlice<(u64, V)>,
    /// The entry whose key is `EMPTY`, if any.
    empty_key: Option<V>,
    mask: usize,
    len: usize,
    max_len: usize,
}

/// The key value that marks an empty bucket.
const EMPTY: u64 = u64::MAX;

/// The map already holds its maximum number of entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapFull;

impl<V: Copy + Default> IdMap<V> {
    /// A map that holds up to `max_len` entries (at least 1).
    pub fn with_max_len(max_len: usize) -> Self {
        let max_len = max_len.max(1);
        let n = (max_len * 2).next_power_of_two();
        IdMap {
            buckets: BigSlice::new(n, (EMPTY, V::default())),
            empty_key: None,
            mask: n - 1,
            len: 0,
            max_len,
        }
    }

    #[inline]
    fn home(&self, key: u64) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & self.mask
    }

    /// `Ok(bucket)` holding `key`, or `Err(first empty bucket of its run)`.
    #[inline]
    fn find(&self, key: u64) -> Result<usize, usize> {
        let mut i = self.home(key);
        loop {
            match self.buckets[i].0 {
                k if k == key => return Ok(i),
                EMPTY => return Err(i),
                _ => i = (i + 1) & self.mask,
            }
        }
    }

    /// Starts loading the bucket where a look-up of `key` begins (see [`BigSlice::prefetch`]).
    #[inline]
    pub fn prefetch(&self, key: u64) {
        self.buckets.prefetch(self.home(key));
    }

    /// The value for `key`.
    #[inline]
    pub fn get(&self, key: u64) -> Option<V> {
        if key == EMPTY {
            return self.empty_key;
        }
        self.find(key).ok().map(|i| self.buckets[i].1)
    }

    /// True when `key` is present.
    #[inline]
    pub fn contains(&self, key: u64) -> bool {
        self.get(key).is_some()
    }

    /// Inserts or replaces; fails only when a new key would exceed the maximum.
    pub fn insert(&mut self, key: u64, val: V) -> Result<Option<V>, MapFull> {
        let full = self.len == self.max_len;
        if key == EMPTY {
            if self.empty_key.is_none() && full {
                return Err(MapFull);
            }
            let old = self.empty_key.replace(val);
            self.len += usize::from(old.is_none());
            return Ok(old);
        }
        // One probe: the bucket holding `key`, or the empty one ending its run.
        match self.find(key) {
            Ok(i) => Ok(Some(std::mem::replace(&mut self.buckets[i].1, val))),
            Err(_) if full => Err(MapFull),
            Err(i) => {
                self.buckets[i] = (key, val);
                self.len += 1;
                Ok(None)
            }
        }
    }

    /// Removes `key`, shifting later entries of its probe run back so no tombstone is left.
    pub fn remove(&mut self, key: u64) -> Option<V> {
        if key == EMPTY {
            let old = self.empty_key.take();
            self.len -= usize::from(old.is_some());
            return old;
        }
        let mut hole = self.find(key).ok()?;
        let out = self.buckets[hole].1;
        self.buckets[hole] = (EMPTY, V::default());
        self.len -= 1;
        let mut i = (hole + 1) & self.mask;
        while self.buckets[i].0 != EMPTY {
            let home = self.home(self.buckets[i].0);
            // Move entry i into the hole unless its home lies cyclically in (hole, i].
            let dist_hole = hole.wrapping_sub(home) & self.mask;
            let dist_i = i.wrapping_sub(home) & self.mask;
            if dist_hole < dist_i {
                self.buckets[hole] = self.buckets[i];
                self.buckets[i] = (EMPTY, V::default());
                hole = i;
            }
            i = (i + 1) & self.mask;
        }
        Some(out)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Most entries the map takes.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Bytes its buckets take (allocated at construction).
    pub fn bytes(&self) -> usize {
        self.buckets.len() * std::mem::size_of::<(u64, V)>()
    }

    /// Every entry, in no particular order (off the hot path: snapshots, re-offers).
    pub fn iter(&self) -> impl Iterator<Item = (u64, V)> + '_ {
        self.buckets
            .iter()
            .filter(|(k, _)| *k != EMPTY)
            .copied()
            .chain(self.empty_key.map(|v| (EMPTY, v)))
    }
}

/// Fixed-capacity `u64 → V` map for larger values: a compact [`IdMap`] from key to an index
/// into a slab of values, with a last-in-first-out free list.
///
/// The index's buckets stay 16 bytes whatever `V` is, so probing touches few cache lines; a
/// value freed by `remove` is the next one `insert` reuses, so with few entries live at a time
/// (orders open and end) the values touched stay in the cache. Allocates only in construction.
#[derive(Debug, Clone)]
pub struct IdSlab<V: Copy + Default> {
    index: IdMap<u32>,
    /// Key and value per slab slot (the key, for iteration).
    slots: BigSlice<(u64, V)>,
    /// Free slot numbers; the last one is used next. Never longer than `slots`.
    free: Vec<u32>,
}

impl<V: Copy + Default> IdSlab<V> {
    /// A map that holds up to `max_len` entries (at least 1, at most `u32::MAX`).
    pub fn with_max_len(max_len: usize) -> Self {
        let max_len = max_len.clamp(1, u32::MAX as usize);
        IdSlab {
            index: IdMap::with_max_len(max_len),
            slots: BigSlice::new(max_len, (0, V::default())),
            // Reversed, so slot 0 is used first.
            free: (0..max_len as u32).rev().collect(),
        }
    }

    /// The value for `key`.
    #[inline]
    pub fn get(&self, key: u64) -> Option<V> {
        self.index.get(key).map(|i| self.slots[i as usize].1)
    }

    /// True when `key` is present.
    #[inline]
    pub fn contains(&self, key: u64) -> bool {
        self.index.contains(key)
    }

    /// Starts loading the index bucket where a look-up of `key` begins.
    #[inline]
    pub fn prefetch(&self, key: u64) {
        self.index.prefetch(key);
    }

    /// Inserts or replaces; fails only when a new key would exceed the maximum.
    pub fn insert(&mut self, key: u64, val: V) -> Result<Option<V>, MapFull> {
        if let Some(i) = self.index.get(key) {
            let slot = &mut self.slots[i as usize];
            return Ok(Some(std::mem::replace(&mut slot.1, val)));
        }
        let i = self.free.pop().ok_or(MapFull)?;
        self.slots[i as usize] = (key, val);
        // Cannot fail: the index holds as many keys as slots are taken, fewer than its max.
        let _ = self.index.insert(key, i);
        Ok(None)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: u64) -> Option<V> {
        let i = self.index.remove(key)?;
        self.free.push(i);
        Some(self.slots[i as usize].1)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Most entries the map takes.
    pub fn max_len(&self) -> usize {
        self.slots.len()
    }

    /// Every entry, in no particular order (off the hot path).
    pub fn iter(&self) -> impl Iterator<Item = (u64, V)> + '_ {
        self.index
            .iter()
            .map(|(k, i)| (k, self.slots[i as usize].1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// What both maps offer, for one reference test.
    trait Map {
        fn new(max_len: usize) -> Self;
        fn insert(&mut self, k: u64, v: u32) -> Result<Option<u32>, MapFull>;
        fn remove(&mut self, k: u64) -> Option<u32>;
        fn get(&self, k: u64) -> Option<u32>;
        fn len(&self) -> usize;
        fn all(&self) -> Vec<(u64, u32)>;
    }

    macro_rules! map_impl {
        ($t:ty) => {
            impl Map for $t {
                fn new(max_len: usize) -> Self {
                    <$t>::with_max_len(max_len)
                }
                fn insert(&mut self, k: u64, v: u32) -> Result<Option<u32>, MapFull> {
                    <$t>::insert(self, k, v)
                }
                fn remove(&mut self, k: u64) -> Option<u32> {
                    <$t>::remove(self, k)
                }
                fn get(&self, k: u64) -> Option<u32> {
                    <$t>::get(self, k)
                }
                fn len(&self) -> usize {
                    <$t>::len(self)
                }
                fn all(&self) -> Vec<(u64, u32)> {
                    self.iter().collect()
                }
            }
        };
    }
    map_impl!(IdMap<u32>);
    map_impl!(IdSlab<u32>);

    /// The table is at most half full (short probe runs), and a power of two (the mask).
    #[test]
    fn sized_for_a_load_of_at_most_one_half() {
        for (max_len, buckets) in [
            (1, 2),
            (100, 256),
            (128, 256),
            (129, 512),
            (1 << 20, 1 << 21),
        ] {
            let m = IdMap::<u32>::with_max_len(max_len);
            assert_eq!(
                (m.buckets.len(), m.mask),
                (buckets, buckets - 1),
                "{max_len}"
            );
        }
    }

    proptest! {
        #[test]
        fn idmap_matches_a_hashmap(ops in prop::collection::vec((0u8..3, 0u64..64), 0..400)) {
            matches_a_hashmap::<IdMap<u32>>(ops)?;
        }

        #[test]
        fn idslab_matches_a_hashmap(ops in prop::collection::vec((0u8..3, 0u64..64), 0..400)) {
            matches_a_hashmap::<IdSlab<u32>>(ops)?;
        }
    }

    fn matches_a_hashmap<M: Map>(ops: Vec<(u8, u64)>) -> Result<(), TestCaseError> {
        {
            let mut m = M::new(40);
            let mut r: HashMap<u64, u32> = HashMap::new();
            for (i, (op, k)) in ops.into_iter().enumerate() {
                // Keys that collide in the low bits, to exercise probe runs; 63 maps to the
                // sentinel key.
                let key = if k == 63 { u64::MAX } else { k << 40 };
                match op {
                    0 => {
                        let got = m.insert(key, i as u32);
                        if r.len() == 40 && !r.contains_key(&key) {
                            prop_assert_eq!(got, Err(MapFull));
                        } else {
                            prop_assert_eq!(got, Ok(r.insert(key, i as u32)));
                        }
                    }
                    1 => prop_assert_eq!(m.remove(key), r.remove(&key)),
                    _ => prop_assert_eq!(m.get(key), r.get(&key).copied()),
                }
                prop_assert_eq!(m.len(), r.len());
            }
            for (k, v) in &r {
                prop_assert_eq!(m.get(*k), Some(*v));
            }
            let mut all: Vec<(u64, u32)> = m.all();
            all.sort_unstable();
            let mut want: Vec<(u64, u32)> = r.into_iter().collect();
            want.sort_unstable();
            prop_assert_eq!(all, want);
        }
        Ok(())
    }
}
