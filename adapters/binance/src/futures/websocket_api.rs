//! WebSocket API client (`/ws-fapi/v1`): `order.place`, `order.status`, `order.cancel` over
//! one long-lived connection.
//!
//! Requests carry an id; a reader task routes each answer to its waiter, so several requests
//! may be in flight. How requests are authenticated depends on the key
//! ([`crate::common::sign`]): with an Ed25519 key every new connection is logged on first
//! (`session.logon`, signed once), and requests then carry only their params and `timestamp`;
//! with an HMAC key (which Binance does not accept for `session.logon`) each request carries
//! `apiKey` and a `signature` of its params sorted by name. When the connection drops, every
//! waiter gets [`Error::WsClosed`] (an order's outcome is then unknown) and the next request
//! connects (and logs on) again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use crate::common::error::ApiError;
use crate::common::rate_limit::RateLimiter;
use crate::common::sign::{ws_payload, Credentials, KeyKind};
use crate::common::time::ServerClock;
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::futures::fence::{self, Fence};
use crate::futures::models::{NewOrder, Order};

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value>>>>>;

#[derive(Debug)]
struct Conn {
    tx: mpsc::UnboundedSender<Message>,
    waiters: Waiters,
    alive: Arc<AtomicBool>,
    logged_on: bool,
}

/// A live connection's request path.
#[derive(Clone)]
struct Link {
    tx: mpsc::UnboundedSender<Message>,
    waiters: Waiters,
    /// `session.logon` succeeded on this connection: requests need no apiKey or signature.
    logged_on: bool,
}

/// WebSocket API client. Cheap to clone; clones share the connection.
#[derive(Clone, Debug)]
pub struct WsApiClient {
    url: String,
    creds: Arc<Credentials>,
    clock: ServerClock,
    limiter: Arc<RateLimiter>,
    recv_window_ms: u64,
    timeout: Duration,
    next_id: Arc<AtomicU64>,
    conn: Arc<tokio::sync::Mutex<Option<Conn>>>,
    /// With failover on: every order request passes it ([`fence::stamped`]).
    fence: Option<Arc<Fence>>,
}

impl WsApiClient {
    /// A client for `cfg.endpoints.ws_api`; connects on first use (or [`WsApiClient::connect`]).
    pub fn new(
        cfg: &ClientConfig,
        creds: Credentials,
        clock: ServerClock,
        limiter: Arc<RateLimiter>,
    ) -> Result<WsApiClient> {
        cfg.endpoints.check(cfg.network)?;
        Ok(WsApiClient {
            url: cfg.endpoints.ws_api.clone(),
            creds: Arc::new(creds),
            clock,
            limiter,
            recv_window_ms: cfg.recv_window_ms,
            timeout: cfg.request_timeout,
            next_id: Arc::new(AtomicU64::new(1)),
            conn: Arc::default(),
            fence: None,
        })
    }

    /// Fences every order request of this client (and of its clones made after).
    pub(crate) fn set_fence(&mut self, fence: Arc<Fence>) {
        self.fence = Some(fence);
    }

    /// Opens the connection (and logs the session on, with an Ed25519 key) now if it is not
    /// open.
    pub async fn connect(&self) -> Result<()> {
        self.link().await.map(drop)
    }

