//! A bare HTTP/1.1 server on a loopback address, for answers the simulator never gives (a
//! gateway's page, a redirect): every connection is counted, every request answered by a
//! closure of its method and target (path and query), then the connection is closed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One canned answer; status 0 closes the connection without one.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Answer {
    pub fn new(status: u16, body: impl Into<String>) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }
}

type Responder = dyn Fn(&str, &str) -> Answer + Send + Sync;

pub struct Stub {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Stub {
    /// Listens on `ip`, port 0.
    pub async fn start(
        ip: &str,
        answer: impl Fn(&str, &str) -> Answer + Send + Sync + 'static,
    ) -> Stub {
        let listener = TcpListener::bind((ip, 0)).await.expect("stub binds");
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let answer: Arc<Responder> = Arc::new(answer);
        let counted = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                // Relaxed: a plain counter read after the requests under test have ended.
                counted.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve(s, answer.clone()));
            }
        });
        Stub {
            addr,
            connections,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        // Relaxed: see `start`.
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut s: TcpStream, answer: Arc<Responder>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let mut first = head.lines().next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_owned();
    let target = first.next().unwrap_or("").to_owned();
    let a = answer(&method, &target);
    if a.status == 0 {
        // Status 0: the connection is closed after the request was read, without an answer.
        return;
    }
    let mut out = format!(
        "HTTP/1.1 {} Stub\r\nContent-Length: {}\r\nConnection: close\r\n",
        a.status,
        a.body.len()
    );
    for (k, v) in &a.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&a.body);
    let _ = s.write_all(out.as_bytes()).await;
    let _ = s.shutdown().await;
}
