//! Typed answers: orders, positions. Decimals arrive as JSON strings and are parsed exactly.

use quantum_core::fixed::{Price, Qty};
use quantum_ipc::codes::OrderStatus;
use serde_json::Value;

use crate::common::decimal::{parse_price, parse_qty};
use crate::error::Error;

/// Order side: the process contract's own, so the bridge needs no mapping.
pub use quantum_ipc::codes::Side;

/// Position side (`BOTH`, `LONG`, `SHORT`): the process contract's own, the one owner of leg
/// naming.
pub use quantum_ipc::codes::PositionSide;

/// A new order as sent. `quantity` is sent verbatim: build it with
/// [`crate::common::filters::SymbolFilters::market_qty`] unless a test wants a raw string.
/// Every field is sent as it is ([`NewOrder::params`]); [`NewOrder::market_close`] builds the
/// order that closes one leg, as Binance wants it in the account's position mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOrder {
    /// Symbol.
    pub symbol: String,
    /// Side.
    pub side: Side,
    /// Exact decimal string.
    pub quantity: String,
    /// `positionSide`: sent when `LONG` or `SHORT` (hedge mode); `BOTH` is Binance's default
    /// and is not sent.
    pub position_side: PositionSide,
    /// `reduceOnly=true`.
    pub reduce_only: bool,
    /// `newClientOrderId`.
    pub client_order_id: String,
}

impl NewOrder {
    /// The MARKET order that closes (part of) the leg `position_side` of `symbol`: on a
    /// one-way (`BOTH`) leg reduce-only; on a hedge leg (`LONG`, `SHORT`) with that
    /// `positionSide` and without `reduceOnly`, which Binance refuses in hedge mode (-1106):
    /// there the closing side (SELL for LONG, BUY for SHORT,
    /// [`PositionSide::closing_side`]) is what reduces, so any other `side` is
    /// [`Error::OpensLeg`].
    pub fn market_close(
        symbol: &str,
        position_side: PositionSide,
        side: Side,
        quantity: String,
        client_order_id: &str,
    ) -> Result<NewOrder, Error> {
        if position_side.closing_side().is_some_and(|c| c != side) {
            return Err(Error::OpensLeg {
                symbol: symbol.to_owned(),
                position_side,
                side,
            });
        }
        Ok(NewOrder {
            symbol: symbol.to_owned(),
            side,
            quantity,
            position_side,
            reduce_only: !position_side.is_hedge(),
            client_order_id: client_order_id.to_owned(),
        })
    }

    /// The parameters of a MARKET order with `newOrderRespType=RESULT`, in sending order.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let mut p = vec![
            ("symbol", self.symbol.clone()),
            ("side", self.side.as_str().to_owned()),
            ("type", "MARKET".to_owned()),
            ("quantity", self.quantity.clone()),
        ];
        if self.position_side.is_hedge() {
            p.push(("positionSide", self.position_side.as_str().to_owned()));
        }
        if self.reduce_only {
            p.push(("reduceOnly", "true".to_owned()));
        }
        p.push(("newClientOrderId", self.client_order_id.clone()));
        p.push(("newOrderRespType", "RESULT".to_owned()));
        p
    }
}

/// An order as Binance reports it (POST/GET/DELETE order, `order.place`, `order.status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    /// Symbol.
    pub symbol: String,
    /// Exchange order id.
    pub order_id: u64,
    /// Client order id.
    pub client_order_id: String,
    /// NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED, ...
    pub status: String,
    /// Side.
    pub side: Side,
    /// `positionSide`: `BOTH` in one-way mode (and when Binance leaves it out), `LONG` or
    /// `SHORT` in hedge mode.
    pub position_side: PositionSide,
    /// Ordered quantity.
    pub orig_qty: Qty,
    /// Filled quantity.
    pub executed_qty: Qty,
    /// Average fill price, `None` before any fill.
    pub avg_price: Option<Price>,
    /// Reduce-only.
    pub reduce_only: bool,
    /// Last update (ms).
    pub update_time: u64,
}

fn str_field<'a>(v: &'a Value, what: &'static str, field: &'static str) -> Result<&'a str, Error> {
    v[field].as_str().ok_or(Error::Field { what, field })
}

fn qty_field(v: &Value, what: &'static str, field: &'static str) -> Result<Qty, Error> {
    parse_qty(str_field(v, what, field)?).ok_or(Error::Field { what, field })
}

fn price_field(v: &Value, what: &'static str, field: &'static str) -> Result<Price, Error> {
    parse_price(str_field(v, what, field)?).ok_or(Error::Field { what, field })
}

/// A `positionSide` field (`BOTH` when absent).
pub(crate) fn position_side_field(
    v: &Value,
    what: &'static str,
    field: &'static str,
) -> Result<PositionSide, Error> {
    match v[field].as_str() {
        None => Ok(PositionSide::Both),
        Some(s) => PositionSide::parse(s).ok_or(Error::Field { what, field }),
    }
}

fn u64_field(v: &Value, what: &'static str, field: &'static str) -> Result<u64, Error> {
    v[field].as_u64().ok_or(Error::Field { what, field })
}

