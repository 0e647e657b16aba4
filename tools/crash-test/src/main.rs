//! The crash test: `kill -9` the core daemon, the Binance bridge, or both, at random moments
//! while plans flow and orders are in flight, restart them, go on; at the end prove that no
//! plan was ordered twice and nothing was lost.
//!
//! Real processes only: `quantum sim binance` (with latency, dropped connections, ambiguous
//! 503s, unknown-outcome timeouts and a gateway's 502/504 after the order was placed on), `quantum run` (journal in the output directory),
//! `quantum bridge binance` (REST and the WebSocket API on alternate starts), and `quantum ctl
//! inject` as the plan producer, fed the seeds' mix with re-deliveries of old plan ids. Kills
//! are random SIGKILLs of either process or both, plus crash points armed at some starts
//! (`QUANTUM_FAILPOINT`: right after an event or an intent is journaled and before it leaves,
//! after an intent is on the `orders` ring, just before an order is sent, and after Binance
//! placed it but before anyone heard of it).
//!
//! The ledger is never set after a restart to make the numbers agree. Like the entry side of
//! the legacy system, the test re-opens a position that has been closed down (on the
//! simulator, then the ledger sync an entry service sends) only when the core is at rest for
//! that symbol and its ledger already equals the simulator's position; that equality is
//! checked, not assumed.
//!
//! Then the Redis phase (see `redis_phase`), and at the end every plan is delivered once more;
//! then the host "loses its disk" (everything killed, the journal and shared memory deleted,
//! an empty start that recovers from the exchange, the operator's ledger sync, every plan
//! delivered again: no plan the exchange holds an order of is ordered again). Round 2 starts
//! with a daemon on another journal directory, which must refuse the instance's rings. The
//! test checks and prints: no client
//! order id twice on `/sim/orders`; the last re-delivery created no order; every EXECUTE plan
//! has exactly one final result in the journal; ledger = simulator position and nothing in
//! flight for every symbol; `quantum ctl journal verify` passes. Exit status 1 when any fails.
//! After every round the core is brought to rest and its ledger must equal the simulator's
//! position on every leg (a hedge leg's never across zero).
//!
//! `--hedge` runs the account in hedge mode: the simulator with `--hedge-mode`, the daemon with
//! a configuration file (in the output directory) that puts BTCUSDT, ETHUSDT and SOLUSDT in
//! hedge mode, so every symbol is two legs (`BTCUSDT:LONG`, `BTCUSDT:SHORT`, ...), BTCUSDT
//! holding both a LONG and a SHORT position ([`sim::HEDGE_BOOK`]). Every plan goes to a leg and
//! names its `position_side`, except a few (one id in 16) that name none: those must be
//! denied `position_side_required` and never ordered. Every check above is made per leg, and
//! every order must be on its plan's leg: `positionSide` LONG with SELL or SHORT with BUY, no
//! `reduceOnly`.

mod redis_phase;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use quantum_core::event::Event;
use quantum_core::p33::P33Reason;
use quantum_core::{Block, Decision, Outcome, Plan, PositionSide, Qty};
use quantum_crash_test::book::{self, q, Book};
use quantum_crash_test::http;
use quantum_crash_test::procs::{self, join, log_file, Proc};
use quantum_crash_test::sim::{self, Leg, OrderAudit, Sim};
use quantum_ipc::contract;
use quantum_ipc::failpoint::{self, Point};
use quantum_ipc::journal::Reader;
use quantum_ipc::wire::{Limits, Message};
use quantum_ipc::{CountersReader, PeerStatus, Ring, RingSpec};
use quantum_plan_feed::{Feed, Next};
use quantum_redis::legacy::plan_entry_json;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// `tools/crash-test.sh [ROUNDS]`.
#[derive(Parser, Debug)]
#[command(
    about = "Kill -9 the core daemon and the Binance bridge at random moments; check that no plan is ordered twice and nothing is lost.",
    after_help = "Examples:\n  tools/crash-test.sh 10\n  tools/crash-test.sh 8 --hedge --redis-cycles 2\n  quantum-crash-test 100 --seed 7 --out target/crash-test"
)]
struct Args {
    /// Rounds: each feeds a batch of plans and kills something at a random moment.
    #[arg(default_value_t = 10)]
    rounds: u32,
    /// Seed of every random choice (plans, kill moments, victims, crash points).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Plans per round.
    #[arg(long, default_value_t = 40)]
    plans: u32,
    /// The `quantum` binary (default: next to this one).
    #[arg(long)]
    quantum: Option<PathBuf>,
    /// Cycles of the Redis phase (plans XADDed, the Redis bridge paused around a daemon kill);
    /// 0 skips it.
    #[arg(long, default_value_t = 5)]
    redis_cycles: u32,
    /// Output directory: logs, the journal (emptied first).
    #[arg(long, default_value = "target/crash-test")]
    out: PathBuf,
    /// Hedge mode: the simulator's account in hedge mode (`--hedge-mode`), every symbol
    /// configured in hedge mode (two legs, LONG and SHORT; the daemon's configuration file is
    /// `hedge.toml` in the output directory), plans naming the leg they close.
    #[arg(long)]
    hedge: bool,
}

/// Crash points of the daemon and of the bridge (see `quantum_ipc::failpoint`).
const DAEMON_POINTS: [Point; 3] = [
    Point::EventJournaled,
    Point::IntentJournaled,
    Point::IntentPushed,
];
const BRIDGE_POINTS: [Point; 2] = [Point::OrderSending, Point::OrderPlaced];

