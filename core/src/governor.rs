//! The Governor: one permit per EXECUTE plan.
//!
//! **Testnet** mode approves every plan (the legacy behaviour) with the permit TTL (15 s).
//! **Production** mode applies, in this order, and denies with the first failing reason:
//!
//! | policy | reason code | applies to |
//! |---|---|---|
//! | global kill switch | `kill_switch` | every plan |
//! | per-symbol kill switch | `symbol_kill_switch` | every plan |
//! | trading state HALTED | `trading_halted` | every plan |
//! | trading state REDUCING | `trading_reducing` | opening plans only |
//! | minimum kill score | `kill_score_below_min` | every plan |
//! | cooldown after an execution | `cooldown` | every plan |
//! | per-symbol execution rate limit | `rate_limited` | every plan |
//! | max notional per order | `max_notional_order` | opening plans only |
//! | max notional per day | `max_notional_day` | opening plans only |
//!
//! The exposure checks (REDUCING, notional caps) exist to stop risk being added, so a
//! reduce-only exit never meets them: an exit is only stopped by an operator's explicit switch
//! (kill, HALTED) or by the execution throttles (kill score, cooldown, rate).
//!
//! Switches and execution history live in [`GovernorState`] (atomics, shared): operators flip
//! switches from the command path, the apply stage records executions, and the governor reads
//! both, on whatever thread it runs.

use crossbeam_utils::CachePadded;

use crate::clock::ms_to_ns;
use crate::fixed::{Price, Qty, Score};
use crate::ledger::Ledger;
use crate::permit::GovPermit;
use crate::sync::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use crate::types::{Plan, SymbolId};

/// Why the governor denied. Codes are stable: they travel in permits and over the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum GovReason {
    /// Global kill switch on.
    KillSwitch = 1,
    /// The symbol's kill switch on.
    SymbolKillSwitch = 2,
    /// Trading state HALTED.
    TradingHalted = 3,
    /// Trading state REDUCING and the plan opens exposure.
    TradingReducing = 4,
    /// Too many executions on the symbol within the window.
    RateLimited = 5,
    /// The symbol executed too recently.
    Cooldown = 6,
    /// The order's notional is over the cap.
    MaxNotionalOrder = 7,
    /// The day's notional would go over the cap.
    MaxNotionalDay = 8,
    /// Kill score under the minimum.
    KillScoreBelowMin = 9,
    /// Symbol not configured.
    UnknownSymbol = 10,
    /// An opening plan's notional cannot be computed: no mark price yet.
    NoMarkPrice = 11,
    /// A legacy governor denied without a reason we know.
    Denied = 12,
}

impl GovReason {
    /// Every reason.
    pub const ALL: &'static [GovReason] = &[
        GovReason::KillSwitch,
        GovReason::SymbolKillSwitch,
        GovReason::TradingHalted,
        GovReason::TradingReducing,
        GovReason::RateLimited,
        GovReason::Cooldown,
        GovReason::MaxNotionalOrder,
        GovReason::MaxNotionalDay,
        GovReason::KillScoreBelowMin,
        GovReason::UnknownSymbol,
        GovReason::NoMarkPrice,
        GovReason::Denied,
    ];

    /// The code as text, as operators grep for it.
    pub const fn as_str(self) -> &'static str {
        match self {
            GovReason::KillSwitch => "kill_switch",
            GovReason::SymbolKillSwitch => "symbol_kill_switch",
            GovReason::TradingHalted => "trading_halted",
            GovReason::TradingReducing => "trading_reducing",
            GovReason::RateLimited => "rate_limited",
            GovReason::Cooldown => "cooldown",
            GovReason::MaxNotionalOrder => "max_notional_order",
            GovReason::MaxNotionalDay => "max_notional_day",
            GovReason::KillScoreBelowMin => "kill_score_below_min",
            GovReason::UnknownSymbol => "unknown_symbol",
            GovReason::NoMarkPrice => "no_mark_price",
            GovReason::Denied => "denied",
        }
    }

    /// From a permit's code; unknown codes read as [`GovReason::Denied`].
    pub fn from_code(c: u16) -> GovReason {
        GovReason::ALL
            .iter()
            .copied()
            .find(|r| *r as u16 == c)
            .unwrap_or(GovReason::Denied)
    }
}

/// Governor mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GovMode {
    /// Approve every plan (legacy testnet behaviour).
    Testnet,
    /// Apply the policies.
    Production,
}

/// Trading state set by operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TradingState {
    /// Everything allowed.
    Active = 0,
    /// Only exits.
    Reducing = 1,
    /// Nothing.
    Halted = 2,
}

