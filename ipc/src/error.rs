//! Errors of segments, rings and counters. One sentence each, naming the segment.

use std::fmt;

/// Which side of a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The writer.
    Producer,
    /// The reader.
    Consumer,
}

/// Something went wrong creating, opening or claiming a segment.
#[derive(Debug)]
pub enum Error {
    /// An instance, ring or segment name with characters other than `[A-Za-z0-9_-]`, or empty,
    /// or too long.
    InvalidName {
        /// The name.
        name: String,
    },
    /// Capacity or slot size not allowed.
    InvalidSpec {
        /// Segment id.
        os_id: String,
        /// Why.
        reason: &'static str,
    },
    /// `create` found the segment already there.
    AlreadyExists {
        /// Segment id.
        os_id: String,
    },
    /// `open` found no such segment.
    NotFound {
        /// Segment id.
        os_id: String,
    },
    /// The operating system refused to create or map the segment.
    Shm {
        /// Segment id.
        os_id: String,
        /// The `shared_memory` crate's error.
        #[cfg(not(loom))]
        source: shared_memory::ShmemError,
    },
    /// A file-system operation on the segment failed.
    Io {
        /// Segment id.
        os_id: String,
        /// The error.
        source: std::io::Error,
    },
    /// The segment's creator has not finished writing its header.
    NotInitialised {
        /// Segment id.
        os_id: String,
    },
    /// The segment is not of the expected kind (wrong magic number).
    BadMagic {
        /// Segment id.
        os_id: String,
        /// The magic found.
        found: u64,
    },
    /// The segment was written by a binary with another layout.
    LayoutMismatch {
        /// Segment id.
        os_id: String,
        /// Layout hash in the segment.
        found_layout: u64,
        /// Format version in the segment.
        found_version: u32,
        /// Layout hash of this binary.
        expected_layout: u64,
        /// Format version of this binary.
        expected_version: u32,
    },
    /// The header holds impossible values.
    Corrupt {
        /// Segment id.
        os_id: String,
        /// What is impossible.
        what: &'static str,
    },
    /// The segment differs from what the caller asked for.
    Mismatch {
        /// Segment id.
        os_id: String,
        /// Which parameter.
        what: &'static str,
        /// In the segment.
        found: u64,
        /// Asked for.
        expected: u64,
    },
    /// Another live process (or another handle in this one) holds the role.
    Claimed {
        /// Segment id.
        os_id: String,
        /// The role.
        role: Role,
        /// Its holder.
        pid: u64,
    },
    /// No room for another counter.
    CountersFull {
        /// Segment id.
        os_id: String,
        /// Its capacity.
        capacity: usize,
    },
    /// A label or symbol name longer than the segment stores.
    TooLong {
        /// The text.
        text: String,
        /// Maximum bytes.
        max: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidName { name } => write!(
                f,
                "name {name:?} is not 1 to 64 characters of [A-Za-z0-9_-]"
            ),
            Error::InvalidSpec { os_id, reason } => write!(f, "segment {os_id}: {reason}"),
            Error::AlreadyExists { os_id } => write!(
                f,
                "segment {os_id} already exists (remove it if its owner is dead)"
            ),
            Error::NotFound { os_id } => write!(f, "segment {os_id} does not exist"),
            #[cfg(not(loom))]
            Error::Shm { os_id, source } => write!(f, "segment {os_id}: {source}"),
            #[cfg(loom)]
            Error::Shm { os_id } => write!(f, "segment {os_id}: shared memory failed"),
            Error::Io { os_id, source } => write!(f, "segment {os_id}: {source}"),
            Error::NotInitialised { os_id } => {
                write!(f, "segment {os_id} is not initialised yet by its creator")
            }
            Error::BadMagic { os_id, found } => write!(
                f,
                "segment {os_id} is not a quantum segment of this kind (magic {found:#018x})"
            ),
            Error::LayoutMismatch {
                os_id,
                found_layout,
                found_version,
                expected_layout,
                expected_version,
            } => write!(
                f,
                "segment {os_id} has layout {found_layout:#018x} format v{found_version} \
                 but this binary expects layout {expected_layout:#018x} format v{expected_version}"
            ),
            Error::Corrupt { os_id, what } => {
                write!(f, "segment {os_id} has a corrupt header: {what}")
            }
            Error::Mismatch {
                os_id,
                what,
                found,
                expected,
            } => write!(f, "segment {os_id} has {what} {found}, expected {expected}"),
            Error::Claimed { os_id, role, pid } => {
                write!(f, "segment {os_id} already has a live {role:?} (pid {pid})")
            }
            Error::CountersFull { os_id, capacity } => {
                write!(f, "segment {os_id} is full ({capacity} counters)")
            }
            Error::TooLong { text, max } => write!(f, "{text:?} is longer than {max} bytes"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            #[cfg(not(loom))]
            Error::Shm { source, .. } => Some(source),
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The ring had no free slot; the record was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ring is full")
    }
}

impl std::error::Error for Full {}

/// A ring cursor in a state the protocol never produces (a stray write into the segment),
/// found by the side that checks it. Counted in the ring's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorFault {
    /// The ring's segment.
    pub os_id: String,
    /// What was wrong and what was done, one sentence.
    pub what: String,
}

impl fmt::Display for CursorFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ring {}: {}", self.os_id, self.what)
    }
}

impl std::error::Error for CursorFault {}
