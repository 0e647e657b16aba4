//! The bridge's side of an instance's shared memory: the symbol directory and epoch from the
//! counters segment, the producer end of `plans`, and a thread reading `results`.
//!
//! `results` never waits for a reader, and reading it never blocks, but the reader thread
//! hands events to the async side over a bounded channel: when the bridge is slow (Redis down),
//! the thread waits on the channel, the ring laps it, and the events it missed come from
//! [`crate::backfill`]. Pushing on `plans` is `try_push` from the async side, so a full ring
//! (a stalled core) delays the bridge's reads from Redis, never the runtime.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use quantum_core::event::Event;
use quantum_core::PositionSide;
use quantum_ipc::broadcast::{Broadcast, Next, Start};
use quantum_ipc::contract;
use quantum_ipc::wire::{Limits, Message, Record, RECORD_SIZE};
use quantum_ipc::{CountersReader, PeerStatus, Producer, Ring, RingSpec};
use tokio::sync::mpsc;

use crate::backfill::{self, Backfill};
use crate::error::{Error, Result};
use crate::state::{self, From};
use crate::stats::Stats;

/// Symbol ids and their legs' labels as the daemon numbered them: `BTCUSDT` for a one-way
/// symbol, `ETHUSDT:LONG` and `ETHUSDT:SHORT` for the two legs of a hedge-mode one
/// ([`PositionSide::label`]). What the bridge writes names the exchange symbol
/// ([`Symbols::name`]) and, where the contract has a place for it, the leg's side
/// ([`Symbols::side`]).
#[derive(Clone, Debug, Default)]
pub struct Symbols {
    labels: HashMap<u16, String>,
}

impl Symbols {
    /// From `(id, label)` pairs (the counters segment's symbol directory).
    pub fn new(pairs: impl IntoIterator<Item = (u16, String)>) -> Symbols {
        Symbols {
            labels: pairs.into_iter().collect(),
        }
    }

    /// The label of leg `id` (`?` for an id the directory does not have): the key of the
    /// bridge's own per-leg state ([`crate::state::ledger_key`]), never written as a symbol.
    pub fn label(&self, id: u16) -> &str {
        self.labels.get(&id).map_or("?", String::as_str)
    }

    /// The exchange symbol of leg `id` (`?` for an id the directory does not have): the
    /// `symbol` of everything the bridge writes.
    pub fn name(&self, id: u16) -> &str {
        PositionSide::split_label(self.label(id)).0
    }

    /// The position side of leg `id` (`BOTH` for a one-way symbol).
    pub fn side(&self, id: u16) -> PositionSide {
        PositionSide::split_label(self.label(id)).1
    }

    /// The legs of exchange symbol `symbol` (one for a one-way symbol, two for a hedge-mode
    /// one, none for a symbol the instance does not trade), in id order.
    pub fn legs(&self, symbol: &str) -> Vec<u16> {
        self.iter()
            .into_iter()
            .filter(|(_, label)| PositionSide::split_label(label).0 == symbol)
            .map(|(id, _)| id)
            .collect()
    }

    /// The leg a plan for `symbol` naming `side` goes to
    /// ([`quantum_core::PositionSide::plan_leg`]).
    pub fn plan_leg(&self, symbol: &str, side: Option<PositionSide>) -> Option<u16> {
        PositionSide::plan_leg(self.iter(), symbol, side)
    }

    /// `(id, label)`, in id order.
    pub fn iter(&self) -> Vec<(u16, &str)> {
        let mut v: Vec<(u16, &str)> = self.labels.iter().map(|(i, n)| (*i, n.as_str())).collect();
        v.sort_unstable();
        v
    }

    /// Number of legs (symbol ids).
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// No symbols.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The exchange symbols, comma-separated, a hedge-mode one marked `(hedge)` (for error
    /// messages and the log): `BTCUSDT, ETHUSDT (hedge)`.
    pub fn list(&self) -> String {
        let mut out: Vec<String> = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for (id, _) in self.iter() {
            let name = self.name(id);
            if seen.contains(&name) {
                continue;
            }
            seen.push(name);
            out.push(match self.side(id).is_hedge() {
                true => format!("{name} (hedge)"),
                false => name.to_owned(),
            });
        }
        out.join(", ")
    }
}

/// What the reader thread hands over, in sequence order.
#[derive(Debug)]
pub enum Ev {
    /// An event and its sequence number.
    Event(u64, Event),
    /// A record at this sequence number that is not a valid event (counted, skipped).
    Invalid(u64, String),
    /// The daemon is gone and every event it published has been handed over.
    WriterGone,
}

