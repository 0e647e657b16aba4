//! The SPSC protocol, independent of where the memory lives (shared memory, heap, or loom's
//! model under `cfg(loom)`).
//!
//! Cursors are free-running `u64`s: position `p` lives in slot `p & mask`. Each slot starts
//! with a commit marker `seq`: the producer writes the payload, then stores `seq = p + 1`
//! (Release). The consumer at position `h` reads the slot only when `seq == h + 1` (Acquire).
//! A producer killed mid-write never stored the marker, so the consumer never sees the torn
//! payload; the restarted producer resumes at the shared `tail` and overwrites it.
//!
//! Marker values per slot only grow (`i + 1`, `i + 1 + capacity`, ...), so `seq == p + 1`
//! identifies one lap exactly; no ABA.
//!
//! The consumer stores `head` after reading (Release); the producer reuses a slot only after
//! loading a `head` past it (Acquire). `tail` is stored after each publish so that `len()` and a
//! restarted producer know where the ring stands; the consumer never reads it.

use super::header::RingHeader;
use crate::sync::{AtomicU64, Ordering};

/// Slot storage.
pub(crate) trait Slots {
    /// `capacity - 1`; capacity is a power of two.
    fn mask(&self) -> u64;
    /// The commit marker of slot `index`.
    fn seq(&self, index: usize) -> &AtomicU64;
    /// Copies `src` into slot `index`'s payload.
    ///
    /// # Safety
    /// The caller is the only producer and the consumer has released the slot (head is past
    /// its previous lap), so nobody reads it concurrently.
    unsafe fn write(&self, index: usize, src: &[u8]);
    /// Copies slot `index`'s payload into `dst`.
    ///
    /// # Safety
    /// The caller is the only consumer and has seen the slot's marker published (Acquire),
    /// and the producer will not reuse the slot before head moves past it.
    unsafe fn read(&self, index: usize, dst: &mut [u8]);
}

/// A cursor found in a state the protocol never produces (a stray write into the segment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Our own cursor was changed under us; we wrote our value back.
    Restored {
        /// `"tail"` or `"head"`.
        cursor: &'static str,
        /// What it held.
        found: u64,
        /// What we put back.
        restored: u64,
    },
    /// The other side's cursor is impossible; not trusted until it is sane again.
    Impossible {
        /// `"head"` or `"tail"`.
        cursor: &'static str,
        /// What it holds.
        found: u64,
        /// Why it cannot be.
        why: &'static str,
    },
    /// Our own cursor was found in a state the protocol never produces when we attached (a
    /// stray write while no one held the role); we set it to the position the slots show.
    Reset {
        /// `"tail"` or `"head"`.
        cursor: &'static str,
        /// What it held.
        found: u64,
        /// What we set it to.
        reset_to: u64,
        /// Why `found` cannot be.
        why: &'static str,
    },
    /// Records were overwritten before the consumer read them (the producer trusted a
    /// corrupt head): the consumer skipped to the oldest record still there.
    Overwritten {
        /// First position lost.
        from: u64,
        /// Position resumed at.
        to: u64,
    },
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Restored { cursor, found, restored } => write!(
                f,
                "its {cursor} cursor was changed from outside to {found}; restored to {restored}"
            ),
            Fault::Impossible { cursor, found, why } => write!(
                f,
                "its {cursor} cursor holds {found}, which {why}; the consumer owns that cursor and puts it right at its next check or when it attaches; not writing until then"
            ),
            Fault::Reset { cursor, found, reset_to, why } => write!(
                f,
                "its {cursor} cursor held {found}, which {why}; set to {reset_to} when this side attached"
            ),
            Fault::Overwritten { from, to } => write!(
                f,
                "records {from}..{to} were overwritten before they were read (a corrupt cursor let the producer reuse their slots); reading resumes at {to}"
            ),
        }
    }
}

/// The producer's private state.
#[derive(Debug)]
pub(crate) struct ProducerCore {
    /// Next position to publish. Mirrors the shared `tail` after each commit.
    tail: u64,
    /// Last `head` seen; refreshed only when the ring looks full, so the consumer's line is
    /// touched once per lap instead of once per record. Only ever a sane value.
    head_cache: u64,
    capacity: u64,
    /// The last refresh of `head` found an impossible value.
    fault: Option<Fault>,
    /// What `attach` repaired, reported by the first `check`.
    pending: Option<Fault>,
}

