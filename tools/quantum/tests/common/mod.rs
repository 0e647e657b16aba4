//! Real processes over real shared memory: spawn `quantum run` / `quantum ctl`, and a guard
//! that kills every child and removes the instance's segments however the test ends.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quantum_ipc::wire::{Limits, Message, RECORD_SIZE};
use quantum_ipc::{Consumer, CountersReader, Ring, RingSpec};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_quantum")
}

/// Polls `f` until it is true or `secs` pass (then panics with `what`).
pub fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One test's instance: its name, its children, the daemon's stderr lines.
pub struct Instance {
    pub name: String,
    pub children: Vec<Child>,
    pub daemon_log: Arc<Mutex<Vec<String>>>,
}

impl Instance {
    pub fn new(test: &str) -> Instance {
        Instance {
            name: format!("t{}-{test}", std::process::id()),
            children: Vec::new(),
            daemon_log: Arc::default(),
        }
    }

    /// `quantum <args>` with `envs`, stdout piped, stderr inherited.
    pub fn command(&self, args: &[&str], envs: &[(&str, &str)]) -> Command {
        let mut c = Command::new(bin());
        c.args(args).envs(envs.iter().copied());
        c
    }

    /// Starts `quantum run --instance <name>` and waits until its rings are there.
    pub fn start_daemon(&mut self, extra: &[&str], envs: &[(&str, &str)]) -> u32 {
        let mut args = vec!["run", "--instance", &self.name];
        args.extend_from_slice(extra);
        let mut child = self
            .command(&args, envs)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn quantum run");
        let pid = child.id();
        let err = child.stderr.take().expect("stderr");
        let log = self.daemon_log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[daemon] {line}");
                log.lock().unwrap().push(line);
            }
        });
        self.children.push(child);
        let name = self.name.clone();
        wait_for(30, "the daemon's rings", || {
            Ring::open(&RingSpec::new(&name, "results", 0)).is_ok()
                && CountersReader::open(&name).is_ok()
        });
        pid
    }

    /// Spawns `quantum <args>` as a child owned by this guard.
    pub fn spawn(&mut self, args: &[&str], stdout: Stdio) -> &mut Child {
        let child = self
            .command(args, &[])
            .stdout(stdout)
            .spawn()
            .expect("spawn quantum");
        self.children.push(child);
        self.children.last_mut().unwrap()
    }

    pub fn log_has(&self, needle: &str) -> bool {
        self.daemon_log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    pub fn counters(&self) -> CountersReader {
        CountersReader::open(&self.name).expect("counters")
    }

    pub fn counter(&self, label: &str) -> u64 {
        self.counters()
            .get(label)
            .unwrap_or_else(|| panic!("no counter {label}"))
    }

    /// Claims the consumer side of an egress ring.
    pub fn consumer(&self, ring: &str) -> Consumer<RECORD_SIZE> {
        Ring::open(&RingSpec::new(&self.name, ring, 0))
            .expect("open ring")
            .consumer()
            .expect("claim consumer")
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Ok(segs) = quantum_ipc::list_segments(Some(&self.name)) {
            for s in segs {
                let _ = quantum_ipc::shm::remove_segment(&s.os_id);
            }
        }
    }
}

/// Reads `n` records from `c` (heartbeating, so the daemon counts this consumer alive),
/// decoded; panics after `secs`.
pub fn read_n(c: &mut Consumer<RECORD_SIZE>, n: usize, secs: u64) -> Vec<Message> {
    let mut out = Vec::with_capacity(n);
    let end = Instant::now() + Duration::from_secs(secs);
    while out.len() < n {
        c.heartbeat();
        match c.pop(Duration::from_millis(20)) {
            Some(rec) => out.push(Message::decode(&rec, &Limits::default()).expect("valid")),
            None => assert!(
                Instant::now() < end,
                "timed out after {} of {n} records",
                out.len()
            ),
        }
    }
    out
}

/// Sends SIGTERM (or another signal) to `pid` with kill(1).
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill(1)")
        .success();
    assert!(ok, "kill {sig} {pid} failed");
}
