//! The failover test: two "hosts" on this machine run the same system (instances `…-a` and
//! `…-b`, each with its own journal, daemon, Binance bridge and Redis bridge) against one
//! redis-server and one simulator with faults on; the Redis bridges hold the lease
//! `quantum:leader:fo`. While the legacy plan stream is fed the seeds' mix (with
//! re-deliveries), each round hits the host that leads: `kill -9` of its daemon, its Binance
//! bridge, its Redis bridge or all three (restarted after a short pause, as systemd would);
//! SIGSTOP of all its processes for longer than the lease's TTL until the other host took
//! over, then SIGCONT (it must step down and send nothing more); a redis-server restart (the
//! data kept by its append-only file; on every other restart the lease key is deleted, as a
//! failover to a replica that missed the last write would lose it); a planned release
//! (`quantum ctl lease … release`).
//!
//! At the end every plan is delivered again, and the test checks: no client id twice on the
//! simulator; no order of a plan not fed; the final re-delivery created no order; every plan
//! has exactly one final result entry (and no second entry of any kind, each with its `epoch`);
//! nothing pending in the plan stream; the leading host's ledger equals the simulator's
//! position; the two hosts never could send at once; every order was accepted within the
//! recvWindow (and clock error) of a moment its host could send; a paused leader stepped down
//! and placed nothing after the takeover; a released lease went to the other host. It prints
//! the takeover times (p50, max) next to the TTL. Exit status 1 when a check fails.

mod host;
mod settings;
mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use quantum_core::{Decision, Plan, Qty};
use quantum_crash_test::book::{self, q, Book};
use quantum_crash_test::http;
use quantum_crash_test::procs::{self, join};
use quantum_crash_test::results;
use quantum_crash_test::sim::{self, OrderAudit, Sim, BOOK};
use quantum_ipc::lease::LeaseRole;
use quantum_local_redis::RedisServer;
use quantum_plan_feed::{Feed, Next};
use quantum_redis::legacy::{plan_entry_fields, position_key, LEDGER_FIELD, PLAN_STREAM};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use host::{Env, Host, Kind, KINDS};
use settings::{lease_key, FAILOVER, SLACK_MS};
use watch::{percentile, wall_ms, Watcher};

/// `tools/failover-test.sh [ROUNDS]`.
#[derive(Parser, Debug)]
#[command(
    about = "Two hosts, one lease: kill, pause and release the leader while plans flow; check that no plan is ordered twice, nothing is lost and two hosts never both send.",
    after_help = "Examples:\n  tools/failover-test.sh 4\n  quantum-failover-test 50 --seed 7 --out target/failover-test\n  quantum-failover-test 4 --no-failover   # both hosts act: the checks must fail"
)]
struct Args {
    /// Rounds: each feeds a batch of plans and hits the leading host once.
    #[arg(default_value_t = 10)]
    rounds: u32,
    /// Seed of every random choice (plans, moments, victims, pauses).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Plans per round.
    #[arg(long, default_value_t = 20)]
    plans: u32,
    /// The `quantum` binary (default: next to this one).
    #[arg(long)]
    quantum: Option<PathBuf>,
    /// Output directory: logs, configuration files, journals (emptied first).
    #[arg(long, default_value = "target/failover-test")]
    out: PathBuf,
    /// Run both hosts without `[failover]` and the lease options: both act, so the checks
    /// must fail (shows that they can).
    #[arg(long)]
    no_failover: bool,
}

/// What a round does to the leading host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Kill(Kind),
    KillAll,
    Pause,
    RedisRestart,
    Release,
}

impl Action {
    fn name(self) -> String {
        match self {
            Action::Kill(k) => format!("kill {}", k.name()),
            Action::KillAll => "kill all".into(),
            Action::Pause => "pause".into(),
            Action::RedisRestart => "redis restart".into(),
            Action::Release => "release".into(),
        }
    }
}

/// The first rounds, in this order (so that a short run has the pause, the kill of everything,
/// the redis-server restart and the release); later rounds pick at random.
const FIRST: [Action; 7] = [
    Action::Pause,
    Action::KillAll,
    Action::RedisRestart,
    Action::Release,
    Action::Kill(Kind::Daemon),
    Action::Kill(Kind::Binance),
    Action::Kill(Kind::Redis),
];

/// A pause round, for the checks at the end.
struct Paused {
    round: u32,
    host: usize,
    stopped_wall: i64,
    /// When the watcher saw the other host lead.
    took_over_wall: Option<i64>,
    resumed_wall: i64,
    /// Until when its orders are looked for.
    watched_until_wall: i64,
    /// ms from SIGCONT until its segment said standby.
    stepped_down_ms: Option<u64>,
    /// `not_leader` in its Binance bridge's log after SIGCONT.
    not_leader_lines: usize,
}

