//! Each Binance refusal arrives as a typed reason, and nothing is placed; an answer that does
//! not prove a refusal (a 5xx, a gateway's page) is unknown, never a refusal.

use std::sync::{Arc, Mutex};

use quantum_binance::PositionSide;
use quantum_binance::{
    Credentials, FuturesClient, NewOrder, Placement, RejectReason, Side, Transport,
};
use quantum_binance_sim::TEST_API_SECRET;

use crate::common::*;
use crate::stub::{Answer, Stub};

fn raw(symbol: &str, side: Side, quantity: &str, cid: &str) -> NewOrder {
    NewOrder {
        symbol: symbol.into(),
        side,
        quantity: quantity.into(),
        position_side: PositionSide::Both,
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
        .place_market_close(
            Transport::Rest,
            "BTCUSDT",
            PositionSide::Both,
            Side::Sell,
            qty("0.0009"),
            "e-local",
        )
        .await
        .unwrap_err();
    assert_eq!(e.reject_reason(), RejectReason::LocalQuantity);
    let e = env
        .client
        .place_market_close(
            Transport::Rest,
            "DOGEUSDT",
            PositionSide::Both,
            Side::Sell,
            qty("1"),
            "e-sym",
        )
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
            .place_market_close(
                t,
                "BTCUSDT",
                PositionSide::Both,
                Side::Sell,
                qty("0.001"),
                "e-2015",
            )
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
            .place_market_close(
                t,
                "BTCUSDT",
                PositionSide::Both,
                Side::Sell,
                qty("0.001"),
                "e-1021",
            )
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
        .place_market_close(
            Transport::Rest,
            "BTCUSDT",
            PositionSide::Both,
            Side::Sell,
            qty("0.001"),
            "e-1021",
        )
        .await
        .unwrap();
    env.assert_exactly_once(&["e-1021"]);
}

const GATEWAY_PAGE: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n";

fn binance(code: i64, msg: &str) -> String {
    serde_json::json!({ "code": code, "msg": msg }).to_string()
}

#[tokio::test]
async fn every_answer_that_does_not_prove_a_refusal_is_unknown() {
    let next: Arc<Mutex<(u16, String)>> = Arc::default();
    let answer = next.clone();
    let stub = Stub::start("127.0.0.1", move |_, _| {
        let (status, body) = answer.lock().unwrap().clone();
        Answer::new(status, body)
    })
    .await;
    let internal = binance(-1001, "Internal error; unable to process your request.");
    let unknown = [
        (500, String::new()),
        (500, internal.clone()),
        (500, binance(-1006, "Execution status unknown.")),
        (502, GATEWAY_PAGE.to_owned()),
        (502, String::new()),
        (502, internal.clone()),
        (503, GATEWAY_PAGE.to_owned()),
        (
            504,
            GATEWAY_PAGE.replace("502 Bad Gateway", "504 Gateway Time-out"),
        ),
        (504, internal),
        (
            504,
            binance(-1007, "Timeout waiting for response from backend server."),
        ),
        // A success that is not an order, and no answer at all after the request was read.
        (200, String::new()),
        (200, GATEWAY_PAGE.to_owned()),
        (0, String::new()),
        // A 4xx without a Binance code is some proxy's page: it proves nothing.
        (404, "<html>Not Found</html>".to_owned()),
    ];
    let refused = [
        (
            400,
            binance(-2022, "ReduceOnly Order is rejected."),
            RejectReason::ReduceOnlyRejected,
        ),
        (
            400,
            binance(
                -1111,
                "Precision is over the maximum defined for this asset.",
            ),
            RejectReason::PrecisionOverMaximum,
        ),
        (
            400,
            binance(-4164, "Order's notional must be no smaller than 5."),
            RejectReason::NotionalTooSmall,
        ),
        (
            400,
            binance(-2019, "Margin is insufficient."),
            RejectReason::MarginInsufficient,
        ),
        (
            503,
            binance(-1008, "Request throttled by system-level protection."),
            RejectReason::ServerBusy,
        ),
        (
            429,
            binance(-1003, "Too many requests."),
            RejectReason::TooManyRequests,
        ),
        (
            418,
            binance(-1003, "Way too many requests; IP banned until 1."),
            RejectReason::IpBanned,
        ),
    ];
    let cfg = config_for_urls(
        &stub.url(),
        "ws://127.0.0.1:9/ws-fapi/v1",
        "ws://127.0.0.1:9/private",
    );
    let order = NewOrder {
        symbol: "BTCUSDT".into(),
        side: Side::Sell,
        quantity: "0.001".into(),
        position_side: PositionSide::Both,
        reduce_only: true,
        client_order_id: "gw-1".into(),
    };
    let mut sent = 0;
    for (status, body) in unknown {
        *next.lock().unwrap() = (status, body.clone());
        // A fresh client each time: no back-off carried over.
        let client = FuturesClient::new(cfg.clone(), creds()).unwrap();
        match client.place(Transport::Rest, &order).await {
            Placement::Unknown(u) => {
                assert!(u.cause.outcome_unknown(), "{status} {body}");
                assert!(!u.cause.reject_reason().certainly_not_placed());
                if status >= 300 {
                    assert_eq!(
                        u.cause.reject_reason(),
                        RejectReason::UnknownOutcome,
                        "{status} {body}"
                    );
                }
            }
            other => panic!("{status} {body}: {other:?} (must be unknown)"),
        }
        sent += 1;
    }
    for (status, body, want) in refused {
        *next.lock().unwrap() = (status, body.clone());
        let client = FuturesClient::new(cfg.clone(), creds()).unwrap();
        let Placement::Rejected(e) = client.place(Transport::Rest, &order).await else {
            panic!("{status} {body}: must be a refusal");
        };
        assert_eq!(e.reject_reason(), want, "{status} {body}");
        sent += 1;
    }
    assert_eq!(stub.connections(), sent, "each order went out once");
}
