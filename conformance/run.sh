#!/usr/bin/env bash
# Runs the SDK conformance suites (Python `stripe`, Node `stripe`) against a
# freshly started obol sandbox. Idempotent; exits non-zero on any failure.
#
#   OBOL_SANDBOX_BIN   command that starts the sandbox (e.g. "target/debug/obol sandbox");
#                      default: cargo run -q -p obol-sandbox --example serve
#   It must print "listening on http://ADDR" as its first stdout line and
#   honour OBOL_SANDBOX_LISTEN (set to 127.0.0.1:0 here).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
venv="$here/.venv"
log="$(mktemp -t obol-sandbox.XXXXXX)"
sandbox_pid=""

cleanup() {
    if [[ -n "$sandbox_pid" ]] && kill -0 "$sandbox_pid" 2>/dev/null; then
        # The sandbox runs in its own process group (setsid), so cargo's child dies too.
        kill -TERM -- "-$sandbox_pid" 2>/dev/null || kill -TERM "$sandbox_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$sandbox_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$sandbox_pid" 2>/dev/null || true
    fi
    rm -f "$log"
}
trap cleanup EXIT INT TERM

sha() { sha256sum "$1" | cut -d' ' -f1; }

# 1. Python venv, reinstalled when requirements.txt changes.
req="$here/python/requirements.txt"
if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
if [[ "$(cat "$venv/.requirements.sha256" 2>/dev/null || true)" != "$(sha "$req")" ]]; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    sha "$req" > "$venv/.requirements.sha256"
fi

# 2. Node modules, reinstalled when the lockfile (or package.json) changes.
node_dir="$here/node"
stamp_src="$node_dir/package.json"
[[ -f "$node_dir/package-lock.json" ]] && stamp_src="$node_dir/package-lock.json"
if [[ ! -d "$node_dir/node_modules" || "$(cat "$node_dir/node_modules/.obol-stamp" 2>/dev/null || true)" != "$(sha "$stamp_src")" ]]; then
    if [[ -f "$node_dir/package-lock.json" ]]; then
        (cd "$node_dir" && npm ci --no-audit --no-fund --silent)
    else
        (cd "$node_dir" && npm install --no-audit --no-fund --silent)
        stamp_src="$node_dir/package-lock.json"
    fi
    sha "$stamp_src" > "$node_dir/node_modules/.obol-stamp"
fi

# `run.sh --setup` only installs (obol's Rust tests use the venv and node_modules too).
if [[ "${1:-}" == "--setup" ]]; then
    exit 0
fi

# 3. Start the sandbox on a free port.
if [[ -n "${OBOL_SANDBOX_BIN:-}" ]]; then
    read -r -a cmd <<< "$OBOL_SANDBOX_BIN"
else
    cmd=(cargo run -q -p obol-sandbox --example serve)
fi
cd "$repo"
OBOL_SANDBOX_LISTEN=127.0.0.1:0 setsid "${cmd[@]}" > "$log" 2>&1 &
sandbox_pid=$!
addr=""
for _ in $(seq 1 3000); do # up to 5 minutes: the first run may compile
    if ! kill -0 "$sandbox_pid" 2>/dev/null; then
        echo "sandbox exited before listening:" >&2
        cat "$log" >&2
        exit 1
    fi
    line="$(grep -m1 -o 'listening on http://[^[:space:]]*' "$log" || true)"
    if [[ -n "$line" ]]; then
        addr="${line#listening on }"
        break
    fi
    sleep 0.1
done
if [[ -z "$addr" ]]; then
    echo "sandbox did not report its address in time" >&2
    cat "$log" >&2
    exit 1
fi
export STRIPE_API_BASE="$addr"
echo "sandbox at $STRIPE_API_BASE"

# 4. The suites. Both run even if the first fails.
status=0
py_out="$(mktemp)"; node_out="$(mktemp)"
(cd "$here/python" && "$venv/bin/python" -m pytest -q -p no:cacheprovider) > "$py_out" 2>&1 || status=1
(cd "$node_dir" && node --test) > "$node_out" 2>&1 || status=1

if [[ $status -ne 0 ]]; then
    echo "---- python output ----"; cat "$py_out"
    echo "---- node output ----"; grep -v '^ *\(duration_ms\|\.\.\.\|---\)' "$node_out" | tail -80
fi
echo "python: $(tail -n 1 "$py_out")"
echo "node:   $(grep -E '^# (tests|pass|fail) ' "$node_out" | tr '\n' ' ')"
rm -f "$py_out" "$node_out"
exit $status
