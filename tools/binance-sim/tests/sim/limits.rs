//! Request weight per minute: 429 with -1003 past the limit, 418 for a client that keeps
//! going; the ORDERS limits; the X-MBX-* usage headers on every answer.

use quantum_binance_sim::{Limits, SimConfig};
use reqwest::Method;
use serde_json::json;

use crate::common::*;

fn assert_headers(a: &Answer) {
    for h in [
        "X-MBX-USED-WEIGHT-1M",
        "X-MBX-ORDER-COUNT-10S",
        "X-MBX-ORDER-COUNT-1M",
    ] {
        let v = a
            .headers
            .get(h)
            .unwrap_or_else(|| panic!("{h} missing ({})", a.status));
        v.to_str().unwrap().parse::<u32>().expect("a number");
    }
}

fn header(a: &Answer, h: &str) -> u32 {
    a.headers[h].to_str().unwrap().parse().unwrap()
}

async fn limited(weight: u32) -> Sim {
    let mut c = SimConfig::ephemeral();
    c.limits = Limits {
        weight_per_minute: weight,
        ban_ms: 60_000,
        ..Limits::default()
    };
    let sim = Sim::with(c).await;
    // A frozen clock keeps every request in one weight window.
    sim.control("/sim/clock", json!({ "freezeAtMs": now_ms() + 3000 }))
        .await;
    sim
}

#[tokio::test]
async fn over_the_weight_limit_429_then_418() {
    let sim = limited(10).await;
    for i in 1..=10 {
        let a = sim.public("/fapi/v1/time").await;
        a.ok();
        assert_eq!(header(&a, "X-MBX-USED-WEIGHT-1M"), i);
    }
    let a = sim.public("/fapi/v1/time").await;
    a.err(429, -1003);
    assert_headers(&a);
    assert!(a.headers.contains_key("Retry-After"));
    // The client keeps going after the 429: banned.
    let a = sim.public("/fapi/v1/time").await;
    a.err(418, -1003);
    assert!(a.body["msg"].as_str().unwrap().contains("banned until"));
    assert_headers(&a);
    sim.public("/fapi/v1/exchangeInfo").await.err(418, -1003);
    // Ban over (the clock moves on two minutes): served again.
    sim.control("/sim/clock", json!({ "freezeAtMs": now_ms() + 120_000 }))
        .await;
    sim.public("/fapi/v1/time").await.ok();
}

#[tokio::test]
async fn endpoint_weights_are_binances() {
    let sim = limited(2400).await;
    let w = |a: &Answer| header(a, "X-MBX-USED-WEIGHT-1M");
    let a = sim.get("/fapi/v2/positionRisk", &[]).await;
    assert_eq!(w(&a), 5);
    let a = sim.get("/fapi/v1/positionSide/dual", &[]).await;
    assert_eq!(w(&a), 35);
    // Placing an order costs no IP weight but counts on ORDERS.
    let a = sim
        .order(&[
            ("symbol", "BTCUSDT"),
            ("side", "BUY"),
            ("type", "MARKET"),
            ("quantity", "0.002"),
        ])
        .await;
    a.ok();
    assert_eq!(w(&a), 35);
    assert_eq!(header(&a, "X-MBX-ORDER-COUNT-10S"), 1);
    assert_eq!(header(&a, "X-MBX-ORDER-COUNT-1M"), 1);
}

#[tokio::test]
async fn x_mbx_headers_on_every_response() {
    let sim = Sim::start().await;
    sim.control("/sim/clock", json!({ "freezeAtMs": now_ms() + 3000 }))
        .await;
    let mut answers = vec![
        sim.public("/fapi/v1/time").await,
        sim.public("/fapi/v1/exchangeInfo").await,
        sim.public("/fapi/v1/ping").await,
        sim.get("/fapi/v2/positionRisk", &[]).await,
        sim.get("/fapi/v3/positionRisk", &[]).await,
        sim.get("/fapi/v2/account", &[]).await,
        sim.get("/fapi/v3/account", &[]).await,
        sim.get("/fapi/v1/positionSide/dual", &[]).await,
        sim.get("/fapi/v1/leverageBracket", &[]).await,
        sim.get("/fapi/v1/order", &[("symbol", "BTCUSDT"), ("orderId", "1")])
            .await,
        sim.order(&[
            ("symbol", "BTCUSDT"),
            ("side", "BUY"),
            ("type", "MARKET"),
            ("quantity", "0.002"),
        ])
        .await,
        sim.order(&[
            ("symbol", "BTCUSDT"),
            ("side", "BUY"),
            ("type", "MARKET"),
            ("quantity", "0"),
        ])
        .await,
        sim.signed(
            Method::DELETE,
            "/fapi/v1/order",
            &[("symbol", "BTCUSDT"), ("orderId", "1")],
        )
        .await,
        sim.raw(Method::POST, "/fapi/v1/listenKey", "", "", Some(&sim.key))
            .await,
        sim.raw(Method::PUT, "/fapi/v1/listenKey", "", "", Some(&sim.key))
            .await,
        sim.raw(
            Method::GET,
            "/fapi/v2/account",
            "timestamp=1&signature=00",
            "",
            Some(&sim.key),
        )
        .await,
        sim.raw(Method::GET, "/fapi/v2/account", "", "", Some("bad"))
            .await,
    ];
    sim.control("/sim/faults", json!({ "ambiguous503Rate": 1.0 }))
        .await;
    answers.push(
        sim.order(&[
            ("symbol", "BTCUSDT"),
            ("side", "BUY"),
            ("type", "MARKET"),
            ("quantity", "0.002"),
        ])
        .await,
    );
    assert_eq!(answers.last().unwrap().status.as_u16(), 503);
    for a in &answers {
        assert_headers(a);
    }
    assert_eq!(header(answers.last().unwrap(), "X-MBX-ORDER-COUNT-1M"), 3);
}

#[tokio::test]
async fn orders_limit_per_10s_gives_1015() {
    let mut c = SimConfig::ephemeral();
    c.limits.orders_per_10s = 2;
    let sim = Sim::with(c).await;
    // A frozen clock keeps every request in one window. 3 s ahead of the wall clock leaves
    // signed requests seconds of slack on a busy machine (ahead < 1 s, stale > 5 s).
    sim.control("/sim/clock", json!({ "freezeAtMs": now_ms() + 3000 }))
        .await;
    let o = [
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", "MARKET"),
        ("quantity", "0.002"),
    ];
    sim.order(&o).await.ok();
    sim.order(&o).await.ok();
    sim.order(&o).await.err(429, -1015);
    assert_eq!(sim.audit().await.len(), 2);
    // Limits can be changed and counters reset at run time.
    sim.control("/sim/limits", json!({ "ordersPer10s": 300 }))
        .await;
    sim.order(&o).await.ok();
}

#[tokio::test]
async fn forced_429_and_418() {
    let sim = Sim::start().await;
    sim.control("/sim/faults", json!({ "force429": true }))
        .await;
    sim.public("/fapi/v1/time").await.err(429, -1003);
    sim.control(
        "/sim/faults",
        json!({ "force429": false, "force418": true }),
    )
    .await;
    sim.public("/fapi/v1/time").await.err(418, -1003);
    sim.control("/sim/faults", json!({ "force418": false }))
        .await;
    sim.public("/fapi/v1/time").await.ok();
}
