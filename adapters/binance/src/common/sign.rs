//! Request signing and the API credentials: HMAC-SHA256 or Ed25519, chosen by the key.
//!
//! Binance signs the same payload either way: REST signs `totalParams` (the query string
//! immediately followed by the body, exactly as sent, URL-encoded) with `signature` appended
//! last; the WebSocket API signs its params sorted by name, `k=v` joined by `&`, without
//! `signature`. An HMAC key gives the lowercase hex HMAC-SHA256 of that payload; an Ed25519
//! key gives the base64 of the Ed25519 signature of the same bytes, which REST then
//! percent-encodes like any other value. Only Ed25519 keys may log a WebSocket API session on
//! (`session.logon`); HMAC keys sign every request.
//!
//! The key material lives in a [`Credentials`], whose `Debug` never shows the API key, the
//! secret or the private key.

use std::fmt;

use base64::Engine;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signer as _, SigningKey};
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use super::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Which kind of API key signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// HMAC-SHA256 secret: hex signatures, every WebSocket API request signed.
    Hmac,
    /// Ed25519 private key: base64 signatures, the WebSocket API session logged on once.
    Ed25519,
}

#[derive(Clone)]
enum Signer {
    Hmac(Secret),
    Ed25519(Box<SigningKey>),
}

/// An API key and what signs for it.
#[derive(Clone)]
pub struct Credentials {
    api_key: Secret,
    signer: Signer,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("api_key", &self.api_key)
            .field("kind", &self.kind())
            .finish()
    }
}

/// Why credentials could not be read. Never quotes the key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Neither the HMAC lines nor a PEM private key.
    #[error("expected BINANCE_API_KEY=… and BINANCE_API_SECRET=… lines, two lines (key then secret), or an Ed25519 private key in PEM (-----BEGIN PRIVATE KEY-----)")]
    Format,
    /// A PEM private key without an API key beside it or in `BINANCE_API_KEY`.
    #[error("an Ed25519 private key needs its API key: add a BINANCE_API_KEY=… line to the key file or set BINANCE_API_KEY")]
    MissingApiKey,
    /// The key file named by `BINANCE_PRIVATE_KEY_FILE` cannot be read.
    #[error("cannot read the private key file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A PEM document that is not an Ed25519 private key (RSA, a public key, damaged).
    #[error("the PEM document is not an Ed25519 private key (PKCS#8); RSA keys are not supported, and a public key cannot sign")]
    NotEd25519(#[source] ed25519_dalek::pkcs8::Error),
}

impl Credentials {
    /// An API key and its HMAC secret.
    pub fn new(api_key: impl Into<String>, secret: impl Into<String>) -> Credentials {
        Credentials {
            api_key: Secret::new(api_key),
            signer: Signer::Hmac(Secret::new(secret)),
        }
    }

    /// An API key and its Ed25519 private key (PKCS#8 PEM, as Binance's key generator and
    /// `openssl genpkey -algorithm ed25519` write it).
    pub fn ed25519_from_pem(
        api_key: impl Into<String>,
        pem: &str,
    ) -> Result<Credentials, KeyError> {
        let key = SigningKey::from_pkcs8_pem(pem.trim()).map_err(KeyError::NotEd25519)?;
        Ok(Credentials::ed25519(api_key, key))
    }

    /// An API key and its Ed25519 signing key.
    pub fn ed25519(api_key: impl Into<String>, key: SigningKey) -> Credentials {
        Credentials {
            api_key: Secret::new(api_key),
            signer: Signer::Ed25519(Box::new(key)),
        }
    }

    /// From the environment: `BINANCE_API_KEY` with `BINANCE_API_SECRET` (HMAC) or with
    /// `BINANCE_PRIVATE_KEY_FILE` (a PEM Ed25519 key). `None` when no key is set.
    pub fn from_env() -> Option<Result<Credentials, KeyError>> {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        let key = var("BINANCE_API_KEY")?;
        if let Some(path) = var("BINANCE_PRIVATE_KEY_FILE") {
            return Some(
                std::fs::read_to_string(&path)
                    .map_err(|source| KeyError::Read { path, source })
                    .and_then(|pem| Credentials::ed25519_from_pem(key, &pem)),
            );
        }
        var("BINANCE_API_SECRET").map(|s| Ok(Credentials::new(key, s)))
    }

