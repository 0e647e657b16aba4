//! Integration tests over real sockets: each test starts its own simulator on 127.0.0.1:0.
//! One module per area of Binance behaviour the simulator reproduces.

mod common;

mod auth;
mod cli;
mod ed25519;
mod events;
mod faults;
mod filters;
mod hedge;
mod history;
mod lifecycle;
mod limits;
mod positions;
mod routed;
mod status;
mod ws_api;
