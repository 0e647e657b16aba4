//! The synthetic plan feed: the seeds' story, replayed.
//!
//! BTCUSDT starts with exchange 0.062 against ledger 0.002, so its EXECUTE plans are denied
//! `reconcile_required_qty_mismatch` until the operator syncs the ledger
//! (`HSET quantum:position:BTCUSDT ledger_amount 0.062`) a tenth of the way in; from then on
//! they execute. ETHUSDT (long) and SOLUSDT (short) run alongside. HOLD and REDUCE plans and
//! re-sent plan ids (the legacy 5 s re-processing) are mixed in.

use quantum_core::{Action, Command, Decision, Input, Plan, PlanId, Qty, Score, SymbolId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Yields the demo's inputs in order.
pub struct Feed {
    rng: StdRng,
    total: u64,
    made: u64,
    sync_at: u64,
    synced: bool,
    recent: Vec<Plan>,
    btc: SymbolId,
    /// Operator events, for the progress log.
    pub events: Vec<String>,
}

impl Feed {
    /// A feed of `total` plans from `seed`.
    pub fn new(total: u64, seed: u64, btc: SymbolId) -> Self {
        Feed {
            rng: StdRng::seed_from_u64(seed),
            total,
            made: 0,
            sync_at: total / 10,
            synced: false,
            recent: Vec::with_capacity(64),
            btc,
            events: Vec::new(),
        }
    }

    /// Plans made so far.
    pub fn made(&self) -> u64 {
        self.made
    }

    /// The next input, or `None` when all plans are out.
    pub fn next_input(&mut self, n_symbols: u16) -> Option<Input> {
        if self.made >= self.total {
            return None;
        }
        if !self.synced && self.made >= self.sync_at {
            self.synced = true;
            self.events.push(format!(
                "after {} plans: operator runs HSET quantum:position:BTCUSDT ledger_amount 0.062",
                self.made
            ));
            return Some(Input::Command(Command::SetLedger {
                symbol: self.btc,
                amount: "0.062".parse::<Qty>().expect("literal"),
            }));
        }
        self.made += 1;
        let roll = self.rng.gen_range(0..100);
        if roll < 8 && !self.recent.is_empty() {
            // A plan id seen before: the legacy stream re-delivers plans.
            let again = self.recent[self.rng.gen_range(0..self.recent.len())];
            return Some(Input::Plan(again));
        }
        let symbol = SymbolId(self.rng.gen_range(0..n_symbols));
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
        let mut plan = Plan::exit(PlanId(self.rng.gen()), symbol, decision, action);
        plan.kill_score = Score::from_units(self.rng.gen_range(30_000_000..90_000_000));
        if self.recent.len() < 64 {
            self.recent.push(plan);
        } else {
            let i = self.rng.gen_range(0..64);
            self.recent[i] = plan;
        }
        Some(Input::Plan(plan))
    }
}
