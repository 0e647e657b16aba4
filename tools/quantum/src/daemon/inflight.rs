//! Orders in flight as the daemon sees them: per plan, the intent's symbol and quantity and
//! what has filled so far, so that whatever ends an order releases exactly the part that will
//! never fill.
//!
//! The engine reserves an intent's quantity in the book (`in_flight`) when apply makes it, and
//! each `Fill` naming our plan releases its own quantity there. What the engine cannot know is
//! how much of an order is still open when the exchange ends it: the wire `Reject` carries no
//! quantity. The daemon remembers `intent − filled so far` per plan and turns a `Reject` into
//! `OrderDone { unfilled }` with that amount: the whole intent when nothing filled (a plain
//! reject), the rest after the fills when the bridge reports
//! [`REJECT_REMAINDER_EXPIRED`](super::convert::REJECT_REMAINDER_EXPIRED). A second `Reject`
//! for the same order releases nothing.
//!
//! A fill for a plan with nothing in flight (its order already ended, or sent before a restart)
//! still moves the ledger but is passed on as not ours, so a late report never releases another
//! order's reservation.

use std::collections::HashMap;

use quantum_core::{Command, Input, PlanId, Qty, SymbolId};

use super::convert::Ingress;

#[derive(Clone, Copy, Debug)]
struct Order {
    symbol: SymbolId,
    qty: Qty,
    /// Sum of the fills reported so far, `< qty` while the order is tracked.
    filled: Qty,
}

/// The daemon's orders in flight, by plan id.
#[derive(Debug, Default)]
pub struct InFlight {
    orders: HashMap<u64, Order>,
}

impl InFlight {
    /// Room for `n` orders before the map grows.
    pub fn with_capacity(n: usize) -> InFlight {
        InFlight {
            orders: HashMap::with_capacity(n),
        }
    }

    /// An intent of `qty` for `plan` went out.
    pub fn sent(&mut self, plan: PlanId, symbol: SymbolId, qty: Qty) {
        self.orders.insert(
            plan.0,
            Order {
                symbol,
                qty,
                filled: Qty::ZERO,
            },
        );
    }

    /// A fill of `qty` names `plan`. True when the order is ours and in flight (the fill releases
    /// its quantity); the order stops being tracked once it has filled completely.
    pub fn fill(&mut self, plan: PlanId, qty: Qty) -> bool {
        let Some(o) = self.orders.get_mut(&plan.0) else {
            return false;
        };
        o.filled = Qty::from_units(o.filled.units().saturating_add(qty.units()));
        debug_assert!(o.filled.units() > 0);
        if o.filled >= o.qty {
            self.orders.remove(&plan.0);
        }
        true
    }

    /// The exchange ended `plan`'s order: its symbol and the quantity that will never fill
    /// (`intent − filled so far`), or `None` when nothing of it is in flight any more.
    pub fn done(&mut self, plan: PlanId) -> Option<(SymbolId, Qty)> {
        let o = self.orders.remove(&plan.0)?;
        Some((o.symbol, Qty::from_units(o.qty.units() - o.filled.units())))
    }

    /// What an ingress record asks of the engine once the orders in flight are accounted for:
    /// a fill of a tracked order stays ours, a fill naming an untracked plan is passed on as not
    /// ours, and a reject becomes `OrderDone` for the unfilled rest (`None`: nothing of that
    /// order is in flight any more).
    pub fn input(&mut self, m: Ingress) -> Option<Input> {
        match m {
            Ingress::Input(Input::Command(Command::Fill {
                symbol,
                side,
                qty,
                plan: Some(p),
            })) => {
                let ours = self.fill(p, qty);
                Some(Input::Command(Command::Fill {
                    symbol,
                    side,
                    qty,
                    plan: ours.then_some(p),
                }))
            }
            Ingress::Input(input) => Some(input),
            Ingress::Reject { plan, .. } => self
                .done(plan)
                .map(|(symbol, unfilled)| Input::Command(Command::OrderDone { symbol, unfilled })),
        }
    }

    /// Orders tracked.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.orders.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::config::DaemonConfig;
    use crate::daemon::convert::REJECT_REMAINDER_EXPIRED;
    use quantum_core::{Action, Clock, Decision, Engine, OrderIntent, Plan, Price, Side};

    fn q(s: &str) -> Qty {
        s.parse().unwrap()
    }

    const BTC: SymbolId = SymbolId(0);

