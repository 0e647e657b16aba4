//! Whether the daemon may trust its journal, or must first ask the exchange which plans it
//! ordered.
//!
//! The client order id is derived from the plan id, so the exchange records every plan we
//! ordered. A start that cannot trust its own memory makes every symbol wait for the Binance
//! bridge's report of the account's orders over the dedupe horizon
//! ([`quantum_core::Engine::require_history`]) before any plan of it may execute. With
//! `auto` that is a start whose journal holds nothing (a new host, a lost disk, another
//! directory) or whose unsynced tail may be gone: `journal.fsync` off and the host restarted
//! since the last start (the page cache, and with it the tail, did not survive).

use std::path::Path;

use anyhow::{Context, Result};

/// `journal.recover_from_exchange`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeRecovery {
    /// When the journal cannot be trusted.
    Auto,
    /// At every start.
    Always,
    /// Never: a core whose positions are fed by hand, with no exchange adapter.
    Never,
}

impl std::str::FromStr for ExchangeRecovery {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "auto" => Ok(ExchangeRecovery::Auto),
            "always" => Ok(ExchangeRecovery::Always),
            "never" => Ok(ExchangeRecovery::Never),
            other => Err(format!("{other:?} is not auto, always or never")),
        }
    }
}

/// The file in the journal directory that holds the boot id of the host's last start.
const BOOT_FILE: &str = "boot-id";

/// This boot of the host (Linux), `None` where the kernel does not say.
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Why this start must recover from the exchange, or `None` when the journal is trusted.
/// Records this boot in `dir` for the next start.
pub fn untrusted(
    mode: ExchangeRecovery,
    journal_empty: bool,
    fsync: bool,
    dir: &Path,
) -> Result<Option<&'static str>> {
    let path = dir.join(BOOT_FILE);
    let now = boot_id();
    let before = std::fs::read_to_string(&path)
        .ok()
        .map(|s| s.trim().to_owned());
    if let Some(b) = &now {
        let tmp = dir.join(format!("{BOOT_FILE}.tmp"));
        std::fs::write(&tmp, b)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(match mode {
        ExchangeRecovery::Never => None,
        ExchangeRecovery::Always => Some("asked for (journal.recover_from_exchange = always)"),
        ExchangeRecovery::Auto if journal_empty => Some("the journal holds no event (a new host, a lost disk or another journal directory)"),
        ExchangeRecovery::Auto if !fsync && before.is_some() && before != now => Some(
            "the host restarted since the last start and journal.fsync is off: the journal's unsynced tail may be lost",
        ),
        ExchangeRecovery::Auto => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_trusts_a_journal_with_events_on_the_same_boot() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let auto = ExchangeRecovery::Auto;
        assert!(untrusted(auto, true, false, d).unwrap().is_some());
        assert_eq!(untrusted(auto, false, false, d).unwrap(), None);
        assert!(untrusted(ExchangeRecovery::Always, false, false, d)
            .unwrap()
            .is_some());
        assert_eq!(
            untrusted(ExchangeRecovery::Never, true, false, d).unwrap(),
            None
        );
    }

    #[test]
    fn auto_distrusts_an_unsynced_journal_after_a_host_restart() {
        if boot_id().is_none() {
            eprintln!("SKIPPED: no /proc/sys/kernel/random/boot_id");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join(BOOT_FILE), "another-boot").unwrap();
        let why = untrusted(ExchangeRecovery::Auto, false, false, d).unwrap();
        assert!(why.is_some_and(|w| w.contains("restarted")));
        // The file now holds this boot: the next start trusts the journal.
        assert_eq!(
            untrusted(ExchangeRecovery::Auto, false, false, d).unwrap(),
            None
        );
        // With fsync every published event survived the restart.
        std::fs::write(d.join(BOOT_FILE), "another-boot").unwrap();
        assert_eq!(
            untrusted(ExchangeRecovery::Auto, false, true, d).unwrap(),
            None
        );
    }

    #[test]
    fn modes_parse_and_say_what_is_expected() {
        assert_eq!("always".parse(), Ok(ExchangeRecovery::Always));
        assert!("sometimes"
            .parse::<ExchangeRecovery>()
            .unwrap_err()
            .contains("auto, always or never"));
    }
}
