//! `quantum ctl journal state|plan` on real journals: one written by a real engine (mocked
//! clock) through the journal's own writer, with snapshots in the middle and a restart, and
//! one written by a running daemon.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::{bin, Instance};
use quantum_core::event::{Event, Switch};
use quantum_core::orders::{OrderInput, Report};
use quantum_core::recovery::State;
use quantum_core::{
    Action, Clock, Command, Decision, Engine, EngineConfig, Input, Plan, PlanId, Qty, SymbolId,
};
use quantum_daemon::audit;
use quantum_ipc::codes::{OrderStatus, ReportSource};
use quantum_ipc::journal::{snapshot, Journal, Options};
use quantum_redis::legacy::iso_ms;
use serde_json::Value;

/// A journal written as the daemon writes it, and what was written.
struct Made {
    dir: tempfile::TempDir,
    events: Vec<(u64, Event)>,
    snapshots: Vec<u64>,
    /// The dedupe horizon and order capacity the states were made with.
    horizon_ms: u64,
    capacity: usize,
}

impl Made {
    fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Each event's time as the audit reads it (its own, or the one before's).
    fn times(&self) -> Vec<Option<u64>> {
        let mut t = None;
        self.events
            .iter()
            .map(|(_, e)| {
                t = e.at_ms().or(t);
                t
            })
            .collect()
    }

    /// A recovery without a snapshot, from the journal's first event to `seq` (as
    /// `quantum run` folds a journal).
    fn recovered(&self, seq: u64) -> State {
        let mut s = State::new(3, self.horizon_ms, self.capacity);
        for (n, e) in self.events.iter().take_while(|(n, _)| *n <= seq) {
            s.apply(*n, e);
        }
        s
    }
}

