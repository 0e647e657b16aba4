//! Percentile gauges in the counters segment: written by the live-latency writer, read by
//! `quantum ctl latency` (and shown by `ctl metrics` and `ctl top` through their generic
//! `_ns` rule).

use std::sync::Arc;

use hdrhistogram::Histogram;
use quantum_ipc::{CounterId, CountersReader, CountersWriter};

use super::stages::{label, parse_label, PerStage, Stage, PERCENTILES};

/// The registered gauges of every stage.
pub struct Gauges {
    w: Arc<CountersWriter>,
    ids: PerStage<[CounterId; 6]>,
    /// `latency.seq`: odd while an interval's gauges are being written (see
    /// `CountersWriter::write_group`), so a reader never mixes two intervals.
    seq: CounterId,
}

/// The label of the counter that guards the gauges of one interval.
pub const SEQ_LABEL: &str = "latency.seq";

impl Gauges {
    /// Registers `latency.<stage>.<pct>_ns` for every stage and percentile (48 counters) and
    /// [`SEQ_LABEL`].
    pub fn register(w: Arc<CountersWriter>) -> Result<Gauges, quantum_ipc::Error> {
        let seq = w.register(SEQ_LABEL)?;
        let mut ids = Vec::with_capacity(Stage::ALL.len());
        for s in Stage::ALL {
            let mut row = Vec::with_capacity(PERCENTILES.len());
            for (p, _) in PERCENTILES {
                row.push(w.register(&label(s, p))?);
            }
            ids.push(<[CounterId; 6]>::try_from(row).expect("one id per percentile"));
        }
        let ids = PerStage(
            <[[CounterId; 6]; 8]>::try_from(ids)
                .map_err(|_| ())
                .expect("one row per stage"),
        );
        Ok(Gauges { w, ids, seq })
    }

    /// Sets every stage's gauges from its histogram of the last interval, as one group.
    pub fn publish_interval(&self, hists: &PerStage<Histogram<u64>>) {
        self.w.write_group(self.seq, || {
            for s in Stage::ALL {
                self.publish(s, hists.get(s));
            }
        });
    }

    /// Sets a stage's gauges from its histogram of the last interval (zeros when it is empty).
    fn publish(&self, stage: Stage, h: &Histogram<u64>) {
        for (i, (_, q)) in PERCENTILES.iter().enumerate() {
            let v = if h.is_empty() {
                0
            } else if *q >= 1.0 {
                h.max()
            } else {
                h.value_at_quantile(*q)
            };
            self.w.set(self.ids.get(stage)[i], v);
        }
    }
}

/// One stage's published percentiles, in [`PERCENTILES`] order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageReading {
    /// The stage.
    pub stage: Stage,
    /// `(suffix, ns)`; 0 means no sample in the last interval.
    pub values: Vec<(&'static str, u64)>,
}

/// Reads every published stage from another process's counters, in [`Stage::ALL`] order, all
/// of one interval; empty when the daemon publishes no latency.
pub fn read(r: &CountersReader) -> Vec<StageReading> {
    let all = r.counters_consistent(SEQ_LABEL);
    let mut out: Vec<StageReading> = Vec::new();
    for s in Stage::ALL {
        let mut values = Vec::new();
        for (p, _) in PERCENTILES {
            if let Some((_, v)) = all.iter().find(|(l, _)| parse_label(l) == Some((s, p))) {
                values.push((p, *v));
            }
        }
        if !values.is_empty() {
            out.push(StageReading { stage: s, values });
        }
    }
    out
}
