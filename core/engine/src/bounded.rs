//! Bounded memories of the most recent keys: a map and a set that keep at most `capacity`
//! keys and forget the one inserted longest ago when a new key would exceed it.
//!
//! The adapters remember recent plans, orders and stream entries this way (what was sent,
//! what ended, which trades were counted, which entries were acknowledged) so a process that
//! runs for weeks holds a fixed amount of memory while recent repeats are still recognised.
//!
//! Order is the order keys were *first* inserted: replacing the value of a present key keeps
//! its place. A removed key that comes back is new again (it goes to the back). Every
//! operation is O(1) amortised: a removal leaves a stale mark in the arrival queue that the
//! next eviction skips, and the queue is compacted once the marks outnumber the capacity.
//! These maps allocate as they grow; they are for the adapters, not for the core's plan path.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// A map of at most `capacity` keys; inserting a new key beyond it forgets the oldest key.
#[derive(Clone, Debug)]
pub struct FifoMap<K, V> {
    /// Key → value and the stamp of its arrival.
    map: HashMap<K, (V, u64)>,
    /// Arrivals, oldest first. An entry whose stamp is not the key's stamp in `map` is stale
    /// (the key was removed, and maybe inserted again later).
    arrival: VecDeque<(K, u64)>,
    /// The stamp of the next new key.
    next: u64,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V> FifoMap<K, V> {
    /// An empty map keeping at most `capacity` keys (at least 1: a capacity of 0 is taken as
    /// 1).
    pub fn new(capacity: usize) -> Self {
        FifoMap {
            map: HashMap::new(),
            arrival: VecDeque::new(),
            next: 0,
            capacity: capacity.max(1),
        }
    }

    /// The most keys kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Whether `key` is held.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.contains_key(key)
    }

    /// The value of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key).map(|(v, _)| v)
    }

    /// The value of `key`, to change in place (its place in the order stays).
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get_mut(key).map(|(v, _)| v)
    }

    /// Sets `key` to `value`. A present key keeps its place and its old value is returned; a
    /// new key goes to the back, and the oldest key is forgotten if there are now more than
    /// `capacity`.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        if let Some((v, _)) = self.map.get_mut(&key) {
            return Some(std::mem::replace(v, value));
        }
        self.insert_new(key, value);
        None
    }

    /// The value of `key`, inserted first with `make` (as [`FifoMap::insert`] inserts a new
    /// key) if it is not held.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        if !self.map.contains_key(&key) {
            self.insert_new(key.clone(), make());
        }
        match self.map.get_mut(&key) {
            Some((v, _)) => v,
            // `insert_new` evicts only keys older than the one it inserted, never that one.
            None => unreachable!("a key just inserted is held"),
        }
    }

    /// Forgets `key`; its value, if it was held.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (v, _) = self.map.remove(key)?;
        self.compact_if_stale();
        Some(v)
    }

    /// The keys and values held, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.arrival
            .iter()
            .filter_map(|(k, stamp)| match self.map.get_key_value(k) {
                Some((key, (v, s))) if s == stamp => Some((key, v)),
                _ => None,
            })
    }

    fn insert_new(&mut self, key: K, value: V) {
        let stamp = self.next;
        self.next += 1;
        self.arrival.push_back((key.clone(), stamp));
        self.map.insert(key, (value, stamp));
        while self.map.len() > self.capacity {
            self.evict_oldest();
        }
        self.compact_if_stale();
    }

    /// Forgets the oldest key held, skipping stale arrivals.
    fn evict_oldest(&mut self) {
        while let Some((k, stamp)) = self.arrival.pop_front() {
            if self.map.get(&k).is_some_and(|(_, s)| *s == stamp) {
                self.map.remove(&k);
                return;
            }
        }
    }

    /// Drops the stale arrivals once there are more of them than `capacity`, so the queue
    /// stays within twice the capacity whatever the mix of inserts and removals.
    fn compact_if_stale(&mut self) {
        if self.arrival.len() - self.map.len() > self.capacity {
            let map = &self.map;
            self.arrival
                .retain(|(k, stamp)| map.get(k).is_some_and(|(_, s)| s == stamp));
        }
    }
}

/// A set of at most `capacity` keys; inserting a new key beyond it forgets the oldest key.
#[derive(Clone, Debug)]
pub struct FifoSet<K>(FifoMap<K, ()>);

impl<K: Hash + Eq + Clone> FifoSet<K> {
    /// An empty set keeping at most `capacity` keys (at least 1).
    pub fn new(capacity: usize) -> Self {
        FifoSet(FifoMap::new(capacity))
    }

    /// The most keys kept.
    pub fn capacity(&self) -> usize {
        self.0.capacity()
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `key` is held.
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.contains_key(key)
    }

    /// Adds `key`: true if it was not held (it goes to the back, and the oldest key is
    /// forgotten beyond `capacity`); a present key keeps its place.
    pub fn insert(&mut self, key: K) -> bool {
        self.0.insert(key, ()).is_none()
    }

    /// Forgets `key`: true if it was held.
    pub fn remove<Q>(&mut self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.remove(key).is_some()
    }

