//! The WebSocket API (`/ws-fapi/v1`): `order.place`, `order.status`, `order.cancel`,
//! `session.logon`, `session.status`, `session.logout`, `time`, `ping`.
//!
//! A request is authenticated by its own `apiKey` and `signature` (HMAC or Ed25519, by the
//! key), or, once the connection has logged on with `session.logon` (Ed25519 keys only, as
//! Binance documents), by the session: such requests carry neither and are checked for
//! `timestamp` only. A request that does carry a signature is checked on its own, logged on
//! or not.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::{json, Value};

use crate::auth;
use crate::config::{ApiKey, KeyAuth};
use crate::error::ApiError;
use crate::orders;
use crate::params::Params;
use crate::placement::{self, Outcome};
use crate::server::{ConnCtx, Shared};

type Sh = Arc<Shared>;

/// The WebSocket API route.
pub fn router() -> Router<Sh> {
    Router::new().route("/ws-fapi/v1", get(ws_api))
}

/// One connection's state.
#[derive(Debug)]
struct Session {
    ip: IpAddr,
    connected: i64,
    /// The key `session.logon` authenticated, and since when.
    logged_on: Option<(String, i64)>,
}

async fn ws_api(
    State(sh): State<Sh>,
    ctx: Option<Extension<ConnCtx>>,
    ws: WebSocketUpgrade,
) -> Response {
    let ip = ctx
        .map(|Extension(c)| c.peer.ip())
        .unwrap_or([127, 0, 0, 1].into());
    let session = Session {
        ip,
        connected: sh.clock.now_ms(),
        logged_on: None,
    };
    ws.on_upgrade(move |socket| run_ws_api(sh, session, socket))
}

async fn run_ws_api(sh: Sh, mut session: Session, mut socket: WebSocket) {
    let mut ping = tokio::time::interval(sh.ws_ping_interval);
    ping.tick().await;
    loop {
        let text = tokio::select! {
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(t))) => t.to_string(),
                Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
                continue;
            }
            _ = sh.stopped() => break,
        };
        let latency = sh.faults().latency_ms;
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        match handle(&sh, &mut session, &text) {
            Reply::Send(v) => {
                if socket
                    .send(Message::Text(v.to_string().into()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            // Injected fault: close the TCP connection without a reply or close frame.
            Reply::HangUp => return,
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

enum Reply {
    Send(Value),
    HangUp,
}

fn rate_limits(sh: &Shared, ip: IpAddr, orders: bool) -> Value {
    let now = sh.clock.now_ms();
    let lim = sh.limiter();
    let u = lim.usage(ip, now);
    let mut v = vec![json!({
        "rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
        "limit": lim.limits.weight_per_minute, "count": u.weight_1m,
    })];
    if orders {
        v.push(json!({
            "rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
            "limit": lim.limits.orders_per_10s, "count": u.orders_10s,
        }));
        v.push(json!({
            "rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1,
            "limit": lim.limits.orders_per_minute, "count": u.orders_1m,
        }));
    }
    Value::Array(v)
}

fn json_to_params(obj: &serde_json::Map<String, Value>) -> Params {
    Params(
        obj.iter()
            .map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), s)
            })
            .collect(),
    )
}

fn handle(sh: &Shared, session: &mut Session, text: &str) -> Reply {
    let ip = session.ip;
    let req: Value = match serde_json::from_str(text) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            let e = ApiError::bad(-1102, "Malformed request: not a JSON object.");
            return Reply::Send(json!({
                "id": null, "status": 400, "error": e.body(),
                "rateLimits": rate_limits(sh, ip, false),
            }));
        }
    };
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let method = req.get("method").and_then(Value::as_str).unwrap_or("");
    let params = req
        .get("params")
        .and_then(Value::as_object)
        .map(json_to_params)
        .unwrap_or_default();
    let is_order = method == "order.place";
    match dispatch(sh, session, method, &params) {
        Ok(Some(result)) => Reply::Send(json!({
            "id": id, "status": 200, "result": result,
            "rateLimits": rate_limits(sh, ip, is_order),
        })),
        Ok(None) => Reply::HangUp,
        Err(e) => Reply::Send(json!({
            "id": id, "status": e.status.as_u16(), "error": e.body(),
            "rateLimits": rate_limits(sh, ip, is_order),
        })),
    }
}

