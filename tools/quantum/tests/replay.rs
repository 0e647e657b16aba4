//! `quantum replay`, the real binary on a real journal: the seeds' reconcile story replays
//! unchanged under its own configuration, and a tighter P3.3 tolerance turns its executed
//! BTCUSDT plans into `reconcile_required_qty_mismatch` denials and says so, as text, as JSON
//! lines, and through `--check`'s exit status.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use quantum_core::event::Event;
use quantum_core::orders::{OrderInput, Report};
use quantum_core::{
    Action, Clock, Command as Cmd, Decision, Engine, EngineConfig, Input, Plan, PlanId, Qty,
};
use quantum_ipc::codes::{OrderStatus, ReportSource};
use quantum_ipc::journal::{Journal, Options};

fn q(s: &str) -> Qty {
    s.parse().unwrap()
}

/// The seeds' story, journaled as a daemon would: BTCUSDT's exchange 0.062 against a ledger of
/// 0.002 is denied; the re-delivery is a duplicate; a HOLD; the operator syncs the ledger to
/// 0.0615 (0.0005 short of the exchange, within the 0.001 tolerance); two plans execute and
/// fill, the exchange's position following each fill.
fn seeds_journal(dir: &Path) {
    let cfg = EngineConfig::default();
    let names: Vec<&str> = cfg.symbols.iter().map(|s| s.name.as_str()).collect();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("symbols"), names.join("\n") + "\n").unwrap();
    let (clock, mock) = Clock::mock();
    let mut e = Engine::new(cfg, clock.clone()).unwrap();
    let (mut j, _) = Journal::open(dir, Options::default(), 0).unwrap();
    let mut events = vec![Event::Started {
        history: false,
        at_ms: clock.wall_ms(clock.now_ns()),
        since_ms: 0,
    }];
    let btc = e.symbols().id("BTCUSDT").unwrap();
    let eth = e.symbols().id("ETHUSDT").unwrap();
    let feed = |e: &mut Engine, i: Input, events: &mut Vec<Event>| {
        e.handle(i, 0, &mut |x| events.push(x)).unwrap();
    };
    let position = |amount: &str| {
        Input::Command(Cmd::Position {
            symbol: btc,
            amount: q(amount),
            mark: "104000".parse().unwrap(),
        })
    };
    // The exchange bridge tells the account's mode first.
    feed(
        &mut e,
        Input::Command(Cmd::AccountMode { hedge: false }),
        &mut events,
    );
    feed(&mut e, position("0.062"), &mut events);
    let ledger = |amount: &str| {
        Input::Command(Cmd::SetLedger {
            symbol: btc,
            amount: q(amount),
        })
    };
    feed(&mut e, ledger("0.002"), &mut events);
    let first = Plan::exit(
        PlanId(0xf1a8_d7f4_8713_d5cf),
        btc,
        Decision::Execute,
        Action::Partial75,
    );
    feed(&mut e, Input::Plan(first), &mut events);
    mock.increment(Duration::from_secs(5));
    feed(&mut e, Input::Plan(first), &mut events);
    let hold = Plan::exit(
        PlanId(0x0e7d_2f78_aa00_0001),
        eth,
        Decision::Hold,
        Action::None,
    );
    feed(&mut e, Input::Plan(hold), &mut events);
    feed(&mut e, ledger("0.0615"), &mut events);
    for (id, action, after) in [
        (0xf33e_ffa0_343b_ecc4u64, Action::Partial75, "0.016"),
        (0xf33e_ffa0_343b_ecc5, Action::FullClose, "0.001"),
    ] {
        mock.increment(Duration::from_secs(2));
        let start = events.len();
        feed(
            &mut e,
            Input::Plan(Plan::exit(PlanId(id), btc, Decision::Execute, action)),
            &mut events,
        );
        let o = events[start..]
            .iter()
            .find_map(|x| match x {
                Event::OrderIntent(o) => Some(*o),
                _ => None,
            })
            .expect("executed");
        let at_ms = clock.wall_ms(clock.now_ns());
        feed(
            &mut e,
            Input::Order(OrderInput::Sent {
                plan: o.plan,
                symbol: btc,
                at_ms,
            }),
            &mut events,
        );
        let filled = Report {
            plan: o.plan,
            symbol: btc,
            side: o.side,
            status: OrderStatus::Filled,
            cum_qty: o.qty,
            price: "104000".parse().unwrap(),
            order_id: id & 0xffff,
            time_ms: at_ms,
            orig_qty: o.qty,
            source: ReportSource::Stream,
        };
        feed(
            &mut e,
            Input::Order(OrderInput::Report(filled)),
            &mut events,
        );
        feed(&mut e, position(after), &mut events);
    }
    for x in &events {
        j.append(&x.to_message().encode()).unwrap();
    }
    j.sync().unwrap();
}

