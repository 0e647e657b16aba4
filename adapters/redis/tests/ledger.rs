//! The shared ledger of failover mode against a real redis-server: fills are booked by their
//! increase once per (plan, cumulative quantity) whichever host books them, with exact
//! decimal arithmetic written back as the core writes quantities, and a fenced absolute
//! write of a stale leader does not undo a booked fill.

use quantum_core::{PlanId, Qty, Side};
use quantum_local_redis::RedisServer;
use quantum_redis::batch::{Batch, Fence, Replies, BOOK_FILL_SCRIPT, BOOK_UNREADABLE};
use quantum_redis::lease;
use quantum_redis::legacy::{self, LEDGER_FIELD};
use quantum_redis::state::{self, Saved};
use redis::Commands;

mod support;
use support::q;

const SHARED: &str = "lease-l";
const SYMBOL: &str = "BTCUSDT";
const TTL_S: u64 = 600;
const AT_MS: u64 = 1_700_000_000_000;

fn saved() -> Saved {
    Saved {
        epoch: "e".into(),
        next_seq: 1,
        low_seq: 1,
    }
}

/// One batch of `host`'s bridge booking `fills` (plan, side, cumulative quantity), written.
fn book(c: &mut redis::Connection, host: &str, fills: &[(u64, Side, &str)]) -> Replies {
    let mut b = Batch::new(SHARED, 1000, "g", TTL_S);
    for (plan, side, cum) in fills {
        b.book_fill(SYMBOL, PlanId(*plan), *side, q(cum), AT_MS);
    }
    let own = format!("{SHARED}@{host}");
    let reply: redis::Value = b.transaction(&own, &saved(), "m").query(c).unwrap();
    b.replies(&reply)
}

fn ledger(c: &mut redis::Connection) -> Option<String> {
    c.hget(legacy::position_key(SYMBOL), LEDGER_FIELD).unwrap()
}

fn synced(c: &mut redis::Connection) -> Option<String> {
    c.hget(state::ledger_key(SHARED), SYMBOL).unwrap()
}

fn set_ledger(c: &mut redis::Connection, v: &str) {
    let _: () = c
        .hset(legacy::position_key(SYMBOL), LEDGER_FIELD, v)
        .unwrap();
    let _: () = c.hset(state::ledger_key(SHARED), SYMBOL, v).unwrap();
}

#[test]
fn a_fill_is_booked_once_per_plan_and_cumulative_quantity_whoever_books_it() {
    let server = RedisServer::start();
    let mut c = server.conn();
    set_ledger(&mut c, "1");

    let r = book(&mut c, "h1", &[(7, Side::Buy, "0.5")]);
    assert_eq!((r.fills_booked, r.fills_repeated), (1, 0));
    assert_eq!(ledger(&mut c).as_deref(), Some("1.5"));
    assert_eq!(synced(&mut c).as_deref(), Some("1.5"), "kept in step");
    let marker = state::booked_key(SHARED, PlanId(7));
    assert_eq!(
        marker,
        format!("quantum:bridge:{SHARED}:booked:0000000000000007")
    );
    let m: String = c.get(&marker).unwrap();
    assert_eq!(m, "0.5");
    let ttl: i64 = c.ttl(&marker).unwrap();
    assert!(ttl > 0 && ttl <= TTL_S as i64, "the marker expires: {ttl}");
    let updated: String = c.hget(legacy::position_key(SYMBOL), "updated_at").unwrap();
    assert_eq!(updated, legacy::iso_ms(AT_MS));

    // The same fill again, from this host (in one batch too) and from the other one.
    let r = book(
        &mut c,
        "h1",
        &[(7, Side::Buy, "0.5"), (7, Side::Buy, "0.5")],
    );
    assert_eq!((r.fills_booked, r.fills_repeated), (0, 2));
    let r = book(&mut c, "h2", &[(7, Side::Buy, "0.50")]);
    assert_eq!((r.fills_booked, r.fills_repeated), (0, 1));
    assert_eq!(ledger(&mut c).as_deref(), Some("1.5"));

    // A larger cumulative quantity books the increase only; a smaller one nothing.
    let r = book(
        &mut c,
        "h2",
        &[(7, Side::Buy, "0.8"), (7, Side::Buy, "0.6")],
    );
    assert_eq!((r.fills_booked, r.fills_repeated), (1, 1));
    assert_eq!(ledger(&mut c).as_deref(), Some("1.8"));
    let m: String = c.get(&marker).unwrap();
    assert_eq!(m, "0.8");

    // A sell moves it down; its own plan has its own marker.
    let r = book(&mut c, "h1", &[(8, Side::Sell, "2")]);
    assert_eq!(r.fills_booked, 1);
    assert_eq!(ledger(&mut c).as_deref(), Some("-0.2"));
    assert_eq!(synced(&mut c).as_deref(), Some("-0.2"));
}

