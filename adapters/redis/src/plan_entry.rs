//! One entry of the plan stream, read into a plan for the core, or the reason it cannot be
//! (then its dead-letter entry).

use quantum_core::SymbolId;
use serde_json::{Map, Value};

use crate::legacy::{self, ReadPlan};
use crate::rings::Symbols;

/// A stream entry's fields, in order, as Redis returned them.
pub type Fields = Vec<(String, Vec<u8>)>;

/// The time Redis gave stream entry `id` (`<ms>-<seq>`: the XADD's milliseconds).
pub fn entry_time_ms(id: &str) -> Option<u64> {
    id.split_once('-')?.0.parse().ok()
}

/// The plan entry `id` holds, read by [`legacy::parse_plan`] with its symbol numbered as the
/// daemon numbers it; a plan without a readable `timestamp` is created when Redis added its
/// entry. The error is one sentence for the dead-letter entry's `error` field.
pub fn read_plan(id: &str, fields: &Fields, symbols: &Symbols) -> Result<ReadPlan, String> {
    if fields.is_empty() {
        return Err("entry has no fields".into());
    }
    let mut o = Map::new();
    for (k, v) in fields {
        let text = std::str::from_utf8(v)
            .map_err(|e| format!("field {k:?} is not UTF-8 text (byte {})", e.valid_up_to()))?;
        o.insert(k.clone(), Value::String(text.to_owned()));
    }
    let symbol = |name: &str, side| {
        symbols.plan_leg(name, side).map(SymbolId).ok_or_else(|| {
            format!(
                "unknown symbol {name:?} (the instance trades {})",
                symbols.list()
            )
        })
    };
    legacy::parse_plan(&o, symbol, entry_time_ms(id).unwrap_or(0))
}

/// The dead-letter entry of an entry that could not be read: its fields as they were, then
/// `error` (the reason) and `source_id` (its id in the plan stream; new here).
pub fn dead_letter(id: &str, fields: &Fields, error: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = fields.clone();
    out.push(("error".into(), error.as_bytes().to_vec()));
    out.push(("source_id".into(), id.as_bytes().to_vec()));
    out
}
