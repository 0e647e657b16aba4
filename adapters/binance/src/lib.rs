//! Binance USD-M futures adapter (work in progress: see issue 4).
