//! `quantum bridge redis`: arguments and the entry point.

use std::time::Duration;

use crate::config::{BridgeConfig, GroupStart, PermitsFrom};

/// Shown by `quantum bridge redis --help`.
pub const EXAMPLES: &str = "Examples:
  quantum bridge redis --instance prod1 --redis redis://127.0.0.1:6379/0
  REDIS_URL=rediss://bridge:secret@cache.internal:6380/0 quantum bridge redis --instance prod1
  quantum bridge redis --instance prod1 --redis redis+sentinel://10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379/mymaster/0
  quantum bridge redis --instance prod1 --permits-from redis   # legacy Governor and P3.3 issue the permits
  quantum bridge redis --instance prod1 --host db2 --lease prod   # failover ([failover] enabled in the daemon's config): both hosts run it with --lease prod
  quantum bridge redis --instance prod1 --hdr-log /var/log/quantum/prod1-redis.hlog   # the legacy path's latency, interval by interval

The legacy path's latency (XADD -> permit keys -> result entry), while it runs:
  quantum ctl latency --instance prod1          # rows redis.entry_result, redis.entry_permits, redis.plan_result, redis.read_result

The operators' commands keep working:
  redis-cli XADD quantum:stream:apply.plan '*' plan_id f1a8d7f48713d5cf symbol BTCUSDT decision EXECUTE action PARTIAL_75 kill_score 0.539
  redis-cli GET quantum:permit:p33:f1a8d7f48713d5cf
  redis-cli HSET quantum:position:BTCUSDT ledger_amount 0.062
  redis-cli XREVRANGE quantum:stream:apply.result + - COUNT 3
  redis-cli HGETALL quantum:bridge:prod1:stats          # the bridge's counts";

/// Arguments of `quantum bridge redis`.
#[derive(Debug, Clone, clap::Args)]
pub struct RedisBridgeArgs {
    /// The `quantum run` instance whose `plans` and `results` rings to attach.
    #[arg(long, default_value = "default")]
    pub instance: String,
    /// Redis URL, one of:
    /// `redis://[user:password@]host:port/db`;
    /// `rediss://[user:password@]host:port/db` for TLS (the server's certificate checked
    /// against the system's roots, /etc/ssl/certs, or the file SSL_CERT_FILE names),
    /// `rediss://…/db#insecure` to accept any certificate;
    /// `redis+sentinel://[user:password@]host:port[,host:port…]/<master name>[/db]` to
    /// connect to the master the sentinels name (asked at every connection and every 0.5 s,
    /// so the bridge follows a Redis failover), e.g.
    /// `redis+sentinel://:secret@10.0.0.1:26379,10.0.0.2:26379/mymaster/0`; the password is
    /// the master's; sentinels with a password of their own:
    /// `?sentinel_password=…` (and `sentinel_user=…`). Never logged with its credentials.
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379/0",
        hide_env_values = true
    )]
    pub redis: String,
    /// Who issues the permits: `core` (the core's governor and P3.3; the bridge writes their
    /// permits to the legacy keys) or `redis` (the legacy services write the keys; the bridge
    /// hands them to a daemon run with engine.permits = "external").
    #[arg(long, value_enum, default_value_t = PermitsFrom::Core)]
    pub permits_from: PermitsFrom,
    /// Consumer group on quantum:stream:apply.plan.
    #[arg(long, default_value = "quantum-core")]
    pub group: String,
    /// Consumer name in the group (default: `bridge-<instance>`).
    #[arg(long)]
    pub consumer: Option<String>,
    /// Create the group at the start of the stream (every entry it holds) instead of `$`.
    #[arg(long)]
    pub from_start: bool,
    /// MAXLEN ~ of the result and dead-letter streams.
    #[arg(long, default_value_t = 100_000)]
    pub maxlen: usize,
    /// Plan entries read and not yet answered by the core, at most.
    #[arg(long, default_value_t = 4096)]
    pub max_in_flight: usize,
    /// How long an executed plan's result entry waits for the exchange's order id (ms).
    #[arg(long, default_value_t = 3000)]
    pub order_id_wait_ms: u64,
    /// Claim other consumers' pending entries idle this long (ms).
    #[arg(long, default_value_t = 30_000)]
    pub claim_idle_ms: u64,
    /// How often to look for such entries (ms).
    #[arg(long, default_value_t = 10_000)]
    pub claim_every_ms: u64,
    /// Re-read the position hashes this often (ms), besides keyspace notifications.
    #[arg(long, default_value_t = 1000)]
    pub ledger_poll_ms: u64,
    /// Legacy permits that came before their plan, held at most.
    #[arg(long, default_value_t = 10_000)]
    pub max_held_permits: usize,
    /// Log the counts and write them to `quantum:bridge:<instance>:stats` this often (ms).
    #[arg(long, default_value_t = 10_000)]
    pub stats_ms: u64,
    /// How long to wait for the daemon at start (ms).
    #[arg(long, default_value_t = 30_000)]
    pub attach_timeout_ms: u64,
    /// The daemon's journal directory, where events the results ring no longer holds are
    /// read (default: found as `quantum ctl journal` finds it).
    #[arg(long, env = "QUANTUM_JOURNAL_DIR")]
    pub journal_dir: Option<std::path::PathBuf>,
    /// How long the marker that a plan has its result entry lives (s); keep it at least the
    /// daemon's `engine.dedupe_horizon_ms`.
    #[arg(long, default_value_t = crate::config::ANSWERED_TTL_S)]
    pub answered_ttl_s: u64,
    /// This host's name in the failover lease (used only when the daemon runs with
    /// `[failover] enabled`): written into `quantum:leader:<lease>` and into this bridge's
    /// consumer name and state key, so two hosts never share them. Default: the kernel's host
    /// name. Example: `--host db2`.
    #[arg(long)]
    pub host: Option<String>,
    /// The instance's name in Redis for failover: the lease key `quantum:leader:<NAME>` and
    /// the keys both hosts share (answered markers, ledger hash). Both hosts of the pair give
    /// the same one. Default: `--instance`. Example: `--lease prod`.
    #[arg(long)]
    pub lease: Option<String>,
    /// Append each interval's latency histograms of the legacy path to FILE, in the
    /// HdrHistogram interval log format, one per series (tag): `redis.entry_result` (stream
    /// entry id → result entry written), `redis.entry_permits` (→ permit keys written),
    /// `redis.plan_result` (the plan's `timestamp` → result entry written),
    /// `redis.read_result` (entry read → result entry written). Example:
    /// `--hdr-log /var/log/quantum/prod1-redis.hlog`.
    #[arg(long, value_name = "FILE")]
    pub hdr_log: Option<std::path::PathBuf>,
    /// Length of one live-latency interval (ms, 10 to 3600000): the percentiles `quantum ctl
    /// latency` shows, and each histogram of --hdr-log, cover one. Example:
    /// `--latency-interval-ms 5000`.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = crate::legs::DEFAULT_INTERVAL_MS,
        value_parser = clap::value_parser!(u64)
            .range(quantum_ipc::latency::MIN_INTERVAL_MS..=quantum_ipc::latency::MAX_INTERVAL_MS)
    )]
    pub latency_interval_ms: u64,
}

