//! A symbol's contract status: exchangeInfo `status`, the `/sim/symbol-status` control, the
//! order errors of a symbol that is not `TRADING` (-1122, -4140, -4141), the `contractInfo`
//! event on `!contractInfo`, and the settlement that closes every position leg.

use std::time::Duration;

use futures_util::SinkExt;
use quantum_binance_sim::SimConfig;
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

fn symbol_row<'a>(info: &'a Value, symbol: &str) -> &'a Value {
    info["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["symbol"] == symbol)
        .unwrap()
}

async fn set_status(sim: &Sim, symbol: &str, status: &str) -> Value {
    sim.control(
        "/sim/symbol-status",
        json!({"symbol": symbol, "status": status}),
    )
    .await
}

fn order<'a>(side: &'a str, qty: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("symbol", "BTCUSDT"),
        ("side", side),
        ("type", "MARKET"),
        ("quantity", qty),
    ]
}

#[tokio::test]
async fn exchange_info_reports_the_status_the_control_sets() {
    let sim = Sim::start().await;
    let list = sim.public("/sim/symbol-status").await;
    assert_eq!(
        list.ok(),
        &json!([
            {"symbol": "BTCUSDT", "status": "TRADING"},
            {"symbol": "ETHUSDT", "status": "TRADING"},
            {"symbol": "SOLUSDT", "status": "TRADING"},
        ])
    );
    let info = sim.public("/fapi/v1/exchangeInfo").await;
    let btc = symbol_row(info.ok(), "BTCUSDT");
    assert_eq!(btc["status"], "TRADING");
    // USD-M has `status` only; `contractStatus` is COIN-M's name.
    assert!(btc.get("contractStatus").is_none());

    let r = set_status(&sim, "BTCUSDT", "SETTLING").await;
    assert_eq!(
        r,
        json!({"symbol": "BTCUSDT", "previous": "TRADING", "status": "SETTLING",
               "canceled": [], "settled": []})
    );
    let info = sim.public("/fapi/v1/exchangeInfo").await;
    assert_eq!(symbol_row(info.ok(), "BTCUSDT")["status"], "SETTLING");
    assert_eq!(symbol_row(info.ok(), "ETHUSDT")["status"], "TRADING");
    let list = sim.public("/sim/symbol-status").await;
    assert_eq!(list.ok()[0]["status"], "SETTLING");
}

