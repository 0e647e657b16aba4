//! The rings of one `quantum run` instance: names, directions and the record kinds each carries.
//!
//! The daemon creates every ring as `/dev/shm/quantum.<instance>.<ring>` with 64-byte slots
//! (one [`quantum_ipc::wire`] record each) and the configured capacity (`rings.capacity`), and
//! takes the side that is its own: consumer of the ingress rings, producer of the egress rings.
//! Adapters open them with `Ring::open(&RingSpec::new(instance, NAME, 0))` and claim the other
//! side. Each ring has exactly one producer and one consumer at a time (SPSC); a peer that dies
//! is replaced by the next one that claims the role.
//!
//! | ring | direction | producer | consumer | record kinds |
//! |------|-----------|----------|----------|--------------|
//! | [`PLANS`] | ingress | the Redis bridge | core | Plan, GovPermit, P33Permit, LedgerSet, Control |
//! | [`CTL`] | ingress | `quantum ctl inject` | core | the kinds of `plans` and of `exchange` |
//! | [`EXCHANGE`] | ingress | `quantum bridge binance` | core | PositionSnapshot, Fill, Reject, SymbolFilters |
//! | [`ORDERS`] | egress | core | `quantum bridge binance` | OrderIntent |
//! | [`RESULTS`] | egress | core | Redis bridge or `quantum ctl tail` | PlanResult, GovPermit, P33Permit, PositionSnapshot, LedgerSet |
//!
//! Order on `results`: for every EXECUTE plan that reached the permit stage, the permits its
//! result shows ([`super::convert::permits_out`]: `GovPermit`, then `P33Permit`, each only when
//! known), then its `PlanResult`; every other plan, its `PlanResult` alone. Whenever the daemon
//! hands the engine a position snapshot, or a fill, a `PositionSnapshot` (exchange amount, mark,
//! time of the change) then a `LedgerSet` (the ledger amount after it) mirror the book
//! ([`super::positions`]); on `results` a `LedgerSet` reports the core's ledger amount, it is
//! not a command. A future Redis bridge mirrors them to `quantum:permit:<id>`,
//! `quantum:permit:p33:<id>` and `quantum:position:<SYMBOL>`.
//!
//! A record of a kind its ring does not carry is counted as invalid (`invalid_records.<ring>`)
//! and skipped, like a record that fails validation.
//!
//! Egress policy: `orders` never drops an intent; while the ring is full the daemon holds the
//! intent, stops taking results from the engine (which then back-pressures its own input) and
//! retries, counting `orders_ring_full` once per intent that had to wait. `results` backs off the
//! same way while its consumer is alive (recent heartbeat); when no live consumer is attached
//! (never attached, detached, dead, or its heartbeat is older than `rings.peer_timeout_ms`) a
//! record that finds the ring full is not published and is counted (`results_unobserved` for a
//! result, `results_permits_unobserved` / `results_positions_unobserved` for the mirrored
//! records), so a missing observer never stalls the engine.
//!
//! The symbol ids used in every record are the daemon's: the order of `[[symbols]]` in its
//! configuration, published in the counters segment (`quantum.<instance>.counters`) directory.

use quantum_ipc::wire::Kind;

/// Ingress: plans, legacy permits, ledger syncs and operator controls (the Redis bridge).
pub const PLANS: &str = "plans";
/// Ingress: the operator's `quantum ctl inject`.
pub const CTL: &str = "ctl";
/// Ingress: exchange positions, fills, rejects and filters (the Binance bridge).
pub const EXCHANGE: &str = "exchange";
/// Egress: order intents (the Binance bridge).
pub const ORDERS: &str = "orders";
/// Egress: one plan result per plan, the permits before it, and the book's position records
/// (the Redis bridge or `quantum ctl tail`).
pub const RESULTS: &str = "results";

/// Ingress rings, in the order the daemon polls them.
pub const INGRESS: [&str; 3] = [PLANS, CTL, EXCHANGE];
/// Egress rings.
pub const EGRESS: [&str; 2] = [ORDERS, RESULTS];

/// Default slots per ring.
pub const DEFAULT_CAPACITY: usize = 1 << 16;

const PLAN_KINDS: &[Kind] = &[
    Kind::Plan,
    Kind::GovPermit,
    Kind::P33Permit,
    Kind::LedgerSet,
    Kind::Control,
];
const EXCHANGE_KINDS: &[Kind] = &[
    Kind::PositionSnapshot,
    Kind::Fill,
    Kind::Reject,
    Kind::SymbolFilters,
];

/// Whether the ingress ring `ring` carries records of `kind`.
pub fn accepts(ring: &str, kind: Kind) -> bool {
    match ring {
        PLANS => PLAN_KINDS.contains(&kind),
        EXCHANGE => EXCHANGE_KINDS.contains(&kind),
        CTL => PLAN_KINDS.contains(&kind) || EXCHANGE_KINDS.contains(&kind),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_per_ring() {
        assert!(accepts(PLANS, Kind::Plan));
        assert!(!accepts(PLANS, Kind::Fill));
        assert!(accepts(EXCHANGE, Kind::Fill));
        assert!(!accepts(EXCHANGE, Kind::Plan));
        assert!(accepts(CTL, Kind::PositionSnapshot));
        assert!(!accepts(CTL, Kind::OrderIntent));
        assert!(!accepts(CTL, Kind::Raw));
        assert!(!accepts(ORDERS, Kind::OrderIntent));
    }
}
