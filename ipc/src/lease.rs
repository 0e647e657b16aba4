//! The failover lease as this host's processes see it: who leads, under which epoch, and until
//! when this host may act.
//!
//! With failover on, one process of the host (the Redis bridge) holds the instance's lease in
//! Redis and publishes what it knows in the counters segment `quantum.<instance>.lease`; the
//! daemon and the Binance bridge only read it, so neither depends on Redis. Every instant is
//! on [`boot_ns`], a clock every process of the host shares that never steps and keeps
//! counting while the host or a process is suspended, so a deadline written by one process
//! means the same moment to another.
//!
//! The rule the readers keep: a host acts (claims plan entries, sends orders) only while
//! [`Lease::may_send`]: it leads, its deadline (start of its last successful renewal + TTL −
//! drift margin) has not passed, and its takeover fence (TTL + recvWindow + clock error after
//! it acquired the lease) has. A missing segment, a torn reading or a writer that died reads as
//! "not leading": whatever goes wrong, the host stops acting.

use std::time::Duration;

use crate::counters::{CounterId, CountersReader, CountersWriter};
use crate::error::Error;
use crate::names::os_id;
use crate::shm::{identity, path_of};

/// The daemon's failover settings, published as gauges in its counters segment: the one
/// source both bridges read them from at attach (labels).
pub mod settings {
    /// 1 when failover is on (`[failover] enabled`).
    pub const ENABLED: &str = "failover.enabled";
    /// The lease's time to live (ms).
    pub const TTL_MS: &str = "failover.ttl_ms";
    /// How often the leader renews (ms).
    pub const RENEW_MS: &str = "failover.renew_ms";
    /// Subtracted from the leader's deadline for clock-rate drift (ms).
    pub const DRIFT_MS: &str = "failover.drift_ms";
    /// The recvWindow every order is signed with (ms).
    pub const RECV_WINDOW_MS: &str = "failover.recv_window_ms";
    /// The bound assumed on the difference between the hosts' and Binance's clocks (ms).
    pub const CLOCK_ERROR_MS: &str = "failover.clock_error_ms";
}

/// The signal that asks the lease holder for a planned hand-over (`quantum ctl lease release`):
/// it stops claiming plans, waits for their results, steps down and gives the lease up.
pub const RELEASE_SIGNAL: i32 = libc::SIGUSR1;

/// Name of the lease segment: `quantum.<instance>.lease`.
pub const LEASE_SEGMENT: &str = "lease";

/// Nanoseconds of the host's boot clock (`CLOCK_BOOTTIME` on Linux, `CLOCK_MONOTONIC`
/// elsewhere): shared by every process of the host, never stepped, counting through suspend.
pub fn boot_ns() -> u64 {
    #[cfg(target_os = "linux")]
    let id = libc::CLOCK_BOOTTIME;
    #[cfg(not(target_os = "linux"))]
    let id = libc::CLOCK_MONOTONIC;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and `id` a clock the OS has.
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    debug_assert_eq!(rc, 0, "clock_gettime failed");
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// This host's role in the instance's pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeaseRole {
    /// Warm, acting on nothing: another host leads, or nobody does yet.
    Standby,
    /// Holds the lease.
    Leader,
}

impl LeaseRole {
    /// `standby` or `leader`.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseRole::Standby => "standby",
            LeaseRole::Leader => "leader",
        }
    }

    /// Its number in the segment (and in gauges: 0 standby, 1 leader).
    pub fn code(self) -> u64 {
        match self {
            LeaseRole::Standby => 0,
            LeaseRole::Leader => 1,
        }
    }

    /// The role of a number; anything unknown is standby.
    pub fn from_code(c: u64) -> LeaseRole {
        if c == 1 {
            LeaseRole::Leader
        } else {
            LeaseRole::Standby
        }
    }
}

/// Bytes of a host name kept in the segment.
pub const MAX_HOST: usize = 32;

/// What the lease holder process publishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// This host's role.
    pub role: LeaseRole,
    /// The epoch (fencing number) of the lease this host holds, or the last one it saw held.
    pub epoch: u64,
    /// [`boot_ns`] from which this host sends nothing: start of its last successful renewal
    /// request + TTL − drift margin. 0 when it does not lead.
    pub deadline_ns: u64,
    /// [`boot_ns`] before which this host sends nothing although it leads: when it acquired
    /// the lease + TTL + recvWindow + clock error (the old leader's last order has landed or
    /// been refused by then).
    pub trade_after_ns: u64,
    /// [`boot_ns`] when this host acquired the lease it holds (0 when none).
    pub acquired_ns: u64,
    /// [`boot_ns`] of the start of the last successful renewal (or acquisition).
    pub renewed_ns: u64,
    /// The lease's time to live.
    pub ttl_ms: u64,
    /// The recvWindow every order of this instance is signed with.
    pub recv_window_ms: u64,
    /// This host's name.
    pub host: String,
    /// The host that holds the lease when this one does not; empty when nobody does.
    pub other: String,
    /// The last takeover this host measured: from the old lease's expiry to its first
    /// decision (ms); 0 when none.
    pub takeover_ms: u64,
    /// [`boot_ns`] of this publication.
    pub updated_ns: u64,
}

