//! One entry of the plan stream, read into a plan for the core, or the reason it cannot be.

use quantum_core::{Plan, SymbolId};
use serde_json::{Map, Value};

use crate::legacy;
use crate::rings::Symbols;

/// A stream entry's fields, in order, as Redis returned them.
pub type Fields = Vec<(String, Vec<u8>)>;

/// The plan an entry holds (flat fields or one JSON `payload`/`data` field; extra fields are
/// ignored), with its symbol numbered as the daemon numbers it. The error is one sentence
/// for the dead-letter entry's `error` field.
pub fn read_plan(fields: &Fields, symbols: &Symbols) -> Result<Plan, String> {
    if fields.is_empty() {
        return Err("entry has no fields".into());
    }
    let mut o = Map::new();
    for (k, v) in fields {
        let text = std::str::from_utf8(v)
            .map_err(|e| format!("field {k:?} is not UTF-8 text (byte {})", e.valid_up_to()))?;
        o.insert(k.clone(), Value::String(text.to_owned()));
    }
    let p = legacy::parse_plan(&o)?;
    let symbol = symbols.id(&p.symbol).ok_or_else(|| {
        format!(
            "unknown symbol {:?} (the instance trades {})",
            p.symbol,
            symbols.list()
        )
    })?;
    Ok(Plan {
        id: p.id,
        symbol: SymbolId(symbol),
        decision: p.decision,
        action: p.action,
        kill_score: p.kill_score,
        created_at_ms: p.created_at_ms,
        reduce_only: p.reduce_only,
        qty: p.qty,
    })
}

/// The dead-letter entry of an entry that could not be read: its fields as they were, then
/// `error` (the reason) and `source_id` (its id in the plan stream; new here).
pub fn dead_letter(id: &str, fields: &Fields, error: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = fields.clone();
    out.push(("error".into(), error.as_bytes().to_vec()));
    out.push(("source_id".into(), id.as_bytes().to_vec()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantum_core::{Action, Decision, PlanId};

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn symbols() -> Symbols {
        Symbols::new([(0, "BTCUSDT".to_string()), (1, "ETHUSDT".to_string())])
    }

    #[test]
    fn legacy_entries_become_plans() {
        let p = read_plan(
            &fields(&[
                ("plan_id", "f1a8d7f48713d5cf"),
                ("symbol", "ETHUSDT"),
                ("decision", "EXECUTE"),
                ("action", "PARTIAL_75"),
                ("kill_score", "0.5390"),
                ("source", "exit_brain"),
            ]),
            &symbols(),
        )
        .unwrap();
        assert_eq!(p.id, PlanId(0xf1a8_d7f4_8713_d5cf));
        assert_eq!(p.symbol, SymbolId(1));
        assert_eq!(
            (p.decision, p.action),
            (Decision::Execute, Action::Partial75)
        );
        let j = read_plan(
            &fields(&[(
                "payload",
                r#"{"plan_id":"f1a8d7f48713d5cf","symbol":"ETHUSDT","decision":"EXECUTE","action":"PARTIAL_75","kill_score":0.539}"#,
            )]),
            &symbols(),
        )
        .unwrap();
        assert_eq!(j, p);
    }

    #[test]
    fn bad_entries_say_why() {
        let e = |f: Fields| read_plan(&f, &symbols()).unwrap_err();
        assert!(e(fields(&[
            ("plan_id", "f1a8d7f48713d5cf"),
            ("symbol", "DOGEUSDT"),
            ("decision", "EXECUTE")
        ]))
        .contains("DOGEUSDT"));
        assert!(e(fields(&[("symbol", "BTCUSDT"), ("decision", "EXECUTE")])).contains("plan_id"));
        assert!(e(fields(&[("data", "{nope")])).contains("data"));
        assert!(e(vec![("plan_id".into(), vec![0xff, 0xfe])]).contains("UTF-8"));
        assert!(e(Vec::new()).contains("no fields"));
        let dl = dead_letter("1-0", &fields(&[("x", "y")]), "bad");
        assert_eq!(
            dl,
            fields(&[("x", "y"), ("error", "bad"), ("source_id", "1-0")])
        );
    }
}
