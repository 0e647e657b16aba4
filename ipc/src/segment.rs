//! The preamble every quantum segment starts with, and the one check of it.
//!
//! Rings, broadcast rings and the counters segment all begin with the same 40 bytes at fixed
//! offsets, so tools tell what a segment is and who owns it without knowing its version:
//! `magic u64 @0, format_version u32 @8, aux u32 @12, layout_hash u64 @16, owner_pid u64 @24,
//! created_ms u64 @32`. The creator writes every field, then publishes them by storing the
//! magic last (Release); an opener loads the magic first (Acquire), so seeing it means seeing
//! the rest. A segment of another kind, format version or layout is refused with one error
//! naming both sides.

use crate::doorbell::Doorbell;
use crate::error::Error;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::wire::FORMAT_VERSION;

/// Magic of a ring segment ("QNTMRING").
pub(crate) const RING_MAGIC: u64 = u64::from_le_bytes(*b"QNTMRING");
/// Magic of a broadcast segment ("QNTMBCST").
#[cfg_attr(loom, allow(dead_code))] // broadcast segments are not built under loom
pub(crate) const BROADCAST_MAGIC: u64 = u64::from_le_bytes(*b"QNTMBCST");
/// Magic of a counters segment ("QNTMCTRS").
#[cfg_attr(loom, allow(dead_code))] // the counters are not built under loom
pub(crate) const COUNTERS_MAGIC: u64 = u64::from_le_bytes(*b"QNTMCTRS");

/// The common preamble (40 bytes, `repr(C)`): the first field of every segment's header.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Preamble {
    pub(crate) magic: AtomicU64,
    pub(crate) format_version: AtomicU32,
    /// The kind's own word: a ring's slot size, a counters segment's capacity.
    pub(crate) aux: AtomicU32,
    pub(crate) layout_hash: AtomicU64,
    pub(crate) owner_pid: AtomicU64,
    pub(crate) created_ms: AtomicU64,
}

impl Preamble {
    /// Writes the creator's fields (this binary's format version, this process, now). The
    /// segment is not visible as initialised until [`Preamble::publish`].
    pub(crate) fn init(&self, aux: u32, layout_hash: u64, created_ms: u64) {
        // Relaxed: published by the Release store of `magic` in `publish`.
        self.format_version.store(FORMAT_VERSION, Ordering::Relaxed);
        self.aux.store(aux, Ordering::Relaxed);
        self.layout_hash.store(layout_hash, Ordering::Relaxed);
        self.owner_pid
            .store(u64::from(std::process::id()), Ordering::Relaxed);
        self.created_ms.store(created_ms, Ordering::Relaxed);
    }

    /// Publishes every field written before (the preamble's and the rest of the header's).
    pub(crate) fn publish(&self, magic: u64) {
        // SYNC POINT: Release pairs with the Acquire load of `magic` in `check`.
        self.magic.store(magic, Ordering::Release);
    }

    /// Checks that the segment `os_id` is initialised, of kind `magic`, and of this binary's
    /// format version and `layout_hash`; returns its `aux` word. Every other header field
    /// written before [`Preamble::publish`] may then be read with Relaxed loads.
    #[cfg_attr(loom, allow(dead_code))] // opening a segment is not built under loom
    pub(crate) fn check(&self, os_id: &str, magic: u64, layout_hash: u64) -> Result<u32, Error> {
        let os = || os_id.to_owned();
        // SYNC POINT: Acquire pairs with the creator's Release store in `publish`.
        let found = self.magic.load(Ordering::Acquire);
        if found == 0 {
            return Err(Error::NotInitialised { os_id: os() });
        }
        if found != magic {
            return Err(Error::BadMagic { os_id: os(), found });
        }
        // Relaxed below: ordered after the magic's Acquire; never written again.
        let version = self.format_version.load(Ordering::Relaxed);
        let layout = self.layout_hash.load(Ordering::Relaxed);
        if version != FORMAT_VERSION || layout != layout_hash {
            return Err(Error::LayoutMismatch {
                os_id: os(),
                found_layout: layout,
                found_version: version,
                expected_layout: layout_hash,
                expected_version: FORMAT_VERSION,
            });
        }
        Ok(self.aux.load(Ordering::Relaxed))
    }
}

