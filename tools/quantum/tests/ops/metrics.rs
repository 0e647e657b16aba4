//! `ctl metrics` against a running daemon: scraped over real HTTP, parsed with a Prometheus
//! text-format parser, values that move after `ctl inject`, refusals counted, and a daemon
//! restart followed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use prometheus_parse::{Scrape, Value};

use crate::common::{bin, signal, wait_for, Instance};
use crate::wait_exit;

/// One HTTP request; (status, body).
fn http(addr: &str, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to ctl metrics");
    s.write_all(request.as_bytes()).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

fn get(addr: &str, path: &str) -> (u16, String) {
    http(addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"))
}

/// Scrapes /metrics, checks every sample line parsed, and returns the samples.
fn scrape(addr: &str) -> Vec<prometheus_parse::Sample> {
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    let lines = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    let s = Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("parses");
    // The parser skips what it cannot read: every line must have become a sample.
    assert_eq!(s.samples.len(), lines, "unparsed lines in:\n{body}");
    for sample in &s.samples {
        let counter = sample.metric.ends_with("_total");
        match sample.value {
            Value::Counter(_) => assert!(counter, "{sample:?}"),
            Value::Gauge(_) => assert!(!counter, "{sample:?}"),
            _ => panic!("unexpected type {sample:?}"),
        }
    }
    s.samples
}

/// The value of `metric` with these labels.
fn value(samples: &[prometheus_parse::Sample], metric: &str, labels: &[(&str, &str)]) -> f64 {
    find(samples, metric, labels).unwrap_or_else(|| panic!("no {metric}{labels:?}"))
}

fn find(
    samples: &[prometheus_parse::Sample],
    metric: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

fn inject(inst: &Instance, lines: &str) {
    let mut c = Command::new(bin())
        .args(["ctl", "inject", "--instance", &inst.name, "--file", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(lines.as_bytes()).unwrap();
    assert!(c.wait().unwrap().success());
}

#[test]
fn a_running_daemon_is_scraped_parsed_and_its_values_move() {
    let mut inst = Instance::new("metrics");
    inst.start_daemon_fed_by_hand(&["--quiet"], &[]);
    let name = inst.name.clone();
    let exporter = inst.spawn(
        &[
            "ctl",
            "metrics",
            "--instance",
            &name,
            "--listen",
            "127.0.0.1:0",
            "--rate-interval-ms",
            "200",
        ],
        Stdio::piped(),
    );
    let mut first = String::new();
    BufReader::new(exporter.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|a| a.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_string();

    let s = scrape(&addr);
    assert_eq!(value(&s, "quantum_up", &[]), 1.0);
    assert_eq!(value(&s, "quantum_plans_in_total", &[]), 0.0);
    assert_eq!(
        value(&s, "quantum_ring_capacity", &[("ring", "plans")]),
        65536.0
    );
    assert_eq!(
        value(
            &s,
            "quantum_ring_peer_up",
            &[("ring", "ctl"), ("role", "consumer")]
        ),
        1.0
    );

    // The seeds' story: a ledger out of step denies, in step executes.
    inject(
        &inst,
        concat!(
            r#"{"cmd":"position_mode","hedge":false}"#,
            "\n",
            r#"{"cmd":"position","symbol":"BTCUSDT","amount":"0.062","mark":"104000"}"#,
            "\n",
            r#"{"cmd":"set_ledger","symbol":"BTCUSDT","amount":"0.002"}"#,
            "\n",
            r#"{"plan_id":"f1a8d7f48713d5cf","symbol":"BTCUSDT","decision":"EXECUTE","action":"PARTIAL_75","kill_score":"0.539"}"#,
            "\n",
        ),
    );
    let deny = [
        ("stage", "p33"),
        ("reason", "reconcile_required_qty_mismatch"),
    ];
    wait_for(20, "the deny to be scraped", || {
        value(&scrape(&addr), "quantum_deny_total", &deny) == 1.0
    });
    inject(
        &inst,
        concat!(
            r#"{"cmd":"set_ledger","symbol":"BTCUSDT","amount":"0.062"}"#,
            "\n",
            r#"{"plan_id":"84222f2c53d22b91","symbol":"BTCUSDT","decision":"EXECUTE","action":"PARTIAL_75","kill_score":"0.539"}"#,
            "\n",
        ),
    );
    wait_for(20, "the execution to be scraped", || {
        let s = scrape(&addr);
        value(&s, "quantum_results_executed_total", &[]) == 1.0
            && value(&s, "quantum_book_in_flight", &[("symbol", "BTCUSDT")]) == 0.046
    });
    let s = scrape(&addr);
    assert_eq!(
        value(&s, "quantum_book_ledger", &[("symbol", "BTCUSDT")]),
        0.062
    );
    assert_eq!(
        value(&s, "quantum_book_exchange", &[("symbol", "BTCUSDT")]),
        0.062
    );
    assert_eq!(value(&s, "quantum_orders_out_total", &[]), 1.0);
    // Nobody consumes `orders` in this test: the intent waits in the ring.
    assert_eq!(value(&s, "quantum_ring_depth", &[("ring", "orders")]), 1.0);
    assert_eq!(
        value(&s, "quantum_records_in_total", &[("ring", "ctl")]),
        6.0
    );

    // Rates: a burst of plans shows up as a rate above zero in some sampling interval.
    inst.spawn(
        &[
            "ctl",
            "inject",
            "--instance",
            &name,
            "--generate",
            "200000",
            "--decision",
            "HOLD",
        ],
        Stdio::null(),
    );
    wait_for(60, "a plan rate above zero", || {
        // No rate before the sampler has two samples of this daemon.
        find(
            &scrape(&addr),
            "quantum_rate_per_second",
            &[("counter", "plans_in")],
        )
        .is_some_and(|r| r > 0.0)
    });

    // Refusals are answered and counted.
    assert_eq!(get(&addr, "/nope").0, 404);
    assert_eq!(http(&addr, "POST /metrics HTTP/1.1\r\n\r\n").0, 405);
    assert_eq!(http(&addr, "garbage\r\n\r\n").0, 400);
    assert_eq!(
        value(&scrape(&addr), "quantum_exporter_bad_requests_total", &[]),
        3.0
    );
    assert_eq!(get(&addr, "/healthz"), (200, "ok\n".into()));

    // The daemon stops: down; a new one starts: followed, counters from zero.
    let pid = inst.children[0].id();
    signal(pid, "-TERM");
    let status = wait_exit(&mut inst.children[0], 60, "quantum run");
    assert!(status.success());
    wait_for(20, "quantum_up 0", || {
        value(&scrape(&addr), "quantum_up", &[]) == 0.0
    });
    assert_eq!(get(&addr, "/healthz").0, 503);
    let new_pid = inst.start_daemon_fed_by_hand(&["--quiet"], &[]);
    // Followed: the new daemon's pid, and its own counters (which count the plans the stopped
    // daemon left in the ctl ring, which it takes over).
    wait_for(20, "the new daemon", || {
        let s = scrape(&addr);
        value(&s, "quantum_up", &[]) == 1.0
            && find(
                &s,
                "quantum_daemon_info",
                &[("pid", new_pid.to_string().as_str())],
            )
            .is_some()
    });
}
