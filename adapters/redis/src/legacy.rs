//! The legacy Redis contract: stream and key names, the permits' JSON, the fields of plan and
//! result entries, and the position hash.
//!
//! | name | type | content |
//! |---|---|---|
//! | [`PLAN_STREAM`] | stream | one entry per plan: `plan_id`, `symbol`, `decision`, `action`, `kill_score`, `timestamp` (optional), or the same as JSON in one `payload` / `data` field |
//! | [`permit_key`] `quantum:permit:<plan_id>` | string, TTL | governor permit [`gov_permit_json`] |
//! | [`p33_permit_key`] `quantum:permit:p33:<plan_id>` | string, TTL | P3.3 permit [`p33_permit_json`] |
//! | [`position_key`] `quantum:position:<SYMBOL>` | hash | `ledger_amount` (operators set it), `exchange_amount`, `updated_at` |
//! | [`RESULT_STREAM`] | stream | one entry per plan, [`result_fields`] (new here) |
//! | [`DLQ_STREAM`] | stream | entries that could not be read, with the original fields and `error` (new here) |
//!
//! Amounts in JSON are numbers written exactly (`0.062`, never `0.06199999`); in hash and
//! stream fields they are decimal strings. Times are UTC ISO 8601 with milliseconds
//! (`2026-01-25T00:30:08.977Z`), TTLs in seconds as the legacy `ttl` field has them.

use quantum_core::event::{GovPermitEvent, P33PermitEvent};
use quantum_core::{Action, Decision, PlanId, PlanResult, Qty, Score};
use serde_json::{Map, Value};

/// The exit brain's plans.
pub const PLAN_STREAM: &str = "quantum:stream:apply.plan";
/// One entry per processed plan.
pub const RESULT_STREAM: &str = "quantum:stream:apply.result";
/// Plan entries that could not be read.
pub const DLQ_STREAM: &str = "quantum:stream:apply.plan.dlq";
/// Prefix of the position hashes.
pub const POSITION_PREFIX: &str = "quantum:position:";

/// `quantum:permit:<plan_id>`: the governor's permit.
pub fn permit_key(plan: PlanId) -> String {
    format!("quantum:permit:{plan}")
}

/// `quantum:permit:p33:<plan_id>`: P3.3's permit.
pub fn p33_permit_key(plan: PlanId) -> String {
    format!("quantum:permit:p33:{plan}")
}

/// `quantum:position:<SYMBOL>`.
pub fn position_key(symbol: &str) -> String {
    format!("{POSITION_PREFIX}{symbol}")
}

/// Unix ms as `2026-01-25T00:30:08.977Z` (UTC).
pub fn iso_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    // Days since 1970-01-01 to a civil date (H. Hinnant's days-from-civil, inverted).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        ms % 1000
    )
}

/// A TTL in seconds as the legacy JSON has it (`15`, or `1.5`).
pub fn ttl_secs(ttl_ms: u32) -> String {
    if ttl_ms % 1000 == 0 {
        (ttl_ms / 1000).to_string()
    } else {
        let s = format!("{}.{:03}", ttl_ms / 1000, ttl_ms % 1000);
        s.trim_end_matches('0').to_string()
    }
}

/// A JSON string literal.
fn js(s: &str) -> String {
    Value::from(s).to_string()
}

/// The governor's permit as the legacy Governor SETs it. New here: a deny adds `"reason"`.
pub fn gov_permit_json(p: &GovPermitEvent, symbol: &str) -> String {
    let mut s = format!(
        "{{\"granted\":{},\"symbol\":{},\"decision\":\"EXECUTE\",\"created_at\":\"{}\",\"ttl\":{}",
        p.allow,
        js(symbol),
        iso_ms(p.issued_at_ms),
        ttl_secs(p.ttl_ms)
    );
    if let Some(r) = p.reason.filter(|_| !p.allow) {
        s.push_str(&format!(",\"reason\":\"{r}\""));
    }
    s.push('}');
    s
}

/// P3.3's permit as the legacy P3.3 SETs it: the amounts it judged in `context`, a deny's
/// `reason`, an allow's `safe_qty`.
pub fn p33_permit_json(p: &P33PermitEvent, symbol: &str) -> String {
    let c = &p.context;
    let mut s = format!("{{\"allow\":{},\"symbol\":{}", p.allow, js(symbol));
    if let Some(r) = p.reason.filter(|_| !p.allow) {
        s.push_str(&format!(",\"reason\":\"{r}\""));
    }
    s.push_str(&format!(
        ",\"context\":{{\"exchange_amt\":{},\"ledger_amt\":{},\"diff\":{},\"tolerance\":{}}}",
        c.exchange,
        c.ledger,
        c.diff(),
        c.tolerance
    ));
    if p.allow {
        s.push_str(&format!(",\"safe_qty\":{}", p.safe_qty));
    }
    s.push_str(&format!(",\"created_at\":\"{}\"}}", iso_ms(p.issued_at_ms)));
    s
}

