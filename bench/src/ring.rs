//! `quantum bench ring`: round-trip latency of
//!
//! - (a) two threads bouncing one cache line: the physical floor of this machine;
//! - (b) a crossbeam `ArrayQueue` ping-pong between two threads: the in-process baseline;
//! - (c) our shared-memory ring ping-pong between two threads;
//! - (d) our shared-memory ring ping-pong between two processes (the peer is this executable
//!   started as `bench ring-peer ...`).
//!
//! Every row: warm-up round trips first (not recorded), then `--iters` round trips, each one
//! timed with the TSC clock (`quanta`) and recorded in an HdrHistogram. Threads (and the peer
//! process) are pinned to two distinct cores when the machine has at least two.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{bail, Context};
use core_affinity::CoreId;
use crossbeam::queue::ArrayQueue;
use crossbeam::utils::CachePadded;
use hdrhistogram::Histogram;
use quantum_ipc::wire::{Raw, RECORD_SIZE};
use quantum_ipc::{Consumer, Producer, Ring, RingSpec};

use crate::report::{self, Row};

/// Arguments of `quantum bench ring`.
#[derive(Debug, Clone, clap::Args)]
pub struct RingArgs {
    /// Round trips recorded per row.
    #[arg(long, default_value_t = 200_000)]
    pub iters: u64,
    /// Round trips run first and not recorded.
    #[arg(long, default_value_t = 20_000)]
    pub warmup: u64,
    /// Output directory for summary.json and the .hgrm files (relative: under the current
    /// directory).
    #[arg(long, default_value = "quantum-bench-ring")]
    pub out: PathBuf,
    /// Executable to start as the peer process (default: this one, as `bench ring-peer`).
    #[arg(long, hide = true)]
    pub peer_exe: Option<PathBuf>,
    /// Skip the two-process row.
    #[arg(long)]
    pub no_process: bool,
}

impl Default for RingArgs {
    fn default() -> RingArgs {
        RingArgs {
            iters: 200_000,
            warmup: 20_000,
            out: PathBuf::from("quantum-bench-ring"),
            peer_exe: None,
            no_process: false,
        }
    }
}

/// Arguments of the hidden `quantum bench ring-peer`: the echo side of row (d).
#[derive(Debug, Clone, clap::Args)]
pub struct PeerArgs {
    /// Instance whose `ping` and `pong` rings to attach.
    #[arg(long)]
    pub instance: String,
    /// Records to echo before exiting.
    #[arg(long)]
    pub count: u64,
    /// Core to pin to.
    #[arg(long)]
    pub core: Option<usize>,
}

/// The two cores to pin to, read once at start; `None` when there are fewer than two.
#[derive(Debug, Clone, Copy)]
struct Cores {
    pair: Option<(CoreId, CoreId)>,
}

impl Cores {
    fn detect() -> Cores {
        let ids = core_affinity::get_core_ids().unwrap_or_default();
        let pair = match ids.as_slice() {
            [a, b, ..] => Some((*a, *b)),
            _ => {
                eprintln!("bench: {} core(s) visible, running unpinned", ids.len());
                None
            }
        };
        Cores { pair }
    }

    fn pin_ping(&self) {
        if let Some((a, _)) = self.pair {
            core_affinity::set_for_current(a);
        }
    }

    fn pin_pong(&self) {
        if let Some((_, b)) = self.pair {
            core_affinity::set_for_current(b);
        }
    }
}

/// Runs `pong` on its own (pinned) thread and times `round_trip(i)` for every `i` on another;
/// records the last `iters`.
fn ping_pong(
    clock: &quanta::Clock,
    cores: Cores,
    warmup: u64,
    iters: u64,
    pong: impl FnOnce() + Send,
    mut round_trip: impl FnMut(u64) + Send,
) -> Histogram<u64> {
    std::thread::scope(|s| {
        s.spawn(move || {
            cores.pin_pong();
            pong();
        });
        s.spawn(move || {
            cores.pin_ping();
            measure(clock, warmup, iters, &mut round_trip)
        })
        .join()
        .expect("ping thread panicked")
    })
}