    async fn link(&self) -> Result<Link> {
        let mut g = self.conn.lock().await;
        if let Some(c) = g.as_ref() {
            // Acquire pairs with the reader task's Release store when it ends.
            if c.alive.load(Ordering::Acquire) {
                return Ok(Link {
                    tx: c.tx.clone(),
                    waiters: c.waiters.clone(),
                    logged_on: c.logged_on,
                });
            }
        }
        tracing::debug!("connecting the WebSocket API");
        let (ws, _) = tokio_tungstenite::connect_async(self.url.as_str())
            .await
            .map_err(|e| Error::ws("connect", e))?;
        let (mut sink, mut stream) = ws.split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
        let waiters: Waiters = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        let (w2, a2, limiter, clock) = (
            waiters.clone(),
            alive.clone(),
            self.limiter.clone(),
            self.clock.clone(),
        );
        let writer_tx = tx.clone();
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if sink.send(m).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        tokio::spawn(async move {
            while let Some(msg) = stream.next().await {
                match msg {
                    Ok(Message::Text(t)) => route(&t, &w2, &limiter, &clock),
                    Ok(Message::Ping(p)) => {
                        let _ = writer_tx.send(Message::Pong(p));
                    }
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            // Release pairs with the Acquire load in `link`.
            a2.store(false, Ordering::Release);
            for (id, w) in w2.lock().drain() {
                let _ = w.send(Err(Error::WsClosed { id }));
            }
        });
        let mut link = Link {
            tx: tx.clone(),
            waiters: waiters.clone(),
            logged_on: false,
        };
        if self.creds.kind() == KeyKind::Ed25519 {
            // Nothing else goes out on this connection before the session is logged on.
            let params = self.signed(&[], false, self.clock.now_ms());
            if let Err(e) = self.send(&link, "session.logon", params, &mut None).await {
                let _ = tx.send(Message::Close(None));
                return Err(Error::SessionLogon {
                    source: Box::new(e),
                });
            }
            link.logged_on = true;
            tracing::debug!("WebSocket API session logged on");
        }
        *g = Some(Conn {
            tx,
            waiters,
            alive,
            logged_on: link.logged_on,
        });
        Ok(link)
    }

    /// `params` with `recvWindow` and `timestamp`, and unless the session is logged on,
    /// `apiKey` and the signature.
    fn signed(
        &self,
        params: &[(&'static str, String)],
        logged_on: bool,
        timestamp: i64,
    ) -> Map<String, Value> {
        let mut p: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        if !logged_on {
            p.push(("apiKey".into(), self.creds.api_key().to_owned()));
        }
        p.push(("recvWindow".into(), self.recv_window_ms.to_string()));
        p.push(("timestamp".into(), timestamp.to_string()));
        let signature = (!logged_on).then(|| self.creds.sign(&ws_payload(&p)));
        let mut obj = Map::new();
        for (k, v) in p {
            obj.insert(k, Value::String(v));
        }
        if let Some(sig) = signature {
            obj.insert("signature".into(), Value::String(sig));
        }
        obj
    }

    /// Sends one request on `link` and waits for its answer's `result`; `sent` is set to the
    /// instant the request was handed to the connection's writer.
    async fn send(
        &self,
        link: &Link,
        method: &str,
        params: Map<String, Value>,
        sent: &mut Option<Instant>,
    ) -> Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let req = serde_json::json!({"id": id, "method": method, "params": params});
        tracing::debug!(id, method, "WebSocket API request");
        let (wtx, wrx) = oneshot::channel();
        link.waiters.lock().insert(id, wtx);
        if link.tx.send(Message::Text(req.to_string())).is_err() {
            link.waiters.lock().remove(&id);
            return Err(Error::WsClosed { id });
        }
        *sent = Some(Instant::now());
        match tokio::time::timeout(self.timeout, wrx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(Error::WsClosed { id }),
            Err(_) => {
                link.waiters.lock().remove(&id);
                Err(Error::Timeout {
                    what: "WebSocket API request",
                    after: self.timeout,
                })
            }
        }
    }

    /// Sends `method` with signed `params` and waits for its answer's `result`.
    pub async fn call(
        &self,
        method: &str,
        params: Vec<(&'static str, String)>,
        order: bool,
    ) -> Result<Value> {
        self.call_stamped(method, params, order, &mut None).await
    }

    /// [`WsApiClient::call`], setting `sent` to the instant the signed request was handed to
    /// the connection's writer (after the limiter, the connection and the fence); left as it
    /// is when it was not.
    async fn call_stamped(
        &self,
        method: &str,
        params: Vec<(&'static str, String)>,
        order: bool,
        sent: &mut Option<Instant>,
    ) -> Result<Value> {
        let max_wait = self.limiter.config().max_wait;
        loop {
            match self
                .limiter
                .admit(if order { 0 } else { 1 }, order, self.clock.now_ms())
            {
                Ok(()) => break,
                Err(b) if Duration::from_millis(b.wait_ms) <= max_wait => {
                    tokio::time::sleep(Duration::from_millis(b.wait_ms.max(1))).await;
                }
                Err(b) if b.banned => return Err(Error::Banned { wait_ms: b.wait_ms }),
                Err(b) => return Err(Error::RateLimited { wait_ms: b.wait_ms }),
            }
        }
        let link = self.link().await?;
        // Order requests pass the failover fence after they are signed (and after the
        // connection is up), right before they leave; the others go in any role.
        let fence = if order { self.fence.as_deref() } else { None };
        let params = fence::stamped(fence, &self.clock, |timestamp| {
            self.signed(&params, link.logged_on, timestamp)
        })
        .await?;
        self.send(&link, method, params, sent).await
    }

    /// `order.place` (one attempt), `newOrderRespType=RESULT`.
    pub async fn place_order(&self, order: &NewOrder) -> Result<Order> {
        self.place_order_stamped(order, &mut None).await
    }

    /// [`WsApiClient::place_order`], setting `sent` to the instant the request was handed to
    /// the connection's writer (left as it is when it was not).
    pub async fn place_order_stamped(
        &self,
        order: &NewOrder,
        sent: &mut Option<Instant>,
    ) -> Result<Order> {
        let v = self
            .call_stamped("order.place", order.params(), true, sent)
            .await?;
        Order::from_json(&v)
    }

    /// `order.status` by client order id.
    pub async fn query_order(&self, symbol: &str, orig_client_order_id: &str) -> Result<Order> {
        let p = vec![
            ("symbol", symbol.to_owned()),
            ("origClientOrderId", orig_client_order_id.to_owned()),
        ];
        Order::from_json(&self.call("order.status", p, false).await?)
    }

    /// `order.cancel` by client order id.
    pub async fn cancel_order(&self, symbol: &str, orig_client_order_id: &str) -> Result<Order> {
        let p = vec![
            ("symbol", symbol.to_owned()),
            ("origClientOrderId", orig_client_order_id.to_owned()),
        ];
        Order::from_json(&self.call("order.cancel", p, false).await?)
    }
}

/// Hands one answer to its waiter and feeds `rateLimits` to the limiter.
fn route(text: &str, waiters: &Waiters, limiter: &RateLimiter, clock: &ServerClock) {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        tracing::warn!("WebSocket API sent a frame that is not JSON; skipped");
        return;
    };
    if let Some(limits) = v["rateLimits"].as_array() {
        let mut counts = (None, None, None);
        for l in limits {
            let count = l["count"].as_u64().map(|c| c as u32);
            match (
                l["rateLimitType"].as_str(),
                l["interval"].as_str(),
                l["intervalNum"].as_u64(),
            ) {
                (Some("REQUEST_WEIGHT"), Some("MINUTE"), Some(1)) => counts.0 = count,
                (Some("ORDERS"), Some("SECOND"), Some(10)) => counts.1 = count,
                (Some("ORDERS"), Some("MINUTE"), Some(1)) => counts.2 = count,
                _ => {}
            }
        }
        limiter.observe(counts.0, counts.1, counts.2, clock.now_ms());
    }
    let Some(id) = v["id"].as_u64() else {
        return;
    };
    let Some(w) = waiters.lock().remove(&id) else {
        return;
    };
    let status = v["status"].as_u64().unwrap_or(0) as u16;
    let answer = if status == 200 {
        Ok(v["result"].clone())
    } else {
        let e = &v["error"];
        let now = clock.now_ms();
        let api = ApiError::new(
            status,
            e["code"].as_i64().unwrap_or(0),
            e["msg"].as_str().unwrap_or(""),
        );
        match status {
            429 => limiter.on_429(None, now),
            418 => limiter.on_418(
                crate::common::rate_limit::ban_until_from_msg(&api.msg),
                None,
                now,
            ),
            _ => {}
        }
        Err(Error::Api(api))
    };
    let _ = w.send(answer);
}
