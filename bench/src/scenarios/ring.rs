//! `ring`: round trips between two pinned threads (or processes), one message in flight:
//!
//! - `ring.cache_line`: one cache line bounced between two threads, the physical floor of
//!   this machine (baseline "floor");
//! - `ring.array_queue`: two crossbeam `ArrayQueue`s, the in-process baseline ("xbeam");
//! - `ring.shm_threads`: our shared-memory SPSC rings between two threads;
//! - `ring.shm_processes`: the same between this process and a peer process (this
//!   executable started as `bench ring-peer`).
//!
//! Each block (and the closed-loop run) starts its echo side afresh, warms up with
//! [`WARMUP`] unrecorded round trips, then times every round trip with `quanta` (TSC). The
//! echo side stops when it receives [`STOP`].

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use core_affinity::CoreId;
use crossbeam::queue::ArrayQueue;
use crossbeam::utils::CachePadded;
use hdrhistogram::Histogram;
use quantum_ipc::wire::{Raw, RECORD_SIZE};
use quantum_ipc::{Consumer, Producer, Ring, RingSpec};

use super::{pin, Ctx};
use crate::suite::openloop::{self, Schedule};
use crate::suite::variant::{Throughput, Variant};

/// Unrecorded round trips at the start of each block.
pub const WARMUP: u64 = 2_000;
/// The message that ends an echo side.
pub const STOP: u64 = u64::MAX;

/// Arguments of the hidden `quantum bench ring-peer`: the echo side of `ring.shm_processes`.
#[derive(Debug, Clone, clap::Args)]
pub struct PeerArgs {
    /// Instance whose `ping` and `pong` rings to attach.
    #[arg(long)]
    pub instance: String,
    /// Core to pin to.
    #[arg(long)]
    pub core: Option<usize>,
}

/// The rows of `ring`.
pub fn build(ctx: &Ctx) -> Result<super::Rows> {
    let mut rows = baselines(ctx);
    rows.push(Box::new(PingPong::new(ctx, Kind::ShmThreads)));
    rows.push(Box::new(PingPong::new(ctx, Kind::ShmProcesses)));
    Ok(rows)
}

/// The floor and crossbeam baselines, for runs that do not include `ring` itself.
pub fn baselines(ctx: &Ctx) -> Vec<Box<dyn Variant>> {
    vec![
        Box::new(PingPong::new(ctx, Kind::CacheLine)),
        Box::new(PingPong::new(ctx, Kind::ArrayQueue)),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    CacheLine,
    ArrayQueue,
    ShmThreads,
    ShmProcesses,
}

struct PingPong {
    kind: Kind,
    ctx: Ctx,
    clock: quanta::Clock,
    sessions: u64,
}

impl PingPong {
    fn new(ctx: &Ctx, kind: Kind) -> PingPong {
        PingPong {
            kind,
            ctx: ctx.clone(),
            clock: quanta::Clock::new(),
            sessions: 0,
        }
    }

    /// Starts the echo side, runs `f` with the round-trip function on a pinned thread, stops
    /// the echo side.
    fn session<R: Send>(&mut self, f: impl FnOnce(&mut dyn FnMut(u64)) -> R + Send) -> Result<R> {
        self.sessions += 1;
        let pair = self.ctx.pair();
        let (ping_core, pong_core) = (pair.map(|p| p.0), pair.map(|p| p.1));
        match self.kind {
            Kind::CacheLine => Ok(cache_line(ping_core, pong_core, f)),
            Kind::ArrayQueue => Ok(array_queue(ping_core, pong_core, f)),
            Kind::ShmThreads => {
                let instance = format!("{}-rt{}", self.ctx.tag, self.sessions);
                shm_threads(&instance, ping_core, pong_core, f)
            }
            Kind::ShmProcesses => {
                let instance = format!("{}-rp{}", self.ctx.tag, self.sessions);
                shm_processes(&self.ctx, &instance, ping_core, pong_core, f)
            }
        }
    }
}

impl Variant for PingPong {
    fn key(&self) -> &'static str {
        match self.kind {
            Kind::CacheLine => "ring.cache_line",
            Kind::ArrayQueue => "ring.array_queue",
            Kind::ShmThreads => "ring.shm_threads",
            Kind::ShmProcesses => "ring.shm_processes",
        }
    }

    fn name(&self) -> &'static str {
        match self.kind {
            Kind::CacheLine => "cache line, 2 threads (floor)",
            Kind::ArrayQueue => "crossbeam ArrayQueue, 2 threads",
            Kind::ShmThreads => "shm ring, 2 threads",
            Kind::ShmProcesses => "shm ring, 2 processes",
        }
    }

    fn op(&self) -> &'static str {
        "round trip"
    }

    fn block(&mut self, schedule: &Schedule, hist: &mut Histogram<u64>) -> Result<()> {
        let clock = self.clock.clone();
        let schedule = *schedule;
        let h = self.session(move |rt| {
            for i in 0..WARMUP {
                rt(i);
            }
            let mut h = quantum_daemon::latency::report::new_histogram();
            let origin = clock.raw();
            let mut now = || clock.delta_as_nanos(origin, clock.raw());
            let mut send = |i: u64| {
                rt(WARMUP + i);
                clock.delta_as_nanos(origin, clock.raw())
            };
            openloop::run_block(&schedule, &mut h, &mut now, &mut send);
            h
        })?;
        hist.add(&h)?;
        Ok(())
    }

    fn throughput(&mut self, duration: Duration) -> Result<Throughput> {
        self.session(move |rt| closed_loop(duration, rt))
    }

    fn notes(&self) -> Vec<String> {
        match self.kind {
            Kind::ShmThreads | Kind::ShmProcesses => {
                vec!["64-byte wire records (Raw) each way".to_owned()]
            }
            _ => Vec::new(),
        }
    }
}

