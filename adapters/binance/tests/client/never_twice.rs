//! Dropped connections and the ambiguous 503: one order per client id, whatever happens.

use std::time::Duration;

use quantum_binance::PositionSide;
use quantum_binance::{Side, Transport};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn ambiguous_503_is_resolved_by_lookup_on_both_transports() {
    let env = start().await;
    env.long("BTCUSDT", "0.010");
    env.control("/sim/faults", json!({"ambiguous503Rate": 1.0}))
        .await;
    for (t, cid) in [(Transport::Rest, "amb-rest"), (Transport::WsApi, "amb-ws")] {
        let o = env
            .client
            .place_market_close(
                t,
                "BTCUSDT",
                PositionSide::Both,
                Side::Sell,
                qty("0.002"),
                cid,
            )
            .await
            .unwrap();
        assert_eq!(
            (o.status.as_str(), o.executed_qty),
            ("FILLED", qty("0.002")),
            "{t:?}"
        );
    }
    env.assert_exactly_once(&["amb-rest", "amb-ws"]);
    assert_eq!(env.position("BTCUSDT"), qty("0.006"));
}

#[tokio::test]
async fn connection_dropped_after_placing_is_found_by_lookup() {
    let env = start().await;
    env.long("BTCUSDT", "0.010");
    env.control(
        "/sim/faults",
        json!({"dropRate": 1.0, "dropAfterPlace": true}),
    )
    .await;
    for (t, cid) in [
        (Transport::Rest, "drop-rest"),
        (Transport::WsApi, "drop-ws"),
    ] {
        let o = env
            .client
            .place_market_close(
                t,
                "BTCUSDT",
                PositionSide::Both,
                Side::Sell,
                qty("0.001"),
                cid,
            )
            .await
            .unwrap();
        assert_eq!(o.status, "FILLED", "{t:?}");
    }
    env.assert_exactly_once(&["drop-rest", "drop-ws"]);
    assert_eq!(env.position("BTCUSDT"), qty("0.008"));
}

#[tokio::test]
async fn connection_dropped_before_placing_is_sent_again_once() {
    let env = start().await;
    env.long("BTCUSDT", "0.010");
    for (t, cid) in [(Transport::Rest, "pre-rest"), (Transport::WsApi, "pre-ws")] {
        env.control(
            "/sim/faults",
            json!({"dropRate": 1.0, "dropAfterPlace": false}),
        )
        .await;
        // The first send is dropped unanswered; the fault is lifted while the client waits
        // for the lost request to become too old, so the re-send goes through.
        let lift = {
            let url = format!("{}/sim/faults", env.sim.rest_url());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                reqwest::Client::new()
                    .post(url)
                    .json(&json!({"dropRate": 0.0}))
                    .send()
                    .await
                    .unwrap();
            })
        };
        let o = env
            .client
            .place_market_close(
                t,
                "BTCUSDT",
                PositionSide::Both,
                Side::Sell,
                qty("0.001"),
                cid,
            )
            .await
            .unwrap();
        lift.await.unwrap();
        assert_eq!(o.status, "FILLED", "{t:?}");
    }
    env.assert_exactly_once(&["pre-rest", "pre-ws"]);
}

#[tokio::test]
async fn a_drop_that_never_clears_sends_at_most_max_sends_and_places_nothing() {
    let env = start().await;
    env.long("BTCUSDT", "0.010");
    env.control(
        "/sim/faults",
        json!({"dropRate": 1.0, "dropAfterPlace": false}),
    )
    .await;
    let e = env
        .client
        .place_market_close(
            Transport::Rest,
            "BTCUSDT",
            PositionSide::Both,
            Side::Sell,
            qty("0.001"),
            "never",
        )
        .await
        .unwrap_err();
    assert!(e.outcome_unknown(), "{e}");
    assert!(env.sim.audit().is_empty());
}