fn measure(
    clock: &quanta::Clock,
    warmup: u64,
    iters: u64,
    round_trip: &mut impl FnMut(u64),
) -> Histogram<u64> {
    let mut hist = report::new_histogram();
    for i in 0..warmup + iters {
        let t0 = clock.raw();
        round_trip(i);
        let t1 = clock.raw();
        if i >= warmup {
            hist.saturating_record(clock.delta_as_nanos(t0, t1).max(1));
        }
    }
    hist
}

/// (a) One cache line, two threads: ping stores `2i + 1`, pong answers `2i + 2`.
fn cache_line(clock: &quanta::Clock, cores: Cores, warmup: u64, iters: u64) -> Histogram<u64> {
    let line = CachePadded::new(AtomicU64::new(0));
    let total = warmup + iters;
    let line = &line;
    ping_pong(
        clock,
        cores,
        warmup,
        iters,
        move || {
            for i in 0..total {
                // Acquire pairs with ping's Release store; nothing else is published, but it
                // is what a real handoff costs.
                while line.load(Ordering::Acquire) != 2 * i + 1 {
                    std::hint::spin_loop();
                }
                // Release pairs with ping's Acquire load below.
                line.store(2 * i + 2, Ordering::Release);
            }
        },
        move |i| {
            // Release pairs with pong's Acquire load.
            line.store(2 * i + 1, Ordering::Release);
            // Acquire pairs with pong's Release store.
            while line.load(Ordering::Acquire) != 2 * i + 2 {
                std::hint::spin_loop();
            }
        },
    )
}

