//! `quantum bench <scenario>|all`: every scenario's rows measured in one run, interleaved.
//!
//! ```text
//! set up every row (threads, processes, redis-server)
//! closed loop, each row once (warms it up): maximum throughput
//! open loop: blocks × rows, round robin      block b of row r: rate_r × duration / blocks
//!            messages, each timed from its due time (coordinated omission handled)
//! report: table, summary.md, summary.json, <row>.hgrm, latency.svg/png
//! ```
//!
//! Rows are interleaved because this VM's two vCPUs move under us from minute to minute: two
//! rows measured one after the other are not comparable, two rows measured in alternating
//! blocks are. Each ratio to a baseline is given for the whole run and as its spread over the
//! blocks (the block-by-block ratio's min, median and max).
//!
//! A row is offered `--rate` messages per second, but never more than a quarter of the
//! throughput it reached in its closed-loop run (nor more than its own limit, like the legacy 100 ms
//! poll): an open loop above capacity measures an ever-growing queue, not the system.

pub mod machine;
pub mod openloop;
pub mod output;
pub mod plot;
pub mod ratios;
pub mod variant;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

use crate::scenarios::{self, Ctx};
use openloop::Schedule;
use quantum_daemon::latency::report::new_histogram;
use variant::{Throughput, Variant};

/// Options shared by every scenario of `quantum bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct SuiteArgs {
    /// Output directory: summary.md, summary.json, one .hgrm per row, latency.svg and
    /// latency.png (relative: under the current directory).
    #[arg(long, default_value = "quantum-bench")]
    pub out: PathBuf,
    /// Open-loop rate offered to each row, messages per second (capped per row at a quarter
    /// of its closed-loop throughput).
    #[arg(long, default_value_t = 20_000.0)]
    pub rate: f64,
    /// Seconds of open-loop measurement per row, split into --blocks blocks.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Blocks per row; rows take turns block by block.
    #[arg(long, default_value_t = 10)]
    pub blocks: u32,
    /// Seconds of the closed-loop throughput run per row.
    #[arg(long, default_value_t = 1.0)]
    pub closed: f64,
    /// Leave out the floor and crossbeam baselines when the scenario does not include them.
    #[arg(long)]
    pub no_baselines: bool,
    /// Do not pin threads.
    #[arg(long)]
    pub no_pin: bool,
    /// Plans `bridge.isolated` sends in the whole run (spread over the blocks), each alone.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub isolated_plans: u64,
    /// Milliseconds between two plans of `bridge.isolated` (every thread of the path idles
    /// in between).
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub isolated_gap_ms: u64,
    /// The redis-server executable of the `legacy` rows.
    #[arg(long, default_value = "redis-server")]
    pub redis_server: PathBuf,
    /// Executable started for the peer processes (default: this one).
    #[arg(long, hide = true)]
    pub exe: Option<PathBuf>,
}

impl Default for SuiteArgs {
    fn default() -> Self {
        SuiteArgs {
            out: PathBuf::from("quantum-bench"),
            rate: 20_000.0,
            duration: 5.0,
            blocks: 10,
            closed: 1.0,
            no_baselines: false,
            no_pin: false,
            isolated_plans: 50,
            isolated_gap_ms: 250,
            redis_server: PathBuf::from("redis-server"),
            exe: None,
        }
    }
}

/// One row's measurements.
pub struct RowResult {
    /// Stable id.
    pub key: &'static str,
    /// What it measures.
    pub name: &'static str,
    /// What one operation is.
    pub op: &'static str,
    /// Every open-loop sample (ns from due time to completion).
    pub hist: Histogram<u64>,
    /// The p50 of each block, in block order.
    pub block_p50: Vec<u64>,
    /// The open-loop rate it was offered.
    pub rate: f64,
    /// The closed-loop run.
    pub throughput: Throughput,
    /// Settings that shape its figures.
    pub notes: Vec<String>,
}

/// A whole run.
pub struct RunResult {
    /// Scenarios asked for (`all` expanded).
    pub scenarios: Vec<&'static str>,
    /// Rows in table order.
    pub rows: Vec<RowResult>,
    /// The machine, before and after.
    pub machine: machine::Machine,
    /// The options.
    pub args: SuiteArgs,
    /// The command line that reproduces it.
    pub command: String,
    /// Wall time of the whole run.
    pub elapsed: Duration,
}

