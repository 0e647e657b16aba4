//! The ring benchmark with tiny iteration counts: outputs exist and are well-formed. No timing
//! is asserted.

use quantum_bench::ring::{run, RingArgs};

#[test]
fn ring_bench_writes_summary_and_hgrm_files() {
    let out = std::env::temp_dir().join(format!("quantum-bench-test-{}", std::process::id()));
    let args = RingArgs {
        iters: 300,
        warmup: 50,
        out: out.clone(),
        peer_exe: Some(env!("CARGO_BIN_EXE_quantum-bench-peer").into()),
        no_process: false,
    };
    let rows = run(&args).unwrap();
    assert_eq!(rows.len(), 4);

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let json_rows = summary["rows"].as_array().unwrap();
    assert_eq!(json_rows.len(), 4);
    for row in json_rows {
        assert_eq!(row["samples"], 300);
        for p in ["p50", "p90", "p99", "p99.9", "p99.99"] {
            assert!(row["percentiles_ns"][p].as_u64().unwrap() > 0, "{row}");
        }
        assert!(row["p50_ratio_to_floor"].as_f64().unwrap() > 0.0);
        let hgrm = std::fs::read_to_string(out.join(row["hgrm"].as_str().unwrap())).unwrap();
        let mut lines = hgrm.lines();
        let header: Vec<_> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
        );
        assert_eq!(lines.next(), Some(""));
        let data: Vec<Vec<&str>> = lines
            .clone()
            .take_while(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert!(data.len() > 5);
        let mut last = (0.0f64, 0.0f64, 0u64);
        for cols in &data {
            let v: f64 = cols[0].parse().unwrap();
            let q: f64 = cols[1].parse().unwrap();
            let c: u64 = cols[2].parse().unwrap();
            assert!(v >= last.0 && q >= last.1 && c >= last.2, "{cols:?}");
            last = (v, q, c);
        }
        assert_eq!(last.2, 300);
        assert!(hgrm.contains("#[Mean    ="));
        assert!(hgrm.contains("Total count    =          300]"));
    }
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn peer_entry_point_parses_the_cli_arguments() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        peer: quantum_bench::ring::PeerArgs,
    }
    let cli = Cli::parse_from(["x", "--instance", "i", "--count", "5", "--core", "1"]);
    assert_eq!(
        (cli.peer.instance.as_str(), cli.peer.count, cli.peer.core),
        ("i", 5, Some(1))
    );
}
