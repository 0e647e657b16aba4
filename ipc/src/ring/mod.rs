//! Single-producer single-consumer rings of fixed-size slots over a named shared-memory segment.
//!
//! A [`Ring`] is created by its owner (typically the core daemon) with [`Ring::create`] and
//! attached by the peer with [`Ring::open`]; either process then claims one role,
//! [`Ring::producer`] or [`Ring::consumer`]. Claiming records the pid; a second live claimant
//! is refused, a dead one is replaced. Both cursors live in the segment, so a restarted
//! producer or consumer attaches again and carries on where the ring stands.
//!
//! Invariants:
//! - `head <= tail <= head + capacity` (free-running `u64` cursors, see `protocol`);
//! - a record becomes visible only through its slot's commit marker, so a producer killed
//!   mid-write never exposes a torn record;
//! - a full ring is never overwritten: `try_push` returns [`Full`], `push` backs off (spin,
//!   yield, then sleep in small steps) and counts it;
//! - every push rings the consumer's doorbell ([`crate::doorbell`]): a consumer asleep on it
//!   ([`Consumer::wait`], [`Consumer::pop`]) is woken at once, and while none sleeps a push
//!   costs one fence and one load more;
//! - a corrupt header is an [`Error`], never a panic or an out-of-bounds access.
//!
//! Delivery is at-least-once across a consumer crash: a record read but not yet committed is
//! read again by the next consumer.

mod header;
pub(crate) mod protocol;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::doorbell::{Bell, Wait};
use crate::error::{CursorFault, Error, Full, Role};
use crate::idle::{Idle, IdlePolicy};
use crate::liveness::{clock_ms, PeerStatus};
use crate::segment::RING_MAGIC;
use crate::sync::Ordering;
use crate::wire::{DecodeError, Limits, Message, LAYOUT_HASH, RECORD_SIZE};
use header::{stride_for, RingHeader, MAX_CAPACITY, STAMP_DIR_WORDS};
use protocol::{ConsumerCore, ProducerCore};

#[cfg(loom)]
type SlotsImpl = protocol::LoomSlots;
#[cfg(not(loom))]
type SlotsImpl = protocol::RawSlots;

/// Where a ring lives and how big it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingSpec {
    /// Deployment instance (`[A-Za-z0-9_-]`, up to 64).
    pub instance: String,
    /// Ring name within the instance, e.g. `plans` (`[A-Za-z0-9_-]`, up to 64).
    pub name: String,
    /// Slots: a power of two up to 2^24. `open` accepts any capacity when this is 0.
    pub capacity: usize,
    /// Payload bytes per slot: 64 or 128.
    pub slot_size: usize,
}

impl RingSpec {
    /// A spec with 64-byte slots (one wire record each).
    pub fn new(instance: &str, name: &str, capacity: usize) -> RingSpec {
        RingSpec {
            instance: instance.to_owned(),
            name: name.to_owned(),
            capacity,
            slot_size: RECORD_SIZE,
        }
    }

    /// `quantum.<instance>.<name>`.
    pub fn os_id(&self) -> Result<String, Error> {
        crate::names::os_id(&self.instance, &self.name)
    }
}

/// Counters of a ring, read from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RingStats {
    /// Slots.
    pub capacity: u64,
    /// Payload bytes per slot.
    pub slot_size: u64,
    /// Records waiting.
    pub depth: u64,
    /// Records ever pushed (the tail cursor).
    pub pushed: u64,
    /// Records ever popped (the head cursor).
    pub popped: u64,
    /// Pushes that found the ring full.
    pub full_events: u64,
    /// Backoff steps the producer took waiting for room.
    pub producer_backoffs: u64,
    /// Records the consumer reported invalid.
    pub invalid: u64,
    /// Backoff steps the consumer took waiting for records.
    pub consumer_backoffs: u64,
    /// Times the consumer role was claimed (a restarted consumer claims it again).
    pub consumer_attaches: u64,
    /// Cursor faults found by either side (a cursor changed from outside, see
    /// [`CursorFault`]).
    pub cursor_faults: u64,
}

/// An aligned, zeroed heap buffer with the segment layout (tests, Miri, single-process use).
#[cfg(not(loom))]
struct HeapBuf {
    ptr: std::ptr::NonNull<u8>,
    layout: std::alloc::Layout,
}

#[cfg(not(loom))]
impl Drop for HeapBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `Ring::heap` with exactly this layout and freed only here.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

