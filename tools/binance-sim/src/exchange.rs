//! The simulated account: marks, positions, orders, listenKey, and the fills that move them.
//!
//! Every fill is reported on the user data stream as Binance does: a `TRADE_LITE` first (the
//! fast, lean fill event), then the `ORDER_TRADE_UPDATE` of the same trade (same order id
//! `i` and trade id `t`), then the `ACCOUNT_UPDATE` with the changed position. The exchange
//! also creates orders of its own on the account ([`ExchangeOrderKind`]: liquidation,
//! auto-deleveraging, settlement), under the client ids Binance documents for them.
//!
//! Invariants: `orders[i].order_id == FIRST_ORDER_ID + i` (orders are never removed, which
//! makes the list the audit trail); a position's `amt` is signed for `BOTH` and `SHORT` is
//! never positive, `LONG` never negative.

use std::collections::{BTreeMap, HashMap};

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::config::{QtyPrecision, ReduceOnlyExcess, SimConfig};
use crate::decimal::Dec;
use crate::symbols::{ContractStatus, SymbolSpec};

/// First order id handed out; real ids are large, clients must not assume small ones.
pub const FIRST_ORDER_ID: u64 = 4_000_000_001;

/// BUY or SELL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// BUY.
    Buy,
    /// SELL.
    Sell,
}

impl Side {
    /// Binance spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "BUY",
            Side::Sell => "SELL",
        }
    }
}

/// `positionSide`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PosSide {
    /// One-way mode.
    Both,
    /// Hedge mode long leg.
    Long,
    /// Hedge mode short leg.
    Short,
}

impl PosSide {
    /// Binance spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PosSide::Both => "BOTH",
            PosSide::Long => "LONG",
            PosSide::Short => "SHORT",
        }
    }

    /// Parses `BOTH`, `LONG`, `SHORT`.
    pub fn parse(s: &str) -> Option<PosSide> {
        match s {
            "BOTH" => Some(PosSide::Both),
            "LONG" => Some(PosSide::Long),
            "SHORT" => Some(PosSide::Short),
            _ => None,
        }
    }
}

/// MARKET or LIMIT (the types the simulator executes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderType {
    /// Fills at once at the mark price.
    Market,
    /// Rests (GTC/GTX) or fills against the mark (IOC/FOK).
    Limit,
}

impl OrderType {
    /// Binance spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderType::Market => "MARKET",
            OrderType::Limit => "LIMIT",
        }
    }
}

/// An order the exchange accepted.
#[derive(Clone, Debug)]
pub struct Order {
    /// Exchange id.
    pub order_id: u64,
    /// Symbol.
    pub symbol: String,
    /// Client id (given or generated).
    pub client_order_id: String,
    /// Side.
    pub side: Side,
    /// Position side.
    pub position_side: PosSide,
    /// Type.
    pub order_type: OrderType,
    /// GTC, IOC, FOK, GTX.
    pub time_in_force: String,
    /// Requested quantity.
    pub orig_qty: Dec,
    /// Limit price; zero for MARKET.
    pub price: Dec,
    /// Filled so far.
    pub executed_qty: Dec,
    /// Sum of fill qty × price.
    pub cum_quote: Dec,
    /// NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED.
    pub status: &'static str,
    /// reduceOnly flag.
    pub reduce_only: bool,
    /// Creation time (ms).
    pub time: i64,
    /// Last change (ms).
    pub update_time: i64,
    /// `rest`, `ws-api`, or `exchange` for the orders the exchange creates itself.
    pub via: &'static str,
}

impl Order {
    /// Still open (can be canceled, blocks its client id).
    pub fn is_open(&self) -> bool {
        matches!(self.status, "NEW" | "PARTIALLY_FILLED")
    }

    /// Average fill price.
    pub fn avg_price(&self) -> Dec {
        self.cum_quote.per(self.executed_qty)
    }
}

/// One position leg.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// Signed amount.
    pub amt: Dec,
    /// Average entry price; zero when flat.
    pub entry: Dec,
    /// Last change (ms).
    pub update_time: i64,
}

