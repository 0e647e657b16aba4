//! The record table: one line per field, `name @ offset: Type = check`.
//!
//! Byte 0 is always the tag; byte 1 holds a one-byte field or is reserved; bytes 2..4 hold the
//! symbol id where the record has one. Every byte not named here is reserved and must be zero.
//! `check` names the value check from [`super::field::check`] that decoding applies.

use super::field::{check, sample, splitmix, WireField};
use super::layout::{fnv1a, fnv1a_u64, FNV_OFFSET};
use super::{DecodeError, Limits, Record, FORMAT_VERSION, RECORD_SIZE};
use crate::codes::{
    Action, ContractStatus, ControlCommand, Decision, DoneCode, FailKind, GovReason, OrderStatus,
    OrderType, P33Reason, RefuseReason, ReportSource, ResultError, Side,
};

/// Marks fields as covered, asserting (at compile time, where it is called) that every field
/// fits in the record, is naturally aligned and overlaps nothing.
const fn covered(fields: &[(usize, usize, usize)]) -> [bool; RECORD_SIZE] {
    let mut m = [false; RECORD_SIZE];
    m[0] = true; // the tag
    let mut i = 0;
    while i < fields.len() {
        let (off, size, align) = fields[i];
        assert!(off % align == 0, "misaligned wire field");
        let mut j = 0;
        while j < size {
            assert!(
                off + j < RECORD_SIZE,
                "wire field past the end of the record"
            );
            assert!(!m[off + j], "wire fields overlap");
            m[off + j] = true;
            j += 1;
        }
        i += 1;
    }
    m
}

fn check_reserved(
    kind: Kind,
    b: &Record,
    covered: &[bool; RECORD_SIZE],
) -> Result<(), DecodeError> {
    for (offset, (&value, &used)) in b.iter().zip(covered.iter()).enumerate() {
        if !used && value != 0 {
            return Err(DecodeError::Reserved {
                kind,
                offset,
                value,
            });
        }
    }
    Ok(())
}