/// Round trips back to back for `duration`, checking the clock every 1024.
pub fn closed_loop(duration: Duration, rt: &mut dyn FnMut(u64)) -> Throughput {
    for i in 0..WARMUP {
        rt(i);
    }
    let start = Instant::now();
    let mut ops = 0u64;
    loop {
        for _ in 0..1024 {
            rt(WARMUP + ops);
            ops += 1;
        }
        let elapsed = start.elapsed();
        if elapsed >= duration {
            return Throughput { ops, elapsed };
        }
    }
}

/// Runs `pong` and `ping` on their own pinned threads; returns `ping`'s result.
fn two_threads<R: Send>(
    ping_core: Option<CoreId>,
    pong_core: Option<CoreId>,
    pong: impl FnOnce() + Send,
    ping: impl FnOnce() -> R + Send,
) -> R {
    std::thread::scope(|s| {
        s.spawn(move || {
            pin(pong_core);
            pong();
        });
        s.spawn(move || {
            pin(ping_core);
            ping()
        })
        .join()
        .expect("ping thread panicked")
    })
}

/// One cache line: ping stores `2i + 1` and waits for `2i + 2`; [`STOP`] ends pong.
fn cache_line<R: Send>(
    ping_core: Option<CoreId>,
    pong_core: Option<CoreId>,
    f: impl FnOnce(&mut dyn FnMut(u64)) -> R + Send,
) -> R {
    let line = CachePadded::new(AtomicU64::new(0));
    let line = &line;
    two_threads(
        ping_core,
        pong_core,
        move || loop {
            // Acquire pairs with ping's Release store: what a real hand-off costs.
            let v = line.load(Ordering::Acquire);
            if v == STOP {
                return;
            }
            if v % 2 == 1 {
                // Release pairs with ping's Acquire load.
                line.store(v + 1, Ordering::Release);
            } else {
                std::hint::spin_loop();
            }
        },
        move || {
            let r = f(&mut |i| {
                // Release pairs with pong's Acquire load.
                line.store(2 * i + 1, Ordering::Release);
                // Acquire pairs with pong's Release store.
                while line.load(Ordering::Acquire) != 2 * i + 2 {
                    std::hint::spin_loop();
                }
            });
            // Release: pong only reads the value itself.
            line.store(STOP, Ordering::Release);
            r
        },
    )
}

/// Two crossbeam `ArrayQueue`s, one per direction.
fn array_queue<R: Send>(
    ping_core: Option<CoreId>,
    pong_core: Option<CoreId>,
    f: impl FnOnce(&mut dyn FnMut(u64)) -> R + Send,
) -> R {
    let there = ArrayQueue::<u64>::new(1024);
    let back = ArrayQueue::<u64>::new(1024);
    let (there, back) = (&there, &back);
    two_threads(
        ping_core,
        pong_core,
        move || loop {
            let v = loop {
                match there.pop() {
                    Some(v) => break v,
                    None => std::hint::spin_loop(),
                }
            };
            if v == STOP {
                return;
            }
            while back.push(v).is_err() {
                std::hint::spin_loop();
            }
        },
        move || {
            let r = f(&mut |i| {
                while there.push(i).is_err() {
                    std::hint::spin_loop();
                }
                loop {
                    match back.pop() {
                        Some(v) => {
                            debug_assert_eq!(v, i);
                            break;
                        }
                        None => std::hint::spin_loop(),
                    }
                }
            });
            while there.push(STOP).is_err() {
                std::hint::spin_loop();
            }
            r
        },
    )
}

/// Sends one record and spins for its echo.
#[inline]
fn ring_round_trip(
    producer: &mut Producer<RECORD_SIZE>,
    consumer: &mut Consumer<RECORD_SIZE>,
    record: &[u8; RECORD_SIZE],
) {
    while producer.try_push(record).is_err() {
        std::hint::spin_loop();
    }
    loop {
        if consumer.try_pop().is_some() {
            return;
        }
        std::hint::spin_loop();
    }
}

