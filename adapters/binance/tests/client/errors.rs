//! Each Binance refusal arrives as a typed reason, and nothing is placed.

use quantum_binance::{Credentials, FuturesClient, NewOrder, RejectReason, Side, Transport};
use quantum_binance_sim::TEST_API_SECRET;

use crate::common::*;

fn raw(symbol: &str, side: Side, quantity: &str, cid: &str) -> NewOrder {
    NewOrder {
        symbol: symbol.into(),
        side,
        quantity: quantity.into(),
        reduce_only: true,
        client_order_id: cid.into(),
    }
}

async fn reason(env: &Env, t: Transport, o: &NewOrder) -> (RejectReason, Option<i64>) {
    let e = env.client.place_once_only(t, o).await.unwrap_err();
    (e.reject_reason(), e.api_code())
}

#[tokio::test]
async fn order_rejects_map_to_reasons_on_both_transports() {
    let env = start().await;
    env.long("BTCUSDT", "0.010");
    for t in [Transport::Rest, Transport::WsApi] {
        // Flat symbol: nothing to reduce.
        let r = reason(&env, t, &raw("ETHUSDT", Side::Sell, "0.1", "e-2022")).await;
        assert_eq!(r, (RejectReason::ReduceOnlyRejected, Some(-2022)), "{t:?}");
        // Same direction as the position.
        let r = reason(&env, t, &raw("BTCUSDT", Side::Buy, "0.001", "e-2022b")).await;
        assert_eq!(r, (RejectReason::ReduceOnlyRejected, Some(-2022)), "{t:?}");
        let r = reason(&env, t, &raw("BTCUSDT", Side::Sell, "0.0011", "e-1111")).await;
        assert_eq!(
            r,
            (RejectReason::PrecisionOverMaximum, Some(-1111)),
            "{t:?}"
        );
        let r = reason(&env, t, &raw("BTCUSDT", Side::Sell, "0", "e-4003")).await;
        assert_eq!(r, (RejectReason::QuantityNotPositive, Some(-4003)), "{t:?}");
    }
    assert!(env.sim.audit().is_empty());
}

#[tokio::test]
async fn local_quantity_checks_never_reach_the_exchange() {
    let env = start().await;
    env.long("BTCUSDT", "0.010");
    let e = env
        .client
        .place_market_reduce_only("BTCUSDT", Side::Sell, qty("0.0009"), "e-local")
        .await
        .unwrap_err();
    assert_eq!(e.reject_reason(), RejectReason::LocalQuantity);
    let e = env
        .client
        .place_market_reduce_only("DOGEUSDT", Side::Sell, qty("1"), "e-sym")
        .await
        .unwrap_err();
    assert_eq!(e.reject_reason(), RejectReason::LocalUnknownSymbol);
    assert!(env.sim.audit().is_empty());
}

#[tokio::test]
async fn unknown_key_is_2015_and_the_secret_stays_hidden() {
    let env = start().await;
    env.long("BTCUSDT", "0.010");
    let wrong_key = "Z".repeat(64);
    let secret = TEST_API_SECRET;
    let client = FuturesClient::connect(config_for(&env.sim), Credentials::new(wrong_key, secret))
        .await
        .unwrap();
    for t in [Transport::Rest, Transport::WsApi] {
        let e = client
            .place_market_reduce_only_via(t, "BTCUSDT", Side::Sell, qty("0.001"), "e-2015")
            .await
            .unwrap_err();
        assert_eq!(e.reject_reason(), RejectReason::ApiKeyRejected, "{t:?}");
        assert_eq!(e.api_code(), Some(-2015));
        let shown = format!("{e} {e:?} {client:?}");
        assert!(!shown.contains(secret), "secret leaked: {shown}");
    }
    assert!(env.sim.audit().is_empty());
}

#[tokio::test]
async fn clock_ahead_is_1021_and_a_resync_cures_it() {
    let env = start().await;
    env.long("BTCUSDT", "0.010");
    env.client.clock().set_offset_ms(5_000);
    for t in [Transport::Rest, Transport::WsApi] {
        let e = env
            .client
            .place_market_reduce_only_via(t, "BTCUSDT", Side::Sell, qty("0.001"), "e-1021")
            .await
            .unwrap_err();
        assert_eq!(
            (e.reject_reason(), e.api_code()),
            (RejectReason::TimestampOutsideRecvWindow, Some(-1021)),
            "{t:?}"
        );
    }
    assert!(env.sim.audit().is_empty());
    env.client.sync_time().await.unwrap();
    env.client
        .place_market_reduce_only("BTCUSDT", Side::Sell, qty("0.001"), "e-1021")
        .await
        .unwrap();
    env.assert_exactly_once(&["e-1021"]);
}
