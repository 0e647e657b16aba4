//! The operators' Redis habits against real processes: a real `redis-server` (started on a free
//! loopback port in a temporary directory), `quantum run`, `quantum bridge redis`, and where
//! orders matter `quantum sim binance` with `quantum bridge binance`. Everything the test does
//! and checks goes through Redis, as an operator's `redis-cli` would (the core's own gauges and
//! events are read only to know when it has caught up, and to count what it did).
//!
//! Every wait is polled with a deadline; no sleep is an assertion. The guards kill every child,
//! remove the instance's segments and stop redis-server however a test ends.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{sim_http, sim_url, wait_for, Instance};
use quantum_core::event::Event;
use quantum_core::{Plan, Qty, SymbolId};
use quantum_ipc::broadcast::{Broadcast, Next, Start};
use quantum_ipc::wire::{Limits, Message};
use quantum_ipc::RingSpec;
use quantum_local_redis::RedisServer;
use quantum_redis::legacy;
use redis::Commands;
use serde_json::Value;

const PLANS: &str = legacy::PLAN_STREAM;
const RESULTS: &str = legacy::RESULT_STREAM;
const DLQ: &str = legacy::DLQ_STREAM;

/// Plan ids of the seeds' story.
const DENIED: &str = "f1a8d7f48713d5cf";
const EXECUTED: &str = "84222f2c53d22b91";

fn q(s: &str) -> Qty {
    s.parse()
        .unwrap_or_else(|_| panic!("{s:?} is not a quantity"))
}

type Fields = HashMap<String, String>;

/// An exit plan of BTCUSDT.
fn btc_plan(id: &str, decision: &str, action: &str) -> Plan {
    Plan::exit(
        id.parse().expect("a plan id"),
        SymbolId(0),
        decision.parse().expect("a decision"),
        action.parse().expect("an action"),
    )
}

/// [`btc_plan`] with the seeds' kill score.
fn scored_plan(id: &str, decision: &str, action: &str) -> Plan {
    Plan {
        kill_score: "0.539".parse().expect("a score"),
        ..btc_plan(id, decision, action)
    }
}

/// The fields of a BTCUSDT plan's legacy entry.
fn entry_fields(p: &Plan) -> Vec<(&'static str, String)> {
    legacy::plan_entry_fields(p, "BTCUSDT")
}

/// What a test starts.
#[derive(Default)]
struct Opts<'a> {
    /// Run against Redis after the daemon started and before the Redis bridge does.
    before_bridge: Option<fn(&mut redis::Connection)>,
    /// redis-server's `requirepass`, given to the bridge in its URL.
    password: Option<&'a str>,
    /// `--position` of the simulator; no simulator and no Binance bridge when `None`.
    sim_position: Option<&'a str>,
    daemon_env: Vec<(&'a str, &'a str)>,
    /// More arguments of `quantum run` (e.g. `--config FILE`).
    daemon_args: Vec<&'a str>,
    /// More arguments of `quantum sim binance` (e.g. `--hedge-mode`).
    sim_args: Vec<&'a str>,
    bridge_args: Vec<&'a str>,
    /// More arguments of `quantum bridge binance`.
    binance_args: Vec<&'a str>,
    persistent_redis: bool,
    redis_args: Vec<&'a str>,
}

/// redis-server, the simulator, the daemon and both bridges of one test.
struct Stack {
    inst: Instance,
    redis: RedisServer,
    /// The URL the bridge and the test connect with.
    url: String,
    rest: Option<String>,
    bridge: Option<Child>,
    bridge_args: Vec<String>,
    bridge_log: Arc<Mutex<Vec<String>>>,
    /// The running daemon's pid.
    daemon_pid: u32,
}

