//! listenKey and the user data stream on the private route, in both modes: typed events,
//! TRADE_LITE ahead of its order update, confirmations, and the orders Binance creates
//! itself.

use std::sync::atomic::Ordering;
use std::time::Duration;

use quantum_binance::futures::trades::TradeTally;
use quantum_binance::futures::user_stream::{UserEvent, UserStream};
use quantum_binance::PositionSide;
use quantum_binance::Transport;
use quantum_binance::{FuturesClient, OrderOrigin, RejectReason, Side, StreamMode};
use quantum_binance_sim::ExchangeOrderKind;

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
        .place_market_close(
            Transport::Rest,
            "BTCUSDT",
            PositionSide::Both,
            Side::Sell,
            qty("0.003"),
            "qpc-s1",
        )
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

#[tokio::test]
async fn both_modes_deliver_trade_lite_first_and_confirm_orders() {
    let sim = quantum_binance_sim::Simulator::start(quantum_binance_sim::SimConfig::ephemeral())
        .await
        .unwrap();
    sim.set_position("BTCUSDT", quantum_binance_sim::PosSide::Both, dec("0.010"))
        .unwrap();
    for (mode, cid) in [(StreamMode::Ws, "m-ws"), (StreamMode::Stream, "m-stream")] {
        let mut cfg = config_for(&sim);
        cfg.user_stream_mode = mode;
        let client = FuturesClient::connect(cfg, creds()).await.unwrap();
        let key = client.http().listen_key_create().await.unwrap();
        let mut stream = client.user_stream(&key).await.unwrap();
        client
            .place_market_close(
                Transport::Rest,
                "BTCUSDT",
                PositionSide::Both,
                Side::Sell,
                qty("0.001"),
                cid,
            )
            .await
            .unwrap();
        let (mut lite, mut trade) = (None, None);
        while trade.is_none() {
            match next(&mut stream).await {
                UserEvent::TradeLite(t) => {
                    assert!(
                        trade.is_none(),
                        "{mode:?}: TRADE_LITE after its order update"
                    );
                    lite = Some(t);
                }
                UserEvent::OrderTradeUpdate(o) if o.exec_type == "TRADE" => trade = Some(o),
                _ => {}
            }
        }
        let (lite, trade) = (lite.expect("a TRADE_LITE"), trade.unwrap());
        // The lite brings the fill; the update repeating the trade adds nothing.
        let mut tally = TradeTally::new(16);
        assert_eq!(
            tally.record(lite.order_id, lite.trade_id, lite.last_qty),
            Some(qty("0.001"))
        );
        assert_eq!(
            tally.record(trade.order_id, trade.trade_id, trade.last_qty),
            None
        );
        assert_eq!(
            (lite.order_id, lite.trade_id, lite.last_qty),
            (trade.order_id, trade.trade_id, trade.last_qty),
            "{mode:?}"
        );
        assert_eq!(
            (lite.client_order_id.as_str(), lite.origin),
            (cid, OrderOrigin::Client)
        );
        let c = client
            .confirmations()
            .get(cid)
            .expect("confirmed by the stream");
        assert_eq!(c.order.status, "FILLED", "{mode:?}");
        assert!(stream.stats().events.load(Ordering::Relaxed) >= 3);
    }
}

#[tokio::test]
async fn orders_binance_creates_are_flagged_and_counted() {
    let env = start().await;
    env.long("BTCUSDT", "0.010");
    env.long("ETHUSDT", "-1.0");
    env.long("SOLUSDT", "3");
    let key = env.client.http().listen_key_create().await.unwrap();
    let mut stream = env.client.user_stream(&key).await.unwrap();
    for (symbol, kind, origin, left) in [
        (
            "BTCUSDT",
            ExchangeOrderKind::Liquidation,
            OrderOrigin::Liquidation,
            "0.006",
        ),
        (
            "ETHUSDT",
            ExchangeOrderKind::AutoDeleverage,
            OrderOrigin::AutoDeleverage,
            "0",
        ),
        (
            "SOLUSDT",
            ExchangeOrderKind::Settlement,
            OrderOrigin::Settlement,
            "0",
        ),
    ] {
        let part = (symbol == "BTCUSDT").then(|| dec("0.004"));
        env.sim
            .exchange_close(symbol, quantum_binance_sim::PosSide::Both, kind, part)
            .unwrap();
        let mut fill = None;
        loop {
            match next(&mut stream).await {
                UserEvent::OrderTradeUpdate(o) if o.exec_type == "TRADE" => fill = Some(o),
                UserEvent::AccountUpdate(a) => {
                    assert_eq!(a.positions[0].amount, qty(left), "{symbol}");
                    break;
                }
                _ => {}
            }
        }
        let fill = fill.expect("the exchange's fill");
        assert_eq!(fill.origin, origin, "{}", fill.client_order_id);
        assert!(fill.origin.exchange_generated());
    }
    let s = stream.stats();
    // The order update NEW, the TRADE_LITE and the TRADE update of each order.
    assert_eq!(s.liquidation.load(Ordering::Relaxed), 3);
    assert_eq!(s.auto_deleverage.load(Ordering::Relaxed), 3);
    assert_eq!(s.settlement.load(Ordering::Relaxed), 3);
    assert_eq!(s.invalid.load(Ordering::Relaxed), 0);
    // None of it is ours: nothing was ordered through the client.
    assert!(env.sim.audit().iter().all(|e| e.via == "exchange"));
}
