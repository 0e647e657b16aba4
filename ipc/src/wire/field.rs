//! How one field is written to and read from a record, and the value checks decoding applies.
//!
//! Fields are little-endian at fixed offsets. Reading never panics: every offset is checked at
//! compile time (`records!` asserts that fields fit, are aligned and do not overlap).

use super::{Invalid, Limits, Record, MAX_QTY};

/// A value that has a fixed-size little-endian wire form.
pub(crate) trait WireField: Sized + Copy {
    /// Bytes on the wire.
    const SIZE: usize;
    /// Required alignment of the offset inside the record.
    const ALIGN: usize;
    /// Writes the value at `off`.
    fn put(&self, b: &mut Record, off: usize);
    /// Reads the value at `off`, rejecting byte patterns that are not a value of the type.
    fn get(b: &Record, off: usize) -> Result<Self, Invalid>;
    /// A value built from random bits (for tests, fuzz seeds and benches).
    fn sample(raw: u64) -> Self;
}

fn bytes<const N: usize>(b: &Record, off: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[off..off + N]);
    a
}

macro_rules! int_field {
    ($($t:ty),*) => {$(
        impl WireField for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            const ALIGN: usize = std::mem::size_of::<$t>();
            fn put(&self, b: &mut Record, off: usize) {
                b[off..off + Self::SIZE].copy_from_slice(&self.to_le_bytes());
            }
            fn get(b: &Record, off: usize) -> Result<Self, Invalid> {
                Ok(<$t>::from_le_bytes(bytes(b, off)))
            }
            fn sample(raw: u64) -> Self {
                raw as $t
            }
        }
    )*};
}
int_field!(u8, u16, u32, u64, i32, i64);

impl WireField for bool {
    const SIZE: usize = 1;
    const ALIGN: usize = 1;
    fn put(&self, b: &mut Record, off: usize) {
        b[off] = u8::from(*self);
    }
    fn get(b: &Record, off: usize) -> Result<Self, Invalid> {
        match b[off] {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(Invalid::BoolByte { value }),
        }
    }
    fn sample(raw: u64) -> Self {
        raw & 1 == 1
    }
}

impl<const N: usize> WireField for [u64; N] {
    const SIZE: usize = 8 * N;
    const ALIGN: usize = 8;
    fn put(&self, b: &mut Record, off: usize) {
        for (i, w) in self.iter().enumerate() {
            w.put(b, off + 8 * i);
        }
    }
    fn get(b: &Record, off: usize) -> Result<Self, Invalid> {
        let mut out = [0u64; N];
        for (i, w) in out.iter_mut().enumerate() {
            *w = u64::from_le_bytes(bytes(b, off + 8 * i));
        }
        Ok(out)
    }
    fn sample(raw: u64) -> Self {
        let mut out = [0u64; N];
        let mut x = raw;
        for w in &mut out {
            x = splitmix(x);
            *w = x;
        }
        out
    }
}

/// A cheap deterministic mixer for samples (SplitMix64).
pub(crate) fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Value checks applied after a field is read. Each name is used in the `records!` table.
pub(crate) mod check {
    use super::*;

    pub(crate) fn any<T>(_: &T, _: &Limits) -> Result<(), Invalid> {
        Ok(())
    }

    fn range(value: i64, min: i64, max: i64) -> Result<(), Invalid> {
        if (min..=max).contains(&value) {
            Ok(())
        } else {
            Err(Invalid::OutOfRange { value, min, max })
        }
    }

    pub(crate) fn symbol(v: &u16, l: &Limits) -> Result<(), Invalid> {
        if *v < l.symbols() {
            Ok(())
        } else {
            Err(Invalid::SymbolOutOfRange {
                symbol: *v,
                limit: l.symbols(),
            })
        }
    }

    pub(crate) fn symbol_or_all(v: &u16, l: &Limits) -> Result<(), Invalid> {
        if *v == super::super::ALL_SYMBOLS {
            Ok(())
        } else {
            symbol(v, l)
        }
    }

    pub(crate) fn qty(v: &i64, _: &Limits) -> Result<(), Invalid> {
        range(*v, 0, MAX_QTY)
    }

    pub(crate) fn qty_pos(v: &i64, _: &Limits) -> Result<(), Invalid> {
        range(*v, 1, MAX_QTY)
    }

    pub(crate) fn amount(v: &i64, _: &Limits) -> Result<(), Invalid> {
        range(*v, -MAX_QTY, MAX_QTY)
    }

    fn flags(value: u8, allowed: u8) -> Result<(), Invalid> {
        if value & !allowed == 0 {
            Ok(())
        } else {
            Err(Invalid::UnknownFlags { value, allowed })
        }
    }

    pub(crate) fn plan_flags(v: &u8, _: &Limits) -> Result<(), Invalid> {
        flags(
            *v,
            super::super::PLAN_FLAG_REDUCE_ONLY | super::super::PLAN_FLAG_SIDE_MASK,
        )
    }