impl Order {
    /// Parses an order object.
    pub fn from_json(v: &Value) -> Result<Order, Error> {
        const W: &str = "order";
        let avg = price_field(v, W, "avgPrice").ok().filter(|p| p.units() > 0);
        Ok(Order {
            symbol: str_field(v, W, "symbol")?.to_owned(),
            order_id: u64_field(v, W, "orderId")?,
            client_order_id: str_field(v, W, "clientOrderId")?.to_owned(),
            status: str_field(v, W, "status")?.to_owned(),
            side: Side::parse(str_field(v, W, "side")?).ok_or(Error::Field {
                what: W,
                field: "side",
            })?,
            position_side: position_side_field(v, W, "positionSide")?,
            orig_qty: qty_field(v, W, "origQty")?,
            executed_qty: qty_field(v, W, "executedQty")?,
            avg_price: avg,
            reduce_only: v["reduceOnly"].as_bool().unwrap_or(false),
            update_time: v["updateTime"].as_u64().unwrap_or(0),
        })
    }

    /// Nothing more will happen to it: its status is one [`OrderStatus::is_final`] calls final
    /// (an unknown status is not).
    pub fn is_final(&self) -> bool {
        OrderStatus::parse(&self.status).is_some_and(OrderStatus::is_final)
    }
}

/// Which positionRisk to call. Binance deprecated v2 for v3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PositionRiskVersion {
    /// `/fapi/v2/positionRisk` (deprecated): every symbol, flat ones as `"0.000"`.
    V2,
    /// `/fapi/v3/positionRisk`: only symbols with a position or open orders; a symbol it does
    /// not list is flat.
    #[default]
    V3,
}

/// One position leg from positionRisk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PositionRisk {
    /// Symbol.
    pub symbol: String,
    /// BOTH, LONG or SHORT.
    pub position_side: String,
    /// Signed amount.
    pub position_amt: Qty,
    /// Entry price (0 when flat).
    pub entry_price: Price,
    /// Mark price.
    pub mark_price: Price,
    /// Last update (ms).
    pub update_time: u64,
}

impl PositionRisk {
    /// Parses one row.
    pub fn from_json(v: &Value) -> Result<PositionRisk, Error> {
        const W: &str = "positionRisk";
        Ok(PositionRisk {
            symbol: str_field(v, W, "symbol")?.to_owned(),
            position_side: v["positionSide"].as_str().unwrap_or("BOTH").to_owned(),
            position_amt: qty_field(v, W, "positionAmt")?,
            entry_price: price_field(v, W, "entryPrice").unwrap_or(Price::ZERO),
            mark_price: price_field(v, W, "markPrice")?,
            update_time: v["updateTime"].as_u64().unwrap_or(0),
        })
    }
}

/// One row of `GET /fapi/v1/premiumIndex`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkPrice {
    /// Symbol.
    pub symbol: String,
    /// Mark price.
    pub mark_price: Price,
    /// Time of the price (ms).
    pub time: u64,
}

impl MarkPrice {
    /// Parses one row.
    pub fn from_json(v: &Value) -> Result<MarkPrice, Error> {
        const W: &str = "premiumIndex";
        Ok(MarkPrice {
            symbol: str_field(v, W, "symbol")?.to_owned(),
            mark_price: price_field(v, W, "markPrice")?,
            time: v["time"].as_u64().unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_a_result_order() {
        let v = json!({"clientOrderId":"qpc-1","cumQty":"0","cumQuote":"130.0","executedQty":"0.002",
            "orderId":42,"avgPrice":"65000.00","origQty":"0.002","price":"0","reduceOnly":true,
            "side":"SELL","positionSide":"BOTH","status":"FILLED","symbol":"BTCUSDT",
            "type":"MARKET","updateTime":1700000000000u64});
        let o = Order::from_json(&v).unwrap();
        assert_eq!(o.executed_qty.to_string(), "0.002");
        assert_eq!(o.avg_price.unwrap().to_string(), "65000");
        assert!(o.is_final() && o.reduce_only);
        let ack = json!({"clientOrderId":"c","executedQty":"0","orderId":1,"avgPrice":"0.00",
            "origQty":"1","side":"BUY","status":"NEW","symbol":"X"});
        assert_eq!(Order::from_json(&ack).unwrap().avg_price, None);
        assert!(Order::from_json(&json!({"orderId":1})).is_err());
    }

    #[test]
    fn new_order_params_are_market_result() {
        let o = NewOrder::market_close(
            "BTCUSDT",
            PositionSide::Both,
            Side::Sell,
            "0.002".into(),
            "qpc-1",
        )
        .unwrap();
        let p = o.params();
        assert!(p.contains(&("type", "MARKET".into())));
        assert!(p.contains(&("reduceOnly", "true".into())));
        assert!(p.contains(&("newOrderRespType", "RESULT".into())));
        assert!(!p.iter().any(|(k, _)| *k == "positionSide"));
        for (leg, side, opening) in [
            (PositionSide::Long, Side::Sell, Side::Buy),
            (PositionSide::Short, Side::Buy, Side::Sell),
        ] {
            let p = NewOrder::market_close("BTCUSDT", leg, side, "0.002".into(), "qpc-2")
                .unwrap()
                .params();
            assert!(p.contains(&("positionSide", leg.as_str().into())), "{p:?}");
            assert!(!p.iter().any(|(k, _)| *k == "reduceOnly"), "{p:?}");
            assert!(matches!(
                NewOrder::market_close("BTCUSDT", leg, opening, "0.002".into(), "qpc-3"),
                Err(Error::OpensLeg { .. })
            ));
        }
    }
}
