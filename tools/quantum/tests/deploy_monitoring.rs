//! The monitoring files of `deploy/`: the Grafana dashboard (`deploy/grafana/quantum.json`),
//! the Prometheus alert rules (`deploy/prometheus/quantum-alerts.yml`) and their unit tests
//! (`quantum-alerts.test.yml`).
//!
//! - `promtool check rules` and `promtool test rules` pass. Where promtool is not on PATH the
//!   test says SKIPPED, except under `CI=true`, where .ci/run installs it and its absence fails.
//! - The dashboard's queries, with each value of its variables, pass `promtool check rules` as
//!   recording rules (Prometheus's own PromQL parser).
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
use quantum_ipc::lease::{boot_ns, Lease, LeaseRole, LeaseWriter};
use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

/// Series the dashboard and the rules name that a daemon on its own does not serve, and why.
/// Each must be named by them, and none may be served by this test's daemon: when the daemon
/// starts serving one, it must leave this list (and is then checked like every other).
const NOT_FROM_A_BARE_DAEMON: &[(&str, &str)] = &[
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
        "quantum_latency_exchange_intent_seconds",
        "the Binance bridge's segment",
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
            let expr = r["expr"]
                .as_str()
                .expect("every rule has an expr")
                .to_string();
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
    assert_eq!(
        files,
        ["quantum-alerts.yml"],
        "the unit tests load the rules"
    );
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
    let unknown: Vec<_> = fires
        .union(&quiet)
        .filter(|n| !alerts.contains(*n))
        .collect();
    assert!(unknown.is_empty(), "unit tests of no rule: {unknown:?}");
}

// --- PromQL ----------------------------------------------------------------------------------

/// A series an expression selects: its metric name and label matchers (label, operator,
/// value).
#[derive(Debug, PartialEq)]
struct Selected {
    name: String,
    matchers: Vec<(String, String, String)>,
}

/// Words of PromQL that are not series: operators, modifiers and aggregations (these may be
/// followed by `by (...)` rather than by their parenthesis).
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "offset",
    "bool",
    "inf",
    "nan",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];

/// Words whose parenthesised list names labels.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The end of the quoted string that starts at `i`.
fn string_end(b: &[u8], i: usize) -> usize {
    let q = b[i];
    let mut j = i + 1;
    while j < b.len() && b[j] != q {
        j += if b[j] == b'\\' && q != b'`' { 2 } else { 1 };
    }
    (j + 1).min(b.len())
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// The matchers of the `{...}` at `i`, and the index after it.
fn matchers(e: &str, mut i: usize) -> (Vec<(String, String, String)>, usize) {
    let b = e.as_bytes();
    let mut out = Vec::new();
    i += 1;
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b',') {
            i += 1;
        }
        if i >= b.len() || b[i] == b'}' {
            return (out, i + 1);
        }
        let start = i;
        while i < b.len() && is_word(b[i]) {
            i += 1;
        }
        let label = e[start..i].to_string();
        while b[i].is_ascii_whitespace() {
            i += 1;
        }
        let op = ["=~", "!~", "!=", "="]
            .into_iter()
            .find(|op| e[i..].starts_with(op))
            .unwrap_or_else(|| panic!("no matcher operator after {label:?} in {e}"));
        i += op.len();
        while b[i].is_ascii_whitespace() {
            i += 1;
        }
        let end = string_end(b, i);
        let value = e[i + 1..end - 1].replace("\\\"", "\"");
        out.push((label, op.to_string(), value));
        i = end;
    }
}

