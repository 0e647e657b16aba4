//! `quantum demo`: the real core daemon, the real Binance bridge and the Binance simulator, in
//! one process, fed a synthetic plan stream. Everything runs the same path as separate
//! processes would: shared-memory rings under a private instance name, the engine owning each
//! plan's lifecycle, the bridge trading on the simulator over real sockets (WebSocket API).
//!
//! Besides the core, the demo plays two outside parts: the exit brain (the feed, on the `ctl`
//! ring, as `quantum ctl inject` does) and the entry side, which re-opens a position that the
//! exits have nearly closed with an opening order of its own on the simulator, then syncs the
//! ledger as an operator would (`HSET quantum:position:<S> ledger_amount <x>`). While it does,
//! the feed leaves that symbol alone and the entry side waits until none of the core's orders
//! on it is in flight, so the sync never races a fill.
//!
//! It fails unless every plan got one result, every order ended, no client order id reached
//! the simulator twice, and every symbol's simulator position equals the core's ledger.

mod entry;

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use hdrhistogram::Histogram;
use quantum_core::event::Event;
use quantum_core::wire::input_out;
use quantum_core::{Command, Input, Outcome, PlanResult, Qty, SymbolId};
use quantum_ipc::broadcast::{self, Broadcast, Next};
use quantum_ipc::contract;
use quantum_ipc::wire::{Limits, Message, RECORD_SIZE};
use quantum_ipc::{Producer, Ring, RingSpec};

use entry::{Entry, EntrySide};
use quantum_daemon::config::DaemonConfig;
use quantum_daemon::latency::report;
use quantum_daemon::Daemon;
use quantum_plan_feed::{self as feed, Feed};

/// Options of `quantum demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Number of plans to feed.
    #[arg(long, default_value_t = 20_000)]
    pub plans: u64,
    /// Thread layout: `auto` (single where the host has 3+ usable cores, else inline),
    /// `single` (one thread runs the chain), `pipelined` (governor, P3.3 and apply on their
    /// own threads) or `inline` (the daemon's I/O thread runs the chain).
    #[arg(long, default_value = "auto", value_parser = ["auto", "single", "pipelined", "inline"])]
    pub mode: String,
    /// Plans per second, on an open-loop schedule.
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

/// One symbol at the start: the simulator's position and mark, the core's ledger, the lot step.
struct Opening {
    name: &'static str,
    position: &'static str,
    mark: &'static str,
    ledger: &'static str,
    step: &'static str,
}

/// The seeds: BTCUSDT exchange 0.062 against ledger 0.002; the others in sync.
const STARTS: [Opening; 3] = [
    Opening {
        name: "BTCUSDT",
        position: "0.062",
        mark: "104250.5",
        ledger: "0.002",
        step: "0.001",
    },
    Opening {
        name: "ETHUSDT",
        position: "2.5",
        mark: "3310.25",
        ledger: "2.5",
        step: "0.001",
    },
    Opening {
        name: "SOLUSDT",
        position: "-120",
        mark: "182.4",
        ledger: "-120",
        step: "1",
    },
];

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
            Outcome::Executed { .. } => self.executed += 1,
            Outcome::Blocked(b) => {
                self.blocked += 1;
                *self.reasons.entry(b.to_string()).or_default() += 1;
            }
            Outcome::Duplicate { .. } => self.duplicates += 1,
            Outcome::NonExecute => self.non_execute += 1,
        }
    }
}

/// What the demo knows of the core from its events.
#[derive(Default)]
struct View {
    tally: Tally,
    /// Orders in flight: plan → symbol.
    in_flight: HashMap<u64, SymbolId>,
    /// Results per symbol.
    results_on: HashMap<SymbolId, u64>,
    /// Ledger and exchange amount per symbol, as the core last reported them.
    ledger: HashMap<SymbolId, Qty>,
    exchange: HashMap<SymbolId, Qty>,
    intents: u64,
    fills: u64,
    done: BTreeMap<String, u64>,
}

impl View {
    fn in_flight_on(&self, s: SymbolId) -> bool {
        self.in_flight.values().any(|x| *x == s)
    }
}

/// The feeder's end of the `ctl` ring.
struct Feeder {
    producer: Producer<RECORD_SIZE>,
    _ring: Ring,
}

