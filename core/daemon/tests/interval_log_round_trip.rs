//! The live-latency writer's interval log (the standard HdrHistogram format, read here with
//! the same crate's reader) holds one tagged histogram per stage per interval, with the
//! percentiles of what was recorded; the hot path's recorder hands intervals over on time.

use std::time::Duration;

use hdrhistogram::Histogram;
use quantum_daemon::latency::report::{new_histogram, PERCENTILES};
use quantum_daemon::latency::stages::{self, Stage, Stamps};
use quantum_daemon::latency::writer::{start, LiveConfig};

#[test]
fn interval_logs_parse_back_to_the_same_percentiles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.hlog");
    let (mut rec, writer) = start(
        LiveConfig {
            series: stages::series(),
            comment: "test".into(),
            hdr_log: Some(path.clone()),
            gauges: None,
            interval: Duration::from_millis(1),
        },
        0,
    )
    .unwrap();
    // Two intervals; what each stage saw, kept aside to compare with.
    let mut expected: Vec<Vec<(Stage, Histogram<u64>)>> = Vec::new();
    for interval in 0..2u64 {
        let mut chain = new_histogram();
        let mut e2e = new_histogram();
        let mut egress = new_histogram();
        for i in 0..5_000u64 {
            let s = Stamps {
                rx: Some(1_000),
                t_in: 1_200,
                t_out: 1_200 + 60 + (i * 7919 + interval) % 500,
                tx: Some(1_200 + 60 + 500 + i % 3_000),
                ..Stamps::default()
            };
            for (stage, ns) in s.spans() {
                rec.record(stages::stage_index(stage), ns);
                match stage {
                    Stage::Chain => chain.record(ns).unwrap(),
                    Stage::EndToEnd => e2e.record(ns).unwrap(),
                    Stage::Egress => egress.record(ns).unwrap(),
                    _ => {}
                }
            }
        }
        rec.tick((interval + 1) * 1_000_000);
        expected.push(vec![
            (Stage::Chain, chain),
            (Stage::Egress, egress),
            (Stage::EndToEnd, e2e),
        ]);
        // Let the writer return the buffer before the next swap.
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(rec);
    writer.join().unwrap().unwrap();

    let bytes = std::fs::read(&path).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("#[StartTime: "), "{text}");
    let got: Vec<(String, f64, Histogram<u64>)> = quantum_daemon::latency::read::intervals(&bytes)
        .unwrap()
        .into_iter()
        .map(|i| (i.tag, i.start_s, i.hist))
        .collect();
    // Stages without samples (governor, P3.3, wait, consume: no engine stamps) are left out.
    let tags: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(
        tags,
        [
            "ingest",
            "egress",
            "chain",
            "end_to_end",
            "ingest",
            "egress",
            "chain",
            "end_to_end"
        ]
    );
    assert!(got[4].1 > got[0].1, "the second interval starts later");
    for (i, interval) in expected.iter().enumerate() {
        for (stage, want) in interval {
            let (_, _, h) = got[i * 4..i * 4 + 4]
                .iter()
                .find(|g| g.0 == stage.name())
                .unwrap();
            assert_eq!(h.len(), want.len());
            for (label, q) in PERCENTILES {
                assert_eq!(
                    h.value_at_quantile(q),
                    want.value_at_quantile(q),
                    "{} {label}",
                    stage.name()
                );
            }
            assert_eq!(h.max(), want.max());
        }
    }
}
