//! One segment file: a 128-byte header, then fixed 80-byte records.
//!
//! ```text
//! header   magic "QNTMJRNL" u64 | version u32 | record bytes u32 | wire layout hash u64 |
//!          first seq u64 | created ms u64 | zeros | crc32c of bytes 0..60 u32 @60 |
//!          published u64 @64 | synced u64 @72 | zeros
//! record   seq u64 | crc32c u32 | marker u32 | payload 64   (crc over everything but itself)
//! ```
//!
//! An empty slot is all zeros. Records are written in order with no gaps, so a segment reads
//! as good records, then (maybe) one bad record, then zeros; anything else is corruption.
//!
//! `published` is how many records of this segment are completely written: the writer stores
//! it (Release) after each record, readers load it (Acquire) and read no further, so a reader
//! never looks at a slot being written (the Chronicle tailer's rule). `synced` is, with
//! `fsync` on, [`SYNCED`] plus how many records `msync` has flushed; it is stored after that
//! `msync` returns, then flushed itself. Damage at or after it is a write a power loss cut
//! short (a torn tail), whatever follows; damage before it is corruption.
//!
//! Version 1 segments (written before `published` existed; their checksum covers bytes
//! 0..124) are still read, by scanning: the writer never appends to one, it starts a new
//! segment after it.
//!
//! A segment is created under a temporary name (`.journal-<first seq>.qj.tmp`), sized,
//! allocated and given its header, then renamed: a segment under its own name always has its
//! header, and a full disk leaves no empty segment behind.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapMut, MmapOptions};

use super::{io_err, JournalError};
use crate::sync::{AtomicU64, Ordering};
use crate::wire::{layout_reads, Record, LAYOUT_HASH, RECORD_SIZE};

/// Bytes of a segment's header.
pub const SEGMENT_HEADER_BYTES: usize = 128;
/// Bytes of one record in a segment.
pub const RECORD_BYTES: usize = 16 + RECORD_SIZE;

const MAGIC: u64 = u64::from_le_bytes(*b"QNTMJRNL");
const VERSION: u32 = 2;
/// Segments without `published`, read by scanning.
const VERSION_1: u32 = 1;
/// Bytes of a version 2 header the checksum covers (it sits right after them).
const IMMUTABLE: usize = 60;
/// Byte offset of the `published` word.
const PUBLISHED_AT: usize = 64;
/// Byte offset of the `synced` word.
const SYNCED_AT: usize = 72;
/// Set in `synced` when the segment is written with `fsync` on; the low bits count records.
pub(super) const SYNCED: u64 = 1 << 63;
/// Marks a written record (a zero slot is empty).
const MARKER: u32 = u32::from_le_bytes(*b"QREC");

fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn record_crc(slot: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&slot[0..8]), &slot[12..RECORD_BYTES])
}

fn header(first_seq: u64) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut h = [0u8; SEGMENT_HEADER_BYTES];
    h[0..8].copy_from_slice(&MAGIC.to_le_bytes());
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(RECORD_BYTES as u32).to_le_bytes());
    h[16..24].copy_from_slice(&LAYOUT_HASH.to_le_bytes());
    h[24..32].copy_from_slice(&first_seq.to_le_bytes());
    h[32..40].copy_from_slice(&crate::liveness::unix_ms().to_le_bytes());
    let crc = crc32c::crc32c(&h[..IMMUTABLE]);
    h[IMMUTABLE..IMMUTABLE + 4].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Whether the header bytes are all zero: a segment whose creation never reached its header
/// (left by a binary that created segments in place).
pub(super) fn blank_header(b: &[u8]) -> bool {
    b.len() < SEGMENT_HEADER_BYTES || first_nonzero(&b[..SEGMENT_HEADER_BYTES]).is_none()
}

/// Whether the file at `path` is all zero (a segment whose creation never reached its
/// header, holding nothing).
pub(super) fn blank_file(path: &Path) -> Result<bool, JournalError> {
    let file = File::open(path).map_err(io_err(path))?;
    if file.metadata().map_err(io_err(path))?.len() == 0 {
        return Ok(true);
    }
    // SAFETY: read-only mapping of a segment no writer holds (the caller holds the writer's
    // lock); only read as bytes.
    let map = unsafe { Mmap::map(&file) }.map_err(io_err(path))?;
    Ok(first_nonzero(&map).is_none())
}

