//! The user data stream, routed as Binance routes USD-M futures streams since 2026-04-23.
//!
//! `fstream.binance.com` splits into `/public` (high-frequency market data), `/market`
//! (regular market data) and `/private` (user data). User data is served only on the private
//! route:
//! - `/private/ws?listenKey=<key>&events=<E1>/<E2>…`: raw events;
//! - `/private/ws/<key>`: the same, every event (the path form of Binance's connect page);
//! - `/private/stream?listenKey=<key>&events=…`: each event wrapped as
//!   `{"stream":"<key>","data":<event>}` (*unverified*: the stream name in the envelope);
//! - any of them without a key, then `{"method":"SUBSCRIBE","params":["<key>"],"id":…}`
//!   (answered `{"result":null,"id":…}`), which is how subscription-based clients attach.
//!
//! `events` keeps only the named event types; without it every event is sent.
//! `listenKeyExpired` is always sent (*unverified* whether Binance requires it in `events`).
//! An unknown or expired key is refused at the handshake with -1125.
//!
//! Connections without the private route (`/ws/<key>`, `/stream`, `/public/…`, `/market/…`)
//! are accepted and kept alive, and receive no user data at all, as on Binance: the legacy
//! user stream URL fails silently, which is exactly what a client must not fall into. The
//! legacy base and `/market` carry market streams ([`crate::market_stream`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::error::ApiError;
use crate::exchange::StreamEvent;
use crate::server::Shared;

type Sh = Arc<Shared>;
type Q = Query<HashMap<String, String>>;

/// Stream routes, private and unrouted.
pub fn router() -> Router<Sh> {
    let mut r = Router::new()
        .route("/private/ws", get(private_ws))
        .route("/private/ws/{listen_key}", get(private_ws_path))
        .route("/private/stream", get(private_stream));
    // The legacy base and `/market` are market routes ([`crate::market_stream`]).
    for path in ["/public/ws", "/public/ws/{name}", "/public/stream"] {
        r = r.route(path, get(unrouted));
    }
    r
}

/// Raw events or the stream-mode envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Ws,
    Stream,
}

/// What one private connection delivers.
struct Subscription {
    key: Option<String>,
    events: Option<HashSet<String>>,
    mode: Mode,
}

impl Subscription {
    fn wants(&self, ev: &StreamEvent) -> bool {
        self.events
            .as_ref()
            .is_none_or(|set| set.contains(&ev.name))
    }

    fn frame(&self, ev: &Value) -> String {
        match (self.mode, &self.key) {
            (Mode::Stream, Some(k)) => json!({ "stream": k, "data": ev }).to_string(),
            _ => ev.to_string(),
        }
    }
}

async fn private_ws(State(sh): State<Sh>, Query(q): Q, ws: WebSocketUpgrade) -> Response {
    open(
        sh,
        q.get("listenKey").cloned(),
        q.get("events"),
        Mode::Ws,
        ws,
    )
}

async fn private_ws_path(
    State(sh): State<Sh>,
    Path(key): Path<String>,
    Query(q): Q,
    ws: WebSocketUpgrade,
) -> Response {
    open(sh, Some(key), q.get("events"), Mode::Ws, ws)
}

async fn private_stream(State(sh): State<Sh>, Query(q): Q, ws: WebSocketUpgrade) -> Response {
    open(
        sh,
        q.get("listenKey").cloned(),
        q.get("events"),
        Mode::Stream,
        ws,
    )
}

fn open(
    sh: Sh,
    key: Option<String>,
    events: Option<&String>,
    mode: Mode,
    ws: WebSocketUpgrade,
) -> Response {
    let now = sh.clock.now_ms();
    let rx = {
        let ex = sh.ex();
        if key.as_deref().is_some_and(|k| !ex.listen_key_live(k, now)) {
            return ApiError::listen_key().into_response();
        }
        ex.events.subscribe()
    };
    let events = events.map(|e| {
        e.split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    });
    let sub = Subscription { key, events, mode };
    ws.on_upgrade(move |socket| run_private(sh, sub, socket, rx))
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

/// Answers SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS; `None` for anything else.
fn control(sh: &Shared, sub: &mut Subscription, text: &str) -> Option<Value> {
    let req: Value = serde_json::from_str(text).ok()?;
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let names: Vec<String> = req["params"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    match req["method"].as_str()? {
        "SUBSCRIBE" => {
            let now = sh.clock.now_ms();
            let live = names.into_iter().find(|k| sh.ex().listen_key_live(k, now));
            match live {
                Some(k) => {
                    sub.key = Some(k);
                    Some(json!({ "result": null, "id": id }))
                }
                None => Some(json!({ "error": ApiError::listen_key().body(), "id": id })),
            }
        }
        "UNSUBSCRIBE" => {
            if sub.key.as_ref().is_some_and(|k| names.contains(k)) {
                sub.key = None;
            }
            Some(json!({ "result": null, "id": id }))
        }
        "LIST_SUBSCRIPTIONS" => {
            Some(json!({ "result": sub.key.iter().collect::<Vec<_>>(), "id": id }))
        }
        _ => None,
    }
}

async fn run_private(
    sh: Sh,
    mut sub: Subscription,
    mut socket: WebSocket,
    mut rx: broadcast::Receiver<StreamEvent>,
) {
    let mut check = tokio::time::interval(Duration::from_millis(50));
    let mut ping = tokio::time::interval(sh.ws_ping_interval);
    ping.tick().await;
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(ev) if sub.key.is_some() && sub.wants(&ev) => {
                    let frame = sub.frame(&ev.json);
                    if socket.send(Message::Text(frame.into())).await.is_err() {
                        return;
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = check.tick() => {
                let Some(key) = sub.key.clone() else { continue };
                match key_state(&sh, &key) {
                    KeyState::Live => {}
                    KeyState::Expired => {
                        let ev = json!({
                            "e": "listenKeyExpired",
                            "E": sh.clock.now_ms(),
                            "listenKey": key,
                        });
                        let _ = socket.send(Message::Text(sub.frame(&ev).into())).await;
                        break;
                    }
                    KeyState::Gone => break,
                }
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Text(t))) => {
                    if let Some(answer) = control(&sh, &mut sub, &t) {
                        if socket.send(Message::Text(answer.to_string().into())).await.is_err() {
                            return;
                        }
                    }
                }
                Some(Ok(_)) => {}
            },
            _ = sh.stopped() => break,
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

/// A connection without the private route: kept alive, never given user data.
async fn unrouted(State(sh): State<Sh>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| run_unrouted(sh, socket))
}

async fn run_unrouted(sh: Sh, mut socket: WebSocket) {
    let mut ping = tokio::time::interval(sh.ws_ping_interval);
    ping.tick().await;
    loop {
        tokio::select! {
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Text(t))) => {
                    // Subscriptions are acknowledged; nothing private ever follows.
                    let id = serde_json::from_str::<Value>(&t)
                        .ok()
                        .and_then(|v| v.get("id").cloned())
                        .unwrap_or(Value::Null);
                    let ack = json!({ "result": null, "id": id }).to_string();
                    if socket.send(Message::Text(ack.into())).await.is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
            },
            _ = sh.stopped() => break,
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
