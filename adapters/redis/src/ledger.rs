//! The operators' ledger sync: `HSET quantum:position:<SYMBOL> ledger_amount <x>` becomes a
//! ledger set in the core; for a hedge-mode symbol each leg has its own field,
//! `ledger_amount_long` and `ledger_amount_short` ([`crate::legacy::ledger_field`]), and a set
//! of one is a ledger set of that leg only. A positive value in `ledger_amount_short` is read
//! as its negative, with a warning ([`crate::legacy::read_ledger_amount`]): a short is never
//! positive.
//!
//! The bridge writes the same fields itself (the core's ledger of each leg after every set and
//! fill, [`crate::batch::LEDGER_SCRIPT`]) and records, in its ledger hash
//! ([`crate::state::ledger_key`], one field per leg's label), the value the core has. A value
//! in the position hash that differs from it was written by someone else: an operator (or the
//! legacy ledger service), and is handed to the core. So the bridge's own writes never come
//! back as commands, whatever notifications they cause, and an operator's value written while
//! the bridge was away is still seen when it comes back. A value is handed over once: it stays
//! *pending* until the core's `LedgerSet` event for it comes back (then the script records it)
//! or the core refuses it.
//!
//! Nor do they cost a read: each write of the bridge to a position hash causes one keyspace
//! notification, and the session counts, per hash, the notifications its landed writes still
//! owe; those are skipped without reading the hash. Notifications of other writers are
//! coalesced: a burst of them costs one read of each leg of the hash's symbol. A credit can be
//! wrong only towards skipping (a ledger write the script declined still counts one): an
//! operator's value is then picked up by the periodic re-read
//! ([`crate::config::BridgeConfig::ledger_poll`]).
//!
//! When a daemon with no journal behind it starts (the bridge's first start on this Redis, or
//! a daemon that restarted its numbering), its ledger is only what it was configured with; the
//! values in the position hashes are then offered to it once, for each leg whose ledger it
//! has not set by then.
//!
//! In failover mode the position hashes are the shared ledger: each fill of ours is booked
//! there by its increase ([`crate::batch::BOOK_FILL_SCRIPT`], which keeps the ledger hash in
//! step, so a booking of either host is never taken for an operator's value), and only ledger
//! sets are written whole (fenced). A core whose host takes the lead asks for each leg's
//! value once no order of ours on it can fill, and is answered with it (a `LedgerBase`, see
//! [`crate::session`]).

use std::collections::{HashMap, HashSet};

use quantum_core::{PositionSide, Qty};
use redis::aio::MultiplexedConnection;

use crate::legacy;
use crate::state;

/// What the bridge knows about each leg's ledger sync (by symbol id).
#[derive(Debug, Default)]
pub struct Ledger {
    /// Text handed to the core and the amount it was read as, not yet back as a `LedgerSet`.
    pending: HashMap<u16, (String, Qty)>,
    /// Text the core refused (not offered again).
    refused: HashMap<u16, String>,
    /// Text that is not a decimal (reported once).
    invalid: HashMap<u16, String>,
    /// Legs whose ledger the core set in this session (not offered to a fresh core).
    touched: HashSet<u16>,
}

/// What a read of one leg found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// The leg's field of the position hash ([`legacy::ledger_field`]).
    pub current: Option<String>,
    /// What the bridge's ledger hash says the core has.
    pub synced: Option<String>,
}

/// What to do about one leg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sync {
    /// Nothing.
    Nothing,
    /// Hand this amount to the core.
    Set {
        /// The amount.
        amount: Qty,
        /// A `SHORT` leg's field held a positive amount, read as its negative (warn).
        negated: bool,
    },
    /// The text is not an amount (reported once per text).
    Invalid(String, String),
}

impl Ledger {
    /// Reads each leg's field of its position hash ([`legacy::ledger_field`]) and the value
    /// the ledger hash says the core has; `legs` are leg labels ([`PositionSide::label`]).
    pub async fn read(
        c: &mut MultiplexedConnection,
        instance: &str,
        legs: &[&str],
    ) -> redis::RedisResult<Vec<Seen>> {
        let mut p = redis::pipe();
        for leg in legs {
            let side = PositionSide::split_label(leg).1;
            p.cmd("HGET")
                .arg(legacy::position_key(leg))
                .arg(legacy::ledger_field(side));
            p.cmd("HGET").arg(state::ledger_key(instance)).arg(*leg);
        }
        let v: Vec<Option<String>> = p.query_async(c).await?;
        Ok(v.chunks(2)
            .map(|c| Seen {
                current: c[0].clone(),
                synced: c.get(1).cloned().flatten(),
            })
            .collect())
    }

    /// What `seen` means for leg `sym`, on `side`. `fresh_core`: the core's ledger comes from
    /// nowhere yet, so a value the bridge synced earlier is offered again.
    pub fn decide(&mut self, sym: u16, side: PositionSide, seen: &Seen, fresh_core: bool) -> Sync {
        let Some(cur) = seen.current.as_deref() else {
            return Sync::Nothing;
        };
        let offer = fresh_core && !self.touched.contains(&sym);
        if self.pending.get(&sym).map(|(t, _)| t.as_str()) == Some(cur)
            || (!offer && seen.synced.as_deref() == Some(cur))
            || self.refused.get(&sym).map(String::as_str) == Some(cur)
        {
            return Sync::Nothing;
        }
        match legacy::read_ledger_amount(side, cur) {
            Ok((amount, negated)) => {
                self.invalid.remove(&sym);
                self.pending.insert(sym, (cur.to_owned(), amount));
                Sync::Set { amount, negated }
            }
            Err(e) => {
                if self.invalid.get(&sym).map(String::as_str) == Some(cur) {
                    return Sync::Nothing;
                }
                self.invalid.insert(sym, cur.to_owned());
                Sync::Invalid(cur.to_owned(), e)
            }
        }
    }