/// `plans` plans through a real engine whose clock moves 100 ms per plan, with the exchange's
/// answers (fills, rejects, orders left open for a while), positions following the fills,
/// switches, a governor cooldown and rate limit that deny some plans, and a restart in the
/// middle (restore, reconciling, orders looked up); every event appended to a journal of
/// 1 MiB segments, snapshots written at `snap_every` events.
fn make_journal(plans: u64, snap_every: u64) -> Made {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EngineConfig::default();
    cfg.governor.mode = quantum_core::governor::GovMode::Production;
    cfg.governor.cooldown_ms = 400;
    cfg.governor.rate_limit = 4;
    cfg.governor.rate_window_ms = 4_000;
    let (clock, mock) = Clock::mock();
    mock.increment(Duration::from_secs(3_600));
    let mut engine = Engine::new(cfg.clone(), clock.clone()).unwrap();
    let names: Vec<String> = engine.symbols().names().map(str::to_owned).collect();
    assert_eq!(names.len(), 3);
    std::fs::write(dir.path().join("symbols"), names.join("\n") + "\n").unwrap();
    let (mut journal, _) = Journal::open(
        dir.path(),
        Options {
            segment_bytes: 1 << 20,
            fsync: false,
        },
        1,
    )
    .unwrap();
    let mut made = Made {
        dir,
        events: Vec::new(),
        snapshots: Vec::new(),
        horizon_ms: cfg.dedupe_horizon_ms,
        capacity: cfg.max_orders,
    };
    let mut state = State::new(3, cfg.dedupe_horizon_ms, cfg.max_orders);
    let mut next_snap = snap_every;
    let mut sink = |e: Event, made: &mut Made, state: &mut State| {
        let (seq, _) = journal.append(&e.to_message().encode()).unwrap();
        state.apply(seq, &e);
        made.events.push((seq, e));
        if seq >= next_snap {
            snapshot::write(made.dir.path(), seq, &state.encode()).unwrap();
            made.snapshots.push(seq);
            next_snap += snap_every;
        }
    };
    macro_rules! feed {
        ($input:expr) => {{
            let mut out = Vec::new();
            let _ = engine.handle($input, 0, &mut |e| out.push(e));
            for e in out {
                sink(e, &mut made, &mut state);
            }
        }};
    }
    let big: Qty = "1000000".parse().unwrap();
    let mark = "100".parse().unwrap();
    let mut amount = [big; 3];
    feed!(Input::Command(Command::AccountMode { hedge: false }));
    for s in 0..3u16 {
        feed!(Input::Command(Command::Position {
            symbol: SymbolId(s),
            amount: big,
            mark,
        }));
        feed!(Input::Command(Command::SetLedger {
            symbol: SymbolId(s),
            amount: big,
        }));
    }
    // Orders left open, answered a few plans later: (plan, symbol, side, qty, answer at).
    let mut open: Vec<(PlanId, SymbolId, quantum_core::Side, Qty, u64)> = Vec::new();
    let mut order_id = 1_000u64;
    for i in 0..plans {
        mock.increment(Duration::from_millis(100));
        let now = clock.wall_ms(clock.now_ns());
        if i == plans / 2 {
            // A restart: a new engine takes the state folded so far, with orders in flight.
            let mut restarted = Engine::new(cfg.clone(), clock.clone()).unwrap();
            let mut out = Vec::new();
            restarted
                .restore(&state.clone(), &mut |e| out.push(e))
                .unwrap();
            engine = restarted;
            for e in out {
                sink(e, &mut made, &mut state);
            }
            feed!(Input::Reoffer);
            // The exchange bridge tells the account's mode at every attach.
            feed!(Input::Command(Command::AccountMode { hedge: false }));
        }
        if i % 97 == 13 {
            feed!(Input::Command(Command::Switch(Switch::KillSwitch(true))));
        }
        if i % 97 == 17 {
            feed!(Input::Command(Command::Switch(Switch::KillSwitch(false))));
        }
        let symbol = SymbolId((i % 3) as u16);
        // The exchange's position as a stream brings it; an operator tops a drained one up
        // (exchange and ledger both).
        let k = usize::from(symbol.0);
        if amount[k].units() < big.units() / 4 {
            amount[k] = big;
            feed!(Input::Command(Command::SetLedger {
                symbol,
                amount: big,
            }));
        }
        feed!(Input::Command(Command::Position {
            symbol,
            amount: amount[k],
            mark,
        }));
        let id = PlanId(0x5a5a_0000_0000_0000 | i);
        let action = [Action::Partial25, Action::Partial50, Action::Partial75][(i % 3) as usize];
        let mut intent = None;
        let plan = Plan::exit(id, symbol, Decision::Execute, action);
        let mut out = Vec::new();
        let _ = engine.process_plan(plan, &mut |e| {
            if let Event::OrderIntent(o) = e {
                intent = Some(o);
            }
            out.push(e);
        });
        for e in out {
            sink(e, &mut made, &mut state);
        }
        if let Some(o) = intent {
            feed!(Input::Order(OrderInput::Sent {
                plan: o.plan,
                symbol: o.symbol,
                at_ms: now,
            }));
            open.push((o.plan, o.symbol, o.side, o.qty, i + 1 + i % 5));
        }
        // Answer the orders whose turn it is: most fill, some are rejected, after a restart
        // the unknown ones are found filled.
        let (due, later): (Vec<_>, Vec<_>) = open.into_iter().partition(|o| o.4 <= i);
        open = later;
        for (plan, symbol, side, qty, _) in due {
            order_id += 1;
            let rejected = plan.0 % 11 == 0;
            let report = Report {
                plan,
                symbol,
                side,
                status: if rejected {
                    OrderStatus::Rejected
                } else {
                    OrderStatus::Filled
                },
                cum_qty: if rejected { Qty::ZERO } else { qty },
                price: mark,
                order_id,
                time_ms: now,
                orig_qty: qty,
                source: ReportSource::Answer,
            };
            feed!(Input::Order(OrderInput::Report(report)));
            if !rejected {
                let k = usize::from(symbol.0);
                amount[k] = Qty::from_units(amount[k].units() - qty.units());
                feed!(Input::Command(Command::Position {
                    symbol,
                    amount: amount[k],
                    mark,
                }));
            }
        }
    }
    made
}

fn quantum(args: &[&str]) -> Output {
    std::process::Command::new(bin())
        .args(args)
        .env_remove("QUANTUM_JOURNAL_DIR")
        .output()
        .expect("run quantum")
}

fn ok_json(o: &Output) -> Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&o.stdout));
    })
}

