//! The daemon's journal: recovery at start, appending while running, snapshots behind.
//!
//! At start [`recover`] reads the newest snapshot, replays the segments after it into a
//! [`State`] (cutting a torn tail, refusing a corrupt record with its offset) and opens the
//! journal for appending. While running, the I/O thread appends each event before anything
//! else leaves the process with it; when a segment fills, the [`Compactor`] thread folds the
//! sealed segment into its copy of the state, writes a snapshot and removes segments the
//! snapshot covers (keeping `journal.keep_segments` of them), so a restart replays at most
//! about one segment. A start that replayed more than `journal.snapshot_after_replay` events
//! asks for a snapshot at once. A snapshot that fails is retried with backoff, and counted in
//! `journal.snapshot_failures` (the alarm: until one succeeds, replay and disk grow).
//!
//! The directory also holds `symbols`: the symbol names in id order, as the journal's events
//! number them. A configuration may add symbols at the end; one that drops or reorders them
//! would give old events the wrong symbol, and is refused.
//!
//! And `identity`: the instance the journal belongs to and a random number made with the
//! journal ([`Identity`]). The daemon stamps both into the ingress rings it creates or takes
//! over (`Ring::stamp_journal`, with the directory), and refuses rings stamped with another
//! journal: their records and their producers' re-deliveries belong to that journal's history
//! (its dedupe set above all), and judged against another one a plan could be ordered twice.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use quantum_core::recovery::State;
use quantum_ipc::journal::{self, snapshot, Journal, JournalError, Options, Reader};

use super::config::JournalSection;

/// The file of the journal's [`Identity`].
const IDENTITY_FILE: &str = "identity";

/// Who a journal belongs to: written once, when the journal is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The instance that created it.
    pub instance: String,
    /// A random non-zero number made with it.
    pub id: u64,
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.id)
    }
}

/// The identity of the journal in `dir`; `None` when the directory has no identity file (no
/// journal yet, or one written before journals had identities).
pub fn read_identity(dir: &Path) -> Result<Option<Identity>> {
    let path = dir.join(IDENTITY_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .map(str::trim)
    };
    let instance = field("instance");
    let id = field("id").and_then(|v| u64::from_str_radix(v, 16).ok());
    match (instance, id) {
        (Some(instance), Some(id)) if id != 0 => Ok(Some(Identity {
            instance: instance.to_owned(),
            id,
        })),
        _ => bail!(
            "{} is damaged (it needs the lines instance=<name> and id=<16 hex digits>); restore it from a backup of the journal",
            path.display()
        ),
    }
}

/// Writes the identity of a new journal in `dir`: to a temporary file, synced, renamed into
/// place, and the directory synced, so it is there whole or not at all.
fn create_identity(dir: &Path, instance: &str) -> Result<Identity> {
    let id = loop {
        let id: u64 = rand::random();
        if id != 0 {
            break id;
        }
    };
    let ident = Identity {
        instance: instance.to_owned(),
        id,
    };
    let path = dir.join(IDENTITY_FILE);
    let tmp = dir.join(".identity.tmp");
    let text = format!(
        "# The identity of this journal; the daemon stamps it into the instance's rings.\ninstance={instance}\nid={ident}\n"
    );
    (|| -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    })()
    .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(ident)
}

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
    /// The journal's identity.
    pub identity: Identity,
    /// The identity was written by this start: for a new journal, or one that had none.
    pub identity_created: bool,
}

/// The file of a journal's symbol names, in id order: how its events number symbols.
const SYMBOLS_FILE: &str = "symbols";

