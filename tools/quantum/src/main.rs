//! `quantum`: the one binary that wires the workspace together.
#![deny(unsafe_code)]

mod closed_pipe;
mod cmd;
mod ctl;
mod demo;
mod logging;

use clap::{Parser, Subcommand};

/// Quantum Permit Core: the permit chain of the trading system, in microseconds.
#[derive(Parser, Debug)]
#[command(
    name = "quantum",
    version,
    about,
    long_about = None,
    after_help = "Examples:\n  quantum demo\n  quantum replay --journal /var/lib/quantum/prod1 --config other.toml\n  quantum run --instance prod1 --config /etc/quantum/prod1.toml\n  quantum ctl stats --instance prod1\n  quantum ctl doctor --cpus 2,3\n\nLogs go to stderr (time, level, target); RUST_LOG=debug shows more, RUST_LOG=warn less."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the core daemon of an instance: shared-memory rings in and out, counters, until
    /// SIGINT or SIGTERM.
    #[command(
        after_help = "Examples:\n  quantum run --instance prod1 --config /etc/quantum/prod1.toml\n  quantum run --instance prod1 --print-config --defaults   # every key, its default and variable"
    )]
    Run(quantum_daemon::RunArgs),
    /// Inspect and drive a running instance: stats, rings, inject, tail, gc, doctor, metrics,
    /// top.
    #[command(subcommand)]
    Ctl(ctl::CtlCmd),
    /// Run the core with a synthetic plan feed and the Binance simulator in-process (no Redis).
    #[command(
        after_help = "Examples:\n  quantum demo                                  # writes ./quantum-demo/chain.hgrm and demo.log\n  quantum demo --mode pipelined --plans 50000 --out /tmp/demo"
    )]
    Demo(demo::DemoArgs),
    /// Latency benchmarks with HdrHistogram reports.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCmd),
    /// Local simulators of the venues the adapters talk to.
    #[command(subcommand)]
    Sim(cmd::sim::SimCmd),
    /// Adapter processes between an instance's rings and a venue.
    #[command(subcommand)]
    Bridge(cmd::bridge::BridgeCmd),
    /// Re-run a journal's recorded inputs through the engine under its own or another
    /// configuration, sending nothing, and print the decisions that change.
    Replay(cmd::replay::ReplayArgs),
}

impl Cmd {
    /// Commands whose job is to print: a closed stdout ends them quietly. Servers and bridges
    /// are left out, so a peer hanging up on one of their sockets stays an error.
    fn prints(&self) -> bool {
        match self {
            Cmd::Ctl(c) => c.prints(),
            Cmd::Demo(_) | Cmd::Bench(_) | Cmd::Replay(_) => true,
            Cmd::Run(_) | Cmd::Sim(_) | Cmd::Bridge(_) => false,
        }
    }
}

fn main() {
    let cli = Cli::parse();
    logging::init();
    closed_pipe::install_panic_hook();
    let prints = cli.cmd.prints();
    let res = match cli.cmd {
        Cmd::Run(a) => quantum_daemon::run(a),
        Cmd::Ctl(c) => ctl::run(c),
        Cmd::Demo(a) => demo::run(a),
        Cmd::Bench(c) => cmd::bench::run(c),
        Cmd::Sim(c) => cmd::sim::run(c),
        Cmd::Bridge(c) => cmd::bridge::run(c),
        Cmd::Replay(a) => cmd::replay::run(a),
    };
    if let Err(e) = res {
        if prints && closed_pipe::is_closed_output(&e) {
            return;
        }
        // A command that reported its outcome itself (doctor's worst status) exits with it.
        if let Some(exit) = e.downcast_ref::<ctl::Exit>() {
            if !exit.message.is_empty() {
                eprintln!("quantum: {}", exit.message);
            }
            std::process::exit(exit.code);
        }
        eprintln!("quantum: {e:#}");
        std::process::exit(1);
    }
}
