//! Server time: the wall clock, optionally shifted or frozen by tests (`POST /sim/clock`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const LIVE: i64 = i64::MIN;

/// Milliseconds since the Unix epoch as the simulated exchange sees them.
#[derive(Debug)]
pub struct Clock {
    frozen_at: AtomicI64,
    offset_ms: AtomicI64,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            frozen_at: AtomicI64::new(LIVE),
            offset_ms: AtomicI64::new(0),
        }
    }
}

impl Clock {
    /// Current server time in ms.
    pub fn now_ms(&self) -> i64 {
        // Relaxed: each value stands alone; nothing else is published through them.
        let frozen = self.frozen_at.load(Ordering::Relaxed);
        if frozen != LIVE {
            return frozen;
        }
        wall_ms() + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Stops the clock at `ms` (`None` lets it run again).
    pub fn freeze(&self, ms: Option<i64>) {
        self.frozen_at.store(ms.unwrap_or(LIVE), Ordering::Relaxed);
    }

    /// Shifts the running clock by `ms` against the wall clock.
    pub fn set_offset(&self, ms: i64) {
        self.offset_ms.store(ms, Ordering::Relaxed);
    }

    /// Frozen time, if frozen.
    pub fn frozen(&self) -> Option<i64> {
        Some(self.frozen_at.load(Ordering::Relaxed)).filter(|v| *v != LIVE)
    }

    /// Current offset.
    pub fn offset(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }
}

/// The machine's wall clock in ms.
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