/// A header word written while the segment is live.
///
/// # Safety
/// `base` is the start of a mapping of a segment at least a header long (page-aligned, so the
/// word at `at`, a multiple of 8 inside the header, is 8-aligned) that stays mapped for `'a`,
/// and these bytes are only ever accessed as this atomic while the segment is shared.
unsafe fn word<'a>(base: *const u8, at: usize) -> &'a AtomicU64 {
    debug_assert!(at % 8 == 0 && at + 8 <= SEGMENT_HEADER_BYTES);
    // SAFETY: per the function's contract: in bounds, aligned, accessed only atomically; an
    // atomic load from a read-only mapping is a plain load on the platforms we build for.
    unsafe { &*(base.add(at).cast::<AtomicU64>()) }
}

/// What a segment's header says.
#[derive(Debug, Clone, Copy)]
pub(super) struct Header {
    pub(super) first_seq: u64,
    pub(super) version: u32,
    /// The wire layout hash the segment's records were written with.
    pub(super) layout: u64,
}

/// The wire layout hash segment `path` was written with (its header checked as a reader
/// checks it); `None` for a segment whose header was never written (a crash at creation).
pub(super) fn layout_of(path: &Path) -> Result<Option<u64>, JournalError> {
    use std::io::Read;
    let mut b = [0u8; SEGMENT_HEADER_BYTES];
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut n = 0;
    while n < b.len() {
        match f.read(&mut b[n..]).map_err(io_err(path))? {
            0 => break,
            k => n += k,
        }
    }
    if blank_header(&b) {
        return Ok(None);
    }
    check_header(path, &b).map(|h| Some(h.layout))
}

fn check_header(path: &Path, b: &[u8]) -> Result<Header, JournalError> {
    let bad = |what: String| JournalError::BadSegment {
        path: path.to_owned(),
        what,
    };
    if b.len() < SEGMENT_HEADER_BYTES {
        return Err(bad(format!("{} bytes, shorter than a header", b.len())));
    }
    if le64(b, 0) != MAGIC {
        return Err(bad("not a journal segment (wrong magic)".into()));
    }
    let version = le32(b, 8);
    let crc_ok = match version {
        VERSION_1 => le32(b, 124) == crc32c::crc32c(&b[..124]),
        _ => le32(b, IMMUTABLE) == crc32c::crc32c(&b[..IMMUTABLE]),
    };
    if !crc_ok {
        return Err(bad("the header's checksum does not match".into()));
    }
    if (version != VERSION && version != VERSION_1) || le32(b, 12) != RECORD_BYTES as u32 {
        return Err(bad(format!(
            "format version {version} with {}-byte records; this binary reads versions {VERSION_1} and {VERSION} with {RECORD_BYTES}-byte records",
            le32(b, 12)
        )));
    }
    if !layout_reads(le64(b, 16)) {
        return Err(bad(format!(
            "written with record layout {:#018x}; this binary's is {LAYOUT_HASH:#018x} and reads only layouts it extends",
            le64(b, 16)
        )));
    }
    Ok(Header {
        first_seq: le64(b, 24),
        version,
        layout: le64(b, 16),
    })
}

/// What scanning a segment found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Scan {
    /// The sequence number after the last good record read.
    pub(super) next_seq: u64,
    /// Byte offset of a torn tail (a write cut short), if any.
    pub(super) torn_at: Option<u64>,
    /// Non-empty slots from the torn tail on (what cutting it removes); whole scans only.
    pub(super) torn_records: u64,
    /// Bytes from the torn tail to the end of the last non-zero slot; whole scans only.
    pub(super) torn_bytes: u64,
    /// Stopped after delivering `max` records.
    pub(super) full: bool,
}

/// Which records a walk reads.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    /// Deliver records from this sequence number on.
    pub(super) from: u64,
    /// Deliver at most this many.
    pub(super) max: u64,
    /// Read only this many slots, the writer's published count (a live segment), starting at
    /// `from`; `None` scans the whole segment from its first slot and finds its end from the
    /// bytes (the writer at open, a journal with no writer, a version 1 segment).
    pub(super) published: Option<u64>,
    /// Records flushed by the last completed `msync`, when the segment is written with
    /// `fsync` on: damage at or after it is a torn tail even with data after it.
    pub(super) synced: Option<u64>,
}

