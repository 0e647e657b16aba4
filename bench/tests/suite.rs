//! `quantum bench` end to end with tiny runs: every file is written and well-formed, rows are
//! interleaved in blocks, missing scenarios are named. No timing is asserted.

use quantum_bench::suite::{run, SuiteArgs};

fn args(out: &std::path::Path) -> SuiteArgs {
    SuiteArgs {
        out: out.to_path_buf(),
        rate: 5_000.0,
        duration: 0.2,
        blocks: 3,
        closed: 0.05,
        no_pin: true,
        exe: Some(env!("CARGO_BIN_EXE_quantum-bench-peer").into()),
        ..SuiteArgs::default()
    }
}

#[test]
fn ring_writes_table_summaries_hgrm_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let r = run("ring", &args(dir.path())).unwrap();
    let keys: Vec<_> = r.rows.iter().map(|r| r.key).collect();
    assert_eq!(
        keys,
        [
            "ring.cache_line",
            "ring.array_queue",
            "ring.shm_threads",
            "ring.shm_processes"
        ]
    );
    for row in &r.rows {
        assert_eq!(row.block_p50.len(), 3, "{}: one p50 per block", row.key);
        assert!(row.hist.len() >= 3 && row.throughput.ops > 0, "{}", row.key);
        let hgrm = std::fs::read_to_string(dir.path().join(format!("{}.hgrm", row.key))).unwrap();
        assert!(hgrm.contains("#[Max"), "{hgrm}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for row in rows {
        for p in ["p50", "p90", "p99", "p99.9", "p99.99", "max"] {
            assert!(row["percentiles_ns"][p].as_u64().unwrap() > 0, "{row}");
        }
        assert!(row["throughput_per_s"].as_f64().unwrap() > 0.0);
        let floor = &row["ratios"]["floor"];
        assert!(floor["blocks_min"].as_f64().unwrap() <= floor["blocks_max"].as_f64().unwrap());
    }
    assert!(json["machine"]["cpu_model"].is_string());
    assert!(json["machine"]["load_before"].is_array());
    let md = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(
        md.contains("## Machine") && md.contains("ring.shm_processes"),
        "{md}"
    );
    let svg = std::fs::read_to_string(dir.path().join("latency.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("ring.cache_line"));
    let png = std::fs::read(dir.path().join("latency.png")).unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
}

#[test]
fn chain_runs_with_the_baselines_of_the_same_run() {
    let dir = tempfile::tempdir().unwrap();
    let r = run("chain", &args(dir.path())).unwrap();
    let keys: Vec<_> = r.rows.iter().map(|r| r.key).collect();
    assert_eq!(
        keys,
        [
            "ring.cache_line",
            "ring.array_queue",
            "chain.single",
            "chain.pipelined"
        ]
    );
    let md = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(
        md.contains("/floor") && md.contains("chain.pipelined"),
        "{md}"
    );
}

#[test]
fn every_scenario_is_registered_and_an_unknown_one_is_refused() {
    let names: Vec<_> = quantum_bench::scenarios::select("all")
        .unwrap()
        .iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(
        names,
        ["ring", "chain", "ipc", "legacy", "bridge", "journal", "exchange"]
    );
    let one = quantum_bench::scenarios::select("journal").unwrap();
    assert_eq!(one.len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let e = format!(
        "{:#}",
        run("nonsense", &args(dir.path())).err().expect("refused")
    );
    assert!(
        e.contains("unknown scenario") && e.contains("journal"),
        "{e}"
    );
}

#[test]
fn exchange_rows_run_against_the_simulator_next_to_the_echo_floor() {
    let dir = tempfile::tempdir().unwrap();
    let a = SuiteArgs {
        no_baselines: true,
        ..args(dir.path())
    };
    let r = run("exchange", &a).unwrap();
    let keys: Vec<_> = r.rows.iter().map(|r| r.key).collect();
    assert_eq!(keys, ["exchange.tcp_echo", "exchange.rest", "exchange.ws"]);
    for row in &r.rows {
        assert_eq!(row.block_p50.len(), 3, "{}", row.key);
        assert!(row.hist.len() >= 3 && row.throughput.ops > 0, "{}", row.key);
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    for row in json["rows"].as_array().unwrap() {
        let echo = &row["ratios"]["echo"];
        assert!(
            echo["blocks_min"].as_f64().unwrap() <= echo["blocks_max"].as_f64().unwrap(),
            "{row}"
        );
    }
    let md = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(md.contains("/echo") && md.contains("exchange.ws"), "{md}");
}
