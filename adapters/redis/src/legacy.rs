//! The legacy Redis contract: stream and key names, the permits' JSON, the fields of plan and
//! result entries, and the position hash.
//!
//! | name | type | content |
//! |---|---|---|
//! | [`PLAN_STREAM`] | stream | one entry per plan: `plan_id`, `symbol`, `decision`, `action`, `kill_score`, `timestamp` (optional), or the same as JSON in one `payload` / `data` field |
//! | [`permit_key`] `quantum:permit:<plan_id>` | string, TTL | governor permit [`gov_permit_json`] |
//! | [`p33_permit_key`] `quantum:permit:p33:<plan_id>` | string, TTL | P3.3 permit [`p33_permit_json`] |
//! | [`position_key`] `quantum:position:<SYMBOL>` | hash | [`ledger_field`] per leg: `ledger_amount` (one-way), `ledger_amount_long`, `ledger_amount_short` (hedge mode; operators set them); [`exchange_field`] likewise, `mark_price`, `updated_at` |
//! | [`RESULT_STREAM`] | stream | one entry per plan, [`result_fields`] (new here) |
//! | [`DLQ_STREAM`] | stream | entries that could not be read, with the original fields and `error` (new here) |
//!
//! Every symbol written is the exchange's (`BTCUSDT`), never a leg's label (`BTCUSDT:LONG`):
//! the functions here take a leg's label ([`PositionSide::label`]) or a symbol and write the
//! symbol; a hedge-mode leg's side goes into fields of its own (`position_side` of a result
//! entry, the per-side fields of the position hash).
//!
//! Amounts in JSON are numbers written exactly (`0.062`, never `0.06199999`); in hash and
//! stream fields they are decimal strings. Times are UTC ISO 8601 with milliseconds
//! (`2026-01-25T00:30:08.977Z`), TTLs in seconds as the legacy `ttl` field has them.

use quantum_core::event::{GovPermitEvent, P33PermitEvent};
use quantum_core::governor::GovReason;
use quantum_core::p33::P33Reason;
use quantum_core::permit::P33Context;
use quantum_core::{
    Action, Decision, Plan, PlanId, PlanResult, PositionSide, Price, Qty, Score, Side, SymbolId,
};
use serde_json::{Map, Value};

/// The exit brain's plans.
pub const PLAN_STREAM: &str = "quantum:stream:apply.plan";
/// One entry per processed plan.
pub const RESULT_STREAM: &str = "quantum:stream:apply.result";
/// Plan entries that could not be read.
pub const DLQ_STREAM: &str = "quantum:stream:apply.plan.dlq";
/// Prefix of the position hashes.
pub const POSITION_PREFIX: &str = "quantum:position:";

/// Prefix of the governor's permit keys (and, followed by `p33:`, of P3.3's).
pub const PERMIT_PREFIX: &str = "quantum:permit:";
/// Prefix of P3.3's permit keys.
pub const P33_PERMIT_PREFIX: &str = "quantum:permit:p33:";
/// The field of a position hash that operators set by hand: the ledger of a one-way symbol
/// ([`ledger_field`] names those of a hedge-mode symbol's legs).
pub const LEDGER_FIELD: &str = "ledger_amount";

/// The field of a position hash holding the ledger of the leg on `side`: `ledger_amount` for a
/// one-way symbol (`BOTH`), `ledger_amount_long` and `ledger_amount_short` for the legs of a
/// hedge-mode symbol. The one owner of these names: the bridge's scripts are handed the field.
pub fn ledger_field(side: PositionSide) -> &'static str {
    match side {
        PositionSide::Both => LEDGER_FIELD,
        PositionSide::Long => "ledger_amount_long",
        PositionSide::Short => "ledger_amount_short",
    }
}

/// The field of a position hash holding the exchange's amount of the leg on `side`:
/// `exchange_amount` (one-way), `exchange_amount_long`, `exchange_amount_short` (hedge mode).
pub fn exchange_field(side: PositionSide) -> &'static str {
    match side {
        PositionSide::Both => "exchange_amount",
        PositionSide::Long => "exchange_amount_long",
        PositionSide::Short => "exchange_amount_short",
    }
}

