//! The ring ends of the bridge, each on its own thread (ring calls back off by spinning and
//! sleeping, which must not block the async runtime): a reader taking `OrderIntent`s and
//! `Leading` requests from `orders`, and a writer putting records on `exchange`. A full `exchange` ring is waited on,
//! never dropped from.
//!
//! Both ends follow the daemon across restarts: twice a second each checks whether the name of
//! its ring still points at the segment it maps (a restarted `quantum run` creates a new
//! `orders` ring; it takes `exchange` over, unless that had to be made anew). When it does not,
//! the end attaches to the new segment, says so in the log, and signals [`Reattached`] so the
//! bridge sends its filters and positions at once (the restarted core reconciles every symbol
//! before it trades). The restarted core offers every order without a final outcome again,
//! marked "look it up first".

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use quantum_ipc::wire::{self, Limits, Message, RECORD_SIZE};
use quantum_ipc::{Ring, RingSpec};
use tokio::sync::{mpsc, Notify};

/// Woken whenever a ring end re-attached to a restarted daemon.
pub type Reattached = Arc<Notify>;

/// How often a ring end checks that its ring is still the one its name points at.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// Watches the name of a ring for a new segment behind it.
struct Follow {
    spec: RingSpec,
    identity: Option<(u64, u64)>,
    next_check: Instant,
    gone_logged: bool,
    notify: Reattached,
}

impl Follow {
    fn new(ring: &Ring, spec: RingSpec, notify: Reattached) -> Follow {
        Follow {
            identity: ring.identity(),
            spec,
            next_check: Instant::now() + FOLLOW_EVERY,
            gone_logged: false,
            notify,
        }
    }

    /// A new segment behind the name, opened, when there is one (checked every
    /// [`FOLLOW_EVERY`]).
    fn replaced(&mut self) -> Option<Ring> {
        let now = Instant::now();
        if now < self.next_check {
            return None;
        }
        self.next_check = now + FOLLOW_EVERY;
        let current = Ring::current_identity(&self.spec);
        if current == self.identity {
            return None;
        }
        let Some(current) = current else {
            if !self.gone_logged {
                self.gone_logged = true;
                tracing::warn!(ring = %self.spec.name, "the daemon removed its ring (it stopped); waiting for it to start again");
            }
            return None;
        };
        // Not initialised yet (the daemon is creating it) is retried at the next check.
        let ring = Ring::open(&self.spec).ok()?;
        self.identity = Some(current);
        self.gone_logged = false;
        Some(ring)
    }
}

/// Ring the core writes order intents to (`quantum.<instance>.orders`).
pub const ORDERS_RING: &str = quantum_ipc::contract::ORDERS.name;
/// Ring the core reads exchange records from (`quantum.<instance>.exchange`).
pub const EXCHANGE_RING: &str = quantum_ipc::contract::EXCHANGE.name;

