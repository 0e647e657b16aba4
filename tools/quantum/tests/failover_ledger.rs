//! The shared ledger of failover mode with real processes: a real `quantum run` in failover
//! mode, `quantum bridge redis` holding the lease on a private redis-server, and the test as
//! the exchange adapter (the producer of the `exchange` ring, as the Binance bridge is).
//!
//! After the lead, an order of ours the old leader placed and the core does not know comes in
//! the exchange's history with a fill: the bridge books that fill into the shared ledger. Once
//! the symbol's history is complete the core asks for its ledger (`LedgerWanted`) and the
//! bridge answers with the shared ledger's value (`LedgerBase`): the core's ledger becomes it.
//! Then a fill of an order this core placed moves the shared ledger by the same sign as the
//! core's own ledger, to the same text.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{read_n, wait_for, Events, Instance};
use quantum_core::engine::History;
use quantum_core::event::Event;
use quantum_core::orders::{OrderInput, Report};
use quantum_core::wire::input_out;
use quantum_core::{Input, PlanId, Price, Qty, Side, SymbolId};
use quantum_ipc::codes::{OrderStatus, ReportSource};
use quantum_ipc::liveness::unix_ms;
use quantum_ipc::wire::{Message, RECORD_SIZE};
use quantum_ipc::{Producer, Ring, RingSpec};
use quantum_local_redis::RedisServer;
use quantum_redis::{legacy, state};
use redis::Commands;

/// `[failover]` with short settings, so the lead comes within about two seconds.
const FAILOVER: [(&str, &str); 6] = [
    ("QUANTUM_FAILOVER_ENABLED", "true"),
    ("QUANTUM_FAILOVER_TTL_MS", "1500"),
    ("QUANTUM_FAILOVER_RENEW_MS", "300"),
    ("QUANTUM_FAILOVER_DRIFT_MS", "100"),
    ("QUANTUM_FAILOVER_RECV_WINDOW_MS", "500"),
    ("QUANTUM_FAILOVER_CLOCK_ERROR_MS", "100"),
];

const BTC: SymbolId = SymbolId(0);
const HOST: &str = "ha";

fn q(s: &str) -> Qty {
    s.parse().expect("a quantity")
}

/// The Redis bridge, its stderr kept.
struct Bridge {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Bridge {
    fn start(inst: &Instance, url: &str) -> Bridge {
        let mut child = inst
            .command(
                &[
                    "bridge",
                    "redis",
                    "--instance",
                    &inst.name,
                    "--redis",
                    url,
                    "--host",
                    HOST,
                    "--stats-ms",
                    "200",
                ],
                &[],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn quantum bridge redis");
        let err = child.stderr.take().expect("stderr");
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let l = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[redis-bridge] {line}");
                l.lock().unwrap().push(line);
            }
        });
        Bridge { child, log }
    }

    fn lines(&self, needle: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The next event `f` picks (others are skipped); panics after `secs`.
fn wait_event<T>(
    ev: &mut Events,
    secs: u64,
    what: &str,
    mut f: impl FnMut(&Event) -> Option<T>,
) -> T {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        let left = end
            .saturating_duration_since(Instant::now())
            .as_secs()
            .max(1);
        assert!(Instant::now() < end, "timed out waiting for {what}");
        if let Some(t) = f(&ev.next(left)) {
            return t;
        }
    }
}

