//! Who is on the other side: pids, heartbeats and the coarse clock they are measured with.
//!
//! Each role of a ring records its pid when it claims the role and stores a heartbeat (a coarse
//! monotonic millisecond clock, comparable across processes on one host) whenever its owner calls
//! `heartbeat()`. A peer is judged from the outside: `kill(pid, 0)` says whether the pid exists,
//! the heartbeat's age whether it still makes progress.

use crate::error::{Error, Role};
use crate::sync::{AtomicU64, Ordering};

/// Never claimed.
const NEVER: u64 = 0;
/// Claimed by `pid`.
const ATTACHED: u64 = 1;
/// `pid` let go of the role cleanly.
const DETACHED: u64 = 2;

/// How a ring's peer is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerStatus {
    /// Nobody ever claimed the role.
    NeverAttached,
    /// The process exists and its heartbeat is recent.
    Alive {
        /// Its pid.
        pid: u64,
        /// Age of its heartbeat (ms).
        age_ms: u64,
    },
    /// The process exists but its heartbeat is older than allowed.
    Stale {
        /// Its pid.
        pid: u64,
        /// Age of its heartbeat (ms).
        age_ms: u64,
    },
    /// The process is gone without letting go of the role (crashed or killed).
    Dead {
        /// Its last pid.
        pid: u64,
    },
    /// The process let go of the role cleanly.
    Detached {
        /// Its last pid.
        pid: u64,
    },
}

impl PeerStatus {
    /// Alive with a recent heartbeat.
    pub fn is_alive(&self) -> bool {
        matches!(self, PeerStatus::Alive { .. })
    }
}