/// The sum the script must write: `start` moved by `sign` × `cum`, as the core writes it.
fn expected(start: &str, side: Side, cum: &str) -> String {
    let start = if start.is_empty() {
        Qty::ZERO
    } else {
        q(start.trim())
    };
    Qty::from_units(start.units() + side.sign() * q(cum).units()).to_string()
}

#[test]
fn the_arithmetic_is_exact_and_written_as_the_core_writes_quantities() {
    let server = RedisServer::start();
    let mut c = server.conn();
    // (ledger_amount before ("" = absent), side, cumulative quantity)
    let table: &[(&str, Side, &str)] = &[
        ("", Side::Buy, "0.062"),
        ("0", Side::Buy, "0.00000001"),
        ("0", Side::Sell, "0.00000001"),
        ("0.5", Side::Sell, "0.5"),
        ("-0.00000001", Side::Buy, "0.00000001"),
        ("0.3", Side::Sell, "0.5"),
        ("-5", Side::Buy, "0.00000002"),
        ("-1.5", Side::Sell, "0.25"),
        ("123.45", Side::Buy, "0.55"),
        ("123.45", Side::Sell, "123.45000001"),
        ("0.99999999", Side::Buy, "0.00000001"),
        ("-0.99999999", Side::Sell, "0.00000001"),
        ("10", Side::Sell, "9.99999999"),
        ("0.0620", Side::Buy, "0.001"),
        ("+3", Side::Sell, "1"),
        (" 2.5 ", Side::Buy, "0.5"),
        ("007.10000000000", Side::Buy, "1"),
        (".5", Side::Buy, "1"),
        ("5.", Side::Sell, "0.1"),
        ("92233720000.12345678", Side::Buy, "367.87654321"),
        ("-92233720000.12345678", Side::Sell, "367.87654321"),
        ("12345678901.23456789", Side::Sell, "98765.43210987"),
        ("-12345678901.23456789", Side::Buy, "12345678902"),
        ("1.5", Side::Buy, "9000000000.00000001"),
    ];
    for (i, (start, side, cum)) in table.iter().enumerate() {
        let plan = 0x100 + i as u64;
        let _: () = c.del(legacy::position_key(SYMBOL)).unwrap();
        if !start.is_empty() {
            let _: () = c
                .hset(legacy::position_key(SYMBOL), LEDGER_FIELD, *start)
                .unwrap();
        }
        let r = book(&mut c, "h1", &[(plan, *side, cum)]);
        assert_eq!(r.fills_booked, 1, "{start:?} {side:?} {cum}");
        let want = expected(start, *side, cum);
        assert_eq!(
            ledger(&mut c).as_deref(),
            Some(want.as_str()),
            "{start:?} {side:?} {cum}"
        );
        assert_eq!(q(&want).to_string(), want, "the Rust side reads it back");
    }
}

