//! Doorbells: a consumer sleeps until its producer, in another process, publishes — without
//! missing the record that arrives just as it falls asleep, and without costing the producer a
//! system call while nobody sleeps.
//!
//! A [`Doorbell`] is two 32-bit words in a segment's header (next to the producer's cursor) or
//! on the heap: `rings`, a futex word the producer bumps to wake sleepers, and `sleepers`, who
//! is asleep. A consumer waits through a [`Bell`] (its handle on a doorbell), one at a time
//! ([`Bell::wait`]) or on several at once ([`wait_any`]).
//!
//! The protocol, Dekker-style (each side stores, fences, then loads what the other stores):
//!
//! ```text
//! consumer (wait_any)                          producer (Doorbell::ring), after publishing
//!   announce: sleepers |= mark                   publish the record (slot marker, tail)
//!   fence(SeqCst)  ──────────── pair ──────────  fence(SeqCst)
//!   seen = rings (Acquire)                       if sleepers != 0:
//!   if has_work(): withdraw, return                rings += 1 (Release)
//!   FUTEX_WAIT(rings == seen, timeout)             FUTEX_WAKE(rings, everyone)
//!   withdraw: sleepers &= !mark
//! ```
//!
//! Why no wake-up is lost: the two fences are ordered one way or the other. If the consumer's
//! comes first, the producer's load of `sleepers` sees the announcement and rings; if the
//! producer's comes first, the consumer's re-check (`has_work`) sees the record and it does not
//! sleep. When the producer rings, the consumer read `rings` either after the bump (its Acquire
//! load reads the Release bump, so its re-check sees the record) or before it, and then
//! FUTEX_WAIT, which compares the word with `seen` atomically with respect to FUTEX_WAKE,
//! returns at once or is woken. `tests/loom.rs` checks this with this code and a futex that
//! never times out, where a lost wake-up is a deadlock.
//!
//! The futex calls go without `FUTEX_PRIVATE_FLAG`, so the kernel keys them by the page behind
//! the word and a producer in one process wakes a consumer in another. The timeout stays as the
//! safety net: a producer of an older binary never rings, and then a wait costs what a blind
//! park cost before (at most its timeout).
//!
//! Who sleeps: the low [`NAMED`] bits of `sleepers` are named sleepers, one per role slot (a
//! ring's consumer is bit 0, a broadcast reader its entry's bit), so a process killed in its
//! sleep leaves a bit that the next holder of the slot clears when it claims it; above them, a
//! count of anonymous sleepers (an unlisted reader, a doorbell on the heap). A count leaked by
//! a killed anonymous sleeper costs the producer one needless FUTEX_WAKE per publish until the
//! segment is made anew (the `results` ring at the daemon's next start).
//!
//! Costs (a 2-vCPU VM, Linux 6.18): the producer pays one SeqCst fence and one load per
//! publish, 8 ns (the load hits its own cache line while nobody sleeps), and a FUTEX_WAKE
//! system call (2–4 µs) only when someone sleeps; a sleeper runs again within the kernel's
//! wake-up latency (p50 1.6 µs, p99 41 µs), and sleeps cost no CPU.

use std::time::Duration;

use crate::sync::{fence, AtomicU32, Ordering};

/// Named sleeper bits at the bottom of `sleepers`: one per role slot of a segment.
pub const NAMED: u32 = 8;
/// One anonymous sleeper in `sleepers`.
const ANONYMOUS: u32 = 1 << NAMED;
/// Bells one [`wait_any`] call takes at most.
pub const MAX_BELLS: usize = 16;

/// Two words a producer rings and its consumers sleep on (`repr(C)`: part of the segment
/// layouts). All zeros is an idle doorbell, so a header's spare bytes can become one.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Doorbell {
    /// The futex word: bumped each time a producer finds a sleeper.
    rings: AtomicU32,
    /// Named sleeper bits, then the count of anonymous sleepers (see the module docs).
    sleepers: AtomicU32,
}