/// Pops records and pushes each back, until [`STOP`].
fn echo(consumer: &mut Consumer<RECORD_SIZE>, producer: &mut Producer<RECORD_SIZE>) {
    let stop = Raw::for_seq(STOP, 0).encode();
    loop {
        let r = loop {
            if let Some(r) = consumer.try_pop() {
                break r;
            }
            std::hint::spin_loop();
        };
        if r == stop {
            return;
        }
        while producer.try_push(&r).is_err() {
            std::hint::spin_loop();
        }
    }
}

fn ring_pair(instance: &str) -> Result<(Ring, Ring)> {
    let ping = Ring::create(&RingSpec::new(instance, "ping", 1024))?;
    let pong = Ring::create(&RingSpec::new(instance, "pong", 1024))?;
    Ok((ping, pong))
}

/// The ping side over the rings: `f`'s round trips, then [`STOP`].
fn ring_ping<R>(
    tx: &mut Producer<RECORD_SIZE>,
    rx: &mut Consumer<RECORD_SIZE>,
    f: impl FnOnce(&mut dyn FnMut(u64)) -> R,
) -> R {
    // The same record every time: building one is not what is measured.
    let record = Raw::for_seq(1, 0).encode();
    let r = f(&mut |_| ring_round_trip(tx, rx, &record));
    let stop = Raw::for_seq(STOP, 0).encode();
    while tx.try_push(&stop).is_err() {
        std::hint::spin_loop();
    }
    r
}

/// Our rings between two threads of this process.
fn shm_threads<R: Send>(
    instance: &str,
    ping_core: Option<CoreId>,
    pong_core: Option<CoreId>,
    f: impl FnOnce(&mut dyn FnMut(u64)) -> R + Send,
) -> Result<R> {
    let (ping, pong) = ring_pair(instance)?;
    let mut ping_tx = ping.producer::<RECORD_SIZE>()?;
    let mut ping_rx = ping.consumer::<RECORD_SIZE>()?;
    let mut pong_tx = pong.producer::<RECORD_SIZE>()?;
    let mut pong_rx = pong.consumer::<RECORD_SIZE>()?;
    Ok(two_threads(
        ping_core,
        pong_core,
        move || echo(&mut ping_rx, &mut pong_tx),
        move || ring_ping(&mut ping_tx, &mut pong_rx, f),
    ))
}

/// Kills a child process if the measurement bails out early.
pub struct ChildGuard(pub Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Our rings between this process and a peer process.
fn shm_processes<R: Send>(
    ctx: &Ctx,
    instance: &str,
    ping_core: Option<CoreId>,
    pong_core: Option<CoreId>,
    f: impl FnOnce(&mut dyn FnMut(u64)) -> R + Send,
) -> Result<R> {
    let (ping, pong) = ring_pair(instance)?;
    let mut tx = ping.producer::<RECORD_SIZE>()?;
    let mut rx = pong.consumer::<RECORD_SIZE>()?;
    let mut cmd = Command::new(&ctx.exe);
    cmd.args(["bench", "ring-peer", "--instance", instance])
        .stdin(Stdio::null());
    if let Some(c) = pong_core {
        cmd.args(["--core", &c.id.to_string()]);
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting peer {}", ctx.exe.display()))?;
    let mut guard = ChildGuard(Some(child));
    // The peer attaches on its own time; wait for it before timing anything.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ping.consumer_status(10_000).is_alive() || !pong.producer_status(10_000).is_alive() {
        if let Some(child) = &mut guard.0 {
            if let Some(status) = child.try_wait()? {
                bail!("peer process exited early with {status}");
            }
        }
        if Instant::now() > deadline {
            bail!("peer process did not attach to {instance} within 10 s");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let r = std::thread::scope(|s| {
        s.spawn(|| {
            pin(ping_core);
            ring_ping(&mut tx, &mut rx, f)
        })
        .join()
        .expect("ping thread panicked")
    });
    if let Some(mut child) = guard.0.take() {
        let status = child.wait()?;
        if !status.success() {
            bail!("peer process failed with {status}");
        }
    }
    Ok(r)
}

/// The peer side of `ring.shm_processes`: attach to the instance's rings and echo until
/// [`STOP`].
pub fn run_peer(args: &PeerArgs) -> Result<()> {
    if let Some(id) = args.core {
        core_affinity::set_for_current(CoreId { id });
    }
    let ping = Ring::open(&RingSpec::new(&args.instance, "ping", 0))?;
    let pong = Ring::open(&RingSpec::new(&args.instance, "pong", 0))?;
    let mut rx = ping.consumer::<RECORD_SIZE>()?;
    let mut tx = pong.producer::<RECORD_SIZE>()?;
    echo(&mut rx, &mut tx);
    Ok(())
}
