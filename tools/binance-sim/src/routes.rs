//! REST routes under `/fapi`: request weights, rate-limit headers, latency, authentication,
//! and the handlers. WebSocket routes live in `ws`, test controls in `control`.

use std::sync::Arc;

use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::auth;
use crate::error::ApiError;
use crate::exchange::{Exchange, PosSide};
use crate::orders;
use crate::params::Params;
use crate::placement::{self, Outcome};
use crate::server::{ConnCtx, Shared};

type Sh = Arc<Shared>;
type ApiResult = Result<Json<Value>, ApiError>;

/// The whole application router.
pub fn router(shared: Sh) -> Router {
    let fapi = Router::new()
        .route("/fapi/v1/ping", get(|| async { Json(json!({})) }))
        .route("/fapi/v1/time", get(time))
        .route("/fapi/v1/exchangeInfo", get(exchange_info))
        .route("/fapi/v1/premiumIndex", get(premium_index))
        .route(
            "/fapi/v1/order",
            get(get_order).post(post_order).delete(delete_order),
        )
        .route("/fapi/v1/openOrders", get(open_orders))
        .route("/fapi/v1/allOrders", get(all_orders))
        .route("/fapi/v2/positionRisk", get(position_risk_v2))
        .route("/fapi/v3/positionRisk", get(position_risk_v3))
        .route("/fapi/v2/account", get(account_v2))
        .route("/fapi/v3/account", get(account_v3))
        .route("/fapi/v1/positionSide/dual", get(get_dual).post(post_dual))
        .route("/fapi/v1/leverageBracket", get(leverage_bracket))
        .route(
            "/fapi/v1/listenKey",
            get(|| async { ApiError::bad(-1000, "Method not allowed.") })
                .post(listen_key_post)
                .put(listen_key_put)
                .delete(listen_key_delete),
        )
        .layer(middleware::from_fn_with_state(shared.clone(), fapi_layer));
    Router::new()
        .merge(fapi)
        .merge(crate::ws_api::router())
        .merge(crate::user_stream::router())
        .merge(crate::market_stream::router())
        .nest("/sim", crate::control::router())
        .with_state(shared)
}

/// Binance's request weight for a REST call.
fn weight(method: &Method, path: &str, query: &str) -> u32 {
    let with_symbol = query.split('&').any(|p| p.starts_with("symbol="));
    match (method.as_str(), path) {
        ("POST", "/fapi/v1/order") => 0,
        (_, "/fapi/v2/positionRisk" | "/fapi/v3/positionRisk") => 5,
        (_, "/fapi/v2/account" | "/fapi/v3/account") => 5,
        ("GET", "/fapi/v1/positionSide/dual") => 30,
        ("GET", "/fapi/v1/allOrders") => 5,
        ("GET", "/fapi/v1/openOrders") if !with_symbol => 40,
        ("GET", "/fapi/v1/premiumIndex") if !with_symbol => 10,
        _ => 1,
    }
}

/// Latency, forced 429/418, weight accounting, and the X-MBX headers on every answer.
async fn fapi_layer(State(sh): State<Sh>, req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnCtx>()
        .map(|c| c.peer.ip())
        .unwrap_or([127, 0, 0, 1].into());
    let faults = sh.faults();
    if faults.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(faults.latency_ms)).await;
    }
    let now = sh.clock.now_ms();
    let w = weight(
        req.method(),
        req.uri().path(),
        req.uri().query().unwrap_or(""),
    );
    let charged = sh.limiter().charge(ip, w, now);
    let forced = if faults.force_418 {
        Some(ApiError::banned(&ip.to_string(), now + 60_000))
    } else if faults.force_429 {
        Some(ApiError::too_many(
            &ip.to_string(),
            sh.limiter().limits.weight_per_minute,
        ))
    } else {
        None
    };
    let mut resp = match (forced, charged) {
        (Some(e), _) | (None, Err(e)) => {
            let retry = e.status.as_u16() == 429 || e.status.as_u16() == 418;
            let mut r = e.into_response();
            if retry {
                r.headers_mut()
                    .insert("Retry-After", HeaderValue::from_static("60"));
            }
            r
        }
        (None, Ok(())) => next.run(req).await,
    };
    let usage = sh.limiter().usage(ip, sh.clock.now_ms());
    let h = resp.headers_mut();
    for (name, v) in [
        ("X-MBX-USED-WEIGHT-1M", usage.weight_1m),
        ("X-MBX-ORDER-COUNT-10S", usage.orders_10s),
        ("X-MBX-ORDER-COUNT-1M", usage.orders_1m),
    ] {
        h.insert(name, HeaderValue::from(v));
    }
    resp
}

