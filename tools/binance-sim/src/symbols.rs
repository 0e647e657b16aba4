//! Symbol specifications (filters, precisions, brackets) and the `exchangeInfo` document.
//!
//! Values follow Binance's published USD-M perpetuals as best known; they drift on the real
//! exchange over time, so every field is plain data a test or config can replace.

use serde_json::{json, Value};

use crate::config::Limits;
use crate::decimal::Dec;
use crate::error::ApiError;

/// `deliveryDate` of a perpetual (exchangeInfo) and `dt` of its contractInfo event.
pub const PERPETUAL_DELIVERY_DATE: i64 = 4_133_404_800_000;

/// `onboardDate` (exchangeInfo) and `ot` (contractInfo) of every simulated symbol.
pub const ONBOARD_DATE: i64 = 1_569_398_400_000;

/// A contract's status: `status` in USD-M exchangeInfo (COIN-M calls it `contractStatus`;
/// USD-M does not have that field), `cs` in the contractInfo stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContractStatus {
    /// Listed, not trading yet.
    PendingTrading,
    /// Trading.
    Trading,
    /// Before delivery (delivery contracts): no new positions.
    PreDelivering,
    /// Delivering.
    Delivering,
    /// Delivered.
    Delivered,
    /// Before a settlement (delisting of a perpetual): no new positions.
    PreSettle,
    /// Settling.
    Settling,
    /// Closed.
    Close,
}

impl ContractStatus {
    /// Every status, in Binance's documented order.
    pub const ALL: [ContractStatus; 8] = [
        ContractStatus::PendingTrading,
        ContractStatus::Trading,
        ContractStatus::PreDelivering,
        ContractStatus::Delivering,
        ContractStatus::Delivered,
        ContractStatus::PreSettle,
        ContractStatus::Settling,
        ContractStatus::Close,
    ];

    /// Binance spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ContractStatus::PendingTrading => "PENDING_TRADING",
            ContractStatus::Trading => "TRADING",
            ContractStatus::PreDelivering => "PRE_DELIVERING",
            ContractStatus::Delivering => "DELIVERING",
            ContractStatus::Delivered => "DELIVERED",
            ContractStatus::PreSettle => "PRE_SETTLE",
            ContractStatus::Settling => "SETTLING",
            ContractStatus::Close => "CLOSE",
        }
    }

    /// Parses Binance's spelling.
    pub fn parse(s: &str) -> Option<ContractStatus> {
        ContractStatus::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// True for the statuses at which the exchange settles the contract and closes its
    /// positions (`DELIVERING`, `SETTLING`).
    pub fn settles(self) -> bool {
        matches!(self, ContractStatus::Delivering | ContractStatus::Settling)
    }

    /// Whether a new order may be placed at this status; `reduces` when it only reduces a
    /// position (reduceOnly in one-way mode, the closing side of a leg in hedge mode).
    ///
    /// Binance documents the codes, not which status gives which (*unverified*): `TRADING`
    /// takes every order; `PRE_DELIVERING` and `PRE_SETTLE` take only reducing orders and
    /// answer the others -4140 ("Invalid symbol status for opening position."); `CLOSE`
    /// answers -4141 ("Symbol is closed."); `PENDING_TRADING`, `DELIVERING`, `DELIVERED`
    /// and `SETTLING` answer -1122 ("Invalid symbol status.").
    pub fn admits(self, reduces: bool) -> Result<(), ApiError> {
        match self {
            ContractStatus::Trading => Ok(()),
            ContractStatus::PreDelivering | ContractStatus::PreSettle if reduces => Ok(()),
            ContractStatus::PreDelivering | ContractStatus::PreSettle => Err(ApiError::bad(
                -4140,
                "Invalid symbol status for opening position.",
            )),
            ContractStatus::Close => Err(ApiError::bad(-4141, "Symbol is closed.")),
            ContractStatus::PendingTrading
            | ContractStatus::Delivering
            | ContractStatus::Delivered
            | ContractStatus::Settling => Err(ApiError::bad(-1122, "Invalid symbol status.")),
        }
    }
}

