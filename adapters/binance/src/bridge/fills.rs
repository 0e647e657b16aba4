//! Fill reporting without double counting: both the order answer (`RESULT`) and the user data
//! stream report cumulative filled quantities; only the increase since the last report is sent.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use quantum_core::fixed::Qty;

/// Cumulative quantity already reported, per client order id (the most recent `capacity`).
#[derive(Debug)]
pub struct FillTracker {
    inner: Mutex<(HashMap<String, Qty>, VecDeque<String>)>,
    capacity: usize,
}

impl FillTracker {
    /// Remembers up to `capacity` orders.
    pub fn new(capacity: usize) -> FillTracker {
        FillTracker {
            inner: Mutex::default(),
            capacity: capacity.max(1),
        }
    }

    /// Records that `cid` has filled `cum` in total; returns the newly filled quantity, if any.
    pub fn advance(&self, cid: &str, cum: Qty) -> Option<Qty> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *g;
        let prev = match map.get(cid) {
            Some(q) => *q,
            None => {
                if order.len() >= self.capacity {
                    if let Some(old) = order.pop_front() {
                        map.remove(&old);
                    }
                }
                order.push_back(cid.to_owned());
                Qty::ZERO
            }
        };
        if cum <= prev {
            map.insert(cid.to_owned(), prev);
            return None;
        }
        map.insert(cid.to_owned(), cum);
        cum.checked_sub(prev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_each_quantity_once() {
        let t = FillTracker::new(2);
        let q = |s: &str| s.parse::<Qty>().unwrap();
        assert_eq!(t.advance("a", q("0.002")), Some(q("0.002")));
        assert_eq!(t.advance("a", q("0.002")), None);
        assert_eq!(t.advance("a", q("0.005")), Some(q("0.003")));
        assert_eq!(t.advance("a", q("0.001")), None);
        t.advance("b", q("1"));
        t.advance("c", q("1"));
        // "a" was forgotten (capacity 2).
        assert_eq!(t.advance("a", q("0.005")), Some(q("0.005")));
    }
}
