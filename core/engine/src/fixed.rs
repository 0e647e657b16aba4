//! Exact fixed-point decimals: `i64` counts of 1e-8 units.
//!
//! Quantities, prices, tolerances and scores are parsed from decimal strings and formatted back
//! without ever passing through `f64`, so `"0.062"` is exactly 6_200_000 units and prints back as
//! `"0.062"`. Parsing is strict: an optional sign, digits, an optional fraction; no exponent, no
//! white space, no more than 8 significant fractional digits (extra trailing zeros are fine).

use std::fmt;
use std::str::FromStr;

/// Units per 1.0: values are stored as integers of 1e-8.
pub const SCALE: i64 = 100_000_000;
/// Number of fractional digits a value can carry.
pub const DECIMALS: u32 = 8;

/// Why a decimal string was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecimalError {
    /// Nothing to parse.
    Empty,
    /// A character that is not a digit, a leading sign or a single point.
    InvalidChar {
        /// Byte offset of the character.
        at: usize,
    },
    /// No digits at all (e.g. `"-"` or `"."`).
    NoDigits,
    /// More than 8 non-zero fractional digits: the value is not exact in 1e-8 units.
    TooPrecise,
    /// The value does not fit in an `i64` of 1e-8 units.
    Overflow,
}

impl fmt::Display for DecimalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecimalError::Empty => f.write_str("empty decimal"),
            DecimalError::InvalidChar { at } => write!(f, "invalid character at byte {at}"),
            DecimalError::NoDigits => f.write_str("no digits"),
            DecimalError::TooPrecise => f.write_str("more than 8 fractional digits"),
            DecimalError::Overflow => f.write_str("value out of range"),
        }
    }
}

impl std::error::Error for DecimalError {}

/// Parses a decimal string into 1e-8 units.
pub fn parse_units(s: &str) -> Result<i64, DecimalError> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Err(DecimalError::Empty);
    }
    let (neg, start) = match b[0] {
        b'-' => (true, 1),
        b'+' => (false, 1),
        _ => (false, 0),
    };
    // Accumulate the magnitude as a negative number so i64::MIN parses too.
    let mut acc: i128 = 0;
    let mut digits = 0usize;
    let mut frac_digits = 0u32;
    let mut seen_point = false;
    for (i, &c) in b.iter().enumerate().skip(start) {
        match c {
            b'0'..=b'9' => {
                digits += 1;
                let d = i128::from(c - b'0');
                if seen_point {
                    if frac_digits == DECIMALS {
                        if d != 0 {
                            return Err(DecimalError::TooPrecise);
                        }
                        continue;
                    }
                    frac_digits += 1;
                }
                acc = acc * 10 + d;
                if acc > i128::from(i64::MAX) + 1 {
                    return Err(DecimalError::Overflow);
                }
            }
            b'.' if !seen_point => seen_point = true,
            _ => return Err(DecimalError::InvalidChar { at: i }),
        }
    }
    if digits == 0 {
        return Err(DecimalError::NoDigits);
    }
    acc *= 10i128.pow(DECIMALS - frac_digits);
    let v = if neg { -acc } else { acc };
    i64::try_from(v).map_err(|_| DecimalError::Overflow)
}

/// Writes `units` as the shortest exact decimal (`"0.062"`, `"-3"`, `"0"`), or with at least
/// `min_frac` fractional digits when given (never fewer than the value needs).
pub fn write_units(f: &mut impl fmt::Write, units: i64, min_frac: Option<usize>) -> fmt::Result {
    let neg = units < 0;
    let mag = units.unsigned_abs();
    let int = mag / SCALE as u64;
    let mut frac = mag % SCALE as u64;
    let mut n = DECIMALS as usize;
    let want = min_frac.unwrap_or(0).min(DECIMALS as usize);
    while n > want && frac % 10 == 0 {
        frac /= 10;
        n -= 1;
    }
    if neg {
        f.write_char('-')?;
    }
    write!(f, "{int}")?;
    if n > 0 {
        write!(f, ".{frac:0n$}")?;
    }
    Ok(())
}

