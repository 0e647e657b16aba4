//! Order placement, query and cancel: Binance's validation rules, in Binance's order of
//! precedence as far as it is known, shared by REST and the WebSocket API.

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{json, Value};

use crate::config::{QtyPrecision, ReduceOnlyExcess};
use crate::decimal::{Dec, DecError};
use crate::error::ApiError;
use crate::exchange::{Exchange, Order, OrderType, PosSide, Side};
use crate::params::Params;
use crate::symbols::SymbolSpec;

/// `newOrderRespType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RespType {
    /// The order as accepted (NEW), before any fill.
    Ack,
    /// The order's state after matching (a MARKET order: FILLED).
    Result,
}

/// A placed order: the response body to send.
#[derive(Debug)]
pub struct Placed {
    /// JSON body for the client.
    pub body: Value,
}

/// Checks a client order id against Binance's pattern `^[\.A-Z\:/a-z0-9_-]{1,36}$`.
pub fn client_id_ok(s: &str) -> bool {
    (1..=36).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'/' | b'_' | b'-'))
}

fn parse_dec(p: &Params, name: &str) -> Result<(Dec, u32), ApiError> {
    let raw = p.require(name)?;
    match Dec::parse(raw) {
        Ok(v) => Ok((v, Dec::frac_digits(raw))),
        Err(DecError::TooPrecise) => Err(ApiError::precision()),
        Err(_) => Err(ApiError::mandatory(name)),
    }
}

fn check_qty(
    ex: &Exchange,
    spec: &SymbolSpec,
    market: bool,
    qty: Dec,
    digits: u32,
) -> Result<(), ApiError> {
    if !qty.is_pos() {
        return Err(ApiError::bad(-4003, "Quantity less than or equal to zero."));
    }
    let max_digits = match ex.qty_precision {
        QtyPrecision::Symbol => spec.quantity_precision,
        QtyPrecision::Fixed(n) => n,
    };
    if digits > max_digits {
        return Err(ApiError::precision());
    }
    let (min, max, step) = if market {
        (spec.market_min, spec.market_max, spec.market_step)
    } else {
        (spec.lot_min, spec.lot_max, spec.lot_step)
    };
    if qty < min {
        return Err(ApiError::bad(-4004, "Quantity less than min quantity."));
    }
    if qty > max {
        return Err(ApiError::bad(-4005, "Quantity greater than max quantity."));
    }
    if !(qty - min).is_multiple_of(step) {
        return Err(ApiError::bad(-4023, "Quantity not increased by step size."));
    }
    Ok(())
}

fn check_price(
    spec: &SymbolSpec,
    mark: Dec,
    side: Side,
    price: Dec,
    digits: u32,
) -> Result<(), ApiError> {
    if !price.is_pos() {
        return Err(ApiError::bad(-4001, "Price less than 0."));
    }
    if digits > spec.price_precision {
        return Err(ApiError::precision());
    }
    if price < spec.min_price {
        return Err(ApiError::bad(-4013, "Price less than min price."));
    }
    if price > spec.max_price {
        return Err(ApiError::bad(-4002, "Price greater than max price."));
    }
    if !(price - spec.min_price).is_multiple_of(spec.tick_size) {
        return Err(ApiError::bad(-4014, "Price not increased by tick size."));
    }
    let cap = mark.times(spec.percent_up);
    let floor = mark.times(spec.percent_down);
    if side == Side::Buy && price > cap {
        return Err(ApiError::bad(
            -4016,
            format!(
                "Limit price can't be higher than {}.",
                cap.to_dp(spec.price_precision)
            ),
        ));
    }
    if side == Side::Sell && price < floor {
        return Err(ApiError::bad(
            -4024,
            format!(
                "Limit price can't be lower than {}.",
                floor.to_dp(spec.price_precision)
            ),
        ));
    }
    Ok(())
}

