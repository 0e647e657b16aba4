//! Operations, with real processes: closed pipes, `ctl inject`'s skipped lines, help examples,
//! `--print-config --defaults`, and (in their own modules) `ctl metrics`, `ctl top` and the
//! systemd units.

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod docs;
mod metrics;
mod pipes;
mod top;
mod units;

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// Waits for `child` to exit, at most `secs` (then kills it and panics with `what`).
pub fn wait_exit(child: &mut Child, secs: u64, what: &str) -> ExitStatus {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("{what} did not exit within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
