//! The checks of `ctl doctor`: each reads the machine through a [`Host`], says what it found
//! and, when it is not PASS, how to fix it. Thresholds and the reasons behind them are in
//! `docs/operations.md`.

use std::collections::BTreeSet;

use super::host::Host;
use quantum_daemon::host::{format_cpu_list, parse_cpu_list};

/// How bad a finding is. Ordered: the worst decides the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// As it should be.
    Pass,
    /// Works, but costs latency or risks an incident.
    Warn,
    /// The daemon cannot run as configured.
    Fail,
}

impl Status {
    /// The word printed.
    pub fn word(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Check name.
    pub check: &'static str,
    /// Verdict.
    pub status: Status,
    /// What was found.
    pub found: String,
    /// What to do (empty on PASS).
    pub fix: String,
}

/// What the checks are told besides the machine.
#[derive(Debug, Clone)]
pub struct Options {
    /// The CPUs the engine threads are meant to be pinned to, if known (`--cpus` or the
    /// configuration's `host.cpus`); otherwise the kernel's isolated CPUs are taken.
    pub cpus: Option<Vec<usize>>,
    /// The process whose limits are checked: `self` or the daemon's pid.
    pub pid: String,
    /// The user the services run as.
    pub user: String,
    /// Bytes of `/dev/shm` one instance needs.
    pub shm_need: u64,
    /// Whether the configuration asks for `host.mlockall`.
    pub mlockall: bool,
}

fn pass(check: &'static str, found: impl Into<String>) -> Finding {
    Finding {
        check,
        status: Status::Pass,
        found: found.into(),
        fix: String::new(),
    }
}

fn flag(
    check: &'static str,
    status: Status,
    found: impl Into<String>,
    fix: impl Into<String>,
) -> Finding {
    Finding {
        check,
        status,
        found: found.into(),
        fix: fix.into(),
    }
}

/// Runs every check, in the order printed.
pub fn run_all(h: &dyn Host, o: &Options) -> Vec<Finding> {
    let target = target_cpus(h, o);
    vec![
        online_cpus(h, &target),
        isolcpus(h, &target),
        nohz_full(h, &target),
        rcu_nocbs(h, &target),
        cpu_governor(h, &target),
        invariant_tsc(h),
        clocksource(h),
        transparent_hugepages(h),
        dev_shm(h, o),
        memlock(h, o),
        irq_affinity(h, &target),
        swap(h),
        remove_ipc(h, o),
    ]
}

/// The pinned CPUs: the given list, else the kernel's isolated CPUs, else none.
fn target_cpus(h: &dyn Host, o: &Options) -> Vec<usize> {
    o.cpus
        .clone()
        .unwrap_or_else(|| cpu_file(h, "sys/devices/system/cpu/isolated"))
}

/// A CPU list file (`0-3,8`), empty when missing, empty or `(null)`.
fn cpu_file(h: &dyn Host, rel: &str) -> Vec<usize> {
    h.read(rel)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty() && t != "(null)")
        .and_then(|t| parse_cpu_list(&t).ok())
        .unwrap_or_default()
}

/// The value of `name=` on the kernel command line.
fn cmdline_param(h: &dyn Host, name: &str) -> Option<String> {
    let cmdline = h.read("proc/cmdline").ok()?;
    cmdline
        .split_whitespace()
        .filter_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        .next_back()
        .map(str::to_string)
}

