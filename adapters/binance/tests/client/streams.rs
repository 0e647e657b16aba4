//! listenKey and the user data stream.

use std::time::Duration;

use quantum_binance::futures::user_stream::{UserEvent, UserStream};
use quantum_binance::{RejectReason, Side};

use crate::common::*;

async fn next(s: &mut UserStream) -> UserEvent {
    tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .expect("an event within 5 s")
        .expect("stream open")
        .expect("a valid event")
}

#[tokio::test]
async fn order_and_account_updates_arrive_typed() {
    let env = start().await;
    env.long("BTCUSDT", "0.010");
    let key = env.client.http().listen_key_create().await.unwrap();
    let mut stream = env.client.user_stream(&key).await.unwrap();
    env.client.http().listen_key_keepalive().await.unwrap();
    env.client
        .place_market_reduce_only("BTCUSDT", Side::Sell, qty("0.003"), "qpc-s1")
        .await
        .unwrap();
    let (mut filled, mut account) = (None, None);
    while filled.is_none() || account.is_none() {
        match next(&mut stream).await {
            UserEvent::OrderTradeUpdate(o) if o.exec_type == "TRADE" => filled = Some(o),
            UserEvent::AccountUpdate(a) => account = Some(a),
            _ => {}
        }
    }
    let o = filled.unwrap();
    assert_eq!(
        (o.client_order_id.as_str(), o.cum_qty),
        ("qpc-s1", qty("0.003"))
    );
    assert_eq!(o.side, Side::Sell);
    let a = account.unwrap();
    assert_eq!(a.positions[0].symbol, "BTCUSDT");
    assert_eq!(a.positions[0].amount, qty("0.007"));
    env.client.http().listen_key_close().await.unwrap();
    let e = env.client.http().listen_key_keepalive().await.unwrap_err();
    assert_eq!(e.reject_reason(), RejectReason::ListenKeyNotFound);
}
