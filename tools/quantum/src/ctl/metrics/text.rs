//! The Prometheus text exposition format (version 0.0.4) of a [`Sample`]: one `# HELP` and
//! `# TYPE` per family, its samples together, label values escaped.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::model::{peer_state, series_of, Kind, Sample};

/// The content type of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Counts of the exporter itself.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExporterCounts {
    /// Scrapes answered.
    pub scrapes: u64,
    /// Requests refused (not GET/HEAD, unknown path, unreadable).
    pub bad_requests: u64,
}

struct Family {
    kind: Kind,
    help: String,
    samples: Vec<(Vec<(&'static str, String)>, String)>,
}

#[derive(Default)]
struct Families {
    map: BTreeMap<String, Family>,
    collisions: u64,
}

impl Families {
    fn add(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        labels: Vec<(&'static str, String)>,
        value: String,
    ) {
        let f = self.map.entry(name.to_string()).or_insert_with(|| Family {
            kind,
            help: help.to_string(),
            samples: Vec::new(),
        });
        // Two labels mapped to one series (or one name with two types) would make the whole
        // exposition invalid for Prometheus: keep the first, count the rest.
        if f.kind != kind || f.samples.iter().any(|(l, _)| *l == labels) {
            self.collisions += 1;
            return;
        }
        f.samples.push((labels, value));
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition of `cur`, with per-second `rates` by counter label.
pub fn render(
    instance: &str,
    cur: &Sample,
    rates: &BTreeMap<String, f64>,
    counts: ExporterCounts,
) -> String {
    let mut f = Families::default();
    let up = cur.owner.is_some_and(|o| o.alive);
    f.add(
        "quantum_up",
        Kind::Gauge,
        "1 when the instance's daemon is running",
        Vec::new(),
        u8::from(up).to_string(),
    );
    if let Some(o) = cur.owner {
        f.add(
            "quantum_daemon_info",
            Kind::Gauge,
            "the daemon behind the counters segment",
            vec![
                ("quantum_instance", instance.to_string()),
                ("pid", o.pid.to_string()),
            ],
            "1".into(),
        );
        f.add(
            "quantum_daemon_start_time_seconds",
            Kind::Gauge,
            "when the daemon created its counters segment, Unix time",
            Vec::new(),
            format!("{}", o.start_ms as f64 / 1000.0),
        );
    }
    for (id, name) in &cur.symbols {
        f.add(
            "quantum_symbol_info",
            Kind::Gauge,
            "the symbol directory: id of each symbol",
            {
                let mut l = super::model::symbol_labels(name);
                l.push(("id", id.to_string()));
                l
            },
            "1".into(),
        );
    }
    let names = cur.symbol_names();
    for (label, raw) in &cur.counters {
        let s = series_of(label, *raw, &names);
        f.add(
            &s.name,
            s.kind,
            &format!("from the counters segment (label {label})"),
            s.labels,
            s.value,
        );
    }
    for (label, r) in rates {
        f.add(
            "quantum_rate_per_second",
            Kind::Gauge,
            "per second over the exporter's last sampling interval, by counter label",
            vec![("counter", label.clone())],
            format!("{r:.3}"),
        );
    }
    for r in &cur.rings {
        let ring = || vec![("ring", r.name.to_string())];
        let st = &r.stats;
        for (name, kind, help, v) in [
            (
                "quantum_ring_capacity",
                Kind::Gauge,
                "slots of the ring",
                st.capacity,
            ),
            (
                "quantum_ring_depth",
                Kind::Gauge,
                "records waiting in the ring",
                st.depth,
            ),
            (
                "quantum_ring_pushed_total",
                Kind::Counter,
                "records ever pushed",
                st.pushed,
            ),
            (
                "quantum_ring_popped_total",
                Kind::Counter,
                "records ever popped",
                st.popped,
            ),
            (
                "quantum_ring_full_events_total",
                Kind::Counter,
                "pushes that found the ring full (back-pressure)",
                st.full_events,
            ),
            (
                "quantum_ring_invalid_total",
                Kind::Counter,
                "records the consumer refused as invalid",
                st.invalid,
            ),
        ] {
            f.add(name, kind, help, ring(), v.to_string());
        }
        let peers = std::iter::once(("producer", 0usize, r.producer, 0u64)).chain(
            r.consumers
                .iter()
                .enumerate()
                .map(|(i, (s, missed))| ("consumer", i, *s, *missed)),
        );
        for (role, index, status, missed) in peers {
            let (word, alive) = peer_state(status);
            let mut l = ring();
            l.push(("role", role.to_string()));
            if role == "consumer" {
                // A broadcast ring has several readers; an SPSC ring's one is reader 0.
                l.push(("reader", index.to_string()));
                f.add(
                    "quantum_ring_reader_missed",
                    Kind::Gauge,
                    "events this reader of a broadcast ring missed because the writer lapped it",
                    l.clone(),
                    missed.to_string(),
                );
            }
            f.add(
                "quantum_ring_peer_up",
                Kind::Gauge,
                "1 when the ring's peer in this role is alive (recent heartbeat)",
                l.clone(),
                alive.to_string(),
            );
            l.push(("state", word.to_string()));
            f.add(
                "quantum_ring_peer_state",
                Kind::Gauge,
                "the peer's state (never, alive, stale, dead, detached) as a label",
                l,
                "1".into(),
            );
        }
    }
    f.add(
        "quantum_exporter_scrapes_total",
        Kind::Counter,
        "scrapes this exporter answered",
        Vec::new(),
        counts.scrapes.to_string(),
    );
    f.add(
        "quantum_exporter_bad_requests_total",
        Kind::Counter,
        "requests this exporter refused",
        Vec::new(),
        counts.bad_requests.to_string(),
    );
    let collisions = f.collisions;
    f.add(
        "quantum_exporter_label_collisions",
        Kind::Gauge,
        "counter labels left out because another label maps to the same series",
        Vec::new(),
        collisions.to_string(),
    );
    let mut out = String::new();
    for (name, fam) in &f.map {
        let help = fam.help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {}", fam.kind.word());
        for (labels, value) in &fam.samples {
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {value}");
            } else {
                let l: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                let _ = writeln!(out, "{name}{{{}}} {value}", l.join(","));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::metrics::model::{rates, Owner};
    use std::time::{Duration, Instant};

    fn sample(at: Instant, plans: u64) -> Sample {
        Sample {
            at,
            owner: Some(Owner {
                pid: 7,
                alive: true,
                start_ms: 1_700_000_000_000,
            }),
            counters: vec![
                ("plans_in".into(), plans),
                ("deny.p33.no_position".into(), 2),
                ("deny.gov.cooldown".into(), 1),
                ("ledger.BTC\"X".into(), 100_000_000),
                ("peers_alive".into(), 1),
                // Maps to the same series as plans_in: left out, counted.
                ("plans.in".into(), 5),
            ],
            symbols: vec![(0, "BTC\"X".into())],
            rings: Vec::new(),
        }
    }

    #[test]
    fn families_are_grouped_typed_escaped_and_rated() {
        let t0 = Instant::now();
        let a = sample(t0, 100);
        let b = sample(t0 + Duration::from_secs(2), 300);
        let text = render("i1", &b, &rates(&a, &b), ExporterCounts::default());
        let deny: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("quantum_deny_total{"))
            .collect();
        assert_eq!(deny.len(), 2, "{text}");
        assert_eq!(text.matches("# TYPE quantum_deny_total counter").count(), 1);
        assert!(
            text.contains("quantum_book_ledger{symbol=\"BTC\\\"X\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("quantum_plans_in_total 300\n"), "{text}");
        assert!(
            text.contains("quantum_rate_per_second{counter=\"plans_in\"} 100.000\n"),
            "{text}"
        );
        assert!(!text.contains("counter=\"peers_alive\""), "{text}");
        assert!(
            text.contains("quantum_exporter_label_collisions 1\n"),
            "{text}"
        );
        assert!(text.contains("quantum_up 1\n"));
    }
}
