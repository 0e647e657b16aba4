//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

/// A unique instance name per test: pid plus a counter.
pub fn instance(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}-{}-{}",
        std::process::id(),
        tag,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes every segment of an instance when dropped (also on a failing assert).
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(segs) = quantum_ipc::list_segments(Some(&self.0)) {
            for s in segs {
                let _ = quantum_ipc::shm::remove_segment(&s.os_id);
            }
        }
    }
}

/// Stress sizes: small under Miri.
pub fn n(full: u64) -> u64 {
    if cfg!(miri) {
        50
    } else {
        full
    }
}
