//! The ring segment header: five 128-byte lines in front of the slots.
//!
//! ```text
//! line 0  Meta      magic, format version, slot size, layout hash, owner pid, created,
//!                   capacity, stride, header size   (written once by the creator)
//! line 1  producer  pid, state, heartbeat, attaches, full events, backoffs
//! line 2  consumer  pid, state, heartbeat, attaches, invalid records, backoffs
//! line 3  tail      the producer's cursor, and the consumer's doorbell (see `TailLine`)
//! line 4  head      the consumer's cursor
//! line 5-6 journal  the identity and directory of the journal the consumer (the core daemon)
//!                   keeps the ring's records in  (written by the daemon that creates or adopts it)
//! ```
//!
//! Each line is written by one side only, so the sides never false-share; the cursors
//! are alone on their lines because they are the only fields written per record. One
//! exception: a consumer going to sleep announces itself in the doorbell on the tail's line,
//! which the producer reads after each publish (it just wrote that line, so while nobody
//! sleeps the read hits its own cache).

use crate::liveness::SideState;
use crate::segment::{Geometry, Preamble, TailLine};
use crate::sync::{AtomicU64, Padded};

/// Written once by the creator and published by the preamble's magic (see
/// [`crate::segment`]). The preamble's `aux` word is the payload bytes per slot: 64 or 128.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Meta {
    pub(crate) preamble: Preamble,
    pub(crate) geometry: Geometry,
}

#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RingHeader {
    pub(crate) meta: Padded<Meta>,
    pub(crate) producer: Padded<SideState>,
    pub(crate) consumer: Padded<SideState>,
    /// Producer cursor (`pos`): records ever published. Invariant: `head <= tail <= head +
    /// capacity`. With the consumer's doorbell.
    pub(crate) tail: Padded<TailLine>,
    /// Consumer cursor: records ever consumed.
    pub(crate) head: Padded<AtomicU64>,
    /// Whose journal the records belong to (see [`JournalStamp`]).
    pub(crate) journal: Padded<JournalStamp>,
}

/// Words of [`JournalStamp::dir`]: with the two words before it, the stamp fills two lines.
pub(crate) const STAMP_DIR_WORDS: usize = 30;

/// The journal a ring's consumer keeps the ring's records in: a daemon that opened another
/// journal must not take the ring over (its records and its producers' re-deliveries would be
/// judged without the history they belong to). Written once by the daemon that creates the
/// ring, or that adopts one never stamped; `id` is stored last (Release) and read first
/// (Acquire), so a reader that sees a non-zero id sees the directory written before it.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct JournalStamp {
    /// The journal's random identity; 0: none recorded.
    pub(crate) id: AtomicU64,
    /// Bytes of `dir` in use (a longer path keeps its last bytes, see `Ring::stamp_journal`).
    pub(crate) dir_len: AtomicU64,
    /// The journal directory, UTF-8, packed little-endian eight bytes a word.
    pub(crate) dir: [AtomicU64; STAMP_DIR_WORDS],
}

/// Bytes of a slot's commit marker (its sequence number) in front of the payload.
pub(crate) const SEQ_BYTES: usize = 8;

/// Bytes per slot for a payload size: marker plus payload, rounded up to a power of two so
/// slots never straddle a 128-byte line pair (64 → 128, 128 → 256).
pub(crate) fn stride_for(slot_size: usize) -> usize {
    (slot_size + SEQ_BYTES).next_power_of_two()
}

/// Largest capacity accepted (keeps a corrupt header from asking for a huge mapping size).
pub(crate) const MAX_CAPACITY: u64 = 1 << 24;
