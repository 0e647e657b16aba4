//! Every doctor check against prepared `/proc`, `/sys` and `/etc` trees: a tuned host where
//! all pass, then one change at a time and the status and words it must give.

use std::io;
use std::path::Path;

use super::*;
use crate::ctl::doctor::host::RootedHost;

/// A fake machine: real files in a temporary directory, and a chosen /dev/shm size.
struct Tree {
    dir: tempfile::TempDir,
    space: Option<(u64, u64)>,
}

impl Tree {
    /// A host tuned for engine threads on CPUs 2-3 of 0-3.
    fn tuned() -> Tree {
        let t = Tree {
            dir: tempfile::tempdir().unwrap(),
            space: Some((1 << 30, 900 << 20)),
        };
        t.file("sys/devices/system/cpu/online", "0-3\n");
        t.file("sys/devices/system/cpu/isolated", "2-3\n");
        t.file("sys/devices/system/cpu/nohz_full", "2-3\n");
        t.file(
            "proc/cmdline",
            "BOOT_IMAGE=/vmlinuz root=/dev/sda1 isolcpus=managed_irq,domain,2-3 nohz_full=2-3 rcu_nocbs=2-3\n",
        );
        for c in 0..4 {
            t.file(
                &format!("sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor"),
                "performance\n",
            );
        }
        t.file(
            "proc/cpuinfo",
            "processor\t: 0\nflags\t\t: fpu tsc msr constant_tsc nonstop_tsc rdtscp\n",
        );
        let cs = "sys/devices/system/clocksource/clocksource0";
        t.file(&format!("{cs}/current_clocksource"), "tsc\n");
        t.file(&format!("{cs}/available_clocksource"), "tsc hpet acpi_pm\n");
        t.file(
            "sys/kernel/mm/transparent_hugepage/enabled",
            "always [madvise] never\n",
        );
        t.file(
            "sys/kernel/mm/transparent_hugepage/defrag",
            "always defer [defer+madvise] madvise never\n",
        );
        t.file(
            "proc/self/limits",
            "Limit                     Soft Limit           Hard Limit           Units     \n\
             Max open files            1024                 524288               files     \n\
             Max locked memory         unlimited            unlimited            bytes     \n",
        );
        t.file(
            "proc/self/status",
            "Name:\tquantum\nCapEff:\t0000000000000000\n",
        );
        for irq in 0..4 {
            t.file(&format!("proc/irq/{irq}/smp_affinity_list"), "0-1\n");
        }
        t.file("proc/irq/default_smp_affinity", "3\n");
        t.file(
            "proc/swaps",
            "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n",
        );
        t.file("proc/sys/vm/swappiness", "60\n");
        t.file("etc/systemd/logind.conf", "[Login]\n#RemoveIPC=yes\n");
        t.file(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/bash\nquantum:x:998:998::/nonexistent:/usr/sbin/nologin\n",
        );
        t
    }

