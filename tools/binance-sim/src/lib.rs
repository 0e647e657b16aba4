//! A faithful local Binance USD-M futures simulator, library and server.
//!
//! It owns a simulated exchange account (marks, positions, orders, listenKey) and serves it
//! over real HTTP and WebSocket with Binance's paths, JSON shapes (decimals as strings),
//! error codes and HTTP statuses: REST under `/fapi`, the WebSocket API at `/ws-fapi/v1`
//! (per-request signatures or an Ed25519 `session.logon`), and the user data stream on the
//! routed private endpoint `/private/ws?listenKey=…&events=…` (or `/private/stream?…`); an
//! unrouted connection (`/ws/<listenKey>`) gets no user data, as on Binance since
//! 2026-04-23 ([`user_stream`](crate::user_stream)). Requests are checked as Binance checks
//! them: API key, HMAC-SHA256 or Ed25519 signature (by the registered key),
//! timestamp/recvWindow, symbol filters on exact decimals, reduce-only and hedge-mode rules,
//! client-id uniqueness among open orders, request weight and order-count limits (with the
//! `X-MBX-*` headers on every `/fapi` answer). Fills reach the stream as `TRADE_LITE`, then
//! `ORDER_TRADE_UPDATE`, then `ACCOUNT_UPDATE`; the exchange's own orders (liquidation,
//! auto-deleveraging, settlement) carry Binance's `autoclose-`, `adl_autoclose` and
//! `settlement_autoclose-` client ids.
//!
//! The order history (`GET /fapi/v1/allOrders`) lists every order as Binance does: ascending,
//! paged by `orderId`, in windows under 7 days, without the orders Binance forgets.
//!
//! Tests steer it through `/sim/*` (no signature, JSON):
//! - `GET /sim/orders`: the audit list of every accepted order (symbol, clientOrderId,
//!   orderId, side, positionSide, type, qty, executedQty, status, reduceOnly, time, via);
//! - `GET /sim/positions`, `POST /sim/position {symbol, positionAmt, positionSide?, entryPrice?}`;
//! - `POST /sim/mark {symbol, markPrice}` (resting limits the new mark crosses fill);
//! - `POST /sim/liquidate {symbol, kind: liquidation|adl|settlement, quantity?, positionSide?}`:
//!   the exchange closes (part of) a position leg by an order of its own (`positionSide`
//!   required in hedge mode);
//! - `GET /sim/symbol-status`, `POST /sim/symbol-status {symbol, status, settle?}`: a
//!   symbol's contract status (exchangeInfo `status`; orders refused unless `TRADING`),
//!   pushed as a `contractInfo` event on the market stream `!contractInfo`; `settle: true`
//!   (with `DELIVERING` or `SETTLING`) cancels the symbol's open orders and closes its
//!   position legs with `settlement_autoclose-` orders;
//! - `GET|POST /sim/faults` (partial update of [`Faults`]: latency, error rate, dropped
//!   connections before or after placing, the ambiguous 503, -1007 / -1006 with or without
//!   the order placed, a lagging order query, -1008 throttling, forced 429/418, failing
//!   order history queries);
//! - `GET|POST /sim/limits` (partial update of [`Limits`]), `POST /sim/limits/reset`;
//! - `GET|POST /sim/clock {freezeAtMs: ms|null, offsetMs}`: freeze or shift server time.
//!
//! Invariants: an order appears in the audit list exactly once, from the moment it is
//! accepted, whatever happens to the connection that placed it; quantities and prices are
//! never held in floating point.
#![deny(unsafe_code)]

mod auth;
pub mod cli;
mod clock;
pub mod config;
mod control;
pub mod decimal;
mod error;
pub mod exchange;
mod limits;
mod market_stream;
mod orders;
mod params;
mod placement;
mod routes;
mod server;
pub mod symbols;
pub mod user_stream;
mod ws_api;

pub use auth::sign;
pub use config::{
    ApiKey, Faults, KeyAuth, Limits, QtyPrecision, ReduceOnlyExcess, SimConfig, TEST_API_KEY,
    TEST_API_SECRET,
};
pub use decimal::Dec;
pub use error::ApiError;
pub use exchange::{
    AuditEntry, ExchangeOrderKind, PosSide, PositionView, StatusChange, CONTRACT_INFO_STREAM,
};
pub use server::{SimHandle, Simulator, StartError};
pub use symbols::ContractStatus;
