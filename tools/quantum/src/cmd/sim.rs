//! `quantum sim ...`: local exchange simulators for tests and demos.

use quantum_binance_sim::cli::BinanceArgs;

/// Simulators `quantum sim` can start.
#[derive(Debug, clap::Subcommand)]
pub enum SimCmd {
    /// A Binance USD-M futures simulator (REST, WebSocket API, user data stream), serving
    /// until SIGINT or SIGTERM.
    #[command(
        after_help = "Example:\n  quantum sim binance --listen 127.0.0.1:8089 --position BTCUSDT=0.062 --mark BTCUSDT=104000\n  curl -s http://127.0.0.1:8089/sim/orders"
    )]
    Binance(BinanceArgs),
}

/// Runs a simulator on its own tokio runtime until it is told to stop.
pub fn run(cmd: SimCmd) -> anyhow::Result<()> {
    match cmd {
        SimCmd::Binance(args) => super::block_on(quantum_binance_sim::cli::serve(args)),
    }
}
