//! `quantum run` with real processes and real shared memory: streams, a producer killed
//! mid-stream, the seeds' reconcile story (every event on `results`, in order, and the order's
//! lifecycle from the exchange's reports), the instance lock, config printing and SIGTERM. No
//! Redis, no network.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use common::{read_n, signal, wait_for, Instance};
use quantum_core::engine::STAGE_SAMPLE_EVERY;
use quantum_core::event::Event;
use quantum_core::p33::P33Reason;
use quantum_core::result::Block;
use quantum_core::{Action, Decision, Outcome, Plan, PlanId, PlanResult, SymbolId};
use quantum_ipc::codes::{DoneCode, OrderStatus, ReportSource};
use quantum_ipc::wire::{self, Message};
use quantum_ipc::{PeerStatus, Ring, RingSpec};
use quantum_redis::legacy::plan_entry_json;

/// Plans streamed through the daemon between two other processes. 10^6 takes about 15 s with
/// a debug build on two cores.
const STREAM: u64 = 1_000_000;

fn plan_ids(rs: &[PlanResult]) -> Vec<u64> {
    rs.iter().map(|r| r.plan.0).collect()
}

#[test]
fn a_million_plans_stream_from_inject_through_the_daemon_to_tail_in_order() {
    let mut inst = Instance::new("stream");
    // `results` never waits for a reader: a lap as long as the stream keeps a debug-built tail
    // that falls behind from missing any.
    inst.start_daemon_fed_by_hand(
        &["--quiet"],
        &[
            ("QUANTUM_RINGS_PEER_TIMEOUT_MS", "20000"),
            ("QUANTUM_RINGS_RESULTS_CAPACITY", "2097152"),
        ],
    );
    let name = inst.name.clone();
    let count = STREAM.to_string();
    let tail = inst.spawn(
        &[
            "ctl",
            "tail",
            "--instance",
            &name,
            "--count",
            &count,
            "--only",
            "results",
        ],
        Stdio::piped(),
    );
    let stdout = tail.stdout.take().expect("tail stdout");
    inst.spawn(
        &[
            "ctl",
            "inject",
            "--instance",
            &name,
            "--generate",
            &count,
            "--decision",
            "HOLD",
            "--seed",
            "7",
        ],
        Stdio::null(),
    );
    let mut n = 0u64;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("tail line");
        let id = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("plan="))
            .unwrap_or_else(|| panic!("no plan id in {line:?}"));
        assert_eq!(
            u64::from_str_radix(id, 16).unwrap(),
            (7 << 32) | n,
            "result {n} out of order: {line}"
        );
        assert!(
            line.contains("error=None") && line.contains("decision=HOLD"),
            "{line}"
        );
        n += 1;
    }
    assert_eq!(n, STREAM, "tail ended early");
    assert_eq!(inst.counter("plans_in"), STREAM);
    assert_eq!(inst.counter("results.non_execute"), STREAM);
    assert_eq!(inst.counter("invalid_records.ctl"), 0);
    // One event per plan, and the start's.
    assert_eq!(inst.counter("events_out"), STREAM + 1);
}

