//! Replay: a journal's recorded inputs through a new engine, under the configuration the
//! daemon ran with or another one, with nothing sent anywhere.
//!
//! The journal holds every input the engine acted on, in the order it acted, each as the event
//! it made of it or as an event of its own:
//!
//! | input | journaled as |
//! |-------|--------------|
//! | a daemon start (restore, and the history wait of a start that could not trust its journal) | `Started` |
//! | an EXECUTE plan accepted | `PlanAccepted` |
//! | an EXECUTE plan answered at admission (duplicate, stale, dedupe full) | `PlanSeen` |
//! | any other plan (HOLD, ...) | its `PlanResult`: id, symbol and decision are all it is judged on |
//! | a ledger sync (or a failover ledger base) | `LedgerSet` |
//! | a position snapshot, filters, an operator switch | `Position`, `Filters`, `Switch` |
//! | a legacy permit (`permits = external`) | `GovPermit`, `P33Permit`, at their `issued_at_ms` |
//! | what the exchange adapter reported of an order | `OrderSent`, `OrderAccepted`, `Fill`, `OrderDone`, `OrderUnknown` (but `restart`), `OrderResolved` (not found) |
//! | an order of ours only the exchange's history knew | `OrderRecovered` |
//! | a symbol's history complete | `OrderHistory` |
//! | an adapter re-attached | a run of `OrderIntent`s marked `lookup_first` |
//! | failover: this host took the lead | `Leading` |
//! | the clock | each event's own time (ms) |
//!
//! Everything else is what the engine made of those inputs. The replay feeds the inputs to an
//! [`Engine`] on a mocked clock set to each event's time, folds what it emits into its own
//! [`State`] (a `Started` restores a new engine from it, as the daemon restored from its
//! journal), and pairs each plan's recorded answer with the replayed one ([`Decision`]).
//!
//! Under another configuration the two histories part, and the replay keeps to what is known:
//! - what the adapter reported of an order the replay did not send, or sent with another side
//!   or quantity, is dropped ([`Counts::dropped_reports`]); such an order's fill is unknown;
//! - an order the replay sends that was never sent stays in flight, its fill unknown
//!   ([`OrderNote::WouldSend`]): nothing is invented for it, and P3.3 sizes later plans on
//!   it as on any order in flight;
//! - positions, ledger syncs and switches are applied as recorded: they came from outside.
//!
//! Limits: the clock is read at the journal's resolution (ms), where the engine read ns, so a
//! verdict that depended on a time within a millisecond of a limit (a cooldown's end, a
//! permit's TTL) can go the other way; a journal written with the pipelined runner had the
//! governor and P3.3 judge on their own threads, a few hundred ns away from the book's latest
//! change, where the replay judges in order. In a journal written before `Started` and
//! `PlanSeen` existed ([`Counts::legacy`]), a start is recognised by every symbol starting to
//! reconcile, and an EXECUTE plan answered at admission is judged by its result alone (a
//! stale one stays stale).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use quantum_ipc::codes::{DoneCode, FailKind, OrderStatus, ReportSource, UnknownReason};

use crate::clock::{ms_to_ns, Clock, HISTORY_MS};
use crate::config::{ConfigError, EngineConfig, PermitSource};
use crate::engine::{Command, Engine, ExternalPermit, Input};
use crate::event::{DoneEvent, Event, GovPermitEvent, P33PermitEvent};
use crate::fixed::{Price, Qty};
use crate::orders::{Failure, OrderInput, Report};
use crate::recovery::{RestoreError, State};
use crate::result::{Block, Outcome, PlanResult};
use crate::types::{Action, Decision as PlanDecision, OrderIntent, Plan};

/// The ring number replayed inputs are handed in with (they are not refused for it).
const REPLAY_RING: u8 = u8::MAX;

/// One answer to a plan: its result, and what it was judged with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The result.
    pub result: PlanResult,
    /// The order it made (executed plans).
    pub intent: Option<OrderIntent>,
    /// The governor's permit it was judged with, when it had one.
    pub gov: Option<GovPermitEvent>,
    /// P3.3's permit it was judged with, when it had one: its context holds the amounts P3.3
    /// compared.
    pub p33: Option<P33PermitEvent>,
}

