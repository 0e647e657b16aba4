//! The parts of a session's state, one per concern; [`super::Session`] is their composition.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use quantum_core::PlanId;
use quantum_ipc::wire::Message;
use tokio::sync::{mpsc, Semaphore};

use crate::batch::Batch;
use crate::config::BridgeConfig;
use crate::inflight::InFlight;
use crate::results::HeldResults;
use crate::rings::{EventReader, Link};
use crate::state::Resume;
use crate::stats::Stats;
use crate::stream::Read;

/// Where the session stands with the core: where it resumed, how far it read the events,
/// and the probe whose answer opens it.
pub(super) struct Progress {
    /// Where the reader of `results` started and up to where an earlier process mirrored.
    pub(super) resume: Resume,
    /// The next event to mirror (the first one not read yet).
    pub(super) next_seq: u64,
    /// The probe's plan id (a governor permit for it is pushed first).
    pub(super) probe: u64,
    /// When the probe was pushed: the core must answer it within the attach timeout.
    pub(super) probe_sent: Instant,
    /// The probe's answer came back: every push of an earlier process has its answer, and
    /// the plan stream is read.
    pub(super) barrier: bool,
}

/// The plan stream's side: entries read, and those pushed to the core and not yet answered.
pub(super) struct Intake {
    /// Entries from the stream reader (none until the barrier).
    pub(super) entries: Option<mpsc::Receiver<Read>>,
    /// Entries the stream reader may hand over before their plans are answered
    /// (`--max-in-flight`).
    pub(super) slots: Arc<Semaphore>,
    /// Entries pushed to the core, by plan, until its answer acknowledges them.
    pub(super) inflight: InFlight,
}

/// Records for the `plans` ring, in order: pushed at once when there is room, else held.
#[derive(Default)]
pub(super) struct Outbox {
    /// Records waiting for room, in the order they were made.
    pub(super) unpushed: VecDeque<Message>,
    /// The ring-full episode under way was counted (once per episode).
    pub(super) ring_full_counted: bool,
}

impl Outbox {
    /// Pushes `m` on `plans`, or keeps it (in order) until there is room.
    pub(super) fn send(
        &mut self,
        link: &mut Link,
        reader: &EventReader,
        stats: &Stats,
        m: Message,
    ) {
        if self.unpushed.is_empty() && link.try_push(&m) {
            reader.nudge();
            return;
        }
        if !self.ring_full_counted {
            self.ring_full_counted = true;
            Stats::inc(&stats.plans_ring_full);
            tracing::warn!("plans ring full: the core is not taking records; holding them");
        }
        self.unpushed.push_back(m);
    }

    /// Pushes the held records while there is room.
    pub(super) fn push_waiting(&mut self, link: &mut Link, reader: &EventReader) {
        while let Some(m) = self.unpushed.front() {
            if !link.try_push(m) {
                return;
            }
            self.unpushed.pop_front();
            reader.nudge();
        }
        self.ring_full_counted = false;
    }
}

/// The results side: what the next MULTI/EXEC writes, and results held for their order id.
pub(super) struct Writes {
    /// The writes of the round under way.
    pub(super) batch: Batch,
    /// Executed plans' results waiting (a bounded time) for their order id.
    pub(super) held: HeldResults,
    /// Batches flushed: with `marker_base`, each batch's unique marker.
    pub(super) flushes: u64,
    /// This session's part of the batch markers (random per session).
    pub(super) marker_base: String,
}

impl Writes {
    /// An empty batch of the bridge configured by `cfg`, its answered markers named after
    /// `shared` ([`crate::config::Names::shared`]).
    pub(super) fn empty_batch(cfg: &BridgeConfig, shared: &str) -> Batch {
        Batch::new(shared, cfg.maxlen, &cfg.group, cfg.answered_ttl_s)
    }

    /// The marker of the next batch.
    pub(super) fn next_marker(&mut self) -> String {
        self.flushes += 1;
        format!("{}-{}", self.marker_base, self.flushes)
    }
}

/// What Redis says changed (keyspace notifications) and when the bridge reads again without
/// them: the position hashes (ledger syncs) and the legacy permits.
pub(super) struct Watch {
    /// Keyspace notifications come (else the ledger and the permits are polled).
    pub(super) notifications: bool,
    /// Per symbol, keyspace notifications the bridge's own writes to its position hash will
    /// still cause ([`Watch::own_writes_landed`]): they are skipped, not read back.
    pub(super) own_writes: HashMap<String, u64>,
    /// Symbols whose position hash was written by someone else: read once per burst.
    pub(super) positions_dirty: BTreeSet<u16>,
    /// The ledger is read at the end of the round (once, after the barrier).
    pub(super) initial_sync_due: bool,
    /// When every position hash is read again.
    pub(super) next_ledger_poll: Instant,
    /// When the missing permits are read again (notifications off).
    pub(super) next_permit_poll: Instant,
}

impl Watch {
    /// A batch landed that wrote the position hashes of `symbols`: the notifications those
    /// writes cause are the bridge's own. Only while notifications come (else none would use
    /// the credit up).
    pub(super) fn own_writes_landed(&mut self, symbols: &[String]) {
        if !self.notifications {
            return;
        }
        for symbol in symbols {
            *self.own_writes.entry(symbol.clone()).or_default() += 1;
        }
    }

    /// Notifications stopped or started again: those of writes made meanwhile never come.
    pub(super) fn subscribed(&mut self, enabled: bool) {
        self.notifications = enabled;
        self.own_writes.clear();
    }

    /// Whether a notification for `symbol`'s position hash is one of the bridge's own writes
    /// (and uses up its credit).
    pub(super) fn own_write(&mut self, symbol: &str) -> bool {
        let Some(n) = self.own_writes.get_mut(symbol) else {
            return false;
        };
        *n -= 1;
        if *n == 0 {
            self.own_writes.remove(symbol);
        }
        true
    }
}

/// What the session counts and reports beyond [`Stats`].
pub(super) struct Counters {
    /// When the counts are logged and written to the stats hash next.
    pub(super) next_stats: Instant,
    /// Invalid event records skipped (their warnings are thinned out by it).
    pub(super) invalid_events: u64,
    /// Records of the bridge the core refused (likewise).
    pub(super) refusals: u64,
    /// Entry read from the stream → the core's answer seen on `results` (µs), since the start
    /// of the session: the core's and the rings' share of the plans' way.
    pub(super) answer_us: Histogram<u64>,
}

/// Failover: plan entries the core answered (accepted) whose result entry is not written yet;
/// each is acknowledged by the script that writes (or finds) its plan's result.
#[derive(Default)]
pub(super) struct Awaiting {
    by_plan: HashMap<PlanId, Vec<String>>,
    ids: HashSet<String>,
}

impl Awaiting {
    /// Entry `id` of `plan` waits for its result.
    pub(super) fn add(&mut self, plan: PlanId, id: String) {
        self.ids.insert(id.clone());
        self.by_plan.entry(plan).or_default().push(id);
    }

    /// The entries of `plan`, to acknowledge with its result.
    pub(super) fn take(&mut self, plan: PlanId) -> Vec<String> {
        let ids = self.by_plan.remove(&plan).unwrap_or_default();
        for id in &ids {
            self.ids.remove(id);
        }
        ids
    }

    /// Whether entry `id` waits (a claim must not push it again).
    pub(super) fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Entries waiting.
    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Forgets them (this host stopped leading: they stay pending for the leader).
    pub(super) fn clear(&mut self) {
        self.by_plan.clear();
        self.ids.clear();
    }
}
