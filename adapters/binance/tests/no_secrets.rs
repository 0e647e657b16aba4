//! No secret in any log at any level: the client paths (REST and WebSocket API orders with an
//! HMAC and an Ed25519 key, `session.logon`, the user data stream with its listenKey, failing
//! signed lookups) and the bridge run at `RUST_LOG=trace` against the simulator, with every
//! target captured (the `log` records of tungstenite and reqwest included), and the output
//! holds none of the API keys, secrets, private key, listenKeys or signatures, in any form a
//! library prints them (text, hex, decimal byte lists).
//!
//! The same run under a plain `trace` filter first proves the capture would see them: without
//! [`quantum_binance::common::logging::filter_from`] the secrets do reach the output.
//!
//! A test binary of its own: it installs the process-wide subscriber.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::SigningKey;
use quantum_binance::bridge::{self, BridgeConfig, EXCHANGE_RING, ORDERS_RING};
use quantum_binance::common::logging;
use quantum_binance::config::ResolveConfig;
use quantum_binance::PositionSide;
use quantum_binance::{ClientConfig, Credentials, FuturesClient, Pending, SentAt, Side, Transport};
use quantum_binance_sim::{
    ApiKey, Dec, PosSide, SimConfig, SimHandle, Simulator, TEST_API_KEY, TEST_API_SECRET,
};
use quantum_ipc::wire::{self, Limits, Message, RECORD_SIZE};
use quantum_ipc::{CountersWriter, Ring, RingSpec};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{reload, EnvFilter};

const ED_KEY: &str = "EdTESTkey000000000000000000000000000000000000000000000000000000E";

/// Everything the subscriber writes.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn take(&self) -> String {
        let mut v = self.0.lock().unwrap();
        String::from_utf8_lossy(&std::mem::take(&mut *v)).into_owned()
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

/// The forms a library prints bytes in: text, lowercase hex, a decimal `Vec<u8>` list.
fn forms(secret: &str) -> Vec<String> {
    let b = secret.as_bytes();
    vec![
        secret.to_owned(),
        b.iter().map(|x| format!("{x:02x}")).collect(),
        b.iter().map(u8::to_string).collect::<Vec<_>>().join(", "),
    ]
}

/// Secrets found in `out`, and runs of 32+ letters and digits (what every key, listenKey,
/// hex signature and base64 signature contains).
fn leaks(out: &str, secrets: &[String]) -> Vec<String> {
    let mut found: Vec<String> = secrets
        .iter()
        .filter(|s| forms(s).iter().any(|f| out.contains(f.as_str())))
        .map(|s| format!("secret {}…", &s[..8.min(s.len())]))
        .collect();
    let mut run = String::new();
    for c in out.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() {
            run.push(c);
        } else {
            if run.len() >= 32 {
                found.push(format!("long token {}…", &run[..8]));
            }
            run.clear();
        }
    }
    found
}

struct World {
    sim: SimHandle,
    ed: SigningKey,
    secrets: Vec<String>,
}

fn client_config(sim: &SimHandle) -> ClientConfig {
    let mut cfg = ClientConfig::local(&sim.rest_url(), &sim.ws_api_url(), &sim.stream_base_url());
    cfg.recv_window_ms = 1000;
    cfg.resolve = ResolveConfig {
        max_sends: 2,
        max_lookups: 3,
        lookup_pause: Duration::from_millis(20),
        settle_margin: Duration::from_millis(100),
    };
    cfg
}

async fn world() -> World {
    let ed = SigningKey::from_bytes(&[77; 32]);
    let mut cfg = SimConfig::ephemeral();
    let public = ed
        .verifying_key()
        .to_public_key_pem(Default::default())
        .unwrap();
    cfg.keys.push(ApiKey::ed25519_pem(ED_KEY, &public).unwrap());
    let sim = Simulator::start(cfg).await.unwrap();
    sim.set_position("BTCUSDT", PosSide::Both, Dec::parse("1").unwrap())
        .unwrap();
    let pem = ed.to_pkcs8_pem(Default::default()).unwrap();
    let mut secrets = vec![
        TEST_API_KEY.to_owned(),
        TEST_API_SECRET.to_owned(),
        ED_KEY.to_owned(),
    ];
    // The private key's PEM body, line by line.
    secrets.extend(
        pem.lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 16)
            .map(str::to_owned),
    );
    World { sim, ed, secrets }
}

