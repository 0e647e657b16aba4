//! Events the `results` ring no longer holds, by sequence number.
//!
//! The ring is the bridge's fast path. When the reader falls a lap behind (Redis was down and
//! the bridge stopped taking events), or resumes from a sequence number older than the ring's
//! oldest (a restart after a long stop), the ring reports `Missed { from_seq, to_seq }` and the
//! reader fills exactly those events, in order, before going on ([`fill`]).
//!
//! The daemon's journal is where they live (`quantum_ipc::journal`): it appends every event
//! there before it publishes it, with the same number, so any event a ring no longer holds is
//! in the journal, unless the daemon pruned it (it keeps `journal.keep_segments` segments past
//! its latest snapshot). [`Journal`] reads them; events pruned already are counted as missed
//! (`missed_events`, an error log with the range). [`NoJournal`] is what a bridge gets when it
//! cannot find the journal directory: it looks again at every attempt.
//!
//! A gap is read [`CHUNK`] events at a time, each chunk handed over before the next is read,
//! so a gap of any length costs the bridge one chunk of memory. A read that fails (the journal
//! not there yet, a segment being rotated, a record being written) is tried again with
//! back-off, counted (`backfill_retries`) and logged, until it succeeds or the session ends:
//! a gap is never skipped because one read failed. What the journal no longer holds is the
//! only loss, and it is counted.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use quantum_ipc::journal;
use quantum_ipc::wire::Record;

use crate::error::{Error, Result};

/// Events read from the backfill source at a time, at most (about 1 MiB of records).
pub const CHUNK: u64 = 8192;
/// First wait after a failed backfill read; it doubles up to [`RETRY_MAX`].
pub const RETRY_MIN: Duration = Duration::from_millis(50);
/// Longest wait between two backfill reads of the same chunk.
pub const RETRY_MAX: Duration = Duration::from_secs(5);
/// How often the reader is asked whether to go on while it waits to retry.
const WAIT_SLICE: Duration = Duration::from_millis(50);

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

/// No journal found when the session started: every read looks for it again, and fails
/// (to be retried) while there is none.
#[derive(Debug)]
pub struct NoJournal {
    instance: String,
    why: String,
}

