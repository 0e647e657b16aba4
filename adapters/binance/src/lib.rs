//! Binance USD-M futures adapter: a signed REST and WebSocket API client, the user data
//! stream, and the bridge between the core's shared-memory rings and Binance.
//!
//! Layout: [`common`] (signing with HMAC or Ed25519 keys and the other secrets, the mainnet
//! guard, the log filter, server clock, exact decimals and symbol filters, rate limits,
//! Binance error codes), [`futures`] (REST, WebSocket API, the user data stream on the routed
//! private endpoint, and the order path), [`bridge`] (rings ↔ client), [`cli`]
//! (`quantum bridge binance`).
//!
//! For the bridge and the core, the order path speaks in three outcomes and two resolutions
//! ([`futures::outcome`]): [`FuturesClient::place`] answers placed, rejected (nothing placed,
//! with Binance's code) or unknown; [`FuturesClient::resolve`] settles an unknown (or an order
//! re-offered after a restart) by client id into found-in-state-X or never-placed, listening
//! to the [`futures::confirmations::Confirmations`] registry the user data stream feeds;
//! [`FuturesClient::place_once_only_observed`] does both and reports each step. Orders Binance
//! creates itself (liquidation, auto-deleveraging, settlement) arrive on the stream marked by
//! [`futures::origin::OrderOrigin`]. Binaries install [`common::logging::env_filter`].
//!
//! Invariants:
//! - an order is never sent twice: an ambiguous outcome is looked up by client order id, and
//!   an order is re-sent (same client id) only when Binance says it does not exist after the
//!   lost request can no longer be accepted, and the user data stream has not confirmed it;
//! - quantities are exact decimals on the symbol's step grid, never `f64`, never scientific
//!   notation;
//! - every `timestamp` carries the measured server-time offset;
//! - with a failover fence ([`futures::fence`]), an order request leaves only while this host
//!   may send by its lease, checked after its timestamp was taken and signed;
//! - requests stay under the published weight and order limits; after a 429 or 418 nothing is
//!   sent until the back-off or ban has passed;
//! - the API key, secrets, private keys, signatures and listenKeys never appear in `Debug`
//!   output, errors or logs (with [`common::logging::env_filter`] installed, at any level);
//! - testnet is the default; without an explicit [`config::Network::Mainnet`] only testnet
//!   hosts and loopback addresses are accepted, for every URL.
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
pub use common::secret::ListenKey;
pub use common::sign::{Credentials, KeyKind, Secret};
pub use config::{ClientConfig, Endpoints, Network, StreamMode};
pub use error::{Error, Result};
pub use futures::client::{FuturesClient, Transport};
pub use futures::confirmations::{Confirmation, Confirmations};
pub use futures::history::{History, HistoryFetch, HistoryOrder};
pub use futures::models::{NewOrder, Order, PositionRisk, PositionRiskVersion, PositionSide, Side};
pub use futures::origin::OrderOrigin;
pub use futures::outcome::{
    FoundBy, OrderEvent, Pending, Placement, Resolution, SentAt, Unknown, MIN_SETTLE_MARGIN,
};
