//! `quantum bridge binance`: arguments and the entry point.

use std::path::PathBuf;
use std::time::Duration;

use crate::bridge::{self, BridgeConfig, LatencyConfig};
use crate::common::sign::Credentials;
use crate::config::{ClientConfig, Endpoints, Network, StreamMode, PRIVATE_ROUTE};
use crate::futures::client::Transport;

/// Arguments of `quantum bridge binance`.
#[derive(Debug, Clone, clap::Args)]
pub struct BinanceBridgeArgs {
    /// The `quantum run` instance whose `orders` and `exchange` rings to attach.
    #[arg(long, default_value = "default")]
    pub instance: String,
    /// REST base URL (default: testnet, or mainnet with --mainnet).
    #[arg(long)]
    pub rest_url: Option<String>,
    /// WebSocket API URL (default: derived from --rest-url when it is local, else the network's).
    #[arg(long)]
    pub ws_api_url: Option<String>,
    /// User data stream URL: the routed private endpoint (`wss://…/private`); the listenKey
    /// and the events are added as query parameters.
    #[arg(long)]
    pub user_stream_url: Option<String>,
    /// Market data URL: the routed market endpoint (`wss://…/market`), where the contract
    /// info stream (`!contractInfo`) is read (default: the market route of the user data
    /// stream's host, e.g. `--market-stream-url wss://fstream.binance.com/market`).
    #[arg(long)]
    pub market_stream_url: Option<String>,
    /// How the user data stream is addressed on the private route: `ws` (raw events) or
    /// `stream` (events in a `stream`/`data` envelope).
    #[arg(long, value_enum, default_value_t = UserStreamMode::Ws)]
    pub user_stream_mode: UserStreamMode,
    /// Send orders over the WebSocket API instead of REST.
    #[arg(long)]
    pub ws_api: bool,
    /// Trade on Binance mainnet (real money). Without it, mainnet URLs are refused.
    #[arg(long)]
    pub mainnet: bool,
    /// Key file; its content decides the key type. An Ed25519 private key in PEM
    /// (`-----BEGIN PRIVATE KEY-----`, with a `BINANCE_API_KEY=…` line in the file or the
    /// `BINANCE_API_KEY` variable), or HMAC: `BINANCE_API_KEY=…` / `BINANCE_API_SECRET=…`
    /// lines or two lines, key then secret. Default: `BINANCE_API_KEY` with
    /// `BINANCE_PRIVATE_KEY_FILE` (Ed25519) or `BINANCE_API_SECRET` (HMAC).
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// recvWindow in ms, sent with every signed request (e.g. `--recv-window-ms 800`). With
    /// failover on in the daemon (`[failover] enabled`), capped by its
    /// `[failover] recv_window_ms` (1000 by default): orders are then signed with
    /// min(this, that), so the default gives 1000.
    #[arg(long, default_value_t = 5000)]
    pub recv_window_ms: u64,
    /// positionRisk polling interval in ms (fallback to the user data stream).
    #[arg(long, default_value_t = 5000)]
    pub poll_ms: u64,
    /// How often, in seconds, exchangeInfo is read again for each symbol's contract status
    /// (and filters), and the account's position mode checked, besides Binance's contract info
    /// stream (`!contractInfo`), which tells a status change at once (e.g.
    /// `--exchange-info-secs 30`). A symbol that is not `TRADING` is denied
    /// `symbol_not_trading` by the core.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub exchange_info_secs: u64,
    /// How far back the account's order history is read at each attach to the core, with a
    /// unit: `ms`, `s`, `m`, `h` or `d` (e.g. `25h`, `2d`). It must cover the core's
    /// `engine.dedupe_horizon_ms` (24 h by default).
    #[arg(long, default_value = "25h", value_parser = parse_span)]
    pub history_horizon: Duration,
    /// Write the exchange leg's latency histograms, one per series (`exchange.send`, `.ack`,
    /// `.fill`, `.intent`, tagged `transport=rest|ws`), to FILE (created anew at start) in the
    /// HdrHistogram interval log format, one interval appended every --latency-interval-ms
    /// (e.g. `--hdr-log /var/log/quantum/binance.hlog`). The same percentiles are published in
    /// `quantum.<instance>.latency-binance` with or without it (`quantum ctl latency`).
    #[arg(long, value_name = "FILE")]
    pub hdr_log: Option<PathBuf>,
    /// Length of one latency interval in ms: the interval log's and the published
    /// percentiles' (e.g. `--latency-interval-ms 10000` for 10 s windows).
    #[arg(long, value_name = "MS", default_value_t = crate::bridge::latency::DEFAULT_INTERVAL.as_millis() as u64, value_parser = clap::value_parser!(u64).range(quantum_ipc::latency::MIN_INTERVAL_MS..=quantum_ipc::latency::MAX_INTERVAL_MS))]
    pub latency_interval_ms: u64,
}

