//! Order history (`GET /fapi/v1/allOrders`): every order of a symbol, placed over REST or the
//! WebSocket API, ascending by order id, paged by `orderId`; the time window's rules (-1127
//! for 7 days or more, -1023 backwards); orders Binance forgets (unfilled and cancelled or
//! expired after 3 days, everything after 90 days); weight 5.

use quantum_binance_sim::sign;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

const DAY: i64 = 86_400_000;

fn market<'a>(cid: &'a str, side: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("symbol", "BTCUSDT"),
        ("side", side),
        ("type", "MARKET"),
        ("quantity", "0.002"),
        ("newClientOrderId", cid),
    ]
}

/// A signed request stamped with `ts`, for a simulator whose clock was shifted.
async fn signed_at(
    sim: &Sim,
    method: Method,
    path: &str,
    params: &[(&str, &str)],
    ts: i64,
) -> Answer {
    let ts = ts.to_string();
    let mut p: Vec<(&str, &str)> = params.to_vec();
    p.push(("timestamp", &ts));
    let payload = enc(&p);
    let full = format!("{payload}&signature={}", sign(&sim.secret, &payload));
    if method == Method::POST {
        sim.raw(method, path, "", &full, Some(&sim.key)).await
    } else {
        sim.raw(method, path, &full, "", Some(&sim.key)).await
    }
}

