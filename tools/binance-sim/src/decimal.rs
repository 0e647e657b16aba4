//! Exact fixed-point decimals: an `i64` count of 1e-8 units.
//!
//! Quantities and prices arrive as decimal strings and are validated against filters exactly;
//! binary floating point would turn `0.1` into something that is not a multiple of `0.1`.

use std::fmt;

/// Decimal places held exactly.
pub const SCALE: u32 = 8;
/// `10^SCALE`.
pub const ONE: i64 = 100_000_000;

/// A signed decimal with exactly [`SCALE`] fractional digits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dec(pub i64);

/// Why a decimal string was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecError {
    /// Not a plain decimal number (empty, letters, exponent, several dots, ...).
    Malformed,
    /// More fractional digits than [`SCALE`].
    TooPrecise,
    /// Outside the `i64` range of 1e-8 units.
    Overflow,
}

impl Dec {
    /// Zero.
    pub const ZERO: Dec = Dec(0);

    /// Parses `[-]digits[.digits]`; no exponent, no `+`, no blanks.
    pub fn parse(s: &str) -> Result<Dec, DecError> {
        let (neg, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (int, frac) = match body.split_once('.') {
            Some((i, f)) => (i, f),
            None => (body, ""),
        };
        let digits_ok = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if (int.is_empty() && frac.is_empty()) || !digits_ok(int) || !digits_ok(frac) {
            return Err(DecError::Malformed);
        }
        let frac_trimmed = frac.trim_end_matches('0');
        if frac_trimmed.len() > SCALE as usize {
            return Err(DecError::TooPrecise);
        }
        let mut units: i64 = 0;
        for b in int.bytes() {
            units = units
                .checked_mul(10)
                .and_then(|u| u.checked_add(i64::from(b - b'0')))
                .ok_or(DecError::Overflow)?;
        }
        units = units.checked_mul(ONE).ok_or(DecError::Overflow)?;
        let mut f: i64 = 0;
        for (i, b) in frac_trimmed.bytes().enumerate() {
            f += i64::from(b - b'0') * 10i64.pow(SCALE - 1 - i as u32);
        }
        units = units.checked_add(f).ok_or(DecError::Overflow)?;
        Ok(Dec(if neg { -units } else { units }))
    }

    /// Number of significant fractional digits of a decimal string (after trimming zeros).
    /// Only meaningful for strings that [`Dec::parse`] accepts.
    pub fn frac_digits(s: &str) -> u32 {
        s.split_once('.')
            .map(|(_, f)| f.trim_end_matches('0').len() as u32)
            .unwrap_or(0)
    }

    /// From an integer number of whole units.
    pub const fn from_int(v: i64) -> Dec {
        Dec(v * ONE)
    }

    /// Absolute value.
    pub fn abs(self) -> Dec {
        Dec(self.0.abs())
    }

    /// True when strictly positive.
    pub fn is_pos(self) -> bool {
        self.0 > 0
    }

    /// True when strictly negative.
    pub fn is_neg(self) -> bool {
        self.0 < 0
    }

    /// `self * other`, rounded half away from zero to 1e-8.
    pub fn times(self, other: Dec) -> Dec {
        Dec(sat(div_round(
            i128::from(self.0) * i128::from(other.0),
            i128::from(ONE),
        )))
    }

    /// `self / other`, rounded half away from zero to 1e-8; zero when `other` is zero.
    pub fn per(self, other: Dec) -> Dec {
        if other.0 == 0 {
            return Dec::ZERO;
        }
        Dec(sat(div_round(
            i128::from(self.0) * i128::from(ONE),
            i128::from(other.0),
        )))
    }

    /// Exact comparison of `self * other` with `bound` (no rounding).
    pub fn mul_cmp(self, other: Dec, bound: Dec) -> std::cmp::Ordering {
        (i128::from(self.0) * i128::from(other.0)).cmp(&(i128::from(bound.0) * i128::from(ONE)))
    }

    /// True when `self` is an exact multiple of `step` (a zero step accepts everything).
    pub fn is_multiple_of(self, step: Dec) -> bool {
        step.0 == 0 || self.0 % step.0 == 0
    }

    /// Formats with exactly `dp` decimals (rounding half away from zero), as Binance does
    /// for a symbol's quantity or price precision.
    pub fn to_dp(self, dp: u32) -> String {
        let dp = dp.min(SCALE);
        let unit = 10i64.pow(SCALE - dp);
        let v = div_round(i128::from(self.0), i128::from(unit)) as i64;
        let neg = v < 0;
        let a = v.unsigned_abs();
        let p = 10u64.pow(dp);
        let s = if dp == 0 {
            format!("{a}")
        } else {
            format!("{}.{:0width$}", a / p, a % p, width = dp as usize)
        };
        if neg {
            format!("-{s}")
        } else {
            s
        }
    }
}

/// Saturates to the `i64` range (results that large are nonsense either way).
fn sat(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

fn div_round(n: i128, d: i128) -> i128 {
    let q = n / d;
    let r = n % d;
    if 2 * r.abs() >= d.abs() {
        if (n < 0) != (d < 0) {
            q - 1
        } else {
            q + 1
        }
    } else {
        q
    }
}

impl std::ops::Add for Dec {
    type Output = Dec;
    fn add(self, o: Dec) -> Dec {
        Dec(self.0 + o.0)
    }
}

impl std::ops::Sub for Dec {
    type Output = Dec;
    fn sub(self, o: Dec) -> Dec {
        Dec(self.0 - o.0)
    }
}

impl std::ops::Neg for Dec {
    type Output = Dec;
    fn neg(self) -> Dec {
        Dec(-self.0)
    }
}

impl fmt::Display for Dec {
    /// Shortest exact form: `0.001`, `65000`, `-1.5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.to_dp(SCALE);
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        };
        f.write_str(if s == "-0" { "0" } else { &s })
    }
}