/// Runs `scenario` (a name from [`scenarios::SCENARIOS`] or `all`), prints the table and
/// writes the reports.
pub fn run(scenario: &str, args: &SuiteArgs) -> Result<RunResult> {
    let defs = scenarios::select(scenario)?;
    let began = Instant::now();
    let ctx = Ctx::new(args)?;
    let mut machine = machine::Machine::read(&ctx);
    let bar = progress(defs.len() as u64 + 1);
    let mut variants: Vec<Box<dyn Variant>> = Vec::new();
    for def in &defs {
        bar.set_message(format!("setting up {}", def.name));
        variants.extend((def.build)(&ctx).with_context(|| format!("setting up {}", def.name))?);
        bar.inc(1);
    }
    if !args.no_baselines && !defs.iter().any(|d| d.name == "ring") {
        variants.splice(0..0, scenarios::ring::baselines(&ctx));
    }
    bar.inc(1);
    let blocks = args.blocks.max(1);
    bar.set_length(bar.length().unwrap_or(0) + variants.len() as u64 * (1 + u64::from(blocks)));

    let closed = Duration::from_secs_f64(args.closed.max(0.01));
    let mut tput = Vec::with_capacity(variants.len());
    for v in variants.iter_mut() {
        bar.set_message(format!("{}: closed loop", v.key()));
        let t = v
            .throughput(closed)
            .with_context(|| format!("{}: closed-loop run", v.key()))?;
        tput.push(t);
        bar.inc(1);
    }
    let rates: Vec<f64> = variants
        .iter()
        .zip(&tput)
        .map(|(v, t)| offered_rate(args.rate, v.max_rate(), t))
        .collect();
    let mut hists: Vec<Histogram<u64>> = variants.iter().map(|_| new_histogram()).collect();
    let mut block_p50: Vec<Vec<u64>> = vec![Vec::new(); variants.len()];
    for b in 0..blocks {
        for (i, v) in variants.iter_mut().enumerate() {
            bar.set_message(format!("{}: block {}/{blocks}", v.key(), b + 1));
            let schedule = Schedule {
                rate: rates[i],
                count: ((rates[i] * args.duration / f64::from(blocks)).round() as u64).max(1),
            };
            let mut h = new_histogram();
            v.block(&schedule, &mut h)
                .with_context(|| format!("{}: block {}", v.key(), b + 1))?;
            block_p50[i].push(h.value_at_quantile(0.5));
            hists[i].add(&h).context("merging a block's histogram")?;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    machine.load_after = machine::load_average();
    let rows = variants
        .iter()
        .zip(hists)
        .zip(block_p50)
        .zip(rates.iter().zip(tput))
        .map(|(((v, hist), block_p50), (rate, throughput))| RowResult {
            key: v.key(),
            name: v.name(),
            op: v.op(),
            hist,
            block_p50,
            rate: *rate,
            throughput,
            notes: v.notes(),
        })
        .collect();
    drop(variants);
    let result = RunResult {
        scenarios: defs.iter().map(|d| d.name).collect(),
        rows,
        machine,
        args: args.clone(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        elapsed: began.elapsed(),
    };
    println!("{}", output::table(&result));
    output::write(&args.out, &result)?;
    println!("wrote {}", args.out.display());
    Ok(result)
}

/// The rate a row is offered: `--rate`, never above its own limit nor a quarter of its
/// closed-loop throughput (this VM's speed varies by several times from minute to minute; at
/// half, a slow minute already builds a queue that the open loop then measures).
fn offered_rate(asked: f64, limit: Option<f64>, closed: &Throughput) -> f64 {
    let mut r = asked.min(closed.per_sec() / 4.0);
    if let Some(l) = limit {
        r = r.min(l);
    }
    r.max(0.1)
}

fn progress(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .expect("constant template")
            .progress_chars("=> "),
    );
    bar
}

/// Fails with one sentence when a scenario name is unknown.
pub fn check_name(name: &str) -> Result<()> {
    if name == "all" || scenarios::SCENARIOS.iter().any(|d| d.name == name) {
        Ok(())
    } else {
        bail!("unknown scenario {name:?}")
    }
}
