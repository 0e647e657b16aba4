//! The recording side: record a series' sample, hand each finished interval to the writer.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use hdrhistogram::Histogram;

use super::report::new_histogram;

/// One interval's histograms, with when it started and ended (ns on the recorder's clock).
#[derive(Debug, Clone)]
pub struct Interval {
    /// When the interval started.
    pub start_ns: u64,
    /// When it ended.
    pub end_ns: u64,
    /// One histogram per series (ns), in the series' order.
    pub hists: Vec<Histogram<u64>>,
}

impl Interval {
    /// Empty histograms for `series` series.
    pub fn new(series: usize) -> Interval {
        Interval {
            start_ns: 0,
            end_ns: 0,
            hists: (0..series).map(|_| new_histogram()).collect(),
        }
    }

    /// Empties every histogram.
    pub fn reset(&mut self) {
        for h in &mut self.hists {
            h.reset();
        }
    }
}

/// Records samples into the current interval and, once per `interval_ns`, swaps it for an
/// empty one from the writer. Owned by one thread.
pub struct Recorder {
    current: Interval,
    interval_ns: u64,
    full: SyncSender<Interval>,
    empty: Receiver<Interval>,
    /// Intervals the writer was too slow to take (their samples are merged into the next).
    pub late_handovers: u64,
}

impl Recorder {
    /// A recorder of `series` series whose intervals go to `full`; empty ones come back on
    /// `empty` (the writer sends two at start, so a swap never allocates).
    pub fn new(
        series: usize,
        interval_ns: u64,
        start_ns: u64,
        full: SyncSender<Interval>,
        empty: Receiver<Interval>,
    ) -> Recorder {
        let mut current = Interval::new(series);
        current.start_ns = start_ns;
        Recorder {
            current,
            interval_ns: interval_ns.max(1),
            full,
            empty,
            late_handovers: 0,
        }
    }

    /// Records `ns` (at least 1) in series number `series`; a series out of range is ignored.
    #[inline]
    pub fn record(&mut self, series: usize, ns: u64) {
        if let Some(h) = self.current.hists.get_mut(series) {
            h.saturating_record(ns.max(1));
        }
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
                // The writer is gone or full: drop the samples rather than block the recording
                // thread, but keep the buffer.
                self.late_handovers += 1;
                let mut back = back;
                back.reset();
                self.current.hists = back.hists;
            }
        }
    }
}

impl Recorder {
    /// Hands the interval in progress over now, whatever its length (at stop, so the last
    /// samples reach the log), waiting up to a second for the writer to give a buffer back.
    pub fn flush(&mut self, now_ns: u64) {
        let Ok(mut next) = self.empty.recv_timeout(std::time::Duration::from_secs(1)) else {
            self.late_handovers += 1;
            return;
        };
        next.start_ns = now_ns;
        let mut done = std::mem::replace(&mut self.current, next);
        done.end_ns = now_ns;
        if self.full.send(done).is_err() {
            self.late_handovers += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;

    #[test]
    fn intervals_are_handed_over_on_time_and_buffers_come_back() {
        let (full_tx, full_rx) = sync_channel(4);
        let (empty_tx, empty_rx) = sync_channel(4);
        empty_tx.send(Interval::new(2)).unwrap();
        let mut r = Recorder::new(2, 1_000, 0, full_tx, empty_rx);
        r.record(1, 70);
        r.record(7, 70);
        r.tick(999);
        assert!(full_rx.try_recv().is_err());
        r.tick(1_000);
        let i = full_rx.try_recv().unwrap();
        assert_eq!((i.start_ns, i.end_ns), (0, 1_000));
        assert_eq!((i.hists[0].len(), i.hists[1].len()), (0, 1));
        // No empty buffer came back yet: the next interval keeps recording.
        r.record(1, 80);
        r.tick(2_500);
        assert_eq!(r.late_handovers, 1);
        empty_tx.send(Interval::new(2)).unwrap();
        r.tick(2_600);
        let i = full_rx.try_recv().unwrap();
        assert_eq!((i.start_ns, i.end_ns), (1_000, 2_600));
        assert_eq!(i.hists[1].max(), 80);
        // At stop the interval in progress goes over, however short.
        r.record(0, 5);
        empty_tx.send(Interval::new(2)).unwrap();
        r.flush(2_700);
        let i = full_rx.try_recv().unwrap();
        assert_eq!((i.start_ns, i.end_ns, i.hists[0].len()), (2_600, 2_700, 1));
    }
}
