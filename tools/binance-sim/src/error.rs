//! Binance error answers: an HTTP status plus `{"code":…,"msg":…}`.

use axum::http::StatusCode;
use serde_json::json;

/// An error as Binance reports it. Codes are fixed; messages follow Binance's wording.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {msg}")]
pub struct ApiError {
    /// HTTP status (also the WebSocket API `status`).
    pub status: StatusCode,
    /// Binance error code, negative.
    pub code: i64,
    /// Human-readable message.
    pub msg: String,
}

impl ApiError {
    /// An error with HTTP 400.
    pub fn bad(code: i64, msg: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code,
            msg: msg.into(),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        json!({ "code": self.code, "msg": self.msg })
    }

    /// -1102 for a parameter that is missing or malformed.
    pub fn mandatory(name: &str) -> Self {
        Self::bad(
            -1102,
            format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."),
        )
    }

    /// -1106 for a parameter that must not be sent.
    pub fn not_required(name: &str) -> Self {
        Self::bad(-1106, format!("Parameter '{name}' sent when not required."))
    }

    /// -1130 for a parameter with a value outside its domain.
    pub fn invalid_value(name: &str) -> Self {
        Self::bad(
            -1130,
            format!("Data sent for parameter '{name}' is not valid."),
        )
    }

    /// -1111 for too many decimals.
    pub fn precision() -> Self {
        Self::bad(
            -1111,
            "Precision is over the maximum defined for this asset.",
        )
    }

    /// -1021, timestamp ahead of the server by 1000 ms or more.
    pub fn ts_ahead() -> Self {
        Self::bad(
            -1021,
            "Timestamp for this request was 1000ms ahead of the server's time.",
        )
    }

    /// -1021, timestamp older than recvWindow.
    pub fn ts_stale() -> Self {
        Self::bad(
            -1021,
            "Timestamp for this request is outside of the recvWindow.",
        )
    }

    /// -1022.
    pub fn signature() -> Self {
        Self::bad(-1022, "Signature for this request is not valid.")
    }

    /// -2014. Binance answers 401 for key problems (*unverified* for every path).
    pub fn key_format() -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: -2014,
            msg: "API-key format invalid.".into(),
        }
    }

    /// -2015.
    pub fn key_invalid(ip: &str) -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: -2015,
            msg: format!("Invalid API-key, IP, or permissions for action, request ip: {ip}"),
        }
    }

    /// -1121.
    pub fn symbol() -> Self {
        Self::bad(-1121, "Invalid symbol.")
    }

    /// -1125.
    pub fn listen_key() -> Self {
        Self::bad(-1125, "This listenKey does not exist.")
    }

    /// -2011, cancel of an order that is unknown or no longer open.
    pub fn unknown_order() -> Self {
        Self::bad(-2011, "Unknown order sent.")
    }

    /// -2013.
    pub fn no_such_order() -> Self {
        Self::bad(-2013, "Order does not exist.")
    }

    /// -2022.
    pub fn reduce_only() -> Self {
        Self::bad(-2022, "ReduceOnly Order is rejected.")
    }

    /// The ambiguous 503: the order may or may not exist.
    pub fn unknown_503() -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: -1000,
            msg: "Unknown error, please check your request or try again later.".into(),
        }
    }

    /// 503 / -1008: system-level throttling refused the request before it acted (nothing
    /// placed). Binance's text says reduce-only and close-position orders are exempt.
    pub fn throttled() -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: -1008,
            msg: "Request throttled by system-level protection. Reduce-only/close-position orders are exempt. Please try again."
                .into(),
        }
    }

    /// 408 / -1007: the backend did not answer in time; the order may exist.
    pub fn timeout_1007() -> Self {
        ApiError {
            status: StatusCode::REQUEST_TIMEOUT,
            code: -1007,
            msg: "Timeout waiting for response from backend server. Send status unknown; execution status unknown."
                .into(),
        }
    }

    /// 500 / -1006: an unexpected answer inside the exchange; the order may exist.
    pub fn unexpected_1006() -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: -1006,
            msg: "An unexpected response was received from the message bus. Execution status unknown."
                .into(),
        }
    }

    /// -1002 for `session.logon` with a key that is not Ed25519 (*unverified*: Binance
    /// documents that only Ed25519 keys may log on, not the code it answers otherwise).
    pub fn logon_needs_ed25519() -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: -1002,
            msg: "You are not authorized to execute this request. Only Ed25519 API keys can log a session on."
                .into(),
        }
    }

    /// 429 / -1003 on the weight limit.
    pub fn too_many(ip: &str, limit: u32) -> Self {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: -1003,
            msg: format!(
                "Too many requests; current limit of IP({ip}) is {limit} requests per minute. \
                 Please use the websocket for live updates to avoid polling the API."
            ),
        }
    }

    /// 418 / -1003 for a banned IP.
    pub fn banned(ip: &str, until_ms: i64) -> Self {
        ApiError {
            status: StatusCode::IM_A_TEAPOT,
            code: -1003,
            msg: format!(
                "Way too many requests; IP({ip}) banned until {until_ms}. \
                 Please use the websocket for live updates to avoid bans."
            ),
        }
    }

    /// 429 / -1015 on an ORDERS limit.
    pub fn too_many_orders(limit: u32, interval: &str) -> Self {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: -1015,
            msg: format!("Too many new orders; current limit is {limit} orders per {interval}."),
        }
    }
}

impl axum::response::IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}