/// Validates and places an order from `p`, filling MARKET orders at the mark at once.
pub fn place(
    ex: &mut Exchange,
    p: &Params,
    now: i64,
    via: &'static str,
) -> Result<Placed, ApiError> {
    let symbol = p.require("symbol")?.to_string();
    let spec = ex
        .specs
        .get(&symbol)
        .cloned()
        .ok_or_else(ApiError::symbol)?;
    let side = match p.require("side")? {
        "BUY" => Side::Buy,
        "SELL" => Side::Sell,
        _ => return Err(ApiError::bad(-1117, "Invalid side.")),
    };
    let order_type = match p.require("type")? {
        "MARKET" => OrderType::Market,
        "LIMIT" => OrderType::Limit,
        _ => return Err(ApiError::bad(-1116, "Invalid orderType.")),
    };
    let ps = match p.get("positionSide") {
        None => PosSide::Both,
        Some(s) => PosSide::parse(s).ok_or_else(|| ApiError::invalid_value("positionSide"))?,
    };
    if ex.hedge_mode == (ps == PosSide::Both) {
        return Err(ApiError::bad(
            -4061,
            "Order's position side does not match user's setting.",
        ));
    }
    let reduce_only = if ex.hedge_mode {
        if p.has("reduceOnly") {
            return Err(ApiError::not_required("reduceOnly"));
        }
        false
    } else {
        match p.get("reduceOnly") {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(ApiError::invalid_value("reduceOnly")),
        }
    };
    // Reducing: reduceOnly in one-way mode, the closing side of a leg in hedge mode.
    let closing = matches!(
        (ex.hedge_mode, side, ps),
        (true, Side::Sell, PosSide::Long) | (true, Side::Buy, PosSide::Short)
    );
    ex.status(&symbol).admits(reduce_only || closing)?;
    let resp_type = match p.get("newOrderRespType") {
        None | Some("ACK") => RespType::Ack,
        Some("RESULT") => RespType::Result,
        Some(_) => return Err(ApiError::invalid_value("newOrderRespType")),
    };
    let (qty, qty_digits) = parse_dec(p, "quantity")?;
    check_qty(ex, &spec, order_type == OrderType::Market, qty, qty_digits)?;

    let mark = ex.mark(&symbol);
    let (price, tif) = match order_type {
        OrderType::Market => {
            if p.has("price") {
                return Err(ApiError::not_required("price"));
            }
            (Dec::ZERO, "GTC".to_string())
        }
        OrderType::Limit => {
            let tif = p.require("timeInForce")?.to_string();
            if !matches!(tif.as_str(), "GTC" | "IOC" | "FOK" | "GTX") {
                return Err(ApiError::bad(-1115, "Invalid timeInForce."));
            }
            let (price, digits) = parse_dec(p, "price")?;
            check_price(&spec, mark, side, price, digits)?;
            (price, tif)
        }
    };

    let client_order_id = match p.get("newClientOrderId") {
        Some(c) if !client_id_ok(c) => {
            return Err(ApiError::bad(-4015, "Client order id is not valid."))
        }
        Some(c) => c.to_string(),
        None => rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(22)
            .map(char::from)
            .collect(),
    };
    if ex
        .open_orders(&symbol)
        .any(|o| o.client_order_id == client_order_id)
    {
        return Err(ApiError::bad(-4116, "ClientOrderId is duplicated."));
    }

    // A hedge-mode close is reduce-only by nature: closing a flat leg, or more than the leg
    // holds, is -2022 as a reduceOnly order would be (Binance documents no code of its own;
    // clients report -2022 for hedge-mode closes, *unverified* for the excess case). It never
    // opens the other side.
    let reducible = ex.reducible(&symbol, side, ps);
    let mut fill_cap = qty;
    if reduce_only || closing {
        if reducible == Dec::ZERO {
            return Err(ApiError::reduce_only());
        }
        if qty > reducible {
            if closing || ex.reduce_only_excess == ReduceOnlyExcess::Reject {
                return Err(ApiError::reduce_only());
            }
            fill_cap = reducible;
        }
    }
    let notional_px = if order_type == OrderType::Market {
        mark
    } else {
        price
    };
    if !(reduce_only || closing) && qty.mul_cmp(notional_px, spec.min_notional).is_lt() {
        return Err(ApiError::bad(
            -4164,
            format!(
                "Order's notional must be no smaller than {} (unless you choose reduce only).",
                spec.min_notional
            ),
        ));
    }
    // Margin: only the part that adds exposure needs it.
    let adds = qty - reducible.min(qty);
    if adds.is_pos() {
        let lev = Dec::from_int(i64::from(ex.leverage));
        let available = ex.balance + ex.total_unrealized() - ex.position_margin();
        if adds.times(notional_px).per(lev) > available {
            return Err(ApiError::bad(-2019, "Margin is insufficient."));
        }
    }
    let rests = order_type == OrderType::Limit && matches!(tif.as_str(), "GTC" | "GTX");
    if rests && ex.open_orders(&symbol).count() >= spec.max_num_orders as usize {
        return Err(ApiError::bad(-2025, "Reach max open order limit."));
    }

    let order = Order {
        order_id: ex.next_order_id(),
        symbol: symbol.clone(),
        client_order_id,
        side,
        position_side: ps,
        order_type,
        time_in_force: tif.clone(),
        orig_qty: qty,
        price,
        executed_qty: Dec::ZERO,
        cum_quote: Dec::ZERO,
        status: "NEW",
        reduce_only,
        time: now,
        update_time: now,
        via,
    };
    ex.orders.push(order);
    let idx = ex.orders.len() - 1;
    let ack = order_json(ex, idx, false);
    let ev = ex.order_event(idx, "NEW", Dec::ZERO, Dec::ZERO, 0, Dec::ZERO, now);
    ex.emit(ev);

    let marketable = match side {
        Side::Buy => price >= mark,
        Side::Sell => price <= mark,
    };
    match order_type {
        OrderType::Market => {
            ex.fill(idx, fill_cap, mark, now);
            if ex.orders[idx].is_open() {
                ex.close_order(idx, "EXPIRED", now);
            }
        }
        OrderType::Limit if !rests => {
            if marketable && (tif != "FOK" || fill_cap == qty) {
                ex.fill(idx, fill_cap, mark, now);
            }
            if ex.orders[idx].is_open() {
                ex.close_order(idx, "EXPIRED", now);
            }
        }
        OrderType::Limit => {}
    }
    let body = match resp_type {
        RespType::Ack => ack,
        RespType::Result => order_json(ex, idx, false),
    };
    Ok(Placed { body })
}

