//! `ctl stats`, `ctl rings`, `ctl gc`.
//!
//! `ctl stats` shows the book gauges (`ledger.<S>`, `exchange.<S>`, `in_flight.<S>`) as exact
//! decimals: a `book` line per symbol in text, an `amounts` object (label → decimal string)
//! in `--json`; they are left out of `counters` and `rates`.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use quantum_ipc::broadcast::Broadcast;
use quantum_ipc::contract::{self, Shape};
use quantum_ipc::{list_segments, remove_stale_segments, PeerStatus, Ring, RingSpec, SegmentKind};

use super::{open_counters, peer_text, peer_word, DaemonState, Exit};
use quantum_daemon::stats::{amount, AMOUNT_GAUGES};

/// Options of `ctl stats`.
#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Instance name.
    #[arg(long)]
    pub instance: String,
    /// Print again every SECS seconds until interrupted.
    #[arg(long, value_name = "SECS")]
    pub watch: Option<f64>,
    /// Interval between the two samples rates are computed from (ms).
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// A peer whose heartbeat is older than this is not alive (ms).
    #[arg(long, default_value_t = 3000)]
    pub peer_timeout_ms: u64,
}

/// Options of `ctl rings`.
#[derive(Args, Debug)]
pub struct RingsArgs {
    /// Instance name.
    #[arg(long)]
    pub instance: String,
    /// Also remove the instance's segments whose creator is dead.
    #[arg(long)]
    pub remove_stale: bool,
    /// A peer whose heartbeat is older than this is not alive (ms).
    #[arg(long, default_value_t = 3000)]
    pub peer_timeout_ms: u64,
}

/// Options of `ctl gc`.
#[derive(Args, Debug)]
pub struct GcArgs {
    /// Only this instance (default: every instance).
    #[arg(long)]
    pub instance: Option<String>,
}

/// One ring of an instance as `ctl stats`, `ctl metrics` and `ctl top` show it.
pub(super) struct RingRow {
    pub name: &'static str,
    pub stats: quantum_ipc::RingStats,
    pub producer: PeerStatus,
    /// The SPSC consumer, or the broadcast ring's readers (status, events missed).
    pub consumers: Vec<(PeerStatus, u64)>,
}

fn broadcast_stats(b: &Broadcast) -> quantum_ipc::RingStats {
    let published = b.next_seq() - b.base_seq();
    quantum_ipc::RingStats {
        capacity: b.capacity() as u64,
        slot_size: 64,
        depth: published.min(b.capacity() as u64),
        pushed: published,
        ..Default::default()
    }
}

pub(super) fn ring_rows(instance: &str, timeout: u64) -> Vec<RingRow> {
    contract::RINGS
        .iter()
        .filter_map(|def| {
            let spec = RingSpec::new(instance, def.name, 0);
            Some(match def.shape {
                Shape::Spsc => {
                    let ring = Ring::open(&spec).ok()?;
                    RingRow {
                        name: def.name,
                        stats: ring.stats(),
                        producer: ring.producer_status(timeout),
                        consumers: vec![(ring.consumer_status(timeout), 0)],
                    }
                }
                Shape::Broadcast => {
                    let b = Broadcast::open(&spec).ok()?;
                    RingRow {
                        name: def.name,
                        stats: broadcast_stats(&b),
                        producer: b.writer_status(timeout),
                        consumers: b
                            .readers(timeout)
                            .into_iter()
                            .map(|r| (r.status, r.missed))
                            .collect(),
                    }
                }
            })
        })
        .collect()
}

