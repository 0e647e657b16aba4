//! The daemon's journal: recovery at start, appending while running, snapshots behind.
//!
//! At start [`recover`] reads the newest snapshot, replays the segments after it into a
//! [`State`] (cutting a torn tail, refusing a corrupt record with its offset) and opens the
//! journal for appending. While running, the I/O thread appends each event before anything
//! else leaves the process with it; when a segment fills, the [`Compactor`] thread folds the
//! sealed segment into its copy of the state, writes a snapshot and removes segments the
//! snapshot covers (keeping `journal.keep_segments` of them), so a restart replays at most
//! about one segment.
//!
//! The directory also holds `symbols`: the symbol names in id order, as the journal's events
//! number them. A configuration may add symbols at the end; one that drops or reorders them
//! would give old events the wrong symbol, and is refused.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use quantum_core::recovery::State;
use quantum_ipc::journal::{self, snapshot, Journal, JournalError, Options, Reader};

use super::config::JournalSection;

/// What [`recover`] found and opened.
pub struct Recovered {
    /// The state after the last journaled event.
    pub state: State,
    /// The journal, open for appending after it.
    pub journal: Journal,
    /// The snapshot used, if any (its sequence number).
    pub snapshot: Option<u64>,
    /// Events replayed after the snapshot.
    pub replayed: u64,
    /// A torn tail that was cut: the segment and the offset of the first bad record.
    pub torn_tail: Option<(PathBuf, u64)>,
    /// Records and bytes the cut removed (with `fsync`, all that followed the last sync).
    pub torn_cut: (u64, u64),
    /// How long reading the snapshot and replaying took.
    pub elapsed: Duration,
}

