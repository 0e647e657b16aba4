//! Simulator configuration: keys, symbols, starting state, faults and limits.

use std::net::SocketAddr;
use std::time::Duration;

use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::decimal::Dec;
use crate::symbols::SymbolSpec;

/// Documented test API key (64 alphanumerics, like a real key). Never valid on Binance.
pub const TEST_API_KEY: &str = "qsimTESTkey0000000000000000000000000000000000000000000000000000A";
/// Documented test API secret paired with [`TEST_API_KEY`].
pub const TEST_API_SECRET: &str =
    "qsimTESTsecret00000000000000000000000000000000000000000000000000";

/// One API key and what its signatures are checked with.
#[derive(Clone, Debug)]
pub struct ApiKey {
    /// The `X-MBX-APIKEY` / `apiKey` value.
    pub key: String,
    /// HMAC secret or Ed25519 public key.
    pub auth: KeyAuth,
}

/// How a key's signatures are checked.
#[derive(Clone, Debug)]
pub enum KeyAuth {
    /// HMAC-SHA256 with this secret: lowercase hex signatures.
    Hmac(String),
    /// Ed25519 with this registered public key: base64 signatures; may log a WebSocket API
    /// session on.
    Ed25519(VerifyingKey),
}

impl ApiKey {
    /// A key signing with HMAC-SHA256.
    pub fn hmac(key: impl Into<String>, secret: impl Into<String>) -> ApiKey {
        ApiKey {
            key: key.into(),
            auth: KeyAuth::Hmac(secret.into()),
        }
    }

    /// A key signing with Ed25519, registered by its public key.
    pub fn ed25519(key: impl Into<String>, public: VerifyingKey) -> ApiKey {
        ApiKey {
            key: key.into(),
            auth: KeyAuth::Ed25519(public),
        }
    }

    /// [`ApiKey::ed25519`] from a PEM public key (`-----BEGIN PUBLIC KEY-----`), as Binance
    /// asks users to register it.
    pub fn ed25519_pem(key: impl Into<String>, pem: &str) -> Result<ApiKey, String> {
        let public = VerifyingKey::from_public_key_pem(pem.trim())
            .map_err(|e| format!("not an Ed25519 public key in PEM: {e}"))?;
        Ok(ApiKey::ed25519(key, public))
    }
}

/// Fault injection, changeable at run time through `POST /sim/faults`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Faults {
    /// Added before every REST request and WebSocket API message is handled.
    pub latency_ms: u64,
    /// Fraction of order placements refused with HTTP 503 / -1008 (order not placed), reduce-only
    /// or not: an injected failure, unlike [`Faults::throttle_1008`].
    pub error_rate: f64,
    /// Fraction of order placements whose connection is closed without any answer.
    pub drop_rate: f64,
    /// With `drop_rate`: close the connection after the order was placed (else before;
    /// default after, the ambiguous case).
    pub drop_after_place: bool,
    /// Fraction of order placements answered HTTP 503 "Unknown error" after placing the order.
    pub ambiguous_503_rate: f64,
    /// Fraction of order placements that are placed and then answered `gateway_status` with a
    /// gateway's HTML page and no Binance code, as a proxy in front of the API answers when the
    /// upstream answer is lost after it forwarded the request. The WebSocket API closes the
    /// connection instead (a gateway has no page to send there).
    pub gateway_after_place_rate: f64,
    /// The status of [`Faults::gateway_after_place_rate`]: 502 (default) or 504, any 5xx.
    pub gateway_status: u16,
    /// Answer every `/fapi` request with 429 / -1003.
    pub force_429: bool,
    /// Answer every `/fapi` request with 418 / -1003.
    pub force_418: bool,
    /// Fraction of order placements answered HTTP 408 / -1007 ("Timeout waiting for
    /// response from backend server. Send status unknown; execution status unknown.").
    pub timeout_1007_rate: f64,
    /// Fraction of order placements answered HTTP 500 / -1006 ("An unexpected response was
    /// received from the message bus. Execution status unknown.").
    pub unexpected_1006_rate: f64,
    /// With the -1007 / -1006 faults: the order was placed before the answer (default), or not.
    pub unknown_places: bool,
    /// Orders younger than this are not found yet by `GET /fapi/v1/order` and `order.status`
    /// (-2013): the query side lagging the matching engine, while the user data stream has
    /// already reported them.
    pub query_lag_ms: u64,
    /// System-level throttling: new orders get HTTP 503 / -1008, except reduce-only and
    /// close-position orders, which Binance exempts.
    pub throttle_1008: bool,
    /// The next this many `GET /fapi/v1/allOrders` requests are answered HTTP 500 / -1001
    /// ("Internal error; unable to process your request. Please try again."); each answer
    /// counts one down.
    pub history_failures: u32,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency_ms: 0,
            error_rate: 0.0,
            drop_rate: 0.0,
            drop_after_place: true,
            ambiguous_503_rate: 0.0,
            gateway_after_place_rate: 0.0,
            gateway_status: 502,
            force_429: false,
            force_418: false,
            timeout_1007_rate: 0.0,
            unexpected_1006_rate: 0.0,
            unknown_places: true,
            query_lag_ms: 0,
            throttle_1008: false,
            history_failures: 0,
        }
    }
}

