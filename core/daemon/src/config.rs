//! `quantum run` configuration: built-in defaults (`EngineConfig::default()` and the daemon's
//! own), then the TOML file of `--config`, then the environment, then the command line.
//!
//! Every key of the file can be overridden by `QUANTUM_<KEY>` with the dots of its path turned
//! into underscores and upper-cased (`governor.mode` → `QUANTUM_GOVERNOR_MODE`); the legacy
//! `APPLY_PERMIT_WAIT_MS` and `APPLY_PERMIT_STEP_MS` set `engine.apply_wait_ms` and
//! `engine.apply_step_ms` (their `QUANTUM_ENGINE_*` names win when both are set). An empty
//! value unsets an optional key. Symbols are configured in the file only (`[[symbols]]`, which
//! replaces the built-in list). Unknown keys and bad values are one sentence naming the key.
//!
//! [`KEYS`] is the one list of settable keys: each with its one-line description, from which
//! the environment overrides and `--print-config` (with every key's variable, and its default
//! when `--defaults` is not given and the value differs) are made ([`annotated`]).

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use quantum_core::book::{Filters, LotFilter};
use quantum_core::governor::{GovMode, GovernorConfig};
use quantum_core::p33::P33Config;
use quantum_core::{EngineConfig, Mode, PermitSource, PositionSide, Price, Qty, Score, SymbolSpec};
use serde::{Deserialize, Serialize};

use quantum_ipc::contract;

/// The whole configuration, as the file spells it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// `auto` (the default: `single` where the host has the cores for it, else `inline`),
    /// `single`, `pipelined` or `inline`.
    pub mode: String,
    /// Busy-spin idle threads (burns a core each).
    pub spin: bool,
    /// Pin engine threads when there are enough cores.
    pub pin: bool,
    /// Write the legacy `[PERMIT_WAIT]` and `Result published` lines to stderr.
    pub legacy_log: bool,
    /// Engine sizes and waits.
    pub engine: EngineSection,
    /// Governor.
    pub governor: GovernorSection,
    /// P3.3.
    pub p33: P33Section,
    /// Rings and peers.
    pub rings: RingsSection,
    /// Host tuning: locked memory, real-time scheduling, CPUs.
    pub host: HostSection,
    /// The journal: where events are kept, and how durably.
    pub journal: JournalSection,
    /// Live latency: percentiles in the counters segment, the interval log.
    pub latency: LatencySection,
    /// Active/standby on two hosts under a lease in Redis.
    pub failover: FailoverSection,
    /// Symbols, in id order.
    pub symbols: Vec<SymbolSection>,
}

/// `[failover]`: the same instance on two hosts, one leading under a lease the Redis bridge
/// holds in Redis (`quantum:leader:<lease name>`). The daemon publishes these values in its
/// counters; both bridges read them there, so the two hosts' settings come from one place each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailoverSection {
    /// On: this host acts only while it holds the lease.
    pub enabled: bool,
    /// The lease's time to live.
    pub ttl_ms: u64,
    /// How often the leader renews it.
    pub renew_ms: u64,
    /// Taken off the leader's own deadline for its clock running at another rate than Redis's.
    pub drift_ms: u64,
    /// The recvWindow every order is signed with.
    pub recv_window_ms: u64,
    /// The most the hosts' clocks and Binance's may differ.
    pub clock_error_ms: u64,
}

impl Default for FailoverSection {
    fn default() -> Self {
        FailoverSection {
            enabled: false,
            ttl_ms: 3000,
            renew_ms: 1000,
            drift_ms: 200,
            recv_window_ms: 1000,
            clock_error_ms: 250,
        }
    }
}

/// `[engine]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSection {
    /// Permit table slots.
    pub table_capacity: usize,
    /// How long an EXECUTE plan's id is remembered for dedupe (ms).
    pub dedupe_horizon_ms: u64,
    /// EXECUTE plans older than this (ms, from the planner's timestamp) are blocked
    /// `plan_stale`; at most `dedupe_horizon_ms`.
    pub max_plan_age_ms: u64,
    /// Most plan ids remembered at once (at least `table_capacity`); when full of ids younger
    /// than the horizon, new plans are blocked `dedupe_full`.
    pub dedupe_capacity: usize,
    /// Most orders in flight at once.
    pub max_orders: usize,
    /// `core` (the core's governor and P3.3 issue the permits) or `external` (legacy services
    /// do, through the Redis bridge's `--permits-from redis`).
    pub permits: String,
    /// Legacy `APPLY_PERMIT_WAIT_MS`.
    pub apply_wait_ms: u64,
    /// Legacy `APPLY_PERMIT_STEP_MS` (longest single park).
    pub apply_step_ms: u64,
}