/// A REST request: raw query and body for the signature, decoded params for the handler.
pub struct ApiReq {
    ctx: Option<ConnCtx>,
    headers: HeaderMap,
    query: String,
    body: String,
    /// Query pairs, then body pairs.
    pub params: Params,
}

impl<S: Send + Sync> FromRequest<S> for ApiReq {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20)
            .await
            .map_err(|_| ApiError::bad(-1000, "Could not read the request body."))?;
        let query = parts.uri.query().unwrap_or("").to_string();
        let body = String::from_utf8_lossy(&bytes).into_owned();
        let params = Params::from_query_and_body(&query, body.as_bytes());
        Ok(ApiReq {
            ctx: parts.extensions.get::<ConnCtx>().cloned(),
            headers: parts.headers,
            query,
            body,
            params,
        })
    }
}

impl ApiReq {
    fn ip(&self) -> String {
        self.ctx
            .as_ref()
            .map(|c| c.peer.ip().to_string())
            .unwrap_or_else(|| "127.0.0.1".into())
    }

    fn api_key(&self) -> Option<&str> {
        self.headers
            .get("X-MBX-APIKEY")
            .and_then(|v| v.to_str().ok())
    }

    /// USER_STREAM endpoints: a valid key, no signature.
    fn key_only(&self, sh: &Shared) -> Result<(), ApiError> {
        auth::find_key(&sh.keys, self.api_key(), &self.ip()).map(|_| ())
    }

    /// TRADE / USER_DATA endpoints: key, signature, then timestamp.
    fn signed(&self, sh: &Shared) -> Result<(), ApiError> {
        let key = auth::find_key(&sh.keys, self.api_key(), &self.ip())?;
        let (payload, sig) = auth::rest_payload(&self.query, &self.body);
        auth::verify(key, &payload, sig.as_deref())?;
        auth::check_timestamp(&self.params, sh.clock.now_ms(), sh.max_recv_window_ms)
    }

    async fn hang_up<T>(&self) -> T {
        match &self.ctx {
            Some(c) => c.hang_up().await,
            None => std::future::pending().await,
        }
    }
}

async fn time(State(sh): State<Sh>) -> Json<Value> {
    Json(json!({ "serverTime": sh.clock.now_ms() }))
}

/// `GET /fapi/v1/premiumIndex`: mark prices (and a flat funding picture), one object for a
/// symbol, an array without.
async fn premium_index(State(sh): State<Sh>, req: ApiReq) -> ApiResult {
    let now = sh.clock.now_ms();
    let ex = sh.ex();
    let row = |s: &str| {
        let mark = ex.mark(s).to_dp(8);
        json!({
            "symbol": s, "markPrice": mark, "indexPrice": mark, "estimatedSettlePrice": mark,
            "lastFundingRate": "0.00010000", "interestRate": "0.00010000",
            "nextFundingTime": (now / 28_800_000 + 1) * 28_800_000, "time": now,
        })
    };
    match symbol_filter(&ex, &req.params)? {
        Some(s) => Ok(Json(row(&s))),
        None => Ok(Json(Value::Array(
            ex.specs.keys().map(|s| row(s)).collect(),
        ))),
    }
}

async fn exchange_info(State(sh): State<Sh>) -> Json<Value> {
    let limits = sh.limiter().limits.clone();
    let specs = sh.ex().specs_with_status();
    Json(crate::symbols::exchange_info(
        &specs,
        &limits,
        sh.clock.now_ms(),
    ))
}

async fn post_order(State(sh): State<Sh>, req: ApiReq) -> Result<Response, ApiError> {
    req.signed(&sh)?;
    let now = sh.clock.now_ms();
    match placement::place(&sh, &req.params, now, "rest")? {
        Outcome::Answer(body) => Ok(Json(body).into_response()),
        Outcome::HangUp => req.hang_up().await,
        Outcome::Gateway(status) => Ok(gateway_page(status)),
    }
}