/// An order the exchange creates itself, and the client id Binance documents for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeOrderKind {
    /// A liquidation: client id `autoclose-<time>`.
    Liquidation,
    /// Auto-deleveraging: client id `adl_autoclose`.
    AutoDeleverage,
    /// Settlement at delisting or delivery: client id `settlement_autoclose-<time>`.
    Settlement,
}

impl ExchangeOrderKind {
    /// Parses `liquidation`, `adl`, `settlement`.
    pub fn parse(s: &str) -> Option<ExchangeOrderKind> {
        match s {
            "liquidation" => Some(ExchangeOrderKind::Liquidation),
            "adl" => Some(ExchangeOrderKind::AutoDeleverage),
            "settlement" => Some(ExchangeOrderKind::Settlement),
            _ => None,
        }
    }

    /// The client id of such an order created at `now`.
    pub fn client_order_id(self, now: i64) -> String {
        match self {
            ExchangeOrderKind::Liquidation => format!("autoclose-{now}"),
            ExchangeOrderKind::AutoDeleverage => "adl_autoclose".into(),
            ExchangeOrderKind::Settlement => format!("settlement_autoclose-{now}"),
        }
    }
}

/// A user data event on its way to the open streams: its type (`e`) for the `events` filter,
/// and the event.
#[derive(Clone, Debug)]
pub struct StreamEvent {
    /// `ORDER_TRADE_UPDATE`, `TRADE_LITE`, `ACCOUNT_UPDATE`, ...
    pub name: String,
    /// The event JSON.
    pub json: Value,
}

/// A market stream event on its way to the open market connections: the stream it belongs to
/// (`!contractInfo`), and the event.
#[derive(Clone, Debug)]
pub struct MarketEvent {
    /// Stream name, as subscribed.
    pub stream: &'static str,
    /// The event JSON.
    pub json: Value,
}

/// The stream of contract info events, `!contractInfo`.
pub const CONTRACT_INFO_STREAM: &str = "!contractInfo";

/// What a change of a symbol's contract status did.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    /// Symbol.
    pub symbol: String,
    /// Status before.
    pub previous: String,
    /// Status now.
    pub status: String,
    /// Open orders the settlement cancelled (order ids).
    pub canceled: Vec<u64>,
    /// Settlement orders that closed the position legs (order ids), one per non-flat leg.
    pub settled: Vec<u64>,
}

/// A row of `GET /sim/orders`: what the exchange accepted.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Symbol.
    pub symbol: String,
    /// Client order id.
    pub client_order_id: String,
    /// Exchange order id.
    pub order_id: u64,
    /// BUY / SELL.
    pub side: String,
    /// BOTH / LONG / SHORT.
    pub position_side: String,
    /// MARKET / LIMIT.
    #[serde(rename = "type")]
    pub order_type: String,
    /// Requested quantity.
    pub qty: String,
    /// Filled quantity.
    pub executed_qty: String,
    /// Current status.
    pub status: String,
    /// reduceOnly.
    pub reduce_only: bool,
    /// Acceptance time (ms).
    pub time: i64,
    /// `rest`, `ws-api`, or `exchange`.
    pub via: String,
}

/// A row of `GET /sim/positions`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PositionView {
    /// Symbol.
    pub symbol: String,
    /// BOTH / LONG / SHORT.
    pub position_side: String,
    /// Signed amount, exact.
    pub position_amt: String,
    /// Entry price.
    pub entry_price: String,
    /// Current mark.
    pub mark_price: String,
}

/// The simulated exchange account.
#[derive(Debug)]
pub struct Exchange {
    /// Symbol rules, by name.
    pub specs: BTreeMap<String, SymbolSpec>,
    /// Mark price per symbol.
    pub marks: HashMap<String, Dec>,
    /// Position legs by (symbol, side).
    pub positions: BTreeMap<(String, PosSide), Position>,
    /// Every accepted order, in order of acceptance.
    pub orders: Vec<Order>,
    /// Dual-side position mode.
    pub hedge_mode: bool,
    /// USDT wallet balance (realised PnL included).
    pub balance: Dec,
    /// Leverage of every symbol.
    pub leverage: u32,
    /// The account's listenKey and its expiry (ms).
    pub listen_key: Option<(String, i64)>,
    /// listenKey lifetime (ms).
    pub listen_key_ttl_ms: i64,
    /// -1111 rule.
    pub qty_precision: QtyPrecision,
    /// Oversized reduce-only rule.
    pub reduce_only_excess: ReduceOnlyExcess,
    /// User-data events to every open stream.
    pub events: broadcast::Sender<StreamEvent>,
    /// Contract status per symbol (absent: `TRADING`).
    pub statuses: BTreeMap<String, ContractStatus>,
    /// Market stream events to every open market connection.
    pub market: broadcast::Sender<MarketEvent>,
    next_trade_id: u64,
}

