//! `quantum bench` with its real processes: `ipc` (a producer and a consumer process around
//! `quantum run`, over the shm rings) and `legacy` (a real redis-server), with tiny runs. No
//! timing is asserted: only that every plan got its intent and every file was written.

use std::process::Command;

use quantum_bench::suite::{run, SuiteArgs};

fn args(out: &std::path::Path) -> SuiteArgs {
    SuiteArgs {
        out: out.to_path_buf(),
        rate: 2_000.0,
        duration: 0.3,
        blocks: 2,
        closed: 0.05,
        no_baselines: true,
        exe: Some(env!("CARGO_BIN_EXE_quantum").into()),
        ..SuiteArgs::default()
    }
}

#[test]
fn ipc_takes_every_plan_through_quantum_run_to_an_intent() {
    let dir = tempfile::tempdir().unwrap();
    let r = run("ipc", &args(dir.path())).unwrap();
    let keys: Vec<_> = r.rows.iter().map(|r| r.key).collect();
    // The daemon's two layouts.
    assert_eq!(keys, ["ipc", "ipc.inline"]);
    for row in &r.rows {
        // Each block's plans all came out as intents (a missing one fails the block).
        let per_block = (row.rate * 0.3 / 2.0).round().max(1.0) as u64;
        assert_eq!(row.hist.len(), 2 * per_block, "{}", row.key);
        assert!(row.throughput.ops >= 1_000, "{}", row.key);
        assert!(dir.path().join(format!("{}.hgrm", row.key)).exists());
    }
    let log = |m: &str| std::fs::read_to_string(dir.path().join(format!("ipc-{m}-daemon.log")));
    assert!(log("single").is_ok() && log("inline").is_ok());
    // The daemon was stopped with SIGTERM and removed its segments.
    let left = quantum_ipc::list_segments(None)
        .unwrap()
        .into_iter()
        .filter(|s| s.os_id.contains(&format!("qb{}-ipc", std::process::id())))
        .count();
    assert_eq!(left, 0);
}

fn redis_server() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok()
}

#[test]
fn legacy_runs_the_seeds_path_on_a_real_redis_server() {
    if !redis_server() {
        eprintln!("SKIPPED: redis-server is not installed (apt-get install redis-server)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let r = run("legacy", &args(dir.path())).unwrap();
    let keys: Vec<_> = r.rows.iter().map(|r| r.key).collect();
    assert_eq!(keys, ["legacy.bare", "legacy.deployed"]);
    for row in &r.rows {
        assert!(row.hist.len() >= 2, "{}", row.key);
    }
    let json = std::fs::read_to_string(dir.path().join("summary.json")).unwrap();
    assert!(json.contains("Redis server v="), "{json}");
}

#[test]
fn journal_rows_run_the_chain_with_and_without_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let r = run("journal", &args(dir.path())).unwrap();
    let keys: Vec<_> = r.rows.iter().map(|r| r.key).collect();
    assert_eq!(keys, ["journal.off", "journal.on", "journal.fsync"]);
    for row in &r.rows {
        let per_block = (row.rate * 0.3 / 2.0).round().max(1.0) as u64;
        assert_eq!(row.hist.len(), 2 * per_block, "{}", row.key);
        assert!(row.throughput.ops > 0, "{}", row.key);
        assert!(dir.path().join(format!("{}.hgrm", row.key)).exists());
    }
    // Each row removed its journal.
    assert!(!dir.path().join("journal-on").exists());
}

#[test]
fn bridge_rows_take_plans_from_redis_to_result_entries() {
    if !redis_server() {
        eprintln!("SKIPPED: redis-server is not installed (apt-get install redis-server)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(dir.path());
    a.rate = 500.0;
    a.isolated_plans = 3;
    a.isolated_gap_ms = 50;
    let r = run("bridge", &a).unwrap();
    let keys: Vec<_> = r.rows.iter().map(|r| r.key).collect();
    assert_eq!(keys, ["bridge.hold", "bridge.execute", "bridge.isolated"]);
    let (isolated, loaded) = (&r.rows[2], &r.rows[..2]);
    // 3 plans over 2 blocks: 2 a block, each alone; each got its result entry.
    assert_eq!(isolated.hist.len(), 4);
    assert_eq!(isolated.block_p50.len(), 2);
    assert!(isolated.throughput.ops >= 1);
    let summary = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(
        summary.contains("bridge.isolated / bridge.execute"),
        "{summary}"
    );
    for row in loaded {
        // Every plan of every block got its result entry (a missing one fails the block).
        let per_block = (row.rate * 0.3 / 2.0).round().max(1.0) as u64;
        assert_eq!(row.hist.len(), 2 * per_block, "{}", row.key);
        assert!(row.throughput.ops >= 2000, "{}", row.key);
    }
}