#[test]
fn a_producer_killed_mid_stream_is_reported_and_replaced_without_a_torn_record() {
    let mut inst = Instance::new("kill");
    inst.start_daemon_fed_by_hand(&["--quiet"], &[]);
    let name = inst.name.clone();
    let mut events = inst.events();
    let victim = inst.spawn(
        &[
            "ctl",
            "inject",
            "--instance",
            &name,
            "--generate",
            "1000000000",
            "--decision",
            "HOLD",
            "--seed",
            "8",
        ],
        Stdio::null(),
    );
    let victim_pid = victim.id();
    let first = events.results(5_000, 60);
    victim.kill().expect("SIGKILL the producer");
    victim.wait().unwrap();
    // Everything the producer committed before it died comes through, in order, and nothing
    // else: ids are exactly 0, 1, 2, ... of seed 8.
    let mut ids = plan_ids(&first);
    wait_for(30, "the daemon to take what the dead producer left", || {
        inst.counter("plans_in") == inst.counter("records_in.ctl")
            && Ring::open(&RingSpec::new(&inst.name, "ctl", 0))
                .unwrap()
                .is_empty()
    });
    let total = inst.counter("plans_in") as usize;
    ids.extend(plan_ids(&events.results(total - ids.len(), 30)));
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            *id,
            (8 << 32) | i as u64,
            "record {i} is torn or out of order"
        );
    }
    assert_eq!(inst.counter("invalid_records.ctl"), 0);
    let ctl = Ring::open(&RingSpec::new(&name, "ctl", 0)).unwrap();
    assert_eq!(
        ctl.producer_status(3_000),
        PeerStatus::Dead {
            pid: victim_pid as u64
        }
    );
    wait_for(10, "the daemon to report the dead producer", || {
        inst.log_has(&format!("peer died without detaching; a new producer may attach ring=\"ctl\" role=\"producer\" pid={victim_pid}"))
    });
    assert_eq!(inst.counter("peer_deaths.ctl"), 1);
    let rings = inst
        .command(&["ctl", "rings", "--instance", &name], &[])
        .output()
        .unwrap();
    let rings = String::from_utf8_lossy(&rings.stdout);
    assert!(
        rings.contains(&format!("producer dead pid {victim_pid}")),
        "{rings}"
    );
    // A new producer attaches to the same ring and carries on.
    let ok = inst
        .command(
            &[
                "ctl",
                "inject",
                "--instance",
                &name,
                "--generate",
                "1000",
                "--decision",
                "HOLD",
                "--seed",
                "9",
            ],
            &[],
        )
        .status()
        .unwrap()
        .success();
    assert!(ok, "second producer failed");
    let next = plan_ids(&events.results(1_000, 60));
    assert!(
        next.iter()
            .enumerate()
            .all(|(i, id)| *id == (9 << 32) | i as u64),
        "the new producer's plans came out wrong"
    );
    wait_for(10, "the new producer to be seen", || {
        inst.log_has("peer detached ring=\"ctl\" role=\"producer\"")
            || inst.log_has("peer attached ring=\"ctl\" role=\"producer\"")
    });
}

#[test]
fn the_seeds_reconcile_story_runs_through_the_daemon() {
    let mut inst = Instance::new("story");
    inst.start_daemon_fed_by_hand(&[], &[]);
    let name = inst.name.clone();
    let mut orders = inst.consumer("orders");
    let mut events = inst.events();
    let btc = inst
        .counters()
        .symbol_id("BTCUSDT")
        .expect("BTCUSDT in the directory");

    // A garbage record and a record of the wrong kind on `plans` are counted and skipped.
    let plans = Ring::open(&RingSpec::new(&name, "plans", 0)).unwrap();
    let mut bridge = plans.producer::<64>().unwrap();
    let mut garbage = [0u8; 64];
    garbage[0] = 200;
    bridge.try_push(&garbage).unwrap();
    let report = Message::OrderReport(wire::OrderReport {
        status: OrderStatus::Filled,
        symbol: btc,
        side: wire::Side::Sell,
        source: ReportSource::Answer,
        plan_id: 1,
        cum_qty: 1,
        price: 1,
        order_id: 1,
        time_ms: 1,
        orig_qty: 1,
    });
    bridge.try_push(&report.encode()).unwrap();
    wait_for(10, "two invalid records on plans", || {
        inst.counter("invalid_records.plans") == 2
    });

    let dir = std::env::temp_dir().join(format!("{name}.jsonl"));
    let mut f = std::fs::File::create(&dir).unwrap();
    writeln!(
        f,
        r#"{{"cmd":"position_mode","hedge":false}}
{{"cmd":"position","symbol":"BTCUSDT","amount":"0.062","mark":"104000"}}
{{"cmd":"set_ledger","symbol":"BTCUSDT","amount":"0.002"}}
{{"plan_id":"f1a8d7f48713d5cf","symbol":"BTCUSDT","decision":"EXECUTE","action":"PARTIAL_75","kill_score":"0.539"}}
this line is not JSON
{{"cmd":"set_ledger","symbol":"BTCUSDT","amount":"0.062"}}
{{"plan_id":"84222f2c53d22b91","symbol":"BTCUSDT","decision":"EXECUTE","action":"PARTIAL_75","kill_score":0.539}}"#
    )
    .unwrap();
    drop(f);
    let out = inst
        .command(
            &[
                "ctl",
                "inject",
                "--instance",
                &name,
                "--file",
                dir.to_str().unwrap(),
            ],
            &[],
        )
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    // The bad line is skipped and named, the others are sent, and inject exits 1.
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("line 5: not JSON"), "{err}");
    assert!(err.contains("1 line(s) could not be parsed"), "{err}");

    let rs = events.results(2, 30);
    let (blocked, ok) = (rs[0], rs[1]);
    assert_eq!(blocked.plan, PlanId(0xf1a8_d7f4_8713_d5cf));
    assert!(matches!(
        blocked.outcome,
        Outcome::Blocked(Block::P33Denied(P33Reason::ReconcileRequiredQtyMismatch, _))
    ));
    assert_eq!(ok.plan, PlanId(0x8422_2f2c_53d2_2b91));
    assert_eq!(
        ok.safe_qty(),
        Some("0.046".parse().unwrap()),
        "safe_qty 0.046 for PARTIAL_75 of 0.062"
    );

    let os = read_n(&mut orders, 1, 30);
    let Message::OrderIntent(o) = os[0] else {
        panic!("{os:?}")
    };
    assert_eq!(o.plan_id, 0x8422_2f2c_53d2_2b91);
    assert_eq!(o.qty, 4_600_000);
    assert_eq!(o.side, wire::Side::Sell);
    assert!(o.reduce_only);
    assert_eq!(o.symbol, btc);
    assert_eq!(inst.counter("orders_out"), 1);
    assert_eq!(inst.counter("deny.p33.reconcile_required_qty_mismatch"), 1);
    wait_for(10, "the legacy log lines", || {
        inst.log_has("[PERMIT_WAIT] BLOCK plan=f1a8d7f48713d5cf reason=p33_denied:reconcile_required_qty_mismatch")
            && inst.log_has("[PERMIT_WAIT] OK plan=84222f2c53d22b91")
            && inst.log_has("Result published (executed=True, error=None)")
    });
    // `ctl stats` reads the same counters from outside.
    let stats = inst
        .command(
            &[
                "ctl",
                "stats",
                "--instance",
                &name,
                "--interval-ms",
                "50",
                "--json",
            ],
            &[],
        )
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&stats.stdout).expect("stats JSON");
    assert_eq!(v["counters"]["results.executed"], 1);
    assert_eq!(v["counters"]["invalid_records.plans"], 2);
    assert_eq!(v["rings"]["orders"]["consumers"][0]["status"], "alive");
}

