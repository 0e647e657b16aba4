//! The one place atomics come from.
//!
//! Under `cfg(loom)` every atomic is loom's, so the permit table's protocol can be model-checked
//! with exactly the code that runs in production (crossbeam-epoch's `primitive` module does the
//! same). Everything lock-free in this crate imports from here, never from `std::sync::atomic`.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering};

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
