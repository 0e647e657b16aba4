//! Live latency of the daemon: the I/O thread stamps each plan when it pops it from its ring,
//! each intent when it puts it on `orders` and each result when it puts it on `results`; with
//! the engine's own stamps (`t_in_ns`, `t_out_ns`, and for a sample of plans the moments
//! inside the chain, `OrderIntent::marks`) they make the series [`super::stages`] names.
//! Recording is a few array writes into preallocated histograms; a background thread
//! publishes each interval's percentiles in the counters segment (`quantum ctl latency`) and
//! appends it to the interval log (`latency.hdr_log`, `quantum run --hdr-log FILE`).

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use quantum_core::result::OutcomeClass;
use quantum_core::{Clock, OrderIntent};
use quantum_ipc::latency::writer::{self, LiveConfig};
use quantum_ipc::latency::{Gauges, Recorder};
use quantum_ipc::CountersWriter;

use super::stages::{self, Stamps};
use crate::config::LatencySection;

/// The I/O thread's latency recording.
pub struct Live {
    clock: Clock,
    rx: RxStamps,
    recorder: Option<Recorder>,
    writer: Option<JoinHandle<std::io::Result<()>>>,
}

impl Live {
    /// Starts the writer thread. `plans` is how many plans can be in the engine at once (the
    /// ring-pop stamps are kept for four times as many).
    pub fn start(
        cfg: &LatencySection,
        clock: Clock,
        counters: Arc<CountersWriter>,
        plans: usize,
    ) -> Result<Live> {
        let series = stages::series();
        let gauges = Gauges::register(counters, &series)?;
        let hdr_log = (!cfg.hdr_log.trim().is_empty()).then(|| PathBuf::from(cfg.hdr_log.trim()));
        if let Some(p) = &hdr_log {
            tracing::info!(file = %p.display(), interval_ms = cfg.interval_ms, "latency interval log");
        }
        let (recorder, writer) = writer::start(
            LiveConfig {
                series,
                hdr_log,
                gauges: Some(gauges),
                interval: Duration::from_millis(cfg.interval_ms),
                comment: "quantum run: latency per series, ns on the engine clock; tags are series (stage, or stage.outcome=<class>)".into(),
            },
            clock.now_ns(),
        )
        .context("starting live latency")?;
        Ok(Live {
            clock,
            rx: RxStamps::new(plans.saturating_mul(4)),
            recorder: Some(recorder),
            writer: Some(writer),
        })
    }

    /// Now on the engine's clock.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    /// Plan `plan` was popped from its ring at `at_ns`.
    #[inline]
    pub fn popped(&mut self, plan: u64, at_ns: u64) {
        self.rx.note(plan, at_ns);
    }

    /// The stamps of an intent the engine made (`None` for one offered again after a restart
    /// or a re-attach: it has no plan behind it in this process).
    #[inline]
    pub fn intent(&mut self, o: &OrderIntent) -> Option<Stamps> {
        if o.lookup_first || o.t_in_ns == 0 {
            return None;
        }
        let m = o.marks;
        let at = |offset: u32| (offset != 0).then(|| o.t_in_ns + u64::from(offset));
        Some(Stamps {
            // Kept for the plan's result, which follows its intent.
            rx: self.rx.peek(o.plan.0),
            t_in: o.t_in_ns,
            gov: at(m.gov_ns),
            p33: at(m.p33_ns),
            ready: at(m.ready_ns),
            t_out: o.t_out_ns,
            tx: None,
        })
    }

    /// The intent with `stamps` is on the `orders` ring now.
    #[inline]
    pub fn sent(&mut self, stamps: Stamps) {
        let s = Stamps {
            tx: Some(self.clock.now_ns()),
            ..stamps
        };
        if let Some(r) = &mut self.recorder {
            for (stage, ns) in s.spans() {
                r.record(stages::stage_index(stage), ns);
            }
        }
    }

    /// The result of `plan`, of outcome class `class`, is on the `results` ring now: its
    /// decision time is recorded if this process popped the plan (not for a plan of before a
    /// restart).
    #[inline]
    pub fn decided(&mut self, plan: u64, class: OutcomeClass) {
        let Some(rx) = self.rx.take(plan) else {
            return;
        };
        let ns = self.clock.now_ns().saturating_sub(rx);
        if let Some(r) = &mut self.recorder {
            r.record(stages::decision_index(class), ns);
        }
    }