/// The fields of a result entry (new here). `order_id` is the exchange's, once known.
pub fn result_fields(
    r: &PlanResult,
    symbol: &str,
    order_id: Option<u64>,
) -> Vec<(&'static str, String)> {
    let executed = r.executed();
    vec![
        ("plan_id", r.plan.to_string()),
        ("symbol", symbol.to_string()),
        ("decision", r.decision.to_string()),
        ("executed", if executed { "true" } else { "false" }.into()),
        ("error", r.error_text().unwrap_or_default()),
        ("safe_qty", r.safe_qty().unwrap_or(Qty::ZERO).to_string()),
        (
            "client_order_id",
            if executed {
                quantum_core::ClientOrderId::for_plan(r.plan).to_string()
            } else {
                String::new()
            },
        ),
        (
            "order_id",
            order_id.map_or(String::new(), |o| o.to_string()),
        ),
        ("wait_us", (r.wait_ns / 1_000).to_string()),
    ]
}

/// A plan entry as read from the legacy stream or a JSON line, before symbol interning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacyPlan {
    /// Plan id.
    pub id: PlanId,
    /// Symbol name.
    pub symbol: String,
    /// Decision.
    pub decision: Decision,
    /// Action (`NONE` when absent).
    pub action: Action,
    /// Kill score (0 when absent).
    pub kill_score: Score,
    /// `timestamp` (ms since the Unix epoch; 0 when absent).
    pub created_at_ms: u64,
    /// `reduce_only` (true when absent: the exit brain's plans are exits).
    pub reduce_only: bool,
    /// `qty` of an opening plan (0 when absent).
    pub qty: Qty,
}

fn field<'a>(o: &'a Map<String, Value>, k: &str) -> Result<&'a Value, String> {
    o.get(k).ok_or_else(|| format!("missing field {k:?}"))
}

fn text<'a>(o: &'a Map<String, Value>, k: &str) -> Result<&'a str, String> {
    field(o, k)?
        .as_str()
        .ok_or_else(|| format!("field {k:?} must be a string"))
}

/// A decimal from a JSON number or a string.
pub fn decimal<T: std::str::FromStr>(o: &Map<String, Value>, k: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    let s = match field(o, k)? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err(format!("field {k:?} must be a number or a decimal string")),
    };
    s.trim()
        .parse()
        .map_err(|e| format!("field {k:?} = {s:?}: {e}"))
}

/// [`decimal`], or `d` when the field is absent.
pub fn decimal_or<T: std::str::FromStr>(o: &Map<String, Value>, k: &str, d: T) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    if o.contains_key(k) {
        decimal(o, k)
    } else {
        Ok(d)
    }
}

/// A boolean from `true`/`false` (JSON or text, any case) or `1`/`0`.
pub fn boolean(o: &Map<String, Value>, k: &str) -> Result<bool, String> {
    match field(o, k)? {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_u64() == Some(1) => Ok(true),
        Value::Number(n) if n.as_u64() == Some(0) => Ok(false),
        Value::String(s) if s.eq_ignore_ascii_case("true") || s == "1" => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") || s == "0" => Ok(false),
        _ => Err(format!("field {k:?} must be true or false")),
    }
}

/// The `plan_id` field.
pub fn plan_id(o: &Map<String, Value>) -> Result<PlanId, String> {
    let s = text(o, "plan_id")?;
    s.parse().map_err(|e| format!("plan_id {s:?}: {e}"))
}

/// Replaces a `payload` or `data` field holding a JSON object by that object's fields.
pub fn unwrap_payload(o: &mut Map<String, Value>) -> Result<(), String> {
    for k in ["payload", "data"] {
        if let Some(Value::String(inner)) = o.get(k) {
            let inner: Value =
                serde_json::from_str(inner).map_err(|e| format!("field {k:?} is not JSON: {e}"))?;
            let Value::Object(inner) = inner else {
                return Err(format!("field {k:?} is not a JSON object"));
            };
            o.remove(k);
            o.extend(inner);
        }
    }
    Ok(())
}