/// The CPU list of a parameter like `isolcpus=managed_irq,domain,2-3` (flags dropped).
fn cmdline_cpus(h: &dyn Host, name: &str) -> Vec<usize> {
    let Some(v) = cmdline_param(h, name) else {
        return Vec::new();
    };
    let list: Vec<&str> = v
        .split(',')
        .filter(|p| p.starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    parse_cpu_list(&list.join(",")).unwrap_or_default()
}

fn missing(target: &[usize], have: &[usize]) -> Vec<usize> {
    target
        .iter()
        .copied()
        .filter(|c| !have.contains(c))
        .collect()
}

const NO_TARGET_FIX: &str =
    "isolate the engine's CPUs: add isolcpus=2-3 nohz_full=2-3 rcu_nocbs=2-3 (your CPU list) to the \
     kernel command line and reboot, then set host.cpus; or name them here with --cpus";

/// The fix of the checks that need the CPU list, when there is none (said once, under `cpus`).
const SEE_CPUS: &str = "see the fix of the cpus check";

fn online_cpus(h: &dyn Host, target: &[usize]) -> Finding {
    const C: &str = "cpus";
    let online = cpu_file(h, "sys/devices/system/cpu/online");
    if online.is_empty() {
        return flag(
            C,
            Status::Warn,
            "cannot read sys/devices/system/cpu/online",
            "run on Linux with /sys mounted",
        );
    }
    if target.is_empty() {
        return flag(
            C,
            Status::Warn,
            format!(
                "online {}; no CPU list given and none isolated: the engine threads share their cores",
                format_cpu_list(&online)
            ),
            NO_TARGET_FIX,
        );
    }
    let gone = missing(target, &online);
    if !gone.is_empty() {
        return flag(
            C,
            Status::Fail,
            format!(
                "CPU {} not online (online: {})",
                format_cpu_list(&gone),
                format_cpu_list(&online)
            ),
            "choose host.cpus among the online CPUs",
        );
    }
    if target.len() >= online.len() {
        return flag(
            C,
            Status::Warn,
            format!(
                "pinned CPUs {} are every online CPU: nothing left for the kernel, the bridges and the I/O",
                format_cpu_list(target)
            ),
            "keep at least one CPU out of host.cpus (housekeeping)",
        );
    }
    pass(
        C,
        format!(
            "pinned CPUs {} of online {}",
            format_cpu_list(target),
            format_cpu_list(&online)
        ),
    )
}

fn isolcpus(h: &dyn Host, target: &[usize]) -> Finding {
    const C: &str = "isolcpus";
    let isolated = cpu_file(h, "sys/devices/system/cpu/isolated");
    if target.is_empty() {
        return flag(C, Status::Warn, "no isolated CPUs", SEE_CPUS);
    }
    let not = missing(target, &isolated);
    if not.is_empty() {
        pass(C, format!("CPUs {} isolated", format_cpu_list(target)))
    } else {
        flag(
            C,
            Status::Warn,
            format!(
                "CPU {} not isolated (isolated: {}): the scheduler puts other tasks there",
                format_cpu_list(&not),
                none_or(&isolated)
            ),
            format!(
                "add isolcpus={} to the kernel command line and reboot",
                format_cpu_list(target)
            ),
        )
    }
}

fn none_or(cpus: &[usize]) -> String {
    if cpus.is_empty() {
        "none".into()
    } else {
        format_cpu_list(cpus)
    }
}

fn nohz_full(h: &dyn Host, target: &[usize]) -> Finding {
    const C: &str = "nohz_full";
    if target.is_empty() {
        return flag(C, Status::Warn, "no pinned CPUs to check", SEE_CPUS);
    }
    let Ok(text) = h.read("sys/devices/system/cpu/nohz_full") else {
        return flag(
            C,
            Status::Warn,
            "the kernel has no nohz_full support (CONFIG_NO_HZ_FULL)",
            "use a kernel built with NO_HZ_FULL to stop the tick on the engine's CPUs",
        );
    };
    let have = parse_cpu_list(text.trim()).unwrap_or_default();
    let not = missing(target, &have);
    if not.is_empty() {
        pass(
            C,
            format!("tick stopped on CPUs {}", format_cpu_list(target)),
        )
    } else {
        flag(
            C,
            Status::Warn,
            format!(
                "CPU {} still gets the timer tick (nohz_full: {})",
                format_cpu_list(&not),
                none_or(&have)
            ),
            format!(
                "add nohz_full={} to the kernel command line and reboot",
                format_cpu_list(target)
            ),
        )
    }
}

fn rcu_nocbs(h: &dyn Host, target: &[usize]) -> Finding {
    const C: &str = "rcu_nocbs";
    if target.is_empty() {
        return flag(C, Status::Warn, "no pinned CPUs to check", SEE_CPUS);
    }
    // nohz_full CPUs are RCU-offloaded too.
    let mut have: BTreeSet<usize> = cmdline_cpus(h, "rcu_nocbs").into_iter().collect();
    have.extend(cpu_file(h, "sys/devices/system/cpu/nohz_full"));
    let have: Vec<usize> = have.into_iter().collect();
    let not = missing(target, &have);
    if not.is_empty() {
        pass(
            C,
            format!(
                "RCU callbacks offloaded from CPUs {}",
                format_cpu_list(target)
            ),
        )
    } else {
        flag(
            C,
            Status::Warn,
            format!(
                "CPU {} still runs RCU callbacks (offloaded: {})",
                format_cpu_list(&not),
                none_or(&have)
            ),
            format!(
                "add rcu_nocbs={} to the kernel command line and reboot",
                format_cpu_list(target)
            ),
        )
    }
}

fn cpu_governor(h: &dyn Host, target: &[usize]) -> Finding {
    const C: &str = "cpu_governor";
    let cpus = if target.is_empty() {
        cpu_file(h, "sys/devices/system/cpu/online")
    } else {
        target.to_vec()
    };
    let mut slow = Vec::new();
    let mut seen = 0;
    for c in &cpus {
        if let Ok(g) = h.read(&format!(
            "sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor"
        )) {
            seen += 1;
            if g.trim() != "performance" {
                slow.push(format!("CPU {c}: {}", g.trim()));
            }
        }
    }
    if seen == 0 {
        pass(
            C,
            "no frequency scaling exposed (virtual machine or fixed clock)",
        )
    } else if slow.is_empty() {
        pass(C, format!("performance on CPUs {}", format_cpu_list(&cpus)))
    } else {
        flag(
            C,
            Status::Warn,
            format!("{}: the clock ramps up only under load", slow.join(", ")),
            "cpupower frequency-set -g performance (or write performance to \
             /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor)",
        )
    }
}

fn invariant_tsc(h: &dyn Host) -> Finding {
    const C: &str = "tsc";
    let Ok(info) = h.read("proc/cpuinfo") else {
        return flag(C, Status::Warn, "cannot read proc/cpuinfo", "mount /proc");
    };
    let Some(flags) = info
        .lines()
        .find(|l| l.starts_with("flags"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, f)| f.split_whitespace().collect::<Vec<_>>())
    else {
        return pass(C, "not an x86 CPU: the architectural timer is used");
    };
    let lacking: Vec<&str> = ["constant_tsc", "nonstop_tsc"]
        .into_iter()
        .filter(|f| !flags.contains(f))
        .collect();
    if lacking.is_empty() {
        pass(C, "invariant TSC (constant_tsc, nonstop_tsc)")
    } else {
        flag(
            C,
            Status::Warn,
            format!(
                "no {}: the TSC may change rate or stop in deep idle states",
                lacking.join(", ")
            ),
            "use a CPU (or a hypervisor setting) that exposes an invariant TSC; the engine clock \
             and the latency figures rely on it",
        )
    }
}

fn clocksource(h: &dyn Host) -> Finding {
    const C: &str = "clocksource";
    let base = "sys/devices/system/clocksource/clocksource0";
    let Ok(cur) = h.read(&format!("{base}/current_clocksource")) else {
        return flag(C, Status::Warn, "cannot read the clocksource", "mount /sys");
    };
    let cur = cur.trim();
    let avail = h
        .read(&format!("{base}/available_clocksource"))
        .unwrap_or_default();
    match cur {
        "tsc" | "arch_sys_counter" => pass(C, format!("{cur}: clock reads stay in user space")),
        _ => flag(
            C,
            Status::Warn,
            format!(
                "{cur} (available: {}): time reads may cost a system call or a VM exit",
                avail.trim()
            ),
            if avail.split_whitespace().any(|a| a == "tsc") {
                format!("echo tsc > /{base}/current_clocksource, and clocksource=tsc on the kernel command line")
            } else {
                "on a VM the hypervisor's clock (kvm-clock) is the best available; on metal, \
                 boot with tsc=reliable clocksource=tsc"
                    .into()
            },
        ),
    }
}

/// The bracketed choice of a sysfs selector (`always [madvise] never` → `madvise`).
fn selected(text: &str) -> Option<&str> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix('[')?.strip_suffix(']'))
}