/// `[governor]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GovernorSection {
    /// `testnet` (approve everything) or `production` (apply the policies).
    pub mode: String,
    /// Permit TTL.
    pub permit_ttl_ms: u64,
    /// Executions per symbol per window (0: no limit).
    pub rate_limit: u32,
    /// The rate limit's window.
    pub rate_window_ms: u64,
    /// Quiet time after an execution (0: none).
    pub cooldown_ms: u64,
    /// Max notional of one opening order (decimal, quote units).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_notional_order: Option<String>,
    /// Max notional of opening orders per UTC day.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_notional_day: Option<String>,
    /// Minimum kill score (decimal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_kill_score: Option<String>,
}

/// `[p33]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct P33Section {
    /// Permit TTL.
    pub permit_ttl_ms: u64,
    /// An exchange snapshot older than this is stale.
    pub exchange_max_age_ms: u64,
}

/// `[rings]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RingsSection {
    /// Slots per SPSC ring (a power of two).
    pub capacity: usize,
    /// Slots of the `results` broadcast ring: how far an observer may fall behind before it
    /// misses events (a power of two).
    pub results_capacity: usize,
    /// How often the daemon heartbeats and looks at its peers.
    pub heartbeat_ms: u64,
    /// A peer whose heartbeat is older than this is not alive.
    pub peer_timeout_ms: u64,
    /// On SIGINT/SIGTERM, how long to wait for egress consumers before giving up.
    pub drain_timeout_ms: u64,
}

/// `[host]`: how the daemon uses the machine (applied by [`super::host`] before start).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct HostSection {
    /// Lock every page of the daemon in memory (mlockall, current and future mappings).
    pub mlockall: bool,
    /// SCHED_FIFO priority of the daemon's threads, 1 to 99; 0: normal scheduling.
    pub sched_fifo: u8,
    /// CPUs the daemon's threads may run on, as the kernel writes CPU lists ("2-3", "2,5");
    /// empty: every CPU the process is allowed.
    pub cpus: String,
}

/// `[latency]`: the latency of each plan's stages, recorded by the I/O thread into interval
/// histograms that a background thread publishes as percentiles in the counters segment
/// (`quantum ctl latency`) and, when `hdr_log` is set, appends to an HdrHistogram interval log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatencySection {
    /// The interval log file (`quantum run --hdr-log FILE`); empty: none.
    pub hdr_log: String,
    /// Length of one interval, ms.
    pub interval_ms: u64,
}

impl Default for LatencySection {
    fn default() -> Self {
        LatencySection {
            hdr_log: String::new(),
            interval_ms: quantum_ipc::latency::DEFAULT_INTERVAL_MS,
        }
    }
}

/// `[journal]`: every event of the engine, kept so that a restart loses nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalSection {
    /// Directory of the instance's journal; empty: [`JournalSection::dir_and_source`]'s default.
    pub dir: String,
    /// `msync` each batch of events before anything of it leaves the process (survives a
    /// power loss; without it a process crash still loses nothing).
    pub fsync: bool,
    /// When every symbol waits for the exchange's history of our orders before it trades:
    /// `auto` (when this journal cannot be trusted: empty, or its unsynced tail may have been
    /// lost to a host restart), `always`, or `never` (a core with no exchange adapter, whose
    /// positions are fed by hand; never in production).
    pub recover_from_exchange: String,
    /// Size of one segment file, MiB.
    pub segment_mb: u64,
    /// Segments already covered by a snapshot that are kept anyway (for readers catching up
    /// and `quantum ctl journal dump`).
    pub keep_segments: usize,
    /// A start that replayed more events than this after the newest snapshot writes a
    /// snapshot at once, so that the next start is short.
    pub snapshot_after_replay: u64,
}

impl Default for JournalSection {
    fn default() -> Self {
        JournalSection {
            dir: String::new(),
            fsync: false,
            recover_from_exchange: "auto".into(),
            segment_mb: 64,
            keep_segments: 4,
            snapshot_after_replay: 100_000,
        }
    }
}

impl JournalSection {
    /// `recover_from_exchange`, read.
    pub fn exchange_recovery(&self) -> Result<super::trust::ExchangeRecovery> {
        self.recover_from_exchange
            .parse()
            .map_err(|e: String| anyhow!("journal.recover_from_exchange: {e}"))
    }

    /// The journal directory of `instance` (`dir` when set, else
    /// [`quantum_ipc::journal::default_dir`]), and why that directory: `journal.dir`, or the
    /// environment variable the default came from (`$STATE_DIRECTORY`, `$XDG_STATE_HOME`,
    /// `$HOME`).
    pub fn dir_and_source(&self, instance: &str) -> (std::path::PathBuf, String) {
        if !self.dir.trim().is_empty() {
            return (
                std::path::PathBuf::from(self.dir.trim()),
                "journal.dir".into(),
            );
        }
        let (dir, source) = quantum_ipc::journal::default_dir_and_source(instance);
        (dir, format!("journal.dir not set, so from {source}"))
    }
}

