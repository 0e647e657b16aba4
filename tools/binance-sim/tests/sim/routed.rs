//! The user data stream on the routed private endpoint: ws and stream mode, the `events`
//! filter, SUBSCRIBE, and the silence of unrouted connections; fills as TRADE_LITE before
//! their ORDER_TRADE_UPDATE; the orders the exchange creates itself.

use std::time::Duration;

use futures_util::SinkExt;
use quantum_binance_sim::SimConfig;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

fn sell(cid: &str, qty: &str) -> Vec<(&'static str, String)> {
    vec![
        ("symbol", "BTCUSDT".into()),
        ("side", "SELL".into()),
        ("type", "MARKET".into()),
        ("quantity", qty.into()),
        ("reduceOnly", "true".into()),
        ("newClientOrderId", cid.into()),
    ]
}

async fn place(sim: &Sim, p: &[(&'static str, String)]) {
    let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
    sim.order(&p).await.ok();
}

async fn long_sim(amt: &str) -> Sim {
    let mut c = SimConfig::ephemeral();
    c.positions.push(("BTCUSDT".into(), amt.parse().unwrap()));
    Sim::with(c).await
}

#[tokio::test]
async fn only_the_private_route_carries_user_data() {
    let sim = long_sim("0.010").await;
    let key = sim.listen_key().await;
    let mut routed = sim.ws(&sim.handle.stream_url(&key)).await;
    let mut path_form = sim
        .ws(&format!("{}/ws/{key}", sim.handle.stream_base_url()))
        .await;
    let addr = sim.handle.local_addr();
    let mut unrouted = Vec::new();
    for url in [
        sim.handle.legacy_stream_url(&key),
        format!("ws://{addr}/stream?streams={key}"),
        format!("ws://{addr}/public/ws/{key}"),
        format!("ws://{addr}/market/ws?listenKey={key}"),
    ] {
        unrouted.push(sim.ws(&url).await);
    }
    place(&sim, &sell("r-1", "0.002")).await;
    for ws in [&mut routed, &mut path_form] {
        let evs = until(ws, |v| v["e"] == "ACCOUNT_UPDATE").await;
        assert!(evs.iter().any(|v| v["o"]["c"] == "r-1"), "{evs:?}");
    }
    // Everything was broadcast before the routed sockets finished reading.
    for ws in &mut unrouted {
        silent(ws, Duration::from_millis(300)).await.unwrap();
    }
    // A subscription on an unrouted connection is acknowledged, and still nothing follows.
    let ws = &mut unrouted[0];
    let ack = ws_call(ws, json!({"method": "SUBSCRIBE", "params": [key], "id": 7})).await;
    assert_eq!(ack, json!({"result": null, "id": 7}));
    place(&sim, &sell("r-2", "0.002")).await;
    until(&mut routed, |v| {
        v["o"]["c"] == "r-2" && v["o"]["X"] == "FILLED"
    })
    .await;
    silent(ws, Duration::from_millis(300)).await.unwrap();
}

#[tokio::test]
async fn events_filter_and_stream_mode() {
    let sim = long_sim("0.010").await;
    let key = sim.listen_key().await;
    let base = sim.handle.stream_base_url();
    let mut only_orders = sim
        .ws(&format!(
            "{base}/ws?listenKey={key}&events=ORDER_TRADE_UPDATE"
        ))
        .await;
    let mut wrapped = sim
        .ws(&format!(
            "{base}/stream?listenKey={key}&events=ACCOUNT_UPDATE/TRADE_LITE"
        ))
        .await;
    place(&sim, &sell("f-1", "0.003")).await;
    let evs = until(&mut only_orders, |v| v["o"]["X"] == "FILLED").await;
    assert!(
        evs.iter().all(|v| v["e"] == "ORDER_TRADE_UPDATE"),
        "{evs:?}"
    );
    assert_eq!(evs.len(), 2, "NEW then TRADE: {evs:?}");
    let evs = until(&mut wrapped, |v| v["data"]["e"] == "ACCOUNT_UPDATE").await;
    let names: Vec<&Value> = evs.iter().map(|v| &v["data"]["e"]).collect();
    assert_eq!(
        names,
        [&json!("TRADE_LITE"), &json!("ACCOUNT_UPDATE")],
        "{evs:?}"
    );
    assert!(evs.iter().all(|v| v["stream"] == key.as_str()));
    assert_eq!(evs[1]["data"]["a"]["P"][0]["pa"], "0.007");
}

#[tokio::test]
async fn subscribe_attaches_a_keyless_private_connection_and_bad_keys_are_refused() {
    let sim = long_sim("0.010").await;
    let key = sim.listen_key().await;
    let base = sim.handle.stream_base_url();
    let mut ws = sim.ws(&format!("{base}/ws")).await;
    let r = ws_call(
        &mut ws,
        json!({"method": "SUBSCRIBE", "params": ["nope"], "id": 1}),
    )
    .await;
    assert_eq!(r["error"]["code"], -1125, "{r}");
    let r = ws_call(
        &mut ws,
        json!({"method": "SUBSCRIBE", "params": [key], "id": 2}),
    )
    .await;
    assert_eq!(r, json!({"result": null, "id": 2}));
    let r = ws_call(&mut ws, json!({"method": "LIST_SUBSCRIPTIONS", "id": 3})).await;
    assert_eq!(r["result"], json!([key]));
    place(&sim, &sell("s-1", "0.001")).await;
    until(&mut ws, |v| v["e"] == "ACCOUNT_UPDATE").await;
    // A handshake with an unknown key is refused with -1125.
    let e = tokio_tungstenite::connect_async(format!("{base}/ws?listenKey=unknown"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("400"), "{e}");
}

#[tokio::test]
async fn trade_lite_comes_before_the_order_update_of_the_same_trade() {
    let sim = long_sim("0.010").await;
    let key = sim.listen_key().await;
    let mut ws = sim.ws(&sim.handle.stream_url(&key)).await;
    place(&sim, &sell("t-1", "0.004")).await;
    let evs = until(&mut ws, |v| v["e"] == "ACCOUNT_UPDATE").await;
    let kinds: Vec<String> = evs
        .iter()
        .map(|v| match v["e"].as_str().unwrap() {
            "ORDER_TRADE_UPDATE" => format!("OTU/{}", v["o"]["x"].as_str().unwrap()),
            e => e.to_string(),
        })
        .collect();
    assert_eq!(
        kinds,
        ["OTU/NEW", "TRADE_LITE", "OTU/TRADE", "ACCOUNT_UPDATE"]
    );
    let (lite, otu) = (&evs[1], &evs[2]["o"]);
    assert_eq!((&lite["i"], &lite["t"]), (&otu["i"], &otu["t"]));
    assert_eq!(
        (&lite["c"], &lite["l"], &lite["S"]),
        (&json!("t-1"), &json!("0.004"), &json!("SELL"))
    );
    assert!(lite["t"].as_u64().unwrap() > 0 && lite["L"] == otu["L"]);
}

#[tokio::test]
async fn the_exchange_closes_positions_under_its_own_client_ids() {
    let mut c = SimConfig::ephemeral();
    c.positions
        .push(("BTCUSDT".into(), "0.010".parse().unwrap()));
    c.positions
        .push(("ETHUSDT".into(), "-1.0".parse().unwrap()));
    c.positions.push(("SOLUSDT".into(), "3".parse().unwrap()));
    let sim = Sim::with(c).await;
    let key = sim.listen_key().await;
    let mut ws = sim.ws(&sim.handle.stream_url(&key)).await;
    for (symbol, kind, qty, prefix, left) in [
        (
            "BTCUSDT",
            "liquidation",
            Some("0.004"),
            "autoclose-",
            "0.006",
        ),
        ("ETHUSDT", "adl", None, "adl_autoclose", "0.000"),
        ("SOLUSDT", "settlement", None, "settlement_autoclose-", "0"),
    ] {
        let mut body = json!({"symbol": symbol, "kind": kind});
        if let Some(q) = qty {
            body["quantity"] = json!(q);
        }
        let r = sim.control("/sim/liquidate", body).await;
        let cid = r["clientOrderId"].as_str().unwrap().to_string();
        assert!(cid.starts_with(prefix), "{cid}");
        let evs = until(&mut ws, |v| v["e"] == "ACCOUNT_UPDATE").await;
        let fill = evs
            .iter()
            .find(|v| v["e"] == "ORDER_TRADE_UPDATE" && v["o"]["x"] == "TRADE")
            .unwrap();
        assert_eq!(fill["o"]["c"], cid.as_str());
        assert_eq!(fill["o"]["X"], "FILLED");
        assert_eq!(fill["o"]["R"], true);
        assert!(evs
            .iter()
            .any(|v| v["e"] == "TRADE_LITE" && v["c"] == cid.as_str()));
        assert_eq!(evs.last().unwrap()["a"]["P"][0]["pa"], left, "{symbol}");
    }
    let audit = sim.audit().await;
    assert_eq!(audit.len(), 3);
    assert!(audit.iter().all(|o| o["via"] == "exchange"));
    // Nothing to close: refused.
    let r = sim
        .http
        .post(sim.url("/sim/liquidate"))
        .json(&json!({"symbol": "ETHUSDT", "kind": "liquidation"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[tokio::test]
async fn a_client_frame_that_is_not_json_is_ignored() {
    // A raw text frame that is not JSON on the private route is ignored, not fatal.
    let sim = long_sim("0.010").await;
    let key = sim.listen_key().await;
    let mut ws = sim.ws(&sim.handle.stream_url(&key)).await;
    ws.send(Message::Text("not json".into())).await.unwrap();
    place(&sim, &sell("h-1", "0.001")).await;
    until(&mut ws, |v| v["e"] == "ACCOUNT_UPDATE").await;
}
