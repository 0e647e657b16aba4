//! Exact decimals for Binance: quantities are [`Qty`] (1e-8 fixed point), formatted as plain
//! decimal strings (never `f64`, never scientific notation) on the symbol's step grid.

use quantum_core::fixed::{Price, Qty, DECIMALS};

/// Parses a Binance decimal string exactly (e.g. `"0.010"`, `"-1.5"`).
pub fn parse_qty(s: &str) -> Option<Qty> {
    s.parse().ok()
}

/// Parses a price, dropping fractional digits beyond 8 (Binance prints some averages with
/// more); prices are never used for quantity arithmetic, so truncation is harmless.
pub fn parse_price(s: &str) -> Option<Price> {
    let t = match s.split_once('.') {
        Some((int, frac)) if frac.len() > DECIMALS as usize => {
            format!("{int}.{}", &frac[..DECIMALS as usize])
        }
        _ => s.to_owned(),
    };
    t.parse().ok()
}

/// Decimal places needed to print `step` exactly (`0.001` → 3, `1` → 0).
pub fn decimals_of(step: Qty) -> usize {
    let mut u = step.units().unsigned_abs();
    if u == 0 {
        return 0;
    }
    let mut n = DECIMALS as usize;
    while n > 0 && u % 10 == 0 {
        u /= 10;
        n -= 1;
    }
    n
}

/// Formats a non-negative quantity with exactly `decimals` fractional digits (the value must
/// already be on that grid; extra digits are truncated, never rounded up).
pub fn format_qty(qty: Qty, decimals: usize) -> String {
    let decimals = decimals.min(DECIMALS as usize);
    let units = qty.units();
    let cut = 10i64.pow(DECIMALS - decimals as u32);
    let truncated = Qty::from_units(units / cut * cut);
    format!("{truncated:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Qty {
        parse_qty(s).unwrap()
    }

    #[test]
    fn formats_plainly_on_the_step_grid() {
        assert_eq!(decimals_of(q("0.001")), 3);
        assert_eq!(decimals_of(q("1")), 0);
        assert_eq!(decimals_of(q("0.00000001")), 8);
        assert_eq!(format_qty(q("0.015"), 3), "0.015");
        assert_eq!(format_qty(q("0.0149999"), 3), "0.014");
        assert_eq!(format_qty(q("5"), 3), "5.000");
        assert_eq!(format_qty(q("120"), 0), "120");
        assert_eq!(format_qty(q("0.00000001"), 8), "0.00000001");
        assert!(!format_qty(q("0.00000001"), 8).contains('e'));
    }

    #[test]
    fn parses_prices_leniently_and_quantities_strictly() {
        assert_eq!(
            parse_price("65000.123456789").unwrap().to_string(),
            "65000.12345678"
        );
        assert!(parse_qty("1e-3").is_none());
        assert!(parse_qty("0.000000001").is_none());
    }
}
