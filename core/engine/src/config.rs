//! Engine configuration and the built-in symbol specs.

use crate::book::{Filters, LotFilter};
use crate::fixed::{Price, Qty};
use crate::governor::{GovernorConfig, MAX_RATE_LIMIT};
use crate::p33::P33Config;
use crate::types::PositionSide;

/// One symbol id (a leg): name, position side, reconcile tolerance and exchange filters (until
/// exchangeInfo updates them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolSpec {
    /// Exchange symbol, e.g. `BTCUSDT`.
    pub name: String,
    /// `|exchange - ledger|` above this denies with `reconcile_required_qty_mismatch`.
    pub tolerance: Qty,
    /// LOT_SIZE, MARKET_LOT_SIZE, MIN_NOTIONAL.
    pub filters: Filters,
    /// The position this leg holds: `BOTH` (a one-way symbol), or `LONG` / `SHORT` (one of a
    /// hedge-mode symbol's two legs, each its own symbol id).
    pub side: PositionSide,
}

fn q(s: &str) -> Qty {
    s.parse().expect("built-in decimal")
}

impl SymbolSpec {
    /// A spec with the same LOT_SIZE and MARKET_LOT_SIZE grid.
    pub fn new(
        name: &str,
        tolerance: &str,
        min: &str,
        max: &str,
        step: &str,
        notional: &str,
    ) -> Self {
        let lot = LotFilter {
            min: q(min),
            max: q(max),
            step: q(step),
        };
        SymbolSpec {
            name: name.to_string(),
            tolerance: q(tolerance),
            filters: Filters {
                lot,
                market_lot: lot,
                min_notional: Price::from_units(q(notional).units()),
            },
            side: PositionSide::Both,
        }
    }

    /// This spec's leg on `side`.
    pub fn on_side(&self, side: PositionSide) -> Self {
        SymbolSpec {
            side,
            ..self.clone()
        }
    }

    /// The leg's label, the name its symbol id is interned under ([`PositionSide::label`]).
    pub fn label(&self) -> String {
        self.side.label(&self.name)
    }

    /// BTCUSDT, ETHUSDT and SOLUSDT with USD-M futures' published grids; BTCUSDT's tolerance is
    /// the legacy 0.001, the others one lot step.
    pub fn defaults() -> Vec<SymbolSpec> {
        let mut btc = SymbolSpec::new("BTCUSDT", "0.001", "0.001", "1000", "0.001", "100");
        btc.filters.market_lot.max = q("120");
        let mut eth = SymbolSpec::new("ETHUSDT", "0.001", "0.001", "10000", "0.001", "20");
        eth.filters.market_lot.max = q("2000");
        let mut sol = SymbolSpec::new("SOLUSDT", "1", "1", "1000000", "1", "5");
        sol.filters.market_lot.max = q("5000");
        vec![btc, eth, sol]
    }
}

/// Everything the engine needs at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Permit table slots: the most plans in flight at once.
    pub table_capacity: usize,
    /// How long dedupe remembers an EXECUTE plan's id (legacy re-deliveries come within
    /// seconds; 24 h by default). An id younger than this is never forgotten.
    pub dedupe_horizon_ms: u64,
    /// EXECUTE plans older than this (from the planner's own time) are blocked `plan_stale`
    /// and never ordered: a re-delivery or replay of an old decision must not become an
    /// order. Longer than the legacy re-delivery cycle (about a minute), and never longer
    /// than the dedupe horizon, so a plan young enough to execute is always one dedupe
    /// remembers.
    pub max_plan_age_ms: u64,
    /// Most EXECUTE plan ids remembered at once: size it as the horizon times the highest
    /// sustained EXECUTE rate. When it is full of ids younger than the horizon, new plans are
    /// blocked `dedupe_full`. At least `table_capacity`.
    pub dedupe_capacity: usize,
    /// Most orders in flight (sent, outcome or fills not yet known) at once; a plan that would
    /// need one more is blocked `orders_full`.
    pub max_orders: usize,
    /// Who issues the permits: the core's own governor and P3.3, or legacy services outside
    /// (through the Redis bridge), the core then replacing the Apply layer alone.
    pub permits: PermitSource,
    /// Legacy `APPLY_PERMIT_WAIT_MS`: how long apply waits for both permits.
    pub apply_wait_ms: u64,
    /// Legacy `APPLY_PERMIT_STEP_MS`: the longest single idle step while waiting (not a sleep
    /// per check: the runner spins, yields, then parks for at most this long).
    pub apply_step_ms: u64,
    /// Governor.
    pub governor: GovernorConfig,
    /// P3.3.
    pub p33: P33Config,
    /// Symbols, interned in this order.
    pub symbols: Vec<SymbolSpec>,
}