/// The key a request acts for: its own signature if it carries one, else the session's.
fn signed<'a>(sh: &'a Shared, p: &Params, session: &Session) -> Result<&'a ApiKey, ApiError> {
    let key = match (&session.logged_on, p.has("signature")) {
        (Some((k, _)), false) => auth::find_key(&sh.keys, Some(k), &session.ip.to_string())?,
        _ => {
            let key = auth::find_key(&sh.keys, p.get("apiKey"), &session.ip.to_string())?;
            auth::verify(key, &auth::ws_payload(p), p.get("signature"))?;
            key
        }
    };
    auth::check_timestamp(p, sh.clock.now_ms(), sh.max_recv_window_ms)?;
    Ok(key)
}

fn session_json(sh: &Shared, session: &Session) -> Value {
    let (key, since) = match &session.logged_on {
        Some((k, t)) => (json!(k), json!(t)),
        None => (Value::Null, Value::Null),
    };
    json!({
        "apiKey": key, "authorizedSince": since, "connectedSince": session.connected,
        "returnRateLimits": true, "serverTime": sh.clock.now_ms(), "userDataStream": false,
    })
}

/// `Ok(None)` means: hang up without replying (injected fault).
fn dispatch(
    sh: &Shared,
    session: &mut Session,
    method: &str,
    p: &Params,
) -> Result<Option<Value>, ApiError> {
    let now = sh.clock.now_ms();
    let ip = session.ip;
    let weight = match method {
        "order.place" => 0,
        "session.status" | "session.logon" | "session.logout" => 2,
        _ => 1,
    };
    let faults = sh.faults();
    if faults.force_418 {
        return Err(ApiError::banned(&ip.to_string(), now + 60_000));
    }
    if faults.force_429 {
        let limit = sh.limiter().limits.weight_per_minute;
        return Err(ApiError::too_many(&ip.to_string(), limit));
    }
    sh.limiter().charge(ip, weight, now)?;
    match method {
        "order.place" => {
            signed(sh, p, session)?;
            match placement::place(sh, p, now, "ws-api")? {
                Outcome::Answer(body) => Ok(Some(body)),
                // A gateway in front of a WebSocket has no page to send: it closes.
                Outcome::HangUp | Outcome::Gateway(_) => Ok(None),
            }
        }
        "order.status" => {
            signed(sh, p, session)?;
            orders::query(&sh.ex(), p, now, faults.query_lag_ms).map(Some)
        }
        "order.cancel" => {
            signed(sh, p, session)?;
            orders::cancel(&mut sh.ex(), p, now).map(Some)
        }
        "session.logon" => {
            let key = auth::find_key(&sh.keys, p.get("apiKey"), &ip.to_string())?;
            if !matches!(key.auth, KeyAuth::Ed25519(_)) {
                return Err(ApiError::logon_needs_ed25519());
            }
            auth::verify(key, &auth::ws_payload(p), p.get("signature"))?;
            auth::check_timestamp(p, now, sh.max_recv_window_ms)?;
            session.logged_on = Some((key.key.clone(), now));
            // Relaxed: a counter read by tests only.
            sh.logons.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(Some(session_json(sh, session)))
        }
        "session.status" => Ok(Some(session_json(sh, session))),
        "session.logout" => {
            session.logged_on = None;
            Ok(Some(session_json(sh, session)))
        }
        "time" => Ok(Some(json!({ "serverTime": now }))),
        "ping" => Ok(Some(json!({}))),
        _ => Err(ApiError::bad(-1102, format!("Unknown method '{method}'."))),
    }
}
