//! The client against the simulator over real sockets.

mod common;
mod confirmations;
mod ed25519;
mod errors;
mod guard;
mod happy;
mod history;
mod lookups;
mod never_twice;
mod outcomes;
mod rate_limits;
mod streams;
mod stub;
