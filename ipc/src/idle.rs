//! How a thread waits for work without sleeping through it: the one idle strategy of the
//! rings, the core's runner and the daemon's loop.
//!
//! One idle stretch takes steps: a few spin-hint bursts (1, 2, 4 … 64 hints: a peer in the
//! middle of a record finishes within them), then [`YIELDS`] yields (let a peer on a busy core
//! run), then parks that start at [`FIRST_PARK`] and double up to the policy's `max_park`. A
//! policy that spins never leaves the spin step (opt-in: it burns the core to keep caches and
//! the pipeline warm). [`Idle::reset`] when work arrives starts the next stretch from the
//! cheapest step.
//!
//! A park ends early when another thread hands work over through a [`Wake`] (same process),
//! or when a producer in another process rings the doorbell of the ring the thread waits on
//! ([`Idle::idle_on`], [`crate::doorbell`]); without either a park is a sleep that bounds how
//! late the work is noticed.
//!
//! What each choice costs, for a thread that waits for a peer in another process:
//!
//! - `spin` (opt-in): a core per idle thread, always busy; the lowest latency (the record is
//!   seen within a cache-line transfer, well under a microsecond).
//! - parking on a doorbell (the default of the rings): no CPU while asleep; the producer pays
//!   a fence per push, and a FUTEX_WAKE system call (a few µs) only when the consumer sleeps;
//!   the sleeper runs again within the kernel's wake-up latency (a few µs, tens in the tail).
//!   The park's length is only the safety net for a producer that never rings.
//! - a blind park (what [`Idle::snooze`] does): no CPU and no cost to the producer, but work
//!   is noticed only when the park ends, up to `max_park` (1 ms for a ring) late.

use std::thread;
use std::time::Duration;

use crate::doorbell::{Bell, Doorbell};

/// Spin-hint bursts before yielding: `2^0 ..= 2^(SPIN_BURSTS - 1)` hints.
pub const SPIN_BURSTS: u32 = 7;
/// Yields after the spin bursts, before the first park.
pub const YIELDS: u32 = 64;
/// The first park; each next one is twice as long, up to the policy's `max_park`.
pub const FIRST_PARK: Duration = Duration::from_micros(20);

/// How a thread idles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdlePolicy {
    /// Busy-poll and never give the core away (opt-in). Without it the thread spins briefly,
    /// yields, then parks.
    pub spin: bool,
    /// Longest single park: the latest a thread nobody wakes notices work.
    pub max_park: Duration,
}

impl IdlePolicy {
    /// A ring's producer waiting for room or consumer waiting for records: the peer is another
    /// process. A consumer parks on the ring's doorbell, so a push ends its park at once; the
    /// park's bound (1 ms) is the safety net for a producer that does not ring (a binary from
    /// before the doorbell), and how late a producer waiting for room notices it (consumers do
    /// not ring).
    pub const RING: IdlePolicy = IdlePolicy {
        spin: false,
        max_park: Duration::from_millis(1),
    };
}

/// What one idle step does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// This many spin-loop hints.
    Spin(u32),
    /// Yield the CPU once.
    Yield,
    /// Park (or, with nobody to wake, sleep) for at most this long.
    Park(Duration),
}

/// One idle stretch of one thread; [`Idle::reset`] when work arrives.
#[derive(Debug)]
pub struct Idle {
    policy: IdlePolicy,
    /// Steps taken in this stretch (saturating).
    steps: u32,
    /// The next park, before the caller's limit.
    park: Duration,
}

impl Idle {
    /// A fresh idle stretch.
    pub fn new(policy: IdlePolicy) -> Self {
        Idle {
            policy,
            steps: 0,
            park: FIRST_PARK,
        }
    }

    /// Work arrived: the next idle starts from the cheapest step again.
    #[inline]
    pub fn reset(&mut self) {
        self.steps = 0;
        self.park = FIRST_PARK;
    }