impl Backfill for NoJournal {
    fn events(&mut self, from_seq: u64, to_seq: u64) -> Result<Vec<(u64, Record)>> {
        match journal::find_dir(&self.instance) {
            Ok(dir) => Journal::new(dir).events(from_seq, to_seq),
            Err(why) => {
                self.why = why;
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
    }
}

/// Where [`fill`] hands chunks and asks whether to go on.
pub trait Sink {
    /// The events `from_seq .. to_seq` (end excluded) the source still has, in order; fewer
    /// than asked were pruned. False: stop filling (the bridge is stopping).
    fn chunk(&mut self, from_seq: u64, to_seq: u64, records: Vec<(u64, Record)>) -> bool;
    /// A read failed and will be tried again: called while waiting (keep alive), false to stop.
    fn waiting(&mut self) -> bool;
    /// A read of `from_seq .. to_seq` failed (`attempt` in a row, from 1); the next is in `wait`.
    fn failed(&mut self, from_seq: u64, to_seq: u64, attempt: u32, wait: Duration, error: &Error);
}

/// Reads `from_seq .. to_seq` from `source` in chunks of at most `chunk` events, handing each
/// to `sink` before the next is read; a failed read of a chunk is retried with back-off
/// ([`RETRY_MIN`] doubling to [`RETRY_MAX`]) until it succeeds. True when the whole range was
/// handed over, false when the sink said stop.
pub fn fill(
    source: &mut dyn Backfill,
    from_seq: u64,
    to_seq: u64,
    chunk: u64,
    sink: &mut dyn Sink,
) -> bool {
    let chunk = chunk.max(1);
    let mut from = from_seq;
    while from < to_seq {
        let to = from.saturating_add(chunk).min(to_seq);
        let mut attempt = 0u32;
        let mut wait = RETRY_MIN;
        let records = loop {
            match source.events(from, to) {
                Ok(r) => break r,
                Err(e) => {
                    attempt += 1;
                    sink.failed(from, to, attempt, wait, &e);
                    let until = Instant::now() + wait;
                    while Instant::now() < until {
                        if !sink.waiting() {
                            return false;
                        }
                        std::thread::sleep(WAIT_SLICE.min(until - Instant::now()));
                    }
                    wait = (wait * 2).min(RETRY_MAX);
                }
            }
        };
        debug_assert!(records.iter().all(|(s, _)| (from..to).contains(s)));
        if !sink.chunk(from, to, records) {
            return false;
        }
        from = to;
    }
    true
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

    /// What [`fill`] handed over, and when it failed.
    #[derive(Default)]
    struct Collect {
        seqs: Vec<u64>,
        largest_chunk: usize,
        chunks: Vec<(u64, u64)>,
        failures: u32,
        /// Called at the first failure (the test makes the journal readable again).
        on_failure: Option<Box<dyn FnMut()>>,
    }

    impl Sink for Collect {
        fn chunk(&mut self, from_seq: u64, to_seq: u64, records: Vec<(u64, Record)>) -> bool {
            self.largest_chunk = self.largest_chunk.max(records.len());
            self.chunks.push((from_seq, to_seq));
            for (seq, r) in records {
                assert_eq!(r[0], seq as u8, "record {seq} holds its own number");
                self.seqs.push(seq);
            }
            true
        }
        fn waiting(&mut self) -> bool {
            true
        }
        fn failed(&mut self, from_seq: u64, to_seq: u64, _: u32, _: Duration, e: &Error) {
            assert!(
                e.to_string().contains(&format!("{from_seq}..{to_seq}")),
                "{e}"
            );
            self.failures += 1;
            if let Some(mut f) = self.on_failure.take() {
                f();
            }
        }
    }

    fn journal_of(dir: &std::path::Path, total: u64) -> journal::Journal {
        let _ = std::fs::remove_dir_all(dir);
        let opts = journal::Options {
            segment_bytes: 1 << 20,
            ..journal::Options::default()
        };
        let (mut j, _) = journal::Journal::open(dir, opts, 0).unwrap();
        for n in 1..=total {
            j.append(&record(n as u8)).unwrap();
        }
        j
    }

    /// A gap is read a bounded chunk at a time, every event once and in order, and a read that
    /// fails (here: the journal directory is not there at first) is retried until it works,
    /// never skipped.
    #[test]
    fn a_gap_is_filled_in_bounded_chunks_and_a_failed_read_is_retried() {
        let base = std::env::temp_dir().join(format!("qbf-fill-{}", std::process::id()));
        let dir = base.join("journal");
        let away = base.join("away");
        let j = journal_of(&dir, 30_000);
        std::fs::rename(&dir, &away).unwrap();
        let mut source = for_instance("i1", Some(dir.clone()));
        let (a, d) = (away.clone(), dir.clone());
        let mut sink = Collect {
            on_failure: Some(Box::new(move || std::fs::rename(&a, &d).unwrap())),
            ..Collect::default()
        };
        assert!(fill(source.as_mut(), 10, 25_000, 4096, &mut sink));
        assert!(sink.failures >= 1, "the first read failed");
        assert!(
            sink.seqs.iter().copied().eq(10..25_000),
            "every event once, in order"
        );
        assert!(sink.largest_chunk <= 4096, "{}", sink.largest_chunk);
        assert_eq!(sink.chunks.first(), Some(&(10, 4106)));
        assert_eq!(sink.chunks.last().map(|c| c.1), Some(25_000));
        drop(j);
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// A bridge stopping while the journal stays unreadable stops filling; nothing is handed
    /// over as if read.
    #[test]
    fn a_retried_read_ends_when_the_bridge_stops() {
        struct Stopping(u32);
        impl Sink for Stopping {
            fn chunk(&mut self, _: u64, _: u64, _: Vec<(u64, Record)>) -> bool {
                panic!("nothing can be read");
            }
            fn waiting(&mut self) -> bool {
                self.0 < 3
            }
            fn failed(&mut self, _: u64, _: u64, attempt: u32, wait: Duration, _: &Error) {
                assert!(wait <= RETRY_MAX);
                self.0 = attempt;
            }
        }
        let dir = std::env::temp_dir().join(format!("qbf-never-{}", std::process::id()));
        let mut source = for_instance("i1", Some(dir));
        let mut sink = Stopping(0);
        assert!(!fill(source.as_mut(), 1, 100, 10, &mut sink));
        assert_eq!(sink.0, 3);
    }

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
