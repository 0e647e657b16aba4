//! Symbol rules from `GET /fapi/v1/exchangeInfo`: LOT_SIZE, MARKET_LOT_SIZE, MIN_NOTIONAL,
//! PRICE_FILTER, `quantityPrecision`, each symbol's contract `status`, and the account's
//! published rate limits.

use std::collections::HashMap;

use quantum_core::fixed::{Price, Qty};
use serde::Deserialize;
use serde_json::Value;

use super::decimal::{decimals_of, format_qty, parse_price, parse_qty};

/// One symbol's order rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolFilters {
    /// e.g. `BTCUSDT`.
    pub symbol: String,
    /// LOT_SIZE `minQty`.
    pub min_qty: Qty,
    /// LOT_SIZE `maxQty`.
    pub max_qty: Qty,
    /// LOT_SIZE `stepSize`.
    pub step: Qty,
    /// MARKET_LOT_SIZE `minQty`.
    pub market_min_qty: Qty,
    /// MARKET_LOT_SIZE `maxQty`.
    pub market_max_qty: Qty,
    /// MARKET_LOT_SIZE `stepSize`.
    pub market_step: Qty,
    /// MIN_NOTIONAL `notional` (quote units).
    pub min_notional: Qty,
    /// PRICE_FILTER `tickSize`.
    pub tick_size: Price,
    /// `quantityPrecision`: the most decimals a quantity may carry.
    pub quantity_precision: u32,
}

/// Why a quantity cannot be sent as a MARKET order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QtyError {
    /// Zero or negative.
    #[error("quantity {0} is not positive")]
    NotPositive(Qty),
    /// Below MARKET_LOT_SIZE `minQty` after rounding down to the step.
    #[error("quantity {qty} is below the minimum {min} after rounding down to the step")]
    BelowMinimum {
        /// Requested quantity.
        qty: Qty,
        /// Minimum.
        min: Qty,
    },
    /// Above MARKET_LOT_SIZE `maxQty`.
    #[error("quantity {qty} is above the maximum {max}")]
    AboveMaximum {
        /// Requested quantity.
        qty: Qty,
        /// Maximum.
        max: Qty,
    },
}

impl SymbolFilters {
    /// A MARKET quantity rounded down onto the MARKET_LOT_SIZE grid and printed with the
    /// grid's decimals (never more than `quantityPrecision`), e.g. `"0.015"`.
    pub fn market_qty(&self, qty: Qty) -> Result<(Qty, String), QtyError> {
        if qty.units() <= 0 {
            return Err(QtyError::NotPositive(qty));
        }
        let (min, max, step) = (self.market_min_qty, self.market_max_qty, self.market_step);
        if max.units() > 0 && qty > max {
            return Err(QtyError::AboveMaximum { qty, max });
        }
        let on_grid = qty.floor_to_step(step, min);
        if on_grid.is_zero() || on_grid < min {
            return Err(QtyError::BelowMinimum { qty, min });
        }
        let decimals = decimals_of(step)
            .max(decimals_of(min))
            .min(self.quantity_precision as usize);
        Ok((on_grid, format_qty(on_grid, decimals)))
    }
}

/// A limit from `rateLimits`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishedLimits {
    /// REQUEST_WEIGHT per minute.
    pub weight_per_minute: Option<u32>,
    /// ORDERS per 10 seconds.
    pub orders_per_10s: Option<u32>,
    /// ORDERS per minute.
    pub orders_per_minute: Option<u32>,
}

