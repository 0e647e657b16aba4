//! The broadcast ring in a shared-memory segment or an aligned heap buffer.

use std::sync::Arc;
use std::time::Duration;

use super::protocol::{self, BSlot, BSlots, Cursor, WORDS};
use crate::doorbell::{Bell, Wait, NAMED};
use crate::error::{Error, Role};
use crate::liveness::{clock_ms, PeerStatus, SideState};
use crate::ring::RingSpec;
use crate::segment::{Geometry, Preamble, TailLine, BROADCAST_MAGIC};
use crate::sync::{AtomicU64, Ordering, Padded};
use crate::wire::{Record, LAYOUT_HASH, RECORD_SIZE};

/// Reader entries in the header.
pub const MAX_READERS: usize = 8;

// Each reader entry has its own sleeper mark in the doorbell.
const _: () = assert!(MAX_READERS <= NAMED as usize);

/// Bytes from one slot to the next: the marker and 64 payload bytes, padded to 128 so a slot
/// never straddles a pair of cache lines.
const STRIDE: usize = 128;

/// Largest capacity accepted.
const MAX_CAPACITY: u64 = 1 << 24;

#[repr(C)]
#[derive(Debug, Default)]
struct Meta {
    /// Its `aux` word is the payload bytes per slot ([`RECORD_SIZE`]).
    preamble: Preamble,
    geometry: Geometry,
    /// Sequence number of position 0.
    base_seq: AtomicU64,
}

#[repr(C)]
#[derive(Debug, Default)]
struct ReaderEntry {
    side: SideState,
    /// The reader's next position (published now and then; monitoring only).
    position: AtomicU64,
    /// Records it missed.
    missed: AtomicU64,
}

#[repr(C)]
#[derive(Debug, Default)]
struct Header {
    meta: Padded<Meta>,
    writer: Padded<SideState>,
    /// Records ever published (`pos`, written by the writer only), and the readers' doorbell.
    tail: Padded<TailLine>,
    readers: [Padded<ReaderEntry>; MAX_READERS],
}

/// Slots in shared memory or the heap.
struct Slots {
    base: std::ptr::NonNull<u8>,
    mask: u64,
}

impl BSlots for Slots {
    fn mask(&self) -> u64 {
        self.mask
    }
    fn slot(&self, index: usize) -> &BSlot {
        debug_assert!(index as u64 <= self.mask);
        // SAFETY: `index <= mask`, so the slot lies inside the buffer sized for
        // `(mask + 1) * STRIDE` bytes after the header; it is 128-aligned (base and stride are),
        // made of atomics only (any bit pattern is valid), and lives as long as `self`.
        unsafe { &*(self.base.as_ptr().add(index * STRIDE) as *const BSlot) }
    }
}

#[cfg(not(loom))]
enum Backing {
    Shm(crate::shm::Segment),
    Heap(HeapBuf),
}

#[cfg(not(loom))]
struct HeapBuf {
    ptr: std::ptr::NonNull<u8>,
    layout: std::alloc::Layout,
}

#[cfg(not(loom))]
impl Drop for HeapBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `Broadcast::heap` with exactly this layout, freed only here.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

struct Mem {
    #[cfg(not(loom))]
    _backing: Backing,
    header: std::ptr::NonNull<Header>,
    slots: Slots,
    os_id: String,
    capacity: u64,
}

// SAFETY: the memory is only accessed through atomics; the writer role is claimed exclusively.
unsafe impl Send for Mem {}
// SAFETY: as above.
unsafe impl Sync for Mem {}

impl Mem {
    fn header(&self) -> &Header {
        // SAFETY: `header` points at the start of the backing memory, which is at least a
        // header long, 128-aligned, lives as long as `self`, and holds only atomics.
        unsafe { self.header.as_ref() }
    }
}

/// A handle on a broadcast ring. Cheap to clone.
#[derive(Clone)]
pub struct Broadcast {
    mem: Arc<Mem>,
}

impl std::fmt::Debug for Broadcast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broadcast")
            .field("os_id", &self.mem.os_id)
            .field("capacity", &self.mem.capacity)
            .finish()
    }
}