    /// The next step of this stretch, advancing it, without taking it: for a caller that
    /// waits its own way (e.g. parks in a blocking receive for [`Step::Park`]'s time). `limit`
    /// bounds a park (e.g. the time left to a deadline; at least 1 µs).
    pub fn next_step(&mut self, limit: Option<Duration>) -> Step {
        let n = self.steps;
        self.steps = self.steps.saturating_add(1);
        if self.policy.spin {
            return Step::Spin(1);
        }
        if n < SPIN_BURSTS {
            return Step::Spin(1 << n);
        }
        if n < SPIN_BURSTS + YIELDS {
            return Step::Yield;
        }
        let mut d = self.park.min(self.policy.max_park);
        if let Some(l) = limit {
            d = d.min(l.max(Duration::from_micros(1)));
        }
        self.park = (self.park * 2).min(self.policy.max_park);
        Step::Park(d)
    }

    /// Takes one step with nobody to wake this thread: a park is a sleep of at most its
    /// length (`limit` as in [`Idle::next_step`]).
    pub fn snooze(&mut self, limit: Option<Duration>) {
        match self.next_step(limit) {
            Step::Spin(n) => spin(n),
            Step::Yield => crate::sync::yield_now(),
            Step::Park(d) => thread::park_timeout(d),
        }
    }

    /// Takes one step, parking on `wake` so a hand-over ends the park at once. `has_work` is
    /// re-checked after announcing the park, so a hand-over between the caller's last look and
    /// the park is not slept through; `limit` as in [`Idle::next_step`].
    pub fn idle(&mut self, wake: &Wake, limit: Option<Duration>, has_work: impl Fn() -> bool) {
        self.idle_on(&[wake.bell()], limit, has_work);
    }
}

impl Idle {
    /// Takes one step, parking on `bells` (the doorbells of rings whose producers are other
    /// processes, see [`crate::doorbell::wait_any`]), so a producer's push ends the park at
    /// once. `has_work` is re-checked after the park is announced on every bell, so a record
    /// pushed between the caller's last look and the park is not slept through; `limit` as in
    /// [`Idle::next_step`].
    pub fn idle_on(
        &mut self,
        bells: &[Bell<'_>],
        limit: Option<Duration>,
        has_work: impl FnMut() -> bool,
    ) {
        match self.next_step(limit) {
            Step::Spin(n) => spin(n),
            Step::Yield => crate::sync::yield_now(),
            Step::Park(d) => {
                crate::doorbell::wait_any(bells, d, has_work);
            }
        }
    }
}

fn spin(hints: u32) {
    for _ in 0..hints {
        crate::sync::spin_loop();
    }
}

/// Parking side of a wake-up channel within one process: threads park on it ([`Idle::idle`]),
/// any thread wakes them. It is a [`Doorbell`] on the heap, so a thread can also sleep on it
/// and on rings' doorbells at once ([`Wake::bell`] in a [`crate::doorbell::wait_any`]).
#[derive(Debug, Default)]
pub struct Wake {
    door: Doorbell,
}

impl Wake {
    /// Nothing to do: any thread may park here (kept for callers written for a wake that
    /// named its one parking thread).
    pub fn register(&self) {}

    /// Wakes the threads parked here, if any. Call after making work visible: one fence and
    /// one load while nobody sleeps (see [`Doorbell::ring`]).
    #[inline]
    pub fn wake(&self) {
        self.door.ring();
    }

    /// A bell to sleep on this wake and on other doorbells at once.
    pub fn bell(&self) -> Bell<'_> {
        self.door.bell()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    fn steps(policy: IdlePolicy, n: usize, limit: Option<Duration>) -> Vec<Step> {
        let mut i = Idle::new(policy);
        (0..n).map(|_| i.next_step(limit)).collect()
    }

    const PARKING: IdlePolicy = IdlePolicy {
        spin: false,
        max_park: Duration::from_micros(100),
    };