/// What a round did, to which host, when ([`wall_ms`]).
struct Hit {
    action: Action,
    host: usize,
    wall: i64,
}

#[derive(Default)]
struct Tally {
    actions: BTreeMap<String, u32>,
    deliveries: u64,
    redeliveries: u64,
    reopens: u32,
    redis_restarts_key_lost: u32,
    releases_handed_over: Vec<u64>,
}

struct World {
    args: Args,
    env: Env,
    sim: Sim,
    redis: RedisServer,
    conn: Option<redis::Connection>,
    /// While redis-server is down on purpose: nothing is fed.
    redis_down: bool,
    group: String,
    hosts: [Host; 2],
    watcher: Option<Watcher>,
    rng: StdRng,
    feed: Feed,
    /// Every plan fed: id → (symbol, decision, the plan).
    fed: BTreeMap<u64, (String, Decision, Plan)>,
    /// The id of the last plan entry XADDed.
    last_entry: String,
    /// Chunks of plans due: (when, how many).
    due: Vec<(Instant, u32)>,
    symbols: Vec<String>,
    tally: Tally,
    paused: Vec<Paused>,
    hits: Vec<Hit>,
    /// Checks that failed during the rounds.
    failures: Vec<String>,
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(mut w) = self.watcher.take() {
            w.stop();
        }
        for h in &mut self.hosts {
            h.shutdown();
        }
    }
}

impl World {
    fn start(args: Args) -> Result<World> {
        let quantum = procs::quantum_binary(args.quantum.as_deref())?;
        let out = args.out.clone();
        procs::fresh_dir(&out)?;
        let sim = Sim::start(&quantum, &out)?;
        // Its append-only file is synced on every write: a restart keeps everything acknowledged.
        let redis = RedisServer::launch(&quantum_local_redis::binary(), true, &[])
            .map_err(|e| anyhow!("{e} (install redis-server, or set REDIS_SERVER)"))?;
        let env = Env {
            quantum,
            out,
            rest: sim.rest.clone(),
            redis_url: redis.url(),
            failover: !args.no_failover,
        };
        let hosts = [Host::new(0, &env)?, Host::new(1, &env)?];
        let group =
            quantum_redis::config::BridgeConfig::new(&hosts[0].instance, &env.redis_url).group;
        let mut w = World {
            rng: StdRng::seed_from_u64(args.seed),
            feed: Feed::new(u64::MAX, args.seed, BOOK.len() as u16),
            args,
            env,
            sim,
            redis,
            conn: None,
            redis_down: false,
            group,
            hosts,
            watcher: None,
            fed: BTreeMap::new(),
            last_entry: String::new(),
            due: Vec::new(),
            symbols: sim::symbols(),
            tally: Tally::default(),
            paused: Vec::new(),
            hits: Vec::new(),
            failures: Vec::new(),
        };
        // The consumer group exists before any bridge starts, as in production: every plan
        // XADDed from now on is read by whichever host leads.
        let group = w.group.clone();
        w.redis("XGROUP CREATE", |c| {
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(PLAN_STREAM)
                .arg(&group)
                .arg("$")
                .arg("MKSTREAM")
                .query::<()>(c)
        })?;
        // The entry side's ledger, in the position hashes: offered to each daemon at its
        // first start.
        for (s, amt, _) in BOOK {
            w.redis("HSET ledger", |c| {
                redis::cmd("HSET")
                    .arg(position_key(s))
                    .arg(LEDGER_FIELD)
                    .arg(amt)
                    .query::<()>(c)
            })?;
        }
        for h in &mut w.hosts {
            for kind in KINDS {
                h.start(kind, &w.env)?;
            }
        }
        w.watcher = Some(Watcher::start([
            w.hosts[0].instance.clone(),
            w.hosts[1].instance.clone(),
        ]));
        let l = w.wait_leader(60)?;
        // The first ledger sync reached the leading daemon.
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let want: Vec<Qty> = BOOK.iter().map(|b| q(b.1)).collect::<Result<_>>()?;
            let have = book::book(&w.hosts[l].instance, &w.symbols);
            if have
                .as_ref()
                .is_some_and(|(b, _)| w.symbols.iter().zip(&want).all(|(s, q)| b[s].0 == *q))
            {
                break;
            }
            if Instant::now() > end {
                bail!(
                    "the ledger in the position hashes did not reach host {}'s daemon within 30 s: {:?}",
                    w.hosts[l].name,
                    have.map(|b| b.0)
                );
            }
            w.tick()?;
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(w)
    }