impl Verdict {
    /// `executed`, `blocked`, `duplicate` or `non_execute`, then the legacy error text.
    pub fn label(&self) -> (&'static str, Option<String>) {
        let class = match self.result.outcome {
            Outcome::Executed { .. } => "executed",
            Outcome::Blocked(_) => "blocked",
            Outcome::Duplicate { .. } => "duplicate",
            Outcome::NonExecute => "non_execute",
        };
        (class, self.result.outcome.error_text())
    }

    /// The order's side and quantity, when it executed.
    pub fn order(&self) -> Option<(crate::types::Side, Qty)> {
        self.intent.map(|i| (i.side, i.qty))
    }
}

/// What became of a plan's order between the recording and the replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderNote {
    /// Neither made one.
    None,
    /// The same order both times: the exchange's reports of it were replayed.
    Same,
    /// Both made one, of another side or quantity: the recorded reports were dropped and the
    /// replayed order's fill is unknown.
    Differs,
    /// Recorded, not replayed: its reports were dropped.
    NotSent,
    /// Replayed, never sent: its fill is unknown (it stays in flight in the replay).
    WouldSend,
}

impl OrderNote {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            OrderNote::None => "none",
            OrderNote::Same => "same",
            OrderNote::Differs => "differs_fill_unknown",
            OrderNote::NotSent => "not_sent",
            OrderNote::WouldSend => "would_send_fill_unknown",
        }
    }
}

/// One plan's answer, recorded and replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The plan as it arrived, when the journal holds it (a non-EXECUTE plan's result holds
    /// its id, symbol and decision only).
    pub plan: Plan,
    /// The journal's sequence number of the recorded result (of the replayed input when
    /// there is none).
    pub seq: u64,
    /// The recorded answer (`None`: the journal ends before it).
    pub recorded: Option<Verdict>,
    /// The replayed answer (`None`: the replay has not answered it when the journal ends).
    pub replayed: Option<Verdict>,
}

impl Decision {
    /// The recorded answer's time, else the replayed one's.
    pub fn at_ms(&self) -> u64 {
        self.recorded
            .or(self.replayed)
            .map_or(0, |v| v.result.at_ms)
    }

    /// Whether the replay answered otherwise: another outcome or reason, or an order of
    /// another side or quantity.
    pub fn changed(&self) -> bool {
        match (&self.recorded, &self.replayed) {
            (Some(a), Some(b)) => a.label() != b.label() || a.order() != b.order(),
            _ => true,
        }
    }

    /// What became of the order.
    pub fn order_note(&self) -> OrderNote {
        let rec = self.recorded.and_then(|v| v.intent);
        let rep = self.replayed.and_then(|v| v.intent);
        match (rec, rep) {
            (None, None) => OrderNote::None,
            (Some(a), Some(b)) if same_order(&a, &b) => OrderNote::Same,
            (Some(_), Some(_)) => OrderNote::Differs,
            (Some(_), None) => OrderNote::NotSent,
            (None, Some(_)) => OrderNote::WouldSend,
        }
    }
}

fn same_order(a: &OrderIntent, b: &OrderIntent) -> bool {
    (a.symbol, a.side, a.qty, a.reduce_only) == (b.symbol, b.side, b.qty, b.reduce_only)
}

/// What the replay did besides deciding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Recorded events read.
    pub events: u64,
    /// Inputs handed to the engine.
    pub inputs: u64,
    /// Starts replayed (a new engine restored from the replay's own state).
    pub starts: u64,
    /// Recorded order events (sent, accepted, fills, ends, unknown outcomes) of orders the
    /// replay did not send as recorded, dropped: each stood for what the adapter reported.
    pub dropped_reports: u64,
    /// Inputs the replayed engine refused (e.g. a permit for a plan it no longer waits for).
    pub refused: u64,
    /// Plans the replayed engine had no permit slot for (answered nothing).
    pub table_full: u64,
    /// The journal has no `Started` event before its first: written by an older version (or
    /// kept from a snapshot on).
    pub legacy: bool,
}

/// Per plan, what was judged before its result (permits, intent).
#[derive(Clone, Copy, Debug, Default)]
struct Before {
    gov: Option<GovPermitEvent>,
    p33: Option<P33PermitEvent>,
    intent: Option<OrderIntent>,
}

