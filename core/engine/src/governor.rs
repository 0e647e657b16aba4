//! The Governor: one permit per EXECUTE plan, and the execution throttles.
//!
//! **Testnet** mode approves every plan (the legacy behaviour) with the permit TTL (15 s) and
//! throttles nothing. **Production** mode applies, in this order, and denies with the first
//! failing reason:
//!
//! | policy | reason code | applies to | checked |
//! |---|---|---|---|
//! | global kill switch | `kill_switch` | every plan | issue |
//! | per-symbol kill switch | `symbol_kill_switch` | every plan | issue |
//! | trading state HALTED | `trading_halted` | every plan | issue |
//! | trading state REDUCING | `trading_reducing` | opening plans only | issue |
//! | minimum kill score | `kill_score_below_min` | every plan | issue |
//! | cooldown after an execution | `cooldown` | every plan | issue (advisory) and consume |
//! | per-symbol execution rate limit | `rate_limited` | every plan | issue (advisory) and consume |
//! | max notional per order | `max_notional_order` | opening plans only | consume |
//! | max notional per day | `max_notional_day` | opening plans only | consume |
//!
//! **Issue** is [`Governor::evaluate`], on whatever thread the governor runs. **Consume** is
//! [`Throttle::admit`], run by apply between reading both allowing permits and the one CAS that
//! consumes them: it sees the quantity that will really be sent (P3.3's safe quantity, priced at
//! the mark), and it is the one place where executions are recorded, on the one thread that
//! consumes, so no two plans can both pass one cooldown or one rate-limit slot, whatever the
//! thread layout. A plan refused there ends `gov_denied:<reason>` although its permit allowed.
//! The issue-time cooldown and rate checks only let a permit show a deny that is already
//! certain.
//!
//! The exposure checks (REDUCING, notional caps) exist to stop risk being added, so a
//! reduce-only exit never meets them.
//!
//! Switches and execution history live in [`GovernorState`] (atomics, shared): operators flip
//! switches through the front's command path, the throttle records executions, and the governor
//! reads both. Each has one writer: the front.

use std::sync::Arc;

use crossbeam_utils::CachePadded;

use crate::book::Book;
use crate::clock::{ms_to_ns, Clock};
use crate::fixed::{Price, Qty, Score};
use crate::permit::GovPermit;
use crate::sync::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use crate::types::{Plan, SymbolId};

pub use quantum_ipc::codes::{GovReason, TradingState};

/// Governor mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GovMode {
    /// Approve every plan (legacy testnet behaviour).
    Testnet,
    /// Apply the policies.
    Production,
}

/// Rate-limit history kept per symbol; a limit above this is refused at configuration.
pub const MAX_RATE_LIMIT: u32 = 64;

/// Governor configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GovernorConfig {
    /// Mode.
    pub mode: GovMode,
    /// Permit TTL (legacy 15 s).
    pub permit_ttl_ms: u64,
    /// At most this many executions per symbol within `rate_window_ms` (0: no limit).
    pub rate_limit: u32,
    /// The rate limit's window.
    pub rate_window_ms: u64,
    /// No execution on a symbol within this long after the previous one (0: none).
    pub cooldown_ms: u64,
    /// Max notional of one opening order, in quote units.
    pub max_notional_order: Option<Price>,
    /// Max notional of opening orders per UTC day, in quote units.
    pub max_notional_day: Option<Price>,
    /// Minimum kill score.
    pub min_kill_score: Option<Score>,
}

impl Default for GovernorConfig {
    fn default() -> Self {
        GovernorConfig {
            mode: GovMode::Testnet,
            permit_ttl_ms: 15_000,
            rate_limit: 0,
            rate_window_ms: 60_000,
            cooldown_ms: 0,
            max_notional_order: None,
            max_notional_day: None,
            min_kill_score: None,
        }
    }
}

#[derive(Debug)]
struct SymbolGov {
    kill: AtomicU8,
    /// Executions recorded so far.
    exec_count: AtomicU64,
    /// Engine time of execution `n` at `n % MAX_RATE_LIMIT`.
    exec_times: [AtomicU64; MAX_RATE_LIMIT as usize],
    /// Engine time of the last execution, 0 = none.
    last_exec: AtomicU64,
    /// UTC day number `day_notional` belongs to.
    day: AtomicU64,
    /// Notional of opening orders executed that day, quote units.
    day_notional: AtomicI64,
}

/// Switches and execution history, shared between the front (the one writer), the governor
/// and monitors.
#[derive(Debug)]
pub struct GovernorState {
    kill: AtomicU8,
    trading: AtomicU8,
    symbols: Box<[CachePadded<SymbolGov>]>,
}

