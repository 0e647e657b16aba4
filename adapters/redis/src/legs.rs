//! The legacy path, timed live: what a legacy user lives with, from `XADD` on
//! `quantum:stream:apply.plan` to the permit keys and the result entry in Redis.
//!
//! The bridge records four series with `quantum_ipc::latency::SharedLive` (its writer thread
//! publishes each interval's percentiles as gauges in the bridge's own counters segment
//! `quantum.<instance>.latency-redis`, which `quantum ctl latency` and `ctl metrics` read, and
//! with `--hdr-log FILE` appends them to an HdrHistogram interval log, tags = series names):
//!
//! | series | from | to | clock |
//! |---|---|---|---|
//! | `redis.entry_result` | the stream entry's id (`<ms>-<seq>`: Redis's clock at the XADD) | the result entry written | wall |
//! | `redis.entry_permits` | the stream entry's id | the plan's permit keys written (the later write when they took two) | wall |
//! | `redis.plan_result` | the plan's own `timestamp` (absent or unreadable: no sample) | the result entry written | wall |
//! | `redis.read_result` | the XREADGROUP reply that brought the entry | the result entry written | monotonic |
//!
//! "Written" is the moment the MULTI/EXEC that holds the write was answered by Redis. A plan
//! gives one sample per series, when its result entry is written: not for an entry the core
//! had answered before (a redelivery acknowledged without a push), nor for an answer whose
//! result entry the plan had already (`results_repeated`), nor for a standby's answers
//! (failover), nor when the transaction's reply was lost (it is found landed by its marker,
//! and when it landed is unknown). `redis.entry_permits` has samples only for plans whose
//! permits the bridge writes (`--permits-from core`, `EXECUTE` plans that reached the
//! permits).
//!
//! A wall-clock span compares this host's clock with Redis's (entry ids) or the producer's
//! (`timestamp`): it is off by their offset, and by the resolution of the start, up to 1 ms
//! for an entry id (Redis truncates to the ms; an entry added while Redis's clock was behind
//! the stream's last id carries that id's ms, later than the XADD) and whatever
//! the producer wrote for a `timestamp` (whole seconds: up to 1 s). A span that comes out
//! negative (a clock stepped back, or behind the other one) is recorded as 0 and counted
//! (`latency_negative_spans` in the stats hash); one longer than the histograms' range (60 s,
//! an entry claimed after a long outage) is recorded at the top of it. `redis.read_result` is
//! on this process's monotonic clock, ns-accurate: the bridge's and the core's share.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use quantum_core::bounded::FifoMap;
use quantum_core::PlanId;
use quantum_ipc::latency::writer::LiveConfig;
use quantum_ipc::latency::{self, SharedLive};

use crate::config::BridgeConfig;
use crate::error::{Error, Result};
use crate::stats::Stats;

/// `--latency-interval-ms` by default: the daemon's `latency.interval_ms` default, so the
/// core's and the bridge's gauges cover intervals of one length.
pub use quantum_ipc::latency::DEFAULT_INTERVAL_MS;

/// One series of the legacy path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    /// Stream entry id → result entry written (wall clock).
    EntryResult,
    /// Stream entry id → the plan's permit keys written (wall clock).
    EntryPermits,
    /// The plan's own `timestamp` → result entry written (wall clock).
    PlanResult,
    /// The entry read → result entry written (monotonic).
    ReadResult,
}

impl Leg {
    /// Every series, in recording (and display) order.
    pub const ALL: [Leg; 4] = [
        Leg::EntryResult,
        Leg::EntryPermits,
        Leg::PlanResult,
        Leg::ReadResult,
    ];

    /// Its name: interval-log tag and gauge label (`latency.<name>.p99_ns`).
    pub fn name(self) -> &'static str {
        match self {
            Leg::EntryResult => "redis.entry_result",
            Leg::EntryPermits => "redis.entry_permits",
            Leg::PlanResult => "redis.plan_result",
            Leg::ReadResult => "redis.read_result",
        }
    }

    /// Its series number in the recorder.
    fn index(self) -> usize {
        self as usize
    }
}