/// A plan's answers not yet paired: recorded (with the result's sequence number), replayed.
#[derive(Debug, Default)]
struct Answers {
    plan: Option<Plan>,
    recorded: VecDeque<(u64, Verdict)>,
    replayed: VecDeque<Verdict>,
}

/// A journal being replayed: feed it the recorded events in order ([`Replay::feed`]), then
/// [`Replay::finish`].
pub struct Replay {
    cfg: EngineConfig,
    clock: Clock,
    mock: Arc<quanta::Mock>,
    now_ns: u64,
    engine: Option<Engine>,
    /// The replay's own events, folded: what a replayed restart restores.
    state: State,
    own_seq: u64,
    /// Inside a run of `lookup_first` intents (one re-attach).
    reoffered: bool,
    answers: HashMap<u64, Answers>,
    rec_before: HashMap<u64, Before>,
    rep_before: HashMap<u64, Before>,
    /// Recorded orders not ended: their side, for the reports.
    rec_orders: HashMap<u64, OrderIntent>,
    /// Plans whose replayed order differs from the recorded one (known once both answers are
    /// paired, before the exchange reports on the order): their reports are dropped.
    differing: HashSet<u64>,
    counts: Counts,
    /// A journal without `Started`: a start seen (history or not, when), made at the first
    /// event after its run of symbols starting to reconcile.
    legacy_start: Option<(bool, u64)>,
    /// The events fed now were written by a version that journals the account's mode
    /// ([`Replay::account_journaled`]).
    account_journaled: bool,
    /// An accepted plan and its permits, held until the next event ([`Replay::feed`]).
    held: Vec<(u64, Event)>,
    buf: Vec<Event>,
    /// Every event the replayed engines made, when asked for ([`Replay::keep_events`]).
    kept: Option<Vec<Event>>,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

/// Why a replay cannot go on.
#[derive(Debug)]
pub enum ReplayError {
    /// The configuration is not valid.
    Config(ConfigError),
    /// A replayed start could not restore the replay's state.
    Restore(RestoreError),
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplayError::Config(e) => write!(f, "configuration: {e}"),
            ReplayError::Restore(e) => write!(f, "a replayed start cannot restore: {e}"),
        }
    }
}

impl std::error::Error for ReplayError {}

impl Replay {
    /// A replay under `cfg` of a journal, starting from `start` (the state of a snapshot the
    /// journal's kept events follow, or an empty state).
    pub fn new(cfg: EngineConfig, start: State) -> Result<Replay, ReplayError> {
        cfg.validate().map_err(ReplayError::Config)?;
        // Set again at the first event ([`Replay::feed`]).
        let (clock, mock) = Clock::mock_at(0);
        Ok(Replay {
            cfg,
            clock,
            mock,
            now_ns: 0,
            engine: None,
            state: start,
            own_seq: 0,
            reoffered: false,
            answers: HashMap::new(),
            rec_before: HashMap::new(),
            rep_before: HashMap::new(),
            rec_orders: HashMap::new(),
            differing: HashSet::new(),
            counts: Counts::default(),
            legacy_start: None,
            account_journaled: true,
            held: Vec::new(),
            buf: Vec::new(),
            kept: None,
        })
    }

    /// Keeps every event the replayed engines make, for [`Replay::events`] (a test compares
    /// them with the journal's).
    pub fn keep_events(&mut self) {
        self.kept = Some(Vec::new());
    }

    /// The events kept since [`Replay::keep_events`].
    pub fn events(&self) -> &[Event] {
        self.kept.as_deref().unwrap_or_default()
    }

    /// What it did so far besides deciding.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The replayed engine (`None` before the first event).
    pub fn engine(&self) -> Option<&Engine> {
        self.engine.as_ref()
    }

    /// The replay's own events folded (what a restart of the replayed engine would restore).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Moves the clock to wall-clock `ms`, never back (the engine's clock is monotonic).
    fn set_time(&mut self, ms: u64) {
        let ns = ms_to_ns(ms.saturating_sub(self.clock.wall_origin_ms()));
        if ns > self.now_ns {
            self.mock.increment(ns - self.now_ns);
            self.now_ns = ns;
        }
    }