fn check_capacity(os_id: &str, capacity: u64) -> Result<(), Error> {
    if capacity.is_power_of_two() && (2..=MAX_CAPACITY).contains(&capacity) {
        Ok(())
    } else {
        Err(Error::InvalidSpec {
            os_id: os_id.to_owned(),
            reason: "broadcast capacity must be a power of two from 2 to 2^24",
        })
    }
}

fn size_for(capacity: u64) -> usize {
    std::mem::size_of::<Header>() + capacity as usize * STRIDE
}

fn init_header(h: &Header, capacity: u64, base_seq: u64) {
    let m = &h.meta;
    m.geometry
        .init(capacity, STRIDE, std::mem::size_of::<Header>());
    // Relaxed: published by the Release store of the magic below.
    m.base_seq.store(base_seq, Ordering::Relaxed);
    m.preamble.init(RECORD_SIZE as u32, LAYOUT_HASH, clock_ms());
    m.preamble.publish(BROADCAST_MAGIC);
}

#[cfg(not(loom))]
fn validate(h: &Header, len: usize, os_id: &str) -> Result<u64, Error> {
    let m = &h.meta;
    if m.preamble.check(os_id, BROADCAST_MAGIC, LAYOUT_HASH)? != RECORD_SIZE as u32 {
        return Err(Error::Corrupt {
            os_id: os_id.to_owned(),
            what: "slot size or stride does not match this binary",
        });
    }
    m.geometry.check(
        os_id,
        len,
        STRIDE,
        std::mem::size_of::<Header>(),
        |c| c.is_power_of_two() && (2..=MAX_CAPACITY).contains(&c),
        "capacity is not a power of two from 2 to 2^24",
    )
}

#[cfg(not(loom))]
impl Broadcast {
    /// Creates `quantum.<instance>.<name>` (mode 0600) with `spec.capacity` slots; position 0
    /// is sequence number `base_seq`. Fails if the segment exists.
    pub fn create(spec: &RingSpec, base_seq: u64) -> Result<Broadcast, Error> {
        let os_id = spec.os_id()?;
        let capacity = spec.capacity as u64;
        check_capacity(&os_id, capacity)?;
        let seg = crate::shm::Segment::create(&os_id, size_for(capacity))?;
        let b = Broadcast::wrap(Backing::Shm(seg), os_id, capacity)?;
        init_header(b.mem.header(), capacity, base_seq);
        Ok(b)
    }

    /// Attaches to an existing segment, refusing one of another layout or format version.
    pub fn open(spec: &RingSpec) -> Result<Broadcast, Error> {
        let os_id = spec.os_id()?;
        let seg = crate::shm::Segment::open(&os_id)?;
        if seg.len() < std::mem::size_of::<Header>() {
            return Err(Error::NotInitialised { os_id });
        }
        // SAFETY: the mapping is page-aligned and at least a header long; the header is all
        // atomics, for which any bit pattern is valid.
        let header = unsafe { &*(seg.as_ptr() as *const Header) };
        let capacity = validate(header, seg.len(), &os_id)?;
        Broadcast::wrap(Backing::Shm(seg), os_id, capacity)
    }

    /// A broadcast ring on the heap (one process: tests, benchmarks, the demo).
    pub fn heap(capacity: usize, base_seq: u64) -> Result<Broadcast, Error> {
        let os_id = "heap".to_owned();
        check_capacity(&os_id, capacity as u64)?;
        let layout =
            std::alloc::Layout::from_size_align(size_for(capacity as u64), 128).map_err(|_| {
                Error::InvalidSpec {
                    os_id: os_id.clone(),
                    reason: "broadcast ring too large",
                }
            })?;
        // SAFETY: the layout's size is non-zero (the header alone is over 1 KiB).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let Some(ptr) = std::ptr::NonNull::new(ptr) else {
            std::alloc::handle_alloc_error(layout)
        };
        let b = Broadcast::wrap(
            Backing::Heap(HeapBuf { ptr, layout }),
            os_id,
            capacity as u64,
        )?;
        init_header(b.mem.header(), capacity as u64, base_seq);
        Ok(b)
    }

    fn wrap(backing: Backing, os_id: String, capacity: u64) -> Result<Broadcast, Error> {
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
        // SAFETY: the memory is `size_for(capacity)` bytes (checked by `validate` for opened
        // segments), so the slots start inside it, right after the header.
        let slot_base = unsafe { base.add(std::mem::size_of::<Header>()) };
        let mem = Mem {
            _backing: backing,
            header: base.cast::<Header>(),
            slots: Slots {
                base: slot_base,
                mask: capacity - 1,
            },
            os_id,
            capacity,
        };
        Ok(Broadcast { mem: Arc::new(mem) })
    }
}