/// A refusal of the tool's own: exit 1 and one line on stderr.
fn failed(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

/// A refusal of the command line (clap's usage error, exit 2).
fn usage(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The key property: at every sequence number, the state the audit rebuilds from the nearest
/// snapshot is the state a recovery from the journal's first event to there builds.
#[test]
fn the_state_at_a_sequence_number_is_what_a_recovery_to_it_builds() {
    let made = make_journal(9_000, 7_000);
    let last = made.events.last().unwrap().0;
    assert!(made.snapshots.len() >= 4, "{:?}", made.snapshots);
    let a = audit::Audit::open(made.dir()).unwrap();
    // Every event near a snapshot and a spread of the others, the first and last included.
    let mut points: Vec<u64> = (1..=last).step_by(97).collect();
    for s in &made.snapshots {
        points.extend(s.saturating_sub(3)..=(s + 3).min(last));
    }
    points.push(last);
    points.sort_unstable();
    points.dedup();
    let (mut reconciling, mut waiting, mut in_flight) = (0, 0, 0);
    let mut full = State::new(3, made.horizon_ms, made.capacity);
    let mut it = made.events.iter().peekable();
    for &n in &points {
        while let Some((seq, e)) = it.next_if(|(seq, _)| *seq <= n) {
            full.apply(*seq, e);
        }
        let got = a.state_at(n).unwrap();
        assert_eq!(got.state, full, "event {n}");
        let nearest = made.snapshots.iter().copied().filter(|s| *s <= n).max();
        assert_eq!(
            got.snapshot, nearest,
            "event {n} starts at its nearest snapshot"
        );
        assert_eq!(got.folded, n - nearest.unwrap_or(0));
        reconciling += usize::from(full.symbols.iter().any(|s| s.reconciling));
        waiting += usize::from(!full.pending.is_empty());
        in_flight += usize::from(!full.orders.is_empty());
    }
    // The points saw every part of the state.
    assert!(reconciling > 0 && waiting > 0 && in_flight > 0);
    assert!(full.symbols.iter().any(|s| !s.executions.is_empty()));
    // The shorthand the tool uses is the same thing.
    assert_eq!(
        audit::state_at(made.dir(), last).unwrap(),
        made.recovered(last)
    );
}

/// `--seq`, `--at` (RFC 3339 with and without milliseconds, epoch ms) and `--json` pick the
/// expected points; outside the journal they fail with one line naming its range.
#[test]
fn state_points_by_seq_and_time_and_refuses_outside_the_journal() {
    let made = make_journal(3_000, 6_000);
    let d = made.dir().display().to_string();
    let last = made.events.last().unwrap().0;
    let times = made.times();
    // One engine's clock: the journal's times never go back (the restart kept the clock).
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    let state = |extra: &[&str]| {
        let mut args = vec!["ctl", "journal", "state", "--instance", "x", "--dir", &d];
        args.extend_from_slice(extra);
        quantum(&args)
    };
    // --seq: the state of a recovery to there, in JSON.
    for n in [1, last / 3, last / 2 + 7, last] {
        let v = ok_json(&state(&["--seq", &n.to_string(), "--json"]));
        let want = made.recovered(n);
        assert_eq!(v["seq"], n);
        let t = times[(n - 1) as usize].map(iso_ms);
        assert_eq!(v["time"].as_str().map(str::to_owned), t);
        assert_eq!(v["dedupe_size"], want.dedupe.len());
        assert_eq!(v["plans"].as_array().unwrap().len(), want.pending.len());
        assert_eq!(v["orders"].as_array().unwrap().len(), want.orders.len());
        assert_eq!(v["kill_switch"], want.kill);
        for (i, s) in want.symbols.iter().enumerate() {
            let j = &v["symbols"][i];
            assert_eq!(j["ledger"], s.ledger.to_string());
            assert_eq!(j["reconciling"], s.reconciling);
            assert_eq!(
                j["executions"].as_array().unwrap().len(),
                s.executions.len()
            );
            let committed: i64 = want
                .orders
                .values()
                .filter(|o| o.symbol.index() == i)
                .map(|o| o.remaining().units())
                .sum();
            assert_eq!(j["committed"], Qty::from_units(committed).to_string());
        }
    }
    // A plan waiting at its acceptance holds both permits (issued in the same instant), and
    // at its intent it has its quantity.
    let (acc, plan) = made
        .events
        .iter()
        .find_map(|(s, e)| match e {
            Event::PlanAccepted { plan, .. } if *s > last / 2 + 100 => Some((*s, plan.id)),
            _ => None,
        })
        .unwrap();
    let v = ok_json(&state(&["--seq", &acc.to_string(), "--json"]));
    let p = &v["plans"][0];
    assert_eq!(p["plan"], plan.to_string());
    assert!(p["gov_permit"]["granted"].is_boolean(), "{p}");
    assert!(p["p33_permit"]["allow"].is_boolean(), "{p}");
    assert!(p["intent_qty"].is_null());
    // At its intent (its permits journaled just before it), it holds them and its quantity.
    let intent = made
        .events
        .iter()
        .find_map(|(s, e)| match e {
            Event::OrderIntent(i) if *s > acc && !i.lookup_first => Some((*s, i.plan, i.qty)),
            _ => None,
        })
        .unwrap();
    let v = ok_json(&state(&["--seq", &intent.0.to_string(), "--json"]));
    let p = &v["plans"][0];
    assert_eq!(p["plan"], intent.1.to_string());
    assert_eq!(p["gov_permit"]["granted"], true, "{p}");
    assert_eq!(p["p33_permit"]["allow"], true, "{p}");
    assert_eq!(p["p33_permit"]["safe_qty"], intent.2.to_string(), "{p}");
    assert_eq!(p["intent_qty"], intent.2.to_string(), "{p}");
    let text = String::from_utf8(state(&["--seq", &acc.to_string()]).stdout).unwrap();
    assert!(
        text.starts_with(&format!("state after event {acc} at ")),
        "{text}"
    );
    assert!(text.contains(&format!("plan={plan}")), "{text}");
    assert!(text.contains("    permit gov granted="), "{text}");

    // --at: the last event before the first one after the time.
    let point_of = |t: u64| {
        let i = times.iter().position(|x| x.is_some_and(|x| x > t)).unwrap();
        made.events[i - 1].0
    };
    let mid = times[made.events.len() / 2].unwrap() + 50;
    let expect = point_of(mid);
    for at in [iso_ms(mid), mid.to_string()] {
        let v = ok_json(&state(&["--at", &at, "--json"]));
        assert_eq!(v["seq"], expect, "--at {at}");
    }
    let whole = iso_ms(mid - mid % 1000).replace(".000Z", "Z");
    assert!(!whole.contains('.'));
    let v = ok_json(&state(&["--at", &whole, "--json"]));
    assert_eq!(v["seq"], point_of(mid - mid % 1000), "--at {whole}");

    // Outside the journal: one line naming its range.
    let first_t = times.iter().flatten().next().copied().unwrap();
    let last_t = times.iter().flatten().last().copied().unwrap();
    let range = format!("{} (event", iso_ms(first_t));
    for at in [first_t - 1, last_t + 1] {
        let err = failed(&state(&["--at", &iso_ms(at)]));
        assert!(err.contains("outside the journal"), "{err}");
        assert!(
            err.contains(&range) && err.contains(&iso_ms(last_t)),
            "{err}"
        );
    }
    let err = failed(&state(&["--seq", &(last + 1).to_string()]));
    assert!(
        err.contains(&format!("can answer for: events 1..={last}")),
        "{err}"
    );
    for (bad, why) in [
        (&["--seq", "0"][..], "--seq"),
        (&["--at", "yesterday"], "2026-01-25T00:31:07.123Z"),
        (&["--at", "1769301067"], "looks like seconds"),
        (&[], "--at"),
    ] {
        let err = usage(&state(bad));
        assert!(err.contains(why), "{bad:?}: {err}");
    }
}

/// Once the journal's first segment is pruned (as the daemon's compactor does), the first
/// point is the oldest snapshot the kept events follow; before it is an error naming the range.
#[test]
fn a_pruned_journal_answers_from_its_oldest_usable_snapshot() {
    let made = make_journal(3_000, 5_000);
    let d = made.dir().display().to_string();
    let last = made.events.last().unwrap().0;
    let segs = quantum_ipc::journal::segments(made.dir()).unwrap();
    assert!(segs.len() >= 2, "{segs:?}");
    std::fs::remove_file(&segs[0].1).unwrap();
    let kept = segs[1].0;
    let first = made
        .snapshots
        .iter()
        .copied()
        .find(|s| s + 1 >= kept)
        .unwrap();
    assert!(first < last);
    let state = |n: u64| {
        quantum(&[
            "ctl",
            "journal",
            "state",
            "--instance",
            "x",
            "--dir",
            &d,
            "--seq",
            &n.to_string(),
            "--json",
        ])
    };
    let err = failed(&state(first - 1));
    assert!(
        err.contains(&format!("can answer for: events {first}..={last}")),
        "{err}"
    );
    for n in [first, first + 1, last] {
        let v = ok_json(&state(n));
        assert_eq!(v["seq"], n);
        assert_eq!(v["dedupe_size"], made.recovered(n).dedupe.len());
    }
}

/// `ctl journal plan` on an executed plan: its events in order with times, the state before
/// its acceptance, its verdicts, order, fills and result; an unknown plan is an error.
#[test]
fn plan_tells_an_executed_plans_story_and_what_its_verdicts_saw() {
    let made = make_journal(1_500, 3_000);
    let d = made.dir().display().to_string();
    let executed = made
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::PlanResult(r) if r.executed() => Some(r.plan),
            _ => None,
        })
        .nth(400)
        .unwrap();
    let mine: Vec<&(u64, Event)> = made
        .events
        .iter()
        .filter(|(_, e)| e.plan() == Some(executed))
        .collect();
    let plan = |extra: &[&str]| {
        let mut args = vec!["ctl", "journal", "plan", "--instance", "x", "--dir", &d];
        args.extend_from_slice(extra);
        quantum(&args)
    };
    let id = executed.to_string();
    let o = plan(&[&id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    let kinds: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("  ") && l.as_bytes().get(2).is_some_and(u8::is_ascii_digit))
        .map(|l| l.trim_start().splitn(3, ' ').nth(2).unwrap_or(""))
        .collect();
    assert_eq!(kinds.len(), mine.len(), "{text}");
    for (want, got) in ["accepted", "permit gov", "permit p33", "intent"]
        .iter()
        .zip(&kinds)
    {
        assert!(got.starts_with(want), "{want}: {text}");
    }
    assert!(
        kinds[4].contains("Result published (executed=True"),
        "{text}"
    );
    assert!(
        text.contains("what its verdicts saw (the state after event"),
        "{text}"
    );

    let v = ok_json(&plan(&[&id, "--json"]));
    let seqs: Vec<u64> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, mine.iter().map(|(s, _)| *s).collect::<Vec<_>>());
    let Event::PlanAccepted { plan: p, at_ms, .. } = mine[0].1 else {
        panic!("{:?}", mine[0])
    };
    let before = made.recovered(mine[0].0 - 1);
    let b = &v["before"];
    assert_eq!(b["seq"], mine[0].0 - 1);
    let sym = &before.symbols[p.symbol.index()];
    assert_eq!(b["ledger"], sym.ledger.to_string());
    let (ex, ex_at) = sym.exchange.unwrap();
    assert_eq!(b["exchange"], ex.to_string());
    assert_eq!(b["exchange_age_ms"], at_ms - ex_at);
    assert_eq!(
        b["executions"].as_array().unwrap().len(),
        sym.executions.len()
    );
    assert_eq!(b["global_kill_switch"], before.kill);
    let Some(Event::P33Permit(q)) = mine
        .iter()
        .map(|(_, e)| *e)
        .find(|e| matches!(e, Event::P33Permit(_)))
    else {
        panic!("no P3.3 permit")
    };
    assert_eq!(
        v["p33_permit"]["exchange_amt"],
        q.context.exchange.to_string()
    );
    assert_eq!(v["p33_permit"]["ledger_amt"], q.context.ledger.to_string());
    assert_eq!(v["gov_permit"]["granted"], true);
    assert_eq!(v["result"]["executed"], true);
    assert_eq!(v["order"]["qty"], v["result"]["safe_qty"]);

    let err = failed(&plan(&["00000000000000ff"]));
    assert!(
        err.contains("plan 00000000000000ff is not in the journal"),
        "{err}"
    );
    let err = usage(&plan(&["xyz"]));
    assert!(err.contains("16 hex digits"), "{err}");
}

