//! One segment file: a 128-byte header, then fixed 80-byte records.
//!
//! ```text
//! header   magic "QNTMJRNL" u64 | version u32 | record bytes u32 | wire layout hash u64 |
//!          first seq u64 | created ms u64 | zeros | crc32c of the bytes before it u32 @124
//! record   seq u64 | crc32c u32 | marker u32 | payload 64   (crc over everything but itself)
//! ```
//!
//! An empty slot is all zeros. Records are written in order with no gaps, so a segment reads
//! as good records, then (maybe) one bad record, then zeros; anything else is corruption.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapMut, MmapOptions};

use super::{io_err, JournalError};
use crate::wire::{Record, LAYOUT_HASH, RECORD_SIZE};

/// Bytes of a segment's header.
pub const SEGMENT_HEADER_BYTES: usize = 128;
/// Bytes of one record in a segment.
pub const RECORD_BYTES: usize = 16 + RECORD_SIZE;

const MAGIC: u64 = u64::from_le_bytes(*b"QNTMJRNL");
const VERSION: u32 = 1;
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
    let crc = crc32c::crc32c(&h[..124]);
    h[124..128].copy_from_slice(&crc.to_le_bytes());
    h
}

fn check_header(path: &Path, b: &[u8]) -> Result<u64, JournalError> {
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
    if le32(b, 124) != crc32c::crc32c(&b[..124]) {
        return Err(bad("the header's checksum does not match".into()));
    }
    if le32(b, 8) != VERSION || le32(b, 12) != RECORD_BYTES as u32 {
        return Err(bad(format!(
            "format version {} with {}-byte records; this binary writes version {VERSION} with {RECORD_BYTES}-byte records",
            le32(b, 8),
            le32(b, 12)
        )));
    }
    if le64(b, 16) != LAYOUT_HASH {
        return Err(bad(format!(
            "written with record layout {:#018x}; this binary's is {LAYOUT_HASH:#018x}",
            le64(b, 16)
        )));
    }
    Ok(le64(b, 24))
}

/// What scanning a segment found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Scan {
    /// The sequence number after the last good record.
    pub(super) next_seq: u64,
    /// Byte offset of a bad last record (a torn tail), if any.
    pub(super) torn_at: Option<u64>,
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

/// Walks the records of `b` (a whole segment), calling `f` for those from `from` on.
fn walk(
    path: &Path,
    b: &[u8],
    first_seq: u64,
    from: u64,
    f: &mut dyn FnMut(u64, &Record) -> Result<(), JournalError>,
) -> Result<Scan, JournalError> {
    let slots = (b.len() - SEGMENT_HEADER_BYTES) / RECORD_BYTES;
    let slot = |i: usize| {
        let at = SEGMENT_HEADER_BYTES + i * RECORD_BYTES;
        &b[at..at + RECORD_BYTES]
    };
    let mut i = 0;
    while i < slots {
        let s = slot(i);
        let seq = first_seq + i as u64;
        let good = le64(s, 0) == seq && le32(s, 12) == MARKER && le32(s, 8) == record_crc(s);
        if !good {
            break;
        }
        if seq >= from {
            let mut r = [0u8; RECORD_SIZE];
            r.copy_from_slice(&s[16..]);
            f(seq, &r)?;
        }
        i += 1;
    }
    let next_seq = first_seq + i as u64;
    if i == slots {
        return Ok(Scan {
            next_seq,
            torn_at: None,
        });
    }
    let offset = (SEGMENT_HEADER_BYTES + i * RECORD_BYTES) as u64;
    // Everything after the first bad slot must be empty.
    let rest = SEGMENT_HEADER_BYTES + (i + 1) * RECORD_BYTES;
    if let Some(k) = first_nonzero(&b[rest.min(b.len())..]) {
        let j = i + 1 + k / RECORD_BYTES;
        let at = (SEGMENT_HEADER_BYTES + j * RECORD_BYTES) as u64;
        return Err(JournalError::Corrupt {
            path: path.to_owned(),
            offset,
            what: format!(
                "record {} is missing or damaged and data follows it at byte {at}",
                first_seq + i as u64
            ),
        });
    }
    let empty = slot(i).iter().all(|&x| x == 0);
    Ok(Scan {
        next_seq,
        torn_at: (!empty).then_some(offset),
    })
}

