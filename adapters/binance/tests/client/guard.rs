//! The mainnet guard holds for every URL the client opens: without the mainnet choice, no
//! spelling of a non-testnet host reaches the network, and a user stream URL without the
//! private route is refused.

use quantum_binance::{Error, FuturesClient, Network};

use crate::common::*;

const SPELLINGS: [&str; 6] = [
    "https://FAPI.BINANCE.COM",
    "https://FAPI.binance.com",
    "https://fapi.binance.com.",
    "https://user@fapi.binance.com",
    "https://fapi1.binance.com",
    "https://fapi2.binance.com",
];

#[tokio::test]
async fn no_spelling_of_mainnet_gets_through_any_endpoint() {
    let env = start().await;
    for url in SPELLINGS {
        let ws = url.replacen("https", "wss", 1);
        for slot in 0..3 {
            let mut cfg = config_for(&env.sim);
            match slot {
                0 => cfg.endpoints.rest = url.into(),
                1 => cfg.endpoints.ws_api = ws.clone(),
                _ => cfg.endpoints.user_stream = format!("{ws}/private"),
            }
            let e = FuturesClient::connect(cfg.clone(), creds())
                .await
                .unwrap_err();
            assert!(
                matches!(e, Error::UrlRefused { .. }),
                "{url} slot {slot}: {e}"
            );
            assert!(!e.to_string().contains("user@"), "{e}");
            cfg.network = Network::Mainnet;
            let allowed = FuturesClient::new(cfg, creds()).is_ok();
            assert_eq!(allowed, !url.contains('@'), "--mainnet {url} slot {slot}");
        }
    }
    // The user stream checks again when it connects (its config may differ from the client's).
    let key = env.client.http().listen_key_create().await.unwrap();
    let mut cfg = config_for(&env.sim);
    cfg.endpoints.user_stream = "wss://fstream.binance.com./private".into();
    let e = quantum_binance::futures::user_stream::UserStream::connect(&cfg, &key, None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::UrlRefused { .. }), "{e}");
}

#[tokio::test]
async fn the_legacy_unrouted_user_stream_url_is_refused() {
    let env = start().await;
    let mut cfg = config_for(&env.sim);
    cfg.endpoints.user_stream = format!("ws://{}/ws", env.sim.local_addr());
    let e = FuturesClient::new(cfg, creds()).unwrap_err();
    assert!(
        matches!(e, Error::Config(_)) && e.to_string().contains("private"),
        "{e}"
    );
}
