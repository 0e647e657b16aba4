//! `quantum demo`: the core with a synthetic plan feed and an in-process paper exchange.

mod feed;
mod paper;

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
use rand::rngs::StdRng;
use rand::SeedableRng;

use feed::Feed;
use paper::Paper;
use quantum_bench::report;

/// Options of `quantum demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Number of plans to feed.
    #[arg(long, default_value_t = 100_000)]
    pub plans: u64,
    /// Thread layout: `single` (one thread runs the chain) or `pipelined` (governor, P3.3 and
    /// apply on their own threads).
    #[arg(long, default_value = "single")]
    pub mode: Mode,
    /// Plans per second, on an open-loop schedule (0: as fast as the engine takes them, which
    /// measures a flood: exits then race their own fills).
    #[arg(long, default_value_t = 50_000)]
    pub rate: u64,
    /// Seed of the synthetic feed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Where chain.hgrm and demo.log go.
    #[arg(long, default_value = "target/quantum-demo")]
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
    let (btc, eth, sol) = (sym("BTCUSDT"), sym("ETHUSDT"), sym("SOLUSDT"));
    let q = |s: &str| s.parse::<Qty>().expect("literal");
    let p = |s: &str| s.parse::<quantum_core::Price>().expect("literal");
    let mut paper = Paper::new(&[
        (q("0.062"), p("104250.5"), q("0.001")),
        (q("2.5"), p("3310.25"), q("0.001")),
        (q("-120"), p("182.4"), q("1")),
    ]);
    let mut backlog: VecDeque<Input> = VecDeque::new();
    for (s, ledger) in [(btc, "0.002"), (eth, "2.5"), (sol, "-120")] {
        backlog.push_back(Input::Command(paper.snapshot(s)));
        backlog.push_back(Input::Command(Command::SetLedger {
            symbol: s,
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
    // The feeder and the paper exchange stay off the engine's core.
    quantum_core::runner::pin_current_thread(runner.placement().caller);
    let mode = match args.mode {
        Mode::Single => "single",
        Mode::Pipelined => "pipelined",
    };
    eprintln!(
        "[demo] mode={mode} plans={} rate={}/s seed={} {}",
        args.plans,
        args.rate,
        args.seed,
        runner.placement().note
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
    let mut rng = StdRng::seed_from_u64(args.seed ^ 0x5eed);
    let mut cmds = Vec::new();
    let mut events_logged = 0;
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut last_progress = Instant::now();

    let mut handle = |r: PlanResult,
                      tally: &mut Tally,
                      hist: &mut Histogram<u64>,
                      log: &mut BufWriter<File>,
                      backlog: &mut VecDeque<Input>|
     -> Result<()> {
        tally.add(&r);
        let mut line = String::new();
        r.write_legacy_log(&mut line, &symbols)?;
        log.write_all(line.as_bytes())?;
        if let Some(o) = r.order() {
            hist.saturating_record(o.t_out_ns.saturating_sub(o.t_in_ns).max(1));
            cmds.clear();
            paper.execute(o, &mut rng, &mut cmds);
            backlog.extend(cmds.iter().map(|c| Input::Command(*c)));
        }
        Ok(())
    };

    let n_symbols = symbols.len() as u16;
    let mut next: Option<Input> = None;
    loop {
        while let Some(r) = runner.try_recv() {
            handle(r, &mut tally, &mut hist, &mut log, &mut backlog)?;
        }
        for e in &feed.events[events_logged..] {
            eprintln!("[demo] {e}");
            writeln!(log, "# {e}")?;
        }
        events_logged = feed.events.len();
        let input = match backlog.pop_front().or_else(|| next.take()) {
            Some(i) => i,
            None => {
                if let Some(k_ns) = (feed.made() * 1_000_000_000).checked_div(args.rate) {
                    // Open-loop schedule: plan k is due at start + k / rate.
                    let due = started + Duration::from_nanos(k_ns);
                    if Instant::now() < due {
                        std::thread::yield_now();
                        continue;
                    }
                }
                match feed.next_input(n_symbols) {
                    Some(i) => i,
                    None => break,
                }
            }
        };
        if let Err(back) = runner.try_send(input) {
            // Keep order: exchange events first, then the plan that was waiting.
            match back {
                Input::Plan(_) => next = Some(back),
                _ => backlog.push_front(back),
            }
            runner.wait_for_room(Duration::from_millis(1));
        }
        if last_progress.elapsed() >= Duration::from_millis(if tty { 200 } else { 1000 }) {
            last_progress = Instant::now();
            let line = format!(
                "[demo] {}/{} plans fed, {} results, {} executed",
                feed.made(),
                args.plans,
                tally.results,
                tally.executed
            );
            if tty {
                eprint!("\r{line}");
            } else {
                eprintln!("{line}");
            }
        }
    }
    runner.shutdown(&mut |r| {
        // The exchange events of these last orders no longer reach the core: it has stopped.
        let _ = handle(r, &mut tally, &mut hist, &mut log, &mut backlog);
    });
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
        "paper exchange: fills={} reduce_only_rejects={} reopened_positions={}; wall time {:.2}s",
        paper.fills,
        paper.rejects,
        paper.reopens,
        elapsed.as_secs_f64()
    );
    let hgrm_path = args.out.join("chain.hgrm");
    fs::write(&hgrm_path, report::hgrm(&hist))
        .with_context(|| format!("cannot write {}", hgrm_path.display()))?;
    println!("wrote {} and {}", hgrm_path.display(), log_path.display());
    if tally.results != fed {
        bail!(
            "{} plans went in but {} results came out: a plan was lost",
            fed,
            tally.results
        );
    }
    Ok(())
}
