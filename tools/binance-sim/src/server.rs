//! The HTTP/WebSocket server: its own accept loop (so a fault can close one connection
//! without answering), the shared state, and [`SimHandle`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tower::ServiceExt;

use crate::clock::Clock;
use crate::config::{ApiKey, Faults, SimConfig};
use crate::decimal::Dec;
use crate::exchange::{
    AuditEntry, Exchange, ExchangeOrderKind, PosSide, PositionView, StatusChange,
};
use crate::limits::RateLimiter;
use crate::symbols::ContractStatus;

/// State shared by every connection.
#[derive(Debug)]
pub struct Shared {
    /// The account.
    pub ex: Mutex<Exchange>,
    /// Weight and order counters.
    pub limiter: Mutex<RateLimiter>,
    /// Faults in force.
    pub faults: Mutex<Faults>,
    /// Server time.
    pub clock: Clock,
    /// Accepted keys.
    pub keys: Vec<ApiKey>,
    /// Largest accepted recvWindow.
    pub max_recv_window_ms: i64,
    /// Server ping interval on WebSockets.
    pub ws_ping_interval: Duration,
    /// Becomes true at shutdown.
    pub stop: watch::Receiver<bool>,
    /// Successful WebSocket API `session.logon`s.
    pub logons: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// The account, locked. Never held across an await.
    pub fn ex(&self) -> MutexGuard<'_, Exchange> {
        lock(&self.ex)
    }

    /// The limiter, locked.
    pub fn limiter(&self) -> MutexGuard<'_, RateLimiter> {
        lock(&self.limiter)
    }

    /// A copy of the faults in force.
    pub fn faults(&self) -> Faults {
        lock(&self.faults).clone()
    }

    /// Replaces the faults.
    pub fn set_faults(&self, f: Faults) {
        *lock(&self.faults) = f;
    }

    /// Counts one of [`Faults::history_failures`] down; true when there was one left.
    pub fn take_history_failure(&self) -> bool {
        let mut f = lock(&self.faults);
        let left = f.history_failures > 0;
        f.history_failures = f.history_failures.saturating_sub(1);
        left
    }

    /// Waits until shutdown starts.
    pub async fn stopped(&self) {
        let mut rx = self.stop.clone();
        let _ = rx.wait_for(|v| *v).await;
    }
}

/// Per-connection context handed to handlers as a request extension.
#[derive(Clone, Debug)]
pub struct ConnCtx {
    /// The client's address.
    pub peer: SocketAddr,
    kill: Arc<Notify>,
}

impl ConnCtx {
    /// Closes this connection without answering; the caller's future never completes.
    pub async fn hang_up<T>(&self) -> T {
        self.kill.notify_one();
        std::future::pending().await
    }
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config is inconsistent.
    #[error("invalid simulator config: {0}")]
    Config(String),
    /// Binding or runtime set-up failed.
    #[error("cannot listen on {addr}: {source}")]
    Io {
        /// Address tried.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// Entry point.
pub struct Simulator;

impl Simulator {
    /// Binds `config.listen` and serves until [`SimHandle::shutdown`].
    pub async fn start(config: SimConfig) -> Result<SimHandle, StartError> {
        config.validate().map_err(StartError::Config)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Io {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Io {
            addr: config.listen,
            source,
        })?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let clock = Clock::default();
        let shared = Arc::new(Shared {
            ex: Mutex::new(Exchange::new(&config, clock.now_ms())),
            limiter: Mutex::new(RateLimiter::new(config.limits.clone())),
            faults: Mutex::new(config.faults.clone()),
            clock,
            keys: config.keys.clone(),
            max_recv_window_ms: config.max_recv_window_ms,
            ws_ping_interval: config.ws_ping_interval,
            stop: stop_rx,
            logons: AtomicU64::new(0),
        });
        let app = crate::routes::router(shared.clone());
        let task = tokio::spawn(accept_loop(listener, app, shared.clone()));
        tracing::info!(%addr, "binance simulator listening");
        Ok(SimHandle {
            shared,
            addr,
            stop: stop_tx,
            done: Some(Done::Task(task)),
        })
    }
}

async fn accept_loop(listener: TcpListener, app: Router, shared: Arc<Shared>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                conns.spawn(serve_conn(stream, peer, app.clone(), shared.clone()));
            }
            _ = shared.stopped() => break,
        }
        // Reap finished connections so the set does not grow without bound.
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

async fn serve_conn(stream: tokio::net::TcpStream, peer: SocketAddr, app: Router, sh: Arc<Shared>) {
    let kill = Arc::new(Notify::new());
    let ctx = ConnCtx {
        peer,
        kill: kill.clone(),
    };
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ctx.clone());
        app.clone().oneshot(req)
    });
    let conn = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades();
    // Dropping the connection future closes the socket: that is how a fault hangs up.
    tokio::select! {
        _ = conn => {}
        _ = kill.notified() => {}
        _ = sh.stopped() => {}
    }
}

enum Done {
    Task(tokio::task::JoinHandle<()>),
    Thread(std::thread::JoinHandle<()>),
}

/// A running simulator. Dropping it stops the server (without waiting).
pub struct SimHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    done: Option<Done>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .finish()
    }
}