/// The seeds' story again, event by event: `results` carries, in order, the book changes the
/// operator injected, each EXECUTE plan's acceptance, permits as issued, intent and result;
/// then what the exchange's reports did to the order, and `ctl tail` prints them as lines.
#[test]
fn the_seeds_story_emits_every_event_in_order() {
    let mut inst = Instance::new("mirror");
    inst.start_daemon_fed_by_hand(&["--quiet"], &[]);
    let name = inst.name.clone();
    let mut events = inst.events();
    let btc = inst.counters().symbol_id("BTCUSDT").expect("BTCUSDT");
    let q = |s: &str| s.parse::<quantum_core::Qty>().unwrap();
    let inject = |inst: &Instance, lines: &str| inst.inject_ok(lines);
    const DENIED: PlanId = PlanId(0xf1a8_d7f4_8713_d5cf);
    const EXECUTED: PlanId = PlanId(0x8422_2f2c_53d2_2b91);
    let t0 = quantum_ipc::liveness::unix_ms();
    inject(
        &inst,
        r#"{"cmd":"position_mode","hedge":false}
{"cmd":"position","symbol":"BTCUSDT","amount":"0.062","mark":"104000"}
{"cmd":"set_ledger","symbol":"BTCUSDT","amount":"0.002"}
{"plan_id":"f1a8d7f48713d5cf","symbol":"BTCUSDT","decision":"EXECUTE","action":"PARTIAL_75","kill_score":"0.539"}
{"cmd":"set_ledger","symbol":"BTCUSDT","amount":"0.062"}
{"plan_id":"84222f2c53d22b91","symbol":"BTCUSDT","decision":"EXECUTE","action":"PARTIAL_75","kill_score":0.539}
"#,
    );
    let es = events.take(13, 30);
    let t1 = quantum_ipc::liveness::unix_ms();
    let names: Vec<&str> = es
        .iter()
        .map(|e| match e {
            Event::AccountMode { .. } => "account",
            Event::Position { .. } => "position",
            Event::LedgerSet { .. } => "ledger",
            Event::PlanAccepted { .. } => "accepted",
            Event::GovPermit(_) => "gov",
            Event::P33Permit(_) => "p33",
            Event::OrderIntent(_) => "intent",
            Event::PlanResult(_) => "result",
            _ => "other",
        })
        .collect();
    assert_eq!(
        names,
        [
            "account", "position", "ledger", "accepted", "gov", "p33", "result", "ledger",
            "accepted", "gov", "p33", "intent", "result"
        ],
        "{es:#?}"
    );
    assert!(
        matches!(es[0], Event::AccountMode { hedge: false, at_ms } if (t0..=t1).contains(&at_ms))
    );
    let es = &es[1..];
    let Event::Position {
        symbol,
        amount,
        mark,
        time_ms,
    } = es[0]
    else {
        unreachable!()
    };
    assert_eq!(
        (symbol.0, amount, mark),
        (btc, q("0.062"), "104000".parse().unwrap())
    );
    assert!((t0..=t1).contains(&time_ms));
    // Out of sync: the governor grants, P3.3 denies with the mismatch and its context.
    let (Event::GovPermit(g), Event::P33Permit(d)) = (es[3], es[4]) else {
        unreachable!()
    };
    assert_eq!((g.plan, g.allow, g.ttl_ms), (DENIED, true, 15_000));
    assert!((t0..=t1).contains(&g.issued_at_ms), "{g:?}");
    assert_eq!(
        (d.plan, d.allow, d.reason, d.safe_qty),
        (
            DENIED,
            false,
            Some(P33Reason::ReconcileRequiredQtyMismatch),
            q("0")
        )
    );
    assert_eq!(
        (d.context.exchange, d.context.ledger, d.context.tolerance),
        (q("0.062"), q("0.002"), q("0.001"))
    );
    // Synced: both allow, P3.3 with safe_qty 0.046 and its side, and the order is made.
    let (Event::P33Permit(a), Event::OrderIntent(i)) = (es[9], es[10]) else {
        unreachable!()
    };
    assert_eq!((a.plan, a.allow, a.safe_qty), (EXECUTED, true, q("0.046")));
    assert_eq!(a.side, Some(wire::Side::Sell));
    assert_eq!((i.plan, i.qty), (EXECUTED, q("0.046")));

    // The exchange's answer, then the stream's repeat of it: the order is sent, accepted,
    // filled and done once; the ledger follows; a snapshot brings the exchange along.
    let exchange = Ring::open(&RingSpec::new(&name, "exchange", 0)).unwrap();
    let mut bridge = exchange.producer::<64>().unwrap();
    let sent = Message::OrderSent(wire::OrderSent {
        symbol: btc,
        plan_id: EXECUTED.0,
        at_ms: 1,
    });
    let filled = Message::OrderReport(wire::OrderReport {
        status: OrderStatus::Filled,
        symbol: btc,
        side: wire::Side::Sell,
        source: ReportSource::Answer,
        plan_id: EXECUTED.0,
        cum_qty: q("0.046").units(),
        price: q("104000").units(),
        order_id: 77,
        time_ms: 2,
        orig_qty: q("0.046").units(),
    });
    let snap = Message::PositionSnapshot(wire::PositionSnapshot {
        symbol: btc,
        amount: q("0.016").units(),
        mark_price: q("104100").units(),
        exchange_time_ms: 3,
    });
    for m in [sent, filled, filled, snap] {
        bridge.try_push(&m.encode()).unwrap();
    }
    let es = events.take(5, 30);
    assert!(
        matches!(es[0], Event::OrderSent { plan, .. } if plan == EXECUTED),
        "{es:#?}"
    );
    assert!(
        matches!(es[1], Event::OrderAccepted { order_id: 77, .. }),
        "{es:#?}"
    );
    assert!(
        matches!(es[2], Event::Fill(f) if f.qty == q("0.046") && f.ledger_after == q("0.016")),
        "{es:#?}"
    );
    assert!(
        matches!(es[3], Event::OrderDone(d) if d.code == DoneCode::Filled && d.released == q("0")),
        "{es:#?}"
    );
    assert!(
        matches!(es[4], Event::Position { amount, .. } if amount == q("0.016")),
        "{es:#?}"
    );
    assert!(events.quiet_for(200), "the repeated report made an event");
    wait_for(10, "the lifecycle counted", || {
        inst.counter("orders.sent") == 1
            && inst.counter("orders.fills") == 1
            && inst.counter("orders.done.filled") == 1
            && inst.counter("invalid_records.exchange") == 0
    });

    // `ctl tail` prints every event as a line; `--count` counts results only.
    inject(
        &inst,
        r#"{"cmd":"set_ledger","symbol":"BTCUSDT","amount":"0.01"}
{"plan_id":"00000000000000aa","symbol":"BTCUSDT","decision":"EXECUTE","action":"PARTIAL_75","kill_score":"0.5"}
"#,
    );
    let out = inst
        .command(&["ctl", "tail", "--instance", &name, "--count", "3"], &[])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<_> = text.lines().collect();
    let tail = &lines[lines.len() - 5..];
    assert_eq!(tail[0], "position BTCUSDT ledger_amount=0.01", "{text}");
    assert_eq!(
        tail[1],
        "accepted plan=00000000000000aa symbol=BTCUSDT decision=EXECUTE action=PARTIAL_75"
    );
    assert_eq!(
        tail[2],
        "permit gov plan=00000000000000aa granted=true ttl=15 symbol=BTCUSDT"
    );
    assert_eq!(
        tail[3],
        "permit p33 plan=00000000000000aa allow=false reason=reconcile_required_qty_mismatch exchange_amt=0.016 ledger_amt=0.01 diff=0.006 tolerance=0.001 symbol=BTCUSDT"
    );
    assert!(
        tail[4].starts_with("BTCUSDT: Result published (executed=False, error=p33_denied:reconcile_required_qty_mismatch) plan=00000000000000aa"),
        "{text}"
    );
    assert!(text.contains("fill plan=84222f2c53d22b91 symbol=BTCUSDT side=SELL qty=0.046 price=104000 cum_qty=0.046 ledger=0.016"), "{text}");
    assert!(
        text.contains(
            "done plan=84222f2c53d22b91 symbol=BTCUSDT code=filled filled=0.046 released=0"
        ),
        "{text}"
    );
}

