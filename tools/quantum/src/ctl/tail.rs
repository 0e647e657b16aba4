//! `ctl tail`: the consumer of the `results` ring: plan results, the permits before them and the
//! book's position records ([`crate::daemon::rings`] says what the ring carries, in which
//! order).
//!
//! Text lines read like the legacy log:
//!
//! ```text
//! position BTCUSDT exchange_amount=0.062 mark=104000 updated_at=2026-01-25T00:30:08.977Z
//! position BTCUSDT ledger_amount=0.002
//! permit gov plan=f1a8d7f48713d5cf granted=true ttl=15 symbol=BTCUSDT
//! permit p33 plan=f1a8d7f48713d5cf allow=false reason=reconcile_required_qty_mismatch exchange_amt=0.062 ledger_amt=0.002 diff=0.06 tolerance=0.001 symbol=BTCUSDT
//! BTCUSDT: Result published (executed=False, error=p33_denied:reconcile_required_qty_mismatch) plan=f1a8d7f48713d5cf decision=EXECUTE safe_qty=0 wait_us=12
//! ```
//!
//! (`permit gov ... granted=false reason=<gov reason>` on a deny, `permit p33 ... allow=true
//! safe_qty=0.046` on an allow.) With `--json`, a result is
//! `{"plan_id":…,"symbol":…,"decision":…,"executed":…,"error":…,"safe_qty":…,"wait_us":…}` and
//! the other records are what a Redis bridge writes, in the legacy shapes of the seeds:
//!
//! ```text
//! {"key":"quantum:position:BTCUSDT","fields":{"exchange_amount":"0.062","mark_price":"104000","updated_at":"2026-01-25T00:30:08.977Z"}}
//! {"key":"quantum:position:BTCUSDT","fields":{"ledger_amount":"0.002"}}
//! {"key":"quantum:permit:f1a8d7f48713d5cf","value":{"granted":true,"symbol":"BTCUSDT","decision":"EXECUTE","created_at":"2026-01-25T00:30:08.977Z","ttl":15}}
//! {"key":"quantum:permit:p33:f1a8d7f48713d5cf","value":{"allow":false,"symbol":"BTCUSDT","reason":"reconcile_required_qty_mismatch","context":{"exchange_amt":0.062,"ledger_amt":0.002,"diff":0.06,"tolerance":0.001},"created_at":"2026-01-25T00:30:08.977Z"}}
//! ```
//!
//! `value` is the string a bridge SETs under `key` (new here: a denied governor permit adds
//! `"reason"`; an allowed P3.3 permit has `"safe_qty"` and no `"context"`, which its result
//! does not carry), `fields` the fields it HSETs. `created_at` is when the plan entered the
//! core, `updated_at` when the core's book changed.
//!
//! `--only results|permits|positions` prints one kind. `--count N` counts plan results only,
//! whatever `--only` prints: tail stops right after the N-th result (so with `--only results`
//! it prints exactly N lines, and it never reads past that result). Without `--count` it stops
//! when the daemon has gone and the ring is empty.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use quantum_core::governor::GovReason;
use quantum_core::p33::P33Reason;
use quantum_core::{PlanId, Price, Qty};
use quantum_ipc::wire::{Limits, Message, PlanResult, RECORD_SIZE};
use quantum_ipc::{PeerStatus, Ring, RingSpec};

use super::open_counters;
use crate::daemon::{convert, rings};

/// Which records `ctl tail` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Only {
    /// Plan results.
    Results,
    /// Governor and P3.3 permits.
    Permits,
    /// Position records (exchange amount, mark, time; ledger amount).
    Positions,
}

/// Options of `ctl tail`.
#[derive(Args, Debug)]
pub struct TailArgs {
    /// Instance name.
    #[arg(long)]
    pub instance: String,
    /// Stop after this many plan results (other records are not counted).
    #[arg(long)]
    pub count: Option<u64>,
    /// JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print only this kind of record (default: every record).
    #[arg(long, value_enum)]
    pub only: Option<Only>,
}

