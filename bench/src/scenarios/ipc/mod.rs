//! `ipc`: plan → `quantum run` → order intent, across real processes over the shm rings.
//!
//! ```text
//!  producer process ──plans──> quantum run ──orders──> consumer process
//!  (Redis bridge's side)        (the daemon)  <─exchange── (Binance bridge's side: a reject
//!                                                          for every intent, fresh positions)
//! ```
//!
//! Three processes besides this one: the daemon as `quantum run` starts it (default
//! configuration but for dedupe sized for the benchmark's rate), and two [`peer`]s. Two rows:
//! `ipc` with the daemon's `single` layout (its I/O thread hands each plan to an engine
//! thread) and `ipc.inline` with the `inline` layout (the I/O thread runs the engine; what
//! `mode = "auto"` picks on a host with fewer than three usable cores). The
//! producer writes each plan at its due time; the consumer times each intent from that due time
//! (open loop: several plans can be in flight). Both read the same raw clock (see [`peer`]).
//! The closed-loop run floods plans with a window of unfinished ones.

pub mod peer;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use quantum_ipc::broadcast::Broadcast;
use quantum_ipc::{contract, CountersReader, RingSpec};

use super::chain::{DEDUPE_CAPACITY, HORIZON_MS};
use super::ring::ChildGuard;
use super::Ctx;
use crate::suite::openloop::Schedule;
use crate::suite::variant::{Throughput, Variant};

/// Environment of the daemon: warnings only in its log (every benchmark order ends in a reject,
/// which the daemon logs at info level: a line per plan that production would not write), and
/// dedupe sized for the closed-loop run (the horizon must stay above apply's 1200 ms wait, and
/// the maximum plan age within the horizon); positions are fed by hand, with no Binance bridge
/// to report the exchange's order history, so the daemon does not wait for one.
const DAEMON_ENV: [(&str, &str); 5] = [
    ("RUST_LOG", "warn"),
    ("QUANTUM_ENGINE_DEDUPE_HORIZON_MS", "1500"),
    ("QUANTUM_ENGINE_DEDUPE_CAPACITY", "2097152"),
    ("QUANTUM_ENGINE_MAX_PLAN_AGE_MS", "1500"),
    ("QUANTUM_JOURNAL_RECOVER_FROM_EXCHANGE", "never"),
];

/// Plans in flight in the closed-loop run.
const WINDOW: u64 = 16;

/// The rows of `ipc`.
pub fn build(ctx: &Ctx) -> Result<super::Rows> {
    debug_assert_eq!(DAEMON_ENV[1].1, HORIZON_MS.to_string());
    debug_assert_eq!(DAEMON_ENV[2].1, DEDUPE_CAPACITY.to_string());
    Ok(vec![
        Box::new(Ipc::start(ctx, Layout::Single)?),
        Box::new(Ipc::start(ctx, Layout::Inline)?),
    ])
}

/// The daemon's thread layout a row runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    Single,
    Inline,
}

impl Layout {
    fn mode(self) -> &'static str {
        match self {
            Layout::Single => "single",
            Layout::Inline => "inline",
        }
    }
}

/// A peer process and its pipes.
struct Peer {
    guard: ChildGuard,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    what: &'static str,
}