/// One `[[symbols]]` entry (decimals as strings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SymbolSection {
    /// Exchange symbol (at most 16 bytes).
    pub name: String,
    /// Reconcile tolerance.
    pub tolerance: String,
    /// LOT_SIZE minimum.
    pub min_qty: String,
    /// LOT_SIZE maximum.
    pub max_qty: String,
    /// LOT_SIZE step.
    pub step: String,
    /// MARKET_LOT_SIZE minimum (default: `min_qty`).
    pub market_min_qty: Option<String>,
    /// MARKET_LOT_SIZE maximum (default: `max_qty`).
    pub market_max_qty: Option<String>,
    /// MARKET_LOT_SIZE step (default: `step`).
    pub market_step: Option<String>,
    /// MIN_NOTIONAL.
    pub min_notional: String,
    /// The account's position mode this symbol is traded in: `one_way` (the default: one
    /// net position, orders reduce-only) or `hedge` (a `LONG` and a `SHORT` position, each its
    /// own leg with its own ledger; plans name the side they close with `position_side`). The
    /// core trades a symbol only while the exchange says the account is in this mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_mode: Option<String>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        let e = EngineConfig::default();
        DaemonConfig {
            mode: AUTO.into(),
            spin: false,
            pin: true,
            legacy_log: true,
            engine: EngineSection {
                table_capacity: e.table_capacity,
                dedupe_horizon_ms: e.dedupe_horizon_ms,
                max_plan_age_ms: e.max_plan_age_ms,
                dedupe_capacity: e.dedupe_capacity,
                max_orders: e.max_orders,
                permits: e.permits.as_str().into(),
                apply_wait_ms: e.apply_wait_ms,
                apply_step_ms: e.apply_step_ms,
            },
            governor: GovernorSection::from(&e.governor),
            p33: P33Section {
                permit_ttl_ms: e.p33.permit_ttl_ms,
                exchange_max_age_ms: e.p33.exchange_max_age_ms,
            },
            rings: RingsSection::default(),
            host: HostSection::default(),
            journal: JournalSection::default(),
            latency: LatencySection::default(),
            failover: FailoverSection::default(),
            symbols: e.symbols.iter().map(SymbolSection::from).collect(),
        }
    }
}

impl Default for EngineSection {
    fn default() -> Self {
        DaemonConfig::default().engine
    }
}

impl Default for GovernorSection {
    fn default() -> Self {
        GovernorSection::from(&GovernorConfig::default())
    }
}

impl Default for P33Section {
    fn default() -> Self {
        let p = P33Config::default();
        P33Section {
            permit_ttl_ms: p.permit_ttl_ms,
            exchange_max_age_ms: p.exchange_max_age_ms,
        }
    }
}

impl Default for RingsSection {
    fn default() -> Self {
        RingsSection {
            capacity: contract::DEFAULT_CAPACITY,
            results_capacity: contract::DEFAULT_RESULTS_CAPACITY,
            heartbeat_ms: 100,
            peer_timeout_ms: 3_000,
            drain_timeout_ms: 5_000,
        }
    }
}

impl From<&GovernorConfig> for GovernorSection {
    fn from(g: &GovernorConfig) -> Self {
        GovernorSection {
            mode: match g.mode {
                GovMode::Testnet => "testnet".into(),
                GovMode::Production => "production".into(),
            },
            permit_ttl_ms: g.permit_ttl_ms,
            rate_limit: g.rate_limit,
            rate_window_ms: g.rate_window_ms,
            cooldown_ms: g.cooldown_ms,
            max_notional_order: g.max_notional_order.map(|p| p.to_string()),
            max_notional_day: g.max_notional_day.map(|p| p.to_string()),
            min_kill_score: g.min_kill_score.map(|s| s.to_string()),
        }
    }
}

impl From<&SymbolSpec> for SymbolSection {
    fn from(s: &SymbolSpec) -> Self {
        let f = &s.filters;
        SymbolSection {
            name: s.name.clone(),
            tolerance: s.tolerance.to_string(),
            min_qty: f.lot.min.to_string(),
            max_qty: f.lot.max.to_string(),
            step: f.lot.step.to_string(),
            market_min_qty: Some(f.market_lot.min.to_string()),
            market_max_qty: Some(f.market_lot.max.to_string()),
            market_step: Some(f.market_lot.step.to_string()),
            min_notional: Qty::from_units(f.min_notional.units()).to_string(),
            position_mode: s.side.is_hedge().then(|| HEDGE.to_owned()),
        }
    }
}