#[derive(Default)]
struct Tally {
    kills: BTreeMap<&'static str, u32>,
    failpoints: BTreeMap<String, u32>,
    daemon_starts: u32,
    bridge_starts: u32,
    ws_api_starts: u32,
    deliveries: u64,
    accepted_at_once: u64,
    left_in_ring: u64,
    reopens: u32,
    settled_checks: u32,
    /// Rounds after which the core came to rest with ledger = simulator on every leg, and the
    /// longest wait for that rest.
    rounds_at_rest: u32,
    longest_rest: Duration,
    /// Rounds where a leg's ledger differed from the simulator at rest: what differed.
    round_mismatches: Vec<String>,
    /// The changed-state-directory round: (refused, what the daemon said).
    changed_dir: Option<(bool, String)>,
}

struct World {
    args: Args,
    quantum: PathBuf,
    instance: String,
    out: PathBuf,
    journal: PathBuf,
    sim: Sim,
    daemon: Option<Proc>,
    bridge: Option<Proc>,
    rng: StdRng,
    feed: Feed,
    /// Every plan fed: id → (its leg's label, decision, its JSON line).
    fed: BTreeMap<u64, (String, Decision, String)>,
    /// The starting book's legs ([`sim::legs`]), in the daemon's symbol id order.
    legs: Vec<Leg>,
    /// Their labels (`BTCUSDT`, or `BTCUSDT:LONG` in hedge mode): the daemon's gauges are
    /// `ledger.<label>`, `in_flight.<label>`.
    symbols: Vec<String>,
    /// The daemon's configuration file (`--config`), in hedge mode.
    config: Option<PathBuf>,
    /// Plans of a hedge leg fed without `position_side` (never to be ordered).
    sideless: BTreeSet<u64>,
    tally: Tally,
    batch: u32,
}

impl Drop for World {
    /// Whatever way the test ends, no process of it is left running and its instance's
    /// shared-memory segments are removed (a real daemon keeps its ingress rings for its next
    /// start; this instance has none). The output directory, journal included, stays.
    fn drop(&mut self) {
        if let Some(mut b) = self.bridge.take() {
            b.kill();
        }
        if let Some(mut d) = self.daemon.take() {
            d.kill();
        }
        self.sim.stop();
        for seg in quantum_ipc::list_segments(Some(&self.instance)).unwrap_or_default() {
            let _ = quantum_ipc::remove_segment(&seg.os_id);
        }
    }
}

impl World {
    fn start(args: Args) -> Result<World> {
        let quantum = procs::quantum_binary(args.quantum.as_deref())?;
        let out = args.out.clone();
        procs::fresh_dir(&out)?;
        let journal = out.join("journal");
        let instance = format!("crash{}", std::process::id());
        // The exchange, with faults on; never killed.
        let sim = Sim::start_mode(&quantum, &out, args.hedge)?;
        let rng = StdRng::seed_from_u64(args.seed);
        let legs = sim::legs(args.hedge);
        let symbols: Vec<String> = legs.iter().map(Leg::label).collect();
        let config = if args.hedge {
            let path = out.join("hedge.toml");
            std::fs::write(&path, sim::hedge_config())?;
            Some(path)
        } else {
            None
        };
        // Plans go to legs: symbol id i is the leg symbols[i].
        let feed = Feed::new(u64::MAX, args.seed, legs.len() as u16);
        let mut w = World {
            quantum,
            instance,
            journal,
            sim,
            daemon: None,
            bridge: None,
            rng,
            feed,
            fed: BTreeMap::new(),
            legs,
            symbols,
            config,
            sideless: BTreeSet::new(),
            tally: Tally::default(),
            batch: 0,
            out,
            args,
        };
        w.start_daemon(false)?;
        w.check_directory()?;
        // The entry side's ledger sync, once, before anything trades.
        let lines: String = w
            .legs
            .iter()
            .map(|l| set_ledger_line(&l.label(), l.start))
            .collect();
        let (sent, accepted) = w.inject(&lines)?;
        if accepted != sent {
            bail!("the first ledger sync was not accepted ({accepted} of {sent})");
        }
        w.start_bridge(false)?;
        Ok(w)
    }

