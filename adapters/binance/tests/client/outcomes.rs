//! Placement outcomes other clients got wrong: -1007 / -1006 and a gateway's 5xx page are
//! unknown, never rejected; -2013 right after a send is "not known yet", however the wall
//! clock or the server offset steps; -4116 is looked up; -1008 is a refusal, and reduce-only
//! orders are exempt from it.

use std::time::Duration;

use quantum_binance::PositionSide;
use quantum_binance::{FoundBy, NewOrder, Placement, RejectReason, Resolution, Side, Transport};
use serde_json::json;

use crate::common::*;

fn exit(cid: &str) -> NewOrder {
    NewOrder {
        symbol: "BTCUSDT".into(),
        side: Side::Sell,
        quantity: "0.001".into(),
        position_side: PositionSide::Both,
        reduce_only: true,
        client_order_id: cid.into(),
    }
}

async fn long_env() -> Env {
    let env = start().await;
    env.long("BTCUSDT", "0.010");
    env
}

#[tokio::test]
async fn timeout_1007_is_unknown_and_found_by_lookup() {
    let env = long_env().await;
    env.control(
        "/sim/faults",
        json!({"timeout1007Rate": 1.0, "unknownPlaces": true}),
    )
    .await;
    for (t, cid) in [(Transport::Rest, "to-rest"), (Transport::WsApi, "to-ws")] {
        let Placement::Unknown(u) = env.client.place(t, &exit(cid)).await else {
            panic!("{t:?}: -1007 must be unknown");
        };
        assert_eq!(u.cause.api_code(), Some(-1007), "{t:?}");
        assert_eq!(u.cause.reject_reason(), RejectReason::UnknownOutcome);
        match env.client.resolve(&u.pending).await.unwrap() {
            Resolution::Found { order, by } => {
                assert_eq!((order.status.as_str(), by), ("FILLED", FoundBy::Lookup))
            }
            other => panic!("{t:?}: {other:?}"),
        }
    }
    env.assert_exactly_once(&["to-rest", "to-ws"]);
}

#[tokio::test]
async fn unexpected_1006_is_unknown_and_never_placed_only_after_the_recv_window() {
    let env = long_env().await;
    env.control(
        "/sim/faults",
        json!({"unexpected1006Rate": 1.0, "unknownPlaces": false}),
    )
    .await;
    for (t, cid) in [(Transport::Rest, "ue-rest"), (Transport::WsApi, "ue-ws")] {
        let Placement::Unknown(u) = env.client.place(t, &exit(cid)).await else {
            panic!("{t:?}: -1006 must be unknown");
        };
        assert_eq!(u.cause.api_code(), Some(-1006), "{t:?}");
        let settles_at = env.client.settles_at(&u.pending);
        let mut steps = Vec::new();
        let r = env
            .client
            .resolve_observed(&u.pending, &mut |e| steps.push(Step::of(&e)))
            .await
            .unwrap();
        assert_eq!(r, Resolution::NeverPlaced, "{t:?}");
        assert!(
            std::time::Instant::now() >= settles_at,
            "never placed concluded before the recvWindow passed"
        );
        assert_eq!(
            compact(&steps),
            [Step::NotKnownYet, Step::NeverPlaced],
            "{t:?}"
        );
    }
    assert!(env.sim.audit().is_empty());
}

#[tokio::test]
async fn place_once_only_resends_only_an_order_never_placed() {
    let env = long_env().await;
    for (t, cid) in [(Transport::Rest, "rs-rest"), (Transport::WsApi, "rs-ws")] {
        env.control(
            "/sim/faults",
            json!({"unexpected1006Rate": 1.0, "unknownPlaces": false}),
        )
        .await;
        // Lifted while the client waits for the lost request to become too old.
        let url = format!("{}/sim/faults", env.sim.rest_url());
        let lift = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            reqwest::Client::new()
                .post(url)
                .json(&json!({"unexpected1006Rate": 0.0}))
                .send()
                .await
                .unwrap();
        });
        let mut steps = Vec::new();
        let o = env
            .client
            .place_once_only_observed(t, &exit(cid), &mut |e| steps.push(Step::of(&e)))
            .await
            .unwrap();
        lift.await.unwrap();
        assert_eq!(o.status, "FILLED", "{t:?}");
        assert_eq!(
            compact(&steps),
            [
                Step::Unknown {
                    attempt: 1,
                    code: Some(-1006)
                },
                Step::NotKnownYet,
                Step::NeverPlaced,
                Step::Resending(2),
            ],
            "{t:?}"
        );
    }
    env.assert_exactly_once(&["rs-rest", "rs-ws"]);
}

#[tokio::test]
async fn minus_2013_right_after_the_send_means_not_known_yet() {
    // The order is placed, the answer is lost (503), and the query side lags: a client that
    // reads the first -2013 as "never placed" sends it twice (hummingbot #601 / #493).
    let env = long_env().await;
    env.control(
        "/sim/faults",
        json!({"ambiguous503Rate": 1.0, "queryLagMs": 600}),
    )
    .await;
    for (t, cid) in [(Transport::Rest, "lag-rest"), (Transport::WsApi, "lag-ws")] {
        let mut steps = Vec::new();
        let o = env
            .client
            .place_once_only_observed(t, &exit(cid), &mut |e| steps.push(Step::of(&e)))
            .await
            .unwrap();
        assert_eq!(o.status, "FILLED");
        assert_eq!(
            compact(&steps),
            [
                Step::Unknown {
                    attempt: 1,
                    code: Some(-1000)
                },
                Step::NotKnownYet,
                Step::Found(FoundBy::Lookup),
            ],
            "{t:?}"
        );
    }
    env.assert_exactly_once(&["lag-rest", "lag-ws"]);
    assert_eq!(env.position("BTCUSDT"), qty("0.008"));
}

