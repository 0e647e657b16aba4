//! The systemd units of `deploy/systemd`: verified by `systemd-analyze` (through
//! `deploy/systemd/verify.sh`, skipped with its reason where the tool is missing), and the
//! settings the operations guide promises are in them.

use std::path::PathBuf;
use std::process::Command;

use crate::common::bin;

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/systemd")
}

#[test]
fn the_units_pass_systemd_analyze_verify() {
    let o = Command::new(deploy().join("verify.sh"))
        .arg(bin())
        .output()
        .expect("run verify.sh");
    let out = String::from_utf8_lossy(&o.stdout);
    eprintln!("{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("systemd units verified: 4") || out.starts_with("SKIPPED"),
        "{out}"
    );
}

#[test]
fn the_units_carry_limits_restart_policy_and_ordering() {
    let unit = |name: &str| std::fs::read_to_string(deploy().join(name)).unwrap();
    let core = unit("quantum-run@.service");
    for line in [
        "ExecStart=/usr/local/bin/quantum run --instance %i --config /etc/quantum/%i.toml --journal-dir /var/lib/quantum/%i",
        "LimitMEMLOCK=infinity",
        "LimitRTPRIO=99",
        "Restart=on-failure",
        "RemoveIPC=no",
        "User=quantum",
    ] {
        assert!(core.lines().any(|l| l == line), "core unit lacks {line}");
    }
    for bridge in [
        "quantum-bridge-binance@.service",
        "quantum-bridge-redis@.service",
    ] {
        let b = unit(bridge);
        for line in [
            "Requires=quantum-run@%i.service",
            "PartOf=quantum-run@%i.service",
            "CPUAffinity=0",
            "Restart=on-failure",
            "RemoveIPC=no",
        ] {
            assert!(b.lines().any(|l| l == line), "{bridge} lacks {line}");
        }
        assert!(b
            .lines()
            .any(|l| l.starts_with("After=quantum-run@%i.service")));
    }
}

#[test]
fn the_example_configuration_is_one_quantum_run_reads() {
    let o = Command::new(bin())
        .args(["run", "--print-config", "--config"])
        .arg(deploy().join("example.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("cpus = \"2-3\"  # default \"\""), "{text}");
    assert!(text.contains("mlockall = true  # default false"), "{text}");
}
