//! The bridge between the core's rings and Binance.
//!
//! ```text
//!  quantum.<instance>.orders ──OrderIntent──> [ring thread] ──> order tasks ──REST/WS API──> Binance
//!  quantum.<instance>.exchange <──[writer thread]<── OrderSent, OrderReport, OrderFailed,
//!                                                    PositionSnapshot, SymbolFilters,
//!                                                    SymbolStatus, AccountMode, OrderHistory
//!                                                     ^ user data stream, positionRisk polling,
//!                                                       positionSide/dual, exchangeInfo and
//!                                                       !contractInfo, allOrders at each attach
//! ```
//!
//! The bridge interprets nothing about an order's lifecycle: the core's engine owns it. The
//! bridge reports what it did and what Binance says, as cumulative facts, so a report repeated
//! (the order answer and the user stream both confirm a fill) changes nothing in the core:
//! - `OrderSent` just before a request goes out;
//! - `OrderReport` for every state of one of our orders it sees (the order answer, each
//!   `ORDER_TRADE_UPDATE`, a lookup): status, cumulative filled quantity, price, order id;
//! - `OrderFailed`: `rejected` (Binance refused it; nothing placed), `unknown` (timeout, dropped
//!   connection, a 5xx or any answer that does not prove a refusal: it may exist), `not_found` (a lookup by client id found nothing
//!   after the request could no longer be accepted), `unsent` (the bridge did not send it, and
//!   why). Every intent ends in at least one of these: none is ever dropped silently.
//!
//! An intent marked "look up first" (offered again after a restart or a re-attach) is looked
//! up by client order id before anything is sent: found, its state is reported; not found
//! after the recvWindow has passed, it is sent. Intents for one plan are handled one at a time.
//!
//! Each id of the symbol directory (`quantum.<instance>.counters`) is one *leg*
//! ([`SymbolDirectory`]): a one-way symbol's `BOTH` position (`BTCUSDT`), or the `LONG` or
//! `SHORT` position of a hedge-mode symbol (`BTCUSDT:LONG`, `BTCUSDT:SHORT`). Whatever Binance
//! says about a symbol goes to the leg its `positionSide` / `ps` names; an intent for a hedge
//! leg is sent with that `positionSide` and without `reduceOnly` (Binance refuses it in hedge
//! mode), a `BOTH` leg's reduce-only ([`NewOrder::market_close`]).
//!
//! At start, in this order: each leg's filters (`SymbolFilters`) and its symbol's contract
//! status (`SymbolStatus`, [`account`]); the account's position mode (`AccountMode`, read from
//! `GET /fapi/v1/positionSide/dual` until Binance answers: never assumed); each leg's position
//! (`PositionSnapshot`; a leg positionRisk does not list is flat); then the order history.
//! The mode and the positions are read again, in that order, at every reconnect of the user
//! data stream and every re-attach to a restarted daemon. Every `ACCOUNT_UPDATE` sends
//! snapshots of the legs it lists, and positionRisk is polled as a fallback. Fills of orders
//! that are not ours (client ids without our prefix, the exchange's liquidations) reach the
//! core only as position changes, on the leg they moved. Contract statuses are read again
//! every [`BridgeConfig::exchange_info_interval`] and followed on the contract info stream
//! (`!contractInfo`); a change goes to the core for every leg of the symbol.
//!
//! At start and at every re-attach to a restarted daemon the bridge also reads each symbol's
//! order history from Binance ([`history`]): every order of ours created over the last
//! [`HistoryConfig::horizon`] goes to the core as an `OrderReport` with source `history`,
//! then an `OrderHistory` says the symbol's history is complete. A core that lost its journal
//! learns from it which plans were already ordered.
//!
//! With failover on in the daemon (its counters' gauge `failover.enabled` = 1 when the bridge
//! attaches; [`Failover`]) the bridge also obeys the lease of its host
//! ([`crate::futures::fence`]): every order is signed with recvWindow = min(`--recv-window-ms`,
//! `failover.recv_window_ms`), its timestamp taken before the lease is checked, and sent only
//! while this host may send (waiting out a takeover fence); an intent this host may not send is
//! answered `OrderFailed` kind `unsent` reason `not_leader`, and is not remembered as the
//! plan's end (the same plan may be sent once this host leads). A `Leading` record on `orders`
//! (the core's host took the lead) is answered with every symbol's order history since its
//! `since_ms`, as at an attach. With failover off, none of this applies.
//!
//! The rings are created by the core daemon (`quantum run`); the bridge takes the consumer side
//! of `orders` and the producer side of `exchange`.