impl Stack {
    fn start(test: &str, o: Opts) -> Stack {
        let mut redis_args = o.redis_args.clone();
        if let Some(pw) = o.password {
            redis_args.extend(["--requirepass", pw]);
        }
        let redis = if o.persistent_redis {
            RedisServer::start_persistent()
        } else {
            RedisServer::start_with_args(&redis_args)
        };
        let url = match o.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}/0", redis.port()),
            None => redis.url(),
        };
        let mut inst = Instance::new(test);
        let rest = o.sim_position.map(|pos| {
            let mut args = vec![
                "sim",
                "binance",
                "--listen",
                "127.0.0.1:0",
                "--position",
                pos,
                "--mark",
                "BTCUSDT=104000",
            ];
            args.extend(o.sim_args.iter().copied());
            let sim = inst.spawn(&args, Stdio::piped());
            sim_url(sim.stdout.take().expect("sim stdout"))
        });
        // Without the Binance bridge the test feeds positions by hand.
        let daemon_pid = if rest.is_some() {
            inst.start_daemon(&o.daemon_args, &o.daemon_env)
        } else {
            inst.start_daemon_fed_by_hand(&o.daemon_args, &o.daemon_env)
        };
        if let Some(rest) = &rest {
            inst.spawn_binance_bridge(rest, &o.binance_args);
        }
        if let Some(setup) = o.before_bridge {
            setup(&mut redis.conn());
        }
        let mut bridge_args: Vec<String> = [
            "bridge",
            "redis",
            "--instance",
            &inst.name,
            "--redis",
            &url,
            "--stats-ms",
            "200",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        bridge_args.extend(o.bridge_args.iter().map(|s| s.to_string()));
        let mut s = Stack {
            inst,
            redis,
            url,
            rest,
            bridge: None,
            bridge_args,
            bridge_log: Arc::default(),
            daemon_pid,
        };
        s.start_bridge();
        s.wait_bridge_log("redis bridge attached");
        if s.rest.is_some() {
            // The Binance bridge's first position snapshot, mirrored by the Redis bridge.
            let pos = o
                .sim_position
                .unwrap()
                .split_once('=')
                .unwrap()
                .1
                .to_string();
            // A hedge-mode account's sides have their own fields: the test waits for them.
            if !o.sim_args.contains(&"--hedge-mode") {
                s.wait_hash_field("quantum:position:BTCUSDT", "exchange_amount", &pos);
            }
        }
        s
    }

    fn name(&self) -> &str {
        &self.inst.name
    }

    /// Starts `quantum bridge redis` (again), its stderr kept and echoed.
    fn start_bridge(&mut self) {
        let args: Vec<&str> = self.bridge_args.iter().map(String::as_str).collect();
        let mut child = self
            .inst
            .command(&args, &[])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn quantum bridge redis");
        let err = child.stderr.take().expect("stderr");
        let log = self.bridge_log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[redis-bridge] {line}");
                log.lock().unwrap().push(line);
            }
        });
        self.bridge = Some(child);
    }

    /// SIGKILL of the daemon, reaped (a zombie would still count as a live daemon).
    fn kill_daemon(&mut self) {
        let pid = self.daemon_pid;
        let at = self
            .inst
            .children
            .iter()
            .position(|c| c.id() == pid)
            .expect("the daemon is a child");
        let mut c = self.inst.children.remove(at);
        c.kill().expect("kill the daemon");
        c.wait().expect("wait for the daemon");
    }

    /// SIGKILL: no flush, no detach.
    fn kill_bridge(&mut self) {
        let mut c = self.bridge.take().expect("a running bridge");
        c.kill().expect("kill the bridge");
        c.wait().expect("wait for the bridge");
    }

    fn bridge_log_count(&self, needle: &str) -> usize {
        self.bridge_log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    fn bridge_log_has(&self, needle: &str) -> bool {
        self.bridge_log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    fn wait_bridge_log(&self, needle: &str) {
        wait_for(30, &format!("the Redis bridge to log {needle:?}"), || {
            self.bridge_log_has(needle)
        });
    }

    fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url.as_str())
            .and_then(|c| c.get_connection())
            .expect("connect to redis-server")
    }

    /// XADD of a legacy plan entry; its id.
    fn xadd(&self, fields: &[(&str, &str)]) -> String {
        self.conn()
            .xadd(PLANS, "*", fields)
            .expect("XADD quantum:stream:apply.plan")
    }

    /// XADD of `p`'s legacy plan entry; its id.
    fn xadd_plan(&self, p: &Plan) -> String {
        self.conn()
            .xadd(PLANS, "*", &entry_fields(p))
            .expect("XADD quantum:stream:apply.plan")
    }

    fn plan(&self, id: &str, decision: &str) -> String {
        self.xadd_plan(&scored_plan(id, decision, "PARTIAL_75"))
    }

    /// Every entry of `stream`, in order.
    fn entries(&self, stream: &str) -> Vec<(String, Fields)> {
        entries(&mut self.conn(), stream)
    }

    /// Result entries of plan `id`.
    fn results_of(&self, id: &str) -> Vec<Fields> {
        self.entries(RESULTS)
            .into_iter()
            .map(|(_, f)| f)
            .filter(|f| f.get("plan_id").map(String::as_str) == Some(id))
            .collect()
    }

    /// Waits for the `n`-th result entry of plan `id` and returns it.
    fn wait_result(&self, id: &str, n: usize) -> Fields {
        let mut found = Vec::new();
        wait_for(20, &format!("result entry {n} of plan {id}"), || {
            found = self.results_of(id);
            found.len() >= n
        });
        found[n - 1].clone()
    }

    fn hash(&self, key: &str) -> Fields {
        self.conn().hgetall(key).expect("HGETALL")
    }

    fn wait_hash_field(&self, key: &str, field: &str, want: &str) {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let last = self.hash(key);
            if last.get(field).is_some_and(|v| q(v) == q(want)) {
                return;
            }
            assert!(
                Instant::now() < end,
                "timed out waiting for {key} {field} = {want}: {last:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The core's ledger gauge.
    fn ledger(&self) -> Qty {
        Qty::from_units(self.inst.counter("ledger.BTCUSDT") as i64)
    }

    fn wait_ledger(&self, want: &str) {
        wait_for(20, &format!("the core's ledger to be {want}"), || {
            self.ledger() == q(want)
        });
    }

    /// The bridge's counter `name` from its stats hash (`--stats-ms 200`).
    fn bridge_stat(&self, name: &str) -> u64 {
        self.hash(&format!("quantum:bridge:{}:stats", self.name()))
            .get(name)
            .map_or(0, |v| v.parse().expect("a count"))
    }

    fn pending(&self) -> u64 {
        let v: redis::Value = redis::cmd("XPENDING")
            .arg(PLANS)
            .arg("quantum-core")
            .query(&mut self.conn())
            .expect("XPENDING");
        match v {
            redis::Value::Array(parts) => match parts.first() {
                Some(redis::Value::Int(n)) => *n as u64,
                other => panic!("XPENDING count {other:?}"),
            },
            other => panic!("XPENDING {other:?}"),
        }
    }

    fn sim_orders(&self) -> Vec<Value> {
        let rest = self.rest.as_deref().expect("a simulator");
        match common::sim_http(rest, "GET", "/sim/orders", None) {
            Value::Array(v) => v,
            v => panic!("/sim/orders: {v}"),
        }
    }

    fn wait_sim_orders(&self, n: usize) -> Vec<Value> {
        let mut orders = Vec::new();
        wait_for(20, &format!("{n} order(s) on the simulator"), || {
            orders = self.sim_orders();
            orders.len() >= n
        });
        orders
    }
}

fn entries(c: &mut redis::Connection, stream: &str) -> Vec<(String, Fields)> {
    let r: redis::streams::StreamRangeReply = c.xrange_all(stream).expect("XRANGE");
    r.ids
        .into_iter()
        .map(|e| {
            let f = e
                .map
                .iter()
                .map(|(k, v)| {
                    let v: String = redis::from_redis_value(v.clone()).expect("a text field");
                    (k.clone(), v)
                })
                .collect();
            (e.id, f)
        })
        .collect()
}

/// Every event the daemon's `results` ring holds now, oldest first.
fn core_events(instance: &str) -> Vec<Event> {
    let ring = Broadcast::open(&RingSpec::new(instance, "results", 0)).expect("open results");
    let mut r = ring.reader(Start::Oldest);
    let mut out = Vec::new();
    loop {
        match r.read() {
            Next::Record { record, .. } => {
                let m = Message::decode(&record, &Limits::default()).expect("a valid record");
                out.push(Event::from_message(&m).expect("an event"));
            }
            Next::Empty => return out,
            Next::Missed { from_seq, to_seq } => panic!("the ring lost {from_seq}..{to_seq}"),
        }
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

/// The seeds' operator story, through Redis only: ledger 0.002 by HSET, a legacy plan denied by
/// P3.3 with its context readable at the legacy key, the ledger synced by HSET, the next plan
/// executed on the simulator with safe_qty 0.046, its result and the position in Redis, and the
/// same plan again ordering nothing.
#[test]
fn the_seeds_story_runs_through_redis_alone() {
    let s = Stack::start(
        "redis-story",
        Opts {
            sim_position: Some("BTCUSDT=0.062"),
            ..Opts::default()
        },
    );
    let mut c = s.conn();
    let pos = "quantum:position:BTCUSDT";

    // The operator's ledger, out of sync with the exchange's 0.062.
    let _: () = c.hset(pos, "ledger_amount", "0.002").unwrap();
    s.wait_ledger("0.002");

    // A plan in the legacy flat format: P3.3 denies it, and says why at its legacy key.
    s.plan(DENIED, "EXECUTE");
    let r = s.wait_result(DENIED, 1);
    assert_eq!(r["executed"], "false", "{r:?}");
    assert_eq!(
        r["error"], "p33_denied:reconcile_required_qty_mismatch",
        "{r:?}"
    );
    let p33: String = c.get(format!("quantum:permit:p33:{DENIED}")).unwrap();
    let p33 = json(&p33);
    assert_eq!(p33["allow"], false, "{p33}");
    assert_eq!(p33["symbol"], "BTCUSDT", "{p33}");
    assert_eq!(p33["reason"], "reconcile_required_qty_mismatch", "{p33}");
    assert_eq!(
        p33["context"],
        serde_json::json!({"exchange_amt": 0.062, "ledger_amt": 0.002, "diff": 0.06, "tolerance": 0.001}),
        "{p33}"
    );
    let ttl: i64 = c.ttl(format!("quantum:permit:p33:{DENIED}")).unwrap();
    assert!((1..=15).contains(&ttl), "TTL {ttl}");
    let gov = json(
        &c.get::<_, String>(format!("quantum:permit:{DENIED}"))
            .unwrap(),
    );
    assert_eq!(gov["granted"], true, "{gov}");
    assert_eq!(gov["ttl"], 15, "{gov}");
    let ttl: i64 = c.ttl(format!("quantum:permit:{DENIED}")).unwrap();
    assert!((1..=15).contains(&ttl), "TTL {ttl}");
    assert!(s.sim_orders().is_empty(), "a denied plan ordered something");

    // The operator syncs the ledger; the next plan (in a JSON payload this time) executes.
    let _: () = c.hset(pos, "ledger_amount", "0.062").unwrap();
    s.wait_ledger("0.062");
    let payload = format!(
        r#"{{"plan_id":"{EXECUTED}","symbol":"BTCUSDT","decision":"EXECUTE","action":"PARTIAL_75","kill_score":0.539}}"#
    );
    s.xadd(&[("payload", payload.as_str())]);
    let r = s.wait_result(EXECUTED, 1);
    assert_eq!(r["executed"], "true", "{r:?}");
    assert_eq!(r["error"], "", "{r:?}");
    assert_eq!(r["safe_qty"], "0.046", "{r:?}");
    assert_eq!(r["client_order_id"], format!("qpc-{EXECUTED}"), "{r:?}");
    let orders = s.wait_sim_orders(1);
    let o = &orders[0];
    assert_eq!(o["clientOrderId"], format!("qpc-{EXECUTED}"), "{o}");
    assert_eq!(
        (o["side"].as_str(), o["reduceOnly"].as_bool()),
        (Some("SELL"), Some(true))
    );
    assert_eq!(q(o["qty"].as_str().unwrap()), q("0.046"), "{o}");
    // The exchange's order id, known once it accepted the order.
    assert_eq!(
        r["order_id"],
        o["orderId"].as_u64().unwrap().to_string(),
        "{r:?} {o}"
    );
    s.wait_hash_field(pos, "ledger_amount", "0.016");
    s.wait_hash_field(pos, "exchange_amount", "0.016");
    let h = s.hash(pos);
    assert!(
        h.contains_key("updated_at") && h.contains_key("mark_price"),
        "{h:?}"
    );

    // The same plan again: the core answers it `duplicate`, no second order, and the plan
    // keeps its one result entry.
    s.plan(EXECUTED, "EXECUTE");
    wait_for(10, "the repeat answered and acknowledged", || {
        s.bridge_stat("results_repeated") == 1 && s.pending() == 0
    });
    assert!(s
        .inst
        .daemon_log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains(&format!("Plan {EXECUTED} already executed (duplicate)"))));
    assert_eq!(
        s.sim_orders().len(),
        1,
        "the duplicate reached the exchange"
    );
    assert_eq!(s.results_of(EXECUTED).len(), 1);
    assert_eq!(s.results_of(DENIED).len(), 1);

    // The core saw exactly the operator's two ledger syncs: the bridge's own writes of
    // ledger_amount (0.016 after the fill) never came back as commands.
    let sets: Vec<Qty> = core_events(s.name())
        .into_iter()
        .filter_map(|e| match e {
            Event::LedgerSet { amount, .. } => Some(amount),
            _ => None,
        })
        .collect();
    assert_eq!(sets, vec![q("0.002"), q("0.062")]);
    assert_eq!(q(&s.hash(pos)["ledger_amount"]), q("0.016"));
}

/// `--permits-from redis`: permits SET by the legacy Governor and P3.3, even before their plan,
/// are handed to the core and consumed by it once, together, and only when both are there; the
/// bridge then deletes both keys (the legacy consume). A plan with one permit only is blocked,
/// and its permit stays.
#[test]
fn legacy_permits_are_consumed_once_together_and_only_then() {
    let s = Stack::start(
        "redis-permits",
        Opts {
            sim_position: Some("BTCUSDT=0.062"),
            daemon_env: vec![
                ("QUANTUM_ENGINE_PERMITS", "external"),
                ("APPLY_PERMIT_WAIT_MS", "4000"),
            ],
            bridge_args: vec!["--permits-from", "redis"],
            ..Opts::default()
        },
    );
    let mut c = s.conn();
    let gov = |id: &str| format!("quantum:permit:{id}");
    let p33 = |id: &str| format!("quantum:permit:p33:{id}");
    let gov_json = r#"{"granted": true, "symbol": "BTCUSDT", "decision": "EXECUTE", "created_at": "2026-01-25T00:30:08.977Z", "ttl": 15}"#;
    let p33_json = |qty: &str| {
        format!(
            r#"{{"allow": true, "symbol": "BTCUSDT", "safe_qty": {qty}, "context": {{"exchange_amt": 0.062, "ledger_amt": 0.062, "diff": 0.0, "tolerance": 0.001}}, "created_at": "2026-01-25T00:30:08.978Z"}}"#
        )
    };

    // Plan A: the Governor's permit comes first, before the plan.
    let a = "a000000000000001";
    let _: () = c.set_ex(gov(a), gov_json, 15).unwrap();
    wait_for(10, "the early permit to be held", || {
        s.bridge_stat("permits_held") >= 1
    });
    s.plan(a, "EXECUTE");
    // Accepted, its early permit handed over: the plan waits for P3.3's, and nothing is
    // consumed or ordered meanwhile.
    wait_for(10, "the held permit handed to the core", || {
        s.bridge_stat("permits_forwarded") >= 1
    });
    std::thread::sleep(Duration::from_millis(300));
    let about_a = |e: &Event| e.plan().is_some_and(|p| p.to_string() == a);
    let seen: Vec<Event> = core_events(s.name()).into_iter().filter(about_a).collect();
    assert!(
        matches!(seen.as_slice(), [Event::PlanAccepted { .. }]),
        "with one permit only: {seen:?}"
    );
    assert!(s.results_of(a).is_empty());
    assert!(s.sim_orders().is_empty());
    assert!(c.exists::<_, bool>(gov(a)).unwrap());
    // P3.3's permit: both consumed together, one order.
    let _: () = c.set_ex(p33(a), p33_json("0.046"), 15).unwrap();
    let r = s.wait_result(a, 1);
    assert_eq!(
        (r["executed"].as_str(), r["safe_qty"].as_str()),
        ("true", "0.046"),
        "{r:?}"
    );
    let orders = s.wait_sim_orders(1);
    assert_eq!(q(orders[0]["qty"].as_str().unwrap()), q("0.046"));
    wait_for(10, "both permits deleted once consumed", || {
        !c.exists::<_, bool>(gov(a)).unwrap() && !c.exists::<_, bool>(p33(a)).unwrap()
    });

    // Plan B: both permits before the plan.
    let b = "b000000000000002";
    let _: () = c.set_ex(p33(b), p33_json("0.010"), 15).unwrap();
    let _: () = c.set_ex(gov(b), gov_json, 15).unwrap();
    wait_for(10, "both early permits held", || {
        s.bridge_stat("permits_held") >= 3
    });
    s.plan(b, "EXECUTE");
    let r = s.wait_result(b, 1);
    assert_eq!(
        (r["executed"].as_str(), r["safe_qty"].as_str()),
        ("true", "0.01"),
        "{r:?}"
    );
    assert_eq!(s.wait_sim_orders(2).len(), 2);

    // Plan C: the Governor's permit only; blocked after the wait, its permit left alone.
    let cc = "c000000000000003";
    let _: () = c.set_ex(gov(cc), gov_json, 15).unwrap();
    s.plan(cc, "EXECUTE");
    let r = s.wait_result(cc, 1);
    assert_eq!(
        (r["executed"].as_str(), r["error"].as_str()),
        ("false", "missing_p33"),
        "{r:?}"
    );
    assert!(c.exists::<_, bool>(gov(cc)).unwrap());

    // A again: a duplicate (acknowledged, no second result entry); still two orders, each
    // plan once.
    s.plan(a, "EXECUTE");
    wait_for(10, "the repeat answered and acknowledged", || {
        s.bridge_stat("results_repeated") == 1 && s.pending() == 0
    });
    assert_eq!(s.results_of(a).len(), 1);
    let orders = s.sim_orders();
    assert_eq!(orders.len(), 2, "{orders:?}");
    let ids: HashSet<&str> = orders
        .iter()
        .map(|o| o["clientOrderId"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        HashSet::from([format!("qpc-{a}").as_str(), format!("qpc-{b}").as_str()])
    );
    wait_for(10, "the consumed pairs counted", || {
        s.bridge_stat("permits_consumed") == 2 && s.bridge_stat("permits_forwarded") == 5
    });
    assert_eq!(
        s.inst.counter("refused.not_waiting"),
        1,
        "only the bridge's start-up probe"
    );
}

/// A daemon that issues its own permits refuses outside ones: `--permits-from redis` against
/// it stops at once with a sentence saying what to change.
#[test]
fn permits_from_redis_needs_an_external_daemon() {
    let redis = RedisServer::start();
    let mut inst = Instance::new("redis-permit-src");
    inst.start_daemon(&[], &[]);
    let out = inst
        .command(
            &[
                "bridge",
                "redis",
                "--instance",
                &inst.name.clone(),
                "--redis",
                &redis.url(),
                "--permits-from",
                "redis",
            ],
            &[],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the bridge");
    let out = out.wait_with_output().expect("the bridge exits");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("engine.permits = \"external\"") && err.contains("QUANTUM_ENGINE_PERMITS"),
        "{err}"
    );
}

/// Entries that cannot be read go to the dead-letter stream with their fields and the reason,
/// are acknowledged, and the bridge carries on with the next plan.
#[test]
fn unreadable_entries_go_to_the_dead_letter_stream_and_the_bridge_goes_on() {
    let s = Stack::start("redis-dlq", Opts::default());
    let bad: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("symbol", "BTCUSDT"), ("decision", "EXECUTE")],
            "plan_id",
        ),
        (
            vec![
                ("plan_id", "d000000000000001"),
                ("symbol", "BTCUSDT"),
                ("decision", "BUY"),
            ],
            "EXECUTE",
        ),
        (
            vec![
                ("plan_id", "d000000000000002"),
                ("symbol", "DOGEUSDT"),
                ("decision", "HOLD"),
            ],
            "DOGEUSDT",
        ),
        (vec![("payload", "{not json")], "payload"),
        (
            vec![
                ("plan_id", "D000000000000003"),
                ("symbol", "BTCUSDT"),
                ("decision", "HOLD"),
            ],
            "plan_id",
        ),
        (
            vec![
                ("plan_id", "d000000000000004"),
                ("symbol", "BTCUSDT"),
                ("decision", "EXECUTE"),
                ("kill_score", "high"),
            ],
            "kill_score",
        ),
    ];
    let mut ids = Vec::new();
    for (fields, _) in &bad {
        ids.push(s.xadd(fields));
    }
    let good = "e000000000000005";
    s.plan(good, "HOLD");
    let r = s.wait_result(good, 1);
    assert_eq!((r["executed"].as_str(), r["error"].as_str()), ("false", ""));
    let dlq = s.entries(DLQ);
    assert_eq!(dlq.len(), bad.len(), "{dlq:?}");
    for ((fields, why), (id, (_, got))) in bad.iter().zip(ids.iter().zip(&dlq)) {
        for (k, v) in fields {
            assert_eq!(got.get(*k).map(String::as_str), Some(*v), "{got:?}");
        }
        assert!(got["error"].contains(why), "{why}: {got:?}");
        assert_eq!(&got["source_id"], id);
    }
    assert_eq!(
        s.entries(RESULTS).len(),
        1,
        "only the good plan has a result"
    );
    wait_for(10, "every entry acknowledged", || s.pending() == 0);
    wait_for(10, "the dead letters counted", || {
        s.bridge_stat("plans_dlq") == bad.len() as u64
    });
    assert!(s.bridge_log_has("moved to quantum:stream:apply.plan.dlq"));
}

