//! `ctl inject`: plans and commands into an ingress ring (`ctl` by default).
//!
//! `--file` reads JSON lines (`-` for stdin); [`LINES_HELP`] (shown by `--help`) is the
//! reference of every line it accepts. Numbers may be JSON numbers or decimal strings. A line
//! that cannot be read (not UTF-8, not JSON, a missing or bad field) is reported on stderr with
//! its number and skipped; the rest of the file is still sent, and the command then exits 1
//! naming the skipped lines, so a script never mistakes a partial injection for a whole one.
//! `--generate N` sends N plans with ids `seed << 32 | i`.
//!
//! Sent is not applied: the daemon releases a ring record only once the engine has handled it
//! and journaled its events, and a record it refuses (invalid, or refused by the engine) gets
//! an `InputRefused` event on `results`, published before the release. So after sending, the
//! command waits (up to `--wait-secs`) until the daemon has released every record it sent, and
//! reports how many it **applied** and which it **refused**, with the reasons (the count comes
//! from `invalid_records.<ring>`, the reasons from `results`). Any refusal, or fewer released
//! than sent (the daemon stopped or died meanwhile; the rest stays in the ring, where the next
//! `quantum run` of the instance takes it over), is exit status 1. A ring whose cursor was
//! corrupted is reported in one sentence, never waited on. A daemon that is still starting is
//! waited for (`--start-wait-secs`) before anything is sent.

use std::fmt::Write as _;
use std::io::BufRead;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use quantum_core::engine::{ExternalPermit, History};
use quantum_core::event::Switch;
use quantum_core::event::{Event, RefusedEvent};
use quantum_core::governor::{GovReason, TradingState};
use quantum_core::p33::P33Reason;
use quantum_core::permit::P33Context;
use quantum_core::wire::{input_out, plan_out};
use quantum_core::{
    Action, Command, Decision, Input, Plan, PlanId, PositionSide, Price, Qty, SymbolId,
};
use quantum_ipc::broadcast::{self, Broadcast, Start};
use quantum_ipc::codes::{ContractStatus, RefuseReason};
use quantum_ipc::contract;
use quantum_ipc::liveness::unix_ms;
use quantum_ipc::wire::{self, Limits, Message, RECORD_SIZE};
use quantum_ipc::{CountersReader, PeerStatus, Producer, Ring, RingSpec};
use quantum_redis::legacy::{self, boolean, decimal, decimal_or, plan_id};
use serde_json::{Map, Value};

use super::{open_counters, DaemonState};

/// Every line `--file` accepts: shown by `quantum ctl inject --help`.
pub const LINES_HELP: &str = r#"Lines of --file (JSON objects, one per line; blank lines and lines starting with # are ignored):

  A plan, shaped like an entry of the legacy stream quantum:stream:apply.plan:
    {"plan_id":"f1a8d7f48713d5cf","symbol":"BTCUSDT","decision":"EXECUTE","action":"PARTIAL_75","kill_score":"0.539"}
      plan_id      16 hex digits (required)
      symbol       one of the instance's symbols (required)
      decision     EXECUTE, HOLD, REDUCE or SKIP (required); only EXECUTE reaches the permits
      action       PARTIAL_25, PARTIAL_50, PARTIAL_75, FULL_CLOSE or NONE (default NONE)
      kill_score   decimal (default 0)
      timestamp    ms since the Unix epoch (default 0: unknown)
      reduce_only  true (default: an exit) or false (an opening plan, with qty)
      qty          decimal, quantity of an opening plan (default 0)
      position_side  LONG or SHORT: the position a plan on a hedge-mode symbol closes
                   (required there: a plan without it is denied position_side_required)
    The same fields may instead sit in a JSON string field "payload" or "data".

  A command, with a "cmd" field:
    {"cmd":"set_ledger","symbol":"BTCUSDT","amount":"0.062"}
      the operator's ledger sync (legacy: HSET quantum:position:BTCUSDT ledger_amount 0.062)
    {"cmd":"set_ledger","symbol":"ETHUSDT","position_side":"SHORT","amount":"-1.5"}
      a hedge-mode symbol's commands name their leg: position_side LONG or SHORT (a SHORT
      amount is negative, as Binance shows it); this holds for set_ledger, position,
      symbol_status and kill_switch
    {"cmd":"position","symbol":"BTCUSDT","amount":"0.062","mark":"104000"}
      an exchange position snapshot: signed amount and a mark price above zero
    {"cmd":"position_mode","hedge":false}
      the account's position mode as the exchange says it (what the Binance bridge sends at
      start): until it is told, no symbol trades (position_mode_unknown)
    {"cmd":"symbol_status","symbol":"BTCUSDT","status":"SETTLING"}
      the symbol's contract status on the exchange; anything but TRADING denies its plans
      symbol_not_trading
    {"cmd":"kill_switch","on":true}  or  {"cmd":"kill_switch","symbol":"BTCUSDT","on":true}
      the global kill switch, or one symbol's (production governor)
    {"cmd":"trading_state","state":"REDUCING"}
      ACTIVE, REDUCING (exits only) or HALTED (production governor)
    {"cmd":"gov_permit","plan_id":"f1a8d7f48713d5cf","symbol":"BTCUSDT","allow":true,"ttl_ms":15000}
      a Governor permit issued outside the core; reason (number) for a deny, ttl_ms default 15000
    {"cmd":"p33_permit","plan_id":"f1a8d7f48713d5cf","symbol":"BTCUSDT","allow":true,"safe_qty":"0.046",
     "exchange_amt":"0.062","ledger_amt":"0.062","tolerance":"0.001"}
      a P3.3 permit issued outside the core; a deny names its reason
      ("reason":"reconcile_required_qty_mismatch"); amounts default to 0
    {"cmd":"order_history","symbol":"BTCUSDT","since_ms":1796400000000,"orders":0}
      the exchange's history of our orders on the symbol since since_ms was all reported (what
      the Binance bridge sends after a start that recovers from the exchange); since_ms
      defaults to 0, through_ms to now

