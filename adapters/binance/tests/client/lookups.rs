//! The stand-alone lookup by client id, for an order re-offered after a restart: found at
//! once if it exists; "never placed" only once the lost request's recvWindow (plus at least a
//! second) has passed on the monotonic clock, counted from the given send time or, when
//! unknown, from now.

use std::time::{Duration, Instant};

use quantum_binance::PositionSide;
use quantum_binance::Transport;
use quantum_binance::{FoundBy, Pending, Resolution, SentAt, Side, MIN_SETTLE_MARGIN};

use crate::common::*;

fn pending(cid: &str, sent_at: SentAt) -> Pending {
    Pending {
        symbol: "BTCUSDT".into(),
        client_order_id: cid.into(),
        sent_at,
    }
}

#[tokio::test]
async fn an_order_that_exists_is_found_at_once() {
    let env = start().await;
    env.long("BTCUSDT", "0.010");
    env.client
        .place_market_close(
            Transport::Rest,
            "BTCUSDT",
            PositionSide::Both,
            Side::Sell,
            qty("0.002"),
            "re-1",
        )
        .await
        .unwrap();
    let mut steps = Vec::new();
    let r = env
        .client
        .resolve_observed(&pending("re-1", SentAt::AssumeNow), &mut |e| {
            steps.push(Step::of(&e))
        })
        .await
        .unwrap();
    let Resolution::Found { order, by } = r else {
        panic!("{r:?}")
    };
    assert_eq!((order.executed_qty, by), (qty("0.002"), FoundBy::Lookup));
    assert_eq!(steps, [Step::Found(FoundBy::Lookup)]);
    env.assert_exactly_once(&["re-1"]);
}

#[tokio::test]
async fn unknown_send_time_waits_a_full_recv_window_from_now() {
    let env = start().await;
    let asked = Instant::now();
    let window = Duration::from_millis(env.client.config().recv_window_ms) + MIN_SETTLE_MARGIN;
    let mut steps = Vec::new();
    let r = env
        .client
        .resolve_observed(&pending("re-2", SentAt::AssumeNow), &mut |e| {
            steps.push(Step::of(&e))
        })
        .await
        .unwrap();
    assert_eq!(r, Resolution::NeverPlaced);
    assert!(Instant::now() >= asked + window);
    assert_eq!(compact(&steps), [Step::NotKnownYet, Step::NeverPlaced]);
    assert!(env.sim.audit().is_empty());
}

#[tokio::test]
async fn a_send_older_than_the_recv_window_is_never_placed_at_the_first_2013() {
    let env = start().await;
    let long_ago = Instant::now() - Duration::from_secs(60);
    let mut steps = Vec::new();
    let r = env
        .client
        .resolve_observed(&pending("re-3", SentAt::At(long_ago)), &mut |e| {
            steps.push(Step::of(&e))
        })
        .await
        .unwrap();
    assert_eq!(r, Resolution::NeverPlaced);
    assert_eq!(steps, [Step::NeverPlaced]);
}
