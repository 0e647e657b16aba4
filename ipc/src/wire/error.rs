//! Why a record was refused.

use std::fmt;

use super::Kind;

/// What was wrong with one field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Not one of the code enum's values.
    UnknownCode {
        /// The number found.
        value: u64,
    },
    /// A bool byte other than 0 or 1.
    BoolByte {
        /// The byte found.
        value: u8,
    },
    /// A symbol id at or above the reader's limit.
    SymbolOutOfRange {
        /// The id found.
        symbol: u16,
        /// The number of valid ids.
        limit: u16,
    },
    /// A number outside `min ..= max`.
    OutOfRange {
        /// The value found.
        value: i64,
        /// Smallest accepted.
        min: i64,
        /// Largest accepted.
        max: i64,
    },
    /// Flag bits that have no meaning.
    UnknownFlags {
        /// The byte found.
        value: u8,
        /// The bits that are defined.
        allowed: u8,
    },
}

/// A record that failed validation: what was wrong and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Byte 0 is not a known tag.
    UnknownTag {
        /// The byte found.
        tag: u8,
    },
    /// A typed decode found another kind's tag.
    WrongTag {
        /// The kind asked for.
        expected: Kind,
        /// The tag found.
        found: u8,
    },
    /// A reserved byte is not zero.
    Reserved {
        /// The record kind.
        kind: Kind,
        /// Byte offset in the record.
        offset: usize,
        /// The byte found.
        value: u8,
    },
    /// A field has an invalid value.
    Field {
        /// The record kind.
        kind: Kind,
        /// The field's name.
        field: &'static str,
        /// The field's byte offset.
        offset: usize,
        /// What is wrong with it.
        problem: Invalid,
    },
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::UnknownCode { value } => write!(f, "{value} is not a defined value"),
            Invalid::BoolByte { value } => write!(f, "bool byte is {value}, not 0 or 1"),
            Invalid::SymbolOutOfRange { symbol, limit } => {
                write!(f, "symbol id {symbol} is not below {limit}")
            }
            Invalid::OutOfRange { value, min, max } => {
                write!(f, "{value} is outside {min}..={max}")
            }
            Invalid::UnknownFlags { value, allowed } => {
                write!(f, "flags {value:#04x} set bits outside {allowed:#04x}")
            }
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnknownTag { tag } => write!(f, "unknown record tag {tag}"),
            DecodeError::WrongTag { expected, found } => {
                write!(
                    f,
                    "expected a {expected:?} record (tag {}), found tag {found}",
                    expected.tag()
                )
            }
            DecodeError::Reserved {
                kind,
                offset,
                value,
            } => write!(
                f,
                "{kind:?} record: reserved byte {offset} is {value}, not 0"
            ),
            DecodeError::Field {
                kind,
                field,
                offset,
                problem,
            } => write!(
                f,
                "{kind:?} record: field {field} at byte {offset}: {problem}"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}
