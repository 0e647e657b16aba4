//! Ingress: the rings into the core (`plans`, `ctl`, `exchange`), read ahead, decoded into
//! engine inputs, and **released** (the ring's `head` moves) only once the engine has handled
//! them and their events are journaled ([`Runner::inputs_done`]). A daemon killed in between
//! leaves them in the ring, and the next one reads them again (the engine's dedupe and
//! cumulative reports make a second reading harmless).
//!
//! The ingress rings outlive the daemon: a new daemon takes over what its predecessor left,
//! but only if they belong to the same journal (each ring carries its journal's identity).

use std::collections::VecDeque;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use quantum_core::event::{Event, RefusedEvent};
use quantum_core::{Input, PlanId, Runner, SymbolId};
use quantum_ipc::codes::RefuseReason;
use quantum_ipc::contract::{self, RingDef};
use quantum_ipc::liveness::unix_ms;
use quantum_ipc::wire::{Limits, Message, Record, RECORD_SIZE};
use quantum_ipc::{Consumer, CursorFault, Error as IpcError, PeerStatus, Ring, RingSpec};

use crate::egress::Egress;
use crate::journal::Identity;
use crate::latency::probe::Live;
use crate::stats::Counters;

/// Records taken from one ingress ring before looking at the others and at egress.
pub(crate) const BATCH: usize = 256;
/// Invalid records logged one by one; after that one in every `INVALID_LOG_EVERY`.
pub(crate) const INVALID_LOG_FIRST: u64 = 20;
pub(crate) const INVALID_LOG_EVERY: u64 = 10_000;

/// An input waiting for room in the engine's queue: `(ring index, input, (ingress slot,
/// position after its record))`.
pub(crate) type Held = (u8, Input, Option<(usize, u64)>);

/// Where the journal the rings must belong to is.
pub(crate) struct JournalAt<'a> {
    /// Its directory.
    pub dir: &'a Path,
    /// What chose that directory (`--journal-dir`, `$STATE_DIRECTORY`, ...), for the refusal.
    pub source: &'a str,
    /// Its identity; `None` while there is no journal yet.
    pub identity: Option<&'a Identity>,
}

/// One ingress ring and what of it is read but not yet released.
struct IngressRing {
    def: &'static RingDef,
    /// Keeps the segment handle for depth and stats.
    _ring: Ring,
    consumer: Consumer<RECORD_SIZE>,
    /// Invalid records seen on this ring (for the log's rate limit).
    invalid_seen: u64,
    /// Records read and not yet released, oldest first: `(inputs, position)`: once the engine
    /// has handled `inputs` inputs (and their events are journaled), the ring may be released
    /// up to `position`.
    unacked: VecDeque<(u64, u64)>,
}

/// The consumer side of every ingress ring, and the inputs on their way into the engine.
pub(crate) struct Ingress {
    rings: Vec<IngressRing>,
    /// Bounds of a valid record (symbols of this configuration).
    limits: Limits,
    /// Symbols configured: an invalid record's symbol is named only when it is one of them.
    n_symbols: usize,
    /// The governor's permit TTL, for legacy permits read from a ring.
    gov_ttl_ms: u64,
    /// An input the engine's queue refused, with the ingress ring and position it came from.
    held: Option<Held>,
    /// Inputs handed to the engine so far.
    sent: u64,
    /// After a restart with orders in flight: once the `exchange` ring has been read up to this
    /// position (what the bridge reported while the daemon was down), the restored orders are
    /// offered again, look-up first.
    reoffer_after: Option<u64>,
}

