//! After warm-up, 100k plans through the engine allocate nothing.
//!
//! A counting global allocator counts allocations made by the test thread while counting is
//! on; the engine runs on that thread (single mode, no runner), so any allocation on the plan
//! path shows up.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

mod support;

use quantum_core::event::Event;
use quantum_core::orders::{Failure, OrderInput};
use quantum_core::{Action, Clock, Decision, Engine, EngineConfig, Input, Plan, PlanId};
use quantum_ipc::codes::FailKind;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only an
// atomic and a const-initialised thread-local, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours, passed through.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: `ptr` came from `System` with `layout`; the new size is the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn the_plan_path_does_not_allocate() {
    let mut e = support::stocked(EngineConfig::default(), Clock::new());
    let syms: Vec<_> = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
        .iter()
        .map(|n| support::sym(&e, n))
        .collect();
    let mut executed = 0u64;
    let mut blocked = 0u64;
    let mut step = |e: &mut Engine, i: u64| {
        let s = syms[(i % 3) as usize];
        let decision = [
            Decision::Execute,
            Decision::Execute,
            Decision::Hold,
            Decision::Reduce,
        ][(i % 4) as usize];
        // Every 10th plan re-sends an earlier id: the duplicate path too.
        let id = if i % 10 == 9 {
            PlanId(i - 5)
        } else {
            PlanId(i)
        };
        let plan = Plan::exit(id, s, decision, Action::Partial25);
        let mut intent = None;
        e.process_plan(plan, &mut |ev| match ev {
            Event::OrderIntent(o) => intent = Some(o),
            Event::PlanResult(r) if r.executed() => executed += 1,
            Event::PlanResult(r) if r.error().is_some() => blocked += 1,
            _ => {}
        })
        .unwrap();
        // The exchange rejects the order, so the quantity is released for later plans.
        if let Some(o) = intent {
            let reject = OrderInput::Failed(Failure {
                plan: o.plan,
                symbol: o.symbol,
                kind: FailKind::Rejected,
                reason: 1,
                exchange_code: -2022,
                at_ms: 0,
            });
            e.handle(Input::Order(reject), support::RING, &mut |_| {})
                .unwrap();
        }
        e.poll(&mut |_| {});
    };
    let warm = 80_000;
    for i in 0..warm {
        step(&mut e, i);
    }
    COUNTING.with(|c| c.set(true));
    for i in warm..warm + 100_000 {
        step(&mut e, i);
    }
    COUNTING.with(|c| c.set(false));
    assert_eq!(
        ALLOCS.load(Ordering::Relaxed),
        0,
        "allocations on the plan path"
    );
    assert!(executed > 40_000, "executed {executed}");
    assert!(blocked > 0);
}
