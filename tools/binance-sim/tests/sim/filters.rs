//! Quantity and price filters on exact decimals (-1111, -4023, -4004, -4003), MIN_NOTIONAL
//! (-4164, waived for reduce-only against a position), reduce-only rules (-2022) and
//! hedge-mode rules (-4061 without positionSide, -1106 for reduceOnly).

use quantum_binance_sim::{QtyPrecision, ReduceOnlyExcess, SimConfig};

use crate::common::*;

fn mkt<'a>(symbol: &'a str, side: &'a str, qty: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("symbol", symbol),
        ("side", side),
        ("type", "MARKET"),
        ("quantity", qty),
    ]
}

#[tokio::test]
async fn quantity_precision_step_min_and_sign() {
    let sim = Sim::start().await;
    // More decimals than the symbol allows, or than 1e-8: -1111.
    sim.order(&mkt("BTCUSDT", "BUY", "0.0015"))
        .await
        .err(400, -1111);
    sim.order(&mkt("BTCUSDT", "BUY", "0.01499999999999"))
        .await
        .err(400, -1111);
    sim.order(&mkt("SOLUSDT", "BUY", "1.5"))
        .await
        .err(400, -1111);
    // Trailing zeros are not extra precision.
    sim.order(&mkt("BTCUSDT", "BUY", "0.00200000")).await.ok();
    // Scientific notation and junk are malformed.
    for q in ["1e-3", "2E-3", "abc", "0x1", "+0.002", ""] {
        let a = sim.order(&mkt("BTCUSDT", "BUY", q)).await;
        assert_eq!(a.status.as_u16(), 400, "{q}: {}", a.body);
        assert_eq!(a.code(), -1102, "{q}");
    }
    // Zero and negative: -4003.
    for q in ["0", "0.000", "-0.002"] {
        sim.order(&mkt("BTCUSDT", "BUY", q)).await.err(400, -4003);
    }
    // Above MARKET_LOT_SIZE max (120 BTC) but within LOT_SIZE: -4005 for MARKET only.
    sim.order(&mkt("BTCUSDT", "BUY", "121"))
        .await
        .err(400, -4005);
    sim.order(&[
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", "LIMIT"),
        ("timeInForce", "GTC"),
        ("quantity", "1001"),
        ("price", "60000"),
    ])
    .await
    .err(400, -4005);
    // SOL steps in whole coins.
    sim.order(&mkt("SOLUSDT", "BUY", "3")).await.ok();
}

#[tokio::test]
async fn off_step_and_below_min_when_precision_is_the_asset_precision() {
    // With the -1111 limit at 8 decimals (configurable, unverified), finer quantities reach
    // the LOT_SIZE checks.
    let mut c = SimConfig::ephemeral();
    c.qty_precision = QtyPrecision::Fixed(8);
    let sim = Sim::with(c).await;
    sim.order(&mkt("BTCUSDT", "BUY", "0.0025"))
        .await
        .err(400, -4023);
    sim.order(&mkt("BTCUSDT", "BUY", "0.0005"))
        .await
        .err(400, -4004);
    sim.order(&mkt("SOLUSDT", "BUY", "0.5"))
        .await
        .err(400, -4004);
    sim.order(&mkt("SOLUSDT", "BUY", "1.5"))
        .await
        .err(400, -4023);
    sim.order(&mkt("BTCUSDT", "BUY", "0.01499999999999"))
        .await
        .err(400, -1111);
    sim.order(&mkt("BTCUSDT", "BUY", "0.002")).await.ok();
}

#[tokio::test]
async fn price_filters() {
    let sim = Sim::start().await;
    let lim = |price: &'static str, side: &'static str| {
        vec![
            ("symbol", "BTCUSDT"),
            ("side", side),
            ("type", "LIMIT"),
            ("timeInForce", "GTC"),
            ("quantity", "0.002"),
            ("price", price),
        ]
    };
    sim.order(&lim("64000.155", "BUY")).await.err(400, -1111);
    sim.order(&lim("64000.15", "BUY")).await.err(400, -4014);
    sim.order(&lim("64000.05", "BUY")).await.err(400, -4014);
    sim.order(&lim("64000.10", "BUY")).await.ok();
    sim.order(&lim("70000", "BUY")).await.err(400, -4016);
    sim.order(&lim("60000", "SELL")).await.err(400, -4024);
    sim.order(&lim("100", "BUY")).await.err(400, -4013);
    let mut no_tif = lim("64000", "BUY");
    no_tif.retain(|(k, _)| *k != "timeInForce");
    sim.order(&no_tif).await.err(400, -1102);
    let mut with_price = mkt("BTCUSDT", "BUY", "0.002");
    with_price.push(("price", "64000"));
    sim.order(&with_price).await.err(400, -1106);
    sim.order(&mkt("DOGEUSDT", "BUY", "1"))
        .await
        .err(400, -1121);
}

