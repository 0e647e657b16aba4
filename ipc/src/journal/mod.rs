//! The journal: every event of the engine, appended in order to memory-mapped segment files,
//! each record checksummed (CRC32C) and numbered. It is what makes a restart lose nothing: the
//! daemon appends an event before anything else leaves the process with it (the `results`
//! ring, an order intent on `orders`), and replaying the journal rebuilds the core's state.
//!
//! Files in the journal directory:
//!
//! ```text
//! journal-<first seq, 20 digits>.qj   segments: a 128-byte header, then 80-byte records
//! snapshot-<seq, 20 digits>.qs        the state after event <seq> (see [`snapshot`])
//! ```
//!
//! A record is `seq u64 | crc32c u32 | marker u32 | payload 64 bytes` (the payload is a wire
//! record, `crate::wire`); the CRC covers everything but itself. Segments are created at their
//! full size and mapped (`memmap2`); appending is a copy into the mapping, no system call, so
//! a process that dies (even by `kill -9`) loses nothing it appended: the pages belong to the
//! kernel's page cache. Surviving a power loss needs `msync`: with `fsync` on, [`Journal::sync`]
//! flushes what was appended since the last call (the daemon calls it once per batch).
//!
//! Opening for append checks every record after the newest snapshot: a bad record followed only
//! by empty space is a torn tail (a write cut short) and is cut; a bad record with a good one
//! after it is corruption, reported with its file and offset ([`JournalError::Corrupt`]), never
//! skipped. With `fsync` on, each segment's header also says how many of its records the last
//! completed `msync` flushed: damage at or after that point is what a power loss cut short of
//! writes that were never flushed, and is cut as a torn tail (counted in [`OpenReport`]) even
//! with data after it; damage before it stays corruption.
//!
//! Readers ([`Reader`], [`verify`]) read a live journal while the daemon appends: each segment's
//! header holds how many of its records are whole (`published`, stored by the writer after
//! each record, Release; loaded by readers, Acquire), and a reader reads no further, so it
//! never sees a record half written. Segments are created under a temporary name and renamed
//! once their header is written, so a reader never meets a segment without one. A full disk
//! makes [`Journal::append`] (or [`Journal::open`]) fail with [`JournalError::NoSpace`], having
//! appended nothing and left nothing behind: the caller stops taking new work and appends the
//! same record again once there is room.

mod segment;
pub mod snapshot;

use std::path::{Path, PathBuf};

use segment::{Bounds, Scan, SegmentFile, SegmentReader};
pub use segment::{RECORD_BYTES, SEGMENT_HEADER_BYTES};

use crate::wire::Record;

/// What can go wrong with a journal.
#[derive(Debug)]
pub enum JournalError {
    /// A file operation failed.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A record that is not what was written, with good records after it.
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// Byte offset of the bad record.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// A segment that is not a journal segment of this format, or whose header is damaged.
    BadSegment {
        /// The segment.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// Another process writes this journal.
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// No room for a new segment (the disk or its quota is full, or the process's file-size
    /// limit is reached). Nothing was appended and no file is left behind: every record
    /// appended before is intact. Once there is room, append the same record again (or open
    /// again); the journal carries on with the same sequence number.
    NoSpace {
        /// The segment that could not be created.
        path: PathBuf,
        /// The error (`ENOSPC`, `EDQUOT` or `EFBIG`).
        source: std::io::Error,
    },
    /// Sequence numbers do not follow each other across segments.
    Gap {
        /// The segment where the gap starts.
        path: PathBuf,
        /// The number expected.
        expected: u64,
        /// The number found.
        found: u64,
    },
}

impl std::fmt::Display for JournalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JournalError::Io { path, source } => write!(f, "journal {}: {source}", path.display()),
            JournalError::Corrupt { path, offset, what } => write!(
                f,
                "journal {} is corrupt at byte {offset}: {what} (good records follow it, so it is not a torn tail)",
                path.display()
            ),
            JournalError::Locked { path } => write!(
                f,
                "journal {} is in use by another process (its lock is held)",
                path.parent().unwrap_or(path).display()
            ),
            JournalError::NoSpace { path, source } => write!(
                f,
                "no room for journal segment {}: {source}; nothing was appended and every record before is intact: append it again once there is room",
                path.display()
            ),
            JournalError::BadSegment { path, what } => {
                write!(f, "journal segment {}: {what}", path.display())
            }
            JournalError::Gap {
                path,
                expected,
                found,
            } => write!(
                f,
                "journal segment {} starts at sequence {found}, expected {expected}: segments are missing",
                path.display()
            ),
        }
    }
}

