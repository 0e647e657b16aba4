#!/usr/bin/env bash
# The crash test: kill -9 the core daemon and the Binance bridge at random moments while plans
# flow and orders are in flight; then check that no plan was ordered twice and nothing was lost.
#
#   tools/crash-test.sh [ROUNDS] [--release] [--seed N] [--plans N] [--redis-cycles N]
#                       [--hedge] [--out DIR]
#
#   tools/crash-test.sh 10              what the test command runs (debug build, ~2 minutes)
#   tools/crash-test.sh 8 --hedge --redis-cycles 2
#                                       the hedge run the test command runs after it
#   tools/crash-test.sh 100 --release   the long run
#
# --hedge: the account in hedge mode (the simulator's --hedge-mode) and every symbol configured
# in hedge mode (hedge.toml in --out): each is two legs, LONG and SHORT, BTCUSDT holding both;
# plans name the leg they close with position_side, a few name none and must never be ordered;
# every check is made per leg, and every order must be its leg's (positionSide, no reduceOnly).
# After every round (both modes) the core is brought to rest and its ledger must equal the
# simulator's position on every leg.
#
# Everything is a real process: `quantum sim binance` (latency, dropped connections, ambiguous
# 503s, unknown-outcome timeouts, a gateway's 502/504 after placing), `quantum run`, `quantum
# bridge binance` (REST and WebSocket API), `quantum ctl inject`, and for the Redis phase
# redis-server (REDIS_SERVER=path picks the binary) with `quantum bridge redis`. It ends with a
# lost journal: an empty start that must order no plan the exchange already holds. Logs, plan batches and the journal are left in --out
# (default target/crash-test). Exit status 1 when a check fails; the summary says which.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=10
if [[ $# -gt 0 && "$1" =~ ^[0-9]+$ ]]; then
  rounds="$1"
  shift
fi
profile=debug
args=()
for a in "$@"; do
  if [[ "$a" == "--release" ]]; then
    profile=release
  else
    args+=("$a")
  fi
done

if [[ "$profile" == release ]]; then
  cargo build --release -p quantum -p quantum-crash-test
else
  cargo build -p quantum -p quantum-crash-test
fi
exec "target/$profile/quantum-crash-test" "$rounds" --quantum "target/$profile/quantum" "${args[@]}"
