//! The bridge process (`quantum_redis::bridge::run`) with a hedge-mode symbol, against a real
//! redis-server and a daemon stand-in made of the instance's real shared-memory segments (the
//! counters segment and its symbol directory, the `plans` ring the bridge pushes on, the
//! `results` broadcast ring it reads): an operator's `HSET … ledger_amount_short` reaches the
//! core as a ledger set of the SHORT leg's id; the core's ledger of a leg lands in that leg's
//! field and never comes back as a command; a result entry names the symbol and the side.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use quantum_core::engine::ExternalPermit;
use quantum_core::event::{Event, RefusedEvent};
use quantum_core::wire::input;
use quantum_core::{Command, Decision, Input, Outcome, PlanId, PlanResult, Qty, SymbolId};
use quantum_ipc::broadcast::{Broadcast, Writer};
use quantum_ipc::codes::RefuseReason;
use quantum_ipc::contract;
use quantum_ipc::wire::{Kind, Limits, RECORD_SIZE};
use quantum_ipc::{remove_segment, Consumer, CountersWriter, Ring, RingSpec};
use quantum_local_redis::RedisServer;
use quantum_redis::lease::{self, Settings};
use quantum_redis::legacy::{self, RESULT_STREAM};
use quantum_redis::state;
use quantum_redis::BridgeConfig;
use redis::streams::StreamRangeReply;
use redis::Commands;

mod support;
use support::{operator_hset, publish_failover, q};

const LEGS: [&str; 3] = ["BTCUSDT", "ETHUSDT:LONG", "ETHUSDT:SHORT"];

/// The daemon's side of the instance's segments, removed on drop.
struct Daemon {
    instance: String,
    _counters: CountersWriter,
    _results: Broadcast,
    writer: Writer,
    _plans: Ring,
    consumer: Consumer<RECORD_SIZE>,
}

impl Daemon {
    /// The segments of a daemon of `instance`; with `failover`, its failover gauges.
    fn start(instance: &str, failover: Option<&Settings>) -> Daemon {
        let counters = CountersWriter::create(instance, 64).expect("counters segment");
        for (id, label) in LEGS.iter().enumerate() {
            counters.set_symbol(id as u16, label).unwrap();
        }
        if let Some(s) = failover {
            publish_failover(&counters, s);
        }
        let results = Broadcast::create(&RingSpec::new(instance, contract::RESULTS.name, 1024), 0)
            .expect("results ring");
        let writer = results.writer().expect("results writer");
        let plans =
            Ring::create(&RingSpec::new(instance, contract::PLANS.name, 1024)).expect("plans ring");
        let consumer = plans.consumer().expect("plans consumer");
        Daemon {
            instance: instance.to_owned(),
            _counters: counters,
            _results: results,
            writer,
            _plans: plans,
            consumer,
        }
    }

    fn publish(&mut self, e: Event) {
        self.writer.publish(&e.to_message().encode());
    }

    /// The inputs the bridge pushed, read for `within`; the probe is answered as the core
    /// answers it (refused: a permit of no plan it knows).
    fn inputs(&mut self, within: Duration) -> Vec<Input> {
        let limits = Limits::new(LEGS.len() as u16);
        let mut got = Vec::new();
        let end = Instant::now() + within;
        while Instant::now() < end {
            self.writer.heartbeat();
            self.consumer.heartbeat();
            let Some(m) = self.consumer.try_pop_message(&limits) else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            let i = input(&m.expect("a valid record"), 0, 15_000).expect("an input");
            if let Input::Permit(ExternalPermit::Gov { plan, .. }) = i {
                self.publish(Event::Refused(RefusedEvent {
                    ring: contract::PLANS.index,
                    kind: Kind::GovPermit.tag(),
                    symbol: SymbolId(0),
                    plan,
                    reason: RefuseReason::NotWaiting,
                    at_ms: 1,
                }));
                continue;
            }
            got.push(i);
        }
        got
    }

