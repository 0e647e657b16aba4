//! `ctl tail`: a reader of the `results` ring: every event of the engine, in order, as it
//! leaves the core. It never slows the core: a reader that falls a lap behind is told how
//! many events it missed (on stderr) and carries on.
//!
//! Text lines read like the legacy log, one per event:
//!
//! ```text
//! accepted plan=f33effa0343becc4 symbol=BTCUSDT decision=EXECUTE action=PARTIAL_75
//! permit gov plan=f33effa0343becc4 granted=true ttl=15 symbol=BTCUSDT
//! permit p33 plan=f33effa0343becc4 allow=true safe_qty=0.046 exchange_amt=0.062 ledger_amt=0.062 diff=0 tolerance=0.001 symbol=BTCUSDT
//! intent plan=f33effa0343becc4 symbol=BTCUSDT side=SELL qty=0.046 client_order_id=qpc-f33effa0343becc4
//! BTCUSDT: Result published (executed=True, error=None) plan=f33effa0343becc4 decision=EXECUTE safe_qty=0.046 wait_us=3
//! sent plan=f33effa0343becc4 symbol=BTCUSDT
//! exchange_accepted plan=f33effa0343becc4 symbol=BTCUSDT order_id=10001
//! fill plan=f33effa0343becc4 symbol=BTCUSDT side=SELL qty=0.046 price=104000 cum_qty=0.046 ledger=0.016
//! done plan=f33effa0343becc4 symbol=BTCUSDT code=filled filled=0.046 released=0
//! position BTCUSDT exchange_amount=0.016 mark=104000 updated_at=2026-01-25T00:30:08.977Z
//! position BTCUSDT ledger_amount=0.062
//! position ETHUSDT ledger_amount_short=-1.5      (a hedge-mode symbol's side)
//! ```
//!
//! With `--json`, permits, positions and results are what the Redis bridge writes, in the
//! legacy shapes (`{"key":…,"value":…}` for a key it SETs, `{"key":…,"fields":{…}}` for a hash
//! or stream entry), and every other event is `{"event":"<name>",…}`.
//!
//! `--only` prints one group of events. `--count N` stops right after the N-th plan result,
//! whatever `--only` prints. Without `--count` it stops when the daemon has gone and nothing
//! new is left.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use quantum_core::event::Event;
use quantum_core::{ClientOrderId, PlanResult, PositionSide, Qty};
use quantum_ipc::broadcast::{Broadcast, Next, Start};
use quantum_ipc::contract;
use quantum_ipc::wire::{Limits, Message};
use quantum_ipc::{PeerStatus, RingSpec};
use quantum_redis::legacy;

use super::open_counters;

/// Which events `ctl tail` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Only {
    /// Plan results.
    Results,
    /// Governor and P3.3 permits.
    Permits,
    /// Position and ledger changes.
    Positions,
    /// Plans accepted, order intents and what happened to the orders.
    Orders,
}

/// Where `ctl tail` starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum From {
    /// The oldest event the ring still holds.
    Oldest,
    /// The next event published.
    Live,
}

/// Options of `ctl tail`.
#[derive(Args, Debug)]
pub struct TailArgs {
    /// Instance name.
    #[arg(long)]
    pub instance: String,
    /// Stop after this many plan results (other events are not counted).
    #[arg(long)]
    pub count: Option<u64>,
    /// JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print only this group of events (default: every event).
    #[arg(long, value_enum)]
    pub only: Option<Only>,
    /// Where to start.
    #[arg(long, value_enum, default_value = "oldest")]
    pub from: From,
}