/// Without keyspace notifications (a Redis that refuses CONFIG), the bridge says what to run
/// and still picks up the operators' ledger syncs by re-reading.
#[test]
fn ledger_syncs_are_read_again_when_notifications_cannot_be_enabled() {
    let s = Stack::start(
        "redis-nonotify",
        Opts {
            redis_args: vec!["--rename-command", "CONFIG", ""],
            bridge_args: vec!["--ledger-poll-ms", "100"],
            ..Opts::default()
        },
    );
    s.wait_bridge_log("CONFIG SET notify-keyspace-events Kh");
    let _: () = s
        .conn()
        .hset("quantum:position:BTCUSDT", "ledger_amount", "0.5")
        .unwrap();
    s.wait_ledger("0.5");
}

/// Plans keep coming while the Redis bridge is killed with SIGKILL and restarted, and while
/// redis-server is killed and restarted (it keeps an fsynced append-only file): every plan gets
/// exactly one result entry, every entry is acknowledged, and no plan is ordered twice.
#[test]
fn restarts_of_the_bridge_and_of_redis_lose_nothing_and_repeat_nothing() {
    let mut s = Stack::start(
        "redis-restarts",
        Opts {
            sim_position: Some("BTCUSDT=100"),
            persistent_redis: true,
            bridge_args: vec!["--order-id-wait-ms", "500"],
            ..Opts::default()
        },
    );
    let _: () = s
        .conn()
        .hset("quantum:position:BTCUSDT", "ledger_amount", "100")
        .unwrap();
    s.wait_ledger("100");

    const N: usize = 400;
    // Every 40th plan is EXECUTE (PARTIAL_25), the others HOLD. Entries get explicit ids, so a
    // write whose answer was lost (Redis killed) is not added twice when the writer retries.
    let plan_ids: Vec<String> = (0..N)
        .map(|i| format!("{:016x}", 0xfeed_0000_0000 + i as u64))
        .collect();
    let writer = {
        let client = s.redis.client();
        let ids = plan_ids.clone();
        std::thread::spawn(move || {
            // Entry ids carry the time Redis took the plan, which ages a plan without its own
            // timestamp: today's, so the EXECUTE plans are not stale.
            let base = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64;
            let mut written = 0usize;
            let mut conn: Option<redis::Connection> = None;
            while written < ids.len() {
                let i = written;
                let decision = if i % 40 == 0 { "EXECUTE" } else { "HOLD" };
                let entry = format!("{base}-{}", i + 1);
                let c = match &mut conn {
                    Some(c) => c,
                    None => match client.get_connection_with_timeout(Duration::from_millis(200)) {
                        Ok(c) => conn.insert(c),
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                    },
                };
                let r: redis::RedisResult<String> = redis::cmd("XADD")
                    .arg(PLANS)
                    .arg(&entry)
                    .arg(entry_fields(&btc_plan(&ids[i], decision, "PARTIAL_25")))
                    .query(c);
                match r {
                    Ok(_) => written += 1,
                    Err(e) if e.to_string().contains("equal or smaller") => written += 1,
                    Err(_) => {
                        conn = None;
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                }
                std::thread::sleep(Duration::from_millis(4));
            }
        })
    };
    let results = |s: &Stack| s.entries(RESULTS).len();
    wait_for(30, "100 results", || results(&s) >= 100);
    s.kill_bridge();
    std::thread::sleep(Duration::from_millis(200));
    s.start_bridge();
    wait_for(30, "200 results", || results(&s) >= 200);
    s.redis.kill();
    std::thread::sleep(Duration::from_millis(300));
    s.redis.restart();
    wait_for(60, "300 results", || results(&s) >= 300);
    s.kill_bridge();
    s.start_bridge();
    wait_for(60, "330 results", || results(&s) >= 330);
    // The daemon dies too (SIGKILL, plans arriving): the new one recovers from its journal,
    // the Binance bridge re-attaches, and plans the Redis bridge had not seen acknowledged
    // are delivered again; none gets a second order or a second result entry.
    s.kill_daemon();
    s.daemon_pid = s.inst.start_daemon(&[], &[]);
    writer.join().expect("the writer");

    wait_for(60, "a result for every plan", || results(&s) >= N);
    wait_for(20, "every entry acknowledged", || s.pending() == 0);
    // Nothing more comes.
    std::thread::sleep(Duration::from_millis(1500));
    let all = s.entries(RESULTS);
    let mut per_plan: HashMap<String, Vec<Fields>> = HashMap::new();
    for (_, f) in all {
        per_plan.entry(f["plan_id"].clone()).or_default().push(f);
    }
    for id in &plan_ids {
        let rs = per_plan.get(id).map_or(0, Vec::len);
        assert_eq!(
            rs,
            1,
            "plan {id} has {rs} result entries: {:?}",
            per_plan.get(id)
        );
    }
    assert_eq!(per_plan.len(), N, "results for plans nobody sent");
    let executed: HashSet<String> = per_plan
        .values()
        .flatten()
        .filter(|f| f["executed"] == "true")
        .map(|f| f["plan_id"].clone())
        .collect();
    let orders = s.sim_orders();
    let clients: Vec<&str> = orders
        .iter()
        .map(|o| o["clientOrderId"].as_str().unwrap())
        .collect();
    let unique: HashSet<&&str> = clients.iter().collect();
    assert_eq!(
        unique.len(),
        clients.len(),
        "an order was placed twice: {clients:?}"
    );
    let ordered: HashSet<String> = clients
        .iter()
        .map(|c| c.trim_start_matches("qpc-").to_string())
        .collect();
    assert_eq!(ordered, executed, "orders and executed results disagree");
    assert!(
        !executed.is_empty(),
        "no EXECUTE plan executed: {per_plan:?}"
    );
    assert!(s.entries(DLQ).is_empty());
    assert!(s.bridge_log_has("resuming: same daemon"));
}

/// An executed plan whose exchange never answers (no Binance bridge) has its result held for
/// the order id. The bridge is killed with SIGKILL while it holds it: the restarted bridge
/// replays from the saved low mark, holds it again and writes it once, without the order id,
/// after the wait; the plan that came meanwhile gets its result too.
#[test]
fn a_result_held_for_its_order_id_is_written_once_across_a_kill() {
    let mut s = Stack::start(
        "redis-held",
        Opts {
            // Long enough for the steps below on a loaded machine; the restarted bridge holds
            // the result this long again.
            bridge_args: vec!["--order-id-wait-ms", "8000"],
            ..Opts::default()
        },
    );
    s.inst.inject_ok(
        r#"{"cmd":"position_mode","hedge":false}
{"cmd":"position","symbol":"BTCUSDT","amount":"0.062","mark":"104000"}"#,
    );
    let _: () = s
        .conn()
        .hset("quantum:position:BTCUSDT", "ledger_amount", "0.062")
        .unwrap();
    s.wait_ledger("0.062");
    s.plan(EXECUTED, "EXECUTE");
    wait_for(10, "the core's executed result", || {
        core_events(s.name())
            .iter()
            .any(|e| matches!(e, Event::PlanResult(r) if r.executed()))
    });
    // A plan behind it is written while the executed one is still held: that write saves the
    // hold (low_seq) with it.
    s.plan("5000000000000001", "HOLD");
    s.wait_result("5000000000000001", 1);
    let state = s.hash(&format!("quantum:bridge:{}", s.name()));
    let n = |k: &str| state[k].parse::<u64>().unwrap();
    assert!(
        n("low_seq") < n("next_seq"),
        "the hold is not saved: {state:?}"
    );
    assert!(
        s.results_of(EXECUTED).is_empty(),
        "written before its wait ended"
    );
    s.kill_bridge();
    s.plan(DENIED, "HOLD");
    s.start_bridge();
    s.wait_bridge_log(&format!(
        "from=Seq({}) replay_until={}",
        n("low_seq"),
        n("next_seq")
    ));
    let r = s.wait_result(EXECUTED, 1);
    assert_eq!(
        (r["executed"].as_str(), r["order_id"].as_str()),
        ("true", ""),
        "{r:?}"
    );
    assert_eq!(s.wait_result(DENIED, 1)["decision"], "HOLD");
    wait_for(10, "the hold counted", || {
        s.bridge_stat("results_without_order_id") == 1
    });
    assert_eq!(s.results_of(EXECUTED).len(), 1);
    assert_eq!(s.results_of("5000000000000001").len(), 1);
    assert_eq!(s.entries(RESULTS).len(), 3);
    wait_for(10, "every entry acknowledged", || s.pending() == 0);
}

/// The daemon dies (SIGKILL) and a new one starts: the bridge waits for it, serves it in a new
/// session resuming the journal's numbering, and a plan written while no daemon ran reaches the
/// new one. Then the bridge is away while thousands of events overrun the results ring: they
/// come from the journal, each plan's result written once.
#[test]
fn the_bridge_serves_a_restarted_daemon() {
    let mut s = Stack::start(
        "redis-daemon",
        Opts {
            // A small results ring, so that events the bridge was away for fall off it.
            daemon_env: vec![("QUANTUM_RINGS_RESULTS_CAPACITY", "1024")],
            ..Opts::default()
        },
    );
    s.plan("1000000000000001", "HOLD");
    s.wait_result("1000000000000001", 1);
    s.kill_daemon();
    s.wait_bridge_log("the core daemon has gone");
    // A plan while no daemon runs: it waits in Redis, unacknowledged.
    s.plan("1000000000000002", "HOLD");
    s.daemon_pid = s
        .inst
        .start_daemon(&[], &[("QUANTUM_RINGS_RESULTS_CAPACITY", "1024")]);
    s.wait_bridge_log("a new daemon continuing the numbering (journal)");
    let r = s.wait_result("1000000000000002", 1);
    assert_eq!(r["decision"], "HOLD", "{r:?}");
    s.plan("1000000000000003", "HOLD");
    s.wait_result("1000000000000003", 1);
    wait_for(10, "every entry acknowledged", || s.pending() == 0);
    wait_for(10, "two sessions counted", || {
        s.bridge_stat("sessions") == 2
    });

    // The bridge is away (SIGKILL) while the core decides 3,000 plans from another source:
    // their events overrun the ring many times. The restarted bridge reads what the ring no
    // longer holds from the daemon's journal and mirrors every result once.
    s.kill_bridge();
    let (ok, err) = s.inst.inject_generated(3000, 7, &["--decision", "HOLD"]);
    assert!(ok, "{err}");
    s.start_bridge();
    wait_for(60, "3,003 result entries", || {
        s.entries(RESULTS).len() >= 3003
    });
    std::thread::sleep(Duration::from_millis(300));
    let entries = s.entries(RESULTS);
    let mut per_plan: HashMap<String, usize> = HashMap::new();
    for (_, f) in &entries {
        *per_plan.entry(f["plan_id"].clone()).or_default() += 1;
    }
    assert_eq!(entries.len(), 3003, "one result entry per plan");
    assert!(
        per_plan.values().all(|n| *n == 1),
        "a plan with two entries"
    );
    for i in 0..3000u64 {
        let id = format!("{:016x}", (7u64 << 32) | i);
        assert_eq!(per_plan.get(&id), Some(&1), "plan {id}");
    }
    assert_eq!(s.bridge_stat("missed_events"), 0);
    wait_for(5, "the backfill counted", || {
        s.bridge_stat("backfilled_events") > 1024
    });
}

/// Pending entries a dead consumer left are claimed (XAUTOCLAIM) and reach the core; one whose
/// stream entry was deleted before anyone processed it is reported and counted, not lost
/// silently.
#[test]
fn dead_consumers_pending_entries_are_claimed_and_trimmed_ones_counted() {
    fn dead_consumer(c: &mut redis::Connection) {
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(PLANS)
            .arg("quantum-core")
            .arg("0")
            .arg("MKSTREAM")
            .query(c)
            .unwrap();
        let fields = |id: &str| entry_fields(&btc_plan(id, "HOLD", "NONE"));
        let _: String = c.xadd(PLANS, "*", &fields("2000000000000001")).unwrap();
        let gone: String = c.xadd(PLANS, "*", &fields("2000000000000002")).unwrap();
        // Read by a consumer that then died, never acknowledged.
        let _: redis::Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("quantum-core")
            .arg("dead-bridge")
            .arg("COUNT")
            .arg(10)
            .arg("STREAMS")
            .arg(PLANS)
            .arg(">")
            .query(c)
            .unwrap();
        let _: u64 = c.xdel(PLANS, &[gone]).unwrap();
    }
    let s = Stack::start(
        "redis-claim",
        Opts {
            before_bridge: Some(dead_consumer),
            bridge_args: vec!["--claim-idle-ms", "0"],
            ..Opts::default()
        },
    );
    let r = s.wait_result("2000000000000001", 1);
    assert_eq!(r["decision"], "HOLD");
    wait_for(10, "every entry acknowledged", || s.pending() == 0);
    wait_for(10, "the deleted entry counted", || {
        s.bridge_stat("pending_trimmed") == 1 && s.bridge_stat("plans_redelivered") == 1
    });
    assert!(s.results_of("2000000000000002").is_empty());
    assert!(s.bridge_log_has("trimmed from the stream before the core saw"));
}

/// A password in the URL is used, and no log line shows it.
#[test]
fn a_password_in_the_url_is_used_and_never_logged() {
    const PASSWORD: &str = "s3cr3t-pw-for-the-test";
    let s = Stack::start(
        "redis-auth",
        Opts {
            password: Some(PASSWORD),
            ..Opts::default()
        },
    );
    s.plan("3000000000000001", "HOLD");
    s.wait_result("3000000000000001", 1);
    assert!(s.bridge_log_has("redis=redis://***@127.0.0.1:"));
    let log = s.bridge_log.lock().unwrap();
    assert!(log.iter().all(|l| !l.contains(PASSWORD)), "{log:?}");
}

/// Result entries per plan id.
fn results_per_plan(s: &Stack) -> HashMap<String, Vec<Fields>> {
    let mut per_plan: HashMap<String, Vec<Fields>> = HashMap::new();
    for (_, f) in s.entries(RESULTS) {
        per_plan.entry(f["plan_id"].clone()).or_default().push(f);
    }
    per_plan
}

/// `calls` of `INFO commandstats` for `cmd`.
fn command_calls(c: &mut redis::Connection, cmd: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(c)
        .expect("INFO");
    let prefix = format!("cmdstat_{cmd}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |rest| {
            rest.split(',').next().unwrap().parse().expect("a count")
        })
}