/// Finds the order named by `orderId` or `origClientOrderId` on `symbol`.
fn find(ex: &Exchange, p: &Params, missing: fn() -> ApiError) -> Result<usize, ApiError> {
    let symbol = p.require("symbol")?;
    if !ex.specs.contains_key(symbol) {
        return Err(ApiError::symbol());
    }
    let idx = if let Some(id) = p.int("orderId")? {
        ex.order_by_id(id as u64)
            .filter(|i| ex.orders[*i].symbol == symbol)
    } else if let Some(cid) = p.get("origClientOrderId") {
        ex.order_by_client_id(symbol, cid)
    } else {
        return Err(ApiError::bad(
            -1102,
            "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
        ));
    };
    idx.ok_or_else(missing)
}

/// `GET /fapi/v1/order`: -2013 when unknown, or younger than `lag_ms` at `now` (the query
/// side has not seen it yet).
pub fn query(ex: &Exchange, p: &Params, now: i64, lag_ms: u64) -> Result<Value, ApiError> {
    let idx = find(ex, p, ApiError::no_such_order)?;
    if now.saturating_sub(ex.orders[idx].time) < lag_ms as i64 {
        return Err(ApiError::no_such_order());
    }
    Ok(order_json(ex, idx, true))
}

/// `DELETE /fapi/v1/order`: -2011 when unknown or no longer open.
pub fn cancel(ex: &mut Exchange, p: &Params, now: i64) -> Result<Value, ApiError> {
    let idx = find(ex, p, ApiError::unknown_order)?;
    if !ex.orders[idx].is_open() {
        return Err(ApiError::unknown_order());
    }
    ex.close_order(idx, "CANCELED", now);
    Ok(order_json(ex, idx, false))
}

const DAY_MS: i64 = 86_400_000;

/// `allOrders`: the `startTime`..`endTime` span must be under this (Binance: "less than 7
/// days"); the span taken when one or both are left out.
pub const HISTORY_SPAN_MS: i64 = 7 * DAY_MS;

/// `allOrders` leaves out an order CANCELED or EXPIRED without any fill once it is older than
/// this (Binance documents 3 days).
pub const UNFILLED_KEPT_MS: i64 = 3 * DAY_MS;

/// `allOrders` leaves out every order older than this (Binance documents 90 days).
pub const HISTORY_KEPT_MS: i64 = 90 * DAY_MS;