impl GovernorState {
    /// State for `n` symbols: switches off, ACTIVE, no history.
    pub fn new(n: usize) -> Self {
        let symbols = (0..n)
            .map(|_| {
                CachePadded::new(SymbolGov {
                    kill: AtomicU8::new(0),
                    exec_count: AtomicU64::new(0),
                    exec_times: std::array::from_fn(|_| AtomicU64::new(0)),
                    last_exec: AtomicU64::new(0),
                    day: AtomicU64::new(0),
                    day_notional: AtomicI64::new(0),
                })
            })
            .collect();
        GovernorState {
            kill: AtomicU8::new(0),
            trading: AtomicU8::new(TradingState::Active.code()),
            symbols,
        }
    }

    // Switches are independent flags read per plan; no data hangs off them, so Relaxed.

    /// Global kill switch.
    pub fn set_kill_switch(&self, on: bool) {
        self.kill.store(u8::from(on), Ordering::Relaxed);
    }

    /// A symbol's kill switch; false for an unknown symbol.
    pub fn set_symbol_kill_switch(&self, s: SymbolId, on: bool) -> bool {
        self.symbols
            .get(s.index())
            .map(|g| g.kill.store(u8::from(on), Ordering::Relaxed))
            .is_some()
    }

    /// Trading state.
    pub fn set_trading_state(&self, t: TradingState) {
        self.trading.store(t.code(), Ordering::Relaxed);
    }

    /// Current trading state.
    pub fn trading_state(&self) -> TradingState {
        TradingState::from_code(self.trading.load(Ordering::Relaxed))
            .unwrap_or(TradingState::Halted)
    }

    /// Records an execution on `s` at engine time `now_ns` with its notional (quote units,
    /// counted towards the day's cap when `opening`). One writer: the front (via [`Throttle`]
    /// and recovery).
    pub fn record_execution(
        &self,
        s: SymbolId,
        now_ns: u64,
        notional: i64,
        opening: bool,
        day: u64,
    ) {
        let Some(g) = self.symbols.get(s.index()) else {
            return;
        };
        let n = g.exec_count.load(Ordering::Relaxed);
        g.exec_times[(n % u64::from(MAX_RATE_LIMIT)) as usize]
            .store(now_ns.max(1), Ordering::Relaxed);
        // SYNC POINT: Release pairs with the Acquire in `rate_limited`: a reader that sees
        // count n+1 sees the time stored for execution n.
        g.exec_count.store(n + 1, Ordering::Release);
        g.last_exec.store(now_ns.max(1), Ordering::Relaxed);
        if opening {
            if g.day.load(Ordering::Relaxed) != day {
                g.day.store(day, Ordering::Relaxed);
                g.day_notional.store(0, Ordering::Relaxed);
            }
            let sum = g
                .day_notional
                .load(Ordering::Relaxed)
                .saturating_add(notional);
            g.day_notional.store(sum, Ordering::Relaxed);
        }
    }

    /// Puts back a symbol's execution history from the journal (recovery, before any plan):
    /// the engine times of its last executions, oldest first (at most [`MAX_RATE_LIMIT`] are
    /// kept), and the day's opening notional.
    pub fn restore_history(&self, s: SymbolId, times_ns: &[u64], day: u64, day_notional: i64) {
        let Some(g) = self.symbols.get(s.index()) else {
            return;
        };
        let keep = &times_ns[times_ns.len().saturating_sub(MAX_RATE_LIMIT as usize)..];
        for (n, t) in keep.iter().enumerate() {
            g.exec_times[n % MAX_RATE_LIMIT as usize].store((*t).max(1), Ordering::Relaxed);
        }
        // Release pairs with the Acquire in `rate_limited`, as in `record_execution`.
        g.exec_count.store(keep.len() as u64, Ordering::Release);
        g.last_exec
            .store(keep.last().map_or(0, |t| (*t).max(1)), Ordering::Relaxed);
        g.day.store(day, Ordering::Relaxed);
        g.day_notional.store(day_notional, Ordering::Relaxed);
    }

    fn rate_limited(g: &SymbolGov, limit: u32, window_ns: u64, now_ns: u64) -> bool {
        if limit == 0 {
            return false;
        }
        let n = g.exec_count.load(Ordering::Acquire);
        if n < u64::from(limit) {
            return false;
        }
        // The limit-th most recent execution must be outside the window.
        let idx = ((n - u64::from(limit)) % u64::from(MAX_RATE_LIMIT)) as usize;
        let t = g.exec_times[idx].load(Ordering::Relaxed);
        now_ns.saturating_sub(t) < window_ns
    }

    fn in_cooldown(g: &SymbolGov, cooldown_ms: u64, now_ns: u64) -> bool {
        let last = g.last_exec.load(Ordering::Relaxed);
        cooldown_ms > 0 && last != 0 && now_ns.saturating_sub(last) < ms_to_ns(cooldown_ms)
    }
}

/// The UTC day number of engine time `now_ns`.
fn day_of(clock: &Clock, now_ns: u64) -> u64 {
    clock.wall_ms(now_ns) / 86_400_000
}

