#!/usr/bin/env bash
# Runs every test of the workspace: the README's test command, and what CI runs.
#
#   tools/test.sh            all tests (debug build), the crash test (10 rounds, then 8 in
#                            hedge mode; see tools/crash-test.sh), the failover test (4 rounds,
#                            see tools/failover-test.sh), then the loom models (release,
#                            cfg(loom))
#
# The workspace tests include `systemd-analyze verify` of deploy/systemd/ and a tmux-driven
# `quantum ctl top` test; each says SKIPPED and passes where its tool is not installed.
#
# Services: REDIS. The Redis bridge's tests (tools/quantum/tests/e2e_redis.rs) start their own
# real redis-server on a free loopback port in a temporary directory
# (quantum_local_redis::RedisServer; REDIS_SERVER=path picks the binary) and stop it after;
# without redis-server they fail, saying how to install it. .ci/run installs it.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== unit, integration, property, stress, cross-process and fuzz-loop tests"
cargo test --workspace --all-targets

echo "== crash test: kill -9 of the daemon and the bridge at random moments, 10 rounds"
tools/crash-test.sh 10

echo "== crash test in hedge mode: every symbol two legs (LONG, SHORT), 8 rounds, 2 Redis cycles"
tools/crash-test.sh 8 --hedge --redis-cycles 2 --out target/crash-test-hedge

echo "== failover test: two hosts, one lease; pause, kill all, Redis restart, planned release"
tools/failover-test.sh 4

echo "== loom models (permit table, shm ring protocol)"
# A separate target dir: cfg(loom) rebuilds the crates, and must not invalidate the main cache.
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
  cargo test --release -p quantum-core -p quantum-ipc --test loom

echo "== all tests passed"
