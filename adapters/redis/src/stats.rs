//! The bridge's counters: totals since the process started, shared by its tasks and threads.
//!
//! They are logged at info every `--stats-ms` (the ones that are not zero) and written, with the
//! same names, to the hash [`crate::state::stats_key`] (`HGETALL quantum:bridge:<instance>:stats`)
//! so an operator with `redis-cli` sees them next to the streams they describe. The hash also
//! has `answer_us_p50`, `answer_us_p99` and `answer_us_max`: from reading a plan entry to
//! seeing the core's answer on `results` (when the entry is acknowledged), over the current
//! session. The daemon's counters segment stays the daemon's own; the bridge's latency of the
//! legacy path (stream entry → permit keys → result entry) is in a segment of its own,
//! `quantum.<instance>.latency-redis` ([`crate::legs`]), not in these counts.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Every counter of the bridge.
        #[derive(Debug, Default)]
        pub struct Stats {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        impl Stats {
            /// `(name, value)` of every counter, in declaration order.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                // Relaxed: each value is its own message; nothing is published through it.
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters! {
    /// Plan entries read from the stream (new and redelivered).
    plans_read,
    /// Entries read again from the pending list (this bridge's own or a dead consumer's).
    plans_redelivered,
    /// Plans pushed into the core.
    plans_pushed,
    /// Entries acknowledged after the core answered (accepted, or a result at once).
    plans_acked,
    /// Redelivered entries the core had already answered: acknowledged without a second push.
    plans_answered_before,
    /// Entries that could not be read, moved to the dead-letter stream.
    plans_dlq,
    /// Optional plan fields that could not be read and were set aside (the plan went on; an
    /// unreadable `timestamp` is replaced by the entry id's time).
    plan_fields_unreadable,
    /// Pending entries whose stream entry was trimmed away before the core saw them.
    pending_trimmed,
    /// Times the `plans` ring was full (the record waited).
    plans_ring_full,
    /// Events read from `results` (and from backfill).
    events,
    /// Event records that could not be decoded.
    events_invalid,
    /// Events the ring no longer held, read from the daemon's journal instead.
    backfilled_events,
    /// Events the ring no longer held and the journal no longer kept (pruned).
    missed_events,
    /// Backfill reads that failed and were tried again.
    backfill_retries,
    /// Result entries written.
    results_written,
    /// Answers for a plan that had its result entry already (answered again after a restart
    /// or a redelivery): not written a second time.
    results_repeated,
    /// Result entries of executed plans written without the order id (the wait passed).
    results_without_order_id,
    /// Permits mirrored to the legacy keys.
    permits_mirrored,
    /// Permits mirrored with no time left (not written).
    permits_expired_unmirrored,
    /// Position hashes updated from the core's book.
    positions_mirrored,
    /// Operator ledger values (`ledger_amount`, or a hedge leg's `ledger_amount_long` /
    /// `ledger_amount_short`) handed to the core.
    ledger_syncs,
    /// Ledger values that are not decimals.
    ledger_invalid,
    /// Positive values in a `SHORT` leg's `ledger_amount_short`, read as their negative (a
    /// short is never positive).
    ledger_short_negated,
    /// Ledger syncs the core refused.
    ledger_refused,
    /// Position hashes read for a ledger sync (by notification, re-read or start).
    ledger_reads,
    /// Keyspace notifications of the bridge's own position writes, skipped without a read.
    own_notes_skipped,
    /// Legacy permits handed to the core.
    permits_forwarded,
    /// Legacy permits held because their plan had not arrived yet.
    permits_held,
    /// Held legacy permits dropped because their TTL passed first.
    permits_expired,
    /// Legacy permits dropped because the hold was full.
    permits_hold_full,
    /// Legacy permit keys whose JSON could not be read.
    permits_invalid,
    /// Legacy permits the core refused.
    permits_refused,
    /// Permit pairs deleted after the core consumed them (legacy consume).
    permits_consumed,
    /// Writes to Redis (MULTI/EXEC batches) that succeeded.
    flushes,
    /// Redis commands that failed (each retried with back-off).
    redis_errors,
    /// Times the connection to Redis was (re)established.
    redis_connects,
    /// Sessions with a core daemon (1 + daemon restarts seen).
    sessions,
    /// Failover: result and ledger writes refused by the fence (another host's epoch).
    writes_fenced,
    /// Failover: results of this host's core not written because this host did not lead
    /// (the leader writes them; their entries stay pending for it).
    results_not_leading,
    /// Failover: entries read while this host could not act, left pending (not pushed).
    plans_not_acting,
    /// Failover: times this host stepped down (lost the lease, fenced, Redis unreachable).
    lease_stepped_down,
    /// Failover: the last takeover this host measured, from the old lease's end to its first
    /// result entry (ms; a value, not a count).
    takeover_ms,
    /// Failover: fills booked into the shared ledger by this bridge.
    fills_booked,
    /// Failover: fills the shared ledger had booked already (seen again, or by the other
    /// host first).
    fills_repeated,
    /// Failover: fills not booked because the leg's ledger field was not an amount.
    fills_unbooked,
    /// Failover: ledgers handed to the core as the base it asked for after a lead.
    ledger_bases,
    /// Live latency ([`crate::legs`]): wall-clock spans (from a stream entry's id or a plan's
    /// `timestamp` to a write) that came out negative, recorded as 0: this host's clock is
    /// behind Redis's (or the producer's), or was stepped back.
    latency_negative_spans,
}

impl Stats {
    /// Adds `n` to `c`.
    #[inline]
    pub fn add(c: &AtomicU64, n: u64) {
        // Relaxed: see `snapshot`.
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets the value `c` (a gauge such as `takeover_ms`) to `v`.
    #[inline]
    pub fn set(c: &AtomicU64, v: u64) {
        // Relaxed: see `snapshot`.
        c.store(v, Ordering::Relaxed);
    }

    /// Adds one to `c`.
    #[inline]
    pub fn inc(c: &AtomicU64) {
        Self::add(c, 1);
    }

    /// `name=value` for every counter that is not zero.
    pub fn line(&self) -> String {
        let parts: Vec<String> = self
            .snapshot()
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if parts.is_empty() {
            "nothing yet".into()
        } else {
            parts.join(" ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_and_summed() {
        let s = Stats::default();
        assert_eq!(s.line(), "nothing yet");
        Stats::inc(&s.plans_read);
        Stats::add(&s.plans_dlq, 2);
        assert_eq!(s.line(), "plans_read=1 plans_dlq=2");
        let snap = s.snapshot();
        assert_eq!(snap[0], ("plans_read", 1));
        assert!(snap.iter().any(|(k, _)| *k == "sessions"));
    }
}
