//! Latency of a running core (`quantum run --hdr-log FILE`, `quantum ctl latency`). The
//! machinery (recorder, writer thread, interval log, gauges, the `.hgrm` report) is
//! `quantum_ipc::latency`, shared with the bridges; this module owns what the daemon records:
//! the [`stages`] of a plan's way through the core and the per-outcome decision series, and
//! [`probe`], the I/O thread's side of it.
//!
//! ```text
//!  daemon I/O thread (hot path)             writer thread (once per interval)
//!  ─────────────────────────────            ────────────────────────────────────────────
//!  Live::popped(plan, rx)    on ring pop     interval histograms ──> interval log (tagged
//!  Live::sent(stamps)        intent out                          per series, the standard
//!  Live::decided(plan, class) result out       │                 HdrHistogram format)
//!  Live::tick()              every loop        │
//!     └─ hands the full interval over ─────────┘──> percentile gauges in the counters
//!        and takes an empty one back                 segment (`latency.<series>.p50_ns` …)
//!                                                   └─> `quantum ctl latency`, `ctl metrics`, `ctl top`
//! ```
//!
//! The hot path records into preallocated histograms and swaps buffers; it never allocates,
//! formats or writes a file.

pub(crate) mod probe;
pub mod stages;

pub use quantum_ipc::latency::{gauges, read, recorder, report, writer, Gauges, Recorder};
pub use stages::{Stage, Stamps};
