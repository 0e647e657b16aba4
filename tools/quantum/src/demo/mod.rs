//! `quantum demo`: the core with a synthetic plan feed, and the Binance simulator (in-process,
//! over real sockets) reached through the Binance adapter.

mod feed;
mod venue;

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File};
use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use hdrhistogram::Histogram;
use quantum_core::{
    Clock, Command, Engine, EngineConfig, Input, Mode, Outcome, PlanResult, Qty, Runner,
    RunnerConfig,
};

use feed::Feed;
use quantum_bench::report;
use venue::{Event, Start, Venue};

/// Options of `quantum demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Number of plans to feed.
    #[arg(long, default_value_t = 20_000)]
    pub plans: u64,
    /// Thread layout: `single` (one thread runs the chain) or `pipelined` (governor, P3.3 and
    /// apply on their own threads).
    #[arg(long, default_value = "single")]
    pub mode: Mode,
    /// Plans per second, on an open-loop schedule (0: as fast as the engine takes them, which
    /// measures a flood: exits then race their own fills).
    #[arg(long, default_value_t = 5_000)]
    pub rate: u64,
    /// Seed of the synthetic feed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Where chain.hgrm and demo.log go (relative: under the current directory).
    #[arg(long, default_value = "quantum-demo")]
    pub out: PathBuf,
    /// Busy-spin engine threads when idle instead of backing off (burns a core each).
    #[arg(long)]
    pub spin: bool,
    /// Never pin threads to cores.
    #[arg(long)]
    pub no_pin: bool,
    /// Legacy APPLY_PERMIT_WAIT_MS: how long apply waits for both permits.
    #[arg(long, env = "APPLY_PERMIT_WAIT_MS", default_value_t = 1200)]
    pub permit_wait_ms: u64,
    /// Legacy APPLY_PERMIT_STEP_MS: the longest single park while idle.
    #[arg(long, env = "APPLY_PERMIT_STEP_MS", default_value_t = 100)]
    pub permit_step_ms: u64,
}

#[derive(Default)]
struct Tally {
    results: u64,
    executed: u64,
    blocked: u64,
    duplicates: u64,
    non_execute: u64,
    reasons: BTreeMap<String, u64>,
}

impl Tally {
    fn add(&mut self, r: &PlanResult) {
        self.results += 1;
        match &r.outcome {
            Outcome::Executed(_) => self.executed += 1,
            Outcome::Blocked(b) => {
                self.blocked += 1;
                *self.reasons.entry(b.to_string()).or_default() += 1;
            }
            Outcome::Duplicate => self.duplicates += 1,
            Outcome::NonExecute => self.non_execute += 1,
        }
    }
}

