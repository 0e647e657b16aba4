//! The contract info stream (`!contractInfo`) on the routed market endpoint: Binance pushes a
//! `contractInfo` event when a symbol's contract changes, its status `cs` among them
//! (`TRADING`, `SETTLING`, `DELIVERING`, `CLOSE`, ...). The stream is opened at
//! `<market>/ws/!contractInfo` ([`crate::config::Endpoints::market_stream`]), raw events.
//! Frames that are not `contractInfo` events (subscription answers) are skipped; a
//! `contractInfo` event without `s` or `cs` is an error for that frame only.

use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::futures::user_stream::{event_object, next_text, StreamSocket};

/// The stream's name.
pub const CONTRACT_INFO_STREAM: &str = "!contractInfo";

/// A `contractInfo` event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContractInfo {
    /// Event time `E` (ms).
    pub event_time: u64,
    /// Symbol `s`.
    pub symbol: String,
    /// Contract status `cs`, as Binance wrote it.
    pub status: String,
}

/// Parses one frame, raw or in a stream-mode envelope: `Ok(None)` when it is not a
/// `contractInfo` event.
pub fn parse_contract_info(text: &str) -> Result<Option<ContractInfo>> {
    let v = event_object(text, "contractInfo event")?;
    if v["e"].as_str() != Some("contractInfo") {
        return Ok(None);
    }
    let field = |name: &'static str| {
        v[name].as_str().map(str::to_owned).ok_or(Error::Field {
            what: "contractInfo event",
            field: name,
        })
    };
    Ok(Some(ContractInfo {
        event_time: v["E"].as_u64().unwrap_or(0),
        symbol: field("s")?,
        status: field("cs")?,
    }))
}

/// The URL of the contract info stream for `cfg`.
pub fn contract_info_url(cfg: &ClientConfig) -> String {
    format!(
        "{}/ws/{CONTRACT_INFO_STREAM}",
        cfg.endpoints.market_stream.trim_end_matches('/')
    )
}

/// A connected contract info stream.
pub struct ContractInfoStream {
    ws: StreamSocket,
}

impl std::fmt::Debug for ContractInfoStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContractInfoStream")
    }
}

impl ContractInfoStream {
    /// Connects to [`contract_info_url`], after the mainnet guard.
    pub async fn connect(cfg: &ClientConfig) -> Result<ContractInfoStream> {
        cfg.endpoints.check(cfg.network)?;
        let url = contract_info_url(cfg);
        crate::common::url_guard::check_url(&url, cfg.network == crate::Network::Mainnet).map_err(
            |source| Error::UrlRefused {
                endpoint: "market stream",
                source,
            },
        )?;
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .map_err(|e| Error::ws("connect", e))?;
        Ok(ContractInfoStream { ws })
    }

    /// The next `contractInfo` event; `None` when the stream closed. Pings are answered here,
    /// other frames skipped.
    pub async fn next(&mut self) -> Option<Result<ContractInfo>> {
        loop {
            match next_text(&mut self.ws).await? {
                Ok(t) => match parse_contract_info(&t) {
                    Ok(None) => {}
                    Ok(Some(ev)) => return Some(Ok(ev)),
                    Err(e) => return Some(Err(e)),
                },
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_contract_info_raw_and_wrapped() {
        let ev = r#"{"e":"contractInfo","E":1669356423908,"s":"IOTAUSDT","ps":"IOTAUSDT",
            "ct":"PERPETUAL","dt":4133404800000,"ot":1569398400000,"cs":"SETTLING","bks":[]}"#;
        let want = ContractInfo {
            event_time: 1669356423908,
            symbol: "IOTAUSDT".into(),
            status: "SETTLING".into(),
        };
        assert_eq!(parse_contract_info(ev).unwrap(), Some(want.clone()));
        let wrapped = format!(r#"{{"stream":"!contractInfo","data":{ev}}}"#);
        assert_eq!(parse_contract_info(&wrapped).unwrap(), Some(want));
        assert_eq!(
            parse_contract_info(r#"{"result":null,"id":1}"#).unwrap(),
            None
        );
        assert!(parse_contract_info(r#"{"e":"contractInfo","s":"X"}"#).is_err());
        assert!(parse_contract_info("nope").is_err());
    }

    #[test]
    fn the_url_is_on_the_market_route() {
        let cfg = ClientConfig::local(
            "http://127.0.0.1:9",
            "ws://127.0.0.1:9/ws-fapi/v1",
            "ws://127.0.0.1:9/private",
        );
        assert_eq!(
            contract_info_url(&cfg),
            "ws://127.0.0.1:9/market/ws/!contractInfo"
        );
    }
}
