//! What the Redis bridge's tests share: quantities, and the part of a daemon a bridge reads at
//! attach (its counters segment with the failover gauges). Each test binary uses a part of it.
#![allow(dead_code)]

use quantum_core::Qty;
use quantum_ipc::lease::settings;
use quantum_ipc::{remove_segment, CountersWriter};
use quantum_redis::lease::Settings;

/// `s` as a quantity; panics naming it when it is not one.
pub fn q(s: &str) -> Qty {
    s.parse()
        .unwrap_or_else(|e| panic!("{s:?} is not a quantity: {e}"))
}

/// An operator's `HSET quantum:position:<symbol> <field> <value>`, as `redis-cli` sends it.
pub fn operator_hset(c: &mut redis::Connection, symbol: &str, field: &str, value: &str) {
    redis::cmd("HSET")
        .arg(quantum_redis::legacy::position_key(symbol))
        .arg(field)
        .arg(value)
        .query::<()>(c)
        .unwrap_or_else(|e| panic!("HSET {symbol} {field} {value}: {e}"));
}

/// Writes `s` as a failover daemon publishes it: the gauges the bridge reads back with
/// [`Settings::from_counters`].
pub fn publish_failover(w: &CountersWriter, s: &Settings) {
    for (label, v) in [
        (settings::ENABLED, 1),
        (settings::TTL_MS, s.ttl_ms),
        (settings::RENEW_MS, s.renew_ms),
        (settings::DRIFT_MS, s.drift_ms),
        (settings::RECV_WINDOW_MS, s.recv_window_ms),
        (settings::CLOCK_ERROR_MS, s.clock_error_ms),
    ] {
        let id = w.register(label).unwrap();
        w.set(id, v);
    }
}

/// A daemon stand-in for the lease: the instance's counters segment, owned (alive) by this
/// process, with the failover gauges; removed with the lease segment on drop.
pub struct LeaseDaemon {
    /// The instance it stands for.
    pub instance: String,
    _w: CountersWriter,
}

impl LeaseDaemon {
    /// The segment of `instance`, publishing `s`.
    pub fn start(instance: &str, s: &Settings) -> LeaseDaemon {
        let w = CountersWriter::create(instance, 64).expect("counters segment");
        publish_failover(&w, s);
        LeaseDaemon {
            instance: instance.to_owned(),
            _w: w,
        }
    }
}

impl Drop for LeaseDaemon {
    fn drop(&mut self) {
        for name in ["counters", "lease"] {
            let _ = remove_segment(&format!("quantum.{}.{name}", self.instance));
        }
    }
}
