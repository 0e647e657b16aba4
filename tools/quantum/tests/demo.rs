//! `quantum demo` end to end: the real binary, the in-process simulator over real sockets.
//! Checks the summary's shape, the seeds' story, the files it writes, and both thread layouts.

use std::path::Path;
use std::process::Command;

fn demo(mode: &str, out: &Path) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_quantum"))
        .args([
            "demo", "--plans", "3000", "--rate", "20000", "--mode", mode, "--no-pin", "--out",
        ])
        .arg(out)
        .output()
        .expect("run quantum demo");
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "demo --mode {mode} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    stdout
}

fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
        .parse()
        .unwrap()
}

#[test]
fn demo_replays_the_seeds_story_in_both_modes() {
    for mode in ["single", "pipelined"] {
        let dir =
            std::env::temp_dir().join(format!("quantum-demo-test-{}-{mode}", std::process::id()));
        let out = demo(mode, &dir);
        let summary = out
            .lines()
            .find(|l| l.starts_with("plans="))
            .expect("summary line");
        let (plans, executed, blocked, dups, non_exec) = (
            field(summary, "plans"),
            field(summary, "executed"),
            field(summary, "blocked"),
            field(summary, "duplicates"),
            field(summary, "non_execute"),
        );
        assert_eq!(plans, 3000);
        assert_eq!(executed + blocked + dups + non_exec, plans, "{summary}");
        assert!(executed > 0 && dups > 0 && non_exec > 0, "{summary}");
        assert!(
            out.contains("blocked reason=p33_denied:reconcile_required_qty_mismatch count="),
            "{out}"
        );
        let chain = out
            .lines()
            .find(|l| l.starts_with("chain_ns "))
            .expect("chain_ns line");
        for k in ["p50", "p90", "p99", "p99.9", "p99.99", "max"] {
            assert!(field(chain, k) > 0, "{chain}");
        }
        for line in out.lines().filter(|l| l.starts_with("position ")) {
            let v: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(
                v[2].strip_prefix("simulator="),
                v[3].strip_prefix("ledger="),
                "{line}"
            );
        }
        let hgrm = std::fs::read_to_string(dir.join("chain.hgrm")).unwrap();
        assert!(
            hgrm.contains("Value") && hgrm.contains(&format!("Total count    = {:>12}", executed)),
            "{hgrm}"
        );
        let log = std::fs::read_to_string(dir.join("demo.log")).unwrap();
        assert!(log.contains("[PERMIT_WAIT] OK plan="));
        assert!(log.contains("reason=p33_denied:reconcile_required_qty_mismatch exchange_amt=0.062 ledger_amt=0.002 diff=0.06 tolerance=0.001"));
        assert!(log.contains("already executed (duplicate)"));
        assert!(log.contains("Result published (executed=False, error=None)"));
        // The demo's journal, re-run through the engine under the configuration it ran with:
        // every decision comes out the same.
        let replay = Command::new(env!("CARGO_BIN_EXE_quantum"))
            .args(["replay", "--check", "--journal"])
            .arg(dir.join("journal"))
            .arg("--config")
            .arg(dir.join("config.toml"))
            .output()
            .expect("run quantum replay");
        let text = String::from_utf8_lossy(&replay.stdout);
        assert!(
            replay.status.success(),
            "{mode}: {text}{}",
            String::from_utf8_lossy(&replay.stderr)
        );
        let first = text.lines().next().unwrap_or_default();
        assert!(
            first.contains(&format!("{plans} decision(s), 0 changed")),
            "{mode}: {text}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
