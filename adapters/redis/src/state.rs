//! What the bridge keeps in Redis about itself (new keys, not part of the legacy contract),
//! and where a (re)started bridge resumes reading the core's events.
//!
//! | key | type | content |
//! |---|---|---|
//! | [`state_key`] `quantum:bridge:<instance>` | hash | `epoch`, `next_seq`, `low_seq` (below) |
//! | [`ledger_key`] `quantum:bridge:<instance>:ledger` | hash | per leg (field: its label, `BTCUSDT`, `ETHUSDT:LONG`, `ETHUSDT:SHORT`), the text of the leg's ledger field the core has (what the bridge last wrote or handed over) |
//! | [`stats_key`] `quantum:bridge:<instance>:stats` | hash | the bridge's counters ([`crate::stats`]) |
//! | [`answered_key`] `quantum:bridge:<instance>:answered:<plan_id>` | string, TTL | `1`: the plan's result entry is written ([`crate::batch::RESULT_SCRIPT`]); expires after `--answered-ttl-s` |
//! | [`booked_key`] `quantum:bridge:<lease>:booked:<plan_id>` | string, TTL | failover: the plan's cumulative filled quantity booked into the shared ledger ([`crate::batch::BOOK_FILL_SCRIPT`]); expires after `--answered-ttl-s` |
//!
//! In failover mode ([`crate::config::Names`]) the state and stats hashes are the host's own,
//! `quantum:bridge:<instance>@<host>` and `quantum:bridge:<instance>@<host>:stats`, and the
//! keys both hosts share are named after the lease: `quantum:bridge:<lease>:ledger`,
//! `quantum:bridge:<lease>:answered:<plan_id>`, `quantum:bridge:<lease>:booked:<plan_id>` (and
//! the lease's own keys, [`crate::lease`]).
//!
//! `next_seq` is the first event not yet mirrored; `low_seq` is the first event whose effect
//! is not complete in Redis: the oldest executed plan's result held back for its order id
//! (`low_seq == next_seq` when none is held). Both are written in the same MULTI/EXEC as the
//! writes they account for, so Redis never holds a result entry without the state that says
//! it was written. A restarted bridge reads from `low_seq` and treats `low_seq .. next_seq` as
//! replay: it only rebuilds the held results from it and writes nothing twice.
//!
//! `epoch` names the daemon the numbers belong to (its counters segment's start time and pid).
//! Before the journal, a restarted daemon numbers its events from 0 again; after it, the
//! numbering continues (`base_seq` of the `results` ring is the journal's next number).

use std::collections::HashMap;

/// The bridge's state hash.
pub fn state_key(instance: &str) -> String {
    format!("quantum:bridge:{instance}")
}

/// Per leg, keyed by its label ([`quantum_core::PositionSide::label`]), the ledger text the
/// core has ([`crate::legacy::ledger_field`] names the leg's field of the position hash).
pub fn ledger_key(instance: &str) -> String {
    format!("quantum:bridge:{instance}:ledger")
}

/// The bridge's counters.
pub fn stats_key(instance: &str) -> String {
    format!("quantum:bridge:{instance}:stats")
}

/// Set with a plan's result entry: the plan has its entry (no second one is written).
pub fn answered_key(instance: &str, plan: quantum_core::PlanId) -> String {
    format!("quantum:bridge:{instance}:answered:{plan}")
}

/// Failover: the cumulative filled quantity of a plan's order booked into the shared ledger.
pub fn booked_key(shared: &str, plan: quantum_core::PlanId) -> String {
    format!("quantum:bridge:{shared}:booked:{plan}")
}

/// The daemon an event numbering belongs to: `<start ms>-<pid>` of its counters segment.
pub fn epoch(start_ms: u64, pid: u64) -> String {
    format!("{start_ms}-{pid}")
}

/// The state hash's fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Saved {
    /// The daemon the numbers belong to.
    pub epoch: String,
    /// First event not mirrored yet.
    pub next_seq: u64,
    /// First event whose effect is not complete (`<= next_seq`).
    pub low_seq: u64,
}

impl Saved {
    /// From `HGETALL`; `Ok(None)` when the hash does not exist.
    pub fn from_hash(h: &HashMap<String, String>) -> Result<Option<Saved>, String> {
        if h.is_empty() {
            return Ok(None);
        }
        let num = |k: &str| -> Result<u64, String> {
            h.get(k)
                .ok_or_else(|| format!("field {k} is missing"))?
                .parse()
                .map_err(|e| format!("field {k}: {e}"))
        };
        let s = Saved {
            epoch: h.get("epoch").cloned().ok_or("field epoch is missing")?,
            next_seq: num("next_seq")?,
            low_seq: num("low_seq")?,
        };
        if s.low_seq > s.next_seq {
            return Err(format!(
                "low_seq {} is past next_seq {}",
                s.low_seq, s.next_seq
            ));
        }
        Ok(Some(s))
    }

