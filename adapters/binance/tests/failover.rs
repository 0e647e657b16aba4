//! The bridge with failover on in the daemon's counters: it obeys the lease its host's lease
//! holder publishes (here a test `LeaseWriter`), against the simulator over real sockets. The
//! test creates the rings, the counters (symbol directory and failover gauges) and the lease
//! segment itself, as `quantum run` and `quantum bridge redis` would.

use std::time::Duration;

use quantum_binance::bridge::latency::Leg;
use quantum_binance::bridge::{self, BridgeConfig, EXCHANGE_RING, ORDERS_RING};
use quantum_binance::PositionSide;
use quantum_binance::{ClientConfig, FuturesClient, NewOrder, Side, Transport};
use quantum_binance_sim::{Dec, Faults, PosSide, SimConfig, SimHandle, Simulator};
use quantum_core::types::{ClientOrderId, PlanId};
use quantum_ipc::codes::{FailKind, OrderStatus, ReportSource, UnsentReason};
use quantum_ipc::latency::read::intervals;
use quantum_ipc::lease::{boot_ns, settings, Lease, LeaseRole, LeaseWriter};
use quantum_ipc::wire::{self, Message, RECORD_SIZE};
use quantum_ipc::{Consumer, CountersWriter, Producer, Ring, RingSpec};

mod support;
use support::{creds, intent, q, wait_for};

const MS: u64 = 1_000_000;

fn lease(role: LeaseRole, deadline_ns: u64, trade_after_ns: u64) -> Lease {
    let now = boot_ns();
    Lease {
        role,
        epoch: 5,
        deadline_ns,
        trade_after_ns,
        acquired_ns: now,
        renewed_ns: now,
        ttl_ms: 3000,
        recv_window_ms: 800,
        host: "test-host".into(),
        other: String::new(),
        takeover_ms: 0,
        updated_ns: now,
    }
}

/// A leader whose deadline is a minute away and whose fence passed.
fn leading() -> Lease {
    let now = boot_ns();
    lease(LeaseRole::Leader, now + 60_000 * MS, now)
}

/// Orders the simulator accepted, from its `GET /sim/orders`.
async fn sim_orders(sim: &SimHandle) -> Vec<serde_json::Value> {
    reqwest::get(format!("{}/sim/orders", sim.rest_url()))
        .await
        .unwrap()
        .json::<Vec<serde_json::Value>>()
        .await
        .unwrap()
}

async fn sim_order_count(sim: &SimHandle) -> usize {
    sim_orders(sim).await.len()
}

fn cid(plan: u64) -> String {
    ClientOrderId::for_plan(PlanId(plan)).as_str().to_owned()
}

fn is_not_leader(m: &Message, plan: u64) -> bool {
    matches!(m, Message::OrderFailed(f) if f.plan_id == plan
        && f.kind == FailKind::Unsent && f.reason == UnsentReason::NotLeader.code())
}

fn filled(m: &Message, plan: u64) -> bool {
    matches!(m, Message::OrderReport(r) if r.plan_id == plan && r.status == OrderStatus::Filled)
}

/// The daemon's side of one instance: counters with the symbol directory and the failover
/// gauges, the two rings, and the lease segment.
struct Daemon {
    _counters: CountersWriter,
    _orders: Ring,
    _exchange: Ring,
    lease: LeaseWriter,
    to_bridge: Producer<RECORD_SIZE>,
    from_bridge: Consumer<RECORD_SIZE>,
}

fn daemon(instance: &str, recv_window_ms: u64) -> Daemon {
    let counters = CountersWriter::create(instance, 16).unwrap();
    counters.set_symbol(0, "BTCUSDT").unwrap();
    counters.set_symbol(1, "ETHUSDT").unwrap();
    let enabled = counters.register(settings::ENABLED).unwrap();
    counters.set(enabled, 1);
    let rw = counters.register(settings::RECV_WINDOW_MS).unwrap();
    counters.set(rw, recv_window_ms);
    let lease = LeaseWriter::create(instance).unwrap();
    lease.publish(&lease_standby());
    let orders = Ring::create(&RingSpec::new(instance, ORDERS_RING, 64)).unwrap();
    let exchange = Ring::create(&RingSpec::new(instance, EXCHANGE_RING, 4096)).unwrap();
    Daemon {
        to_bridge: orders.producer::<RECORD_SIZE>().unwrap(),
        from_bridge: exchange.consumer::<RECORD_SIZE>().unwrap(),
        _counters: counters,
        _orders: orders,
        _exchange: exchange,
        lease,
    }
}

fn lease_standby() -> Lease {
    lease(LeaseRole::Standby, 0, 0)
}