/// `GET /fapi/v1/allOrders`: the account's orders of `symbol`, ascending by order id.
///
/// The time window (`startTime`..`endTime`, both inclusive, on the creation time) must span
/// less than [`HISTORY_SPAN_MS`] (-1127) and not run backwards (-1023); a missing end is taken
/// [`HISTORY_SPAN_MS`] from the other, and neither means the last 7 days. `orderId` keeps the
/// orders with ids at or above it. With `orderId` or `startTime` the first `limit` orders
/// are returned, otherwise the most recent `limit` (default 500, at most 1000). Orders past
/// [`HISTORY_KEPT_MS`], and CANCELED or EXPIRED orders without a fill past
/// [`UNFILLED_KEPT_MS`], are not returned.
pub fn all_orders(ex: &Exchange, p: &Params, now: i64) -> Result<Value, ApiError> {
    let symbol = p.require("symbol")?;
    if !ex.specs.contains_key(symbol) {
        return Err(ApiError::symbol());
    }
    let limit = match p.int("limit")? {
        None => 500,
        // Above the maximum: the maximum (*unverified*: Binance may refuse it).
        Some(n) if n >= 1 => n.min(1000) as usize,
        Some(_) => return Err(ApiError::invalid_value("limit")),
    };
    let from_id = p.int("orderId")?;
    let start_time = p.int("startTime")?;
    let (start, end) = match (start_time, p.int("endTime")?) {
        (Some(s), Some(e)) if s > e => {
            return Err(ApiError::bad(-1023, "Start time is greater than end time."))
        }
        (Some(s), Some(e)) if e - s >= HISTORY_SPAN_MS => {
            return Err(ApiError::bad(
                -1127,
                format!(
                    "More than {} hours between startTime and endTime.",
                    HISTORY_SPAN_MS / 3_600_000
                ),
            ))
        }
        (Some(s), Some(e)) => (s, e),
        (Some(s), None) => (s, s + HISTORY_SPAN_MS - 1),
        (None, Some(e)) => (e - HISTORY_SPAN_MS + 1, e),
        (None, None) => (now - HISTORY_SPAN_MS + 1, now),
    };
    let listed = |o: &Order| {
        let never_filled = matches!(o.status, "CANCELED" | "EXPIRED") && !o.executed_qty.is_pos();
        o.symbol == symbol
            && (start..=end).contains(&o.time)
            && from_id.is_none_or(|id| o.order_id >= id as u64)
            && o.time + HISTORY_KEPT_MS >= now
            && !(never_filled && o.time + UNFILLED_KEPT_MS < now)
    };
    let found: Vec<usize> = (0..ex.orders.len())
        .filter(|i| listed(&ex.orders[*i]))
        .collect();
    let page = if from_id.is_some() || start_time.is_some() {
        &found[..found.len().min(limit)]
    } else {
        &found[found.len().saturating_sub(limit)..]
    };
    Ok(Value::Array(
        page.iter().map(|i| order_json(ex, *i, true)).collect(),
    ))
}

/// The REST order shape; `with_time` for GET (adds `time`, drops `cumQty`).
pub fn order_json(ex: &Exchange, idx: usize, with_time: bool) -> Value {
    let o = &ex.orders[idx];
    let spec = &ex.specs[&o.symbol];
    let (pp, qp) = (spec.price_precision, spec.quantity_precision);
    let mut v = json!({
        "orderId": o.order_id,
        "symbol": o.symbol,
        "status": o.status,
        "clientOrderId": o.client_order_id,
        "price": o.price.to_dp(pp),
        "avgPrice": o.avg_price().to_dp(pp.max(5)),
        "origQty": o.orig_qty.to_dp(qp),
        "executedQty": o.executed_qty.to_dp(qp),
        "cumQty": o.executed_qty.to_dp(qp),
        "cumQuote": o.cum_quote.to_dp(pp.max(5)),
        "timeInForce": o.time_in_force,
        "type": o.order_type.as_str(),
        "reduceOnly": o.reduce_only,
        "closePosition": false,
        "side": o.side.as_str(),
        "positionSide": o.position_side.as_str(),
        "stopPrice": "0",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": false,
        "origType": o.order_type.as_str(),
        "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": 0,
        "updateTime": o.update_time,
    });
    if with_time {
        v["time"] = json!(o.time);
        if let Some(m) = v.as_object_mut() {
            m.remove("cumQty");
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_pattern() {
        assert!(client_id_ok("plan-00ab:1/x_y.z"));
        assert!(!client_id_ok(""));
        assert!(!client_id_ok(&"a".repeat(37)));
        assert!(!client_id_ok("has space"));
        assert!(!client_id_ok("é"));
    }
}