/// What a gateway (nginx, a cloud load balancer) answers when the upstream's answer is lost:
/// a 5xx with an HTML page, no Binance JSON.
fn gateway_page(status: u16) -> Response {
    let status =
        axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Gateway Error")
    );
    let page = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
    );
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "text/html")],
        page,
    )
        .into_response()
}

async fn get_order(State(sh): State<Sh>, req: ApiReq) -> ApiResult {
    req.signed(&sh)?;
    let lag = sh.faults().query_lag_ms;
    orders::query(&sh.ex(), &req.params, sh.clock.now_ms(), lag).map(Json)
}

async fn delete_order(State(sh): State<Sh>, req: ApiReq) -> ApiResult {
    req.signed(&sh)?;
    let now = sh.clock.now_ms();
    orders::cancel(&mut sh.ex(), &req.params, now).map(Json)
}

async fn all_orders(State(sh): State<Sh>, req: ApiReq) -> ApiResult {
    req.signed(&sh)?;
    if sh.take_history_failure() {
        return Err(ApiError {
            status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            code: -1001,
            msg: "Internal error; unable to process your request. Please try again.".into(),
        });
    }
    orders::all_orders(&sh.ex(), &req.params, sh.clock.now_ms()).map(Json)
}

fn symbol_filter(ex: &Exchange, p: &Params) -> Result<Option<String>, ApiError> {
    match p.get("symbol") {
        None => Ok(None),
        Some(s) if ex.specs.contains_key(s) => Ok(Some(s.to_string())),
        Some(_) => Err(ApiError::symbol()),
    }
}

async fn open_orders(State(sh): State<Sh>, req: ApiReq) -> ApiResult {
    req.signed(&sh)?;
    let ex = sh.ex();
    let only = symbol_filter(&ex, &req.params)?;
    let list: Vec<Value> = (0..ex.orders.len())
        .filter(|i| {
            let o = &ex.orders[*i];
            o.is_open() && only.as_deref().is_none_or(|s| s == o.symbol)
        })
        .map(|i| orders::order_json(&ex, i, true))
        .collect();
    Ok(Json(Value::Array(list)))
}

/// Figures shared by positionRisk and account rows.
struct LegFigures {
    amt: String,
    entry: String,
    mark: String,
    upnl: String,
    notional: String,
    initial: String,
    maint: String,
    update_time: i64,
}

fn leg_figures(ex: &Exchange, symbol: &str, ps: PosSide) -> LegFigures {
    let spec = &ex.specs[symbol];
    let p = ex.position(symbol, ps);
    let mark = ex.mark(symbol);
    let notional = p.amt.times(mark);
    let lev = crate::decimal::Dec::from_int(i64::from(ex.leverage));
    LegFigures {
        amt: p.amt.to_dp(spec.quantity_precision),
        entry: p.entry.to_dp(8),
        mark: mark.to_dp(8),
        upnl: ex.unrealized(symbol, &p).to_dp(8),
        notional: notional.to_dp(8),
        initial: notional.abs().per(lev).to_dp(8),
        maint: notional.abs().times(spec.maint_margin_ratio()).to_dp(8),
        update_time: p.update_time,
    }
}

async fn position_risk_v2(State(sh): State<Sh>, req: ApiReq) -> ApiResult {
    req.signed(&sh)?;
    let ex = sh.ex();
    let only = symbol_filter(&ex, &req.params)?;
    let rows: Vec<Value> = ex
        .legs()
        .into_iter()
        .filter(|(s, _, _)| only.as_deref().is_none_or(|o| o == s))
        .map(|(s, ps, _)| {
            let f = leg_figures(&ex, &s, ps);
            json!({
                "entryPrice": f.entry, "breakEvenPrice": f.entry, "marginType": "cross",
                "isAutoAddMargin": "false", "isolatedMargin": "0.00000000",
                "leverage": ex.leverage.to_string(), "liquidationPrice": "0",
                "markPrice": f.mark, "maxNotionalValue": "50000",
                "positionAmt": f.amt, "notional": f.notional, "isolatedWallet": "0",
                "symbol": s, "unRealizedProfit": f.upnl, "positionSide": ps.as_str(),
                "updateTime": f.update_time,
            })
        })
        .collect();
    Ok(Json(Value::Array(rows)))
}

