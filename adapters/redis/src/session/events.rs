//! What each of the core's events does: answers acknowledge entries, permits, results and
//! positions are mirrored, refusals are reported, and the probe's answer opens the session.
//! Events an earlier process mirrored already (before `replay_until`) only rebuild what is
//! still open.

use std::time::Instant;

use quantum_core::event::{Event, RefusedEvent};
use quantum_core::wire::input_out;
use quantum_core::{
    Command, Input, Outcome, PlanId, PlanResult, PositionSide, Qty, Side, SymbolId,
};
use quantum_ipc::codes::RefuseReason;
use quantum_ipc::contract;
use quantum_ipc::liveness::unix_ms;
use quantum_ipc::wire::Kind;
use tokio::sync::mpsc;

use super::{answers_at_once, noisy, End, Session, PROBE_PREFIX};
use crate::config::PermitsFrom;
use crate::error::{Error, Result};
use crate::legacy;
use crate::results::Ready;
use crate::rings::Ev;
use crate::stats::Stats;
use crate::stream;

impl Session<'_> {
    pub(super) async fn on_events(&mut self, evs: Vec<Ev>) -> Result<Option<End>> {
        for ev in evs {
            match ev {
                Ev::Event(seq, e) => {
                    Stats::inc(&self.stats.events);
                    if seq < self.progress.resume.replay_until {
                        self.replay(seq, &e);
                        if let Event::LedgerWanted { symbol, epoch, .. } = e {
                            // The earlier process may have died before it answered; a second
                            // answer is refused by the core (`unwanted_base`), harmlessly.
                            self.answer_ledger_wanted(symbol, epoch).await?;
                        }
                    } else {
                        self.live(seq, e).await?;
                    }
                    self.progress.next_seq = seq + 1;
                }
                Ev::Invalid(seq, why) => {
                    Stats::inc(&self.stats.events_invalid);
                    self.counters.invalid_events += 1;
                    if noisy(self.counters.invalid_events) {
                        tracing::warn!(seq, "invalid event record skipped: {why}");
                    }
                    self.progress.next_seq = seq + 1;
                }
                Ev::WriterGone => {
                    tracing::warn!(
                        daemon_pid = self.link.daemon_pid,
                        "the core daemon has gone; waiting for a new one"
                    );
                    return Ok(Some(End::DaemonGone));
                }
            }
        }
        Ok(None)
    }

    /// An event mirrored before the restart: only what is still open is rebuilt.
    pub(super) fn replay(&mut self, seq: u64, e: &Event) {
        let now = Instant::now();
        match *e {
            Event::PlanResult(r) => {
                // Held again if it was held; a result written before is dropped here.
                let _ = self.writes.held.result(r, seq, now);
                if let Some(p) = &mut self.permits {
                    p.ended(r.plan);
                }
            }
            Event::PlanAccepted { plan, .. } => {
                if let Some(p) = &mut self.permits {
                    p.accepted_before(plan.id, plan.symbol);
                }
            }
            Event::OrderAccepted { .. }
            | Event::Fill(_)
            | Event::OrderDone(_)
            | Event::OrderUnknown { .. }
            | Event::OrderResolved { .. } => {
                // Its result was written when this event came the first time.
                let _ = self.writes.held.order_event(e);
            }
            _ => {}
        }
    }

    /// The exchange symbol of leg `s` (what logs and the legacy keys name).
    pub(super) fn name(&self, s: SymbolId) -> String {
        self.link.symbols.name(s.0).to_owned()
    }

    /// The label of leg `s` (the batch's writes take it: they write its symbol and side).
    pub(super) fn label(&self, s: SymbolId) -> String {
        self.link.symbols.label(s.0).to_owned()
    }

    /// The position side of leg `s` (`BOTH` for a one-way symbol).
    pub(super) fn side(&self, s: SymbolId) -> PositionSide {
        self.link.symbols.side(s.0)
    }

    /// Writes a plan's result entry. In failover mode only while this host leads, fenced,
    /// acknowledging the plan's entries in the same script; a standby's result is left to the
    /// leader (its entries stay pending).
    pub(super) fn write_result(&mut self, r: Ready) {
        let name = self.label(r.result.symbol);
        if self.lease.is_none() {
            self.writes.batch.result(&r.result, &name, r.order_id);
            return;
        }
        let acks = self.awaiting.take(r.result.plan);
        // A duplicate of a plan with an order is written as that order (`first_result`).
        let (result, order_id) = first_result(r.result, r.order_id);
        match self.fence() {
            Some(f) => {
                self.writes.batch.set_fence(Some(f));
                self.writes
                    .batch
                    .result_acking(&result, &name, order_id, &acks);
            }
            None => Stats::inc(&self.stats.results_not_leading),
        }
    }

    /// A ledger value of the core into its position hash (fenced in failover mode); nothing
    /// when this host does not lead.
    fn write_ledger(&mut self, symbol: SymbolId, amount: quantum_core::Qty, at_ms: u64) {
        if !self.mirrors() {
            return;
        }
        let name = self.label(symbol);
        let fence = self.fence();
        self.writes.batch.set_fence(fence);
        self.writes
            .batch
            .ledger(&self.names.shared, &name, amount, at_ms);
    }

    /// Failover: books a fill of `plan` into the shared ledger by its increase (any role: a
    /// fill is a fact, and the script books each (plan, cumulative quantity) once).
    fn book_fill(&mut self, symbol: SymbolId, plan: PlanId, side: Side, cum_qty: Qty, at_ms: u64) {
        let name = self.label(symbol);
        self.writes
            .batch
            .book_fill(&name, plan, side, cum_qty, at_ms);
    }

    /// Failover: the core asks for leg `symbol`'s ledger after its lead under `epoch`. When
    /// this host leads under that epoch, every write before the question is put in Redis, then
    /// the shared ledger's value of that leg (its field of the position hash,
    /// [`legacy::ledger_field`]; absent: 0; a positive `SHORT` value read as its negative) is
    /// handed to the core as a `LedgerBase`. A
    /// standby (or a host that lost that lead) does not answer: the core stays waiting. Nor
    /// does a bridge asked to stop meanwhile (the next one reads the question again).
    pub(super) async fn answer_ledger_wanted(
        &mut self,
        symbol: SymbolId,
        epoch: u64,
    ) -> Result<()> {
        if self.leading() != Some(epoch) {
            tracing::info!(symbol = %self.name(symbol), position_side = %self.side(symbol), epoch, leading = ?self.leading(), "the core asks for a ledger base of a lead this host does not hold; not answered");
            return Ok(());
        }
        if !self.writes.batch.is_empty() && !self.flush().await? {
            return Ok(());
        }
        let name = self.name(symbol);
        let side = self.side(symbol);
        let field = legacy::ledger_field(side);
        let text = loop {
            if self.stopping() {
                return Ok(());
            }
            if let Ok(mut c) = self.redis.conn().await {
                let r: redis::RedisResult<Option<String>> = redis::cmd("HGET")
                    .arg(legacy::position_key(&name))
                    .arg(field)
                    .query_async(&mut c)
                    .await;
                match r {
                    Ok(t) => {
                        self.redis.ok();
                        break t;
                    }
                    Err(e) => self.redis.failed(&e.into()),
                }
            }
            self.link.heartbeat();
            self.redis.backoff().await;
        };
        let amount = match text.as_deref().map(|t| legacy::read_ledger_amount(side, t)) {
            None => Qty::ZERO,
            Some(Ok((q, negated))) => {
                if negated {
                    Stats::inc(&self.stats.ledger_short_negated);
                    tracing::warn!(symbol = %name, position_side = %side, field, ledger_amount = ?text, amount = %q, "a SHORT leg's ledger is never positive: the value is read as its negative");
                }
                q
            }
            Some(Err(e)) => {
                Stats::inc(&self.stats.ledger_invalid);
                tracing::warn!(symbol = %name, position_side = %side, field, ledger_amount = ?text, epoch, "{field} is not an amount ({e}): no ledger base for the core, which waits for an operator's sync (HSET {} {field} <amount>)", legacy::position_key(&name));
                return Ok(());
            }
        };
        Stats::inc(&self.stats.ledger_bases);
        tracing::info!(symbol = %name, position_side = %side, amount = %amount, epoch, "ledger base");
        self.bases.insert(symbol.0, amount);
        let m = input_out(&Input::Command(Command::LedgerBase {
            symbol,
            amount,
            epoch,
        }))
        .expect("a ledger base has a wire form");
        self.send(m);
        Ok(())
    }

    /// The core answered plan `plan`: acknowledge the entry (in failover mode: with its
    /// result), or remember an orphan.
    pub(super) fn answered(&mut self, plan: PlanId) {
        if let Some(p) = self.intake.inflight.answer(plan) {
            let us = p.read_at.elapsed().as_micros() as u64;
            self.counters.answer_us.saturating_record(us.max(1));
            if self.lease.is_some() {
                self.awaiting.add(plan, p.entry);
            } else {
                self.ack(p.entry);
            }
        }
    }

    pub(super) async fn live(&mut self, seq: u64, e: Event) -> Result<()> {
        let now = Instant::now();
        let now_ms = unix_ms();
        match e {
            Event::PlanAccepted { plan, .. } => {
                self.answered(plan.id);
                if self.permits.is_some() {
                    self.plan_accepted(plan.id, plan.symbol).await;
                }
            }
            Event::GovPermit(g) if self.permits.is_none() && self.mirrors() => {
                let name = self.label(g.symbol);
                if !self.writes.batch.gov_permit(&g, &name, now_ms) {
                    Stats::inc(&self.stats.permits_expired_unmirrored);
                }
            }
            Event::P33Permit(p) if self.permits.is_none() && self.mirrors() => {
                let name = self.label(p.symbol);
                if !self.writes.batch.p33_permit(&p, &name, now_ms) {
                    Stats::inc(&self.stats.permits_expired_unmirrored);
                }
            }
            Event::OrderIntent(i)
                if !i.lookup_first && self.permits.is_some() && self.mirrors() =>
            {
                self.writes.batch.consume_permits(i.plan);
            }
            Event::PlanResult(r) => {
                if answers_at_once(&r) {
                    self.answered(r.plan);
                }
                if r.outcome.is_duplicate() && self.writes.held.holds(r.plan) {
                    // The plan's own result is held for its order id: that one is its entry.
                    Stats::inc(&self.stats.results_repeated);
                    return Ok(());
                }
                if let Some(p) = &mut self.permits {
                    p.ended(r.plan);
                }
                if let Some(ready) = self.writes.held.result(r, seq, now) {
                    self.write_result(ready);
                }
            }
            Event::OrderAccepted { .. }
            | Event::OrderDone(_)
            | Event::OrderUnknown { .. }
            | Event::OrderResolved { .. } => {
                if let Some(ready) = self.writes.held.order_event(&e) {
                    self.write_result(ready);
                }
            }
            Event::Fill(f) => {
                if let Some(ready) = self.writes.held.order_event(&e) {
                    self.write_result(ready);
                }
                self.ledger.filled(f.symbol.0);
                if self.lease.is_some() {
                    self.book_fill(f.symbol, f.plan, f.side, f.cum_qty, f.time_ms);
                } else {
                    self.write_ledger(f.symbol, f.ledger_after, f.time_ms);
                }
            }
            Event::OrderRecovered { report: r, .. }
                if self.lease.is_some() && r.cum_qty > Qty::ZERO =>
            {
                // An order of ours the other host placed: its fills may not be booked yet.
                self.book_fill(r.symbol, r.plan, r.side, r.cum_qty, r.time_ms);
            }
            Event::LedgerWanted { symbol, epoch, .. } => {
                self.answer_ledger_wanted(symbol, epoch).await?;
            }
            Event::LedgerSet {
                symbol,
                amount,
                at_ms,
            } => {
                let operators = self.ledger.applied(symbol.0, amount);
                let base = self.bases.remove(&symbol.0) == Some(amount);
                // Failover: the shared ledger moves by booked fills, and a whole value is
                // written back only when the core took an operator's value this session
                // handed it (the script then records it as the core's). A base came from
                // Redis; any other set (a `ctl inject` sync, or an event of an older lead read
                // late by a resumed session) could undo fills another host booked since.
                let write = if self.lease.is_some() {
                    operators && !base
                } else {
                    true
                };
                if write {
                    self.write_ledger(symbol, amount, at_ms);
                }
            }
            Event::Position {
                symbol,
                amount,
                mark,
                time_ms,
            } => {
                if let Some(p) = &mut self.permits {
                    p.position(symbol, amount);
                }
                if self.mirrors() {
                    let name = self.label(symbol);
                    self.writes.batch.exchange(&name, amount, mark, time_ms);
                }
            }
            Event::Refused(r) if r.ring == contract::PLANS.index => self.refused(r)?,
            _ => {}
        }
        Ok(())
    }

    /// The core refused a record of ours.
    pub(super) fn refused(&mut self, r: RefusedEvent) -> Result<()> {
        if r.plan.0 == self.progress.probe && r.kind == Kind::GovPermit.tag() {
            return self.barrier_reached(r.reason);
        }
        if r.plan.0 & !0xffff_ffff == PROBE_PREFIX {
            return Ok(()); // an earlier session's probe
        }
        self.counters.refusals += 1;
        let n = self.counters.refusals;
        if r.kind == Kind::LedgerBase.tag() {
            // Answered already (by an earlier process of this bridge), or of a lead the core
            // left meanwhile: the core asks again when it needs one.
            self.bases.remove(&r.symbol.0);
            tracing::info!(symbol = %self.name(r.symbol), position_side = %self.side(r.symbol), reason = %r.reason, "the core did not take a ledger base");
        } else if r.kind == Kind::LedgerSet.tag() {
            Stats::inc(&self.stats.ledger_refused);
            let text = self.ledger.refused(r.symbol.0);
            tracing::warn!(symbol = %self.name(r.symbol), position_side = %self.side(r.symbol), amount = ?text, reason = %r.reason, "the core refused a ledger sync");
        } else if r.kind == Kind::GovPermit.tag() || r.kind == Kind::P33Permit.tag() {
            Stats::inc(&self.stats.permits_refused);
            if noisy(n) {
                tracing::warn!(plan = %r.plan, reason = %r.reason, count = n, "the core refused a legacy permit");
            }
        } else if noisy(n) {
            tracing::warn!(plan = %r.plan, kind = r.kind, reason = %r.reason, count = n, "the core refused a record of the bridge");
        }
        Ok(())
    }

    /// The probe's answer: every push of an earlier process has its answer now.
    pub(super) fn barrier_reached(&mut self, reason: RefuseReason) -> Result<()> {
        match (self.cfg.permits_from, reason) {
            (PermitsFrom::Redis, RefuseReason::PermitSource) => {
                return Err(Error::PermitSource(format!(
                    "--permits-from redis: the daemon of instance {} issues its own permits (engine.permits = \"core\") and refuses outside ones; start `quantum run` with engine.permits = \"external\" (QUANTUM_ENGINE_PERMITS=external), or run the bridge without --permits-from redis",
                    self.cfg.instance
                )));
            }
            (PermitsFrom::Core, RefuseReason::NotWaiting) => tracing::warn!(
                "the daemon waits for outside permits (engine.permits = \"external\") but this bridge does not read them: start it with --permits-from redis, or every EXECUTE plan is blocked missing_gov unless permits come another way"
            ),
            _ => {}
        }
        self.progress.barrier = true;
        self.watch.initial_sync_due = true;
        let (tx, rx) = mpsc::channel(16);
        self.intake.entries = Some(rx);
        self.tasks.spawn(
            stream::Reader::new(self.cfg, &self.names.consumer, self.lease.clone()).run(
                self.redis.target().clone(),
                self.intake.slots.clone(),
                tx,
                self.stats.clone(),
            ),
        );
        tracing::info!(
            instance = %self.cfg.instance,
            daemon_pid = self.link.daemon_pid,
            symbols = %self.link.symbols.list(),
            permits_from = ?self.cfg.permits_from,
            group = %self.cfg.group,
            consumer = %self.names.consumer,
            failover = self.lease.is_some(),
            "redis bridge attached"
        );
        Ok(())
    }
}