    /// The keys held, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &K> + '_ {
        self.0.iter().map(|(k, _)| k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys<V>(m: &FifoMap<u8, V>) -> Vec<u8> {
        m.iter().map(|(k, _)| *k).collect()
    }

    #[test]
    fn the_oldest_key_goes_first() {
        let mut m = FifoMap::new(3);
        for k in [1u8, 2, 3, 4] {
            assert_eq!(m.insert(k, k * 10), None);
        }
        assert_eq!(keys(&m), [2, 3, 4]);
        assert!(!m.contains_key(&1) && m.contains_key(&2));
        m.insert(5, 50);
        assert_eq!(keys(&m), [3, 4, 5]);
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn replacing_a_value_keeps_its_place() {
        let mut m = FifoMap::new(2);
        m.insert(1u8, "a");
        m.insert(2, "b");
        assert_eq!(m.insert(1, "A"), Some("a"));
        *m.get_mut(&2).unwrap() = "B";
        m.insert(3, "c");
        // 1 arrived first: replacing it did not make it younger.
        assert_eq!(keys(&m), [2, 3]);
        assert_eq!(m.get(&2), Some(&"B"));
    }

    #[test]
    fn a_removed_key_is_new_when_it_comes_back() {
        let mut m = FifoMap::new(2);
        m.insert(1u8, ());
        m.insert(2, ());
        assert_eq!(m.remove(&1), Some(()));
        assert_eq!(m.remove(&1), None);
        m.insert(1, ());
        m.insert(3, ());
        // The stale arrival of 1 is skipped: 2 is now the oldest.
        assert_eq!(keys(&m), [1, 3]);
    }

    #[test]
    fn get_or_insert_with_inserts_once() {
        let mut m = FifoMap::new(1);
        *m.get_or_insert_with(7u8, || 1) += 1;
        *m.get_or_insert_with(7, || 100) += 1;
        assert_eq!(m.get(&7), Some(&3));
        *m.get_or_insert_with(8, || 0) += 1;
        assert_eq!(keys(&m), [8]);
    }

    #[test]
    fn zero_capacity_keeps_one_key() {
        let mut s = FifoSet::new(0);
        assert_eq!(s.capacity(), 1);
        assert!(s.insert(1u8));
        assert!(s.insert(2));
        assert!(!s.contains(&1) && s.contains(&2));
    }

    #[test]
    fn sets_look_up_borrowed_keys() {
        let mut s = FifoSet::new(2);
        assert!(s.insert("a".to_owned()));
        assert!(!s.insert("a".to_owned()));
        assert!(s.contains("a"));
        assert!(s.remove("a") && !s.remove("a"));
        assert!(s.is_empty());
    }

    #[test]
    fn removals_do_not_let_the_queue_grow() {
        let mut m = FifoMap::new(4);
        for k in 0..10_000u32 {
            m.insert(k, ());
            m.remove(&k);
        }
        assert!(m.is_empty());
        assert!(m.arrival.len() <= 2 * m.capacity() + 1);
    }

    /// Stale arrivals (of removed keys) are kept until there are more of them than the
    /// capacity, then dropped in one sweep: amortised O(1) per operation.
    #[test]
    fn stale_arrivals_are_dropped_lazily_in_one_sweep() {
        let mut m = FifoMap::new(4);
        for k in 0..4u32 {
            m.insert(k, ());
        }
        for k in 0..4u32 {
            m.remove(&k);
        }
        assert_eq!((m.len(), m.arrival.len()), (0, 4));
        m.insert(9, ());
        m.remove(&9);
        assert_eq!((m.len(), m.arrival.len()), (0, 0));
    }

    #[test]
    fn a_set_reports_its_keys_oldest_first() {
        let mut s = FifoSet::new(3);
        assert!(s.is_empty());
        assert_eq!((s.len(), s.capacity()), (0, 3));
        for k in [5u8, 1, 7, 2] {
            s.insert(k);
        }
        assert!(!s.is_empty());
        assert_eq!(s.len(), 3);
        assert_eq!(s.iter().copied().collect::<Vec<_>>(), [1, 7, 2]);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u8, u16),
        Remove(u8),
        Bump(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..12, any::<u16>()).prop_map(|(k, v)| Op::Insert(k, v)),
            (0u8..12).prop_map(Op::Remove),
            (0u8..12).prop_map(Op::Bump),
        ]
    }

    proptest! {
        /// Against a model: a vector of (key, value), oldest first, trimmed from the front.
        #[test]
        fn behaves_like_a_trimmed_vector(cap in 1usize..6, ops in proptest::collection::vec(op(), 0..200)) {
            let mut m = FifoMap::new(cap);
            let mut model: Vec<(u8, u16)> = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        let old = model.iter_mut().find(|(mk, _)| *mk == k).map(|e| std::mem::replace(&mut e.1, v));
                        if old.is_none() {
                            model.push((k, v));
                            if model.len() > cap {
                                model.remove(0);
                            }
                        }
                        prop_assert_eq!(m.insert(k, v), old);
                    }
                    Op::Remove(k) => {
                        let i = model.iter().position(|(mk, _)| *mk == k);
                        let old = i.map(|i| model.remove(i).1);
                        prop_assert_eq!(m.remove(&k), old);
                    }
                    Op::Bump(k) => {
                        match model.iter_mut().find(|(mk, _)| *mk == k) {
                            Some(e) => e.1 = e.1.wrapping_add(1),
                            None => {
                                model.push((k, 0));
                                if model.len() > cap {
                                    model.remove(0);
                                }
                            }
                        }
                        let v = m.get_or_insert_with(k, || u16::MAX);
                        *v = v.wrapping_add(1);
                    }
                }
                let got: Vec<(u8, u16)> = m.iter().map(|(k, v)| (*k, *v)).collect();
                prop_assert_eq!(&got, &model);
                prop_assert_eq!(m.len(), model.len());
                prop_assert_eq!(m.is_empty(), model.is_empty());
                prop_assert_eq!(m.capacity(), cap);
                for k in 0u8..12 {
                    prop_assert_eq!(m.get(&k), model.iter().find(|(mk, _)| *mk == k).map(|(_, v)| v));
                }
            }
        }
    }
}
