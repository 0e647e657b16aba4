//! `ctl tail`: the consumer of the `results` ring, one line per plan result.
//!
//! Text lines read like the legacy log: `BTCUSDT: Result published (executed=False,
//! error=p33_denied:reconcile_required_qty_mismatch) plan=<id> decision=EXECUTE safe_qty=0
//! wait_us=12`; `--json` prints `{"plan_id":…,"symbol":…,"decision":…,"executed":…,"error":…,
//! "safe_qty":…,"wait_us":…}`. Stops after `--count` results, or when the daemon has gone and
//! the ring is empty.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use quantum_core::{PlanId, Qty};
use quantum_ipc::wire::{Limits, Message, PlanResult, RECORD_SIZE};
use quantum_ipc::{PeerStatus, Ring, RingSpec};

use super::open_counters;
use crate::daemon::{convert, rings};

/// Options of `ctl tail`.
#[derive(Args, Debug)]
pub struct TailArgs {
    /// Instance name.
    #[arg(long)]
    pub instance: String,
    /// Stop after this many results.
    #[arg(long)]
    pub count: Option<u64>,
    /// JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
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
    let mut n = 0u64;
    let mut invalid = 0u64;
    let want = a.count.unwrap_or(u64::MAX);
    let mut last_check = Instant::now();
    let mut idle = Duration::from_micros(20);
    while n < want {
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
            match Message::decode(rec, &limits) {
                Ok(Message::PlanResult(r)) => {
                    let sym = &names[r.symbol as usize];
                    if a.json {
                        json_line(&mut out, &r, sym)?;
                    } else {
                        text_line(&mut out, &r, sym)?;
                    }
                }
                Ok(m) => {
                    invalid += 1;
                    eprintln!("tail: unexpected {:?} record skipped", m.kind());
                }
                Err(e) => {
                    invalid += 1;
                    consumer.report_invalid();
                    eprintln!("tail: invalid record skipped: {e}");
                }
            }
        }
        n += got as u64;
        if n % 4096 < got as u64 {
            consumer.heartbeat();
        }
    }
    out.flush()?;
    if invalid > 0 {
        eprintln!("tail: {invalid} invalid record(s) skipped");
    }
    Ok(())
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