/// The bridge is frozen (SIGSTOP) for a second before each of five daemon kills (SIGKILL),
/// while a publisher XADDs 3,000 plans (EXECUTE and HOLD) once each: plan entries pushed to a
/// daemon that died before the bridge acknowledged them are pushed again to the next one, which
/// answers them again (`duplicate` for an EXECUTE plan it remembers, a second decision for a
/// HOLD plan). Every plan still gets exactly one result entry.
#[test]
fn one_result_entry_per_plan_across_bridge_pauses_and_daemon_kills() {
    let mut s = Stack::start("redis-once", Opts::default());
    let bridge_pid = s.bridge.as_ref().expect("a bridge").id();
    let total = 3000u64;
    let id = |i: u64| format!("{:016x}", 0x0ce0_0000_0000_0000u64 | i);
    let url = s.url.clone();
    let publisher = std::thread::spawn(move || {
        let mut c = redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection())
            .expect("connect");
        for i in 0..total {
            let decision = if i % 4 == 0 { "EXECUTE" } else { "HOLD" };
            let _: String = c
                .xadd(
                    PLANS,
                    "*",
                    &entry_fields(&scored_plan(&id(i), decision, "PARTIAL_75")),
                )
                .expect("XADD");
            std::thread::sleep(Duration::from_millis(3));
        }
    });
    for kill in 1..=5 {
        std::thread::sleep(Duration::from_millis(700));
        common::signal(bridge_pid, "-STOP");
        std::thread::sleep(Duration::from_secs(1));
        s.kill_daemon();
        s.daemon_pid = s.inst.start_daemon(&[], &[]);
        common::signal(bridge_pid, "-CONT");
        wait_for(
            30,
            &format!("the bridge to serve daemon {}", kill + 1),
            || s.bridge_log_count("redis bridge attached") > kill,
        );
    }
    publisher.join().expect("the publisher");
    wait_for(120, "a result entry for every plan", || {
        let per_plan = results_per_plan(&s);
        (0..total).all(|i| per_plan.contains_key(&id(i)))
    });
    wait_for(30, "every entry acknowledged", || s.pending() == 0);
    // Late second answers would come within a flush or two.
    std::thread::sleep(Duration::from_millis(500));
    let per_plan = results_per_plan(&s);
    let twice: Vec<String> = per_plan
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(p, v)| {
            let how: Vec<String> = v
                .iter()
                .map(|f| format!("{}/{}", f["decision"], f["error"]))
                .collect();
            format!("{p}: {}", how.join(" then "))
        })
        .collect();
    assert!(
        twice.is_empty(),
        "{} of {total} plans have more than one result entry: {:?}",
        twice.len(),
        &twice[..twice.len().min(10)]
    );
    assert_eq!(per_plan.len() as u64, total);
}

