//! The user data stream's confirmation ends a pending lookup or re-send of the order
//! (NautilusTrader #4215: a retry fired after the stream had confirmed the order, and got
//! -4116). Here the query side lags far behind, so lookups keep answering -2013 and the
//! recvWindow rule alone would conclude "never placed" and send the order again.

use std::time::Duration;

use quantum_binance::futures::user_stream::UserEvent;
use quantum_binance::PositionSide;
use quantum_binance::{
    Confirmation, FoundBy, NewOrder, Order, Pending, Resolution, SentAt, Side, Transport,
};
use quantum_core::fixed::Qty;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn a_stream_confirmation_answers_before_the_lookup_can_misread_2013() {
    let env = start().await;
    env.long("BTCUSDT", "0.010");
    env.control(
        "/sim/faults",
        json!({"ambiguous503Rate": 1.0, "queryLagMs": 60_000}),
    )
    .await;
    let key = env.client.http().listen_key_create().await.unwrap();
    let mut stream = env.client.user_stream(&key).await.unwrap();
    let reader = tokio::spawn(async move {
        let mut updates = 0;
        while let Some(ev) = stream.next().await {
            if let Ok(UserEvent::OrderTradeUpdate(_)) = ev {
                updates += 1;
            }
        }
        updates
    });
    for (t, cid) in [(Transport::Rest, "cf-rest"), (Transport::WsApi, "cf-ws")] {
        let order = NewOrder {
            symbol: "BTCUSDT".into(),
            side: Side::Sell,
            quantity: "0.001".into(),
            position_side: PositionSide::Both,
            reduce_only: true,
            client_order_id: cid.into(),
        };
        let mut steps = Vec::new();
        let o = env
            .client
            .place_once_only_observed(t, &order, &mut |e| steps.push(Step::of(&e)))
            .await
            .unwrap();
        assert_eq!(o.client_order_id, cid);
        assert_eq!(o.status, "FILLED", "{t:?}");
        let steps = compact(&steps);
        assert_eq!(
            steps.first(),
            Some(&Step::Unknown {
                attempt: 1,
                code: Some(-1000)
            })
        );
        assert_eq!(steps.last(), Some(&Step::Found(FoundBy::Stream)), "{t:?}");
        assert!(!steps
            .iter()
            .any(|s| matches!(s, Step::Resending(_) | Step::NeverPlaced)));
    }
    env.assert_exactly_once(&["cf-rest", "cf-ws"]);
    reader.abort();
}

#[tokio::test]
async fn a_confirmation_cancels_a_pending_lookup() {
    let env = start().await;
    let client = env.client.clone();
    let pending = Pending {
        symbol: "BTCUSDT".into(),
        client_order_id: "cf-manual".into(),
        // The deadline is a minute away: only the confirmation can end this early.
        sent_at: SentAt::At(std::time::Instant::now() + Duration::from_secs(60)),
    };
    let lookup = tokio::spawn(async move { client.resolve(&pending).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!lookup.is_finished());
    env.client.confirmations().confirm(Confirmation {
        order: Order {
            symbol: "BTCUSDT".into(),
            order_id: 42,
            client_order_id: "cf-manual".into(),
            status: "NEW".into(),
            side: Side::Sell,
            position_side: quantum_ipc::codes::PositionSide::Both,
            orig_qty: Qty::from_int(1),
            executed_qty: Qty::ZERO,
            avg_price: None,
            reduce_only: true,
            update_time: 1,
        },
        exec_type: "NEW".into(),
        event_time: 1,
    });
    let r = tokio::time::timeout(Duration::from_secs(5), lookup)
        .await
        .expect("the confirmation ends the lookup")
        .unwrap()
        .unwrap();
    let Resolution::Found { order, by } = r else {
        panic!("{r:?}")
    };
    assert_eq!((order.order_id, by), (42, FoundBy::Stream));
}
