//! The user data stream on the routed private endpoint: typed ORDER_TRADE_UPDATE,
//! TRADE_LITE, ACCOUNT_UPDATE and listenKeyExpired events.
//!
//! Since 2026-04-23 Binance serves USD-M futures streams on routed paths of
//! `fstream.binance.com`: `/public` (high-frequency market data), `/market` (regular market
//! data) and `/private` (user data). A connection without a route gets public data only, so
//! the legacy `/ws/<listenKey>` would connect fine and never deliver a fill. The stream is
//! opened at `<private>/ws?listenKey=<key>&events=<E1>/<E2>…` (raw events) or
//! `<private>/stream?listenKey=…&events=…` (each event wrapped as `{"stream":…,"data":…}`),
//! [`StreamMode`]; `events` names what we read ([`EVENTS`]). The testnet is routed the same
//! way on `fstream.binancefuture.com`.
//!
//! Reading the stream also tells the [`Confirmations`] registry about every order update, so
//! a pending lookup or re-send of that order stops at once, and flags the orders Binance
//! creates itself ([`OrderOrigin`]: liquidation, auto-deleveraging, settlement): each is
//! logged at warn and counted, and arrives with its origin so the bridge books it as a
//! position change that is not ours. A frame that is not a valid event is an error for that
//! frame only, counted; the stream goes on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use quantum_core::fixed::{Price, Qty};
use quantum_ipc::codes::PositionSide;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::common::decimal::{parse_price, parse_qty};
use crate::common::secret::ListenKey;
use crate::config::{ClientConfig, StreamMode};
use crate::error::{Error, Result};
use crate::futures::confirmations::Confirmations;
use crate::futures::models::{position_side_field, Order, Side};
use crate::futures::origin::OrderOrigin;

/// The events subscribed to (the `events` parameter, joined by `/`).
pub const EVENTS: [&str; 4] = [
    "ORDER_TRADE_UPDATE",
    "TRADE_LITE",
    "ACCOUNT_UPDATE",
    "listenKeyExpired",
];

/// `ORDER_TRADE_UPDATE.o`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderUpdate {
    /// Event time `E` (ms).
    pub event_time: u64,
    /// Symbol `s`.
    pub symbol: String,
    /// Client order id `c`.
    pub client_order_id: String,
    /// Who created the order (from `c`).
    pub origin: OrderOrigin,
    /// Side `S`.
    pub side: Side,
    /// Position side `ps`: `BOTH` in one-way mode, `LONG` or `SHORT` in hedge mode.
    pub position_side: PositionSide,
    /// Execution type `x`: NEW, TRADE, CANCELED, EXPIRED, ...
    pub exec_type: String,
    /// Order status `X`.
    pub status: String,
    /// Order id `i`.
    pub order_id: u64,
    /// Trade id `t` (0 when the update is not a trade).
    pub trade_id: u64,
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

impl OrderUpdate {
    /// The order as this update describes it.
    pub fn to_order(&self) -> Order {
        Order {
            symbol: self.symbol.clone(),
            order_id: self.order_id,
            client_order_id: self.client_order_id.clone(),
            status: self.status.clone(),
            side: self.side,
            position_side: self.position_side,
            orig_qty: self.orig_qty,
            executed_qty: self.cum_qty,
            avg_price: self.avg_price,
            reduce_only: self.reduce_only,
            update_time: self.event_time,
        }
    }
}

