//! `quantum-core`: the permit chain in memory and the one owner of every plan's lifecycle.
//!
//! Owns the domain types ([`types`], [`fixed`]), the lock-free [`permit`] table in which the
//! governor's and P3.3's permits meet, the stages ([`governor`], [`p33`], [`apply`]), the
//! per-symbol [`book`], the time-horizon [`dedupe`], the order lifecycle ([`orders`]), what the
//! engine consumes ([`input`]), the [`event`]s every state change emits and the wire form of
//! both ([`wire`]), [`recovery`] from them, the wiring ([`engine`], [`runner`]), and the bounded
//! memories of recent keys the adapters keep ([`bounded`]).
//!
//! Invariants the crate keeps:
//! - **No I/O and no async runtime.** Adapters feed [`Input`]s in and take
//!   [`event::Event`]s out; logging is formatting into a caller's writer.
//! - **One owner per fact.** The book, the dedupe set and the orders in flight change in one
//!   place, on one thread (the [`engine::Front`]); everything that crosses a process boundary
//!   (codes, record layouts, ring names) is `quantum_ipc`'s.
//! - **No `f64`** in quantities, tolerances or ledger arithmetic: [`fixed`] is exact, and every
//!   quantity from outside is range-checked before it moves the book.
//! - **No allocation after start-up** on the plan path: tables, maps and queues are sized once.
//! - **A plan is ordered at most once**: dedupe by plan id for a time horizon, and both permits
//!   are consumed by a single compare-and-swap that exactly one caller can win.
//! - **Every atomic comes from `sync`**, so loom can check the lock-free protocols
//!   (`RUSTFLAGS="--cfg loom" cargo test -p quantum-core --test loom --release`).
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, missing_docs)]
#![forbid(unsafe_code)]

mod seqlock;
mod sync;

pub mod bounded;
pub mod fixed;
pub mod idmap;
pub mod permit;
pub mod types;

#[cfg(not(loom))]
pub mod apply;
#[cfg(not(loom))]
pub mod book;
#[cfg(not(loom))]
pub mod clock;
#[cfg(not(loom))]
pub mod config;
#[cfg(not(loom))]
pub mod dedupe;
#[cfg(not(loom))]
pub mod engine;
#[cfg(not(loom))]
pub mod event;
#[cfg(not(loom))]
pub mod governor;
#[cfg(not(loom))]
pub mod input;
#[cfg(not(loom))]
pub mod orders;
#[cfg(not(loom))]
pub mod p33;
#[cfg(not(loom))]
pub mod recovery;
#[cfg(not(loom))]
pub mod replay;
#[cfg(not(loom))]
pub mod result;
#[cfg(not(loom))]
pub mod runner;
#[cfg(not(loom))]
pub mod wire;

/// The seqlock for the loom model in `tests/loom.rs` (the book's publication protocol).
#[cfg(loom)]
pub mod model {
    /// A two-word seqlock on loom's atomics.
    #[derive(Debug)]
    pub struct SeqLock2(crate::seqlock::SeqLock<2>);

    impl SeqLock2 {
        /// Both words zero.
        pub fn new() -> Self {
            SeqLock2(crate::seqlock::SeqLock::new([0, 0]))
        }
        /// The single writer publishes both words.
        pub fn write(&self, v: [i64; 2]) {
            self.0.write(&v)
        }
        /// A consistent copy.
        pub fn read(&self) -> [i64; 2] {
            self.0.read()
        }
    }

    impl Default for SeqLock2 {
        fn default() -> Self {
            Self::new()
        }
    }
}

#[cfg(not(loom))]
pub use {
    clock::Clock,
    config::{EngineConfig, PermitSource, SymbolSpec},
    engine::Engine,
    event::Event,
    fixed::{Price, Qty, Score},
    input::{Command, Input},
    result::{Block, Outcome, PlanResult},
    runner::{Mode, Runner, RunnerConfig},
    types::{
        Action, ClientOrderId, Decision, OrderIntent, Plan, PlanId, PositionSide, Side, StageMarks,
        SymbolId,
    },
};