impl std::error::Error for JournalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JournalError::Io { source, .. } | JournalError::NoSpace { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_owned(),
        source,
    }
}

/// How a journal is opened.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Bytes per segment file (rounded to whole records; at least 1 MiB).
    pub segment_bytes: u64,
    /// `msync` what was appended on each [`Journal::sync`] (survives a power loss).
    pub fsync: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_bytes: 64 << 20,
            fsync: false,
        }
    }
}

/// What opening found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Segments found.
    pub segments: usize,
    /// Sequence number of the first record kept in the journal (the oldest segment's).
    pub first_seq: u64,
    /// Sequence number the next append gets.
    pub next_seq: u64,
    /// A torn tail that was cut: the segment and the byte offset of the first bad record.
    pub torn_tail: Option<(PathBuf, u64)>,
    /// Records (non-empty slots) the cut removed: the torn one, and with `fsync` on any
    /// record written after it but never flushed.
    pub torn_records: u64,
    /// Bytes the cut zeroed.
    pub torn_bytes: u64,
    /// Files removed that never held a record: segments left half created by a crash or a
    /// full disk (a temporary file, or an all-zero segment of an older binary).
    pub removed: Vec<PathBuf>,
}

/// The segment file of `first_seq` in `dir`.
pub fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("journal-{first_seq:020}.qj"))
}

/// The segments in `dir`, oldest first, as `(first_seq, path)`.
pub fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    numbered_files(dir, "journal-", ".qj")
}

/// The wire layout each segment in `dir` was written with, oldest first, as `(first_seq,
/// layout hash)` (see [`crate::wire::layout_has`]); a segment with no header yet is left out.
pub fn segment_layouts(dir: &Path) -> Result<Vec<(u64, u64)>, JournalError> {
    let mut out = Vec::new();
    for (first, path) in segments(dir)? {
        if let Some(h) = segment::layout_of(&path)? {
            out.push((first, h));
        }
    }
    Ok(out)
}

/// The files of `dir` named `<prefix><number><suffix>`, by number, as `(number, path)`
/// (segments and snapshots); a missing directory has none.
fn numbered_files(
    dir: &Path,
    prefix: &str,
    suffix: &str,
) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name
            .strip_prefix(prefix)
            .and_then(|s| s.strip_suffix(suffix))
            .and_then(|s| s.parse::<u64>().ok())
        {
            out.push((n, entry.path()));
        }
    }
    out.sort_unstable_by_key(|(n, _)| *n);
    Ok(out)
}

/// The appending end. One writer per directory: [`Journal::open`] takes an exclusive lock on
/// `dir/LOCK` (`flock`), released when the process exits however it exits.
pub struct Journal {
    _lock: std::fs::File,
    dir: PathBuf,
    opts: Options,
    cur: SegmentFile,
    next_seq: u64,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.dir)
            .field("next_seq", &self.next_seq)
            .finish()
    }
}