fn ids(page: &Value) -> Vec<String> {
    page.as_array()
        .unwrap()
        .iter()
        .map(|o| o["clientOrderId"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn pages_rest_and_ws_api_orders_by_order_id() {
    let sim = Sim::start().await;
    let since = now_ms() - 1000;
    for i in 0..4 {
        let side = if i % 2 == 0 { "BUY" } else { "SELL" };
        sim.order(&market(&format!("rest-{i}"), side)).await.ok();
    }
    let mut ws = sim.ws(&sim.handle.ws_api_url()).await;
    for i in 0..3 {
        let side = if i % 2 == 0 { "BUY" } else { "SELL" };
        let cid = format!("ws-{i}");
        let r = ws_call(
            &mut ws,
            json!({"id": i, "method": "order.place", "params": ws_signed(&sim.secret, &sim.key, &market(&cid, side))}),
        )
        .await;
        assert_eq!(r["status"], 200, "{r}");
    }
    // Another symbol's order is not listed.
    sim.order(&[
        ("symbol", "ETHUSDT"),
        ("side", "BUY"),
        ("type", "MARKET"),
        ("quantity", "0.1"),
        ("newClientOrderId", "eth-0"),
    ])
    .await
    .ok();

    let since_s = since.to_string();
    let end_s = (now_ms() + 1000).to_string();
    let window = [
        ("symbol", "BTCUSDT"),
        ("startTime", since_s.as_str()),
        ("endTime", end_s.as_str()),
        ("limit", "3"),
    ];
    let weight = |a: &Answer| -> u32 {
        a.headers["X-MBX-USED-WEIGHT-1M"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let before = sim.get("/fapi/v1/allOrders", &window).await;
    let first = sim.get("/fapi/v1/allOrders", &window).await;
    assert_eq!(weight(&first) - weight(&before), 5, "allOrders weighs 5");
    let first = first.ok().clone();
    assert_eq!(ids(&first), ["rest-0", "rest-1", "rest-2"]);
    let o = &first[0];
    for field in [
        "clientOrderId",
        "status",
        "executedQty",
        "avgPrice",
        "origQty",
        "side",
        "positionSide",
        "reduceOnly",
        "time",
        "updateTime",
        "type",
        "orderId",
        "cumQuote",
    ] {
        assert!(!o[field].is_null(), "{field} missing in {o}");
    }
    assert_eq!(
        (
            o["status"].as_str(),
            o["executedQty"].as_str(),
            o["origQty"].as_str()
        ),
        (Some("FILLED"), Some("0.002"), Some("0.002"))
    );
    assert!(o["avgPrice"].as_str().unwrap().starts_with("65000"), "{o}");

    // The next pages start after the last order id.
    let mut all = ids(&first);
    let mut last = first[2]["orderId"].as_u64().unwrap();
    loop {
        let from = (last + 1).to_string();
        let mut p = window.to_vec();
        p.push(("orderId", &from));
        let page = sim.get("/fapi/v1/allOrders", &p).await.ok().clone();
        let rows = page.as_array().unwrap();
        if rows.is_empty() {
            break;
        }
        assert!(rows.len() <= 3);
        let first_id = rows[0]["orderId"].as_u64().unwrap();
        assert!(first_id > last, "pages ascend by order id");
        last = rows.last().unwrap()["orderId"].as_u64().unwrap();
        all.extend(ids(&page));
    }
    assert_eq!(
        all,
        ["rest-0", "rest-1", "rest-2", "rest-3", "ws-0", "ws-1", "ws-2"]
    );

    // Neither orderId nor startTime: the most recent ones, still ascending.
    let recent = sim
        .get(
            "/fapi/v1/allOrders",
            &[("symbol", "BTCUSDT"), ("limit", "2")],
        )
        .await;
    assert_eq!(ids(recent.ok()), ["ws-1", "ws-2"]);
    // The default limit (500) holds them all.
    let every = sim
        .get("/fapi/v1/allOrders", &[("symbol", "BTCUSDT")])
        .await;
    assert_eq!(every.ok().as_array().unwrap().len(), 7);
}

#[tokio::test]
async fn window_and_parameter_errors() {
    let sim = Sim::start().await;
    let now = now_ms();
    let (a, b) = ((now - 7 * DAY).to_string(), now.to_string());
    sim.get(
        "/fapi/v1/allOrders",
        &[("symbol", "BTCUSDT"), ("startTime", &a), ("endTime", &b)],
    )
    .await
    .err(400, -1127);
    // Just under 7 days is accepted.
    let a1 = (now - 7 * DAY + 1).to_string();
    sim.get(
        "/fapi/v1/allOrders",
        &[("symbol", "BTCUSDT"), ("startTime", &a1), ("endTime", &b)],
    )
    .await
    .ok();
    sim.get(
        "/fapi/v1/allOrders",
        &[("symbol", "BTCUSDT"), ("startTime", &b), ("endTime", &a1)],
    )
    .await
    .err(400, -1023);
    sim.get("/fapi/v1/allOrders", &[]).await.err(400, -1102);
    sim.get("/fapi/v1/allOrders", &[("symbol", "NOPEUSDT")])
        .await
        .err(400, -1121);
    sim.get(
        "/fapi/v1/allOrders",
        &[("symbol", "BTCUSDT"), ("limit", "0")],
    )
    .await
    .err(400, -1130);
    // Unsigned: refused like every USER_DATA endpoint.
    let a = sim
        .raw(
            Method::GET,
            "/fapi/v1/allOrders",
            "symbol=BTCUSDT",
            "",
            Some(&sim.key),
        )
        .await;
    assert_eq!(a.status.as_u16(), 400, "{:?}", a.body);
}

#[tokio::test]
async fn forgets_unfilled_cancels_after_3_days_and_everything_after_90() {
    let sim = Sim::start().await;
    sim.order(&market("filled", "BUY")).await.ok();
    sim.order(&[
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", "LIMIT"),
        ("timeInForce", "GTC"),
        ("quantity", "0.002"),
        ("price", "64000"),
        ("newClientOrderId", "resting"),
    ])
    .await
    .ok();
    sim.signed(
        Method::DELETE,
        "/fapi/v1/order",
        &[("symbol", "BTCUSDT"), ("origClientOrderId", "resting")],
    )
    .await
    .ok();
    let listed = |offset: i64| {
        let sim = &sim;
        async move {
            sim.handle.set_clock_offset(offset);
            let now = now_ms() + offset;
            let start = (now - 7 * DAY + 1000).to_string();
            let p = [("symbol", "BTCUSDT"), ("startTime", start.as_str())];
            let a = signed_at(sim, Method::GET, "/fapi/v1/allOrders", &p, now).await;
            ids(a.ok())
        }
    };
    assert_eq!(listed(2 * DAY).await, ["filled", "resting"]);
    assert_eq!(listed(4 * DAY).await, ["filled"]);
    // Past 90 days, even a window reaching back to the order's time finds nothing.
    sim.handle.set_clock_offset(91 * DAY);
    let now = now_ms() + 91 * DAY;
    let start = (now - 91 * DAY - 1000).to_string();
    let end = (now - 91 * DAY + 5 * DAY).to_string();
    let p = [
        ("symbol", "BTCUSDT"),
        ("startTime", start.as_str()),
        ("endTime", end.as_str()),
    ];
    let a = signed_at(&sim, Method::GET, "/fapi/v1/allOrders", &p, now).await;
    assert_eq!(ids(a.ok()), Vec::<String>::new());
    // At 89 days the same window still finds the filled order.
    sim.handle.set_clock_offset(89 * DAY);
    let now = now_ms() + 89 * DAY;
    let a = signed_at(&sim, Method::GET, "/fapi/v1/allOrders", &p, now).await;
    assert_eq!(ids(a.ok()), ["filled"]);
}
