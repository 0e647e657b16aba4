//! What a scenario hands the suite: one [`Variant`] per row of the table.

use std::time::Duration;

use hdrhistogram::Histogram;

use super::openloop::Schedule;

/// The rows every other row is compared with, when they are in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// Two threads bouncing one cache line: the physical floor of the machine.
    Floor,
    /// A crossbeam `ArrayQueue` ping-pong between two threads.
    Crossbeam,
    /// The legacy Redis + Lua permit path, bare round trips.
    Legacy,
    /// A blocking TCP echo of a request-sized message on loopback: the floor of any request
    /// to a local server (the `exchange` rows).
    TcpEcho,
}

impl Baseline {
    /// Every baseline, in the table's column order.
    pub const ALL: [Baseline; 4] = [
        Baseline::Floor,
        Baseline::Crossbeam,
        Baseline::Legacy,
        Baseline::TcpEcho,
    ];

    /// The key of the row that is this baseline.
    pub fn key(self) -> &'static str {
        match self {
            Baseline::Floor => "ring.cache_line",
            Baseline::Crossbeam => "ring.array_queue",
            Baseline::Legacy => "legacy.bare",
            Baseline::TcpEcho => "exchange.tcp_echo",
        }
    }

    /// Column title and JSON name.
    pub fn label(self) -> &'static str {
        match self {
            Baseline::Floor => "floor",
            Baseline::Crossbeam => "xbeam",
            Baseline::Legacy => "legacy",
            Baseline::TcpEcho => "echo",
        }
    }
}

/// Operations done in a closed-loop run and the time they took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    /// Operations completed (plans, round trips).
    pub ops: u64,
    /// Time from the first send to the last completion.
    pub elapsed: Duration,
}

impl Throughput {
    /// Operations per second.
    pub fn per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One measured row: something that can run open-loop blocks and a closed-loop run. It owns
/// what it needs (threads, processes, servers) for the whole run and releases it on drop.
pub trait Variant {
    /// Stable id, used for file names (`<key>.hgrm`) and in `summary.json`.
    fn key(&self) -> &'static str;
    /// What the row measures, for the table.
    fn name(&self) -> &'static str;
    /// What one operation is ("round trip", "plan").
    fn op(&self) -> &'static str;
    /// The highest open-loop rate this row can be offered, when it has one of its own (the
    /// legacy deployment's 100 ms poll). The suite also never offers more than a quarter of
    /// the closed-loop throughput it measured.
    fn max_rate(&self) -> Option<f64> {
        None
    }
    /// Runs `schedule.count` operations open loop at `schedule.rate`, recording each one's
    /// latency from its due time (ns) in `hist`.
    fn block(&mut self, schedule: &Schedule, hist: &mut Histogram<u64>) -> anyhow::Result<()>;
    /// Runs operations back to back for about `duration` (closed loop): the maximum
    /// throughput.
    fn throughput(&mut self, duration: Duration) -> anyhow::Result<Throughput>;
    /// Lines for the summary: settings that shape the figures (pinning, daemon flags).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}
