//! Monotonic nanoseconds since the engine's start, from `quanta`, and the wall-clock time they
//! correspond to.
//!
//! Every deadline in the core is a `u64` of nanoseconds on this clock. Events that outlive the
//! process (the journal, the legacy `created_at`) carry wall-clock milliseconds instead, taken as
//! `wall origin + engine time`: one addition, no system call, and never going backwards.
//!
//! The real clock starts at [`HISTORY_MS`] rather than 0, so that times from before the
//! process started (the governor's execution history, restored from the journal) are still
//! engine times: the origin is that long before the start.
//! Tests build the clock from `quanta::Clock::mock()` and move time by hand, so no test depends
//! on the wall clock.

use std::sync::Arc;

/// A cheap, cloneable monotonic clock reading nanoseconds since its origin.
#[derive(Clone, Debug)]
pub struct Clock {
    inner: quanta::Clock,
    /// Raw counter value at the origin.
    origin: u64,
    /// Wall-clock ms since the Unix epoch at the origin.
    wall_origin_ms: u64,
    /// Engine time at the raw origin.
    offset_ns: u64,
}

/// How far before its start the real clock's origin lies: the oldest past time (e.g. a
/// restored execution) that engine time can express. Two days covers every throttle window.
pub const HISTORY_MS: u64 = 2 * 86_400_000;

impl Clock {
    /// The real clock (TSC where usable), reading [`HISTORY_MS`] at the moment of the call.
    pub fn new() -> Self {
        let inner = quanta::Clock::new();
        let origin = inner.raw();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Clock {
            inner,
            origin,
            wall_origin_ms: now_ms.saturating_sub(HISTORY_MS),
            offset_ns: ms_to_ns(HISTORY_MS),
        }
    }

    /// A mocked clock starting at 0 ns and the handle that moves it.
    pub fn mock() -> (Self, Arc<quanta::Mock>) {
        let (inner, mock) = quanta::Clock::mock();
        let origin = inner.raw();
        let clock = Clock {
            inner,
            origin,
            wall_origin_ms: MOCK_WALL_ORIGIN_MS,
            offset_ns: 0,
        };
        (clock, mock)
    }

    /// A mocked clock whose engine time 0 is wall-clock `wall_origin_ms`, and the handle that
    /// moves it: a replay sets it to each recorded event's time.
    pub fn mock_at(wall_origin_ms: u64) -> (Self, Arc<quanta::Mock>) {
        let (mut clock, mock) = Clock::mock();
        clock.wall_origin_ms = wall_origin_ms;
        (clock, mock)
    }

    /// Wall-clock ms since the Unix epoch at engine time 0.
    pub fn wall_origin_ms(&self) -> u64 {
        self.wall_origin_ms
    }

    /// Wall-clock ms since the Unix epoch at engine time `ns`.
    #[inline]
    pub fn wall_ms(&self, ns: u64) -> u64 {
        self.wall_origin_ms + ns / 1_000_000
    }

    /// The engine time of wall-clock `ms` (0 for anything before the origin).
    pub fn engine_ns(&self, ms: u64) -> u64 {
        ms.saturating_sub(self.wall_origin_ms)
            .saturating_mul(1_000_000)
    }

    /// Nanoseconds since the origin.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        // Raw counter and one scaled delta: no `Duration` on the hot path. u64 nanoseconds
        // cover 584 years of uptime.
        self.inner.delta_as_nanos(self.origin, self.inner.raw()) + self.offset_ns
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// The wall-clock origin of mocked clocks: 2026-01-25T00:30:00Z, the morning of the seeds.
pub const MOCK_WALL_ORIGIN_MS: u64 = 1_769_301_000_000;

/// Milliseconds to nanoseconds, saturating.
#[inline]
pub const fn ms_to_ns(ms: u64) -> u64 {
    ms.saturating_mul(1_000_000)
}
