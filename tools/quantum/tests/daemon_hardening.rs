//! Faults found in the daemon and its control commands, each shown with real processes:
//! snapshots that fail (retried, counted) and the snapshot after a long replay; a start that
//! answers `ctl stats` before its rings exist, and a zombie predecessor; `ctl inject` reporting
//! a refused record as accepted; a daemon that opens another journal than its rings belong to.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{bin, signal, wait_for, Instance};
use quantum_ipc::failpoint::{self, Point};
use quantum_ipc::journal::Reader;
use quantum_ipc::{CountersReader, Ring, RingSpec};

/// The state letter of `/proc/<pid>/stat` (`R`, `S`, `T`, `Z`, ...).
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// The number of the last event in the journal in `dir`.
fn last_seq(dir: &Path) -> u64 {
    let reader = Reader::open(dir).expect("open the journal");
    reader
        .read_from(1, |_, _| Ok(()))
        .expect("read the journal")
        - 1
}

fn snapshots(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file()
                        && p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("snapshot-") && n.ends_with(".qs"))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Kills the daemon `pid` with SIGKILL and reaps it.
fn kill_9(inst: &mut Instance, pid: u32) {
    signal(pid, "-KILL");
    let d = inst.children.iter_mut().find(|c| c.id() == pid).unwrap();
    d.wait().unwrap();
}

// ---------------------------------------------------------------------------------------
// 17.8: snapshots

/// A start that replayed more than `journal.snapshot_after_replay` events writes a snapshot at
/// once (so the next start is short), and publishes its event number.
#[test]
fn a_start_after_a_long_replay_writes_a_snapshot() {
    let mut inst = Instance::new("replaysnap");
    let env = [("QUANTUM_JOURNAL_SNAPSHOT_AFTER_REPLAY", "100")];
    let pid = inst.start_daemon(&["--quiet"], &env);
    let (ok, err) = inst.inject_generated(300, 3, &["--decision", "HOLD"]);
    assert!(ok, "{err}");
    kill_9(&mut inst, pid);
    let dir = inst.journal_dir();
    let last = last_seq(&dir);
    assert!(last >= 300, "{last}");
    assert!(snapshots(&dir).is_empty(), "no segment was sealed yet");

    inst.start_daemon(&["--quiet"], &env);
    wait_for(20, "a snapshot after the replay", || {
        !snapshots(&dir).is_empty()
    });
    assert_eq!(
        snapshots(&dir),
        vec![dir.join(format!("snapshot-{last:020}.qs"))]
    );
    wait_for(10, "journal.snapshot_seq", || {
        inst.counter("journal.snapshot_seq") == last
    });
    assert_eq!(inst.counter("journal.snapshot_failures"), 0);
    wait_for(5, "the snapshot in the log", || {
        inst.log_has("journal snapshot written")
    });
}

