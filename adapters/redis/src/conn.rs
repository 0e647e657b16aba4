//! Connections to Redis: the URL (never logged with its credentials), a multiplexed
//! connection that is dropped when it fails and made again with back-off, and the log lines
//! an operator looks for ("Redis connected", "Redis lost").
//!
//! Commands that block (XREADGROUP BLOCK) and the keyspace subscription get connections of
//! their own ([`Redis::dedicated`], [`redis::Client::get_async_pubsub`]), so they never hold
//! up the writes. Every connection is made through a [`Target`]: one Redis (`redis://`,
//! `rediss://`), or the master its sentinels name at that moment (`redis+sentinel://`).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::io::tcp::TcpSettings;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
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

/// The URL shapes `--redis` takes, for error messages.
pub const URL_SHAPES: &str = "redis://[user:password@]host:port/db, \
rediss://[user:password@]host:port/db[#insecure] (TLS) or \
redis+sentinel://[user:password@]host:port[,host:port…]/<master name>[/db]";

/// The scheme of a Sentinel URL.
pub const SENTINEL_SCHEME: &str = "redis+sentinel://";

/// The port of a sentinel given without one.
pub const SENTINEL_PORT: u16 = 26379;

/// How long asking the sentinels for the master (and checking it) may take in all.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the sentinels are asked for the master while a Sentinel target is in use, so
/// connections made to a master that is one no more are dropped soon after a failover
/// ([`Target::moved`]) rather than when Sentinel demotes it (seconds later, if it lives).
pub const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// A parsed `redis+sentinel://[user:password@]host:port[,host:port…]/<master>[/db][?…]` URL.
///
/// The user and password before `@` are the master's (and its replicas'). Sentinels that
/// require a password of their own take the query parameters `sentinel_user` and
/// `sentinel_password`. The database number defaults to 0. Parts may be percent-encoded.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelUrl {
    /// The sentinels, asked in this order.
    pub nodes: Vec<(String, u16)>,
    /// The name the sentinels monitor the master under.
    pub master: String,
    /// The database number on the master.
    pub db: i64,
    /// The master's user.
    pub user: Option<String>,
    /// The master's password.
    pub password: Option<String>,
    /// The sentinels' user.
    pub sentinel_user: Option<String>,
    /// The sentinels' password.
    pub sentinel_password: Option<String>,
}

impl std::fmt::Debug for SentinelUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

/// Decodes `%XX` escapes.
fn percent_decode(s: &str, what: &str) -> std::result::Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("{what}: a `%` not followed by two hex digits"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{what}: not UTF-8 once decoded"))
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn parse_node(s: &str) -> std::result::Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("sentinel `{s}`: `[` without `]`"))?;
        match after {
            "" => (h, None),
            p => (
                h,
                Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("sentinel `{s}`: expected `:port` after `]`"))?,
                ),
            ),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err(format!("sentinel `{s}`: no host"));
    }
    let port = match port {
        None => SENTINEL_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("sentinel `{s}`: `{p}` is not a port"))?,
    };
    Ok((host.to_owned(), port))
}

