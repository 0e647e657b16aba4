//! Exchange-truth recovery: at every attach the bridge reads each symbol's order history from
//! the simulator and reports our orders (source `history`), then one `OrderHistory` per
//! symbol. The test creates the rings and the symbol directory itself, as `quantum run` would.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use quantum_binance::bridge::{self, BridgeConfig, HistoryConfig, EXCHANGE_RING, ORDERS_RING};
use quantum_binance::PositionSide;
use quantum_binance::{ClientConfig, FuturesClient, NewOrder, Side, Transport};
use quantum_binance_sim::{
    Dec, ExchangeOrderKind, Faults, PosSide, SimConfig, SimHandle, Simulator,
};
use quantum_core::types::{ClientOrderId, PlanId};
use quantum_ipc::codes::{OrderStatus, ReportSource};
use quantum_ipc::wire::{self, Limits, Message, RECORD_SIZE};
use quantum_ipc::{Consumer, CountersWriter, Ring, RingSpec};

mod support;
use support::{creds, q};

const HOUR: i64 = 3_600_000;

fn cid(plan: u64) -> String {
    ClientOrderId::for_plan(PlanId(plan)).as_str().to_owned()
}

fn client_config(sim: &SimHandle) -> ClientConfig {
    let mut c = ClientConfig::local(&sim.rest_url(), &sim.ws_api_url(), &sim.stream_base_url());
    c.recv_window_ms = 1000;
    c
}

async fn place(
    c: &FuturesClient,
    via: Transport,
    symbol: &str,
    side: Side,
    qty: &str,
    ro: bool,
    id: &str,
) {
    let o = NewOrder {
        symbol: symbol.into(),
        side,
        quantity: qty.into(),
        position_side: PositionSide::Both,
        reduce_only: ro,
        client_order_id: id.into(),
    };
    c.place_once_only(via, &o).await.unwrap();
}

