//! The 64-bit state word of a permit slot.
//!
//! ```text
//!  63            32 31      6   5        4        3..2        1..0
//! +----------------+---------+--------+----------+-----------+-----------+
//! |   generation   | (zero)  | closed | consumed | p33 status| gov status|
//! +----------------+---------+--------+----------+-----------+-----------+
//! ```
//!
//! The generation is `GEN_BITS` wide (32; 3 under unit tests) and wraps to 0 after `GEN_MAX`.
//!
//! A status is `NONE (00) → WRITING (01) → ALLOW (10) | DENY (11)`; the last two are final for a
//! generation. WRITING → ALLOW is `xor 0b11`, WRITING → DENY is `or 0b10`, so publishing is one
//! unconditional RMW that cannot disturb the other permit's bits. `closed` marks a slot that is
//! finished (consumed, blocked or expired) and free for the ingest thread to reopen; `consumed`
//! is set together with `closed` by the one winning consumer.

/// One permit's status inside the word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Not issued yet.
    None,
    /// An issuer won the right to write the permit and is writing its fields.
    Writing,
    /// Issued and allowing.
    Allow,
    /// Issued and denying.
    Deny,
}

impl Status {
    #[inline]
    pub(crate) const fn from_bits(b: u64) -> Status {
        match b & 0b11 {
            0 => Status::None,
            1 => Status::Writing,
            2 => Status::Allow,
            _ => Status::Deny,
        }
    }

    /// True for ALLOW and DENY: the permit is readable.
    #[inline]
    pub const fn is_issued(self) -> bool {
        matches!(self, Status::Allow | Status::Deny)
    }
}

/// Which permit of a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// The governor's permit.
    Gov,
    /// P3.3's permit.
    P33,
}

impl Which {
    #[inline]
    pub(crate) const fn shift(self) -> u32 {
        match self {
            Which::Gov => 0,
            Which::P33 => 2,
        }
    }
}

pub(crate) const WRITING: u64 = 0b01;
/// `WRITING ^ ALLOW_XOR == ALLOW`.
pub(crate) const ALLOW_XOR: u64 = 0b11;
/// `WRITING | DENY_OR == DENY`.
pub(crate) const DENY_OR: u64 = 0b10;
pub(crate) const CONSUMED: u64 = 1 << 4;
pub(crate) const CLOSED: u64 = 1 << 5;
const GEN_SHIFT: u32 = 32;

/// Bits of the generation. 32 in production; 3 under unit tests, so a test can wrap it.
#[cfg(not(test))]
pub(crate) const GEN_BITS: u32 = 32;
/// Bits of the generation. 32 in production; 3 under unit tests, so a test can wrap it.
#[cfg(test)]
pub(crate) const GEN_BITS: u32 = 3;
/// Largest generation; the one after it is 0.
pub(crate) const GEN_MAX: u32 = ((1u64 << GEN_BITS) - 1) as u32;

/// Decoded view of a state word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Word(pub u64);

impl Word {
    #[inline]
    pub(crate) const fn new(gen: u32, flags: u64) -> Word {
        Word((((gen & GEN_MAX) as u64) << GEN_SHIFT) | flags)
    }
    #[inline]
    pub(crate) const fn gen(self) -> u32 {
        (self.0 >> GEN_SHIFT) as u32
    }
    #[inline]
    pub(crate) const fn status(self, which: Which) -> Status {
        Status::from_bits(self.0 >> which.shift())
    }
    #[inline]
    pub(crate) const fn consumed(self) -> bool {
        self.0 & CONSUMED != 0
    }
    #[inline]
    pub(crate) const fn closed(self) -> bool {
        self.0 & CLOSED != 0
    }
    #[inline]
    pub(crate) const fn writing(self) -> bool {
        matches!(self.status(Which::Gov), Status::Writing)
            || matches!(self.status(Which::P33), Status::Writing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_touch_only_their_own_bits() {
        let w = Word::new(7, WRITING << Which::P33.shift());
        let allow = Word(w.0 ^ (ALLOW_XOR << Which::P33.shift()));
        assert_eq!(allow.status(Which::P33), Status::Allow);
        assert_eq!(allow.status(Which::Gov), Status::None);
        assert_eq!(allow.gen(), 7);
        let deny = Word(w.0 | (DENY_OR << Which::P33.shift()));
        assert_eq!(deny.status(Which::P33), Status::Deny);
        assert!(!deny.closed() && !deny.consumed() && !deny.writing());
        assert!(w.writing());
    }
}