impl SentinelUrl {
    /// Parses a `redis+sentinel://` URL; the error says what is wrong (never the password).
    pub fn parse(url: &str) -> std::result::Result<SentinelUrl, String> {
        let rest = url
            .get(..SENTINEL_SCHEME.len())
            .filter(|s| s.eq_ignore_ascii_case(SENTINEL_SCHEME))
            .map(|_| &url[SENTINEL_SCHEME.len()..])
            .ok_or_else(|| format!("a Sentinel URL starts with {SENTINEL_SCHEME}"))?;
        if rest.contains('#') {
            return Err(
                "a Sentinel URL has no `#` part (TLS through Sentinel is not supported)".into(),
            );
        }
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.split_once('/') {
            Some((a, p)) => (a, p),
            None => (rest, ""),
        };
        let (creds, hosts) = match authority.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, authority),
        };
        let (user, password) = match creds {
            None => (None, None),
            Some(c) => {
                let (u, p) = match c.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (c, None),
                };
                let user = (!u.is_empty())
                    .then(|| percent_decode(u, "user"))
                    .transpose()?;
                let password = p.map(|p| percent_decode(p, "password")).transpose()?;
                (user, password)
            }
        };
        if hosts.is_empty() {
            return Err("no sentinel: expected host:port[,host:port…] after the scheme".into());
        }
        let nodes = hosts
            .split(',')
            .map(parse_node)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut parts = path.split('/');
        let master = percent_decode(parts.next().unwrap_or_default(), "master name")?;
        if master.is_empty() {
            return Err("no master name: expected /<master name> after the sentinels".into());
        }
        let db = match parts.next() {
            None | Some("") => 0,
            Some(d) => d
                .parse::<i64>()
                .ok()
                .filter(|d| *d >= 0)
                .ok_or_else(|| format!("`{d}` is not a database number"))?,
        };
        if let Some(extra) = parts.find(|p| !p.is_empty()) {
            return Err(format!("`/{extra}`: nothing follows /<master name>/<db>"));
        }
        let mut sentinel_user = None;
        let mut sentinel_password = None;
        for pair in query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "sentinel_user" => sentinel_user = Some(percent_decode(v, k)?),
                "sentinel_password" => sentinel_password = Some(percent_decode(v, k)?),
                _ => {
                    return Err(format!(
                        "unknown parameter `{k}` (known: sentinel_user, sentinel_password)"
                    ))
                }
            }
        }
        Ok(SentinelUrl {
            nodes,
            master,
            db,
            user,
            password,
            sentinel_user,
            sentinel_password,
        })
    }

    /// `redis+sentinel://[***@]host:port,…/<master>/<db>`: the URL without any credentials.
    pub fn shown(&self) -> String {
        let creds = if self.user.is_some() || self.password.is_some() {
            "***@"
        } else {
            ""
        };
        let nodes = self
            .nodes
            .iter()
            .map(|(h, p)| {
                if h.contains(':') {
                    format!("[{h}]:{p}")
                } else {
                    format!("{h}:{p}")
                }
            })
            .collect::<Vec<_>>()
            .join(",");
        format!(
            "{SENTINEL_SCHEME}{creds}{nodes}/{}/{}",
            self.master, self.db
        )
    }

    fn client(&self) -> redis::RedisResult<SentinelClient> {
        let nodes = self
            .nodes
            .iter()
            .map(|(h, p)| ConnectionAddr::Tcp(h.clone(), *p));
        let mut b = SentinelClientBuilder::new(nodes, &self.master, SentinelServerType::Master)?
            .set_client_to_redis_db(self.db)
            .set_client_to_redis_tcp_settings(TcpSettings::default().set_nodelay(true));
        if let Some(u) = &self.user {
            b = b.set_client_to_redis_username(u);
        }
        if let Some(p) = &self.password {
            b = b.set_client_to_redis_password(p);
        }
        if let Some(u) = &self.sentinel_user {
            b = b.set_client_to_sentinel_username(u);
        }
        if let Some(p) = &self.sentinel_password {
            b = b.set_client_to_sentinel_password(p);
        }
        b.build()
    }
}

/// The master a set of sentinels names, asked at every connection.
pub struct Sentinel {
    url: SentinelUrl,
    /// The library's client keeps one connection per sentinel; lookups take turns.
    client: tokio::sync::Mutex<SentinelClient>,
    /// The master's address found last: logged when it changes, compared by
    /// [`Target::moved`].
    master_seen: std::sync::Mutex<Option<String>>,
    /// The task that asks the sentinels every [`FOLLOW_EVERY`] runs (started at the first
    /// connection, when a runtime is there; ends when the last [`Target`] is dropped).
    following: std::sync::atomic::AtomicBool,
}

