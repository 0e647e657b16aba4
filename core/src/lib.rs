//! The permit chain in memory (work in progress).
