//! The machine a run measured: what the summary says about where its numbers come from.

use serde::Serialize;

use crate::scenarios::Ctx;

/// CPU, cores, pinning, clock and load of the host.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// `model name` of /proc/cpuinfo.
    pub cpu_model: String,
    /// Logical CPUs online.
    pub cpus_online: usize,
    /// CPUs this process may run on.
    pub cpus_usable: Vec<usize>,
    /// How the rows' threads are placed.
    pub pinning: String,
    /// Kernel release.
    pub kernel: String,
    /// The kernel's clocksource.
    pub clocksource: String,
    /// The timer the rows read (quanta: TSC when usable).
    pub timer: String,
    /// 1, 5 and 15 minute load averages when the run started.
    pub load_before: [f64; 3],
    /// The same when it ended.
    pub load_after: [f64; 3],
    /// When the run started (UTC).
    pub started_utc: String,
}

impl Machine {
    /// Reads everything but `load_after` (set at the end of the run).
    pub fn read(ctx: &Ctx) -> Machine {
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, m)| m.trim().to_owned());
        let cpus_online = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        let load = load_average();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Machine {
            cpu_model,
            cpus_online,
            cpus_usable: ctx.cores.iter().map(|c| c.id).collect(),
            pinning: ctx.pinning_note(),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            clocksource: read("/sys/devices/system/clocksource/clocksource0/current_clocksource")
                .trim()
                .to_owned(),
            timer: "quanta (TSC when invariant, else CLOCK_MONOTONIC)".to_owned(),
            load_before: load,
            load_after: load,
            started_utc: quantum_redis::legacy::iso_ms(now_ms),
        }
    }
}

/// The 1, 5 and 15 minute load averages (zeros when /proc/loadavg is unreadable).
pub fn load_average() -> [f64; 3] {
    let text = read("/proc/loadavg");
    let mut it = text
        .split_whitespace()
        .map(|w| w.parse::<f64>().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
