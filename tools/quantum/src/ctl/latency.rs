//! `ctl latency`: a running instance's latency per series, as each process's live-latency
//! writer last published it in its counters segment (percentiles of the last interval): the
//! daemon's stages and its per-outcome decision times, the Redis bridge's leg (stream entry →
//! permits → result entry) and the Binance bridge's leg (intent → request → acknowledged →
//! first fill, per transport). No process is asked anything and no hot path is touched.

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use quantum_ipc::latency::{gauges, SeriesReading, BRIDGE_SEGMENTS};
use quantum_ipc::CountersReader;

use super::open_counters;

/// Options of `ctl latency`.
#[derive(Args, Debug)]
#[command(
    after_help = "Rows: the core's stages (executed plans), `decision.outcome=<class>` (ring pop to result, every plan, by outcome), then the bridges' legs when they run (`redis.*`, `exchange.*`).\n\nExamples:\n  quantum ctl latency --instance prod1\n  quantum ctl latency --instance prod1 --json | jq '.series[\"decision.outcome=denied_p33\"]'\n  quantum ctl latency --instance prod1 --watch 1"
)]
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

/// One process's published series.
#[derive(Debug, Clone)]
pub struct Source {
    /// `daemon`, or the bridge's segment name (`latency-redis`, `latency-binance`).
    pub name: String,
    /// Its series.
    pub series: Vec<SeriesReading>,
}

/// The daemon's series and every running bridge's.
pub fn read_all(instance: &str, daemon: &CountersReader) -> Vec<Source> {
    let mut out = vec![Source {
        name: "daemon".into(),
        series: gauges::read(daemon),
    }];
    for seg in BRIDGE_SEGMENTS {
        if let Ok(r) = CountersReader::open_named(instance, seg) {
            if r.owner_alive() {
                out.push(Source {
                    name: seg.to_owned(),
                    series: gauges::read(&r),
                });
            }
        }
    }
    out
}

/// The table: one line per series, percentiles in ns, `-` where the interval had no sample.
pub fn text(instance: &str, sources: &[Source]) -> String {
    let mut out = format!("latency of {instance}, last interval (ns)\n");
    let width = sources
        .iter()
        .flat_map(|s| s.series.iter().map(|r| r.series.len()))
        .max()
        .unwrap_or(6)
        .max(6);
    out.push_str(&format!("{:<width$}", "series"));
    if let Some(first) = sources.iter().flat_map(|s| s.series.first()).next() {
        for (p, _) in &first.values {
            out.push_str(&format!(" {:>10}", p.replace('_', ".")));
        }
    }
    out.push('\n');
    let mut any = false;
    for s in sources.iter().filter(|s| !s.series.is_empty()) {
        if s.name != "daemon" {
            out.push_str(&format!("# {}\n", s.name));
        }
        for r in &s.series {
            out.push_str(&format!("{:<width$}", r.series));
            for (_, v) in &r.values {
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
    }
    if !any {
        out.push_str("(no plan went through in the last interval)\n");
    }
    out
}

/// `{"instance": .., "unit": "ns", "series": {"ingest": {"p50": .., ...}, "decision.outcome=executed":
/// {..}, "redis.entry_result": {..}, ...}}`; series without a sample in the interval have nulls.
pub fn json(instance: &str, sources: &[Source]) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for r in sources.iter().flat_map(|s| &s.series) {
        let mut m = serde_json::Map::new();
        for (p, v) in &r.values {
            m.insert(
                p.replace('_', "."),
                if *v == 0 {
                    serde_json::Value::Null
                } else {
                    (*v).into()
                },
            );
        }
        map.insert(r.series.clone(), m.into());
    }
    let sources: Vec<&str> = sources
        .iter()
        .filter(|s| !s.series.is_empty())
        .map(|s| s.name.as_str())
        .collect();
    serde_json::json!({"instance": instance, "unit": "ns", "window": "last interval", "sources": sources, "series": map})
}

/// Runs `ctl latency`.
pub fn run(args: LatencyArgs) -> Result<()> {
    loop {
        let c = open_counters(&args.instance)?;
        let sources = read_all(&args.instance, &c);
        if sources.iter().all(|s| s.series.is_empty()) {
            bail!(
                "instance {:?} publishes no latency (its quantum run records no live latency)",
                args.instance
            );
        }
        let mut out = std::io::stdout().lock();
        if args.json {
            writeln!(out, "{}", json(&args.instance, &sources))?;
        } else {
            write!(out, "{}", text(&args.instance, &sources))?;
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

    use quantum_daemon::latency::stages::{self, Stage, Stamps};
    use quantum_ipc::latency::writer::{start, LiveConfig};
    use quantum_ipc::latency::Gauges;
    use quantum_ipc::{CountersReader, CountersWriter};

    use super::*;

    /// The whole path without a daemon: stamps on the "hot path", the writer publishing the
    /// interval's percentiles into a real counters segment, and `ctl latency` reading them
    /// back from another handle, as another process would.
    #[test]
    fn published_percentiles_are_read_back_per_series() {
        let instance = format!("t{}-latency", std::process::id());
        let w = Arc::new(CountersWriter::create(&instance, 256).unwrap());
        let series = stages::series();
        let g = Gauges::register(w.clone(), &series).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("live.hlog");
        let (mut rec, writer) = start(
            LiveConfig {
                series: series.clone(),
                hdr_log: Some(log.clone()),
                gauges: Some(g),
                interval: Duration::from_millis(1),
                comment: "test".into(),
            },
            0,
        )
        .unwrap();
        for i in 0..1_000u64 {
            let s = Stamps {
                rx: Some(0),
                t_in: 100,
                t_out: 100 + 50 + i % 100,
                tx: Some(400),
                ..Stamps::default()
            };
            for (stage, ns) in s.spans() {
                rec.record(stages::stage_index(stage), ns);
            }
        }
        let denied = stages::decision_index(quantum_core::result::OutcomeClass::DeniedP33);
        rec.record(denied, 2_000);
        rec.tick(1_000_000);
        drop(rec);
        writer.join().unwrap().unwrap();

        let r = CountersReader::open(&instance).unwrap();
        let sources = read_all(&instance, &r);
        let names: Vec<_> = sources[0].series.iter().map(|s| s.series.clone()).collect();
        assert_eq!(names, series);
        let chain = sources[0]
            .series
            .iter()
            .find(|s| s.series == Stage::Chain.name())
            .unwrap();
        let v = |p: &str| chain.values.iter().find(|(q, _)| *q == p).unwrap().1;
        assert!((99..=100).contains(&v("p50")), "{chain:?}");
        assert_eq!(v("max"), 149);
        let t = text(&instance, &sources);
        assert!(t.contains("chain") && t.contains("p99.9"), "{t}");
        let governor = t.lines().find(|l| l.starts_with("governor")).unwrap();
        assert!(governor.split_whitespace().skip(1).all(|c| c == "-"), "{t}");
        let denied_line = t
            .lines()
            .find(|l| l.starts_with("decision.outcome=denied_p33"))
            .unwrap();
        assert!(denied_line.contains("2000"), "{t}");
        let j = json(&instance, &sources);
        assert_eq!(j["series"]["end_to_end"]["p50"], 400);
        assert_eq!(j["series"]["decision.outcome=denied_p33"]["max"], 2000);
        assert!(j["series"]["wait"]["p50"].is_null());
        assert!(std::fs::metadata(&log).unwrap().len() > 0);
    }
}
