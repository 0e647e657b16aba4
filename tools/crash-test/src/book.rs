//! A daemon's book as its gauges show it (`ledger.<LEG>`, `in_flight.<LEG>`, `reconciling`;
//! a leg's label is `BTCUSDT`, or `BTCUSDT:LONG` in hedge mode), and when a leg is at rest.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use quantum_core::Qty;
use quantum_ipc::CountersReader;

use crate::sim::Sim;

/// Per leg (by label): the daemon's ledger and in-flight gauges.
pub type Book = BTreeMap<String, (Qty, Qty)>;

/// A decimal quantity.
pub fn q(s: &str) -> Result<Qty> {
    s.parse().map_err(|e| anyhow!("{s:?}: {e}"))
}

/// Per symbol: (ledger, in flight) from `instance`'s daemon's gauges, and its `reconciling`
/// gauge; `None` while it is down.
pub fn book(instance: &str, symbols: &[String]) -> Option<(Book, u64)> {
    let c = CountersReader::open(instance).ok()?;
    if !c.owner_alive() {
        return None;
    }
    let amount = |l: &str| c.get(l).map(|v| Qty::from_units(v as i64));
    let mut out = BTreeMap::new();
    for s in symbols {
        out.insert(
            s.clone(),
            (
                amount(&format!("ledger.{s}"))?,
                amount(&format!("in_flight.{s}"))?,
            ),
        );
    }
    Some((out, c.get("reconciling").unwrap_or(0)))
}

/// The daemon's pid and its last journaled event number: equal in two reads means the same
/// daemon did nothing in between.
pub fn activity(instance: &str) -> Option<(u64, u64)> {
    let c = CountersReader::open(instance).ok()?;
    c.owner_alive()
        .then(|| (c.owner_pid(), c.get("journal.seq").unwrap_or(0)))
}

/// Whether `symbol` is at rest on `instance`: nothing in flight, nothing reconciling, ledger
/// equal to the simulator's position, and the same daemon quiet over 100 ms (its gauges are
/// copied from the book every few ms, and a plan may be on its way through it). `Err` when
/// at rest but the ledger disagrees.
pub fn at_rest(instance: &str, symbols: &[String], symbol: &str, sim: &Sim) -> Result<bool> {
    let before = activity(instance);
    if before.is_none() || !at_rest_now(instance, symbols, symbol, sim)? {
        return Ok(false);
    }
    std::thread::sleep(Duration::from_millis(100));
    Ok(activity(instance) == before && at_rest_now(instance, symbols, symbol, sim)?)
}

/// [`at_rest`] from one reading.
pub fn at_rest_now(instance: &str, symbols: &[String], symbol: &str, sim: &Sim) -> Result<bool> {
    let Some((book, reconciling)) = book(instance, symbols) else {
        return Ok(false);
    };
    let (ledger, in_flight) = book[symbol];
    if reconciling != 0 || !in_flight.is_zero() {
        return Ok(false);
    }
    let pos = |sim: &Sim| -> Result<Qty> {
        Ok(sim.positions()?.get(symbol).copied().unwrap_or(Qty::ZERO))
    };
    // A fill may be on its way from the exchange: look again before calling it a mismatch.
    if ledger != pos(sim)? {
        std::thread::sleep(Duration::from_millis(1500));
        let Some((book, reconciling)) = self::book(instance, symbols) else {
            return Ok(false);
        };
        let (ledger, in_flight) = book[symbol];
        let now = pos(sim)?;
        if reconciling == 0 && in_flight.is_zero() && ledger != now {
            bail!("{symbol}: at rest, but ledger {ledger} != simulator position {now}");
        }
        return Ok(false);
    }
    Ok(true)
}