/// Whether a leg's amount is never positive: a hedge-mode `SHORT` leg, whose amounts are
/// negative as Binance shows `positionAmt` in hedge mode.
pub const fn never_positive(side: PositionSide) -> bool {
    matches!(side, PositionSide::Short)
}

/// A ledger amount read from the position hash field of the leg on `side`
/// ([`ledger_field`]): the decimal, except that a positive amount in a `SHORT` leg's field
/// reads as its negative (a short is never positive; operators may write it unsigned). The
/// second value says it was so read (for a warning). The error is the parse error's text.
pub fn read_ledger_amount(side: PositionSide, text: &str) -> Result<(Qty, bool), String> {
    let q: Qty = text.trim().parse().map_err(|e| format!("{e}"))?;
    if never_positive(side) && q.units() > 0 {
        return Ok((Qty::from_units(-q.units()), true));
    }
    Ok((q, false))
}
/// The field of a result entry written in failover mode: the lease epoch it was written under.
pub const RESULT_EPOCH_FIELD: &str = "epoch";

/// `quantum:permit:<plan_id>`: the governor's permit.
pub fn permit_key(plan: PlanId) -> String {
    format!("{PERMIT_PREFIX}{plan}")
}

/// `quantum:permit:p33:<plan_id>`: P3.3's permit.
pub fn p33_permit_key(plan: PlanId) -> String {
    format!("{P33_PERMIT_PREFIX}{plan}")
}

/// `quantum:position:<SYMBOL>` of a symbol or of a leg's label (its symbol's hash: the legs of
/// a hedge-mode symbol share it, each with its own fields).
pub fn position_key(leg: &str) -> String {
    format!("{POSITION_PREFIX}{}", PositionSide::split_label(leg).0)
}

/// The symbol a position key names (`None` for any other key).
pub fn position_symbol(key: &str) -> Option<&str> {
    key.strip_prefix(POSITION_PREFIX).filter(|s| !s.is_empty())
}

/// Which permit a key holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PermitKind {
    /// The governor's (`quantum:permit:<id>`).
    Gov,
    /// P3.3's (`quantum:permit:p33:<id>`).
    P33,
}

/// The permit kind and plan a permit key names (`None` for any other key).
pub fn parse_permit_key(key: &str) -> Option<(PermitKind, PlanId)> {
    let (kind, id) = match key.strip_prefix(P33_PERMIT_PREFIX) {
        Some(id) => (PermitKind::P33, id),
        None => (PermitKind::Gov, key.strip_prefix(PERMIT_PREFIX)?),
    };
    Some((kind, id.parse().ok()?))
}

/// The key of `kind`'s permit for `plan`.
pub fn permit_key_of(kind: PermitKind, plan: PlanId) -> String {
    match kind {
        PermitKind::Gov => permit_key(plan),
        PermitKind::P33 => p33_permit_key(plan),
    }
}

/// The exchange side of a position hash for the leg on `side`, as the bridge writes it:
/// [`exchange_field`] (`exchange_amount`, or a hedge leg's `exchange_amount_long` /
/// `exchange_amount_short`), `mark_price`, `updated_at`.
pub fn exchange_fields(
    side: PositionSide,
    amount: Qty,
    mark: Price,
    time_ms: u64,
) -> [(&'static str, String); 3] {
    [
        (exchange_field(side), amount.to_string()),
        ("mark_price", mark.to_string()),
        ("updated_at", iso_ms(time_ms)),
    ]
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

/// `2026-01-25T00:30:08.977Z` (or without the fraction, or with up to 9 fractional digits; or
/// with an offset, `+02:00`, `-0500`, instead of `Z`) as Unix ms; `None` for anything else. The
/// inverse of [`iso_ms`].
pub fn parse_iso_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    let (s, offset_s) = match s.strip_suffix('Z') {
        Some(s) => (s, 0),
        None => split_offset(s)?,
    };
    let (date, time) = s.split_once('T')?;
    let num = |t: &str, lo: i64, hi: i64| -> Option<i64> {
        let v: i64 = t
            .parse()
            .ok()
            .filter(|_| t.bytes().all(|b| b.is_ascii_digit()))?;
        (lo..=hi).contains(&v).then_some(v)
    };
    let mut d = date.splitn(3, '-');
    let (y, m, day) = (
        num(d.next()?, 1970, 9999)?,
        num(d.next()?, 1, 12)?,
        num(d.next()?, 1, 31)?,
    );
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':');
    let (h, mi, sec) = (
        num(t.next()?, 0, 23)?,
        num(t.next()?, 0, 59)?,
        num(t.next()?, 0, 60)?,
    );
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Milliseconds: the first three fractional digits, padded ("9" is 900 ms); finer ones dropped.
    let ms = if frac.is_empty() {
        0
    } else {
        format!("{:0<3}", &frac[..frac.len().min(3)]).parse().ok()?
    };
    // Days from 1970-01-01 to the civil date (H. Hinnant's days_from_civil).
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(((days * 86_400 + h * 3600 + mi * 60 + sec - offset_s) * 1000) + ms).ok()
}