impl Feeder {
    fn send(&mut self, input: &Input) -> Result<()> {
        let m = input_out(input).ok_or_else(|| anyhow!("no wire form for {input:?}"))?;
        self.producer
            .push(&m.encode(), Duration::from_secs(10))
            .map_err(|_| anyhow!("the core took no input for 10 s"))
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
    let instance = format!("demo-{}", std::process::id());
    // Segments of earlier demos that were killed (their owner is gone).
    if let Ok(segs) = quantum_ipc::list_segments(None) {
        for s in segs {
            if s.instance.starts_with("demo-")
                && s.kind != quantum_ipc::SegmentKind::Unknown
                && !s.owner_alive
            {
                let _ = quantum_ipc::shm::remove_segment(&s.os_id);
            }
        }
    }
    let mode = args.mode.as_str();

    // The exchange, and the entry side's own client to it.
    let entry = EntrySide::start(&STARTS.map(|s| (s.name, s.position, s.mark)))?;

    // The core daemon, in a thread, on its own shared-memory rings.
    let mut cfg = DaemonConfig {
        mode: mode.into(),
        spin: args.spin,
        pin: !args.no_pin,
        legacy_log: false,
        ..DaemonConfig::default()
    };
    cfg.engine.apply_wait_ms = args.permit_wait_ms;
    cfg.engine.apply_step_ms = args.permit_step_ms.max(1);
    // The demo's journal starts empty each run (its plans are synthetic).
    let journal = args.out.join("journal");
    if journal.exists() {
        fs::remove_dir_all(&journal)
            .with_context(|| format!("cannot clear {}", journal.display()))?;
    }
    cfg.journal.dir = journal.display().to_string();
    // The configuration beside the journal, so `quantum replay` can re-run it as it ran.
    let cfg_path = args.out.join("config.toml");
    fs::write(
        &cfg_path,
        quantum_daemon::print_config::annotated(&cfg, &DaemonConfig::default(), false),
    )
    .with_context(|| format!("cannot write {}", cfg_path.display()))?;
    let daemon = Daemon::start(&instance, cfg).context("cannot start the core")?;
    let stop = Arc::new(AtomicBool::new(false));
    let daemon = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("demo-core-io".into())
            .spawn(move || daemon.run(&stop))?
    };
    let result = drive(&args, &instance, &entry, &mut log, mode);
    stop.store(true, Ordering::Relaxed);
    let daemon_result = daemon
        .join()
        .map_err(|_| anyhow!("the core's I/O thread panicked"))?;
    entry.stop();
    // The ingress rings outlive a daemon on purpose; nothing comes after a demo.
    if let Ok(segs) = quantum_ipc::list_segments(Some(&instance)) {
        for s in segs {
            let _ = quantum_ipc::shm::remove_segment(&s.os_id);
        }
    }
    log.flush()?;
    let summary = result?;
    daemon_result?;
    println!("wrote {} and {}", summary.display(), log_path.display());
    Ok(())
}