#[cfg(not(loom))]
enum Backing {
    Shm(crate::shm::Segment),
    Heap(HeapBuf),
}

/// The mapped ring shared by the `Ring` handle and its roles.
struct RingMem {
    /// Keeps the memory that `header` and `slots` point into alive.
    #[cfg(not(loom))]
    backing: Backing,
    #[cfg(not(loom))]
    header: std::ptr::NonNull<RingHeader>,
    #[cfg(loom)]
    header: Box<RingHeader>,
    slots: SlotsImpl,
    os_id: String,
    capacity: u64,
    slot_size: usize,
}

// SAFETY: the memory is only accessed through atomics and the SPSC protocol; the roles that
// write non-atomically (one producer, one consumer) are claimed exclusively.
unsafe impl Send for RingMem {}
// SAFETY: as above.
unsafe impl Sync for RingMem {}

impl RingMem {
    fn header(&self) -> &RingHeader {
        #[cfg(not(loom))]
        // SAFETY: `header` points at the start of `backing`, which is at least
        // `size_of::<RingHeader>()` bytes, 128-aligned (page or layout alignment), lives as long
        // as `self`, and is only accessed through the header's atomics.
        return unsafe { self.header.as_ref() };
        #[cfg(loom)]
        return &self.header;
    }
}

fn check_shape(os_id: &str, capacity: u64, slot_size: usize) -> Result<(), Error> {
    let reason = if !capacity.is_power_of_two() || capacity > MAX_CAPACITY {
        "capacity must be a power of two from 1 to 2^24"
    } else if slot_size != 64 && slot_size != 128 {
        "slot size must be 64 or 128"
    } else {
        return Ok(());
    };
    Err(Error::InvalidSpec {
        os_id: os_id.to_owned(),
        reason,
    })
}

/// Writes the creator's fields, then publishes them with the magic.
fn init_header(h: &RingHeader, capacity: u64, slot_size: usize) {
    h.meta.geometry.init(
        capacity,
        stride_for(slot_size),
        std::mem::size_of::<RingHeader>(),
    );
    h.meta
        .preamble
        .init(slot_size as u32, LAYOUT_HASH, clock_ms());
    h.meta.preamble.publish(RING_MAGIC);
}

/// Checks an existing header; returns `(capacity, slot_size)`.
#[cfg(not(loom))]
fn validate_header(
    h: &RingHeader,
    len: usize,
    os_id: &str,
    spec: &RingSpec,
) -> Result<(u64, usize), Error> {
    let os = || os_id.to_owned();
    let slot_size = h.meta.preamble.check(os_id, RING_MAGIC, LAYOUT_HASH)? as usize;
    if slot_size != 64 && slot_size != 128 {
        return Err(Error::Corrupt {
            os_id: os(),
            what: "slot size is not 64 or 128",
        });
    }
    let capacity = h.meta.geometry.check(
        os_id,
        len,
        stride_for(slot_size),
        std::mem::size_of::<RingHeader>(),
        |c| c.is_power_of_two() && c <= MAX_CAPACITY,
        "capacity is not a power of two up to 2^24",
    )?;
    if slot_size != spec.slot_size {
        return Err(Error::Mismatch {
            os_id: os(),
            what: "slot size",
            found: slot_size as u64,
            expected: spec.slot_size as u64,
        });
    }
    if spec.capacity != 0 && capacity != spec.capacity as u64 {
        return Err(Error::Mismatch {
            os_id: os(),
            what: "capacity",
            found: capacity,
            expected: spec.capacity as u64,
        });
    }
    Ok((capacity, slot_size))
}

/// A handle on a ring. Cheap to clone; the creator's handles unlink the segment when the last
/// one (including its roles) is dropped.
#[derive(Clone)]
pub struct Ring {
    mem: Arc<RingMem>,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("os_id", &self.mem.os_id)
            .field("capacity", &self.mem.capacity)
            .field("slot_size", &self.mem.slot_size)
            .finish()
    }
}

#[cfg(not(loom))]
impl Ring {
    /// Creates the segment `quantum.<instance>.<name>` (mode 0600) and initialises it.
    /// Fails if it already exists.
    pub fn create(spec: &RingSpec) -> Result<Ring, Error> {
        let os_id = spec.os_id()?;
        let capacity = spec.capacity as u64;
        check_shape(&os_id, capacity, spec.slot_size)?;
        let size = std::mem::size_of::<RingHeader>() + spec.capacity * stride_for(spec.slot_size);
        let segment = crate::shm::Segment::create(&os_id, size)?;
        Ring::from_backing(Backing::Shm(segment), os_id, capacity, spec.slot_size, true)
    }

