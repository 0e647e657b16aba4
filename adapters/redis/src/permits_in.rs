//! `--permits-from redis`: the legacy Governor's and P3.3's permits, read from their keys and
//! handed to the core, so the core replaces the legacy Apply layer alone.
//!
//! A daemon with `engine.permits = "external"` issues an outside permit only into the table of
//! a plan that waits for it (it refuses one for any other plan, `not_waiting`). So the bridge
//! hands a permit over once it has seen the plan's `PlanAccepted`; a permit that comes first
//! (the legacy Governor often writes before the plan reaches the core) is *held*, at most
//! `--max-held-permits`, until its plan comes or its TTL passes (then dropped, counted and
//! logged). When a plan is accepted the bridge also reads both keys, which covers permits
//! written while it was away or whose notification was lost.
//!
//! The time a permit has left is the key's own (`PTTL`); a key without one falls back to the
//! JSON's `created_at` + `ttl`, and then to the daemon's default TTL. A P3.3 allow must name
//! the side to close: its `side` field (new here), or the sign of `context.exchange_amt`, or
//! the last position the bridge saw from the core; without one the core denies it.
//!
//! Once the core has consumed both permits (its `OrderIntent`), the bridge deletes both keys,
//! as the legacy Apply layer's consume did. The bridge never writes these keys otherwise: in
//! this mode the legacy issuers own them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use quantum_core::engine::ExternalPermit;
use quantum_core::wire::input_out;
use quantum_core::{Input, PlanId, Qty, Side, SymbolId};
use quantum_ipc::wire::Message;
use redis::aio::MultiplexedConnection;

use crate::legacy::{self, LegacyGovPermit, LegacyP33Permit, PermitKind};

/// A legacy permit as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Legacy {
    /// The Governor's.
    Gov(LegacyGovPermit),
    /// P3.3's.
    P33(LegacyP33Permit),
}

impl Legacy {
    fn kind(&self) -> PermitKind {
        match self {
            Legacy::Gov(_) => PermitKind::Gov,
            Legacy::P33(_) => PermitKind::P33,
        }
    }
}

/// A permit read from its key, with when it expires (`None`: the daemon's default TTL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The permit.
    pub permit: Legacy,
    /// When it expires.
    pub expires: Option<Instant>,
}

/// Reads the permit of `kind` for `plan`: `Ok(None)` when the key is absent; the inner error
/// says why its JSON cannot be read.
pub async fn fetch(
    c: &mut MultiplexedConnection,
    kind: PermitKind,
    plan: PlanId,
    now: Instant,
    now_ms: u64,
) -> redis::RedisResult<Option<Result<Found, String>>> {
    let key = legacy::permit_key_of(kind, plan);
    let (json, pttl): (Option<String>, i64) = redis::pipe()
        .cmd("GET")
        .arg(&key)
        .cmd("PTTL")
        .arg(&key)
        .query_async(c)
        .await?;
    let Some(json) = json else {
        return Ok(None);
    };
    Ok(Some(read(kind, &json, pttl, now, now_ms)))
}

/// A permit's JSON and `PTTL` as a [`Found`].
pub fn read(
    kind: PermitKind,
    json: &str,
    pttl: i64,
    now: Instant,
    now_ms: u64,
) -> Result<Found, String> {
    let (permit, created, ttl) = match kind {
        PermitKind::Gov => {
            let p = legacy::parse_gov_permit(json)?;
            let (c, t) = (p.created_at_ms, p.ttl_ms);
            (Legacy::Gov(p), c, t)
        }
        PermitKind::P33 => {
            let p = legacy::parse_p33_permit(json)?;
            let (c, t) = (p.created_at_ms, p.ttl_ms);
            (Legacy::P33(p), c, t)
        }
    };
    let left_ms = if pttl > 0 {
        Some(pttl as u64)
    } else {
        ttl.map(|t| match created {
            Some(c) => (c + t).saturating_sub(now_ms),
            None => t,
        })
    };
    Ok(Found {
        permit,
        expires: left_ms.map(|ms| now + Duration::from_millis(ms)),
    })
}

/// A plan accepted by the core and not yet ended.
#[derive(Clone, Copy, Debug)]
struct Waiting {
    symbol: SymbolId,
    sent: [bool; 2],
}

fn slot(kind: PermitKind) -> usize {
    match kind {
        PermitKind::Gov => 0,
        PermitKind::P33 => 1,
    }
}

/// What to do with a permit read from its key.
#[derive(Debug, PartialEq, Eq)]
pub enum Take {
    /// Hand this record to the core.
    Forward(Message),
    /// Held for its plan.
    Held,
    /// Already handed over for this plan: nothing to do.
    Again,
    /// Its time had passed.
    Expired,
    /// The hold is full: dropped.
    Full,
}

