//! Pieces shared by every Binance transport: signing and secrets, the server clock, exact
//! decimals and symbol filters, rate limits, and Binance's error codes.

pub mod decimal;
pub mod error;
pub mod filters;
pub mod rate_limit;
pub mod sign;
pub mod time;
