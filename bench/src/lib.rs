//! Latency benchmarks of the quantum core: every sample recorded in an HdrHistogram, every
//! claim a ratio to a baseline measured in the same run (`quantum bench`, see
//! `docs/benchmarks.md`).
//!
//! - [`suite`]: the runner: open-loop blocks with coordinated omission handled, a
//!   closed-loop throughput run per row, rows interleaved block by block, the table,
//!   `summary.md`/`summary.json`, `.hgrm` files and the percentile plot.
//! - [`scenarios`]: the rows: `ring` (cache-line floor, crossbeam, shm rings), `chain`,
//!   `ipc` (real processes around `quantum run`), `legacy` (a real redis-server), `bridge`
//!   (the Redis bridge and the daemon), `journal` (the chain with the journal off, on, synced).
//!
//! Percentiles and `.hgrm` files are written by `quantum_daemon::latency::report`, the same
//! code that reports a running core's latency.
//!
//! Benchmarks measure; nothing here asserts a speed.
#![deny(unsafe_code)]

pub mod cli;
pub mod feed;
pub mod scenarios;
pub mod suite;