impl Ingress {
    /// Takes over (or creates) every ingress ring of `instance`, refuses rings of another
    /// journal, and stamps them with the identity of the journal in `dir` (chosen by
    /// `source`). `in_flight`: the journal holds orders in flight, to be offered again once
    /// the bridge's reports are read.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        instance: &str,
        cap: usize,
        dir: &Path,
        source: &str,
        identity: &Identity,
        in_flight: bool,
        n_symbols: usize,
        gov_ttl_ms: u64,
    ) -> Result<Ingress> {
        // Absolute, so that the refusal of another daemon names a directory it can use.
        let dir_text = std::fs::canonicalize(dir)
            .unwrap_or_else(|_| dir.to_path_buf())
            .display()
            .to_string();
        let mut rings = Vec::new();
        for def in contract::INGRESS {
            let ring = take_over(instance, def, cap)?;
            // Checked before recovery; again here, for a ring that appeared meanwhile.
            let ours = JournalAt {
                dir,
                source,
                identity: Some(identity),
            };
            check_stamp(instance, &ring, &ours)?;
            ring.stamp_journal(identity.id, &dir_text);
            let consumer = ring.consumer()?;
            rings.push(IngressRing {
                def,
                _ring: ring,
                consumer,
                invalid_seen: 0,
                unacked: VecDeque::new(),
            });
        }
        let reoffer_after = in_flight.then(|| {
            let ex = rings
                .iter()
                .find(|r| r.def.name == contract::EXCHANGE.name)
                .map(|r| r.consumer.position() + r.consumer.len() as u64);
            ex.unwrap_or(0)
        });
        Ok(Ingress {
            rings,
            limits: Limits::new(n_symbols as u16),
            n_symbols,
            gov_ttl_ms,
            held: None,
            sent: 0,
            reoffer_after,
        })
    }

    /// An input waits for room in the engine's queue.
    pub fn is_holding(&self) -> bool {
        self.held.is_some()
    }

    /// The doorbells of the rings [`Ingress::pump`] reads (without `plans`, not the `plans`
    /// ring), for the I/O thread to sleep on until a producer pushes.
    pub fn bells(&self, plans: bool) -> Vec<quantum_ipc::doorbell::Bell<'_>> {
        self.read_rings(plans).map(|r| r.consumer.bell()).collect()
    }

    /// A record waits in one of the rings [`Ingress::pump`] reads.
    pub fn ready(&self, plans: bool) -> bool {
        self.read_rings(plans).any(|r| r.consumer.ready())
    }

    fn read_rings(&self, plans: bool) -> impl Iterator<Item = &IngressRing> {
        self.rings
            .iter()
            .filter(move |r| plans || r.def.name != contract::PLANS.name)
    }

    /// Takes the waiting input, if any.
    pub fn take_held(&mut self) -> Option<Held> {
        self.held.take()
    }

    /// Keeps `held` to hand to the engine later (at most one waits).
    pub fn hold(&mut self, held: Held) {
        debug_assert!(self.held.is_none(), "one input waits at a time");
        self.held = Some(held);
    }

    /// Hands `input` to the engine; gives it back when the engine's queue is full. A record
    /// from an ingress ring (`from`: slot and position after it) is released once handled.
    pub fn send(&mut self, runner: &Runner, held: Held) -> Result<(), Held> {
        let (ring, input, from) = held;
        match runner.try_send(input, ring) {
            Ok(()) => {
                self.sent += 1;
                if let Some((i, pos)) = from {
                    self.rings[i].unacked.push_back((self.sent, pos));
                }
                Ok(())
            }
            Err(input) => Err((ring, input, from)),
        }
    }

    /// Moves ingress records into the engine; false when there was nothing to do. A record
    /// that cannot be read is answered (`invalid_record`) through `egress`. Without `plans`
    /// (failover: this host does not lead) the `plans` ring is not read and a plan on another
    /// ring is refused `standby`.
    pub fn pump(
        &mut self,
        runner: &Runner,
        counters: &Counters,
        live: &mut Live,
        egress: &mut Egress,
        plans: bool,
    ) -> Result<bool> {
        if egress.is_stalled() {
            // Nothing new is taken while an event cannot be journaled: what producers write
            // waits in the rings.
            return Ok(false);
        }
        let mut worked = false;
        if let Some(held) = self.held.take() {
            if let Err(back) = self.send(runner, held) {
                self.held = Some(back);
                return Ok(true);
            }
            worked = true;
        }
        if let Some(at) = self.reoffer_after {
            let read = self
                .rings
                .iter()
                .find(|r| r.def.name == contract::EXCHANGE.name)
                .map_or(u64::MAX, |r| r.consumer.position());
            if read >= at {
                self.reoffer_after = None;
                tracing::info!("the bridge's reports from while the daemon was down are read: offering the orders still in flight again, to look up first");
                if let Err(back) = self.send(runner, (contract::ORDERS.index, Input::Reoffer, None))
                {
                    self.held = Some(back);
                    return Ok(true);
                }
                worked = true;
            }
        }
        let now_ms = unix_ms();
        for i in 0..self.rings.len() {
            if !plans && self.rings[i].def.name == contract::PLANS.name {
                continue;
            }
            for _ in 0..BATCH {
                let Some(rec) = self.rings[i].consumer.try_pop_held() else {
                    break;
                };
                worked = true;
                let pos = self.rings[i].consumer.position();
                counters.inc(counters.ingress[i].records_in);
                let popped_ns = live.now_ns();
                let input = match self.decode(i, &rec, now_ms, counters) {
                    Ok(input) => input,
                    Err(refused) => {
                        // The producer's answer: journaled and published before the record
                        // is released (nothing to wait for but the inputs before it).
                        egress.emit(Event::Refused(refused), counters, live)?;
                        let sent = self.sent;
                        self.rings[i].unacked.push_back((sent, pos));
                        continue;
                    }
                };
                if let Input::Plan(p) = &input {
                    if !plans {
                        let refused = RefusedEvent {
                            ring: self.rings[i].def.index,
                            kind: rec[0],
                            symbol: p.symbol,
                            plan: p.id,
                            reason: RefuseReason::Standby,
                            at_ms: now_ms,
                        };
                        egress.emit(Event::Refused(refused), counters, live)?;
                        let sent = self.sent;
                        self.rings[i].unacked.push_back((sent, pos));
                        continue;
                    }
                    live.popped(p.id.0, popped_ns);
                }
                let ring = self.rings[i].def.index;
                if let Err(back) = self.send(runner, (ring, input, Some((i, pos)))) {
                    counters.inc(counters.engine_input_full);
                    self.held = Some(back);
                    return Ok(true);
                }
            }
        }
        Ok(worked)
    }

    /// Validates and converts one ingress record; a refused one is logged and reported to
    /// the ring, and its `InputRefused` event (`invalid_record`) is returned for the caller to
    /// emit (which counts it), so that its producer learns of the refusal as of any other.
    fn decode(
        &mut self,
        i: usize,
        rec: &Record,
        now_ms: u64,
        c: &Counters,
    ) -> Result<Input, RefusedEvent> {
        let def = self.rings[i].def;
        let meaning = Message::decode(rec, &self.limits)
            .map_err(|e| e.to_string())
            .and_then(|m| {
                if def.carries(m.kind()) {
                    quantum_core::wire::input(&m, now_ms, self.gov_ttl_ms)
                } else {
                    Err(format!(
                        "ring {} does not carry {:?} records",
                        def.name,
                        m.kind()
                    ))
                }
            });
        match meaning {
            Ok(input) => {
                c.inc(match input {
                    Input::Plan(_) => c.plans_in,
                    Input::Command(_) => c.commands_in,
                    Input::Permit(_) => c.permits_in,
                    Input::Order(_) | Input::Reoffer | Input::History(_) | Input::Lead { .. } => {
                        c.order_reports_in
                    }
                });
                Ok(input)
            }
            Err(why) => {
                let r = &mut self.rings[i];
                r.consumer.report_invalid();
                r.invalid_seen += 1;
                let n = r.invalid_seen;
                if n <= INVALID_LOG_FIRST || n % INVALID_LOG_EVERY == 0 {
                    tracing::warn!(ring = def.name, count = n, "invalid record skipped: {why}");
                }
                // Every record kind has its symbol at bytes 2..4: named when it is one of
                // ours, so that a producer can tell which of its records this was.
                let raw = u16::from_le_bytes([rec[2], rec[3]]);
                let symbol = if usize::from(raw) < self.n_symbols {
                    SymbolId(raw)
                } else {
                    SymbolId(0)
                };
                Err(RefusedEvent {
                    ring: def.index,
                    kind: rec[0],
                    symbol,
                    plan: PlanId(0),
                    reason: RefuseReason::InvalidRecord,
                    at_ms: now_ms,
                })
            }
        }
    }

    /// Releases every ingress record whose input is among the first `done` handled.
    pub fn release(&mut self, done: u64) {
        for r in &mut self.rings {
            let mut upto = None;
            while let Some(&(need, pos)) = r.unacked.front() {
                if need > done {
                    break;
                }
                upto = Some(pos);
                r.unacked.pop_front();
            }
            if let Some(pos) = upto {
                r.consumer.commit_to(pos);
            }
        }
    }

    /// Tells every producer this consumer is alive.
    pub fn heartbeat(&self) {
        for r in &self.rings {
            r.consumer.heartbeat();
        }
    }

    /// Cursor faults found on the rings since the last look.
    pub fn faults(&mut self) -> impl Iterator<Item = CursorFault> + '_ {
        self.rings.iter_mut().filter_map(|r| r.consumer.check())
    }

    /// Each ring's producer as seen now (`timeout`: longest heartbeat gap of a live one).
    pub fn producers(
        &self,
        timeout: u64,
    ) -> impl Iterator<Item = (&'static RingDef, PeerStatus)> + '_ {
        self.rings
            .iter()
            .map(move |r| (r.def, r.consumer.peer_status(timeout)))
    }
}

