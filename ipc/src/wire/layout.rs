//! FNV-1a, usable in `const` context, for [`super::LAYOUT_HASH`].

pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Folds the bytes of `s` into `h`.
pub(crate) const fn fnv1a(mut h: u64, s: &str) -> u64 {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        h ^= b[i] as u64;
        h = h.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    h
}

/// Folds the little-endian bytes of `v` into `h`.
pub(crate) const fn fnv1a_u64(mut h: u64, v: u64) -> u64 {
    let b = v.to_le_bytes();
    let mut i = 0;
    while i < 8 {
        h ^= b[i] as u64;
        h = h.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    h
}
