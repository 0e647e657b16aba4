//! Reading an interval log back (tests, and anyone checking a `--hdr-log` file).

use std::io;

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// One interval of the log: its tag (the series), start (s since the log's base time) and
/// histogram.
#[derive(Debug, Clone)]
pub struct LoggedInterval {
    /// The tag (series name); empty when untagged.
    pub tag: String,
    /// Start, seconds since the log's base time.
    pub start_s: f64,
    /// The interval's histogram.
    pub hist: Histogram<u64>,
}

/// Every interval of the log in `bytes`, in order.
pub fn intervals(bytes: &[u8]) -> io::Result<Vec<LoggedInterval>> {
    let mut out = Vec::new();
    let mut de = Deserializer::new();
    for entry in IntervalLogIterator::new(bytes) {
        let entry = entry.map_err(|e| bad(format!("interval log: {e:?}")))?;
        if let LogEntry::Interval(h) = entry {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(h.encoded_histogram())
                .map_err(|e| bad(format!("interval log: a histogram is not base64: {e}")))?;
            let hist: Histogram<u64> = de
                .deserialize(&mut raw.as_slice())
                .map_err(|e| bad(format!("interval log: a histogram does not decode: {e:?}")))?;
            out.push(LoggedInterval {
                tag: h.tag().map(|t| t.as_str().to_owned()).unwrap_or_default(),
                start_s: h.start_timestamp().as_secs_f64(),
                hist,
            });
        }
    }
    Ok(out)
}
