//! `quantum ctl ...`: inspect and drive a running `quantum run` instance from another process,
//! through its shared-memory segments only (the daemon is never asked anything).

mod doctor;
mod inject;
mod journal;
pub(crate) mod journal_audit;
mod latency;
mod lease;
mod metrics;
mod stats;
mod tail;
mod top;

use anyhow::{Context, Result};
use quantum_ipc::{CountersReader, PeerStatus};

/// Control subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CtlCmd {
    /// Totals and rates from the counters segment, deny reasons, the book per symbol (ledger,
    /// exchange and in-flight amounts as exact decimals), ring depths, peers.
    #[command(
        after_help = "Examples:\n  quantum ctl stats --instance prod1\n  quantum ctl stats --instance prod1 --json | jq .rates\n  quantum ctl stats --instance prod1 --watch 2"
    )]
    Stats(stats::StatsArgs),
    /// The instance's segments: capacity, depth, peers and their liveness, full events.
    #[command(after_help = "Example:\n  quantum ctl rings --instance prod1")]
    Rings(stats::RingsArgs),
    /// Remove the segments of dead instances.
    #[command(
        after_help = "Examples:\n  quantum ctl gc                     # every instance\n  quantum ctl gc --instance prod1"
    )]
    Gc(stats::GcArgs),
    /// Send plans and commands (JSON lines, or generated plans) into the `ctl` ring, and
    /// report what the daemon applied and what it refused, and why (exit 1 when not all were
    /// applied).
    Inject(inject::InjectArgs),
    /// The instance's journal: `verify` (checksums, sequence, snapshots, the state a restart
    /// would recover), `dump` (every event, text or JSON lines), `state` (what the core held
    /// at any event or time) or `plan` (one plan's story and what its verdicts saw).
    Journal(journal::JournalArgs),
    /// Print plan results, the permits before them and the book's position records as they
    /// leave the core (consumer of the `results` ring).
    #[command(
        after_help = "Examples:\n  quantum ctl tail --instance prod1 | grep PERMIT_WAIT\n  quantum ctl tail --instance prod1 --json --count 10"
    )]
    Tail(tail::TailArgs),
    /// Check that this host is tuned for the pinned threads: isolated CPUs, frequency
    /// governor, TSC, huge pages, /dev/shm, memlock, IRQs, swap, logind's RemoveIPC.
    Doctor(doctor::DoctorArgs),
    /// Serve the instance's counters, rates, deny reasons, rings, peers and book as Prometheus
    /// metrics (read from shared memory; the daemon is never asked).
    Metrics(metrics::MetricsArgs),
    /// A live terminal view of the instance: totals and rates, deny reasons, rings and peers,
    /// the book, latency.
    Top(top::TopArgs),
    /// Latency per stage (ingest, governor, P3.3, wait, consume, egress, chain, end to end):
    /// the percentiles of the last interval, as the daemon published them in its counters.
    #[command(
        after_help = "Examples:\n  quantum ctl latency --instance prod1\n  quantum ctl latency --instance prod1 --json | jq .stages.end_to_end\n  quantum ctl latency --instance prod1 --watch 1"
    )]
    Latency(latency::LatencyArgs),
    /// Failover: the lease as this host's lease holder published it (role, epoch, deadline,
    /// fence, the other host), and `release` for a planned hand-over.
    Lease(lease::LeaseArgs),
}

impl CtlCmd {
    /// Whether the command's job is to print (a closed stdout then ends it quietly).
    pub fn prints(&self) -> bool {
        match self {
            CtlCmd::Stats(_)
            | CtlCmd::Rings(_)
            | CtlCmd::Gc(_)
            | CtlCmd::Inject(_)
            | CtlCmd::Journal(_)
            | CtlCmd::Tail(_)
            | CtlCmd::Doctor(_)
            | CtlCmd::Latency(_)
            | CtlCmd::Lease(_) => true,
            // A server: a client hanging up is not our stdout closing.
            CtlCmd::Metrics(m) => m.once,
            CtlCmd::Top(t) => t.once,
        }
    }
}

/// A command that has already reported its outcome and only wants `quantum` to exit with
/// `code` (and `message` on stderr, when not empty).
#[derive(Debug)]
pub struct Exit {
    /// Process exit status.
    pub code: i32,
    /// One sentence for stderr, or empty.
    pub message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}: {}", self.code, self.message)
    }
}

impl std::error::Error for Exit {}

/// Runs a control subcommand.
pub fn run(cmd: CtlCmd) -> Result<()> {
    match cmd {
        CtlCmd::Stats(a) => stats::stats(a),
        CtlCmd::Rings(a) => stats::rings(a),
        CtlCmd::Gc(a) => stats::gc(a),
        CtlCmd::Inject(a) => inject::run(a),
        CtlCmd::Journal(a) => journal::run(a),
        CtlCmd::Tail(a) => tail::run(a),
        CtlCmd::Doctor(a) => doctor::run(a),
        CtlCmd::Metrics(a) => metrics::run(a),
        CtlCmd::Top(a) => top::run(a),
        CtlCmd::Latency(a) => latency::run(a),
        CtlCmd::Lease(a) => lease::run(a),
    }
}

/// The counters of a running instance.
fn open_counters(instance: &str) -> Result<CountersReader> {
    let c = CountersReader::open(instance)
        .with_context(|| format!("instance {instance:?} is not running"))?;
    Ok(c)
}

/// Where a daemon stands, from its counters segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DaemonState {
    /// Its process is gone.
    Gone(u64),
    /// Alive, still recovering its journal or creating its rings.
    Starting(u64),
    /// Alive, its rings exist and it reads them.
    Up(u64),
}

impl DaemonState {
    fn of(c: &CountersReader) -> DaemonState {
        let pid = c.owner_pid();
        if !c.owner_alive() {
            DaemonState::Gone(pid)
        } else if c.get(quantum_daemon::stats::READY) == Some(1) {
            DaemonState::Up(pid)
        } else {
            DaemonState::Starting(pid)
        }
    }

    /// One word: `running`, `starting`, `stopped`.
    fn word(self) -> &'static str {
        match self {
            DaemonState::Gone(_) => "stopped",
            DaemonState::Starting(_) => "starting",
            DaemonState::Up(_) => "running",
        }
    }
}

/// A peer's status in a few words.
fn peer_text(s: PeerStatus) -> String {
    match s {
        PeerStatus::NeverAttached => "never attached".into(),
        PeerStatus::Alive { pid, age_ms } => format!("alive pid {pid} ({age_ms} ms ago)"),
        PeerStatus::Stale { pid, age_ms } => format!("stale pid {pid} (silent {age_ms} ms)"),
        PeerStatus::Dead { pid } => format!("dead pid {pid}"),
        PeerStatus::Detached { pid } => format!("detached pid {pid}"),
    }
}

/// Peer status as one JSON-friendly word.
fn peer_word(s: PeerStatus) -> (&'static str, u64) {
    match s {
        PeerStatus::NeverAttached => ("never", 0),
        PeerStatus::Alive { pid, .. } => ("alive", pid),
        PeerStatus::Stale { pid, .. } => ("stale", pid),
        PeerStatus::Dead { pid } => ("dead", pid),
        PeerStatus::Detached { pid } => ("detached", pid),
    }
}