    #[test]
    fn spin_then_yield_then_doubling_bounded_parks() {
        let s = steps(PARKING, (SPIN_BURSTS + YIELDS + 5) as usize, None);
        let spins: Vec<Step> = (0..SPIN_BURSTS).map(|n| Step::Spin(1 << n)).collect();
        assert_eq!(s[..SPIN_BURSTS as usize], spins[..]);
        let yields = &s[SPIN_BURSTS as usize..(SPIN_BURSTS + YIELDS) as usize];
        assert!(yields.iter().all(|x| *x == Step::Yield));
        let us = Duration::from_micros;
        assert_eq!(
            s[(SPIN_BURSTS + YIELDS) as usize..],
            [
                Step::Park(us(20)),
                Step::Park(us(40)),
                Step::Park(us(80)),
                Step::Park(us(100)),
                Step::Park(us(100))
            ]
        );
    }

    #[test]
    fn a_limit_shortens_a_park_and_reset_starts_over() {
        let mut i = Idle::new(PARKING);
        for _ in 0..SPIN_BURSTS + YIELDS {
            i.next_step(None);
        }
        assert_eq!(
            i.next_step(Some(Duration::from_micros(5))),
            Step::Park(Duration::from_micros(5))
        );
        assert_eq!(
            i.next_step(Some(Duration::ZERO)),
            Step::Park(Duration::from_micros(1))
        );
        i.reset();
        assert_eq!(i.next_step(None), Step::Spin(1));
    }

    #[test]
    fn a_spinning_policy_only_spins() {
        let policy = IdlePolicy {
            spin: true,
            ..PARKING
        };
        assert!(steps(policy, 500, None).iter().all(|s| *s == Step::Spin(1)));
    }

    #[test]
    fn a_wake_ends_a_park_early() {
        let policy = IdlePolicy {
            spin: false,
            max_park: Duration::from_secs(30),
        };
        let wake = Arc::new(Wake::default());
        let flag = Arc::new(AtomicBool::new(false));
        let (w, f) = (wake.clone(), flag.clone());
        let t = thread::spawn(move || {
            w.register();
            let mut idle = Idle::new(policy);
            // Straight to the longest park.
            while idle.next_step(None) != Step::Park(policy.max_park) {}
            let start = Instant::now();
            while !f.load(Ordering::Relaxed) {
                idle.idle(&w, None, || f.load(Ordering::Relaxed));
            }
            start.elapsed()
        });
        thread::sleep(Duration::from_millis(100));
        flag.store(true, Ordering::Relaxed);
        wake.wake();
        assert!(t.join().unwrap() < Duration::from_secs(10));
    }

    /// `snooze` and `idle` take their step: the stretch advances as with `next_step`.
    #[test]
    fn snooze_and_idle_take_the_steps_of_the_stretch() {
        let wake = Wake::default();
        wake.register();
        let before_parks = (SPIN_BURSTS + YIELDS) as usize;
        let mut a = Idle::new(PARKING);
        let mut b = Idle::new(PARKING);
        for _ in 0..before_parks {
            a.snooze(None);
            b.idle(&wake, None, || false);
        }
        assert_eq!(a.next_step(None), Step::Park(FIRST_PARK));
        assert_eq!(b.next_step(None), Step::Park(FIRST_PARK));
    }

    /// Work that arrived before the park is announced is not slept through: at a park step
    /// with work waiting, `idle` returns without parking.
    #[test]
    fn idle_does_not_park_when_work_is_waiting() {
        let policy = IdlePolicy {
            spin: false,
            max_park: Duration::from_secs(5),
        };
        let wake = Wake::default();
        wake.register();
        let mut idle = Idle::new(policy);
        while idle.next_step(None) != Step::Park(policy.max_park) {}
        let start = Instant::now();
        idle.idle(&wake, None, || true);
        assert!(start.elapsed() < Duration::from_secs(2));
    }
}
