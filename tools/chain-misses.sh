#!/usr/bin/env bash
# Cache misses per plan of the permit chain, per function, by simulation: this VM exposes no
# hardware counters to `perf stat` (it reports "<not supported>"), so the chain_span example
# runs under valgrind's cachegrind, whose simulated caches are set to this host's L1d (48 KiB)
# and L2 (2 MiB, what one core keeps to itself; a miss there is a trip to the shared L3 or
# DRAM). Twice per binary, with PLANS and 2*PLANS plans, and the difference is divided by
# the plans it adds, so set-up (filling the tables) cancels out.
#
#   tools/chain-misses.sh [PLANS] [CHAIN_SPAN_BINARY...]
#       PLANS    plans of the shorter run (default 100000; each run measures after as many
#                warm-up plans)
#       BINARY   chain_span executables to compare (default: this tree's, built in release)
#
# Prints, per binary, the L2 misses (reads + writes) per plan of every function with at least
# 0.01 per plan, and the total. Cachegrind counts a line that a prefetch already brought in as
# a miss where it is used (it simulates no prefetch), so a function's figure says which lines
# it touches outside the core's cache, not whether the plan waited for them.
set -euo pipefail
cd "$(dirname "$0")/.."
plans=${1:-100000}
shift || true
if [ $# -eq 0 ]; then
    cargo build --release -q -p quantum-bench --example chain_span
    set -- target/release/examples/chain_span
fi
command -v valgrind >/dev/null || { echo "valgrind is needed: apt-get install -y valgrind" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for bin in "$@"; do
    for n in "$plans" $((2 * plans)); do
        valgrind --tool=cachegrind --cache-sim=yes --D1=49152,12,64 --I1=65536,16,64 \
            --LL=2097152,16,64 --cachegrind-out-file="$out/cg.$n" "$bin" --plans "$n" \
            >/dev/null 2>"$out/log.$n"
    done
    python3 - "$out/cg.$plans" "$out/cg.$((2 * plans))" "$((2 * plans))" "$bin" <<'PY'
import sys
from collections import defaultdict

def per_fn(path):
    events, fn, sums = None, None, defaultdict(int)
    for line in open(path):
        if line.startswith("events:"):
            events = line.split()[1:]
            want = [events.index(e) for e in ("DLmr", "DLmw")]
        elif line.startswith("fn="):
            fn = line[3:].strip()
        elif line[:1].isdigit() and fn is not None:
            counts = line.split()[1:]
            sums[fn] += sum(int(counts[i]) for i in want if i < len(counts))
    return sums

short, long_, added, name = per_fn(sys.argv[1]), per_fn(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
# Both runs warm up on as many plans as they measure: the longer one adds 2 * PLANS plans.
diff = {f: (long_.get(f, 0) - short.get(f, 0)) / added for f in set(short) | set(long_)}
print(f"{name}: L2 misses per plan (simulated, reads + writes), {added} plans")
for f, v in sorted(diff.items(), key=lambda kv: -kv[1]):
    if v >= 0.01:
        print(f"  {v:7.3f}  {f}")
print(f"  {sum(diff.values()):7.3f}  total")
PY
done