/// A plan whose entry reaches the core again after its result entry was written (a publisher's
/// retry here; a redelivered entry in the field) is answered again by the core (`duplicate` for
/// an EXECUTE plan, a second decision for a HOLD plan, which the core does not remember), and
/// the bridge writes no second result entry for it: not in the same session, not after the
/// bridge and the daemon restarted. The second entries are acknowledged all the same.
#[test]
fn a_plan_answered_again_gets_no_second_result_entry() {
    let mut s = Stack::start("redis-again", Opts::default());
    let (hold, execute) = ("a9a0000000000001", "a9a0000000000002");
    s.plan(hold, "HOLD");
    s.plan(execute, "EXECUTE");
    let first = s.wait_result(execute, 1);
    s.wait_result(hold, 1);
    s.plan(hold, "HOLD");
    s.plan(execute, "EXECUTE");
    wait_for(10, "the second entries answered", || {
        s.bridge_stat("plans_acked") >= 4
    });
    s.kill_bridge();
    s.kill_daemon();
    s.daemon_pid = s.inst.start_daemon(&[], &[]);
    s.start_bridge();
    s.wait_bridge_log("redis bridge attached");
    s.plan(hold, "HOLD");
    s.plan(execute, "EXECUTE");
    let marker = "a9a0000000000003";
    s.plan(marker, "HOLD");
    s.wait_result(marker, 1);
    wait_for(10, "every entry acknowledged", || s.pending() == 0);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.results_of(hold).len(), 1, "{:?}", s.results_of(hold));
    assert_eq!(s.results_of(execute), vec![first]);
}