#[test]
fn an_unreadable_ledger_is_not_booked_and_nothing_is_written() {
    let server = RedisServer::start();
    let mut c = server.conn();
    for bad in ["abc", "1.000000001", "1e5", "-", "1.2.3", "999999999999999"] {
        let _: () = c
            .hset(legacy::position_key(SYMBOL), LEDGER_FIELD, bad)
            .unwrap();
        let r = book(&mut c, "h1", &[(9, Side::Buy, "1")]);
        assert_eq!((r.fills_booked, r.fills_unbooked), (0, 1), "{bad}");
        assert_eq!(ledger(&mut c).as_deref(), Some(bad));
        assert!(!c
            .exists::<_, bool>(state::booked_key(SHARED, PlanId(9)))
            .unwrap());
    }
    // Beyond a quantity's range.
    let _: () = c
        .hset(legacy::position_key(SYMBOL), LEDGER_FIELD, "92233720368")
        .unwrap();
    let r = book(&mut c, "h1", &[(9, Side::Buy, "1")]);
    assert_eq!(r.fills_unbooked, 1);
    // Once readable, the fill is booked.
    set_ledger(&mut c, "1");
    let r = book(&mut c, "h1", &[(9, Side::Buy, "1")]);
    assert_eq!(r.fills_booked, 1);
    assert_eq!(ledger(&mut c).as_deref(), Some("2"));
}

#[test]
fn an_operators_value_waiting_for_the_core_is_moved_and_stays_the_operators() {
    let server = RedisServer::start();
    let mut c = server.conn();
    set_ledger(&mut c, "1");
    // The operator writes 4; the bridge has not handed it to the core yet.
    let _: () = c
        .hset(legacy::position_key(SYMBOL), LEDGER_FIELD, "4")
        .unwrap();
    let r = book(&mut c, "h1", &[(1, Side::Sell, "0.25")]);
    assert_eq!(r.fills_booked, 1);
    assert_eq!(ledger(&mut c).as_deref(), Some("3.75"));
    assert_eq!(
        synced(&mut c).as_deref(),
        Some("1"),
        "still differs: the bridge hands 3.75 to the core"
    );
}

#[test]
fn two_hosts_booking_interleaved_fills_end_with_the_start_plus_every_fill() {
    let server = RedisServer::start();
    let mut c = server.conn();
    set_ledger(&mut c, "-0.7");
    // Each plan's fills in order of its cumulative quantity; each host sees a part of them,
    // late or twice, and books them in its own batches.
    let plans: [(u64, Side, &[&str]); 4] = [
        (0xa1, Side::Buy, &["0.1", "0.25", "0.25", "1"]),
        (0xa2, Side::Sell, &["0.00000001", "0.3", "0.33333333"]),
        (0xa3, Side::Buy, &["5"]),
        (0xa4, Side::Sell, &["0.5", "2.5"]),
    ];
    let mut h1 = Vec::new();
    let mut h2 = Vec::new();
    for (plan, side, cums) in &plans {
        for (i, cum) in cums.iter().enumerate() {
            if i % 2 == 0 {
                h1.push((*plan, *side, *cum));
            } else {
                h2.push((*plan, *side, *cum));
            }
            if i == cums.len() - 1 {
                // The last fill is seen by both.
                h1.push((*plan, *side, *cum));
                h2.push((*plan, *side, *cum));
            }
        }
    }
    let mut a = h1.iter();
    let mut b = h2.iter().rev();
    let mut booked = 0;
    loop {
        let x: Vec<_> = a.by_ref().take(2).copied().collect();
        let y: Vec<_> = b.by_ref().take(3).copied().collect();
        if x.is_empty() && y.is_empty() {
            break;
        }
        booked += book(&mut c, "h1", &x).fills_booked;
        booked += book(&mut c, "h2", &y).fills_booked;
    }
    assert!(booked >= plans.len() as u64, "{booked}");
    let mut want = q("-0.7").units();
    for (_, side, cums) in &plans {
        want += side.sign() * q(cums.last().unwrap()).units();
    }
    let want = Qty::from_units(want).to_string();
    assert_eq!(ledger(&mut c).as_deref(), Some(want.as_str()));
    assert_eq!(synced(&mut c).as_deref(), Some(want.as_str()));
    // Everything again, from either host: nothing moves.
    let r = book(&mut c, "h2", &h1);
    assert_eq!(r.fills_booked, 0);
    let r = book(&mut c, "h1", &h2);
    assert_eq!(r.fills_booked, 0);
    assert_eq!(ledger(&mut c).as_deref(), Some(want.as_str()));
}

