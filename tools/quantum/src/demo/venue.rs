//! The demo's exchange: the Binance USD-M simulator, in-process but over real sockets, reached
//! through the Binance adapter's client (WebSocket API orders, never sent twice).
//!
//! Every order result comes back to the core as the commands an exchange adapter sends: a
//! position snapshot and the fill (and the unfilled remainder, if any). When an exit leaves too
//! little to trade, the entry side of the trading system (outside the core) re-opens the
//! position: the demo sets it on the simulator and books the opening fill in the ledger.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{anyhow, Context, Result};
use crossbeam::channel::{self, Receiver, Sender};
use quantum_binance::{ClientConfig, Credentials, FuturesClient, Transport};
use quantum_binance_sim::{
    Dec, Limits, PosSide, SimConfig, SimHandle, TEST_API_KEY, TEST_API_SECRET,
};
use quantum_core::types::Symbols;
use quantum_core::{Command, OrderIntent, Price, Qty, Side, SymbolId};
use tokio::sync::mpsc;

/// One symbol at the start.
pub struct Start {
    /// Symbol.
    pub symbol: SymbolId,
    /// Position the exchange starts with (and the entry side re-opens to).
    pub position: Qty,
    /// Mark price orders fill at.
    pub mark: Price,
    /// Lot step (re-opening happens under four lots).
    pub step: Qty,
}

/// What the venue reports back.
pub enum Event {
    /// Commands for the core, in order.
    Commands(Vec<Command>),
    /// An order was refused; the reason as the adapter names it.
    Rejected(String, Vec<Command>),
}

/// The running simulator and the adapter thread that trades on it.
pub struct Venue {
    orders: mpsc::UnboundedSender<OrderIntent>,
    /// Events back to the feeder.
    pub events: Receiver<Event>,
    sim: Arc<SimHandle>,
    thread: Option<JoinHandle<()>>,
    /// Base URL of the simulator's REST API.
    pub rest_url: String,
}

fn dec(q: impl std::fmt::Display) -> Result<Dec> {
    Dec::parse(&q.to_string()).map_err(|e| anyhow!("{q} is not a simulator decimal: {e:?}"))
}

impl Venue {
    /// Starts the simulator with `starts` and the adapter thread. Call from the thread whose
    /// core the simulator and adapter should share (they inherit its affinity).
    pub fn start(symbols: &Symbols, starts: &[Start]) -> Result<Venue> {
        let mut cfg = SimConfig::ephemeral();
        // The demo sends thousands of orders a second; Binance's published 300 per 10 s and
        // 1200 per minute would stop it in the first second.
        cfg.limits = Limits {
            weight_per_minute: u32::MAX / 2,
            orders_per_10s: u32::MAX / 2,
            orders_per_minute: u32::MAX / 2,
            ..Limits::default()
        };
        for s in starts {
            let name = symbols.name(s.symbol).to_string();
            cfg.positions.push((name.clone(), dec(s.position)?));
            cfg.marks.push((name, dec(s.mark)?));
        }
        let sim = Arc::new(SimHandle::spawn_in_thread(cfg).context("cannot start the simulator")?);
        let (orders, rx) = mpsc::unbounded_channel();
        let (tx, events) = channel::unbounded();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let names: Vec<String> = symbols.names().map(str::to_string).collect();
        let books: BTreeMap<SymbolId, (Qty, Qty, Qty)> = starts
            .iter()
            .map(|s| (s.symbol, (s.position, s.position, s.step)))
            .collect();
        let urls = (sim.rest_url(), sim.ws_api_url(), sim.stream_base_url());
        let sim2 = sim.clone();
        let thread = std::thread::Builder::new()
            .name("demo-venue".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow!(e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    let cfg = ClientConfig::local(&urls.0, &urls.1, &urls.2);
                    let client = match FuturesClient::connect(
                        cfg,
                        Credentials::new(TEST_API_KEY, TEST_API_SECRET),
                    )
                    .await
                    {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = ready_tx.send(Err(anyhow!(e)));
                            return;
                        }
                    };
                    if let Err(e) = client.ws_api().connect().await {
                        let _ = ready_tx.send(Err(anyhow!(e)));
                        return;
                    }
                    let _ = ready_tx.send(Ok(()));
                    trade(Arc::new(client), rx, tx, names, books, sim2).await;
                });
            })
            .context("cannot start the venue thread")?;
        ready_rx
            .recv()
            .map_err(|_| anyhow!("the venue thread stopped while starting"))?
            .context("cannot connect the Binance adapter to the simulator")?;
        let rest_url = sim.rest_url();
        Ok(Venue {
            orders,
            events,
            sim,
            thread: Some(thread),
            rest_url,
        })
    }

    /// Hands an order to the adapter.
    pub fn send(&self, o: OrderIntent) {
        let _ = self.orders.send(o);
    }

    /// Every order the simulator accepted: `(client order id, count)` of ids seen more than once.
    pub fn twice_ordered(&self) -> Vec<(String, usize)> {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for a in self.sim.audit() {
            *seen.entry(a.client_order_id.clone()).or_default() += 1;
        }
        seen.into_iter().filter(|(_, n)| *n > 1).collect()
    }

    /// Number of orders the simulator accepted.
    pub fn accepted(&self) -> usize {
        self.sim.audit().len()
    }

    /// The simulator's position of `name`.
    pub fn position(&self, name: &str) -> Option<Qty> {
        self.sim
            .positions()
            .into_iter()
            .find(|p| p.symbol == name && p.position_side == "BOTH")
            .and_then(|p| p.position_amt.parse().ok())
    }

    /// Stops the adapter and the simulator.
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

