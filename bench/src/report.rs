//! Latency reports: percentile table, `summary.json`, and HdrHistogram `.hgrm` files.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use hdrhistogram::Histogram;

/// Percentiles reported for every row.
pub const PERCENTILES: [(&str, f64); 5] = [
    ("p50", 0.50),
    ("p90", 0.90),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("p99.99", 0.9999),
];

/// One measured scenario.
pub struct Row {
    /// Short id, used for file names (`<key>.hgrm`).
    pub key: &'static str,
    /// Human name.
    pub name: &'static str,
    /// Round-trip samples in ns.
    pub hist: Histogram<u64>,
}

/// A histogram for round trips in ns: 1 ns to 60 s at 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("constant bounds are valid")
}

fn ratio(a: u64, b: Option<u64>) -> Option<f64> {
    match b {
        Some(b) if b > 0 => Some(a as f64 / b as f64),
        _ => None,
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"))
}

/// The text table: percentiles in ns and each row's p50 ratio to `floor` and `base` rows.
pub fn table(rows: &[Row], floor: &str, base: &str) -> String {
    table_titled(rows, "round trip (ns)", floor, "/xbeam", base)
}

/// [`table`] with its own first-column title and name of the `base` ratio column.
pub fn table_titled(
    rows: &[Row],
    title: &str,
    floor: &str,
    base_label: &str,
    base: &str,
) -> String {
    let p50 = |key: &str| {
        rows.iter()
            .find(|r| r.key == key)
            .map(|r| r.hist.value_at_quantile(0.5))
    };
    let (floor_p50, base_p50) = (p50(floor), p50(base));
    let mut out = String::new();
    let _ = write!(out, "{title:<34} {:>9}", "samples");
    for (label, _) in PERCENTILES {
        let _ = write!(out, " {label:>8}");
    }
    let _ = writeln!(out, " {:>9} {:>9} {base_label:>9}", "max", "/floor");
    for r in rows {
        let _ = write!(out, "{:<34} {:>9}", r.name, r.hist.len());
        for (_, q) in PERCENTILES {
            let _ = write!(out, " {:>8}", r.hist.value_at_quantile(q));
        }
        let p = r.hist.value_at_quantile(0.5);
        let _ = writeln!(
            out,
            " {:>9} {:>9} {:>9}",
            r.hist.max(),
            fmt_ratio(ratio(p, floor_p50)),
            fmt_ratio(ratio(p, base_p50))
        );
    }
    out
}

/// `summary.json`: run parameters and, per row, percentiles, max, mean and p50 ratios.
pub fn summary(rows: &[Row], floor: &str, base: &str, run: serde_json::Value) -> serde_json::Value {
    let p50 = |key: &str| {
        rows.iter()
            .find(|r| r.key == key)
            .map(|r| r.hist.value_at_quantile(0.5))
    };
    let (floor_p50, base_p50) = (p50(floor), p50(base));
    let rows: Vec<_> = rows
        .iter()
        .map(|r| {
            let mut pct = serde_json::Map::new();
            for (label, q) in PERCENTILES {
                pct.insert(label.to_owned(), r.hist.value_at_quantile(q).into());
            }
            let p = r.hist.value_at_quantile(0.5);
            serde_json::json!({
                "key": r.key,
                "name": r.name,
                "samples": r.hist.len(),
                "percentiles_ns": pct,
                "max_ns": r.hist.max(),
                "min_ns": r.hist.min(),
                "mean_ns": r.hist.mean(),
                "p50_ratio_to_floor": ratio(p, floor_p50),
                "p50_ratio_to_crossbeam": ratio(p, base_p50),
                "hgrm": format!("{}.hgrm", r.key),
            })
        })
        .collect();
    serde_json::json!({ "unit": "ns", "run": run, "rows": rows })
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

/// Writes `summary.json` and one `<key>.hgrm` per row into `dir`.
pub fn write(dir: &Path, rows: &[Row], summary: &serde_json::Value) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for r in rows {
        let path = dir.join(format!("{}.hgrm", r.key));
        std::fs::write(&path, hgrm(&r.hist))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let path = dir.join("summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(summary)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