impl Peer {
    fn spawn(ctx: &Ctx, instance: &str, role: &'static str) -> Result<Peer> {
        let mut child = Command::new(&ctx.exe)
            .args(["bench", "ipc-peer", "--role", role, "--instance", instance])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting the {role} ({})", ctx.exe.display()))?;
        let stdin = child.stdin.take().context("peer stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("peer stdout")?);
        let mut p = Peer {
            guard: ChildGuard(Some(child)),
            stdin,
            stdout,
            what: role,
        };
        p.expect("ready")?;
        Ok(p)
    }

    fn say(&mut self, line: &str) -> Result<()> {
        writeln!(self.stdin, "{line}")
            .and_then(|()| self.stdin.flush())
            .with_context(|| format!("the {} process is gone", self.what))
    }

    fn line(&mut self) -> Result<String> {
        let mut s = String::new();
        if self.stdout.read_line(&mut s)? == 0 {
            bail!("the {} process exited (see its stderr above)", self.what);
        }
        Ok(s.trim_end().to_owned())
    }

    fn expect(&mut self, word: &str) -> Result<String> {
        let l = self.line()?;
        if l.split_whitespace().next() != Some(word) {
            bail!("the {} said {l:?}, expected {word}", self.what);
        }
        Ok(l)
    }
}

struct Ipc {
    layout: Layout,
    daemon: ChildGuard,
    instance: String,
    journal: std::path::PathBuf,
    producer: Peer,
    consumer: Peer,
    clock: quanta::Clock,
    /// Raw clock ticks per ns (1 when the clock is CLOCK_MONOTONIC).
    ticks_per_ns: f64,
    seq: u64,
}

impl Ipc {
    fn start(ctx: &Ctx, layout: Layout) -> Result<Ipc> {
        let mode = layout.mode();
        let instance = format!("{}-ipc-{mode}", ctx.tag);
        std::fs::create_dir_all(&ctx.out)?;
        let journal = ctx.out.join(format!("ipc-{mode}-journal"));
        let daemon = start_daemon_with(
            ctx,
            &instance,
            &journal,
            &format!("ipc-{mode}-daemon.log"),
            &["--mode", mode],
        )?;
        let consumer = Peer::spawn(ctx, &instance, "consumer")?;
        let producer = Peer::spawn(ctx, &instance, "producer")?;
        let clock = quanta::Clock::new();
        Ok(Ipc {
            layout,
            daemon,
            instance,
            journal,
            producer,
            consumer,
            ticks_per_ns: ticks_per_ns(&clock),
            clock,
            seq: 0,
        })
    }

    fn next_seqs(&mut self, count: u64) -> u64 {
        let first = self.seq + 1;
        self.seq += count;
        first
    }
}

/// How many raw clock ticks make a nanosecond, measured over 20 ms.
fn ticks_per_ns(clock: &quanta::Clock) -> f64 {
    let r0 = clock.raw();
    std::thread::sleep(Duration::from_millis(20));
    let r1 = clock.raw();
    (r1 - r0) as f64 / clock.delta_as_nanos(r0, r1).max(1) as f64
}

impl Variant for Ipc {
    fn key(&self) -> &'static str {
        match self.layout {
            Layout::Single => "ipc",
            Layout::Inline => "ipc.inline",
        }
    }
    fn name(&self) -> &'static str {
        match self.layout {
            Layout::Single => "plan → quantum run (single) → intent, 3 processes",
            Layout::Inline => "plan → quantum run (inline) → intent, 3 processes",
        }
    }
    fn op(&self) -> &'static str {
        "plan"
    }

    fn block(&mut self, schedule: &Schedule, hist: &mut Histogram<u64>) -> Result<()> {
        let first = self.next_seqs(schedule.count);
        let interval = (schedule.interval_ns() as f64 * self.ticks_per_ns).round() as u64;
        // The first plan is due 5 ms from now: both peers have the line by then.
        let start = self.clock.raw() + (5e6 * self.ticks_per_ns) as u64;
        let line = format!("open {first} {} {start} {interval}", schedule.count);
        self.consumer.say(&line)?;
        self.consumer.expect("ready")?;
        self.producer.say(&line)?;
        self.producer.expect("ok")?;
        let reply = self.consumer.expect("hist")?;
        let mut words = reply.split_whitespace().skip(1);
        let bytes = hex::decode(words.next().context("hist without data")?)?;
        let missing: u64 = words.next().context("hist without count")?.parse()?;
        if missing > 0 {
            bail!("{missing} of {} plans got no order intent", schedule.count);
        }
        let h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| anyhow::anyhow!("reading the consumer's histogram: {e:?}"))?;
        hist.add(&h)?;
        Ok(())
    }

    fn throughput(&mut self, duration: Duration) -> Result<Throughput> {
        let started = Instant::now();
        let mut ops = 0;
        let mut elapsed_ns = 0u64;
        // Floods of growing size until the run is long enough: a slow minute must not turn a
        // fixed-size flood into a run ten times longer than asked for.
        let mut count = 500;
        while started.elapsed() < duration {
            count = (count * 2).min(50_000);
            let first = self.next_seqs(count);
            self.consumer.say(&format!("flood {first} {count}"))?;
            self.consumer.expect("ready")?;
            let t0 = self.clock.raw();
            self.producer
                .say(&format!("flood {first} {count} {WINDOW}"))?;
            self.producer.expect("ok")?;
            let last: u64 = self
                .consumer
                .expect("done")?
                .split_whitespace()
                .nth(1)
                .context("done without a time")?
                .parse()?;
            elapsed_ns += self.clock.delta_as_nanos(t0, last.max(t0));
            ops += count;
        }
        Ok(Throughput {
            ops,
            elapsed: Duration::from_nanos(elapsed_ns),
        })
    }

    fn notes(&self) -> Vec<String> {
        vec![
            format!(
                "quantum run --mode {m} (idle threads park, pinned when cores allow), --quiet, RUST_LOG=warn; its log: ipc-{m}-daemon.log",
                m = self.layout.mode()
            ),
            "consumer waits on orders as the Binance bridge does (spin, yield, then asleep on the ring's doorbell)".to_owned(),
            format!("closed loop keeps {WINDOW} plans unfinished"),
        ]
    }
}

