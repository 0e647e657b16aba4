//! Live latency of the daemon: the I/O thread stamps each plan when it pops it from its ring
//! and each intent when it puts it on `orders`; with the engine's own stamps (`t_in_ns`,
//! `t_out_ns`, and for a sample of plans the moments inside the chain, `OrderIntent::marks`)
//! they make the stages [`crate::latency`] records. Recording is a few array
//! writes into preallocated histograms; a background thread publishes each interval's
//! percentiles in the counters segment (`quantum ctl latency`) and appends it to the interval
//! log (`latency.hdr_log`, `quantum run --hdr-log FILE`).

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::writer::{self, LiveConfig};
use super::{Gauges, Recorder, RxStamps, Stamps};
use anyhow::Result;
use quantum_core::{Clock, OrderIntent};
use quantum_ipc::CountersWriter;

use crate::config::LatencySection;

/// The I/O thread's latency recording.
pub struct Live {
    clock: Clock,
    rx: RxStamps,
    recorder: Option<Recorder>,
    writer: Option<JoinHandle<Result<()>>>,
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
        let gauges = Gauges::register(counters)?;
        let hdr_log = (!cfg.hdr_log.trim().is_empty()).then(|| PathBuf::from(cfg.hdr_log.trim()));
        if let Some(p) = &hdr_log {
            tracing::info!(file = %p.display(), interval_ms = cfg.interval_ms, "latency interval log");
        }
        let (recorder, writer) = writer::start(
            LiveConfig {
                hdr_log,
                gauges: Some(gauges),
                interval: Duration::from_millis(cfg.interval_ms),
            },
            clock.now_ns(),
        )?;
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
            rx: self.rx.take(o.plan.0),
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
            r.record(&s);
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

    /// Stops the writer thread after it wrote what it has.
    pub fn stop(&mut self) {
        self.recorder = None;
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
