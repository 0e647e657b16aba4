//! positionRisk v3 lists only symbols with a position or open orders while v2 lists flat ones
//! as "0.000"; the account, position mode, leverage brackets and premium index documents.

use quantum_binance_sim::SimConfig;
use serde_json::{json, Value};

use crate::common::*;

async fn with_btc_position() -> Sim {
    let mut c = SimConfig::ephemeral();
    c.positions
        .push(("BTCUSDT".into(), "-0.025".parse().unwrap()));
    c.marks.push(("BTCUSDT".into(), "60000.5".parse().unwrap()));
    Sim::with(c).await
}

fn row<'a>(rows: &'a Value, symbol: &str) -> Option<&'a Value> {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["symbol"] == symbol)
}

#[tokio::test]
async fn position_risk_v3_omits_flat_symbols_v2_shows_them() {
    let sim = with_btc_position().await;
    let v2 = sim.get("/fapi/v2/positionRisk", &[]).await;
    let v2 = v2.ok();
    assert_eq!(v2.as_array().unwrap().len(), 3);
    assert_eq!(row(v2, "ETHUSDT").unwrap()["positionAmt"], "0.000");
    assert_eq!(row(v2, "SOLUSDT").unwrap()["positionAmt"], "0");
    let btc = row(v2, "BTCUSDT").unwrap();
    assert_eq!(btc["positionAmt"], "-0.025");
    assert_eq!(btc["positionSide"], "BOTH");
    assert_eq!(btc["leverage"], "20");
    assert_eq!(btc["marginType"], "cross");
    for k in [
        "entryPrice",
        "breakEvenPrice",
        "markPrice",
        "unRealizedProfit",
        "liquidationPrice",
        "isolatedMargin",
        "notional",
        "updateTime",
    ] {
        assert!(btc.get(k).is_some(), "v2 lacks {k}");
    }
    assert_eq!(
        btc["markPrice"].as_str().unwrap().parse::<f64>().unwrap(),
        60000.5
    );

    let v3 = sim.get("/fapi/v3/positionRisk", &[]).await;
    let v3 = v3.ok();
    assert_eq!(v3.as_array().unwrap().len(), 1, "{v3}");
    let btc = row(v3, "BTCUSDT").unwrap();
    assert_eq!(btc["positionAmt"], "-0.025");
    assert!(btc.get("leverage").is_none() && btc.get("marginType").is_none());
    for k in [
        "initialMargin",
        "maintMargin",
        "marginAsset",
        "adl",
        "notional",
    ] {
        assert!(btc.get(k).is_some(), "v3 lacks {k}");
    }
    // Filter by symbol; a flat symbol is absent from v3 but present in v2.
    let a = sim
        .get("/fapi/v3/positionRisk", &[("symbol", "ETHUSDT")])
        .await;
    assert_eq!(a.ok().as_array().unwrap().len(), 0);
    let a = sim
        .get("/fapi/v2/positionRisk", &[("symbol", "ETHUSDT")])
        .await;
    assert_eq!(a.ok().as_array().unwrap().len(), 1);
    sim.get("/fapi/v2/positionRisk", &[("symbol", "NOPE")])
        .await
        .err(400, -1121);

    // An open order makes a flat symbol appear in v3.
    sim.order(&[
        ("symbol", "ETHUSDT"),
        ("side", "BUY"),
        ("type", "LIMIT"),
        ("timeInForce", "GTC"),
        ("quantity", "0.010"),
        ("price", "2990"),
    ])
    .await
    .ok();
    let v3 = sim.get("/fapi/v3/positionRisk", &[]).await;
    assert_eq!(row(v3.ok(), "ETHUSDT").unwrap()["positionAmt"], "0.000");
}

#[tokio::test]
async fn hedge_mode_position_risk_has_long_and_short_legs() {
    let mut c = SimConfig::ephemeral();
    c.hedge_mode = true;
    c.positions.push(("SOLUSDT".into(), "-7".parse().unwrap()));
    let sim = Sim::with(c).await;
    let v2 = sim
        .get("/fapi/v2/positionRisk", &[("symbol", "SOLUSDT")])
        .await;
    let sides: Vec<_> = v2
        .ok()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["positionSide"].clone())
        .collect();
    assert_eq!(sides, vec![json!("LONG"), json!("SHORT")]);
    let v3 = sim.get("/fapi/v3/positionRisk", &[]).await;
    let rows = v3.ok().as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (
            rows[0]["positionSide"].as_str(),
            rows[0]["positionAmt"].as_str()
        ),
        (Some("SHORT"), Some("-7"))
    );
}

#[tokio::test]
async fn account_v2_and_v3() {
    let sim = with_btc_position().await;
    let a = sim.get("/fapi/v2/account", &[]).await;
    let v2 = a.ok();
    assert_eq!(v2["canTrade"], true);
    assert_eq!(v2["positions"].as_array().unwrap().len(), 3);
    assert!(v2["totalWalletBalance"].is_string());
    assert_eq!(v2["assets"][0]["asset"], "USDT");
    let a = sim.get("/fapi/v3/account", &[]).await;
    let v3 = a.ok();
    assert!(v3.get("canTrade").is_none());
    assert_eq!(v3["positions"].as_array().unwrap().len(), 1);
    assert_eq!(v3["positions"][0]["positionAmt"], "-0.025");
}

