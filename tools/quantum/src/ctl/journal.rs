//! `ctl journal verify|dump|state|plan`: the journal of an instance, read from its files (the
//! daemon may be running or not; nothing is changed). `state` and `plan` are in
//! [`super::journal_audit`].

use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use clap::{Args, Subcommand};
use quantum_core::event::Event;
use quantum_core::recovery::State;
use quantum_ipc::journal::{self, snapshot, Reader};
use quantum_ipc::wire::{Limits, Message};

use super::journal_audit::{self, PlanArgs, StateArgs};
use super::tail::{json_event, text_event};
use super::Exit;

/// `ctl journal`.
#[derive(Args, Debug)]
pub struct JournalArgs {
    #[command(subcommand)]
    cmd: JournalCmd,
}

#[derive(Subcommand, Debug)]
enum JournalCmd {
    /// Check every record (checksums, sequence numbers) and the snapshots; replay them into
    /// the state a restart would recover, and summarise it. Exit 1 on corruption (its segment
    /// and byte offset are printed).
    #[command(after_help = "Example:\n  quantum ctl journal verify --instance prod1")]
    Verify(Where),
    /// Print the events, one per line (JSON lines with --json).
    #[command(
        after_help = "Examples:\n  quantum ctl journal dump --instance prod1 | less\n  quantum ctl journal dump --instance prod1 --json --from 1000 --count 50 | jq ."
    )]
    Dump(DumpArgs),
    /// What the core held just after one event (--seq) or at a time (--at): per symbol the
    /// ledger, the exchange position and its age, the quantity committed to orders in flight,
    /// reconciling, the kill switch, the governor's execution times (rate limit, cooldown) and
    /// the day's notional; the plans accepted and unanswered with the permits they held; the
    /// orders in flight; the switches; the dedupe size. Rebuilt from the newest snapshot at
    /// or before the point and the events after it.
    #[command(after_help = STATE_HELP)]
    State(StateArgs),
    /// One plan's story: every event of it in order with its number and time, the state its
    /// governor and P3.3 verdicts saw (just before its acceptance), the verdicts with the
    /// amounts P3.3 judged, its order, fills and result. Exit 1 when the plan is not in the
    /// journal.
    #[command(after_help = PLAN_HELP)]
    Plan(PlanArgs),
}

const STATE_HELP: &str = "Examples:
  quantum ctl journal state --instance prod1 --at 2026-01-25T00:31:07.123Z
  quantum ctl journal state --instance prod1 --at 1769301067123
  quantum ctl journal state --instance prod1 --seq 1234 --json | jq '.symbols[0]'

The point of --at is the last event at or before the time (an event that carries no time, such
as a switch or a fill, takes the time of the event before it). A seq or a time outside the
journal is an error naming the journal's range. A permit is shown with a waiting plan when it
was issued at or before the point's time (the journal records permits when apply finishes the
plan, so they are looked for after the point).

--json prints one object:
  journal, seq, time (UTC, ms), snapshot (the event of the snapshot it started from, or null),
  events_folded, kill_switch, trading_state, dedupe_size (plan ids remembered),
  symbols[]: symbol, ledger, exchange (null: none yet), exchange_at, exchange_age_ms (at the
    point's time), mark, committed (what orders in flight may still fill), reconciling,
    kill_switch, executions[] (times kept for rate limit and cooldown, oldest first),
    last_execution, day (UTC), day_notional (opening orders, quote units),
  plans[] (accepted, unanswered): plan, symbol, decision, action, accepted_at, deadline,
    intent_qty (its order intent, when the permits were consumed), result_event,
    gov_permit {granted, reason, issued_at, expires_at, expired} or null,
    p33_permit {allow, reason, side, safe_qty, exchange_amt, ledger_amt, diff, tolerance,
    issued_at, expires_at, expired} or null,
  orders[] (in flight): plan, symbol, side, qty, filled, remaining, state (intent, sent,
    accepted, unknown), order_id, intent_at.
Quantities are exact decimals in strings.";

const PLAN_HELP: &str = "Examples:
  quantum ctl journal plan --instance prod1 f33effa0343becc4
  quantum ctl journal plan --instance prod1 f33effa0343becc4 --json | jq .before

--json prints one object:
  plan, symbol, journal,
  events[]: each event as `ctl journal dump --json` prints it, with seq and time,
  before: the plan's symbol as `ctl journal state` prints one, at its acceptance (age and
    all), with seq, time, global_kill_switch, trading_state, snapshot, events_folded
    (or {error} when it cannot be rebuilt, or the plan was never accepted),
  gov_permit, p33_permit: as `ctl journal state` prints them (expired: at its acceptance),
  order: seq, side, qty, client_order_id, intent_at, fills[] {seq, qty, price, cum_qty,
    ledger_after, exchange_time}, done {seq, time, code, filled} or null (or null: no order),
  result: seq, time, executed, error, safe_qty, outcome (or null).";

