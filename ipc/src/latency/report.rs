//! The percentiles every report shows and the HdrHistogram `.hgrm` percentile distribution.

use hdrhistogram::Histogram;
use std::fmt::Write as _;

/// Percentiles reported for every row.
pub const PERCENTILES: [(&str, f64); 5] = [
    ("p50", 0.50),
    ("p90", 0.90),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("p99.99", 0.9999),
];

/// A histogram for latencies in ns: 1 ns to 60 s at 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("constant bounds are valid")
}

/// `p50=.. p90=.. p99=.. p99.9=.. p99.99=.. max=..`: the one-line summary operators read.
pub fn percentile_line(hist: &Histogram<u64>) -> String {
    let mut out = String::new();
    for (name, q) in PERCENTILES {
        let _ = write!(out, "{name}={} ", hist.value_at_quantile(q));
    }
    let _ = write!(out, "max={}", hist.max());
    out
}

/// The HdrHistogram percentile distribution text (as `outputPercentileDistribution` writes it,
/// 5 ticks per half distance, values in ns, scaling ratio 1).
pub fn hgrm(hist: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in hist.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let value = v.value_iterated_to() as f64;
        let q = v.quantile_iterated_to();
        if q < 1.0 {
            let _ = writeln!(
                out,
                "{value:12.3} {q:2.12} {total:10} {:14.2}",
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(out, "{value:12.3} {q:2.12} {total:10}");
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        hist.mean(),
        hist.stdev()
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        hist.max() as f64,
        hist.len()
    );
    // Sub-buckets per bucket: 2 * 10^sigfig rounded up to a power of two (HdrHistogram's rule).
    let sub_buckets = (2 * 10u64.pow(u32::from(hist.sigfig()))).next_power_of_two();
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        hist.buckets(),
        sub_buckets
    );
    out
}
