//! The account's order history (`allOrders`): every order of a symbol, placed over REST or
//! the WebSocket API, read page by page (by order id after the first page) and window by
//! window (each under 7 days), with its fills.

use quantum_binance::futures::history::ALL_ORDERS_WEIGHT;
use quantum_binance::PositionSide;
use quantum_binance::{NewOrder, Side, Transport};
use quantum_binance_sim::{Limits, SimConfig};

use crate::common::*;

const DAY: i64 = 86_400_000;

fn order(symbol: &str, side: Side, quantity: &str, reduce_only: bool, cid: &str) -> NewOrder {
    NewOrder {
        symbol: symbol.into(),
        side,
        quantity: quantity.into(),
        position_side: PositionSide::Both,
        reduce_only,
        client_order_id: cid.into(),
    }
}

fn alternate(i: usize) -> Side {
    if i % 2 == 0 {
        Side::Buy
    } else {
        Side::Sell
    }
}

#[tokio::test]
async fn pages_by_order_id_through_rest_and_ws_api_orders_with_their_fills() {
    let env = start().await;
    let since = env.client.clock().now_ms() - 1000;
    let mut cids = Vec::new();
    for i in 0..7 {
        let cid = format!("qpc-{i:016x}");
        let via = if i % 2 == 0 {
            Transport::Rest
        } else {
            Transport::WsApi
        };
        env.client
            .place_once_only(via, &order("BTCUSDT", alternate(i), "0.002", false, &cid))
            .await
            .unwrap();
        cids.push(cid);
    }
    // A reduce-only order larger than the position: 0.003 fills, the rest expires.
    env.long("BTCUSDT", "0.003");
    env.client
        .place_once_only(
            Transport::WsApi,
            &order("BTCUSDT", Side::Sell, "0.005", true, "qpc-00000000000000ff"),
        )
        .await
        .unwrap();
    cids.push("qpc-00000000000000ff".into());
    // Not ours, and not this symbol: neither is in BTCUSDT's history.
    env.client
        .place_once_only(
            Transport::Rest,
            &order("ETHUSDT", Side::Buy, "0.1", false, "qpc-0000000000000eee"),
        )
        .await
        .unwrap();
    env.client
        .place_once_only(
            Transport::Rest,
            &order("BTCUSDT", Side::Sell, "0.002", false, "manual-1"),
        )
        .await
        .unwrap();
    cids.push("manual-1".into());

    let h = env
        .client
        .order_history_paged("BTCUSDT", since, 3)
        .await
        .unwrap();
    let got: Vec<&str> = h
        .orders
        .iter()
        .map(|o| o.order.client_order_id.as_str())
        .collect();
    assert_eq!(got, cids);
    // 9 orders in pages of 3: three full pages, then an empty one proves the end.
    assert_eq!((h.pages, h.requests), (4, 4));
    assert_eq!(h.weight, 4 * ALL_ORDERS_WEIGHT);
    assert!(h
        .orders
        .windows(2)
        .all(|w| w[0].order.order_id < w[1].order.order_id));
    assert!(h.since_ms == since && h.through_ms >= since);

    let vias: Vec<String> = env.sim.audit().into_iter().map(|a| a.via).collect();
    assert!(vias.contains(&"rest".into()) && vias.contains(&"ws-api".into()));
    let first = &h.orders[0];
    assert_eq!(
        (
            first.order.status.as_str(),
            first.order.executed_qty,
            first.order.orig_qty
        ),
        ("FILLED", qty("0.002"), qty("0.002"))
    );
    assert_eq!(first.order.avg_price.unwrap().to_string(), "65000");
    assert_eq!(
        (
            first.order.position_side.as_str(),
            first.order_type.as_str()
        ),
        ("BOTH", "MARKET")
    );
    assert!(first.time > 0 && first.order.update_time >= first.time);
    let partial = &h.orders[7].order;
    assert_eq!(
        (
            partial.status.as_str(),
            partial.executed_qty,
            partial.orig_qty,
            partial.reduce_only
        ),
        ("EXPIRED", qty("0.003"), qty("0.005"), true)
    );
    assert!(partial.avg_price.is_some());

    // A page limit the orders do not fill: one request.
    let h = env
        .client
        .order_history_paged("BTCUSDT", since, 10)
        .await
        .unwrap();
    assert_eq!((h.orders.len(), h.pages, h.requests), (9, 1, 1));
}