    /// The core set `sym`'s ledger to `amount` (a `LedgerSet` event); true when that was the
    /// value this bridge handed it from the position hash (an operator's sync).
    pub fn applied(&mut self, sym: u16, amount: Qty) -> bool {
        self.touched.insert(sym);
        let done = self.pending.get(&sym).is_some_and(|(_, a)| *a == amount);
        if done {
            self.pending.remove(&sym);
        }
        done
    }

    /// The core changed `sym`'s ledger by a fill.
    pub fn filled(&mut self, sym: u16) {
        self.touched.insert(sym);
    }

    /// The core refused the ledger set of `sym`; the text handed over, if any.
    pub fn refused(&mut self, sym: u16) -> Option<String> {
        let (t, _) = self.pending.remove(&sym)?;
        self.refused.insert(sym, t.clone());
        Some(t)
    }

    /// Forgets what was handed to a daemon that has gone.
    pub fn new_session(&mut self) {
        *self = Ledger::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(cur: Option<&str>, synced: Option<&str>) -> Seen {
        Seen {
            current: cur.map(str::to_owned),
            synced: synced.map(str::to_owned),
        }
    }

    fn q(s: &str) -> Qty {
        s.parse().unwrap()
    }

    const B: PositionSide = PositionSide::Both;

    fn set(s: &str) -> Sync {
        Sync::Set {
            amount: q(s),
            negated: false,
        }
    }

    #[test]
    fn an_operator_value_is_handed_over_once() {
        let mut l = Ledger::default();
        assert_eq!(l.decide(0, B, &seen(None, None), false), Sync::Nothing);
        assert_eq!(
            l.decide(0, B, &seen(Some("0.062"), None), false),
            set("0.062")
        );
        // Pending: not again, however often it is read.
        assert_eq!(
            l.decide(0, B, &seen(Some("0.062"), None), false),
            Sync::Nothing
        );
        l.applied(0, q("0.062"));
        // The script recorded it: the bridge's own value is no command.
        assert_eq!(
            l.decide(0, B, &seen(Some("0.062"), Some("0.062")), false),
            Sync::Nothing
        );
        // The same amount written differently by an operator is handed over.
        assert_eq!(
            l.decide(0, B, &seen(Some("0.0620"), Some("0.062")), false),
            set("0.062")
        );
    }

    #[test]
    fn refusals_and_bad_text_are_not_repeated() {
        let mut l = Ledger::default();
        assert!(
            matches!(l.decide(1, B, &seen(Some("abc"), None), false), Sync::Invalid(t, _) if t == "abc")
        );
        assert_eq!(
            l.decide(1, B, &seen(Some("abc"), None), false),
            Sync::Nothing
        );
        assert_eq!(l.decide(1, B, &seen(Some("-1"), None), false), set("-1"));
        assert_eq!(l.refused(1).as_deref(), Some("-1"));
        assert_eq!(
            l.decide(1, B, &seen(Some("-1"), None), false),
            Sync::Nothing
        );
        assert_eq!(l.decide(1, B, &seen(Some("2"), None), false), set("2"));
    }

    #[test]
    fn a_fresh_core_is_offered_the_synced_value_unless_it_set_its_own() {
        let mut l = Ledger::default();
        let s = seen(Some("0.016"), Some("0.016"));
        assert_eq!(l.decide(0, B, &s, true), set("0.016"));
        l.applied(0, q("0.016"));
        assert_eq!(l.decide(0, B, &s, true), Sync::Nothing);
        let mut l = Ledger::default();
        l.filled(0);
        assert_eq!(l.decide(0, B, &s, true), Sync::Nothing);
    }

    #[test]
    fn a_short_legs_positive_value_reads_as_its_negative() {
        let mut l = Ledger::default();
        let short = PositionSide::Short;
        assert_eq!(
            l.decide(2, short, &seen(Some("0.5"), None), false),
            Sync::Set {
                amount: q("-0.5"),
                negated: true
            }
        );
        assert_eq!(
            l.decide(2, short, &seen(Some("0.5"), None), false),
            Sync::Nothing
        );
        assert!(
            l.applied(2, q("-0.5")),
            "the core's set is the one handed over"
        );
        assert_eq!(
            l.decide(2, short, &seen(Some("-0.25"), Some("-0.5")), false),
            set("-0.25")
        );
        // A long leg's (or a one-way symbol's) sign is the operator's.
        assert_eq!(
            l.decide(3, PositionSide::Long, &seen(Some("0.5"), None), false),
            set("0.5")
        );
        assert_eq!(
            l.decide(4, B, &seen(Some("-0.5"), None), false),
            set("-0.5")
        );
    }
}