    /// The fields for HSET.
    pub fn fields(&self) -> [(&'static str, String); 3] {
        [
            ("epoch", self.epoch.clone()),
            ("next_seq", self.next_seq.to_string()),
            ("low_seq", self.low_seq.to_string()),
        ]
    }
}

/// Where the reader of `results` starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum From {
    /// The oldest event the ring holds (a first start: history before it is not mirrored).
    Oldest,
    /// This sequence number (older ones the ring no longer holds are backfilled).
    Seq(u64),
}

/// How a session resumes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resume {
    /// Where to start reading.
    pub from: From,
    /// Events before this were mirrored already: replay only.
    pub replay_until: u64,
    /// Events from here on are numbered by a daemon with no journal behind it (a first start,
    /// or a daemon that restarted its numbering): its ledger is whatever it was configured
    /// with, so the operators' `ledger_amount` values are offered to it again.
    pub fresh_core: bool,
    /// Why, for the log.
    pub why: &'static str,
}

/// Decides where to resume from what was saved, the daemon's epoch, and its `results` ring
/// (`base_seq`: the number of its first event; `ring_next`: of the next one).
pub fn resume(saved: Option<&Saved>, epoch: &str, base_seq: u64, ring_next: u64) -> Resume {
    let fresh = |why| Resume {
        from: From::Seq(base_seq),
        replay_until: 0,
        fresh_core: true,
        why,
    };
    let Some(s) = saved else {
        return Resume {
            from: From::Oldest,
            replay_until: 0,
            fresh_core: true,
            why: "first start on this Redis: from the oldest event the ring holds",
        };
    };
    let continue_from = |why| Resume {
        from: From::Seq(s.low_seq),
        replay_until: s.next_seq,
        fresh_core: false,
        why,
    };
    if s.epoch == epoch {
        if s.next_seq > ring_next {
            return fresh("the saved position is ahead of the daemon's events: starting over");
        }
        return continue_from("same daemon: resuming where the last bridge stopped");
    }
    if base_seq <= quantum_ipc::journal::FIRST_SEQ {
        return fresh("a new daemon with no history: its numbering starts over");
    }
    if s.next_seq > ring_next {
        return fresh("a new daemon whose numbering is behind the saved position: starting over");
    }
    continue_from("a new daemon continuing the numbering (journal): resuming")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(epoch: &str, next: u64, low: u64) -> Saved {
        Saved {
            epoch: epoch.into(),
            next_seq: next,
            low_seq: low,
        }
    }

    #[test]
    fn the_hash_reads_back() {
        let s = saved("1-2", 10, 7);
        let h: HashMap<String, String> = s
            .fields()
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        assert_eq!(Saved::from_hash(&h), Ok(Some(s)));
        assert_eq!(Saved::from_hash(&HashMap::new()), Ok(None));
        let mut bad = h.clone();
        bad.insert("low_seq".into(), "11".into());
        assert!(Saved::from_hash(&bad).unwrap_err().contains("past"));
        bad.remove("epoch");
        assert!(Saved::from_hash(&bad).unwrap_err().contains("epoch"));
    }

    #[test]
    fn resumes_from_the_low_mark_of_the_same_daemon() {
        let r = resume(Some(&saved("e", 100, 90)), "e", 0, 120);
        assert_eq!(
            (r.from, r.replay_until, r.fresh_core),
            (From::Seq(90), 100, false)
        );
        assert_eq!(resume(None, "e", 0, 120).from, From::Oldest);
    }

    #[test]
    fn a_new_daemon_without_a_journal_starts_over_and_one_with_it_continues() {
        let r = resume(Some(&saved("old", 100, 100)), "new", 0, 5);
        assert_eq!(
            (r.from, r.replay_until, r.fresh_core),
            (From::Seq(0), 0, true)
        );
        let r = resume(Some(&saved("old", 100, 95)), "new", 98, 130);
        assert_eq!(
            (r.from, r.replay_until, r.fresh_core),
            (From::Seq(95), 100, false)
        );
        let r = resume(Some(&saved("old", 100, 95)), "new", 40, 60);
        assert_eq!((r.from, r.fresh_core), (From::Seq(40), true));
        let r = resume(Some(&saved("e", 100, 95)), "e", 0, 60);
        assert!(r.fresh_core);
    }
}
