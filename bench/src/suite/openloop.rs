//! The open-loop schedule: message `i` of a block is due at `start + i * interval`, whatever
//! happened to message `i - 1`, and its latency runs from that due time to its completion.
//!
//! This is how coordinated omission is handled: when the system stalls, the sender does not
//! wait politely and send later as if nothing happened (a closed loop would then record one
//! slow sample and miss every message that should have been sent during the stall). The
//! messages due during the stall are sent late, and each carries the delay it suffered.

use hdrhistogram::Histogram;

/// Sends per second and the number of messages of one block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Messages per second.
    pub rate: f64,
    /// Messages in the block.
    pub count: u64,
}

impl Schedule {
    /// Nanoseconds between two due times.
    pub fn interval_ns(&self) -> u64 {
        (1e9 / self.rate.max(1e-3)).round().max(1.0) as u64
    }

    /// Due time of message `i` for a block starting at `start_ns`.
    #[inline]
    pub fn due(&self, start_ns: u64, i: u64) -> u64 {
        start_ns + i * self.interval_ns()
    }
}

/// Runs one block on the calling thread against the clock `now` (ns): waits (spinning) until
/// each message is due, calls `send(i)`, which returns the time the message completed, and
/// records `completed - due` in `hist`. One message at a time is in flight, as in a ping-pong:
/// a message that completes late delays the next send, and that delay is in the next sample.
pub fn run_block(
    schedule: &Schedule,
    hist: &mut Histogram<u64>,
    now: &mut impl FnMut() -> u64,
    send: &mut impl FnMut(u64) -> u64,
) {
    // Start one interval ahead so the first message is not already late.
    let start = now() + schedule.interval_ns();
    for i in 0..schedule.count {
        let due = schedule.due(start, i);
        while now() < due {
            std::hint::spin_loop();
        }
        let done = send(i);
        hist.saturating_record(done.saturating_sub(due).max(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantum_daemon::latency::report::new_histogram;
    use std::cell::Cell;

    /// A clock that only moves when the code under test makes it move.
    fn manual() -> Cell<u64> {
        Cell::new(1_000)
    }

    #[test]
    fn a_stall_is_carried_by_every_message_due_during_it() {
        let t = manual();
        let sched = Schedule {
            rate: 100_000.0, // one every 10 µs
            count: 1_000,
        };
        let mut hist = new_histogram();
        let mut now = || {
            // Each look at the clock costs 1 ns, so waiting for a due time ends.
            t.set(t.get() + 1);
            t.get()
        };
        let mut send = |i: u64| {
            // Every message takes 1 µs; message 100 stalls for 10 ms.
            let cost = if i == 100 { 10_000_000 } else { 1_000 };
            t.set(t.get() + cost);
            t.get()
        };
        run_block(&sched, &mut hist, &mut now, &mut send);
        assert_eq!(hist.len(), 1_000);
        // The stall covers a thousand due times; every message due during it is late by what
        // was left of the stall: 900 samples (all after message 100) exceed 1 µs, a closed
        // loop would have recorded exactly one.
        let late = hist.len() - hist.count_between(0, 2_000);
        assert_eq!(
            late,
            900,
            "{}",
            quantum_daemon::latency::report::percentile_line(&hist)
        );
        assert!(hist.max() >= 10_000_000);
        // The second-slowest late message is one interval less late than the stalled one.
        assert!(hist.value_at_quantile(0.5) > 5_000_000);
    }
}