fn consumers_text(c: &[(PeerStatus, u64)]) -> String {
    if c.is_empty() {
        return "no reader".into();
    }
    c.iter()
        .map(|(s, missed)| {
            if *missed > 0 {
                format!("{} (missed {missed})", peer_text(*s))
            } else {
                peer_text(*s)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `ctl stats`.
pub fn stats(a: StatsArgs) -> Result<()> {
    let c = open_counters(&a.instance)?;
    // A daemon that is still starting has no rings yet: answering as if it ran would let a
    // script go on to `ctl inject` too early. `--watch` shows the state and carries on.
    if let (DaemonState::Starting(pid), None) = (DaemonState::of(&c), a.watch) {
        if a.json {
            println!(
                "{}",
                serde_json::json!({"instance": a.instance, "pid": pid, "state": "starting", "running": false})
            );
        }
        return Err(Exit {
            code: 1,
            message: format!(
                "instance {} is starting (pid {pid}): it recovers its journal and creates its rings, then answers",
                a.instance
            ),
        }
        .into());
    }
    // Written with `?`, so a reader that closed the pipe (`| head`) ends the loop quietly.
    let mut out = std::io::stdout().lock();
    // Failover: the lease this host's lease holder publishes (none when failover is off).
    let mut lease_reader = quantum_ipc::lease::LeaseReader::new(&a.instance);
    loop {
        let before: BTreeMap<String, u64> = c.counters().into_iter().collect();
        std::thread::sleep(Duration::from_millis(a.interval_ms.max(1)));
        let after = c.counters();
        let secs = a.interval_ms.max(1) as f64 / 1000.0;
        let rate = |label: &str, v: u64| {
            (v.saturating_sub(before.get(label).copied().unwrap_or(0))) as f64 / secs
        };
        // The book's amount gauges are signed fixed-point: shown as exact decimals, apart.
        let (amounts, after): (Vec<_>, Vec<_>) = after
            .into_iter()
            .partition(|(l, v)| amount(l, *v).is_some());
        let amounts: BTreeMap<String, String> = amounts
            .into_iter()
            .filter_map(|(l, v)| Some((amount(&l, v)?.to_string(), l)))
            .map(|(q, l)| (l, q))
            .collect();
        let rows = ring_rows(&a.instance, a.peer_timeout_ms);
        let lease = lease_reader.read();
        let now_boot = quantum_ipc::lease::boot_ns();
        let state = DaemonState::of(&c);
        let running = matches!(state, DaemonState::Up(_));
        if a.json {
            let counters: serde_json::Map<_, _> = after
                .iter()
                .map(|(l, v)| (l.clone(), serde_json::json!(v)))
                .collect();
            let rates: serde_json::Map<_, _> = after
                .iter()
                .map(|(l, v)| (l.clone(), serde_json::json!(rate(l, *v))))
                .collect();
            let rings: serde_json::Map<_, _> = rows
                .iter()
                .map(|r| {
                    let (p, ppid) = peer_word(r.producer);
                    let consumers: Vec<_> = r
                        .consumers
                        .iter()
                        .map(|(s, missed)| {
                            let (w, pid) = peer_word(*s);
                            serde_json::json!({"status": w, "pid": pid, "missed": missed})
                        })
                        .collect();
                    (
                        r.name.to_string(),
                        serde_json::json!({
                            "capacity": r.stats.capacity, "depth": r.stats.depth,
                            "pushed": r.stats.pushed, "popped": r.stats.popped,
                            "full_events": r.stats.full_events, "invalid": r.stats.invalid,
                            "producer": p, "producer_pid": ppid,
                            "consumers": consumers,
                        }),
                    )
                })
                .collect();
            writeln!(
                out,
                "{}",
                serde_json::json!({
                    "instance": a.instance, "pid": c.owner_pid(), "running": running,
                    "state": state.word(),
                    "counters": counters, "rates": rates, "amounts": amounts,
                    "rings": rings,
                    "lease": lease.as_ref().map(|l| super::lease::json(l, now_boot)),
                })
            )?;
        } else {
            writeln!(
                out,
                "instance {} pid {} {}; rates over {:.1} s",
                a.instance,
                c.owner_pid(),
                match state {
                    DaemonState::Up(_) => "running",
                    DaemonState::Starting(_) => "STARTING (no rings yet)",
                    DaemonState::Gone(_) => "NOT RUNNING",
                },
                secs
            )?;
            if let Some(l) = &lease {
                for line in super::lease::text(&a.instance, l, now_boot).lines() {
                    writeln!(out, "  {}", line.trim_start())?;
                }
            }
            let mut denies = Vec::new();
            for (label, v) in &after {
                if label.starts_with("deny.") {
                    if *v > 0 {
                        denies.push((label, *v));
                    }
                    continue;
                }
                writeln!(out, "  {label:<42} {v:>14} {:>12.1}/s", rate(label, *v))?;
            }
            if denies.is_empty() {
                writeln!(out, "  deny reasons: none")?;
            }
            for (label, v) in denies {
                writeln!(out, "  {:<42} {v:>14} {:>12.1}/s", label, rate(label, v))?;
            }
            if lease.as_ref().is_some_and(|l| !l.may_send(now_boot)) {
                writeln!(
                    out,
                    "  book: as this host left it at its last lead (a standby keeps no ledger; the leader's is current)"
                )?;
            }
            for (_, symbol) in c.symbols() {
                let row: Vec<String> = AMOUNT_GAUGES
                    .iter()
                    .filter_map(|g| {
                        let v = amounts.get(&format!("{g}.{symbol}"))?;
                        Some(format!("{g} {v:<14}"))
                    })
                    .collect();
                if !row.is_empty() {
                    writeln!(out, "  book {symbol:<16} {}", row.join("  ").trim_end())?;
                }
            }
            for r in &rows {
                writeln!(
                    out,
                    "  ring {:<9} depth {:>8}/{:<8} producer {} | consumer {}",
                    r.name,
                    r.stats.depth,
                    r.stats.capacity,
                    peer_text(r.producer),
                    consumers_text(&r.consumers)
                )?;
            }
        }
        match a.watch {
            Some(s) => {
                let rest = Duration::from_secs_f64(s.max(0.0))
                    .saturating_sub(Duration::from_millis(a.interval_ms));
                std::thread::sleep(rest);
            }
            None => return Ok(()),
        }
    }
}

/// `ctl rings`.
pub fn rings(a: RingsArgs) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if a.remove_stale {
        let done = remove_stale_segments(Some(&a.instance)).context("cannot remove segments")?;
        for id in &done.removed {
            writeln!(out, "removed {id}")?;
        }
        for (id, why) in &done.kept {
            writeln!(out, "kept {id}: {why}")?;
        }
    }
    let segs = list_segments(Some(&a.instance)).context("cannot list /dev/shm")?;
    if segs.is_empty() {
        writeln!(out, "instance {}: no segments", a.instance)?;
    }
    for s in segs {
        let owner = format!(
            "owner pid {} {}",
            s.owner_pid,
            if s.owner_alive { "alive" } else { "dead" }
        );
        match s.kind {
            SegmentKind::Ring => match Ring::open(&RingSpec::new(&a.instance, &s.name, 0)) {
                Ok(ring) => {
                    let st = ring.stats();
                    // Which journal the records belong to (ingress rings, stamped by the daemon).
                    let journal = ring
                        .journal_stamp()
                        .map(|(id, dir)| format!("; journal {id:016x} in {dir}"))
                        .unwrap_or_default();
                    writeln!(
                        out,
                        "{} ring capacity {} depth {} pushed {} popped {} full_events {} invalid {} {owner}; producer {}; consumer {}{journal}",
                        s.os_id,
                        st.capacity,
                        st.depth,
                        st.pushed,
                        st.popped,
                        st.full_events,
                        st.invalid,
                        peer_text(ring.producer_status(a.peer_timeout_ms)),
                        peer_text(ring.consumer_status(a.peer_timeout_ms)),
                    )?;
                }
                Err(e) => writeln!(out, "{} ring (cannot open: {e}) {owner}", s.os_id)?,
            },
            SegmentKind::Broadcast => {
                match Broadcast::open(&RingSpec::new(&a.instance, &s.name, 0)) {
                    Ok(b) => {
                        let readers: Vec<_> = b
                            .readers(a.peer_timeout_ms)
                            .into_iter()
                            .map(|r| (r.status, r.missed))
                            .collect();
                        writeln!(
                            out,
                            "{} broadcast capacity {} next_seq {} base_seq {} {owner}; writer {}; readers {}",
                            s.os_id,
                            b.capacity(),
                            b.next_seq(),
                            b.base_seq(),
                            peer_text(b.writer_status(a.peer_timeout_ms)),
                            consumers_text(&readers)
                        )?;
                    }
                    Err(e) => writeln!(out, "{} broadcast (cannot open: {e}) {owner}", s.os_id)?,
                }
            }
            SegmentKind::Counters => {
                writeln!(out, "{} counters {} bytes {owner}", s.os_id, s.bytes)?
            }
            SegmentKind::Unknown => writeln!(out, "{} unknown {} bytes", s.os_id, s.bytes)?,
        }
    }
    Ok(())
}

/// `ctl gc`.
pub fn gc(a: GcArgs) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let done = remove_stale_segments(a.instance.as_deref()).context("cannot remove segments")?;
    for id in &done.removed {
        writeln!(out, "removed {id}")?;
    }
    for (id, why) in &done.kept {
        writeln!(
            out,
            "kept {id}: {why}; the next `quantum run` of the instance takes it over"
        )?;
    }
    writeln!(out, "{} stale segment(s) removed", done.removed.len())?;
    Ok(())
}