/// A snapshot that fails is counted (`journal.snapshot_failures`, in `ctl stats` and
/// `ctl metrics`) and tried again until it is written.
#[test]
fn a_failed_snapshot_is_counted_and_retried_until_it_is_written() {
    let mut inst = Instance::new("snapfail");
    let env = [("QUANTUM_JOURNAL_SNAPSHOT_AFTER_REPLAY", "100")];
    let pid = inst.start_daemon(&["--quiet"], &env);
    let (ok, err) = inst.inject_generated(300, 4, &["--decision", "HOLD"]);
    assert!(ok, "{err}");
    kill_9(&mut inst, pid);
    let dir = inst.journal_dir();
    let last = last_seq(&dir);
    // A directory where the snapshot file must go: renaming the snapshot into place fails.
    let blocker = dir.join(format!("snapshot-{last:020}.qs"));
    std::fs::create_dir(&blocker).unwrap();
    std::fs::write(blocker.join("keep"), b"x").unwrap();

    inst.start_daemon(&["--quiet"], &env);
    wait_for(20, "a counted snapshot failure", || {
        inst.counter("journal.snapshot_failures") >= 1
    });
    wait_for(5, "the failure in the log", || {
        inst.log_has("journal snapshot failed")
    });
    let stats = inst
        .command(&["ctl", "stats", "--instance", &inst.name, "--json"], &[])
        .output()
        .unwrap();
    assert!(stats.status.success());
    let v: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert!(
        v["counters"]["journal.snapshot_failures"].as_u64() >= Some(1),
        "{v}"
    );
    let metrics = inst
        .command(&["ctl", "metrics", "--instance", &inst.name, "--once"], &[])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&metrics.stdout);
    assert!(metrics.status.success(), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("quantum_journal_snapshot_failures_total"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(!line.ends_with(" 0"), "{line}");

    // Tried again: once the way is clear, the snapshot is written.
    std::fs::remove_dir_all(&blocker).unwrap();
    wait_for(20, "the retried snapshot", || blocker.is_file());
    wait_for(10, "journal.snapshot_seq", || {
        inst.counter("journal.snapshot_seq") == last
    });
}

// ---------------------------------------------------------------------------------------
// 17.10: start-up

/// While the daemon starts (here: stopped right after it took the instance, before its
/// journal and rings), `ctl stats` says "starting" and fails, and `ctl inject` waits for it,
/// saying so, then sends once the rings are there.
#[test]
fn ctl_stats_says_starting_and_inject_waits_for_the_rings() {
    let mut inst = Instance::new("starting");
    let child = inst
        .command(
            &["run", "--instance", &inst.name, "--quiet"],
            &[(failpoint::ENV, &Point::DaemonStarting.stop_at(1))],
        )
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn quantum run");
    let pid = child.id();
    inst.children.push(child);
    let name = inst.name.clone();
    wait_for(30, "the daemon stopped while starting", || {
        proc_state(pid) == Some('T')
            && CountersReader::open(&name).is_ok_and(|c| c.owner_pid() == u64::from(pid))
    });
    assert!(Ring::open(&RingSpec::new(&name, "ctl", 0)).is_err());

    let out = inst
        .command(&["ctl", "stats", "--instance", &name, "--json"], &[])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "ctl stats must not answer as if up");
    assert!(err.contains("is starting"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"], "starting", "{v}");

    let mut inject = inst
        .command(&["ctl", "inject", "--instance", &name, "--file", "-"], &[])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    inject
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"cmd\":\"set_ledger\",\"symbol\":\"BTCUSDT\",\"amount\":\"0.062\"}\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        inject.try_wait().unwrap().is_none(),
        "ctl inject must wait for a starting daemon"
    );
    signal(pid, "-CONT");
    let out = inject.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("is starting"), "{err}");
    assert!(err.contains("applied 1, refused 0"), "{err}");
    let out = inst
        .command(&["ctl", "stats", "--instance", &name], &[])
        .output()
        .unwrap();
    assert!(out.status.success());
    wait_for(5, "the ledger sync applied", || {
        inst.counter("ledger.BTCUSDT") as i64 == 6_200_000
    });
}

/// `ctl inject --start-wait-secs` bounds the wait: a daemon still starting then is an error
/// that says so, and nothing is sent.
#[test]
fn ctl_inject_gives_up_on_a_daemon_that_stays_starting() {
    let mut inst = Instance::new("stuck");
    let child = inst
        .command(
            &["run", "--instance", &inst.name, "--quiet"],
            &[(failpoint::ENV, &Point::DaemonStarting.stop_at(1))],
        )
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    inst.children.push(child);
    let name = inst.name.clone();
    wait_for(30, "the daemon stopped while starting", || {
        proc_state(pid) == Some('T')
            && CountersReader::open(&name).is_ok_and(|c| c.owner_pid() == u64::from(pid))
    });
    let (ok, err) = inst.inject_generated(10, 1, &["--start-wait-secs", "1"]);
    assert!(!ok);
    assert!(err.contains("still starting after 1 s"), "{err}");
    assert!(err.contains("nothing was sent"), "{err}");
    signal(pid, "-CONT");
}