impl Journal {
    /// Opens (or creates) the journal in `dir` for appending, checking every segment from
    /// `check_from` (a sequence number: the newest snapshot's, so replay stays bounded) and
    /// cutting a torn tail. Segments older than `check_from` are only checked for their headers.
    pub fn open(
        dir: &Path,
        opts: Options,
        check_from: u64,
    ) -> Result<(Journal, OpenReport), JournalError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let lock = lock(dir)?;
        let mut report = OpenReport {
            removed: remove_temporaries(dir)?,
            ..OpenReport::default()
        };
        let mut segs = segments(dir)?;
        // A last segment whose header was never written, holding nothing at all, never held
        // a record (an older binary created segments in place, and a crash or a full disk
        // stopped it): it goes, and the journal carries on from the number in its name.
        let mut blank_first = None;
        if let Some((first, path)) = segs.last() {
            if segment::blank_file(path)? {
                std::fs::remove_file(path).map_err(io_err(path))?;
                report.removed.push(path.clone());
                blank_first = Some(*first);
                segs.pop();
            }
        }
        report.segments = segs.len();
        report.first_seq = segs
            .first()
            .map_or(blank_first.unwrap_or(FIRST_SEQ), |(s, _)| *s);
        let mut expected: Option<u64> = None;
        // (first_seq, path, next_seq, appendable)
        let mut last: Option<(u64, PathBuf, u64, bool)> = None;
        for (i, (first, path)) in segs.iter().enumerate() {
            if let Some(e) = expected {
                if *first != e {
                    return Err(JournalError::Gap {
                        path: path.clone(),
                        expected: e,
                        found: *first,
                    });
                }
            }
            let is_last = i + 1 == segs.len();
            let r = open_segment(path)?;
            if r.first_seq() != *first {
                return Err(JournalError::BadSegment {
                    path: path.clone(),
                    what: format!("header says it starts at {}", r.first_seq()),
                });
            }
            // A sealed segment wholly before the snapshot needs no record check.
            let next_first = segs.get(i + 1).map(|(s, _)| *s);
            if !is_last && next_first.is_some_and(|n| n <= check_from) {
                expected = next_first;
                continue;
            }
            let scan = r.scan()?;
            if let Some(off) = scan.torn_at {
                if !is_last {
                    return Err(JournalError::Corrupt {
                        path: path.clone(),
                        offset: off,
                        what: "a bad record at the end of a segment that is followed by another"
                            .into(),
                    });
                }
                report.torn_tail = Some((path.clone(), off));
                report.torn_records = scan.torn_records;
                report.torn_bytes = scan.torn_bytes;
            }
            expected = Some(scan.next_seq);
            last = Some((*first, path.clone(), scan.next_seq, r.appendable()));
        }
        let (cur, next_seq) = match last {
            Some((first, path, next, true)) => (
                SegmentFile::open(&path, first, next - first, opts.fsync)?,
                next,
            ),
            Some((first, path, next, false)) => {
                // An older format's or record layout's segment is read, never appended to: a
                // new one follows it (one holding no record would share the new one's name,
                // and goes).
                if next == first {
                    std::fs::remove_file(&path).map_err(io_err(&path))?;
                    report.removed.push(path);
                }
                let p = segment_path(dir, next);
                (
                    SegmentFile::create(&p, next, opts.segment_bytes, opts.fsync)?,
                    next,
                )
            }
            None => {
                let first = blank_first.unwrap_or(FIRST_SEQ);
                let path = segment_path(dir, first);
                (
                    SegmentFile::create(&path, first, opts.segment_bytes, opts.fsync)?,
                    first,
                )
            }
        };
        report.next_seq = next_seq;
        Ok((
            Journal {
                _lock: lock,
                dir: dir.to_owned(),
                opts,
                cur,
                next_seq,
            },
            report,
        ))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The sequence number the next append gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Appends `record` and publishes it to readers; returns its sequence number. No system
    /// call unless the segment is full (then the next one is created). `Ok(Some(path))` in
    /// `sealed` when that happened.
    ///
    /// [`JournalError::NoSpace`] when the next segment cannot be created for want of room:
    /// nothing was appended, nothing is left behind, and the journal is as it was; call
    /// `append` again with the same record once there is room (a daemon stops taking new work
    /// meanwhile, keeping what it accepted).
    #[inline]
    pub fn append(&mut self, record: &Record) -> Result<(u64, Option<PathBuf>), JournalError> {
        let mut sealed = None;
        if self.cur.is_full() {
            if self.opts.fsync {
                self.cur.sync()?;
            }
            let path = segment_path(&self.dir, self.next_seq);
            let next = SegmentFile::create(
                &path,
                self.next_seq,
                self.opts.segment_bytes,
                self.opts.fsync,
            )?;
            let old = std::mem::replace(&mut self.cur, next);
            sealed = Some(old.path().to_owned());
        }
        let seq = self.next_seq;
        self.cur.push(seq, record);
        self.next_seq += 1;
        Ok((seq, sealed))
    }

