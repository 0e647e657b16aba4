//! What `ctl metrics` and `ctl top` show: samples of an instance's counters segment and rings
//! (never a question to the daemon), rates between two samples, and the one rule that turns a
//! counter label into a Prometheus series.
//!
//! The rule is generic over labels, so counters the daemon adds or renames appear without a
//! change here. Applied in order (`S` a symbol of the directory, `R` a ring of the instance):
//!
//! | label | series | type |
//! |---|---|---|
//! | `ledger.S`, `exchange.S`, `in_flight.S` (book amounts) | `quantum_book_<prefix>{symbol="S"}`, exact decimal | gauge |
//! | `deny.<stage>.<reason>` | `quantum_deny_total{stage, reason}` | counter |
//! | `deny.<reason>` | `quantum_deny_total{stage="apply", reason}` | counter |
//! | a `_ns`/`_us` label with a percentile segment (`p50`, `p99_9`, `max`, `min`) | `quantum_<rest>_seconds{quantile="0.5"}` | gauge |
//! | another `_ns`/`_us` label | `quantum_<rest>_seconds` | gauge |
//! | in either, a segment `outcome=X` or `transport=X` | that label, `{outcome="X"}` | |
//! | `<name>.R` | `quantum_<name>_total{ring="R"}` | counter |
//! | `<name>.S` | `quantum_<name>_total{symbol="S"}` | counter |
//!
//! A leg of a hedge-mode symbol (`S` = `BTCUSDT:LONG`) is labelled
//! `{symbol="BTCUSDT",position_side="LONG"}`.
//! | a gauge of [`GAUGES`] | `quantum_<label>` | gauge |
//! | anything else | `quantum_<label>_total`, every character but `[A-Za-z0-9_]` as `_` | counter |

use std::collections::BTreeMap;
use std::time::Instant;

use quantum_ipc::{CountersReader, PeerStatus};

use crate::ctl::stats::{ring_rows, RingRow};
use quantum_daemon::stats::amount;

/// Counter labels that are gauges (a level, not a total) without a naming convention saying
/// so; the book amounts and `_ns`/`_us` labels are recognised by their form.
pub const GAUGES: &[&str] = &[
    "peers_alive",
    "ready",
    "journal.snapshot_seq",
    "journal.seq",
    "journal.no_space",
    "reconciling",
    quantum_ipc::latency::SEQ_LABEL,
    "failover.enabled",
    "failover.ttl_ms",
    "failover.renew_ms",
    "failover.drift_ms",
    "failover.recv_window_ms",
    "failover.clock_error_ms",
    "failover.role",
    "failover.epoch",
    LEASE_ROLE,
    LEASE_EPOCH,
    LEASE_AGE_MS,
    LEASE_DEADLINE_IN_MS,
    LEASE_TAKEOVER_MS,
];

/// From the lease segment (failover), added to a sample: 1 while this host leads.
const LEASE_ROLE: &str = "lease.leader";
/// The lease's epoch.
const LEASE_EPOCH: &str = "lease.epoch";
/// How long this host has held the lease (ms; 0 when it does not).
const LEASE_AGE_MS: &str = "lease.age_ms";
/// Time left before the leader's own deadline (ms; 0 when it does not lead).
const LEASE_DEADLINE_IN_MS: &str = "lease.deadline_in_ms";
/// The last takeover this host measured (ms).
const LEASE_TAKEOVER_MS: &str = "lease.takeover_ms";

/// The lease's values as gauges of a sample.
fn lease_gauges(l: &quantum_ipc::lease::Lease) -> Vec<(String, u64)> {
    let now = quantum_ipc::lease::boot_ns();
    let leads = l.leads(now);
    vec![
        (LEASE_ROLE.into(), u64::from(leads)),
        (LEASE_EPOCH.into(), l.epoch),
        (
            LEASE_AGE_MS.into(),
            if leads {
                now.saturating_sub(l.acquired_ns) / 1_000_000
            } else {
                0
            },
        ),
        (
            LEASE_DEADLINE_IN_MS.into(),
            if leads {
                l.deadline_ns.saturating_sub(now) / 1_000_000
            } else {
                0
            },
        ),
        (LEASE_TAKEOVER_MS.into(), l.takeover_ms),
    ]
}