impl RedisBridgeArgs {
    /// The bridge's settings.
    pub fn config(&self) -> BridgeConfig {
        let mut c = BridgeConfig::new(&self.instance, &self.redis);
        if let Some(name) = &self.consumer {
            c.consumer = name.clone();
        }
        c.group = self.group.clone();
        c.group_start = if self.from_start {
            GroupStart::Oldest
        } else {
            GroupStart::New
        };
        c.permits_from = self.permits_from;
        c.maxlen = self.maxlen;
        c.max_in_flight = self.max_in_flight;
        c.order_id_wait = Duration::from_millis(self.order_id_wait_ms);
        c.claim_idle = Duration::from_millis(self.claim_idle_ms);
        c.claim_every = Duration::from_millis(self.claim_every_ms.max(100));
        c.ledger_poll = Duration::from_millis(self.ledger_poll_ms.max(50));
        c.max_held_permits = self.max_held_permits;
        c.stats_every = Duration::from_millis(self.stats_ms.max(100));
        c.attach_timeout = Duration::from_millis(self.attach_timeout_ms);
        c.journal_dir = self.journal_dir.clone();
        c.answered_ttl_s = self.answered_ttl_s.max(1);
        if let Some(h) = &self.host {
            c.host = h.clone();
        }
        if let Some(l) = &self.lease {
            c.lease = l.clone();
        }
        c.hdr_log = self.hdr_log.clone();
        c.latency_interval = Duration::from_millis(self.latency_interval_ms);
        c
    }
}

/// Runs the bridge until SIGINT or SIGTERM.
pub async fn run(a: RedisBridgeArgs) -> anyhow::Result<()> {
    crate::bridge::run(a.config(), shutdown_signal()).await?;
    Ok(())
}

/// Completes at the first SIGINT or SIGTERM (either stops the bridge cleanly: it writes what
/// it has and detaches from the rings).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
                _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops the bridge cleanly");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: RedisBridgeArgs,
    }

    #[test]
    fn flags_become_the_config() {
        let t = T::parse_from([
            "t",
            "--instance",
            "p1",
            "--redis",
            "redis://127.0.0.1:7000/2",
            "--permits-from",
            "redis",
            "--from-start",
            "--order-id-wait-ms",
            "500",
            "--hdr-log",
            "/tmp/p1-redis.hlog",
            "--latency-interval-ms",
            "250",
        ]);
        let c = t.a.config();
        assert_eq!(
            c.hdr_log.as_deref(),
            Some(std::path::Path::new("/tmp/p1-redis.hlog"))
        );
        assert_eq!(c.latency_interval, Duration::from_millis(250));
        let d = T::parse_from(["t"]).a.config();
        assert_eq!(
            (d.hdr_log, d.latency_interval),
            (
                None,
                Duration::from_millis(crate::legs::DEFAULT_INTERVAL_MS)
            )
        );
        let err = T::try_parse_from(["t", "--latency-interval-ms", "5"])
            .err()
            .expect("too short an interval is refused")
            .to_string();
        assert!(err.contains("--latency-interval-ms"), "{err}");
        assert_eq!(c.instance, "p1");
        assert_eq!(c.consumer, "bridge-p1");
        assert_eq!(c.permits_from, PermitsFrom::Redis);
        assert_eq!(c.group_start, GroupStart::Oldest);
        assert_eq!(c.order_id_wait, Duration::from_millis(500));
        assert_eq!(c.url, "redis://127.0.0.1:7000/2");
        assert_eq!(c.lease, "p1");
        assert!(!c.host.is_empty());
        assert_eq!(c.names(false).consumer, "bridge-p1");
        assert_eq!(c.names(false).own, "p1");
    }

    #[test]
    fn with_failover_the_host_names_what_is_its_own() {
        let t = T::parse_from(["t", "--instance", "p1", "--host", "db2", "--lease", "prod"]);
        let c = t.a.config();
        let n = c.names(true);
        assert_eq!(n.consumer, "bridge-p1@db2");
        assert_eq!(n.own, "p1@db2");
        assert_eq!(n.shared, "prod");
        assert!(c.check_lease_names().is_ok());
        let t = T::parse_from(["t", "--host", "a b"]);
        assert!(t
            .a
            .config()
            .check_lease_names()
            .unwrap_err()
            .contains("--host"));
    }
}
