//! Fault injection: ambiguous 503, a gateway's 5xx page after placing, dropped connections,
//! injected errors, latency; plus
//! shutdown and the threaded runner.

use std::io::{Read, Write};

use quantum_binance_sim::{Faults, SimConfig, SimHandle};
use serde_json::json;

use crate::common::*;

fn mkt(cid: &str) -> Vec<(&str, &str)> {
    vec![
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", "MARKET"),
        ("quantity", "0.002"),
        ("newClientOrderId", cid),
    ]
}

#[tokio::test]
async fn ambiguous_503_places_the_order() {
    let sim = Sim::start().await;
    sim.control("/sim/faults", json!({ "ambiguous503Rate": 1.0 }))
        .await;
    let a = sim.order(&mkt("amb-1")).await;
    a.err(503, -1000);
    assert!(a.body["msg"].as_str().unwrap().contains("Unknown error"));
    sim.control("/sim/faults", json!({ "ambiguous503Rate": 0.0 }))
        .await;
    // The order exists: the audit has it once, and a lookup by client id finds it.
    let audit = sim.audit().await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["clientOrderId"], "amb-1");
    let q = sim
        .get(
            "/fapi/v1/order",
            &[("symbol", "BTCUSDT"), ("origClientOrderId", "amb-1")],
        )
        .await;
    assert_eq!(q.ok()["status"], "FILLED");
}

#[tokio::test]
async fn injected_error_does_not_place() {
    let sim = Sim::start().await;
    sim.handle.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    sim.order(&mkt("err-1")).await.err(503, -1008);
    sim.handle.set_faults(Faults::default());
    assert!(sim.audit().await.is_empty());
    sim.get(
        "/fapi/v1/order",
        &[("symbol", "BTCUSDT"), ("origClientOrderId", "err-1")],
    )
    .await
    .err(400, -2013);
}

async fn send_raw_order(sim: &Sim, cid: &str) -> reqwest::Result<reqwest::Response> {
    let ts = now_ms().to_string();
    let mut p = mkt(cid);
    p.push(("timestamp", &ts));
    let payload = enc(&p);
    let body = format!(
        "{payload}&signature={}",
        quantum_binance_sim::sign(&sim.secret, &payload)
    );
    reqwest::Client::new()
        .post(sim.url("/fapi/v1/order"))
        .header("X-MBX-APIKEY", &sim.key)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
}