    /// Like [`Ring::create`], but the segment stays when the last handle drops: for rings
    /// whose records must outlive their creator (the daemon's ingress rings, which a restarted
    /// daemon takes over). Remove it with `quantum ctl gc`.
    pub fn create_kept(spec: &RingSpec) -> Result<Ring, Error> {
        let os_id = spec.os_id()?;
        let capacity = spec.capacity as u64;
        check_shape(&os_id, capacity, spec.slot_size)?;
        let size = std::mem::size_of::<RingHeader>() + spec.capacity * stride_for(spec.slot_size);
        let mut segment = crate::shm::Segment::create(&os_id, size)?;
        segment.keep();
        Ring::from_backing(Backing::Shm(segment), os_id, capacity, spec.slot_size, true)
    }

    /// Attaches to an existing segment, refusing one of another layout, version, slot size or
    /// (if `spec.capacity != 0`) capacity.
    pub fn open(spec: &RingSpec) -> Result<Ring, Error> {
        let os_id = spec.os_id()?;
        let segment = crate::shm::Segment::open(&os_id)?;
        if segment.len() < std::mem::size_of::<RingHeader>() {
            return Err(Error::NotInitialised { os_id });
        }
        // SAFETY: the mapping is page-aligned and at least a header long; the header is all
        // atomics, for which any bit pattern (including a concurrent creator's) is valid.
        let header = unsafe { &*(segment.as_ptr() as *const RingHeader) };
        let (capacity, slot_size) = validate_header(header, segment.len(), &os_id, spec)?;
        Ring::from_backing(Backing::Shm(segment), os_id, capacity, slot_size, false)
    }

    /// Records waiting in the ring `spec` names, whichever record layout wrote it: for the
    /// cleanup, which must not remove a ring holding records this binary cannot read (an older
    /// or newer binary's). The cursors' place in the header does not depend on the records'
    /// layout.
    pub fn waiting_any_layout(spec: &RingSpec) -> Result<u64, Error> {
        let os_id = spec.os_id()?;
        let segment = crate::shm::Segment::open(&os_id)?;
        if segment.len() < std::mem::size_of::<RingHeader>() {
            return Err(Error::NotInitialised { os_id });
        }
        // SAFETY: as in `Ring::open`: the mapping is page-aligned and at least a header long,
        // and the header is all atomics, valid for any bit pattern; `segment` outlives the
        // reference.
        let header = unsafe { &*(segment.as_ptr() as *const RingHeader) };
        Ok(protocol::len(header))
    }

    /// A ring in an aligned heap buffer with the same layout and protocol, for one process
    /// (threads) and for tests under Miri.
    pub fn heap(capacity: usize, slot_size: usize) -> Result<Ring, Error> {
        let os_id = "heap".to_owned();
        check_shape(&os_id, capacity as u64, slot_size)?;
        let size = std::mem::size_of::<RingHeader>() + capacity * stride_for(slot_size);
        let layout =
            std::alloc::Layout::from_size_align(size, 128).map_err(|_| Error::InvalidSpec {
                os_id: os_id.clone(),
                reason: "ring too large",
            })?;
        // SAFETY: `layout` has a non-zero size (the header alone is 896 bytes).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let Some(ptr) = std::ptr::NonNull::new(ptr) else {
            std::alloc::handle_alloc_error(layout)
        };
        let buf = HeapBuf { ptr, layout };
        Ring::from_backing(Backing::Heap(buf), os_id, capacity as u64, slot_size, true)
    }

    /// Wraps validated memory. `init` writes a fresh header.
    fn from_backing(
        backing: Backing,
        os_id: String,
        capacity: u64,
        slot_size: usize,
        init: bool,
    ) -> Result<Ring, Error> {
        let base = match &backing {
            Backing::Shm(s) => s.as_ptr(),
            Backing::Heap(h) => h.ptr.as_ptr(),
        };
        let Some(base) = std::ptr::NonNull::new(base) else {
            return Err(Error::Corrupt {
                os_id,
                what: "mapping is null",
            });
        };
        let header = base.cast::<RingHeader>();
        // SAFETY: the caller sized the memory for the header plus `capacity` strides (checked
        // by `validate_header` for opened segments), it is 128-aligned, and it outlives `slots`
        // because both live in the same `RingMem` with `backing`.
        let slots = unsafe {
            protocol::RawSlots::new(
                base.add(std::mem::size_of::<RingHeader>()),
                capacity,
                stride_for(slot_size),
                slot_size,
            )
        };
        let mem = RingMem {
            backing,
            header,
            slots,
            os_id,
            capacity,
            slot_size,
        };
        if init {
            init_header(mem.header(), capacity, slot_size);
        }
        Ok(Ring { mem: Arc::new(mem) })
    }

    /// The identity of the segment behind the name right now (device and inode), to tell
    /// whether a mapped ring is still the one the name points at.
    pub fn current_identity(spec: &RingSpec) -> Option<(u64, u64)> {
        let os_id = spec.os_id().ok()?;
        crate::shm::identity(&crate::shm::path_of(&os_id))
    }

    /// The identity of the segment this handle maps (see [`Ring::current_identity`]).
    pub fn identity(&self) -> Option<(u64, u64)> {
        match &self.mem.backing {
            Backing::Shm(s) => s.identity(),
            Backing::Heap(_) => None,
        }
    }

    /// Whether this handle created the segment (and unlinks it when the last handle drops).
    pub fn is_owner(&self) -> bool {
        match &self.mem.backing {
            Backing::Shm(s) => s.is_owner(),
            Backing::Heap(_) => true,
        }
    }
}

