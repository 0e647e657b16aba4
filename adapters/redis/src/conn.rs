//! Connections to Redis: the URL (never logged with its credentials), a multiplexed
//! connection that is dropped when it fails and made again with back-off, and the log lines
//! an operator looks for ("Redis connected", "Redis lost").
//!
//! Commands that block (XREADGROUP BLOCK) and the keyspace subscription get connections of
//! their own ([`Redis::dedicated`], [`redis::Client::get_async_pubsub`]), so they never hold
//! up the writes.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, IntoConnectionInfo};

use crate::error::{Error, Result};
use crate::stats::Stats;

/// How long one command may take before the connection is counted lost.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Exponential back-off between retries: 50 ms doubling to 5 s.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: Self::FIRST }
    }
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_secs(5);

    /// Sleeps the current step and doubles it.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(Self::MAX);
    }

    /// The step after a success.
    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// `redis://host:port/db` or `rediss://…`, with credentials shown as `***`.
pub fn shown_url(client: &Client) -> String {
    let info = client.get_connection_info();
    let (scheme, host) = match info.addr() {
        ConnectionAddr::Tcp(h, p) => ("redis", format!("{h}:{p}")),
        ConnectionAddr::TcpTls { host, port, .. } => ("rediss", format!("{host}:{port}")),
        ConnectionAddr::Unix(path) => ("redis+unix", path.display().to_string()),
        other => ("redis", other.to_string()),
    };
    let redis = info.redis_settings();
    let creds = match (redis.username(), redis.password()) {
        (None, None) => "",
        _ => "***@",
    };
    format!("{scheme}://{creds}{host}/{}", redis.db())
}

/// A client for `url` whose connections send small writes at once (`TCP_NODELAY`, as redis-py
/// sets it): a plan's acknowledgement or result must not wait for Nagle's timer.
pub fn client_nodelay(url: &str) -> redis::RedisResult<Client> {
    let info = url.into_connection_info()?;
    let tcp = info.tcp_settings().clone().set_nodelay(true);
    Client::open(info.set_tcp_settings(tcp))
}

/// The bridge's Redis: a client and its shared multiplexed connection.
pub struct Redis {
    client: Client,
    conn: Option<MultiplexedConnection>,
    shown: String,
    stats: Arc<Stats>,
    backoff: Backoff,
    /// A loss was logged and nothing succeeded since.
    down: bool,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").field("url", &self.shown).finish()
    }
}

impl Redis {
    /// A client for `url` (`redis://`, `rediss://`; user and password may be in it). Nothing
    /// is connected yet.
    pub fn new(url: &str, stats: Arc<Stats>) -> Result<Redis> {
        let client = client_nodelay(url)
            .map_err(|e| Error::Config(format!("--redis: not a Redis URL ({e})")))?;
        Ok(Redis {
            shown: shown_url(&client),
            client,
            conn: None,
            stats,
            backoff: Backoff::default(),
            down: false,
        })
    }

    /// The URL without credentials.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The client, for dedicated connections.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The database number of the URL (for keyspace notification channels).
    pub fn db(&self) -> i64 {
        self.client.get_connection_info().redis_settings().db()
    }

    /// The shared connection, made if there is none.
    pub async fn conn(&mut self) -> Result<MultiplexedConnection> {
        if let Some(c) = &self.conn {
            return Ok(c.clone());
        }
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        match self
            .client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
        {
            Ok(c) => {
                Stats::inc(&self.stats.redis_connects);
                tracing::info!(redis = %self.shown, "Redis connected");
                self.conn = Some(c.clone());
                Ok(c)
            }
            Err(e) => {
                let e = Error::from(e);
                self.failed(&e);
                Err(e)
            }
        }
    }

    /// A connection of its own, for a command that blocks up to `block`.
    pub async fn dedicated(client: &Client, block: Duration) -> Result<MultiplexedConnection> {
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(block + RESPONSE_TIMEOUT));
        Ok(client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await?)
    }

    /// A command succeeded: the back-off starts over, and a loss is over.
    pub fn ok(&mut self) {
        self.backoff.reset();
        if self.down {
            self.down = false;
            tracing::info!(redis = %self.shown, "Redis reachable again");
        }
    }

    /// A command failed: counted; a lost connection is dropped (made again on next use) and
    /// logged once per loss.
    pub fn failed(&mut self, e: &Error) {
        Stats::inc(&self.stats.redis_errors);
        if e.is_connection() {
            self.conn = None;
            if !self.down {
                self.down = true;
                tracing::warn!(redis = %self.shown, error = %e, "Redis lost; retrying with back-off");
            }
        } else {
            tracing::warn!(redis = %self.shown, error = %e, "Redis command failed; retrying with back-off");
        }
    }

    /// Waits the back-off step before the next retry.
    pub async fn backoff(&mut self) {
        self.backoff.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_credentials() {
        let c = Client::open("redis://user:s3cret@10.0.0.5:6380/2").unwrap();
        assert_eq!(shown_url(&c), "redis://***@10.0.0.5:6380/2");
        let c = Client::open("redis://127.0.0.1:6379").unwrap();
        assert_eq!(shown_url(&c), "redis://127.0.0.1:6379/0");
        let c = Client::open("rediss://:pw@cache.example:6380").unwrap();
        assert!(shown_url(&c).starts_with("rediss://***@cache.example:6380"));
        assert!(Redis::new("http://x", Arc::default()).is_err());
    }
}
