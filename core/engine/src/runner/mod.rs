//! Places the stages on threads: `single` (one thread runs the chain per plan), `pipelined`
//! (front = ingest + apply + commands, governor, P3.3, each on its own thread, meeting in the
//! permit table) or `inline` (no engine thread: the caller's thread runs the chain, [`inline`]).
//!
//! Threads are pinned with `core_affinity` when there are more usable cores than engine threads
//! (one core is left to the caller's feeder); otherwise they run unpinned and
//! [`Placement::note`] says so. Inputs and events cross through bounded lock-free queues; a
//! full event queue back-pressures the engine, nothing is dropped.

mod inline;

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;

use crate::config::PermitSource;
use crate::engine::{Engine, Front, Input, Shared};
use crate::event::Event;
use crate::permit::SlotRef;
use crate::types::{Plan, StageMarks};
use quantum_ipc::idle::{Idle, IdlePolicy, Wake};

/// Thread layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One thread runs ingest → governor → P3.3 → apply per plan.
    Single,
    /// Governor, P3.3 and front on their own threads.
    Pipelined,
    /// No engine thread: the caller's thread runs the chain when it sends an input and
    /// re-checks waiting plans when it looks for events (the daemon's I/O thread does both).
    Inline,
}

impl Mode {
    /// Its name in configs and logs.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Single => "single",
            Mode::Pipelined => "pipelined",
            Mode::Inline => "inline",
        }
    }

    /// Threads the layout runs beside the caller's.
    pub fn engine_threads(self) -> usize {
        match self {
            Mode::Single => 1,
            Mode::Pipelined => 3,
            Mode::Inline => 0,
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "single" => Ok(Mode::Single),
            "pipelined" => Ok(Mode::Pipelined),
            "inline" => Ok(Mode::Inline),
            _ => Err(format!(
                "unknown mode {s:?} (expected single, pipelined or inline)"
            )),
        }
    }
}

/// Runner settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunnerConfig {
    /// Thread layout.
    pub mode: Mode,
    /// Busy-spin when idle (opt-in).
    pub spin: bool,
    /// Pin threads when cores allow.
    pub pin: bool,
    /// Input queue capacity.
    pub input_capacity: usize,
    /// Event queue capacity.
    pub output_capacity: usize,
    /// Longest park (legacy `APPLY_PERMIT_STEP_MS`).
    pub max_park: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            mode: Mode::Single,
            spin: false,
            pin: true,
            input_capacity: 1 << 14,
            output_capacity: 1 << 14,
            max_park: Duration::from_millis(100),
        }
    }
}

/// Where the engine threads run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Per engine thread: its name and the core it is pinned to, if any.
    pub threads: Vec<(String, Option<usize>)>,
    /// The core left to the caller (feeder, adapter I/O) when the engine threads are pinned;
    /// the caller may pin itself there with [`pin_current_thread`].
    pub caller: Option<usize>,
    /// One line for the log.
    pub note: String,
}

impl Placement {
    /// Decides pinning for `names`, reading the usable cores once (core_affinity reports the
    /// calling thread's own mask, so call this before pinning anything).
    pub fn plan(names: &[&str], pin: bool) -> Placement {
        let cores = if pin {
            core_affinity::get_core_ids().unwrap_or_default()
        } else {
            Vec::new()
        };
        let n = names.len();
        if pin && cores.len() > n {
            // Leave the first core to the caller (feeder, adapters, the OS).
            let threads = names
                .iter()
                .zip(cores[cores.len() - n..].iter())
                .map(|(name, c)| (name.to_string(), Some(c.id)))
                .collect::<Vec<_>>();
            let list: Vec<String> = threads
                .iter()
                .map(|(t, c)| format!("{t}→core {}", c.unwrap_or(0)))
                .collect();
            Placement {
                note: format!("pinned: {}, caller→core {}", list.join(", "), cores[0].id),
                threads,
                caller: Some(cores[0].id),
            }
        } else {
            let why = if pin {
                format!(
                    "{n} engine thread(s) need {} cores (one kept for the feeder) but {} usable: running unpinned",
                    n + 1,
                    cores.len()
                )
            } else {
                "pinning disabled: running unpinned".to_string()
            };
            Placement {
                threads: names.iter().map(|t| (t.to_string(), None)).collect(),
                caller: None,
                note: why,
            }
        }
    }
}

