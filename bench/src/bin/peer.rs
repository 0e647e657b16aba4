//! Stand-in for `quantum bench ring-peer` in this crate's tests: accepts
//! `bench ring-peer <PeerArgs>` exactly like the quantum CLI.
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
    Bench(Bench),
}

#[derive(clap::Subcommand)]
enum Bench {
    RingPeer(quantum_bench::ring::PeerArgs),
    Ring(quantum_bench::ring::RingArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().top {
        Top::Bench(Bench::RingPeer(args)) => quantum_bench::ring::run_peer(&args),
        Top::Bench(Bench::Ring(args)) => quantum_bench::ring::run(&args).map(|_| ()),
    }
}
