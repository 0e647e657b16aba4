//! Property tests of the wire codec.

use proptest::prelude::*;
use quantum_ipc::wire::{Kind, Message, Record, RECORD_SIZE};
use quantum_ipc::Limits;

fn limits() -> impl Strategy<Value = Limits> {
    (1u16..=256).prop_map(Limits::new)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 16 } else { 20_000 }))]

    /// Any 64 bytes: decoding never panics, and whatever it accepts re-encodes to the same bytes.
    #[test]
    fn decode_accepts_only_canonical_records(bytes in prop::array::uniform32(any::<u8>()),
                                             more in prop::array::uniform32(any::<u8>()),
                                             tag in 0u8..16,
                                             limits in limits()) {
        let mut b: Record = [0; RECORD_SIZE];
        b[..32].copy_from_slice(&bytes);
        b[32..].copy_from_slice(&more);
        b[0] = tag; // mostly known tags, so the field checks get exercised
        if let Ok(m) = Message::decode(&b, &limits) {
            prop_assert_eq!(m.encode(), b);
            prop_assert_eq!(m.kind().tag(), tag);
        }
    }

    /// Every kind round-trips: encode then decode gives the message back.
    #[test]
    fn every_kind_round_trips(kind in prop::sample::select(Kind::ALL), seed in any::<u64>(),
                              limits in limits()) {
        let m = Message::sample(kind, seed, &limits);
        let b = m.encode();
        prop_assert_eq!(Message::decode(&b, &limits), Ok(m));
    }

    /// Sparse records (few nonzero bytes) decode more often: same property on them.
    #[test]
    fn sparse_records_are_canonical_when_accepted(tag in 1u8..=12,
                                                  pokes in prop::collection::vec((1usize..64, any::<u8>()), 0..4)) {
        let mut b: Record = [0; RECORD_SIZE];
        b[0] = tag;
        for (i, v) in pokes {
            b[i] = v;
        }
        if let Ok(m) = Message::decode(&b, &Limits::default()) {
            prop_assert_eq!(m.encode(), b);
        }
    }
}
