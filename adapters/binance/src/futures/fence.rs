//! The failover fence: with failover on, an order request leaves only while this host may
//! send ([`Lease::may_send`] of the lease the host's lease holder publishes in
//! `quantum.<instance>.lease`).
//!
//! The order of the steps is the fence: the request's `timestamp` is taken and signed first,
//! then the lease is checked on the boot clock, and only then do the bytes go out
//! ([`stamped`], which the REST and the WebSocket API client both use for every order
//! request). A check that passes therefore passed after the timestamp was taken: Binance
//! refuses the request once `recvWindow` has passed after that timestamp (-1021), so a request
//! delayed by a stopped process, a stalled VM or a slow network lands at most `recvWindow`
//! after a moment this host still led, which the new leader's takeover fence (TTL +
//! recvWindow + clock error) waits out.
//!
//! A host that leads but whose takeover fence has not passed waits for it (at most the fence's
//! length), then takes a new timestamp and checks again. A host that does not lead (standby, a
//! deadline passed, no lease segment, its writer dead) sends nothing: [`Error::NotLeader`].
//! Requests that read (lookups by client id, positionRisk, exchangeInfo, the order history)
//! are not fenced.
//!
//! Logs: one line per change of state, never one per order:
//! - warn `this host does not lead: orders are refused (not_leader) until it does`
//! - info `this host leads but its takeover fence has not passed: orders wait for it`
//! - info `this host leads: orders are sent`

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use quantum_ipc::lease::{boot_ns, Lease, LeaseReader};

use crate::common::time::ServerClock;
use crate::error::{Error, Result};

/// A request's signed `timestamp` (server ms) and the boot-clock instant it was taken at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The `timestamp` parameter signed into the request.
    pub server_ms: i64,
    /// [`boot_ns`] read right after it.
    pub boot_ns: u64,
}

impl Stamp {
    /// Takes the timestamp now (then the boot clock).
    pub fn take(clock: &ServerClock) -> Stamp {
        let server_ms = clock.now_ms();
        Stamp {
            server_ms,
            boot_ns: boot_ns(),
        }
    }
}

/// What the fence says about one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// This host may send now.
    Send,
    /// This host leads but its takeover fence passes in this long.
    Wait(Duration),
    /// This host does not lead (`None`: no readable lease).
    Refuse(Option<Lease>),
}

impl Verdict {
    /// The rule for a lease read at `now_ns`.
    pub fn of(lease: Option<&Lease>, now_ns: u64) -> Verdict {
        let Some(l) = lease else {
            return Verdict::Refuse(None);
        };
        if l.may_send(now_ns) {
            return Verdict::Send;
        }
        match l.fence_left(now_ns) {
            // `leads` and not `may_send`: the fence has not passed, so the wait is > 0.
            Some(left) => Verdict::Wait(left.max(Duration::from_millis(1))),
            None => Verdict::Refuse(Some(l.clone())),
        }
    }
}

/// The last verdict logged (a new line only when it changes).
const LOGGED_NONE: u8 = 0;
const LOGGED_SEND: u8 = 1;
const LOGGED_WAIT: u8 = 2;
const LOGGED_REFUSE: u8 = 3;

/// The lease of one instance as seen by this host's order path.
pub struct Fence {
    instance: String,
    reader: Mutex<LeaseReader>,
    logged: AtomicU8,
}

impl std::fmt::Debug for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fence")
            .field("instance", &self.instance)
            .finish()
    }
}

impl Fence {
    /// The fence of `instance` (its lease segment is mapped at the first check, and again
    /// whenever its writer is replaced).
    pub fn new(instance: &str) -> Fence {
        Fence {
            instance: instance.to_owned(),
            reader: Mutex::new(LeaseReader::new(instance)),
            logged: AtomicU8::new(LOGGED_NONE),
        }
    }

    /// The verdict for a request whose timestamp is `stamp`: the lease is read and the rule
    /// applied at a boot-clock instant taken now, after the stamp.
    pub fn verdict(&self, stamp: &Stamp) -> Verdict {
        let lease = self.reader.lock().read();
        let now = boot_ns();
        debug_assert!(now >= stamp.boot_ns, "the check follows the timestamp");
        let v = Verdict::of(lease.as_ref(), now);
        self.log(&v);
        v
    }

    /// The verdict now, for a caller deciding whether to start an order at all.
    pub fn check_now(&self) -> Verdict {
        self.verdict(&Stamp {
            server_ms: 0,
            boot_ns: boot_ns(),
        })
    }

    fn log(&self, v: &Verdict) {
        let state = match v {
            Verdict::Send => LOGGED_SEND,
            Verdict::Wait(_) => LOGGED_WAIT,
            Verdict::Refuse(_) => LOGGED_REFUSE,
        };
        // Relaxed: only decides whether a log line is written; no data is published with it.
        if self.logged.swap(state, Ordering::Relaxed) == state {
            return;
        }
        match v {
            Verdict::Send => tracing::info!("this host leads: orders are sent"),
            Verdict::Wait(left) => tracing::info!(
                fence_ms = left.as_millis() as u64,
                "this host leads but its takeover fence has not passed: orders wait for it"
            ),
            Verdict::Refuse(l) => {
                let (role, epoch, other) = l.as_ref().map_or(("none", 0, ""), |l| {
                    (l.role.as_str(), l.epoch, l.other.as_str())
                });
                tracing::warn!(
                    role, epoch, leader = %other,
                    "this host does not lead: orders are refused (not_leader) until it does"
                )
            }
        }
    }
}

