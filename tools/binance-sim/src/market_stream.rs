//! Market streams: the Contract Info Stream, `!contractInfo`, on the `/market` route, as
//! Binance routes USD-M futures streams since 2026-04-23 (the stream's page names `/market`
//! as its URL path):
//! - `/market/ws/!contractInfo` (ws mode; combined as `/market/ws/<s1>/<s2>…`): raw events;
//! - `/market/stream?streams=!contractInfo/…` (stream mode): each event wrapped as
//!   `{"stream":"!contractInfo","data":<event>}`;
//! - either without streams, then `{"method":"SUBSCRIBE","params":["!contractInfo"],"id":…}`
//!   (answered `{"result":null,"id":…}`); `UNSUBSCRIBE` and `LIST_SUBSCRIPTIONS` as Binance
//!   answers them.
//!
//! The legacy base (`/ws/…`, `/stream?streams=…`) is served the same way (*unverified* that
//! Binance still delivers market data there after retiring it); it never carries user data,
//! so the legacy user stream URL `/ws/<listenKey>` connects and stays silent. The simulator
//! has no other market data: any other stream name is accepted and never sent anything.
//! `/public/…` (high-frequency data) carries no contractInfo.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::exchange::MarketEvent;
use crate::server::Shared;

type Sh = Arc<Shared>;
type Q = Query<HashMap<String, String>>;

/// Market routes (and the legacy base), ws and stream mode.
pub fn router() -> Router<Sh> {
    let mut r = Router::new();
    for base in ["", "/market"] {
        r = r
            .route(&format!("{base}/ws"), get(ws_mode_bare))
            .route(&format!("{base}/ws/{{*streams}}"), get(ws_mode))
            .route(&format!("{base}/stream"), get(stream_mode));
    }
    r
}

/// Raw events or the stream-mode envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Ws,
    Stream,
}

/// What one market connection delivers.
struct Subscription {
    streams: BTreeSet<String>,
    mode: Mode,
}

impl Subscription {
    fn new(names: &str, mode: Mode) -> Subscription {
        Subscription {
            streams: names
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            mode,
        }
    }

    fn frame(&self, ev: &MarketEvent) -> String {
        match self.mode {
            Mode::Ws => ev.json.to_string(),
            Mode::Stream => json!({ "stream": ev.stream, "data": ev.json }).to_string(),
        }
    }

    /// Answers SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS; `None` for anything else.
    fn control(&mut self, text: &str) -> Option<Value> {
        let req: Value = serde_json::from_str(text).ok()?;
        let id = req.get("id").cloned().unwrap_or(Value::Null);
        let names = req["params"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        match req["method"].as_str()? {
            "SUBSCRIBE" => self.streams.extend(names),
            "UNSUBSCRIBE" => {
                for n in &names {
                    self.streams.remove(n);
                }
            }
            "LIST_SUBSCRIPTIONS" => {
                return Some(json!({ "result": self.streams.iter().collect::<Vec<_>>(), "id": id }))
            }
            _ => return None,
        }
        Some(json!({ "result": null, "id": id }))
    }
}

async fn ws_mode_bare(State(sh): State<Sh>, ws: WebSocketUpgrade) -> Response {
    open(sh, Subscription::new("", Mode::Ws), ws)
}

async fn ws_mode(
    State(sh): State<Sh>,
    Path(streams): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    open(sh, Subscription::new(&streams, Mode::Ws), ws)
}

async fn stream_mode(State(sh): State<Sh>, Query(q): Q, ws: WebSocketUpgrade) -> Response {
    let names = q.get("streams").map(String::as_str).unwrap_or("");
    open(sh, Subscription::new(names, Mode::Stream), ws)
}

fn open(sh: Sh, sub: Subscription, ws: WebSocketUpgrade) -> Response {
    let rx = sh.ex().market.subscribe();
    ws.on_upgrade(move |socket| run(sh, sub, socket, rx))
}

async fn run(
    sh: Sh,
    mut sub: Subscription,
    mut socket: WebSocket,
    mut rx: broadcast::Receiver<MarketEvent>,
) {
    let mut ping = tokio::time::interval(sh.ws_ping_interval);
    ping.tick().await;
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(ev) if sub.streams.contains(ev.stream) => {
                    if socket.send(Message::Text(sub.frame(&ev).into())).await.is_err() {
                        return;
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Text(t))) => {
                    if let Some(answer) = sub.control(&t) {
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