    /// Runs `f` on a connection to redis-server, reconnecting and retrying for up to 20 s
    /// (a write whose answer was lost is repeated: for a plan, a re-delivery).
    fn redis<T>(
        &mut self,
        what: &str,
        mut f: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if self.conn.is_none() {
                self.conn = redis::Client::open(self.env.redis_url.as_str())?
                    .get_connection()
                    .ok();
            }
            let err = match &mut self.conn {
                Some(c) => match f(c) {
                    Ok(v) => return Ok(v),
                    Err(e) => {
                        self.conn = None;
                        e.to_string()
                    }
                },
                None => "cannot connect".to_string(),
            };
            if Instant::now() > end {
                bail!("redis {what}: {err}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// XADDs the next `n` plans of the seeds' mix (re-deliveries of old ids included).
    fn feed_plans(&mut self, n: u32) -> Result<()> {
        let mut made = 0;
        while made < n {
            let Some(Next::Plan(p)) = self.feed.next(&|_| false) else {
                continue;
            };
            made += 1;
            let symbol = self.symbols[usize::from(p.symbol.0)].clone();
            if self.fed.contains_key(&p.id.0) {
                self.tally.redeliveries += 1;
            }
            self.fed
                .entry(p.id.0)
                .or_insert((symbol.clone(), p.decision, p));
            self.xadd(&p, &symbol)?;
            self.tally.deliveries += 1;
        }
        Ok(())
    }

    fn xadd(&mut self, p: &Plan, symbol: &str) -> Result<()> {
        let fields = plan_entry_fields(p, symbol);
        self.last_entry = self.redis("XADD", |c| {
            redis::cmd("XADD")
                .arg(PLAN_STREAM)
                .arg("*")
                .arg(&fields)
                .query(c)
        })?;
        Ok(())
    }

    /// Feeds the chunks that are due and restarts what died.
    fn tick(&mut self) -> Result<()> {
        let now = Instant::now();
        while !self.redis_down && self.due.first().is_some_and(|(at, _)| *at <= now) {
            let (_, n) = self.due.remove(0);
            self.feed_plans(n)?;
        }
        for h in &mut self.hosts {
            h.supervise(&self.env)?;
        }
        Ok(())
    }

    /// Ticks for `d`.
    fn pass(&mut self, d: Duration) -> Result<()> {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.tick()?;
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// The host that leads now (without failover: host a, the one every round hits).
    fn leader(&mut self) -> Option<usize> {
        if !self.env.failover {
            return Some(0);
        }
        (0..2).find(|&i| self.hosts[i].leads())
    }

    /// Waits (ticking) until a host leads.
    fn wait_leader(&mut self, secs: u64) -> Result<usize> {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(l) = self.leader() {
                return Ok(l);
            }
            if Instant::now() > end {
                bail!(
                    "no host leads within {secs} s (see {}-redis-*.log, {}-redis-*.log)",
                    self.hosts[0].name,
                    self.hosts[1].name
                );
            }
            self.tick()?;
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether `symbol` is at rest on host `l`. At rest with a ledger that disagrees with the
    /// simulator is a failed check (recorded once), and counts as at rest: nothing will change.
    fn at_rest(&mut self, l: usize, symbol: &str) -> Result<bool> {
        if self.env.failover && !self.hosts[l].acting() {
            // Only the acting leader's book is kept: not at rest, nothing to judge.
            return Ok(false);
        }
        match book::at_rest(&self.hosts[l].instance, &self.symbols, symbol, &self.sim) {
            Ok(r) => Ok(r),
            // It stepped down while it was read: its book is no longer kept.
            Err(_) if self.env.failover && !self.hosts[l].acting() => Ok(false),
            Err(e) => {
                let what = format!("host {}: {e:#}", self.hosts[l].name);
                if !self.failures.contains(&what) {
                    eprintln!("FAIL: {what}");
                    self.failures.push(what);
                }
                Ok(true)
            }
        }
    }

    /// The entry side: a position closed down to under a quarter is opened again on the
    /// simulator and its ledger set in the position hash (the legacy way: whichever host
    /// leads takes it), only when the leading core is at rest on it.
    fn reopen(&mut self) -> Result<()> {
        let l = self.wait_leader(30)?;
        let sim = self.sim.positions()?;
        for (s, amt, _) in BOOK {
            let full = q(amt)?;
            let now = sim.get(s).copied().unwrap_or(Qty::ZERO);
            if now.units().abs() * 4 >= full.units().abs() || !self.at_rest(l, s)? {
                continue;
            }
            if self.failures.iter().any(|f| f.contains(s)) {
                // Its ledger disagreed at rest: the check failed; nothing is re-opened on it.
                continue;
            }
            http::post(
                &self.sim.rest,
                "/sim/position",
                &json!({"symbol": s, "positionAmt": amt}),
            )?;
            self.redis("HSET ledger", |c| {
                redis::cmd("HSET")
                    .arg(position_key(s))
                    .arg(LEDGER_FIELD)
                    .arg(amt)
                    .query::<()>(c)
            })?;
            let end = Instant::now() + Duration::from_secs(15);
            while book::book(&self.hosts[l].instance, &self.symbols)
                .is_none_or(|(b, _)| b[s].0 != full)
            {
                if Instant::now() > end {
                    bail!(
                        "the entry side's ledger sync of {s} (HSET {} {LEDGER_FIELD} {amt}) did not reach host {}'s daemon within 15 s",
                        position_key(s),
                        self.hosts[l].name
                    );
                }
                self.tick()?;
                std::thread::sleep(Duration::from_millis(50));
            }
            self.tally.reopens += 1;
        }
        Ok(())
    }

    fn pick(&mut self, round: u32) -> Action {
        match FIRST.get(round as usize - 1) {
            Some(a) => *a,
            None => FIRST[self.rng.gen_range(0..FIRST.len())],
        }
    }

    /// One round: the batch goes out in chunks at random moments over 1.5 s, and the action
    /// lands at another random moment among them.
    fn round(&mut self, round: u32) -> Result<()> {
        self.tick()?;
        self.reopen()?;
        let mut l = self.wait_leader(30)?;
        // Let the leader finish reconciling (up to a few seconds: a new lead waits for the
        // exchange's history and the shared ledger), so that this round's plans become orders
        // and the action finds some in flight; plans that arrive while it reconciles are denied
        // `reconciling` and order nothing.
        let end = Instant::now() + Duration::from_secs(8);
        while Instant::now() < end
            && book::book(&self.hosts[l].instance, &self.symbols).is_none_or(|(_, r)| r > 0)
        {
            self.tick()?;
            std::thread::sleep(Duration::from_millis(50));
            l = self.wait_leader(30)?;
        }
        let action = self.pick(round);
        *self.tally.actions.entry(action.name()).or_default() += 1;
        let chunks = self.rng.gen_range(1..=4);
        let per = self.args.plans.div_ceil(chunks);
        let t0 = Instant::now();
        for _ in 0..chunks {
            let at = t0 + Duration::from_millis(self.rng.gen_range(0..1500));
            self.due.push((at, per));
        }
        self.due.sort_by_key(|d| d.0);
        let act_at = t0 + Duration::from_millis(self.rng.gen_range(0..1600));
        while Instant::now() < act_at {
            self.tick()?;
            std::thread::sleep(Duration::from_millis(5));
        }
        let said = self.act(round, action, l)?;
        while !self.due.is_empty() {
            self.tick()?;
            std::thread::sleep(Duration::from_millis(5));
        }
        // Everything is back before the next round.
        let end = Instant::now() + Duration::from_secs(5);
        while !self.hosts.iter().all(Host::complete) && Instant::now() < end {
            self.tick()?;
            std::thread::sleep(Duration::from_millis(10));
        }
        eprintln!(
            "round {round}: {} on host {} ({}); {chunks} chunk(s) of {per} plans",
            action.name(),
            self.hosts[l].name,
            said
        );
        Ok(())
    }

    /// Does `action` to host `l` (the leader); what happened, in words.
    fn act(&mut self, round: u32, action: Action, l: usize) -> Result<String> {
        let other = 1 - l;
        let hold = Duration::from_millis(self.rng.gen_range(0..700));
        self.hits.push(Hit {
            action,
            host: l,
            wall: wall_ms(),
        });
        match action {
            Action::Kill(kind) => {
                self.hosts[l].kill(kind, hold);
                Ok(format!("down {} ms", hold.as_millis()))
            }
            Action::KillAll => {
                for kind in KINDS {
                    self.hosts[l].kill(kind, hold);
                }
                Ok(format!("down {} ms", hold.as_millis()))
            }
            Action::Pause => self.pause(round, l, other),
            Action::RedisRestart => {
                self.redis_down = true;
                self.conn = None;
                self.redis.kill();
                self.pass(hold)?;
                self.redis.restart();
                self.redis_down = false;
                let lost = self.rng.gen_bool(0.5);
                if lost {
                    self.tally.redis_restarts_key_lost += 1;
                    let key = lease_key();
                    self.redis("DEL lease", |c| redis::cmd("DEL").arg(&key).query::<()>(c))?;
                }
                let l2 = self.wait_leader(30)?;
                Ok(format!(
                    "down {} ms, data kept{}; host {} leads",
                    hold.as_millis(),
                    if lost { ", the lease key deleted" } else { "" },
                    self.hosts[l2].name
                ))
            }
            Action::Release => {
                let log = self.env.out.join(format!("release-{round:03}.log"));
                let out = Command::new(&self.env.quantum)
                    .args([
                        "ctl",
                        "lease",
                        "--instance",
                        &self.hosts[l].instance,
                        "release",
                    ])
                    .output()
                    .context("cannot run quantum ctl lease")?;
                std::fs::write(
                    &log,
                    [out.stdout.as_slice(), out.stderr.as_slice()].concat(),
                )?;
                if !out.status.success() {
                    self.failures.push(format!(
                        "round {round}: `quantum ctl lease --instance {} release` failed ({}; see {})",
                        self.hosts[l].instance,
                        out.status,
                        log.display()
                    ));
                    return Ok("release FAILED".into());
                }
                if !self.env.failover {
                    return Ok("released".into());
                }
                let t = Instant::now();
                let end = t + Duration::from_millis(2 * FAILOVER.ttl_ms + 5000);
                while !self.hosts[other].leads() {
                    if Instant::now() > end {
                        self.failures.push(format!(
                            "round {round}: host {} did not take over within {} ms of host {}'s planned release",
                            self.hosts[other].name,
                            end.duration_since(t).as_millis(),
                            self.hosts[l].name
                        ));
                        return Ok("NOT handed over".into());
                    }
                    self.tick()?;
                    std::thread::sleep(Duration::from_millis(10));
                }
                let ms = t.elapsed().as_millis() as u64;
                self.tally.releases_handed_over.push(ms);
                Ok(format!(
                    "host {} leads {ms} ms later",
                    self.hosts[other].name
                ))
            }
        }
    }

    /// SIGSTOP every process of host `l` for longer than the TTL, until host `other` took
    /// over; SIGCONT; then watch it step down.
    fn pause(&mut self, round: u32, l: usize, other: usize) -> Result<String> {
        let log = self.hosts[l].current_log(&self.env.out, Kind::Binance);
        let log_at = std::fs::metadata(&log).map_or(0, |m| m.len());
        self.hosts[l].signal_all(libc::SIGSTOP);
        self.hosts[l].stopped = true;
        let stopped_wall = wall_ms();
        let t = Instant::now();
        let at_least = Duration::from_millis(FAILOVER.ttl_ms + 500);
        let give_up = Duration::from_millis(4 * FAILOVER.ttl_ms + 10_000);
        let mut took_over: Option<(i64, Duration)> = None;
        loop {
            if took_over.is_none() && self.env.failover && self.hosts[other].leads() {
                took_over = Some((wall_ms(), t.elapsed()));
            }
            let waited = t.elapsed();
            if waited >= at_least && (took_over.is_some() || !self.env.failover) {
                break;
            }
            if waited >= give_up {
                self.failures.push(format!(
                    "round {round}: host {} did not take over within {} ms of host {}'s SIGSTOP",
                    self.hosts[other].name,
                    give_up.as_millis(),
                    self.hosts[l].name
                ));
                break;
            }
            self.tick()?;
            std::thread::sleep(Duration::from_millis(10));
        }
        let extra = Duration::from_millis(self.rng.gen_range(0..500));
        self.pass(extra)?;
        self.hosts[l].signal_all(libc::SIGCONT);
        self.hosts[l].stopped = false;
        let resumed_wall = wall_ms();
        let resumed = Instant::now();
        // It steps down: its segment says standby.
        let mut stepped_down_ms = None;
        if self.env.failover {
            let end = resumed + Duration::from_secs(5);
            while Instant::now() < end {
                if self.hosts[l]
                    .lease()
                    .is_some_and(|s| s.role == LeaseRole::Standby)
                {
                    stepped_down_ms = Some(resumed.elapsed().as_millis() as u64);
                    break;
                }
                self.tick()?;
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // What it does after SIGCONT is watched for 3 s.
        let rest = Duration::from_secs(3).saturating_sub(resumed.elapsed());
        self.pass(rest)?;
        let after = std::fs::read(&log).unwrap_or_default();
        let after = String::from_utf8_lossy(after.get(log_at as usize..).unwrap_or(&[]));
        let not_leader_lines = after.lines().filter(|l| l.contains("not_leader")).count();
        self.paused.push(Paused {
            round,
            host: l,
            stopped_wall,
            took_over_wall: took_over.map(|t| t.0),
            resumed_wall,
            watched_until_wall: wall_ms(),
            stepped_down_ms,
            not_leader_lines,
        });
        if !self.env.failover {
            return Ok(format!(
                "stopped {} ms (failover off: no takeover to wait for)",
                resumed_wall - stopped_wall
            ));
        }
        Ok(format!(
            "stopped {} ms; host {} took over {}; stepped down {}",
            resumed_wall - stopped_wall,
            self.hosts[other].name,
            took_over.map_or("NEVER".into(), |t| format!(
                "{} ms after the SIGSTOP",
                t.1.as_millis()
            )),
            stepped_down_ms.map_or("NOT within 5 s".into(), |ms| format!(
                "{ms} ms after the SIGCONT"
            ))
        ))
    }

    /// Plan entries not yet finished by the bridges' group: (pending, every entry delivered).
    fn stream_left(&mut self) -> Result<(u64, bool)> {
        let group = self.group.clone();
        let pending = {
            let g = group.clone();
            self.redis("XPENDING", move |c| Ok(results::pending(c, &g)))?
        };
        let info: redis::streams::StreamInfoGroupsReply = self.redis("XINFO GROUPS", |c| {
            redis::cmd("XINFO").arg("GROUPS").arg(PLAN_STREAM).query(c)
        })?;
        let delivered = info
            .groups
            .iter()
            .find(|g| g.name == group)
            .is_some_and(|g| g.last_delivered_id == self.last_entry);
        Ok((pending, delivered))
    }

    /// Waits (ticking) until every plan entry was delivered and answered (none pending) and
    /// every plan fed has a result entry; false after `secs`.
    fn drain(&mut self, secs: u64) -> Result<bool> {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let (pending, delivered) = self.stream_left()?;
            let entries = self.redis("XRANGE", results::result_entries)?;
            let per = results::per_plan(&entries);
            let all = self
                .fed
                .values()
                .all(|(_, _, p)| per.contains_key(&p.id.to_string()));
            if pending == 0 && delivered && all {
                return Ok(true);
            }
            if Instant::now() > end {
                return Ok(false);
            }
            self.pass(Duration::from_millis(200))?;
        }
    }

    /// Waits (ticking) until every symbol is at rest on the leading host; its book.
    fn settle(&mut self, secs: u64) -> Result<(usize, Book)> {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            self.tick()?;
            let l = self.wait_leader(30)?;
            let mut all = true;
            for s in self.symbols.clone() {
                all &= self.at_rest(l, &s)?;
            }
            if all {
                if let Some((b, _)) = book::book(&self.hosts[l].instance, &self.symbols) {
                    return Ok((l, b));
                }
            }
            if Instant::now() > end {
                bail!(
                    "the leading core (host {}) did not come to rest within {secs} s: book {:?}, simulator {:?}",
                    self.hosts[l].name,
                    book::book(&self.hosts[l].instance, &self.symbols),
                    self.sim.positions()?
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn finish(mut self, started: Instant) -> Result<bool> {
        self.tick()?;
        let drained = self.drain(120)?;
        if !drained {
            let (pending, delivered) = self.stream_left()?;
            self.failures.push(format!(
                "the plan stream was not finished within 120 s: {pending} entries pending, every entry delivered: {delivered}"
            ));
        }
        self.settle(120)?;
        let before = self.sim.orders()?.len();
        // Every plan once more.
        let all: Vec<(String, Plan)> = self.fed.values().map(|(s, _, p)| (s.clone(), *p)).collect();
        for (s, p) in &all {
            self.xadd(p, s)?;
        }
        let redelivered = all.len();
        if !self.drain(120)? {
            self.failures
                .push("the final re-delivery was not finished within 120 s".into());
        }
        let (leader, book) = self.settle(120)?;
        let orders = self.sim.orders()?;
        let after = orders.len();
        let positions = self.sim.positions()?;
        let entries = self.redis("XRANGE", results::result_entries)?;
        let (pending, _) = self.stream_left()?;
        let standby_book = book::book(&self.hosts[1 - leader].instance, &self.symbols);
        let mut watcher = self.watcher.take().ok_or_else(|| anyhow!("no watcher"))?;
        watcher.stop();
        for h in &mut self.hosts {
            h.shutdown();
        }

        // Client ids on the exchange.
        let executes: BTreeSet<u64> = self
            .fed
            .iter()
            .filter(|(_, (_, d, _))| *d == Decision::Execute)
            .map(|(id, _)| *id)
            .collect();
        let OrderAudit { twice, strangers } = OrderAudit::of(&orders, &executes);

        // Result entries: final ones (not a `duplicate` answer) and any second entry.
        let mut finals: BTreeMap<String, u32> = BTreeMap::new();
        let mut total: BTreeMap<String, u32> = BTreeMap::new();
        let mut no_epoch = 0usize;
        let mut epochs: BTreeMap<String, u32> = BTreeMap::new();
        for (_, f) in &entries {
            let Some(id) = f.get("plan_id") else { continue };
            *total.entry(id.clone()).or_default() += 1;
            if f.get("error").map(String::as_str) != Some("duplicate") {
                *finals.entry(id.clone()).or_default() += 1;
            }
            match f.get("epoch") {
                Some(e) => *epochs.entry(e.clone()).or_default() += 1,
                None => no_epoch += 1,
            }
        }
        let ids: Vec<String> = self
            .fed
            .values()
            .map(|(_, _, p)| p.id.to_string())
            .collect();
        let not_one_final: Vec<(&String, u32)> = ids
            .iter()
            .map(|id| (id, finals.get(id).copied().unwrap_or(0)))
            .filter(|(_, n)| *n != 1)
            .collect();
        let second: Vec<(&String, u32)> = ids
            .iter()
            .map(|id| (id, total.get(id).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 1)
            .collect();

        // Who sent what, when.
        let window = (FAILOVER.recv_window_ms + FAILOVER.clock_error_ms + SLACK_MS) as i64;
        let host_of = |o: &Value| -> Option<usize> {
            let via = o["via"].as_str()?;
            self.hosts.iter().position(|h| h.via == via)
        };
        let mut per_host = [0usize; 2];
        let mut outside: Vec<String> = Vec::new();
        let mut unjudged = 0usize;
        let (both, mut takeovers_seg, mut harness_ms) = watcher.with(|tl| {
            for o in &orders {
                let Some(h) = host_of(o) else { continue };
                per_host[h] += 1;
                let t = o["time"].as_i64().unwrap_or(0);
                match tl.could_send(h, t, window) {
                    Some(true) => {}
                    Some(false) => outside.push(format!(
                        "{} by host {} at {t}",
                        o["clientOrderId"].as_str().unwrap_or("?"),
                        self.hosts[h].name
                    )),
                    None => unjudged += 1,
                }
            }
            let harness: Vec<u64> = self
                .hits
                .iter()
                .filter(|h| matches!(h.action, Action::Pause | Action::Release))
                .filter_map(|h| {
                    tl.first_may_send(1 - h.host, h.wall)
                        .map(|t| (t - h.wall).max(0) as u64)
                })
                .collect();
            (tl.both.clone(), tl.takeovers.clone(), harness)
        });
        let mut takeovers_log = takeover_lines(&self.env.out)?;

        // The paused leaders after SIGCONT.
        let mut pause_lines = Vec::new();
        for p in &self.paused {
            let from = p.took_over_wall.unwrap_or(p.resumed_wall);
            let late = orders
                .iter()
                .filter(|o| host_of(o) == Some(p.host))
                .filter(|o| {
                    let t = o["time"].as_i64().unwrap_or(0);
                    t >= from && t <= p.watched_until_wall
                })
                .count();
            pause_lines.push((p, late));
        }

        let fails = std::mem::take(&mut self.failures);
        let secs = started.elapsed().as_secs();
        let mut ok = fails.is_empty();
        let mut fail = |what: String| {
            println!("FAIL: {what}");
            ok = false;
        };
        for f in &fails {
            println!("FAIL: {f}");
        }
        let t = &self.tally;
        println!(
            "failover-test: {} rounds in {secs} s (seed {}, {} plans per round, failover {}), output in {}",
            self.args.rounds,
            self.args.seed,
            self.args.plans,
            if self.env.failover { "on" } else { "OFF" },
            self.env.out.display()
        );
        println!(
            "  lease: ttl {} ms, renew {} ms, drift {} ms, recvWindow {} ms, clock error {} ms",
            FAILOVER.ttl_ms,
            FAILOVER.renew_ms,
            FAILOVER.drift_ms,
            FAILOVER.recv_window_ms,
            FAILOVER.clock_error_ms
        );
        println!(
            "  rounds: {}; redis-server restarts with the lease key deleted: {}",
            join(&t.actions),
            t.redis_restarts_key_lost
        );
        for h in &self.hosts {
            println!(
                "  host {} ({}, orders over {}): starts daemon {}, binance {}, redis {}; exits nobody asked for: {}, {}, {}; {} order(s) on the simulator",
                h.name,
                h.instance,
                h.via,
                h.starts[0],
                h.starts[1],
                h.starts[2],
                h.exits[0],
                h.exits[1],
                h.exits[2],
                per_host[h.idx]
            );
        }
        println!(
            "  plans: {} deliveries of {} ids ({} EXECUTE, {} re-deliveries), entry side re-opened {} position(s); final re-delivery of {redelivered}",
            t.deliveries,
            self.fed.len(),
            executes.len(),
            t.redeliveries,
            t.reopens
        );
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
            "  result stream: {} entries; plans with exactly one final entry: {} of {}; plans with a second entry: {}; entries without an epoch: {no_epoch} (epochs: {}); {pending} plan entries pending",
            entries.len(),
            ids.len() - not_one_final.len(),
            ids.len(),
            second.len(),
            join(&epochs)
        );
        if !not_one_final.is_empty() {
            fail(format!(
                "plans without exactly one final result entry (id, entries): {:?}",
                &not_one_final[..not_one_final.len().min(20)]
            ));
        }
        if !second.is_empty() {
            fail(format!(
                "plans with more than one result entry (id, entries): {:?}",
                &second[..second.len().min(20)]
            ));
        }
        if self.env.failover && no_epoch > 0 {
            fail(format!("{no_epoch} result entries without an epoch"));
        }
        if pending > 0 {
            fail(format!("{pending} plan entries left pending"));
        }
        for (s, (ledger, in_flight)) in &book {
            let pos = positions.get(s).copied().unwrap_or(Qty::ZERO);
            let good = *ledger == pos && in_flight.is_zero();
            let standby = standby_book
                .as_ref()
                .map_or("down".to_string(), |(b, _)| b[s].0.to_string());
            println!(
                "  {s}: host {} (leads) ledger {ledger}, simulator {pos}, in flight {in_flight}: {} (host {}'s ledger: {standby})",
                self.hosts[leader].name,
                if good { "ok" } else { "MISMATCH" },
                self.hosts[1 - leader].name
            );
            if !good {
                fail(format!(
                    "{s}: host {}'s ledger {ledger}, simulator {pos}, in flight {in_flight}",
                    self.hosts[leader].name
                ));
            }
        }
        println!(
            "  fencing: readings where both hosts could send: {}; orders accepted more than {window} ms (recvWindow + clock error + {SLACK_MS}) after their host could last send: {} ({unjudged} not judged: no reading around them)",
            both.len(),
            outside.len()
        );
        if !both.is_empty() {
            fail(format!(
                "both hosts could send at once, at {} reading(s) (first at {})",
                both.len(),
                both[0]
            ));
        }
        if !outside.is_empty() {
            fail(format!(
                "orders sent while their host could not send: {:?}",
                &outside[..outside.len().min(20)]
            ));
        }
        for (p, late) in &pause_lines {
            println!(
                "  pause (round {}): host {} stopped {} ms; the other took over {}; stepped down {}; orders it placed after the takeover: {late}; `not_leader` in its Binance bridge's log after SIGCONT: {}",
                p.round,
                self.hosts[p.host].name,
                p.resumed_wall - p.stopped_wall,
                match p.took_over_wall {
                    Some(w) => format!("{} ms after the SIGSTOP", w - p.stopped_wall),
                    None if self.env.failover => "NEVER".into(),
                    None => "(failover off)".into(),
                },
                match p.stepped_down_ms {
                    Some(ms) => format!("{ms} ms after SIGCONT"),
                    None if self.env.failover => "NOT within 5 s".into(),
                    None => "(failover off)".into(),
                },
                p.not_leader_lines
            );
            if self.env.failover && p.stepped_down_ms.is_none() {
                fail(format!(
                    "round {}: host {} did not step down within 5 s of SIGCONT",
                    p.round, self.hosts[p.host].name
                ));
            }
            if *late > 0 {
                fail(format!(
                    "round {}: host {} placed {late} order(s) after the other host took over",
                    p.round, self.hosts[p.host].name
                ));
            }
        }
        if !t.releases_handed_over.is_empty() {
            println!(
                "  planned releases handed over in (ms): {:?}",
                t.releases_handed_over
            );
        }
        let (source, measured) = if takeovers_log.is_empty() {
            ("lease segments' takeover_ms", &mut takeovers_seg)
        } else {
            ("`took over … takeover_ms=` lines", &mut takeovers_log)
        };
        let p50 = percentile(measured, 50);
        let max = percentile(measured, 100);
        let show = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v} ms"));
        println!(
            "  takeover (lease lost → first decision, from {source}): {} measured, p50 {}, max {} (ttl {} ms)",
            measured.len(),
            show(p50),
            show(max),
            FAILOVER.ttl_ms
        );
        println!(
            "  takeover (as the test saw it: SIGSTOP or release → the other host may send): {} measured, p50 {}, max {} (ttl + recvWindow + clock error = {} ms)",
            harness_ms.len(),
            show(percentile(&mut harness_ms, 50)),
            show(percentile(&mut harness_ms, 100)),
            FAILOVER.ttl_ms + FAILOVER.recv_window_ms + FAILOVER.clock_error_ms
        );
        let handovers = self
            .hits
            .iter()
            .filter(|h| matches!(h.action, Action::Pause | Action::Release))
            .count();
        if self.env.failover && handovers > 0 && measured.is_empty() {
            fail("no takeover time was measured (no `took over … takeover_ms=N` line, no takeover_ms in a lease segment)".into());
        }
        println!("{}", if ok { "PASS" } else { "FAIL" });
        Ok(ok)
    }
}

/// `takeover_ms=N` of every `took over` line in the Redis bridges' logs.
fn takeover_lines(out: &std::path::Path) -> Result<Vec<u64>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(out)? {
        let path = e?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.contains("-redis-") || !name.ends_with(".log") {
            continue;
        }
        for line in std::fs::read_to_string(&path)?.lines() {
            if !line.contains("took over") {
                continue;
            }
            if let Some(rest) = line.split("takeover_ms=").nth(1) {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if let Ok(ms) = digits.parse() {
                    v.push(ms);
                }
            }
        }
    }
    Ok(v)
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
        w.finish(started)
    })();
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "failover-test: FAIL: {e:#}");
            std::process::exit(1);
        }
    }
}