#[test]
fn a_stale_leaders_absolute_write_does_not_undo_a_booked_fill() {
    let server = RedisServer::start();
    let mut c = server.conn();
    let _: () = c.set(lease::epoch_key(SHARED), 5).unwrap();
    set_ledger(&mut c, "1");
    book(&mut c, "h2", &[(3, Side::Buy, "0.5")]);
    assert_eq!(ledger(&mut c).as_deref(), Some("1.5"));

    // The old leader (epoch 4) writes its core's ledger from before the fill.
    let mut b = Batch::new(SHARED, 1000, "g", TTL_S);
    b.set_fence(Some(Fence {
        epoch_key: lease::epoch_key(SHARED),
        epoch: 4,
    }));
    b.ledger(SHARED, SYMBOL, q("1"), AT_MS);
    let reply: redis::Value = b
        .transaction("lease-l@h1", &saved(), "m")
        .query(&mut c)
        .unwrap();
    assert_eq!(b.replies(&reply).fenced_ledger, 1);
    assert_eq!(ledger(&mut c).as_deref(), Some("1.5"));
    assert_eq!(synced(&mut c).as_deref(), Some("1.5"));

    // The leader's own absolute write (an operator's sync its core applied) lands, and a
    // fill booked after it moves it.
    let mut b = Batch::new(SHARED, 1000, "g", TTL_S);
    b.set_fence(Some(Fence {
        epoch_key: lease::epoch_key(SHARED),
        epoch: 5,
    }));
    b.ledger(SHARED, SYMBOL, q("3"), AT_MS);
    b.book_fill(SYMBOL, PlanId(4), Side::Sell, q("0.1"), AT_MS);
    let reply: redis::Value = b
        .transaction("lease-l@h2", &saved(), "m")
        .query(&mut c)
        .unwrap();
    let r = b.replies(&reply);
    assert_eq!((r.fenced_ledger, r.fills_booked), (0, 1));
    assert_eq!(ledger(&mut c).as_deref(), Some("2.9"));
}

/// The script called directly: its replies.
fn invoke(c: &mut redis::Connection, cum: &str, sign: i64) -> redis::RedisResult<i64> {
    redis::Script::new(BOOK_FILL_SCRIPT)
        .key(legacy::position_key(SYMBOL))
        .key(state::booked_key(SHARED, PlanId(1)))
        .key(state::ledger_key(SHARED))
        .arg(SYMBOL)
        .arg(cum)
        .arg(sign)
        .arg("t")
        .arg(60)
        .arg(LEDGER_FIELD)
        .arg(0)
        .invoke(c)
}

#[test]
fn the_script_replies() {
    let server = RedisServer::start();
    let mut c = server.conn();
    assert!(invoke(&mut c, "1", 2).is_err(), "a sign is 1 or -1");
    assert!(invoke(&mut c, "x", 1).is_err(), "a quantity is a decimal");
    assert_eq!(ledger(&mut c), None);
    let _: () = c
        .hset(legacy::position_key(SYMBOL), LEDGER_FIELD, "abc")
        .unwrap();
    assert_eq!(invoke(&mut c, "1", 1).unwrap(), BOOK_UNREADABLE);
    set_ledger(&mut c, "0");
    assert_eq!(invoke(&mut c, "1", -1).unwrap(), 1);
    assert_eq!(invoke(&mut c, "1", -1).unwrap(), 0);
    assert_eq!(ledger(&mut c).as_deref(), Some("-1"));
}
