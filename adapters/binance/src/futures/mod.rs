//! USD-M futures: REST ([`http`]), WebSocket API ([`websocket_api`]), the user data stream
//! ([`user_stream`]), the contract info stream ([`market_stream`]) and its fills counted once ([`trades`]), their typed answers
//! ([`models`]), who created an order ([`origin`]), the account's order history ([`history`]),
//! and the order path that never sends an order twice ([`client`], in the vocabulary of
//! [`outcome`], helped by the user stream's [`confirmations`]), fenced by the failover lease
//! ([`fence`]).

pub mod client;
pub mod confirmations;
pub mod fence;
pub mod history;
pub mod http;
pub mod market_stream;
pub mod models;
pub mod origin;
pub mod outcome;
pub mod trades;
pub mod user_stream;
pub mod websocket_api;
