//! `quantum bench`, `quantum sim` and `quantum bridge`: subcommands whose work is done by other
//! workspace crates; each module here only names the subcommands and starts them.

pub mod bench;
pub mod bridge;
pub mod sim;