fn transparent_hugepages(h: &dyn Host) -> Finding {
    const C: &str = "transparent_hugepages";
    let base = "sys/kernel/mm/transparent_hugepage";
    let Ok(enabled) = h.read(&format!("{base}/enabled")) else {
        return pass(C, "not built into this kernel");
    };
    let enabled = selected(&enabled).unwrap_or("?").to_string();
    let defrag = h
        .read(&format!("{base}/defrag"))
        .ok()
        .and_then(|d| selected(&d).map(str::to_string))
        .unwrap_or_else(|| "?".into());
    if enabled == "always" || defrag == "always" {
        flag(
            C,
            Status::Warn,
            format!(
                "enabled={enabled} defrag={defrag}: khugepaged and compaction stall threads at \
                 random moments"
            ),
            format!(
                "echo madvise > /{base}/enabled; echo defer+madvise > /{base}/defrag (or \
                 transparent_hugepage=madvise on the kernel command line)"
            ),
        )
    } else {
        pass(C, format!("enabled={enabled} defrag={defrag}"))
    }
}

fn mib(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}

fn dev_shm(h: &dyn Host, o: &Options) -> Finding {
    const C: &str = "dev_shm";
    let (size, free) = match h.fs_space("dev/shm") {
        Ok(s) => s,
        Err(e) => {
            return flag(
                C,
                Status::Fail,
                format!("no /dev/shm ({e}): the rings cannot be created"),
                "mount -t tmpfs -o mode=1777 tmpfs /dev/shm",
            )
        }
    };
    let found = format!(
        "size {}, free {}; one instance needs {}",
        mib(size),
        mib(free),
        mib(o.shm_need)
    );
    if free < o.shm_need {
        flag(
            C,
            Status::Fail,
            found,
            "free /dev/shm (quantum ctl gc removes dead instances' segments) or grow it: \
             mount -o remount,size=1G /dev/shm",
        )
    } else if free < o.shm_need * 2 {
        flag(
            C,
            Status::Warn,
            found,
            "room for one instance only: grow it with mount -o remount,size=1G /dev/shm",
        )
    } else {
        pass(C, found)
    }
}

