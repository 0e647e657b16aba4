//! One "host" of the pair: its instance (daemon, Binance bridge, Redis bridge), its journal
//! and configuration, and what its lease segment says. Its processes are restarted when they
//! die, as systemd's `Restart=always` would.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use quantum_crash_test::procs::{self, log_file, Proc};
use quantum_ipc::lease::{boot_ns, Lease, LeaseReader};

use crate::settings::{Failover, FAILOVER, LEASE};

/// The processes of a host, in the order they start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Daemon,
    Binance,
    Redis,
}

/// Every kind, in start order.
pub const KINDS: [Kind; 3] = [Kind::Daemon, Kind::Binance, Kind::Redis];

impl Kind {
    /// `daemon`, `binance`, `redis` (log names and the summary).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Daemon => "daemon",
            Kind::Binance => "binance",
            Kind::Redis => "redis",
        }
    }

    fn idx(self) -> usize {
        self as usize
    }
}

/// A process that exits this soon after its start …
const QUICK_EXIT: Duration = Duration::from_secs(2);
/// … this many times in a row cannot start (a refused option or configuration): the run ends.
const QUICK_EXITS: u32 = 5;

/// What every host is started with.
pub struct Env {
    pub quantum: PathBuf,
    pub out: PathBuf,
    /// The simulator's REST URL (both hosts trade on its one account).
    pub rest: String,
    /// The one redis-server (same port across restarts).
    pub redis_url: String,
    /// Whether the daemons get `[failover]` and the Redis bridges the lease options.
    pub failover: bool,
}

/// A host.
pub struct Host {
    /// 0 or 1.
    pub idx: usize,
    /// `a` or `b` (log names).
    pub name: &'static str,
    /// `host-a`, `host-b`: the Redis bridge's `--host`.
    pub host: String,
    /// Its instance.
    pub instance: String,
    pub journal: PathBuf,
    pub config: PathBuf,
    /// The transport its Binance bridge places orders over, as the simulator's audit list
    /// names it (`rest`, `ws-api`): each host keeps one, so every order names its host.
    pub via: &'static str,
    procs: [Option<Proc>; 3],
    /// When a process that is down may start again (a kill's hold, a restart's pause).
    back_at: [Option<Instant>; 3],
    /// Starts per kind.
    pub starts: [u32; 3],
    /// Exits nobody asked for, per kind.
    pub exits: [u32; 3],
    /// When each process started.
    started_at: [Option<Instant>; 3],
    /// Exits in a row within [`QUICK_EXIT`] of the start, per kind.
    quick: [u32; 3],
    /// Its processes are stopped (SIGSTOP): nothing of it is restarted meanwhile.
    pub stopped: bool,
    lease: LeaseReader,
}

/// The daemon's configuration file of the test: the journal keeps every segment (so nothing a
/// check reads is removed) and, with failover, the short settings of [`FAILOVER`].
fn config_text(f: &Failover, failover: bool) -> String {
    let mut t =
        String::from("# Written by quantum-failover-test.\n[journal]\nkeep_segments = 1000\n");
    if failover {
        t.push_str(&format!(
            "\n[failover]\nenabled = true\nttl_ms = {}\nrenew_ms = {}\ndrift_ms = {}\nrecv_window_ms = {}\nclock_error_ms = {}\n",
            f.ttl_ms, f.renew_ms, f.drift_ms, f.recv_window_ms, f.clock_error_ms
        ));
    }
    t
}

impl Host {
    /// Host `idx` (0: `a`, REST; 1: `b`, WebSocket API): writes its configuration file.
    pub fn new(idx: usize, env: &Env) -> Result<Host> {
        let name = ["a", "b"][idx];
        let instance = format!("fo{}-{name}", std::process::id());
        let config = env.out.join(format!("{name}.toml"));
        std::fs::write(&config, config_text(&FAILOVER, env.failover))
            .with_context(|| format!("cannot write {}", config.display()))?;
        Ok(Host {
            idx,
            name,
            host: format!("host-{name}"),
            journal: env.out.join(format!("journal-{name}")),
            config,
            via: ["rest", "ws-api"][idx],
            procs: [None, None, None],
            back_at: [None; 3],
            starts: [0; 3],
            exits: [0; 3],
            started_at: [None; 3],
            quick: [0; 3],
            stopped: false,
            lease: LeaseReader::new(&instance),
            instance,
        })
    }

    /// The log of the `n`th start of `kind`.
    pub fn log_name(&self, kind: Kind, n: u32) -> String {
        format!("{}-{}-{n:03}.log", self.name, kind.name())
    }

    /// The log of the running (or last) `kind`.
    pub fn current_log(&self, out: &Path, kind: Kind) -> PathBuf {
        out.join(self.log_name(kind, self.starts[kind.idx()].saturating_sub(1)))
    }