/// (b) Two crossbeam `ArrayQueue`s, one per direction.
fn array_queue(clock: &quanta::Clock, cores: Cores, warmup: u64, iters: u64) -> Histogram<u64> {
    let there = ArrayQueue::<u64>::new(1024);
    let back = ArrayQueue::<u64>::new(1024);
    let (there, back) = (&there, &back);
    let total = warmup + iters;
    ping_pong(
        clock,
        cores,
        warmup,
        iters,
        move || {
            for _ in 0..total {
                let v = loop {
                    match there.pop() {
                        Some(v) => break v,
                        None => std::hint::spin_loop(),
                    }
                };
                while back.push(v).is_err() {
                    std::hint::spin_loop();
                }
            }
        },
        move |i| {
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

/// Pops `count` records and pushes each back.
fn echo(consumer: &mut Consumer<RECORD_SIZE>, producer: &mut Producer<RECORD_SIZE>, count: u64) {
    for _ in 0..count {
        let r = loop {
            if let Some(r) = consumer.try_pop() {
                break r;
            }
            std::hint::spin_loop();
        };
        while producer.try_push(&r).is_err() {
            std::hint::spin_loop();
        }
    }
}

fn ring_pair(instance: &str) -> anyhow::Result<(Ring, Ring)> {
    let ping = Ring::create(&RingSpec::new(instance, "ping", 1024))?;
    let pong = Ring::create(&RingSpec::new(instance, "pong", 1024))?;
    Ok((ping, pong))
}

/// (c) Our rings between two threads of this process.
fn shm_threads(
    clock: &quanta::Clock,
    cores: Cores,
    warmup: u64,
    iters: u64,
) -> anyhow::Result<Histogram<u64>> {
    let instance = format!("bench{}-threads", std::process::id());
    let (ping, pong) = ring_pair(&instance)?;
    let mut ping_tx = ping.producer::<RECORD_SIZE>()?;
    let mut ping_rx = ping.consumer::<RECORD_SIZE>()?;
    let mut pong_tx = pong.producer::<RECORD_SIZE>()?;
    let mut pong_rx = pong.consumer::<RECORD_SIZE>()?;
    let total = warmup + iters;
    Ok(ping_pong(
        clock,
        cores,
        warmup,
        iters,
        move || echo(&mut ping_rx, &mut pong_tx, total),
        move |i| ring_round_trip(&mut ping_tx, &mut pong_rx, &Raw::for_seq(i, 0).encode()),
    ))
}

/// Kills the peer if the measurement bails out early.
struct PeerGuard(Option<Child>);

impl Drop for PeerGuard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// (d) Our rings between this process and a peer process.
fn shm_processes(
    clock: &quanta::Clock,
    cores: Cores,
    warmup: u64,
    iters: u64,
    peer_exe: Option<PathBuf>,
) -> anyhow::Result<Histogram<u64>> {
    let instance = format!("bench{}-procs", std::process::id());
    let (ping, pong) = ring_pair(&instance)?;
    let mut tx = ping.producer::<RECORD_SIZE>()?;
    let mut rx = pong.consumer::<RECORD_SIZE>()?;
    let exe = match peer_exe {
        Some(p) => p,
        None => std::env::current_exe().context("finding this executable")?,
    };
    let total = warmup + iters;
    let mut cmd = Command::new(&exe);
    cmd.args(["bench", "ring-peer", "--instance", &instance])
        .args(["--count", &total.to_string()])
        .stdin(Stdio::null());
    if let Some((_, b)) = cores.pair {
        cmd.args(["--core", &b.id.to_string()]);
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting peer {}", exe.display()))?;
    let mut guard = PeerGuard(Some(child));

    // The peer attaches on its own time; wait for it before timing anything.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !ping.consumer_status(10_000).is_alive() || !pong.producer_status(10_000).is_alive() {
        if let Some(child) = &mut guard.0 {
            if let Some(status) = child.try_wait()? {
                bail!("peer process exited early with {status}");
            }
        }
        if std::time::Instant::now() > deadline {
            bail!("peer process did not attach to {instance} within 10 s");
        }
        std::thread::sleep(Duration::from_millis(1));
    }

    let hist = std::thread::scope(|s| {
        s.spawn(|| {
            cores.pin_ping();
            measure(clock, warmup, iters, &mut |i| {
                ring_round_trip(&mut tx, &mut rx, &Raw::for_seq(i, 0).encode())
            })
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
    Ok(hist)
}

/// The peer side of row (d): attach to the instance's rings and echo `count` records.
pub fn run_peer(args: &PeerArgs) -> anyhow::Result<()> {
    if let Some(id) = args.core {
        core_affinity::set_for_current(CoreId { id });
    }
    let ping = Ring::open(&RingSpec::new(&args.instance, "ping", 0))?;
    let pong = Ring::open(&RingSpec::new(&args.instance, "pong", 0))?;
    let mut rx = ping.consumer::<RECORD_SIZE>()?;
    let mut tx = pong.producer::<RECORD_SIZE>()?;
    echo(&mut rx, &mut tx, args.count);
    Ok(())
}

/// Runs every row, prints the table and writes the reports. Returns the rows.
pub fn run(args: &RingArgs) -> anyhow::Result<Vec<Row>> {
    let cores = Cores::detect();
    let clock = quanta::Clock::new();
    let (w, n) = (args.warmup, args.iters);
    let mut rows = vec![
        Row {
            key: "cache_line",
            name: "(a) cache line, 2 threads",
            hist: cache_line(&clock, cores, w, n),
        },
        Row {
            key: "crossbeam_array_queue",
            name: "(b) crossbeam ArrayQueue, 2 threads",
            hist: array_queue(&clock, cores, w, n),
        },
        Row {
            key: "shm_ring_threads",
            name: "(c) shm ring, 2 threads",
            hist: shm_threads(&clock, cores, w, n)?,
        },
    ];
    if !args.no_process {
        rows.push(Row {
            key: "shm_ring_processes",
            name: "(d) shm ring, 2 processes",
            hist: shm_processes(&clock, cores, w, n, args.peer_exe.clone())?,
        });
    }
    let (floor, base) = ("cache_line", "crossbeam_array_queue");
    println!("{}", report::table(&rows, floor, base));
    let run = serde_json::json!({
        "bench": "ring",
        "iters": n,
        "warmup": w,
        "pinned": cores.pair.map(|(a, b)| vec![a.id, b.id]),
        "timer": "quanta TSC clock",
        "record": "64-byte wire record (Raw)",
    });
    let summary = report::summary(&rows, floor, base, run);
    report::write(&args.out, &rows, &summary)?;
    println!("wrote {}", args.out.display());
    Ok(rows)
}