    /// Builds a new engine restored from the replay's state, as a daemon start does.
    fn start(
        &mut self,
        history: bool,
        at_ms: u64,
        out: &mut impl FnMut(Decision),
    ) -> Result<(), ReplayError> {
        let mut engine =
            Engine::new(self.cfg.clone(), self.clock.clone()).map_err(ReplayError::Config)?;
        let mut made = std::mem::take(&mut self.buf);
        made.clear();
        engine
            .restore(&self.state, &mut |e| made.push(e))
            .map_err(ReplayError::Restore)?;
        if history {
            engine.require_history(&mut |e| made.push(e));
        }
        if self.counts.legacy || !self.account_journaled {
            // Written before the account's mode was journaled: that version traded every
            // symbol one-way without asking, so the replayed start is told so.
            let mode = Input::Command(Command::AccountMode { hedge: false });
            let _ = engine.handle(mode, REPLAY_RING, &mut |e| made.push(e));
        }
        let started = Event::Started {
            history,
            at_ms,
            since_ms: engine.front.history_since_ms(),
        };
        made.insert(0, started);
        self.engine = Some(engine);
        self.counts.starts += 1;
        self.absorb(&mut made, false, out);
        self.buf = made;
        Ok(())
    }

    /// Whether the events fed from now on were written by a version that journals the
    /// account's position mode (`AccountMode`; the default). A journal segment's wire layout
    /// says it: [`quantum_ipc::wire::layout_has`] with [`quantum_ipc::wire::Kind::AccountMode`].
    /// Versions before it traded every symbol one-way without asking the exchange, so each
    /// start of theirs is replayed with the account told one-way (so is every start of a
    /// journal without `Started`, which is older still).
    pub fn account_journaled(&mut self, yes: bool) {
        self.account_journaled = yes;
    }

    /// Feeds recorded event number `seq`; decisions paired by it go to `out`.
    ///
    /// An accepted plan is held, with its permits, until the next event: when that is a
    /// `Started`, the process died before the plan was answered (a crash right after its
    /// acceptance was journaled), and the replay takes the acceptance as it stands instead of
    /// deciding the plan, so the replayed restart answers it `interrupted` as the recorded one
    /// did.
    pub fn feed(
        &mut self,
        seq: u64,
        e: &Event,
        out: &mut impl FnMut(Decision),
    ) -> Result<(), ReplayError> {
        self.counts.events += 1;
        if self.counts.events == 1 {
            // Engine time 0 lies HISTORY_MS before the first event, as the real clock's does
            // before its start, so restored execution times stay engine times.
            let origin = e.at_ms().unwrap_or(0).saturating_sub(HISTORY_MS);
            (self.clock, self.mock) = Clock::mock_at(origin);
        }
        let held = match self.held.first() {
            Some((_, Event::PlanAccepted { plan, .. })) => Some(plan.id),
            _ => None,
        };
        match *e {
            Event::GovPermit(GovPermitEvent { plan, .. })
            | Event::P33Permit(P33PermitEvent { plan, .. })
                if held == Some(plan) =>
            {
                self.held.push((seq, *e));
                return Ok(());
            }
            Event::OrderIntent(i) if held == Some(i.plan) && !i.lookup_first => {
                self.held.push((seq, *e));
                return Ok(());
            }
            _ => {}
        }
        // The process died before answering the held plan: its start follows. In a journal
        // without `Started`, what its restart did first follows instead: orders in flight made
        // unknown, or the plan answered `interrupted`.
        let cut = held.is_some()
            && match e {
                Event::Started { .. } => true,
                Event::PlanResult(r) if self.counts.legacy => {
                    held == Some(r.plan) && r.outcome == Outcome::Blocked(Block::Interrupted)
                }
                Event::OrderUnknown {
                    reason: UnknownReason::Restart,
                    ..
                } => self.counts.legacy,
                _ => false,
            };
        for (s, h) in std::mem::take(&mut self.held) {
            if cut {
                self.cut(s, &h);
            } else {
                self.step(s, &h, out)?;
            }
        }
        if matches!(e, Event::PlanAccepted { .. }) && self.engine.is_some() {
            self.held.push((seq, *e));
            return Ok(());
        }
        self.step(seq, e, out)
    }