/// Beside a running daemon: the seeds' story (a plan denied for the ledger mismatch, then,
/// the ledger synced, one executed) read from its live journal.
#[test]
fn a_running_daemons_journal_answers_state_and_plan() {
    let mut inst = Instance::new("audit");
    inst.start_daemon_fed_by_hand(&["--quiet"], &[]);
    let mut events = inst.events();
    inst.inject_ok(
        r#"{"cmd":"position_mode","hedge":false}
{"cmd":"position","symbol":"BTCUSDT","amount":"0.062","mark":"104000"}
{"cmd":"set_ledger","symbol":"BTCUSDT","amount":"0.002"}
{"plan_id":"f1a8d7f48713d5cf","symbol":"BTCUSDT","decision":"EXECUTE","action":"PARTIAL_75","kill_score":"0.539"}
{"cmd":"set_ledger","symbol":"BTCUSDT","amount":"0.062"}
{"plan_id":"84222f2c53d22b91","symbol":"BTCUSDT","decision":"EXECUTE","action":"PARTIAL_75","kill_score":0.539}
"#,
    );
    events.results(2, 30);
    let run = |args: &[&str]| inst.command(args, &[]).output().unwrap();
    let name = inst.name.clone();
    let o = run(&[
        "ctl",
        "journal",
        "plan",
        "--instance",
        &name,
        "84222f2c53d22b91",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    let order: Vec<usize> = [
        " accepted plan=",
        " permit gov ",
        " permit p33 ",
        " intent ",
        "Result published (executed=True",
    ]
    .iter()
    .map(|w| text.find(w).unwrap_or_else(|| panic!("{w}: {text}")))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(
        text.contains("  BTCUSDT ledger=0.062 exchange=0.062 "),
        "{text}"
    );
    assert!(text.contains("verdict p33: allow=true"), "{text}");
    assert!(text.contains("safe_qty=0.046"), "{text}");

    let v = ok_json(&run(&[
        "ctl",
        "journal",
        "plan",
        "--instance",
        &name,
        "f1a8d7f48713d5cf",
        "--json",
    ]));
    assert_eq!(v["before"]["ledger"], "0.002");
    assert_eq!(v["before"]["exchange"], "0.062");
    assert_eq!(v["p33_permit"]["reason"], "reconcile_required_qty_mismatch");
    assert_eq!(v["p33_permit"]["diff"], "0.06");
    assert_eq!(v["result"]["executed"], false);
    assert!(v["order"].is_null());

    // The state after the executed plan's result: the ledger synced, its order in flight.
    let v = ok_json(&run(&[
        "ctl",
        "journal",
        "plan",
        "--instance",
        &name,
        "84222f2c53d22b91",
        "--json",
    ]));
    let seq = v["result"]["seq"].as_u64().unwrap();
    let v = ok_json(&run(&[
        "ctl",
        "journal",
        "state",
        "--instance",
        &name,
        "--seq",
        &seq.to_string(),
        "--json",
    ]));
    assert!(v["plans"].as_array().unwrap().is_empty());
    // Just before the result: the plan waits with its intent and both permits it consumed.
    let w = ok_json(&run(&[
        "ctl",
        "journal",
        "state",
        "--instance",
        &name,
        "--seq",
        &(seq - 1).to_string(),
        "--json",
    ]));
    let p = &w["plans"][0];
    assert_eq!(p["plan"], "84222f2c53d22b91");
    assert_eq!(p["intent_qty"], "0.046");
    assert_eq!(p["gov_permit"]["granted"], true, "{p}");
    assert_eq!(p["p33_permit"]["safe_qty"], "0.046", "{p}");
    let btc = v["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["symbol"] == "BTCUSDT")
        .unwrap();
    assert_eq!(btc["ledger"], "0.062");
    assert_eq!(btc["committed"], "0.046");
    assert_eq!(v["orders"][0]["plan"], "84222f2c53d22b91");
    assert_eq!(v["orders"][0]["state"], "intent");
}