async fn open_ring(instance: &str, name: &str, timeout: Duration) -> anyhow::Result<Ring> {
    let deadline = Instant::now() + timeout;
    loop {
        match Ring::open(&RingSpec::new(instance, name, 0)) {
            Ok(r) => return Ok(r),
            Err(e) if Instant::now() >= deadline => {
                return Err(anyhow::Error::new(e).context(format!(
                    "cannot open ring {name} of instance {instance}; is `quantum run --instance {instance}` running?"
                )))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A thread and its stop flag.
#[derive(Debug)]
pub struct Worker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Asks the thread to stop and waits for it.
    pub fn stop(mut self) {
        // Relaxed: a flag polled by the thread; join() below provides the ordering.
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sender of records to the `exchange` ring.
#[derive(Clone, Debug)]
pub struct Out {
    tx: std_mpsc::Sender<Message>,
}

impl Out {
    /// Opens `exchange`, claims its producer side, and starts the writer thread.
    pub async fn start(
        instance: &str,
        timeout: Duration,
        notify: Reattached,
    ) -> anyhow::Result<(Out, Worker)> {
        let ring = open_ring(instance, EXCHANGE_RING, timeout).await?;
        let mut producer = ring.producer::<RECORD_SIZE>()?;
        let mut follow = Follow::new(&ring, RingSpec::new(instance, EXCHANGE_RING, 0), notify);
        let (tx, rx) = std_mpsc::channel::<Message>();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("binance-exchange-writer".into())
            .spawn(move || {
                let mut _ring = ring;
                loop {
                    if let Some(new) = follow.replaced() {
                        match new.producer::<RECORD_SIZE>() {
                            Ok(p) => {
                                producer = p;
                                _ring = new;
                                tracing::info!("the daemon's exchange ring was replaced (it restarted): writing to the new one");
                                follow.notify.notify_one();
                            }
                            Err(e) => tracing::warn!(error = %e, "cannot write to the new exchange ring yet"),
                        }
                    }
                    if let Some(f) = producer.check() {
                        tracing::error!("{f}");
                    }
                    match rx.recv_timeout(Duration::from_millis(200)) {
                        Ok(m) => {
                            let rec = m.encode();
                            while producer.push(&rec, Duration::from_secs(1)).is_err() {
                                match producer.check() {
                                    Some(f) => tracing::error!("{f}"),
                                    None => tracing::warn!("exchange ring full: the core is not reading; waiting"),
                                }
                                if let Some(new) = follow.replaced() {
                                    if let Ok(p) = new.producer::<RECORD_SIZE>() {
                                        producer = p;
                                        _ring = new;
                                        tracing::info!("the daemon's exchange ring was replaced (it restarted): writing to the new one");
                                        follow.notify.notify_one();
                                    }
                                }
                                // Relaxed: see `Worker::stop`.
                                if flag.load(Ordering::Relaxed) {
                                    tracing::error!(kind = ?m.kind(), "stopping with a record not delivered");
                                    break;
                                }
                            }
                        }
                        Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                        Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                    producer.heartbeat();
                    // Relaxed: see `Worker::stop`.
                    if flag.load(Ordering::Relaxed) {
                        // Deliver what is already queued, then stop.
                        while let Ok(m) = rx.try_recv() {
                            let _ = producer.push(&m.encode(), Duration::from_millis(100));
                        }
                        break;
                    }
                }
            })?;
        Ok((
            Out { tx },
            Worker {
                stop,
                thread: Some(thread),
            },
        ))
    }

    /// Queues a record for the `exchange` ring.
    pub fn send(&self, m: Message) {
        if self.tx.send(m).is_err() {
            tracing::error!("exchange writer stopped; record lost");
        }
    }
}

/// What the core asks of the bridge on `orders`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// Send this order; read off the ring at this instant (the exchange leg's first stamp,
    /// [`super::latency`]).
    Intent(wire::OrderIntent, Instant),
    /// The core's host took the lead (failover): read every symbol's order history since
    /// `since_ms` now.
    Leading(wire::Leading),
}

/// Opens `orders`, claims its consumer side, and starts the reader thread feeding `tx`.
pub async fn start_reader(
    instance: &str,
    timeout: Duration,
    tx: mpsc::Sender<Inbound>,
    notify: Reattached,
) -> anyhow::Result<Worker> {
    let ring = open_ring(instance, ORDERS_RING, timeout).await?;
    let mut consumer = ring.consumer::<RECORD_SIZE>()?;
    let mut follow = Follow::new(&ring, RingSpec::new(instance, ORDERS_RING, 0), notify);
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let limits = Limits::default();
    let thread = std::thread::Builder::new()
        .name("binance-orders-reader".into())
        .spawn(move || {
            let mut _ring = ring;
            // Relaxed: see `Worker::stop`.
            while !flag.load(Ordering::Relaxed) {
                if let Some(new) = follow.replaced() {
                    match new.consumer::<RECORD_SIZE>() {
                        Ok(c) => {
                            consumer = c;
                            _ring = new;
                            tracing::info!("the daemon's orders ring was replaced (it restarted): re-attached; it offers again every order without a final outcome, to look up first");
                            follow.notify.notify_one();
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot read the new orders ring yet"),
                    }
                }
                if let Some(f) = consumer.check() {
                    tracing::error!("{f}");
                }
                consumer.heartbeat();
                let Some(rec) = consumer.pop(Duration::from_millis(50)) else {
                    continue;
                };
                let inbound = match Message::decode(&rec, &limits) {
                    Ok(Message::OrderIntent(i)) => Inbound::Intent(i, Instant::now()),
                    Ok(Message::Leading(l)) => Inbound::Leading(l),
                    Ok(other) => {
                        consumer.report_invalid();
                        tracing::warn!(kind = ?other.kind(), "orders ring carried a record that is neither an OrderIntent nor a Leading; skipped");
                        continue;
                    }
                    Err(e) => {
                        consumer.report_invalid();
                        tracing::warn!(error = %e, "invalid record on the orders ring; skipped");
                        continue;
                    }
                };
                if tx.blocking_send(inbound).is_err() {
                    break;
                }
            }
        })?;
    Ok(Worker {
        stop,
        thread: Some(thread),
    })
}
