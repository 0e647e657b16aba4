//! The symbol directory of a `quantum run` instance: id ↔ name, from its counters segment.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use quantum_ipc::CountersReader;

/// Symbol ids and names, as the daemon numbered them.
#[derive(Clone, Debug, Default)]
pub struct SymbolDirectory {
    by_id: BTreeMap<u16, String>,
}

impl SymbolDirectory {
    /// From explicit pairs.
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

    /// Name of `id`.
    pub fn name(&self, id: u16) -> Option<String> {
        self.by_id.get(&id).cloned()
    }

    /// Id of `name`.
    pub fn id(&self, name: &str) -> Option<u16> {
        self.by_id.iter().find(|(_, n)| *n == name).map(|(i, _)| *i)
    }

    /// `(id, name)` pairs in id order.
    pub fn iter(&self) -> impl Iterator<Item = (u16, &str)> {
        self.by_id.iter().map(|(i, n)| (*i, n.as_str()))
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// No symbols.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}