impl Doorbell {
    /// The producer's side: call after publishing (the record must be visible before). Costs
    /// a fence and a load while nobody sleeps; wakes every sleeper otherwise. Returns whether
    /// it woke anyone (made the system call).
    #[inline]
    pub fn ring(&self) -> bool {
        // SYNC POINT: SeqCst fence pairs with the one in `wait_any` (announce, fence, re-check):
        // the record published before this call is ordered before our load of `sleepers`, so
        // either we see a sleeper's announcement or its re-check sees the record.
        fence(Ordering::SeqCst);
        // Relaxed: ordered after the publish by the fence above.
        if self.sleepers.load(Ordering::Relaxed) == 0 {
            return false;
        }
        self.wake_sleepers();
        true
    }

    #[cold]
    #[inline(never)]
    fn wake_sleepers(&self) {
        // SYNC POINT: Release pairs with the Acquire load of `rings` in `wait_any`: a sleeper
        // that reads this bump also sees the record published before `ring`.
        self.rings.fetch_add(1, Ordering::Release);
        sys::wake(&self.rings);
    }

    /// An anonymous bell on this doorbell: for a doorbell on the heap (threads of one process)
    /// or a waiter without a slot of its own. Any number may wait at once.
    pub fn bell(&self) -> Bell<'_> {
        Bell {
            door: self,
            mark: Mark::Anonymous,
        }
    }

    /// The bell of role slot `slot` (`< NAMED`): one waiter at a time, the slot's holder.
    pub(crate) fn named(&self, slot: usize) -> Bell<'_> {
        debug_assert!(slot < NAMED as usize);
        Bell {
            door: self,
            mark: Mark::Named(1 << slot),
        }
    }

    /// Forgets a sleeper of slot `slot` that died asleep: called by the slot's new holder when
    /// it claims the slot (the previous holder is dead or gone, so it sleeps no more).
    pub(crate) fn clear_named(&self, slot: usize) {
        // Relaxed: a stale bit only makes producers ring needlessly; nothing is published.
        self.sleepers.fetch_and(!(1u32 << slot), Ordering::Relaxed);
    }

    /// Who sleeps right now (a snapshot; monitoring and tests): named bits, then anonymous
    /// sleepers counted from bit [`NAMED`].
    pub fn sleepers(&self) -> u32 {
        // Relaxed: a snapshot; nothing is read through it.
        self.sleepers.load(Ordering::Relaxed)
    }
}

/// How a bell announces its sleeper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// A named bit (one waiter at a time).
    Named(u32),
    /// One more in the anonymous count.
    Anonymous,
}

/// A consumer's handle on a doorbell: what [`wait_any`] sleeps on. From
/// [`crate::Consumer::bell`], [`crate::broadcast::Reader::bell`] (a ring's consumer side,
/// woken by its producer's pushes) or [`Doorbell::bell`] (a doorbell on the heap).
#[derive(Debug, Clone, Copy)]
pub struct Bell<'a> {
    door: &'a Doorbell,
    mark: Mark,
}

impl Bell<'_> {
    /// Sleeps until this bell rings, `timeout` passes or `has_work` holds (checked once, after
    /// announcing the sleep); see [`wait_any`].
    pub fn wait(&self, timeout: Duration, has_work: impl FnMut() -> bool) -> Wait {
        wait_any(std::slice::from_ref(self), timeout, has_work)
    }

    fn announce(&self) {
        // Relaxed (both): ordered before the re-check by the SeqCst fence in `wait_any`.
        match self.mark {
            Mark::Named(bit) => self.door.sleepers.fetch_or(bit, Ordering::Relaxed),
            Mark::Anonymous => self.door.sleepers.fetch_add(ANONYMOUS, Ordering::Relaxed),
        };
    }

    fn withdraw(&self) {
        // Relaxed (both): nothing is published by leaving; a producer that still sees us only
        // rings needlessly.
        match self.mark {
            Mark::Named(bit) => self.door.sleepers.fetch_and(!bit, Ordering::Relaxed),
            Mark::Anonymous => self.door.sleepers.fetch_sub(ANONYMOUS, Ordering::Relaxed),
        };
    }
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// `has_work` held after announcing: no sleep at all.
    Ready,
    /// A bell rang (or had rung since it was read, or a signal interrupted the sleep): look.
    Rung,
    /// The timeout passed without a ring.
    TimedOut,
}

