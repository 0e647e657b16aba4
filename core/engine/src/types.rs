//! Domain types of the permit chain: plan ids, symbols, plans, client order ids and order
//! intents. All are `Copy` and fixed-size so they move through queues without allocation.
//!
//! [`Side`], [`Decision`] and [`Action`] cross process boundaries, so their one definition is
//! the process contract's (`quantum_ipc::codes`); they are re-exported here.

use std::fmt;
use std::str::FromStr;

use crate::fixed::{Qty, Score};
pub use quantum_ipc::codes::{Action, Decision, PositionSide, Side};

/// The legacy plan id: exactly 16 lowercase hex digits (`f1a8d7f48713d5cf`), held as a `u64`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PlanId(pub u64);

/// Why a plan id string was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanIdError {
    /// Not exactly 16 characters long.
    Length(usize),
    /// A character other than `0-9a-f` at this byte offset.
    NotHex(usize),
}

impl fmt::Display for PlanIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanIdError::Length(n) => {
                write!(f, "plan id must be 16 hex digits, got {n} characters")
            }
            PlanIdError::NotHex(at) => {
                write!(
                    f,
                    "plan id must be lowercase hex digits, bad character at {at}"
                )
            }
        }
    }
}

impl std::error::Error for PlanIdError {}

impl FromStr for PlanId {
    type Err = PlanIdError;
    fn from_str(s: &str) -> Result<Self, PlanIdError> {
        if s.len() != 16 {
            return Err(PlanIdError::Length(s.chars().count()));
        }
        let mut v = 0u64;
        for (i, c) in s.bytes().enumerate() {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                _ => return Err(PlanIdError::NotHex(i)),
            };
            v = (v << 4) | u64::from(d);
        }
        Ok(PlanId(v))
    }
}

impl fmt::Display for PlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for PlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlanId({self})")
    }
}

/// Maximum number of symbols one engine interns.
pub const MAX_SYMBOLS: usize = 256;

/// A symbol interned at start-up: an index into the engine's symbol table.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct SymbolId(pub u16);

impl SymbolId {
    /// The index into per-symbol arrays.
    #[inline]
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Symbol names interned once at start; lookups by name are for the edges (parsing), never for
/// the hot path, which carries [`SymbolId`]s.
#[derive(Clone, Debug, Default)]
pub struct Symbols {
    names: Vec<String>,
}

impl Symbols {
    /// Interns `names` in order; ids are their positions. A name is a leg's label
    /// ([`PositionSide::label`]: `BTCUSDT`, or `BTCUSDT:LONG` and `BTCUSDT:SHORT` for a
    /// hedge-mode symbol). Refuses duplicates and more than [`MAX_SYMBOLS`] names.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Result<Self, String> {
        let mut out = Symbols::default();
        for n in names {
            let n = n.into();
            let (symbol, _) = PositionSide::split_label(&n);
            if symbol.is_empty()
                || symbol.len() > quantum_ipc::wire::MAX_EXCHANGE_SYMBOL
                || !symbol.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(format!(
                    "symbol {symbol:?} must be 1 to {} ASCII letters or digits",
                    quantum_ipc::wire::MAX_EXCHANGE_SYMBOL
                ));
            }
            if out.id(&n).is_some() {
                return Err(format!("symbol {n} is listed twice"));
            }
            if out.names.len() == MAX_SYMBOLS {
                return Err(format!("more than {MAX_SYMBOLS} symbols"));
            }
            out.names.push(n);
        }
        Ok(out)
    }

    /// The id of `name`, if interned.
    pub fn id(&self, name: &str) -> Option<SymbolId> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| SymbolId(i as u16))
    }

    /// The exchange symbol and position side of leg `id`.
    pub fn leg(&self, id: SymbolId) -> Option<(&str, PositionSide)> {
        self.names
            .get(id.index())
            .map(|n| PositionSide::split_label(n))
    }

    /// The name (label) of `id`; `"?"` for an id this table never handed out.
    pub fn name(&self, id: SymbolId) -> &str {
        self.names.get(id.index()).map_or("?", String::as_str)
    }

    /// Number of interned symbols.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when no symbol is interned.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// All names in id order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }
}

/// One plan from the exit brain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Legacy id.
    pub id: PlanId,
    /// Interned symbol.
    pub symbol: SymbolId,
    /// What the exit brain decided.
    pub decision: Decision,
    /// What the order does to the position.
    pub action: Action,
    /// The exit brain's kill score.
    pub kill_score: Score,
    /// When the exit brain made the plan, ms since the Unix epoch (0 when unknown).
    pub created_at_ms: u64,
    /// True for exits (every plan of the exit brain). An opening plan (false) is subject to
    /// the governor's exposure checks and carries its own `qty`.
    pub reduce_only: bool,
    /// Requested quantity of an opening plan; zero for exits (P3.3 sizes those).
    pub qty: Qty,
    /// The position side the plan names (`position_side`): `LONG` or `SHORT` for a leg of a
    /// hedge-mode symbol, `BOTH` or none for a one-way symbol. P3.3 denies a plan whose side
    /// is not its symbol id's leg ([`crate::book::BookView::account_gate`]).
    pub position_side: Option<PositionSide>,
}

impl Plan {
    /// An exit plan with the defaults of the exit brain.
    pub fn exit(id: PlanId, symbol: SymbolId, decision: Decision, action: Action) -> Self {
        Plan {
            id,
            symbol,
            decision,
            action,
            kill_score: Score::ZERO,
            created_at_ms: 0,
            reduce_only: true,
            qty: Qty::ZERO,
            position_side: None,
        }
    }
}

