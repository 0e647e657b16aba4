//! The confirmations registry: what the user data stream has said about each client order id,
//! shared by whoever reads the stream and whoever is resolving an order whose outcome is
//! unknown.
//!
//! The stream often knows first. When a placement times out, Binance may already have pushed
//! the order's `ORDER_TRADE_UPDATE` while the REST lookup still answers -2013 (the query side
//! lags the matching engine), and a client that trusts the lookup, or retries on a timer,
//! sends the order again: NautilusTrader #4215 retried after the stream had confirmed the
//! order and got -4116. Here the reader of the stream records every order update
//! ([`Confirmations::confirm_update`]; a [`super::user_stream::UserStream`] built with a
//! registry does it by itself), and any pending lookup or re-send of that client id
//! ([`super::client::FuturesClient::resolve`]) waits on the registry too and stops at the first
//! confirmation.
//!
//! Cheap to clone (clones share one registry). Keyed by client order id, so callers must not
//! reuse a client id for another order (the core derives one per plan). Bounded: past
//! `capacity` ids the oldest are forgotten.

use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use quantum_core::bounded::FifoMap;
use tokio::sync::Notify;

use crate::futures::models::Order;
use crate::futures::user_stream::OrderUpdate;

/// What the stream said about one order: its state after the latest update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confirmation {
    /// The order as the update describes it (`X` status, `z` filled, `ap` average price).
    pub order: Order,
    /// The update's execution type `x` (NEW, TRADE, CANCELED, EXPIRED, ...).
    pub exec_type: String,
    /// The update's event time `E` (ms).
    pub event_time: u64,
}

#[derive(Debug)]
struct Inner {
    /// Client order id → its latest confirmation, the `capacity` most recent ids.
    book: Mutex<FifoMap<String, Confirmation>>,
    changed: Notify,
}

/// Client order id → latest confirmation from the user data stream.
#[derive(Clone, Debug)]
pub struct Confirmations {
    inner: Arc<Inner>,
}

impl Default for Confirmations {
    fn default() -> Self {
        Confirmations::new(10_000)
    }
}

impl Confirmations {
    /// A registry remembering up to `capacity` client ids.
    pub fn new(capacity: usize) -> Confirmations {
        Confirmations {
            inner: Arc::new(Inner {
                book: Mutex::new(FifoMap::new(capacity)),
                changed: Notify::new(),
            }),
        }
    }

    fn book(&self) -> MutexGuard<'_, FifoMap<String, Confirmation>> {
        self.inner.book.lock()
    }

    /// Records a confirmation; an older one for the same id (by event time) is kept instead.
    /// Wakes every waiter.
    pub fn confirm(&self, c: Confirmation) {
        {
            let mut book = self.book();
            if book
                .get(&c.order.client_order_id)
                .is_some_and(|old| old.event_time > c.event_time)
            {
                return;
            }
            book.insert(c.order.client_order_id.clone(), c);
        }
        self.inner.changed.notify_waiters();
    }

    /// Records an `ORDER_TRADE_UPDATE`.
    pub fn confirm_update(&self, u: &OrderUpdate) {
        self.confirm(Confirmation {
            order: u.to_order(),
            exec_type: u.exec_type.clone(),
            event_time: u.event_time,
        });
    }

    /// The latest confirmation of `cid`, if the stream has confirmed it.
    pub fn get(&self, cid: &str) -> Option<Confirmation> {
        self.book().get(cid).cloned()
    }

    /// Waits until `cid` is confirmed (at once if it already is).
    pub async fn wait(&self, cid: &str) -> Confirmation {
        loop {
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so a confirmation between the check and the wait
            // still wakes us.
            changed.as_mut().enable();
            if let Some(c) = self.get(cid) {
                return c;
            }
            changed.await;
        }
    }

    /// Forgets `cid` (its order reached a final state and was booked).
    pub fn forget(&self, cid: &str) {
        self.book().remove(cid);
    }

    /// Client ids remembered.
    pub fn len(&self) -> usize {
        self.book().len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::futures::models::Side;
    use quantum_core::fixed::Qty;
    use std::time::Duration;

    fn conf(cid: &str, status: &str, t: u64) -> Confirmation {
        Confirmation {
            order: Order {
                symbol: "BTCUSDT".into(),
                order_id: 7,
                client_order_id: cid.into(),
                status: status.into(),
                side: Side::Sell,
                position_side: quantum_ipc::codes::PositionSide::Both,
                orig_qty: Qty::from_int(1),
                executed_qty: Qty::ZERO,
                avg_price: None,
                reduce_only: true,
                update_time: t,
            },
            exec_type: "NEW".into(),
            event_time: t,
        }
    }

    #[tokio::test]
    async fn a_waiter_is_answered_by_a_later_confirmation() {
        let reg = Confirmations::default();
        let r2 = reg.clone();
        let waiter = tokio::spawn(async move { r2.wait("a").await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        reg.confirm(conf("b", "NEW", 1));
        reg.confirm(conf("a", "FILLED", 2));
        let got = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.order.status, "FILLED");
        // Already confirmed: at once.
        assert_eq!(reg.wait("b").await.order.status, "NEW");
    }

    #[test]
    fn later_events_win_and_capacity_holds() {
        let reg = Confirmations::new(2);
        reg.confirm(conf("a", "FILLED", 5));
        reg.confirm(conf("a", "NEW", 4));
        assert_eq!(reg.get("a").unwrap().order.status, "FILLED");
        reg.confirm(conf("b", "NEW", 1));
        reg.confirm(conf("c", "NEW", 1));
        assert_eq!(reg.len(), 2);
        assert!(reg.get("a").is_none());
        reg.forget("b");
        assert!(reg.get("b").is_none() && reg.get("c").is_some());
    }
}