impl Drop for Ipc {
    fn drop(&mut self) {
        let _ = self.producer.say("quit");
        let _ = self.consumer.say("quit");
        for p in [&mut self.producer, &mut self.consumer] {
            if let Some(mut c) = p.guard.0.take() {
                let _ = c.wait();
            }
        }
        if let Some(mut c) = self.daemon.0.take() {
            stop_daemon(&mut c, &self.instance, &self.journal);
        }
    }
}

/// Starts `quantum run --instance <instance> --quiet` for a benchmark (its journal in `journal`,
/// emptied first; its log in the run's output directory) and waits until its rings are up.
pub fn start_daemon(
    ctx: &Ctx,
    instance: &str,
    journal: &std::path::Path,
    log: &str,
) -> Result<ChildGuard> {
    start_daemon_with(ctx, instance, journal, log, &[])
}

/// [`start_daemon`] with more arguments for `quantum run` (`--mode inline`, ...).
pub fn start_daemon_with(
    ctx: &Ctx,
    instance: &str,
    journal: &std::path::Path,
    log: &str,
    extra: &[&str],
) -> Result<ChildGuard> {
    std::fs::create_dir_all(&ctx.out)?;
    let _ = std::fs::remove_dir_all(journal);
    let log_path = ctx.out.join(log);
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let child = Command::new(&ctx.exe)
        .args(["run", "--instance", instance, "--quiet"])
        .args(extra)
        .envs(DAEMON_ENV)
        .env("QUANTUM_JOURNAL_DIR", journal)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting quantum run ({})", ctx.exe.display()))?;
    let mut daemon = ChildGuard(Some(child));
    let deadline = Instant::now() + Duration::from_secs(30);
    while Broadcast::open(&RingSpec::new(instance, contract::RESULTS.name, 0)).is_err()
        || CountersReader::open(instance).is_err()
    {
        if let Some(c) = &mut daemon.0 {
            if let Some(status) = c.try_wait()? {
                bail!(
                    "quantum run exited with {status} before its rings were up (see {})",
                    log_path.display()
                );
            }
        }
        if Instant::now() > deadline {
            bail!("quantum run's rings were not up within 30 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(daemon)
}

/// Stops a benchmark's daemon (SIGTERM: it drains and removes its egress segments) and removes
/// what a daemon keeps for its next start, which a benchmark instance never has: its ingress
/// rings and its journal.
pub fn stop_daemon(c: &mut Child, instance: &str, journal: &std::path::Path) {
    terminate(c);
    for seg in quantum_ipc::list_segments(Some(instance)).unwrap_or_default() {
        let _ = quantum_ipc::remove_segment(&seg.os_id);
    }
    let _ = std::fs::remove_dir_all(journal);
}

/// SIGTERM, then SIGKILL if it is still there after 10 s.
fn terminate(c: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status();
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = c.kill();
    let _ = c.wait();
}