/// Runs `ctl tail`.
pub fn run(a: TailArgs) -> Result<()> {
    let counters = open_counters(&a.instance)?;
    let mut names = vec![String::from("?"); 256];
    for (id, n) in counters.symbols() {
        names[id as usize] = n;
    }
    let limits = Limits::new(counters.symbols().len() as u16);
    let ring = Ring::open(&RingSpec::new(&a.instance, rings::RESULTS, 0))
        .with_context(|| format!("cannot open the results ring of instance {}", a.instance))?;
    let mut consumer = ring.consumer::<RECORD_SIZE>()?;
    consumer.heartbeat();
    eprintln!(
        "tail: attached to {} as consumer (pid {})",
        ring.os_id(),
        std::process::id()
    );
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut buf = vec![[0u8; RECORD_SIZE]; 256];
    // Plan results read, and records read.
    let mut n = 0u64;
    let mut records = 0u64;
    let mut invalid = 0u64;
    let want = a.count.unwrap_or(u64::MAX);
    let mut last_check = Instant::now();
    let mut idle = Duration::from_micros(20);
    while n < want {
        // At most as many records as results are still wanted: never past the last one.
        let max = buf.len().min((want - n).min(usize::MAX as u64) as usize);
        let got = consumer.pop_batch(&mut buf[..max]);
        if got == 0 {
            out.flush()?;
            consumer.heartbeat();
            if last_check.elapsed() >= Duration::from_millis(100) {
                last_check = Instant::now();
                if let PeerStatus::Dead { .. } | PeerStatus::Detached { .. } =
                    consumer.peer_status(u64::MAX)
                {
                    if consumer.is_empty() {
                        if a.count.is_some() {
                            bail!("the daemon stopped after {n} of {want} results");
                        }
                        eprintln!("tail: the daemon stopped; {n} results");
                        return Ok(());
                    }
                }
            }
            std::thread::sleep(idle);
            idle = (idle * 2).min(Duration::from_millis(2));
            continue;
        }
        idle = Duration::from_micros(20);
        for rec in &buf[..got] {
            let m = match Message::decode(rec, &limits) {
                Ok(m) => m,
                Err(e) => {
                    invalid += 1;
                    consumer.report_invalid();
                    eprintln!("tail: invalid record skipped: {e}");
                    continue;
                }
            };
            let Some(kind) = kind_of(&m) else {
                invalid += 1;
                eprintln!("tail: unexpected {:?} record skipped", m.kind());
                continue;
            };
            if kind == Only::Results {
                n += 1;
            }
            if a.only.is_some_and(|o| o != kind) {
                continue;
            }
            let sym = symbol_of(&m).map_or("?", |s| names[s as usize].as_str());
            if a.json {
                json_record(&mut out, &m, sym)?;
            } else {
                text_record(&mut out, &m, sym)?;
            }
        }
        records += got as u64;
        if records % 4096 < got as u64 {
            consumer.heartbeat();
        }
    }
    out.flush()?;
    if invalid > 0 {
        eprintln!("tail: {invalid} invalid record(s) skipped");
    }
    Ok(())
}

/// The kind of a record `results` carries, `None` for any other.
fn kind_of(m: &Message) -> Option<Only> {
    match m {
        Message::PlanResult(_) => Some(Only::Results),
        Message::GovPermit(_) | Message::P33Permit(_) => Some(Only::Permits),
        Message::PositionSnapshot(_) | Message::LedgerSet(_) => Some(Only::Positions),
        _ => None,
    }
}

fn symbol_of(m: &Message) -> Option<u16> {
    Some(match m {
        Message::PlanResult(r) => r.symbol,
        Message::GovPermit(g) => g.symbol,
        Message::P33Permit(p) => p.symbol,
        Message::PositionSnapshot(p) => p.symbol,
        Message::LedgerSet(l) => l.symbol,
        _ => return None,
    })
}

/// A TTL in seconds as the legacy JSON has it (`15`, or `1.5`).
fn ttl_secs(ttl_ms: u32) -> String {
    if ttl_ms % 1000 == 0 {
        (ttl_ms / 1000).to_string()
    } else {
        let s = format!("{}.{:03}", ttl_ms / 1000, ttl_ms % 1000);
        s.trim_end_matches('0').to_string()
    }
}

/// Unix ms as `2026-01-25T00:30:08.977Z` (UTC).
pub fn iso_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        ms % 1000
    )
}

fn text_record(out: &mut impl Write, m: &Message, sym: &str) -> std::io::Result<()> {
    let q = Qty::from_units;
    match m {
        Message::PlanResult(r) => text_line(out, r, sym),
        Message::GovPermit(g) => {
            write!(
                out,
                "permit gov plan={} granted={} ttl={}",
                PlanId(g.plan_id),
                g.allow,
                ttl_secs(g.ttl_ms)
            )?;
            if !g.allow {
                write!(out, " reason={}", GovReason::from_code(g.reason).as_str())?;
            }
            writeln!(out, " symbol={sym}")
        }
        Message::P33Permit(p) => {
            write!(
                out,
                "permit p33 plan={} allow={}",
                PlanId(p.plan_id),
                p.allow
            )?;
            if p.allow {
                write!(out, " safe_qty={}", q(p.safe_qty))?;
            } else {
                let ctx = quantum_core::permit::P33Context {
                    exchange: q(p.exchange_amt),
                    ledger: q(p.ledger_amt),
                    tolerance: q(p.tolerance),
                };
                write!(
                    out,
                    " reason={} exchange_amt={} ledger_amt={} diff={} tolerance={}",
                    P33Reason::from_code(p.reason).as_str(),
                    ctx.exchange,
                    ctx.ledger,
                    ctx.diff(),
                    ctx.tolerance
                )?;
            }
            writeln!(out, " symbol={sym}")
        }
        Message::PositionSnapshot(p) => writeln!(
            out,
            "position {sym} exchange_amount={} mark={} updated_at={}",
            q(p.amount),
            Price::from_units(p.mark_price),
            iso_ms(p.exchange_time_ms)
        ),
        Message::LedgerSet(l) => writeln!(out, "position {sym} ledger_amount={}", q(l.amount)),
        _ => Ok(()),
    }
}