/// Parses a span with its unit: `90000ms`, `90s`, `90m`, `25h`, `2d`.
pub fn parse_span(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(digits);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("'{s}' is not a number with a unit (ms, s, m, h, d)"))?;
    let ms_per = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("'{s}' needs a unit: ms, s, m, h or d")),
    };
    n.checked_mul(ms_per)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("'{s}' is too long"))
}

/// `--user-stream-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UserStreamMode {
    /// `<private>/ws?listenKey=…`.
    Ws,
    /// `<private>/stream?listenKey=…`.
    Stream,
}

/// Builds the client config: explicit URLs win; a local `--rest-url` without the others gets
/// the simulator's paths on the same host.
pub fn client_config(a: &BinanceBridgeArgs) -> anyhow::Result<ClientConfig> {
    let network = if a.mainnet {
        Network::Mainnet
    } else {
        Network::Testnet
    };
    let mut cfg = ClientConfig::new(network);
    if let Some(rest) = &a.rest_url {
        let rest = rest.trim_end_matches('/').to_owned();
        let ws_base = rest
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1);
        if rest.starts_with("http://") {
            cfg.endpoints.ws_api = format!("{ws_base}/ws-fapi/v1");
            cfg.endpoints.user_stream = format!("{ws_base}{PRIVATE_ROUTE}");
        }
        cfg.endpoints.rest = rest;
    }
    if let Some(u) = &a.ws_api_url {
        cfg.endpoints.ws_api = u.clone();
    }
    if let Some(u) = &a.user_stream_url {
        cfg.endpoints.user_stream = u.clone();
    }
    cfg.endpoints.market_stream = match &a.market_stream_url {
        Some(u) => u.clone(),
        None => Endpoints::market_of(&cfg.endpoints.user_stream),
    };
    cfg.recv_window_ms = a.recv_window_ms;
    cfg.user_stream_mode = match a.user_stream_mode {
        UserStreamMode::Ws => StreamMode::Ws,
        UserStreamMode::Stream => StreamMode::Stream,
    };
    cfg.endpoints.check(network)?;
    Ok(cfg)
}

/// The credentials from `--key-file` or the environment (see [`BinanceBridgeArgs::key_file`]).
/// Errors name the file, never its content.
pub fn credentials(a: &BinanceBridgeArgs) -> anyhow::Result<Credentials> {
    if let Some(path) = &a.key_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read key file {}: {e}", path.display()))?;
        let env_key = std::env::var("BINANCE_API_KEY")
            .ok()
            .filter(|k| !k.is_empty());
        return Credentials::parse_key_file(&text, env_key)
            .map_err(|e| anyhow::anyhow!("key file {}: {e}", path.display()));
    }
    match Credentials::from_env() {
        Some(c) => c.map_err(|e| anyhow::anyhow!("BINANCE_PRIVATE_KEY_FILE: {e}")),
        None => Err(anyhow::anyhow!(
            "no API key: set BINANCE_API_KEY with BINANCE_API_SECRET (HMAC) or BINANCE_PRIVATE_KEY_FILE (Ed25519), or pass --key-file"
        )),
    }
}

