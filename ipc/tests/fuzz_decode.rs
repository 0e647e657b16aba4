//! A bounded, deterministic fuzz run of the decoder that needs no nightly toolchain: mutations
//! of valid records (bit flips, byte sets, boundary values, splices of two records) plus
//! uniformly random bytes. Checks that decoding never panics and that every accepted record is
//! canonical (`encode(decode(b)) == b`).
//!
//! This is the test-suite fuzzer. For open-ended coverage-guided fuzzing with nightly, see
//! `ipc/fuzz/` (cargo-fuzz, not part of the workspace).

use quantum_ipc::wire::{Kind, Message, Record};
use quantum_ipc::Limits;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn mutate(rng: &mut XorShift, b: &mut Record, other: &Record) {
    for _ in 0..=rng.below(3) {
        let i = rng.below(64) as usize;
        match rng.below(6) {
            0 => b[i] ^= 1 << rng.below(8),
            1 => b[i] = rng.next() as u8,
            2 => b[i] = [0, 1, 2, 0x7F, 0x80, 0xFF][rng.below(6) as usize],
            3 => {
                // An 8-byte boundary value at an aligned offset.
                let o = (i / 8) * 8;
                let v: i64 = [0, 1, -1, i64::MAX, i64::MIN, 1_000_000_000_000_000_000]
                    [rng.below(6) as usize];
                b[o..o + 8].copy_from_slice(&v.to_le_bytes());
            }
            4 => {
                let j = rng.below(64) as usize;
                let (lo, hi) = (i.min(j), i.max(j));
                b[lo..hi].copy_from_slice(&other[lo..hi]);
            }
            _ => b[i] = 0,
        }
    }
}

#[test]
fn fuzz_decoder_bounded() {
    let iterations: u64 = if cfg!(miri) { 200 } else { 200_000 };
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let limits = Limits::new(64);
    let mut accepted = 0u64;
    for i in 0..iterations {
        let mut b: Record;
        if i % 8 == 7 {
            b = [0; 64];
            for byte in &mut b {
                *byte = rng.next() as u8;
            }
        } else {
            let kind = Kind::ALL[rng.below(Kind::ALL.len() as u64) as usize];
            let other_kind = Kind::ALL[rng.below(Kind::ALL.len() as u64) as usize];
            b = Message::sample(kind, rng.next(), &limits).encode();
            let other = Message::sample(other_kind, rng.next(), &limits).encode();
            mutate(&mut rng, &mut b, &other);
        }
        if let Ok(m) = Message::decode(&b, &limits) {
            accepted += 1;
            assert_eq!(m.encode(), b, "accepted a non-canonical record {b:?}");
        }
    }
    // The mutations must leave a fair share valid, or the run tests only the rejection paths.
    assert!(accepted > iterations / 20, "only {accepted} accepted");
}