/// The bridge comes back after 3,000 events overran the results ring, and the first reads of
/// the daemon's journal fail (the directory it was given is not there yet): the reads are
/// retried, counted and logged, and once the journal can be read every plan gets its result
/// entry; nothing is counted as missed.
#[test]
fn a_backfill_that_fails_is_retried_until_it_reads() {
    let mut s = Stack::start(
        "redis-bfretry",
        Opts {
            daemon_env: vec![("QUANTUM_RINGS_RESULTS_CAPACITY", "1024")],
            ..Opts::default()
        },
    );
    s.plan("2000000000000001", "HOLD");
    s.wait_result("2000000000000001", 1);
    s.kill_bridge();
    let (ok, err) = s.inst.inject_generated(3000, 9, &["--decision", "HOLD"]);
    assert!(ok, "{err}");
    let journal = s.inst.journal_dir();
    let link = journal.with_extension("later");
    let _ = std::fs::remove_file(&link);
    s.bridge_args
        .extend(["--journal-dir".to_string(), link.display().to_string()]);
    s.start_bridge();
    s.wait_bridge_log("backfill read failed; retrying");
    std::os::unix::fs::symlink(&journal, &link).expect("link the journal");
    wait_for(60, "3,001 result entries", || {
        s.entries(RESULTS).len() >= 3001
    });
    let per_plan = results_per_plan(&s);
    for i in 0..3000u64 {
        let id = format!("{:016x}", (9u64 << 32) | i);
        assert_eq!(per_plan.get(&id).map(Vec::len), Some(1), "plan {id}");
    }
    wait_for(5, "the retries counted", || {
        s.bridge_stat("backfill_retries") > 0 && s.bridge_stat("backfilled_events") > 1024
    });
    assert_eq!(s.bridge_stat("missed_events"), 0);
    std::fs::remove_file(&link).expect("remove the link");
}