/// Prometheus metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (resets when the daemon restarts).
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Kind {
    /// The word of the `# TYPE` line.
    pub fn word(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// One sample of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Metric name.
    pub name: String,
    /// Label pairs, in order.
    pub labels: Vec<(&'static str, String)>,
    /// Counter or gauge.
    pub kind: Kind,
    /// The value as exposition text (integers and exact decimals stay exact).
    pub value: String,
}

/// Every character Prometheus does not allow in a name, as `_`; runs of `_` collapsed.
fn sanitise(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '_' };
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    out.trim_matches('_').to_string()
}

/// `p50` → `0.5`, `p99_9` → `0.999`, `p999` → `0.999`, `max` → `1`, `min` → `0`.
fn quantile(seg: &str) -> Option<String> {
    match seg {
        "max" => return Some("1".into()),
        "min" => return Some("0".into()),
        _ => {}
    }
    let digits: String = seg
        .strip_prefix('p')?
        .chars()
        .filter(|c| *c != '_')
        .collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    // p50 → 0.50, p999 → 0.999: the digits are the fraction's.
    let q: f64 = format!("0.{digits}").parse().ok()?;
    Some(format!("{q}"))
}

/// Whether the daemon means this label as a gauge.
pub fn is_gauge(label: &str, raw: u64) -> bool {
    amount(label, raw).is_some()
        || GAUGES.contains(&label)
        || label
            .split('.')
            .any(|s| s.ends_with("_ns") || s.ends_with("_us"))
}

/// The labels naming a symbol id: `symbol`, and for a leg of a hedge-mode symbol (directory
/// label `BTCUSDT:LONG`) also `position_side`.
pub fn symbol_labels(label: &str) -> Vec<(&'static str, String)> {
    let (symbol, side) = quantum_core::PositionSide::split_label(label);
    let mut out = vec![("symbol", symbol.to_owned())];
    if side.is_hedge() {
        out.push(("position_side", side.as_str().to_owned()));
    }
    out
}

/// The series of one counter label; `symbols` are the directory's names.
pub fn series_of(label: &str, raw: u64, symbols: &[String]) -> Series {
    let counter = |name: String, labels: Vec<(&'static str, String)>| Series {
        name,
        labels,
        kind: Kind::Counter,
        value: raw.to_string(),
    };
    let segs: Vec<&str> = label.split('.').collect();
    if let Some(q) = amount(label, raw) {
        return Series {
            name: format!("quantum_book_{}", sanitise(segs[0])),
            labels: symbol_labels(&segs[1..].join(".")),
            kind: Kind::Gauge,
            value: q.to_string(),
        };
    }
    match segs.as_slice() {
        ["deny", stage, reason] => {
            return counter(
                "quantum_deny_total".into(),
                vec![("stage", stage.to_string()), ("reason", reason.to_string())],
            )
        }
        ["deny", reason] => {
            return counter(
                "quantum_deny_total".into(),
                vec![("stage", "apply".into()), ("reason", reason.to_string())],
            )
        }
        _ => {}
    }
    if let Some(s) = latency(&segs, raw) {
        return s;
    }
    if let [head @ .., last] = segs.as_slice() {
        if !head.is_empty() {
            let name = format!("quantum_{}_total", sanitise(&head.join("_")));
            if quantum_ipc::contract::by_name(last).is_some() {
                return counter(name, vec![("ring", last.to_string())]);
            }
            if symbols.iter().any(|s| s == last) {
                return counter(name, symbol_labels(last));
            }
        }
    }
    if GAUGES.contains(&label) {
        return Series {
            name: format!("quantum_{}", sanitise(label)),
            labels: Vec::new(),
            kind: Kind::Gauge,
            value: raw.to_string(),
        };
    }
    counter(format!("quantum_{}_total", sanitise(label)), Vec::new())
}

/// A `_ns`/`_us` label as seconds, with its quantile when one segment names it.
fn latency(segs: &[&str], raw: u64) -> Option<Series> {
    let mut scale = None;
    let mut q = None;
    let mut rest = Vec::new();
    let mut tags: Vec<(&'static str, String)> = Vec::new();
    for seg in segs {
        // A `key=value` segment (a latency series' label, `quantum_ipc::latency::tagged`)
        // is a label of its own.
        if let Some((k, v)) = seg.split_once('=') {
            if let Some(k) = quantum_ipc::latency::LABEL_KEYS.iter().find(|l| **l == k) {
                tags.push((k, v.to_string()));
                continue;
            }
        }
        let (base, unit) = if let Some(b) = seg.strip_suffix("_ns") {
            (b, Some(1e9))
        } else if let Some(b) = seg.strip_suffix("_us") {
            (b, Some(1e6))
        } else {
            (*seg, None)
        };
        scale = scale.or(unit);
        rest.push(base);
    }
    // The quantile is the last segment's (`latency.p33.p99_ns`: the stage `p33` is a name,
    // `p99` the quantile), or a segment right after the unit (`chain_ns.p99`).
    if let Some(last) = rest.last().copied() {
        if let Some(quant) = quantile(last) {
            q = Some(quant);
            rest.pop();
        }
    }
    let scale = scale?;
    tags.extend(q.map(|q| ("quantile", q)));
    Some(Series {
        name: format!("quantum_{}_seconds", sanitise(&rest.join("_"))),
        labels: tags,
        kind: Kind::Gauge,
        value: format!("{}", raw as f64 / scale),
    })
}

/// The daemon behind a counters segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// Its pid.
    pub pid: u64,
    /// Whether that pid still runs.
    pub alive: bool,
    /// When it created the segment (Unix ms).
    pub start_ms: u64,
}

/// One look at an instance.
pub struct Sample {
    /// When it was taken.
    pub at: Instant,
    /// The daemon, `None` when the instance has no counters segment.
    pub owner: Option<Owner>,
    /// Every counter, in registration order.
    pub counters: Vec<(String, u64)>,
    /// The symbol directory, by id.
    pub symbols: Vec<(u16, String)>,
    /// The rings that exist.
    pub rings: Vec<RingRow>,
}

impl Sample {
    /// The symbol names.
    pub fn symbol_names(&self) -> Vec<String> {
        self.symbols.iter().map(|(_, n)| n.clone()).collect()
    }

    /// A counter's value.
    pub fn get(&self, label: &str) -> Option<u64> {
        self.counters
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, v)| *v)
    }
}

