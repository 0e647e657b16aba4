//! Binance's error answers (`{"code":…,"msg":…}` with an HTTP status, or the WebSocket API
//! `error` object) and the typed reason each code maps to.

use std::fmt;

/// An error answer from Binance. `msg` is Binance's text (it never contains our secret).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Binance answered {status} code {code}: {msg} ({reason})")]
pub struct ApiError {
    /// HTTP status (the WebSocket API's `status`).
    pub status: u16,
    /// Binance's error code (negative), 0 when the body had none.
    pub code: i64,
    /// Binance's message.
    pub msg: String,
    /// What the code means for us.
    pub reason: RejectReason,
}

impl ApiError {
    /// An answer with `status`, `code`, `msg`.
    pub fn new(status: u16, code: i64, msg: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            msg: msg.into(),
            reason: RejectReason::from_answer(status, code),
        }
    }

    /// Whether the request may have taken effect: every answer that does not prove it was
    /// refused before acting ([`RejectReason::from_answer`]). An order must then be looked up
    /// by client id before anything is re-sent.
    pub fn outcome_unknown(&self) -> bool {
        self.reason == RejectReason::UnknownOutcome
    }
}

/// Why Binance refused a request, one variant per documented code. `code()` is the value
/// carried in the wire `Reject::reason`; it never changes for a variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum RejectReason {
    /// The code is not one we know; see `exchange_code`.
    Other = 1,
    /// The execution status is unknown; the order may exist. Binance says so for every 5xx
    /// ("the issue is on Binance's side ... the execution status is UNKNOWN and could have
    /// been a success"), for -1000 "Unknown error", -1006 (unexpected response from the
    /// message bus) and -1007 (timeout waiting for the backend). An answer without a Binance
    /// code (a proxy's or gateway's page, an empty body) proves nothing either.
    UnknownOutcome = 2,
    /// -1008 (system-level throttling): the server refused before acting; nothing was placed.
    /// Binance exempts reduce-only and close-position orders from -1008, so for those it is
    /// unexpected; the adapter still reports it as a refusal (never an unknown outcome) and
    /// does not re-send on its own.
    ServerBusy = 3,
    /// -1003 with HTTP 429: request weight over the limit; back off.
    TooManyRequests = 4,
    /// -1003 with HTTP 418: the IP is banned until the time in the message.
    IpBanned = 5,
    /// -1015: too many new orders (ORDERS limit).
    TooManyOrders = 6,
    /// -1021: timestamp outside recvWindow or 1000 ms ahead of the server.
    TimestampOutsideRecvWindow = 7,
    /// -1022: signature not valid.
    InvalidSignature = 8,
    /// -1106: a parameter sent when not required (reduceOnly in hedge mode).
    ParameterNotRequired = 9,
    /// -1111: quantity or price with more decimals than the symbol allows.
    PrecisionOverMaximum = 10,
    /// -1121: unknown symbol.
    InvalidSymbol = 11,
    /// -1125: the listenKey does not exist (expired).
    ListenKeyNotFound = 12,
    /// -2011: cancel of an unknown or no longer open order.
    CancelUnknownOrder = 13,
    /// -2013: the order does not exist.
    OrderDoesNotExist = 14,
    /// -2014: API key format invalid.
    ApiKeyFormatInvalid = 15,
    /// -2015: invalid API key, IP, or permissions.
    ApiKeyRejected = 16,
    /// -2019: margin is insufficient.
    MarginInsufficient = 17,
    /// -2022: reduce-only order rejected (no position to reduce, or same direction).
    ReduceOnlyRejected = 18,
    /// -4003: quantity less than or equal to zero.
    QuantityNotPositive = 19,
    /// -4004: quantity below the minimum.
    QuantityBelowMinimum = 20,
    /// -4005: quantity above the maximum.
    QuantityAboveMaximum = 21,
    /// -4014: price not a multiple of the tick size.
    PriceNotOnTick = 22,
    /// -4015: client order id not valid.
    ClientOrderIdInvalid = 23,
    /// -4023: quantity not a multiple of the step size.
    QuantityNotOnStep = 24,
    /// -4061: position side does not match the account's position mode.
    PositionSideMismatch = 25,
    /// -4116: client order id already used by an open order. For a placement this is looked
    /// up, not reported: the open order may be this one, placed by an earlier attempt.
    DuplicateClientOrderId = 26,
    /// -4164: notional below MIN_NOTIONAL.
    NotionalTooSmall = 27,
    /// -5028: timestamp outside the matching engine's recvWindow.
    TimestampOutsideEngineWindow = 28,
    /// -1102 / -1130 / -1131: a mandatory parameter missing or malformed, or recvWindow too big.
    BadParameter = 29,
    /// Local: the quantity cannot be put on the symbol's step grid within its limits.
    LocalQuantity = 100,
    /// Local: the symbol is not in exchangeInfo or not in the symbol directory.
    LocalUnknownSymbol = 101,
    /// Local: we are backing off after a 429/418 and did not send.
    LocalRateLimited = 102,
    /// Local: the transport failed and the order could not be resolved by client id.
    LocalUnresolved = 103,
    /// Local: a closing order's side would add to its hedge leg (BUY on `LONG`, SELL on
    /// `SHORT`); not sent.
    LocalPositionSide = 104,
}

