//! Live latency for a process whose samples come from several threads or tasks (the bridges):
//! a [`super::Recorder`]-like interval behind one short lock, and a thread of its own that
//! every interval swaps it for an empty one and writes it (interval log, gauges) outside the
//! lock. A sample costs one uncontended lock and a histogram increment.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::recorder::Interval;
use super::writer::{sink, LiveConfig};

struct Inner {
    current: Mutex<Interval>,
    stop: AtomicBool,
    /// Wakes the ticker early at stop.
    bell: (Mutex<()>, Condvar),
}

/// A running shared recorder; stopping it (or dropping it) writes the last interval.
pub struct SharedLive {
    inner: Arc<Inner>,
    origin: Instant,
    series: usize,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl SharedLive {
    /// Starts the writer thread for `cfg` (its first interval starts now).
    pub fn start(cfg: LiveConfig) -> io::Result<SharedLive> {
        let origin = Instant::now();
        let series = cfg.series.len();
        let mut first = Interval::new(series);
        first.start_ns = 0;
        let inner = Arc::new(Inner {
            current: Mutex::new(first),
            stop: AtomicBool::new(false),
            bell: (Mutex::new(()), Condvar::new()),
        });
        let file = cfg.open_log()?;
        let i2 = inner.clone();
        let thread = std::thread::Builder::new()
            .name("quantum-latency".into())
            .spawn(move || {
                // The buffer the writer gave back, reused by the next swap (both closures run on this
                // thread, one after the other).
                let spare = std::cell::RefCell::new(Some(Interval::new(cfg.series.len())));
                let interval = cfg.interval.max(Duration::from_millis(1));
                let mut last = false;
                sink(
                    file,
                    &cfg,
                    0,
                    || {
                        if last {
                            return None;
                        }
                        let (m, cv) = &i2.bell;
                        let guard = m.lock().unwrap_or_else(|e| e.into_inner());
                        // Acquire: pairs with the Release store in `stop`.
                        if !i2.stop.load(Ordering::Acquire) {
                            let _ = cv.wait_timeout(guard, interval);
                        }
                        // Acquire: as above; the last interval is written once more after it.
                        last = i2.stop.load(Ordering::Acquire);
                        let now = origin.elapsed().as_nanos() as u64;
                        let mut next = spare
                            .borrow_mut()
                            .take()
                            .unwrap_or_else(|| Interval::new(cfg.series.len()));
                        next.start_ns = now;
                        let mut cur = i2.current.lock().unwrap_or_else(|e| e.into_inner());
                        let mut done = std::mem::replace(&mut *cur, next);
                        drop(cur);
                        done.end_ns = now;
                        Some(done)
                    },
                    |back| {
                        *spare.borrow_mut() = Some(back);
                        true
                    },
                )
            })?;
        Ok(SharedLive {
            inner,
            origin,
            series,
            thread: Some(thread),
        })
    }

    /// Now on this recorder's clock (ns since it started; monotonic).
    pub fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    /// Records `ns` (at least 1) in series number `series` (out of range: ignored).
    pub fn record(&self, series: usize, ns: u64) {
        if series >= self.series {
            return;
        }
        let mut cur = self.inner.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = cur.hists.get_mut(series) {
            h.saturating_record(ns.max(1));
        }
    }

    /// Records the time from `since` to now in series number `series`.
    pub fn record_since(&self, series: usize, since: Instant) {
        self.record(series, since.elapsed().as_nanos() as u64);
    }

    /// Writes the last interval and stops the writer thread.
    pub fn stop(&mut self) -> io::Result<()> {
        // Release: pairs with the ticker's Acquire loads; the samples recorded before are
        // under the interval's lock anyway.
        self.inner.stop.store(true, Ordering::Release);
        self.inner.bell.1.notify_all();
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the latency writer thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for SharedLive {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::read::intervals;

    #[test]
    fn samples_of_several_threads_reach_the_log_once_each() {
        let dir = std::env::temp_dir().join(format!("quantum-shared-live-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.hlog");
        let live = SharedLive::start(LiveConfig {
            series: vec!["a".into(), "b.k=v".into()],
            hdr_log: Some(path.clone()),
            gauges: None,
            interval: Duration::from_millis(20),
            comment: "test".into(),
        })
        .unwrap();
        let live = Arc::new(std::sync::Mutex::new(Some(live)));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let l = live.clone();
                std::thread::spawn(move || {
                    for i in 0..250u64 {
                        let g = l.lock().unwrap();
                        g.as_ref().unwrap().record((t % 2) as usize, 1_000 + i);
                        drop(g);
                        if i % 50 == 0 {
                            std::thread::sleep(Duration::from_millis(7));
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        live.lock().unwrap().take().unwrap().stop().unwrap();
        let got = intervals(&std::fs::read(&path).unwrap()).unwrap();
        let count = |tag: &str| -> u64 {
            got.iter()
                .filter(|i| i.tag == tag)
                .map(|i| i.hist.len())
                .sum()
        };
        assert_eq!((count("a"), count("b.k=v")), (500, 500));
        std::fs::remove_dir_all(&dir).ok();
    }
}
