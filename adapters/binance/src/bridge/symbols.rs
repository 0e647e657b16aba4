//! The symbol directory of a `quantum run` instance, from its counters segment: each id is one
//! *leg*, an exchange symbol and a position side ([`PositionSide`]): `BTCUSDT` is the one-way
//! (`BOTH`) leg, `BTCUSDT:LONG` and `BTCUSDT:SHORT` the legs of a hedge-mode symbol. The
//! labels and their lookups are [`PositionSide`]'s (`split_label`, `leg_id`); this directory
//! only holds them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use quantum_ipc::codes::PositionSide;
use quantum_ipc::CountersReader;

/// Symbol ids and their labels, as the daemon numbered them.
#[derive(Clone, Debug, Default)]
pub struct SymbolDirectory {
    by_id: BTreeMap<u16, String>,
}

impl SymbolDirectory {
    /// From explicit `(id, label)` pairs.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (u16, String)>) -> SymbolDirectory {
        SymbolDirectory {
            by_id: pairs.into_iter().collect(),
        }
    }

    /// Reads `quantum.<instance>.counters`, waiting up to `timeout` for it to exist and name
    /// at least one symbol.
    pub async fn attach(instance: &str, timeout: Duration) -> anyhow::Result<SymbolDirectory> {
        let deadline = Instant::now() + timeout;
        loop {
            let err = match CountersReader::open(instance) {
                Ok(r) => {
                    let d = SymbolDirectory::from_pairs(r.symbols());
                    if !d.by_id.is_empty() {
                        return Ok(d);
                    }
                    anyhow::anyhow!("the symbol directory of instance {instance} is empty")
                }
                Err(e) => anyhow::Error::new(e),
            };
            if Instant::now() >= deadline {
                return Err(err.context(format!(
                    "cannot read the symbol directory of instance {instance}; is `quantum run --instance {instance}` running?"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The exchange symbol and position side of leg `id`.
    pub fn leg(&self, id: u16) -> Option<(&str, PositionSide)> {
        self.by_id
            .get(&id)
            .map(|l| PositionSide::split_label(l.as_str()))
    }

    /// The exchange symbol of leg `id`.
    pub fn name(&self, id: u16) -> Option<&str> {
        self.leg(id).map(|(s, _)| s)
    }

    /// The id of `symbol`'s leg on exactly `side`.
    pub fn leg_id(&self, symbol: &str, side: PositionSide) -> Option<u16> {
        PositionSide::leg_id(self.iter(), symbol, side)
    }

    /// The id of `symbol`'s leg on the side Binance names `ps` (`positionSide` of a row,
    /// `ps` of an event; `BOTH` in one-way mode). `None` when the text is not a side or the
    /// directory has no such leg.
    pub fn leg_of(&self, symbol: &str, ps: &str) -> Option<u16> {
        self.leg_id(symbol, PositionSide::parse(ps)?)
    }

    /// `(id, label)` pairs in id order.
    pub fn iter(&self) -> impl Iterator<Item = (u16, &str)> + Clone {
        self.by_id.iter().map(|(i, n)| (*i, n.as_str()))
    }

    /// `(id, exchange symbol, side)` of every leg, in id order.
    pub fn legs(&self) -> impl Iterator<Item = (u16, &str, PositionSide)> {
        self.iter().map(|(i, l)| {
            let (s, side) = PositionSide::split_label(l);
            (i, s, side)
        })
    }

    /// The ids of `symbol`'s legs, in id order.
    pub fn legs_of<'a>(&'a self, symbol: &'a str) -> impl Iterator<Item = u16> + 'a {
        self.legs()
            .filter(move |(_, s, _)| *s == symbol)
            .map(|(i, _, _)| i)
    }

    /// The exchange symbols, each once, in the order of their first leg.
    pub fn symbols(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for (_, s, _) in self.legs() {
            if !out.contains(&s) {
                out.push(s);
            }
        }
        out
    }

    /// Number of legs.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// No legs.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legs_map_to_symbol_and_side_and_back() {
        let d = SymbolDirectory::from_pairs([
            (0, "BTCUSDT:LONG".to_owned()),
            (1, "BTCUSDT:SHORT".to_owned()),
            (2, "ETHUSDT".to_owned()),
        ]);
        assert_eq!(d.leg(0), Some(("BTCUSDT", PositionSide::Long)));
        assert_eq!(d.name(1), Some("BTCUSDT"));
        assert_eq!(d.leg_of("BTCUSDT", "SHORT"), Some(1));
        assert_eq!(d.leg_of("BTCUSDT", "BOTH"), None);
        assert_eq!(d.leg_of("ETHUSDT", "BOTH"), Some(2));
        assert_eq!(d.leg_of("ETHUSDT", "LONG"), None);
        assert_eq!(d.leg_of("ETHUSDT", "sideways"), None);
        assert_eq!(d.symbols(), ["BTCUSDT", "ETHUSDT"]);
        assert_eq!(d.legs_of("BTCUSDT").collect::<Vec<_>>(), [0, 1]);
    }
}
