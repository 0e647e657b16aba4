//! The Binance bridge's exchange leg as an operator sees it, over REST and over the WebSocket
//! API: `quantum sim binance` and `quantum bridge binance --hdr-log FILE --latency-interval-ms
//! MS` run as processes; the test stands in for the core on the rings (it creates the symbol
//! directory, `orders` and `exchange` as `quantum run` would) and sends intents. While they
//! flow, `quantum ctl latency --json` shows every series of the transport under "series" and
//! `quantum ctl metrics --once` serves them as Prometheus gauges with a `transport` label;
//! once the bridge is stopped (SIGTERM), its interval log, read back with HdrHistogram's
//! reader, holds one `send`, `ack` and `intent` sample per intent and one `fill` per filled
//! order.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin, signal, sim_url, Instance};
use prometheus_parse::{Scrape, Value as PromValue};
use quantum_binance::bridge::latency::{self, Leg};
use quantum_binance::bridge::{EXCHANGE_RING, ORDERS_RING};
use quantum_binance::Transport;
use quantum_ipc::codes::OrderStatus;
use quantum_ipc::latency::read::intervals;
use quantum_ipc::wire::{self, Limits, Message, RECORD_SIZE};
use quantum_ipc::{Consumer, CountersWriter, Producer, Ring, RingSpec};
use serde_json::Value;

fn intent(plan_id: u64) -> Message {
    Message::OrderIntent(wire::OrderIntent {
        side: wire::Side::Sell,
        symbol: 0,
        reduce_only: true,
        order_type: wire::OrderType::Market,
        plan_id,
        qty: "0.001".parse::<quantum_core::Qty>().unwrap().units(),
        flags: 0,
        t_in_ns: 0,
        t_out_ns: 0,
        at_ms: 0,
    })
}

/// The rings' core side and the intents sent so far.
struct Core {
    to_bridge: Producer<RECORD_SIZE>,
    from_bridge: Consumer<RECORD_SIZE>,
    sent: Vec<u64>,
    filled: std::collections::HashSet<u64>,
    seen: Vec<Message>,
}

impl Core {
    fn send_one(&mut self) {
        let plan = 0x7000 + self.sent.len() as u64;
        self.to_bridge.try_push_message(&intent(plan)).unwrap();
        self.sent.push(plan);
    }

    fn drain(&mut self) {
        while let Some(m) = self.from_bridge.try_pop_message(&Limits::default()) {
            let m = m.unwrap();
            if let Message::OrderReport(r) = &m {
                if r.status == OrderStatus::Filled {
                    self.filled.insert(r.plan_id);
                }
            }
            self.seen.push(m);
        }
    }
}

