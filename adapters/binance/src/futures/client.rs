//! The order path: quantities on the step grid, REST or WebSocket API, and **never an order
//! twice**.
//!
//! Two levels (the vocabulary is in [`super::outcome`]):
//! - [`FuturesClient::place`] sends once and says what it knows: placed, rejected (nothing
//!   placed), or unknown; [`FuturesClient::resolve`] then settles an unknown by client id: a
//!   lookup that finds the order, a user stream confirmation ([`super::confirmations`]), or
//!   -2013 once `recvWindow` plus a margin of at least a second has passed since the send on
//!   the monotonic clock ("never placed"; the wall clock and the server offset may step);
//!   -2013 earlier means "not known yet" and the lookup is repeated. The
//!   same `resolve` serves orders re-offered after a restart ([`SentAt::AssumeNow`]).
//! - [`FuturesClient::place_once_only`] composes them: an unknown is resolved; an order proven
//!   never placed is sent again with the same client id, at most `resolve.max_sends` times in
//!   all; a lookup that keeps failing leaves the order unresolved and unsent. Its `_observed`
//!   form reports each step ([`OrderEvent`]) so a caller can tell the core "unknown" and later
//!   "resolved (found in state X / never placed)".
//!
//! Error codes: -1006, -1007, a timeout, a dropped connection, any 5xx but -1008, an answer
//! without a Binance code (a gateway's page) and a redirect are unknown, never rejected. -4116 (an open order already has this client id) is looked up:
//! the open order may be ours from an earlier attempt. -1008 (system-level throttling) is a
//! refusal, nothing placed; Binance exempts reduce-only and close-position orders from it, so
//! on a reduce-only order it is logged as unexpected, and in either case it is returned to the
//! caller, not re-sent here.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use quantum_core::fixed::{Price, Qty};
use quantum_ipc::codes::PositionSide;

use crate::common::filters::{ExchangeInfo, SymbolFilters};
use crate::common::rate_limit::RateLimiter;
use crate::common::secret::ListenKey;
use crate::common::sign::Credentials;
use crate::common::time::ServerClock;
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::futures::confirmations::Confirmations;
use crate::futures::fence::Fence;
use crate::futures::http::HttpClient;
use crate::futures::models::{NewOrder, Order, PositionRisk, PositionRiskVersion, Side};
use crate::futures::outcome::{
    FoundBy, OrderEvent, Pending, Placement, Resolution, SentAt, Unknown,
};
use crate::futures::user_stream::UserStream;
use crate::futures::websocket_api::WsApiClient;

/// How an order is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Transport {
    /// `POST /fapi/v1/order`.
    #[default]
    Rest,
    /// `order.place` on the WebSocket API.
    WsApi,
}

impl Transport {
    /// Both transports.
    pub const ALL: [Transport; 2] = [Transport::Rest, Transport::WsApi];

    /// Its name in logs and in the bridge's latency series (`transport=rest|ws`).
    pub fn name(self) -> &'static str {
        match self {
            Transport::Rest => "rest",
            Transport::WsApi => "ws",
        }
    }
}

/// REST and WebSocket API clients sharing one clock, one limiter, the symbol filters and the
/// confirmations registry. Cheap to clone; clones share everything.
#[derive(Clone, Debug)]
pub struct FuturesClient {
    cfg: ClientConfig,
    http: HttpClient,
    ws: WsApiClient,
    filters: Arc<RwLock<HashMap<String, SymbolFilters>>>,
    statuses: Arc<RwLock<HashMap<String, String>>>,
    confirmations: Confirmations,
    fence: Option<Arc<Fence>>,
}

impl FuturesClient {
    /// Builds the clients without any network traffic. Every URL passes the mainnet guard
    /// first.
    pub fn new(cfg: ClientConfig, creds: Credentials) -> Result<FuturesClient> {
        cfg.endpoints.check(cfg.network)?;
        let clock = ServerClock::default();
        let limiter = Arc::new(RateLimiter::new(cfg.rate_limit));
        let http = HttpClient::new(&cfg, creds.clone(), clock.clone(), limiter.clone())?;
        let ws = WsApiClient::new(&cfg, creds, clock, limiter)?;
        Ok(FuturesClient {
            cfg,
            http,
            ws,
            filters: Arc::default(),
            statuses: Arc::default(),
            confirmations: Confirmations::default(),
            fence: None,
        })
    }

