//! Engine configuration and the built-in symbol specs.

use crate::fixed::{Price, Qty};
use crate::governor::{GovernorConfig, MAX_RATE_LIMIT};
use crate::ledger::{Filters, LotFilter};
use crate::p33::P33Config;

/// One symbol: name, reconcile tolerance and exchange filters (until exchangeInfo updates them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolSpec {
    /// Exchange symbol, e.g. `BTCUSDT`.
    pub name: String,
    /// `|exchange - ledger|` above this denies with `reconcile_required_qty_mismatch`.
    pub tolerance: Qty,
    /// LOT_SIZE, MARKET_LOT_SIZE, MIN_NOTIONAL.
    pub filters: Filters,
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
        }
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
    /// How many recent plan ids dedupe remembers at least (up to twice as many between
    /// deferred evictions).
    pub dedupe_capacity: usize,
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

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            table_capacity: 4096,
            dedupe_capacity: 1 << 15,
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
        if self.dedupe_capacity == 0 || self.dedupe_capacity > 1 << 26 {
            return err(format!(
                "dedupe_capacity {} must be in 1..=67108864",
                self.dedupe_capacity
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
