//! Failover as the daemon sees it: it reads the lease the Redis bridge holds (the segment
//! `quantum.<instance>.lease`, [`quantum_ipc::lease`]) and never talks to Redis itself.
//!
//! - Its `[failover]` settings go into its counters ([`quantum_ipc::lease::settings`]), where
//!   both bridges read them: the lease holder its TTL, renewal and fence, the Binance bridge
//!   its recvWindow.
//! - Plans are read from the ingress rings only while the host may act
//!   ([`quantum_ipc::lease::Lease::may_send`]); on a standby they wait in the `plans` ring
//!   (the Redis bridge of a standby claims none), and a plan injected on `ctl` is refused
//!   `standby`. Everything else (positions, filters, ledger syncs, reports) is read in any
//!   role, so a standby stays warm.
//! - The first time the host may act under an epoch the engine has not led under, the daemon
//!   hands the engine [`quantum_core::Input::Lead`]: every symbol waits for the exchange's
//!   order history again, and the journaled `Leading` event asks the Binance bridge for it.
//!   The fence (TTL + recvWindow + clock error after the lease was acquired) has passed by
//!   then, so the history holds every order the other host could still land.

use quantum_ipc::lease::{boot_ns, settings, LeaseReader, LeaseRole};
use quantum_ipc::{CounterId, CountersWriter};

use crate::config::FailoverSection;
use crate::stats::Counters;

/// How often the lease is read (ns): bounds how late plans stop on a host that lost the lease
/// (the Binance bridge checks it again before every order) and how late a new leader starts.
const POLL_NS: u64 = 1_000_000;

/// Publishes the `[failover]` settings in a new counters segment, before anything else is in
/// it: a bridge that finds the symbol directory finds these too, so it never attaches to a
/// failover daemon believing failover is off.
pub fn publish_settings(w: &CountersWriter, cfg: &FailoverSection) -> anyhow::Result<()> {
    let enabled = w.register(settings::ENABLED)?;
    w.set(enabled, u64::from(cfg.enabled));
    if cfg.enabled {
        for (label, v) in [
            (settings::TTL_MS, cfg.ttl_ms),
            (settings::RENEW_MS, cfg.renew_ms),
            (settings::DRIFT_MS, cfg.drift_ms),
            (settings::RECV_WINDOW_MS, cfg.recv_window_ms),
            (settings::CLOCK_ERROR_MS, cfg.clock_error_ms),
        ] {
            let id = w.register(label)?;
            w.set(id, v);
        }
    }
    Ok(())
}

/// What the daemon does now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing changed.
    Same,
    /// The engine takes the lead under this epoch.
    Lead(u64),
}

/// The daemon's view of the lease.
pub struct Failover {
    reader: LeaseReader,
    /// The epoch the engine last took the lead under (from the journal at start).
    led: u64,
    /// Plans may be read.
    open: bool,
    next_ns: u64,
    /// `failover.role` (gauge: 1 while this host may act).
    role: CounterId,
    /// `failover.epoch` (gauge: the epoch the engine leads or last led under).
    epoch: CounterId,
}

impl Failover {
    /// With `[failover] enabled`: starts reading the lease ([`publish_settings`] published
    /// the settings already). `led`: the epoch of the journal's last lead. `None` when
    /// failover is off.
    pub fn start(
        instance: &str,
        cfg: &FailoverSection,
        counters: &Counters,
        led: u64,
    ) -> anyhow::Result<Option<Failover>> {
        if !cfg.enabled {
            return Ok(None);
        }
        let w = counters.writer();
        let role = w.register("failover.role")?;
        let epoch = w.register("failover.epoch")?;
        w.set(epoch, led);
        tracing::info!(
            ttl_ms = cfg.ttl_ms,
            renew_ms = cfg.renew_ms,
            recv_window_ms = cfg.recv_window_ms,
            led_epoch = led,
            "failover on: plans are read only while this host holds the lease (quantum bridge redis holds it)"
        );
        Ok(Some(Failover {
            reader: LeaseReader::new(instance),
            led,
            open: false,
            next_ns: 0,
            role,
            epoch,
        }))
    }

    /// Plans may be read now.
    pub fn plans_open(&self) -> bool {
        self.open
    }

    /// Reads the lease when due: opens or closes plan intake, and says when the engine must
    /// take the lead.
    pub fn poll(&mut self, counters: &Counters) -> Step {
        let now = boot_ns();
        if now < self.next_ns {
            return Step::Same;
        }
        self.next_ns = now + POLL_NS;
        let lease = self.reader.read();
        let open = lease.as_ref().is_some_and(|l| l.may_send(now));
        let w = counters.writer();
        if open != self.open {
            self.open = open;
            w.set(self.role, u64::from(open));
            match &lease {
                Some(l) if open => {
                    tracing::info!(epoch = l.epoch, host = %l.host, "this host leads: reading plans")
                }
                Some(l) => tracing::warn!(
                    role = l.role.as_str(),
                    epoch = l.epoch,
                    other = %l.other,
                    "this host does not lead (any more): plans wait for the leader"
                ),
                None => tracing::warn!(
                    "no lease published (is quantum bridge redis running?): plans wait"
                ),
            }
        }
        match lease {
            Some(l) if open && l.role == LeaseRole::Leader && l.epoch != self.led => {
                self.led = l.epoch;
                w.set(self.epoch, l.epoch);
                tracing::info!(
                    epoch = l.epoch,
                    "taking the lead: every symbol waits for the exchange's history of our orders before it trades"
                );
                Step::Lead(l.epoch)
            }
            _ => Step::Same,
        }
    }
}
