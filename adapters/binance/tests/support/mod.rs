//! What the bridge's ring-level tests share: quantities, the reduce-only intent the core sends,
//! and reading the `exchange` ring until a record arrives. Each test binary uses a part of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use quantum_binance::Credentials;
use quantum_binance_sim::{TEST_API_KEY, TEST_API_SECRET};
use quantum_ipc::wire::{self, Limits, Message, RECORD_SIZE};
use quantum_ipc::Consumer;

/// `s` in the core's quantity units.
pub fn q(s: &str) -> i64 {
    s.parse::<quantum_core::fixed::Qty>().unwrap().units()
}

/// The simulator's test key pair.
pub fn creds() -> Credentials {
    Credentials::new(TEST_API_KEY, TEST_API_SECRET)
}

/// A reduce-only market intent, as apply sends it (the bridge picks the position side).
pub fn intent(plan_id: u64, symbol: u16, side: wire::Side, qty: i64) -> Message {
    Message::OrderIntent(wire::OrderIntent {
        side,
        symbol,
        reduce_only: true,
        order_type: wire::OrderType::Market,
        plan_id,
        qty,
        flags: 0,
        t_in_ns: 0,
        t_out_ns: 0,
        at_ms: 0,
    })
}

/// Reads `exchange` until `want` matches a record (returned), keeping every record read in
/// `seen`; panics after 15 s naming `what` and what was seen.
pub async fn wait_for(
    rx: &mut Consumer<RECORD_SIZE>,
    seen: &mut Vec<Message>,
    what: &str,
    want: impl Fn(&Message) -> bool,
) -> Message {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        while let Some(m) = rx.try_pop_message(&Limits::default()) {
            let m = m.unwrap();
            seen.push(m);
            if want(&m) {
                return m;
            }
        }
        assert!(Instant::now() < deadline, "no {what}; saw {seen:#?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Everything `exchange` receives within `d`, into `seen`.
pub async fn drain(rx: &mut Consumer<RECORD_SIZE>, seen: &mut Vec<Message>, d: Duration) {
    tokio::time::sleep(d).await;
    while let Some(m) = rx.try_pop_message(&Limits::default()) {
        seen.push(m.unwrap());
    }
}