#[tokio::test]
async fn bad_status_requests_are_refused_with_what_is_wrong() {
    let sim = Sim::start().await;
    for (body, says) in [
        (
            json!({"symbol": "BTCUSDT", "status": "HALTED"}),
            "status 'HALTED' is not one of PENDING_TRADING, TRADING",
        ),
        (
            json!({"symbol": "NOPE", "status": "SETTLING"}),
            "unknown symbol 'NOPE'",
        ),
        (json!({"symbol": "BTCUSDT"}), "missing field `status`"),
        (
            json!({"symbol": "BTCUSDT", "status": "SETTLING", "sttle": true}),
            "unknown field `sttle`",
        ),
        (
            json!({"symbol": "BTCUSDT", "status": "PRE_SETTLE", "settle": true}),
            "settle needs status DELIVERING or SETTLING, not PRE_SETTLE",
        ),
    ] {
        let (status, answer) = sim.control_answer("/sim/symbol-status", body).await;
        assert_eq!(status, 400, "{answer}");
        let msg = answer["error"].as_str().unwrap();
        assert!(msg.contains(says), "{msg}");
    }
    let r = sim
        .http
        .post(sim.url("/sim/symbol-status"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let answer: Value = r.json().await.unwrap();
    assert!(answer["error"].as_str().unwrap().starts_with("expected {"));
    // Nothing changed.
    assert_eq!(
        sim.public("/sim/symbol-status").await.ok()[0]["status"],
        "TRADING"
    );
}

#[tokio::test]
async fn orders_are_refused_unless_the_symbol_is_trading() {
    let mut c = SimConfig::ephemeral();
    c.positions
        .push(("BTCUSDT".into(), "0.010".parse().unwrap()));
    let sim = Sim::with(c).await;
    let mut close = order("SELL", "0.002");
    close.push(("reduceOnly", "true"));

    for status in ["SETTLING", "DELIVERING", "DELIVERED", "PENDING_TRADING"] {
        set_status(&sim, "BTCUSDT", status).await;
        let a = sim.order(&order("BUY", "0.002")).await;
        a.err(400, -1122);
        assert_eq!(a.body["msg"], "Invalid symbol status.");
        sim.order(&close).await.err(400, -1122);
    }
    set_status(&sim, "BTCUSDT", "CLOSE").await;
    let a = sim.order(&close).await;
    a.err(400, -4141);
    assert_eq!(a.body["msg"], "Symbol is closed.");
    // Before a settlement or delivery: no new position, closes still go through.
    for status in ["PRE_SETTLE", "PRE_DELIVERING"] {
        set_status(&sim, "BTCUSDT", status).await;
        let a = sim.order(&order("BUY", "0.002")).await;
        a.err(400, -4140);
        assert_eq!(a.body["msg"], "Invalid symbol status for opening position.");
        sim.order(&close).await.ok();
    }
    // Another symbol trades on; the WebSocket API path refuses the same way.
    sim.order(&[
        ("symbol", "ETHUSDT"),
        ("side", "BUY"),
        ("type", "MARKET"),
        ("quantity", "0.010"),
    ])
    .await
    .ok();
    set_status(&sim, "BTCUSDT", "SETTLING").await;
    let mut ws = sim.ws(&sim.handle.ws_api_url()).await;
    let params = ws_signed(
        &sim.secret,
        &sim.key,
        &[
            ("symbol", "BTCUSDT"),
            ("side", "BUY"),
            ("type", "MARKET"),
            ("quantity", "0.002"),
        ],
    );
    let r = ws_call(
        &mut ws,
        json!({"id": "s1", "method": "order.place", "params": params}),
    )
    .await;
    assert_eq!(
        (r["status"].as_u64(), &r["error"]["code"]),
        (Some(400), &json!(-1122))
    );
    // Trading again: accepted.
    set_status(&sim, "BTCUSDT", "TRADING").await;
    sim.order(&order("BUY", "0.002")).await.ok();
    let btc: Vec<_> = sim
        .audit()
        .await
        .into_iter()
        .filter(|o| o["symbol"] == "BTCUSDT")
        .collect();
    assert_eq!(btc.len(), 3, "two closes and the last order: {btc:?}");
}

#[tokio::test]
async fn a_status_change_is_pushed_on_contract_info() {
    let sim = Sim::start().await;
    let base = sim.handle.rest_url().replace("http://", "ws://");
    let mut market = sim.ws(&sim.handle.market_stream_url("!contractInfo")).await;
    assert!(sim
        .handle
        .market_stream_url("!contractInfo")
        .ends_with("/market/ws/!contractInfo"));
    let mut stream = sim
        .ws(&format!("{base}/market/stream?streams=!contractInfo"))
        .await;
    let mut legacy = sim.ws(&format!("{base}/ws/!contractInfo")).await;
    let mut subscribed = sim.ws(&format!("{base}/market/ws")).await;
    let ack = ws_call(
        &mut subscribed,
        json!({"method": "SUBSCRIBE", "params": ["!contractInfo"], "id": 7}),
    )
    .await;
    assert_eq!(ack, json!({"result": null, "id": 7}));
    let list = ws_call(
        &mut subscribed,
        json!({"method": "LIST_SUBSCRIPTIONS", "id": 8}),
    )
    .await;
    assert_eq!(list, json!({"result": ["!contractInfo"], "id": 8}));
    // Other streams carry nothing here.
    let mut other = sim.ws(&format!("{base}/market/ws/btcusdt@markPrice")).await;

    set_status(&sim, "BTCUSDT", "PRE_SETTLE").await;
    let ev = next_json(&mut market).await;
    assert_eq!(ev["e"], "contractInfo");
    assert_eq!(ev["s"], "BTCUSDT");
    assert_eq!(ev["cs"], "PRE_SETTLE");
    assert_eq!(ev["ct"], "PERPETUAL");
    assert_eq!(ev["dt"], 4_133_404_800_000i64);
    assert!(ev["ot"].is_i64() && ev["E"].as_i64().unwrap() > 0);
    // Brackets did not change: no `bks`.
    assert!(ev.get("bks").is_none());
    let wrapped = next_json(&mut stream).await;
    assert_eq!(wrapped["stream"], "!contractInfo");
    assert_eq!(wrapped["data"], ev);
    assert_eq!(next_json(&mut legacy).await, ev);
    assert_eq!(next_json(&mut subscribed).await, ev);

    // Setting the same status again pushes nothing: the next event is the next change.
    set_status(&sim, "BTCUSDT", "PRE_SETTLE").await;
    set_status(&sim, "BTCUSDT", "SETTLING").await;
    assert_eq!(next_json(&mut market).await["cs"], "SETTLING");
    silent(&mut other, Duration::from_millis(200))
        .await
        .unwrap();

    // UNSUBSCRIBE stops it.
    subscribed
        .send(Message::Text(
            json!({"method": "UNSUBSCRIBE", "params": ["!contractInfo"], "id": 9}).to_string(),
        ))
        .await
        .unwrap();
    let answers = until(&mut subscribed, |v| v["id"] == 9).await;
    assert_eq!(answers.last().unwrap()["result"], Value::Null);
    set_status(&sim, "BTCUSDT", "CLOSE").await;
    assert_eq!(next_json(&mut market).await["cs"], "CLOSE");
    silent(&mut subscribed, Duration::from_millis(200))
        .await
        .unwrap();
}

#[tokio::test]
async fn settlement_closes_every_position_and_cancels_open_orders() {
    let mut c = SimConfig::ephemeral();
    c.positions
        .push(("BTCUSDT".into(), "-0.030".parse().unwrap()));
    c.positions
        .push(("ETHUSDT".into(), "0.500".parse().unwrap()));
    let sim = Sim::with(c).await;
    let resting = sim
        .order(&[
            ("symbol", "BTCUSDT"),
            ("side", "BUY"),
            ("type", "LIMIT"),
            ("timeInForce", "GTC"),
            ("quantity", "0.010"),
            ("price", "64000"),
            ("reduceOnly", "true"),
        ])
        .await;
    let resting_id = resting.ok()["orderId"].as_u64().unwrap();
    let key = sim.listen_key().await;
    let mut ws = sim.ws(&sim.handle.stream_url(&key)).await;
    let r = sim
        .control(
            "/sim/symbol-status",
            json!({"symbol": "BTCUSDT", "status": "DELIVERING", "settle": true}),
        )
        .await;
    assert_eq!(r["canceled"], json!([resting_id]));
    let settled = r["settled"].as_array().unwrap().clone();
    assert_eq!(settled.len(), 1);
    let evs = until(&mut ws, |v| v["e"] == "ACCOUNT_UPDATE").await;
    assert!(evs.iter().any(|v| v["e"] == "ORDER_TRADE_UPDATE"
        && v["o"]["i"] == resting_id
        && v["o"]["X"] == "CANCELED"));
    let fill = evs
        .iter()
        .find(|v| v["e"] == "ORDER_TRADE_UPDATE" && v["o"]["x"] == "TRADE")
        .unwrap();
    assert!(fill["o"]["c"]
        .as_str()
        .unwrap()
        .starts_with("settlement_autoclose-"));
    assert_eq!(
        (
            &fill["o"]["i"],
            &fill["o"]["S"],
            &fill["o"]["ps"],
            &fill["o"]["z"]
        ),
        (&settled[0], &json!("BUY"), &json!("BOTH"), &json!("0.030"))
    );
    let update = evs.last().unwrap();
    assert_eq!(update["a"]["P"][0]["pa"], "0.000");
    assert_eq!(update["a"]["P"][0]["ps"], "BOTH");
    // ETHUSDT untouched.
    let legs = sim.handle.positions();
    assert_eq!(legs.len(), 1);
    assert_eq!(
        (legs[0].symbol.as_str(), legs[0].position_amt.as_str()),
        ("ETHUSDT", "0.5")
    );
    // Nothing left to settle: a second settle closes nothing.
    let r = sim
        .control(
            "/sim/symbol-status",
            json!({"symbol": "BTCUSDT", "status": "DELIVERING", "settle": true}),
        )
        .await;
    assert_eq!((&r["canceled"], &r["settled"]), (&json!([]), &json!([])));
    let orders = sim.signed(Method::GET, "/fapi/v1/openOrders", &[]).await;
    assert_eq!(orders.ok(), &json!([]));
}