/// Reads `exchange` until `done` says so, or panics after 20 s.
async fn read_until(
    rx: &mut Consumer<RECORD_SIZE>,
    seen: &mut Vec<Message>,
    what: &str,
    done: impl Fn(&[Message]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        while let Some(m) = rx.try_pop_message(&Limits::default()) {
            seen.push(m.unwrap());
        }
        if done(seen) {
            return;
        }
        assert!(Instant::now() < deadline, "no {what}; saw {seen:#?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn histories(seen: &[Message]) -> Vec<wire::OrderHistory> {
    seen.iter()
        .filter_map(|m| match m {
            Message::OrderHistory(h) => Some(*h),
            _ => None,
        })
        .collect()
}

/// One round of recovery in `seen`: per symbol, the history reports that came before its
/// `OrderHistory`, and that record. Panics if a history report of a symbol comes after it.
fn round(seen: &[Message]) -> BTreeMap<u16, (Vec<wire::OrderReport>, wire::OrderHistory)> {
    let mut reports: BTreeMap<u16, Vec<wire::OrderReport>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for m in seen {
        match m {
            Message::OrderReport(r) if r.source == ReportSource::History => {
                assert!(
                    !out.contains_key(&r.symbol),
                    "a history report of symbol {} after its OrderHistory: {seen:#?}",
                    r.symbol
                );
                reports.entry(r.symbol).or_default().push(*r);
            }
            Message::OrderHistory(h) => {
                let rs = reports.remove(&h.symbol).unwrap_or_default();
                assert!(
                    out.insert(h.symbol, (rs, *h)).is_none(),
                    "two OrderHistory of {}",
                    h.symbol
                );
            }
            _ => {}
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_reports_our_orders_of_every_symbol_then_their_history_at_each_attach() {
    let instance = format!("binrecov{}", std::process::id());
    let counters = CountersWriter::create(&instance, 8).unwrap();
    for (i, s) in ["BTCUSDT", "ETHUSDT", "SOLUSDT"].iter().enumerate() {
        counters.set_symbol(i as u16, s).unwrap();
    }
    let orders_spec = RingSpec::new(&instance, ORDERS_RING, 64);
    let orders = Ring::create(&orders_spec).unwrap();
    let exchange = Ring::create(&RingSpec::new(&instance, EXCHANGE_RING, 1024)).unwrap();
    let mut from_bridge = exchange.consumer::<RECORD_SIZE>().unwrap();

    let sim = Simulator::start(SimConfig::ephemeral()).await.unwrap();
    let c = FuturesClient::connect(client_config(&sim), creds())
        .await
        .unwrap();
    // Older than the horizon (25 h): not read.
    sim.set_clock_offset(-26 * HOUR);
    c.sync_time().await.unwrap();
    place(
        &c,
        Transport::Rest,
        "BTCUSDT",
        Side::Buy,
        "0.002",
        false,
        &cid(0x100),
    )
    .await;
    sim.set_clock_offset(0);
    c.sync_time().await.unwrap();
    // Ours over REST and the WebSocket API, alternating sides.
    for plan in 1..=5u64 {
        let via = if plan % 2 == 1 {
            Transport::Rest
        } else {
            Transport::WsApi
        };
        let side = if plan % 2 == 1 { Side::Buy } else { Side::Sell };
        place(&c, via, "BTCUSDT", side, "0.002", false, &cid(plan)).await;
    }
    // Not ours: a manual order and the exchange's liquidation.
    place(
        &c,
        Transport::Rest,
        "BTCUSDT",
        Side::Sell,
        "0.002",
        false,
        "manual-btc",
    )
    .await;
    // Ours, partly filled: reduce-only 0.005 against a 0.003 position.
    sim.set_position("BTCUSDT", PosSide::Both, Dec::parse("0.003").unwrap())
        .unwrap();
    place(
        &c,
        Transport::WsApi,
        "BTCUSDT",
        Side::Sell,
        "0.005",
        true,
        &cid(6),
    )
    .await;
    sim.set_position("BTCUSDT", PosSide::Both, Dec::parse("0.004").unwrap())
        .unwrap();
    sim.exchange_close(
        "BTCUSDT",
        PosSide::Both,
        ExchangeOrderKind::Liquidation,
        None,
    )
    .unwrap();
    place(
        &c,
        Transport::Rest,
        "ETHUSDT",
        Side::Buy,
        "0.1",
        false,
        &cid(7),
    )
    .await;
    place(
        &c,
        Transport::Rest,
        "ETHUSDT",
        Side::Sell,
        "0.1",
        false,
        "manual-eth",
    )
    .await;
    let audit: BTreeMap<String, _> = sim
        .audit()
        .into_iter()
        .map(|a| (a.client_order_id.clone(), a))
        .collect();
    assert_eq!(audit.len(), 11);

    // The first two history queries fail: they are tried again, and nothing is reported
    // twice or early.
    sim.set_faults(Faults {
        history_failures: 2,
        ..Faults::default()
    });
    let mut cfg = BridgeConfig::new(&instance, client_config(&sim));
    cfg.history = HistoryConfig {
        horizon: Duration::from_secs(25 * 3600),
        page_limit: 3,
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let bridge = tokio::spawn(bridge::run(cfg, creds(), async {
        let _ = stop_rx.await;
    }));

    let mut seen = Vec::new();
    read_until(&mut from_bridge, &mut seen, "three OrderHistory", |s| {
        histories(s).len() == 3
    })
    .await;
    assert_eq!(
        sim.faults().history_failures,
        0,
        "the failed queries were retried"
    );
    let first = round(&seen);
    let expected: BTreeMap<u16, BTreeSet<u64>> = [
        (0u16, (1..=6).collect()),
        (1, [7].into_iter().collect()),
        (2, BTreeSet::new()),
    ]
    .into_iter()
    .collect();
    for (symbol, plans) in &expected {
        let (reports, h) = &first[symbol];
        let got: Vec<u64> = reports.iter().map(|r| r.plan_id).collect();
        assert_eq!(
            got.iter().copied().collect::<BTreeSet<_>>(),
            *plans,
            "symbol {symbol}"
        );
        assert_eq!(got.len(), plans.len(), "each order reported once: {got:?}");
        assert_eq!(h.orders as usize, plans.len());
        assert_eq!(h.through_ms - h.since_ms, 25 * 3600 * 1000);
        for r in reports {
            let a = &audit[&cid(r.plan_id)];
            assert_eq!(r.order_id, a.order_id);
            assert_eq!((r.cum_qty, r.orig_qty), (q(&a.executed_qty), q(&a.qty)));
            assert_eq!(r.side.as_str(), a.side);
            assert!(r.price > 0 && r.time_ms > 0, "{r:?}");
        }
    }
    let partial = first[&0].0.iter().find(|r| r.plan_id == 6).unwrap();
    assert_eq!(
        (partial.status, partial.cum_qty, partial.orig_qty),
        (OrderStatus::Expired, q("0.003"), q("0.005"))
    );
    let full = first[&0].0.iter().find(|r| r.plan_id == 2).unwrap();
    assert_eq!(
        (full.status, full.cum_qty, full.side),
        (OrderStatus::Filled, q("0.002"), Side::Sell)
    );
    assert!(!seen
        .iter()
        .any(|m| matches!(m, Message::OrderReport(r) if r.plan_id == 0x100)));

    // A restarted daemon makes a new `orders` ring: the bridge follows it and reads every
    // history again for it.
    drop(orders);
    let _orders = Ring::create(&orders_spec).unwrap();
    let mark = seen.len();
    read_until(&mut from_bridge, &mut seen, "a second round", |s| {
        histories(&s[mark..]).len() == 3
    })
    .await;
    let second = round(&seen[mark..]);
    for (symbol, (reports, h)) in &second {
        let (before, h0) = &first[symbol];
        assert_eq!(h.orders, h0.orders);
        assert_eq!(
            reports
                .iter()
                .map(|r| (r.plan_id, r.cum_qty))
                .collect::<Vec<_>>(),
            before
                .iter()
                .map(|r| (r.plan_id, r.cum_qty))
                .collect::<Vec<_>>()
        );
        assert!(h.through_ms >= h0.through_ms);
    }
    assert_eq!(second.len(), 3);

    stop_tx.send(()).unwrap();
    bridge.await.unwrap().unwrap();
}
