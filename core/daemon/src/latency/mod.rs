//! Latency of a running core (`quantum run --hdr-log FILE`, `quantum ctl latency`) and the
//! HdrHistogram report every latency figure of the workspace is printed with ([`report`]).
//!
//! ```text
//!  daemon I/O thread (hot path)             writer thread (once per interval)
//!  ─────────────────────────────            ────────────────────────────────────────────
//!  RxStamps::note(plan, rx)  on ring pop     interval histograms ──> interval log (tagged
//!  Recorder::record(&Stamps) on intent out                           per stage, the standard
//!  Recorder::tick(now)       every loop        │                     HdrHistogram format)
//!     └─ hands the full interval over ─────────┘──> percentile gauges in the counters
//!        and takes an empty one back                 segment (`latency.<stage>.p50_ns` …)
//!                                                   └─> `quantum ctl latency`, `ctl metrics`, `ctl top`
//! ```
//!
//! The hot path records into preallocated histograms and swaps buffers; it never allocates,
//! formats or writes a file. [`stages`] owns the stage names and the counter labels (the
//! reader in `quantum ctl latency` uses the same functions); [`probe`] is the I/O thread's
//! side of it.

pub mod gauges;
pub(crate) mod probe;
pub mod read;
pub mod recorder;
pub mod report;
pub mod stages;
pub mod writer;

pub use gauges::Gauges;
pub use recorder::{Recorder, RxStamps};
pub use stages::{Stage, Stamps};