Lines that cannot be read are reported with their number and skipped, the others are sent,
and the command exits 1.

Examples:
  quantum ctl inject --instance prod1 --file story.jsonl
  printf '%s\n' '{"cmd":"set_ledger","symbol":"BTCUSDT","amount":"0.062"}' | quantum ctl inject --instance prod1 --file -
  quantum ctl inject --instance prod1 --generate 100000 --decision HOLD"#;

/// Options of `ctl inject`.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  quantum ctl inject --instance prod1 --file story.jsonl\n  quantum ctl inject --instance prod1 --generate 1000 --decision HOLD\n\n--help lists every line --file accepts.",
    after_long_help = LINES_HELP
)]
pub struct InjectArgs {
    /// Instance name.
    #[arg(long)]
    pub instance: String,
    /// JSON lines to send (`-`: stdin).
    #[arg(
        long,
        conflicts_with = "generate",
        required_unless_present = "generate"
    )]
    pub file: Option<PathBuf>,
    /// Send N generated plans instead.
    #[arg(long, value_name = "N")]
    pub generate: Option<u64>,
    /// Symbol of generated plans.
    #[arg(long, default_value = "BTCUSDT")]
    pub symbol: String,
    /// Seed of generated plan ids (`seed << 32 | i`).
    #[arg(long, default_value_t = 1)]
    pub seed: u32,
    /// Decision of generated plans.
    #[arg(long, default_value = "EXECUTE")]
    pub decision: Decision,
    /// Action of generated plans.
    #[arg(long, default_value = "PARTIAL_75")]
    pub action: Action,
    /// Ingress ring to write (`ctl`, or `plans` to stand in for the Redis bridge).
    #[arg(long, default_value = contract::CTL.name)]
    pub ring: String,
    /// After sending, how long to wait for the daemon's verdict on every record.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub wait_secs: u64,
    /// Before sending, how long to wait for a daemon that is still starting (recovering its
    /// journal, creating its rings).
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub start_wait_secs: u64,
}

