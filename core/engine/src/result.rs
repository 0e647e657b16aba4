//! What the chain says about each plan, and the legacy log lines operators grep for.

use std::fmt;

use quantum_ipc::codes::ResultError;

use crate::fixed::Qty;
use crate::governor::GovReason;
use crate::p33::P33Reason;
use crate::permit::P33Context;
use crate::types::{Decision, PlanId, SymbolId, Symbols};

/// Why an EXECUTE plan did not become an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// The governor's permit did not arrive within the wait.
    MissingGov,
    /// P3.3's permit did not arrive within the wait.
    MissingP33,
    /// The governor denied (at issue, or at consume for the execution throttles).
    GovDenied(GovReason),
    /// P3.3 denied.
    P33Denied(P33Reason, P33Context),
    /// A permit's TTL, or the apply deadline, passed before the permits could be consumed.
    Expired,
    /// Dedupe is full of ids younger than its horizon.
    DedupeFull,
    /// Too many orders in flight to track another.
    OrdersFull,
    /// The core stopped while the plan waited; ended by the restarted core.
    Interrupted,
    /// Older than the maximum plan age (`max_plan_age_ms`): never ordered.
    Stale,
}

impl Block {
    /// The legacy `error` code and its detail (the deny reason's code).
    pub fn codes(&self) -> (ResultError, u16) {
        match self {
            Block::MissingGov => (ResultError::MissingGov, 0),
            Block::MissingP33 => (ResultError::MissingP33, 0),
            Block::GovDenied(r) => (ResultError::GovDenied, r.code()),
            Block::P33Denied(r, _) => (ResultError::P33Denied, r.code()),
            Block::Expired => (ResultError::Expired, 0),
            Block::DedupeFull => (ResultError::DedupeFull, 0),
            Block::OrdersFull => (ResultError::OrdersFull, 0),
            Block::Interrupted => (ResultError::Interrupted, 0),
            Block::Stale => (ResultError::PlanStale, 0),
        }
    }

    /// The block these codes name (`None` for `Duplicate`, which is not a block, and for
    /// unknown reason codes). A `p33_denied` gets `context`.
    pub fn from_codes(error: ResultError, detail: u16, context: P33Context) -> Option<Block> {
        Some(match error {
            ResultError::MissingGov => Block::MissingGov,
            ResultError::MissingP33 => Block::MissingP33,
            ResultError::GovDenied => Block::GovDenied(GovReason::from_code(detail)?),
            ResultError::P33Denied => Block::P33Denied(P33Reason::from_code(detail)?, context),
            ResultError::Expired => Block::Expired,
            ResultError::DedupeFull => Block::DedupeFull,
            ResultError::OrdersFull => Block::OrdersFull,
            ResultError::Interrupted => Block::Interrupted,
            ResultError::PlanStale => Block::Stale,
            ResultError::Duplicate => return None,
        })
    }
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Block::GovDenied(r) => write!(f, "gov_denied:{r}"),
            Block::P33Denied(r, _) => write!(f, "p33_denied:{r}"),
            other => f.write_str(other.codes().0.as_str()),
        }
    }
}

/// The class of a plan's outcome that latency is tagged by (`outcome` label): few enough
/// for a histogram each, fine enough to tell an executed plan from each kind of "no".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutcomeClass {
    /// An order was made.
    Executed,
    /// The governor denied.
    DeniedGov,
    /// P3.3 denied.
    DeniedP33,
    /// Apply gave up: a permit missing or expired, no room for the order, interrupted.
    DeniedApply,
    /// Refused at admission: stale, or dedupe full.
    Refused,
    /// Seen before.
    Duplicate,
    /// Not an EXECUTE plan.
    NotExecute,
}

impl OutcomeClass {
    /// Every class, in the order reports show them.
    pub const ALL: [OutcomeClass; 7] = [
        OutcomeClass::Executed,
        OutcomeClass::DeniedGov,
        OutcomeClass::DeniedP33,
        OutcomeClass::DeniedApply,
        OutcomeClass::Refused,
        OutcomeClass::Duplicate,
        OutcomeClass::NotExecute,
    ];