/// Takes over the ingress ring `def` of `instance` if a predecessor left it (with whatever it
/// holds), else creates it; either way it outlives this process.
fn take_over(instance: &str, def: &RingDef, cap: usize) -> Result<Ring> {
    let spec = RingSpec::new(instance, def.name, cap);
    match Ring::open(&spec) {
        Ok(ring) => {
            tracing::info!(
                ring = def.name,
                waiting = ring.len(),
                "took over the ingress ring a previous daemon left; its records are read now"
            );
            Ok(ring)
        }
        Err(IpcError::NotFound { .. }) => Ring::create_kept(&spec)
            .with_context(|| format!("cannot create ring {}", def.name)),
        Err(IpcError::Mismatch {
            what: "capacity",
            found,
            ..
        }) => {
            let old = Ring::open(&RingSpec::new(instance, def.name, 0))?;
            if !old.is_empty() {
                bail!(
                    "ring {} holds {} record(s) at capacity {found}, but rings.capacity is {cap}: start once with the old capacity so they are taken, then change it",
                    def.name,
                    old.len()
                );
            }
            drop(old);
            quantum_ipc::shm::remove_segment(&spec.os_id()?)?;
            Ring::create_kept(&spec).with_context(|| format!("cannot create ring {}", def.name))
        }
        Err(e) => Err(anyhow!(
            "cannot take over ring {}: {e}. If its records do not matter, remove it with `rm /dev/shm/{}`",
            def.name,
            spec.os_id().unwrap_or_default()
        )),
    }
}