/// Runs the bridge until SIGINT (Ctrl-C) or SIGTERM ([`bridge::shutdown_signal`]).
pub async fn run(a: BinanceBridgeArgs) -> anyhow::Result<()> {
    let client = client_config(&a)?;
    let creds = credentials(&a)?;
    let mut cfg = BridgeConfig::new(&a.instance, client);
    cfg.transport = if a.ws_api {
        Transport::WsApi
    } else {
        Transport::Rest
    };
    cfg.poll_interval = Duration::from_millis(a.poll_ms.max(200));
    cfg.history.horizon = a.history_horizon;
    cfg.exchange_info_interval = Duration::from_secs(a.exchange_info_secs);
    cfg.latency = LatencyConfig {
        hdr_log: a.hdr_log.clone(),
        interval: Duration::from_millis(a.latency_interval_ms),
    };
    tracing::info!(
        instance = %cfg.instance, rest = %cfg.client.endpoints.rest,
        transport = ?cfg.transport, key = ?creds.kind(), mainnet = a.mainnet,
        "starting the binance bridge"
    );
    bridge::run(cfg, creds, bridge::shutdown_signal()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: BinanceBridgeArgs,
    }

    #[test]
    fn urls_default_to_testnet_and_follow_a_local_rest_url() {
        let t = T::parse_from(["t", "--instance", "x"]);
        let c = client_config(&t.a).unwrap();
        assert_eq!(c.endpoints.rest, "https://testnet.binancefuture.com");
        assert_eq!(
            c.endpoints.user_stream,
            "wss://fstream.binancefuture.com/private"
        );
        let t = T::parse_from(["t", "--rest-url", "http://127.0.0.1:8089"]);
        let c = client_config(&t.a).unwrap();
        assert_eq!(c.endpoints.ws_api, "ws://127.0.0.1:8089/ws-fapi/v1");
        assert_eq!(c.endpoints.user_stream, "ws://127.0.0.1:8089/private");
        assert_eq!(c.endpoints.market_stream, "ws://127.0.0.1:8089/market");
        let t = T::parse_from(["t", "--mainnet"]);
        let c = client_config(&t.a).unwrap();
        assert_eq!(c.endpoints.rest, "https://fapi.binance.com");
        assert_eq!(c.endpoints.user_stream, "wss://fstream.binance.com/private");
        assert_eq!(
            c.endpoints.market_stream,
            "wss://fstream.binance.com/market"
        );
        let t = T::parse_from(["t", "--user-stream-mode", "stream"]);
        assert_eq!(
            client_config(&t.a).unwrap().user_stream_mode,
            StreamMode::Stream
        );
    }

    #[test]
    fn latency_log_is_off_and_the_interval_a_second_by_default() {
        let t = T::parse_from(["t"]);
        assert_eq!(
            (t.a.hdr_log.as_deref(), t.a.latency_interval_ms),
            (None, 1000)
        );
        let t = T::parse_from([
            "t",
            "--hdr-log",
            "/tmp/b.hlog",
            "--latency-interval-ms",
            "250",
        ]);
        assert_eq!(
            (t.a.hdr_log.as_deref(), t.a.latency_interval_ms),
            (Some(std::path::Path::new("/tmp/b.hlog")), 250)
        );
        for bad in ["0", "-1", "1s"] {
            assert!(
                T::try_parse_from(["t", "--latency-interval-ms", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn exchange_info_is_read_every_minute_by_default() {
        assert_eq!(T::parse_from(["t"]).a.exchange_info_secs, 60);
        let t = T::parse_from(["t", "--exchange-info-secs", "30"]);
        assert_eq!(t.a.exchange_info_secs, 30);
        for bad in ["0", "-1", "1m", "86401"] {
            assert!(
                T::try_parse_from(["t", "--exchange-info-secs", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn history_horizon_takes_a_unit_and_defaults_to_25_hours() {
        let t = T::parse_from(["t"]);
        assert_eq!(t.a.history_horizon, Duration::from_secs(25 * 3600));
        let t = T::parse_from(["t", "--history-horizon", "2d"]);
        assert_eq!(t.a.history_horizon, Duration::from_secs(2 * 86_400));
        for (s, ms) in [("1500ms", 1500), ("90s", 90_000), ("30m", 1_800_000)] {
            assert_eq!(parse_span(s), Ok(Duration::from_millis(ms)), "{s}");
        }
        for bad in ["25", "h", "25x", "-1h", "99999999999999999999d"] {
            assert!(parse_span(bad).is_err(), "{bad}");
        }
        assert!(T::try_parse_from(["t", "--history-horizon", "24"]).is_err());
    }

    #[test]
    fn mainnet_in_any_spelling_needs_the_flag() {
        for url in [
            "https://fapi.binance.com",
            "https://FAPI.BINANCE.COM",
            "https://FAPI.binance.com",
            "https://fapi.binance.com.",
            "https://user@fapi.binance.com",
            "https://fapi1.binance.com",
            "https://fapi2.binance.com",
        ] {
            for flag in [
                "--rest-url",
                "--ws-api-url",
                "--user-stream-url",
                "--market-stream-url",
            ] {
                let t = T::parse_from(["t", flag, url]);
                let e = client_config(&t.a).unwrap_err().to_string();
                assert!(e.contains("URL refused"), "{flag} {url}: {e}");
            }
            let t = T::parse_from(["t", "--mainnet", "--rest-url", url]);
            assert_eq!(
                client_config(&t.a).is_ok(),
                !url.contains('@'),
                "--mainnet {url}"
            );
        }
        let t = T::parse_from([
            "t",
            "--user-stream-url",
            "wss://fstream.binancefuture.com/ws",
        ]);
        let e = client_config(&t.a).unwrap_err().to_string();
        assert!(e.contains("private"), "{e}");
    }

    #[test]
    fn the_key_file_content_decides_hmac_or_ed25519() {
        use crate::common::sign::KeyKind;
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let dir = std::env::temp_dir().join(format!("qpc-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pem = ed25519_dalek::SigningKey::from_bytes(&[4; 32])
            .to_pkcs8_pem(Default::default())
            .unwrap();
        for (name, text, kind) in [
            (
                "hmac",
                "BINANCE_API_KEY=k\nBINANCE_API_SECRET=s\n".to_owned(),
                KeyKind::Hmac,
            ),
            (
                "ed",
                format!("BINANCE_API_KEY=k\n{}", *pem),
                KeyKind::Ed25519,
            ),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            let t = T::parse_from(["t", "--key-file", path.to_str().unwrap()]);
            let c = credentials(&t.a).unwrap();
            assert_eq!((c.api_key(), c.kind()), ("k", kind), "{name}");
        }
        let path = dir.join("broken");
        std::fs::write(
            &path,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let t = T::parse_from(["t", "--key-file", path.to_str().unwrap()]);
        let e = credentials(&t.a).unwrap_err().to_string();
        assert!(e.contains("broken") && !e.contains("AAAA"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
