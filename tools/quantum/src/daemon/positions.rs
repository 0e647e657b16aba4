//! The book as the `results` ring mirrors it: what a future Redis bridge writes to the legacy
//! hash `quantum:position:<SYMBOL>` (`exchange_amount`, `ledger_amount`, `updated_at`).
//!
//! The engine applies commands on its own thread and says nothing back, so the I/O thread keeps
//! a shadow of the amounts the mirror needs (exchange amount, mark, ledger amount per symbol):
//! it starts from the engine's book before any input and applies the same commands, in the
//! order it hands them to the engine. Only commands move these amounts (apply and P3.3 move
//! `in_flight` only), so the shadow is the engine's book after those commands.
//!
//! Each position snapshot applied, and each fill (which moves the ledger), writes two records
//! on `results`, when the daemon hands the command to the engine:
//!
//! 1. a [`wire::PositionSnapshot`]: the exchange amount, the mark, and in `exchange_time_ms`
//!    the time the core's book changed (Unix ms: the legacy `updated_at`, not the exchange's
//!    time). Left out while no snapshot has been applied to the symbol (a fill before the
//!    first snapshot): there is no exchange amount or mark to write.
//! 2. a [`wire::LedgerSet`]: the ledger amount after the change. The wire `PositionSnapshot`
//!    has no field for it; on `results` a `LedgerSet` is not a command but the core's ledger
//!    amount for that symbol as of this point of the stream.
//!
//! An operator's ledger sync (`SetLedger`) moves the shadow but writes nothing: it came from the
//! hash's `ledger_amount` in the first place. Position records may overtake the result of a
//! plan handed to the engine earlier that is still waiting for permits.

use quantum_core::ledger::Ledger;
use quantum_core::{Command, Price, Qty, SymbolId};
use quantum_ipc::wire::{self, Message};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Shadow {
    ledger: Qty,
    exchange: Option<Qty>,
    mark: Price,
}

/// The amounts of every symbol as the engine will have them once it has applied every command
/// handed to it so far.
#[derive(Debug)]
pub struct Positions {
    books: Vec<Shadow>,
}

impl Positions {
    /// The shadow of `book` as it is now (call before the engine gets any input).
    pub fn from_book(book: &Ledger) -> Positions {
        let books = (0..book.len())
            .map(|i| {
                book.view(SymbolId(i as u16))
                    .map_or_else(Shadow::default, |v| Shadow {
                        ledger: v.ledger,
                        exchange: v.exchange.map(|(q, _)| q),
                        mark: v.mark,
                    })
            })
            .collect();
        Positions { books }
    }

    /// Applies a command handed to the engine at `now_ms` (Unix ms); returns the records it
    /// writes on `results`, oldest first.
    pub fn apply(&mut self, c: &Command, now_ms: u64) -> Vec<Message> {
        let (symbol, changed) = match *c {
            Command::Position {
                symbol,
                amount,
                mark,
            } => {
                let Some(b) = self.books.get_mut(symbol.index()) else {
                    return Vec::new();
                };
                b.exchange = Some(amount);
                if !mark.is_zero() {
                    b.mark = mark;
                }
                (symbol, true)
            }
            Command::Fill {
                symbol, side, qty, ..
            } => {
                let Some(b) = self.books.get_mut(symbol.index()) else {
                    return Vec::new();
                };
                // As the engine's ledger does it: a relaxed `fetch_add` (wrapping).
                b.ledger =
                    Qty::from_units(b.ledger.units().wrapping_add(side.sign() * qty.units()));
                (symbol, true)
            }
            Command::SetLedger { symbol, amount } => {
                if let Some(b) = self.books.get_mut(symbol.index()) {
                    b.ledger = amount;
                }
                (symbol, false)
            }
            _ => return Vec::new(),
        };
        if !changed {
            return Vec::new();
        }
        let b = self.books[symbol.index()];
        let mut out = Vec::with_capacity(2);
        if let Some(amount) = b.exchange.filter(|_| b.mark.units() > 0) {
            out.push(Message::PositionSnapshot(wire::PositionSnapshot {
                symbol: symbol.0,
                amount: amount.units(),
                mark_price: b.mark.units(),
                exchange_time_ms: now_ms,
            }));
        }
        out.push(Message::LedgerSet(wire::LedgerSet {
            symbol: symbol.0,
            amount: b.ledger.units(),
        }));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::config::DaemonConfig;
    use quantum_core::{Clock, Engine, Side};

    fn q(s: &str) -> Qty {
        s.parse().unwrap()
    }

    const BTC: SymbolId = SymbolId(0);

    #[test]
    fn the_shadow_follows_the_engine_and_mirrors_snapshots_and_fills() {
        let cfg = DaemonConfig::default().engine_config(0).unwrap();
        let mut e = Engine::new(cfg, Clock::new()).unwrap();
        let mut p = Positions::from_book(&e.shared().ledger);
        let mut run = |e: &mut Engine, c: Command| {
            assert!(e.front.command(c));
            p.apply(&c, 7)
        };
        // A fill before any snapshot: the ledger only.
        let fill = |side, qty: &str| Command::Fill {
            symbol: BTC,
            side,
            qty: q(qty),
            plan: None,
        };
        let out = run(&mut e, fill(Side::Buy, "0.010"));
        assert_eq!(
            out,
            vec![Message::LedgerSet(wire::LedgerSet {
                symbol: 0,
                amount: q("0.010").units()
            })]
        );
        // An operator sync writes nothing but moves the shadow.
        let set = Command::SetLedger {
            symbol: BTC,
            amount: q("0.002"),
        };
        assert!(run(&mut e, set).is_empty());
        let pos = Command::Position {
            symbol: BTC,
            amount: q("0.062"),
            mark: "104000".parse().unwrap(),
        };
        let snap = |amount: &str| {
            Message::PositionSnapshot(wire::PositionSnapshot {
                symbol: 0,
                amount: q(amount).units(),
                mark_price: "104000".parse::<Price>().unwrap().units(),
                exchange_time_ms: 7,
            })
        };
        let ledger = |amount: &str| {
            Message::LedgerSet(wire::LedgerSet {
                symbol: 0,
                amount: q(amount).units(),
            })
        };
        assert_eq!(run(&mut e, pos), vec![snap("0.062"), ledger("0.002")]);
        // A zero mark keeps the last one.
        let pos = Command::Position {
            symbol: BTC,
            amount: q("0.016"),
            mark: Price::ZERO,
        };
        assert_eq!(run(&mut e, pos), vec![snap("0.016"), ledger("0.002")]);
        assert_eq!(
            run(&mut e, fill(Side::Sell, "0.046")),
            vec![snap("0.016"), ledger("-0.044")]
        );
        let view = e.shared().ledger.view(BTC).unwrap();
        assert_eq!(view.ledger, q("-0.044"));
        assert_eq!(view.exchange.map(|(a, _)| a), Some(q("0.016")));
        // Commands that do not move these amounts write nothing.
        assert!(run(&mut e, Command::KillSwitch(true)).is_empty());
    }
}
