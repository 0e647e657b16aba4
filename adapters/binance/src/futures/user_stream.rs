//! The user data stream (`<stream base>/<listenKey>`): typed ORDER_TRADE_UPDATE,
//! ACCOUNT_UPDATE and listenKeyExpired events.

use futures_util::{SinkExt, StreamExt};
use quantum_core::fixed::{Price, Qty};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::common::decimal::{parse_price, parse_qty};
use crate::error::{Error, Result};
use crate::futures::models::Side;

/// `ORDER_TRADE_UPDATE.o`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderUpdate {
    /// Event time `E` (ms).
    pub event_time: u64,
    /// Symbol `s`.
    pub symbol: String,
    /// Client order id `c`.
    pub client_order_id: String,
    /// Side `S`.
    pub side: Side,
    /// Execution type `x`: NEW, TRADE, CANCELED, EXPIRED, ...
    pub exec_type: String,
    /// Order status `X`.
    pub status: String,
    /// Order id `i`.
    pub order_id: u64,
    /// Last filled quantity `l`.
    pub last_qty: Qty,
    /// Cumulative filled quantity `z`.
    pub cum_qty: Qty,
    /// Last fill price `L` (`None` when zero).
    pub last_price: Option<Price>,
    /// Average price `ap` (`None` when zero).
    pub avg_price: Option<Price>,
    /// Original quantity `q`.
    pub orig_qty: Qty,
    /// Reduce-only `R`.
    pub reduce_only: bool,
}

/// One position in `ACCOUNT_UPDATE.a.P`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PositionUpdate {
    /// Symbol `s`.
    pub symbol: String,
    /// Signed amount `pa`.
    pub amount: Qty,
    /// Entry price `ep`.
    pub entry_price: Price,
    /// Position side `ps`.
    pub position_side: String,
}

/// `ACCOUNT_UPDATE` (only changed positions are listed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountUpdate {
    /// Event time `E` (ms).
    pub event_time: u64,
    /// Reason `m` (ORDER, FUNDING_FEE, ...).
    pub reason: String,
    /// Changed positions.
    pub positions: Vec<PositionUpdate>,
}

/// An event of the user data stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserEvent {
    /// An order changed.
    OrderTradeUpdate(OrderUpdate),
    /// Balances or positions changed.
    AccountUpdate(AccountUpdate),
    /// The listenKey expired: the stream ends; create a new key and reconnect.
    ListenKeyExpired {
        /// Event time (ms).
        event_time: u64,
    },
    /// Any other event type (kept for logging).
    Other(String),
}

fn field<'a>(v: &'a Value, name: &'static str) -> Result<&'a str> {
    v[name].as_str().ok_or(Error::Field {
        what: "user data event",
        field: name,
    })
}

fn qty(v: &Value, name: &'static str) -> Result<Qty> {
    parse_qty(field(v, name)?).ok_or(Error::Field {
        what: "user data event",
        field: name,
    })
}

fn price(v: &Value, name: &'static str) -> Option<Price> {
    v[name]
        .as_str()
        .and_then(parse_price)
        .filter(|p| p.units() > 0)
}

/// Parses one event frame.
pub fn parse_event(text: &str) -> Result<UserEvent> {
    let v: Value = serde_json::from_str(text).map_err(|source| Error::Decode {
        what: "user data event",
        source,
    })?;
    let event_time = v["E"].as_u64().unwrap_or(0);
    match v["e"].as_str().unwrap_or("") {
        "ORDER_TRADE_UPDATE" => {
            let o = &v["o"];
            Ok(UserEvent::OrderTradeUpdate(OrderUpdate {
                event_time,
                symbol: field(o, "s")?.to_owned(),
                client_order_id: field(o, "c")?.to_owned(),
                side: Side::parse(field(o, "S")?).ok_or(Error::Field {
                    what: "user data event",
                    field: "S",
                })?,
                exec_type: field(o, "x")?.to_owned(),
                status: field(o, "X")?.to_owned(),
                order_id: o["i"].as_u64().unwrap_or(0),
                last_qty: qty(o, "l")?,
                cum_qty: qty(o, "z")?,
                last_price: price(o, "L"),
                avg_price: price(o, "ap"),
                orig_qty: qty(o, "q")?,
                reduce_only: o["R"].as_bool().unwrap_or(false),
            }))
        }
        "ACCOUNT_UPDATE" => {
            let a = &v["a"];
            let positions = a["P"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|p| {
                    Ok(PositionUpdate {
                        symbol: field(p, "s")?.to_owned(),
                        amount: qty(p, "pa")?,
                        entry_price: price(p, "ep").unwrap_or(Price::ZERO),
                        position_side: p["ps"].as_str().unwrap_or("BOTH").to_owned(),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(UserEvent::AccountUpdate(AccountUpdate {
                event_time,
                reason: a["m"].as_str().unwrap_or("").to_owned(),
                positions,
            }))
        }
        "listenKeyExpired" => Ok(UserEvent::ListenKeyExpired { event_time }),
        other => Ok(UserEvent::Other(other.to_owned())),
    }
}

/// A connected user data stream.
pub struct UserStream {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl std::fmt::Debug for UserStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserStream")
    }
}

impl UserStream {
    /// Connects to `<base>/<listen_key>`.
    pub async fn connect(base: &str, listen_key: &str) -> Result<UserStream> {
        let url = format!("{}/{listen_key}", base.trim_end_matches('/'));
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .map_err(|e| Error::ws("connect", e))?;
        Ok(UserStream { ws })
    }

    /// The next event; `None` when the stream closed. Pings are answered here.
    pub async fn next(&mut self) -> Option<Result<UserEvent>> {
        loop {
            match self.ws.next().await? {
                Ok(Message::Text(t)) => return Some(parse_event(&t)),
                Ok(Message::Ping(p)) => {
                    if let Err(e) = self.ws.send(Message::Pong(p)).await {
                        return Some(Err(Error::ws("pong", e)));
                    }
                }
                Ok(Message::Close(_)) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(Error::ws("read", e))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_events() {
        let otu = r#"{"e":"ORDER_TRADE_UPDATE","E":5,"T":5,"o":{"s":"BTCUSDT","c":"qpc-1","S":"SELL",
            "o":"MARKET","q":"0.002","p":"0","ap":"65000.00000","x":"TRADE","X":"FILLED","i":9,
            "l":"0.002","z":"0.002","L":"65000.00","R":true,"ps":"BOTH"}}"#;
        let UserEvent::OrderTradeUpdate(o) = parse_event(otu).unwrap() else {
            panic!()
        };
        assert_eq!((o.order_id, o.cum_qty.to_string()), (9, "0.002".into()));
        assert_eq!(o.last_price.unwrap().to_string(), "65000");
        let au = r#"{"e":"ACCOUNT_UPDATE","E":6,"T":6,"a":{"m":"ORDER","B":[],
            "P":[{"s":"BTCUSDT","pa":"-0.010","ep":"65000","up":"0","mt":"cross","ps":"BOTH"}]}}"#;
        let UserEvent::AccountUpdate(a) = parse_event(au).unwrap() else {
            panic!()
        };
        assert_eq!(a.positions[0].amount.to_string(), "-0.01");
        assert_eq!(
            parse_event(r#"{"e":"listenKeyExpired","E":7,"listenKey":"k"}"#).unwrap(),
            UserEvent::ListenKeyExpired { event_time: 7 }
        );
        assert!(parse_event("nope").is_err());
    }
}
