//! Reading plan entries (the one parser, [`legacy::parse_plan`], behind the stream's
//! [`read_plan`]) and writing them ([`legacy::plan_entry_fields`]).

use quantum_core::{Action, Decision, Plan, PlanId, PositionSide, Qty, Score, SymbolId};
use quantum_redis::legacy::{self, parse_plan};
use quantum_redis::plan_entry::{dead_letter, read_plan, Fields};
use quantum_redis::rings::Symbols;
use serde_json::{Map, Value};

fn fields(pairs: &[(&str, &str)]) -> Fields {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

fn symbols() -> Symbols {
    Symbols::new([(0, "BTCUSDT".to_string()), (1, "ETHUSDT".to_string())])
}

#[test]
fn legacy_entries_become_plans() {
    let p = read_plan(
        "1769301008976-0",
        &fields(&[
            ("plan_id", "f1a8d7f48713d5cf"),
            ("symbol", "ETHUSDT"),
            ("decision", "EXECUTE"),
            ("action", "PARTIAL_75"),
            ("kill_score", "0.5390"),
            ("source", "exit_brain"),
        ]),
        &symbols(),
    )
    .unwrap()
    .plan;
    assert_eq!(p.id, PlanId(0xf1a8_d7f4_8713_d5cf));
    assert_eq!(p.symbol, SymbolId(1));
    assert_eq!(
        (p.decision, p.action),
        (Decision::Execute, Action::Partial75)
    );
    let j = read_plan(
        "1769301008976-0",
        &fields(&[(
            "payload",
            r#"{"plan_id":"f1a8d7f48713d5cf","symbol":"ETHUSDT","decision":"EXECUTE","action":"PARTIAL_75","kill_score":0.539}"#,
        )]),
        &symbols(),
    )
    .unwrap()
    .plan;
    assert_eq!(j, p);
}

#[test]
fn bad_entries_say_why() {
    let e = |f: Fields| read_plan("1-0", &f, &symbols()).unwrap_err();
    assert!(e(fields(&[
        ("plan_id", "f1a8d7f48713d5cf"),
        ("symbol", "DOGEUSDT"),
        ("decision", "EXECUTE")
    ]))
    .contains("DOGEUSDT"));
    assert!(e(fields(&[("symbol", "BTCUSDT"), ("decision", "EXECUTE")])).contains("plan_id"));
    assert!(e(fields(&[("data", "{nope")])).contains("data"));
    assert!(e(vec![("plan_id".into(), vec![0xff, 0xfe])]).contains("UTF-8"));
    assert!(e(Vec::new()).contains("no fields"));
    let dl = dead_letter("1-0", &fields(&[("x", "y")]), "bad");
    assert_eq!(
        dl,
        fields(&[("x", "y"), ("error", "bad"), ("source_id", "1-0")])
    );
}

/// The legacy publishers' ways of writing `timestamp`, and the entry id's time for a plan
/// whose `timestamp` is missing or unreadable.
#[test]
fn a_plan_carries_its_created_time_however_it_is_written() {
    let read = |ts: Option<&str>| {
        let mut f = vec![
            ("plan_id", "f1a8d7f48713d5cf"),
            ("symbol", "BTCUSDT"),
            ("decision", "HOLD"),
        ];
        if let Some(ts) = ts {
            f.push(("timestamp", ts));
        }
        read_plan("1796511700000-3", &fields(&f), &symbols())
            .unwrap_or_else(|e| panic!("{ts:?}: {e}"))
    };
    let at = |ts: Option<&str>| {
        let r = read(ts);
        (r.plan.created_at_ms, r.warning.is_some())
    };
    // The plan's own time is kept apart (the legacy path's `redis.plan_result` starts there):
    // none when the plan is dated by its entry.
    assert_eq!(
        read(Some("1796511749.7101772")).timestamp_ms,
        Some(1_796_511_749_710)
    );
    assert_eq!(read(None).timestamp_ms, None);
    assert_eq!(read(Some("yesterday")).timestamp_ms, None);
    // Python's str(time.time()): seconds with a fraction.
    assert_eq!(at(Some("1796511749.7101772")), (1_796_511_749_710, false));
    assert_eq!(at(Some("1796511749")), (1_796_511_749_000, false));
    assert_eq!(at(Some(" 1796511749710 ")), (1_796_511_749_710, false));
    assert_eq!(
        at(Some("2026-12-05T10:02:29.710Z")),
        (1_796_464_949_710, false)
    );
    assert_eq!(
        at(Some("2026-12-05T12:02:29.710+02:00")),
        (1_796_464_949_710, false)
    );
    assert_eq!(
        at(Some("2026-12-05T05:02:29.710-0500")),
        (1_796_464_949_710, false)
    );
    // Missing: the entry id's time, no warning. Unreadable: the same, with a warning.
    assert_eq!(at(None), (1_796_511_700_000, false));
    for bad in [
        "yesterday",
        "",
        "-5",
        "1.2.3",
        "1796511749710000",
        "2026-12-05T10:02:29",
    ] {
        assert_eq!(at(Some(bad)), (1_796_511_700_000, true), "{bad:?}");
    }
    let payload = read_plan(
        "1796511700000-0",
        &fields(&[(
            "payload",
            r#"{"plan_id":"f1a8d7f48713d5cf","symbol":"BTCUSDT","decision":"HOLD","timestamp":1796511749.7101772}"#,
        )]),
        &symbols(),
    )
    .unwrap();
    assert_eq!(payload.plan.created_at_ms, 1_796_511_749_710);
}

#[test]
fn plan_entries_read_flat_or_as_json_payload() {
    let flat: Map<String, Value> = serde_json::from_str(
        r#"{"plan_id":"f1a8d7f48713d5cf","symbol":"BTCUSDT","decision":"EXECUTE","action":"PARTIAL_75","kill_score":"0.539","timestamp":"1769301008976","extra":"ignored"}"#,
    )
    .unwrap();
    let btc = |name: &str, _side| match name {
        "BTCUSDT" => Ok(SymbolId(0)),
        _ => Err(format!("unknown symbol {name:?}")),
    };
    let p = parse_plan(&flat, btc, 0).unwrap().plan;
    assert_eq!(p.id, PlanId(0xf1a8_d7f4_8713_d5cf));
    assert_eq!(
        (p.decision, p.action),
        (Decision::Execute, Action::Partial75)
    );
    assert_eq!(p.kill_score, "0.539".parse().unwrap());
    assert_eq!(p.created_at_ms, 1_769_301_008_976);
    assert!(p.reduce_only);
    let payload: Map<String, Value> = serde_json::from_str(
        r#"{"payload":"{\"plan_id\":\"f1a8d7f48713d5cf\",\"symbol\":\"BTCUSDT\",\"decision\":\"EXECUTE\",\"action\":\"PARTIAL_75\",\"kill_score\":0.539,\"timestamp\":1769301008976}"}"#,
    )
    .unwrap();
    assert_eq!(parse_plan(&payload, btc, 0).unwrap().plan, p);
    let bad = |s: &str| parse_plan(&serde_json::from_str(s).unwrap(), btc, 0).unwrap_err();
    assert!(bad(r#"{"plan_id":"x","symbol":"BTCUSDT","decision":"EXECUTE"}"#).contains("plan_id"));
    assert!(
        bad(r#"{"plan_id":"f1a8d7f48713d5cf","symbol":"BTCUSDT","decision":"BUY"}"#)
            .contains("EXECUTE")
    );
    assert!(bad(
        r#"{"plan_id":"f1a8d7f48713d5cf","symbol":"BTCUSDT","decision":"EXECUTE","kill_score":"x"}"#
    )
    .contains("kill_score"));
    assert!(bad(r#"{"data":"{"}"#).contains("data"));
}

/// The one parser reads a `data` field as it reads `payload`, and numbers written as JSON
/// numbers or as decimal strings alike.
#[test]
fn data_fields_and_numbers_as_text_or_json() {
    let plan = |f: &[(&str, &str)]| read_plan("1769301008976-0", &fields(f), &symbols());
    let flat = plan(&[
        ("plan_id", "00000000000000aa"),
        ("symbol", "BTCUSDT"),
        ("decision", "EXECUTE"),
        ("action", "FULL_CLOSE"),
        ("kill_score", " 0.75 "),
        ("reduce_only", "false"),
        ("qty", "0.010"),
        ("timestamp", "1769301000000"),
    ])
    .unwrap();
    assert_eq!(flat.warning, None);
    let p = flat.plan;
    assert_eq!(p.kill_score, "0.75".parse::<Score>().unwrap());
    assert_eq!(
        (p.reduce_only, p.qty),
        (false, "0.01".parse::<Qty>().unwrap())
    );
    assert_eq!(p.created_at_ms, 1_769_301_000_000);
    let data = plan(&[(
        "data",
        r#"{"plan_id":"00000000000000aa","symbol":"BTCUSDT","decision":"EXECUTE","action":"FULL_CLOSE","kill_score":0.75,"reduce_only":false,"qty":0.01,"timestamp":1769301000000}"#,
    )])
    .unwrap();
    assert_eq!(data.plan, p);
    let mixed = plan(&[(
        "payload",
        r#"{"plan_id":"00000000000000aa","symbol":"BTCUSDT","decision":"EXECUTE","action":"FULL_CLOSE","kill_score":"0.75","reduce_only":"0","qty":"0.01","timestamp":"1769301000000"}"#,
    )])
    .unwrap();
    assert_eq!(mixed.plan, p);
    assert!(plan(&[("data", "[1,2]")]).unwrap_err().contains("data"));
}

/// An optional field the parser cannot read is a warning and the plan goes on; a required
/// field missing is an error naming it.
#[test]
fn optional_fields_are_warnings_required_ones_errors() {
    let read = read_plan(
        "1769301008976-0",
        &fields(&[
            ("plan_id", "00000000000000ab"),
            ("symbol", "ETHUSDT"),
            ("decision", "HOLD"),
            ("timestamp", "soon"),
        ]),
        &symbols(),
    )
    .unwrap();
    assert_eq!(read.plan.created_at_ms, 1_769_301_008_976);
    assert!(read.warning.unwrap().contains("soon"));
    for (missing, f) in [
        ("plan_id", vec![("symbol", "BTCUSDT"), ("decision", "HOLD")]),
        (
            "symbol",
            vec![("plan_id", "00000000000000ab"), ("decision", "HOLD")],
        ),
        (
            "decision",
            vec![("plan_id", "00000000000000ab"), ("symbol", "BTCUSDT")],
        ),
    ] {
        let e = read_plan("1-0", &fields(&f), &symbols()).unwrap_err();
        assert!(e.contains(&format!("missing field {missing:?}")), "{e}");
    }
}

/// What the writer writes, the parser reads back as the same plan, from the stream's fields
/// or from a JSON object of them.
#[test]
fn the_writer_round_trips_through_the_parser() {
    let exit = Plan {
        kill_score: "0.539".parse().unwrap(),
        ..Plan::exit(
            PlanId(0xf1a8_d7f4_8713_d5cf),
            SymbolId(1),
            Decision::Execute,
            Action::Partial75,
        )
    };
    let opening = Plan {
        created_at_ms: 1_796_511_749_710,
        reduce_only: false,
        qty: "0.046".parse().unwrap(),
        ..Plan::exit(PlanId(7), SymbolId(0), Decision::Reduce, Action::None)
    };
    for p in [exit, opening] {
        let name = symbols().name(p.symbol.0).to_owned();
        let written = legacy::plan_entry_fields(&p, &name);
        let f: Fields = written
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        // No timestamp written: the entry's time is the plan's.
        let entry_id = format!("{}-0", if p.created_at_ms == 0 { 5 } else { 9 });
        let read = read_plan(&entry_id, &f, &symbols()).unwrap();
        let expected = Plan {
            created_at_ms: if p.created_at_ms == 0 {
                5
            } else {
                p.created_at_ms
            },
            ..p
        };
        assert_eq!((read.plan, read.warning), (expected, None));
        let line = legacy::plan_entry_json(&p, &name);
        let o: Map<String, Value> = serde_json::from_str(&line).unwrap();
        assert_eq!(o.len(), written.len(), "{line}");
        let symbols = symbols();
        let by_name = |n: &str, side| {
            symbols
                .plan_leg(n, side)
                .map(SymbolId)
                .ok_or_else(|| n.to_string())
        };
        assert_eq!(parse_plan(&o, by_name, 0).unwrap().plan, p);
    }
}

/// A directory with a hedge-mode symbol: `ETHUSDT` is two legs.
fn hedge_symbols() -> Symbols {
    Symbols::new([
        (0, "BTCUSDT".to_string()),
        (1, "ETHUSDT:LONG".to_string()),
        (2, "ETHUSDT:SHORT".to_string()),
    ])
}

/// A plan names its leg with `position_side`; a plan for a hedge-mode symbol without one (or
/// with one that cannot be read, a warning) still reaches the core, which denies it
/// `position_side_required`: never a dead letter, never a guessed side.
#[test]
fn plans_for_a_hedge_mode_symbol_go_to_the_leg_they_name() {
    let s = hedge_symbols();
    let read = |side: Option<&str>| {
        let mut f = vec![
            ("plan_id", "00000000000000c1"),
            ("symbol", "ETHUSDT"),
            ("decision", "EXECUTE"),
            ("action", "FULL_CLOSE"),
        ];
        if let Some(side) = side {
            f.push(("position_side", side));
        }
        read_plan("1769301008976-0", &fields(&f), &s)
    };
    let short = read(Some("SHORT")).unwrap();
    assert_eq!(
        (short.plan.symbol, short.plan.position_side),
        (SymbolId(2), Some(PositionSide::Short))
    );
    assert_eq!(short.warning, None);
    // Binance's names in any case, with spaces.
    let long = read(Some(" long ")).unwrap();
    assert_eq!(
        (long.plan.symbol, long.plan.position_side),
        (SymbolId(1), Some(PositionSide::Long))
    );
    // None named: the symbol's first leg, where the core denies it.
    let none = read(None).unwrap();
    assert_eq!(
        (none.plan.symbol, none.plan.position_side),
        (SymbolId(1), None)
    );
    assert_eq!(none.warning, None);
    // Unreadable: a warning (logged and counted as `plan_fields_unreadable`), no side.
    let odd = read(Some("UP")).unwrap();
    assert_eq!(
        (odd.plan.symbol, odd.plan.position_side),
        (SymbolId(1), None)
    );
    let why = odd.warning.unwrap();
    assert!(
        why.contains("\"UP\"") && why.contains("no position side"),
        "{why}"
    );
    // A one-way symbol with a side goes to its one leg (the core denies a mismatch).
    let btc = read_plan(
        "1-0",
        &fields(&[
            ("plan_id", "00000000000000c2"),
            ("symbol", "BTCUSDT"),
            ("decision", "EXECUTE"),
            ("position_side", "SHORT"),
        ]),
        &s,
    )
    .unwrap();
    assert_eq!(btc.plan.symbol, SymbolId(0));
    // A leg's label is no symbol of the contract.
    let e = read_plan(
        "1-0",
        &fields(&[
            ("plan_id", "00000000000000c3"),
            ("symbol", "ETHUSDT:SHORT"),
            ("decision", "EXECUTE"),
        ]),
        &s,
    )
    .unwrap_err();
    assert!(e.contains("BTCUSDT, ETHUSDT (hedge)"), "{e}");
}

/// The writer names the exchange symbol and the side, never the leg's label.
#[test]
fn a_hedge_legs_plan_is_written_with_its_symbol_and_side() {
    let s = hedge_symbols();
    let p = Plan {
        position_side: Some(PositionSide::Short),
        ..Plan::exit(
            PlanId(0xc4),
            SymbolId(2),
            Decision::Execute,
            Action::Partial50,
        )
    };
    let written = legacy::plan_entry_fields(&p, s.label(2));
    assert!(written.contains(&("symbol", "ETHUSDT".to_string())));
    assert!(written.contains(&("position_side", "SHORT".to_string())));
    let f: Fields = written
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
    let read = read_plan("5-0", &f, &s).unwrap();
    assert_eq!(
        read.plan,
        Plan {
            created_at_ms: 5,
            ..p
        }
    );
}
