//! Events the `results` ring no longer holds, by sequence number.
//!
//! The ring is the bridge's fast path. When the reader falls a lap behind (Redis was down and
//! the bridge stopped taking events), or resumes from a sequence number older than the ring's
//! oldest (a restart after a long stop), the ring reports `Missed { from_seq, to_seq }` and the
//! reader asks [`Backfill::events`] for exactly those events, in order, before going on.
//!
//! The daemon's journal is where they live (`quantum_ipc::journal`): it appends every event
//! there before it publishes it, with the same number, so any event a ring no longer holds is
//! in the journal, unless the daemon pruned it (it keeps `journal.keep_segments` segments past
//! its latest snapshot). [`Journal`] reads them; events pruned already are counted as missed
//! (`missed_events`, an error log with the range). [`NoJournal`] is what a bridge gets when it
//! cannot find the journal directory: every gap is reported and skipped.

use std::path::PathBuf;

use quantum_ipc::journal;
use quantum_ipc::wire::Record;

use crate::error::{Error, Result};

/// A source of past events by sequence number.
pub trait Backfill: Send {
    /// The events `from_seq .. to_seq` (end excluded), in order, as `(seq, record)`. Fewer than
    /// asked are counted as missed by the caller; an error misses the whole range.
    fn events(&mut self, from_seq: u64, to_seq: u64) -> Result<Vec<(u64, Record)>>;
}

/// The daemon's journal in a directory.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    /// The journal in `dir`.
    pub fn new(dir: PathBuf) -> Journal {
        Journal { dir }
    }
}

impl Backfill for Journal {
    fn events(&mut self, from_seq: u64, to_seq: u64) -> Result<Vec<(u64, Record)>> {
        let fail = |reason: String| Error::Backfill {
            from_seq,
            to_seq,
            reason,
        };
        if to_seq <= from_seq {
            return Ok(Vec::new());
        }
        // Opened per gap: the daemon adds and prunes segments meanwhile.
        let reader = journal::Reader::open(&self.dir)
            .map_err(|e| fail(format!("journal {}: {e}", self.dir.display())))?;
        let Some(first) = reader.first_seq() else {
            return Err(fail(format!("journal {} is empty", self.dir.display())));
        };
        // What the daemon pruned already is missed (the caller counts the shortfall).
        let start = from_seq.max(first);
        let mut out = Vec::with_capacity((to_seq - start).min(1 << 16) as usize);
        if start < to_seq {
            reader
                .read_until(start, to_seq - 1, |seq, record| {
                    if seq < to_seq {
                        out.push((seq, *record));
                    }
                    Ok(())
                })
                .map_err(|e| fail(format!("journal {}: {e}", self.dir.display())))?;
        }
        if start > from_seq {
            tracing::error!(
                from_seq,
                pruned_until = start,
                "events the journal no longer keeps (the bridge was behind by more than the daemon's kept segments)"
            );
        }
        Ok(out)
    }
}

/// No journal found: every gap is reported and skipped.
#[derive(Debug)]
pub struct NoJournal {
    instance: String,
    why: String,
}

impl Backfill for NoJournal {
    fn events(&mut self, from_seq: u64, to_seq: u64) -> Result<Vec<(u64, Record)>> {
        Err(Error::Backfill {
            from_seq,
            to_seq,
            reason: format!(
                "the results ring of instance {} no longer holds them and the journal cannot be read ({}); give the bridge --journal-dir",
                self.instance, self.why
            ),
        })
    }
}

/// The backfill source of `instance`: the journal in `dir`, else the one
/// [`journal::find_dir`] finds, else [`NoJournal`] (with a warning now, not at the first gap).
pub fn for_instance(instance: &str, dir: Option<PathBuf>) -> Box<dyn Backfill> {
    match dir.map_or_else(|| journal::find_dir(instance), Ok) {
        Ok(dir) => {
            tracing::info!(journal = %dir.display(), "events the results ring no longer holds are read from the daemon's journal");
            Box::new(Journal::new(dir))
        }
        Err(why) => {
            tracing::warn!("{why}: events the results ring no longer holds cannot be mirrored; give the bridge --journal-dir");
            Box::new(NoJournal {
                instance: instance.to_owned(),
                why,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_journal_a_gap_is_an_error_naming_the_range() {
        let dir = std::env::temp_dir().join(format!("qbf-none-{}", std::process::id()));
        let e = for_instance("i1", Some(dir))
            .events(10, 20)
            .unwrap_err()
            .to_string();
        assert!(e.contains("10..20"), "{e}");
    }

    fn record(n: u8) -> Record {
        let mut r = [0u8; quantum_ipc::wire::RECORD_SIZE];
        r[0] = n;
        r
    }

    #[test]
    fn a_gap_is_read_from_the_journal_and_pruned_events_are_missing() {
        let dir = std::env::temp_dir().join(format!("qbf-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let opts = journal::Options {
            segment_bytes: 1 << 20,
            ..journal::Options::default()
        };
        let (mut j, _) = journal::Journal::open(&dir, opts, 0).unwrap();
        let total = 30_000u64;
        for n in 0..total {
            // Journal numbers start at 1: each record holds the low byte of its own number.
            let (seq, _) = j.append(&record((n + 1) as u8)).unwrap();
            assert_eq!(seq, n + 1);
        }
        let mut bf = for_instance("i1", Some(dir.clone()));
        let got = bf.events(10, 20).unwrap();
        assert_eq!(
            got.iter().map(|(s, r)| (*s, r[0])).collect::<Vec<_>>(),
            (10..20u64).map(|s| (s, s as u8)).collect::<Vec<_>>()
        );
        // Across a segment boundary, in order, nothing twice.
        let got = bf.events(13_000, 14_000).unwrap();
        assert!(got.iter().map(|(s, _)| *s).eq(13_000..14_000));
        // Past the end: only what exists.
        assert_eq!(bf.events(total - 4, total + 10).unwrap().len(), 5);
        // The daemon pruned the first segment: what it held is missing, the rest is there.
        let removed = journal::prune(&dir, total - 1, 0).unwrap();
        assert!(!removed.is_empty());
        let first = journal::Reader::open(&dir).unwrap().first_seq().unwrap();
        assert!(first > 100);
        let got = bf.events(100, first + 10).unwrap();
        assert!(got.iter().map(|(s, _)| *s).eq(first..first + 10));
        drop(j);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
