//! `legacy`: the seeds' permit path on a real local redis-server, doing the same work per
//! plan as the legacy services (keys and JSON from `quantum_redis::legacy`, the contract's one
//! owner):
//!
//! 1. the exit brain `XADD`s the plan to `quantum:stream:apply.plan` (capped near 10,000
//!    entries, as the seeds show the stream);
//! 2. the Governor `SET`s `quantum:permit:<id>` (TTL 15 s);
//! 3. P3.3 `SET`s `quantum:permit:p33:<id>` (TTL 15 s);
//! 4. Apply runs the consume-both Lua script: both permits present and granted, or nothing;
//!    it deletes both and returns them.
//!
//! - `legacy.bare`: the four commands back to back from one connection, one plan at a time:
//!   the Redis round trips alone (baseline "legacy");
//! - `legacy.deployed`: as the services run: exit brain, Governor, P3.3 and Apply each on its
//!   own connection and thread, the last three reading the stream with `XREAD BLOCK`; Apply
//!   tries the script as soon as it reads the plan and, while a permit is missing, sleeps
//!   `APPLY_PERMIT_STEP_MS` (100 ms) before trying again, for at most `APPLY_PERMIT_WAIT_MS`
//!   (1200 ms). Its 5-second stream re-read is not modelled (that would only add to it).

pub mod server;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use quantum_core::event::{GovPermitEvent, P33PermitEvent};
use quantum_core::permit::P33Context;
use quantum_core::{Action, Decision, Plan, PlanId, Qty, Side, SymbolId};
use quantum_redis::legacy;

use self::server::RedisServer;
use super::chain::ids;
use super::Ctx;
use crate::suite::openloop::{self, Schedule};
use crate::suite::variant::{Throughput, Variant};

/// Apply's consume-both script: both permits or neither.
const CONSUME: &str = r#"
local gov = redis.call('GET', KEYS[1])
local p33 = redis.call('GET', KEYS[2])
if not gov then return {0, 'missing_gov'} end
if not p33 then return {0, 'missing_p33'} end
if not cjson.decode(gov)['granted'] then return {0, 'gov_denied'} end
if not cjson.decode(p33)['allow'] then return {0, 'p33_denied'} end
redis.call('DEL', KEYS[1], KEYS[2])
return {1, gov, p33}
"#;

/// Legacy `APPLY_PERMIT_STEP_MS`.
const STEP: Duration = Duration::from_millis(100);
/// Legacy `APPLY_PERMIT_WAIT_MS`.
const WAIT: Duration = Duration::from_millis(1200);
const SYMBOL: &str = "BTCUSDT";
/// The Redis database of each row.
const BARE_DB: u8 = 0;
const DEPLOYED_DB: u8 = 1;

/// The rows of `legacy`: one redis-server for both.
pub fn build(ctx: &Ctx) -> Result<super::Rows> {
    let server = Arc::new(RedisServer::start(&ctx.redis_server)?);
    Ok(vec![
        Box::new(Bare::new(server.clone())?),
        Box::new(Deployed::start(server)?),
    ])
}

/// What one plan writes: the stream entry's fields and the two permits.
struct PlanWork {
    id: String,
    entry: Vec<(&'static str, String)>,
    gov_key: String,
    p33_key: String,
    gov: String,
    p33: String,
}

impl PlanWork {
    fn new(seq: u64) -> PlanWork {
        let plan = PlanId(ids::of(seq));
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let symbol = SymbolId(0);
        let gov = GovPermitEvent {
            plan,
            symbol,
            allow: true,
            reason: None,
            issued_at_ms: now_ms,
            ttl_ms: 15_000,
        };
        let amount: Qty = "0.062".parse().expect("constant");
        let p33 = P33PermitEvent {
            plan,
            symbol,
            allow: true,
            reason: None,
            side: Some(Side::Sell),
            safe_qty: "0.046".parse().expect("constant"),
            context: P33Context {
                exchange: amount,
                ledger: amount,
                tolerance: "0.001".parse().expect("constant"),
            },
            issued_at_ms: now_ms,
            ttl_ms: 15_000,
        };
        let mut entry = Plan::exit(plan, symbol, Decision::Execute, Action::Partial75);
        entry.kill_score = "0.539".parse().expect("constant");
        PlanWork {
            id: plan.to_string(),
            entry: legacy::plan_entry_fields(&entry, SYMBOL),
            gov_key: legacy::permit_key(plan),
            p33_key: legacy::p33_permit_key(plan),
            gov: legacy::gov_permit_json(&gov, SYMBOL),
            p33: legacy::p33_permit_json(&p33, SYMBOL),
        }
    }