/// Cores this process may run on (its affinity mask), at least 1.
pub fn usable_cores() -> usize {
    core_affinity::get_core_ids().map_or(1, |c| c.len().max(1))
}

/// Pins the calling thread to `core` (nothing when `None`); false if the OS refused.
pub fn pin_current_thread(core: Option<usize>) -> bool {
    match core {
        Some(id) => core_affinity::set_for_current(core_affinity::CoreId { id }),
        None => true,
    }
}

fn pin_current(core: Option<usize>) {
    pin_current_thread(core);
}

/// What the engine threads hand the caller, in order.
enum Out {
    Event(Event),
    /// Every input up to this count (since start) is handled, and its events are ahead of
    /// this marker in the queue.
    Done(u64),
}

/// A marker goes out after this many inputs at the latest (and whenever the input queue is
/// drained), so the caller learns promptly which inputs are wholly handled.
const DONE_EVERY: u64 = 64;

struct Channels {
    /// Inputs with the index of the ring they came from.
    input: ArrayQueue<(u8, Input)>,
    output: ArrayQueue<Out>,
    stop: AtomicBool,
    /// Wakes the thread that reads `input` (the single thread or the front).
    front_wake: Wake,
    /// Wakes whoever waits for room in `output` or for results: the caller.
    caller_wake: Wake,
}

/// A running engine.
pub struct Runner {
    ch: Arc<Channels>,
    threads: Vec<JoinHandle<()>>,
    placement: Placement,
    shared: Shared,
    idle: IdlePolicy,
    /// The highest `Out::Done` taken so far (see [`Runner::inputs_done`]).
    done: std::sync::atomic::AtomicU64,
    /// [`Mode::Inline`]: the engine, run by the caller's thread.
    inline: Option<RefCell<inline::Inline>>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("placement", &self.placement)
            .finish()
    }
}

/// Pushes an event, backing off (never dropping) while the queue is full.
fn emit(ch: &Channels, idle: &mut Idle, r: Event) {
    push_out(ch, idle, Out::Event(r));
}

/// Tells the caller that the first `n` inputs are handled.
fn mark_done(ch: &Channels, policy: IdlePolicy, n: u64) {
    push_out(ch, &mut Idle::new(policy), Out::Done(n));
}

fn push_out(ch: &Channels, idle: &mut Idle, r: Out) {
    let mut r = r;
    loop {
        match ch.output.push(r) {
            Ok(()) => {
                ch.caller_wake.wake();
                idle.reset();
                return;
            }
            Err(back) => {
                r = back;
                ch.caller_wake.wake();
                idle.idle(&ch.front_wake, None, || !ch.output.is_full());
            }
        }
    }
}

impl Runner {
    /// Starts `engine`'s threads.
    pub fn start(engine: Engine, cfg: RunnerConfig) -> Runner {
        let ch = Arc::new(Channels {
            input: ArrayQueue::new(cfg.input_capacity.max(1)),
            output: ArrayQueue::new(cfg.output_capacity.max(1)),
            stop: AtomicBool::new(false),
            front_wake: Wake::default(),
            caller_wake: Wake::default(),
        });
        let idle = IdlePolicy {
            spin: cfg.spin,
            max_park: cfg.max_park,
        };
        let shared = engine.shared().clone();
        if cfg.mode == Mode::Inline {
            return Runner::start_inline(engine, cfg, ch, shared, idle);
        }
        let (placement, threads) = match cfg.mode {
            Mode::Single => {
                let placement = Placement::plan(&["engine"], cfg.pin);
                let core = placement.threads[0].1;
                let ch2 = ch.clone();
                let t = thread::Builder::new()
                    .name("quantum-engine".into())
                    .spawn(move || {
                        pin_current(core);
                        single_loop(engine, &ch2, idle)
                    })
                    .expect("spawn engine thread");
                (placement, vec![t])
            }
            Mode::Pipelined => start_pipelined(engine, &ch, cfg, idle),
            Mode::Inline => unreachable!("started above"),
        };
        Runner {
            ch,
            threads,
            placement,
            shared,
            idle,
            done: std::sync::atomic::AtomicU64::new(0),
            inline: None,
        }
    }

