//! Host tuning of `quantum run` (`[host]` in the configuration), applied on the main thread
//! before the daemon starts any other thread, so that every thread inherits it:
//!
//! 1. `host.cpus`: the affinity mask of the process. The runner reads this mask when it places
//!    the engine threads ([`quantum_core::runner::Placement`]): with more CPUs in the list than
//!    engine threads, they are pinned to the last CPUs of the list and the first is left to the
//!    I/O thread; otherwise every thread runs unpinned within the list.
//! 2. `host.sched_fifo`: the SCHED_FIFO real-time policy at that priority. A busy-spinning
//!    FIFO thread owns its CPU: give it isolated CPUs (`quantum ctl doctor` checks them); the
//!    kernel's RT throttling (`kernel.sched_rt_runtime_us`) is the only thing that then lets
//!    anything else run there.
//! 3. `host.mlockall`: every current and future page locked in memory (MCL_CURRENT |
//!    MCL_FUTURE), so the rings, tables and stacks mapped afterwards are faulted in when they are
//!    mapped and never swapped out or faulted lazily on the plan path.
//!
//! Each is refused with a sentence naming its fix when the process lacks the right (memlock
//! limit, CAP_SYS_NICE / RLIMIT_RTPRIO, a CPU outside the allowed set): an operator who asked
//! for a tuning must not get a daemon silently running without it.
//!
//! The syscalls live in [`sys`], the only place of this crate allowed `unsafe`; `quantum ctl
//! doctor` reads `/dev/shm`'s free space through it too.

use anyhow::{bail, Context, Result};

use super::config::HostSection;

/// The checked `[host]` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostPlan {
    /// Lock all memory.
    pub mlockall: bool,
    /// SCHED_FIFO priority (1..=99), if any.
    pub sched_fifo: Option<u8>,
    /// The CPUs the daemon's threads may use, ascending; `None`: leave the mask alone.
    pub cpus: Option<Vec<usize>>,
}

impl HostPlan {
    /// Checks the section; errors name the key.
    pub fn from_config(h: &HostSection) -> Result<HostPlan> {
        let sched_fifo = match h.sched_fifo {
            0 => None,
            p @ 1..=99 => Some(p),
            p => bail!("host.sched_fifo {p} must be 0 (off) or a priority from 1 to 99"),
        };
        let cpus = if h.cpus.trim().is_empty() {
            None
        } else {
            Some(parse_cpu_list(&h.cpus).with_context(|| format!("host.cpus {:?}", h.cpus))?)
        };
        Ok(HostPlan {
            mlockall: h.mlockall,
            sched_fifo,
            cpus,
        })
    }

    /// Applies the plan to the calling thread (and so to every thread it starts afterwards);
    /// returns one line per change for the log.
    pub fn apply(&self) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        if let Some(cpus) = &self.cpus {
            let allowed = sys::allowed_cpus().context("cannot read the CPU affinity mask")?;
            if let Some(c) = cpus.iter().find(|c| !allowed.contains(c)) {
                bail!(
                    "host.cpus: CPU {c} is not available to this process (allowed: {}); \
                     check the CPU exists and the unit's CPUAffinity= includes it",
                    format_cpu_list(&allowed)
                );
            }
            sys::set_cpus(cpus).with_context(|| {
                format!(
                    "host.cpus: cannot set the affinity to {}",
                    format_cpu_list(cpus)
                )
            })?;
            notes.push(format!(
                "threads confined to CPUs {}",
                format_cpu_list(cpus)
            ));
        }
        if let Some(p) = self.sched_fifo {
            sys::set_fifo(i32::from(p)).with_context(|| {
                format!(
                    "host.sched_fifo {p}: SCHED_FIFO refused (needs CAP_SYS_NICE, or \
                     LimitRTPRIO={p} in the systemd unit / rtprio in limits.conf)"
                )
            })?;
            notes.push(format!("SCHED_FIFO priority {p}"));
        }
        if self.mlockall {
            sys::mlockall().context(
                "host.mlockall: mlockall refused (needs LimitMEMLOCK=infinity in the systemd \
                 unit, memlock unlimited in limits.conf, or CAP_IPC_LOCK)",
            )?;
            notes.push("memory locked (current and future mappings)".into());
        }
        Ok(notes)
    }
}

