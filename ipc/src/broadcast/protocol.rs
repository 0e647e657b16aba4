//! The broadcast protocol: one writer, any number of readers, no reader ever holds the writer
//! back. Independent of where the memory lives (shared memory, heap, or loom's model).
//!
//! Positions are free-running `u64`s; position `p` lives in slot `p & mask`. Each slot has a
//! marker and eight payload words, all atomics:
//!
//! * **write `p`**: store `marker = (p + 1) | BUSY` (Relaxed), Release fence, store the words
//!   (Relaxed), store `marker = p + 1` (Release), then `tail = p + 1` (Release).
//! * **read `p`**: load the marker (Acquire). `p + 1`: load the words (Relaxed), Acquire fence,
//!   load the marker again; unchanged means the words are record `p` (a seqlock read).
//!   `(p + 1) | BUSY` or a smaller position: not there yet. A larger position (busy or not), or
//!   a changed marker after the copy: the writer lapped us and record `p` is gone.
//! * **lapped**: the reader moves to the oldest record that cannot be being overwritten,
//!   `tail + 1 - capacity`, and counts the records it skipped as missed.
//!
//! Why the copy is exact: if any word load saw a store of a later write, the Release fence
//! before those stores and the Acquire fence after the loads make the later write's BUSY
//! marker visible to the second marker load, so the read is rejected. All accesses are
//! atomic, so a torn copy is a rejected copy, never undefined behaviour.
//!
//! Markers of a slot only grow (`i + 1`, `i + 1 + capacity`, ..., with or without BUSY), so a
//! marker names exactly one lap: no ABA.

use crate::sync::{fence, AtomicU64, Ordering};

/// Payload words per record (64 bytes).
pub const WORDS: usize = 8;

/// Set in a marker while its slot is being written.
pub(crate) const BUSY: u64 = 1 << 63;

/// One slot: its marker and the record's words.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct BSlot {
    pub(crate) marker: AtomicU64,
    pub(crate) words: [AtomicU64; WORDS],
}

/// Slot storage.
pub(crate) trait BSlots {
    /// `capacity - 1`; capacity is a power of two.
    fn mask(&self) -> u64;
    /// Slot `index` (`<= mask`).
    fn slot(&self, index: usize) -> &BSlot;
}

/// Writes record `pos` and publishes it. The caller is the only writer and calls this with
/// consecutive positions, starting at the shared `tail`.
pub(crate) fn write(slots: &impl BSlots, tail: &AtomicU64, pos: u64, words: &[u64; WORDS]) {
    let s = slots.slot((pos & slots.mask()) as usize);
    // Relaxed: ordered before the word stores by the Release fence below.
    s.marker.store((pos + 1) | BUSY, Ordering::Relaxed);
    // SYNC POINT: Release fence pairs with the reader's Acquire fence in `read`: a reader whose
    // word loads saw any store below sees the BUSY marker (or later) on its second marker load.
    fence(Ordering::Release);
    for (w, v) in s.words.iter().zip(words) {
        // Relaxed: published by the marker's Release store below.
        w.store(*v, Ordering::Relaxed);
    }
    // SYNC POINT: Release pairs with the reader's Acquire load of the marker: the words above
    // are visible to a reader that sees `pos + 1`.
    s.marker.store(pos + 1, Ordering::Release);
    // SYNC POINT: Release pairs with the Acquire load of `tail` in `oldest_intact` and in a
    // restarted writer's attach: the slot is complete before the tail counts it.
    tail.store(pos + 1, Ordering::Release);
}

/// What reading one position found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// The record at that position.
    Record([u64; WORDS]),
    /// Not written yet.
    NotYet,
    /// Overwritten: the writer is at least a lap ahead.
    Lapped,
}