/// One tradable symbol and the rules orders on it must satisfy.
#[derive(Clone, Debug)]
pub struct SymbolSpec {
    /// e.g. `BTCUSDT`.
    pub symbol: String,
    /// e.g. `BTC`.
    pub base_asset: String,
    /// Decimals of a price (`pricePrecision`).
    pub price_precision: u32,
    /// Decimals of a quantity (`quantityPrecision`).
    pub quantity_precision: u32,
    /// PRICE_FILTER.
    pub min_price: Dec,
    /// PRICE_FILTER.
    pub max_price: Dec,
    /// PRICE_FILTER.
    pub tick_size: Dec,
    /// LOT_SIZE (LIMIT orders).
    pub lot_min: Dec,
    /// LOT_SIZE.
    pub lot_max: Dec,
    /// LOT_SIZE.
    pub lot_step: Dec,
    /// MARKET_LOT_SIZE (MARKET orders).
    pub market_min: Dec,
    /// MARKET_LOT_SIZE.
    pub market_max: Dec,
    /// MARKET_LOT_SIZE.
    pub market_step: Dec,
    /// MIN_NOTIONAL `notional`.
    pub min_notional: Dec,
    /// MAX_NUM_ORDERS `limit`: open orders per symbol.
    pub max_num_orders: u32,
    /// PERCENT_PRICE `multiplierUp` (limit price vs mark).
    pub percent_up: Dec,
    /// PERCENT_PRICE `multiplierDown`.
    pub percent_down: Dec,
    /// Mark price used when the config gives none.
    pub default_mark: Dec,
    /// Leverage brackets: (initialLeverage, notionalFloor, notionalCap, maintMarginRatio, cum).
    pub brackets: Vec<(u32, i64, i64, &'static str, &'static str)>,
}

fn d(s: &str) -> Dec {
    Dec::parse(s).expect("static decimal")
}

impl SymbolSpec {
    /// BTCUSDT, ETHUSDT and SOLUSDT perpetuals.
    pub fn defaults() -> Vec<SymbolSpec> {
        vec![
            SymbolSpec {
                symbol: "BTCUSDT".into(),
                base_asset: "BTC".into(),
                price_precision: 2,
                quantity_precision: 3,
                min_price: d("261.10"),
                max_price: d("809484"),
                tick_size: d("0.10"),
                lot_min: d("0.001"),
                lot_max: d("1000"),
                lot_step: d("0.001"),
                market_min: d("0.001"),
                market_max: d("120"),
                market_step: d("0.001"),
                min_notional: d("100"),
                max_num_orders: 200,
                percent_up: d("1.0500"),
                percent_down: d("0.9500"),
                default_mark: d("65000.00"),
                brackets: vec![
                    (125, 0, 50_000, "0.004", "0.0"),
                    (100, 50_000, 600_000, "0.005", "50.0"),
                    (75, 600_000, 3_000_000, "0.0065", "950.0"),
                    (50, 3_000_000, 12_000_000, "0.01", "11450.0"),
                    (25, 12_000_000, 70_000_000, "0.02", "131450.0"),
                ],
            },
            SymbolSpec {
                symbol: "ETHUSDT".into(),
                base_asset: "ETH".into(),
                price_precision: 2,
                quantity_precision: 3,
                min_price: d("39.86"),
                max_price: d("306177"),
                tick_size: d("0.01"),
                lot_min: d("0.001"),
                lot_max: d("10000"),
                lot_step: d("0.001"),
                market_min: d("0.001"),
                market_max: d("2000"),
                market_step: d("0.001"),
                min_notional: d("20"),
                max_num_orders: 200,
                percent_up: d("1.0500"),
                percent_down: d("0.9500"),
                default_mark: d("3000.00"),
                brackets: vec![
                    (125, 0, 50_000, "0.004", "0.0"),
                    (100, 50_000, 600_000, "0.005", "50.0"),
                    (75, 600_000, 3_000_000, "0.0065", "950.0"),
                    (50, 3_000_000, 12_000_000, "0.01", "11450.0"),
                ],
            },
            SymbolSpec {
                symbol: "SOLUSDT".into(),
                base_asset: "SOL".into(),
                price_precision: 4,
                quantity_precision: 0,
                min_price: d("0.4200"),
                max_price: d("6857"),
                tick_size: d("0.0100"),
                lot_min: d("1"),
                lot_max: d("1000000"),
                lot_step: d("1"),
                market_min: d("1"),
                market_max: d("5000"),
                market_step: d("1"),
                min_notional: d("5"),
                max_num_orders: 200,
                percent_up: d("1.0500"),
                percent_down: d("0.9500"),
                default_mark: d("150.0000"),
                brackets: vec![
                    (75, 0, 5_000, "0.0065", "0.0"),
                    (50, 5_000, 50_000, "0.01", "17.5"),
                    (25, 50_000, 600_000, "0.02", "517.5"),
                ],
            },
        ]
    }