    fn xadd(&self, c: &mut redis::Connection) -> Result<()> {
        redis::cmd("XADD")
            .arg(legacy::PLAN_STREAM)
            .arg("MAXLEN")
            .arg("~")
            .arg(10_000)
            .arg("*")
            .arg(&self.entry)
            .query::<String>(c)?;
        Ok(())
    }

    fn set_gov(&self, c: &mut redis::Connection) -> Result<()> {
        set(c, &self.gov_key, &self.gov)
    }

    fn set_p33(&self, c: &mut redis::Connection) -> Result<()> {
        set(c, &self.p33_key, &self.p33)
    }
}

fn set(c: &mut redis::Connection, key: &str, value: &str) -> Result<()> {
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .arg("EX")
        .arg(15)
        .query::<()>(c)?;
    Ok(())
}

/// Runs the consume script; true when both permits were taken.
fn consume(
    c: &mut redis::Connection,
    script: &redis::Script,
    gov: &str,
    p33: &str,
) -> Result<bool> {
    let r: Vec<redis::Value> = script.key(gov).key(p33).invoke(c)?;
    Ok(matches!(r.first(), Some(redis::Value::Int(1))))
}

/// `legacy.bare`.
struct Bare {
    server: Arc<RedisServer>,
    conn: redis::Connection,
    script: redis::Script,
    seq: u64,
}

impl Bare {
    fn new(server: Arc<RedisServer>) -> Result<Bare> {
        Ok(Bare {
            conn: server.connect(BARE_DB)?,
            server,
            script: redis::Script::new(CONSUME),
            seq: 0,
        })
    }

    fn one(&mut self, w: &PlanWork) -> Result<()> {
        w.xadd(&mut self.conn)?;
        w.set_gov(&mut self.conn)?;
        w.set_p33(&mut self.conn)?;
        if !consume(&mut self.conn, &self.script, &w.gov_key, &w.p33_key)? {
            bail!("plan {}: the consume script refused both permits", w.id);
        }
        Ok(())
    }

    fn work(&mut self, count: u64) -> Vec<PlanWork> {
        let first = self.seq + 1;
        self.seq += count;
        (first..first + count).map(PlanWork::new).collect()
    }
}

impl Variant for Bare {
    fn key(&self) -> &'static str {
        "legacy.bare"
    }
    fn name(&self) -> &'static str {
        "legacy Redis+Lua, bare round trips"
    }
    fn op(&self) -> &'static str {
        "plan"
    }

    fn block(&mut self, schedule: &Schedule, hist: &mut Histogram<u64>) -> Result<()> {
        // The JSON is made before the first due time: the Redis work is what is measured.
        let work = self.work(schedule.count);
        let clock = quanta::Clock::new();
        let origin = clock.raw();
        let now = || clock.delta_as_nanos(origin, clock.raw());
        let mut failed = None;
        openloop::run_block(schedule, hist, &mut { now }, &mut |i| {
            if let Err(e) = self.one(&work[i as usize]) {
                failed.get_or_insert(e);
            }
            now()
        });
        failed.map_or(Ok(()), Err)
    }

    fn throughput(&mut self, duration: Duration) -> Result<Throughput> {
        let start = Instant::now();
        let mut ops = 0;
        while start.elapsed() < duration {
            for w in self.work(64) {
                self.one(&w)?;
            }
            ops += 64;
        }
        Ok(Throughput {
            ops,
            elapsed: start.elapsed(),
        })
    }

    fn notes(&self) -> Vec<String> {
        vec![format!(
            "{} on 127.0.0.1:{}, no persistence; XADD, SET, SET, EVALSHA from one connection",
            self.server.version, self.server.port
        )]
    }
}

/// `legacy.deployed`: the four services on their own threads and connections.
struct Deployed {
    exit_brain: redis::Connection,
    done: mpsc::Receiver<Result<(u64, Instant)>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    seq: u64,
}