impl Lease {
    /// Leads and its deadline has not passed.
    pub fn leads(&self, now_ns: u64) -> bool {
        self.role == LeaseRole::Leader && now_ns < self.deadline_ns
    }

    /// May claim plan entries and send orders now: leads, and the takeover fence has passed.
    pub fn may_send(&self, now_ns: u64) -> bool {
        self.leads(now_ns) && now_ns >= self.trade_after_ns
    }

    /// How long until [`Lease::may_send`] may become true by time alone (the fence), `None`
    /// when only a new lease would make it true.
    pub fn fence_left(&self, now_ns: u64) -> Option<Duration> {
        if !self.leads(now_ns) {
            return None;
        }
        Some(Duration::from_nanos(
            self.trade_after_ns.saturating_sub(now_ns),
        ))
    }
}

/// Counter labels of the segment, in registration order; `lease.seq` guards the group.
const SEQ: &str = "lease.seq";
const LABELS: [&str; 11] = [
    "lease.role",
    "lease.epoch",
    "lease.deadline_ns",
    "lease.trade_after_ns",
    "lease.acquired_ns",
    "lease.renewed_ns",
    "lease.ttl_ms",
    "lease.recv_window_ms",
    "lease.takeover_ms",
    "lease.updated_ns",
    "lease.pid",
];
const HOST_WORDS: usize = MAX_HOST / 8;

fn host_label(which: &str, i: usize) -> String {
    format!("lease.{which}{i}")
}

fn pack_host(name: &str) -> [u64; HOST_WORDS] {
    let mut bytes = [0u8; MAX_HOST];
    let mut n = 0;
    // Cut on a character boundary so the name reads back as UTF-8.
    for c in name.chars() {
        let l = c.len_utf8();
        if n + l > MAX_HOST {
            break;
        }
        c.encode_utf8(&mut bytes[n..n + l]);
        n += l;
    }
    let mut words = [0u64; HOST_WORDS];
    for (i, w) in words.iter_mut().enumerate() {
        *w = u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    }
    words
}

fn unpack_host(words: &[u64]) -> String {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    String::from_utf8_lossy(&bytes)
        .trim_end_matches('\0')
        .to_owned()
}

/// The one writer of the lease segment (the process that holds the lease in Redis).
pub struct LeaseWriter {
    w: CountersWriter,
    seq: CounterId,
    ids: Vec<CounterId>,
    host: Vec<CounterId>,
    other: Vec<CounterId>,
}

impl LeaseWriter {
    /// Creates `quantum.<instance>.lease`, standby and epoch 0 until the first
    /// [`LeaseWriter::publish`]. A segment left by a writer that died is replaced; one whose
    /// writer lives is refused ([`Error::AlreadyExists`]): one lease holder per instance and host.
    pub fn create(instance: &str) -> Result<LeaseWriter, Error> {
        let w = CountersWriter::take_named(instance, LEASE_SEGMENT, 64)?;
        let seq = w.register(SEQ)?;
        let ids = LABELS
            .iter()
            .map(|l| w.register(l))
            .collect::<Result<Vec<_>, _>>()?;
        let mut host = Vec::new();
        let mut other = Vec::new();
        for i in 0..HOST_WORDS {
            host.push(w.register(&host_label("host", i))?);
        }
        for i in 0..HOST_WORDS {
            other.push(w.register(&host_label("other", i))?);
        }
        Ok(LeaseWriter {
            w,
            seq,
            ids,
            host,
            other,
        })
    }

    /// Publishes `lease` as one group: a reader sees all of it or none.
    pub fn publish(&self, lease: &Lease) {
        let values = [
            lease.role.code(),
            lease.epoch,
            lease.deadline_ns,
            lease.trade_after_ns,
            lease.acquired_ns,
            lease.renewed_ns,
            lease.ttl_ms,
            lease.recv_window_ms,
            lease.takeover_ms,
            lease.updated_ns,
            u64::from(std::process::id()),
        ];
        let host = pack_host(&lease.host);
        let other = pack_host(&lease.other);
        self.w.write_group(self.seq, || {
            for (id, v) in self.ids.iter().zip(values) {
                self.w.set(*id, v);
            }
            for (id, v) in self.host.iter().zip(host) {
                self.w.set(*id, v);
            }
            for (id, v) in self.other.iter().zip(other) {
                self.w.set(*id, v);
            }
        });
    }

    /// Segment id.
    pub fn os_id(&self) -> &str {
        self.w.os_id()
    }
}

/// How often a reader checks that the segment's name still points at the file it mapped.
const RECHECK_NS: u64 = 50_000_000;

/// A reader of the lease segment that maps it when it appears and again when its writer was
/// replaced.
pub struct LeaseReader {
    instance: String,
    reader: Option<CountersReader>,
    checked_ns: u64,
}