/// Records ever published, as the slots' commit markers show it: the largest marker (markers
/// only grow, and the producer publishes positions in order). Reads every slot's marker: only
/// when a cursor was found contradicting them.
fn published_end(s: &impl Slots) -> u64 {
    (0..=s.mask())
        // Relaxed: only the value is compared; no payload is read through it.
        .map(|i| s.seq(i as usize).load(Ordering::Relaxed))
        .max()
        .unwrap_or(0)
}

/// How the slots' markers contradict a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contradiction {
    /// The slot of the cursor holds a later lap's record.
    Behind,
    /// The record before the cursor was never published.
    Past,
}

impl Contradiction {
    fn why(self) -> &'static str {
        match self {
            Contradiction::Behind => "is behind records the slots hold",
            Contradiction::Past => "is past every record ever published",
        }
    }
}

/// Whether the markers say position `end` cannot be the end of what was published: the
/// record before it must be there (its slot's marker is `end`, or a later lap's), and the slot
/// of `end` must not hold a later lap's record.
fn contradicts_markers(s: &impl Slots, end: u64) -> Option<Contradiction> {
    let mask = s.mask();
    // Relaxed (both): only the values are compared; no payload is read through them.
    let at_end = s.seq((end & mask) as usize).load(Ordering::Relaxed);
    if at_end > end + 1 {
        return Some(Contradiction::Behind);
    }
    if end > 0 && s.seq(((end - 1) & mask) as usize).load(Ordering::Relaxed) < end {
        return Some(Contradiction::Past);
    }
    None
}

impl ProducerCore {
    /// Resumes where the ring stands, including records a killed predecessor published but had
    /// not yet counted in `tail`.
    pub(crate) fn attach(h: &RingHeader, s: &impl Slots) -> ProducerCore {
        let capacity = s.mask() + 1;
        // Acquire: pairs with the predecessor's Release store of `tail` in `commit`.
        let mut tail = h.tail.pos.load(Ordering::Acquire);
        // A predecessor may have stored a marker and died before storing `tail`: skip those,
        // otherwise we would overwrite a record the consumer may not have read yet.
        for _ in 0..capacity {
            // Relaxed: we only compare the value; the payload is not read here.
            if s.seq((tail & s.mask()) as usize).load(Ordering::Relaxed) == tail + 1 {
                tail += 1;
            } else {
                break;
            }
        }
        // The slots say where the ring stands: a `tail` the markers contradict was changed
        // while no producer held the role. We own `tail`: set it to the slots' end.
        let mut pending = None;
        if let Some(c) = contradicts_markers(s, tail) {
            let found = tail;
            tail = published_end(s);
            pending = Some(Fault::Reset {
                cursor: "tail",
                found,
                reset_to: tail,
                why: c.why(),
            });
        }
        // Release: pairs with the Acquire in the next `attach`.
        h.tail.pos.store(tail, Ordering::Release);
        // Acquire: pairs with the consumer's Release store of `head` in `ConsumerCore::commit`.
        let head_cache = h.head.load(Ordering::Acquire);
        ProducerCore {
            tail,
            // A corrupt head at attach is caught by the first refresh; start from a sane one.
            head_cache: head_cache.min(tail),
            capacity,
            fault: None,
            pending,
        }
    }

