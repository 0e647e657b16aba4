//! The ring ends of the bridge, each on its own thread (ring calls back off by spinning and
//! sleeping, which must not block the async runtime): a reader taking `OrderIntent`s from
//! `orders`, and a writer putting records on `exchange`. A full `exchange` ring is waited on,
//! never dropped from.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use quantum_ipc::wire::{self, Limits, Message, RECORD_SIZE};
use quantum_ipc::{Ring, RingSpec};
use tokio::sync::mpsc;

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
    pub async fn start(instance: &str, timeout: Duration) -> anyhow::Result<(Out, Worker)> {
        let ring = open_ring(instance, EXCHANGE_RING, timeout).await?;
        let mut producer = ring.producer::<RECORD_SIZE>()?;
        let (tx, rx) = std_mpsc::channel::<Message>();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("binance-exchange-writer".into())
            .spawn(move || {
                let _ring = ring;
                loop {
                    match rx.recv_timeout(Duration::from_millis(200)) {
                        Ok(m) => {
                            let rec = m.encode();
                            while producer.push(&rec, Duration::from_secs(1)).is_err() {
                                tracing::warn!("exchange ring full: the core is not reading; waiting");
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

/// Opens `orders`, claims its consumer side, and starts the reader thread feeding `tx`.
pub async fn start_reader(
    instance: &str,
    timeout: Duration,
    tx: mpsc::Sender<wire::OrderIntent>,
) -> anyhow::Result<Worker> {
    let ring = open_ring(instance, ORDERS_RING, timeout).await?;
    let mut consumer = ring.consumer::<RECORD_SIZE>()?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let limits = Limits::default();
    let thread = std::thread::Builder::new()
        .name("binance-orders-reader".into())
        .spawn(move || {
            let _ring = ring;
            // Relaxed: see `Worker::stop`.
            while !flag.load(Ordering::Relaxed) {
                consumer.heartbeat();
                let Some(rec) = consumer.pop(Duration::from_millis(50)) else {
                    continue;
                };
                match Message::decode(&rec, &limits) {
                    Ok(Message::OrderIntent(i)) => {
                        if tx.blocking_send(i).is_err() {
                            break;
                        }
                    }
                    Ok(other) => {
                        consumer.report_invalid();
                        tracing::warn!(kind = ?other.kind(), "orders ring carried a record that is not an OrderIntent; skipped");
                    }
                    Err(e) => {
                        consumer.report_invalid();
                        tracing::warn!(error = %e, "invalid record on the orders ring; skipped");
                    }
                }
            }
        })?;
    Ok(Worker {
        stop,
        thread: Some(thread),
    })
}
