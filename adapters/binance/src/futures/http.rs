//! Signed REST client for `/fapi`: signing, server time, rate limits, and one method per
//! endpoint the adapter uses. Every method sends at most one request; retries and the
//! never-twice order logic live in [`super::client`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value;

use crate::common::error::ApiError;
use crate::common::filters::ExchangeInfo;
use crate::common::rate_limit::{ban_until_from_msg, RateLimiter};
use crate::common::secret::ListenKey;
use crate::common::sign::{encode_params, encode_value, Credentials};
use crate::common::time::{local_ms, ServerClock};
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::futures::fence::{self, Fence};
use crate::futures::models::{MarkPrice, NewOrder, Order, PositionRisk, PositionRiskVersion};

/// How a request is authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Auth {
    /// Public.
    None,
    /// `X-MBX-APIKEY` only (listenKey).
    Key,
    /// Key plus `timestamp`, `recvWindow` and `signature`.
    Signed,
}

/// Counters of what the client did (tests and `quantum ctl` read them).
#[derive(Debug, Default)]
pub struct HttpStats {
    /// Requests that went out.
    pub sent: AtomicU64,
    /// 429 answers.
    pub answers_429: AtomicU64,
    /// 418 answers.
    pub answers_418: AtomicU64,
    /// Requests refused locally by the rate limiter.
    pub held_back: AtomicU64,
}

/// Request weight of `GET /fapi/v1/positionSide/dual`.
pub const DUAL_SIDE_WEIGHT: u32 = 30;

/// REST client. Cheap to clone; clones share the clock, limiter and connection pool.
#[derive(Clone, Debug)]
pub struct HttpClient {
    http: reqwest::Client,
    base: String,
    creds: Arc<Credentials>,
    clock: ServerClock,
    limiter: Arc<RateLimiter>,
    recv_window_ms: u64,
    stats: Arc<HttpStats>,
    /// With failover on: every order request passes it ([`fence::stamped`]).
    fence: Option<Arc<Fence>>,
}