    /// Its name (the `outcome` label's value).
    pub fn name(self) -> &'static str {
        match self {
            OutcomeClass::Executed => "executed",
            OutcomeClass::DeniedGov => "denied_gov",
            OutcomeClass::DeniedP33 => "denied_p33",
            OutcomeClass::DeniedApply => "denied_apply",
            OutcomeClass::Refused => "refused",
            OutcomeClass::Duplicate => "duplicate",
            OutcomeClass::NotExecute => "not_execute",
        }
    }

    /// Its position in [`OutcomeClass::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl Outcome {
    /// The outcome's class.
    pub fn class(&self) -> OutcomeClass {
        match self {
            Outcome::Executed { .. } => OutcomeClass::Executed,
            Outcome::Blocked(Block::GovDenied(_)) => OutcomeClass::DeniedGov,
            Outcome::Blocked(Block::P33Denied(..)) => OutcomeClass::DeniedP33,
            Outcome::Blocked(
                Block::MissingGov
                | Block::MissingP33
                | Block::Expired
                | Block::OrdersFull
                | Block::Interrupted,
            ) => OutcomeClass::DeniedApply,
            Outcome::Blocked(Block::DedupeFull | Block::Stale) => OutcomeClass::Refused,
            Outcome::Duplicate { .. } => OutcomeClass::Duplicate,
            Outcome::NonExecute => OutcomeClass::NotExecute,
        }
    }
}

/// The end of one plan's way through the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Both permits consumed; an order of `qty` goes to the exchange (its intent is the event
    /// just before this result).
    Executed {
        /// P3.3's safe quantity.
        qty: Qty,
    },
    /// Not executed, and why.
    Blocked(Block),
    /// The plan id was seen before. `ordered`: the quantity of the order of ours the plan
    /// has, when the core knows one (in flight, or ended having filled; the exchange's history
    /// may have told it of an order another host placed), so a reader whose record of the
    /// plan's first answer was lost can still say it executed.
    Duplicate {
        /// The plan's order's quantity, when it has one the core knows.
        ordered: Option<Qty>,
    },
    /// Not an EXECUTE plan: published as not executed without error, as the legacy system does.
    NonExecute,
}

impl Outcome {
    /// A duplicate, ordered or not.
    pub fn is_duplicate(&self) -> bool {
        matches!(self, Outcome::Duplicate { .. })
    }

    /// The legacy `error` text of this outcome: `gov_denied:<reason>`, `duplicate`, ...;
    /// `None` when there is no error (executed, or not an EXECUTE plan).
    pub fn error_text(&self) -> Option<String> {
        match self {
            Outcome::Blocked(b) => Some(b.to_string()),
            Outcome::Duplicate { .. } => Some("duplicate".to_string()),
            Outcome::Executed { .. } | Outcome::NonExecute => None,
        }
    }

    /// Whether this is an answer given at admission, before (and instead of) a `PlanAccepted`
    /// event: the plan was never remembered or waited. A reader that acknowledges a plan on
    /// its acceptance acknowledges these on their result.
    pub fn at_admission(&self) -> bool {
        matches!(
            self,
            Outcome::NonExecute
                | Outcome::Duplicate { .. }
                | Outcome::Blocked(Block::DedupeFull)
                | Outcome::Blocked(Block::Stale)
        )
    }
}

/// One result per plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanResult {
    /// The plan.
    pub plan: PlanId,
    /// Its symbol.
    pub symbol: SymbolId,
    /// Its decision.
    pub decision: Decision,
    /// What happened.
    pub outcome: Outcome,
    /// How long apply waited for the permits (ns).
    pub wait_ns: u64,
    /// When the result was made (wall clock, ms since the Unix epoch).
    pub at_ms: u64,
}

impl PlanResult {
    /// True when an order was made.
    pub fn executed(&self) -> bool {
        matches!(self.outcome, Outcome::Executed { .. })
    }

