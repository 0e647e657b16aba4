//! The arrows between the workspace's crates (`docs/architecture.md`, "Crates and the rules
//! between them"), checked on the dependency graph cargo resolves: a change that needs a
//! forbidden arrow fails here instead of drifting in.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// The resolved graph: package name → its normal (shipped) dependencies, and → every
/// dependency of any kind; and the features enabled per package.
struct Graph {
    normal: BTreeMap<String, BTreeSet<String>>,
    any: BTreeMap<String, BTreeSet<String>>,
    features: BTreeMap<String, BTreeSet<String>>,
    members: BTreeSet<String>,
}

fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc).arg("-vV").output().expect("rustc -vV");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .trim()
        .to_owned()
}

fn graph() -> Graph {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--manifest-path",
            manifest,
        ])
        .args(["--filter-platform", &host_triple()])
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let name_of: BTreeMap<String, String> = m["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_owned(),
                p["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let members = m["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| name_of[id.as_str().unwrap()].clone())
        .collect();
    let mut g = Graph {
        normal: BTreeMap::new(),
        any: BTreeMap::new(),
        features: BTreeMap::new(),
        members,
    };
    for node in m["resolve"]["nodes"].as_array().unwrap() {
        let name = name_of[node["id"].as_str().unwrap()].clone();
        let feats = node["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_owned())
            .collect();
        g.features.insert(name.clone(), feats);
        for dep in node["deps"].as_array().unwrap() {
            let dep_name = name_of[dep["pkg"].as_str().unwrap()].clone();
            g.any
                .entry(name.clone())
                .or_default()
                .insert(dep_name.clone());
            // Shipped: a normal dependency, on any target but the loom model checker's.
            let shipped = dep["dep_kinds"].as_array().unwrap().iter().any(|k| {
                k["kind"].is_null() && k["target"].as_str().is_none_or(|t| !t.contains("loom"))
            });
            if shipped {
                g.normal.entry(name.clone()).or_default().insert(dep_name);
            }
        }
    }
    g
}

impl Graph {
    /// The workspace crates `of` depends on directly (normal dependencies).
    fn ours(&self, of: &str) -> BTreeSet<String> {
        self.normal
            .get(of)
            .into_iter()
            .flatten()
            .filter(|d| self.members.contains(*d))
            .cloned()
            .collect()
    }

    /// Everything compiled into `of` (normal dependencies, transitively).
    fn closure(&self, of: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![of.to_owned()];
        while let Some(p) = todo.pop() {
            for d in self.normal.get(&p).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen
    }

    /// The packages that depend on `on` in any way (normal, dev or build).
    fn dependents(&self, on: &str) -> BTreeSet<String> {
        self.any
            .iter()
            .filter(|(_, deps)| deps.contains(on))
            .map(|(p, _)| p.clone())
            .collect()
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn every_crate_depends_only_on_the_crates_its_layer_allows() {
    let g = graph();
    let allowed: &[(&str, &[&str])] = &[
        ("quantum-ipc", &[]),
        ("quantum-core", &["quantum-ipc"]),
        ("quantum-daemon", &["quantum-core", "quantum-ipc"]),
        ("quantum-binance", &["quantum-core", "quantum-ipc"]),
        ("quantum-redis", &["quantum-core", "quantum-ipc"]),
        ("quantum-binance-sim", &[]),
        ("quantum-plan-feed", &["quantum-core"]),
        ("quantum-local-redis", &["quantum-redis"]),
    ];
    for (krate, may) in allowed {
        if !g.members.contains(*krate) {
            panic!("{krate} is not a workspace member any more: update this table and docs/architecture.md");
        }
        let extra: Vec<_> = g.ours(krate).difference(&set(may)).cloned().collect();
        assert!(
            extra.is_empty(),
            "{krate} depends on {extra:?}, an arrow docs/architecture.md forbids"
        );
    }
}

#[test]
fn the_core_and_its_daemon_hold_no_async_runtime_and_no_network_client() {
    let g = graph();
    for krate in ["quantum-core", "quantum-daemon", "quantum-ipc"] {
        let closure = g.closure(krate);
        for banned in ["tokio", "redis", "reqwest", "hyper", "axum"] {
            assert!(
                !closure.contains(banned),
                "{krate} compiles in {banned}: the core process does no network I/O"
            );
        }
    }
}

#[test]
fn only_the_bench_command_depends_on_the_benchmarks() {
    let g = graph();
    assert_eq!(g.dependents("quantum-bench"), set(&["quantum"]));
}

#[test]
fn the_shipped_binary_holds_no_test_support() {
    let g = graph();
    let shipped = g.closure("quantum");
    assert!(
        !shipped.contains("tempfile"),
        "tempfile is compiled into the quantum binary"
    );
    for p in shipped.iter().filter(|p| g.members.contains(*p)) {
        let feats = &g.features[p];
        assert!(
            !feats.iter().any(|f| f.contains("test")),
            "{p} is built into the quantum binary with {feats:?}"
        );
    }
}
