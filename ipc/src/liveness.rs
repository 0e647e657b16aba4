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

/// The shared state of one role of a ring. Lives in shared memory: `repr(C)`, all atomics.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct SideState {
    /// Pid of the last claimant, 0 = never claimed.
    pub(crate) pid: AtomicU64,
    /// `NEVER`, `ATTACHED` or `DETACHED`.
    pub(crate) state: AtomicU64,
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
        // Acquire: pairs with the Release in `release()`/here, so a successor sees the
        // predecessor's final state before judging it.
        let holder = self.pid.load(Ordering::Acquire);
        let state = self.state.load(Ordering::Acquire);
        if state == ATTACHED && holder != NEVER && (holder == me || pid_alive(holder)) {
            return Err(Error::Claimed {
                os_id: os_id.to_owned(),
                role,
                pid: holder,
            });
        }
        // AcqRel CAS: two processes racing for a free role cannot both win. Release pairs with
        // the Acquire load above in the next claimant.
        self.pid
            .compare_exchange(holder, me, Ordering::AcqRel, Ordering::Acquire)
            .map_err(|pid| Error::Claimed {
                os_id: os_id.to_owned(),
                role,
                pid,
            })?;
        // Relaxed: the pid CAS above is the claim; these are monitoring data.
        self.heartbeat_ms.store(clock_ms(), Ordering::Relaxed);
        self.attaches.fetch_add(1, Ordering::Relaxed);
        // Release: pairs with the Acquire load of `state` in the next `claim`.
        self.state.store(ATTACHED, Ordering::Release);
        Ok(me)
    }

    /// Lets go of the role if `pid` still holds it.
    pub(crate) fn release(&self, pid: u64) {
        // Relaxed: only compared against our own earlier store.
        if self.pid.load(Ordering::Relaxed) == pid {
            // Release: pairs with the Acquire load of `state` in `claim`; our last cursor store
            // is ordered before it.
            self.state.store(DETACHED, Ordering::Release);
        }
    }

    /// One relaxed store: nobody synchronises on a heartbeat, it is only read for its age.
    #[inline]
    pub(crate) fn heartbeat(&self) {
        self.heartbeat_ms.store(clock_ms(), Ordering::Relaxed);
    }

    /// Judges the holder of this role.
    pub(crate) fn status(&self, max_age_ms: u64) -> PeerStatus {
        // Relaxed throughout: a status is a monitoring snapshot, nothing is read through it.
        let pid = self.pid.load(Ordering::Relaxed);
        if pid == NEVER {
            return PeerStatus::NeverAttached;
        }
        if self.state.load(Ordering::Relaxed) == DETACHED {
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
