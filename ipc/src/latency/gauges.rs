//! Percentile gauges in a counters segment: written by the writer thread once per interval,
//! read by `quantum ctl latency` (and shown by `ctl metrics` and `ctl top` through their
//! generic `_ns` rule).

use std::sync::Arc;

use hdrhistogram::Histogram;

use super::{label, parse_label, PUBLISHED, SEQ_LABEL};
use crate::counters::{CounterId, CountersReader, CountersWriter};
use crate::error::Error;

/// The registered gauges of every series.
pub struct Gauges {
    w: Arc<CountersWriter>,
    ids: Vec<[CounterId; PUBLISHED.len()]>,
    /// [`SEQ_LABEL`]: odd while an interval's gauges are being written (see
    /// `CountersWriter::write_group`), so a reader never mixes two intervals.
    seq: CounterId,
}

impl Gauges {
    /// Registers [`SEQ_LABEL`] and `latency.<series>.<pct>_ns` for every series and percentile.
    pub fn register(w: Arc<CountersWriter>, series: &[String]) -> Result<Gauges, Error> {
        let seq = w.register(SEQ_LABEL)?;
        let mut ids = Vec::with_capacity(series.len());
        for s in series {
            let row = PUBLISHED
                .iter()
                .map(|(p, _)| w.register(&label(s, p)))
                .collect::<Result<Vec<_>, _>>()?;
            ids.push(row.try_into().expect("one id per percentile"));
        }
        Ok(Gauges { w, ids, seq })
    }

    /// Sets every series' gauges from its histogram of the last interval (zeros for an empty
    /// one), as one group. `hists` is in the order the series were registered.
    pub fn publish_interval(&self, hists: &[Histogram<u64>]) {
        self.w.write_group(self.seq, || {
            for (ids, h) in self.ids.iter().zip(hists) {
                for (id, (_, q)) in ids.iter().zip(PUBLISHED) {
                    let v = if h.is_empty() {
                        0
                    } else if q >= 1.0 {
                        h.max()
                    } else {
                        h.value_at_quantile(q)
                    };
                    self.w.set(*id, v);
                }
            }
        });
    }
}

/// One series' published percentiles, in [`PUBLISHED`] order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesReading {
    /// The series (`end_to_end`, `decision.outcome=executed`, ...).
    pub series: String,
    /// `(suffix, ns)`; 0 means no sample in the last interval.
    pub values: Vec<(&'static str, u64)>,
}

/// Every series published in another process's counters segment, in registration order, all
/// of one interval; empty when the segment has no latency gauges.
pub fn read(r: &CountersReader) -> Vec<SeriesReading> {
    let mut out: Vec<SeriesReading> = Vec::new();
    for (l, v) in r.counters_consistent(SEQ_LABEL) {
        let Some((series, p)) = parse_label(&l) else {
            continue;
        };
        match out.iter_mut().find(|s| s.series == series) {
            Some(s) => s.values.push((p, v)),
            None => out.push(SeriesReading {
                series: series.to_owned(),
                values: vec![(p, v)],
            }),
        }
    }
    out
}
