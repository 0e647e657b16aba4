//! The log filter every binary that runs this adapter should install: no API key, signature,
//! listenKey or secret reaches a log at any level, `RUST_LOG=trace` included.
//!
//! Two halves:
//! - Our own events never carry a secret: keys, secrets and listenKeys are types that print a
//!   redaction ([`super::secret`], [`super::sign::Credentials`]), errors drop the request URL
//!   (a signed GET carries its signature in the query), and no event formats a URL with a
//!   listenKey in it.
//! - Libraries log what they carry. At trace level `tungstenite` prints every WebSocket frame
//!   (an `order.place` with its `apiKey` and `signature`, a `session.logon`) and the handshake
//!   request line (the user stream's `?listenKey=`); `reqwest`, `hyper` and `rustls` can print
//!   connection bytes. [`env_filter`] caps those targets at `info`, whatever `RUST_LOG` asks:
//!   directives naming them are dropped before the caps are added, so they cannot be lifted.
//!
//! `log`-crate records (tungstenite, reqwest) reach `tracing` only through `tracing-log`'s
//! `LogTracer` (installed by `tracing_subscriber`'s `init()`); the caps apply to them as well,
//! by target.

use tracing_subscriber::filter::{Directive, EnvFilter, LevelFilter};

/// Targets that log frames, URLs or raw bytes below `info`, each capped at `info`.
pub const CAPPED_TARGETS: [&str; 7] = [
    "tungstenite",
    "tokio_tungstenite",
    "reqwest",
    "hyper",
    "hyper_util",
    "rustls",
    "h2",
];

fn names_capped_target(directive: &str) -> bool {
    let target = directive.split(['[', '=']).next().unwrap_or("").trim();
    CAPPED_TARGETS
        .iter()
        .any(|t| target == *t || target.starts_with(&format!("{t}::")))
}

/// The filter for `directives` (the `RUST_LOG` syntax), with the capped targets held at
/// `info`. Invalid directives are skipped rather than failing start-up.
pub fn filter_from(directives: &str) -> EnvFilter {
    let kept: Vec<&str> = directives
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty() && !names_capped_target(d))
        .collect();
    let mut filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::WARN.into())
        .parse_lossy(kept.join(","));
    for target in CAPPED_TARGETS {
        if let Ok(d) = format!("{target}=info").parse::<Directive>() {
            filter = filter.add_directive(d);
        }
    }
    filter
}

/// [`filter_from`] `RUST_LOG`, or `default` when it is unset: what `quantum` installs with
/// `tracing_subscriber::fmt().with_env_filter(quantum_binance::common::logging::env_filter("warn"))`.
pub fn env_filter(default: &str) -> EnvFilter {
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| default.to_owned());
    filter_from(&directives)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_targets_cannot_be_lifted() {
        assert!(names_capped_target("tungstenite=trace"));
        assert!(names_capped_target("tungstenite::protocol=trace"));
        assert!(names_capped_target("reqwest[span]=debug"));
        assert!(!names_capped_target("trace"));
        assert!(!names_capped_target("quantum_binance=trace"));
        assert!(!names_capped_target("tungstenite_like=trace"));
        let f = filter_from("trace,tungstenite::protocol=trace,bad==directive").to_string();
        assert!(f.contains("tungstenite=info"), "{f}");
        assert!(!f.contains("tungstenite::protocol=trace"), "{f}");
        assert!(f.contains("trace"), "{f}");
    }
}
