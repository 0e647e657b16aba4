//! Shared-memory IPC for the quantum core (work in progress: see issue 3).
