//! The failover lease, held in Redis by this bridge for its host, and published for the host's
//! other processes in the lease segment ([`quantum_ipc::lease`]).
//!
//! Used only when the daemon's counters say `failover.enabled` = 1 (its `[failover]` settings,
//! [`Settings`]). Keys (the lease name is `--lease`, default the instance):
//!
//! | key | content |
//! |---|---|
//! | [`lease_key`] `quantum:leader:<lease>` | `"<host> <epoch>"`, expiring after the TTL |
//! | [`epoch_key`] `quantum:leader:<lease>:epoch` | the last epoch handed out (`INCR`) |
//!
//! Scripts (one round trip each, atomic in Redis):
//! - [`ACQUIRE_SCRIPT`]: when the key is absent, `INCR` the epoch key and
//!   `SET <lease key> "<host> <epoch>" NX PX <ttl>`; returns `{epoch}`, or `{0, value, pttl}`
//!   of the holder;
//! - [`RENEW_SCRIPT`]: `PEXPIRE` only if the value is ours; returns 1, the other value, or 0
//!   when the key is gone;
//! - [`RELEASE_SCRIPT`]: `DEL` only if the value is ours; returns 1 when deleted.
//!
//! The instants are [`boot_ns`]: the deadline is the start of the last successful renewal (or
//! acquisition) request + TTL − drift; the fence (`trade_after_ns`) the start of the
//! acquisition request + TTL + recvWindow + clock error. A standby tries to acquire every
//! min(renew, TTL/4); a leader renews every `renew_ms` while its daemon lives (or has been
//! gone less than a TTL: a restart), and steps down at once when a renewal finds another value,
//! when its deadline passes without a successful renewal, or when a write of the bridge was
//! fenced ([`LeaseHandle::fenced`]). SIGUSR1 ([`LeaseHandle::release`]) hands the lease over:
//! claims stop, the plans in flight get their results (10 s at most), then the key is deleted
//! and this host does not acquire again for 2×TTL.
//!
//! Log lines an operator (and the failover test) looks for: `acquired the lease` (epoch,
//! fence_ms), `took over` (epoch, takeover_ms: from the old lease's end to this host's first
//! result entry), `stepped down` (warn; epoch, why), `released the lease` (epoch).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quantum_ipc::lease::{boot_ns, settings, Lease, LeaseRole, LeaseWriter};
use quantum_ipc::CountersReader;
use redis::aio::MultiplexedConnection;
use redis::Value;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::conn::{Made, Redis, Target};
use crate::error::{Error, Result};
use crate::stats::Stats;

/// The lease key: `quantum:leader:<lease>`.
pub fn lease_key(lease: &str) -> String {
    format!("quantum:leader:{lease}")
}

/// The epoch counter: `quantum:leader:<lease>:epoch`.
pub fn epoch_key(lease: &str) -> String {
    format!("quantum:leader:{lease}:epoch")
}

/// The lease's value for `host` under `epoch`.
pub fn lease_value(host: &str, epoch: u64) -> String {
    format!("{host} {epoch}")
}

/// The host and epoch of a lease value.
pub fn parse_value(v: &str) -> (String, u64) {
    match v.rsplit_once(' ') {
        Some((h, e)) => (h.to_owned(), e.parse().unwrap_or(0)),
        None => (v.to_owned(), 0),
    }
}

/// Acquires the lease when nobody holds it. `KEYS`: lease key, epoch key; `ARGV`: host, TTL
/// (ms). Returns `{epoch}` when acquired, else `{0, value, pttl}` of the holder.
pub const ACQUIRE_SCRIPT: &str = r"
local v = redis.call('GET', KEYS[1])
if v then
  return {0, v, redis.call('PTTL', KEYS[1])}
end
local e = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. e, 'NX', 'PX', ARGV[2])
return {e}
";

/// Renews the lease only if it is ours. `KEYS`: lease key; `ARGV`: our value, TTL (ms).
/// Returns 1 when renewed, the value found when another holds it, 0 when the key is gone.
pub const RENEW_SCRIPT: &str = r"
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if v then
  return v
end
return 0
";

