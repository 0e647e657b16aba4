//! Fills from the user data stream, each trade counted once. Binance reports a trade twice:
//! first as a `TRADE_LITE` (sooner, last fill only), then inside the `ORDER_TRADE_UPDATE` of
//! the same order id `i` and trade id `t`. [`TradeTally`] turns either into the order's
//! cumulative filled quantity the first time it sees the trade, so a reader can report a fill
//! as soon as the lite arrives and ignore the update that repeats it.

use std::collections::HashSet;

use quantum_core::bounded::FifoMap;
use quantum_core::fixed::Qty;

#[derive(Debug, Default)]
struct Tally {
    filled: Qty,
    trades: HashSet<u64>,
}

/// Order id → filled quantity and the trade ids counted into it. Bounded: past `capacity`
/// orders the oldest are forgotten.
#[derive(Debug)]
pub struct TradeTally {
    orders: FifoMap<u64, Tally>,
}

impl TradeTally {
    /// A tally remembering up to `capacity` orders.
    pub fn new(capacity: usize) -> TradeTally {
        TradeTally {
            orders: FifoMap::new(capacity),
        }
    }

    /// Counts trade `trade_id` of `qty` on order `order_id`: the order's new cumulative filled
    /// quantity, or `None` when the trade was counted before (or `trade_id` is 0, no trade).
    pub fn record(&mut self, order_id: u64, trade_id: u64, qty: Qty) -> Option<Qty> {
        if trade_id == 0 {
            return None;
        }
        let t = self.orders.get_or_insert_with(order_id, Tally::default);
        if !t.trades.insert(trade_id) {
            return None;
        }
        t.filled = t.filled.checked_add(qty)?;
        Some(t.filled)
    }

    /// Forgets an order that reached a final state.
    pub fn forget(&mut self, order_id: u64) {
        self.orders.remove(&order_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_trade_counts_once_whichever_event_brings_it() {
        let q = |s: &str| s.parse::<Qty>().unwrap();
        let mut t = TradeTally::new(2);
        assert_eq!(t.record(1, 10, q("0.001")), Some(q("0.001")));
        assert_eq!(t.record(1, 10, q("0.001")), None);
        assert_eq!(t.record(1, 11, q("0.002")), Some(q("0.003")));
        assert_eq!(t.record(1, 0, q("0.002")), None);
        t.record(2, 20, q("1"));
        t.record(3, 30, q("1"));
        // Order 1 was forgotten to stay within capacity: its trades count afresh.
        assert_eq!(t.record(1, 10, q("0.001")), Some(q("0.001")));
        t.forget(1);
        assert_eq!(t.record(1, 11, q("0.002")), Some(q("0.002")));
    }
}
