//! One session with one core daemon: from attaching to its rings until it goes away (or the
//! bridge stops). This file has the loop, the ticks and the writes; `events` what the core's
//! events do, `inputs` what comes from Redis; `parts` the state of each concern (progress with
//! the core, the plan stream's intake, the outbox to `plans`, the results side, what Redis
//! says changed, the counters).
//!
//! ```text
//!  start    read the saved state ─> resume at low_seq (replay up to next_seq) ─> push a probe
//!  barrier  the probe's answer is back: every earlier push has its answer; check the permit
//!           source; offer the ledger to a fresh core; start reading the plan stream
//!  loop     events ─> answers (acks), mirrors, results    ┐
//!           plan entries ─> plans ring or dead letters    ├─> one MULTI/EXEC per round
//!           notifications, ticks ─> ledger syncs, permits ┘
//!  end      daemon gone or stop: write the held results, flush, forget the in-flight entries
//! ```
//!
//! In failover mode (the daemon's `failover.enabled`, [`crate::lease`]) the session writes
//! results, permits, positions and ledger sets only while this host leads, through fenced
//! scripts that acknowledge each plan entry with its result; a standby still reads its core's
//! events so its state keeps up. Entries read while this host may not act are left pending.
//! Fills are the exception: in any role each fill of ours (and each order of ours the core
//! recovers from the exchange's history with something filled) is booked into the shared
//! ledger by its increase, once per plan and cumulative quantity
//! ([`crate::batch::BOOK_FILL_SCRIPT`]). After a lead the core asks for each symbol's ledger
//! once no order of ours on it can fill (`LedgerWanted`); the leading bridge flushes what it
//! holds and answers with the shared ledger's value (`LedgerBase`, log line `ledger base`).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use quantum_core::engine::ExternalPermit;
use quantum_core::wire::input_out;
use quantum_core::{Input, PlanId, PlanResult};
use quantum_ipc::liveness::unix_ms;
use quantum_ipc::wire::Message;
use redis::Value;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use crate::backfill;
use crate::batch;
use crate::batch::Fence;
use crate::config::{BridgeConfig, Names, PermitsFrom};
use crate::conn::Redis;
use crate::error::{Error, Result};
use crate::inflight::InFlight;
use crate::lease::{self, LeaseHandle};
use crate::ledger::Ledger;
use crate::legs::{self, Legs, Stamps};
use crate::notify::{self, Note};
use crate::permits_in::PermitsIn;
use crate::results::HeldResults;
use crate::rings::{Ev, EventReader, Link};
use crate::state::{self, Saved};
use crate::stats::Stats;
use crate::stream;

mod events;
mod inputs;
mod parts;

use parts::{Awaiting, Counters, Intake, Outbox, Progress, Watch, Writes};

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The bridge was asked to stop.
    Stop,
    /// The daemon went away; the next session waits for a new one.
    DaemonGone,
}

/// Probe plan ids: this prefix and 32 random bits (no exit-brain id is expected to look like
/// it; a collision would only deny that one plan).
const PROBE_PREFIX: u64 = 0x7072_6f62 << 32;
/// Results held for their order id, at most.
const MAX_HELD_RESULTS: usize = 65_536;
/// Plans between their push and their result entry whose times are kept, at most, beyond
/// `--max-in-flight` (accepted plans waiting for their permits and their order id).
const MAX_STAMPS: usize = MAX_HELD_RESULTS;
/// Records waiting for room on `plans` before the bridge stops reading new entries.
const MAX_UNPUSHED: usize = 1024;
/// How often the loop wakes without input.
const TICK: Duration = Duration::from_millis(20);

/// The first 20 occurrences are logged, then one in 1000.
fn noisy(n: u64) -> bool {
    n <= 20 || n % 1000 == 0
}

/// Whether `r` answers a plan at once (no `PlanAccepted` before it).
fn answers_at_once(r: &PlanResult) -> bool {
    r.outcome.at_admission()
}