    /// Why `head` cannot be the consumer's cursor right now, if it cannot.
    fn judge_head(&self, head: u64) -> Option<&'static str> {
        if head > self.tail {
            Some("is past the producer's tail")
        } else if self.tail - head > self.capacity {
            Some("is more than a capacity behind the producer's tail")
        } else if head < self.head_cache {
            Some("moved backwards")
        } else {
            None
        }
    }

    /// Slots in use as far as we know. Saturating, so a corrupt `head` beyond `tail` (which the
    /// protocol never produces) reads as "full" instead of overflowing.
    fn used(&self) -> u64 {
        self.tail.wrapping_sub(self.head_cache).min(self.capacity)
    }

    /// Free slots, up to `want`; refreshes the cached head only when needed.
    #[inline]
    pub(crate) fn reserve(&mut self, h: &RingHeader, want: u64) -> u64 {
        let mut free = self.capacity - self.used();
        if free < want {
            // SYNC POINT: Acquire pairs with the consumer's Release store of `head` in
            // `ConsumerCore::commit`: its reads of every slot below `head` happen before our
            // writes into them.
            let head = h.head.load(Ordering::Acquire);
            match self.judge_head(head) {
                None => {
                    self.head_cache = head;
                    self.fault = None;
                }
                Some(why) => {
                    // Never trust it: writing on the strength of a corrupt head could reuse
                    // slots the consumer has not read. Report "no room" until it is sane.
                    self.fault = Some(Fault::Impossible {
                        cursor: "head",
                        found: head,
                        why,
                    });
                    return 0;
                }
            }
            free = self.capacity - self.used();
        }
        free.min(want)
    }

    /// The fault the last refresh of `head` found, if it is still there.
    pub(crate) fn fault(&self) -> Option<&Fault> {
        self.fault.as_ref()
    }

    /// Checks both cursors (on heartbeat): our `tail` is rewritten if something changed it,
    /// and the consumer's `head` is judged. Returns what was wrong.
    pub(crate) fn check(&mut self, h: &RingHeader) -> Option<Fault> {
        if let Some(f) = self.pending.take() {
            return Some(f);
        }
        // Relaxed: compared with our own last store; the repair below is a Release store.
        let found = h.tail.pos.load(Ordering::Relaxed);
        if found != self.tail {
            self.commit(h);
            return Some(Fault::Restored {
                cursor: "tail",
                found,
                restored: self.tail,
            });
        }
        // Acquire: as in `reserve`.
        let head = h.head.load(Ordering::Acquire);
        match self.judge_head(head) {
            None => {
                self.head_cache = head;
                self.fault = None;
                None
            }
            Some(why) => {
                let f = Fault::Impossible {
                    cursor: "head",
                    found: head,
                    why,
                };
                self.fault = Some(f.clone());
                Some(f)
            }
        }
    }

    /// Writes and publishes one record. Only after `reserve` returned at least one more slot.
    #[inline]
    pub(crate) fn publish(&mut self, s: &impl Slots, record: &[u8]) {
        debug_assert!(self.used() < self.capacity, "publish without room");
        let index = (self.tail & s.mask()) as usize;
        // SAFETY: we are the only producer (the role is claimed) and `reserve` saw `head` past
        // this slot's previous lap, so the consumer is done with it.
        unsafe { s.write(index, record) };
        // SYNC POINT: Release pairs with the consumer's Acquire load of this marker in
        // `ConsumerCore::pop`: the payload written above is visible once the marker is.
        s.seq(index).store(self.tail + 1, Ordering::Release);
        self.tail += 1;
    }

    /// Next position to publish.
    pub(crate) fn position(&self) -> u64 {
        self.tail
    }

    /// Makes published records countable (`len`) and resumable (restart).
    #[inline]
    pub(crate) fn commit(&self, h: &RingHeader) {
        // Release: pairs with the Acquire load of `tail` in `attach` (a restarted producer).
        // The consumer does not read `tail`; `len()` readers only need the value.
        h.tail.pos.store(self.tail, Ordering::Release);
    }
}

/// The consumer's private state.
#[derive(Debug)]
pub(crate) struct ConsumerCore {
    /// Next position to read.
    head: u64,
    /// What the shared `head` holds: every record before it is released to the producer.
    committed: u64,
    /// A slot ahead of `head` holds a later lap's record (set by `pop`).
    overrun: Option<u64>,
    /// What `attach` repaired, reported by the first `check`.
    pending: Option<Fault>,
}

impl ConsumerCore {
    /// Resumes at the shared `head`. A consumer killed between reading a record and committing
    /// sees that record again (at-least-once).
    ///
    /// A `head` past the end of what was ever published (changed while no consumer held the
    /// role: nobody could restore it) would leave this consumer waiting for positions the
    /// producer never reaches, and the producer refusing to write: we own `head`, so it is set
    /// to the producer's `tail` (nothing past it was ever published), and the first `check`
    /// reports it. Whether `head` or `tail` is the one that is wrong is read from the slots'
    /// markers: a `head` behind the last marker is left alone (the producer repairs `tail`).
    pub(crate) fn attach(h: &RingHeader, s: &impl Slots) -> ConsumerCore {
        // Acquire: pairs with the predecessor's Release store in `commit`.
        let mut head = h.head.load(Ordering::Acquire);
        // Acquire: pairs with the producer's Release store of `tail` in `ProducerCore::commit`
        // (only the value is used: records are read through their markers).
        let tail = h.tail.pos.load(Ordering::Acquire);
        let mut pending = None;
        if head > tail && contradicts_markers(s, head) == Some(Contradiction::Past) {
            let end = if contradicts_markers(s, tail).is_none() {
                tail
            } else {
                published_end(s)
            };
            pending = Some(Fault::Reset {
                cursor: "head",
                found: head,
                reset_to: end,
                why: Contradiction::Past.why(),
            });
            head = end;
            // SYNC POINT: Release pairs with the producer's Acquire load of `head` in
            // `ProducerCore::reserve`, as in `commit_to` (we read nothing below it).
            h.head.store(head, Ordering::Release);
        }
        ConsumerCore {
            head,
            committed: head,
            overrun: None,
            pending,
        }
    }

