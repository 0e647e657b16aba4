//! `latency.svg` and `latency.png`: every row's percentile distribution on one chart, drawn
//! the way HdrHistogram's plotter draws them: x is the percentile on a log scale of
//! 1/(1 − p) (0%, 90%, 99%, 99.9%, … equally spaced), y the latency, here on a log scale too
//! because the rows span from nanoseconds to a tenth of a second.
//!
//! Text is drawn with a TrueType font read once at run time (DejaVu Sans where Debian puts it,
//! or the file named by `QUANTUM_PLOT_FONT`).

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Result};
use hdrhistogram::Histogram;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

const SIZE: (u32, u32) = (1200, 700);
const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Registers the font for "sans-serif" once; the error says how to provide one.
fn font() -> Result<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let candidates: Vec<String> = std::env::var("QUANTUM_PLOT_FONT")
            .into_iter()
            .chain(FONTS.iter().map(|s| s.to_string()))
            .collect();
        for path in &candidates {
            if let Ok(bytes) = std::fs::read(path) {
                // Registered once for the life of the process, as plotters requires.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                return register_font("sans-serif", FontStyle::Normal, bytes)
                    .map_err(|_| format!("{path} is not a usable TrueType font"));
            }
        }
        Err("no TrueType font for the plot's text: install fonts-dejavu-core or set QUANTUM_PLOT_FONT=/path/to/font.ttf".to_owned())
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// The points of one curve: (1/(1 − p), value in ns), ending at the maximum.
pub fn curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let n = h.len().max(1) as f64;
    let mut pts: Vec<(f64, f64)> = h
        .iter_quantiles(5)
        .filter(|v| v.quantile_iterated_to() < 1.0)
        .map(|v| {
            (
                1.0 / (1.0 - v.quantile_iterated_to()),
                v.value_iterated_to().max(1) as f64,
            )
        })
        .filter(|(x, _)| *x <= n)
        .collect();
    pts.push((n, h.max().max(1) as f64));
    pts
}

/// Writes the chart as SVG.
pub fn svg(path: &Path, rows: &[(&str, &Histogram<u64>)]) -> Result<()> {
    font()?;
    draw(SVGBackend::new(path, SIZE).into_drawing_area(), rows)
}

/// Writes the chart as PNG.
pub fn png(path: &Path, rows: &[(&str, &Histogram<u64>)]) -> Result<()> {
    font()?;
    draw(BitMapBackend::new(path, SIZE).into_drawing_area(), rows)
}

/// "90%", "99.9%" for x = 10, 1000.
fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x.max(1.0));
    let digits = (x.log10().round() as i32 - 2).max(0) as usize;
    format!("{p:.digits$}%")
}

/// "80 ns", "1.5 µs", "100 ms", "10 s".
fn latency_label(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{} µs", ns / 1e3)
    } else {
        format!("{ns} ns")
    }
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    rows: &[(&str, &Histogram<u64>)],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let curves: Vec<(&str, Vec<(f64, f64)>)> = rows.iter().map(|(k, h)| (*k, curve(h))).collect();
    let pts = curves.iter().flat_map(|(_, c)| c.iter());
    let (mut x_max, mut y_min, mut y_max) = (10.0f64, f64::MAX, 1.0f64);
    for (x, y) in pts {
        x_max = x_max.max(*x);
        y_min = y_min.min(*y);
        y_max = y_max.max(*y);
    }
    if curves.is_empty() || y_min == f64::MAX {
        bail!("nothing to plot");
    }
    let x_max = 10f64.powf(x_max.log10().ceil());
    let (y_lo, y_hi) = (
        10f64.powf((y_min.log10()).floor()),
        10f64.powf((y_max.log10()).ceil()),
    );
    root.fill(&WHITE).map_err(|e| anyhow!("plot: {e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Latency by percentile (open loop, from each message's due time)",
            ("sans-serif", 24),
        )
        .margin(20)
        .margin_right(50)
        .x_label_area_size(50)
        .y_label_area_size(90)
        .build_cartesian_2d((1f64..x_max).log_scale(), (y_lo..y_hi).log_scale())
        .map_err(|e| anyhow!("plot: {e}"))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency")
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| latency_label(*y))
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(|e| anyhow!("plot: {e}"))?;
    for (i, (key, pts)) in curves.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(|e| anyhow!("plot: {e}"))?
            .label(key)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("plot: {e}"))?;
    root.present().map_err(|e| anyhow!("plot: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_read_as_percentiles_and_latencies() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(100.0), "99%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(latency_label(80.0), "80 ns");
        assert_eq!(latency_label(1500.0), "1.5 µs");
        assert_eq!(latency_label(1e8), "100 ms");
        assert_eq!(latency_label(1e10), "10 s");
    }

    #[test]
    fn a_curve_rises_and_ends_at_the_maximum() {
        let mut h = quantum_daemon::latency::report::new_histogram();
        for v in 1..=10_000u64 {
            h.record(v).unwrap();
        }
        let c = curve(&h);
        assert!(
            c.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1),
            "{c:?}"
        );
        assert_eq!(*c.last().unwrap(), (10_000.0, h.max() as f64));
    }
}