/// Sleeps until one of `bells` rings or `timeout` passes, unless `has_work` says there is
/// something to do already. `has_work` is called once, after the sleep is announced on every
/// bell, so work published before that is never slept through: it must look at what the
/// producers publish before they ring (e.g. [`crate::Consumer::ready`]). The caller looks for
/// work after any return, the ring may have been for a record it has already taken.
///
/// One bell waits with `FUTEX_WAIT`; several with `FUTEX_WAITV` (Linux 5.16 or later). Where
/// that system call is missing (`ENOSYS`, or refused), the wait is a sleep of `timeout`, as a
/// blind park was: keep the timeout short (about a millisecond) for that case and for
/// producers that never ring.
///
/// # Panics
/// With more than [`MAX_BELLS`] bells.
pub fn wait_any(bells: &[Bell<'_>], timeout: Duration, mut has_work: impl FnMut() -> bool) -> Wait {
    assert!(
        bells.len() <= MAX_BELLS,
        "wait_any takes at most {MAX_BELLS} bells, got {}",
        bells.len()
    );
    for b in bells {
        b.announce();
    }
    // SYNC POINT: SeqCst fence pairs with the one in `Doorbell::ring`: either the producer's
    // load of `sleepers` sees our announcement, or our re-check below sees its record.
    fence(Ordering::SeqCst);
    let mut seen = [0u32; MAX_BELLS];
    for (s, b) in seen.iter_mut().zip(bells) {
        // SYNC POINT: Acquire pairs with the Release bump in `Doorbell::wake_sleepers`: a value
        // that includes a bump comes with the record published before it.
        *s = b.door.rings.load(Ordering::Acquire);
    }
    let woke = if has_work() {
        Wait::Ready
    } else if bells.is_empty() {
        sys::sleep(timeout);
        Wait::TimedOut
    } else {
        sys::wait(bells, &seen[..bells.len()], timeout)
    };
    for b in bells {
        b.withdraw();
    }
    woke
}

/// Whether this kernel has `FUTEX_WAITV` (waits on several bells at once; Linux 5.16 or
/// later). Without it, [`wait_any`] of several bells sleeps its timeout, as a blind park did:
/// a caller can say so once at start. Probed once (a call with no waiter, which the kernel
/// refuses with `EINVAL` where it knows the call).
pub fn waitv_available() -> bool {
    sys::waitv_available()
}

/// The kernel's futex, without the private flag.
#[cfg(all(target_os = "linux", not(loom)))]
mod sys {
    use std::time::Duration;

    use super::{Bell, Wait, MAX_BELLS};
    use crate::sync::{AtomicU32, Ordering};

    /// Whether `FUTEX_WAITV` works here: [`UNKNOWN`], [`AVAILABLE`] or [`MISSING`] (then
    /// waits on several bells sleep instead).
    static WAITV: AtomicU32 = AtomicU32::new(UNKNOWN);
    const UNKNOWN: u32 = 0;
    const AVAILABLE: u32 = 1;
    const MISSING: u32 = 2;

    /// `FUTEX2_SIZE_U32` of `linux/futex.h`: a 32-bit futex word (and no `FUTEX2_PRIVATE`).
    const FUTEX2_SIZE_U32: u32 = 0x02;

    /// `struct futex_waitv` of `linux/futex.h`.
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct FutexWaitv {
        val: u64,
        uaddr: u64,
        flags: u32,
        reserved: u32,
    }

    fn timespec(d: Duration) -> libc::timespec {
        libc::timespec {
            // Clamped far beyond any timeout a caller means (about 34,000 years).
            tv_sec: d.as_secs().min(1 << 40) as libc::time_t,
            tv_nsec: d.subsec_nanos() as libc::c_long,
        }
    }

    fn errno() -> i32 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    /// What a failed wait's `errno` means.
    fn ended(errno: i32) -> Option<Wait> {
        match errno {
            libc::ETIMEDOUT => Some(Wait::TimedOut),
            // The word moved before we slept (a ring we have not seen), or a signal.
            libc::EAGAIN | libc::EINTR => Some(Wait::Rung),
            _ => None,
        }
    }

    pub(super) fn wait(bells: &[Bell<'_>], seen: &[u32], timeout: Duration) -> Wait {
        if let [one] = bells {
            return wait_one(&one.door.rings, seen[0], timeout);
        }
        if !waitv_available() {
            sleep(timeout);
            return Wait::TimedOut;
        }
        let mut w = [FutexWaitv {
            val: 0,
            uaddr: 0,
            flags: 0,
            reserved: 0,
        }; MAX_BELLS];
        for ((w, b), s) in w.iter_mut().zip(bells).zip(seen) {
            *w = FutexWaitv {
                val: u64::from(*s),
                uaddr: b.door.rings.as_ptr() as u64,
                flags: FUTEX2_SIZE_U32,
                reserved: 0,
            };
        }
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid, writable timespec; CLOCK_MONOTONIC exists on Linux.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        let d = timespec(timeout);
        let mut at = libc::timespec {
            tv_sec: now.tv_sec.saturating_add(d.tv_sec),
            tv_nsec: now.tv_nsec + d.tv_nsec,
        };
        if at.tv_nsec >= 1_000_000_000 {
            at.tv_sec = at.tv_sec.saturating_add(1);
            at.tv_nsec -= 1_000_000_000;
        }
        // SAFETY: `w` holds `bells.len()` (at most MAX_BELLS, below the kernel's 128) valid
        // `futex_waitv` entries whose addresses are 4-byte aligned u32 words borrowed for the
        // whole call (the bells borrow their doorbells); the kernel only reads them and `at`, a
        // valid absolute CLOCK_MONOTONIC time on our stack; flags 0 as the call requires.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex_waitv,
                w.as_ptr(),
                bells.len() as libc::c_uint,
                0 as libc::c_uint,
                &at as *const libc::timespec,
                libc::CLOCK_MONOTONIC,
            )
        };
        if r >= 0 {
            return Wait::Rung;
        }
        if let Some(w) = ended(errno()) {
            return w;
        }
        // Refused after all (a filter, or a kernel without it): sleep from now on.
        // Relaxed: a flag about the kernel; nothing is read through it.
        WAITV.store(MISSING, Ordering::Relaxed);
        sleep(timeout);
        Wait::TimedOut
    }

    fn wait_one(word: &AtomicU32, expected: u32, timeout: Duration) -> Wait {
        let ts = timespec(timeout);
        // SAFETY: `word` is a 4-byte aligned u32 borrowed for the whole call; FUTEX_WAIT only
        // reads it and `ts` (a valid relative timeout on our stack); the last two arguments are
        // ignored by FUTEX_WAIT.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT,
                expected,
                &ts as *const libc::timespec,
                std::ptr::null::<u32>(),
                0u32,
            )
        };
        if r == 0 {
            return Wait::Rung;
        }
        ended(errno()).unwrap_or_else(|| {
            sleep(timeout);
            Wait::TimedOut
        })
    }

    pub(super) fn wake(word: &AtomicU32) {
        // SAFETY: `word` is a 4-byte aligned u32 borrowed for the whole call; FUTEX_WAKE does
        // not dereference it beyond finding its key; the last three arguments are ignored.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE,
                i32::MAX,
                std::ptr::null::<libc::timespec>(),
                std::ptr::null::<u32>(),
                0u32,
            )
        };
    }

    pub(super) fn sleep(timeout: Duration) {
        std::thread::sleep(timeout);
    }

    pub(super) fn waitv_available() -> bool {
        // Relaxed: a flag about the kernel; nothing is read through it.
        match WAITV.load(Ordering::Relaxed) {
            AVAILABLE => true,
            MISSING => false,
            _ => {
                let there = !cfg!(miri) && probe();
                // Relaxed: as above (racing probes find the same answer).
                WAITV.store(if there { AVAILABLE } else { MISSING }, Ordering::Relaxed);
                there
            }
        }
    }

    fn probe() -> bool {
        // SAFETY: with no waiters the kernel reads nothing (both pointers are null) and fails:
        // EINVAL where it has the call, ENOSYS where it does not.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex_waitv,
                std::ptr::null::<FutexWaitv>(),
                0 as libc::c_uint,
                0 as libc::c_uint,
                std::ptr::null::<libc::timespec>(),
                libc::CLOCK_MONOTONIC,
            )
        };
        !(r < 0 && errno() == libc::ENOSYS)
    }
}

