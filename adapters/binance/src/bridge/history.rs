//! Exchange-truth recovery: the exchange as the journal of last resort.
//!
//! Our client order id is derived from the plan id, so Binance's order history says which
//! plans were ordered, whatever the core remembers. At every attach to the core (start, and
//! each time the bridge follows a restarted daemon) the bridge reads, symbol after symbol, the
//! account's orders created over the last [`HistoryConfig::horizon`] and sends
//! - one `OrderReport` (source `history`) per order whose client id carries our prefix: status,
//!   side, cumulative filled quantity, average price, order id, last update, ordered quantity;
//! - then one `OrderHistory {symbol, orders, since_ms, through_ms}` for every leg of the
//!   symbol: its history from `since_ms` through `through_ms` was complete, and `orders`
//!   reports came before it.
//!
//! The history is read once per exchange symbol; each order is reported on the leg of its
//! `positionSide` (`BOTH`, or `LONG` / `SHORT` in hedge mode; see `order_leg` in the bridge
//! for an order on a side the directory has no leg for).
//!
//! With failover, the same read is the answer to a `Leading {epoch, since_ms, at_ms}` record on
//! `orders` (the core's host took the lead): every symbol's history from `since_ms` on, reported
//! the same way ([`Since::At`]).
//!
//! Orders of other client ids (manual ones, the exchange's liquidations) are skipped and
//! counted. A query that fails is tried again after a pause that doubles up to 30 s, from the
//! page it failed on; `OrderHistory` is never sent for a symbol whose history was not read to
//! the end. One of our orders in a status the core does not know makes the history
//! incomplete too: nothing is sent for that symbol, and an error says why.

use std::sync::Arc;
use std::time::Duration;

use quantum_core::types::ClientOrderId;
use quantum_ipc::codes::{OrderStatus, ReportSource};
use quantum_ipc::wire::{self, Message};

use super::{order_leg, report, Ctx};
use crate::futures::history::{HistoryFetch, HistoryOrder, DEFAULT_PAGE_LIMIT};

/// How far back the bridge reads the order history at each attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryConfig {
    /// The span read, back from the server's now. It must cover the core's dedupe horizon
    /// (`engine.dedupe_horizon_ms`, 24 h by default); the default adds an hour of margin.
    pub horizon: Duration,
    /// Orders per `allOrders` page (Binance: 500 by default, at most 1000).
    pub page_limit: u32,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            horizon: Duration::from_secs(25 * 3600),
            page_limit: DEFAULT_PAGE_LIMIT,
        }
    }
}

/// Where a history read starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Since {
    /// [`HistoryConfig::horizon`] back from the server's now (an attach).
    Horizon,
    /// At this instant (ms since the Unix epoch; the core's `Leading` request), never later
    /// than the server's now; 0 (no instant given) reads as [`Since::Horizon`].
    At(u64),
}

/// A task aborted when this is dropped: a recovery in progress ends with the task that owns
/// it (a new attach, or the bridge stopping).
pub(super) struct Recovery(tokio::task::JoinHandle<()>);

impl Recovery {
    /// Starts reading and reporting the history of every directory symbol from `since`.
    pub(super) fn start(ctx: Arc<Ctx>, cfg: HistoryConfig, since: Since) -> Recovery {
        Recovery(tokio::spawn(async move {
            for name in ctx.symbols.symbols() {
                recover_symbol(&ctx, cfg, since, name).await;
            }
        }))
    }
}

impl Drop for Recovery {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the reports of one symbol's history came to.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    /// Our orders reported, per leg.
    ours: std::collections::BTreeMap<u16, u32>,
    others: u32,
}

/// Reads `name`'s history to the end (retrying failed queries) and reports it.
async fn recover_symbol(ctx: &Ctx, cfg: HistoryConfig, since: Since, name: &str) {
    let through = ctx.client.clock().now_ms();
    let since = match since {
        Since::Horizon | Since::At(0) => through.saturating_sub(cfg.horizon.as_millis() as i64),
        Since::At(ms) => i64::try_from(ms).unwrap_or(i64::MAX).min(through),
    };
    let mut fetch = HistoryFetch::new(name, since, through, cfg.page_limit);
    let mut pause = Duration::from_millis(200);
    while !fetch.is_done() {
        match fetch.step(ctx.client.http()).await {
            Ok(_) => pause = Duration::from_millis(200),
            Err(e) => {
                let wait = match &e {
                    crate::Error::RateLimited { wait_ms } | crate::Error::Banned { wait_ms } => {
                        Duration::from_millis(*wait_ms).max(pause)
                    }
                    _ => pause,
                };
                tracing::warn!(
                    symbol = %name, error = %e, ?wait,
                    "order history query failed; trying the same page again (the symbol's history is not reported until it is complete)"
                );
                tokio::time::sleep(wait).await;
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
    }
    let seconds = fetch.elapsed().as_secs_f64();
    let Some(h) = fetch.finish() else {
        return;
    };
    let Some(tally) = send(ctx, &h.orders) else {
        return;
    };
    for id in ctx.symbols.legs_of(name) {
        ctx.out.send(Message::OrderHistory(wire::OrderHistory {
            symbol: id,
            orders: tally.ours.get(&id).copied().unwrap_or(0),
            since_ms: since.max(0) as u64,
            through_ms: through.max(0) as u64,
        }));
    }
    tracing::info!(
        symbol = %name, orders = tally.ours.values().sum::<u32>(), skipped = tally.others, pages = h.pages,
        requests = h.requests, weight = h.weight, seconds,
        "order history reported"
    );
}

/// Reports our orders of `orders`, each on its leg; `None` (nothing sent) when one of ours has
/// a status the core does not know, since the history would then be incomplete.
fn send(ctx: &Ctx, orders: &[HistoryOrder]) -> Option<Tally> {
    let mut tally = Tally::default();
    let mut ours = Vec::new();
    for h in orders {
        let o = &h.order;
        let Some(plan) = ClientOrderId::plan(&o.client_order_id) else {
            tally.others += 1;
            continue;
        };
        let Some(status) = OrderStatus::parse(&o.status) else {
            tracing::error!(
                %plan, symbol = %o.symbol, status = %o.status,
                "an order of ours in the history has a status the core does not know: the symbol's history is not reported, so the core keeps it blocked"
            );
            return None;
        };
        let Some(leg) = order_leg(ctx, plan, &o.symbol, o.position_side) else {
            tally.others += 1;
            continue;
        };
        ours.push((plan, status, leg, h));
    }
    for (plan, status, leg, h) in ours {
        let o = &h.order;
        let time = if o.update_time > 0 {
            o.update_time
        } else {
            h.time
        };
        report(
            ctx,
            plan,
            leg,
            o.side,
            status,
            o.executed_qty,
            o.avg_price,
            o.order_id,
            time,
            o.orig_qty,
            ReportSource::History,
        );
        *tally.ours.entry(leg).or_default() += 1;
    }
    Some(tally)
}
