//! The stages of a plan's way through a running core, the stamps that delimit them, and the
//! series the daemon records them in.
//!
//! ```text
//!  rx ──ingest──> in ──governor──> gov
//!   (ring pop,      └───p33──────> p33 ──wait──> ready ──consume──> out ──egress──> tx
//!    I/O thread)   (both from in)        (apply found     (the CAS,   (on the orders
//!                                          both permits)   intent made)  ring)
//!  in ─────────────────────────────── chain ──────────────────────> out
//!  rx ─────────────────────────────── end_to_end ─────────────────────────────────> tx
//! ```
//!
//! Every stamp is on the engine's clock (`quantum_core::Clock`, ns). The engine's
//! `OrderIntent` carries `in` (`t_in_ns`) and `out` (`t_out_ns`) for every plan, and `gov`,
//! `p33` and `ready` for one plan in `quantum_core::engine::STAGE_SAMPLE_EVERY`
//! (`OrderIntent::marks`); the daemon's I/O thread adds `rx` and `tx`. On the engine's own
//! thread (single mode) the governor judges first and P3.3 after it, so `p33` includes the
//! governor's time; `wait` is then admitting the plan (dedupe, slot) and issuing both permits.
//! With permit threads (pipelined mode) `gov` and `p33` are the permits' issue times and
//! `wait` is the hand-over back to apply.
//!
//! Every plan that gets a result, executed or not, is also timed from `rx` to its result on
//! the `results` ring, in the series of its outcome's class (`decision.outcome=denied_p33`,
//! ...; [`series`]).

use quantum_core::result::OutcomeClass;
use quantum_ipc::latency;

/// A stage of a plan's way through the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Ring pop to the engine taking the plan (the hand-over from the I/O thread).
    Ingest,
    /// The engine taking the plan to the governor's verdict.
    Governor,
    /// The engine taking the plan to P3.3's verdict (in the single mode it runs after the
    /// governor).
    P33,
    /// Both verdicts made to apply finding both permits.
    Wait,
    /// Apply's consume (the governor's consume-time checks and the CAS) to the intent.
    Consume,
    /// The intent made to the intent on the `orders` ring.
    Egress,
    /// The engine's own span, `t_in_ns` to `t_out_ns` (the demo's `chain_ns`).
    Chain,
    /// Ring pop to the intent on the `orders` ring.
    EndToEnd,
}

impl Stage {
    /// Every stage, in the order they are shown.
    pub const ALL: [Stage; 8] = [
        Stage::Ingest,
        Stage::Governor,
        Stage::P33,
        Stage::Wait,
        Stage::Consume,
        Stage::Egress,
        Stage::Chain,
        Stage::EndToEnd,
    ];

    /// Its name in labels and interval-log tags.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Governor => "governor",
            Stage::P33 => "p33",
            Stage::Wait => "wait",
            Stage::Consume => "consume",
            Stage::Egress => "egress",
            Stage::Chain => "chain",
            Stage::EndToEnd => "end_to_end",
        }
    }

    /// The stage called `name`.
    pub fn from_name(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.name() == name)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// The series the daemon records, in order: every [`Stage`] (for executed plans; the inner
/// stages for a sample of them), then `decision.outcome=<class>` per
/// [`OutcomeClass`]: ring pop to the plan's result on `results`, for every plan that gets one.
pub fn series() -> Vec<String> {
    Stage::ALL
        .iter()
        .map(|s| s.name().to_owned())
        .chain(OutcomeClass::ALL.iter().map(|c| decision_series(*c)))
        .collect()
}

/// The stage name of the per-outcome series.
pub const DECISION: &str = "decision";

/// `decision.outcome=<class>`.
pub fn decision_series(c: OutcomeClass) -> String {
    latency::tagged(DECISION, latency::OUTCOME, c.name())
}

/// The position of a stage's series in [`series`].
pub fn stage_index(s: Stage) -> usize {
    s.index()
}

/// The position of an outcome's decision series in [`series`].
pub fn decision_index(c: OutcomeClass) -> usize {
    Stage::ALL.len() + c.index()
}

/// The stamps of one executed plan, ns on the engine's clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamps {
    /// Popped from its ingress ring (I/O thread).
    pub rx: Option<u64>,
    /// Taken by the engine (`OrderIntent::t_in_ns`).
    pub t_in: u64,
    /// Governor permit issued.
    pub gov: Option<u64>,
    /// P3.3 permit issued.
    pub p33: Option<u64>,
    /// Apply saw both permits and starts the consume.
    pub ready: Option<u64>,
    /// Intent made (`OrderIntent::t_out_ns`).
    pub t_out: u64,
    /// Intent pushed on the `orders` ring (I/O thread).
    pub tx: Option<u64>,
}

impl Stamps {
    /// Every stage these stamps delimit, with its duration in ns (at least 1).
    pub fn spans(&self) -> impl Iterator<Item = (Stage, u64)> {
        let span = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a).max(1)),
            _ => None,
        };
        let permits = match (self.gov, self.p33) {
            (Some(g), Some(p)) => Some(g.max(p)),
            _ => None,
        };
        [
            (Stage::Ingest, span(self.rx, Some(self.t_in))),
            (Stage::Governor, span(Some(self.t_in), self.gov)),
            (Stage::P33, span(Some(self.t_in), self.p33)),
            (Stage::Wait, span(permits, self.ready)),
            (Stage::Consume, span(self.ready, Some(self.t_out))),
            (Stage::Egress, span(Some(self.t_out), self.tx)),
            (Stage::Chain, span(Some(self.t_in), Some(self.t_out))),
            (Stage::EndToEnd, span(self.rx, self.tx)),
        ]
        .into_iter()
        .filter_map(|(s, d)| d.map(|d| (s, d)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_fit_the_counters_and_are_indexed_in_order() {
        let all = series();
        latency::check_series(&all).unwrap();
        for s in Stage::ALL {
            assert_eq!(all[stage_index(s)], s.name());
        }
        for c in OutcomeClass::ALL {
            assert_eq!(
                all[decision_index(c)],
                format!("decision.outcome={}", c.name())
            );
        }
        assert_eq!(all.len(), Stage::ALL.len() + OutcomeClass::ALL.len());
    }

    #[test]
    fn todays_stamps_give_ingest_chain_egress_and_end_to_end() {
        let s = Stamps {
            rx: Some(100),
            t_in: 150,
            t_out: 220,
            tx: Some(300),
            ..Stamps::default()
        };
        let spans: Vec<_> = s.spans().collect();
        assert_eq!(
            spans,
            [
                (Stage::Ingest, 50),
                (Stage::Egress, 80),
                (Stage::Chain, 70),
                (Stage::EndToEnd, 200)
            ]
        );
        let full = Stamps {
            gov: Some(170),
            p33: Some(185),
            ready: Some(190),
            ..s
        };
        let spans: Vec<_> = full.spans().collect();
        assert_eq!(spans.len(), 8);
        assert_eq!(spans[0], (Stage::Ingest, 50));
        assert_eq!(spans[1], (Stage::Governor, 20));
        assert_eq!(spans[2], (Stage::P33, 35));
        assert_eq!(spans[3], (Stage::Wait, 5));
        assert_eq!(spans[4], (Stage::Consume, 30));
    }
}
