//! The hot-path side: record a plan's stamps, hand each finished interval to the writer.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use hdrhistogram::Histogram;

use super::report::new_histogram;
use super::stages::{PerStage, Stage, Stamps};

/// One interval's histograms, with when it started and ended (engine ns).
#[derive(Debug, Clone)]
pub struct Interval {
    /// Engine time the interval started.
    pub start_ns: u64,
    /// Engine time it ended.
    pub end_ns: u64,
    /// One histogram per stage (ns).
    pub hists: PerStage<Histogram<u64>>,
}

impl Interval {
    /// Empty histograms.
    pub fn new() -> Interval {
        Interval {
            start_ns: 0,
            end_ns: 0,
            hists: PerStage(std::array::from_fn(|_| new_histogram())),
        }
    }
}

impl Default for Interval {
    fn default() -> Self {
        Interval::new()
    }
}

/// Records stamps into the current interval and, once per `interval_ns`, swaps it for an empty
/// one from the writer. Owned by one thread (the daemon's I/O thread).
pub struct Recorder {
    current: Interval,
    interval_ns: u64,
    full: SyncSender<Interval>,
    empty: Receiver<Interval>,
    /// Intervals the writer was too slow to take (their samples are merged into the next).
    pub late_handovers: u64,
}

impl Recorder {
    /// A recorder whose intervals go to `full`; empty ones come back on `empty` (the writer
    /// sends two at start, so a swap never allocates).
    pub fn new(
        interval_ns: u64,
        start_ns: u64,
        full: SyncSender<Interval>,
        empty: Receiver<Interval>,
    ) -> Recorder {
        let mut current = Interval::new();
        current.start_ns = start_ns;
        Recorder {
            current,
            interval_ns: interval_ns.max(1),
            full,
            empty,
            late_handovers: 0,
        }
    }

    /// Records every stage `s` delimits.
    #[inline]
    pub fn record(&mut self, s: &Stamps) {
        for (stage, ns) in s.spans() {
            self.current.hists.get_mut(stage).saturating_record(ns);
        }
    }

    /// Records one stage directly.
    #[inline]
    pub fn record_stage(&mut self, stage: Stage, ns: u64) {
        self.current
            .hists
            .get_mut(stage)
            .saturating_record(ns.max(1));
    }

    /// At or after the interval's end: hands it to the writer and starts the next. Cheap when
    /// the interval is not over (one comparison).
    #[inline]
    pub fn tick(&mut self, now_ns: u64) {
        if now_ns < self.current.start_ns + self.interval_ns {
            return;
        }
        // No empty interval back yet: keep recording into this one (the writer is behind).
        let Ok(mut next) = self.empty.try_recv() else {
            self.late_handovers += 1;
            return;
        };
        next.start_ns = now_ns;
        let mut done = std::mem::replace(&mut self.current, next);
        done.end_ns = now_ns;
        match self.full.try_send(done) {
            Ok(()) => {}
            Err(TrySendError::Full(back) | TrySendError::Disconnected(back)) => {
                // The writer is gone or full: drop the samples rather than block the hot path,
                // but keep the buffer.
                self.late_handovers += 1;
                let mut back = back;
                for h in back.hists.0.iter_mut() {
                    h.reset();
                }
                self.current.hists = back.hists;
            }
        }
    }
}

/// Ring-pop stamps of plans in the engine, by plan id, until their intent comes out:
/// direct-mapped, fixed size, no allocation. A collision overwrites the older entry (that
/// plan then has no `rx`, and its ingest and end-to-end samples are skipped): size it at a few
/// times the plans in the engine at once (the permit table's capacity).
pub struct RxStamps {
    slots: Box<[(u64, u64)]>,
    mask: usize,
}

impl RxStamps {
    /// Room for `capacity` plans (rounded up to a power of two).
    pub fn new(capacity: usize) -> RxStamps {
        let n = capacity.max(1).next_power_of_two();
        RxStamps {
            slots: vec![(0, 0); n].into_boxed_slice(),
            mask: n - 1,
        }
    }

    #[inline]
    fn slot(&self, plan: u64) -> usize {
        // Plan ids are random-looking already; the multiply spreads sequential ones.
        (plan.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & self.mask
    }

    /// Plan `plan` was popped from its ring at `rx_ns`.
    #[inline]
    pub fn note(&mut self, plan: u64, rx_ns: u64) {
        let i = self.slot(plan);
        self.slots[i] = (plan, rx_ns);
    }

    /// The ring-pop stamp of `plan`, forgetting it.
    #[inline]
    pub fn take(&mut self, plan: u64) -> Option<u64> {
        let i = self.slot(plan);
        let (p, rx) = self.slots[i];
        if p == plan && plan != 0 {
            self.slots[i] = (0, 0);
            Some(rx)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;

    #[test]
    fn rx_stamps_are_taken_once() {
        let mut t = RxStamps::new(64);
        t.note(0xf1a8_d7f4_8713_d5cf, 10);
        t.note(0x8422_2f2c_53d2_2b91, 20);
        assert_eq!(t.take(0xf1a8_d7f4_8713_d5cf), Some(10));
        assert_eq!(t.take(0xf1a8_d7f4_8713_d5cf), None);
        assert_eq!(t.take(0x8422_2f2c_53d2_2b91), Some(20));
        assert_eq!(t.take(7), None);
    }

    #[test]
    fn intervals_are_handed_over_on_time_and_buffers_come_back() {
        let (full_tx, full_rx) = sync_channel(4);
        let (empty_tx, empty_rx) = sync_channel(4);
        empty_tx.send(Interval::new()).unwrap();
        let mut r = Recorder::new(1_000, 0, full_tx, empty_rx);
        r.record_stage(Stage::Chain, 70);
        r.tick(999);
        assert!(full_rx.try_recv().is_err());
        r.tick(1_000);
        let i = full_rx.try_recv().unwrap();
        assert_eq!((i.start_ns, i.end_ns), (0, 1_000));
        assert_eq!(i.hists.get(Stage::Chain).len(), 1);
        // No empty buffer came back yet: the next interval keeps recording.
        r.record_stage(Stage::Chain, 80);
        r.tick(2_500);
        assert_eq!(r.late_handovers, 1);
        empty_tx.send(Interval::new()).unwrap();
        r.tick(2_600);
        let i = full_rx.try_recv().unwrap();
        assert_eq!((i.start_ns, i.end_ns), (1_000, 2_600));
        assert_eq!(i.hists.get(Stage::Chain).max(), 80);
    }
}
