use super::*;

#[test]
fn every_kind_round_trips_a_sample() {
    let limits = Limits::default();
    for &kind in Kind::ALL {
        for seed in 0..100 {
            let m = Message::sample(kind, seed, &limits);
            let b = m.encode();
            assert_eq!(b[0], kind.tag());
            assert_eq!(Message::decode(&b, &limits), Ok(m));
        }
    }
}

#[test]
fn errors_say_what_and_where() {
    let limits = Limits::new(10);
    let plan = Plan {
        decision: Decision::Execute,
        symbol: 3,
        action: Action::FullClose,
        flags: PLAN_FLAG_REDUCE_ONLY,
        plan_id: 7,
        kill_score: -5,
        created_at_ms: 1,
        qty: 0,
    };
    let good = plan.encode();
    assert_eq!(Plan::decode(&good, &limits), Ok(plan));

    let mut b = good;
    b[2] = 10;
    assert_eq!(
        Message::decode(&b, &limits),
        Err(DecodeError::Field {
            kind: Kind::Plan,
            field: "symbol",
            offset: 2,
            problem: Invalid::SymbolOutOfRange {
                symbol: 10,
                limit: 10
            },
        })
    );

    let mut b = good;
    b[1] = 9;
    assert!(matches!(
        Message::decode(&b, &limits),
        Err(DecodeError::Field {
            field: "decision",
            problem: Invalid::UnknownCode { value: 9 },
            ..
        })
    ));

    let mut b = good;
    b[63] = 1;
    assert_eq!(
        Message::decode(&b, &limits),
        Err(DecodeError::Reserved {
            kind: Kind::Plan,
            offset: 63,
            value: 1
        })
    );

    let mut b = good;
    b[32..40].copy_from_slice(&(-1i64).to_le_bytes());
    let e = Message::decode(&b, &limits).unwrap_err();
    assert!(e.to_string().contains("field qty at byte 32"), "{e}");

    let mut b = good;
    b[0] = 0;
    assert_eq!(
        Message::decode(&b, &limits),
        Err(DecodeError::UnknownTag { tag: 0 })
    );
    assert!(matches!(
        Fill::decode(&good, &limits),
        Err(DecodeError::WrongTag { .. })
    ));
}

#[test]
fn layout_hash_covers_offsets_and_names() {
    let d = layout_description();
    assert!(
        d.contains("Plan=1{decision:Decision@1;symbol:u16@2;"),
        "{d}"
    );
    assert!(d.contains("SymbolFilters=11{"), "{d}");
    assert_ne!(LAYOUT_HASH, 0);
    // Same description, same hash: recompute at run time.
    let mut h = layout::fnv1a(layout::FNV_OFFSET, "quantum-ipc wire format v");
    h = layout::fnv1a_u64(h, FORMAT_VERSION as u64);
    h = layout::fnv1a_u64(h, RECORD_SIZE as u64);
    for line in d.lines().skip(1) {
        h = layout::fnv1a(h, line);
    }
    assert_eq!(h, LAYOUT_HASH);
}

/// Journals and snapshots of an older binary whose records are a prefix of this one's read
/// here; any other layout does not.
#[test]
fn layouts_this_one_extends_read() {
    assert!(layout_reads(LAYOUT_HASH));
    let d = layout_description();
    let lines: Vec<&str> = d.lines().skip(1).collect();
    let prefix = |n: usize| {
        let mut h = layout::fnv1a(layout::FNV_OFFSET, "quantum-ipc wire format v");
        h = layout::fnv1a_u64(h, FORMAT_VERSION as u64);
        h = layout::fnv1a_u64(h, RECORD_SIZE as u64);
        for line in &lines[..n] {
            h = layout::fnv1a(h, line);
        }
        h
    };
    // The layout before `PlanSeen` and `Started` were added (records 1 to 26).
    let before = lines
        .iter()
        .position(|l| l.starts_with("PlanSeen="))
        .expect("PlanSeen");
    assert!(lines[before - 1].starts_with("LedgerBase="), "{d}");
    assert!(layout_reads(prefix(before)));
    assert_eq!(prefix(lines.len()), LAYOUT_HASH);
    // A changed record is not an extension.
    let mut h = prefix(before - 1);
    h = layout::fnv1a(h, "LedgerBase=26{symbol:u16@2;amount:i64@16}");
    assert!(!layout_reads(h));
    assert!(!layout_reads(0));
    // What each layout can hold: the previous version's (up to `Started`) has no account
    // records; this one has every kind.
    let account = lines
        .iter()
        .position(|l| l.starts_with("AccountMode="))
        .expect("AccountMode");
    assert!(lines[account - 1].starts_with("Started="), "{d}");
    let previous = prefix(account);
    assert!(layout_reads(previous));
    assert!(layout_has(previous, Kind::Started));
    assert!(!layout_has(previous, Kind::AccountMode));
    assert!(!layout_has(previous, Kind::SymbolStatus));
    assert!(!layout_has(prefix(before), Kind::PlanSeen));
    assert!(Kind::ALL.iter().all(|k| layout_has(LAYOUT_HASH, *k)));
    assert!(!layout_has(0, Kind::Plan));
}

#[test]
fn raw_detects_torn_payloads() {
    let r = Raw::for_seq(42, 7);
    assert!(r.is_consistent());
    let mut torn = r;
    torn.words[4] ^= 1;
    assert!(!torn.is_consistent());
}
