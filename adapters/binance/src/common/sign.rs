//! HMAC-SHA256 request signing and the API credentials.
//!
//! REST signs `totalParams`: the query string immediately followed by the body, exactly as
//! sent (URL-encoded), with `signature` appended last. The WebSocket API signs its params
//! sorted by name, `k=v` joined by `&`, without `signature`. The secret lives in a [`Secret`],
//! whose `Debug` and `Display` never show it.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// A secret string. Its `Debug` and `Display` print `<redacted>`; only [`Secret::expose`]
/// gives the value, and only signing calls it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself. Never log what this returns.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An API key and its HMAC secret.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The `X-MBX-APIKEY` value (public: Binance shows it in the UI and logs it).
    pub api_key: String,
    /// The HMAC-SHA256 secret.
    pub secret: Secret,
}

impl Credentials {
    /// Key and secret.
    pub fn new(api_key: impl Into<String>, secret: impl Into<String>) -> Credentials {
        Credentials {
            api_key: api_key.into(),
            secret: Secret::new(secret),
        }
    }

    /// `BINANCE_API_KEY` and `BINANCE_API_SECRET`, if both are set and non-empty.
    pub fn from_env() -> Option<Credentials> {
        let key = std::env::var("BINANCE_API_KEY").ok()?;
        let secret = std::env::var("BINANCE_API_SECRET").ok()?;
        (!key.is_empty() && !secret.is_empty()).then(|| Credentials::new(key, secret))
    }

    /// Parses a key file: either `BINANCE_API_KEY=…` / `BINANCE_API_SECRET=…` lines (`#`
    /// comments allowed) or two bare lines, key then secret. The error never quotes the file.
    pub fn parse_key_file(text: &str) -> Result<Credentials, &'static str> {
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let (mut key, mut secret) = (None, None);
        for l in &lines {
            if let Some(v) = l.strip_prefix("BINANCE_API_KEY=") {
                key = Some(v.trim().to_owned());
            } else if let Some(v) = l.strip_prefix("BINANCE_API_SECRET=") {
                secret = Some(v.trim().to_owned());
            }
        }
        if key.is_none() && secret.is_none() && lines.len() == 2 && !lines[0].contains('=') {
            key = Some(lines[0].to_owned());
            secret = Some(lines[1].to_owned());
        }
        match (key, secret) {
            (Some(k), Some(s)) if !k.is_empty() && !s.is_empty() => Ok(Credentials::new(k, s)),
            _ => Err("expected BINANCE_API_KEY=… and BINANCE_API_SECRET=… lines, or two lines: key then secret"),
        }
    }

    /// Lowercase hex HMAC-SHA256 of `payload`.
    pub fn sign(&self, payload: &str) -> String {
        sign(&self.secret, payload)
    }
}

/// Lowercase hex HMAC-SHA256(secret, payload).
pub fn sign(secret: &Secret, payload: &str) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let mut mac = match HmacSha256::new_from_slice(secret.expose().as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(payload.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Percent-encodes a parameter value for a query string or form body: everything but
/// `A-Za-z0-9-_.~` is escaped, so the bytes signed are the bytes sent.
pub fn encode_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `k=v&k=v` with values percent-encoded, in the given order.
pub fn encode_params(params: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(&encode_value(v));
    }
    out
}

/// The WebSocket API signature payload: params sorted by name, `signature` excluded, raw
/// values, `k=v` joined by `&`.
pub fn ws_payload(params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> =
        params.iter().filter(|(k, _)| k != "signature").collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::new();
    for (i, (k, v)) in sorted.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binance_published_test_vector() {
        let secret =
            Secret::new("2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9");
        let payload = "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC&recvWindow=5000&timestamp=1591702613943";
        assert_eq!(
            sign(&secret, payload),
            "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"
        );
    }

    #[test]
    fn ws_payload_is_sorted_and_excludes_the_signature() {
        let p = vec![
            ("timestamp".to_owned(), "2".to_owned()),
            ("apiKey".to_owned(), "k".to_owned()),
            ("signature".to_owned(), "x".to_owned()),
            ("symbol".to_owned(), "BTCUSDT".to_owned()),
        ];
        assert_eq!(ws_payload(&p), "apiKey=k&symbol=BTCUSDT&timestamp=2");
    }

    #[test]
    fn secrets_are_redacted_everywhere() {
        let c = Credentials::new("public-key", "super-secret-value");
        let dbg = format!("{c:?} {:?} {}", c.secret, c.secret);
        assert!(!dbg.contains("super-secret-value"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
        assert!(dbg.contains("public-key"));
        assert_eq!(c.secret.expose(), "super-secret-value");
    }

    #[test]
    fn key_files_in_both_forms() {
        let a = Credentials::parse_key_file("# x\nBINANCE_API_KEY=k1\nBINANCE_API_SECRET=s1\n")
            .unwrap();
        assert_eq!((a.api_key.as_str(), a.secret.expose()), ("k1", "s1"));
        let b = Credentials::parse_key_file("k2\ns2\n").unwrap();
        assert_eq!((b.api_key.as_str(), b.secret.expose()), ("k2", "s2"));
        let e = Credentials::parse_key_file("BINANCE_API_KEY=k\nsecret-in-file").unwrap_err();
        assert!(!e.contains("secret-in-file"));
    }

    #[test]
    fn values_are_percent_encoded() {
        assert_eq!(encode_value("qpc-ab:c/d.e_f~"), "qpc-ab%3Ac%2Fd.e_f~");
        assert_eq!(
            encode_params(&[("a", "1".into()), ("b", "x y".into())]),
            "a=1&b=x%20y"
        );
    }
}
