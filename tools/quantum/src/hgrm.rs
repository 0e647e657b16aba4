//! HdrHistogram reports: the percentile line operators read and the standard `.hgrm`
//! percentile-distribution text.

use std::io::{self, Write};

use hdrhistogram::Histogram;

/// `p50=.. p90=.. p99=.. p99.9=.. p99.99=.. max=..` in the histogram's unit.
pub fn percentile_line(h: &Histogram<u64>) -> String {
    format!(
        "p50={} p90={} p99={} p99.9={} p99.99={} max={}",
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.90),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.value_at_quantile(0.9999),
        h.max()
    )
}

/// Writes the percentile distribution in the format HdrHistogram's `outputPercentileDistribution`
/// prints (and its plotter reads): value, percentile, total count, 1/(1-percentile), five ticks
/// per half-distance, then the summary footer. `scale` divides values (1.0 keeps the unit).
pub fn write_hgrm(h: &Histogram<u64>, scale: f64, out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    if h.is_empty() {
        writeln!(out, "#[Mean    = 0.000, StdDeviation   = 0.000]")?;
        writeln!(out, "#[Max     = 0.000, Total count    = 0]")?;
        return writeln!(out, "#[Buckets = 0, SubBuckets     = 0]");
    }
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let value = v.value_iterated_to() as f64 / scale;
        if q < 1.0 {
            writeln!(
                out,
                "{value:>12.3} {q:>14.12} {total:>10} {:>14.2}",
                1.0 / (1.0 - q)
            )?;
        } else {
            writeln!(out, "{value:>12.3} {q:>14.12} {total:>10}")?;
        }
    }
    writeln!(
        out,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / scale,
        h.stdev() / scale
    )?;
    writeln!(
        out,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / scale,
        h.len()
    )?;
    writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        // The sub-bucket count HdrHistogram derives from its significant figures.
        (2 * 10u64.pow(u32::from(h.sigfig()))).next_power_of_two()
    )
}
