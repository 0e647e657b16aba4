//! The monitoring files of `deploy/`: the Grafana dashboard (`deploy/grafana/quantum.json`),
//! the Prometheus alert rules (`deploy/prometheus/quantum-alerts.yml`) and their unit tests
//! (`quantum-alerts.test.yml`).
//!
//! - `promtool check rules` and `promtool test rules` pass. Where promtool is not on PATH the
//!   test says SKIPPED, except under `CI=true`, where .ci/run installs it and its absence fails.
//! - Every expression parses as PromQL (promql-parser; the dashboard's with each value of its
//!   variables).
//! - Every `quantum_*` series they name is one that `quantum ctl metrics --once` serves for a
//!   real daemon (with failover on, so the lease's series are there too), and every label value
//!   they match (`ring="orders"`, `quantile="0.99"`) is one it serves; the series a bare daemon
//!   does not serve are listed once, in [`NOT_FROM_A_BARE_DAEMON`], each with its reason.
//! - Every alert has a unit-test case where it fires and one where it does not.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{bin, Instance};
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{self, Expr, VectorSelector};
use promql_parser::util::{walk_expr, ExprVisitor};
use quantum_ipc::lease::{boot_ns, Lease, LeaseRole, LeaseWriter};
use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

/// Series the dashboard and the rules name that a daemon on its own does not serve, and why.
/// Each must be named by them, and none may be served by this test's daemon: when the daemon
/// starts serving one, it must leave this list (and is then checked like every other).
const NOT_FROM_A_BARE_DAEMON: &[(&str, &str)] = &[
    // The daemon's time of every decision, by outcome (ring pop → result published).
    (
        "quantum_latency_decision_seconds",
        "the daemon's decision latency by outcome, being added on issue 20",
    ),
    // The Redis bridge's legs: from its own segment, only while a Redis bridge runs.
    (
        "quantum_latency_redis_entry_result_seconds",
        "the Redis bridge's segment",
    ),
    (
        "quantum_latency_redis_entry_permits_seconds",
        "the Redis bridge's segment",
    ),
    (
        "quantum_latency_redis_plan_result_seconds",
        "the Redis bridge's segment",
    ),
    (
        "quantum_latency_redis_read_result_seconds",
        "the Redis bridge's segment",
    ),
    // The Binance bridge's legs, per transport: from its own segment.
    (
        "quantum_latency_exchange_send_seconds",
        "the Binance bridge's segment",
    ),
    (
        "quantum_latency_exchange_ack_seconds",
        "the Binance bridge's segment",
    ),
    (
        "quantum_latency_exchange_fill_seconds",
        "the Binance bridge's segment",
    ),
    (
        "quantum_latency_exchange_intent_ack_seconds",
        "the Binance bridge's segment",
    ),
    // The daemon publishes `latency.p33.<pct>_ns`, but the exporter's naming rule reads the
    // stage name `p33` as a quantile (0.33) and serves `quantum_latency_<pct>_seconds`.
    (
        "quantum_latency_p33_seconds",
        "ctl metrics names the p33 stage's gauges quantum_latency_<pct>_seconds{quantile=\"0.33\"}",
    ),
];

/// Labels Prometheus adds to every scraped series: never in the exposition.
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn rules_path() -> PathBuf {
    deploy().join("prometheus/quantum-alerts.yml")
}

fn rules_test_path() -> PathBuf {
    deploy().join("prometheus/quantum-alerts.test.yml")
}