impl SimHandle {
    /// Runs the simulator on its own tokio runtime in a background thread, for programs that
    /// are not async. Returns once it is listening.
    pub fn spawn_in_thread(config: SimConfig) -> Result<SimHandle, StartError> {
        let listen = config.listen;
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("binance-sim".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(source) => {
                        let _ = tx.send(Err(StartError::Io {
                            addr: listen,
                            source,
                        }));
                        return;
                    }
                };
                rt.block_on(async move {
                    match Simulator::start(config).await {
                        Ok(mut h) => {
                            let task = h.done.take();
                            let shared = h.shared.clone();
                            let _ = tx.send(Ok(h));
                            shared.stopped().await;
                            if let Some(Done::Task(t)) = task {
                                let _ = t.await;
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })
            .map_err(|source| StartError::Io {
                addr: listen,
                source,
            })?;
        let mut handle = rx
            .recv()
            .map_err(|_| StartError::Config("simulator thread exited before starting".into()))??;
        handle.done = Some(Done::Thread(thread));
        Ok(handle)
    }

    /// The bound address (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// REST base URL, e.g. `http://127.0.0.1:8089`.
    pub fn rest_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// WebSocket API URL (`.../ws-fapi/v1`).
    pub fn ws_api_url(&self) -> String {
        format!("ws://{}/ws-fapi/v1", self.addr)
    }

    /// User data stream base: the private route (`ws://…/private`).
    pub fn stream_base_url(&self) -> String {
        format!("ws://{}/private", self.addr)
    }

    /// User data stream URL for `listen_key` on the private route, every event, raw.
    pub fn stream_url(&self, listen_key: &str) -> String {
        format!("{}/ws?listenKey={listen_key}", self.stream_base_url())
    }

    /// A market stream on the `/market` route, ws mode (e.g. `ws://…/market/ws/!contractInfo`).
    pub fn market_stream_url(&self, stream: &str) -> String {
        format!("ws://{}/market/ws/{stream}", self.addr)
    }

    /// The legacy, unrouted URL (`ws://…/ws/<listenKey>`): it connects, and delivers nothing.
    pub fn legacy_stream_url(&self, listen_key: &str) -> String {
        format!("ws://{}/ws/{listen_key}", self.addr)
    }

    /// WebSocket API sessions logged on so far.
    pub fn session_logons(&self) -> u64 {
        // Relaxed: a counter read by tests, nothing published with it.
        self.shared.logons.load(Ordering::Relaxed)
    }

    /// The account's live listenKey, if any (tests look for it in logs).
    pub fn listen_key(&self) -> Option<String> {
        let now = self.shared.clock.now_ms();
        let ex = self.shared.ex();
        ex.listen_key
            .as_ref()
            .filter(|(_, exp)| *exp > now)
            .map(|(k, _)| k.clone())
    }

    /// The exchange closes (part of) a position leg on its own (liquidation,
    /// auto-deleveraging, settlement); see `POST /sim/liquidate`. Returns the order id.
    pub fn exchange_close(
        &self,
        symbol: &str,
        side: PosSide,
        kind: ExchangeOrderKind,
        qty: Option<Dec>,
    ) -> Result<u64, String> {
        let now = self.shared.clock.now_ms();
        let mut ex = self.shared.ex();
        if !ex.specs.contains_key(symbol) {
            return Err(format!("unknown symbol {symbol}"));
        }
        let side = ex.control_side(Some(side.as_str()), None)?;
        ex.exchange_close(symbol, side, kind, qty, now)
    }

    /// Sets a symbol's contract status, as `POST /sim/symbol-status` does (pushed on
    /// `!contractInfo`; with `settle`, at `DELIVERING` or `SETTLING`, the positions are
    /// closed by settlement orders).
    pub fn set_symbol_status(
        &self,
        symbol: &str,
        status: ContractStatus,
        settle: bool,
    ) -> Result<StatusChange, String> {
        let now = self.shared.clock.now_ms();
        self.shared.ex().set_status(symbol, status, settle, now)
    }

    /// Every order accepted so far, in order.
    pub fn audit(&self) -> Vec<AuditEntry> {
        self.shared.ex().audit()
    }

    /// Non-flat position legs.
    pub fn positions(&self) -> Vec<PositionView> {
        self.shared.ex().position_views()
    }

    /// Sets a symbol's mark price (resting limits it crosses fill).
    pub fn set_mark(&self, symbol: &str, price: Dec) -> Result<(), String> {
        let now = self.shared.clock.now_ms();
        let mut ex = self.shared.ex();
        if !ex.specs.contains_key(symbol) || !price.is_pos() {
            return Err(format!(
                "unknown symbol or non-positive price: {symbol} {price}"
            ));
        }
        ex.marks.insert(symbol.to_string(), price);
        ex.cross_resting(symbol, now);
        Ok(())
    }

    /// Overwrites a position leg at the current mark.
    pub fn set_position(&self, symbol: &str, side: PosSide, amt: Dec) -> Result<(), String> {
        let now = self.shared.clock.now_ms();
        let mut ex = self.shared.ex();
        if !ex.specs.contains_key(symbol) {
            return Err(format!("unknown symbol {symbol}"));
        }
        let mark = ex.mark(symbol);
        ex.set_position(symbol, side, amt, mark, now);
        Ok(())
    }

    /// Shifts the server clock by `ms` against the wall clock (`POST /sim/clock {offsetMs}`):
    /// orders placed meanwhile carry the shifted times.
    pub fn set_clock_offset(&self, ms: i64) {
        self.shared.clock.set_offset(ms);
    }

    /// Faults in force.
    pub fn faults(&self) -> Faults {
        self.shared.faults()
    }

    /// Replaces the faults.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.set_faults(faults);
    }

    /// Stops accepting, closes every connection and waits for the server to finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        match self.done.take() {
            Some(Done::Task(t)) => {
                let _ = t.await;
            }
            Some(Done::Thread(t)) => {
                let _ = tokio::task::spawn_blocking(move || t.join()).await;
            }
            None => {}
        }
    }

    /// Like [`SimHandle::shutdown`] for non-async callers (waits only for a simulator started
    /// with [`SimHandle::spawn_in_thread`]).
    pub fn shutdown_blocking(mut self) {
        let _ = self.stop.send(true);
        if let Some(Done::Thread(t)) = self.done.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