    /// P3.3's safe quantity for an executed plan.
    pub fn safe_qty(&self) -> Option<Qty> {
        match self.outcome {
            Outcome::Executed { qty } => Some(qty),
            _ => None,
        }
    }

    /// The legacy `error` field: `None` when executed or not an EXECUTE plan.
    pub fn error(&self) -> Option<ResultError> {
        match self.outcome {
            Outcome::Blocked(b) => Some(b.codes().0),
            Outcome::Duplicate { .. } => Some(ResultError::Duplicate),
            Outcome::Executed { .. } | Outcome::NonExecute => None,
        }
    }

    /// The legacy `error` text: `gov_denied:<reason>`, `duplicate`, ...; `None` when there is
    /// no error.
    pub fn error_text(&self) -> Option<String> {
        self.outcome.error_text()
    }

    /// Writes the legacy log lines for this result (`[PERMIT_WAIT] OK|BLOCK ...`,
    /// `Result published (...)`, `Plan <id> already executed (duplicate)`), one per line.
    pub fn write_legacy_log(&self, f: &mut impl fmt::Write, symbols: &Symbols) -> fmt::Result {
        let sym = symbols.name(self.symbol);
        let wait_us = self.wait_ns / 1_000;
        match &self.outcome {
            Outcome::Duplicate { .. } => {
                return writeln!(f, "{sym}: Plan {} already executed (duplicate)", self.plan);
            }
            Outcome::NonExecute => {}
            Outcome::Executed { qty } => writeln!(
                f,
                "[PERMIT_WAIT] OK plan={} wait_ms={} wait_us={} safe_qty={}",
                self.plan,
                wait_us / 1_000,
                wait_us,
                qty
            )?,
            Outcome::Blocked(b) => {
                write!(f, "[PERMIT_WAIT] BLOCK plan={} reason={b}", self.plan)?;
                if let Block::P33Denied(P33Reason::ReconcileRequiredQtyMismatch, c) = b {
                    write!(
                        f,
                        " exchange_amt={} ledger_amt={} diff={} tolerance={}",
                        c.exchange,
                        c.ledger,
                        c.diff(),
                        c.tolerance
                    )?;
                }
                writeln!(f, " wait_us={wait_us}")?;
            }
        }
        let executed = if self.executed() { "True" } else { "False" };
        match self.error_text() {
            Some(e) => writeln!(
                f,
                "{sym}: Result published (executed={executed}, error={e})"
            ),
            None => writeln!(
                f,
                "{sym}: Result published (executed={executed}, error=None)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_has_its_class_and_every_class_a_distinct_name() {
        let ctx = P33Context::default();
        let cases = [
            (Outcome::Executed { qty: Qty::ZERO }, "executed"),
            (
                Outcome::Blocked(Block::GovDenied(GovReason::Cooldown)),
                "denied_gov",
            ),
            (
                Outcome::Blocked(Block::P33Denied(
                    P33Reason::ReconcileRequiredQtyMismatch,
                    ctx,
                )),
                "denied_p33",
            ),
            (Outcome::Blocked(Block::MissingGov), "denied_apply"),
            (Outcome::Blocked(Block::MissingP33), "denied_apply"),
            (Outcome::Blocked(Block::Expired), "denied_apply"),
            (Outcome::Blocked(Block::OrdersFull), "denied_apply"),
            (Outcome::Blocked(Block::Interrupted), "denied_apply"),
            (Outcome::Blocked(Block::DedupeFull), "refused"),
            (Outcome::Blocked(Block::Stale), "refused"),
            (Outcome::Duplicate { ordered: None }, "duplicate"),
            (Outcome::NonExecute, "not_execute"),
        ];
        for (o, name) in cases {
            assert_eq!(o.class().name(), name, "{o:?}");
        }
        for (i, c) in OutcomeClass::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
        let mut names: Vec<_> = OutcomeClass::ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), OutcomeClass::ALL.len());
    }
}
