//! A few blocking HTTP/1.1 requests to the simulator's `/sim/*` control API (plain TCP on
//! loopback; one connection per request).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

/// `METHOD base+path` with an optional JSON body; the JSON answer.
pub fn request(method: &str, base: &str, path: &str, body: Option<&Value>) -> Result<Value> {
    let host = base
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("{base} is not an http:// URL"))?
        .trim_end_matches('/');
    let mut s = TcpStream::connect(host).with_context(|| format!("cannot connect to {host}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("{method} {path}: no HTTP header in the answer"))?;
    let status = head.split_whitespace().nth(1).unwrap_or("?");
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let payload = if chunked {
        dechunk(rest)?
    } else {
        rest.to_string()
    };
    if !status.starts_with('2') {
        bail!("{method} {path}: HTTP {status}: {payload}");
    }
    serde_json::from_str(&payload).with_context(|| format!("{method} {path}: not JSON: {payload}"))
}

fn dechunk(mut rest: &str) -> Result<String> {
    let mut out = String::new();
    loop {
        let (size, after) = rest
            .split_once("\r\n")
            .ok_or_else(|| anyhow!("bad chunked body"))?;
        let n = usize::from_str_radix(size.trim(), 16)?;
        if n == 0 {
            return Ok(out);
        }
        out.push_str(after.get(..n).ok_or_else(|| anyhow!("short chunk"))?);
        rest = after.get(n + 2..).unwrap_or("");
    }
}

/// `GET base+path`.
pub fn get(base: &str, path: &str) -> Result<Value> {
    request("GET", base, path, None)
}

/// `POST base+path` with `body`.
pub fn post(base: &str, path: &str, body: &Value) -> Result<Value> {
    request("POST", base, path, Some(body))
}