    fn start_daemon(&mut self, arm: bool) -> Result<()> {
        let n = self.tally.daemon_starts;
        self.tally.daemon_starts += 1;
        let mut cmd = Command::new(&self.quantum);
        cmd.args(["run", "--instance", &self.instance, "--quiet"])
            .args(self.config_args())
            .env("QUANTUM_JOURNAL_DIR", &self.journal)
            .env("QUANTUM_JOURNAL_KEEP_SEGMENTS", "1000")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file(&self.out, &format!("daemon-{n:03}.log"))?);
        let failpoint = if arm && self.rng.gen_bool(0.35) {
            let p = DAEMON_POINTS[self.rng.gen_range(0..DAEMON_POINTS.len())];
            let at = if p == Point::EventJournaled {
                self.rng.gen_range(1..=300)
            } else {
                self.rng.gen_range(1..=6)
            };
            Some(p.kill_at(at))
        } else {
            None
        };
        if let Some(f) = &failpoint {
            cmd.env(failpoint::ENV, f);
        }
        let child = cmd.spawn().context("cannot start quantum run")?;
        self.daemon = Some(Proc { child, failpoint });
        // Its counters and results ring mark the end of recovery.
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            if procs::daemon_ready(&self.instance) {
                return Ok(());
            }
            if self.daemon.as_mut().is_some_and(Proc::exited) {
                // A crash point may fire during recovery itself: that is a death like another.
                return Ok(());
            }
            if Instant::now() > end {
                bail!("quantum run did not start within 60 s (see daemon-{n:03}.log)");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `--config FILE` when the daemon has a configuration file (hedge mode), else nothing.
    fn config_args(&self) -> Vec<&std::ffi::OsStr> {
        match &self.config {
            Some(p) => vec!["--config".as_ref(), p.as_os_str()],
            None => Vec::new(),
        }
    }

    /// The daemon's symbol directory must be the book's legs, in order: symbol id i of a plan
    /// is leg i here.
    fn check_directory(&self) -> Result<()> {
        let c = CountersReader::open(&self.instance)
            .map_err(|e| anyhow!("the daemon's counters: {e}"))?;
        let mut dir = c.symbols();
        dir.sort();
        let labels: Vec<String> = dir.into_iter().map(|(_, l)| l).collect();
        if labels != self.symbols {
            bail!(
                "the daemon's symbols are {labels:?}, the crash test's book is {:?}",
                self.symbols
            );
        }
        Ok(())
    }

    /// The leg `p` goes to (its symbol id is a leg's index): names that leg's side on `p` and
    /// returns the exchange symbol; a hedge leg's plan whose id is a multiple of 16 names no
    /// side (it must be denied `position_side_required`, never ordered).
    fn leg_of(&mut self, p: &mut Plan) -> String {
        let label = self.symbols[usize::from(p.symbol.0)].clone();
        let (symbol, side) = PositionSide::split_label(&label);
        if side.is_hedge() {
            if p.id.0 % 16 == 0 {
                self.sideless.insert(p.id.0);
            } else {
                p.position_side = Some(side);
            }
        }
        symbol.to_owned()
    }

    fn start_bridge(&mut self, arm: bool) -> Result<()> {
        let n = self.tally.bridge_starts;
        self.tally.bridge_starts += 1;
        let ws = n % 2 == 1;
        let mut cmd = Command::new(&self.quantum);
        cmd.args([
            "bridge",
            "binance",
            "--instance",
            &self.instance,
            "--rest-url",
            &self.sim.rest,
            "--recv-window-ms",
            "2000",
            "--poll-ms",
            "1000",
        ]);
        if ws {
            cmd.arg("--ws-api");
            self.tally.ws_api_starts += 1;
        }
        cmd.env("BINANCE_API_KEY", quantum_binance_sim::TEST_API_KEY)
            .env("BINANCE_API_SECRET", quantum_binance_sim::TEST_API_SECRET)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file(&self.out, &format!("bridge-{n:03}.log"))?);
        let failpoint = if arm && self.rng.gen_bool(0.35) {
            let p = BRIDGE_POINTS[self.rng.gen_range(0..BRIDGE_POINTS.len())];
            let at = self.rng.gen_range(1..=6);
            Some(p.kill_at(at))
        } else {
            None
        };
        if let Some(f) = &failpoint {
            cmd.env(failpoint::ENV, f);
        }
        let child = cmd.spawn().context("cannot start quantum bridge binance")?;
        self.bridge = Some(Proc { child, failpoint });
        Ok(())
    }

    /// Restarts whatever died (a crash point fired) or was killed.
    fn ensure_running(&mut self, arm: bool) -> Result<()> {
        for which in ["daemon", "bridge"] {
            let slot = if which == "daemon" {
                &mut self.daemon
            } else {
                &mut self.bridge
            };
            if let Some(p) = slot {
                if p.exited() {
                    if let Some(f) = p.failpoint.take() {
                        let name = f.split(':').next().unwrap_or("").to_string();
                        *self.tally.failpoints.entry(name).or_default() += 1;
                    }
                    *slot = None;
                }
            }
        }
        if self.daemon.is_none() {
            self.start_daemon(arm)?;
        }
        if self.bridge.is_none() {
            self.start_bridge(arm)?;
        }
        Ok(())
    }

    /// `quantum ctl inject --file` with `lines`; returns (sent, durably accepted).
    fn inject(&mut self, lines: &str) -> Result<(u64, u64)> {
        self.batch += 1;
        let path = self.out.join(format!("batch-{:04}.jsonl", self.batch));
        std::fs::write(&path, lines)?;
        let child = self.spawn_inject(&path)?;
        finish_inject(child)
    }

