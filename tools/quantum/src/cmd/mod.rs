//! `quantum bench`, `quantum sim`, `quantum bridge` and `quantum replay`: subcommands whose
//! work is done by other workspace crates; each module here names the subcommands, starts them
//! and prints what they found.

pub mod bench;
pub mod bridge;
pub mod replay;
pub mod sim;

/// Runs `job` to its end on a tokio runtime of its own: two worker threads, I/O and timers on.
fn block_on<T>(job: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(job)
}