impl Bounds {
    /// Every record, whole scan.
    pub(super) fn whole(synced: Option<u64>) -> Bounds {
        Bounds {
            from: 0,
            max: u64::MAX,
            published: None,
            synced,
        }
    }
}

/// Index of the first non-zero byte of `b`, looking at eight bytes at a time (the empty rest
/// of a segment is tens of MiB).
fn first_nonzero(b: &[u8]) -> Option<usize> {
    let words = b.chunks_exact(8);
    let tail = words.remainder();
    for (n, w) in words.enumerate() {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        if u64::from_ne_bytes(a) != 0 {
            return w.iter().position(|&x| x != 0).map(|p| n * 8 + p);
        }
    }
    tail.iter()
        .position(|&x| x != 0)
        .map(|p| b.len() - tail.len() + p)
}

/// Index of the last non-zero byte of `b`, eight bytes at a time.
fn last_nonzero(b: &[u8]) -> Option<usize> {
    let first = first_nonzero(b)?;
    let body = &b[first..];
    let words = body.len() / 8;
    let tail = &body[words * 8..];
    if let Some(p) = tail.iter().rposition(|&x| x != 0) {
        return Some(first + words * 8 + p);
    }
    let w = (0..words).rev().find(|&w| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&body[w * 8..w * 8 + 8]);
        u64::from_ne_bytes(a) != 0
    })?;
    let p = body[w * 8..w * 8 + 8].iter().rposition(|&x| x != 0)?;
    Some(first + w * 8 + p)
}

/// Walks the records of `b` (a whole segment), calling `f` for those `bounds` select.
fn walk(
    path: &Path,
    b: &[u8],
    first_seq: u64,
    bounds: Bounds,
    f: &mut dyn FnMut(u64, &Record) -> Result<(), JournalError>,
) -> Result<Scan, JournalError> {
    let slots = (b.len() - SEGMENT_HEADER_BYTES) / RECORD_BYTES;
    let slot = |i: usize| {
        let at = SEGMENT_HEADER_BYTES + i * RECORD_BYTES;
        &b[at..at + RECORD_BYTES]
    };
    let offset = |i: usize| (SEGMENT_HEADER_BYTES + i * RECORD_BYTES) as u64;
    let limit = bounds.published.map_or(slots, |p| {
        usize::try_from(p).unwrap_or(usize::MAX).min(slots)
    });
    // A live read starts at `from`: the records before it are not wanted, and were checked
    // by whoever read them (verify reads them all).
    let mut i = match bounds.published {
        Some(_) => usize::try_from(bounds.from.saturating_sub(first_seq))
            .unwrap_or(usize::MAX)
            .min(limit),
        None => 0,
    };
    let mut delivered = 0u64;
    while i < limit {
        let s = slot(i);
        let seq = first_seq + i as u64;
        let good = le64(s, 0) == seq && le32(s, 12) == MARKER && le32(s, 8) == record_crc(s);
        if !good {
            break;
        }
        if seq >= bounds.from {
            if delivered == bounds.max {
                return Ok(Scan {
                    next_seq: seq,
                    full: true,
                    ..Scan::default()
                });
            }
            let mut r = [0u8; RECORD_SIZE];
            r.copy_from_slice(&s[16..]);
            f(seq, &r)?;
            delivered += 1;
        }
        i += 1;
    }
    let next_seq = first_seq + i as u64;
    let unsynced = bounds.synced.is_some_and(|n| i as u64 >= n);
    if let Some(published) = bounds.published {
        if i == limit {
            return Ok(Scan {
                next_seq,
                ..Scan::default()
            });
        }
        // A bad record below what the writer published: written and published whole, so
        // damaged since, unless a power loss cut it (it was not yet flushed).
        if unsynced {
            return Ok(Scan {
                next_seq,
                torn_at: Some(offset(i)),
                ..Scan::default()
            });
        }
        return Err(JournalError::Corrupt {
            path: path.to_owned(),
            offset: offset(i),
            what: format!(
                "record {next_seq} is damaged, below the {published} records the writer published in this segment"
            ),
        });
    }
    if i == slots {
        return Ok(Scan {
            next_seq,
            ..Scan::default()
        });
    }
    let start = SEGMENT_HEADER_BYTES + i * RECORD_BYTES;
    // Everything after the first bad slot must be empty, unless it was never flushed.
    let rest = start + RECORD_BYTES;
    if let Some(k) = first_nonzero(&b[rest.min(b.len())..]) {
        if !unsynced {
            let j = i + 1 + k / RECORD_BYTES;
            return Err(JournalError::Corrupt {
                path: path.to_owned(),
                offset: offset(i),
                what: format!(
                    "record {next_seq} is missing or damaged and data follows it at byte {}",
                    offset(j)
                ),
            });
        }
    }
    let Some(last) = last_nonzero(&b[start..]) else {
        return Ok(Scan {
            next_seq,
            ..Scan::default()
        });
    };
    let torn_bytes = last as u64 + 1;
    let torn_records = (0..(last / RECORD_BYTES) + 1)
        .filter(|k| first_nonzero(slot(i + k)).is_some())
        .count() as u64;
    Ok(Scan {
        next_seq,
        torn_at: Some(offset(i)),
        torn_records,
        torn_bytes,
        full: false,
    })
}

