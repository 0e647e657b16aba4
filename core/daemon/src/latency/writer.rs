//! The background side: each finished interval goes to the interval log (one tagged histogram
//! per stage that had samples) and to the percentile gauges; its buffers go back to the
//! recorder.

use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;

use super::gauges::Gauges;
use super::recorder::{Interval, Recorder};
use super::stages::Stage;

/// Where the intervals go.
pub struct LiveConfig {
    /// The interval log (`quantum run --hdr-log FILE`), if any.
    pub hdr_log: Option<PathBuf>,
    /// Percentile gauges in the counters segment, if any.
    pub gauges: Option<Gauges>,
    /// Interval length.
    pub interval: Duration,
}

/// Starts the writer thread; returns the hot path's recorder (whose first interval starts at
/// engine time `start_ns`) and the thread, which ends when the recorder is dropped.
pub fn start(cfg: LiveConfig, start_ns: u64) -> Result<(Recorder, JoinHandle<Result<()>>)> {
    let (full_tx, full_rx) = sync_channel::<Interval>(2);
    let (empty_tx, empty_rx) = sync_channel::<Interval>(3);
    for _ in 0..2 {
        empty_tx.send(Interval::new()).expect("room for two");
    }
    let file = match &cfg.hdr_log {
        Some(p) => Some(File::create(p).with_context(|| format!("creating {}", p.display()))?),
        None => None,
    };
    let recorder = Recorder::new(cfg.interval.as_nanos() as u64, start_ns, full_tx, empty_rx);
    let t = std::thread::Builder::new()
        .name("quantum-latency".into())
        .spawn(move || write_loop(file, cfg.gauges, start_ns, &full_rx, &empty_tx))
        .context("starting the latency writer thread")?;
    Ok((recorder, t))
}

fn write_loop(
    file: Option<File>,
    gauges: Option<Gauges>,
    origin_ns: u64,
    full: &Receiver<Interval>,
    empty: &SyncSender<Interval>,
) -> Result<()> {
    let mut serializer = V2DeflateSerializer::new();
    let mut file = file;
    let now = SystemTime::now();
    // An unbuffered file: each interval is on disk when written (for `tail -f` and a crash).
    let mut log = match file.as_mut() {
        Some(f) => Some(
            IntervalLogWriterBuilder::new()
                .add_comment(
                    "quantum run: latency per stage, ns on the engine clock; tags are stages",
                )
                .with_start_time(now)
                .with_base_time(now)
                .begin_log_with(f, &mut serializer)?,
        ),
        None => None,
    };
    while let Ok(mut interval) = full.recv() {
        let start = Duration::from_nanos(interval.start_ns.saturating_sub(origin_ns));
        let length = Duration::from_nanos(interval.end_ns.saturating_sub(interval.start_ns));
        if let Some(g) = &gauges {
            g.publish_interval(&interval.hists);
        }
        for s in Stage::ALL {
            let h = interval.hists.get(s);
            if let (Some(log), false) = (log.as_mut(), h.is_empty()) {
                log.write_histogram(h, start, length, Tag::new(s.name()))
                    .map_err(|e| anyhow::anyhow!("writing the interval log: {e}"))?;
            }
        }
        for h in interval.hists.0.iter_mut() {
            h.reset();
        }
        if empty.send(interval).is_err() {
            break;
        }
    }
    Ok(())
}
