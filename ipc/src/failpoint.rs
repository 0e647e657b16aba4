//! Crash points for the crash test (`tools/crash-test.sh`): with
//! `QUANTUM_FAILPOINT=<point>:<n>` in its environment, a process kills itself with SIGKILL (as
//! `kill -9` would: no destructor, no flush) the `n`-th time it passes `<point>`. The points
//! sit where a crash is most harmful, e.g. `intent_journaled` (an order intent is in the
//! journal but not yet on the `orders` ring) or `order_placed` (Binance has the order, nobody
//! has heard of it yet). Every point is a [`Point`], so code passing one names it by a variant
//! (a typo does not compile) and tests build the variable's value with [`Point::kill_at`] and
//! [`Point::stop_at`]. `QUANTUM_FAILPOINT=<point>:<n>:stop` stops the process there instead
//! (SIGSTOP, as a stalled process would be) until it gets SIGCONT: tests use it to look at a
//! process caught in the middle of something, e.g. a daemon that is still starting. Without
//! the variable a pass costs one load of an initialised `OnceLock`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable that arms a crash point.
pub const ENV: &str = "QUANTUM_FAILPOINT";

/// Every crash point, by where it sits. The names are the ones `QUANTUM_FAILPOINT` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Point {
    /// The daemon is starting: its rings and journal are not ready yet (`daemon_starting`).
    DaemonStarting,
    /// An event is in the journal and has not left the daemon yet (`event_journaled`).
    EventJournaled,
    /// An order intent is in the journal but not yet on the `orders` ring (`intent_journaled`).
    IntentJournaled,
    /// An order intent is on the `orders` ring (`intent_pushed`).
    IntentPushed,
    /// The Binance bridge reported `OrderSent` and is about to send the order
    /// (`order_sending`).
    OrderSending,
    /// Binance has the order and nobody has heard of it yet (`order_placed`).
    OrderPlaced,
}

impl Point {
    /// Every point.
    pub const ALL: [Point; 6] = [
        Point::DaemonStarting,
        Point::EventJournaled,
        Point::IntentJournaled,
        Point::IntentPushed,
        Point::OrderSending,
        Point::OrderPlaced,
    ];

    /// Its name in `QUANTUM_FAILPOINT`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Point::DaemonStarting => "daemon_starting",
            Point::EventJournaled => "event_journaled",
            Point::IntentJournaled => "intent_journaled",
            Point::IntentPushed => "intent_pushed",
            Point::OrderSending => "order_sending",
            Point::OrderPlaced => "order_placed",
        }
    }

    /// The point named `name`.
    pub fn parse(name: &str) -> Option<Point> {
        Point::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The value of [`ENV`] that kills a process (SIGKILL) at its `n`-th pass here.
    pub fn kill_at(self, n: u64) -> String {
        format!("{}:{n}", self.as_str())
    }

    /// The value of [`ENV`] that stops a process (SIGSTOP) at its `n`-th pass here.
    pub fn stop_at(self, n: u64) -> String {
        format!("{}:{n}:stop", self.as_str())
    }
}

impl std::fmt::Display for Point {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The armed point: which, the pass that fires, and the signal it sends this process. A name
/// no [`Point`] has arms nothing.
static POINT: OnceLock<Option<(Point, u64, libc::c_int)>> = OnceLock::new();
static PASSES: AtomicU64 = AtomicU64::new(0);

fn point() -> &'static Option<(Point, u64, libc::c_int)> {
    POINT.get_or_init(|| parse_env(&std::env::var(ENV).ok()?))
}

/// `<point>:<n>` or `<point>:<n>:stop`.
fn parse_env(v: &str) -> Option<(Point, u64, libc::c_int)> {
    let (v, signal) = match v.strip_suffix(":stop") {
        Some(rest) => (rest, libc::SIGSTOP),
        None => (v, libc::SIGKILL),
    };
    let (name, n) = v.rsplit_once(':')?;
    Some((Point::parse(name)?, n.parse().ok()?, signal))
}

/// Passes crash point `at`: kills (or stops) this process if it is the armed point's `n`-th
/// pass.
#[inline]
pub fn hit(at: Point) {
    if let Some((armed, n, signal)) = point() {
        if *armed == at {
            // Relaxed: a counter of passes; the signal below needs no ordering.
            if PASSES.fetch_add(1, Ordering::Relaxed) + 1 == *n {
                let what = if *signal == libc::SIGSTOP {
                    "stopping this process (SIGSTOP) until SIGCONT"
                } else {
                    "killing this process (SIGKILL)"
                };
                eprintln!("failpoint {at}:{n}: {what}");
                // SAFETY: kill(2) with our own pid and a valid signal number.
                unsafe {
                    libc::kill(libc::getpid(), *signal);
                }
            }
        }
    }
}

/// Whether a crash point is armed in this process (`QUANTUM_FAILPOINT` is set and names a
/// [`Point`]).
pub fn armed() -> bool {
    point().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_distinct() {
        for p in Point::ALL {
            assert_eq!(Point::parse(p.as_str()), Some(p));
            assert_eq!(
                Point::ALL
                    .iter()
                    .filter(|q| q.as_str() == p.as_str())
                    .count(),
                1
            );
        }
        assert_eq!(Point::parse("order_place"), None);
    }

    #[test]
    fn env_values_parse_back() {
        assert_eq!(
            parse_env(&Point::OrderPlaced.kill_at(3)),
            Some((Point::OrderPlaced, 3, libc::SIGKILL))
        );
        assert_eq!(
            parse_env(&Point::DaemonStarting.stop_at(1)),
            Some((Point::DaemonStarting, 1, libc::SIGSTOP))
        );
        assert_eq!(Point::IntentPushed.kill_at(2), "intent_pushed:2");
        assert_eq!(Point::DaemonStarting.stop_at(1), "daemon_starting:1:stop");
        assert_eq!(parse_env("nowhere:1"), None);
        assert_eq!(parse_env("order_placed"), None);
    }
}