/// Takes a timestamp, has `sign` build the request with it, then (with a fence) checks the
/// lease: the request is returned to be sent at once when this host may send; while the
/// takeover fence has not passed it waits for it and starts again with a new timestamp;
/// [`Error::NotLeader`] when this host does not lead. Without a fence, signs once.
pub async fn stamped<R>(
    fence: Option<&Fence>,
    clock: &ServerClock,
    mut sign: impl FnMut(i64) -> R,
) -> Result<R> {
    loop {
        let stamp = Stamp::take(clock);
        let request = sign(stamp.server_ms);
        let Some(f) = fence else {
            return Ok(request);
        };
        match f.verdict(&stamp) {
            Verdict::Send => return Ok(request),
            Verdict::Wait(left) => tokio::time::sleep(left).await,
            Verdict::Refuse(l) => {
                return Err(Error::NotLeader {
                    epoch: l.map_or(0, |l| l.epoch),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantum_ipc::lease::{LeaseRole, LeaseWriter};

    fn lease(role: LeaseRole, deadline_ns: u64, trade_after_ns: u64) -> Lease {
        let now = boot_ns();
        Lease {
            role,
            epoch: 3,
            deadline_ns,
            trade_after_ns,
            acquired_ns: now,
            renewed_ns: now,
            ttl_ms: 3000,
            recv_window_ms: 1000,
            host: "a".into(),
            other: String::new(),
            takeover_ms: 0,
            updated_ns: now,
        }
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn the_rule() {
        let now = 10_000 * MS;
        let leader = lease(LeaseRole::Leader, now + 100 * MS, now);
        assert_eq!(Verdict::of(Some(&leader), now), Verdict::Send);
        assert!(matches!(
            Verdict::of(Some(&leader), now + 100 * MS),
            Verdict::Refuse(Some(_))
        ));
        let fenced = lease(LeaseRole::Leader, now + 100 * MS, now + 40 * MS);
        assert_eq!(
            Verdict::of(Some(&fenced), now),
            Verdict::Wait(Duration::from_millis(40))
        );
        let standby = lease(LeaseRole::Standby, now + 100 * MS, now);
        assert!(matches!(
            Verdict::of(Some(&standby), now),
            Verdict::Refuse(Some(_))
        ));
        assert_eq!(Verdict::of(None, now), Verdict::Refuse(None));
    }

    /// The lease is checked after the timestamp is taken: a timestamp taken while the host
    /// still led, checked once its deadline passed, is refused.
    #[test]
    fn a_deadline_between_the_timestamp_and_the_check_refuses() {
        let instance = format!("fencets{}", std::process::id());
        let w = LeaseWriter::create(&instance).unwrap();
        let fence = Fence::new(&instance);
        let clock = ServerClock::default();
        let stamp = Stamp::take(&clock);
        let deadline = stamp.boot_ns + 30 * MS;
        w.publish(&lease(LeaseRole::Leader, deadline, 0));
        // A timestamp taken before the deadline, checked before it: sent.
        assert_eq!(fence.verdict(&stamp), Verdict::Send);
        while boot_ns() <= deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        // The same timestamp, checked after the deadline: refused.
        assert!(stamp.boot_ns < deadline);
        assert!(matches!(fence.verdict(&stamp), Verdict::Refuse(Some(_))));
    }

    #[tokio::test]
    async fn stamped_signs_again_after_waiting_for_the_fence() {
        let instance = format!("fencewait{}", std::process::id());
        let w = LeaseWriter::create(&instance).unwrap();
        let fence = Fence::new(&instance);
        let clock = ServerClock::default();
        let start = boot_ns();
        let trade_after = start + 150 * MS;
        w.publish(&lease(LeaseRole::Leader, start + 10_000 * MS, trade_after));
        let mut stamps = Vec::new();
        let last = stamped(Some(&fence), &clock, |ts| {
            stamps.push((ts, boot_ns()));
            ts
        })
        .await
        .unwrap();
        assert!(stamps.len() >= 2, "{stamps:?}");
        let (ts, at) = *stamps.last().unwrap();
        assert_eq!(last, ts, "the request sent carries the last timestamp");
        assert!(at >= trade_after, "signed again once the fence passed");
        assert!(stamps[0].1 < trade_after);

        w.publish(&lease(LeaseRole::Standby, 0, 0));
        let mut signed = 0;
        let e = stamped(Some(&fence), &clock, |_| signed += 1)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::NotLeader { epoch: 3 }), "{e}");
        assert_eq!(signed, 1);
        // Without a fence: signed once, never refused.
        assert!(stamped(None, &clock, |ts| ts).await.is_ok());
        // No lease segment: not leading.
        let none = Fence::new(&format!("fencenone{}", std::process::id()));
        assert_eq!(none.check_now(), Verdict::Refuse(None));
    }
}