fn group(e: &Event) -> Option<Only> {
    Some(match e {
        Event::PlanResult(_) => Only::Results,
        Event::GovPermit(_) | Event::P33Permit(_) => Only::Permits,
        Event::Position { .. } | Event::LedgerSet { .. } => Only::Positions,
        Event::PlanAccepted { .. }
        | Event::PlanSeen { .. }
        | Event::OrderIntent(_)
        | Event::OrderSent { .. }
        | Event::OrderAccepted { .. }
        | Event::Fill(_)
        | Event::OrderDone(_)
        | Event::OrderUnknown { .. }
        | Event::OrderResolved { .. }
        | Event::OrderRecovered { .. } => Only::Orders,
        Event::Reconciling { .. }
        | Event::OrderHistory(_)
        | Event::Leading { .. }
        | Event::LedgerWanted { .. } => Only::Positions,
        _ => return None,
    })
}

/// Runs `ctl tail`.
pub fn run(a: TailArgs) -> Result<()> {
    let counters = open_counters(&a.instance)?;
    let mut names = vec![String::from("?"); 256];
    for (id, n) in counters.symbols() {
        names[id as usize] = n;
    }
    let limits = Limits::new(counters.symbols().len() as u16);
    let ring = Broadcast::open(&RingSpec::new(&a.instance, contract::RESULTS.name, 0))
        .with_context(|| format!("cannot open the results ring of instance {}", a.instance))?;
    let start = match a.from {
        From::Oldest => Start::Oldest,
        From::Live => Start::Live,
    };
    let mut reader = ring.reader(start);
    reader.heartbeat();
    eprintln!(
        "tail: reading {} from seq {} (pid {})",
        ring.os_id(),
        reader.next_seq(),
        std::process::id()
    );
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut results = 0u64;
    let mut invalid = 0u64;
    let want = a.count.unwrap_or(u64::MAX);
    let mut last_check = Instant::now();
    let mut idle = Duration::from_micros(20);
    let name = |s: u16| names.get(usize::from(s)).map_or("?", String::as_str);
    while results < want {
        match reader.read() {
            Next::Record { record, .. } => {
                idle = Duration::from_micros(20);
                let event = Message::decode(&record, &limits)
                    .map_err(|e| e.to_string())
                    .and_then(|m| Event::from_message(&m));
                let e = match event {
                    Ok(e) => e,
                    Err(why) => {
                        invalid += 1;
                        eprintln!("tail: invalid record skipped: {why}");
                        continue;
                    }
                };
                if matches!(e, Event::PlanResult(_)) {
                    results += 1;
                }
                if a.only.is_some_and(|o| group(&e) != Some(o)) {
                    continue;
                }
                if a.json {
                    json_event(&mut out, &e, &name)?;
                } else {
                    text_event(&mut out, &e, &name)?;
                }
            }
            Next::Missed { from_seq, to_seq } => {
                eprintln!(
                    "tail: missed {} event(s), seq {from_seq}..{to_seq}: the ring lapped this reader",
                    to_seq - from_seq
                );
            }
            Next::Empty => {
                out.flush()?;
                reader.heartbeat();
                if last_check.elapsed() >= Duration::from_millis(100) {
                    last_check = Instant::now();
                    if let PeerStatus::Dead { .. } | PeerStatus::Detached { .. } =
                        reader.writer_status(u64::MAX)
                    {
                        if !matches!(reader.read(), Next::Empty) {
                            // Something came in after all: the loop reads it next round.
                            reader = ring.reader(Start::Seq(reader.next_seq() - 1));
                            continue;
                        }
                        if a.count.is_some() {
                            bail!("the daemon stopped after {results} of {want} results");
                        }
                        eprintln!("tail: the daemon stopped; {results} results");
                        return Ok(());
                    }
                }
                std::thread::sleep(idle);
                idle = (idle * 2).min(Duration::from_millis(2));
            }
        }
    }
    out.flush()?;
    if invalid > 0 {
        eprintln!("tail: {invalid} invalid record(s) skipped");
    }
    if reader.missed() > 0 {
        eprintln!("tail: {} event(s) missed in all", reader.missed());
    }
    Ok(())
}