    /// A held event of a plan whose process died before answering it: taken into the
    /// replay's own journal as it stands (the plan remembered and waiting, with its order
    /// intent if that was journaled), so the replayed restart answers it as the recorded one
    /// did: `interrupted`, or `executed` when its intent was journaled.
    fn cut(&mut self, seq: u64, e: &Event) {
        match *e {
            Event::PlanAccepted { plan, .. } => {
                self.answers.entry(plan.id.0).or_default().plan = Some(plan);
            }
            _ => {
                // Both sides hold its permits and intent now (an intent's order may be
                // reported on after the restart).
                let _ = self.input_of(seq, e);
                let before = self
                    .rep_before
                    .entry(e.plan().map_or(0, |p| p.0))
                    .or_default();
                match *e {
                    Event::GovPermit(g) => before.gov = Some(g),
                    Event::P33Permit(p) => before.p33 = Some(p),
                    Event::OrderIntent(i) => before.intent = Some(i),
                    _ => {}
                }
            }
        }
        self.own_seq += 1;
        self.state.apply(self.own_seq, e);
        if let Some(k) = &mut self.kept {
            k.push(*e);
        }
    }

    /// One recorded event, in order.
    fn step(
        &mut self,
        seq: u64,
        e: &Event,
        out: &mut impl FnMut(Decision),
    ) -> Result<(), ReplayError> {
        if let Some((history, at_ms)) = self.legacy_start {
            match e {
                Event::Reconciling { on: true, .. } => {}
                // The run of symbols starting to reconcile was a lead's, not a start.
                Event::Leading { .. } => self.legacy_start = None,
                _ => {
                    self.legacy_start = None;
                    self.start(history, at_ms, out)?;
                }
            }
        }
        if let Some(ms) = e.at_ms() {
            self.set_time(ms);
        }
        if let Event::Started { history, at_ms, .. } = *e {
            self.reoffered = false;
            return self.start(history, at_ms, out);
        }
        if self.engine.is_none() {
            // A journal from before `Started` existed, or kept from a snapshot on.
            self.counts.legacy = true;
            let at = e.at_ms().unwrap_or(0);
            self.start(false, at, out)?;
        }
        if let Event::Reconciling {
            symbol,
            on: true,
            at_ms,
            ..
        } = *e
        {
            // Without `Started`, a start shows as every symbol starting to reconcile: the
            // first one's, before any input, waited for the exchange's history (its journal
            // was empty); a later one is a restart. A run followed by `Leading` was a lead's:
            // so the start is made at the first event after the run.
            if self.counts.legacy && symbol.0 == 0 {
                self.legacy_start = Some((self.counts.inputs == 0, at_ms));
                return Ok(());
            }
        }
        let reoffer = matches!(e, Event::OrderIntent(i) if i.lookup_first);
        if let Event::OrderIntent(i) = e {
            // An order restored across a start: its side, for the reports that follow.
            self.rec_orders.entry(i.plan.0).or_insert(*i);
        }
        let input = if reoffer {
            (!self.reoffered).then_some(Input::Reoffer)
        } else {
            self.input_of(seq, e)
        };
        self.reoffered = reoffer;
        match (input, e) {
            // A legacy permit is journaled when its plan's wait ends, after its issue: it is
            // issued at its own time, as it was.
            (Some(i @ Input::Permit(_)), Event::GovPermit(GovPermitEvent { issued_at_ms, .. }))
            | (Some(i @ Input::Permit(_)), Event::P33Permit(P33PermitEvent { issued_at_ms, .. })) =>
            {
                self.issue_at(i, *issued_at_ms, out);
            }
            // Without an input, time still passed: a plan whose wait ended now is answered now.
            (input, _) => self.run(input, out),
        }
        if let Event::PlanResult(r) = e {
            self.pair(r.plan.0, out);
        }
        Ok(())
    }

