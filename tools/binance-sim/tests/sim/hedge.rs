//! Hedge (dual-side) position mode: changing the mode (-4059, refused with a position -4068
//! or an open order -4067), `positionSide` against the mode (-4061 both ways), one row per
//! side in positionRisk, `ps` on every user stream event, and the controls and exchange
//! closes (liquidation, settlement) that name one leg.

use quantum_binance_sim::SimConfig;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

async fn set_dual(sim: &Sim, v: &str) -> Answer {
    sim.signed(
        Method::POST,
        "/fapi/v1/positionSide/dual",
        &[("dualSidePosition", v)],
    )
    .await
}

fn mkt<'a>(side: &'a str, ps: Option<&'a str>, qty: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut p = vec![
        ("symbol", "BTCUSDT"),
        ("side", side),
        ("type", "MARKET"),
        ("quantity", qty),
    ];
    if let Some(ps) = ps {
        p.push(("positionSide", ps));
    }
    p
}

async fn hedge_sim() -> Sim {
    let mut c = SimConfig::ephemeral();
    c.hedge_mode = true;
    Sim::with(c).await
}

fn leg<'a>(rows: &'a Value, symbol: &str, ps: &str) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["symbol"] == symbol && r["positionSide"] == ps)
        .unwrap_or_else(|| panic!("no {symbol} {ps} row in {rows}"))
}

#[tokio::test]
async fn the_mode_changes_only_without_positions_or_open_orders() {
    let sim = Sim::start().await;
    let a = set_dual(&sim, "false").await;
    a.err(400, -4059);
    assert_eq!(a.body["msg"], "No need to change position side.");
    set_dual(&sim, "maybe").await.err(400, -1130);

    // An open order blocks the change: -4067.
    let resting = sim
        .order(&[
            ("symbol", "ETHUSDT"),
            ("side", "BUY"),
            ("type", "LIMIT"),
            ("timeInForce", "GTC"),
            ("quantity", "0.010"),
            ("price", "2900"),
        ])
        .await;
    let id = resting.ok()["orderId"].as_u64().unwrap().to_string();
    let a = set_dual(&sim, "true").await;
    a.err(400, -4067);
    assert_eq!(
        a.body["msg"],
        "Position side cannot be changed if there exists open orders."
    );
    // A position too: -4068 is answered first.
    sim.order(&mkt("BUY", None, "0.002")).await.ok();
    set_dual(&sim, "true").await.err(400, -4068);
    sim.signed(
        Method::DELETE,
        "/fapi/v1/order",
        &[("symbol", "ETHUSDT"), ("orderId", &id)],
    )
    .await
    .ok();
    let a = set_dual(&sim, "true").await;
    a.err(400, -4068);
    assert_eq!(
        a.body["msg"],
        "Position side cannot be changed if there exists position."
    );
    let mut close = mkt("SELL", None, "0.002");
    close.push(("reduceOnly", "true"));
    sim.order(&close).await.ok();

    // Flat and no open order: the change is made, and the rules follow the new mode.
    assert_eq!(set_dual(&sim, "true").await.ok()["code"], 200);
    assert_eq!(
        sim.get("/fapi/v1/positionSide/dual", &[]).await.ok()["dualSidePosition"],
        true
    );
    set_dual(&sim, "true").await.err(400, -4059);
    sim.order(&mkt("BUY", Some("LONG"), "0.002")).await.ok();
    set_dual(&sim, "false").await.err(400, -4068);
    sim.order(&mkt("SELL", Some("LONG"), "0.002")).await.ok();
    assert_eq!(set_dual(&sim, "false").await.ok()["code"], 200);
    sim.order(&mkt("BUY", None, "0.002")).await.ok();
}

#[tokio::test]
async fn position_side_must_match_the_mode_both_ways() {
    let sim = Sim::start().await;
    for ps in ["LONG", "SHORT"] {
        let a = sim.order(&mkt("BUY", Some(ps), "0.002")).await;
        a.err(400, -4061);
        assert_eq!(
            a.body["msg"],
            "Order's position side does not match user's setting."
        );
    }
    sim.order(&mkt("BUY", Some("BOTH"), "0.002")).await.ok();
    sim.order(&mkt("SELL", None, "0.002")).await.ok();

    let sim = hedge_sim().await;
    sim.order(&mkt("BUY", None, "0.002")).await.err(400, -4061);
    sim.order(&mkt("BUY", Some("BOTH"), "0.002"))
        .await
        .err(400, -4061);
    sim.order(&mkt("BUY", Some("LONG"), "0.002")).await.ok();
    sim.order(&mkt("SELL", Some("SHORT"), "0.002")).await.ok();
    assert!(sim
        .audit()
        .await
        .iter()
        .all(|o| o["positionSide"] != "BOTH"));
}

