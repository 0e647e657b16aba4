//! `quantum replay`: a journal's recorded inputs through the engine again, under the
//! configuration the daemon ran with (its decisions come out the same) or another one (what
//! would have changed), with nothing sent anywhere: no ring, no Redis, no exchange.
//! The engine side is `quantum_core::replay`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use quantum_core::permit::P33Context;
use quantum_core::recovery::State;
use quantum_core::replay::{Counts, Decision, Replay, Verdict};
use quantum_core::result::{Block, Outcome};
use quantum_core::{EngineConfig, Qty};
use quantum_daemon::audit::Audit;
use quantum_daemon::config::DaemonConfig;
use quantum_ipc::journal::snapshot;
use quantum_ipc::wire;
use quantum_redis::legacy;
use serde_json::Value;

use crate::ctl::journal_audit::parse_time;
use crate::ctl::Exit;

/// `quantum replay`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  quantum replay --journal /var/lib/quantum/prod1 --config /etc/quantum/prod1.toml --check
  quantum replay --journal /var/lib/quantum/prod1 --config tight.toml
  quantum replay --journal /var/lib/quantum/prod1 --config tight.toml --json > changed.jsonl
  quantum replay --journal /var/lib/quantum/prod1 --config tight.toml --json --all \\
      --from 2026-01-25T00:00:00Z --to 2026-01-26T00:00:00Z > day.jsonl

Every plan's recorded answer is compared with the replayed one. Under the configuration the
daemon ran with, nothing changes. Under another one, an order the replay would not send has its
recorded exchange reports dropped; an order it would send that was never sent stays in flight
with its fill unknown (nothing is invented for it).")]
pub struct ReplayArgs {
    /// The journal directory (what `quantum ctl journal verify --instance NAME` names; a copy
    /// works as well). Read only: a running daemon's journal can be replayed.
    #[arg(long)]
    journal: PathBuf,
    /// The configuration to decide under (TOML, as for `quantum run --config`, with the same
    /// QUANTUM_* environment overrides); default: the built-in defaults. Its symbols must
    /// start with the journal's, in the same order.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Report only decisions at or after this time: UTC (`2026-01-25T00:31:07.123Z`, an offset
    /// such as `+02:00` works too) or ms since the Unix epoch. Everything before is replayed
    /// all the same: state carries over.
    #[arg(long)]
    from: Option<String>,
    /// Report only decisions before this time (same forms as --from); the replay stops there.
    #[arg(long)]
    to: Option<String>,
    /// JSON lines on stdout: one per changed decision (nothing at all when nothing changed);
    /// the summary goes to stderr.
    #[arg(long)]
    json: bool,
    /// With --json: one line per decision, changed or not.
    #[arg(long, requires = "json")]
    all: bool,
    /// Exit 1 when any decision changed: e.g. to check that the configuration the daemon ran
    /// with reproduces its journal.
    #[arg(long)]
    check: bool,
}

/// The engine configuration `--config` names (with the environment's overrides).
fn engine_config(path: Option<&Path>) -> Result<EngineConfig> {
    let mut cfg = match path {
        Some(p) => DaemonConfig::from_file(p)?,
        None => DaemonConfig::default(),
    };
    cfg.apply_env(|k| std::env::var(k).ok())?;
    cfg.engine_config()
}

/// Per symbol and answer, how many plans got it, recorded and replayed. Few distinct answers
/// exist, so a list searched in place (no allocation per decision); named at the end.
#[derive(Default)]
struct Totals(Vec<(u16, Outcome, [u64; 2])>);

impl Totals {
    fn add(&mut self, symbol: u16, v: Option<&Verdict>, replayed: bool) {
        let Some(v) = v else { return };
        // The answer without its quantities and amounts.
        let answer = match v.result.outcome {
            Outcome::Executed { .. } => Outcome::Executed { qty: Qty::ZERO },
            Outcome::Blocked(Block::P33Denied(r, _)) => {
                Outcome::Blocked(Block::P33Denied(r, P33Context::default()))
            }
            Outcome::Duplicate { .. } => Outcome::Duplicate { ordered: None },
            other => other,
        };
        let i = match self
            .0
            .iter()
            .position(|(s, a, _)| *s == symbol && *a == answer)
        {
            Some(i) => i,
            None => {
                self.0.push((symbol, answer, [0; 2]));
                self.0.len() - 1
            }
        };
        self.0[i].2[usize::from(replayed)] += 1;
    }