impl TradingState {
    fn from_u8(v: u8) -> TradingState {
        match v {
            0 => TradingState::Active,
            1 => TradingState::Reducing,
            _ => TradingState::Halted,
        }
    }
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
    /// Wall-clock ms at engine-clock zero, to know which UTC day an engine time falls in.
    pub wall_origin_ms: u64,
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
            wall_origin_ms: 0,
        }
    }
}

#[derive(Debug)]
struct SymbolGov {
    kill: AtomicU8,
    /// Executions recorded so far. Single writer: the apply stage.
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

/// Switches and execution history, shared between operators, the governor and apply.
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
            trading: AtomicU8::new(TradingState::Active as u8),
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
        self.trading.store(t as u8, Ordering::Relaxed);
    }

    /// Current trading state.
    pub fn trading_state(&self) -> TradingState {
        TradingState::from_u8(self.trading.load(Ordering::Relaxed))
    }

    /// Records an execution on `s` at engine time `now_ns` with its notional (quote units,
    /// counted towards the day's cap when `opening`). Single writer: the apply stage.
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
            g.day_notional.fetch_add(notional, Ordering::Relaxed);
        }
    }

    fn rate_limited(&self, g: &SymbolGov, limit: u32, window_ns: u64, now_ns: u64) -> bool {
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
}

/// The governor stage. Cloning shares the state (apply keeps a clone to record executions).
#[derive(Clone, Debug)]
pub struct Governor {
    cfg: GovernorConfig,
    ttl_ns: u64,
    state: std::sync::Arc<GovernorState>,
    ledger: std::sync::Arc<Ledger>,
}

impl Governor {
    /// A governor over shared state and book.
    pub fn new(
        cfg: GovernorConfig,
        state: std::sync::Arc<GovernorState>,
        ledger: std::sync::Arc<Ledger>,
    ) -> Self {
        let ttl_ns = ms_to_ns(cfg.permit_ttl_ms);
        Governor {
            cfg,
            ttl_ns,
            state,
            ledger,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &GovernorConfig {
        &self.cfg
    }

    /// The UTC day number of engine time `now_ns`.
    pub fn day_of(&self, now_ns: u64) -> u64 {
        (self.cfg.wall_origin_ms + now_ns / 1_000_000) / 86_400_000
    }

    /// Decides on `plan` at engine time `now_ns`.
    pub fn evaluate(&self, plan: &Plan, now_ns: u64) -> GovPermit {
        let verdict = match self.cfg.mode {
            GovMode::Testnet => Ok(()),
            GovMode::Production => self.check(plan, now_ns),
        };
        GovPermit {
            allow: verdict.is_ok(),
            reason: verdict.err().map_or(0, |r| r as u16),
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
        if c.cooldown_ms > 0 {
            let last = g.last_exec.load(Ordering::Relaxed);
            if last != 0 && now_ns.saturating_sub(last) < ms_to_ns(c.cooldown_ms) {
                return Err(GovReason::Cooldown);
            }
        }
        if s.rate_limited(g, c.rate_limit, ms_to_ns(c.rate_window_ms), now_ns) {
            return Err(GovReason::RateLimited);
        }
        if opening && (c.max_notional_order.is_some() || c.max_notional_day.is_some()) {
            let mark = self.ledger.mark(plan.symbol);
            if mark.is_zero() {
                return Err(GovReason::NoMarkPrice);
            }
            let notional = plan.qty.notional(mark);
            if let Some(cap) = c.max_notional_order {
                if notional > i128::from(cap.units()) {
                    return Err(GovReason::MaxNotionalOrder);
                }
            }
            if let Some(cap) = c.max_notional_day {
                let today = self.day_of(now_ns);
                let used = if g.day.load(Ordering::Relaxed) == today {
                    g.day_notional.load(Ordering::Relaxed)
                } else {
                    0
                };
                if i128::from(used) + notional > i128::from(cap.units()) {
                    return Err(GovReason::MaxNotionalDay);
                }
            }
        }
        Ok(())
    }

    /// Records an executed order (called by the apply stage).
    pub fn record(&self, plan: &Plan, qty: Qty, now_ns: u64) {
        // Only opening orders count towards the day's notional; exits skip the mark lookup.
        let notional = if plan.reduce_only {
            0
        } else {
            let mark = self.ledger.mark(plan.symbol);
            i64::try_from(qty.notional(mark)).unwrap_or(i64::MAX)
        };
        self.state.record_execution(
            plan.symbol,
            now_ns,
            notional,
            !plan.reduce_only,
            self.day_of(now_ns),
        );
    }
}
