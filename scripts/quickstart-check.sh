#!/usr/bin/env bash
# Runs the README's quickstart block, exactly as written, against a freshly
# started obol (new SQLite database, built-in sandbox, generated key), so the
# README cannot drift from what obol does.
#   scripts/quickstart-check.sh [path/to/obol]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
obol_bin=${1:-$root/target/debug/obol}
work=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; wait "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

# The block between the quickstart markers, without the fences.
awk '/<!-- quickstart:start -->/{on=1; next} /<!-- quickstart:end -->/{on=0} on && !/^```/' README.md > "$work/quickstart.sh"
[ -s "$work/quickstart.sh" ] || { echo "no quickstart block in README.md" >&2; exit 1; }

cd "$work"
env -u OBOL_API_KEYS OBOL_LISTEN=127.0.0.1:0 "$obol_bin" serve > "$work/stdout" 2> "$work/stderr" &
pid=$!
for _ in $(seq 1 600); do grep -q "listening on" "$work/stdout" && break; sleep 0.1; done
grep -q "listening on" "$work/stdout" || { echo "obol did not start:"; cat "$work/stderr"; exit 1; } >&2
OBOL=$(sed -n 's/.*listening on \(http:\/\/[^ ]*\).*/\1/p' "$work/stdout" | head -1)
KEY=$(sed -n 's/.*stored hashed): \(obol_sk_[A-Za-z0-9_-]*\).*/\1/p' "$work/stdout" | head -1)
[ -n "$KEY" ] || { echo "no development key printed" >&2; exit 1; }
export OBOL KEY

if bash -euo pipefail "$work/quickstart.sh" > "$work/out" 2>&1; then
  echo "quickstart: $(grep -c '^curl\|^[A-Z_]*=\$(curl' "$work/quickstart.sh") requests ran as documented"
  echo "1 passed, 0 failed"
else
  echo "quickstart failed; its output:" >&2
  cat "$work/out" >&2
  echo "obol's log:" >&2
  tail -50 "$work/stderr" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
