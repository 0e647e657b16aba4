//! What a run leaves behind: the terminal table, `summary.md`, `summary.json`, one `.hgrm`
//! per row and the percentile plot.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde_json::{json, Map, Value};

use super::ratios::{ratio, ratio_to, short, sig, Ratio};
use super::variant::Baseline;
use super::{plot, RowResult, RunResult};
use crate::scenarios::bridge::{ISOLATED, LOADED};
use quantum_daemon::latency::report::{hgrm, PERCENTILES};

/// Ops per second with a unit prefix: `5.21 M/s`.
pub fn rate_text(per_sec: f64) -> String {
    if per_sec >= 1e6 {
        format!("{} M/s", sig(per_sec / 1e6))
    } else if per_sec >= 1e3 {
        format!("{} k/s", sig(per_sec / 1e3))
    } else {
        format!("{}/s", sig(per_sec))
    }
}

/// Baselines that ran, in column order.
fn baselines(run: &RunResult) -> Vec<Baseline> {
    Baseline::ALL
        .into_iter()
        .filter(|b| run.rows.iter().any(|r| r.key == b.key()))
        .collect()
}

/// The terminal table: percentiles in ns, closed-loop throughput, p50 ratio to each baseline.
pub fn table(run: &RunResult) -> String {
    let bases = baselines(run);
    let mut out = String::new();
    let _ = write!(out, "{:<20} {:>8}", "latency (ns)", "samples");
    for (label, _) in PERCENTILES {
        let _ = write!(out, " {label:>9}");
    }
    let _ = write!(out, " {:>10} {:>11}", "max", "throughput");
    for b in &bases {
        let _ = write!(out, " {:>8}", format!("/{}", b.label()));
    }
    out.push('\n');
    for r in &run.rows {
        let _ = write!(out, "{:<20} {:>8}", r.key, r.hist.len());
        for (_, q) in PERCENTILES {
            let _ = write!(out, " {:>9}", r.hist.value_at_quantile(q));
        }
        let _ = write!(
            out,
            " {:>10} {:>11}",
            r.hist.max(),
            rate_text(r.throughput.per_sec())
        );
        for b in &bases {
            let cell = ratio(r, *b, &run.rows).map_or_else(|| "-".to_owned(), |x| short(x.whole));
            let _ = write!(out, " {cell:>8}");
        }
        out.push('\n');
    }
    if let Some(x) = isolated_ratio(run) {
        let _ = writeln!(
            out,
            "{ISOLATED} / {LOADED} p50: {} (blocks {} · {} · {}): a plan alone against a loaded stream",
            short(x.whole),
            short(x.min),
            short(x.median),
            short(x.max)
        );
    }
    let _ = write!(
        out,
        "load average {} before, {} after; /x = p50 ratio to that baseline in this run",
        load(run.machine.load_before),
        load(run.machine.load_after)
    );
    out
}

fn load(l: [f64; 3]) -> String {
    format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2])
}

fn spread(r: &Ratio) -> String {
    format!(
        "{} (blocks: {} · {} · {})",
        short(r.whole),
        short(r.min),
        short(r.median),
        short(r.max)
    )
}

/// `bridge.isolated` against the loaded `bridge.execute` of the same run, block by block.
fn isolated_ratio(run: &RunResult) -> Option<Ratio> {
    let row = run.rows.iter().find(|r| r.key == ISOLATED)?;
    ratio_to(row, LOADED, &run.rows)
}

/// One goal set for the suite (the project's latency targets), checked against this run.
struct Goal {
    what: &'static str,
    measured: String,
    met: bool,
}

