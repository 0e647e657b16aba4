//! Monotonic nanoseconds since the engine's start, from `quanta`.
//!
//! Every deadline in the core is a `u64` of nanoseconds on this clock. Tests build it from
//! `quanta::Clock::mock()` and move time by hand, so no test depends on the wall clock.

use std::sync::Arc;

/// A cheap, cloneable monotonic clock reading nanoseconds since its origin.
#[derive(Clone, Debug)]
pub struct Clock {
    inner: quanta::Clock,
    /// Raw counter value at the origin.
    origin: u64,
}

impl Clock {
    /// The real clock (TSC where usable), with its origin at the moment of the call.
    pub fn new() -> Self {
        let inner = quanta::Clock::new();
        let origin = inner.raw();
        Clock { inner, origin }
    }

    /// A mocked clock starting at 0 ns and the handle that moves it.
    pub fn mock() -> (Self, Arc<quanta::Mock>) {
        let (inner, mock) = quanta::Clock::mock();
        let origin = inner.raw();
        (Clock { inner, origin }, mock)
    }

    /// Nanoseconds since the origin.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        // Raw counter and one scaled delta: no `Duration` on the hot path. u64 nanoseconds
        // cover 584 years of uptime.
        self.inner.delta_as_nanos(self.origin, self.inner.raw())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Milliseconds to nanoseconds, saturating.
#[inline]
pub const fn ms_to_ns(ms: u64) -> u64 {
    ms.saturating_mul(1_000_000)
}
