//! Shared-memory IPC for the quantum core: wire records, SPSC rings, liveness and counters.
//!
//! This crate owns everything that crosses a process boundary on one host:
//!
//! - [`wire`]: 64-byte `repr(C)` records with a tag byte, encoded and decoded explicitly
//!   (little-endian, field by field); decoding validates every byte and never panics.
//!   [`wire::LAYOUT_HASH`] identifies the layouts.
//! - [`ring`]: single-producer single-consumer rings over named segments
//!   `/dev/shm/quantum.<instance>.<ring>` (mode 0600), with commit markers per slot so a
//!   producer killed mid-write never exposes a torn record, and cursors in the segment so a
//!   restarted peer carries on.
//! - [`liveness`]: pids and heartbeats of each ring's peers; [`shm`]: listing and removing
//!   segments of dead instances.
//! - [`bigmem`]: fixed-length arrays for the core's large tables, in mappings advised for
//!   transparent huge pages.
//! - [`counters`]: labelled `u64` counters and a symbol directory that `quantum ctl` reads
//!   without disturbing the writer.
//!
//! Invariants the crate keeps: a segment of another layout or format version is refused with
//! one sentence naming both; a corrupt header is an error, never a panic; a full ring is never
//! overwritten; every atomic comes from the `sync` module, which swaps in `loom` under
//! `cfg(loom)` so the ring protocol is model-checked with the code that runs in production.
//!
//! This crate never depends on `quantum-core` or on adapters.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, missing_docs)]

pub mod bigmem;
pub mod broadcast;
#[cfg(not(loom))]
mod cleanup;
pub mod codes;
pub mod contract;
#[cfg(not(loom))]
pub mod counters;
pub mod error;
#[cfg(not(loom))]
pub mod failpoint;
pub mod idle;
#[cfg(not(loom))]
pub mod journal;
pub mod liveness;
mod names;
pub mod ring;
mod segment;
#[cfg(not(loom))]
pub mod shm;
mod sync;
pub mod wire;

#[cfg(not(loom))]
pub use broadcast::Broadcast;
#[cfg(not(loom))]
pub use cleanup::{remove_stale_segments, Cleanup};
#[cfg(not(loom))]
pub use counters::{CounterId, CountersReader, CountersWriter};
pub use error::{CursorFault, Error, Full, Role};
pub use liveness::PeerStatus;
pub use ring::{Consumer, Producer, Ring, RingSpec, RingStats};
#[cfg(not(loom))]
pub use shm::{list_segments, remove_segment, SegmentInfo, SegmentKind};
pub use wire::{DecodeError, Limits, Message, LAYOUT_HASH};