    /// The input a recorded event stands for (and the recorded side of the comparison).
    fn input_of(&mut self, seq: u64, e: &Event) -> Option<Input> {
        let external = self.cfg.permits == PermitSource::External;
        match *e {
            Event::PlanAccepted { plan, .. } | Event::PlanSeen { plan, .. } => {
                self.answers.entry(plan.id.0).or_default().plan = Some(plan);
                Some(Input::Plan(plan))
            }
            Event::PlanResult(r) => {
                let before = self.rec_before.remove(&r.plan.0).unwrap_or_default();
                let a = self.answers.entry(r.plan.0).or_default();
                a.recorded.push_back((
                    seq,
                    Verdict {
                        result: r,
                        intent: before.intent,
                        gov: before.gov,
                        p33: before.p33,
                    },
                ));
                // A plan that is not EXECUTE is journaled by its result alone; so is an
                // EXECUTE plan answered at admission by a version without `PlanSeen`.
                let input = r.decision != PlanDecision::Execute
                    || (self.counts.legacy && r.outcome.at_admission() && a.plan.is_none());
                if input {
                    let mut plan = Plan::exit(r.plan, r.symbol, r.decision, Action::None);
                    if r.outcome == Outcome::Blocked(Block::Stale) {
                        // Its age is not journaled, only that it passed the maximum: it
                        // stays stale whatever the maximum (nothing is ordered for it).
                        plan.created_at_ms = 1;
                    }
                    a.plan = Some(plan);
                    Some(Input::Plan(plan))
                } else {
                    None
                }
            }
            Event::GovPermit(g) => {
                self.rec_before.entry(g.plan.0).or_default().gov = Some(g);
                external.then_some(Input::Permit(ExternalPermit::Gov {
                    plan: g.plan,
                    allow: g.allow,
                    reason: g.reason,
                    ttl_ms: u64::from(g.ttl_ms),
                }))
            }
            Event::P33Permit(p) => {
                self.rec_before.entry(p.plan.0).or_default().p33 = Some(p);
                external.then_some(Input::Permit(ExternalPermit::P33 {
                    plan: p.plan,
                    allow: p.allow,
                    reason: p.reason,
                    safe_qty: p.safe_qty,
                    side: p.side,
                    context: p.context,
                    ttl_ms: u64::from(p.ttl_ms),
                }))
            }
            Event::OrderIntent(i) => {
                self.rec_before.entry(i.plan.0).or_default().intent = Some(i);
                self.rec_orders.insert(i.plan.0, i);
                None
            }
            Event::OrderSent {
                plan,
                symbol,
                at_ms,
            } => self.order(OrderInput::Sent {
                plan,
                symbol,
                at_ms,
            }),
            Event::OrderAccepted {
                plan,
                symbol,
                order_id,
                at_ms,
            } => {
                let side = self.rec_orders.get(&plan.0)?.side;
                self.order(OrderInput::Report(Report {
                    plan,
                    symbol,
                    side,
                    status: OrderStatus::New,
                    cum_qty: Qty::ZERO,
                    price: Price::ZERO,
                    order_id,
                    time_ms: at_ms,
                    orig_qty: Qty::ZERO,
                    source: ReportSource::Stream,
                }))
            }
            Event::Fill(f) => self.order(OrderInput::Report(Report {
                plan: f.plan,
                symbol: f.symbol,
                side: f.side,
                status: OrderStatus::PartiallyFilled,
                cum_qty: f.cum_qty,
                price: f.price,
                order_id: f.order_id,
                time_ms: f.time_ms,
                orig_qty: Qty::ZERO,
                source: ReportSource::Stream,
            })),
            Event::OrderDone(d) => {
                let side = self.rec_orders.remove(&d.plan.0).map(|i| i.side);
                let input = side.and_then(|side| done_input(&d, side));
                let fed = input.and_then(|i| self.order(i));
                self.differing.remove(&d.plan.0);
                fed
            }
            Event::OrderUnknown {
                reason: UnknownReason::Restart,
                ..
            } => None,
            Event::OrderUnknown {
                plan,
                symbol,
                reason,
                at_ms,
            } => self.order(OrderInput::Failed(Failure {
                plan,
                symbol,
                kind: FailKind::Unknown,
                reason: reason.code(),
                exchange_code: 0,
                at_ms,
            })),
            Event::OrderResolved {
                plan,
                symbol,
                found: false,
                at_ms,
                ..
            } => self.order(OrderInput::Failed(Failure {
                plan,
                symbol,
                kind: FailKind::NotFound,
                reason: 0,
                exchange_code: 0,
                at_ms,
            })),
            // Found: the report that follows resolves it again.
            Event::OrderResolved { .. } => None,
            Event::OrderRecovered { report, .. } => Some(Input::Order(OrderInput::Report(report))),
            Event::OrderHistory(h) => Some(Input::History(h)),
            Event::LedgerSet { symbol, amount, .. } => {
                Some(Input::Command(Command::SetLedger { symbol, amount }))
            }
            Event::Position {
                symbol,
                amount,
                mark,
                ..
            } => Some(Input::Command(Command::Position {
                symbol,
                amount,
                mark,
            })),
            Event::Filters { symbol, filters } => {
                Some(Input::Command(Command::SetFilters { symbol, filters }))
            }
            Event::Switch(s) => Some(Input::Command(Command::Switch(s))),
            Event::AccountMode { hedge, .. } => {
                Some(Input::Command(Command::AccountMode { hedge }))
            }
            Event::SymbolStatus { symbol, status, .. } => {
                Some(Input::Command(Command::SymbolStatus { symbol, status }))
            }
            Event::Leading { epoch, .. } => Some(Input::Lead { epoch }),
            Event::Refused(_)
            | Event::Reconciling { .. }
            | Event::LedgerWanted { .. }
            | Event::Started { .. } => None,
        }
    }