/// Where a new reader starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The oldest record still in the ring.
    Oldest,
    /// The next record published (nothing already there).
    Live,
    /// The record with this sequence number (earlier ones the ring no longer holds are
    /// reported missed).
    Seq(u64),
}

/// A registered reader, as the header shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderInfo {
    /// Its liveness.
    pub status: PeerStatus,
    /// Its next sequence number.
    pub next_seq: u64,
    /// Records it missed so far.
    pub missed: u64,
}

impl Broadcast {
    /// Segment id.
    pub fn os_id(&self) -> &str {
        &self.mem.os_id
    }

    /// Slots.
    pub fn capacity(&self) -> usize {
        self.mem.capacity as usize
    }

    /// Sequence number of position 0.
    pub fn base_seq(&self) -> u64 {
        // Relaxed: written once before the magic was published.
        self.mem.header().meta.base_seq.load(Ordering::Relaxed)
    }

    /// Sequence number the next published record will have.
    pub fn next_seq(&self) -> u64 {
        // Acquire: pairs with the writer's Release store of `tail`.
        self.base_seq() + self.mem.header().tail.pos.load(Ordering::Acquire)
    }

    /// The writer's liveness.
    pub fn writer_status(&self, max_age_ms: u64) -> PeerStatus {
        self.mem.header().writer.status(max_age_ms)
    }

    /// Claims the writer role (one live writer at a time). A restarted writer carries on at
    /// the tail.
    pub fn writer(&self) -> Result<Writer, Error> {
        let h = self.mem.header();
        let pid = h.writer.claim(&self.mem.os_id, Role::Producer)?;
        // Acquire: pairs with the predecessor's Release store of `tail`.
        let pos = h.tail.pos.load(Ordering::Acquire);
        Ok(Writer {
            mem: self.mem.clone(),
            pos,
            pid,
        })
    }

    /// A new reader. It registers in the header's reader table if an entry is free.
    pub fn reader(&self, start: Start) -> Reader {
        let h = self.mem.header();
        let base = self.base_seq();
        let oldest = protocol::oldest_intact(&self.mem.slots, &h.tail.pos);
        // Acquire: pairs with the writer's Release store of `tail`.
        let tail = h.tail.pos.load(Ordering::Acquire);
        let (pos, gap) = match start {
            Start::Oldest => (oldest, None),
            Start::Live => (tail, None),
            Start::Seq(s) if s < base => (0, Some((s, base))),
            Start::Seq(s) => ((s - base).min(tail), None),
        };
        let entry = h.readers.iter().position(|e| {
            !e.side.status(u64::MAX).is_alive()
                && e.side.claim(&self.mem.os_id, Role::Consumer).is_ok()
        });
        if let Some(i) = entry {
            // A predecessor in this entry killed asleep left its mark: it sleeps no more.
            h.tail.bell.clear_named(i);
        }
        let r = Reader {
            mem: self.mem.clone(),
            cursor: Cursor { pos, missed: 0 },
            gap,
            entry,
            pid: u64::from(std::process::id()),
        };
        r.publish_position();
        r
    }

    /// The registered readers.
    pub fn readers(&self, max_age_ms: u64) -> Vec<ReaderInfo> {
        let base = self.base_seq();
        self.mem
            .header()
            .readers
            .iter()
            .filter_map(|e| {
                let status = e.side.status(max_age_ms);
                // Relaxed: monitoring values.
                (status != PeerStatus::NeverAttached).then(|| ReaderInfo {
                    status,
                    next_seq: base + e.position.load(Ordering::Relaxed),
                    missed: e.missed.load(Ordering::Relaxed),
                })
            })
            .collect()
    }
}

