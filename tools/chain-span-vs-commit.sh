#!/usr/bin/env bash
# The chain's own span per plan, today's against an older commit's (by default 112e9e3, the
# pre-lifecycle chain), built side by side and run alternately so that both see the same host
# conditions.
#
#   tools/chain-span-vs-commit.sh [ROUNDS] [PLANS] [COMMIT]
#       ROUNDS  rounds of four rows (default 3)
#       PLANS   plans per row (default 300000)
#       COMMIT  the old side (default 112e9e3). It must have `quantum bench chain` and the
#               `Engine::new(EngineConfig::default(), ...)` line of 112e9e3's
#               bench/src/chain.rs that the patch below replaces; the script stops otherwise.
#
# Four rows per round, each `(c)` row with its p50 and its ratio to two clock reads and to an
# ArrayQueue push+pop measured in the same process:
#   old, dedupe 32 Ki   COMMIT's `quantum bench chain` as it was, its dedupe at its own default
#                       size (112e9e3's remembered the last 32 Ki ids and forgot older ones: the
#                       defect issue #7 fixed; for another COMMIT the row is "old, own dedupe")
#   old, dedupe 2 Mi    the same, its dedupe sized like today's benchmark (2 Mi ids)
#   new, dedupe 2 Mi    `cargo run --release -p quantum-bench --example chain_span`
#   new, dedupe 16 Ki   the same with CHAIN_SPAN_SMALL_DEDUPE=1 (a table that fits the cache)
#
# The old tree is a git worktree at $OLD_TREE (default /tmp/quantum-COMMIT) with its own
# target directory (about 2 GB); its bench reads OLD_DEDUPE_CAPACITY (a two-line patch this
# script applies). Remove it with `git worktree remove --force "$OLD_TREE"`.
set -euo pipefail

rounds=${1:-3}
plans=${2:-300000}
commit=${3:-112e9e3}
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
old=${OLD_TREE:-/tmp/quantum-$commit}
if [ "$commit" = 112e9e3 ]; then
    old_own="old, dedupe 32 Ki"
else
    old_own="old, own dedupe"
fi

if [ ! -d "$old" ]; then
    git -C "$root" worktree add -f --detach "$old" "$commit" >/dev/null
fi
if ! grep -q OLD_DEDUPE_CAPACITY "$old/bench/src/chain.rs"; then
    python3 - "$old/bench/src/chain.rs" "$commit" <<'EOF'
import sys
p, commit = sys.argv[1], sys.argv[2]
s = open(p).read()
old = "    let mut e = Engine::new(EngineConfig::default(), Clock::new())?;"
new = """    let cap = std::env::var("OLD_DEDUPE_CAPACITY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(EngineConfig::default().dedupe_capacity);
    let cfg = EngineConfig { dedupe_capacity: cap, ..EngineConfig::default() };
    let mut e = Engine::new(cfg, Clock::new())?;"""
assert old in s, f"{commit}'s bench/src/chain.rs is not the one this script knows"
open(p, "w").write(s.replace(old, new))
EOF
fi

echo "building $commit in $old and today's chain_span example..." >&2
(cd "$old" && CARGO_TARGET_DIR="$old/target" cargo build --release -q -p quantum)
(cd "$root" && cargo build --release -q -p quantum-bench --example chain_span)
old_bin="$old/target/release/quantum"
new_bin="$root/target/release/examples/chain_span"

row() {
    local name=$1
    shift
    local line
    line=$("$@" 2>&1 | grep '^(c)')
    # p50 is the 7th field of a `(c) permit chain, 1 thread N p50 ...` row.
    printf '%-20s %s\n' "$name" "$(echo "$line" | awk '{printf "p50 %5s ns  p90 %5s  p99 %6s  /clock %s  /queue %s", $7, $8, $9, $(NF-1), $NF}')"
}

for r in $(seq 1 "$rounds"); do
    echo "round $r ($plans plans per row)"
    row "$old_own" "$old_bin" bench chain --plans "$plans"
    row "old, dedupe 2 Mi" env OLD_DEDUPE_CAPACITY=2097152 "$old_bin" bench chain --plans "$plans"
    row "new, dedupe 2 Mi" "$new_bin" --plans "$plans"
    row "new, dedupe 16 Ki" env CHAIN_SPAN_SMALL_DEDUPE=1 "$new_bin" --plans "$plans"
done
