//! Staying under Binance's limits: REQUEST_WEIGHT per minute and ORDERS per 10 s and per
//! minute, in the server's fixed windows.
//!
//! Every request is admitted first: the limiter reserves its weight (and one order) in the
//! current window and refuses when that would pass the published limit. Answers then correct
//! the counts from `X-MBX-USED-WEIGHT-1M` / `X-MBX-ORDER-COUNT-10S` / `-1M` (or the WebSocket
//! API's `rateLimits`). A 429 blocks every request until `Retry-After` (or the end of the
//! minute); a 418 ban blocks until the ban's end. A refused admission tells the caller how long
//! to wait; the caller sleeps if that is within its budget and otherwise fails without sending.

use parking_lot::Mutex;
use std::time::Duration;

use super::filters::PublishedLimits;

/// How the limiter behaves.
#[derive(Clone, Copy, Debug)]
pub struct RateLimitConfig {
    /// A request may wait this long for its window or a back-off to pass before it fails
    /// with a rate-limit error instead of being sent.
    pub max_wait: Duration,
    /// Upper bound on a back-off after 429 or 418 (`None`: obey `Retry-After` or the ban's end
    /// fully, which is what production wants; tests shorten it).
    pub backoff_cap: Option<Duration>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            max_wait: Duration::from_secs(2),
            backoff_cap: None,
        }
    }
}

/// Why a request may not go now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocked {
    /// Milliseconds until it may.
    pub wait_ms: u64,
    /// Because of a 418 ban (else a 429 back-off or a full window).
    pub banned: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct Window {
    id: i64,
    used: u32,
}

impl Window {
    fn used_in(&mut self, id: i64) -> &mut u32 {
        if self.id != id {
            *self = Window { id, used: 0 };
        }
        &mut self.used
    }
}

#[derive(Debug)]
struct State {
    limits: PublishedLimits,
    weight: Window,
    orders_10s: Window,
    orders_1m: Window,
    blocked_until_ms: i64,
    banned: bool,
}

/// Shared limiter of one API key and IP.
#[derive(Debug)]
pub struct RateLimiter {
    cfg: RateLimitConfig,
    state: Mutex<State>,
}

const MINUTE: i64 = 60_000;
const TEN_S: i64 = 10_000;

fn wait_to_next(now: i64, len: i64) -> u64 {
    (len - now.rem_euclid(len)) as u64
}

impl RateLimiter {
    /// A limiter with Binance's published defaults until [`RateLimiter::set_limits`].
    pub fn new(cfg: RateLimitConfig) -> RateLimiter {
        RateLimiter {
            cfg,
            state: Mutex::new(State {
                limits: PublishedLimits {
                    weight_per_minute: Some(2400),
                    orders_per_10s: Some(300),
                    orders_per_minute: Some(1200),
                },
                weight: Window::default(),
                orders_10s: Window::default(),
                orders_1m: Window::default(),
                blocked_until_ms: 0,
                banned: false,
            }),
        }
    }

    /// The config.
    pub fn config(&self) -> RateLimitConfig {
        self.cfg
    }

    /// Replaces the limits with those `exchangeInfo` publishes (missing ones are kept).
    pub fn set_limits(&self, l: PublishedLimits) {
        let mut s = self.state.lock();
        s.limits.weight_per_minute = l.weight_per_minute.or(s.limits.weight_per_minute);
        s.limits.orders_per_10s = l.orders_per_10s.or(s.limits.orders_per_10s);
        s.limits.orders_per_minute = l.orders_per_minute.or(s.limits.orders_per_minute);
    }

    /// Reserves `weight` (and one order if `order`) at server time `now`, or says how long
    /// to wait.
    pub fn admit(&self, weight: u32, order: bool, now: i64) -> Result<(), Blocked> {
        let mut s = self.state.lock();
        if s.blocked_until_ms > now {
            return Err(Blocked {
                wait_ms: (s.blocked_until_ms - now) as u64,
                banned: s.banned,
            });
        }
        s.banned = false;
        let minute = now.div_euclid(MINUTE);
        let ten = now.div_euclid(TEN_S);
        let full = |used: u32, add: u32, limit: Option<u32>| {
            limit.is_some_and(|l| used.saturating_add(add) > l)
        };
        let lim = s.limits;
        if weight > 0 && full(*s.weight.used_in(minute), weight, lim.weight_per_minute) {
            return Err(Blocked {
                wait_ms: wait_to_next(now, MINUTE),
                banned: false,
            });
        }
        if order {
            if full(*s.orders_10s.used_in(ten), 1, lim.orders_per_10s) {
                return Err(Blocked {
                    wait_ms: wait_to_next(now, TEN_S),
                    banned: false,
                });
            }
            if full(*s.orders_1m.used_in(minute), 1, lim.orders_per_minute) {
                return Err(Blocked {
                    wait_ms: wait_to_next(now, MINUTE),
                    banned: false,
                });
            }
            *s.orders_10s.used_in(ten) += 1;
            *s.orders_1m.used_in(minute) += 1;
        }
        *s.weight.used_in(minute) += weight;
        Ok(())
    }

