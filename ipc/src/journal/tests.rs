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

/// Records per 1 MiB test segment.
fn per_segment() -> u64 {
    (((1 << 20) - SEGMENT_HEADER_BYTES) / RECORD_BYTES) as u64
}

/// A segment file left all zero by a crash or a full disk while it was being created (an
/// older binary created segments in place), and a temporary file of one: the next open
/// removes both, says so, and carries on from the number in the zero segment's name; readers
/// meanwhile see "nothing yet", not "wrong magic". A zero header in front of data stays an
/// error.
#[test]
fn a_zero_filled_segment_left_by_a_crash_does_not_wedge_the_next_open() {
    let dir = tmp("zero");
    let n = per_segment();
    let (mut j, _) = Journal::open(&dir, small(), 0).unwrap();
    for s in 1..=n {
        j.append(&rec(s)).unwrap();
    }
    drop(j);
    let zero = segment_path(&dir, n + 1);
    std::fs::write(&zero, vec![0u8; 1 << 20]).unwrap();
    let temp = dir.join(format!(".journal-{:020}.qj.tmp", n + 1));
    std::fs::write(&temp, vec![0u8; 4096]).unwrap();
    // Readers, before any writer opens it.
    assert_eq!(all(&dir), (1..=n).collect::<Vec<_>>());
    let v = verify(&dir).unwrap();
    assert_eq!((v.records, v.range), (n, Some((1, n))));
    let (mut j, r) = Journal::open(&dir, small(), 0).unwrap();
    assert_eq!(r.next_seq, n + 1);
    let mut removed = r.removed.clone();
    removed.sort();
    assert_eq!(removed, vec![temp.clone(), zero.clone()]);
    assert!(!temp.exists());
    j.append(&rec(n + 1)).unwrap();
    assert!(zero.exists(), "the next segment is created under its name");
    drop(j);
    assert_eq!(all(&dir), (1..=n + 1).collect::<Vec<_>>());

    // The only segment, all zero: a fresh journal from its number.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(segment_path(&dir, 1), vec![0u8; 1 << 20]).unwrap();
    let (mut j, r) = Journal::open(&dir, small(), 0).unwrap();
    assert_eq!((r.next_seq, r.removed.len()), (1, 1));
    j.append(&rec(1)).unwrap();
    drop(j);
    assert_eq!(all(&dir), vec![1]);

    // A zero header with records behind it is not "nothing": refused, kept.
    let p = segment_path(&dir, 1);
    let mut b = std::fs::read(&p).unwrap();
    b[..SEGMENT_HEADER_BYTES].fill(0);
    std::fs::write(&p, &b).unwrap();
    let e = Journal::open(&dir, small(), 0).unwrap_err();
    assert!(
        matches!(e, JournalError::BadSegment { .. }) && e.to_string().contains("holds data"),
        "{e}"
    );
    assert!(p.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// With `fsync` on, a hole after the last completed sync followed by records (a power loss:
/// pages written back out of order, none of them promised) is a torn tail: cut, counted,
/// reported; the journal opens and carries on. Damage before the last sync stays corruption,
/// with its offset.
#[test]
fn with_fsync_damage_after_the_last_sync_is_a_torn_tail() {
    let dir = tmp("synced");
    let opts = Options {
        segment_bytes: 1 << 20,
        fsync: true,
    };
    let write = |dir: &Path| {
        let _ = std::fs::remove_dir_all(dir);
        let (mut j, _) = Journal::open(dir, opts, 0).unwrap();
        for s in 1..=10 {
            j.append(&rec(s)).unwrap();
        }
        j.sync().unwrap();
        for s in 11..=20 {
            j.append(&rec(s)).unwrap();
        }
    };
    let slot = |seq: u64| SEGMENT_HEADER_BYTES + (seq as usize - 1) * RECORD_BYTES;
    let path = segment_path(&dir, 1);

    write(&dir);
    let mut b = std::fs::read(&path).unwrap();
    b[slot(13)..slot(14)].fill(0);
    std::fs::write(&path, &b).unwrap();
    // What a reader of the journal as it lies says, before the daemon opens it.
    let v = verify(&dir).unwrap();
    assert_eq!(v.range, Some((1, 12)));
    assert_eq!(v.torn_tail, Some((path.clone(), slot(13) as u64)));
    let (mut j, r) = Journal::open(&dir, opts, 0).unwrap();
    assert_eq!(r.next_seq, 13);
    assert_eq!(r.torn_tail, Some((path.clone(), slot(13) as u64)));
    assert_eq!(r.torn_records, 7, "records 14..=20 were cut");
    assert_eq!(r.torn_bytes, (slot(21) - slot(13)) as u64);
    j.append(&rec(13)).unwrap();
    drop(j);
    assert_eq!(all(&dir), (1..=13).collect::<Vec<_>>());

    // The same hole before the last sync: corruption, where it is.
    write(&dir);
    let mut b = std::fs::read(&path).unwrap();
    b[slot(5) + 30] ^= 0x40;
    std::fs::write(&path, &b).unwrap();
    match Journal::open(&dir, opts, 0).unwrap_err() {
        JournalError::Corrupt { offset, .. } => assert_eq!(offset, slot(5) as u64),
        e => panic!("{e}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A reader reads a range in pieces of at most N records, across segments, each piece
/// carrying on where the last stopped.
#[test]
fn reading_in_batches_is_bounded_and_complete() {
    let dir = tmp("batch");
    let n = per_segment() + 100;
    let (mut j, _) = Journal::open(&dir, small(), 0).unwrap();
    for s in 1..=n {
        j.append(&rec(s)).unwrap();
    }
    let r = Reader::open(&dir).unwrap();
    let mut from = 1;
    let mut got = Vec::new();
    let mut pieces = 0;
    loop {
        let mut out = Vec::new();
        let next = r.read_batch(from, 5000, &mut out).unwrap();
        assert!(out.len() <= 5000);
        assert_eq!(next, from + out.len() as u64);
        if out.is_empty() {
            break;
        }
        pieces += 1;
        got.extend(out.iter().map(|(s, x)| {
            assert_eq!(x, &rec(*s));
            *s
        }));
        from = next;
    }
    assert_eq!(got, (1..=n).collect::<Vec<_>>());
    assert_eq!(pieces, n.div_ceil(5000));
    let mut out = Vec::new();
    assert_eq!(r.read_batch(n - 2, 10, &mut out).unwrap(), n + 1);
    assert_eq!(out.len(), 3);
    drop(j);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A small tmpfs mounted for one test, unmounted when dropped (needs root).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(name: &str, size: &str) -> Option<Tmpfs> {
        let dir = tmp(name);
        std::fs::create_dir_all(&dir).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(Tmpfs(dir))
    }

    fn grow(&self, size: &str) {
        let st = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Appends until the journal says there is no room; returns how many records went in.
fn fill(dir: &Path) -> (Journal, u64) {
    let (mut j, _) = Journal::open(dir, small(), 0).unwrap();
    let mut s = 1;
    loop {
        assert!(s < per_segment() * 8, "the disk never filled");
        match j.append(&rec(s)) {
            Ok(_) => s += 1,
            Err(JournalError::NoSpace { path, source }) => {
                assert_eq!(path, segment_path(dir, s), "{source}");
                return (j, s - 1);
            }
            Err(e) => panic!("appending record {s}: {e}"),
        }
    }
}

/// The files of `dir`, by name.
fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A full disk (a 2.5 MiB tmpfs, 1 MiB segments): the append that needs a new segment fails
/// with `NoSpace`, leaves no file behind and changes nothing; every record before it reads
/// back; once the disk is grown the same append succeeds with the same number, and the
/// journal opens again. Without root (no tmpfs), the process's file-size limit stands in for
/// the disk in a child process.
#[test]
fn a_full_disk_is_no_space_and_leaves_nothing_behind() {
    // `QJ_NO_MOUNT=1` runs the stand-in even as root.
    let fs = match std::env::var_os("QJ_NO_MOUNT") {
        None => Tmpfs::mount("nospace", "2560k"),
        Some(_) => None,
    };
    let Some(fs) = fs else {
        return full_disk_by_file_size_limit();
    };
    let dir = fs.0.join("j");
    let (mut j, n) = fill(&dir);
    assert_eq!(n, per_segment() * 2, "two segments fit");
    let e = j.append(&rec(n + 1)).unwrap_err();
    assert!(
        e.to_string().contains("append it again once there is room"),
        "{e}"
    );
    assert_eq!(
        files(&dir),
        vec![
            "LOCK",
            "journal-00000000000000000001.qj",
            &format!("journal-{:020}.qj", per_segment() + 1)
        ]
    );
    assert_eq!(all(&dir).len() as u64, n);
    fs.grow("4m");
    assert_eq!(j.append(&rec(n + 1)).unwrap().0, n + 1);
    drop(j);
    // A restart after the disk filled (the writer died there) opens as well.
    let (j, r) = Journal::open(&dir, small(), 0).unwrap();
    assert_eq!((r.next_seq, r.removed.len()), (n + 2, 0));
    drop(j);
    assert_eq!(all(&dir), (1..=n + 1).collect::<Vec<_>>());
}

/// The stand-in: a child runs [`full_disk_child`] under `RLIMIT_FSIZE` (file size limit: an
/// extension past it fails with `EFBIG`), then the parent, without the limit, appends on.
fn full_disk_by_file_size_limit() {
    use std::os::unix::process::CommandExt;
    let dir = tmp("fsize");
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "journal::tests::full_disk_child",
        "--ignored",
        "--nocapture",
    ])
    .env("QJ_FULL_DIR", &dir)
    .env_remove("QJ_NO_MOUNT");
    // SAFETY: between fork and exec the closure only calls setrlimit and signal, both
    // async-signal-safe, and touches no lock or allocation.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1 << 19,
                rlim_max: 1 << 19,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Exceeding the limit raises SIGXFSZ, which kills by default; ignored, the call
            // fails with EFBIG instead (an ignored signal stays ignored across exec).
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        })
    };
    let out = cmd.output().unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut j, r) = Journal::open(&dir, small(), 0).unwrap();
    assert_eq!((r.next_seq, r.removed.len()), (1, 0));
    assert_eq!(j.append(&rec(1)).unwrap().0, 1);
    drop(j);
    assert_eq!(all(&dir), vec![1]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The child of [`full_disk_by_file_size_limit`]: no segment fits under the limit (it is per
/// file), so opening the journal finds no room, and leaves only its lock behind.
#[test]
#[ignore = "run by a_full_disk_is_no_space_and_leaves_nothing_behind under a file size limit"]
fn full_disk_child() {
    let Some(dir) = std::env::var_os("QJ_FULL_DIR").map(PathBuf::from) else {
        return;
    };
    match Journal::open(&dir, small(), 0) {
        Err(JournalError::NoSpace { path, .. }) => assert_eq!(path, segment_path(&dir, 1)),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a segment was created past the file size limit"),
    }
    assert_eq!(files(&dir), vec!["LOCK"]);
}

/// A segment written under an older record layout (one this binary extends) is read, never
/// appended to: the next start begins a new segment, so each segment's header names the layout
/// of every record in it ([`segment_layouts`]).
#[test]
fn a_segment_of_an_older_layout_is_read_and_followed_by_a_new_one() {
    use crate::wire::layout::{fnv1a, fnv1a_u64, FNV_OFFSET};
    use crate::wire::{layout_description, layout_has, Kind, FORMAT_VERSION, LAYOUT_HASH};
    let dir = tmp("older-layout");
    let (mut j, _) = Journal::open(&dir, small(), 0).unwrap();
    for s in 1..=5 {
        j.append(&rec(s)).unwrap();
    }
    drop(j);
    // The layout of the version before `AccountMode`: this one's records up to `Started`.
    let d = layout_description();
    let mut older = fnv1a(FNV_OFFSET, "quantum-ipc wire format v");
    older = fnv1a_u64(older, FORMAT_VERSION as u64);
    older = fnv1a_u64(older, crate::wire::RECORD_SIZE as u64);
    for line in d
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("AccountMode="))
    {
        older = fnv1a(older, line);
    }
    assert!(!layout_has(older, Kind::AccountMode) && layout_has(older, Kind::Raw));
    let path = segment_path(&dir, 1);
    let mut b = std::fs::read(&path).unwrap();
    b[16..24].copy_from_slice(&older.to_le_bytes());
    let crc = crc32c::crc32c(&b[..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &b).unwrap();

    let (mut j, r) = Journal::open(&dir, small(), 0).unwrap();
    assert_eq!((r.next_seq, r.segments), (6, 1));
    for s in 6..=8 {
        j.append(&rec(s)).unwrap();
    }
    drop(j);
    assert_eq!(
        segment_layouts(&dir).unwrap(),
        vec![(1, older), (6, LAYOUT_HASH)]
    );
    assert_eq!(all(&dir), (1..=8).collect::<Vec<_>>());
    let _ = std::fs::remove_dir_all(&dir);
}
