//! `quantum run`: the core daemon of one instance.
//!
//! ```text
//!  plans ──┐                      ┌──────────────────────────┐     ┌─> orders  (OrderIntent)
//!  ctl ────┼─> I/O thread (main) >│ engine Runner (pinned    │ ──> I/O thread
//!  exchange┘   decode, validate,  │ when cores allow)        │     └─> results (every event,
//!              count              └──────────────────────────┘          broadcast)
//! ```
//!
//! The main thread is the I/O thread ([`io`]): it owns the consumer side of the ingress rings
//! and the producer side of the egress rings (names, directions and record kinds are the
//! process contract, `quantum_ipc::contract`), turns records into engine inputs and events into
//! records (`quantum_core::wire`), counts ([`stats`]), publishes the book's amounts as gauges,
//! heartbeats and watches peers; the engine runs on the core's `Runner` threads (the
//! `Placement` note in the log says where) and owns every plan's lifecycle. Start-up takes the
//! instance lock ([`instance`]), removes segments a dead predecessor left, and creates the
//! counters segment and the rings. SIGINT/SIGTERM: stop reading ingress, let pending plans
//! resolve, publish their events, wait (at most `rings.drain_timeout_ms`) for a live `orders`
//! consumer to take the intents, and exit 0. Every segment is removed on a clean exit
//! (consumers that still map a ring keep reading what is in it); after a crash the next
//! `quantum run` of the instance, or `quantum ctl gc`, removes them.

pub mod config;
mod instance;
pub(crate) mod io;
pub mod stats;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use quantum_core::Mode;

use config::DaemonConfig;

/// Options of `quantum run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Instance name: segments are `/dev/shm/quantum.<instance>.<ring>`.
    #[arg(long)]
    pub instance: String,
    /// TOML configuration file (keys as `--print-config` shows them).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Thread layout (overrides `mode`).
    #[arg(long)]
    pub mode: Option<Mode>,
    /// Busy-spin idle threads (overrides `spin`).
    #[arg(long)]
    pub spin: bool,
    /// Never pin threads (overrides `pin`).
    #[arg(long)]
    pub no_pin: bool,
    /// No legacy `[PERMIT_WAIT]` / `Result published` lines (overrides `legacy_log`).
    #[arg(long, short)]
    pub quiet: bool,
}

/// The effective configuration: defaults, file, environment, command line.
pub fn effective_config(args: &RunArgs) -> Result<DaemonConfig> {
    let mut cfg = match &args.config {
        Some(p) => DaemonConfig::from_file(p)?,
        None => DaemonConfig::default(),
    };
    cfg.apply_env(|k| std::env::var(k).ok())?;
    if let Some(m) = args.mode {
        cfg.mode = match m {
            Mode::Single => "single",
            Mode::Pipelined => "pipelined",
        }
        .into();
    }
    cfg.spin |= args.spin;
    cfg.pin &= !args.no_pin;
    cfg.legacy_log &= !args.quiet;
    // Checks every value, so `--print-config` never prints a configuration `run` refuses.
    cfg.engine_config()?;
    Ok(cfg)
}

/// Runs `quantum run`.
pub fn run(args: RunArgs) -> Result<()> {
    let cfg = effective_config(&args)?;
    if args.print_config {
        print!("{}", cfg.to_toml());
        return Ok(());
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // A second signal while draining exits at once with status 1.
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())
            .context("cannot install signal handlers")?;
        signal_hook::flag::register(sig, stop.clone()).context("cannot install signal handlers")?;
    }
    io::Daemon::start(&args.instance, cfg)?.run(&stop)
}