fn header_u32(h: &HeaderMap, name: &str) -> Option<u32> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl HttpClient {
    /// A client for `cfg.endpoints.rest`.
    pub fn new(
        cfg: &ClientConfig,
        creds: Credentials,
        clock: ServerClock,
        limiter: Arc<RateLimiter>,
    ) -> Result<HttpClient> {
        cfg.endpoints.check(cfg.network)?;
        let http = reqwest::Client::builder()
            // Binance never redirects its API; a redirect followed would carry the signed
            // request and the key past the mainnet guard (see `Error::Redirected`).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(cfg.request_timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|source| Error::http("BUILD", "", source))?;
        Ok(HttpClient {
            http,
            base: cfg.endpoints.rest.trim_end_matches('/').to_owned(),
            creds: Arc::new(creds),
            clock,
            limiter,
            recv_window_ms: cfg.recv_window_ms,
            stats: Arc::default(),
            fence: None,
        })
    }

    /// The server clock (shared with the WebSocket API client).
    pub fn clock(&self) -> &ServerClock {
        &self.clock
    }

    /// The limiter.
    pub fn limiter(&self) -> &Arc<RateLimiter> {
        &self.limiter
    }

    /// Counters.
    pub fn stats(&self) -> &HttpStats {
        &self.stats
    }

    /// Fences every order request of this client (and of its clones made after).
    pub(crate) fn set_fence(&mut self, fence: Arc<Fence>) {
        self.fence = Some(fence);
    }

    async fn admit(&self, weight: u32, order: bool) -> Result<()> {
        let max_wait = self.limiter.config().max_wait;
        loop {
            match self.limiter.admit(weight, order, self.clock.now_ms()) {
                Ok(()) => return Ok(()),
                Err(b) if Duration::from_millis(b.wait_ms) <= max_wait => {
                    tokio::time::sleep(Duration::from_millis(b.wait_ms.max(1))).await;
                }
                Err(b) => {
                    self.stats.held_back.fetch_add(1, Ordering::Relaxed);
                    return Err(if b.banned {
                        Error::Banned { wait_ms: b.wait_ms }
                    } else {
                        Error::RateLimited { wait_ms: b.wait_ms }
                    });
                }
            }
        }
    }

    /// Sends one request and returns the JSON body of a 2xx answer.
    pub(crate) async fn request(
        &self,
        method: Method,
        path: &'static str,
        params: Vec<(&'static str, String)>,
        auth: Auth,
        weight: u32,
        order: bool,
    ) -> Result<Value> {
        self.request_stamped(method, path, params, auth, weight, order, &mut None)
            .await
    }

    /// [`HttpClient::request`], setting `sent` to the instant the signed request was handed
    /// to the HTTP client (after the limiter and the fence); left as it is when it was not.
    #[allow(clippy::too_many_arguments)]
    async fn request_stamped(
        &self,
        method: Method,
        path: &'static str,
        params: Vec<(&'static str, String)>,
        auth: Auth,
        weight: u32,
        order: bool,
        sent: &mut Option<Instant>,
    ) -> Result<Value> {
        self.admit(weight, order).await?;
        // Order requests pass the failover fence after they are signed, right before they
        // leave; the others (lookups, positions, history) go in any role.
        let fence = if order { self.fence.as_deref() } else { None };
        let method_name: &'static str = match method {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::DELETE => "DELETE",
            _ => "OTHER",
        };
        let rb = fence::stamped(fence, &self.clock, |timestamp| {
            self.build(&method, path, &params, auth, timestamp)
        })
        .await?;
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        // The path only: the query and body carry the signature.
        tracing::debug!(method = method_name, path, "REST request");
        let http_err = |source| Error::http(method_name, path, source);
        *sent = Some(Instant::now());
        let resp = rb.send().await.map_err(http_err)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        if resp.status().is_redirection() {
            let location = headers
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok());
            let e = Error::redirected(method_name, path, status, resp.url(), location);
            tracing::error!(error = %e, "redirect refused");
            return Err(e);
        }
        let now = self.clock.now_ms();
        self.limiter.observe(
            header_u32(&headers, "x-mbx-used-weight-1m"),
            header_u32(&headers, "x-mbx-order-count-10s"),
            header_u32(&headers, "x-mbx-order-count-1m"),
            now,
        );
        let body = resp.bytes().await.map_err(http_err)?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&body)
                .map_err(|source| Error::Decode { what: path, source });
        }
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let code = v["code"].as_i64().unwrap_or(0);
        let msg = v["msg"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
        let retry_after =
            header_u32(&headers, "retry-after").map(|s| Duration::from_secs(s.into()));
        match status {
            429 => {
                self.stats.answers_429.fetch_add(1, Ordering::Relaxed);
                self.limiter.on_429(retry_after, now);
                tracing::warn!(path, code, "Binance answered 429: backing off");
            }
            418 => {
                self.stats.answers_418.fetch_add(1, Ordering::Relaxed);
                self.limiter
                    .on_418(ban_until_from_msg(&msg), retry_after, now);
                tracing::error!(
                    path,
                    code,
                    "Binance answered 418: IP banned, sending nothing until the ban ends"
                );
            }
            _ => {}
        }
        Err(Error::Api(ApiError::new(status, code, msg)))
    }

    /// The request, signed with `timestamp` when `auth` says so.
    fn build(
        &self,
        method: &Method,
        path: &'static str,
        params: &[(&'static str, String)],
        auth: Auth,
        timestamp: i64,
    ) -> reqwest::RequestBuilder {
        let mut params = params.to_vec();
        if auth == Auth::Signed {
            params.push(("recvWindow", self.recv_window_ms.to_string()));
            params.push(("timestamp", timestamp.to_string()));
        }
        let mut payload = encode_params(&params);
        if auth == Auth::Signed {
            // Hex (HMAC) needs no escaping; base64 (Ed25519) does: '+', '/', '='.
            let sig = encode_value(&self.creds.sign(&payload));
            if !payload.is_empty() {
                payload.push('&');
            }
            payload.push_str("signature=");
            payload.push_str(&sig);
        }
        let url = format!("{}{path}", self.base);
        let mut rb = if *method == Method::POST && !payload.is_empty() {
            self.http
                .request(method.clone(), url)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(payload)
        } else if payload.is_empty() {
            self.http.request(method.clone(), url)
        } else {
            self.http
                .request(method.clone(), format!("{url}?{payload}"))
        };
        if auth != Auth::None {
            rb = rb.header("X-MBX-APIKEY", self.creds.api_key());
        }
        rb
    }

    /// `GET /fapi/v1/time`; sets the clock offset and returns it.
    pub async fn sync_time(&self) -> Result<i64> {
        let sent = local_ms();
        let v = self
            .request(Method::GET, "/fapi/v1/time", vec![], Auth::None, 1, false)
            .await?;
        let received = local_ms();
        let server = v["serverTime"].as_i64().ok_or(Error::Field {
            what: "time",
            field: "serverTime",
        })?;
        Ok(self.clock.observe(sent, server, received))
    }

    /// `GET /fapi/v1/exchangeInfo`; also adopts its rate limits.
    pub async fn exchange_info(&self) -> Result<ExchangeInfo> {
        let v = self
            .request(
                Method::GET,
                "/fapi/v1/exchangeInfo",
                vec![],
                Auth::None,
                1,
                false,
            )
            .await?;
        let info = ExchangeInfo::parse(v.to_string().as_bytes())?;
        self.limiter.set_limits(info.limits);
        Ok(info)
    }

    /// `POST /fapi/v1/order` (one attempt).
    pub async fn place_order(&self, order: &NewOrder) -> Result<Order> {
        self.place_order_stamped(order, &mut None).await
    }

    /// [`HttpClient::place_order`], setting `sent` to the instant the request was handed to
    /// the HTTP client (left as it is when it was not).
    pub async fn place_order_stamped(
        &self,
        order: &NewOrder,
        sent: &mut Option<Instant>,
    ) -> Result<Order> {
        let v = self
            .request_stamped(
                Method::POST,
                "/fapi/v1/order",
                order.params(),
                Auth::Signed,
                0,
                true,
                sent,
            )
            .await?;
        Order::from_json(&v)
    }

    /// `GET /fapi/v1/order?origClientOrderId=…`.
    pub async fn query_order(&self, symbol: &str, orig_client_order_id: &str) -> Result<Order> {
        let p = vec![
            ("symbol", symbol.to_owned()),
            ("origClientOrderId", orig_client_order_id.to_owned()),
        ];
        let v = self
            .request(Method::GET, "/fapi/v1/order", p, Auth::Signed, 1, false)
            .await?;
        Order::from_json(&v)
    }

    /// `DELETE /fapi/v1/order?origClientOrderId=…`.
    pub async fn cancel_order(&self, symbol: &str, orig_client_order_id: &str) -> Result<Order> {
        let p = vec![
            ("symbol", symbol.to_owned()),
            ("origClientOrderId", orig_client_order_id.to_owned()),
        ];
        let v = self
            .request(Method::DELETE, "/fapi/v1/order", p, Auth::Signed, 1, false)
            .await?;
        Order::from_json(&v)
    }

    /// `GET /fapi/v2|v3/positionRisk`, optionally for one symbol.
    pub async fn position_risk(
        &self,
        version: PositionRiskVersion,
        symbol: Option<&str>,
    ) -> Result<Vec<PositionRisk>> {
        let path = match version {
            PositionRiskVersion::V2 => "/fapi/v2/positionRisk",
            PositionRiskVersion::V3 => "/fapi/v3/positionRisk",
        };
        let p = symbol
            .map(|s| vec![("symbol", s.to_owned())])
            .unwrap_or_default();
        let v = self
            .request(Method::GET, path, p, Auth::Signed, 5, false)
            .await?;
        v.as_array()
            .ok_or(Error::Field {
                what: "positionRisk",
                field: "[]",
            })?
            .iter()
            .map(PositionRisk::from_json)
            .collect()
    }

    /// `GET /fapi/v1/positionSide/dual` (signed, weight 30): the account's position mode,
    /// `true` for hedge (dual-side) mode, `false` for one-way mode.
    pub async fn dual_side_position(&self) -> Result<bool> {
        let v = self
            .request(
                Method::GET,
                "/fapi/v1/positionSide/dual",
                vec![],
                Auth::Signed,
                DUAL_SIDE_WEIGHT,
                false,
            )
            .await?;
        v["dualSidePosition"].as_bool().ok_or(Error::Field {
            what: "positionSide/dual",
            field: "dualSidePosition",
        })
    }

    /// `GET /fapi/v1/premiumIndex`: mark prices of every symbol (weight 10), or of one (1).
    pub async fn mark_prices(&self, symbol: Option<&str>) -> Result<Vec<MarkPrice>> {
        let p = symbol
            .map(|s| vec![("symbol", s.to_owned())])
            .unwrap_or_default();
        let weight = if symbol.is_some() { 1 } else { 10 };
        let v = self
            .request(
                Method::GET,
                "/fapi/v1/premiumIndex",
                p,
                Auth::None,
                weight,
                false,
            )
            .await?;
        match &v {
            Value::Array(rows) => rows.iter().map(MarkPrice::from_json).collect(),
            row => Ok(vec![MarkPrice::from_json(row)?]),
        }
    }

    /// `POST /fapi/v1/listenKey`: the active key (created if none), its life extended.
    pub async fn listen_key_create(&self) -> Result<ListenKey> {
        let v = self
            .request(
                Method::POST,
                "/fapi/v1/listenKey",
                vec![],
                Auth::Key,
                1,
                false,
            )
            .await?;
        v["listenKey"]
            .as_str()
            .map(ListenKey::new)
            .ok_or(Error::Field {
                what: "listenKey",
                field: "listenKey",
            })
    }

    /// `PUT /fapi/v1/listenKey`: keeps the key alive another 60 minutes (-1125 once expired).
    pub async fn listen_key_keepalive(&self) -> Result<()> {
        self.request(
            Method::PUT,
            "/fapi/v1/listenKey",
            vec![],
            Auth::Key,
            1,
            false,
        )
        .await
        .map(drop)
    }

    /// `DELETE /fapi/v1/listenKey`.
    pub async fn listen_key_close(&self) -> Result<()> {
        self.request(
            Method::DELETE,
            "/fapi/v1/listenKey",
            vec![],
            Auth::Key,
            1,
            false,
        )
        .await
        .map(drop)
    }
}