#[tokio::test]
async fn each_side_has_its_row_and_its_events() {
    let sim = hedge_sim().await;
    let key = sim.listen_key().await;
    let mut ws = sim.ws(&sim.handle.stream_url(&key)).await;
    sim.order(&mkt("BUY", Some("LONG"), "0.010")).await.ok();
    let evs = until(&mut ws, |v| v["e"] == "ACCOUNT_UPDATE").await;
    assert!(evs
        .iter()
        .filter(|v| v["e"] == "ORDER_TRADE_UPDATE")
        .all(|v| v["o"]["ps"] == "LONG" && v["o"]["R"] == false));
    let p = &evs.last().unwrap()["a"]["P"];
    assert_eq!(p, &json!([p[0].clone()]), "one changed leg");
    assert_eq!(
        (&p[0]["ps"], &p[0]["pa"]),
        (&json!("LONG"), &json!("0.010"))
    );

    sim.order(&mkt("SELL", Some("SHORT"), "0.004")).await.ok();
    let evs = until(&mut ws, |v| v["e"] == "ACCOUNT_UPDATE").await;
    assert!(evs
        .iter()
        .filter(|v| v["e"] == "ORDER_TRADE_UPDATE")
        .all(|v| v["o"]["ps"] == "SHORT"));
    let p = &evs.last().unwrap()["a"]["P"][0];
    assert_eq!((&p["ps"], &p["pa"]), (&json!("SHORT"), &json!("-0.004")));

    // v2: LONG and SHORT rows for every symbol, flat ones included.
    let v2 = sim.get("/fapi/v2/positionRisk", &[]).await;
    let v2 = v2.ok();
    assert_eq!(v2.as_array().unwrap().len(), 6);
    assert_eq!(leg(v2, "BTCUSDT", "LONG")["positionAmt"], "0.010");
    assert_eq!(leg(v2, "BTCUSDT", "SHORT")["positionAmt"], "-0.004");
    assert_eq!(leg(v2, "ETHUSDT", "SHORT")["positionAmt"], "0.000");
    assert!(v2
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["positionSide"] != "BOTH"));
    // v3: the two non-flat legs only.
    let v3 = sim.get("/fapi/v3/positionRisk", &[]).await;
    let v3 = v3.ok();
    assert_eq!(v3.as_array().unwrap().len(), 2, "{v3}");
    assert_eq!(leg(v3, "BTCUSDT", "LONG")["positionAmt"], "0.010");
    assert_eq!(leg(v3, "BTCUSDT", "SHORT")["positionAmt"], "-0.004");

    // Closing one side leaves the other; closing more than the side holds is -2022 and
    // never opens the other way.
    sim.order(&mkt("SELL", Some("LONG"), "0.011"))
        .await
        .err(400, -2022);
    sim.order(&mkt("BUY", Some("SHORT"), "0.004")).await.ok();
    let v3 = sim.get("/fapi/v3/positionRisk", &[]).await;
    let v3 = v3.ok();
    assert_eq!(v3.as_array().unwrap().len(), 1, "{v3}");
    assert_eq!(leg(v3, "BTCUSDT", "LONG")["positionAmt"], "0.010");
}