type Outcome = (OrderIntent, quantum_binance::Result<quantum_binance::Order>);

async fn trade(
    client: Arc<FuturesClient>,
    mut orders: mpsc::UnboundedReceiver<OrderIntent>,
    events: Sender<Event>,
    names: Vec<String>,
    mut books: BTreeMap<SymbolId, (Qty, Qty, Qty)>,
    sim: Arc<SimHandle>,
) {
    let (done_tx, mut done) = mpsc::unbounded_channel::<Outcome>();
    let mut open = true;
    let mut in_flight = 0usize;
    while open || in_flight > 0 {
        tokio::select! {
            o = orders.recv(), if open => match o {
                Some(o) => {
                    in_flight += 1;
                    let (client, done_tx) = (client.clone(), done_tx.clone());
                    let name = names[o.symbol.index()].clone();
                    tokio::spawn(async move {
                        let side = match o.side {
                            Side::Buy => quantum_binance::Side::Buy,
                            Side::Sell => quantum_binance::Side::Sell,
                        };
                        let r = client
                            .place_market_reduce_only_via(Transport::WsApi, &name, side, o.qty, o.client_order_id.as_str())
                            .await;
                        let _ = done_tx.send((o, r));
                    });
                }
                None => open = false,
            },
            Some((o, r)) = done.recv() => {
                in_flight -= 1;
                let name = &names[o.symbol.index()];
                let Some(book) = books.get_mut(&o.symbol) else { continue };
                let ev = settle(o, r, book, name, &sim);
                if events.send(ev).is_err() {
                    return;
                }
            }
        }
    }
}

/// Turns one order result into the commands the core must see.
fn settle(
    o: OrderIntent,
    r: quantum_binance::Result<quantum_binance::Order>,
    book: &mut (Qty, Qty, Qty),
    name: &str,
    sim: &SimHandle,
) -> Event {
    let (position, target, step) = book;
    let s = o.symbol;
    let mut cmds = Vec::with_capacity(5);
    let filled = match &r {
        Ok(order) => order.executed_qty,
        Err(_) => Qty::ZERO,
    };
    if !filled.is_zero() {
        *position = Qty::from_units(position.units() + o.side.sign() * filled.units());
        cmds.push(Command::Position {
            symbol: s,
            amount: *position,
            mark: Price::ZERO,
        });
        cmds.push(Command::Fill {
            symbol: s,
            side: o.side,
            qty: filled,
            plan: Some(o.plan),
        });
    }
    if filled < o.qty {
        cmds.push(Command::OrderDone {
            symbol: s,
            unfilled: Qty::from_units(o.qty.units() - filled.units()),
        });
    }
    if position.abs().units() < 4 * step.units() {
        let add = Qty::from_units(target.units() - position.units());
        let side = if add.units() > 0 {
            Side::Buy
        } else {
            Side::Sell
        };
        if let Ok(amt) = dec(*target) {
            if sim.set_position(name, PosSide::Both, amt).is_ok() {
                *position = *target;
                cmds.push(Command::Position {
                    symbol: s,
                    amount: *position,
                    mark: Price::ZERO,
                });
                cmds.push(Command::Fill {
                    symbol: s,
                    side,
                    qty: add.abs(),
                    plan: None,
                });
            }
        }
    }
    match r {
        Ok(_) => Event::Commands(cmds),
        Err(e) => Event::Rejected(e.to_string(), cmds),
    }
}