/// Who issues the permits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PermitSource {
    /// The core's governor and P3.3 (outside permits are refused).
    #[default]
    Core,
    /// Legacy services outside; the core's own governor and P3.3 issue nothing.
    External,
}

impl std::str::FromStr for PermitSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "core" => Ok(PermitSource::Core),
            "external" | "redis" => Ok(PermitSource::External),
            _ => Err(format!(
                "unknown permit source {s:?} (expected core or external)"
            )),
        }
    }
}

impl PermitSource {
    /// Its configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PermitSource::Core => "core",
            PermitSource::External => "external",
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            table_capacity: 4096,
            dedupe_horizon_ms: 24 * 3_600_000,
            max_plan_age_ms: 300_000,
            dedupe_capacity: 1 << 20,
            max_orders: 1 << 14,
            permits: PermitSource::Core,
            apply_wait_ms: 1200,
            apply_step_ms: 100,
            governor: GovernorConfig::default(),
            p33: P33Config::default(),
            symbols: SymbolSpec::defaults(),
        }
    }
}

/// A configuration the engine refuses, in one sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl EngineConfig {
    /// Checks ranges; the message names the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.table_capacity == 0 || self.table_capacity > 1 << 24 {
            return err(format!(
                "table_capacity {} must be in 1..=16777216",
                self.table_capacity
            ));
        }
        if self.dedupe_capacity < self.table_capacity || self.dedupe_capacity > 1 << 26 {
            return err(format!(
                "dedupe_capacity {} must be at least table_capacity ({}) and at most 67108864",
                self.dedupe_capacity, self.table_capacity
            ));
        }
        if self.dedupe_horizon_ms <= self.apply_wait_ms {
            return err(format!(
                "dedupe_horizon_ms {} must be longer than apply_wait_ms ({}): a plan must be remembered at least while it waits",
                self.dedupe_horizon_ms, self.apply_wait_ms
            ));
        }
        if self.max_plan_age_ms == 0 {
            return err("max_plan_age_ms must be at least 1".into());
        }
        if self.dedupe_horizon_ms < self.max_plan_age_ms {
            return err(format!(
                "dedupe_horizon_ms {} is shorter than max_plan_age_ms ({}): a plan young enough to execute could be re-delivered after dedupe forgot it and be ordered twice; lengthen the horizon or shorten the age",
                self.dedupe_horizon_ms, self.max_plan_age_ms
            ));
        }
        if self.max_orders == 0 || self.max_orders > 1 << 24 {
            return err(format!(
                "max_orders {} must be in 1..=16777216",
                self.max_orders
            ));
        }
        if self.apply_step_ms == 0 {
            return err("apply_step_ms (APPLY_PERMIT_STEP_MS) must be at least 1".into());
        }
        if self.governor.rate_limit > MAX_RATE_LIMIT {
            return err(format!(
                "governor rate_limit {} is over the maximum {MAX_RATE_LIMIT}",
                self.governor.rate_limit
            ));
        }
        if self.symbols.is_empty() {
            return err("at least one symbol must be configured".into());
        }
        for s in &self.symbols {
            if s.tolerance.units() < 0 {
                return err(format!("{}: tolerance must not be negative", s.name));
            }
            for (what, f) in [
                ("LOT_SIZE", s.filters.lot),
                ("MARKET_LOT_SIZE", s.filters.market_lot),
            ] {
                if f.min.units() < 0 || f.step.units() < 0 || f.max.units() < 0 {
                    return err(format!("{}: {what} values must not be negative", s.name));
                }
            }
        }
        Ok(())
    }
}