fn goals(run: &RunResult) -> Vec<Goal> {
    let row = |k: &str| run.rows.iter().find(|r| r.key == k);
    let mut out = Vec::new();
    if let Some(r) = row("chain.single") {
        if let Some(x) = ratio(r, Baseline::Legacy, &run.rows) {
            out.push(Goal {
                what: "chain p50 at least 2,000x faster than legacy (bare round trips)",
                measured: format!(
                    "{}x faster (blocks {}–{}x)",
                    sig(1.0 / x.whole),
                    sig(1.0 / x.max),
                    sig(1.0 / x.min)
                ),
                met: 1.0 / x.whole >= 2000.0,
            });
        }
        let t = r.throughput.per_sec();
        out.push(Goal {
            what: "at least 5 M plans/s through the chain on one core",
            measured: rate_text(t),
            met: t >= 5e6,
        });
    }
    // The daemon's layouts: `single` is the goal where the host has the cores it needs,
    // `inline` where it does not (what `mode = "auto"` picks).
    let small = quantum_core::runner::usable_cores() < quantum_daemon::config::SINGLE_NEEDS_CORES;
    for (k, what, limit) in [
        (
            "ipc",
            "ipc (single layout) p50 at most 3x the cache-line floor, on a host with the cores it needs",
            3.0,
        ),
        (
            "ipc.inline",
            "ipc.inline p50 at most 5x the cache-line floor on a host with fewer than 3 cores",
            5.0,
        ),
    ] {
        let applies = if k == "ipc" { !small } else { small };
        if let (Some(r), true) = (row(k), applies) {
            if let Some(x) = ratio(r, Baseline::Floor, &run.rows) {
                out.push(Goal {
                    what,
                    measured: format!(
                        "{}x (blocks {}–{}x)",
                        sig(x.whole),
                        sig(x.min),
                        sig(x.max)
                    ),
                    met: x.whole <= limit,
                });
            }
        }
    }
    if let Some(x) = isolated_ratio(run) {
        out.push(Goal {
            what: "a plan that arrives alone answered within 1.5x of a loaded stream's p50 (bridge.isolated / bridge.execute)",
            measured: format!("{}x (blocks {}–{}x)", sig(x.whole), sig(x.min), sig(x.max)),
            met: x.whole <= 1.5,
        });
    }
    for k in ["ring.shm_threads", "ring.shm_processes"] {
        if let Some(r) = row(k) {
            if let Some(x) = ratio(r, Baseline::Crossbeam, &run.rows) {
                out.push(Goal {
                    what: if k == "ring.shm_threads" {
                        "shm ring round trip (threads) at most the crossbeam ArrayQueue's"
                    } else {
                        "shm ring round trip (processes) at most the crossbeam ArrayQueue's"
                    },
                    measured: format!("{}x (blocks {}–{}x)", sig(x.whole), sig(x.min), sig(x.max)),
                    met: x.whole <= 1.0,
                });
            }
        }
    }
    out
}

/// `summary.json`: the run, the machine, one object per row.
pub fn summary_json(run: &RunResult) -> Value {
    let rows: Vec<Value> = run
        .rows
        .iter()
        .map(|r| {
            let mut pct = Map::new();
            for (label, q) in PERCENTILES {
                pct.insert(label.to_owned(), r.hist.value_at_quantile(q).into());
            }
            pct.insert("max".to_owned(), r.hist.max().into());
            let mut ratios = Map::new();
            for b in Baseline::ALL {
                if let Some(x) = ratio(r, b, &run.rows) {
                    ratios.insert(
                        b.label().to_owned(),
                        json!({"p50": x.whole, "blocks_min": x.min, "blocks_median": x.median, "blocks_max": x.max}),
                    );
                }
            }
            if r.key == ISOLATED {
                if let Some(x) = ratio_to(r, LOADED, &run.rows) {
                    ratios.insert(
                        LOADED.to_owned(),
                        json!({"p50": x.whole, "blocks_min": x.min, "blocks_median": x.median, "blocks_max": x.max}),
                    );
                }
            }
            json!({
                "name": r.key,
                "description": r.name,
                "op": r.op,
                "samples": r.hist.len(),
                "open_loop_rate_per_s": r.rate,
                "percentiles_ns": pct,
                "block_p50_ns": r.block_p50,
                "throughput_per_s": r.throughput.per_sec(),
                "throughput_ops": r.throughput.ops,
                "ratios": ratios,
                "notes": r.notes,
                "hgrm": format!("{}.hgrm", r.key),
            })
        })
        .collect();
    let goals: Vec<Value> = goals(run)
        .into_iter()
        .map(|g| json!({"goal": g.what, "measured": g.measured, "met": g.met}))
        .collect();
    json!({
        "unit": "ns",
        "command": run.command,
        "scenarios": run.scenarios,
        "options": {
            "rate": run.args.rate, "duration_s": run.args.duration, "blocks": run.args.blocks,
            "closed_s": run.args.closed,
        },
        "elapsed_s": run.elapsed.as_secs_f64(),
        "machine": run.machine,
        "rows": rows,
        "goals": goals,
    })
}