fn to_words(r: &Record) -> [u64; WORDS] {
    std::array::from_fn(|i| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&r[8 * i..8 * i + 8]);
        u64::from_le_bytes(w)
    })
}

fn from_words(w: &[u64; WORDS]) -> Record {
    let mut r = [0u8; RECORD_SIZE];
    for (i, v) in w.iter().enumerate() {
        r[8 * i..8 * i + 8].copy_from_slice(&v.to_le_bytes());
    }
    r
}

/// The writing end. Dropping it lets go of the role.
pub struct Writer {
    mem: Arc<Mem>,
    pos: u64,
    pid: u64,
}

impl Writer {
    /// Publishes `record`; returns its sequence number. Never waits.
    #[inline]
    pub fn publish(&mut self, record: &Record) -> u64 {
        let h = self.mem.header();
        protocol::write(&self.mem.slots, &h.tail.pos, self.pos, &to_words(record));
        h.tail.bell.ring();
        let seq = self.next_seq();
        self.pos += 1;
        seq
    }

    /// The sequence number the next record gets.
    pub fn next_seq(&self) -> u64 {
        // Relaxed: written once before the magic was published.
        self.mem.header().meta.base_seq.load(Ordering::Relaxed) + self.pos
    }

    /// Marks the writer alive.
    #[inline]
    pub fn heartbeat(&self) {
        self.mem.header().writer.heartbeat();
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.mem.header().writer.release(self.pid);
    }
}

/// What a reader found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The record with sequence number `seq`.
    Record {
        /// Its sequence number.
        seq: u64,
        /// The record.
        record: Record,
    },
    /// Nothing new yet.
    Empty,
    /// Records `from_seq .. to_seq` are not in the ring any more: the writer lapped this
    /// reader (or it asked for records older than the ring). A reader that must see
    /// everything reads them from the journal.
    Missed {
        /// First sequence number missed.
        from_seq: u64,
        /// First sequence number the reader continues with.
        to_seq: u64,
    },
}

/// A reading end. Dropping it frees its entry in the reader table.
pub struct Reader {
    mem: Arc<Mem>,
    cursor: Cursor,
    /// Sequence numbers before `base_seq` the caller asked for, reported once as missed.
    gap: Option<(u64, u64)>,
    entry: Option<usize>,
    pid: u64,
}

impl Reader {
    /// The next record, if any. Never waits and never slows the writer.
    #[inline]
    pub fn read(&mut self) -> Next {
        if let Some((from_seq, to_seq)) = self.gap.take() {
            self.cursor.missed += to_seq - from_seq;
            return Next::Missed { from_seq, to_seq };
        }
        let base = self.base();
        match self
            .cursor
            .next(&self.mem.slots, &self.mem.header().tail.pos)
        {
            protocol::Next::Record(p, w) => Next::Record {
                seq: base + p,
                record: from_words(&w),
            },
            protocol::Next::Empty => Next::Empty,
            protocol::Next::Missed { from, to } => Next::Missed {
                from_seq: base + from,
                to_seq: base + to,
            },
        }
    }

    fn base(&self) -> u64 {
        // Relaxed: written once before the magic was published.
        self.mem.header().meta.base_seq.load(Ordering::Relaxed)
    }

    /// Whether [`Reader::read`] has something to say (a record, or records missed), without
    /// reading: the `has_work` of a [`crate::doorbell::wait_any`] on this ring.
    #[inline]
    pub fn ready(&self) -> bool {
        // Acquire: pairs with the writer's Release store of `tail` in `protocol::write` (only
        // the value is used; `read` loads the slot's marker itself).
        self.gap.is_some() || self.mem.header().tail.pos.load(Ordering::Acquire) > self.cursor.pos
    }