/// A segment mapped read-only.
pub(super) struct SegmentReader {
    path: PathBuf,
    map: Mmap,
    first_seq: u64,
}

impl SegmentReader {
    pub(super) fn open(path: &Path) -> Result<SegmentReader, JournalError> {
        let file = File::open(path).map_err(io_err(path))?;
        // SAFETY: the file is only ever written through the journal's own mapping (appends at
        // the end, never rewritten in place); we read it as bytes and validate every record's
        // checksum, so a concurrent append shows at worst as a bad last record.
        let map = unsafe { Mmap::map(&file) }.map_err(io_err(path))?;
        let first_seq = check_header(path, &map)?;
        Ok(SegmentReader {
            path: path.to_owned(),
            map,
            first_seq,
        })
    }

    pub(super) fn first_seq(&self) -> u64 {
        self.first_seq
    }

    pub(super) fn scan(&self) -> Result<Scan, JournalError> {
        walk(
            &self.path,
            &self.map,
            self.first_seq,
            u64::MAX,
            &mut |_, _| Ok(()),
        )
    }

    pub(super) fn for_each(
        &self,
        from: u64,
        f: &mut dyn FnMut(u64, &Record) -> Result<(), JournalError>,
    ) -> Result<Scan, JournalError> {
        walk(&self.path, &self.map, self.first_seq, from, f)
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

impl SegmentFile {
    /// Creates a segment of `bytes` (whole records, at least 1 MiB) starting at `first_seq`.
    pub(super) fn create(
        path: &Path,
        first_seq: u64,
        bytes: u64,
    ) -> Result<SegmentFile, JournalError> {
        let slots = (bytes.max(1 << 20) as usize - SEGMENT_HEADER_BYTES) / RECORD_BYTES;
        let size = SEGMENT_HEADER_BYTES + slots * RECORD_BYTES;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io_err(path))?;
        file.set_len(size as u64).map_err(io_err(path))?;
        allocate(&file, size as u64).map_err(io_err(path))?;
        // SAFETY: we created the file and are its only writer; nobody truncates it while mapped.
        // `populate`: the pages are faulted in now, not one by one on the append path.
        let mut map =
            unsafe { MmapOptions::new().populate().map_mut(&file) }.map_err(io_err(path))?;
        map[..SEGMENT_HEADER_BYTES].copy_from_slice(&header(first_seq));
        map.flush_range(0, SEGMENT_HEADER_BYTES)
            .map_err(io_err(path))?;
        Ok(SegmentFile {
            path: path.to_owned(),
            map,
            first_seq,
            len: 0,
            capacity: slots,
            synced: SEGMENT_HEADER_BYTES,
        })
    }

    /// Maps an existing segment for appending (after it was checked).
    pub(super) fn open(path: &Path, first_seq: u64) -> Result<SegmentFile, JournalError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err(path))?;
        // SAFETY: as in `create`; the instance lock keeps a second writer away.
        let map = unsafe { MmapMut::map_mut(&file) }.map_err(io_err(path))?;
        check_header(path, &map)?;
        let capacity = (map.len() - SEGMENT_HEADER_BYTES) / RECORD_BYTES;
        Ok(SegmentFile {
            path: path.to_owned(),
            map,
            first_seq,
            len: 0,
            capacity,
            synced: SEGMENT_HEADER_BYTES,
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn set_len_records(&mut self, n: u64) {
        self.len = (n as usize).min(self.capacity);
        self.synced = SEGMENT_HEADER_BYTES + self.len * RECORD_BYTES;
    }

    /// Zeroes every slot from record `n` on that is not already zero (a torn write).
    pub(super) fn clear_from(&mut self, n: u64) -> Result<(), JournalError> {
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

    #[inline]
    pub(super) fn is_full(&self) -> bool {
        self.len == self.capacity
    }

    /// Writes record `seq` into the next slot. The caller checked there is room.
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
    }

    /// Flushes the records written since the last call to disk (`msync`).
    pub(super) fn sync(&mut self) -> Result<(), JournalError> {
        let end = SEGMENT_HEADER_BYTES + self.len * RECORD_BYTES;
        if end > self.synced {
            self.map
                .flush_range(self.synced, end - self.synced)
                .map_err(io_err(&self.path))?;
            self.synced = end;
        }
        Ok(())
    }
}