#[tokio::test]
async fn duplicated_client_order_id_is_looked_up_not_failed() {
    let env = long_env().await;
    for (t, cid) in [(Transport::Rest, "dup-rest"), (Transport::WsApi, "dup-ws")] {
        // An open order already holds the client id (as an earlier attempt of ours would).
        env.resting_limit("BTCUSDT", "BUY", "0.002", "60000", cid)
            .await;
        let mut steps = Vec::new();
        let o = env
            .client
            .place_once_only_observed(t, &exit(cid), &mut |e| steps.push(Step::of(&e)))
            .await
            .unwrap();
        assert_eq!((o.status.as_str(), o.side), ("NEW", Side::Buy), "{t:?}");
        assert_eq!(
            compact(&steps),
            [
                Step::Unknown {
                    attempt: 1,
                    code: Some(-4116)
                },
                Step::Found(FoundBy::Lookup),
            ],
            "{t:?}"
        );
    }
    env.assert_exactly_once(&["dup-rest", "dup-ws"]);
}

#[tokio::test]
async fn throttling_1008_is_a_rejection_and_reduce_only_orders_are_exempt() {
    let env = long_env().await;
    env.control("/sim/faults", json!({"throttle1008": true}))
        .await;
    for (t, open, close) in [
        (Transport::Rest, "thr-open-rest", "thr-exit-rest"),
        (Transport::WsApi, "thr-open-ws", "thr-exit-ws"),
    ] {
        let opening = NewOrder {
            side: Side::Buy,
            quantity: "0.002".into(),
            position_side: PositionSide::Both,
            reduce_only: false,
            ..exit(open)
        };
        let Placement::Rejected(e) = env.client.place(t, &opening).await else {
            panic!("{t:?}: -1008 must be a rejection");
        };
        assert_eq!(
            (e.api_code(), e.reject_reason()),
            (Some(-1008), RejectReason::ServerBusy),
            "{t:?}"
        );
        assert!(e.reject_reason().certainly_not_placed());
        // place_once_only does not re-send it either.
        let e = env.client.place_once_only(t, &opening).await.unwrap_err();
        assert_eq!(e.api_code(), Some(-1008));
        let o = env.client.place_once_only(t, &exit(close)).await.unwrap();
        assert_eq!(o.status, "FILLED", "{t:?}");
    }
    env.assert_exactly_once(&["thr-exit-rest", "thr-exit-ws"]);
}

#[tokio::test]
async fn a_gateway_page_after_placing_is_unknown_and_found_by_lookup() {
    let env = long_env().await;
    for (t, status, cid) in [
        (Transport::Rest, 502, "gw-502"),
        (Transport::Rest, 504, "gw-504"),
        // The WebSocket API's gateway closes the connection instead.
        (Transport::WsApi, 502, "gw-ws"),
    ] {
        env.control(
            "/sim/faults",
            json!({"gatewayAfterPlaceRate": 1.0, "gatewayStatus": status}),
        )
        .await;
        let mut steps = Vec::new();
        let o = env
            .client
            .place_once_only_observed(t, &exit(cid), &mut |e| steps.push(Step::of(&e)))
            .await
            .unwrap();
        assert_eq!(
            (o.status.as_str(), o.executed_qty),
            ("FILLED", qty("0.001"))
        );
        let code = (t == Transport::Rest).then_some(0);
        assert_eq!(
            compact(&steps),
            [
                Step::Unknown { attempt: 1, code },
                Step::Found(FoundBy::Lookup)
            ],
            "{t:?} {status}"
        );
    }
    env.assert_exactly_once(&["gw-502", "gw-504", "gw-ws"]);
    assert_eq!(env.position("BTCUSDT"), qty("0.007"));
}

#[tokio::test]
async fn a_forward_clock_step_does_not_cut_the_wait_for_a_lost_request_short() {
    // The order is placed, its answer lost (503), and the query side does not show it for
    // 1.1 s. Between the send and the lookup, the server time estimate steps 800 ms forward
    // (an NTP step of the wall clock, a resumed VM, a re-measured offset: all move `now_ms`
    // alike; 800 ms keeps the lookups' timestamps acceptable). Counted on that estimate, the
    // recvWindow (1 s) and margin would be over at 0.4 s: -2013 would read "never placed"
    // and the order would be sent twice. On the monotonic clock the wait lasts
    // recvWindow + at least a second, and the lookup finds the order.
    let env = long_env().await;
    env.control(
        "/sim/faults",
        json!({"ambiguous503Rate": 1.0, "queryLagMs": 1100}),
    )
    .await;
    let clock = env.client.clock().clone();
    let measured = clock.offset_ms();
    for (t, cid) in [
        (Transport::Rest, "step-rest"),
        (Transport::WsApi, "step-ws"),
    ] {
        clock.set_offset_ms(measured);
        let mut steps = Vec::new();
        let o = env
            .client
            .place_once_only_observed(t, &exit(cid), &mut |e| {
                if let quantum_binance::OrderEvent::Unknown { .. } = e {
                    clock.set_offset_ms(measured + 800);
                }
                steps.push(Step::of(&e))
            })
            .await
            .unwrap();
        assert_eq!(o.status, "FILLED", "{t:?}");
        assert_eq!(
            compact(&steps),
            [
                Step::Unknown {
                    attempt: 1,
                    code: Some(-1000)
                },
                Step::NotKnownYet,
                Step::Found(FoundBy::Lookup),
            ],
            "{t:?}"
        );
    }
    env.assert_exactly_once(&["step-rest", "step-ws"]);
    assert_eq!(env.position("BTCUSDT"), qty("0.008"));
}
