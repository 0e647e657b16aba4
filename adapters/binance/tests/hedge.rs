//! Hedge-mode accounts, the account's position mode and the symbols' contract status, through
//! the bridge and a real simulator over real sockets. The test creates the `orders` and
//! `exchange` rings and the symbol directory itself, as `quantum run` would: a hedge-mode
//! symbol is two legs, `BTCUSDT:LONG` and `BTCUSDT:SHORT`, each its own id.

use std::time::Duration;

use quantum_binance::bridge::{self, BridgeConfig, EXCHANGE_RING, ORDERS_RING};
use quantum_binance::{ClientConfig, PositionSide, RejectReason, Transport};
use quantum_binance_sim::symbols::ContractStatus as SimStatus;
use quantum_binance_sim::{AuditEntry, Dec, PosSide, SimConfig, SimHandle, Simulator};
use quantum_ipc::codes::{ContractStatus, FailKind, OrderStatus, ReportSource};
use quantum_ipc::wire::{self, Message, RECORD_SIZE};
use quantum_ipc::{Consumer, CountersWriter, Producer, Ring, RingSpec};

mod support;
use support::{creds, drain, intent, q, wait_for};

/// The rings and directory of a `quantum run` with these legs, a bridge attached to them.
struct Rig {
    _counters: CountersWriter,
    orders_spec: RingSpec,
    orders: Option<Ring>,
    _exchange: Ring,
    to_bridge: Option<Producer<RECORD_SIZE>>,
    rx: Consumer<RECORD_SIZE>,
    seen: Vec<Message>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    bridge: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Rig {
    async fn start(
        name: &str,
        legs: &[&str],
        sim: &SimHandle,
        tweak: impl FnOnce(&mut BridgeConfig),
    ) -> Rig {
        let instance = format!("{name}{}", std::process::id());
        let counters = CountersWriter::create(&instance, 8).unwrap();
        for (id, label) in legs.iter().enumerate() {
            counters.set_symbol(id as u16, label).unwrap();
        }
        let orders_spec = RingSpec::new(&instance, ORDERS_RING, 64);
        let orders = Ring::create(&orders_spec).unwrap();
        let exchange = Ring::create(&RingSpec::new(&instance, EXCHANGE_RING, 4096)).unwrap();
        let to_bridge = orders.producer::<RECORD_SIZE>().unwrap();
        let rx = exchange.consumer::<RECORD_SIZE>().unwrap();
        let mut client =
            ClientConfig::local(&sim.rest_url(), &sim.ws_api_url(), &sim.stream_base_url());
        client.recv_window_ms = 1000;
        let mut cfg = BridgeConfig::new(&instance, client);
        tweak(&mut cfg);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let bridge = tokio::spawn(bridge::run(cfg, creds(), async {
            let _ = stop_rx.await;
        }));
        Rig {
            _counters: counters,
            orders_spec,
            orders: Some(orders),
            _exchange: exchange,
            to_bridge: Some(to_bridge),
            rx,
            seen: Vec::new(),
            stop: Some(stop_tx),
            bridge: Some(bridge),
        }
    }

    /// The next record `want` matches, read from now on.
    async fn wait(&mut self, what: &str, want: impl Fn(&Message) -> bool) -> Message {
        wait_for(&mut self.rx, &mut self.seen, what, want).await
    }

    /// A record `want` matches, already read or read from now on.
    async fn seen_or_wait(&mut self, what: &str, want: impl Fn(&Message) -> bool) -> Message {
        match self.seen.iter().find(|m| want(m)) {
            Some(m) => *m,
            None => self.wait(what, want).await,
        }
    }

    fn send(&mut self, m: Message) {
        self.to_bridge
            .as_mut()
            .unwrap()
            .try_push_message(&m)
            .unwrap();
    }

    /// A restarted daemon: a new `orders` ring behind the same name.
    fn restart_daemon(&mut self) {
        self.to_bridge = None;
        self.orders = None;
        let orders = Ring::create(&self.orders_spec).unwrap();
        self.to_bridge = Some(orders.producer::<RECORD_SIZE>().unwrap());
        self.orders = Some(orders);
    }

    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.bridge.take().unwrap().await.unwrap().unwrap();
    }
}

fn position(seen: &Message, id: u16) -> Option<i64> {
    match seen {
        Message::PositionSnapshot(p) if p.symbol == id => Some(p.amount),
        _ => None,
    }
}