fn dashboard_path() -> PathBuf {
    deploy().join("grafana/quantum.json")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(path: &Path) -> Yaml {
    let mut docs = YamlLoader::load_from_str(&read(path))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(docs.len(), 1, "{}: one YAML document", path.display());
    docs.remove(0)
}

fn list(y: &Yaml) -> &[Yaml] {
    y.as_vec().map(Vec::as_slice).unwrap_or(&[])
}

/// One alerting or recording rule.
struct Rule {
    /// Its `alert` (or `record`) name.
    name: String,
    expr: String,
    alert: bool,
}

fn rules() -> Vec<Rule> {
    let doc = yaml(&rules_path());
    let mut out = Vec::new();
    for group in list(&doc["groups"]) {
        for r in list(&group["rules"]) {
            let expr = r["expr"].as_str().expect("every rule has an expr").to_string();
            let (name, alert) = match (r["alert"].as_str(), r["record"].as_str()) {
                (Some(a), _) => (a.to_string(), true),
                (None, Some(rec)) => (rec.to_string(), false),
                _ => panic!("a rule with neither alert nor record: {expr}"),
            };
            out.push(Rule { name, expr, alert });
        }
    }
    assert!(!out.is_empty(), "no rules read");
    out
}

// --- promtool --------------------------------------------------------------------------------

/// `promtool`, or `None` (with the notice printed) where it is not installed and CI is not
/// set; under `CI=true` a missing promtool fails.
fn promtool() -> Option<Command> {
    match Command::new("promtool").arg("--version").output() {
        Ok(o) if o.status.success() => Some(Command::new("promtool")),
        Ok(o) => panic!(
            "promtool --version failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "CI=true but promtool cannot be run ({e}): .ci/run installs it (Debian package \
             prometheus)"
        ),
        Err(e) => {
            eprintln!(
                "SKIPPED: promtool cannot be run ({e}); install it (Debian: apt-get install \
                 --no-install-recommends prometheus) to check the alert rules"
            );
            None
        }
    }
}

fn run(mut c: Command) -> String {
    let o = c.output().expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("{text}");
    assert!(o.status.success(), "{c:?} failed:\n{text}");
    text
}

#[test]
fn the_alert_rules_pass_promtool_check_rules() {
    let Some(mut c) = promtool() else { return };
    c.arg("check").arg("rules").arg(rules_path());
    let out = run(c);
    let n = rules().len();
    assert!(
        out.contains(&format!("SUCCESS: {n} rules found")),
        "promtool did not find the {n} rules of the file:\n{out}"
    );
}

#[test]
fn the_alert_rules_pass_their_promtool_unit_tests() {
    let Some(mut c) = promtool() else { return };
    c.arg("test").arg("rules").arg(rules_test_path());
    c.current_dir(deploy().join("prometheus"));
    let out = run(c);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn every_alert_has_a_unit_test_where_it_fires_and_one_where_it_does_not() {
    let doc = yaml(&rules_test_path());
    let files: Vec<&str> = list(&doc["rule_files"])
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(files, ["quantum-alerts.yml"], "the unit tests load the rules");
    let (mut fires, mut quiet) = (BTreeSet::new(), BTreeSet::new());
    for t in list(&doc["tests"]) {
        for case in list(&t["alert_rule_test"]) {
            let name = case["alertname"].as_str().expect("alertname").to_string();
            let exp = case["exp_alerts"].as_vec().expect("exp_alerts is a list");
            if exp.is_empty() {
                quiet.insert(name);
            } else {
                fires.insert(name);
            }
        }
    }
    let alerts: BTreeSet<String> = rules()
        .into_iter()
        .filter(|r| r.alert)
        .map(|r| r.name)
        .collect();
    for a in &alerts {
        assert!(fires.contains(a), "no unit test where {a} fires");
        assert!(quiet.contains(a), "no unit test where {a} stays quiet");
    }
    let unknown: Vec<_> = fires.union(&quiet).filter(|n| !alerts.contains(*n)).collect();
    assert!(unknown.is_empty(), "unit tests of no rule: {unknown:?}");
}

// --- PromQL ----------------------------------------------------------------------------------

/// A series an expression selects: its name and label matchers.
#[derive(Debug)]
struct Selected {
    name: String,
    matchers: Vec<Matcher>,
}

#[derive(Default)]
struct Selectors(Vec<Selected>);

impl Selectors {
    fn add(&mut self, vs: &VectorSelector) {
        let by_matcher = vs
            .matchers
            .matchers
            .iter()
            .find(|m| m.name == "__name__" && matches!(m.op, MatchOp::Equal))
            .map(|m| m.value.clone());
        let name = vs
            .name
            .clone()
            .or(by_matcher)
            .unwrap_or_else(|| panic!("a selector without a metric name: {vs}"));
        let mut matchers: Vec<Matcher> = vs
            .matchers
            .matchers
            .iter()
            .filter(|m| m.name != "__name__")
            .cloned()
            .collect();
        matchers.extend(vs.matchers.or_matchers.iter().flatten().cloned());
        self.0.push(Selected { name, matchers });
    }
}

impl ExprVisitor for Selectors {
    type Error = std::convert::Infallible;

    fn pre_visit(&mut self, e: &Expr) -> Result<bool, Self::Error> {
        match e {
            Expr::VectorSelector(vs) => self.add(vs),
            Expr::MatrixSelector(ms) => self.add(&ms.vs),
            _ => {}
        }
        Ok(true)
    }
}

/// The series `expr` selects; panics (naming `what`) when it is not PromQL.
fn selectors(what: &str, expr: &str) -> Vec<Selected> {
    let ast = parser::parse(expr).unwrap_or_else(|e| panic!("{what}: not PromQL: {e}\n{expr}"));
    let mut s = Selectors::default();
    let Ok(_) = walk_expr(&mut s, &ast);
    s.0
}

/// Every expression of the dashboard with its variables replaced, each way they can be set:
/// (where, expression).
fn dashboard_exprs() -> Vec<(String, String)> {
    let d: Value = serde_json::from_str(&read(&dashboard_path())).expect("the dashboard is JSON");
    let vars = d["templating"]["list"].as_array().expect("templating");
    let quantiles: Vec<String> = vars
        .iter()
        .find(|v| v["name"] == "quantile")
        .and_then(|v| v["options"].as_array())
        .expect("a quantile variable with its options")
        .iter()
        .map(|o| o["value"].as_str().expect("option value").to_string())
        .collect();
    let mut out = Vec::new();
    // `label_values(<selector>, <label>)` of the query variables.
    for v in vars.iter().filter(|v| v["type"] == "query") {
        let q = v["query"]
            .as_str()
            .or_else(|| v["query"]["query"].as_str())
            .expect("a query variable's query");
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .and_then(|r| r.rsplit_once(','))
            .map(|(sel, _label)| sel.trim())
            .unwrap_or_else(|| panic!("variable {}: not label_values(...): {q}", v["name"]));
        out.push((format!("variable {}", v["name"]), inner.to_string()));
    }
    let mut panels: Vec<&Value> = d["panels"].as_array().expect("panels").iter().collect();
    while let Some(p) = panels.pop() {
        panels.extend(p["panels"].as_array().into_iter().flatten());
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("a target's expr");
            let what = format!("panel {:?}, target {}", p["title"], t["refId"]);
            assert!(
                expr.contains("instance=~\"$instance\""),
                "{what}: not filtered by $instance: {expr}"
            );
            let fixed = expr
                .replace("$__rate_interval", "1m")
                .replace("$__range", "1h")
                .replace("$instance", ".*");
            for q in &quantiles {
                let e = fixed.replace("$quantile", q);
                assert!(!e.contains('$'), "{what}: a variable left in {e}");
                out.push((what.clone(), e));
                if !fixed.contains("$quantile") {
                    break;
                }
            }
        }
    }
    out
}

#[test]
fn the_dashboard_is_importable_and_its_queries_are_promql() {
    let d: Value = serde_json::from_str(&read(&dashboard_path())).expect("the dashboard is JSON");
    assert!(d["schemaVersion"].as_u64().is_some_and(|v| v >= 30));
    assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty()));
    assert!(d["id"].is_null(), "an exported dashboard has no id");
    let vars = d["templating"]["list"].as_array().expect("templating");
    let var = |n: &str| {
        vars.iter()
            .find(|v| v["name"] == n)
            .unwrap_or_else(|| panic!("no variable {n}"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    assert_eq!(
        var("instance")["query"],
        "label_values(quantum_up, instance)"
    );
    // Every panel and query uses the chosen data source; ids are unique.
    let mut ids = BTreeSet::new();
    let mut panels: Vec<&Value> = d["panels"].as_array().expect("panels").iter().collect();
    let mut targets = 0;
    while let Some(p) = panels.pop() {
        panels.extend(p["panels"].as_array().into_iter().flatten());
        assert!(ids.insert(p["id"].as_u64().expect("panel id")), "id twice");
        assert!(p["gridPos"]["w"].as_u64().is_some(), "{p}");
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            targets += 1;
        }
    }
    assert_eq!(var("instance")["datasource"]["uid"], "${datasource}");
    let exprs = dashboard_exprs();
    assert!(exprs.len() > targets, "{} expressions", exprs.len());
    for (what, e) in &exprs {
        assert!(!selectors(what, e).is_empty(), "{what}: selects nothing");
    }
}

// --- names against a real daemon -------------------------------------------------------------

/// Name → label → values, from `quantum ctl metrics --once` of a real daemon (failover on, this
/// test holding the lease as the Redis bridge does in production).
fn served() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut inst = Instance::new("monitoring");
    let lease = LeaseWriter::create(&inst.name).expect("lease segment");
    let now = boot_ns();
    lease.publish(&Lease {
        role: LeaseRole::Leader,
        epoch: 1,
        deadline_ns: now + 600_000_000_000,
        trade_after_ns: now,
        acquired_ns: now,
        renewed_ns: now,
        ttl_ms: 3000,
        recv_window_ms: 1000,
        host: "host-a".into(),
        other: String::new(),
        takeover_ms: 0,
        updated_ns: now,
    });
    inst.start_daemon_fed_by_hand(&["--quiet"], &[("QUANTUM_FAILOVER_ENABLED", "true")]);
    let o = Command::new(bin())
        .args([
            "ctl",
            "metrics",
            "--instance",
            &inst.name,
            "--once",
            "--rate-interval-ms",
            "200",
        ])
        .output()
        .expect("ctl metrics --once");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).expect("UTF-8");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("the exposition parses");
    let lines = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    assert_eq!(scrape.samples.len(), lines, "unparsed lines in:\n{text}");
    let mut out: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for s in scrape.samples {
        let labels = out.entry(s.metric).or_default();
        for (k, v) in s.labels.iter() {
            labels.entry(k.clone()).or_default().insert(v.clone());
        }
    }
    assert_eq!(
        out.get("quantum_up")
            .map(|_| text.contains("\nquantum_up 1\n")),
        Some(true),
        "the daemon is up in:\n{text}"
    );
    out
}

