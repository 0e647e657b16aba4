//! `quantum-redis`: the legacy Redis contract, kept, and the bridge that keeps it
//! (`quantum bridge redis`).
//!
//! [`legacy`] owns the contract itself: the names of the streams and keys the legacy services
//! and their operators use, the JSON shapes of the permits, the fields of a plan entry and of a
//! result entry, and how a plan entry is read (flat fields, or one JSON `payload`/`data` field;
//! numbers as JSON numbers or decimal strings). Everything that writes or reads those shapes
//! (the bridge, `quantum ctl tail --json`, `quantum ctl inject`) uses it.
//!
//! The bridge, both directions:
//!
//! ```text
//!  exit brain ─XADD─> quantum:stream:apply.plan ──XREADGROUP (group, own connection)──┐
//!                          ▲ XACK once the core answered                               │ stream
//!                          │ (it made the plan durable)                                 ▼
//!  quantum:stream:apply.plan.dlq <── entries that cannot be read ──────────── [session loop] ─ plan_entry
//!  HSET quantum:position:S ledger_amount[_long|_short] ─notification / re-read─> ledger ─> │
//!  SET quantum:permit:… (legacy issuers, --permits-from redis) ──────────> permits_in ─> │
//!                                                                    quantum.<i>.plans ring
//!                                                                             ▼
//!                                                                     quantum run (core)
//!                                                                             │
//!                                                  quantum.<i>.results ring (broadcast)
//!                                                  reader thread; backfill when lapped
//!                                                                             ▼
//!  quantum:permit:<id>, quantum:permit:p33:<id> (SET … PX ttl)      <── [session loop]
//!  quantum:stream:apply.result (one entry per plan; results)        <── one MULTI/EXEC per
//!  quantum:position:S (exchange_amount, mark_price, updated_at,     <── round (batch), with
//!                      ledger_amount; per side in hedge mode)           the bridge's state
//! ```
//!
//! Invariants:
//! - a plan entry is acknowledged only after the core's answer for it (`PlanAccepted`, or a
//!   result given at once), so an entry lost in a dead daemon's ring is delivered again from
//!   the pending list; an entry is pushed again only if the core never answered it
//!   ([`inflight`]);
//! - every write is in a MULTI/EXEC with the bridge's state ([`state`], [`batch`]): a restarted
//!   bridge resumes where Redis says and writes nothing twice; a result entry is written with
//!   its plan's `answered` key and never for a plan that has one, so a plan answered again
//!   (redelivered, re-pushed to a restarted daemon) still has one result entry ([`results`],
//!   [`batch::RESULT_SCRIPT`]);
//! - the bridge never blocks the core: `results` never waits for it, a slow or dead Redis makes
//!   the bridge back off and fall behind on the ring, and what the ring no longer holds comes
//!   from [`backfill`] (the daemon's journal);
//! - the bridge's own writes to a position hash never come back as ledger commands, nor cost a
//!   read of the hash ([`ledger`]);
//! - a gap in the events is filled from the journal a bounded chunk at a time, and a failed read
//!   is retried, never skipped ([`backfill`]).
//!
//! The bridge also times the legacy path live ([`legs`]): stream entry → permit keys → result
//! entry, per plan it answers, as HdrHistograms in its own counters segment
//! (`quantum.<instance>.latency-redis`, read by `quantum ctl latency`) and, with `--hdr-log`,
//! an interval log.
//!
//! With failover on (the daemon's `[failover]`), the bridge also holds the host's lease in
//! Redis ([`lease`]): it claims plan entries only while its host may act, writes results and
//! mirrors only while it leads, fenced by the lease's epoch, and acknowledges a plan entry only
//! in the script that writes its result. Fills it books in any role, by their increase, once
//! per plan and cumulative quantity ([`batch::BOOK_FILL_SCRIPT`]); a core that took the lead
//! is answered the shared ledger of each symbol it asks for ([`session`]).
//!
//! The core's symbol ids are legs ([`rings::Symbols`]): a one-way symbol is one (`BTCUSDT`), a
//! hedge-mode one two (`ETHUSDT:LONG`, `ETHUSDT:SHORT`). Everything written names the
//! exchange symbol; a hedge leg's side has fields of its own ([`legacy`]).
//!
//! This crate never depends on another adapter; it uses `quantum-core` for pure types only.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod backfill;
pub mod batch;
pub mod bridge;
pub mod cli;
pub mod config;
pub mod conn;
pub mod error;
pub mod inflight;
pub mod lease;
pub mod ledger;
pub mod legacy;
pub mod legs;
pub mod notify;
pub mod permits_in;
pub mod plan_entry;
pub mod results;
pub mod rings;
pub mod session;
pub mod state;
pub mod stats;
pub mod stream;

pub use config::{BridgeConfig, PermitsFrom};
pub use error::{Error, Result};
