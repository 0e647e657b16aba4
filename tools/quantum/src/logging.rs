//! The one `tracing` subscriber of every `quantum` process: one line per event on stderr with
//! the time (UTC, RFC 3339), the level, the target (the module that logged) and the fields.
//!
//! `RUST_LOG` chooses what is shown, with `tracing_subscriber`'s filter syntax: `RUST_LOG=debug`,
//! `RUST_LOG=quantum_binance=debug,info`, `RUST_LOG=warn`. Unset, our own crates log at `info`
//! (a bridge says it attached, a peer was lost or regained) and libraries at `warn`. A value
//! that does not parse is reported once and the default is used, so a typo never silences the
//! logs. Colours only when stderr is a terminal: under systemd every line goes to the journal
//! as plain text, where journald adds its own timestamp and the unit name.

use tracing_subscriber::EnvFilter;

/// What is logged when `RUST_LOG` is unset: our crates at info, everything else at warn.
pub const DEFAULT_FILTER: &str = "warn,quantum=info,quantum_core=info,quantum_daemon=info,\
quantum_ipc=info,quantum_binance=info,quantum_binance_sim=info,quantum_redis=info,\
quantum_bench=info";

/// Installs the subscriber. Call once, first thing in `main`. Whatever `RUST_LOG` says, the
/// libraries that would print raw WebSocket frames, handshake URLs or request URLs (which
/// carry API keys, signatures and listenKeys) are held at `info` by the Binance adapter's
/// filter (`quantum_binance::common::logging`).
pub fn init() {
    let directives = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => match EnvFilter::try_new(&v) {
            Ok(_) => v,
            Err(e) => {
                eprintln!(
                    "quantum: RUST_LOG={v:?} is not a valid filter ({e}); using {DEFAULT_FILTER:?}"
                );
                DEFAULT_FILTER.to_string()
            }
        },
        _ => DEFAULT_FILTER.to_string(),
    };
    let filter = quantum_binance::common::logging::filter_from(&directives);
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(true)
        .with_level(true)
        .with_env_filter(filter)
        .init();
}
