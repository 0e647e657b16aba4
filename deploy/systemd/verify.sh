#!/usr/bin/env bash
# Checks the units of this folder with `systemd-analyze verify`, as instance "verify", with
# ExecStart pointing at the quantum binary given (default: the one on PATH). Any message from
# systemd-analyze (an unknown key is only a warning to it) fails the check. Where
# systemd-analyze is not installed, says so and exits 0.
#
#   deploy/systemd/verify.sh target/debug/quantum
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$(realpath "${1:-$(command -v quantum)}")"
if ! command -v systemd-analyze >/dev/null; then
  echo "SKIPPED: systemd-analyze is not installed; the units were not verified"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
units=()
for f in "$here"/*@.service; do
  name="$(basename "$f")"
  sed "s#/usr/local/bin/quantum#$bin#g" "$f" > "$tmp/$name"
  units+=("$tmp/${name/@./@verify.}")
done
out="$(systemd-analyze verify --man=no "${units[@]}" 2>&1)" || { echo "$out"; exit 1; }
if [ -n "$out" ]; then
  echo "$out"
  exit 1
fi
echo "systemd units verified: ${#units[@]}"
