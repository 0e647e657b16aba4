//! USD-M futures: REST ([`http`]), WebSocket API ([`websocket_api`]), the user data stream
//! ([`user_stream`]), their typed answers ([`models`]) and the order path that never sends an
//! order twice ([`client`]).

pub mod client;
pub mod http;
pub mod models;
pub mod user_stream;
pub mod websocket_api;