impl Exchange {
    /// The account as `cfg` describes it at start.
    pub fn new(cfg: &SimConfig, now: i64) -> Exchange {
        let specs: BTreeMap<String, SymbolSpec> = cfg
            .symbols
            .iter()
            .map(|s| (s.symbol.clone(), s.clone()))
            .collect();
        let mut marks: HashMap<String, Dec> = specs
            .values()
            .map(|s| (s.symbol.clone(), s.default_mark))
            .collect();
        for (s, p) in &cfg.marks {
            marks.insert(s.clone(), *p);
        }
        let mut ex = Exchange {
            specs,
            marks,
            positions: BTreeMap::new(),
            orders: Vec::new(),
            hedge_mode: cfg.hedge_mode,
            balance: cfg.balance,
            leverage: cfg.leverage,
            listen_key: None,
            listen_key_ttl_ms: cfg.listen_key_ttl.as_millis() as i64,
            qty_precision: cfg.qty_precision,
            reduce_only_excess: cfg.reduce_only_excess,
            events: broadcast::channel(1024).0,
            statuses: BTreeMap::new(),
            market: broadcast::channel(256).0,
            next_trade_id: 1_000_001,
        };
        for (s, amt) in &cfg.positions {
            let side = if !cfg.hedge_mode {
                PosSide::Both
            } else if amt.is_neg() {
                PosSide::Short
            } else {
                PosSide::Long
            };
            let mark = ex.mark(s);
            ex.set_position(s, side, *amt, mark, now);
        }
        ex
    }

    /// Mark price of `symbol` (zero if unknown).
    pub fn mark(&self, symbol: &str) -> Dec {
        self.marks.get(symbol).copied().unwrap_or_default()
    }

    /// Contract status of `symbol`.
    pub fn status(&self, symbol: &str) -> ContractStatus {
        self.statuses
            .get(symbol)
            .copied()
            .unwrap_or(ContractStatus::Trading)
    }

    /// Every symbol with its contract status, in symbol order.
    pub fn specs_with_status(&self) -> Vec<(SymbolSpec, ContractStatus)> {
        self.specs
            .values()
            .map(|s| (s.clone(), self.status(&s.symbol)))
            .collect()
    }

    /// Sets the contract status of `symbol`; a change is pushed on `!contractInfo`. With
    /// `settle` (only at `DELIVERING` or `SETTLING`) the exchange then cancels the symbol's
    /// open orders and closes every non-flat position leg with a settlement order of its own
    /// (`settlement_autoclose-…`, at the mark), reported on the user stream as fills are.
    pub fn set_status(
        &mut self,
        symbol: &str,
        status: ContractStatus,
        settle: bool,
        now: i64,
    ) -> Result<StatusChange, String> {
        let Some(spec) = self.specs.get(symbol) else {
            return Err(format!("unknown symbol '{symbol}'"));
        };
        if settle && !status.settles() {
            return Err(format!(
                "settle needs status DELIVERING or SETTLING, not {}",
                status.as_str()
            ));
        }
        let previous = self.status(symbol);
        if previous != status {
            let ev = spec.contract_info_event(status, now);
            self.statuses.insert(symbol.to_string(), status);
            let _ = self.market.send(MarketEvent {
                stream: CONTRACT_INFO_STREAM,
                json: ev,
            });
        }
        let mut change = StatusChange {
            symbol: symbol.to_string(),
            previous: previous.as_str().into(),
            status: status.as_str().into(),
            canceled: vec![],
            settled: vec![],
        };
        if settle {
            let open: Vec<usize> = (0..self.orders.len())
                .filter(|i| self.orders[*i].symbol == symbol && self.orders[*i].is_open())
                .collect();
            for i in open {
                self.close_order(i, "CANCELED", now);
                change.canceled.push(self.orders[i].order_id);
            }
            let legs: Vec<PosSide> = self
                .positions
                .iter()
                .filter(|((s, _), p)| s == symbol && p.amt != Dec::ZERO)
                .map(|((_, ps), _)| *ps)
                .collect();
            for ps in legs {
                let id =
                    self.exchange_close(symbol, ps, ExchangeOrderKind::Settlement, None, now)?;
                change.settled.push(id);
            }
        }
        Ok(change)
    }