    /// This reader's bell on the ring's doorbell, rung by every publish: a registered reader
    /// has its entry's own mark, an unlisted one an anonymous one.
    pub fn bell(&self) -> Bell<'_> {
        let door = &self.mem.header().tail.bell;
        match self.entry {
            Some(i) => door.named(i),
            None => door.bell(),
        }
    }

    /// Sleeps until the writer publishes or `timeout` passes, unless there is something to
    /// read already ([`Reader::ready`], checked after the sleep is announced, so a record
    /// published meanwhile is never slept through).
    pub fn wait(&self, timeout: Duration) -> Wait {
        self.bell().wait(timeout, || self.ready())
    }

    /// The sequence number of the next record this reader will read.
    pub fn next_seq(&self) -> u64 {
        self.base() + self.cursor.pos
    }

    /// Records missed so far.
    pub fn missed(&self) -> u64 {
        self.cursor.missed
    }

    /// Whether this reader got an entry in the header's reader table.
    pub fn is_registered(&self) -> bool {
        self.entry.is_some()
    }

    fn publish_position(&self) {
        if let Some(i) = self.entry {
            let e = &self.mem.header().readers[i];
            // Relaxed: monitoring values only.
            e.position.store(self.cursor.pos, Ordering::Relaxed);
            e.missed.store(self.cursor.missed, Ordering::Relaxed);
        }
    }

    /// Marks the reader alive and publishes its position for monitors.
    pub fn heartbeat(&self) {
        if let Some(i) = self.entry {
            self.mem.header().readers[i].side.heartbeat();
        }
        self.publish_position();
    }

    /// The writer's liveness.
    pub fn writer_status(&self, max_age_ms: u64) -> PeerStatus {
        self.mem.header().writer.status(max_age_ms)
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(i) = self.entry {
            self.publish_position();
            self.mem.header().readers[i].side.release(self.pid);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::wire::{Message, Raw};

    fn raw(seq: u64) -> Record {
        Message::Raw(Raw::for_seq(seq, 0)).encode()
    }

    #[test]
    fn readers_follow_the_writer_and_are_told_what_they_missed() {
        let b = Broadcast::heap(8, 1000).unwrap();
        let mut w = b.writer().unwrap();
        let mut fast = b.reader(Start::Live);
        let mut slow = b.reader(Start::Live);
        assert!(fast.is_registered() && slow.is_registered());
        for i in 0..5 {
            assert_eq!(w.publish(&raw(i)), 1000 + i);
            assert_eq!(
                fast.read(),
                Next::Record {
                    seq: 1000 + i,
                    record: raw(i)
                }
            );
        }
        for i in 5..20 {
            w.publish(&raw(i));
        }
        // slow is at 1000; the ring holds 8 slots, the tail is 20: 13..20 are intact.
        assert_eq!(
            slow.read(),
            Next::Missed {
                from_seq: 1000,
                to_seq: 1013
            }
        );
        for i in 13..20 {
            assert!(matches!(slow.read(), Next::Record { seq, .. } if seq == 1000 + i));
        }
        assert_eq!(slow.read(), Next::Empty);
        assert_eq!(slow.missed(), 13);
        slow.heartbeat();
        let infos = b.readers(10_000);
        assert_eq!(infos.len(), 2);
        assert!(infos.iter().any(|r| r.missed == 13 && r.next_seq == 1020));
        // Asking for what precedes the ring reports the gap first.
        let mut old = b.reader(Start::Seq(990));
        assert_eq!(
            old.read(),
            Next::Missed {
                from_seq: 990,
                to_seq: 1000
            }
        );
        assert_eq!(b.next_seq(), 1020);
    }

    #[test]
    fn a_restarted_writer_carries_on_at_the_tail() {
        let b = Broadcast::heap(4, 0).unwrap();
        let mut r = b.reader(Start::Oldest);
        {
            let mut w = b.writer().unwrap();
            w.publish(&raw(0));
            w.publish(&raw(1));
        }
        let mut w = b.writer().unwrap();
        assert_eq!(w.next_seq(), 2);
        w.publish(&raw(2));
        let seqs: Vec<u64> = std::iter::from_fn(|| match r.read() {
            Next::Record { seq, .. } => Some(seq),
            _ => None,
        })
        .collect();
        assert_eq!(seqs, vec![0, 1, 2]);
    }
}