    /// An order report, unless the replay's order for the plan is not the recorded one.
    fn order(&mut self, o: OrderInput) -> Option<Input> {
        if self.differing.contains(&o.plan().0) {
            self.counts.dropped_reports += 1;
            return None;
        }
        Some(Input::Order(o))
    }

    /// Issues a legacy permit as at wall-clock `ms` (earlier than the replay's clock: it is
    /// journaled when its plan's wait ends), then puts the clock back.
    fn issue_at(&mut self, input: Input, ms: u64, out: &mut impl FnMut(Decision)) {
        // Issued after the last event with a time of its own: time moved on to it.
        self.set_time(ms);
        let now = self.now_ns;
        let at = ms_to_ns(ms.saturating_sub(self.clock.wall_origin_ms())).min(now);
        self.mock.decrement(now - at);
        let mut made = std::mem::take(&mut self.buf);
        made.clear();
        if let Some(engine) = self.engine.as_mut() {
            self.counts.inputs += 1;
            let _ = engine.handle(input, REPLAY_RING, &mut |e| made.push(e));
        }
        self.mock.increment(now - at);
        self.absorb(&mut made, false, out);
        self.buf = made;
        self.run(None, out);
    }

    /// Hands `input` to the engine, after the apply deadlines that passed by now.
    fn run(&mut self, input: Option<Input>, out: &mut impl FnMut(Decision)) {
        let mut made = std::mem::take(&mut self.buf);
        made.clear();
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        engine.poll(&mut |e| made.push(e));
        let Some(input) = input else {
            self.absorb(&mut made, false, out);
            self.buf = made;
            return;
        };
        self.counts.inputs += 1;
        let order = matches!(input, Input::Order(_));
        if let Err(plan) = engine.handle(input, REPLAY_RING, &mut |e| made.push(e)) {
            engine.poll(&mut |e| made.push(e));
            if engine
                .handle(Input::Plan(plan), REPLAY_RING, &mut |e| made.push(e))
                .is_err()
            {
                self.counts.table_full += 1;
            }
        }
        engine.poll(&mut |e| made.push(e));
        self.absorb(&mut made, order, out);
        self.buf = made;
    }

    /// Takes in what the replayed engine made: folds it, and keeps its answers.
    fn absorb(&mut self, made: &mut Vec<Event>, order: bool, out: &mut impl FnMut(Decision)) {
        if let Some(k) = &mut self.kept {
            k.extend_from_slice(made);
        }
        for e in made.drain(..) {
            self.own_seq += 1;
            self.state.apply(self.own_seq, &e);
            match e {
                Event::GovPermit(g) => self.rep_before.entry(g.plan.0).or_default().gov = Some(g),
                Event::P33Permit(p) => self.rep_before.entry(p.plan.0).or_default().p33 = Some(p),
                Event::OrderIntent(i) if !i.lookup_first => {
                    self.rep_before.entry(i.plan.0).or_default().intent = Some(i);
                }
                Event::PlanResult(r) => {
                    let before = self.rep_before.remove(&r.plan.0).unwrap_or_default();
                    let a = self.answers.entry(r.plan.0).or_default();
                    a.replayed.push_back(Verdict {
                        result: r,
                        intent: before.intent,
                        gov: before.gov,
                        p33: before.p33,
                    });
                    self.pair(r.plan.0, out);
                }
                // An exchange report the replayed engine has no order for: dropped.
                Event::Refused(_) if order => self.counts.dropped_reports += 1,
                Event::Refused(_) => self.counts.refused += 1,
                _ => {}
            }
        }
    }