    /// (symbol, answer, recorded, replayed), sorted, where the two counts differ.
    fn differing(&self, name: &dyn Fn(u16) -> String) -> Vec<(String, String, u64, u64)> {
        let mut v: Vec<_> = self
            .0
            .iter()
            .filter(|(_, _, [r, p])| r != p)
            .map(|(s, a, [r, p])| {
                let label = a.error_text().unwrap_or_else(|| match a {
                    Outcome::Executed { .. } => "executed".to_string(),
                    _ => "non_execute".to_string(),
                });
                (name(*s), label, *r, *p)
            })
            .collect();
        v.sort();
        v
    }
}

/// Runs `quantum replay`.
pub fn run(a: ReplayArgs) -> Result<()> {
    let cfg = engine_config(a.config.as_deref())?;
    let time = |s: &str| parse_time(s).map_err(anyhow::Error::msg);
    let from = a.from.as_deref().map(time).transpose()?;
    let to = a.to.as_deref().map(time).transpose()?;
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            bail!("--from must be before --to");
        }
    }
    let dir = &a.journal;
    let Some(names) = quantum_daemon::journal_symbols(dir)? else {
        bail!(
            "{} holds no journal (no symbols file); say where the journal is with --journal",
            dir.display()
        );
    };
    // Symbol ids are positions: a hedge-mode symbol's two sides are labelled `S:LONG`, `S:SHORT`.
    let labels: Vec<String> = cfg.symbols.iter().map(|s| s.label()).collect();
    let configured: Vec<&str> = labels.iter().map(String::as_str).collect();
    if !quantum_daemon::symbols_extend(&names, &configured) {
        bail!(
            "the journal's symbols ({}) are not the first symbols of the configuration ({}): its events would be read as other symbols",
            names.join(","),
            configured.join(",")
        );
    }
    let audit = Audit::open(dir)
        .with_context(|| format!("cannot read the journal in {}", dir.display()))?;
    let first_kept = audit.first_seq();
    // Kept from a snapshot on: the replay starts from the snapshot the kept events follow.
    let mut start = State::new(cfg.symbols.len(), cfg.dedupe_horizon_ms, cfg.max_orders);
    let mut note = None;
    if first_kept > 1 {
        let snaps = snapshot::list(dir).map_err(|e| anyhow!("{e}"))?;
        let Some((seq, path)) = snaps.iter().rev().find(|(s, _)| *s + 1 >= first_kept) else {
            bail!(
                "the journal's events start at {first_kept} and no snapshot covers the ones before"
            );
        };
        let (_, bytes) = snapshot::read(path).map_err(|e| anyhow!("{e}"))?;
        start = State::decode(&bytes).map_err(|e| anyhow!("snapshot {seq}: {e}"))?;
        note = Some(format!(
            "started from the snapshot at event {seq} (older events were pruned), as a restart would: until each symbol's next position snapshot its plans may be answered `reconciling`"
        ));
    }
    let from_seq = start.seq + 1;

    let name = |i: u16| names.get(usize::from(i)).map_or("?", String::as_str);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut totals = Totals::default();
    let (mut decided, mut changed, mut reported) = (0u64, 0u64, 0u64);
    let t0 = Instant::now();
    let mut replay = Replay::new(cfg, start).map_err(|e| anyhow!("{e}"))?;
    let mut range: Option<(u64, u64)> = None;
    let mut ds: Vec<Decision> = Vec::new();
    // The times of the first and the last event read.
    let mut span: Option<(u64, u64)> = None;
    let mut on_decision = |d: Decision, out: &mut dyn Write| -> Result<()> {
        let at = d.at_ms();
        if from.is_some_and(|f| at < f) || to.is_some_and(|t| at >= t) {
            return Ok(());
        }
        decided += 1;
        let sym = name(d.plan.symbol.0);
        totals.add(d.plan.symbol.0, d.recorded.as_ref(), false);
        totals.add(d.plan.symbol.0, d.replayed.as_ref(), true);
        let ch = d.changed();
        changed += u64::from(ch);
        if a.json && (ch || a.all) {
            writeln!(out, "{}", decision_json(&d, sym))?;
            reported += 1;
        } else if !a.json && ch {
            writeln!(out, "{}", decision_text(&d, sym))?;
            reported += 1;
        }
        Ok(())
    };
    // Where each segment starts and whether its version journaled the account's mode.
    let mut layouts: std::collections::VecDeque<(u64, bool)> =
        quantum_ipc::journal::segment_layouts(dir)
            .map_err(|e| anyhow!("{e}"))?
            .into_iter()
            .map(|(first, h)| (first, wire::layout_has(h, wire::Kind::AccountMode)))
            .collect();
    audit.scan(from_seq, |seq, e| -> Result<bool> {
        while layouts.front().is_some_and(|(first, _)| *first <= seq) {
            let (_, journaled) = layouts.pop_front().expect("checked");
            replay.account_journaled(journaled);
        }
        if let Some(at) = e.at_ms() {
            span = Some((span.map_or(at, |s| s.0), at));
            if to.is_some_and(|t| at >= t) {
                return Ok(false);
            }
        }
        range = Some((range.map_or(seq, |r| r.0), seq));
        ds.clear();
        replay
            .feed(seq, &e, &mut |d| ds.push(d))
            .map_err(|e| anyhow!("event {seq}: {e}"))?;
        for d in ds.drain(..) {
            on_decision(d, &mut out)?;
        }
        Ok(true)
    })?;
    let Some((first, last)) = span else {
        bail!("the journal in {} holds no event", dir.display());
    };
    let covers = || {
        format!(
            "the journal in {} covers {} to {}",
            dir.display(),
            legacy::iso_ms(first),
            legacy::iso_ms(last)
        )
    };
    if let Some(f) = from.filter(|f| *f > last) {
        bail!(
            "--from {} is after the journal's last event: {}",
            legacy::iso_ms(f),
            covers()
        );
    }
    if let Some(t) = to.filter(|t| *t <= first) {
        bail!(
            "--to {} is not after the journal's first event: {}",
            legacy::iso_ms(t),
            covers()
        );
    }
    let mut left = Vec::new();
    let counts = replay.finish(&mut |d| left.push(d));
    for d in left {
        on_decision(d, &mut out)?;
    }
    out.flush()?;
    drop(out);
    let elapsed = t0.elapsed();
    let summary = summary_text(
        &SummaryIn {
            dir,
            config: a.config.as_deref(),
            range,
            decided,
            changed,
            counts,
            elapsed_s: elapsed.as_secs_f64(),
            note: note.as_deref(),
        },
        &totals.differing(&|i| name(i).to_string()),
    );
    if a.json {
        eprint!("{summary}");
    } else {
        print!("{summary}");
    }
    if a.check && changed > 0 {
        return Err(Exit {
            code: 1,
            message: format!("{changed} decision(s) changed"),
        }
        .into());
    }
    Ok(())
}

