//! The `quantum bench` subcommands (the `quantum` binary and this crate's test peer both
//! parse them from here).

use crate::scenarios::ipc::peer::{self as ipc_peer, IpcPeerArgs};
use crate::scenarios::ring::{self, PeerArgs};
use crate::suite::{self, SuiteArgs};

const EXAMPLES: &str = "Examples:
  quantum bench all                          # every scenario, interleaved; writes ./quantum-bench/
  quantum bench chain --duration 2 --out /tmp/chain
  quantum bench ring --rate 50000 --blocks 20
  quantum bench bridge --isolated-plans 40 --isolated-gap-ms 300   # plans alone vs loaded";

/// Latency benchmarks: HdrHistogram per row, open loop with coordinated omission handled, a
/// closed-loop throughput run, rows interleaved in blocks, ratios to baselines of the same run.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCmd {
    /// Every scenario in one run, rows interleaved.
    #[command(after_help = EXAMPLES)]
    All(SuiteArgs),
    /// The in-process permit chain: one thread (`single`) and the pipelined runner.
    #[command(after_help = EXAMPLES)]
    Chain(SuiteArgs),
    /// Plan → `quantum run` → order intent across real processes over the shm rings.
    #[command(after_help = EXAMPLES)]
    Ipc(SuiteArgs),
    /// Round trips: cache line (the floor), crossbeam ArrayQueue, shm ring between threads
    /// and between processes.
    #[command(after_help = EXAMPLES)]
    Ring(SuiteArgs),
    /// The legacy Redis + Lua permit path on a local redis-server: bare round trips, and as
    /// deployed (100 ms permit poll).
    #[command(after_help = EXAMPLES)]
    Legacy(SuiteArgs),
    /// XADD in Redis → result entry in Redis through `quantum bridge redis` and `quantum run`
    /// (HOLD plans, EXECUTE plans through the whole chain, and EXECUTE plans each alone).
    #[command(after_help = EXAMPLES)]
    Bridge(SuiteArgs),
    /// The chain with each event published: no journal, journaled, journaled and synced.
    #[command(after_help = EXAMPLES)]
    Journal(SuiteArgs),
    /// An order adapter → Binance simulator → adapter on loopback, REST and WebSocket API,
    /// next to a loopback TCP echo of a request-sized message (the floor).
    #[command(after_help = EXAMPLES)]
    Exchange(SuiteArgs),
    /// The echo process of `bench ring` (started by it, not by hand).
    #[command(hide = true)]
    RingPeer(PeerArgs),
    /// A bridge-shaped process of `bench ipc` (started by it, not by hand).
    #[command(hide = true)]
    IpcPeer(IpcPeerArgs),
}

/// Runs a `quantum bench` subcommand.
pub fn run(cmd: BenchCmd) -> anyhow::Result<()> {
    let (name, args) = match cmd {
        BenchCmd::RingPeer(a) => return ring::run_peer(&a),
        BenchCmd::IpcPeer(a) => return ipc_peer::run(&a),
        BenchCmd::All(a) => ("all", a),
        BenchCmd::Chain(a) => ("chain", a),
        BenchCmd::Ipc(a) => ("ipc", a),
        BenchCmd::Ring(a) => ("ring", a),
        BenchCmd::Legacy(a) => ("legacy", a),
        BenchCmd::Bridge(a) => ("bridge", a),
        BenchCmd::Journal(a) => ("journal", a),
        BenchCmd::Exchange(a) => ("exchange", a),
    };
    suite::run(name, &args).map(|_| ())
}