#[tokio::test]
async fn controls_and_exchange_closes_name_one_leg() {
    let sim = hedge_sim().await;
    let set = |body: Value| sim.control_answer("/sim/position", body);
    let (s, _) =
        set(json!({"symbol": "BTCUSDT", "positionAmt": "0.020", "positionSide": "LONG"})).await;
    assert_eq!(s, 200);
    let (s, _) =
        set(json!({"symbol": "BTCUSDT", "positionAmt": "-0.008", "positionSide": "SHORT"})).await;
    assert_eq!(s, 200);
    for (body, says) in [
        (
            json!({"symbol": "BTCUSDT", "positionAmt": "0.001", "positionSide": "BOTH"}),
            "the account is in hedge mode",
        ),
        (
            json!({"symbol": "BTCUSDT", "positionAmt": "-0.001", "positionSide": "LONG"}),
            "LONG is never negative",
        ),
        (
            json!({"symbol": "BTCUSDT", "positionAmt": "0.001", "positionSide": "SHORT"}),
            "SHORT never positive",
        ),
    ] {
        let (s, a) = set(body).await;
        assert_eq!(s, 400);
        assert!(a["error"].as_str().unwrap().contains(says), "{a}");
    }
    let legs = sim.handle.positions();
    assert_eq!(legs.len(), 2);

    let key = sim.listen_key().await;
    let mut ws = sim.ws(&sim.handle.stream_url(&key)).await;
    let (s, a) = sim
        .control_answer(
            "/sim/liquidate",
            json!({"symbol": "BTCUSDT", "kind": "liquidation"}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(a["error"]
        .as_str()
        .unwrap()
        .contains("required in hedge mode"));
    let r = sim
        .control(
            "/sim/liquidate",
            json!({"symbol": "BTCUSDT", "kind": "liquidation", "positionSide": "SHORT"}),
        )
        .await;
    assert!(r["clientOrderId"]
        .as_str()
        .unwrap()
        .starts_with("autoclose-"));
    let evs = until(&mut ws, |v| v["e"] == "ACCOUNT_UPDATE").await;
    let fill = evs
        .iter()
        .find(|v| v["e"] == "ORDER_TRADE_UPDATE" && v["o"]["x"] == "TRADE")
        .unwrap();
    assert_eq!(
        (&fill["o"]["ps"], &fill["o"]["S"]),
        (&json!("SHORT"), &json!("BUY"))
    );
    let p = &evs.last().unwrap()["a"]["P"][0];
    assert_eq!((&p["ps"], &p["pa"]), (&json!("SHORT"), &json!("0.000")));
    let legs = sim.handle.positions();
    assert_eq!(
        (
            legs.len(),
            legs[0].position_side.as_str(),
            legs[0].position_amt.as_str()
        ),
        (1, "LONG", "0.02")
    );

    // Settlement in hedge mode: one settlement order per non-flat leg, each with its `ps`.
    sim.control(
        "/sim/position",
        json!({"symbol": "BTCUSDT", "positionAmt": "-0.003", "positionSide": "SHORT"}),
    )
    .await;
    let r = sim
        .control(
            "/sim/symbol-status",
            json!({"symbol": "BTCUSDT", "status": "SETTLING", "settle": true}),
        )
        .await;
    assert_eq!(r["settled"].as_array().unwrap().len(), 2);
    let mut closed = vec![];
    while closed.len() < 2 {
        let evs = until(&mut ws, |v| v["e"] == "ACCOUNT_UPDATE").await;
        let fill = evs
            .iter()
            .find(|v| v["e"] == "ORDER_TRADE_UPDATE" && v["o"]["x"] == "TRADE")
            .unwrap();
        assert!(fill["o"]["c"]
            .as_str()
            .unwrap()
            .starts_with("settlement_autoclose-"));
        let p = &evs.last().unwrap()["a"]["P"][0];
        assert_eq!(p["ps"], fill["o"]["ps"]);
        assert_eq!(p["pa"], "0.000");
        closed.push((
            fill["o"]["ps"].clone(),
            fill["o"]["S"].clone(),
            fill["o"]["z"].clone(),
        ));
    }
    closed.sort_by_key(|c| c.0.to_string());
    assert_eq!(
        closed,
        vec![
            (json!("LONG"), json!("SELL"), json!("0.020")),
            (json!("SHORT"), json!("BUY"), json!("0.003")),
        ]
    );
    assert!(sim.handle.positions().is_empty());

    // One-way mode: a hedge side is refused by the controls.
    let one_way = Sim::start().await;
    let (s, a) = one_way
        .control_answer(
            "/sim/position",
            json!({"symbol": "BTCUSDT", "positionAmt": "0.001", "positionSide": "LONG"}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(a["error"].as_str().unwrap().contains("one-way mode"), "{a}");
}
