//! Ed25519 API keys: a registered public key checks base64 signatures over the same payloads
//! HMAC signs (REST `totalParams`, WebSocket API params sorted by name), and only such a key
//! may log a WebSocket API session on, after which requests carry no apiKey or signature.

use base64::Engine;
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::{Signer, SigningKey};
use quantum_binance_sim::{ApiKey, SimConfig};
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

const ED_KEY: &str = "EdTESTkey000000000000000000000000000000000000000000000000000000E";

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn sig64(payload: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(signing_key().sign(payload.as_bytes()).to_bytes())
}

/// A simulator with the HMAC test key first and the Ed25519 key registered by its PEM.
async fn ed_sim() -> Sim {
    let mut c = SimConfig::ephemeral();
    let pem = signing_key()
        .verifying_key()
        .to_public_key_pem(Default::default())
        .unwrap();
    c.keys.push(ApiKey::ed25519_pem(ED_KEY, &pem).unwrap());
    c.positions
        .push(("BTCUSDT".into(), "0.010".parse().unwrap()));
    Sim::with(c).await
}

fn urlenc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn rest_accepts_base64_signatures_of_the_registered_key() {
    let sim = ed_sim().await;
    let ts = now_ms().to_string();
    let payload = enc(&[
        ("symbol", "BTCUSDT"),
        ("side", "SELL"),
        ("type", "MARKET"),
        ("quantity", "0.001"),
        ("reduceOnly", "true"),
        ("newClientOrderId", "ed-1"),
        ("timestamp", &ts),
    ]);
    let body = format!("{payload}&signature={}", urlenc(&sig64(&payload)));
    sim.raw(Method::POST, "/fapi/v1/order", "", &body, Some(ED_KEY))
        .await
        .ok();
    // The same bytes signed by another key, or a signature of other bytes: -1022.
    let other = SigningKey::from_bytes(&[1; 32]);
    let bad =
        base64::engine::general_purpose::STANDARD.encode(other.sign(payload.as_bytes()).to_bytes());
    let body = format!("{payload}&signature={}", urlenc(&bad));
    sim.raw(Method::POST, "/fapi/v1/order", "", &body, Some(ED_KEY))
        .await
        .err(400, -1022);
    // An HMAC signature under the Ed25519 key: -1022.
    let q = format!(
        "{payload}&signature={}",
        quantum_binance_sim::sign(&sim.secret, &payload)
    );
    sim.raw(Method::GET, "/fapi/v3/positionRisk", &q, "", Some(ED_KEY))
        .await
        .err(400, -1022);
    assert_eq!(sim.audit().await.len(), 1);
}

fn ws_params(p: &[(&str, &str)], with_key: bool) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = p
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if with_key {
        v.push(("apiKey".into(), ED_KEY.into()));
    }
    v.push(("timestamp".into(), now_ms().to_string()));
    v.sort();
    v
}

fn obj(p: &[(String, String)], signature: Option<String>) -> Value {
    let mut m = serde_json::Map::new();
    for (k, v) in p {
        m.insert(k.clone(), json!(v));
    }
    if let Some(s) = signature {
        m.insert("signature".into(), json!(s));
    }
    Value::Object(m)
}

fn payload(p: &[(String, String)]) -> String {
    p.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test]
async fn ws_api_per_request_and_session_logon() {
    let sim = ed_sim().await;
    let mut ws = sim.ws(&sim.handle.ws_api_url()).await;
    let order = |cid: &'static str| {
        [
            ("symbol", "BTCUSDT"),
            ("side", "SELL"),
            ("type", "MARKET"),
            ("quantity", "0.001"),
            ("reduceOnly", "true"),
            ("newClientOrderId", cid),
        ]
    };
    // Per request: apiKey and a base64 signature.
    let p = ws_params(&order("ws-ed-1"), true);
    let r = ws_call(
        &mut ws,
        json!({"id": 1, "method": "order.place", "params": obj(&p, Some(sig64(&payload(&p))))}),
    )
    .await;
    assert_eq!(r["status"], 200, "{r}");
    // Unsigned before logon: refused, nothing placed.
    let p = ws_params(&order("ws-ed-2"), false);
    let r = ws_call(
        &mut ws,
        json!({"id": 2, "method": "order.place", "params": obj(&p, None)}),
    )
    .await;
    assert_eq!(r["status"], 401, "{r}");
    assert_eq!(r["error"]["code"], -2014);
    // session.logon with a wrong signature: -1022.
    let p = ws_params(&[], true);
    let r = ws_call(
        &mut ws,
        json!({"id": 3, "method": "session.logon", "params": obj(&p, Some(sig64("other")))}),
    )
    .await;
    assert_eq!(r["error"]["code"], -1022, "{r}");
    let r = ws_call(
        &mut ws,
        json!({"id": 4, "method": "session.logon", "params": obj(&p, Some(sig64(&payload(&p))))}),
    )
    .await;
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["result"]["apiKey"], ED_KEY);
    assert!(r["result"]["authorizedSince"].is_u64());
    assert_eq!(sim.handle.session_logons(), 1);
    // Logged on: only params and timestamp.
    let p = ws_params(&order("ws-ed-3"), false);
    let r = ws_call(
        &mut ws,
        json!({"id": 5, "method": "order.place", "params": obj(&p, None)}),
    )
    .await;
    assert_eq!(r["status"], 200, "{r}");
    let p = ws_params(
        &[("symbol", "BTCUSDT"), ("origClientOrderId", "ws-ed-3")],
        false,
    );
    let r = ws_call(
        &mut ws,
        json!({"id": 6, "method": "order.status", "params": obj(&p, None)}),
    )
    .await;
    assert_eq!(r["result"]["status"], "FILLED", "{r}");
    // A stale timestamp is still refused.
    let mut p = ws_params(&order("ws-ed-4"), false);
    p.retain(|(k, _)| k != "timestamp");
    p.push(("timestamp".into(), (now_ms() - 60_000).to_string()));
    let r = ws_call(
        &mut ws,
        json!({"id": 7, "method": "order.place", "params": obj(&p, None)}),
    )
    .await;
    assert_eq!(r["error"]["code"], -1021, "{r}");
    let r = ws_call(&mut ws, json!({"id": 8, "method": "session.status"})).await;
    assert_eq!(r["result"]["apiKey"], ED_KEY);
    let r = ws_call(&mut ws, json!({"id": 9, "method": "session.logout"})).await;
    assert_eq!(r["result"]["apiKey"], Value::Null);
    let p = ws_params(&order("ws-ed-5"), false);
    let r = ws_call(
        &mut ws,
        json!({"id": 10, "method": "order.place", "params": obj(&p, None)}),
    )
    .await;
    assert_eq!(r["status"], 401, "{r}");
    let cids: Vec<Value> = sim
        .audit()
        .await
        .iter()
        .map(|o| o["clientOrderId"].clone())
        .collect();
    assert_eq!(cids, [json!("ws-ed-1"), json!("ws-ed-3")]);
}

#[tokio::test]
async fn an_hmac_key_cannot_log_on() {
    let sim = ed_sim().await;
    let mut ws = sim.ws(&sim.handle.ws_api_url()).await;
    let p = ws_signed(&sim.secret, &sim.key, &[]);
    let r = ws_call(
        &mut ws,
        json!({"id": 1, "method": "session.logon", "params": p}),
    )
    .await;
    assert_eq!(
        (r["status"].as_u64(), r["error"]["code"].as_i64()),
        (Some(401), Some(-1002)),
        "{r}"
    );
    assert_eq!(sim.handle.session_logons(), 0);
}