async fn obeys_the_lease(transport: Transport, tag: &str) {
    let instance = format!("binfail{tag}{}", std::process::id());
    let mut d = daemon(&instance, 800);
    let sim = Simulator::start(SimConfig::ephemeral()).await.unwrap();
    sim.set_position("BTCUSDT", PosSide::Both, Dec::parse("0.100").unwrap())
        .unwrap();
    // Configured wider than the daemon's failover recvWindow: the bridge signs with 800.
    let mut client =
        ClientConfig::local(&sim.rest_url(), &sim.ws_api_url(), &sim.stream_base_url());
    client.recv_window_ms = 5000;
    let mut cfg = BridgeConfig::new(&instance, client);
    cfg.transport = transport;
    let log = std::env::temp_dir().join(format!("{instance}.hlog"));
    cfg.latency.hdr_log = Some(log.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let bridge = tokio::spawn(bridge::run(cfg, creds(), async {
        let _ = stop_rx.await;
    }));
    let mut seen = Vec::new();
    let rx = &mut d.from_bridge;
    wait_for(
        rx,
        &mut seen,
        "initial BTC snapshot",
        |m| matches!(m, Message::PositionSnapshot(p) if p.symbol == 0 && p.amount == q("0.1")),
    )
    .await;

    // Standby: refused, nothing sent, no `OrderSent`.
    d.to_bridge
        .try_push_message(&intent(1, 0, wire::Side::Sell, q("0.001")))
        .unwrap();
    wait_for(rx, &mut seen, "not_leader for plan 1", |m| {
        is_not_leader(m, 1)
    })
    .await;
    assert!(
        !seen
            .iter()
            .any(|m| matches!(m, Message::OrderSent(s) if s.plan_id == 1)),
        "{seen:#?}"
    );
    assert_eq!(sim_order_count(&sim).await, 0);

    // Leader, fence passed: sent.
    d.lease.publish(&leading());
    d.to_bridge
        .try_push_message(&intent(2, 0, wire::Side::Sell, q("0.001")))
        .unwrap();
    wait_for(rx, &mut seen, "plan 2 filled", |m| filled(m, 2)).await;
    assert_eq!(sim_order_count(&sim).await, 1);

    // Leader inside its takeover fence: held until the fence passes, then sent.
    let now = boot_ns();
    let trade_after = now + 1500 * MS;
    d.lease
        .publish(&lease(LeaseRole::Leader, now + 60_000 * MS, trade_after));
    d.to_bridge
        .try_push_message(&intent(3, 0, wire::Side::Sell, q("0.001")))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        sim_order_count(&sim).await,
        1,
        "sent inside the takeover fence"
    );
    wait_for(rx, &mut seen, "plan 3 filled", |m| filled(m, 3)).await;
    assert!(boot_ns() >= trade_after);
    let orders = sim_orders(&sim).await;
    assert_eq!(orders.len(), 2);
    assert_eq!(orders[1]["clientOrderId"], cid(3).as_str());

    // Leader past its deadline: refused.
    let now = boot_ns();
    d.lease
        .publish(&lease(LeaseRole::Leader, now - 1, now - 10 * MS));
    d.to_bridge
        .try_push_message(&intent(4, 0, wire::Side::Sell, q("0.001")))
        .unwrap();
    wait_for(rx, &mut seen, "not_leader for plan 4", |m| {
        is_not_leader(m, 4)
    })
    .await;
    assert_eq!(sim_order_count(&sim).await, 2);

    // Leading again: plan 1, refused before, is sent now (the refusal was not its end).
    d.lease.publish(&leading());
    d.to_bridge
        .try_push_message(&intent(1, 0, wire::Side::Sell, q("0.001")))
        .unwrap();
    wait_for(rx, &mut seen, "plan 1 filled", |m| filled(m, 1)).await;
    assert_eq!(sim_order_count(&sim).await, 3);

    // Every order is signed with the daemon's failover recvWindow (800 ms, not the 5000
    // configured): one delayed 1200 ms on its way is refused by the exchange (-1021).
    sim.set_faults(Faults {
        latency_ms: 1200,
        ..Default::default()
    });
    d.to_bridge
        .try_push_message(&intent(6, 0, wire::Side::Sell, q("0.001")))
        .unwrap();
    let m = wait_for(
        rx,
        &mut seen,
        "plan 6 refused",
        |m| matches!(m, Message::OrderFailed(f) if f.plan_id == 6),
    )
    .await;
    sim.set_faults(Faults::default());
    let Message::OrderFailed(f) = m else {
        unreachable!()
    };
    assert_eq!(
        (f.kind, f.exchange_code),
        (FailKind::Rejected, -1021),
        "{f:?}"
    );
    assert_eq!(sim_order_count(&sim).await, 3);

    let sent: Vec<u64> = seen
        .iter()
        .filter_map(|m| match m {
            Message::OrderSent(s) => Some(s.plan_id),
            _ => None,
        })
        .collect();
    assert!(!sent.contains(&4), "{seen:#?}");
    stop_tx.send(()).unwrap();
    bridge.await.unwrap().unwrap();

    // Timed: the four placements sent (2, 3, 1 and 6), three acknowledged and filled (6 was
    // refused); the two refusals for want of the lead, nothing. Plan 3's request waited out
    // the takeover fence before it left: that wait is in its `send`.
    let got = intervals(&std::fs::read(&log).unwrap()).unwrap();
    let of = |leg: Leg| {
        let tag = leg.series(transport);
        got.iter().filter(move |i| i.tag == tag)
    };
    let count = |leg: Leg| of(leg).map(|i| i.hist.len()).sum::<u64>();
    assert_eq!(Leg::ALL.map(count), [4, 3, 3, 3], "send, ack, fill, intent");
    let slowest_send = of(Leg::Send).map(|i| i.hist.max()).max().unwrap();
    assert!(slowest_send >= 1_000 * MS, "{slowest_send} ns");
    std::fs::remove_file(&log).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_orders_go_only_while_this_host_may_send() {
    obeys_the_lease(Transport::Rest, "rest").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_api_orders_go_only_while_this_host_may_send() {
    obeys_the_lease(Transport::WsApi, "ws").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leading_record_is_answered_with_the_history_since_its_instant() {
    let instance = format!("binfaillead{}", std::process::id());
    let mut d = daemon(&instance, 1000);
    d.lease.publish(&leading());
    let sim = Simulator::start(SimConfig::ephemeral()).await.unwrap();
    sim.set_position("BTCUSDT", PosSide::Both, Dec::parse("0.100").unwrap())
        .unwrap();
    let mut client =
        ClientConfig::local(&sim.rest_url(), &sim.ws_api_url(), &sim.stream_base_url());
    client.recv_window_ms = 1000;
    let cfg = BridgeConfig::new(&instance, client.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let bridge = tokio::spawn(bridge::run(cfg, creds(), async {
        let _ = stop_rx.await;
    }));
    let mut seen = Vec::new();
    let rx = &mut d.from_bridge;
    // The attach's own history read, for both symbols.
    for sym in [0u16, 1] {
        wait_for(
            rx,
            &mut seen,
            "the attach's history",
            |m| matches!(m, Message::OrderHistory(h) if h.symbol == sym),
        )
        .await;
    }

    // Orders the bridge did not send (another host's): one two hours ago, one now.
    let other = FuturesClient::connect(client, creds()).await.unwrap();
    let place = |plan: u64| NewOrder {
        symbol: "BTCUSDT".into(),
        side: Side::Sell,
        quantity: "0.001".into(),
        position_side: PositionSide::Both,
        reduce_only: true,
        client_order_id: cid(plan),
    };
    sim.set_clock_offset(-7_200_000);
    other.sync_time().await.unwrap();
    other
        .place_once_only(Transport::Rest, &place(0x66))
        .await
        .unwrap();
    sim.set_clock_offset(0);
    other.sync_time().await.unwrap();
    other
        .place_once_only(Transport::Rest, &place(0x77))
        .await
        .unwrap();

    let now_ms = other.clock().now_ms() as u64;
    let since_ms = now_ms - 3_600_000;
    let mark = seen.len();
    d.to_bridge
        .try_push_message(&Message::Leading(wire::Leading {
            epoch: 9,
            since_ms,
            at_ms: now_ms,
        }))
        .unwrap();
    for sym in [0u16, 1] {
        wait_for(
            rx,
            &mut seen,
            "the lead's history",
            |m| matches!(m, Message::OrderHistory(h) if h.symbol == sym && h.since_ms == since_ms),
        )
        .await;
    }
    let after = &seen[mark..];
    let btc = after
        .iter()
        .find_map(|m| match m {
            Message::OrderHistory(h) if h.symbol == 0 => Some(*h),
            _ => None,
        })
        .unwrap();
    assert_eq!(btc.orders, 1, "{after:#?}");
    // The history reaches past the lead's instant. Both instants are server time as estimated
    // by two clients that synced on their own (this test's and the bridge's), each a few ms
    // off at worst on loopback, more on a loaded host: so within a quarter of a second.
    const SYNC_SLACK_MS: u64 = 250;
    assert!(
        btc.through_ms + SYNC_SLACK_MS >= now_ms,
        "history through {} ms, lead at {now_ms} ms",
        btc.through_ms
    );
    let history: Vec<&wire::OrderReport> = after
        .iter()
        .filter_map(|m| match m {
            Message::OrderReport(r) if r.source == ReportSource::History => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(history.len(), 1, "{after:#?}");
    assert_eq!(
        (history[0].plan_id, history[0].status, history[0].cum_qty),
        (0x77, OrderStatus::Filled, q("0.001"))
    );
    // The report came before its symbol's OrderHistory.
    let at = |want: &dyn Fn(&Message) -> bool| after.iter().position(want).unwrap();
    assert!(
        at(&|m| matches!(m, Message::OrderReport(r) if r.source == ReportSource::History))
            < at(&|m| matches!(m, Message::OrderHistory(h) if h.symbol == 0))
    );
    // The bridge is still reading `orders` after the Leading record: an intent goes through.
    d.to_bridge
        .try_push_message(&intent(0x88, 0, wire::Side::Sell, q("0.001")))
        .unwrap();
    wait_for(rx, &mut seen, "plan 0x88 filled", |m| filled(m, 0x88)).await;

    stop_tx.send(()).unwrap();
    bridge.await.unwrap().unwrap();
}
