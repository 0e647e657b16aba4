//! Latency benchmarks (work in progress: see issue 3).
