//! The whole chain as separate processes: `quantum sim binance` (a real HTTP/WebSocket
//! server), `quantum run`, `quantum bridge binance`, and `quantum ctl inject / tail / stats`
//! driving and watching them from outside. The seeds' reconcile story ends in a real order on
//! the simulator, by REST and by the WebSocket API; a reduce-only order larger than the position
//! fills in part and releases exactly its expired remainder.
//!
//! Everything is polled with deadlines (no sleep is an assertion); the [`Instance`] guard kills
//! every child and removes the instance's segments however a test ends.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{finish_within, signal, sim_http as http, sim_url, wait_for, Instance};
use quantum_core::Qty;
use serde_json::Value;

/// Plan ids of the seeds' story.
const DENIED: &str = "f1a8d7f48713d5cf";
const EXECUTED: &str = "84222f2c53d22b91";

fn q(s: &str) -> Qty {
    s.parse()
        .unwrap_or_else(|_| panic!("{s:?} is not a quantity"))
}

/// A simulator, a daemon and a bridge of one test.
struct Stack {
    inst: Instance,
    /// The simulator's REST base URL (`http://127.0.0.1:<port>`).
    rest: String,
    /// Plan results already read with [`Stack::tail`].
    seen: std::cell::Cell<usize>,
}

impl Stack {
    /// Starts the three processes and waits until the daemon has the simulator's BTCUSDT
    /// position (0.062): the bridge is attached and its first snapshot is in the book.
    fn start(test: &str, bridge_extra: &[&str]) -> Stack {
        let mut inst = Instance::new(test);
        let sim = inst.spawn(
            &[
                "sim",
                "binance",
                "--listen",
                "127.0.0.1:0",
                "--position",
                "BTCUSDT=0.062",
                "--mark",
                "BTCUSDT=104000",
            ],
            Stdio::piped(),
        );
        let rest = sim_url(sim.stdout.take().expect("sim stdout"));
        inst.start_daemon(&[], &[]);
        inst.spawn_binance_bridge(&rest, bridge_extra);
        let s = Stack {
            inst,
            rest,
            seen: std::cell::Cell::new(0),
        };
        s.wait_gauge("exchange.BTCUSDT", "0.062");
        s
    }

    fn name(&self) -> &str {
        &self.inst.name
    }

    /// An amount gauge of the daemon (`ledger.BTCUSDT` ...), as the counters segment holds it.
    fn gauge(&self, label: &str) -> Qty {
        Qty::from_units(self.inst.counter(label) as i64)
    }

