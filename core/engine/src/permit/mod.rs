//! The permit table: both permits of a plan, consumed together by one compare-and-swap.
//!
//! Fixed capacity, allocated once; lock-free; no allocation after [`PermitTable::new`].
//!
//! Each slot has one 64-bit state word ([`word`]) holding a generation, both permits' statuses
//! and the consumed/closed flags, plus side fields (deadlines, safe quantity, reasons) held in
//! atomics. The protocol:
//!
//! * **open** (the single ingest thread): a slot is free when `closed`. Claim it by CAS to the next
//!   generation (still closed), reset its side fields, publish it open. A slot still in use is
//!   [`TableFull`] for that index; the ingest stage walks on to the next one, and a table with no
//!   free slot is back-pressure the caller sees, never a silent loss.
//! * **issue** (governor, P3.3, or legacy issuers): CAS the permit's status NONE → WRITING naming
//!   the generation; the winner writes the side fields and publishes ALLOW or DENY with Release.
//!   A second issuer sees the status taken: first write wins, issuing is idempotent. An issuer
//!   holding a recycled slot's old generation fails its CAS ([`Issue::Stale`]), so a late permit
//!   never lands on the wrong plan (ABA).
//! * **consume** (apply): Acquire-load the word; both ALLOW, deadlines not passed, not closed →
//!   CAS to consumed|closed. Both permits are taken by that one CAS or neither is; exactly one
//!   caller wins; a denied, missing or expired permit never passes.
//! * **close** (apply, on BLOCK or expiry): CAS to closed unless a permit is WRITING (then
//!   [`Close::Busy`]: try again shortly). Because close waits out writers and issuers refuse a
//!   closed slot, nobody writes a slot's side fields once it is closed, so reopening is safe,
//!   and the statuses the closing CAS saw are final: [`Close::Closed`] returns them, and
//!   [`PermitTable::permits`] reads exactly the permits that were issued, until the slot is
//!   reopened (by the same thread that closes, in the engine).
//! * **consume with a last check**: [`PermitTable::try_consume`] hands the allowed quantity and
//!   side to the caller's `accept` between reading the permits and the CAS, so a check on the
//!   quantity really sent (the governor's throttles) happens before anything is consumed.
//!
//! Generations are 32 bits: a stale reference could only alias after 2^32 reuses of one slot.
//! Ingest reuses a freed slot at once (it stays in cache), so at 10^6 plans/s one slot wraps in
//! about 70 minutes; stale references live only in the stage queues of the pipelined runner
//! (microseconds), and externally issued permits are looked up by plan id among the plans
//! still waiting, so no reference lives anywhere near that long.

pub mod word;

use crossbeam_utils::CachePadded;

use crate::fixed::Qty;
use crate::sync::{AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering};
use crate::types::{PlanId, Side};
use quantum_ipc::codes::{GovReason, P33Reason};
pub use word::{Status, Which};
use word::{Word, ALLOW_XOR, CLOSED, CONSUMED, DENY_OR, WRITING};

/// A plan's slot: index and the generation it was opened with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SlotRef {
    /// Index into the table, `< capacity`.
    pub index: u32,
    /// Generation the slot had when this plan opened it.
    pub gen: u32,
}

/// The governor's permit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GovPermit {
    /// Allow or deny.
    pub allow: bool,
    /// Why it denies (`None` when allowing).
    pub reason: Option<GovReason>,
    /// Engine-clock time it was issued (ns).
    pub issued_ns: u64,
    /// Engine-clock deadline (ns); the permit is expired from this instant on.
    pub deadline_ns: u64,
}

/// Numbers behind a P3.3 decision, kept for the deny reason's context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct P33Context {
    /// Exchange position amount (signed).
    pub exchange: Qty,
    /// Ledger amount (signed).
    pub ledger: Qty,
    /// The symbol's tolerance.
    pub tolerance: Qty,
}

impl P33Context {
    /// `|exchange - ledger|`.
    pub fn diff(&self) -> Qty {
        Qty::from_units(
            self.exchange
                .units()
                .saturating_sub(self.ledger.units())
                .saturating_abs(),
        )
    }
}

/// P3.3's permit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct P33Permit {
    /// Allow or deny.
    pub allow: bool,
    /// Why it denies (`None` when allowing).
    pub reason: Option<P33Reason>,
    /// Engine-clock time it was issued (ns).
    pub issued_ns: u64,
    /// Engine-clock deadline (ns).
    pub deadline_ns: u64,
    /// Quantity the order may close (zero when denying).
    pub safe_qty: Qty,
    /// Closing side (`None` when denying).
    pub side: Option<Side>,
    /// Amounts the decision was made on.
    pub context: P33Context,
}

