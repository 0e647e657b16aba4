//! Ratios of a row's p50 to a baseline's p50: over the whole run, and block by block.

use super::variant::Baseline;
use super::RowResult;

/// One row against one baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratio {
    /// Row p50 / baseline p50 over the whole run (below 1: the row is faster).
    pub whole: f64,
    /// The same ratio per block (block `i` of the row against block `i` of the baseline, which
    /// ran right before or after it): smallest, median, largest.
    pub min: f64,
    /// Median of the block ratios.
    pub median: f64,
    /// Largest block ratio.
    pub max: f64,
}

/// `row` against the baseline's row in `rows`, when it ran.
pub fn ratio(row: &RowResult, base: Baseline, rows: &[RowResult]) -> Option<Ratio> {
    ratio_to(row, base.key(), rows)
}

/// `row` against the row `base_key` in `rows`, when it ran.
pub fn ratio_to(row: &RowResult, base_key: &str, rows: &[RowResult]) -> Option<Ratio> {
    let b = rows.iter().find(|r| r.key == base_key)?;
    let whole = div(
        row.hist.value_at_quantile(0.5),
        b.hist.value_at_quantile(0.5),
    )?;
    let mut blocks: Vec<f64> = row
        .block_p50
        .iter()
        .zip(&b.block_p50)
        .filter_map(|(r, b)| div(*r, *b))
        .collect();
    if blocks.is_empty() {
        return None;
    }
    blocks.sort_by(f64::total_cmp);
    Some(Ratio {
        whole,
        min: blocks[0],
        median: blocks[blocks.len() / 2],
        max: blocks[blocks.len() - 1],
    })
}

fn div(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// A ratio in few characters: `3.2x` when the row is slower, `1/3300` when it is faster.
pub fn short(r: f64) -> String {
    if r >= 1.0 {
        format!("{}x", sig(r))
    } else if r > 0.0 {
        format!("1/{}", sig(1.0 / r))
    } else {
        "-".to_owned()
    }
}

/// Three significant digits, no exponent.
pub fn sig(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ratios_read_both_ways() {
        assert_eq!(short(3.21), "3.21x");
        assert_eq!(short(1.0 / 3300.0), "1/3300");
        assert_eq!(short(0.5), "1/2.00");
        assert_eq!(short(0.0), "-");
    }
}