/// `Max locked memory` of /proc/<pid>/limits: (soft, hard), `None` for unlimited.
fn memlock_limits(text: &str) -> Option<(Option<u64>, Option<u64>)> {
    let line = text.lines().find(|l| l.starts_with("Max locked memory"))?;
    let mut w = line["Max locked memory".len()..].split_whitespace();
    let v = |s: Option<&str>| -> Option<Option<u64>> {
        match s? {
            "unlimited" => Some(None),
            n => n.parse().ok().map(Some),
        }
    };
    Some((v(w.next())?, v(w.next())?))
}

/// Whether CapEff in /proc/<pid>/status holds CAP_IPC_LOCK (bit 14).
fn has_ipc_lock(status: &str) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 14) != 0)
}

fn memlock(h: &dyn Host, o: &Options) -> Finding {
    const C: &str = "memlock";
    let who = if o.pid == "self" {
        "this session (give --instance for the daemon's)".to_string()
    } else {
        format!("pid {}", o.pid)
    };
    let Some((soft, _hard)) = h
        .read(&format!("proc/{}/limits", o.pid))
        .ok()
        .and_then(|t| memlock_limits(&t))
    else {
        return flag(
            C,
            Status::Warn,
            format!("cannot read the limits of {who}"),
            "mount /proc",
        );
    };
    let Some(soft) = soft else {
        return pass(C, format!("unlimited for {who}"));
    };
    let caps = h
        .read(&format!("proc/{}/status", o.pid))
        .unwrap_or_default();
    if has_ipc_lock(&caps) {
        return pass(
            C,
            format!(
                "{} for {who}, which has CAP_IPC_LOCK (no limit applies)",
                mib(soft)
            ),
        );
    }
    flag(
        C,
        if o.mlockall {
            Status::Fail
        } else {
            Status::Warn
        },
        format!(
            "{} for {who}: host.mlockall cannot lock the daemon's memory{}",
            mib(soft),
            if o.mlockall {
                " and the configuration asks for it"
            } else {
                ""
            }
        ),
        "LimitMEMLOCK=infinity in the unit (deploy/systemd sets it), or \
         `quantum - memlock unlimited` in /etc/security/limits.d/quantum.conf",
    )
}

