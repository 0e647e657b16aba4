//! A reader that closes the pipe early ends `quantum`'s output quietly: exit 0, nothing on
//! stderr, no panic; `ctl tail` detaches from `results` instead of dying on it.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use crate::common::{bin, wait_for, Instance};
use crate::wait_exit;
use quantum_ipc::broadcast::Broadcast;
use quantum_ipc::{PeerStatus, RingSpec};

/// Reads the first line of `quantum <args>`'s stdout, closes the pipe, and returns the exit
/// status and everything it wrote to stderr.
fn first_line_then_close(args: &[&str], before_read: impl FnOnce()) -> (bool, String, String) {
    let mut child = Command::new(bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn quantum");
    let mut stderr = child.stderr.take().expect("stderr");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    before_read();
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("first line");
    drop(out); // the reader goes away, as `head -1` does
    let status = wait_exit(&mut child, 60, args[1]);
    (status.success(), first, err_reader.join().unwrap())
}

#[test]
fn stats_watch_ends_quietly_when_its_reader_closes_the_pipe() {
    let mut inst = Instance::new("pipe-stats");
    inst.start_daemon_fed_by_hand(&["--quiet"], &[]);
    let (ok, first, err) = first_line_then_close(
        &[
            "ctl",
            "stats",
            "--instance",
            &inst.name,
            "--watch",
            "0.01",
            "--interval-ms",
            "5",
        ],
        || {},
    );
    assert!(first.starts_with("instance "), "{first}");
    assert!(ok, "ctl stats did not exit 0; stderr: {err}");
    assert_eq!(err, "", "ctl stats wrote to stderr after the pipe closed");
}

#[test]
fn tail_ends_quietly_and_detaches_when_its_reader_closes_the_pipe() {
    let mut inst = Instance::new("pipe-tail");
    inst.start_daemon_fed_by_hand(&["--quiet"], &[]);
    let name = inst.name.clone();
    let results = Broadcast::open(&RingSpec::new(&name, "results", 0)).unwrap();
    let reader = |results: &Broadcast| results.readers(60_000).first().map(|r| r.status);
    let inject = |inst: &mut Instance| {
        inst.spawn(
            &[
                "ctl",
                "inject",
                "--instance",
                &name,
                "--generate",
                "20000",
                "--decision",
                "HOLD",
            ],
            Stdio::null(),
        );
    };
    // Results only: the daemon's first event, its start, is there before any plan's.
    let tail = ["ctl", "tail", "--instance", &name, "--only", "results"];
    let (ok, first, err) = first_line_then_close(&tail, || {
        wait_for(30, "tail to attach", || {
            reader(&results).is_some_and(|s| s.is_alive())
        });
        inject(&mut inst);
    });
    assert!(first.contains("Result published"), "{first}");
    assert!(ok, "ctl tail did not exit 0; stderr: {err}");
    // Only tail's own start line: no panic, no error.
    assert!(
        err.lines().all(|l| l.starts_with("tail: reading")),
        "ctl tail: {err}"
    );
    assert!(
        matches!(reader(&results), Some(PeerStatus::Detached { .. })),
        "tail left its reader entry {:?}",
        reader(&results)
    );
}

#[test]
fn rings_piped_into_head_prints_no_error() {
    let mut inst = Instance::new("pipe-rings");
    inst.start_daemon_fed_by_hand(&["--quiet"], &[]);
    let script = format!(
        "set -o pipefail; {} ctl rings --instance {} | head -1",
        bin(),
        inst.name
    );
    let o = Command::new("bash")
        .args(["-c", &script])
        .output()
        .expect("bash");
    assert!(o.status.success(), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("quantum."),
        "{o:?}"
    );
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