#[cfg(loom)]
impl Ring {
    /// A ring on the heap, for the loom model.
    pub fn heap(capacity: usize, slot_size: usize) -> Result<Ring, Error> {
        let os_id = "loom".to_owned();
        check_shape(&os_id, capacity as u64, slot_size)?;
        let header = Box::<RingHeader>::default();
        init_header(&header, capacity as u64, slot_size);
        let mem = RingMem {
            header,
            slots: protocol::LoomSlots::new(capacity as u64, slot_size),
            os_id,
            capacity: capacity as u64,
            slot_size,
        };
        Ok(Ring { mem: Arc::new(mem) })
    }
}

impl Ring {
    fn check_n<const N: usize>(&self) -> Result<(), Error> {
        if N == self.mem.slot_size {
            Ok(())
        } else {
            Err(Error::Mismatch {
                os_id: self.mem.os_id.clone(),
                what: "slot size",
                found: self.mem.slot_size as u64,
                expected: N as u64,
            })
        }
    }

    /// Claims the producer role. `N` must equal the slot size.
    pub fn producer<const N: usize>(&self) -> Result<Producer<N>, Error> {
        self.check_n::<N>()?;
        let h = self.mem.header();
        let pid = h.producer.claim(&self.mem.os_id, Role::Producer)?;
        let core = ProducerCore::attach(h, &self.mem.slots);
        Ok(Producer {
            mem: Arc::clone(&self.mem),
            core,
            pid,
        })
    }

    /// Claims the consumer role. `N` must equal the slot size.
    pub fn consumer<const N: usize>(&self) -> Result<Consumer<N>, Error> {
        self.check_n::<N>()?;
        let h = self.mem.header();
        let pid = h.consumer.claim(&self.mem.os_id, Role::Consumer)?;
        // A predecessor killed asleep left its mark: it sleeps no more.
        h.tail.bell.clear_named(CONSUMER_SLOT);
        Ok(Consumer {
            mem: Arc::clone(&self.mem),
            core: ConsumerCore::attach(h, &self.mem.slots),
            pid,
        })
    }

    /// Segment id.
    pub fn os_id(&self) -> &str {
        &self.mem.os_id
    }

    /// Records that the ring's records belong to the journal `id` kept in `dir` (the core
    /// daemon, once it created or adopted the ring). Only the first stamp counts: a ring already
    /// stamped keeps its stamp, and `false` says so. A directory longer than the stamp holds
    /// (240 bytes) keeps its last bytes behind a leading `…`.
    pub fn stamp_journal(&self, id: u64, dir: &str) -> bool {
        let s = &self.mem.header().journal;
        // Acquire: pairs with the Release store below by an earlier stamper.
        if id == 0 || s.id.load(Ordering::Acquire) != 0 {
            return false;
        }
        let max = STAMP_DIR_WORDS * 8;
        let text = if dir.len() <= max {
            dir.to_owned()
        } else {
            let mut cut = dir.len() - (max - '…'.len_utf8());
            while !dir.is_char_boundary(cut) {
                cut += 1;
            }
            format!("…{}", &dir[cut..])
        };
        let mut bytes = [0u8; STAMP_DIR_WORDS * 8];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        for (w, chunk) in s.dir.iter().zip(bytes.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            // Relaxed: published by the Release store of `id` below.
            w.store(u64::from_le_bytes(b), Ordering::Relaxed);
        }
        // Relaxed: published by the Release store of `id` below.
        s.dir_len.store(text.len() as u64, Ordering::Relaxed);
        // SYNC POINT: Release pairs with the Acquire load of `id` in `journal_stamp` (and above).
        s.id.store(id, Ordering::Release);
        true
    }

