//! The lease watcher: a thread that reads both hosts' lease segments every [`EVERY`] and keeps,
//! for each reading, which host leads and which may send. The checks that need the whole
//! history (two hosts never both may send; every order was placed while its host could send;
//! how long takeovers took) read it at the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use quantum_ipc::lease::{boot_ns, LeaseReader, LeaseRole};

/// How often both segments are read.
pub const EVERY: Duration = Duration::from_millis(20);

/// Milliseconds since the Unix epoch: the clock of the simulator's order times.
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One reading of both segments, judged at one instant.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// When ([`wall_ms`]).
    pub wall_ms: i64,
    /// Per host: leads (role leader, deadline not passed).
    pub leads: [bool; 2],
    /// Per host: may send ([`quantum_ipc::lease::Lease::may_send`]).
    pub may_send: [bool; 2],
}

/// Everything the watcher saw.
#[derive(Default)]
pub struct Timeline {
    /// Every reading, in order.
    pub samples: Vec<Sample>,
    /// Readings at which both hosts could send.
    pub both: Vec<i64>,
    /// Every `takeover_ms` a leading host's segment published, once per new value.
    pub takeovers: Vec<u64>,
    /// Per host, the last `takeover_ms` taken into [`Timeline::takeovers`].
    last_takeover: [u64; 2],
}

impl Timeline {
    /// The first reading at or after `from` at which host `h` may send.
    pub fn first_may_send(&self, h: usize, from: i64) -> Option<i64> {
        let i = self.samples.partition_point(|s| s.wall_ms < from);
        self.samples[i..]
            .iter()
            .find(|s| s.may_send[h])
            .map(|s| s.wall_ms)
    }

    /// Whether host `h` could send at some reading in `[t - window_ms, t + EVERY]`: an order
    /// of `h` the exchange accepted at `t` was signed (before the host's deadline check) at
    /// most the recvWindow (and the clock error) before `t`. `None` when no reading falls in
    /// that span (the watcher was held up).
    pub fn could_send(&self, h: usize, t: i64, window_ms: i64) -> Option<bool> {
        let from = self.samples.partition_point(|s| s.wall_ms < t - window_ms);
        let to = self
            .samples
            .partition_point(|s| s.wall_ms <= t + EVERY.as_millis() as i64);
        let span = &self.samples[from..to.max(from)];
        if span.is_empty() {
            return None;
        }
        Some(span.iter().any(|s| s.may_send[h]))
    }
}

/// The watcher thread.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    timeline: Arc<Mutex<Timeline>>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Starts reading the lease segments of `instances` (host 0, host 1).
    pub fn start(instances: [String; 2]) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let timeline = Arc::new(Mutex::new(Timeline::default()));
        let (s, t) = (stop.clone(), timeline.clone());
        let thread = std::thread::spawn(move || {
            let mut readers = instances.map(|i| LeaseReader::new(&i));
            // Relaxed: the flag only ends the loop; the timeline is handed over by the mutex
            // and the join.
            while !s.load(Ordering::Relaxed) {
                let leases = [readers[0].read(), readers[1].read()];
                // Both judged at one instant, after both were read: a host that leads at
                // `now` by what it published had promised so by then.
                let now = boot_ns();
                let wall = wall_ms();
                let mut sample = Sample {
                    wall_ms: wall,
                    leads: [false; 2],
                    may_send: [false; 2],
                };
                let mut tl = t.lock().unwrap_or_else(PoisonError::into_inner);
                for (h, l) in leases.iter().enumerate() {
                    let Some(l) = l else { continue };
                    sample.leads[h] = l.leads(now);
                    sample.may_send[h] = l.may_send(now);
                    if l.role == LeaseRole::Leader
                        && l.takeover_ms > 0
                        && l.takeover_ms != tl.last_takeover[h]
                    {
                        tl.last_takeover[h] = l.takeover_ms;
                        tl.takeovers.push(l.takeover_ms);
                    }
                }
                if sample.may_send[0] && sample.may_send[1] {
                    tl.both.push(wall);
                }
                tl.samples.push(sample);
                drop(tl);
                std::thread::sleep(EVERY);
            }
        });
        Watcher {
            stop,
            timeline,
            thread: Some(thread),
        }
    }

    /// Runs `f` on what was seen so far.
    pub fn with<R>(&self, f: impl FnOnce(&Timeline) -> R) -> R {
        f(&self.timeline.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Stops the thread (also on drop).
    pub fn stop(&mut self) {
        // Relaxed: see the loop.
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The nearest-rank percentile `p` (0..=100) of `v` (sorted here).
pub fn percentile(v: &mut [u64], p: u64) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let rank = (p as usize * v.len()).div_ceil(100).max(1);
    Some(v[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(wall_ms: i64, a: bool, b: bool) -> Sample {
        Sample {
            wall_ms,
            leads: [a, b],
            may_send: [a, b],
        }
    }

    #[test]
    fn an_order_is_allowed_only_by_a_reading_within_its_window() {
        let tl = Timeline {
            samples: vec![
                s(1000, true, false),
                s(1020, false, false),
                s(2000, false, true),
            ],
            ..Timeline::default()
        };
        assert_eq!(tl.could_send(0, 1500, 600), Some(true));
        assert_eq!(
            tl.could_send(0, 1700, 600),
            None,
            "no reading in 1100..=1720"
        );
        assert_eq!(tl.could_send(0, 2000, 600), Some(false));
        assert_eq!(tl.could_send(1, 2000, 600), Some(true));
        assert_eq!(
            tl.could_send(1, 1990, 600),
            Some(true),
            "a reading just after"
        );
        assert_eq!(tl.first_may_send(1, 1001), Some(2000));
        assert_eq!(tl.first_may_send(0, 1001), None);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        assert_eq!(percentile(&mut [], 50), None);
        assert_eq!(percentile(&mut [30, 10, 20], 50), Some(20));
        assert_eq!(percentile(&mut [30, 10, 20, 40], 50), Some(20));
        assert_eq!(percentile(&mut [30, 10, 20, 40], 100), Some(40));
    }
}
