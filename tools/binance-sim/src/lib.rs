//! Binance USD-M futures simulator (work in progress: see issue 4).
