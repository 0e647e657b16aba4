//! `bridge`: XADD of a plan in Redis → its result entry in Redis, through `quantum bridge
//! redis` and `quantum run` (real processes, a real redis-server on a loopback port).
//!
//! ```text
//!  this process ─XADD─> redis-server ─XREADGROUP─> quantum bridge redis ─plans─> quantum run
//!       ^                    │  <─MULTI/EXEC result entry──────┘   <──results─────┘
//!       └──XREAD BLOCK───────┘
//! ```
//!
//! A writer connection XADDs each plan at its due time (open loop); a reader thread, blocked in
//! `XREAD` on `quantum:stream:apply.result`, stamps each result entry as it arrives; a
//! sample is the arrival minus the plan's due time, both from one clock of this process. Rows:
//!
//! - `bridge.hold`: `HOLD` plans, answered at once by the core;
//! - `bridge.execute`: `EXECUTE` plans through the whole permit chain (governor and P3.3
//!   permits, both mirrored as legacy keys with their TTLs), denied by P3.3 because no
//!   exchange is attached here (no position snapshot), so nothing is ordered;
//! - `bridge.isolated`: the same `EXECUTE` plans, but each one alone: one every
//!   `--isolated-gap-ms` (250 ms), `--isolated-plans` (50) in the whole run, spread over the
//!   blocks. Between two plans every thread of the path has gone idle (parked or asleep), so
//!   this row measures what waking the path costs: the legacy system's own pace is one plan a
//!   second. Its p50 is compared with `bridge.execute`'s (the loaded figure, in alternating
//!   blocks of the same run) in the summary.
//!
//! The closed-loop run XADDs plans in pipelines of 100 and waits for every result entry; for
//! `bridge.isolated` it sends one plan at a time, each after the previous one's result entry.

use std::cell::RefCell;
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use hdrhistogram::Histogram;
use quantum_core::{Action, Decision, Plan, PlanId, SymbolId};
use quantum_redis::legacy::{self, PLAN_STREAM, RESULT_STREAM};
use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::Commands;

use super::legacy::server::RedisServer;
use super::ring::ChildGuard;
use super::Ctx;
use crate::suite::openloop::Schedule;
use crate::suite::variant::{Throughput, Variant};

/// The open-loop rate offered at most, plans per second.
const MAX_RATE: f64 = 1000.0;

/// Plans in flight in the closed-loop run.
const WINDOW: u64 = 2000;

/// Key of the row of plans that arrive alone.
pub const ISOLATED: &str = "bridge.isolated";
/// Key of the loaded row `bridge.isolated` is compared with (the same plans, 1,000 a second).
pub const LOADED: &str = "bridge.execute";

/// The rows of `bridge` (one stack shared by all three).
pub fn build(ctx: &Ctx) -> Result<super::Rows> {
    let stack = Rc::new(RefCell::new(Stack::start(ctx)?));
    Ok(vec![
        Box::new(Row {
            stack: stack.clone(),
            kind: Kind::Hold,
        }),
        Box::new(Row {
            stack: stack.clone(),
            kind: Kind::Execute,
        }),
        Box::new(Row {
            stack,
            kind: Kind::Isolated {
                per_block: ctx
                    .isolated_plans
                    .div_ceil(u64::from(ctx.blocks.max(1)))
                    .max(1),
                gap: ctx.isolated_gap,
            },
        }),
    ])
}

/// redis-server, the daemon and the Redis bridge.
struct Stack {
    redis: RedisServer,
    bridge: ChildGuard,
    daemon: ChildGuard,
    instance: String,
    journal: std::path::PathBuf,
    writer: redis::Connection,
    /// The last result entry id read.
    last: String,
    /// Plan ids handed out so far.
    next_id: u64,
    /// The clock both threads read: ns since this instant.
    epoch: Instant,
}

