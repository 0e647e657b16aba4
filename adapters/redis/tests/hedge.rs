//! A hedge-mode symbol's two legs against a real redis-server, without a daemon: each leg's
//! ledger has its own field of the symbol's position hash (`ledger_amount_long`,
//! `ledger_amount_short`; a one-way symbol keeps `ledger_amount`), the bridge's own writes of a
//! leg never come back as an operator's sync while an operator's write of one leg is handed
//! to that leg only (a positive short read as its negative), fills are booked per leg, and
//! every entry names the exchange symbol with the leg's side in a field of its own.

use std::collections::BTreeMap;

use quantum_core::{Decision, Outcome, PlanId, PlanResult, PositionSide, Side, SymbolId};
use quantum_local_redis::RedisServer;
use quantum_redis::batch::Batch;
use quantum_redis::ledger::{Ledger, Sync};
use quantum_redis::legacy::{self, RESULT_STREAM};
use quantum_redis::rings::Symbols;
use quantum_redis::state::{self, Saved};
use redis::streams::StreamRangeReply;
use redis::Commands;

mod support;
use support::{operator_hset, q};

const INSTANCE: &str = "hedge-test";
const AT_MS: u64 = 1_769_301_008_977;

/// The directory a daemon with `BTCUSDT` one-way and `ETHUSDT` in hedge mode publishes.
fn symbols() -> Symbols {
    Symbols::new([
        (0, "BTCUSDT".to_string()),
        (1, "ETHUSDT:LONG".to_string()),
        (2, "ETHUSDT:SHORT".to_string()),
    ])
}

fn saved() -> Saved {
    Saved {
        epoch: "e".into(),
        next_seq: 1,
        low_seq: 1,
    }
}

fn write(c: &mut redis::Connection, b: &Batch) -> redis::Value {
    b.transaction(INSTANCE, &saved(), "m").query(c).unwrap()
}

/// The bridge's ledger writes of the core's values, one batch.
fn core_ledger(c: &mut redis::Connection, legs: &[(&str, &str)]) {
    let mut b = Batch::new(INSTANCE, 1000, "g", 60);
    for (leg, amount) in legs {
        b.ledger(INSTANCE, leg, q(amount), AT_MS);
    }
    write(c, &b);
}

fn hash(c: &mut redis::Connection, symbol: &str) -> BTreeMap<String, String> {
    c.hgetall(legacy::position_key(symbol)).unwrap()
}

/// What the bridge's ledger sync decides for every leg after reading Redis: the commands it
/// hands the core, by leg id.
async fn sync(
    c: &mut redis::aio::MultiplexedConnection,
    ledger: &mut Ledger,
    s: &Symbols,
) -> Vec<(u16, Sync)> {
    let legs = s.iter();
    let labels: Vec<&str> = legs.iter().map(|(_, l)| *l).collect();
    let seen = Ledger::read(c, INSTANCE, &labels).await.unwrap();
    legs.iter()
        .zip(seen)
        .map(|((id, _), seen)| (*id, ledger.decide(*id, s.side(*id), &seen, false)))
        .filter(|(_, d)| *d != Sync::Nothing)
        .collect()
}

#[test]
fn the_field_names_are_per_side() {
    assert_eq!(legacy::ledger_field(PositionSide::Both), "ledger_amount");
    assert_eq!(
        legacy::ledger_field(PositionSide::Both),
        legacy::LEDGER_FIELD
    );
    assert_eq!(
        legacy::ledger_field(PositionSide::Long),
        "ledger_amount_long"
    );
    assert_eq!(
        legacy::ledger_field(PositionSide::Short),
        "ledger_amount_short"
    );
    assert_eq!(
        legacy::exchange_field(PositionSide::Short),
        "exchange_amount_short"
    );
    assert_eq!(
        legacy::read_ledger_amount(PositionSide::Short, " 0.5 "),
        Ok((q("-0.5"), true))
    );
    assert_eq!(
        legacy::read_ledger_amount(PositionSide::Short, "-0.5"),
        Ok((q("-0.5"), false))
    );
    assert_eq!(
        legacy::read_ledger_amount(PositionSide::Long, "0.5"),
        Ok((q("0.5"), false))
    );
    assert!(legacy::read_ledger_amount(PositionSide::Short, "x").is_err());
}