/// A daemon killed with kill -9 and not yet reaped by its parent is a zombie: it holds
/// nothing, and the next start takes the instance (and its rings) over.
#[test]
fn a_restart_after_kill_9_is_not_refused_by_the_unreaped_daemon() {
    let mut inst = Instance::new("zombie");
    let pid = inst.start_daemon(&["--quiet"], &[]);
    let (ok, err) = inst.inject_generated(50, 2, &[]);
    assert!(ok, "{err}");
    // Killed, not waited for: this test process is its parent and does not reap it yet.
    signal(pid, "-KILL");
    wait_for(10, "the zombie", || proc_state(pid) == Some('Z'));
    let second = inst.start_daemon(&["--quiet"], &[]);
    assert_ne!(second, pid);
    assert!(!inst.log_has("already running"));
    assert_eq!(proc_state(pid), Some('Z'), "still unreaped");
    let (ok, err) = inst.inject_generated(50, 3, &[]);
    assert!(ok, "{err}");
}

// ---------------------------------------------------------------------------------------
// 17.12: the daemon's verdict per record

/// `ctl inject` reports what the daemon applied and what it refused, with the reason, and
/// fails when anything was refused: a ledger sync beyond the range the core keeps (refused
/// when read) and an outside permit while the core issues its own (refused by the engine).
#[test]
fn ctl_inject_reports_refused_records_with_their_reasons_and_fails() {
    let mut inst = Instance::new("refused");
    inst.start_daemon(&["--quiet"], &[]);
    let lines = concat!(
        "{\"cmd\":\"set_ledger\",\"symbol\":\"BTCUSDT\",\"amount\":\"0.062\"}\n",
        "{\"cmd\":\"set_ledger\",\"symbol\":\"BTCUSDT\",\"amount\":\"10000000001\"}\n",
        "{\"cmd\":\"gov_permit\",\"plan_id\":\"00000000000000aa\",\"symbol\":\"BTCUSDT\",\"allow\":true}\n",
    );
    let (ok, err) = inst.inject_lines(lines);
    assert!(!ok, "a refused record must fail ctl inject: {err}");
    assert!(err.contains("applied 1 of 3; refused 2"), "{err}");
    assert!(err.contains("line 2 (LedgerSet): invalid_record"), "{err}");
    assert!(err.contains("amount"), "{err}");
    assert!(
        err.contains("GovPermit plan 00000000000000aa: permit_source"),
        "{err}"
    );
    // The book gauges are sampled every few ms: the valid sync shows, the refused one never.
    wait_for(5, "the ledger gauge", || {
        inst.counter("ledger.BTCUSDT") as i64 == 6_200_000
    });
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(inst.counter("ledger.BTCUSDT") as i64, 6_200_000);
    assert_eq!(inst.counter("refused.invalid_record"), 1);

    // Everything applied: exit 0.
    let (ok, err) =
        inst.inject_lines("{\"cmd\":\"set_ledger\",\"symbol\":\"BTCUSDT\",\"amount\":\"0.05\"}\n");
    assert!(ok, "{err}");
    assert!(err.contains("applied 1, refused 0"), "{err}");
}

// ---------------------------------------------------------------------------------------
// 16.2: an instance owns its journal

/// `quantum run` with the journal from `$HOME` (nothing else set), like a shell.
fn run_from_home(inst: &Instance, home: &Path, extra: &[&str]) -> Command {
    let mut args = vec!["run", "--instance", &inst.name, "--quiet"];
    args.extend_from_slice(extra);
    let mut c = Command::new(bin());
    c.args(&args)
        .env_remove("QUANTUM_JOURNAL_DIR")
        .env_remove("STATE_DIRECTORY")
        .env_remove("XDG_STATE_HOME")
        .env("HOME", home);
    c
}

