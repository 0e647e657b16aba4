//! The bridge between the core's rings and Binance.
//!
//! ```text
//!  quantum.<instance>.orders ──OrderIntent──> [ring thread] ──> order tasks ──REST/WS API──> Binance
//!  quantum.<instance>.exchange <──[writer thread]<── Fill, Reject, PositionSnapshot, SymbolFilters
//!                                                     ^ user data stream, positionRisk polling
//! ```
//!
//! At start: the symbol directory (`quantum.<instance>.counters`) gives id ↔ name; each
//! symbol's filters go out as `SymbolFilters` and its position as a `PositionSnapshot`. Then
//! every `ACCOUNT_UPDATE` sends snapshots of the positions it lists, and positionRisk is polled
//! as a fallback. Every intent becomes one order, never sent twice (see
//! [`crate::futures::client`]); its outcome becomes `Fill` records (quantity filled since the
//! last report, whichever of the order answer and the stream says it first) and, when part of
//! it will never fill, one `Reject`: with the [`RejectReason`](crate::RejectReason) code when
//! nothing filled, with [`REJECT_REMAINDER_EXPIRED`] after the fills when the exchange ended the
//! rest (a reduce-only order larger than the position, an expired or cancelled remainder). The
//! core releases exactly the quantity that did not fill either way.
//!
//! The two rings are created by the core daemon (`quantum run`); the bridge takes the
//! consumer side of `orders` and the producer side of `exchange`.

mod fills;
mod io;
mod symbols;

use std::sync::Arc;
use std::time::Duration;

use quantum_core::fixed::{Price, Qty};
use quantum_core::types::{ClientOrderId, PlanId};
use quantum_ipc::wire::{self, Message};
use tokio::sync::mpsc;

use crate::common::sign::Credentials;
use crate::config::ClientConfig;
use crate::futures::client::{FuturesClient, Transport};
use crate::futures::models::{NewOrder, Side};
use crate::futures::user_stream::{UserEvent, UserStream};

pub use fills::FillTracker;
pub use io::{EXCHANGE_RING, ORDERS_RING};
pub use symbols::SymbolDirectory;

/// `Reject::reason` sent after the `Fill`s of an order that filled in part and whose remainder
/// the exchange ended (EXPIRED, CANCELED, ...): the core releases only the unfilled rest. Not a
/// [`RejectReason`](crate::RejectReason) code (those say the order was refused); `quantum run`
/// knows the same number as `convert::REJECT_REMAINDER_EXPIRED`.
pub const REJECT_REMAINDER_EXPIRED: u16 = 1000;

/// Order statuses after which nothing more fills.
fn is_final(status: &str) -> bool {
    matches!(
        status,
        "FILLED" | "CANCELED" | "EXPIRED" | "REJECTED" | "EXPIRED_IN_MATCH"
    )
}

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
        }
    }
}

/// Shared by the bridge's tasks.
struct Ctx {
    client: FuturesClient,
    symbols: SymbolDirectory,
    out: io::Out,
    fills: FillTracker,
    marks: std::sync::Mutex<std::collections::HashMap<u16, Price>>,
    /// Plan ids already ordered by this process: an intent delivered twice is not re-sent.
    seen: std::sync::Mutex<std::collections::HashSet<u64>>,
    transport: Transport,
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
    let symbols = SymbolDirectory::attach(&cfg.instance, cfg.attach_timeout).await?;
    let (out, writer) = io::Out::start(&cfg.instance, cfg.attach_timeout).await?;
    let (intents_tx, mut intents) = mpsc::channel(1024);
    let reader = io::start_reader(&cfg.instance, cfg.attach_timeout, intents_tx).await?;
    let client = FuturesClient::connect(cfg.client.clone(), creds).await?;
    let ctx = Arc::new(Ctx {
        client,
        symbols,
        out,
        fills: FillTracker::new(100_000),
        marks: Default::default(),
        seen: Default::default(),
        transport: cfg.transport,
    });
    tracing::info!(instance = %cfg.instance, symbols = ctx.symbols.len(), "binance bridge attached");
    send_filters(&ctx);
    if let Err(e) = poll_positions(&ctx).await {
        tracing::warn!(error = %e, "initial positionRisk failed; the poller will retry");
    }
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(user_stream_loop(ctx.clone(), cfg.keepalive_interval));
    tasks.spawn(poll_loop(
        ctx.clone(),
        cfg.poll_interval,
        cfg.time_sync_interval,
    ));
    let orders = async {
        while let Some(intent) = intents.recv().await {
            let ctx = ctx.clone();
            tokio::spawn(async move { handle_intent(&ctx, intent).await });
        }
    };
    tokio::select! {
        _ = shutdown => {}
        _ = orders => tracing::warn!("orders ring reader stopped"),
    }
    tasks.abort_all();
    reader.stop();
    drop(ctx);
    writer.stop();
    Ok(())
}

