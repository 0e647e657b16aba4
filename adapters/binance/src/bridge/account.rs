//! The account's state the core trades by, besides positions: its position mode and each
//! symbol's contract status.
//!
//! - **Position mode** (`AccountMode`): read from `GET /fapi/v1/positionSide/dual` (signed,
//!   weight 30) at start, at every reconnect of the user data stream and every re-attach to a
//!   restarted daemon ([`sync`]), and pushed before that (re)start's positions. A failed read
//!   is tried again (the pause doubles from 200 ms up to 30 s); a mode is never assumed, so
//!   until Binance answers nothing else of the account goes out. The mode is also read at
//!   every exchangeInfo refresh, and a change is pushed (with the positions) at once. Each
//!   read logs one line with the mode.
//! - **Contract status** (`SymbolStatus`, for every leg of the symbol): exchangeInfo's
//!   per-symbol `status`, read at start with the filters and every
//!   `--exchange-info-secs` ([`refresh_loop`]), and Binance's contract info stream
//!   (`!contractInfo`, [`contract_info_loop`]). Pushed at start and at each re-attach, and
//!   whenever a symbol's status changes. A status text Binance has not documented is logged
//!   and told to the core as `PENDING_TRADING` (not trading), since it is not `TRADING`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use quantum_ipc::codes::ContractStatus;
use quantum_ipc::wire::{self, Message};

use super::{now_ms, poll_positions, send_filters, Ctx};
use crate::futures::market_stream::{contract_info_url, ContractInfoStream};

/// What the core was last told.
#[derive(Debug, Default)]
pub(super) struct Account {
    /// The position mode last pushed (`true`: hedge); `None` until the first. Held while a
    /// mode and its positions are read and pushed, so a position poll waits for them.
    pub(super) mode: tokio::sync::Mutex<Option<bool>>,
    /// Each symbol's contract status text as last read.
    statuses: Mutex<HashMap<String, String>>,
}

/// The mode's name in logs.
fn mode_name(hedge: bool) -> &'static str {
    if hedge {
        "hedge"
    } else {
        "one_way"
    }
}

