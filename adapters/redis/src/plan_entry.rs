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
    let symbol = |name: &str| {
        symbols.id(name).map(SymbolId).ok_or_else(|| {
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
            "1769301008976-0",
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
        .unwrap()
        .plan;
        assert_eq!(p.id, PlanId(0xf1a8_d7f4_8713_d5cf));
        assert_eq!(p.symbol, SymbolId(1));
        assert_eq!(
            (p.decision, p.action),
            (Decision::Execute, Action::Partial75)
        );
        let j = read_plan(
            "1769301008976-0",
            &fields(&[(
                "payload",
                r#"{"plan_id":"f1a8d7f48713d5cf","symbol":"ETHUSDT","decision":"EXECUTE","action":"PARTIAL_75","kill_score":0.539}"#,
            )]),
            &symbols(),
        )
        .unwrap()
        .plan;
        assert_eq!(j, p);
    }

    #[test]
    fn bad_entries_say_why() {
        let e = |f: Fields| read_plan("1-0", &f, &symbols()).unwrap_err();
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

    /// The legacy publishers' ways of writing `timestamp`, and the entry id's time for a plan
    /// whose `timestamp` is missing or unreadable.
    #[test]
    fn a_plan_carries_its_created_time_however_it_is_written() {
        let at = |ts: Option<&str>| {
            let mut f = vec![
                ("plan_id", "f1a8d7f48713d5cf"),
                ("symbol", "BTCUSDT"),
                ("decision", "HOLD"),
            ];
            if let Some(ts) = ts {
                f.push(("timestamp", ts));
            }
            let r = read_plan("1796511700000-3", &fields(&f), &symbols())
                .unwrap_or_else(|e| panic!("{ts:?}: {e}"));
            (r.plan.created_at_ms, r.warning.is_some())
        };
        // Python's str(time.time()): seconds with a fraction.
        assert_eq!(at(Some("1796511749.7101772")), (1_796_511_749_710, false));
        assert_eq!(at(Some("1796511749")), (1_796_511_749_000, false));
        assert_eq!(at(Some(" 1796511749710 ")), (1_796_511_749_710, false));
        assert_eq!(
            at(Some("2026-12-05T10:02:29.710Z")),
            (1_796_464_949_710, false)
        );
        assert_eq!(
            at(Some("2026-12-05T12:02:29.710+02:00")),
            (1_796_464_949_710, false)
        );
        assert_eq!(
            at(Some("2026-12-05T05:02:29.710-0500")),
            (1_796_464_949_710, false)
        );
        // Missing: the entry id's time, no warning. Unreadable: the same, with a warning.
        assert_eq!(at(None), (1_796_511_700_000, false));
        for bad in [
            "yesterday",
            "",
            "-5",
            "1.2.3",
            "1796511749710000",
            "2026-12-05T10:02:29",
        ] {
            assert_eq!(at(Some(bad)), (1_796_511_700_000, true), "{bad:?}");
        }
        let payload = read_plan(
            "1796511700000-0",
            &fields(&[(
                "payload",
                r#"{"plan_id":"f1a8d7f48713d5cf","symbol":"BTCUSDT","decision":"HOLD","timestamp":1796511749.7101772}"#,
            )]),
            &symbols(),
        )
        .unwrap();
        assert_eq!(payload.plan.created_at_ms, 1_796_511_749_710);
    }
}
