#!/usr/bin/env bash
# The failover test: two "hosts" on this machine (two instances, each with its own journal,
# daemon, Binance bridge and Redis bridge) share one lease in one redis-server and one account
# on the simulator (faults on). Each round hits the leading host: kill -9 of its daemon, its
# Binance bridge, its Redis bridge or all three; SIGSTOP of all of them for longer than the
# lease's TTL, then SIGCONT; a redis-server restart (sometimes losing the lease key); a planned
# release. Then every plan is delivered again and the test checks that no plan was ordered
# twice, every plan has one result entry, the leader's ledger equals the exchange, and the two
# hosts never both sent. It prints the takeover times against the TTL.
#
#   tools/failover-test.sh [ROUNDS] [--release] [--seed N] [--plans N] [--out DIR]
#
#   tools/failover-test.sh 4              the short run (debug build, about a minute)
#   tools/failover-test.sh 50 --release   the long run
#
# redis-server comes from the PATH (REDIS_SERVER=path picks another). Logs, configuration
# files and journals are left in --out (default target/failover-test). Exit status 1 when a
# check fails; the lines starting FAIL say which.
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
exec "target/$profile/quantum-failover-test" "$rounds" --quantum "target/$profile/quantum" "${args[@]}"
