//! Command-line flags of `quantum sim binance` and the blocking server loop behind it.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::{ApiKey, Faults, Limits, SimConfig, TEST_API_KEY, TEST_API_SECRET};
use crate::decimal::Dec;
use crate::server::Simulator;

/// Flags of `quantum sim binance`.
#[derive(Clone, Debug, clap::Args)]
pub struct BinanceArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub listen: SocketAddr,
    /// API key clients must send in X-MBX-APIKEY. Defaults to the documented test key
    /// `qsimTESTkey0…0A` (64 characters), which is not a Binance key.
    #[arg(long, default_value = TEST_API_KEY)]
    pub api_key: String,
    /// Secret for --api-key. Defaults to the documented test secret `qsimTESTsecret0…0`.
    #[arg(long, default_value = TEST_API_SECRET)]
    pub api_secret: String,
    /// Another accepted HMAC key, as KEY=SECRET (repeatable).
    #[arg(long = "extra-key", value_name = "KEY=SECRET", value_parser = parse_key)]
    pub extra_keys: Vec<(String, String)>,
    /// An accepted Ed25519 key, as KEY=PUBLIC_KEY_PEM_FILE (repeatable): its signatures are
    /// checked with the registered public key, and it may log WebSocket API sessions on.
    #[arg(long = "ed25519-key", value_name = "KEY=PEM_FILE", value_parser = parse_key)]
    pub ed25519_keys: Vec<(String, String)>,
    /// Starting position, e.g. BTCUSDT=0.010 or ETHUSDT=-1.5 (repeatable).
    #[arg(long = "position", value_name = "SYMBOL=AMT", value_parser = parse_pair)]
    pub positions: Vec<(String, Dec)>,
    /// Mark price, e.g. BTCUSDT=65000.10 (repeatable); MARKET orders fill at it.
    #[arg(long = "mark", value_name = "SYMBOL=PRICE", value_parser = parse_pair)]
    pub marks: Vec<(String, Dec)>,
    /// Hedge (dual-side) position mode: positionSide LONG/SHORT required, reduceOnly refused.
    #[arg(long)]
    pub hedge_mode: bool,
    /// USDT wallet balance.
    #[arg(long, default_value = "100000", value_parser = parse_dec)]
    pub balance: Dec,
    /// Added latency before each request is handled, in ms.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Fraction (0..1) of order placements refused with 503 / -1008 (not placed).
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub error_rate: f64,
    /// Fraction (0..1) of order placements whose connection is closed without an answer.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub drop_rate: f64,
    /// With --drop-rate: close before placing the order (default: after placing it).
    #[arg(long)]
    pub drop_before_place: bool,
    /// Fraction (0..1) of order placements answered 503 "Unknown error" after placing.
    #[arg(long = "ambiguous-503-rate", default_value_t = 0.0, value_parser = parse_rate)]
    pub ambiguous_503_rate: f64,
    /// Fraction (0..1) of order placements placed, then answered --gateway-status with a
    /// gateway's HTML page (no Binance code); the WebSocket API closes the connection instead.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub gateway_after_place_rate: f64,
    /// The status of --gateway-after-place-rate (a 5xx: 502 or 504 as gateways answer).
    #[arg(long, default_value_t = 502)]
    pub gateway_status: u16,
    /// Fraction (0..1) of order placements answered 408 / -1007 (execution status unknown).
    #[arg(long = "timeout-1007-rate", default_value_t = 0.0, value_parser = parse_rate)]
    pub timeout_1007_rate: f64,
    /// Fraction (0..1) of order placements answered 500 / -1006 (execution status unknown).
    #[arg(long = "unexpected-1006-rate", default_value_t = 0.0, value_parser = parse_rate)]
    pub unexpected_1006_rate: f64,
    /// With the -1007 / -1006 rates: answer before placing the order (default: after).
    #[arg(long)]
    pub unknown_before_place: bool,
    /// Orders younger than this many ms are not found by order queries yet (-2013).
    #[arg(long, default_value_t = 0)]
    pub query_lag_ms: u64,
    /// System-level throttling: -1008 for every new order except reduce-only and
    /// close-position orders.
    #[arg(long = "throttle-1008")]
    pub throttle_1008: bool,
    /// Answer every /fapi request with 429.
    #[arg(long)]
    pub force_429: bool,
    /// Answer every /fapi request with 418.
    #[arg(long)]
    pub force_418: bool,
    /// REQUEST_WEIGHT limit per IP per minute.
    #[arg(long, default_value_t = 2400)]
    pub weight_limit: u32,
    /// ORDERS limit per 10 seconds.
    #[arg(long, default_value_t = 300)]
    pub orders_10s_limit: u32,
    /// ORDERS limit per minute.
    #[arg(long, default_value_t = 1200)]
    pub orders_1m_limit: u32,
    /// Ban length after ignoring a 429, in seconds.
    #[arg(long, default_value_t = 120)]
    pub ban_secs: u64,
    /// listenKey lifetime without keepalive, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub listen_key_ttl_secs: u64,
}