    /// With `fsync` on, flushes to disk what was appended since the last call (`msync`),
    /// then records in the segment's header how far it is flushed (what a later open trusts
    /// to be whole); otherwise nothing (a process crash loses nothing anyway).
    pub fn sync(&mut self) -> Result<(), JournalError> {
        if self.opts.fsync {
            self.cur.sync()?;
        }
        Ok(())
    }
}

/// Maps and checks a segment, refusing one whose header is all zero (only a last segment
/// that holds nothing at all may be so, and is removed before this).
fn open_segment(path: &Path) -> Result<SegmentReader, JournalError> {
    SegmentReader::open(path)?.ok_or_else(|| blank_segment(path))
}

fn blank_segment(path: &Path) -> JournalError {
    JournalError::BadSegment {
        path: path.to_owned(),
        what: "its header is all zero, but it holds data or segments follow it".into(),
    }
}

/// Removes the temporary files of segments whose creation did not finish (they never held a
/// record: a segment gets its name before its first record).
fn remove_temporaries(dir: &Path) -> Result<Vec<PathBuf>, JournalError> {
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(".journal-") && name.ends_with(".qj.tmp") {
            let p = entry.path();
            std::fs::remove_file(&p).map_err(io_err(&p))?;
            removed.push(p);
        }
    }
    Ok(removed)
}

/// Whether a process holds the writer's lock of `dir` (a journal being appended to), as
/// `/proc/locks` lists it. Looking does not take the lock, so a daemon starting meanwhile is
/// never refused. When it cannot tell, it says yes (readers then trust only what the writer
/// published).
fn writer_is_live(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(dir.join("LOCK")) else {
        return false;
    };
    let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
        return true;
    };
    // `1: FLOCK  ADVISORY  WRITE 1234 00:2a:56789 0 EOF`: the device as major:minor in hex.
    let dev = meta.dev();
    let want = format!(
        "{:02x}:{:02x}:{}",
        libc::major(dev),
        libc::minor(dev),
        meta.ino()
    );
    locks.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(1) == Some(&"FLOCK") && f.get(5) == Some(&want.as_str())
    })
}

/// Takes the writer's lock of `dir`.
fn lock(dir: &Path) -> Result<std::fs::File, JournalError> {
    use std::os::fd::AsRawFd;
    let path = dir.join("LOCK");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    // SAFETY: `f` is an open descriptor for the duration of the call.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(JournalError::Locked { path });
        }
        return Err(io_err(&path)(e));
    }
    Ok(f)
}

/// Removes the segments whose every record is at or before `upto` (a snapshot covers them),
/// keeping the newest `keep` of those for readers that are catching up. Returns the paths
/// removed. The segment being appended to is never removed.
pub fn prune(dir: &Path, upto: u64, keep: usize) -> Result<Vec<PathBuf>, JournalError> {
    let segs = segments(dir)?;
    let covered: Vec<&PathBuf> = segs
        .windows(2)
        .filter(|w| w[1].0 <= upto.saturating_add(1))
        .map(|w| &w[0].1)
        .collect();
    let mut removed = Vec::new();
    for p in covered.iter().take(covered.len().saturating_sub(keep)) {
        std::fs::remove_file(p).map_err(io_err(p))?;
        removed.push((*p).clone());
    }
    Ok(removed)
}

/// The number of a journal's first event. A daemon whose `results` ring starts at this number
/// has no history behind it (a first start, or a journal directory started afresh).
pub const FIRST_SEQ: u64 = 1;

/// Where the shipped systemd units keep state (`StateDirectory=quantum`).
pub const SYSTEMD_STATE_DIR: &str = "/var/lib/quantum";

/// The journal directory of `instance` when its configuration names none: `<state>/<instance>`
/// where `<state>` is `$STATE_DIRECTORY` (systemd's `StateDirectory=`, its first entry), else
/// `$XDG_STATE_HOME/quantum`, else `~/.local/state/quantum`, else `/var/tmp/quantum`.
pub fn default_dir(instance: &str) -> PathBuf {
    default_dir_and_source(instance).0
}

