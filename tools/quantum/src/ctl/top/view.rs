//! What `ctl top` draws, from two samples ([`crate::ctl::metrics::model`]): totals and rates,
//! deny reasons, rings and their peers, the book per symbol, latency gauges when the daemon
//! publishes them. Drawn into any ratatui backend: the terminal, or a text buffer
//! ([`render_text`]) for `--once` and the tests.

use std::collections::BTreeMap;
use std::time::Duration;

use ratatui::backend::TestBackend;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table};
use ratatui::{Frame, Terminal};

use crate::ctl::metrics::model::{is_gauge, peer_state, rates, series_of, Sample};
use quantum_daemon::stats::{amount, AMOUNT_GAUGES};

/// Counters shown first, in this order, whatever their value; the others follow when not 0.
const FIRST: &[&str] = &[
    "plans_in",
    "results",
    "results.executed",
    "results.blocked",
    "results.duplicate",
    "results.non_execute",
    "orders_out",
    "commands_in",
    "permits_in",
    "rejects_in",
];

/// One counter row.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterRow {
    /// Counter label.
    pub label: String,
    /// Total since the daemon started.
    pub total: u64,
    /// Per second over the last interval (none before two samples).
    pub rate: Option<f64>,
}

/// One ring row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingLine {
    name: &'static str,
    depth: u64,
    capacity: u64,
    full_events: u64,
    producer: &'static str,
    consumer: &'static str,
}

/// Everything one frame shows.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// The header line.
    pub header: String,
    /// Totals and rates.
    pub counters: Vec<CounterRow>,
    /// Deny reasons seen.
    pub denies: Vec<CounterRow>,
    rings: Vec<RingLine>,
    /// Per symbol: name, ledger, exchange, in flight.
    book: Vec<[String; 4]>,
    /// Latency gauges: label and value.
    latency: Vec<(String, String)>,
}

fn uptime(start_ms: u64) -> String {
    let now = quantum_ipc::liveness::unix_ms();
    let s = now.saturating_sub(start_ms) / 1000;
    format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
}

impl View {
    /// The view of `cur`, with rates since `prev`.
    pub fn new(instance: &str, prev: Option<&Sample>, cur: &Sample, interval: Duration) -> View {
        let r: BTreeMap<String, f64> = prev.map(|p| rates(p, cur)).unwrap_or_default();
        let header = match cur.owner {
            Some(o) => format!(
                "quantum top  instance {instance}  pid {}  {}  up {}  peers alive {}  every {:.1} s  (q: quit)",
                o.pid,
                if o.alive { "running" } else { "NOT RUNNING" },
                uptime(o.start_ms),
                cur.get("peers_alive").unwrap_or(0),
                interval.as_secs_f64()
            ),
            None => format!("quantum top  instance {instance}  NOT RUNNING (no counters segment)  (q: quit)"),
        };
        let row = |l: &str, v: u64| CounterRow {
            label: l.to_string(),
            total: v,
            rate: r.get(l).copied(),
        };
        let counters_of = |l: &str, v: u64| !is_gauge(l, v) && !l.starts_with("deny.");
        let mut counters: Vec<CounterRow> = FIRST
            .iter()
            .filter_map(|l| cur.get(l).map(|v| row(l, v)))
            .collect();
        counters.extend(
            cur.counters
                .iter()
                .filter(|(l, v)| counters_of(l, *v) && !FIRST.contains(&l.as_str()) && *v > 0)
                .map(|(l, v)| row(l, *v)),
        );
        let denies = cur
            .counters
            .iter()
            .filter(|(l, v)| l.starts_with("deny.") && *v > 0)
            .map(|(l, v)| row(l, *v))
            .collect();
        let rings = cur
            .rings
            .iter()
            .map(|x| RingLine {
                name: x.name,
                depth: x.stats.depth,
                capacity: x.stats.capacity,
                full_events: x.stats.full_events,
                producer: peer_state(x.producer).0,
                consumer: match x.consumers.as_slice() {
                    [] => "none",
                    [(only, _)] => peer_state(*only).0,
                    many => {
                        if many.iter().any(|(s, _)| s.is_alive()) {
                            "alive"
                        } else {
                            "gone"
                        }
                    }
                },
            })
            .collect();
        let book = cur
            .symbols
            .iter()
            .map(|(_, sym)| {
                let g = |prefix: &str| {
                    let label = format!("{prefix}.{sym}");
                    cur.get(&label)
                        .and_then(|v| amount(&label, v))
                        .map_or("-".to_string(), |q| q.to_string())
                };
                [
                    sym.clone(),
                    g(AMOUNT_GAUGES[0]),
                    g(AMOUNT_GAUGES[1]),
                    g(AMOUNT_GAUGES[2]),
                ]
            })
            .collect();
        let names = cur.symbol_names();
        let latency = cur
            .counters
            .iter()
            .filter(|(l, v)| is_gauge(l, *v) && amount(l, *v).is_none() && l != "peers_alive")
            .map(|(l, v)| {
                let s = series_of(l, *v, &names);
                let secs: f64 = s.value.parse().unwrap_or(0.0);
                (l.clone(), format!("{:.1} µs", secs * 1e6))
            })
            .collect();
        View {
            header,
            counters,
            denies,
            rings,
            book,
            latency,
        }
    }
}

fn rate_text(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{r:.1}/s"))
}