/// `TRADE_LITE`: one fill, pushed ahead of the fuller ORDER_TRADE_UPDATE of the same trade
/// (same order id `i` and trade id `t`); it carries the last fill only, no cumulative
/// quantity or status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TradeLite {
    /// Event time `E` (ms).
    pub event_time: u64,
    /// Transaction time `T` (ms).
    pub trade_time: u64,
    /// Symbol `s`.
    pub symbol: String,
    /// Client order id `c`.
    pub client_order_id: String,
    /// Who created the order (from `c`).
    pub origin: OrderOrigin,
    /// Side `S`.
    pub side: Side,
    /// Order id `i`.
    pub order_id: u64,
    /// Trade id `t`.
    pub trade_id: u64,
    /// Last filled quantity `l`.
    pub last_qty: Qty,
    /// Last fill price `L`.
    pub last_price: Option<Price>,
    /// Original quantity `q`.
    pub orig_qty: Qty,
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
    /// Position side `ps`: `BOTH` in one-way mode, `LONG` or `SHORT` in hedge mode (a
    /// `SHORT` leg's amount is negative).
    pub position_side: PositionSide,
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
    /// A fill, ahead of its ORDER_TRADE_UPDATE.
    TradeLite(TradeLite),
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

fn side(v: &Value) -> Result<Side> {
    Side::parse(field(v, "S")?).ok_or(Error::Field {
        what: "user data event",
        field: "S",
    })
}

/// One frame's event object, raw or taken out of a stream-mode `{"stream":…,"data":…}`
/// envelope (the user stream and the market stream both send either); `what` names the
/// frame in a decode error.
pub(crate) fn event_object(text: &str, what: &'static str) -> Result<Value> {
    let mut v: Value =
        serde_json::from_str(text).map_err(|source| Error::Decode { what, source })?;
    if v.get("stream").is_some() && v["data"].is_object() {
        v = v["data"].take();
    }
    Ok(v)
}