impl LeaseReader {
    /// A reader of `instance`'s lease (mapped at the first read).
    pub fn new(instance: &str) -> LeaseReader {
        LeaseReader {
            instance: instance.to_owned(),
            reader: None,
            checked_ns: 0,
        }
    }

    /// What the lease holder last published; `None` when there is no lease segment, its
    /// writer died, or no whole reading could be taken (every case reads as "not leading").
    pub fn read(&mut self) -> Option<Lease> {
        let now = boot_ns();
        if self.reader.is_none() || now.saturating_sub(self.checked_ns) >= RECHECK_NS {
            self.checked_ns = now;
            let current = os_id(&self.instance, LEASE_SEGMENT)
                .ok()
                .and_then(|id| identity(&path_of(&id)));
            let stale = match &self.reader {
                Some(r) => current.is_none() || r.identity() != current,
                None => true,
            };
            if stale {
                self.reader = CountersReader::open_named(&self.instance, LEASE_SEGMENT).ok();
            }
        }
        let r = self.reader.as_ref()?;
        if !r.owner_alive() {
            return None;
        }
        let all = r.counters_strict(SEQ, 100)?;
        let get = |label: &str| all.iter().find(|(l, _)| l == label).map(|(_, v)| *v);
        let v = |i: usize| get(LABELS[i]);
        let words = |which: &str| -> Option<Vec<u64>> {
            (0..HOST_WORDS)
                .map(|i| get(&host_label(which, i)))
                .collect()
        };
        // A segment registered but never published reads as no lease.
        let updated_ns = v(9)?;
        if updated_ns == 0 {
            return None;
        }
        Some(Lease {
            role: LeaseRole::from_code(v(0)?),
            epoch: v(1)?,
            deadline_ns: v(2)?,
            trade_after_ns: v(3)?,
            acquired_ns: v(4)?,
            renewed_ns: v(5)?,
            ttl_ms: v(6)?,
            recv_window_ms: v(7)?,
            takeover_ms: v(8)?,
            updated_ns,
            host: unpack_host(&words("host")?),
            other: unpack_host(&words("other")?),
        })
    }

    /// The pid of the lease holder process that wrote the segment mapped now (0: none).
    pub fn holder_pid(&self) -> u64 {
        self.reader.as_ref().map_or(0, CountersReader::owner_pid)
    }

    /// Asks the lease holder for a planned hand-over ([`RELEASE_SIGNAL`]); returns its pid.
    pub fn request_release(&self) -> std::io::Result<u64> {
        let pid = self.holder_pid();
        let Ok(p) = libc::pid_t::try_from(pid) else {
            return Err(std::io::Error::other(
                "the lease segment names no holder process",
            ));
        };
        if p <= 0 {
            return Err(std::io::Error::other(
                "the lease segment names no holder process",
            ));
        }
        // SAFETY: kill(2) with a positive pid and a valid signal number touches no memory.
        if unsafe { libc::kill(p, RELEASE_SIGNAL) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(pid)
    }

    /// Whether this host may act now ([`Lease::may_send`] of a fresh reading).
    pub fn may_send(&mut self) -> bool {
        let now = boot_ns();
        self.read().is_some_and(|l| l.may_send(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(role: LeaseRole, now: u64) -> Lease {
        Lease {
            role,
            epoch: 7,
            deadline_ns: now + 2_000_000_000,
            trade_after_ns: now,
            acquired_ns: now,
            renewed_ns: now,
            ttl_ms: 3000,
            recv_window_ms: 500,
            host: "host-a".into(),
            other: String::new(),
            takeover_ms: 0,
            updated_ns: now,
        }
    }

    #[test]
    fn the_rule_needs_the_role_the_deadline_and_the_fence() {
        let now = 1_000_000_000_000;
        let l = lease(LeaseRole::Leader, now);
        assert!(l.may_send(now));
        assert!(l.may_send(l.deadline_ns - 1));
        assert!(
            !l.may_send(l.deadline_ns),
            "at the deadline nothing is sent"
        );
        let fenced = Lease {
            trade_after_ns: now + 10,
            ..l.clone()
        };
        assert!(fenced.leads(now) && !fenced.may_send(now));
        assert_eq!(fenced.fence_left(now), Some(Duration::from_nanos(10)));
        assert!(fenced.may_send(now + 10));
        let standby = lease(LeaseRole::Standby, now);
        assert!(!standby.leads(now) && !standby.may_send(now));
        assert_eq!(standby.fence_left(now), None);
    }

    #[test]
    fn host_names_are_cut_on_a_character_boundary() {
        assert_eq!(unpack_host(&pack_host("host-a")), "host-a");
        let long = "é".repeat(20);
        let back = unpack_host(&pack_host(&long));
        assert_eq!(back, "é".repeat(16));
    }

    #[test]
    fn boot_clock_moves_forward() {
        let a = boot_ns();
        std::thread::sleep(Duration::from_millis(2));
        assert!(boot_ns() >= a + 1_000_000);
    }
}