    fn command(&self, kind: Kind, env: &Env) -> Command {
        let mut cmd = Command::new(&env.quantum);
        match kind {
            Kind::Daemon => {
                cmd.args(["run", "--instance", &self.instance, "--quiet", "--config"])
                    .arg(&self.config)
                    .arg("--journal-dir")
                    .arg(&self.journal);
            }
            Kind::Binance => {
                cmd.args([
                    "bridge",
                    "binance",
                    "--instance",
                    &self.instance,
                    "--rest-url",
                    &env.rest,
                    "--recv-window-ms",
                    &FAILOVER.recv_window_ms.to_string(),
                    "--poll-ms",
                    "1000",
                ]);
                if self.via == "ws-api" {
                    cmd.arg("--ws-api");
                }
                cmd.env("BINANCE_API_KEY", quantum_binance_sim::TEST_API_KEY)
                    .env("BINANCE_API_SECRET", quantum_binance_sim::TEST_API_SECRET);
            }
            Kind::Redis => {
                cmd.args([
                    "bridge",
                    "redis",
                    "--instance",
                    &self.instance,
                    "--redis",
                    &env.redis_url,
                    // Entries another consumer left pending are claimed after 5 s, not the
                    // default 30 s, so a run ends in about a minute.
                    "--claim-idle-ms",
                    "5000",
                    "--claim-every-ms",
                    "1000",
                ])
                .arg("--journal-dir")
                .arg(&self.journal);
                if env.failover {
                    cmd.args(["--host", &self.host, "--lease", LEASE]);
                }
            }
        }
        cmd.env("RUST_LOG", "info").stdout(Stdio::null());
        cmd
    }

    /// Starts `kind`; a daemon is waited for until it has recovered (or died trying).
    pub fn start(&mut self, kind: Kind, env: &Env) -> Result<()> {
        let n = self.starts[kind.idx()];
        self.starts[kind.idx()] += 1;
        let log = self.log_name(kind, n);
        let child = self
            .command(kind, env)
            .stderr(log_file(&env.out, &log)?)
            .spawn()
            .with_context(|| format!("cannot start {log}"))?;
        self.procs[kind.idx()] = Some(Proc::new(child));
        self.back_at[kind.idx()] = None;
        self.started_at[kind.idx()] = Some(Instant::now());
        if kind == Kind::Daemon {
            let end = Instant::now() + Duration::from_secs(60);
            while !procs::daemon_ready(&self.instance) {
                if self.procs[kind.idx()].as_mut().is_some_and(Proc::exited) {
                    return Ok(());
                }
                if Instant::now() > end {
                    bail!("quantum run did not start within 60 s (see {log})");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// Restarts what exited (after 300 ms, as `RestartSec` would) and what a kill held down
    /// once its hold is over; nothing while the host is stopped.
    pub fn supervise(&mut self, env: &Env) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        let now = Instant::now();
        for kind in KINDS {
            let i = kind.idx();
            if let Some(p) = &mut self.procs[i] {
                if p.exited() {
                    self.procs[i] = None;
                    self.exits[i] += 1;
                    self.back_at[i] = Some(now + Duration::from_millis(300));
                    let lived = self.started_at[i].map_or(Duration::ZERO, |t| now - t);
                    if lived < QUICK_EXIT {
                        self.quick[i] += 1;
                    } else {
                        self.quick[i] = 0;
                    }
                    if self.quick[i] >= QUICK_EXITS {
                        let log = self.current_log(&env.out, kind);
                        let text = std::fs::read_to_string(&log).unwrap_or_default();
                        bail!(
                            "{} exited {QUICK_EXITS} times in a row within {} ms of its start; the last said: {}",
                            log.display(),
                            QUICK_EXIT.as_millis(),
                            text.lines().last().unwrap_or("(nothing)")
                        );
                    }
                }
            }
            if self.procs[i].is_none() && self.back_at[i].is_none_or(|t| now >= t) {
                self.start(kind, env)?;
            }
        }
        Ok(())
    }

    /// Whether every process runs.
    pub fn complete(&self) -> bool {
        self.procs.iter().all(Option::is_some)
    }

    /// `kill -9` of `kind`, held down for `hold`.
    pub fn kill(&mut self, kind: Kind, hold: Duration) {
        if let Some(mut p) = self.procs[kind.idx()].take() {
            p.kill();
        }
        self.back_at[kind.idx()] = Some(Instant::now() + hold);
    }

    /// Sends `sig` to every process of the host.
    pub fn signal_all(&self, sig: i32) {
        for p in self.procs.iter().flatten() {
            p.signal(sig);
        }
    }

    /// What its lease segment says now.
    pub fn lease(&mut self) -> Option<Lease> {
        self.lease.read()
    }

    /// Whether it leads now (role leader, deadline not passed).
    pub fn leads(&mut self) -> bool {
        let now = boot_ns();
        self.lease().is_some_and(|l| l.leads(now))
    }

    /// Whether it acts now: it may send, and its daemon has taken the lead under the lease's
    /// epoch (before that its book is the one from its last lead: a standby's is not kept).
    pub fn acting(&mut self) -> bool {
        let now = boot_ns();
        let Some(l) = self.lease().filter(|l| l.may_send(now)) else {
            return false;
        };
        quantum_ipc::CountersReader::open(&self.instance).is_ok_and(|c| {
            c.owner_alive()
                && c.get("failover.role") == Some(1)
                && c.get("failover.epoch") == Some(l.epoch)
        })
    }

    /// Kills everything (resumed first if stopped).
    pub fn shutdown(&mut self) {
        if self.stopped {
            self.signal_all(libc::SIGCONT);
            self.stopped = false;
        }
        for p in self.procs.iter_mut().rev() {
            if let Some(mut p) = p.take() {
                p.kill();
            }
        }
    }
}

impl Drop for Host {
    /// No process of it is left running and its shared-memory segments are removed.
    fn drop(&mut self) {
        self.shutdown();
        for seg in quantum_ipc::list_segments(Some(&self.instance)).unwrap_or_default() {
            let _ = quantum_ipc::remove_segment(&seg.os_id);
        }
    }
}
