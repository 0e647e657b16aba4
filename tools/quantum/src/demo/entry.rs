//! The demo's world outside the core: the Binance simulator (in-process, real sockets), the
//! real Binance bridge attached to the demo's instance, and the entry side's own client that
//! re-opens positions with opening MARKET orders.

use std::collections::BTreeMap;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{anyhow, Context, Result};
use quantum_binance::bridge::{self, BridgeConfig};
use quantum_binance::{ClientConfig, Credentials, FuturesClient, NewOrder, Side, Transport};
use quantum_binance_sim::{Dec, Limits, SimConfig, SimHandle, TEST_API_KEY, TEST_API_SECRET};
use quantum_core::Qty;
use tokio::sync::{mpsc, oneshot};

/// Where the entry side is with one symbol.
pub enum Entry {
    /// The feed leaves the symbol alone; waiting for the core to have nothing in flight on it.
    Paused,
    /// The opening order is on its way; its signed filled quantity comes back here. With the
    /// exchange position it was sent at.
    Sent(std_mpsc::Receiver<Result<Qty>>, Qty),
    /// Filled; the ledger sync to this amount is on its way to the core, and the exchange
    /// position the core should see once the bridge reports it.
    Syncing(Qty, Qty),
}

impl Entry {
    /// The opening order's signed filled quantity once answered.
    pub fn filled(&mut self) -> Result<Option<Qty>> {
        match self {
            Entry::Sent(rx, _) => match rx.try_recv() {
                Ok(r) => r.map(Some),
                Err(std_mpsc::TryRecvError::Empty) => Ok(None),
                Err(std_mpsc::TryRecvError::Disconnected) => {
                    Err(anyhow!("the entry side's client stopped"))
                }
            },
            _ => Ok(None),
        }
    }
}

struct Order {
    symbol: String,
    add: Qty,
    answer: std_mpsc::Sender<Result<Qty>>,
}

/// The simulator and the entry side's client.
pub struct EntrySide {
    sim: Arc<SimHandle>,
    orders: mpsc::UnboundedSender<Order>,
    thread: Option<JoinHandle<()>>,
    /// The simulator's REST base URL.
    pub rest_url: String,
}

/// A running bridge.
pub struct BridgeHandle {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl BridgeHandle {
    /// Detaches the bridge and waits for it.
    pub fn stop(mut self) -> Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(anyhow!("the Binance bridge panicked")),
            None => Ok(()),
        }
    }
}

