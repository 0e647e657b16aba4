//! Crash points for the crash test (`tools/crash-test.sh`): with
//! `QUANTUM_FAILPOINT=<point>:<n>` in its environment, a process kills itself with SIGKILL (as
//! `kill -9` would: no destructor, no flush) the `n`-th time it passes `<point>`. The points
//! sit where a crash is most harmful, e.g. `intent_journaled` (an order intent is in the
//! journal but not yet on the `orders` ring) or `order_placed` (Binance has the order, nobody
//! has heard of it yet). `QUANTUM_FAILPOINT=<point>:<n>:stop` stops the process there instead
//! (SIGSTOP, as a stalled process would be) until it gets SIGCONT: tests use it to look at a
//! process caught in the middle of something, e.g. a daemon that is still starting. Without
//! the variable a pass costs one load of an initialised `OnceLock`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The armed point: its name, the pass that fires, and the signal it sends this process.
static POINT: OnceLock<Option<(String, u64, libc::c_int)>> = OnceLock::new();
static PASSES: AtomicU64 = AtomicU64::new(0);

fn point() -> &'static Option<(String, u64, libc::c_int)> {
    POINT.get_or_init(|| {
        let v = std::env::var("QUANTUM_FAILPOINT").ok()?;
        let (v, signal) = match v.strip_suffix(":stop") {
            Some(rest) => (rest, libc::SIGSTOP),
            None => (v.as_str(), libc::SIGKILL),
        };
        let (name, n) = v.rsplit_once(':')?;
        Some((name.to_owned(), n.parse().ok()?, signal))
    })
}

/// Passes crash point `name`: kills (or stops) this process if it is the armed point's `n`-th
/// pass.
#[inline]
pub fn hit(name: &str) {
    if let Some((armed, n, signal)) = point() {
        if armed == name {
            // Relaxed: a counter of passes; the signal below needs no ordering.
            if PASSES.fetch_add(1, Ordering::Relaxed) + 1 == *n {
                let what = if *signal == libc::SIGSTOP {
                    "stopping this process (SIGSTOP) until SIGCONT"
                } else {
                    "killing this process (SIGKILL)"
                };
                eprintln!("failpoint {name}:{n}: {what}");
                // SAFETY: kill(2) with our own pid and a valid signal number.
                unsafe {
                    libc::kill(libc::getpid(), *signal);
                }
            }
        }
    }
}

/// Whether a crash point is armed in this process (`QUANTUM_FAILPOINT` is set and valid).
pub fn armed() -> bool {
    point().is_some()
}