impl Sentinel {
    fn seen(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.master_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Asks the sentinels every [`FOLLOW_EVERY`] while a [`Target`] of this one lives.
    fn follow(this: &Arc<Sentinel>) {
        // Relaxed: only one caller may win the swap; it orders nothing else.
        if this
            .following
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        let weak = Arc::downgrade(this);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(FOLLOW_EVERY).await;
                let Some(s) = weak.upgrade() else { return };
                // A failed lookup changes nothing: connections stay where they are.
                let _ = Target::Sentinel(s).lookup().await;
            }
        });
    }
}

/// The address a connection was made to, for [`Target::moved`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Made(String);

/// Where the bridge's connections go: one Redis server, or the current master of a set the
/// sentinels monitor. Every connection the bridge makes (the shared one, the stream reader's,
/// the lease task's, the keyspace subscription) is made through [`Target::client`], so after a
/// Redis failover the next (re)connection reaches the new master.
#[derive(Clone)]
pub enum Target {
    /// `redis://`, `rediss://`.
    Direct(Arc<Client>),
    /// `redis+sentinel://`.
    Sentinel(Arc<Sentinel>),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

impl From<Client> for Target {
    fn from(c: Client) -> Target {
        Target::Direct(Arc::new(c))
    }
}

impl Target {
    /// Parses `url` (see [`URL_SHAPES`]); connects nothing. The error says what is wrong and
    /// never repeats the URL (it may hold a password).
    pub fn parse(url: &str) -> std::result::Result<Target, String> {
        let lower = url.to_ascii_lowercase();
        if lower.starts_with(SENTINEL_SCHEME) {
            let parsed = SentinelUrl::parse(url)?;
            let client = parsed.client().map_err(|e| e.to_string())?;
            return Ok(Target::Sentinel(Arc::new(Sentinel {
                url: parsed,
                client: tokio::sync::Mutex::new(client),
                master_seen: std::sync::Mutex::new(None),
                following: std::sync::atomic::AtomicBool::new(false),
            })));
        }
        if lower.contains("+sentinel://") {
            return Err(format!(
                "TLS through Sentinel is not supported; use {SENTINEL_SCHEME}…"
            ));
        }
        let client = client_nodelay(url).map_err(|e| e.to_string())?;
        if matches!(
            client.get_connection_info().addr(),
            ConnectionAddr::TcpTls { .. }
        ) {
            // rustls needs a process-wide crypto provider; the first one installed stays (an
            // error here means one is there already).
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        Ok(Target::Direct(Arc::new(client)))
    }

    /// The URL without credentials (for logs).
    pub fn shown(&self) -> String {
        match self {
            Target::Direct(c) => shown_url(c),
            Target::Sentinel(s) => s.url.shown(),
        }
    }

    /// The database number (for keyspace notification channels).
    pub fn db(&self) -> i64 {
        match self {
            Target::Direct(c) => c.get_connection_info().redis_settings().db(),
            Target::Sentinel(s) => s.url.db,
        }
    }

    /// A client for the Redis to use now: the URL's, or the master the sentinels name now
    /// (checked with `ROLE` by the library before it is returned). From then on the sentinels
    /// are asked every [`FOLLOW_EVERY`] (see [`Target::moved`]).
    pub async fn client(&self) -> redis::RedisResult<Client> {
        if let Target::Sentinel(s) = self {
            Sentinel::follow(s);
        }
        self.lookup().await
    }

    async fn lookup(&self) -> redis::RedisResult<Client> {
        let s = match self {
            Target::Direct(c) => return Ok(Client::clone(c)),
            Target::Sentinel(s) => s,
        };
        let found = {
            let mut sc = s.client.lock().await;
            tokio::time::timeout(LOOKUP_TIMEOUT, sc.async_get_client()).await
        };
        let client = match found {
            Ok(r) => r?,
            Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "asking the sentinels for the master timed out",
                )
                .into())
            }
        };
        let addr = client.get_connection_info().addr().to_string();
        let mut seen = s.seen();
        if seen.as_deref() != Some(addr.as_str()) {
            tracing::info!(redis = %s.url.shown(), master = %addr, "Redis Sentinel names the master");
            *seen = Some(addr);
        }
        Ok(client)
    }

    /// A multiplexed connection to the Redis to use now, and where it goes.
    pub async fn connect(
        &self,
        cfg: &AsyncConnectionConfig,
    ) -> redis::RedisResult<(MultiplexedConnection, Made)> {
        let client = self.client().await?;
        let made = Made(client.get_connection_info().addr().to_string());
        let c = client
            .get_multiplexed_async_connection_with_config(cfg)
            .await?;
        Ok((c, made))
    }

    /// Whether the sentinels named another master than the one a connection was `made` to
    /// since: the holder drops it and connects again. Always false for a direct URL.
    pub fn moved(&self, made: &Made) -> bool {
        match self {
            Target::Direct(_) => false,
            Target::Sentinel(s) => s.seen().as_ref().is_some_and(|m| *m != made.0),
        }
    }
}