    /// The core's `LedgerSet` of ETHUSDT's leg `leg` to `amount`, and the bridge's write of it
    /// in `field` of the symbol's hash, signed as the core keeps it (within 3 s).
    fn core_sets_ledger(
        &mut self,
        c: &mut redis::Connection,
        leg: u16,
        amount: &str,
        at_ms: u64,
        field: &str,
    ) {
        self.publish(Event::LedgerSet {
            symbol: SymbolId(leg),
            amount: q(amount),
            at_ms,
        });
        assert!(
            self.wait(Duration::from_secs(3), || eth(c)
                .get(field)
                .is_some_and(|v| v == amount)),
            "{field} is not {amount}: {:?}",
            eth(c)
        );
    }

    /// Keeps the segments alive (heartbeats) while `cond` is false, for at most `within`.
    fn wait(&mut self, within: Duration, mut cond: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if cond() {
                return true;
            }
            let unexpected = self.inputs(Duration::from_millis(20));
            assert!(unexpected.is_empty(), "unexpected inputs: {unexpected:?}");
        }
        cond()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        for name in ["counters", "results", "plans", "latency-redis", "lease"] {
            let _ = remove_segment(&format!("quantum.{}.{name}", self.instance));
        }
    }
}

/// The bridge (`quantum_redis::bridge::run`) on a runtime of its own, as its binary runs it.
struct Bridge {
    rt: tokio::runtime::Runtime,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<quantum_redis::Result<()>>,
}

impl Bridge {
    fn start(cfg: BridgeConfig) -> Bridge {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = rt.spawn(quantum_redis::bridge::run(cfg, async {
            let _ = stopped.await;
        }));
        Bridge { rt, stop, task }
    }

    /// Asks it to stop; it must end without an error within `within`.
    fn stop(self, within: Duration) {
        let _ = self.stop.send(());
        self.rt.block_on(async {
            tokio::time::timeout(within, self.task)
                .await
                .expect("the bridge stops")
                .unwrap()
                .unwrap();
        });
    }
}

fn eth(c: &mut redis::Connection) -> BTreeMap<String, String> {
    c.hgetall(legacy::position_key("ETHUSDT")).unwrap()
}