struct SummaryIn<'a> {
    dir: &'a Path,
    config: Option<&'a Path>,
    range: Option<(u64, u64)>,
    decided: u64,
    changed: u64,
    counts: Counts,
    elapsed_s: f64,
    note: Option<&'a str>,
}

fn summary_text(s: &SummaryIn<'_>, diff: &[(String, String, u64, u64)]) -> String {
    let mut t = String::new();
    let config = s.config.map_or("the built-in defaults".to_string(), |p| {
        p.display().to_string()
    });
    let range = s
        .range
        .map_or("no event".to_string(), |(a, b)| format!("events {a}..={b}"));
    t.push_str(&format!(
        "replayed {} ({range}) under {config}: {} decision(s), {} changed; {} event(s) in {:.2} s ({:.0} events/s)\n",
        s.dir.display(),
        s.decided,
        s.changed,
        s.counts.events,
        s.elapsed_s,
        s.counts.events as f64 / s.elapsed_s.max(1e-9),
    ));
    t.push_str(&format!(
        "  starts replayed {}; recorded order events dropped {} (of orders the replay did not send as recorded: their fills are unknown); inputs refused {}\n",
        s.counts.starts, s.counts.dropped_reports, s.counts.refused
    ));
    if s.counts.table_full > 0 {
        t.push_str(&format!(
            "  {} plan(s) found no permit slot (table_capacity) and got no answer\n",
            s.counts.table_full
        ));
    }
    if s.counts.legacy {
        t.push_str("  note: this journal was written before starts and refused plans were journaled: a start is recognised by every symbol starting to reconcile, and an EXECUTE plan answered at admission is judged by its id, symbol and decision only\n");
    }
    if let Some(n) = s.note {
        t.push_str(&format!("  note: {n}\n"));
    }
    if !diff.is_empty() {
        t.push_str("  per symbol and answer (recorded -> replayed):\n");
        for (sym, answer, r, p) in diff {
            t.push_str(&format!("    {sym:<10} {answer:<48} {r} -> {p}\n"));
        }
    }
    t
}