/// Parses one event frame, raw or in a stream-mode `{"stream":…,"data":…}` envelope.
pub fn parse_event(text: &str) -> Result<UserEvent> {
    let v = event_object(text, "user data event")?;
    let event_time = v["E"].as_u64().unwrap_or(0);
    match v["e"].as_str().unwrap_or("") {
        "ORDER_TRADE_UPDATE" => {
            let o = &v["o"];
            let cid = field(o, "c")?.to_owned();
            Ok(UserEvent::OrderTradeUpdate(OrderUpdate {
                event_time,
                symbol: field(o, "s")?.to_owned(),
                origin: OrderOrigin::of(&cid),
                client_order_id: cid,
                side: side(o)?,
                position_side: position_side_field(o, "user data event", "ps")?,
                exec_type: field(o, "x")?.to_owned(),
                status: field(o, "X")?.to_owned(),
                order_id: o["i"].as_u64().unwrap_or(0),
                trade_id: o["t"].as_u64().unwrap_or(0),
                last_qty: qty(o, "l")?,
                cum_qty: qty(o, "z")?,
                last_price: price(o, "L"),
                avg_price: price(o, "ap"),
                orig_qty: qty(o, "q")?,
                reduce_only: o["R"].as_bool().unwrap_or(false),
            }))
        }
        "TRADE_LITE" => {
            let cid = field(&v, "c")?.to_owned();
            Ok(UserEvent::TradeLite(TradeLite {
                event_time,
                trade_time: v["T"].as_u64().unwrap_or(event_time),
                symbol: field(&v, "s")?.to_owned(),
                origin: OrderOrigin::of(&cid),
                client_order_id: cid,
                side: side(&v)?,
                order_id: v["i"].as_u64().unwrap_or(0),
                trade_id: v["t"].as_u64().unwrap_or(0),
                last_qty: qty(&v, "l")?,
                last_price: price(&v, "L"),
                orig_qty: qty(&v, "q")?,
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
                        position_side: position_side_field(p, "user data event", "ps")?,
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

/// The stream URL for `key` on the private route of `base`.
pub fn stream_url(base: &str, key: &ListenKey, mode: StreamMode) -> String {
    let path = match mode {
        StreamMode::Ws => "ws",
        StreamMode::Stream => "stream",
    };
    format!(
        "{}/{path}?listenKey={}&events={}",
        base.trim_end_matches('/'),
        key.expose(),
        EVENTS.join("/")
    )
}

/// Counters of a stream (and of every stream sharing them).
#[derive(Debug, Default)]
pub struct UserStreamStats {
    /// Events read.
    pub events: AtomicU64,
    /// Frames that were not a valid event.
    pub invalid: AtomicU64,
    /// Order updates and trade lites of liquidation orders.
    pub liquidation: AtomicU64,
    /// ... of auto-deleveraging orders.
    pub auto_deleverage: AtomicU64,
    /// ... of settlement orders.
    pub settlement: AtomicU64,
}

impl UserStreamStats {
    fn exchange_generated(&self, origin: OrderOrigin) -> Option<&AtomicU64> {
        match origin {
            OrderOrigin::Client => None,
            OrderOrigin::Liquidation => Some(&self.liquidation),
            OrderOrigin::AutoDeleverage => Some(&self.auto_deleverage),
            OrderOrigin::Settlement => Some(&self.settlement),
        }
    }
}

/// A WebSocket connection to one of Binance's streams.
pub(crate) type StreamSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text frame of a stream; `None` when it closed. Pings are answered, other frames
/// skipped (the one reading loop of the user data stream and the market streams).
pub(crate) async fn next_text(ws: &mut StreamSocket) -> Option<Result<String>> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => return Some(Ok(t)),
            Ok(Message::Ping(p)) => {
                if let Err(e) = ws.send(Message::Pong(p)).await {
                    return Some(Err(Error::ws("pong", e)));
                }
            }
            Ok(Message::Close(_)) => return None,
            Ok(_) => {}
            Err(e) => return Some(Err(Error::ws("read", e))),
        }
    }
}

/// A connected user data stream.
pub struct UserStream {
    ws: StreamSocket,
    confirmations: Option<Confirmations>,
    stats: Arc<UserStreamStats>,
}

impl std::fmt::Debug for UserStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserStream")
    }
}

impl UserStream {
    /// Connects to the private route of `cfg.endpoints.user_stream` for `key`, after the
    /// mainnet guard. Order updates are told to `confirmations`, if given
    /// ([`crate::FuturesClient::user_stream`] passes the client's registry).
    pub async fn connect(
        cfg: &ClientConfig,
        key: &ListenKey,
        confirmations: Option<Confirmations>,
    ) -> Result<UserStream> {
        cfg.endpoints.check(cfg.network)?;
        let url = stream_url(&cfg.endpoints.user_stream, key, cfg.user_stream_mode);
        tracing::debug!(mode = ?cfg.user_stream_mode, "connecting the user data stream");
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .map_err(|e| Error::ws("connect", e))?;
        Ok(UserStream {
            ws,
            confirmations,
            stats: Arc::default(),
        })
    }

    /// Shares `stats` with this stream (e.g. one set of counters across reconnects).
    pub fn with_stats(mut self, stats: Arc<UserStreamStats>) -> UserStream {
        self.stats = stats;
        self
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<UserStreamStats> {
        &self.stats
    }

    /// The next event; `None` when the stream closed. Pings are answered here.
    pub async fn next(&mut self) -> Option<Result<UserEvent>> {
        match next_text(&mut self.ws).await? {
            Ok(t) => Some(self.note(parse_event(&t))),
            Err(e) => Some(Err(e)),
        }
    }

    /// Counts, confirms and flags an event on its way out.
    fn note(&self, ev: Result<UserEvent>) -> Result<UserEvent> {
        // Relaxed: independent counters read by monitoring only.
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                self.stats.invalid.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "user data stream frame is not a valid event; skipped");
                return Err(e);
            }
        };
        self.stats.events.fetch_add(1, Ordering::Relaxed);
        let (origin, symbol, cid, what) = match &ev {
            UserEvent::OrderTradeUpdate(o) => {
                if let Some(reg) = &self.confirmations {
                    reg.confirm_update(o);
                }
                (
                    o.origin,
                    &o.symbol,
                    &o.client_order_id,
                    o.exec_type.as_str(),
                )
            }
            UserEvent::TradeLite(t) => (t.origin, &t.symbol, &t.client_order_id, "TRADE_LITE"),
            _ => return Ok(ev),
        };
        if let Some(counter) = self.stats.exchange_generated(origin) {
            counter.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                origin = origin.as_str(), %symbol, client_order_id = %cid, event = what,
                "order created by Binance, not by us: the position changes, the ledger does not"
            );
        }
        Ok(ev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_events_raw_and_wrapped() {
        let otu = r#"{"e":"ORDER_TRADE_UPDATE","E":5,"T":5,"o":{"s":"BTCUSDT","c":"qpc-1","S":"SELL",
            "o":"MARKET","q":"0.002","p":"0","ap":"65000.00000","x":"TRADE","X":"FILLED","i":9,
            "l":"0.002","z":"0.002","L":"65000.00","R":true,"ps":"BOTH","t":77}}"#;
        let UserEvent::OrderTradeUpdate(o) = parse_event(otu).unwrap() else {
            panic!()
        };
        assert_eq!((o.order_id, o.cum_qty.to_string()), (9, "0.002".into()));
        assert_eq!((o.trade_id, o.origin), (77, OrderOrigin::Client));
        assert_eq!(o.last_price.unwrap().to_string(), "65000");
        assert_eq!(o.to_order().executed_qty, o.cum_qty);
        let wrapped = format!(r#"{{"stream":"lk","data":{otu}}}"#);
        assert_eq!(parse_event(&wrapped).unwrap(), parse_event(otu).unwrap());
        let lite = r#"{"e":"TRADE_LITE","E":4,"T":3,"s":"BTCUSDT","q":"0.002","p":"0","m":false,
            "c":"autoclose-17","S":"SELL","L":"64089.20","l":"0.002","t":77,"i":9}"#;
        let UserEvent::TradeLite(t) = parse_event(lite).unwrap() else {
            panic!()
        };
        assert_eq!(
            (t.order_id, t.trade_id, t.origin),
            (9, 77, OrderOrigin::Liquidation)
        );
        let au = r#"{"e":"ACCOUNT_UPDATE","E":6,"T":6,"a":{"m":"ORDER","B":[],
            "P":[{"s":"BTCUSDT","pa":"-0.010","ep":"65000","up":"0","mt":"cross","ps":"BOTH"}]}}"#;
        let UserEvent::AccountUpdate(a) = parse_event(au).unwrap() else {
            panic!()
        };
        assert_eq!(a.positions[0].amount.to_string(), "-0.01");
        let hedge = au.replace(r#""ps":"BOTH""#, r#""ps":"SHORT""#);
        let UserEvent::AccountUpdate(a) = parse_event(&hedge).unwrap() else {
            panic!()
        };
        assert_eq!(a.positions[0].position_side, PositionSide::Short);
        let long = otu.replace(r#""ps":"BOTH""#, r#""ps":"LONG""#);
        let UserEvent::OrderTradeUpdate(o) = parse_event(&long).unwrap() else {
            panic!()
        };
        assert_eq!(o.position_side, PositionSide::Long);
        assert_eq!(o.to_order().position_side, PositionSide::Long);
        assert_eq!(
            parse_event(r#"{"e":"listenKeyExpired","E":7,"listenKey":"k"}"#).unwrap(),
            UserEvent::ListenKeyExpired { event_time: 7 }
        );
        assert!(parse_event("nope").is_err());
        assert!(parse_event(r#"{"e":"ORDER_TRADE_UPDATE","o":{"s":"X"}}"#).is_err());
    }

    #[test]
    fn stream_urls_use_the_private_route() {
        let k = ListenKey::new("KEY");
        assert_eq!(
            stream_url("wss://fstream.binance.com/private/", &k, StreamMode::Ws),
            "wss://fstream.binance.com/private/ws?listenKey=KEY&events=ORDER_TRADE_UPDATE/TRADE_LITE/ACCOUNT_UPDATE/listenKeyExpired"
        );
        assert!(
            stream_url("ws://127.0.0.1:1/private", &k, StreamMode::Stream)
                .starts_with("ws://127.0.0.1:1/private/stream?listenKey=KEY&events=")
        );
    }
}
