//! `ctl latency`: the running core's latency per stage, as its live-latency writer last
//! published it in the counters segment (percentiles of the last interval; the daemon is
//! never asked and its hot path never touched).

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use quantum_daemon::latency::gauges::{self, StageReading};

use super::open_counters;

/// Options of `ctl latency`.
#[derive(Args, Debug)]
pub struct LatencyArgs {
    /// Instance name.
    #[arg(long)]
    pub instance: String,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print again every SECS seconds until interrupted.
    #[arg(long, value_name = "SECS")]
    pub watch: Option<f64>,
}

/// The table: one line per stage, percentiles in ns, `-` where the interval had no sample.
pub fn text(instance: &str, stages: &[StageReading]) -> String {
    let mut out = format!("latency of {instance}, last interval (ns)\n");
    out.push_str(&format!("{:<12}", "stage"));
    if let Some(first) = stages.first() {
        for (p, _) in &first.values {
            out.push_str(&format!(" {:>10}", p.replace('_', ".")));
        }
    }
    out.push('\n');
    let mut any = false;
    for s in stages {
        out.push_str(&format!("{:<12}", s.stage.name()));
        for (_, v) in &s.values {
            any |= *v > 0;
            let cell = if *v == 0 {
                "-".to_owned()
            } else {
                v.to_string()
            };
            out.push_str(&format!(" {cell:>10}"));
        }
        out.push('\n');
    }
    if !any {
        out.push_str("(no plan went through in the last interval)\n");
    }
    out
}

/// `{"instance": .., "unit": "ns", "stages": {"ingest": {"p50": .., ...}, ...}}`; stages without
/// a sample in the interval have nulls.
pub fn json(instance: &str, stages: &[StageReading]) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for s in stages {
        let mut m = serde_json::Map::new();
        for (p, v) in &s.values {
            m.insert(
                p.replace('_', "."),
                if *v == 0 {
                    serde_json::Value::Null
                } else {
                    (*v).into()
                },
            );
        }
        map.insert(s.stage.name().to_owned(), m.into());
    }
    serde_json::json!({"instance": instance, "unit": "ns", "window": "last interval", "stages": map})
}

/// Runs `ctl latency`.
pub fn run(args: LatencyArgs) -> Result<()> {
    loop {
        let c = open_counters(&args.instance)?;
        let stages = gauges::read(&c);
        if stages.is_empty() {
            bail!(
                "instance {:?} publishes no latency (its quantum run records no live latency)",
                args.instance
            );
        }
        let mut out = std::io::stdout().lock();
        if args.json {
            writeln!(out, "{}", json(&args.instance, &stages))?;
        } else {
            write!(out, "{}", text(&args.instance, &stages))?;
        }
        out.flush()?;
        match args.watch {
            Some(secs) => std::thread::sleep(Duration::from_secs_f64(secs.max(0.1))),
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use quantum_daemon::latency::stages::{Stage, Stamps};
    use quantum_daemon::latency::writer::{start, LiveConfig};
    use quantum_daemon::latency::Gauges;
    use quantum_ipc::{CountersReader, CountersWriter};

    use super::*;

    /// The whole path without a daemon: stamps on the "hot path", the writer publishing the
    /// interval's percentiles into a real counters segment, and `ctl latency` reading them
    /// back from another handle, as another process would.
    #[test]
    fn published_percentiles_are_read_back_per_stage() {
        let instance = format!("t{}-latency", std::process::id());
        let w = Arc::new(CountersWriter::create(&instance, 128).unwrap());
        let g = Gauges::register(w.clone()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("live.hlog");
        let (mut rec, writer) = start(
            LiveConfig {
                hdr_log: Some(log.clone()),
                gauges: Some(g),
                interval: Duration::from_millis(1),
            },
            0,
        )
        .unwrap();
        for i in 0..1_000u64 {
            rec.record(&Stamps {
                rx: Some(0),
                t_in: 100,
                t_out: 100 + 50 + i % 100,
                tx: Some(400),
                ..Stamps::default()
            });
        }
        rec.tick(1_000_000);
        drop(rec);
        writer.join().unwrap().unwrap();

        let r = CountersReader::open(&instance).unwrap();
        let stages = gauges::read(&r);
        let names: Vec<_> = stages.iter().map(|s| s.stage).collect();
        assert_eq!(names, Stage::ALL);
        let chain = stages.iter().find(|s| s.stage == Stage::Chain).unwrap();
        let v = |p: &str| chain.values.iter().find(|(q, _)| *q == p).unwrap().1;
        assert!((99..=100).contains(&v("p50")), "{chain:?}");
        assert_eq!(v("max"), 149);
        let t = text(&instance, &stages);
        assert!(t.contains("chain") && t.contains("p99.9"), "{t}");
        let governor = t.lines().find(|l| l.starts_with("governor")).unwrap();
        assert!(governor.split_whitespace().skip(1).all(|c| c == "-"), "{t}");
        let j = json(&instance, &stages);
        assert_eq!(j["stages"]["end_to_end"]["p50"], 400);
        assert!(j["stages"]["wait"]["p50"].is_null());
        assert!(std::fs::metadata(&log).unwrap().len() > 0);
    }
}