    /// The journal the ring's records belong to: its identity and directory, or `None` when
    /// the ring was never stamped ([`Ring::stamp_journal`]).
    pub fn journal_stamp(&self) -> Option<(u64, String)> {
        let s = &self.mem.header().journal;
        // SYNC POINT: Acquire pairs with the Release store of `id` in `stamp_journal`.
        let id = s.id.load(Ordering::Acquire);
        if id == 0 {
            return None;
        }
        let mut bytes = Vec::with_capacity(STAMP_DIR_WORDS * 8);
        for w in &s.dir {
            // Relaxed: ordered after the Acquire load of `id`; written before it.
            bytes.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
        }
        // Relaxed: as above.
        let len = (s.dir_len.load(Ordering::Relaxed) as usize).min(bytes.len());
        bytes.truncate(len);
        Some((id, String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Slots.
    pub fn capacity(&self) -> usize {
        self.mem.capacity as usize
    }

    /// Payload bytes per slot.
    pub fn slot_size(&self) -> usize {
        self.mem.slot_size
    }

    /// Records waiting (a snapshot).
    pub fn len(&self) -> usize {
        protocol::len(self.mem.header()) as usize
    }

    /// No record waiting (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The producer's liveness.
    pub fn producer_status(&self, max_age_ms: u64) -> PeerStatus {
        self.mem.header().producer.status(max_age_ms)
    }

    /// The consumer's liveness.
    pub fn consumer_status(&self, max_age_ms: u64) -> PeerStatus {
        self.mem.header().consumer.status(max_age_ms)
    }

    /// Counters from the header.
    pub fn stats(&self) -> RingStats {
        let h = self.mem.header();
        // Relaxed: monitoring values; nothing is read through them.
        let r = |a: &crate::sync::AtomicU64| a.load(Ordering::Relaxed);
        RingStats {
            capacity: self.mem.capacity,
            slot_size: self.mem.slot_size as u64,
            depth: protocol::len(h),
            pushed: r(&h.tail.pos),
            popped: r(&h.head),
            full_events: r(&h.producer.events),
            producer_backoffs: r(&h.producer.backoffs),
            invalid: r(&h.consumer.events),
            consumer_backoffs: r(&h.consumer.backoffs),
            consumer_attaches: r(&h.consumer.attaches),
            cursor_faults: r(&h.producer.faults) + r(&h.consumer.faults),
        }
    }
}

/// The consumer's slot in the ring's doorbell (its named sleeper bit).
const CONSUMER_SLOT: usize = 0;

/// The writing end. Dropping it lets go of the role.
pub struct Producer<const N: usize> {
    mem: Arc<RingMem>,
    core: ProducerCore,
    pid: u64,
}

impl<const N: usize> Producer<N> {
    /// Pushes one record, or says the ring is full (counted as a full event).
    #[inline]
    pub fn try_push(&mut self, record: &[u8; N]) -> Result<(), Full> {
        let r = self.push_once(record);
        if r.is_err() {
            // Relaxed: a statistic.
            self.mem
                .header()
                .producer
                .events
                .fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    #[inline]
    fn push_once(&mut self, record: &[u8; N]) -> Result<(), Full> {
        let h = self.mem.header();
        if self.core.reserve(h, 1) == 0 {
            return Err(Full);
        }
        self.core.publish(&self.mem.slots, record);
        self.core.commit(h);
        h.tail.bell.ring();
        Ok(())
    }

    /// Pushes one record, idling while the ring is full ([`IdlePolicy::RING`]: spin, then
    /// yield, then sleep in doubling steps up to 1 ms). Gives up with [`Full`] after `timeout`; never drops silently.
    /// A push that had to wait counts one full event, and every backoff step.
    pub fn push(&mut self, record: &[u8; N], timeout: Duration) -> Result<(), Full> {
        if self.try_push(record).is_ok() {
            return Ok(());
        }
        if self.core.fault().is_some() {
            // The consumer's cursor is corrupt: waiting cannot help until it is restored.
            return Err(Full);
        }
        let deadline = Instant::now() + timeout;
        let mut idle = Idle::new(IdlePolicy::RING);
        loop {
            idle.snooze(Some(deadline.saturating_duration_since(Instant::now())));
            // Relaxed: a statistic.
            self.mem
                .header()
                .producer
                .backoffs
                .fetch_add(1, Ordering::Relaxed);
            if self.push_once(record).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline || self.core.fault().is_some() {
                return Err(Full);
            }
        }
    }

    /// Checks both cursors: restores our `tail` if something changed it, and judges the
    /// consumer's `head`. Call it with the heartbeat, and after a push failed, to tell a
    /// corrupt cursor from a full ring. Each fault found is counted in the header.
    pub fn check(&mut self) -> Option<CursorFault> {
        let h = self.mem.header();
        let f = self.core.check(h)?;
        // Relaxed: a statistic.
        h.producer.faults.fetch_add(1, Ordering::Relaxed);
        Some(CursorFault {
            os_id: self.mem.os_id.clone(),
            what: f.to_string(),
        })
    }

    /// Pushes as many of `records` as fit, in order; returns how many. One `head` check and one
    /// `tail` store for the whole batch.
    pub fn push_batch(&mut self, records: &[[u8; N]]) -> usize {
        let h = self.mem.header();
        let n = self.core.reserve(h, records.len() as u64) as usize;
        for r in &records[..n] {
            self.core.publish(&self.mem.slots, r);
        }
        if n > 0 {
            self.core.commit(h);
            h.tail.bell.ring();
        }
        if n < records.len() {
            // Relaxed: a statistic.
            h.producer.events.fetch_add(1, Ordering::Relaxed);
        }
        n
    }

    /// Records ever published into this ring (by this producer and its predecessors): where a
    /// restarted producer carries on.
    pub fn position(&self) -> u64 {
        self.core.position()
    }

    /// Marks this producer alive (one relaxed store of a coarse clock).
    #[inline]
    pub fn heartbeat(&self) {
        self.mem.header().producer.heartbeat();
    }

    /// The consumer's liveness.
    pub fn peer_status(&self, max_age_ms: u64) -> PeerStatus {
        self.mem.header().consumer.status(max_age_ms)
    }

    /// Records waiting (a snapshot).
    pub fn len(&self) -> usize {
        protocol::len(self.mem.header()) as usize
    }

    /// No record waiting (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Producer<RECORD_SIZE> {
    /// Encodes and pushes a wire message.
    pub fn try_push_message(&mut self, message: &Message) -> Result<(), Full> {
        self.try_push(&message.encode())
    }
}

impl<const N: usize> Drop for Producer<N> {
    fn drop(&mut self) {
        self.mem.header().producer.release(self.pid);
    }
}

/// The reading end. Dropping it lets go of the role.
pub struct Consumer<const N: usize> {
    mem: Arc<RingMem>,
    core: ConsumerCore,
    pid: u64,
}

impl<const N: usize> Consumer<N> {
    /// Takes the next record, if any.
    #[inline]
    pub fn try_pop(&mut self) -> Option<[u8; N]> {
        let mut out = [0u8; N];
        if self.core.pop(&self.mem.slots, &mut out) {
            self.core.commit(self.mem.header());
            Some(out)
        } else {
            None
        }
    }

    /// Takes the next record without releasing its slot: the producer cannot reuse it, and a
    /// consumer that dies reads it again, until [`Consumer::commit_to`] releases it.
    #[inline]
    pub fn try_pop_held(&mut self) -> Option<[u8; N]> {
        let mut out = [0u8; N];
        self.core.pop(&self.mem.slots, &mut out).then_some(out)
    }

    /// Releases every record before position `pos` (see [`Consumer::position`]) to the
    /// producer; positions not read yet are never released.
    #[inline]
    pub fn commit_to(&mut self, pos: u64) {
        self.core.commit_to(self.mem.header(), pos);
    }

    /// Position up to which records are released (the shared `head`, as this consumer set it).
    pub fn committed(&self) -> u64 {
        self.core.committed()
    }

    /// Checks the shared `head` against this consumer's own (restoring it if something
    /// changed it), and handles records overwritten unread. Call it with the heartbeat. Each
    /// fault found is counted in the header.
    pub fn check(&mut self) -> Option<CursorFault> {
        let h = self.mem.header();
        let f = self.core.check(h, &self.mem.slots)?;
        // Relaxed: a statistic.
        h.consumer.faults.fetch_add(1, Ordering::Relaxed);
        Some(CursorFault {
            os_id: self.mem.os_id.clone(),
            what: f.to_string(),
        })
    }

    /// Takes the next record, idling while the ring is empty, for at most `timeout`: spin,
    /// yield, then parks on the ring's doorbell ([`IdlePolicy::RING`]), which the producer's
    /// next push ends.
    pub fn pop(&mut self, timeout: Duration) -> Option<[u8; N]> {
        if let Some(r) = self.try_pop() {
            return Some(r);
        }
        let deadline = Instant::now() + timeout;
        let mut idle = Idle::new(IdlePolicy::RING);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            idle.idle_on(&[self.bell()], Some(left), || self.ready());
            // Relaxed: a statistic.
            self.mem
                .header()
                .consumer
                .backoffs
                .fetch_add(1, Ordering::Relaxed);
            if let Some(r) = self.try_pop() {
                return Some(r);
            }
            if Instant::now() >= deadline {
                return None;
            }
        }
    }

    /// Whether the next record is there to read (`try_pop` or `try_pop_held` would take it).
    /// Looks at its slot only: the `has_work` of a [`crate::doorbell::wait_any`] on this ring.
    #[inline]
    pub fn ready(&self) -> bool {
        self.core.ready(&self.mem.slots)
    }

    /// This consumer's bell on the ring's doorbell, rung by every push: to sleep on several
    /// rings at once with [`crate::doorbell::wait_any`], with [`Consumer::ready`] of each in
    /// its `has_work`.
    pub fn bell(&self) -> Bell<'_> {
        self.mem.header().tail.bell.named(CONSUMER_SLOT)
    }

    /// Sleeps until the producer pushes or `timeout` passes, unless a record is there already
    /// ([`Consumer::ready`], checked after the sleep is announced, so a record pushed meanwhile
    /// is never slept through). A producer of a binary from before the doorbell never rings:
    /// keep `timeout` short (about a millisecond) where one may still run.
    pub fn wait(&self, timeout: Duration) -> Wait {
        self.bell().wait(timeout, || self.ready())
    }

    /// Fills `out` from the front with waiting records; returns how many. One `head` store for
    /// the whole batch.
    pub fn pop_batch(&mut self, out: &mut [[u8; N]]) -> usize {
        let mut n = 0;
        while n < out.len() && self.core.pop(&self.mem.slots, &mut out[n]) {
            n += 1;
        }
        if n > 0 {
            self.core.commit(self.mem.header());
        }
        n
    }

    /// Records ever consumed from this ring (by this consumer and its predecessors).
    pub fn position(&self) -> u64 {
        self.core.position()
    }

    /// Counts a record the caller found invalid (visible in [`RingStats::invalid`]).
    pub fn report_invalid(&self) {
        // Relaxed: a statistic.
        self.mem
            .header()
            .consumer
            .events
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Marks this consumer alive (one relaxed store of a coarse clock).
    #[inline]
    pub fn heartbeat(&self) {
        self.mem.header().consumer.heartbeat();
    }

    /// The producer's liveness.
    pub fn peer_status(&self, max_age_ms: u64) -> PeerStatus {
        self.mem.header().producer.status(max_age_ms)
    }

    /// Records waiting (a snapshot).
    pub fn len(&self) -> usize {
        protocol::len(self.mem.header()) as usize
    }

    /// No record waiting (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Consumer<RECORD_SIZE> {
    /// Takes and decodes the next record. An invalid one is counted
    /// ([`Consumer::report_invalid`]) and returned as the error; the ring moves past it.
    pub fn try_pop_message(&mut self, limits: &Limits) -> Option<Result<Message, DecodeError>> {
        let record = self.try_pop()?;
        let decoded = Message::decode(&record, limits);
        if decoded.is_err() {
            self.report_invalid();
        }
        Some(decoded)
    }
}

impl<const N: usize> Drop for Consumer<N> {
    fn drop(&mut self) {
        self.mem.header().consumer.release(self.pid);
    }
}
