//! How fast a journal replays: `quantum replay`'s work (read, check, decode, re-decide, compare)
//! on journals of 10^6 and 10^7 events written by the engine.
//!
//! ```text
//! cargo run --release -p quantum-bench --example replay [-- --events 1000000,10000000] [--keep DIR]
//! ```
//!
//! Each journal is a day and more of one core's life on a mocked clock, a plan every 100 ms
//! over three symbols: every plan accepted and judged, its order sent, accepted and filled,
//! then the exchange's position after the fill (a position closed down to little is opened
//! again, the ledger synced to it); a re-delivered plan every 50 (a duplicate). So about ten
//! events per plan, and the dedupe set holds up to a day of ids (864,000) as in production. The journal starts with a
//! `Started` event, as a daemon's does. Then it is replayed under the configuration it was
//! written with, from the files, as `quantum replay` does: every decision must come out the
//! same (the example fails otherwise). Printed: events, decisions, seconds, events per second.
//! `--keep DIR` leaves the journals in DIR/<events> (with their `symbols` file) for
//! `quantum replay` and `quantum ctl journal state`; otherwise they go in a temporary
//! directory that is removed.
//!
//! Benchmarks measure; nothing here asserts a speed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use quantum_core::event::Event;
use quantum_core::orders::{OrderInput, Report};
use quantum_core::recovery::State;
use quantum_core::replay::Replay;
use quantum_core::{
    Action, Clock, Command, Decision, Engine, EngineConfig, Input, Plan, PlanId, Qty, SymbolId,
};
use quantum_daemon::audit::Audit;
use quantum_ipc::codes::{OrderStatus, ReportSource};
use quantum_ipc::journal::{Journal, Options};

/// Writes a journal of `events` events, or the few more that end the last plan's, into `dir`.
fn write(dir: &Path, events: u64) -> anyhow::Result<u64> {
    std::fs::create_dir_all(dir)?;
    let cfg = EngineConfig::default();
    let names: Vec<&str> = cfg.symbols.iter().map(|s| s.name.as_str()).collect();
    quantum_daemon::write_journal_symbols(dir, &names)?;
    let (clock, mock) = Clock::mock();
    mock.increment(Duration::from_secs(48 * 3600));
    let mut e = Engine::new(cfg, clock.clone())?;
    let (mut j, _) =
        Journal::open(dir, Options::default(), 0).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut n = 0u64;
    let append = |j: &mut Journal, n: &mut u64, ev: &Event| -> anyhow::Result<()> {
        j.append(&ev.to_message().encode())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        *n += 1;
        Ok(())
    };
    append(
        &mut j,
        &mut n,
        &Event::Started {
            history: false,
            at_ms: clock.wall_ms(clock.now_ns()),
            since_ms: 0,
        },
    )?;
    let big: Qty = "1000000".parse()?;
    let mut held = [big; 3];
    let mut out: Vec<Event> = Vec::new();
    let feed = |e: &mut Engine, i: Input, out: &mut Vec<Event>| {
        let _ = e.handle(i, 0, &mut |ev| out.push(ev));
    };
    feed(
        &mut e,
        Input::Command(Command::AccountMode { hedge: false }),
        &mut out,
    );
    for s in 0..3u16 {
        feed(
            &mut e,
            Input::Command(Command::Position {
                symbol: SymbolId(s),
                amount: big,
                mark: "100".parse()?,
            }),
            &mut out,
        );
        feed(
            &mut e,
            Input::Command(Command::SetLedger {
                symbol: SymbolId(s),
                amount: big,
            }),
            &mut out,
        );
    }
    let mut id = 0x5eed_u64;
    let mut i = 0u64;
    loop {
        for ev in out.drain(..) {
            append(&mut j, &mut n, &ev)?;
        }
        if n >= events {
            break;
        }
        mock.increment(Duration::from_millis(100));
        i += 1;
        let s = SymbolId((i % 3) as u16);
        let plan_id = if i % 50 == 0 {
            id // a re-delivery of the last plan
        } else {
            id = id
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            id
        };
        let plan = Plan::exit(PlanId(plan_id), s, Decision::Execute, Action::Partial25);
        let mut intent = None;
        feed(&mut e, Input::Plan(plan), &mut out);
        for ev in &out {
            if let Event::OrderIntent(o) = ev {
                intent = Some(*o);
            }
        }
        if let Some(o) = intent {
            let at_ms = clock.wall_ms(clock.now_ns());
            feed(
                &mut e,
                Input::Order(OrderInput::Sent {
                    plan: o.plan,
                    symbol: o.symbol,
                    at_ms,
                }),
                &mut out,
            );
            for status in [OrderStatus::New, OrderStatus::Filled] {
                let cum = if status == OrderStatus::Filled {
                    o.qty
                } else {
                    Qty::ZERO
                };
                let r = Report {
                    plan: o.plan,
                    symbol: o.symbol,
                    side: o.side,
                    status,
                    cum_qty: cum,
                    price: "100".parse()?,
                    order_id: i,
                    time_ms: at_ms,
                    orig_qty: o.qty,
                    source: ReportSource::Stream,
                };
                feed(&mut e, Input::Order(OrderInput::Report(r)), &mut out);
            }
            // The exchange's position after the fill; a position closed down to little is
            // opened again (the ledger synced to it, as an operator does).
            let k = usize::from(o.symbol.0);
            held[k] = Qty::from_units(held[k].units() - o.qty.units());
            let reopen = held[k].units() < big.units() / 1000;
            if reopen {
                held[k] = big;
            }
            feed(
                &mut e,
                Input::Command(Command::Position {
                    symbol: o.symbol,
                    amount: held[k],
                    mark: "100".parse()?,
                }),
                &mut out,
            );
            if reopen {
                feed(
                    &mut e,
                    Input::Command(Command::SetLedger {
                        symbol: o.symbol,
                        amount: big,
                    }),
                    &mut out,
                );
            }
        }
    }
    j.sync().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(n)
}