#[tokio::test]
async fn exchange_info_filters_and_time() {
    let sim = Sim::start().await;
    let t = sim.public("/fapi/v1/time").await;
    assert!(t.ok()["serverTime"].as_i64().unwrap() > 1_600_000_000_000);
    let a = sim.public("/fapi/v1/exchangeInfo").await;
    let info = a.ok();
    let limits = info["rateLimits"].as_array().unwrap();
    assert!(limits
        .iter()
        .any(|l| l["rateLimitType"] == "REQUEST_WEIGHT" && l["limit"] == 2400));
    assert!(limits.iter().any(|l| l["rateLimitType"] == "ORDERS"
        && l["interval"] == "SECOND"
        && l["intervalNum"] == 10
        && l["limit"] == 300));
    assert!(limits.iter().any(|l| l["rateLimitType"] == "ORDERS"
        && l["interval"] == "MINUTE"
        && l["limit"] == 1200));
    let sym = |s: &str| {
        info["symbols"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["symbol"] == s)
            .unwrap()
            .clone()
    };
    let filter = |s: &Value, t: &str| {
        s["filters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["filterType"] == t)
            .unwrap()
            .clone()
    };
    let btc = sym("BTCUSDT");
    assert_eq!(
        (
            btc["pricePrecision"].as_u64(),
            btc["quantityPrecision"].as_u64()
        ),
        (Some(2), Some(3))
    );
    assert_eq!(btc["contractType"], "PERPETUAL");
    assert_eq!(filter(&btc, "LOT_SIZE")["stepSize"], "0.001");
    assert_eq!(filter(&btc, "LOT_SIZE")["minQty"], "0.001");
    assert_eq!(filter(&btc, "MARKET_LOT_SIZE")["maxQty"], "120");
    assert_eq!(filter(&btc, "MIN_NOTIONAL")["notional"], "100");
    assert_eq!(filter(&btc, "PRICE_FILTER")["tickSize"], "0.10");
    for t in ["MAX_NUM_ORDERS", "PERCENT_PRICE"] {
        filter(&btc, t);
    }
    let eth = sym("ETHUSDT");
    assert_eq!(filter(&eth, "LOT_SIZE")["stepSize"], "0.001");
    assert_eq!(filter(&eth, "MIN_NOTIONAL")["notional"], "20");
    let sol = sym("SOLUSDT");
    assert_eq!(filter(&sol, "LOT_SIZE")["stepSize"], "1");
    assert_eq!(filter(&sol, "MIN_NOTIONAL")["notional"], "5");
    assert_eq!(sol["quantityPrecision"], 0);
}

#[tokio::test]
async fn leverage_bracket_and_dual_side() {
    let sim = Sim::start().await;
    let a = sim.get("/fapi/v1/leverageBracket", &[]).await;
    let all = a.ok().as_array().unwrap();
    assert_eq!(all.len(), 3);
    let b = &all[0]["brackets"][0];
    for k in [
        "bracket",
        "initialLeverage",
        "notionalCap",
        "notionalFloor",
        "maintMarginRatio",
        "cum",
    ] {
        assert!(b.get(k).is_some(), "bracket lacks {k}");
    }
    let one = sim
        .get("/fapi/v1/leverageBracket", &[("symbol", "ETHUSDT")])
        .await;
    assert_eq!(one.ok()["symbol"], "ETHUSDT");
    assert_eq!(
        sim.get("/fapi/v1/positionSide/dual", &[]).await.ok()["dualSidePosition"],
        false
    );
}

#[tokio::test]
async fn sim_controls_set_position_and_mark() {
    let sim = Sim::start().await;
    sim.control(
        "/sim/position",
        json!({"symbol": "ETHUSDT", "positionAmt": "1.250"}),
    )
    .await;
    sim.control(
        "/sim/mark",
        json!({"symbol": "ETHUSDT", "markPrice": "3100"}),
    )
    .await;
    let p = sim.public("/sim/positions").await;
    let rows = p.ok().as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["positionAmt"], "1.25");
    assert_eq!(rows[0]["markPrice"], "3100");
    let a = sim
        .order(&[
            ("symbol", "ETHUSDT"),
            ("side", "SELL"),
            ("type", "MARKET"),
            ("quantity", "0.250"),
            ("newOrderRespType", "RESULT"),
        ])
        .await;
    assert_eq!(a.ok()["avgPrice"], "3100.00000");
    assert_eq!(sim.handle.positions()[0].position_amt, "1");
}

async fn set_dual(sim: &Sim, v: &str) -> Answer {
    sim.signed(
        reqwest::Method::POST,
        "/fapi/v1/positionSide/dual",
        &[("dualSidePosition", v)],
    )
    .await
}

#[tokio::test]
async fn switching_position_mode() {
    let sim = Sim::start().await;
    set_dual(&sim, "false").await.err(400, -4059);
    assert_eq!(set_dual(&sim, "true").await.ok()["code"], 200);
    let a = sim.get("/fapi/v1/positionSide/dual", &[]).await;
    assert_eq!(a.ok()["dualSidePosition"], true);
    sim.order(&[
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("positionSide", "LONG"),
        ("type", "MARKET"),
        ("quantity", "0.002"),
    ])
    .await
    .ok();
    set_dual(&sim, "false").await.err(400, -4068);
}

#[tokio::test]
async fn premium_index_gives_every_mark_price() {
    let sim = Sim::start().await;
    sim.control(
        "/sim/mark",
        json!({"symbol": "ETHUSDT", "markPrice": "3100.5"}),
    )
    .await;
    let all = sim.public("/fapi/v1/premiumIndex").await;
    let all = all.ok();
    let eth = row(all, "ETHUSDT").unwrap();
    assert_eq!(eth["markPrice"], "3100.50000000");
    assert!(row(all, "BTCUSDT").is_some() && eth["time"].is_u64());
    let one = sim.public("/fapi/v1/premiumIndex?symbol=BTCUSDT").await;
    assert_eq!(one.ok()["symbol"], "BTCUSDT");
    assert_eq!(
        sim.public("/fapi/v1/premiumIndex?symbol=NOPE").await.code(),
        -1121
    );
}
