//! Real processes over real shared memory: spawn `quantum run` / `quantum ctl`, and a guard
//! that kills every child and removes the instance's segments however the test ends.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quantum_core::event::Event;
use quantum_core::PlanResult;
use quantum_ipc::broadcast::{self, Broadcast, Start};
use quantum_ipc::wire::{Limits, Message, RECORD_SIZE};
use quantum_ipc::{Consumer, CountersReader, Ring, RingSpec};
use serde_json::Value;

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

/// Waits for `child` to exit (at most `secs`, else kills it and panics) and collects stdout
/// and stderr (whichever are piped).
pub fn finish_within(mut child: Child, secs: u64, what: &str) -> Output {
    let end = Instant::now() + Duration::from_secs(secs);
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .map(|r| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    })
    .collect();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut bufs = readers.into_iter().map(|t| t.join().unwrap());
    Output {
        status,
        stdout: bufs.next().unwrap(),
        stderr: bufs.next().unwrap(),
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

    /// This instance's journal directory (its own, removed with the guard).
    pub fn journal_dir(&self) -> std::path::PathBuf {
        std::env::temp_dir()
            .join("quantum-test-journals")
            .join(&self.name)
    }

    /// `quantum <args>` with `envs`, stdout piped, stderr inherited; the journal goes to
    /// [`Instance::journal_dir`] unless `envs` says otherwise.
    pub fn command(&self, args: &[&str], envs: &[(&str, &str)]) -> Command {
        let mut c = Command::new(bin());
        c.env("QUANTUM_JOURNAL_DIR", self.journal_dir());
        c.args(args).envs(envs.iter().copied());
        c
    }

    /// `quantum ctl stats` of this instance (`--json` when `json`), sampled over 20 ms; its
    /// stdout. Panics when it fails or takes more than 20 s.
    pub fn ctl_stats(&self, json: bool) -> String {
        let mut args = vec![
            "ctl",
            "stats",
            "--instance",
            &self.name,
            "--interval-ms",
            "20",
        ];
        if json {
            args.push("--json");
        }
        let child = self
            .command(&args, &[])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn ctl stats");
        let out = finish_within(child, 20, "ctl stats");
        assert!(out.status.success(), "ctl stats failed");
        String::from_utf8(out.stdout).expect("UTF-8")
    }

    /// `quantum ctl inject --file -` with `lines` on its stdin: its exit status and stderr.
    pub fn inject_lines(&self, lines: &str) -> (bool, String) {
        use std::io::Write;
        let mut child = self
            .command(
                &["ctl", "inject", "--instance", &self.name, "--file", "-"],
                &[],
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ctl inject");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(lines.as_bytes())
            .expect("write the lines");
        let out = child.wait_with_output().expect("ctl inject");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// [`Instance::inject_lines`], which must succeed.
    pub fn inject_ok(&self, lines: &str) {
        let (ok, err) = self.inject_lines(lines);
        assert!(ok, "ctl inject failed: {err}");
    }

    /// `quantum ctl inject --generate n --seed seed` with `extra` arguments: its exit status
    /// and stderr.
    pub fn inject_generated(&self, n: u64, seed: u32, extra: &[&str]) -> (bool, String) {
        let (n, seed) = (n.to_string(), seed.to_string());
        let mut args = vec![
            "ctl",
            "inject",
            "--instance",
            &self.name,
            "--generate",
            &n,
            "--seed",
            &seed,
        ];
        args.extend_from_slice(extra);
        let out = self.command(&args, &[]).output().expect("ctl inject");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Starts a daemon whose exchange positions the test feeds by hand (`ctl inject`
    /// `position` lines), with no Binance bridge: it must not wait for the exchange's order
    /// history, which nothing would send (`--recover-from-exchange never`).
    pub fn start_daemon_fed_by_hand(&mut self, extra: &[&str], envs: &[(&str, &str)]) -> u32 {
        let mut args = extra.to_vec();
        args.extend_from_slice(&["--recover-from-exchange", "never"]);
        self.start_daemon(&args, envs)
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
        // This daemon's own segments (a killed predecessor's may still be there), and the
        // daemon up (`ready`: its start is over).
        wait_for(30, "the daemon's rings", || {
            CountersReader::open(&name)
                .is_ok_and(|c| c.owner_pid() == u64::from(pid) && c.get("ready") == Some(1))
                && Broadcast::open(&RingSpec::new(&name, "results", 0))
                    .is_ok_and(|b| b.writer_status(u64::MAX).is_alive())
                && Ring::open(&RingSpec::new(&name, "ctl", 0)).is_ok()
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

    /// Spawns `quantum bridge binance --instance <this> --rest-url <rest> <extra…>` with the
    /// simulator's test keys in its environment (its stdout discarded), a child owned by this
    /// guard.
    pub fn spawn_binance_bridge(&mut self, rest: &str, extra: &[&str]) -> &mut Child {
        let name = self.name.clone();
        let mut args = vec!["bridge", "binance", "--instance", &name, "--rest-url", rest];
        args.extend_from_slice(extra);
        let child = self
            .command(
                &args,
                &[
                    ("BINANCE_API_KEY", quantum_binance_sim::TEST_API_KEY),
                    ("BINANCE_API_SECRET", quantum_binance_sim::TEST_API_SECRET),
                ],
            )
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn quantum bridge binance");
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

    /// A reader of the `results` ring from the oldest event it holds, past the daemon's
    /// start: every daemon's first event is its `Started` (checked here), then what its
    /// recovery made.
    pub fn events(&self) -> Events {
        let ring = Broadcast::open(&RingSpec::new(&self.name, "results", 0)).expect("open results");
        let mut ev = Events {
            reader: ring.reader(Start::Oldest),
            _ring: ring,
        };
        let first = ev.next(30);
        assert!(
            matches!(first, Event::Started { .. }),
            "a daemon's first event is its start, not {first:?}"
        );
        ev
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
        let _ = std::fs::remove_dir_all(self.journal_dir());
    }
}

/// A reader of the daemon's events (the `results` broadcast ring).
pub struct Events {
    reader: broadcast::Reader,
    _ring: Broadcast,
}

impl Events {
    /// The next event; panics after `secs`, or if the ring lapped this reader.
    pub fn next(&mut self, secs: u64) -> Event {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            match self.reader.read() {
                broadcast::Next::Record { record, .. } => {
                    let m = Message::decode(&record, &Limits::default()).expect("valid record");
                    return Event::from_message(&m).expect("an event record");
                }
                broadcast::Next::Missed { from_seq, to_seq } => {
                    panic!("the results ring lapped the test's reader: missed {from_seq}..{to_seq}")
                }
                broadcast::Next::Empty => {
                    assert!(Instant::now() < end, "timed out waiting for an event");
                    self.reader.heartbeat();
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }

    /// The next `n` events.
    pub fn take(&mut self, n: usize, secs: u64) -> Vec<Event> {
        (0..n).map(|_| self.next(secs)).collect()
    }

    /// Events until (and with) the `n`-th plan result; returns the results only.
    pub fn results(&mut self, n: usize, secs: u64) -> Vec<PlanResult> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if let Event::PlanResult(r) = self.next(secs) {
                out.push(r);
            }
        }
        out
    }

    /// The next event if one is there now.
    #[allow(dead_code)] // not every test binary uses it
    pub fn try_next(&mut self) -> Option<Event> {
        match self.reader.read() {
            broadcast::Next::Record { record, .. } => {
                let m = Message::decode(&record, &Limits::default()).expect("valid record");
                Some(Event::from_message(&m).expect("an event record"))
            }
            broadcast::Next::Missed { from_seq, to_seq } => {
                panic!("the results ring lapped the test's reader: missed {from_seq}..{to_seq}")
            }
            broadcast::Next::Empty => None,
        }
    }

    /// Whether nothing new came within `ms`.
    pub fn quiet_for(&mut self, ms: u64) -> bool {
        let end = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < end {
            if !matches!(self.reader.read(), broadcast::Next::Empty) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
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

/// Reads the simulator's banner until its REST URL; the rest of its output goes to stderr.
pub fn sim_url(out: std::process::ChildStdout) -> String {
    let mut lines = BufReader::new(out).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the simulator exited before printing its URL")
            .expect("sim stdout");
        if let Some(rest) = line.trim().strip_prefix("REST") {
            break rest.trim().to_string();
        }
    };
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            eprintln!("[sim] {line}");
        }
    });
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    url
}

/// One HTTP/1.1 request to the simulator's `/sim` controls; the JSON body of a 200 answer.
pub fn sim_http(base: &str, method: &str, path: &str, body: Option<&str>) -> Value {
    let host = base.strip_prefix("http://").expect("http URL");
    let mut s = TcpStream::connect(host).expect("connect to the simulator");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read the answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "{method} {path}: {answer}"
    );
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "chunked answers are not read here: {head}"
    );
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body}"))
}
