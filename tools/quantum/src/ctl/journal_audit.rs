//! `ctl journal state|plan`: what the core held at any point of its journal, and one plan's
//! story with the state its verdicts saw. Read from the journal's files (snapshots and
//! segments) by [`quantum_daemon::audit`]; the daemon may be running; nothing is changed.

use std::io::Write;

use anyhow::{anyhow, bail, Result};
use clap::Args;
use quantum_core::event::{Event, GovPermitEvent, P33PermitEvent};
use quantum_core::recovery::{State, SymbolState};
use quantum_core::{ClientOrderId, PlanId, Price, Qty};
use quantum_daemon::audit::{Audit, AuditError, Permits, Point, Step};
use quantum_redis::legacy::{self, iso_ms};
use serde_json::{json, Value};

use super::journal::{event_json, Where};
use super::tail::text_event;

/// `ctl journal state`.
#[derive(Args, Debug)]
pub struct StateArgs {
    #[command(flatten)]
    journal: Where,
    /// The point: the last event at or before this time, RFC 3339 UTC
    /// (`2026-01-25T00:31:07.123Z`, or without the milliseconds) or ms since the Unix epoch.
    #[arg(long, value_name = "TIME", value_parser = parse_time, required_unless_present = "seq", conflicts_with = "seq")]
    at: Option<u64>,
    /// The point: just after event N (`ctl journal dump` prints the numbers).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    seq: Option<u64>,
    /// One JSON object (keys: see below).
    #[arg(long)]
    json: bool,
}

/// `ctl journal plan`.
#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    journal: Where,
    /// The plan id as `ctl journal dump` and `ctl tail` print it (16 hex digits; its client
    /// order id `qpc-<16 hex>` works too).
    #[arg(value_name = "PLAN_ID", value_parser = parse_plan)]
    plan: PlanId,
    /// One JSON object (keys: see below).
    #[arg(long)]
    json: bool,
}

/// `--at` (and `quantum replay --from/--to`): RFC 3339 (UTC `Z`, or an offset) or ms since
/// the Unix epoch.
pub(crate) fn parse_time(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let ms: u64 = s.parse().map_err(|e| format!("{s}: {e}"))?;
        if (ms as f64) < legacy::SECONDS_BELOW {
            return Err(format!(
                "{s} looks like seconds; give milliseconds since the Unix epoch ({s}000) or a time like 2026-01-25T00:31:07.123Z"
            ));
        }
        return Ok(ms);
    }
    legacy::parse_iso_ms(s).ok_or_else(|| {
        format!("{s:?} is not a time: give RFC 3339 UTC like 2026-01-25T00:31:07.123Z (or 2026-01-25T00:31:07Z), or ms since the Unix epoch")
    })
}

fn parse_plan(s: &str) -> Result<PlanId, String> {
    let hex = s
        .trim()
        .strip_prefix(ClientOrderId::PREFIX)
        .unwrap_or(s.trim());
    hex.parse::<PlanId>().map_err(|e| {
        format!(
            "{e}: give the plan id as `quantum ctl journal dump` prints it, e.g. f33effa0343becc4"
        )
    })
}

/// An audit error as one sentence, times in UTC.
fn explain(a: &Audit, e: AuditError) -> anyhow::Error {
    let dir = a.dir().display();
    let point = |p: Option<(u64, u64)>| {
        p.map_or("-".to_string(), |(s, t)| {
            format!("{} (event {s})", iso_ms(t))
        })
    };
    match e {
        AuditError::SeqOutOfRange { seq, first, last } => anyhow!(
            "event {seq} is outside what the journal in {dir} can answer for: events {first}..={last}"
        ),
        AuditError::TimeOutOfRange { at_ms, first, last } => anyhow!(
            "{} is outside the journal in {dir}: it covers {} to {}",
            iso_ms(at_ms),
            point(first),
            point(last)
        ),
        e => anyhow!("the journal in {dir}: {e}"),
    }
}

fn open(w: &Where) -> Result<Audit> {
    let dir = w.dir()?;
    Audit::open(&dir).map_err(|e| match e {
        AuditError::NoJournal(_) => anyhow!(
            "no journal in {}: say where with --dir (or QUANTUM_JOURNAL_DIR)",
            dir.display()
        ),
        e => anyhow!("cannot read the journal in {}: {e}", dir.display()),
    })
}

/// Names by symbol id.
struct Names<'a>(&'a [String]);

impl Names<'_> {
    fn get(&self, i: u16) -> &str {
        self.0.get(usize::from(i)).map_or("?", String::as_str)
    }
}

