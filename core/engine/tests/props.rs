//! Property tests: exact decimals, the lot grid, and P3.3 against a plain reference.

use proptest::prelude::*;
use quantum_core::book::{BookView, Filters, LotFilter};
use quantum_core::fixed::{floor_to_step, Qty, SCALE};
use quantum_core::p33::{decide, P33Reason};
use quantum_core::types::{PositionSide, Side};
use quantum_core::Price;

proptest! {
    /// Every i64 of units prints to a decimal that parses back to the same units.
    #[test]
    fn decimal_format_parse_round_trip(units in any::<i64>()) {
        let q = Qty::from_units(units);
        let text = q.to_string();
        prop_assert_eq!(text.parse::<Qty>().unwrap(), q);
        prop_assert!(!text.contains('e'));
    }

    /// A decimal written with up to 8 fraction digits parses to exactly its value.
    #[test]
    fn decimal_parse_is_exact(int in 0i64..92_233_720_368, frac in 0u32..100_000_000, digits in 1usize..=8, neg: bool) {
        let f = frac % 10u32.pow(digits as u32);
        let text = format!("{}{int}.{f:0digits$}", if neg { "-" } else { "" });
        let units = int * SCALE + i64::from(f) * 10i64.pow(8 - digits as u32);
        prop_assert_eq!(text.parse::<Qty>().unwrap().units(), if neg { -units } else { units });
    }

    /// floor_to_step returns the largest min + k*step not above the value.
    #[test]
    fn floor_to_step_is_the_largest_grid_point_below(v in 0i64..1_000_000_000_000, step in 1i64..10_000_000, min in 0i64..10_000_000) {
        let got = floor_to_step(v, step, min);
        if v < min || v == 0 {
            prop_assert_eq!(got, 0);
        } else {
            prop_assert!(got <= v && got >= min);
            prop_assert_eq!((got - min) % step, 0);
            prop_assert!(got + step > v);
        }
    }
}

/// P3.3 written out the plain way, with i128 and no shortcuts.
fn reference(
    b: &BookView,
    plan_side: Option<PositionSide>,
    pct: u32,
    now: u64,
    max_age: u64,
) -> Result<(i64, Side), P33Reason> {
    // The account's state: the exchange must trade the symbol, in the mode the leg is for,
    // and the plan must name the leg's side (none names BOTH).
    if !b.trading {
        return Err(P33Reason::SymbolNotTrading);
    }
    let leg_hedge = b.side != PositionSide::Both;
    match b.account_hedge {
        None => return Err(P33Reason::PositionModeUnknown),
        Some(h) if h != leg_hedge => return Err(P33Reason::PositionModeMismatch),
        _ => {}
    }
    match (plan_side, leg_hedge) {
        (None, true) => return Err(P33Reason::PositionSideRequired),
        (None, false) => {}
        (Some(s), _) if s != b.side => return Err(P33Reason::PositionSideMismatch),
        _ => {}
    }
    let (ex, at) = b.exchange.ok_or(P33Reason::ExchangeStateStale)?;
    if now - at > max_age {
        return Err(P33Reason::ExchangeStateStale);
    }
    let (ex, led) = (i128::from(ex.units()), i128::from(b.ledger.units()));
    if (ex - led).abs() > i128::from(b.tolerance.units()) {
        return Err(P33Reason::ReconcileRequiredQtyMismatch);
    }
    if ex == 0 {
        return Err(P33Reason::NoPosition);
    }
    let side = if ex > 0 { Side::Sell } else { Side::Buy };
    let committed = i128::from(b.in_flight.units()) + i128::from(b.pending.units());
    let avail = ex.abs().min(led.abs()) - committed;
    if avail <= 0 {
        return Err(P33Reason::NoPosition);
    }
    let f = b.filters;
    let step = i128::from(f.lot.step.units().max(f.market_lot.step.units()));
    let min = i128::from(f.lot.min.units().max(f.market_lot.min.units()));
    let max = i128::from(f.lot.max.units().min(f.market_lot.max.units()));
    let want = (avail * i128::from(pct) / 100).min(max);
    if want < min || want == 0 {
        return Err(P33Reason::SafeQtyBelowMin);
    }
    let q = min + (want - min) / step * step;
    if q == 0 {
        return Err(P33Reason::SafeQtyBelowMin);
    }
    Ok((q as i64, side))
}

proptest! {
    #[test]
    fn p33_matches_the_reference(
        ex in -200_000_000i64..200_000_000,
        diff in -300_000i64..300_000,
        tol in 0i64..400_000,
        in_flight in 0i64..50_000_000,
        pending in 0i64..30_000_000,
        pct in prop::sample::select(vec![25u32, 50, 75, 100]),
        step_exp in 0u32..6,
        age in 0u64..2_000,
        stale in any::<bool>(),
        side in prop::sample::select(vec![PositionSide::Both, PositionSide::Long, PositionSide::Short]),
        plan_side in prop::sample::select(vec![None, Some(PositionSide::Both), Some(PositionSide::Long), Some(PositionSide::Short)]),
        account in prop::sample::select(vec![None, Some(false), Some(true)]),
        trading in prop::bool::weighted(0.9),
    ) {
        let step = 10i64.pow(step_exp + 2);
        let lot = LotFilter { min: Qty::from_units(step), max: Qty::from_units(150_000_000), step: Qty::from_units(step) };
        let book = BookView {
            ledger: Qty::from_units(ex + diff),
            exchange: (!stale || age % 2 == 0).then_some((Qty::from_units(ex), 10_000)),
            mark: Price::from_units(1),
            in_flight: Qty::from_units(in_flight),
            pending: Qty::from_units(pending),
            tolerance: Qty::from_units(tol),
            filters: Filters { lot, market_lot: lot, min_notional: Price::ZERO },
            reconciling: false,
            side,
            account_hedge: account,
            trading,
        };
        let now = 10_000 + age;
        let got = decide(Some(&book), plan_side, pct, now, 1_000).0.map(|s| (s.qty.units(), s.side));
        prop_assert_eq!(got, reference(&book, plan_side, pct, now, 1_000));
    }
}
