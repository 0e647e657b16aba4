//! `ctl doctor`: is this host tuned for the pinned threads of `quantum run`? One line per
//! check (PASS / WARN / FAIL, what was found, the fix), or `--json`; the exit status is the
//! worst: 0 all PASS, 1 a WARN, 2 a FAIL, 3 the doctor itself could not run (a bad option).

mod checks;
mod host;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use self::checks::{run_all, Finding, Options, Status};
use self::host::RootedHost;
use super::Exit;
use quantum_daemon::config::DaemonConfig;
use quantum_daemon::host::parse_cpu_list;

/// Options of `ctl doctor`.
#[derive(Args, Debug)]
#[command(
    after_help = "Exit status: 0 every check PASS, 1 the worst is WARN, 2 the worst is FAIL, 3 the doctor \
could not run.\n\nExamples:\n  quantum ctl doctor --cpus 2-3\n  quantum ctl doctor --config /etc/quantum/prod1.toml --instance prod1\n  quantum ctl doctor --json | jq '.checks[] | select(.status != \"PASS\")'"
)]
pub struct DoctorArgs {
    /// The root /proc, /sys and /etc are read under (a copy of another machine's tree).
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// CPUs the engine threads are pinned to (default: host.cpus of --config, else the
    /// kernel's isolated CPUs).
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<String>,
    /// The daemon's configuration: host.cpus, host.mlockall and rings.capacity are checked.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Check the memory limits of this instance's running daemon instead of this shell's.
    #[arg(long)]
    pub instance: Option<String>,
    /// The user the services run as (for systemd-logind's RemoveIPC).
    #[arg(long, default_value = "quantum")]
    pub user: String,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Bytes one ring slot takes in its segment: a 64-byte record and its sequence word, rounded
/// up to a power of two by the ring layout (`quantum_ipc::ring`).
const SLOT_STRIDE: u64 = 128;
/// A ring's header and the counters segment, with room to spare.
const RING_HEADER: u64 = 4096;
const COUNTERS_SEGMENT: u64 = 1 << 20;

/// Bytes of /dev/shm one instance takes at this ring capacity.
pub fn shm_need(capacity: usize) -> u64 {
    let rings = quantum_ipc::contract::RINGS.len() as u64;
    rings * (capacity as u64 * SLOT_STRIDE + RING_HEADER) + COUNTERS_SEGMENT
}

fn usage(message: String) -> anyhow::Error {
    Exit { code: 3, message }.into()
}

/// Runs `ctl doctor`.
pub fn run(a: DoctorArgs) -> Result<()> {
    let cfg = match &a.config {
        Some(p) => DaemonConfig::from_file(p).map_err(|e| usage(format!("{e:#}")))?,
        None => DaemonConfig::default(),
    };
    let cpus_text = a.cpus.clone().unwrap_or_else(|| cfg.host.cpus.clone());
    let cpus = if cpus_text.trim().is_empty() {
        None
    } else {
        Some(
            parse_cpu_list(&cpus_text)
                .map_err(|e| usage(format!("--cpus {cpus_text:?}: {e:#}")))?,
        )
    };
    let pid = match &a.instance {
        None => "self".to_string(),
        Some(name) => match quantum_ipc::CountersReader::open(name) {
            Ok(c) if c.owner_alive() => c.owner_pid().to_string(),
            _ => return Err(usage(format!("instance {name:?} is not running"))),
        },
    };
    if !a.root.is_dir() {
        return Err(usage(format!(
            "--root {} is not a directory",
            a.root.display()
        )));
    }
    let opts = Options {
        cpus,
        pid,
        user: a.user.clone(),
        shm_need: shm_need(cfg.rings.capacity),
        mlockall: cfg.host.mlockall,
    };
    let mut findings = run_all(&RootedHost::new(&a.root), &opts);
    if let Some(name) = &a.instance {
        let lease = quantum_ipc::lease::LeaseReader::new(name).read();
        findings.extend(checks::failover(
            cfg.failover.enabled,
            lease.as_ref(),
            quantum_ipc::lease::boot_ns(),
        ));
    }
    let worst = findings
        .iter()
        .map(|f| f.status)
        .max()
        .unwrap_or(Status::Pass);
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", json(&findings, worst))?;
    } else {
        write_text(&mut out, &findings)?;
    }
    out.flush()?;
    match worst {
        Status::Pass => Ok(()),
        Status::Warn => Err(Exit {
            code: 1,
            message: String::new(),
        }
        .into()),
        Status::Fail => Err(Exit {
            code: 2,
            message: String::new(),
        }
        .into()),
    }
}

fn write_text(out: &mut impl Write, findings: &[Finding]) -> std::io::Result<()> {
    for f in findings {
        writeln!(out, "{:<4}  {:<22} {}", f.status.word(), f.check, f.found)?;
        if !f.fix.is_empty() {
            writeln!(out, "{:<4}  {:<22} fix: {}", "", "", f.fix)?;
        }
    }
    let count = |s: Status| findings.iter().filter(|f| f.status == s).count();
    writeln!(
        out,
        "{} PASS, {} WARN, {} FAIL",
        count(Status::Pass),
        count(Status::Warn),
        count(Status::Fail)
    )
}

fn json(findings: &[Finding], worst: Status) -> serde_json::Value {
    let checks: Vec<_> = findings
        .iter()
        .map(|f| {
            serde_json::json!({
                "check": f.check, "status": f.status.word(), "found": f.found, "fix": f.fix,
            })
        })
        .collect();
    let code = match worst {
        Status::Pass => 0,
        Status::Warn => 1,
        Status::Fail => 2,
    };
    serde_json::json!({ "checks": checks, "worst": worst.word(), "exit_code": code })
}
