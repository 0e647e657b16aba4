//! The command line as an operator meets it: `ctl inject` with lines it cannot read, help
//! texts with examples.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::{bin, wait_for, Instance};

#[test]
fn inject_skips_unreadable_lines_sends_the_rest_and_exits_1_naming_them() {
    let mut inst = Instance::new("inject-bad");
    inst.start_daemon_fed_by_hand(&["--quiet"], &[]);
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
        &["ctl", "journal", "verify"],
        &["ctl", "journal", "dump"],
        &["ctl", "journal", "state"],
        &["ctl", "journal", "plan"],
        &["ctl", "doctor"],
        &["ctl", "metrics"],
        &["ctl", "top"],
        &["ctl", "latency"],
        &["bench", "all"],
        &["bench", "ring"],
        &["bench", "chain"],
        &["bench", "ipc"],
        &["bench", "legacy"],
        &["sim", "binance"],
        &["bridge", "binance"],
        &["bridge", "redis"],
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

#[test]
fn print_config_shows_every_key_its_variable_and_what_differs_from_the_default() {
    let run = |args: &[&str], envs: &[(&str, &str)]| {
        let o = Command::new(bin())
            .args(args)
            .envs(envs.iter().copied())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let defaults = run(&["run", "--print-config", "--defaults"], &[]);
    for needle in [
        "# env QUANTUM_ENGINE_APPLY_WAIT_MS (legacy APPLY_PERMIT_WAIT_MS",
        "apply_wait_ms = 1200\n",
        "# max_notional_order = (unset)",
        "# env QUANTUM_HOST_SCHED_FIFO",
        "[[symbols]]",
    ] {
        assert!(defaults.contains(needle), "no {needle:?} in:\n{defaults}");
    }
    // The defaults, read back as a config file, are the defaults again.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.toml");
    std::fs::write(&file, &defaults).unwrap();
    let back = run(
        &["run", "--print-config", "--config", file.to_str().unwrap()],
        &[],
    );
    assert!(!back.contains("# default"), "{back}");
    // The effective configuration marks what the environment and flags changed.
    let eff = run(
        &["run", "--print-config", "--mlockall", "--cpus", "0"],
        &[
            ("APPLY_PERMIT_WAIT_MS", "700"),
            ("QUANTUM_GOVERNOR_MIN_KILL_SCORE", "0.5"),
        ],
    );
    assert!(eff.contains("apply_wait_ms = 700  # default 1200"), "{eff}");
    assert!(
        eff.contains("min_kill_score = \"0.5\"  # default: unset"),
        "{eff}"
    );
    assert!(eff.contains("mlockall = true  # default false"), "{eff}");
    assert!(eff.contains("cpus = \"0\"  # default \"\""), "{eff}");
}

#[test]
fn bad_host_settings_are_refused_naming_the_key() {
    for (args, key) in [
        (&["--sched-fifo", "120"][..], "host.sched_fifo"),
        (&["--cpus", "3-1"][..], "host.cpus"),
    ] {
        let o = Command::new(bin())
            .args(["run", "--instance", "never-started", "--print-config"])
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(key), "{err}");
    }
}

/// `Cpus_allowed_list` and `VmLck` of a process.
fn proc_status(pid: u32) -> (String, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let vmlck = field("VmLck:")
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap_or(0);
    (field("Cpus_allowed_list:"), vmlck)
}

#[test]
fn run_locks_its_memory_and_keeps_to_its_cpus_or_says_why_not() {
    let mut inst = Instance::new("host");
    let cpu = proc_status(std::process::id())
        .0
        .split([',', '-'])
        .next()
        .unwrap()
        .to_string();
    // Can this process lock memory at all (root, CAP_IPC_LOCK or an unlimited memlock)?
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let cap_ipc_lock = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .is_some_and(|c| c & (1 << 14) != 0);
    let unlimited = limits
        .lines()
        .any(|l| l.starts_with("Max locked memory") && l.contains("unlimited"));
    if !(cap_ipc_lock || unlimited) {
        let o = Command::new(bin())
            .args(["run", "--instance", &inst.name, "--mlockall"])
            .stdout(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.contains("host.mlockall") && err.contains("LimitMEMLOCK"),
            "{err}"
        );
        eprintln!("memory locking not permitted here: checked the refusal only");
        return;
    }
    let pid = inst.start_daemon_fed_by_hand(&["--quiet", "--mlockall", "--cpus", &cpu], &[]);
    let (cpus, vmlck) = proc_status(pid);
    assert_eq!(cpus, cpu);
    assert!(vmlck > 0, "VmLck is {vmlck} kB");
    wait_for(10, "the host notes in the log", || {
        inst.log_has("host: memory locked") && inst.log_has(&format!("CPUs {cpu}"))
    });
    // The log lines carry a level and a target.
    assert!(
        inst.log_has(" INFO quantum_daemon: host:"),
        "{:?}",
        inst.daemon_log
    );
}
