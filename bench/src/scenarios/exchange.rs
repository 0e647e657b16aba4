//! `exchange`: an order's round trip adapter → simulator → adapter on loopback, over REST and
//! over the WebSocket API, next to the floor of any request/answer on this machine measured in
//! the same run: a blocking TCP echo of a request-sized message on loopback.
//!
//! ```text
//!  exchange.tcp_echo   this thread ──512 B──> echo thread ──512 B──> this thread
//!  exchange.rest       FuturesClient::place ──POST /fapi/v1/order──> simulator ──FILLED──> parsed order
//!  exchange.ws         FuturesClient::place ──order.place (WebSocket API)──> simulator ──> parsed order
//! ```
//!
//! - `exchange.tcp_echo` (baseline "echo"): one `write` of [`MESSAGE`] bytes on a loopback TCP
//!   connection (`TCP_NODELAY`), read in full by an echo thread that writes them back, read in
//!   full here: two socket hops and two thread wake-ups, what any request to a local server
//!   costs at least. 512 B is about a signed order request (~460 B over REST) and the
//!   simulator's answer (~710 B).
//! - `exchange.rest`, `exchange.ws`: one reduce-only MARKET order (`newOrderRespType=RESULT`)
//!   placed by the Binance adapter's own order path, [`FuturesClient::place`] (the rate
//!   limiter, signing, the request, the answer parsed into an order), answered FILLED by the
//!   simulator (`quantum sim binance`'s server) on its own runtime thread in this process. The
//!   client runs on a two-thread tokio runtime, as `quantum bridge binance` runs it. This is
//!   the bridge's `exchange.ack` span plus its signing; its live `exchange.intent` adds the
//!   ring read and the hand-over to an order task.
//!
//! Each row runs one operation at a time, offered at most [`MAX_RATE`] a second (every row the
//! same pace, so the echo's threads are as idle between two operations as the orders'): its
//! open-loop blocks sleep until shortly before each due time and spin the rest (a thread
//! spinning the whole time would take one of this host's cores from the runtimes it
//! measures). Nothing is pinned.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use hdrhistogram::Histogram;
use quantum_binance::{
    ClientConfig, Credentials, FuturesClient, NewOrder, Placement, Side, Transport,
};
use quantum_binance_sim::{Dec, Limits, PosSide, SimConfig, SimHandle};
use quantum_binance_sim::{TEST_API_KEY, TEST_API_SECRET};
use quantum_core::types::{ClientOrderId, PlanId};

use super::Ctx;
use crate::suite::openloop::Schedule;
use crate::suite::variant::{Baseline, Throughput, Variant};

/// Bytes each way of the TCP echo.
pub const MESSAGE: usize = 512;

/// The symbol ordered, and the position the simulator starts with (room for a million orders).
const SYMBOL: &str = "BTCUSDT";
const POSITION: &str = "1000";
const QTY: &str = "0.001";

/// Orders per transport and echoes before the first measurement (connections, caches).
const WARM_UP: u64 = 50;

/// The open-loop rate offered at most, operations per second, the same for every row: an
/// order takes 0.1–0.4 ms here, so at a quarter of its closed-loop throughput the open loop
/// would measure a queue; and the echo is measured at the same pace as the orders, its
/// threads as idle between two operations as theirs.
const MAX_RATE: f64 = 500.0;

/// The rows of `exchange`: the echo floor, then REST and the WebSocket API (one simulator and
/// one client for both).
pub fn build(_ctx: &Ctx) -> Result<super::Rows> {
    let stack = Rc::new(RefCell::new(Stack::start()?));
    Ok(vec![
        Box::new(Row {
            stack: stack.clone(),
            kind: Kind::Echo,
        }),
        Box::new(Row {
            stack: stack.clone(),
            kind: Kind::Order(Transport::Rest),
        }),
        Box::new(Row {
            stack,
            kind: Kind::Order(Transport::WsApi),
        }),
    ])
}

