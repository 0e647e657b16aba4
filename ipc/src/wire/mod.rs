//! Wire records: fixed-size 64-byte messages exchanged over the rings.
//!
//! Each record is a plain `#[repr(C)]` Rust struct with typed fields, and an explicit wire form:
//! `[u8; 64]`, byte 0 the tag, little-endian fields at the fixed offsets listed in
//! `records.rs`, every other byte reserved and zero. Bytes from a ring are never transmuted;
//! [`Message::decode`] reads them field by field and validates everything:
//!
//! - the tag, every enum byte and every bool byte (0 or 1);
//! - every reserved byte is zero (so `encode(decode(b)) == b` for every accepted `b`);
//! - symbol ids are `< Limits::symbols` (at most [`MAX_SYMBOLS`]);
//! - quantities are in `0 ..= MAX_QTY` (or `1 ..= MAX_QTY` where a zero makes no sense),
//!   signed amounts in `-MAX_QTY ..= MAX_QTY`, prices in `1 ..= MAX_PRICE`.
//!
//! An invalid record is a [`DecodeError`] saying what was wrong and where; decoding never
//! panics. Quantities and prices are `i64` fixed point in 1e-8 units; times are `u64` ms or ns as
//! each field's name says.
//!
//! | tag | record |
//! |----:|--------|
//! | 1 | [`Plan`] |
//! | 2 | [`GovPermit`] |
//! | 3 | [`P33Permit`] |
//! | 4 | [`PositionSnapshot`] |
//! | 5 | [`Fill`] |
//! | 6 | [`Reject`] |
//! | 7 | [`OrderIntent`] |
//! | 8 | [`PlanResult`] |
//! | 9 | [`LedgerSet`] |
//! | 10 | [`Control`] |
//! | 11 | [`SymbolFilters`] |
//! | 12 | [`Raw`] (tests and benchmarks) |
//!
//! [`LAYOUT_HASH`] changes whenever any record's fields, types, offsets or the format version
//! change; ring segments store it and refuse binaries that disagree.

mod error;
pub(crate) mod field;
mod layout;
mod records;

pub use error::{DecodeError, Invalid};
pub use records::*;

/// Bytes in one wire record.
pub const RECORD_SIZE: usize = 64;

/// One encoded wire record.
pub type Record = [u8; RECORD_SIZE];

/// Version of the wire and segment formats. Bump it for any change a layout hash cannot see
/// (e.g. a changed meaning of a field).
pub const FORMAT_VERSION: u32 = 1;

/// The most symbols a deployment may have (ids `0 .. 256`).
pub const MAX_SYMBOLS: u16 = 256;

/// `Control::symbol` value meaning "every symbol".
pub const ALL_SYMBOLS: u16 = 0xFFFF;

/// `Plan::flags` bit 0: the plan may only reduce a position.
pub const PLAN_FLAG_REDUCE_ONLY: u8 = 1;

/// Largest accepted quantity: 1e18 raw = 1e10 whole units. Ten billion units covers
/// low-priced tokens traded in billions, and leaves `i64` headroom for sums of a few positions.
pub const MAX_QTY: i64 = 1_000_000_000_000_000_000;

/// Largest accepted price: 1e17 raw = 1e9 per unit.
pub const MAX_PRICE: i64 = 100_000_000_000_000_000;

/// What the reader of a ring accepts; passed to every decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    symbols: u16,
}

impl Limits {
    /// Accept symbol ids `0 .. symbols`; `symbols` is capped at [`MAX_SYMBOLS`].
    pub fn new(symbols: u16) -> Limits {
        Limits {
            symbols: symbols.min(MAX_SYMBOLS),
        }
    }

    /// Number of valid symbol ids.
    pub fn symbols(&self) -> u16 {
        self.symbols
    }
}

impl Default for Limits {
    /// Every id up to [`MAX_SYMBOLS`].
    fn default() -> Limits {
        Limits::new(MAX_SYMBOLS)
    }
}

#[cfg(test)]
mod tests;