    /// Parses a key file; its content decides the key type.
    /// - A PEM private key (`-----BEGIN PRIVATE KEY-----`): Ed25519. Its API key is a
    ///   `BINANCE_API_KEY=…` line in the same file, else `fallback_api_key`.
    /// - `BINANCE_API_KEY=…` / `BINANCE_API_SECRET=…` lines (`#` comments allowed), or two bare
    ///   lines, key then secret: HMAC.
    pub fn parse_key_file(
        text: &str,
        fallback_api_key: Option<String>,
    ) -> Result<Credentials, KeyError> {
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let value = |name: &str| {
            lines
                .iter()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let key = value("BINANCE_API_KEY=");
        if let Some(start) = text.find("-----BEGIN") {
            let key = key.or(fallback_api_key).ok_or(KeyError::MissingApiKey)?;
            return Credentials::ed25519_from_pem(key, &text[start..]);
        }
        let (key, secret) = match (key, value("BINANCE_API_SECRET=")) {
            (None, None) if lines.len() == 2 && !lines[0].contains('=') => {
                (Some(lines[0].to_owned()), Some(lines[1].to_owned()))
            }
            pair => pair,
        };
        match (key, secret) {
            (Some(k), Some(s)) => Ok(Credentials::new(k, s)),
            _ => Err(KeyError::Format),
        }
    }

    /// The `X-MBX-APIKEY` / `apiKey` value. Never log what this returns.
    pub fn api_key(&self) -> &str {
        self.api_key.expose()
    }

    /// HMAC or Ed25519.
    pub fn kind(&self) -> KeyKind {
        match self.signer {
            Signer::Hmac(_) => KeyKind::Hmac,
            Signer::Ed25519(_) => KeyKind::Ed25519,
        }
    }

    /// The signature of `payload`: lowercase hex HMAC-SHA256, or base64 Ed25519. Values are
    /// raw: REST callers percent-encode them like any parameter.
    pub fn sign(&self, payload: &str) -> String {
        match &self.signer {
            Signer::Hmac(secret) => sign(secret, payload),
            Signer::Ed25519(key) => base64::engine::general_purpose::STANDARD
                .encode(key.sign(payload.as_bytes()).to_bytes()),
        }
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
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    use ed25519_dalek::{Signature, Verifier};

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
    fn secrets_and_the_api_key_are_redacted_everywhere() {
        let c = Credentials::new("public-key-value", "super-secret-value");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("super-secret-value"), "{dbg}");
        assert!(!dbg.contains("public-key-value"), "{dbg}");
        assert!(dbg.contains("<redacted>") && dbg.contains("Hmac"), "{dbg}");
        assert_eq!(c.api_key(), "public-key-value");
    }

    #[test]
    fn key_files_in_every_form() {
        let a =
            Credentials::parse_key_file("# x\nBINANCE_API_KEY=k1\nBINANCE_API_SECRET=s1\n", None)
                .unwrap();
        assert_eq!((a.api_key(), a.kind()), ("k1", KeyKind::Hmac));
        assert_eq!(a.sign("p"), sign(&Secret::new("s1"), "p"));
        let b = Credentials::parse_key_file("k2\ns2\n", None).unwrap();
        assert_eq!(b.api_key(), "k2");
        let e = Credentials::parse_key_file("BINANCE_API_KEY=k\nsecret-in-file", None)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret-in-file"), "{e}");

        let key = SigningKey::from_bytes(&[7; 32]);
        let pem = key.to_pkcs8_pem(Default::default()).unwrap();
        let c =
            Credentials::parse_key_file(&format!("BINANCE_API_KEY=ed1\n{}", *pem), None).unwrap();
        assert_eq!((c.api_key(), c.kind()), ("ed1", KeyKind::Ed25519));
        let c = Credentials::parse_key_file(&pem, Some("from-env".into())).unwrap();
        assert_eq!(c.api_key(), "from-env");
        assert!(matches!(
            Credentials::parse_key_file(&pem, None),
            Err(KeyError::MissingApiKey)
        ));
        let damaged = pem.replace('A', "B");
        let e = Credentials::parse_key_file(&damaged, Some("k".into())).unwrap_err();
        assert!(matches!(e, KeyError::NotEd25519(_)), "{e}");
        assert!(!format!("{c:?}").contains("PRIVATE"));
    }

    #[test]
    fn ed25519_signs_the_same_payload_in_base64() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let c = Credentials::ed25519("k", key.clone());
        let payload = "apiKey=k&symbol=BTCUSDT&timestamp=1";
        let sig = c.sign(payload);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&sig)
            .unwrap();
        let sig = Signature::from_slice(&bytes).unwrap();
        key.verifying_key()
            .verify(payload.as_bytes(), &sig)
            .unwrap();
    }

    #[test]
    fn values_are_percent_encoded() {
        assert_eq!(encode_value("qpc-ab:c/d.e_f~"), "qpc-ab%3Ac%2Fd.e_f~");
        assert_eq!(encode_value("a+b/c="), "a%2Bb%2Fc%3D");
        assert_eq!(
            encode_params(&[("a", "1".into()), ("b", "x y".into())]),
            "a=1&b=x%20y"
        );
    }
}