fn verdict_text(v: Option<&Verdict>) -> String {
    let Some(v) = v else {
        return "(no answer)".to_string();
    };
    let (class, reason) = v.label();
    match (v.order(), reason) {
        (Some((side, qty)), _) => format!("executed {side} {qty}"),
        (None, Some(r)) => r,
        (None, None) => class.to_string(),
    }
}

fn decision_text(d: &Decision, sym: &str) -> String {
    format!(
        "{} plan={} {sym} {} -> {} order={}",
        legacy::iso_ms(d.at_ms()),
        d.plan.id,
        verdict_text(d.recorded.as_ref()),
        verdict_text(d.replayed.as_ref()),
        d.order_note().name()
    )
}

/// One decision as a flat JSON object (one row for pandas or DuckDB).
fn decision_json(d: &Decision, sym: &str) -> Value {
    let mut o = serde_json::Map::new();
    o.insert("time".into(), legacy::iso_ms(d.at_ms()).into());
    o.insert("time_ms".into(), d.at_ms().into());
    o.insert("seq".into(), d.seq.into());
    o.insert("plan".into(), d.plan.id.to_string().into());
    o.insert("symbol".into(), sym.into());
    o.insert("decision".into(), d.plan.decision.to_string().into());
    o.insert("action".into(), d.plan.action.to_string().into());
    o.insert("changed".into(), d.changed().into());
    o.insert("order".into(), d.order_note().name().into());
    for (prefix, v) in [("recorded", d.recorded), ("replayed", d.replayed)] {
        let (outcome, reason, side, qty) = match &v {
            Some(v) => {
                let (class, reason) = v.label();
                let order = v.order();
                (
                    Value::from(class),
                    reason.map_or(Value::Null, Value::from),
                    order.map_or(Value::Null, |(s, _)| s.to_string().into()),
                    order.map_or(Value::Null, |(_, q)| q.to_string().into()),
                )
            }
            None => (Value::Null, Value::Null, Value::Null, Value::Null),
        };
        o.insert(format!("{prefix}_outcome"), outcome);
        o.insert(format!("{prefix}_reason"), reason);
        o.insert(format!("{prefix}_side"), side);
        o.insert(format!("{prefix}_qty"), qty);
    }
    // The inputs of the replayed verdict (else the recorded one's): what P3.3 compared.
    let p33 = d
        .replayed
        .and_then(|v| v.p33)
        .or_else(|| d.recorded.and_then(|v| v.p33));
    let ctx = p33.map(|p| p.context);
    o.insert(
        "exchange_amt".into(),
        ctx.map_or(Value::Null, |c| c.exchange.to_string().into()),
    );
    o.insert(
        "ledger_amt".into(),
        ctx.map_or(Value::Null, |c| c.ledger.to_string().into()),
    );
    o.insert(
        "tolerance".into(),
        ctx.map_or(Value::Null, |c| c.tolerance.to_string().into()),
    );
    let gov = d
        .replayed
        .and_then(|v| v.gov)
        .or_else(|| d.recorded.and_then(|v| v.gov));
    o.insert(
        "gov_allow".into(),
        gov.map_or(Value::Null, |g| g.allow.into()),
    );
    o.insert("kill_score".into(), d.plan.kill_score.to_string().into());
    o.insert(
        "created_at_ms".into(),
        match d.plan.created_at_ms {
            0 => Value::Null,
            ms => ms.into(),
        },
    );
    Value::Object(o)
}
