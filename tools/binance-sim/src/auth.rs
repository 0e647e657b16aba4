//! API keys, signatures (HMAC-SHA256 or Ed25519, by the key) and the timestamp / recvWindow
//! rule.
//!
//! REST signs `totalParams` = the raw query string immediately followed by the raw body,
//! with the `signature` pair taken out; the WebSocket API signs its params sorted by name. An
//! HMAC key's signature is hex; an Ed25519 key's is the base64 of the Ed25519 signature of
//! the same payload, percent-encoded in a REST query or body like any value.

use base64::Engine;
use ed25519_dalek::Signature;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::{ApiKey, KeyAuth};
use crate::error::ApiError;
use crate::params::Params;

type HmacSha256 = Hmac<Sha256>;

/// True for keys shaped like Binance's: 64 ASCII letters or digits.
pub fn key_format_ok(key: &str) -> bool {
    key.len() == 64 && key.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Lowercase hex HMAC-SHA256 of `payload`.
pub fn sign(secret: &str, payload: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(payload.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Looks up the key: -2014 when missing or malformed, -2015 when unknown.
pub fn find_key<'a>(
    keys: &'a [ApiKey],
    key: Option<&str>,
    ip: &str,
) -> Result<&'a ApiKey, ApiError> {
    let key = key
        .filter(|k| key_format_ok(k))
        .ok_or_else(ApiError::key_format)?;
    keys.iter()
        .find(|k| k.key == key)
        .ok_or_else(|| ApiError::key_invalid(ip))
}

/// Removes the `signature=...` pair from a raw `a=1&b=2` string, returning the rest and the
/// signature (still URL-encoded, though hex needs no encoding).
fn split_signature(raw: &str) -> (String, Option<String>) {
    let mut sig = None;
    let rest: Vec<&str> = raw
        .split('&')
        .filter(|pair| match pair.strip_prefix("signature=") {
            Some(v) => {
                sig.get_or_insert_with(|| v.to_string());
                false
            }
            None => true,
        })
        .collect();
    (rest.join("&"), sig)
}

/// The string a REST client signed, and the signature it sent (percent-decoded).
pub fn rest_payload(query: &str, body: &str) -> (String, Option<String>) {
    let (q, qsig) = split_signature(query);
    let (b, bsig) = split_signature(body);
    let sig = qsig.or(bsig).map(|raw| {
        form_urlencoded::parse(format!("s={raw}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    });
    (format!("{q}{b}"), sig)
}

/// The string a WebSocket API client signed: every param but `signature`, sorted by name.
pub fn ws_payload(p: &Params) -> String {
    let mut pairs: Vec<&(String, String)> = p.0.iter().filter(|(k, _)| k != "signature").collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Checks `signature` against `payload` with `key`: hex (any case) HMAC-SHA256, or base64
/// Ed25519 (strict verification). -1102 when absent, -1022 when wrong.
pub fn verify(key: &ApiKey, payload: &str, signature: Option<&str>) -> Result<(), ApiError> {
    let sig = signature
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::mandatory("signature"))?;
    match &key.auth {
        KeyAuth::Hmac(secret) => {
            let bytes = hex::decode(sig).map_err(|_| ApiError::signature())?;
            let mut mac =
                HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
            mac.update(payload.as_bytes());
            mac.verify_slice(&bytes).map_err(|_| ApiError::signature())
        }
        KeyAuth::Ed25519(public) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(sig)
                .map_err(|_| ApiError::signature())?;
            let sig = Signature::from_slice(&bytes).map_err(|_| ApiError::signature())?;
            public
                .verify_strict(payload.as_bytes(), &sig)
                .map_err(|_| ApiError::signature())
        }
    }
}

/// Binance's rule: accept when `timestamp < server + 1000` and `server - timestamp <= recvWindow`.
pub fn check_timestamp(p: &Params, server_ms: i64, max_recv_window: i64) -> Result<(), ApiError> {
    let ts = p
        .int("timestamp")?
        .ok_or_else(|| ApiError::mandatory("timestamp"))?;
    let recv_window = p.int("recvWindow")?.unwrap_or(5000);
    if recv_window <= 0 || recv_window > max_recv_window {
        return Err(ApiError::bad(
            -1131,
            format!("recvWindow must be less than {max_recv_window}."),
        ));
    }
    if ts >= server_ms + 1000 {
        return Err(ApiError::ts_ahead());
    }
    if server_ms - ts > recv_window {
        return Err(ApiError::ts_stale());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9";
    const PAYLOAD: &str = "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC&recvWindow=5000&timestamp=1591702613943";
    const SIG: &str = "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9";

    #[test]
    fn published_vector() {
        let key = ApiKey::hmac("k", SECRET);
        assert_eq!(sign(SECRET, PAYLOAD), SIG);
        assert!(verify(&key, PAYLOAD, Some(SIG)).is_ok());
        let bad = format!("{}0", &SIG[..63]);
        assert_eq!(verify(&key, PAYLOAD, Some(&bad)).unwrap_err().code, -1022);
    }

    #[test]
    fn ed25519_signatures_in_base64() {
        use ed25519_dalek::{Signer, SigningKey};
        let sk = SigningKey::from_bytes(&[3; 32]);
        let key = ApiKey::ed25519("k", sk.verifying_key());
        let sig = base64::engine::general_purpose::STANDARD
            .encode(sk.sign(PAYLOAD.as_bytes()).to_bytes());
        assert!(verify(&key, PAYLOAD, Some(&sig)).is_ok());
        let other = format!("{PAYLOAD}0");
        assert_eq!(verify(&key, &other, Some(&sig)).unwrap_err().code, -1022);
        assert_eq!(verify(&key, PAYLOAD, Some(SIG)).unwrap_err().code, -1022);
        // Percent-encoded in a REST body, decoded before the check.
        let encoded: String = form_urlencoded::byte_serialize(sig.as_bytes()).collect();
        let (_, got) = rest_payload("", &format!("a=1&signature={encoded}"));
        assert_eq!(got.as_deref(), Some(sig.as_str()));
    }

    #[test]
    fn signature_pair_removed_from_query_or_body() {
        let (p, s) = rest_payload("a=1&signature=ff", "b=2");
        assert_eq!((p.as_str(), s.as_deref()), ("a=1b=2", Some("ff")));
        let (p, s) = rest_payload("a=1", "b=2&signature=ee");
        assert_eq!((p.as_str(), s.as_deref()), ("a=1b=2", Some("ee")));
    }
}
