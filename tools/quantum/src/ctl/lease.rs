//! `ctl lease`: failover's lease as this host's lease holder (`quantum bridge redis`)
//! published it in `quantum.<instance>.lease`, and the planned hand-over.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use quantum_ipc::lease::{boot_ns, Lease, LeaseReader, LeaseRole};

use super::Exit;

/// Options of `ctl lease`.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  quantum ctl lease --instance prod1            # role, epoch, deadline, the other host\n  quantum ctl lease --instance prod1 --json\n  quantum ctl lease --instance prod1 release    # planned maintenance: hand the lead to the standby"
)]
pub struct LeaseArgs {
    /// Instance name.
    #[arg(long)]
    pub instance: String,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// What to do (default: show).
    #[command(subcommand)]
    pub action: Option<LeaseAction>,
}

/// `ctl lease` actions.
#[derive(Subcommand, Debug)]
pub enum LeaseAction {
    /// Show the lease (the default).
    Show,
    /// Planned hand-over: the lease holder stops claiming plans, waits until every plan it
    /// took has its result, steps down and gives the lease up; the other host takes it after
    /// its fence. Waits until this host is standby.
    Release {
        /// How long to wait for this host to step down (s).
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
}

fn ms_from(now: u64, at: u64) -> i64 {
    (at as i64 - now as i64) / 1_000_000
}

/// The lease as one JSON object.
pub fn json(l: &Lease, now: u64) -> serde_json::Value {
    serde_json::json!({
        "role": l.role.as_str(),
        "may_send": l.may_send(now),
        "epoch": l.epoch,
        "host": l.host,
        "other_host": l.other,
        "deadline_in_ms": if l.role == LeaseRole::Leader { Some(ms_from(now, l.deadline_ns)) } else { None },
        "fence_left_ms": l.fence_left(now).map(|d| d.as_millis() as u64),
        "lease_age_ms": if l.acquired_ns > 0 { Some(now.saturating_sub(l.acquired_ns) / 1_000_000) } else { None },
        "last_renewal_ms_ago": if l.renewed_ns > 0 { Some(now.saturating_sub(l.renewed_ns) / 1_000_000) } else { None },
        "ttl_ms": l.ttl_ms,
        "recv_window_ms": l.recv_window_ms,
        "takeover_ms": if l.takeover_ms > 0 { Some(l.takeover_ms) } else { None },
        "published_ms_ago": now.saturating_sub(l.updated_ns) / 1_000_000,
    })
}

/// The lease in a few lines of text.
pub fn text(instance: &str, l: &Lease, now: u64) -> String {
    let mut out = format!(
        "lease of {instance}: {} (epoch {}) on host {}\n",
        if l.may_send(now) {
            "leader, acting"
        } else if l.leads(now) {
            "leader, fenced until the old leader's last order cannot land"
        } else {
            "standby"
        },
        l.epoch,
        if l.host.is_empty() { "?" } else { &l.host },
    );
    if l.role == LeaseRole::Leader {
        out.push_str(&format!(
            "  deadline in {} ms (last renewal {} ms ago), lease held {} s\n",
            ms_from(now, l.deadline_ns),
            now.saturating_sub(l.renewed_ns) / 1_000_000,
            now.saturating_sub(l.acquired_ns) / 1_000_000_000
        ));
        if let Some(left) = l.fence_left(now).filter(|d| !d.is_zero()) {
            out.push_str(&format!("  first order in {} ms\n", left.as_millis()));
        }
    }
    out.push_str(&format!(
        "  other host: {}\n  ttl {} ms, recvWindow {} ms",
        if l.other.is_empty() {
            "none holds the lease"
        } else {
            &l.other
        },
        l.ttl_ms,
        l.recv_window_ms
    ));
    if l.takeover_ms > 0 {
        out.push_str(&format!(", last takeover {} ms", l.takeover_ms));
    }
    out.push('\n');
    out
}

/// Runs `ctl lease`.
pub fn run(a: LeaseArgs) -> Result<()> {
    let mut r = LeaseReader::new(&a.instance);
    let Some(l) = r.read() else {
        bail!(
            "no lease for instance {:?} on this host: failover is off, or its lease holder (quantum bridge redis --instance {}) is not running",
            a.instance,
            a.instance
        );
    };
    match a.action.unwrap_or(LeaseAction::Show) {
        LeaseAction::Show => {
            let now = boot_ns();
            if a.json {
                println!("{}", json(&l, now));
            } else {
                print!("{}", text(&a.instance, &l, now));
            }
            Ok(())
        }
        LeaseAction::Release { timeout } => {
            if l.role != LeaseRole::Leader {
                println!("{} is standby already (epoch {})", a.instance, l.epoch);
                return Ok(());
            }
            let pid = r
                .request_release()
                .map_err(|e| anyhow::anyhow!("cannot ask the lease holder to hand over: {e}"))?;
            println!(
                "asked the lease holder (pid {pid}) to hand over epoch {}: it stops claiming plans, waits for their results, then steps down",
                l.epoch
            );
            let until = Instant::now() + Duration::from_secs(timeout);
            while Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
                if let Some(now) = r.read() {
                    if now.role == LeaseRole::Standby {
                        println!(
                            "{} is standby now: the other host takes the lead after its fence",
                            a.instance
                        );
                        return Ok(());
                    }
                }
            }
            Err(Exit {
                code: 1,
                message: format!(
                    "{} still leads after {timeout} s: see the Redis bridge's log",
                    a.instance
                ),
            }
            .into())
        }
    }
}
