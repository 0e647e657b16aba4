//! Binance USD-M futures adapter: a signed REST and WebSocket API client, the user data
//! stream, and the bridge between the core's shared-memory rings and Binance.
//!
//! Layout: [`common`] (signing and secrets, server clock, exact decimals and symbol filters,
//! rate limits, Binance error codes), [`futures`] (REST, WebSocket API, user data stream, and
//! the order path), [`bridge`] (rings ↔ client), [`cli`] (`quantum bridge binance`).
//!
//! Invariants:
//! - an order is never sent twice: an ambiguous outcome is looked up by client order id, and
//!   an order is re-sent (same client id) only when Binance says it does not exist after the
//!   lost request can no longer be accepted;
//! - quantities are exact decimals on the symbol's step grid, never `f64`, never scientific
//!   notation;
//! - every `timestamp` carries the measured server-time offset;
//! - requests stay under the published weight and order limits; after a 429 or 418 nothing is
//!   sent until the back-off or ban has passed;
//! - the API secret never appears in `Debug` output, logs or errors;
//! - testnet is the default; mainnet URLs need an explicit [`config::Network::Mainnet`].
//!
//! This crate never depends on another adapter; it uses `quantum-core` for pure types only.
#![deny(unsafe_code)]

pub mod bridge;
pub mod cli;
pub mod common;
pub mod config;
pub mod error;
pub mod futures;

pub use common::error::{ApiError, RejectReason};
pub use common::sign::{Credentials, Secret};
pub use config::{ClientConfig, Endpoints, Network};
pub use error::{Error, Result};
pub use futures::client::{FuturesClient, Transport};
pub use futures::models::{NewOrder, Order, PositionRisk, PositionRiskVersion, Side};