fn iso(t: Option<u64>) -> Value {
    t.map_or(Value::Null, |t| iso_ms(t).into())
}

fn iso_text(t: Option<u64>) -> String {
    t.map_or("-".into(), iso_ms)
}

/// What is still to fill of the orders in flight on symbol `i`.
fn committed(state: &State, i: usize) -> Qty {
    Qty::from_units(
        state
            .orders
            .values()
            .filter(|o| o.symbol.index() == i)
            .map(|o| o.remaining().units())
            .sum(),
    )
}

/// One symbol at a moment `now` (ms): the JSON object both commands print.
fn symbol_json(state: &State, i: usize, name: &str, now: Option<u64>) -> Value {
    let s: &SymbolState = &state.symbols[i];
    json!({
        "symbol": name,
        "ledger": s.ledger.to_string(),
        "exchange": s.exchange.map(|(q, _)| q.to_string()),
        "exchange_at": iso(s.exchange.map(|(_, t)| t)),
        "exchange_age_ms": s.exchange.and_then(|(_, t)| now.map(|n| n.saturating_sub(t))),
        "mark": s.mark.to_string(),
        "committed": committed(state, i).to_string(),
        "reconciling": s.reconciling,
        "kill_switch": s.kill,
        "executions": s.executions.iter().map(|t| iso_ms(*t)).collect::<Vec<_>>(),
        "last_execution": iso(s.executions.back().copied()),
        "day": (s.day != 0).then(|| iso_ms(s.day * 86_400_000)[..10].to_string()),
        "day_notional": Price::from_units(s.day_notional).to_string(),
    })
}