impl Stack {
    fn start(ctx: &Ctx) -> Result<Stack> {
        let redis = RedisServer::start(&ctx.redis_server)?;
        let instance = format!("{}-bridge", ctx.tag);
        std::fs::create_dir_all(&ctx.out)?;
        let journal = ctx.out.join("bridge-journal");
        let daemon = super::ipc::start_daemon(ctx, &instance, &journal, "bridge-daemon.log")?;
        let url = format!("redis://127.0.0.1:{}/0", redis.port);
        let log_path = ctx.out.join("bridge-redis.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let bridge = ChildGuard(Some(
            Command::new(&ctx.exe)
                .args(["bridge", "redis", "--instance", &instance, "--redis", &url])
                .args(["--max-in-flight", "8192"])
                .env("RUST_LOG", "warn")
                .env("QUANTUM_JOURNAL_DIR", &journal)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("starting quantum bridge redis")?,
        ));
        let mut s = Stack {
            writer: redis.connect(0)?,
            redis,
            bridge,
            daemon,
            instance,
            journal,
            last: "0-0".into(),
            next_id: 0x5000_0000_0000,
            epoch: Instant::now(),
        };
        // The bridge reads from its consumer group, created at `$`: a plan written before it
        // exists would be skipped.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let groups: redis::RedisResult<Vec<redis::Value>> = redis::cmd("XINFO")
                .arg("GROUPS")
                .arg(PLAN_STREAM)
                .query(&mut s.writer);
            if groups.is_ok_and(|g| !g.is_empty()) {
                break;
            }
            if Instant::now() > deadline {
                bail!("the Redis bridge did not create its consumer group within 30 s (see bridge-redis.log)");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // The bridge is up once a plan comes back as a result entry.
        let id = s.ids(1);
        s.writer
            .xadd::<_, _, _, _, String>(PLAN_STREAM, "*", &fields(id, Decision::Hold))?;
        s.read_until(&[id], Duration::from_secs(60))
            .context("the Redis bridge did not answer a first plan (see bridge-redis.log)")?;
        // EXECUTE plans must reach P3.3 and be denied there, or the row measures less.
        let id = s.ids(1);
        s.writer
            .xadd::<_, _, _, _, String>(PLAN_STREAM, "*", &fields(id, Decision::Execute))?;
        let errors = s.read_until(&[id], Duration::from_secs(10))?;
        let error = errors.get(&id).cloned().unwrap_or_default();
        if !error.starts_with("p33") {
            bail!("an EXECUTE plan was expected to be denied by P3.3, its result says {error:?}");
        }
        Ok(s)
    }

    fn ids(&mut self, n: u64) -> u64 {
        let first = self.next_id;
        self.next_id += n;
        first
    }

    /// Reads result entries from `last` until every id in `want` has one; returns the entries'
    /// `error` fields by plan id.
    fn read_until(&mut self, want: &[u64], within: Duration) -> Result<HashMap<u64, String>> {
        let mut c = self.redis.connect(0)?;
        let mut out = HashMap::new();
        let end = Instant::now() + within;
        let opts = StreamReadOptions::default().block(1000).count(1000);
        while want.iter().any(|w| !out.contains_key(w)) {
            if Instant::now() > end {
                bail!("{} of {} result entries", out.len(), want.len());
            }
            let reply: StreamReadReply =
                c.xread_options(&[RESULT_STREAM], &[self.last.as_str()], &opts)?;
            for e in reply.keys.iter().flat_map(|k| &k.ids) {
                self.last = e.id.clone();
                let id: String = e.get("plan_id").unwrap_or_default();
                let id = u64::from_str_radix(&id, 16).unwrap_or(0);
                out.insert(id, e.get("error").unwrap_or_default());
            }
        }
        Ok(out)
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // The bridge first (it keeps nothing), then the daemon and what it keeps.
        if let Some(mut c) = self.bridge.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(mut c) = self.daemon.0.take() {
            super::ipc::stop_daemon(&mut c, &self.instance, &self.journal);
        }
    }
}

/// The legacy plan entry of BTCUSDT plan `id`.
fn fields(id: u64, decision: Decision) -> Vec<(&'static str, String)> {
    let mut p = Plan::exit(PlanId(id), SymbolId(0), decision, Action::Partial75);
    p.kill_score = "0.539".parse().expect("constant");
    legacy::plan_entry_fields(&p, "BTCUSDT")
}

/// What a row sends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// `HOLD` plans at the offered rate.
    Hold,
    /// `EXECUTE` plans at the offered rate.
    Execute,
    /// `EXECUTE` plans one at a time, `gap` apart, `per_block` per block.
    Isolated { per_block: u64, gap: Duration },
}

impl Kind {
    fn decision(self) -> Decision {
        match self {
            Kind::Hold => Decision::Hold,
            Kind::Execute | Kind::Isolated { .. } => Decision::Execute,
        }
    }
}

struct Row {
    stack: Rc<RefCell<Stack>>,
    kind: Kind,
}