/// [`default_dir`], and the setting that chose it: `"$STATE_DIRECTORY"`, `"$XDG_STATE_HOME"`,
/// `"$HOME"`, or `"no $STATE_DIRECTORY, $XDG_STATE_HOME or $HOME"` for the last resort.
pub fn default_dir_and_source(instance: &str) -> (PathBuf, &'static str) {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let (base, source) = if let Some(d) = env("STATE_DIRECTORY") {
        let d = d.to_string_lossy();
        (
            PathBuf::from(d.split(':').next().unwrap_or("")),
            "$STATE_DIRECTORY",
        )
    } else if let Some(d) = env("XDG_STATE_HOME") {
        (PathBuf::from(d).join("quantum"), "$XDG_STATE_HOME")
    } else if let Some(h) = env("HOME") {
        (PathBuf::from(h).join(".local/state/quantum"), "$HOME")
    } else {
        (
            PathBuf::from("/var/tmp/quantum"),
            "no $STATE_DIRECTORY, $XDG_STATE_HOME or $HOME",
        )
    };
    (base.join(instance), source)
}

/// The journal of `instance` as another process finds it (a tool, a bridge): [`default_dir`]
/// from this process's environment, else the systemd units' place (an operator's shell or a
/// bridge's unit has no `$STATE_DIRECTORY` of the daemon's). `Err` lists where it looked.
pub fn find_dir(instance: &str) -> Result<PathBuf, String> {
    let default = default_dir(instance);
    let unit = PathBuf::from(SYSTEMD_STATE_DIR).join(instance);
    for d in [&default, &unit] {
        if d.is_dir() {
            return Ok(d.clone());
        }
    }
    Err(format!(
        "no journal for instance {instance} in {} or {}",
        default.display(),
        unit.display()
    ))
}

/// A reader of the journal in `dir`, for recovery, `quantum ctl journal` and consumers that
/// must see every event (they catch up here on what the `results` ring no longer holds).
///
/// It reads while the daemon appends: in each segment only the records the writer has
/// published (whole), so a reader never sees one half written; a segment not created yet is
/// not there (segments appear under their name with their header written). A bad record
/// below what was published is corruption ([`JournalError::Corrupt`]), except, with `fsync`
/// on, after the last flush (a power loss cut it: the end). Read in bounded pieces with
/// [`Reader::read_batch`].
#[derive(Debug)]
pub struct Reader {
    segs: Vec<(u64, PathBuf)>,
    /// Scan each segment for its end instead of trusting `published` (no writer is live).
    whole: bool,
}

impl Reader {
    /// The journal in `dir` as it is now.
    pub fn open(dir: &Path) -> Result<Reader, JournalError> {
        Ok(Reader {
            segs: segments(dir)?,
            whole: false,
        })
    }

    /// The oldest sequence number still kept, if any.
    pub fn first_seq(&self) -> Option<u64> {
        self.segs.first().map(|(s, _)| *s)
    }

    /// Calls `f(seq, record)` for every good record from `from` on, in order, up to the last
    /// one published; returns the next sequence number. A bad record followed by a good one
    /// is [`JournalError::Corrupt`]; a bad last record is the end (torn).
    pub fn read_from(
        &self,
        from: u64,
        f: impl FnMut(u64, &Record) -> Result<(), JournalError>,
    ) -> Result<u64, JournalError> {
        self.read_segments(from, u64::MAX, u64::MAX, f)
    }

    /// [`Reader::read_from`], but only the segments that start at or before `upto` (a sealed
    /// segment's last record: the compactor reads what the writer no longer touches).
    pub fn read_until(
        &self,
        from: u64,
        upto: u64,
        f: impl FnMut(u64, &Record) -> Result<(), JournalError>,
    ) -> Result<u64, JournalError> {
        self.read_segments(from, upto, u64::MAX, f)
    }