/// Plans waiting for outside permits, and permits waiting for their plan.
#[derive(Debug)]
pub struct PermitsIn {
    waiting: HashMap<PlanId, Waiting>,
    held: HashMap<PlanId, [Option<Found>; 2]>,
    held_count: usize,
    max_held: usize,
    /// The exchange position last seen per symbol (the side of an allow that names none).
    positions: HashMap<SymbolId, Qty>,
}

/// How long a permit with no TTL is held for a plan that has not come (the legacy TTL).
const HOLD_WITHOUT_TTL: Duration = Duration::from_secs(15);

/// Plans remembered as waiting, at most (the core's own table is smaller).
const MAX_WAITING: usize = 1 << 20;

impl PermitsIn {
    /// Holds at most `max_held` early permits.
    pub fn new(max_held: usize) -> PermitsIn {
        PermitsIn {
            waiting: HashMap::new(),
            held: HashMap::new(),
            held_count: 0,
            max_held,
            positions: HashMap::new(),
        }
    }

    /// The core's exchange position of `symbol`.
    pub fn position(&mut self, symbol: SymbolId, amount: Qty) {
        self.positions.insert(symbol, amount);
    }

    /// The core accepted `plan`: the records of the permits held for it, and the kinds still
    /// to read from Redis.
    pub fn accepted(
        &mut self,
        plan: PlanId,
        symbol: SymbolId,
        now: Instant,
    ) -> (Vec<Message>, Vec<PermitKind>, u64) {
        if self.waiting.len() >= MAX_WAITING {
            self.waiting.clear();
        }
        self.waiting.insert(
            plan,
            Waiting {
                symbol,
                sent: [false; 2],
            },
        );
        let mut out = Vec::new();
        let mut expired = 0;
        if let Some(held) = self.held.remove(&plan) {
            for f in held.into_iter().flatten() {
                self.held_count -= 1;
                match self.take(plan, f, now) {
                    Take::Forward(m) => out.push(m),
                    Take::Expired => expired += 1,
                    _ => {}
                }
            }
        }
        let missing = [PermitKind::Gov, PermitKind::P33]
            .into_iter()
            .filter(|k| !self.waiting[&plan].sent[slot(*k)])
            .collect();
        (out, missing, expired)
    }

    /// Replay: `plan` was accepted before (its held permits were handled then).
    pub fn accepted_before(&mut self, plan: PlanId, symbol: SymbolId) {
        self.waiting.insert(
            plan,
            Waiting {
                symbol,
                sent: [false; 2],
            },
        );
    }

    /// `plan` ended (its result).
    pub fn ended(&mut self, plan: PlanId) {
        self.waiting.remove(&plan);
    }

    /// Plans waiting with a permit not yet handed over, and the kinds they lack.
    pub fn lacking(&self) -> Vec<(PlanId, PermitKind)> {
        let mut v = Vec::new();
        for (plan, w) in &self.waiting {
            for k in [PermitKind::Gov, PermitKind::P33] {
                if !w.sent[slot(k)] {
                    v.push((*plan, k));
                }
            }
        }
        v
    }

    /// A permit read for `plan`: handed over if the plan waits, else held.
    pub fn take(&mut self, plan: PlanId, f: Found, now: Instant) -> Take {
        let left = match f.expires {
            Some(t) if t <= now => return Take::Expired,
            Some(t) => (t - now).as_millis() as u64,
            None => 0,
        };
        let kind = f.permit.kind();
        let Some(w) = self.waiting.get_mut(&plan) else {
            // A permit with no TTL at all is held as long as the legacy TTL, not for ever.
            let f = Found {
                expires: f.expires.or(Some(now + HOLD_WITHOUT_TTL)),
                ..f
            };
            let entry = self.held.entry(plan).or_default();
            if entry[slot(kind)].is_none() {
                if self.held_count >= self.max_held {
                    if entry.iter().all(Option::is_none) {
                        self.held.remove(&plan);
                    }
                    return Take::Full;
                }
                self.held_count += 1;
            }
            entry[slot(kind)] = Some(f);
            return Take::Held;
        };
        if w.sent[slot(kind)] {
            return Take::Again;
        }
        w.sent[slot(kind)] = true;
        let symbol = w.symbol;
        let permit = match f.permit {
            Legacy::Gov(g) => ExternalPermit::Gov {
                plan,
                allow: g.granted,
                reason: g.reason,
                ttl_ms: left,
            },
            Legacy::P33(p) => {
                let side = p
                    .side
                    .or_else(|| Side::closing(p.context.exchange.units()))
                    .or_else(|| {
                        self.positions
                            .get(&symbol)
                            .and_then(|a| Side::closing(a.units()))
                    });
                ExternalPermit::P33 {
                    plan,
                    allow: p.allow,
                    reason: p.reason,
                    safe_qty: p.safe_qty,
                    side,
                    context: p.context,
                    ttl_ms: left,
                }
            }
        };
        let m = input_out(&Input::Permit(permit)).expect("permits have a wire form");
        Take::Forward(m)
    }