/// Deletes the lease only if it is ours. `KEYS`: lease key; `ARGV`: our value. Returns 1
/// when deleted.
pub const RELEASE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// What an acquisition attempt found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acquired {
    /// This host holds the lease now, under this epoch.
    Epoch(u64),
    /// Another value holds it, for `pttl_ms` more (negative: no expiry, or gone meanwhile).
    Held {
        /// The holder's value (`"<host> <epoch>"`).
        value: String,
        /// Its time to live (ms).
        pttl_ms: i64,
    },
}

/// What a renewal found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Renewed {
    /// Renewed.
    Ours,
    /// Another value holds the lease.
    Other(String),
    /// The key is gone (expired, or lost in a Redis failover).
    Gone,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

fn unexpected(what: &str, v: &Value) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected script reply",
        format!("{what}: {v:?}"),
    ))
}

/// Runs [`ACQUIRE_SCRIPT`] for `host`.
pub async fn acquire(
    c: &mut MultiplexedConnection,
    lease: &str,
    host: &str,
    ttl_ms: u64,
) -> redis::RedisResult<Acquired> {
    let v: Value = redis::Script::new(ACQUIRE_SCRIPT)
        .key(lease_key(lease))
        .key(epoch_key(lease))
        .arg(host)
        .arg(ttl_ms)
        .invoke_async(c)
        .await?;
    let Value::Array(parts) = &v else {
        return Err(unexpected("acquire", &v));
    };
    match parts.as_slice() {
        [Value::Int(e)] if *e > 0 => Ok(Acquired::Epoch(*e as u64)),
        [Value::Int(0), value, Value::Int(pttl)] => Ok(Acquired::Held {
            value: text(value).ok_or_else(|| unexpected("acquire", &v))?,
            pttl_ms: *pttl,
        }),
        _ => Err(unexpected("acquire", &v)),
    }
}

/// Runs [`RENEW_SCRIPT`] for our `value`.
pub async fn renew(
    c: &mut MultiplexedConnection,
    lease: &str,
    value: &str,
    ttl_ms: u64,
) -> redis::RedisResult<Renewed> {
    let v: Value = redis::Script::new(RENEW_SCRIPT)
        .key(lease_key(lease))
        .arg(value)
        .arg(ttl_ms)
        .invoke_async(c)
        .await?;
    match &v {
        Value::Int(1) => Ok(Renewed::Ours),
        Value::Int(0) => Ok(Renewed::Gone),
        other => text(other)
            .map(Renewed::Other)
            .ok_or_else(|| unexpected("renew", &v)),
    }
}

/// Runs [`RELEASE_SCRIPT`] for our `value`; true when the key was deleted.
pub async fn release(
    c: &mut MultiplexedConnection,
    lease: &str,
    value: &str,
) -> redis::RedisResult<bool> {
    let n: i64 = redis::Script::new(RELEASE_SCRIPT)
        .key(lease_key(lease))
        .arg(value)
        .invoke_async(c)
        .await?;
    Ok(n == 1)
}

/// The daemon's failover settings, read from its counters segment at attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The lease's time to live (ms).
    pub ttl_ms: u64,
    /// How often the leader renews (ms).
    pub renew_ms: u64,
    /// Taken off the deadline for clock-rate drift (ms).
    pub drift_ms: u64,
    /// The orders' recvWindow (ms).
    pub recv_window_ms: u64,
    /// The assumed bound on the hosts' and the exchange's clock difference (ms).
    pub clock_error_ms: u64,
}

const MS: u64 = 1_000_000;

impl Settings {
    /// `None` when failover is off (the gauge absent or 0); an error when it is on and a
    /// setting is missing or does not make sense.
    pub fn from_counters(c: &CountersReader) -> Result<Option<Settings>, String> {
        if c.get(settings::ENABLED).unwrap_or(0) == 0 {
            return Ok(None);
        }
        let get = |label: &str| {
            c.get(label).ok_or_else(|| {
                format!(
                    "the daemon publishes {} = 1 but not {label}",
                    settings::ENABLED
                )
            })
        };
        let s = Settings {
            ttl_ms: get(settings::TTL_MS)?,
            renew_ms: get(settings::RENEW_MS)?,
            drift_ms: get(settings::DRIFT_MS)?,
            recv_window_ms: get(settings::RECV_WINDOW_MS)?,
            clock_error_ms: get(settings::CLOCK_ERROR_MS)?,
        };
        s.check()?;
        Ok(Some(s))
    }

