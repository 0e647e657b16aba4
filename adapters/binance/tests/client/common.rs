//! Start a simulator on 127.0.0.1:0 and a client pointed at it.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use quantum_binance::common::rate_limit::RateLimitConfig;
use quantum_binance::config::ResolveConfig;
use quantum_binance::{ClientConfig, Credentials, FuturesClient};
use quantum_binance_sim::{
    sign, Dec, PosSide, SimConfig, SimHandle, Simulator, TEST_API_KEY, TEST_API_SECRET,
};
use serde_json::Value;

pub struct Env {
    pub sim: SimHandle,
    pub client: FuturesClient,
}

/// Every step `place_once_only_observed` reported, in a comparable form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Unknown { attempt: u32, code: Option<i64> },
    NotKnownYet,
    Found(quantum_binance::FoundBy),
    NeverPlaced,
    Resending(u32),
}

impl Step {
    pub fn of(e: &quantum_binance::OrderEvent<'_>) -> Step {
        use quantum_binance::{OrderEvent, Resolution};
        match e {
            OrderEvent::Unknown { attempt, cause, .. } => Step::Unknown {
                attempt: *attempt,
                code: cause.api_code(),
            },
            OrderEvent::NotKnownYet { .. } => Step::NotKnownYet,
            OrderEvent::Resolved(Resolution::Found { by, .. }) => Step::Found(*by),
            OrderEvent::Resolved(Resolution::NeverPlaced) => Step::NeverPlaced,
            OrderEvent::Resending { attempt } => Step::Resending(*attempt),
        }
    }
}

/// The steps without repeated "not known yet"s.
pub fn compact(steps: &[Step]) -> Vec<Step> {
    let mut v: Vec<Step> = steps.to_vec();
    v.dedup();
    v
}

pub fn creds() -> Credentials {
    Credentials::new(TEST_API_KEY, TEST_API_SECRET)
}

/// Client settings for tests: a short recvWindow so "never placed" settles quickly, and
/// back-offs capped so a 60 s Retry-After does not stall a test.
pub fn config_for(sim: &SimHandle) -> ClientConfig {
    config_for_urls(&sim.rest_url(), &sim.ws_api_url(), &sim.stream_base_url())
}

/// [`config_for`] with the URLs given (a stub server instead of the simulator).
pub fn config_for_urls(rest: &str, ws_api: &str, user_stream: &str) -> ClientConfig {
    let mut cfg = ClientConfig::local(rest, ws_api, user_stream);
    cfg.recv_window_ms = 1000;
    cfg.request_timeout = Duration::from_secs(5);
    cfg.rate_limit = RateLimitConfig {
        max_wait: Duration::ZERO,
        backoff_cap: Some(Duration::from_millis(300)),
    };
    cfg.resolve = ResolveConfig {
        max_sends: 3,
        max_lookups: 5,
        lookup_pause: Duration::from_millis(50),
        settle_margin: Duration::from_millis(200),
    };
    cfg
}

pub async fn start_with(config: SimConfig) -> Env {
    let sim = Simulator::start(config).await.expect("simulator starts");
    let client = FuturesClient::connect(config_for(&sim), creds())
        .await
        .expect("client connects");
    Env { sim, client }
}

pub async fn start() -> Env {
    start_with(SimConfig::ephemeral()).await
}

pub fn dec(s: &str) -> Dec {
    Dec::parse(s).unwrap()
}

pub fn qty(s: &str) -> quantum_core::fixed::Qty {
    s.parse().unwrap()
}

impl Env {
    pub fn long(&self, symbol: &str, amt: &str) {
        self.sim
            .set_position(symbol, PosSide::Both, dec(amt))
            .unwrap();
    }

    /// Audit entries per client id.
    pub fn orders_per_cid(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for e in self.sim.audit() {
            *m.entry(e.client_order_id).or_default() += 1;
        }
        m
    }

    /// Asserts the sim accepted exactly one order for each id and nothing else.
    pub fn assert_exactly_once(&self, cids: &[&str]) {
        let m = self.orders_per_cid();
        for c in cids {
            assert_eq!(m.get(*c), Some(&1), "audit {:?}", self.sim.audit());
        }
        assert_eq!(m.len(), cids.len(), "audit {:?}", self.sim.audit());
    }

    /// POSTs JSON to a `/sim/...` control endpoint.
    pub async fn control(&self, path: &str, body: Value) {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.sim.rest_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }

    /// A LIMIT GTC order placed directly (HMAC-signed REST, not through the adapter), left
    /// resting: it holds `cid` while open.
    pub async fn resting_limit(&self, symbol: &str, side: &str, qty: &str, price: &str, cid: &str) {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis()
            .to_string();
        let payload = format!(
            "symbol={symbol}&side={side}&type=LIMIT&timeInForce=GTC&quantity={qty}&price={price}&newClientOrderId={cid}&timestamp={ts}"
        );
        let body = format!("{payload}&signature={}", sign(TEST_API_SECRET, &payload));
        let r = reqwest::Client::new()
            .post(format!("{}/fapi/v1/order", self.sim.rest_url()))
            .header("X-MBX-APIKEY", TEST_API_KEY)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }

    pub fn position(&self, symbol: &str) -> quantum_core::fixed::Qty {
        self.sim
            .positions()
            .into_iter()
            .find(|p| p.symbol == symbol)
            .map(|p| qty(&p.position_amt))
            .unwrap_or_default()
    }
}