fn ctl(args: &[&str]) -> String {
    let out = Command::new(bin())
        .args(args)
        .output()
        .expect("run quantum ctl");
    assert!(
        out.status.success(),
        "quantum {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn exchange_leg(t: Transport, extra: &[&str]) {
    let mut inst = Instance::new(&format!("exlat-{}", t.name()));
    let name = inst.name.clone();
    let log = std::env::temp_dir().join(format!("{name}.hlog"));
    let counters = CountersWriter::create(&name, 8).unwrap();
    counters.set_symbol(0, "BTCUSDT").unwrap();
    let orders = Ring::create(&RingSpec::new(&name, ORDERS_RING, 256)).unwrap();
    let exchange = Ring::create(&RingSpec::new(&name, EXCHANGE_RING, 4096)).unwrap();
    let mut core = Core {
        to_bridge: orders.producer().unwrap(),
        from_bridge: exchange.consumer().unwrap(),
        sent: Vec::new(),
        filled: Default::default(),
        seen: Vec::new(),
    };

    let sim = inst.spawn(
        &[
            "sim",
            "binance",
            "--listen",
            "127.0.0.1:0",
            "--position",
            "BTCUSDT=1",
            "--mark",
            "BTCUSDT=104000",
        ],
        Stdio::piped(),
    );
    let rest = sim_url(sim.stdout.take().expect("sim stdout"));
    let log_arg = log.display().to_string();
    let mut args = vec![
        "--recv-window-ms",
        "1000",
        "--hdr-log",
        &log_arg,
        "--latency-interval-ms",
        "200",
    ];
    args.extend_from_slice(extra);
    let pid = inst.spawn_binance_bridge(&rest, &args).id();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !core
        .seen
        .iter()
        .any(|m| matches!(m, Message::SymbolFilters(_)))
    {
        assert!(Instant::now() < deadline, "the bridge did not attach");
        std::thread::sleep(Duration::from_millis(20));
        core.drain();
    }

    // Intents flow (one every 20 ms or so) until `ctl latency` shows every series of the
    // transport with a p50 in its last interval.
    let series = latency::series(t);
    let deadline = Instant::now() + Duration::from_secs(30);
    let shown = loop {
        core.send_one();
        std::thread::sleep(Duration::from_millis(20));
        core.drain();
        let v: Value =
            serde_json::from_str(&ctl(&["ctl", "latency", "--instance", &name, "--json"])).unwrap();
        if series
            .iter()
            .all(|s| v["series"][s]["p50"].as_u64() > Some(0))
        {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "ctl latency never showed {series:?}: {v}"
        );
    };
    assert!(
        shown["sources"]
            .as_array()
            .unwrap()
            .contains(&Value::from(quantum_ipc::latency::BINANCE_SEGMENT)),
        "{shown}"
    );
    let other = Transport::ALL.into_iter().find(|x| *x != t).unwrap();
    assert!(
        shown["series"].get(Leg::Ack.series(other)).is_none(),
        "only the bridge's own transport: {shown}"
    );

    // The metrics endpoint's one-shot exposition, taken while intents still flow.
    let mut metrics = Command::new(bin())
        .args(["ctl", "metrics", "--instance", &name, "--once"])
        .args(["--rate-interval-ms", "100"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn ctl metrics");
    let status = loop {
        core.send_one();
        std::thread::sleep(Duration::from_millis(20));
        core.drain();
        if let Some(s) = metrics.try_wait().unwrap() {
            break s;
        }
    };
    assert!(status.success());
    let mut text = String::new();
    std::io::Read::read_to_string(&mut metrics.stdout.take().unwrap(), &mut text).unwrap();
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses");
    for leg in Leg::ALL {
        let metric = format!("quantum_latency_{}_seconds", leg.stage().replace('.', "_"));
        let p50 = scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == metric
                    && s.labels.get("transport") == Some(t.name())
                    && s.labels.get("quantile") == Some("0.5")
            })
            .map(|s| match s.value {
                PromValue::Gauge(v) | PromValue::Untyped(v) => v,
                _ => f64::NAN,
            });
        assert!(p50.is_some_and(|v| v > 0.0), "{metric}: {p50:?}\n{text}");
    }

    // Every intent filled; then the bridge is stopped and writes its last interval.
    let deadline = Instant::now() + Duration::from_secs(30);
    while core.filled.len() < core.sent.len() {
        assert!(
            Instant::now() < deadline,
            "{} of {} filled: {:#?}",
            core.filled.len(),
            core.sent.len(),
            core.seen
        );
        std::thread::sleep(Duration::from_millis(10));
        core.drain();
    }
    signal(pid, "-TERM");
    let bridge = inst.children.last_mut().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = bridge.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the bridge did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let got = intervals(&std::fs::read(&log).unwrap()).unwrap();
    let n = core.sent.len() as u64;
    for leg in Leg::ALL {
        let tag = leg.series(t);
        let count: u64 = got
            .iter()
            .filter(|i| i.tag == tag)
            .map(|i| i.hist.len())
            .sum();
        assert_eq!(count, n, "{tag}: {n} intents, every one placed and filled");
    }
    assert!(got.iter().all(|i| i.tag.ends_with(t.name())));
    std::fs::remove_file(&log).ok();
}

#[test]
fn rest_leg_is_in_the_interval_log_ctl_latency_and_the_metrics() {
    exchange_leg(Transport::Rest, &[]);
}

#[test]
fn websocket_api_leg_is_in_the_interval_log_ctl_latency_and_the_metrics() {
    exchange_leg(Transport::WsApi, &["--ws-api"]);
}