/// The literal values a matcher names: its value, or each branch of a regex made of literals
/// only (`plans|exchange`); `None` for another regex.
fn literal_values(m: &Matcher) -> Option<Vec<String>> {
    let literal = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c))
    };
    match m.op {
        MatchOp::Equal | MatchOp::NotEqual => Some(vec![m.value.clone()]),
        MatchOp::Re(_) | MatchOp::NotRe(_) => {
            let parts: Vec<String> = m.value.split('|').map(str::to_string).collect();
            parts.iter().all(|p| literal(p)).then_some(parts)
        }
    }
}

#[test]
fn every_series_the_dashboard_and_the_rules_name_is_served() {
    let served = served();
    let mut exprs = dashboard_exprs();
    exprs.extend(
        rules()
            .into_iter()
            .map(|r| (format!("rule {}", r.name), r.expr)),
    );
    let listed: BTreeMap<&str, &str> = NOT_FROM_A_BARE_DAEMON.iter().copied().collect();
    let mut named = BTreeSet::new();
    let mut problems = Vec::new();
    for (what, e) in &exprs {
        for s in selectors(what, e) {
            if !s.name.starts_with("quantum_") {
                continue;
            }
            named.insert(s.name.clone());
            let Some(labels) = served.get(&s.name) else {
                if !listed.contains_key(s.name.as_str()) {
                    problems.push(format!("{what}: {} is not served", s.name));
                }
                continue;
            };
            for m in &s.matchers {
                if TARGET_LABELS.contains(&m.name.as_str()) {
                    continue;
                }
                let Some(values) = literal_values(m) else {
                    continue;
                };
                let have = labels.get(&m.name);
                for v in values {
                    if !have.is_some_and(|h| h.contains(&v)) {
                        problems.push(format!(
                            "{what}: {}{{{}}} matches {v:?}, served: {have:?}",
                            s.name, m.name
                        ));
                    }
                }
            }
        }
    }
    for (name, why) in NOT_FROM_A_BARE_DAEMON {
        if served.contains_key(*name) {
            problems.push(format!(
                "{name} is served by the daemon now: take it out of NOT_FROM_A_BARE_DAEMON ({why})"
            ));
        }
        if !named.contains(*name) {
            problems.push(format!(
                "{name} is in NOT_FROM_A_BARE_DAEMON but neither the dashboard nor the rules name it"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n\nserved: {:?}",
        problems.join("\n"),
        served.keys().collect::<Vec<_>>()
    );
    // The check saw the files: most of what they name comes from the daemon.
    let from_daemon = named.iter().filter(|n| served.contains_key(*n)).count();
    assert!(from_daemon >= 40, "only {from_daemon} series checked: {named:?}");
}
