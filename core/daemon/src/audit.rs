//! Audit: what the core held just after any event of its journal, and one plan's story, read
//! from the journal's files (`quantum ctl journal state|plan`). Read-only: it works beside a
//! running daemon (the journal's reader sees only what the writer has published) and changes
//! nothing.
//!
//! **The state at event N** starts from the newest readable snapshot at or before N and folds
//! the events after it, up to N, with [`State::apply`], exactly as a restart's recovery folds
//! them; a journal that still holds its first event can start from nothing. So a point costs
//! the events since the snapshot before it, never a replay of the whole journal when a
//! snapshot is closer.
//!
//! **Times.** An event's time is [`Event::at_ms`] (the engine's clock) or, for an event that
//! carries none, the time of the event before it. The point of a time T is the last event
//! before the first event whose time is after T. To find it, the segment is chosen by the
//! time of each segment's first timed event, then that segment is read from its start.
//!
//! **Permits.** The engine journals a plan's permits ([`Event::GovPermit`],
//! [`Event::P33Permit`]) when apply finishes the plan (just before its `OrderIntent`, if any,
//! and its `PlanResult`), not when they are issued. The permits of a plan still waiting at
//! event N are therefore usually later in the journal, or between its acceptance and N when N
//! is its intent: [`Audit::permits_at`] reads from the waiting plans' acceptance (found by
//! looking back from N) up to each plan's result, at most [`PERMIT_LOOKAHEAD_MS`] past the
//! latest of their apply deadlines (apply's wait is short), and keeps a permit only if it was
//! issued at or before N's time (`issued_at_ms`, to the millisecond: a permit issued within
//! N's millisecond counts as held).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use quantum_core::event::{Event, GovPermitEvent, P33PermitEvent};
use quantum_core::recovery::State;
use quantum_core::{EngineConfig, PlanId};
use quantum_ipc::journal::{self, snapshot, Reader, FIRST_SEQ};
use quantum_ipc::wire::{Limits, Message, Record};

/// Records read at a time (bounded memory whatever the journal's size).
const BATCH: usize = 1 << 14;

/// How far past the latest apply deadline of the plans waiting at a point their permits are
/// looked for (apply answers a plan by its deadline; this is room for a loaded machine).
pub const PERMIT_LOOKAHEAD_MS: u64 = 1_000;

/// What an audit could not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditError {
    /// The directory holds no journal segment.
    NoJournal(PathBuf),
    /// A sequence number outside what the journal can answer for: `first ..= last` (the first
    /// is the oldest snapshot's when older events were pruned).
    SeqOutOfRange {
        /// Asked for.
        seq: u64,
        /// The first event the state can be rebuilt at.
        first: u64,
        /// The last event.
        last: u64,
    },
    /// A time outside the journal's: `first` and `last` are `(seq, time ms)` of its first and
    /// last timed events the state can be rebuilt at.
    TimeOutOfRange {
        /// Asked for (ms since the Unix epoch).
        at_ms: u64,
        /// The first point with a time.
        first: Option<(u64, u64)>,
        /// The last point with a time.
        last: Option<(u64, u64)>,
    },
    /// The journal could not be read, or held a record that is not an event.
    Read(String),
}

impl std::fmt::Display for AuditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuditError::NoJournal(d) => write!(f, "no journal in {}", d.display()),
            AuditError::SeqOutOfRange { seq, first, last } => write!(
                f,
                "event {seq} is outside the journal, which can answer for events {first}..={last}"
            ),
            AuditError::TimeOutOfRange { at_ms, first, last } => {
                let t = |p: &Option<(u64, u64)>| {
                    p.map_or("-".to_string(), |(s, t)| format!("{t} ms (event {s})"))
                };
                write!(
                    f,
                    "{at_ms} ms is outside the journal, which covers {} to {}",
                    t(first),
                    t(last)
                )
            }
            AuditError::Read(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for AuditError {}

fn read_err(e: impl std::fmt::Display) -> AuditError {
    AuditError::Read(e.to_string())
}

/// Event `seq` from its record.
fn decode(seq: u64, rec: &Record) -> Result<Event, AuditError> {
    Message::decode(rec, &Limits::default())
        .map_err(|e| e.to_string())
        .and_then(|m| Event::from_message(&m))
        .map_err(|e| AuditError::Read(format!("event {seq}: {e}")))
}

/// The state just after an event.
#[derive(Debug, Clone)]
pub struct Point {
    /// What the events up to it add up to (`state.seq` is the event).
    pub state: State,
    /// Its time (ms since the Unix epoch; see the module's note), `None` when no event up to
    /// it that the journal still holds has one.
    pub at_ms: Option<u64>,
    /// The snapshot it started from (`None`: from the journal's first event).
    pub snapshot: Option<u64>,
    /// Events folded after the snapshot.
    pub folded: u64,
}

/// The permits of a plan waiting at a point, as found after it (see the module's note).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Permits {
    /// The governor's, if issued by the point's time.
    pub gov: Option<GovPermitEvent>,
    /// P3.3's, if issued by the point's time.
    pub p33: Option<P33PermitEvent>,
    /// The event of the plan's result, when found within the look-ahead.
    pub result_seq: Option<u64>,
}