/// `position_mode` of a hedge-mode symbol.
const HEDGE: &str = "hedge";
/// `position_mode` of a one-way symbol (the default).
const ONE_WAY: &str = "one_way";

/// A settable key: its `section.key` path and what it does, in one line.
pub struct Key {
    /// Path in the file, e.g. `engine.apply_wait_ms`.
    pub path: &'static str,
    /// One line for `--print-config`.
    pub doc: &'static str,
}

const fn key(path: &'static str, doc: &'static str) -> Key {
    Key { path, doc }
}

/// `mode = "auto"`.
pub const AUTO: &str = "auto";

/// Usable cores the `single` layout needs to run as designed: its engine thread, the I/O
/// thread, and one for the bridges and the OS.
pub const SINGLE_NEEDS_CORES: usize = 3;

/// What `auto` picks on a host with `cores` usable cores, and why.
pub fn auto_mode(cores: usize) -> (Mode, Option<String>) {
    if cores >= SINGLE_NEEDS_CORES {
        (
            Mode::Single,
            Some(format!("auto: {cores} usable cores, single needs {SINGLE_NEEDS_CORES} (engine, I/O, bridges)")),
        )
    } else {
        (
            Mode::Inline,
            Some(format!("auto: {cores} usable core(s), fewer than the {SINGLE_NEEDS_CORES} single needs (engine, I/O, bridges): the I/O thread runs the engine")),
        )
    }
}

/// Every key the file and the environment can set, in the order `--print-config` shows them.
pub const KEYS: &[Key] = &[
    key("mode", "thread layout: auto (single with 3+ usable cores, else inline), single (one engine thread), pipelined (front, governor, p33) or inline (the I/O thread runs the engine)"),
    key("spin", "busy-spin idle engine threads instead of backing off (burns a core each)"),
    key("pin", "pin engine threads to cores when there are more usable cores than threads"),
    key("legacy_log", "log the legacy [PERMIT_WAIT] and Result published lines"),
    key("engine.table_capacity", "permit table slots: plans in the chain at once"),
    key("engine.dedupe_horizon_ms", "how long an EXECUTE plan's id is remembered to refuse duplicates"),
    key("engine.max_plan_age_ms", "EXECUTE plans older than this (planner's timestamp) are blocked plan_stale; at most engine.dedupe_horizon_ms"),
    key("engine.dedupe_capacity", "most plan ids remembered at once (at least table_capacity; about 53 bytes each, allocated at start); full of young ids: new plans are blocked dedupe_full"),
    key("engine.max_orders", "most orders in flight at once; one more is blocked orders_full"),
    key("engine.permits", "core (the core's governor and P3.3 issue permits) or external (legacy services, through the Redis bridge)"),
    key("engine.apply_wait_ms", "how long apply waits for both permits (legacy APPLY_PERMIT_WAIT_MS)"),
    key("engine.apply_step_ms", "longest single park of an idle thread (legacy APPLY_PERMIT_STEP_MS)"),
    key("governor.mode", "testnet (approve every plan) or production (apply the policies)"),
    key("governor.permit_ttl_ms", "lifetime of a Governor permit"),
    key("governor.rate_limit", "executions per symbol per window; 0: no limit"),
    key("governor.rate_window_ms", "the window of governor.rate_limit"),
    key("governor.cooldown_ms", "quiet time per symbol after an execution; 0: none"),
    key("governor.max_notional_order", "max notional of one opening order, decimal quote units; unset: no cap"),
    key("governor.max_notional_day", "max notional of opening orders per UTC day; unset: no cap"),
    key("governor.min_kill_score", "plans with a lower kill score are denied; unset: no minimum"),
    key("p33.permit_ttl_ms", "lifetime of a P3.3 permit"),
    key("p33.exchange_max_age_ms", "an exchange position snapshot older than this is stale"),
    key("rings.capacity", "slots per SPSC ring, a power of two (each slot is one 64-byte record)"),
    key("rings.results_capacity", "slots of the results broadcast ring: how far a reader may fall behind before it misses events"),
    key("rings.heartbeat_ms", "how often the daemon heartbeats and looks at its peers"),
    key("rings.peer_timeout_ms", "a peer silent for longer is not alive"),
    key("rings.drain_timeout_ms", "on SIGINT/SIGTERM, longest wait for egress consumers"),
    key("host.mlockall", "lock all the daemon's memory (needs LimitMEMLOCK=infinity or CAP_IPC_LOCK)"),
    key("host.sched_fifo", "SCHED_FIFO priority 1-99 for the daemon's threads; 0: off (needs CAP_SYS_NICE or LimitRTPRIO)"),
    key("host.cpus", "CPUs for the daemon's threads, e.g. \"2-3\": engine threads on the last, I/O on the first; empty: any"),
    key("journal.dir", "journal directory; empty: $STATE_DIRECTORY/<instance>, else $XDG_STATE_HOME/quantum/<instance>, else ~/.local/state/quantum/<instance>"),
    key("journal.fsync", "msync each batch of events before it leaves the process: survives a power loss (a crash loses nothing either way)"),
    key("journal.recover_from_exchange", "auto (when the journal cannot be trusted: empty, or its unsynced tail may be lost to a host restart), always or never: every symbol waits for the exchange's history of our orders before it trades"),
    key("journal.segment_mb", "size of one journal segment file, MiB (at least 1)"),
    key("journal.keep_segments", "segments a snapshot already covers that are kept anyway, for readers catching up"),
    key("journal.snapshot_after_replay", "a start that replayed more events than this after the newest snapshot writes a snapshot at once"),
    key("latency.hdr_log", "HdrHistogram interval log of each plan's stages (tags: stage names); empty: none"),
    key("latency.interval_ms", "length of one latency interval (gauges and log), ms"),
    key("failover.enabled", "active/standby on two hosts: act only while this host holds the lease the Redis bridge keeps in Redis"),
    key("failover.ttl_ms", "the lease's time to live, ms"),
    key("failover.renew_ms", "how often the leader renews the lease, ms (well inside ttl_ms)"),
    key("failover.drift_ms", "taken off the leader's deadline (last renewal + ttl) for clock-rate drift, ms"),
    key("failover.recv_window_ms", "recvWindow every order is signed with, ms: a request delayed longer is refused by Binance (at most 1000 advised)"),
    key("failover.clock_error_ms", "the most this host's, the other host's and Binance's clocks may differ, ms"),
];

