//! `quantum-core`: the permit chain in memory.
//!
//! Owns the domain types ([`types`], [`fixed`]), the lock-free [`permit`] table in which the
//! governor's and P3.3's permits meet, the stages ([`governor`], [`p33`], [`apply`]), the
//! per-symbol book ([`ledger`]) and their wiring ([`engine`], [`runner`]).
//!
//! Invariants the crate keeps:
//! - **No I/O and no async runtime.** Adapters feed [`engine::Input`]s in and take
//!   [`result::PlanResult`]s out; logging is formatting into a caller's writer.
//! - **No `f64`** in quantities, tolerances or ledger arithmetic: [`fixed`] is exact.
//! - **No allocation after start-up** on the plan path: tables, maps and queues are sized once.
//! - **A plan is ordered at most once**: dedupe by plan id, and both permits are consumed by a
//!   single compare-and-swap that exactly one caller can win.
//! - **Every atomic comes from [`sync`]**, so loom can check the lock-free protocols
//!   (`RUSTFLAGS="--cfg loom" cargo test -p quantum-core --test loom --release`).
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, missing_docs)]
#![forbid(unsafe_code)]

mod sync;

pub mod fixed;
pub mod idmap;
pub mod ledger;
pub mod permit;
pub mod types;

#[cfg(not(loom))]
pub mod apply;
#[cfg(not(loom))]
pub mod clock;
#[cfg(not(loom))]
pub mod config;
#[cfg(not(loom))]
pub mod engine;
#[cfg(not(loom))]
pub mod governor;
#[cfg(not(loom))]
pub mod p33;
#[cfg(not(loom))]
pub mod result;
#[cfg(not(loom))]
pub mod runner;
#[cfg(not(loom))]
pub mod wait;

#[cfg(not(loom))]
pub use {
    clock::Clock,
    config::{EngineConfig, SymbolSpec},
    engine::{Command, Engine, Input},
    fixed::{Price, Qty, Score},
    result::{Block, Outcome, PlanResult},
    runner::{Mode, Runner, RunnerConfig},
    types::{Action, ClientOrderId, Decision, OrderIntent, Plan, PlanId, Side, SymbolId},
};
