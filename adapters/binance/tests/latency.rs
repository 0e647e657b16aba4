//! The exchange leg timed live, over REST and over the WebSocket API: the bridge (rings made
//! by the test as `quantum run` would) sends intents to the simulator over real sockets; its
//! interval log, read back with HdrHistogram's reader, holds one `send`, `ack` and `intent`
//! sample per placed intent and one `fill` per filled order, and its gauges are readable from
//! `quantum.<instance>.latency-binance` while it runs. A placement whose outcome was unknown
//! (-1007 after placing, found by client id) still counts once; a refusal counts in `send`
//! only; an intent not sent counts nowhere.

use std::time::{Duration, Instant};

use quantum_binance::bridge::latency::{self, Leg};
use quantum_binance::bridge::{self, BridgeConfig, LatencyConfig, EXCHANGE_RING, ORDERS_RING};
use quantum_binance::{ClientConfig, Transport};
use quantum_binance_sim::{Dec, Faults, PosSide, SimConfig, Simulator};
use quantum_ipc::codes::{FailKind, OrderStatus};
use quantum_ipc::latency::read::intervals;
use quantum_ipc::latency::{gauges, BINANCE_SEGMENT};
use quantum_ipc::wire::{self, Limits, Message, RECORD_SIZE};
use quantum_ipc::{Consumer, CountersReader, CountersWriter, Ring, RingSpec};

mod support;
use support::{creds, intent, q};