impl RejectReason {
    /// The reason for an answer with HTTP `status` and Binance `code` (0: the body had none).
    ///
    /// Only an answer that proves the request was refused before it acted is a refusal:
    /// 418 and 429 (rate limits, checked before anything is done), -1008 (system throttling),
    /// and a 4xx carrying a Binance code (the request was checked and refused, e.g. -2022,
    /// -1111, -4164, -2019). Everything else is [`RejectReason::UnknownOutcome`]: any 5xx but
    /// -1008, with or without a Binance code, and any answer without a code (the HTML of a
    /// gateway that may have forwarded the request before it failed).
    pub fn from_answer(status: u16, code: i64) -> RejectReason {
        use RejectReason::*;
        match (status, code) {
            (418, _) => IpBanned,
            (_, -1015) => TooManyOrders,
            (429, _) | (_, -1003) => TooManyRequests,
            (_, -1000) | (_, -1006) | (_, -1007) => UnknownOutcome,
            (_, -1008) => ServerBusy,
            (s, _) if s >= 500 => UnknownOutcome,
            (_, 0) => UnknownOutcome,
            (_, -1021) => TimestampOutsideRecvWindow,
            (_, -1022) => InvalidSignature,
            (_, -1102) | (_, -1130) | (_, -1131) => BadParameter,
            (_, -1106) => ParameterNotRequired,
            (_, -1111) => PrecisionOverMaximum,
            (_, -1121) => InvalidSymbol,
            (_, -1125) => ListenKeyNotFound,
            (_, -2011) => CancelUnknownOrder,
            (_, -2013) => OrderDoesNotExist,
            (_, -2014) => ApiKeyFormatInvalid,
            (_, -2015) => ApiKeyRejected,
            (_, -2019) => MarginInsufficient,
            (_, -2022) => ReduceOnlyRejected,
            (_, -4003) => QuantityNotPositive,
            (_, -4004) => QuantityBelowMinimum,
            (_, -4005) => QuantityAboveMaximum,
            (_, -4014) => PriceNotOnTick,
            (_, -4015) => ClientOrderIdInvalid,
            (_, -4023) => QuantityNotOnStep,
            (_, -4061) => PositionSideMismatch,
            (_, -4116) => DuplicateClientOrderId,
            (_, -4164) => NotionalTooSmall,
            (_, -5028) => TimestampOutsideEngineWindow,
            _ => Other,
        }
    }