/// Feeds, watches and checks; returns the path of chain.hgrm.
fn drive(
    args: &DemoArgs,
    instance: &str,
    entry: &EntrySide,
    log: &mut impl Write,
    mode: &str,
) -> Result<PathBuf> {
    let cfg = DaemonConfig::default();
    let names: Vec<String> = cfg.symbols.iter().map(|s| s.name.clone()).collect();
    let sym = |n: &str| SymbolId(names.iter().position(|x| x == n).expect("built-in") as u16);
    let limits = Limits::new(names.len() as u16);
    let results = Broadcast::open(&RingSpec::new(instance, contract::RESULTS.name, 0))?;
    let mut reader = results.reader(broadcast::Start::Oldest);
    let ring = Ring::open(&RingSpec::new(instance, contract::CTL.name, 0))?;
    let mut feeder = Feeder {
        producer: ring.producer()?,
        _ring: ring,
    };
    let bridge = entry.start_bridge(instance)?;
    eprintln!(
        "[demo] mode={mode} plans={} rate={}/s seed={} instance={instance}; exchange: Binance simulator at {} (WebSocket API orders through `quantum bridge binance`)",
        args.plans, args.rate, args.seed, entry.rest_url
    );
    writeln!(
        log,
        "# quantum demo mode={mode} plans={} seed={} instance={instance}",
        args.plans, args.seed
    )?;
    for s in &STARTS {
        feeder.send(&Input::Command(Command::SetLedger {
            symbol: sym(s.name),
            amount: s.ledger.parse()?,
        }))?;
    }

    let mut view = View::default();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let mut line = String::new();
    let symbols = quantum_core::types::Symbols::new(names.clone()).map_err(|e| anyhow!(e))?;
    let mut read =
        |view: &mut View, log: &mut dyn Write, hist: &mut Histogram<u64>| -> Result<bool> {
            let mut any = false;
            loop {
                match reader.read() {
                    Next::Record { record, .. } => {
                        any = true;
                        let e = Message::decode(&record, &limits)
                            .map_err(|e| e.to_string())
                            .and_then(|m| Event::from_message(&m))
                            .map_err(|e| anyhow!("the core published an unreadable event: {e}"))?;
                        match e {
                            Event::PlanResult(r) => {
                                view.tally.add(&r);
                                *view.results_on.entry(r.symbol).or_default() += 1;
                                line.clear();
                                r.write_legacy_log(&mut line, &symbols)?;
                                log.write_all(line.as_bytes())?;
                            }
                            Event::OrderIntent(i) if !i.lookup_first => {
                                view.intents += 1;
                                view.in_flight.insert(i.plan.0, i.symbol);
                                hist.saturating_record(i.t_out_ns.saturating_sub(i.t_in_ns).max(1));
                            }
                            Event::Fill(f) => {
                                view.fills += 1;
                                view.ledger.insert(f.symbol, f.ledger_after);
                            }
                            Event::OrderDone(d) => {
                                view.in_flight.remove(&d.plan.0);
                                *view.done.entry(d.code.to_string()).or_default() += 1;
                                if d.released.units() > 0 {
                                    writeln!(
                                        log,
                                        "# order {} ended {}; {} released",
                                        d.plan, d.code, d.released
                                    )?;
                                }
                            }
                            Event::LedgerSet { symbol, amount, .. } => {
                                view.ledger.insert(symbol, amount);
                            }
                            Event::Position { symbol, amount, .. } => {
                                view.exchange.insert(symbol, amount);
                            }
                            _ => {}
                        }
                    }
                    Next::Missed { from_seq, to_seq } => {
                        bail!("the demo missed events {from_seq}..{to_seq} of the results ring")
                    }
                    Next::Empty => return Ok(any),
                }
            }
        };

    // The bridge sends each symbol's position at start: wait for them before feeding.
    let ready_by = Instant::now() + Duration::from_secs(30);
    while STARTS
        .iter()
        .any(|s| !view.exchange.contains_key(&sym(s.name)))
    {
        if Instant::now() > ready_by {
            bail!("the Binance bridge sent no positions within 30 s");
        }
        if !read(&mut view, log, &mut hist)? {
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    let mut feed = Feed::new(args.plans, args.seed, names.len() as u16);
    let mut fed_on: HashMap<SymbolId, u64> = HashMap::new();
    let mut reopening: HashMap<SymbolId, Entry> = HashMap::new();
    let mut reopened = 0u64;
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut last_progress = Instant::now();
    let mut drain_until: Option<Instant> = None;
    loop {
        let worked = read(&mut view, log, &mut hist)?;
        if last_progress.elapsed() >= Duration::from_millis(if tty { 200 } else { 1000 }) {
            last_progress = Instant::now();
            feeder.producer.heartbeat();
            let line = format!(
                "[demo] {}/{} plans fed, {} results, {} orders, {} fills, {} re-opening",
                feed.made(),
                args.plans,
                view.tally.results,
                view.intents,
                view.fills,
                reopening.len()
            );
            if tty {
                eprint!("\r{line}");
            } else {
                eprintln!("{line}");
            }
        }
        // The entry side: a position nearly closed gets re-opened, then the ledger synced.
        for s in &STARTS {
            let id = sym(s.name);
            let step: Qty = s.step.parse()?;
            let exchange = view.exchange.get(&id).copied().unwrap_or(Qty::ZERO);
            // Every plan fed on it has its result and none of its orders is in flight.
            let quiet = view.results_on.get(&id) == fed_on.get(&id) && !view.in_flight_on(id);
            match reopening.get_mut(&id) {
                None if exchange.abs().units() < 4 * step.units() && !feed.done() => {
                    reopening.insert(id, Entry::Paused);
                }
                Some(Entry::Paused) if quiet => {
                    let target: Qty = s.position.parse()?;
                    let add = Qty::from_units(target.units() - exchange.units());
                    if exchange.abs().units() >= 4 * step.units() || add.is_zero() {
                        // Not low any more (a snapshot caught up): nothing to re-open.
                        reopening.remove(&id);
                    } else {
                        let e = entry.open(s.name, add, exchange)?;
                        writeln!(log, "# entry side re-opens {}: {add}", s.name)?;
                        reopening.insert(id, e);
                    }
                }
                Some(e @ Entry::Sent(..)) => {
                    let at = match e {
                        Entry::Sent(_, at) => *at,
                        _ => Qty::ZERO,
                    };
                    if let Some(filled) = e.filled()? {
                        let ledger = view.ledger.get(&id).copied().unwrap_or(Qty::ZERO);
                        let amount = ledger
                            .checked_add(filled)
                            .ok_or_else(|| anyhow!("ledger overflow"))?;
                        // Nothing of the core's is in flight on it: the simulator's position now
                        // is what the bridge will report.
                        let _ = at;
                        let expect = entry
                            .position(s.name)
                            .ok_or_else(|| anyhow!("no simulator position for {}", s.name))?;
                        feeder.send(&Input::Command(Command::SetLedger { symbol: id, amount }))?;
                        writeln!(log, "# operator syncs {} ledger_amount {amount}", s.name)?;
                        *e = Entry::Syncing(amount, expect);
                        reopened += 1;
                    }
                }
                // Unpaused once the core has both the synced ledger and the re-opened position.
                Some(Entry::Syncing(amount, expect))
                    if view.ledger.get(&id) == Some(amount) && exchange == *expect =>
                {
                    reopening.remove(&id);
                }
                _ => {}
            }
        }
        let paused = |s: SymbolId| reopening.contains_key(&s);
        let due = started
            + Duration::from_nanos(feed.made().saturating_mul(1_000_000_000) / args.rate.max(1));
        if !feed.done() && Instant::now() >= due {
            match feed.next(&paused) {
                Some(feed::Next::Plan(p)) => {
                    *fed_on.entry(p.symbol).or_default() += 1;
                    feeder.send(&Input::Plan(p))?;
                }
                Some(feed::Next::Wait) => std::thread::sleep(Duration::from_micros(200)),
                Some(feed::Next::SyncBtc) => {
                    let msg = format!(
                        "after {} plans: operator runs HSET quantum:position:BTCUSDT ledger_amount 0.062",
                        feed.made()
                    );
                    eprintln!("[demo] {msg}");
                    writeln!(log, "# {msg}")?;
                    feeder.send(&Input::Command(Command::SetLedger {
                        symbol: sym("BTCUSDT"),
                        amount: "0.062".parse()?,
                    }))?;
                }
                None => {}
            }
            continue;
        }
        if feed.done() {
            let settled = view.tally.results == feed.made()
                && view.in_flight.is_empty()
                && reopening.values().all(|e| matches!(e, Entry::Paused));
            let until =
                *drain_until.get_or_insert_with(|| Instant::now() + Duration::from_secs(30));
            if settled || Instant::now() > until {
                break;
            }
        }
        if !worked {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let elapsed = started.elapsed();
    if tty {
        eprintln!();
    }
    bridge.stop()?;
    // Anything the bridge reported on its way out.
    std::thread::sleep(Duration::from_millis(50));
    read(&mut view, log, &mut hist)?;

    let fed = feed.made();
    let t = &view.tally;
    println!(
        "plans={} executed={} blocked={} duplicates={} non_execute={}",
        fed, t.executed, t.blocked, t.duplicates, t.non_execute
    );
    for (reason, n) in &t.reasons {
        println!("blocked reason={reason} count={n}");
    }
    println!("chain_ns {}", report::percentile_line(&hist));
    let done: Vec<String> = view.done.iter().map(|(c, n)| format!("{c}={n}")).collect();
    println!(
        "exchange: orders={} fills={} done[{}] reopened_positions={reopened} accepted_by_simulator={}; wall time {:.2}s",
        view.intents,
        view.fills,
        done.join(" "),
        entry.accepted(),
        elapsed.as_secs_f64()
    );
    let mut problems = Vec::new();
    for (id, e) in &reopening {
        let state = match e {
            Entry::Paused => "paused",
            Entry::Sent(..) => "its opening order unanswered",
            Entry::Syncing(..) => "its ledger sync not seen",
        };
        problems.push(format!(
            "{}: the entry side ended with {state}",
            symbols.name(*id)
        ));
    }
    for s in &STARTS {
        let ledger = view.ledger.get(&sym(s.name)).copied();
        let exchange = entry.position(s.name);
        println!(
            "position {}: simulator={} ledger={}",
            s.name,
            exchange.map_or("?".into(), |q| q.to_string()),
            ledger.map_or("?".into(), |q| q.to_string())
        );
        if exchange != ledger {
            problems.push(format!(
                "{}: the simulator's position and the ledger differ",
                s.name
            ));
        }
    }
    for (cid, n) in entry.twice_ordered() {
        problems.push(format!("client order id {cid} was ordered {n} times"));
    }
    let hgrm_path = args.out.join("chain.hgrm");
    fs::write(&hgrm_path, report::hgrm(&hist))
        .with_context(|| format!("cannot write {}", hgrm_path.display()))?;
    if t.results != fed {
        problems.push(format!(
            "{fed} plans went in but {} results came out",
            t.results
        ));
    }
    if !view.in_flight.is_empty() {
        problems.push(format!("{} order(s) never ended", view.in_flight.len()));
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(hgrm_path)
}