/// A blocking echo server on loopback: one connection, one thread.
struct Echo {
    conn: TcpStream,
    thread: Option<JoinHandle<()>>,
    buf: [u8; MESSAGE],
}

impl Echo {
    fn start() -> Result<Echo> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the echo server")?;
        let addr = listener.local_addr()?;
        let thread = std::thread::Builder::new()
            .name("bench-tcp-echo".into())
            .spawn(move || {
                let Ok((mut s, _)) = listener.accept() else {
                    return;
                };
                let _ = s.set_nodelay(true);
                let mut buf = [0u8; MESSAGE];
                while s.read_exact(&mut buf).is_ok() {
                    if s.write_all(&buf).is_err() {
                        return;
                    }
                }
            })?;
        let conn = TcpStream::connect(addr).context("connecting to the echo server")?;
        conn.set_nodelay(true)?;
        Ok(Echo {
            conn,
            thread: Some(thread),
            buf: [0x5a; MESSAGE],
        })
    }

    fn round_trip(&mut self) -> Result<()> {
        self.conn.write_all(&self.buf)?;
        self.conn.read_exact(&mut self.buf)?;
        Ok(())
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.conn.shutdown(std::net::Shutdown::Both);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The simulator, the adapter's client on its runtime, the echo pair.
struct Stack {
    echo: Echo,
    client: FuturesClient,
    rt: tokio::runtime::Runtime,
    sim: Option<SimHandle>,
    /// Plan ids of the orders' client ids, one per order.
    next_plan: u64,
    /// The clock of every row: ns since this instant.
    epoch: Instant,
}

impl Stack {
    fn start() -> Result<Stack> {
        let mut cfg = SimConfig::ephemeral();
        // The published limits would stop a run within a minute; this measures latency only.
        cfg.limits = Limits {
            weight_per_minute: 100_000_000,
            orders_per_10s: 100_000_000,
            orders_per_minute: 100_000_000,
            ..Limits::default()
        };
        let sim = SimHandle::spawn_in_thread(cfg).context("starting the simulator")?;
        let amount = Dec::parse(POSITION).map_err(|e| anyhow!("{e:?}"))?;
        sim.set_position(SYMBOL, PosSide::Both, amount)
            .map_err(anyhow::Error::msg)?;
        // As `quantum bridge binance` runs its client.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let ccfg = ClientConfig::local(&sim.rest_url(), &sim.ws_api_url(), &sim.stream_base_url());
        let client = rt
            .block_on(async {
                let c =
                    FuturesClient::connect(ccfg, Credentials::new(TEST_API_KEY, TEST_API_SECRET))
                        .await?;
                c.ws_api().connect().await?;
                Ok::<_, quantum_binance::Error>(c)
            })
            .context("connecting the adapter to the simulator")?;
        let mut s = Stack {
            echo: Echo::start()?,
            client,
            rt,
            sim: Some(sim),
            next_plan: 0xe0_0000_0000,
            epoch: Instant::now(),
        };
        for _ in 0..WARM_UP {
            s.echo.round_trip()?;
            for t in Transport::ALL {
                let o = s.order();
                s.place(t, &o)?;
            }
        }
        Ok(s)
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Sleeps until shortly before `due` (ns on [`Stack::now_ns`]), then spins to it.
    fn wait_until(&self, due: u64) {
        loop {
            let now = self.now_ns();
            if now >= due {
                return;
            }
            if due - now > 150_000 {
                std::thread::sleep(Duration::from_nanos(due - now - 100_000));
            } else {
                std::hint::spin_loop();
            }
        }
    }

    /// The next order: a reduce-only MARKET sell of [`QTY`], its client id the bridge's.
    fn order(&mut self) -> NewOrder {
        self.next_plan += 1;
        NewOrder {
            symbol: SYMBOL.into(),
            side: Side::Sell,
            quantity: QTY.into(),
            position_side: quantum_binance::PositionSide::Both,
            reduce_only: true,
            client_order_id: ClientOrderId::for_plan(PlanId(self.next_plan))
                .as_str()
                .to_owned(),
        }
    }

    /// Places `o` and checks it was answered FILLED.
    fn place(&self, t: Transport, o: &NewOrder) -> Result<()> {
        match self.rt.block_on(self.client.place(t, o)) {
            Placement::Placed(order) if order.status == "FILLED" => Ok(()),
            Placement::Placed(order) => bail!(
                "{} order {} answered {}, not FILLED",
                t.name(),
                o.client_order_id,
                order.status
            ),
            Placement::Rejected(e) => bail!("{} order refused: {e}", t.name()),
            Placement::Unknown(u) => bail!("{} order outcome unknown: {}", t.name(), u.cause),
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(sim) = self.sim.take() {
            sim.shutdown_blocking();
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Echo,
    Order(Transport),
}

struct Row {
    stack: Rc<RefCell<Stack>>,
    kind: Kind,
}

impl Row {
    /// One operation of this row, due or not; the next order is made before it is timed.
    fn op(&self, s: &mut Stack, due: Option<u64>) -> Result<()> {
        match self.kind {
            Kind::Echo => {
                if let Some(d) = due {
                    s.wait_until(d);
                }
                s.echo.round_trip()
            }
            Kind::Order(t) => {
                let o = s.order();
                if let Some(d) = due {
                    s.wait_until(d);
                }
                s.place(t, &o)
            }
        }
    }
}

impl Variant for Row {
    fn key(&self) -> &'static str {
        match self.kind {
            Kind::Echo => Baseline::TcpEcho.key(),
            Kind::Order(Transport::Rest) => "exchange.rest",
            Kind::Order(Transport::WsApi) => "exchange.ws",
        }
    }

    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Echo => "loopback TCP echo, 512 B each way (floor of a request)",
            Kind::Order(Transport::Rest) => "order → simulator → FILLED answer, REST",
            Kind::Order(Transport::WsApi) => "order → simulator → FILLED answer, WebSocket API",
        }
    }

    fn op(&self) -> &'static str {
        match self.kind {
            Kind::Echo => "round trip",
            Kind::Order(_) => "order",
        }
    }

    fn max_rate(&self) -> Option<f64> {
        Some(MAX_RATE)
    }

    fn block(&mut self, schedule: &Schedule, hist: &mut Histogram<u64>) -> Result<()> {
        let mut s = self.stack.borrow_mut();
        let interval = schedule.interval_ns();
        // One interval ahead, so the first operation is not already late.
        let start = s.now_ns() + interval;
        for i in 0..schedule.count {
            let due = schedule.due(start, i);
            Row::op(self, &mut s, Some(due))?;
            hist.saturating_record(s.now_ns().saturating_sub(due).max(1));
        }
        Ok(())
    }

    fn throughput(&mut self, duration: Duration) -> Result<Throughput> {
        let mut s = self.stack.borrow_mut();
        let t0 = Instant::now();
        let mut ops = 0;
        while t0.elapsed() < duration {
            Row::op(self, &mut s, None)?;
            ops += 1;
        }
        Ok(Throughput {
            ops,
            elapsed: t0.elapsed(),
        })
    }

    fn notes(&self) -> Vec<String> {
        vec![match self.kind {
            Kind::Echo => format!("{MESSAGE} B written and read back over loopback TCP (TCP_NODELAY), blocking, the echo server a thread of this process; unpinned"),
            Kind::Order(_) => format!("reduce-only MARKET {QTY} {SYMBOL}, newOrderRespType=RESULT, HMAC-signed; simulator in this process on its own 2-thread runtime, the adapter on a 2-thread runtime as `quantum bridge binance` runs it; loopback; unpinned"),
        }]
    }
}