/// A time without its trailing UTC offset (`+02:00`, `-05:00`, `+0200`) and that offset in
/// seconds east of UTC.
fn split_offset(s: &str) -> Option<(&str, i64)> {
    let time_at = s.find('T')?;
    let sign_at = s[time_at..].rfind(['+', '-'])? + time_at;
    let (rest, off) = s.split_at(sign_at);
    let sign = if off.starts_with('-') { -1 } else { 1 };
    let digits: String = off[1..].chars().filter(|c| *c != ':').collect();
    let shape_ok = digits.len() == 4
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(off.len(), 5 | 6)
        && (off.len() == 5 || off.as_bytes()[3] == b':');
    if !shape_ok {
        return None;
    }
    let (h, m): (i64, i64) = (digits[..2].parse().ok()?, digits[2..].parse().ok()?);
    (h <= 23 && m <= 59).then_some((rest, sign * (h * 3600 + m * 60)))
}

/// Below this a numeric `timestamp` is seconds, at or above it milliseconds: `1e11` seconds is
/// the year 5138, `1e11` milliseconds is March 1973, so no time a plan carries is ambiguous.
pub const SECONDS_BELOW: f64 = 1e11;
/// At or above this a numeric `timestamp` is unreadable (milliseconds past the year 2286:
/// microseconds or nanoseconds, most likely).
pub const MILLIS_BELOW: f64 = 1e13;

/// A plan's `timestamp` as Unix ms: seconds with or without a fraction (Python's
/// `str(time.time())`, `1796511749.7101772`), integer milliseconds (`1796511749710`), told apart
/// by magnitude ([`SECONDS_BELOW`]), or an ISO 8601 time with `Z` or an offset. The error says
/// what was found.
pub fn plan_time_ms(v: &Value) -> Result<u64, String> {
    let text = match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        other => return Err(format!("timestamp {other} is neither a number nor a text")),
    };
    if text.contains('T') {
        return parse_iso_ms(&text).ok_or_else(|| {
            format!("timestamp {text:?} is not an ISO 8601 time with Z or an offset")
        });
    }
    let decimal = !text.is_empty()
        && text.bytes().filter(|b| *b == b'.').count() <= 1
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && text.bytes().any(|b| b.is_ascii_digit());
    let n: f64 = match text.parse() {
        Ok(n) if decimal => n,
        _ => {
            return Err(format!(
                "timestamp {text:?} is not seconds, milliseconds or an ISO 8601 time"
            ))
        }
    };
    if n < SECONDS_BELOW {
        Ok((n * 1000.0).round() as u64)
    } else if n < MILLIS_BELOW {
        Ok(n as u64)
    } else {
        Err(format!(
            "timestamp {text:?} is too large for milliseconds (microseconds are not read)"
        ))
    }
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