    /// Appends to `out` at most `max` records from `from` on, in order (at most `max` times
    /// [`RECORD_BYTES`] of memory); returns the sequence number after the last one read: call
    /// again from there for more. Fewer than `max` means the journal has no more published
    /// yet. Errors as [`Reader::read_from`].
    pub fn read_batch(
        &self,
        from: u64,
        max: usize,
        out: &mut Vec<(u64, Record)>,
    ) -> Result<u64, JournalError> {
        out.reserve(max.min(1 << 16));
        self.read_segments(from, u64::MAX, max as u64, |seq, r| {
            out.push((seq, *r));
            Ok(())
        })
    }

    fn read_segments(
        &self,
        from: u64,
        upto: u64,
        max: u64,
        mut f: impl FnMut(u64, &Record) -> Result<(), JournalError>,
    ) -> Result<u64, JournalError> {
        let mut next = from;
        let mut left = max;
        for (i, (first, path)) in self.segs.iter().enumerate() {
            let next_first = self.segs.get(i + 1).map(|(s, _)| *s);
            if next_first.is_some_and(|n| n <= from) {
                continue;
            }
            if *first > upto || left == 0 {
                break;
            }
            if *first > next {
                return Err(JournalError::Gap {
                    path: path.clone(),
                    expected: next,
                    found: *first,
                });
            }
            let r = match SegmentReader::open(path)? {
                Some(r) => r,
                // The last segment without its header yet (an older binary creates segments
                // in place): nothing in it yet.
                None if next_first.is_none() => break,
                None => return Err(blank_segment(path)),
            };
            let start = next.max(*first);
            let bounds = Bounds {
                from: next,
                max: left,
                published: if self.whole { None } else { r.published() },
                synced: r.synced(),
            };
            let scan: Scan = r.read(bounds, &mut f)?;
            left -= scan.next_seq.saturating_sub(start).min(left);
            next = scan.next_seq;
            if scan.full {
                break;
            }
            if scan.torn_at.is_some() {
                if next_first.is_some() {
                    return Err(JournalError::Corrupt {
                        path: path.clone(),
                        offset: scan.torn_at.unwrap_or(0),
                        what: "a bad record at the end of a segment that is followed by another"
                            .into(),
                    });
                }
                break;
            }
        }
        Ok(next)
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Segments checked.
    pub segments: usize,
    /// Good records.
    pub records: u64,
    /// First and last sequence numbers, if any record.
    pub range: Option<(u64, u64)>,
    /// A bad last record (torn tail: cut at the next start), with its segment and offset.
    /// Only looked for when no writer is live (a live writer's next record is not torn).
    pub torn_tail: Option<(PathBuf, u64)>,
}

/// Checks every record of every segment in `dir` without changing anything. With a writer
/// appending (its lock is held), every record it has published; otherwise every record there
/// is, and the torn tail a restart would cut.
pub fn verify(dir: &Path) -> Result<VerifyReport, JournalError> {
    let mut tries = 0;
    loop {
        match verify_once(dir) {
            // A segment removed while we read (a snapshot covered it): check the journal as
            // it is now.
            Err(JournalError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && tries < 3 =>
            {
                tries += 1;
            }
            r => return r,
        }
    }
}

fn verify_once(dir: &Path) -> Result<VerifyReport, JournalError> {
    let live = writer_is_live(dir);
    let reader = Reader {
        segs: segments(dir)?,
        whole: !live,
    };
    let mut records = 0u64;
    let mut first = None;
    let mut last = None;
    let start = reader.first_seq().unwrap_or(FIRST_SEQ);
    reader.read_from(start, |seq, _| {
        records += 1;
        first.get_or_insert(seq);
        last = Some(seq);
        Ok(())
    })?;
    let torn_tail = match reader.segs.last() {
        Some((_, path)) if !live => match SegmentReader::open(path)? {
            Some(r) => r.scan()?.torn_at.map(|o| (path.clone(), o)),
            None => None,
        },
        _ => None,
    };
    Ok(VerifyReport {
        segments: reader.segs.len(),
        records,
        range: first.zip(last),
        torn_tail,
    })
}

#[cfg(test)]
mod tests;
