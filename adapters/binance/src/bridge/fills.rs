//! Fill reporting without double counting: both the order answer (`RESULT`) and the user data
//! stream report cumulative filled quantities; only the increase since the last report is sent.
//! Likewise the end of an order that did not fill completely is reported once, whichever of
//! the two says it first.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use quantum_core::fixed::Qty;

/// What is known of one order: cumulative quantity reported, and whether its end was reported.
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    cum: Qty,
    ended: bool,
}

/// Cumulative quantity already reported, per client order id (the most recent `capacity`).
#[derive(Debug)]
pub struct FillTracker {
    inner: Mutex<(HashMap<String, Seen>, VecDeque<String>)>,
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

    /// Runs `f` on the entry of `cid`, creating it (and forgetting the oldest) if needed.
    fn with<R>(&self, cid: &str, f: impl FnOnce(&mut Seen) -> R) -> R {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *g;
        if !map.contains_key(cid) {
            if order.len() >= self.capacity {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
            order.push_back(cid.to_owned());
        }
        f(map.entry(cid.to_owned()).or_default())
    }

    /// Records that `cid` has filled `cum` in total; returns the newly filled quantity, if any.
    pub fn advance(&self, cid: &str, cum: Qty) -> Option<Qty> {
        self.with(cid, |s| {
            if cum <= s.cum {
                return None;
            }
            let prev = std::mem::replace(&mut s.cum, cum);
            cum.checked_sub(prev)
        })
    }

    /// Records that `cid` reached a final state with part of it unfilled; true the first time
    /// only, so its end is reported once.
    pub fn end(&self, cid: &str) -> bool {
        self.with(cid, |s| !std::mem::replace(&mut s.ended, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Qty {
        s.parse::<Qty>().unwrap()
    }

    #[test]
    fn reports_each_quantity_once() {
        let t = FillTracker::new(2);
        assert_eq!(t.advance("a", q("0.002")), Some(q("0.002")));
        assert_eq!(t.advance("a", q("0.002")), None);
        assert_eq!(t.advance("a", q("0.005")), Some(q("0.003")));
        assert_eq!(t.advance("a", q("0.001")), None);
        t.advance("b", q("1"));
        t.advance("c", q("1"));
        // "a" was forgotten (capacity 2).
        assert_eq!(t.advance("a", q("0.005")), Some(q("0.005")));
    }

    #[test]
    fn reports_an_end_once_and_keeps_the_fills() {
        let t = FillTracker::new(4);
        assert_eq!(t.advance("a", q("0.030")), Some(q("0.030")));
        assert!(t.end("a"));
        assert!(!t.end("a"));
        assert_eq!(t.advance("a", q("0.030")), None);
        // An order that ends before any fill is known.
        assert!(t.end("b"));
        assert!(!t.end("b"));
    }
}