#[test]
fn a_second_daemon_of_the_same_instance_refuses_to_start() {
    let mut inst = Instance::new("twice");
    let first = inst.start_daemon_fed_by_hand(&["--quiet"], &[]);
    let out = inst
        .command(&["run", "--instance", &inst.name], &[])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("already running") && err.contains(&first.to_string()),
        "{err}"
    );
    // The first one still serves.
    assert!(inst.counters().owner_alive());
    assert_eq!(inst.counters().owner_pid(), u64::from(first));
}

#[test]
fn print_config_reflects_file_and_env_and_names_bad_keys() {
    let inst = Instance::new("config");
    let out = inst
        .command(
            &[
                "run",
                "--instance",
                &inst.name,
                "--print-config",
                "--mode",
                "pipelined",
            ],
            &[
                ("APPLY_PERMIT_WAIT_MS", "777"),
                ("QUANTUM_RINGS_CAPACITY", "1024"),
                ("QUANTUM_GOVERNOR_MODE", "production"),
            ],
        )
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "mode = \"pipelined\"",
        "apply_wait_ms = 777",
        "capacity = 1024",
        "mode = \"production\"",
        "name = \"BTCUSDT\"",
    ] {
        assert!(text.contains(want), "{want} missing in\n{text}");
    }
    // The printed config is a valid config file.
    let path = std::env::temp_dir().join(format!("{}.toml", inst.name));
    std::fs::write(&path, text.as_bytes()).unwrap();
    let again = inst
        .command(
            &[
                "run",
                "--instance",
                &inst.name,
                "--print-config",
                "--config",
                path.to_str().unwrap(),
            ],
            &[],
        )
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&again.stdout), text);
    std::fs::write(&path, "[engine]\ntable_capacityy = 5\n").unwrap();
    let bad = inst
        .command(
            &[
                "run",
                "--instance",
                &inst.name,
                "--config",
                path.to_str().unwrap(),
            ],
            &[],
        )
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("table_capacityy"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
    let bad = inst
        .command(
            &["run", "--instance", &inst.name, "--print-config"],
            &[("APPLY_PERMIT_STEP_MS", "soon")],
        )
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("APPLY_PERMIT_STEP_MS"));
}

