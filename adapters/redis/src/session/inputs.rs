//! What comes from Redis: plan entries (pushed, dead-lettered, or acknowledged when the core
//! answered them before), keyspace notes, ledger syncs and legacy permits.

use std::collections::BTreeSet;
use std::time::Instant;

use quantum_core::wire::{input_out, plan_out};
use quantum_core::{Command, Input, PlanId, PositionSide, SymbolId};
use quantum_ipc::liveness::unix_ms;
use quantum_ipc::wire::Message;

use super::{noisy, Session};
use crate::inflight::Pushed;
use crate::ledger::{Ledger, Sync};
use crate::legacy::{self, PermitKind};
use crate::legs::Stamp;
use crate::notify::Note;
use crate::permits_in::{self, Take};
use crate::plan_entry;
use crate::stats::Stats;
use crate::stream::{self, Read};

/// Notes taken in one round at most (the loop's other inputs get their turn).
const NOTES_PER_ROUND: usize = 4096;

impl Session<'_> {
    pub(super) fn ack(&mut self, id: String) {
        self.intake.inflight.acked(&id);
        self.writes.batch.ack(id);
    }

    pub(super) async fn on_read(&mut self, r: Read) {
        match r {
            Read::Entries(entries) => {
                let answered = self.answered_already(&entries).await;
                for e in entries {
                    if answered.contains(&e.id) {
                        // Failover: the plan has its result entry, written by this host or the
                        // other: this delivery is a repeat. The core is not asked again (the
                        // other host's core may have decided it; this one would decide anew).
                        Stats::inc(&self.stats.plans_answered_before);
                        self.ack(e.id);
                        continue;
                    }
                    self.on_entry(e);
                }
            }
            Read::Trimmed(ids) => {
                Stats::add(&self.stats.pending_trimmed, ids.len() as u64);
                tracing::warn!(entries = ids.len(), first = %ids[0], "pending plan entries were trimmed from the stream before the core saw them: those plans are lost");
            }
        }
    }

    /// Failover: the ids of `entries` whose plan already has its result entry (its shared
    /// answered marker exists), read in one round trip. Empty with failover off (the core's
    /// dedupe answers a repeat there) or when Redis cannot be asked (the core then decides,
    /// and a plan the exchange holds an order of is still never ordered again).
    async fn answered_already(&mut self, entries: &[stream::Entry]) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        if self.lease.is_none() {
            return found;
        }
        let plans: Vec<(&str, PlanId)> = entries
            .iter()
            .filter_map(|e| {
                let fields = e.fields.as_ref()?;
                let read = plan_entry::read_plan(&e.id, fields, &self.link.symbols).ok()?;
                Some((e.id.as_str(), read.plan.id))
            })
            .collect();
        if plans.is_empty() {
            return found;
        }
        let Ok(mut c) = self.redis.conn().await else {
            return found;
        };
        let mut pipe = redis::pipe();
        for (_, plan) in &plans {
            pipe.cmd("EXISTS")
                .arg(crate::state::answered_key(&self.names.shared, *plan));
        }
        match pipe.query_async::<Vec<i64>>(&mut c).await {
            Ok(exists) => {
                for ((id, _), n) in plans.iter().zip(exists) {
                    if n > 0 {
                        found.insert((*id).to_owned());
                    }
                }
            }
            Err(e) => self.redis.failed(&e.into()),
        }
        found
    }

    pub(super) fn on_entry(&mut self, e: stream::Entry) {
        if e.redelivered
            && (self.intake.inflight.was_acked(&e.id)
                || self.intake.inflight.contains_entry(&e.id)
                || self.awaiting.contains(&e.id))
        {
            return; // handled by this process already (claimed again while its XACK was written)
        }
        if self.lease.as_ref().is_some_and(|h| h.acting().is_none()) {
            // Read just as this host stopped acting: left pending (claimed again under the
            // next epoch this host leads, or by the leader).
            Stats::inc(&self.stats.plans_not_acting);
            return;
        }
        let Some(fields) = e.fields else {
            Stats::inc(&self.stats.pending_trimmed);
            tracing::warn!(entry = %e.id, "a pending plan entry was trimmed from the stream before the core saw it: that plan is lost");
            self.ack(e.id);
            return;
        };
        let (plan, timestamp_ms) = match plan_entry::read_plan(&e.id, &fields, &self.link.symbols) {
            Ok(read) => {
                if let Some(why) = read.warning {
                    Stats::inc(&self.stats.plan_fields_unreadable);
                    let n = self
                        .stats
                        .plan_fields_unreadable
                        .load(std::sync::atomic::Ordering::Relaxed);
                    if noisy(n) {
                        tracing::warn!(entry = %e.id, plan = %read.plan.id, count = n, "plan entry field set aside: {why}");
                    }
                }
                (read.plan, read.timestamp_ms)
            }
            Err(why) => {
                let n = self
                    .stats
                    .plans_dlq
                    .load(std::sync::atomic::Ordering::Relaxed)
                    + 1;
                if noisy(n) {
                    tracing::warn!(entry = %e.id, count = n, "plan entry moved to {}: {why}", crate::legacy::DLQ_STREAM);
                }
                self.intake.inflight.acked(&e.id);
                self.writes
                    .batch
                    .dead_letter(e.id.clone(), &plan_entry::dead_letter(&e.id, &fields, &why));
                return;
            }
        };
        // Failover: an entry is acknowledged only with its result; the core's answer to it
        // (a duplicate, whose result finds or writes the plan's entry) does that.
        if e.redelivered && self.lease.is_none() && self.intake.inflight.answered_before(plan.id) {
            Stats::inc(&self.stats.plans_answered_before);
            self.ack(e.id);
            return;
        }
        self.stamps.pushed(
            plan.id,
            Stamp {
                entry_ms: plan_entry::entry_time_ms(&e.id),
                plan_ms: timestamp_ms,
                read_at: e.read_at,
                permits_ns: None,
            },
        );
        self.intake
            .inflight
            .push(plan.id, Pushed::new(e.id, e.redelivered, e.read_at, e.slot));
        Stats::inc(&self.stats.plans_pushed);
        self.send(Message::Plan(plan_out(&plan)));
    }

    /// The core accepted `plan`: permits held for it, and those in Redis, go to the core.
    pub(super) async fn plan_accepted(&mut self, plan: PlanId, symbol: SymbolId) {
        let Some(p) = &mut self.permits else {
            return;
        };
        let now = Instant::now();
        let (out, missing, expired) = p.accepted(plan, symbol, now);
        Stats::add(&self.stats.permits_expired, expired);
        Stats::add(&self.stats.permits_forwarded, out.len() as u64);
        for m in out {
            self.send(m);
        }
        for kind in missing {
            self.fetch_permit(kind, plan).await;
        }
    }

    /// Reads the permit of `kind` for `plan` and hands it over or holds it.
    pub(super) async fn fetch_permit(&mut self, kind: PermitKind, plan: PlanId) {
        let Ok(mut c) = self.redis.conn().await else {
            return;
        };
        let now = Instant::now();
        let found = match permits_in::fetch(&mut c, kind, plan, now, unix_ms()).await {
            Ok(f) => f,
            Err(e) => {
                self.redis.failed(&e.into());
                return;
            }
        };
        let found = match found {
            None => return,
            Some(Ok(f)) => f,
            Some(Err(why)) => {
                Stats::inc(&self.stats.permits_invalid);
                tracing::warn!(key = %crate::legacy::permit_key_of(kind, plan), "legacy permit cannot be read: {why}");
                return;
            }
        };
        let Some(p) = &mut self.permits else {
            return;
        };
        match p.take(plan, found, now) {
            Take::Forward(m) => {
                Stats::inc(&self.stats.permits_forwarded);
                self.send(m);
            }
            Take::Held => Stats::inc(&self.stats.permits_held),
            Take::Expired => Stats::inc(&self.stats.permits_expired),
            Take::Full => {
                Stats::inc(&self.stats.permits_hold_full);
                tracing::warn!(plan = %plan, held = self.cfg.max_held_permits, "legacy permit dropped: the hold of permits waiting for their plan is full");
            }
            Take::Again => {}
        }
    }

    /// A note, and every other one already waiting: a burst of notifications for one
    /// position hash costs one read of it, and those of the bridge's own writes none.
    pub(super) async fn on_notes(&mut self, first: Note) {
        self.on_note(first).await;
        for _ in 0..NOTES_PER_ROUND {
            match self.notes.try_recv() {
                Ok(n) => self.on_note(n).await,
                Err(_) => break,
            }
        }
        if !self.watch.positions_dirty.is_empty() {
            let dirty = std::mem::take(&mut self.watch.positions_dirty);
            self.sync_ledger(Some(&dirty), false).await;
        }
    }

    pub(super) async fn on_note(&mut self, n: Note) {
        match n {
            Note::Subscribed { enabled } => {
                self.watch.subscribed(enabled);
                if self.progress.barrier {
                    self.sync_ledger(None, false).await;
                    self.poll_permits().await;
                }
            }
            Note::Lost => {
                self.watch.subscribed(false);
                tracing::info!(
                    "keyspace subscription lost; re-reading periodically until it is back"
                );
            }
            Note::Position(symbol) => {
                if self.watch.own_write(&symbol) {
                    Stats::inc(&self.stats.own_notes_skipped);
                    return;
                }
                if self.progress.barrier {
                    // The hash is the symbol's: each of its legs has a field there.
                    self.watch
                        .positions_dirty
                        .extend(self.link.symbols.legs(&symbol));
                }
            }
            Note::Permit(kind, plan) => {
                if self.permits.is_some() {
                    self.fetch_permit(kind, plan).await;
                }
            }
        }
    }

    /// Reads the ledger field of some legs (or all; [`crate::legacy::ledger_field`]) and hands
    /// operators' values to the core.
    pub(super) async fn sync_ledger(&mut self, only: Option<&BTreeSet<u16>>, fresh_core: bool) {
        if !self.mirrors() {
            return; // failover: the leader's core is the one that takes the ledger
        }
        let legs: Vec<(u16, String)> = self
            .link
            .symbols
            .iter()
            .into_iter()
            .filter(|(id, _)| only.is_none_or(|o| o.contains(id)))
            .map(|(id, n)| (id, n.to_owned()))
            .collect();
        let Ok(mut c) = self.redis.conn().await else {
            return;
        };
        let labels: Vec<&str> = legs.iter().map(|(_, n)| n.as_str()).collect();
        Stats::add(&self.stats.ledger_reads, labels.len() as u64);
        let seen = match Ledger::read(&mut c, &self.names.shared, &labels).await {
            Ok(s) => s,
            Err(e) => {
                self.redis.failed(&e.into());
                return;
            }
        };
        for ((id, label), seen) in legs.iter().zip(seen) {
            let (name, side) = PositionSide::split_label(label);
            let field = legacy::ledger_field(side);
            match self.ledger.decide(*id, side, &seen, fresh_core) {
                Sync::Nothing => {}
                Sync::Set { amount, negated } => {
                    Stats::inc(&self.stats.ledger_syncs);
                    if negated {
                        Stats::inc(&self.stats.ledger_short_negated);
                        tracing::warn!(symbol = %name, position_side = %side, field, ledger_amount = ?seen.current, amount = %amount, "a SHORT leg's ledger is never positive: the value is read as its negative");
                    }
                    tracing::info!(symbol = %name, position_side = %side, field, ledger_amount = %amount, fresh_core, "ledger sync from Redis handed to the core");
                    let m = input_out(&Input::Command(Command::SetLedger {
                        symbol: SymbolId(*id),
                        amount,
                    }))
                    .expect("a ledger set has a wire form");
                    self.send(m);
                }
                Sync::Invalid(text, why) => {
                    Stats::inc(&self.stats.ledger_invalid);
                    tracing::warn!(symbol = %name, position_side = %side, field, ledger_amount = %text, "{field} is not an amount ({why}); not handed to the core");
                }
            }
        }
    }

    /// Re-reads the missing permits of every waiting plan (notifications are off).
    pub(super) async fn poll_permits(&mut self) {
        let lacking = match &self.permits {
            Some(p) => p.lacking(),
            None => return,
        };
        for (plan, kind) in lacking {
            self.fetch_permit(kind, plan).await;
        }
    }
}
