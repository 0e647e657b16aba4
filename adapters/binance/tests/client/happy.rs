//! Orders that go through, by REST and by the WebSocket API.

use quantum_binance::PositionSide;
use quantum_binance::{PositionRiskVersion, Side, Transport};

use crate::common::*;

#[tokio::test]
async fn reduce_only_market_by_rest_fills_once() {
    let env = start().await;
    env.long("BTCUSDT", "0.010");
    // 0.0049 rounds down to the 0.001 step: "0.004" is what goes out.
    let o = env
        .client
        .place_market_close(
            Transport::Rest,
            "BTCUSDT",
            PositionSide::Both,
            Side::Sell,
            qty("0.0049"),
            "qpc-00000000000000a1",
        )
        .await
        .unwrap();
    assert_eq!(o.status, "FILLED");
    assert_eq!(o.executed_qty, qty("0.004"));
    assert!(o.avg_price.unwrap().units() > 0);
    assert!(o.reduce_only);
    assert_eq!(env.position("BTCUSDT"), qty("0.006"));
    let audit = env.sim.audit();
    assert_eq!(
        (audit[0].qty.as_str(), audit[0].via.as_str()),
        ("0.004", "rest")
    );
    let q = env
        .client
        .query_order("BTCUSDT", "qpc-00000000000000a1")
        .await
        .unwrap();
    assert_eq!((q.order_id, q.status.as_str()), (o.order_id, "FILLED"));
    env.assert_exactly_once(&["qpc-00000000000000a1"]);
}

#[tokio::test]
async fn reduce_only_market_by_ws_api_fills_once() {
    let env = start().await;
    env.long("ETHUSDT", "-0.5");
    let o = env
        .client
        .place_market_close(
            Transport::WsApi,
            "ETHUSDT",
            PositionSide::Both,
            Side::Buy,
            qty("0.2"),
            "qpc-00000000000000a2",
        )
        .await
        .unwrap();
    assert_eq!((o.status.as_str(), o.executed_qty), ("FILLED", qty("0.2")));
    assert_eq!(env.position("ETHUSDT"), qty("-0.3"));
    assert_eq!(env.sim.audit()[0].via, "ws-api");
    let s = env
        .client
        .ws_api()
        .query_order("ETHUSDT", "qpc-00000000000000a2")
        .await
        .unwrap();
    assert_eq!(s.order_id, o.order_id);
    env.assert_exactly_once(&["qpc-00000000000000a2"]);
}

#[tokio::test]
async fn filters_time_and_positions() {
    let env = start().await;
    let f = env.client.filters("BTCUSDT").unwrap();
    assert_eq!((f.market_step, f.min_notional), (qty("0.001"), qty("100")));
    assert_eq!(f.quantity_precision, 3);
    assert!(env.client.filters("NOPE").is_err());
    // The sim's clock is ours: the measured offset is small.
    let off = env.client.sync_time().await.unwrap();
    assert!(off.abs() < 1000, "offset {off}");
    env.long("SOLUSDT", "3");
    let v3 = env
        .client
        .position_risk(PositionRiskVersion::V3, None)
        .await
        .unwrap();
    assert_eq!(v3.len(), 1);
    assert_eq!(
        (v3[0].symbol.as_str(), v3[0].position_amt),
        ("SOLUSDT", qty("3"))
    );
    assert!(v3[0].mark_price.units() > 0);
    let v2 = env
        .client
        .position_risk(PositionRiskVersion::V2, None)
        .await
        .unwrap();
    assert!(v2.len() >= 3);
    assert!(v2
        .iter()
        .any(|p| p.symbol == "BTCUSDT" && p.position_amt.is_zero()));
}

#[tokio::test]
async fn cancel_of_a_filled_order_is_2011() {
    let env = start().await;
    env.long("BTCUSDT", "0.01");
    env.client
        .place_market_close(
            Transport::Rest,
            "BTCUSDT",
            PositionSide::Both,
            Side::Sell,
            qty("0.002"),
            "qpc-c1",
        )
        .await
        .unwrap();
    let e = env.client.cancel("BTCUSDT", "qpc-c1").await.unwrap_err();
    assert_eq!(
        e.reject_reason(),
        quantum_binance::RejectReason::CancelUnknownOrder
    );
}