#[tokio::test]
async fn each_legs_ledger_syncs_both_ways_through_its_own_field() {
    let server = RedisServer::start();
    let mut c = server.conn();
    let mut a = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let s = symbols();
    let mut ledger = Ledger::default();

    // The bridge writes the core's ledger of each leg: one hash per exchange symbol, one
    // field per leg; its ledger hash keyed by the legs' labels.
    core_ledger(
        &mut c,
        &[
            ("BTCUSDT", "0.062"),
            ("ETHUSDT:LONG", "0.5"),
            ("ETHUSDT:SHORT", "-0.3"),
        ],
    );
    let eth = hash(&mut c, "ETHUSDT");
    assert_eq!(eth["ledger_amount_long"], "0.5");
    assert_eq!(eth["ledger_amount_short"], "-0.3");
    assert!(!eth.contains_key("ledger_amount"), "{eth:?}");
    assert_eq!(eth["updated_at"], legacy::iso_ms(AT_MS));
    assert_eq!(
        legacy::position_key("ETHUSDT:LONG"),
        "quantum:position:ETHUSDT"
    );
    assert!(!c
        .exists::<_, bool>("quantum:position:ETHUSDT:LONG")
        .unwrap());
    let btc = hash(&mut c, "BTCUSDT");
    assert_eq!(
        btc["ledger_amount"], "0.062",
        "a one-way symbol is unchanged"
    );
    assert!(!btc.contains_key("ledger_amount_long"));
    let synced: BTreeMap<String, String> = c.hgetall(state::ledger_key(INSTANCE)).unwrap();
    assert_eq!(
        synced,
        BTreeMap::from([
            ("BTCUSDT".to_string(), "0.062".to_string()),
            ("ETHUSDT:LONG".to_string(), "0.5".to_string()),
            ("ETHUSDT:SHORT".to_string(), "-0.3".to_string()),
        ])
    );

    // None of the bridge's own writes comes back as a command.
    assert_eq!(sync(&mut a, &mut ledger, &s).await, []);

    // An operator's HSET of the short leg is a ledger set of the SHORT leg (id 2) only; its
    // positive value is read as the negative (a short is never positive).
    operator_hset(&mut c, "ETHUSDT", "ledger_amount_short", "0.2");
    assert_eq!(
        sync(&mut a, &mut ledger, &s).await,
        [(
            2,
            Sync::Set {
                amount: q("-0.2"),
                negated: true
            }
        )]
    );
    // Pending: not handed over twice.
    assert_eq!(sync(&mut a, &mut ledger, &s).await, []);
    // The core's LedgerSet of -0.2 comes back: it is the operator's, and the bridge writes it
    // over the unsigned text (the script reads that as -0.2 too), recorded as the core's.
    assert!(ledger.applied(2, q("-0.2")));
    core_ledger(&mut c, &[("ETHUSDT:SHORT", "-0.2")]);
    assert_eq!(
        hash(&mut c, "ETHUSDT")["ledger_amount_short"],
        "-0.2",
        "the field now holds the core's signed value"
    );
    assert_eq!(sync(&mut a, &mut ledger, &s).await, []);

    // The long leg's own field, likewise, and the one-way symbol's `ledger_amount`.
    operator_hset(&mut c, "ETHUSDT", "ledger_amount_long", "0.75");
    operator_hset(&mut c, "BTCUSDT", "ledger_amount", "0.016");
    assert_eq!(
        sync(&mut a, &mut ledger, &s).await,
        [
            (
                0,
                Sync::Set {
                    amount: q("0.016"),
                    negated: false
                }
            ),
            (
                1,
                Sync::Set {
                    amount: q("0.75"),
                    negated: false
                }
            ),
        ]
    );
    // While the long leg's operator value waits for the core, the bridge's write of an older
    // value of the core (a fill before the sync) does not overwrite it; the short leg's
    // field is the bridge's, written.
    core_ledger(
        &mut c,
        &[("ETHUSDT:LONG", "0.4"), ("ETHUSDT:SHORT", "-0.1")],
    );
    let eth = hash(&mut c, "ETHUSDT");
    assert_eq!(eth["ledger_amount_long"], "0.75");
    assert_eq!(eth["ledger_amount_short"], "-0.1");
    assert_eq!(sync(&mut a, &mut ledger, &s).await, []);
}

