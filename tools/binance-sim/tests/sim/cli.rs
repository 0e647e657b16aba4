//! `quantum sim binance` flags.

use clap::Parser;
use quantum_binance_sim::cli::BinanceArgs;
use quantum_binance_sim::TEST_API_KEY;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: BinanceArgs,
}

fn parse(args: &[&str]) -> Result<BinanceArgs, String> {
    Cli::try_parse_from(std::iter::once("sim").chain(args.iter().copied()))
        .map(|c| c.args)
        .map_err(|e| e.to_string())
}

#[test]
fn defaults_and_repeatable_flags() {
    let a = parse(&[]).unwrap();
    assert_eq!(a.listen.to_string(), "127.0.0.1:8089");
    assert_eq!(a.api_key, TEST_API_KEY);
    let a = parse(&[
        "--listen",
        "127.0.0.1:0",
        "--position",
        "BTCUSDT=0.010",
        "--position",
        "ETHUSDT=-1.5",
        "--mark",
        "BTCUSDT=65000.1",
        "--hedge-mode",
        "--latency-ms",
        "5",
        "--error-rate",
        "0.1",
        "--drop-rate",
        "0.2",
        "--ambiguous-503-rate",
        "0.3",
        "--weight-limit",
        "100",
    ])
    .unwrap();
    let c = a.to_config().unwrap();
    c.validate().unwrap();
    assert_eq!(c.positions.len(), 2);
    assert_eq!(c.positions[1].1.to_string(), "-1.5");
    assert!(c.hedge_mode);
    assert_eq!(c.faults.latency_ms, 5);
    assert!(c.faults.drop_after_place);
    assert_eq!(c.limits.weight_per_minute, 100);
}

#[test]
fn bad_flags_give_one_clear_sentence() {
    let e = parse(&["--position", "BTCUSDT=abc"]).unwrap_err();
    assert!(e.contains("'abc' is not a plain decimal number"), "{e}");
    let e = parse(&["--position", "BTCUSDT"]).unwrap_err();
    assert!(e.contains("expected SYMBOL=NUMBER"), "{e}");
    let e = parse(&["--mark", "BTCUSDT=1e5"]).unwrap_err();
    assert!(e.contains("not a plain decimal"), "{e}");
    let e = parse(&["--error-rate", "2"]).unwrap_err();
    assert!(e.contains("between 0 and 1"), "{e}");
    let a = parse(&["--position", "XYZUSDT=1"]).unwrap();
    let e = a.to_config().unwrap().validate().unwrap_err();
    assert!(e.contains("unknown symbol 'XYZUSDT'"), "{e}");
}