    /// [`FuturesClient::new`], then the server time offset and `exchangeInfo`.
    pub async fn connect(cfg: ClientConfig, creds: Credentials) -> Result<FuturesClient> {
        let c = FuturesClient::new(cfg, creds)?;
        c.http.sync_time().await?;
        c.load_filters().await?;
        Ok(c)
    }

    /// Fences every order this client sends, over REST and the WebSocket API alike, by the
    /// failover lease ([`crate::futures::fence`]): an order leaves only while this host may
    /// send. Lookups, positions and the history are not fenced.
    pub fn with_fence(mut self, fence: Arc<Fence>) -> FuturesClient {
        self.http.set_fence(fence.clone());
        self.ws.set_fence(fence.clone());
        self.fence = Some(fence);
        self
    }

    /// The fence of [`FuturesClient::with_fence`], if any.
    pub fn fence(&self) -> Option<&Arc<Fence>> {
        self.fence.as_ref()
    }

    /// The REST client.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The WebSocket API client.
    pub fn ws_api(&self) -> &WsApiClient {
        &self.ws
    }

    /// The config.
    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// The shared server clock.
    pub fn clock(&self) -> &ServerClock {
        self.http.clock()
    }

    /// The confirmations registry every resolution of this client listens to. Whoever reads
    /// the user data stream feeds it; [`FuturesClient::user_stream`] does so by itself.
    pub fn confirmations(&self) -> &Confirmations {
        &self.confirmations
    }

    /// Re-measures the server time offset.
    pub async fn sync_time(&self) -> Result<i64> {
        self.http.sync_time().await
    }

    /// Loads `exchangeInfo` and keeps its filters, contract statuses and rate limits.
    pub async fn load_filters(&self) -> Result<ExchangeInfo> {
        let info = self.http.exchange_info().await?;
        *self.filters.write() = info.symbols.clone();
        *self.statuses.write() = info.statuses.clone();
        Ok(info)
    }

    /// The contract status of `symbol` in the last `exchangeInfo` read, as Binance wrote it.
    pub fn status(&self, symbol: &str) -> Option<String> {
        self.statuses.read().get(symbol).cloned()
    }

    /// The filters of `symbol`.
    pub fn filters(&self, symbol: &str) -> Result<SymbolFilters> {
        self.filters
            .read()
            .get(symbol)
            .cloned()
            .ok_or_else(|| Error::UnknownSymbol(symbol.to_owned()))
    }

    /// Opens the user data stream for `key` on the private route; its order updates confirm
    /// orders in [`FuturesClient::confirmations`].
    pub async fn user_stream(&self, key: &ListenKey) -> Result<UserStream> {
        UserStream::connect(&self.cfg, key, Some(self.confirmations.clone())).await
    }

    /// The MARKET order that closes `qty` (rounded down to the symbol's step) of the leg
    /// `position_side` of `symbol` ([`NewOrder::market_close`]: reduce-only on a `BOTH` leg,
    /// `positionSide=LONG|SHORT` without `reduceOnly` on a hedge leg), sent over `transport`,
    /// never twice (see the module doc).
    pub async fn place_market_close(
        &self,
        transport: Transport,
        symbol: &str,
        position_side: PositionSide,
        side: Side,
        qty: Qty,
        client_order_id: &str,
    ) -> Result<Order> {
        let f = self.filters(symbol)?;
        let (_, quantity) = f.market_qty(qty).map_err(|source| Error::Quantity {
            symbol: symbol.to_owned(),
            source,
        })?;
        let order = NewOrder::market_close(symbol, position_side, side, quantity, client_order_id)?;
        self.place_once_only(transport, &order).await
    }

    /// Sends `order` as is (no quantity checks), resolves an unknown outcome by client id, and
    /// re-sends only an order proven never placed, at most `resolve.max_sends` times.
    pub async fn place_once_only(&self, transport: Transport, order: &NewOrder) -> Result<Order> {
        self.place_once_only_observed(transport, order, &mut |_| {})
            .await
    }