/// The governor's permit as the legacy Governor SETs it, for the leg `leg` (its symbol is
/// written). New here: a deny adds `"reason"`.
pub fn gov_permit_json(p: &GovPermitEvent, leg: &str) -> String {
    let symbol = PositionSide::split_label(leg).0;
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

/// P3.3's permit as the legacy P3.3 SETs it, for the leg `leg` (its symbol is written): the
/// amounts it judged in `context`, a deny's `reason`, an allow's `safe_qty`.
pub fn p33_permit_json(p: &P33PermitEvent, leg: &str) -> String {
    let symbol = PositionSide::split_label(leg).0;
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

/// The fields of a result entry (new here) of a plan on the leg `leg` (a leg's label or a
/// symbol: `symbol` is the exchange's; a hedge-mode leg adds `position_side`, `LONG` or
/// `SHORT`, after the others). `order_id` is the exchange's, once known.
pub fn result_fields(
    r: &PlanResult,
    leg: &str,
    order_id: Option<u64>,
) -> Vec<(&'static str, String)> {
    let executed = r.executed();
    let (symbol, side) = PositionSide::split_label(leg);
    let mut f = vec![
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
    ];
    if side.is_hedge() {
        f.push(("position_side", side.as_str().to_owned()));
    }
    f
}

/// The fields of a plan entry as the exit brain XADDs them: `plan_id`, `symbol`, `decision`,
/// `action`, `kill_score`, and only when they differ from what an absent field reads as,
/// `timestamp` (ms), `reduce_only`, `qty` and `position_side`. `leg` is the plan's symbol or its
/// leg's label (the symbol is written). [`parse_plan`] reads them back into the same plan.
pub fn plan_entry_fields(plan: &Plan, leg: &str) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("plan_id", plan.id.to_string()),
        ("symbol", PositionSide::split_label(leg).0.to_string()),
        ("decision", plan.decision.to_string()),
        ("action", plan.action.to_string()),
        ("kill_score", plan.kill_score.to_string()),
    ];
    if plan.created_at_ms != 0 {
        f.push(("timestamp", plan.created_at_ms.to_string()));
    }
    if !plan.reduce_only {
        f.push(("reduce_only", "false".into()));
    }
    if plan.qty != Qty::ZERO {
        f.push(("qty", plan.qty.to_string()));
    }
    if let Some(side) = plan.position_side {
        f.push(("position_side", side.as_str().into()));
    }
    f
}

/// [`plan_entry_fields`] as one JSON object on one line: the value of a `payload` field, and a
/// plan line of `quantum ctl inject`.
pub fn plan_entry_json(plan: &Plan, symbol: &str) -> String {
    let o: Map<String, Value> = plan_entry_fields(plan, symbol)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v)))
        .collect();
    Value::Object(o).to_string()
}

/// A plan entry read: the core's plan, and what of the entry was set aside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadPlan {
    /// The plan. Its created time is its own `timestamp`, else the time of its entry.
    pub plan: Plan,
    /// The plan's own `timestamp` (Unix ms), when it has a readable one (`None`: the plan is
    /// dated by its entry, or undated).
    pub timestamp_ms: Option<u64>,
    /// Why an optional field was set aside (a warning: the plan goes on without it).
    pub warning: Option<String>,
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

