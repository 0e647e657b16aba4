//! Latency benchmarks of the quantum IPC: every sample recorded in an HdrHistogram, every
//! claim a ratio to a baseline measured in the same run.
//!
//! - [`ring`]: round trips over a cache line (the physical floor), a crossbeam `ArrayQueue`,
//!   our shared-memory ring between two threads and between two processes
//!   (`quantum bench ring`).
//! - [`chain`]: the permit chain on one thread against clock and queue baselines
//!   (`quantum bench chain`).
//! - [`feed`]: the seeds' plan mix (EXECUTE/HOLD/REDUCE, partial closes, re-delivered ids).
//! - [`report`]: the table, `summary.json` and the standard `.hgrm` percentile files.
//!
//! Benchmarks measure; nothing here asserts a speed.
#![deny(unsafe_code)]

pub mod chain;
pub mod feed;
pub mod report;
pub mod ring;
