//! A real redis-server on a loopback port for the `legacy` rows, stopped on drop.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::ring::ChildGuard;

/// A redis-server started for this run.
pub struct RedisServer {
    _child: ChildGuard,
    /// Its loopback port.
    pub port: u16,
    /// `redis-server --version`'s first words.
    pub version: String,
}

impl RedisServer {
    /// Starts `exe` on a free loopback port, without persistence (no snapshot fork can land
    /// in the middle of a block), and waits until it answers PING.
    pub fn start(exe: &Path) -> Result<RedisServer> {
        let version = Command::new(exe)
            .arg("--version")
            .output()
            .with_context(|| {
                format!(
                    "cannot run {} (install it: apt-get install redis-server, or pass --redis-server PATH)",
                    exe.display()
                )
            })?;
        let version = String::from_utf8_lossy(&version.stdout)
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(exe)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let server = RedisServer {
            _child: ChildGuard(Some(child)),
            port,
            version,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = server.connect(0) {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return Ok(server);
                }
            }
            if Instant::now() > deadline {
                bail!("redis-server on port {port} did not answer within 10 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A new connection to database `db` (one per legacy service, as deployed; each row its
    /// own database, so their streams and keys never meet).
    pub fn connect(&self, db: u8) -> Result<redis::Connection> {
        Ok(
            redis::Client::open(format!("redis://127.0.0.1:{}/{db}", self.port))?
                .get_connection()?,
        )
    }
}
