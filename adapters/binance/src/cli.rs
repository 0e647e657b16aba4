//! `quantum bridge binance`: arguments and the entry point.

use std::path::PathBuf;
use std::time::Duration;

use crate::bridge::{self, BridgeConfig};
use crate::common::sign::Credentials;
use crate::config::{ClientConfig, Network};
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
    /// User data stream base URL (`.../ws`; the listenKey is appended).
    #[arg(long)]
    pub user_stream_url: Option<String>,
    /// Send orders over the WebSocket API instead of REST.
    #[arg(long)]
    pub ws_api: bool,
    /// Trade on Binance mainnet (real money). Without it, mainnet URLs are refused.
    #[arg(long)]
    pub mainnet: bool,
    /// File with the API key and secret (`BINANCE_API_KEY=…` / `BINANCE_API_SECRET=…` lines
    /// or two lines); default: those environment variables.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// recvWindow in ms.
    #[arg(long, default_value_t = 5000)]
    pub recv_window_ms: u64,
    /// positionRisk polling interval in ms (fallback to the user data stream).
    #[arg(long, default_value_t = 5000)]
    pub poll_ms: u64,
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
            cfg.endpoints.user_stream = format!("{ws_base}/ws");
        }
        cfg.endpoints.rest = rest;
    }
    if let Some(u) = &a.ws_api_url {
        cfg.endpoints.ws_api = u.clone();
    }
    if let Some(u) = &a.user_stream_url {
        cfg.endpoints.user_stream = u.clone();
    }
    cfg.recv_window_ms = a.recv_window_ms;
    cfg.endpoints.check(network)?;
    Ok(cfg)
}

/// The key and secret from `--key-file` or the environment.
pub fn credentials(a: &BinanceBridgeArgs) -> anyhow::Result<Credentials> {
    if let Some(path) = &a.key_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read key file {}: {e}", path.display()))?;
        return Credentials::parse_key_file(&text)
            .map_err(|e| anyhow::anyhow!("key file {}: {e}", path.display()));
    }
    Credentials::from_env().ok_or_else(|| {
        anyhow::anyhow!(
            "no API key: set BINANCE_API_KEY and BINANCE_API_SECRET, or pass --key-file"
        )
    })
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
    tracing::info!(
        instance = %cfg.instance, rest = %cfg.client.endpoints.rest,
        transport = ?cfg.transport, mainnet = a.mainnet, "starting the binance bridge"
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
        let t = T::parse_from(["t", "--rest-url", "http://127.0.0.1:8089"]);
        let c = client_config(&t.a).unwrap();
        assert_eq!(c.endpoints.ws_api, "ws://127.0.0.1:8089/ws-fapi/v1");
        assert_eq!(c.endpoints.user_stream, "ws://127.0.0.1:8089/ws");
        let t = T::parse_from(["t", "--rest-url", "https://fapi.binance.com"]);
        assert!(client_config(&t.a).is_err());
        let t = T::parse_from(["t", "--mainnet"]);
        assert_eq!(
            client_config(&t.a).unwrap().endpoints.rest,
            "https://fapi.binance.com"
        );
    }
}