/// No futex here: waits are bounded sleeps, rings do nothing.
#[cfg(all(not(target_os = "linux"), not(loom)))]
mod sys {
    use std::time::Duration;

    use super::{Bell, Wait};
    use crate::sync::AtomicU32;

    pub(super) fn wait(_: &[Bell<'_>], _: &[u32], timeout: Duration) -> Wait {
        sleep(timeout);
        Wait::TimedOut
    }

    pub(super) fn wake(_: &AtomicU32) {}

    pub(super) fn sleep(timeout: Duration) {
        std::thread::sleep(timeout);
    }

    pub(super) fn waitv_available() -> bool {
        false
    }
}

/// The futex for the loom model: the kernel's hash-bucket lock is a loom `Mutex`, its wait
/// queue a `Condvar`. A wait never times out, so a lost wake-up is a deadlock loom reports.
#[cfg(loom)]
mod sys {
    use std::time::Duration;

    use loom::sync::{Condvar, Mutex};

    use super::{Bell, Wait};
    use crate::sync::{AtomicU32, Ordering};

    loom::lazy_static! {
        static ref KERNEL: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());
    }

    pub(super) fn wait(bells: &[Bell<'_>], seen: &[u32], _timeout: Duration) -> Wait {
        let (lock, queue) = &*KERNEL;
        let guard = lock.lock().unwrap();
        // Relaxed: ordered by the lock, as the kernel compares under its bucket lock.
        if bells
            .iter()
            .zip(seen)
            .any(|(b, s)| b.door.rings.load(Ordering::Relaxed) != *s)
        {
            return Wait::Rung;
        }
        drop(queue.wait(guard).unwrap());
        Wait::Rung
    }

    pub(super) fn wake(_: &AtomicU32) {
        let (lock, queue) = &*KERNEL;
        let _guard = lock.lock().unwrap();
        queue.notify_all();
    }

    pub(super) fn sleep(_: Duration) {
        loom::thread::yield_now();
    }

    pub(super) fn waitv_available() -> bool {
        true
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::AtomicBool;
    use std::sync::Arc;
    use std::time::Instant;

    /// Sleeps on `bell` until `work` is set, as a consumer does; returns how its last wait
    /// ended.
    fn consume(bell: Bell<'_>, work: &AtomicBool) -> Wait {
        loop {
            // Relaxed (both): the fences of `ring` and `wait_any` order the flag (it stands
            // for a record published before the ring).
            let w = bell.wait(Duration::from_secs(30), || work.load(Ordering::Relaxed));
            if work.load(Ordering::Relaxed) {
                return w;
            }
        }
    }

    #[test]
    fn nobody_asleep_costs_no_wake_and_a_sleeper_is_rung() {
        let door = Arc::new(Doorbell::default());
        assert!(!door.ring(), "nobody sleeps: no wake");
        let work = Arc::new(AtomicBool::new(false));
        let (d, w) = (door.clone(), work.clone());
        let t = std::thread::spawn(move || consume(d.bell(), &w));
        // Once the thread announced its sleep, publish and ring.
        while door.sleepers() == 0 {
            std::thread::yield_now();
        }
        assert_eq!(door.sleepers(), ANONYMOUS);
        work.store(true, Ordering::Relaxed);
        assert!(door.ring(), "a sleeper was announced: the ring wakes it");
        // Woken (Rung), or it saw the work at its re-check (Ready): never the 30 s timeout.
        assert_ne!(t.join().unwrap(), Wait::TimedOut);
        assert_eq!(door.sleepers(), 0, "the sleeper withdrew");
    }

    #[test]
    fn work_seen_at_the_recheck_means_no_sleep() {
        let door = Doorbell::default();
        let start = Instant::now();
        assert_eq!(
            door.bell().wait(Duration::from_secs(30), || true),
            Wait::Ready
        );
        assert!(start.elapsed() < Duration::from_secs(10));
        assert_eq!(door.sleepers(), 0);
    }

    #[test]
    fn an_unrung_wait_times_out() {
        let door = Doorbell::default();
        assert_eq!(
            door.bell().wait(Duration::from_millis(2), || false),
            Wait::TimedOut
        );
        let other = Doorbell::default();
        let w = wait_any(
            &[door.bell(), other.named(0)],
            Duration::from_millis(2),
            || false,
        );
        assert_eq!(w, Wait::TimedOut);
        assert_eq!((door.sleepers(), other.sleepers()), (0, 0));
    }

    #[test]
    fn a_named_bit_is_set_while_asleep_and_cleared_by_the_next_holder() {
        let door = Arc::new(Doorbell::default());
        let work = Arc::new(AtomicBool::new(false));
        let (d, w) = (door.clone(), work.clone());
        let t = std::thread::spawn(move || consume(d.named(3), &w));
        while door.sleepers() != 1 << 3 {
            std::thread::yield_now();
        }
        work.store(true, Ordering::Relaxed);
        assert!(door.ring());
        assert_ne!(t.join().unwrap(), Wait::TimedOut);
        assert_eq!(door.sleepers(), 0);
        // A holder that died asleep left its bit: the next holder of the slot clears it.
        door.sleepers.fetch_or(1 << 5, Ordering::Relaxed);
        door.clear_named(5);
        assert_eq!(door.sleepers(), 0);
    }

    /// One waiter on three bells is woken by whichever rings (FUTEX_WAITV, or its fallback's
    /// bounded sleep on a kernel without it).
    #[test]
    fn wait_any_wakes_on_each_of_several_bells() {
        let doors: Arc<[Doorbell; 3]> = Arc::new(Default::default());
        let flags: Arc<[AtomicBool; 3]> = Arc::new(Default::default());
        for which in 0..3 {
            let (d, f) = (doors.clone(), flags.clone());
            let t = std::thread::spawn(move || loop {
                let bells = [d[0].bell(), d[1].bell(), d[2].bell()];
                // Relaxed: ordered by the fences of `ring` and `wait_any`.
                let w = wait_any(&bells, Duration::from_secs(30), || {
                    f[which].load(Ordering::Relaxed)
                });
                if f[which].swap(false, Ordering::Relaxed) {
                    return w;
                }
            });
            while doors[which].sleepers() == 0 {
                std::thread::yield_now();
            }
            flags[which].store(true, Ordering::Relaxed);
            doors[which].ring();
            let w = t.join().unwrap();
            assert!(w == Wait::Rung || w == Wait::Ready, "{w:?}");
        }
    }

    #[test]
    #[should_panic(expected = "at most 16 bells")]
    fn too_many_bells_is_a_clear_panic() {
        let door = Doorbell::default();
        let bells = vec![door.bell(); MAX_BELLS + 1];
        wait_any(&bells, Duration::from_millis(1), || true);
    }
}