    pub(crate) fn intent_flags(v: &u8, _: &Limits) -> Result<(), Invalid> {
        flags(*v, super::super::INTENT_FLAG_LOOKUP_FIRST)
    }
}

/// Valid samples, one generator per check in [`check`].
pub(crate) mod sample {
    use super::*;

    pub(crate) fn any<T: WireField>(r: u64, _: &Limits) -> T {
        T::sample(r)
    }
    pub(crate) fn symbol(r: u64, l: &Limits) -> u16 {
        (r % u64::from(l.symbols())) as u16
    }
    pub(crate) fn symbol_or_all(r: u64, l: &Limits) -> u16 {
        if r % 8 == 0 {
            super::super::ALL_SYMBOLS
        } else {
            symbol(r >> 3, l)
        }
    }
    pub(crate) fn qty(r: u64, _: &Limits) -> i64 {
        (r % (MAX_QTY as u64 + 1)) as i64
    }
    pub(crate) fn qty_pos(r: u64, _: &Limits) -> i64 {
        (r % MAX_QTY as u64) as i64 + 1
    }
    pub(crate) fn amount(r: u64, l: &Limits) -> i64 {
        let q = qty(r >> 1, l);
        if r & 1 == 1 {
            -q
        } else {
            q
        }
    }
    pub(crate) fn plan_flags(r: u64, _: &Limits) -> u8 {
        (r as u8) & (super::super::PLAN_FLAG_REDUCE_ONLY | super::super::PLAN_FLAG_SIDE_MASK)
    }
    pub(crate) fn intent_flags(r: u64, _: &Limits) -> u8 {
        (r as u8) & super::super::INTENT_FLAG_LOOKUP_FIRST
    }
}

/// Declares a code enum shared by every process: its number on the wire, its text in logs and
/// the legacy contract, `FromStr`/`Display`, and the wire forms of `T` and `Option<T>`
/// (`None` is `0`, so no variant may be `0`).
///
/// ```text
/// wire_enum! { /// doc
///     Name: u8 { /// doc
///         Variant = 1 => "text", ... } }
/// ```
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident : $repr:ty {
        $($(#[$vmeta:meta])* $variant:ident = $value:literal => $text:literal),* $(,)?
    }) => {
        $(#[$meta])*
        #[repr($repr)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $value),*
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The number this value has on the wire.
            pub const fn code(self) -> $repr {
                self as $repr
            }

            /// The value with this wire number, if any.
            pub const fn from_code(code: $repr) -> Option<$name> {
                match code {
                    $($value => Some($name::$variant),)*
                    _ => None,
                }
            }

            /// Its spelling in logs, counters and the legacy contract.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The value spelled `text`, if any.
            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        const _: () = {
            $(assert!($value != 0, "wire code 0 is reserved for `None`");)*
        };

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $name::parse(s).ok_or_else(|| {
                    format!(
                        concat!("unknown ", stringify!($name), " {:?} (expected one of {})"),
                        s,
                        [$($text),*].join(", ")
                    )
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::wire::field::WireField for $name {
            const SIZE: usize = std::mem::size_of::<$repr>();
            const ALIGN: usize = std::mem::size_of::<$repr>();
            fn put(&self, b: &mut $crate::wire::Record, off: usize) {
                b[off..off + Self::SIZE].copy_from_slice(&self.code().to_le_bytes());
            }
            fn get(
                b: &$crate::wire::Record,
                off: usize,
            ) -> Result<Self, $crate::wire::Invalid> {
                let raw = <$repr as $crate::wire::field::WireField>::get(b, off)?;
                $name::from_code(raw).ok_or($crate::wire::Invalid::UnknownCode { value: raw as u64 })
            }
            fn sample(raw: u64) -> Self {
                Self::ALL[(raw % Self::ALL.len() as u64) as usize]
            }
        }

        impl $crate::wire::field::WireField for Option<$name> {
            const SIZE: usize = std::mem::size_of::<$repr>();
            const ALIGN: usize = std::mem::size_of::<$repr>();
            fn put(&self, b: &mut $crate::wire::Record, off: usize) {
                let raw: $repr = self.map_or(0, $name::code);
                b[off..off + Self::SIZE].copy_from_slice(&raw.to_le_bytes());
            }
            fn get(
                b: &$crate::wire::Record,
                off: usize,
            ) -> Result<Self, $crate::wire::Invalid> {
                let raw = <$repr as $crate::wire::field::WireField>::get(b, off)?;
                if raw == 0 {
                    return Ok(None);
                }
                $name::from_code(raw)
                    .map(Some)
                    .ok_or($crate::wire::Invalid::UnknownCode { value: raw as u64 })
            }
            fn sample(raw: u64) -> Self {
                let n = $name::ALL.len() as u64 + 1;
                match (raw % n) as usize {
                    0 => None,
                    i => Some($name::ALL[i - 1]),
                }
            }
        }
    };
}
pub(crate) use wire_enum;
