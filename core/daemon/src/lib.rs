//! `quantum-daemon`: the core process of one instance (`quantum run`).
//!
//! ```text
//!  plans ──┐                      ┌──────────────────────────┐     ┌─> orders  (OrderIntent)
//!  ctl ────┼─> I/O thread (main) >│ engine Runner (pinned    │ ──> I/O thread
//!  exchange┘   decode, validate,  │ when cores allow)        │     └─> results (every event,
//!              count              └──────────────────────────┘          broadcast)
//! ```
//!
//! The main thread is the I/O thread ([`Daemon`]), made of three parts: [`ingress`] owns the
//! consumer side of the ingress rings and turns records into engine inputs (validated,
//! counted, released only once handled and journaled); [`egress`] journals every event and
//! then publishes it on `results` (and an intent on `orders`); [`housekeeping`] heartbeats,
//! watches peers and copies the book's amounts into the gauges ([`stats`]). Names,
//! directions and record kinds of the rings are the process contract
//! (`quantum_ipc::contract`); records and engine inputs convert through `quantum_core::wire`.
//! The engine runs on the core's `Runner` threads (the `Placement` note in the log says
//! where) and owns every plan's lifecycle; [`latency`] times its stages. Start-up takes the
//! instance lock ([`instance`]), removes segments a dead predecessor left, recovers the
//! journal ([`journal`], [`trust`]), and creates the
//! counters segment and the rings. SIGINT/SIGTERM: stop reading ingress, let pending plans
//! resolve, publish their events, wait (at most `rings.drain_timeout_ms`) for a live `orders`
//! consumer to take the intents, and exit 0. Every segment is removed on a clean exit
//! (consumers that still map a ring keep reading what is in it); after a crash the next
//! `quantum run` of the instance, or `quantum ctl gc`, removes them.

pub mod audit;
pub mod config;
mod egress;
mod failover;
pub mod host;
mod housekeeping;
mod ingress;
mod instance;
mod io;
mod journal;
pub use journal::{journal_symbols, symbols_extend, write_journal_symbols};
pub mod latency;
pub mod print_config;
pub mod stats;
mod trust;

pub use io::Daemon;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

use config::DaemonConfig;

/// Options of `quantum run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Instance name: segments are `/dev/shm/quantum.<instance>.<ring>`.
    #[arg(long, required_unless_present = "print_config")]
    pub instance: Option<String>,
    /// TOML configuration file (keys as `--print-config` shows them).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The instance's journal directory (overrides `journal.dir`). Give it explicitly in
    /// production: by default it comes from the environment ($STATE_DIRECTORY,
    /// $XDG_STATE_HOME, $HOME), which differs between a service and a shell.
    #[arg(long, value_name = "DIR")]
    pub journal_dir: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit: every key, its environment
    /// variable, a one-line description, and the default of each value that differs.
    #[arg(long)]
    pub print_config: bool,
    /// With --print-config: print the built-in defaults instead of the effective values.
    #[arg(long, requires = "print_config")]
    pub defaults: bool,
    /// Thread layout (overrides `mode`): auto, single, pipelined or inline.
    #[arg(long, value_parser = ["auto", "single", "pipelined", "inline"])]
    pub mode: Option<String>,
    /// Busy-spin idle threads (overrides `spin`).
    #[arg(long)]
    pub spin: bool,
    /// Never pin threads (overrides `pin`).
    #[arg(long)]
    pub no_pin: bool,
    /// No legacy `[PERMIT_WAIT]` / `Result published` lines (overrides `legacy_log`).
    #[arg(long, short)]
    pub quiet: bool,
    /// Lock all memory (overrides `host.mlockall`).
    #[arg(long)]
    pub mlockall: bool,
    /// SCHED_FIFO priority 1-99, 0 for off (overrides `host.sched_fifo`).
    #[arg(long, value_name = "PRIO")]
    pub sched_fifo: Option<u8>,
    /// CPUs for the daemon's threads, e.g. 2-3 (overrides `host.cpus`).
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<String>,
    /// Append each interval's latency histograms, one per stage, to FILE in the HdrHistogram
    /// interval log format (`latency.hdr_log`).
    #[arg(long, value_name = "FILE")]
    pub hdr_log: Option<PathBuf>,
    /// Before any symbol trades, wait for the exchange's history of our orders (so no plan it
    /// holds is ordered again): `always` (the default when the flag has no value), `auto`
    /// (when the journal cannot be trusted) or `never` (overrides
    /// `journal.recover_from_exchange`).
    #[arg(long, value_name = "WHEN", num_args = 0..=1, default_missing_value = "always")]
    pub recover_from_exchange: Option<String>,
}

/// The effective configuration: defaults, file, environment, command line.
pub fn effective_config(args: &RunArgs) -> Result<DaemonConfig> {
    let mut cfg = match &args.config {
        Some(p) => DaemonConfig::from_file(p)?,
        None => DaemonConfig::default(),
    };
    cfg.apply_env(|k| std::env::var(k).ok())?;
    if let Some(m) = &args.mode {
        cfg.mode = m.clone();
    }
    cfg.spin |= args.spin;
    cfg.pin &= !args.no_pin;
    cfg.legacy_log &= !args.quiet;
    cfg.host.mlockall |= args.mlockall;
    if let Some(p) = args.sched_fifo {
        cfg.host.sched_fifo = p;
    }
    if let Some(f) = &args.hdr_log {
        cfg.latency.hdr_log = f.display().to_string();
    }
    if let Some(c) = &args.cpus {
        cfg.host.cpus = c.clone();
    }
    if let Some(r) = &args.recover_from_exchange {
        cfg.journal.recover_from_exchange = r.clone();
    }
    if let Some(d) = &args.journal_dir {
        cfg.journal.dir = d.display().to_string();
    }
    // Checks every value, so `--print-config` never prints a configuration `run` refuses.
    cfg.engine_config()?;
    cfg.host_plan()?;
    Ok(cfg)
}

/// Runs `quantum run`.
pub fn run(args: RunArgs) -> Result<()> {
    if args.print_config {
        let defaults = DaemonConfig::default();
        let text = if args.defaults {
            print_config::annotated(&defaults, &defaults, true)
        } else {
            print_config::annotated(&effective_config(&args)?, &defaults, false)
        };
        std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())?;
        return Ok(());
    }
    let cfg = effective_config(&args)?;
    let instance = args
        .instance
        .clone()
        .context("--instance is required to run")?;
    // Before any other thread exists, so that every thread inherits the tuning.
    for note in cfg.host_plan()?.apply()? {
        tracing::info!(%instance, "host: {note}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // A second signal while draining exits at once with status 1.
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())
            .context("cannot install signal handlers")?;
        signal_hook::flag::register(sig, stop.clone()).context("cannot install signal handlers")?;
    }
    let source = journal_dir_source(&args, &cfg);
    Daemon::start_from(&instance, cfg, source)?.run(&stop)
}

/// Where `journal.dir` was set, for the start log: `--journal-dir`, its environment variable,
/// or the configuration file; `None` when it was not (the default's own reason is logged).
fn journal_dir_source(args: &RunArgs, cfg: &DaemonConfig) -> Option<String> {
    if cfg.journal.dir.trim().is_empty() {
        return None;
    }
    let var = config::env_name("journal.dir");
    Some(if args.journal_dir.is_some() {
        "--journal-dir".into()
    } else if std::env::var_os(&var).is_some_and(|v| !v.is_empty()) {
        format!("${var}")
    } else {
        match &args.config {
            Some(p) => format!("journal.dir in {}", p.display()),
            None => "journal.dir".into(),
        }
    })
}