/// A segment mapped read-only.
pub(super) struct SegmentReader {
    path: PathBuf,
    map: Mmap,
    header: Header,
}

impl SegmentReader {
    /// Maps and checks a segment; `Ok(None)` for one whose header was never written (all
    /// zero: see [`blank_header`]).
    pub(super) fn open(path: &Path) -> Result<Option<SegmentReader>, JournalError> {
        let file = File::open(path).map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        if len < SEGMENT_HEADER_BYTES as u64 {
            let b = std::fs::read(path).map_err(io_err(path))?;
            if blank_header(&b) && first_nonzero(&b).is_none() {
                return Ok(None);
            }
            return Err(JournalError::BadSegment {
                path: path.to_owned(),
                what: format!("{len} bytes, shorter than a header"),
            });
        }
        // SAFETY: the file is only ever written through the journal writer's mapping: records
        // appended in order, each published (`published`, Release) after it is whole, and the
        // header's words stored atomically. We read record bytes only below `published`
        // (Acquire) of a live segment, or from a segment no writer holds, and validate every
        // record's checksum; a segment is never truncated while it exists under its name.
        let map = unsafe { Mmap::map(&file) }.map_err(io_err(path))?;
        if blank_header(&map) {
            return Ok(None);
        }
        let header = check_header(path, &map)?;
        Ok(Some(SegmentReader {
            path: path.to_owned(),
            map,
            header,
        }))
    }

    pub(super) fn first_seq(&self) -> u64 {
        self.header.first_seq
    }

    /// Whether the writer appends to this segment: one of this version and of this binary's
    /// record layout (else it starts a new one, so a segment's header always names the layout
    /// of every record in it: [`crate::wire::layout_has`] reads it).
    pub(super) fn appendable(&self) -> bool {
        self.header.version == VERSION && self.header.layout == LAYOUT_HASH
    }

    /// Records the writer has published (`None`: a version 1 segment, read by scanning).
    pub(super) fn published(&self) -> Option<u64> {
        if self.header.version == VERSION_1 {
            return None;
        }
        // SAFETY: a version 2 mapping at least a header long; the word is only accessed
        // atomically (see `word`).
        let w = unsafe { word(self.map.as_ptr(), PUBLISHED_AT) };
        // SYNC POINT: Acquire pairs with the writer's Release store in `SegmentFile::push`
        // (and `start`): every byte of the records it counts is visible to us.
        Some(w.load(Ordering::Acquire))
    }

    /// Records flushed by the last completed `msync` (`None`: not written with `fsync`).
    pub(super) fn synced(&self) -> Option<u64> {
        if self.header.version == VERSION_1 {
            return None;
        }
        // SAFETY: as in `published`.
        let w = unsafe { word(self.map.as_ptr(), SYNCED_AT) };
        // Acquire: pairs with the Release store in `SegmentFile::sync`; only the value is used
        // (to tell a torn tail from corruption), so this is for a coherent value, not data.
        let v = w.load(Ordering::Acquire);
        (v & SYNCED != 0).then_some(v & !SYNCED)
    }

    /// Scans the whole segment for its end (no writer appends to it meanwhile).
    pub(super) fn scan(&self) -> Result<Scan, JournalError> {
        self.read(Bounds::whole(self.synced()), &mut |_, _| Ok(()))
    }

    pub(super) fn read(
        &self,
        bounds: Bounds,
        f: &mut dyn FnMut(u64, &Record) -> Result<(), JournalError>,
    ) -> Result<Scan, JournalError> {
        walk(&self.path, &self.map, self.header.first_seq, bounds, f)
    }
}

