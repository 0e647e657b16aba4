//! Snapshots: the state the journal's events add up to, after event `seq`, so recovery replays
//! only what came after it. The bytes are the state's own encoding (the core's recovery state);
//! this module only keeps them whole: `snapshot-<seq>.qs` is
//!
//! ```text
//! magic "QNTMSNAP" u64 | version u32 | zero u32 | wire layout hash u64 | seq u64 | len u64 |
//! state bytes | crc32c of everything before it u32
//! ```
//!
//! written to a temporary file, flushed, and renamed into place (then the directory flushed),
//! so a crash leaves either the old set of snapshots or the new one, never half a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{io_err, JournalError};
use crate::wire::{layout_reads, LAYOUT_HASH};

const MAGIC: u64 = u64::from_le_bytes(*b"QNTMSNAP");
const VERSION: u32 = 1;
const HEAD: usize = 40;

/// The snapshot file of `seq` in `dir`.
pub fn path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("snapshot-{seq:020}.qs"))
}

/// The snapshots in `dir`, oldest first, as `(seq, path)`.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    super::numbered_files(dir, "snapshot-", ".qs")
}

/// Writes the state after event `seq`.
pub fn write(dir: &Path, seq: u64, state: &[u8]) -> Result<PathBuf, JournalError> {
    let mut b = Vec::with_capacity(HEAD + state.len() + 4);
    b.extend_from_slice(&MAGIC.to_le_bytes());
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&LAYOUT_HASH.to_le_bytes());
    b.extend_from_slice(&seq.to_le_bytes());
    b.extend_from_slice(&(state.len() as u64).to_le_bytes());
    b.extend_from_slice(state);
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    let dest = path(dir, seq);
    let tmp = dir.join(format!(".snapshot-{seq:020}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(&b).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    std::fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok(dest)
}

/// Reads a snapshot file: its sequence number and state bytes.
pub fn read(p: &Path) -> Result<(u64, Vec<u8>), JournalError> {
    let b = std::fs::read(p).map_err(io_err(p))?;
    let bad = |what: &str| JournalError::BadSegment {
        path: p.to_owned(),
        what: what.to_string(),
    };
    if b.len() < HEAD + 4 {
        return Err(bad("snapshot too short"));
    }
    let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]));
    if word(0) != MAGIC {
        return Err(bad("not a snapshot (wrong magic)"));
    }
    let len = word(32) as usize;
    if b.len() != HEAD + len + 4 {
        return Err(bad("snapshot length does not match its header"));
    }
    let crc = u32::from_le_bytes(b[HEAD + len..].try_into().unwrap_or([0; 4]));
    if crc != crc32c::crc32c(&b[..HEAD + len]) {
        return Err(bad("snapshot checksum does not match"));
    }
    if !layout_reads(word(16)) {
        return Err(bad(
            "snapshot written with a record layout this binary does not extend",
        ));
    }
    Ok((word(24), b[HEAD..HEAD + len].to_vec()))
}

/// A snapshot read back: its sequence number and state bytes.
pub type Snapshot = (u64, Vec<u8>);

/// The newest readable snapshot, and the unreadable ones newer than it (reported, not used).
pub fn latest(dir: &Path) -> Result<(Option<Snapshot>, Vec<JournalError>), JournalError> {
    let mut skipped = Vec::new();
    for (_, p) in list(dir)?.into_iter().rev() {
        match read(&p) {
            Ok(s) => return Ok((Some(s), skipped)),
            Err(e) => skipped.push(e),
        }
    }
    Ok((None, skipped))
}

/// Removes all but the newest `keep` snapshots.
pub fn prune(dir: &Path, keep: usize) -> Result<(), JournalError> {
    let all = list(dir)?;
    for (_, p) in all.iter().take(all.len().saturating_sub(keep)) {
        std::fs::remove_file(p).map_err(io_err(p))?;
    }
    Ok(())
}