/// What the adapter keeps from `exchangeInfo`.
#[derive(Clone, Debug, Default)]
pub struct ExchangeInfo {
    /// Filters by symbol name.
    pub symbols: HashMap<String, SymbolFilters>,
    /// Contract status by symbol name, as Binance wrote it (`TRADING`, `SETTLING`, ...;
    /// [`quantum_ipc::codes::ContractStatus`] names the known ones).
    pub statuses: HashMap<String, String>,
    /// Rate limits.
    pub limits: PublishedLimits,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawInfo {
    #[serde(default)]
    rate_limits: Vec<RawLimit>,
    #[serde(default)]
    symbols: Vec<RawSymbol>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLimit {
    rate_limit_type: String,
    interval: String,
    #[serde(default = "one")]
    interval_num: u32,
    limit: u32,
}

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSymbol {
    symbol: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    quantity_precision: u32,
    #[serde(default)]
    filters: Vec<Value>,
}

/// Why `exchangeInfo` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum InfoError {
    /// Not the documented JSON.
    #[error("exchangeInfo is not the documented JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A filter value is not an exact decimal.
    #[error("exchangeInfo: symbol {symbol} filter {filter} field {field} is not an exact decimal")]
    Field {
        /// Symbol.
        symbol: String,
        /// Filter type.
        filter: String,
        /// Field.
        field: &'static str,
    },
    /// A filter the adapter needs is missing.
    #[error("exchangeInfo: symbol {symbol} has no {filter} filter")]
    Missing {
        /// Symbol.
        symbol: String,
        /// Filter type.
        filter: &'static str,
    },
}

impl ExchangeInfo {
    /// Parses the `exchangeInfo` document.
    pub fn parse(body: &[u8]) -> Result<ExchangeInfo, InfoError> {
        let raw: RawInfo = serde_json::from_slice(body)?;
        let mut limits = PublishedLimits::default();
        for l in &raw.rate_limits {
            match (
                l.rate_limit_type.as_str(),
                l.interval.as_str(),
                l.interval_num,
            ) {
                ("REQUEST_WEIGHT", "MINUTE", 1) => limits.weight_per_minute = Some(l.limit),
                ("ORDERS", "MINUTE", 1) => limits.orders_per_minute = Some(l.limit),
                ("ORDERS", "SECOND", 10) => limits.orders_per_10s = Some(l.limit),
                _ => {}
            }
        }
        let mut symbols = HashMap::new();
        let mut statuses = HashMap::new();
        for s in raw.symbols {
            let f = parse_symbol(&s)?;
            symbols.insert(s.symbol.clone(), f);
            if !s.status.is_empty() {
                statuses.insert(s.symbol, s.status);
            }
        }
        Ok(ExchangeInfo {
            symbols,
            statuses,
            limits,
        })
    }
}

fn parse_symbol(s: &RawSymbol) -> Result<SymbolFilters, InfoError> {
    let find = |t: &'static str| {
        s.filters
            .iter()
            .find(|f| f["filterType"] == t)
            .ok_or_else(|| InfoError::Missing {
                symbol: s.symbol.clone(),
                filter: t,
            })
    };
    let field = |f: &Value, name: &'static str| -> Result<Qty, InfoError> {
        f[name]
            .as_str()
            .and_then(parse_qty)
            .ok_or_else(|| InfoError::Field {
                symbol: s.symbol.clone(),
                filter: f["filterType"].as_str().unwrap_or("?").to_owned(),
                field: name,
            })
    };
    let lot = find("LOT_SIZE")?;
    // MARKET_LOT_SIZE and MIN_NOTIONAL fall back to LOT_SIZE / zero when absent.
    let market = find("MARKET_LOT_SIZE").unwrap_or(lot);
    let min_notional = match find("MIN_NOTIONAL") {
        Ok(f) => field(f, "notional")?,
        Err(_) => Qty::ZERO,
    };
    let tick_size = match find("PRICE_FILTER") {
        Ok(f) => f["tickSize"]
            .as_str()
            .and_then(parse_price)
            .ok_or_else(|| InfoError::Field {
                symbol: s.symbol.clone(),
                filter: "PRICE_FILTER".into(),
                field: "tickSize",
            })?,
        Err(_) => Price::ZERO,
    };
    Ok(SymbolFilters {
        symbol: s.symbol.clone(),
        min_qty: field(lot, "minQty")?,
        max_qty: field(lot, "maxQty")?,
        step: field(lot, "stepSize")?,
        market_min_qty: field(market, "minQty")?,
        market_max_qty: field(market, "maxQty")?,
        market_step: field(market, "stepSize")?,
        min_notional,
        tick_size,
        quantity_precision: s.quantity_precision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = r#"{"rateLimits":[
        {"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":2400},
        {"rateLimitType":"ORDERS","interval":"MINUTE","intervalNum":1,"limit":1200},
        {"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":10,"limit":300}],
      "symbols":[{"symbol":"BTCUSDT","status":"TRADING","quantityPrecision":3,"filters":[
        {"filterType":"PRICE_FILTER","minPrice":"261.10","maxPrice":"809484","tickSize":"0.10"},
        {"filterType":"LOT_SIZE","minQty":"0.001","maxQty":"1000","stepSize":"0.001"},
        {"filterType":"MARKET_LOT_SIZE","minQty":"0.001","maxQty":"120","stepSize":"0.001"},
        {"filterType":"MIN_NOTIONAL","notional":"100"}]}]}"#;

    #[test]
    fn parses_filters_and_limits() {
        let info = ExchangeInfo::parse(INFO.as_bytes()).unwrap();
        assert_eq!(info.limits.weight_per_minute, Some(2400));
        assert_eq!(info.limits.orders_per_10s, Some(300));
        let f = &info.symbols["BTCUSDT"];
        assert_eq!(f.market_max_qty, Qty::from_int(120));
        assert_eq!(f.min_notional, Qty::from_int(100));
        assert_eq!(f.tick_size.to_string(), "0.1");
        assert_eq!(f.quantity_precision, 3);
        assert_eq!(info.statuses["BTCUSDT"], "TRADING");
    }

    #[test]
    fn market_quantities_round_down_to_the_step() {
        let info = ExchangeInfo::parse(INFO.as_bytes()).unwrap();
        let f = &info.symbols["BTCUSDT"];
        let q = |s: &str| parse_qty(s).unwrap();
        assert_eq!(f.market_qty(q("0.0159")).unwrap().1, "0.015");
        assert_eq!(f.market_qty(q("2")).unwrap().1, "2.000");
        assert!(matches!(
            f.market_qty(q("0.0009")),
            Err(QtyError::BelowMinimum { .. })
        ));
        assert!(matches!(
            f.market_qty(q("0")),
            Err(QtyError::NotPositive(_))
        ));
        assert!(matches!(
            f.market_qty(q("121")),
            Err(QtyError::AboveMaximum { .. })
        ));
    }
}
