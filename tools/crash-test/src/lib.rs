//! What the crash test (`quantum-crash-test`) and the failover test (`quantum-failover-test`)
//! share: the simulator with its faults on and the starting book, child processes and their
//! logs, the simulator's control API, a daemon's book as its gauges show it (and when a symbol
//! is at rest), and the Redis result stream read back. A symbol here is a leg of the core
//! (`BTCUSDT` in one-way mode, `BTCUSDT:LONG` and `BTCUSDT:SHORT` in hedge mode), named by
//! `quantum_core::PositionSide::label`.

pub mod book;
pub mod http;
pub mod procs;
pub mod results;
pub mod sim;