    /// Reads the next record into `out` if one is published. Does not free the slot: call
    /// `commit`.
    #[inline]
    pub(crate) fn pop(&mut self, s: &impl Slots, out: &mut [u8]) -> bool {
        let index = (self.head & s.mask()) as usize;
        // SYNC POINT: Acquire pairs with the producer's Release store of the marker in
        // `ProducerCore::publish`.
        let seq = s.seq(index).load(Ordering::Acquire);
        if seq != self.head + 1 {
            if seq > self.head + 1 {
                // A later lap's record where ours should be: it was overwritten unread.
                self.overrun = Some(seq - 1);
            }
            return false;
        }
        // SAFETY: we are the only consumer, the marker says position `head` is published, and
        // the producer cannot reuse the slot until we commit a head past it.
        unsafe { s.read(index, out) };
        self.head += 1;
        true
    }

    /// Whether the record at the next position to read is published (what `pop` would find),
    /// without reading it.
    #[inline]
    pub(crate) fn ready(&self, s: &impl Slots) -> bool {
        // Acquire: pairs with the producer's Release store of the marker in
        // `ProducerCore::publish` (as in `pop`; `pop` loads it again before reading).
        s.seq((self.head & s.mask()) as usize)
            .load(Ordering::Acquire)
            == self.head + 1
    }

    /// Next position to read.
    pub(crate) fn position(&self) -> u64 {
        self.head
    }

    /// Frees every slot read so far.
    #[inline]
    pub(crate) fn commit(&mut self, h: &RingHeader) {
        self.commit_to(h, self.head);
    }

    /// Frees the slots before position `pos` (at most what was read). A consumer that must not
    /// let a record go before it is safe elsewhere reads ahead and commits later.
    #[inline]
    pub(crate) fn commit_to(&mut self, h: &RingHeader, pos: u64) {
        let pos = pos.min(self.head).max(self.committed);
        self.committed = pos;
        // SYNC POINT: Release pairs with the producer's Acquire load of `head` in
        // `ProducerCore::reserve`: our slot reads happen before it overwrites them.
        h.head.store(pos, Ordering::Release);
    }

    /// Position up to which records are released to the producer.
    pub(crate) fn committed(&self) -> u64 {
        self.committed
    }

    /// Checks the shared `head` against ours (on heartbeat) and handles an overrun seen by
    /// `pop`. Returns what was wrong.
    pub(crate) fn check(&mut self, h: &RingHeader, s: &impl Slots) -> Option<Fault> {
        if let Some(f) = self.pending.take() {
            return Some(f);
        }
        if let Some(at) = self.overrun.take() {
            // Only if the slot still says so (a racing publish of our own position is fine).
            let index = (self.head & s.mask()) as usize;
            // Acquire: as in `pop`.
            let seq = s.seq(index).load(Ordering::Acquire);
            if seq > self.head + 1 && at >= self.head {
                let from = self.head;
                self.head = seq - 1;
                self.commit(h);
                return Some(Fault::Overwritten {
                    from,
                    to: self.head,
                });
            }
        }
        // Relaxed: compared with our own last store; the repair is a Release store.
        let found = h.head.load(Ordering::Relaxed);
        if found != self.committed {
            let pos = self.committed;
            self.commit_to(h, pos);
            return Some(Fault::Restored {
                cursor: "head",
                found,
                restored: pos,
            });
        }
        None
    }
}