/// The bridge's Redis: where to connect and its shared multiplexed connection.
pub struct Redis {
    target: Target,
    conn: Option<(MultiplexedConnection, Made)>,
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
    /// The Redis of `url` ([`URL_SHAPES`]; user and password may be in it). Nothing is
    /// connected yet.
    pub fn new(url: &str, stats: Arc<Stats>) -> Result<Redis> {
        let target = Target::parse(url).map_err(|e| {
            Error::Config(format!(
                "--redis: not a Redis URL ({e}); expected {URL_SHAPES}"
            ))
        })?;
        Ok(Redis {
            shown: target.shown(),
            target,
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

    /// Where to connect, for dedicated connections.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The database number of the URL (for keyspace notification channels).
    pub fn db(&self) -> i64 {
        self.target.db()
    }

    /// The shared connection, made if there is none.
    pub async fn conn(&mut self) -> Result<MultiplexedConnection> {
        if let Some((c, made)) = &self.conn {
            if !self.target.moved(made) {
                return Ok(c.clone());
            }
            tracing::info!(redis = %self.shown, "the sentinels name another master: connecting to it");
            self.conn = None;
        }
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        match self.target.connect(&cfg).await {
            Ok((c, made)) => {
                Stats::inc(&self.stats.redis_connects);
                tracing::info!(redis = %self.shown, "Redis connected");
                self.conn = Some((c.clone(), made));
                Ok(c)
            }
            Err(e) => {
                let e = Error::from(e);
                self.failed(&e);
                Err(e)
            }
        }
    }

    /// A connection of its own, for a command that blocks up to `block`, and where it goes
    /// ([`Target::moved`]).
    pub async fn dedicated(
        target: &Target,
        block: Duration,
    ) -> Result<(MultiplexedConnection, Made)> {
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(block + RESPONSE_TIMEOUT));
        Ok(target.connect(&cfg).await?)
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

    fn err(url: &str) -> String {
        match Redis::new(url, Arc::default()) {
            Err(Error::Config(e)) => e,
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn tls_urls() {
        let t = Target::parse("rediss://u:pw@cache.example:6380/1").unwrap();
        assert_eq!(t.shown(), "rediss://***@cache.example:6380/1");
        assert_eq!(t.db(), 1);
        let Target::Direct(c) = &t else {
            panic!("direct")
        };
        assert!(matches!(
            c.get_connection_info().addr(),
            ConnectionAddr::TcpTls {
                insecure: false,
                ..
            }
        ));
        let t = Target::parse("rediss://cache.example:6380/0#insecure").unwrap();
        let Target::Direct(c) = &t else {
            panic!("direct")
        };
        assert!(matches!(
            c.get_connection_info().addr(),
            ConnectionAddr::TcpTls { insecure: true, .. }
        ));
        let e = err("rediss://:pw@cache.example:6380/0#whatever");
        assert!(e.contains("#insecure"), "{e}");
        assert!(!e.contains("pw"), "{e}");
        let e = err("rediss://cache.example:6380/x");
        assert!(e.contains("database"), "{e}");
        assert!(
            e.contains("redis+sentinel://"),
            "the shapes are listed: {e}"
        );
    }

    #[test]
    fn sentinel_urls_parse() {
        let u = SentinelUrl::parse("redis+sentinel://10.0.0.1:26380,sen2,[::1]:26381/mymaster/3")
            .unwrap();
        assert_eq!(
            u.nodes,
            vec![
                ("10.0.0.1".to_owned(), 26380),
                ("sen2".to_owned(), SENTINEL_PORT),
                ("::1".to_owned(), 26381),
            ]
        );
        assert_eq!((u.master.as_str(), u.db), ("mymaster", 3));
        assert_eq!((u.user.as_deref(), u.password.as_deref()), (None, None));
        assert_eq!(
            u.shown(),
            "redis+sentinel://10.0.0.1:26380,sen2:26379,[::1]:26381/mymaster/3"
        );

        let u = SentinelUrl::parse(
            "redis+sentinel://bridge:p%40ss@h1:26379/my%20master?sentinel_password=s3cret",
        )
        .unwrap();
        assert_eq!(u.user.as_deref(), Some("bridge"));
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        assert_eq!(u.master, "my master");
        assert_eq!(u.db, 0);
        assert_eq!(u.sentinel_password.as_deref(), Some("s3cret"));
        assert_eq!(u.sentinel_user, None);
        assert_eq!(u.shown(), "redis+sentinel://***@h1:26379/my master/0");
        assert!(!format!("{u:?}").contains("s3cret"));

        let u = SentinelUrl::parse("redis+sentinel://:pw@h1/m/").unwrap();
        assert_eq!((u.user, u.password.as_deref(), u.db), (None, Some("pw"), 0));

        let t = Target::parse("redis+sentinel://:pw@h1:26379,h2:26379/m/2").unwrap();
        assert_eq!(t.shown(), "redis+sentinel://***@h1:26379,h2:26379/m/2");
        assert_eq!(t.db(), 2);
        assert_eq!(format!("{t:?}"), t.shown());
    }

    #[test]
    fn bad_sentinel_urls_are_explained() {
        for (url, why) in [
            ("redis+sentinel://", "no sentinel"),
            ("redis+sentinel:///m", "no sentinel"),
            ("redis+sentinel://h1:26379", "no master name"),
            ("redis+sentinel://h1:26379/", "no master name"),
            ("redis+sentinel://h1:x/m", "`x` is not a port"),
            ("redis+sentinel://h1:0/m", "`0` is not a port"),
            ("redis+sentinel://h1,:26379/m", "no host"),
            ("redis+sentinel://[::1/m", "without `]`"),
            ("redis+sentinel://h1/m/x", "`x` is not a database number"),
            ("redis+sentinel://h1/m/-1", "not a database number"),
            ("redis+sentinel://h1/m/0/extra", "`/extra`"),
            ("redis+sentinel://h1/m?db=2", "unknown parameter `db`"),
            ("redis+sentinel://h1/m#insecure", "TLS through Sentinel"),
            ("rediss+sentinel://h1/m", "TLS through Sentinel"),
            ("redis+sentinel://:p%4@h1/m", "password: a `%`"),
        ] {
            let e = err(url);
            assert!(e.contains(why), "{url}: {e}");
            assert!(e.starts_with("--redis: not a Redis URL"), "{url}: {e}");
        }
        // The password is never repeated in an error.
        let e = err("redis+sentinel://:hunter2@h1:26379/m/zz");
        assert!(!e.contains("hunter2"), "{e}");
    }
}