    /// The engine of a default `quantum run`, BTCUSDT at 0.062 on both sides.
    fn engine() -> Engine {
        let cfg = DaemonConfig::default().engine_config(0).unwrap();
        let mut e = Engine::new(cfg, Clock::new()).unwrap();
        for c in [
            Command::Position {
                symbol: BTC,
                amount: q("0.062"),
                mark: "104000".parse().unwrap(),
            },
            Command::SetLedger {
                symbol: BTC,
                amount: q("0.062"),
            },
        ] {
            assert!(e.front.command(c));
        }
        e
    }

    /// A PARTIAL_75 plan through the engine: its order (0.046 SELL), tracked as sent.
    fn order(e: &mut Engine, f: &mut InFlight, id: u64) -> OrderIntent {
        let plan = Plan::exit(PlanId(id), BTC, Decision::Execute, Action::Partial75);
        let mut out = Vec::new();
        e.process_plan(plan, &mut |r| out.push(r)).unwrap();
        let o = *out[0].order().expect("executed");
        f.sent(o.plan, o.symbol, o.qty);
        o
    }

    fn fill(o: &OrderIntent, qty: &str) -> Ingress {
        Ingress::Input(Input::Command(Command::Fill {
            symbol: o.symbol,
            side: o.side,
            qty: q(qty),
            plan: Some(o.plan),
        }))
    }

    fn reject(o: &OrderIntent, reason: u16) -> Ingress {
        Ingress::Reject {
            plan: o.plan,
            symbol: o.symbol,
            reason,
        }
    }

    fn feed(e: &mut Engine, f: &mut InFlight, m: Ingress) {
        if let Some(i) = f.input(m) {
            e.handle(i, &mut |_| {}).unwrap();
        }
    }

    #[test]
    fn the_book_releases_exactly_the_expired_remainder_of_a_partly_filled_order() {
        let (mut e, mut f) = (engine(), InFlight::default());
        let o = order(&mut e, &mut f, 1);
        assert_eq!((o.qty, o.side), (q("0.046"), Side::Sell));
        let book = |e: &Engine| e.shared().ledger.view(BTC).unwrap();
        assert_eq!(book(&e).in_flight, q("0.046"));
        feed(&mut e, &mut f, fill(&o, "0.030"));
        assert_eq!(book(&e).in_flight, q("0.016"));
        feed(&mut e, &mut f, reject(&o, REJECT_REMAINDER_EXPIRED));
        assert_eq!(book(&e).in_flight, Qty::ZERO);
        assert_eq!(book(&e).ledger, q("0.032"));
        // Reported twice, and a late fill report: the book does not move again but for the
        // ledger, which follows every fill.
        feed(&mut e, &mut f, reject(&o, REJECT_REMAINDER_EXPIRED));
        assert_eq!(book(&e).in_flight, Qty::ZERO);

        // A second order in flight keeps its whole reservation when the first one's fill comes
        // late: that fill releases nothing.
        e.front.command(Command::Position {
            symbol: BTC,
            amount: q("0.032"),
            mark: Price::ZERO,
        });
        let o2 = order(&mut e, &mut f, 2);
        let reserved = book(&e).in_flight;
        assert!(reserved.units() > 0);
        feed(&mut e, &mut f, fill(&o, "0.001"));
        assert_eq!(book(&e).in_flight, reserved);
        assert_eq!(book(&e).ledger, q("0.031"));
        // A plain reject of the second one (nothing filled) releases all of it.
        feed(&mut e, &mut f, reject(&o2, 18));
        assert_eq!(book(&e).in_flight, Qty::ZERO);
    }

    #[test]
    fn a_reject_after_partial_fills_releases_only_the_remainder() {
        let mut f = InFlight::default();
        f.sent(PlanId(1), BTC, q("0.046"));
        assert!(f.fill(PlanId(1), q("0.010")));
        assert!(f.fill(PlanId(1), q("0.020")));
        assert_eq!(f.done(PlanId(1)), Some((BTC, q("0.016"))));
        // A repeated reject (answer and stream both said so) releases nothing more.
        assert_eq!(f.done(PlanId(1)), None);
        // A late fill report is no longer ours.
        assert!(!f.fill(PlanId(1), q("0.001")));
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn a_plain_reject_releases_the_whole_intent_and_a_full_fill_ends_the_order() {
        let mut f = InFlight::default();
        f.sent(PlanId(2), BTC, q("0.046"));
        f.sent(PlanId(3), SymbolId(1), q("1.5"));
        assert_eq!(f.done(PlanId(2)), Some((BTC, q("0.046"))));
        assert!(f.fill(PlanId(3), q("1.5")));
        assert_eq!(f.done(PlanId(3)), None, "a filled order has nothing left");
        assert!(!f.fill(PlanId(4), q("1")), "never sent");
        assert_eq!(f.len(), 0);
    }
}
