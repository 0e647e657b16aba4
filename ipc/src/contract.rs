//! The process contract of one instance: its rings, their directions, who produces and who
//! consumes each, and which records each carries.
//!
//! The core daemon (`quantum run`) creates every ring as `/dev/shm/quantum.<instance>.<name>`
//! and takes its own side; adapters and `quantum ctl` attach to the other side. Every process
//! reads the names, shapes and kinds from here, never from its own copy.
//!
//! | ring | direction | shape | producer | consumer(s) | records |
//! |------|-----------|-------|----------|-------------|---------|
//! | `plans` | ingress | SPSC | Redis bridge | core | Plan, GovPermit, P33Permit, LedgerSet, Control, LedgerBase |
//! | `ctl` | ingress | SPSC | `quantum ctl inject` | core | the kinds of `plans` and of `exchange` |
//! | `exchange` | ingress | SPSC | Binance bridge | core | PositionSnapshot, SymbolFilters, OrderSent, OrderReport, OrderFailed, OrderHistory |
//! | `orders` | egress | SPSC | core | Binance bridge | OrderIntent, Leading |
//! | `results` | egress | broadcast | core | Redis bridge, `ctl tail`, any observer | every event ([`EVENT_KINDS`]) |
//!
//! `results` carries the engine's events in the order it made them, each at position
//! `seq - base_seq` of the ring, where `seq` is the event's sequence number in the journal. It
//! never waits for a reader: a reader that falls a lap behind is told how many events it
//! missed, and a reader that must see everything (the Redis bridge) reads those from the
//! journal by sequence number.
//!
//! A record of a kind its ring does not carry is invalid, counted and skipped like a record
//! that fails validation.

use crate::wire::Kind;

/// Which way a ring points, seen from the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Into the core.
    Ingress,
    /// Out of the core.
    Egress,
}

/// How many readers a ring has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One producer, one consumer ([`crate::ring`]).
    Spsc,
    /// One producer, any number of readers that never hold it back ([`crate::broadcast`]).
    Broadcast,
}

/// One ring of an instance.
#[derive(Debug, PartialEq, Eq)]
pub struct RingDef {
    /// Segment name within the instance.
    pub name: &'static str,
    /// Stable index (carried in `InputRefused::ring`, used for per-ring counters).
    pub index: u8,
    /// Direction.
    pub direction: Direction,
    /// Shape.
    pub shape: Shape,
    /// Who writes it.
    pub producer: &'static str,
    /// Who reads it.
    pub consumer: &'static str,
    /// The record kinds it carries.
    pub kinds: &'static [Kind],
}

impl RingDef {
    /// Whether this ring carries records of `kind`.
    pub fn carries(&self, kind: Kind) -> bool {
        self.kinds.contains(&kind)
    }
}

const OPERATOR_KINDS: &[Kind] = &[
    Kind::Plan,
    Kind::GovPermit,
    Kind::P33Permit,
    Kind::LedgerSet,
    Kind::Control,
    Kind::LedgerBase,
];

const EXCHANGE_KINDS: &[Kind] = &[
    Kind::PositionSnapshot,
    Kind::SymbolFilters,
    Kind::OrderSent,
    Kind::OrderReport,
    Kind::OrderFailed,
    Kind::OrderHistory,
    Kind::AccountMode,
    Kind::SymbolStatus,
];

const CTL_KINDS: &[Kind] = &[
    Kind::Plan,
    Kind::GovPermit,
    Kind::P33Permit,
    Kind::LedgerSet,
    Kind::Control,
    Kind::PositionSnapshot,
    Kind::SymbolFilters,
    Kind::OrderSent,
    Kind::OrderReport,
    Kind::OrderFailed,
    Kind::OrderHistory,
    Kind::LedgerBase,
    Kind::AccountMode,
    Kind::SymbolStatus,
];

/// The record kinds that are events of the engine (what `results` and the journal carry).
pub const EVENT_KINDS: &[Kind] = &[
    Kind::PlanAccepted,
    Kind::GovPermit,
    Kind::P33Permit,
    Kind::OrderIntent,
    Kind::PlanResult,
    Kind::OrderSent,
    Kind::OrderAccepted,
    Kind::Fill,
    Kind::OrderDone,
    Kind::OrderUnknown,
    Kind::OrderResolved,
    Kind::LedgerSet,
    Kind::PositionSnapshot,
    Kind::SymbolFilters,
    Kind::Control,
    Kind::InputRefused,
    Kind::Reconciling,
    Kind::OrderHistory,
    Kind::OrderRecovered,
    Kind::Leading,
    Kind::LedgerWanted,
    Kind::PlanSeen,
    Kind::Started,
    Kind::AccountMode,
    Kind::SymbolStatus,
];