#[test]
fn sigterm_drains_every_accepted_plan_and_exits_zero() {
    const N: u64 = 20_000;
    let mut inst = Instance::new("term");
    let pid = inst.start_daemon_fed_by_hand(&["--quiet", "--mode", "pipelined"], &[]);
    let name = inst.name.clone();
    let mut events = inst.events();
    let n = N.to_string();
    let ok = inst
        .command(
            &[
                "ctl",
                "inject",
                "--instance",
                &name,
                "--generate",
                &n,
                "--seed",
                "3",
            ],
            &[],
        )
        .status()
        .unwrap()
        .success();
    assert!(ok);
    wait_for(60, "the daemon to take every plan", || {
        inst.counter("plans_in") == N
    });
    signal(pid, "-TERM");
    let daemon = inst.children.iter_mut().find(|c| c.id() == pid).unwrap();
    let status = daemon.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    // Every plan taken in has its result, even those still in the engine at the signal; the
    // ring stays readable after the daemon unlinked it.
    // (The pipelined engine resolves waiting plans out of arrival order: compare as sets.)
    let mut got = plan_ids(&events.results(N as usize, 30));
    got.sort_unstable();
    got.dedup();
    assert_eq!(got.len() as u64, N, "duplicate results");
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, id)| *id == (3 << 32) | i as u64),
        "results of other plans than the ones sent"
    );
    assert!(inst.log_has("stopping: no more ingress"));
    assert!(inst.log_has("plans_in=20000"));
    // Only the ingress rings stay (a restarted daemon takes them over), and every record in
    // them was taken and released.
    let left = quantum_ipc::list_segments(Some(&name)).unwrap();
    let names: Vec<&str> = left.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["ctl", "exchange", "plans"],
        "segments left after a clean exit"
    );
    for s in &left {
        let ring = quantum_ipc::Ring::open(&quantum_ipc::RingSpec::new(&name, &s.name, 0)).unwrap();
        assert_eq!(ring.len(), 0, "{} still holds records", s.name);
    }
}