#[tokio::test]
async fn gateway_page_after_place_leaves_the_order() {
    let sim = Sim::start().await;
    for (status, cid) in [(502, "gw-502"), (504, "gw-504")] {
        sim.control(
            "/sim/faults",
            json!({ "gatewayAfterPlaceRate": 1.0, "gatewayStatus": status }),
        )
        .await;
        let r = send_raw_order(&sim, cid).await.unwrap();
        assert_eq!(r.status().as_u16(), status);
        let body = r.text().await.unwrap();
        assert!(
            body.contains("<html>") && body.contains(&status.to_string()),
            "{body}"
        );
        assert!(serde_json::from_str::<serde_json::Value>(&body).is_err());
        sim.control("/sim/faults", json!({ "gatewayAfterPlaceRate": 0.0 }))
            .await;
        // Placed all the same: a lookup by client id finds it.
        let q = sim
            .get(
                "/fapi/v1/order",
                &[("symbol", "BTCUSDT"), ("origClientOrderId", cid)],
            )
            .await;
        assert_eq!(q.ok()["status"], "FILLED");
    }
    assert_eq!(sim.audit().await.len(), 2);
    // Not a 5xx: refused, the faults unchanged.
    let r = sim
        .http
        .post(sim.url("/sim/faults"))
        .json(&json!({ "gatewayStatus": 200 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[tokio::test]
async fn dropped_connection_after_place_leaves_the_order() {
    let sim = Sim::start().await;
    sim.control(
        "/sim/faults",
        json!({ "dropRate": 1.0, "dropAfterPlace": true }),
    )
    .await;
    let r = send_raw_order(&sim, "drop-1").await;
    assert!(r.is_err(), "expected the connection to close, got {r:?}");
    sim.control("/sim/faults", json!({ "dropRate": 0.0 })).await;
    let audit = sim.audit().await;
    assert_eq!(audit.len(), 1);
    sim.get(
        "/fapi/v1/order",
        &[("symbol", "BTCUSDT"), ("origClientOrderId", "drop-1")],
    )
    .await
    .ok();
    // The server keeps serving other connections.
    sim.public("/fapi/v1/time").await.ok();
}

#[tokio::test]
async fn dropped_connection_before_place_leaves_nothing() {
    let sim = Sim::start().await;
    sim.control(
        "/sim/faults",
        json!({ "dropRate": 1.0, "dropAfterPlace": false }),
    )
    .await;
    assert!(send_raw_order(&sim, "drop-2").await.is_err());
    sim.control("/sim/faults", json!({ "dropRate": 0.0 })).await;
    assert!(sim.audit().await.is_empty());
    sim.get(
        "/fapi/v1/order",
        &[("symbol", "BTCUSDT"), ("origClientOrderId", "drop-2")],
    )
    .await
    .err(400, -2013);
}

#[tokio::test]
async fn ws_api_faults() {
    let sim = Sim::start().await;
    let mut ws = sim.ws(&sim.handle.ws_api_url()).await;
    sim.control("/sim/faults", json!({ "ambiguous503Rate": 1.0 }))
        .await;
    let p = ws_signed(&sim.secret, &sim.key, &mkt("wsamb"));
    let r = ws_call(
        &mut ws,
        json!({"id": 1, "method": "order.place", "params": p}),
    )
    .await;
    assert_eq!(
        (r["status"].as_u64(), r["error"]["code"].as_i64()),
        (Some(503), Some(-1000))
    );
    sim.control(
        "/sim/faults",
        json!({ "ambiguous503Rate": 0.0, "dropRate": 1.0 }),
    )
    .await;
    let p = ws_signed(&sim.secret, &sim.key, &mkt("wsdrop"));
    use futures_util::{SinkExt, StreamExt};
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        json!({"id": 2, "method": "order.place", "params": p}).to_string(),
    ))
    .await
    .unwrap();
    // The connection ends without an answer.
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
            .await
            .unwrap()
        {
            None | Some(Err(_)) | Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) => {
                break
            }
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                panic!("unexpected answer {t}")
            }
            Some(Ok(_)) => {}
        }
    }
    let ids: Vec<_> = sim
        .audit()
        .await
        .iter()
        .map(|o| o["clientOrderId"].clone())
        .collect();
    assert_eq!(ids, vec![json!("wsamb"), json!("wsdrop")]);
}