/// The slot geometry a ring or broadcast ring keeps after its preamble (written once by the
/// creator, before the magic).
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Geometry {
    /// Slots, a power of two.
    pub(crate) capacity: AtomicU64,
    /// Bytes from one slot to the next.
    pub(crate) stride: AtomicU64,
    /// Bytes before the first slot.
    pub(crate) header_size: AtomicU64,
}

impl Geometry {
    /// Writes the geometry (published with the preamble's magic).
    pub(crate) fn init(&self, capacity: u64, stride: usize, header_size: usize) {
        // Relaxed: published by the Release store of the preamble's `magic`.
        self.capacity.store(capacity, Ordering::Relaxed);
        self.stride.store(stride as u64, Ordering::Relaxed);
        self.header_size
            .store(header_size as u64, Ordering::Relaxed);
    }

    /// Checks the geometry of a segment of `len` bytes whose preamble passed
    /// [`Preamble::check`]: a capacity `capacity_ok` accepts (else corrupt with
    /// `capacity_says`), this binary's `stride` and `header_size`, and room for every slot.
    /// Returns the capacity.
    #[cfg_attr(loom, allow(dead_code))] // opening a segment is not built under loom
    pub(crate) fn check(
        &self,
        os_id: &str,
        len: usize,
        stride: usize,
        header_size: usize,
        capacity_ok: impl Fn(u64) -> bool,
        capacity_says: &'static str,
    ) -> Result<u64, Error> {
        let corrupt = |what| Error::Corrupt {
            os_id: os_id.to_owned(),
            what,
        };
        // Relaxed: ordered after the preamble's Acquire of the magic; never written again.
        let capacity = self.capacity.load(Ordering::Relaxed);
        if !capacity_ok(capacity) {
            return Err(corrupt(capacity_says));
        }
        if self.stride.load(Ordering::Relaxed) != stride as u64 {
            return Err(corrupt("slot stride does not match the slot size"));
        }
        if self.header_size.load(Ordering::Relaxed) != header_size as u64 {
            return Err(corrupt("header size does not match this binary"));
        }
        if (len as u64) < header_size as u64 + capacity * stride as u64 {
            return Err(corrupt("segment is shorter than its capacity needs"));
        }
        Ok(capacity)
    }
}

/// The producer's cursor line of a ring or broadcast ring: the cursor, and the doorbell its
/// consumers sleep on, in 8 bytes the 128-byte line had spare. A segment made by a binary from
/// before the doorbell holds zeros there, which is an idle doorbell: such a ring is opened as
/// before (same header size, layout and format version); a peer of the older binary never
/// rings or never sleeps on it, so a consumer waiting for it wakes by its timeout, as it did.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct TailLine {
    /// Records ever published. Written by the producer only.
    pub(crate) pos: AtomicU64,
    /// Rung by the producer after each publish; its `sleepers` word is the one thing in this
    /// line a consumer writes, and only when it goes to sleep.
    pub(crate) bell: Doorbell,
}

// The doorbell fits the spare bytes of the cursor's line: the header keeps its size.
#[cfg(not(loom))]
const _: () = {
    assert!(std::mem::size_of::<crate::sync::Padded<TailLine>>() == 128);
    assert!(std::mem::size_of::<Doorbell>() == 8);
};

// The preamble's offsets are read by `crate::shm` from the file without mapping it.
#[cfg(not(loom))]
const _: () = {
    assert!(std::mem::size_of::<Preamble>() == 40);
    assert!(std::mem::offset_of!(Preamble, aux) == 12);
    assert!(std::mem::offset_of!(Preamble, owner_pid) == 24);
    assert!(std::mem::offset_of!(Preamble, created_ms) == 32);
};
