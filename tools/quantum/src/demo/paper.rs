//! A paper exchange for the demo: fills reduce-only MARKET orders at the mark at once, moves
//! the mark a little, and re-opens a position (as the entry side of the trading system would)
//! when an exit leaves too little to trade. Everything it does reaches the core as the same
//! commands an exchange adapter sends: a position snapshot and a fill.

use quantum_core::{Command, OrderIntent, Price, Qty, Side, SymbolId};
use rand::rngs::StdRng;
use rand::Rng;

struct Book {
    position: Qty,
    mark: Price,
    /// Size the entry side re-opens to.
    target: Qty,
    step: Qty,
}

/// The in-process paper exchange (replaced by the Binance simulator in a later issue).
pub struct Paper {
    books: Vec<Book>,
    /// Orders filled, reduce-only rejections, re-openings.
    pub fills: u64,
    /// Orders rejected because nothing was left to reduce (Binance -2022).
    pub rejects: u64,
    /// Positions re-opened by the simulated entry side.
    pub reopens: u64,
}

impl Paper {
    /// `(position, mark, step)` per symbol id.
    pub fn new(books: &[(Qty, Price, Qty)]) -> Self {
        Paper {
            books: books
                .iter()
                .map(|&(position, mark, step)| Book {
                    position,
                    mark,
                    target: position,
                    step,
                })
                .collect(),
            fills: 0,
            rejects: 0,
            reopens: 0,
        }
    }

    /// The snapshot command for `s`.
    pub fn snapshot(&self, s: SymbolId) -> Command {
        let b = &self.books[s.index()];
        Command::Position {
            symbol: s,
            amount: b.position,
            mark: b.mark,
        }
    }

    /// Executes `o`; returns the commands the core must see, in order.
    pub fn execute(&mut self, o: &OrderIntent, rng: &mut StdRng, out: &mut Vec<Command>) {
        let s = o.symbol;
        let b = &mut self.books[s.index()];
        // Reduce-only: never more than the position, never the position's own direction.
        let closable = match Side::closing(b.position) {
            Some(side) if side == o.side => b.position.abs(),
            _ => Qty::ZERO,
        };
        let fill = o.qty.min(closable);
        if fill.is_zero() {
            self.rejects += 1;
            out.push(Command::OrderDone {
                symbol: s,
                unfilled: o.qty,
            });
            return;
        }
        let drift = rng.gen_range(-5i64..=5) * (b.mark.units() / 10_000);
        b.mark = Price::from_units((b.mark.units() + drift).max(1));
        b.position = Qty::from_units(b.position.units() + o.side.sign() * fill.units());
        self.fills += 1;
        out.push(self.snapshot(s));
        let b = &self.books[s.index()];
        out.push(Command::Fill {
            symbol: s,
            side: o.side,
            qty: fill,
            plan: Some(o.plan),
        });
        if fill < o.qty {
            out.push(Command::OrderDone {
                symbol: s,
                unfilled: Qty::from_units(o.qty.units() - fill.units()),
            });
        }
        // The entry side re-opens once less than four lots are left.
        if b.position.abs().units() < 4 * b.step.units() {
            let b = &mut self.books[s.index()];
            let add = Qty::from_units(b.target.units() - b.position.units());
            let side = if add.units() > 0 {
                Side::Buy
            } else {
                Side::Sell
            };
            b.position = b.target;
            self.reopens += 1;
            out.push(self.snapshot(s));
            out.push(Command::Fill {
                symbol: s,
                side,
                qty: add.abs(),
                plan: None,
            });
        }
    }
}
