//! The client against the simulator over real sockets.

mod common;
mod errors;
mod happy;
mod never_twice;
mod rate_limits;
mod streams;