/// Runs `c` to its exit, stderr captured; a process still running after `secs` is killed
/// and the test fails (a daemon that should have refused to start).
fn run_to_exit(mut c: Command, secs: u64) -> std::process::Output {
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() >= end {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {secs} s (it should have refused to start): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The story of the issue: plans run under one `$HOME`, the daemon is killed, its bridge
/// (the rings' producer) lives on, and a start from a shell with another `$HOME` would open an
/// empty journal and take the rings over. It is refused, naming the journal the rings belong
/// to and what to do; with that directory the daemon takes them over; the start log names
/// the directory and why.
#[test]
fn a_daemon_with_another_journal_refuses_the_rings_and_names_their_journal() {
    let mut inst = Instance::new("ownjournal");
    let homes = tempfile::tempdir().unwrap();
    let (home1, home2) = (homes.path().join("one"), homes.path().join("two"));
    let dir1 = home1.join(".local/state/quantum").join(&inst.name);
    let dir2 = home2.join(".local/state/quantum").join(&inst.name);

    let mut first = run_from_home(&inst, &home1, &[])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = first.id();
    let err = first.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    {
        let log = log.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[daemon 1] {line}");
                log.lock().unwrap().push(line);
            }
        });
    }
    inst.children.push(first);
    let name = inst.name.clone();
    wait_for(30, "the first daemon's rings", || {
        CountersReader::open(&name).is_ok_and(|c| c.owner_pid() == u64::from(pid))
            && Ring::open(&RingSpec::new(&name, "ctl", 0)).is_ok()
    });
    wait_for(5, "the start log", || {
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("journal opened"))
    });
    let opened = log
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains("journal opened"))
        .cloned()
        .unwrap();
    assert!(opened.contains(&dir1.display().to_string()), "{opened}");
    assert!(opened.contains("from $HOME"), "{opened}");

    // The bridge: a live producer of `plans`, which keeps the ring over the daemon's death.
    let plans = Ring::open(&RingSpec::new(&name, "plans", 0)).unwrap();
    let bridge = plans.producer::<64>().unwrap();
    bridge.heartbeat();
    let (ok, err) = inst.inject_generated(100, 5, &[]);
    assert!(ok, "{err}");
    kill_9(&mut inst, pid);
    let rings = inst
        .command(&["ctl", "rings", "--instance", &name], &[])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&rings.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("quantum.{name}.plans"))
                && l.contains(&format!("in {}", dir1.display()))),
        "{text}"
    );

    // Another $HOME: refused, before any journal is made there.
    let out = run_to_exit(run_from_home(&inst, &home2, &[]), 30);
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("[daemon 2] {err}");
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(&format!("quantum.{name}.plans")), "{err}");
    assert!(
        err.contains(&format!("--journal-dir {}", dir1.display())),
        "{err}"
    );
    assert!(err.contains(&dir2.display().to_string()), "{err}");
    assert!(err.contains("from $HOME"), "{err}");
    assert!(
        !dir2.join("identity").exists(),
        "no journal is created for a refused start"
    );
    // The same with an explicit directory that is not the rings' journal.
    let other = homes.path().join("elsewhere");
    let out = run_to_exit(
        run_from_home(&inst, &home2, &["--journal-dir", other.to_str().unwrap()]),
        30,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("(--journal-dir)"), "{err}");

    // The rings' own journal, given explicitly: taken over, and the log says why that one.
    bridge.heartbeat();
    inst.start_daemon(&["--quiet", "--journal-dir", dir1.to_str().unwrap()], &[]);
    wait_for(10, "the take-over", || {
        inst.log_has("took over the ingress ring") && inst.log_has("journal opened")
    });
    assert!(inst.log_has("because=--journal-dir"));
    assert!(inst.log_has(&format!("dir={}", dir1.display())));
    // The plans from before the kill are remembered there.
    let (ok, err) = inst.inject_generated(100, 5, &[]);
    assert!(ok, "{err}");
    wait_for(10, "the duplicates", || {
        inst.counter("results.duplicate") == 100
    });
    drop(bridge);
}

/// A journal belongs to the instance that created it: another instance given its directory
/// is refused, and says whose it is.
#[test]
fn a_journal_of_another_instance_is_refused() {
    let mut inst = Instance::new("owner");
    let pid = inst.start_daemon(&["--quiet"], &[]);
    kill_9(&mut inst, pid);
    let other = Instance::new("intruder");
    let dir = inst.journal_dir();
    let out = run_to_exit(
        other.command(
            &[
                "run",
                "--instance",
                &other.name,
                "--quiet",
                "--journal-dir",
                dir.to_str().unwrap(),
            ],
            &[],
        ),
        30,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("belongs to instance \"{}\"", inst.name)),
        "{err}"
    );
}