    /// The position side a control names for `symbol` in the current mode: `BOTH` (or none)
    /// in one-way mode, `LONG` or `SHORT` in hedge mode; `None` given in hedge mode takes
    /// `default`, when there is one.
    pub fn control_side(
        &self,
        given: Option<&str>,
        default: Option<PosSide>,
    ) -> Result<PosSide, String> {
        let side = match given {
            None if !self.hedge_mode => PosSide::Both,
            None => default.ok_or("positionSide LONG or SHORT is required in hedge mode")?,
            Some(s) => PosSide::parse(s)
                .ok_or_else(|| format!("positionSide '{s}' is not BOTH, LONG or SHORT"))?,
        };
        match (self.hedge_mode, side) {
            (true, PosSide::Both) => {
                Err("positionSide BOTH is one-way mode; the account is in hedge mode".into())
            }
            (false, PosSide::Long | PosSide::Short) => Err(format!(
                "positionSide {} is hedge mode; the account is in one-way mode",
                side.as_str()
            )),
            _ => Ok(side),
        }
    }

    /// Position leg (flat if none).
    pub fn position(&self, symbol: &str, side: PosSide) -> Position {
        self.positions
            .get(&(symbol.to_string(), side))
            .copied()
            .unwrap_or_default()
    }

    /// Overwrites a position leg (test control).
    pub fn set_position(&mut self, symbol: &str, side: PosSide, amt: Dec, entry: Dec, now: i64) {
        let entry = if amt == Dec::ZERO { Dec::ZERO } else { entry };
        self.positions.insert(
            (symbol.to_string(), side),
            Position {
                amt,
                entry,
                update_time: now,
            },
        );
    }

    /// Position legs to report: one per symbol in one-way mode, LONG and SHORT in hedge mode.
    pub fn legs(&self) -> Vec<(String, PosSide, Position)> {
        let sides: &[PosSide] = if self.hedge_mode {
            &[PosSide::Long, PosSide::Short]
        } else {
            &[PosSide::Both]
        };
        let mut v = Vec::new();
        for s in self.specs.keys() {
            for side in sides {
                v.push((s.clone(), *side, self.position(s, *side)));
            }
        }
        v
    }

    /// Unrealised PnL of a leg at the current mark.
    pub fn unrealized(&self, symbol: &str, p: &Position) -> Dec {
        p.amt.times(self.mark(symbol) - p.entry)
    }

    /// Initial margin of all positions at the current marks.
    pub fn position_margin(&self) -> Dec {
        let lev = Dec::from_int(i64::from(self.leverage));
        self.positions
            .iter()
            .map(|((s, _), p)| p.amt.abs().times(self.mark(s)).per(lev))
            .fold(Dec::ZERO, |a, b| a + b)
    }

    /// Sum of unrealised PnL.
    pub fn total_unrealized(&self) -> Dec {
        self.positions
            .iter()
            .map(|((s, _), p)| self.unrealized(s, p))
            .fold(Dec::ZERO, |a, b| a + b)
    }

    /// Open orders on `symbol`.
    pub fn open_orders(&self, symbol: &str) -> impl Iterator<Item = &Order> {
        let symbol = symbol.to_string();
        self.orders
            .iter()
            .filter(move |o| o.symbol == symbol && o.is_open())
    }

