//! `quantum sim binance` with the faults every test run has on, the starting book (one-way, or
//! hedge mode with its legs), and what the simulator says about positions and orders.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use quantum_core::{PositionSide, Qty};
use serde_json::Value;

use crate::book::q;
use crate::http;
use crate::procs::log_file;

/// Starting positions and marks on the simulator (and the ledger, synced once at the start):
/// (symbol, position, mark).
pub const BOOK: [(&str, &str, &str); 3] = [
    ("BTCUSDT", "60", "65000"),
    ("ETHUSDT", "400", "3000"),
    ("SOLUSDT", "-20000", "150"),
];

/// The symbols of [`BOOK`].
pub fn symbols() -> Vec<String> {
    BOOK.iter().map(|b| b.0.to_string()).collect()
}

/// A leg of the starting book: the exchange symbol, the position side, the starting position
/// (a SHORT leg's is negative, as Binance's `positionAmt`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leg {
    pub symbol: &'static str,
    pub side: PositionSide,
    pub start: &'static str,
}

impl Leg {
    /// The leg's label: its symbol id's name in the daemon (`BTCUSDT`, `BTCUSDT:LONG`).
    pub fn label(&self) -> String {
        self.side.label(self.symbol)
    }
}

/// The starting book of a hedge-mode account: every symbol of [`BOOK`] configured in hedge
/// mode, so two legs each (LONG then SHORT, the daemon's id order), BTCUSDT holding both,
/// ETHUSDT only its LONG and SOLUSDT only its SHORT position.
pub const HEDGE_BOOK: [Leg; 6] = [
    Leg {
        symbol: "BTCUSDT",
        side: PositionSide::Long,
        start: "60",
    },
    Leg {
        symbol: "BTCUSDT",
        side: PositionSide::Short,
        start: "-40",
    },
    Leg {
        symbol: "ETHUSDT",
        side: PositionSide::Long,
        start: "400",
    },
    Leg {
        symbol: "ETHUSDT",
        side: PositionSide::Short,
        start: "0",
    },
    Leg {
        symbol: "SOLUSDT",
        side: PositionSide::Long,
        start: "0",
    },
    Leg {
        symbol: "SOLUSDT",
        side: PositionSide::Short,
        start: "-20000",
    },
];

/// The starting book's legs: [`BOOK`] (one `BOTH` leg per symbol), or [`HEDGE_BOOK`].
pub fn legs(hedge: bool) -> Vec<Leg> {
    if hedge {
        HEDGE_BOOK.to_vec()
    } else {
        BOOK.iter()
            .map(|(symbol, start, _)| Leg {
                symbol,
                side: PositionSide::Both,
                start,
            })
            .collect()
    }
}

/// The daemon's configuration file (`quantum run --config`) of a hedge run: the built-in
/// symbols with their built-in filters ([`quantum_core::SymbolSpec::defaults`]), each with
/// `position_mode = "hedge"`.
pub fn hedge_config() -> String {
    let mut out =
        String::from("# The crash test's hedge run: the built-in symbols, each in hedge mode.\n");
    for s in quantum_core::SymbolSpec::defaults() {
        let f = &s.filters;
        out.push_str(&format!(
            "\n[[symbols]]\nname = \"{}\"\nposition_mode = \"hedge\"\ntolerance = \"{}\"\nmin_qty = \"{}\"\nmax_qty = \"{}\"\nstep = \"{}\"\nmarket_min_qty = \"{}\"\nmarket_max_qty = \"{}\"\nmarket_step = \"{}\"\nmin_notional = \"{}\"\n",
            s.name,
            s.tolerance,
            f.lot.min,
            f.lot.max,
            f.lot.step,
            f.market_lot.min,
            f.market_lot.max,
            f.market_lot.step,
            Qty::from_units(f.min_notional.units()),
        ));
    }
    out
}

/// The running simulator (killed when dropped).
pub struct Sim {
    child: Child,
    /// Its REST base URL.
    pub rest: String,
}

impl Sim {
    /// The exchange, with faults on (latency, dropped connections, ambiguous 503s, -1007
    /// timeouts, errors, and a gateway that places the order and answers 502 with its own
    /// page), holding [`BOOK`] in one-way mode; its log is `sim.log` in `out`.
    pub fn start(quantum: &Path, out: &Path) -> Result<Sim> {
        Sim::start_mode(quantum, out, false)
    }