/// One session's state: the bridge's context and the core's rings, then one part per concern.
pub struct Session<'a> {
    /// The bridge's options.
    cfg: &'a BridgeConfig,
    /// Its names in Redis (with or without failover).
    names: Names,
    /// Failover: this host's lease (`None`: failover off).
    lease: Option<LeaseHandle>,
    /// Failover: the epoch this session last saw this host lead under.
    led_epoch: Option<u64>,
    /// Failover: answered entries waiting for their result entry.
    awaiting: Awaiting,
    /// The bridge's Redis (shared connection, back-off).
    redis: &'a mut Redis,
    /// The bridge's counters.
    stats: Arc<Stats>,
    /// Set when the bridge is asked to stop.
    stop: watch::Receiver<bool>,
    /// The daemon's rings and symbols.
    link: Link,
    /// The core's events, from the reader of `results` (and the journal when lapped).
    events: mpsc::Receiver<Vec<Ev>>,
    /// That reader (nudged after each push).
    reader: EventReader,
    /// Keyspace notifications.
    notes: mpsc::Receiver<Note>,
    /// The stream reader and the notification listener, stopped with the session.
    tasks: JoinSet<()>,
    /// Where the session stands with the core.
    progress: Progress,
    /// The plan stream's side.
    intake: Intake,
    /// Records for the `plans` ring.
    outbox: Outbox,
    /// The results side.
    writes: Writes,
    /// What Redis says changed, and the polls without it.
    watch: Watch,
    /// The ledger values handed to the core and seen from it, per symbol.
    ledger: Ledger,
    /// Failover: ledger bases handed to the core, per symbol, until its `LedgerSet` for them.
    bases: HashMap<u16, quantum_core::Qty>,
    /// Legacy permits read from Redis (`--permits-from redis`), held until their plan is in.
    permits: Option<PermitsIn>,
    /// What the session counts beyond the stats.
    counters: Counters,
    /// The legacy path's live latency (the bridge's, for its life).
    legs: &'a Legs,
    /// The times of the plans pushed whose result entry is not written yet.
    stamps: Stamps,
}

