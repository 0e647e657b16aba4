//! The Redis phase: plans come as the legacy exit brain sends them (`XADD` on the plan
//! stream, each plan once), through `quantum bridge redis`, while the daemon is killed with
//! the Redis bridge paused (SIGSTOP for a second before each kill, SIGCONT after the restart).
//! At the end every plan must have exactly one entry in the result stream and none may be left
//! pending.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use quantum_local_redis::RedisServer;
use quantum_plan_feed::Next;
use quantum_redis::legacy::{plan_entry_fields, plan_entry_json, PLAN_STREAM};
use rand::Rng;

use quantum_crash_test::procs::{log_file, Proc};
use quantum_crash_test::results;

use crate::World;

/// What the phase found.
pub struct RedisReport {
    pub plans: u64,
    pub pauses: u32,
    pub entries: u64,
    pub not_once: Vec<(String, usize)>,
    pub pending: u64,
}

impl World {
    fn start_redis_bridge(&mut self, url: &str) -> Result<Proc> {
        let child = Command::new(&self.quantum)
            .args([
                "bridge",
                "redis",
                "--instance",
                &self.instance,
                "--redis",
                url,
            ])
            .env("QUANTUM_JOURNAL_DIR", &self.journal)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file(&self.out, "redis-bridge.log")?)
            .spawn()
            .context("cannot start quantum bridge redis")?;
        Ok(Proc::new(child))
    }

    /// `cycles` times: `per` plans XADDed once each, then the Redis bridge paused for a
    /// second, the daemon killed and restarted, the bridge resumed.
    pub fn redis_phase(&mut self, cycles: u32, per: u32) -> Result<RedisReport> {
        // One launcher of redis-server for every test harness (REDIS_SERVER picks the binary).
        let server = RedisServer::launch(&quantum_local_redis::binary(), false, &[])
            .map_err(|e| anyhow!("{e} (install redis-server, or set REDIS_SERVER)"))?;
        let url = server.url();
        // The gateway fault answers 504 here (502 in the rounds).
        quantum_crash_test::http::post(
            &self.sim.rest,
            "/sim/faults",
            &serde_json::json!({"gatewayStatus": 504}),
        )?;
        let mut conn = redis::Client::open(url.as_str())?.get_connection()?;
        self.ensure_running(false)?;
        let group = quantum_redis::config::BridgeConfig::new(&self.instance, &url).group;
        let mut bridge = self.start_redis_bridge(&url)?;
        // The bridge makes its consumer group where the stream ends: a plan XADDed before
        // that would never be read (as in production, where the group exists already).
        let end = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(self.out.join("redis-bridge.log"))
            .unwrap_or_default()
            .contains("redis bridge attached")
        {
            if Instant::now() > end || bridge.exited() {
                bail!("quantum bridge redis did not attach within 30 s (see redis-bridge.log)");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut ids = Vec::new();
        for _ in 0..cycles {
            self.ensure_running(false)?;
            for _ in 0..per {
                // Each plan once: the feed's re-deliveries of old ids are left out here.
                let Some(Next::Plan(mut p)) = self.feed.next(&|_| false) else {
                    continue;
                };
                if self.fed.contains_key(&p.id.0) {
                    continue;
                }
                // Its leg's symbol, the plan naming the leg's side (see `World::leg_of`).
                let symbol = self.leg_of(&mut p);
                let label = self.symbols[usize::from(p.symbol.0)].clone();
                let id = p.id.to_string();
                let _: String = redis::cmd("XADD")
                    .arg(PLAN_STREAM)
                    .arg("*")
                    .arg(plan_entry_fields(&p, &symbol))
                    .query(&mut conn)?;
                let line = format!("{}\n", plan_entry_json(&p, &symbol));
                self.fed.entry(p.id.0).or_insert((label, p.decision, line));
                ids.push(id);
                self.tally.deliveries += 1;
            }
            std::thread::sleep(Duration::from_millis(self.rng.gen_range(0..300)));
            bridge.signal(libc::SIGSTOP);
            std::thread::sleep(Duration::from_secs(1));
            if let Some(mut d) = self.daemon.take() {
                d.kill();
            }
            *self.tally.kills.entry("daemon").or_default() += 1;
            self.start_daemon(false)?;
            bridge.signal(libc::SIGCONT);
        }
        // Every plan answered in Redis, nothing pending.
        let end = Instant::now() + Duration::from_secs(120);
        let (entries, per_plan, pending) = loop {
            let entries = results::result_entries(&mut conn)?;
            let per_plan = results::per_plan(&entries);
            let pending = results::pending(&mut conn, &group);
            let all = ids.iter().all(|id| per_plan.contains_key(id));
            if all && pending == 0 {
                // Anything late would come within a second.
                std::thread::sleep(Duration::from_secs(1));
                let again = results::result_entries(&mut conn)?;
                if again.len() == entries.len() {
                    break (entries.len() as u64, per_plan, pending);
                }
                continue;
            }
            if Instant::now() > end {
                let missing: Vec<&String> = ids
                    .iter()
                    .filter(|id| !per_plan.contains_key(*id))
                    .collect();
                bail!(
                    "the Redis phase did not settle within 120 s: {} plan(s) without a result entry (e.g. {:?}), {pending} pending (see redis-bridge.log)",
                    missing.len(),
                    &missing[..missing.len().min(5)]
                );
            }
            if bridge.exited() {
                return Err(anyhow!(
                    "quantum bridge redis exited (see redis-bridge.log)"
                ));
            }
            self.ensure_running(false)?;
            std::thread::sleep(Duration::from_millis(200));
        };
        bridge.term();
        drop(server);
        let not_once = ids
            .iter()
            .filter_map(|id| {
                let n = per_plan.get(id).copied().unwrap_or(0);
                (n != 1).then(|| (id.clone(), n))
            })
            .collect();
        Ok(RedisReport {
            plans: ids.len() as u64,
            pauses: cycles,
            entries,
            not_once,
            pending,
        })
    }
}
