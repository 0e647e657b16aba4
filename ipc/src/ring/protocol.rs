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

/// The producer's private state.
#[derive(Debug)]
pub(crate) struct ProducerCore {
    /// Next position to publish. Mirrors the shared `tail` after each commit.
    tail: u64,
    /// Last `head` seen; refreshed only when the ring looks full, so the consumer's line is
    /// touched once per lap instead of once per record.
    head_cache: u64,
    capacity: u64,
}

impl ProducerCore {
    /// Resumes where the ring stands, including records a killed predecessor published but had
    /// not yet counted in `tail`.
    pub(crate) fn attach(h: &RingHeader, s: &impl Slots) -> ProducerCore {
        let capacity = s.mask() + 1;
        // Acquire: pairs with the predecessor's Release store of `tail` in `commit`.
        let mut tail = h.tail.load(Ordering::Acquire);
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
        // Release: pairs with the Acquire in the next `attach`.
        h.tail.store(tail, Ordering::Release);
        // Acquire: pairs with the consumer's Release store of `head` in `ConsumerCore::commit`.
        let head_cache = h.head.load(Ordering::Acquire);
        ProducerCore {
            tail,
            head_cache,
            capacity,
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
            self.head_cache = h.head.load(Ordering::Acquire);
            debug_assert!(self.head_cache <= self.tail, "head passed tail");
            free = self.capacity - self.used();
        }
        free.min(want)
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
        h.tail.store(self.tail, Ordering::Release);
    }
}

/// The consumer's private state.
#[derive(Debug)]
pub(crate) struct ConsumerCore {
    /// Next position to read. Mirrors the shared `head` after each commit.
    head: u64,
}

impl ConsumerCore {
    /// Resumes at the shared `head`. A consumer killed between reading a record and committing
    /// sees that record again (at-least-once).
    pub(crate) fn attach(h: &RingHeader) -> ConsumerCore {
        // Acquire: pairs with the predecessor's Release store in `commit`.
        ConsumerCore {
            head: h.head.load(Ordering::Acquire),
        }
    }

    /// Reads the next record into `out` if one is published. Does not free the slot: call
    /// `commit`.
    #[inline]
    pub(crate) fn pop(&mut self, s: &impl Slots, out: &mut [u8]) -> bool {
        let index = (self.head & s.mask()) as usize;
        // SYNC POINT: Acquire pairs with the producer's Release store of the marker in
        // `ProducerCore::publish`.
        if s.seq(index).load(Ordering::Acquire) != self.head + 1 {
            return false;
        }
        // SAFETY: we are the only consumer, the marker says position `head` is published, and
        // the producer cannot reuse the slot until we commit a head past it.
        unsafe { s.read(index, out) };
        self.head += 1;
        true
    }

    /// Next position to read.
    pub(crate) fn position(&self) -> u64 {
        self.head
    }

    /// Frees every slot read so far.
    #[inline]
    pub(crate) fn commit(&self, h: &RingHeader) {
        // SYNC POINT: Release pairs with the producer's Acquire load of `head` in
        // `ProducerCore::reserve`: our slot reads happen before it overwrites them.
        h.head.store(self.head, Ordering::Release);
    }
}

/// Records published and not yet consumed (a snapshot).
pub(crate) fn len(h: &RingHeader) -> u64 {
    // Relaxed: a depth gauge; nothing is read through these values. The two loads are not one
    // snapshot (head may move past the tail we read), hence the saturation.
    let head = h.head.load(Ordering::Relaxed);
    let tail = h.tail.load(Ordering::Relaxed);
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