/// CPUs of a hex mask as /proc/irq/default_smp_affinity writes it (`ff,ffffffff`).
fn mask_cpus(text: &str) -> Vec<usize> {
    let hex: String = text.trim().chars().filter(|c| *c != ',').collect();
    let mut cpus = Vec::new();
    for (i, ch) in hex.chars().rev().enumerate() {
        let Some(d) = ch.to_digit(16) else {
            return Vec::new();
        };
        for bit in 0..4 {
            if d & (1 << bit) != 0 {
                cpus.push(i * 4 + bit);
            }
        }
    }
    cpus
}

fn irq_affinity(h: &dyn Host, target: &[usize]) -> Finding {
    const C: &str = "irq_affinity";
    if target.is_empty() {
        return flag(
            C,
            Status::Warn,
            "no pinned CPUs to keep interrupts away from",
            NO_TARGET_FIX,
        );
    }
    let Ok(irqs) = h.list("proc/irq") else {
        return flag(C, Status::Warn, "cannot read proc/irq", "mount /proc");
    };
    let online = cpu_file(h, "sys/devices/system/cpu/online");
    let housekeeping: Vec<usize> = online
        .iter()
        .copied()
        .filter(|c| !target.contains(c))
        .collect();
    let mut on_target = Vec::new();
    for irq in irqs
        .iter()
        .filter(|n| n.chars().all(|c| c.is_ascii_digit()))
    {
        let cpus = cpu_file(h, &format!("proc/irq/{irq}/smp_affinity_list"));
        if cpus.iter().any(|c| target.contains(c)) {
            on_target.push(irq.clone());
        }
    }
    let default = h
        .read("proc/irq/default_smp_affinity")
        .map(|t| mask_cpus(&t))
        .unwrap_or_default();
    let default_hits = default.iter().any(|c| target.contains(c));
    if on_target.is_empty() && !default_hits {
        return pass(
            C,
            format!("no interrupt is routed to CPUs {}", format_cpu_list(target)),
        );
    }
    let mut found = Vec::new();
    if !on_target.is_empty() {
        let shown: Vec<&str> = on_target.iter().take(12).map(String::as_str).collect();
        found.push(format!(
            "{} IRQ(s) may run on CPUs {}: {}{}",
            on_target.len(),
            format_cpu_list(target),
            shown.join(", "),
            if on_target.len() > shown.len() {
                ", …"
            } else {
                ""
            }
        ));
    }
    if default_hits {
        found.push("new IRQs default to them too (default_smp_affinity)".into());
    }
    let hk = none_or(&housekeeping);
    flag(
        C,
        Status::Warn,
        found.join("; "),
        format!(
            "for i in /proc/irq/[0-9]*; do echo {hk} > $i/smp_affinity_list; done; and the \
             default_smp_affinity mask of CPUs {hk}; with irqbalance, \
             IRQBALANCE_BANNED_CPULIST={}",
            format_cpu_list(target)
        ),
    )
}

fn swap(h: &dyn Host) -> Finding {
    const C: &str = "swap";
    let Ok(swaps) = h.read("proc/swaps") else {
        return flag(C, Status::Warn, "cannot read proc/swaps", "mount /proc");
    };
    let devices: Vec<&str> = swaps
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    if devices.is_empty() {
        return pass(C, "no swap");
    }
    let swappiness = h
        .read("proc/sys/vm/swappiness")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    flag(
        C,
        Status::Warn,
        format!(
            "swap on {} (vm.swappiness {swappiness}): a swapped-out page costs milliseconds",
            devices.join(", ")
        ),
        "swapoff -a (and drop it from /etc/fstab), or keep it with host.mlockall = true and \
         sysctl vm.swappiness=1",
    )
}

/// `RemoveIPC=` as logind would read it: the main file, then drop-ins by name, last wins.
fn remove_ipc_setting(h: &dyn Host) -> (bool, String) {
    let mut value = (true, "default (yes)".to_string());
    let mut files = vec!["etc/systemd/logind.conf".to_string()];
    let mut dropins: Vec<(String, String)> = Vec::new();
    for dir in [
        "usr/lib/systemd/logind.conf.d",
        "run/systemd/logind.conf.d",
        "etc/systemd/logind.conf.d",
    ] {
        for name in h.list(dir).unwrap_or_default() {
            if name.ends_with(".conf") {
                // A drop-in in /etc hides the same name elsewhere; the order is by name.
                dropins.retain(|(n, _)| *n != name);
                dropins.push((name.clone(), format!("{dir}/{name}")));
            }
        }
    }
    dropins.sort();
    files.extend(dropins.into_iter().map(|(_, p)| p));
    for f in files {
        let Ok(text) = h.read(&f) else { continue };
        for line in text.lines() {
            let line = line.trim();
            if let Some(v) = line.strip_prefix("RemoveIPC=") {
                let yes = !matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "no" | "false" | "0" | "off"
                );
                value = (yes, format!("RemoveIPC={} in /{f}", v.trim()));
            }
        }
    }
    value
}