/// One event of a plan's story: its number, its time (see the module's note), the event.
pub type Step = (u64, Option<u64>, Event);

/// A journal directory read for audits.
#[derive(Debug)]
pub struct Audit {
    dir: PathBuf,
    reader: Reader,
    /// First sequence number of each segment, oldest first.
    segments: Vec<u64>,
    /// Snapshots, oldest first.
    snapshots: Vec<(u64, PathBuf)>,
    symbols: Vec<String>,
}

/// The state just after event `seq` of the journal in `dir` (see [`Audit::state_at`]).
pub fn state_at(dir: &Path, seq: u64) -> Result<State, AuditError> {
    Audit::open(dir)?.state_at(seq).map(|p| p.state)
}

impl Audit {
    /// The journal in `dir` as it is now (segments created after this are not read).
    pub fn open(dir: &Path) -> Result<Audit, AuditError> {
        let segments: Vec<u64> = journal::segments(dir)
            .map_err(read_err)?
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        if segments.is_empty() {
            return Err(AuditError::NoJournal(dir.to_owned()));
        }
        Ok(Audit {
            dir: dir.to_owned(),
            reader: Reader::open(dir).map_err(read_err)?,
            segments,
            snapshots: snapshot::list(dir).map_err(read_err)?,
            symbols: crate::journal_symbols(dir)
                .ok()
                .flatten()
                .unwrap_or_default(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Symbol names by id, as the daemon numbered them (the `symbols` file).
    pub fn symbols(&self) -> &[String] {
        &self.symbols
    }

    /// The oldest event the journal holds.
    pub fn first_seq(&self) -> u64 {
        self.segments[0]
    }

    /// The first event the state can be rebuilt at: 1 while the journal holds its first
    /// event, else the oldest snapshot's that the kept events follow (`u64::MAX`: none).
    pub fn first_point(&self) -> u64 {
        if self.segments[0] <= FIRST_SEQ {
            return FIRST_SEQ;
        }
        self.snapshots
            .iter()
            .map(|(s, _)| *s)
            .find(|s| *s + 1 >= self.segments[0])
            .unwrap_or(u64::MAX)
    }

    /// An error when no state can be rebuilt at all (`first`: [`Audit::first_point`]).
    fn rebuildable(&self, first: u64) -> Result<(), AuditError> {
        if first != u64::MAX {
            return Ok(());
        }
        Err(AuditError::Read(format!(
            "its events before {} were pruned and no snapshot they follow is left: no state can be rebuilt from it",
            self.segments[0]
        )))
    }

    /// Calls `f(seq, event)` for each event from `from` on, in order, until `f` returns
    /// `false` or the journal ends; returns the number after the last event read. Read in
    /// bounded batches; a record that does not decode is an error naming its event.
    pub fn scan<E: From<AuditError>>(
        &self,
        from: u64,
        mut f: impl FnMut(u64, Event) -> Result<bool, E>,
    ) -> Result<u64, E> {
        let mut buf = Vec::with_capacity(BATCH);
        let mut next = from;
        loop {
            buf.clear();
            let after = self
                .reader
                .read_batch(next, BATCH, &mut buf)
                .map_err(read_err)?;
            for (seq, rec) in &buf {
                if !f(*seq, decode(*seq, rec)?)? {
                    return Ok(*seq + 1);
                }
            }
            if buf.len() < BATCH {
                return Ok(after);
            }
            next = after;
        }
    }

    /// The last event's number and the time of the last timed event.
    pub fn last(&self) -> Result<(u64, Option<u64>), AuditError> {
        let from = *self.segments.last().unwrap_or(&FIRST_SEQ);
        let mut t = None;
        let next = self.scan(from, |_, e| {
            t = e.at_ms().or(t);
            Ok(true)
        })?;
        let last = next.saturating_sub(1);
        if t.is_none() && last >= from {
            t = self.time_at(last)?;
        }
        Ok((last, t))
    }

    /// The time of event `seq` (its own or that of the last timed event before it), looking
    /// back as far as the journal holds.
    pub fn time_at(&self, seq: u64) -> Result<Option<u64>, AuditError> {
        let oldest = self.segments[0];
        let mut width = 64u64;
        let mut end = seq;
        while end >= oldest && end != 0 {
            let start = end.saturating_sub(width - 1).max(oldest);
            let mut t = None;
            self.scan(start, |s, e| {
                if let Some(at) = e.at_ms() {
                    t = Some(at);
                }
                Ok(s < end)
            })?;
            if t.is_some() {
                return Ok(t);
            }
            end = start.saturating_sub(1);
            width = width.saturating_mul(4);
        }
        Ok(None)
    }

    /// The state to fold from for event `seq`: the newest readable snapshot at or before it,
    /// else nothing (when the journal holds its first event).
    fn base(&self, seq: u64) -> Result<(State, Option<u64>), AuditError> {
        let mut unusable = Vec::new();
        for (s, path) in self.snapshots.iter().rev().filter(|(s, _)| *s <= seq) {
            match snapshot::read(path) {
                Ok((_, bytes)) => match State::decode(&bytes) {
                    Ok(state) => return Ok((state, Some(*s))),
                    Err(e) => unusable.push(format!("snapshot {s}: {e}")),
                },
                Err(e) => unusable.push(e.to_string()),
            }
        }
        if self.segments[0] > FIRST_SEQ {
            let mut why = format!(
                "event {seq} cannot be rebuilt: the journal's events before {} were pruned and no usable snapshot precedes it",
                self.segments[0]
            );
            for u in unusable {
                why.push_str(&format!("; {u}"));
            }
            return Err(AuditError::Read(why));
        }
        // As the daemon starts without a snapshot: its horizon and order capacity are those of
        // any snapshot it wrote (the configuration's), else the engine's defaults.
        let (horizon_ms, capacity) = self
            .snapshots
            .iter()
            .rev()
            .find_map(|(_, p)| {
                let (_, b) = snapshot::read(p).ok()?;
                let s = State::decode(&b).ok()?;
                Some((s.horizon_ms, s.ended_capacity))
            })
            .unwrap_or_else(|| {
                let d = EngineConfig::default();
                (d.dedupe_horizon_ms, d.max_orders)
            });
        Ok((State::new(self.symbols.len(), horizon_ms, capacity), None))
    }

    /// The state just after event `seq` (0: before the first, when the journal holds it).
    pub fn state_at(&self, seq: u64) -> Result<Point, AuditError> {
        let first = self.first_point();
        self.rebuildable(first)?;
        if seq < first && !(seq == 0 && first == FIRST_SEQ) {
            return Err(AuditError::SeqOutOfRange {
                seq,
                first,
                last: self.last()?.0,
            });
        }
        let (mut state, snapshot) = self.base(seq)?;
        let from = state.seq;
        let mut t = None;
        if seq > from {
            self.scan(from + 1, |s, e| {
                t = e.at_ms().or(t);
                state.apply(s, &e);
                Ok(s < seq)
            })?;
            if state.seq < seq {
                return Err(AuditError::SeqOutOfRange {
                    seq,
                    first,
                    last: state.seq,
                });
            }
        }
        let at_ms = match t {
            Some(t) => Some(t),
            None if seq >= self.segments[0] => self.time_at(seq)?,
            None => None,
        };
        Ok(Point {
            state,
            at_ms,
            snapshot,
            folded: seq - from,
        })
    }

    /// The first timed event at or after `from`: `(seq, time)`, looking at most `window`
    /// events.
    fn first_timed(&self, from: u64, window: u64) -> Result<Option<(u64, u64)>, AuditError> {
        let mut found = None;
        let mut left = window;
        self.scan(from, |s, e| {
            found = e.at_ms().map(|t| (s, t));
            left -= 1;
            Ok(found.is_none() && left > 0)
        })?;
        Ok(found)
    }

    /// The point of time `at_ms`: the last event before the first event whose time is after
    /// it. A time before the first timed point or after the last event's is an error naming
    /// the journal's time range.
    pub fn seq_at(&self, at_ms: u64) -> Result<u64, AuditError> {
        let first = self.first_point();
        self.rebuildable(first)?;
        // Each segment's first timed event (from the first point on), oldest first.
        let mut starts: Vec<(u64, u64)> = Vec::with_capacity(self.segments.len());
        for (i, s) in self.segments.iter().enumerate() {
            let end = self.segments.get(i + 1).copied().unwrap_or(u64::MAX);
            if end <= first {
                continue;
            }
            let from = (*s).max(first);
            if let Some(ft) = self.first_timed(from, end - from)? {
                starts.push((from, ft.1));
            }
        }
        let out_of_range = |a: &Audit| -> Result<AuditError, AuditError> {
            let first_t = a.first_timed(first, u64::MAX)?;
            let (last, last_t) = a.last()?;
            Ok(AuditError::TimeOutOfRange {
                at_ms,
                first: first_t,
                last: last_t.map(|t| (last, t)),
            })
        };
        // The last segment starting at or before the time.
        let Some(&(from, _)) = starts.iter().rev().find(|(_, t)| *t <= at_ms) else {
            return Err(out_of_range(self)?);
        };
        let mut after = None;
        let next = self.scan(from, |s, e| {
            if e.at_ms().is_some_and(|t| t > at_ms) {
                after = Some(s);
                return Ok(false);
            }
            Ok(true)
        })?;
        match after {
            Some(s) => Ok(s - 1),
            // Every event at or before the time: the time is the last event's or later.
            None => {
                let last = next - 1;
                match self.time_at(last)? {
                    Some(t) if t == at_ms => Ok(last),
                    _ => Err(out_of_range(self)?),
                }
            }
        }
    }

    /// The permits the plans waiting at `point` held at its time (see the module's note), by
    /// plan id; every waiting plan has an entry.
    pub fn permits_at(&self, point: &Point) -> Result<BTreeMap<u64, Permits>, AuditError> {
        let mut out: BTreeMap<u64, Permits> = point
            .state
            .pending
            .keys()
            .map(|id| (*id, Permits::default()))
            .collect();
        let Some(deadline) = point.state.pending.values().map(|p| p.deadline_ms).max() else {
            return Ok(out);
        };
        let stop = deadline.saturating_add(PERMIT_LOOKAHEAD_MS);
        let n = point.state.seq;
        let from = self.accepted_since(n, &out)?;
        let mut open = out.len();
        let held = |issued: u64| point.at_ms.is_some_and(|t| issued <= t);
        self.scan(from, |s, e| {
            match e {
                Event::GovPermit(g) => {
                    if let Some(p) = out.get_mut(&g.plan.0).filter(|p| p.result_seq.is_none()) {
                        p.gov = Some(g).filter(|g| held(g.issued_at_ms));
                    }
                }
                Event::P33Permit(q) => {
                    if let Some(p) = out.get_mut(&q.plan.0).filter(|p| p.result_seq.is_none()) {
                        p.p33 = Some(q).filter(|q| held(q.issued_at_ms));
                    }
                }
                Event::PlanResult(r) if !r.outcome.is_duplicate() => {
                    if let Some(p) = out.get_mut(&r.plan.0).filter(|p| p.result_seq.is_none()) {
                        p.result_seq = Some(s);
                        open -= 1;
                    }
                }
                _ => {}
            }
            Ok(s < n || open > 0 && e.at_ms().is_none_or(|t| t <= stop))
        })?;
        Ok(out)
    }

    /// An event at or before the acceptance of every plan in `waiting` (all accepted at or
    /// before event `n`): looks back from `n` in growing windows, down to the oldest event held.
    fn accepted_since(&self, n: u64, waiting: &BTreeMap<u64, Permits>) -> Result<u64, AuditError> {
        let oldest = self.segments[0];
        let mut width = 256u64;
        loop {
            let start = n.saturating_sub(width).max(oldest);
            let mut found = std::collections::BTreeSet::new();
            self.scan(start, |s, e| {
                if let Event::PlanAccepted { plan, .. } = e {
                    if waiting.contains_key(&plan.id.0) {
                        found.insert(plan.id.0);
                    }
                }
                Ok(s < n)
            })?;
            if found.len() == waiting.len() || start == oldest {
                return Ok(start);
            }
            width = width.saturating_mul(4);
        }
    }

    /// Every event of `plan`, in journal order, with its number and time (one read of the
    /// whole journal).
    pub fn plan_events(&self, plan: PlanId) -> Result<Vec<Step>, AuditError> {
        let mut out = Vec::new();
        let mut t = None;
        self.scan(self.segments[0], |s, e| {
            t = e.at_ms().or(t);
            if e.plan() == Some(plan) {
                out.push((s, t, e));
            }
            Ok(true)
        })?;
        Ok(out)
    }
}