    /// The symbol's entry in `exchangeInfo.symbols`, at contract status `status`.
    pub fn exchange_info(&self, status: ContractStatus) -> Value {
        let pp = self.price_precision;
        let qp = self.quantity_precision;
        json!({
            "symbol": self.symbol,
            "pair": self.symbol,
            "contractType": "PERPETUAL",
            "deliveryDate": PERPETUAL_DELIVERY_DATE,
            "onboardDate": ONBOARD_DATE,
            "status": status.as_str(),
            "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000",
            "baseAsset": self.base_asset,
            "quoteAsset": "USDT",
            "marginAsset": "USDT",
            "pricePrecision": pp,
            "quantityPrecision": qp,
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "underlyingType": "COIN",
            "underlyingSubType": [],
            "settlePlan": 0,
            "triggerProtect": "0.0500",
            "liquidationFee": "0.012500",
            "marketTakeBound": "0.05",
            "maxMoveOrderLimit": 10000,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": self.min_price.to_dp(pp),
                 "maxPrice": self.max_price.to_string(), "tickSize": self.tick_size.to_dp(pp)},
                {"filterType": "LOT_SIZE", "minQty": self.lot_min.to_dp(qp),
                 "maxQty": self.lot_max.to_string(), "stepSize": self.lot_step.to_dp(qp)},
                {"filterType": "MARKET_LOT_SIZE", "minQty": self.market_min.to_dp(qp),
                 "maxQty": self.market_max.to_string(), "stepSize": self.market_step.to_dp(qp)},
                {"filterType": "MAX_NUM_ORDERS", "limit": self.max_num_orders},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                {"filterType": "MIN_NOTIONAL", "notional": self.min_notional.to_string()},
                {"filterType": "PERCENT_PRICE", "multiplierUp": self.percent_up.to_dp(4),
                 "multiplierDown": self.percent_down.to_dp(4), "multiplierDecimal": "4"},
            ],
            "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT",
                           "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
        })
    }

    /// The Contract Info Stream event (`!contractInfo` on the `/market` route) Binance pushes
    /// when the contract's status changes. `bks` is left out: Binance sends it only when the
    /// brackets change. `ps` (the pair) is in COIN-M's example and older USD-M pages; the
    /// current USD-M page lists `e E s ct dt ot cs bks` (*unverified* which is sent).
    pub fn contract_info_event(&self, status: ContractStatus, now: i64) -> Value {
        json!({
            "e": "contractInfo", "E": now, "s": self.symbol, "ps": self.symbol,
            "ct": "PERPETUAL", "dt": PERPETUAL_DELIVERY_DATE, "ot": ONBOARD_DATE,
            "cs": status.as_str(),
        })
    }

    /// The symbol's entry in `leverageBracket`.
    pub fn leverage_brackets(&self) -> Value {
        let brackets: Vec<Value> = self
            .brackets
            .iter()
            .enumerate()
            .map(|(i, (lev, floor, cap, mmr, cum))| {
                json!({
                    "bracket": i + 1,
                    "initialLeverage": lev,
                    "notionalCap": cap,
                    "notionalFloor": floor,
                    "maintMarginRatio": mmr.parse::<f64>().unwrap_or(0.0),
                    "cum": cum.parse::<f64>().unwrap_or(0.0),
                })
            })
            .collect();
        json!({ "symbol": self.symbol, "brackets": brackets })
    }

    /// Maintenance margin ratio of the first bracket (used for rough account figures).
    pub fn maint_margin_ratio(&self) -> Dec {
        self.brackets
            .first()
            .and_then(|b| Dec::parse(b.3).ok())
            .unwrap_or(Dec::parse("0.004").expect("static"))
    }
}

/// The whole `GET /fapi/v1/exchangeInfo` document: every symbol with its contract status.
pub fn exchange_info(
    symbols: &[(SymbolSpec, ContractStatus)],
    limits: &Limits,
    server_time: i64,
) -> Value {
    json!({
        "timezone": "UTC",
        "serverTime": server_time,
        "futuresType": "U_MARGINED",
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
             "limit": limits.weight_per_minute},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1,
             "limit": limits.orders_per_minute},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
             "limit": limits.orders_per_10s},
        ],
        "exchangeFilters": [],
        "assets": [
            {"asset": "USDT", "marginAvailable": true, "autoAssetExchange": "-10000"},
        ],
        "symbols": symbols
            .iter()
            .map(|(spec, status)| spec.exchange_info(*status))
            .collect::<Vec<_>>(),
    })
}