mod account;
mod failover;
mod history;
mod io;
pub mod latency;
mod symbols;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use quantum_core::bounded::{FifoMap, FifoSet};
use quantum_core::fixed::{Price, Qty};
use quantum_core::types::{ClientOrderId, PlanId};
use quantum_ipc::codes::{
    FailKind, OrderStatus, PositionSide, ReportSource, UnknownReason, UnsentReason,
};
use quantum_ipc::failpoint::{self, Point};
use quantum_ipc::wire::{self, Message};
use tokio::sync::mpsc;

use crate::common::sign::Credentials;
use crate::config::ClientConfig;
use crate::futures::client::{FuturesClient, Transport};
use crate::futures::fence::{Fence, Verdict};
use crate::futures::models::{NewOrder, Order, Side};
use crate::futures::outcome::{FoundBy, Pending, Placement, Resolution, SentAt};
use crate::futures::trades::TradeTally;
use crate::futures::user_stream::{OrderUpdate, TradeLite, UserEvent, UserStream};

pub use failover::Failover;
pub use history::HistoryConfig;
pub use io::{EXCHANGE_RING, ORDERS_RING};
pub use latency::LatencyConfig;

/// How many recently sent plans a bridge process remembers.
const SENT_MEMORY: usize = 100_000;

pub use symbols::SymbolDirectory;

/// Bridge settings.
#[derive(Clone, Debug)]
pub struct BridgeConfig {
    /// `quantum run` instance whose rings and counters to attach.
    pub instance: String,
    /// Client settings (URLs, recvWindow, limits).
    pub client: ClientConfig,
    /// How orders are sent.
    pub transport: Transport,
    /// positionRisk polling interval (fallback to the user data stream).
    pub poll_interval: Duration,
    /// listenKey keepalive interval (Binance: the key lives 60 min).
    pub keepalive_interval: Duration,
    /// Server time re-sync interval.
    pub time_sync_interval: Duration,
    /// How long to wait for the daemon's rings and counters at start.
    pub attach_timeout: Duration,
    /// The order history read at every attach.
    pub history: HistoryConfig,
    /// The exchange leg's live latency ([`latency`]): its interval log and interval.
    pub latency: LatencyConfig,
    /// How often `exchangeInfo` is read again for the symbols' contract statuses (and
    /// filters), besides the contract info stream.
    pub exchange_info_interval: Duration,
}

impl BridgeConfig {
    /// Defaults for `instance` and `client`.
    pub fn new(instance: &str, client: ClientConfig) -> BridgeConfig {
        BridgeConfig {
            instance: instance.to_owned(),
            client,
            transport: Transport::Rest,
            poll_interval: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(30 * 60),
            time_sync_interval: Duration::from_secs(300),
            attach_timeout: Duration::from_secs(30),
            history: HistoryConfig::default(),
            latency: LatencyConfig::default(),
            exchange_info_interval: Duration::from_secs(60),
        }
    }
}

/// Shared by the bridge's tasks.
struct Ctx {
    client: FuturesClient,
    symbols: SymbolDirectory,
    out: io::Out,
    marks: Mutex<std::collections::HashMap<u16, Price>>,
    /// Plans with an intent being handled now: a second intent for one waits for the first.
    busy: Mutex<HashSet<u64>>,
    /// Plans this process has sent an order for (the most recent [`SENT_MEMORY`]): a second
    /// intent for one is looked up, never sent blindly (Binance takes a client id again once
    /// the first order is filled).
    sent: Mutex<FifoSet<u64>>,
    /// Trades counted per order id, so a fill reported by `TRADE_LITE` is not counted again.
    trades: Mutex<TradeTally>,
    /// The last report of each plan whose order ended, as sent (the most recent
    /// [`SENT_MEMORY`]): an intent offered again for such a plan gets that report again, and
    /// nothing is sent.
    finals: Mutex<FifoMap<u64, Message>>,
    transport: Transport,
    /// The exchange leg's live latency.
    timing: latency::Timing,
    /// The account's position mode and the symbols' contract statuses as last told to the
    /// core ([`account`]).
    account: account::Account,
    /// The leg each plan this process sent went to (the most recent [`SENT_MEMORY`]): a
    /// `TRADE_LITE`, which carries no position side, is reported there.
    plan_legs: Mutex<FifoMap<u64, u16>>,
}

