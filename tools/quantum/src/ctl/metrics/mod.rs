//! `ctl metrics`: a Prometheus endpoint for one instance, read from its counters segment and
//! ring headers in shared memory; the daemon is never asked anything and never waits for it.
//!
//! `GET /metrics` answers the text exposition ([`text`]) with fresh totals and
//! the rates of the last sampling interval; `GET /healthz` answers 200 `ok` while the daemon
//! runs and 503 otherwise (for a load balancer or a systemd watchdog script); anything else is
//! refused with its status and counted. A daemon that restarts is followed: the new counters
//! segment is attached when it appears (rates restart with it).

pub(super) mod model;
mod text;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use model::{rates, Sample, Source};
use text::{render, ExporterCounts, CONTENT_TYPE};

/// Options of `ctl metrics`.
#[derive(Args, Debug)]
#[command(
    after_help = "The bound address is printed on stdout (\"listening on http://ADDR/metrics\"); port 0 picks a free one.\n\nExamples:\n  quantum ctl metrics --instance prod1 --listen 127.0.0.1:9464\n  curl -s http://127.0.0.1:9464/metrics | grep quantum_deny_total\n  quantum ctl metrics --instance prod1 --once > /var/lib/node_exporter/quantum.prom"
)]
pub struct MetricsArgs {
    /// Instance name.
    #[arg(long)]
    pub instance: String,
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub listen: String,
    /// Print one exposition (rates over one interval) on stdout and exit.
    #[arg(long)]
    pub once: bool,
    /// Interval between the samples rates are computed from (ms).
    #[arg(long, default_value_t = 1000)]
    pub rate_interval_ms: u64,
    /// A peer whose heartbeat is older than this is not alive (ms).
    #[arg(long, default_value_t = 3000)]
    pub peer_timeout_ms: u64,
}

/// Connections served at once; more are answered 503 at once.
const MAX_CONNECTIONS: usize = 16;
/// Longest wait for a client's request or for it to take the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest request head read.
const MAX_HEAD: usize = 8 * 1024;

struct State {
    source: Source,
    /// The sampler's last two samples: rates come from them.
    prev: Option<Sample>,
    last: Option<Sample>,
    counts: ExporterCounts,
}

/// Runs `ctl metrics`.
pub fn run(a: MetricsArgs) -> Result<()> {
    let interval = Duration::from_millis(a.rate_interval_ms.max(10));
    let mut source = Source::new(&a.instance, a.peer_timeout_ms, true);
    if a.once {
        let first = source.sample();
        std::thread::sleep(interval);
        let cur = source.sample();
        let text = render(
            &a.instance,
            &cur,
            &rates(&first, &cur),
            ExporterCounts::default(),
        );
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        return Ok(out.flush()?);
    }
    let listener =
        TcpListener::bind(&a.listen).with_context(|| format!("cannot listen on {}", a.listen))?;
    let addr = listener.local_addr()?;
    let first = source.sample();
    if first.owner.is_none() {
        tracing::warn!(instance = %a.instance, "no counters segment yet: serving quantum_up 0 until the daemon starts");
    }
    let state = Arc::new(Mutex::new(State {
        source,
        prev: None,
        last: Some(first),
        counts: ExporterCounts::default(),
    }));
    {
        let state = state.clone();
        std::thread::Builder::new()
            .name("sampler".into())
            .spawn(move || loop {
                std::thread::sleep(interval);
                let mut s = lock(&state);
                let cur = s.source.sample();
                s.prev = s.last.replace(cur);
            })?;
    }
    println!("listening on http://{addr}/metrics");
    std::io::stdout().flush()?;
    tracing::info!(instance = %a.instance, %addr, "serving metrics");
    let busy = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        if busy.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            busy.fetch_sub(1, Ordering::AcqRel);
            let _ = respond(&stream, 503, "text/plain", b"busy\n", false);
            continue;
        }
        let (state, busy, instance) = (state.clone(), busy.clone(), a.instance.clone());
        std::thread::spawn(move || {
            if let Err(e) = serve(&stream, &state, &instance) {
                // A client that hangs up or stalls is its own problem, not the exporter's.
                tracing::debug!(error = %e, "metrics connection ended");
            }
            busy.fetch_sub(1, Ordering::AcqRel);
        });
    }
    Ok(())
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads one request and answers it.
fn serve(stream: &TcpStream, state: &Mutex<State>, instance: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    let mut head = 0usize;
    let mut line = String::new();
    // The request line, then headers up to the blank line (bounded).
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        head += n;
        if n == 0 || head > MAX_HEAD {
            break;
        }
        if request_line.is_empty() {
            request_line = line.trim_end().to_string();
        } else if line.trim_end().is_empty() {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let bad = |s: &Mutex<State>| lock(s).counts.bad_requests += 1;
    let (Some(method), Some(target), Some(version)) = (method, target, version) else {
        bad(state);
        return respond(stream, 400, "text/plain", b"bad request\n", true);
    };
    if !version.starts_with("HTTP/1.") {
        bad(state);
        return respond(stream, 400, "text/plain", b"bad request\n", true);
    }
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        bad(state);
        return respond(stream, 405, "text/plain", b"only GET\n", head_only);
    }
    let path = target.split('?').next().unwrap_or("");
    match path {
        "/metrics" => {
            let text = {
                let mut s = lock(state);
                s.counts.scrapes += 1;
                let cur = s.source.sample();
                let r = match (&s.prev, &s.last) {
                    (Some(p), Some(l)) => rates(p, l),
                    _ => Default::default(),
                };
                render(instance, &cur, &r, s.counts)
            };
            respond(stream, 200, CONTENT_TYPE, text.as_bytes(), head_only)
        }
        "/healthz" => {
            let up = {
                let mut s = lock(state);
                s.source.sample().owner.is_some_and(|o| o.alive)
            };
            if up {
                respond(stream, 200, "text/plain", b"ok\n", head_only)
            } else {
                respond(
                    stream,
                    503,
                    "text/plain",
                    b"daemon not running\n",
                    head_only,
                )
            }
        }
        "/" => respond(
            stream,
            200,
            "text/plain",
            b"quantum ctl metrics: /metrics (Prometheus text format), /healthz\n",
            head_only,
        ),
        _ => {
            bad(state);
            respond(stream, 404, "text/plain", b"not found\n", head_only)
        }
    }
}

fn respond(
    mut stream: &TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    stream.write_all(out.as_bytes())?;
    if !head_only {
        stream.write_all(body)?;
    }
    stream.flush()
}
