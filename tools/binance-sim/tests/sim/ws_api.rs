//! The WebSocket API: params signed sorted by name (unsorted gives -1022), answers and
//! errors in the status/result/error envelope with rateLimits, Ed25519 `session.logon`.

use quantum_binance_sim::sign;
use serde_json::{json, Value};

use crate::common::*;

fn place_params(cid: &str) -> Vec<(&'static str, String)> {
    vec![
        ("symbol", "BTCUSDT".into()),
        ("side", "BUY".into()),
        ("type", "MARKET".into()),
        ("quantity", "0.002".into()),
        ("newClientOrderId", cid.into()),
    ]
}

fn signed(sim: &Sim, p: &[(&str, String)]) -> Value {
    let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ws_signed(&sim.secret, &sim.key, &p)
}

fn assert_rate_limits(v: &Value) {
    let rl = v["rateLimits"].as_array().expect("rateLimits array");
    assert!(rl
        .iter()
        .any(|l| l["rateLimitType"] == "REQUEST_WEIGHT" && l["count"].is_u64()));
}

#[tokio::test]
async fn place_status_cancel_session() {
    let sim = Sim::start().await;
    let mut ws = sim.ws(&sim.handle.ws_api_url()).await;

    let r = ws_call(
        &mut ws,
        json!({"id": "p1", "method": "order.place", "params": signed(&sim, &place_params("ws-1"))}),
    )
    .await;
    assert_eq!(r["id"], "p1");
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["result"]["status"], "NEW");
    assert_eq!(r["result"]["clientOrderId"], "ws-1");
    assert_rate_limits(&r);
    let rl = r["rateLimits"].as_array().unwrap();
    assert!(rl
        .iter()
        .any(|l| l["rateLimitType"] == "ORDERS" && l["count"] == 1));

    let r = ws_call(&mut ws, json!({"id": 2, "method": "order.status", "params": signed(&sim, &[("symbol", "BTCUSDT".into()), ("origClientOrderId", "ws-1".into())])})).await;
    assert_eq!(r["id"], 2);
    assert_eq!(r["result"]["status"], "FILLED");

    // RESULT over the WebSocket API too.
    let mut p = place_params("ws-2");
    p.push(("newOrderRespType", "RESULT".into()));
    let r = ws_call(
        &mut ws,
        json!({"id": 3, "method": "order.place", "params": signed(&sim, &p)}),
    )
    .await;
    assert_eq!(r["result"]["status"], "FILLED");
    assert_eq!(r["result"]["executedQty"], "0.002");

    let r = ws_call(&mut ws, json!({"id": 4, "method": "order.cancel", "params": signed(&sim, &[("symbol", "BTCUSDT".into()), ("origClientOrderId", "ws-1".into())])})).await;
    assert_eq!(r["status"], 400);
    assert_eq!(r["error"]["code"], -2011);
    assert_rate_limits(&r);

    let p = vec![
        ("symbol", "BTCUSDT".into()),
        ("side", "BUY".into()),
        ("type", "LIMIT".into()),
        ("timeInForce", "GTC".into()),
        ("quantity", "0.002".into()),
        ("price", "64000".into()),
        ("newClientOrderId", "ws-rest".into()),
    ];
    ws_call(
        &mut ws,
        json!({"id": 5, "method": "order.place", "params": signed(&sim, &p)}),
    )
    .await;
    let r = ws_call(&mut ws, json!({"id": 6, "method": "order.cancel", "params": signed(&sim, &[("symbol", "BTCUSDT".into()), ("origClientOrderId", "ws-rest".into())])})).await;
    assert_eq!(r["result"]["status"], "CANCELED", "{r}");

    let r = ws_call(&mut ws, json!({"id": 7, "method": "session.status"})).await;
    assert_eq!(r["status"], 200);
    assert!(r["result"]["serverTime"].is_i64());

    let via: Vec<Value> = sim.audit().await.iter().map(|o| o["via"].clone()).collect();
    assert_eq!(via, vec![json!("ws-api"), json!("ws-api"), json!("ws-api")]);
}

#[tokio::test]
async fn unsorted_signature_is_1022_in_the_error_envelope() {
    let sim = Sim::start().await;
    let mut ws = sim.ws(&sim.handle.ws_api_url()).await;
    let ts = now_ms().to_string();
    // Signed in the order written, not sorted by name.
    let p = [
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", "MARKET"),
        ("quantity", "0.002"),
        ("apiKey", KEY),
        ("timestamp", ts.as_str()),
    ];
    let payload = enc(&p);
    let mut params = serde_json::Map::new();
    for (k, v) in p {
        params.insert(k.into(), json!(v));
    }
    params.insert("signature".into(), json!(sign(SECRET, &payload)));
    let r = ws_call(
        &mut ws,
        json!({"id": "u", "method": "order.place", "params": params}),
    )
    .await;
    assert_eq!(r["id"], "u");
    assert_eq!(r["status"], 400);
    assert_eq!(r["error"]["code"], -1022);
    assert!(r["error"]["msg"].is_string());
    assert!(r.get("result").is_none());
    assert_rate_limits(&r);
    assert!(sim.audit().await.is_empty());

    // Unknown key and stale timestamp in the same envelope.
    let mut bad = ws_signed(SECRET, &"Q".repeat(64), &[("symbol", "BTCUSDT")]);
    let r = ws_call(
        &mut ws,
        json!({"id": 9, "method": "order.status", "params": bad.clone()}),
    )
    .await;
    assert_eq!(
        (r["status"].as_u64(), r["error"]["code"].as_i64()),
        (Some(401), Some(-2015))
    );
    bad["timestamp"] = json!("1");
    bad["apiKey"] = json!(KEY);
    let r = ws_call(
        &mut ws,
        json!({"id": 10, "method": "order.status", "params": bad}),
    )
    .await;
    assert_eq!(r["error"]["code"], -1022);

    let r = ws_call(&mut ws, json!({"id": 11, "method": "no.such"})).await;
    assert_eq!(r["status"], 400);
    let r = ws_call(&mut ws, json!("not an object")).await;
    assert_eq!(
        (r["id"].clone(), r["status"].clone()),
        (Value::Null, json!(400))
    );
}

#[tokio::test]
async fn ws_api_errors_follow_rest_codes() {
    let sim = Sim::start().await;
    let mut ws = sim.ws(&sim.handle.ws_api_url()).await;
    let mut p = place_params("f-1");
    p[3].1 = "0.0015".into();
    let r = ws_call(
        &mut ws,
        json!({"id": 1, "method": "order.place", "params": signed(&sim, &p)}),
    )
    .await;
    assert_eq!(r["error"]["code"], -1111);
    // Numbers as JSON numbers are signed as their text.
    let ts = now_ms();
    let payload = format!("apiKey={KEY}&origClientOrderId=none&symbol=BTCUSDT&timestamp={ts}");
    let params = json!({"apiKey": KEY, "origClientOrderId": "none", "symbol": "BTCUSDT",
                        "timestamp": ts, "signature": sign(SECRET, &payload)});
    let r = ws_call(
        &mut ws,
        json!({"id": 2, "method": "order.status", "params": params}),
    )
    .await;
    assert_eq!(r["error"]["code"], -2013, "{r}");
}