fn audit_of(sim: &SimHandle, plan: u64) -> AuditEntry {
    let cid = quantum_core::types::ClientOrderId::for_plan(quantum_core::types::PlanId(plan));
    sim.audit()
        .into_iter()
        .find(|a| a.client_order_id == cid.as_str())
        .unwrap_or_else(|| panic!("no order of plan {plan:#x} in {:?}", sim.audit()))
}

/// Both legs of a hedge-mode BTCUSDT closed by their own intents, over `transport`.
async fn hedge_legs(transport: Transport, name: &str) {
    let mut sc = SimConfig::ephemeral();
    sc.hedge_mode = true;
    let sim = Simulator::start(sc).await.unwrap();
    sim.set_position("BTCUSDT", PosSide::Long, Dec::parse("0.010").unwrap())
        .unwrap();
    sim.set_position("BTCUSDT", PosSide::Short, Dec::parse("-0.006").unwrap())
        .unwrap();
    let legs = [
        "BTCUSDT:LONG",
        "BTCUSDT:SHORT",
        "ETHUSDT:LONG",
        "ETHUSDT:SHORT",
    ];
    let mut rig = Rig::start(name, &legs, &sim, |c| c.transport = transport).await;

    // Start-up: the mode first, then every leg's position with Binance's sign; a leg
    // positionRisk does not list is flat.
    for (id, amount) in [(0, "0.010"), (1, "-0.006"), (2, "0"), (3, "0")] {
        rig.seen_or_wait("a leg's snapshot", |m| {
            position(m, id) == Some(q(amount))
                && matches!(m, Message::PositionSnapshot(p) if p.mark_price > 0)
        })
        .await;
    }
    let mode_at = rig
        .seen
        .iter()
        .position(|m| matches!(m, Message::AccountMode(a) if a.hedge && a.at_ms > 0))
        .expect("an AccountMode {hedge: true}");
    let first_snapshot = rig
        .seen
        .iter()
        .position(|m| matches!(m, Message::PositionSnapshot(_)))
        .unwrap();
    assert!(mode_at < first_snapshot, "{:#?}", rig.seen);
    assert!(!rig
        .seen
        .iter()
        .any(|m| matches!(m, Message::AccountMode(a) if !a.hedge)));
    // Every leg has its filters and its symbol's status, before the mode.
    for id in 0..4u16 {
        let f = rig
            .seen
            .iter()
            .position(|m| matches!(m, Message::SymbolFilters(f) if f.symbol == id));
        let s = rig.seen.iter().position(|m| {
            matches!(m, Message::SymbolStatus(s) if s.symbol == id && s.status == ContractStatus::Trading)
        });
        assert!(
            f.is_some() && s.is_some_and(|s| s < mode_at),
            "{id}: {:#?}",
            rig.seen
        );
    }
    // The history of each symbol is read once and complete for each of its legs.
    for id in 0..4u16 {
        rig.seen_or_wait(
            "the leg's history",
            |m| matches!(m, Message::OrderHistory(h) if h.symbol == id && h.orders == 0),
        )
        .await;
    }

    // The LONG leg's exit: SELL with positionSide LONG, no reduceOnly.
    rig.send(intent(0xa1, 0, wire::Side::Sell, q("0.004")));
    let m = rig
        .wait("the LONG exit's fill", |m| {
            matches!(m, Message::OrderReport(r) if r.plan_id == 0xa1 && r.status == OrderStatus::Filled)
        })
        .await;
    assert!(matches!(m, Message::OrderReport(r) if r.symbol == 0 && r.cum_qty == q("0.004")));
    rig.seen_or_wait("the LONG leg after the fill", |m| {
        position(m, 0) == Some(q("0.006"))
    })
    .await;
    let a = audit_of(&sim, 0xa1);
    assert_eq!(
        (
            a.side.as_str(),
            a.position_side.as_str(),
            a.reduce_only,
            a.qty.as_str()
        ),
        ("SELL", "LONG", false, "0.004"),
        "{a:?}"
    );

    // The SHORT leg's exit: BUY with positionSide SHORT, no reduceOnly.
    rig.send(intent(0xa2, 1, wire::Side::Buy, q("0.002")));
    let m = rig
        .wait("the SHORT exit's fill", |m| {
            matches!(m, Message::OrderReport(r) if r.plan_id == 0xa2 && r.status == OrderStatus::Filled)
        })
        .await;
    assert!(matches!(m, Message::OrderReport(r) if r.symbol == 1 && r.side == wire::Side::Buy));
    rig.seen_or_wait("the SHORT leg after the fill", |m| {
        position(m, 1) == Some(q("-0.004"))
    })
    .await;
    let a = audit_of(&sim, 0xa2);
    assert_eq!(
        (a.side.as_str(), a.position_side.as_str(), a.reduce_only),
        ("BUY", "SHORT", false),
        "{a:?}"
    );
    // Every report of each order (answer, stream) is on its own leg.
    rig.seen_or_wait("the SHORT exit on the stream", |m| {
        matches!(m, Message::OrderReport(r) if r.plan_id == 0xa2 && r.source == ReportSource::Stream && r.status == OrderStatus::Filled)
    })
    .await;
    drain(&mut rig.rx, &mut rig.seen, Duration::from_millis(300)).await;
    for m in &rig.seen {
        if let Message::OrderReport(r) = m {
            let leg = if r.plan_id == 0xa1 { 0 } else { 1 };
            assert_eq!(r.symbol, leg, "{r:?}");
        }
    }
    // The stream moved only the leg each order closed.
    assert!(!rig
        .seen
        .iter()
        .any(|m| position(m, 0).is_some_and(|a| a < 0) || position(m, 1).is_some_and(|a| a > 0)));

    // An exit on the side that would add to its leg is never sent.
    let before = sim.audit().len();
    rig.send(intent(0xa3, 0, wire::Side::Buy, q("0.001")));
    let m = rig
        .wait(
            "the refusal",
            |m| matches!(m, Message::OrderFailed(f) if f.plan_id == 0xa3),
        )
        .await;
    assert!(
        matches!(m, Message::OrderFailed(f) if f.kind == FailKind::Rejected && f.symbol == 0 && f.reason == RejectReason::LocalPositionSide.code()),
        "{m:?}"
    );
    assert!(!rig
        .seen
        .iter()
        .any(|m| matches!(m, Message::OrderSent(s) if s.plan_id == 0xa3)));
    assert_eq!(sim.audit().len(), before);

    // An order of ours placed elsewhere (the stream reports it), then offered as an intent to
    // look up first (as after a restart): found by client id (or its stream confirmation),
    // reported on the leg its positionSide names, never sent.
    let client = quantum_binance::FuturesClient::connect(
        ClientConfig::local(&sim.rest_url(), &sim.ws_api_url(), &sim.stream_base_url()),
        creds(),
    )
    .await
    .unwrap();
    let cid = quantum_core::types::ClientOrderId::for_plan(quantum_core::types::PlanId(0xa4));
    client
        .place_market_close(
            transport,
            "BTCUSDT",
            PositionSide::Short,
            quantum_binance::Side::Buy,
            quantum_core::fixed::Qty::from_units(q("0.001")),
            cid.as_str(),
        )
        .await
        .unwrap();
    let mut again = intent(0xa4, 1, wire::Side::Buy, q("0.001"));
    if let Message::OrderIntent(i) = &mut again {
        i.flags |= wire::INTENT_FLAG_LOOKUP_FIRST;
    }
    rig.seen_or_wait("the stream's report of it", |m| {
        matches!(m, Message::OrderReport(r) if r.plan_id == 0xa4 && r.status == OrderStatus::Filled)
    })
    .await;
    drain(&mut rig.rx, &mut rig.seen, Duration::from_millis(200)).await;
    rig.send(again);
    let m = rig
        .wait("the lookup's answer", |m| {
            matches!(m, Message::OrderReport(r) if r.plan_id == 0xa4 && matches!(r.source, ReportSource::Lookup | ReportSource::Stream))
        })
        .await;
    assert!(
        matches!(m, Message::OrderReport(r) if r.symbol == 1 && r.status == OrderStatus::Filled),
        "{m:?}"
    );
    assert!(rig
        .seen
        .iter()
        .all(|m| !matches!(m, Message::OrderReport(r) if r.plan_id == 0xa4 && r.symbol != 1)));
    assert_eq!(audit_of(&sim, 0xa4).position_side, "SHORT");
    assert!(!rig
        .seen
        .iter()
        .any(|m| matches!(m, Message::OrderSent(s) if s.plan_id == 0xa4)));

    // A restarted daemon reads the history again: each order on its leg, then every leg's
    // OrderHistory.
    drain(&mut rig.rx, &mut rig.seen, Duration::from_millis(200)).await;
    let mark = rig.seen.len();
    rig.restart_daemon();
    for id in 0..4u16 {
        rig.wait(
            "the leg's history again",
            |m| matches!(m, Message::OrderHistory(h) if h.symbol == id),
        )
        .await;
    }
    let mut reports = Vec::new();
    let mut counts = Vec::new();
    for m in &rig.seen[mark..] {
        match m {
            Message::OrderReport(r) if r.source == ReportSource::History => {
                reports.push((r.plan_id, r.symbol))
            }
            Message::OrderHistory(h) => counts.push((h.symbol, h.orders)),
            _ => {}
        }
    }
    reports.sort();
    assert_eq!(reports, [(0xa1, 0), (0xa2, 1), (0xa4, 1)]);
    assert_eq!(counts, [(0, 1), (1, 2), (2, 0), (3, 0)]);

    // A settlement (the exchange's own orders) closes each leg: each snapshot on its leg.
    sim.set_symbol_status("BTCUSDT", SimStatus::Settling, true)
        .unwrap();
    for id in [0, 1] {
        rig.seen_or_wait("the leg settled", |m| position(m, id) == Some(0))
            .await;
        rig.seen_or_wait("the leg not trading", |m| {
            matches!(m, Message::SymbolStatus(s) if s.symbol == id && s.status == ContractStatus::Settling)
        })
        .await;
    }
    assert!(sim.positions().iter().all(|p| q(&p.position_amt) == 0));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hedge_legs_close_with_their_position_side_over_rest() {
    hedge_legs(Transport::Rest, "binhedgerest").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hedge_legs_close_with_their_position_side_over_the_ws_api() {
    hedge_legs(Transport::WsApi, "binhedgews").await;
}

/// One-way mode: reduce-only `BOTH` orders as before; the mode is read again at every
/// re-attach and user stream reconnect, each time before the positions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_exits_are_reduce_only_and_the_mode_is_read_again_at_each_reconnect() {
    let mut sc = SimConfig::ephemeral();
    // The listenKey expires soon after each keepalive-less start: the user stream reconnects.
    sc.listen_key_ttl = Duration::from_secs(5);
    let sim = Simulator::start(sc).await.unwrap();
    sim.set_position("BTCUSDT", PosSide::Both, Dec::parse("0.010").unwrap())
        .unwrap();
    let mut rig = Rig::start("binoneway", &["BTCUSDT"], &sim, |c| {
        c.keepalive_interval = Duration::from_secs(3600);
        c.poll_interval = Duration::from_secs(3600);
    })
    .await;
    rig.wait("the snapshot", |m| position(m, 0) == Some(q("0.01")))
        .await;
    assert!(matches!(
        rig.seen
            .iter()
            .find(|m| matches!(m, Message::AccountMode(_) | Message::PositionSnapshot(_))),
        Some(Message::AccountMode(a)) if !a.hedge
    ));

    rig.send(intent(0xb1, 0, wire::Side::Sell, q("0.004")));
    rig.wait("the fill", |m| {
        matches!(m, Message::OrderReport(r) if r.plan_id == 0xb1 && r.status == OrderStatus::Filled && r.symbol == 0)
    })
    .await;
    let a = audit_of(&sim, 0xb1);
    assert_eq!(
        (a.side.as_str(), a.position_side.as_str(), a.reduce_only),
        ("SELL", "BOTH", true),
        "{a:?}"
    );

    rig.seen_or_wait("the fill's snapshot", |m| {
        position(m, 0) == Some(q("0.006"))
    })
    .await;
    drain(&mut rig.rx, &mut rig.seen, Duration::from_millis(100)).await;
    // The listenKey expires: the stream reconnects, the mode is read again, then positions.
    let mark = rig.seen.len();
    rig.wait(
        "the mode after the stream reconnected",
        |m| matches!(m, Message::AccountMode(a) if !a.hedge),
    )
    .await;
    rig.wait("positions after it", |m| position(m, 0) == Some(q("0.006")))
        .await;
    assert_eq!(
        rig.seen[mark..]
            .iter()
            .find(|m| matches!(m, Message::AccountMode(_) | Message::PositionSnapshot(_)))
            .map(|m| matches!(m, Message::AccountMode(_))),
        Some(true),
        "{:#?}",
        &rig.seen[mark..]
    );

    // A restarted daemon gets filters, statuses, the mode, then positions, again.
    drain(&mut rig.rx, &mut rig.seen, Duration::from_millis(200)).await;
    let mark = rig.seen.len();
    rig.restart_daemon();
    rig.wait(
        "the history for the restarted daemon",
        |m| matches!(m, Message::OrderHistory(h) if h.symbol == 0),
    )
    .await;
    let again = &rig.seen[mark..];
    let at = |want: fn(&Message) -> bool| again.iter().position(want);
    let filters = at(|m| matches!(m, Message::SymbolFilters(_))).expect("filters");
    let status =
        at(|m| matches!(m, Message::SymbolStatus(s) if s.status == ContractStatus::Trading))
            .expect("status");
    let mode = at(|m| matches!(m, Message::AccountMode(a) if !a.hedge)).expect("mode");
    let snapshot = at(|m| matches!(m, Message::PositionSnapshot(_))).expect("snapshot");
    assert!(
        filters < status && status < mode && mode < snapshot,
        "{again:#?}"
    );
    rig.stop().await;
}

/// A symbol not trading at start is told so at start; a change on `!contractInfo` reaches the
/// core at once (the exchangeInfo refresh is an hour away here), for every leg.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symbol_status_at_start_and_on_the_contract_info_stream() {
    let mut sc = SimConfig::ephemeral();
    sc.hedge_mode = true;
    let sim = Simulator::start(sc).await.unwrap();
    sim.set_symbol_status("ETHUSDT", SimStatus::PreSettle, false)
        .unwrap();
    let legs = [
        "BTCUSDT:LONG",
        "BTCUSDT:SHORT",
        "ETHUSDT:LONG",
        "ETHUSDT:SHORT",
    ];
    let mut rig = Rig::start("binstatus", &legs, &sim, |c| {
        c.exchange_info_interval = Duration::from_secs(3600);
    })
    .await;
    for (id, status) in [
        (0u16, ContractStatus::Trading),
        (1, ContractStatus::Trading),
        (2, ContractStatus::PreSettle),
        (3, ContractStatus::PreSettle),
    ] {
        rig.wait(
            "the status at start",
            |m| matches!(m, Message::SymbolStatus(s) if s.symbol == id && s.status == status),
        )
        .await;
    }
    // Started: the contract info stream is connected once the positions are in.
    rig.wait("a snapshot", |m| position(m, 1).is_some()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    sim.set_symbol_status("BTCUSDT", SimStatus::Delivering, false)
        .unwrap();
    for id in [0u16, 1] {
        rig.wait("the change", |m| {
            matches!(m, Message::SymbolStatus(s) if s.symbol == id && s.status == ContractStatus::Delivering && s.at_ms > 0)
        })
        .await;
    }
    sim.set_symbol_status("BTCUSDT", SimStatus::Trading, false)
        .unwrap();
    for id in [0u16, 1] {
        rig.wait("trading again", |m| {
            matches!(m, Message::SymbolStatus(s) if s.symbol == id && s.status == ContractStatus::Trading)
        })
        .await;
    }
    // ETH did not change: its status went out once.
    drain(&mut rig.rx, &mut rig.seen, Duration::from_millis(300)).await;
    let eth = rig
        .seen
        .iter()
        .filter(|m| matches!(m, Message::SymbolStatus(s) if s.symbol == 2))
        .count();
    assert_eq!(eth, 1, "{:#?}", rig.seen);
    rig.stop().await;
}

/// Without the contract info stream (its URL a closed port here), the periodic exchangeInfo
/// read (every second here) still brings a status change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_stream_the_exchange_info_refresh_reads_statuses_again() {
    let sim = Simulator::start(SimConfig::ephemeral()).await.unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("ws://{}/market", closed.local_addr().unwrap());
    drop(closed);
    let mut rig = Rig::start("binrefresh", &["BTCUSDT"], &sim, |c| {
        c.exchange_info_interval = Duration::from_secs(1);
        c.client.endpoints.market_stream = dead;
    })
    .await;
    rig.wait(
        "trading at start",
        |m| matches!(m, Message::SymbolStatus(s) if s.status == ContractStatus::Trading),
    )
    .await;
    sim.set_symbol_status("BTCUSDT", SimStatus::Close, false)
        .unwrap();
    rig.wait("closed", |m| {
        matches!(m, Message::SymbolStatus(s) if s.symbol == 0 && s.status == ContractStatus::Close)
    })
    .await;
    // Told once, not at every refresh.
    drain(&mut rig.rx, &mut rig.seen, Duration::from_millis(2500)).await;
    let closed = rig
        .seen
        .iter()
        .filter(|m| matches!(m, Message::SymbolStatus(s) if s.status == ContractStatus::Close))
        .count();
    assert_eq!(closed, 1, "{:#?}", rig.seen);
    rig.stop().await;
}