/// Reads a plan entry, from the plan stream or a JSON line, into the core's plan: fields as
/// strings or JSON values, or one `payload`/`data` JSON field; numbers as JSON numbers or
/// decimal strings; extra fields are ignored. `symbol` numbers the symbol's name and the
/// position side the plan names, if any (its error is the entry's; see
/// [`quantum_ipc::codes::PositionSide::plan_leg`]). An unreadable `position_side` is a
/// warning and names none: a hedge-mode symbol's core then denies the plan
/// `position_side_required`, never guessing a side. A plan without a readable `timestamp` is created at `entry_ms` (the time
/// Redis added its entry; 0 when unknown), and an unreadable one is the warning. The error
/// says which field is wrong and why.
pub fn parse_plan(
    fields: &Map<String, Value>,
    symbol: impl FnOnce(&str, Option<PositionSide>) -> Result<SymbolId, String>,
    entry_ms: u64,
) -> Result<ReadPlan, String> {
    let mut o = fields.clone();
    unwrap_payload(&mut o)?;
    let decision: Decision = text(&o, "decision")?.trim().parse()?;
    let action: Action = match o.get("action") {
        Some(_) => text(&o, "action")?.trim().parse()?,
        None => Action::None,
    };
    let (created_at_ms, warning) = match o.get("timestamp") {
        None | Some(Value::Null) => (0, None),
        Some(v) => match plan_time_ms(v) {
            Ok(ms) => (ms, None),
            Err(why) => (0, Some(why)),
        },
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
    let id = plan_id(&o)?;
    let name = text(&o, "symbol")?.trim();
    let kill_score = decimal_or(&o, "kill_score", Score::ZERO)?;
    let (position_side, side_warning) = match o.get("position_side") {
        None | Some(Value::Null) => (None, None),
        Some(Value::String(t)) => match PositionSide::parse_liberal(t) {
            Ok(s) => (s, None),
            Err(why) => (None, Some(why)),
        },
        Some(v) => (
            None,
            Some(format!("position_side {v} is not LONG, SHORT or BOTH")),
        ),
    };
    let plan = Plan {
        id,
        symbol: symbol(name, position_side)?,
        decision,
        action,
        kill_score,
        created_at_ms: match created_at_ms {
            0 => entry_ms,
            ms => ms,
        },
        reduce_only,
        qty,
        position_side,
    };
    let warning = warning.map(|why| match entry_ms {
        0 => format!("{why}; the plan has no created time"),
        _ => format!("{why}; the plan is dated by its entry id"),
    });
    let side_warning = side_warning.map(|why| format!("{why}; the plan names no position side"));
    let warning = match (warning, side_warning) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    };
    Ok(ReadPlan {
        plan,
        timestamp_ms: (created_at_ms != 0).then_some(created_at_ms),
        warning,
    })
}

/// A governor permit as a legacy Governor SETs it ([`gov_permit_json`] is the same shape).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacyGovPermit {
    /// `granted`.
    pub granted: bool,
    /// `symbol` (empty when absent).
    pub symbol: String,
    /// `reason` of a deny; an unknown reason text reads as `denied`.
    pub reason: Option<GovReason>,
    /// `created_at` (Unix ms), when present and readable.
    pub created_at_ms: Option<u64>,
    /// `ttl` in ms, when present.
    pub ttl_ms: Option<u64>,
}

/// A P3.3 permit as a legacy P3.3 SETs it ([`p33_permit_json`] is the same shape).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacyP33Permit {
    /// `allow`.
    pub allow: bool,
    /// `symbol` (empty when absent).
    pub symbol: String,
    /// `reason` of a deny; an unknown reason text reads as `denied`.
    pub reason: Option<P33Reason>,
    /// `safe_qty` of an allow (zero when absent).
    pub safe_qty: Qty,
    /// `side` (new here, optional): the closing side, `BUY` or `SELL`.
    pub side: Option<Side>,
    /// `context` amounts (zero when absent; `diff` is derived, not read).
    pub context: P33Context,
    /// `created_at` (Unix ms), when present and readable.
    pub created_at_ms: Option<u64>,
    /// `ttl` in ms, when present.
    pub ttl_ms: Option<u64>,
}

fn json_object(text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str(text) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err("not a JSON object".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

fn optional_text(o: &Map<String, Value>, k: &str) -> Result<String, String> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(_) => text(o, k).map(str::to_owned),
    }
}

/// `created_at` and `ttl` (seconds, possibly fractional) of a permit.
fn permit_times(o: &Map<String, Value>) -> Result<(Option<u64>, Option<u64>), String> {
    let created = match o.get("created_at") {
        None | Some(Value::Null) => None,
        Some(_) => Some(
            parse_iso_ms(text(o, "created_at")?)
                .ok_or("field \"created_at\" must be a UTC time like 2026-01-25T00:30:08.977Z")?,
        ),
    };
    let ttl = match o.get("ttl") {
        None | Some(Value::Null) => None,
        Some(_) => {
            let secs: Qty = decimal(o, "ttl")?;
            if secs.units() < 0 {
                return Err("field \"ttl\" must not be negative".into());
            }
            // Qty has 8 decimals: units / 1e5 is milliseconds.
            Some((secs.units() / 100_000) as u64)
        }
    };
    Ok((created, ttl))
}