#[test]
fn fills_are_booked_into_their_legs_field() {
    let server = RedisServer::start();
    let mut c = server.conn();
    let shared = "lease-h";
    let book = |c: &mut redis::Connection, leg: &str, plan: u64, side: Side, cum: &str| {
        let mut b = Batch::new(shared, 1000, "g", 600);
        b.book_fill(leg, PlanId(plan), side, q(cum), AT_MS);
        let reply: redis::Value = b
            .transaction(&format!("{shared}@h1"), &saved(), "m")
            .query(c)
            .unwrap();
        b.replies(&reply).fills_booked
    };
    let key = legacy::position_key("ETHUSDT");
    let _: () = c
        .hset_multiple(
            &key,
            &[("ledger_amount_long", "1"), ("ledger_amount_short", "-1")],
        )
        .unwrap();
    let _: () = c
        .hset_multiple(
            state::ledger_key(shared),
            &[("ETHUSDT:LONG", "1"), ("ETHUSDT:SHORT", "-1")],
        )
        .unwrap();
    // A SELL closes the long, a BUY the short: each moves its own field towards 0.
    assert_eq!(book(&mut c, "ETHUSDT:LONG", 1, Side::Sell, "0.25"), 1);
    assert_eq!(book(&mut c, "ETHUSDT:SHORT", 2, Side::Buy, "0.4"), 1);
    assert_eq!(
        book(&mut c, "ETHUSDT:SHORT", 2, Side::Buy, "0.4"),
        0,
        "once"
    );
    let eth = hash(&mut c, "ETHUSDT");
    assert_eq!(
        (
            eth["ledger_amount_long"].as_str(),
            eth["ledger_amount_short"].as_str()
        ),
        ("0.75", "-0.6")
    );
    assert!(!eth.contains_key("ledger_amount"));
    let synced: BTreeMap<String, String> = c.hgetall(state::ledger_key(shared)).unwrap();
    assert_eq!(synced["ETHUSDT:LONG"], "0.75", "kept in step, per leg");
    assert_eq!(synced["ETHUSDT:SHORT"], "-0.6");
    // An operator's unsigned short is booked as the negative it stands for.
    let _: () = c.hset(&key, "ledger_amount_short", "2").unwrap();
    assert_eq!(book(&mut c, "ETHUSDT:SHORT", 3, Side::Buy, "0.5"), 1);
    assert_eq!(hash(&mut c, "ETHUSDT")["ledger_amount_short"], "-1.5");
    // A one-way symbol books into `ledger_amount`, as before.
    assert_eq!(book(&mut c, "BTCUSDT", 4, Side::Sell, "0.01"), 1);
    assert_eq!(hash(&mut c, "BTCUSDT")["ledger_amount"], "-0.01");
}

fn result(plan: u64, symbol: u16) -> PlanResult {
    PlanResult {
        plan: PlanId(plan),
        symbol: SymbolId(symbol),
        decision: Decision::Hold,
        outcome: Outcome::NonExecute,
        wait_ns: 0,
        at_ms: AT_MS,
    }
}

#[test]
fn entries_name_the_exchange_symbol_and_a_hedge_legs_side() {
    let server = RedisServer::start();
    let mut c = server.conn();
    let s = symbols();
    let mut b = Batch::new(INSTANCE, 1000, "g", 60);
    for (plan, leg) in [(1, 0), (2, 1), (3, 2)] {
        b.result(&result(plan, leg), s.label(leg), None);
    }
    b.exchange(s.label(2), q("-0.3"), "3000.5".parse().unwrap(), AT_MS);
    b.exchange(s.label(1), q("0.5"), "3000.5".parse().unwrap(), AT_MS);
    b.exchange(s.label(0), q("0.062"), "97000".parse().unwrap(), AT_MS);
    assert_eq!(
        b.position_writes(),
        ["ETHUSDT", "ETHUSDT", "BTCUSDT"],
        "one notification per hash write, by the hash's symbol"
    );
    write(&mut c, &b);

    let entries: StreamRangeReply = c.xrange_all(RESULT_STREAM).unwrap();
    let fields: Vec<BTreeMap<String, String>> = entries
        .ids
        .iter()
        .map(|e| {
            e.map
                .keys()
                .map(|k| (k.clone(), e.get::<String>(k).unwrap()))
                .collect()
        })
        .collect();
    assert_eq!(fields.len(), 3);
    let legacy_fields = [
        "plan_id",
        "symbol",
        "decision",
        "executed",
        "error",
        "safe_qty",
        "client_order_id",
        "order_id",
        "wait_us",
    ];
    let names = |f: &BTreeMap<String, String>| -> Vec<String> {
        let mut v: Vec<String> = f.keys().cloned().collect();
        v.sort();
        v
    };
    let mut want: Vec<String> = legacy_fields.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(
        names(&fields[0]),
        want,
        "a one-way symbol's entry is unchanged"
    );
    assert_eq!(fields[0]["symbol"], "BTCUSDT");
    for (f, side) in [(&fields[1], "LONG"), (&fields[2], "SHORT")] {
        assert_eq!(f["symbol"], "ETHUSDT", "{f:?}");
        assert_eq!(f["position_side"], side);
        assert_eq!(f.len(), legacy_fields.len() + 1);
    }

    let eth = hash(&mut c, "ETHUSDT");
    assert_eq!(eth["exchange_amount_long"], "0.5");
    assert_eq!(eth["exchange_amount_short"], "-0.3");
    assert_eq!(eth["mark_price"], "3000.5");
    assert!(!eth.contains_key("exchange_amount"));
    assert_eq!(hash(&mut c, "BTCUSDT")["exchange_amount"], "0.062");

    // Permits name the exchange symbol too.
    let p = quantum_core::event::GovPermitEvent {
        plan: PlanId(3),
        symbol: SymbolId(2),
        allow: true,
        reason: None,
        issued_at_ms: AT_MS,
        ttl_ms: 15_000,
    };
    let json: serde_json::Value =
        serde_json::from_str(&legacy::gov_permit_json(&p, s.label(2))).unwrap();
    assert_eq!(json["symbol"], "ETHUSDT");
}