/// Reads `exchange` until every plan of `plans` has a record `done` accepts, or panics after
/// 20 s.
async fn wait_all(
    rx: &mut Consumer<RECORD_SIZE>,
    seen: &mut Vec<Message>,
    plans: &[u64],
    what: &str,
    done: impl Fn(&Message, u64) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        while let Some(m) = rx.try_pop_message(&Limits::default()) {
            seen.push(m.unwrap());
        }
        if plans.iter().all(|p| seen.iter().any(|m| done(m, *p))) {
            return;
        }
        assert!(Instant::now() < deadline, "not every {what}; saw {seen:#?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn filled(m: &Message, plan: u64) -> bool {
    matches!(m, Message::OrderReport(r) if r.plan_id == plan && r.status == OrderStatus::Filled)
}

/// Samples per series in the interval log.
fn counts(log: &std::path::Path, t: Transport) -> [u64; 4] {
    let got = intervals(&std::fs::read(log).unwrap()).unwrap();
    Leg::ALL.map(|leg| {
        let tag = leg.series(t);
        got.iter()
            .filter(|i| i.tag == tag)
            .map(|i| i.hist.len())
            .sum()
    })
}

async fn exchange_leg(t: Transport) {
    let instance = format!("binlat{}{}", t.name(), std::process::id());
    let dir = std::env::temp_dir().join(format!("qpc-{instance}"));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("binance.hlog");
    let counters = CountersWriter::create(&instance, 8).unwrap();
    counters.set_symbol(0, "BTCUSDT").unwrap();
    counters.set_symbol(1, "ETHUSDT").unwrap();
    let orders = Ring::create(&RingSpec::new(&instance, ORDERS_RING, 256)).unwrap();
    let exchange = Ring::create(&RingSpec::new(&instance, EXCHANGE_RING, 4096)).unwrap();
    let mut to_bridge = orders.producer::<RECORD_SIZE>().unwrap();
    let mut rx = exchange.consumer::<RECORD_SIZE>().unwrap();

    let sim = Simulator::start(SimConfig::ephemeral()).await.unwrap();
    sim.set_position("BTCUSDT", PosSide::Both, Dec::parse("1").unwrap())
        .unwrap();
    let mut client =
        ClientConfig::local(&sim.rest_url(), &sim.ws_api_url(), &sim.stream_base_url());
    client.recv_window_ms = 1000;
    let mut cfg = BridgeConfig::new(&instance, client);
    cfg.transport = t;
    cfg.latency = LatencyConfig {
        hdr_log: Some(log.clone()),
        interval: Duration::from_millis(200),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let bridge = tokio::spawn(bridge::run(cfg, creds(), async {
        let _ = stop_rx.await;
    }));
    let mut seen = Vec::new();
    wait_all(
        &mut rx,
        &mut seen,
        &[0],
        "initial snapshot",
        |m, _| matches!(m, Message::PositionSnapshot(p) if p.symbol == 0),
    )
    .await;

    // N plain placements, answered FILLED.
    const N: u64 = 20;
    let plain: Vec<u64> = (0x100..0x100 + N).collect();
    for p in &plain {
        to_bridge
            .try_push_message(&intent(*p, 0, wire::Side::Sell, q("0.001")))
            .unwrap();
    }
    wait_all(&mut rx, &mut seen, &plain, "fill", filled).await;

    // While it runs, the segment publishes every series of this transport; an interval with
    // the samples is seen before the next one (empty) replaces it.
    let reader = CountersReader::open_named(&instance, BINANCE_SEGMENT).unwrap();
    assert!(reader.owner_alive());
    let names = latency::series(t);
    let deadline = Instant::now() + Duration::from_secs(10);
    let published = loop {
        let r = gauges::read(&reader);
        let p50 = |s: &str| {
            r.iter()
                .find(|x| x.series == s)
                .and_then(|x| x.values.iter().find(|(p, _)| *p == "p50"))
                .map_or(0, |(_, v)| *v)
        };
        if names.iter().all(|s| p50(s) > 0) {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "the gauges never showed every series: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        published.iter().map(|r| &r.series).collect::<Vec<_>>(),
        names.iter().collect::<Vec<_>>()
    );

    // Unknown outcomes: -1007 after placing, each found by client id: one sample each.
    const M: u64 = 3;
    sim.set_faults(Faults {
        timeout_1007_rate: 1.0,
        ..Faults::default()
    });
    let unknown: Vec<u64> = (0x200..0x200 + M).collect();
    for p in &unknown {
        to_bridge
            .try_push_message(&intent(*p, 0, wire::Side::Sell, q("0.001")))
            .unwrap();
    }
    wait_all(&mut rx, &mut seen, &unknown, "found fill", filled).await;
    assert!(
        unknown.iter().all(|p| seen.iter().any(
            |m| matches!(m, Message::OrderFailed(f) if f.plan_id == *p && f.kind == FailKind::Unknown)
        )),
        "every outcome was unknown first: {seen:#?}"
    );
    sim.set_faults(Faults::default());

    // A refusal (ETH is flat: reduce-only -2022) is sent and never acknowledged; an intent
    // for a symbol the directory lacks is never sent.
    to_bridge
        .try_push_message(&intent(0x300, 1, wire::Side::Sell, q("0.001")))
        .unwrap();
    to_bridge
        .try_push_message(&intent(0x301, 7, wire::Side::Sell, q("0.001")))
        .unwrap();
    wait_all(
        &mut rx,
        &mut seen,
        &[0x300, 0x301],
        "failure",
        |m, p| matches!(m, Message::OrderFailed(f) if f.plan_id == p),
    )
    .await;

    stop_tx.send(()).unwrap();
    bridge.await.unwrap().unwrap();
    let placed = N + M;
    let [send, ack, fill, intent_ack] = counts(&log, t);
    assert_eq!(
        (send, ack, intent_ack),
        (placed + 1, placed, placed),
        "{}",
        t.name()
    );
    assert_eq!(fill, placed, "every order was answered FILLED");
    assert_eq!(
        sim.audit().len() as u64,
        placed,
        "each placed once: {:?}",
        sim.audit()
    );
    for s in quantum_ipc::list_segments(Some(&instance)).unwrap() {
        let _ = quantum_ipc::remove_segment(&s.os_id);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_orders_are_timed_once_each_from_the_ring_to_their_fill() {
    exchange_leg(Transport::Rest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_api_orders_are_timed_once_each_from_the_ring_to_their_fill() {
    exchange_leg(Transport::WsApi).await;
}