#[tokio::test]
async fn latency_is_added_and_faults_readable() {
    let sim = Sim::start().await;
    let f = sim.control("/sim/faults", json!({ "latencyMs": 20 })).await;
    assert_eq!(f["latencyMs"], 20);
    sim.public("/fapi/v1/time").await.ok();
    assert_eq!(sim.public("/sim/faults").await.ok()["latencyMs"], 20);
    assert_eq!(sim.handle.faults().latency_ms, 20);
    let bad = sim
        .http
        .post(sim.url("/sim/faults"))
        .json(&json!({"nope": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
}

#[tokio::test]
async fn shutdown_closes_the_listener() {
    let sim = Sim::start().await;
    let addr = sim.handle.local_addr();
    assert_ne!(addr.port(), 0);
    sim.public("/fapi/v1/time").await.ok();
    let Sim { handle, .. } = sim;
    handle.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[test]
fn spawn_in_thread_serves_a_blocking_program() {
    let handle = SimHandle::spawn_in_thread(SimConfig::ephemeral()).unwrap();
    assert!(handle.rest_url().starts_with("http://127.0.0.1:"));
    assert!(handle.ws_api_url().ends_with("/ws-fapi/v1"));
    assert_eq!(
        handle.stream_url("k"),
        format!("{}/ws?listenKey=k", handle.stream_base_url())
    );
    assert!(handle.stream_base_url().ends_with("/private"));
    let mut s = std::net::TcpStream::connect(handle.local_addr()).unwrap();
    s.write_all(b"GET /fapi/v1/time HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("serverTime"));
    assert!(out.to_ascii_lowercase().contains("x-mbx-used-weight-1m"));
    let addr = handle.local_addr();
    handle.shutdown_blocking();
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[tokio::test]
async fn execution_status_unknown_answers_with_and_without_the_order() {
    let sim = Sim::start().await;
    sim.control("/sim/faults", json!({ "timeout1007Rate": 1.0 }))
        .await;
    let a = sim.order(&mkt("t-1007")).await;
    a.err(408, -1007);
    assert!(a.body["msg"]
        .as_str()
        .unwrap()
        .contains("execution status unknown"));
    sim.control(
        "/sim/faults",
        json!({ "timeout1007Rate": 0.0, "unexpected1006Rate": 1.0, "unknownPlaces": false }),
    )
    .await;
    sim.order(&mkt("u-1006")).await.err(500, -1006);
    // Over the WebSocket API too, in its envelope.
    let mut ws = sim.ws(&sim.handle.ws_api_url()).await;
    let p = ws_signed(&sim.secret, &sim.key, &mkt("w-1006"));
    let r = ws_call(
        &mut ws,
        json!({"id": 1, "method": "order.place", "params": p}),
    )
    .await;
    assert_eq!(
        (r["status"].as_u64(), r["error"]["code"].as_i64()),
        (Some(500), Some(-1006))
    );
    sim.control("/sim/faults", json!({ "unexpected1006Rate": 0.0 }))
        .await;
    let ids: Vec<_> = sim
        .audit()
        .await
        .iter()
        .map(|o| o["clientOrderId"].clone())
        .collect();
    assert_eq!(
        ids,
        vec![json!("t-1007")],
        "only the -1007 order was placed"
    );
}

#[tokio::test]
async fn a_lagging_query_answers_2013_for_an_order_that_exists() {
    let sim = Sim::start().await;
    sim.control("/sim/faults", json!({ "queryLagMs": 400 }))
        .await;
    sim.order(&mkt("lag-1")).await.ok();
    let q = [("symbol", "BTCUSDT"), ("origClientOrderId", "lag-1")];
    sim.get("/fapi/v1/order", &q).await.err(400, -2013);
    assert_eq!(sim.audit().await.len(), 1, "placed nonetheless");
    let mut ws = sim.ws(&sim.handle.ws_api_url()).await;
    let p: Vec<(&str, &str)> = q.to_vec();
    let r = ws_call(
        &mut ws,
        json!({"id": 1, "method": "order.status", "params": ws_signed(&sim.secret, &sim.key, &p)}),
    )
    .await;
    assert_eq!(r["error"]["code"], -2013, "{r}");
    tokio::time::sleep(std::time::Duration::from_millis(450)).await;
    assert_eq!(sim.get("/fapi/v1/order", &q).await.ok()["status"], "FILLED");
}

#[tokio::test]
async fn throttling_refuses_new_orders_but_not_reduce_only_ones() {
    let mut c = SimConfig::ephemeral();
    c.positions
        .push(("BTCUSDT".into(), "0.010".parse().unwrap()));
    let sim = Sim::with(c).await;
    sim.control("/sim/faults", json!({ "throttle1008": true }))
        .await;
    let a = sim.order(&mkt("thr-open")).await;
    a.err(503, -1008);
    assert!(a.body["msg"].as_str().unwrap().contains("Reduce-only"));
    let mut reduce = mkt("thr-reduce");
    reduce[1] = ("side", "SELL");
    reduce.push(("reduceOnly", "true"));
    sim.order(&reduce).await.ok();
    let mut ws = sim.ws(&sim.handle.ws_api_url()).await;
    let p = ws_signed(&sim.secret, &sim.key, &mkt("thr-ws"));
    let r = ws_call(
        &mut ws,
        json!({"id": 1, "method": "order.place", "params": p}),
    )
    .await;
    assert_eq!(r["error"]["code"], -1008, "{r}");
    let ids: Vec<_> = sim
        .audit()
        .await
        .iter()
        .map(|o| o["clientOrderId"].clone())
        .collect();
    assert_eq!(ids, vec![json!("thr-reduce")]);
}
