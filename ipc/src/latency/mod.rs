//! Live latency of a quantum process, the one machinery the daemon and both bridges record
//! with: HdrHistograms per *series*, handed over once per interval to a background thread that
//! appends them to an interval log (HdrHistogram's standard format, one tag per series) and
//! publishes their percentiles as gauges in a counters segment (`quantum ctl latency`,
//! `ctl metrics`, `ctl top` read them there; the recording process is never asked).
//!
//! ```text
//!  recording thread(s)                       writer thread (once per interval)
//!  ───────────────────                       ───────────────────────────────────────────
//!  Recorder::record(series, ns)              interval ──> interval log (tag = series name)
//!  Recorder::tick(now)  (or SharedLive's       │
//!    own ticker)  ── hands the interval ──────>└──> gauges `latency.<series>.<pct>_ns`
//!                     over, takes an empty one         in the process's counters segment
//! ```
//!
//! A *series* is named `<stage>` or `<stage>.<key>=<value>` (e.g. `end_to_end`,
//! `decision.outcome=denied_p33`, `exchange.ack.transport=ws`): the `key=value` segments are
//! labels, which `ctl metrics` turns into Prometheus labels (`outcome="denied_p33"`) and `ctl
//! latency` into columns. [`label`] / [`parse_label`] own the counter labels.
//!
//! Recording is a few array writes into preallocated histograms; it never allocates, formats
//! or writes a file. [`Recorder`] is owned by one thread (the daemon's hot path);
//! [`shared::SharedLive`] is the variant for processes whose stamps come from several tasks
//! (the bridges), behind one short lock, with a ticker of its own.

pub mod gauges;
pub mod read;
pub mod recorder;
pub mod report;
pub mod shared;
pub mod writer;

pub use gauges::{Gauges, SeriesReading};
pub use recorder::{Interval, Recorder};
pub use shared::SharedLive;

/// The published percentiles: label suffix and quantile. The suffixes are those `ctl metrics`
/// reads as quantiles (`p99_9` is 0.999, `max` is 1).
pub const PUBLISHED: [(&str, f64); 6] = [
    ("p50", 0.5),
    ("p90", 0.9),
    ("p99", 0.99),
    ("p99_9", 0.999),
    ("p99_99", 0.9999),
    ("max", 1.0),
];

/// The counters segment the Redis bridge publishes its latency in
/// (`quantum.<instance>.latency-redis`).
pub const REDIS_SEGMENT: &str = "latency-redis";
/// The counters segment the Binance bridge publishes its latency in
/// (`quantum.<instance>.latency-binance`).
pub const BINANCE_SEGMENT: &str = "latency-binance";
/// Every bridge's latency segment, in the order reports show them (after the daemon's own
/// series, which are in the daemon's counters segment).
pub const BRIDGE_SEGMENTS: [&str; 2] = [REDIS_SEGMENT, BINANCE_SEGMENT];

/// Creates the counters segment `quantum.<instance>.<segment>` (replacing one a dead process
/// left) with the gauges of `series`: what a bridge hands to [`writer::LiveConfig::gauges`].
pub fn segment_gauges(
    instance: &str,
    segment: &str,
    series: &[String],
) -> Result<Gauges, crate::error::Error> {
    check_series(series).map_err(|_| crate::error::Error::InvalidSpec {
        os_id: format!("quantum.{instance}.{segment}"),
        reason: "a latency series' label is too long",
    })?;
    let capacity = 1 + series.len() * PUBLISHED.len();
    let w = crate::counters::CountersWriter::take_named(instance, segment, capacity)?;
    Gauges::register(std::sync::Arc::new(w), series)
}

/// Default length of one interval (ms): every process's gauges and interval log.
pub const DEFAULT_INTERVAL_MS: u64 = 1000;
/// The shortest interval a process accepts (ms).
pub const MIN_INTERVAL_MS: u64 = 10;
/// The longest interval a process accepts (ms).
pub const MAX_INTERVAL_MS: u64 = 3_600_000;

/// The counter that guards one interval's gauges (odd while they are being written).
pub const SEQ_LABEL: &str = "latency.seq";

/// `latency.<series>.<pct>_ns`.
pub fn label(series: &str, pct: &str) -> String {
    format!("latency.{series}.{pct}_ns")
}

/// The series and percentile suffix of a label made by [`label`].
pub fn parse_label(label: &str) -> Option<(&str, &'static str)> {
    let rest = label.strip_prefix("latency.")?;
    let (series, pct) = rest.rsplit_once('.')?;
    let pct = pct.strip_suffix("_ns")?;
    let (p, _) = PUBLISHED.iter().find(|(p, _)| *p == pct)?;
    (!series.is_empty()).then_some((series, *p))
}

/// The label key of a plan's outcome class (`decision.outcome=denied_p33`).
pub const OUTCOME: &str = "outcome";
/// The label key of the exchange transport (`exchange.ack.transport=ws`).
pub const TRANSPORT: &str = "transport";
/// Every label key a series may carry: `ctl metrics` makes each a Prometheus label.
pub const LABEL_KEYS: [&str; 2] = [OUTCOME, TRANSPORT];

/// `<stage>.<key>=<value>`: a series of `stage` labelled `key=value`.
pub fn tagged(stage: &str, key: &str, value: &str) -> String {
    format!("{stage}.{key}={value}")
}

/// A series name split into its stage (the segments without `=`, joined by `.`) and its
/// labels (`key=value` segments, in order).
pub fn split(series: &str) -> (String, Vec<(&str, &str)>) {
    let mut stage = Vec::new();
    let mut labels = Vec::new();
    for seg in series.split('.') {
        match seg.split_once('=') {
            Some((k, v)) => labels.push((k, v)),
            None => stage.push(seg),
        }
    }
    (stage.join("."), labels)
}

/// Checks that every series name makes counter labels that fit a counters segment.
pub fn check_series(names: &[String]) -> Result<(), String> {
    for n in names {
        let longest = label(n, "p99_99");
        if longest.len() > crate::counters::MAX_LABEL {
            return Err(format!(
                "latency series {n:?}: its label {longest:?} is longer than {} bytes",
                crate::counters::MAX_LABEL
            ));
        }
        if n.is_empty() || n.split('.').any(str::is_empty) {
            return Err(format!("latency series {n:?}: an empty segment"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_with_tags() {
        let s = tagged("decision", "outcome", "denied_p33");
        assert_eq!(s, "decision.outcome=denied_p33");
        let l = label(&s, "p99_9");
        assert_eq!(l, "latency.decision.outcome=denied_p33.p99_9_ns");
        assert_eq!(parse_label(&l), Some((s.as_str(), "p99_9")));
        assert_eq!(
            split(&s),
            ("decision".into(), vec![("outcome", "denied_p33")])
        );
        assert_eq!(
            split("exchange.ack.transport=ws"),
            ("exchange.ack".into(), vec![("transport", "ws")])
        );
        assert_eq!(parse_label("latency.chain.p42_ns"), None);
        assert_eq!(parse_label("latency.p50_ns"), None);
        assert_eq!(parse_label("plans_in"), None);
        assert!(check_series(&[s]).is_ok());
        assert!(check_series(&["x".repeat(40)]).is_err());
        assert!(check_series(&["a..b".into()]).is_err());
    }
}