fn text_result(out: &mut impl Write, r: &PlanResult, sym: &str) -> std::io::Result<()> {
    let executed = if r.executed() { "True" } else { "False" };
    writeln!(
        out,
        "{sym}: Result published (executed={executed}, error={}) plan={} decision={} safe_qty={} wait_us={}",
        r.error_text().as_deref().unwrap_or("None"),
        r.plan,
        r.decision,
        r.safe_qty().unwrap_or(Qty::ZERO),
        r.wait_ns / 1_000
    )
}

/// One event as a text line.
pub fn text_event<'n>(
    out: &mut impl Write,
    e: &Event,
    name: &dyn Fn(u16) -> &'n str,
) -> std::io::Result<()> {
    match e {
        Event::PlanResult(r) => text_result(out, r, name(r.symbol.0)),
        Event::PlanAccepted { plan, .. } => writeln!(
            out,
            "accepted plan={} symbol={} decision={} action={}",
            plan.id,
            name(plan.symbol.0),
            plan.decision,
            plan.action
        ),
        Event::GovPermit(g) => {
            write!(
                out,
                "permit gov plan={} granted={} ttl={}",
                g.plan,
                g.allow,
                legacy::ttl_secs(g.ttl_ms)
            )?;
            if let Some(r) = g.reason.filter(|_| !g.allow) {
                write!(out, " reason={r}")?;
            }
            writeln!(out, " symbol={}", name(g.symbol.0))
        }
        Event::P33Permit(p) => {
            write!(out, "permit p33 plan={} allow={}", p.plan, p.allow)?;
            if p.allow {
                write!(out, " safe_qty={}", p.safe_qty)?;
            } else if let Some(r) = p.reason {
                write!(out, " reason={r}")?;
            }
            let c = &p.context;
            writeln!(
                out,
                " exchange_amt={} ledger_amt={} diff={} tolerance={} symbol={}",
                c.exchange,
                c.ledger,
                c.diff(),
                c.tolerance,
                name(p.symbol.0)
            )
        }
        Event::OrderIntent(i) => writeln!(
            out,
            "intent plan={} symbol={} side={} qty={} client_order_id={}{}",
            i.plan,
            name(i.symbol.0),
            i.side,
            i.qty,
            ClientOrderId::for_plan(i.plan),
            if i.lookup_first { " lookup_first" } else { "" }
        ),
        Event::OrderSent { plan, symbol, .. } => {
            writeln!(out, "sent plan={plan} symbol={}", name(symbol.0))
        }
        Event::OrderAccepted {
            plan,
            symbol,
            order_id,
            ..
        } => writeln!(
            out,
            "exchange_accepted plan={plan} symbol={} order_id={order_id}",
            name(symbol.0)
        ),
        Event::Fill(f) => writeln!(
            out,
            "fill plan={} symbol={} side={} qty={} price={} cum_qty={} ledger={}",
            f.plan,
            name(f.symbol.0),
            f.side,
            f.qty,
            f.price,
            f.cum_qty,
            f.ledger_after
        ),
        Event::OrderDone(d) => {
            write!(
                out,
                "done plan={} symbol={} code={} filled={} released={}",
                d.plan,
                name(d.symbol.0),
                d.code,
                d.filled,
                d.released
            )?;
            if d.reason != 0 {
                write!(out, " reason={}", d.reason)?;
            }
            if d.exchange_code != 0 {
                write!(out, " exchange_code={}", d.exchange_code)?;
            }
            writeln!(out)
        }
        Event::OrderUnknown {
            plan,
            symbol,
            reason,
            ..
        } => writeln!(
            out,
            "unknown plan={plan} symbol={} reason={reason}",
            name(symbol.0)
        ),
        Event::OrderResolved {
            plan,
            symbol,
            found,
            order_id,
            ..
        } => writeln!(
            out,
            "resolved plan={plan} symbol={} found={found} order_id={order_id}",
            name(symbol.0)
        ),
        Event::LedgerSet { symbol, amount, .. } => {
            let (sym, side) = PositionSide::split_label(name(symbol.0));
            writeln!(
                out,
                "position {sym} {}={amount}",
                legacy::ledger_field(side)
            )
        }
        Event::Position {
            symbol,
            amount,
            mark,
            time_ms,
        } => {
            let (sym, side) = PositionSide::split_label(name(symbol.0));
            writeln!(
                out,
                "position {sym} {}={amount} mark={mark} updated_at={}",
                legacy::exchange_field(side),
                legacy::iso_ms(*time_ms)
            )
        }
        Event::Filters { symbol, filters } => writeln!(
            out,
            "filters {} lot_min={} lot_step={} market_max={}",
            name(symbol.0),
            filters.lot.min,
            filters.lot.step,
            filters.market_lot.max
        ),
        Event::Switch(s) => writeln!(out, "switch {s:?}"),
        Event::Refused(r) => writeln!(
            out,
            "refused ring={} kind={} plan={} symbol={} reason={}",
            contract::by_index(r.ring).map_or("?", |d| d.name),
            r.kind,
            r.plan,
            name(r.symbol.0),
            r.reason
        ),
        Event::Reconciling {
            symbol,
            on,
            unknown_orders,
            ..
        } => {
            if *on {
                writeln!(
                    out,
                    "reconciling {} started unknown_orders={unknown_orders}",
                    name(symbol.0)
                )
            } else {
                writeln!(out, "reconciling {} done", name(symbol.0))
            }
        }
        Event::OrderRecovered { report: r, .. } => writeln!(
            out,
            "recovered plan={} symbol={} side={} status={} filled={} order_id={}",
            r.plan,
            name(r.symbol.0),
            r.side,
            r.status,
            r.cum_qty,
            r.order_id
        ),
        Event::OrderHistory(h) => writeln!(
            out,
            "order_history {} orders={} since_ms={} through_ms={}",
            name(h.symbol.0),
            h.orders,
            h.since_ms,
            h.through_ms
        ),
        Event::LedgerWanted {
            symbol,
            epoch,
            at_ms,
        } => writeln!(
            out,
            "ledger_wanted {} epoch={epoch} at_ms={at_ms}",
            name(symbol.0)
        ),
        Event::Leading {
            epoch,
            since_ms,
            at_ms,
        } => writeln!(
            out,
            "leading epoch={epoch} history_since_ms={since_ms} at_ms={at_ms}"
        ),
        Event::PlanSeen { plan, at_ms } => writeln!(
            out,
            "seen plan={} symbol={} decision={} action={} at_ms={at_ms}",
            plan.id,
            name(plan.symbol.0),
            plan.decision,
            plan.action
        ),
        Event::Started {
            history,
            at_ms,
            since_ms,
        } => {
            write!(out, "started at_ms={at_ms}")?;
            if *history {
                write!(out, " history_since_ms={since_ms}")?;
            }
            writeln!(out)
        }
        Event::AccountMode { hedge, at_ms } => writeln!(
            out,
            "account position_mode={} at_ms={at_ms}",
            if *hedge { "hedge" } else { "one_way" }
        ),
        Event::SymbolStatus {
            symbol,
            status,
            at_ms,
        } => writeln!(
            out,
            "symbol_status symbol={} status={status} at_ms={at_ms}",
            name(symbol.0)
        ),
    }
}

