//! Where to connect and how patient to be. Testnet is the default; mainnet needs
//! [`Network::Mainnet`] explicitly, and a mainnet URL is refused without it.

use std::time::Duration;

use crate::common::rate_limit::RateLimitConfig;
use crate::error::Error;

/// Binance futures network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Network {
    /// `testnet.binancefuture.com` (default).
    #[default]
    Testnet,
    /// `fapi.binance.com`: real money.
    Mainnet,
}

/// Base URLs of the three services.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// REST base, e.g. `https://fapi.binance.com`.
    pub rest: String,
    /// WebSocket API, e.g. `wss://ws-fapi.binance.com/ws-fapi/v1`.
    pub ws_api: String,
    /// User data stream base; the listenKey is appended as `/<listenKey>`.
    pub user_stream: String,
}

/// Hosts that trade real money.
const MAINNET_HOSTS: [&str; 3] = [
    "fapi.binance.com",
    "ws-fapi.binance.com",
    "fstream.binance.com",
];

impl Endpoints {
    /// Binance's published URLs for `network`. The testnet stream host is *unverified*
    /// (sources give `stream.binancefuture.com` or `fstream.binancefuture.com`).
    pub fn for_network(network: Network) -> Endpoints {
        match network {
            Network::Testnet => Endpoints {
                rest: "https://testnet.binancefuture.com".into(),
                ws_api: "wss://testnet.binancefuture.com/ws-fapi/v1".into(),
                user_stream: "wss://stream.binancefuture.com/ws".into(),
            },
            Network::Mainnet => Endpoints {
                rest: "https://fapi.binance.com".into(),
                ws_api: "wss://ws-fapi.binance.com/ws-fapi/v1".into(),
                user_stream: "wss://fstream.binance.com/ws".into(),
            },
        }
    }

    /// Refuses mainnet URLs unless `network` is mainnet.
    pub fn check(&self, network: Network) -> Result<(), Error> {
        if network == Network::Mainnet {
            return Ok(());
        }
        for url in [&self.rest, &self.ws_api, &self.user_stream] {
            let host = url
                .split("://")
                .nth(1)
                .unwrap_or(url)
                .split(['/', ':'])
                .next()
                .unwrap_or("");
            if MAINNET_HOSTS.contains(&host) {
                return Err(Error::Config(format!(
                    "{url} is Binance mainnet (real money); pass --mainnet to use it"
                )));
            }
        }
        Ok(())
    }
}

/// What to do when an order's outcome is unknown.
#[derive(Clone, Copy, Debug)]
pub struct ResolveConfig {
    /// Times an order may be sent in all (the first send included). A re-send happens only
    /// after a lookup proved the order does not exist.
    pub max_sends: u32,
    /// Lookups by client id before giving up (and reporting the order unresolved).
    pub max_lookups: u32,
    /// Pause between failed lookups.
    pub lookup_pause: Duration,
    /// Extra time past `recvWindow` before a -2013 counts as "never placed": after it, the
    /// lost request is too old for the matching engine to accept.
    pub settle_margin: Duration,
}

impl Default for ResolveConfig {
    fn default() -> Self {
        ResolveConfig {
            max_sends: 3,
            max_lookups: 10,
            lookup_pause: Duration::from_millis(200),
            settle_margin: Duration::from_millis(500),
        }
    }
}

/// Client settings.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Network (guards against mainnet URLs without an explicit choice).
    pub network: Network,
    /// URLs.
    pub endpoints: Endpoints,
    /// `recvWindow` sent with every signed request (ms).
    pub recv_window_ms: u64,
    /// Limit on one REST request or WebSocket API answer.
    pub request_timeout: Duration,
    /// Rate limiting.
    pub rate_limit: RateLimitConfig,
    /// Uncertain order outcomes.
    pub resolve: ResolveConfig,
}

impl ClientConfig {
    /// Defaults for `network`.
    pub fn new(network: Network) -> ClientConfig {
        ClientConfig {
            network,
            endpoints: Endpoints::for_network(network),
            recv_window_ms: 5000,
            request_timeout: Duration::from_secs(10),
            rate_limit: RateLimitConfig::default(),
            resolve: ResolveConfig::default(),
        }
    }

    /// Testnet defaults with every URL pointing at one local server (a simulator).
    pub fn local(rest: &str, ws_api: &str, user_stream: &str) -> ClientConfig {
        ClientConfig {
            endpoints: Endpoints {
                rest: rest.into(),
                ws_api: ws_api.into(),
                user_stream: user_stream.into(),
            },
            ..ClientConfig::new(Network::Testnet)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mainnet_needs_the_explicit_choice() {
        let main = Endpoints::for_network(Network::Mainnet);
        assert!(main.check(Network::Testnet).is_err());
        assert!(main.check(Network::Mainnet).is_ok());
        assert!(Endpoints::for_network(Network::Testnet)
            .check(Network::Testnet)
            .is_ok());
        let local = ClientConfig::local(
            "http://127.0.0.1:1",
            "ws://127.0.0.1:1/ws-fapi/v1",
            "ws://127.0.0.1:1/ws",
        );
        assert!(local.endpoints.check(Network::Testnet).is_ok());
    }
}
