//! The short failover settings of the test, in one place: both daemons' `[failover]`, the
//! Binance bridges' recvWindow, and the checks' windows are made from them.

/// The daemon's `[failover]` section.
pub struct Failover {
    pub ttl_ms: u64,
    pub renew_ms: u64,
    pub drift_ms: u64,
    pub recv_window_ms: u64,
    pub clock_error_ms: u64,
}

/// Short, so that a run is quick.
pub const FAILOVER: Failover = Failover {
    ttl_ms: 1500,
    renew_ms: 300,
    drift_ms: 100,
    recv_window_ms: 500,
    clock_error_ms: 100,
};

/// The lease name both Redis bridges share (`--lease`): the key is `quantum:leader:fo`.
pub const LEASE: &str = "fo";

/// The lease key in Redis (dropped on purpose after some redis-server restarts).
pub fn lease_key() -> String {
    format!("quantum:leader:{LEASE}")
}

/// Added to recvWindow + clock error when judging whether an order was sent while its host
/// could send: the watcher's reading period, the simulator's own handling, the bridge's
/// estimate of the server's clock.
pub const SLACK_MS: u64 = 250;
