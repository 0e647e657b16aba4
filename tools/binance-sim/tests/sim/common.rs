//! Test helpers: start a simulator on 127.0.0.1:0 and talk to it like a Binance client.
//! The first configured key must be an HMAC key: the helpers sign with its secret.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use quantum_binance_sim::{
    sign, KeyAuth, SimConfig, SimHandle, Simulator, TEST_API_KEY, TEST_API_SECRET,
};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A running simulator and a client for it.
pub struct Sim {
    pub handle: SimHandle,
    pub http: reqwest::Client,
    pub key: String,
    pub secret: String,
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// Binance error code (panics on success).
    pub fn code(&self) -> i64 {
        self.body["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("expected an error, got {} {}", self.status, self.body))
    }

    /// Asserts success and returns the body.
    pub fn ok(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "body: {}", self.body);
        &self.body
    }

    /// Asserts an error with this status and code.
    pub fn err(&self, status: u16, code: i64) {
        assert_eq!(
            (self.status.as_u16(), self.code()),
            (status, code),
            "body: {}",
            self.body
        );
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub fn enc(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.replace('%', "%25")
                    .replace('&', "%26")
                    .replace('+', "%2B")
                    .replace('=', "%3D")
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

impl Sim {
    pub async fn start() -> Sim {
        Sim::with(SimConfig::ephemeral()).await
    }

    pub async fn with(config: SimConfig) -> Sim {
        let key = config.keys[0].key.clone();
        let KeyAuth::Hmac(secret) = config.keys[0].auth.clone() else {
            panic!("the first key of a test simulator signs with HMAC");
        };
        let handle = Simulator::start(config).await.expect("simulator starts");
        Sim {
            handle,
            http: reqwest::Client::new(),
            key,
            secret,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.handle.rest_url())
    }

    /// Sends a request with raw query and body, and the given key header.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: &str,
        key: Option<&str>,
    ) -> Answer {
        let url = if query.is_empty() {
            self.url(path)
        } else {
            format!("{}?{query}", self.url(path))
        };
        let mut rb = self.http.request(method, url);
        if let Some(k) = key {
            rb = rb.header("X-MBX-APIKEY", k);
        }
        if !body.is_empty() {
            rb = rb
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body.to_string());
        }
        let resp = rb.send().await.expect("request answered");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Signed request; params go in the query (GET/DELETE/PUT) or the body (POST), with
    /// the current timestamp appended.
    pub async fn signed(&self, method: Method, path: &str, params: &[(&str, &str)]) -> Answer {
        let ts = now_ms().to_string();
        let mut p: Vec<(&str, &str)> = params.to_vec();
        p.push(("timestamp", &ts));
        let payload = enc(&p);
        let sig = sign(&self.secret, &payload);
        let full = format!("{payload}&signature={sig}");
        if method == Method::POST {
            self.raw(method, path, "", &full, Some(&self.key)).await
        } else {
            self.raw(method, path, &full, "", Some(&self.key)).await
        }
    }

    pub async fn get(&self, path: &str, params: &[(&str, &str)]) -> Answer {
        self.signed(Method::GET, path, params).await
    }

    pub async fn order(&self, params: &[(&str, &str)]) -> Answer {
        self.signed(Method::POST, "/fapi/v1/order", params).await
    }

    /// Unsigned GET (public or /sim).
    pub async fn public(&self, path: &str) -> Answer {
        self.raw(Method::GET, path, "", "", None).await
    }

    /// POST JSON to a /sim control endpoint.
    pub async fn control(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.control_answer(path, body).await;
        assert!((200..300).contains(&status), "{path}: {status} {answer}");
        answer
    }

    /// POST JSON to a /sim control endpoint, any outcome: the status and the body.
    pub async fn control_answer(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn audit(&self) -> Vec<Value> {
        self.public("/sim/orders")
            .await
            .ok()
            .as_array()
            .unwrap()
            .clone()
    }

    pub async fn listen_key(&self) -> String {
        let a = self
            .raw(Method::POST, "/fapi/v1/listenKey", "", "", Some(&self.key))
            .await;
        a.ok()["listenKey"].as_str().unwrap().to_string()
    }

    pub async fn ws(&self, url: &str) -> Ws {
        tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connects")
            .0
    }
}

/// Next JSON text frame, skipping pings; panics after 5 s.
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a message within 5 s")
            .expect("stream open")
            .expect("no ws error");
        match msg {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Close(_) => panic!("closed"),
            _ => continue,
        }
    }
}

/// Reads frames until `last` matches; returns all of them.
pub async fn until(ws: &mut Ws, last: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let v = next_json(ws).await;
        let done = last(&v);
        seen.push(v);
        if done {
            return seen;
        }
    }
}

/// `Ok` when no text frame arrives within `wait`; the frame otherwise.
pub async fn silent(ws: &mut Ws, wait: Duration) -> Result<(), String> {
    let end = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(end, ws.next()).await {
            Err(_) => return Ok(()),
            Ok(Some(Ok(Message::Text(t)))) => return Err(t.to_string()),
            Ok(Some(Ok(_))) => {}
            Ok(other) => return Err(format!("{other:?}")),
        }
    }
}

/// Sends a WebSocket API request and waits for its answer.
pub async fn ws_call(ws: &mut Ws, req: Value) -> Value {
    ws.send(Message::Text(req.to_string())).await.unwrap();
    next_json(ws).await
}

/// WebSocket API params signed as Binance documents: sorted by name.
pub fn ws_signed(secret: &str, key: &str, params: &[(&str, &str)]) -> Value {
    let ts = now_ms().to_string();
    let mut p: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    p.push(("apiKey".into(), key.into()));
    p.push(("timestamp".into(), ts));
    p.sort();
    let payload = p
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut obj = serde_json::Map::new();
    for (k, v) in p {
        obj.insert(k, Value::String(v));
    }
    obj.insert("signature".into(), Value::String(sign(secret, &payload)));
    Value::Object(obj)
}

pub const KEY: &str = TEST_API_KEY;
pub const SECRET: &str = TEST_API_SECRET;
