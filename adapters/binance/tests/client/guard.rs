//! The mainnet guard holds for every URL the client opens: without the mainnet choice, no
//! spelling of a non-testnet host reaches the network, and a user stream URL without the
//! private route is refused; and no redirect is followed, whatever it points at.

use quantum_binance::PositionSide;
use quantum_binance::{Error, FuturesClient, Network, NewOrder, Placement, Side, Transport};
use quantum_binance_sim::TEST_API_KEY;

use crate::common::*;
use crate::stub::{Answer, Stub};

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

/// A loopback server redirecting every request, query and all, to `target` (a second
/// loopback server standing in for mainnet), as a hostile or misconfigured proxy would.
async fn redirector(target: &Stub) -> Stub {
    let to = target.url();
    Stub::start("127.0.0.1", move |method, path| {
        let status = if method == "GET" { 302 } else { 307 };
        Answer::new(status, "").header("Location", format!("{to}{path}"))
    })
    .await
}

#[tokio::test]
async fn a_redirect_is_never_followed_and_names_its_target_only() {
    let mainnet = Stub::start("127.0.0.2", |_, _| Answer::new(200, "{}")).await;
    let proxy = redirector(&mainnet).await;
    let ws = format!("ws://{}", proxy.addr);
    let cfg = config_for_urls(
        &proxy.url(),
        &format!("{ws}/ws-fapi/v1"),
        &format!("{ws}/private"),
    );
    let target = format!("http://{}/fapi/v1/", mainnet.addr);
    let hidden = |e: &Error| {
        let shown = format!("{e} {e:?}");
        for secret in ["signature", "timestamp", "origClientOrderId", TEST_API_KEY] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        shown
    };

    // Public GET: connecting (server time first) stops at the 302.
    let e = FuturesClient::connect(cfg.clone(), creds())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Redirected { status: 302, .. }), "{e}");
    assert!(hidden(&e).contains(&format!("{target}time")), "{e}");

    // Signed GET, its signature in the query the redirect echoes.
    let client = FuturesClient::new(cfg, creds()).unwrap();
    let e = client.query_order("BTCUSDT", "rd-get").await.unwrap_err();
    assert!(hidden(&e).contains(&format!("{target}order")), "{e}");

    // The signed order: a 307 keeps the method and the body, and would carry the key along.
    let order = NewOrder {
        symbol: "BTCUSDT".into(),
        side: Side::Sell,
        quantity: "0.001".into(),
        position_side: PositionSide::Both,
        reduce_only: true,
        client_order_id: "rd-post".into(),
    };
    let Placement::Unknown(u) = client.place(Transport::Rest, &order).await else {
        panic!("a redirected order must be unknown: nothing proves it was not forwarded");
    };
    assert!(
        matches!(u.cause, Error::Redirected { status: 307, .. }),
        "{}",
        u.cause
    );
    assert!(hidden(&u.cause).contains(&format!("{target}order")));

    // The WebSocket API's handshake is redirected too, and not followed either.
    assert!(client.place_raw(Transport::WsApi, &order).await.is_err());

    assert!(proxy.connections() >= 4, "{}", proxy.connections());
    assert_eq!(mainnet.connections(), 0, "a redirect was followed");
}
