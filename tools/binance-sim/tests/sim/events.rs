//! MARKET fills (RESULT answers FILLED with an average price; ACK answers NEW and the stream
//! follows with the fill and the new position), the user data stream on the private route
//! (raw or enveloped, filtered by `events`, nothing on an unrouted connection), TRADE_LITE
//! ahead of the order update, the exchange's own orders, listenKey keepalive and expiry.

use std::time::Duration;

use quantum_binance_sim::SimConfig;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

#[tokio::test]
async fn market_result_returns_filled() {
    let sim = Sim::start().await;
    let a = sim
        .order(&[
            ("symbol", "BTCUSDT"),
            ("side", "BUY"),
            ("type", "MARKET"),
            ("quantity", "0.010"),
            ("newOrderRespType", "RESULT"),
            ("newClientOrderId", "res-1"),
        ])
        .await;
    let o = a.ok();
    assert_eq!(o["status"], "FILLED");
    assert_eq!(o["executedQty"], o["origQty"]);
    assert_eq!(o["origQty"], "0.010");
    assert_eq!(o["clientOrderId"], "res-1");
    let avg: f64 = o["avgPrice"].as_str().unwrap().parse().unwrap();
    assert!(avg > 0.0);
    assert_eq!(avg, 65000.0);
    for k in [
        "cumQty",
        "cumQuote",
        "orderId",
        "price",
        "reduceOnly",
        "side",
        "positionSide",
        "stopPrice",
        "closePosition",
        "symbol",
        "timeInForce",
        "type",
        "origType",
        "updateTime",
        "workingType",
        "priceProtect",
        "priceMatch",
        "selfTradePreventionMode",
        "goodTillDate",
    ] {
        assert!(o.get(k).is_some(), "missing {k} in {o}");
    }
    // Decimals are JSON strings.
    assert!(o["cumQuote"].is_string() && o["executedQty"].is_string());
    assert_eq!(sim.handle.positions()[0].position_amt, "0.01");
}

#[tokio::test]
async fn market_ack_returns_new_then_stream_sends_updates() {
    let mut c = SimConfig::ephemeral();
    c.positions
        .push(("ETHUSDT".into(), "0.500".parse().unwrap()));
    let sim = Sim::with(c).await;
    let key = sim.listen_key().await;
    let mut ws = sim.ws(&sim.handle.stream_url(&key)).await;

    let a = sim
        .order(&[
            ("symbol", "ETHUSDT"),
            ("side", "SELL"),
            ("type", "MARKET"),
            ("quantity", "0.200"),
            ("newClientOrderId", "ack-1"),
        ])
        .await;
    let o = a.ok();
    assert_eq!(o["status"], "NEW");
    assert_eq!(o["executedQty"], "0.000");
    let id = o["orderId"].as_u64().unwrap();

    let evs = until(&mut ws, |v| v["e"] == "ACCOUNT_UPDATE").await;
    let updates: Vec<&Value> = evs
        .iter()
        .filter(|v| v["e"] == "ORDER_TRADE_UPDATE")
        .collect();
    assert_eq!(updates.len(), 2, "{evs:?}");
    assert_eq!(updates[0]["o"]["x"], "NEW");
    assert_eq!(updates[0]["o"]["X"], "NEW");
    assert_eq!(updates[0]["o"]["c"], "ack-1");
    assert_eq!(updates[0]["o"]["i"].as_u64(), Some(id));
    assert_eq!(updates[1]["o"]["x"], "TRADE");
    assert_eq!(updates[1]["o"]["X"], "FILLED");
    assert_eq!(updates[1]["o"]["l"], "0.200");
    assert_eq!(updates[1]["o"]["z"], "0.200");
    assert_eq!(updates[1]["o"]["q"], "0.200");
    assert_eq!(updates[1]["o"]["ps"], "BOTH");
    assert!(
        updates[1]["o"]["ap"]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap()
            > 0.0
    );
    let acct = evs.last().unwrap();
    let p = &acct["a"]["P"][0];
    assert_eq!(p["s"], "ETHUSDT");
    assert_eq!(p["pa"], "0.300");
    assert_eq!(p["ps"], "BOTH");

    // The order is FILLED when queried.
    let q = sim
        .get(
            "/fapi/v1/order",
            &[("symbol", "ETHUSDT"), ("origClientOrderId", "ack-1")],
        )
        .await;
    assert_eq!(q.ok()["status"], "FILLED");
}

