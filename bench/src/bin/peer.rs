//! Stand-in for `quantum bench ...` in this crate's tests: parses `bench <subcommand>` exactly
//! like the quantum CLI (the peers of `ring` and `ipc` included; `ipc` also needs `quantum
//! run`, so its tests live with the `quantum` binary).
#![deny(unsafe_code)]

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    top: Top,
}

#[derive(clap::Subcommand)]
enum Top {
    #[command(subcommand)]
    Bench(quantum_bench::cli::BenchCmd),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().top {
        Top::Bench(cmd) => quantum_bench::cli::run(cmd),
    }
}
