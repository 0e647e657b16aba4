//! `quantum-ipc` is everything the quantum processes of one host share with each other: what
//! crosses a process boundary (records, codes, names, shared-memory segments, the journal) and
//! the primitives every process uses to move it.
//!
//! Its modules, each the one owner of its fact:
//!
//! - [`wire`]: the 64-byte `repr(C)` records with a tag byte, encoded and decoded explicitly
//!   (little-endian, field by field); decoding validates every byte and never panics.
//!   [`wire::LAYOUT_HASH`] identifies the layouts.
//! - [`codes`]: every code a record carries (decisions, reasons, statuses), with its wire
//!   number and its text.
//! - [`contract`]: the process contract of an instance: its rings, their directions, who
//!   produces and who consumes each, and which records each carries.
//! - [`ring`]: single-producer single-consumer rings over named segments
//!   `/dev/shm/quantum.<instance>.<ring>` (mode 0600), with commit markers per slot so a
//!   producer killed mid-write never exposes a torn record, and cursors in the segment so a
//!   restarted peer carries on.
//! - [`broadcast`]: the broadcast ring (`results`): one writer, any number of readers, none
//!   ever holding the writer back.
//! - [`journal`]: the engine's events appended in order to checksummed, memory-mapped segment
//!   files, and the snapshots of the core's state; replaying it rebuilds the core.
//! - [`counters`]: labelled `u64` counters and a symbol directory that `quantum ctl` reads
//!   without disturbing the writer.
//! - [`lease`]: the failover lease as this host's processes see it (role, epoch, the
//!   deadline and the takeover fence on the shared boot clock), published by the lease holder.
//! - [`latency`]: live latency of a process: HdrHistograms per series, an interval log and
//!   percentile gauges in a counters segment (the daemon and both bridges record with it).
//! - [`liveness`]: pids and heartbeats of each ring's peers.
//! - `segment`: the preamble every segment starts with (magic, format version, layout, owner)
//!   and the one check of a segment's header, used by rings, broadcast rings and counters.
//! - [`shm`]: creating, mapping, listing and removing named segments; `cleanup`: removing the
//!   segments of dead instances ([`remove_stale_segments`]).
//! - `names`: segment ids (`quantum.<instance>.<name>`) and the names allowed in them.
//! - [`doorbell`]: how a consumer sleeps until its producer in another process publishes (a
//!   futex word in the ring's header, rung after each push; one ring or several at once).
//! - [`idle`]: the one idle strategy (spin, yield, then bounded parks, with an early wake-up)
//!   of the rings, the core's runner and the daemon's loop.
//! - [`bigmem`]: fixed-length arrays for the core's large tables, in mappings advised for
//!   transparent huge pages.
//! - [`failpoint`]: the named crash points of the crash test ([`failpoint::Point`]).
//! - [`error`]: the errors of segments, rings and counters, one sentence each naming the
//!   segment.
//! - `sync`: the one place atomics come from (loom's under `cfg(loom)`).
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
pub mod doorbell;
pub mod error;
#[cfg(not(loom))]
pub mod failpoint;
pub mod idle;
#[cfg(not(loom))]
pub mod journal;
#[cfg(not(loom))]
pub mod latency;
#[cfg(not(loom))]
pub mod lease;
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