/// The core sets the ledger 5,000 times (commands injected while the bridge was stopped); the
/// bridge mirrors each into `quantum:position:BTCUSDT`, and each of those writes comes back to
/// it as a keyspace notification. It reads the hash back for almost none of them: the HGETs
/// outside the bridge's own ledger script (two per write, counted by Redis too) stay far below
/// the number of writes.
#[test]
fn the_bridges_own_position_writes_are_not_read_back() {
    let mut s = Stack::start("redis-own", Opts::default());
    wait_for(10, "keyspace notifications on", || {
        let v: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("notify-keyspace-events")
            .query(&mut s.conn())
            .unwrap();
        v.get(1).is_some_and(|f| f.contains('K') && f.contains('h'))
    });
    signal_stop(&mut s);
    let n = 5000u64;
    let lines: String = (1..=n)
        .map(|i| {
            format!("{{\"cmd\":\"set_ledger\",\"symbol\":\"BTCUSDT\",\"amount\":\"0.{i:06}\"}}\n")
        })
        .collect();
    s.inst.inject_ok(&lines);
    let last = format!("0.{n:06}");
    s.wait_ledger(&last);
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut s.conn())
        .unwrap();
    s.start_bridge();
    s.wait_hash_field("quantum:position:BTCUSDT", "ledger_amount", &last);
    s.wait_hash_field(
        &format!("quantum:bridge:{}:ledger", s.name()),
        "BTCUSDT",
        &last,
    );
    // The notifications of the last writes are taken in the next rounds.
    std::thread::sleep(Duration::from_millis(1000));
    let mut c = s.conn();
    let (hget, eval) = (command_calls(&mut c, "hget"), command_calls(&mut c, "eval"));
    assert!(
        eval >= n,
        "every ledger set was mirrored by the script: {eval}"
    );
    let reads = hget.saturating_sub(2 * eval);
    assert!(
        reads < n / 10,
        "{reads} HGETs besides the script's for {n} writes of the bridge's own (hget {hget}, eval {eval})"
    );
    assert_eq!(s.ledger(), q(&last), "no own write came back as a command");
}

/// Stops the bridge cleanly (SIGTERM: it lets go of the plans ring, so `ctl inject` may push).
fn signal_stop(s: &mut Stack) {
    let mut c = s.bridge.take().expect("a running bridge");
    common::signal(c.id(), "-TERM");
    c.wait().expect("wait for the bridge");
}

/// A legacy publisher writing `timestamp` as Python's `str(time.time())`, as integer seconds,
/// as milliseconds or as ISO 8601 has its plans decided; an unreadable `timestamp` is a warning
/// and a count, and the plan is decided all the same.
#[test]
fn legacy_timestamps_are_read_liberally() {
    let s = Stack::start("redis-ts", Opts::default());
    let stamps = [
        ("f100000000000001", "1796511749.7101772"),
        ("f100000000000002", "1796511749"),
        ("f100000000000003", "1796511749710"),
        ("f100000000000004", "2026-12-05T10:02:29.710Z"),
        ("f100000000000005", "2026-12-05T12:02:29.710+02:00"),
        ("f100000000000006", "last tuesday"),
    ];
    for (id, ts) in stamps {
        s.xadd(&[
            ("plan_id", id),
            ("symbol", "BTCUSDT"),
            ("decision", "HOLD"),
            ("timestamp", ts),
        ]);
    }
    for (id, _) in stamps {
        let r = s.wait_result(id, 1);
        assert_eq!(r["decision"], "HOLD", "{r:?}");
    }
    assert!(s.entries(DLQ).is_empty(), "{:?}", s.entries(DLQ));
    wait_for(10, "the unreadable timestamp counted", || {
        s.bridge_stat("plan_fields_unreadable") == 1
    });
    assert!(s.bridge_log_has("last tuesday"));
}

/// An EXECUTE plan older than the maximum plan age, by its own timestamp or, without one, by
/// the time Redis took its entry, is answered `plan_stale`, acknowledged, and never ordered.
#[test]
fn a_stale_plan_through_redis_is_blocked_plan_stale_and_acknowledged() {
    let s = Stack::start(
        "redis-stale",
        Opts {
            sim_position: Some("BTCUSDT=100"),
            ..Opts::default()
        },
    );
    let _: () = s
        .conn()
        .hset("quantum:position:BTCUSDT", "ledger_amount", "100")
        .unwrap();
    s.wait_ledger("100");
    let two_days_ago = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - 2 * 86_400_000;
    // No timestamp: the entry's id says when Redis took it, here long ago (the
    // stream is empty, so an old id is still a new entry).
    let _: String = redis::cmd("XADD")
        .arg(PLANS)
        .arg("1000000000000-1")
        .arg(entry_fields(&btc_plan(
            "5a1e000000000002",
            "EXECUTE",
            "PARTIAL_25",
        )))
        .query(&mut s.conn())
        .unwrap();
    s.xadd_plan(&Plan {
        created_at_ms: two_days_ago,
        ..btc_plan("5a1e000000000001", "EXECUTE", "PARTIAL_25")
    });
    for id in ["5a1e000000000001", "5a1e000000000002"] {
        let r = s.wait_result(id, 1);
        assert_eq!(r["executed"], "false", "{r:?}");
        assert_eq!(r["error"], "plan_stale", "{r:?}");
    }
    wait_for(20, "both entries acknowledged", || s.pending() == 0);
    let orders = sim_http(s.rest.as_ref().unwrap(), "GET", "/sim/orders", None);
    assert_eq!(orders.as_array().map(Vec::len), Some(0), "{orders}");
}