#[tokio::test]
async fn a_span_over_7_days_is_read_in_windows_under_7_days() {
    let env = start().await;
    let start_ms = env.client.clock().now_ms();
    for i in 0..2 {
        env.client
            .place_once_only(
                Transport::Rest,
                &order(
                    "BTCUSDT",
                    alternate(i),
                    "0.002",
                    false,
                    &format!("qpc-{i:016x}"),
                ),
            )
            .await
            .unwrap();
    }
    // Eight days later (the exchange's clock; the client measures it again).
    env.sim.set_clock_offset(8 * DAY);
    env.client.sync_time().await.unwrap();
    for i in 2..4 {
        env.client
            .place_once_only(
                Transport::WsApi,
                &order(
                    "BTCUSDT",
                    alternate(i),
                    "0.002",
                    false,
                    &format!("qpc-{i:016x}"),
                ),
            )
            .await
            .unwrap();
    }
    let h = env
        .client
        .order_history("BTCUSDT", start_ms - 1000)
        .await
        .unwrap();
    let got: Vec<&str> = h
        .orders
        .iter()
        .map(|o| o.order.client_order_id.as_str())
        .collect();
    assert_eq!(
        got,
        [
            "qpc-0000000000000000",
            "qpc-0000000000000001",
            "qpc-0000000000000002",
            "qpc-0000000000000003"
        ]
    );
    // Two windows, one page each; a single window would have been refused (-1127).
    assert_eq!((h.pages, h.requests), (2, 2));
    assert!(h.through_ms - h.since_ms > 8 * DAY);
}

#[tokio::test]
async fn more_than_500_orders_take_two_pages_of_the_default_size() {
    let mut cfg = SimConfig::ephemeral();
    cfg.limits = Limits {
        orders_per_10s: 10_000,
        orders_per_minute: 10_000,
        ..Limits::default()
    };
    let env = start_with(cfg).await;
    let since = env.client.clock().now_ms() - 1000;
    let n = 510;
    for i in 0..n {
        env.client
            .place_raw(
                Transport::Rest,
                &order(
                    "BTCUSDT",
                    alternate(i),
                    "0.002",
                    false,
                    &format!("qpc-{i:016x}"),
                ),
            )
            .await
            .unwrap();
    }
    let h = env.client.order_history("BTCUSDT", since).await.unwrap();
    assert_eq!(h.orders.len(), n);
    assert_eq!(
        (h.pages, h.requests, h.weight),
        (2, 2, 2 * ALL_ORDERS_WEIGHT)
    );
    for (i, o) in h.orders.iter().enumerate() {
        assert_eq!(o.order.client_order_id, format!("qpc-{i:016x}"));
    }
}

/// What reading a day's history of 3 symbols costs, for a quiet day (100 orders a symbol)
/// and a busy one (700): requests and weight are exact; the seconds are printed.
#[tokio::test]
async fn cost_of_three_symbols_over_a_day() {
    let mut cfg = SimConfig::ephemeral();
    cfg.limits = Limits {
        orders_per_10s: 100_000,
        orders_per_minute: 100_000,
        ..Limits::default()
    };
    let env = start_with(cfg).await;
    let symbols = [("BTCUSDT", "0.002"), ("ETHUSDT", "0.1"), ("SOLUSDT", "1")];
    let mut placed = 0;
    for (per_symbol, pages) in [(100, 1), (700, 2)] {
        // Spread over the last 24 hours of the exchange's clock, an hour at a time.
        for hour in 0..24 {
            env.sim.set_clock_offset(-(24 - hour) * 3_600_000);
            env.client.sync_time().await.unwrap();
            for (s, q) in symbols {
                for i in (0..per_symbol).filter(|i| i % 24 == hour as usize) {
                    let cid = format!("qpc-{:016x}", placed + i);
                    env.client
                        .place_raw(Transport::Rest, &order(s, alternate(i), q, false, &cid))
                        .await
                        .unwrap();
                }
                placed += per_symbol;
            }
        }
        env.sim.set_clock_offset(0);
        env.client.sync_time().await.unwrap();
        let since = env.client.clock().now_ms() - 25 * 3_600_000;
        let started = std::time::Instant::now();
        let (mut requests, mut weight) = (0, 0);
        for (s, _) in symbols {
            let h = env.client.order_history(s, since).await.unwrap();
            assert!(h.orders.len() >= per_symbol, "{s}: {}", h.orders.len());
            assert_eq!(h.requests, h.pages);
            requests += h.requests;
            weight += h.weight;
        }
        assert_eq!(
            (requests, weight),
            (3 * pages, 3 * pages * ALL_ORDERS_WEIGHT)
        );
        eprintln!(
            "order history of 3 symbols over 24 h, {per_symbol} orders each (and those before): {requests} requests, weight {weight}, {:.3} s",
            started.elapsed().as_secs_f64()
        );
    }
}