/// Reads a plan entry (fields as strings or JSON values, or one `payload`/`data` JSON field);
/// extra fields are ignored. The error says which field is wrong and why.
pub fn parse_plan(fields: &Map<String, Value>) -> Result<LegacyPlan, String> {
    let mut o = fields.clone();
    unwrap_payload(&mut o)?;
    let decision: Decision = text(&o, "decision")?.trim().parse()?;
    let action: Action = match o.get("action") {
        Some(_) => text(&o, "action")?.trim().parse()?,
        None => Action::None,
    };
    let created_at_ms = match o.get("timestamp") {
        None | Some(Value::Null) => 0,
        Some(_) => decimal::<u64>(&o, "timestamp")?,
    };
    let reduce_only = if o.contains_key("reduce_only") {
        boolean(&o, "reduce_only")?
    } else {
        true
    };
    let qty = decimal_or(&o, "qty", Qty::ZERO)?;
    if qty.units() < 0 {
        return Err("field \"qty\" must not be negative".into());
    }
    Ok(LegacyPlan {
        id: plan_id(&o)?,
        symbol: text(&o, "symbol")?.trim().to_string(),
        decision,
        action,
        kill_score: decimal_or(&o, "kill_score", Score::ZERO)?,
        created_at_ms,
        reduce_only,
        qty,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantum_core::permit::P33Context;
    use quantum_core::SymbolId;

    const T: u64 = 1_769_301_008_977;

    fn q(s: &str) -> Qty {
        s.parse().unwrap()
    }

    #[test]
    fn times_read_as_utc() {
        assert_eq!(iso_ms(T), "2026-01-25T00:30:08.977Z");
        assert_eq!(iso_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(ttl_secs(15_000), "15");
        assert_eq!(ttl_secs(1_500), "1.5");
        assert_eq!(ttl_secs(0), "0");
    }

    #[test]
    fn permits_in_the_legacy_shapes() {
        let gov = GovPermitEvent {
            plan: PlanId(0xf1a8_d7f4_8713_d5cf),
            symbol: SymbolId(0),
            allow: true,
            reason: None,
            issued_at_ms: T,
            ttl_ms: 15_000,
        };
        let v: Value = serde_json::from_str(&gov_permit_json(&gov, "BTCUSDT")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"granted": true, "symbol": "BTCUSDT", "decision": "EXECUTE", "created_at": "2026-01-25T00:30:08.977Z", "ttl": 15})
        );
        let deny = P33PermitEvent {
            plan: gov.plan,
            symbol: SymbolId(0),
            allow: false,
            reason: Some(quantum_core::p33::P33Reason::ReconcileRequiredQtyMismatch),
            side: None,
            safe_qty: Qty::ZERO,
            context: P33Context {
                exchange: q("0.062"),
                ledger: q("0.002"),
                tolerance: q("0.001"),
            },
            issued_at_ms: T,
            ttl_ms: 15_000,
        };
        let v: Value = serde_json::from_str(&p33_permit_json(&deny, "BTCUSDT")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"allow": false, "symbol": "BTCUSDT", "reason": "reconcile_required_qty_mismatch", "context": {"exchange_amt": 0.062, "ledger_amt": 0.002, "diff": 0.06, "tolerance": 0.001}, "created_at": "2026-01-25T00:30:08.977Z"})
        );
        // The exact decimal text, not a float's.
        assert!(p33_permit_json(&deny, "BTCUSDT").contains("\"diff\":0.06,"));
        let allow = P33PermitEvent {
            allow: true,
            reason: None,
            safe_qty: q("0.046"),
            ..deny
        };
        let v: Value = serde_json::from_str(&p33_permit_json(&allow, "BTCUSDT")).unwrap();
        assert_eq!(v["safe_qty"], 0.046);
        assert!(v.get("reason").is_none());
    }

    #[test]
    fn plan_entries_read_flat_or_as_json_payload() {
        let flat: Map<String, Value> = serde_json::from_str(
            r#"{"plan_id":"f1a8d7f48713d5cf","symbol":"BTCUSDT","decision":"EXECUTE","action":"PARTIAL_75","kill_score":"0.539","timestamp":"1769301008976","extra":"ignored"}"#,
        )
        .unwrap();
        let p = parse_plan(&flat).unwrap();
        assert_eq!(p.id, PlanId(0xf1a8_d7f4_8713_d5cf));
        assert_eq!(
            (p.decision, p.action),
            (Decision::Execute, Action::Partial75)
        );
        assert_eq!(p.kill_score, "0.539".parse().unwrap());
        assert_eq!(p.created_at_ms, 1_769_301_008_976);
        assert!(p.reduce_only);
        let payload: Map<String, Value> = serde_json::from_str(
            r#"{"payload":"{\"plan_id\":\"f1a8d7f48713d5cf\",\"symbol\":\"BTCUSDT\",\"decision\":\"EXECUTE\",\"action\":\"PARTIAL_75\",\"kill_score\":0.539,\"timestamp\":1769301008976}"}"#,
        )
        .unwrap();
        assert_eq!(parse_plan(&payload).unwrap(), p);
        let bad = |s: &str| parse_plan(&serde_json::from_str(s).unwrap()).unwrap_err();
        assert!(
            bad(r#"{"plan_id":"x","symbol":"BTCUSDT","decision":"EXECUTE"}"#).contains("plan_id")
        );
        assert!(
            bad(r#"{"plan_id":"f1a8d7f48713d5cf","symbol":"BTCUSDT","decision":"BUY"}"#)
                .contains("EXECUTE")
        );
        assert!(bad(r#"{"plan_id":"f1a8d7f48713d5cf","symbol":"BTCUSDT","decision":"EXECUTE","kill_score":"x"}"#).contains("kill_score"));
        assert!(bad(r#"{"data":"{"}"#).contains("data"));
    }
}
