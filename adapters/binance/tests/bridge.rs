//! The bridge between rings and the simulator, without the daemon: the test creates the
//! `orders` and `exchange` rings and the symbol directory itself, as `quantum run` would.

use std::time::Duration;

use quantum_binance::bridge::{self, BridgeConfig, EXCHANGE_RING, ORDERS_RING};
use quantum_binance::{ClientConfig, RejectReason};
use quantum_binance_sim::{Dec, PosSide, SimConfig, Simulator};
use quantum_ipc::codes::{FailKind, OrderStatus, ReportSource, UnknownReason};
use quantum_ipc::wire::{self, Limits, Message, RECORD_SIZE};
use quantum_ipc::{CountersWriter, Ring, RingSpec};

mod support;
use support::{creds, intent, q, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intents_become_orders_fills_rejects_and_snapshots() {
    let instance = format!("binbridge{}", std::process::id());
    let counters = CountersWriter::create(&instance, 8).unwrap();
    counters.set_symbol(0, "BTCUSDT").unwrap();
    counters.set_symbol(1, "ETHUSDT").unwrap();
    let orders = Ring::create(&RingSpec::new(&instance, ORDERS_RING, 64)).unwrap();
    let exchange = Ring::create(&RingSpec::new(&instance, EXCHANGE_RING, 1024)).unwrap();
    let mut to_bridge = orders.producer::<RECORD_SIZE>().unwrap();
    let mut from_bridge = exchange.consumer::<RECORD_SIZE>().unwrap();

    let sim = Simulator::start(SimConfig::ephemeral()).await.unwrap();
    sim.set_position("BTCUSDT", PosSide::Both, Dec::parse("0.010").unwrap())
        .unwrap();
    let mut client =
        ClientConfig::local(&sim.rest_url(), &sim.ws_api_url(), &sim.stream_base_url());
    client.recv_window_ms = 1000;
    let cfg = BridgeConfig::new(&instance, client);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let bridge = tokio::spawn(bridge::run(cfg, creds(), async {
        let _ = stop_rx.await;
    }));

    let mut seen = Vec::new();
    let rx = &mut from_bridge;
    // Start-up: filters of both symbols, the BTC position.
    for sym in [0u16, 1] {
        let m = wait_for(
            rx,
            &mut seen,
            "filters",
            |m| matches!(m, Message::SymbolFilters(f) if f.symbol == sym),
        )
        .await;
        let Message::SymbolFilters(f) = m else {
            unreachable!()
        };
        assert_eq!((f.market_step, f.market_min_qty), (q("0.001"), q("0.001")));
    }
    wait_for(rx, &mut seen, "initial BTC snapshot", |m| {
        matches!(m, Message::PositionSnapshot(p) if p.symbol == 0 && p.amount == q("0.01") && p.mark_price > 0)
    })
    .await;

    // An exit of 0.004 BTC.
    to_bridge
        .try_push_message(&intent(0xabc, 0, wire::Side::Sell, q("0.004")))
        .unwrap();
    wait_for(
        rx,
        &mut seen,
        "sent",
        |m| matches!(m, Message::OrderSent(s) if s.plan_id == 0xabc),
    )
    .await;
    let m = wait_for(rx, &mut seen, "filled report", |m| {
        matches!(m, Message::OrderReport(r) if r.plan_id == 0xabc && r.status == OrderStatus::Filled)
    })
    .await;
    let Message::OrderReport(f) = m else {
        unreachable!()
    };
    assert_eq!(
        (f.symbol, f.cum_qty, f.side),
        (0, q("0.004"), wire::Side::Sell)
    );
    assert!(f.price > 0 && f.order_id > 0);
    wait_for(
        rx,
        &mut seen,
        "snapshot after the fill",
        |m| matches!(m, Message::PositionSnapshot(p) if p.symbol == 0 && p.amount == q("0.006")),
    )
    .await;

    // ETH is flat: reduce-only is refused.
    to_bridge
        .try_push_message(&intent(0xdef, 1, wire::Side::Sell, q("0.1")))
        .unwrap();
    let m = wait_for(
        rx,
        &mut seen,
        "reject",
        |m| matches!(m, Message::OrderFailed(r) if r.plan_id == 0xdef),
    )
    .await;
    let Message::OrderFailed(r) = m else {
        unreachable!()
    };
    assert_eq!(
        (r.kind, r.symbol, r.exchange_code, r.reason),
        (
            FailKind::Rejected,
            1,
            -2022,
            RejectReason::ReduceOnlyRejected.code()
        )
    );

    // The first order's end comes twice, from the order's answer and from the user stream;
    // both are in before the plan is offered again, so the next one is the bridge's answer
    // to the second intent.
    for source in [ReportSource::Answer, ReportSource::Stream] {
        if !seen.iter().any(|m| matches!(m, Message::OrderReport(r) if r.plan_id == 0xabc && r.source == source && r.status == OrderStatus::Filled)) {
            wait_for(rx, &mut seen, "both reports of the first end", |m| {
                matches!(m, Message::OrderReport(r) if r.plan_id == 0xabc && r.source == source && r.status == OrderStatus::Filled)
            })
            .await;
        }
    }
    // The same plan again is not ordered twice: the bridge saw the order end and reports
    // that end again, sending nothing.
    to_bridge
        .try_push_message(&intent(0xabc, 0, wire::Side::Sell, q("0.004")))
        .unwrap();
    let m = wait_for(rx, &mut seen, "the end reported again", |m| {
        matches!(m, Message::OrderReport(r) if r.plan_id == 0xabc && r.status == OrderStatus::Filled)
    })
    .await;
    assert!(matches!(m, Message::OrderReport(r) if r.cum_qty == q("0.004")));

    let audit = sim.audit();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].client_order_id, "qpc-0000000000000abc");
    assert_eq!(
        sim.positions()
            .iter()
            .find(|p| p.symbol == "BTCUSDT")
            .map(|p| q(&p.position_amt)),
        Some(q("0.006"))
    );
    // One `OrderSent` for the plan; every report of it carries the same cumulative quantity,
    // so the core books its fill once whoever reports it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    while let Some(m) = rx.try_pop_message(&Limits::default()) {
        seen.push(m.unwrap());
    }
    let sends = seen
        .iter()
        .filter(|m| matches!(m, Message::OrderSent(s) if s.plan_id == 0xabc))
        .count();
    assert_eq!(sends, 1, "{seen:#?}");
    assert!(seen.iter().all(|m| match m {
        Message::OrderReport(r) if r.plan_id == 0xabc && r.status == OrderStatus::Filled =>
            r.cum_qty == q("0.004"),
        _ => true,
    }));

    stop_tx.send(()).unwrap();
    bridge.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_502_after_placing_is_resolved_by_client_id_and_sent_once() {
    // A proxy forwards the order, Binance fills it, and the proxy answers 502 with its HTML
    // page: the bridge must report "unknown", find the order by client id, report its fill,
    // and never send it again (a "rejected" here released the quantity in the core while
    // the exchange had filled it).
    let instance = format!("binbridgegw{}", std::process::id());
    let counters = CountersWriter::create(&instance, 8).unwrap();
    counters.set_symbol(0, "BTCUSDT").unwrap();
    let orders = Ring::create(&RingSpec::new(&instance, ORDERS_RING, 64)).unwrap();
    let exchange = Ring::create(&RingSpec::new(&instance, EXCHANGE_RING, 1024)).unwrap();
    let mut to_bridge = orders.producer::<RECORD_SIZE>().unwrap();
    let mut from_bridge = exchange.consumer::<RECORD_SIZE>().unwrap();

    let sim = Simulator::start(SimConfig::ephemeral()).await.unwrap();
    sim.set_position("BTCUSDT", PosSide::Both, Dec::parse("0.010").unwrap())
        .unwrap();
    sim.set_faults(quantum_binance_sim::Faults {
        gateway_after_place_rate: 1.0,
        gateway_status: 502,
        ..Default::default()
    });
    let mut client =
        ClientConfig::local(&sim.rest_url(), &sim.ws_api_url(), &sim.stream_base_url());
    client.recv_window_ms = 1000;
    let cfg = BridgeConfig::new(&instance, client);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let bridge = tokio::spawn(bridge::run(cfg, creds(), async {
        let _ = stop_rx.await;
    }));

    let mut seen = Vec::new();
    let rx = &mut from_bridge;
    wait_for(
        rx,
        &mut seen,
        "initial BTC snapshot",
        |m| matches!(m, Message::PositionSnapshot(p) if p.symbol == 0 && p.amount == q("0.01")),
    )
    .await;
    to_bridge
        .try_push_message(&intent(0x502, 0, wire::Side::Sell, q("0.004")))
        .unwrap();
    let m = wait_for(
        rx,
        &mut seen,
        "the unknown outcome",
        |m| matches!(m, Message::OrderFailed(f) if f.plan_id == 0x502),
    )
    .await;
    let Message::OrderFailed(f) = m else {
        unreachable!()
    };
    assert_eq!(
        (f.kind, f.reason, f.exchange_code),
        (FailKind::Unknown, UnknownReason::Ambiguous.code(), 0),
        "{seen:#?}"
    );
    let m = wait_for(rx, &mut seen, "the fill, found by client id", |m| {
        matches!(m, Message::OrderReport(r) if r.plan_id == 0x502 && r.status == OrderStatus::Filled)
    })
    .await;
    let Message::OrderReport(r) = m else {
        unreachable!()
    };
    assert_eq!((r.cum_qty, r.side), (q("0.004"), wire::Side::Sell));
    assert!(
        matches!(r.source, ReportSource::Lookup | ReportSource::Stream),
        "{:?}",
        r.source
    );
    // The exchange's position reaches the core as it is on the exchange.
    wait_for(
        rx,
        &mut seen,
        "snapshot after the fill",
        |m| matches!(m, Message::PositionSnapshot(p) if p.symbol == 0 && p.amount == q("0.006")),
    )
    .await;

    // Long enough for a lost request to settle and a wrong re-send to show.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    while let Some(m) = rx.try_pop_message(&Limits::default()) {
        seen.push(m.unwrap());
    }
    let audit = sim.audit();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].client_order_id, "qpc-0000000000000502");
    assert_eq!(
        sim.positions()
            .iter()
            .find(|p| p.symbol == "BTCUSDT")
            .map(|p| q(&p.position_amt)),
        Some(q("0.006"))
    );
    let of_plan = |m: &&Message| match m {
        Message::OrderSent(s) => s.plan_id == 0x502,
        Message::OrderFailed(f) => f.plan_id == 0x502,
        Message::OrderReport(r) => r.plan_id == 0x502,
        _ => false,
    };
    let plan: Vec<&Message> = seen.iter().filter(of_plan).collect();
    let sends = plan
        .iter()
        .filter(|m| matches!(m, Message::OrderSent(_)))
        .count();
    assert_eq!(sends, 1, "{plan:#?}");
    assert!(
        plan.iter().all(|m| match m {
            Message::OrderFailed(f) => f.kind == FailKind::Unknown,
            Message::OrderReport(r) => r.cum_qty == q("0.004") || r.status != OrderStatus::Filled,
            _ => true,
        }),
        "{plan:#?}"
    );

    stop_tx.send(()).unwrap();
    bridge.await.unwrap().unwrap();
}