fn dec(s: &str) -> Result<Dec> {
    Dec::parse(s).map_err(|e| anyhow!("{s} is not a simulator decimal: {e:?}"))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

impl EntrySide {
    /// Starts the simulator with `(symbol, position, mark)` and the entry side's client.
    pub fn start(starts: &[(&str, &str, &str)]) -> Result<EntrySide> {
        let mut cfg = SimConfig::ephemeral();
        // The demo sends thousands of orders a second; Binance's published 300 per 10 s and
        // 1200 per minute would stop it in the first second.
        cfg.limits = Limits {
            weight_per_minute: u32::MAX / 2,
            orders_per_10s: u32::MAX / 2,
            orders_per_minute: u32::MAX / 2,
            ..Limits::default()
        };
        for (name, position, mark) in starts {
            cfg.positions.push((name.to_string(), dec(position)?));
            cfg.marks.push((name.to_string(), dec(mark)?));
        }
        let sim = Arc::new(SimHandle::spawn_in_thread(cfg).context("cannot start the simulator")?);
        let (orders, mut rx) = mpsc::unbounded_channel::<Order>();
        let (ready_tx, ready_rx) = std_mpsc::channel();
        let urls = (sim.rest_url(), sim.ws_api_url(), sim.stream_base_url());
        let thread = std::thread::Builder::new()
            .name("demo-entry-side".into())
            .spawn(move || {
                let rt = match runtime() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let cfg = ClientConfig::local(&urls.0, &urls.1, &urls.2);
                    let creds = Credentials::new(TEST_API_KEY, TEST_API_SECRET);
                    let client = match FuturesClient::connect(cfg, creds).await {
                        Ok(c) => Arc::new(c),
                        Err(e) => {
                            let _ = ready_tx.send(Err(anyhow!(e)));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let mut n = 0u64;
                    while let Some(o) = rx.recv().await {
                        n += 1;
                        let client = client.clone();
                        tokio::spawn(async move {
                            let _ = o.answer.send(open(&client, &o.symbol, o.add, n).await);
                        });
                    }
                });
            })
            .context("cannot start the entry side's thread")?;
        ready_rx
            .recv()
            .map_err(|_| anyhow!("the entry side's thread stopped while starting"))?
            .context("cannot connect the entry side's client to the simulator")?;
        Ok(EntrySide {
            rest_url: sim.rest_url(),
            sim,
            orders,
            thread: Some(thread),
        })
    }

    /// Starts `quantum bridge binance` (the library the command runs) for `instance`, trading
    /// on the simulator through its WebSocket API.
    pub fn start_bridge(&self, instance: &str) -> Result<BridgeHandle> {
        let client = ClientConfig::local(
            &self.sim.rest_url(),
            &self.sim.ws_api_url(),
            &self.sim.stream_base_url(),
        );
        let mut cfg = BridgeConfig::new(instance, client);
        cfg.transport = Transport::WsApi;
        cfg.poll_interval = std::time::Duration::from_secs(1);
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("demo-bridge".into())
            .spawn(move || {
                runtime()?.block_on(bridge::run(
                    cfg,
                    Credentials::new(TEST_API_KEY, TEST_API_SECRET),
                    async {
                        let _ = stopped.await;
                    },
                ))
            })
            .context("cannot start the bridge's thread")?;
        Ok(BridgeHandle {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Sends an opening order of `add` (signed) on `symbol`.
    pub fn open(&self, symbol: &str, add: Qty, at: Qty) -> Result<Entry> {
        let (answer, rx) = std_mpsc::channel();
        self.orders
            .send(Order {
                symbol: symbol.to_string(),
                add,
                answer,
            })
            .map_err(|_| anyhow!("the entry side's client stopped"))?;
        Ok(Entry::Sent(rx, at))
    }

    /// Orders the simulator accepted.
    pub fn accepted(&self) -> usize {
        self.sim.audit().len()
    }

    /// Client order ids the simulator accepted more than once.
    pub fn twice_ordered(&self) -> Vec<(String, usize)> {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for a in self.sim.audit() {
            *seen.entry(a.client_order_id.clone()).or_default() += 1;
        }
        seen.into_iter().filter(|(_, n)| *n > 1).collect()
    }

    /// The simulator's position of `name` (zero when it lists none: flat).
    pub fn position(&self, name: &str) -> Option<Qty> {
        match self
            .sim
            .positions()
            .into_iter()
            .find(|p| p.symbol == name && p.position_side == "BOTH")
        {
            Some(p) => p.position_amt.parse().ok(),
            None => Some(Qty::ZERO),
        }
    }

    /// Stops the client and the simulator.
    pub fn stop(mut self) {
        drop(self.orders);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Ok(sim) = Arc::try_unwrap(self.sim) {
            sim.shutdown_blocking();
        }
    }
}

/// One opening MARKET order; its signed filled quantity.
async fn open(client: &FuturesClient, symbol: &str, add: Qty, n: u64) -> Result<Qty> {
    let side = if add.units() > 0 {
        Side::Buy
    } else {
        Side::Sell
    };
    let (_, quantity) = client
        .filters(symbol)?
        .market_qty(add.abs())
        .map_err(|e| anyhow!("entry order on {symbol}: {e:?}"))?;
    let order = NewOrder {
        symbol: symbol.to_string(),
        side,
        quantity,
        position_side: quantum_binance::PositionSide::Both,
        reduce_only: false,
        client_order_id: format!("entry-{n}"),
    };
    let o = client.place_once_only(Transport::WsApi, &order).await?;
    Ok(Qty::from_units(side.sign() * o.executed_qty.units()))
}
