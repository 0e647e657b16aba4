//! A faithful local Binance USD-M futures simulator, library and server.
//!
//! It owns a simulated exchange account (marks, positions, orders, listenKey) and serves it
//! over real HTTP and WebSocket with Binance's paths, JSON shapes (decimals as strings),
//! error codes and HTTP statuses: REST under `/fapi`, the WebSocket API at `/ws-fapi/v1`, and
//! the user data stream at `/ws/<listenKey>`. Requests are checked as Binance checks them:
//! API key, HMAC-SHA256 signature, timestamp/recvWindow, symbol filters on exact decimals,
//! reduce-only and hedge-mode rules, client-id uniqueness among open orders, request weight
//! and order-count limits (with the `X-MBX-*` headers on every `/fapi` answer).
//!
//! Tests steer it through `/sim/*` (no signature, JSON):
//! - `GET /sim/orders`: the audit list of every accepted order (symbol, clientOrderId,
//!   orderId, side, positionSide, type, qty, executedQty, status, reduceOnly, time, via);
//! - `GET /sim/positions`, `POST /sim/position {symbol, positionAmt, positionSide?, entryPrice?}`;
//! - `POST /sim/mark {symbol, markPrice}` (resting limits the new mark crosses fill);
//! - `GET|POST /sim/faults` (partial update of [`Faults`]: latency, error rate, dropped
//!   connections before or after placing, the ambiguous 503, forced 429/418);
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
mod orders;
mod params;
mod routes;
mod server;
pub mod symbols;
mod ws;

pub use auth::sign;
pub use config::{
    ApiKey, Faults, Limits, QtyPrecision, ReduceOnlyExcess, SimConfig, TEST_API_KEY,
    TEST_API_SECRET,
};
pub use decimal::Dec;
pub use error::ApiError;
pub use exchange::{AuditEntry, PosSide, PositionView};
pub use server::{SimHandle, Simulator, StartError};