fn ledger_sets(inputs: &[Input]) -> Vec<(SymbolId, Qty)> {
    inputs
        .iter()
        .filter_map(|i| match i {
            Input::Command(Command::SetLedger { symbol, amount }) => Some((*symbol, *amount)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_hedge_symbols_legs_sync_through_their_own_fields() {
    let instance = format!("hedge-s-{}", std::process::id());
    let server = RedisServer::start();
    let mut c = server.conn();
    let mut d = Daemon::start(&instance, None);
    let mut cfg = BridgeConfig::new(&instance, &server.url());
    cfg.ledger_poll = Duration::from_millis(200);
    cfg.order_id_wait = Duration::from_millis(100);
    let bridge = Bridge::start(cfg);

    // Attached: the probe answered; a first start offers nothing (no field is set).
    let first = d.inputs(Duration::from_millis(1500));
    assert_eq!(ledger_sets(&first), [], "{first:?}");

    // The operator syncs the short side with an unsigned amount: a ledger set of the SHORT
    // leg (id 2) with the negative amount, and of no other leg.
    operator_hset(&mut c, "ETHUSDT", "ledger_amount_short", "0.2");
    let got = d.inputs(Duration::from_millis(1000));
    assert_eq!(ledger_sets(&got), [(SymbolId(2), q("-0.2"))], "{got:?}");

    // The core applies it; the bridge writes it back in the short side's field, signed.
    d.core_sets_ledger(&mut c, 2, "-0.2", 1_769_301_008_977, "ledger_amount_short");

    // The core's own ledger of the LONG leg (a `ctl inject` sync): written in
    // `ledger_amount_long`, never back as a command (through notifications and re-reads).
    d.core_sets_ledger(&mut c, 1, "0.5", 1_769_301_008_978, "ledger_amount_long");
    let after = d.inputs(Duration::from_millis(800));
    assert_eq!(ledger_sets(&after), [], "{after:?}");
    assert!(!eth(&mut c).contains_key("ledger_amount"));

    // A one-way symbol keeps `ledger_amount`.
    operator_hset(&mut c, "BTCUSDT", "ledger_amount", "0.062");
    let got = d.inputs(Duration::from_millis(1000));
    assert_eq!(ledger_sets(&got), [(SymbolId(0), q("0.062"))], "{got:?}");

    // A result of a plan on the short leg: the entry names ETHUSDT and SHORT.
    d.publish(Event::PlanResult(PlanResult {
        plan: PlanId(0xc5),
        symbol: SymbolId(2),
        decision: Decision::Hold,
        outcome: Outcome::NonExecute,
        wait_ns: 0,
        at_ms: 1_769_301_008_979,
    }));
    let mut entry = BTreeMap::new();
    assert!(d.wait(Duration::from_secs(3), || {
        let r: StreamRangeReply = c.xrange_all(RESULT_STREAM).unwrap();
        if let Some(e) = r.ids.first() {
            entry = e
                .map
                .keys()
                .map(|k| (k.clone(), e.get::<String>(k).unwrap()))
                .collect();
        }
        !entry.is_empty()
    }));
    assert_eq!(entry["symbol"], "ETHUSDT");
    assert_eq!(entry["position_side"], "SHORT");
    assert_eq!(entry["plan_id"], "00000000000000c5");

    bridge.stop(Duration::from_secs(5));
}

/// Failover: a core taking the lead asks for each leg's ledger, and the leading bridge answers
/// each with its own field of the shared ledger (an unsigned short read as its negative).
#[test]
fn a_new_leaders_core_gets_each_legs_ledger_base() {
    let instance = format!("hedge-f-{}", std::process::id());
    let server = RedisServer::start();
    let mut c = server.conn();
    let s = Settings {
        ttl_ms: 1000,
        renew_ms: 200,
        drift_ms: 50,
        recv_window_ms: 200,
        clock_error_ms: 50,
    };
    let mut d = Daemon::start(&instance, Some(&s));
    let mut cfg = BridgeConfig::new(&instance, &server.url());
    cfg.host = "h1".into();
    // The shared ledger as the bridges left it (the ledger hash agrees: no operator's sync).
    let _: () = c
        .hset_multiple(
            legacy::position_key("ETHUSDT"),
            &[
                ("ledger_amount_long", "0.5"),
                ("ledger_amount_short", "0.3"),
            ],
        )
        .unwrap();
    let _: () = c
        .hset_multiple(
            state::ledger_key(&cfg.lease),
            &[("ETHUSDT:LONG", "0.5"), ("ETHUSDT:SHORT", "0.3")],
        )
        .unwrap();
    let epoch_key = lease::epoch_key(&cfg.lease);
    let bridge = Bridge::start(cfg);
    let mut epoch = None;
    let mut first = Vec::new();
    let end = Instant::now() + Duration::from_secs(10);
    while epoch.is_none() && Instant::now() < end {
        first.extend(d.inputs(Duration::from_millis(100)));
        epoch = c.get::<_, Option<u64>>(&epoch_key).unwrap();
    }
    let epoch = epoch.expect("the bridge takes the lease");
    // Leading (and past its fence) once it answers the probe and reads the ledger: give it
    // the time, then the core asks for both legs.
    first.extend(d.inputs(Duration::from_millis(2500)));
    assert_eq!(ledger_sets(&first), [], "{first:?}");
    for leg in [1, 2] {
        d.publish(Event::LedgerWanted {
            symbol: SymbolId(leg),
            epoch,
            at_ms: 1_769_301_008_977,
        });
    }
    let got = d.inputs(Duration::from_millis(1500));
    let bases: Vec<(SymbolId, Qty, u64)> = got
        .iter()
        .filter_map(|i| match i {
            Input::Command(Command::LedgerBase {
                symbol,
                amount,
                epoch,
            }) => Some((*symbol, *amount, *epoch)),
            _ => None,
        })
        .collect();
    assert_eq!(
        bases,
        [
            (SymbolId(1), q("0.5"), epoch),
            (SymbolId(2), q("-0.3"), epoch)
        ],
        "{got:?}"
    );
    bridge.stop(Duration::from_secs(8));
}
