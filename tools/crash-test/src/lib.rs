//! What the crash test (`quantum-crash-test`) and the failover test (`quantum-failover-test`)
//! share: the simulator with its faults on and the starting book, child processes and their
//! logs, the simulator's control API, a daemon's book as its gauges show it (and when a symbol
//! is at rest), and the Redis result stream read back.

pub mod book;
pub mod http;
pub mod procs;
pub mod results;
pub mod sim;
