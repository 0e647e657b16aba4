//! Request weight per IP and order counts per account, in Binance's fixed windows.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::config::Limits;
use crate::error::ApiError;

#[derive(Debug, Default)]
struct IpState {
    window: i64,
    used: u32,
    /// A 429 was answered in this window: the next request over the limit is banned.
    warned: bool,
    banned_until: i64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counter {
    window: i64,
    count: u32,
}

impl Counter {
    fn current(&self, window: i64) -> u32 {
        if self.window == window {
            self.count
        } else {
            0
        }
    }

    fn add(&mut self, window: i64) -> u32 {
        if self.window != window {
            *self = Counter { window, count: 0 };
        }
        self.count += 1;
        self.count
    }
}

/// Counters behind the 429/418 answers and the `X-MBX-*` headers.
#[derive(Debug, Default)]
pub struct RateLimiter {
    /// Limits in force (changeable at run time).
    pub limits: Limits,
    ips: HashMap<IpAddr, IpState>,
    orders_10s: Counter,
    orders_1m: Counter,
}

/// Values for the `X-MBX-USED-WEIGHT-1M`, `X-MBX-ORDER-COUNT-10S` and `-1M` headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Weight used by the IP in the current minute.
    pub weight_1m: u32,
    /// Orders of the account in the current 10 s.
    pub orders_10s: u32,
    /// Orders of the account in the current minute.
    pub orders_1m: u32,
}

impl RateLimiter {
    /// A limiter enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        RateLimiter {
            limits,
            ..Default::default()
        }
    }

    /// Charges `weight` to `ip`; refuses with 429 over the limit, then 418 (ban) when the IP
    /// keeps going after a 429.
    pub fn charge(&mut self, ip: IpAddr, weight: u32, now: i64) -> Result<(), ApiError> {
        let limit = self.limits.weight_per_minute;
        let ban_ms = self.limits.ban_ms as i64;
        let st = self.ips.entry(ip).or_default();
        if st.banned_until > now {
            return Err(ApiError::banned(&ip.to_string(), st.banned_until));
        }
        let window = now.div_euclid(60_000);
        if st.window != window {
            st.window = window;
            st.used = 0;
            st.warned = false;
        }
        st.used = st.used.saturating_add(weight);
        if st.used > limit {
            if st.warned {
                st.banned_until = now + ban_ms;
                return Err(ApiError::banned(&ip.to_string(), st.banned_until));
            }
            st.warned = true;
            return Err(ApiError::too_many(&ip.to_string(), limit));
        }
        Ok(())
    }

    /// Counts one new order; refuses with 429 / -1015 over an ORDERS limit.
    pub fn count_order(&mut self, now: i64) -> Result<(), ApiError> {
        let n10 = self.orders_10s.add(now.div_euclid(10_000));
        let n60 = self.orders_1m.add(now.div_euclid(60_000));
        if n10 > self.limits.orders_per_10s {
            return Err(ApiError::too_many_orders(self.limits.orders_per_10s, "10s"));
        }
        if n60 > self.limits.orders_per_minute {
            return Err(ApiError::too_many_orders(
                self.limits.orders_per_minute,
                "1m",
            ));
        }
        Ok(())
    }

    /// Current usage for `ip`.
    pub fn usage(&self, ip: IpAddr, now: i64) -> Usage {
        let weight_1m = self
            .ips
            .get(&ip)
            .filter(|s| s.window == now.div_euclid(60_000))
            .map(|s| s.used)
            .unwrap_or(0);
        Usage {
            weight_1m,
            orders_10s: self.orders_10s.current(now.div_euclid(10_000)),
            orders_1m: self.orders_1m.current(now.div_euclid(60_000)),
        }
    }

    /// Forgets all counts and bans.
    pub fn reset(&mut self) {
        self.ips.clear();
        self.orders_10s = Counter::default();
        self.orders_1m = Counter::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_then_bans() {
        let mut l = RateLimiter::new(Limits {
            weight_per_minute: 3,
            ban_ms: 1000,
            ..Limits::default()
        });
        let ip: IpAddr = [127, 0, 0, 1].into();
        let t = 120_000;
        for _ in 0..3 {
            l.charge(ip, 1, t).unwrap();
        }
        assert_eq!(l.charge(ip, 1, t).unwrap_err().status.as_u16(), 429);
        assert_eq!(l.charge(ip, 1, t).unwrap_err().status.as_u16(), 418);
        assert_eq!(l.charge(ip, 1, t + 999).unwrap_err().status.as_u16(), 418);
        // Ban over, new window.
        l.charge(ip, 1, t + 60_000).unwrap();
        assert_eq!(l.usage(ip, t + 60_000).weight_1m, 1);
    }
}