/// The series' names, in [`Leg::ALL`] order.
pub fn series() -> Vec<String> {
    Leg::ALL.iter().map(|l| l.name().to_owned()).collect()
}

/// Unix time now, ns (the wall clock).
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The span from `from_ms` (Unix ms) to `to_ns` (Unix ns), and whether it was negative (then
/// it is 0).
pub fn wall_span(from_ms: u64, to_ns: u64) -> (u64, bool) {
    match to_ns.checked_sub(from_ms.saturating_mul(1_000_000)) {
        Some(ns) => (ns, false),
        None => (0, true),
    }
}

/// What the bridge knows of a plan entry's times, from its read until its result entry is
/// written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The entry id's milliseconds (Unix ms, Redis's clock).
    pub entry_ms: Option<u64>,
    /// The plan's own `timestamp` (Unix ms, the producer's clock).
    pub plan_ms: Option<u64>,
    /// When the bridge received the entry.
    pub read_at: Instant,
    /// When the plan's permit keys were written (Unix ns); `None` until then.
    pub permits_ns: Option<u64>,
}

/// The stamps of plans pushed into the core whose result entry is not written yet, by plan.
/// Bounded: the oldest is forgotten first (its plan then gives no sample).
pub struct Stamps(FifoMap<PlanId, Stamp>);

impl Stamps {
    /// Room for `capacity` plans.
    pub fn new(capacity: usize) -> Stamps {
        Stamps(FifoMap::new(capacity.max(1)))
    }

    /// `plan`'s entry was pushed into the core. A plan pushed again before its result entry
    /// is written (a repeat of it) keeps the first entry's stamp.
    pub fn pushed(&mut self, plan: PlanId, stamp: Stamp) {
        if !self.0.contains_key(&plan) {
            self.0.insert(plan, stamp);
        }
    }

    /// The permit keys of `plans` were written at `wall_ns`.
    pub fn permits_written(&mut self, plans: &[PlanId], wall_ns: u64) {
        for p in plans {
            if let Some(s) = self.0.get_mut(p) {
                s.permits_ns = Some(wall_ns);
            }
        }
    }

    /// `plan`'s stamp, forgotten (its result came).
    pub fn take(&mut self, plan: PlanId) -> Option<Stamp> {
        self.0.remove(&plan)
    }

    /// Stamps kept.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// None kept.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Forgets them all (the session ended: its entries are delivered again to the next).
    pub fn clear(&mut self) {
        let cap = self.0.capacity();
        self.0 = FifoMap::new(cap);
    }
}

/// The running recorder of the legacy path, for the life of the bridge process.
pub struct Legs {
    live: SharedLive,
    stats: Arc<Stats>,
}

impl Legs {
    /// Creates the bridge's latency segment `quantum.<instance>.latency-redis` (replacing one a
    /// dead bridge left) and the interval log (`cfg.hdr_log`), and starts the writer thread.
    pub fn start(cfg: &BridgeConfig, stats: Arc<Stats>) -> Result<Legs> {
        let series = series();
        let gauges = latency::segment_gauges(&cfg.instance, latency::REDIS_SEGMENT, &series)
            .map_err(|source| Error::Ipc {
                instance: cfg.instance.clone(),
                source,
            })?;
        let live = SharedLive::start(LiveConfig {
            series,
            hdr_log: cfg.hdr_log.clone(),
            gauges: Some(gauges),
            interval: cfg.latency_interval,
            comment: format!(
                "quantum bridge redis --instance {}: the legacy path, ns; tags are series (redis.entry_result, redis.entry_permits, redis.plan_result: wall clock from the entry id or the plan's timestamp; redis.read_result: monotonic from the entry's read)",
                cfg.instance
            ),
        })
        .map_err(|e| Error::Config(format!("live latency: {e}")))?;
        tracing::info!(
            segment = %format!("quantum.{}.{}", cfg.instance, latency::REDIS_SEGMENT),
            hdr_log = ?cfg.hdr_log,
            interval_ms = cfg.latency_interval.as_millis() as u64,
            "live latency of the legacy path"
        );
        Ok(Legs { live, stats })
    }