/// What issuing a permit did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Issue {
    /// This call wrote the permit.
    Issued,
    /// Another issuer was first; this call changed nothing.
    AlreadyIssued,
    /// The slot was recycled for another plan: the reference is out of date.
    Stale,
    /// The plan is finished (consumed, blocked or expired).
    Closed,
}

/// What a consume attempt found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consume {
    /// This call consumed both permits.
    Consumed {
        /// P3.3's safe quantity.
        safe_qty: Qty,
        /// Closing side.
        side: Side,
    },
    /// At least one permit is not issued yet (or still being written).
    NotReady {
        /// Governor permit status.
        gov: Status,
        /// P3.3 permit status.
        p33: Status,
    },
    /// The governor denied.
    GovDenied,
    /// P3.3 denied.
    P33Denied,
    /// Both allowed, and the caller's `accept` refused the quantity: nothing was consumed.
    Refused,
    /// Both allow, but a deadline has passed.
    Expired {
        /// Which permit expired first (the governor's when both did).
        which: Which,
    },
    /// Another consumer won.
    AlreadyConsumed,
    /// The plan was closed without consumption.
    Closed,
    /// The slot now belongs to another plan.
    Stale,
}

/// What a close attempt did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// This call closed the slot; the statuses it closed with are final.
    Closed(SlotView),
    /// A permit is being written; try again shortly.
    Busy,
    /// A consumer won before the close.
    AlreadyConsumed,
    /// Closed before.
    AlreadyClosed,
    /// The slot now belongs to another plan.
    Stale,
}

/// The slot at `seq % capacity` is still in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableFull {
    /// Index that was tried.
    pub index: u32,
}

/// A consistent snapshot of one slot, for reporting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotView {
    /// Governor status.
    pub gov: Status,
    /// P3.3 status.
    pub p33: Status,
    /// Consumed flag.
    pub consumed: bool,
    /// Closed flag.
    pub closed: bool,
}

#[derive(Debug)]
struct Slot {
    /// Generation, statuses and flags; see [`word`]. Initially generation 0 and closed (free).
    state: AtomicU64,
    /// The plan this generation belongs to.
    plan: AtomicU64,
    gov_issued: AtomicU64,
    gov_deadline: AtomicU64,
    gov_reason: AtomicU32,
    p33_issued: AtomicU64,
    p33_deadline: AtomicU64,
    p33_reason: AtomicU32,
    p33_safe_qty: AtomicI64,
    /// 0 none, 1 buy, 2 sell.
    p33_side: AtomicU8,
    p33_exchange: AtomicI64,
    p33_ledger: AtomicI64,
    p33_tolerance: AtomicI64,
}

impl Slot {
    fn new() -> Self {
        Slot {
            state: AtomicU64::new(Word::new(0, CLOSED).0),
            plan: AtomicU64::new(0),
            gov_issued: AtomicU64::new(0),
            gov_deadline: AtomicU64::new(0),
            gov_reason: AtomicU32::new(0),
            p33_issued: AtomicU64::new(0),
            p33_deadline: AtomicU64::new(0),
            p33_reason: AtomicU32::new(0),
            p33_safe_qty: AtomicI64::new(0),
            p33_side: AtomicU8::new(0),
            p33_exchange: AtomicI64::new(0),
            p33_ledger: AtomicI64::new(0),
            p33_tolerance: AtomicI64::new(0),
        }
    }

    /// Side fields are only read after an Acquire load of `state` that showed them published,
    /// so Relaxed is enough for each field (the state word carries the ordering).
    fn p33_context(&self) -> P33Context {
        P33Context {
            exchange: Qty::from_units(self.p33_exchange.load(Ordering::Relaxed)),
            ledger: Qty::from_units(self.p33_ledger.load(Ordering::Relaxed)),
            tolerance: Qty::from_units(self.p33_tolerance.load(Ordering::Relaxed)),
        }
    }
}

fn side_code(side: Option<Side>) -> u8 {
    match side {
        None => 0,
        Some(Side::Buy) => 1,
        Some(Side::Sell) => 2,
    }
}

fn side_from_code(c: u8) -> Option<Side> {
    match c {
        1 => Some(Side::Buy),
        2 => Some(Side::Sell),
        _ => None,
    }
}

