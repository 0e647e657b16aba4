//! What became of an order: the vocabulary of [`super::client`]'s order path.
//!
//! ```text
//!  place() ──> Placed(order)                 accepted, with Binance's answer
//!         ├──> Rejected(error)               refused: nothing was placed (Binance code or local)
//!         └──> Unknown { pending, cause }    timeout, dropped connection, any 5xx but -1008,
//!                  │                         an answer without a Binance code, a redirect,
//!                  │                         -1006, -1007, or -4116 (an open order has the id)
//!                  ▼
//!  resolve(pending) ──> Found { order, by: Lookup | Stream }   the order exists, in this state
//!                  └──> NeverPlaced          -2013 once recvWindow + margin passed since the send
//! ```
//!
//! An unknown outcome is resolved only by looking the client id up (or by the user data
//! stream confirming it, whichever comes first), never by re-sending: -2013 right after a send
//! means "not known yet", and only once `recvWindow` plus a margin has passed since the send
//! can Binance no longer accept the lost request, so only then does -2013 mean "never placed".
//! That time is measured on the monotonic clock ([`Instant`]), never on the wall clock or the
//! server time estimate: either may step forward (NTP, a resumed VM, a re-measured server
//! offset) while the request still waits in the exchange's queue. The margin is at least
//! [`MIN_SETTLE_MARGIN`]. [`Pending`] is also what a restarted process builds for an order it
//! may have sent before ([`SentAt::AssumeNow`] when it does not know when).

use std::time::{Duration, Instant};

use crate::error::Error;
use crate::futures::models::Order;

/// The least time past `recvWindow` before a -2013 counts as "never placed". Binance accepts
/// a `timestamp` up to 1000 ms ahead of its clock, so a request whose timestamp our offset
/// estimate put ahead stays acceptable up to a second longer than `recvWindow` after it left.
pub const MIN_SETTLE_MARGIN: Duration = Duration::from_secs(1);

/// When the request that may have placed an order was sent, on the monotonic clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SentAt {
    /// At this instant or earlier.
    At(Instant),
    /// Not known: assume it was sent just now (the lookup then waits a full recvWindow
    /// before it may conclude "never placed").
    AssumeNow,
}

/// An order whose existence is in doubt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Symbol.
    pub symbol: String,
    /// Client order id it was (or may have been) sent with.
    pub client_order_id: String,
    /// When.
    pub sent_at: SentAt,
}

impl Pending {
    /// The instant after which a lost request sent at `sent_at` can no longer be accepted:
    /// `sent_at + recv_window + max(margin, MIN_SETTLE_MARGIN)`, with `now` for
    /// [`SentAt::AssumeNow`].
    pub fn settles_at(&self, now: Instant, recv_window: Duration, margin: Duration) -> Instant {
        let base = match self.sent_at {
            SentAt::At(t) => t,
            SentAt::AssumeNow => now,
        };
        base + recv_window + margin.max(MIN_SETTLE_MARGIN)
    }
}

/// The outcome of one placement attempt.
#[derive(Debug)]
pub enum Placement {
    /// Binance accepted the order and answered.
    Placed(Order),
    /// Refused: nothing was placed. `api_code()` gives Binance's code when it answered one;
    /// local refusals (rate limit, unknown symbol, quantity) have none.
    Rejected(Error),
    /// The order may or may not exist: resolve it before anything else.
    Unknown(Unknown),
}

/// An unknown outcome and its cause.
#[derive(Debug)]
pub struct Unknown {
    /// What to look up, with the failure time as the (latest possible) send time.
    pub pending: Pending,
    /// Why the outcome is unknown.
    pub cause: Error,
}

/// How a found order was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FoundBy {
    /// `GET /fapi/v1/order` by client id.
    Lookup,
    /// The user data stream confirmed it ([`super::confirmations`]).
    Stream,
}

/// What resolving an unknown outcome found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The order exists, in the state `order` shows.
    Found {
        /// The order (status NEW, FILLED, ...).
        order: Order,
        /// By lookup or by the stream.
        by: FoundBy,
    },
    /// Binance does not know the client id and can no longer accept the lost request.
    NeverPlaced,
}

/// What happens to one order on its way, for a caller that reports it (the bridge tells the
/// core "unknown" when it happens and "resolved" later).
#[derive(Debug)]
pub enum OrderEvent<'a> {
    /// Attempt `attempt` ended with an unknown outcome; it is being looked up. Until
    /// `settles_at` (monotonic clock) a -2013 means "not known yet".
    Unknown {
        /// 1 for the first send.
        attempt: u32,
        /// Why.
        cause: &'a Error,
        /// When -2013 starts to mean "never placed".
        settles_at: Instant,
    },
    /// A lookup answered -2013 before the settle time: still waiting.
    NotKnownYet {
        /// When -2013 starts to mean "never placed".
        settles_at: Instant,
    },
    /// The doubt is over.
    Resolved(&'a Resolution),
    /// The order was never placed and is being sent again (same client id).
    Resending {
        /// The attempt about to go out.
        attempt: u32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settle_time_counts_from_the_send_or_from_now_with_at_least_a_second() {
        let p = |sent_at| Pending {
            symbol: "BTCUSDT".into(),
            client_order_id: "c".into(),
            sent_at,
        };
        let ms = Duration::from_millis;
        let sent = Instant::now();
        let now = sent + ms(9_999);
        assert_eq!(
            p(SentAt::At(sent)).settles_at(now, ms(5_000), ms(1_500)),
            sent + ms(6_500)
        );
        assert_eq!(
            p(SentAt::AssumeNow).settles_at(now, ms(5_000), ms(1_500)),
            now + ms(6_500)
        );
        // A margin under a second is raised to one.
        assert_eq!(
            p(SentAt::At(sent)).settles_at(now, ms(5_000), ms(200)),
            sent + ms(6_000)
        );
    }
}
