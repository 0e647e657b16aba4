//! `quantum`: the one binary that wires the workspace together.
#![deny(unsafe_code)]

mod cmd_bench;
mod cmd_bridge;
mod cmd_sim;
mod ctl;
mod daemon;
mod demo;

use clap::{Parser, Subcommand};

/// Quantum Permit Core: the permit chain of the trading system, in microseconds.
#[derive(Parser, Debug)]
#[command(name = "quantum", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the core daemon of an instance: shared-memory rings in and out, counters, until
    /// SIGINT or SIGTERM.
    Run(daemon::RunArgs),
    /// Inspect and drive a running instance: stats, rings, inject, tail, gc.
    #[command(subcommand)]
    Ctl(ctl::CtlCmd),
    /// Run the core with a synthetic plan feed and an in-process paper exchange (no Redis).
    Demo(demo::DemoArgs),
    /// Latency benchmarks with HdrHistogram reports.
    #[command(subcommand)]
    Bench(cmd_bench::BenchCmd),
    /// Local simulators of the venues the adapters talk to.
    #[command(subcommand)]
    Sim(cmd_sim::SimCmd),
    /// Adapter processes between an instance's rings and a venue.
    #[command(subcommand)]
    Bridge(cmd_bridge::BridgeCmd),
}

fn main() {
    let cli = Cli::parse();
    // Library warnings (the Binance adapter's rejects and retries, the simulator's) go to
    // stderr; RUST_LOG changes the level (e.g. RUST_LOG=info).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(
                    "warn,quantum=info,quantum_binance=info,quantum_redis=info",
                )
            }),
        )
        .init();
    let res = match cli.cmd {
        Cmd::Run(a) => daemon::run(a),
        Cmd::Ctl(c) => ctl::run(c),
        Cmd::Demo(a) => demo::run(a),
        Cmd::Bench(c) => cmd_bench::run(c),
        Cmd::Sim(c) => cmd_sim::run(c),
        Cmd::Bridge(c) => cmd_bridge::run(c),
    };
    if let Err(e) = res {
        eprintln!("quantum: {e:#}");
        std::process::exit(1);
    }
}
