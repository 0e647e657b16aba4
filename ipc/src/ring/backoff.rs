//! Bounded backoff for a full (producer) or empty (consumer) ring.

use std::time::Duration;

/// Spin `2^step` hints for steps 0..=6 (1 to 64 hints: the peer is probably mid-record),
/// yield for steps 7..=10 (let the peer run on a busy core), then sleep 50, 100, 200, 400,
/// 800 µs and 1 ms from then on: a stalled peer costs us little CPU, and we notice it within
/// a millisecond once it moves.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    step: u32,
}

impl Backoff {
    pub(crate) fn snooze(&mut self) {
        match self.step {
            0..=6 => {
                for _ in 0..(1u32 << self.step) {
                    crate::sync::spin_loop();
                }
            }
            7..=10 => crate::sync::yield_now(),
            n => {
                let micros = (50u64 << (n - 11).min(5)).min(1000);
                std::thread::sleep(Duration::from_micros(micros));
            }
        }
        self.step = self.step.saturating_add(1);
    }
}