    /// Order by exchange id.
    pub fn order_by_id(&self, id: u64) -> Option<usize> {
        let i = id.checked_sub(FIRST_ORDER_ID)? as usize;
        (i < self.orders.len()).then_some(i)
    }

    /// Most recent order with this client id on `symbol`.
    pub fn order_by_client_id(&self, symbol: &str, cid: &str) -> Option<usize> {
        self.orders
            .iter()
            .rposition(|o| o.symbol == symbol && o.client_order_id == cid)
    }

    /// Id for the next order.
    pub fn next_order_id(&self) -> u64 {
        FIRST_ORDER_ID + self.orders.len() as u64
    }

    /// Applies a fill of `qty` at `price` to order `idx` and its position; emits the
    /// ORDER_TRADE_UPDATE (TRADE) and ACCOUNT_UPDATE events.
    pub fn fill(&mut self, idx: usize, qty: Dec, price: Dec, now: i64) {
        let (symbol, side, ps) = {
            let o = &self.orders[idx];
            (o.symbol.clone(), o.side, o.position_side)
        };
        let signed = if side == Side::Buy { qty } else { -qty };
        let mut pos = self.position(&symbol, ps);
        let mut realized = Dec::ZERO;
        let same_dir = pos.amt == Dec::ZERO || (pos.amt.is_pos() == signed.is_pos());
        if same_dir {
            let notional = pos.amt.abs().times(pos.entry) + qty.times(price);
            pos.amt = pos.amt + signed;
            pos.entry = notional.per(pos.amt.abs());
        } else {
            let closed = qty.min(pos.amt.abs());
            let dir = if pos.amt.is_pos() {
                Dec::from_int(1)
            } else {
                Dec::from_int(-1)
            };
            realized = closed.times(price - pos.entry).times(dir);
            pos.amt = pos.amt + signed;
            if pos.amt == Dec::ZERO {
                pos.entry = Dec::ZERO;
            } else if pos.amt.is_pos() != dir.is_pos() {
                // Flipped through zero: the remainder opened at the fill price.
                pos.entry = price;
            }
        }
        pos.update_time = now;
        self.positions.insert((symbol.clone(), ps), pos);
        self.balance = self.balance + realized;

        let trade_id = self.next_trade_id;
        self.next_trade_id += 1;
        let o = &mut self.orders[idx];
        o.executed_qty = o.executed_qty + qty;
        o.cum_quote = o.cum_quote + qty.times(price);
        o.status = if o.executed_qty == o.orig_qty {
            "FILLED"
        } else {
            "PARTIALLY_FILLED"
        };
        o.update_time = now;
        let ev = self.trade_lite(idx, qty, price, trade_id, now);
        self.emit(ev);
        let ev = self.order_event(idx, "TRADE", qty, price, trade_id, realized, now);
        self.emit(ev);
        let ev = self.account_event(&symbol, ps, now);
        self.emit(ev);
    }

    /// Sets a final status (CANCELED, EXPIRED) and emits the matching ORDER_TRADE_UPDATE.
    pub fn close_order(&mut self, idx: usize, status: &'static str, now: i64) {
        let o = &mut self.orders[idx];
        o.status = status;
        o.update_time = now;
        let ev = self.order_event(idx, status, Dec::ZERO, Dec::ZERO, 0, Dec::ZERO, now);
        self.emit(ev);
    }

    /// Sends a user-data event to every open stream (none open is fine).
    pub fn emit(&self, ev: Value) {
        let name = ev["e"].as_str().unwrap_or("").to_string();
        let _ = self.events.send(StreamEvent { name, json: ev });
    }

    /// TRADE_LITE for a fill of order `idx`.
    pub fn trade_lite(&self, idx: usize, qty: Dec, price: Dec, trade_id: u64, now: i64) -> Value {
        let o = &self.orders[idx];
        let spec = &self.specs[&o.symbol];
        let (pp, qp) = (spec.price_precision, spec.quantity_precision);
        json!({
            "e": "TRADE_LITE", "E": now, "T": now, "s": o.symbol,
            "q": o.orig_qty.to_dp(qp), "p": o.price.to_dp(pp), "m": false,
            "c": o.client_order_id, "S": o.side.as_str(),
            "L": price.to_dp(pp), "l": qty.to_dp(qp), "t": trade_id, "i": o.order_id,
        })
    }