impl Faults {
    /// Every rate within 0..=1; the error is one sentence.
    pub fn validate(&self) -> Result<(), String> {
        for (name, r) in [
            ("error rate", self.error_rate),
            ("drop rate", self.drop_rate),
            ("ambiguous 503 rate", self.ambiguous_503_rate),
            ("gateway after place rate", self.gateway_after_place_rate),
            ("-1007 rate", self.timeout_1007_rate),
            ("-1006 rate", self.unexpected_1006_rate),
        ] {
            if !(0.0..=1.0).contains(&r) {
                return Err(format!("{name} must be between 0 and 1, got {r}"));
            }
        }
        if !(500..=599).contains(&self.gateway_status) {
            return Err(format!(
                "gateway status must be a 5xx, got {}",
                self.gateway_status
            ));
        }
        Ok(())
    }
}

/// Rate limits. Binance's published values are the defaults.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Limits {
    /// REQUEST_WEIGHT per IP per minute (2400).
    pub weight_per_minute: u32,
    /// ORDERS per account per 10 s (300).
    pub orders_per_10s: u32,
    /// ORDERS per account per minute (1200).
    pub orders_per_minute: u32,
    /// How long an IP that kept sending after a 429 is banned (418). *unverified*: Binance
    /// scales bans from 2 minutes to 3 days.
    pub ban_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            weight_per_minute: 2400,
            orders_per_10s: 300,
            orders_per_minute: 1200,
            ban_ms: 120_000,
        }
    }
}

/// Which decimals count for the -1111 "precision is over the maximum" check. *unverified*.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QtyPrecision {
    /// The symbol's `quantityPrecision` (default).
    Symbol,
    /// A fixed number of decimals (e.g. 8, the asset precision); finer-than-step quantities
    /// within it are then -4023.
    Fixed(u32),
}

/// What a reduce-only order larger than the position does. *unverified*.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOnlyExcess {
    /// Fill what the position allows; the rest expires (default).
    Clamp,
    /// Reject the order with -2022.
    Reject,
}

/// Everything [`crate::Simulator::start`] needs.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Address to bind; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Accepted keys; all trade on the one simulated account.
    pub keys: Vec<ApiKey>,
    /// Tradable symbols.
    pub symbols: Vec<SymbolSpec>,
    /// Starting positions `(symbol, signed amount)`; in hedge mode the sign picks LONG/SHORT.
    pub positions: Vec<(String, Dec)>,
    /// Mark prices `(symbol, price)`, overriding each symbol's default.
    pub marks: Vec<(String, Dec)>,
    /// Hedge (dual-side) position mode.
    pub hedge_mode: bool,
    /// USDT wallet balance of the account.
    pub balance: Dec,
    /// Leverage of every symbol.
    pub leverage: u32,
    /// Fault injection.
    pub faults: Faults,
    /// Rate limits.
    pub limits: Limits,
    /// Lifetime of a listenKey without keepalive (Binance: 60 min).
    pub listen_key_ttl: Duration,
    /// Largest accepted `recvWindow` in ms. *unverified* for futures; spot documents 60000.
    pub max_recv_window_ms: i64,
    /// -1111 rule for quantities.
    pub qty_precision: QtyPrecision,
    /// Reduce-only orders larger than the position.
    pub reduce_only_excess: ReduceOnlyExcess,
    /// Interval of server pings on WebSocket connections (Binance: 3 min).
    pub ws_ping_interval: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8089)),
            keys: vec![ApiKey::hmac(TEST_API_KEY, TEST_API_SECRET)],
            symbols: SymbolSpec::defaults(),
            positions: Vec::new(),
            marks: Vec::new(),
            hedge_mode: false,
            balance: Dec::from_int(100_000),
            leverage: 20,
            faults: Faults::default(),
            limits: Limits::default(),
            listen_key_ttl: Duration::from_secs(60 * 60),
            max_recv_window_ms: 60_000,
            qty_precision: QtyPrecision::Symbol,
            reduce_only_excess: ReduceOnlyExcess::Clamp,
            ws_ping_interval: Duration::from_secs(180),
        }
    }
}

impl SimConfig {
    /// A config bound to `127.0.0.1:0` (a free port), otherwise default: what tests want.
    pub fn ephemeral() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..SimConfig::default()
        }
    }

    /// Checks the config for mistakes a user can make; the error is one sentence.
    pub fn validate(&self) -> Result<(), String> {
        if self.keys.is_empty() {
            return Err("at least one API key is required".into());
        }
        for k in &self.keys {
            if !crate::auth::key_format_ok(&k.key) {
                return Err(format!(
                    "API key '{}' is not 64 ASCII letters or digits, so clients would get -2014",
                    k.key
                ));
            }
            if matches!(&k.auth, KeyAuth::Hmac(s) if s.is_empty()) {
                return Err(format!("API key '{}' has an empty secret", k.key));
            }
        }
        let known = |s: &str| self.symbols.iter().any(|x| x.symbol == s);
        let names = || {
            self.symbols
                .iter()
                .map(|s| s.symbol.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (s, _) in &self.positions {
            if !known(s) {
                return Err(format!(
                    "unknown symbol '{s}' in positions (known: {})",
                    names()
                ));
            }
        }
        for (s, p) in &self.marks {
            if !known(s) {
                return Err(format!(
                    "unknown symbol '{s}' in marks (known: {})",
                    names()
                ));
            }
            if !p.is_pos() {
                return Err(format!("mark price of {s} must be positive, got {p}"));
            }
        }
        self.faults.validate()?;
        if self.leverage == 0 || self.leverage > 125 {
            return Err(format!("leverage must be 1..=125, got {}", self.leverage));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        assert_eq!(TEST_API_KEY.len(), 64);
        SimConfig::default().validate().unwrap();
        let mut c = SimConfig::ephemeral();
        c.positions.push(("XYZUSDT".into(), Dec::from_int(1)));
        assert!(c
            .validate()
            .unwrap_err()
            .contains("unknown symbol 'XYZUSDT'"));
    }
}
