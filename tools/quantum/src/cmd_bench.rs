//! `quantum bench ...`: latency benchmarks (see the `quantum-bench` crate).
//!
//! `main.rs` declares `mod cmd_bench;` and calls [`run`] for the `bench` subcommand.

/// Benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCmd {
    /// Round trips: cache line (floor), crossbeam ArrayQueue, shm ring between threads and
    /// between processes. Prints a percentile table; writes summary.json and .hgrm files.
    #[command(
        after_help = "Example:\n  quantum bench ring --iters 100000     # writes ./quantum-bench-ring/summary.json and .hgrm files"
    )]
    Ring(quantum_bench::ring::RingArgs),
    /// The permit chain on one pinned thread, per plan, against clock and queue baselines.
    #[command(
        after_help = "Example:\n  cargo run --release -- bench chain --plans 200000   # writes ./quantum-bench-chain/"
    )]
    Chain(quantum_bench::chain::ChainArgs),
    /// The echo process of `bench ring` (started by it, not by hand).
    #[command(hide = true)]
    RingPeer(quantum_bench::ring::PeerArgs),
}

/// Runs a benchmark subcommand.
pub fn run(cmd: BenchCmd) -> anyhow::Result<()> {
    match cmd {
        BenchCmd::Ring(args) => quantum_bench::ring::run(&args).map(|_| ()),
        BenchCmd::RingPeer(args) => quantum_bench::ring::run_peer(&args),
        BenchCmd::Chain(args) => quantum_bench::chain::run(&args).map(|_| ()),
    }
}