    /// The renewal must come well within the TTL, and the drift margin inside it.
    pub fn check(&self) -> Result<(), String> {
        if self.ttl_ms == 0 || self.renew_ms == 0 || self.renew_ms >= self.ttl_ms {
            return Err(format!(
                "failover: renew_ms ({}) must be at least 1 and below ttl_ms ({})",
                self.renew_ms, self.ttl_ms
            ));
        }
        if self.drift_ms >= self.ttl_ms {
            return Err(format!(
                "failover: drift_ms ({}) must be below ttl_ms ({})",
                self.drift_ms, self.ttl_ms
            ));
        }
        Ok(())
    }

    /// The deadline of a renewal (or acquisition) whose request started at `t0`.
    pub fn deadline(&self, t0: u64) -> u64 {
        t0 + (self.ttl_ms - self.drift_ms) * MS
    }

    /// The fence of an acquisition whose request started at `t0`.
    pub fn trade_after(&self, t0: u64) -> u64 {
        t0 + (self.ttl_ms + self.recv_window_ms + self.clock_error_ms) * MS
    }

    /// How often a standby tries to acquire.
    pub fn try_every_ns(&self) -> u64 {
        self.renew_ms.min(self.ttl_ms / 4).max(1) * MS
    }
}

/// How long a planned hand-over waits for the plans in flight.
pub const DRAIN_FOR: Duration = Duration::from_secs(10);
/// How often the lease is published without a change (its `updated_ns`).
const PUBLISH_EVERY_NS: u64 = 100 * MS;

/// The takeover under way: its epoch, when the old lease ended, and whether its first result
/// was reported.
#[derive(Debug, Default)]
struct Takeover {
    epoch: u64,
    since_ns: u64,
    trade_after_ns: u64,
    reported: bool,
}

/// What the lease task and the bridge's session and stream reader share.
#[derive(Debug, Default)]
struct Shared {
    /// A planned hand-over is draining: no more claims.
    draining: AtomicBool,
    /// Plan entries this host pushed whose result is not written yet (the session's count).
    outstanding: AtomicUsize,
    /// A write of the session was fenced (another host holds a newer epoch).
    fenced: AtomicBool,
    /// SIGUSR1: hand the lease over.
    release: AtomicBool,
    /// Wakes the lease task for one of the flags above.
    wake: Notify,
    takeover: Mutex<Takeover>,
    /// The last takeover measured (ms).
    takeover_ms: AtomicU64,
}

// Every flag and count of `Shared` is a whole message on its own (nothing else is published
// through it, and the task re-reads them after each wake-up): Relaxed loads and stores.
const FLAG: Ordering = Ordering::Relaxed;

/// This process's view of the lease, for the session and the stream reader.
#[derive(Clone, Debug)]
pub struct LeaseHandle {
    rx: watch::Receiver<Lease>,
    shared: Arc<Shared>,
}

impl LeaseHandle {
    /// What the task published last.
    pub fn lease(&self) -> Lease {
        self.rx.borrow().clone()
    }

    /// The epoch this host leads under now (role leader, deadline not passed).
    pub fn leads(&self) -> Option<u64> {
        let l = self.rx.borrow();
        l.leads(boot_ns()).then_some(l.epoch)
    }

    /// The epoch this host may send under now ([`Lease::may_send`]).
    pub fn may_send(&self) -> Option<u64> {
        let l = self.rx.borrow();
        l.may_send(boot_ns()).then_some(l.epoch)
    }

    /// The epoch this host may claim plan entries under now: [`Lease::may_send`] and no
    /// planned hand-over draining.
    pub fn acting(&self) -> Option<u64> {
        if self.shared.draining.load(FLAG) {
            return None;
        }
        self.may_send()
    }

