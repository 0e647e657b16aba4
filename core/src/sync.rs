//! The one place atomics come from.
//!
//! Under `cfg(loom)` every atomic is loom's, so the permit table's protocol can be model-checked
//! with exactly the code that runs in production (crossbeam-epoch's `primitive` module does the
//! same). Everything lock-free in this crate imports from here, never from `std::sync::atomic`.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering};