fn parse_dec(s: &str) -> Result<Dec, String> {
    Dec::parse(s).map_err(|_| format!("'{s}' is not a plain decimal number"))
}

fn parse_pair(s: &str) -> Result<(String, Dec), String> {
    let (sym, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected SYMBOL=NUMBER such as BTCUSDT=0.010, got '{s}'"))?;
    if sym.is_empty()
        || !sym
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Err(format!("'{sym}' is not a symbol such as BTCUSDT"));
    }
    Ok((sym.to_string(), parse_dec(v)?))
}

fn parse_key(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| "expected KEY=SECRET".to_string())?;
    Ok((k.to_string(), v.to_string()))
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("'{s}' is not a fraction between 0 and 1")),
    }
}

impl BinanceArgs {
    /// The simulator config these flags describe; an Ed25519 key file that cannot be read or
    /// is not an Ed25519 public key is an error naming the file.
    pub fn to_config(&self) -> Result<SimConfig, String> {
        let mut keys = vec![ApiKey::hmac(&self.api_key, &self.api_secret)];
        keys.extend(self.extra_keys.iter().map(|(k, s)| ApiKey::hmac(k, s)));
        for (key, path) in &self.ed25519_keys {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read Ed25519 public key {path}: {e}"))?;
            keys.push(ApiKey::ed25519_pem(key, &pem).map_err(|e| format!("{path}: {e}"))?);
        }
        Ok(SimConfig {
            listen: self.listen,
            keys,
            positions: self.positions.clone(),
            marks: self.marks.clone(),
            hedge_mode: self.hedge_mode,
            balance: self.balance,
            faults: Faults {
                latency_ms: self.latency_ms,
                error_rate: self.error_rate,
                drop_rate: self.drop_rate,
                drop_after_place: !self.drop_before_place,
                ambiguous_503_rate: self.ambiguous_503_rate,
                gateway_after_place_rate: self.gateway_after_place_rate,
                gateway_status: self.gateway_status,
                force_429: self.force_429,
                force_418: self.force_418,
                timeout_1007_rate: self.timeout_1007_rate,
                unexpected_1006_rate: self.unexpected_1006_rate,
                unknown_places: !self.unknown_before_place,
                query_lag_ms: self.query_lag_ms,
                throttle_1008: self.throttle_1008,
                history_failures: 0,
            },
            limits: Limits {
                weight_per_minute: self.weight_limit,
                orders_per_10s: self.orders_10s_limit,
                orders_per_minute: self.orders_1m_limit,
                ban_ms: self.ban_secs * 1000,
            },
            listen_key_ttl: Duration::from_secs(self.listen_key_ttl_secs),
            ..SimConfig::default()
        })
    }
}

/// Starts the simulator, prints its URLs, and serves until SIGINT or SIGTERM.
pub async fn serve(args: BinanceArgs) -> anyhow::Result<()> {
    let config = args.to_config().map_err(anyhow::Error::msg)?;
    let handle = Simulator::start(config).await?;
    println!("binance simulator listening");
    println!("  REST         {}", handle.rest_url());
    println!("  WS API       {}", handle.ws_api_url());
    println!(
        "  user stream  {}/ws?listenKey=<listenKey>&events=…",
        handle.stream_base_url()
    );
    println!(
        "  market       {}",
        handle.market_stream_url(crate::exchange::CONTRACT_INFO_STREAM)
    );
    println!("  audit        {}/sim/orders", handle.rest_url());
    wait_for_signal().await?;
    println!("shutting down");
    handle.shutdown().await;
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

#[cfg(not(unix))]
async fn wait_for_signal() -> anyhow::Result<()> {
    tokio::signal::ctrl_c().await?;
    Ok(())
}
