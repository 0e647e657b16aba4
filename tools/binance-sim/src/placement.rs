//! Placing an order under the faults in force, one path for REST and the WebSocket API:
//! system throttling (-1008, reduce-only and close-position orders exempt), injected refusals,
//! connections dropped before or after placing, the "execution status unknown" answers
//! (-1007, -1006) with or without the order placed, the ambiguous 503, and a gateway's 5xx
//! page after placing.

use rand::Rng;
use serde_json::Value;

use crate::error::ApiError;
use crate::orders;
use crate::params::Params;
use crate::server::Shared;

/// What to do with the connection after a placement.
#[derive(Debug)]
pub enum Outcome {
    /// Send this answer.
    Answer(Value),
    /// Close the connection without answering (injected fault).
    HangUp,
    /// The order was placed; answer this 5xx with a gateway's HTML page (injected fault).
    Gateway(u16),
}

/// True with probability `rate`.
pub fn roll(rate: f64) -> bool {
    rate > 0.0 && rand::thread_rng().gen_bool(rate.min(1.0))
}

/// Binance exempts reduce-only and close-position orders from -1008 throttling.
fn exempt_from_throttling(p: &Params) -> bool {
    p.get("reduceOnly") == Some("true") || p.get("closePosition") == Some("true")
}

/// Places the order in `p` (already authenticated) at server time `now`.
pub fn place(sh: &Shared, p: &Params, now: i64, via: &'static str) -> Result<Outcome, ApiError> {
    let faults = sh.faults();
    if faults.throttle_1008 && !exempt_from_throttling(p) {
        return Err(ApiError::throttled());
    }
    sh.limiter().count_order(now)?;
    if roll(faults.error_rate) {
        return Err(ApiError::throttled());
    }
    let drop = roll(faults.drop_rate);
    if drop && !faults.drop_after_place {
        return Ok(Outcome::HangUp);
    }
    let unknown = if roll(faults.timeout_1007_rate) {
        Some(ApiError::timeout_1007())
    } else if roll(faults.unexpected_1006_rate) {
        Some(ApiError::unexpected_1006())
    } else {
        None
    };
    if let Some(e) = &unknown {
        if !faults.unknown_places {
            return Err(e.clone());
        }
    }
    let placed = orders::place(&mut sh.ex(), p, now, via)?;
    if drop {
        return Ok(Outcome::HangUp);
    }
    if let Some(e) = unknown {
        return Err(e);
    }
    if roll(faults.ambiguous_503_rate) {
        return Err(ApiError::unknown_503());
    }
    if roll(faults.gateway_after_place_rate) {
        return Ok(Outcome::Gateway(faults.gateway_status));
    }
    Ok(Outcome::Answer(placed.body))
}