/// The uid of `user` in etc/passwd.
fn uid_of(h: &dyn Host, user: &str) -> Option<u32> {
    h.read("etc/passwd").ok()?.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == user).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

/// SYS_UID_MAX of etc/login.defs (999 when not set).
fn sys_uid_max(h: &dyn Host) -> u32 {
    h.read("etc/login.defs")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next()? == "SYS_UID_MAX").then_some(())?;
                w.next()?.parse().ok()
            })
        })
        .unwrap_or(999)
}

fn remove_ipc(h: &dyn Host, o: &Options) -> Finding {
    const C: &str = "remove_ipc";
    let (on, source) = remove_ipc_setting(h);
    if !on {
        return pass(C, format!("{source}: logind keeps users' shared memory"));
    }
    let fix = format!(
        "run the units as a system user (useradd --system --no-create-home {u}), or set \
         RemoveIPC=no in /etc/systemd/logind.conf.d/quantum.conf and restart systemd-logind",
        u = o.user
    );
    match uid_of(h, &o.user) {
        Some(0) => pass(
            C,
            format!("{source}, but {} is root: never cleaned", o.user),
        ),
        Some(uid) if uid <= sys_uid_max(h) => pass(
            C,
            format!(
                "{source}, but {} is a system user (uid {uid}): its segments are kept",
                o.user
            ),
        ),
        Some(uid) => flag(
            C,
            Status::Fail,
            format!(
                "{source} and {} is a regular user (uid {uid}): when its last login session ends, \
                 logind deletes /dev/shm/quantum.* under the running daemon",
                o.user
            ),
            fix,
        ),
        None => flag(
            C,
            Status::Warn,
            format!(
                "{source}; no user {}: a regular user's segments are deleted when its last \
                 session ends",
                o.user
            ),
            fix,
        ),
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

/// Failover: what this host's lease holder published, for a configuration with `[failover]`
/// on (`enabled`) or a running instance that has a lease segment. `None` when failover is
/// neither configured nor running here.
pub fn failover(
    enabled: bool,
    lease: Option<&quantum_ipc::lease::Lease>,
    now_ns: u64,
) -> Option<Finding> {
    const CHECK: &str = "failover";
    match lease {
        None if enabled => Some(flag(
            CHECK,
            Status::Fail,
            "failover is on but this host publishes no lease",
            "start the Redis bridge of the instance (quantum bridge redis --instance …): it holds the lease; until then this host never leads",
        )),
        None => None,
        Some(l) => {
            let other = if l.other.is_empty() {
                "nobody"
            } else {
                l.other.as_str()
            };
            Some(if l.may_send(now_ns) {
                pass(
                    CHECK,
                    format!(
                        "leader (epoch {}, host {}), lease held {} s, deadline in {} ms; ttl {} ms, recvWindow {} ms",
                        l.epoch,
                        l.host,
                        now_ns.saturating_sub(l.acquired_ns) / 1_000_000_000,
                        l.deadline_ns.saturating_sub(now_ns) / 1_000_000,
                        l.ttl_ms,
                        l.recv_window_ms
                    ),
                )
            } else if l.leads(now_ns) {
                pass(
                    CHECK,
                    format!(
                        "leader (epoch {}), waiting out its takeover fence ({} ms left)",
                        l.epoch,
                        l.fence_left(now_ns).unwrap_or_default().as_millis()
                    ),
                )
            } else if l.other.is_empty() {
                flag(
                    CHECK,
                    Status::Warn,
                    format!("standby (host {}), and no host holds the lease", l.host),
                    "nobody leads: check the other host and this host's Redis bridge log (stepped down, Redis unreachable)",
                )
            } else {
                pass(
                    CHECK,
                    format!(
                        "standby (host {}); {other} leads under epoch {}",
                        l.host, l.epoch
                    ),
                )
            })
        }
    }
}
