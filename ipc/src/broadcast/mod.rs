//! Broadcast rings: one writer, any number of readers, and no reader ever holds the writer
//! back (the `results` ring of [`crate::contract`]).
//!
//! The writer (the core daemon) publishes 64-byte records in order; position `p` of the ring
//! is the record with sequence number `base_seq + p`, where `base_seq` is stored in the header
//! at creation (the journal's next sequence number, so a reader can fetch from the journal what
//! the ring no longer holds). Readers copy records without writing anything the writer reads;
//! a reader that falls more than a lap behind is told exactly which sequence numbers it missed
//! ([`Next::Missed`]). The protocol is in `protocol` and is model-checked with loom.
//!
//! Readers register in a small table in the header (pid, heartbeat, position, missed) so
//! `quantum ctl rings` and metrics can show who reads and how far behind; a reader that finds
//! the table full still reads, unlisted.
//!
//! Header: five kinds of 128-byte lines, each written by one side only (but for a reader's
//! announcement in the doorbell as it goes to sleep):
//!
//! ```text
//! line 0       Meta    magic "QNTMBCST", format version, slot size, layout hash, owner pid,
//!                      created, capacity, stride, header size, base_seq   (written once)
//! line 1       writer  pid, state, heartbeat, attaches
//! line 2       tail    records ever published, and the readers' doorbell
//!                      (`crate::doorbell`: rung by every publish, slept on by `Reader::wait`)
//! lines 3..11  readers pid, state, heartbeat, attaches, position, missed (one line each)
//! ```

pub(crate) mod protocol;
#[cfg(not(loom))]
mod segment;

#[cfg(not(loom))]
pub use segment::*;

/// The protocol on loom's atomics, for the model in `tests/loom.rs`: the same functions the
/// segment runs, over slots in a `Vec`.
#[cfg(loom)]
pub mod model {
    use super::protocol::{self, BSlot, BSlots, Cursor};
    use crate::doorbell::{Doorbell, Wait};
    use crate::sync::{AtomicU64, Ordering};

    pub use super::protocol::WORDS;

    /// A heap ring for the model.
    #[derive(Debug)]
    pub struct Model {
        slots: Vec<BSlot>,
        tail: AtomicU64,
        bell: Doorbell,
    }

    impl BSlots for Model {
        fn mask(&self) -> u64 {
            self.slots.len() as u64 - 1
        }
        fn slot(&self, i: usize) -> &BSlot {
            &self.slots[i]
        }
    }

    /// What a model reader found: `(position, words)`, nothing, or `(from, to)` missed.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Next {
        /// A record.
        Record(u64, [u64; WORDS]),
        /// Nothing yet.
        Empty,
        /// Lost positions `from .. to`.
        Missed(u64, u64),
    }

    impl Model {
        /// A ring of `capacity` (a power of two) slots.
        pub fn new(capacity: usize) -> Model {
            Model {
                slots: (0..capacity).map(|_| BSlot::default()).collect(),
                tail: AtomicU64::new(0),
                bell: Doorbell::default(),
            }
        }

        /// Writes position `pos` (consecutive, one writer) and rings the doorbell.
        pub fn write(&self, pos: u64, words: &[u64; WORDS]) {
            protocol::write(self, &self.tail, pos, words);
            self.bell.ring();
        }

        /// Sleeps on the doorbell (reader entry `slot`, or anonymous) until the writer
        /// publishes past `cursor`, as `Reader::wait` does.
        pub fn wait(&self, cursor: &(u64, u64), slot: Option<usize>) -> Wait {
            let bell = match slot {
                Some(i) => self.bell.named(i),
                None => self.bell.bell(),
            };
            bell.wait(std::time::Duration::from_millis(1), || {
                // Acquire: as in `Reader::ready`.
                self.tail.load(Ordering::Acquire) > cursor.0
            })
        }

        /// Reads at `cursor` (position, missed), advancing it.
        pub fn next(&self, cursor: &mut (u64, u64)) -> Next {
            let mut c = Cursor {
                pos: cursor.0,
                missed: cursor.1,
            };
            let n = c.next(self, &self.tail);
            *cursor = (c.pos, c.missed);
            match n {
                protocol::Next::Record(p, w) => Next::Record(p, w),
                protocol::Next::Empty => Next::Empty,
                protocol::Next::Missed { from, to } => Next::Missed(from, to),
            }
        }
    }
}