#[tokio::test]
async fn min_notional_4164_unless_reduce_only() {
    let mut c = SimConfig::ephemeral();
    c.positions
        .push(("BTCUSDT".into(), "0.010".parse().unwrap()));
    let sim = Sim::with(c).await;
    // 0.001 BTC at 65000 = 65 USDT < 100.
    let a = sim.order(&mkt("BTCUSDT", "SELL", "0.001")).await;
    a.err(400, -4164);
    assert!(
        a.body["msg"].as_str().unwrap().contains("100"),
        "{}",
        a.body
    );
    sim.order(&mkt("ETHUSDT", "BUY", "0.006"))
        .await
        .err(400, -4164); // 18 < 20
    sim.order(&mkt("ETHUSDT", "BUY", "0.007")).await.ok(); // 21 >= 20
    sim.order(&mkt("BTCUSDT", "BUY", "0.002")).await.ok(); // 130 >= 100

    let mut ro = mkt("BTCUSDT", "SELL", "0.001");
    ro.push(("reduceOnly", "true"));
    ro.push(("newOrderRespType", "RESULT"));
    let a = sim.order(&ro).await;
    assert_eq!(a.ok()["status"], "FILLED");
    assert_eq!(a.body["reduceOnly"], true);
    let pos = sim.handle.positions();
    let btc = pos.iter().find(|p| p.symbol == "BTCUSDT").unwrap();
    assert_eq!(btc.position_amt, "0.011");
}

#[tokio::test]
async fn reduce_only_rejected_when_flat_or_same_direction() {
    let sim = Sim::start().await;
    let ro = |side: &'static str, qty: &'static str| {
        vec![
            ("symbol", "BTCUSDT"),
            ("side", side),
            ("type", "MARKET"),
            ("quantity", qty),
            ("reduceOnly", "true"),
            ("newOrderRespType", "RESULT"),
        ]
    };
    sim.order(&ro("SELL", "0.002")).await.err(400, -2022);
    sim.order(&ro("BUY", "0.002")).await.err(400, -2022);
    sim.order(&mkt("BTCUSDT", "BUY", "0.004")).await.ok();
    // Long: a reduce-only BUY adds, so it is refused.
    sim.order(&ro("BUY", "0.002")).await.err(400, -2022);
    // Reduce-only larger than the position: clamped by default (unverified, configurable).
    let a = sim.order(&ro("SELL", "0.010")).await;
    assert_eq!(a.ok()["executedQty"], "0.004");
    assert!(sim.handle.positions().is_empty());
    sim.order(&ro("SELL", "0.002")).await.err(400, -2022);
}

#[tokio::test]
async fn oversized_reduce_only_can_be_configured_to_reject() {
    let mut c = SimConfig::ephemeral();
    c.reduce_only_excess = ReduceOnlyExcess::Reject;
    c.positions
        .push(("BTCUSDT".into(), "-0.004".parse().unwrap()));
    let sim = Sim::with(c).await;
    let ro = |qty: &'static str| {
        vec![
            ("symbol", "BTCUSDT"),
            ("side", "BUY"),
            ("type", "MARKET"),
            ("quantity", qty),
            ("reduceOnly", "true"),
        ]
    };
    sim.order(&ro("0.005")).await.err(400, -2022);
    sim.order(&ro("0.004")).await.ok();
}

#[tokio::test]
async fn hedge_mode_requires_position_side_and_forbids_reduce_only() {
    let mut c = SimConfig::ephemeral();
    c.hedge_mode = true;
    c.positions
        .push(("BTCUSDT".into(), "0.010".parse().unwrap()));
    let sim = Sim::with(c).await;
    let dual = sim.get("/fapi/v1/positionSide/dual", &[]).await;
    assert_eq!(dual.ok()["dualSidePosition"], true);

    sim.order(&mkt("BTCUSDT", "SELL", "0.002"))
        .await
        .err(400, -4061);
    let mut both = mkt("BTCUSDT", "SELL", "0.002");
    both.push(("positionSide", "BOTH"));
    sim.order(&both).await.err(400, -4061);
    let mut ro = mkt("BTCUSDT", "SELL", "0.002");
    ro.push(("positionSide", "LONG"));
    ro.push(("reduceOnly", "true"));
    sim.order(&ro).await.err(400, -1106);
    ro.pop();
    ro.push(("reduceOnly", "false"));
    sim.order(&ro).await.err(400, -1106);

    // Closing the long leg: SELL LONG; small closes are exempt from MIN_NOTIONAL.
    let mut close = mkt("BTCUSDT", "SELL", "0.001");
    close.push(("positionSide", "LONG"));
    sim.order(&close).await.ok();
    // Closing more than the leg holds, or a leg that is flat: -2022.
    let mut over = mkt("BTCUSDT", "SELL", "0.020");
    over.push(("positionSide", "LONG"));
    sim.order(&over).await.err(400, -2022);
    let mut flat = mkt("BTCUSDT", "BUY", "0.002");
    flat.push(("positionSide", "SHORT"));
    sim.order(&flat).await.err(400, -2022);
    // Opening a short leg.
    let mut short = mkt("BTCUSDT", "SELL", "0.002");
    short.push(("positionSide", "SHORT"));
    sim.order(&short).await.ok();
    let legs = sim.handle.positions();
    assert!(legs
        .iter()
        .any(|p| p.position_side == "LONG" && p.position_amt == "0.009"));
    assert!(legs
        .iter()
        .any(|p| p.position_side == "SHORT" && p.position_amt == "-0.002"));
}

#[tokio::test]
async fn one_way_mode_refuses_long_short() {
    let sim = Sim::start().await;
    let mut o = mkt("BTCUSDT", "BUY", "0.002");
    o.push(("positionSide", "LONG"));
    sim.order(&o).await.err(400, -4061);
}

#[tokio::test]
async fn margin_insufficient_2019() {
    let mut c = SimConfig::ephemeral();
    c.balance = "100".parse().unwrap();
    let sim = Sim::with(c).await;
    // 0.1 BTC = 6500 USDT notional, 325 margin at 20x > 100.
    sim.order(&mkt("BTCUSDT", "BUY", "0.100"))
        .await
        .err(400, -2019);
    sim.order(&mkt("BTCUSDT", "BUY", "0.002")).await.ok();
}
