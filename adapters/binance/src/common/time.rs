//! Server time: the offset between Binance's clock (`GET /fapi/v1/time`) and ours, applied
//! to every `timestamp` so a drifting local clock does not earn -1021.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Milliseconds since the Unix epoch on the local clock.
pub fn local_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Local clock plus the measured offset to the server. Cheap to clone; clones share the offset.
#[derive(Clone, Debug, Default)]
pub struct ServerClock {
    offset_ms: Arc<AtomicI64>,
}

impl ServerClock {
    /// Estimated server time now (ms).
    pub fn now_ms(&self) -> i64 {
        // Relaxed: a single independent value; no other data is published with it.
        local_ms() + self.offset_ms.load(Ordering::Relaxed)
    }

    /// The offset `server - local` in ms.
    pub fn offset_ms(&self) -> i64 {
        // Relaxed: see `now_ms`.
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// Sets the offset (tests use it to simulate a drifting clock).
    pub fn set_offset_ms(&self, offset: i64) {
        // Relaxed: see `now_ms`.
        self.offset_ms.store(offset, Ordering::Relaxed);
    }

    /// Records a server time sample taken between `sent_ms` and `received_ms` (local): the
    /// server's reading is assumed to be at the midpoint of the round trip.
    pub fn observe(&self, sent_ms: i64, server_ms: i64, received_ms: i64) -> i64 {
        let mid = sent_ms + (received_ms - sent_ms) / 2;
        let offset = server_ms - mid;
        self.set_offset_ms(offset);
        offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_uses_the_midpoint() {
        let c = ServerClock::default();
        assert_eq!(c.observe(1_000, 5_000, 1_010), 3_995);
        assert_eq!(c.offset_ms(), 3_995);
        let clone = c.clone();
        clone.set_offset_ms(-7);
        assert_eq!(c.offset_ms(), -7);
    }
}
