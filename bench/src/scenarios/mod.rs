//! The scenarios of `quantum bench`, each a module that builds its rows ([`Variant`]s).
//!
//! To add one: write `scenarios/<name>.rs` with `pub fn build(ctx: &Ctx) -> Result<Rows>` and
//! give it an entry in [`SCENARIOS`].
//! The suite interleaves, reports and plots it with the others.

pub mod bridge;
pub mod chain;
pub mod exchange;
pub mod ipc;
pub mod journal;
pub mod legacy;
pub mod ring;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use core_affinity::CoreId;

use crate::suite::variant::Variant;
use crate::suite::SuiteArgs;

/// What a scenario's rows share: where the peers come from and which cores to pin to.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The `quantum` executable (peers run as `quantum bench ring-peer` and so on).
    pub exe: PathBuf,
    /// Usable cores, read once before anything is pinned.
    pub cores: Vec<CoreId>,
    /// Whether to pin threads.
    pub pin: bool,
    /// The redis-server executable.
    pub redis_server: PathBuf,
    /// Prefix of the instance names this run creates (unique per process).
    pub tag: String,
    /// The run's output directory (peers' logs go there).
    pub out: PathBuf,
    /// Blocks per row (`--blocks`).
    pub blocks: u32,
    /// Plans of `bridge.isolated` in the whole run (`--isolated-plans`).
    pub isolated_plans: u64,
    /// Time between two plans of `bridge.isolated` (`--isolated-gap-ms`).
    pub isolated_gap: std::time::Duration,
}

impl Ctx {
    /// From the command line.
    pub fn new(args: &SuiteArgs) -> Result<Ctx> {
        let exe = match &args.exe {
            Some(p) => p.clone(),
            None => std::env::current_exe().context("finding this executable")?,
        };
        Ok(Ctx {
            exe,
            cores: core_affinity::get_core_ids().unwrap_or_default(),
            pin: !args.no_pin,
            redis_server: args.redis_server.clone(),
            tag: format!("qb{}", std::process::id()),
            out: args.out.clone(),
            blocks: args.blocks,
            isolated_plans: args.isolated_plans,
            isolated_gap: std::time::Duration::from_millis(args.isolated_gap_ms),
        })
    }

    /// Two distinct cores for the two sides of a ping-pong, when pinning and there are two.
    pub fn pair(&self) -> Option<(CoreId, CoreId)> {
        match (self.pin, self.cores.as_slice()) {
            (true, [a, b, ..]) => Some((*a, *b)),
            _ => None,
        }
    }

    /// The core a single hot thread takes (the last one), when pinning.
    pub fn single(&self) -> Option<CoreId> {
        self.cores.last().copied().filter(|_| self.pin)
    }

    /// One line for the summary.
    pub fn pinning_note(&self) -> String {
        match self.pair() {
            Some((a, b)) => format!(
                "ping-pong sides on cores {} and {}; single-thread rows on core {}",
                a.id,
                b.id,
                self.cores.last().map_or(0, |c| c.id)
            ),
            None if !self.pin => "pinning disabled".to_owned(),
            None => format!("{} usable core(s): unpinned", self.cores.len()),
        }
    }
}

/// Pins the calling thread to `core`, if any.
pub fn pin(core: Option<CoreId>) {
    if let Some(c) = core {
        core_affinity::set_for_current(c);
    }
}

/// Runs `f(me)` on a scoped thread pinned to `core` (when given) and returns its result: a
/// single-thread row measures on its core whatever thread the suite runs on.
pub fn on_core<T: Send, R: Send>(
    core: Option<CoreId>,
    me: &mut T,
    f: impl FnOnce(&mut T) -> R + Send,
) -> R {
    std::thread::scope(|s| {
        s.spawn(|| {
            pin(core);
            f(me)
        })
        .join()
        .expect("a pinned row thread panicked")
    })
}

/// A scenario's rows, set up and ready to measure.
pub type Rows = Vec<Box<dyn Variant>>;

/// One scenario.
#[derive(Clone, Copy)]
pub struct ScenarioDef {
    /// Its name on the command line.
    pub name: &'static str,
    /// Builds its rows.
    pub build: fn(&Ctx) -> Result<Rows>,
}

/// Every scenario, in the order `all` runs them.
pub const SCENARIOS: [ScenarioDef; 7] = [
    ScenarioDef {
        name: "ring",
        build: ring::build,
    },
    ScenarioDef {
        name: "chain",
        build: chain::build,
    },
    ScenarioDef {
        name: "ipc",
        build: ipc::build,
    },
    ScenarioDef {
        name: "legacy",
        build: legacy::build,
    },
    ScenarioDef {
        name: "bridge",
        build: bridge::build,
    },
    ScenarioDef {
        name: "journal",
        build: journal::build,
    },
    ScenarioDef {
        name: "exchange",
        build: exchange::build,
    },
];

/// The scenarios `name` stands for (`all`: every one, in order); an unknown name is an error.
pub fn select(name: &str) -> Result<Vec<ScenarioDef>> {
    let picked: Vec<ScenarioDef> = SCENARIOS
        .into_iter()
        .filter(|d| name == "all" || d.name == name)
        .collect();
    if picked.is_empty() {
        let names: Vec<&str> = SCENARIOS.iter().map(|d| d.name).collect();
        bail!(
            "unknown scenario {name:?} (one of: {}, all)",
            names.join(", ")
        );
    }
    Ok(picked)
}