/// Completes at the first SIGINT (Ctrl-C) or SIGTERM (`systemctl stop`, `kill`): the
/// `shutdown` of [`run`] for the command line, so both detach the bridge cleanly (its ring
/// roles are released and the daemon logs "peer detached"). The handlers stay installed, so a
/// second signal while stopping is ignored, as a second Ctrl-C always was. Elsewhere than Unix
/// only Ctrl-C is watched; if the SIGTERM handler cannot be installed, SIGTERM keeps its
/// default action (exit without detaching) and a warning says so.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
                    _ = term.recv() => tracing::info!("SIGTERM: stopping"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops the bridge cleanly");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs the bridge until `shutdown` completes or a fatal error.
pub async fn run(
    cfg: BridgeConfig,
    creds: Credentials,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut cfg = cfg;
    let symbols = SymbolDirectory::attach(&cfg.instance, cfg.attach_timeout).await?;
    let failover = Failover::read(&cfg.instance)?;
    cfg.client.recv_window_ms = Failover::recv_window(failover.as_ref(), cfg.client.recv_window_ms);
    let reattached = io::Reattached::default();
    let (out, writer) =
        io::Out::start(&cfg.instance, cfg.attach_timeout, reattached.clone()).await?;
    let (intents_tx, mut intents) = mpsc::channel(1024);
    let reader = io::start_reader(
        &cfg.instance,
        cfg.attach_timeout,
        intents_tx,
        reattached.clone(),
    )
    .await?;
    let mut client = FuturesClient::connect(cfg.client.clone(), creds).await?;
    if failover.is_some() {
        client = client.with_fence(Arc::new(Fence::new(&cfg.instance)));
    }
    let timing = latency::Timing::start(&cfg.instance, cfg.transport, &cfg.latency, SENT_MEMORY)?;
    let live = timing.live().clone();
    if let Some(p) = &cfg.latency.hdr_log {
        tracing::info!(
            file = %p.display(), interval_ms = cfg.latency.interval.as_millis() as u64,
            "exchange leg latency interval log"
        );
    }
    let ctx = Arc::new(Ctx {
        client,
        symbols,
        out,
        marks: Default::default(),
        busy: Default::default(),
        sent: Mutex::new(FifoSet::new(SENT_MEMORY)),
        trades: Mutex::new(TradeTally::new(SENT_MEMORY)),
        finals: Mutex::new(FifoMap::new(SENT_MEMORY)),
        transport: cfg.transport,
        timing,
        account: account::Account::default(),
        plan_legs: Mutex::new(FifoMap::new(SENT_MEMORY)),
    });
    tracing::info!(
        instance = %cfg.instance, symbols = ctx.symbols.len(),
        recv_window_ms = cfg.client.recv_window_ms, failover = failover.is_some(),
        "binance bridge attached"
    );
    if failover.is_some() {
        tracing::info!(
            instance = %cfg.instance, recv_window_ms = cfg.client.recv_window_ms,
            "failover on: every order is signed with this recvWindow and sent only while this host leads (lease {})",
            quantum_ipc::lease::LEASE_SEGMENT
        );
    }
    send_filters(&ctx);
    account::send_statuses(&ctx, true);
    account::sync(&ctx, "start").await;
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(account::refresh_loop(
        ctx.clone(),
        cfg.exchange_info_interval,
    ));
    tasks.spawn(account::contract_info_loop(
        ctx.clone(),
        cfg.exchange_info_interval,
    ));
    tasks.spawn(user_stream_loop(ctx.clone(), cfg.keepalive_interval));
    tasks.spawn(poll_loop(
        ctx.clone(),
        cfg.poll_interval,
        cfg.time_sync_interval,
    ));
    let (leading_tx, leading) = mpsc::unbounded_channel();
    tasks.spawn(resync_on_reattach(
        ctx.clone(),
        reattached,
        leading,
        cfg.history,
        failover,
        cfg.instance.clone(),
    ));
    let orders = async {
        while let Some(inbound) = intents.recv().await {
            match inbound {
                io::Inbound::Intent(intent, read_at) => {
                    let ctx = ctx.clone();
                    tokio::spawn(async move { handle_intent(&ctx, intent, read_at).await });
                }
                io::Inbound::Leading(l) => {
                    tracing::info!(
                        epoch = l.epoch, since_ms = l.since_ms, at_ms = l.at_ms,
                        "the core's host took the lead: reading every symbol's order history since since_ms"
                    );
                    if leading_tx.send(l).is_err() {
                        tracing::error!(
                            "the history task stopped; the lead's history request is not answered"
                        );
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = shutdown => {}
        _ = orders => tracing::warn!("orders ring reader stopped"),
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    reader.stop();
    drop(ctx);
    writer.stop();
    // The last interval goes to the log now, unless an order task still runs: then when the
    // last one ends (the recorder writes it when it is dropped).
    if let Ok(mut live) = Arc::try_unwrap(live) {
        if let Err(e) = live.stop() {
            tracing::warn!(error = %e, "the exchange leg's latency log is incomplete");
        }
    }
    Ok(())
}

/// Every leg's filters (its symbol's).
fn send_filters(ctx: &Ctx) {
    for (id, name, _) in ctx.symbols.legs() {
        match ctx.client.filters(name) {
            Ok(f) => ctx.out.send(Message::SymbolFilters(wire::SymbolFilters {
                symbol: id,
                min_qty: f.min_qty.units(),
                max_qty: f.max_qty.units(),
                step: f.step.units(),
                market_min_qty: f.market_min_qty.units(),
                market_max_qty: f.market_max_qty.units(),
                market_step: f.market_step.units(),
                min_notional: f.min_notional.units(),
            })),
            Err(e) => {
                tracing::warn!(symbol = %name, error = %e, "no filters for a directory symbol")
            }
        }
    }
}

fn snapshot(ctx: &Ctx, id: u16, amount: Qty, mark: Option<Price>, time_ms: u64) {
    let mark = {
        let mut marks = ctx.marks.lock();
        if let Some(m) = mark.filter(|m| m.units() > 0) {
            marks.insert(id, m);
        }
        marks.get(&id).copied()
    };
    let Some(mark) = mark else {
        tracing::debug!(
            symbol = id,
            "no mark price yet; snapshot deferred to the next poll"
        );
        return;
    };
    ctx.out
        .send(Message::PositionSnapshot(wire::PositionSnapshot {
            symbol: id,
            amount: amount.units(),
            mark_price: mark.units(),
            exchange_time_ms: time_ms,
        }));
}

/// positionRisk (v3, flat symbols added) → one snapshot per leg: the row of the leg's
/// `positionSide` (a `SHORT` leg's amount negative, as Binance gives it); a leg without a row
/// is flat. Call it with the account's lock held ([`account::Account::mode`]): positions go to
/// the core after the mode they belong to.
async fn poll_positions(ctx: &Ctx) -> crate::Result<()> {
    // issue-12: positionRisk v3 (v2 is deprecated); `positions` adds the flat symbols v3
    // leaves out.
    let rows = ctx.client.positions(&ctx.symbols.symbols()).await?;
    let now = ctx.client.clock().now_ms().max(1) as u64;
    for (id, name, side) in ctx.symbols.legs() {
        let of_symbol: Vec<_> = rows.iter().filter(|r| r.symbol == name).collect();
        if of_symbol.is_empty() {
            continue;
        }
        let row = of_symbol
            .iter()
            .find(|r| PositionSide::parse(&r.position_side) == Some(side));
        let mark = row
            .map(|r| r.mark_price)
            .into_iter()
            .chain(of_symbol.iter().map(|r| r.mark_price))
            .find(|m| m.units() > 0);
        match row {
            Some(r) => snapshot(ctx, id, r.position_amt, mark, r.update_time.max(1)),
            None => snapshot(ctx, id, Qty::ZERO, mark, now),
        }
    }
    Ok(())
}

async fn poll_loop(ctx: Arc<Ctx>, every: Duration, time_sync: Duration) {
    let mut poll = tokio::time::interval(every);
    let mut sync = tokio::time::interval(time_sync);
    poll.tick().await;
    sync.tick().await;
    loop {
        tokio::select! {
            _ = poll.tick() => {
                // Not before the account's mode went out (it is being read again meanwhile).
                let mode = ctx.account.mode.lock().await;
                if mode.is_some() {
                    if let Err(e) = poll_positions(&ctx).await {
                        tracing::warn!(error = %e, "positionRisk poll failed");
                    }
                }
            }
            _ = sync.tick() => {
                if let Err(e) = ctx.client.sync_time().await {
                    tracing::warn!(error = %e, "server time sync failed");
                }
            }
        }
    }
}

/// Reads the order history for the core that is attached now, and again for each restarted
/// daemon. A restarted daemon knows nothing the bridge sent its predecessor: filters, contract
/// statuses, the account's position mode and the positions go again at once (every symbol
/// reconciles until a fresh position arrives), then the history, read anew (a read still running for the previous daemon is dropped). Each
/// `Leading` request of the core gets a read from its `since_ms` (a newer request replaces a
/// read still running for an older one; an attach's read goes on beside it).
async fn resync_on_reattach(
    ctx: Arc<Ctx>,
    reattached: io::Reattached,
    mut leading: mpsc::UnboundedReceiver<wire::Leading>,
    h: HistoryConfig,
    failover: Option<Failover>,
    instance: String,
) {
    use history::{Recovery, Since};
    let mut _recovery = Recovery::start(ctx.clone(), h, Since::Horizon);
    let mut _lead: Option<Recovery> = None;
    loop {
        tokio::select! {
            _ = reattached.notified() => {
                send_filters(&ctx);
                account::send_statuses(&ctx, true);
                account::sync(&ctx, "re-attached to a restarted daemon").await;
                match Failover::read(&instance) {
                    Ok(now) if now.is_some() != failover.is_some() => tracing::error!(
                        started = failover.is_some(), now = now.is_some(),
                        "the restarted daemon's failover setting differs from the one this bridge attached with: restart the bridge"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot read the restarted daemon's failover settings"),
                }
                // The reads for the previous daemon end first; this daemon gets one of its own.
                drop(_recovery);
                _lead = None;
                _recovery = Recovery::start(ctx.clone(), h, Since::Horizon);
            }
            Some(l) = leading.recv() => {
                _lead = None;
                _lead = Some(Recovery::start(ctx.clone(), h, Since::At(l.since_ms)));
            }
        }
    }
}

async fn user_stream_loop(ctx: Arc<Ctx>, keepalive: Duration) {
    let mut pause = Duration::from_millis(200);
    let mut connected_before = false;
    loop {
        let stream = async {
            let key = ctx.client.http().listen_key_create().await?;
            // issue-12: the routed private endpoint; the stream also feeds the client's
            // confirmations registry.
            ctx.client.user_stream(&key).await
        };
        match stream.await {
            Ok(mut s) => {
                pause = Duration::from_millis(200);
                if connected_before {
                    // The account may have changed while the stream was down: its mode (read
                    // again, never assumed), then the positions.
                    account::sync(&ctx, "user data stream reconnected").await;
                } else {
                    // The mode went out at start; positions may have moved since.
                    let _mode = ctx.account.mode.lock().await;
                    if let Err(e) = poll_positions(&ctx).await {
                        tracing::warn!(error = %e, "positionRisk after connecting failed");
                    }
                }
                connected_before = true;
                read_stream(&ctx, &mut s, keepalive).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "user data stream unavailable; positionRisk polling covers")
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

async fn read_stream(ctx: &Ctx, s: &mut UserStream, keepalive: Duration) {
    let mut ka = tokio::time::interval(keepalive);
    ka.tick().await;
    loop {
        tokio::select! {
            ev = s.next() => match ev {
                None => return,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "user data stream error");
                    if !matches!(e, crate::Error::Decode { .. } | crate::Error::Field { .. }) {
                        return;
                    }
                }
                Some(Ok(UserEvent::ListenKeyExpired { .. })) => {
                    tracing::info!("listenKey expired; reconnecting with a new key");
                    return;
                }
                Some(Ok(ev)) => on_event(ctx, ev),
            },
            _ = ka.tick() => {
                if let Err(e) = ctx.client.http().listen_key_keepalive().await {
                    tracing::warn!(error = %e, "listenKey keepalive failed; reconnecting");
                    return;
                }
            }
        }
    }
}

fn on_event(ctx: &Ctx, ev: UserEvent) {
    match ev {
        UserEvent::AccountUpdate(a) => {
            // Each position on its leg (symbol, ps); exchange-generated closes (liquidation,
            // ADL, settlement) included, on the leg they moved.
            for p in a.positions {
                if let Some(id) = ctx.symbols.leg_id(&p.symbol, p.position_side) {
                    snapshot(ctx, id, p.amount, None, a.event_time.max(1));
                }
            }
        }
        UserEvent::OrderTradeUpdate(o) => {
            if o.trade_id != 0 {
                // Counted, so a TRADE_LITE arriving late for it reports nothing new.
                let mut t = ctx.trades.lock();
                t.record(o.order_id, o.trade_id, o.last_qty);
                if OrderStatus::parse(&o.status).is_some_and(OrderStatus::is_final) {
                    t.forget(o.order_id);
                }
            }
            stream_report(ctx, &o)
        }
        UserEvent::TradeLite(t) => trade_lite(ctx, &t),
        _ => {}
    }
}

/// A `TRADE_LITE` of one of our orders: the fill, sooner than its `ORDER_TRADE_UPDATE`.
fn trade_lite(ctx: &Ctx, t: &TradeLite) {
    let Some(plan) = ClientOrderId::plan(&t.client_order_id) else {
        return;
    };
    // No `ps` in a TRADE_LITE: the leg this process sent the plan on, or the symbol's only
    // leg; otherwise its ORDER_TRADE_UPDATE (which names the leg) reports the fill.
    let sent_on = ctx.plan_legs.lock().get(&plan.0).copied();
    let symbol = sent_on.or_else(|| {
        let mut legs = ctx.symbols.legs_of(&t.symbol);
        legs.next().filter(|_| legs.next().is_none())
    });
    let Some(symbol) = symbol else {
        return;
    };
    let cum = ctx.trades.lock().record(t.order_id, t.trade_id, t.last_qty);
    if let Some(cum) = cum {
        ctx.timing.fill_seen(plan.0);
        report(
            ctx,
            plan,
            symbol,
            t.side,
            OrderStatus::PartiallyFilled,
            cum,
            t.last_price,
            t.order_id,
            t.trade_time,
            t.orig_qty,
            ReportSource::Stream,
        );
    }
}

/// An `ORDER_TRADE_UPDATE` of one of our orders, reported as it stands.
fn stream_report(ctx: &Ctx, o: &OrderUpdate) {
    // Only our orders: their client id carries the plan id. Others (the exchange's own
    // liquidations, manual orders) reach the core as position changes only.
    let Some(plan) = ClientOrderId::plan(&o.client_order_id) else {
        return;
    };
    let Some(symbol) = order_leg(ctx, plan, &o.symbol, o.position_side) else {
        return;
    };
    let Some(status) = OrderStatus::parse(&o.status) else {
        tracing::warn!(%plan, status = %o.status, "order status not known to the core; report skipped");
        return;
    };
    if o.cum_qty > Qty::ZERO {
        ctx.timing.fill_seen(plan.0);
    } else if status.is_final() {
        ctx.timing.ended_unfilled(plan.0);
    }
    report(
        ctx,
        plan,
        symbol,
        o.side,
        status,
        o.cum_qty,
        o.last_price.or(o.avg_price),
        o.order_id,
        o.event_time,
        o.orig_qty,
        ReportSource::Stream,
    );
}

/// The leg an order of ours is reported on: the directory's leg of (`symbol`,
/// `position_side`); when the directory has no such leg (the account's mode changed since the
/// order), the leg this process sent the plan on, else the leg a plan for the symbol goes to
/// ([`PositionSide::plan_leg`]), with a warning. `None` when the symbol is not in the
/// directory.
fn order_leg(ctx: &Ctx, plan: PlanId, symbol: &str, position_side: PositionSide) -> Option<u16> {
    if let Some(id) = ctx.symbols.leg_id(symbol, position_side) {
        return Some(id);
    }
    let sent_on = ctx.plan_legs.lock().get(&plan.0).copied();
    let leg = sent_on
        .or_else(|| PositionSide::plan_leg(ctx.symbols.iter(), symbol, Some(position_side)))?;
    tracing::warn!(
        %plan, symbol, position_side = %position_side, leg,
        "an order of ours on a position side this directory has no leg for; reported on the plan's leg"
    );
    Some(leg)
}

/// Sends an `OrderReport`.
#[allow(clippy::too_many_arguments)]
fn report(
    ctx: &Ctx,
    plan: PlanId,
    symbol: u16,
    side: Side,
    status: OrderStatus,
    cum_qty: Qty,
    price: Option<Price>,
    order_id: u64,
    time_ms: u64,
    orig_qty: Qty,
    source: ReportSource,
) {
    send_report(
        ctx,
        Message::OrderReport(wire::OrderReport {
            status,
            symbol,
            side,
            source,
            plan_id: plan.0,
            cum_qty: cum_qty.units(),
            price: price.map_or(0, |p| p.units()),
            order_id,
            time_ms,
            orig_qty: orig_qty.units(),
        }),
    );
}

/// Sends a report about one of our orders, remembering it when it is the order's end.
fn send_report(ctx: &Ctx, m: Message) {
    // The core's definition of an order's end: the same report ends the order there.
    if let Some(end) = quantum_core::wire::order_input(&m).filter(|o| o.ends_order()) {
        ctx.finals.lock().insert(end.plan().0, m);
    }
    ctx.out.send(m);
}

/// Reports an order as Binance answered it (order answer or lookup).
fn report_order(ctx: &Ctx, i: &wire::OrderIntent, o: &Order, source: ReportSource) {
    let Some(status) = OrderStatus::parse(&o.status) else {
        tracing::warn!(plan = %PlanId(i.plan_id), status = %o.status, "order status not known to the core; report skipped");
        return;
    };
    let time = if o.update_time > 0 {
        o.update_time
    } else {
        ctx.client.clock().now_ms() as u64
    };
    let plan = PlanId(i.plan_id);
    let symbol = order_leg(ctx, plan, &o.symbol, o.position_side).unwrap_or(i.symbol);
    report(
        ctx,
        plan,
        symbol,
        o.side,
        status,
        o.executed_qty,
        o.avg_price,
        o.order_id,
        time,
        o.orig_qty,
        source,
    );
}

fn now_ms(ctx: &Ctx) -> u64 {
    ctx.client.clock().now_ms().max(0) as u64
}

fn failure(
    ctx: &Ctx,
    i: &wire::OrderIntent,
    kind: FailKind,
    reason: u16,
    exchange_code: i64,
) -> Message {
    Message::OrderFailed(wire::OrderFailed {
        kind,
        symbol: i.symbol,
        reason,
        plan_id: i.plan_id,
        exchange_code: exchange_code.clamp(i32::MIN.into(), i32::MAX.into()) as i32,
        at_ms: now_ms(ctx),
    })
}

/// Sends an `OrderFailed`.
fn failed(ctx: &Ctx, i: &wire::OrderIntent, kind: FailKind, reason: u16, exchange_code: i64) {
    send_report(ctx, failure(ctx, i, kind, reason, exchange_code));
}

fn unsent(ctx: &Ctx, i: &wire::OrderIntent, why: UnsentReason) {
    tracing::warn!(plan = %PlanId(i.plan_id), reason = %why, "intent not sent");
    failed(ctx, i, FailKind::Unsent, why.code(), 0);
}

/// This host may not send (failover): `unsent` / `not_leader`. Not remembered as the plan's
/// end, since the refusal is about this host's role, not the plan: once the host leads, the
/// plan offered again is sent. The fence logs one line per run of refusals; this one is debug.
fn not_leader(ctx: &Ctx, i: &wire::OrderIntent) {
    tracing::debug!(plan = %PlanId(i.plan_id), "intent not sent: this host does not lead");
    ctx.out.send(failure(
        ctx,
        i,
        FailKind::Unsent,
        UnsentReason::NotLeader.code(),
        0,
    ));
}

/// Marks `plan` busy for the life of the guard; waits while another task has it.
struct Busy<'a> {
    ctx: &'a Ctx,
    plan: u64,
}

impl<'a> Busy<'a> {
    async fn take(ctx: &'a Ctx, plan: u64) -> Busy<'a> {
        loop {
            if ctx.busy.lock().insert(plan) {
                return Busy { ctx, plan };
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.ctx.busy.lock().remove(&self.plan);
    }
}

/// Why an outcome is unknown, in the contract's words.
fn unknown_reason(e: &crate::Error) -> UnknownReason {
    match e {
        crate::Error::Timeout { .. } => UnknownReason::Timeout,
        crate::Error::Api(a) if a.code == -1006 || a.code == -1007 => {
            UnknownReason::ExecutionUnknown
        }
        crate::Error::Api(a) if a.code == -4116 => UnknownReason::DuplicateClientId,
        crate::Error::Api(_) | crate::Error::Redirected { .. } => UnknownReason::Ambiguous,
        _ => UnknownReason::Disconnected,
    }
}

/// Looks `pending` up until Binance answers for sure (lookups that keep failing are retried
/// after a pause; the order stays unknown in the core meanwhile). `Some(order)` when found.
async fn settle(ctx: &Ctx, i: &wire::OrderIntent, pending: &Pending) -> Option<Order> {
    let mut pause = Duration::from_millis(500);
    loop {
        match ctx.client.resolve(pending).await {
            Ok(Resolution::Found { order, by }) => {
                let source = match by {
                    FoundBy::Lookup => ReportSource::Lookup,
                    FoundBy::Stream => ReportSource::Stream,
                };
                report_order(ctx, i, &order, source);
                return Some(order);
            }
            Ok(Resolution::NeverPlaced) => {
                failed(ctx, i, FailKind::NotFound, 0, 0);
                return None;
            }
            Err(e) => {
                tracing::warn!(plan = %PlanId(i.plan_id), error = %e, ?pause, "order still unresolved; looking it up again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Handles one intent, read off the ring at `read_at`; its placement is timed
/// ([`latency`]): one sample per series for an intent this bridge sent.
async fn handle_intent(ctx: &Ctx, i: wire::OrderIntent, read_at: Instant) {
    let _busy = Busy::take(ctx, i.plan_id).await;
    let plan = PlanId(i.plan_id);
    let ended = ctx.finals.lock().get(&i.plan_id).copied();
    if let Some(end) = ended {
        // Offered again (the core restarted, or had not heard the end yet): the end this
        // process already reported is the answer; sending again could only add an order.
        tracing::info!(%plan, "an intent for an order that already ended here: its end is reported again, nothing is sent");
        ctx.out.send(end);
        return;
    }
    let Some((symbol, leg)) = ctx.symbols.leg(i.symbol) else {
        return unsent(ctx, &i, UnsentReason::UnknownSymbol);
    };
    let symbol = symbol.to_owned();
    let filters = match ctx.client.filters(&symbol) {
        Ok(f) => f,
        Err(_) => return unsent(ctx, &i, UnsentReason::UnknownSymbol),
    };
    let quantity = match filters.market_qty(Qty::from_units(i.qty)) {
        Ok((_, s)) => s,
        Err(_) => return unsent(ctx, &i, UnsentReason::Quantity),
    };
    let cid = ClientOrderId::for_plan(plan).as_str().to_owned();
    let order = if i.reduce_only {
        // A `BOTH` leg's exit is reduce-only; a hedge leg's carries its positionSide and no
        // reduceOnly (refused in hedge mode), and only the leg's closing side is sent.
        match NewOrder::market_close(&symbol, leg, i.side, quantity, &cid) {
            Ok(o) => o,
            Err(e) => {
                let reason = e.reject_reason();
                tracing::error!(%plan, error = %e, "intent not sent: it would not reduce its leg");
                return failed(ctx, &i, FailKind::Rejected, reason.code(), 0);
            }
        }
    } else {
        NewOrder {
            symbol: symbol.clone(),
            side: i.side,
            quantity,
            position_side: leg,
            reduce_only: false,
            client_order_id: cid.clone(),
        }
    };
    ctx.plan_legs.lock().insert(i.plan_id, i.symbol);
    let sent_before = ctx.sent.lock().contains(&i.plan_id);
    if sent_before {
        tracing::warn!(%plan, "a second intent for a plan this bridge already sent: looking it up instead of sending");
    }
    if sent_before || i.flags & wire::INTENT_FLAG_LOOKUP_FIRST != 0 {
        // It may have gone out before a crash: look it up before anything is sent. A lost
        // request was sent before now, so once a recvWindow has passed after now, a "does not
        // exist" is final.
        tracing::info!(%plan, "looking the order up by client id before anything is sent");
        let pending = Pending {
            symbol: symbol.clone(),
            client_order_id: cid.clone(),
            sent_at: SentAt::AssumeNow,
        };
        if settle(ctx, &i, &pending).await.is_some() {
            return;
        }
    }
    // Failover: an intent this host may not send gets no `OrderSent`. The fence itself is
    // checked again after the order is signed, right before it leaves.
    if let Some(f) = ctx.client.fence() {
        if matches!(f.check_now(), Verdict::Refuse(_)) {
            return not_leader(ctx, &i);
        }
    }
    let max_sends = ctx.client.config().resolve.max_sends.max(1);
    // The instant the intent's first request left: `send` ends and `ack` starts there.
    let mut first_sent: Option<Instant> = None;
    for attempt in 0..max_sends {
        ctx.sent.lock().insert(i.plan_id);
        ctx.out.send(Message::OrderSent(wire::OrderSent {
            symbol: i.symbol,
            plan_id: i.plan_id,
            at_ms: now_ms(ctx),
        }));
        failpoint::hit(Point::OrderSending);
        ctx.timing.placing(i.plan_id);
        let (placement, sent) = ctx.client.place_stamped(ctx.transport, &order).await;
        let answered_at = Instant::now();
        if let (None, Some(s)) = (first_sent, sent) {
            first_sent = Some(s);
            ctx.timing.sent(read_at, s);
        }
        match placement {
            Placement::Placed(o) => {
                failpoint::hit(Point::OrderPlaced);
                acked(ctx, &i, read_at, first_sent, answered_at, &o);
                return report_order(ctx, &i, &o, ReportSource::Answer);
            }
            Placement::Rejected(crate::Error::NotLeader { .. }) => {
                // Refused by the fence before anything left: this attempt sent nothing.
                if attempt == 0 && !sent_before {
                    ctx.sent.lock().remove(&i.plan_id);
                }
                ctx.timing.unacked(i.plan_id);
                return not_leader(ctx, &i);
            }
            Placement::Rejected(e) => {
                ctx.timing.unacked(i.plan_id);
                let reason = e.reject_reason();
                let code = e.api_code().unwrap_or(0);
                if order.reduce_only && code == -1008 {
                    // Binance exempts reduce-only orders from -1008 throttling: seeing one is
                    // worth a look, but nothing was placed either way.
                    tracing::warn!(%plan, "-1008 (system throttled) on a reduce-only order, which Binance exempts");
                }
                tracing::warn!(%plan, code, %reason, "order rejected");
                return failed(ctx, &i, FailKind::Rejected, reason.code(), code);
            }
            Placement::Unknown(u) => {
                let why = unknown_reason(&u.cause);
                tracing::warn!(%plan, error = %u.cause, reason = %why, "order outcome unknown; looking it up by client id");
                failed(
                    ctx,
                    &i,
                    FailKind::Unknown,
                    why.code(),
                    u.cause.api_code().unwrap_or(0),
                );
                if let Some(o) = settle(ctx, &i, &u.pending).await {
                    // Found (by a look-up or the stream): acknowledged now.
                    acked(ctx, &i, read_at, first_sent, Instant::now(), &o);
                    return;
                }
                // Proven never placed: sending it again (same client id) cannot make a second.
            }
        }
    }
    ctx.timing.unacked(i.plan_id);
    unsent(ctx, &i, UnsentReason::GaveUp);
}

/// `i`'s order was acknowledged at `at` as `o`: the exchange leg's `ack` and `intent`
/// samples, and its `fill` when `o` already reports one.
fn acked(
    ctx: &Ctx,
    i: &wire::OrderIntent,
    read_at: Instant,
    first_sent: Option<Instant>,
    at: Instant,
    o: &Order,
) {
    let is_final = OrderStatus::parse(&o.status).is_some_and(OrderStatus::is_final);
    ctx.timing
        .acked(i.plan_id, read_at, first_sent, at, o.executed_qty, is_final);
}