    /// [`Mode::Inline`]: no thread; the calling thread, which will run the engine, is pinned
    /// when the placement gives it a core.
    fn start_inline(
        engine: Engine,
        cfg: RunnerConfig,
        ch: Arc<Channels>,
        shared: Shared,
        idle: IdlePolicy,
    ) -> Runner {
        let mut placement = Placement::plan(&["io+engine"], cfg.pin);
        let core = placement.threads[0].1;
        if core.is_some() && pin_current_thread(core) {
            placement.note = format!(
                "inline: the calling thread runs the engine, pinned to core {}; core {} left to the others",
                core.unwrap_or(0),
                placement.caller.unwrap_or(0)
            );
        } else {
            placement.threads[0].1 = None;
            placement.note = format!(
                "inline: the calling thread runs the engine; {}",
                placement.note
            );
        }
        Runner {
            ch,
            threads: Vec::new(),
            placement,
            shared,
            idle,
            done: std::sync::atomic::AtomicU64::new(0),
            inline: Some(RefCell::new(inline::Inline::new(
                engine,
                cfg.output_capacity,
            ))),
        }
    }

    /// How many inputs (in the order they were sent) the engine has wholly handled, as far as
    /// the events taken so far show: every event of those inputs has been returned by
    /// [`Runner::try_recv`] / [`Runner::recv_timeout`] already. A caller that must not
    /// acknowledge an input before its events are safe (the daemon's journal) acknowledges up
    /// to this count.
    pub fn inputs_done(&self) -> u64 {
        if let Some(i) = &self.inline {
            return i.borrow().inputs_done();
        }
        // Relaxed: written and read by the one caller thread that takes events.
        self.done.load(Ordering::Relaxed)
    }

    /// The layout this runner runs.
    pub fn mode(&self) -> Mode {
        match (&self.inline, self.threads.len()) {
            (Some(_), _) => Mode::Inline,
            (None, 1) => Mode::Single,
            (None, _) => Mode::Pipelined,
        }
    }

    /// Takes the next event, noting the markers passed on the way.
    fn take(&self) -> Option<Event> {
        if let Some(i) = &self.inline {
            return i.borrow_mut().take();
        }
        loop {
            match self.ch.output.pop()? {
                Out::Event(e) => return Some(e),
                Out::Done(n) => self.done.store(n, Ordering::Relaxed),
            }
        }
    }

    /// Where the threads run.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// Shared engine state.
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Offers an input that came on ring `ring` (named in a refusal); hands it back when the
    /// queue is full.
    pub fn try_send(&self, input: Input, ring: u8) -> Result<(), Input> {
        if let Some(i) = &self.inline {
            return i.borrow_mut().send(input, ring);
        }
        let r = self.ch.input.push((ring, input)).map_err(|(_, i)| i);
        if r.is_ok() {
            self.ch.front_wake.wake();
        }
        r
    }

    /// Takes one event, if any.
    pub fn try_recv(&self) -> Option<Event> {
        self.take()
    }

