//! Events the `results` ring no longer holds, by sequence number.
//!
//! The ring is the bridge's fast path. When the reader falls a lap behind (Redis was down and
//! the bridge stopped taking events), or resumes from a sequence number older than the ring's
//! oldest (a restart after a long stop), the ring reports `Missed { from_seq, to_seq }` and the
//! reader asks [`Backfill::events`] for exactly those events, in order, before going on.
//!
//! The journal of issue #8 is where they live (`quantum_ipc::journal`, the daemon appends every
//! event to it before it publishes it, with the same number). Until its reader exists,
//! [`for_instance`] returns [`NoJournal`], which reports the gap (error log with the range,
//! counter `missed_events`) and delivers nothing; the bridge goes on from `to_seq`.
//!
//! **Plugging the journal in**: implement [`Backfill`] for the journal reader (open the
//! instance's journal read-only, return the records `from_seq .. to_seq` as `(seq, record)`),
//! and return it from [`for_instance`]. Nothing else in the bridge changes.

use quantum_ipc::wire::Record;

use crate::error::{Error, Result};

/// A source of past events by sequence number.
pub trait Backfill: Send {
    /// The events `from_seq .. to_seq` (end excluded), in order, as `(seq, record)`. Fewer than
    /// asked are counted as missed by the caller; an error misses the whole range.
    fn events(&mut self, from_seq: u64, to_seq: u64) -> Result<Vec<(u64, Record)>>;
}

/// No journal to read from yet: every gap is reported and skipped.
#[derive(Debug)]
pub struct NoJournal {
    instance: String,
}

impl Backfill for NoJournal {
    fn events(&mut self, from_seq: u64, to_seq: u64) -> Result<Vec<(u64, Record)>> {
        Err(Error::Backfill {
            from_seq,
            to_seq,
            reason: format!(
                "the results ring of instance {} no longer holds them and there is no journal to read them from yet (issue #8)",
                self.instance
            ),
        })
    }
}

/// The backfill source of `instance`: the one place to plug the journal reader in.
pub fn for_instance(instance: &str) -> Box<dyn Backfill> {
    Box::new(NoJournal {
        instance: instance.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_journal_a_gap_is_an_error_naming_the_range() {
        let e = for_instance("i1").events(10, 20).unwrap_err().to_string();
        assert!(e.contains("10..20") && e.contains("i1"), "{e}");
    }
}
