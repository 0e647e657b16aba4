//! Order round trip adapter → simulator → adapter, REST and WebSocket API, in one process.
//!
//! `cargo run --release -p quantum-bench --example binance_latency -- [orders]` (default 2000 each).
//! Every order is a reduce-only MARKET with `newOrderRespType=RESULT`; the time recorded is
//! from the call to the parsed FILLED answer, one order at a time (closed loop).

use std::time::Instant;

use hdrhistogram::Histogram;
use quantum_binance::{ClientConfig, Credentials, FuturesClient, PositionSide, Side, Transport};
use quantum_binance_sim::{
    Dec, Limits, PosSide, SimConfig, Simulator, TEST_API_KEY, TEST_API_SECRET,
};

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(n))
}

async fn run(n: usize) -> anyhow::Result<()> {
    let mut cfg = SimConfig::ephemeral();
    // Published limits would stop 4,000 orders in a minute; the bench measures latency only.
    cfg.limits = Limits {
        weight_per_minute: 1_000_000,
        orders_per_10s: 1_000_000,
        orders_per_minute: 1_000_000,
        ..Limits::default()
    };
    let sim = Simulator::start(cfg).await?;
    sim.set_position(
        "BTCUSDT",
        PosSide::Both,
        Dec::parse("100").map_err(|e| anyhow::anyhow!("{e:?}"))?,
    )
    .map_err(anyhow::Error::msg)?;
    let ccfg = ClientConfig::local(&sim.rest_url(), &sim.ws_api_url(), &sim.stream_base_url());
    let client =
        FuturesClient::connect(ccfg, Credentials::new(TEST_API_KEY, TEST_API_SECRET)).await?;
    client.ws_api().connect().await?;
    let q = "0.001".parse()?;
    println!("{n} reduce-only MARKET orders per transport, one at a time, in-process simulator");
    for (t, name) in [(Transport::Rest, "REST"), (Transport::WsApi, "WS API")] {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        // Warm-up: connections, caches.
        for i in 0..50 {
            client
                .place_market_close(
                    t,
                    "BTCUSDT",
                    PositionSide::Both,
                    Side::Sell,
                    q,
                    &format!("w-{name}-{i}").replace(' ', ""),
                )
                .await?;
        }
        for i in 0..n {
            let cid = format!("b-{}-{i}", if t == Transport::Rest { "r" } else { "w" });
            let start = Instant::now();
            let o = client
                .place_market_close(t, "BTCUSDT", PositionSide::Both, Side::Sell, q, &cid)
                .await?;
            h.record(start.elapsed().as_micros() as u64)?;
            assert_eq!(o.status, "FILLED");
        }
        println!(
            "{name:7} p50 {:>6} us  p90 {:>6} us  p99 {:>6} us  p99.9 {:>6} us  max {:>6} us",
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max()
        );
    }
    sim.shutdown().await;
    Ok(())
}
