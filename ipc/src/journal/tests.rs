use super::*;
use crate::wire::{Message, Raw};

fn rec(seq: u64) -> Record {
    Message::Raw(Raw::for_seq(seq, 0)).encode()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("qj-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn small() -> Options {
    Options {
        segment_bytes: 1 << 20,
        fsync: false,
    }
}

fn all(dir: &Path) -> Vec<u64> {
    let mut seqs = Vec::new();
    Reader::open(dir)
        .unwrap()
        .read_from(1, |s, r| {
            assert_eq!(r, &rec(s), "record {s} read back differently");
            seqs.push(s);
            Ok(())
        })
        .unwrap();
    seqs
}

#[test]
fn appends_roll_over_and_read_back_in_order() {
    let dir = tmp("roll");
    let (mut j, r) = Journal::open(&dir, small(), 0).unwrap();
    assert_eq!((r.next_seq, r.segments), (1, 0));
    let per_segment = ((1 << 20) - SEGMENT_HEADER_BYTES) / RECORD_BYTES;
    let n = per_segment as u64 * 2 + 10;
    let mut sealed = 0;
    for s in 1..=n {
        let (seq, roll) = j.append(&rec(s)).unwrap();
        assert_eq!(seq, s);
        sealed += usize::from(roll.is_some());
    }
    assert_eq!(sealed, 2);
    drop(j);
    assert_eq!(all(&dir), (1..=n).collect::<Vec<_>>());
    let (j, r) = Journal::open(&dir, small(), 0).unwrap();
    assert_eq!((r.next_seq, r.segments, r.torn_tail), (n + 1, 3, None));
    assert_eq!(j.next_seq(), n + 1);
    let v = verify(&dir).unwrap();
    assert_eq!((v.records, v.range), (n, Some((1, n))));
    // Reading from the middle skips whole segments.
    let mut first = None;
    Reader::open(&dir)
        .unwrap()
        .read_from(n - 5, |s, _| {
            first.get_or_insert(s);
            Ok(())
        })
        .unwrap();
    assert_eq!(first, Some(n - 5));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A write cut short at any byte of the last record is a torn tail: cut on open, and every
/// record before it replays; appending then carries on from the cut.
#[test]
fn a_torn_tail_at_every_byte_of_the_last_record_is_cut() {
    let dir = tmp("torn");
    for cut in 0..RECORD_BYTES {
        let _ = std::fs::remove_dir_all(&dir);
        let (mut j, _) = Journal::open(&dir, small(), 0).unwrap();
        for s in 1..=5 {
            j.append(&rec(s)).unwrap();
        }
        drop(j);
        // Record 5 as if its write stopped after `cut` bytes (bytes written in slot order).
        let path = segment_path(&dir, 1);
        let mut b = std::fs::read(&path).unwrap();
        let at = SEGMENT_HEADER_BYTES + 4 * RECORD_BYTES;
        for x in &mut b[at + cut..at + RECORD_BYTES] {
            *x = 0;
        }
        if cut == 0 {
            // Nothing of it written: a clean end at 4.
            b[at..at + RECORD_BYTES].fill(0);
        }
        std::fs::write(&path, &b).unwrap();
        let (mut j, r) = Journal::open(&dir, small(), 0).unwrap();
        assert_eq!(r.next_seq, 5, "cut at byte {cut}");
        assert_eq!(
            r.torn_tail.is_some(),
            cut > 0,
            "cut at byte {cut}: {:?}",
            r.torn_tail
        );
        assert_eq!(all(&dir), vec![1, 2, 3, 4], "cut at byte {cut}");
        j.append(&rec(5)).unwrap();
        drop(j);
        assert_eq!(all(&dir), vec![1, 2, 3, 4, 5]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A damaged record with good ones after it is corruption, reported with its offset.
#[test]
fn a_corrupt_middle_record_is_reported_with_its_offset() {
    let dir = tmp("corrupt");
    let (mut j, _) = Journal::open(&dir, small(), 0).unwrap();
    for s in 1..=10 {
        j.append(&rec(s)).unwrap();
    }
    drop(j);
    let path = segment_path(&dir, 1);
    let mut b = std::fs::read(&path).unwrap();
    let at = SEGMENT_HEADER_BYTES + 3 * RECORD_BYTES;
    b[at + 40] ^= 0x55;
    std::fs::write(&path, &b).unwrap();
    for err in [
        Journal::open(&dir, small(), 0).unwrap_err(),
        verify(&dir).unwrap_err(),
    ] {
        match err {
            JournalError::Corrupt {
                offset, path: p, ..
            } => {
                assert_eq!(offset, at as u64);
                assert_eq!(p, path);
            }
            other => panic!("{other}"),
        }
    }
    // The message says where, in one sentence.
    let text = verify(&dir).unwrap_err().to_string();
    assert!(text.contains(&format!("byte {at}")), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn snapshots_are_whole_or_absent() {
    let dir = tmp("snap");
    std::fs::create_dir_all(&dir).unwrap();
    snapshot::write(&dir, 10, b"ten").unwrap();
    snapshot::write(&dir, 20, b"twenty").unwrap();
    // A damaged newest one is skipped and reported; the one before it is used.
    let p = snapshot::path(&dir, 20);
    let mut b = std::fs::read(&p).unwrap();
    let n = b.len();
    b[n - 6] ^= 1;
    std::fs::write(&p, &b).unwrap();
    let (got, skipped) = snapshot::latest(&dir).unwrap();
    assert_eq!(got, Some((10, b"ten".to_vec())));
    assert_eq!(skipped.len(), 1);
    snapshot::prune(&dir, 1).unwrap();
    assert_eq!(snapshot::list(&dir).unwrap().len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn one_writer_per_directory() {
    let dir = tmp("lock");
    let (j, _) = Journal::open(&dir, small(), 0).unwrap();
    let err = Journal::open(&dir, small(), 0).unwrap_err();
    assert!(matches!(err, JournalError::Locked { .. }), "{err}");
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
    drop(j);
    Journal::open(&dir, small(), 0).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pruning_keeps_what_no_snapshot_covers() {
    let dir = tmp("prune");
    let (mut j, _) = Journal::open(&dir, small(), 0).unwrap();
    let per_segment = (((1 << 20) - SEGMENT_HEADER_BYTES) / RECORD_BYTES) as u64;
    for s in 1..=per_segment * 4 + 3 {
        j.append(&rec(s)).unwrap();
    }
    // Five segments; a snapshot at the end of the third covers the first three.
    assert_eq!(segments(&dir).unwrap().len(), 5);
    let upto = per_segment * 3;
    let removed = prune(&dir, upto, 1).unwrap();
    assert_eq!(removed.len(), 2);
    let left: Vec<u64> = segments(&dir).unwrap().iter().map(|s| s.0).collect();
    assert_eq!(
        left,
        vec![
            per_segment * 2 + 1,
            per_segment * 3 + 1,
            per_segment * 4 + 1
        ]
    );
    // What is left reads from where a reader of the snapshot starts.
    let mut n = 0;
    let next = Reader::open(&dir)
        .unwrap()
        .read_from(upto + 1, |_, _| {
            n += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!((n, next), (per_segment + 3, per_segment * 4 + 4));
    // Nothing the snapshot does not cover goes, and never the segment being written.
    assert!(prune(&dir, upto, 0).unwrap().len() == 1);
    assert!(prune(&dir, u64::MAX - 1, 0).unwrap().len() == 1);
    assert_eq!(segments(&dir).unwrap().len(), 1);
    drop(j);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Readers racing a writer that appends without pause and rolls over to new segments: every
/// read and every verify sees whole records in order, never "damaged" nor "wrong magic" (a
/// reader stops at what the writer has published; a segment appears only with its header).
#[test]
fn readers_racing_the_writer_never_see_damage() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let dir = tmp("race");
    let (mut j, _) = Journal::open(&dir, small(), 0).unwrap();
    let iterations = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    const READERS: u64 = 2;
    const ROUNDS: u64 = 2000;
    let writer = {
        let (iterations, done) = (iterations.clone(), done.clone());
        std::thread::spawn(move || {
            let mut s = 1u64;
            let mut seen = 0;
            // Relaxed: a pacing hint only (the readers' progress); nothing is read through it.
            while !done.load(Ordering::Relaxed) {
                for _ in 0..40 {
                    j.append(&rec(s)).unwrap();
                    s += 1;
                }
                // One burst per reader round, so the writes overlap the reads all along and
                // the journal stays a few segments long.
                while iterations.load(Ordering::Relaxed) == seen && !done.load(Ordering::Relaxed) {
                    std::thread::yield_now();
                }
                seen = iterations.load(Ordering::Relaxed);
            }
            s - 1
        })
    };
    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let (iterations, dir) = (iterations.clone(), dir.clone());
            std::thread::spawn(move || {
                let mut errors = Vec::new();
                let mut last = 0u64;
                for round in 0..ROUNDS {
                    if round % 25 == r {
                        match verify(&dir) {
                            Ok(v) => {
                                if let Some((a, b)) = v.range {
                                    if a != 1 || v.records != b {
                                        errors.push(format!("verify: {v:?}"));
                                    }
                                }
                            }
                            Err(e) => errors.push(format!("verify: {e}")),
                        }
                    } else {
                        let from = last.saturating_sub(200).max(1);
                        let mut expect = from;
                        let got = Reader::open(&dir).and_then(|rd| {
                            rd.read_from(from, |s, rec_| {
                                if s != expect || rec_ != &rec(s) {
                                    errors.push(format!("read {s}, expected {expect}"));
                                }
                                expect = s + 1;
                                Ok(())
                            })
                        });
                        match got {
                            Ok(next) => last = last.max(next - 1),
                            Err(e) => errors.push(format!("read from {from}: {e}")),
                        }
                    }
                    // Relaxed: a pacing hint for the writer.
                    iterations.fetch_add(1, Ordering::Relaxed);
                }
                errors
            })
        })
        .collect();
    let errors: Vec<String> = readers
        .into_iter()
        .flat_map(|r| r.join().unwrap())
        .collect();
    done.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(
        errors.is_empty(),
        "{} of {} reads failed while {written} records were written; first: {:?}",
        errors.len(),
        READERS * ROUNDS,
        &errors[..errors.len().min(5)]
    );
    assert_eq!(all(&dir).len() as u64, written);
    let _ = std::fs::remove_dir_all(&dir);
}