    /// Waits until this host may claim ([`LeaseHandle::acting`]); its epoch.
    pub async fn wait_acting(&self) -> u64 {
        let mut rx = self.rx.clone();
        loop {
            if let Some(e) = self.acting() {
                return e;
            }
            // The fence passes by time alone: wake then, or at a change, or in 100 ms.
            let step = Duration::from_millis(100);
            let wait = rx
                .borrow_and_update()
                .fence_left(boot_ns())
                .filter(|d| !d.is_zero())
                .map_or(step, |d| d.min(step));
            tokio::select! {
                r = rx.changed() => if r.is_err() { tokio::time::sleep(wait).await },
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// How long a blocking read may block now: up to `max`, never past the deadline (1 ms
    /// at least: 0 would block for ever).
    pub fn block_for(&self, max: Duration) -> Duration {
        let left = self.rx.borrow().deadline_ns.saturating_sub(boot_ns());
        max.min(Duration::from_nanos(left))
            .max(Duration::from_millis(1))
    }

    /// A write was fenced: this host steps down at once.
    pub fn fenced(&self) {
        self.shared.fenced.store(true, FLAG);
        self.shared.wake.notify_one();
    }

    /// Hands the lease over (SIGUSR1): stops claiming, waits for the plans in flight, deletes
    /// the key.
    pub fn release(&self) {
        self.shared.release.store(true, FLAG);
        self.shared.wake.notify_one();
    }

    /// The session's count of plan entries pushed whose result is not written yet.
    pub fn set_outstanding(&self, n: usize) {
        self.shared.outstanding.store(n, FLAG);
    }

    /// Result entries were written: the first ones after the fence of a takeover measure it
    /// (logged `took over`); its takeover time (ms) then.
    pub fn results_written(&self) -> Option<u64> {
        let now = boot_ns();
        let epoch = self.leads()?;
        let mut t = self.shared.takeover.lock().ok()?;
        if t.reported || t.epoch != epoch || now < t.trade_after_ns {
            return None;
        }
        t.reported = true;
        let ms = now.saturating_sub(t.since_ns) / MS;
        self.shared.takeover_ms.store(ms, FLAG);
        self.shared.wake.notify_one();
        tracing::info!(epoch, takeover_ms = ms, "took over");
        Some(ms)
    }
}

/// The lease task's names.
#[derive(Clone, Debug)]
pub struct Names {
    /// The instance (its daemon's counters, its lease segment).
    pub instance: String,
    /// The lease's name in Redis.
    pub lease: String,
    /// This host.
    pub host: String,
}

/// The running lease task.
#[derive(Debug)]
pub struct Running {
    /// Its view, for the session.
    pub handle: LeaseHandle,
    /// The task (ends when the bridge stops, after giving the lease up).
    pub task: JoinHandle<()>,
}

/// Creates the lease segment (standby, epoch 0) and starts the task; it runs until `stop`.
pub fn start(
    names: Names,
    s: Settings,
    target: impl Into<Target>,
    stats: Arc<Stats>,
    stop: watch::Receiver<bool>,
) -> Result<Running> {
    let writer = LeaseWriter::create(&names.instance).map_err(|source| Error::Ipc {
        instance: names.instance.clone(),
        source,
    })?;
    let now = boot_ns();
    let lease = Lease {
        role: LeaseRole::Standby,
        epoch: 0,
        deadline_ns: 0,
        trade_after_ns: 0,
        acquired_ns: 0,
        renewed_ns: 0,
        ttl_ms: s.ttl_ms,
        recv_window_ms: s.recv_window_ms,
        host: names.host.clone(),
        other: String::new(),
        takeover_ms: 0,
        updated_ns: now,
    };
    writer.publish(&lease);
    let (tx, rx) = watch::channel(lease.clone());
    let shared = Arc::new(Shared::default());
    tracing::info!(
        lease = %lease_key(&names.lease),
        host = %names.host,
        ttl_ms = s.ttl_ms,
        renew_ms = s.renew_ms,
        drift_ms = s.drift_ms,
        recv_window_ms = s.recv_window_ms,
        clock_error_ms = s.clock_error_ms,
        segment = %writer.os_id(),
        "failover on: this bridge holds the lease for its host"
    );
    let task = Task {
        names,
        s,
        target: target.into(),
        conn: None,
        writer,
        tx,
        shared: shared.clone(),
        stats,
        lease,
        value: String::new(),
        expiry_seen_ns: None,
        hold_off_until: 0,
        next_try: now,
        next_renew: 0,
        daemon: None,
        daemon_gone_since: None,
        lapsing: false,
        draining_since: None,
        redis_down: false,
    };
    let task = tokio::spawn(task.run(stop));
    Ok(Running {
        handle: LeaseHandle { rx, shared },
        task,
    })
}

struct Task {
    names: Names,
    s: Settings,
    target: Target,
    conn: Option<(MultiplexedConnection, Made)>,
    writer: LeaseWriter,
    tx: watch::Sender<Lease>,
    shared: Arc<Shared>,
    stats: Arc<Stats>,
    /// What is published.
    lease: Lease,
    /// Our value in Redis while leading.
    value: String,
    /// When the lease another host holds is expected to expire (seen by a standby).
    expiry_seen_ns: Option<u64>,
    /// No acquisition before this (after a planned release).
    hold_off_until: u64,
    next_try: u64,
    next_renew: u64,
    daemon: Option<CountersReader>,
    daemon_gone_since: Option<u64>,
    /// The local daemon is gone for longer than a TTL: the lease is let lapse (logged once).
    lapsing: bool,
    draining_since: Option<u64>,
    redis_down: bool,
}

impl Task {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                break;
            }
            self.step().await;
            let now = boot_ns();
            let due = if self.lease.role == LeaseRole::Leader {
                self.next_renew.min(self.lease.deadline_ns)
            } else {
                self.next_try.max(self.hold_off_until)
            };
            let wait = Duration::from_nanos(due.saturating_sub(now))
                .min(Duration::from_millis(20))
                .max(Duration::from_millis(1));
            tokio::select! {
                // A stop sender that went away stops the task too.
                r = stop.changed() => if r.is_err() { break },
                _ = self.shared.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        if self.lease.role == LeaseRole::Leader {
            self.give_up("the bridge is stopping").await;
        }
    }

    fn publish(&mut self) {
        self.lease.updated_ns = boot_ns();
        self.lease.takeover_ms = self.shared.takeover_ms.load(FLAG);
        self.writer.publish(&self.lease);
        self.tx.send_replace(self.lease.clone());
    }

    /// A connection of the task's own: its requests never queue behind the bridge's writes.
    async fn conn(&mut self) -> Option<MultiplexedConnection> {
        if let Some((c, made)) = &self.conn {
            // After a Redis failover the lease lives on the master the sentinels name now.
            if !self.target.moved(made) {
                return Some(c.clone());
            }
            tracing::info!(lease = %lease_key(&self.names.lease), redis = %self.target.shown(), "lease: the sentinels name another master; connecting to it");
            self.conn = None;
        }
        let block = Duration::from_millis(self.s.ttl_ms);
        match tokio::time::timeout(block, Redis::dedicated(&self.target, Duration::ZERO)).await {
            Ok(Ok((c, made))) => {
                self.conn = Some((c.clone(), made));
                Some(c)
            }
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                None
            }
            Err(_) => {
                self.failed("connecting timed out");
                None
            }
        }
    }

    fn failed(&mut self, why: &str) {
        self.conn = None;
        Stats::inc(&self.stats.redis_errors);
        if !self.redis_down {
            self.redis_down = true;
            tracing::warn!(lease = %lease_key(&self.names.lease), error = why, "lease: Redis failed; retrying");
        }
    }

    fn ok(&mut self) {
        if self.redis_down {
            self.redis_down = false;
            tracing::info!(lease = %lease_key(&self.names.lease), "lease: Redis reachable again");
        }
    }

    /// Whether the local daemon lives (or has been gone less than a TTL).
    fn daemon_ok(&mut self, now: u64) -> (bool, bool) {
        let alive = self
            .daemon
            .as_ref()
            .is_some_and(CountersReader::owner_alive)
            || {
                self.daemon = CountersReader::open(&self.names.instance).ok();
                self.daemon
                    .as_ref()
                    .is_some_and(CountersReader::owner_alive)
            };
        if alive {
            self.daemon_gone_since = None;
            if self.lapsing {
                self.lapsing = false;
                tracing::info!("the local daemon is back");
            }
            return (true, true);
        }
        let since = *self.daemon_gone_since.get_or_insert(now);
        (false, now.saturating_sub(since) < self.s.ttl_ms * MS)
    }

    async fn step(&mut self) {
        let now = boot_ns();
        let (alive, may_renew) = self.daemon_ok(now);
        if self.lease.role == LeaseRole::Leader {
            if self.shared.fenced.swap(false, FLAG) {
                self.step_down("a write was fenced: another host holds a newer epoch");
                return;
            }
            if self.shared.release.swap(false, FLAG) && self.draining_since.is_none() {
                self.draining_since = Some(now);
                self.shared.draining.store(true, FLAG);
                tracing::info!(
                    epoch = self.lease.epoch,
                    outstanding = self.shared.outstanding.load(FLAG),
                    "releasing the lease: no more claims; waiting for the results of the plans in flight"
                );
            }
            if let Some(since) = self.draining_since {
                let left = self.shared.outstanding.load(FLAG);
                let waited = now.saturating_sub(since);
                if left == 0 || waited >= DRAIN_FOR.as_nanos() as u64 {
                    if left > 0 {
                        tracing::warn!(left, "plans still without a result after 10 s: they stay pending for the other host");
                    }
                    self.give_up("planned hand-over (SIGUSR1)").await;
                    self.hold_off_until = boot_ns() + 2 * self.s.ttl_ms * MS;
                    return;
                }
            }
            if !may_renew && !self.lapsing {
                self.lapsing = true;
                tracing::warn!(epoch = self.lease.epoch, "the local daemon has been gone longer than the TTL: not renewing; the lease lapses");
            }
            if may_renew && now >= self.next_renew {
                self.renew(now).await;
            }
            if self.lease.role == LeaseRole::Leader && boot_ns() >= self.lease.deadline_ns {
                let why = if self.lapsing {
                    "the local daemon is gone"
                } else {
                    "no successful renewal before the deadline (Redis unreachable?)"
                };
                self.step_down(why);
                return;
            }
        } else {
            self.shared.fenced.store(false, FLAG);
            if self.shared.release.swap(false, FLAG) {
                tracing::info!("SIGUSR1: this host does not lead; nothing to release");
            }
            if alive && now >= self.next_try && now >= self.hold_off_until {
                self.next_try = now + self.s.try_every_ns();
                self.try_acquire().await;
            }
        }
        if boot_ns().saturating_sub(self.lease.updated_ns) >= PUBLISH_EVERY_NS
            || self.lease.takeover_ms != self.shared.takeover_ms.load(FLAG)
        {
            self.publish();
        }
    }

    async fn try_acquire(&mut self) {
        let Some(mut c) = self.conn().await else {
            return;
        };
        let t0 = boot_ns();
        let budget = Duration::from_millis(self.s.ttl_ms / 2);
        let r = tokio::time::timeout(
            budget,
            acquire(&mut c, &self.names.lease, &self.names.host, self.s.ttl_ms),
        )
        .await;
        let now = boot_ns();
        match r {
            Ok(Ok(Acquired::Epoch(epoch))) => {
                self.ok();
                let since = self.expiry_seen_ns.take().map_or(t0, |x| x.min(t0));
                self.value = lease_value(&self.names.host, epoch);
                self.lease.role = LeaseRole::Leader;
                self.lease.epoch = epoch;
                self.lease.acquired_ns = t0;
                self.lease.renewed_ns = t0;
                self.lease.deadline_ns = self.s.deadline(t0);
                self.lease.trade_after_ns = self.s.trade_after(t0);
                self.lease.other = String::new();
                self.next_renew = t0 + self.s.renew_ms * MS;
                if let Ok(mut t) = self.shared.takeover.lock() {
                    *t = Takeover {
                        epoch,
                        since_ns: since,
                        trade_after_ns: self.lease.trade_after_ns,
                        reported: false,
                    };
                }
                self.publish();
                tracing::info!(
                    epoch,
                    host = %self.names.host,
                    fence_ms = (self.lease.trade_after_ns - t0) / MS,
                    "acquired the lease"
                );
            }
            Ok(Ok(Acquired::Held { value, pttl_ms })) => {
                self.ok();
                let (other, epoch) = parse_value(&value);
                if pttl_ms > 0 {
                    self.expiry_seen_ns = Some(now + pttl_ms as u64 * MS);
                }
                if other != self.lease.other || epoch != self.lease.epoch {
                    tracing::info!(holder = %other, epoch, "the lease is held by another host; standing by");
                    self.lease.other = other;
                    self.lease.epoch = epoch;
                    self.publish();
                }
            }
            Ok(Err(e)) => self.failed(&e.to_string()),
            Err(_) => self.failed("acquisition timed out"),
        }
    }

    async fn renew(&mut self, now: u64) {
        let Some(mut c) = self.conn().await else {
            self.next_renew = now + 100 * MS;
            return;
        };
        let t0 = boot_ns();
        // Back by the deadline whatever Redis does.
        let budget = Duration::from_nanos(self.lease.deadline_ns.saturating_sub(t0))
            .min(Duration::from_millis(self.s.ttl_ms / 2));
        let r = tokio::time::timeout(
            budget,
            renew(&mut c, &self.names.lease, &self.value, self.s.ttl_ms),
        )
        .await;
        match r {
            Ok(Ok(Renewed::Ours)) => {
                self.ok();
                self.lease.renewed_ns = t0;
                self.lease.deadline_ns = self.s.deadline(t0);
                self.next_renew = t0 + self.s.renew_ms * MS;
                self.publish();
            }
            Ok(Ok(Renewed::Other(v))) => {
                self.ok();
                let (other, _) = parse_value(&v);
                self.step_down(&format!("the lease is held by {other} ({v})"));
                self.lease.other = other;
                self.publish();
            }
            Ok(Ok(Renewed::Gone)) => {
                self.ok();
                self.step_down("the lease key is gone (expired, or lost by Redis)");
            }
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                self.next_renew = boot_ns() + 100 * MS;
            }
            Err(_) => {
                self.failed("renewal timed out");
                self.next_renew = boot_ns() + 100 * MS;
            }
        }
    }