/// Which journal.
#[derive(Args, Debug)]
pub(super) struct Where {
    /// Instance name.
    #[arg(long)]
    instance: String,
    /// The journal directory (default: as `quantum run` finds it: `QUANTUM_JOURNAL_DIR`, else
    /// the state directory of the instance, else /var/lib/quantum/<instance>).
    #[arg(long, env = "QUANTUM_JOURNAL_DIR")]
    dir: Option<PathBuf>,
}

impl Where {
    /// `--dir`, else where `quantum run` would put it from this environment, else the
    /// systemd unit's place (an operator's shell has no `$STATE_DIRECTORY`).
    pub(super) fn dir(&self) -> Result<PathBuf> {
        if let Some(d) = &self.dir {
            return Ok(d.clone());
        }
        quantum_ipc::journal::find_dir(&self.instance)
            .map_err(|e| anyhow!("{e}; say where with --dir (or QUANTUM_JOURNAL_DIR)"))
    }
}

#[derive(Args, Debug)]
struct DumpArgs {
    #[command(flatten)]
    at: Where,
    /// JSON lines: `{"seq":N, ...}` per event.
    #[arg(long)]
    json: bool,
    /// First sequence number (default: the oldest kept).
    #[arg(long)]
    from: Option<u64>,
    /// At most this many events.
    #[arg(long)]
    count: Option<u64>,
}

/// Runs `ctl journal`.
pub fn run(a: JournalArgs) -> Result<()> {
    match a.cmd {
        JournalCmd::Verify(w) => verify(&w),
        JournalCmd::Dump(d) => dump(&d),
        JournalCmd::State(a) => journal_audit::state(&a),
        JournalCmd::Plan(a) => journal_audit::plan(&a),
    }
}

