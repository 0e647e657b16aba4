//! Pieces shared by every Binance transport: signing, credentials and other secrets, the
//! mainnet guard, the log filter, the server clock, exact decimals and symbol filters, rate
//! limits, and Binance's error codes.

pub mod decimal;
pub mod error;
pub mod filters;
pub mod logging;
pub mod rate_limit;
pub mod secret;
pub mod sign;
pub mod time;
pub mod url_guard;