fn json_record(out: &mut impl Write, m: &Message, sym: &str) -> std::io::Result<()> {
    let q = Qty::from_units;
    let symbol = serde_json::Value::from(sym);
    // Symbol names are escaped through serde_json; everything else here is a plan id, a
    // decimal, a reason code or a time: no escaping needed. Amounts are exact decimals, written
    // as JSON numbers where the legacy JSON has numbers, as strings in hash fields.
    match m {
        Message::PlanResult(r) => json_line(out, r, sym),
        Message::GovPermit(g) => {
            write!(
                out,
                "{{\"key\":\"quantum:permit:{}\",\"value\":{{\"granted\":{},\"symbol\":{symbol},\"decision\":\"EXECUTE\",\"created_at\":\"{}\",\"ttl\":{}",
                PlanId(g.plan_id),
                g.allow,
                iso_ms(g.issued_at_ms),
                ttl_secs(g.ttl_ms)
            )?;
            if !g.allow {
                write!(
                    out,
                    ",\"reason\":\"{}\"",
                    GovReason::from_code(g.reason).as_str()
                )?;
            }
            writeln!(out, "}}}}")
        }
        Message::P33Permit(p) => {
            write!(
                out,
                "{{\"key\":\"quantum:permit:p33:{}\",\"value\":{{\"allow\":{},\"symbol\":{symbol}",
                PlanId(p.plan_id),
                p.allow
            )?;
            if p.allow {
                write!(out, ",\"safe_qty\":{}", q(p.safe_qty))?;
            } else {
                let ctx = quantum_core::permit::P33Context {
                    exchange: q(p.exchange_amt),
                    ledger: q(p.ledger_amt),
                    tolerance: q(p.tolerance),
                };
                write!(
                    out,
                    ",\"reason\":\"{}\",\"context\":{{\"exchange_amt\":{},\"ledger_amt\":{},\"diff\":{},\"tolerance\":{}}}",
                    P33Reason::from_code(p.reason).as_str(),
                    ctx.exchange,
                    ctx.ledger,
                    ctx.diff(),
                    ctx.tolerance
                )?;
            }
            writeln!(out, ",\"created_at\":\"{}\"}}}}", iso_ms(p.issued_at_ms))
        }
        Message::PositionSnapshot(p) => writeln!(
            out,
            "{{\"key\":{},\"fields\":{{\"exchange_amount\":\"{}\",\"mark_price\":\"{}\",\"updated_at\":\"{}\"}}}}",
            serde_json::Value::from(format!("quantum:position:{sym}")),
            q(p.amount),
            Price::from_units(p.mark_price),
            iso_ms(p.exchange_time_ms)
        ),
        Message::LedgerSet(l) => writeln!(
            out,
            "{{\"key\":{},\"fields\":{{\"ledger_amount\":\"{}\"}}}}",
            serde_json::Value::from(format!("quantum:position:{sym}")),
            q(l.amount)
        ),
        _ => Ok(()),
    }
}

fn text_line(out: &mut impl Write, r: &PlanResult, sym: &str) -> std::io::Result<()> {
    let executed = if r.executed { "True" } else { "False" };
    let error = convert::result_error_text(r);
    writeln!(
        out,
        "{sym}: Result published (executed={executed}, error={}) plan={} decision={} safe_qty={} wait_us={}",
        error.as_deref().unwrap_or("None"),
        PlanId(r.plan_id),
        convert::decision_text(r.decision),
        Qty::from_units(r.safe_qty),
        r.wait_us
    )
}