/// Every leg of the path a legacy user lives with, timed live with every process real:
/// redis-server, the simulator, `quantum run` and both bridges. Each plan gets exactly one
/// sample in the Redis bridge's legs and each order one in the Binance bridge's, read back from
/// their interval logs with HdrHistogram's own reader; the daemon times every decision by
/// outcome; and `ctl metrics` serves all of them, parsed with a Prometheus text parser.
#[test]
fn every_leg_is_timed_once_per_plan_and_served_as_metrics() {
    const EXECUTED: u64 = 4;
    const HOLDS: u64 = 3;
    let dir = tempfile::tempdir().unwrap();
    let redis_log = dir.path().join("redis.hlog");
    let binance_log = dir.path().join("binance.hlog");
    let s = Stack::start(
        "legs",
        Opts {
            sim_position: Some("BTCUSDT=100"),
            bridge_args: vec![
                "--hdr-log",
                redis_log.to_str().unwrap(),
                "--latency-interval-ms",
                "200",
            ],
            binance_args: vec![
                "--hdr-log",
                binance_log.to_str().unwrap(),
                "--latency-interval-ms",
                "200",
            ],
            daemon_env: vec![("QUANTUM_LATENCY_INTERVAL_MS", "200")],
            ..Opts::default()
        },
    );
    let mut c = s.conn();
    let pos = "quantum:position:BTCUSDT";
    let _: () = c.hset(pos, "ledger_amount", "100").unwrap();
    s.wait_ledger("100");
    // Exits one after another (each closes a quarter of what is left, once the ledger has
    // followed the fill), and HOLD plans between them.
    let mut left = q("100");
    for i in 0..EXECUTED {
        let id = format!("{:016x}", 0x1e65_0000_0000u64 + i);
        s.xadd_plan(&scored_plan(&id, "EXECUTE", "PARTIAL_25"));
        let r = s.wait_result(&id, 1);
        assert_eq!(r["executed"], "true", "{r:?}");
        let filled = q(&r["safe_qty"]);
        left = left.checked_sub(filled).unwrap();
        s.wait_hash_field(pos, "ledger_amount", &left.to_string());
        if i < HOLDS {
            let hold = format!("{:016x}", 0x401d_0000_0000u64 + i);
            s.plan(&hold, "HOLD");
            s.wait_result(&hold, 1);
        }
    }
    assert_eq!(
        s.wait_sim_orders(EXECUTED as usize).len(),
        EXECUTED as usize
    );

    // The metrics endpoint, while the gauges of an interval with samples are up: one more
    // plan at a time until the scrape shows every leg.
    let want = [
        ("quantum_latency_decision_seconds", ("outcome", "executed")),
        (
            "quantum_latency_decision_seconds",
            ("outcome", "not_execute"),
        ),
        (
            "quantum_latency_redis_entry_result_seconds",
            ("quantile", "0.5"),
        ),
        (
            "quantum_latency_redis_read_result_seconds",
            ("quantile", "0.5"),
        ),
        ("quantum_latency_exchange_ack_seconds", ("quantile", "0.5")),
        (
            "quantum_latency_exchange_intent_seconds",
            ("quantile", "0.5"),
        ),
    ];
    let mut missing = Vec::new();
    let mut extra = 0u64;
    wait_for(30, "every leg in one scrape of ctl metrics", || {
        // Keep every series busy: an exit of a quarter (the position is never closed) and a
        // HOLD each round.
        let id = format!("{:016x}", 0x1e66_0000_0000u64 + extra);
        s.xadd_plan(&scored_plan(&id, "EXECUTE", "PARTIAL_25"));
        let r = s.wait_result(&id, 1);
        assert_eq!(r["executed"], "true", "{r:?}");
        let filled = q(&r["safe_qty"]);
        left = left.checked_sub(filled).unwrap();
        s.wait_hash_field(pos, "ledger_amount", &left.to_string());
        let hold = format!("{:016x}", 0x401e_0000_0000u64 + extra);
        s.plan(&hold, "HOLD");
        s.wait_result(&hold, 1);
        extra += 1;
        let out = s
            .inst
            .command(
                &[
                    "ctl",
                    "metrics",
                    "--instance",
                    s.name(),
                    "--once",
                    "--rate-interval-ms",
                    "10",
                ],
                &[],
            )
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .expect("the exposition parses");
        missing = want
            .iter()
            .filter(|(name, (k, v))| {
                !scrape.samples.iter().any(|x| {
                    x.metric == *name
                        && x.labels.get(k) == Some(*v)
                        && matches!(x.value, prometheus_parse::Value::Gauge(g) | prometheus_parse::Value::Untyped(g) if g > 0.0)
                })
            })
            .map(|(n, l)| format!("{n}{l:?}"))
            .collect();
        missing.is_empty()
    });
    assert!(missing.is_empty(), "{missing:?}");

    // The interval logs: exactly one sample per plan answered (Redis) and per order (exchange).
    let plans = EXECUTED + HOLDS + 2 * extra;
    let orders = EXECUTED + extra;
    let count = |path: &std::path::Path, tag: &str| -> u64 {
        let bytes = std::fs::read(path).unwrap_or_default();
        quantum_ipc::latency::read::intervals(&bytes)
            .unwrap_or_default()
            .into_iter()
            .filter(|i| i.tag == tag)
            .map(|i| i.hist.len())
            .sum()
    };
    let transport = |stage: &str| -> u64 {
        ["rest", "ws"]
            .iter()
            .map(|t| count(&binance_log, &format!("exchange.{stage}.transport={t}")))
            .sum()
    };
    wait_for(10, "every sample in the interval logs", || {
        count(&redis_log, "redis.entry_result") == plans
            && count(&redis_log, "redis.read_result") == plans
            && transport("intent") == orders
            && transport("ack") == orders
            && transport("send") == orders
            && transport("fill") == orders
    });
    assert_eq!(count(&redis_log, "redis.entry_result"), plans);
    assert_eq!(transport("ack"), orders);
}

/// A hedge-mode symbol through Redis alone, with every process real: the bridge writes each
/// side's exchange amount to its own field, the operator syncs each side's ledger with `HSET`
/// (a positive short read as its negative), a plan naming SHORT closes only the short side
/// (its result entry names the side) and its fill lands in `ledger_amount_short`, while the
/// long side's fields stay as they were; a plan naming no side is answered
/// `p33_denied:position_side_required` and orders nothing.
#[test]
fn a_hedge_mode_symbol_runs_through_redis_side_by_side() {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        r#"[[symbols]]
name = "BTCUSDT"
position_mode = "hedge"
tolerance = "0.001"
min_qty = "0.001"
max_qty = "1000"
step = "0.001"
min_notional = "100"
"#,
    )
    .unwrap();
    let s = Stack::start(
        "redis-hedge",
        Opts {
            sim_position: Some("BTCUSDT=0.062"),
            sim_args: vec!["--hedge-mode", "--position", "BTCUSDT=-0.040"],
            daemon_args: vec!["--config", config.path().to_str().unwrap()],
            ..Opts::default()
        },
    );
    let pos = "quantum:position:BTCUSDT";
    s.wait_hash_field(pos, "exchange_amount_long", "0.062");
    s.wait_hash_field(pos, "exchange_amount_short", "-0.04");
    let _: () = redis::cmd("HSET")
        .arg(pos)
        .arg("ledger_amount_long")
        .arg("0.062")
        .arg("ledger_amount_short")
        .arg("0.04")
        .query(&mut s.conn())
        .unwrap();
    let gauge = |label: &str| Qty::from_units(s.inst.counter(label) as i64);
    wait_for(20, "both sides' ledgers in the core", || {
        gauge("ledger.BTCUSDT:LONG") == q("0.062") && gauge("ledger.BTCUSDT:SHORT") == q("-0.04")
    });

    let plan = |id: &str, side: Option<&str>| {
        let mut f = vec![
            ("plan_id", id),
            ("symbol", "BTCUSDT"),
            ("decision", "EXECUTE"),
            ("action", "FULL_CLOSE"),
            ("kill_score", "0.5"),
        ];
        if let Some(side) = side {
            f.push(("position_side", side));
        }
        s.xadd(&f);
    };
    plan("5e00000000000001", Some("SHORT"));
    let r = s.wait_result("5e00000000000001", 1);
    assert_eq!(r["executed"], "true", "{r:?}");
    assert_eq!(r["symbol"], "BTCUSDT", "{r:?}");
    assert_eq!(r["position_side"], "SHORT", "{r:?}");
    assert_eq!(q(&r["safe_qty"]), q("0.04"), "{r:?}");
    // The fill closes the short side: its ledger field follows, the long side's does not move.
    s.wait_hash_field(pos, "ledger_amount_short", "0");
    s.wait_hash_field(pos, "exchange_amount_short", "0");
    let h = s.hash(pos);
    assert_eq!(q(&h["ledger_amount_long"]), q("0.062"), "{h:?}");
    assert_eq!(q(&h["exchange_amount_long"]), q("0.062"), "{h:?}");
    assert!(!h.contains_key("ledger_amount"), "no one-way field: {h:?}");

    plan("5e00000000000002", None);
    let r = s.wait_result("5e00000000000002", 1);
    assert_eq!(r["executed"], "false", "{r:?}");
    assert_eq!(r["error"], "p33_denied:position_side_required", "{r:?}");
    let orders = match sim_http(s.rest.as_deref().unwrap(), "GET", "/sim/orders", None) {
        Value::Array(v) => v,
        v => panic!("/sim/orders: {v}"),
    };
    assert_eq!(orders.len(), 1, "{orders:?}");
    assert_eq!(orders[0]["positionSide"], "SHORT");
    assert_eq!(orders[0]["side"], "BUY");
    assert_eq!(orders[0]["reduceOnly"], false);
}