/// The attached instance.
pub struct Link {
    /// Instance name.
    pub instance: String,
    /// The daemon's symbols.
    pub symbols: Symbols,
    /// The daemon's epoch ([`state::epoch`]).
    pub epoch: String,
    /// The daemon's pid.
    pub daemon_pid: u64,
    /// The daemon's failover settings (`None`: failover off).
    pub failover: Option<crate::lease::Settings>,
    results: Broadcast,
    _plans: Ring,
    producer: Producer<RECORD_SIZE>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("instance", &self.instance)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

fn no_daemon(instance: &str, what: impl Into<String>) -> Error {
    Error::NoDaemon {
        instance: instance.to_owned(),
        what: what.into(),
    }
}

impl Link {
    /// Attaches to a live daemon of `instance`, waiting up to `timeout` for it; claims the
    /// producer end of `plans` (refused while another live bridge holds it).
    pub async fn attach(instance: &str, timeout: Duration) -> Result<Link> {
        let deadline = Instant::now() + timeout;
        loop {
            match Self::try_attach(instance) {
                Ok(link) => return Ok(link),
                Err(e @ (Error::Ipc { .. } | Error::Config(_))) => return Err(e),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    fn try_attach(instance: &str) -> Result<Link> {
        let counters = CountersReader::open(instance)
            .map_err(|e| no_daemon(instance, format!("no counters segment ({e})")))?;
        if !counters.owner_alive() {
            return Err(no_daemon(
                instance,
                "its counters segment has no live owner",
            ));
        }
        let failover = crate::lease::Settings::from_counters(&counters)
            .map_err(|why| Error::Config(format!("instance {instance}: {why}")))?;
        let symbols = Symbols::new(counters.symbols());
        if symbols.is_empty() {
            return Err(no_daemon(instance, "its symbol directory is empty"));
        }
        let results = Broadcast::open(&RingSpec::new(instance, contract::RESULTS.name, 0))
            .map_err(|e| no_daemon(instance, format!("no results ring ({e})")))?;
        if !matches!(
            results.writer_status(u64::MAX),
            PeerStatus::Alive { .. } | PeerStatus::Stale { .. }
        ) {
            return Err(no_daemon(instance, "its results ring has no live writer"));
        }
        let plans = Ring::open(&RingSpec::new(instance, contract::PLANS.name, 0))
            .map_err(|e| no_daemon(instance, format!("no plans ring ({e})")))?;
        let producer = plans.producer().map_err(|source| Error::Ipc {
            instance: instance.to_owned(),
            source,
        })?;
        Ok(Link {
            instance: instance.to_owned(),
            epoch: state::epoch(counters.start_time_ms(), counters.owner_pid()),
            daemon_pid: counters.owner_pid(),
            failover,
            symbols,
            results,
            _plans: plans,
            producer,
        })
    }

    /// Number of the daemon's first event in the ring's numbering.
    pub fn base_seq(&self) -> u64 {
        self.results.base_seq()
    }

    /// Number of the next event the daemon will publish.
    pub fn next_seq(&self) -> u64 {
        self.results.next_seq()
    }

    /// Pushes a record on `plans`; `false` when the ring is full (the caller keeps it).
    pub fn try_push(&mut self, m: &Message) -> bool {
        self.producer.try_push_message(m).is_ok()
    }

    /// Records the core has not taken from `plans` yet.
    pub fn plans_waiting(&self) -> usize {
        self.producer.len()
    }

    /// Marks the producer alive for the daemon.
    pub fn heartbeat(&self) {
        self.producer.heartbeat();
    }

    /// Starts the thread reading `results` from `from`, handing events to `tx`.
    pub fn read_events(
        &self,
        from: From,
        backfill: Box<dyn Backfill>,
        stats: Arc<Stats>,
        tx: mpsc::Sender<Vec<Ev>>,
    ) -> Result<EventReader> {
        let start = match from {
            From::Oldest => Start::Oldest,
            From::Seq(s) => Start::Seq(s),
        };
        let reader = self.results.reader(start);
        let limits = Limits::new(self.symbols.len() as u16);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let nudged = Arc::new(AtomicBool::new(false));
        let nudge_flag = nudged.clone();
        let thread = std::thread::Builder::new()
            .name("redis-results-reader".into())
            .spawn(move || {
                let mut r = ReaderLoop {
                    reader,
                    limits,
                    backfill: Some(backfill),
                    stats,
                    tx,
                    batch: Vec::with_capacity(READ_BATCH),
                    stop: flag,
                    nudged: nudge_flag,
                };
                r.run();
            })
            .map_err(|e| Error::Config(format!("cannot start the results reader thread: {e}")))?;
        Ok(EventReader {
            stop,
            nudged,
            thread: Some(thread),
        })
    }
}

/// Events handed over per channel message, at most.
const READ_BATCH: usize = 256;
/// Longest idle sleep of the reader thread: bounds how late it sees a new event.
const MAX_IDLE: Duration = Duration::from_millis(1);

struct ReaderLoop {
    reader: quantum_ipc::broadcast::Reader,
    limits: Limits,
    /// Taken out while a gap is being filled (the loop is the sink).
    backfill: Option<Box<dyn Backfill>>,
    stats: Arc<Stats>,
    tx: mpsc::Sender<Vec<Ev>>,
    batch: Vec<Ev>,
    stop: Arc<AtomicBool>,
    nudged: Arc<AtomicBool>,
}

impl ReaderLoop {
    fn stopped(&self) -> bool {
        // Relaxed: a flag polled here; the joiner's join() orders the rest.
        self.stop.load(Ordering::Relaxed)
    }

    fn decode(&self, seq: u64, record: &Record) -> Ev {
        match Message::decode(record, &self.limits)
            .map_err(|e| e.to_string())
            .and_then(|m| Event::from_message(&m))
        {
            Ok(e) => Ev::Event(seq, e),
            Err(why) => Ev::Invalid(seq, why),
        }
    }

    /// Sends the batch, waiting while the channel is full (the bridge is behind: the ring may
    /// lap this reader meanwhile, which backfill covers); false when the bridge stopped.
    fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let mut batch = std::mem::replace(&mut self.batch, Vec::with_capacity(READ_BATCH));
        loop {
            match self.tx.try_send(batch) {
                Ok(()) => return true,
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
                Err(mpsc::error::TrySendError::Full(b)) => {
                    if self.stopped() {
                        return false;
                    }
                    batch = b;
                    self.reader.heartbeat();
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }

    fn run(&mut self) {
        let mut idle = Duration::from_micros(10);
        let mut last_check = Instant::now();
        while !self.stopped() {
            match self.reader.read() {
                Next::Record { seq, record } => {
                    idle = Duration::from_micros(10);
                    let ev = self.decode(seq, &record);
                    self.batch.push(ev);
                    if self.batch.len() >= READ_BATCH && !self.flush() {
                        return;
                    }
                }
                Next::Missed { from_seq, to_seq } => {
                    if !self.flush() || !self.backfill_range(from_seq, to_seq) {
                        return;
                    }
                }
                Next::Empty => {
                    if !self.flush() {
                        return;
                    }
                    self.reader.heartbeat();
                    if last_check.elapsed() >= Duration::from_millis(100) {
                        last_check = Instant::now();
                        if matches!(
                            self.reader.writer_status(u64::MAX),
                            PeerStatus::Dead { .. } | PeerStatus::Detached { .. }
                        ) && matches!(self.reader.read(), Next::Empty)
                        {
                            self.batch.push(Ev::WriterGone);
                            self.flush();
                            return;
                        }
                    }
                    // Asleep on the ring's doorbell: the daemon's next publish wakes it.
                    self.reader.wait(idle);
                    idle = if self.nudged.swap(false, Ordering::Relaxed) {
                        Duration::from_micros(10)
                    } else {
                        (idle * 2).min(MAX_IDLE)
                    };
                }
            }
        }
    }

    /// Events `from_seq .. to_seq` the ring no longer holds, from the backfill source, chunk
    /// by chunk, retried until read; false when the bridge stopped first.
    fn backfill_range(&mut self, from_seq: u64, to_seq: u64) -> bool {
        let Some(mut source) = self.backfill.take() else {
            return false;
        };
        let done = backfill::fill(source.as_mut(), from_seq, to_seq, backfill::CHUNK, self);
        self.backfill = Some(source);
        done
    }
}

impl backfill::Sink for ReaderLoop {
    fn chunk(&mut self, from_seq: u64, to_seq: u64, records: Vec<(u64, Record)>) -> bool {
        let got = records.len() as u64;
        Stats::add(&self.stats.backfilled_events, got);
        let lost = (to_seq - from_seq).saturating_sub(got);
        if lost > 0 {
            Stats::add(&self.stats.missed_events, lost);
            tracing::error!(
                from_seq,
                to_seq,
                missed = lost,
                "events lost to this bridge: the daemon's journal no longer keeps them"
            );
        }
        for (seq, record) in records {
            let ev = self.decode(seq, &record);
            self.batch.push(ev);
            if self.batch.len() >= READ_BATCH && !self.flush() {
                return false;
            }
        }
        self.flush()
    }

    fn waiting(&mut self) -> bool {
        self.reader.heartbeat();
        !self.stopped() && !self.tx.is_closed()
    }

    fn failed(&mut self, from_seq: u64, to_seq: u64, attempt: u32, wait: Duration, error: &Error) {
        Stats::inc(&self.stats.backfill_retries);
        if attempt <= 5 || attempt % 100 == 0 {
            tracing::error!(
                from_seq,
                to_seq,
                attempt,
                retry_in_ms = wait.as_millis() as u64,
                "backfill read failed; retrying (the events are not skipped): {error}"
            );
        }
    }
}

/// The reader thread; stopped and joined on drop.
#[derive(Debug)]
pub struct EventReader {
    stop: Arc<AtomicBool>,
    nudged: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EventReader {
    /// Events are coming (a plan was just pushed): the thread starts its back-off over (its
    /// sleep on the ring's doorbell ends anyway at the daemon's next publish).
    pub fn nudge(&self) {
        // Relaxed: a hint; `unpark` orders the wake-up.
        self.nudged.store(true, Ordering::Relaxed);
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
    }
}

impl Drop for EventReader {
    fn drop(&mut self) {
        // Relaxed: see `ReaderLoop::run`.
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