    /// Hands the interval over when it is over (one comparison otherwise).
    #[inline]
    pub fn tick(&mut self) {
        let now = self.clock.now_ns();
        if let Some(r) = &mut self.recorder {
            r.tick(now);
        }
    }

    /// Stops the writer thread after it wrote what it has (the interval in progress is
    /// handed over first).
    pub fn stop(&mut self) {
        if let Some(mut r) = self.recorder.take() {
            r.flush(self.clock.now_ns());
        }
        if let Some(t) = self.writer.take() {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("latency writer: {e:#}"),
                Err(_) => tracing::warn!("latency writer thread panicked"),
            }
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Slots probed for a plan before the oldest of them is overwritten.
const PROBES: usize = 4;

/// Ring-pop stamps of plans in the engine, by plan id, until their result comes out: a fixed
/// open-addressed table (a few slots probed per plan), no allocation. When every probed slot
/// holds another plan, the first of them is overwritten (that plan then has no `rx`, and its
/// samples are skipped): size it at a few times the plans in the engine at once (the permit
/// table's capacity).
pub struct RxStamps {
    slots: Box<[(u64, u64)]>,
    mask: usize,
}

impl RxStamps {
    /// Room for `capacity` plans (rounded up to a power of two, at least [`PROBES`]).
    pub fn new(capacity: usize) -> RxStamps {
        let n = capacity.max(PROBES).next_power_of_two();
        RxStamps {
            slots: vec![(0, 0); n].into_boxed_slice(),
            mask: n - 1,
        }
    }

    #[inline]
    fn home(&self, plan: u64) -> usize {
        // Plan ids are random-looking already; the multiply spreads sequential ones.
        (plan.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & self.mask
    }

    #[inline]
    fn find(&self, plan: u64) -> Option<usize> {
        let h = self.home(plan);
        (0..PROBES)
            .map(|k| (h + k) & self.mask)
            .find(|&i| self.slots[i].0 == plan && plan != 0)
    }

    /// Plan `plan` was popped from its ring at `rx_ns`.
    #[inline]
    pub fn note(&mut self, plan: u64, rx_ns: u64) {
        let h = self.home(plan);
        let i = (0..PROBES)
            .map(|k| (h + k) & self.mask)
            .find(|&i| self.slots[i].0 == 0 || self.slots[i].0 == plan)
            .unwrap_or(h);
        self.slots[i] = (plan, rx_ns);
    }

    /// The ring-pop stamp of `plan`, kept.
    #[inline]
    pub fn peek(&self, plan: u64) -> Option<u64> {
        self.find(plan).map(|i| self.slots[i].1)
    }

    /// The ring-pop stamp of `plan`, forgetting it.
    #[inline]
    pub fn take(&mut self, plan: u64) -> Option<u64> {
        let i = self.find(plan)?;
        let rx = self.slots[i].1;
        self.slots[i] = (0, 0);
        Some(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rx_stamps_are_peeked_then_taken_once() {
        let mut t = RxStamps::new(64);
        t.note(0xf1a8_d7f4_8713_d5cf, 10);
        t.note(0x8422_2f2c_53d2_2b91, 20);
        assert_eq!(t.peek(0xf1a8_d7f4_8713_d5cf), Some(10));
        assert_eq!(t.take(0xf1a8_d7f4_8713_d5cf), Some(10));
        assert_eq!(t.take(0xf1a8_d7f4_8713_d5cf), None);
        assert_eq!(t.peek(0xf1a8_d7f4_8713_d5cf), None);
        assert_eq!(t.take(0x8422_2f2c_53d2_2b91), Some(20));
        assert_eq!(t.take(7), None);
        assert_eq!(t.take(0), None);
    }

    #[test]
    fn plans_sharing_a_home_slot_keep_their_stamps() {
        // A table of 4 slots: every plan's probes cover the whole table.
        let mut t = RxStamps::new(4);
        for p in 1..=4u64 {
            t.note(p, p * 10);
        }
        for p in 1..=4u64 {
            assert_eq!(t.peek(p), Some(p * 10), "plan {p}");
        }
        // A fifth overwrites one; the others stay.
        t.note(5, 50);
        assert_eq!(t.peek(5), Some(50));
        let kept = (1..=4u64).filter(|p| t.peek(*p).is_some()).count();
        assert_eq!(kept, 3);
        // A slot freed by a take is used again.
        let gone = (1..=4u64).find(|p| t.peek(*p).is_some()).unwrap();
        t.take(gone);
        t.note(6, 60);
        assert_eq!(t.peek(6), Some(60));
        assert_eq!(t.peek(5), Some(50));
    }
}