/// `summary.md`: what a reader needs to trust and reproduce the table.
pub fn summary_md(run: &RunResult) -> String {
    let m = &run.machine;
    let mut out = String::new();
    let _ = writeln!(out, "# quantum bench: {}\n", run.scenarios.join(", "));
    let _ = writeln!(out, "Command: `{}`\n", run.command);
    let _ = writeln!(out, "## Machine\n");
    let _ = writeln!(
        out,
        "- CPU: {} ({} online, usable {:?})",
        m.cpu_model, m.cpus_online, m.cpus_usable
    );
    let _ = writeln!(out, "- Pinning: {}", m.pinning);
    let _ = writeln!(
        out,
        "- Kernel {}, clocksource {}, timer {}",
        m.kernel, m.clocksource, m.timer
    );
    let _ = writeln!(
        out,
        "- Load average {} before, {} after",
        load(m.load_before),
        load(m.load_after)
    );
    let _ = writeln!(
        out,
        "- Started {} UTC, took {:.0} s\n",
        m.started_utc,
        run.elapsed.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "Open loop: each row offered min(--rate {}, a quarter of its closed-loop throughput, its own limit) messages/s for {} s in {} blocks, rows taking turns block by block; latency from each message's due time. Closed loop: {} s per row.\n",
        run.args.rate, run.args.duration, run.args.blocks, run.args.closed
    );
    let _ = writeln!(
        out,
        "## Latency (ns) and throughput\n\n```\n{}\n```\n",
        table(run)
    );
    let _ = writeln!(
        out,
        "## Ratios of p50 to each baseline (whole run, then min · median · max over the blocks)\n"
    );
    let bases = baselines(run);
    let _ = write!(out, "| row | rate offered |");
    for b in &bases {
        let _ = write!(out, " /{} |", b.label());
    }
    let _ = write!(out, "\n|---|---|");
    for _ in &bases {
        let _ = write!(out, "---|");
    }
    out.push('\n');
    for r in &run.rows {
        let _ = write!(out, "| {} | {} |", r.key, rate_text(r.rate));
        for b in &bases {
            let cell = ratio(r, *b, &run.rows).map_or_else(|| "-".to_owned(), |x| spread(&x));
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
    let g = goals(run);
    if !g.is_empty() {
        let _ = writeln!(out, "\n## Goals set for this suite, in this run\n");
        for goal in g {
            let _ = writeln!(
                out,
                "- {}: {} — **{}**",
                goal.what,
                goal.measured,
                if goal.met { "met" } else { "missed" }
            );
        }
    }
    let _ = writeln!(out, "\n## Rows\n");
    for r in &run.rows {
        let _ = writeln!(
            out,
            "- `{}`: {} (per {}). {}",
            r.key,
            r.name,
            r.op,
            r.notes.join("; ")
        );
    }
    let _ = writeln!(
        out,
        "\nFiles: `summary.json`, one `<row>.hgrm` per row (HdrHistogram percentile distribution, ns), `latency.svg` and `latency.png`."
    );
    out
}

/// Writes every file into `dir`.
pub fn write(dir: &Path, run: &RunResult) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let put = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
    };
    for r in &run.rows {
        put(&format!("{}.hgrm", r.key), &hgrm(&r.hist))?;
    }
    put(
        "summary.json",
        &serde_json::to_string_pretty(&summary_json(run))?,
    )?;
    put("summary.md", &summary_md(run))?;
    let series: Vec<(&str, &hdrhistogram::Histogram<u64>)> = run
        .rows
        .iter()
        .map(|r: &RowResult| (r.key, &r.hist))
        .collect();
    plot::svg(&dir.join("latency.svg"), &series)?;
    plot::png(&dir.join("latency.png"), &series)?;
    Ok(())
}
