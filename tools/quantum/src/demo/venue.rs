//! The demo's exchange: the Binance USD-M simulator, in-process but over real sockets, reached
//! through the Binance adapter's client (WebSocket API orders, never sent twice).
//!
//! Every order result comes back to the core as the commands an exchange adapter sends: a
//! position snapshot and the fill (and the unfilled remainder, if any). When an exit leaves too
//! little to trade, the entry side of the trading system (outside the core) re-opens the
//! position with an opening MARKET order on the simulator, whose fill is booked in the ledger.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{anyhow, Context, Result};
use crossbeam::channel::{self, Receiver, Sender};
use quantum_binance::{ClientConfig, Credentials, FuturesClient, NewOrder, Transport};
use quantum_binance_sim::{Dec, Limits, SimConfig, SimHandle, TEST_API_KEY, TEST_API_SECRET};
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

/// What the venue reports back about one order.
pub struct Event {
    /// True for an exit ordered by the core, false for an opening order of the entry side.
    pub exit: bool,
    /// Commands for the core, in order.
    pub commands: Vec<Command>,
    /// Why the order was refused, as the adapter names it.
    pub refused: Option<String>,
    /// The answer made the entry side send an opening order (answered by a later event).
    pub entry_started: bool,
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
        let books: BTreeMap<SymbolId, Book> = starts
            .iter()
            .map(|s| {
                let b = Book {
                    position: s.position,
                    target: s.position,
                    step: s.step,
                    reopening: false,
                };
                (s.symbol, b)
            })
            .collect();
        let urls = (sim.rest_url(), sim.ws_api_url(), sim.stream_base_url());
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
                    trade(Arc::new(client), rx, tx, names, books).await;
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

/// The adapter's view of one symbol's position.
struct Book {
    position: Qty,
    /// Size the entry side re-opens to.
    target: Qty,
    step: Qty,
    /// An opening order is on its way.
    reopening: bool,
}

enum Done {
    /// An exit ordered by the core.
    Exit(OrderIntent, quantum_binance::Result<quantum_binance::Order>),
    /// An opening order of the entry side.
    Entry(
        SymbolId,
        Side,
        quantum_binance::Result<quantum_binance::Order>,
    ),
}

fn venue_side(s: Side) -> quantum_binance::Side {
    match s {
        Side::Buy => quantum_binance::Side::Buy,
        Side::Sell => quantum_binance::Side::Sell,
    }
}

async fn trade(
    client: Arc<FuturesClient>,
    mut orders: mpsc::UnboundedReceiver<OrderIntent>,
    events: Sender<Event>,
    names: Vec<String>,
    mut books: BTreeMap<SymbolId, Book>,
) {
    let (done_tx, mut done) = mpsc::unbounded_channel::<Done>();
    let mut open = true;
    let mut in_flight = 0usize;
    let mut entries = 0u64;
    while open || in_flight > 0 {
        tokio::select! {
            o = orders.recv(), if open => match o {
                Some(o) => {
                    in_flight += 1;
                    let (client, done_tx) = (client.clone(), done_tx.clone());
                    let name = names[o.symbol.index()].clone();
                    tokio::spawn(async move {
                        let r = client
                            .place_market_reduce_only_via(
                                Transport::WsApi,
                                &name,
                                venue_side(o.side),
                                o.qty,
                                o.client_order_id().as_str(),
                            )
                            .await;
                        let _ = done_tx.send(Done::Exit(o, r));
                    });
                }
                None => open = false,
            },
            Some(d) = done.recv() => {
                in_flight -= 1;
                let (s, exit, cmds, rejected) = match d {
                    Done::Exit(o, r) => {
                        let Some(book) = books.get_mut(&o.symbol) else { continue };
                        let (cmds, rejected) = settle_exit(o, r, book);
                        (o.symbol, true, cmds, rejected)
                    }
                    Done::Entry(s, side, r) => {
                        let Some(book) = books.get_mut(&s) else { continue };
                        book.reopening = false;
                        let mut cmds = Vec::new();
                        if let Ok(order) = &r {
                            let q = order.executed_qty;
                            book.position = Qty::from_units(book.position.units() + side.sign() * q.units());
                            cmds.push(Command::Position { symbol: s, amount: book.position, mark: Price::ZERO });
                            cmds.push(Command::Fill { symbol: s, side, qty: q, plan: None });
                        }
                        (s, false, cmds, r.err().map(|e| e.to_string()))
                    }
                };
                // The entry side re-opens once less than four lots are left.
                let mut entry_started = false;
                if let Some(book) = books.get_mut(&s) {
                    if !book.reopening && book.position.abs().units() < 4 * book.step.units() {
                        let add = Qty::from_units(book.target.units() - book.position.units());
                        let side = if add.units() > 0 { Side::Buy } else { Side::Sell };
                        let name = names[s.index()].clone();
                        if let Ok((_, quantity)) = client.filters(&name).and_then(|f| {
                            f.market_qty(add.abs()).map_err(|source| quantum_binance::Error::Quantity { symbol: name.clone(), source })
                        }) {
                            entries += 1;
                            entry_started = true;
                            book.reopening = true;
                            in_flight += 1;
                            let order = NewOrder {
                                symbol: name,
                                side: venue_side(side),
                                quantity,
                                reduce_only: false,
                                client_order_id: format!("entry-{entries}"),
                            };
                            let (client, done_tx) = (client.clone(), done_tx.clone());
                            tokio::spawn(async move {
                                let r = client.place_once_only(Transport::WsApi, &order).await;
                                let _ = done_tx.send(Done::Entry(s, side, r));
                            });
                        }
                    }
                }
                let ev = Event { exit, commands: cmds, refused: rejected, entry_started };
                if events.send(ev).is_err() {
                    return;
                }
            }
        }
    }
}

/// Turns one exit's result into the commands the core must see; `Some(reason)` if refused.
fn settle_exit(
    o: OrderIntent,
    r: quantum_binance::Result<quantum_binance::Order>,
    book: &mut Book,
) -> (Vec<Command>, Option<String>) {
    let s = o.symbol;
    let mut cmds = Vec::with_capacity(3);
    let filled = r.as_ref().map_or(Qty::ZERO, |order| order.executed_qty);
    if !filled.is_zero() {
        book.position = Qty::from_units(book.position.units() + o.side.sign() * filled.units());
        cmds.push(Command::Position {
            symbol: s,
            amount: book.position,
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
    (cmds, r.err().map(|e| e.to_string()))
}