    /// The stable number sent in wire `Reject::reason`.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// A short snake_case name for logs and counters.
    pub fn as_str(self) -> &'static str {
        use RejectReason::*;
        match self {
            Other => "other",
            UnknownOutcome => "unknown_outcome",
            ServerBusy => "server_busy",
            TooManyRequests => "too_many_requests",
            IpBanned => "ip_banned",
            TooManyOrders => "too_many_orders",
            TimestampOutsideRecvWindow => "timestamp_outside_recv_window",
            InvalidSignature => "invalid_signature",
            ParameterNotRequired => "parameter_not_required",
            PrecisionOverMaximum => "precision_over_maximum",
            InvalidSymbol => "invalid_symbol",
            ListenKeyNotFound => "listen_key_not_found",
            CancelUnknownOrder => "cancel_unknown_order",
            OrderDoesNotExist => "order_does_not_exist",
            ApiKeyFormatInvalid => "api_key_format_invalid",
            ApiKeyRejected => "api_key_rejected",
            MarginInsufficient => "margin_insufficient",
            ReduceOnlyRejected => "reduce_only_rejected",
            QuantityNotPositive => "quantity_not_positive",
            QuantityBelowMinimum => "quantity_below_minimum",
            QuantityAboveMaximum => "quantity_above_maximum",
            PriceNotOnTick => "price_not_on_tick",
            ClientOrderIdInvalid => "client_order_id_invalid",
            QuantityNotOnStep => "quantity_not_on_step",
            PositionSideMismatch => "position_side_mismatch",
            DuplicateClientOrderId => "duplicate_client_order_id",
            NotionalTooSmall => "notional_too_small",
            TimestampOutsideEngineWindow => "timestamp_outside_engine_window",
            BadParameter => "bad_parameter",
            LocalQuantity => "local_quantity",
            LocalUnknownSymbol => "local_unknown_symbol",
            LocalRateLimited => "local_rate_limited",
            LocalUnresolved => "local_unresolved",
            LocalPositionSide => "local_position_side",
        }
    }

    /// Whether an order refused for this reason was certainly not placed, so re-sending it
    /// with the same client id cannot make a second order.
    pub fn certainly_not_placed(self) -> bool {
        !matches!(
            self,
            RejectReason::UnknownOutcome | RejectReason::LocalUnresolved
        )
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_codes_map_to_their_reasons() {
        use RejectReason::*;
        for (status, code, want) in [
            (429, -1003, TooManyRequests),
            (418, -1003, IpBanned),
            (400, -1021, TimestampOutsideRecvWindow),
            (400, -1022, InvalidSignature),
            (400, -1106, ParameterNotRequired),
            (400, -1111, PrecisionOverMaximum),
            (400, -1125, ListenKeyNotFound),
            (400, -2011, CancelUnknownOrder),
            (400, -2013, OrderDoesNotExist),
            (401, -2014, ApiKeyFormatInvalid),
            (401, -2015, ApiKeyRejected),
            (400, -2019, MarginInsufficient),
            (400, -2022, ReduceOnlyRejected),
            (400, -4003, QuantityNotPositive),
            (400, -4004, QuantityBelowMinimum),
            (400, -4005, QuantityAboveMaximum),
            (400, -4014, PriceNotOnTick),
            (400, -4015, ClientOrderIdInvalid),
            (400, -4023, QuantityNotOnStep),
            (400, -4061, PositionSideMismatch),
            (400, -4116, DuplicateClientOrderId),
            (400, -4164, NotionalTooSmall),
            (400, -5028, TimestampOutsideEngineWindow),
            (503, -1000, UnknownOutcome),
            (503, -1008, ServerBusy),
            (429, -1015, TooManyOrders),
            (400, -9999, Other),
        ] {
            let e = ApiError::new(status, code, "m");
            assert_eq!(e.reason, want, "{status} {code}");
        }
        assert!(ApiError::new(503, -1000, "Unknown error").outcome_unknown());
        assert!(!UnknownOutcome.certainly_not_placed());
        assert!(ReduceOnlyRejected.certainly_not_placed());
    }

    #[test]
    fn every_5xx_but_throttling_is_unknown_with_or_without_a_code() {
        use RejectReason::*;
        for status in [500, 502, 503, 504] {
            // No Binance code: a gateway's page or an empty body.
            assert_eq!(
                RejectReason::from_answer(status, 0),
                UnknownOutcome,
                "{status}"
            );
            for code in [-1000, -1006, -1007, -2022, -9999] {
                let e = ApiError::new(status, code, "m");
                assert!(e.outcome_unknown(), "{status} {code}");
                assert!(!e.reason.certainly_not_placed(), "{status} {code}");
            }
            assert_eq!(RejectReason::from_answer(status, -1008), ServerBusy);
        }
    }

    #[test]
    fn only_answers_that_prove_the_order_absent_are_refusals() {
        use RejectReason::*;
        for (status, code, want) in [
            (400, -2022, ReduceOnlyRejected),
            (400, -1111, PrecisionOverMaximum),
            (400, -4164, NotionalTooSmall),
            (400, -2019, MarginInsufficient),
            (429, 0, TooManyRequests),
            (418, 0, IpBanned),
            (503, -1008, ServerBusy),
        ] {
            let r = RejectReason::from_answer(status, code);
            assert_eq!(r, want, "{status} {code}");
            assert!(r.certainly_not_placed(), "{status} {code}");
        }
        // A 4xx without a Binance code is some proxy's answer: it proves nothing.
        for status in [400, 403, 404, 408] {
            assert_eq!(
                RejectReason::from_answer(status, 0),
                UnknownOutcome,
                "{status}"
            );
        }
    }
}