/// One event as a JSON line (legacy shapes where the Redis contract has one).
pub fn json_event<'n>(
    out: &mut impl Write,
    e: &Event,
    name: &dyn Fn(u16) -> &'n str,
) -> std::io::Result<()> {
    let key = |k: String| serde_json::Value::from(k);
    let line = match e {
        Event::GovPermit(g) => format!(
            "{{\"key\":{},\"value\":{}}}",
            key(legacy::permit_key(g.plan)),
            legacy::gov_permit_json(g, name(g.symbol.0))
        ),
        Event::P33Permit(p) => format!(
            "{{\"key\":{},\"value\":{}}}",
            key(legacy::p33_permit_key(p.plan)),
            legacy::p33_permit_json(p, name(p.symbol.0))
        ),
        Event::PlanResult(r) => {
            let fields: serde_json::Map<String, serde_json::Value> =
                legacy::result_fields(r, name(r.symbol.0), None)
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.into()))
                    .collect();
            format!(
                "{{\"key\":{},\"fields\":{}}}",
                key(legacy::RESULT_STREAM.into()),
                serde_json::Value::Object(fields)
            )
        }
        Event::LedgerSet { symbol, amount, .. } => {
            let side = PositionSide::split_label(name(symbol.0)).1;
            format!(
                "{{\"key\":{},\"fields\":{{\"{}\":\"{amount}\"}}}}",
                key(legacy::position_key(name(symbol.0))),
                legacy::ledger_field(side)
            )
        }
        Event::Position {
            symbol,
            amount,
            time_ms,
            ..
        } => {
            let side = PositionSide::split_label(name(symbol.0)).1;
            format!(
                "{{\"key\":{},\"fields\":{{\"{}\":\"{amount}\",\"updated_at\":\"{}\"}}}}",
                key(legacy::position_key(name(symbol.0))),
                legacy::exchange_field(side),
                legacy::iso_ms(*time_ms)
            )
        }
        other => {
            let mut v = Vec::new();
            text_event(&mut v, other, name)?;
            let text = String::from_utf8_lossy(&v);
            let mut words = text.split_whitespace();
            let kind = words.next().unwrap_or("event").trim_end_matches(':');
            let mut o = serde_json::Map::new();
            o.insert("event".into(), kind.into());
            for w in words {
                if let Some((k, v)) = w.split_once('=') {
                    o.insert(k.into(), v.into());
                }
            }
            serde_json::Value::Object(o).to_string()
        }
    };
    writeln!(out, "{line}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantum_core::event::{FillEvent, GovPermitEvent};
    use quantum_core::{PlanId, Side, SymbolId};

    fn name(_: u16) -> &'static str {
        "BTCUSDT"
    }

    fn text(e: &Event) -> String {
        let mut v = Vec::new();
        text_event(&mut v, e, &name).unwrap();
        String::from_utf8(v).unwrap()
    }

    fn json(e: &Event) -> serde_json::Value {
        let mut v = Vec::new();
        json_event(&mut v, e, &name).unwrap();
        serde_json::from_slice(&v)
            .unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(&v)))
    }

    #[test]
    fn events_read_as_lines_and_legacy_shapes() {
        let gov = Event::GovPermit(GovPermitEvent {
            plan: PlanId(0xf1a8_d7f4_8713_d5cf),
            symbol: SymbolId(0),
            allow: true,
            reason: None,
            issued_at_ms: 1_769_301_008_977,
            ttl_ms: 15_000,
        });
        assert_eq!(
            text(&gov),
            "permit gov plan=f1a8d7f48713d5cf granted=true ttl=15 symbol=BTCUSDT\n"
        );
        assert_eq!(
            json(&gov),
            serde_json::json!({"key":"quantum:permit:f1a8d7f48713d5cf","value":{"granted":true,"symbol":"BTCUSDT","decision":"EXECUTE","created_at":"2026-01-25T00:30:08.977Z","ttl":15}})
        );
        let q = |s: &str| s.parse::<Qty>().unwrap();
        let fill = Event::Fill(FillEvent {
            plan: PlanId(1),
            symbol: SymbolId(0),
            side: Side::Sell,
            qty: q("0.046"),
            price: "104000".parse().unwrap(),
            order_id: 7,
            time_ms: 1,
            cum_qty: q("0.046"),
            ledger_after: q("0.016"),
        });
        assert_eq!(
            text(&fill),
            "fill plan=0000000000000001 symbol=BTCUSDT side=SELL qty=0.046 price=104000 cum_qty=0.046 ledger=0.016\n"
        );
        assert_eq!(json(&fill)["event"], "fill");
        assert_eq!(json(&fill)["ledger"], "0.016");
    }
}
