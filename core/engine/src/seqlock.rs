//! A single-writer sequence lock over a few `i64` words: readers on any thread take a
//! consistent copy without ever writing shared memory, and the writer never waits.
//!
//! Writer (one thread only, enforced by its owner): `seq` to odd (Relaxed), Release fence, the
//! words (Relaxed), `seq` to the next even value (Release). Reader: `seq` (Acquire), the words
//! (Relaxed), Acquire fence, `seq` again; the copy is kept only when both reads are the same
//! even number. This is the fence-based seqlock Boehm showed correct for the C++11 model; every
//! access is atomic, so a torn copy is a retried copy, never undefined behaviour. The loom model
//! in `tests/loom.rs` checks it.

use crate::sync::{fence, AtomicI64, AtomicU64, Ordering};

/// `N` words published together.
#[derive(Debug)]
pub(crate) struct SeqLock<const N: usize> {
    /// Even: stable; odd: a write is in progress. Written by the single writer only.
    seq: AtomicU64,
    words: [AtomicI64; N],
}

impl<const N: usize> SeqLock<N> {
    pub(crate) fn new(init: [i64; N]) -> Self {
        SeqLock {
            seq: AtomicU64::new(0),
            words: init.map(AtomicI64::new),
        }
    }

    /// Publishes `v`. Only one thread may ever call this for a given lock.
    pub(crate) fn write(&self, v: &[i64; N]) {
        // Relaxed: only this (single) writer stores `seq`.
        let s = self.seq.load(Ordering::Relaxed);
        debug_assert!(s % 2 == 0, "seqlock written by two writers");
        self.seq.store(s + 1, Ordering::Relaxed);
        // SYNC POINT: Release fence pairs with the reader's Acquire fence in `read`: a reader
        // whose word loads saw any store below sees the odd `seq` (or later) on its re-check.
        fence(Ordering::Release);
        for (w, x) in self.words.iter().zip(v) {
            // Relaxed: published by the Release store of `seq` below.
            w.store(*x, Ordering::Relaxed);
        }
        // SYNC POINT: Release pairs with the reader's Acquire load of `seq`: a reader that sees
        // `s + 2` sees every word above.
        self.seq.store(s + 2, Ordering::Release);
    }

    /// A consistent copy: every word from the same `write`.
    pub(crate) fn read(&self) -> [i64; N] {
        let mut tries = 0u32;
        loop {
            // SYNC POINT: Acquire pairs with the Release store of `seq` in `write`.
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 % 2 == 0 {
                let mut out = [0i64; N];
                for (o, w) in out.iter_mut().zip(&self.words) {
                    // Relaxed: validated by the fence and the `seq` re-check below.
                    *o = w.load(Ordering::Relaxed);
                }
                // SYNC POINT: Acquire fence pairs with the writer's Release fence in `write`.
                fence(Ordering::Acquire);
                // Relaxed: ordered after the word loads by the fence above.
                if self.seq.load(Ordering::Relaxed) == s1 {
                    return out;
                }
            }
            tries += 1;
            // The writer's section is a few stores; if it was preempted inside it, give the
            // core away instead of spinning through its time slice.
            if tries % 64 == 0 {
                crate::sync::yield_now();
            } else {
                crate::sync::spin_loop();
            }
        }
    }
}
