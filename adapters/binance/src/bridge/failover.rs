//! Failover mode, as the daemon's counters say when the bridge attaches.
//!
//! The daemon publishes its `[failover]` settings as gauges in `quantum.<instance>.counters`
//! (labels in [`quantum_ipc::lease::settings`]). When `failover.enabled` is 1 the bridge
//! fences every order by the lease ([`crate::futures::fence`]) and signs every request with
//! `recvWindow` = min(its configured recvWindow, `failover.recv_window_ms`): the takeover
//! fence the new leader waits out counts on no order of the old one living longer than that.
//! Absent or 0: failover is off and nothing changes.

use quantum_ipc::lease::settings;
use quantum_ipc::CountersReader;

/// The failover settings the bridge uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failover {
    /// `failover.recv_window_ms`: the longest recvWindow an order may be signed with.
    pub recv_window_ms: u64,
}

impl Failover {
    /// Reads `instance`'s counters: `None` when failover is off (the gauge absent or 0).
    pub fn read(instance: &str) -> anyhow::Result<Option<Failover>> {
        let r = CountersReader::open(instance).map_err(|e| {
            anyhow::Error::new(e).context(format!(
                "cannot read the counters of instance {instance} (its failover settings)"
            ))
        })?;
        Failover::from_gauges(instance, |label| r.get(label))
    }

    /// The settings from gauge values (`get` reads one by label).
    pub fn from_gauges(
        instance: &str,
        get: impl Fn(&str) -> Option<u64>,
    ) -> anyhow::Result<Option<Failover>> {
        if get(settings::ENABLED).unwrap_or(0) == 0 {
            return Ok(None);
        }
        let recv_window_ms = get(settings::RECV_WINDOW_MS)
            .filter(|v| *v > 0)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "failover is on in instance {instance} ({} = 1) but its counters give no {} \
                     (or 0): the daemon must publish its [failover] recv_window_ms",
                    settings::ENABLED,
                    settings::RECV_WINDOW_MS
                )
            })?;
        Ok(Some(Failover { recv_window_ms }))
    }

    /// The recvWindow orders are signed with: `configured`, capped by failover's.
    pub fn recv_window(f: Option<&Failover>, configured: u64) -> u64 {
        f.map_or(configured, |f| configured.min(f.recv_window_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn off_unless_enabled_and_the_window_is_capped() {
        let gauges = |pairs: &[(&str, u64)]| -> HashMap<String, u64> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
        };
        let read = |g: HashMap<String, u64>| Failover::from_gauges("x", |l| g.get(l).copied());
        assert_eq!(read(gauges(&[])).unwrap(), None);
        assert_eq!(
            read(gauges(&[
                (settings::ENABLED, 0),
                (settings::RECV_WINDOW_MS, 500)
            ]))
            .unwrap(),
            None
        );
        let on = read(gauges(&[
            (settings::ENABLED, 1),
            (settings::RECV_WINDOW_MS, 800),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(on.recv_window_ms, 800);
        assert_eq!(Failover::recv_window(Some(&on), 5000), 800);
        assert_eq!(Failover::recv_window(Some(&on), 300), 300);
        assert_eq!(Failover::recv_window(None, 5000), 5000);
        let e = read(gauges(&[(settings::ENABLED, 1)]))
            .unwrap_err()
            .to_string();
        assert!(e.contains(settings::RECV_WINDOW_MS), "{e}");
    }
}
