//! The redis-server the `legacy` and `bridge` rows start for themselves
//! ([`quantum_local_redis`], the one launcher of a private redis-server, shared with the
//! tests), with its version for the report.

use std::path::Path;

use anyhow::{anyhow, Result};
use quantum_local_redis as local;

/// A redis-server started for this run, without persistence (no snapshot fork can land in the
/// middle of a block); stopped on drop.
pub struct RedisServer {
    server: local::RedisServer,
    /// Its loopback port.
    pub port: u16,
    /// `redis-server --version`'s first words.
    pub version: String,
}

impl RedisServer {
    /// Starts `exe` on a free loopback port and waits until it answers PING.
    pub fn start(exe: &Path) -> Result<RedisServer> {
        let version = local::RedisServer::version_of(exe).map_err(|e| anyhow!(e))?;
        let server = local::RedisServer::launch(exe, false, &[]).map_err(|e| anyhow!(e))?;
        Ok(RedisServer {
            port: server.port(),
            server,
            version,
        })
    }

    /// A new connection to database `db` (one per legacy service, as deployed; each row its
    /// own database, so their streams and keys never meet).
    pub fn connect(&self, db: u8) -> Result<redis::Connection> {
        Ok(self.server.conn_db(db)?)
    }
}