fn send_filters(ctx: &Ctx) {
    for (id, name) in ctx.symbols.iter() {
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
        let mut marks = ctx.marks.lock().unwrap_or_else(|e| e.into_inner());
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

/// positionRisk (v3, flat symbols added) → one snapshot per directory symbol.
async fn poll_positions(ctx: &Ctx) -> crate::Result<()> {
    // issue-12: positionRisk v3 (v2 is deprecated); `positions` adds the flat symbols v3
    // leaves out.
    let names: Vec<&str> = ctx.symbols.iter().map(|(_, n)| n).collect();
    let rows = ctx.client.positions(&names).await?;
    let now = ctx.client.clock().now_ms() as u64;
    for (id, name) in ctx.symbols.iter() {
        // One-way mode: the BOTH leg. Hedge legs are summed (the core tracks a net position).
        let legs: Vec<_> = rows.iter().filter(|r| r.symbol == name).collect();
        if legs.is_empty() {
            continue;
        }
        let amount = legs
            .iter()
            .fold(Qty::ZERO, |a, r| a.checked_add(r.position_amt).unwrap_or(a));
        let time = legs
            .iter()
            .map(|r| r.update_time)
            .max()
            .unwrap_or(now)
            .max(1);
        snapshot(ctx, id, amount, Some(legs[0].mark_price), time);
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
                if let Err(e) = poll_positions(&ctx).await {
                    tracing::warn!(error = %e, "positionRisk poll failed");
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

async fn user_stream_loop(ctx: Arc<Ctx>, keepalive: Duration) {
    let mut pause = Duration::from_millis(200);
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
                // Positions may have moved while the stream was down.
                if let Err(e) = poll_positions(&ctx).await {
                    tracing::warn!(error = %e, "positionRisk after (re)connect failed");
                }
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
            // Hedge legs of one symbol would each overwrite the net amount; one-way mode only.
            for p in a.positions {
                if let Some(id) = ctx.symbols.id(&p.symbol) {
                    snapshot(ctx, id, p.amount, None, a.event_time.max(1));
                }
            }
        }
        UserEvent::OrderTradeUpdate(o) if o.exec_type == "TRADE" || is_final(&o.status) => {
            // A final event without a trade (EXPIRED, CANCELED) carries no last price; its
            // cumulative quantity was reported by the trades before it, else at the average.
            report_fill(
                ctx,
                &o.client_order_id,
                &o.symbol,
                o.side,
                o.order_id,
                o.cum_qty,
                o.last_price.or(o.avg_price),
                o.event_time,
            );
            if is_final(&o.status) {
                let ids = ClientOrderId::plan(&o.client_order_id).zip(ctx.symbols.id(&o.symbol));
                if let Some((plan, id)) = ids {
                    order_ended(ctx, &o.client_order_id, id, plan, o.cum_qty, o.orig_qty);
                }
            }
        }
        _ => {}
    }
}

#[allow(clippy::too_many_arguments)]
fn report_fill(
    ctx: &Ctx,
    cid: &str,
    symbol: &str,
    side: Side,
    order_id: u64,
    cum_qty: Qty,
    price: Option<Price>,
    time_ms: u64,
) {
    // Only our orders: their client id carries the plan id.
    let Some(plan) = ClientOrderId::plan(cid) else {
        return;
    };
    let (Some(id), Some(price)) = (ctx.symbols.id(symbol), price) else {
        return;
    };
    let Some(delta) = ctx.fills.advance(cid, cum_qty) else {
        return;
    };
    ctx.out.send(Message::Fill(wire::Fill {
        side: wire_side(side),
        symbol: id,
        plan_id: plan.0,
        qty: delta.units(),
        price: price.units(),
        order_id,
        time_ms,
    }));
}

fn wire_side(s: Side) -> wire::Side {
    match s {
        Side::Buy => wire::Side::Buy,
        Side::Sell => wire::Side::Sell,
    }
}

/// An order of ours reached a final state. When part of it never filled the core must release
/// that part: a plain `Reject` when nothing filled, [`REJECT_REMAINDER_EXPIRED`] when some did
/// (its `Fill`s are queued before, on the same path). Once per order, whichever of the order
/// answer and the user data stream sees the end first.
fn order_ended(ctx: &Ctx, cid: &str, symbol: u16, plan: PlanId, executed: Qty, orig: Qty) {
    if executed >= orig || !ctx.fills.end(cid) {
        return;
    }
    let reason = if executed.units() > 0 {
        tracing::warn!(%plan, %executed, %orig, "order ended partly filled; the rest is released");
        REJECT_REMAINDER_EXPIRED
    } else {
        tracing::warn!(%plan, "order ended without a fill");
        crate::RejectReason::Other.code()
    };
    ctx.out.send(Message::Reject(wire::Reject {
        symbol,
        exchange_code: 0,
        plan_id: plan.0,
        reason,
    }));
}

fn reject(ctx: &Ctx, i: &wire::OrderIntent, code: i64, reason: crate::RejectReason) {
    let cid = ClientOrderId::for_plan(PlanId(i.plan_id));
    if !ctx.fills.end(cid.as_str()) {
        // Its end was reported already (by the user data stream).
        return;
    }
    tracing::warn!(plan = %PlanId(i.plan_id), code, reason = %reason, "order rejected");
    ctx.out.send(Message::Reject(wire::Reject {
        symbol: i.symbol,
        exchange_code: code.clamp(i32::MIN.into(), i32::MAX.into()) as i32,
        plan_id: i.plan_id,
        reason: reason.code(),
    }));
}

async fn handle_intent(ctx: &Ctx, i: wire::OrderIntent) {
    if !ctx
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(i.plan_id)
    {
        tracing::warn!(plan = %PlanId(i.plan_id), "intent for an already ordered plan ignored");
        return;
    }
    let Some(symbol) = ctx.symbols.name(i.symbol) else {
        return reject(ctx, &i, 0, crate::RejectReason::LocalUnknownSymbol);
    };
    let cid = ClientOrderId::for_plan(PlanId(i.plan_id));
    let side = match i.side {
        wire::Side::Buy => Side::Buy,
        wire::Side::Sell => Side::Sell,
    };
    let filters = match ctx.client.filters(&symbol) {
        Ok(f) => f,
        Err(e) => return reject(ctx, &i, 0, e.reject_reason()),
    };
    let quantity = match filters.market_qty(Qty::from_units(i.qty)) {
        Ok((_, s)) => s,
        Err(_) => return reject(ctx, &i, 0, crate::RejectReason::LocalQuantity),
    };
    let order = NewOrder {
        symbol: symbol.clone(),
        side,
        quantity,
        reduce_only: i.reduce_only,
        client_order_id: cid.as_str().to_owned(),
    };
    match ctx.client.place_once_only(ctx.transport, &order).await {
        Ok(o) => {
            if o.executed_qty.units() > 0 {
                let time = if o.update_time > 0 {
                    o.update_time
                } else {
                    ctx.client.clock().now_ms() as u64
                };
                report_fill(
                    ctx,
                    &o.client_order_id,
                    &symbol,
                    side,
                    o.order_id,
                    o.executed_qty,
                    o.avg_price,
                    time,
                );
            }
            if o.is_final() {
                // Against the intent, not the order: quantizing to the step may have sent less,
                // and that difference will never fill either.
                let (plan, want) = (PlanId(i.plan_id), Qty::from_units(i.qty));
                order_ended(ctx, cid.as_str(), i.symbol, plan, o.executed_qty, want);
            }
            // NEW / PARTIALLY_FILLED: the user data stream reports the fills and the end.
        }
        Err(e) => reject(ctx, &i, e.api_code().unwrap_or(0), e.reject_reason()),
    }
}