    /// The exchange closes `qty` (all, when `None`) of the position leg on its own: an IOC
    /// order at the mark under the client id of `kind`, filled at once. Returns the order id.
    pub fn exchange_close(
        &mut self,
        symbol: &str,
        ps: PosSide,
        kind: ExchangeOrderKind,
        qty: Option<Dec>,
        now: i64,
    ) -> Result<u64, String> {
        let amt = self.position(symbol, ps).amt;
        if amt == Dec::ZERO {
            return Err(format!("{symbol} {} has no position to close", ps.as_str()));
        }
        let qty = qty.unwrap_or(amt.abs()).min(amt.abs());
        if !qty.is_pos() {
            return Err(format!("quantity {qty} is not positive"));
        }
        let mark = self.mark(symbol);
        let order = Order {
            order_id: self.next_order_id(),
            symbol: symbol.to_string(),
            client_order_id: kind.client_order_id(now),
            side: if amt.is_pos() { Side::Sell } else { Side::Buy },
            position_side: ps,
            order_type: OrderType::Limit,
            time_in_force: "IOC".into(),
            orig_qty: qty,
            price: mark,
            executed_qty: Dec::ZERO,
            cum_quote: Dec::ZERO,
            status: "NEW",
            reduce_only: true,
            time: now,
            update_time: now,
            via: "exchange",
        };
        let order_id = order.order_id;
        self.orders.push(order);
        let idx = self.orders.len() - 1;
        let ev = self.order_event(idx, "NEW", Dec::ZERO, Dec::ZERO, 0, Dec::ZERO, now);
        self.emit(ev);
        self.fill(idx, qty, mark, now);
        if self.orders[idx].is_open() {
            self.close_order(idx, "EXPIRED", now);
        }
        Ok(order_id)
    }

    /// ORDER_TRADE_UPDATE for order `idx` with execution type `x`.
    #[allow(clippy::too_many_arguments)]
    pub fn order_event(
        &self,
        idx: usize,
        x: &str,
        last_qty: Dec,
        last_price: Dec,
        trade_id: u64,
        realized: Dec,
        now: i64,
    ) -> Value {
        let o = &self.orders[idx];
        let spec = &self.specs[&o.symbol];
        let (pp, qp) = (spec.price_precision, spec.quantity_precision);
        json!({
            "e": "ORDER_TRADE_UPDATE", "E": now, "T": now,
            "o": {
                "s": o.symbol, "c": o.client_order_id, "S": o.side.as_str(),
                "o": o.order_type.as_str(), "f": o.time_in_force,
                "q": o.orig_qty.to_dp(qp), "p": o.price.to_dp(pp),
                "ap": o.avg_price().to_dp(pp.max(5)), "sp": "0",
                "x": x, "X": o.status, "i": o.order_id,
                "l": last_qty.to_dp(qp), "z": o.executed_qty.to_dp(qp),
                "L": last_price.to_dp(pp), "N": "USDT", "n": "0",
                "T": now, "t": trade_id, "b": "0", "a": "0", "m": false,
                "R": o.reduce_only, "wt": "CONTRACT_PRICE", "ot": o.order_type.as_str(),
                "ps": o.position_side.as_str(), "cp": false, "rp": realized.to_dp(8),
                "pP": false, "si": 0, "ss": 0, "V": "NONE", "pm": "NONE", "gtd": 0,
            }
        })
    }

    /// ACCOUNT_UPDATE carrying the one changed leg.
    pub fn account_event(&self, symbol: &str, ps: PosSide, now: i64) -> Value {
        let p = self.position(symbol, ps);
        let spec = &self.specs[symbol];
        let bal = self.balance.to_dp(8);
        json!({
            "e": "ACCOUNT_UPDATE", "E": now, "T": now,
            "a": {
                "m": "ORDER",
                "B": [{"a": "USDT", "wb": bal, "cw": bal, "bc": "0"}],
                "P": [{
                    "s": symbol, "pa": p.amt.to_dp(spec.quantity_precision),
                    "ep": p.entry.to_dp(8), "bep": p.entry.to_dp(8), "cr": "0",
                    "up": self.unrealized(symbol, &p).to_dp(8), "mt": "cross", "iw": "0",
                    "ps": ps.as_str(),
                }]
            }
        })
    }

