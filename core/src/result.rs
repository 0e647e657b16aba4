//! What the chain says about each plan, and the legacy log lines operators grep for.

use std::fmt;

use crate::fixed::Qty;
use crate::governor::GovReason;
use crate::p33::P33Reason;
use crate::permit::P33Context;
use crate::types::{Decision, OrderIntent, PlanId, SymbolId, Symbols};

/// Why an EXECUTE plan did not become an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// The governor's permit did not arrive within the wait.
    MissingGov,
    /// P3.3's permit did not arrive within the wait.
    MissingP33,
    /// The governor denied.
    GovDenied(GovReason),
    /// P3.3 denied.
    P33Denied(P33Reason, P33Context),
    /// A permit's TTL passed before it could be consumed.
    Expired,
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Block::MissingGov => f.write_str("missing_gov"),
            Block::MissingP33 => f.write_str("missing_p33"),
            Block::GovDenied(r) => write!(f, "gov_denied:{}", r.as_str()),
            Block::P33Denied(r, _) => write!(f, "p33_denied:{}", r.as_str()),
            Block::Expired => f.write_str("expired"),
        }
    }
}

/// The end of one plan's way through the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Both permits consumed; this order goes to the exchange.
    Executed(OrderIntent),
    /// Not executed, and why.
    Blocked(Block),
    /// The plan id was seen before.
    Duplicate,
    /// Not an EXECUTE plan: published as not executed without error, as the legacy system does.
    NonExecute,
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
}

impl PlanResult {
    /// True when an order was made.
    pub fn executed(&self) -> bool {
        matches!(self.outcome, Outcome::Executed(_))
    }

    /// The order, if any.
    pub fn order(&self) -> Option<&OrderIntent> {
        match &self.outcome {
            Outcome::Executed(o) => Some(o),
            _ => None,
        }
    }

    /// P3.3's safe quantity for an executed plan.
    pub fn safe_qty(&self) -> Option<Qty> {
        self.order().map(|o| o.qty)
    }

    /// The legacy `error` field: `None` when executed or not an EXECUTE plan.
    pub fn error(&self) -> Option<ResultError> {
        match self.outcome {
            Outcome::Blocked(b) => Some(ResultError::Blocked(b)),
            Outcome::Duplicate => Some(ResultError::Duplicate),
            Outcome::Executed(_) | Outcome::NonExecute => None,
        }
    }

    /// Writes the legacy log lines for this result (`[PERMIT_WAIT] OK|BLOCK ...`,
    /// `Result published (...)`, `Plan <id> already executed (duplicate)`), one per line.
    pub fn write_legacy_log(&self, f: &mut impl fmt::Write, symbols: &Symbols) -> fmt::Result {
        let sym = symbols.name(self.symbol);
        let wait_us = self.wait_ns / 1_000;
        match &self.outcome {
            Outcome::Duplicate => {
                return writeln!(f, "{sym}: Plan {} already executed (duplicate)", self.plan);
            }
            Outcome::NonExecute => {}
            Outcome::Executed(o) => writeln!(
                f,
                "[PERMIT_WAIT] OK plan={} wait_ms={} wait_us={} safe_qty={}",
                self.plan,
                wait_us / 1_000,
                wait_us,
                o.qty
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
        match self.error() {
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

/// The `error` of a result that was not executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultError {
    /// Blocked in the permit wait.
    Blocked(Block),
    /// Seen before.
    Duplicate,
}

impl fmt::Display for ResultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResultError::Blocked(b) => b.fmt(f),
            ResultError::Duplicate => f.write_str("duplicate"),
        }
    }
}