    /// Blocks (with bounded backoff) until an event is there or `timeout` passes.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        if let Some(i) = &self.inline {
            return self.inline_wait(i, timeout, true);
        }
        self.ch.caller_wake.register();
        let end = std::time::Instant::now() + timeout;
        let mut idle = Idle::new(self.idle);
        loop {
            if let Some(r) = self.take() {
                return Some(r);
            }
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            idle.idle(&self.ch.caller_wake, Some(left), || {
                !self.ch.output.is_empty()
            });
        }
    }

    /// The doorbell the engine rings when it hands the caller an event, for a caller that
    /// sleeps on it together with other doorbells (`quantum_ipc::doorbell::wait_any`); `None`
    /// inline, where the caller is the engine.
    pub fn caller_bell(&self) -> Option<quantum_ipc::doorbell::Bell<'_>> {
        self.inline.is_none().then(|| self.ch.caller_wake.bell())
    }

    /// An event waits to be taken.
    pub fn has_output(&self) -> bool {
        match &self.inline {
            Some(i) => i.borrow().has_events(),
            None => !self.ch.output.is_empty(),
        }
    }

    /// Inline: how long until the engine must look at its waiting plans again (their
    /// earliest deadline); `None` when nothing waits, or when engine threads keep the time.
    pub fn due_in(&self) -> Option<Duration> {
        self.inline.as_ref().and_then(|i| i.borrow().next_wait())
    }

    /// Registers the calling thread as the one woken when results arrive.
    pub fn register_caller(&self) {
        self.ch.caller_wake.register();
    }

    /// Waits (bounded) until there is room in the input queue or a result to take.
    pub fn wait_for_room(&self, limit: Duration) {
        if let Some(i) = &self.inline {
            // The table frees slots only as waiting plans resolve: wait for the next one.
            // Without `take` it returns once something resolved; the events stay queued.
            let _ = self.inline_wait(i, limit, false);
            return;
        }
        self.ch.caller_wake.register();
        let mut idle = Idle::new(self.idle);
        let end = std::time::Instant::now() + limit;
        while self.ch.input.is_full() && self.ch.output.is_empty() {
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            idle.idle(&self.ch.caller_wake, Some(left), || {
                !self.ch.input.is_full() || !self.ch.output.is_empty()
            });
        }
    }

    /// Depth of the input queue.
    pub fn input_len(&self) -> usize {
        self.ch.input.len()
    }

    /// Inline: re-checks the waiting plans until an event is there (taken when `take`), idling
    /// (by the runner's policy) until the earliest deadline, at most `timeout`.
    fn inline_wait(
        &self,
        i: &RefCell<inline::Inline>,
        timeout: Duration,
        take: bool,
    ) -> Option<Event> {
        let end = std::time::Instant::now() + timeout;
        let mut idle = Idle::new(self.idle);
        let nobody = Wake::default();
        loop {
            {
                let mut i = i.borrow_mut();
                if take {
                    if let Some(e) = i.take() {
                        return Some(e);
                    }
                } else if i.poll() > 0 || i.has_events() {
                    return None;
                }
            }
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            let wait = i.borrow().next_wait().map_or(left, |d| d.min(left));
            if wait.is_zero() {
                continue;
            }
            // Nobody can wake this thread (it is the engine): the idle steps bound the wait.
            idle.idle(&nobody, Some(wait), || false);
        }
    }

    /// Stops after the engine has taken every queued input and resolved every waiting plan,
    /// handing each remaining event to `out`. Returns [`Runner::inputs_done`] at the end.
    pub fn shutdown(mut self, out: &mut impl FnMut(Event)) -> u64 {
        if let Some(i) = self.inline.take() {
            let mut i = i.into_inner();
            loop {
                while let Some(e) = i.take() {
                    out(e);
                }
                if i.pending() == 0 {
                    return i.inputs_done();
                }
                let wait = i.next_wait().unwrap_or(Duration::from_millis(1));
                thread::sleep(wait.min(Duration::from_millis(10)));
            }
        }
        self.ch.stop.store(true, Ordering::Release);
        self.ch.front_wake.wake();
        for t in std::mem::take(&mut self.threads) {
            while !t.is_finished() {
                while let Some(r) = self.take() {
                    out(r);
                }
                thread::sleep(Duration::from_micros(200));
            }
            let _ = t.join();
        }
        while let Some(r) = self.take() {
            out(r);
        }
        self.inputs_done()
    }
}

fn single_loop(mut engine: Engine, ch: &Channels, policy: IdlePolicy) {
    ch.front_wake.register();
    let mut idle = Idle::new(policy);
    let mut held: Option<Plan> = None;
    let (mut handled, mut marked) = (0u64, 0u64);
    loop {
        let mut worked = false;
        // A plan refused for a full table is retried before any newer input, keeping order.
        if let Some(p) = held.take() {
            let mut sink = |r| emit(ch, &mut Idle::new(policy), r);
            if let Err(p) = engine.process_plan(p, &mut sink) {
                held = Some(p);
            } else {
                worked = true;
                handled += 1;
            }
        }
        while held.is_none() {
            let Some((ring, input)) = ch.input.pop() else {
                break;
            };
            worked = true;
            let mut sink = |r| emit(ch, &mut Idle::new(policy), r);
            if let Err(p) = engine.handle(input, ring, &mut sink) {
                held = Some(p);
            } else {
                handled += 1;
                if handled - marked >= DONE_EVERY {
                    mark_done(ch, policy, handled);
                    marked = handled;
                }
            }
        }
        if handled != marked {
            mark_done(ch, policy, handled);
            marked = handled;
        }
        let mut sink = |r| emit(ch, &mut Idle::new(policy), r);
        if engine.poll(&mut sink) > 0 {
            worked = true;
        }
        if worked {
            idle.reset();
            continue;
        }
        if rest_or_stop(ch, &engine.front, &mut idle, held.is_some()) {
            return;
        }
    }
}