fn push(p: &mut Producer<RECORD_SIZE>, i: &Input) {
    let m = input_out(i).expect("a wire form");
    let end = Instant::now() + Duration::from_secs(10);
    while p.try_push_message(&m).is_err() {
        assert!(Instant::now() < end, "the exchange ring stays full");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn report(plan: u64, side: Side, status: OrderStatus, cum: Qty, source: ReportSource) -> Input {
    Input::Order(OrderInput::Report(Report {
        plan: PlanId(plan),
        symbol: BTC,
        side,
        status,
        cum_qty: cum,
        price: "104000".parse::<Price>().unwrap(),
        order_id: 4000 + plan,
        time_ms: unix_ms(),
        orig_qty: cum,
        source,
    }))
}

#[test]
fn a_new_leader_starts_from_the_shared_ledger_with_every_fill_of_ours_booked() {
    let server = RedisServer::start();
    let mut r = server.conn();
    let mut inst = Instance::new("foledger");
    let lease = inst.name.clone();
    let position = legacy::position_key("BTCUSDT");
    // The shared ledger as the old leader left it (its own value: the ledger hash in step).
    let _: () = r.hset(&position, legacy::LEDGER_FIELD, "0.25").unwrap();
    let _: () = r
        .hset(state::ledger_key(&lease), "BTCUSDT", "0.25")
        .unwrap();

    inst.start_daemon_fed_by_hand(&[], &FAILOVER);
    let mut events = inst.events();
    let mut orders = inst.consumer("orders");
    let mut exchange = Ring::open(&RingSpec::new(&inst.name, "exchange", 0))
        .expect("the exchange ring")
        .producer::<RECORD_SIZE>()
        .expect("the exchange ring's producer");
    let bridge = Bridge::start(&inst, &server.url());

    let (epoch, since_ms) = wait_event(&mut events, 30, "the lead", |e| match e {
        Event::Leading {
            epoch, since_ms, ..
        } => Some((*epoch, *since_ms)),
        _ => None,
    });
    assert!(epoch >= 1);

    // The exchange's history of BTCUSDT: an order of ours the old leader placed, filled 0.1
    // (a sell), that the old leader's bridge never booked; then the end of the history.
    push(
        &mut exchange,
        &report(
            0xe1,
            Side::Sell,
            OrderStatus::Filled,
            q("0.1"),
            ReportSource::History,
        ),
    );
    let recovered = wait_event(&mut events, 10, "the recovered order", |e| match e {
        Event::OrderRecovered { report, .. } => Some(*report),
        _ => None,
    });
    assert_eq!(recovered.plan, PlanId(0xe1));
    push(
        &mut exchange,
        &Input::History(History {
            symbol: BTC,
            orders: 1,
            since_ms,
            through_ms: unix_ms(),
        }),
    );
    let wanted = wait_event(&mut events, 10, "LedgerWanted", |e| match e {
        Event::LedgerWanted { symbol, epoch, .. } => Some((*symbol, *epoch)),
        _ => None,
    });
    assert_eq!(wanted, (BTC, epoch));
    let base = wait_event(&mut events, 10, "the ledger set by the base", |e| match e {
        Event::LedgerSet { symbol, amount, .. } if *symbol == BTC => Some(*amount),
        _ => None,
    });
    assert_eq!(base, q("0.15"), "0.25 moved by the recovered sell of 0.1");
    wait_for(10, "the core's ledger gauge at 0.15", || {
        inst.counter("ledger.BTCUSDT") as i64 == q("0.15").units()
    });
    let marker: String = r
        .get(state::booked_key(&lease, PlanId(0xe1)))
        .expect("the booked marker");
    assert_eq!(marker, "0.1");
    let amount: String = r.hget(&position, legacy::LEDGER_FIELD).unwrap();
    assert_eq!(amount, "0.15");
    let said = bridge.lines("ledger base");
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].contains("symbol=BTCUSDT")
            && said[0].contains("amount=0.15")
            && said[0].contains(&format!("epoch={epoch}")),
        "{said:?}"
    );
    // The bridge's own values never went to the core as an operator's sync (nor offered to
    // the fresh core: its ledger comes from the base).
    let syncs = bridge.lines("ledger sync from Redis handed to the core");
    assert!(syncs.is_empty(), "{syncs:?}");

    // A plan of this core, ordered and filled: the fill moves the shared ledger as it moves
    // the core's ledger.
    inst.inject_ok(
        "{\"cmd\":\"position_mode\",\"hedge\":false}\n{\"cmd\":\"position\",\"symbol\":\"BTCUSDT\",\"amount\":\"0.15\",\"mark\":\"104000\"}\n",
    );
    inst.inject_ok(
        "{\"plan_id\":\"00000000000000f1\",\"symbol\":\"BTCUSDT\",\"decision\":\"EXECUTE\",\"action\":\"PARTIAL_50\"}\n",
    );
    let intent = loop {
        match read_n(&mut orders, 1, 20).remove(0) {
            Message::OrderIntent(i) => break i,
            _ => continue, // the history request of the lead
        }
    };
    assert_eq!(intent.plan_id, 0xf1);
    let qty = Qty::from_units(intent.qty);
    push(
        &mut exchange,
        &report(
            0xf1,
            intent.side,
            OrderStatus::Filled,
            qty,
            ReportSource::Stream,
        ),
    );
    let fill = wait_event(&mut events, 10, "the fill", |e| match e {
        Event::Fill(f) if f.plan == PlanId(0xf1) => Some(*f),
        _ => None,
    });
    assert_eq!(fill.side, intent.side);
    assert_eq!(
        fill.ledger_after.units(),
        q("0.15").units() + fill.side.sign() * fill.cum_qty.units(),
        "a fill moves the core's ledger by the side's sign"
    );
    wait_for(10, "the fill booked into the shared ledger", || {
        r.hget::<_, _, Option<String>>(&position, legacy::LEDGER_FIELD)
            .unwrap()
            .as_deref()
            == Some(fill.ledger_after.to_string().as_str())
    });
    let stats = format!("quantum:bridge:{lease}@{HOST}:stats");
    wait_for(10, "the bridge's counts", || {
        let h: std::collections::HashMap<String, String> = r.hgetall(&stats).unwrap();
        h.get("fills_booked").map(String::as_str) == Some("2")
            && h.get("ledger_bases").map(String::as_str) == Some("1")
    });
}