    fn file(&self, rel: &str, text: &str) {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn remove(&self, rel: &str) {
        let p = self.dir.path().join(rel);
        if p.is_dir() {
            std::fs::remove_dir_all(p).unwrap();
        } else {
            std::fs::remove_file(p).unwrap();
        }
    }

    fn run(&self, o: &Options) -> Vec<Finding> {
        run_all(
            &FakeHost {
                files: RootedHost::new(self.dir.path()),
                space: self.space,
            },
            o,
        )
    }

    /// The finding of one check.
    fn check(&self, o: &Options, name: &str) -> Finding {
        self.run(o)
            .into_iter()
            .find(|f| f.check == name)
            .unwrap_or_else(|| panic!("no check {name}"))
    }
}

/// Files from the tree; /dev/shm's space as the test says.
struct FakeHost {
    files: RootedHost,
    space: Option<(u64, u64)>,
}

impl Host for FakeHost {
    fn read(&self, rel: &str) -> io::Result<String> {
        self.files.read(rel)
    }
    fn list(&self, rel: &str) -> io::Result<Vec<String>> {
        self.files.list(rel)
    }
    fn fs_space(&self, rel: &str) -> io::Result<(u64, u64)> {
        assert_eq!(rel, "dev/shm");
        self.space
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such directory"))
    }
}

fn opts() -> Options {
    Options {
        cpus: Some(vec![2, 3]),
        pid: "self".into(),
        user: "quantum".into(),
        shm_need: 41 << 20,
        mlockall: true,
    }
}

fn assert_status(f: &Finding, status: Status, words: &[&str]) {
    assert_eq!(f.status, status, "{f:?}");
    for w in words {
        assert!(
            f.found.contains(w) || f.fix.contains(w),
            "{:?} lacks {w:?}",
            f
        );
    }
    assert_eq!(f.fix.is_empty(), status == Status::Pass, "{f:?}");
}

#[test]
fn a_tuned_host_passes_every_check() {
    let t = Tree::tuned();
    for f in t.run(&opts()) {
        assert_eq!(f.status, Status::Pass, "{f:?}");
    }
    // Without --cpus the kernel's isolated CPUs are the ones checked.
    let o = Options {
        cpus: None,
        ..opts()
    };
    for f in t.run(&o) {
        assert_eq!(f.status, Status::Pass, "{f:?}");
    }
}

#[test]
fn cpus_offline_or_all_of_them_or_none_known() {
    let t = Tree::tuned();
    let o = Options {
        cpus: Some(vec![3, 7]),
        ..opts()
    };
    assert_status(
        &t.check(&o, "cpus"),
        Status::Fail,
        &["CPU 7 not online", "0-3"],
    );
    let o = Options {
        cpus: Some(vec![0, 1, 2, 3]),
        ..opts()
    };
    assert_status(&t.check(&o, "cpus"), Status::Warn, &["every online CPU"]);
    t.file("sys/devices/system/cpu/isolated", "\n");
    let o = Options {
        cpus: None,
        ..opts()
    };
    assert_status(
        &t.check(&o, "cpus"),
        Status::Warn,
        &["none isolated", "isolcpus="],
    );
    assert_status(
        &t.check(&o, "isolcpus"),
        Status::Warn,
        &["no isolated CPUs"],
    );
    assert_status(
        &t.check(&o, "irq_affinity"),
        Status::Warn,
        &["no pinned CPUs"],
    );
}

#[test]
fn isolcpus_names_the_cpus_not_isolated() {
    let t = Tree::tuned();
    t.file("sys/devices/system/cpu/isolated", "2\n");
    assert_status(
        &t.check(&opts(), "isolcpus"),
        Status::Warn,
        &["CPU 3 not isolated", "isolated: 2", "isolcpus=2-3"],
    );
}

#[test]
fn nohz_full_missing_support_or_cpus() {
    let t = Tree::tuned();
    t.file("sys/devices/system/cpu/nohz_full", "(null)\n");
    assert_status(
        &t.check(&opts(), "nohz_full"),
        Status::Warn,
        &["CPU 2-3 still gets the timer tick", "nohz_full=2-3"],
    );
    t.remove("sys/devices/system/cpu/nohz_full");
    assert_status(
        &t.check(&opts(), "nohz_full"),
        Status::Warn,
        &["CONFIG_NO_HZ_FULL"],
    );
}

#[test]
fn rcu_nocbs_from_the_command_line_or_implied_by_nohz_full() {
    let t = Tree::tuned();
    t.file("proc/cmdline", "root=/dev/sda1 isolcpus=2-3\n");
    // nohz_full=2-3 (sysfs) offloads RCU on its own.
    assert_eq!(t.check(&opts(), "rcu_nocbs").status, Status::Pass);
    t.file("sys/devices/system/cpu/nohz_full", "(null)\n");
    assert_status(
        &t.check(&opts(), "rcu_nocbs"),
        Status::Warn,
        &["CPU 2-3 still runs RCU callbacks", "rcu_nocbs=2-3"],
    );
    t.file("proc/cmdline", "root=/dev/sda1 rcu_nocbs=3\n");
    assert_status(
        &t.check(&opts(), "rcu_nocbs"),
        Status::Warn,
        &["CPU 2 still"],
    );
}

#[test]
fn cpu_governor_other_than_performance_warns_and_none_passes() {
    let t = Tree::tuned();
    t.file(
        "sys/devices/system/cpu/cpu3/cpufreq/scaling_governor",
        "powersave\n",
    );
    assert_status(
        &t.check(&opts(), "cpu_governor"),
        Status::Warn,
        &["CPU 3: powersave", "cpupower frequency-set -g performance"],
    );
    for c in 0..4 {
        t.remove(&format!("sys/devices/system/cpu/cpu{c}"));
    }
    assert_status(
        &t.check(&opts(), "cpu_governor"),
        Status::Pass,
        &["no frequency scaling"],
    );
}

#[test]
fn tsc_must_be_invariant_on_x86() {
    let t = Tree::tuned();
    t.file(
        "proc/cpuinfo",
        "processor\t: 0\nflags\t\t: fpu tsc constant_tsc\n",
    );
    assert_status(&t.check(&opts(), "tsc"), Status::Warn, &["no nonstop_tsc"]);
    t.file("proc/cpuinfo", "processor\t: 0\nFeatures\t: fp asimd\n");
    assert_status(&t.check(&opts(), "tsc"), Status::Pass, &["not an x86 CPU"]);
}

#[test]
fn clocksource_other_than_tsc_warns_with_the_right_fix() {
    let t = Tree::tuned();
    let cs = "sys/devices/system/clocksource/clocksource0";
    t.file(&format!("{cs}/current_clocksource"), "hpet\n");
    assert_status(
        &t.check(&opts(), "clocksource"),
        Status::Warn,
        &["hpet", "echo tsc >"],
    );
    t.file(&format!("{cs}/current_clocksource"), "kvm-clock\n");
    t.file(
        &format!("{cs}/available_clocksource"),
        "kvm-clock acpi_pm\n",
    );
    assert_status(
        &t.check(&opts(), "clocksource"),
        Status::Warn,
        &["kvm-clock", "hypervisor"],
    );
}

#[test]
fn transparent_hugepages_always_warns() {
    let t = Tree::tuned();
    t.file(
        "sys/kernel/mm/transparent_hugepage/enabled",
        "[always] madvise never\n",
    );
    assert_status(
        &t.check(&opts(), "transparent_hugepages"),
        Status::Warn,
        &["enabled=always", "echo madvise"],
    );
    t.remove("sys/kernel/mm/transparent_hugepage");
    assert_eq!(
        t.check(&opts(), "transparent_hugepages").status,
        Status::Pass
    );
}

#[test]
fn dev_shm_missing_full_or_tight() {
    let mut t = Tree::tuned();
    t.space = None;
    assert_status(
        &t.check(&opts(), "dev_shm"),
        Status::Fail,
        &["no /dev/shm", "mount -t tmpfs"],
    );
    t.space = Some((64 << 20, 10 << 20));
    assert_status(
        &t.check(&opts(), "dev_shm"),
        Status::Fail,
        &["free 10.0 MiB", "needs 41.0 MiB", "quantum ctl gc"],
    );
    t.space = Some((128 << 20, 60 << 20));
    assert_status(
        &t.check(&opts(), "dev_shm"),
        Status::Warn,
        &["one instance only"],
    );
}

#[test]
fn memlock_limit_fails_when_mlockall_is_configured_unless_cap_ipc_lock() {
    let t = Tree::tuned();
    t.file(
        "proc/self/limits",
        "Limit                     Soft Limit           Hard Limit           Units     \n\
         Max locked memory         8388608              8388608              bytes     \n",
    );
    assert_status(
        &t.check(&opts(), "memlock"),
        Status::Fail,
        &["8.0 MiB", "asks for it", "LimitMEMLOCK=infinity"],
    );
    let o = Options {
        mlockall: false,
        ..opts()
    };
    assert_eq!(t.check(&o, "memlock").status, Status::Warn);
    // CAP_IPC_LOCK (bit 14) lifts the limit.
    t.file("proc/self/status", "CapEff:\t0000000000004000\n");
    assert_status(
        &t.check(&opts(), "memlock"),
        Status::Pass,
        &["CAP_IPC_LOCK"],
    );
    // The daemon's own limits with --instance.
    t.file(
        "proc/4242/limits",
        "Max locked memory         unlimited            unlimited            bytes\n",
    );
    let o = Options {
        pid: "4242".into(),
        ..opts()
    };
    assert_status(&t.check(&o, "memlock"), Status::Pass, &["pid 4242"]);
}

#[test]
fn irqs_on_the_pinned_cpus_are_listed_with_the_housekeeping_fix() {
    let t = Tree::tuned();
    t.file("proc/irq/1/smp_affinity_list", "0-3\n");
    t.file("proc/irq/24/smp_affinity_list", "3\n");
    assert_status(
        &t.check(&opts(), "irq_affinity"),
        Status::Warn,
        &[
            "2 IRQ(s) may run on CPUs 2-3: 1, 24",
            "echo 0-1 >",
            "IRQBALANCE_BANNED_CPULIST=2-3",
        ],
    );
    let t = Tree::tuned();
    t.file("proc/irq/default_smp_affinity", "f\n");
    assert_status(
        &t.check(&opts(), "irq_affinity"),
        Status::Warn,
        &["default_smp_affinity"],
    );
}

#[test]
fn swap_on_warns_with_swappiness() {
    let t = Tree::tuned();
    t.file(
        "proc/swaps",
        "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/vda2 partition\t2097148\t0\t-2\n",
    );
    assert_status(
        &t.check(&opts(), "swap"),
        Status::Warn,
        &["/dev/vda2", "swappiness 60", "swapoff -a"],
    );
}

#[test]
fn remove_ipc_depends_on_logind_and_the_service_user() {
    let t = Tree::tuned();
    // Default yes, but a system user: kept.
    assert_status(
        &t.check(&opts(), "remove_ipc"),
        Status::Pass,
        &["system user (uid 998)"],
    );
    // A regular user: its segments go when its last session ends.
    t.file(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/bash\nquantum:x:1001:1001::/home/quantum:/bin/bash\n",
    );
    assert_status(
        &t.check(&opts(), "remove_ipc"),
        Status::Fail,
        &[
            "regular user (uid 1001)",
            "RemoveIPC=no",
            "useradd --system",
        ],
    );
    // A drop-in sets it off; a later drop-in by name wins.
    t.file(
        "etc/systemd/logind.conf.d/50-quantum.conf",
        "[Login]\nRemoveIPC=no\n",
    );
    assert_status(
        &t.check(&opts(), "remove_ipc"),
        Status::Pass,
        &["RemoveIPC=no in /etc/systemd/logind.conf.d/50-quantum.conf"],
    );
    t.file(
        "etc/systemd/logind.conf.d/90-site.conf",
        "[Login]\nRemoveIPC=yes\n",
    );
    assert_eq!(t.check(&opts(), "remove_ipc").status, Status::Fail);
    // No such user: a warning with the fix.
    let o = Options {
        user: "nobody-here".into(),
        ..opts()
    };
    assert_status(
        &t.check(&o, "remove_ipc"),
        Status::Warn,
        &["no user nobody-here"],
    );
}

#[test]
fn the_real_host_is_read_without_panicking() {
    let f = run_all(
        &RootedHost::new(Path::new("/")),
        &Options {
            cpus: None,
            ..opts()
        },
    );
    assert_eq!(f.len(), 13);
    assert!(f.iter().all(|f| !f.found.is_empty()));
}

/// The failover line: a leader, a fenced leader, a standby with a leader elsewhere, a standby
/// with nobody leading, and failover configured with no lease published.
#[test]
fn failover_says_the_role_and_warns_when_nobody_leads() {
    use quantum_ipc::lease::{Lease, LeaseRole};
    let now = 1_000_000_000_000u64;
    let l = Lease {
        role: LeaseRole::Leader,
        epoch: 4,
        deadline_ns: now + 2_000_000_000,
        trade_after_ns: now - 1,
        acquired_ns: now - 60_000_000_000,
        renewed_ns: now,
        ttl_ms: 3000,
        recv_window_ms: 1000,
        host: "db1".into(),
        other: String::new(),
        takeover_ms: 0,
        updated_ns: now,
    };
    let f = failover(true, Some(&l), now).unwrap();
    assert_eq!(f.status, Status::Pass);
    assert!(
        f.found
            .starts_with("leader (epoch 4, host db1), lease held 60 s"),
        "{}",
        f.found
    );
    let fenced = Lease {
        trade_after_ns: now + 500_000_000,
        ..l.clone()
    };
    let f = failover(true, Some(&fenced), now).unwrap();
    assert!(f.found.contains("fence (500 ms left)"), "{}", f.found);
    let standby = Lease {
        role: LeaseRole::Standby,
        other: "db2".into(),
        ..l.clone()
    };
    let f = failover(true, Some(&standby), now).unwrap();
    assert_eq!(f.status, Status::Pass);
    assert!(f.found.contains("db2 leads under epoch 4"), "{}", f.found);
    let alone = Lease {
        role: LeaseRole::Standby,
        ..l.clone()
    };
    assert_eq!(
        failover(true, Some(&alone), now).unwrap().status,
        Status::Warn
    );
    let past = Lease {
        deadline_ns: now,
        ..l
    };
    assert_eq!(
        failover(true, Some(&past), now).unwrap().status,
        Status::Warn,
        "a leader past its deadline leads no more"
    );
    assert_eq!(failover(true, None, now).unwrap().status, Status::Fail);
    assert!(failover(false, None, now).is_none());
}
