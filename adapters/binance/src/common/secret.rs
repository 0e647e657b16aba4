//! Values that must never reach a log: the API key, the HMAC secret, listenKeys. Each is a
//! type whose `Debug` and `Display` print a redaction, so `{:?}` of a struct that holds one,
//! an error that mentions one, or a `tracing` field cannot leak it. Only `expose()` gives the
//! value, and only the code that puts it on the wire calls it.

use std::fmt;

/// A secret string (HMAC secret, API key). `Debug` and `Display` print `<redacted>`.
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

/// A user data stream listenKey: whoever has it reads the account's orders and positions, so
/// it is as private as the API key. `Debug` and `Display` print `<listenKey>`.
#[derive(Clone, PartialEq, Eq)]
pub struct ListenKey(String);

impl ListenKey {
    /// Wraps a key Binance handed out.
    pub fn new(value: impl Into<String>) -> ListenKey {
        ListenKey(value.into())
    }

    /// The key itself, for the stream URL only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ListenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ListenKey(<redacted>)")
    }
}

impl fmt::Display for ListenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<listenKey>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neither_debug_nor_display_shows_the_value() {
        let s = Secret::new("s3cr3t-value");
        let k = ListenKey::new("lk-value-123");
        let shown = format!("{s} {s:?} {k} {k:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("lk-value"),
            "{shown}"
        );
        assert_eq!((s.expose(), k.expose()), ("s3cr3t-value", "lk-value-123"));
    }
}
