//! The command line as an operator meets it: `ctl inject` with lines it cannot read, help
//! texts with examples.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::{bin, wait_for, Instance};

#[test]
fn inject_skips_unreadable_lines_sends_the_rest_and_exits_1_naming_them() {
    let mut inst = Instance::new("inject-bad");
    inst.start_daemon(&["--quiet"], &[]);
    let mut file = Vec::new();
    file.extend_from_slice(
        b"{\"cmd\":\"set_ledger\",\"symbol\":\"BTCUSDT\",\"amount\":\"0.062\"}\n",
    );
    file.extend_from_slice(b"{\"plan_id\":\"\xff\xfe\",\"symbol\":\"BTCUSDT\"}\n");
    file.extend_from_slice(b"# a comment\n");
    file.extend_from_slice(b"{\"cmd\":\"nope\"}\n");
    file.extend_from_slice(
        b"{\"plan_id\":\"00000000000000aa\",\"symbol\":\"BTCUSDT\",\"decision\":\"HOLD\"}\n",
    );
    let mut child = Command::new(bin())
        .args(["ctl", "inject", "--instance", &inst.name, "--file", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&file).unwrap();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("line 2: not UTF-8 text (invalid byte at column 13)"),
        "{err}"
    );
    assert!(err.contains("line 4: unknown cmd \"nope\""), "{err}");
    assert!(err.contains("2 line(s) of - skipped (lines 2, 4)"), "{err}");
    assert!(err.contains("(1 plans, 1 commands)"), "{err}");
    // The readable lines reached the daemon.
    wait_for(10, "the two records", || {
        inst.counter("plans_in") == 1 && inst.counter("commands_in") == 1
    });
}

#[test]
fn inject_help_documents_every_command_it_accepts() {
    let o = Command::new(bin())
        .args(["ctl", "inject", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    for cmd in [
        "set_ledger",
        "position",
        "kill_switch",
        "trading_state",
        "gov_permit",
        "p33_permit",
        "payload",
        "Examples:",
    ] {
        assert!(help.contains(cmd), "--help does not mention {cmd}:\n{help}");
    }
}

#[test]
fn every_command_has_an_example_in_its_help() {
    let commands: &[&[&str]] = &[
        &[],
        &["run"],
        &["demo"],
        &["ctl", "stats"],
        &["ctl", "rings"],
        &["ctl", "gc"],
        &["ctl", "inject"],
        &["ctl", "tail"],
        &["bench", "ring"],
        &["bench", "chain"],
        &["sim", "binance"],
        &["bridge", "binance"],
    ];
    for c in commands {
        let o = Command::new(bin()).args(*c).arg("--help").output().unwrap();
        let help = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "quantum {c:?} --help failed");
        assert!(
            help.contains("Example") && help.contains("  quantum ") || help.contains("cargo run"),
            "quantum {} --help has no example:\n{help}",
            c.join(" ")
        );
    }
}