/// The result entry to write for `result` (failover): a `duplicate` of a plan with an order
/// the core knows (its own, or one the exchange's history showed the other host placed) is
/// written as executed with that order's quantity, because the entry is written only if the
/// plan has none yet, and then the order is the plan's outcome (its first answer was lost
/// with the host that gave it). Anything else is written as the core gave it.
fn first_result(result: PlanResult, order_id: Option<u64>) -> (PlanResult, Option<u64>) {
    match result.outcome {
        Outcome::Duplicate { ordered: Some(qty) } => (
            PlanResult {
                outcome: Outcome::Executed { qty },
                ..result
            },
            order_id,
        ),
        _ => (result, order_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantum_core::{Decision, PlanId, SymbolId};

    fn result(outcome: Outcome) -> PlanResult {
        PlanResult {
            plan: PlanId(7),
            symbol: SymbolId(0),
            decision: Decision::Execute,
            outcome,
            wait_ns: 0,
            at_ms: 1,
        }
    }

    #[test]
    fn a_duplicate_of_an_ordered_plan_is_written_as_its_order() {
        let qty: Qty = "0.015".parse().unwrap();
        let (r, _) = first_result(result(Outcome::Duplicate { ordered: Some(qty) }), None);
        assert_eq!(r.outcome, Outcome::Executed { qty });
        // A duplicate of a plan never ordered stays a duplicate.
        let plain = result(Outcome::Duplicate { ordered: None });
        assert_eq!(first_result(plain, None).0, plain);
        // Any other answer is written as given.
        let other = result(Outcome::NonExecute);
        assert_eq!(first_result(other, Some(3)), (other, Some(3)));
    }
}