/// Parses a CPU list as the kernel writes them (`0-3,8,10-11`): ascending, without repeats.
pub fn parse_cpu_list(text: &str) -> Result<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').map(str::trim) {
        if part.is_empty() {
            bail!("empty entry in CPU list {text:?}");
        }
        let num = |s: &str| -> Result<usize> {
            s.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n < MAX_CPUS)
                .with_context(|| format!("{s:?} is not a CPU number below {MAX_CPUS}"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    bail!("CPU range {part:?} runs backwards");
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(num(part)?),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// Writes a CPU list compactly (`0-3,8`), the form [`parse_cpu_list`] reads.
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// CPU numbers a `cpu_set_t` can hold.
const MAX_CPUS: usize = 1024;

/// The syscalls: small safe wrappers, each `unsafe` block with its reason.
#[allow(unsafe_code)]
pub mod sys {
    use std::ffi::CString;
    use std::io;
    use std::path::Path;

    fn check(rc: libc::c_int) -> io::Result<()> {
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// mlockall(MCL_CURRENT | MCL_FUTURE).
    pub fn mlockall() -> io::Result<()> {
        // SAFETY: mlockall takes flags only and touches no memory of ours.
        check(unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) })
    }

    /// SCHED_FIFO at `priority` for the calling thread (inherited by threads it starts).
    pub fn set_fifo(priority: i32) -> io::Result<()> {
        let param = libc::sched_param {
            sched_priority: priority,
        };
        // SAFETY: `param` is a valid sched_param that outlives the call; pid 0 is the caller.
        check(unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) })
    }

    /// The CPUs the calling thread may run on.
    pub fn allowed_cpus() -> io::Result<Vec<usize>> {
        // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the caller.
        check(unsafe {
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set)
        })?;
        Ok((0..super::MAX_CPUS)
            // SAFETY: every `c` is below MAX_CPUS, the bit count of a cpu_set_t.
            .filter(|c| unsafe { libc::CPU_ISSET(*c, &set) })
            .collect())
    }

    /// Confines the calling thread (and threads it starts) to `cpus` (each below 1024).
    pub fn set_cpus(cpus: &[usize]) -> io::Result<()> {
        // SAFETY: as in `allowed_cpus`.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for c in cpus {
            if *c >= super::MAX_CPUS {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "CPU number too large",
                ));
            }
            // SAFETY: `c` is below MAX_CPUS, the bit count of a cpu_set_t (checked above).
            unsafe { libc::CPU_SET(*c, &mut set) };
        }
        // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the caller.
        check(unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) })
    }

    /// Size and space free for unprivileged users of the filesystem holding `path`, in bytes.
    pub fn fs_space(path: &Path) -> io::Result<(u64, u64)> {
        use std::os::unix::ffi::OsStrExt;
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
        // SAFETY: statvfs is plain integers; all zeroes is a valid value to overwrite.
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a NUL-terminated path and `s` a valid statvfs, both live for the call.
        check(unsafe { libc::statvfs(c.as_ptr(), &mut s) })?;
        let frsize = s.f_frsize as u64;
        Ok((s.f_blocks as u64 * frsize, s.f_bavail as u64 * frsize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_read_and_write_the_kernel_form() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11").unwrap(),
            vec![0, 1, 2, 3, 8, 10, 11]
        );
        assert_eq!(parse_cpu_list(" 3, 2,2 ").unwrap(), vec![2, 3]);
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(format_cpu_list(&[5]), "5");
        for bad in ["", "1,,2", "3-1", "x", "1-", "4096"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_section_is_checked_and_names_its_keys() {
        let mut h = HostSection::default();
        assert_eq!(HostPlan::from_config(&h).unwrap(), HostPlan::default());
        h.sched_fifo = 100;
        let e = HostPlan::from_config(&h).unwrap_err().to_string();
        assert!(e.contains("host.sched_fifo"), "{e}");
        h.sched_fifo = 10;
        h.cpus = "1-0".into();
        let e = format!("{:#}", HostPlan::from_config(&h).unwrap_err());
        assert!(e.contains("host.cpus") && e.contains("backwards"), "{e}");
        h.cpus = "0".into();
        h.mlockall = true;
        let p = HostPlan::from_config(&h).unwrap();
        assert_eq!(
            p,
            HostPlan {
                mlockall: true,
                sched_fifo: Some(10),
                cpus: Some(vec![0])
            }
        );
    }

    #[test]
    fn the_affinity_mask_is_read_and_a_cpu_outside_it_refused() {
        // In a thread of its own: the mask it sets must not leak into other tests.
        std::thread::spawn(|| {
            let allowed = sys::allowed_cpus().unwrap();
            assert!(!allowed.is_empty());
            let first = allowed[0];
            let plan = HostPlan {
                cpus: Some(vec![first]),
                ..HostPlan::default()
            };
            let notes = plan.apply().unwrap();
            assert_eq!(sys::allowed_cpus().unwrap(), vec![first], "{notes:?}");
            let outside = HostPlan {
                cpus: Some(vec![MAX_CPUS - 1]),
                ..HostPlan::default()
            };
            let e = format!("{:#}", outside.apply().unwrap_err());
            assert!(e.contains("not available"), "{e}");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn filesystem_space_is_read() {
        let (size, free) = sys::fs_space(std::path::Path::new("/")).unwrap();
        assert!(size > 0 && free <= size);
        assert!(sys::fs_space(std::path::Path::new("/no/such/dir")).is_err());
    }
}