/// Rounds a non-negative `units` down to `min + k * step` (Binance's LOT_SIZE rule: the amount
/// above `min_qty` must be a multiple of `step`). Returns 0 when `units < min`.
/// `step <= 0` means "no step": the value is returned as is if it reaches `min`.
pub fn floor_to_step(units: i64, step: i64, min: i64) -> i64 {
    if units < min || units <= 0 {
        return 0;
    }
    if step <= 0 {
        return units;
    }
    min + (units - min) / step * step
}

macro_rules! fixed_point {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(i64);

        impl $name {
            /// Zero.
            pub const ZERO: $name = $name(0);

            /// From raw 1e-8 units.
            #[inline]
            pub const fn from_units(units: i64) -> Self {
                $name(units)
            }

            /// Raw 1e-8 units.
            #[inline]
            pub const fn units(self) -> i64 {
                self.0
            }

            /// Absolute value (saturating at `i64::MAX` units).
            #[inline]
            pub const fn abs(self) -> Self {
                $name(self.0.saturating_abs())
            }

            /// `self + rhs`, or `None` on overflow.
            #[inline]
            pub const fn checked_add(self, rhs: Self) -> Option<Self> {
                match self.0.checked_add(rhs.0) {
                    Some(v) => Some($name(v)),
                    None => None,
                }
            }

            /// `self - rhs`, or `None` on overflow.
            #[inline]
            pub const fn checked_sub(self, rhs: Self) -> Option<Self> {
                match self.0.checked_sub(rhs.0) {
                    Some(v) => Some($name(v)),
                    None => None,
                }
            }

            /// True when zero.
            #[inline]
            pub const fn is_zero(self) -> bool {
                self.0 == 0
            }

            /// Whole units, for literals in tests and configs: `from_int(3)` is 3.0.
            pub const fn from_int(v: i64) -> Self {
                $name(v * SCALE)
            }
        }

        impl FromStr for $name {
            type Err = DecimalError;
            fn from_str(s: &str) -> Result<Self, DecimalError> {
                parse_units(s).map($name)
            }
        }

        impl fmt::Display for $name {
            /// Shortest exact form; `{:.3}` pads to at least three fractional digits.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_units(f, self.0, f.precision())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_units(f, self.0, None)
            }
        }
    };
}

fixed_point!(
    /// A quantity of a base asset (signed: positions are negative when short).
    Qty
);
fixed_point!(
    /// A price in the quote asset.
    Price
);
fixed_point!(
    /// A dimensionless score, e.g. the exit brain's kill score.
    Score
);

impl Qty {
    /// `self * pct / 100`, rounded toward zero.
    #[inline]
    pub fn mul_pct(self, pct: u32) -> Qty {
        // In 64 bits when the product fits (always, for real quantities): a 128-bit division
        // is a library call of dozens of cycles on the plan path, a 64-bit one by a constant
        // is a multiply.
        match self.0.checked_mul(i64::from(pct)) {
            Some(p) => Qty(p / 100),
            None => Qty((i128::from(self.0) * i128::from(pct) / 100) as i64),
        }
    }

    /// Rounds the magnitude down onto a lot grid; see [`floor_to_step`].
    #[inline]
    pub fn floor_to_step(self, step: Qty, min: Qty) -> Qty {
        Qty(floor_to_step(self.0, step.0, min.0))
    }

    /// Notional `|qty| * price` in quote units (1e-8), saturating.
    #[inline]
    pub fn notional(self, price: Price) -> i128 {
        // 64-bit when the product fits, as in `mul_pct`.
        match self.0.checked_abs().and_then(|q| q.checked_mul(price.0)) {
            Some(p) => i128::from(p / SCALE),
            None => i128::from(self.0).abs() * i128::from(price.0) / i128::from(SCALE),
        }
    }