/// Reads position `pos` without disturbing the writer.
pub(crate) fn read(slots: &impl BSlots, pos: u64) -> Read {
    let s = slots.slot((pos & slots.mask()) as usize);
    // SYNC POINT: Acquire pairs with the writer's Release store of the marker in `write`.
    let m1 = s.marker.load(Ordering::Acquire);
    let at = m1 & !BUSY;
    if at < pos + 1 || m1 == (pos + 1) | BUSY {
        return Read::NotYet;
    }
    if at > pos + 1 {
        return Read::Lapped;
    }
    let mut out = [0u64; WORDS];
    for (o, w) in out.iter_mut().zip(&s.words) {
        // Relaxed: validated by the fence and the marker re-check below.
        *o = w.load(Ordering::Relaxed);
    }
    // SYNC POINT: Acquire fence pairs with the writer's Release fence in `write` (see there).
    fence(Ordering::Acquire);
    // Relaxed: the fence above orders it after the word loads.
    if s.marker.load(Ordering::Relaxed) == m1 {
        Read::Record(out)
    } else {
        Read::Lapped
    }
}

/// The oldest position a lapped reader can still read: the writer may be overwriting the slot
/// of `tail - capacity` right now, so one more.
pub(crate) fn oldest_intact(slots: &impl BSlots, tail: &AtomicU64) -> u64 {
    // Acquire: pairs with the Release store of `tail` in `write`.
    let t = tail.load(Ordering::Acquire);
    (t + 1).saturating_sub(slots.mask() + 1)
}

/// A reader's cursor: where it is and how much it missed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// Next position to read.
    pub(crate) pos: u64,
    /// Records skipped because the writer lapped us.
    pub(crate) missed: u64,
}

/// What [`Cursor::next`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// The record at this position.
    Record(u64, [u64; WORDS]),
    /// Nothing new.
    Empty,
    /// The writer lapped the reader: positions `from .. to` are gone (counted in `missed`);
    /// the cursor is at `to` now.
    Missed {
        /// First position lost.
        from: u64,
        /// First position still readable.
        to: u64,
    },
}

impl Cursor {
    /// Reads the next record, or says it is not there yet, or skips what was lost.
    pub(crate) fn next(&mut self, slots: &impl BSlots, tail: &AtomicU64) -> Next {
        match read(slots, self.pos) {
            Read::Record(w) => {
                let p = self.pos;
                self.pos += 1;
                Next::Record(p, w)
            }
            Read::NotYet => Next::Empty,
            Read::Lapped => {
                let from = self.pos;
                let to = oldest_intact(slots, tail).max(from + 1);
                self.missed += to - from;
                self.pos = to;
                Next::Missed { from, to }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Heap(Vec<BSlot>);
    impl BSlots for Heap {
        fn mask(&self) -> u64 {
            self.0.len() as u64 - 1
        }
        fn slot(&self, i: usize) -> &BSlot {
            &self.0[i]
        }
    }

    fn rec(p: u64) -> [u64; WORDS] {
        std::array::from_fn(|i| p * 100 + i as u64)
    }

    #[test]
    fn a_reader_sees_every_record_then_is_told_what_a_lap_cost() {
        let slots = Heap((0..4).map(|_| BSlot::default()).collect());
        let tail = AtomicU64::new(0);
        let mut c = Cursor::default();
        assert_eq!(c.next(&slots, &tail), Next::Empty);
        for p in 0..3 {
            write(&slots, &tail, p, &rec(p));
        }
        for p in 0..3 {
            assert_eq!(c.next(&slots, &tail), Next::Record(p, rec(p)));
        }
        assert_eq!(c.next(&slots, &tail), Next::Empty);
        // The writer goes 6 further: positions 3..10 written, capacity 4.
        for p in 3..10 {
            write(&slots, &tail, p, &rec(p));
        }
        // Position 3 was overwritten by 7: lapped; the oldest intact is 10 + 1 - 4 = 7.
        assert_eq!(c.next(&slots, &tail), Next::Missed { from: 3, to: 7 });
        for p in 7..10 {
            assert_eq!(c.next(&slots, &tail), Next::Record(p, rec(p)));
        }
        assert_eq!(c.missed, 4);
        assert_eq!(c.next(&slots, &tail), Next::Empty);
    }

    #[test]
    fn a_busy_slot_is_not_yet_for_its_own_position_and_lapped_for_older_ones() {
        let slots = Heap((0..2).map(|_| BSlot::default()).collect());
        slots.0[0].marker.store(3 | BUSY, Ordering::Relaxed); // writing position 2
        assert_eq!(read(&slots, 2), Read::NotYet);
        assert_eq!(read(&slots, 0), Read::Lapped);
        assert_eq!(read(&slots, 4), Read::NotYet);
    }
}
