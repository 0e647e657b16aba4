//! Where to connect and how patient to be. Testnet is the default; mainnet needs
//! [`Network::Mainnet`] explicitly: without it only testnet hosts and loopback addresses are
//! accepted ([`url_guard`]).

use std::time::Duration;

use crate::common::rate_limit::RateLimitConfig;
use crate::common::url_guard;
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
    /// User data stream base: the routed private endpoint, e.g.
    /// `wss://fstream.binance.com/private`; the client adds `/ws?listenKey=…&events=…` or
    /// `/stream?…` ([`StreamMode`]).
    pub user_stream: String,
    /// Market data base: the routed market endpoint ([`MARKET_ROUTE`]), e.g.
    /// `wss://fstream.binance.com/market`; the contract info stream is
    /// `<market_stream>/ws/!contractInfo`.
    pub market_stream: String,
}

/// How the user data stream is addressed on the private route. Both deliver the same events;
/// stream mode wraps each in `{"stream":…,"data":…}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StreamMode {
    /// `<private>/ws?listenKey=<key>&events=…`: raw events.
    #[default]
    Ws,
    /// `<private>/stream?listenKey=<key>&events=…`: each event in a `stream`/`data` envelope.
    Stream,
}

/// The route user data needs. Since 2026-04-23 a connection to `fstream.binance.com` without
/// a routed path (the legacy `/ws/<listenKey>`) gets public market data only, so a user
/// stream URL that does not end in this path would silently never deliver a fill.
pub const PRIVATE_ROUTE: &str = "/private";

/// The route of regular market data (the contract info stream, `!contractInfo`), on the same
/// host as [`PRIVATE_ROUTE`].
pub const MARKET_ROUTE: &str = "/market";

impl Endpoints {
    /// Binance's published URLs for `network`. Testnet: REST and WebSocket API on
    /// `testnet.binancefuture.com`; the streams on `fstream.binancefuture.com`, routed like
    /// mainnet (`/private`), which is the host and path Binance's own connectors use.
    pub fn for_network(network: Network) -> Endpoints {
        match network {
            Network::Testnet => Endpoints {
                rest: "https://testnet.binancefuture.com".into(),
                ws_api: "wss://testnet.binancefuture.com/ws-fapi/v1".into(),
                user_stream: "wss://fstream.binancefuture.com/private".into(),
                market_stream: "wss://fstream.binancefuture.com/market".into(),
            },
            Network::Mainnet => Endpoints {
                rest: "https://fapi.binance.com".into(),
                ws_api: "wss://ws-fapi.binance.com/ws-fapi/v1".into(),
                user_stream: "wss://fstream.binance.com/private".into(),
                market_stream: "wss://fstream.binance.com/market".into(),
            },
        }
    }

    /// The market route on the host of a user stream URL: its private route replaced by
    /// [`MARKET_ROUTE`] (Binance routes both on one host), e.g.
    /// `ws://127.0.0.1:8089/private` → `ws://127.0.0.1:8089/market`.
    pub fn market_of(user_stream: &str) -> String {
        let base = user_stream.trim_end_matches('/');
        let host = base.strip_suffix(PRIVATE_ROUTE).unwrap_or(base);
        format!("{host}{MARKET_ROUTE}")
    }