fn counter_table<'a>(title: &'a str, rows: &'a [CounterRow]) -> Table<'a> {
    let bold = Style::default().add_modifier(Modifier::BOLD);
    Table::new(
        rows.iter().map(|c| {
            Row::new(vec![
                c.label.clone(),
                c.total.to_string(),
                rate_text(c.rate),
            ])
        }),
        [
            Constraint::Min(24),
            Constraint::Length(12),
            Constraint::Length(12),
        ],
    )
    .header(Row::new(vec!["counter", "total", "rate"]).style(bold))
    .block(Block::bordered().title(title))
}

/// Draws `v` into `f`.
pub fn draw(f: &mut Frame, v: &View) {
    let [head, body] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(f.area());
    f.render_widget(Paragraph::new(Line::from(v.header.as_str())), head);
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(body);
    f.render_widget(counter_table("Totals and rates", &v.counters), left);
    let rows = |n: usize| Constraint::Length(n as u16 + 3);
    let [denies, rings, book, lat] = Layout::vertical([
        rows(v.denies.len().max(1)),
        rows(v.rings.len()),
        rows(v.book.len()),
        Constraint::Min(0),
    ])
    .areas(right);
    f.render_widget(counter_table("Deny reasons", &v.denies), denies);
    draw_rings(f, v, rings);
    draw_book(f, v, book);
    draw_latency(f, v, lat);
}

fn draw_rings(f: &mut Frame, v: &View, area: Rect) {
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let t = Table::new(
        v.rings.iter().map(|r| {
            Row::new(vec![
                r.name.to_string(),
                format!("{}/{}", r.depth, r.capacity),
                r.full_events.to_string(),
                r.producer.to_string(),
                r.consumer.to_string(),
            ])
        }),
        [
            Constraint::Length(9),
            Constraint::Length(14),
            Constraint::Length(6),
            Constraint::Length(9),
            Constraint::Length(9),
        ],
    )
    .header(Row::new(vec!["ring", "depth", "full", "producer", "consumer"]).style(bold))
    .block(Block::bordered().title("Rings"));
    f.render_widget(t, area);
}

fn draw_book(f: &mut Frame, v: &View, area: Rect) {
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let t = Table::new(
        v.book.iter().map(|b| Row::new(b.to_vec())),
        [
            Constraint::Length(12),
            Constraint::Length(14),
            Constraint::Length(14),
            Constraint::Length(14),
        ],
    )
    .header(Row::new(vec!["symbol", "ledger", "exchange", "in flight"]).style(bold))
    .block(Block::bordered().title("Book"));
    f.render_widget(t, area);
}

fn draw_latency(f: &mut Frame, v: &View, area: Rect) {
    let text = if v.latency.is_empty() {
        vec![Line::from("the daemon publishes no latency gauges")]
    } else {
        v.latency
            .iter()
            .map(|(l, val)| Line::from(format!("{l:<32} {val}")))
            .collect()
    };
    f.render_widget(
        Paragraph::new(text).block(Block::bordered().title("Latency")),
        area,
    );
}

/// One frame of `v` as text, `width` × `height` cells, trailing blanks trimmed.
pub fn render_text(v: &View, width: u16, height: u16) -> String {
    // Drawing into memory cannot fail: the test backend's error type has no values.
    let mut t = Terminal::new(TestBackend::new(width, height)).unwrap_or_else(|e| match e {});
    t.draw(|f| draw(f, v)).unwrap_or_else(|e| match e {});
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut line = String::new();
        for x in 0..buf.area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::metrics::model::Owner;
    use std::time::Instant;

    fn sample(at: Instant, plans: u64) -> Sample {
        Sample {
            at,
            owner: Some(Owner {
                pid: 42,
                alive: true,
                start_ms: quantum_ipc::liveness::unix_ms(),
            }),
            counters: vec![
                ("plans_in".into(), plans),
                ("results".into(), plans),
                ("deny.p33.no_position".into(), 3),
                ("deny.gov.cooldown".into(), 0),
                ("ledger.BTCUSDT".into(), 6_200_000),
                ("journal.records".into(), 9),
                ("chain_ns.p99".into(), 2_500),
            ],
            symbols: vec![(0, "BTCUSDT".into())],
            rings: Vec::new(),
        }
    }

    #[test]
    fn a_frame_shows_totals_rates_denies_book_and_latency() {
        let t0 = Instant::now();
        let a = sample(t0, 1_000);
        let b = sample(t0 + Duration::from_secs(2), 5_000);
        let v = View::new("i1", Some(&a), &b, Duration::from_secs(2));
        let text = render_text(&v, 140, 30);
        assert!(text.contains("instance i1  pid 42  running"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.contains("plans_in") && l.contains("5000") && l.contains("2000.0/s")),
            "{text}"
        );
        assert!(text.contains("deny.p33.no_position"), "{text}");
        assert!(
            !text.contains("deny.gov.cooldown"),
            "zero denies are left out:\n{text}"
        );
        assert!(
            text.contains("journal.records"),
            "new counters appear:\n{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.contains("BTCUSDT") && l.contains("0.062")),
            "{text}"
        );
        assert!(
            text.contains("chain_ns.p99") && text.contains("2.5 µs"),
            "{text}"
        );
        // Without a previous sample there is no rate yet.
        let v = View::new("i1", None, &b, Duration::from_secs(2));
        assert!(v.counters.iter().all(|c| c.rate.is_none()));
    }
}