    fn standby(&mut self, deadline_ns: u64) {
        self.lease.role = LeaseRole::Standby;
        self.lease.deadline_ns = deadline_ns;
        self.lease.trade_after_ns = 0;
        self.lease.acquired_ns = 0;
        self.draining_since = None;
        self.shared.draining.store(false, FLAG);
        self.publish();
    }

    fn step_down(&mut self, why: &str) {
        self.standby(0);
        Stats::inc(&self.stats.lease_stepped_down);
        tracing::warn!(epoch = self.lease.epoch, host = %self.names.host, why, "stepped down");
    }

    /// Publishes standby with deadline now and deletes the key if it is ours.
    async fn give_up(&mut self, why: &str) {
        let epoch = self.lease.epoch;
        self.standby(boot_ns());
        let deleted = match self.conn().await {
            Some(mut c) => {
                let budget = Duration::from_millis(self.s.ttl_ms / 2);
                match tokio::time::timeout(budget, release(&mut c, &self.names.lease, &self.value))
                    .await
                {
                    Ok(Ok(d)) => d,
                    Ok(Err(e)) => {
                        self.failed(&e.to_string());
                        false
                    }
                    Err(_) => {
                        self.failed("release timed out");
                        false
                    }
                }
            }
            None => false,
        };
        tracing::info!(epoch, host = %self.names.host, deleted, why, "released the lease");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_and_fences_follow_the_settings() {
        let s = Settings {
            ttl_ms: 3000,
            renew_ms: 1000,
            drift_ms: 200,
            recv_window_ms: 1000,
            clock_error_ms: 250,
        };
        assert!(s.check().is_ok());
        assert_eq!(s.deadline(10), 10 + 2_800 * MS);
        assert_eq!(s.trade_after(10), 10 + 4_250 * MS);
        assert_eq!(s.try_every_ns(), 750 * MS);
        assert!(Settings {
            renew_ms: 3000,
            ..s
        }
        .check()
        .is_err());
        assert!(Settings {
            drift_ms: 3000,
            ..s
        }
        .check()
        .is_err());
    }

    #[test]
    fn values_name_the_host_and_the_epoch() {
        assert_eq!(lease_value("db2", 7), "db2 7");
        assert_eq!(parse_value("db2 7"), ("db2".into(), 7));
        assert_eq!(lease_key("prod"), "quantum:leader:prod");
        assert_eq!(epoch_key("prod"), "quantum:leader:prod:epoch");
    }
}