    /// The smaller of two quantities.
    #[inline]
    pub fn min(self, other: Qty) -> Qty {
        if self.0 <= other.0 {
            self
        } else {
            other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_exactly() {
        for (s, units, back) in [
            ("0.062", 6_200_000, "0.062"),
            ("0.002", 200_000, "0.002"),
            ("-1.5", -150_000_000, "-1.5"),
            ("+7", 700_000_000, "7"),
            ("0.00000001", 1, "0.00000001"),
            ("0.0600000000", 6_000_000, "0.06"),
            (".5", 50_000_000, "0.5"),
            ("5.", 500_000_000, "5"),
            ("-0", 0, "0"),
        ] {
            let q: Qty = s.parse().unwrap();
            assert_eq!(q.units(), units, "{s}");
            assert_eq!(q.to_string(), back, "{s}");
        }
        assert_eq!(format!("{:.3}", Qty::from_units(6_000_000)), "0.060");
        assert_eq!(format!("{:.3}", Qty::from_units(6_000_001)), "0.06000001");
    }

    #[test]
    fn refuses_what_is_not_exact() {
        assert_eq!("".parse::<Qty>(), Err(DecimalError::Empty));
        assert_eq!("-".parse::<Qty>(), Err(DecimalError::NoDigits));
        assert_eq!(
            "1e-3".parse::<Qty>(),
            Err(DecimalError::InvalidChar { at: 1 })
        );
        assert_eq!(
            " 1".parse::<Qty>(),
            Err(DecimalError::InvalidChar { at: 0 })
        );
        assert_eq!(
            "1.2.3".parse::<Qty>(),
            Err(DecimalError::InvalidChar { at: 3 })
        );
        assert_eq!("0.000000001".parse::<Qty>(), Err(DecimalError::TooPrecise));
        assert_eq!(
            "0.01499999999999".parse::<Qty>(),
            Err(DecimalError::TooPrecise)
        );
        assert_eq!("99999999999".parse::<Qty>(), Err(DecimalError::Overflow));
        assert_eq!(
            "92233720368.54775807".parse::<Qty>().unwrap().units(),
            i64::MAX
        );
        assert_eq!(
            "-92233720368.54775808".parse::<Qty>().unwrap().units(),
            i64::MIN
        );
    }

    #[test]
    fn floors_onto_the_lot_grid() {
        let q = |s: &str| s.parse::<Qty>().unwrap();
        assert_eq!(
            q("0.0465").floor_to_step(q("0.001"), q("0.001")),
            q("0.046")
        );
        assert_eq!(q("0.0009").floor_to_step(q("0.001"), q("0.001")), Qty::ZERO);
        assert_eq!(q("7.9").floor_to_step(q("1"), q("1")), q("7"));
        // min not on the step grid: the grid starts at min.
        assert_eq!(
            q("0.0105").floor_to_step(q("0.002"), q("0.005")),
            q("0.009")
        );
        assert_eq!(q("0.062").mul_pct(75), q("0.0465"));
    }

    proptest::proptest! {
        /// The 64-bit fast paths give what the 128-bit formulas give, over the whole range
        /// (products that overflow 64 bits take the 128-bit path).
        #[test]
        fn fast_paths_match_the_128_bit_formulas(
            q in proptest::prop_oneof![proptest::num::i64::ANY, -1_000_000_000_000i64..1_000_000_000_000],
            p in proptest::prop_oneof![proptest::num::i64::ANY, 0i64..10_000_000_000_000],
            pct in 0u32..=200,
        ) {
            let wide_pct = (i128::from(q) * i128::from(pct) / 100) as i64;
            proptest::prop_assert_eq!(Qty(q).mul_pct(pct).0, wide_pct);
            let wide_notional = i128::from(q).abs() * i128::from(p) / i128::from(SCALE);
            proptest::prop_assert_eq!(Qty(q).notional(Price(p)), wide_notional);
        }
    }
}
