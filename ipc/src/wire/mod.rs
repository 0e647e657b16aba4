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
//! | tag | record | on rings (see [`crate::contract`]) |
//! |----:|--------|-------|
//! | 1 | [`Plan`] | ingress `plans`, `ctl` |
//! | 2 | [`GovPermit`] | ingress `plans`, `ctl` (legacy permits); event |
//! | 3 | [`P33Permit`] | ingress `plans`, `ctl` (legacy permits); event |
//! | 4 | [`PositionSnapshot`] | ingress `exchange`, `ctl`; event |
//! | 5 | [`Fill`] | event |
//! | 6 | [`OrderReport`] | ingress `exchange` |
//! | 7 | [`OrderIntent`] | egress `orders`; event |
//! | 8 | [`PlanResult`] | event |
//! | 9 | [`LedgerSet`] | ingress `plans`, `ctl`; event |
//! | 10 | [`Control`] | ingress `plans`, `ctl`; event |
//! | 11 | [`SymbolFilters`] | ingress `exchange`, `ctl`; event |
//! | 12 | [`Raw`] | tests and benchmarks |
//! | 13 | [`PlanAccepted`] | event |
//! | 14 | [`OrderSent`] | ingress `exchange`; event |
//! | 15 | [`OrderAccepted`] | event |
//! | 16 | [`OrderFailed`] | ingress `exchange` |
//! | 17 | [`OrderDone`] | event |
//! | 18 | [`OrderUnknown`] | event |
//! | 19 | [`OrderResolved`] | event |
//! | 20 | [`InputRefused`] | event |
//! | 21 | [`Reconciling`] | event |
//! | 22 | [`OrderHistory`] | ingress `exchange`, `ctl`; event |
//! | 23 | [`OrderRecovered`] | event |
//! | 24 | [`Leading`] | event; egress `orders` |
//! | 25 | [`LedgerWanted`] | event |
//! | 26 | [`LedgerBase`] | ingress `plans`, `ctl` |
//! | 27 | [`PlanSeen`] | event |
//! | 28 | [`Started`] | event |
//!
//! "Event" means: the core's engine emitted it; it goes on the `results` ring (and into the
//! journal) in the order the engine made it. Replaying the events rebuilds the core's state.
//! Enums and codes inside records are [`crate::codes`].
//!
//! [`LAYOUT_HASH`] changes whenever any record's fields, types, offsets or the format version
//! change; ring segments store it and refuse binaries that disagree.

mod error;
pub(crate) mod field;
pub(crate) mod layout;
mod records;

pub use crate::codes::{Action, Decision, OrderType, Side};
pub use error::{DecodeError, Invalid};
pub use records::*;

/// Bytes in one wire record.
pub const RECORD_SIZE: usize = 64;

/// One encoded wire record.
pub type Record = [u8; RECORD_SIZE];

/// Version of the wire and segment formats. Bump it for any change a layout hash cannot see
/// (e.g. a changed meaning of a field).
pub const FORMAT_VERSION: u32 = 2;

/// The most symbols a deployment may have (ids `0 .. 256`).
pub const MAX_SYMBOLS: u16 = 256;

/// Longest exchange symbol name, in bytes (a symbol id's label adds its position side).
pub const MAX_EXCHANGE_SYMBOL: usize = 16;

/// `Control::symbol` value meaning "every symbol".
pub const ALL_SYMBOLS: u16 = 0xFFFF;

/// `Plan::flags` bit 0: the plan may only reduce a position.
pub const PLAN_FLAG_REDUCE_ONLY: u8 = 1;

/// `Plan::flags` bits 1 and 2: the position side the plan names, as its
/// [`crate::codes::PositionSide`] code (1 `BOTH`, 2 `LONG`, 3 `SHORT`); 0 = none named (every
/// plan of a journal older than hedge mode). Read and written only through [`plan_side`] and
/// [`with_plan_side`].
pub const PLAN_FLAG_SIDE_MASK: u8 = 0b110;

/// The position side a plan's flags name, if any.
pub const fn plan_side(flags: u8) -> Option<crate::codes::PositionSide> {
    crate::codes::PositionSide::from_code((flags & PLAN_FLAG_SIDE_MASK) >> 1)
}

/// `flags` with the named position side set to `side`.
pub const fn with_plan_side(flags: u8, side: Option<crate::codes::PositionSide>) -> u8 {
    let code = match side {
        Some(s) => s.code(),
        None => 0,
    };
    (flags & !PLAN_FLAG_SIDE_MASK) | ((code << 1) & PLAN_FLAG_SIDE_MASK)
}

/// `OrderIntent::flags` bit 0: the intent is offered again (after a restart or an adapter's
/// re-attach) and its outcome is not known: the adapter must look the order up by client order
/// id before it may send anything.
pub const INTENT_FLAG_LOOKUP_FIRST: u8 = 1;

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