    /// `stamp`'s plan had its result entry written at `wall_ns` (Unix ns) and `at`
    /// (monotonic): one sample in each series it has a start for.
    pub fn result_written(&self, stamp: &Stamp, wall_ns: u64, at: Instant) {
        if let Some(ms) = stamp.entry_ms {
            self.wall(Leg::EntryResult, ms, wall_ns);
            if let Some(p) = stamp.permits_ns {
                self.wall(Leg::EntryPermits, ms, p);
            }
        }
        if let Some(ms) = stamp.plan_ms {
            self.wall(Leg::PlanResult, ms, wall_ns);
        }
        let ns = at.saturating_duration_since(stamp.read_at).as_nanos();
        self.live.record(
            Leg::ReadResult.index(),
            u64::try_from(ns).unwrap_or(u64::MAX),
        );
    }

    fn wall(&self, leg: Leg, from_ms: u64, to_ns: u64) {
        let (ns, negative) = wall_span(from_ms, to_ns);
        if negative {
            Stats::inc(&self.stats.latency_negative_spans);
        }
        self.live.record(leg.index(), ns);
    }

    /// Writes the last interval and stops the writer thread (the segment stays, its owner
    /// dead, as the lease segment does: `ctl latency` skips it, and the next bridge of the
    /// instance, the next `quantum run` or `quantum ctl gc` removes it).
    pub fn stop(mut self) {
        if let Err(e) = self.live.stop() {
            tracing::warn!(error = %e, "live latency: the last interval was not written");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_series_are_named_for_ctl_latency_and_fit_a_label() {
        let names = series();
        assert_eq!(
            names,
            [
                "redis.entry_result",
                "redis.entry_permits",
                "redis.plan_result",
                "redis.read_result"
            ]
        );
        assert!(latency::check_series(&names).is_ok());
        for (i, l) in Leg::ALL.iter().enumerate() {
            assert_eq!(l.index(), i);
            // No `key=value` segment: the stage is the whole name.
            assert_eq!(latency::split(l.name()), (l.name().to_owned(), vec![]));
        }
    }

    #[test]
    fn a_negative_wall_span_is_zero_and_said_so() {
        assert_eq!(wall_span(1_000, 1_000_250_000), (250_000, false));
        assert_eq!(wall_span(1_000, 1_000_000_000), (0, false));
        assert_eq!(wall_span(1_001, 1_000_999_999), (0, true));
        assert_eq!(wall_span(u64::MAX, 5), (0, true));
    }

    #[test]
    fn a_plan_keeps_its_first_stamp_until_its_result() {
        let at = Instant::now();
        let stamp = |ms| Stamp {
            entry_ms: Some(ms),
            plan_ms: None,
            read_at: at,
            permits_ns: None,
        };
        let mut s = Stamps::new(2);
        s.pushed(PlanId(1), stamp(10));
        s.pushed(PlanId(1), stamp(20));
        s.permits_written(&[PlanId(1), PlanId(9)], 77);
        let got = s.take(PlanId(1)).unwrap();
        assert_eq!((got.entry_ms, got.permits_ns), (Some(10), Some(77)));
        assert!(s.take(PlanId(1)).is_none() && s.is_empty());
        for p in 1..=3 {
            s.pushed(PlanId(p), stamp(p));
        }
        assert_eq!(s.len(), 2, "bounded");
        assert!(s.take(PlanId(1)).is_none(), "the oldest is forgotten first");
        s.clear();
        assert!(s.is_empty());
    }
}