    fn spawn_inject(&self, path: &Path) -> Result<Child> {
        Command::new(&self.quantum)
            .args([
                "ctl",
                "inject",
                "--instance",
                &self.instance,
                "--ring",
                "plans",
            ])
            .arg("--file")
            .arg(path)
            .args(["--wait-secs", "10"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start quantum ctl inject")
    }

    /// The next `n` plans of the seeds' mix, as inject lines.
    fn plans(&mut self, n: u32) -> String {
        let mut lines = String::new();
        let mut made = 0;
        while made < n {
            let Some(Next::Plan(p)) = self.feed.next(&|_| false) else {
                continue;
            };
            made += 1;
            let mut p = p;
            let symbol = self.leg_of(&mut p);
            let line = format!("{}\n", plan_entry_json(&p, &symbol));
            let label = self.symbols[usize::from(p.symbol.0)].clone();
            self.fed
                .entry(p.id.0)
                .or_insert((label, p.decision, line.clone()));
            lines.push_str(&line);
        }
        self.tally.deliveries += u64::from(n);
        lines
    }

    /// The simulator's position per leg.
    fn sim_positions(&self) -> Result<BTreeMap<String, Qty>> {
        self.sim.positions()
    }

    fn sim_orders(&self) -> Result<Vec<Value>> {
        self.sim.orders()
    }

    /// Per symbol: (ledger, in flight) from the daemon's gauges; `None` while it is down.
    fn book(&self) -> Option<(Book, u64)> {
        book::book(&self.instance, &self.symbols)
    }

    /// Whether `symbol` is at rest (see [`book::at_rest`]).
    fn at_rest(&self, symbol: &str) -> Result<bool> {
        book::at_rest(&self.instance, &self.symbols, symbol, &self.sim)
    }

    /// The entry side: a leg's position closed down to under a quarter is opened again, only
    /// when the core is at rest on it and its ledger equals the simulator's position (a leg
    /// that starts flat stays flat).
    fn reopen(&mut self) -> Result<()> {
        let sim = self.sim_positions()?;
        for leg in self.legs.clone() {
            let full = q(leg.start)?;
            let s = leg.label();
            let now = sim.get(&s).copied().unwrap_or(Qty::ZERO);
            if full.is_zero() || now.units().abs() * 4 >= full.units().abs() || !self.at_rest(&s)? {
                continue;
            }
            self.tally.settled_checks += 1;
            let mut body = json!({"symbol": leg.symbol, "positionAmt": leg.start});
            if leg.side.is_hedge() {
                body["positionSide"] = json!(leg.side.as_str());
            }
            http::post(&self.sim.rest, "/sim/position", &body)?;
            let (sent, accepted) = self.inject(&set_ledger_line(&s, leg.start))?;
            if accepted != sent {
                bail!("the entry side's ledger sync of {s} was not accepted");
            }
            self.tally.reopens += 1;
        }
        Ok(())
    }

    /// One round: the batch goes out in chunks at random moments over about 1.5 s (orders are
    /// in flight most of that time), and a kill lands at another random moment: before, among
    /// or after the chunks; sometimes a chunk is sent while the daemon is down, and waits in
    /// the ring for the restarted daemon.
    fn round(&mut self, round: u32) -> Result<()> {
        if round == 2 {
            self.changed_state_dir()?;
        }
        self.ensure_running(true)?;
        self.reopen()?;
        // Let the restarted core finish reconciling (up to a few seconds), so that this
        // round's plans become orders and the kill finds some in flight.
        let end = Instant::now() + Duration::from_secs(8);
        while Instant::now() < end && self.book().is_none_or(|(_, r)| r > 0) {
            self.ensure_running(true)?;
            std::thread::sleep(Duration::from_millis(50));
        }
        let chunks = self.rng.gen_range(1..=4);
        let per = self.args.plans.div_ceil(chunks);
        let mut at: Vec<u64> = (0..chunks).map(|_| self.rng.gen_range(0..1500)).collect();
        at.sort_unstable();
        let kill_at = self.rng.gen_range(0..1600);
        let victim = match self.rng.gen_range(0..10) {
            0..=3 => "daemon",
            4..=7 => "bridge",
            _ => "both",
        };
        let down_for = Duration::from_millis(self.rng.gen_range(0..700));
        let t0 = Instant::now();
        let mut killed: Option<Instant> = None;
        let (mut sent, mut accepted) = (0, 0);
        let mut chunk = 0;
        while chunk < at.len() || killed.is_none() {
            let now = t0.elapsed().as_millis() as u64;
            if killed.is_none() && now >= kill_at {
                if victim != "bridge" {
                    if let Some(mut d) = self.daemon.take() {
                        d.kill();
                    }
                }
                if victim != "daemon" {
                    if let Some(mut b) = self.bridge.take() {
                        b.kill();
                    }
                }
                *self.tally.kills.entry(victim).or_default() += 1;
                killed = Some(Instant::now());
                continue;
            }
            if killed.is_some_and(|k| k.elapsed() >= down_for) {
                self.ensure_running(true)?;
            }
            if chunk < at.len() && now >= at[chunk] {
                let lines = self.plans(per);
                self.batch += 1;
                let path = self.out.join(format!("batch-{:04}.jsonl", self.batch));
                std::fs::write(&path, &lines)?;
                // While the daemon is down an inject gives up waiting at once: what it sent
                // stays in the ring for the next daemon.
                let (s, a) = finish_inject(self.spawn_inject(&path)?)?;
                sent += s;
                accepted += a;
                chunk += 1;
                continue;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Some(k) = killed {
            if let Some(rest) = down_for.checked_sub(k.elapsed()) {
                std::thread::sleep(rest);
            }
        }
        self.ensure_running(true)?;
        self.tally.accepted_at_once += accepted;
        self.tally.left_in_ring += sent - accepted;
        eprintln!(
            "round {round}: killed {victim} at {kill_at} ms, down {} ms; {chunks} chunk(s), {sent} plans: {accepted} accepted while inject waited, {} left in the ring for the next daemon",
            down_for.as_millis(),
            sent - accepted
        );
        self.rest_after_round(round)
    }

    /// The check after every round: the core comes to rest (restarting whatever died) and
    /// then its ledger equals the simulator's position on every leg, nothing in flight.
    fn rest_after_round(&mut self, round: u32) -> Result<()> {
        let t = Instant::now();
        let book = self
            .settle(120)
            .with_context(|| format!("after round {round}"))?;
        let waited = t.elapsed();
        let sim = self.sim_positions()?;
        let wrong: Vec<String> = book
            .iter()
            .filter_map(|(s, (ledger, in_flight))| {
                let pos = sim.get(s).copied().unwrap_or(Qty::ZERO);
                // A hedge leg never crosses zero: its orders close it, never more.
                let crossed = match PositionSide::split_label(s).1 {
                    PositionSide::Long => pos.units() < 0,
                    PositionSide::Short => pos.units() > 0,
                    PositionSide::Both => false,
                };
                (*ledger != pos || !in_flight.is_zero() || crossed).then(|| {
                    format!("{s}: ledger {ledger}, simulator {pos}, in flight {in_flight}")
                })
            })
            .collect();
        self.tally.longest_rest = self.tally.longest_rest.max(waited);
        let legs: Vec<String> = book
            .iter()
            .map(|(s, (ledger, _))| format!("{s} {ledger}"))
            .collect();
        eprintln!(
            "round {round}: at rest after {} ms; ledger = simulator on every leg: {} ({})",
            waited.as_millis(),
            if wrong.is_empty() { "yes" } else { "NO" },
            legs.join(", ")
        );
        if wrong.is_empty() {
            self.tally.rounds_at_rest += 1;
        } else {
            self.tally
                .round_mismatches
                .push(format!("round {round}: {}", wrong.join("; ")));
        }
        Ok(())
    }

    /// A daemon started with another journal directory (another `$HOME`, a mistyped path)
    /// while the instance's rings belong to this one: it must refuse, name the journal it
    /// expected, and create nothing; then the daemon starts on its own journal again.
    fn changed_state_dir(&mut self) -> Result<()> {
        self.ensure_running(false)?;
        self.wait_bridge_attached(30)?;
        if let Some(mut d) = self.daemon.take() {
            d.kill();
        }
        *self.tally.kills.entry("daemon").or_default() += 1;
        let other = self.out.join("another-state-dir");
        let log = self.out.join("daemon-other-dir.log");
        let mut child = Command::new(&self.quantum)
            .args(["run", "--instance", &self.instance, "--quiet"])
            .args(self.config_args())
            .env("QUANTUM_JOURNAL_DIR", &other)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(File::create(&log)?)
            .spawn()
            .context("cannot start quantum run")?;
        let end = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(st) = child.try_wait()? {
                break Some(st);
            }
            if Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        let created = other.join("identity").exists()
            || std::fs::read_dir(&other).is_ok_and(|mut d| d.next().is_some());
        let refused = status.is_some_and(|s| !s.success())
            && said.contains(&format!("{}", self.journal.display()))
            && !created;
        let line = said
            .lines()
            .find(|l| l.contains("belongs to the journal"))
            .unwrap_or("(no refusal)")
            .to_string();
        self.tally.changed_dir = Some((refused, line));
        self.start_daemon(false)
    }

    /// Waits until the Binance bridge is the `exchange` ring's producer: one just restarted
    /// attaches a moment later, and the operator's daemon restart this stands for meets running
    /// bridges (an empty ingress ring nobody produces into is a dead predecessor's leftover,
    /// which a new daemon may remove).
    fn wait_bridge_attached(&self, secs: u64) -> Result<()> {
        let spec = RingSpec::new(&self.instance, contract::EXCHANGE.name, 0);
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let attached = Ring::open(&spec)
                .is_ok_and(|r| matches!(r.producer_status(u64::MAX), PeerStatus::Alive { .. }));
            if attached {
                return Ok(());
            }
            if Instant::now() > end {
                bail!("the Binance bridge did not attach to the exchange ring within {secs} s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until every symbol is at rest (restarting whatever dies); the last book.
    fn settle(&mut self, secs: u64) -> Result<Book> {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            self.ensure_running(false)?;
            let mut all = true;
            for s in self.symbols.clone() {
                all &= self.at_rest(&s)?;
            }
            if all {
                if let Some((book, _)) = self.book() {
                    return Ok(book);
                }
            }
            if Instant::now() > end {
                bail!(
                    "the core did not come to rest within {secs} s: book {:?}, simulator {:?}",
                    self.book(),
                    self.sim_positions()?
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn finish(mut self, started: Instant, redis: Option<redis_phase::RedisReport>) -> Result<bool> {
        let mut ok = true;
        let mut fail = |what: String| {
            println!("FAIL: {what}");
            ok = false;
        };
        // The final phase runs without armed crash points: a process still armed is killed
        // (one more kill) and started again unarmed.
        if self.daemon.as_ref().is_some_and(|p| p.failpoint.is_some()) {
            if let Some(mut d) = self.daemon.take() {
                d.kill();
            }
            *self.tally.kills.entry("daemon").or_default() += 1;
        }
        if self.bridge.as_ref().is_some_and(|p| p.failpoint.is_some()) {
            if let Some(mut b) = self.bridge.take() {
                b.kill();
            }
            *self.tally.kills.entry("bridge").or_default() += 1;
        }
        self.settle(180)?;
        let before = self.sim_orders()?.len();
        // Every plan once more.
        let all: String = self.fed.values().map(|(_, _, l)| l.clone()).collect();
        let (sent, accepted) = self.inject(&all)?;
        if accepted != sent {
            fail(format!(
                "the final re-delivery: {accepted} of {sent} accepted"
            ));
        }
        let book = self.settle(180)?;
        let orders = self.sim_orders()?;
        let after = orders.len();
        let sim = self.sim_positions()?;
        // Results in the journal.
        let mut results: BTreeMap<u64, u32> = BTreeMap::new();
        let mut outcomes: BTreeMap<String, u32> = BTreeMap::new();
        // The first answer of each plan fed without its position_side.
        let mut sideless_answers: BTreeMap<u64, Outcome> = BTreeMap::new();
        let mut events = 0u64;
        let reader = Reader::open(&self.journal).map_err(|e| anyhow!("{e}"))?;
        let first = reader.first_seq().unwrap_or(1);
        reader
            .read_from(first, |_, rec| {
                events += 1;
                if let Ok(Event::PlanResult(r)) = Message::decode(rec, &Limits::default())
                    .map_err(|e| e.to_string())
                    .and_then(|m| Event::from_message(&m))
                {
                    if !r.outcome.is_duplicate() {
                        *results.entry(r.plan.0).or_default() += 1;
                        let k = match r.outcome {
                            Outcome::Executed { .. } => "executed".to_string(),
                            Outcome::Blocked(b) => b.to_string(),
                            Outcome::NonExecute => "non_execute".to_string(),
                            Outcome::Duplicate { .. } => unreachable!(),
                        };
                        if self.sideless.contains(&r.plan.0) {
                            sideless_answers.entry(r.plan.0).or_insert(r.outcome);
                        }
                        *outcomes.entry(k).or_default() += 1;
                    }
                }
                Ok(())
            })
            .map_err(|e| anyhow!("{e}"))?;
        let verify = self.verify_journal()?;
        let replay = self.replay_journal()?;
        let lost = self.lose_the_journal()?;
        if let Some(mut b) = self.bridge.take() {
            b.term();
        }
        if let Some(mut d) = self.daemon.take() {
            d.term();
        }
        self.sim.stop();

        // Client ids on the exchange.
        let executes: BTreeSet<u64> = self
            .fed
            .iter()
            .filter(|(_, (_, d, _))| *d == Decision::Execute)
            .map(|(id, _)| *id)
            .collect();
        let OrderAudit { twice, strangers } = OrderAudit::of(&orders, &executes);
        // Every order, the lost journal's included, on its plan's leg.
        let off_leg = off_leg(&lost.orders, &self.fed);
        let sideless_exec: Vec<u64> = self
            .sideless
            .iter()
            .copied()
            .filter(|id| executes.contains(id))
            .collect();
        let sideless_ordered: Vec<String> = lost
            .orders
            .iter()
            .filter_map(|o| o["clientOrderId"].as_str())
            .filter(|c| {
                quantum_core::ClientOrderId::plan(c).is_some_and(|p| self.sideless.contains(&p.0))
            })
            .map(str::to_owned)
            .collect();
        // Their EXECUTE ones: denied position_side_required, or by a check the core makes
        // before that one (the account's mode not known yet after a start, reconciling); never
        // anything else.
        let mut sideless_denied: BTreeMap<String, u32> = BTreeMap::new();
        let mut sideless_other: Vec<(String, String)> = Vec::new();
        for id in &sideless_exec {
            match sideless_answers.get(id) {
                Some(Outcome::Blocked(
                    b @ Block::P33Denied(
                        P33Reason::PositionSideRequired
                        | P33Reason::PositionModeUnknown
                        | P33Reason::Reconciling,
                        _,
                    ),
                )) => {
                    *sideless_denied.entry(b.to_string()).or_default() += 1;
                }
                other => sideless_other.push((
                    format!("{id:016x}"),
                    other.map_or("no answer".to_owned(), |o| format!("{o:?}")),
                )),
            }
        }

        let wrong: Vec<_> = executes
            .iter()
            .filter(|id| results.get(id) != Some(&1))
            .map(|id| (format!("{id:016x}"), results.get(id).copied().unwrap_or(0)))
            .collect();
        let unanswered = self
            .fed
            .keys()
            .filter(|id| !results.contains_key(id))
            .count();

        let verify_text = String::from_utf8_lossy(&verify.stdout).to_string();

        let t = &self.tally;
        let secs = started.elapsed().as_secs();
        println!(
            "crash-test: {} rounds in {secs} s (seed {}, {} plans per round), output in {}",
            self.args.rounds,
            self.args.seed,
            self.args.plans,
            self.out.display()
        );
        println!(
            "  kills: {}; crash points fired: {}",
            join(&t.kills),
            if t.failpoints.is_empty() {
                "none".to_string()
            } else {
                join(&t.failpoints)
            }
        );
        println!(
            "  starts: daemon {}, bridge {} ({} with the WebSocket API); entry side re-opened {} position(s)",
            t.daemon_starts, t.bridge_starts, t.ws_api_starts, t.reopens
        );
        println!(
            "  plans: {} deliveries of {} ids ({} EXECUTE); {} accepted while inject waited, {} taken over from the rings by a restarted daemon; final re-delivery of {sent}: {accepted} accepted",
            t.deliveries,
            self.fed.len(),
            executes.len(),
            t.accepted_at_once,
            t.left_in_ring
        );
        println!("  results (first of each plan): {}", join(&outcomes));
        println!(
            "  simulator: {after} orders, {} client id(s) used twice, {} not from an EXECUTE plan fed; the final re-delivery added {}",
            twice.len(),
            strangers.len(),
            after - before
        );
        if !twice.is_empty() {
            fail(format!("client ids used twice: {twice:?}"));
        }
        if !strangers.is_empty() {
            fail(format!("orders of no EXECUTE plan: {strangers:?}"));
        }
        if after != before {
            fail(format!(
                "the final re-delivery created {} order(s)",
                after - before
            ));
        }
        println!(
            "  every order on its plan's leg ({}): {} of {}",
            if self.args.hedge {
                "positionSide LONG with SELL or SHORT with BUY, no reduceOnly"
            } else {
                "positionSide BOTH, reduceOnly"
            },
            lost.orders.len() - off_leg.len(),
            lost.orders.len()
        );
        if !off_leg.is_empty() {
            fail(format!(
                "orders not on their plan's leg: {:?}",
                &off_leg[..off_leg.len().min(20)]
            ));
        }
        if self.args.hedge {
            println!(
                "  plans of a hedge leg without position_side: {} ({} EXECUTE): {} ordered; the EXECUTE ones denied: {}",
                self.sideless.len(),
                sideless_exec.len(),
                sideless_ordered.len(),
                if sideless_denied.is_empty() {
                    "none".to_owned()
                } else {
                    join(&sideless_denied)
                }
            );
            if !sideless_ordered.is_empty() {
                fail(format!(
                    "plans without position_side were ordered: {sideless_ordered:?}"
                ));
            }
            if !sideless_other.is_empty() {
                fail(format!(
                    "plans without position_side answered otherwise (id, answer): {sideless_other:?}"
                ));
            }
        }
        println!(
            "  after every round: at rest, ledger = simulator on every leg: {} of {} rounds (longest wait for rest {} ms)",
            t.rounds_at_rest,
            self.args.rounds,
            t.longest_rest.as_millis()
        );
        if t.rounds_at_rest != self.args.rounds || !t.round_mismatches.is_empty() {
            fail(format!(
                "ledger != simulator after a round: {:?}",
                t.round_mismatches
            ));
        }
        println!(
            "  every EXECUTE plan has exactly one final result: {} ({} of {}); plans with no result at all: {unanswered}",
            if wrong.is_empty() { "yes" } else { "NO" },
            executes.len() - wrong.len(),
            executes.len()
        );
        if !wrong.is_empty() {
            fail(format!(
                "EXECUTE plans without exactly one result (id, results): {:?}",
                &wrong[..wrong.len().min(20)]
            ));
        }
        if unanswered > 0 {
            fail(format!("{unanswered} plan(s) fed have no result"));
        }
        for (s, (ledger, in_flight)) in &book {
            let pos = sim.get(s).copied().unwrap_or(Qty::ZERO);
            let good = *ledger == pos && in_flight.is_zero();
            println!(
                "  {s}: ledger {ledger} simulator {pos} in flight {in_flight}: {}",
                if good { "ok" } else { "MISMATCH" }
            );
            if !good {
                fail(format!(
                    "{s}: ledger {ledger}, simulator {pos}, in flight {in_flight}"
                ));
            }
        }
        let last = verify_text.lines().last().unwrap_or("");
        println!(
            "  journal ({events} events): `quantum ctl journal verify`: {}",
            if verify.status.success() {
                last
            } else {
                "FAILED"
            }
        );
        if !verify.status.success() {
            fail(format!("journal verify failed:\n{verify_text}"));
        }
        // The journal, kills and restarts included, re-run through the engine under the
        // configuration the daemon ran with: every decision comes out the same.
        let replay_text = String::from_utf8_lossy(&replay.stdout).to_string();
        println!(
            "  journal replay under the daemon's configuration (`quantum replay --check`): {}",
            replay_text.lines().next().unwrap_or("no output")
        );
        if !replay.status.success() {
            fail(format!(
                "the replay of the journal changed decisions:\n{replay_text}{}",
                String::from_utf8_lossy(&replay.stderr)
            ));
        }
        match &t.changed_dir {
            Some((refused, said)) => {
                println!(
                    "  another state directory: the daemon {} ({})",
                    if *refused {
                        "refused the rings and created nothing"
                    } else {
                        "DID NOT refuse"
                    },
                    said.trim()
                );
                if !refused {
                    fail("a daemon on another journal directory did not refuse the rings".into());
                }
            }
            None => println!("  another state directory: not tried (fewer than 2 rounds)"),
        }
        if let Some(r) = &redis {
            println!(
                "  redis: {} plans XADDed once each, the Redis bridge paused (SIGSTOP 1 s) before each of {} daemon kills: {} result entries, {} plan(s) without exactly one, {} left pending",
                r.plans,
                r.pauses,
                r.entries,
                r.not_once.len(),
                r.pending
            );
            if !r.not_once.is_empty() || r.pending != 0 {
                fail(format!(
                    "result entries per plan not one (id, entries): {:?}; pending {}",
                    &r.not_once[..r.not_once.len().min(20)],
                    r.pending
                ));
            }
        }
        println!(
            "  lost journal: every process killed, the journal deleted, the daemon started empty ({}), the ledger synced by the operator, {} plan ids re-delivered: {} answered duplicate from the exchange's history of {} orders; {} order(s) for a plan the exchange had one of, {} client id(s) twice; {} first order(s) of plans only ever blocked before",
            lost.why,
            lost.redelivered,
            lost.duplicates,
            lost.ordered_before,
            lost.again,
            lost.twice,
            lost.first_orders
        );
        if lost.again != 0 || lost.twice != 0 || !lost.why.starts_with("recovering") {
            fail(format!(
                "after the lost journal: {} order(s) again, {} client id(s) twice ({})",
                lost.again, lost.twice, lost.why
            ));
        }
        println!("{}", if ok { "PASS" } else { "FAIL" });
        Ok(ok)
    }

    /// `quantum ctl journal verify` of the journal.
    fn verify_journal(&self) -> Result<std::process::Output> {
        Ok(Command::new(&self.quantum)
            .args(["ctl", "journal", "verify", "--instance", &self.instance])
            .arg("--dir")
            .arg(&self.journal)
            .output()?)
    }

    /// `quantum replay --check` of the journal under the daemon's configuration (the defaults
    /// with the environment this harness gives the daemon, none of which the engine reads).
    fn replay_journal(&self) -> Result<std::process::Output> {
        Ok(Command::new(&self.quantum)
            .args(["replay", "--check", "--journal"])
            .arg(&self.journal)
            .args(self.config_args())
            .output()?)
    }

    /// The host loses its disk: every process is killed, the journal directory and the
    /// instance's shared memory are gone (a new machine has neither), the daemon starts empty,
    /// the operator syncs the ledger to the exchange, and every plan id is delivered again.
    /// Only the exchange remembers which plans were ordered.
    fn lose_the_journal(&mut self) -> Result<Lost> {
        if let Some(mut b) = self.bridge.take() {
            b.kill();
        }
        if let Some(mut d) = self.daemon.take() {
            d.kill();
        }
        *self.tally.kills.entry("both").or_default() += 1;
        std::fs::remove_dir_all(&self.journal)
            .with_context(|| format!("cannot delete {}", self.journal.display()))?;
        for seg in quantum_ipc::list_segments(Some(&self.instance)).unwrap_or_default() {
            let _ = quantum_ipc::remove_segment(&seg.os_id);
        }
        self.start_daemon(false)?;
        let why = std::fs::read_to_string(
            self.out
                .join(format!("daemon-{:03}.log", self.tally.daemon_starts - 1)),
        )
        .unwrap_or_default()
        .lines()
        .find(|l| l.contains("recovering from the exchange"))
        .map_or("NO exchange recovery logged", |_| {
            "recovering from the exchange"
        })
        .to_string();
        let sim = self.sim_positions()?;
        let lines: String = self
            .symbols
            .iter()
            .map(|s| {
                let amt = sim.get(s).copied().unwrap_or(Qty::ZERO);
                set_ledger_line(s, &amt.to_string())
            })
            .collect();
        let (sent, accepted) = self.inject(&lines)?;
        if accepted != sent {
            bail!("the operator's ledger sync after the lost journal was not accepted");
        }
        self.start_bridge(false)?;
        // At rest means the history arrived (nothing reconciles): the re-delivered plans then
        // meet a core that trades, and only its memory of the exchange's orders stops them.
        self.settle(180)?;
        let ordered: BTreeSet<String> = self
            .sim_orders()?
            .iter()
            .filter_map(|o| o["clientOrderId"].as_str().map(str::to_owned))
            .collect();
        let before = ordered.len();
        let all: String = self.fed.values().map(|(_, _, l)| l.clone()).collect();
        let (sent, _) = self.inject(&all)?;
        self.settle(180)?;
        let mut duplicates = 0u64;
        let reader = Reader::open(&self.journal).map_err(|e| anyhow!("{e}"))?;
        reader
            .read_from(reader.first_seq().unwrap_or(1), |_, rec| {
                if let Ok(Event::PlanResult(r)) = Message::decode(rec, &Limits::default())
                    .map_err(|e| e.to_string())
                    .and_then(|m| Event::from_message(&m))
                {
                    duplicates += u64::from(r.outcome.is_duplicate());
                }
                Ok(())
            })
            .map_err(|e| anyhow!("{e}"))?;
        let orders = self.sim_orders()?;
        let mut per_cid: BTreeMap<&str, u32> = BTreeMap::new();
        for o in &orders {
            *per_cid
                .entry(o["clientOrderId"].as_str().unwrap_or(""))
                .or_default() += 1;
        }
        let new: Vec<&str> = per_cid
            .keys()
            .copied()
            .filter(|c| !ordered.contains(*c))
            .collect();
        Ok(Lost {
            why,
            duplicates,
            redelivered: sent,
            ordered_before: before,
            first_orders: new.len(),
            again: orders.len() - before - new.len(),
            twice: per_cid.values().filter(|n| **n > 1).count(),
            orders,
        })
    }
}

/// What the lost-journal ending found.
struct Lost {
    why: String,
    duplicates: u64,
    redelivered: u64,
    /// Client ids on the exchange before the re-delivery.
    ordered_before: usize,
    /// Plans never ordered before (blocked, e.g. while reconciling) that were ordered now: a
    /// first order, which the lost journal cannot refuse (it forgot that they were answered).
    first_orders: usize,
    /// Orders for plans the exchange had an order of already: must be 0.
    again: usize,
    twice: usize,
    /// Every order on the simulator at the end.
    orders: Vec<Value>,
}

/// The operator's (or the entry side's) ledger sync of the leg `label`: a hedge leg's names
/// its `position_side`.
fn set_ledger_line(label: &str, amount: &str) -> String {
    let (symbol, side) = PositionSide::split_label(label);
    let mut o = json!({"cmd": "set_ledger", "symbol": symbol, "amount": amount});
    if side.is_hedge() {
        o["position_side"] = json!(side.as_str());
    }
    format!("{o}\n")
}

/// Orders that are not on their plan's leg, or not as an order of that leg must be: a `BOTH`
/// leg's `reduceOnly`, a hedge leg's closing side (`LONG` with `SELL`, `SHORT` with `BUY`)
/// without `reduceOnly`. Orders of no plan fed are the order audit's strangers.
fn off_leg(orders: &[Value], fed: &BTreeMap<u64, (String, Decision, String)>) -> Vec<String> {
    orders
        .iter()
        .filter_map(|o| {
            let cid = o["clientOrderId"].as_str().unwrap_or("");
            let (label, _, _) = fed.get(&quantum_core::ClientOrderId::plan(cid)?.0)?;
            let (symbol, side) = PositionSide::split_label(label);
            let reduce_only = o["reduceOnly"].as_bool() == Some(true);
            let good = o["symbol"].as_str() == Some(symbol)
                && o["positionSide"].as_str() == Some(side.as_str())
                && match side.closing_side() {
                    None => reduce_only,
                    Some(close) => !reduce_only && o["side"].as_str() == Some(close.as_str()),
                };
            (!good).then(|| {
                format!(
                    "{cid} for {label}: {} {} positionSide {} reduceOnly {}",
                    o["symbol"], o["side"], o["positionSide"], o["reduceOnly"]
                )
            })
        })
        .collect()
}

/// Waits for an inject; (sent, durably accepted) from its report.
fn finish_inject(child: Child) -> Result<(u64, u64)> {
    let out = child.wait_with_output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    for line in err.lines() {
        if let Some(rest) = line.strip_prefix("inject: the daemon durably accepted ") {
            let mut w = rest.split_whitespace();
            let accepted: u64 = w.next().unwrap_or("0").parse()?;
            let _of = w.next();
            let sent: u64 = w.next().unwrap_or("0").parse()?;
            return Ok((sent, accepted));
        }
    }
    bail!("ctl inject said nothing about what was accepted:\n{err}")
}

fn main() {
    let args = Args::parse();
    let started = Instant::now();
    let rounds = args.rounds;
    let result = (|| -> Result<bool> {
        let mut w = World::start(args)?;
        for r in 1..=rounds {
            w.round(r)?;
        }
        let cycles = w.args.redis_cycles;
        let redis = if cycles > 0 {
            Some(w.redis_phase(cycles, w.args.plans)?)
        } else {
            None
        };
        w.finish(started, redis)
    })();
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "crash-test: {e:#}");
            std::process::exit(1);
        }
    }
}