/// A round without work: returns true when asked to stop and everything is drained; otherwise
/// idles until new input, a hand-over wake-up or the earliest pending deadline.
fn rest_or_stop(ch: &Channels, front: &Front, idle: &mut Idle, holding: bool) -> bool {
    if ch.stop.load(Ordering::Acquire)
        && ch.input.is_empty()
        && !holding
        && front.apply.pending() == 0
    {
        return true;
    }
    let limit = front
        .apply
        .next_deadline()
        .map(|d| Duration::from_nanos(d.saturating_sub(front.clock().now_ns())));
    idle.idle(&ch.front_wake, limit, || !ch.input.is_empty());
    false
}

/// A plan handed to the governor or P3.3 thread.
type Job = (SlotRef, Plan, u64);

struct StageQueue {
    jobs: ArrayQueue<Job>,
    wake: Wake,
    /// Jobs this stage has judged (its permit issued): the front waits for it to reach what
    /// it dispatched before it changes the book ([`wait_judged`]).
    judged: AtomicU64,
}

fn start_pipelined(
    engine: Engine,
    ch: &Arc<Channels>,
    cfg: RunnerConfig,
    policy: IdlePolicy,
) -> (Placement, Vec<JoinHandle<()>>) {
    let placement = Placement::plan(&["front", "governor", "p33"], cfg.pin);
    let cores: Vec<Option<usize>> = placement.threads.iter().map(|t| t.1).collect();
    let (front, governor, mut p33, shared, permits) = engine.into_parts();
    // Outside permits: the core's governor and P3.3 issue nothing (their threads idle).
    let core_permits = permits == PermitSource::Core;
    let cap = shared.table.capacity();
    let gov_q = Arc::new(StageQueue {
        jobs: ArrayQueue::new(cap),
        wake: Wake::default(),
        judged: AtomicU64::new(0),
    });
    let p33_q = Arc::new(StageQueue {
        jobs: ArrayQueue::new(cap),
        wake: Wake::default(),
        judged: AtomicU64::new(0),
    });
    let done = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();

    let stage = |name: &str,
                 q: Arc<StageQueue>,
                 core: Option<usize>,
                 mut f: Box<dyn FnMut(&Job) + Send>| {
        let ch = ch.clone();
        let done = done.clone();
        thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                pin_current(core);
                q.wake.register();
                let mut idle = Idle::new(policy);
                loop {
                    if let Some(job) = q.jobs.pop() {
                        f(&job);
                        // Release: every read of the book and the governor's state this job
                        // made happens before the front's Acquire load in `wait_judged` sees
                        // the count, so no change the front makes after it is seen here.
                        q.judged.fetch_add(1, Ordering::Release);
                        // The permit is published: let apply look at it now.
                        ch.front_wake.wake();
                        idle.reset();
                        continue;
                    }
                    if done.load(Ordering::Acquire) && q.jobs.is_empty() {
                        return;
                    }
                    idle.idle(&q.wake, None, || !q.jobs.is_empty());
                }
            })
            .expect("spawn stage thread")
    };
    let table = shared.table.clone();
    let clock = front.clock().clone();
    threads.push(stage(
        "quantum-governor",
        gov_q.clone(),
        cores[1],
        Box::new(move |(r, plan, _)| {
            table.issue_gov(*r, governor.evaluate(plan, clock.now_ns()));
        }),
    ));
    let table = shared.table.clone();
    let clock = front.clock().clone();
    threads.push(stage(
        "quantum-p33",
        p33_q.clone(),
        cores[2],
        Box::new(move |(r, plan, _)| {
            p33.issue(&table, *r, plan, clock.now_ns());
        }),
    ));
    let ch2 = ch.clone();
    let front_core = cores[0];
    threads.push(
        thread::Builder::new()
            .name("quantum-front".into())
            .spawn(move || {
                pin_current(front_core);
                front_loop(front, &ch2, &gov_q, &p33_q, policy, core_permits);
                done.store(true, Ordering::Release);
                gov_q.wake.wake();
                p33_q.wake.wake();
            })
            .expect("spawn front thread"),
    );
    // Join order: the front finishes first (it drains), then the stages see `done`.
    threads.rotate_right(1);
    (placement, threads)
}