/// Reads the account's position mode until Binance answers, pushes `AccountMode`, then every
/// leg's position (`why`: what this (re)start is, for the log).
pub(super) async fn sync(ctx: &Ctx, why: &str) {
    let mut mode = ctx.account.mode.lock().await;
    let mut pause = Duration::from_millis(200);
    let hedge = loop {
        match ctx.client.http().dual_side_position().await {
            Ok(h) => break h,
            Err(e) => {
                tracing::warn!(
                    error = %e, ?pause, why,
                    "cannot read the account's position mode (positionSide/dual); trying again, nothing is assumed meanwhile"
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
    };
    push_mode(ctx, hedge, why);
    *mode = Some(hedge);
    if let Err(e) = poll_positions(ctx).await {
        tracing::warn!(error = %e, why, "positionRisk after the position mode failed; the poller will retry");
    }
}

fn push_mode(ctx: &Ctx, hedge: bool, why: &str) {
    ctx.out.send(Message::AccountMode(wire::AccountMode {
        hedge,
        at_ms: now_ms(ctx),
    }));
    let mode = mode_name(hedge);
    tracing::info!(mode, hedge, why, "the account's position mode is {mode}");
}

/// The status the core is told for Binance's `text`: the documented ones as they are, any
/// other as [`ContractStatus::Undocumented`] (not trading; `TRADING` is documented).
fn contract_status(symbol: &str, text: &str) -> ContractStatus {
    ContractStatus::parse(text).unwrap_or_else(|| {
        tracing::warn!(
            symbol,
            status = text,
            "a contract status Binance has not documented: the symbol is treated as not trading"
        );
        ContractStatus::Undocumented
    })
}

/// `symbol`'s contract status is `text` (from `source`, at `at_ms`): pushed for every leg of
/// the symbol when it changed, or always with `force`.
pub(super) fn status_seen(
    ctx: &Ctx,
    symbol: &str,
    text: &str,
    at_ms: u64,
    force: bool,
    source: &str,
) {
    if ctx.symbols.legs_of(symbol).next().is_none() {
        return;
    }
    let previous = ctx
        .account
        .statuses
        .lock()
        .insert(symbol.to_owned(), text.to_owned());
    let changed = previous.as_deref() != Some(text);
    if !changed && !force {
        return;
    }
    let status = if changed {
        contract_status(symbol, text)
    } else {
        ContractStatus::parse(text).unwrap_or(ContractStatus::Undocumented)
    };
    for id in ctx.symbols.legs_of(symbol) {
        ctx.out.send(Message::SymbolStatus(wire::SymbolStatus {
            status,
            symbol: id,
            at_ms,
        }));
    }
    if changed {
        let trading = status == ContractStatus::Trading;
        match previous {
            None if trading => {
                tracing::info!(symbol, status = text, source, "contract status")
            }
            _ if trading => {
                tracing::info!(symbol, status = text, previous = ?previous, source, "contract status changed: trading")
            }
            _ => {
                tracing::warn!(symbol, status = text, previous = ?previous, source, "contract status: not trading")
            }
        }
    }
}

/// Every directory symbol's status from the last exchangeInfo read (`force`: pushed even
/// when unchanged, for a core that does not know it yet).
pub(super) fn send_statuses(ctx: &Ctx, force: bool) {
    let at = now_ms(ctx);
    for symbol in ctx.symbols.symbols() {
        match ctx.client.status(symbol) {
            Some(text) => status_seen(ctx, symbol, &text, at, force, "exchangeInfo"),
            None => tracing::warn!(
                symbol,
                "exchangeInfo gives no contract status for a directory symbol"
            ),
        }
    }
}

/// Reads exchangeInfo every `every`: contract statuses (a change is pushed), filters (pushed
/// again when one changed), and the position mode (a change is pushed, then positions).
pub(super) async fn refresh_loop(ctx: Arc<Ctx>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let filters = || -> Vec<_> {
            ctx.symbols
                .symbols()
                .iter()
                .map(|s| ctx.client.filters(s).ok())
                .collect()
        };
        let before = filters();
        match ctx.client.load_filters().await {
            Ok(_) => {
                send_statuses(&ctx, false);
                if filters() != before {
                    tracing::info!("exchangeInfo: a symbol's filters changed; sent again");
                    send_filters(&ctx);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "exchangeInfo refresh failed; trying again at the next interval")
            }
        }
        match ctx.client.http().dual_side_position().await {
            Ok(hedge) => {
                let known = *ctx.account.mode.lock().await;
                if known.is_some_and(|k| k != hedge) {
                    tracing::warn!(
                        mode = mode_name(hedge),
                        "the account's position mode changed on the exchange"
                    );
                    sync(&ctx, "the position mode changed").await;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "position mode check failed; trying again at the next interval")
            }
        }
    }
}

/// Follows `!contractInfo`: each event's status `cs` for its symbol `s`. A stream that cannot
/// connect or drops is connected again (the pause doubles from 200 ms up to 30 s); meanwhile
/// the exchangeInfo refresh (every `every`) covers.
pub(super) async fn contract_info_loop(ctx: Arc<Ctx>, every: Duration) {
    let cfg = ctx.client.config().clone();
    let mut pause = Duration::from_millis(200);
    loop {
        match ContractInfoStream::connect(&cfg).await {
            Ok(mut s) => {
                tracing::info!(url = %contract_info_url(&cfg), "contract info stream connected");
                pause = Duration::from_millis(200);
                loop {
                    match s.next().await {
                        None => break,
                        Some(Ok(ev)) => {
                            let at = if ev.event_time > 0 {
                                ev.event_time
                            } else {
                                now_ms(&ctx)
                            };
                            status_seen(&ctx, &ev.symbol, &ev.status, at, false, "!contractInfo");
                        }
                        Some(Err(
                            e @ (crate::Error::Decode { .. } | crate::Error::Field { .. }),
                        )) => {
                            tracing::warn!(error = %e, "contract info frame skipped")
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "contract info stream error");
                            break;
                        }
                    }
                }
                tracing::warn!(
                    every_secs = every.as_secs(),
                    "contract info stream closed; connecting again (the exchangeInfo refresh covers meanwhile)"
                );
            }
            Err(e) => tracing::warn!(
                error = %e, ?pause, every_secs = every.as_secs(),
                "contract info stream unavailable; symbol statuses come from the exchangeInfo refresh meanwhile"
            ),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}
