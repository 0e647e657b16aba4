//! The bridge's settings, with the defaults `quantum bridge redis` starts from.

use std::time::Duration;

/// Who issues the permits the core consumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PermitsFrom {
    /// The core's own governor and P3.3; the bridge mirrors their permits to the legacy keys.
    Core,
    /// The legacy Governor and P3.3 services, through the legacy keys; the bridge hands them
    /// to the core (the daemon must run with `engine.permits = "external"`).
    Redis,
}

/// Where a consumer group created by the bridge starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupStart {
    /// New entries only (`$`).
    New,
    /// Every entry the stream holds (`0`).
    Oldest,
}

impl GroupStart {
    /// The id XGROUP CREATE takes.
    pub fn id(self) -> &'static str {
        match self {
            GroupStart::New => "$",
            GroupStart::Oldest => "0",
        }
    }
}

/// Default life of a plan's result marker: the daemon's default dedupe horizon (24 h) and an
/// hour to spare.
pub const ANSWERED_TTL_S: u64 = 25 * 3600;

/// Everything the bridge needs to run.
#[derive(Clone, Debug)]
pub struct BridgeConfig {
    /// The `quantum run` instance whose rings to attach.
    pub instance: String,
    /// `redis://`, `rediss://` or `redis+sentinel://` URL ([`crate::conn::URL_SHAPES`]; user
    /// and password may be in it; never logged).
    pub url: String,
    /// Consumer group on the plan stream.
    pub group: String,
    /// This bridge's consumer name in the group.
    pub consumer: String,
    /// Where the group starts when the bridge creates it.
    pub group_start: GroupStart,
    /// Who issues the permits.
    pub permits_from: PermitsFrom,
    /// `MAXLEN ~` of the streams the bridge writes (results, dead letters).
    pub maxlen: usize,
    /// Plan entries read but not yet answered by the core, at most.
    pub max_in_flight: usize,
    /// How long an executed plan's result entry waits for the exchange's order id.
    pub order_id_wait: Duration,
    /// Entries of other consumers idle this long are claimed.
    pub claim_idle: Duration,
    /// How often the pending list is searched for such entries.
    pub claim_every: Duration,
    /// How often the position hashes are re-read (fallback to keyspace notifications).
    pub ledger_poll: Duration,
    /// How often waiting plans' permits are re-read when keyspace notifications are off.
    pub permit_poll: Duration,
    /// Permits that arrived before their plan, held at most.
    pub max_held_permits: usize,
    /// How often counts are logged and written to the stats hash.
    pub stats_every: Duration,
    /// How long to wait for the daemon at start.
    pub attach_timeout: Duration,
    /// Events mirrored in one MULTI/EXEC, at most.
    pub batch: usize,
    /// The daemon's journal directory (`None`: [`quantum_ipc::journal::find_dir`]).
    pub journal_dir: Option<std::path::PathBuf>,
    /// How long a plan's result marker lives (s): at least the daemon's dedupe horizon, so a
    /// plan the core still answers `duplicate` never gets a second result entry.
    pub answered_ttl_s: u64,
    /// This host's name in the failover lease (`--host`).
    pub host: String,
    /// The instance's name in Redis for the failover lease and the keys both hosts share
    /// (`--lease`).
    pub lease: String,
    /// The live latency's interval log (`--hdr-log`), if any ([`crate::legs`]).
    pub hdr_log: Option<std::path::PathBuf>,
    /// The live latency's interval: gauges and log lines each cover one
    /// (`--latency-interval-ms`).
    pub latency_interval: Duration,
}

impl BridgeConfig {
    /// Defaults for `instance` and `url`.
    pub fn new(instance: &str, url: &str) -> BridgeConfig {
        BridgeConfig {
            instance: instance.to_owned(),
            url: url.to_owned(),
            group: "quantum-core".into(),
            consumer: format!("bridge-{instance}"),
            group_start: GroupStart::New,
            permits_from: PermitsFrom::Core,
            maxlen: 100_000,
            max_in_flight: 4096,
            order_id_wait: Duration::from_millis(3000),
            claim_idle: Duration::from_secs(30),
            claim_every: Duration::from_secs(10),
            ledger_poll: Duration::from_millis(1000),
            permit_poll: Duration::from_millis(50),
            max_held_permits: 10_000,
            stats_every: Duration::from_secs(10),
            attach_timeout: Duration::from_secs(30),
            batch: 512,
            journal_dir: None,
            answered_ttl_s: ANSWERED_TTL_S,
            host: kernel_hostname(),
            lease: instance.to_owned(),
            hdr_log: None,
            latency_interval: Duration::from_millis(crate::legs::DEFAULT_INTERVAL_MS),
        }
    }

    /// The Redis names this bridge uses: as always without failover; with it, the consumer
    /// name and the bridge's own state and stats hashes carry the host (two hosts of one
    /// instance never share them) and what both hosts share is named after the lease.
    pub fn names(&self, failover: bool) -> Names {
        if failover {
            Names {
                own: format!("{}@{}", self.instance, self.host),
                shared: self.lease.clone(),
                consumer: format!("{}@{}", self.consumer, self.host),
            }
        } else {
            Names {
                own: self.instance.clone(),
                shared: self.instance.clone(),
                consumer: self.consumer.clone(),
            }
        }
    }

    /// Checks the names the lease is written with.
    pub fn check_lease_names(&self) -> Result<(), String> {
        let h = &self.host;
        if h.is_empty() || h.len() > quantum_ipc::lease::MAX_HOST || h.contains(char::is_whitespace)
        {
            return Err(format!(
                "--host {h:?}: a host name is 1 to {} bytes without spaces (pass a shorter one, e.g. --host db2)",
                quantum_ipc::lease::MAX_HOST
            ));
        }
        if self.lease.is_empty() || self.lease.contains(char::is_whitespace) {
            return Err(format!(
                "--lease {:?}: a lease name is not empty and has no spaces",
                self.lease
            ));
        }
        Ok(())
    }
}

/// The Redis names a bridge uses in one mode ([`BridgeConfig::names`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// Names the bridge's own state and stats hashes ([`crate::state::state_key`],
    /// [`crate::state::stats_key`]): the instance, or `<instance>@<host>` with failover.
    pub own: String,
    /// Names what both hosts share: the answered markers ([`crate::state::answered_key`]),
    /// the ledger hash ([`crate::state::ledger_key`]) and the lease
    /// ([`crate::lease::lease_key`]): the instance, or the lease name with failover.
    pub shared: String,
    /// The consumer name in the plan group: `--consumer`, and `@<host>` with failover.
    pub consumer: String,
}

/// The kernel's host name (`/proc/sys/kernel/hostname`, else `hostname`), `localhost` when
/// neither says.
pub fn kernel_hostname() -> String {
    let from_proc = std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
    let name = from_proc.or_else(|| {
        std::process::Command::new("hostname")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
    });
    name.map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