    /// Emits every answer of `plan` that has both sides.
    fn pair(&mut self, plan: u64, out: &mut impl FnMut(Decision)) {
        let Some(a) = self.answers.get_mut(&plan) else {
            return;
        };
        while !a.recorded.is_empty() && !a.replayed.is_empty() {
            let (Some((seq, rec)), Some(rep)) = (a.recorded.pop_front(), a.replayed.pop_front())
            else {
                break;
            };
            let d = Decision {
                plan: a.plan.unwrap_or_else(|| plan_of(&rec.result)),
                seq,
                recorded: Some(rec),
                replayed: Some(rep),
            };
            if d.order_note() == OrderNote::Differs {
                // The exchange's reports of the recorded order are not about the replayed one.
                self.differing.insert(plan);
            }
            out(d);
        }
        if a.recorded.is_empty() && a.replayed.is_empty() {
            self.answers.remove(&plan);
        }
    }

    /// Ends the replay: every answer left without its other side is a decision too, in plan
    /// id order.
    pub fn finish(mut self, out: &mut impl FnMut(Decision)) -> Counts {
        for (s, h) in std::mem::take(&mut self.held) {
            let _ = self.step(s, &h, out);
        }
        if let Some((history, at_ms)) = self.legacy_start.take() {
            // A start the journal ends with: it answers what waited.
            let _ = self.start(history, at_ms, out);
        }
        let mut left: Vec<(u64, Answers)> = self.answers.drain().collect();
        left.sort_unstable_by_key(|(id, _)| *id);
        for (_, mut a) in left {
            loop {
                let rec = a.recorded.pop_front();
                let rep = a.replayed.pop_front();
                let Some(first) = rec.map(|r| r.1.result).or(rep.map(|r| r.result)) else {
                    break;
                };
                out(Decision {
                    plan: a.plan.unwrap_or_else(|| plan_of(&first)),
                    seq: rec.map_or(0, |r| r.0),
                    recorded: rec.map(|r| r.1),
                    replayed: rep,
                });
            }
        }
        self.counts
    }
}

/// The plan a result names, as far as the result tells.
fn plan_of(r: &PlanResult) -> Plan {
    Plan::exit(r.plan, r.symbol, r.decision, Action::None)
}

/// The report or failure that ended an order as `d` says.
fn done_input(d: &DoneEvent, side: crate::types::Side) -> Option<OrderInput> {
    let failure = |kind| {
        OrderInput::Failed(Failure {
            plan: d.plan,
            symbol: d.symbol,
            kind,
            reason: d.reason,
            exchange_code: d.exchange_code,
            at_ms: d.at_ms,
        })
    };
    let report = |status| {
        OrderInput::Report(Report {
            plan: d.plan,
            symbol: d.symbol,
            side,
            status,
            cum_qty: d.filled,
            price: Price::ZERO,
            order_id: 0,
            time_ms: d.at_ms,
            orig_qty: Qty::ZERO,
            source: ReportSource::Stream,
        })
    };
    Some(match d.code {
        DoneCode::Filled => report(OrderStatus::Filled),
        DoneCode::RemainderExpired | DoneCode::NotPlaced => report(OrderStatus::Expired),
        // As the adapter's refusal, with its codes; a report of status REJECTED (no codes)
        // ends the order the same way.
        DoneCode::Rejected => failure(FailKind::Rejected),
        DoneCode::Unsent => failure(FailKind::Unsent),
    })
}

/// Replays `events` (numbered from 1) under `cfg` from an empty state: every decision, in the
/// order they were paired, then the counts. For tests and small journals.
pub fn replay_all(
    cfg: EngineConfig,
    events: &[Event],
) -> Result<(Vec<Decision>, Counts), ReplayError> {
    let start = State::new(cfg.symbols.len(), cfg.dedupe_horizon_ms, cfg.max_orders);
    let mut r = Replay::new(cfg, start)?;
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        r.feed(i as u64 + 1, e, &mut |d| out.push(d))?;
    }
    let counts = r.finish(&mut |d| out.push(d));
    Ok((out, counts))
}