macro_rules! records {
    ($(
        $(#[$meta:meta])*
        $name:ident = $tag:literal {
            $( $(#[$fmeta:meta])* $field:ident @ $off:literal : $ty:ty = $check:ident ),* $(,)?
        }
    )*) => {
        $(
            $(#[$meta])*
            #[repr(C)]
            #[derive(Debug, Clone, Copy, PartialEq, Eq)]
            pub struct $name {
                $( $(#[$fmeta])* pub $field: $ty, )*
            }

            impl $name {
                /// This record's tag byte.
                pub const TAG: u8 = $tag;
                const COVERED: [bool; RECORD_SIZE] = covered(&[
                    $( ($off, <$ty as WireField>::SIZE, <$ty as WireField>::ALIGN) ),*
                ]);
                const LAYOUT: &'static str = concat!(
                    stringify!($name), "=", $tag, "{",
                    $( stringify!($field), ":", stringify!($ty), "@", $off, ";", )*
                    "}"
                );

                /// Encodes into a wire record; every reserved byte is zero.
                pub fn encode(&self) -> Record {
                    let mut b = [0u8; RECORD_SIZE];
                    b[0] = $tag;
                    $( WireField::put(&self.$field, &mut b, $off); )*
                    b
                }

                /// Decodes and validates a record of this kind.
                pub fn decode(b: &Record, limits: &Limits) -> Result<Self, DecodeError> {
                    if b[0] != $tag {
                        return Err(DecodeError::WrongTag { expected: Kind::$name, found: b[0] });
                    }
                    Self::decode_body(b, limits)
                }

                fn decode_body(b: &Record, limits: &Limits) -> Result<Self, DecodeError> {
                    // Force the compile-time layout assertions even if nothing else reads them.
                    const _: [bool; RECORD_SIZE] = $name::COVERED;
                    check_reserved(Kind::$name, b, &Self::COVERED)?;
                    $(
                        let $field = <$ty as WireField>::get(b, $off)
                            .and_then(|v| check::$check(&v, limits).map(|()| v))
                            .map_err(|problem| DecodeError::Field {
                                kind: Kind::$name,
                                field: stringify!($field),
                                offset: $off,
                                problem,
                            })?;
                    )*
                    Ok(Self { $($field),* })
                }

                #[allow(unused_assignments, unused_mut, unused_variables)]
                fn sample(seed: u64, limits: &Limits) -> Self {
                    let mut x = seed;
                    $(
                        x = splitmix(x);
                        let $field: $ty = sample::$check(x, limits);
                    )*
                    Self { $($field),* }
                }
            }

            impl From<$name> for Message {
                fn from(m: $name) -> Message {
                    Message::$name(m)
                }
            }
        )*

        /// The kind of a record, i.e. its tag.
        #[repr(u8)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Kind {
            $( #[doc = concat!("[`", stringify!($name), "`]")] $name = $tag, )*
        }

        impl Kind {
            /// Every kind, in tag order.
            pub const ALL: &'static [Kind] = &[$(Kind::$name),*];

            /// The kind with this tag byte.
            pub fn from_tag(tag: u8) -> Option<Kind> {
                match tag {
                    $( $tag => Some(Kind::$name), )*
                    _ => None,
                }
            }

            /// The tag byte.
            pub fn tag(self) -> u8 {
                self as u8
            }
        }

        /// Any decoded record.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Message {
            $( #[doc = concat!("A [`", stringify!($name), "`] record.")] $name($name), )*
        }

        impl Message {
            /// Decodes and validates any record. Never panics; an invalid record is an error.
            pub fn decode(b: &Record, limits: &Limits) -> Result<Message, DecodeError> {
                match b[0] {
                    $( $tag => $name::decode_body(b, limits).map(Message::$name), )*
                    tag => Err(DecodeError::UnknownTag { tag }),
                }
            }

            /// Encodes into a wire record.
            pub fn encode(&self) -> Record {
                match self {
                    $( Message::$name(m) => m.encode(), )*
                }
            }

            /// This record's kind.
            pub fn kind(&self) -> Kind {
                match self {
                    $( Message::$name(_) => Kind::$name, )*
                }
            }

            /// A deterministic valid record of `kind` derived from `seed`: for tests, fuzz seeds
            /// and benchmarks. Every value passes [`Message::decode`] under `limits`.
            pub fn sample(kind: Kind, seed: u64, limits: &Limits) -> Message {
                match kind {
                    $( Kind::$name => Message::$name($name::sample(seed, limits)), )*
                }
            }
        }

        /// FNV-1a over the format version and every record's name, tag, field names, types and
        /// offsets: any layout change changes it.
        pub const LAYOUT_HASH: u64 = {
            let mut h = fnv1a(FNV_OFFSET, "quantum-ipc wire format v");
            h = fnv1a_u64(h, FORMAT_VERSION as u64);
            h = fnv1a_u64(h, RECORD_SIZE as u64);
            $( h = fnv1a(h, $name::LAYOUT); )*
            h
        };

        /// Whether data written under layout `h` (a journal segment, a snapshot) reads right
        /// here: `h` is [`LAYOUT_HASH`], or the layout of an older binary whose records are
        /// this one's first records, unchanged (records were only added at the end since), so
        /// every record it wrote decodes the same way. Rings stay strict: their peers must
        /// share one layout.
        pub fn layout_reads(h: u64) -> bool {
            let mut x = fnv1a(FNV_OFFSET, "quantum-ipc wire format v");
            x = fnv1a_u64(x, FORMAT_VERSION as u64);
            x = fnv1a_u64(x, RECORD_SIZE as u64);
            for layout in [$($name::LAYOUT),*] {
                x = fnv1a(x, layout);
                if x == h {
                    return true;
                }
            }
            false
        }

        /// Whether data written under layout `h` can hold records of `kind`: `h` is this
        /// binary's layout, or one it extends ([`layout_reads`]) that already had `kind`.
        /// False for a layout this binary does not read.
        pub fn layout_has(h: u64, kind: Kind) -> bool {
            let mut x = fnv1a(FNV_OFFSET, "quantum-ipc wire format v");
            x = fnv1a_u64(x, FORMAT_VERSION as u64);
            x = fnv1a_u64(x, RECORD_SIZE as u64);
            let mut has = false;
            for (k, layout) in [$((Kind::$name, $name::LAYOUT)),*] {
                x = fnv1a(x, layout);
                has |= k == kind;
                if x == h {
                    return has;
                }
            }
            false
        }

        /// The description [`LAYOUT_HASH`] is computed from, one record per line.
        pub fn layout_description() -> String {
            let mut s = format!("format v{FORMAT_VERSION}, {RECORD_SIZE}-byte records\n");
            $( s.push_str($name::LAYOUT); s.push('\n'); )*
            s
        }
    };
}

records! {
    /// A plan from the planner (legacy `apply.plan`). Ingress: `plans`, `ctl`.
    Plan = 1 {
        /// What to do.
        decision @ 1: Decision = any,
        /// Symbol id (`< Limits::symbols`).
        symbol @ 2: u16 = symbol,
        /// How much to close.
        action @ 4: Action = any,
        /// Bit 0: reduce-only ([`super::PLAN_FLAG_REDUCE_ONLY`]); bits 1-2: the position side
        /// the plan names ([`super::plan_side`]); other bits must be zero.
        flags @ 5: u8 = plan_flags,
        /// Plan id, unique per planner.
        plan_id @ 8: u64 = any,
        /// Planner kill score (raw fixed point, opaque to the core).
        kill_score @ 16: i64 = any,
        /// When the planner created the plan (ms since the Unix epoch).
        created_at_ms @ 24: u64 = any,
        /// Quantity for opening plans, `0 ..= MAX_QTY`; 0 = none.
        qty @ 32: i64 = qty,
    }

    /// A governor permit. Ingress (`plans`, `ctl`): a legacy governor's permit. Event: the
    /// permit a plan was judged with, as the core's table held it.
    GovPermit = 2 {
        /// Whether the plan may go ahead.
        allow @ 1: bool = any,
        /// Symbol id.
        symbol @ 2: u16 = symbol,
        /// Why it denied; none when allowing.
        reason @ 4: Option<GovReason> = any,
        /// Plan id.
        plan_id @ 8: u64 = any,
        /// Validity after `issued_at_ms`.
        ttl_ms @ 16: u32 = any,
        /// Issue time (ms since the Unix epoch; 0 = now, for ingress).
        issued_at_ms @ 24: u64 = any,
    }

    /// A P3.3 position-check permit. Ingress: a legacy P3.3's permit. Event: the permit a plan
    /// was judged with.
    P33Permit = 3 {
        /// Whether the plan may go ahead.
        allow @ 1: bool = any,
        /// Symbol id.
        symbol @ 2: u16 = symbol,
        /// Why it denied; none when allowing.
        reason @ 4: Option<P33Reason> = any,
        /// The closing side when allowing (ingress: none means "opposite to `exchange_amt`").
        side @ 6: Option<Side> = any,
        /// Plan id.
        plan_id @ 8: u64 = any,
        /// Quantity that is safe to close, `0 ..= MAX_QTY`.
        safe_qty @ 16: i64 = qty,
        /// Position on the exchange (signed).
        exchange_amt @ 24: i64 = amount,
        /// Position in the ledger (signed).
        ledger_amt @ 32: i64 = amount,
        /// Allowed difference between the two.
        tolerance @ 40: i64 = qty,
        /// Issue time (ms since the Unix epoch; 0 = now, for ingress).
        issued_at_ms @ 48: u64 = any,
        /// Validity after `issued_at_ms` (0 on ingress: the governor's TTL applies).
        ttl_ms @ 56: u32 = any,
    }

    /// A position as the exchange reports it. Ingress: `exchange`, `ctl`. Event: the book's
    /// exchange side changed.
    PositionSnapshot = 4 {
        /// Symbol id.
        symbol @ 2: u16 = symbol,
        /// Signed position amount.
        amount @ 8: i64 = amount,
        /// Mark price; `0` on ingress means "unchanged".
        mark_price @ 16: i64 = qty,
        /// Exchange time (ms since the Unix epoch).
        exchange_time_ms @ 24: u64 = any,
    }

    /// Event: part of one of our orders filled, and the ledger followed.
    Fill = 5 {
        /// Side of the order.
        side @ 1: Side = any,
        /// Symbol id.
        symbol @ 2: u16 = symbol,
        /// Plan id.
        plan_id @ 8: u64 = any,
        /// Quantity filled by this fill, `1 ..= MAX_QTY`.
        qty @ 16: i64 = qty_pos,
        /// Fill price (the last fill's, else the average), `0` when the exchange gave none.
        price @ 24: i64 = qty,
        /// Exchange order id.
        order_id @ 32: u64 = any,
        /// Fill time (ms since the Unix epoch).
        time_ms @ 40: u64 = any,
        /// Quantity of the order filled so far, this fill included.
        cum_qty @ 48: i64 = qty,
        /// The symbol's ledger amount after this fill.
        ledger_after @ 56: i64 = amount,
    }

    /// Ingress (`exchange`): what the exchange says of one of our orders, as the adapter read it
    /// (order answer, user data stream or lookup). Cumulative, so a repeated report changes
    /// nothing.
    OrderReport = 6 {
        /// The exchange's status.
        status @ 1: OrderStatus = any,
        /// Symbol id.
        symbol @ 2: u16 = symbol,
        /// Side of the order.
        side @ 4: Side = any,
        /// Where the report comes from.
        source @ 5: ReportSource = any,
        /// Plan id (from the client order id).
        plan_id @ 8: u64 = any,
        /// Quantity filled so far.
        cum_qty @ 16: i64 = qty,
        /// Last fill price, else the average price; `0` when none.
        price @ 24: i64 = qty,
        /// Exchange order id.
        order_id @ 32: u64 = any,
        /// Event time (ms since the Unix epoch).
        time_ms @ 40: u64 = any,
        /// The order's quantity as the exchange holds it.
        orig_qty @ 48: i64 = qty,
    }

    /// An order the core asks an adapter to send. Egress: `orders`. Event: both permits were
    /// consumed and this order is to go out.
    OrderIntent = 7 {
        /// Side.
        side @ 1: Side = any,
        /// Symbol id.
        symbol @ 2: u16 = symbol,
        /// Reduce-only order.
        reduce_only @ 4: bool = any,
        /// Order type.
        order_type @ 5: OrderType = any,
        /// Bit 0: [`super::INTENT_FLAG_LOOKUP_FIRST`]; other bits must be zero.
        flags @ 6: u8 = intent_flags,
        /// Plan id (also the client order id's base).
        plan_id @ 8: u64 = any,
        /// Quantity, `1 ..= MAX_QTY`.
        qty @ 16: i64 = qty_pos,
        /// When the plan entered the core (ns, the core's monotonic clock).
        t_in_ns @ 24: u64 = any,
        /// When the intent left the core's engine (ns, the core's monotonic clock).
        t_out_ns @ 32: u64 = any,
        /// When the permits were consumed (ms since the Unix epoch).
        at_ms @ 40: u64 = any,
    }

    /// Event: the outcome of a plan; one per plan (legacy `apply.result`).
    PlanResult = 8 {
        /// The plan's decision.
        decision @ 1: Decision = any,
        /// Symbol id.
        symbol @ 2: u16 = symbol,
        /// Whether an order was made.
        executed @ 4: bool = any,
        /// Why it was not executed; none when executed or not an EXECUTE plan.
        error @ 6: Option<ResultError> = any,
        /// Plan id.
        plan_id @ 8: u64 = any,
        /// The [`GovReason`] or [`P33Reason`] code after `gov_denied` / `p33_denied`, else 0.
        detail @ 16: u16 = any,
        /// Time the plan waited for permits (µs).
        wait_us @ 20: u32 = any,
        /// Quantity of the order, `0 ..= MAX_QTY`: of an executed plan's, or of a duplicate's
        /// when the plan has an order the core knows; else 0.
        safe_qty @ 24: i64 = qty,
        /// When the result was made (ms since the Unix epoch).
        at_ms @ 32: u64 = any,
        /// After `p33_denied`: the exchange amount P3.3 judged (else 0).
        exchange_amt @ 40: i64 = amount,
        /// After `p33_denied`: the ledger amount P3.3 judged (else 0).
        ledger_amt @ 48: i64 = amount,
        /// After `p33_denied`: the tolerance (else 0).
        tolerance @ 56: i64 = qty,
    }

    /// Sets the ledger amount of a symbol. Ingress (`plans`, `ctl`): an operator's ledger sync.
    /// Event: the ledger was set.
    LedgerSet = 9 {
        /// Symbol id.
        symbol @ 2: u16 = symbol,
        /// Signed amount.
        amount @ 8: i64 = amount,
        /// When (ms since the Unix epoch; 0 on ingress).
        at_ms @ 16: u64 = any,
    }

    /// An operator command. Ingress (`plans`, `ctl`) and event.
    Control = 10 {
        /// Symbol id, or [`super::ALL_SYMBOLS`].
        symbol @ 2: u16 = symbol_or_all,
        /// Command.
        command @ 4: ControlCommand = any,
        /// Command argument.
        arg @ 8: i64 = any,
    }

    /// Exchange filters of a symbol (all `0 ..= MAX_QTY`). Ingress (`exchange`, `ctl`) and
    /// event.
    SymbolFilters = 11 {
        /// Symbol id.
        symbol @ 2: u16 = symbol,
        /// LOT_SIZE minimum quantity.
        min_qty @ 8: i64 = qty,
        /// LOT_SIZE maximum quantity.
        max_qty @ 16: i64 = qty,
        /// LOT_SIZE step.
        step @ 24: i64 = qty,
        /// MARKET_LOT_SIZE minimum quantity.
        market_min_qty @ 32: i64 = qty,
        /// MARKET_LOT_SIZE maximum quantity.
        market_max_qty @ 40: i64 = qty,
        /// MARKET_LOT_SIZE step.
        market_step @ 48: i64 = qty,
        /// MIN_NOTIONAL (price × quantity, 1e-8 units).
        min_notional @ 56: i64 = qty,
    }

    /// A test and benchmark record: a sequence number, a timestamp and five free words.
    Raw = 12 {
        /// Sequence number.
        seq @ 8: u64 = any,
        /// A timestamp or anything else.
        stamp @ 16: u64 = any,
        /// Payload (tests fill it from `seq` to detect torn records).
        words @ 24: [u64; 5] = any,
    }

    /// Event: an EXECUTE plan was accepted (remembered by dedupe) and waits for its permits.
    PlanAccepted = 13 {
        /// What to do.
        decision @ 1: Decision = any,
        /// Symbol id.
        symbol @ 2: u16 = symbol,
        /// How much to close.
        action @ 4: Action = any,
        /// As in [`Plan`].
        flags @ 5: u8 = plan_flags,
        /// Plan id.
        plan_id @ 8: u64 = any,
        /// Planner kill score.
        kill_score @ 16: i64 = any,
        /// When the planner created the plan (ms since the Unix epoch).
        created_at_ms @ 24: u64 = any,
        /// Quantity for opening plans.
        qty @ 32: i64 = qty,
        /// When the core accepted it (ms since the Unix epoch).
        at_ms @ 40: u64 = any,
        /// Until when apply waits for its permits (ms since the Unix epoch).
        deadline_ms @ 48: u64 = any,
    }

    /// The adapter sent (or is about to send) the order of a plan. Ingress (`exchange`) and
    /// event.
    OrderSent = 14 {
        /// Symbol id.
        symbol @ 2: u16 = symbol,
        /// Plan id.
        plan_id @ 8: u64 = any,
        /// When (ms since the Unix epoch).
        at_ms @ 16: u64 = any,
    }

    /// Event: the exchange accepted one of our orders.
    OrderAccepted = 15 {
        /// Symbol id.
        symbol @ 2: u16 = symbol,
        /// Plan id.
        plan_id @ 8: u64 = any,
        /// Exchange order id.
        order_id @ 16: u64 = any,
        /// When (ms since the Unix epoch).
        at_ms @ 24: u64 = any,
    }

    /// Ingress (`exchange`): the adapter could not place an order, or cannot tell whether it
    /// did.
    OrderFailed = 16 {
        /// What happened.
        kind @ 1: FailKind = any,
        /// Symbol id.
        symbol @ 2: u16 = symbol,
        /// The reason's code; its type depends on `kind` (see [`FailKind`]).
        reason @ 4: u16 = any,
        /// Plan id.
        plan_id @ 8: u64 = any,
        /// The exchange's error code, 0 = none.
        exchange_code @ 16: i32 = any,
        /// When (ms since the Unix epoch).
        at_ms @ 24: u64 = any,
    }

    /// Event: an order of ours ended; nothing of it is in flight any more.
    OrderDone = 17 {
        /// How it ended.
        code @ 1: DoneCode = any,
        /// Symbol id.
        symbol @ 2: u16 = symbol,
        /// The adapter's reason code (`rejected`, `unsent`), else 0.
        reason @ 4: u16 = any,
        /// Plan id.
        plan_id @ 8: u64 = any,
        /// Quantity filled in all.
        filled @ 16: i64 = qty,
        /// Quantity released from in flight by this end (the part that never filled).
        released @ 24: i64 = qty,
        /// The exchange's error code, 0 = none.
        exchange_code @ 32: i32 = any,
        /// When (ms since the Unix epoch).
        at_ms @ 40: u64 = any,
    }

    /// Event: an order of ours has an unknown outcome; its quantity stays in flight until it
    /// is resolved by client order id.
    OrderUnknown = 18 {
        /// Symbol id.
        symbol @ 2: u16 = symbol,
        /// Why: an [`crate::codes::UnknownReason`] code.
        reason @ 4: u16 = any,
        /// Plan id.
        plan_id @ 8: u64 = any,
        /// When (ms since the Unix epoch).
        at_ms @ 16: u64 = any,
    }

    /// Event: an order of unknown outcome was resolved by client order id.
    OrderResolved = 19 {
        /// True: the order exists (its state follows); false: it was never placed.
        found @ 1: bool = any,
        /// Symbol id.
        symbol @ 2: u16 = symbol,
        /// Plan id.
        plan_id @ 8: u64 = any,
        /// Exchange order id, 0 when not found.
        order_id @ 16: u64 = any,
        /// When (ms since the Unix epoch).
        at_ms @ 24: u64 = any,
    }

    /// Event: the core refused an input record; it is counted as invalid on its ring.
    InputRefused = 20 {
        /// The ring it came from (a [`crate::contract`] ring's index).
        ring @ 1: u8 = any,
        /// Symbol id it named (0 when none).
        symbol @ 2: u16 = symbol,
        /// Why.
        reason @ 4: RefuseReason = any,
        /// The tag of the refused record.
        kind @ 6: u8 = any,
        /// Plan id it named, 0 = none.
        plan_id @ 8: u64 = any,
        /// When (ms since the Unix epoch).
        at_ms @ 16: u64 = any,
    }

    /// Event: a symbol started (`on`) or finished reconciling. After a restart every symbol
    /// reconciles: its EXECUTE plans are denied `reconciling` until a fresh position snapshot
    /// has arrived and every order of unknown outcome on it has been resolved by client id.
    Reconciling = 21 {
        /// True: started; false: finished.
        on @ 1: bool = any,
        /// Symbol id.
        symbol @ 2: u16 = symbol,
        /// Orders on the symbol whose outcome is not known yet.
        unknown_orders @ 4: u32 = any,
        /// When (ms since the Unix epoch).
        at_ms @ 8: u64 = any,
    }

    /// Ingress (`exchange`, `ctl`): the account's orders of `symbol` from `since_ms` through
    /// `through_ms` were all reported (as `OrderReport`s with source `history` before this
    /// record). Event: the core took that history.
    OrderHistory = 22 {
        /// Symbol id.
        symbol @ 2: u16 = symbol,
        /// How many of our orders the history held.
        orders @ 4: u32 = any,
        /// Start of the history (ms since the Unix epoch).
        since_ms @ 8: u64 = any,
        /// End of the history (ms since the Unix epoch).
        through_ms @ 16: u64 = any,
    }

    /// Event: an order of ours that the exchange's history holds and the core did not know;
    /// its plan is remembered by dedupe from `at_ms`, and the order is kept as ended.
    OrderRecovered = 23 {
        /// The exchange's status.
        status @ 1: OrderStatus = any,
        /// Symbol id.
        symbol @ 2: u16 = symbol,
        /// Side of the order.
        side @ 4: Side = any,
        /// Plan id (from the client order id).
        plan_id @ 8: u64 = any,
        /// Quantity filled.
        cum_qty @ 16: i64 = qty,
        /// Average fill price; `0` when none.
        price @ 24: i64 = qty,
        /// Exchange order id.
        order_id @ 32: u64 = any,
        /// The exchange's last update of the order (ms since the Unix epoch).
        time_ms @ 40: u64 = any,
        /// The order's quantity as the exchange holds it.
        orig_qty @ 48: i64 = qty,
        /// When the core took it (ms since the Unix epoch).
        at_ms @ 56: u64 = any,
    }

    /// Event: this host took the lead under `epoch` (failover); every symbol waits for the
    /// exchange's history of our orders since `since_ms` before it trades. Egress (`orders`):
    /// the core asks the Binance bridge for that history.
    Leading = 24 {
        /// The lease's epoch (fencing number).
        epoch @ 8: u64 = any,
        /// Start of the history the core waits for (ms since the Unix epoch).
        since_ms @ 16: u64 = any,
        /// When the core took the lead (ms since the Unix epoch).
        at_ms @ 24: u64 = any,
    }

    /// Event (failover): after taking the lead, the symbol's exchange history is complete and
    /// no order of ours on it can fill any more; the core waits for its ledger as the shared
    /// ledger in Redis holds it (a `LedgerBase`) before the symbol trades.
    LedgerWanted = 25 {
        /// Symbol id.
        symbol @ 2: u16 = symbol,
        /// The lead's epoch.
        epoch @ 8: u64 = any,
        /// When (ms since the Unix epoch).
        at_ms @ 16: u64 = any,
    }

    /// Ingress (`plans`, `ctl`), failover: the ledger a new leader starts from, answering its
    /// `LedgerWanted` (the Redis bridge reads it from the position hash, where every fill of
    /// ours is booked once whichever host saw it).
    LedgerBase = 26 {
        /// Symbol id.
        symbol @ 2: u16 = symbol,
        /// Signed amount.
        amount @ 8: i64 = amount,
        /// The lead's epoch it answers.
        epoch @ 16: u64 = any,
    }

    /// Event: an EXECUTE plan answered at admission without being accepted (a duplicate,
    /// stale, or refused for a full dedupe set), as it arrived; its `PlanResult` follows, at
    /// once or, for a duplicate of a plan still waiting, after the original's. With
    /// `PlanAccepted` it puts every EXECUTE plan the core acted on into the journal, so a
    /// replay under another configuration can decide it again.
    PlanSeen = 27 {
        /// What to do.
        decision @ 1: Decision = any,
        /// Symbol id.
        symbol @ 2: u16 = symbol,
        /// How much to close.
        action @ 4: Action = any,
        /// As in [`Plan`].
        flags @ 5: u8 = plan_flags,
        /// Plan id.
        plan_id @ 8: u64 = any,
        /// Planner kill score.
        kill_score @ 16: i64 = any,
        /// When the planner created the plan (ms since the Unix epoch).
        created_at_ms @ 24: u64 = any,
        /// Quantity for opening plans.
        qty @ 32: i64 = qty,
        /// When the core answered it (ms since the Unix epoch).
        at_ms @ 40: u64 = any,
    }

    /// Event: the daemon started. It restored what the journal held before this event; with
    /// `history`, every symbol then waits for the exchange's order history since `since_ms` (a
    /// start that could not trust its own journal; a restart before it all arrived keeps
    /// waiting). The first event of every start, so a replay restarts where the daemon did.
    Started = 28 {
        /// Every symbol waits for the exchange's order history.
        history @ 1: bool = any,
        /// When (ms since the Unix epoch).
        at_ms @ 8: u64 = any,
        /// With `history`: the start of the history awaited (ms since the Unix epoch), else 0.
        since_ms @ 16: u64 = any,
    }

    /// The account's position mode, as the exchange told it (Binance `GET
    /// /fapi/v1/positionSide/dual`, read at every start and reconnect of the bridge). Ingress
    /// (`exchange`, `ctl`) and event. Until it arrives after a start, no symbol trades
    /// (`position_mode_unknown`); a symbol configured in the other mode is denied
    /// `position_mode_mismatch`.
    AccountMode = 29 {
        /// Hedge (dual-side) mode; false: one-way mode.
        hedge @ 1: bool = any,
        /// When the exchange was asked (ms since the Unix epoch; 0 on ingress).
        at_ms @ 8: u64 = any,
    }

    /// A symbol's contract status on the exchange, for one leg (Binance `exchangeInfo`
    /// `status`, or its contract info stream). Ingress (`exchange`, `ctl`) and event. A leg
    /// whose status is not `TRADING` is denied `symbol_not_trading`.
    SymbolStatus = 30 {
        /// The status.
        status @ 1: ContractStatus = any,
        /// Symbol id (the leg).
        symbol @ 2: u16 = symbol,
        /// When (ms since the Unix epoch; 0 on ingress).
        at_ms @ 8: u64 = any,
    }
}

impl Raw {
    /// A record whose every word is derived from `seq`, so a torn copy cannot pass
    /// [`Raw::is_consistent`].
    pub fn for_seq(seq: u64, stamp: u64) -> Raw {
        let mut words = [0u64; 5];
        let mut x = seq;
        for w in &mut words {
            x = splitmix(x);
            *w = x;
        }
        Raw { seq, stamp, words }
    }

    /// Whether the words are the ones [`Raw::for_seq`] derives from `seq`.
    pub fn is_consistent(&self) -> bool {
        Raw::for_seq(self.seq, self.stamp).words == self.words
    }
}