/// Fixed-capacity table of permit slots. See the module docs for the protocol.
pub struct PermitTable {
    slots: Box<[CachePadded<Slot>]>,
}

impl std::fmt::Debug for PermitTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PermitTable")
            .field("capacity", &self.slots.len())
            .finish()
    }
}

impl PermitTable {
    /// A table of `capacity` free slots (at least 1, at most `u32::MAX`).
    pub fn new(capacity: usize) -> Self {
        assert!(
            capacity >= 1 && capacity <= u32::MAX as usize,
            "permit table capacity {capacity} out of range"
        );
        let slots = (0..capacity)
            .map(|_| CachePadded::new(Slot::new()))
            .collect();
        PermitTable { slots }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    #[inline]
    fn slot(&self, index: u32) -> &Slot {
        &self.slots[index as usize]
    }

    /// Opens the slot `seq % capacity` for `plan`.
    ///
    /// Meant for one ingest thread handing out slots in arrival order; a racing second opener
    /// loses the claim CAS and sees [`TableFull`], so misuse cannot corrupt a slot.
    pub fn open(&self, seq: u64, plan: PlanId) -> Result<SlotRef, TableFull> {
        let index = (seq % self.slots.len() as u64) as u32;
        let slot = self.slot(index);
        // SYNC POINT: Acquire pairs with the Release of the CAS that closed the slot (consume or
        // close): the previous plan's readers finished with the side fields before we rewrite them.
        let w = Word(slot.state.load(Ordering::Acquire));
        if !w.closed() {
            return Err(TableFull { index });
        }
        let gen = if w.gen() == word::GEN_MAX {
            0
        } else {
            w.gen() + 1
        };
        // Claim: next generation, still closed, so issuers and consumers keep away while we
        // reset the fields. Acquire on success keeps the field writes after the claim.
        if slot
            .state
            .compare_exchange(
                w.0,
                Word::new(gen, CLOSED).0,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return Err(TableFull { index });
        }
        // Seqlock writer side: a reader that sees any field written below also sees the new
        // generation when it re-checks the word after its Acquire fence (see `validated`).
        crate::sync::fence(Ordering::Release);
        slot.plan.store(plan.0, Ordering::Relaxed);
        slot.gov_issued.store(0, Ordering::Relaxed);
        slot.gov_deadline.store(0, Ordering::Relaxed);
        slot.gov_reason.store(0, Ordering::Relaxed);
        slot.p33_issued.store(0, Ordering::Relaxed);
        slot.p33_deadline.store(0, Ordering::Relaxed);
        slot.p33_reason.store(0, Ordering::Relaxed);
        slot.p33_safe_qty.store(0, Ordering::Relaxed);
        slot.p33_side.store(0, Ordering::Relaxed);
        slot.p33_exchange.store(0, Ordering::Relaxed);
        slot.p33_ledger.store(0, Ordering::Relaxed);
        slot.p33_tolerance.store(0, Ordering::Relaxed);
        // SYNC POINT: Release publishes the reset fields; pairs with the Acquire loads of issuers
        // and consumers of this generation. Nobody else writes the word while it is closed, so a
        // plain store is enough.
        slot.state.store(Word::new(gen, 0).0, Ordering::Release);
        Ok(SlotRef { index, gen })
    }

    /// Claims the right to write `which` permit of `r`: NONE → WRITING.
    fn claim(&self, r: SlotRef, which: Which) -> Result<(), Issue> {
        let slot = self.slot(r.index);
        let mut w = Word(slot.state.load(Ordering::Relaxed));
        loop {
            if w.gen() != r.gen {
                return Err(Issue::Stale);
            }
            if w.closed() {
                return Err(Issue::Closed);
            }
            if w.status(which) != Status::None {
                return Err(Issue::AlreadyIssued);
            }
            let claimed = w.0 | (WRITING << which.shift());
            // Acquire on success: the side-field writes that follow stay after the claim.
            match slot
                .state
                .compare_exchange(w.0, claimed, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(cur) => w = Word(cur),
            }
        }
    }

    /// Publishes a claimed permit: WRITING → ALLOW or DENY in one RMW.
    fn publish(&self, r: SlotRef, which: Which, allow: bool) {
        let slot = self.slot(r.index);
        // SYNC POINT: Release makes the side fields written since the claim visible to whoever
        // Acquire-loads a word showing ALLOW/DENY (try_consume, view, close). Only the claimer
        // touches these two bits while WRITING, and the slot cannot close meanwhile, so an
        // unconditional RMW is exact.
        if allow {
            slot.state
                .fetch_xor(ALLOW_XOR << which.shift(), Ordering::Release);
        } else {
            slot.state
                .fetch_or(DENY_OR << which.shift(), Ordering::Release);
        }
    }

    /// Issues the governor's permit for `r`. First write wins.
    pub fn issue_gov(&self, r: SlotRef, p: GovPermit) -> Issue {
        if let Err(e) = self.claim(r, Which::Gov) {
            return e;
        }
        let slot = self.slot(r.index);
        slot.gov_issued.store(p.issued_ns, Ordering::Relaxed);
        slot.gov_deadline.store(p.deadline_ns, Ordering::Relaxed);
        slot.gov_reason.store(
            u32::from(p.reason.map_or(0, GovReason::code)),
            Ordering::Relaxed,
        );
        self.publish(r, Which::Gov, p.allow);
        Issue::Issued
    }

    /// Issues P3.3's permit for `r`. First write wins.
    pub fn issue_p33(&self, r: SlotRef, p: P33Permit) -> Issue {
        if let Err(e) = self.claim(r, Which::P33) {
            return e;
        }
        let slot = self.slot(r.index);
        slot.p33_issued.store(p.issued_ns, Ordering::Relaxed);
        slot.p33_deadline.store(p.deadline_ns, Ordering::Relaxed);
        slot.p33_reason.store(
            u32::from(p.reason.map_or(0, P33Reason::code)),
            Ordering::Relaxed,
        );
        slot.p33_safe_qty
            .store(p.safe_qty.units(), Ordering::Relaxed);
        slot.p33_side.store(side_code(p.side), Ordering::Relaxed);
        slot.p33_exchange
            .store(p.context.exchange.units(), Ordering::Relaxed);
        slot.p33_ledger
            .store(p.context.ledger.units(), Ordering::Relaxed);
        slot.p33_tolerance
            .store(p.context.tolerance.units(), Ordering::Relaxed);
        self.publish(r, Which::P33, p.allow);
        Issue::Issued
    }

    /// Re-checks, after reading side fields, that the slot still holds generation `gen`:
    /// the seqlock reader side matching the fence in [`PermitTable::open`].
    fn validated<T>(&self, r: SlotRef, value: T) -> Option<T> {
        // Acquire fence: if any field read above saw a reopen's write, the load below sees
        // that reopen's generation (pairs with the Release fence in `open`).
        crate::sync::fence(Ordering::Acquire);
        let w = Word(self.slot(r.index).state.load(Ordering::Relaxed));
        (w.gen() == r.gen).then_some(value)
    }

    /// Tries to consume both permits of `r` at engine time `now_ns`. When both allow and
    /// neither has expired, `accept(safe_qty, side)` decides last; `false` consumes nothing
    /// ([`Consume::Refused`]).
    pub fn try_consume(
        &self,
        r: SlotRef,
        now_ns: u64,
        accept: impl FnOnce(Qty, Side) -> bool,
    ) -> Consume {
        let slot = self.slot(r.index);
        // SYNC POINT: Acquire pairs with the Release in `publish`: the side fields of every
        // permit this word shows as issued are visible below.
        let w = Word(slot.state.load(Ordering::Acquire));
        if w.gen() != r.gen {
            return Consume::Stale;
        }
        if w.consumed() {
            return Consume::AlreadyConsumed;
        }
        if w.closed() {
            return Consume::Closed;
        }
        let (gov, p33) = (w.status(Which::Gov), w.status(Which::P33));
        if gov == Status::Deny {
            return Consume::GovDenied;
        }
        if p33 == Status::Deny {
            return Consume::P33Denied;
        }
        if gov != Status::Allow || p33 != Status::Allow {
            return Consume::NotReady { gov, p33 };
        }
        // Read everything we need before the CAS: once it succeeds the slot is closed and the
        // ingest thread may reopen it at any moment.
        let gov_deadline = slot.gov_deadline.load(Ordering::Relaxed);
        let p33_deadline = slot.p33_deadline.load(Ordering::Relaxed);
        let safe_qty = Qty::from_units(slot.p33_safe_qty.load(Ordering::Relaxed));
        let side = side_from_code(slot.p33_side.load(Ordering::Relaxed));
        // The fields above mean something only if the slot still holds our generation: a
        // consumer that lost to another and then saw the slot reopened must answer `Stale`,
        // never `Expired` for a plan it does not own (seqlock reader side, see `validated`).
        if self.validated(r, ()).is_none() {
            return Consume::Stale;
        }
        if now_ns >= gov_deadline {
            return Consume::Expired { which: Which::Gov };
        }
        if now_ns >= p33_deadline {
            return Consume::Expired { which: Which::P33 };
        }
        // An ALLOW without a side is an issuer's bug: treat it as a deny, never trade on it.
        let Some(side) = side else {
            return Consume::P33Denied;
        };
        if !accept(safe_qty, side) {
            return Consume::Refused;
        }
        // SYNC POINT: AcqRel. Release pairs with the Acquire in `open` (our field reads above
        // happen before any reopen rewrites them); Acquire on failure for the word we report.
        match slot.state.compare_exchange(
            w.0,
            w.0 | CONSUMED | CLOSED,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Consume::Consumed { safe_qty, side },
            // The word moved since our look: another consumer won, or the slot was closed or
            // reopened. Nothing was consumed by us; say what it is now.
            Err(cur) => {
                let cur = Word(cur);
                if cur.gen() != r.gen {
                    Consume::Stale
                } else if cur.consumed() {
                    Consume::AlreadyConsumed
                } else {
                    Consume::Closed
                }
            }
        }
    }

    /// Closes `r` without consuming (BLOCK or expiry). Fails with [`Close::Busy`] while a permit
    /// is being written.
    pub fn close(&self, r: SlotRef) -> Close {
        let slot = self.slot(r.index);
        let mut w = Word(slot.state.load(Ordering::Acquire));
        loop {
            if w.gen() != r.gen {
                return Close::Stale;
            }
            if w.consumed() {
                return Close::AlreadyConsumed;
            }
            if w.closed() {
                return Close::AlreadyClosed;
            }
            if w.writing() {
                return Close::Busy;
            }
            // SYNC POINT: Release pairs with the Acquire in `open` (reads of this plan's fields
            // by the closer happen before the slot is rewritten).
            match slot.state.compare_exchange(
                w.0,
                w.0 | CLOSED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Close::Closed(SlotView {
                        gov: w.status(Which::Gov),
                        p33: w.status(Which::P33),
                        consumed: false,
                        closed: true,
                    })
                }
                Err(cur) => w = Word(cur),
            }
        }
    }