fn json_line(out: &mut impl Write, r: &PlanResult, sym: &str) -> std::io::Result<()> {
    // Every string here is a plan id, a symbol name from the directory ([A-Z0-9] in practice,
    // escaped anyway), a decision or an error code: no other escaping is needed.
    let error = match convert::result_error_text(r) {
        Some(e) => format!("\"{e}\""),
        None => "null".into(),
    };
    writeln!(
        out,
        "{{\"plan_id\":\"{}\",\"symbol\":{},\"decision\":\"{}\",\"executed\":{},\"error\":{error},\"safe_qty\":\"{}\",\"wait_us\":{}}}",
        PlanId(r.plan_id),
        serde_json::Value::from(sym),
        convert::decision_text(r.decision),
        r.executed,
        Qty::from_units(r.safe_qty),
        r.wait_us
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantum_ipc::wire;

    fn text(m: Message) -> String {
        let mut v = Vec::new();
        text_record(&mut v, &m, "BTCUSDT").unwrap();
        String::from_utf8(v).unwrap()
    }

    fn json(m: Message) -> serde_json::Value {
        let mut v = Vec::new();
        json_record(&mut v, &m, "BTCUSDT").unwrap();
        serde_json::from_slice(&v)
            .unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(&v)))
    }

    fn u(s: &str) -> i64 {
        s.parse::<Qty>().unwrap().units()
    }

    const T: u64 = 1_769_301_008_977;

    #[test]
    fn times_read_as_utc() {
        assert_eq!(iso_ms(T), "2026-01-25T00:30:08.977Z");
        assert_eq!(iso_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(ttl_secs(15_000), "15");
        assert_eq!(ttl_secs(1_500), "1.5");
        assert_eq!(ttl_secs(0), "0");
    }

    #[test]
    fn permits_and_positions_in_legacy_lines_and_shapes() {
        let gov = Message::GovPermit(wire::GovPermit {
            allow: true,
            symbol: 0,
            reason: 0,
            plan_id: 0xf1a8_d7f4_8713_d5cf,
            ttl_ms: 15_000,
            issued_at_ms: T,
        });
        assert_eq!(
            text(gov),
            "permit gov plan=f1a8d7f48713d5cf granted=true ttl=15 symbol=BTCUSDT\n"
        );
        assert_eq!(
            json(gov),
            serde_json::json!({"key":"quantum:permit:f1a8d7f48713d5cf","value":{"granted":true,"symbol":"BTCUSDT","decision":"EXECUTE","created_at":"2026-01-25T00:30:08.977Z","ttl":15}})
        );
        let denied = wire::P33Permit {
            allow: false,
            symbol: 0,
            reason: P33Reason::ReconcileRequiredQtyMismatch as u16,
            plan_id: 0xf1a8_d7f4_8713_d5cf,
            safe_qty: 0,
            exchange_amt: u("0.062"),
            ledger_amt: u("0.002"),
            tolerance: u("0.001"),
            issued_at_ms: T,
        };
        assert_eq!(
            text(Message::P33Permit(denied)),
            "permit p33 plan=f1a8d7f48713d5cf allow=false reason=reconcile_required_qty_mismatch exchange_amt=0.062 ledger_amt=0.002 diff=0.06 tolerance=0.001 symbol=BTCUSDT\n"
        );
        assert_eq!(
            json(Message::P33Permit(denied)),
            serde_json::json!({"key":"quantum:permit:p33:f1a8d7f48713d5cf","value":{"allow":false,"symbol":"BTCUSDT","reason":"reconcile_required_qty_mismatch","context":{"exchange_amt":0.062,"ledger_amt":0.002,"diff":0.06,"tolerance":0.001},"created_at":"2026-01-25T00:30:08.977Z"}})
        );
        let allowed = wire::P33Permit {
            allow: true,
            reason: 0,
            safe_qty: u("0.046"),
            exchange_amt: 0,
            ledger_amt: 0,
            tolerance: 0,
            ..denied
        };
        assert_eq!(
            text(Message::P33Permit(allowed)),
            "permit p33 plan=f1a8d7f48713d5cf allow=true safe_qty=0.046 symbol=BTCUSDT\n"
        );
        assert_eq!(
            json(Message::P33Permit(allowed))["value"]["safe_qty"],
            0.046
        );
        let pos = Message::PositionSnapshot(wire::PositionSnapshot {
            symbol: 0,
            amount: u("0.016"),
            mark_price: u("104000"),
            exchange_time_ms: T,
        });
        assert_eq!(
            text(pos),
            "position BTCUSDT exchange_amount=0.016 mark=104000 updated_at=2026-01-25T00:30:08.977Z\n"
        );
        assert_eq!(
            json(pos),
            serde_json::json!({"key":"quantum:position:BTCUSDT","fields":{"exchange_amount":"0.016","mark_price":"104000","updated_at":"2026-01-25T00:30:08.977Z"}})
        );
        let ledger = Message::LedgerSet(wire::LedgerSet {
            symbol: 0,
            amount: u("-0.002"),
        });
        assert_eq!(text(ledger), "position BTCUSDT ledger_amount=-0.002\n");
        assert_eq!(
            json(ledger),
            serde_json::json!({"key":"quantum:position:BTCUSDT","fields":{"ledger_amount":"-0.002"}})
        );
    }
}