/// Legacy variables and the key each sets.
pub const LEGACY_ENV: &[(&str, &str)] = &[
    ("APPLY_PERMIT_WAIT_MS", "engine.apply_wait_ms"),
    ("APPLY_PERMIT_STEP_MS", "engine.apply_step_ms"),
];

/// The environment variable of a key.
pub fn env_name(key: &str) -> String {
    format!("QUANTUM_{}", key.replace('.', "_").to_uppercase())
}

fn num<T: std::str::FromStr>(var: &str, v: &str) -> Result<T> {
    v.trim()
        .parse()
        .map_err(|_| anyhow!("{var}={v:?} is not a valid whole number"))
}

fn boolean(var: &str, v: &str) -> Result<bool> {
    match v.trim() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => bail!("{var}={v:?} is not a boolean (true/false, 1/0, yes/no, on/off)"),
    }
}

fn opt(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

impl DaemonConfig {
    /// Reads `path` (TOML) over the defaults.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow!("cannot read config file {}: {e}", path.display()))?;
        Self::from_toml(&text).map_err(|e| anyhow!("config file {}: {e}", path.display()))
    }

    /// Parses TOML text over the defaults; the error names the line and key.
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| {
            let msg = e.message().trim().to_string();
            match e.span() {
                Some(span) => {
                    let line_no = text[..span.start.min(text.len())].lines().count().max(1);
                    let line = text
                        .lines()
                        .nth(line_no.saturating_sub(1))
                        .unwrap_or("")
                        .trim();
                    anyhow!("line {line_no} ({line}): {msg}")
                }
                None => anyhow!("{msg}"),
            }
        })
    }

    /// Applies environment overrides read through `get`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<()> {
        for (var, key) in LEGACY_ENV {
            if let Some(v) = get(var) {
                self.set(key, var, &v)?;
            }
        }
        for key in KEYS {
            let var = env_name(key.path);
            if let Some(v) = get(&var) {
                self.set(key.path, &var, &v)?;
            }
        }
        Ok(())
    }

    /// Sets one key from the text of variable `var`.
    fn set(&mut self, key: &str, var: &str, v: &str) -> Result<()> {
        let (e, g, p, r, h, j) = (
            &mut self.engine,
            &mut self.governor,
            &mut self.p33,
            &mut self.rings,
            &mut self.host,
            &mut self.journal,
        );
        match key {
            "mode" => self.mode = v.trim().to_string(),
            "spin" => self.spin = boolean(var, v)?,
            "pin" => self.pin = boolean(var, v)?,
            "legacy_log" => self.legacy_log = boolean(var, v)?,
            "engine.table_capacity" => e.table_capacity = num(var, v)?,
            "engine.dedupe_horizon_ms" => e.dedupe_horizon_ms = num(var, v)?,
            "engine.max_plan_age_ms" => e.max_plan_age_ms = num(var, v)?,
            "engine.dedupe_capacity" => e.dedupe_capacity = num(var, v)?,
            "engine.max_orders" => e.max_orders = num(var, v)?,
            "engine.permits" => e.permits = v.trim().to_string(),
            "engine.apply_wait_ms" => e.apply_wait_ms = num(var, v)?,
            "engine.apply_step_ms" => e.apply_step_ms = num(var, v)?,
            "governor.mode" => g.mode = v.trim().to_string(),
            "governor.permit_ttl_ms" => g.permit_ttl_ms = num(var, v)?,
            "governor.rate_limit" => g.rate_limit = num(var, v)?,
            "governor.rate_window_ms" => g.rate_window_ms = num(var, v)?,
            "governor.cooldown_ms" => g.cooldown_ms = num(var, v)?,
            "governor.max_notional_order" => g.max_notional_order = opt(v),
            "governor.max_notional_day" => g.max_notional_day = opt(v),
            "governor.min_kill_score" => g.min_kill_score = opt(v),
            "p33.permit_ttl_ms" => p.permit_ttl_ms = num(var, v)?,
            "p33.exchange_max_age_ms" => p.exchange_max_age_ms = num(var, v)?,
            "rings.capacity" => r.capacity = num(var, v)?,
            "rings.results_capacity" => r.results_capacity = num(var, v)?,
            "rings.heartbeat_ms" => r.heartbeat_ms = num(var, v)?,
            "rings.peer_timeout_ms" => r.peer_timeout_ms = num(var, v)?,
            "rings.drain_timeout_ms" => r.drain_timeout_ms = num(var, v)?,
            "host.mlockall" => h.mlockall = boolean(var, v)?,
            "host.sched_fifo" => {
                h.sched_fifo = match v.trim() {
                    "off" | "" => 0,
                    v => num(var, v)?,
                }
            }
            "host.cpus" => h.cpus = v.trim().to_string(),
            "journal.dir" => j.dir = v.trim().to_string(),
            "journal.fsync" => j.fsync = boolean(var, v)?,
            "journal.recover_from_exchange" => j.recover_from_exchange = v.trim().to_string(),
            "journal.segment_mb" => j.segment_mb = num(var, v)?,
            "journal.keep_segments" => j.keep_segments = num(var, v)?,
            "journal.snapshot_after_replay" => j.snapshot_after_replay = num(var, v)?,
            "latency.hdr_log" => self.latency.hdr_log = v.trim().to_string(),
            "latency.interval_ms" => self.latency.interval_ms = num(var, v)?,
            "failover.enabled" => self.failover.enabled = boolean(var, v)?,
            "failover.ttl_ms" => self.failover.ttl_ms = num(var, v)?,
            "failover.renew_ms" => self.failover.renew_ms = num(var, v)?,
            "failover.drift_ms" => self.failover.drift_ms = num(var, v)?,
            "failover.recv_window_ms" => self.failover.recv_window_ms = num(var, v)?,
            "failover.clock_error_ms" => self.failover.clock_error_ms = num(var, v)?,
            _ => bail!("{var}: no such setting {key}"),
        }
        Ok(())
    }

    /// The value of one of [`KEYS`] as TOML text, `None` when an optional key is unset.
    pub fn value_of(&self, path: &str) -> Option<String> {
        let v = toml::Value::try_from(self).ok()?;
        let mut at = &v;
        for part in path.split('.') {
            at = at.get(part)?;
        }
        Some(at.to_string())
    }

    /// The thread layout (`auto` resolved on this host's usable cores).
    pub fn mode(&self) -> Result<Mode> {
        Ok(self.mode_choice()?.0)
    }

    /// The thread layout and, for `auto`, why it was chosen (for the start line).
    pub fn mode_choice(&self) -> Result<(Mode, Option<String>)> {
        if self.mode.trim() == AUTO {
            return Ok(auto_mode(quantum_core::runner::usable_cores()));
        }
        let m = self
            .mode
            .parse()
            .map_err(|e: String| anyhow!("mode: {e} (or auto)"))?;
        Ok((m, None))
    }

    /// Everything the engine needs, checked; errors name the key.
    pub fn engine_config(&self) -> Result<EngineConfig> {
        self.mode()?;
        let r = &self.rings;
        if !r.capacity.is_power_of_two() || r.capacity > 1 << 24 {
            bail!(
                "rings.capacity {} must be a power of two up to 16777216",
                r.capacity
            );
        }
        if !r.results_capacity.is_power_of_two() || !(2..=1 << 24).contains(&r.results_capacity) {
            bail!(
                "rings.results_capacity {} must be a power of two from 2 to 16777216",
                r.results_capacity
            );
        }
        if r.heartbeat_ms == 0 || r.peer_timeout_ms == 0 {
            bail!("rings.heartbeat_ms and rings.peer_timeout_ms must be at least 1");
        }
        use quantum_ipc::latency::{MAX_INTERVAL_MS, MIN_INTERVAL_MS};
        if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&self.latency.interval_ms) {
            bail!(
                "latency.interval_ms {} must be from {MIN_INTERVAL_MS} to {MAX_INTERVAL_MS}",
                self.latency.interval_ms
            );
        }
        self.journal.exchange_recovery()?;
        let f = &self.failover;
        if f.ttl_ms < 100 || f.renew_ms == 0 || f.renew_ms.saturating_mul(2) > f.ttl_ms {
            bail!(
                "failover.renew_ms {} must be at least 1 and at most half of failover.ttl_ms {} (at least 100)",
                f.renew_ms,
                f.ttl_ms
            );
        }
        if f.drift_ms >= f.ttl_ms - f.renew_ms {
            bail!(
                "failover.drift_ms {} must be less than ttl_ms - renew_ms ({}): the leader's deadline would pass before its next renewal",
                f.drift_ms,
                f.ttl_ms - f.renew_ms
            );
        }
        if !(1..=60_000).contains(&f.recv_window_ms) {
            bail!(
                "failover.recv_window_ms {} must be from 1 to 60000 (Binance's own limit)",
                f.recv_window_ms
            );
        }
        if !(1..=4096).contains(&self.journal.segment_mb) {
            bail!(
                "journal.segment_mb {} must be from 1 to 4096",
                self.journal.segment_mb
            );
        }
        if self.symbols.len() > usize::from(quantum_ipc::wire::MAX_SYMBOLS) {
            bail!("symbols: at most 256 symbols can be configured");
        }
        let g = &self.governor;
        let mode = match g.mode.as_str() {
            "testnet" => GovMode::Testnet,
            "production" => GovMode::Production,
            m => bail!("governor.mode {m:?} must be testnet or production"),
        };
        let price = |key: &str, v: &Option<String>| -> Result<Option<Price>> {
            v.as_deref()
                .map(|s| s.parse().map_err(|e| anyhow!("{key} {s:?}: {e}")))
                .transpose()
        };
        let governor = GovernorConfig {
            mode,
            permit_ttl_ms: g.permit_ttl_ms,
            rate_limit: g.rate_limit,
            rate_window_ms: g.rate_window_ms,
            cooldown_ms: g.cooldown_ms,
            max_notional_order: price("governor.max_notional_order", &g.max_notional_order)?,
            max_notional_day: price("governor.max_notional_day", &g.max_notional_day)?,
            min_kill_score: g
                .min_kill_score
                .as_deref()
                .map(|s| {
                    s.parse::<Score>()
                        .map_err(|e| anyhow!("governor.min_kill_score {s:?}: {e}"))
                })
                .transpose()?,
        };
        let permits: PermitSource = self
            .engine
            .permits
            .parse()
            .map_err(|e: String| anyhow!("engine.permits: {e}"))?;
        let mut symbols = Vec::new();
        for (i, s) in self.symbols.iter().enumerate() {
            symbols.extend(s.legs(i)?);
        }
        if symbols.len() > usize::from(quantum_ipc::wire::MAX_SYMBOLS) {
            bail!(
                "symbols: {} symbol ids (a hedge-mode symbol takes two); at most 256",
                symbols.len()
            );
        }
        let cfg = EngineConfig {
            table_capacity: self.engine.table_capacity,
            dedupe_horizon_ms: self.engine.dedupe_horizon_ms,
            max_plan_age_ms: self.engine.max_plan_age_ms,
            dedupe_capacity: self.engine.dedupe_capacity,
            max_orders: self.engine.max_orders,
            permits,
            apply_wait_ms: self.engine.apply_wait_ms,
            apply_step_ms: self.engine.apply_step_ms,
            governor,
            p33: P33Config {
                permit_ttl_ms: self.p33.permit_ttl_ms,
                exchange_max_age_ms: self.p33.exchange_max_age_ms,
            },
            symbols,
        };
        cfg.validate().map_err(|e| anyhow!("{e}"))?;
        Ok(cfg)
    }

    /// The host tuning, checked; errors name the key.
    pub fn host_plan(&self) -> Result<super::host::HostPlan> {
        super::host::HostPlan::from_config(&self.host)
    }

    /// Longest single park of the engine threads.
    pub fn max_park(&self) -> Duration {
        Duration::from_millis(self.engine.apply_step_ms.max(1))
    }
}