fn replay(args: &[&str], journal: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quantum"))
        .arg("replay")
        .arg("--journal")
        .arg(journal)
        .args(args)
        .output()
        .expect("run quantum replay")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The built-in configuration with BTCUSDT's tolerance at `tolerance`.
fn config_with_tolerance(dir: &Path, tolerance: &str) -> std::path::PathBuf {
    let mut toml = String::new();
    for s in EngineConfig::default().symbols {
        let t = if s.name == "BTCUSDT" {
            tolerance.to_string()
        } else {
            s.tolerance.to_string()
        };
        let lot = s.filters.lot;
        let market = s.filters.market_lot;
        toml.push_str(&format!(
            "[[symbols]]\nname = \"{}\"\ntolerance = \"{t}\"\nmin_qty = \"{}\"\nmax_qty = \"{}\"\nstep = \"{}\"\nmarket_min_qty = \"{}\"\nmarket_max_qty = \"{}\"\nmarket_step = \"{}\"\nmin_notional = \"{}\"\n\n",
            s.name, lot.min, lot.max, lot.step, market.min, market.max, market.step, s.filters.min_notional
        ));
    }
    let path = dir.join(format!("tolerance-{tolerance}.toml"));
    std::fs::write(&path, toml).unwrap();
    path
}

#[test]
fn the_same_configuration_changes_nothing_and_a_tighter_tolerance_denies_the_executed_plans() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = tmp.path().join("journal");
    seeds_journal(&journal);

    // Its own configuration: every decision the same, nothing printed as JSON.
    let same = replay(&["--check"], &journal);
    assert!(same.status.success(), "{}", text(&same));
    assert!(
        text(&same).contains("5 decision(s), 0 changed"),
        "{}",
        text(&same)
    );
    let quiet = replay(&["--json"], &journal);
    assert!(quiet.status.success(), "{}", text(&quiet));
    assert!(quiet.stdout.is_empty(), "{}", text(&quiet));

    // A tighter tolerance: the two executed BTCUSDT plans become mismatch denials.
    let tight = config_with_tolerance(tmp.path(), "0.0001");
    let tight = tight.to_str().unwrap();
    let o = replay(&["--config", tight, "--json"], &journal);
    assert!(o.status.success(), "{}", text(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", text(&o));
    let plans: Vec<&str> = lines.iter().map(|l| l["plan"].as_str().unwrap()).collect();
    assert_eq!(plans, ["f33effa0343becc4", "f33effa0343becc5"]);
    for l in &lines {
        assert_eq!(l["symbol"], "BTCUSDT");
        assert_eq!(l["changed"], true);
        assert_eq!(l["recorded_outcome"], "executed");
        assert_eq!(l["recorded_side"], "SELL");
        assert_eq!(l["replayed_outcome"], "blocked");
        assert_eq!(
            l["replayed_reason"],
            "p33_denied:reconcile_required_qty_mismatch"
        );
        assert_eq!(l["replayed_qty"], serde_json::Value::Null);
        assert_eq!(l["order"], "not_sent");
        assert_eq!(l["tolerance"], "0.0001");
        assert!(l["time"].as_str().unwrap().ends_with('Z'), "{l}");
    }
    assert_eq!(lines[0]["recorded_qty"], "0.046");
    assert_eq!(
        (&lines[0]["exchange_amt"], &lines[0]["ledger_amt"]),
        (&"0.062".into(), &"0.0615".into())
    );
    // The summary (on stderr with --json) has the totals per symbol and answer.
    let summary = String::from_utf8_lossy(&o.stderr);
    assert!(summary.contains("5 decision(s), 2 changed"), "{summary}");
    assert!(
        summary
            .lines()
            .any(|l| l.contains("BTCUSDT") && l.contains("executed") && l.ends_with("2 -> 0")),
        "{summary}"
    );
    assert!(
        summary.lines().any(|l| l.contains("BTCUSDT")
            && l.contains("p33_denied:reconcile_required_qty_mismatch")
            && l.ends_with("1 -> 3")),
        "{summary}"
    );
    // Their fills are not invented: what the adapter reported of the orders not sent (sent,
    // accepted, filled, done: four events each) is dropped.
    assert!(
        summary.contains("recorded order events dropped 8"),
        "{summary}"
    );

    // As text: one line per changed plan, UTC time first.
    let t = replay(&["--config", tight], &journal);
    let out = String::from_utf8_lossy(&t.stdout);
    assert!(
        out.lines().any(|l| l.contains("plan=f33effa0343becc4 BTCUSDT executed SELL 0.046 -> p33_denied:reconcile_required_qty_mismatch order=not_sent")),
        "{out}"
    );
    // --check says it changed, with exit status 1.
    let c = replay(&["--config", tight, "--check"], &journal);
    assert_eq!(c.status.code(), Some(1), "{}", text(&c));
    assert!(text(&c).contains("2 decision(s) changed"), "{}", text(&c));

    // --all: one line per decision, changed or not; --from keeps the later ones.
    let all = replay(&["--config", tight, "--json", "--all"], &journal);
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&all.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 5, "{}", text(&all));
    let outcomes: Vec<&str> = rows
        .iter()
        .map(|r| r["recorded_reason"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(
        outcomes,
        [
            "p33_denied:reconcile_required_qty_mismatch",
            "duplicate",
            "-",
            "-",
            "-"
        ]
    );
    let later = rows[3]["time_ms"].as_u64().unwrap().to_string();
    let from = replay(
        &["--config", tight, "--json", "--all", "--from", &later],
        &journal,
    );
    assert_eq!(
        String::from_utf8_lossy(&from.stdout).lines().count(),
        2,
        "{}",
        text(&from)
    );
}

#[test]
fn bad_input_gets_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = tmp.path().join("journal");
    seeds_journal(&journal);
    let bad_time = replay(&["--from", "yesterday"], &journal);
    assert_eq!(bad_time.status.code(), Some(1));
    assert!(
        text(&bad_time).contains("\"yesterday\" is not a time"),
        "{}",
        text(&bad_time)
    );
    // A time outside the journal names what it covers.
    let late = replay(&["--from", "2030-01-01T00:00:00Z"], &journal);
    assert_eq!(late.status.code(), Some(1));
    assert!(
        text(&late).contains(
            "--from 2030-01-01T00:00:00.000Z is after the journal's last event: the journal in"
        ) && text(&late).contains(" covers 2026-01-25T00:30:00.000Z to "),
        "{}",
        text(&late)
    );
    let early = replay(&["--to", "2020-01-01T00:00:00Z"], &journal);
    assert_eq!(early.status.code(), Some(1));
    assert!(
        text(&early).contains("is not after the journal's first event"),
        "{}",
        text(&early)
    );
    let nothing = replay(&[], tmp.path());
    assert_eq!(nothing.status.code(), Some(1));
    assert!(
        text(&nothing).contains("holds no journal"),
        "{}",
        text(&nothing)
    );
    // A configuration whose symbols are not the journal's, in order.
    let other = tmp.path().join("other.toml");
    std::fs::write(
        &other,
        "[[symbols]]\nname = \"ETHUSDT\"\ntolerance = \"0.001\"\nmin_qty = \"0.001\"\nmax_qty = \"10000\"\nstep = \"0.001\"\nmin_notional = \"20\"\n",
    )
    .unwrap();
    let o = replay(&["--config", other.to_str().unwrap()], &journal);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("are not the first symbols of the configuration"),
        "{}",
        text(&o)
    );
}