/// `kill -9` of the daemon: what a producer writes while it is down waits in the ring, and
/// `ctl inject` says it was not accepted (exit 1); the restarted daemon takes the ring over,
/// answers each of those plans once, still knows the plan ids from before the crash, and its
/// journal verifies.
#[test]
fn a_daemon_killed_with_kill_9_recovers_and_takes_its_rings_over() {
    let mut inst = Instance::new("kill9");
    let pid = inst.start_daemon_fed_by_hand(&["--quiet"], &[]);
    let (ok, err) = inst.inject_generated(300, 7, &["--wait-secs", "30"]);
    assert!(ok, "{err}");
    assert!(
        err.contains("the daemon durably accepted 300 of 300 record(s)"),
        "{err}"
    );
    signal(pid, "-KILL");
    let d = inst.children.iter_mut().find(|c| c.id() == pid).unwrap();
    d.wait().unwrap();

    // The daemon is dead: sent, kept in the ring, not accepted.
    let (ok, err) = inst.inject_generated(200, 8, &["--wait-secs", "2"]);
    assert!(!ok, "inject must fail when the daemon takes nothing: {err}");
    assert!(
        err.contains("the daemon durably accepted 0 of 200 record(s)"),
        "{err}"
    );
    assert!(err.contains("wait in ring ctl"), "{err}");

    inst.start_daemon_fed_by_hand(&["--quiet"], &[]);
    wait_for(10, "the take-over in the log", || {
        inst.log_has("took over the ingress ring") && inst.log_has("replayed=")
    });
    let mut events = inst.events();
    let got = events.results(200, 30);
    assert!(got
        .iter()
        .all(|r| r.plan.0 >> 32 == 8 && !r.outcome.is_duplicate()));
    let mut ids = plan_ids(&got);
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 200);
    // The plans from before the crash are remembered: sent again, each is a duplicate.
    let (ok, err) = inst.inject_generated(300, 7, &["--wait-secs", "30"]);
    assert!(ok, "{err}");
    let again = events.results(300, 30);
    assert!(again.iter().all(|r| r.outcome.is_duplicate()), "{again:?}");
    assert!(inst.counter("recovery.replayed") > 0);
    let v = inst
        .command(&["ctl", "journal", "verify", "--instance", &inst.name], &[])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(v.status.success(), "{text}");
    assert!(text.trim_end().ends_with("ok"), "{text}");
}

