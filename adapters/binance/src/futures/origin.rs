//! Who created an order, read from its client order id. Binance documents three client ids
//! it writes itself on orders the account never sent (user data stream, order update and
//! trade lite events): ids starting `autoclose-` (liquidation), `adl_autoclose`
//! (auto-deleveraging) and ids starting `settlement_autoclose-` (settlement at delisting or
//! delivery). Their fills move the position without any order of ours: the position changes,
//! the ledger does not follow.

/// The creator of an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderOrigin {
    /// Sent by a client of the account (us or anyone else with a key).
    Client,
    /// A liquidation (`autoclose-…`).
    Liquidation,
    /// Auto-deleveraging (`adl_autoclose…`).
    AutoDeleverage,
    /// Settlement at delisting or delivery (`settlement_autoclose-…`).
    Settlement,
}

impl OrderOrigin {
    /// The origin of an order with client id `cid`.
    pub fn of(cid: &str) -> OrderOrigin {
        if cid.starts_with("settlement_autoclose-") {
            OrderOrigin::Settlement
        } else if cid.starts_with("adl_autoclose") {
            OrderOrigin::AutoDeleverage
        } else if cid.starts_with("autoclose-") {
            OrderOrigin::Liquidation
        } else {
            OrderOrigin::Client
        }
    }

    /// True for the orders Binance creates itself.
    pub fn exchange_generated(self) -> bool {
        self != OrderOrigin::Client
    }

    /// A short snake_case name for logs and counters.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderOrigin::Client => "client",
            OrderOrigin::Liquidation => "liquidation",
            OrderOrigin::AutoDeleverage => "auto_deleverage",
            OrderOrigin::Settlement => "settlement",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_prefixes() {
        assert_eq!(
            OrderOrigin::of("autoclose-1700000"),
            OrderOrigin::Liquidation
        );
        assert_eq!(
            OrderOrigin::of("adl_autoclose"),
            OrderOrigin::AutoDeleverage
        );
        assert_eq!(
            OrderOrigin::of("adl_autoclose-9"),
            OrderOrigin::AutoDeleverage
        );
        assert_eq!(
            OrderOrigin::of("settlement_autoclose-BTCUSDT"),
            OrderOrigin::Settlement
        );
        for ours in ["qpc-00000000000000a1", "x-autoclose-1", "autoclose", ""] {
            assert_eq!(OrderOrigin::of(ours), OrderOrigin::Client, "{ours}");
        }
        assert!(OrderOrigin::Settlement.exchange_generated());
        assert!(!OrderOrigin::Client.exchange_generated());
    }
}
