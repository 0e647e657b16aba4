//! The order path: quantities on the step grid, REST or WebSocket API, and **never an order
//! twice**.
//!
//! A placement that fails ambiguously (timeout, connection lost after sending, 503 "Unknown
//! error") is resolved by `GET /fapi/v1/order?origClientOrderId=…` before anything else:
//! found means placed; -2013 means not placed *yet*, and becomes "never placed" only once the
//! lost request's `timestamp + recvWindow` has passed on the server clock, after which the
//! matching engine would refuse it (-1021/-5028). Only then is the order sent again, with the
//! same client id. A lookup that keeps failing leaves the order unresolved and unsent.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use quantum_core::fixed::Qty;

use crate::common::filters::{ExchangeInfo, SymbolFilters};
use crate::common::rate_limit::RateLimiter;
use crate::common::sign::Credentials;
use crate::common::time::ServerClock;
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::futures::http::HttpClient;
use crate::futures::models::{NewOrder, Order, PositionRisk, PositionRiskVersion, Side};
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

/// REST and WebSocket API clients sharing one clock, one limiter and the symbol filters.
#[derive(Clone, Debug)]
pub struct FuturesClient {
    cfg: ClientConfig,
    http: HttpClient,
    ws: WsApiClient,
    filters: Arc<RwLock<HashMap<String, SymbolFilters>>>,
}

/// What resolving an ambiguous placement found.
#[derive(Debug)]
pub enum Resolution {
    /// The order exists, in this state.
    Placed(Order),
    /// No such order, and the request that may have carried it can no longer be accepted.
    NeverPlaced,
}

impl FuturesClient {
    /// Builds the clients without any network traffic.
    pub fn new(cfg: ClientConfig, creds: Credentials) -> Result<FuturesClient> {
        let clock = ServerClock::default();
        let limiter = Arc::new(RateLimiter::new(cfg.rate_limit));
        let http = HttpClient::new(&cfg, creds.clone(), clock.clone(), limiter.clone())?;
        let ws = WsApiClient::new(&cfg, creds, clock, limiter)?;
        Ok(FuturesClient {
            cfg,
            http,
            ws,
            filters: Arc::default(),
        })
    }

    /// [`FuturesClient::new`], then the server time offset and `exchangeInfo`.
    pub async fn connect(cfg: ClientConfig, creds: Credentials) -> Result<FuturesClient> {
        let c = FuturesClient::new(cfg, creds)?;
        c.http.sync_time().await?;
        c.load_filters().await?;
        Ok(c)
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

    /// Re-measures the server time offset.
    pub async fn sync_time(&self) -> Result<i64> {
        self.http.sync_time().await
    }

    /// Loads `exchangeInfo` and keeps its filters and rate limits.
    pub async fn load_filters(&self) -> Result<ExchangeInfo> {
        let info = self.http.exchange_info().await?;
        let mut f = self.filters.write().unwrap_or_else(|e| e.into_inner());
        *f = info.symbols.clone();
        Ok(info)
    }

    /// The filters of `symbol`.
    pub fn filters(&self, symbol: &str) -> Result<SymbolFilters> {
        self.filters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(symbol)
            .cloned()
            .ok_or_else(|| Error::UnknownSymbol(symbol.to_owned()))
    }

    /// A reduce-only MARKET order for `qty` rounded down to the symbol's step, sent by REST,
    /// never twice (see the module doc).
    pub async fn place_market_reduce_only(
        &self,
        symbol: &str,
        side: Side,
        qty: Qty,
        client_order_id: &str,
    ) -> Result<Order> {
        self.place_market_reduce_only_via(Transport::Rest, symbol, side, qty, client_order_id)
            .await
    }

    /// [`FuturesClient::place_market_reduce_only`] over the chosen transport.
    pub async fn place_market_reduce_only_via(
        &self,
        transport: Transport,
        symbol: &str,
        side: Side,
        qty: Qty,
        client_order_id: &str,
    ) -> Result<Order> {
        let f = self.filters(symbol)?;
        let (_, quantity) = f.market_qty(qty).map_err(|source| Error::Quantity {
            symbol: symbol.to_owned(),
            source,
        })?;
        let order = NewOrder {
            symbol: symbol.to_owned(),
            side,
            quantity,
            reduce_only: true,
            client_order_id: client_order_id.to_owned(),
        };
        self.place_once_only(transport, &order).await
    }

    /// Sends `order` as is (no quantity checks) and resolves an ambiguous outcome by client
    /// id; re-sends only an order proven never placed, at most `resolve.max_sends` times.
    pub async fn place_once_only(&self, transport: Transport, order: &NewOrder) -> Result<Order> {
        let mut sends = 0;
        loop {
            sends += 1;
            let err = match self.place_raw(transport, order).await {
                Ok(o) => return Ok(o),
                Err(e) if !e.outcome_unknown() => return Err(e),
                Err(e) => e,
            };
            tracing::warn!(
                client_order_id = %order.client_order_id, error = %err,
                "order outcome unknown; looking it up by client id before anything else"
            );
            let failed_at = self.clock().now_ms();
            match self.resolve(order, failed_at).await? {
                Resolution::Placed(o) => return Ok(o),
                Resolution::NeverPlaced if sends < self.cfg.resolve.max_sends => {
                    tracing::info!(client_order_id = %order.client_order_id, "order was never placed; sending it again");
                }
                Resolution::NeverPlaced => return Err(err),
            }
        }
    }

    /// One placement attempt, no resolution.
    pub async fn place_raw(&self, transport: Transport, order: &NewOrder) -> Result<Order> {
        match transport {
            Transport::Rest => self.http.place_order(order).await,
            Transport::WsApi => self.ws.place_order(order).await,
        }
    }

    /// Looks `order` up by client id until it is found, or until the server time passes
    /// `failed_at` (server ms: when the request that may have carried it was sent, or later)
    /// plus the recvWindow and a margin, after which a -2013 means it was never placed.
    pub async fn resolve(&self, order: &NewOrder, failed_at: i64) -> Result<Resolution> {
        let r = self.cfg.resolve;
        // After this server time the lost request can no longer be accepted.
        let settled_at =
            failed_at + self.cfg.recv_window_ms as i64 + r.settle_margin.as_millis() as i64;
        let mut failures = 0;
        loop {
            match self
                .http
                .query_order(&order.symbol, &order.client_order_id)
                .await
            {
                Ok(o) => return Ok(Resolution::Placed(o)),
                Err(Error::Api(e)) if e.code == -2013 => {
                    let now = self.clock().now_ms();
                    if now >= settled_at {
                        return Ok(Resolution::NeverPlaced);
                    }
                    tokio::time::sleep(Duration::from_millis((settled_at - now) as u64)).await;
                }
                Err(e) => {
                    failures += 1;
                    if failures >= r.max_lookups {
                        return Err(Error::Unresolved {
                            client_order_id: order.client_order_id.clone(),
                            lookups: failures,
                            last: Box::new(e),
                        });
                    }
                    let pause = match &e {
                        Error::RateLimited { wait_ms } | Error::Banned { wait_ms } => {
                            Duration::from_millis(*wait_ms).max(r.lookup_pause)
                        }
                        _ => r.lookup_pause,
                    };
                    tracing::warn!(client_order_id = %order.client_order_id, error = %e, "order lookup failed; retrying the lookup");
                    tokio::time::sleep(pause).await;
                }
            }
        }
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
}