    /// Waits until gauge `label` holds `want`; on timeout, panics with every counter and what
    /// the simulator has seen.
    fn wait_gauge(&self, label: &str, want: &str) {
        let want = q(want);
        let end = Instant::now() + Duration::from_secs(20);
        while self.gauge(label) != want {
            if Instant::now() >= end {
                panic!(
                    "timed out waiting for {label} = {want} (it is {}); stats {}; /sim/orders {:?}",
                    self.gauge(label),
                    self.stats(),
                    self.sim_orders()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `quantum ctl inject --file -` with `lines`; every line must parse.
    fn inject(&self, lines: &str) {
        let (ok, err) = self.inst.inject_lines(lines);
        assert!(ok, "ctl inject failed: {err}");
        assert!(err.contains("0 line(s) could not be parsed"), "{err}");
    }

    /// The next `n` results' fields, as the Redis bridge writes them to the legacy result
    /// stream: read by `quantum ctl tail --json --only results`, which reads `results` from
    /// the oldest event and stops after the `seen + n`-th result.
    fn tail(&self, n: usize) -> Vec<Value> {
        let count = (self.seen.get() + n).to_string();
        let child = self
            .inst
            .command(
                &[
                    "ctl",
                    "tail",
                    "--instance",
                    self.name(),
                    "--json",
                    "--only",
                    "results",
                    "--count",
                    &count,
                ],
                &[],
            )
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn ctl tail");
        let out = finish_within(child, 20, "ctl tail");
        assert!(out.status.success(), "ctl tail failed");
        let rs: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect();
        assert_eq!(rs.len(), self.seen.get() + n, "{rs:?}");
        let new: Vec<Value> = rs[self.seen.get()..]
            .iter()
            .map(|r| {
                assert_eq!(r["key"], "quantum:stream:apply.result", "{r}");
                r["fields"].clone()
            })
            .collect();
        self.seen.set(self.seen.get() + n);
        new
    }

    /// `quantum ctl stats --json`.
    fn stats(&self) -> Value {
        serde_json::from_str(&self.inst.ctl_stats(true)).expect("stats JSON")
    }

    /// `quantum ctl stats` as text.
    fn stats_text(&self) -> String {
        self.inst.ctl_stats(false)
    }

    /// `GET /sim/orders`: every order the simulator accepted.
    fn sim_orders(&self) -> Vec<Value> {
        match http(&self.rest, "GET", "/sim/orders", None) {
            Value::Array(v) => v,
            v => panic!("/sim/orders: {v}"),
        }
    }

    /// The simulator's BTCUSDT position (`GET /sim/positions`, which leaves flat ones out).
    fn sim_btc(&self) -> Qty {
        let ps = http(&self.rest, "GET", "/sim/positions", None);
        let rows = ps
            .as_array()
            .unwrap_or_else(|| panic!("/sim/positions: {ps}"));
        rows.iter()
            .find(|p| p["symbol"] == "BTCUSDT")
            .map_or(Qty::ZERO, |p| {
                q(p["positionAmt"].as_str().expect("positionAmt"))
            })
    }

    /// Waits until the simulator lists `n` orders and returns them.
    fn wait_sim_orders(&self, n: usize) -> Vec<Value> {
        let mut orders = Vec::new();
        wait_for(20, &format!("{n} order(s) on the simulator"), || {
            orders = self.sim_orders();
            orders.len() >= n
        });
        orders
    }
}

fn plan_line(id: &str) -> String {
    format!(
        r#"{{"plan_id":"{id}","symbol":"BTCUSDT","decision":"EXECUTE","action":"PARTIAL_75","kill_score":"0.539"}}"#
    )
}

fn set_ledger(amount: &str) -> String {
    format!(r#"{{"cmd":"set_ledger","symbol":"BTCUSDT","amount":"{amount}"}}"#)
}

/// The seeds' story with real processes: a ledger that disagrees with the exchange denies the
/// plan; synced, the next plan becomes one reduce-only order on the simulator, whose fill
/// reaches the ledger; the same plan again is a duplicate and orders nothing.
fn reconcile_story(test: &str, bridge_extra: &[&str], via: &str) {
    let s = Stack::start(test, bridge_extra);

    // Ledger 0.002 against the exchange's 0.062: P3.3 denies.
    s.inject(&format!("{}\n{}\n", set_ledger("0.002"), plan_line(DENIED)));
    let r = &s.tail(1)[0];
    assert_eq!(r["plan_id"], DENIED, "{r}");
    assert_eq!(r["executed"], "false", "{r}");
    assert_eq!(
        r["error"], "p33_denied:reconcile_required_qty_mismatch",
        "{r}"
    );
    s.wait_gauge("ledger.BTCUSDT", "0.002");
    let st = s.stats();
    assert_eq!(
        st["counters"]["deny.p33.reconcile_required_qty_mismatch"], 1,
        "{st}"
    );
    assert_eq!(st["amounts"]["ledger.BTCUSDT"], "0.002", "{st}");
    assert_eq!(st["amounts"]["exchange.BTCUSDT"], "0.062", "{st}");
    assert!(s.sim_orders().is_empty(), "a denied plan ordered something");

    // Synced: the next plan is executed and ordered, SELL 0.046 reduce-only.
    s.inject(&format!(
        "{}\n{}\n",
        set_ledger("0.062"),
        plan_line(EXECUTED)
    ));
    let r = &s.tail(1)[0];
    assert_eq!(r["plan_id"], EXECUTED, "{r}");
    assert_eq!(r["executed"], "true", "{r}");
    assert_eq!(r["error"], "", "{r}");
    assert_eq!(r["safe_qty"], "0.046", "{r}");
    assert_eq!(r["client_order_id"], format!("qpc-{EXECUTED}"), "{r}");
    let orders = s.wait_sim_orders(1);
    assert_eq!(orders.len(), 1, "{orders:?}");
    let o = &orders[0];
    assert_eq!(o["clientOrderId"], format!("qpc-{EXECUTED}"), "{o}");
    assert_eq!(o["symbol"], "BTCUSDT", "{o}");
    assert_eq!(o["side"], "SELL", "{o}");
    assert_eq!(o["type"], "MARKET", "{o}");
    assert_eq!(o["reduceOnly"], true, "{o}");
    assert_eq!(q(o["qty"].as_str().unwrap()), q("0.046"), "{o}");
    assert_eq!(o["via"], via, "{o}");

    // The fill comes back through the bridge into the ledger; the exchange agrees.
    s.wait_gauge("ledger.BTCUSDT", "0.016");
    s.wait_gauge("in_flight.BTCUSDT", "0");
    assert_eq!(s.sim_btc(), s.gauge("ledger.BTCUSDT"));
    // The position snapshot after the fill (ACCOUNT_UPDATE) brings the exchange side along.
    s.wait_gauge("exchange.BTCUSDT", "0.016");

    // The executed plan again: a duplicate, and still one order on the exchange.
    s.inject(&format!("{}\n", plan_line(EXECUTED)));
    let r = &s.tail(1)[0];
    assert_eq!(r["plan_id"], EXECUTED, "{r}");
    assert_eq!(r["executed"], "false", "{r}");
    assert_eq!(r["error"], "duplicate", "{r}");
    let st = s.stats();
    assert_eq!(st["counters"]["results.duplicate"], 1, "{st}");
    assert_eq!(st["counters"]["orders_out"], 1, "{st}");
    assert_eq!(st["counters"]["orders.done.filled"], 1, "{st}");
    assert_eq!(st["counters"]["invalid_records.exchange"], 0, "{st}");
    assert_eq!(st["amounts"]["ledger.BTCUSDT"], "0.016", "{st}");
    assert_eq!(st["amounts"]["in_flight.BTCUSDT"], "0", "{st}");
    assert_eq!(
        s.sim_orders().len(),
        1,
        "the duplicate reached the exchange"
    );
    assert_eq!(s.sim_btc(), q("0.016"));
    // The text form shows the same book.
    let text = s.stats_text();
    let book = text
        .lines()
        .find(|l| l.trim_start().starts_with("book BTCUSDT"))
        .unwrap_or_else(|| panic!("no book line in\n{text}"));
    let words: Vec<&str> = book.split_whitespace().collect();
    assert_eq!(
        words,
        [
            "book",
            "BTCUSDT",
            "ledger",
            "0.016",
            "exchange",
            "0.016",
            "in_flight",
            "0"
        ],
        "{book}"
    );
}

#[test]
fn the_reconcile_story_orders_once_on_the_simulator_by_rest() {
    reconcile_story("e2e-rest", &[], "rest");
}

#[test]
fn the_reconcile_story_orders_once_on_the_simulator_by_the_websocket_api() {
    reconcile_story("e2e-ws", &["--ws-api"], "ws-api");
}

/// The position shrinks on the exchange after the core's last snapshot: the reduce-only order
/// (0.046) fills what is left (0.030) and the exchange expires the rest. The ledger takes the
/// fill and the book releases exactly the 0.016 that never filled.
#[test]
fn a_partly_filled_order_releases_exactly_its_expired_remainder() {
    // The user data stream is pointed at a port nothing listens on (its private route, which
    // the adapter requires): no ACCOUNT_UPDATE, and positionRisk is polled only at start
    // (--poll-ms), so the core keeps the 0.062 it saw while the simulator's position changes
    // underneath. Fills then come from the order answer alone.
    let no_stream = "ws://127.0.0.1:1/private";
    let s = Stack::start(
        "e2e-partial",
        &["--user-stream-url", no_stream, "--poll-ms", "600000"],
    );
    http(
        &s.rest,
        "POST",
        "/sim/position",
        Some(r#"{"symbol":"BTCUSDT","positionAmt":"0.030"}"#),
    );
    assert_eq!(s.gauge("exchange.BTCUSDT"), q("0.062"));
    s.inject(&format!(
        "{}\n{}\n",
        set_ledger("0.062"),
        plan_line(EXECUTED)
    ));
    let r = &s.tail(1)[0];
    assert_eq!(r["executed"], "true", "{r}");
    assert_eq!(r["safe_qty"], "0.046", "{r}");
    let orders = s.wait_sim_orders(1);
    let o = &orders[0];
    assert_eq!(q(o["qty"].as_str().unwrap()), q("0.046"), "{o}");
    assert_eq!(q(o["executedQty"].as_str().unwrap()), q("0.030"), "{o}");
    assert_eq!(o["status"], "EXPIRED", "{o}");

    s.wait_gauge("ledger.BTCUSDT", "0.032");
    s.wait_gauge("in_flight.BTCUSDT", "0");
    let st = s.stats();
    assert_eq!(st["counters"]["orders.done.remainder_expired"], 1, "{st}");
    assert_eq!(st["counters"]["orders.fills"], 1, "{st}");
    assert_eq!(st["counters"]["invalid_records.exchange"], 0, "{st}");
    assert_eq!(s.sim_btc(), q("0"));
}

/// SIGTERM (what `systemctl stop` and `kill` send) stops the bridge the way SIGINT does: it
/// exits 0 and the daemon sees both of its ring roles detached, not dead.
#[test]
fn sigterm_detaches_the_bridge_like_sigint() {
    for sig in ["-TERM", "-INT"] {
        let mut s = Stack::start(&format!("e2e-stop{}", sig[1..].to_lowercase()), &[]);
        // Started last: the simulator, the daemon, then the bridge.
        let bridge = s.inst.children.pop().expect("the bridge");
        let pid = bridge.id();
        signal(pid, sig);
        let out = finish_within(bridge, 20, "the bridge to stop");
        assert!(out.status.success(), "{sig}: exit status {}", out.status);
        wait_for(10, "the daemon to see the bridge detach", || {
            s.inst.log_has(&format!(
                "peer detached ring=\"orders\" role=\"consumer\" pid={pid}"
            )) && s.inst.log_has(&format!(
                "peer detached ring=\"exchange\" role=\"producer\" pid={pid}"
            ))
        });
        assert_eq!(s.inst.counter("peer_deaths.orders"), 0, "{sig}");
        assert_eq!(s.inst.counter("peer_deaths.exchange"), 0, "{sig}");
    }
}

/// The daemon killed with `kill -9` while the bridge runs: the bridge notices the new `orders`
/// ring and attaches to it by itself, the restarted core keeps its ledger from the journal and
/// reconciles BTCUSDT from the bridge's fresh position, and the next plan is ordered once;
/// the plan from before the crash, sent again, is still a duplicate.
#[test]
fn the_bridge_follows_a_daemon_restarted_after_kill_9() {
    let mut s = Stack::start("follow", &[]);
    s.inject(&format!("{}\n{}\n", set_ledger("0.062"), plan_line(DENIED)));
    assert_eq!(s.tail(1)[0]["executed"], "true");
    s.wait_gauge("ledger.BTCUSDT", "0.016");
    s.wait_gauge("in_flight.BTCUSDT", "0");
    let daemon = s.inst.children[1].id();
    signal(daemon, "-KILL");
    s.inst.children[1].wait().unwrap();
    let bridge = s.inst.children[2].id();
    s.inst.start_daemon(&[], &[]);
    s.seen.set(0);
    // Attached again, by itself.
    let orders = quantum_ipc::Ring::open(&quantum_ipc::RingSpec::new(s.name(), "orders", 0))
        .expect("the new orders ring");
    wait_for(
        20,
        "the bridge on the new orders ring",
        || matches!(orders.consumer_status(3_000), quantum_ipc::PeerStatus::Alive { pid, .. } if pid == u64::from(bridge)),
    );
    // The ledger came back from the journal; the bridge's fresh position ends reconciling.
    s.wait_gauge("ledger.BTCUSDT", "0.016");
    wait_for(20, "BTCUSDT reconciled", || {
        s.inst.counter("reconciling") == 0
    });
    s.inject(&format!("{}\n{}\n", plan_line(DENIED), plan_line(EXECUTED)));
    let r = s.tail(2);
    assert_eq!(r[0]["error"], "duplicate", "{r:?}");
    assert_eq!(r[1]["executed"], "true", "{r:?}");
    assert_eq!(r[1]["safe_qty"], "0.012", "{r:?}");
    let orders = s.wait_sim_orders(2);
    assert_eq!(orders.len(), 2, "{orders:?}");
    s.wait_gauge("ledger.BTCUSDT", "0.004");
    s.wait_gauge("in_flight.BTCUSDT", "0");
    assert_eq!(s.sim_btc(), q("0.004"));
}