impl<'a> Session<'a> {
    /// Attaches: reads the saved state, starts reading events, pushes the probe. `lease`:
    /// this host's lease in failover mode; `legs`: the bridge's live latency.
    pub async fn start(
        cfg: &'a BridgeConfig,
        redis: &'a mut Redis,
        stats: Arc<Stats>,
        link: Link,
        stop: watch::Receiver<bool>,
        lease: Option<LeaseHandle>,
        legs: &'a Legs,
    ) -> Result<Option<Session<'a>>> {
        let names = cfg.names(lease.is_some());
        let Some(saved) = prepare(redis, cfg, &names, &stop, &link).await? else {
            return Ok(None);
        };
        let resume = state::resume(
            saved.as_ref(),
            &link.epoch,
            link.base_seq(),
            link.next_seq(),
        );
        tracing::info!(
            instance = %cfg.instance,
            daemon_pid = link.daemon_pid,
            epoch = %link.epoch,
            from = ?resume.from,
            replay_until = resume.replay_until,
            "resuming: {}",
            resume.why
        );
        Stats::inc(&stats.sessions);
        let (ev_tx, events) = mpsc::channel(64);
        let reader = link.read_events(
            resume.from,
            backfill::for_instance(&cfg.instance, cfg.journal_dir.clone()),
            stats.clone(),
            ev_tx,
        )?;
        let (note_tx, notes) = mpsc::channel(4096);
        let mut tasks = JoinSet::new();
        tasks.spawn(notify::run(
            redis.target().clone(),
            redis.db(),
            cfg.permits_from == PermitsFrom::Redis,
            note_tx,
            stats.clone(),
        ));
        let nonce = u64::from(std::process::id()) << 32
            ^ (unix_ms() & 0xffff_ffff)
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::from(d.subsec_nanos()));
        let now = Instant::now();
        let mut s = Session {
            cfg,
            lease,
            led_epoch: None,
            awaiting: Awaiting::default(),
            redis,
            stop,
            events,
            reader,
            notes,
            tasks,
            progress: Progress {
                resume,
                next_seq: 0,
                probe: PROBE_PREFIX | (nonce & 0xffff_ffff),
                probe_sent: now,
                barrier: false,
            },
            intake: Intake {
                entries: None,
                slots: Arc::new(Semaphore::new(cfg.max_in_flight)),
                inflight: InFlight::default(),
            },
            outbox: Outbox::default(),
            writes: Writes {
                batch: Writes::empty_batch(cfg, &names.shared),
                held: HeldResults::new(cfg.order_id_wait, MAX_HELD_RESULTS),
                flushes: 0,
                marker_base: format!("{nonce:016x}"),
            },
            watch: Watch {
                notifications: false,
                own_writes: HashMap::new(),
                positions_dirty: BTreeSet::new(),
                initial_sync_due: false,
                next_ledger_poll: now,
                next_permit_poll: now,
            },
            ledger: Ledger::default(),
            bases: HashMap::new(),
            permits: (cfg.permits_from == PermitsFrom::Redis)
                .then(|| PermitsIn::new(cfg.max_held_permits)),
            counters: Counters {
                next_stats: now + cfg.stats_every,
                invalid_events: 0,
                refusals: 0,
                answer_us: Histogram::new_with_bounds(1, 3_600_000_000, 2)
                    .expect("static histogram bounds"),
            },
            link,
            stats,
            names,
            legs,
            stamps: Stamps::new(cfg.max_in_flight.saturating_add(MAX_STAMPS)),
        };
        s.progress.next_seq = match s.progress.resume.from {
            state::From::Seq(n) => n,
            state::From::Oldest => s.link.base_seq(),
        };
        // Behind everything an earlier process pushed: once its answer is back, so are theirs.
        let probe = input_out(&Input::Permit(ExternalPermit::Gov {
            plan: PlanId(s.progress.probe),
            allow: false,
            reason: None,
            ttl_ms: 1,
        }))
        .expect("a permit has a wire form");
        s.send(probe);
        Ok(Some(s))
    }

    /// Runs until the daemon goes away or the bridge stops.
    pub async fn run(mut self) -> Result<End> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.outbox.push_waiting(&mut self.link, &self.reader);
            let reading =
                self.intake.entries.is_some() && self.outbox.unpushed.len() < MAX_UNPUSHED;
            let mut end = None;
            tokio::select! {
                biased;
                _ = self.stop.changed() => end = Some(End::Stop),
                // Before the inputs: a flood of them must not starve the ticks (held
                // results, heartbeats, the stats hash).
                _ = tick.tick() => self.on_tick().await?,
                evs = self.events.recv() => match evs {
                    Some(evs) => end = self.on_events(evs).await?,
                    None => end = Some(End::DaemonGone),
                },
                Some(r) = recv(&mut self.intake.entries), if reading => self.on_read(r).await,
                Some(n) = self.notes.recv() => self.on_notes(n).await,
            }
            if end.is_none() {
                while self.writes.batch.len() < self.cfg.batch {
                    match self.events.try_recv() {
                        Ok(evs) => {
                            end = self.on_events(evs).await?;
                            if end.is_some() {
                                break;
                            }
                        }
                        Err(_) => break,
                    }
                }
            }
            if let Some(end) = end {
                return self.finish(end).await;
            }
            self.follow_lease();
            if self.watch.initial_sync_due {
                self.watch.initial_sync_due = false;
                // Failover: a core takes its ledger from the shared ledger when it leads
                // (`LedgerWanted`), never as an offer of the bridge's own values, which a fill
                // booked meanwhile would make stale.
                let offer = self.progress.resume.fresh_core && self.lease.is_none();
                self.sync_ledger(None, offer).await;
            }
            if !self.writes.batch.is_empty() && !self.flush().await? {
                return Ok(End::Stop);
            }
            if let Some(h) = &self.lease {
                h.set_outstanding(self.intake.inflight.len() + self.awaiting.len());
            }
        }
    }

    /// Failover: the epoch this host leads under now (`None` also without failover).
    fn leading(&self) -> Option<u64> {
        self.lease.as_ref().and_then(LeaseHandle::leads)
    }

    /// Whether the core's events are written to Redis: always without failover; while this
    /// host leads with it.
    fn mirrors(&self) -> bool {
        self.lease.is_none() || self.leading().is_some()
    }

    /// Failover: the fence of the writes made now (`None` when this host does not lead, or
    /// without failover).
    fn fence(&self) -> Option<Fence> {
        self.leading().map(|epoch| Fence {
            epoch_key: lease::epoch_key(&self.names.shared),
            epoch,
        })
    }

    /// Failover: follows this host's role. Losing the lead forgets the entries waiting for
    /// their result (pending for the leader).
    fn follow_lease(&mut self) {
        let Some(h) = &self.lease else {
            return;
        };
        let now = h.leads();
        if now == self.led_epoch {
            return;
        }
        match now {
            Some(epoch) if self.led_epoch.is_none() => {
                tracing::info!(
                    epoch,
                    "leading: this bridge writes the results and mirrors the core's events; the core asks for each symbol's ledger once it is quiet"
                );
            }
            Some(_) => {}
            None => {
                tracing::info!(
                    epoch = ?self.led_epoch,
                    unwritten = self.awaiting.len(),
                    "not leading: nothing of the core's events is written; their plan entries stay pending for the leader"
                );
                self.awaiting.clear();
            }
        }
        self.led_epoch = now;
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Pushes `m` on `plans`, or keeps it (in order) until there is room.
    fn send(&mut self, m: Message) {
        self.outbox
            .send(&mut self.link, &self.reader, &self.stats, m);
    }

    async fn on_tick(&mut self) -> Result<()> {
        let now = Instant::now();
        self.link.heartbeat();
        for r in self.writes.held.expired(now) {
            self.write_result(r);
        }
        if self.lease.as_ref().is_some_and(|h| h.may_send().is_none()) {
            // A daemon that may not send takes no records: the probe waits for the lead.
            self.progress.probe_sent = now;
        }
        if !self.progress.barrier
            && now.duration_since(self.progress.probe_sent) > self.cfg.attach_timeout
        {
            return Err(Error::NoDaemon {
                instance: self.cfg.instance.clone(),
                what: format!(
                    "the core did not answer the bridge's probe within {} s",
                    self.cfg.attach_timeout.as_secs()
                ),
            });
        }
        if let Some(p) = &mut self.permits {
            let gone = p.expire(now);
            if !gone.is_empty() {
                Stats::add(&self.stats.permits_expired, gone.len() as u64);
                for (plan, kind) in gone {
                    tracing::info!(plan = %plan, kind = ?kind, "legacy permit expired before its plan reached the core; dropped");
                }
            }
            if !self.watch.notifications && now >= self.watch.next_permit_poll {
                self.watch.next_permit_poll = now + self.cfg.permit_poll;
                self.poll_permits().await;
            }
        }
        if self.progress.barrier && now >= self.watch.next_ledger_poll {
            self.watch.next_ledger_poll = now + self.cfg.ledger_poll;
            self.sync_ledger(None, false).await;
        }
        if now >= self.counters.next_stats {
            self.counters.next_stats = now + self.cfg.stats_every;
            self.report().await;
        }
        Ok(())
    }

    /// Logs the counts and writes them to the stats hash (best effort).
    async fn report(&mut self) {
        let h = &self.counters.answer_us;
        let answer = [
            ("answer_us_p50", h.value_at_quantile(0.5)),
            ("answer_us_p99", h.value_at_quantile(0.99)),
            ("answer_us_max", h.max()),
        ];
        tracing::info!(
            in_flight = self.intake.inflight.len(),
            held_results = self.writes.held.len(),
            held_permits = self.permits.as_ref().map_or(0, PermitsIn::held),
            answer_us_p50 = answer[0].1,
            answer_us_p99 = answer[1].1,
            "counts: {}",
            self.stats.line()
        );
        let Ok(mut c) = self.redis.conn().await else {
            return;
        };
        let mut cmd = redis::cmd("HSET");
        cmd.arg(state::stats_key(&self.names.own));
        for (k, v) in self.stats.snapshot().into_iter().chain(answer) {
            cmd.arg(k).arg(v);
        }
        cmd.arg("updated_at").arg(crate::legacy::iso_ms(unix_ms()));
        if let Err(e) = cmd.query_async::<()>(&mut c).await {
            self.redis.failed(&e.into());
        }
    }

    /// The state this batch brings Redis to. Events before `replay_until` were mirrored by an
    /// earlier process: `next_seq` never goes back below it, and while the replay is still
    /// being read `low_seq` stays at the first event not re-read yet (results held there).
    fn saved(&self) -> Saved {
        let pos = self.progress.next_seq;
        Saved {
            epoch: self.link.epoch.clone(),
            next_seq: pos.max(self.progress.resume.replay_until),
            low_seq: self.writes.held.low_seq().unwrap_or(pos).min(pos),
        }
    }

    /// Writes the batch in one MULTI/EXEC, retrying with back-off until it has landed; false
    /// when the bridge was stopped first (nothing of it is then counted as written).
    async fn flush(&mut self) -> Result<bool> {
        let marker = self.writes.next_marker();
        let tx = self
            .writes
            .batch
            .transaction(&self.names.own, &self.saved(), &marker);
        // Set once an attempt failed: it may have landed all the same (its answer lost), so
        // the marker is read before anything is written again.
        let mut unsure: Option<Error> = None;
        let mut retrying = false;
        // Result entries the transaction did not write (their plan had one); unknown when
        // the reply was lost.
        let mut replies = batch::Replies::default();
        let mut reply_seen: Option<Value> = None;
        loop {
            if retrying {
                self.link.heartbeat();
                if self.stopping() {
                    return Ok(false);
                }
                self.redis.backoff().await;
            }
            retrying = true;
            let Ok(mut c) = self.redis.conn().await else {
                continue;
            };
            if let Some(err) = &unsure {
                match batch::landed(&mut c, &self.names.own, &marker).await {
                    Ok(true) => {
                        if !err.is_connection() {
                            tracing::error!(error = %err, "one write of a batch failed after the others landed (a key of the wrong type?); it is not retried");
                        }
                        break;
                    }
                    Ok(false) => {} // not there: written again below
                    Err(e) => {
                        self.redis.failed(&e.into());
                        continue;
                    }
                }
            }
            match tx.query_async::<Value>(&mut c).await {
                Ok(reply) => {
                    replies = self.writes.batch.replies(&reply);
                    reply_seen = Some(reply);
                    break;
                }
                Err(e) => {
                    let e = Error::from(e);
                    self.redis.failed(&e);
                    unsure = Some(e);
                }
            }
        }
        // When Redis answered: the moment every write of the batch is in (the latency's "written").
        let (landed, landed_ns) = (Instant::now(), legs::wall_ns());
        self.redis.ok();
        self.time_landed(reply_seen.as_ref(), landed, landed_ns);
        self.watch
            .own_writes_landed(self.writes.batch.position_writes());
        let c = self.writes.batch.counts;
        let st = &self.stats;
        let written = c
            .results
            .saturating_sub(replies.repeated + replies.fenced_results);
        if let Some(h) = &self.lease {
            if replies.fenced() {
                h.fenced();
            }
            if written > 0 {
                if let Some(ms) = h.results_written() {
                    Stats::set(&st.takeover_ms, ms);
                }
            }
        }
        Stats::inc(&st.flushes);
        Stats::add(&st.results_written, written);
        Stats::add(&st.results_repeated, replies.repeated);
        Stats::add(
            &st.writes_fenced,
            replies.fenced_results + replies.fenced_ledger,
        );
        Stats::add(&st.fills_booked, replies.fills_booked);
        Stats::add(&st.fills_repeated, replies.fills_repeated);
        if replies.fills_unbooked > 0 {
            Stats::add(&st.fills_unbooked, replies.fills_unbooked);
            tracing::warn!(
                fills = replies.fills_unbooked,
                "fills not booked into the shared ledger: ledger_amount is not an amount; an operator's sync must set it (HSET quantum:position:<SYMBOL> ledger_amount <amount>)"
            );
        }
        Stats::add(&st.results_without_order_id, c.results_without_order_id);
        Stats::add(&st.permits_mirrored, c.permits);
        Stats::add(&st.positions_mirrored, c.positions);
        Stats::add(&st.plans_acked, c.acks);
        Stats::add(&st.plans_dlq, c.dead_letters);
        Stats::add(&st.permits_consumed, c.consumed);
        self.writes.batch = Writes::empty_batch(self.cfg, &self.names.shared);
        Ok(true)
    }

    /// The batch landed at `at` (`wall_ns` on the wall clock) with `reply` (`None`: lost, found
    /// landed by its marker): its permit keys are noted, and each result entry its reply says
    /// was written gives its plan's samples ([`crate::legs`]). Every result of the batch ends
    /// its plan's stamp, written or not: a plan answered again gets no second sample.
    fn time_landed(&mut self, reply: Option<&Value>, at: Instant, wall_ns: u64) {
        let batch = &self.writes.batch;
        self.stamps.permits_written(batch.permit_plans(), wall_ns);
        for (plan, written) in batch.results_written(reply) {
            if let Some(stamp) = self.stamps.take(plan) {
                if written {
                    self.legs.result_written(&stamp, wall_ns, at);
                }
            }
        }
    }

    /// Ends the session: held results are written now (with no order id), the batch is
    /// flushed, in-flight entries are forgotten (they stay pending in Redis).
    async fn finish(mut self, end: End) -> Result<End> {
        let now = Instant::now() + self.cfg.order_id_wait;
        for r in self.writes.held.expired(now) {
            self.write_result(r);
        }
        if !self.writes.batch.is_empty() {
            self.flush().await?;
        }
        self.tasks.abort_all();
        let unanswered = self.intake.inflight.len();
        self.intake.inflight.clear();
        self.awaiting.clear();
        self.stamps.clear();
        if let Some(h) = &self.lease {
            h.set_outstanding(0);
        }
        tracing::info!(
            ?end,
            unanswered,
            unpushed = self.outbox.unpushed.len(),
            "session ended"
        );
        self.report().await;
        Ok(end)
    }
}

