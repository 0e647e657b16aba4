//! Test and benchmark support (feature `test-support`): a real `redis-server` on a free
//! loopback port in a temporary directory, stopped when dropped.
//!
//! A machine without `redis-server` fails the test that asks for one, with a message saying how
//! to install it; it never skips. `.ci/run` installs it. Benchmarks use [`RedisServer::launch`],
//! which returns the error instead.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child process.
pub struct RedisServer {
    exe: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    persistent: bool,
    extra: Vec<String>,
}

/// How the binary is found: `REDIS_SERVER` or `redis-server` on the `PATH`.
pub fn binary() -> PathBuf {
    std::env::var_os("REDIS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("redis-server"))
}

fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    l.local_addr().expect("local addr").port()
}

impl RedisServer {
    /// Starts a server that keeps nothing on disk.
    pub fn start() -> RedisServer {
        Self::start_with(false, &[])
    }

    /// Starts a server that keeps nothing on disk, with more `redis-server` arguments (e.g.
    /// `["--rename-command", "CONFIG", ""]`).
    pub fn start_with_args(args: &[&str]) -> RedisServer {
        Self::start_with(false, args)
    }

    /// Starts a server with an append-only file synced on every write, so a `kill -9` and
    /// [`RedisServer::restart`] lose nothing it acknowledged.
    pub fn start_persistent() -> RedisServer {
        Self::start_with(true, &[])
    }

    fn start_with(persistent: bool, extra: &[&str]) -> RedisServer {
        Self::launch(&binary(), persistent, extra).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts `exe` (persistent: see [`RedisServer::start_persistent`]; `extra`: more
    /// arguments) and waits until it answers; the error says what failed, in one sentence.
    pub fn launch(exe: &Path, persistent: bool, extra: &[&str]) -> Result<RedisServer, String> {
        let dir = tempfile::Builder::new()
            .prefix("qpc-redis-")
            .tempdir()
            .map_err(|e| format!("cannot make a directory for redis-server: {e}"))?;
        let mut s = RedisServer {
            exe: exe.to_path_buf(),
            port: free_port(),
            dir,
            child: None,
            persistent,
            extra: extra.iter().map(|a| a.to_string()).collect(),
        };
        s.spawn()?;
        Ok(s)
    }

    /// `<exe> --version`'s first three words (e.g. `Redis server v=7.0.15`).
    pub fn version_of(exe: &Path) -> Result<String, String> {
        let out = Command::new(exe)
            .arg("--version")
            .output()
            .map_err(|e| not_found(exe, &e))?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "))
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--save")
            .arg("")
            .arg("--daemonize")
            .arg("no")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if self.persistent {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        cmd.args(&self.extra);
        let child = cmd.spawn().map_err(|e| not_found(&self.exe, &e))?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(c) = &mut self.child {
                if let Ok(Some(st)) = c.try_wait() {
                    return Err(format!(
                        "redis-server on port {} exited at start: {st}",
                        self.port
                    ));
                }
            }
            if let Ok(mut c) = self.client().get_connection() {
                match redis::cmd("PING").query::<String>(&mut c) {
                    Ok(_) => return Ok(()),
                    // Up, and asking for the password the test gave it.
                    Err(e) if e.code() == Some("NOAUTH") => return Ok(()),
                    Err(_) => {}
                }
            }
            if Instant::now() >= end {
                return Err(format!(
                    "redis-server on port {} did not answer PING within 20 s",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client of it (`TCP_NODELAY`, as the bridge's and redis-py's connections).
    pub fn client(&self) -> redis::Client {
        crate::conn::client_nodelay(&self.url()).expect("a redis URL")
    }

    /// A connection to it (panics when it is down).
    pub fn conn(&self) -> redis::Connection {
        self.client()
            .get_connection()
            .expect("connect to redis-server")
    }

    /// A connection to its database `db`.
    pub fn conn_db(&self, db: u8) -> redis::RedisResult<redis::Connection> {
        crate::conn::client_nodelay(&format!("redis://127.0.0.1:{}/{db}", self.port))?
            .get_connection()
    }

    /// Its pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills it with SIGKILL (no shutdown, no save) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and directory (what it persisted comes back).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn().unwrap_or_else(|e| panic!("{e}"));
    }
}

fn not_found(exe: &Path, e: &std::io::Error) -> String {
    format!(
        "cannot run {} ({e}): a real redis-server is needed; install it with `apt-get update && apt-get install -y redis-server` (or set REDIS_SERVER, or pass --redis-server PATH to a benchmark)",
        exe.display()
    )
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