/// `newClientOrderId` derived from the plan id: `qpc-<16 hex>`, 20 characters matching Binance's
/// `^[\.A-Z\:/a-z0-9_-]{1,36}$`. The same plan always maps to the same id, so an uncertain
/// outcome can be looked up by client id before anything is retried.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientOrderId([u8; 20]);

impl ClientOrderId {
    /// The prefix every id of this system carries.
    pub const PREFIX: &'static str = "qpc-";

    /// Derives the id of `plan`.
    pub fn for_plan(plan: PlanId) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut b = [0u8; 20];
        b[..4].copy_from_slice(Self::PREFIX.as_bytes());
        for i in 0..16 {
            let nib = (plan.0 >> (60 - 4 * i)) & 0xf;
            b[4 + i] = HEX[nib as usize];
        }
        ClientOrderId(b)
    }

    /// Recovers the plan id from an id of this system.
    pub fn plan(s: &str) -> Option<PlanId> {
        s.strip_prefix(Self::PREFIX)?.parse().ok()
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Built only from ASCII in `for_plan`.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl fmt::Display for ClientOrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ClientOrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientOrderId({})", self.as_str())
    }
}

/// An order the core hands to the exchange adapter: always MARKET and reduce-only. Its
/// `newClientOrderId` is derived from the plan ([`OrderIntent::client_order_id`]), not stored,
/// so the hot path does not format it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderIntent {
    /// The plan this order executes.
    pub plan: PlanId,
    /// Symbol.
    pub symbol: SymbolId,
    /// Closing side, opposite to the position.
    pub side: Side,
    /// P3.3's safe quantity, on the symbol's lot grid.
    pub qty: Qty,
    /// Always true for exits.
    pub reduce_only: bool,
    /// Engine clock when the plan entered the engine (ns).
    pub t_in_ns: u64,
    /// Engine clock when this intent was made (ns).
    pub t_out_ns: u64,
    /// Wall clock when the permits were consumed (ms since the Unix epoch).
    pub at_ms: u64,
    /// Offered again with its outcome unknown (after a restart or an adapter's re-attach): the
    /// adapter must look the order up by client order id before sending anything.
    pub lookup_first: bool,
    /// Moments inside the chain, for a sample of plans (live latency per stage). Not part of
    /// the order: never on the wire nor in the journal, and cleared wherever an intent is kept.
    pub marks: StageMarks,
}

/// When a sampled plan's governor verdict, P3.3 verdict and apply's consume started, in ns
/// after the plan entered the engine (`t_in_ns`); all zero for a plan not sampled.
///
/// With the permits computed on the engine's thread (single mode) the verdict moments are
/// clock reads right after each verdict; with separate permit threads they are the permits'
/// own issue times. Offsets of 32 bits cover 4.29 s, beyond any apply wait (saturated).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageMarks {
    /// Governor verdict made.
    pub gov_ns: u32,
    /// P3.3 verdict made.
    pub p33_ns: u32,
    /// Apply found both permits and starts consuming them.
    pub ready_ns: u32,
}

impl StageMarks {
    /// The offset of engine time `at` after `t_in` (at least 1, so a sampled mark is never 0).
    #[inline]
    pub fn offset(t_in: u64, at: u64) -> u32 {
        u32::try_from(at.saturating_sub(t_in))
            .unwrap_or(u32::MAX)
            .max(1)
    }

    /// True when this plan was sampled.
    pub fn is_sampled(&self) -> bool {
        self.ready_ns != 0
    }
}

impl OrderIntent {
    /// The intent as the order is kept (orders in flight, the journal's state): without the
    /// latency sample, which belongs to the moment it was made.
    pub fn kept(&self) -> OrderIntent {
        OrderIntent {
            marks: StageMarks::default(),
            ..*self
        }
    }

    /// `newClientOrderId` of this order: `qpc-<plan id>`.
    pub fn client_order_id(&self) -> ClientOrderId {
        ClientOrderId::for_plan(self.plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_ids_parse_strictly() {
        let id: PlanId = "f1a8d7f48713d5cf".parse().unwrap();
        assert_eq!(id.0, 0xf1a8_d7f4_8713_d5cf);
        assert_eq!(id.to_string(), "f1a8d7f48713d5cf");
        assert_eq!(
            "84222f2c53d22b9".parse::<PlanId>(),
            Err(PlanIdError::Length(15))
        );
        assert_eq!(
            "F1A8D7F48713D5CF".parse::<PlanId>(),
            Err(PlanIdError::NotHex(0))
        );
        assert_eq!(
            "f1a8d7f48713d5cg".parse::<PlanId>(),
            Err(PlanIdError::NotHex(15))
        );
        assert_eq!("0000000000000001".parse::<PlanId>(), Ok(PlanId(1)));
    }

    #[test]
    fn client_order_ids_match_binance_pattern() {
        let id = ClientOrderId::for_plan(PlanId(0xf1a8_d7f4_8713_d5cf));
        assert_eq!(id.as_str(), "qpc-f1a8d7f48713d5cf");
        assert!(id.as_str().len() <= 36);
        assert!(id
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:/-".contains(&b)));
        assert_eq!(
            ClientOrderId::plan(id.as_str()),
            Some(PlanId(0xf1a8_d7f4_8713_d5cf))
        );
    }

    #[test]
    fn enums_round_trip_their_legacy_spelling() {
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>(), Ok(*a));
        }
        for d in Decision::ALL {
            assert_eq!(d.as_str().parse::<Decision>(), Ok(*d));
        }
        assert!("PARTIAL_33"
            .parse::<Action>()
            .unwrap_err()
            .contains("PARTIAL_25"));
        assert_eq!(Action::Partial75.percent(), 75);
    }
}