/// The symbol names the journal in `dir` numbers its events by, in id order; `None` when it
/// has no symbols file (no journal there yet).
pub fn journal_symbols(dir: &Path) -> Result<Option<Vec<String>>> {
    let path = dir.join(SYMBOLS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok(Some(t.lines().map(str::to_owned).collect())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes `names` as the journal's symbols (atomically: a temporary file, renamed).
pub fn write_journal_symbols(dir: &Path, names: &[impl AsRef<str>]) -> Result<()> {
    let path = dir.join(SYMBOLS_FILE);
    let tmp = dir.join(format!(".{SYMBOLS_FILE}.tmp"));
    let text: String = names.iter().map(|n| format!("{}\n", n.as_ref())).collect();
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Whether a configuration with symbols `names` reads a journal numbering `journal`: it keeps
/// them, in the same order, and may add symbols at the end.
pub fn symbols_extend(journal: &[String], names: &[impl AsRef<str>]) -> bool {
    journal.len() <= names.len() && journal.iter().zip(names).all(|(a, b)| a == b.as_ref())
}

/// Checks `names` against the journal's symbols file (creating or extending it).
fn check_symbols(dir: &Path, names: &[String]) -> Result<()> {
    let old = journal_symbols(dir)?.unwrap_or_default();
    if !symbols_extend(&old, names) {
        bail!(
            "the journal in {} numbers its symbols {:?}, but the configuration has {:?}: symbols may only be added at the end. Restore the old list, or move the journal away to start afresh",
            dir.display(),
            old,
            names
        );
    }
    if old.len() < names.len() {
        write_journal_symbols(dir, names)?;
    }
    Ok(())
}

/// Reads the newest snapshot and the journal after it into a state, and opens the journal.
pub fn recover(
    instance: &str,
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
    // Under the writer's lock: no other daemon creates an identity here meanwhile.
    let (identity, identity_created) = match read_identity(dir)? {
        Some(i) if i.instance != instance => bail!(
            "the journal in {} belongs to instance {:?}, not {instance:?}: give this instance its own directory (--journal-dir)",
            dir.display(),
            i.instance
        ),
        Some(i) => (i, false),
        None => (create_identity(dir, instance)?, true),
    };
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
        identity,
        identity_created,
    })
}

/// First wait before a failed snapshot is tried again; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between two tries of a failing snapshot.
const RETRY_MAX: Duration = Duration::from_secs(60);

/// What the compactor publishes in the counters: failures (an alarm: until a snapshot is
/// written again, replay at the next start and the journal on disk grow) and the newest
/// snapshot's event number.
pub struct CompactorGauges {
    pub writer: std::sync::Arc<quantum_ipc::CountersWriter>,
    /// `journal.snapshot_failures` (total).
    pub failures: quantum_ipc::CounterId,
    /// `journal.snapshot_seq` (gauge).
    pub snapshot_seq: quantum_ipc::CounterId,
}

/// Folds sealed segments into snapshots on its own thread. A snapshot that fails is tried
/// again (after 1 s, doubling up to 60 s) until one succeeds; each failure is logged and
/// counted.
pub struct Compactor {
    tx: Option<mpsc::Sender<u64>>,
    handle: Option<JoinHandle<()>>,
}

impl Compactor {
    /// Starts the thread with `state` (everything up to `state.seq` folded in) and the event
    /// number of the newest snapshot on disk (`snapshot_seq`, 0 for none).
    pub fn start(
        dir: PathBuf,
        state: State,
        snapshot_seq: u64,
        keep_segments: usize,
        gauges: CompactorGauges,
    ) -> Compactor {
        let (tx, rx) = mpsc::channel::<u64>();
        gauges.writer.set(gauges.snapshot_seq, snapshot_seq);
        let handle = std::thread::Builder::new()
            .name("quantum-journal".into())
            .spawn(move || {
                let mut state = state;
                let mut written = snapshot_seq;
                // A snapshot asked for and not written yet, and when to try it again.
                let mut pending: Option<u64> = None;
                let mut retry = RETRY_FIRST;
                loop {
                    let asked = match pending {
                        None => rx.recv().ok(),
                        Some(upto) => match rx.recv_timeout(retry) {
                            Ok(more) => Some(more.max(upto)),
                            Err(mpsc::RecvTimeoutError::Timeout) => Some(upto),
                            Err(mpsc::RecvTimeoutError::Disconnected) => None,
                        },
                    };
                    let Some(mut upto) = asked else { break };
                    // Several seals queued up: one snapshot for all of them.
                    while let Ok(more) = rx.try_recv() {
                        upto = upto.max(more);
                    }
                    match compact(&dir, &mut state, upto, written, keep_segments) {
                        Ok(seq) => {
                            written = seq;
                            gauges.writer.set(gauges.snapshot_seq, seq);
                            pending = None;
                            retry = RETRY_FIRST;
                        }
                        Err(e) => {
                            if pending.is_some() {
                                retry = (retry * 2).min(RETRY_MAX);
                            }
                            gauges.writer.add(gauges.failures, 1);
                            tracing::error!(
                                retry_in_ms = retry.as_millis() as u64,
                                "journal snapshot failed (the journal itself is intact; until a snapshot is written, replay at the next start and the journal on disk grow): {e:#}"
                            );
                            pending = Some(upto);
                        }
                    }
                }
            })
            .expect("spawn journal thread");
        Compactor {
            tx: Some(tx),
            handle: Some(handle),
        }
    }

    /// Asks for a snapshot covering everything up to event `upto` (a sealed segment's last,
    /// or the last replayed at start).
    pub fn snapshot(&self, upto: u64) {
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

/// Folds events `state.seq + 1 ..= upto` in and, unless the newest snapshot (`written`)
/// already covers them, writes the snapshot and prunes. Returns the newest snapshot's event.
fn compact(
    dir: &Path,
    state: &mut State,
    upto: u64,
    written: u64,
    keep_segments: usize,
) -> Result<u64> {
    let t0 = Instant::now();
    let from = state.seq + 1;
    if upto > state.seq {
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
    }
    if state.seq <= written {
        return Ok(written);
    }
    let bytes = state.encode();
    snapshot::write(dir, state.seq, &bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    snapshot::prune(dir, 2).map_err(|e| anyhow::anyhow!("{e}"))?;
    let removed =
        journal::prune(dir, state.seq, keep_segments).map_err(|e| anyhow::anyhow!("{e}"))?;
    tracing::info!(
        seq = state.seq,
        events = state.seq - written,
        bytes = bytes.len(),
        segments_removed = removed.len(),
        ms = t0.elapsed().as_millis() as u64,
        "journal snapshot written"
    );
    Ok(state.seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_is_written_whole_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_identity(dir.path()).unwrap(), None);
        let made = create_identity(dir.path(), "prod1").unwrap();
        assert_ne!(made.id, 0);
        assert_eq!(read_identity(dir.path()).unwrap(), Some(made.clone()));
        assert!(!dir.path().join(".identity.tmp").exists());
        let other = create_identity(tempfile::tempdir().unwrap().path(), "prod1").unwrap();
        assert_ne!(other.id, made.id, "each journal gets its own identity");
        std::fs::write(dir.path().join(IDENTITY_FILE), "instance=prod1\n").unwrap();
        let e = read_identity(dir.path()).unwrap_err();
        assert!(e.to_string().contains("is damaged"), "{e}");
    }

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