/// [`symbol_json`] as `key=value` words on two lines.
fn symbol_text(out: &mut impl Write, v: &Value, indent: &str) -> std::io::Result<()> {
    writeln!(
        out,
        "{indent}{} {}",
        v["symbol"].as_str().unwrap_or("?"),
        words(
            v,
            &[
                "ledger",
                "exchange",
                "exchange_at",
                "exchange_age_ms",
                "committed",
                "reconciling",
                "kill_switch"
            ]
        )
    )?;
    let times: Vec<&str> = v["executions"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    writeln!(
        out,
        "{indent}  executions={} {}",
        times.len(),
        words(v, &["last_execution", "day", "day_notional", "mark"])
    )?;
    if !times.is_empty() {
        let recent = &times[times.len().saturating_sub(RECENT_EXECUTIONS)..];
        let more = if recent.len() < times.len() {
            format!(
                " (the last {} of {}; --json has all)",
                recent.len(),
                times.len()
            )
        } else {
            String::new()
        };
        writeln!(out, "{indent}  execution_times={}{more}", recent.join(","))?;
    }
    Ok(())
}

fn gov_json(g: &GovPermitEvent, now: Option<u64>) -> Value {
    let expires = g.issued_at_ms + u64::from(g.ttl_ms);
    json!({
        "granted": g.allow,
        "reason": g.reason.filter(|_| !g.allow).map(|r| r.to_string()),
        "issued_at": iso_ms(g.issued_at_ms),
        "expires_at": iso_ms(expires),
        "expired": now.map(|n| n >= expires),
    })
}

fn p33_json(p: &P33PermitEvent, now: Option<u64>) -> Value {
    let expires = p.issued_at_ms + u64::from(p.ttl_ms);
    let c = &p.context;
    json!({
        "allow": p.allow,
        "reason": p.reason.filter(|_| !p.allow).map(|r| r.to_string()),
        "side": p.side.map(|s| s.to_string()),
        "safe_qty": p.safe_qty.to_string(),
        "exchange_amt": c.exchange.to_string(),
        "ledger_amt": c.ledger.to_string(),
        "diff": c.diff().to_string(),
        "tolerance": c.tolerance.to_string(),
        "issued_at": iso_ms(p.issued_at_ms),
        "expires_at": iso_ms(expires),
        "expired": now.map(|n| n >= expires),
    })
}

/// The fields `keys` of a JSON object as `key=value` words, in that order (strings bare,
/// null as `-`).
fn words(v: &Value, keys: &[&str]) -> String {
    keys.iter()
        .map(|k| match &v[*k] {
            Value::Null => format!("{k}=-"),
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Execution times a text line shows per symbol (the newest).
const RECENT_EXECUTIONS: usize = 8;

/// Text order of the objects' fields.
const GOV_WORDS: &[&str] = &["granted", "reason", "issued_at", "expires_at", "expired"];
const P33_WORDS: &[&str] = &[
    "allow",
    "reason",
    "side",
    "safe_qty",
    "exchange_amt",
    "ledger_amt",
    "diff",
    "tolerance",
    "issued_at",
    "expires_at",
    "expired",
];
const PLAN_WORDS: &[&str] = &[
    "plan",
    "symbol",
    "decision",
    "action",
    "accepted_at",
    "deadline",
    "intent_qty",
    "result_event",
];
const ORDER_WORDS: &[&str] = &[
    "plan",
    "symbol",
    "side",
    "qty",
    "filled",
    "remaining",
    "state",
    "order_id",
    "intent_at",
];

/// Runs `ctl journal state`.
pub fn state(a: &StateArgs) -> Result<()> {
    let audit = open(&a.journal)?;
    let seq = match (a.seq, a.at) {
        (Some(n), _) => n,
        (None, Some(t)) => audit.seq_at(t).map_err(|e| explain(&audit, e))?,
        (None, None) => bail!("say which point: --seq N or --at TIME"),
    };
    let point = audit.state_at(seq).map_err(|e| explain(&audit, e))?;
    let permits = audit.permits_at(&point).map_err(|e| explain(&audit, e))?;
    let v = state_json(&audit, &point, &permits);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if a.json {
        writeln!(out, "{v}")?;
    } else {
        state_text(&mut out, &audit, &v)?;
    }
    out.flush()?;
    Ok(())
}

fn state_json(
    audit: &Audit,
    p: &Point,
    permits: &std::collections::BTreeMap<u64, Permits>,
) -> Value {
    let names = Names(audit.symbols());
    let s = &p.state;
    let now = p.at_ms;
    let symbols: Vec<Value> = (0..s.symbols.len())
        .map(|i| symbol_json(s, i, names.get(i as u16), now))
        .collect();
    let plans: Vec<Value> = s
        .pending
        .values()
        .map(|w| {
            let got = permits.get(&w.plan.id.0).copied().unwrap_or_default();
            json!({
                "plan": w.plan.id.to_string(),
                "symbol": names.get(w.plan.symbol.0),
                "decision": w.plan.decision.to_string(),
                "action": w.plan.action.to_string(),
                "accepted_at": iso_ms(w.at_ms),
                "deadline": iso_ms(w.deadline_ms),
                "intent_qty": w.intent.map(|i| i.qty.to_string()),
                "gov_permit": got.gov.map(|g| gov_json(&g, now)),
                "p33_permit": got.p33.map(|q| p33_json(&q, now)),
                "result_event": got.result_seq,
            })
        })
        .collect();
    let orders: Vec<Value> = s
        .orders
        .iter()
        .map(|(plan, o)| {
            json!({
                "plan": PlanId(*plan).to_string(),
                "symbol": names.get(o.symbol.0),
                "side": o.side.to_string(),
                "qty": o.qty.to_string(),
                "filled": o.filled.to_string(),
                "remaining": o.remaining().to_string(),
                "state": o.state.as_str(),
                "order_id": o.order_id,
                "intent_at": iso_ms(o.intent.at_ms),
            })
        })
        .collect();
    json!({
        "journal": audit.dir().display().to_string(),
        "seq": s.seq,
        "time": iso(now),
        "snapshot": p.snapshot,
        "events_folded": p.folded,
        "kill_switch": s.kill,
        "trading_state": s.trading.to_string(),
        "dedupe_size": s.dedupe.len(),
        "symbols": symbols,
        "plans": plans,
        "orders": orders,
    })
}

fn state_text(out: &mut impl Write, audit: &Audit, v: &Value) -> Result<()> {
    let from = match v["snapshot"].as_u64() {
        Some(s) => format!("snapshot at event {s}"),
        None => "the journal's start".into(),
    };
    writeln!(
        out,
        "state after event {} at {} (journal {}: {from} + {} event(s) folded)",
        v["seq"],
        v["time"].as_str().unwrap_or("-"),
        audit.dir().display(),
        v["events_folded"]
    )?;
    writeln!(
        out,
        "kill_switch={} trading_state={} dedupe_size={}",
        v["kill_switch"],
        v["trading_state"].as_str().unwrap_or("-"),
        v["dedupe_size"]
    )?;
    for s in v["symbols"].as_array().into_iter().flatten() {
        symbol_text(out, s, "")?;
    }
    let plans = v["plans"].as_array().map_or(&[][..], Vec::as_slice);
    writeln!(out, "plans accepted and unanswered: {}", plans.len())?;
    for p in plans {
        writeln!(out, "  {}", words(p, PLAN_WORDS))?;
        for (label, key, keys) in [
            ("gov", "gov_permit", GOV_WORDS),
            ("p33", "p33_permit", P33_WORDS),
        ] {
            match &p[key] {
                Value::Null => writeln!(out, "    permit {label}: none issued by then")?,
                permit => writeln!(out, "    permit {label} {}", words(permit, keys))?,
            }
        }
    }
    let orders = v["orders"].as_array().map_or(&[][..], Vec::as_slice);
    writeln!(out, "orders in flight: {}", orders.len())?;
    for o in orders {
        writeln!(out, "  {}", words(o, ORDER_WORDS))?;
    }
    Ok(())
}

/// Runs `ctl journal plan`.
pub fn plan(a: &PlanArgs) -> Result<()> {
    let audit = open(&a.journal)?;
    let steps = audit.plan_events(a.plan).map_err(|e| explain(&audit, e))?;
    if steps.is_empty() {
        let range = audit
            .last()
            .map(|(l, _)| format!(" (events {}..={l})", audit.first_seq()))
            .unwrap_or_default();
        bail!(
            "plan {} is not in the journal in {}{range}",
            a.plan,
            audit.dir().display()
        );
    }
    let v = plan_json(&audit, a.plan, &steps)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if a.json {
        writeln!(out, "{v}")?;
    } else {
        plan_text(&mut out, &audit, &steps, &v)?;
    }
    out.flush()?;
    Ok(())
}

fn plan_json(audit: &Audit, plan: PlanId, steps: &[Step]) -> Result<Value> {
    let names = Names(audit.symbols());
    let name = |i: u16| names.get(i);
    let mut events = Vec::with_capacity(steps.len());
    for (seq, t, e) in steps {
        let mut o = event_json(e, &name)?;
        o.insert("seq".into(), (*seq).into());
        o.insert("time".into(), iso(*t));
        events.push(Value::Object(o));
    }
    let accepted = steps.iter().find_map(|(seq, _, e)| match e {
        Event::PlanAccepted { plan, at_ms, .. } => Some((*seq, *plan, *at_ms)),
        _ => None,
    });
    let gov = steps.iter().find_map(|(_, _, e)| match e {
        Event::GovPermit(g) => Some(*g),
        _ => None,
    });
    let p33 = steps.iter().find_map(|(_, _, e)| match e {
        Event::P33Permit(p) => Some(*p),
        _ => None,
    });
    let symbol = steps.iter().find_map(|(_, _, e)| symbol_of(e));
    // What the verdicts saw: the state just before the acceptance (the governor and P3.3
    // judge a plan right before it is accepted).
    let before = match accepted {
        None => json!({"error": "never accepted: answered at admission, no verdict was made"}),
        Some((seq, p, at_ms)) => match audit.state_at(seq - 1) {
            Ok(point) => {
                let s = &point.state;
                let i = p.symbol.index();
                let mut sym = if i < s.symbols.len() {
                    symbol_json(s, i, names.get(p.symbol.0), Some(at_ms))
                } else {
                    json!({"symbol": names.get(p.symbol.0)})
                };
                if let Some(o) = sym.as_object_mut() {
                    o.insert("seq".into(), s.seq.into());
                    o.insert("time".into(), iso(point.at_ms));
                    o.insert("global_kill_switch".into(), s.kill.into());
                    o.insert("trading_state".into(), s.trading.to_string().into());
                    o.insert("snapshot".into(), point.snapshot.into());
                    o.insert("events_folded".into(), point.folded.into());
                }
                sym
            }
            Err(e) => json!({"error": explain(audit, e).to_string()}),
        },
    };
    let intent = steps.iter().find_map(|(seq, _, e)| match e {
        Event::OrderIntent(i) if !i.lookup_first => Some((*seq, *i)),
        _ => None,
    });
    let fills: Vec<Value> = steps
        .iter()
        .filter_map(|(seq, _, e)| match e {
            Event::Fill(f) => Some(json!({
                "seq": seq, "qty": f.qty.to_string(), "price": f.price.to_string(),
                "cum_qty": f.cum_qty.to_string(), "ledger_after": f.ledger_after.to_string(),
                "exchange_time": iso_ms(f.time_ms),
            })),
            _ => None,
        })
        .collect();
    let done = steps.iter().find_map(|(seq, t, e)| match e {
        Event::OrderDone(d) => Some(json!({
            "seq": seq, "time": iso(*t), "code": d.code.to_string(),
            "filled": d.filled.to_string(),
        })),
        _ => None,
    });
    let order = intent.map(|(seq, i)| {
        json!({
            "seq": seq,
            "side": i.side.to_string(),
            "qty": i.qty.to_string(),
            "client_order_id": ClientOrderId::for_plan(i.plan).to_string(),
            "intent_at": iso_ms(i.at_ms),
            "fills": fills,
            "done": done,
        })
    });
    let result = steps.iter().find_map(|(seq, t, e)| match e {
        Event::PlanResult(r) if !r.outcome.is_duplicate() => Some(json!({
            "seq": seq,
            "time": iso(*t),
            "executed": r.executed(),
            "error": r.error_text(),
            "safe_qty": r.safe_qty().map(|q| q.to_string()),
            "outcome": r.outcome.class().name(),
        })),
        _ => None,
    });
    let at = accepted.map(|(_, _, t)| t);
    Ok(json!({
        "plan": plan.to_string(),
        "symbol": symbol.map(name),
        "journal": audit.dir().display().to_string(),
        "events": events,
        "before": before,
        "gov_permit": gov.map(|g| gov_json(&g, at)),
        "p33_permit": p33.map(|q| p33_json(&q, at)),
        "order": order,
        "result": result,
    }))
}

/// The symbol an event of a plan names.
fn symbol_of(e: &Event) -> Option<u16> {
    Some(match e {
        Event::PlanAccepted { plan, .. } => plan.symbol.0,
        Event::GovPermit(g) => g.symbol.0,
        Event::P33Permit(p) => p.symbol.0,
        Event::OrderIntent(i) => i.symbol.0,
        Event::PlanResult(r) => r.symbol.0,
        _ => return None,
    })
}

fn plan_text(out: &mut impl Write, audit: &Audit, steps: &[Step], v: &Value) -> Result<()> {
    let names = Names(audit.symbols());
    let name = |i: u16| names.get(i);
    writeln!(
        out,
        "plan {} symbol={}: {} event(s) in the journal {}",
        v["plan"].as_str().unwrap_or("-"),
        v["symbol"].as_str().unwrap_or("-"),
        steps.len(),
        audit.dir().display()
    )?;
    for (seq, t, e) in steps {
        write!(out, "  {seq} {} ", iso_text(*t))?;
        text_event(out, e, &name)?;
    }
    let b = &v["before"];
    match b["error"].as_str() {
        Some(e) => writeln!(out, "what its verdicts saw: {e}")?,
        None => {
            writeln!(
                out,
                "what its verdicts saw (the state after event {}, just before its acceptance; from {}):",
                b["seq"],
                b["snapshot"]
                    .as_u64()
                    .map_or("the journal's start".to_string(), |s| format!(
                        "the snapshot at event {s} + {} event(s)",
                        b["events_folded"]
                    ))
            )?;
            symbol_text(out, b, "  ")?;
            writeln!(
                out,
                "  global_kill_switch={} trading_state={}",
                b["global_kill_switch"],
                b["trading_state"].as_str().unwrap_or("-")
            )?;
        }
    }
    for (label, k, keys) in [
        ("gov", "gov_permit", GOV_WORDS),
        ("p33", "p33_permit", P33_WORDS),
    ] {
        match &v[k] {
            Value::Null => writeln!(out, "verdict {label}: none journaled")?,
            p => writeln!(out, "verdict {label}: {}", words(p, keys))?,
        }
    }
    match &v["order"] {
        Value::Null => writeln!(out, "order: none")?,
        o => {
            let head = ["seq", "side", "qty", "client_order_id", "intent_at"];
            writeln!(out, "order: {}", words(o, &head))?;
            for f in o["fills"].as_array().into_iter().flatten() {
                let keys = [
                    "seq",
                    "qty",
                    "price",
                    "cum_qty",
                    "ledger_after",
                    "exchange_time",
                ];
                writeln!(out, "  fill {}", words(f, &keys))?;
            }
            match &o["done"] {
                Value::Null => writeln!(out, "  not ended in the journal")?,
                d => writeln!(
                    out,
                    "  done {}",
                    words(d, &["seq", "time", "code", "filled"])
                )?,
            }
        }
    }
    match &v["result"] {
        Value::Null => writeln!(out, "result: none in the journal")?,
        r => {
            let keys = ["seq", "time", "outcome", "executed", "error", "safe_qty"];
            writeln!(out, "result: {}", words(r, &keys))?
        }
    }
    Ok(())
}
