//! `quantum-redis`: the legacy Redis contract, kept.
//!
//! [`legacy`] owns the contract itself: the names of the streams and keys the legacy services
//! and their operators use, the JSON shapes of the permits, the fields of a plan entry and of a
//! result entry, and how a plan entry is read (flat fields, or one JSON `payload`/`data` field;
//! numbers as JSON numbers or decimal strings). Everything that writes or reads those shapes
//! (the Redis bridge, `quantum ctl tail --json`, `quantum ctl inject`) uses it.
//!
//! This crate never depends on another adapter; it uses `quantum-core` for pure types only.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod legacy;
