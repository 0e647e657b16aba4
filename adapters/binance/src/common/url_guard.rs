//! The mainnet guard: which URLs the adapter may connect to.
//!
//! Without the explicit mainnet choice only an allow-list passes: Binance's futures testnet
//! hosts and loopback addresses (a local simulator). Everything else, Binance mainnet in any
//! spelling included, is refused before a connection is made. Hosts are compared after URL
//! parsing (the WHATWG rules of the `url` crate: lower-cased, `127.1` normalised), without a
//! trailing dot; an allow-list, not a deny-list, because a deny-list of mainnet names missed
//! `FAPI.BINANCE.COM`, `fapi.binance.com.` and `fapi1.binance.com`. A URL carrying user
//! info (`https://user@host`) is refused in every mode: Binance never takes credentials there,
//! and the part before `@` is the classic way to disguise the real host.
//!
//! Every URL the adapter opens (REST base, WebSocket API, user data stream) is checked here,
//! by [`crate::config::Endpoints::check`] and again where each client is built.

use std::net::IpAddr;

use reqwest::Url;

/// Binance USD-M futures testnet hosts: REST and WebSocket API (`testnet.binancefuture.com`)
/// and the streams (`fstream.binancefuture.com`, the host Binance's own connectors use;
/// `stream.binancefuture.com` is the older name some sources give).
pub const TESTNET_HOSTS: [&str; 3] = [
    "testnet.binancefuture.com",
    "fstream.binancefuture.com",
    "stream.binancefuture.com",
];

/// Why a URL is refused. Messages name the host, never the user info or the query.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    /// Not a URL.
    #[error("not a valid URL")]
    Unparsable,
    /// A scheme other than http, https, ws, wss.
    #[error("scheme {0} is not http, https, ws or wss")]
    Scheme(String),
    /// `user@` or `user:password@` before the host.
    #[error("user info before the host is not accepted (host {host})")]
    UserInfo {
        /// The real host.
        host: String,
    },
    /// No host.
    #[error("the URL has no host")]
    NoHost,
    /// A host that is neither a testnet host nor loopback, without the mainnet choice.
    #[error("host {host} is not a Binance futures testnet host nor a loopback address; if it is Binance mainnet (real money), pass --mainnet")]
    NotAllowed {
        /// The normalised host.
        host: String,
    },
}

/// The host as compared: lower-case, without a trailing dot (`url` already lower-cases).
fn normalised_host(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    let host = host.strip_suffix('.').unwrap_or(host);
    Some(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase(),
    )
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Parses `url` and checks it against the guard; `mainnet` lifts the host allow-list only.
pub fn check_url(url: &str, mainnet: bool) -> Result<Url, UrlRefused> {
    let parsed = Url::parse(url.trim()).map_err(|_| UrlRefused::Unparsable)?;
    if !matches!(parsed.scheme(), "http" | "https" | "ws" | "wss") {
        return Err(UrlRefused::Scheme(parsed.scheme().to_owned()));
    }
    let host = normalised_host(&parsed).ok_or(UrlRefused::NoHost)?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(UrlRefused::UserInfo { host });
    }
    if mainnet || is_loopback(&host) || TESTNET_HOSTS.contains(&host.as_str()) {
        Ok(parsed)
    } else {
        Err(UrlRefused::NotAllowed { host })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_mainnet_is_refused_without_the_choice() {
        for url in [
            "https://fapi.binance.com",
            "https://FAPI.BINANCE.COM",
            "https://FAPI.binance.com",
            "https://fapi.binance.com.",
            "https://fapi.binance.com./fapi/v1/time",
            "https://fapi1.binance.com",
            "https://fapi2.binance.com",
            "wss://ws-fapi.binance.com/ws-fapi/v1",
            "wss://FSTREAM.binance.com/private",
            "https://testnet.binancefuture.com.evil.example",
        ] {
            assert!(
                matches!(check_url(url, false), Err(UrlRefused::NotAllowed { .. })),
                "{url} passed"
            );
            assert!(check_url(url, true).is_ok(), "{url} refused on mainnet");
        }
    }

    #[test]
    fn user_info_is_refused_in_every_mode_without_echoing_it() {
        for url in [
            "https://user@fapi.binance.com",
            "https://user:pw@fapi.binance.com",
            "https://testnet.binancefuture.com@fapi.binance.com",
            "http://me@127.0.0.1:8089",
        ] {
            for mainnet in [false, true] {
                let e = check_url(url, mainnet).unwrap_err();
                assert!(matches!(e, UrlRefused::UserInfo { .. }), "{url}: {e}");
                assert!(!e.to_string().contains("pw") && !e.to_string().contains("me@"));
            }
        }
    }

    #[test]
    fn testnet_and_loopback_pass() {
        for url in [
            "https://testnet.binancefuture.com",
            "https://TESTNET.binancefuture.com.",
            "wss://testnet.binancefuture.com/ws-fapi/v1",
            "wss://fstream.binancefuture.com/private",
            "wss://stream.binancefuture.com/private",
            "http://127.0.0.1:8089",
            "http://127.1:8089",
            "ws://[::1]:9/private",
            "ws://localhost:1/ws-fapi/v1",
        ] {
            assert!(check_url(url, false).is_ok(), "{url} refused");
        }
        assert_eq!(
            check_url("ftp://127.0.0.1", false),
            Err(UrlRefused::Scheme("ftp".into()))
        );
        assert_eq!(check_url("not a url", false), Err(UrlRefused::Unparsable));
    }
}