impl std::str::FromStr for Dec {
    type Err = DecError;
    fn from_str(s: &str) -> Result<Dec, DecError> {
        Dec::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_decimals_exactly() {
        assert_eq!(Dec::parse("0.001"), Ok(Dec(100_000)));
        assert_eq!(Dec::parse("1"), Ok(Dec(ONE)));
        assert_eq!(Dec::parse("-2.50"), Ok(Dec(-250_000_000)));
        assert_eq!(Dec::parse(".5"), Ok(Dec(50_000_000)));
        assert_eq!(Dec::parse("5."), Ok(Dec(5 * ONE)));
        assert_eq!(Dec::parse("0.100000000000"), Ok(Dec(10_000_000)));
    }

    #[test]
    fn refuses_exponents_and_junk() {
        for s in [
            "", ".", "1e-3", "1E3", "+1", " 1", "1,5", "abc", "1.2.3", "--1", "0x10",
        ] {
            assert_eq!(Dec::parse(s), Err(DecError::Malformed), "{s:?}");
        }
        assert_eq!(Dec::parse("0.01499999999999"), Err(DecError::TooPrecise));
        assert_eq!(Dec::parse("99999999999999999999"), Err(DecError::Overflow));
    }

    #[test]
    fn formats_and_multiplies() {
        assert_eq!(Dec::parse("0.01").unwrap().to_dp(3), "0.010");
        assert_eq!(Dec::parse("65000").unwrap().to_dp(2), "65000.00");
        assert_eq!(Dec::parse("-0.5").unwrap().to_dp(0), "-1");
        assert_eq!(Dec::ZERO.to_dp(3), "0.000");
        assert_eq!(Dec::parse("1.2300").unwrap().to_string(), "1.23");
        let q = Dec::parse("0.002").unwrap();
        let p = Dec::parse("65000").unwrap();
        assert_eq!(q.times(p), Dec::from_int(130));
        assert_eq!(q.mul_cmp(p, Dec::from_int(130)), std::cmp::Ordering::Equal);
        assert_eq!(
            Dec::from_int(3).per(Dec::from_int(2)),
            Dec::parse("1.5").unwrap()
        );
        assert!(Dec::parse("0.003")
            .unwrap()
            .is_multiple_of(Dec::parse("0.001").unwrap()));
        assert!(!Dec::parse("0.0015")
            .unwrap()
            .is_multiple_of(Dec::parse("0.001").unwrap()));
    }
}