/// The series `expr` selects (a reading of PromQL's selectors only: promtool checks the
/// syntax).
fn selectors(expr: &str) -> Vec<Selected> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut depth) = (0, 0usize);
    // Depth of the parenthesis of a `by (...)`-like list, and whether one opens next.
    let (mut list_depth, mut list_next) = (None, false);
    while i < b.len() {
        let c = b[i];
        if c == b'"' || c == b'\'' || c == b'`' {
            i = string_end(b, i);
        } else if c == b'(' {
            depth += 1;
            if list_next {
                list_depth = Some(depth);
                list_next = false;
            }
            i += 1;
        } else if c == b')' {
            if list_depth == Some(depth) {
                list_depth = None;
            }
            depth = depth.saturating_sub(1);
            i += 1;
        } else if c == b'[' {
            // A range or a subquery's `[5m:10s]`.
            while i < b.len() && b[i] != b']' {
                i += 1;
            }
        } else if c == b'{' {
            let (m, j) = matchers(expr, i);
            out.push(Selected {
                name: String::new(),
                matchers: m,
            });
            i = j;
        } else if c.is_ascii_digit() || c == b'.' {
            // A number or a duration (`1m`, `0.99`, `1e3`).
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
        } else if is_word(c) {
            let start = i;
            while i < b.len() && is_word(b[i]) {
                i += 1;
            }
            let word = &expr[start..i];
            let mut k = i;
            while k < b.len() && b[k].is_ascii_whitespace() {
                k += 1;
            }
            if LABEL_LISTS.contains(&word) {
                list_next = true;
            } else if list_depth.is_some()
                || KEYWORDS.contains(&word)
                || (k < b.len() && b[k] == b'(')
            {
                // A label of a list, a keyword, or a function.
            } else if k < b.len() && b[k] == b'{' {
                let (m, j) = matchers(expr, k);
                out.push(Selected {
                    name: word.to_string(),
                    matchers: m,
                });
                i = j;
            } else {
                out.push(Selected {
                    name: word.to_string(),
                    matchers: Vec::new(),
                });
            }
        } else {
            i += 1;
        }
    }
    // `{__name__="x"}` names its series by a matcher.
    for s in &mut out {
        if s.name.is_empty() {
            if let Some(p) = s
                .matchers
                .iter()
                .position(|(l, op, _)| l == "__name__" && op == "=")
            {
                s.name = s.matchers.remove(p).2;
            }
        }
        assert!(!s.name.is_empty(), "a selector without a name in {expr}");
    }
    out
}

#[test]
fn the_selector_reader_finds_series_not_labels_functions_or_keywords() {
    let e = r#"sum by (instance, quantum_instance) (rate(quantum_deny_total{stage="p33", reason=~"a|b"}[5m] offset 1h)) > 3 * max_over_time(quantum_x_seconds{quantile="0.99"}[1m:10s]) and on (instance, job) quantum_up == 1 unless {__name__="quantum_y", ring!="results"}"#;
    let m = |l: &str, op: &str, v: &str| (l.to_string(), op.to_string(), v.to_string());
    assert_eq!(
        selectors(e),
        [
            Selected {
                name: "quantum_deny_total".into(),
                matchers: vec![m("stage", "=", "p33"), m("reason", "=~", "a|b")],
            },
            Selected {
                name: "quantum_x_seconds".into(),
                matchers: vec![m("quantile", "=", "0.99")],
            },
            Selected {
                name: "quantum_up".into(),
                matchers: vec![],
            },
            Selected {
                name: "quantum_y".into(),
                matchers: vec![m("ring", "!=", "results")],
            },
        ]
    );
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
            let what = format!(
                "panel {:?}, target {}",
                p["title"].as_str().unwrap_or(""),
                t["refId"]
            );
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
fn the_dashboard_is_importable_and_every_query_selects_series() {
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
        assert!(!selectors(e).is_empty(), "{what}: selects nothing: {e}");
    }
}

#[test]
fn the_dashboards_queries_pass_promtool_as_recording_rules() {
    let Some(mut c) = promtool() else { return };
    // Prometheus's own parser reads each query, once per value of its variables.
    let exprs = dashboard_exprs();
    let mut file = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (what, e)) in exprs.iter().enumerate() {
        // promtool names a failing rule by its record name: which query that is.
        eprintln!("dashboard_query_{i}: {what}");
        let quoted = serde_json::to_string(e).unwrap();
        file.push_str(&format!(
            "      # {what}\n      - record: dashboard_query_{i}\n        expr: {quoted}\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dashboard-queries.yml");
    std::fs::write(&path, file).unwrap();
    c.arg("check").arg("rules").arg(&path);
    let out = run(c);
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "{out}"
    );
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
fn literal_values(op: &str, value: &str) -> Option<Vec<String>> {
    let literal = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c))
    };
    if op == "=" || op == "!=" {
        return Some(vec![value.to_string()]);
    }
    let parts: Vec<String> = value.split('|').map(str::to_string).collect();
    parts.iter().all(|p| literal(p)).then_some(parts)
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
        for s in selectors(e) {
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
            for (label, op, value) in &s.matchers {
                if TARGET_LABELS.contains(&label.as_str()) {
                    continue;
                }
                let Some(values) = literal_values(op, value) else {
                    continue;
                };
                let have = labels.get(label);
                for v in values {
                    if !have.is_some_and(|h| h.contains(&v)) {
                        problems.push(format!(
                            "{what}: {}{{{label}}} matches {v:?}, served: {have:?}",
                            s.name
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
    eprintln!(
        "{from_daemon} series checked against the daemon's exposition, {} listed",
        NOT_FROM_A_BARE_DAEMON.len()
    );
    assert!(
        from_daemon >= 40,
        "only {from_daemon} series checked: {named:?}"
    );
}
