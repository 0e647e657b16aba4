//! The account's order history of one symbol (`GET /fapi/v1/allOrders`, weight 5), read when
//! the core cannot trust its own memory: Binance then says which of our plans were ordered.
//!
//! The span from `since_ms` to the server's now is cut into windows shorter than Binance's
//! 7 days ([`MAX_WINDOW_MS`]). Each window is read page by page: the first page by
//! `startTime`/`endTime`, every later one from the last order id + 1 (`orderId`), until a page
//! comes back shorter than the limit. Every request passes the client's rate limiter like any
//! other. A [`HistoryFetch`] keeps its place: after a failed request the caller tries the same
//! step again later, and nothing already read is asked for twice.
//!
//! Binance does not return an order that was CANCELED or EXPIRED without any fill and was
//! created more than 3 days ago, nor any order older than 90 days: such an order never
//! traded, so "not in the history" means "never filled", never "never sent".

use std::time::Instant;

use reqwest::Method;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::futures::client::FuturesClient;
use crate::futures::http::{Auth, HttpClient};
use crate::futures::models::Order;

/// Request weight of `GET /fapi/v1/allOrders`.
pub const ALL_ORDERS_WEIGHT: u32 = 5;

/// Binance's default page size.
pub const DEFAULT_PAGE_LIMIT: u32 = 500;

/// Binance's largest page.
pub const MAX_PAGE_LIMIT: u32 = 1000;

/// The longest window one query asks for: Binance wants `endTime - startTime` under 7 days;
/// an hour less leaves no doubt about where the boundary falls.
pub const MAX_WINDOW_MS: i64 = 7 * 86_400_000 - 3_600_000;

/// One order of the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryOrder {
    /// The order: status, side, position side, quantities, average price, update time.
    pub order: Order,
    /// Creation time (ms).
    pub time: u64,
    /// MARKET, LIMIT, ...
    pub order_type: String,
}

impl HistoryOrder {
    /// Parses one row of `allOrders`.
    pub fn from_json(v: &Value) -> Result<HistoryOrder> {
        const W: &str = "allOrders";
        Ok(HistoryOrder {
            order: Order::from_json(v)?,
            time: v["time"].as_u64().ok_or(Error::Field {
                what: W,
                field: "time",
            })?,
            order_type: v["type"].as_str().unwrap_or("").to_owned(),
        })
    }
}

/// What a history read found and what it cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History {
    /// Symbol.
    pub symbol: String,
    /// Start (server ms): every order created from here on is in `orders`.
    pub since_ms: i64,
    /// End (server ms): every order created up to here is in `orders`.
    pub through_ms: i64,
    /// Every order of the symbol in the span, ascending by order id.
    pub orders: Vec<HistoryOrder>,
    /// Pages read.
    pub pages: u32,
    /// Requests tried (pages, and failed attempts).
    pub requests: u32,
    /// Request weight of the requests that went out.
    pub weight: u32,
}

/// A history read in progress: call [`HistoryFetch::step`] until it says done; a failed step
/// changes nothing and may be tried again.
#[derive(Debug)]
pub struct HistoryFetch {
    history: History,
    page_limit: u32,
    /// Start of the window being read.
    window_start: i64,
    /// Within the window, the next page starts at this order id (`None`: the first page).
    next_id: Option<u64>,
    done: bool,
    started: Instant,
}

impl HistoryFetch {
    /// A read of `symbol`'s orders created from `since_ms` through `through_ms` (server ms),
    /// `page_limit` orders per page (clamped to 1 ..= [`MAX_PAGE_LIMIT`]).
    pub fn new(symbol: &str, since_ms: i64, through_ms: i64, page_limit: u32) -> HistoryFetch {
        HistoryFetch {
            history: History {
                symbol: symbol.to_owned(),
                since_ms,
                through_ms,
                orders: Vec::new(),
                pages: 0,
                requests: 0,
                weight: 0,
            },
            page_limit: page_limit.clamp(1, MAX_PAGE_LIMIT),
            window_start: since_ms,
            next_id: None,
            done: since_ms > through_ms,
            started: Instant::now(),
        }
    }

    /// Whether every window has been read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// What was read so far.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Time since the read began.
    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// The read's result; `None` until it is done.
    pub fn finish(self) -> Option<History> {
        self.done.then_some(self.history)
    }

    /// Reads one page. `Ok(true)` once the whole span has been read.
    pub async fn step(&mut self, http: &HttpClient) -> Result<bool> {
        if self.done {
            return Ok(true);
        }
        let window_end = self
            .window_start
            .saturating_add(MAX_WINDOW_MS - 1)
            .min(self.history.through_ms);
        let mut p = vec![
            ("symbol", self.history.symbol.clone()),
            ("startTime", self.window_start.to_string()),
            ("endTime", window_end.to_string()),
            ("limit", self.page_limit.to_string()),
        ];
        if let Some(id) = self.next_id {
            p.push(("orderId", id.to_string()));
        }
        self.history.requests += 1;
        let answer = http
            .request(
                Method::GET,
                "/fapi/v1/allOrders",
                p,
                Auth::Signed,
                ALL_ORDERS_WEIGHT,
                false,
            )
            .await;
        let v = match answer {
            Ok(v) => {
                self.history.weight += ALL_ORDERS_WEIGHT;
                v
            }
            Err(e) => {
                if !matches!(e, Error::RateLimited { .. } | Error::Banned { .. }) {
                    self.history.weight += ALL_ORDERS_WEIGHT;
                }
                return Err(e);
            }
        };
        let rows = v.as_array().ok_or(Error::Field {
            what: "allOrders",
            field: "[]",
        })?;
        let page = rows
            .iter()
            .map(HistoryOrder::from_json)
            .collect::<Result<Vec<_>>>()?;
        // Ascending ids, all past the previous page: anything else would make the paging
        // skip orders or never end.
        let mut floor = self.next_id.unwrap_or(0);
        for o in &page {
            let field = if o.order.symbol != self.history.symbol {
                "symbol"
            } else if o.order.order_id < floor {
                "orderId"
            } else {
                floor = o.order.order_id + 1;
                continue;
            };
            return Err(Error::Field {
                what: "allOrders",
                field,
            });
        }
        self.history.pages += 1;
        let full = page.len() >= self.page_limit as usize;
        self.history.orders.extend(page);
        if full {
            self.next_id = Some(floor);
        } else if window_end >= self.history.through_ms {
            self.done = true;
        } else {
            self.window_start = window_end + 1;
            self.next_id = None;
        }
        Ok(self.done)
    }
}

impl FuturesClient {
    /// Every order of `symbol` created from `since_ms` to the server's now, in pages of
    /// Binance's default size. No retries: the first failure is returned.
    pub async fn order_history(&self, symbol: &str, since_ms: i64) -> Result<History> {
        self.order_history_paged(symbol, since_ms, DEFAULT_PAGE_LIMIT)
            .await
    }

    /// [`FuturesClient::order_history`] with `page_limit` orders per page.
    pub async fn order_history_paged(
        &self,
        symbol: &str,
        since_ms: i64,
        page_limit: u32,
    ) -> Result<History> {
        let through = self.clock().now_ms();
        let mut f = HistoryFetch::new(symbol, since_ms, through, page_limit);
        while !f.step(self.http()).await? {}
        Ok(f.history)
    }
}