/// A segment mapped for appending.
pub(super) struct SegmentFile {
    path: PathBuf,
    map: MmapMut,
    first_seq: u64,
    /// Records written.
    len: usize,
    /// Records it holds.
    capacity: usize,
    /// Byte offset up to which the mapping was flushed.
    synced: usize,
    /// Records the header's `synced` word counts as flushed (on disk too), if it is known.
    synced_stored: Option<usize>,
}

/// Reserves the file's blocks now, so a full disk is an error here rather than a fault while
/// appending through the mapping. Filesystems that cannot preallocate keep the sparse file.
fn allocate(file: &std::fs::File, size: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let Ok(len) = libc::off_t::try_from(size) else {
        return Ok(());
    };
    // SAFETY: `file` is an open, writable descriptor for the duration of the call.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    match rc {
        0 | libc::EOPNOTSUPP | libc::EINVAL => Ok(()),
        e => Err(std::io::Error::from_raw_os_error(e)),
    }
}

/// Whether an I/O error means the disk (or the process's file-size limit, or a quota) has no
/// room: the caller can wait for space and try again.
fn is_no_space(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EFBIG)
    )
}

/// The temporary name a segment is created under (not a segment name: `segments` skips it).
pub(super) fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(Default::default, |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.tmp"))
}

impl SegmentFile {
    /// Creates a segment of `bytes` (whole records, at least 1 MiB) starting at `first_seq`:
    /// under a temporary name, sized, allocated, mapped with its pages populated and its header
    /// written, then renamed to `path`. A failure removes the temporary file; no room is
    /// [`JournalError::NoSpace`].
    pub(super) fn create(
        path: &Path,
        first_seq: u64,
        bytes: u64,
        fsync: bool,
    ) -> Result<SegmentFile, JournalError> {
        let tmp = temp_path(path);
        let made = Self::create_at(&tmp, path, first_seq, bytes, fsync);
        if made.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        made
    }

