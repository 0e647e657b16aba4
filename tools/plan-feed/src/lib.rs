//! The synthetic plan feed: the seeds' story, replayed (used by `quantum demo` and the crash
//! test, so both feed the same mix).
//!
//! BTCUSDT starts with exchange 0.062 against ledger 0.002, so its EXECUTE plans are denied
//! `reconcile_required_qty_mismatch` until the operator syncs the ledger
//! (`HSET quantum:position:BTCUSDT ledger_amount 0.062`) a tenth of the way in; from then on
//! they execute. ETHUSDT (long) and SOLUSDT (short) run alongside. HOLD and REDUCE plans and
//! re-sent plan ids (the legacy 5 s re-processing) are mixed in. A symbol the entry side is
//! re-opening gets no plans meanwhile (the exit brain leaves it alone).

use quantum_core::{Action, Decision, Plan, PlanId, Score, SymbolId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What the feed asks for next.
pub enum Next {
    /// A plan.
    Plan(Plan),
    /// The operator's ledger sync of BTCUSDT.
    SyncBtc,
    /// Every symbol is paused: try again shortly.
    Wait,
}

/// Yields the demo's plans in order.
pub struct Feed {
    rng: StdRng,
    total: u64,
    made: u64,
    sync_at: u64,
    synced: bool,
    recent: Vec<Plan>,
    n_symbols: u16,
}

impl Feed {
    /// A feed of `total` plans over `n_symbols` symbols from `seed`.
    pub fn new(total: u64, seed: u64, n_symbols: u16) -> Self {
        Feed {
            rng: StdRng::seed_from_u64(seed),
            total,
            made: 0,
            sync_at: total / 10,
            synced: false,
            recent: Vec::with_capacity(64),
            n_symbols,
        }
    }

    /// Plans made so far.
    pub fn made(&self) -> u64 {
        self.made
    }

    /// All plans are out.
    pub fn done(&self) -> bool {
        self.made >= self.total
    }

    /// The next plan (none of symbols `paused`), or the operator's sync; `None` when done.
    pub fn next(&mut self, paused: &dyn Fn(SymbolId) -> bool) -> Option<Next> {
        if self.done() {
            return None;
        }
        if !self.synced && self.made >= self.sync_at {
            self.synced = true;
            return Some(Next::SyncBtc);
        }
        let roll = self.rng.gen_range(0..100);
        if roll < 8 && !self.recent.is_empty() {
            // A plan id seen before: the legacy stream re-delivers plans.
            let again = self.recent[self.rng.gen_range(0..self.recent.len())];
            if !paused(again.symbol) {
                self.made += 1;
                return Some(Next::Plan(again));
            }
        }
        let mut symbol = SymbolId(self.rng.gen_range(0..self.n_symbols));
        for _ in 0..self.n_symbols {
            if !paused(symbol) {
                break;
            }
            symbol = SymbolId((symbol.0 + 1) % self.n_symbols);
        }
        if paused(symbol) {
            // Every symbol is being re-opened: nothing to feed this round.
            return Some(Next::Wait);
        }
        let decision = match roll {
            0..=59 => Decision::Execute,
            60..=84 => Decision::Hold,
            _ => Decision::Reduce,
        };
        let action = match (decision, self.rng.gen_range(0..20)) {
            (Decision::Execute, 0..=7) => Action::Partial25,
            (Decision::Execute, 8..=13) => Action::Partial50,
            (Decision::Execute, 14..=18) => Action::Partial75,
            (Decision::Execute, _) => Action::FullClose,
            _ => Action::None,
        };
        self.made += 1;
        let mut plan = Plan::exit(PlanId(self.rng.gen()), symbol, decision, action);
        plan.kill_score = Score::from_units(self.rng.gen_range(30_000_000..90_000_000));
        if decision == Decision::Execute {
            if self.recent.len() < 64 {
                self.recent.push(plan);
            } else {
                let i = self.rng.gen_range(0..64);
                self.recent[i] = plan;
            }
        }
        Some(Next::Plan(plan))
    }
}
