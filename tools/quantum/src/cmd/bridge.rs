//! `quantum bridge ...`: adapter processes between the core's rings and the outside world.

/// Bridges `quantum bridge` can run.
#[derive(Debug, clap::Subcommand)]
pub enum BridgeCmd {
    /// Binance USD-M futures: takes OrderIntents from `quantum.<instance>.orders`, sends
    /// reduce-only MARKET orders (REST, or the WebSocket API with --ws-api), and writes
    /// SymbolFilters, PositionSnapshots, Fills and Rejects to `quantum.<instance>.exchange`.
    /// Testnet unless --mainnet.
    #[command(
        after_help = "Example (the local simulator and its documented test key):\n  BINANCE_API_KEY=... BINANCE_API_SECRET=... \\\n    quantum bridge binance --instance demo1 --rest-url http://127.0.0.1:8089 --ws-api"
    )]
    Binance(quantum_binance::cli::BinanceBridgeArgs),
    /// The legacy Redis streams and keys: reads plans from quantum:stream:apply.plan (consumer
    /// group, acknowledged once the core has them) into `quantum.<instance>.plans`, turns
    /// `HSET quantum:position:<S> ledger_amount` into ledger syncs, and writes the core's
    /// permits, results and positions to the legacy keys. With --permits-from redis, the
    /// legacy Governor's and P3.3's permits go to the core instead.
    #[command(after_help = quantum_redis::cli::EXAMPLES)]
    Redis(quantum_redis::cli::RedisBridgeArgs),
}

/// Runs a bridge on its own tokio runtime until SIGINT or SIGTERM (either detaches it cleanly).
pub fn run(cmd: BridgeCmd) -> anyhow::Result<()> {
    match cmd {
        BridgeCmd::Binance(args) => super::block_on(quantum_binance::cli::run(args)),
        BridgeCmd::Redis(args) => super::block_on(quantum_redis::cli::run(args)),
    }
}
