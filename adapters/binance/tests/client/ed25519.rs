//! Ed25519 API keys against a simulator that knows only the public key: REST orders signed
//! in base64, the WebSocket API logged on once per connection, and the user data stream.

use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::SigningKey;
use quantum_binance::futures::user_stream::UserEvent;
use quantum_binance::PositionSide;
use quantum_binance::{Credentials, FuturesClient, KeyKind, Side, Transport};
use quantum_binance_sim::{ApiKey, SimConfig, Simulator};

use crate::common::*;

pub const ED_KEY: &str = "EdTESTkey000000000000000000000000000000000000000000000000000000E";

/// A simulator that registered the public half of `key` under [`ED_KEY`].
pub async fn ed_env(key: &SigningKey) -> Env {
    let mut cfg = SimConfig::ephemeral();
    let public = key
        .verifying_key()
        .to_public_key_pem(Default::default())
        .unwrap();
    cfg.keys.push(ApiKey::ed25519_pem(ED_KEY, &public).unwrap());
    let sim = Simulator::start(cfg).await.unwrap();
    // As the CLI reads it: a key file with the API key line and the PEM private key.
    let pem = key.to_pkcs8_pem(Default::default()).unwrap();
    let file = format!("BINANCE_API_KEY={ED_KEY}\n{}", *pem);
    let creds = Credentials::parse_key_file(&file, None).unwrap();
    assert_eq!(creds.kind(), KeyKind::Ed25519);
    let client = FuturesClient::connect(config_for(&sim), creds)
        .await
        .unwrap();
    Env { sim, client }
}

#[tokio::test]
async fn orders_by_rest_and_by_a_logged_on_websocket_session() {
    let env = ed_env(&SigningKey::from_bytes(&[5; 32])).await;
    env.long("BTCUSDT", "0.010");
    let key = env.client.http().listen_key_create().await.unwrap();
    let mut stream = env.client.user_stream(&key).await.unwrap();
    let o = env
        .client
        .place_market_close(
            Transport::Rest,
            "BTCUSDT",
            PositionSide::Both,
            Side::Sell,
            qty("0.002"),
            "ed-rest",
        )
        .await
        .unwrap();
    assert_eq!(o.status, "FILLED");
    assert_eq!(env.sim.session_logons(), 0);
    for cid in ["ed-ws-1", "ed-ws-2"] {
        let o = env
            .client
            .place_market_close(
                Transport::WsApi,
                "BTCUSDT",
                PositionSide::Both,
                Side::Sell,
                qty("0.001"),
                cid,
            )
            .await
            .unwrap();
        assert_eq!(o.status, "FILLED");
    }
    let s = env
        .client
        .ws_api()
        .query_order("BTCUSDT", "ed-ws-2")
        .await
        .unwrap();
    assert_eq!(s.client_order_id, "ed-ws-2");
    // One logon for the connection, no per-request signature needed after it.
    assert_eq!(env.sim.session_logons(), 1);
    let audit = env.sim.audit();
    let via: Vec<&str> = audit.iter().map(|e| e.via.as_str()).collect();
    assert_eq!(via, ["rest", "ws-api", "ws-api"]);
    assert_eq!(env.position("BTCUSDT"), qty("0.006"));
    // The stream works with an Ed25519 key too (listenKey calls need the key only).
    loop {
        let ev = stream.next().await.unwrap().unwrap();
        if let UserEvent::AccountUpdate(a) = ev {
            if a.positions[0].amount == qty("0.006") {
                break;
            }
        }
    }
}

#[tokio::test]
async fn a_wrong_private_key_is_refused_with_1022_and_the_session_is_not_logged_on() {
    let env = ed_env(&SigningKey::from_bytes(&[5; 32])).await;
    env.long("BTCUSDT", "0.010");
    let wrong = Credentials::ed25519(ED_KEY, SigningKey::from_bytes(&[6; 32]));
    let client = FuturesClient::new(config_for(&env.sim), wrong).unwrap();
    client.sync_time().await.unwrap();
    client.load_filters().await.unwrap();
    let e = client
        .place_market_close(
            Transport::Rest,
            "BTCUSDT",
            PositionSide::Both,
            Side::Sell,
            qty("0.001"),
            "bad-rest",
        )
        .await
        .unwrap_err();
    assert_eq!(e.api_code(), Some(-1022));
    let e = client
        .place_market_close(
            Transport::WsApi,
            "BTCUSDT",
            PositionSide::Both,
            Side::Sell,
            qty("0.001"),
            "bad-ws",
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("session.logon"), "{e}");
    assert!(!e.outcome_unknown(), "nothing was sent: {e}");
    assert_eq!(env.sim.session_logons(), 0);
    assert!(env.sim.audit().is_empty());
}

#[tokio::test]
async fn hmac_keys_sign_each_websocket_request() {
    let env = start().await;
    env.long("BTCUSDT", "0.010");
    env.client
        .place_market_close(
            Transport::WsApi,
            "BTCUSDT",
            PositionSide::Both,
            Side::Sell,
            qty("0.001"),
            "hm-ws",
        )
        .await
        .unwrap();
    assert_eq!(env.sim.session_logons(), 0);
    env.assert_exactly_once(&["hm-ws"]);
}

#[tokio::test]
async fn a_new_websocket_connection_logs_on_again() {
    let env = ed_env(&SigningKey::from_bytes(&[8; 32])).await;
    env.long("BTCUSDT", "0.010");
    // The first order's connection is dropped after the order was placed: its outcome is
    // unknown and found by lookup.
    env.control(
        "/sim/faults",
        serde_json::json!({"dropRate": 1.0, "dropAfterPlace": true}),
    )
    .await;
    let o = env
        .client
        .place_market_close(
            Transport::WsApi,
            "BTCUSDT",
            PositionSide::Both,
            Side::Sell,
            qty("0.001"),
            "re-ws-1",
        )
        .await
        .unwrap();
    assert_eq!(o.status, "FILLED");
    env.control("/sim/faults", serde_json::json!({"dropRate": 0.0}))
        .await;
    env.client
        .place_market_close(
            Transport::WsApi,
            "BTCUSDT",
            PositionSide::Both,
            Side::Sell,
            qty("0.001"),
            "re-ws-2",
        )
        .await
        .unwrap();
    assert_eq!(env.sim.session_logons(), 2);
    env.assert_exactly_once(&["re-ws-1", "re-ws-2"]);
}
