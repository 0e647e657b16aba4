//! Child processes of a test run, their logs, and where the `quantum` binary is.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use quantum_ipc::{Broadcast, CountersReader, RingSpec};

/// A child process and what it was started with.
pub struct Proc {
    pub child: Child,
    /// The crash point it was armed with (`QUANTUM_FAILPOINT`), if any.
    pub failpoint: Option<String>,
}

impl Proc {
    /// A child started without a crash point.
    pub fn new(child: Child) -> Proc {
        Proc {
            child,
            failpoint: None,
        }
    }

    /// Whether it has exited (a crash point fired, or it failed).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// `kill -9` and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `sig` (SIGSTOP, SIGCONT, SIGTERM).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with a pid we spawned (and have not reaped) and a valid signal.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// SIGTERM, then SIGKILL when it has not exited within 15 s.
    pub fn term(&mut self) {
        self.signal(libc::SIGTERM);
        let end = Instant::now() + Duration::from_secs(15);
        while Instant::now() < end {
            if self.exited() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }
}

/// Creates the log file `name` in `out`.
pub fn log_file(out: &Path, name: &str) -> Result<File> {
    File::create(out.join(name)).with_context(|| format!("cannot create {name}"))
}

/// The `quantum` binary: `given`, or the one next to this test's binary.
pub fn quantum_binary(given: Option<&Path>) -> Result<PathBuf> {
    let quantum = match given {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()?
            .parent()
            .ok_or_else(|| anyhow!("no directory for this binary"))?
            .join("quantum"),
    };
    if !quantum.exists() {
        bail!(
            "{} not found: build it first (cargo build -p quantum)",
            quantum.display()
        );
    }
    Ok(quantum)
}

/// Empties (or makes) the output directory.
pub fn fresh_dir(out: &Path) -> Result<()> {
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("cannot empty {}", out.display()))?;
    }
    std::fs::create_dir_all(out)?;
    Ok(())
}

/// Whether `instance`'s daemon has finished recovering: its counters' owner lives and its
/// results ring exists.
pub fn daemon_ready(instance: &str) -> bool {
    CountersReader::open(instance).is_ok_and(|c| c.owner_alive())
        && Broadcast::open(&RingSpec::new(instance, "results", 0)).is_ok()
}

/// `k v, k v, …`.
pub fn join<K: std::fmt::Display>(m: &BTreeMap<K, u32>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