fn symbol_names(dir: &std::path::Path) -> Vec<String> {
    quantum_daemon::journal_symbols(dir)
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn verify(w: &Where) -> Result<()> {
    let dir = w.dir()?;
    let mut out = std::io::stdout().lock();
    let report = match journal::verify(&dir) {
        Ok(r) => r,
        Err(e) => {
            writeln!(out, "journal {}: CORRUPT: {e}", dir.display())?;
            return Err(Exit {
                code: 1,
                message: String::new(),
            }
            .into());
        }
    };
    let snaps = snapshot::list(&dir).map_err(|e| anyhow!("{e}"))?;
    let range = report.range.map_or("no events".to_string(), |(a, b)| {
        format!("events {a}..={b}")
    });
    writeln!(
        out,
        "journal {}: {} segment(s), {} record(s) ({range}), {} snapshot(s)",
        dir.display(),
        report.segments,
        report.records,
        snaps.len()
    )?;
    if let Some((path, off)) = &report.torn_tail {
        writeln!(
            out,
            "  torn tail at byte {off} of {} (a write cut short by a crash; the next start cuts it)",
            path.display()
        )?;
    }
    // Replay as a restart would: the newest readable snapshot, then every event after it.
    let names = symbol_names(&dir);
    let (snap, unreadable) = snapshot::latest(&dir).map_err(|e| anyhow!("{e}"))?;
    for e in &unreadable {
        writeln!(out, "  snapshot not usable: {e}")?;
    }
    let mut state = match &snap {
        Some((seq, bytes)) => {
            let s = State::decode(bytes).map_err(|e| anyhow!("snapshot {seq}: {e}"))?;
            writeln!(out, "  snapshot at event {seq}: readable")?;
            s
        }
        None => State::new(names.len(), u64::MAX, 1 << 20),
    };
    let mut bad = None;
    let next = Reader::open(&dir)
        .and_then(|r| {
            r.read_from(state.seq + 1, |seq, rec| {
                if bad.is_none() {
                    if let Err(e) = state.apply_record(seq, rec) {
                        bad = Some(e.to_string());
                    }
                }
                Ok(())
            })
        })
        .map_err(|e| anyhow!("{e}"))?;
    if let Some(e) = bad {
        writeln!(out, "journal {}: CORRUPT: {e}", dir.display())?;
        return Err(Exit {
            code: 1,
            message: String::new(),
        }
        .into());
    }
    let name = |i: usize| names.get(i).map_or("?", String::as_str);
    writeln!(
        out,
        "  replayed to event {}: {} plan id(s) remembered, {} plan(s) unanswered, {} order(s) in flight",
        next.saturating_sub(1),
        state.dedupe.len(),
        state.pending.len(),
        state.orders.len()
    )?;
    for (i, s) in state.symbols.iter().enumerate() {
        let in_flight: i64 = state
            .orders
            .values()
            .filter(|o| o.symbol.index() == i)
            .map(|o| o.remaining().units())
            .sum();
        writeln!(
            out,
            "  {} ledger={} exchange={} in_flight={}",
            name(i),
            s.ledger,
            s.exchange.map_or("-".to_string(), |(q, _)| q.to_string()),
            quantum_core::Qty::from_units(in_flight)
        )?;
    }
    writeln!(out, "ok")?;
    Ok(())
}

fn dump(d: &DumpArgs) -> Result<()> {
    let dir = d.at.dir()?;
    let reader = Reader::open(&dir)
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("cannot read the journal in {}", dir.display()))?;
    let names = symbol_names(&dir);
    let name = |i: u16| names.get(usize::from(i)).map_or("?", String::as_str);
    let from = d.from.or(reader.first_seq()).unwrap_or(1);
    let mut left = d.count.unwrap_or(u64::MAX);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed: Option<std::io::Error> = None;
    let result = reader.read_from(from, |seq, rec| {
        if left == 0 || failed.is_some() {
            return Ok(());
        }
        left -= 1;
        let line = Message::decode(rec, &Limits::default())
            .map_err(|e| e.to_string())
            .and_then(|m| Event::from_message(&m));
        let r = match line {
            Ok(e) if d.json => event_json(&e, &name).and_then(|mut obj| {
                obj.insert("seq".into(), seq.into());
                writeln!(out, "{}", serde_json::Value::Object(obj))
            }),
            Ok(e) => write!(out, "{seq} ").and_then(|()| text_event(&mut out, &e, &name)),
            Err(e) => writeln!(out, "{seq} undecodable record: {e}"),
        };
        if let Err(e) = r {
            failed = Some(e);
        }
        Ok(())
    });
    if let Some(e) = failed {
        return Err(e.into());
    }
    result.map_err(|e| anyhow!("{e}"))?;
    out.flush()?;
    Ok(())
}

/// One event as the JSON object `dump --json` prints (without its `seq`).
pub(super) fn event_json<'n>(
    e: &Event,
    name: &dyn Fn(u16) -> &'n str,
) -> std::io::Result<serde_json::Map<String, serde_json::Value>> {
    let mut v = Vec::new();
    json_event(&mut v, e, name)?;
    Ok(serde_json::from_slice(&v).unwrap_or_default())
}
