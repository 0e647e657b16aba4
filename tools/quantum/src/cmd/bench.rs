//! `quantum bench ...`: latency benchmarks (the `quantum-bench` crate owns the subcommands).
//!
//! `main.rs` calls [`run`] for the `bench` subcommand.

pub use quantum_bench::cli::{run, BenchCmd};