    /// Takes the server's counts from an answer received at server time `now`. Counts only
    /// ever go up within a window: requests still in flight have reserved theirs locally.
    pub fn observe(
        &self,
        weight_1m: Option<u32>,
        orders_10s: Option<u32>,
        orders_1m: Option<u32>,
        now: i64,
    ) {
        let mut guard = self.state.lock();
        let s = &mut *guard;
        let minute = now.div_euclid(MINUTE);
        let ten = now.div_euclid(TEN_S);
        for (w, id, v) in [
            (&mut s.weight, minute, weight_1m),
            (&mut s.orders_10s, ten, orders_10s),
            (&mut s.orders_1m, minute, orders_1m),
        ] {
            if let Some(v) = v {
                let used = w.used_in(id);
                *used = (*used).max(v);
            }
        }
    }

    /// A 429 at `now`: nothing goes out until `Retry-After` passes (or the minute ends).
    pub fn on_429(&self, retry_after: Option<Duration>, now: i64) {
        let wait = retry_after
            .map(|d| d.as_millis() as u64)
            .unwrap_or_else(|| wait_to_next(now, MINUTE));
        self.block(wait, false, now);
    }

    /// A 418 at `now`: banned until `until_ms` (from the message) or `Retry-After`.
    pub fn on_418(&self, until_ms: Option<i64>, retry_after: Option<Duration>, now: i64) {
        let wait = match (until_ms, retry_after) {
            (Some(u), _) if u > now => (u - now) as u64,
            (_, Some(d)) => d.as_millis() as u64,
            _ => 2 * MINUTE as u64,
        };
        self.block(wait, true, now);
    }

    fn block(&self, wait_ms: u64, banned: bool, now: i64) {
        let wait_ms = match self.cfg.backoff_cap {
            Some(cap) => wait_ms.min(cap.as_millis() as u64),
            None => wait_ms,
        };
        let mut s = self.state.lock();
        let until = now + wait_ms as i64;
        if until > s.blocked_until_ms {
            s.blocked_until_ms = until;
        }
        s.banned |= banned;
    }

    /// Weight used in the current minute as far as we know.
    pub fn used_weight(&self, now: i64) -> u32 {
        *self.state.lock().weight.used_in(now.div_euclid(MINUTE))
    }
}

/// The ban end in a 418 message: `"... banned until 1700000000000. ..."`.
pub fn ban_until_from_msg(msg: &str) -> Option<i64> {
    let rest = &msg[msg.find("until ")? + 6..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(weight: u32) -> RateLimiter {
        let l = RateLimiter::new(RateLimitConfig {
            max_wait: Duration::ZERO,
            backoff_cap: None,
        });
        l.set_limits(PublishedLimits {
            weight_per_minute: Some(weight),
            orders_per_10s: Some(2),
            orders_per_minute: Some(100),
        });
        l
    }

    #[test]
    fn refuses_before_the_window_is_full() {
        let l = limiter(3);
        let t = 600_000;
        for _ in 0..3 {
            l.admit(1, false, t).unwrap();
        }
        assert_eq!(
            l.admit(1, false, t + 100),
            Err(Blocked {
                wait_ms: 59_900,
                banned: false
            })
        );
        l.admit(1, false, t + MINUTE).unwrap();
    }

    #[test]
    fn headers_raise_the_count_and_orders_have_their_own_windows() {
        let l = limiter(10);
        let t = 600_000;
        l.observe(Some(10), None, None, t);
        assert!(l.admit(1, false, t).is_err());
        // Orders weigh 0 on REST but count on ORDERS.
        l.admit(0, true, t).unwrap();
        l.admit(0, true, t).unwrap();
        assert_eq!(l.admit(0, true, t + 1).unwrap_err().wait_ms, 9_999);
    }

    #[test]
    fn backs_off_after_429_and_418() {
        let l = limiter(100);
        let t = 600_000;
        l.on_429(Some(Duration::from_secs(2)), t);
        assert_eq!(l.admit(1, false, t + 500).unwrap_err().wait_ms, 1_500);
        l.admit(1, false, t + 2_000).unwrap();
        l.on_418(Some(t + 10_000), None, t + 2_000);
        let b = l.admit(1, false, t + 3_000).unwrap_err();
        assert!(b.banned && b.wait_ms == 7_000);
        l.admit(1, false, t + 10_000).unwrap();
        assert_eq!(
            ban_until_from_msg(
                "Way too many requests; IP(1.2.3.4) banned until 1700000000000. Please"
            ),
            Some(1_700_000_000_000)
        );
    }
}
