//! Test controls under `/sim` (no signature): the audit list, positions, marks, the
//! exchange's own orders, symbols' contract status (and settlement), faults, limits and the
//! clock. Bad input is answered 400 `{"error": "<what is wrong>"}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::{Faults, Limits};
use crate::decimal::Dec;
use crate::exchange::{ExchangeOrderKind, PosSide};
use crate::server::Shared;
use crate::symbols::ContractStatus;

type Sh = Arc<Shared>;

/// Routes, nested under `/sim`.
pub fn router() -> Router<Sh> {
    Router::new()
        .route("/orders", get(orders))
        .route("/positions", get(positions))
        .route("/position", post(set_position))
        .route("/mark", post(set_mark))
        .route("/liquidate", post(liquidate))
        .route(
            "/symbol-status",
            get(symbol_statuses).post(set_symbol_status),
        )
        .route("/faults", get(get_faults).post(set_faults))
        .route("/limits", get(get_limits).post(set_limits))
        .route("/limits/reset", post(reset_limits))
        .route("/clock", get(get_clock).post(set_clock))
}

fn bad(msg: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": msg.into() })),
    )
        .into_response()
}

async fn orders(State(sh): State<Sh>) -> Json<Value> {
    Json(json!(sh.ex().audit()))
}

async fn positions(State(sh): State<Sh>) -> Json<Value> {
    Json(json!(sh.ex().position_views()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetPosition {
    symbol: String,
    position_amt: String,
    position_side: Option<String>,
    entry_price: Option<String>,
}

async fn set_position(State(sh): State<Sh>, Json(b): Json<SetPosition>) -> Response {
    let Ok(amt) = Dec::parse(&b.position_amt) else {
        return bad(format!("positionAmt '{}' is not a decimal", b.position_amt));
    };
    let now = sh.clock.now_ms();
    let mut ex = sh.ex();
    if !ex.specs.contains_key(&b.symbol) {
        return bad(format!("unknown symbol '{}'", b.symbol));
    }
    let by_sign = if amt.is_neg() {
        PosSide::Short
    } else {
        PosSide::Long
    };
    let side = match ex.control_side(b.position_side.as_deref(), Some(by_sign)) {
        Ok(s) => s,
        Err(e) => return bad(e),
    };
    if (side == PosSide::Long && amt.is_neg()) || (side == PosSide::Short && amt.is_pos()) {
        return bad(format!(
            "positionAmt {amt} does not fit positionSide {}: LONG is never negative, SHORT \
             never positive",
            side.as_str()
        ));
    }
    let entry = match b.entry_price.as_deref().map(Dec::parse) {
        None => ex.mark(&b.symbol),
        Some(Ok(p)) => p,
        Some(Err(_)) => return bad("entryPrice is not a decimal"),
    };
    ex.set_position(&b.symbol, side, amt, entry, now);
    Json(json!(ex.position_views())).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetMark {
    symbol: String,
    mark_price: String,
}

async fn set_mark(State(sh): State<Sh>, Json(b): Json<SetMark>) -> Response {
    let price = match Dec::parse(&b.mark_price) {
        Ok(p) if p.is_pos() => p,
        _ => {
            return bad(format!(
                "markPrice '{}' is not a positive decimal",
                b.mark_price
            ))
        }
    };
    let now = sh.clock.now_ms();
    let mut ex = sh.ex();
    if !ex.specs.contains_key(&b.symbol) {
        return bad(format!("unknown symbol '{}'", b.symbol));
    }
    ex.marks.insert(b.symbol.clone(), price);
    ex.cross_resting(&b.symbol, now);
    Json(json!({ "symbol": b.symbol, "markPrice": price.to_string() })).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Liquidate {
    symbol: String,
    kind: String,
    quantity: Option<String>,
    position_side: Option<String>,
}

async fn liquidate(State(sh): State<Sh>, Json(b): Json<Liquidate>) -> Response {
    let Some(kind) = ExchangeOrderKind::parse(&b.kind) else {
        return bad(format!(
            "kind '{}' is not liquidation, adl or settlement",
            b.kind
        ));
    };
    let qty = match b.quantity.as_deref().map(Dec::parse) {
        None => None,
        Some(Ok(q)) => Some(q),
        Some(Err(_)) => return bad("quantity is not a decimal"),
    };
    let now = sh.clock.now_ms();
    let mut ex = sh.ex();
    if !ex.specs.contains_key(&b.symbol) {
        return bad(format!("unknown symbol '{}'", b.symbol));
    }
    let side = match ex.control_side(b.position_side.as_deref(), None) {
        Ok(s) => s,
        Err(e) => return bad(e),
    };
    match ex.exchange_close(&b.symbol, side, kind, qty, now) {
        Ok(order_id) => Json(json!({
            "orderId": order_id,
            "clientOrderId": kind.client_order_id(now),
        }))
        .into_response(),
        Err(e) => bad(e),
    }
}

async fn symbol_statuses(State(sh): State<Sh>) -> Json<Value> {
    let ex = sh.ex();
    let rows: Vec<Value> = ex
        .specs
        .keys()
        .map(|s| json!({ "symbol": s, "status": ex.status(s).as_str() }))
        .collect();
    Json(Value::Array(rows))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetSymbolStatus {
    symbol: String,
    status: String,
    #[serde(default)]
    settle: bool,
}

/// `POST /sim/symbol-status {symbol, status, settle?}`: sets the contract status (pushed on
/// `!contractInfo`); `settle: true` with `DELIVERING` or `SETTLING` also closes the symbol's
/// positions with settlement orders.
async fn set_symbol_status(State(sh): State<Sh>, body: Bytes) -> Response {
    let b: SetSymbolStatus = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return bad(format!(
                "expected {{\"symbol\": \"BTCUSDT\", \"status\": \"SETTLING\", \"settle\": \
                 true}} (settle optional): {e}"
            ))
        }
    };
    let Some(status) = ContractStatus::parse(&b.status) else {
        let all: Vec<&str> = ContractStatus::ALL.iter().map(|c| c.as_str()).collect();
        return bad(format!(
            "status '{}' is not one of {}",
            b.status,
            all.join(", ")
        ));
    };
    let now = sh.clock.now_ms();
    match sh.ex().set_status(&b.symbol, status, b.settle, now) {
        Ok(change) => Json(json!(change)).into_response(),
        Err(e) => bad(e),
    }
}

/// Applies the fields present in `patch` to `current` (a partial update).
fn merge<T: serde::Serialize + serde::de::DeserializeOwned>(
    current: &T,
    patch: Value,
) -> Result<T, String> {
    let mut v = serde_json::to_value(current).map_err(|e| e.to_string())?;
    let (Some(obj), Value::Object(p)) = (v.as_object_mut(), patch) else {
        return Err("expected a JSON object".into());
    };
    for (k, val) in p {
        if !obj.contains_key(&k) {
            return Err(format!("unknown field '{k}'"));
        }
        obj.insert(k, val);
    }
    serde_json::from_value(v).map_err(|e| e.to_string())
}

async fn get_faults(State(sh): State<Sh>) -> Json<Faults> {
    Json(sh.faults())
}

async fn set_faults(State(sh): State<Sh>, Json(patch): Json<Value>) -> Response {
    match merge(&sh.faults(), patch) {
        Ok(f) => {
            if let Err(e) = f.validate() {
                return bad(e);
            }
            sh.set_faults(f.clone());
            Json(f).into_response()
        }
        Err(e) => bad(e),
    }
}

async fn get_limits(State(sh): State<Sh>) -> Json<Limits> {
    Json(sh.limiter().limits.clone())
}

async fn set_limits(State(sh): State<Sh>, Json(patch): Json<Value>) -> Response {
    let mut lim = sh.limiter();
    match merge(&lim.limits, patch) {
        Ok(l) => {
            lim.limits = l.clone();
            Json(l).into_response()
        }
        Err(e) => bad(e),
    }
}

async fn reset_limits(State(sh): State<Sh>) -> Json<Value> {
    sh.limiter().reset();
    Json(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetClock {
    /// `null` or absent: run; a number: freeze at that time.
    freeze_at_ms: Option<i64>,
    /// Shift of the running clock against the wall clock.
    offset_ms: Option<i64>,
}

async fn get_clock(State(sh): State<Sh>) -> Json<Value> {
    Json(json!({
        "serverTime": sh.clock.now_ms(),
        "frozenAtMs": sh.clock.frozen(),
        "offsetMs": sh.clock.offset(),
    }))
}

async fn set_clock(State(sh): State<Sh>, Json(b): Json<SetClock>) -> Json<Value> {
    sh.clock.freeze(b.freeze_at_ms);
    if let Some(o) = b.offset_ms {
        sh.clock.set_offset(o);
    }
    get_clock(State(sh)).await
}