/// `ctl journal verify` run again and again while the daemon appends (plans streaming in,
/// 1 MiB segments rolling over): every run finds the journal healthy; a reader never meets a
/// record half written or a segment being created.
#[test]
fn journal_verify_on_a_running_daemon_never_reports_damage() {
    let mut inst = Instance::new("jverify");
    inst.start_daemon(
        &["--quiet"],
        &[
            ("QUANTUM_JOURNAL_SEGMENT_MB", "1"),
            ("QUANTUM_JOURNAL_KEEP_SEGMENTS", "1000"),
        ],
    );
    let done = std::sync::atomic::AtomicBool::new(false);
    let (runs, failures, injected) = std::thread::scope(|s| {
        let feeder = s.spawn(|| {
            let mut seed = 1;
            // Relaxed: a stop flag; nothing is read through it.
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let (ok, err) = inst.inject_generated(5_000, seed, &["--wait-secs", "60"]);
                assert!(ok, "{err}");
                seed += 1;
            }
            seed - 1
        });
        let mut failures = Vec::new();
        let mut runs = 0;
        while runs < 25 {
            let v = inst
                .command(&["ctl", "journal", "verify", "--instance", &inst.name], &[])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&v.stdout).into_owned();
            if !v.status.success() || !text.trim_end().ends_with("ok") {
                failures.push(text);
            }
            runs += 1;
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (runs, failures, feeder.join().unwrap())
    });
    assert!(
        failures.is_empty(),
        "{} of {runs} verify runs failed while {injected} batches went in; first: {}",
        failures.len(),
        failures[0]
    );
    assert!(
        inst.counter("journal.seq") > 13_106,
        "the journal rolled over to a second segment at least"
    );
}

/// `quantum run --hdr-log FILE`: executed plans' stages are recorded; `quantum ctl latency`
/// shows the last interval's percentiles from the counters segment, and the file is a
/// standard HdrHistogram interval log with one tag per stage.
#[test]
fn a_running_daemon_reports_its_latency_per_stage() {
    let mut inst = Instance::new("latency");
    let log = std::env::temp_dir().join(format!("{}.hlog", inst.name));
    let log_arg = log.to_str().unwrap().to_string();
    inst.start_daemon_fed_by_hand(
        &["--quiet", "--hdr-log", &log_arg],
        &[("QUANTUM_LATENCY_INTERVAL_MS", "500")],
    );
    // A position and a ledger that let exits execute, then 20 exits (each takes a quarter of
    // what is left; nobody answers the orders, so each stays in flight).
    let mut lines = String::from(
        r#"{"cmd":"position_mode","hedge":false}
{"cmd":"position","symbol":"BTCUSDT","amount":"100","mark":"104000"}
{"cmd":"set_ledger","symbol":"BTCUSDT","amount":"100"}
"#,
    );
    for i in 0..20u64 {
        let exit = Plan {
            kill_score: "0.5".parse().unwrap(),
            ..Plan::exit(
                PlanId(0x1a7e_0000_0000 + i),
                SymbolId(0),
                Decision::Execute,
                Action::Partial25,
            )
        };
        lines.push_str(&plan_entry_json(&exit, "BTCUSDT"));
        lines.push('\n');
    }
    inst.inject_ok(&lines);
    wait_for(10, "20 intents", || inst.counter("orders_out") >= 20);
    // The interval with the plans is published within two intervals.
    let mut seen = serde_json::Value::Null;
    wait_for(10, "end-to-end latency in the counters", || {
        let o = inst
            .command(&["ctl", "latency", "--instance", &inst.name, "--json"], &[])
            .output()
            .unwrap();
        seen = serde_json::from_slice(&o.stdout).unwrap_or_default();
        seen["series"]["end_to_end"]["p50"].as_u64().unwrap_or(0) > 0
    });
    for stage in ["ingest", "chain", "egress", "end_to_end"] {
        let p50 = seen["series"][stage]["p50"].as_u64().unwrap_or(0);
        let max = seen["series"][stage]["max"].as_u64().unwrap_or(0);
        assert!(p50 > 0 && max >= p50, "{stage}: {seen}");
    }
    // The same samples are in the interval log, tagged by stage.
    wait_for(10, "the interval log", || {
        let bytes = std::fs::read(&log).unwrap_or_default();
        let mut per_tag = std::collections::BTreeMap::<String, u64>::new();
        for i in quantum_daemon::latency::read::intervals(&bytes).unwrap_or_default() {
            *per_tag.entry(i.tag).or_default() += i.hist.len();
        }
        // Every plan's stages, and the four inside the chain for the sampled plans: one in
        // eight executed plans, the first of each eight (plans 1, 9 and 17 of 20).
        let sampled = 20u64.div_ceil(u64::from(STAGE_SAMPLE_EVERY));
        ["ingest", "chain", "egress", "end_to_end"]
            .iter()
            .all(|t| per_tag.get(*t) == Some(&20))
            && ["governor", "p33", "wait", "consume"]
                .iter()
                .all(|t| per_tag.get(*t) == Some(&sampled))
            && per_tag.get("decision.outcome=executed") == Some(&20)
    });
    let _ = std::fs::remove_file(&log);
}

