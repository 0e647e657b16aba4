//! `quantum bench chain` with a tiny run: every row is there, counted and written out.
//! Nothing here asserts a speed.

use quantum_bench::chain::{run, ChainArgs};

#[test]
fn chain_bench_writes_every_row() {
    let out = std::env::temp_dir().join(format!("quantum-bench-chain-{}", std::process::id()));
    let rows = run(&ChainArgs {
        plans: 2_000,
        out: out.clone(),
        no_pin: true,
    })
    .unwrap();
    let keys: Vec<_> = rows.iter().map(|r| r.key).collect();
    assert_eq!(keys, ["clock_pair", "array_queue_hop", "chain_single"]);
    for r in &rows {
        assert_eq!(r.hist.len(), 2_000, "{}: one sample per plan", r.key);
        let hgrm = std::fs::read_to_string(out.join(format!("{}.hgrm", r.key))).unwrap();
        assert!(
            hgrm.contains("Percentile") && hgrm.contains("#[Max"),
            "{hgrm}"
        );
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["rows"].as_array().unwrap().len(), 3);
    let _ = std::fs::remove_dir_all(&out);
}