/// Milliseconds of the coarse monotonic clock (shared by every process on the host).
/// `CLOCK_MONOTONIC_COARSE` costs a few ns through the vDSO, cheap enough for hot-path
/// heartbeats; its resolution (1 to 4 ms) is far finer than any staleness limit.
pub fn clock_ms() -> u64 {
    #[cfg(all(target_os = "linux", not(miri)))]
    let id = libc::CLOCK_MONOTONIC_COARSE;
    #[cfg(not(all(target_os = "linux", not(miri))))]
    let id = libc::CLOCK_MONOTONIC;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and `id` a clock every supported OS has.
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    debug_assert_eq!(rc, 0, "clock_gettime failed");
    (ts.tv_sec as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
}

/// Wall-clock milliseconds since the Unix epoch (for display: start times).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Whether a process with this pid exists (`kill(pid, 0)`; `EPERM` means it exists but belongs
/// to someone else).
pub fn pid_alive(pid: u64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 performs only the existence and permission checks; nothing is delivered.
    let rc = unsafe { libc::kill(pid, 0) };
    let exists = rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    exists && !is_zombie(pid)
}

/// Whether `pid` has exited and only waits for its parent to reap it (state `Z` in
/// `/proc/<pid>/stat`): it holds nothing any more, so it is not a live owner. Where `/proc`
/// cannot tell, the process counts as live.
fn is_zombie(pid: libc::pid_t) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) state ...`: comm may hold spaces and parentheses, so the state is the first
    // field after the last ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state == "Z")
}

/// The owner word of a role: `state << 32 | pid`. One word, so that judging the holder and
/// taking the role over is one compare-and-swap of what was judged (a pid and a state loaded
/// separately let two claimants both pass the judgement and both win). Linux pids are below
/// 2^22 (`pid_max`), so 32 bits hold any of them.
fn pack(pid: u64, state: u64) -> u64 {
    (state << 32) | (pid & 0xffff_ffff)
}

/// `(pid, state)` of an owner word.
fn unpack(word: u64) -> (u64, u64) {
    (word & 0xffff_ffff, word >> 32)
}

/// The shared state of one role of a ring. Lives in shared memory: `repr(C)`, all atomics.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct SideState {
    /// `state << 32 | pid` (see [`pack`]): pid of the last claimant (0 = never claimed) and
    /// `NEVER`, `ATTACHED` or `DETACHED`.
    pub(crate) owner: AtomicU64,
    /// Unused (zero); keeps the fields after it where they are.
    pub(crate) reserved: AtomicU64,
    /// `clock_ms()` at the last heartbeat.
    pub(crate) heartbeat_ms: AtomicU64,
    /// How many times the role was claimed.
    pub(crate) attaches: AtomicU64,
    /// Producer: pushes that found the ring full. Consumer: records it reported invalid.
    pub(crate) events: AtomicU64,
    /// Backoff steps taken while waiting (producer on full, consumer on empty).
    pub(crate) backoffs: AtomicU64,
    /// Cursor faults this side found (see `ring::CursorFault`).
    pub(crate) faults: AtomicU64,
}

impl SideState {
    /// Claims the role for this process. Refuses while a live process (this one included)
    /// holds it; takes over from a dead or detached holder.
    pub(crate) fn claim(&self, os_id: &str, role: Role) -> Result<u64, Error> {
        let me = u64::from(std::process::id());
        self.claim_as(me, pid_alive).map_err(|pid| Error::Claimed {
            os_id: os_id.to_owned(),
            role,
            pid,
        })?;
        Ok(me)
    }

    /// Claims the role for `me`, judging a holder's life with `alive`; `Err` names the live
    /// holder. The judgement and the take-over are one CAS on the owner word: a claimant whose
    /// CAS fails judges the new holder again, so of any number racing for a free (or dead,
    /// or detached) role exactly one wins.
    pub(crate) fn claim_as(&self, me: u64, alive: impl Fn(u64) -> bool) -> Result<(), u64> {
        // Acquire: pairs with the Release of a predecessor's claim CAS or `release`, so we see
        // its final cursor stores before taking over.
        let mut word = self.owner.load(Ordering::Acquire);
        loop {
            let (holder, state) = unpack(word);
            if state == ATTACHED && holder != NEVER && (holder == me || alive(holder)) {
                return Err(holder);
            }
            // AcqRel on success: Acquire as the load above; Release pairs with the Acquire
            // load (or failed CAS) of the next claimant. Acquire on failure: the word we judge
            // next must come with its owner's stores.
            match self.owner.compare_exchange(
                word,
                pack(me, ATTACHED),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => word = now,
            }
        }
        // Relaxed: the owner CAS above is the claim; these are monitoring data.
        self.heartbeat_ms.store(clock_ms(), Ordering::Relaxed);
        self.attaches.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Lets go of the role if `pid` still holds it.
    pub(crate) fn release(&self, pid: u64) {
        // Release on success: pairs with the Acquire load in the next `claim_as`; our last
        // cursor store is ordered before it. Relaxed on failure: someone else holds the role
        // (it was taken over from us), and we leave it alone.
        let _ = self.owner.compare_exchange(
            pack(pid, ATTACHED),
            pack(pid, DETACHED),
            Ordering::Release,
            Ordering::Relaxed,
        );
    }

    /// One relaxed store: nobody synchronises on a heartbeat, it is only read for its age.
    #[inline]
    pub(crate) fn heartbeat(&self) {
        self.heartbeat_ms.store(clock_ms(), Ordering::Relaxed);
    }

    /// Judges the holder of this role.
    pub(crate) fn status(&self, max_age_ms: u64) -> PeerStatus {
        // Relaxed throughout: a status is a monitoring snapshot, nothing is read through it.
        let (pid, state) = unpack(self.owner.load(Ordering::Relaxed));
        if pid == NEVER {
            return PeerStatus::NeverAttached;
        }
        if state == DETACHED {
            return PeerStatus::Detached { pid };
        }
        if !pid_alive(pid) {
            return PeerStatus::Dead { pid };
        }
        let age_ms = clock_ms().saturating_sub(self.heartbeat_ms.load(Ordering::Relaxed));
        if age_ms > max_age_ms {
            PeerStatus::Stale { pid, age_ms }
        } else {
            PeerStatus::Alive { pid, age_ms }
        }
    }
}

/// One role's owner word on loom's atomics, for the model in `tests/loom.rs`: the claim and
/// release the rings and the broadcast run, with claimants' pids and lives given by the model.
#[cfg(loom)]
pub mod model {
    /// One role.
    #[derive(Debug, Default)]
    pub struct RoleModel(super::SideState);

    impl RoleModel {
        /// A role held by `pid` (which the model may declare dead).
        pub fn held_by(pid: u64) -> RoleModel {
            let r = RoleModel::default();
            r.claim(pid, |_| false).expect("a free role");
            r
        }

        /// Claims for `me`; `Err` names the live holder.
        pub fn claim(&self, me: u64, alive: impl Fn(u64) -> bool) -> Result<(), u64> {
            self.0.claim_as(me, alive)
        }

        /// Lets go if `pid` holds it.
        pub fn release(&self, pid: u64) {
            self.0.release(pid)
        }

        /// `(pid, holds it now)`.
        pub fn holder(&self) -> (u64, bool) {
            // Relaxed: the model reads it after joining every claimant.
            let word = self.0.owner.load(crate::sync::Ordering::Relaxed);
            let (pid, state) = super::unpack(word);
            (pid, state == super::ATTACHED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child that exited and is not reaped yet exists for `kill(pid, 0)`, but is no live
    /// owner; once reaped it does not exist at all.
    #[test]
    #[cfg_attr(miri, ignore)] // spawns a process
    fn a_zombie_is_not_alive() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = u64::from(child.id());
        let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !is_zombie(pid as libc::pid_t) {
            assert!(
                std::time::Instant::now() < end,
                "the child never became a zombie"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!pid_alive(pid));
        child.wait().unwrap();
        assert!(!pid_alive(pid));
        assert!(pid_alive(u64::from(std::process::id())));
    }
}