/// Refuses to go on when an ingress ring of `instance` left by a predecessor belongs to
/// another journal than `journal`.
pub(crate) fn check_rings_journal(instance: &str, journal: &JournalAt<'_>) -> Result<()> {
    for def in contract::INGRESS {
        // A ring that cannot be opened is judged (and reported) when it is taken over.
        if let Ok(ring) = Ring::open(&RingSpec::new(instance, def.name, 0)) {
            check_stamp(instance, &ring, journal)?;
        }
    }
    Ok(())
}

/// One ring of [`check_rings_journal`].
fn check_stamp(instance: &str, ring: &Ring, journal: &JournalAt<'_>) -> Result<()> {
    let Some((id, their_dir)) = ring.journal_stamp() else {
        return Ok(());
    };
    if journal.identity.is_some_and(|i| i.id == id) {
        return Ok(());
    }
    let dir = journal.dir;
    let opened = match journal.identity {
        Some(i) => format!("the journal {i} in {}", dir.display()),
        None => format!("{}, where there is no journal yet", dir.display()),
    };
    let rings: Vec<String> = contract::INGRESS
        .iter()
        .filter_map(|d| RingSpec::new(instance, d.name, 0).os_id().ok())
        .map(|id| quantum_ipc::shm::path_of(&id))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    bail!(
        "ring {} ({} record(s) waiting) belongs to the journal {id:016x} in {their_dir}, but this daemon would use {opened} ({}): start it with --journal-dir {their_dir} (or set journal.dir); only if that journal is lost for good, stop the instance's bridges and remove its ingress rings (rm {}; their waiting records are lost) before starting it on another journal",
        ring.os_id(),
        ring.len(),
        journal.source,
        rings.join(" ")
    )
}