/// Reads an instance, re-attaching when its daemon is restarted (a new counters segment).
pub struct Source {
    instance: String,
    reader: Option<CountersReader>,
    /// Failover's lease segment (nothing when failover is off).
    lease: quantum_ipc::lease::LeaseReader,
    /// The bridges' latency segments, attached when they appear.
    bridges: Vec<(&'static str, Option<CountersReader>)>,
    peer_timeout_ms: u64,
    /// Log each (re)attachment at info (not under `ctl top`, whose screen stderr would spoil).
    announce: bool,
}

impl Source {
    /// A source for `instance`; peers silent for longer than `peer_timeout_ms` are not alive;
    /// `announce` logs each attachment to a daemon.
    pub fn new(instance: &str, peer_timeout_ms: u64, announce: bool) -> Source {
        Source {
            instance: instance.to_string(),
            reader: None,
            lease: quantum_ipc::lease::LeaseReader::new(instance),
            bridges: quantum_ipc::latency::BRIDGE_SEGMENTS
                .iter()
                .map(|s| (*s, None))
                .collect(),
            peer_timeout_ms,
            announce,
        }
    }

    /// The instance name.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Takes a sample.
    pub fn sample(&mut self) -> Sample {
        let stale = self.reader.as_ref().is_none_or(|r| !r.owner_alive());
        if stale {
            // A dead owner's mapping is kept until a new segment can be opened: it still
            // shows the last values, marked not alive.
            if let Ok(r) = CountersReader::open(&self.instance) {
                let changed = self
                    .reader
                    .as_ref()
                    .is_none_or(|old| old.owner_pid() != r.owner_pid());
                if changed && self.announce {
                    tracing::info!(
                        instance = %self.instance, pid = r.owner_pid(), alive = r.owner_alive(),
                        "attached to the daemon's counters"
                    );
                }
                self.reader = Some(r);
            }
        }
        let at = Instant::now();
        let lease = self
            .lease
            .read()
            .map(|l| lease_gauges(&l))
            .unwrap_or_default()
            .into_iter()
            .chain(self.bridge_latency());
        match &self.reader {
            Some(r) => Sample {
                at,
                owner: Some(Owner {
                    pid: r.owner_pid(),
                    alive: r.owner_alive(),
                    start_ms: r.start_time_ms(),
                }),
                counters: r.counters().into_iter().chain(lease).collect(),
                symbols: r.symbols(),
                rings: ring_rows(&self.instance, self.peer_timeout_ms),
            },
            None => Sample {
                at,
                owner: None,
                counters: Vec::new(),
                symbols: Vec::new(),
                rings: ring_rows(&self.instance, self.peer_timeout_ms),
            },
        }
    }
}

impl Source {
    /// The latency gauges of every running bridge (re-attached when a bridge restarts).
    fn bridge_latency(&mut self) -> Vec<(String, u64)> {
        use quantum_ipc::latency::{parse_label, SEQ_LABEL};
        let mut out = Vec::new();
        for (seg, reader) in &mut self.bridges {
            if reader.as_ref().is_none_or(|r| !r.owner_alive()) {
                *reader = CountersReader::open_named(&self.instance, seg).ok();
            }
            if let Some(r) = reader.as_ref().filter(|r| r.owner_alive()) {
                out.extend(
                    r.counters_consistent(SEQ_LABEL)
                        .into_iter()
                        .filter(|(l, _)| parse_label(l).is_some()),
                );
            }
        }
        out
    }
}

/// Per second, for every counter (not gauge) of `cur` between `prev` and `cur`; empty when
/// the daemon changed in between (its counters restarted from zero).
pub fn rates(prev: &Sample, cur: &Sample) -> BTreeMap<String, f64> {
    let secs = cur.at.duration_since(prev.at).as_secs_f64();
    let same = matches!((prev.owner, cur.owner), (Some(a), Some(b)) if a.pid == b.pid);
    if !same || secs <= 0.0 {
        return BTreeMap::new();
    }
    let before: BTreeMap<&str, u64> = prev
        .counters
        .iter()
        .map(|(l, v)| (l.as_str(), *v))
        .collect();
    cur.counters
        .iter()
        .filter(|(l, v)| !is_gauge(l, *v))
        .map(|(l, v)| {
            let d = v.saturating_sub(before.get(l.as_str()).copied().unwrap_or(0));
            (l.clone(), d as f64 / secs)
        })
        .collect()
}

/// A peer status as one word and 1 when alive.
pub fn peer_state(s: PeerStatus) -> (&'static str, u8) {
    let (w, _) = crate::ctl::peer_word(s);
    (w, u8::from(s.is_alive()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(label: &str, raw: u64) -> Series {
        let names = ["BTCUSDT", "ETHUSDT", "BTCUSDT:LONG", "BTCUSDT:SHORT"];
        series_of(label, raw, &names.map(String::from))
    }

    fn labels(x: &Series) -> Vec<(&str, &str)> {
        x.labels.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    #[test]
    fn deny_reasons_become_one_family_by_stage_and_reason() {
        let x = s("deny.gov.cooldown", 3);
        assert_eq!(x.name, "quantum_deny_total");
        assert_eq!(labels(&x), [("stage", "gov"), ("reason", "cooldown")]);
        assert_eq!((x.kind, x.value.as_str()), (Kind::Counter, "3"));
        let x = s("deny.missing_p33", 1);
        assert_eq!(labels(&x), [("stage", "apply"), ("reason", "missing_p33")]);
    }

    #[test]
    fn ring_and_symbol_scoped_counters_get_a_label() {
        let x = s("records_in.plans", 9);
        assert_eq!(x.name, "quantum_records_in_total");
        assert_eq!(labels(&x), [("ring", "plans")]);
        let x = s("peer_deaths.results", 1);
        assert_eq!(
            (x.name.as_str(), labels(&x)),
            ("quantum_peer_deaths_total", vec![("ring", "results")])
        );
        let x = s("fills.ETHUSDT", 2);
        assert_eq!(labels(&x), [("symbol", "ETHUSDT")]);
        assert_eq!(x.name, "quantum_fills_total");
    }

    #[test]
    fn book_amounts_are_exact_decimal_gauges() {
        let x = s("ledger.BTCUSDT", 1_600_000);
        assert_eq!(x.name, "quantum_book_ledger");
        assert_eq!((x.kind, x.value.as_str()), (Kind::Gauge, "0.016"));
        assert_eq!(labels(&x), [("symbol", "BTCUSDT")]);
        let x = s("exchange.ETHUSDT", (-150_000_000i64) as u64);
        assert_eq!(x.value, "-1.5");
    }

    #[test]
    fn a_hedge_leg_is_labelled_with_its_symbol_and_side() {
        let x = s("ledger.BTCUSDT:SHORT", (-10_000_000i64) as u64);
        assert_eq!(x.value, "-0.1");
        assert_eq!(
            labels(&x),
            [("symbol", "BTCUSDT"), ("position_side", "SHORT")]
        );
        let x = s("fills.BTCUSDT:LONG", 3);
        assert_eq!(x.name, "quantum_fills_total");
        assert_eq!(
            labels(&x),
            [("symbol", "BTCUSDT"), ("position_side", "LONG")]
        );
    }

    #[test]
    fn latency_labels_are_seconds_with_their_quantile() {
        let x = s("chain_ns.p99", 2_500);
        assert_eq!(x.name, "quantum_chain_seconds");
        assert_eq!(labels(&x), [("quantile", "0.99")]);
        assert_eq!((x.kind, x.value.as_str()), (Kind::Gauge, "0.0000025"));
        assert_eq!(
            labels(&s("latency.chain.p99_9_ns", 1)),
            [("quantile", "0.999")]
        );
        assert_eq!(
            s("latency.chain.p99_9_ns", 1).name,
            "quantum_latency_chain_seconds"
        );
        assert_eq!(labels(&s("chain_ns.max", 1)), [("quantile", "1")]);
        // A stage named like a quantile stays a name.
        let x = s("latency.p33.p99_ns", 1);
        assert_eq!(x.name, "quantum_latency_p33_seconds");
        assert_eq!(labels(&x), [("quantile", "0.99")]);
        let x = s("latency.decision.outcome=denied_p33.p99_ns", 2_000);
        assert_eq!(x.name, "quantum_latency_decision_seconds");
        assert_eq!(
            labels(&x),
            [("outcome", "denied_p33"), ("quantile", "0.99")]
        );
        assert_eq!(x.value, "0.000002");
        let x = s("latency.exchange.ack.transport=ws.p50_ns", 1);
        assert_eq!(x.name, "quantum_latency_exchange_ack_seconds");
        assert_eq!(labels(&x), [("transport", "ws"), ("quantile", "0.5")]);
        assert_eq!(labels(&s("chain_ns.p50", 1)), [("quantile", "0.5")]);
        let x = s("last_wait_us", 1_000);
        assert_eq!(
            (x.name.as_str(), x.value.as_str()),
            ("quantum_last_wait_seconds", "0.001")
        );
        assert!(x.labels.is_empty());
    }

    #[test]
    fn everything_else_is_a_sanitised_counter_or_a_known_gauge() {
        assert_eq!(
            s("results.executed", 1).name,
            "quantum_results_executed_total"
        );
        assert_eq!(s("results", 1).name, "quantum_results_total");
        assert_eq!(s("plans_in", 1).name, "quantum_plans_in_total");
        assert_eq!(
            s("journal.bytes-written", 1).name,
            "quantum_journal_bytes_written_total"
        );
        let x = s("peers_alive", 2);
        assert_eq!(
            (x.name.as_str(), x.kind),
            ("quantum_peers_alive", Kind::Gauge)
        );
    }

    #[test]
    fn gauges_have_no_rate() {
        assert!(is_gauge("peers_alive", 1));
        assert!(is_gauge("ledger.BTCUSDT", 1));
        assert!(is_gauge("chain_ns.p99", 1));
        assert!(!is_gauge("plans_in", 1));
    }
}
