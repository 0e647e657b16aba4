//! The background side: each finished interval goes to the interval log (one tagged histogram
//! per series that had samples) and to the percentile gauges; its buffers go back to the
//! recorder.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::mpsc::sync_channel;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;

use super::gauges::Gauges;
use super::recorder::{Interval, Recorder};

/// Where the intervals go.
pub struct LiveConfig {
    /// The series, in recording order; each is its interval-log tag.
    pub series: Vec<String>,
    /// The interval log (`--hdr-log FILE`), if any.
    pub hdr_log: Option<PathBuf>,
    /// Percentile gauges in a counters segment, if any.
    pub gauges: Option<Gauges>,
    /// Interval length.
    pub interval: Duration,
    /// The log's comment line (what the log times, and on which clock).
    pub comment: String,
}

impl LiveConfig {
    /// Creates the interval log's file (an error names it).
    pub(crate) fn open_log(&self) -> io::Result<Option<File>> {
        match &self.hdr_log {
            Some(p) => File::create(p)
                .map(Some)
                .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", p.display()))),
            None => Ok(None),
        }
    }
}

/// Starts the writer thread; returns the recording thread's recorder (whose first interval
/// starts at `start_ns` on the recorder's clock) and the thread, which ends when the recorder
/// is dropped.
pub fn start(cfg: LiveConfig, start_ns: u64) -> io::Result<(Recorder, JoinHandle<io::Result<()>>)> {
    let (full_tx, full_rx) = sync_channel::<Interval>(2);
    let (empty_tx, empty_rx) = sync_channel::<Interval>(3);
    let n = cfg.series.len();
    for _ in 0..2 {
        empty_tx.send(Interval::new(n)).expect("room for two");
    }
    let file = cfg.open_log()?;
    let recorder = Recorder::new(
        n,
        cfg.interval.as_nanos() as u64,
        start_ns,
        full_tx,
        empty_rx,
    );
    let t = std::thread::Builder::new()
        .name("quantum-latency".into())
        .spawn(move || {
            sink(
                file,
                &cfg,
                start_ns,
                || full_rx.recv().ok(),
                |i| empty_tx.send(i).is_ok(),
            )
        })?;
    Ok((recorder, t))
}

/// Writes every interval `next` gives (until it gives none) to the log and the gauges, and
/// hands each back (`back` false: stop). `origin_ns`: the recorder's clock at the log's start.
pub(crate) fn sink(
    file: Option<File>,
    cfg: &LiveConfig,
    origin_ns: u64,
    mut next: impl FnMut() -> Option<Interval>,
    mut back: impl FnMut(Interval) -> bool,
) -> io::Result<()> {
    let mut serializer = V2DeflateSerializer::new();
    let mut file = file;
    let now = SystemTime::now();
    // An unbuffered file: each interval is on disk when written (for `tail -f` and a crash).
    let mut log = match file.as_mut() {
        Some(f) => Some(
            IntervalLogWriterBuilder::new()
                .add_comment(&cfg.comment)
                .with_start_time(now)
                .with_base_time(now)
                .begin_log_with(f, &mut serializer)?,
        ),
        None => None,
    };
    while let Some(mut interval) = next() {
        let start = Duration::from_nanos(interval.start_ns.saturating_sub(origin_ns));
        let length = Duration::from_nanos(interval.end_ns.saturating_sub(interval.start_ns));
        if let Some(g) = &cfg.gauges {
            g.publish_interval(&interval.hists);
        }
        if let Some(log) = log.as_mut() {
            for (name, h) in cfg.series.iter().zip(&interval.hists) {
                if h.is_empty() {
                    continue;
                }
                let tag = Tag::new(name).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("latency series {name:?} is not a valid interval-log tag"),
                    )
                })?;
                log.write_histogram(h, start, length, Some(tag))
                    .map_err(|e| io::Error::other(format!("writing the interval log: {e}")))?;
            }
        }
        interval.reset();
        if !back(interval) {
            break;
        }
    }
    Ok(())
}
