//! WebSockets: the user data stream (`/ws/<listenKey>`) and the WebSocket API
//! (`/ws-fapi/v1`: `order.place`, `order.status`, `order.cancel`, `session.status`, `time`,
//! `ping`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::auth;
use crate::error::ApiError;
use crate::orders;
use crate::params::Params;
use crate::routes::roll;
use crate::server::{ConnCtx, Shared};

type Sh = Arc<Shared>;

/// WebSocket routes.
pub fn router() -> Router<Sh> {
    Router::new()
        .route("/ws/{listen_key}", get(user_stream))
        .route("/ws-fapi/v1", get(ws_api))
}

async fn user_stream(
    State(sh): State<Sh>,
    Path(listen_key): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    let now = sh.clock.now_ms();
    let rx = {
        let ex = sh.ex();
        if !ex.listen_key_live(&listen_key, now) {
            return ApiError::listen_key().into_response();
        }
        ex.events.subscribe()
    };
    ws.on_upgrade(move |socket| run_user_stream(sh, listen_key, socket, rx))
}

/// Why a user stream ends.
enum KeyState {
    Live,
    Expired,
    Gone,
}

fn key_state(sh: &Shared, key: &str) -> KeyState {
    let now = sh.clock.now_ms();
    let ex = sh.ex();
    match &ex.listen_key {
        Some((k, exp)) if k == key => {
            if *exp > now {
                KeyState::Live
            } else {
                KeyState::Expired
            }
        }
        _ => KeyState::Gone,
    }
}

async fn run_user_stream(
    sh: Sh,
    key: String,
    mut socket: WebSocket,
    mut rx: broadcast::Receiver<String>,
) {
    let mut check = tokio::time::interval(Duration::from_millis(50));
    let mut ping = tokio::time::interval(sh.ws_ping_interval);
    ping.tick().await;
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(text) => {
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = check.tick() => match key_state(&sh, &key) {
                KeyState::Live => {}
                KeyState::Expired => {
                    let ev = json!({
                        "e": "listenKeyExpired",
                        "E": sh.clock.now_ms(),
                        "listenKey": key,
                    });
                    let _ = socket.send(Message::Text(ev.to_string().into())).await;
                    break;
                }
                KeyState::Gone => break,
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
            _ = sh.stopped() => break,
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

async fn ws_api(
    State(sh): State<Sh>,
    ctx: Option<Extension<ConnCtx>>,
    ws: WebSocketUpgrade,
) -> Response {
    let ip = ctx
        .map(|Extension(c)| c.peer.ip())
        .unwrap_or([127, 0, 0, 1].into());
    let connected = sh.clock.now_ms();
    ws.on_upgrade(move |socket| run_ws_api(sh, ip, connected, socket))
}

async fn run_ws_api(sh: Sh, ip: IpAddr, connected: i64, mut socket: WebSocket) {
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
        match handle(&sh, ip, connected, &text) {
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

fn handle(sh: &Shared, ip: IpAddr, connected: i64, text: &str) -> Reply {
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
    match dispatch(sh, ip, connected, method, &params) {
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

fn signed(sh: &Shared, p: &Params, ip: IpAddr) -> Result<(), ApiError> {
    let key = auth::find_key(&sh.keys, p.get("apiKey"), &ip.to_string())?;
    auth::verify(&key.secret, &auth::ws_payload(p), p.get("signature"))?;
    auth::check_timestamp(p, sh.clock.now_ms(), sh.max_recv_window_ms)
}

/// `Ok(None)` means: hang up without replying (injected fault).
fn dispatch(
    sh: &Shared,
    ip: IpAddr,
    connected: i64,
    method: &str,
    p: &Params,
) -> Result<Option<Value>, ApiError> {
    let now = sh.clock.now_ms();
    let weight = match method {
        "order.place" => 0,
        "session.status" => 2,
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
            signed(sh, p, ip)?;
            sh.limiter().count_order(now)?;
            if roll(faults.error_rate) {
                return Err(ApiError::overloaded());
            }
            let drop = roll(faults.drop_rate);
            if drop && !faults.drop_after_place {
                return Ok(None);
            }
            let placed = orders::place(&mut sh.ex(), p, now, "ws-api")?;
            if drop {
                return Ok(None);
            }
            if roll(faults.ambiguous_503_rate) {
                return Err(ApiError::unknown_503());
            }
            Ok(Some(placed.body))
        }
        "order.status" => {
            signed(sh, p, ip)?;
            orders::query(&sh.ex(), p).map(Some)
        }
        "order.cancel" => {
            signed(sh, p, ip)?;
            orders::cancel(&mut sh.ex(), p, now).map(Some)
        }
        "session.status" => Ok(Some(json!({
            "apiKey": null, "authorizedSince": null, "connectedSince": connected,
            "returnRateLimits": true, "serverTime": now, "userDataStream": false,
        }))),
        "time" => Ok(Some(json!({ "serverTime": now }))),
        "ping" => Ok(Some(json!({}))),
        _ => Err(ApiError::bad(-1102, format!("Unknown method '{method}'."))),
    }
}