fn dispatch(q: &StageQueue, job: Job, policy: IdlePolicy) {
    let mut job = job;
    let mut idle = Idle::new(policy);
    // Each queue holds as many jobs as the table has slots and a job exists only for an open
    // slot, so this loop ends at once; it is here for safety, not flow control.
    while let Err(back) = q.jobs.push(job) {
        job = back;
        q.wake.wake();
        idle.idle(&Wake::default(), Some(Duration::from_micros(50)), || false);
    }
    q.wake.wake();
}

/// Before the front applies anything but a plan (a command, an order report, a history, a
/// re-attach, a lead), both stages have judged every plan it dispatched. So a verdict never
/// sees a change journaled after its plan was accepted: the journal's order is the order the
/// verdicts saw, and a replay in that order judges as the stages did ([`crate::replay`]).
/// The wait is one pipeline's depth, and only when a plan is still being judged.
fn wait_judged(
    ch: &Channels,
    gov_q: &StageQueue,
    p33_q: &StageQueue,
    dispatched: u64,
    policy: IdlePolicy,
) {
    // Acquire: pairs with each stage's Release increment after its job (see the stage loop).
    let judged = || {
        gov_q.judged.load(Ordering::Acquire) >= dispatched
            && p33_q.judged.load(Ordering::Acquire) >= dispatched
    };
    let mut idle = Idle::new(policy);
    while !judged() {
        idle.idle(&ch.front_wake, Some(Duration::from_micros(50)), judged);
    }
}

fn front_loop(
    mut front: Front,
    ch: &Channels,
    gov_q: &StageQueue,
    p33_q: &StageQueue,
    policy: IdlePolicy,
    core_permits: bool,
) {
    ch.front_wake.register();
    let mut idle = Idle::new(policy);
    let mut held: Option<Plan> = None;
    let (mut handled, mut marked) = (0u64, 0u64);
    let mut dispatched = 0u64;
    loop {
        let mut worked = false;
        loop {
            if handled - marked >= DONE_EVERY {
                mark_done(ch, policy, handled);
                marked = handled;
            }
            let (ring, input) = match held.take() {
                Some(p) => (u8::MAX, Input::Plan(p)),
                None => match ch.input.pop() {
                    Some(i) => i,
                    None => break,
                },
            };
            worked = true;
            let mut sink = |r| emit(ch, &mut Idle::new(policy), r);
            match input {
                Input::Plan(plan) => {
                    let t_in = front.clock().now_ns();
                    match front.admit(plan, t_in, &mut sink) {
                        Ok(Some(r)) => {
                            if core_permits {
                                dispatch(gov_q, (r, plan, t_in), policy);
                                dispatch(p33_q, (r, plan, t_in), policy);
                                dispatched += 1;
                            }
                            let marks = front.sample().then(StageMarks::default);
                            front.submit(r, plan, t_in, marks, &mut sink);
                            handled += 1;
                        }
                        Ok(None) => handled += 1,
                        Err(p) => {
                            held = Some(p);
                            break;
                        }
                    }
                    front.tidy(t_in);
                }
                other => {
                    wait_judged(ch, gov_q, p33_q, dispatched, policy);
                    front.handle(other, ring, &mut sink);
                    handled += 1;
                }
            }
        }
        if handled != marked {
            mark_done(ch, policy, handled);
            marked = handled;
        }
        let mut sink = |r| emit(ch, &mut Idle::new(policy), r);
        if front.poll(&mut sink) > 0 {
            worked = true;
        }
        if worked {
            idle.reset();
            continue;
        }
        if rest_or_stop(ch, &front, &mut idle, held.is_some()) {
            return;
        }
    }
}
