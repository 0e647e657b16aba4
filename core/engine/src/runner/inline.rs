//! The `inline` layout: no engine thread at all. The caller's own thread (the daemon's I/O
//! thread) runs the whole chain when it hands an input over, and re-checks waiting plans when
//! it looks for events. Nothing crosses between threads, so nothing waits for a wake-up: on a
//! host with fewer free cores than the threaded layouts need, this is the fastest layout, and
//! on any host it is the one with the fewest context switches.
//!
//! Events go into a queue owned by the same thread (growing past its first capacity only if
//! the caller stops taking them; never dropped, never blocking: with one thread, a bounded
//! queue that blocked would block its only reader).

use std::collections::VecDeque;
use std::time::Duration;

use crate::engine::{Engine, Input};
use crate::event::Event;

/// The engine and what it produced, owned by the caller's thread.
pub(super) struct Inline {
    engine: Engine,
    out: VecDeque<Event>,
    /// Inputs handled since start.
    handled: u64,
    /// `handled` when `out` was last empty: every event of those inputs has been taken.
    done: u64,
}

impl Inline {
    pub(super) fn new(engine: Engine, capacity: usize) -> Inline {
        Inline {
            engine,
            out: VecDeque::with_capacity(capacity.max(1)),
            handled: 0,
            done: 0,
        }
    }

    /// Runs the chain on `input` now; a plan the full table cannot take is handed back.
    pub(super) fn send(&mut self, input: Input, ring: u8) -> Result<(), Input> {
        let out = &mut self.out;
        match self.engine.handle(input, ring, &mut |e| out.push_back(e)) {
            Ok(()) => {
                self.handled += 1;
                if self.out.is_empty() {
                    self.done = self.handled;
                }
                Ok(())
            }
            Err(plan) => Err(Input::Plan(plan)),
        }
    }

    /// Takes the next event; re-checks the waiting plans first when there is none.
    pub(super) fn take(&mut self) -> Option<Event> {
        if self.out.is_empty() {
            self.poll();
        }
        let e = self.out.pop_front();
        if self.out.is_empty() {
            self.done = self.handled;
        }
        e
    }

    /// Re-checks the waiting plans (deadlines, permits from outside); how many were resolved.
    pub(super) fn poll(&mut self) -> usize {
        let out = &mut self.out;
        self.engine.poll(&mut |e| out.push_back(e))
    }

    /// How long until the earliest waiting plan's deadline (`None`: nothing waits).
    pub(super) fn next_wait(&self) -> Option<Duration> {
        let front = &self.engine.front;
        front
            .apply
            .next_deadline()
            .map(|d| Duration::from_nanos(d.saturating_sub(front.clock().now_ns())))
    }

    /// Plans still waiting for their permits.
    pub(super) fn pending(&self) -> usize {
        self.engine.front.apply.pending()
    }

    /// See `Runner::inputs_done`.
    pub(super) fn inputs_done(&self) -> u64 {
        self.done
    }

    /// Events not taken yet.
    pub(super) fn has_events(&self) -> bool {
        !self.out.is_empty()
    }
}