/// Runs the demo; prints the summary to stdout and progress to stderr.
pub fn run(args: DemoArgs) -> Result<()> {
    if args.plans == 0 {
        bail!("--plans must be at least 1");
    }
    fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create output directory {}", args.out.display()))?;
    let log_path = args.out.join("demo.log");
    let mut log = BufWriter::new(
        File::create(&log_path).with_context(|| format!("cannot write {}", log_path.display()))?,
    );

    let cfg = EngineConfig {
        apply_wait_ms: args.permit_wait_ms,
        apply_step_ms: args.permit_step_ms.max(1),
        ..EngineConfig::default()
    };
    let engine = Engine::new(cfg, Clock::new()).context("invalid engine configuration")?;
    let symbols = engine.symbols().clone();
    let sym = |n: &str| symbols.id(n).expect("built-in symbol");
    let q = |s: &str| s.parse::<Qty>().expect("literal");
    let p = |s: &str| s.parse::<quantum_core::Price>().expect("literal");
    let btc = sym("BTCUSDT");
    // The seeds: BTCUSDT exchange 0.062 against ledger 0.002; the others in sync.
    let starts = [
        (
            Start {
                symbol: btc,
                position: q("0.062"),
                mark: p("104250.5"),
                step: q("0.001"),
            },
            "0.002",
        ),
        (
            Start {
                symbol: sym("ETHUSDT"),
                position: q("2.5"),
                mark: p("3310.25"),
                step: q("0.001"),
            },
            "2.5",
        ),
        (
            Start {
                symbol: sym("SOLUSDT"),
                position: q("-120"),
                mark: p("182.4"),
                step: q("1"),
            },
            "-120",
        ),
    ];
    let mut backlog: VecDeque<Input> = VecDeque::new();
    for (s, ledger) in &starts {
        backlog.push_back(Input::Command(Command::Position {
            symbol: s.symbol,
            amount: s.position,
            mark: s.mark,
        }));
        backlog.push_back(Input::Command(Command::SetLedger {
            symbol: s.symbol,
            amount: q(ledger),
        }));
    }

    let runner = Runner::start(
        engine,
        RunnerConfig {
            mode: args.mode,
            spin: args.spin,
            pin: !args.no_pin,
            max_park: Duration::from_millis(args.permit_step_ms.max(1)),
            ..RunnerConfig::default()
        },
    );
    runner.register_caller();
    let shared = runner.shared().clone();
    // The feeder, the simulator and the adapter (threads inherit this affinity) stay off the
    // engine's core.
    quantum_core::runner::pin_current_thread(runner.placement().caller);
    let starts: Vec<Start> = starts.into_iter().map(|(s, _)| s).collect();
    let venue = Venue::start(&symbols, &starts)?;
    let mode = match args.mode {
        Mode::Single => "single",
        Mode::Pipelined => "pipelined",
    };
    eprintln!(
        "[demo] mode={mode} plans={} rate={}/s seed={} {}; exchange: Binance simulator at {} (WebSocket API orders)",
        args.plans,
        args.rate,
        args.seed,
        runner.placement().note,
        venue.rest_url
    );
    writeln!(
        log,
        "# quantum demo mode={mode} plans={} seed={}",
        args.plans, args.seed
    )?;
    writeln!(log, "# {}", runner.placement().note)?;

    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let mut tally = Tally::default();
    let mut feed = Feed::new(args.plans, args.seed, btc);
    let mut x = Exchange::default();
    let mut events_logged = 0;
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut last_progress = Instant::now();
    let n_symbols = symbols.len() as u16;
    let mut next: Option<Input> = None;
    let mut feeding = true;
    let mut drain_until: Option<Instant> = None;
    loop {
        while let Some(r) = runner.try_recv() {
            tally.add(&r);
            let mut line = String::new();
            r.write_legacy_log(&mut line, &symbols)?;
            log.write_all(line.as_bytes())?;
            if let Some(o) = r.order() {
                hist.saturating_record(o.t_out_ns.saturating_sub(o.t_in_ns).max(1));
                venue.send(*o);
                x.sent += 1;
            }
        }
        while let Ok(ev) = venue.events.try_recv() {
            x.take(ev, &mut backlog, &mut log)?;
        }
        for e in &feed.events[events_logged..] {
            eprintln!("[demo] {e}");
            writeln!(log, "# {e}")?;
        }
        events_logged = feed.events.len();
        let input = match backlog.pop_front().or_else(|| next.take()) {
            Some(i) => Some(i),
            None if feeding => {
                let due = started
                    + Duration::from_nanos(
                        feed.made().saturating_mul(1_000_000_000) / args.rate.max(1),
                    );
                if args.rate > 0 && Instant::now() < due {
                    std::thread::yield_now();
                    continue;
                }
                let i = feed.next_input(n_symbols);
                feeding = i.is_some();
                i
            }
            None => None,
        };
        match input {
            Some(input) => {
                if let Err(back) = runner.try_send(input) {
                    // Keep order: exchange events first, then the plan that was waiting.
                    match back {
                        Input::Plan(_) => next = Some(back),
                        _ => backlog.push_front(back),
                    }
                    runner.wait_for_room(Duration::from_millis(1));
                }
            }
            None => {
                // Fed: wait for every result and every order's answer, boundedly.
                let until =
                    *drain_until.get_or_insert_with(|| Instant::now() + Duration::from_secs(30));
                if (tally.results == feed.made() && x.settled()) || Instant::now() > until {
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        if last_progress.elapsed() >= Duration::from_millis(if tty { 200 } else { 1000 }) {
            last_progress = Instant::now();
            let line = format!(
                "[demo] {}/{} plans fed, {} results, {} orders filled on the simulator",
                feed.made(),
                args.plans,
                tally.results,
                x.filled
            );
            if tty {
                eprint!("\r{line}");
            } else {
                eprintln!("{line}");
            }
        }
    }
    runner.shutdown(&mut |r| tally.add(&r));
    let elapsed = started.elapsed();
    if tty {
        eprintln!();
    }
    log.flush()?;

    let fed = feed.made();
    println!(
        "plans={} executed={} blocked={} duplicates={} non_execute={}",
        fed, tally.executed, tally.blocked, tally.duplicates, tally.non_execute
    );
    for (reason, n) in &tally.reasons {
        println!("blocked reason={reason} count={n}");
    }
    println!("chain_ns {}", report::percentile_line(&hist));
    println!(
        "exchange: orders={} filled={} rejected={} reopened_positions={} accepted_by_simulator={}; wall time {:.2}s",
        x.sent,
        x.filled,
        x.rejected.values().sum::<u64>(),
        x.reopened,
        venue.accepted(),
        elapsed.as_secs_f64()
    );
    for (reason, n) in &x.rejected {
        println!("exchange rejected reason={reason:?} count={n}");
    }
    let mut problems = Vec::new();
    for s in &starts {
        let name = symbols.name(s.symbol);
        let ledger = shared.ledger.view(s.symbol).map(|b| b.ledger);
        let exchange = venue.position(name);
        println!(
            "position {name}: simulator={} ledger={}",
            exchange.map_or("?".into(), |q| q.to_string()),
            ledger.map_or("?".into(), |q| q.to_string())
        );
        if exchange != ledger {
            problems.push(format!(
                "{name}: the simulator's position and the ledger differ"
            ));
        }
    }
    for (cid, n) in venue.twice_ordered() {
        problems.push(format!("client order id {cid} was ordered {n} times"));
    }
    venue.stop();
    let hgrm_path = args.out.join("chain.hgrm");
    fs::write(&hgrm_path, report::hgrm(&hist))
        .with_context(|| format!("cannot write {}", hgrm_path.display()))?;
    println!("wrote {} and {}", hgrm_path.display(), log_path.display());
    if tally.results != fed {
        problems.push(format!(
            "{fed} plans went in but {} results came out",
            tally.results
        ));
    }
    if !x.settled() {
        problems.push(format!(
            "{} exits and {} entry orders sent, {} and {} answered",
            x.sent, x.entries_started, x.answered, x.entries_answered
        ));
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(())
}

/// What the demo saw of the exchange.
#[derive(Default)]
struct Exchange {
    sent: u64,
    answered: u64,
    filled: u64,
    reopened: u64,
    entries_started: u64,
    entries_answered: u64,
    rejected: BTreeMap<String, u64>,
}

impl Exchange {
    /// Every order sent has its answer.
    fn settled(&self) -> bool {
        self.answered == self.sent && self.entries_answered == self.entries_started
    }
}

impl Exchange {
    fn take(
        &mut self,
        ev: Event,
        backlog: &mut VecDeque<Input>,
        log: &mut impl Write,
    ) -> Result<()> {
        if ev.exit {
            self.answered += 1;
        } else {
            self.entries_answered += 1;
        }
        self.entries_started += u64::from(ev.entry_started);
        if let Some(reason) = ev.refused {
            let reason = if ev.exit {
                reason
            } else {
                format!("entry order: {reason}")
            };
            writeln!(log, "# exchange rejected an order: {reason}")?;
            *self.rejected.entry(reason).or_default() += 1;
        }
        let cmds = ev.commands;
        for c in cmds {
            if let Command::Fill { plan, .. } = c {
                if plan.is_some() {
                    self.filled += 1;
                } else {
                    self.reopened += 1;
                }
            }
            backlog.push_back(Input::Command(c));
        }
        Ok(())
    }
}