/// Replays the journal in `dir` as `quantum replay` does; returns (events, decisions,
/// changed, seconds).
fn replay(dir: &Path) -> anyhow::Result<(u64, u64, u64, f64)> {
    let t0 = Instant::now();
    let cfg = EngineConfig::default();
    let start = State::new(cfg.symbols.len(), cfg.dedupe_horizon_ms, cfg.max_orders);
    let mut r = Replay::new(cfg, start)?;
    let (mut decisions, mut changed) = (0u64, 0u64);
    Audit::open(dir)?.scan(1, |seq, e| -> anyhow::Result<bool> {
        r.feed(seq, &e, &mut |d| {
            decisions += 1;
            changed += u64::from(d.changed());
        })?;
        Ok(true)
    })?;
    let counts = r.finish(&mut |d| {
        decisions += 1;
        changed += u64::from(d.changed());
    });
    Ok((
        counts.events,
        decisions,
        changed,
        t0.elapsed().as_secs_f64(),
    ))
}

fn main() -> anyhow::Result<()> {
    let mut sizes = vec![1_000_000u64, 10_000_000];
    let mut keep: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--events" => {
                let v = args.next().unwrap_or_default();
                sizes = v
                    .split(',')
                    .map(|x| x.trim().parse())
                    .collect::<Result<_, _>>()
                    .map_err(|_| {
                        anyhow::anyhow!("--events takes numbers, e.g. 1000000,10000000")
                    })?;
            }
            "--keep" => keep = args.next().map(PathBuf::from),
            "-h" | "--help" => {
                println!("usage: replay [--events 1000000,10000000] [--keep DIR]");
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other:?} (try --help)"),
        }
    }
    let tmp = tempfile::tempdir()?;
    let base = keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    println!("replay: a journal re-decided under its own configuration, from its files");
    for events in sizes {
        let dir = base.join(events.to_string());
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        let t0 = Instant::now();
        let written = write(&dir, events)?;
        let wrote_s = t0.elapsed().as_secs_f64();
        let (read, decisions, changed, s) = replay(&dir)?;
        println!(
            "  {written:>9} events (written in {wrote_s:.1} s): replayed {read} events, {decisions} decisions, {changed} changed, in {s:.2} s = {:.2} M events/s",
            read as f64 / s / 1e6
        );
        if changed != 0 {
            anyhow::bail!("{changed} decision(s) changed under the same configuration");
        }
        if keep.is_some() {
            println!("  kept in {}", dir.display());
        }
    }
    Ok(())
}