/// Waits (up to `--start-wait-secs`) while the daemon is starting, saying so; fails when it is
/// still starting then, or stopped meanwhile.
fn wait_for_start(c: &CountersReader, a: &InjectArgs) -> Result<()> {
    let DaemonState::Starting(pid) = DaemonState::of(c) else {
        return Ok(());
    };
    eprintln!(
        "inject: instance {} is starting (pid {pid}); waiting up to {} s for its rings",
        a.instance, a.start_wait_secs
    );
    let end = Instant::now() + Duration::from_secs(a.start_wait_secs);
    loop {
        match DaemonState::of(c) {
            DaemonState::Up(_) => return Ok(()),
            DaemonState::Gone(pid) => bail!(
                "instance {} (pid {pid}) stopped while starting; nothing was sent",
                a.instance
            ),
            DaemonState::Starting(pid) if Instant::now() >= end => bail!(
                "instance {} is still starting after {} s (pid {pid}); nothing was sent (wait longer with --start-wait-secs)",
                a.instance,
                a.start_wait_secs
            ),
            DaemonState::Starting(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Runs `ctl inject`.
pub fn run(a: InjectArgs) -> Result<()> {
    if !contract::INGRESS.iter().any(|r| r.name == a.ring) {
        bail!(
            "--ring {} is not an ingress ring (plans, ctl, exchange)",
            a.ring
        );
    }
    let counters = open_counters(&a.instance)?;
    wait_for_start(&counters, &a)?;
    let symbols = counters.symbols();
    let ring = Ring::open(&RingSpec::new(&a.instance, &a.ring, 0))
        .with_context(|| format!("cannot open ring {} of instance {}", a.ring, a.instance))?;
    let producer = ring.producer()?;
    let first = producer.position();
    wait_for_earlier(&ring, &producer, first, a.wait_secs);
    let def = contract::INGRESS
        .iter()
        .copied()
        .find(|r| r.name == a.ring)
        .expect("checked above");
    let mut out = Sender {
        verdicts: Verdicts::open(&a.instance, def, counters, symbols.clone())?,
        first,
        producer,
        sent: 0,
        ring: ring.clone(),
    };
    let sym = |name: &str, side: Leg| -> Result<SymbolId> { resolve(&symbols, name, side) };
    if let Some(n) = a.generate {
        let symbol = sym(&a.symbol, Leg::Plan(None))?;
        let mut plan = Plan::exit(PlanId(0), symbol, a.decision, a.action);
        let mut failed = None;
        for i in 0..n {
            plan.id = PlanId((u64::from(a.seed) << 32) | i);
            if let Err(e) = out.send(&Message::Plan(plan_out(&plan)), || {
                format!("plan {}", plan.id)
            }) {
                failed = Some(e);
                break;
            }
        }
        eprintln!(
            "inject: sent {} generated plans (ids {:016x}..) to ring {}",
            out.sent,
            u64::from(a.seed) << 32,
            a.ring
        );
        return out.finish(&a, failed);
    }
    let path = a.file.clone().expect("clap requires --file or --generate");
    let mut reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?,
        ))
    };
    let (mut plans, mut commands) = (0u64, 0u64);
    let mut skipped = Skipped::default();
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    let mut failed = None;
    while failed.is_none() {
        buf.clear();
        // Bytes, not `lines()`: one line that is not UTF-8 is skipped, not the whole file.
        let n = reader
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let line = match std::str::from_utf8(&buf) {
            Ok(l) => l,
            Err(e) => {
                skipped.add(
                    line_no,
                    &format!(
                        "not UTF-8 text (invalid byte at column {})",
                        e.valid_up_to() + 1
                    ),
                );
                continue;
            }
        };
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        match parse_line(t, &sym) {
            Ok(m) => {
                if m.kind() == wire::Kind::Plan {
                    plans += 1;
                } else {
                    commands += 1;
                }
                if let Err(e) = out.send(&m, || format!("line {line_no}")) {
                    failed = Some(e);
                }
            }
            Err(e) => skipped.add(line_no, &format!("{e:#}")),
        }
    }
    eprintln!(
        "inject: sent {} records ({plans} plans, {commands} commands) to ring {}; {} line(s) could not be parsed",
        out.sent, a.ring, skipped.count
    );
    out.finish(&a, failed)?;
    if skipped.count > 0 {
        bail!(
            "{} line(s) of {} skipped ({}); the other lines were sent",
            skipped.count,
            path.display(),
            skipped.lines()
        );
    }
    Ok(())
}

/// Lines that could not be read: each reported on stderr as it is met, then summed up.
#[derive(Default)]
struct Skipped {
    count: u64,
    /// The first [`Skipped::LISTED`] line numbers.
    first: Vec<u64>,
}

impl Skipped {
    const LISTED: usize = 20;

    fn add(&mut self, line: u64, why: &str) {
        self.count += 1;
        if self.first.len() < Self::LISTED {
            self.first.push(line);
        }
        eprintln!("inject: line {line}: {why}; skipped");
    }

    /// "line 3" / "lines 3, 9, 12" / "lines 3, 9, … (25 in all)".
    fn lines(&self) -> String {
        let mut s = String::from(if self.count == 1 { "line " } else { "lines " });
        let list: Vec<String> = self.first.iter().map(u64::to_string).collect();
        s.push_str(&list.join(", "));
        if self.count > self.first.len() as u64 {
            let _ = write!(s, ", … ({} in all)", self.count);
        }
        s
    }
}

fn names(symbols: &[(u16, String)]) -> String {
    symbols
        .iter()
        .map(|(_, n)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

struct Sender {
    producer: Producer<RECORD_SIZE>,
    ring: Ring,
    /// The ring's position before our first record.
    first: u64,
    sent: u64,
    verdicts: Verdicts,
}

/// The daemon's answers to our records: each is applied, or refused with an `InputRefused`
/// event on `results` (journaled and published before the record is released), and counted in
/// `invalid_records.<ring>`. The counter gives the exact number refused; the events give the
/// reasons (a reader the ring lapped misses some, and says so).
struct Verdicts {
    counters: CountersReader,
    /// `invalid_records.<ring>`.
    label: String,
    /// Its value before our first record.
    baseline: u64,
    ring_index: u8,
    /// A reader of `results`; `None` when the ring is gone (a dead daemon's, removed by
    /// `ctl gc`): the count of refusals is still exact, their reasons unknown here.
    reader: Option<(broadcast::Reader, Broadcast)>,
    /// Refusals of records on our ring, in the order the daemon published them.
    refusals: Vec<RefusedEvent>,
    /// Events of `results` this reader missed (lapped).
    missed: u64,
    limits: Limits,
    symbols: Vec<(u16, String)>,
    /// Records that fail validation here as they will in the daemon: where they came from
    /// (`line 3`) and what is wrong, in sending order (the daemon refuses them in ring order).
    invalid: std::collections::VecDeque<(String, String)>,
}

impl Verdicts {
    /// Starts listening before anything of ours is sent. `ring` must have released every
    /// record before ours (see [`wait_for_earlier`]).
    fn open(
        instance: &str,
        ring: &contract::RingDef,
        counters: CountersReader,
        symbols: Vec<(u16, String)>,
    ) -> Result<Verdicts> {
        let label = format!("invalid_records.{}", ring.name);
        let baseline = counters.get(&label).unwrap_or(0);
        let reader = Broadcast::open(&RingSpec::new(instance, contract::RESULTS.name, 0))
            .ok()
            .map(|results| (results.reader(Start::Live), results));
        Ok(Verdicts {
            counters,
            label,
            baseline,
            ring_index: ring.index,
            reader,
            refusals: Vec::new(),
            missed: 0,
            limits: Limits::new(symbols.len() as u16),
            symbols,
            invalid: Default::default(),
        })
    }

    /// Reads every event published so far, keeping the refusals of our ring.
    fn drain(&mut self) {
        let Some((reader, _)) = &mut self.reader else {
            return;
        };
        reader.heartbeat();
        loop {
            match reader.read() {
                broadcast::Next::Record { record, .. } => {
                    if let Ok(Message::InputRefused(r)) = Message::decode(&record, &self.limits) {
                        if r.ring == self.ring_index {
                            if let Ok(Event::Refused(e)) =
                                Event::from_message(&Message::InputRefused(r))
                            {
                                self.refusals.push(e);
                            }
                        }
                    }
                }
                broadcast::Next::Missed { from_seq, to_seq } => self.missed += to_seq - from_seq,
                broadcast::Next::Empty => return,
            }
        }
    }

    /// Refused so far (exact, from the counter).
    fn refused(&self) -> u64 {
        self.counters
            .get(&self.label)
            .unwrap_or(0)
            .saturating_sub(self.baseline)
    }

    /// One refusal in words.
    fn describe(&mut self, r: &RefusedEvent) -> String {
        let kind = wire::Kind::from_tag(r.kind)
            .map_or_else(|| format!("tag {}", r.kind), |k| format!("{k:?}"));
        if r.reason == RefuseReason::InvalidRecord {
            if let Some((at, why)) = self.invalid.pop_front() {
                return format!("{at} ({kind}): {}: {why}", r.reason);
            }
            return format!("a {kind} record: {}", r.reason);
        }
        let mut s = kind;
        // A permit's refusal names no symbol (the engine knows the plan only).
        let names_symbol = ![
            wire::Kind::GovPermit,
            wire::Kind::P33Permit,
            wire::Kind::Plan,
        ]
        .iter()
        .any(|k| k.tag() == r.kind);
        if let Some((_, name)) = self.symbols.iter().find(|(id, _)| *id == r.symbol.0) {
            if names_symbol {
                let _ = write!(s, " {name}");
            }
        }
        if r.plan.0 != 0 {
            let _ = write!(s, " plan {}", r.plan);
        }
        format!("{s}: {}", r.reason)
    }
}

/// Waits (up to `secs`) until the daemon has released the records an earlier producer left
/// before ours (at `first`), so that every verdict after this is one of ours.
fn wait_for_earlier(ring: &Ring, producer: &Producer<RECORD_SIZE>, first: u64, secs: u64) {
    let end = Instant::now() + Duration::from_secs(secs);
    while ring.stats().popped < first
        && Instant::now() < end
        && matches!(
            producer.peer_status(u64::MAX),
            PeerStatus::Alive { .. } | PeerStatus::Stale { .. }
        )
    {
        producer.heartbeat();
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl Sender {
    /// Pushes, waiting while the ring is full and its consumer (the daemon) lives. Fails when
    /// the daemon is gone or a cursor is corrupt (the records sent so far stay in the ring).
    /// `at` says where the record came from (`line 3`), for the report of a refusal.
    fn send(&mut self, m: &Message, at: impl FnOnce() -> String) -> Result<()> {
        let rec = m.encode();
        if let Err(e) = Message::decode(&rec, &self.verdicts.limits) {
            self.verdicts.invalid.push_back((at(), e.to_string()));
        }
        if self.sent % 1024 == 0 {
            self.producer.heartbeat();
            self.verdicts.drain();
        }
        while self
            .producer
            .push(&rec, Duration::from_millis(200))
            .is_err()
        {
            self.producer.heartbeat();
            self.verdicts.drain();
            if let Some(f) = self.producer.check() {
                bail!("{f}");
            }
            match self.producer.peer_status(u64::MAX) {
                PeerStatus::Alive { .. } | PeerStatus::Stale { .. } => {}
                s => bail!(
                    "the daemon stopped reading ({}) after {} records",
                    peer(s),
                    self.sent
                ),
            }
        }
        self.sent += 1;
        Ok(())
    }

    /// Records of ours the daemon has released (handled and journaled).
    fn accepted(&self) -> u64 {
        self.ring
            .stats()
            .popped
            .saturating_sub(self.first)
            .min(self.sent)
    }

    /// Waits until the daemon answered every record sent (or stops, or `--wait-secs` pass),
    /// reports what it applied and what it refused and why, and fails when some were not
    /// accepted, were refused, or sending failed.
    fn finish(&mut self, a: &InjectArgs, failed: Option<anyhow::Error>) -> Result<()> {
        let end = std::time::Instant::now() + Duration::from_secs(a.wait_secs);
        loop {
            self.producer.heartbeat();
            self.verdicts.drain();
            if self.accepted() == self.sent || std::time::Instant::now() >= end {
                break;
            }
            if let Some(f) = self.producer.check() {
                eprintln!("inject: {f}");
                break;
            }
            if !matches!(
                self.producer.peer_status(u64::MAX),
                PeerStatus::Alive { .. } | PeerStatus::Stale { .. }
            ) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let accepted = self.accepted();
        // A released record's verdict was published before its release.
        self.verdicts.drain();
        let refused = self.verdicts.refused().min(accepted);
        let applied = accepted - refused;
        eprintln!(
            "inject: the daemon durably accepted {accepted} of {} record(s): applied {applied}, refused {refused}",
            self.sent
        );
        let mut reasons = Vec::new();
        for r in std::mem::take(&mut self.verdicts.refusals) {
            let text = self.verdicts.describe(&r);
            if reasons.len() < REASONS_LISTED {
                eprintln!("inject: refused: {text}");
                reasons.push(text);
            }
        }
        if (reasons.len() as u64) < refused.min(REASONS_LISTED as u64) {
            let missing = refused - reasons.len() as u64;
            let why = if self.verdicts.missed > 0 {
                "the results ring lapped this reader"
            } else if self.verdicts.reader.is_none() {
                "the results ring is gone"
            } else {
                "their events were not seen"
            };
            reasons.push(format!(
                "{missing} more whose reason is not known here ({why}; `quantum ctl journal dump --instance {}` lists every InputRefused event)",
                a.instance
            ));
        } else if refused > reasons.len() as u64 {
            reasons.push(format!("… ({refused} in all)"));
        }
        if let Some(e) = failed {
            return Err(e.context(format!(
                "{accepted} of {} record(s) sent were accepted durably (applied {applied}, refused {refused}); {} wait in ring {} for the next daemon",
                self.sent,
                self.sent - accepted,
                a.ring
            )));
        }
        if accepted < self.sent {
            bail!(
                "only {accepted} of {} record(s) were accepted durably (applied {applied}, refused {refused}) ({}); the other {} wait in ring {}, which the next `quantum run --instance {}` takes over",
                self.sent,
                peer(self.producer.peer_status(u64::MAX)),
                self.sent - accepted,
                a.ring,
                a.instance
            );
        }
        if refused > 0 {
            bail!(
                "applied {applied} of {}; refused {refused}: {}",
                self.sent,
                reasons.join("; ")
            );
        }
        Ok(())
    }
}

/// Refusals listed one by one; the rest are counted.
const REASONS_LISTED: usize = 20;

/// The daemon as the ring's consumer, in words.
fn peer(s: PeerStatus) -> String {
    match s {
        PeerStatus::Alive { pid, .. } => format!("daemon pid {pid} is running"),
        PeerStatus::Stale { pid, age_ms } => {
            format!("daemon pid {pid} has not heartbeaten for {age_ms} ms")
        }
        PeerStatus::Dead { pid } => format!("daemon pid {pid} died"),
        PeerStatus::Detached { pid } => format!("daemon pid {pid} stopped"),
        PeerStatus::NeverAttached => "no daemon has read the ring".into(),
    }
}

fn text<'a>(o: &'a Map<String, Value>, k: &str) -> Result<&'a str> {
    o.get(k)
        .ok_or_else(|| anyhow!("missing field {k:?}"))?
        .as_str()
        .ok_or_else(|| anyhow!("field {k:?} must be a string"))
}

/// A decimal field (JSON number or string).
fn dec<T: std::str::FromStr>(o: &Map<String, Value>, k: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    decimal(o, k).map_err(|e| anyhow!(e))
}

/// Which leg of a symbol a line names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Leg {
    /// A plan's: where [`PositionSide::plan_leg`] sends it (the core denies a wrong side).
    Plan(Option<PositionSide>),
    /// A command's: exactly this side, `BOTH` when the line names none; a hedge-mode symbol's
    /// command must name `LONG` or `SHORT`.
    Exact(Option<PositionSide>),
}

/// The symbol id `name`'s leg `leg` has in `symbols` (the directory's `(id, label)`).
fn resolve(symbols: &[(u16, String)], name: &str, leg: Leg) -> Result<SymbolId> {
    let dir = symbols.iter().map(|(id, n)| (*id, n.as_str()));
    let known = || {
        dir.clone()
            .any(|(_, n)| PositionSide::split_label(n).0 == name)
    };
    let id = match leg {
        Leg::Plan(side) => PositionSide::plan_leg(dir.clone(), name, side),
        Leg::Exact(side) => {
            let side = side.unwrap_or(PositionSide::Both);
            let id = PositionSide::leg_id(dir.clone(), name, side);
            if id.is_none() && known() {
                bail!(
                    "{name} has no {side} position here (its symbol ids: {}); name the leg with \"position_side\"",
                    names(symbols)
                );
            }
            id
        }
    };
    id.map(SymbolId).ok_or_else(|| {
        anyhow!(
            "unknown symbol {name:?} (the instance has {})",
            names(symbols)
        )
    })
}

/// One JSON line as a wire record.
fn parse_line(line: &str, sym: &dyn Fn(&str, Leg) -> Result<SymbolId>) -> Result<Message> {
    let v: Value = serde_json::from_str(line).map_err(|e| anyhow!("not JSON: {e}"))?;
    let Value::Object(mut o) = v else {
        bail!("not a JSON object");
    };
    legacy::unwrap_payload(&mut o).map_err(|e| anyhow!(e))?;
    let now = unix_ms();
    let Some(cmd) = o.get("cmd") else {
        let read = legacy::parse_plan(
            &o,
            |n, side| sym(n, Leg::Plan(side)).map_err(|e| format!("{e:#}")),
            0,
        )
        .map_err(|e| anyhow!(e))?;
        if let Some(why) = read.warning {
            eprintln!("inject: plan {}: {why}", read.plan.id);
        }
        return Ok(Message::Plan(plan_out(&read.plan)));
    };
    let cmd = cmd
        .as_str()
        .ok_or_else(|| anyhow!("field \"cmd\" must be a string"))?;
    let symbol = || {
        let side = match o.get("position_side") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) => PositionSide::parse_liberal(t).map_err(|e| anyhow!(e))?,
            Some(_) => bail!("field \"position_side\" must be LONG, SHORT or BOTH"),
        };
        sym(text(&o, "symbol")?, Leg::Exact(side))
    };
    let command = |c: Command| {
        input_out(&Input::Command(c)).ok_or_else(|| anyhow!("command {cmd:?} has no wire form"))
    };
    let boolean = |k: &str| boolean(&o, k).map_err(|e| anyhow!(e));
    // A permit issued now: its record's issue time 0 is "when the daemon reads it".
    let permit = |p: ExternalPermit| {
        input_out(&Input::Permit(p)).ok_or_else(|| anyhow!("command {cmd:?} has no wire form"))
    };
    match cmd {
        "set_ledger" => command(Command::SetLedger {
            symbol: symbol()?,
            amount: dec(&o, "amount")?,
        }),
        "position" => {
            let mark: Price = dec(&o, "mark")?;
            if mark.units() <= 0 {
                bail!("field \"mark\" must be above zero");
            }
            command(Command::Position {
                symbol: symbol()?,
                amount: dec(&o, "amount")?,
                mark,
            })
        }
        "kill_switch" => {
            let on = boolean("on")?;
            command(Command::Switch(if o.contains_key("symbol") {
                Switch::SymbolKillSwitch(symbol()?, on)
            } else {
                Switch::KillSwitch(on)
            }))
        }
        "trading_state" => {
            let state: TradingState = text(&o, "state")?.parse().map_err(|e: String| anyhow!(e))?;
            command(Command::Switch(Switch::TradingState(state)))
        }
        "gov_permit" => {
            let allow = boolean("allow")?;
            // Required, and checked: the line names the plan's symbol. The permit's record
            // carries only the plan (the engine knows its symbol).
            symbol()?;
            let reason = match o.get("reason") {
                None => None,
                Some(Value::String(s)) => {
                    Some(GovReason::parse(s).ok_or_else(|| anyhow!("unknown governor reason {s:?}"))?)
                }
                Some(_) => bail!("field \"reason\" must be a governor reason, e.g. \"cooldown\""),
            };
            permit(ExternalPermit::Gov {
                plan: plan_id(&o).map_err(|e| anyhow!(e))?,
                allow,
                reason,
                ttl_ms: decimal_or(&o, "ttl_ms", 15_000u32).map_err(|e| anyhow!(e))?.into(),
            })
        }
        "p33_permit" => {
            let reason = match o.get("reason") {
                None => None,
                Some(Value::String(s)) => {
                    Some(P33Reason::parse(s).ok_or_else(|| anyhow!("unknown P3.3 reason {s:?}"))?)
                }
                Some(_) => bail!("field \"reason\" must be a P3.3 reason, e.g. \"no_position\""),
            };
            let q = |k| decimal_or::<Qty>(&o, k, Qty::ZERO).map_err(|e| anyhow!(e));
            let allow = boolean("allow")?;
            symbol()?;
            permit(ExternalPermit::P33 {
                plan: plan_id(&o).map_err(|e| anyhow!(e))?,
                allow,
                reason,
                safe_qty: q("safe_qty")?,
                // None: the closing side is opposite to the exchange amount judged.
                side: None,
                context: P33Context {
                    exchange: q("exchange_amt")?,
                    ledger: q("ledger_amt")?,
                    tolerance: q("tolerance")?,
                },
                // 0: the daemon's TTL for permits.
                ttl_ms: decimal_or(&o, "ttl_ms", 0u32).map_err(|e| anyhow!(e))?.into(),
            })
        }
        "position_mode" => command(Command::AccountMode {
            hedge: boolean("hedge")?,
        }),
        "symbol_status" => {
            let status: ContractStatus = text(&o, "status")?
                .trim()
                .parse()
                .map_err(|e: String| anyhow!(e))?;
            command(Command::SymbolStatus {
                symbol: symbol()?,
                status,
            })
        }
        "order_history" => input_out(&Input::History(History {
            symbol: symbol()?,
            orders: decimal_or(&o, "orders", 0u32).map_err(|e| anyhow!(e))?,
            since_ms: decimal_or(&o, "since_ms", 0u64).map_err(|e| anyhow!(e))?,
            through_ms: decimal_or(&o, "through_ms", now).map_err(|e| anyhow!(e))?,
        }))
        .ok_or_else(|| anyhow!("order_history has no wire form")),
        other => bail!(
            "unknown cmd {other:?} (set_ledger, position, position_mode, symbol_status, kill_switch, trading_state, gov_permit, p33_permit, order_history)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(name: &str, leg: Leg) -> Result<SymbolId> {
        let dir = [
            (0, "BTCUSDT".to_owned()),
            (1, "ETHUSDT:LONG".to_owned()),
            (2, "ETHUSDT:SHORT".to_owned()),
        ];
        resolve(&dir, name, leg)
    }

    #[test]
    fn legacy_plan_lines_parse() {
        let m = parse_line(
            r#"{"plan_id":"f1a8d7f48713d5cf","symbol":"BTCUSDT","decision":"EXECUTE","action":"PARTIAL_75","kill_score":"0.539"}"#,
            &sym,
        )
        .unwrap();
        let Message::Plan(w) = m else { panic!() };
        let p = quantum_core::wire::plan_in(&w);
        assert_eq!(p.id, PlanId(0xf1a8_d7f4_8713_d5cf));
        assert_eq!(p.action, Action::Partial75);
        assert_eq!(p.kill_score, "0.539".parse().unwrap());
        let m2 = parse_line(
            r#"{"payload":"{\"plan_id\":\"f1a8d7f48713d5cf\",\"symbol\":\"BTCUSDT\",\"decision\":\"EXECUTE\",\"action\":\"PARTIAL_75\",\"kill_score\":0.539}"}"#,
            &sym,
        )
        .unwrap();
        assert_eq!(m2, m);
    }

    #[test]
    fn commands_parse() {
        let m = parse_line(
            r#"{"cmd":"position","symbol":"BTCUSDT","amount":"0.062","mark":104000}"#,
            &sym,
        )
        .unwrap();
        assert_eq!(m.kind(), wire::Kind::PositionSnapshot);
        let m = parse_line(
            r#"{"cmd":"set_ledger","symbol":"BTCUSDT","amount":0.062}"#,
            &sym,
        )
        .unwrap();
        let Message::LedgerSet(l) = m else { panic!() };
        assert_eq!(l.amount, 6_200_000);
        for line in [
            r#"{"cmd":"kill_switch","on":true}"#,
            r#"{"cmd":"trading_state","state":"HALTED"}"#,
            r#"{"cmd":"gov_permit","plan_id":"0000000000000001","symbol":"BTCUSDT","allow":true}"#,
            r#"{"cmd":"p33_permit","plan_id":"0000000000000001","symbol":"BTCUSDT","allow":false,"reason":"no_position"}"#,
        ] {
            parse_line(line, &sym).unwrap();
        }
    }

    /// Permit lines are the core's permits in the core's wire encoding.
    #[test]
    fn permit_lines_read_back_as_the_core_permits() {
        let input = |l: &str| {
            quantum_core::wire::input(&parse_line(l, &sym).unwrap(), 1_000, 15_000).unwrap()
        };
        assert_eq!(
            input(
                r#"{"cmd":"gov_permit","plan_id":"0000000000000001","symbol":"BTCUSDT","allow":false,"reason":"cooldown","ttl_ms":"1500"}"#
            ),
            Input::Permit(ExternalPermit::Gov {
                plan: PlanId(1),
                allow: false,
                reason: Some(GovReason::Cooldown),
                ttl_ms: 1_500,
            })
        );
        let q = |s: &str| s.parse::<Qty>().unwrap();
        assert_eq!(
            input(
                r#"{"cmd":"p33_permit","plan_id":"0000000000000002","symbol":"BTCUSDT","allow":true,"safe_qty":"0.046","exchange_amt":0.062,"ledger_amt":"0.062","tolerance":"0.001"}"#
            ),
            Input::Permit(ExternalPermit::P33 {
                plan: PlanId(2),
                allow: true,
                reason: None,
                safe_qty: q("0.046"),
                side: Some(quantum_core::Side::Sell),
                context: P33Context {
                    exchange: q("0.062"),
                    ledger: q("0.062"),
                    tolerance: q("0.001"),
                },
                ttl_ms: 15_000,
            })
        );
        assert!(parse_line(
            r#"{"cmd":"gov_permit","plan_id":"0000000000000001","symbol":"XYZ","allow":true}"#,
            &sym
        )
        .is_err());
    }

    #[test]
    fn bad_lines_say_why() {
        let e = |l: &str| parse_line(l, &sym).unwrap_err().to_string();
        assert!(e("{").contains("not JSON"));
        assert!(
            e(r#"{"plan_id":"x","symbol":"BTCUSDT","decision":"EXECUTE"}"#).contains("plan_id")
        );
        assert!(
            e(r#"{"plan_id":"f1a8d7f48713d5cf","symbol":"XYZ","decision":"EXECUTE"}"#)
                .contains("XYZ")
        );
        assert!(e(r#"{"cmd":"set_ledger","symbol":"BTCUSDT","amount":"abc"}"#).contains("amount"));
        assert!(e(r#"{"cmd":"nope"}"#).contains("unknown cmd"));
    }

    /// Plans go to the leg they name (a hedge plan naming none goes to the symbol's first
    /// leg, where the core denies it with its reason); commands must name a hedge symbol's
    /// side exactly, and the account's lines are read.
    #[test]
    fn hedge_lines_name_their_side() {
        let plan = |line: &str| {
            let Message::Plan(w) = parse_line(line, &sym).unwrap() else {
                panic!("{line}")
            };
            quantum_core::wire::plan_in(&w)
        };
        let p = plan(
            r#"{"plan_id":"f1a8d7f48713d5cf","symbol":"ETHUSDT","position_side":"short","decision":"EXECUTE","action":"FULL_CLOSE"}"#,
        );
        assert_eq!(
            (p.symbol, p.position_side),
            (SymbolId(2), Some(PositionSide::Short))
        );
        let p = plan(
            r#"{"plan_id":"f1a8d7f48713d5cf","symbol":"ETHUSDT","decision":"EXECUTE","action":"FULL_CLOSE"}"#,
        );
        assert_eq!((p.symbol, p.position_side), (SymbolId(1), None));
        let p = plan(
            r#"{"plan_id":"f1a8d7f48713d5cf","symbol":"BTCUSDT","position_side":"LONG","decision":"EXECUTE"}"#,
        );
        assert_eq!(
            (p.symbol, p.position_side),
            (SymbolId(0), Some(PositionSide::Long))
        );

        let m = parse_line(
            r#"{"cmd":"set_ledger","symbol":"ETHUSDT","position_side":"SHORT","amount":"-1.5"}"#,
            &sym,
        )
        .unwrap();
        let Message::LedgerSet(l) = m else { panic!() };
        assert_eq!((l.symbol, l.amount), (2, -150_000_000));
        let e = parse_line(
            r#"{"cmd":"set_ledger","symbol":"ETHUSDT","amount":"1"}"#,
            &sym,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("no BOTH position") && e.contains("position_side"),
            "{e}"
        );
        assert!(parse_line(
            r#"{"cmd":"position","symbol":"ETHUSDT","position_side":"SIDEWAYS","amount":"1","mark":"1"}"#,
            &sym
        )
        .is_err());

        let m = parse_line(r#"{"cmd":"position_mode","hedge":true}"#, &sym).unwrap();
        assert!(matches!(m, Message::AccountMode(a) if a.hedge));
        let m = parse_line(
            r#"{"cmd":"symbol_status","symbol":"BTCUSDT","status":"SETTLING"}"#,
            &sym,
        )
        .unwrap();
        assert!(
            matches!(m, Message::SymbolStatus(st) if st.symbol == 0 && st.status == ContractStatus::Settling)
        );
        assert!(parse_line(
            r#"{"cmd":"symbol_status","symbol":"BTCUSDT","status":"HALTED"}"#,
            &sym
        )
        .is_err());
    }
}