    fn create_at(
        tmp: &Path,
        path: &Path,
        first_seq: u64,
        bytes: u64,
        fsync: bool,
    ) -> Result<SegmentFile, JournalError> {
        let fail = |e: std::io::Error| {
            if is_no_space(&e) {
                JournalError::NoSpace {
                    path: path.to_owned(),
                    source: e,
                }
            } else {
                io_err(tmp)(e)
            }
        };
        let slots = (bytes.max(1 << 20) as usize - SEGMENT_HEADER_BYTES) / RECORD_BYTES;
        let size = SEGMENT_HEADER_BYTES + slots * RECORD_BYTES;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp)
            .map_err(fail)?;
        file.set_len(size as u64).map_err(fail)?;
        allocate(&file, size as u64).map_err(fail)?;
        // SAFETY: we created the file and are its only writer; nobody truncates it while mapped.
        // `populate`: the pages are faulted in now, not one by one on the append path.
        let mut map = unsafe { MmapOptions::new().populate().map_mut(&file) }.map_err(fail)?;
        map[..SEGMENT_HEADER_BYTES].copy_from_slice(&header(first_seq));
        if fsync {
            map[SYNCED_AT..SYNCED_AT + 8].copy_from_slice(&SYNCED.to_le_bytes());
        }
        map.flush_range(0, SEGMENT_HEADER_BYTES).map_err(fail)?;
        // The writer's lock keeps every other writer away, so nothing can appear under `path`
        // between this check and the rename (which would replace it).
        if path.exists() {
            return Err(JournalError::BadSegment {
                path: path.to_owned(),
                what: "a segment of this name exists already".into(),
            });
        }
        std::fs::rename(tmp, path).map_err(io_err(path))?;
        if fsync {
            if let Some(dir) = path.parent() {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(io_err(dir))?;
            }
        }
        Ok(SegmentFile {
            path: path.to_owned(),
            map,
            first_seq,
            len: 0,
            capacity: slots,
            synced: SEGMENT_HEADER_BYTES,
            synced_stored: fsync.then_some(0),
        })
    }

    /// Maps an existing version 2 segment for appending (after it was checked), and takes up
    /// appending after its first `records` records: what follows them is zeroed (a torn
    /// write), they are published, and with `fsync` flushed and counted as synced.
    pub(super) fn open(
        path: &Path,
        first_seq: u64,
        records: u64,
        fsync: bool,
    ) -> Result<SegmentFile, JournalError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err(path))?;
        // SAFETY: as in `create`; the writer's lock keeps a second writer away.
        let map = unsafe { MmapMut::map_mut(&file) }.map_err(io_err(path))?;
        let h = check_header(path, &map)?;
        if h.version != VERSION {
            return Err(JournalError::BadSegment {
                path: path.to_owned(),
                what: format!("version {} segments are not appended to", h.version),
            });
        }
        let capacity = (map.len() - SEGMENT_HEADER_BYTES) / RECORD_BYTES;
        let mut f = SegmentFile {
            path: path.to_owned(),
            map,
            first_seq,
            len: (records as usize).min(capacity),
            capacity,
            synced: SEGMENT_HEADER_BYTES,
            synced_stored: None,
        };
        // Zero what a torn write left behind, so a reader never mistakes it.
        f.clear_from(f.len as u64)?;
        f.publish();
        if fsync {
            f.synced = SEGMENT_HEADER_BYTES;
            f.sync()?;
        } else {
            f.synced = SEGMENT_HEADER_BYTES + f.len * RECORD_BYTES;
            f.store_synced(0);
        }
        Ok(f)
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Zeroes every slot from record `n` on that is not already zero (a torn write).
    fn clear_from(&mut self, n: u64) -> Result<(), JournalError> {
        let start = SEGMENT_HEADER_BYTES + (n as usize).min(self.capacity) * RECORD_BYTES;
        if let Some(rel) = last_nonzero(&self.map[start..]) {
            let end = start + rel + 1;
            self.map[start..end].fill(0);
            self.map
                .flush_range(start, end - start)
                .map_err(io_err(&self.path))?;
        }
        Ok(())
    }

    /// A header word of our mapping.
    fn word(&mut self, at: usize) -> &AtomicU64 {
        // SAFETY: the mapping is a version 2 segment at least a header long, page-aligned,
        // mapped while `self` lives; after creation its header words are only accessed as
        // atomics (the record writes in `push` never touch the header). The pointer comes
        // from the mutable mapping.
        unsafe { word(self.map.as_mut_ptr(), at) }
    }

    /// Tells readers how many records are whole.
    #[inline]
    fn publish(&mut self) {
        let n = self.len as u64;
        // SYNC POINT: Release pairs with the Acquire load in `SegmentReader::published`: the
        // bytes of every record counted are written before a reader can see the count.
        self.word(PUBLISHED_AT).store(n, Ordering::Release);
    }

    fn store_synced(&mut self, v: u64) {
        // Release: pairs with the Acquire load in `SegmentReader::synced` (a coherent value).
        self.word(SYNCED_AT).store(v, Ordering::Release);
    }

    #[inline]
    pub(super) fn is_full(&self) -> bool {
        self.len == self.capacity
    }

    /// Writes record `seq` into the next slot and publishes it. The caller checked there is
    /// room.
    #[inline]
    pub(super) fn push(&mut self, seq: u64, record: &Record) {
        debug_assert_eq!(seq, self.first_seq + self.len as u64);
        let at = SEGMENT_HEADER_BYTES + self.len * RECORD_BYTES;
        let s = &mut self.map[at..at + RECORD_BYTES];
        s[0..8].copy_from_slice(&seq.to_le_bytes());
        s[12..16].copy_from_slice(&MARKER.to_le_bytes());
        s[16..].copy_from_slice(record);
        let crc = record_crc(s);
        s[8..12].copy_from_slice(&crc.to_le_bytes());
        self.len += 1;
        self.publish();
    }

    /// Flushes the records written since the last call to disk (`msync`), then records how
    /// many are flushed in the header and flushes that.
    pub(super) fn sync(&mut self) -> Result<(), JournalError> {
        let end = SEGMENT_HEADER_BYTES + self.len * RECORD_BYTES;
        if end > self.synced {
            self.map
                .flush_range(self.synced, end - self.synced)
                .map_err(io_err(&self.path))?;
            self.synced = end;
        }
        if self.synced_stored == Some(self.len) {
            return Ok(());
        }
        // Only after the records' msync returned: `synced` on disk never counts a record
        // that is not on disk.
        self.store_synced(SYNCED | self.len as u64);
        self.synced_stored = Some(self.len);
        self.map
            .flush_range(0, SEGMENT_HEADER_BYTES)
            .map_err(io_err(&self.path))?;
        Ok(())
    }
}