/// Legs v3 reports: those with a position, plus every leg of a symbol with open orders.
fn active_legs(ex: &Exchange) -> Vec<(String, PosSide)> {
    ex.legs()
        .into_iter()
        .filter(|(s, _, p)| {
            p.amt != crate::decimal::Dec::ZERO || ex.open_orders(s).next().is_some()
        })
        .map(|(s, ps, _)| (s, ps))
        .collect()
}

async fn position_risk_v3(State(sh): State<Sh>, req: ApiReq) -> ApiResult {
    req.signed(&sh)?;
    let ex = sh.ex();
    let only = symbol_filter(&ex, &req.params)?;
    let rows: Vec<Value> = active_legs(&ex)
        .into_iter()
        .filter(|(s, _)| only.as_deref().is_none_or(|o| o == s))
        .map(|(s, ps)| {
            let f = leg_figures(&ex, &s, ps);
            json!({
                "symbol": s, "positionSide": ps.as_str(), "positionAmt": f.amt,
                "entryPrice": f.entry, "breakEvenPrice": f.entry, "markPrice": f.mark,
                "unRealizedProfit": f.upnl, "liquidationPrice": "0", "isolatedMargin": "0",
                "notional": f.notional, "marginAsset": "USDT", "isolatedWallet": "0",
                "initialMargin": f.initial, "maintMargin": f.maint,
                "positionInitialMargin": f.initial, "openOrderInitialMargin": "0",
                "adl": 0, "bidNotional": "0", "askNotional": "0", "updateTime": f.update_time,
            })
        })
        .collect();
    Ok(Json(Value::Array(rows)))
}

fn account_totals(ex: &Exchange, now: i64) -> serde_json::Map<String, Value> {
    let wallet = ex.balance;
    let upnl = ex.total_unrealized();
    let im = ex.position_margin();
    let margin_balance = wallet + upnl;
    let available = margin_balance - im;
    let mm = ex
        .positions
        .iter()
        .map(|((s, _), p)| {
            p.amt
                .abs()
                .times(ex.mark(s))
                .times(ex.specs[s].maint_margin_ratio())
        })
        .fold(crate::decimal::Dec::ZERO, |a, b| a + b);
    let s = |d: crate::decimal::Dec| Value::String(d.to_dp(8));
    let mut m = serde_json::Map::new();
    m.insert("totalInitialMargin".into(), s(im));
    m.insert("totalMaintMargin".into(), s(mm));
    m.insert("totalWalletBalance".into(), s(wallet));
    m.insert("totalUnrealizedProfit".into(), s(upnl));
    m.insert("totalMarginBalance".into(), s(margin_balance));
    m.insert("totalPositionInitialMargin".into(), s(im));
    m.insert(
        "totalOpenOrderInitialMargin".into(),
        s(crate::decimal::Dec::ZERO),
    );
    m.insert("totalCrossWalletBalance".into(), s(wallet));
    m.insert("totalCrossUnPnl".into(), s(upnl));
    m.insert("availableBalance".into(), s(available));
    m.insert("maxWithdrawAmount".into(), s(available));
    m.insert(
        "assets".into(),
        json!([{
            "asset": "USDT", "walletBalance": s(wallet), "unrealizedProfit": s(upnl),
            "marginBalance": s(margin_balance), "maintMargin": s(mm), "initialMargin": s(im),
            "positionInitialMargin": s(im), "openOrderInitialMargin": "0.00000000",
            "crossWalletBalance": s(wallet), "crossUnPnl": s(upnl),
            "availableBalance": s(available), "maxWithdrawAmount": s(available),
            "marginAvailable": true, "updateTime": now,
        }]),
    );
    m
}

