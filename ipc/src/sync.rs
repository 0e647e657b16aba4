//! The one place atomics come from.
//!
//! Under `cfg(loom)` these are loom's model-checked types, so the ring protocol in
//! [`crate::ring::protocol`] is explored by loom with exactly the code that runs over shared
//! memory. Nothing else in the crate may import `std::sync::atomic` directly.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// Only the unit tests' flags use it.
#[cfg(all(test, not(loom)))]
pub(crate) use std::sync::atomic::AtomicBool;

/// A busy-wait hint: `loom::hint::spin_loop` yields to the model's scheduler.
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(loom)]
    loom::hint::spin_loop();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Gives the CPU away for a moment.
#[inline]
pub(crate) fn yield_now() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::thread::yield_now();
}

/// Aligns and pads `T` to 128 bytes.
///
/// 128, not 64: on x86_64 the L2 adjacent-line prefetcher pulls cache lines in pairs, so two
/// atomics 64 bytes apart still false-share (same reasoning as crossbeam-utils `CachePadded`).
/// Our own type rather than `CachePadded` because this one is `repr(C)`: it is part of the
/// shared-memory layout that another binary must agree on.
#[repr(C, align(128))]
#[derive(Debug, Default)]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}
