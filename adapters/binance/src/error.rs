//! The crate's error: Binance's answers, transport failures, rate-limit refusals and local
//! checks, each keeping its source. No variant holds the API key, a secret, a signature or a
//! listenKey: HTTP errors drop their URL (a signed GET carries its signature in the query),
//! and refused URLs are described by host only.

use std::time::Duration;

use crate::common::error::{ApiError, RejectReason};
use crate::common::filters::{InfoError, QtyError};
use crate::common::url_guard::UrlRefused;

/// Everything that can go wrong talking to Binance.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Binance answered with an error code.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The HTTP request failed (connect, timeout, connection closed, unreadable body).
    #[error("HTTP {method} {path} failed: {source}")]
    Http {
        /// Method.
        method: &'static str,
        /// Path (no query: the query carries the signature).
        path: String,
        /// reqwest's error, its URL removed ([`Error::http`]).
        #[source]
        source: reqwest::Error,
    },
    /// The server answered a redirect (3xx). Binance never redirects its API, so no redirect
    /// is followed: it could carry the signed request and the API key off the guarded hosts.
    /// `target` is where it pointed, as scheme, host, port and path (no user info, no query).
    #[error("HTTP {method} {path} answered {status}, a redirect to {target}; redirects are never followed")]
    Redirected {
        /// Method.
        method: &'static str,
        /// Path (no query).
        path: String,
        /// The 3xx status.
        status: u16,
        /// The `Location`, shortened as above.
        target: String,
    },
    /// A URL the mainnet guard refuses.
    #[error("{endpoint} URL refused: {source}")]
    UrlRefused {
        /// Which endpoint.
        endpoint: &'static str,
        /// Why.
        #[source]
        source: UrlRefused,
    },
    /// A WebSocket could not be opened, written or read.
    #[error("WebSocket {what} failed: {source}")]
    WebSocket {
        /// What we were doing.
        what: &'static str,
        /// tungstenite's error.
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// `session.logon` of a new WebSocket API connection failed; nothing else was sent on it.
    #[error("WebSocket API session.logon failed: {source}")]
    SessionLogon {
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// The WebSocket API connection closed before request `id` was answered.
    #[error("WebSocket API connection closed before request {id} was answered")]
    WsClosed {
        /// Request id.
        id: u64,
    },
    /// No answer in time.
    #[error("{what}: no answer within {after:?}")]
    Timeout {
        /// The request.
        what: &'static str,
        /// The limit.
        after: Duration,
    },
    /// Not sent: the request weight or order count would pass the limit, or we are backing off
    /// after a 429, for longer than the caller may wait.
    #[error("not sent: rate limit reached, next request allowed in {wait_ms} ms")]
    RateLimited {
        /// How long until a request may go.
        wait_ms: u64,
    },
    /// Not sent: Binance banned this IP (418); nothing goes out until the ban ends.
    #[error("not sent: IP banned by Binance (418) for {wait_ms} ms more")]
    Banned {
        /// How long until the ban ends.
        wait_ms: u64,
    },
    /// An answer that is not the documented JSON.
    #[error("unexpected answer to {what}: {source}")]
    Decode {
        /// The request.
        what: &'static str,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
    /// An answer with a field that is not what Binance documents.
    #[error("unexpected answer to {what}: field {field} is missing or not an exact decimal")]
    Field {
        /// The request.
        what: &'static str,
        /// The field.
        field: &'static str,
    },
    /// `exchangeInfo` unusable.
    #[error(transparent)]
    Info(#[from] InfoError),
    /// A closing order whose side would open or add to its hedge leg (BUY on `LONG`, SELL on
    /// `SHORT`): without `reduceOnly` (refused in hedge mode) only the side makes an order
    /// close, so such an order is never sent.
    #[error("{symbol}: {side} on the {position_side} leg would add to the position, not close it; the {position_side} leg closes with the other side")]
    OpensLeg {
        /// Symbol.
        symbol: String,
        /// The leg.
        position_side: quantum_ipc::codes::PositionSide,
        /// The side asked for.
        side: quantum_ipc::codes::Side,
    },
    /// The symbol is not in `exchangeInfo`.
    #[error("unknown symbol {0}: not in exchangeInfo")]
    UnknownSymbol(String),
    /// A quantity that cannot be sent for the symbol.
    #[error("{symbol}: {source}")]
    Quantity {
        /// Symbol.
        symbol: String,
        /// Why.
        #[source]
        source: QtyError,
    },
    /// An order whose outcome stayed unknown: placement failed ambiguously and the lookups by
    /// client id did not answer either. It was not re-sent.
    #[error(
        "order {client_order_id}: outcome unknown after {lookups} lookups; not re-sent: {last}"
    )]
    Unresolved {
        /// The client order id.
        client_order_id: String,
        /// Lookups tried.
        lookups: u32,
        /// The last lookup's error.
        #[source]
        last: Box<Error>,
    },
    /// Not sent: with failover on, this host does not lead the instance (a standby, or a
    /// leader whose lease deadline passed); see [`crate::futures::fence`].
    #[error("not sent: this host does not lead (failover lease, last epoch seen {epoch})")]
    NotLeader {
        /// The epoch of the lease last read (0 when none could be read).
        epoch: u64,
    },
    /// A configuration mistake.
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// An HTTP failure without its URL, whose query may hold a signature.
    pub(crate) fn http(method: &'static str, path: &str, source: reqwest::Error) -> Error {
        Error::Http {
            method,
            path: path.to_owned(),
            source: source.without_url(),
        }
    }

    /// A 3xx answer to `method path`, its `Location` resolved against `url` and shortened to
    /// scheme, host, port and path: the query of a signed request's URL carries the signature.
    pub(crate) fn redirected(
        method: &'static str,
        path: &str,
        status: u16,
        url: &reqwest::Url,
        location: Option<&str>,
    ) -> Error {
        let target = match location.map(|l| url.join(l.trim())) {
            None => "no Location".to_owned(),
            Some(Err(_)) => "an unreadable Location".to_owned(),
            Some(Ok(mut t)) => {
                // Errors from these setters only concern URLs that cannot hold the parts,
                // which then have none to drop.
                let _ = t.set_username("");
                let _ = t.set_password(None);
                t.set_query(None);
                t.set_fragment(None);
                t.to_string()
            }
        };
        Error::Redirected {
            method,
            path: path.to_owned(),
            status,
            target,
        }
    }

    pub(crate) fn ws(what: &'static str, e: tokio_tungstenite::tungstenite::Error) -> Error {
        Error::WebSocket {
            what,
            source: Box::new(e),
        }
    }

    /// The Binance error code, if Binance answered with one.
    pub fn api_code(&self) -> Option<i64> {
        match self {
            Error::Api(e) => Some(e.code),
            _ => None,
        }
    }

    /// The typed reason for a reject report.
    pub fn reject_reason(&self) -> RejectReason {
        match self {
            Error::Api(e) => e.reason,
            Error::RateLimited { .. } => RejectReason::LocalRateLimited,
            Error::Banned { .. } => RejectReason::IpBanned,
            Error::UnknownSymbol(_) => RejectReason::LocalUnknownSymbol,
            Error::Quantity { .. } => RejectReason::LocalQuantity,
            Error::OpensLeg { .. } => RejectReason::LocalPositionSide,
            Error::Unresolved { .. } => RejectReason::LocalUnresolved,
            _ if self.outcome_unknown() => RejectReason::LocalUnresolved,
            _ => RejectReason::Other,
        }
    }

    /// Whether an order placement that failed this way must be looked up by client id before
    /// anything else: its outcome is unknown ([`Error::outcome_unknown`]), or Binance refused
    /// it with -4116 because an open order already has the client id, which may be this very
    /// order placed by an earlier attempt.
    pub fn needs_lookup(&self) -> bool {
        self.outcome_unknown() || self.api_code() == Some(-4116)
    }

    /// Whether a request that failed this way may still have reached Binance and acted:
    /// a timeout, a connection lost after sending, an answer that does not prove a refusal
    /// ([`crate::common::error::RejectReason::from_answer`]: a 5xx, a gateway's page), an
    /// unreadable success, a redirect (whatever answered it may have forwarded the request).
    /// Connect failures, local refusals and Binance's refusal codes are certain.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            Error::Api(e) => e.outcome_unknown(),
            Error::Http { source, .. } => !source.is_connect() && !source.is_builder(),
            Error::Redirected { .. } => true,
            Error::WebSocket { what, .. } => *what != "connect",
            Error::WsClosed { .. } | Error::Timeout { .. } => true,
            Error::Decode { .. } | Error::Field { .. } => true,
            _ => false,
        }
    }
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_and_uncertainty() {
        let e = Error::Api(ApiError::new(400, -2022, "ReduceOnly Order is rejected."));
        assert_eq!(e.reject_reason(), RejectReason::ReduceOnlyRejected);
        assert!(!e.outcome_unknown());
        assert!(Error::Api(ApiError::new(503, -1000, "Unknown error")).outcome_unknown());
        assert!(Error::WsClosed { id: 3 }.outcome_unknown());
        assert!(!Error::RateLimited { wait_ms: 5 }.outcome_unknown());
        for code in [-1006, -1007] {
            assert!(Error::Api(ApiError::new(500, code, "x")).outcome_unknown());
        }
        let dup = Error::Api(ApiError::new(400, -4116, "ClientOrderId is duplicated."));
        assert!(dup.needs_lookup() && !dup.outcome_unknown());
        let busy = Error::Api(ApiError::new(503, -1008, "Request throttled"));
        assert!(!busy.needs_lookup() && busy.reject_reason().certainly_not_placed());
        for status in [500, 502, 504] {
            let gateway = Error::Api(ApiError::new(status, 0, "<html>Bad Gateway</html>"));
            assert!(gateway.needs_lookup(), "{status}");
        }
        let url = reqwest::Url::parse("http://127.0.0.1:1/fapi/v1/order?signature=abc").unwrap();
        let r = Error::redirected(
            "POST",
            "/fapi/v1/order",
            307,
            &url,
            Some("https://u:pw@fapi.binance.com/fapi/v1/order?timestamp=1&signature=abc#x"),
        );
        assert!(r.needs_lookup());
        let shown = r.to_string();
        assert!(
            shown.contains("https://fapi.binance.com/fapi/v1/order") && shown.contains("307"),
            "{shown}"
        );
        for hidden in ["signature", "timestamp", "pw", "u:"] {
            assert!(!shown.contains(hidden), "{hidden} in {shown}");
        }
        let relative = Error::redirected("GET", "/fapi/v1/time", 302, &url, Some("/elsewhere?q=1"));
        assert!(
            relative
                .to_string()
                .contains("http://127.0.0.1:1/elsewhere"),
            "{relative}"
        );
        let msg = Error::Api(ApiError::new(401, -2015, "Invalid API-key")).to_string();
        assert!(
            msg.contains("-2015") && msg.contains("api_key_rejected"),
            "{msg}"
        );
    }
}