    /// The current statuses of `r`, or `None` if the slot belongs to another plan now.
    pub fn view(&self, r: SlotRef) -> Option<SlotView> {
        let w = Word(self.slot(r.index).state.load(Ordering::Acquire));
        (w.gen() == r.gen).then_some(SlotView {
            gov: w.status(Which::Gov),
            p33: w.status(Which::P33),
            consumed: w.consumed(),
            closed: w.closed(),
        })
    }

    /// The permits issued for `r`, as written, or `None` if the slot belongs to another plan
    /// now. Exact once the slot is consumed or closed (no one writes it until it is reopened);
    /// before that, a permit still being written reads as not issued.
    pub fn permits(&self, r: SlotRef) -> Option<(Option<GovPermit>, Option<P33Permit>)> {
        let slot = self.slot(r.index);
        // SYNC POINT: Acquire pairs with the Release in `publish` (the fields are visible).
        let w = Word(slot.state.load(Ordering::Acquire));
        if w.gen() != r.gen {
            return None;
        }
        let gov = w.status(Which::Gov).is_issued().then(|| GovPermit {
            allow: w.status(Which::Gov) == Status::Allow,
            reason: GovReason::from_code(slot.gov_reason.load(Ordering::Relaxed) as u16),
            issued_ns: slot.gov_issued.load(Ordering::Relaxed),
            deadline_ns: slot.gov_deadline.load(Ordering::Relaxed),
        });
        let p33 = w.status(Which::P33).is_issued().then(|| P33Permit {
            allow: w.status(Which::P33) == Status::Allow,
            reason: P33Reason::from_code(slot.p33_reason.load(Ordering::Relaxed) as u16),
            issued_ns: slot.p33_issued.load(Ordering::Relaxed),
            deadline_ns: slot.p33_deadline.load(Ordering::Relaxed),
            safe_qty: Qty::from_units(slot.p33_safe_qty.load(Ordering::Relaxed)),
            side: side_from_code(slot.p33_side.load(Ordering::Relaxed)),
            context: slot.p33_context(),
        });
        self.validated(r, (gov, p33))
    }

    /// The plan id a slot was last opened for (diagnostics).
    pub fn plan_of(&self, r: SlotRef) -> Option<PlanId> {
        let plan = PlanId(self.slot(r.index).plan.load(Ordering::Relaxed));
        self.validated(r, plan)
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