impl SymbolSection {
    /// The symbol ids (legs) this entry makes, in id order: one for a one-way symbol, `LONG`
    /// then `SHORT` for a hedge-mode one.
    fn legs(&self, i: usize) -> Result<Vec<SymbolSpec>> {
        let spec = self.spec(i)?;
        Ok(match self.position_mode.as_deref().map(str::trim) {
            None | Some(ONE_WAY) => vec![spec],
            Some(HEDGE) => vec![
                spec.on_side(PositionSide::Long),
                spec.on_side(PositionSide::Short),
            ],
            Some(m) => bail!(
                "symbols[{i}] ({}).position_mode {m:?} must be {ONE_WAY} or {HEDGE}",
                self.name
            ),
        })
    }

    fn spec(&self, i: usize) -> Result<SymbolSpec> {
        let name = &self.name;
        if name.is_empty() || name.len() > quantum_ipc::wire::MAX_EXCHANGE_SYMBOL {
            bail!("symbols[{i}].name {name:?} must be 1 to 16 bytes");
        }
        let q = |key: &str, v: &str| -> Result<Qty> {
            v.parse()
                .map_err(|e| anyhow!("symbols[{i}] ({name}).{key} {v:?}: {e}"))
        };
        let lot = LotFilter {
            min: q("min_qty", &self.min_qty)?,
            max: q("max_qty", &self.max_qty)?,
            step: q("step", &self.step)?,
        };
        let or = |key: &str, v: &Option<String>, d: Qty| v.as_deref().map_or(Ok(d), |v| q(key, v));
        let market_lot = LotFilter {
            min: or("market_min_qty", &self.market_min_qty, lot.min)?,
            max: or("market_max_qty", &self.market_max_qty, lot.max)?,
            step: or("market_step", &self.market_step, lot.step)?,
        };
        Ok(SymbolSpec {
            name: name.clone(),
            side: PositionSide::Both,
            tolerance: q("tolerance", &self.tolerance)?,
            filters: Filters {
                lot,
                market_lot,
                min_notional: Price::from_units(q("min_notional", &self.min_notional)?.units()),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_engines() {
        let c = DaemonConfig::default();
        let e = c.engine_config().unwrap();
        assert_eq!(e, EngineConfig::default());
    }

    #[test]
    fn printed_config_reads_back() {
        let c = DaemonConfig::default();
        let text = toml::to_string(&c).unwrap();
        assert_eq!(DaemonConfig::from_toml(&text).unwrap(), c);
        assert!(text.contains("[[symbols]]"), "{text}");
    }

    #[test]
    fn file_and_env_override_defaults() {
        let mut c = DaemonConfig::from_toml(
            "mode = \"pipelined\"\n[engine]\napply_wait_ms = 50\n[governor]\nmode = \"production\"\nmin_kill_score = \"0.5\"\n",
        )
        .unwrap();
        assert_eq!(c.engine.apply_wait_ms, 50);
        assert_eq!(c.engine.table_capacity, 4096);
        let env = |k: &str| match k {
            "APPLY_PERMIT_WAIT_MS" => Some("700".to_string()),
            "APPLY_PERMIT_STEP_MS" => Some("5".to_string()),
            "QUANTUM_ENGINE_APPLY_STEP_MS" => Some("7".to_string()),
            "QUANTUM_RINGS_CAPACITY" => Some("1024".to_string()),
            "QUANTUM_GOVERNOR_MIN_KILL_SCORE" => Some(String::new()),
            _ => None,
        };
        c.apply_env(env).unwrap();
        assert_eq!(c.engine.apply_wait_ms, 700);
        assert_eq!(c.engine.apply_step_ms, 7);
        assert_eq!(c.rings.capacity, 1024);
        assert_eq!(c.governor.min_kill_score, None);
        let e = c.engine_config().unwrap();
        assert_eq!(e.governor.mode, GovMode::Production);
        assert_eq!(c.mode().unwrap(), Mode::Pipelined);
    }

    #[test]
    fn errors_name_the_key() {
        let e = DaemonConfig::from_toml("[engine]\ntable_capacty = 5\n").unwrap_err();
        assert!(e.to_string().contains("table_capacty"), "{e}");
        let e = DaemonConfig::from_toml("[rings]\ncapacity = \"big\"\n").unwrap_err();
        assert!(e.to_string().contains("capacity = \"big\""), "{e}");
        let mut c = DaemonConfig::default();
        let e = c
            .apply_env(|k| (k == "QUANTUM_RINGS_CAPACITY").then(|| "x".into()))
            .unwrap_err();
        assert!(e.to_string().contains("QUANTUM_RINGS_CAPACITY"), "{e}");
        c.rings.capacity = 1000;
        let e = c.engine_config().unwrap_err();
        assert!(e.to_string().contains("rings.capacity"), "{e}");
        let mut c = DaemonConfig::default();
        c.governor.mode = "prod".into();
        assert!(c
            .engine_config()
            .unwrap_err()
            .to_string()
            .contains("governor.mode"));
        let mut c = DaemonConfig::default();
        c.symbols[0].tolerance = "x".into();
        assert!(c
            .engine_config()
            .unwrap_err()
            .to_string()
            .contains("tolerance"));
    }
}