/// A legacy service: reads every new plan of the stream (`XREAD BLOCK`) and handles it.
fn service(
    server: &RedisServer,
    stop: Arc<AtomicBool>,
    mut handle: impl FnMut(&mut redis::Connection, u64) -> Result<()> + Send + 'static,
) -> Result<JoinHandle<()>> {
    let mut c = server.connect(DEPLOYED_DB)?;
    // Read from the stream's last entry now: `$` in every XREAD would miss what arrives
    // between two calls.
    let newest: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(legacy::PLAN_STREAM)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query(&mut c)?;
    let mut last = newest
        .ids
        .first()
        .map_or_else(|| "0-0".to_owned(), |e| e.id.clone());
    Ok(std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let reply: Result<redis::streams::StreamReadReply, _> = redis::cmd("XREAD")
                .arg("BLOCK")
                .arg(100)
                .arg("STREAMS")
                .arg(legacy::PLAN_STREAM)
                .arg(&last)
                .query(&mut c);
            let Ok(reply) = reply else { continue };
            for key in reply.keys {
                for entry in key.ids {
                    last = entry.id.clone();
                    let id: Option<String> = entry.get("plan_id");
                    let Some(seq) = id
                        .and_then(|s| u64::from_str_radix(&s, 16).ok())
                        .map(ids::seq)
                    else {
                        continue;
                    };
                    if handle(&mut c, seq).is_err() {
                        return;
                    }
                }
            }
        }
    }))
}

impl Deployed {
    fn start(server: Arc<RedisServer>) -> Result<Deployed> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, done) = mpsc::channel();
        let mut threads = Vec::new();
        threads.push(service(&server, stop.clone(), |c, seq| {
            PlanWork::new(seq).set_gov(c)
        })?);
        threads.push(service(&server, stop.clone(), |c, seq| {
            PlanWork::new(seq).set_p33(c)
        })?);
        let script = redis::Script::new(CONSUME);
        threads.push(service(&server, stop.clone(), move |c, seq| {
            let w = PlanWork::new(seq);
            let start = Instant::now();
            let r = loop {
                match consume(c, &script, &w.gov_key, &w.p33_key) {
                    Ok(true) => break Ok((seq, Instant::now())),
                    Ok(false) if start.elapsed() + STEP <= WAIT => std::thread::sleep(STEP),
                    Ok(false) => {
                        break Err(anyhow::anyhow!(
                            "plan {}: permits missing after 1200 ms",
                            w.id
                        ))
                    }
                    Err(e) => break Err(e),
                }
            };
            tx.send(r)
                .map_err(|_| anyhow::anyhow!("the bench stopped listening"))
        })?);
        // Let the services block on the stream before the first plan.
        std::thread::sleep(Duration::from_millis(200));
        Ok(Deployed {
            exit_brain: server.connect(DEPLOYED_DB)?,
            done,
            stop,
            threads,
            seq: 0,
        })
    }

    /// Waits for Apply's answer to plan `seq`.
    fn wait_for(&self, seq: u64) -> Result<Instant> {
        loop {
            let (s, at) = self
                .done
                .recv_timeout(Duration::from_secs(5))
                .context("no answer from the Apply thread within 5 s")??;
            if s == seq {
                return Ok(at);
            }
        }
    }
}

impl Variant for Deployed {
    fn key(&self) -> &'static str {
        "legacy.deployed"
    }
    fn name(&self) -> &'static str {
        "legacy as deployed (100 ms permit poll)"
    }
    fn op(&self) -> &'static str {
        "plan"
    }
    fn max_rate(&self) -> Option<f64> {
        // Apply handles one plan at a time and most plans wait one 100 ms step.
        Some(5.0)
    }

    fn block(&mut self, schedule: &Schedule, hist: &mut Histogram<u64>) -> Result<()> {
        let first = self.seq + 1;
        self.seq += schedule.count;
        let work: Vec<_> = (first..first + schedule.count).map(PlanWork::new).collect();
        let origin = Instant::now();
        let start = origin + Duration::from_nanos(schedule.interval_ns());
        let mut due = Vec::with_capacity(work.len());
        for (i, w) in work.iter().enumerate() {
            let at = start + Duration::from_nanos(i as u64 * schedule.interval_ns());
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            w.xadd(&mut self.exit_brain)?;
            due.push(at);
        }
        for (i, at) in due.iter().enumerate() {
            let done = self.wait_for(first + i as u64)?;
            hist.saturating_record(done.saturating_duration_since(*at).as_nanos() as u64);
        }
        Ok(())
    }

    fn throughput(&mut self, duration: Duration) -> Result<Throughput> {
        let start = Instant::now();
        let mut ops = 0;
        while start.elapsed() < duration {
            self.seq += 1;
            PlanWork::new(self.seq).xadd(&mut self.exit_brain)?;
            self.wait_for(self.seq)?;
            ops += 1;
        }
        Ok(Throughput {
            ops,
            elapsed: start.elapsed(),
        })
    }

    fn notes(&self) -> Vec<String> {
        vec!["exit brain, Governor, P3.3 and Apply on their own connections; XREAD BLOCK; Apply sleeps 100 ms while a permit is missing".to_owned()]
    }
}

impl Drop for Deployed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
