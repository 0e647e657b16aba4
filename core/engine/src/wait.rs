//! Idling without sleeping through work: spin (opt-in), then yield, then park for growing but
//! bounded steps, and wake early when another thread hands over work.
//!
//! The legacy loop slept 100 ms between checks. Here `APPLY_PERMIT_STEP_MS` is only the upper
//! bound of one park; a thread that hands work over calls [`Wake::wake`], so a parked stage
//! resumes in microseconds, and a missed wake-up costs at most one step.

use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::OnceLock;
use std::thread::{self, Thread};
use std::time::Duration;

/// How a thread idles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdlePolicy {
    /// Busy-poll and never give the core away (opt-in: burns the core, keeps caches and the
    /// pipeline warm for the next plan). Without it the thread yields, then parks.
    pub spin: bool,
    /// Longest single park.
    pub max_park: Duration,
}

const YIELDS: u32 = 64;
const FIRST_PARK: Duration = Duration::from_micros(20);

/// Backoff state of one idle stretch; [`Idle::reset`] when work arrives.
#[derive(Debug)]
pub struct Idle {
    policy: IdlePolicy,
    spins: u32,
    yields: u32,
    park: Duration,
}

/// Parking side of a wake-up channel: one thread parks, any thread wakes it.
#[derive(Debug, Default)]
pub struct Wake {
    sleeping: AtomicBool,
    thread: OnceLock<Thread>,
}

impl Wake {
    /// Registers the calling thread as the one that parks here.
    pub fn register(&self) {
        let _ = self.thread.set(thread::current());
    }

    /// Wakes the parked thread, if it is parked. Call after making work visible.
    #[inline]
    pub fn wake(&self) {
        // SeqCst fence: orders the caller's hand-over (a queue push or a permit publish) before
        // the `sleeping` load; pairs with the fence in `Idle::idle` (store sleeping, fence,
        // re-check work), so either the sleeper sees the work or we see it sleeping.
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) {
            if let Some(t) = self.thread.get() {
                t.unpark();
            }
        }
    }
}

impl Idle {
    /// A fresh idle stretch.
    pub fn new(policy: IdlePolicy) -> Self {
        Idle {
            policy,
            spins: 0,
            yields: 0,
            park: FIRST_PARK,
        }
    }

    /// Work arrived: the next idle starts from the cheapest step again.
    #[inline]
    pub fn reset(&mut self) {
        self.spins = 0;
        self.yields = 0;
        self.park = FIRST_PARK;
    }

    /// One idle step. `has_work` is re-checked after announcing sleep so a hand-over between
    /// the caller's last look and the park is not missed; `limit` bounds the park (e.g. the
    /// time left to the earliest pending deadline).
    pub fn idle(&mut self, wake: &Wake, limit: Option<Duration>, has_work: impl Fn() -> bool) {
        if self.policy.spin {
            self.spins = self.spins.wrapping_add(1);
            std::hint::spin_loop();
            return;
        }
        if self.yields < YIELDS {
            self.yields += 1;
            thread::yield_now();
            return;
        }
        let mut d = self.park.min(self.policy.max_park);
        if let Some(l) = limit {
            d = d.min(l.max(Duration::from_micros(1)));
        }
        wake.sleeping.store(true, Ordering::Relaxed);
        // SeqCst fence: pairs with the one in `Wake::wake` (see there).
        fence(Ordering::SeqCst);
        if !has_work() {
            thread::park_timeout(d);
        }
        wake.sleeping.store(false, Ordering::Relaxed);
        self.park = (self.park * 2).min(self.policy.max_park);
    }
}
