//! Crash points for the crash test (`tools/crash-test.sh`): with
//! `QUANTUM_FAILPOINT=<point>:<n>` in its environment, a process kills itself with SIGKILL (as
//! `kill -9` would: no destructor, no flush) the `n`-th time it passes `<point>`. The points
//! sit where a crash is most harmful, e.g. `intent_journaled` (an order intent is in the
//! journal but not yet on the `orders` ring) or `order_placed` (Binance has the order, nobody
//! has heard of it yet). Without the variable a pass costs one load of an initialised
//! `OnceLock`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

static POINT: OnceLock<Option<(String, u64)>> = OnceLock::new();
static PASSES: AtomicU64 = AtomicU64::new(0);

fn point() -> &'static Option<(String, u64)> {
    POINT.get_or_init(|| {
        let v = std::env::var("QUANTUM_FAILPOINT").ok()?;
        let (name, n) = v.rsplit_once(':')?;
        Some((name.to_owned(), n.parse().ok()?))
    })
}

/// Passes crash point `name`: kills this process if it is the armed point's `n`-th pass.
#[inline]
pub fn hit(name: &str) {
    if let Some((armed, n)) = point() {
        if armed == name {
            // Relaxed: a counter of passes; the kill below needs no ordering.
            if PASSES.fetch_add(1, Ordering::Relaxed) + 1 == *n {
                eprintln!("failpoint {name}:{n}: killing this process (SIGKILL)");
                // SAFETY: kill(2) with our own pid and a valid signal number.
                unsafe {
                    libc::kill(libc::getpid(), libc::SIGKILL);
                }
            }
        }
    }
}

/// Whether a crash point is armed in this process (`QUANTUM_FAILPOINT` is set and valid).
pub fn armed() -> bool {
    point().is_some()
}