#[tokio::test]
async fn listen_key_keepalive_delete_and_expiry() {
    let mut c = SimConfig::ephemeral();
    c.listen_key_ttl = Duration::from_secs(60);
    let sim = Sim::with(c).await;
    let key = sim.listen_key().await;
    assert_eq!(key.len(), 64);
    // POST again returns the same active key; PUT extends it.
    assert_eq!(sim.listen_key().await, key);
    let put = sim
        .raw(Method::PUT, "/fapi/v1/listenKey", "", "", Some(&sim.key))
        .await;
    assert_eq!(put.ok()["listenKey"], key.as_str());

    let mut ws = sim.ws(&sim.handle.stream_url(&key)).await;
    // Move the server clock past the lifetime: the key expires.
    sim.control("/sim/clock", json!({ "offsetMs": 61_000 }))
        .await;
    let ev = next_json(&mut ws).await;
    assert_eq!(ev["e"], "listenKeyExpired");
    assert_eq!(ev["listenKey"], key.as_str());
    sim.raw(Method::PUT, "/fapi/v1/listenKey", "", "", Some(&sim.key))
        .await
        .err(400, -1125);
    // A stream for the expired key is refused.
    assert!(
        tokio_tungstenite::connect_async(sim.handle.stream_url(&key))
            .await
            .is_err()
    );

    // A new key after expiry; DELETE removes it.
    let k2 = sim.listen_key().await;
    assert_ne!(k2, key);
    sim.raw(Method::DELETE, "/fapi/v1/listenKey", "", "", Some(&sim.key))
        .await
        .ok();
    sim.raw(Method::PUT, "/fapi/v1/listenKey", "", "", Some(&sim.key))
        .await
        .err(400, -1125);
}

#[tokio::test]
async fn listen_key_expires_in_real_time_when_configured_short() {
    let mut c = SimConfig::ephemeral();
    c.listen_key_ttl = Duration::from_millis(300);
    let sim = Sim::with(c).await;
    let key = sim.listen_key().await;
    let mut ws = sim.ws(&sim.handle.stream_url(&key)).await;
    let ev = next_json(&mut ws).await;
    assert_eq!(ev["e"], "listenKeyExpired");
    sim.raw(Method::PUT, "/fapi/v1/listenKey", "", "", Some(&sim.key))
        .await
        .err(400, -1125);
}

#[tokio::test]
async fn cancel_is_reported_on_the_stream() {
    let sim = Sim::start().await;
    let key = sim.listen_key().await;
    let mut ws = sim.ws(&sim.handle.stream_url(&key)).await;
    sim.order(&[
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", "LIMIT"),
        ("timeInForce", "GTC"),
        ("quantity", "0.002"),
        ("price", "64000"),
        ("newClientOrderId", "rest-1"),
    ])
    .await
    .ok();
    assert_eq!(next_json(&mut ws).await["o"]["x"], "NEW");
    sim.signed(
        Method::DELETE,
        "/fapi/v1/order",
        &[("symbol", "BTCUSDT"), ("origClientOrderId", "rest-1")],
    )
    .await
    .ok();
    let ev = next_json(&mut ws).await;
    assert_eq!(
        (ev["o"]["x"].as_str(), ev["o"]["X"].as_str()),
        (Some("CANCELED"), Some("CANCELED"))
    );
}