    /// [`FuturesClient::place_once_only`], telling `on` each step: an unknown outcome, each
    /// "not known yet", the resolution, a re-send.
    pub async fn place_once_only_observed<F>(
        &self,
        transport: Transport,
        order: &NewOrder,
        on: &mut F,
    ) -> Result<Order>
    where
        F: FnMut(OrderEvent<'_>) + Send,
    {
        let cid = &order.client_order_id;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Unknown { pending, cause } = match self.place(transport, order).await {
                Placement::Placed(o) => return Ok(o),
                Placement::Rejected(e) => {
                    if e.api_code() == Some(-1008) && order.reduce_only {
                        tracing::warn!(
                            client_order_id = %cid, error = %e,
                            "-1008 on a reduce-only order, which Binance exempts from throttling; not re-sent"
                        );
                    }
                    return Err(e);
                }
                Placement::Unknown(u) => u,
            };
            let settles_at = self.settles_at(&pending);
            tracing::warn!(
                client_order_id = %cid, error = %cause, attempt,
                "order outcome unknown; looking it up by client id before anything else"
            );
            on(OrderEvent::Unknown {
                attempt,
                cause: &cause,
                settles_at,
            });
            match self.resolve_observed(&pending, on).await? {
                Resolution::Found { order, .. } => return Ok(order),
                Resolution::NeverPlaced if attempt < self.cfg.resolve.max_sends => {
                    // The stream may have confirmed it in the meantime: then it exists.
                    if let Some(c) = self.confirmations.get(cid) {
                        return Ok(c.order);
                    }
                    tracing::info!(client_order_id = %cid, "order was never placed; sending it again");
                    on(OrderEvent::Resending {
                        attempt: attempt + 1,
                    });
                }
                Resolution::NeverPlaced => return Err(cause),
            }
        }
    }

    /// One placement attempt, classified; no lookup, no re-send.
    pub async fn place(&self, transport: Transport, order: &NewOrder) -> Placement {
        self.place_stamped(transport, order).await.0
    }

    /// [`FuturesClient::place`], with the instant (monotonic clock) its request was handed to
    /// the connection (the HTTP client, or the WebSocket API connection's writer): after the
    /// rate limiter admitted it, it was signed and it passed the failover fence. `None` when
    /// nothing was handed over (refused by the limiter or the fence, no WebSocket connection).
    pub async fn place_stamped(
        &self,
        transport: Transport,
        order: &NewOrder,
    ) -> (Placement, Option<Instant>) {
        let mut sent = None;
        let answer = match transport {
            Transport::Rest => self.http.place_order_stamped(order, &mut sent).await,
            Transport::WsApi => self.ws.place_order_stamped(order, &mut sent).await,
        };
        let placement = match answer {
            Ok(o) => Placement::Placed(o),
            Err(cause) if cause.needs_lookup() => Placement::Unknown(Unknown {
                pending: Pending {
                    symbol: order.symbol.clone(),
                    client_order_id: order.client_order_id.clone(),
                    // The request left before the failure was seen: the failure time bounds
                    // its send from above.
                    sent_at: SentAt::At(Instant::now()),
                },
                cause,
            }),
            Err(e) => Placement::Rejected(e),
        };
        (placement, sent)
    }

    /// One placement attempt, no classification, no resolution.
    pub async fn place_raw(&self, transport: Transport, order: &NewOrder) -> Result<Order> {
        match transport {
            Transport::Rest => self.http.place_order(order).await,
            Transport::WsApi => self.ws.place_order(order).await,
        }
    }

    /// The instant (monotonic clock) after which -2013 for `pending` means "never placed".
    pub fn settles_at(&self, pending: &Pending) -> Instant {
        pending.settles_at(
            Instant::now(),
            Duration::from_millis(self.cfg.recv_window_ms),
            self.cfg.resolve.settle_margin,
        )
    }

    /// Settles an order whose existence is in doubt (see the module doc).
    pub async fn resolve(&self, pending: &Pending) -> Result<Resolution> {
        self.resolve_observed(pending, &mut |_| {}).await
    }

