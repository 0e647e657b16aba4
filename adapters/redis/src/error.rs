//! The bridge's errors. Callers match on the kind: a [`Error::Redis`] is retried with back-off,
//! the others end a session or the process with one sentence.

use thiserror::Error;

/// What can go wrong in the bridge.
#[derive(Debug, Error)]
pub enum Error {
    /// A Redis command or connection failed (retried with back-off by the caller).
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A shared-memory segment of the instance could not be opened or claimed.
    #[error("instance {instance}: {source}")]
    Ipc {
        /// Instance name.
        instance: String,
        /// The ring or counters error.
        #[source]
        source: quantum_ipc::Error,
    },
    /// The core daemon of the instance is not there (not started, or gone).
    #[error("instance {instance}: {what}; is `quantum run --instance {instance}` running?")]
    NoDaemon {
        /// Instance name.
        instance: String,
        /// What was missing.
        what: String,
    },
    /// The daemon and the bridge disagree on who issues permits.
    #[error("{0}")]
    PermitSource(String),
    /// A bad option value.
    #[error("{0}")]
    Config(String),
    /// A backfill source (the journal) could not deliver events.
    #[error("backfill of seq {from_seq}..{to_seq}: {reason}")]
    Backfill {
        /// First sequence number asked for.
        from_seq: u64,
        /// First sequence number after the range.
        to_seq: u64,
        /// Why.
        reason: String,
    },
}

impl Error {
    /// Whether the connection to Redis is the problem (lost, refused, timed out, or to a
    /// replica), as opposed to a command Redis answered with an error.
    pub fn is_connection(&self) -> bool {
        match self {
            Error::Redis(e) => {
                e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
                    // A replica (a master demoted by a failover) answers writes READONLY:
                    // connect again, through the sentinels when the URL names them.
                    || matches!(
                        e.kind(),
                        redis::ErrorKind::Server(
                            redis::ServerErrorKind::BusyLoading | redis::ServerErrorKind::ReadOnly
                        )
                    )
            }
            _ => false,
        }
    }
}

/// The bridge's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