    /// Drops held permits whose TTL has passed; returns their plans and kinds.
    pub fn expire(&mut self, now: Instant) -> Vec<(PlanId, PermitKind)> {
        let mut gone = Vec::new();
        self.held.retain(|plan, pair| {
            for f in pair.iter_mut() {
                if f.as_ref()
                    .is_some_and(|f| f.expires.is_some_and(|t| t <= now))
                {
                    gone.push((*plan, f.take().expect("checked").permit.kind()));
                }
            }
            pair.iter().any(Option::is_some)
        });
        self.held_count -= gone.len();
        gone
    }

    /// Permits held.
    pub fn held(&self) -> usize {
        self.held_count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: u64 = 1_769_301_008_977;

    fn gov(now: Instant) -> Found {
        read(
            PermitKind::Gov,
            r#"{"granted":true,"symbol":"BTCUSDT","decision":"EXECUTE","created_at":"2026-01-25T00:30:08.977Z","ttl":15}"#,
            -1,
            now,
            NOW_MS + 1_000,
        )
        .unwrap()
    }

    fn p33(now: Instant, pttl: i64) -> Found {
        read(
            PermitKind::P33,
            r#"{"allow":true,"symbol":"BTCUSDT","safe_qty":0.046,"context":{"exchange_amt":0.062,"ledger_amt":0.062,"diff":0,"tolerance":0.001}}"#,
            pttl,
            now,
            NOW_MS,
        )
        .unwrap()
    }

    #[test]
    fn time_left_comes_from_the_key_then_the_json() {
        let now = Instant::now();
        assert_eq!(gov(now).expires, Some(now + Duration::from_millis(14_000)));
        assert_eq!(
            p33(now, 900).expires,
            Some(now + Duration::from_millis(900))
        );
        assert_eq!(p33(now, -1).expires, None);
        let mut held = PermitsIn::new(1);
        assert_eq!(held.take(PlanId(9), p33(now, -1), now), Take::Held);
        assert_eq!(held.expire(now + Duration::from_secs(15)).len(), 1);
        assert!(read(PermitKind::Gov, "{}", 5, now, NOW_MS).is_err());
    }

    #[test]
    fn early_permits_wait_for_their_plan_then_go_together() {
        let now = Instant::now();
        let mut p = PermitsIn::new(10);
        let plan = PlanId(42);
        assert_eq!(p.take(plan, gov(now), now), Take::Held);
        assert_eq!(p.held(), 1);
        let (out, missing, expired) = p.accepted(plan, SymbolId(0), now);
        assert_eq!((out.len(), missing, expired), (1, vec![PermitKind::P33], 0));
        let Message::GovPermit(g) = &out[0] else {
            panic!("{out:?}")
        };
        assert!(g.allow && g.plan_id == 42 && g.ttl_ms == 14_000);
        let Take::Forward(Message::P33Permit(w)) = p.take(plan, p33(now, 900), now) else {
            panic!()
        };
        // No side in the JSON: the long exchange position is closed by selling.
        assert_eq!(
            (w.side, w.safe_qty, w.ttl_ms),
            (Some(Side::Sell), 4_600_000, 900)
        );
        assert_eq!(p.take(plan, p33(now, 900), now), Take::Again);
        assert!(p.lacking().is_empty());
        p.ended(plan);
        assert_eq!(p.take(plan, p33(now, 900), now), Take::Held);
    }

    #[test]
    fn the_hold_is_bounded_and_expires() {
        let now = Instant::now();
        let mut p = PermitsIn::new(1);
        assert_eq!(p.take(PlanId(1), p33(now, 100), now), Take::Held);
        assert_eq!(p.take(PlanId(2), p33(now, 100), now), Take::Full);
        assert!(p.expire(now).is_empty());
        let gone = p.expire(now + Duration::from_millis(100));
        assert_eq!(gone, vec![(PlanId(1), PermitKind::P33)]);
        assert_eq!(p.held(), 0);
        assert_eq!(
            p.take(PlanId(4), p33(now, 10), now + Duration::from_secs(1)),
            Take::Expired
        );
    }
}