/// REST and WebSocket API orders with both key kinds, the user data stream, and lookups
/// that fail with an HTTP error whose URL carries a signature.
async fn client_paths(w: &mut World, round: &str) {
    let pem = w.ed.to_pkcs8_pem(Default::default()).unwrap();
    let ed_creds = Credentials::parse_key_file(&pem, Some(ED_KEY.into())).unwrap();
    for (creds, tag) in [
        (Credentials::new(TEST_API_KEY, TEST_API_SECRET), "h"),
        (ed_creds, "e"),
    ] {
        let client = FuturesClient::connect(client_config(&w.sim), creds)
            .await
            .unwrap();
        let key = client.http().listen_key_create().await.unwrap();
        w.secrets.push(key.expose().to_owned());
        let mut stream = client.user_stream(&key).await.unwrap();
        client.http().listen_key_keepalive().await.unwrap();
        for t in [Transport::Rest, Transport::WsApi] {
            let cid = format!("{round}-{tag}-{t:?}");
            client
                .place_market_close(
                    t,
                    "BTCUSDT",
                    PositionSide::Both,
                    Side::Sell,
                    "0.001".parse().unwrap(),
                    &cid,
                )
                .await
                .unwrap();
            // Read the stream until this order's fill, so its frames are logged too.
            loop {
                let ev = tokio::time::timeout(Duration::from_secs(5), stream.next())
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap();
                if let quantum_binance::futures::user_stream::UserEvent::OrderTradeUpdate(o) = ev {
                    if o.client_order_id == cid && o.status == "FILLED" {
                        break;
                    }
                }
            }
        }
        client
            .ws_api()
            .query_order("BTCUSDT", &format!("{round}-{tag}-WsApi"))
            .await
            .unwrap();
        client.positions(&["BTCUSDT", "ETHUSDT"]).await.unwrap();
    }
    // Signed lookups that time out: the adapter logs each failure at warn.
    w.sim.set_faults(quantum_binance_sim::Faults {
        latency_ms: 300,
        ..Default::default()
    });
    let mut cfg = client_config(&w.sim);
    cfg.request_timeout = Duration::from_millis(100);
    let client = FuturesClient::new(cfg, Credentials::new(TEST_API_KEY, TEST_API_SECRET)).unwrap();
    let pending = Pending {
        symbol: "BTCUSDT".into(),
        client_order_id: format!("{round}-lost"),
        sent_at: SentAt::AssumeNow,
    };
    let e = client.resolve(&pending).await.unwrap_err();
    assert!(
        matches!(e, quantum_binance::Error::Unresolved { .. }),
        "{e}"
    );
    w.sim.set_faults(Default::default());
    if let Some(k) = w.sim.listen_key() {
        w.secrets.push(k);
    }
}

/// The bridge, without the daemon: rings and symbol directory made here, one exit ordered.
async fn bridge_run(w: &mut World) {
    let instance = format!("nosecrets{}", std::process::id());
    let counters = CountersWriter::create(&instance, 8).unwrap();
    counters.set_symbol(0, "BTCUSDT").unwrap();
    let orders = Ring::create(&RingSpec::new(&instance, ORDERS_RING, 64)).unwrap();
    let exchange = Ring::create(&RingSpec::new(&instance, EXCHANGE_RING, 1024)).unwrap();
    let mut to_bridge = orders.producer::<RECORD_SIZE>().unwrap();
    let mut from_bridge = exchange.consumer::<RECORD_SIZE>().unwrap();
    let cfg = BridgeConfig::new(&instance, client_config(&w.sim));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(bridge::run(
        cfg,
        Credentials::new(TEST_API_KEY, TEST_API_SECRET),
        async {
            let _ = stop_rx.await;
        },
    ));
    let qty = "0.002".parse::<quantum_core::fixed::Qty>().unwrap().units();
    let intent = Message::OrderIntent(wire::OrderIntent {
        side: wire::Side::Sell,
        symbol: 0,
        reduce_only: true,
        order_type: wire::OrderType::Market,
        flags: 0,
        plan_id: 0x5ec,
        qty,
        t_in_ns: 0,
        t_out_ns: 0,
        at_ms: 0,
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    // The bridge attaches, then takes the intent.
    while to_bridge.try_push_message(&intent).is_err() {
        assert!(
            Instant::now() < deadline,
            "the bridge never took the intent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    'fill: loop {
        while let Some(m) = from_bridge.try_pop_message(&Limits::default()) {
            if matches!(m.unwrap(), Message::OrderReport(r) if r.plan_id == 0x5ec && r.cum_qty > 0)
            {
                break 'fill;
            }
        }
        assert!(Instant::now() < deadline, "no fill from the bridge");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_tx.send(()).unwrap();
    run.await.unwrap().unwrap();
    if let Some(k) = w.sim.listen_key() {
        w.secrets.push(k);
    }
}

#[test]
fn no_secret_reaches_the_logs_at_trace_level() {
    let capture = Capture::default();
    let (filter, handle) = reload::Layer::new(EnvFilter::new("trace"));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(capture.clone()),
        )
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut w = world().await;

        // Without the adapter's filter: the capture does see the secrets (the canary).
        client_paths(&mut w, "raw").await;
        let raw = capture.take();
        let seen = leaks(&raw, &w.secrets);
        assert!(
            !seen.is_empty(),
            "a plain trace filter leaked nothing: the capture misses library logs, or the \
             libraries stopped logging frames (then the caps may be relaxed)"
        );

        // With it, at trace level for everything else.
        handle
            .reload(logging::filter_from("trace"))
            .expect("filter swapped");
        client_paths(&mut w, "cap").await;
        bridge_run(&mut w).await;
        let out = capture.take();
        let seen = leaks(&out, &w.secrets);
        assert!(seen.is_empty(), "leaked: {seen:?}");
        // Trace level was on: our own debug events and the bridge's are in the output.
        for want in [
            "REST request",
            "WebSocket API request",
            "WebSocket API session logged on",
            "connecting the user data stream",
            "order lookup failed",
            "binance bridge attached",
        ] {
            assert!(out.contains(want), "no {want:?} in the output");
        }
        w.sim.shutdown().await;
    });
}