async fn recv<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Makes sure the consumer group exists (so that "attached" means every plan XADDed from
/// then on is delivered) and reads the bridge's saved state, retrying while Redis is down;
/// `Ok(None)` when stopped first, `Ok(Some(None))` when nothing was saved yet.
async fn prepare(
    redis: &mut Redis,
    cfg: &BridgeConfig,
    names: &Names,
    stop: &watch::Receiver<bool>,
    link: &Link,
) -> Result<Option<Option<Saved>>> {
    let instance = names.own.as_str();
    let group = stream::Reader::new(cfg, &names.consumer, None);
    loop {
        if *stop.borrow() {
            return Ok(None);
        }
        link.heartbeat();
        if let Ok(mut c) = redis.conn().await {
            if let Err(e) = group.ensure_group(&mut c).await {
                redis.failed(&e);
                redis.backoff().await;
                continue;
            }
            let r: redis::RedisResult<std::collections::HashMap<String, String>> =
                redis::cmd("HGETALL")
                    .arg(state::state_key(instance))
                    .query_async(&mut c)
                    .await;
            match r {
                Ok(h) => {
                    redis.ok();
                    return Saved::from_hash(&h).map(Some).map_err(|why| {
                        Error::Config(format!(
                            "the bridge's state {} is unreadable ({why}); delete it (redis-cli DEL {}) to start over",
                            state::state_key(instance),
                            state::state_key(instance)
                        ))
                    });
                }
                Err(e) => redis.failed(&e.into()),
            }
        }
        redis.backoff().await;
    }
}
