#!/usr/bin/env bash
# Checks Cargo.lock against a local copy of the RustSec advisory database, without the network.
#
#   tools/audit.sh DB_DIR [cargo-audit options…]     (or RUSTSEC_DB=DB_DIR tools/audit.sh)
#
# DB_DIR is a clone of the rustsec/advisory-db repository (see docs/operations.md, "Dependency
# audit"). Exits 0 when no vulnerability is found; warnings (unmaintained, unsound, yanked) are
# printed and do not fail the run unless `-D warnings` is given. Not run by CI: CI has no
# advisory database.
set -euo pipefail

root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
db=${1:-${RUSTSEC_DB:-}}
[ $# -gt 0 ] && shift

if [ -z "$db" ]; then
    echo "usage: tools/audit.sh DB_DIR [cargo-audit options]" >&2
    echo "  DB_DIR: a clone of the rustsec/advisory-db repository (RUSTSEC_DB also works)" >&2
    exit 2
fi
if [ ! -d "$db/crates" ]; then
    echo "$db is not an advisory database: it has no crates/ folder." >&2
    echo "  Clone rustsec/advisory-db (or copy a clone onto this machine) and pass its folder." >&2
    exit 2
fi
if ! cargo audit --version >/dev/null 2>&1; then
    echo "cargo-audit is not installed: cargo install cargo-audit --locked" >&2
    echo "  (where the crate registry cannot be reached: build it on a machine that can, and copy" >&2
    echo "  ~/.cargo/bin/cargo-audit over)" >&2
    exit 2
fi

db=$(cd "$db" && pwd)
if git -C "$db" rev-parse --verify -q HEAD >/dev/null; then
    echo "advisory database: $db at $(git -C "$db" log -1 --format='%h, %cs')"
else
    echo "advisory database: $db (not a git clone: its age is unknown)"
fi
cd "$root"
exec cargo audit --db "$db" --no-fetch "$@"