    /// Checks every URL against the mainnet guard ([`url_guard`]) and the user stream URL
    /// against the private route.
    pub fn check(&self, network: Network) -> Result<(), Error> {
        let mainnet = network == Network::Mainnet;
        let check = |endpoint, url: &str| {
            url_guard::check_url(url, mainnet)
                .map_err(|source| Error::UrlRefused { endpoint, source })
        };
        check("REST", &self.rest)?;
        check("WebSocket API", &self.ws_api)?;
        check("market stream", &self.market_stream)?;
        let stream = check("user data stream", &self.user_stream)?;
        if !stream.path().trim_end_matches('/').ends_with(PRIVATE_ROUTE) {
            return Err(Error::Config(format!(
                "user data stream URL must be the routed private endpoint (…{PRIVATE_ROUTE}); \
                 an unrouted connection receives no order or position events"
            )));
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
    /// Extra time past `recvWindow`, on the monotonic clock since the send, before a -2013
    /// counts as "never placed": after it, the lost request is too old for the matching
    /// engine to accept. Never less than
    /// [`MIN_SETTLE_MARGIN`](crate::futures::outcome::MIN_SETTLE_MARGIN) (a smaller value
    /// counts as that).
    pub settle_margin: Duration,
}

impl Default for ResolveConfig {
    fn default() -> Self {
        ResolveConfig {
            max_sends: 3,
            max_lookups: 10,
            lookup_pause: Duration::from_millis(200),
            settle_margin: crate::futures::outcome::MIN_SETTLE_MARGIN,
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
    /// How the user data stream is addressed.
    pub user_stream_mode: StreamMode,
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
            user_stream_mode: StreamMode::Ws,
        }
    }

    /// Testnet defaults with every URL pointing at one local server (a simulator);
    /// `user_stream` is its private route (`ws://127.0.0.1:<port>/private`), the market
    /// stream the market route of the same host.
    pub fn local(rest: &str, ws_api: &str, user_stream: &str) -> ClientConfig {
        ClientConfig {
            endpoints: Endpoints {
                rest: rest.into(),
                ws_api: ws_api.into(),
                user_stream: user_stream.into(),
                market_stream: Endpoints::market_of(user_stream),
            },
            ..ClientConfig::new(Network::Testnet)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(rest: &str, ws_api: &str, user_stream: &str) -> Endpoints {
        Endpoints {
            rest: rest.into(),
            ws_api: ws_api.into(),
            user_stream: user_stream.into(),
            market_stream: Endpoints::market_of(user_stream),
        }
    }

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
            "ws://127.0.0.1:1/private",
        );
        assert!(local.endpoints.check(Network::Testnet).is_ok());
    }

    #[test]
    fn every_url_goes_through_the_guard() {
        let t = Endpoints::for_network(Network::Testnet);
        for bad in [
            "https://FAPI.BINANCE.COM",
            "https://FAPI.binance.com",
            "https://fapi.binance.com.",
            "https://user@fapi.binance.com",
            "https://fapi1.binance.com",
            "https://fapi2.binance.com",
        ] {
            let ws = bad.replacen("https", "wss", 1);
            for e in [
                with(bad, &t.ws_api, &t.user_stream),
                with(&t.rest, &ws, &t.user_stream),
                with(&t.rest, &t.ws_api, &format!("{ws}/private")),
            ] {
                let err = e.check(Network::Testnet).unwrap_err();
                assert!(matches!(err, Error::UrlRefused { .. }), "{bad}: {err}");
            }
        }
    }

    #[test]
    fn market_data_is_on_the_user_streams_host() {
        assert_eq!(
            Endpoints::for_network(Network::Mainnet).market_stream,
            "wss://fstream.binance.com/market"
        );
        let local = with("http://127.0.0.1:1", "", "ws://127.0.0.1:1/private/");
        assert_eq!(local.market_stream, "ws://127.0.0.1:1/market");
    }

    #[test]
    fn the_user_stream_must_be_the_private_route() {
        let t = Endpoints::for_network(Network::Testnet);
        for legacy in [
            "wss://fstream.binancefuture.com/ws",
            "wss://fstream.binancefuture.com",
            "wss://fstream.binancefuture.com/public",
        ] {
            let e = with(&t.rest, &t.ws_api, legacy).check(Network::Testnet);
            assert!(matches!(e, Err(Error::Config(_))), "{legacy}: {e:?}");
        }
        assert!(with(
            &t.rest,
            &t.ws_api,
            "wss://fstream.binancefuture.com/private/"
        )
        .check(Network::Testnet)
        .is_ok());
    }
}