/// Ingress: plans, legacy permits, ledger syncs and operator controls from the Redis bridge.
pub const PLANS: RingDef = RingDef {
    name: "plans",
    index: 0,
    direction: Direction::Ingress,
    shape: Shape::Spsc,
    producer: "quantum bridge redis",
    consumer: "quantum run",
    kinds: OPERATOR_KINDS,
};

/// Ingress: the operator's `quantum ctl inject`.
pub const CTL: RingDef = RingDef {
    name: "ctl",
    index: 1,
    direction: Direction::Ingress,
    shape: Shape::Spsc,
    producer: "quantum ctl inject",
    consumer: "quantum run",
    kinds: CTL_KINDS,
};

/// Ingress: exchange positions, filters and what happened to our orders (the Binance bridge).
pub const EXCHANGE: RingDef = RingDef {
    name: "exchange",
    index: 2,
    direction: Direction::Ingress,
    shape: Shape::Spsc,
    producer: "quantum bridge binance",
    consumer: "quantum run",
    kinds: EXCHANGE_KINDS,
};

/// Egress: order intents for the Binance bridge, and the core's request for the exchange's
/// order history when it takes the lead (failover).
pub const ORDERS: RingDef = RingDef {
    name: "orders",
    index: 3,
    direction: Direction::Egress,
    shape: Shape::Spsc,
    producer: "quantum run",
    consumer: "quantum bridge binance",
    kinds: &[Kind::OrderIntent, Kind::Leading],
};

/// Egress: every event of the engine, for the Redis bridge and observers.
pub const RESULTS: RingDef = RingDef {
    name: "results",
    index: 4,
    direction: Direction::Egress,
    shape: Shape::Broadcast,
    producer: "quantum run",
    consumer: "quantum bridge redis, quantum ctl tail, observers",
    kinds: EVENT_KINDS,
};

/// Every ring, by index.
pub const RINGS: [&RingDef; 5] = [&PLANS, &CTL, &EXCHANGE, &ORDERS, &RESULTS];

/// Ingress rings, in the order the core polls them.
pub const INGRESS: [&RingDef; 3] = [&PLANS, &CTL, &EXCHANGE];

/// Slots per SPSC ring unless configured.
pub const DEFAULT_CAPACITY: usize = 1 << 16;

/// Slots of the `results` ring unless configured: a lap is what an observer may fall behind
/// before it misses events.
pub const DEFAULT_RESULTS_CAPACITY: usize = 1 << 18;

/// The ring called `name`.
pub fn by_name(name: &str) -> Option<&'static RingDef> {
    RINGS.into_iter().find(|r| r.name == name)
}

/// The ring with index `index`.
pub fn by_index(index: u8) -> Option<&'static RingDef> {
    RINGS.get(usize::from(index)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_match_positions_and_kinds_per_ring() {
        for (i, r) in RINGS.iter().enumerate() {
            assert_eq!(usize::from(r.index), i);
            assert_eq!(by_name(r.name), Some(*r));
        }
        assert!(PLANS.carries(Kind::Plan) && !PLANS.carries(Kind::OrderReport));
        assert!(EXCHANGE.carries(Kind::OrderReport) && !EXCHANGE.carries(Kind::Plan));
        assert!(EXCHANGE.carries(Kind::OrderHistory) && CTL.carries(Kind::OrderHistory));
        assert!(CTL.carries(Kind::PositionSnapshot) && !CTL.carries(Kind::OrderIntent));
        assert!(!CTL.carries(Kind::Raw));
        assert!(ORDERS.carries(Kind::OrderIntent) && !ORDERS.carries(Kind::Plan));
        for k in EVENT_KINDS {
            assert!(RESULTS.carries(*k));
        }
        assert!(!RESULTS.carries(Kind::OrderFailed) && !RESULTS.carries(Kind::Plan));
    }
}