/// Records published and not yet consumed (a snapshot).
pub(crate) fn len(h: &RingHeader) -> u64 {
    // Relaxed: a depth gauge; nothing is read through these values. The two loads are not one
    // snapshot (head may move past the tail we read), hence the saturation.
    let head = h.head.load(Ordering::Relaxed);
    let tail = h.tail.pos.load(Ordering::Relaxed);
    tail.saturating_sub(head)
}

/// Slots in shared memory or an aligned heap buffer: `[seq u64][payload][padding]` per stride.
#[cfg(not(loom))]
pub(crate) struct RawSlots {
    base: std::ptr::NonNull<u8>,
    mask: u64,
    stride: usize,
    slot_size: usize,
}

#[cfg(not(loom))]
impl RawSlots {
    /// # Safety
    /// `base` points to `(mask + 1) * stride` bytes, 8-aligned, zero-initialised or written only
    /// by this protocol, valid for as long as the `RawSlots` is; `stride >= 8 + slot_size`.
    pub(crate) unsafe fn new(
        base: std::ptr::NonNull<u8>,
        capacity: u64,
        stride: usize,
        slot_size: usize,
    ) -> RawSlots {
        debug_assert!(capacity.is_power_of_two());
        debug_assert!(stride >= super::header::SEQ_BYTES + slot_size);
        RawSlots {
            base,
            mask: capacity - 1,
            stride,
            slot_size,
        }
    }

    fn slot(&self, index: usize) -> *mut u8 {
        debug_assert!(index as u64 <= self.mask);
        // SAFETY: `index <= mask`, so the offset is inside the buffer `new` was given.
        unsafe { self.base.as_ptr().add(index * self.stride) }
    }
}

#[cfg(not(loom))]
impl Slots for RawSlots {
    fn mask(&self) -> u64 {
        self.mask
    }

    fn seq(&self, index: usize) -> &AtomicU64 {
        // SAFETY: the slot starts 8-aligned (base and stride are multiples of 8) and its first
        // 8 bytes are only ever accessed as this atomic; zero is a valid AtomicU64.
        unsafe { &*(self.slot(index) as *const AtomicU64) }
    }

    unsafe fn write(&self, index: usize, src: &[u8]) {
        debug_assert_eq!(src.len(), self.slot_size);
        // SAFETY: the payload lies inside the slot (`stride >= 8 + slot_size`); the caller
        // guarantees exclusive access per the protocol; `src` cannot overlap the ring.
        unsafe {
            std::ptr::copy_nonoverlapping(
                src.as_ptr(),
                self.slot(index).add(super::header::SEQ_BYTES),
                src.len().min(self.slot_size),
            )
        };
    }

    unsafe fn read(&self, index: usize, dst: &mut [u8]) {
        debug_assert_eq!(dst.len(), self.slot_size);
        // SAFETY: as in `write`; the caller guarantees the slot is published and not reused.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.slot(index).add(super::header::SEQ_BYTES),
                dst.as_mut_ptr(),
                dst.len().min(self.slot_size),
            )
        };
    }
}

/// Slots for the loom model: the payload sits in loom's `UnsafeCell`, so loom reports any
/// unsynchronised access to it as a data race.
#[cfg(loom)]
pub(crate) struct LoomSlots {
    slots: Box<[(AtomicU64, loom::cell::UnsafeCell<Vec<u8>>)]>,
}

#[cfg(loom)]
impl LoomSlots {
    pub(crate) fn new(capacity: u64, slot_size: usize) -> LoomSlots {
        LoomSlots {
            slots: (0..capacity)
                .map(|_| {
                    (
                        AtomicU64::new(0),
                        loom::cell::UnsafeCell::new(vec![0; slot_size]),
                    )
                })
                .collect(),
        }
    }
}

#[cfg(loom)]
impl Slots for LoomSlots {
    fn mask(&self) -> u64 {
        self.slots.len() as u64 - 1
    }

    fn seq(&self, index: usize) -> &AtomicU64 {
        &self.slots[index].0
    }

    unsafe fn write(&self, index: usize, src: &[u8]) {
        // SAFETY: exclusive access per the caller's contract; loom checks it.
        self.slots[index]
            .1
            .with_mut(|p| unsafe { (*p).copy_from_slice(src) });
    }

    unsafe fn read(&self, index: usize, dst: &mut [u8]) {
        // SAFETY: the slot is published and not reused per the caller's contract; loom checks it.
        self.slots[index]
            .1
            .with(|p| dst.copy_from_slice(unsafe { &*p }));
    }
}