/// Checks `names` against the journal's `symbols` file (creating or extending it).
fn check_symbols(dir: &Path, names: &[String]) -> Result<()> {
    let path = dir.join("symbols");
    let old: Vec<String> = match std::fs::read_to_string(&path) {
        Ok(t) => t.lines().map(str::to_owned).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if old.len() > names.len() || old.iter().zip(names).any(|(a, b)| a != b) {
        bail!(
            "the journal in {} numbers its symbols {:?}, but the configuration has {:?}: symbols may only be added at the end. Restore the old list, or move the journal away to start afresh",
            dir.display(),
            old,
            names
        );
    }
    if old.len() < names.len() {
        let tmp = dir.join(".symbols.tmp");
        std::fs::write(&tmp, names.join("\n") + "\n")
            .and_then(|()| std::fs::rename(&tmp, &path))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Reads the newest snapshot and the journal after it into a state, and opens the journal.
pub fn recover(
    dir: &Path,
    cfg: &JournalSection,
    symbols: &[String],
    horizon_ms: u64,
    ended_capacity: usize,
) -> Result<Recovered> {
    let t0 = Instant::now();
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the journal directory {}", dir.display()))?;
    let opts = Options {
        segment_bytes: cfg.segment_mb << 20,
        fsync: cfg.fsync,
    };
    let (snap, unreadable) = snapshot::latest(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    for e in &unreadable {
        tracing::warn!("snapshot not used: {e}");
    }
    let (mut state, snapshot) = match snap {
        Some((seq, bytes)) => {
            let s = State::decode(&bytes)
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("snapshot {seq} in {}", dir.display()))?;
            (s, Some(seq))
        }
        None => (State::new(symbols.len(), horizon_ms, ended_capacity), None),
    };
    // Takes the writer's lock; checks every record after the snapshot and cuts a torn tail.
    let (journal, report) = Journal::open(dir, opts, state.seq + 1)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot open the journal in {}", dir.display()))?;
    for p in &report.removed {
        tracing::warn!(file = %p.display(), "journal: removed a segment file whose creation never finished (it held no record)");
    }
    check_symbols(dir, symbols)?;
    state.horizon_ms = horizon_ms;
    state.ended_capacity = ended_capacity.max(1);
    let reader = Reader::open(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut replayed = 0u64;
    let next = reader
        .read_from(state.seq + 1, |seq, rec| {
            replayed += 1;
            state
                .apply_record(seq, rec)
                .map_err(|e| JournalError::Corrupt {
                    path: dir.to_owned(),
                    offset: 0,
                    what: e.to_string(),
                })
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if next != journal.next_seq() {
        bail!(
            "the journal in {} ends at event {} but its snapshot and segments reach {}: segments are missing",
            dir.display(),
            journal.next_seq() - 1,
            next - 1
        );
    }
    Ok(Recovered {
        state,
        journal,
        snapshot,
        replayed,
        torn_tail: report.torn_tail,
        torn_cut: (report.torn_records, report.torn_bytes),
        elapsed: t0.elapsed(),
    })
}

/// Folds sealed segments into snapshots on its own thread.
pub struct Compactor {
    tx: Option<mpsc::Sender<u64>>,
    handle: Option<JoinHandle<()>>,
}

impl Compactor {
    /// Starts the thread with `state` (everything up to `state.seq` folded in).
    pub fn start(dir: PathBuf, state: State, keep_segments: usize) -> Compactor {
        let (tx, rx) = mpsc::channel::<u64>();
        let handle = std::thread::Builder::new()
            .name("quantum-journal".into())
            .spawn(move || {
                let mut state = state;
                while let Ok(mut upto) = rx.recv() {
                    // Several seals queued up: one snapshot for all of them.
                    while let Ok(more) = rx.try_recv() {
                        upto = upto.max(more);
                    }
                    if let Err(e) = compact(&dir, &mut state, upto, keep_segments) {
                        tracing::error!("journal snapshot failed (the journal itself is intact; replay at the next start takes longer): {e:#}");
                    }
                }
            })
            .expect("spawn journal thread");
        Compactor {
            tx: Some(tx),
            handle: Some(handle),
        }
    }

    /// Asks for a snapshot covering everything up to event `upto` (a sealed segment's last).
    pub fn sealed(&self, upto: u64) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(upto);
        }
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Folds events `state.seq + 1 ..= upto` in, writes the snapshot, prunes.
fn compact(dir: &Path, state: &mut State, upto: u64, keep_segments: usize) -> Result<()> {
    if upto <= state.seq {
        return Ok(());
    }
    let t0 = Instant::now();
    let from = state.seq + 1;
    let reader = Reader::open(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut failed = None;
    reader
        .read_until(from, upto, |seq, rec| {
            if seq <= upto && failed.is_none() {
                if let Err(e) = state.apply_record(seq, rec) {
                    failed = Some(e);
                }
            }
            Ok(())
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(e) = failed {
        bail!("{e}");
    }
    if state.seq < upto {
        bail!(
            "the journal ends at event {} before the sealed segment's last event {upto}",
            state.seq
        );
    }
    let bytes = state.encode();
    snapshot::write(dir, state.seq, &bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    snapshot::prune(dir, 2).map_err(|e| anyhow::anyhow!("{e}"))?;
    let removed =
        journal::prune(dir, state.seq, keep_segments).map_err(|e| anyhow::anyhow!("{e}"))?;
    tracing::info!(
        seq = state.seq,
        events = state.seq + 1 - from,
        bytes = bytes.len(),
        segments_removed = removed.len(),
        ms = t0.elapsed().as_millis() as u64,
        "journal snapshot written"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_may_only_grow_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        check_symbols(dir.path(), &n(&["BTCUSDT", "ETHUSDT"])).unwrap();
        check_symbols(dir.path(), &n(&["BTCUSDT", "ETHUSDT", "SOLUSDT"])).unwrap();
        let e = check_symbols(dir.path(), &n(&["ETHUSDT", "BTCUSDT", "SOLUSDT"])).unwrap_err();
        assert!(
            e.to_string().contains("may only be added at the end"),
            "{e}"
        );
        let e = check_symbols(dir.path(), &n(&["BTCUSDT"])).unwrap_err();
        assert!(
            e.to_string().contains("may only be added at the end"),
            "{e}"
        );
    }
}