    /// [`FuturesClient::resolve`], telling `on` each "not known yet" and the resolution.
    pub async fn resolve_observed<F>(&self, pending: &Pending, on: &mut F) -> Result<Resolution>
    where
        F: FnMut(OrderEvent<'_>) + Send,
    {
        let r = self.cfg.resolve;
        let settles_at = self.settles_at(pending);
        let cid = pending.client_order_id.as_str();
        let stream = |c: crate::futures::confirmations::Confirmation| Resolution::Found {
            order: c.order,
            by: FoundBy::Stream,
        };
        let mut failures = 0;
        let resolution = loop {
            // Asked at or after this instant: a -2013 says nothing about earlier.
            let asked_at = Instant::now();
            let answer = tokio::select! {
                biased;
                c = self.confirmations.wait(cid) => break stream(c),
                a = self.http.query_order(&pending.symbol, cid) => a,
            };
            let pause = match answer {
                Ok(order) => {
                    break Resolution::Found {
                        order,
                        by: FoundBy::Lookup,
                    }
                }
                Err(Error::Api(e)) if e.code == -2013 => {
                    if asked_at >= settles_at {
                        break Resolution::NeverPlaced;
                    }
                    on(OrderEvent::NotKnownYet { settles_at });
                    let left = settles_at.saturating_duration_since(Instant::now());
                    r.lookup_pause.min(left)
                }
                Err(e) => {
                    failures += 1;
                    if failures >= r.max_lookups {
                        return Err(Error::Unresolved {
                            client_order_id: cid.to_owned(),
                            lookups: failures,
                            last: Box::new(e),
                        });
                    }
                    tracing::warn!(client_order_id = %cid, error = %e, "order lookup failed; retrying the lookup");
                    match &e {
                        Error::RateLimited { wait_ms } | Error::Banned { wait_ms } => {
                            Duration::from_millis(*wait_ms).max(r.lookup_pause)
                        }
                        _ => r.lookup_pause,
                    }
                }
            };
            tokio::select! {
                biased;
                c = self.confirmations.wait(cid) => break stream(c),
                _ = tokio::time::sleep(pause) => {}
            }
        };
        on(OrderEvent::Resolved(&resolution));
        Ok(resolution)
    }

    /// `GET /fapi/v1/order` by client id.
    pub async fn query_order(&self, symbol: &str, orig_client_order_id: &str) -> Result<Order> {
        self.http.query_order(symbol, orig_client_order_id).await
    }

    /// `DELETE /fapi/v1/order` by client id.
    pub async fn cancel(&self, symbol: &str, orig_client_order_id: &str) -> Result<Order> {
        self.http.cancel_order(symbol, orig_client_order_id).await
    }

    /// positionRisk, every symbol or one.
    pub async fn position_risk(
        &self,
        version: PositionRiskVersion,
        symbol: Option<&str>,
    ) -> Result<Vec<PositionRisk>> {
        self.http.position_risk(version, symbol).await
    }

    /// The positions of `symbols` by positionRisk v3, flat ones included: v3 lists only
    /// symbols with a position or open orders, so each symbol it leaves out gets a flat
    /// `BOTH` row, priced from `premiumIndex` (fetched only when some symbol is missing).
    pub async fn positions(&self, symbols: &[&str]) -> Result<Vec<PositionRisk>> {
        let mut rows = self.position_risk(PositionRiskVersion::V3, None).await?;
        let listed: HashSet<String> = rows.iter().map(|r| r.symbol.clone()).collect();
        let missing: Vec<&str> = symbols
            .iter()
            .copied()
            .filter(|s| !listed.contains(*s))
            .collect();
        if missing.is_empty() {
            return Ok(rows);
        }
        let marks: HashMap<String, (Price, u64)> = self
            .http
            .mark_prices(None)
            .await?
            .into_iter()
            .map(|m| (m.symbol, (m.mark_price, m.time)))
            .collect();
        for s in missing {
            let (mark_price, time) = marks.get(s).copied().unwrap_or((Price::ZERO, 0));
            rows.push(PositionRisk {
                symbol: s.to_owned(),
                position_side: "BOTH".into(),
                position_amt: Qty::ZERO,
                entry_price: Price::ZERO,
                mark_price,
                update_time: time,
            });
        }
        Ok(rows)
    }
}