async fn account_v2(State(sh): State<Sh>, req: ApiReq) -> ApiResult {
    req.signed(&sh)?;
    let now = sh.clock.now_ms();
    let ex = sh.ex();
    let mut m = serde_json::Map::new();
    for (k, v) in [
        ("feeTier", json!(0)),
        ("feeBurn", json!(true)),
        ("canTrade", json!(true)),
        ("canDeposit", json!(true)),
        ("canWithdraw", json!(true)),
        ("updateTime", json!(0)),
        ("multiAssetsMargin", json!(false)),
        ("tradeGroupId", json!(-1)),
    ] {
        m.insert(k.into(), v);
    }
    m.extend(account_totals(&ex, now));
    let positions: Vec<Value> = ex
        .legs()
        .into_iter()
        .map(|(s, ps, _)| {
            let f = leg_figures(&ex, &s, ps);
            json!({
                "symbol": s, "initialMargin": f.initial, "maintMargin": f.maint,
                "unrealizedProfit": f.upnl, "positionInitialMargin": f.initial,
                "openOrderInitialMargin": "0", "leverage": ex.leverage.to_string(),
                "isolated": false, "entryPrice": f.entry, "breakEvenPrice": f.entry,
                "maxNotional": "50000", "positionSide": ps.as_str(), "positionAmt": f.amt,
                "notional": f.notional, "isolatedWallet": "0", "updateTime": f.update_time,
                "bidNotional": "0", "askNotional": "0",
            })
        })
        .collect();
    m.insert("positions".into(), Value::Array(positions));
    Ok(Json(Value::Object(m)))
}

async fn account_v3(State(sh): State<Sh>, req: ApiReq) -> ApiResult {
    req.signed(&sh)?;
    let now = sh.clock.now_ms();
    let ex = sh.ex();
    let mut m = account_totals(&ex, now);
    let positions: Vec<Value> = active_legs(&ex)
        .into_iter()
        .map(|(s, ps)| {
            let f = leg_figures(&ex, &s, ps);
            json!({
                "symbol": s, "positionSide": ps.as_str(), "positionAmt": f.amt,
                "unrealizedProfit": f.upnl, "isolatedMargin": "0", "notional": f.notional,
                "isolatedWallet": "0", "initialMargin": f.initial, "maintMargin": f.maint,
                "updateTime": f.update_time,
            })
        })
        .collect();
    m.insert("positions".into(), Value::Array(positions));
    Ok(Json(Value::Object(m)))
}

async fn get_dual(State(sh): State<Sh>, req: ApiReq) -> ApiResult {
    req.signed(&sh)?;
    Ok(Json(json!({ "dualSidePosition": sh.ex().hedge_mode })))
}

async fn post_dual(State(sh): State<Sh>, req: ApiReq) -> ApiResult {
    req.signed(&sh)?;
    let want = match req.params.require("dualSidePosition")? {
        "true" => true,
        "false" => false,
        _ => return Err(ApiError::invalid_value("dualSidePosition")),
    };
    let mut ex = sh.ex();
    if ex.hedge_mode == want {
        return Err(ApiError::bad(-4059, "No need to change position side."));
    }
    // Binance documents both refusals, not which comes first when both apply (*unverified*).
    if ex
        .positions
        .values()
        .any(|p| p.amt != crate::decimal::Dec::ZERO)
    {
        return Err(ApiError::bad(
            -4068,
            "Position side cannot be changed if there exists position.",
        ));
    }
    if ex.orders.iter().any(|o| o.is_open()) {
        return Err(ApiError::bad(
            -4067,
            "Position side cannot be changed if there exists open orders.",
        ));
    }
    ex.hedge_mode = want;
    ex.positions.clear();
    Ok(Json(json!({ "code": 200, "msg": "success" })))
}

async fn leverage_bracket(State(sh): State<Sh>, req: ApiReq) -> ApiResult {
    req.signed(&sh)?;
    let ex = sh.ex();
    match symbol_filter(&ex, &req.params)? {
        Some(s) => Ok(Json(ex.specs[&s].leverage_brackets())),
        None => Ok(Json(Value::Array(
            ex.specs.values().map(|s| s.leverage_brackets()).collect(),
        ))),
    }
}

async fn listen_key_post(State(sh): State<Sh>, req: ApiReq) -> ApiResult {
    req.key_only(&sh)?;
    let now = sh.clock.now_ms();
    let key = sh.ex().open_listen_key(now);
    Ok(Json(json!({ "listenKey": key })))
}

async fn listen_key_put(State(sh): State<Sh>, req: ApiReq) -> ApiResult {
    req.key_only(&sh)?;
    let now = sh.clock.now_ms();
    let key = sh
        .ex()
        .keepalive_listen_key(now)
        .ok_or_else(ApiError::listen_key)?;
    Ok(Json(json!({ "listenKey": key })))
}

async fn listen_key_delete(State(sh): State<Sh>, req: ApiReq) -> ApiResult {
    req.key_only(&sh)?;
    sh.ex().listen_key = None;
    Ok(Json(json!({})))
}