/// Reads the JSON of `quantum:permit:<id>`. Extra fields are ignored; the error says which
/// field is wrong and why.
pub fn parse_gov_permit(json: &str) -> Result<LegacyGovPermit, String> {
    let o = json_object(json)?;
    let granted = boolean(&o, "granted")?;
    let reason = match o.get("reason") {
        Some(Value::String(r)) if !granted => {
            Some(GovReason::parse(r).unwrap_or(GovReason::Denied))
        }
        _ if !granted => Some(GovReason::Denied),
        _ => None,
    };
    let (created_at_ms, ttl_ms) = permit_times(&o)?;
    Ok(LegacyGovPermit {
        granted,
        symbol: optional_text(&o, "symbol")?,
        reason,
        created_at_ms,
        ttl_ms,
    })
}

/// Reads the JSON of `quantum:permit:p33:<id>`. Extra fields are ignored; the error says which
/// field is wrong and why.
pub fn parse_p33_permit(json: &str) -> Result<LegacyP33Permit, String> {
    let o = json_object(json)?;
    let allow = boolean(&o, "allow")?;
    let reason = match o.get("reason") {
        Some(Value::String(r)) if !allow => Some(P33Reason::parse(r).unwrap_or(P33Reason::Denied)),
        _ if !allow => Some(P33Reason::Denied),
        _ => None,
    };
    let context = match o.get("context") {
        None | Some(Value::Null) => P33Context::default(),
        Some(Value::Object(c)) => P33Context {
            exchange: decimal_or(c, "exchange_amt", Qty::ZERO)
                .map_err(|e| format!("context: {e}"))?,
            ledger: decimal_or(c, "ledger_amt", Qty::ZERO).map_err(|e| format!("context: {e}"))?,
            tolerance: decimal_or(c, "tolerance", Qty::ZERO)
                .map_err(|e| format!("context: {e}"))?,
        },
        Some(_) => return Err("field \"context\" must be a JSON object".into()),
    };
    let safe_qty: Qty = decimal_or(&o, "safe_qty", Qty::ZERO)?;
    if safe_qty.units() < 0 {
        return Err("field \"safe_qty\" must not be negative".into());
    }
    let side = match o.get("side") {
        None | Some(Value::Null) => None,
        Some(_) => Some(text(&o, "side")?.trim().parse::<Side>()?),
    };
    let (created_at_ms, ttl_ms) = permit_times(&o)?;
    Ok(LegacyP33Permit {
        allow,
        symbol: optional_text(&o, "symbol")?,
        reason,
        safe_qty,
        side,
        context,
        created_at_ms,
        ttl_ms,
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
    fn times_parse_back() {
        for ms in [0, T, 951_782_400_000, 4_102_444_799_999] {
            assert_eq!(parse_iso_ms(&iso_ms(ms)), Some(ms), "{}", iso_ms(ms));
        }
        assert_eq!(parse_iso_ms("2026-01-25T00:30:08Z"), Some(T - 977));
        assert_eq!(parse_iso_ms("2026-01-25T00:30:08.9Z"), Some(T - 77));
        assert_eq!(parse_iso_ms("2026-01-25T00:30:08.977123Z"), Some(T));
        for bad in [
            "",
            "2026-01-25 00:30:08Z",
            "2026-01-25T00:30:08",
            "2026-13-25T00:30:08Z",
            "2026-01-25T24:30:08Z",
            "2026-01-25T00:30:08.x1Z",
            "+026-01-25T00:30:08Z",
        ] {
            assert_eq!(parse_iso_ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn keys_name_their_permit_or_symbol() {
        let id = PlanId(0xf1a8_d7f4_8713_d5cf);
        assert_eq!(
            parse_permit_key(&permit_key(id)),
            Some((PermitKind::Gov, id))
        );
        assert_eq!(
            parse_permit_key(&p33_permit_key(id)),
            Some((PermitKind::P33, id))
        );
        assert_eq!(permit_key_of(PermitKind::P33, id), p33_permit_key(id));
        assert_eq!(parse_permit_key("quantum:permit:xyz"), None);
        assert_eq!(parse_permit_key("quantum:position:BTCUSDT"), None);
        assert_eq!(position_symbol(&position_key("BTCUSDT")), Some("BTCUSDT"));
        assert_eq!(position_symbol("quantum:position:"), None);
        assert_eq!(position_symbol(&permit_key(id)), None);
    }

    #[test]
    fn legacy_permits_read_back_what_the_core_writes() {
        let gov = GovPermitEvent {
            plan: PlanId(1),
            symbol: SymbolId(0),
            allow: false,
            reason: Some(GovReason::Cooldown),
            issued_at_ms: T,
            ttl_ms: 1_500,
        };
        let g = parse_gov_permit(&gov_permit_json(&gov, "BTCUSDT")).unwrap();
        assert_eq!(
            g,
            LegacyGovPermit {
                granted: false,
                symbol: "BTCUSDT".into(),
                reason: Some(GovReason::Cooldown),
                created_at_ms: Some(T),
                ttl_ms: Some(1_500),
            }
        );
        // The seeds' shape, with the ttl as a number of seconds.
        let g = parse_gov_permit(
            r#"{"granted": true, "symbol": "BTCUSDT", "decision": "EXECUTE", "created_at": "2026-01-25T00:30:08.977Z", "ttl": 15}"#,
        )
        .unwrap();
        assert!(g.granted && g.reason.is_none());
        assert_eq!(g.ttl_ms, Some(15_000));
        let p = P33PermitEvent {
            plan: PlanId(1),
            symbol: SymbolId(0),
            allow: true,
            reason: None,
            side: Some(Side::Sell),
            safe_qty: q("0.046"),
            context: P33Context {
                exchange: q("0.062"),
                ledger: q("0.062"),
                tolerance: q("0.001"),
            },
            issued_at_ms: T,
            ttl_ms: 15_000,
        };
        let r = parse_p33_permit(&p33_permit_json(&p, "BTCUSDT")).unwrap();
        assert!(r.allow && r.reason.is_none());
        assert_eq!((r.safe_qty, r.context), (p.safe_qty, p.context));
        assert_eq!((r.created_at_ms, r.ttl_ms, r.side), (Some(T), None, None));
        let deny = parse_p33_permit(
            r#"{"allow": false, "symbol": "BTCUSDT", "reason": "reconcile_required_qty_mismatch", "context": {"exchange_amt": 0.062, "ledger_amt": 0.002, "diff": 0.060, "tolerance": 0.001}, "created_at": "2026-01-25T00:30:08.978Z"}"#,
        )
        .unwrap();
        assert_eq!(deny.reason, Some(P33Reason::ReconcileRequiredQtyMismatch));
        assert_eq!(deny.context.ledger, q("0.002"));
        // A reason this side does not know still denies.
        let odd = parse_p33_permit(r#"{"allow": false, "reason": "something_new"}"#).unwrap();
        assert_eq!(odd.reason, Some(P33Reason::Denied));
        let sided =
            parse_p33_permit(r#"{"allow": true, "safe_qty": "0.5", "side": "BUY"}"#).unwrap();
        assert_eq!(sided.side, Some(Side::Buy));
        let bad = |s: &str| parse_p33_permit(s).unwrap_err();
        assert!(bad("{").contains("not JSON"));
        assert!(bad(r#"{"symbol":"BTCUSDT"}"#).contains("allow"));
        assert!(bad(r#"{"allow":true,"safe_qty":"x"}"#).contains("safe_qty"));
        assert!(bad(r#"{"allow":true,"created_at":"yesterday"}"#).contains("created_at"));
        assert!(bad(r#"{"allow":true,"context":{"ledger_amt":"?"}}"#).contains("ledger_amt"));
        assert!(parse_gov_permit(r#"{"granted":"maybe"}"#)
            .unwrap_err()
            .contains("granted"));
    }
}