/// The governor stage: issues permits. Cloning shares the state.
#[derive(Clone, Debug)]
pub struct Governor {
    cfg: GovernorConfig,
    ttl_ns: u64,
    state: Arc<GovernorState>,
}

impl Governor {
    /// A governor over shared state.
    pub fn new(cfg: GovernorConfig, state: Arc<GovernorState>) -> Self {
        let ttl_ns = ms_to_ns(cfg.permit_ttl_ms);
        Governor { cfg, ttl_ns, state }
    }

    /// The configuration.
    pub fn config(&self) -> &GovernorConfig {
        &self.cfg
    }

    /// Decides on `plan` at engine time `now_ns`.
    pub fn evaluate(&self, plan: &Plan, now_ns: u64) -> GovPermit {
        let verdict = match self.cfg.mode {
            GovMode::Testnet => Ok(()),
            GovMode::Production => self.check(plan, now_ns),
        };
        GovPermit {
            allow: verdict.is_ok(),
            reason: verdict.err(),
            issued_ns: now_ns,
            deadline_ns: now_ns.saturating_add(self.ttl_ns),
        }
    }

    fn check(&self, plan: &Plan, now_ns: u64) -> Result<(), GovReason> {
        let c = &self.cfg;
        let s = &self.state;
        let g = s
            .symbols
            .get(plan.symbol.index())
            .ok_or(GovReason::UnknownSymbol)?;
        let opening = !plan.reduce_only;
        if s.kill.load(Ordering::Relaxed) != 0 {
            return Err(GovReason::KillSwitch);
        }
        if g.kill.load(Ordering::Relaxed) != 0 {
            return Err(GovReason::SymbolKillSwitch);
        }
        match s.trading_state() {
            TradingState::Halted => return Err(GovReason::TradingHalted),
            TradingState::Reducing if opening => return Err(GovReason::TradingReducing),
            _ => {}
        }
        if let Some(min) = c.min_kill_score {
            if plan.kill_score < min {
                return Err(GovReason::KillScoreBelowMin);
            }
        }
        // Advisory here (the history may move before consume); authoritative in `Throttle`.
        if GovernorState::in_cooldown(g, c.cooldown_ms, now_ns) {
            return Err(GovReason::Cooldown);
        }
        if GovernorState::rate_limited(g, c.rate_limit, ms_to_ns(c.rate_window_ms), now_ns) {
            return Err(GovReason::RateLimited);
        }
        Ok(())
    }
}

/// The consume-time half of the governor: checks the execution throttles against the quantity
/// really sent and records the execution, on the front's thread only.
#[derive(Debug)]
pub struct Throttle {
    cfg: GovernorConfig,
    state: Arc<GovernorState>,
    book: Arc<Book>,
    clock: Clock,
}

impl Throttle {
    /// A throttle recording into `state`, pricing notionals at `book`'s marks.
    pub fn new(
        cfg: GovernorConfig,
        state: Arc<GovernorState>,
        book: Arc<Book>,
        clock: Clock,
    ) -> Self {
        Throttle {
            cfg,
            state,
            book,
            clock,
        }
    }

    /// Whether `plan` may execute an order of `qty` at engine time `now_ns`; when it may, the
    /// execution is recorded (so the next plan's check sees it).
    pub fn admit(&self, plan: &Plan, qty: Qty, now_ns: u64) -> Result<(), GovReason> {
        let c = &self.cfg;
        let Some(g) = self.state.symbols.get(plan.symbol.index()) else {
            return Err(GovReason::UnknownSymbol);
        };
        let opening = !plan.reduce_only;
        let mut notional = 0i64;
        let day = day_of(&self.clock, now_ns);
        if c.mode == GovMode::Production {
            if GovernorState::in_cooldown(g, c.cooldown_ms, now_ns) {
                return Err(GovReason::Cooldown);
            }
            if GovernorState::rate_limited(g, c.rate_limit, ms_to_ns(c.rate_window_ms), now_ns) {
                return Err(GovReason::RateLimited);
            }
            if opening && (c.max_notional_order.is_some() || c.max_notional_day.is_some()) {
                let mark = self.book.mark(plan.symbol);
                if mark.is_zero() {
                    return Err(GovReason::NoMarkPrice);
                }
                let n = qty.notional(mark);
                if let Some(cap) = c.max_notional_order {
                    if n > i128::from(cap.units()) {
                        return Err(GovReason::MaxNotionalOrder);
                    }
                }
                if let Some(cap) = c.max_notional_day {
                    let used = if g.day.load(Ordering::Relaxed) == day {
                        g.day_notional.load(Ordering::Relaxed)
                    } else {
                        0
                    };
                    if i128::from(used) + n > i128::from(cap.units()) {
                        return Err(GovReason::MaxNotionalDay);
                    }
                }
                notional = i64::try_from(n).unwrap_or(i64::MAX);
            }
        }
        self.state
            .record_execution(plan.symbol, now_ns, notional, opening, day);
        Ok(())
    }
}
