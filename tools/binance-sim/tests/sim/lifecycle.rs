//! An order's life: found by client id, -2013 for an unknown id, -2011 to cancel an unknown
//! or filled order; a client id is refused (-4116) while an open order holds it and accepted
//! again after the fill; the audit list; resting limits.

use reqwest::Method;
use serde_json::json;

use crate::common::*;

fn limit<'a>(cid: &'a str, price: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", "LIMIT"),
        ("timeInForce", "GTC"),
        ("quantity", "0.002"),
        ("price", price),
        ("newClientOrderId", cid),
    ]
}

fn market(cid: &str) -> Vec<(&str, &str)> {
    vec![
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", "MARKET"),
        ("quantity", "0.002"),
        ("newClientOrderId", cid),
    ]
}

#[tokio::test]
async fn query_by_client_id_unknown_2013_cancel_2011() {
    let sim = Sim::start().await;
    let placed = sim.order(&market("q-1")).await;
    let id = placed.ok()["orderId"].as_u64().unwrap();

    let a = sim
        .get(
            "/fapi/v1/order",
            &[("symbol", "BTCUSDT"), ("origClientOrderId", "q-1")],
        )
        .await;
    let o = a.ok();
    assert_eq!(o["orderId"].as_u64(), Some(id));
    assert_eq!(o["status"], "FILLED");
    assert!(o["time"].is_i64());
    let ids = id.to_string();
    sim.get(
        "/fapi/v1/order",
        &[("symbol", "BTCUSDT"), ("orderId", &ids)],
    )
    .await
    .ok();
    // Right id, wrong symbol: not found.
    sim.get(
        "/fapi/v1/order",
        &[("symbol", "ETHUSDT"), ("orderId", &ids)],
    )
    .await
    .err(400, -2013);
    sim.get(
        "/fapi/v1/order",
        &[("symbol", "BTCUSDT"), ("origClientOrderId", "never")],
    )
    .await
    .err(400, -2013);
    sim.get("/fapi/v1/order", &[("symbol", "BTCUSDT")])
        .await
        .err(400, -1102);

    let del = |p: Vec<(&'static str, String)>| {
        let sim = &sim;
        async move {
            let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
            sim.signed(Method::DELETE, "/fapi/v1/order", &p).await
        }
    };
    // Unknown and filled orders cannot be canceled.
    del(vec![
        ("symbol", "BTCUSDT".into()),
        ("origClientOrderId", "never".into()),
    ])
    .await
    .err(400, -2011);
    del(vec![
        ("symbol", "BTCUSDT".into()),
        ("origClientOrderId", "q-1".into()),
    ])
    .await
    .err(400, -2011);
    // A resting order can, once.
    sim.order(&limit("rest-1", "64000")).await.ok();
    let c = del(vec![
        ("symbol", "BTCUSDT".into()),
        ("origClientOrderId", "rest-1".into()),
    ])
    .await;
    assert_eq!(c.ok()["status"], "CANCELED");
    del(vec![
        ("symbol", "BTCUSDT".into()),
        ("origClientOrderId", "rest-1".into()),
    ])
    .await
    .err(400, -2011);
}

#[tokio::test]
async fn client_id_unique_only_among_open_orders() {
    let sim = Sim::start().await;
    sim.order(&limit("dup", "64000")).await.ok();
    sim.order(&limit("dup", "64000")).await.err(400, -4116);
    sim.order(&market("dup")).await.err(400, -4116);
    sim.signed(
        Method::DELETE,
        "/fapi/v1/order",
        &[("symbol", "BTCUSDT"), ("origClientOrderId", "dup")],
    )
    .await
    .ok();
    // After the first is closed, the id can be used again.
    sim.order(&limit("dup", "64000")).await.ok();

    // After a fill, reuse is accepted: the exchange is no durable dedupe.
    sim.order(&market("m-dup")).await.ok();
    sim.order(&market("m-dup")).await.ok();
    let audit = sim.audit().await;
    assert_eq!(
        audit
            .iter()
            .filter(|o| o["clientOrderId"] == "m-dup")
            .count(),
        2
    );
    // Lookup by client id finds the most recent.
    let a = sim
        .get(
            "/fapi/v1/order",
            &[("symbol", "BTCUSDT"), ("origClientOrderId", "m-dup")],
        )
        .await;
    assert_eq!(a.ok()["orderId"], audit.last().unwrap()["orderId"]);

    sim.order(&limit("bad id!", "64000")).await.err(400, -4015);
    let long = "x".repeat(37);
    sim.order(&limit(&long, "64000")).await.err(400, -4015);
}

#[tokio::test]
async fn audit_lists_one_entry_per_accepted_order() {
    let sim = Sim::start().await;
    for i in 0..5 {
        sim.order(&market(&format!("a-{i}"))).await.ok();
    }
    // Rejections are not in the audit.
    sim.order(&[
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", "MARKET"),
        ("quantity", "0"),
    ])
    .await
    .err(400, -4003);
    let audit = sim.audit().await;
    assert_eq!(audit.len(), 5);
    for (i, o) in audit.iter().enumerate() {
        assert_eq!(o["clientOrderId"], format!("a-{i}"));
        assert_eq!(o["symbol"], "BTCUSDT");
        assert_eq!(o["side"], "BUY");
        assert_eq!(o["qty"], "0.002");
        assert_eq!(o["status"], "FILLED");
        assert!(o["time"].as_i64().unwrap() > 0);
    }
    let mut ids: Vec<u64> = audit
        .iter()
        .map(|o| o["orderId"].as_u64().unwrap())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 5);
    assert_eq!(sim.handle.audit().len(), 5);
}

#[tokio::test]
async fn resting_limit_fills_when_the_mark_crosses() {
    let sim = Sim::start().await;
    sim.order(&limit("l-1", "64000")).await.ok();
    let open = sim
        .get("/fapi/v1/openOrders", &[("symbol", "BTCUSDT")])
        .await;
    assert_eq!(open.ok().as_array().unwrap().len(), 1);
    sim.control(
        "/sim/mark",
        json!({"symbol": "BTCUSDT", "markPrice": "63990"}),
    )
    .await;
    let a = sim
        .get(
            "/fapi/v1/order",
            &[("symbol", "BTCUSDT"), ("origClientOrderId", "l-1")],
        )
        .await;
    assert_eq!(a.ok()["status"], "FILLED");
    assert_eq!(a.body["avgPrice"], "64000.00000");
    assert_eq!(sim.handle.positions()[0].position_amt, "0.002");
    // IOC that does not cross expires at once.
    let mut p = limit("ioc", "63000");
    p[3] = ("timeInForce", "IOC");
    let a = sim
        .order(&[p.as_slice(), &[("newOrderRespType", "RESULT")]].concat())
        .await;
    assert_eq!(a.ok()["status"], "EXPIRED");
}