    /// [`Sim::start`], holding [`legs`]`(hedge)`: with `hedge`, the account is in hedge mode
    /// (`--hedge-mode`) and holds [`HEDGE_BOOK`].
    pub fn start_mode(quantum: &Path, out: &Path, hedge: bool) -> Result<Sim> {
        let mut args: Vec<String> = [
            "sim",
            "binance",
            "--listen",
            "127.0.0.1:0",
            "--latency-ms",
            "100",
            "--drop-rate",
            "0.05",
            "--ambiguous-503-rate",
            "0.05",
            "--timeout-1007-rate",
            "0.03",
            "--error-rate",
            "0.02",
            // A gateway in front of the exchange that forwards the order and answers 502 (the
            // crash test's Redis phase makes it 504) with its own page: placed, but nobody
            // was told.
            "--gateway-after-place-rate",
            "0.04",
            "--gateway-status",
            "502",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if hedge {
            args.push("--hedge-mode".into());
        }
        for leg in legs(hedge) {
            if !q(leg.start)?.is_zero() {
                args.push("--position".into());
                args.push(format!("{}={}", leg.symbol, leg.start));
            }
        }
        for (s, _, mark) in BOOK {
            args.push("--mark".into());
            args.push(format!("{s}={mark}"));
        }
        let mut child = Command::new(quantum)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(log_file(out, "sim.log")?)
            .spawn()
            .context("cannot start quantum sim binance")?;
        let rest = sim_url(child.stdout.take().ok_or_else(|| anyhow!("sim stdout"))?)?;
        Ok(Sim { child, rest })
    }

    /// The simulator's position per leg, by the leg's label ([`PositionSide::label`]: the
    /// symbol in one-way mode, `BTCUSDT:LONG` in hedge mode); flat legs are absent.
    pub fn positions(&self) -> Result<BTreeMap<String, Qty>> {
        let v = http::get(&self.rest, "/sim/positions")?;
        let mut out: BTreeMap<String, Qty> = BTreeMap::new();
        for row in v
            .as_array()
            .ok_or_else(|| anyhow!("/sim/positions: not a list"))?
        {
            let s = row["symbol"].as_str().unwrap_or("");
            let side = row["positionSide"].as_str().unwrap_or("BOTH");
            let side = PositionSide::parse(side)
                .ok_or_else(|| anyhow!("/sim/positions: positionSide {side:?} of {s}"))?;
            let amt = q(row["positionAmt"].as_str().unwrap_or("0"))?;
            let e = out.entry(side.label(s)).or_insert(Qty::ZERO);
            *e = Qty::from_units(e.units() + amt.units());
        }
        Ok(out)
    }

    /// The audit list of every accepted order (`GET /sim/orders`).
    pub fn orders(&self) -> Result<Vec<Value>> {
        let v = http::get(&self.rest, "/sim/orders")?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// Kills it (also on drop).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads the REST URL the simulator prints at start.
fn sim_url(stdout: std::process::ChildStdout) -> Result<String> {
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line?;
        if let Some(url) = line.trim().strip_prefix("REST") {
            let url = url.trim().to_string();
            // Keep draining its stdout so it never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return Ok(url);
        }
    }
    bail!("the simulator exited before printing its address")
}

/// The simulator's orders judged against the EXECUTE plans fed (the two harnesses' order
/// checks): client ids used more than once, with their count, and client ids that are not
/// of an EXECUTE plan fed.
#[derive(Debug, Default)]
pub struct OrderAudit {
    /// Client ids on more than one order.
    pub twice: Vec<(String, u32)>,
    /// Client ids of no EXECUTE plan fed (or not ours).
    pub strangers: Vec<String>,
}

impl OrderAudit {
    /// Audits `orders` (the simulator's `/sim/orders`) against the ids of the EXECUTE plans fed.
    pub fn of(orders: &[Value], executes: &BTreeSet<u64>) -> OrderAudit {
        let mut per_cid: BTreeMap<&str, u32> = BTreeMap::new();
        for o in orders {
            *per_cid
                .entry(o["clientOrderId"].as_str().unwrap_or(""))
                .or_default() += 1;
        }
        OrderAudit {
            twice: per_cid
                .iter()
                .filter(|(_, n)| **n > 1)
                .map(|(c, n)| ((*c).to_owned(), *n))
                .collect(),
            strangers: per_cid
                .keys()
                .filter(|c| {
                    quantum_core::ClientOrderId::plan(c).is_none_or(|p| !executes.contains(&p.0))
                })
                .map(|c| (*c).to_owned())
                .collect(),
        }
    }
}