impl Variant for Row {
    fn key(&self) -> &'static str {
        match self.kind {
            Kind::Hold => "bridge.hold",
            Kind::Execute => LOADED,
            Kind::Isolated { .. } => ISOLATED,
        }
    }
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Hold => "XADD → result entry, HOLD, via bridge + core",
            Kind::Execute => "XADD → result entry, EXECUTE (P3.3 deny)",
            Kind::Isolated { .. } => "XADD → result entry, EXECUTE (P3.3 deny), each plan alone",
        }
    }
    fn op(&self) -> &'static str {
        "plan"
    }
    fn max_rate(&self) -> Option<f64> {
        match self.kind {
            Kind::Isolated { gap, .. } => Some(1.0 / gap.as_secs_f64().max(1e-3)),
            // One XADD per plan, each a round trip to redis-server of about 100 µs on a small
            // machine: offered faster, the writer itself would fall behind and its lateness
            // would be counted as the bridge's.
            _ => Some(MAX_RATE),
        }
    }

    fn block(&mut self, schedule: &Schedule, hist: &mut Histogram<u64>) -> Result<()> {
        // Plans that arrive alone: their own count and gap, whatever the suite's rate.
        let schedule = &match self.kind {
            Kind::Isolated { per_block, gap } => Schedule {
                rate: 1.0 / gap.as_secs_f64().max(1e-3),
                count: per_block,
            },
            _ => *schedule,
        };
        let mut s = self.stack.borrow_mut();
        let first = s.ids(schedule.count);
        let epoch = s.epoch;
        let start = s.now_ns() + 5_000_000;
        let (tx, rx) = std::sync::mpsc::channel::<Result<Vec<(u64, u64)>>>();
        let count = schedule.count;
        let reader_conn = s.redis.connect(0)?;
        let last = s.last.clone();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop_r = stop.clone();
        // The reader: each result entry of this block's plans, stamped on arrival.
        let reader = std::thread::spawn(move || {
            let r = (|| -> Result<(Vec<(u64, u64)>, String)> {
                let mut c = reader_conn;
                let mut last = last;
                let mut got = Vec::with_capacity(count as usize);
                let opts = StreamReadOptions::default().block(200).count(1000);
                while (got.len() as u64) < count {
                    // Relaxed: a stop flag polled between reads.
                    if stop_r.load(std::sync::atomic::Ordering::Relaxed) {
                        bail!("stopped");
                    }
                    let reply: StreamReadReply =
                        c.xread_options(&[RESULT_STREAM], &[last.as_str()], &opts)?;
                    let at = epoch.elapsed().as_nanos() as u64;
                    for e in reply.keys.iter().flat_map(|k| &k.ids) {
                        last = e.id.clone();
                        let id: String = e.get("plan_id").unwrap_or_default();
                        let id = u64::from_str_radix(&id, 16).unwrap_or(0);
                        if (first..first + count).contains(&id) {
                            got.push((id - first, at));
                        }
                    }
                }
                Ok((got, last))
            })();
            let _ = tx.send(
                r.as_ref()
                    .map(|(g, _)| g.clone())
                    .map_err(|e| anyhow!("{e}")),
            );
            r.map(|(_, last)| last)
        });
        let interval = schedule.interval_ns();
        let due = |i: u64| start + i * interval;
        for i in 0..count {
            // Sleep until shortly before the due time, then spin: a plan is due every 100 µs
            // or more here, and a writer spinning the whole time would take one of the
            // machine's cores from the bridge, the daemon and redis-server.
            loop {
                let now = s.now_ns();
                let due_i = due(i);
                if now >= due_i {
                    break;
                }
                if due_i - now > 150_000 {
                    std::thread::sleep(Duration::from_nanos(due_i - now - 100_000));
                } else {
                    std::hint::spin_loop();
                }
            }
            let r = s.writer.xadd::<_, _, _, _, String>(
                PLAN_STREAM,
                "*",
                &fields(first + i, self.kind.decision()),
            );
            if let Err(e) = r {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                let _ = reader.join();
                return Err(e.into());
            }
        }
        let got = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(r) => r?,
            Err(_) => {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                let _ = reader.join();
                bail!("result entries missing 60 s after the block's last plan");
            }
        };
        if let Ok(Ok(last)) = reader.join() {
            s.last = last;
        }
        for (i, at) in got {
            hist.saturating_record(at.saturating_sub(due(i)).max(1));
        }
        Ok(())
    }

    fn throughput(&mut self, duration: Duration) -> Result<Throughput> {
        let mut s = self.stack.borrow_mut();
        let t0 = Instant::now();
        let mut sent = 0u64;
        if let Kind::Isolated { .. } = self.kind {
            // One plan at a time: the next is sent when the previous one's result is in.
            while t0.elapsed() < duration {
                let id = s.ids(1);
                s.writer.xadd::<_, _, _, _, String>(
                    PLAN_STREAM,
                    "*",
                    &fields(id, Decision::Execute),
                )?;
                s.read_until(&[id], Duration::from_secs(10))?;
                sent += 1;
            }
            return Ok(Throughput {
                ops: sent,
                elapsed: t0.elapsed(),
            });
        }
        let decision = self.kind.decision();
        // Windows of plans XADDed in pipelines of 100, each window's result entries read
        // before the next (the result stream is trimmed, so nothing may fall far behind).
        while t0.elapsed() < duration {
            let first = s.ids(WINDOW);
            for chunk in (0..WINDOW).step_by(100) {
                let mut p = redis::pipe();
                for i in chunk..(chunk + 100).min(WINDOW) {
                    p.xadd(PLAN_STREAM, "*", &fields(first + i, decision))
                        .ignore();
                }
                let () = p.query(&mut s.writer)?;
            }
            let want: Vec<u64> = (first..first + WINDOW).collect();
            s.read_until(&want, Duration::from_secs(120))?;
            sent += WINDOW;
        }
        Ok(Throughput {
            ops: sent,
            elapsed: t0.elapsed(),
        })
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = vec![format!(
            "{} plans; redis-server {} without persistence; daemon and bridge with default settings (logs at warn)",
            self.kind.decision(),
            self.stack.borrow().redis.version
        )];
        if let Kind::Isolated { per_block, gap } = self.kind {
            notes.push(format!(
                "one plan every {} ms, {per_block} per block; closed loop: one plan at a time",
                gap.as_millis()
            ));
        }
        notes
    }
}