    /// Creates or extends the listenKey (Binance keeps one per account).
    pub fn open_listen_key(&mut self, now: i64) -> String {
        let expiry = now + self.listen_key_ttl_ms;
        match &mut self.listen_key {
            Some((k, exp)) if *exp > now => {
                *exp = expiry;
                k.clone()
            }
            _ => {
                let k: String = rand::thread_rng()
                    .sample_iter(&Alphanumeric)
                    .take(64)
                    .map(char::from)
                    .collect();
                self.listen_key = Some((k.clone(), expiry));
                k
            }
        }
    }

    /// Extends the live listenKey; `None` when there is none or it expired.
    pub fn keepalive_listen_key(&mut self, now: i64) -> Option<String> {
        let ttl = self.listen_key_ttl_ms;
        match &mut self.listen_key {
            Some((k, exp)) if *exp > now => {
                *exp = now + ttl;
                Some(k.clone())
            }
            _ => None,
        }
    }

    /// True while `key` is the live listenKey.
    pub fn listen_key_live(&self, key: &str, now: i64) -> bool {
        matches!(&self.listen_key, Some((k, exp)) if k == key && *exp > now)
    }

    /// Fills resting GTC/GTX limits that the current mark crosses, at their limit price.
    pub fn cross_resting(&mut self, symbol: &str, now: i64) {
        let mark = self.mark(symbol);
        let idxs: Vec<usize> = self
            .orders
            .iter()
            .enumerate()
            .filter(|(_, o)| {
                o.symbol == symbol
                    && o.is_open()
                    && o.order_type == OrderType::Limit
                    && match o.side {
                        Side::Buy => o.price >= mark,
                        Side::Sell => o.price <= mark,
                    }
            })
            .map(|(i, _)| i)
            .collect();
        for i in idxs {
            let o = &self.orders[i];
            let mut qty = o.orig_qty - o.executed_qty;
            if o.reduce_only {
                qty = qty.min(self.reducible(symbol, o.side, o.position_side));
            }
            let price = o.price;
            if qty.is_pos() {
                self.fill(i, qty, price, now);
            }
            if self.orders[i].is_open() {
                self.close_order(i, "EXPIRED", now);
            }
        }
    }

    /// How much an order of `side` on leg `ps` can reduce (zero if it would not reduce).
    pub fn reducible(&self, symbol: &str, side: Side, ps: PosSide) -> Dec {
        let amt = self.position(symbol, ps).amt;
        let reduces = match side {
            Side::Sell => amt.is_pos(),
            Side::Buy => amt.is_neg(),
        };
        if reduces {
            amt.abs()
        } else {
            Dec::ZERO
        }
    }

    /// The audit trail.
    pub fn audit(&self) -> Vec<AuditEntry> {
        self.orders
            .iter()
            .map(|o| {
                let qp = self.specs[&o.symbol].quantity_precision;
                AuditEntry {
                    symbol: o.symbol.clone(),
                    client_order_id: o.client_order_id.clone(),
                    order_id: o.order_id,
                    side: o.side.as_str().into(),
                    position_side: o.position_side.as_str().into(),
                    order_type: o.order_type.as_str().into(),
                    qty: o.orig_qty.to_dp(qp),
                    executed_qty: o.executed_qty.to_dp(qp),
                    status: o.status.into(),
                    reduce_only: o.reduce_only,
                    time: o.time,
                    via: o.via.into(),
                }
            })
            .collect()
    }

    /// Non-flat legs, exact.
    pub fn position_views(&self) -> Vec<PositionView> {
        self.positions
            .iter()
            .filter(|(_, p)| p.amt != Dec::ZERO)
            .map(|((s, ps), p)| PositionView {
                symbol: s.clone(),
                position_side: ps.as_str().into(),
                position_amt: p.amt.to_string(),
                entry_price: p.entry.to_string(),
                mark_price: self.mark(s).to_string(),
            })
            .collect()
    }
}