/// Every decision is timed, not only executed plans: a daemon whose plans are all denied (no
/// exchange position ever reported, so P3.3 denies each) writes one interval-log sample per
/// plan under its outcome's tag, read back with HdrHistogram's own reader, and `ctl latency`
/// shows the denied outcome.
#[test]
fn a_daemon_whose_plans_are_all_denied_times_every_decision() {
    const PLANS: u64 = 2_000;
    let mut inst = Instance::new("lat-denied");
    let log = std::env::temp_dir().join(format!("{}.hlog", inst.name));
    let log_arg = log.to_str().unwrap().to_string();
    let pid = inst.start_daemon_fed_by_hand(
        &["--quiet", "--hdr-log", &log_arg],
        &[("QUANTUM_LATENCY_INTERVAL_MS", "200")],
    );
    let mut lines = String::new();
    for i in 0..PLANS {
        let exit = Plan::exit(
            PlanId(0x0de1_0000_0000 + i),
            SymbolId(0),
            Decision::Execute,
            Action::Partial25,
        );
        lines.push_str(&plan_entry_json(&exit, "BTCUSDT"));
        lines.push('\n');
    }
    // Two that are not EXECUTE plans: their own outcome.
    for i in 0..2u64 {
        let hold = Plan::exit(
            PlanId(0x0de2_0000_0000 + i),
            SymbolId(0),
            Decision::Hold,
            Action::Partial25,
        );
        lines.push_str(&plan_entry_json(&hold, "BTCUSDT"));
        lines.push('\n');
    }
    inst.inject_ok(&lines);
    wait_for(20, "every plan answered", || {
        inst.counter("results.blocked") + inst.counter("results.non_execute") >= PLANS + 2
    });
    assert_eq!(inst.counter("orders_out"), 0);
    let mut seen = serde_json::Value::Null;
    wait_for(10, "the denied outcome in ctl latency", || {
        let o = inst
            .command(&["ctl", "latency", "--instance", &inst.name, "--json"], &[])
            .output()
            .unwrap();
        seen = serde_json::from_slice(&o.stdout).unwrap_or_default();
        seen["series"]["decision.outcome=denied_p33"]["p50"]
            .as_u64()
            .unwrap_or(0)
            > 0
    });
    assert!(
        seen["series"]["end_to_end"]["p50"].is_null(),
        "nothing executed: {seen}"
    );
    let o = inst
        .command(&["ctl", "latency", "--instance", &inst.name], &[])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with("decision.outcome=denied_p33"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        row.split_whitespace()
            .skip(1)
            .all(|c| c.parse::<u64>().is_ok()),
        "{text}"
    );
    // Stopping writes the interval in progress: the log has one sample per plan.
    signal(pid, "-TERM");
    let daemon = inst.children.iter_mut().find(|c| c.id() == pid).unwrap();
    assert!(daemon.wait().unwrap().success());
    let bytes = std::fs::read(&log).unwrap();
    let mut per_tag = std::collections::BTreeMap::<String, u64>::new();
    for i in quantum_daemon::latency::read::intervals(&bytes).unwrap() {
        *per_tag.entry(i.tag).or_default() += i.hist.len();
    }
    assert_eq!(
        per_tag.get("decision.outcome=denied_p33"),
        Some(&PLANS),
        "{per_tag:?}"
    );
    assert_eq!(
        per_tag.get("decision.outcome=not_execute"),
        Some(&2),
        "{per_tag:?}"
    );
    assert_eq!(per_tag.get("end_to_end"), None, "{per_tag:?}");
    let _ = std::fs::remove_file(&log);
}
